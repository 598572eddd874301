//! A command run with a new pseudo-terminal as its controlling terminal and stdio, for
//! tests of `-it`, detach keys and resizes: type into it, read what it printed.

use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct Pty {
    master: std::fs::File,
    output: Arc<Mutex<Vec<u8>>>,
    /// Set by the reader at the pty's end (every holder of its other side gone).
    drained: Arc<std::sync::atomic::AtomicBool>,
    child: Child,
}

impl Pty {
    /// Starts `cmd` on a new pty of `rows` x `cols`; its output is collected as it comes.
    pub fn spawn(mut cmd: Command, rows: u16, cols: u16) -> Pty {
        let (mut master, mut slave) = (-1, -1);
        let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: openpty writes two fds into our locals; the name and termios pointers may be null.
        assert_eq!(unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), &ws) }, 0, "openpty");
        // SAFETY: openpty returned these fds and nothing else owns them.
        let (master, slave) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
        cmd.stdin(Stdio::from(slave.try_clone().unwrap()))
            .stdout(Stdio::from(slave.try_clone().unwrap()))
            .stderr(Stdio::from(slave.try_clone().unwrap()));
        // SAFETY: only async-signal-safe setsid and ioctl between fork and exec; they make
        // the pty (fd 0) the child's controlling terminal.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY as _, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        drop(slave);
        let master = std::fs::File::from(master);
        let output: Arc<Mutex<Vec<u8>>> = Arc::default();
        let (mut reader, out2) = (master.try_clone().unwrap(), output.clone());
        let drained: Arc<std::sync::atomic::AtomicBool> = Arc::default();
        let done = drained.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                out2.lock().unwrap().extend_from_slice(&buf[..n]);
            }
            done.store(true, std::sync::atomic::Ordering::SeqCst);
        });
        Pty { master, output, drained, child }
    }

    /// The command's pid (to signal it).
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn type_keys(&mut self, keys: &[u8]) {
        self.master.write_all(keys).unwrap();
    }

    /// Everything printed so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.output.lock().unwrap()).into_owned()
    }

    /// Whether `what` shows within 20 s.
    pub fn wait_output(&self, what: &str) -> bool {
        let end = Instant::now() + Duration::from_secs(20);
        while Instant::now() < end {
            if self.text().contains(what) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// A window change, as a terminal emulator makes it (the child gets SIGWINCH).
    pub fn resize(&self, rows: u16, cols: u16) {
        let ws = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: TIOCSWINSZ reads one winsize from a valid pointer; the fd is our pty master.
        assert_eq!(unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &ws) }, 0);
    }

    /// The exit code, waiting up to 30 s (then the child is killed and the test fails).
    pub fn wait_exit(&mut self) -> i32 {
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end {
            if let Some(st) = self.child.try_wait().unwrap() {
                // What it printed last may still be in the pty: read to its end (EIO once
                // the last holder of the other side is gone; 2 s at most).
                let drain = Instant::now() + Duration::from_secs(2);
                while !self.drained.load(std::sync::atomic::Ordering::SeqCst) && Instant::now() < drain {
                    std::thread::sleep(Duration::from_millis(10));
                }
                return st.code().unwrap_or(-1);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        panic!("the command did not exit; output: {:?}", self.text());
    }
}
