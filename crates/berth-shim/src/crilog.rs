//! The CRI log format the kubelet reads (and `crictl logs` prints): one record per line,
//! `<RFC 3339 time> <stdout|stderr> <F|P> <text>\n`, where `P` marks a piece of a line
//! longer than a record and `F` the piece that ends it. The kubelet rotates the file
//! itself (rename, then ReopenContainerLog), so berth never rotates it.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Lines longer than this are written as several records (containerd's default
/// `max_container_log_line_size`).
const MAX_RECORD: usize = 16 * 1024;

pub struct CriLog {
    path: PathBuf,
    file: File,
    /// Incomplete last line of stdout / stderr.
    partial: [Vec<u8>; 2],
}

fn open_append(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

impl CriLog {
    pub fn open(path: &Path) -> io::Result<CriLog> {
        Ok(CriLog { path: path.to_path_buf(), file: open_append(path)?, partial: [Vec::new(), Vec::new()] })
    }

    /// Logs `data` from stream 1 (stdout) or 2 (stderr): complete lines as `F` records
    /// now, pieces of an over-long line as `P` records, the rest when its newline comes.
    pub fn write(&mut self, stream: u8, data: &[u8]) -> io::Result<()> {
        let idx = if stream == 2 { 1 } else { 0 };
        let mut buf = std::mem::take(&mut self.partial[idx]);
        buf.extend_from_slice(data);
        let mut start = 0;
        while let Some(pos) = buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + pos;
            self.records(idx, &buf[start..end], true)?;
            start = end + 1;
        }
        while buf.len() - start >= MAX_RECORD {
            self.emit(idx, &buf[start..start + MAX_RECORD], false)?;
            start += MAX_RECORD;
        }
        buf.drain(..start);
        self.partial[idx] = buf;
        Ok(())
    }

    /// A complete line, cut into records of at most MAX_RECORD bytes.
    fn records(&mut self, idx: usize, line: &[u8], full: bool) -> io::Result<()> {
        let mut rest = line;
        while rest.len() > MAX_RECORD {
            self.emit(idx, &rest[..MAX_RECORD], false)?;
            rest = &rest[MAX_RECORD..];
        }
        self.emit(idx, rest, full)
    }

    /// What is left of unfinished lines at exit ends them (`F`, as containerd does).
    pub fn flush(&mut self) -> io::Result<()> {
        for idx in 0..2 {
            let buf = std::mem::take(&mut self.partial[idx]);
            if !buf.is_empty() {
                self.records(idx, &buf, true)?;
            }
        }
        Ok(())
    }

    /// Opens the path again (the kubelet renamed the file away to rotate it).
    pub fn reopen(&mut self) -> io::Result<()> {
        self.file = open_append(&self.path)?;
        Ok(())
    }

    fn emit(&mut self, idx: usize, text: &[u8], full: bool) -> io::Result<()> {
        let mut line = Vec::with_capacity(text.len() + 48);
        line.extend_from_slice(crate::now_rfc3339().as_bytes());
        line.extend_from_slice(if idx == 1 { b" stderr " } else { b" stdout " });
        line.extend_from_slice(if full { b"F " } else { b"P " });
        line.extend_from_slice(text);
        line.push(b'\n');
        // One write per record: a reader never sees half a record followed by another.
        self.file.write_all(&line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(p: &Path) -> Vec<(String, String, String)> {
        std::fs::read_to_string(p)
            .unwrap()
            .lines()
            .map(|l| {
                let mut f = l.splitn(4, ' ');
                let t = f.next().unwrap();
                assert!(chrono::DateTime::parse_from_rfc3339(t).is_ok(), "{t}");
                (f.next().unwrap().to_string(), f.next().unwrap().to_string(), f.next().unwrap_or("").to_string())
            })
            .collect()
    }

    #[test]
    fn lines_become_full_records_per_stream() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/0.log");
        let mut log = CriLog::open(&p).unwrap();
        log.write(1, b"hel").unwrap();
        log.write(2, b"oops\n").unwrap();
        log.write(1, b"lo\n\nend").unwrap();
        log.flush().unwrap();
        let r = records(&p);
        let want = [("stderr", "F", "oops"), ("stdout", "F", "hello"), ("stdout", "F", ""), ("stdout", "F", "end")];
        assert_eq!(r.len(), want.len());
        for (got, want) in r.iter().zip(want) {
            assert_eq!((got.0.as_str(), got.1.as_str(), got.2.as_str()), want);
        }
    }

    #[test]
    fn long_lines_are_split_into_partial_records() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log");
        let mut log = CriLog::open(&p).unwrap();
        let mut line = vec![b'a'; MAX_RECORD + 10];
        line.push(b'\n');
        log.write(1, &line[..100]).unwrap();
        log.write(1, &line[100..]).unwrap();
        let r = records(&p);
        assert_eq!(r.len(), 2);
        assert_eq!((r[0].1.as_str(), r[0].2.len()), ("P", MAX_RECORD));
        assert_eq!((r[1].1.as_str(), r[1].2.len()), ("F", 10));
    }

    #[test]
    fn reopen_follows_a_rotation() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("0.log");
        let mut log = CriLog::open(&p).unwrap();
        log.write(1, b"one\n").unwrap();
        std::fs::rename(&p, dir.path().join("0.log.1")).unwrap();
        log.reopen().unwrap();
        log.write(1, b"two\n").unwrap();
        assert_eq!(records(&p)[0].2, "two");
        assert_eq!(records(&dir.path().join("0.log.1"))[0].2, "one");
    }
}
