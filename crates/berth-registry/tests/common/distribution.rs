//! Debian's docker-registry (the distribution registry) started by a test on a loopback
//! port, with its own config file and storage directory, stopped on drop.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct DistributionRegistry {
    child: Child,
    pub addr: String,
    pub root: PathBuf,
    _dir: tempfile::TempDir,
}

/// Auth for the distribution registry.
pub enum DistAuth<'a> {
    None,
    /// An htpasswd file (bcrypt).
    Htpasswd(&'a Path),
    /// Token auth: realm URL, service, issuer, PEM bundle of the signing CA.
    Token { realm: &'a str, service: &'a str, issuer: &'a str, rootcerts: &'a Path },
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl DistributionRegistry {
    pub fn start(auth: DistAuth<'_>) -> DistributionRegistry {
        let dir = tempfile::Builder::new().prefix("breg-dist").tempdir_in("/tmp").unwrap();
        let root = dir.path().join("storage");
        std::fs::create_dir_all(&root).unwrap();
        // The port is picked, released and handed over: retry if someone took it.
        for _ in 0..5 {
            let port = free_port();
            let addr = format!("127.0.0.1:{port}");
            let auth_yaml = match &auth {
                DistAuth::None => String::new(),
                DistAuth::Htpasswd(p) => format!(
                    "auth:\n  htpasswd:\n    realm: basic-realm\n    path: {}\n",
                    p.display()
                ),
                DistAuth::Token { realm, service, issuer, rootcerts } => format!(
                    "auth:\n  token:\n    realm: {realm}\n    service: {service}\n    issuer: {issuer}\n    rootcertbundle: {}\n",
                    rootcerts.display()
                ),
            };
            let config = format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n{auth_yaml}",
                root.display()
            );
            let cfg_path = dir.path().join("config.yml");
            std::fs::write(&cfg_path, config).unwrap();
            let mut child = Command::new("/usr/bin/docker-registry")
                .arg("serve")
                .arg(&cfg_path)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start docker-registry");
            let deadline = Instant::now() + Duration::from_secs(15);
            let mut up = false;
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    break;
                }
                if std::net::TcpStream::connect(&addr).is_ok() {
                    up = true;
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            if up {
                return DistributionRegistry { child, addr, root, _dir: dir };
            }
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            eprintln!("docker-registry did not start: {}", String::from_utf8_lossy(&out.stderr));
        }
        panic!("could not start docker-registry");
    }
}

impl Drop for DistributionRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
