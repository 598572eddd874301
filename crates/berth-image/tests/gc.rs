//! Tags, removal with Docker's rules, pruning, disk usage, and garbage collection:
//! shared layers stay, unreferenced ones go.

mod common;

use berth_image::{DeleteItem, ImageError, ImageUsers, LabelFilter, PruneFilters};
use common::*;

fn untagged(s: &str) -> DeleteItem {
    DeleteItem::Untagged(s.into())
}

fn deleted(s: &str) -> DeleteItem {
    DeleteItem::Deleted(s.into())
}

fn chain_ids() -> Vec<String> {
    let ids: Vec<berth_image::Digest> = LAYERS_DIFF_IDS.iter().map(|d| berth_image::Digest::parse(d).unwrap()).collect();
    berth_image::digest::chain_ids(&ids).iter().map(|d| d.to_string()).collect()
}

#[test]
fn removing_images_keeps_shared_layers_and_drops_the_rest() {
    let ts = TestStore::new("bi-gc1");
    ts.load_fixture("base-docker-save.tar");
    ts.load_fixture("layers-docker-save.tar");
    let s = ts.store();
    assert_eq!(s.layers().list().unwrap().len(), 5);
    let none = ImageUsers::new();

    // One of two tags: only an untag.
    assert_eq!(s.remove("fixture/layers:1.0", false, true, &none).unwrap(), vec![untagged("fixture/layers:1.0")]);
    assert_eq!(s.layers().list().unwrap().len(), 5);
    // The last tag: untag, delete the image, delete its own layers top-down; the base
    // layer is shared with fixture/base and stays.
    let items = s.remove("fixture/layers", false, true, &none).unwrap();
    let chains = chain_ids();
    let mut want = vec![untagged("fixture/layers:latest"), deleted(LAYERS_ID)];
    want.extend(chains[1..].iter().rev().map(|c| deleted(c)));
    assert_eq!(items, want);
    let left = s.layers().list().unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].chain_id.to_string(), LAYERS_DIFF_IDS[0]);
    assert!(s.resolve(LAYERS_ID).is_err());
    // Blobs: the base config and its layer blob only.
    assert_eq!(list_files(&ts.root().join("content/blobs/sha256")).len(), 2);
    // The base image still works.
    assert_eq!(s.inspect("fixture/base:1.0").unwrap().size, 1984295);
    let items = s.remove(BASE_ID, false, true, &none).unwrap();
    assert_eq!(items, vec![untagged("fixture/base:1.0"), deleted(BASE_ID), deleted(LAYERS_DIFF_IDS[0])]);
    assert_store_empty(&ts);
    assert!(list_files(&ts.root().join("layers/l")).is_empty(), "short links removed");
    assert!(matches!(s.remove("fixture/base:1.0", false, true, &none), Err(ImageError::ImageNotFound(_))));
}

#[test]
fn docker_rmi_rules() {
    let ts = TestStore::new("bi-gc2");
    ts.load_fixture("base-docker-save.tar");
    let s = ts.store();
    let none = ImageUsers::new();
    s.tag("fixture/base:1.0", "other/name:v1").unwrap();
    assert_eq!(s.inspect(BASE_ID).unwrap().repo_tags, vec!["fixture/base:1.0", "other/name:v1"]);
    assert!(s.inspect(BASE_ID).unwrap().metadata.last_tag_time.is_some());
    // By ID with references in two repositories: refused unless forced.
    let e = s.remove(&BASE_ID[7..19], false, true, &none).unwrap_err();
    assert_eq!(
        e.to_string(),
        "conflict: unable to delete fd16d151ea2d (must be forced) - image is referenced in multiple repositories"
    );
    assert_eq!(e.kind(), berth_image::ErrorKind::Conflict);

    let id = s.resolve(BASE_ID).unwrap();
    let mut running = ImageUsers::new();
    running.add(id.clone(), "a".repeat(64), true);
    let mut stopped = ImageUsers::new();
    stopped.add(id.clone(), "b".repeat(64), false);
    // Untagging one of several tags is fine even while a container runs it.
    assert_eq!(s.remove("other/name:v1", false, true, &running).unwrap(), vec![untagged("other/name:v1")]);
    // The last tag of an image a container uses needs force.
    let e = s.remove("fixture/base:1.0", false, true, &stopped).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!(
            "conflict: unable to remove repository reference \"fixture/base:1.0\" (must force) - container {} is using its referenced image fd16d151ea2d",
            "b".repeat(12)
        )
    );
    // By ID: a running container cannot be forced away, a stopped one can.
    let e = s.remove(BASE_ID, true, true, &running).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("conflict: unable to delete fd16d151ea2d (cannot be forced) - image is being used by running container {}", "a".repeat(12))
    );
    let e = s.remove(BASE_ID, false, true, &stopped).unwrap_err();
    assert!(e.to_string().contains("(must be forced) - image is being used by stopped container bbbbbbbbbbbb"), "{e}");
    let items = s.remove(BASE_ID, true, true, &stopped).unwrap();
    assert_eq!(items, vec![untagged("fixture/base:1.0"), deleted(BASE_ID), deleted(LAYERS_DIFF_IDS[0])]);
    // Tags of a name without a tag mean `latest`, and digests are refused as targets.
    ts.load_fixture("base-docker-save.tar");
    s.tag("fixture/base:1.0", "plain").unwrap();
    assert_eq!(s.resolve("plain:latest").unwrap(), id);
    let e = s
        .tag("plain", "x@sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824")
        .unwrap_err();
    assert!(e.to_string().contains("digest"), "{e}");
    assert!(matches!(s.tag("plain", "UPPER:1"), Err(ImageError::InvalidReference(_))));
    assert!(matches!(s.tag("nope:1", "x:1"), Err(ImageError::ImageNotFound(_))));
}

#[test]
fn prune_dangling_and_all() {
    let ts = TestStore::new("bi-gc3");
    ts.load_fixture("layers-docker-save.tar");
    // skopeo's copy takes the 1.0 tag; Docker's image keeps `latest`.
    ts.load_fixture("layers-oci-gzip.tar");
    ts.load_fixture("base-docker-save.tar");
    let s = ts.store();
    assert_eq!(s.list().unwrap().len(), 3);
    // Make the base image dangling by moving its only tag.
    s.tag(OCI_CONFIG_ID, "fixture/base:1.0").unwrap();
    let base = s.list().unwrap().into_iter().find(|i| i.id.to_string() == BASE_ID).unwrap();
    assert!(base.repo_tags.is_empty());

    let report = s.prune(false, &ImageUsers::new(), &PruneFilters::default()).unwrap();
    assert_eq!(report.deleted, vec![deleted(BASE_ID)]);
    assert_eq!(report.space_reclaimed, 0, "its only layer is shared with the tagged images");
    assert_eq!(s.list().unwrap().len(), 2);

    // prune -a: the image a container uses stays, the other one goes (its layers are
    // shared with the kept one, so nothing is reclaimed).
    let used = s.resolve(OCI_CONFIG_ID).unwrap();
    let mut users = ImageUsers::new();
    users.add(used, "c".repeat(64), false);
    let report = s.prune(true, &users, &PruneFilters::default()).unwrap();
    assert_eq!(report.deleted, vec![untagged("fixture/layers:latest"), deleted(LAYERS_ID)]);
    assert_eq!(report.space_reclaimed, 0);

    // Label filters select what is pruned.
    let other = PruneFilters {
        labels: vec![LabelFilter::parse("org.example.layers=other", false)],
        ..Default::default()
    };
    assert!(s.prune(true, &ImageUsers::new(), &other).unwrap().deleted.is_empty());
    let until = PruneFilters {
        until: Some(1_000_000_000),
        ..Default::default()
    };
    assert!(s.prune(true, &ImageUsers::new(), &until).unwrap().deleted.is_empty());
    let matching = PruneFilters {
        labels: vec![LabelFilter::parse("org.example.layers=several", false)],
        ..Default::default()
    };
    let report = s.prune(true, &ImageUsers::new(), &matching).unwrap();
    assert!(report.deleted.contains(&deleted(OCI_CONFIG_ID)), "{:?}", report.deleted);
    assert_eq!(report.space_reclaimed, 1984343);
    assert_store_empty(&ts);
}

#[test]
fn disk_usage_figures() {
    let ts = TestStore::new("bi-gc4");
    ts.load_fixture("base-docker-save.tar");
    ts.load_fixture("layers-docker-save.tar");
    let du = ts.store().disk_usage().unwrap();
    assert_eq!(du.layers_size, 1984343);
    assert_eq!(du.images.len(), 2);
    let base = du.images.iter().find(|i| i.summary.id.to_string() == BASE_ID).unwrap();
    let layers = du.images.iter().find(|i| i.summary.id.to_string() == LAYERS_ID).unwrap();
    assert_eq!((base.summary.size, base.shared_size, base.unique_size), (1984295, 1984295, 0));
    assert_eq!((layers.summary.size, layers.shared_size, layers.unique_size), (1984343, 1984295, 48));
    let list = ts.store().list().unwrap();
    assert_eq!(list[0].id.to_string(), LAYERS_ID, "newest first");
    assert_eq!(list[0].labels["org.example.layers"], "several");
    assert_eq!(list[0].created, 1795812621);
}

#[test]
fn gc_removes_only_what_nothing_refers_to() {
    let ts = TestStore::new("bi-gc5");
    ts.load_fixture("base-docker-save.tar");
    let s = ts.store();
    // An orphan blob and an orphan (leased) blob.
    let orphan = s.content().write_blob(b"orphan").unwrap().digest;
    let lease = s.lease();
    let kept = s.content().write_blob(b"leased").unwrap().digest;
    lease.protect_blob(&kept);
    let report = s.gc().unwrap();
    assert_eq!(report.blobs, vec![orphan.clone()]);
    assert!(report.layers.is_empty());
    assert!(s.content().exists(&kept));
    assert!(!s.content().exists(&orphan));
    drop(lease);
    assert_eq!(s.gc().unwrap().blobs, vec![kept]);
    // A layer directory nothing refers to (e.g. left by a crash) goes too.
    let staged = s.layers().unpack(&common::tar::build(&[common::tar::Entry::file("x", b"1")])[..], s.unpack_limit()).unwrap();
    let info = s.layers().install(staged, None).unwrap();
    let report = s.gc().unwrap();
    assert_eq!(report.layers, vec![info.chain_id]);
    assert_eq!(s.list().unwrap().len(), 1);
    assert_eq!(s.layers().list().unwrap().len(), 1);
}
