//! `ensure_manifest`: images made here (import, commit, docker-archive load) get a
//! Docker schema2 manifest whose gzip layers decompress to their DiffIDs, recorded
//! crash-safely and reused (by later calls, by other images with the same layer).

mod common;

use std::fs;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;

use berth_image::manifest::{self, DOCKER_LAYER_GZIP, DOCKER_MANIFEST, ManifestDoc};
use berth_image::{CommitOptions, Descriptor, Digest, ErrorKind, ImageStore, ImportOptions, SnapshotOptions};
use common::*;
use sha2::{Digest as _, Sha256};

fn import_busybox(ts: &TestStore, tag: &str) -> Digest {
    let tar = berth_testutil::busybox_rootfs_tar(ts.dir.path());
    ts.store()
        .import(
            &tar[..],
            &ImportOptions {
                changes: vec![r#"CMD ["sh"]"#.into()],
                tag: Some(tag.into()),
                ..Default::default()
            },
        )
        .unwrap()
}

/// An overlay whiteout (a 0:0 character device), as a container's deletion leaves in
/// its upper directory.
fn whiteout(p: &std::path::Path) {
    rustix::fs::mknodat(
        rustix::fs::CWD,
        p,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0),
        0,
    )
    .unwrap();
}

/// Parses the manifest and checks every layer: Docker media types, the blob is in the
/// store with the listed size, and it gunzips to the image's DiffID. Returns the layers.
fn check_manifest(store: &ImageStore, id: &Digest, m: &Descriptor) -> Vec<Descriptor> {
    assert_eq!(m.media_type, DOCKER_MANIFEST);
    let bytes = store.content().read_blob(&m.digest, 1 << 20).unwrap();
    assert_eq!(bytes.len() as u64, m.size);
    let ManifestDoc::Manifest(parsed) = manifest::parse(&bytes, None).unwrap() else {
        panic!("not an image manifest")
    };
    assert_eq!(parsed.config.digest, *id, "the config is the image");
    assert_eq!(parsed.config.media_type, manifest::DOCKER_CONFIG);
    let config = store.config(&id.to_string()).unwrap();
    assert_eq!(parsed.layers.len(), config.rootfs.diff_ids.len());
    for (l, diff_id) in parsed.layers.iter().zip(&config.rootfs.diff_ids) {
        assert_eq!(l.media_type, DOCKER_LAYER_GZIP);
        assert_eq!(store.content().info(&l.digest).unwrap().size, l.size);
        let f = store.content().open_blob(&l.digest).unwrap();
        let mut tar = Vec::new();
        flate2::read::GzDecoder::new(f).read_to_end(&mut tar).unwrap();
        assert_eq!(format!("sha256:{}", hex::encode(Sha256::digest(&tar))), diff_id.to_string());
    }
    // The record now lists the blobs the manifest lists.
    let rec = store.record(&id.to_string()).unwrap();
    assert_eq!(rec.manifest.as_ref(), Some(m));
    let blobs: Vec<Descriptor> = rec.layers.iter().map(|l| l.blob.clone()).collect();
    assert_eq!(blobs, parsed.layers);
    parsed.layers
}

#[test]
fn imported_and_committed_images_get_manifests_that_are_reused() {
    let mut ts = TestStore::new("bi-push");
    let base = import_busybox(&ts, "local/bb:1");
    assert!(ts.store().record(&base.to_string()).unwrap().manifest.is_none());
    let old_blob = ts.store().record(&base.to_string()).unwrap().layers[0].blob.clone();

    let m = ts.store().ensure_manifest(&base).unwrap();
    let base_layers = check_manifest(ts.store(), &base, &m);
    // The uncompressed blob nothing lists any more is collected; the layer's files stay.
    assert!(!ts.store().content().exists(&old_blob.digest), "uncompressed blob kept");
    assert!(base_layers[0].size < old_blob.size * 3 / 4, "gzip made it smaller");
    // Again: the same manifest, nothing new written.
    let blobs_before = ts.store().content().list().unwrap().len();
    assert_eq!(ts.store().ensure_manifest(&base).unwrap(), m);
    assert_eq!(ts.store().content().list().unwrap().len(), blobs_before);

    // A container adds a file, changes one and deletes one; commit it.
    let cdir = ts.dir.path().join("c1");
    let snap = ts.store().prepare_snapshot("c1", "local/bb:1", &cdir, &SnapshotOptions::default()).unwrap();
    fs::create_dir_all(snap.upper.join("etc")).unwrap();
    fs::write(snap.upper.join("etc/motd"), b"committed\n").unwrap();
    fs::write(snap.upper.join("hello"), b"world\n").unwrap();
    fs::set_permissions(snap.upper.join("hello"), fs::Permissions::from_mode(0o4755)).unwrap();
    // An overlay whiteout for /bin/vi (a 0:0 character device in the upper dir).
    fs::create_dir_all(snap.upper.join("bin")).unwrap();
    whiteout(&snap.upper.join("bin/vi"));
    let child = ts
        .store()
        .commit("c1", &CommitOptions { tag: Some("local/bb:2".into()), ..Default::default() })
        .unwrap();
    let cm = ts.store().ensure_manifest(&child).unwrap();
    let child_layers = check_manifest(ts.store(), &child, &cm);
    assert_eq!(child_layers.len(), 2);
    assert_eq!(child_layers[0], base_layers[0], "the base layer's gzip blob is reused");
    // The committed layer carries the deletion as a `.wh.` entry.
    let f = ts.store().content().open_blob(&child_layers[1].digest).unwrap();
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(f).read_to_end(&mut tar).unwrap();
    let listing = tar_listing(&tar);
    assert!(listing.iter().any(|l| l.ends_with(" bin/.wh.vi")), "{listing:?}");
    assert!(listing.iter().any(|l| l.starts_with("f 104755 0:0 6 hello")), "{listing:?}");

    // Recorded crash-safely: a reopened store has the same manifests, and the image
    // still runs from the same layers.
    ts.store().remove_snapshot("c1").unwrap();
    ts.reopen();
    assert_eq!(ts.store().record("local/bb:2").unwrap().manifest, Some(cm.clone()));
    check_manifest(ts.store(), &child, &cm);
    let cdir = ts.dir.path().join("c2");
    ts.store().prepare_snapshot("c2", "local/bb:2", &cdir, &SnapshotOptions::default()).unwrap();
    let rootfs = cdir.join("rootfs");
    ts.store().mount_snapshot("c2", &rootfs).unwrap();
    assert_eq!(chroot_run(&rootfs, &["/bin/cat", "/hello"]), "world\n");
    assert!(!rootfs.join("bin/vi").exists());
    ts.store().remove_snapshot("c2").unwrap();

    // Saving still gives the layers as tars (decompressed from the gzip blobs): a fresh
    // store loads the archive to the same image.
    let archive = ts.store().save(&["local/bb:2"], Vec::new()).unwrap();
    let other = TestStore::new("bi-push2");
    let loaded = other.store().load(&archive[..], &mut |_| {}).unwrap();
    assert_eq!(loaded[0].id, child);
}

#[test]
fn a_loaded_docker_archive_gets_a_manifest() {
    let ts = TestStore::new("bi-pushl");
    ts.load_fixture("layers-docker-save.tar");
    let id = Digest::parse(LAYERS_ID).unwrap();
    let m = ts.store().ensure_manifest(&id).unwrap();
    let layers = check_manifest(ts.store(), &id, &m);
    assert_eq!(layers.len(), LAYERS_DIFF_IDS.len());
    // Inspect is unchanged (same ID, same DiffIDs).
    let insp = ts.store().inspect("fixture/layers:1.0").unwrap();
    assert_eq!(insp.id, LAYERS_ID);
    assert_eq!(insp.root_fs.layers, LAYERS_DIFF_IDS);
}

#[test]
fn pulled_images_keep_their_manifest_and_unknown_images_are_refused() {
    let ts = TestStore::new("bi-pusho");
    // An OCI archive brings its manifest: ensure_manifest hands it back untouched.
    ts.load_fixture("layers-oci-gzip.tar");
    let id = Digest::parse(OCI_CONFIG_ID).unwrap();
    let before = ts.store().record(&id.to_string()).unwrap();
    let m = before.manifest.clone().expect("an OCI layout keeps its manifest");
    assert_eq!(ts.store().ensure_manifest(&id).unwrap(), m);
    assert_eq!(ts.store().record(&id.to_string()).unwrap(), before);
    // An unknown image is a not-found error and writes nothing.
    let blobs = ts.store().content().list().unwrap().len();
    let e = ts.store().ensure_manifest(&Digest::of(b"nothing")).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert_eq!(ts.store().content().list().unwrap().len(), blobs);
}

#[test]
fn without_its_blob_a_layer_is_tarred_from_its_files() {
    let ts = TestStore::new("bi-pushd");
    let base = import_busybox(&ts, "local/bb:1");
    let cdir = ts.dir.path().join("c1");
    let snap = ts.store().prepare_snapshot("c1", "local/bb:1", &cdir, &SnapshotOptions::default()).unwrap();
    fs::create_dir_all(snap.upper.join("data/sub")).unwrap();
    fs::write(snap.upper.join("data/sub/f"), b"from the files\n").unwrap();
    std::os::unix::fs::symlink("sub/f", snap.upper.join("data/link")).unwrap();
    fs::create_dir_all(snap.upper.join("bin")).unwrap();
    whiteout(&snap.upper.join("bin/vi"));
    let child = ts.store().commit("c1", &CommitOptions::default()).unwrap();
    ts.store().remove_snapshot("c1").unwrap();
    // The committed layer's tar blob vanishes (as in a store that keeps only unpacked
    // layers): berth tarred it, so tarring its files again gives the same DiffID.
    let rec = ts.store().record(&child.to_string()).unwrap();
    fs::remove_file(ts.store().content().blob_path(&rec.layers[1].blob.digest)).unwrap();
    let m = ts.store().ensure_manifest(&child).unwrap();
    let cl = check_manifest(ts.store(), &child, &m);
    // The base image's own blob goes too: its manifest reuses the child's gzip blob.
    let base_rec = ts.store().record(&base.to_string()).unwrap();
    fs::remove_file(ts.store().content().blob_path(&base_rec.layers[0].blob.digest)).unwrap();
    let bm = ts.store().ensure_manifest(&base).unwrap();
    assert_eq!(check_manifest(ts.store(), &base, &bm)[0], cl[0]);

    // A layer another tool tarred (GNU tar here) cannot be rebuilt from its files
    // (entry order and headers differ; Docker keeps tar-split data for this): without
    // its blob the call fails, saying so, and changes nothing.
    let mut tar = berth_testutil::busybox_rootfs_tar(ts.dir.path());
    tar.extend_from_slice(&[0u8; 1024]); // a different DiffID than the base's
    let other = ts.store().import(&tar[..], &ImportOptions::default()).unwrap();
    let orec = ts.store().record(&other.to_string()).unwrap();
    fs::remove_file(ts.store().content().blob_path(&orec.layers[0].blob.digest)).unwrap();
    let blobs = ts.store().content().list().unwrap().len();
    let e = ts.store().ensure_manifest(&other).unwrap_err();
    assert!(e.to_string().contains("do not give back the same tar"), "{e}");
    assert_eq!(ts.store().record(&other.to_string()).unwrap(), orec);
    assert_eq!(ts.store().content().list().unwrap().len(), blobs);
}

#[test]
fn concurrent_calls_agree() {
    let ts = TestStore::new("bi-pushc");
    ts.load_fixture("layers-docker-save.tar");
    let id = Digest::parse(LAYERS_ID).unwrap();
    let store = ts.store();
    let results: Vec<Descriptor> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..3).map(|_| s.spawn(|| store.ensure_manifest(&id).unwrap())).collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(results.iter().all(|m| *m == results[0]), "{results:?}");
    check_manifest(store, &id, &results[0]);
    // Nothing but the image's own blobs is left after a collection.
    store.gc().unwrap();
    let rec = store.record(&id.to_string()).unwrap();
    let mut want: Vec<Digest> = rec.layers.iter().map(|l| l.blob.digest.clone()).collect();
    want.push(id.clone());
    want.push(results[0].digest.clone());
    want.sort();
    want.dedup();
    let mut have: Vec<Digest> = store.content().list().unwrap().into_iter().map(|b| b.digest).collect();
    have.sort();
    assert_eq!(have, want);
}

#[test]
fn compressed_imports_reuse_gzip_and_convert_zstd() {
    let ts = TestStore::new("bi-pushz");
    let tar = berth_testutil::busybox_rootfs_tar(ts.dir.path());
    // A gzip import keeps its blob: the manifest lists it as it is.
    let gz = common::tar::gzip(&tar);
    let gid = ts.store().import(&gz[..], &ImportOptions { tag: Some("local/gz:1".into()), ..Default::default() }).unwrap();
    let before = ts.store().record(&gid.to_string()).unwrap().layers[0].blob.clone();
    let m = ts.store().ensure_manifest(&gid).unwrap();
    let layers = check_manifest(ts.store(), &gid, &m);
    assert_eq!((layers[0].digest.clone(), layers[0].size), (before.digest, before.size), "not recompressed");
    // A zstd import is decompressed and gzipped (schema2 has no zstd layers); the layer
    // has the same DiffID as the gzip import, so its blob is the one above.
    let mut tar2 = tar.clone();
    tar2.extend_from_slice(&[0u8; 512]);
    let zst = common::tar::zstd(&tar2);
    let zid = ts.store().import(&zst[..], &ImportOptions { tag: Some("local/zst:1".into()), ..Default::default() }).unwrap();
    let zm = ts.store().ensure_manifest(&zid).unwrap();
    let zl = check_manifest(ts.store(), &zid, &zm);
    assert_ne!(zl[0].digest, layers[0].digest, "a different layer");
    assert_eq!(zl[0].media_type, DOCKER_LAYER_GZIP);
}
