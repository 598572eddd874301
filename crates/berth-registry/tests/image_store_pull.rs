//! Pull into berth-image's ImageStore (layers unpacked while they download), record
//! the image, find it by tag with Docker's ID, push it back out; and an interrupted
//! pull into the image store resumes.

mod common;

use std::sync::Arc;

use berth_image::{ImageStore, StoreOptions};
use berth_registry::Reference;
use berth_registry::client::{PullOptions, PushOptions, RegistryClient};
use berth_registry::image_store::ImageStoreContent;
use berth_registry::store::{ContentStore, DirStore};
use common::images::*;
use common::*;

const LAYERS_ID: &str = "sha256:30757304e8efc7c9255cf6f4a0ce0a77a041082b0ff74ccccf39ed59ca0d3bce";
const DIFF_IDS: [&str; 5] = [
    "sha256:452f786823ef11cd754ee0e1fba9445a348075d2df3ff2f2a42a93c8dca243ec",
    "sha256:1f12a0806afd74e9a8db1054b30cf24139730c34b578e0dbf7246667fd27b7d0",
    "sha256:15d28c53a7cb96c4277445dc8375b98e6f0ada707787e872cf30d1da1cd18048",
    "sha256:c1198d9f4a39f18b0d15f2f83a7ca037ee5991014c5cb0f947df3c4bb51f9afb",
    "sha256:f11402b59e455795be2aee3d794fba2b5b3e23c152a6e3a7510d8538eba89d25",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_into_image_store_then_push_back() {
    berth_testutil::require_root();
    let dir = berth_testutil::short_tempdir("breg-is");
    let srv = start_registry(&dir.path().join("reg")).await;
    let host = srv.local_addr().to_string();
    let certs = tempfile::tempdir().unwrap();
    let c = client(certs.path());

    // The fixture image (made by Docker, converted by skopeo) goes up from a plain store.
    for (archive, tag) in [("layers-oci-gzip.tar", "gzip"), ("layers-oci-zstd.tar", "zstd")] {
        let src = DirStore::open(&dir.path().join(format!("src-{tag}"))).unwrap();
        let m = import_oci_archive(&src, &fixtures().join(archive));
        let target = Reference::parse(&format!("{host}/fixture/layers:{tag}")).unwrap();
        c.push(&target, &m, Arc::new(src), &PushOptions::default(), &Events::default().sink()).await.unwrap();
    }

    // And the Docker-saved image through skopeo, which keeps Docker's config (its ID).
    let archive = format!("docker-archive:{}:fixture/layers:1.0", fixtures().join("layers-docker-save.tar").display());
    let dest = format!("docker://{host}/fixture/layers:docker");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("skopeo")
            .args(["--insecure-policy", "copy", "--dest-tls-verify=false", &archive, &dest])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let images = Arc::new(ImageStore::open(&dir.path().join("data"), StoreOptions::default()).unwrap());
    for tag in ["docker", "gzip", "zstd"] {
        let content = Arc::new(ImageStoreContent::new(images.clone(), Some(&dir.path().join("data/sources"))).unwrap());
        let r = Reference::parse(&format!("{host}/fixture/layers:{tag}")).unwrap();
        let ev = Events::default();
        let pulled = c.pull(&r, &PullOptions::default(), content.clone() as Arc<dyn ContentStore>, &ev.sink()).await.unwrap();
        let id = content.record_pulled(&pulled).unwrap();
        // The image ID is the config digest: Docker's own for the Docker-saved image
        // (skopeo's OCI conversions rewrote the config, same DiffIDs).
        assert_eq!(id.to_string(), pulled.config.digest.to_string());
        if tag == "docker" {
            assert_eq!(id.to_string(), LAYERS_ID, "Docker's image ID for fixture/layers:1.0");
        }

        let inspect = images.inspect(&format!("{host}/fixture/layers:{tag}")).unwrap();
        assert_eq!(inspect.id, id.to_string());
        assert_eq!(inspect.root_fs.layers, DIFF_IDS);
        assert!(inspect.repo_digests.contains(&format!("{host}/fixture/layers@{}", pulled.digest)), "{:?}", inspect.repo_digests);
        assert!(inspect.repo_tags.contains(&format!("{host}/fixture/layers:{tag}")));
    }
    // The unpacked top layer holds the file the Dockerfile copied.
    let chains = berth_image::digest::chain_ids(&DIFF_IDS.iter().map(|d| d.parse().unwrap()).collect::<Vec<_>>());
    let top = images.layers().diff_dir(chains.last().unwrap());
    assert_eq!(std::fs::read_to_string(top.join("data/hello.txt")).unwrap(), std::fs::read_to_string(fixtures().join("hello.txt")).unwrap());
    // The whiteout layer was unpacked as overlay whiteouts (a 0:0 character device).
    use std::os::unix::fs::FileTypeExt;
    let whiteouts = images.layers().diff_dir(&chains[3]);
    assert!(std::fs::symlink_metadata(whiteouts.join("bin/vi")).unwrap().file_type().is_char_device());

    // A second pull finds everything.
    let content = Arc::new(ImageStoreContent::new(images.clone(), Some(&dir.path().join("data/sources"))).unwrap());
    let ev = Events::default();
    let r = Reference::parse(&format!("{host}/fixture/layers:gzip")).unwrap();
    let pulled = c.pull(&r, &PullOptions::default(), content.clone() as Arc<dyn ContentStore>, &ev.sink()).await.unwrap();
    content.record_pulled(&pulled).unwrap();
    assert!(pulled.up_to_date);
    assert_eq!(ev.statuses().iter().filter(|s| s.ends_with(": Already exists")).count(), 5);
    assert_eq!(ev.statuses().last().unwrap(), &format!("Status: Image is up to date for {host}/fixture/layers:gzip"));

    // Push from the image store to another repository: mounted from where it came from.
    let ev = Events::default();
    let target = Reference::parse(&format!("{host}/copies/layers:1")).unwrap();
    let pushed = c.push(&target, &pulled.manifest, content.clone() as Arc<dyn ContentStore>, &PushOptions::default(), &ev.sink()).await.unwrap();
    assert_eq!(pushed.digest, pulled.digest);
    content.record_pushed(&pushed, &pulled.manifest).unwrap();
    let inspect = images.inspect(&format!("{host}/fixture/layers:gzip")).unwrap();
    assert!(inspect.repo_digests.contains(&format!("{host}/copies/layers@{}", pushed.digest)), "{:?}", inspect.repo_digests);
    assert_eq!(ev.statuses().iter().filter(|s| s.ends_with(": Mounted from fixture/layers")).count(), 5, "{:?}", ev.statuses());
    srv.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_pull_into_image_store_resumes() {
    berth_testutil::require_root();
    let dir = berth_testutil::short_tempdir("breg-is");
    let srv = start_registry(&dir.path().join("reg")).await;
    let proxy = proxy::Proxy::start(&srv.url()).await;
    let certs = tempfile::tempdir().unwrap();
    let mut conf = client_config(certs.path());
    conf.download_retries = 0;
    let c = RegistryClient::new(conf).unwrap();
    // A real gzip layer big enough to cut in the middle.
    let src = DirStore::open(&dir.path().join("src")).unwrap();
    let m = gzip_image(&src, 3_000_000);
    let target = Reference::parse(&format!("{}/big/layer:1", proxy.host())).unwrap();
    c.push(&target, &m, Arc::new(src.clone()), &PushOptions::default(), &Events::default().sink()).await.unwrap();

    let images = Arc::new(ImageStore::open(&dir.path().join("data"), StoreOptions::default()).unwrap());
    let layer = image_blobs(&src, &m)[2].clone();
    let size = std::fs::metadata(src.blob_path(&layer)).unwrap().len();
    *proxy.state.cut_blob_after.lock().unwrap() = Some(size / 2);
    {
        let content = Arc::new(ImageStoreContent::new(images.clone(), None).unwrap());
        let err = c.pull(&target, &PullOptions::default(), content as Arc<dyn ContentStore>, &Events::default().sink()).await.unwrap_err();
        assert!(matches!(err, berth_registry::client::RegistryError::Transfer { .. }), "{err}");
    }
    assert!(!images.content().exists(&layer.to_string().parse().unwrap()));
    assert!(images.inspect(&target.to_string()).is_err());

    let content = Arc::new(ImageStoreContent::new(images.clone(), None).unwrap());
    let pulled = c.pull(&target, &PullOptions::default(), content.clone() as Arc<dyn ContentStore>, &Events::default().sink()).await.unwrap();
    let id = content.record_pulled(&pulled).unwrap();
    assert_eq!(id.to_string(), pulled.config.digest.to_string());
    let ranged = proxy.requests().into_iter().rev().find(|r| r.path.ends_with(&layer.to_string())).unwrap();
    let from: u64 = ranged.range.expect("resumed with Range").trim_start_matches("bytes=").trim_end_matches('-').parse().unwrap();
    assert!(from > 0 && from <= size / 2, "resumed from {from}");
    srv.shutdown().await.unwrap();
}

/// An image with one real tar+gzip layer holding `n` bytes of noise in one file.
fn gzip_image(store: &DirStore, n: usize) -> berth_registry::manifest::Descriptor {
    use std::io::Write;
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("noise"), noise(n, 99)).unwrap();
    let tar = std::process::Command::new("tar")
        .args(["--numeric-owner", "--owner=0", "--group=0", "-C"])
        .arg(tmp.path())
        .args(["-cf", "-", "noise"])
        .output()
        .unwrap();
    assert!(tar.status.success());
    let diff_id = berth_registry::Digest::sha256_of(&tar.stdout);
    let mut gz = std::process::Command::new("gzip")
        .args(["-1", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = gz.stdin.take().unwrap();
    let data = tar.stdout.clone();
    let feeder = std::thread::spawn(move || stdin.write_all(&data));
    let out = gz.wait_with_output().unwrap();
    feeder.join().unwrap().unwrap();
    let layer = store.put(&out.stdout).unwrap();
    let config = serde_json::json!({
        "architecture": "amd64", "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    })
    .to_string();
    let cd = store.put(config.as_bytes()).unwrap();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": layer, "size": out.stdout.len()}],
    })
    .to_string();
    let md = store.put(manifest.as_bytes()).unwrap();
    berth_registry::manifest::Descriptor::new("application/vnd.oci.image.manifest.v1+json", md, manifest.len() as u64)
}
