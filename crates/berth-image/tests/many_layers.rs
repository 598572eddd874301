//! Deep layer chains mount: 130 layers through short links in one classic mount call,
//! 200 layers through the new mount API.

mod common;

use std::fs;

use berth_image::SnapshotOptions;
use common::tar::{Entry, build};
use common::*;

fn deep_image(ts: &TestStore, n: usize, tag: &str) {
    let layers: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let mut entries = vec![Entry::dir("layers/"), Entry::file(&format!("layers/{i:03}"), format!("{i}\n").as_bytes())];
            if i > 0 {
                // Each layer also deletes its predecessor's marker: whiteouts at depth.
                entries.push(Entry::file(&format!("marks/.wh.m{:03}", i - 1), b""));
            }
            entries.push(Entry::dir("marks/"));
            entries.push(Entry::file(&format!("marks/m{i:03}"), b""));
            build(&entries)
        })
        .collect();
    let archive = docker_archive(&layers, tag);
    ts.store().load(&archive[..], &mut |_| {}).unwrap();
}

fn check_mount(ts: &TestStore, n: usize, tag: &str) {
    let cdir = ts.dir.path().join(format!("c{n}"));
    let snap = ts
        .store()
        .prepare_snapshot(tag, tag, &cdir, &SnapshotOptions::default())
        .unwrap();
    assert_eq!(snap.lowers.len(), n + 1);
    let rootfs = cdir.join("rootfs");
    ts.store().mount_snapshot(tag, &rootfs).unwrap();
    let files = fs::read_dir(rootfs.join("layers")).unwrap().count();
    assert_eq!(files, n, "every layer's file is visible");
    assert_eq!(fs::read_to_string(rootfs.join("layers/000")).unwrap(), "0\n");
    assert_eq!(fs::read_to_string(rootfs.join(format!("layers/{:03}", n - 1))).unwrap(), format!("{}\n", n - 1));
    let marks: Vec<_> = fs::read_dir(rootfs.join("marks")).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(marks, vec![std::ffi::OsString::from(format!("m{:03}", n - 1))], "whiteouts hide all earlier marks");
    // A write lands in the upper dir only.
    fs::write(rootfs.join("layers/000"), b"changed").unwrap();
    assert_eq!(ts.store().changes(tag).unwrap().iter().filter(|c| c.path == "/layers/000").count(), 1);
    ts.store().remove_snapshot(tag).unwrap();
    assert!(!berth_image::mount::is_mount_point(&rootfs).unwrap());
}

#[test]
fn one_hundred_thirty_layers_mount() {
    let ts = TestStore::new("bi-130");
    deep_image(&ts, 130, "deep:130");
    // The lowerdir string with absolute paths would not fit a page; short links do.
    let long: usize = ts
        .store()
        .record("deep:130")
        .unwrap()
        .layers
        .iter()
        .map(|l| ts.store().layers().diff_dir(&l.chain_id).display().to_string().len() + 1)
        .sum();
    assert!(long > 4096, "the test must exceed a page with full paths ({long})");
    check_mount(&ts, 130, "deep:130");
}

#[test]
fn two_hundred_layers_mount_with_lowerdir_plus() {
    let ts = TestStore::new("bi-200");
    deep_image(&ts, 200, "deep:200");
    check_mount(&ts, 200, "deep:200");
}
