//! Reading a container's json-file log (and its rotated files) for `docker logs`:
//! stdout/stderr selection, since/until, tail, timestamps, follow across rotations.

use std::borrow::Cow;
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
struct Record<'a> {
    #[serde(borrow)]
    log: Cow<'a, str>,
    #[serde(borrow)]
    stream: Cow<'a, str>,
    #[serde(borrow)]
    time: Cow<'a, str>,
}

/// One line of a log file: its stream, its text and its time, left as text (most reads
/// never need it parsed).
struct Entry<'a> {
    stream: u8,
    log: Cow<'a, str>,
    time: Cow<'a, str>,
}

/// A json-file record, or a line of a CRI-format log (containers made through the CRI):
/// `<time> <stream> <F|P> <text>`, where a full record ends its line and a partial one
/// continues in the next.
fn parse_entry(line: &[u8]) -> Option<Entry<'_>> {
    if line.first() == Some(&b'{') {
        let r: Record = serde_json::from_slice(line).ok()?;
        return Some(Entry { stream: if r.stream == "stderr" { 2 } else { 1 }, log: r.log, time: r.time });
    }
    let line = std::str::from_utf8(line).ok()?;
    let mut f = line.splitn(4, ' ');
    let time = f.next()?;
    let stream = match f.next()? {
        "stdout" => 1,
        "stderr" => 2,
        _ => return None,
    };
    let full = f.next()? == "F";
    let text = f.next().unwrap_or("");
    Some(Entry { stream, log: if full { Cow::Owned(format!("{text}\n")) } else { Cow::Borrowed(text) }, time: Cow::Borrowed(time) })
}

#[cfg(test)]
fn parse_line(line: &str) -> Option<(u8, String, DateTime<Utc>)> {
    let e = parse_entry(line.as_bytes())?;
    Some((e.stream, e.log.into_owned(), crate::util::parse_rfc3339(&e.time)?))
}

/// Lines on their way to the client, gathered into chunks of one stream (the API frames
/// them line by line again): a channel message per 64 KiB rather than per line.
struct Batch<'a> {
    tx: &'a mpsc::Sender<LogLine>,
    stream: u8,
    buf: Vec<u8>,
}

const BATCH: usize = 64 << 10;

impl<'a> Batch<'a> {
    fn new(tx: &'a mpsc::Sender<LogLine>) -> Self {
        // Empty until a line comes: `follow` makes one per poll of an idle file.
        Batch { tx, stream: 1, buf: Vec::new() }
    }

    /// False when the client is gone.
    fn push(&mut self, stream: u8, time: Option<&DateTime<Utc>>, log: &[u8]) -> bool {
        if stream != self.stream && !self.flush() {
            return false;
        }
        self.stream = stream;
        if let Some(t) = time {
            self.buf.extend_from_slice(t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true).as_bytes());
            self.buf.push(b' ');
        }
        self.buf.extend_from_slice(log);
        self.buf.len() < BATCH || self.flush()
    }

    fn flush(&mut self) -> bool {
        if self.buf.is_empty() {
            return true;
        }
        let data = Bytes::from(std::mem::take(&mut self.buf));
        self.tx.blocking_send(LogLine { stream: self.stream, data }).is_ok()
    }
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
    /// Whether `e` is shown, and then its time if the client asked for times (or since
    /// and until need it). Only then is the time parsed.
    fn select(&self, e: &Entry) -> Option<Option<DateTime<Utc>>> {
        if !(e.stream == 1 && self.stdout || e.stream == 2 && self.stderr) {
            return None;
        }
        if self.since.is_none() && self.until.is_none() && !self.timestamps {
            return Some(None);
        }
        let t = crate::util::parse_rfc3339(&e.time)?;
        self.keep(e.stream, &t).then_some(self.timestamps.then_some(t))
    }

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
        let (tx, rx) = mpsc::channel(64);
        let watch = c.watch();
        tokio::task::spawn_blocking(move || {
            let files = log_files(&path);
            let mut out = Batch::new(&tx);
            // With a tail, past lines are kept until the end is known; without, they go
            // as they are read.
            let mut past: std::collections::VecDeque<(u8, Option<DateTime<Utc>>, Vec<u8>)> = std::collections::VecDeque::new();
            let mut offset = 0u64;
            let mut line = Vec::with_capacity(4096);
            for (i, f) in files.iter().enumerate() {
                let Ok(file) = std::fs::File::open(f) else { continue };
                let mut r = BufReader::with_capacity(256 << 10, file);
                let mut pos = 0u64;
                loop {
                    line.clear();
                    match r.read_until(b'\n', &mut line) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => {
                            if line.last() != Some(&b'\n') {
                                // A record being written: the follow loop takes it from here.
                                break;
                            }
                            pos += n as u64;
                        }
                    }
                    let Some(e) = parse_entry(&line[..line.len() - 1]) else { continue };
                    let Some(t) = opts.select(&e) else { continue };
                    match opts.tail {
                        None => {
                            if !out.push(e.stream, t.as_ref(), e.log.as_bytes()) {
                                return;
                            }
                        }
                        Some(0) => {}
                        Some(n) => {
                            if past.len() == n {
                                past.pop_front();
                            }
                            past.push_back((e.stream, t, e.log.into_owned().into_bytes()));
                        }
                    }
                }
                if i == files.len() - 1 {
                    offset = pos;
                }
            }
            for (s, t, log) in past {
                if !out.push(s, t.as_ref(), &log) {
                    return;
                }
            }
            if !out.flush() || !opts.follow {
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
                match read_new(&mut BufReader::with_capacity(256 << 10, &*f), opts, tx) {
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
fn read_new(r: &mut impl BufRead, opts: &LogOptions, tx: &mpsc::Sender<LogLine>) -> Option<u64> {
    let mut consumed = 0u64;
    let mut out = Batch::new(tx);
    let mut line = Vec::with_capacity(4096);
    loop {
        line.clear();
        match r.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if line.last() != Some(&b'\n') {
                    break;
                }
                consumed += n as u64;
                if let Some(e) = parse_entry(&line[..line.len() - 1])
                    && let Some(t) = opts.select(&e)
                    && !out.push(e.stream, t.as_ref(), e.log.as_bytes())
                {
                    return None;
                }
            }
        }
    }
    out.flush().then_some(consumed)
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
