//! Docker's json-file log, written by the shim so that logs keep flowing while the
//! daemon is down: one JSON object per line (`log`, `stream`, `time`), rotated by size.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

/// Docker splits a line longer than this into several records.
const MAX_RECORD: usize = 16 * 1024;

#[derive(Serialize)]
struct Record<'a> {
    log: &'a str,
    stream: &'a str,
    time: &'a str,
}

/// The container's log, in the format the daemon asked for.
pub enum Log {
    JsonFile(JsonFileLog),
    Cri(crate::crilog::CriLog),
}

impl Log {
    pub fn open(cfg: &crate::config::LogConfig, path: &Path) -> io::Result<Log> {
        Ok(match cfg.format {
            crate::config::LogFormat::JsonFile => Log::JsonFile(JsonFileLog::open(path, cfg.max_size, cfg.max_files)?),
            crate::config::LogFormat::Cri => Log::Cri(crate::crilog::CriLog::open(path)?),
        })
    }

    pub fn write(&mut self, stream: u8, data: &[u8]) -> io::Result<()> {
        match self {
            Log::JsonFile(l) => l.write(stream, data),
            Log::Cri(l) => l.write(stream, data),
        }
    }

    pub fn flush(&mut self) -> io::Result<()> {
        match self {
            Log::JsonFile(l) => l.flush(),
            Log::Cri(l) => l.flush(),
        }
    }

    /// Reopens the file at its path (CRI logs, after the kubelet rotated them).
    pub fn reopen(&mut self) -> io::Result<()> {
        match self {
            Log::JsonFile(l) => l.reopen(),
            Log::Cri(l) => l.reopen(),
        }
    }
}

pub struct JsonFileLog {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
    max_files: u32,
    /// Incomplete last line of stdout / stderr.
    partial: [Vec<u8>; 2],
}

impl JsonFileLog {
    pub fn open(path: &Path, max_size: u64, max_files: u32) -> io::Result<JsonFileLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(JsonFileLog {
            path: path.to_path_buf(),
            file,
            size,
            max_size,
            max_files: max_files.max(1),
            partial: [Vec::new(), Vec::new()],
        })
    }

    /// Logs `data` read from stream 1 (stdout) or 2 (stderr): complete lines now, the
    /// rest when its newline comes (or at [`flush`](Self::flush)).
    pub fn write(&mut self, stream: u8, data: &[u8]) -> io::Result<()> {
        let idx = if stream == 2 { 1 } else { 0 };
        let mut buf = std::mem::take(&mut self.partial[idx]);
        buf.extend_from_slice(data);
        let mut start = 0;
        while let Some(pos) = buf[start..].iter().position(|&b| b == b'\n') {
            let end = start + pos + 1;
            self.emit(idx, &buf[start..end])?;
            start = end;
        }
        while buf.len() - start >= MAX_RECORD {
            self.emit(idx, &buf[start..start + MAX_RECORD])?;
            start += MAX_RECORD;
        }
        buf.drain(..start);
        self.partial[idx] = buf;
        Ok(())
    }

    pub fn reopen(&mut self) -> io::Result<()> {
        self.file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        self.size = self.file.metadata()?.len();
        Ok(())
    }

    /// Writes out incomplete lines (at exit).
    pub fn flush(&mut self) -> io::Result<()> {
        for idx in 0..2 {
            let buf = std::mem::take(&mut self.partial[idx]);
            if !buf.is_empty() {
                self.emit(idx, &buf)?;
            }
        }
        Ok(())
    }

    fn emit(&mut self, idx: usize, chunk: &[u8]) -> io::Result<()> {
        let time = crate::now_rfc3339();
        let text = String::from_utf8_lossy(chunk);
        let rec = Record { log: &text, stream: if idx == 1 { "stderr" } else { "stdout" }, time: &time };
        let mut line = serde_json::to_vec(&rec).map_err(io::Error::other)?;
        line.push(b'\n');
        if self.max_size > 0 && self.size > 0 && self.size + line.len() as u64 > self.max_size {
            self.rotate()?;
        }
        self.file.write_all(&line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    /// `log` → `log.1` → ... → `log.<max_files-1>`, the oldest dropped.
    fn rotate(&mut self) -> io::Result<()> {
        let keep = self.max_files;
        if keep <= 1 {
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        let name = |i: u32| -> PathBuf {
            let mut p = self.path.clone().into_os_string();
            p.push(format!(".{i}"));
            PathBuf::from(p)
        };
        let _ = std::fs::remove_file(name(keep - 1));
        for i in (1..keep - 1).rev() {
            let _ = std::fs::rename(name(i), name(i + 1));
        }
        std::fs::rename(&self.path, name(1))?;
        self.file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(p: &Path) -> Vec<serde_json::Value> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    #[test]
    fn splits_lines_per_stream_and_keeps_partials() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c-json.log");
        let mut log = JsonFileLog::open(&p, 0, 1).unwrap();
        log.write(1, b"hel").unwrap();
        log.write(2, b"err\n").unwrap();
        log.write(1, b"lo\nwor").unwrap();
        log.flush().unwrap();
        let l = lines(&p);
        assert_eq!(l.len(), 3);
        assert_eq!(l[0]["log"], "err\n");
        assert_eq!(l[0]["stream"], "stderr");
        assert_eq!(l[1]["log"], "hello\n");
        assert_eq!(l[1]["stream"], "stdout");
        assert_eq!(l[2]["log"], "wor");
        assert!(l[2]["time"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn rotates_by_size_and_keeps_max_files() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c-json.log");
        let mut log = JsonFileLog::open(&p, 200, 3).unwrap();
        for i in 0..40 {
            log.write(1, format!("line {i}\n").as_bytes()).unwrap();
        }
        assert!(p.exists());
        assert!(dir.path().join("c-json.log.1").exists());
        assert!(dir.path().join("c-json.log.2").exists());
        assert!(!dir.path().join("c-json.log.3").exists());
        for f in ["c-json.log", "c-json.log.1", "c-json.log.2"] {
            assert!(std::fs::metadata(dir.path().join(f)).unwrap().len() <= 200);
        }
        let last = lines(&p);
        assert_eq!(last.last().unwrap()["log"], "line 39\n");
    }
}
