//! A registry process for a test, killed when dropped: berth's own
//! (`berth registry serve` on a port it picks and prints), or any other the test starts.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub struct Registry {
    child: Child,
    /// host:port on loopback.
    pub addr: String,
    _dir: tempfile::TempDir,
}

impl Registry {
    /// `bin registry serve` with its storage in a temp dir, answering when this returns.
    pub fn berth(bin: &Path) -> Registry {
        let dir = crate::short_tempdir("breg");
        let mut child = Command::new(bin)
            .args(["registry", "serve", "--addr", "127.0.0.1:0", "--root"])
            .arg(dir.path().join("storage"))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("berth registry serve");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("read the address");
        let addr = line
            .split_whitespace()
            .map(|w| w.trim_start_matches("http://"))
            .find(|w| w.starts_with("127.0.0.1:"))
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        Registry::adopt(child, addr, dir)
    }

    /// A registry the test started itself (listening, or about to, at `addr`; its files
    /// in `dir`): waited for, then killed on drop.
    pub fn adopt(child: Child, addr: String, dir: tempfile::TempDir) -> Registry {
        let reg = Registry { child, addr, _dir: dir };
        for _ in 0..100 {
            if std::net::TcpStream::connect(&reg.addr).is_ok() {
                return reg;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("registry at {} did not come up", reg.addr);
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
