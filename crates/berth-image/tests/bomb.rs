//! Decompression bombs: a few MB of gzip or zstd that would expand to tens of GB are
//! stopped at the configured limit, with a clear error and nothing left behind.

mod common;

use std::io::{self, Cursor, Read};

use berth_image::{ErrorKind, ImageError, ImportOptions, StoreOptions, UnpackLimit};
use common::*;

/// A tar holding one file of `size` zero bytes, produced on the fly.
fn zero_tar(size: u64) -> impl Read {
    let mut h = ::tar::Header::new_gnu();
    h.set_path("zeros").unwrap();
    h.set_size(size);
    h.set_mode(0o644);
    h.set_entry_type(::tar::EntryType::Regular);
    h.set_cksum();
    let pad = (512 - size % 512) % 512;
    Cursor::new(h.as_bytes().to_vec())
        .chain(io::repeat(0).take(size + pad))
        .chain(Cursor::new(vec![0u8; 1024]))
}

const FORTY_GIB: u64 = 40 << 30;

#[test]
fn streamed_gzip_bomb_stops_at_the_size_limit() {
    let ts = TestStore::with_options(
        "bi-bomb1",
        StoreOptions {
            unpack_limit: Some(UnpackLimit {
                max_layer_bytes: Some(256 << 20),
                min_free_bytes: 0,
            }),
            ..Default::default()
        },
    );
    // 40 GiB of zeros, gzip-compressed as it is read: never materialised anywhere.
    let gz = flate2::read::GzEncoder::new(zero_tar(FORTY_GIB), flate2::Compression::fast());
    let mut counted = CountingReader { inner: gz, n: 0 };
    let err = ts.store().import(&mut counted, &ImportOptions::default()).unwrap_err();
    assert!(matches!(err, ImageError::LimitExceeded(_)), "{err}");
    assert_eq!(err.kind(), ErrorKind::ResourceExhausted);
    assert!(err.to_string().contains("268435456 bytes"), "{err}");
    // It stopped early, long before the ~40 MB of gzip this bomb is made of (the
    // download side runs ahead of the unpack by what the unpack takes to hit the
    // limit, a few MB here).
    assert!(counted.n < 30 << 20, "read {} compressed bytes", counted.n);
    assert_store_empty(&ts);
    assert!(list_files(&ts.root().join("layers/.staging")).is_empty());
}

#[test]
fn zstd_bomb_in_an_archive_stops_at_the_disk_margin() {
    // The margin is "keep all but ~192 MiB of what is free now": the bomb trips it
    // after writing about that much, on the real disk.
    let dir = berth_testutil::short_tempdir("bi-bomb2");
    let free = rustix::fs::statvfs(dir.path()).unwrap();
    let avail = free.f_bavail * free.f_frsize;
    drop(dir);
    let ts = TestStore::with_options(
        "bi-bomb2",
        StoreOptions {
            unpack_limit: Some(UnpackLimit::keep_free(avail.saturating_sub(192 << 20))),
            ..Default::default()
        },
    );
    // 16 GiB of zeros as 256 concatenated zstd frames (a valid zstd stream): the first
    // frame starts with the tar header of one 16 GiB file.
    let chunk = 64u64 << 20;
    let mut first = Vec::new();
    zstd::stream::copy_encode(zero_tar(16 << 30).take(chunk), &mut first, 3).unwrap();
    let mut rest = Vec::new();
    zstd::stream::copy_encode(io::repeat(0).take(chunk), &mut rest, 3).unwrap();
    let mut bomb = first;
    for _ in 1..256 {
        bomb.extend_from_slice(&rest);
    }
    assert!(bomb.len() < 4 << 20, "a bomb is small: {} bytes", bomb.len());
    let archive = docker_archive_with(
        &[bomb],
        &["sha256:0000000000000000000000000000000000000000000000000000000000000000".into()],
        "bomb:1",
    );
    let err = ts.store().load(&archive[..], &mut |_| {}).unwrap_err();
    assert!(matches!(err, ImageError::LimitExceeded(_)), "{err}");
    assert!(err.to_string().contains("MiB free"), "{err}");
    assert_store_empty(&ts);
    assert!(list_files(&ts.root().join("layers/.staging")).is_empty());
}

struct CountingReader<R> {
    inner: R,
    n: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.n += n as u64;
        Ok(n)
    }
}
