//! An OpenSSH server for one test (Debian's openssh-server): its own port on
//! 127.0.0.1, host key, authorized key and configuration in a temporary directory,
//! started by the test and killed on drop. Clients reach it through an `ssh` wrapper
//! (in [`Sshd::client_path`]) that uses the test's key and known_hosts.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Sshd {
    pub port: u16,
    pub dir: tempfile::TempDir,
    child: Child,
}

fn keygen(path: &Path) {
    let st = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(path).stdin(Stdio::null()).status().expect("ssh-keygen");
    assert!(st.success(), "ssh-keygen failed");
}

impl Sshd {
    /// Starts sshd; sessions get `env` (e.g. PATH and DOCKER_HOST) through `SetEnv`.
    pub fn start(env: &[(&str, &str)]) -> Sshd {
        crate::require_root();
        let sshd = ["/usr/sbin/sshd", "/usr/bin/sshd"].into_iter().find(|p| Path::new(p).exists()).expect("sshd (Debian's openssh-server; scripts/setup.sh --test installs it)");
        // sshd wants its privilege-separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let dir = tempfile::Builder::new().prefix("bt-sshd").tempdir_in("/tmp").expect("temp dir");
        let d = dir.path();
        keygen(&d.join("host_key"));
        keygen(&d.join("user_key"));
        std::fs::copy(d.join("user_key.pub"), d.join("authorized_keys")).expect("authorized_keys");
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a port");
        let set_env: Vec<String> = env.iter().map(|(k, v)| format!("\"{k}={v}\"")).collect();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\nAuthorizedKeysFile {d}/authorized_keys\n\
             PermitRootLogin prohibit-password\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n\
             PrintMotd no\n{}",
            if set_env.is_empty() { String::new() } else { format!("SetEnv {}\n", set_env.join(" ")) },
            d = d.display()
        );
        std::fs::write(d.join("sshd_config"), config).expect("sshd_config");
        let host_pub = std::fs::read_to_string(d.join("host_key.pub")).expect("host key");
        std::fs::write(d.join("known_hosts"), format!("[127.0.0.1]:{port} {host_pub}")).expect("known_hosts");
        std::fs::write(
            d.join("ssh_config"),
            format!("Host *\n  IdentityFile {d}/user_key\n  UserKnownHostsFile {d}/known_hosts\n  StrictHostKeyChecking yes\n  BatchMode yes\n  LogLevel ERROR\n", d = d.display()),
        )
        .expect("ssh_config");
        let bin = d.join("bin");
        std::fs::create_dir_all(&bin).expect("bin dir");
        let wrapper = bin.join("ssh");
        std::fs::write(&wrapper, format!("#!/bin/sh\nexec /usr/bin/ssh -F {}/ssh_config \"$@\"\n", d.display())).expect("ssh wrapper");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let log = std::fs::File::create(d.join("sshd.log")).expect("log");
        let child = Command::new(sshd).args(["-D", "-e", "-f"]).arg(d.join("sshd_config")).stdin(Stdio::null()).stdout(log.try_clone().expect("log")).stderr(log).spawn().expect("start sshd");
        let s = Sshd { port, dir, child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "sshd did not listen:\n{}", s.log());
            std::thread::sleep(Duration::from_millis(50));
        }
        s
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }

    /// PATH for clients: the `ssh` wrapper first.
    pub fn client_path(&self) -> String {
        format!("{}:{}", self.dir.path().join("bin").display(), std::env::var("PATH").unwrap_or_default())
    }

    /// `ssh://root@127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("ssh://root@127.0.0.1:{}", self.port)
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory whose `docker` and `berth` are `bin` (berth answers to both names).
pub fn berth_as_docker(bin: &Path) -> tempfile::TempDir {
    let d = tempfile::Builder::new().prefix("bt-remote-bin").tempdir_in("/tmp").expect("temp dir");
    for name in ["docker", "berth"] {
        std::os::unix::fs::symlink(bin, d.path().join(name)).expect("symlink");
    }
    d
}

