//! Shared helpers of berth-image's integration tests (root, real kernel).

#![allow(dead_code)]

pub mod tar;

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_image::{ImageStore, StoreOptions, UnpackLimit};

pub const LAYERS_ID: &str = "sha256:30757304e8efc7c9255cf6f4a0ce0a77a041082b0ff74ccccf39ed59ca0d3bce";
pub const BASE_ID: &str = "sha256:fd16d151ea2d88e4a128d4ba4f9e3b0b9be463fc8636bb8c4b2c6421fc97ca2f";
/// skopeo rewrote the config of fixture/layers:1.0 for its OCI archives.
pub const OCI_CONFIG_ID: &str = "sha256:036e3fa5f5c5c981307842e47ccd8a5ed796afcd329ad6dc7cd161340eafae95";
pub const LAYERS_DIFF_IDS: [&str; 5] = [
    "sha256:452f786823ef11cd754ee0e1fba9445a348075d2df3ff2f2a42a93c8dca243ec",
    "sha256:1f12a0806afd74e9a8db1054b30cf24139730c34b578e0dbf7246667fd27b7d0",
    "sha256:15d28c53a7cb96c4277445dc8375b98e6f0ada707787e872cf30d1da1cd18048",
    "sha256:c1198d9f4a39f18b0d15f2f83a7ca037ee5991014c5cb0f947df3c4bb51f9afb",
    "sha256:f11402b59e455795be2aee3d794fba2b5b3e23c152a6e3a7510d8538eba89d25",
];

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

pub fn fixture(name: &str) -> PathBuf {
    fixtures().join(name)
}

/// A store in its own short temp dir, with a small unpack limit margin (tests must
/// not depend on the host's free space) unless a test sets one.
pub struct TestStore {
    pub dir: tempfile::TempDir,
    pub store: Option<ImageStore>,
}

impl TestStore {
    pub fn new(prefix: &str) -> TestStore {
        berth_testutil::require_root();
        let dir = berth_testutil::short_tempdir(prefix);
        let store = ImageStore::open(&dir.path().join("root"), options()).expect("open store");
        TestStore {
            dir,
            store: Some(store),
        }
    }

    pub fn with_options(prefix: &str, opts: StoreOptions) -> TestStore {
        berth_testutil::require_root();
        let dir = berth_testutil::short_tempdir(prefix);
        let store = ImageStore::open(&dir.path().join("root"), opts).expect("open store");
        TestStore {
            dir,
            store: Some(store),
        }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("root")
    }

    pub fn store(&self) -> &ImageStore {
        self.store.as_ref().expect("store open")
    }

    /// Closes and reopens the store (as a daemon restart does).
    pub fn reopen(&mut self) {
        self.store = None;
        self.store = Some(ImageStore::open(&self.root(), options()).expect("reopen store"));
    }

    pub fn load_fixture(&self, name: &str) -> Vec<berth_image::LoadedImage> {
        let f = fs::File::open(fixture(name)).unwrap();
        self.store().load(f, &mut |_| {}).unwrap()
    }
}

impl Drop for TestStore {
    fn drop(&mut self) {
        // Unmount anything a failed test left mounted under the temp dir, so the
        // temp dir can be removed.
        if let Ok(info) = fs::read_to_string("/proc/self/mountinfo") {
            let base = self.dir.path().to_string_lossy().into_owned();
            let mut points: Vec<String> = info
                .lines()
                .filter_map(|l| l.split(' ').nth(4).map(str::to_owned))
                .filter(|p| p.starts_with(&base))
                .collect();
            points.sort_by_key(|p| std::cmp::Reverse(p.len()));
            for p in points {
                let _ = Command::new("umount").arg("-l").arg(&p).status();
            }
        }
    }
}

/// Test stores run durable (the syncfs path); the bomb and some other tests use the
/// default (not durable) options.
pub fn options() -> StoreOptions {
    StoreOptions {
        unpack_limit: Some(UnpackLimit::keep_free(64 << 20)),
        durable_layers: true,
        ..Default::default()
    }
}

/// Lists a tar the way `fixtures/file-lists/layers-export.txt` does:
/// `type mode uid:gid size path [-> target]`, sorted by path.
pub fn tar_listing(data: &[u8]) -> Vec<String> {
    let mut ar = ::tar::Archive::new(data);
    let mut out: Vec<(String, String)> = Vec::new();
    for e in ar.entries().unwrap() {
        let e = e.unwrap();
        let h = e.header();
        let path = String::from_utf8_lossy(&e.path_bytes())
            .trim_start_matches("./")
            .trim_end_matches('/')
            .to_string();
        if path.is_empty() {
            continue;
        }
        let perm = h.mode().unwrap() & 0o7777;
        let (t, bits) = match h.entry_type() {
            ::tar::EntryType::Regular => ('f', 0o100000),
            ::tar::EntryType::Directory => ('d', 0o40000),
            ::tar::EntryType::Symlink => ('l', 0o120000),
            ::tar::EntryType::Link => ('h', 0o100000),
            ::tar::EntryType::Fifo => ('p', 0o10000),
            ::tar::EntryType::Char => ('c', 0o20000),
            ::tar::EntryType::Block => ('b', 0o60000),
            other => panic!("unexpected entry type {other:?}"),
        };
        let mut line = format!(
            "{t} {:o} {}:{} {} {}",
            bits | perm,
            h.uid().unwrap(),
            h.gid().unwrap(),
            h.size().unwrap(),
            path
        );
        if let Some(l) = e.link_name_bytes() {
            line.push_str(&format!(" -> {}", String::from_utf8_lossy(&l)));
        }
        out.push((path, line));
    }
    out.sort();
    out.into_iter().map(|(_, l)| l).collect()
}

/// `layers-export.txt` without its comment, sorted by path.
pub fn fixture_listing() -> Vec<String> {
    let text = fs::read_to_string(fixture("file-lists/layers-export.txt")).unwrap();
    let mut lines: Vec<(String, String)> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let path = l.split(' ').nth(4).unwrap().to_string();
            (path, l.to_string())
        })
        .collect();
    lines.sort();
    lines.into_iter().map(|(_, l)| l).collect()
}


/// Every file under `dir`, relative.
pub fn list_files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    if !dir.exists() {
        return out;
    }
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            out.push(p.strip_prefix(dir).unwrap().display().to_string());
            if e.file_type().unwrap().is_dir() {
                stack.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The store holds no blob, no layer, no image, no ingest, nothing staged.
pub fn assert_store_empty(ts: &TestStore) {
    let root = ts.root();
    assert_eq!(list_files(&root.join("content/blobs/sha256")), Vec::<String>::new(), "blobs left");
    assert_eq!(list_files(&root.join("content/ingest")), Vec::<String>::new(), "ingests left");
    let layers: Vec<String> = list_files(&root.join("layers"))
        .into_iter()
        .filter(|p| !matches!(p.as_str(), "l" | ".staging" | ".trash"))
        .collect();
    assert_eq!(layers, Vec::<String>::new(), "layers left");
    assert_eq!(list_files(&root.join("image/images")), Vec::<String>::new(), "image records left");
    assert!(ts.store().list().unwrap().is_empty());
}

/// Reads all of `r`.
pub fn read_all(mut r: impl Read) -> Vec<u8> {
    let mut v = Vec::new();
    r.read_to_end(&mut v).unwrap();
    v
}

/// Runs a command inside a rootfs with chroot and returns its stdout.
pub fn chroot_run(root: &Path, args: &[&str]) -> String {
    let out = Command::new("chroot").arg(root).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "chroot {:?} failed: {}",
        args,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The members of a tar archive, in order.
pub fn archive_members(data: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut ar = ::tar::Archive::new(data);
    let mut out = Vec::new();
    for e in ar.entries().unwrap() {
        let mut e = e.unwrap();
        if e.header().entry_type() != ::tar::EntryType::Regular {
            continue;
        }
        let name = e.path().unwrap().display().to_string();
        let mut v = Vec::new();
        e.read_to_end(&mut v).unwrap();
        out.push((name, v));
    }
    out
}

/// Builds a tar archive from `(name, data)` members.
pub fn make_archive(members: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut b = ::tar::Builder::new(Vec::new());
    for (n, d) in members {
        let mut h = ::tar::Header::new_gnu();
        h.set_size(d.len() as u64);
        h.set_mode(0o644);
        h.set_entry_type(::tar::EntryType::Regular);
        b.append_data(&mut h, n, &d[..]).unwrap();
    }
    b.into_inner().unwrap()
}

/// A one-image docker-archive with the given layer tars (each layer's DiffID goes
/// into the config as computed here).
pub fn docker_archive(layers: &[Vec<u8>], tag: &str) -> Vec<u8> {
    let diff_ids: Vec<String> = layers.iter().map(|l| berth_image::Digest::of(l).to_string()).collect();
    docker_archive_with(layers, &diff_ids, tag)
}

/// Like [`docker_archive`] with the config's DiffIDs given (for compressed or lying
/// layers).
pub fn docker_archive_with(layers: &[Vec<u8>], diff_ids: &[String], tag: &str) -> Vec<u8> {
    let config = serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "config": {"Cmd": ["sh"]},
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
    });
    let config = serde_json::to_vec(&config).unwrap();
    let config_name = format!("{}.json", berth_image::Digest::of(&config).hex());
    let mut members = vec![(config_name.clone(), config)];
    let mut names = Vec::new();
    for (i, l) in layers.iter().enumerate() {
        let n = format!("l{i}/layer.tar");
        names.push(n.clone());
        members.push((n, l.clone()));
    }
    let manifest = serde_json::json!([{"Config": config_name, "RepoTags": [tag], "Layers": names}]);
    members.push(("manifest.json".into(), serde_json::to_vec(&manifest).unwrap()));
    make_archive(&members)
}

