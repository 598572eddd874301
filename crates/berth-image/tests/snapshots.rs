//! Containers' filesystems on real overlay mounts of a busybox image built from
//! berth-testutil's rootfs: diff, commit, export, import.

mod common;

use std::fs;
use std::os::unix::fs::MetadataExt;

use berth_image::{ChangeKind, CommitOptions, ContainerConfig, ImageError, ImportOptions, SnapshotOptions};
use common::*;

fn busybox_image(ts: &TestStore) -> String {
    let tar = berth_testutil::busybox_rootfs_tar(ts.dir.path());
    busybox_image_from(ts, &tar)
}

fn busybox_image_from(ts: &TestStore, tar: &[u8]) -> String {
    let id = ts
        .store()
        .import(
            tar,
            &ImportOptions {
                changes: vec![r#"CMD ["sh"]"#.into()],
                tag: Some("busybox:test".into()),
                ..Default::default()
            },
        )
        .unwrap();
    id.to_string()
}

#[test]
fn import_builds_a_runnable_image() {
    let ts = TestStore::new("bi-imp");
    let tar = berth_testutil::busybox_rootfs_tar(ts.dir.path());
    let id = busybox_image_from(&ts, &tar);
    let insp = ts.store().inspect("busybox:test").unwrap();
    assert_eq!(insp.id, id);
    assert_eq!(insp.comment, "Imported from -");
    assert_eq!(insp.config.cmd, Some(vec!["sh".to_string()]));
    assert_eq!(insp.root_fs.layers.len(), 1);
    assert_eq!(insp.repo_tags, vec!["busybox:test"]);
    // Compressed input gives the same layer.
    let gz = common::tar::gzip(&tar);
    let id2 = ts
        .store()
        .import(&gz[..], &ImportOptions { tag: Some("busybox:gz".into()), ..Default::default() })
        .unwrap();
    assert_eq!(
        ts.store().inspect(&id2.to_string()).unwrap().root_fs.layers,
        insp.root_fs.layers,
        "gzip import has the same DiffID"
    );
    let cdir = ts.dir.path().join("c");
    ts.store().prepare_snapshot("c", "busybox:test", &cdir, &SnapshotOptions::default()).unwrap();
    let rootfs = cdir.join("rootfs");
    ts.store().mount_snapshot("c", &rootfs).unwrap();
    assert_eq!(chroot_run(&rootfs, &["/bin/echo", "hello"]), "hello\n");
    ts.store().remove_snapshot("c").unwrap();
    // Bad changes are refused before anything is stored.
    let blobs_before = list_files(&ts.root().join("content/blobs/sha256"));
    let err = ts
        .store()
        .import(&tar[..], &ImportOptions { changes: vec!["RUN rm -rf /".into()], ..Default::default() })
        .unwrap_err();
    assert!(matches!(err, ImageError::InvalidChange(..)), "{err}");
    assert_eq!(list_files(&ts.root().join("content/blobs/sha256")), blobs_before);
}

#[test]
fn diff_commit_and_export_of_a_container() {
    let ts = TestStore::new("bi-snap");
    let base = busybox_image(&ts);
    let cdir = ts.dir.path().join("c1");
    let snap = ts
        .store()
        .prepare_snapshot("c1", "busybox:test", &cdir, &SnapshotOptions::default())
        .unwrap();
    assert!(snap.upper.is_dir() && snap.work.is_dir());
    assert!(snap.init.join(".dockerenv").is_file());
    let rootfs = cdir.join("rootfs");
    ts.store().mount_snapshot("c1", &rootfs).unwrap();
    // Idempotent at the same place, refused elsewhere.
    ts.store().mount_snapshot("c1", &rootfs).unwrap();
    assert!(matches!(
        ts.store().mount_snapshot("c1", &cdir.join("other")),
        Err(ImageError::Conflict(_))
    ));
    // What a container process does.
    chroot_run(
        &rootfs,
        &[
            "/bin/sh",
            "-c",
            "touch /tmp/newfile && rm /bin/vi && echo extra >> /etc/passwd && \
             mkdir -p /new/dir && echo payload > /new/dir/f && \
             rm -rf /home/user && mkdir /home/user && echo hosts-content > /etc/hosts",
        ],
    );
    let changes = ts.store().changes("c1").unwrap();
    let lines: Vec<String> = changes.iter().map(|c| c.to_string()).collect();
    for want in [
        "C /bin",
        "D /bin/vi",
        "C /etc/passwd",
        "D /home/user",
        "A /new",
        "A /new/dir",
        "A /new/dir/f",
        "C /tmp",
        "A /tmp/newfile",
    ] {
        assert!(lines.contains(&want.to_string()), "{want} missing from {lines:?}");
    }
    // Docker's init layer is below the upper dir: its files are not changes, but a
    // write to one is.
    assert!(!lines.iter().any(|l| l.contains(".dockerenv") || l.contains("/etc/hostname")), "{lines:?}");
    assert!(lines.contains(&"C /etc/hosts".to_string()), "{lines:?}");
    // Walk order (by path), like docker diff.
    let paths: Vec<&str> = changes.iter().map(|c| c.path.as_str()).collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted);
    assert_eq!(changes.iter().find(|c| c.path == "/bin/vi").unwrap().kind.api_kind(), 2);

    // Commit with config changes.
    let new_id = ts
        .store()
        .commit(
            "c1",
            &CommitOptions {
                config: Some(ContainerConfig {
                    cmd: Some(vec!["sh".into()]),
                    env: Some(vec!["PATH=/bin".into()]),
                    ..Default::default()
                }),
                changes: vec![r#"CMD ["cat", "/new/dir/f"]"#.into(), "ENV A=1".into(), "LABEL stage=2".into()],
                author: "tester".into(),
                comment: "my commit".into(),
                tag: Some("committed".into()),
                container_id: "c1".into(),
                ..Default::default()
            },
        )
        .unwrap();
    let insp = ts.store().inspect("committed:latest").unwrap();
    assert_eq!(insp.id, new_id.to_string());
    assert_eq!(insp.parent, base);
    assert_eq!(insp.author, "tester");
    assert_eq!(insp.container, "c1");
    assert_eq!(insp.config.cmd, Some(vec!["cat".into(), "/new/dir/f".into()]));
    assert_eq!(insp.config.env, Some(vec!["PATH=/bin".into(), "A=1".into()]));
    assert_eq!(insp.config.labels.as_ref().unwrap()["stage"], "2");
    assert_eq!(insp.root_fs.layers.len(), 2);
    let hist = ts.store().history("committed").unwrap();
    assert_eq!(hist[0].comment, "my commit");
    assert_eq!(hist[0].created_by, "sh");
    assert_eq!(hist[0].id, new_id.to_string());
    assert_eq!(hist[1].id, base, "the parent is a local image");
    assert!(hist[0].size > 0);

    // The committed layer carries the deletions as whiteouts and opaque dirs.
    let rec = ts.store().record("committed").unwrap();
    let top = ts.store().layers().diff_dir(&rec.layers[1].chain_id);
    let vi = fs::symlink_metadata(top.join("bin/vi")).unwrap();
    assert_eq!((vi.mode() & libc::S_IFMT, vi.rdev()), (libc::S_IFCHR, 0));
    let mut buf = [0u8; 4];
    let n = rustix::fs::lgetxattr(top.join("home/user"), "trusted.overlay.opaque", &mut buf[..]).unwrap();
    assert_eq!(&buf[..n], b"y");

    // A container of the new image sees the committed state.
    let cdir2 = ts.dir.path().join("c2");
    ts.store().prepare_snapshot("c2", "committed", &cdir2, &SnapshotOptions::default()).unwrap();
    let rootfs2 = cdir2.join("rootfs");
    ts.store().mount_snapshot("c2", &rootfs2).unwrap();
    assert_eq!(chroot_run(&rootfs2, &["/bin/cat", "/new/dir/f"]), "payload\n");
    assert!(!rootfs2.join("bin/vi").exists());
    assert!(rootfs2.join("tmp/newfile").exists());
    assert!(fs::read_to_string(rootfs2.join("etc/passwd")).unwrap().ends_with("extra\n"));
    assert_eq!(list_files(&rootfs2.join("home/user")), Vec::<String>::new());
    // The init layer hides the image's /etc/hosts in a new container.
    assert_eq!(fs::read_to_string(rootfs2.join("etc/hosts")).unwrap(), "");

    // Export of the first container: the merged view.
    let listing = tar_listing(&ts.store().export("c1", Vec::new()).unwrap());
    assert!(listing.iter().any(|l| l.ends_with(" 8 new/dir/f")), "{listing:?}");
    assert!(!listing.iter().any(|l| l.contains(" bin/vi")));
    assert!(listing.iter().any(|l| l.ends_with(" .dockerenv")));

    // Committing an unchanged container adds no layer.
    let cdir3 = ts.dir.path().join("c3");
    ts.store().prepare_snapshot("c3", "committed", &cdir3, &SnapshotOptions::default()).unwrap();
    let same = ts.store().commit("c3", &CommitOptions::default()).unwrap();
    let insp3 = ts.store().inspect(&same.to_string()).unwrap();
    assert_eq!(insp3.root_fs.layers, insp.root_fs.layers);
    let h3 = ts.store().history(&same.to_string()).unwrap();
    assert_eq!(h3[0].size, 0);
    assert!(ts.store().config(&same.to_string()).unwrap().history.last().unwrap().empty_layer);

    for k in ["c1", "c2", "c3"] {
        ts.store().remove_snapshot(k).unwrap();
    }
    assert!(!berth_image::mount::is_mount_point(&rootfs).unwrap());
    assert!(!cdir.join("upper").exists());
    assert!(ts.store().snapshots().is_empty());
}

#[test]
fn diff_kinds_are_docker_numbers() {
    assert_eq!(ChangeKind::Modify.api_kind(), 0);
    assert_eq!(ChangeKind::Add.api_kind(), 1);
    assert_eq!(ChangeKind::Delete.api_kind(), 2);
}

#[test]
fn snapshots_survive_a_reopen_and_keep_their_layers() {
    let mut ts = TestStore::new("bi-snap2");
    busybox_image(&ts);
    let cdir = ts.dir.path().join("c");
    ts.store().prepare_snapshot("c", "busybox:test", &cdir, &SnapshotOptions::default()).unwrap();
    let rootfs = cdir.join("rootfs");
    ts.store().mount_snapshot("c", &rootfs).unwrap();
    fs::write(rootfs.join("tmp/x"), b"1").unwrap();
    // A daemon restart with the container still mounted (live restore).
    ts.reopen();
    let s = ts.store().snapshot("c").unwrap();
    assert_eq!(s.mounted_at.as_deref(), Some(rootfs.as_path()));
    assert!(berth_image::mount::is_mount_point(&rootfs).unwrap());
    // rmi -f of the image: the container keeps its layers.
    let mut users = berth_image::ImageUsers::new();
    let id = ts.store().resolve("busybox:test").unwrap();
    users.add(id, "c", false);
    let err = ts.store().remove("busybox:test", false, true, &users).unwrap_err();
    assert!(err.to_string().contains("container c is using its referenced image"), "{err}");
    let items = ts.store().remove("busybox:test", true, true, &users).unwrap();
    assert!(items.iter().any(|i| matches!(i, berth_image::DeleteItem::Deleted(_))));
    assert_eq!(ts.store().layers().list().unwrap().len(), 1, "layer kept for the container");
    assert_eq!(chroot_run(&rootfs, &["/bin/cat", "/tmp/x"]), "1");
    ts.store().remove_snapshot("c").unwrap();
    assert!(ts.store().layers().list().unwrap().is_empty(), "released with the container");
}

#[test]
fn a_volatile_snapshot_mounts_again_and_is_discarded_through_the_trash() {
    let ts = TestStore::new("bi-vol");
    busybox_image(&ts);
    let cdir = ts.dir.path().join("c");
    let opts = SnapshotOptions { volatile: true, ..SnapshotOptions::default() };
    ts.store().prepare_snapshot("c", "busybox:test", &cdir, &opts).unwrap();
    let rootfs = cdir.join("rootfs");
    let options = || berth_testutil::daemon::mount_options(&rootfs);
    for round in 0..2 {
        ts.store().mount_snapshot("c", &rootfs).unwrap();
        let o = options().expect("mounted");
        assert!(o.contains("volatile"), "round {round}: {o}");
        fs::write(rootfs.join("tmp/x"), round.to_string()).unwrap();
        // The kernel leaves its marker in the work directory: without its removal the
        // second mount would be refused.
        ts.store().unmount_snapshot("c").unwrap();
        assert!(cdir.join("work/work/incompat/volatile").exists());
    }
    assert_eq!(fs::read_to_string(cdir.join("upper/tmp/x")).unwrap(), "1");
    // Discarded: the directories leave at once, the trash thread deletes them.
    ts.store().discard_snapshot("c").unwrap();
    for n in ["upper", "work", "init"] {
        assert!(!cdir.join(n).exists(), "{n}");
    }
    let trash = ts.root().join("trash");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while fs::read_dir(&trash).unwrap().next().is_some() {
        assert!(std::time::Instant::now() < deadline, "trash not emptied");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(ts.store().layers().list().unwrap().len() == 1, "the image keeps its layer");
    assert!(ts.store().snapshot("c").is_err());
}

#[test]
fn prepare_refuses_what_exists_and_touches_nothing() {
    let ts = TestStore::new("bi-snap3");
    ts.load_fixture("base-docker-save.tar");
    let cdir = ts.dir.path().join("c");
    fs::create_dir_all(cdir.join("upper")).unwrap();
    fs::write(cdir.join("upper/precious"), b"data").unwrap();
    let err = ts
        .store()
        .prepare_snapshot("c", "fixture/base:1.0", &cdir, &SnapshotOptions::default())
        .unwrap_err();
    assert!(matches!(err, ImageError::Io { .. }), "{err}");
    assert_eq!(fs::read(cdir.join("upper/precious")).unwrap(), b"data");
    assert!(!cdir.join("work").exists() && !cdir.join("init").exists());
    assert!(ts.store().snapshots().is_empty());
    // Unknown images and keys, duplicate keys.
    let other = ts.dir.path().join("d");
    assert!(matches!(
        ts.store().prepare_snapshot("d", "nope:1", &other, &SnapshotOptions::default()),
        Err(ImageError::ImageNotFound(_))
    ));
    ts.store().prepare_snapshot("d", "fixture/base:1.0", &other, &SnapshotOptions::default()).unwrap();
    assert!(matches!(
        ts.store().prepare_snapshot("d", "fixture/base:1.0", &ts.dir.path().join("e"), &SnapshotOptions::default()),
        Err(ImageError::Conflict(_))
    ));
    assert!(matches!(ts.store().changes("zzz"), Err(ImageError::SnapshotNotFound(_))));
    assert!(matches!(ts.store().remove_snapshot("zzz"), Err(ImageError::SnapshotNotFound(_))));
    // Without the init layer the snapshot's only lower dirs are the image's layers.
    let s = ts
        .store()
        .prepare_snapshot("f", "fixture/base:1.0", &ts.dir.path().join("f"), &SnapshotOptions { init_layer: false, volatile: false })
        .unwrap();
    assert_eq!(list_files(&s.init), Vec::<String>::new());
    assert_eq!(ts.store().changes("f").unwrap(), vec![]);
}

/// Every file under `dir` (relative paths), sorted.
fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

/// A commit whose client went away (`cancel` set) stops at its next write and keeps
/// nothing: no image, no blob, nothing staged; the same commit then works.
#[test]
fn a_cancelled_commit_keeps_nothing() {
    let ts = TestStore::new("bi-cancel");
    busybox_image(&ts);
    let cdir = ts.dir.path().join("c1");
    let snap = ts.store().prepare_snapshot("c1", "busybox:test", &cdir, &SnapshotOptions::default()).unwrap();
    fs::write(snap.upper.join("big"), vec![7u8; 4 << 20]).unwrap();
    let images = ts.store().list().unwrap().len();
    let content = ts.dir.path().join("root");
    let before: Vec<String> = files_under(&content).into_iter().filter(|f| !f.starts_with("snapshots") && !f.contains("/c1/")).collect();
    let cancel = tokio_util::sync::CancellationToken::new();
    cancel.cancel();
    let mut opts = CommitOptions { tag: Some("cancelled:1".into()), cancel: Some(cancel), ..Default::default() };
    let e = ts.store().commit("c1", &opts).unwrap_err();
    assert!(e.to_string().contains("commit cancelled"), "{e}");
    assert_eq!(ts.store().list().unwrap().len(), images);
    let after: Vec<String> = files_under(&content).into_iter().filter(|f| !f.starts_with("snapshots") && !f.contains("/c1/")).collect();
    assert_eq!(before, after, "a cancelled commit left files");
    // A token not cancelled lets the same commit through.
    opts.cancel = Some(tokio_util::sync::CancellationToken::new());
    ts.store().commit("c1", &opts).unwrap();
    assert_eq!(ts.store().list().unwrap().len(), images + 1);
}

#[test]
fn snapshots_share_one_init_layer_and_older_ones_keep_their_own() {
    let mut ts = TestStore::new("bi-init");
    busybox_image(&ts);
    let opts = SnapshotOptions::default();
    let (a, b) = (ts.dir.path().join("a"), ts.dir.path().join("b"));
    let sa = ts.store().prepare_snapshot("a", "busybox:test", &a, &opts).unwrap();
    let sb = ts.store().prepare_snapshot("b", "busybox:test", &b, &opts).unwrap();
    // One init layer for both, made with the store; a container directory holds only
    // its own layer.
    assert_eq!(sa.init, sb.init);
    assert_eq!(sa.init, ts.root().join("init/docker"));
    assert_eq!(sa.lowers[0], sa.init);
    let mut own: Vec<String> = fs::read_dir(&a).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    own.sort();
    assert_eq!(own, ["upper", "work"]);
    // Docker's placeholders show in the container's root, and a container's writes over
    // them stay its own.
    let ra = a.join("rootfs");
    ts.store().mount_snapshot("a", &ra).unwrap();
    assert!(ra.join(".dockerenv").is_file());
    assert_eq!(fs::read_link(ra.join("etc/mtab")).unwrap(), std::path::Path::new("/proc/mounts"));
    fs::write(ra.join("etc/hostname"), "mine\n").unwrap();
    ts.store().unmount_snapshot("a").unwrap();
    assert_eq!(fs::read(sa.init.join("etc/hostname")).unwrap(), b"");
    assert_eq!(fs::read(a.join("upper/etc/hostname")).unwrap(), b"mine\n");
    let rb = b.join("rootfs");
    ts.store().mount_snapshot("b", &rb).unwrap();
    assert_eq!(fs::read(rb.join("etc/hostname")).unwrap(), b"");
    ts.store().unmount_snapshot("b").unwrap();
    // Removing a snapshot leaves the shared layer.
    ts.store().remove_snapshot("b").unwrap();
    assert!(sa.init.join(".dockerenv").is_file());

    // A snapshot recorded before the shared layer (no `init` in its record, its own
    // `init/`) still mounts with it, survives a reopen and removes it.
    let records: Vec<_> = fs::read_dir(ts.root().join("image/snapshots")).unwrap().map(|e| e.unwrap().path()).collect();
    let [record] = &records[..] else { panic!("one snapshot record: {records:?}") };
    let mut rec: serde_json::Value = serde_json::from_slice(&fs::read(record).unwrap()).unwrap();
    assert_eq!(rec["init"], "shared");
    rec.as_object_mut().unwrap().remove("init");
    fs::write(record, serde_json::to_vec(&rec).unwrap()).unwrap();
    fs::create_dir_all(a.join("init/etc")).unwrap();
    fs::write(a.join("init/etc/legacy"), "old\n").unwrap();
    ts.reopen();
    let old = ts.store().snapshot("a").unwrap();
    assert_eq!(old.init, a.join("init"));
    ts.store().mount_snapshot("a", &ra).unwrap();
    assert_eq!(fs::read(ra.join("etc/legacy")).unwrap(), b"old\n");
    assert!(!ra.join(".dockerenv").exists());
    ts.store().remove_snapshot("a").unwrap();
    assert!(!a.join("init").exists() && !a.join("upper").exists());
    assert!(ts.root().join("init/docker/.dockerenv").is_file());
}

#[test]
fn a_shared_init_layer_cut_short_is_made_again() {
    let mut ts = TestStore::new("bi-init2");
    busybox_image(&ts);
    // A crash while the layer was being made leaves only its temporary directory.
    let init = ts.root().join("init");
    fs::remove_dir_all(init.join("docker")).unwrap();
    fs::create_dir_all(init.join(".docker.tmp/etc")).unwrap();
    ts.reopen();
    assert!(!init.join(".docker.tmp").exists());
    assert_eq!(
        list_files(&init.join("docker")),
        [".dockerenv", "dev", "dev/console", "dev/pts", "dev/shm", "etc", "etc/hostname", "etc/hosts", "etc/mtab", "etc/resolv.conf", "proc", "sys"]
    );
    assert!(init.join("empty").is_dir() && list_files(&init.join("empty")).is_empty());
}
