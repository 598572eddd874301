//! Crash safety: a process working on the store is SIGKILLed at random moments; each
//! time the store reopens consistent (every recorded image complete, nothing
//! half-unpacked or half-ingested left) and keeps working.

mod common;

use std::fs;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use berth_image::{ImageStore, ImageUsers, ImportOptions, SnapshotOptions};
use common::*;
use rand::RngExt as _;

const CHILD_ENV: &str = "BERTH_IMAGE_CRASH_ROOT";
const TEST_NAME: &str = "sigkill_at_any_moment_leaves_a_consistent_store";

/// The victim: loops over loads, imports, commits, removals and collections until
/// killed.
fn child(root: &Path) -> ! {
    let store = ImageStore::open(root, options()).expect("child: open");
    let layers = fs::read(fixture("layers-docker-save.tar")).unwrap();
    let oci = fs::read(fixture("layers-oci-zstd.tar")).unwrap();
    let base = fs::read(fixture("base-docker-save.tar")).unwrap();
    let none = ImageUsers::new();
    let mut n = 0u64;
    loop {
        n += 1;
        store.load(&layers[..], &mut |_| {}).unwrap();
        store.load(&oci[..], &mut |_| {}).unwrap();
        store
            .import(&base[..], &ImportOptions { tag: Some(format!("imported:{}", n % 3)), ..Default::default() })
            .ok();
        let key = format!("c{n}");
        let dir = root.join("containers").join(&key);
        if store.prepare_snapshot(&key, "fixture/layers:latest", &dir, &SnapshotOptions::default()).is_ok() {
            fs::write(dir.join("upper/new"), n.to_string()).ok();
            store
                .commit(&key, &berth_image::CommitOptions { tag: Some("committed:x".into()), ..Default::default() })
                .ok();
            store.remove_snapshot(&key).ok();
        }
        for name in ["fixture/layers:latest", "fixture/layers:1.0", "committed:x"] {
            let _ = store.remove(name, true, true, &none);
        }
        store.gc().unwrap();
    }
}

fn check_consistent(root: &Path) {
    let store = ImageStore::open(root, options()).expect("reopen after SIGKILL");
    for d in ["layers/.staging", "layers/.trash"] {
        assert!(list_files(&root.join(d)).is_empty(), "{d} not cleaned");
    }
    for i in store.content().list_ingests().unwrap() {
        assert!(!i.reference.starts_with("anonymous-"), "anonymous ingest {} left", i.reference);
    }
    // Every short link points at an installed layer and every layer has its link.
    for e in fs::read_dir(root.join("layers/l")).unwrap() {
        let e = e.unwrap();
        assert!(fs::metadata(e.path()).is_ok(), "dangling short link {:?}", e.file_name());
    }
    for l in store.layers().list().unwrap() {
        assert!(root.join("layers/l").join(&l.link).exists(), "layer {} lost its link", l.chain_id);
    }
    for img in store.list().unwrap() {
        let rec = store.record(&img.id.to_string()).unwrap();
        store.config_bytes(&img.id).expect("config blob");
        for l in &rec.layers {
            assert!(store.layers().exists(&l.chain_id), "image {} misses layer {}", img.id, l.chain_id);
            assert!(store.content().exists(&l.blob.digest), "image {} misses blob {}", img.id, l.blob.digest);
        }
        if let Some(m) = &rec.manifest {
            assert!(store.content().exists(&m.digest));
        }
    }
    // Layers that are there are complete: a container of Docker's image exports
    // exactly Docker's tree (loading it again if it is gone).
    if store.resolve(LAYERS_ID).is_err() {
        let f = fs::File::open(fixture("layers-docker-save.tar")).unwrap();
        store.load(f, &mut |_| {}).unwrap();
    }
    let dir = root.join("check");
    let _ = fs::remove_dir_all(&dir);
    store.prepare_snapshot("check", LAYERS_ID, &dir, &SnapshotOptions::default()).unwrap();
    assert_eq!(tar_listing(&store.export("check", Vec::new()).unwrap()), fixture_listing());
    store.remove_snapshot("check").unwrap();
    // Snapshots the child left behind are complete records; drop them.
    for s in store.snapshots() {
        store.remove_snapshot(&s.key).unwrap();
    }
}

#[test]
fn sigkill_at_any_moment_leaves_a_consistent_store() {
    if let Ok(root) = std::env::var(CHILD_ENV) {
        child(Path::new(&root));
    }
    berth_testutil::require_root();
    let dir = berth_testutil::short_tempdir("bi-crash");
    let root = dir.path().join("root");
    let mut rng = rand::rng();
    for round in 0..10 {
        let mut c = Command::new(std::env::current_exe().unwrap())
            .args([TEST_NAME, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &root)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Let it get going, then kill it somewhere in the middle of something.
        std::thread::sleep(Duration::from_millis(rng.random_range(100..1500)));
        assert!(c.try_wait().unwrap().is_none(), "round {round}: the child died on its own");
        c.kill().unwrap();
        c.wait().unwrap();
        check_consistent(&root);
    }
}

/// After a power loss without `durable_layers`, a recorded image may miss layer data
/// that never reached the disk; the store drops such images when it opens.
#[test]
fn images_missing_data_after_a_power_loss_are_dropped_at_open() {
    let mut ts = TestStore::with_options(
        "bi-power",
        berth_image::StoreOptions {
            durable_layers: false,
            ..options()
        },
    );
    ts.load_fixture("base-docker-save.tar");
    ts.load_fixture("layers-docker-save.tar");
    // Simulate the lost rename of the top layer of fixture/layers.
    let rec = ts.store().record("fixture/layers:1.0").unwrap();
    let top = &rec.layers.last().unwrap().chain_id;
    let root = ts.root();
    ts.store = None;
    fs::rename(root.join("layers").join(top.hex()), root.join("lost")).unwrap();
    ts.reopen();
    let s = ts.store();
    assert!(s.resolve("fixture/layers:1.0").is_err());
    assert!(s.resolve(LAYERS_ID).is_err());
    assert_eq!(s.resolve("fixture/base:1.0").unwrap().to_string(), BASE_ID);
    // Its other layers are garbage now, except the one the base image shares.
    assert_eq!(s.layers().list().unwrap().len(), 1);
    // Loading it again repairs it.
    ts.load_fixture("layers-docker-save.tar");
    assert_eq!(ts.store().resolve("fixture/layers:1.0").unwrap().to_string(), LAYERS_ID);
}
