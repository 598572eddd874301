//! Docker's json-file log, written by the shim so that logs keep flowing while the
//! daemon is down: one JSON object per line (`log`, `stream`, `time`), rotated by size.
//!
//! Written at pipe speed: the lines of one read from the container are encoded into
//! one buffer (by hand: no allocation per line) with one timestamp, and written with
//! one system call; a container writing as fast as it can costs a write per 64 KiB,
//! not per line.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Docker splits a line longer than this into several records.
const MAX_RECORD: usize = 16 * 1024;

pub struct JsonFileLog {
    path: PathBuf,
    file: File,
    /// Bytes in the current file, counting what `out` holds.
    size: u64,
    max_size: u64,
    max_files: u32,
    /// Incomplete last line of stdout / stderr.
    partial: [Vec<u8>; 2],
    /// Encoded records not yet written.
    out: Vec<u8>,
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
            out: Vec::with_capacity(128 * 1024),
        })
    }

    /// Logs `data` read from stream 1 (stdout) or 2 (stderr): complete lines now, the
    /// rest when its newline comes (or at [`flush`](Self::flush)).
    pub fn write(&mut self, stream: u8, data: &[u8]) -> io::Result<()> {
        let idx = if stream == 2 { 1 } else { 0 };
        let time = crate::now_rfc3339();
        let mut buf = std::mem::take(&mut self.partial[idx]);
        let r = self.records(idx, &time, &mut buf, data);
        self.partial[idx] = buf;
        r?;
        self.write_out()
    }

    /// Encodes the complete lines of `pending` + `data` (and over-long pieces),
    /// leaving the incomplete rest in `pending`.
    fn records(&mut self, idx: usize, time: &str, pending: &mut Vec<u8>, data: &[u8]) -> io::Result<()> {
        let mut rest = data;
        if !pending.is_empty() {
            // Complete the held line first.
            match memchr(b'\n', rest) {
                Some(pos) => {
                    pending.extend_from_slice(&rest[..=pos]);
                    rest = &rest[pos + 1..];
                    let line = std::mem::take(pending);
                    self.emit_long(idx, time, &line)?;
                }
                None => {
                    pending.extend_from_slice(rest);
                    return self.emit_overlong(idx, time, pending);
                }
            }
        }
        while let Some(pos) = memchr(b'\n', rest) {
            self.emit_long(idx, time, &rest[..=pos])?;
            rest = &rest[pos + 1..];
        }
        pending.extend_from_slice(rest);
        self.emit_overlong(idx, time, pending)
    }

    /// A complete line, in pieces of at most MAX_RECORD bytes.
    fn emit_long(&mut self, idx: usize, time: &str, mut line: &[u8]) -> io::Result<()> {
        while line.len() > MAX_RECORD {
            self.emit(idx, time, &line[..MAX_RECORD])?;
            line = &line[MAX_RECORD..];
        }
        self.emit(idx, time, line)
    }

    /// Records of MAX_RECORD bytes cut from an incomplete line that grew too long.
    fn emit_overlong(&mut self, idx: usize, time: &str, pending: &mut Vec<u8>) -> io::Result<()> {
        let mut start = 0;
        while pending.len() - start >= MAX_RECORD {
            let piece = pending[start..start + MAX_RECORD].to_vec();
            self.emit(idx, time, &piece)?;
            start += MAX_RECORD;
        }
        pending.drain(..start);
        Ok(())
    }

    pub fn reopen(&mut self) -> io::Result<()> {
        self.file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        self.size = self.file.metadata()?.len();
        Ok(())
    }

    /// Writes out incomplete lines (at exit).
    pub fn flush(&mut self) -> io::Result<()> {
        let time = crate::now_rfc3339();
        for idx in 0..2 {
            let buf = std::mem::take(&mut self.partial[idx]);
            if !buf.is_empty() {
                self.emit(idx, &time, &buf)?;
            }
        }
        self.write_out()
    }

    fn write_out(&mut self) -> io::Result<()> {
        write_buffered(&mut self.file, &mut self.out)
    }

    fn emit(&mut self, idx: usize, time: &str, chunk: &[u8]) -> io::Result<()> {
        let mark = self.out.len();
        self.out.extend_from_slice(b"{\"log\":");
        json_string(&mut self.out, chunk);
        self.out.extend_from_slice(if idx == 1 { b",\"stream\":\"stderr\",\"time\":\"" } else { b",\"stream\":\"stdout\",\"time\":\"" });
        self.out.extend_from_slice(time.as_bytes());
        self.out.extend_from_slice(b"\"}\n");
        let len = (self.out.len() - mark) as u64;
        if self.max_size > 0 && self.size > 0 && self.size + len > self.max_size {
            // The record goes to a fresh file: what came before it to the old one.
            let record = self.out.split_off(mark);
            self.write_out()?;
            self.rotate()?;
            self.out = record;
        }
        self.size += len;
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

/// Writes out and empties a buffer of whole records (emptied even when the write
/// fails: a record is never written twice).
pub(crate) fn write_buffered(file: &mut File, out: &mut Vec<u8>) -> io::Result<()> {
    if out.is_empty() {
        return Ok(());
    }
    let r = file.write_all(out);
    out.clear();
    r
}

fn memchr(b: u8, s: &[u8]) -> Option<usize> {
    memchr::memchr(b, s)
}

/// Appends `bytes` as a JSON string: UTF-8 kept, invalid sequences as U+FFFD (as
/// `String::from_utf8_lossy` and Go's encoder do), `"` `\` and control characters
/// escaped. The usual line (valid, nothing to escape but its newline) is checked and
/// copied in a few passes over whole words, not byte by byte.
fn json_string(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    if std::str::from_utf8(bytes).is_ok() {
        escape_valid(out, bytes);
    } else {
        for chunk in bytes.utf8_chunks() {
            escape_valid(out, chunk.valid().as_bytes());
            if !chunk.invalid().is_empty() {
                out.extend_from_slice("\u{fffd}".as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// The escaping of [`json_string`] for valid UTF-8.
fn escape_valid(out: &mut Vec<u8>, valid: &[u8]) {
    let mut start = 0;
    while let Some(i) = next_escape(valid, start) {
        out.extend_from_slice(&valid[start..i]);
        let b = valid[i];
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[b'\\', b'u', b'0', b'0', HEX[(b >> 4) as usize], HEX[(b & 15) as usize]]);
            }
        }
        start = i + 1;
    }
    out.extend_from_slice(&valid[start..]);
}

/// Where the first byte at or after `from` is that JSON escapes (`"`, `\`, a control
/// character), eight bytes at a time: a byte's high bit is set in `m` where it is below
/// 0x20 or equal to one of the two. Borrows only run upwards, so the lowest flag is a
/// true match even where a higher one is not.
fn next_escape(s: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
    let mut i = from;
    while i + 8 <= s.len() {
        let x = u64::from_le_bytes(s[i..i + 8].try_into().unwrap_or_default());
        let m = (x.wrapping_sub(ONES * 0x20) & !x & HIGH) | zero_byte(x ^ (ONES * b'"' as u64)) | zero_byte(x ^ (ONES * b'\\' as u64));
        if m != 0 {
            return Some(i + (m.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    s[i..].iter().position(|&b| b < 0x20 || b == b'"' || b == b'\\').map(|p| i + p)
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

    /// Every escape at every offset of the word-at-a-time scan, invalid UTF-8 among
    /// them: what serde_json reads back is the lossy text.
    #[test]
    fn json_strings_read_back_as_the_lossy_text() {
        let specials: [&[u8]; 9] = [b"\"", b"\\", b"\n", b"\r", b"\t", b"\x01", b"\x1f", "é".as_bytes(), b"\xff"];
        for len in 0..20 {
            for at in 0..=len {
                for sp in specials {
                    let mut text = vec![b'a'; len];
                    text.splice(at..at, sp.iter().copied());
                    text.push(0x7f);
                    let mut out = Vec::new();
                    json_string(&mut out, &text);
                    let back: String = serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out)));
                    assert_eq!(back, String::from_utf8_lossy(&text), "{text:?}");
                }
            }
        }
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

    #[test]
    fn escapes_like_json_and_splits_long_lines() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c-json.log");
        let mut log = JsonFileLog::open(&p, 0, 1).unwrap();
        log.write(1, b"q\"b\\t\tc\x01 \xff\xfe \xc3\xa9\n").unwrap();
        let long = vec![b'x'; MAX_RECORD * 2 + 10];
        log.write(2, &long[..MAX_RECORD + 5]).unwrap();
        log.write(2, &long[MAX_RECORD + 5..]).unwrap();
        log.write(2, b"\n").unwrap();
        log.flush().unwrap();
        let l = lines(&p);
        assert_eq!(l[0]["log"], "q\"b\\t\tc\u{1} \u{fffd}\u{fffd} é\n");
        let pieces: Vec<usize> = l[1..].iter().map(|r| r["log"].as_str().unwrap().len()).collect();
        assert_eq!(pieces, vec![MAX_RECORD, MAX_RECORD, 11]);
        assert!(l[1..].iter().all(|r| r["stream"] == "stderr"));
    }
}
