//! Archives written by real Docker and skopeo load into berth with the same IDs, tags,
//! DiffIDs and file trees Docker reported; what berth saves loads back the same.

mod common;

use std::fs;

use berth_image::{Digest, LoadEvent, SnapshotOptions};
use common::*;

#[test]
fn base_fixture_loads_with_dockers_id_tags_and_diff_id() {
    let ts = TestStore::new("bi-base");
    let mut events = Vec::new();
    let f = fs::File::open(fixture("base-docker-save.tar")).unwrap();
    let loaded = ts.store().load(f, &mut |e| events.push(e.to_string())).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].id.to_string(), BASE_ID);
    assert_eq!(events, vec!["Loaded image: fixture/base:1.0"]);
    let insp = ts.store().inspect("fixture/base:1.0").unwrap();
    assert_eq!(insp.id, BASE_ID);
    assert_eq!(insp.repo_tags, vec!["fixture/base:1.0"]);
    assert_eq!(insp.root_fs.layers, vec![LAYERS_DIFF_IDS[0]]);
    assert_eq!(insp.size, 1984295, "Docker's Size for fixture/base:1.0");
    assert_eq!(insp.config.cmd, Some(vec!["sh".to_string()]));
    assert_eq!(insp.comment, "Imported from -");
    assert_eq!(insp.created, "2026-11-27T20:50:20.618739265Z");
}

#[test]
fn layers_fixture_matches_docker_inspect() {
    let ts = TestStore::new("bi-lay");
    let mut events = Vec::new();
    let f = fs::File::open(fixture("layers-docker-save.tar")).unwrap();
    let loaded = ts.store().load(f, &mut |e| events.push(e.to_string())).unwrap();
    assert_eq!(loaded[0].id.to_string(), LAYERS_ID);
    assert_eq!(
        events,
        vec!["Loaded image: fixture/layers:1.0", "Loaded image: fixture/layers:latest"]
    );

    let ours = serde_json::to_value(ts.store().inspect("fixture/layers").unwrap()).unwrap();
    let docker: serde_json::Value =
        serde_json::from_slice(&fs::read(fixture("docker-inspect/image-layers.json")).unwrap()).unwrap();
    let docker = &docker[0];
    for field in [
        "Id",
        "RepoTags",
        "RepoDigests",
        "Comment",
        "Created",
        "Container",
        "ContainerConfig",
        "DockerVersion",
        "Author",
        "Config",
        "Architecture",
        "Os",
        "Size",
        "VirtualSize",
        "RootFS",
    ] {
        assert_eq!(ours[field], docker[field], "field {field}");
    }
    // Resolution by ID, prefix and the other tag.
    let store = ts.store();
    assert_eq!(store.resolve(LAYERS_ID).unwrap().to_string(), LAYERS_ID);
    assert_eq!(store.resolve(&LAYERS_ID[7..]).unwrap().to_string(), LAYERS_ID);
    assert_eq!(store.resolve("30757304e8ef").unwrap().to_string(), LAYERS_ID);
    assert_eq!(store.resolve("docker.io/fixture/layers:latest").unwrap().to_string(), LAYERS_ID);
    assert_eq!(
        store.resolve("fixture/layers:2.0").unwrap_err().to_string(),
        "No such image: fixture/layers:2.0"
    );
}

#[test]
fn layers_fixture_history_matches_docker_history() {
    let ts = TestStore::new("bi-hist");
    ts.load_fixture("layers-docker-save.tar");
    let h = ts.store().history("fixture/layers:1.0").unwrap();
    let tsv = fs::read_to_string(fixture("docker-inspect/history-layers.tsv")).unwrap();
    let docker: Vec<Vec<&str>> = tsv.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(h.len(), docker.len());
    for (ours, theirs) in h.iter().zip(&docker) {
        assert_eq!(ours.created_by, theirs[1]);
        let size = match theirs[2] {
            "0B" => 0,
            "16B" => 16,
            "11B" => 11,
            "21B" => 21,
            "1.98MB" => ours.size, // checked below: Docker rounds
            other => panic!("unexpected size {other}"),
        };
        assert_eq!(ours.size, size, "{}", theirs[1]);
    }
    assert_eq!(h.last().unwrap().size, 1984295);
    // Only the top entry is a local image (Docker's other IDs were its build cache).
    assert_eq!(h[0].id, LAYERS_ID);
    assert_eq!(h[0].tags, vec!["fixture/layers:1.0", "fixture/layers:latest"]);
    assert!(h[1..].iter().all(|x| x.id == "<missing>"));
}

/// The merged filesystem of a container from fixture/layers:1.0 (a real overlay mount
/// of the five layers plus the init layer) exports exactly what `docker export` gave.
#[test]
fn layers_fixture_file_tree_matches_docker_export() {
    let ts = TestStore::new("bi-tree");
    ts.load_fixture("layers-docker-save.tar");
    let cdir = ts.dir.path().join("c1");
    let snap = ts
        .store()
        .prepare_snapshot("c1", "fixture/layers:1.0", &cdir, &SnapshotOptions::default())
        .unwrap();
    assert_eq!(snap.lowers.len(), 6);
    // Through a live mount...
    let rootfs = cdir.join("rootfs");
    ts.store().mount_snapshot("c1", &rootfs).unwrap();
    assert_eq!(fs::read_to_string(rootfs.join("data/keep/a")).unwrap(), "changed\n");
    assert!(!rootfs.join("data/gone").exists());
    assert!(!rootfs.join("bin/vi").exists());
    let live = tar_listing(&ts.store().export("c1", Vec::new()).unwrap());
    ts.store().unmount_snapshot("c1").unwrap();
    assert!(!berth_image::mount::is_mount_point(&rootfs).unwrap());
    // ...and through export's own temporary mount.
    let cold = tar_listing(&ts.store().export("c1", Vec::new()).unwrap());
    let expected = fixture_listing();
    assert_eq!(live, expected);
    assert_eq!(cold, expected);
    // The container runs the image's command for real.
    ts.store().mount_snapshot("c1", &rootfs).unwrap();
    let out = chroot_run(&rootfs, &["/bin/sh", "-c", "GREETING='hello from a layer'; echo $GREETING; cat /data/hello.txt; ls /data/opaque"]);
    assert_eq!(out, format!("hello from a layer\n{}two\n", fs::read_to_string(fixture("hello.txt")).unwrap()));
    ts.store().remove_snapshot("c1").unwrap();
    assert!(!rootfs.join("bin").exists());
}

#[test]
fn oci_archives_from_skopeo_load_with_the_same_layers() {
    for (name, prefix) in [("layers-oci-gzip.tar", "bi-ocig"), ("layers-oci-zstd.tar", "bi-ociz")] {
        let ts = TestStore::new(prefix);
        let loaded = ts.load_fixture(name);
        assert_eq!(loaded.len(), 1, "{name}");
        assert_eq!(loaded[0].id.to_string(), OCI_CONFIG_ID, "{name}");
        assert_eq!(loaded[0].tags, vec!["fixture/layers:1.0"], "{name}");
        let insp = ts.store().inspect("fixture/layers:1.0").unwrap();
        assert_eq!(insp.root_fs.layers, LAYERS_DIFF_IDS.to_vec(), "{name}");
        assert_eq!(insp.size, 1984343, "{name}");
        let rec = ts.store().record("fixture/layers:1.0").unwrap();
        assert!(rec.manifest.is_some(), "the skopeo manifest is kept");
        let cdir = ts.dir.path().join("c");
        ts.store()
            .prepare_snapshot("c", "fixture/layers:1.0", &cdir, &SnapshotOptions::default())
            .unwrap();
        let listing = tar_listing(&ts.store().export("c", Vec::new()).unwrap());
        assert_eq!(listing, fixture_listing(), "{name}");
        ts.store().remove_snapshot("c").unwrap();
    }
}

/// Loading the docker-archive and both OCI archives into one store shares the layers:
/// same DiffIDs, same chain IDs, one directory each.
#[test]
fn the_same_layers_from_three_archives_are_stored_once() {
    let ts = TestStore::new("bi-share");
    ts.load_fixture("layers-docker-save.tar");
    ts.load_fixture("layers-oci-gzip.tar");
    ts.load_fixture("layers-oci-zstd.tar");
    ts.load_fixture("base-docker-save.tar");
    let layers = ts.store().layers().list().unwrap();
    assert_eq!(layers.len(), 5);
    // Two images: Docker's config and skopeo's (the two OCI archives share it).
    assert_eq!(ts.store().list().unwrap().len(), 3);
    // The tag fixture/layers:1.0 moved from Docker's image to skopeo's.
    assert_eq!(ts.store().resolve("fixture/layers:1.0").unwrap().to_string(), OCI_CONFIG_ID);
    assert_eq!(ts.store().resolve("fixture/layers:latest").unwrap().to_string(), LAYERS_ID);
}

#[test]
fn moving_a_tag_is_reported_like_docker() {
    let ts = TestStore::new("bi-move");
    ts.load_fixture("layers-docker-save.tar");
    let mut events = Vec::new();
    let f = fs::File::open(fixture("layers-oci-gzip.tar")).unwrap();
    ts.store().load(f, &mut |e| events.push(e.clone())).unwrap();
    assert_eq!(
        events,
        vec![
            LoadEvent::TagMoved {
                tag: "fixture/layers:1.0".into(),
                old_id: Digest::parse(LAYERS_ID).unwrap()
            },
            LoadEvent::LoadedTag("fixture/layers:1.0".into()),
        ]
    );
    assert_eq!(
        events[0].to_string(),
        format!("The image fixture/layers:1.0 already exists, renaming the old one with ID {LAYERS_ID} to empty string")
    );
}

#[test]
fn save_then_load_gives_the_same_image() {
    let ts = TestStore::new("bi-rt1");
    ts.load_fixture("layers-docker-save.tar");
    let saved = ts.store().save(&["fixture/layers"], Vec::new()).unwrap();
    // The archive is both a classic docker-archive and an OCI layout.
    let names: Vec<String> = {
        let mut ar = ::tar::Archive::new(&saved[..]);
        ar.entries().unwrap().map(|e| e.unwrap().path().unwrap().display().to_string()).collect()
    };
    for n in ["manifest.json", "index.json", "oci-layout", "repositories"] {
        assert!(names.contains(&n.to_string()), "{n} missing from {names:?}");
    }
    for d in LAYERS_DIFF_IDS {
        let p = format!("blobs/sha256/{}", &d[7..]);
        assert!(names.contains(&p), "layer {p} missing");
    }
    let other = TestStore::new("bi-rt2");
    let loaded = other.store().load(&saved[..], &mut |_| {}).unwrap();
    assert_eq!(loaded[0].id.to_string(), LAYERS_ID);
    assert_eq!(loaded[0].tags, vec!["fixture/layers:1.0", "fixture/layers:latest"]);
    // Layer tars are byte-identical to Docker's (same DiffIDs checked on load).
    let insp = other.store().inspect(LAYERS_ID).unwrap();
    assert_eq!(insp.root_fs.layers, LAYERS_DIFF_IDS.to_vec());

    // From an OCI (compressed) image, save decompresses layers to their DiffIDs.
    let oci = TestStore::new("bi-rt3");
    oci.load_fixture("layers-oci-zstd.tar");
    let saved = oci.store().save(&[OCI_CONFIG_ID], Vec::new()).unwrap();
    let back = TestStore::new("bi-rt4");
    let loaded = back.store().load(&saved[..], &mut |_| {}).unwrap();
    assert_eq!(loaded[0].id.to_string(), OCI_CONFIG_ID);
    assert!(loaded[0].tags.is_empty());
}

#[test]
fn oci_layout_out_keeps_blobs_and_manifest_digests() {
    let ts = TestStore::new("bi-oci1");
    ts.load_fixture("layers-oci-gzip.tar");
    let out_dir = ts.dir.path().join("layout");
    ts.store().save_oci_dir(&["fixture/layers:1.0"], &out_dir).unwrap();
    // skopeo's manifest comes back byte for byte (same digest, same compressed blobs).
    let skopeo_manifest = "f31b4d826ca453483e9201dda3eb98564a285df84c722bfeeff13f592c63dcf7";
    assert!(out_dir.join("blobs/sha256").join(skopeo_manifest).is_file());
    let index: serde_json::Value =
        serde_json::from_slice(&fs::read(out_dir.join("index.json")).unwrap()).unwrap();
    assert_eq!(index["manifests"][0]["digest"], format!("sha256:{skopeo_manifest}"));
    // The directory loads into a fresh store, and so does the tar form.
    let other = TestStore::new("bi-oci2");
    let loaded = other.store().load_dir(&out_dir, &mut |_| {}).unwrap();
    assert_eq!(loaded[0].id.to_string(), OCI_CONFIG_ID);
    assert_eq!(loaded[0].tags, vec!["fixture/layers:1.0"]);
    let tarred = ts.store().save_oci(&["fixture/layers:1.0"], Vec::new()).unwrap();
    let third = TestStore::new("bi-oci3");
    assert_eq!(third.store().load(&tarred[..], &mut |_| {}).unwrap()[0].id.to_string(), OCI_CONFIG_ID);
    // skopeo itself reads berth's layout.
    let out = std::process::Command::new("skopeo")
        .args(["inspect", "--raw"])
        .arg(format!("oci:{}:1.0", out_dir.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "skopeo: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(berth_image::Digest::of(&out.stdout).hex(), skopeo_manifest);
}

#[test]
fn skopeo_reads_berths_docker_archive() {
    let ts = TestStore::new("bi-skop");
    ts.load_fixture("layers-docker-save.tar");
    let path = ts.dir.path().join("saved.tar");
    let f = fs::File::create(&path).unwrap();
    ts.store().save(&["fixture/layers:1.0"], f).unwrap();
    // skopeo copies it to a `dir:` layout (no format conversion): the config keeps its
    // digest (the image ID) and the layers theirs.
    let dest = ts.dir.path().join("copied");
    let out = std::process::Command::new("skopeo")
        .arg("copy")
        .arg(format!("docker-archive:{}", path.display()))
        .arg(format!("dir:{}", dest.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "skopeo: {}", String::from_utf8_lossy(&out.stderr));
    assert!(dest.join(&LAYERS_ID[7..]).is_file());
    for d in LAYERS_DIFF_IDS {
        // Uncompressed layers stay as they are: each blob is named by its DiffID.
        assert!(dest.join(&d[7..]).is_file(), "{d}");
    }
}
