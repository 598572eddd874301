//! Docker's `local` log format: each message a protobuf `LogEntry` (source, time_nano,
//! line, partial) between two big-endian 32-bit copies of its length; the file rotated
//! at `max-size` (default 20 MB), `max-file` files kept (default 5, the live one
//! included), rotated ones gzipped (`compress`, default true) by a helper thread so
//! that the container's output never waits for it. Written by the shim; read back by
//! the daemon for `logs` (this file holds both sides of the format). Also the
//! dual-logging cache of the drivers that cannot be read back.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use super::{Message, Sink};

/// A message may not be larger than this (Docker's reader refuses larger ones too).
const MAX_ENTRY: usize = 1 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Bytes; 0 = never rotate.
    pub max_size: u64,
    pub max_files: u32,
    pub compress: bool,
}

impl Rotation {
    /// `max-size`, `max-file`, `compress` with `prefix` (`cache-` for the cache).
    pub fn from_opts(opts: &BTreeMap<String, String>, prefix: &str) -> Result<Rotation, String> {
        let get = |k: &str| opts.get(&format!("{prefix}{k}"));
        let max_size = match get("max-size") {
            Some(s) if s == "-1" => 0,
            Some(s) => parse_size(s).ok_or_else(|| format!("invalid {prefix}max-size {s:?}"))?,
            None => 20 * 1000 * 1000,
        };
        let max_files = match get("max-file") {
            Some(s) => s.parse::<u32>().ok().filter(|n| *n >= 1).ok_or_else(|| format!("invalid {prefix}max-file {s:?}: must be a number greater than 0"))?,
            None => 5,
        };
        let compress = match get("compress") {
            Some(s) => super::parse_bool(s).ok_or_else(|| format!("invalid {prefix}compress {s:?}"))?,
            None => true,
        };
        Ok(Rotation { max_size, max_files, compress })
    }
}

/// Docker's log option sizes (go-units' RAMInBytes): 10m, 1g, 512k, 100 — 1024-based.
fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim().to_ascii_lowercase();
    let s = s.strip_suffix('b').unwrap_or(&s);
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1u64 << 10),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    let v: f64 = num.trim().parse().ok()?;
    (v >= 0.0).then_some((v * mult as f64) as u64)
}

// ------------------------------------------------------------------ protobuf

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn bytes_field(out: &mut Vec<u8>, field: u64, b: &[u8]) {
    varint(out, field << 3 | 2);
    varint(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// One message as a framed entry: length, `LogEntry`, length.
pub fn encode(source: &str, time_nano: i64, line: &[u8], partial: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.len() + 40);
    encode_into(&mut out, source, time_nano, line, partial);
    out
}

/// [`encode`], appended to `out`: the entry is written in place and its length put
/// before it afterwards (no buffer per message).
pub fn encode_into(out: &mut Vec<u8>, source: &str, time_nano: i64, line: &[u8], partial: bool) {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    bytes_field(out, 1, source.as_bytes());
    varint(out, 2 << 3);
    varint(out, time_nano as u64);
    bytes_field(out, 3, line);
    if partial {
        varint(out, 4 << 3);
        varint(out, 1);
    }
    let n = ((out.len() - at - 4) as u32).to_be_bytes();
    out[at..at + 4].copy_from_slice(&n);
    out.extend_from_slice(&n);
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Entry {
    pub source: String,
    pub time_nano: i64,
    pub line: Vec<u8>,
    pub partial: bool,
}

fn read_varint(b: &[u8], i: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*i)?;
        *i += 1;
        v |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Decodes a `LogEntry`, skipping fields it does not know.
pub fn decode(b: &[u8]) -> Option<Entry> {
    let mut e = Entry::default();
    let mut i = 0;
    while i < b.len() {
        let key = read_varint(b, &mut i)?;
        match key & 7 {
            0 => {
                let v = read_varint(b, &mut i)?;
                match key >> 3 {
                    2 => e.time_nano = v as i64,
                    4 => e.partial = v != 0,
                    _ => {}
                }
            }
            2 => {
                let n = read_varint(b, &mut i)? as usize;
                let data = b.get(i..i.checked_add(n)?)?;
                i += n;
                match key >> 3 {
                    1 => e.source = String::from_utf8_lossy(data).into_owned(),
                    3 => e.line = data.to_vec(),
                    _ => {}
                }
            }
            1 => i += 8,
            5 => i += 4,
            _ => return None,
        }
    }
    Some(e)
}

/// Reads whole entries from `r`; stops at the end or at an incomplete entry. Returns
/// the entries and how many bytes they took.
pub fn read_entries(r: &mut impl Read, mut each: impl FnMut(Entry) -> bool) -> io::Result<u64> {
    let mut used = 0u64;
    loop {
        let mut len = [0u8; 4];
        match read_full(r, &mut len)? {
            0 => return Ok(used),
            4 => {}
            _ => return Ok(used),
        }
        let n = u32::from_be_bytes(len) as usize;
        if n > MAX_ENTRY {
            return Err(io::Error::new(io::ErrorKind::InvalidData, format!("log entry of {n} bytes")));
        }
        let mut body = vec![0u8; n + 4];
        if read_full(r, &mut body)? < n + 4 {
            return Ok(used);
        }
        if body[n..] != len {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "log entry lengths do not match"));
        }
        let e = decode(&body[..n]).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad log entry"))?;
        used += n as u64 + 8;
        if !each(e) {
            return Ok(used);
        }
    }
}

fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// `path.N` or `path.N.gz`, whichever is there (gzipped ones are whole).
fn rotated(path: &Path, n: u32) -> Option<PathBuf> {
    let gz = suffixed(path, &format!(".{n}.gz"));
    if gz.exists() {
        return Some(gz);
    }
    let plain = suffixed(path, &format!(".{n}"));
    plain.exists().then_some(plain)
}

fn suffixed(path: &Path, suffix: &str) -> PathBuf {
    let mut p = path.as_os_str().to_owned();
    p.push(suffix);
    PathBuf::from(p)
}

/// The files of a log, oldest first, the live one last.
pub fn files(path: &Path) -> Vec<PathBuf> {
    let mut v = Vec::new();
    for n in (1..1000).rev() {
        if let Some(p) = rotated(path, n) {
            v.push(p);
        }
    }
    v.push(path.to_path_buf());
    v
}

/// A reader of one file (gunzipping `.gz` ones).
pub fn open_reader(p: &Path) -> io::Result<Box<dyn Read>> {
    let f = BufReader::new(File::open(p)?);
    if p.extension().is_some_and(|e| e == "gz") {
        Ok(Box::new(flate2::read::GzDecoder::new(f)))
    } else {
        Ok(Box::new(f))
    }
}

/// Entries of the live file from `offset`, and the offset after the last whole one.
pub fn read_from(f: &mut File, offset: u64, each: impl FnMut(Entry) -> bool) -> io::Result<u64> {
    f.seek(SeekFrom::Start(offset))?;
    let used = read_entries(&mut BufReader::new(&*f), each)?;
    Ok(offset + used)
}

// ------------------------------------------------------------------ writer

pub struct LocalLog {
    path: PathBuf,
    file: File,
    /// Bytes in the current file, counting what `out` holds.
    size: u64,
    /// Entries not yet written: those of one read from the container go out in one
    /// system call ([`Sink::flush`]), not one per line.
    out: Vec<u8>,
    rot: Rotation,
    /// The thread gzipping the last rotated file.
    compressing: Option<std::thread::JoinHandle<()>>,
}

impl LocalLog {
    pub fn open(path: &Path, rot: Rotation) -> io::Result<LocalLog> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(LocalLog { path: path.to_path_buf(), file, size, out: Vec::new(), rot, compressing: None })
    }

    fn rotate(&mut self) -> io::Result<()> {
        if self.rot.max_files <= 1 {
            self.file.set_len(0)?;
            self.size = 0;
            return Ok(());
        }
        // One rotation at a time: the previous file must have its final name first.
        if let Some(t) = self.compressing.take() {
            let _ = t.join();
        }
        let keep = self.rot.max_files;
        for ext in ["", ".gz"] {
            let _ = std::fs::remove_file(suffixed(&self.path, &format!(".{}{ext}", keep - 1)));
        }
        for n in (1..keep - 1).rev() {
            if let Some(from) = rotated(&self.path, n) {
                let gz = from.extension().is_some_and(|e| e == "gz");
                let _ = std::fs::rename(&from, suffixed(&self.path, &format!(".{}{}", n + 1, if gz { ".gz" } else { "" })));
            }
        }
        let first = suffixed(&self.path, ".1");
        std::fs::rename(&self.path, &first)?;
        self.file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        self.size = 0;
        if self.rot.compress {
            self.compressing = Some(std::thread::spawn(move || {
                let _ = gzip_in_place(&first);
            }));
        }
        Ok(())
    }
}

/// `f` → `f.gz` (through a temporary name, so readers never see half a file).
fn gzip_in_place(f: &Path) -> io::Result<()> {
    let tmp = suffixed(f, ".gz.tmp");
    let mut enc = flate2::write::GzEncoder::new(File::create(&tmp)?, flate2::Compression::default());
    io::copy(&mut File::open(f)?, &mut enc)?;
    enc.finish()?.sync_all()?;
    std::fs::rename(&tmp, suffixed(f, ".gz"))?;
    std::fs::remove_file(f)
}

impl LocalLog {
    fn write_out(&mut self) -> io::Result<()> {
        crate::log::write_buffered(&mut self.file, &mut self.out)
    }
}

impl Sink for LocalLog {
    fn log(&mut self, m: &Message) -> io::Result<()> {
        let nanos = m.time.duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as i64).unwrap_or(0);
        let mark = self.out.len();
        encode_into(&mut self.out, m.source(), nanos, m.line, m.partial);
        let len = (self.out.len() - mark) as u64;
        if self.rot.max_size > 0 && self.size > 0 && self.size + len > self.rot.max_size {
            // The entry goes to a fresh file: what came before it to the old one.
            let entry = self.out.split_off(mark);
            self.write_out()?;
            self.rotate()?;
            self.out = entry;
        }
        self.size += len;
        if self.out.len() >= 256 << 10 {
            self.write_out()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_out()
    }
}

impl Drop for LocalLog {
    fn drop(&mut self) {
        let _ = self.write_out();
        if let Some(t) = self.compressing.take() {
            let _ = t.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn all(path: &Path) -> Vec<Entry> {
        let mut out = Vec::new();
        for f in files(path) {
            if let Ok(mut r) = open_reader(&f) {
                read_entries(&mut r, |e| {
                    out.push(e);
                    true
                })
                .unwrap();
            }
        }
        out
    }

    #[test]
    fn entries_round_trip_and_match_dockers_bytes() {
        // LogEntry{source:"stdout", time_nano:1, line:"hi"} as Go's protobuf writes it.
        let e = encode("stdout", 1, b"hi", false);
        assert_eq!(e, [0, 0, 0, 14, 0x0a, 6, b's', b't', b'd', b'o', b'u', b't', 0x10, 1, 0x1a, 2, b'h', b'i', 0, 0, 0, 14]);
        let d = decode(&e[4..e.len() - 4]).unwrap();
        assert_eq!(d, Entry { source: "stdout".into(), time_nano: 1, line: b"hi".to_vec(), partial: false });
        let p = encode("stderr", 1_700_000_000_123_456_789, &[0xff, 0], true);
        let d = decode(&p[4..p.len() - 4]).unwrap();
        assert!(d.partial && d.time_nano == 1_700_000_000_123_456_789 && d.line == [0xff, 0]);
    }

    #[test]
    fn rotates_compresses_and_reads_back_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("local-logs/container.log");
        let rot = Rotation { max_size: 300, max_files: 3, compress: true };
        let mut log = LocalLog::open(&p, rot).unwrap();
        for i in 0..40 {
            let line = format!("line {i}");
            log.log(&Message { stream: 1 + (i % 2) as u8, line: line.as_bytes(), time: std::time::SystemTime::now(), partial: false }).unwrap();
        }
        drop(log);
        assert!(dir.path().join("local-logs/container.log.1.gz").exists());
        assert!(dir.path().join("local-logs/container.log.2.gz").exists());
        assert!(!dir.path().join("local-logs/container.log.3.gz").exists());
        let e = all(&p);
        assert_eq!(e.last().unwrap().line, b"line 39");
        let n: Vec<u32> = e.iter().map(|x| String::from_utf8_lossy(&x.line)[5..].parse().unwrap()).collect();
        assert!(n.windows(2).all(|w| w[1] == w[0] + 1), "in order, none lost within the kept files: {n:?}");
        assert_eq!(e[1].source, if n[1] % 2 == 0 { "stdout" } else { "stderr" });
        // An incomplete entry at the end is left for later.
        let mut f = OpenOptions::new().append(true).open(&p).unwrap();
        f.write_all(&encode("stdout", 5, b"half", false)[..10]).unwrap();
        let mut f = File::open(&p).unwrap();
        let mut count = 0;
        let end = read_from(&mut f, 0, |_| {
            count += 1;
            true
        })
        .unwrap();
        assert_eq!(end, std::fs::metadata(&p).unwrap().len() - 10);
        assert!(count >= 1);
    }

    #[test]
    fn rotation_options() {
        let o = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>();
        assert_eq!(Rotation::from_opts(&o(&[]), "").unwrap(), Rotation { max_size: 20_000_000, max_files: 5, compress: true });
        assert_eq!(Rotation::from_opts(&o(&[("cache-max-size", "1m"), ("cache-compress", "false")]), "cache-").unwrap(), Rotation { max_size: 1 << 20, max_files: 5, compress: false });
        assert!(Rotation::from_opts(&o(&[("max-size", "x")]), "").is_err());
    }
}
