//! Layer extraction in one streaming pass: detect and undo the compression, hash the
//! uncompressed stream (the DiffID), read the tar entries, check every path, translate
//! whiteouts, and create the entries through a [`LayerFs`] — all while counting bytes
//! against the unpack limit, so a decompression bomb stops early.

use std::collections::HashSet;
use std::io::{self, BufReader, Cursor, Read};
use std::path::{Path, PathBuf};

use crate::digest::{Digest, HashingReader};
use crate::error::{ImageError, Result};
use crate::layer::fsops::{EntryMeta, LayerFs, NodeKind};
use crate::layer::safepath;
use crate::layer::whiteout::{self, TarName};

/// How a layer blob is compressed, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
    Bzip2,
    Xz,
}

impl Compression {
    /// Detects the compression from the magic bytes at the start of a stream.
    pub fn detect(head: &[u8]) -> std::result::Result<Compression, ImageError> {
        if head.starts_with(&[0x1f, 0x8b]) {
            Ok(Compression::Gzip)
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Ok(Compression::Zstd)
        } else if head.starts_with(b"BZh") {
            Ok(Compression::Bzip2)
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Ok(Compression::Xz)
        } else {
            Ok(Compression::None)
        }
    }
}

/// How far a layer may expand. Docker has no limit; berth stops a layer that would
/// eat the disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackLimit {
    /// Largest uncompressed tar stream accepted for one layer, if any.
    pub max_layer_bytes: Option<u64>,
    /// Unpacking stops when the filesystem's free space drops below this.
    pub min_free_bytes: u64,
}

impl UnpackLimit {
    /// No size cap; keep `min_free_bytes` free.
    pub fn keep_free(min_free_bytes: u64) -> Self {
        UnpackLimit {
            max_layer_bytes: None,
            min_free_bytes,
        }
    }
}

/// What one unpack produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnpackStats {
    /// sha256 of the uncompressed tar stream; `None` when the stream was not
    /// compressed and hashing it was left to the caller (it is the blob digest).
    pub diff_id: Option<Digest>,
    /// Length of the uncompressed tar stream.
    pub tar_size: u64,
    pub compression: Compression,
}

/// How often (in uncompressed bytes) free disk space is checked.
const FREE_SPACE_CHECK_INTERVAL: u64 = 64 << 20;

/// Counts uncompressed bytes and enforces the [`UnpackLimit`].
struct LimitedReader<'p, R> {
    inner: R,
    count: u64,
    next_check: u64,
    limit: UnpackLimit,
    free_space: &'p dyn Fn() -> io::Result<u64>,
}

impl<R: Read> LimitedReader<'_, R> {
    fn check_free(&mut self) -> io::Result<()> {
        let free = (self.free_space)()?;
        if free < self.limit.min_free_bytes {
            return Err(ImageError::LimitExceeded(format!(
                "no space left on device: only {} MiB of disk left after unpacking {} MiB of this layer; berth keeps {} MiB free (--min-free-space; decompression bomb or full disk)",
                free >> 20,
                self.count >> 20,
                self.limit.min_free_bytes >> 20
            ))
            .into_io());
        }
        self.next_check = self.count + FREE_SPACE_CHECK_INTERVAL;
        Ok(())
    }
}

impl<R: Read> Read for LimitedReader<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.count >= self.next_check {
            self.check_free()?;
        }
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        if let Some(max) = self.limit.max_layer_bytes
            && self.count > max {
                return Err(ImageError::LimitExceeded(format!(
                    "layer expands to more than {max} bytes (the configured unpack limit); stopped"
                ))
                .into_io());
            }
        Ok(n)
    }
}

type Peeked<R> = io::Chain<Cursor<Vec<u8>>, R>;

/// The uncompressed view of a layer stream that can hand back its input, so the
/// caller's reader (often a tee into the content store) is read to its very end.
enum Decompressor<R: Read> {
    Plain(BufReader<Peeked<R>>),
    Gzip(Box<flate2::bufread::MultiGzDecoder<BufReader<Peeked<R>>>>),
    Zstd(Box<zstd::stream::read::Decoder<'static, BufReader<Peeked<R>>>>),
    Bzip2(Box<bzip2::bufread::MultiBzDecoder<BufReader<Peeked<R>>>>),
    Xz(Box<liblzma::bufread::XzDecoder<BufReader<Peeked<R>>>>),
}

impl<R: Read> Decompressor<R> {
    fn new(mut input: R) -> Result<(Compression, Decompressor<R>)> {
        let mut head = Vec::with_capacity(8);
        // Short reads happen on pipes: keep reading until 6 bytes or EOF.
        while head.len() < 6 {
            let mut b = [0u8; 6];
            let want = 6 - head.len();
            match input.read(&mut b[..want]) {
                Ok(0) => break,
                Ok(n) => head.extend_from_slice(&b[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(ImageError::from_io_chain("read layer", e)),
            }
        }
        let compression = Compression::detect(&head)?;
        let peeked = Cursor::new(head).chain(input);
        let d = match compression {
            Compression::None => Decompressor::Plain(BufReader::with_capacity(256 * 1024, peeked)),
            Compression::Gzip => Decompressor::Gzip(Box::new(
                flate2::bufread::MultiGzDecoder::new(BufReader::with_capacity(256 * 1024, peeked)),
            )),
            Compression::Zstd => Decompressor::Zstd(Box::new(
                zstd::stream::read::Decoder::with_buffer(BufReader::with_capacity(256 * 1024, peeked))
                    .map_err(|e| ImageError::from_io_chain("zstd", e))?,
            )),
            Compression::Bzip2 => Decompressor::Bzip2(Box::new(bzip2::bufread::MultiBzDecoder::new(
                BufReader::with_capacity(256 * 1024, peeked),
            ))),
            Compression::Xz => Decompressor::Xz(Box::new(liblzma::bufread::XzDecoder::new_multi_decoder(
                BufReader::with_capacity(256 * 1024, peeked),
            ))),
        };
        Ok((compression, d))
    }

    /// Reads whatever compressed input is left after the compressed stream ended.
    fn drain_input(self) -> io::Result<()> {
        match self {
            Decompressor::Plain(mut r) => io::copy(&mut r, &mut io::sink()).map(|_| ()),
            Decompressor::Gzip(d) => io::copy(&mut d.into_inner(), &mut io::sink()).map(|_| ()),
            Decompressor::Zstd(d) => io::copy(&mut d.finish(), &mut io::sink()).map(|_| ()),
            Decompressor::Bzip2(d) => io::copy(&mut d.into_inner(), &mut io::sink()).map(|_| ()),
            Decompressor::Xz(d) => io::copy(&mut d.into_inner(), &mut io::sink()).map(|_| ()),
        }
    }
}

impl<R: Read> Read for Decompressor<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decompressor::Plain(r) => r.read(buf),
            Decompressor::Gzip(r) => r.read(buf),
            Decompressor::Zstd(r) => r.read(buf),
            Decompressor::Bzip2(r) => r.read(buf),
            Decompressor::Xz(r) => r.read(buf),
        }
    }
}

/// Unpacks the (possibly compressed) layer tar `input` through `fs`. Reads `input` to
/// its end even after the tar's end-of-archive marker (the DiffID covers the padding;
/// a tee into the content store needs every byte). With `hash_plain` false, an
/// uncompressed stream is not hashed: its DiffID is the digest the caller's content
/// store computes anyway (hashing is a third of the CPU an unpack costs).
pub fn unpack_layer<R: Read>(
    input: R,
    fs: &mut dyn LayerFs,
    limit: &UnpackLimit,
    free_space: &dyn Fn() -> io::Result<u64>,
    hash_plain: bool,
) -> Result<UnpackStats> {
    unpack_tar(input, fs, limit, free_space, hash_plain, true)
}

/// Extracts a plain archive (a build context, an `ADD`ed tarball; plain, gzip,
/// bzip2, xz or zstd) into the existing directory `dir` with the same checks as a
/// layer, but without whiteouts: a `.wh.` name is an ordinary file here.
pub fn extract_archive<R: Read>(input: R, dir: &Path, limit: &UnpackLimit) -> Result<UnpackStats> {
    let mut fs = crate::layer::fsops::RealLayerFs::new(dir).map_err(|e| ImageError::io_path("open", dir, e))?;
    let d = dir.to_path_buf();
    let free = move || crate::fsutil::available_bytes(&d);
    unpack_tar(input, &mut fs, limit, &free, false, false)
}

fn unpack_tar<R: Read>(
    input: R,
    fs: &mut dyn LayerFs,
    limit: &UnpackLimit,
    free_space: &dyn Fn() -> io::Result<u64>,
    hash_plain: bool,
    whiteouts: bool,
) -> Result<UnpackStats> {
    let (compression, decomp) = Decompressor::new(input)?;
    let hashing = if compression == Compression::None && !hash_plain {
        HashingReader::counting(decomp)
    } else {
        HashingReader::new(decomp)
    };
    let limited = LimitedReader {
        inner: hashing,
        count: 0,
        next_check: 0,
        limit: limit.clone(),
        free_space,
    };
    let mut archive = tar::Archive::new(limited);
    {
        let mut extractor = Extractor {
            fs,
            symlinks: HashSet::new(),
            whiteouts,
        };
        let entries = archive
            .entries()
            .map_err(|e| ImageError::from_io_chain("read layer", e))?;
        for entry in entries {
            let entry = entry.map_err(|e| ImageError::from_io_chain("read layer tar", e))?;
            extractor.apply(entry)?;
        }
        extractor
            .fs
            .finish()
            .map_err(|e| ImageError::from_io_chain("finish layer", e))?;
    }
    let mut limited = archive.into_inner();
    io::copy(&mut limited, &mut io::sink())
        .map_err(|e| ImageError::from_io_chain("read layer", e))?;
    let (diff_id, tar_size, decomp) = limited
        .inner
        .finish_opt()
        .map_err(|e| ImageError::from_io_chain("read layer", e))?;
    decomp
        .drain_input()
        .map_err(|e| ImageError::from_io_chain("read layer", e))?;
    Ok(UnpackStats {
        diff_id,
        tar_size,
        compression,
    })
}

/// Turns tar entries into [`LayerFs`] calls, refusing anything unsafe.
struct Extractor<'f> {
    fs: &'f mut dyn LayerFs,
    /// Symlinks created so far in this layer: nothing may be written below one.
    symlinks: HashSet<PathBuf>,
    /// Translate `.wh.` entries (layers) or keep them as files (plain archives).
    whiteouts: bool,
}

fn fs_err(path: &Path, e: io::Error) -> ImageError {
    ImageError::from_io_chain(&format!("unpack {}", path.display()), e)
}

impl Extractor<'_> {
    /// Refuses a path whose parent chain goes through a symlink of this layer.
    fn check_parents(&self, path: &Path) -> Result<()> {
        let mut p = path.parent();
        while let Some(dir) = p {
            if dir.as_os_str().is_empty() {
                break;
            }
            if self.symlinks.contains(dir) {
                return Err(ImageError::UnsafeLayer(format!(
                    "{} would be written through the symlink {}",
                    path.display(),
                    dir.display()
                )));
            }
            p = dir.parent();
        }
        Ok(())
    }

    fn apply<R: Read>(&mut self, mut entry: tar::Entry<'_, R>) -> Result<()> {
        let header = entry.header().clone();
        let kind = header.entry_type();
        if matches!(
            kind,
            tar::EntryType::XGlobalHeader | tar::EntryType::XHeader
        ) {
            return Ok(());
        }
        let raw_path = entry.path_bytes().into_owned();
        let path = safepath::entry_path(&raw_path)?;
        let meta = entry_meta(&mut entry, &header)?;

        let Some(path) = path else {
            // The archive's root entry (`./`).
            if kind.is_dir() {
                return self.fs.set_root_meta(&meta).map_err(|e| fs_err(Path::new("."), e));
            }
            return Err(ImageError::UnsafeLayer(format!(
                "entry {:?} replaces the layer root with a non-directory",
                String::from_utf8_lossy(&raw_path)
            )));
        };
        self.check_parents(&path)?;

        let name = path.file_name().unwrap_or_default().to_os_string();
        let parent = path.parent().unwrap_or(Path::new("")).to_path_buf();
        let class = if self.whiteouts { whiteout::classify(&name) } else { TarName::Plain };
        match class {
            TarName::AufsMeta => return Ok(()),
            TarName::Opaque => {
                return self.fs.set_opaque(&parent).map_err(|e| fs_err(&path, e));
            }
            TarName::Whiteout(target) => {
                let target = parent.join(target);
                self.symlinks.remove(&target);
                return self.fs.whiteout(&target, &meta).map_err(|e| fs_err(&target, e));
            }
            TarName::Plain => {}
        }

        // Whatever replaces a symlink is no longer one (a new symlink re-inserts).
        self.symlinks.remove(&path);
        let res = match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                self.fs.create_file(&path, &meta, &mut entry)
            }
            tar::EntryType::Directory => self.fs.mkdir(&path, &meta),
            tar::EntryType::Symlink => {
                let target = link_name(&entry, &path)?;
                safepath::check_symlink_target(&path, &target)?;
                self.symlinks.insert(path.clone());
                self.fs.symlink(&path, &target, &meta)
            }
            tar::EntryType::Link => {
                let raw = entry.link_name_bytes().ok_or_else(|| {
                    ImageError::InvalidArchive(format!("hardlink {} has no target", path.display()))
                })?;
                let target = safepath::hardlink_target(&path, &raw)?;
                self.check_parents(&target)?;
                if self.symlinks.contains(&target) {
                    self.symlinks.insert(path.clone());
                }
                self.fs.hardlink(&path, &target)
            }
            tar::EntryType::Char | tar::EntryType::Block => {
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                let k = if kind == tar::EntryType::Char {
                    NodeKind::Char { major, minor }
                } else {
                    NodeKind::Block { major, minor }
                };
                self.fs.mknod(&path, k, &meta)
            }
            tar::EntryType::Fifo => self.fs.mknod(&path, NodeKind::Fifo, &meta),
            other => {
                return Err(ImageError::InvalidArchive(format!(
                    "{}: unsupported tar entry type {:?}",
                    path.display(),
                    other
                )));
            }
        };
        res.map_err(|e| fs_err(&path, e))
    }
}

fn link_name<R: Read>(entry: &tar::Entry<'_, R>, path: &Path) -> Result<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    let raw = entry.link_name_bytes().ok_or_else(|| {
        ImageError::InvalidArchive(format!("symlink {} has no target", path.display()))
    })?;
    Ok(PathBuf::from(std::ffi::OsStr::from_bytes(&raw)))
}

/// Ownership, mode, mtime (with PAX sub-second precision) and xattrs of an entry.
fn entry_meta<R: Read>(entry: &mut tar::Entry<'_, R>, header: &tar::Header) -> Result<EntryMeta> {
    let bad = |what: &str, e: io::Error| {
        ImageError::InvalidArchive(format!(
            "{}: bad {what}: {e}",
            String::from_utf8_lossy(&entry_name_for_error(header))
        ))
    };
    let old = header.as_old();
    // Go's tar (Docker's) reads an empty numeric field as 0; so do we.
    let mode = if blank(&old.mode) { 0 } else { header.mode().map_err(|e| bad("mode", e))? & 0o7777 };
    let uid = if blank(&old.uid) { 0 } else { header.uid().map_err(|e| bad("uid", e))? };
    let gid = if blank(&old.gid) { 0 } else { header.gid().map_err(|e| bad("gid", e))? };
    let mut uid = u32::try_from(uid).map_err(|_| bad("uid", io::Error::other("out of range")))?;
    let mut gid = u32::try_from(gid).map_err(|_| bad("gid", io::Error::other("out of range")))?;
    let mut mtime_sec = header.mtime().unwrap_or(0) as i64;
    let mut mtime_nsec = 0u32;
    let mut xattrs = Vec::new();
    if let Some(exts) = entry
        .pax_extensions()
        .map_err(|e| ImageError::from_io_chain("read pax headers", e))?
    {
        for ext in exts {
            let ext = ext.map_err(|e| ImageError::from_io_chain("read pax headers", e))?;
            let Ok(key) = ext.key() else { continue };
            if let Some(name) = key.strip_prefix("SCHILY.xattr.") {
                // Overlay's own xattrs would let a layer forge whiteouts/redirects.
                if whiteout::is_overlay_xattr(name) {
                    continue;
                }
                xattrs.push((name.to_owned(), ext.value_bytes().to_vec()));
            } else if key == "mtime" {
                if let Ok(v) = ext.value()
                    && let Some((s, n)) = parse_pax_time(v) {
                        mtime_sec = s;
                        mtime_nsec = n;
                    }
            } else if key == "uid" || key == "gid" {
                // Ids too large for the ustar field live in PAX records.
                let v: u32 = ext.value().unwrap_or("").parse().map_err(|_| {
                    bad(key, io::Error::other("not a 32-bit number"))
                })?;
                if key == "uid" {
                    uid = v;
                } else {
                    gid = v;
                }
            }
        }
    }
    Ok(EntryMeta {
        mode,
        uid,
        gid,
        mtime_sec,
        mtime_nsec,
        xattrs,
    })
}

fn blank(field: &[u8]) -> bool {
    field.iter().all(|b| *b == 0 || *b == b' ')
}

fn entry_name_for_error(header: &tar::Header) -> Vec<u8> {
    header.path_bytes().into_owned()
}

/// Parses a PAX time (`1700000000.123456789`, possibly negative or with fewer digits).
fn parse_pax_time(v: &str) -> Option<(i64, u32)> {
    let (s, frac) = match v.split_once('.') {
        Some((s, f)) => (s, f),
        None => (v, ""),
    };
    let secs: i64 = s.parse().ok()?;
    let mut digits: String = frac.chars().take(9).collect();
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    while digits.len() < 9 {
        digits.push('0');
    }
    let nsec: u32 = digits.parse().ok()?;
    Some((secs, nsec))
}

#[cfg(test)]
#[path = "../../tests/common/tar.rs"]
mod crafted;

#[cfg(test)]
mod tests {
    use super::crafted::{Entry, build, gzip, zstd};
    use super::*;

    /// Records what the extractor asks for, without touching a filesystem.
    #[derive(Default)]
    struct MemFs {
        ops: Vec<String>,
    }

    impl LayerFs for MemFs {
        fn set_root_meta(&mut self, m: &EntryMeta) -> io::Result<()> {
            self.ops.push(format!("root {:o}", m.mode));
            Ok(())
        }
        fn mkdir(&mut self, p: &Path, m: &EntryMeta) -> io::Result<()> {
            self.ops.push(format!("mkdir {} {:o} {}:{}", p.display(), m.mode, m.uid, m.gid));
            Ok(())
        }
        fn create_file(&mut self, p: &Path, m: &EntryMeta, data: &mut dyn Read) -> io::Result<()> {
            let mut v = Vec::new();
            data.read_to_end(&mut v)?;
            let x: Vec<_> = m.xattrs.iter().map(|(k, _)| k.as_str()).collect();
            self.ops.push(format!("file {} {:o} {}B {}", p.display(), m.mode, v.len(), x.join(",")));
            Ok(())
        }
        fn symlink(&mut self, p: &Path, t: &Path, _m: &EntryMeta) -> io::Result<()> {
            self.ops.push(format!("symlink {} -> {}", p.display(), t.display()));
            Ok(())
        }
        fn hardlink(&mut self, p: &Path, t: &Path) -> io::Result<()> {
            self.ops.push(format!("hardlink {} -> {}", p.display(), t.display()));
            Ok(())
        }
        fn mknod(&mut self, p: &Path, k: NodeKind, _m: &EntryMeta) -> io::Result<()> {
            self.ops.push(format!("mknod {} {:?}", p.display(), k));
            Ok(())
        }
        fn whiteout(&mut self, p: &Path, _m: &EntryMeta) -> io::Result<()> {
            self.ops.push(format!("whiteout {}", p.display()));
            Ok(())
        }
        fn set_opaque(&mut self, p: &Path) -> io::Result<()> {
            self.ops.push(format!("opaque {}", p.display()));
            Ok(())
        }
        fn finish(&mut self) -> io::Result<()> {
            self.ops.push("finish".into());
            Ok(())
        }
    }

    fn plenty() -> io::Result<u64> {
        Ok(u64::MAX)
    }

    fn run(data: &[u8], limit: &UnpackLimit) -> (Result<UnpackStats>, Vec<String>) {
        let mut fs = MemFs::default();
        let r = unpack_layer(data, &mut fs, limit, &plenty, true);
        (r, fs.ops)
    }

    fn no_limit() -> UnpackLimit {
        UnpackLimit::keep_free(0)
    }

    #[test]
    fn translates_entries_and_whiteouts() {
        let tar = build(&[
            Entry::dir("./"),
            Entry::dir("data/").owner(1000, 1000).mode(0o750),
            Entry::file("data/a", b"hello").mode(0o4755).xattr("security.capability", b"x"),
            Entry::symlink("data/link", "/data/a"),
            Entry::hardlink("data/h", "data/a"),
            Entry::fifo("data/fifo"),
            Entry::chardev("dev/null", 1, 3),
            Entry::file("data/.wh.gone", b""),
            Entry::file("opq/.wh..wh..opq", b""),
            Entry::file("x/.wh..wh.plnk", b""),
            Entry::file("ov", b"").xattr("trusted.overlay.opaque", b"y"),
        ]);
        let (r, ops) = run(&tar, &no_limit());
        let stats = r.unwrap();
        assert_eq!(stats.diff_id, Some(Digest::of(&tar)));
        assert_eq!(stats.tar_size, tar.len() as u64);
        assert_eq!(stats.compression, Compression::None);
        assert_eq!(
            ops,
            vec![
                "root 755",
                "mkdir data 750 1000:1000",
                "file data/a 4755 5B security.capability",
                "symlink data/link -> /data/a",
                "hardlink data/h -> data/a",
                "mknod data/fifo Fifo",
                "mknod dev/null Char { major: 1, minor: 3 }",
                "whiteout data/gone",
                "opaque opq",
                // AUFS metadata skipped; overlay xattrs from the tar dropped.
                "file ov 644 0B ",
                "finish",
            ]
        );
    }

    #[test]
    fn compressed_layers_have_the_same_diff_id() {
        let tar = build(&[Entry::file("a", &vec![7u8; 100_000])]);
        let plain = run(&tar, &no_limit()).0.unwrap();
        let gz = run(&gzip(&tar), &no_limit()).0.unwrap();
        let zs = run(&zstd(&tar), &no_limit()).0.unwrap();
        assert_eq!(gz.compression, Compression::Gzip);
        assert_eq!(zs.compression, Compression::Zstd);
        assert_eq!(plain.diff_id, gz.diff_id);
        assert_eq!(plain.diff_id, zs.diff_id);
        // Left to the caller only when uncompressed.
        let mut fs = MemFs::default();
        let skipped = unpack_layer(&tar[..], &mut fs, &no_limit(), &plenty, false).unwrap();
        assert_eq!((skipped.diff_id, skipped.tar_size), (None, tar.len() as u64));
        let mut fs = MemFs::default();
        let gz2 = unpack_layer(&gzip(&tar)[..], &mut fs, &no_limit(), &plenty, false).unwrap();
        assert_eq!(gz2.diff_id, plain.diff_id);
    }

    fn refused(entries: &[Entry]) -> String {
        let (r, _) = run(&build(entries), &no_limit());
        match r {
            Err(e @ ImageError::UnsafeLayer(_)) => e.to_string(),
            other => panic!("expected an unsafe-layer error, got {other:?}"),
        }
    }

    #[test]
    fn refuses_escapes() {
        assert!(refused(&[Entry::file("../evil", b"x")]).contains(".."));
        assert!(refused(&[Entry::file("a/../../evil", b"x")]).contains(".."));
        assert!(refused(&[Entry::file("/etc/evil", b"x")]).contains("absolute"));
        assert!(refused(&[Entry::symlink("s", "../../../etc")]).contains("outside"));
        assert!(refused(&[Entry::hardlink("h", "/etc/shadow")]).contains("outside"));
        assert!(refused(&[Entry::hardlink("h", "../etc/shadow")]).contains("outside"));
        // A symlink inside the tree, then a write through it.
        assert!(
            refused(&[Entry::symlink("s", "/etc"), Entry::file("s/passwd", b"x")]).contains("through the symlink s")
        );
        // The same through a hardlink to the symlink.
        assert!(
            refused(&[
                Entry::symlink("s", "/etc"),
                Entry::hardlink("t", "s"),
                Entry::file("t/passwd", b"x")
            ])
            .contains("through the symlink t")
        );
        // A hardlink whose target goes through a symlink.
        assert!(
            refused(&[Entry::symlink("d", "/etc"), Entry::hardlink("h", "d/shadow")]).contains("through the symlink d")
        );
        // A whiteout through a symlink.
        assert!(refused(&[Entry::symlink("d", "/"), Entry::file("d/.wh.etc", b"")]).contains("symlink d"));
    }

    #[test]
    fn replacing_a_symlink_with_a_directory_makes_it_safe_again() {
        let tar = build(&[
            Entry::symlink("s", "/etc"),
            Entry::dir("s"),
            Entry::file("s/ok", b"x"),
        ]);
        assert!(run(&tar, &no_limit()).0.is_ok());
    }

    #[test]
    fn stops_at_the_size_limit() {
        let tar = build(&[Entry::file("big", &vec![0u8; 1 << 20])]);
        let limit = UnpackLimit {
            max_layer_bytes: Some(64 << 10),
            min_free_bytes: 0,
        };
        let (r, _) = run(&gzip(&tar), &limit);
        assert!(matches!(r, Err(ImageError::LimitExceeded(_))), "{r:?}");
    }

    #[test]
    fn stops_when_the_disk_margin_is_reached() {
        let tar = build(&[Entry::file("big", &vec![0u8; 1 << 16])]);
        let mut fs = MemFs::default();
        let low = || Ok(10u64 << 20);
        let r = unpack_layer(&tar[..], &mut fs, &UnpackLimit::keep_free(100 << 20), &low, true);
        let e = r.unwrap_err();
        assert!(matches!(e, ImageError::LimitExceeded(_)), "{e}");
        assert!(e.to_string().contains("keeps 100 MiB free"), "{e}");
    }

    #[test]
    fn refuses_broken_compression_and_garbage() {
        // bzip2 and xz are read now; a cut-off stream of either is an error.
        let (r, _) = run(b"BZh91AY&SY", &no_limit());
        assert!(r.is_err());
        let (r, _) = run(&[0xfd, b'7', b'z', b'X', b'Z', 0, 1, 2], &no_limit());
        assert!(r.is_err());
        let (r, _) = run(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3], &no_limit());
        assert!(r.is_err());
        let mut garbage = vec![b'x'; 2048];
        garbage[0] = b'{';
        let (r, _) = run(&garbage, &no_limit());
        assert!(matches!(r, Err(ImageError::InvalidArchive(_))), "{r:?}");
    }

    #[test]
    fn truncated_tar_is_an_error() {
        let tar = build(&[Entry::file("a", &vec![1u8; 10_000])]);
        let (r, _) = run(&tar[..3000], &no_limit());
        let e = r.unwrap_err();
        assert!(e.to_string().contains("truncated") || matches!(e, ImageError::InvalidArchive(_)), "{e}");
    }

    #[test]
    fn pax_times() {
        assert_eq!(parse_pax_time("1700000000.5"), Some((1_700_000_000, 500_000_000)));
        assert_eq!(parse_pax_time("12"), Some((12, 0)));
        assert_eq!(parse_pax_time("x"), None);
    }
}
