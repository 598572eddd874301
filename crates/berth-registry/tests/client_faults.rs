//! Bad input and bad networks: corrupt blobs, unknown media types, 401/404/429/500
//! answers, and downloads cut off midway (resumed with Range, never half-visible).

mod common;

use std::sync::Arc;

use berth_registry::Reference;
use berth_registry::client::{ErrorKind, PullOptions, PushOptions, RegistryClient, RegistryError};
use berth_registry::manifest::media;
use berth_registry::store::{ContentStore, DirStore};
use common::distribution::{DistAuth, DistributionRegistry};
use common::images::*;
use common::*;

fn stores(dir: &std::path::Path, name: &str) -> (DirStore, Arc<dyn ContentStore>) {
    let s = DirStore::open(&dir.join(name)).unwrap();
    (s.clone(), Arc::new(s))
}

async fn push_to(c: &RegistryClient, target: &str, m: &berth_registry::manifest::Descriptor, src: &Arc<dyn ContentStore>) {
    c.push(&Reference::parse(target).unwrap(), m, src.clone(), &PushOptions::default(), &Events::default().sink())
        .await
        .unwrap();
}

async fn try_pull(c: &RegistryClient, target: &str, dst: &Arc<dyn ContentStore>) -> Result<berth_registry::client::PulledImage, RegistryError> {
    c.pull(&Reference::parse(target).unwrap(), &PullOptions::default(), dst.clone(), &Events::default().sink()).await
}

/// Nothing of `digest` is visible or half-written in `s`.
fn absent(s: &DirStore, digest: &berth_registry::Digest) -> bool {
    !s.has(digest) && !s.ingest_path(digest).exists()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_blob_is_detected_and_nothing_is_stored() {
    let dir = berth_testutil::short_tempdir("breg-f");
    let root = dir.path().join("root");
    let srv = start_registry(&root).await;
    let (src, src_dyn) = stores(dir.path(), "src");
    let m = synthetic_image(&src, &[50_000, 60_000], 31, ("linux", "amd64"));
    let certs = tempfile::tempdir().unwrap();
    let c = client(certs.path());
    let target = format!("{}/corrupt/app:1", srv.local_addr());
    push_to(&c, &target, &m, &src_dyn).await;

    // Flip bytes of the second layer on the registry's disk (same size, wrong digest).
    let layer = image_blobs(&src, &m)[3].clone();
    let on_disk = root.join("blobs/sha256").join(layer.hex());
    let mut bytes = std::fs::read(&on_disk).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&on_disk, &bytes).unwrap();

    let (dst, dst_dyn) = stores(dir.path(), "dst");
    let err = try_pull(&c, &target, &dst_dyn).await.unwrap_err();
    assert!(matches!(err, RegistryError::DigestMismatch { .. }), "{err}");
    assert!(err.to_string().starts_with(&format!("digest mismatch for layer {layer}")), "{err}");
    assert!(absent(&dst, &layer), "corrupt layer left behind");
    // The image is not complete, so no manifest is recorded either.
    assert!(!dst.has(&m.digest));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_media_types_are_refused_clearly() {
    let dir = berth_testutil::short_tempdir("breg-f");
    let srv = start_registry(&dir.path().join("root")).await;
    let (src, src_dyn) = stores(dir.path(), "src");
    let layer = src.put(b"not a layer").unwrap();
    let config_bytes = br#"{"rootfs":{"type":"layers","diff_ids":["sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"]}}"#;
    let config = src.put(config_bytes).unwrap();
    let make = |config_type: &str, layer_type: &str| {
        let m = serde_json::json!({
            "schemaVersion": 2, "mediaType": media::OCI_MANIFEST,
            "config": {"mediaType": config_type, "digest": config, "size": config_bytes.len()},
            "layers": [{"mediaType": layer_type, "digest": layer, "size": 11}],
        })
        .to_string();
        let d = src.put(m.as_bytes()).unwrap();
        berth_registry::manifest::Descriptor::new(media::OCI_MANIFEST, d, m.len() as u64)
    };
    let certs = tempfile::tempdir().unwrap();
    let c = client(certs.path());
    let host = srv.local_addr();
    push_to(&c, &format!("{host}/mt/layer:1"), &make(media::OCI_CONFIG, "application/vnd.example.thing"), &src_dyn).await;
    push_to(&c, &format!("{host}/mt/artifact:1"), &make("application/vnd.cncf.helm.config.v1+json", media::OCI_LAYER_GZIP), &src_dyn).await;
    let (_, dst) = stores(dir.path(), "dst");
    let err = try_pull(&c, &format!("{host}/mt/layer:1"), &dst).await.unwrap_err();
    assert!(matches!(err, RegistryError::UnsupportedMediaType { .. }));
    assert!(err.to_string().contains("\"application/vnd.example.thing\""), "{err}");
    let err = try_pull(&c, &format!("{host}/mt/artifact:1"), &dst).await.unwrap_err();
    assert!(err.to_string().contains("not a container image"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_answers_read_like_docker() {
    let dir = berth_testutil::short_tempdir("breg-f");
    let reg = DistributionRegistry::start(DistAuth::None);
    let certs = tempfile::tempdir().unwrap();
    let c = client(certs.path());
    let (_, dst) = stores(dir.path(), "dst");

    // 404 for an unknown tag of a repository that exists, and for an unknown repository.
    let (src, src_dyn) = stores(dir.path(), "src");
    let m = synthetic_image(&src, &[10], 41, ("linux", "amd64"));
    push_to(&c, &format!("{}/e/app:1", reg.addr), &m, &src_dyn).await;
    let err = try_pull(&c, &format!("{}/e/app:nope", reg.addr), &dst).await.unwrap_err();
    assert_eq!(err.to_string(), format!("manifest for {}/e/app:nope not found: manifest unknown: manifest unknown", reg.addr));
    assert_eq!(err.kind(), ErrorKind::NotFound);
    let err = try_pull(&c, &format!("{}/no/such:1", reg.addr), &dst).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
    assert!(err.to_string().contains("not found"), "{err}");

    // 429 and 500 from a proxy in front of the registry.
    let proxy = proxy::Proxy::start(&format!("http://{}", reg.addr)).await;
    *proxy.state.fail.lock().unwrap() = Some((
        429,
        r#"{"errors":[{"code":"TOOMANYREQUESTS","message":"You have reached your pull rate limit."}]}"#.into(),
        vec![("retry-after".into(), "30".into())],
    ));
    let err = try_pull(&c, &format!("{}/e/app:1", proxy.host()), &dst).await.unwrap_err();
    assert_eq!(err.to_string(), "toomanyrequests: You have reached your pull rate limit. (retry after 30 s)");
    assert_eq!(err.kind(), ErrorKind::Unavailable);

    *proxy.state.fail.lock().unwrap() = Some((500, "oops".into(), vec![]));
    let err = try_pull(&c, &format!("{}/e/app:1", proxy.host()), &dst).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("manifest for {}/e/app:1: registry {} answered 500: received unexpected HTTP status: 500 Internal Server Error", proxy.host(), proxy.host())
    );
    assert_eq!(err.kind(), ErrorKind::Unavailable);

    // Nothing listens: a connection error naming the registry.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let err = try_pull(&c, &format!("{closed}/x:1"), &dst).await.unwrap_err();
    assert!(err.to_string().starts_with(&format!("cannot connect to registry {closed}")), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_download_resumes_with_range_in_the_same_pull() {
    let dir = berth_testutil::short_tempdir("breg-f");
    let srv = start_registry(&dir.path().join("root")).await;
    let proxy = proxy::Proxy::start(&srv.url()).await;
    let (src, src_dyn) = stores(dir.path(), "src");
    let m = synthetic_image(&src, &[3_000_000], 51, ("linux", "amd64"));
    let certs = tempfile::tempdir().unwrap();
    let c = client(certs.path());
    let target = format!("{}/resume/app:1", proxy.host());
    push_to(&c, &target, &m, &src_dyn).await;
    let layer = image_blobs(&src, &m)[2].clone();

    *proxy.state.cut_blob_after.lock().unwrap() = Some(1_000_000);
    let (dst, dst_dyn) = stores(dir.path(), "dst");
    let ev = Events::default();
    c.pull(&Reference::parse(&target).unwrap(), &PullOptions::default(), dst_dyn.clone(), &ev.sink()).await.unwrap();
    assert_eq!(dst.read(&layer).unwrap(), src.read(&layer).unwrap());
    let ranges: Vec<String> = proxy
        .requests()
        .iter()
        .filter(|r| r.path.ends_with(&layer.to_string()) && r.method == "GET")
        .filter_map(|r| r.range.clone())
        .collect();
    assert_eq!(ranges.len(), 1, "{:?}", proxy.requests());
    let from: u64 = ranges[0].trim_start_matches("bytes=").trim_end_matches('-').parse().unwrap();
    assert!(from > 0 && from <= 1_000_000, "resumed from {from}");
    assert!(ev.statuses().iter().any(|s| s.contains("Retrying in 1 second")), "{:?}", ev.statuses());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pull_cut_off_leaves_nothing_visible_and_resumes_next_time() {
    let dir = berth_testutil::short_tempdir("breg-f");
    let srv = start_registry(&dir.path().join("root")).await;
    let proxy = proxy::Proxy::start(&srv.url()).await;
    let (src, src_dyn) = stores(dir.path(), "src");
    let m = synthetic_image(&src, &[2_000_000], 61, ("linux", "amd64"));
    let certs = tempfile::tempdir().unwrap();
    let mut conf = client_config(certs.path());
    conf.download_retries = 0;
    let c = RegistryClient::new(conf).unwrap();
    let target = format!("{}/resume/app:1", proxy.host());
    push_to(&c, &target, &m, &src_dyn).await;
    let layer = image_blobs(&src, &m)[2].clone();

    *proxy.state.cut_blob_after.lock().unwrap() = Some(700_000);
    let (dst, dst_dyn) = stores(dir.path(), "dst");
    let err = try_pull(&c, &target, &dst_dyn).await.unwrap_err();
    assert!(matches!(err, RegistryError::Transfer { .. }), "{err}");
    assert!(!dst.has(&layer), "half a blob is visible");
    assert!(!dst.has(&m.digest));
    let partial = std::fs::metadata(dst.ingest_path(&layer)).unwrap().len();
    assert!(partial > 0 && partial <= 700_000, "partial {partial}");

    // Next time: only the rest is fetched, and a registry that ignores Range works too.
    c.pull(&Reference::parse(&target).unwrap(), &PullOptions::default(), dst_dyn.clone(), &Events::default().sink()).await.unwrap();
    assert_eq!(dst.read(&layer).unwrap(), src.read(&layer).unwrap());
    let last = proxy.requests().into_iter().rev().find(|r| r.path.ends_with(&layer.to_string())).unwrap();
    assert_eq!(last.range.as_deref(), Some(format!("bytes={partial}-").as_str()));

    let (dst2, dst2_dyn) = stores(dir.path(), "dst2");
    *proxy.state.cut_blob_after.lock().unwrap() = Some(500_000);
    assert!(try_pull(&c, &target, &dst2_dyn).await.is_err());
    proxy.state.ignore_range.store(true, std::sync::atomic::Ordering::SeqCst);
    c.pull(&Reference::parse(&target).unwrap(), &PullOptions::default(), dst2_dyn, &Events::default().sink()).await.unwrap();
    assert_eq!(dst2.read(&layer).unwrap(), src.read(&layer).unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_pull_leaves_nothing_visible() {
    let dir = berth_testutil::short_tempdir("breg-f");
    let srv = start_registry(&dir.path().join("root")).await;
    let proxy = proxy::Proxy::start(&srv.url()).await;
    let (src, src_dyn) = stores(dir.path(), "src");
    let m = synthetic_image(&src, &[1_000_000, 1_000_000], 71, ("linux", "amd64"));
    let certs = tempfile::tempdir().unwrap();
    let c = client(certs.path());
    let target = format!("{}/cancel/app:1", proxy.host());
    push_to(&c, &target, &m, &src_dyn).await;
    *proxy.state.delay_blobs.lock().unwrap() = Some(std::time::Duration::from_secs(3));
    let (dst, dst_dyn) = stores(dir.path(), "dst");
    let r = tokio::time::timeout(std::time::Duration::from_millis(500), try_pull(&c, &target, &dst_dyn)).await;
    assert!(r.is_err(), "pull should still be waiting");
    for d in image_blobs(&src, &m) {
        assert!(!dst.has(&d), "{d} visible after a cancelled pull");
    }
    *proxy.state.delay_blobs.lock().unwrap() = None;
    try_pull(&c, &target, &dst_dyn).await.unwrap();
    for d in image_blobs(&src, &m) {
        assert!(dst.has(&d));
    }
}
