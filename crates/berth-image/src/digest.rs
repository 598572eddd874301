//! sha256 digests (`sha256:<64 hex>`), the only algorithm Docker and OCI images use in
//! practice, and readers/writers that hash what passes through them.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

use crate::error::{ImageError, Result};

/// A validated `sha256:<64 lowercase hex>` digest.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// The digest of `data`.
    pub fn of(data: &[u8]) -> Digest {
        Digest::from_hasher(Sha256::new_with_prefix(data))
    }

    pub(crate) fn from_hasher(h: Sha256) -> Digest {
        Digest {
            hex: hex::encode(h.finalize()),
        }
    }

    /// Parses `sha256:<hex>`.
    pub fn parse(s: &str) -> Result<Digest> {
        let Some((algo, hex)) = s.split_once(':') else {
            return Err(ImageError::InvalidArgument(format!(
                "invalid digest {s:?}: expected sha256:<64 hex digits>"
            )));
        };
        if algo != "sha256" {
            return Err(ImageError::InvalidArgument(format!(
                "unsupported digest algorithm {algo:?} in {s:?}"
            )));
        }
        Digest::from_hex(hex)
    }

    /// Builds a digest from its 64 hex digits (no `sha256:` prefix).
    pub fn from_hex(hex: &str) -> Result<Digest> {
        if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ImageError::InvalidArgument(format!(
                "invalid sha256 digest {hex:?}: expected 64 hex digits"
            )));
        }
        if hex.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(ImageError::InvalidArgument(format!(
                "invalid sha256 digest {hex:?}: hex digits must be lowercase"
            )));
        }
        Ok(Digest {
            hex: hex.to_owned(),
        })
    }

    /// The 64 hex digits.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The first 12 hex digits, as Docker shows IDs.
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl FromStr for Digest {
    type Err = ImageError;
    fn from_str(s: &str) -> Result<Self> {
        Digest::parse(s)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Digest::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// The DiffID of an empty layer: sha256 of a tar made of its two 512-byte end blocks.
/// Docker leaves such a layer out of RootFS when committing an unchanged container.
pub fn empty_layer_diff_id() -> Digest {
    Digest::of(&[0u8; 1024])
}

/// A reader that hashes and counts every byte read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Option<Sha256>,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Some(Sha256::new()),
            count: 0,
        }
    }

    /// Counts without hashing (when the digest is known another way).
    pub fn counting(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: None,
            count: 0,
        }
    }

    /// Bytes read so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// Reads to the end (the digest covers the whole stream, padding included), then
    /// returns the digest (`None` for a counting-only reader) and the byte count.
    pub fn finish_opt(mut self) -> io::Result<(Option<Digest>, u64, R)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((self.hasher.map(Digest::from_hasher), self.count, self.inner))
    }

    /// [`HashingReader::finish_opt`] for a hashing reader.
    pub fn finish(self) -> io::Result<(Digest, u64, R)> {
        let (d, n, r) = self.finish_opt()?;
        let d = d.ok_or_else(|| io::Error::other("reader was not hashing"))?;
        Ok((d, n, r))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = self.hasher.as_mut() {
            h.update(&buf[..n]);
        }
        self.count += n as u64;
        Ok(n)
    }
}

/// A writer that hashes and counts every byte written through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Sha256,
    count: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W) -> Self {
        HashingWriter {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    pub fn get_mut(&mut self) -> &mut W {
        &mut self.inner
    }

    pub fn finish(self) -> (Digest, u64, W) {
        (Digest::from_hasher(self.hasher), self.count, self.inner)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Chain ID of a layer stack (OCI image spec): the DiffID for the bottom layer, then
/// `sha256(parent_chain + " " + diff_id)` for each layer above.
pub fn chain_id(parent: Option<&Digest>, diff_id: &Digest) -> Digest {
    match parent {
        None => diff_id.clone(),
        Some(p) => Digest::of(format!("{p} {diff_id}").as_bytes()),
    }
}

/// The chain IDs of every prefix of `diff_ids`, bottom first.
pub fn chain_ids(diff_ids: &[Digest]) -> Vec<Digest> {
    let mut out: Vec<Digest> = Vec::with_capacity(diff_ids.len());
    for d in diff_ids {
        let next = chain_id(out.last(), d);
        out.push(next);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let d = Digest::of(b"hello");
        let s = d.to_string();
        assert_eq!(
            s,
            "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
        );
        assert_eq!(Digest::parse(&s).unwrap(), d);
        assert_eq!(d.short(), "2cf24dba5fb0");
    }

    #[test]
    fn rejects_bad_digests() {
        for bad in [
            "sha256:abc",
            "md5:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
            "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
            "sha256:2CF24DBA5FB0A30E26E83B2AC5B9E29E1B161E5C1FA7425E73043362938B9824",
            "sha256:zzf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
        ] {
            assert!(Digest::parse(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn empty_layer_is_dockers() {
        assert_eq!(
            empty_layer_diff_id().to_string(),
            "sha256:5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
        );
    }

    /// The fixture's layer chain: Docker's `layers-docker-save.tar` names each layer
    /// directory by its v1 ID, but the chain IDs follow the OCI formula; check the
    /// formula on known values (the base layer's chain ID is its DiffID).
    #[test]
    fn chain_ids_follow_the_oci_formula() {
        let a = Digest::parse(
            "sha256:452f786823ef11cd754ee0e1fba9445a348075d2df3ff2f2a42a93c8dca243ec",
        )
        .unwrap();
        let b = Digest::parse(
            "sha256:1f12a0806afd74e9a8db1054b30cf24139730c34b578e0dbf7246667fd27b7d0",
        )
        .unwrap();
        let ids = chain_ids(&[a.clone(), b.clone()]);
        assert_eq!(ids[0], a);
        assert_eq!(ids[1], Digest::of(format!("{a} {b}").as_bytes()));
    }

    #[test]
    fn hashing_reader_covers_the_whole_stream() {
        let data = vec![7u8; 10_000];
        let mut r = HashingReader::new(&data[..]);
        let mut first = [0u8; 100];
        r.read_exact(&mut first).unwrap();
        let (d, n, _) = r.finish().unwrap();
        assert_eq!(n, 10_000);
        assert_eq!(d, Digest::of(&data));
    }

    #[test]
    fn hashing_writer_counts() {
        let mut w = HashingWriter::new(Vec::new());
        w.write_all(b"abc").unwrap();
        let (d, n, v) = w.finish();
        assert_eq!((n, v.as_slice()), (3, &b"abc"[..]));
        assert_eq!(d, Digest::of(b"abc"));
    }
}
