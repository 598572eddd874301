//! The client against real registries on loopback: Debian's docker-registry (the
//! distribution registry) and berth's own server. Images go up and come back down
//! byte-identical, with Docker's progress messages.

mod common;

use std::sync::Arc;

use berth_registry::Reference;
use berth_registry::client::{PullOptions, PushOptions, RegistryClient};
use berth_registry::manifest::{Descriptor, Platform};
use berth_registry::store::{ContentStore, DirStore};
use common::distribution::{DistAuth, DistributionRegistry};
use common::images::*;
use common::*;

fn store(dir: &std::path::Path, name: &str) -> (DirStore, Arc<dyn ContentStore>) {
    let s = DirStore::open(&dir.join(name)).unwrap();
    let a: Arc<dyn ContentStore> = Arc::new(s.clone());
    (s, a)
}

async fn push(c: &RegistryClient, target: &str, m: &Descriptor, st: &Arc<dyn ContentStore>, ev: &Events) -> berth_registry::client::PushedImage {
    c.push(&Reference::parse(target).unwrap(), m, st.clone(), &PushOptions::default(), &ev.sink())
        .await
        .unwrap_or_else(|e| panic!("push {target}: {e}"))
}

async fn pull(c: &RegistryClient, r: &str, st: &Arc<dyn ContentStore>, ev: &Events) -> berth_registry::client::PulledImage {
    c.pull(&Reference::parse(r).unwrap(), &PullOptions::default(), st.clone(), &ev.sink())
        .await
        .unwrap_or_else(|e| panic!("pull {r}: {e}"))
}

/// Push the fixture image, pull it back into an empty store, pull again, push again.
async fn round_trip(host: &str, c: &RegistryClient) {
    let dir = berth_testutil::short_tempdir("breg-c");
    let (src, src_dyn) = store(dir.path(), "src");
    let m = import_oci_archive(&src, &fixtures().join("layers-oci-gzip.tar"));
    let target = format!("{host}/fixture/layers:1.0");

    let ev = Events::default();
    let pushed = push(c, &target, &m, &src_dyn, &ev).await;
    assert_eq!(pushed.digest, m.digest);
    assert_eq!(pushed.repo_digest(), format!("{host}/fixture/layers@{}", m.digest));
    let s = ev.statuses();
    assert_eq!(s[0], format!("The push refers to repository [{host}/fixture/layers]"));
    // Layers are named by DiffID (the fixture's first layer is the base).
    assert!(s.contains(&"452f786823ef: Preparing".to_string()), "{s:#?}");
    assert_eq!(s.iter().filter(|x| x.ends_with(": Pushed")).count(), 5, "{s:#?}");
    assert_eq!(s[s.len() - 2], format!("1.0: digest: {} size: {}", m.digest, m.size));

    let (dst, dst_dyn) = store(dir.path(), "dst");
    let ev = Events::default();
    let img = pull(c, &target, &dst_dyn, &ev).await;
    assert_eq!(img.digest, m.digest);
    assert_eq!(img.layers.len(), 5);
    assert_eq!(img.diff_ids[0].to_string(), "sha256:452f786823ef11cd754ee0e1fba9445a348075d2df3ff2f2a42a93c8dca243ec");
    for d in image_blobs(&src, &m) {
        assert_eq!(dst.read(&d).unwrap(), src.read(&d).unwrap(), "{d}");
    }
    let s = ev.statuses();
    assert_eq!(s[0], "1.0: Pulling from fixture/layers");
    for l in &img.layers {
        let id = l.digest.short_id();
        for status in ["Pulling fs layer", "Verifying Checksum", "Download complete", "Pull complete"] {
            assert!(s.contains(&format!("{id}: {status}")), "{id} {status}: {s:#?}");
        }
    }
    assert!(s.iter().any(|x| x.contains(": Downloading")));
    assert_eq!(s[s.len() - 2], format!("Digest: {}", m.digest));
    assert_eq!(s[s.len() - 1], format!("Status: Downloaded newer image for {target}"));
    assert!(!img.up_to_date);

    // Again: nothing to fetch.
    let ev = Events::default();
    let img = pull(c, &target, &dst_dyn, &ev).await;
    assert!(img.up_to_date);
    let s = ev.statuses();
    assert_eq!(s.iter().filter(|x| x.ends_with(": Already exists")).count(), 5);
    assert_eq!(s.last().unwrap(), &format!("Status: Image is up to date for {target}"));

    // Push again: the registry has every layer.
    let ev = Events::default();
    push(c, &target, &m, &src_dyn, &ev).await;
    assert_eq!(ev.statuses().iter().filter(|x| x.ends_with(": Layer already exists")).count(), 5);

    // Push to another repository of the same registry: layers are mounted, not uploaded.
    let ev = Events::default();
    push(c, &format!("{host}/other/copy:1"), &m, &src_dyn, &ev).await;
    let s = ev.statuses();
    assert_eq!(s.iter().filter(|x| x.ends_with(": Mounted from fixture/layers")).count(), 5, "{s:#?}");

    // Pull by digest.
    let (_, by_digest) = store(dir.path(), "bydigest");
    let ev = Events::default();
    let img = pull(c, &format!("{host}/other/copy@{}", m.digest), &by_digest, &ev).await;
    assert_eq!(img.digest, m.digest);
    assert_eq!(ev.statuses()[0], format!("{}: Pulling from other/copy", m.digest));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_with_distribution_registry() {
    let reg = DistributionRegistry::start(DistAuth::None);
    let certs = tempfile::tempdir().unwrap();
    round_trip(&reg.addr, &client(certs.path())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_with_berth_registry_monolithic_and_chunked() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start_registry(&dir.path().join("a")).await;
    let certs = tempfile::tempdir().unwrap();
    round_trip(&srv.local_addr().to_string(), &client(certs.path())).await;

    let srv = start_registry(&dir.path().join("b")).await;
    let mut cfg = client_config(certs.path());
    cfg.upload_chunk_size = Some(100_000);
    round_trip(&srv.local_addr().to_string(), &RegistryClient::new(cfg).unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_push_to_distribution_registry() {
    let reg = DistributionRegistry::start(DistAuth::None);
    let dir = berth_testutil::short_tempdir("breg-c");
    let (src, src_dyn) = store(dir.path(), "src");
    let m = synthetic_image(&src, &[700_000, 10, 250_000], 7, ("linux", "amd64"));
    let certs = tempfile::tempdir().unwrap();
    let mut cfg = client_config(certs.path());
    cfg.upload_chunk_size = Some(256 * 1024);
    let c = RegistryClient::new(cfg).unwrap();
    let target = format!("{}/synthetic/chunked:x", reg.addr);
    push(&c, &target, &m, &src_dyn, &Events::default()).await;
    let (dst, dst_dyn) = store(dir.path(), "dst");
    pull(&c, &target, &dst_dyn, &Events::default()).await;
    for d in image_blobs(&src, &m) {
        assert_eq!(dst.read(&d).unwrap(), src.read(&d).unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multi_platform_index_and_all_tags() {
    let reg = DistributionRegistry::start(DistAuth::None);
    let dir = berth_testutil::short_tempdir("breg-c");
    let (src, src_dyn) = store(dir.path(), "src");
    let amd = synthetic_image(&src, &[1000, 2000], 1, ("linux", "amd64"));
    let arm = synthetic_image(&src, &[3000], 2, ("linux", "arm64"));
    let idx = index_of(
        &src,
        &[(amd.clone(), Platform::new("linux", "amd64", None)), (arm.clone(), Platform::new("linux", "arm64", Some("v8")))],
    );
    let certs = tempfile::tempdir().unwrap();
    let c = client(certs.path());
    let repo = format!("{}/multi/app", reg.addr);
    push(&c, &format!("{repo}:1"), &idx, &src_dyn, &Events::default()).await;
    push(&c, &format!("{repo}:amd-only"), &amd, &src_dyn, &Events::default()).await;

    let (_, dst) = store(dir.path(), "dst");
    let opts = |p: &str| PullOptions { platform: Some(p.parse().unwrap()), ..Default::default() };
    let r = Reference::parse(&format!("{repo}:1")).unwrap();
    let img = c.pull(&r, &opts("linux/arm64"), dst.clone(), &Events::default().sink()).await.unwrap();
    assert_eq!(img.digest, idx.digest, "RepoDigest is the index digest");
    assert_eq!(img.manifest.digest, arm.digest);
    assert_eq!(img.layers.len(), 1);
    let img = c.pull(&r, &opts("linux/amd64"), dst.clone(), &Events::default().sink()).await.unwrap();
    assert_eq!(img.manifest.digest, amd.digest);
    let err = c.pull(&r, &opts("linux/s390x"), dst.clone(), &Events::default().sink()).await.unwrap_err();
    assert_eq!(err.to_string(), "no matching manifest for linux/s390x in the manifest list entries");

    let ev = Events::default();
    let all = c
        .pull_all_tags(&Reference::parse_repository(&repo).unwrap(), &PullOptions::default(), dst.clone(), &ev.sink())
        .await
        .unwrap();
    let mut tags: Vec<String> = all.iter().map(|i| i.reference.tag().unwrap().to_string()).collect();
    tags.sort();
    assert_eq!(tags, vec!["1", "amd-only"]);
    assert_eq!(ev.statuses().last().unwrap(), &format!("Status: Image is up to date for {repo}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_least_three_layers_download_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start_registry(&dir.path().join("root")).await;
    let proxy = proxy::Proxy::start(&srv.url()).await;
    let (src, src_dyn) = store(dir.path(), "src");
    let m = synthetic_image(&src, &[300_000, 300_000, 300_000, 300_000, 300_000], 3, ("linux", "amd64"));
    let certs = tempfile::tempdir().unwrap();
    let c = client(certs.path());
    let target = format!("{}/conc/img:1", proxy.host());
    push(&c, &target, &m, &src_dyn, &Events::default()).await;
    *proxy.state.delay_blobs.lock().unwrap() = Some(std::time::Duration::from_millis(400));
    let (_, dst) = store(dir.path(), "dst");
    let ev = Events::default();
    pull(&c, &target, &dst, &ev).await;
    let max = proxy.state.max_in_flight.load(std::sync::atomic::Ordering::SeqCst);
    assert_eq!(max, 3, "default concurrency is 3 downloads at once");
    // Two of the five waited for a slot, and said so.
    assert_eq!(ev.statuses().iter().filter(|s| s.ends_with(": Waiting")).count(), 2);
}
