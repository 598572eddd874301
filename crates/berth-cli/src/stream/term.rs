//! The local terminal: raw mode for `-it`, its size for resizes.

use std::os::fd::{AsFd, BorrowedFd};

use nix::sys::termios::{self, SetArg, Termios};

/// Puts a terminal in raw mode and restores it when dropped (also on error paths).
pub struct RawMode {
    fd: i32,
    saved: Termios,
}

impl RawMode {
    pub fn enable(fd: BorrowedFd<'_>) -> nix::Result<RawMode> {
        let saved = termios::tcgetattr(fd)?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, SetArg::TCSANOW, &raw)?;
        Ok(RawMode { fd: std::os::fd::AsRawFd::as_raw_fd(&fd), saved })
    }

    /// Raw mode on our stdin.
    pub fn stdin() -> nix::Result<RawMode> {
        RawMode::enable(std::io::stdin().as_fd())
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: the fd was a valid terminal fd when we enabled raw mode and belongs
        // to this process's stdio, which stays open for the life of the process.
        let fd = unsafe { BorrowedFd::borrow_raw(self.fd) };
        let _ = termios::tcsetattr(fd, SetArg::TCSANOW, &self.saved);
    }
}

/// (rows, columns) of the terminal on `fd`, if it is one.
pub fn size(fd: BorrowedFd<'_>) -> Option<(u16, u16)> {
    let mut ws = libc::winsize { ws_row: 0, ws_col: 0, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCGWINSZ writes one `winsize` into the pointer we pass, which points to
    // a live, properly aligned local; the fd is borrowed for the call's duration.
    let r = unsafe { libc::ioctl(std::os::fd::AsRawFd::as_raw_fd(&fd), libc::TIOCGWINSZ, &mut ws) };
    if r == 0 { Some((ws.ws_row, ws.ws_col)) } else { None }
}

/// The size of our stdout's terminal (docker measures the output side).
pub fn stdout_size() -> Option<(u16, u16)> {
    size(std::io::stdout().as_fd())
}
