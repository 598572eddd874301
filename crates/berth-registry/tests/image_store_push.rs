//! Images made locally (import, commit) pushed from berth-image's store to Debian's
//! docker-registry: the store makes their gzip layers and schema2 manifest, the
//! client uploads them, a fresh store pulls them back to the same image IDs, and
//! skopeo copies them out.

mod common;

use std::process::Command;
use std::sync::Arc;

use berth_image::{CommitOptions, ImageStore, ImportOptions, SnapshotOptions, StoreOptions};
use berth_registry::Reference;
use berth_registry::client::{PullOptions, PushOptions};
use berth_registry::image_store::ImageStoreContent;
use berth_registry::store::ContentStore;
use common::distribution::{DistAuth, DistributionRegistry};
use common::*;


#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_and_committed_images_push_and_pull_back() {
    berth_testutil::require_root();
    let dir = berth_testutil::short_tempdir("breg-lp");
    let dist = DistributionRegistry::start(DistAuth::None);
    let host = dist.addr.clone();
    let certs = tempfile::tempdir().unwrap();
    let c = client(certs.path());
    let images = Arc::new(ImageStore::open(&dir.path().join("data"), StoreOptions::default()).unwrap());

    // An imported busybox, and a commit on top of it with a new file and a deletion.
    let base = images
        .import(
            &berth_testutil::busybox_rootfs_tar(dir.path())[..],
            &ImportOptions {
                changes: vec![r#"CMD ["sh"]"#.into()],
                tag: Some(format!("{host}/local/bb:1")),
                ..Default::default()
            },
        )
        .unwrap();
    let snap = images
        .prepare_snapshot("c1", &base.to_string(), &dir.path().join("c1"), &SnapshotOptions::default())
        .unwrap();
    std::fs::write(snap.upper.join("hello"), b"pushed from berth\n").unwrap();
    std::fs::create_dir_all(snap.upper.join("bin")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        snap.upper.join("bin/vi"),
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0),
        0,
    )
    .unwrap();
    let child = images
        .commit("c1", &CommitOptions { tag: Some(format!("{host}/local/bb:2")), ..Default::default() })
        .unwrap();
    images.remove_snapshot("c1").unwrap();

    let sources = dir.path().join("data/sources");
    let mut manifests = Vec::new();
    for (tag, id, pushed_layers) in [("1", &base, 1), ("2", &child, 1)] {
        let content = Arc::new(ImageStoreContent::new(images.clone(), Some(&sources)).unwrap());
        let m = content.manifest_for_push(id).unwrap();
        assert_eq!(m.media_type, "application/vnd.docker.distribution.manifest.v2+json");
        let target = Reference::parse(&format!("{host}/local/bb:{tag}")).unwrap();
        let ev = Events::default();
        let pushed = c
            .push(&target, &m, content.clone() as Arc<dyn ContentStore>, &PushOptions::default(), &ev.sink())
            .await
            .unwrap();
        assert_eq!(pushed.digest, m.digest, "the registry stored the manifest berth made");
        let statuses = ev.statuses();
        assert_eq!(statuses.iter().filter(|s| s.ends_with(": Pushed")).count(), pushed_layers, "{statuses:?}");
        if tag == "2" {
            // The base layer went up with bb:1: the same gzip blob, already there.
            assert_eq!(statuses.iter().filter(|s| s.ends_with(": Layer already exists")).count(), 1, "{statuses:?}");
        }
        assert_eq!(content.record_pushed(&pushed, &m).unwrap().as_ref(), Some(id));
        let insp = images.inspect(&target.to_string()).unwrap();
        assert!(insp.repo_digests.contains(&format!("{host}/local/bb@{}", pushed.digest)), "{:?}", insp.repo_digests);
        manifests.push(m);
    }
    // A second push of the same image sends the same manifest (nothing recompressed)
    // and mounts the blobs from the first repository.
    let content = Arc::new(ImageStoreContent::new(images.clone(), Some(&sources)).unwrap());
    let again = content.manifest_for_push(&child).unwrap();
    assert_eq!(again, manifests[1]);
    let ev = Events::default();
    let target = Reference::parse(&format!("{host}/copies/bb:2")).unwrap();
    let pushed = c
        .push(&target, &again, content.clone() as Arc<dyn ContentStore>, &PushOptions::default(), &ev.sink())
        .await
        .unwrap();
    assert_eq!(pushed.digest, again.digest);
    assert_eq!(ev.statuses().iter().filter(|s| s.ends_with(": Mounted from local/bb")).count(), 2, "{:?}", ev.statuses());

    // Pulling it back into the store that made it downloads no layer: the gzip blobs
    // the push made are the ones the registry lists.
    let content = Arc::new(ImageStoreContent::new(images.clone(), None).unwrap());
    let ev = Events::default();
    let r = Reference::parse(&format!("{host}/local/bb:2")).unwrap();
    let pulled = c
        .pull(&r, &PullOptions::default(), content.clone() as Arc<dyn ContentStore>, &ev.sink())
        .await
        .unwrap();
    assert_eq!(content.record_pulled(&pulled).unwrap(), child);
    assert_eq!(ev.statuses().iter().filter(|s| s.ends_with(": Already exists")).count(), 2, "{:?}", ev.statuses());

    // A fresh store pulls both back: same image IDs, same DiffIDs, the files are there.
    let fresh = Arc::new(ImageStore::open(&dir.path().join("fresh"), StoreOptions::default()).unwrap());
    for (tag, id) in [("1", &base), ("2", &child)] {
        let content = Arc::new(ImageStoreContent::new(fresh.clone(), None).unwrap());
        let r = Reference::parse(&format!("{host}/local/bb:{tag}")).unwrap();
        let pulled = c
            .pull(&r, &PullOptions::default(), content.clone() as Arc<dyn ContentStore>, &Events::default().sink())
            .await
            .unwrap();
        assert_eq!(content.record_pulled(&pulled).unwrap(), *id, "bb:{tag} pulled back to the same ID");
        assert_eq!(
            fresh.inspect(&r.to_string()).unwrap().root_fs.layers,
            images.inspect(&id.to_string()).unwrap().root_fs.layers
        );
    }
    let rec = fresh.record(&child.to_string()).unwrap();
    let top = fresh.layers().diff_dir(&rec.layers[1].chain_id);
    assert_eq!(std::fs::read_to_string(top.join("hello")).unwrap(), "pushed from berth\n");
    use std::os::unix::fs::FileTypeExt;
    assert!(std::fs::symlink_metadata(top.join("bin/vi")).unwrap().file_type().is_char_device(), "whiteout");

    // skopeo copies the pushed image out of the registry; the archive loads back into
    // yet another store as the same image.
    let archive = dir.path().join("bb2.tar");
    let src = format!("docker://{host}/local/bb:2");
    let dst = format!("docker-archive:{}:local/bb:2", archive.display());
    let out = tokio::task::spawn_blocking(move || {
        Command::new("skopeo")
            .args(["--insecure-policy", "copy", "--src-tls-verify=false", &src, &dst])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "skopeo: {}", String::from_utf8_lossy(&out.stderr));
    let third = ImageStore::open(&dir.path().join("third"), StoreOptions::default()).unwrap();
    let loaded = third.load(std::fs::File::open(&archive).unwrap(), &mut |_| {}).unwrap();
    assert_eq!(loaded[0].id, child);
}
