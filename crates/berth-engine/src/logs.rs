//! Reading a container's json-file log (and its rotated files) for `docker logs`:
//! stdout/stderr selection, since/until, tail, timestamps, follow across rotations.

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::engine::Engine;
use crate::error::Result;

#[derive(Debug, Clone, Default)]
pub struct LogOptions {
    pub stdout: bool,
    pub stderr: bool,
    pub follow: bool,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Last N lines only.
    pub tail: Option<usize>,
    pub timestamps: bool,
}

/// One log line as it goes to the client.
#[derive(Debug, Clone)]
pub struct LogLine {
    /// 1 stdout, 2 stderr.
    pub stream: u8,
    pub data: Bytes,
}

#[derive(Deserialize)]
struct Record {
    log: String,
    stream: String,
    time: String,
}

fn parse_line(line: &str) -> Option<(u8, String, DateTime<Utc>)> {
    if !line.starts_with('{') {
        return parse_cri_line(line);
    }
    let r: Record = serde_json::from_str(line).ok()?;
    let t = crate::util::parse_rfc3339(&r.time)?;
    Some((if r.stream == "stderr" { 2 } else { 1 }, r.log, t))
}

/// A line of a CRI-format log (containers made through the CRI): `<time> <stream>
/// <F|P> <text>`; a full record ends its line, a partial one continues in the next.
fn parse_cri_line(line: &str) -> Option<(u8, String, DateTime<Utc>)> {
    let mut f = line.splitn(4, ' ');
    let t = crate::util::parse_rfc3339(f.next()?)?;
    let stream = match f.next()? {
        "stdout" => 1,
        "stderr" => 2,
        _ => return None,
    };
    let full = f.next()? == "F";
    let text = f.next().unwrap_or("");
    Some((stream, if full { format!("{text}\n") } else { text.to_string() }, t))
}

/// Rotated files oldest first, then the live one.
fn log_files(path: &Path) -> Vec<PathBuf> {
    let mut rotated: Vec<(u32, PathBuf)> = Vec::new();
    if let (Some(dir), Some(name)) = (path.parent(), path.file_name().map(|n| n.to_string_lossy().into_owned()))
        && let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let f = e.file_name().to_string_lossy().into_owned();
                if let Some(n) = f.strip_prefix(&format!("{name}.")).and_then(|n| n.parse::<u32>().ok()) {
                    rotated.push((n, e.path()));
                }
            }
        }
    rotated.sort_by(|a, b| b.0.cmp(&a.0));
    let mut v: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    v.push(path.to_path_buf());
    v
}

impl LogOptions {
    fn keep(&self, stream: u8, t: &DateTime<Utc>) -> bool {
        (stream == 1 && self.stdout || stream == 2 && self.stderr)
            && self.since.is_none_or(|s| *t >= s)
            && self.until.is_none_or(|u| *t <= u)
    }

    fn render(&self, stream: u8, log: String, t: &DateTime<Utc>) -> LogLine {
        let data = if self.timestamps {
            format!("{} {log}", t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true))
        } else {
            log
        };
        LogLine { stream, data: Bytes::from(data) }
    }
}

impl Engine {
    /// Starts reading; returns whether the container has a TTY (raw stream) and the lines.
    pub fn logs(self: &Arc<Self>, key: &str, opts: LogOptions) -> Result<(bool, mpsc::Receiver<LogLine>)> {
        let c = self.container(key)?;
        let rec = c.snapshot();
        let path = match crate::logconfig::readable(&rec, &self.cfg.data_root)? {
            crate::logconfig::Readable::JsonFile(p) => p,
            crate::logconfig::Readable::Local(p) => {
                let (tx, rx) = mpsc::channel(256);
                let watch = c.watch();
                tokio::task::spawn_blocking(move || local_logs(&p, &opts, &tx, watch));
                return Ok((rec.config.tty, rx));
            }
        };
        let (tx, rx) = mpsc::channel(256);
        let watch = c.watch();
        tokio::task::spawn_blocking(move || {
            let files = log_files(&path);
            // Past lines (with tail applied).
            let mut past: std::collections::VecDeque<LogLine> = std::collections::VecDeque::new();
            let mut offset = 0u64;
            for (i, f) in files.iter().enumerate() {
                let Ok(file) = std::fs::File::open(f) else { continue };
                let mut r = BufReader::new(file);
                let mut line = String::new();
                let mut pos = 0u64;
                loop {
                    line.clear();
                    match r.read_line(&mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if !line.ends_with('\n') {
                                // A record being written: the follow loop takes it from here.
                                break;
                            }
                            pos += n as u64;
                        }
                    }
                    if let Some((s, log, t)) = parse_line(line.trim_end())
                        && opts.keep(s, &t) {
                            past.push_back(opts.render(s, log, &t));
                            if let Some(n) = opts.tail
                                && past.len() > n {
                                    past.pop_front();
                                }
                        }
                }
                if i == files.len() - 1 {
                    offset = pos;
                }
            }
            if opts.tail == Some(0) {
                past.clear();
            }
            for l in past {
                if tx.blocking_send(l).is_err() {
                    return;
                }
            }
            if !opts.follow {
                return;
            }
            follow(&path, offset, &opts, &tx, watch);
        });
        Ok((rec.config.tty, rx))
    }
}

/// Tails the live file from `offset` until the container stops (or `until` passes, or
/// the client goes). The open file is read to its end before anything else: after a
/// rotation (renamed to `<path>.1`) and after the container is removed (unlinked) it
/// still holds the last lines — docker-py removes the container before it reads the
/// stream it opened. Then the new file at `path`, if there is one, takes over.
fn follow(path: &Path, mut offset: u64, opts: &LogOptions, tx: &mpsc::Sender<LogLine>, watch: tokio::sync::watch::Receiver<crate::container::WaitState>) {
    use std::os::unix::fs::MetadataExt;
    let ino_of = |f: &std::fs::File| f.metadata().map(|m| m.ino()).unwrap_or(0);
    let mut file = std::fs::File::open(path).ok();
    let mut ino = file.as_ref().map(ino_of).unwrap_or(0);
    let mut partial = String::new();
    let mut stopped_reads = 0;
    loop {
        if tx.is_closed() {
            return;
        }
        if let Some(u) = opts.until
            && Utc::now() > u {
                return;
            }
        let mut got = false;
        if let Some(f) = file.as_mut()
            && f.seek(SeekFrom::Start(offset)).is_ok() {
                match read_new(&mut BufReader::new(&*f), &mut partial, opts, tx) {
                    Some(n) => {
                        got = n > 0;
                        offset += n;
                    }
                    None => return,
                }
            }
        if !got {
            // Drained: follow `path` if it is another file now (rotated, or created
            // after this reader started).
            let current = std::fs::metadata(path).map(|m| m.ino()).unwrap_or(0);
            if current != 0 && current != ino
                && let Ok(f) = std::fs::File::open(path) {
                    ino = ino_of(&f);
                    file = Some(f);
                    offset = 0;
                    partial.clear();
                    continue;
                }
        }
        if !watch.borrow().status.is_alive() && watch.borrow().status != crate::container::Status::Restarting {
            // One more read after the stop, for what the shim wrote last.
            stopped_reads += 1;
            if stopped_reads > 2 && !got {
                return;
            }
        }
        if !got {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Reads complete lines; returns bytes consumed, or None when the client is gone.
fn read_new(r: &mut impl BufRead, partial: &mut String, opts: &LogOptions, tx: &mpsc::Sender<LogLine>) -> Option<u64> {
    let mut consumed = 0u64;
    let mut buf = String::new();
    loop {
        buf.clear();
        match r.read_line(&mut buf) {
            Ok(0) | Err(_) => return Some(consumed),
            Ok(n) => {
                if !buf.ends_with('\n') {
                    return Some(consumed);
                }
                consumed += n as u64;
                partial.clear();
                if let Some((s, log, t)) = parse_line(buf.trim_end())
                    && opts.keep(s, &t) && tx.blocking_send(opts.render(s, log, &t)).is_err() {
                        return None;
                    }
            }
        }
    }
}

/// A `local` entry as a log line: the newline back on whole lines.
fn local_line(e: &berth_shim::logdriver::local::Entry) -> (u8, String, DateTime<Utc>) {
    let mut text = String::from_utf8_lossy(&e.line).into_owned();
    if !e.partial {
        text.push('\n');
    }
    (if e.source == "stderr" { 2 } else { 1 }, text, DateTime::from_timestamp_nanos(e.time_nano))
}

/// `logs` of a `local` log (or a dual-logging cache): every file, oldest first
/// (gzipped ones through gunzip), `tail` applied, then the live file followed.
fn local_logs(path: &Path, opts: &LogOptions, tx: &mpsc::Sender<LogLine>, watch: tokio::sync::watch::Receiver<crate::container::WaitState>) {
    use berth_shim::logdriver::local;
    let files = local::files(path);
    let mut past: std::collections::VecDeque<LogLine> = std::collections::VecDeque::new();
    let mut offset = 0;
    let mut keep = |e: local::Entry| {
        let (s, log, t) = local_line(&e);
        if opts.keep(s, &t) {
            past.push_back(opts.render(s, log, &t));
            if let Some(n) = opts.tail
                && past.len() > n
            {
                past.pop_front();
            }
        }
        true
    };
    for (i, f) in files.iter().enumerate() {
        if i == files.len() - 1 {
            if let Ok(mut file) = std::fs::File::open(f) {
                offset = local::read_from(&mut file, 0, &mut keep).unwrap_or(0);
            }
        } else if let Ok(mut r) = local::open_reader(f) {
            let _ = local::read_entries(&mut r, &mut keep);
        }
    }
    if opts.tail == Some(0) {
        past.clear();
    }
    for l in past {
        if tx.blocking_send(l).is_err() {
            return;
        }
    }
    if opts.follow {
        follow_local(path, offset, opts, tx, watch);
    }
}

/// As [`follow`], for the `local` format: whole entries only, a rotation followed by
/// the file's inode changing.
fn follow_local(path: &Path, mut offset: u64, opts: &LogOptions, tx: &mpsc::Sender<LogLine>, watch: tokio::sync::watch::Receiver<crate::container::WaitState>) {
    use berth_shim::logdriver::local;
    use std::os::unix::fs::MetadataExt;
    let ino_of = |f: &std::fs::File| f.metadata().map(|m| m.ino()).unwrap_or(0);
    let mut file = std::fs::File::open(path).ok();
    let mut ino = file.as_ref().map(ino_of).unwrap_or(0);
    let mut stopped_reads = 0;
    loop {
        if tx.is_closed() || opts.until.is_some_and(|u| Utc::now() > u) {
            return;
        }
        let mut gone = false;
        let before = offset;
        if let Some(f) = file.as_mut() {
            offset = local::read_from(f, offset, |e| {
                let (s, log, t) = local_line(&e);
                if opts.keep(s, &t) && tx.blocking_send(opts.render(s, log, &t)).is_err() {
                    gone = true;
                    return false;
                }
                true
            })
            .unwrap_or(offset);
        }
        if gone {
            return;
        }
        let got = offset > before;
        if !got {
            let current = std::fs::metadata(path).map(|m| m.ino()).unwrap_or(0);
            if current != 0
                && current != ino
                && let Ok(f) = std::fs::File::open(path)
            {
                ino = ino_of(&f);
                file = Some(f);
                offset = 0;
                continue;
            }
        }
        if !watch.borrow().status.is_alive() && watch.borrow().status != crate::container::Status::Restarting {
            stopped_reads += 1;
            if stopped_reads > 2 && !got {
                return;
            }
        }
        if !got {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_file_and_cri_lines_both_read() {
        let (s, log, _) = parse_line(r#"{"log":"hi\n","stream":"stderr","time":"2024-01-02T03:04:05.000000006Z"}"#).unwrap();
        assert_eq!((s, log.as_str()), (2, "hi\n"));
        let (s, log, t) = parse_line("2024-01-02T03:04:05.123456789Z stdout F hello world").unwrap();
        assert_eq!((s, log.as_str(), t.timestamp_subsec_nanos()), (1, "hello world\n", 123_456_789));
        let (_, log, _) = parse_line("2024-01-02T03:04:05Z stdout P part").unwrap();
        assert_eq!(log, "part");
        assert!(parse_line("2024-01-02T03:04:05Z bogus F x").is_none());
        assert!(parse_line("garbage").is_none());
    }
}
