//! Reading a container's json-file log (and its rotated files) for `docker logs`:
//! stdout/stderr selection, since/until, tail, timestamps, follow across rotations.

use std::borrow::Cow;
use std::collections::VecDeque;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth_types::stdcopy::{self, Stream};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use berth_shim::logdriver::local;
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
    /// Frame every record for a multiplexed stream (stdcopy) when the container has no
    /// TTY, as dockerd does: a frame per record. Off, the text comes as it is (a
    /// websocket attach).
    pub stdcopy: bool,
    /// With `stdcopy`: consecutive records of one stream share a frame. Only for
    /// clients that read frames as a byte stream (the docker CLI's stdcopy, which
    /// writes each frame with a system call of its own); docker-py's
    /// `logs(stream=True)` yields one item per frame, so it gets dockerd's framing.
    pub merge_frames: bool,
}

/// A piece of the stream on its way to the client: stdcopy frames (of either stream)
/// when the reader asked for them and the container has no TTY, else text of `stream`.
#[derive(Debug, Clone)]
pub struct LogLine {
    /// 1 stdout, 2 stderr (of unframed text).
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
    /// The text, less the newline that ended it when `newline`: so that the common
    /// record is shown without a copy.
    log: Cow<'a, [u8]>,
    newline: bool,
    time: Cow<'a, str>,
}

/// A json-file record, or a line of a CRI-format log (containers made through the CRI):
/// `<time> <stream> <F|P> <text>`, where a full record ends its line and a partial one
/// continues in the next.
fn parse_entry(line: &[u8]) -> Option<Entry<'_>> {
    if line.first() == Some(&b'{') {
        if let Some(e) = parse_plain_record(line) {
            return Some(e);
        }
        let r: Record = serde_json::from_slice(line).ok()?;
        let log = match r.log {
            Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
            Cow::Owned(s) => Cow::Owned(s.into_bytes()),
        };
        return Some(Entry { stream: if r.stream == "stderr" { 2 } else { 1 }, log, newline: false, time: r.time });
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
    Some(Entry { stream, log: Cow::Borrowed(text.as_bytes()), newline: full, time: Cow::Borrowed(time) })
}

/// The record as the shim writes it (`berth_shim::log`), read without a JSON parser
/// when its text has no escape but the newline that ends it — nearly every record, and
/// a third of the cost of `logs` when it went through serde_json. Anything else (other
/// escapes, other keys or order) is left to serde_json.
fn parse_plain_record(line: &[u8]) -> Option<Entry<'_>> {
    let rest = line.strip_prefix(br#"{"log":""#)?;
    let end = memchr::memchr2(b'"', b'\\', rest)?;
    let text = &rest[..end];
    let (newline, rest) = match rest[end] {
        b'"' => (false, &rest[end + 1..]),
        _ => (true, rest[end..].strip_prefix(br#"\n""#)?),
    };
    let (stream, rest) = match rest.strip_prefix(br#","stream":"stdout","time":""#) {
        Some(r) => (1, r),
        None => (2, rest.strip_prefix(br#","stream":"stderr","time":""#)?),
    };
    let time = std::str::from_utf8(rest.strip_suffix(br#""}"#)?).ok()?;
    // The text is shown as it is: the shim wrote it as valid UTF-8 (serde_json checks
    // records written by anything else).
    Some(Entry { stream, log: Cow::Borrowed(text), newline, time: Cow::Borrowed(time) })
}

#[cfg(test)]
fn parse_line(line: &str) -> Option<(u8, String, DateTime<Utc>)> {
    let e = parse_entry(line.as_bytes())?;
    let mut log = String::from_utf8(e.log.into_owned()).ok()?;
    if e.newline {
        log.push('\n');
    }
    Some((e.stream, log, crate::util::parse_rfc3339(&e.time)?))
}

/// Feeds each complete line of `r` (less its newline) to `f`, read in large blocks into
/// `buf` (kept by the caller across polls); an unfinished last line (a record being
/// written) is left. Returns the bytes of complete lines, or None when `f` said stop.
fn scan_lines(r: &mut impl Read, buf: &mut Vec<u8>, mut f: impl FnMut(&[u8]) -> bool) -> Option<u64> {
    if buf.len() < SCAN_BLOCK {
        buf.resize(SCAN_BLOCK, 0);
    }
    let (mut filled, mut consumed) = (0usize, 0u64);
    loop {
        if filled == buf.len() {
            // A line longer than the buffer.
            buf.resize(buf.len() * 2, 0);
        }
        match r.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
        let mut start = 0;
        while let Some(i) = memchr::memchr(b'\n', &buf[start..filled]) {
            if !f(&buf[start..start + i]) {
                return None;
            }
            start += i + 1;
        }
        consumed += start as u64;
        buf.copy_within(start..filled, 0);
        filled -= start;
    }
    Some(consumed)
}

const SCAN_BLOCK: usize = 256 << 10;

/// Records on their way to the client, gathered into chunks: a channel message per
/// 64 KiB rather than per line. Framed (stdcopy) chunks hold both streams; unframed
/// ones hold one.
struct Batch<'a> {
    tx: &'a mpsc::Sender<LogLine>,
    stream: u8,
    buf: Vec<u8>,
    framed: bool,
    merge: bool,
    /// Where the header of the frame being added to is.
    open_frame: Option<usize>,
}

const BATCH: usize = 64 << 10;

impl<'a> Batch<'a> {
    fn new(tx: &'a mpsc::Sender<LogLine>, framed: bool, merge: bool) -> Self {
        // Empty until a line comes: `follow` makes one per poll of an idle file.
        Batch { tx, stream: 1, buf: Vec::new(), framed, merge, open_frame: None }
    }

    /// False when the client is gone.
    fn push(&mut self, stream: u8, time: Option<&DateTime<Utc>>, log: &[u8], newline: bool) -> bool {
        if stream != self.stream {
            if !self.framed && !self.flush() {
                return false;
            }
            self.open_frame = None;
        }
        self.stream = stream;
        // (A frame is open only when framing with merges.)
        let frame = match self.open_frame {
            Some(at) => at,
            None => {
                let at = self.buf.len();
                if self.framed {
                    self.buf.extend_from_slice(&[0; stdcopy::HEADER_LEN]);
                }
                at
            }
        };
        if let Some(t) = time {
            self.buf.extend_from_slice(t.to_rfc3339_opts(chrono::SecondsFormat::Nanos, true).as_bytes());
            self.buf.push(b' ');
        }
        self.buf.extend_from_slice(log);
        if newline {
            self.buf.push(b'\n');
        }
        if self.framed {
            let s = if stream == 2 { Stream::Stderr } else { Stream::Stdout };
            let header = stdcopy::header(s, self.buf.len() - frame - stdcopy::HEADER_LEN);
            self.buf[frame..frame + stdcopy::HEADER_LEN].copy_from_slice(&header);
            self.open_frame = self.merge.then_some(frame);
        }
        self.buf.len() < BATCH || self.flush()
    }

    /// A line of a log file, if `opts` shows it. False when the client is gone.
    fn push_line(&mut self, opts: &LogOptions, line: &[u8]) -> bool {
        match parse_entry(line).and_then(|e| opts.select(&e).map(|t| (e, t))) {
            Some((e, t)) => self.push(e.stream, t.as_ref(), &e.log, e.newline),
            None => true,
        }
    }

    fn flush(&mut self) -> bool {
        self.open_frame = None;
        if self.buf.is_empty() {
            return true;
        }
        let data = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(BATCH + (BATCH >> 2))));
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
}

impl Engine {
    /// Starts reading; returns whether the container has a TTY (raw stream) and the lines.
    pub fn logs(self: &Arc<Self>, key: &str, opts: LogOptions) -> Result<(bool, mpsc::Receiver<LogLine>)> {
        let c = self.container(key)?;
        let rec = c.snapshot();
        let tty = rec.config.tty;
        let framed = opts.stdcopy && !tty;
        let path = match crate::logconfig::readable(&rec, &self.cfg.data_root)? {
            crate::logconfig::Readable::JsonFile(p) => p,
            crate::logconfig::Readable::Local(p) => {
                let (tx, rx) = mpsc::channel(64);
                let watch = c.watch();
                tokio::task::spawn_blocking(move || local_logs(&p, &opts, Batch::new(&tx, framed, opts.merge_frames), watch));
                return Ok((tty, rx));
            }
        };
        let (tx, rx) = mpsc::channel(64);
        let watch = c.watch();
        tokio::task::spawn_blocking(move || {
            let files = log_files(&path);
            let mut out = Batch::new(&tx, framed, opts.merge_frames);
            // With a tail, past lines are kept until the end is known; without, they go
            // as they are read.
            let mut past: VecDeque<(u8, Option<DateTime<Utc>>, Vec<u8>)> = VecDeque::new();
            let mut offset = 0u64;
            let mut buf = Vec::new();
            for (i, f) in files.iter().enumerate() {
                let Ok(mut file) = std::fs::File::open(f) else { continue };
                let read = scan_lines(&mut file, &mut buf, |line| {
                    let n = match opts.tail {
                        None => return out.push_line(&opts, line),
                        Some(0) => return true,
                        Some(n) => n,
                    };
                    let Some(e) = parse_entry(line) else { return true };
                    let Some(t) = opts.select(&e) else { return true };
                    if past.len() == n {
                        past.pop_front();
                    }
                    let mut log = e.log.into_owned();
                    if e.newline {
                        log.push(b'\n');
                    }
                    past.push_back((e.stream, t, log));
                    true
                });
                let Some(n) = read else { return };
                if i == files.len() - 1 {
                    offset = n;
                }
            }
            for (s, t, log) in past {
                if !out.push(s, t.as_ref(), &log, false) {
                    return;
                }
            }
            if !out.flush() || !opts.follow {
                return;
            }
            follow(&path, offset, &opts, out, buf, watch);
        });
        Ok((tty, rx))
    }
}

/// Tails the live file from `offset` until the container stops (or `until` passes, or
/// the client goes). The open file is read to its end before anything else: after a
/// rotation (renamed to `<path>.1`) and after the container is removed (unlinked) it
/// still holds the last lines — docker-py removes the container before it reads the
/// stream it opened. Then the new file at `path`, if there is one, takes over.
fn follow(path: &Path, mut offset: u64, opts: &LogOptions, mut out: Batch, mut buf: Vec<u8>, watch: tokio::sync::watch::Receiver<crate::container::WaitState>) {
    use std::os::unix::fs::MetadataExt;
    let ino_of = |f: &std::fs::File| f.metadata().map(|m| m.ino()).unwrap_or(0);
    let mut file = std::fs::File::open(path).ok();
    let mut ino = file.as_ref().map(ino_of).unwrap_or(0);
    let mut stopped_reads = 0;
    loop {
        if out.tx.is_closed() {
            return;
        }
        if let Some(u) = opts.until
            && Utc::now() > u {
                return;
            }
        let mut got = false;
        if let Some(f) = file.as_mut()
            && f.seek(SeekFrom::Start(offset)).is_ok() {
                let read = scan_lines(f, &mut buf, |line| out.push_line(opts, line));
                match read {
                    Some(n) if out.flush() => {
                        got = n > 0;
                        offset += n;
                    }
                    _ => return,
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

/// A `local` entry as a log line: its stream, text (the newline back on whole lines)
/// and time.
fn local_line(e: local::Entry) -> (u8, Vec<u8>, DateTime<Utc>) {
    let mut text = e.line;
    if !e.partial {
        text.push(b'\n');
    }
    (if e.source == "stderr" { 2 } else { 1 }, text, DateTime::from_timestamp_nanos(e.time_nano))
}

/// `logs` of a `local` log (or a dual-logging cache): every file, oldest first
/// (gzipped ones through gunzip), `tail` applied, then the live file followed.
fn local_logs(path: &Path, opts: &LogOptions, mut out: Batch, watch: tokio::sync::watch::Receiver<crate::container::WaitState>) {
    let files = local::files(path);
    let mut past: VecDeque<(u8, Vec<u8>, DateTime<Utc>)> = VecDeque::new();
    let mut offset = 0;
    let mut keep = |e: local::Entry| {
        let (s, log, t) = local_line(e);
        if opts.keep(s, &t) {
            past.push_back((s, log, t));
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
    for (s, log, t) in past {
        if !out.push(s, opts.timestamps.then_some(&t), &log, false) {
            return;
        }
    }
    if out.flush() && opts.follow {
        follow_local(path, offset, opts, out, watch);
    }
}

/// As [`follow`], for the `local` format: whole entries only, a rotation followed by
/// the file's inode changing.
fn follow_local(path: &Path, mut offset: u64, opts: &LogOptions, mut out: Batch, watch: tokio::sync::watch::Receiver<crate::container::WaitState>) {
    use std::os::unix::fs::MetadataExt;
    let ino_of = |f: &std::fs::File| f.metadata().map(|m| m.ino()).unwrap_or(0);
    let mut file = std::fs::File::open(path).ok();
    let mut ino = file.as_ref().map(ino_of).unwrap_or(0);
    let mut stopped_reads = 0;
    loop {
        if out.tx.is_closed() || opts.until.is_some_and(|u| Utc::now() > u) {
            return;
        }
        let mut gone = false;
        let before = offset;
        if let Some(f) = file.as_mut() {
            offset = local::read_from(f, offset, |e| {
                let (s, log, t) = local_line(e);
                if opts.keep(s, &t) && !out.push(s, opts.timestamps.then_some(&t), &log, false) {
                    gone = true;
                    return false;
                }
                true
            })
            .unwrap_or(offset);
        }
        if gone || !out.flush() {
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

    /// The shortcut for the shim's records reads what serde_json reads, and leaves
    /// every other record to it.
    #[test]
    fn plain_records_read_as_serde_json_reads_them() {
        let t = "2024-01-02T03:04:05.000000006Z";
        for (log, stream) in [(r"hi\n", "stdout"), ("no newline", "stderr"), ("", "stdout"), (r"tab\there\n", "stdout"), (r#"q\"uote"#, "stderr"), (r"back\\n", "stdout"), (r"é ü\n", "stderr")] {
            let line = format!(r#"{{"log":"{log}","stream":"{stream}","time":"{t}"}}"#);
            let want: serde_json::Value = serde_json::from_str(&line).unwrap();
            let (s, got, time) = parse_line(&line).unwrap();
            assert_eq!(got, want["log"].as_str().unwrap(), "{line}");
            assert_eq!(s, if stream == "stderr" { 2 } else { 1 });
            assert_eq!(time.timestamp_subsec_nanos(), 6);
        }
        let plain = br#"{"log":"x\n","stream":"stdout","time":"T"}"#;
        assert!(parse_plain_record(plain).is_some_and(|e| e.newline && &*e.log == b"x"));
        // Escapes other than the last newline, other keys, other order: serde_json's.
        for other in [&br#"{"log":"a\nb\n","stream":"stdout","time":"T"}"#[..], br#"{"log":"a\n","stream":"stdout","attrs":{},"time":"T"}"#, br#"{"stream":"stdout","log":"a","time":"T"}"#, br#"{"log":"a","stream":"other","time":"T"}"#] {
            assert!(parse_plain_record(other).is_none(), "{}", String::from_utf8_lossy(other));
        }
    }

    fn frames(wire: &[u8]) -> Vec<(u8, String)> {
        let mut d = stdcopy::Decoder::new();
        d.push(wire);
        let mut v = vec![];
        while let Some((s, p)) = d.next_frame().unwrap() {
            v.push((s as u8, String::from_utf8(p).unwrap()));
        }
        assert_eq!(d.pending(), 0);
        v
    }

    fn batch(framed: bool, merge: bool, records: &[(u8, &str, bool)]) -> Vec<LogLine> {
        let (tx, mut rx) = mpsc::channel(16);
        let mut b = Batch::new(&tx, framed, merge);
        for (s, log, nl) in records {
            assert!(b.push(*s, None, log.as_bytes(), *nl));
        }
        assert!(b.flush());
        drop(b);
        drop(tx);
        let mut v = vec![];
        while let Ok(l) = rx.try_recv() {
            v.push(l);
        }
        v
    }

    #[test]
    fn batches_frame_per_record_or_merged_per_stream() {
        let recs = [(1, "a", true), (1, "b", false), (2, "err", true), (1, "c", true)];
        let per_record = batch(true, false, &recs);
        assert_eq!(per_record.len(), 1, "framed chunks hold both streams");
        assert_eq!(frames(&per_record[0].data), vec![(1, "a\n".into()), (1, "b".into()), (2, "err\n".into()), (1, "c\n".into())]);
        let merged = batch(true, true, &recs);
        assert_eq!(frames(&merged[0].data), vec![(1, "a\nb".into()), (2, "err\n".into()), (1, "c\n".into())]);
        let raw = batch(false, false, &recs);
        let got: Vec<(u8, &[u8])> = raw.iter().map(|l| (l.stream, &l.data[..])).collect();
        assert_eq!(got, vec![(1, &b"a\nb"[..]), (2, b"err\n"), (1, b"c\n")]);
    }

    #[test]
    fn lines_are_scanned_across_reads_and_an_unfinished_one_is_left() {
        // A reader that hands out 3 bytes at a time, and a buffer smaller than a line.
        struct Slow<'a>(&'a [u8]);
        impl Read for Slow<'_> {
            fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
                let n = self.0.len().min(out.len()).min(3);
                out[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let long = "x".repeat(SCAN_BLOCK + 10);
        let text = format!("one\n{long}\ntwo\npart");
        let mut got = vec![];
        let mut buf = Vec::new();
        let n = scan_lines(&mut Slow(text.as_bytes()), &mut buf, |l| {
            got.push(String::from_utf8(l.to_vec()).unwrap());
            true
        });
        assert_eq!(n, Some((text.len() - 4) as u64));
        assert_eq!(got, vec!["one".to_string(), long, "two".into()]);
        assert_eq!(scan_lines(&mut "a\nb\n".as_bytes(), &mut buf, |_| false), None);
    }
}
