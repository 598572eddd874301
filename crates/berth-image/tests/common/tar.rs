//! Builds tar archives byte by byte, including the malformed and malicious ones a
//! well-behaved tar writer refuses to produce (`..` names, absolute paths, links out
//! of the tree).

#![allow(dead_code)]

use std::io::Write;

/// One entry of a crafted tar.
#[derive(Debug, Clone)]
pub struct Entry {
    pub name: Vec<u8>,
    pub kind: u8,
    pub link: Vec<u8>,
    pub data: Vec<u8>,
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub mtime: u64,
    pub dev: (u32, u32),
    pub xattrs: Vec<(String, Vec<u8>)>,
}

impl Entry {
    fn new(name: &str, kind: u8, mode: u32) -> Entry {
        Entry {
            name: name.as_bytes().to_vec(),
            kind,
            link: Vec::new(),
            data: Vec::new(),
            mode,
            uid: 0,
            gid: 0,
            mtime: 1_700_000_000,
            dev: (0, 0),
            xattrs: Vec::new(),
        }
    }

    pub fn file(name: &str, data: &[u8]) -> Entry {
        let mut e = Entry::new(name, b'0', 0o644);
        e.data = data.to_vec();
        e
    }

    pub fn dir(name: &str) -> Entry {
        Entry::new(name, b'5', 0o755)
    }

    pub fn symlink(name: &str, target: &str) -> Entry {
        let mut e = Entry::new(name, b'2', 0o777);
        e.link = target.as_bytes().to_vec();
        e
    }

    pub fn hardlink(name: &str, target: &str) -> Entry {
        let mut e = Entry::new(name, b'1', 0o644);
        e.link = target.as_bytes().to_vec();
        e
    }

    pub fn fifo(name: &str) -> Entry {
        Entry::new(name, b'6', 0o644)
    }

    pub fn chardev(name: &str, major: u32, minor: u32) -> Entry {
        let mut e = Entry::new(name, b'3', 0o666);
        e.dev = (major, minor);
        e
    }

    pub fn mode(mut self, mode: u32) -> Entry {
        self.mode = mode;
        self
    }

    pub fn owner(mut self, uid: u64, gid: u64) -> Entry {
        self.uid = uid;
        self.gid = gid;
        self
    }

    pub fn mtime(mut self, t: u64) -> Entry {
        self.mtime = t;
        self
    }

    pub fn xattr(mut self, k: &str, v: &[u8]) -> Entry {
        self.xattrs.push((k.to_string(), v.to_vec()));
        self
    }
}

fn set_field(buf: &mut [u8], v: &[u8]) {
    let n = v.len().min(buf.len());
    buf[..n].copy_from_slice(&v[..n]);
}

/// Appends one entry to `b` without any validation of its name or link.
pub fn append_raw<W: Write>(b: &mut tar::Builder<W>, e: &Entry) {
    if !e.xattrs.is_empty() {
        let recs: Vec<(String, &[u8])> = e
            .xattrs
            .iter()
            .map(|(k, v)| (format!("SCHILY.xattr.{k}"), v.as_slice()))
            .collect();
        b.append_pax_extensions(recs.iter().map(|(k, v)| (k.as_str(), *v)))
            .unwrap();
    }
    let mut h = tar::Header::new_ustar();
    h.set_entry_type(tar::EntryType::new(e.kind));
    h.set_mode(e.mode);
    h.set_uid(e.uid);
    h.set_gid(e.gid);
    h.set_mtime(e.mtime);
    h.set_size(e.data.len() as u64);
    if e.kind == b'3' || e.kind == b'4' {
        h.set_device_major(e.dev.0).unwrap();
        h.set_device_minor(e.dev.1).unwrap();
    }
    assert!(e.name.len() <= 100, "crafted names must fit the ustar name field");
    set_field(&mut h.as_old_mut().name, &e.name);
    set_field(&mut h.as_old_mut().linkname, &e.link);
    h.set_cksum();
    b.append(&h, &e.data[..]).unwrap();
}

/// A complete tar with `entries` and the two end-of-archive blocks.
pub fn build(entries: &[Entry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        append_raw(&mut b, e);
    }
    b.into_inner().unwrap()
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

pub fn zstd(data: &[u8]) -> Vec<u8> {
    zstd::stream::encode_all(data, 3).unwrap()
}
