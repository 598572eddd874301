//! Crafted layer tars that try to write outside the layer directory are refused with
//! a clear error, touch nothing outside, and leave nothing behind.

mod common;

use std::fs;
use std::path::Path;

use berth_image::layer::fsops::{EntryMeta, LayerFs, RealLayerFs};
use berth_image::{ErrorKind, ImageError, ImportOptions};
use common::tar::{Entry, build};
use common::*;

/// A directory outside the store that malicious layers aim at.
struct Victim {
    dir: std::path::PathBuf,
}

impl Victim {
    fn new(ts: &TestStore) -> Victim {
        let dir = ts.dir.path().join("victim");
        fs::create_dir(&dir).unwrap();
        fs::write(dir.join("keep"), b"original").unwrap();
        Victim { dir }
    }

    fn assert_untouched(&self) {
        assert_eq!(list_files(&self.dir), vec!["keep"], "something was written outside the layer");
        assert_eq!(fs::read(self.dir.join("keep")).unwrap(), b"original");
    }
}

fn assert_refused(ts: &TestStore, victim: &Victim, tar: Vec<u8>, want: &str) {
    let err = ts.store().import(&tar[..], &ImportOptions::default()).unwrap_err();
    assert!(matches!(err, ImageError::UnsafeLayer(_)), "expected an unsafe-layer error, got: {err}");
    assert_eq!(err.kind(), ErrorKind::InvalidArgument);
    assert!(err.to_string().contains(want), "error {err:?} should mention {want:?}");
    victim.assert_untouched();
    assert_store_empty(ts);
    assert_eq!(list_files(&ts.root().join("layers/.staging")), Vec::<String>::new());
    // The same layer inside a docker-archive is refused by `load` too.
    let archive = docker_archive(&[tar], "evil:1");
    let err = ts.store().load(&archive[..], &mut |_| {}).unwrap_err();
    assert!(matches!(err, ImageError::UnsafeLayer(_)), "load: {err}");
    victim.assert_untouched();
    assert_store_empty(ts);
}

/// `../` climbs from the layer dir (`<root>/layers/.staging/<x>/diff`) to the victim.
fn climb(ts: &TestStore, victim: &Victim) -> String {
    let diff_depth = ts.root().join("layers/.staging/x/diff").components().count();
    let up = "../".repeat(diff_depth);
    format!("{up}{}", victim.dir.strip_prefix("/").unwrap().display())
}

#[test]
fn dot_dot_entries_are_refused() {
    let ts = TestStore::new("bi-mal1");
    let v = Victim::new(&ts);
    let target = format!("{}/pwned", climb(&ts, &v));
    assert_refused(&ts, &v, build(&[Entry::file(&target, b"x")]), "'..'");
    assert_refused(&ts, &v, build(&[Entry::dir("a/"), Entry::file("a/../../pwned", b"x")]), "'..'");
}

#[test]
fn absolute_entries_are_refused() {
    let ts = TestStore::new("bi-mal2");
    let v = Victim::new(&ts);
    let target = format!("{}/pwned", v.dir.display());
    assert_refused(&ts, &v, build(&[Entry::file(&target, b"x")]), "absolute");
}

#[test]
fn symlinks_pointing_out_are_refused() {
    let ts = TestStore::new("bi-mal3");
    let v = Victim::new(&ts);
    let rel = climb(&ts, &v);
    assert_refused(&ts, &v, build(&[Entry::symlink("esc", &rel)]), "points outside the layer");
    assert_refused(&ts, &v, build(&[Entry::symlink("a/b/esc", "../../../x")]), "points outside the layer");
}

#[test]
fn hardlinks_pointing_out_are_refused() {
    let ts = TestStore::new("bi-mal4");
    let v = Victim::new(&ts);
    let abs = v.dir.join("keep").display().to_string();
    assert_refused(&ts, &v, build(&[Entry::hardlink("h", &abs)]), "outside the layer");
    let rel = format!("{}/keep", climb(&ts, &v));
    assert_refused(&ts, &v, build(&[Entry::hardlink("h", &rel)]), "outside the layer");
    // The victim's link count proves no link was made.
    use std::os::unix::fs::MetadataExt;
    assert_eq!(fs::metadata(v.dir.join("keep")).unwrap().nlink(), 1);
}

#[test]
fn writes_through_symlinks_are_refused() {
    let ts = TestStore::new("bi-mal5");
    let v = Victim::new(&ts);
    let abs = v.dir.display().to_string();
    // An absolute symlink is legal in an image (it is resolved inside the container),
    // but nothing may be written through it while unpacking.
    assert_refused(
        &ts,
        &v,
        build(&[Entry::symlink("esc", &abs), Entry::file("esc/pwned", b"x")]),
        "through the symlink esc",
    );
    assert_refused(
        &ts,
        &v,
        build(&[Entry::symlink("esc", &abs), Entry::dir("esc/sub/")]),
        "through the symlink esc",
    );
    assert_refused(
        &ts,
        &v,
        build(&[Entry::symlink("esc", &abs), Entry::hardlink("h", "esc/keep")]),
        "through the symlink esc",
    );
    assert_refused(
        &ts,
        &v,
        build(&[Entry::symlink("esc", &abs), Entry::file("esc/.wh.keep", b"")]),
        "symlink esc",
    );
    // Replacing the symlink with a regular file does not follow it either.
    let ok = build(&[Entry::symlink("esc", &abs), Entry::file("esc", b"now a file")]);
    let id = ts.store().import(&ok[..], &ImportOptions::default()).unwrap();
    v.assert_untouched();
    let chain = ts.store().record(&id.to_string()).unwrap().layers[0].chain_id.clone();
    let diff = ts.store().layers().diff_dir(&chain);
    assert_eq!(fs::read(diff.join("esc")).unwrap(), b"now a file");
}

/// The kernel-enforced second line of defence: even if a symlink sits in the layer
/// directory without the extractor knowing, `openat2(RESOLVE_NO_SYMLINKS)` refuses.
#[test]
fn the_kernel_refuses_symlinked_parents_too() {
    let ts = TestStore::new("bi-mal6");
    let v = Victim::new(&ts);
    let root = ts.dir.path().join("layerdir");
    fs::create_dir(&root).unwrap();
    std::os::unix::fs::symlink(&v.dir, root.join("sneaky")).unwrap();
    let mut lfs = RealLayerFs::new(&root).unwrap();
    let meta = EntryMeta {
        mode: 0o644,
        ..Default::default()
    };
    let err = lfs
        .create_file(Path::new("sneaky/pwned"), &meta, &mut &b"x"[..])
        .unwrap_err();
    let err = ImageError::from(err);
    assert!(matches!(err, ImageError::UnsafeLayer(_)), "{err}");
    let err = lfs.mkdir(Path::new("sneaky/d"), &meta).unwrap_err();
    assert!(matches!(ImageError::from(err), ImageError::UnsafeLayer(_)));
    let err = lfs.set_opaque(Path::new("sneaky")).unwrap_err();
    assert!(matches!(ImageError::from(err), ImageError::UnsafeLayer(_)));
    v.assert_untouched();
}

/// Device nodes, fifos, modes, owners, mtimes, xattrs, hardlinks and symlinks survive
/// extraction on the real filesystem.
#[test]
fn metadata_is_preserved() {
    use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
    let ts = TestStore::new("bi-meta");
    let tar = build(&[
        Entry::dir("d/").mode(0o750).owner(1000, 1001).mtime(1_600_000_000),
        Entry::file("d/suid", b"#!/bin/sh\n").mode(0o4755).owner(0, 0).mtime(1_500_000_000),
        Entry::file("d/cap", b"bin").xattr("security.capability", &[1, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
            .xattr("user.note", b"hi"),
        Entry::hardlink("d/cap2", "d/cap"),
        Entry::symlink("d/ln", "/d/suid").owner(1000, 1000),
        Entry::fifo("d/fifo").mode(0o600),
        Entry::chardev("dev/null", 1, 3),
        Entry::dir("opq/"),
        Entry::file("opq/.wh..wh..opq", b""),
        Entry::file("d/.wh.gone", b""),
    ]);
    let id = ts.store().import(&tar[..], &ImportOptions::default()).unwrap();
    let chain = ts.store().record(&id.to_string()).unwrap().layers[0].chain_id.clone();
    let root = ts.store().layers().diff_dir(&chain);
    let d = fs::metadata(root.join("d")).unwrap();
    assert_eq!((d.mode() & 0o7777, d.uid(), d.gid(), d.mtime()), (0o750, 1000, 1001, 1_600_000_000));
    let s = fs::metadata(root.join("d/suid")).unwrap();
    assert_eq!((s.permissions().mode() & 0o7777, s.mtime()), (0o4755, 1_500_000_000));
    let c = fs::metadata(root.join("d/cap")).unwrap();
    let c2 = fs::metadata(root.join("d/cap2")).unwrap();
    assert_eq!((c.ino(), c.nlink()), (c2.ino(), 2));
    let mut buf = [0u8; 64];
    let n = rustix::fs::lgetxattr(root.join("d/cap"), "user.note", &mut buf[..]).unwrap();
    assert_eq!(&buf[..n], b"hi");
    assert!(rustix::fs::lgetxattr(root.join("d/cap"), "security.capability", &mut buf[..]).is_ok());
    let l = fs::symlink_metadata(root.join("d/ln")).unwrap();
    assert_eq!((l.uid(), fs::read_link(root.join("d/ln")).unwrap()), (1000, "/d/suid".into()));
    assert!(fs::symlink_metadata(root.join("d/fifo")).unwrap().file_type().is_fifo());
    let n = fs::symlink_metadata(root.join("dev/null")).unwrap();
    assert!(n.file_type().is_char_device());
    assert_eq!(n.rdev(), rustix::fs::makedev(1, 3));
    let w = fs::symlink_metadata(root.join("d/gone")).unwrap();
    assert!(w.file_type().is_char_device() && w.rdev() == 0, "whiteout is a 0:0 char device");
    let n = rustix::fs::lgetxattr(root.join("opq"), "trusted.overlay.opaque", &mut buf[..]).unwrap();
    assert_eq!(&buf[..n], b"y");
    // Docker's size: regular files once per inode, symlink targets.
    let info = ts.store().layers().get(&chain).unwrap();
    assert_eq!(info.size, 10 + 3 + 7);
}
