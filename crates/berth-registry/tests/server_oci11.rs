//! OCI distribution-spec v1.1 against `berth registry serve`, by the conformance
//! suite's areas: push and pull with sha512 digests, artifacts with the empty config,
//! content discovery (referrers and `subject`, `artifactType` filtering), content
//! management (a deleted referrer leaves the list), chunked uploads out of order and
//! ranges.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json as j};
use sha2::Digest as _;

fn sha512(data: &[u8]) -> String {
    format!("sha512:{}", hex::encode(sha2::Sha512::digest(data)))
}

/// A monolithic upload (POST, then PUT with `digest`); the digest's algorithm is the
/// caller's.
async fn push(c: &reqwest::Client, base: &str, repo: &str, data: &[u8], digest: &str) {
    let r = c.post(format!("{base}/v2/{repo}/blobs/uploads/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let sep = if loc.contains('?') { '&' } else { '?' };
    let r = c.put(format!("{base}{loc}{sep}digest={digest}")).body(data.to_vec()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
    assert_eq!(r.headers()["docker-content-digest"], digest);
}

const EMPTY: &[u8] = b"{}";
const EMPTY_TYPE: &str = "application/vnd.oci.empty.v1+json";

async fn put(c: &reqwest::Client, base: &str, repo: &str, reference: &str, media_type: &str, body: &str) -> reqwest::Response {
    c.put(format!("{base}/v2/{repo}/manifests/{reference}")).header("content-type", media_type).body(body.to_string()).send().await.unwrap()
}

#[tokio::test]
async fn sha512_blobs_and_manifests() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start_registry(dir.path()).await;
    let (c, base) = (http(), srv.url());
    let layer = b"a layer addressed by sha512".to_vec();
    let d = sha512(&layer);
    push(&c, &base, "s512", &layer, &d).await;
    let r = c.get(format!("{base}/v2/s512/blobs/{d}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["docker-content-digest"], d.as_str());
    assert_eq!(r.bytes().await.unwrap(), layer);
    // A wrong sha512 is refused.
    let r = c.post(format!("{base}/v2/s512/blobs/uploads/?digest={}", sha512(b"other"))).body(layer.clone()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    // A manifest pushed by its sha512 digest.
    push(&c, &base, "s512", EMPTY, &sha256(EMPTY)).await;
    let m = j!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": EMPTY_TYPE, "digest": sha256(EMPTY), "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": d, "size": layer.len()}],
    })
    .to_string();
    let md = sha512(m.as_bytes());
    let r = put(&c, &base, "s512", &md, "application/vnd.oci.image.manifest.v1+json", &m).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["docker-content-digest"], md.as_str());
    let r = c.get(format!("{base}/v2/s512/manifests/{md}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), m);
}

#[tokio::test]
async fn referrers_and_subject() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start_registry(dir.path()).await;
    let (c, base) = (http(), srv.url());
    push(&c, &base, "app", EMPTY, &sha256(EMPTY)).await;
    let layer = b"payload".to_vec();
    push(&c, &base, "app", &layer, &sha256(&layer)).await;
    let image = j!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": EMPTY_TYPE, "digest": sha256(EMPTY), "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(&layer), "size": layer.len()}],
    })
    .to_string();
    let subject = sha256(image.as_bytes());
    // Nothing refers to it yet: 200 with an empty index, never 404.
    let r = c.get(format!("{base}/v2/app/referrers/{subject}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "application/vnd.oci.image.index.v1+json");
    let v: Value = json(r).await;
    assert_eq!(v, j!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": []}));

    // A signature pushed before its subject (allowed), then an SBOM, then the subject.
    let artifact = |kind: &str, note: &str| {
        j!({
            "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "artifactType": kind,
            "config": {"mediaType": EMPTY_TYPE, "digest": sha256(EMPTY), "size": 2},
            "layers": [{"mediaType": EMPTY_TYPE, "digest": sha256(EMPTY), "size": 2}],
            "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject, "size": image.len()},
            "annotations": {"org.example.note": note},
        })
        .to_string()
    };
    let sig = artifact("application/vnd.example.signature", "signed");
    let sig_d = sha256(sig.as_bytes());
    let r = put(&c, &base, "app", &sig_d, "application/vnd.oci.image.manifest.v1+json", &sig).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["oci-subject"], subject.as_str());
    let sbom = artifact("application/spdx+json", "sbom");
    let sbom_d = sha256(sbom.as_bytes());
    assert_eq!(put(&c, &base, "app", &sbom_d, "application/vnd.oci.image.manifest.v1+json", &sbom).await.status(), StatusCode::CREATED);
    let r = put(&c, &base, "app", "v1", "application/vnd.oci.image.manifest.v1+json", &image).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(r.headers().get("oci-subject").is_none());
    // An index can refer too; its artifactType is its own.
    let idx = j!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
        "artifactType": "application/vnd.example.bundle",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": sig_d, "size": sig.len()}],
        "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": subject, "size": image.len()},
    })
    .to_string();
    let idx_d = sha256(idx.as_bytes());
    assert_eq!(put(&c, &base, "app", &idx_d, "application/vnd.oci.image.index.v1+json", &idx).await.status(), StatusCode::CREATED);

    let v: Value = json(c.get(format!("{base}/v2/app/referrers/{subject}")).send().await.unwrap()).await;
    let mut got: Vec<(String, String)> = v["manifests"].as_array().unwrap().iter().map(|d| (d["digest"].as_str().unwrap().to_string(), d["artifactType"].as_str().unwrap().to_string())).collect();
    got.sort();
    let mut want = vec![
        (sig_d.clone(), "application/vnd.example.signature".to_string()),
        (sbom_d.clone(), "application/spdx+json".to_string()),
        (idx_d.clone(), "application/vnd.example.bundle".to_string()),
    ];
    want.sort();
    assert_eq!(got, want);
    let d = v["manifests"].as_array().unwrap().iter().find(|d| d["digest"] == sig_d.as_str()).unwrap();
    assert_eq!(d["mediaType"], "application/vnd.oci.image.manifest.v1+json");
    assert_eq!(d["size"], sig.len());
    assert_eq!(d["annotations"], j!({"org.example.note": "signed"}));

    // Filtered by artifactType, with the header saying so.
    let r = c.get(format!("{base}/v2/app/referrers/{subject}?artifactType=application/spdx%2Bjson")).send().await.unwrap();
    assert_eq!(r.headers()["oci-filters-applied"], "artifactType");
    let v: Value = json(r).await;
    assert_eq!(v["manifests"].as_array().unwrap().len(), 1);
    assert_eq!(v["manifests"][0]["digest"], sbom_d.as_str());

    // Content management: a deleted referrer leaves the list; other repositories see none.
    assert_eq!(c.delete(format!("{base}/v2/app/manifests/{sig_d}")).send().await.unwrap().status(), StatusCode::ACCEPTED);
    let v: Value = json(c.get(format!("{base}/v2/app/referrers/{subject}")).send().await.unwrap()).await;
    assert_eq!(v["manifests"].as_array().unwrap().len(), 2);
    let v: Value = json(c.get(format!("{base}/v2/other/referrers/{subject}")).send().await.unwrap()).await;
    assert_eq!(v["manifests"], j!([]));
    // A bad digest is a 400.
    assert_eq!(c.get(format!("{base}/v2/app/referrers/sha256:nothex")).send().await.unwrap().status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn chunks_in_order_only_and_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start_registry(dir.path()).await;
    let (c, base) = (http(), srv.url());
    let data: Vec<u8> = (0..3000u32).map(|i| (i % 251) as u8).collect();
    let r = c.post(format!("{base}/v2/chunks/blobs/uploads/")).send().await.unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let patch = |loc: String, start: usize, end: usize| {
        let c = c.clone();
        let base = base.clone();
        let body = data[start..end].to_vec();
        async move {
            c.patch(format!("{base}{loc}"))
                .header("content-type", "application/octet-stream")
                .header("content-range", format!("{start}-{}", end - 1))
                .body(body)
                .send()
                .await
                .unwrap()
        }
    };
    let r = patch(loc.clone(), 0, 1000).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(r.headers()["range"], "0-999");
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    // Out of order: 416, and the session is unchanged.
    let r = patch(loc.clone(), 2000, 3000).await;
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    let r = c.get(format!("{base}{loc}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(r.headers()["range"], "0-999");
    let r = patch(loc.clone(), 1000, 2000).await;
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let d = sha256(&data);
    let sep = if loc.contains('?') { '&' } else { '?' };
    let r = c.put(format!("{base}{loc}{sep}digest={d}")).body(data[2000..].to_vec()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    // Ranges.
    let r = c.get(format!("{base}/v2/chunks/blobs/{d}")).header("range", "bytes=10-19").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.headers()["content-range"], "bytes 10-19/3000");
    assert_eq!(r.bytes().await.unwrap(), data[10..20]);
    let r = c.get(format!("{base}/v2/chunks/blobs/{d}")).header("range", "bytes=-5").send().await.unwrap();
    assert_eq!(r.bytes().await.unwrap(), data[2995..]);
    let r = c.get(format!("{base}/v2/chunks/blobs/{d}")).header("range", "bytes=5000-").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.headers()["content-range"], "bytes */3000");
}

#[tokio::test]
async fn storage_usage_per_repository() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start_registry(dir.path()).await;
    let (c, base) = (http(), srv.url());
    let shared = vec![7u8; 1000];
    let own = vec![9u8; 300];
    push(&c, &base, "a", &shared, &sha256(&shared)).await;
    push(&c, &base, "b", &shared, &sha256(&shared)).await;
    push(&c, &base, "b", &own, &sha256(&own)).await;
    let usage = berth_registry::server::Storage::open(dir.path()).unwrap().usage().unwrap();
    let get = |r: &str| usage.iter().find(|u| u.repository == r).unwrap().clone();
    assert_eq!((get("a").size, get("a").unique, get("a").blobs), (1000, 0, 1));
    assert_eq!((get("b").size, get("b").unique, get("b").blobs), (1300, 300, 2));
}

#[tokio::test]
async fn online_garbage_collection_keeps_referenced_and_young_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = berth_registry::server::ServerConfig::new(loopback0(), dir.path());
    cfg.gc_interval = Some(std::time::Duration::from_millis(200));
    cfg.gc_grace = std::time::Duration::from_secs(2);
    let srv = berth_registry::server::start(cfg).await.unwrap();
    let (c, base) = (http(), srv.url());
    let orphan = b"pushed, never referenced".to_vec();
    push(&c, &base, "gc", &orphan, &sha256(&orphan)).await;
    push(&c, &base, "gc", EMPTY, &sha256(EMPTY)).await;
    let layer = b"referenced layer".to_vec();
    push(&c, &base, "gc", &layer, &sha256(&layer)).await;
    let m = j!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": EMPTY_TYPE, "digest": sha256(EMPTY), "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha256(&layer), "size": layer.len()}],
    })
    .to_string();
    assert_eq!(put(&c, &base, "gc", "v1", "application/vnd.oci.image.manifest.v1+json", &m).await.status(), StatusCode::CREATED);
    let blob = |d: String| {
        let (c, base) = (c.clone(), base.clone());
        async move { c.head(format!("{base}/v2/gc/blobs/{d}")).send().await.unwrap().status() }
    };
    // Within the grace period the orphan stays (its manifest might be on its way).
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    assert_eq!(blob(sha256(&orphan)).await, StatusCode::OK);
    // After it, the next collection takes it, while the server keeps serving.
    tokio::time::sleep(std::time::Duration::from_millis(2300)).await;
    assert_eq!(blob(sha256(&orphan)).await, StatusCode::NOT_FOUND);
    assert_eq!(blob(sha256(&layer)).await, StatusCode::OK);
    assert_eq!(c.get(format!("{base}/v2/gc/manifests/v1")).send().await.unwrap().status(), StatusCode::OK);
    // Pushes keep working between collections.
    let more = b"a later push".to_vec();
    push(&c, &base, "gc", &more, &sha256(&more)).await;
    srv.shutdown().await.unwrap();
}
