//! One store, many threads: loads of the same image at once, loads racing removals and
//! garbage collection; the store ends consistent.

mod common;

use std::fs;
use std::sync::{Arc, Barrier};

use berth_image::{ImageError, ImageUsers};
use common::*;

#[test]
fn two_loads_of_the_same_image_at_once() {
    let ts = TestStore::new("bi-conc1");
    let data = Arc::new(fs::read(fixture("layers-docker-save.tar")).unwrap());
    let store = ts.store();
    let barrier = Barrier::new(2);
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let data = Arc::clone(&data);
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    store.load(&data[..], &mut |_| {}).unwrap()
                })
            })
            .collect();
        for h in handles {
            let loaded = h.join().unwrap();
            assert_eq!(loaded[0].id.to_string(), LAYERS_ID);
        }
    });
    assert_eq!(store.layers().list().unwrap().len(), 5);
    assert_eq!(store.list().unwrap().len(), 1);
    assert_eq!(list_files(&ts.root().join("layers/l")).len(), 5, "one short link per layer");
    assert!(list_files(&ts.root().join("layers/.staging")).is_empty());
    assert!(list_files(&ts.root().join("content/ingest")).is_empty());
    // Every layer is complete: the export matches Docker's.
    let cdir = ts.dir.path().join("c");
    store
        .prepare_snapshot("c", LAYERS_ID, &cdir, &Default::default())
        .unwrap();
    assert_eq!(tar_listing(&store.export("c", Vec::new()).unwrap()), fixture_listing());
    store.remove_snapshot("c").unwrap();
}

/// Loads, removals and collections race for a while; afterwards every image on record
/// has its layers and blobs, and nothing unreferenced is left after a final GC.
#[test]
fn loads_race_removals_and_gc() {
    let ts = TestStore::new("bi-conc2");
    let layers = Arc::new(fs::read(fixture("layers-docker-save.tar")).unwrap());
    let base = Arc::new(fs::read(fixture("base-docker-save.tar")).unwrap());
    let oci = Arc::new(fs::read(fixture("layers-oci-zstd.tar")).unwrap());
    let store = ts.store();
    std::thread::scope(|s| {
        for (i, data) in [layers, base, oci].into_iter().enumerate() {
            s.spawn(move || {
                for _ in 0..4 {
                    store.load(&data[..], &mut |_| {}).unwrap();
                    // Remove what this thread loaded; another thread may have removed
                    // or re-tagged it meanwhile.
                    let name = ["fixture/layers:latest", "fixture/base:1.0", OCI_CONFIG_ID][i];
                    match store.remove(name, true, true, &ImageUsers::new()) {
                        Ok(_) | Err(ImageError::ImageNotFound(_)) => {}
                        Err(e) => panic!("remove {name}: {e}"),
                    }
                }
            });
        }
        s.spawn(move || {
            for _ in 0..20 {
                store.gc().unwrap();
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        });
    });
    // Consistency: what is on record is complete.
    for img in store.list().unwrap() {
        let rec = store.record(&img.id.to_string()).unwrap();
        assert!(store.content().exists(&img.id));
        for l in rec.layers {
            assert!(store.layers().exists(&l.chain_id), "layer {} of {}", l.chain_id, img.id);
            assert!(store.content().exists(&l.blob.digest));
        }
    }
    for img in store.list().unwrap() {
        store.remove(&img.id.to_string(), true, true, &ImageUsers::new()).unwrap();
    }
    store.gc().unwrap();
    assert_store_empty(&ts);
}
