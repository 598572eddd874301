//! Where output goes: the real stdout/stderr, or buffers (tests).

use std::io::Write;
use std::sync::{Arc, Mutex};

/// An in-memory stream (tests).
pub type Buffer = Arc<Mutex<Vec<u8>>>;

#[derive(Clone)]
pub enum Sink {
    Stdout,
    Stderr,
    Buffer(Arc<Mutex<Vec<u8>>>),
}

impl Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Sink::Stdout => std::io::stdout().write(buf),
            Sink::Stderr => std::io::stderr().write(buf),
            Sink::Buffer(b) => {
                b.lock().map_err(|_| std::io::Error::other("poisoned buffer"))?.extend_from_slice(buf);
                Ok(buf.len())
            }
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Stdout => {
                let mut o = std::io::stdout().lock();
                o.write_all(buf)?;
                o.flush()
            }
            Sink::Stderr => std::io::stderr().lock().write_all(buf),
            Sink::Buffer(_) => self.write(buf).map(|_| ()),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Sink::Stdout => std::io::stdout().flush(),
            Sink::Stderr => std::io::stderr().flush(),
            Sink::Buffer(_) => Ok(()),
        }
    }
}

/// The command's standard streams and whether they are terminals.
#[derive(Clone)]
pub struct Streams {
    pub out: Sink,
    pub err: Sink,
    pub stdin_tty: bool,
    pub stdout_tty: bool,
}

impl Streams {
    pub fn stdio() -> Streams {
        use std::io::IsTerminal;
        Streams {
            out: Sink::Stdout,
            err: Sink::Stderr,
            stdin_tty: std::io::stdin().is_terminal(),
            stdout_tty: std::io::stdout().is_terminal(),
        }
    }

    /// Captured streams for tests: (streams, stdout buffer, stderr buffer).
    pub fn captured() -> (Streams, Buffer, Buffer) {
        let o = Arc::new(Mutex::new(Vec::new()));
        let e = Arc::new(Mutex::new(Vec::new()));
        (
            Streams { out: Sink::Buffer(o.clone()), err: Sink::Buffer(e.clone()), stdin_tty: false, stdout_tty: false },
            o,
            e,
        )
    }

    pub fn print(&self, s: &str) {
        let _ = self.out.clone().write_all(s.as_bytes());
    }

    pub fn println(&self, s: &str) {
        let mut line = String::with_capacity(s.len() + 1);
        line.push_str(s);
        line.push('\n');
        self.print(&line);
    }

    pub fn eprintln(&self, s: &str) {
        let mut line = String::with_capacity(s.len() + 1);
        line.push_str(s);
        line.push('\n');
        let _ = self.err.clone().write_all(line.as_bytes());
    }
}
