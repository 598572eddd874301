//! Pull-through cache mode: a berth registry proxying a second berth registry on
//! loopback (which wants htpasswd Basic auth, so the proxy's upstream credentials are
//! used): manifests and blobs fetched once and kept, tags followed upstream, the cache
//! serving alone once the upstream is gone, pushes refused.

mod common;

use berth_registry::server::proxy::ProxyConfig;
use berth_registry::server::{self, ServerConfig};
use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn push_blob(c: &reqwest::Client, base: &str, repo: &str, data: &[u8]) -> String {
    let d = sha256(data);
    let r = c.post(format!("{base}/v2/{repo}/blobs/uploads/?digest={d}")).basic_auth("alice", Some("pw")).body(data.to_vec()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
    d
}

async fn put_manifest(c: &reqwest::Client, base: &str, repo: &str, tag: &str, body: &str) -> String {
    let r = c
        .put(format!("{base}/v2/{repo}/manifests/{tag}"))
        .basic_auth("alice", Some("pw"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    r.headers()["docker-content-digest"].to_str().unwrap().to_string()
}

fn image(config: &str, layer: &str, layer_len: usize) -> String {
    json!({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": layer, "size": layer_len}],
    })
    .to_string()
}

#[tokio::test]
async fn pull_through_cache_of_an_authenticated_upstream() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("htpasswd");
    std::fs::write(&pw, format!("alice:{}\n", bcrypt::hash("pw", 5).unwrap())).unwrap();
    let mut up_cfg = ServerConfig::new(loopback0(), &dir.path().join("upstream"));
    up_cfg.htpasswd = Some(pw);
    let upstream = server::start(up_cfg).await.unwrap();
    let (c, up) = (http(), upstream.url());
    let cfg_d = push_blob(&c, &up, "library/app", b"{}").await;
    let layer: Vec<u8> = (0..200_000u32).map(|i| (i % 253) as u8).collect();
    let layer_d = push_blob(&c, &up, "library/app", &layer).await;
    let m1 = image(&cfg_d, &layer_d, layer.len());
    let m1_d = put_manifest(&c, &up, "library/app", "1", &m1).await;

    // Without the upstream's credentials the cache gets nothing.
    let mut cfg = ServerConfig::new(loopback0(), &dir.path().join("nocreds"));
    cfg.proxy = Some(ProxyConfig { remote_url: up.clone(), ..Default::default() });
    let nocreds = server::start(cfg).await.unwrap();
    let r = c.get(format!("{}/v2/library/app/manifests/1", nocreds.url())).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    nocreds.shutdown().await.unwrap();

    let cache_root = dir.path().join("cache");
    let mut cfg = ServerConfig::new(loopback0(), &cache_root);
    cfg.proxy = Some(ProxyConfig { remote_url: up.clone(), username: "alice".into(), password: "pw".into() });
    let cache = server::start(cfg).await.unwrap();
    let base = cache.url();

    // A pull through the cache: what the upstream has, byte for byte.
    let r = c.get(format!("{base}/v2/library/app/manifests/1")).header("accept", "application/vnd.oci.image.manifest.v1+json").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["docker-content-digest"], m1_d.as_str());
    assert_eq!(r.text().await.unwrap(), m1);
    let r = c.get(format!("{base}/v2/library/app/blobs/{layer_d}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.bytes().await.unwrap(), layer);
    let r = c.get(format!("{base}/v2/library/app/blobs/{layer_d}")).header("range", "bytes=100-199").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.bytes().await.unwrap(), layer[100..200]);
    let r = c.get(format!("{base}/v2/library/app/tags/list")).send().await.unwrap();
    let v: Value = json_of(r).await;
    assert_eq!(v["tags"], json!(["1"]));
    // Kept on disk.
    let kept = cache_root.join("blobs/sha256").join(layer_d.trim_start_matches("sha256:"));
    assert_eq!(std::fs::read(&kept).unwrap(), layer);

    // The tag moves upstream: the cache follows it.
    let layer2 = b"second layer".to_vec();
    let layer2_d = push_blob(&c, &up, "library/app", &layer2).await;
    let m2 = image(&cfg_d, &layer2_d, layer2.len());
    let m2_d = put_manifest(&c, &up, "library/app", "1", &m2).await;
    let r = c.get(format!("{base}/v2/library/app/manifests/1")).send().await.unwrap();
    assert_eq!(r.headers()["docker-content-digest"], m2_d.as_str());
    assert_eq!(c.get(format!("{base}/v2/library/app/blobs/{layer2_d}")).send().await.unwrap().bytes().await.unwrap(), layer2);

    // Unknown things are the upstream's 404s.
    let r = c.get(format!("{base}/v2/library/app/manifests/nope")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = c.get(format!("{base}/v2/library/app/blobs/{}", sha256(b"absent"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Pushes and deletes are refused.
    let r = c.post(format!("{base}/v2/library/app/blobs/uploads/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let r = c.delete(format!("{base}/v2/library/app/manifests/{m2_d}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);

    // The upstream goes away: what was pulled is still served, by tag and digest.
    upstream.shutdown().await.unwrap();
    let r = c.get(format!("{base}/v2/library/app/manifests/1")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["docker-content-digest"], m2_d.as_str());
    let r = c.get(format!("{base}/v2/library/app/manifests/{m1_d}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(c.get(format!("{base}/v2/library/app/blobs/{layer_d}")).send().await.unwrap().bytes().await.unwrap(), layer);
    // What was never pulled is not there.
    let r = c.get(format!("{base}/v2/library/other/manifests/1")).send().await.unwrap();
    assert!(r.status().is_server_error() || r.status() == StatusCode::NOT_FOUND, "{}", r.status());
    cache.shutdown().await.unwrap();
}

async fn json_of(r: reqwest::Response) -> Value {
    json(r).await
}
