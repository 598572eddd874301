//! berth's registry server over real HTTP on loopback: the distribution API, checked
//! request by request (status codes, headers, bodies), then auth, TLS and GC.

mod common;

use berth_registry::server::gc::{GcOptions, garbage_collect};
use berth_registry::server::{self, ServerConfig, TlsFiles};
use common::*;
use reqwest::StatusCode;
use serde_json::Value;

/// Pushes a blob with POST + PUT (monolithic); returns its digest.
async fn push_blob(c: &reqwest::Client, base: &str, repo: &str, data: &[u8]) -> String {
    let r = c.post(format!("{base}/v2/{repo}/blobs/uploads/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let d = sha256(data);
    let r = c
        .put(format!("{base}{loc}?digest={d}"))
        .body(data.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED, "{}", r.text().await.unwrap());
    d
}

fn manifest(config: &str, config_len: usize, layers: &[(&str, usize)]) -> String {
    let layers: Vec<Value> = layers
        .iter()
        .map(|(d, n)| serde_json::json!({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": d, "size": n}))
        .collect();
    serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": config, "size": config_len},
        "layers": layers,
    })
    .to_string()
}

async fn put_manifest(c: &reqwest::Client, base: &str, repo: &str, reference: &str, body: &str) -> reqwest::Response {
    c.put(format!("{base}/v2/{repo}/manifests/{reference}"))
        .header("content-type", "application/vnd.oci.image.manifest.v1+json")
        .body(body.to_string())
        .send()
        .await
        .unwrap()
}

async fn error_code(r: reqwest::Response) -> String {
    let v: Value = json(r).await;
    v["errors"][0]["code"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn blob_uploads_monolithic_chunked_and_single_post() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start_registry(dir.path()).await;
    let base = srv.url();
    let c = http();

    let r = c.get(format!("{base}/v2/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["docker-distribution-api-version"], "registry/2.0");

    // Monolithic: POST then PUT with the body.
    let d1 = push_blob(&c, &base, "test/a", b"monolithic blob").await;

    // Chunked: POST, two PATCHes with Content-Range, status GET, PUT without body.
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let r = c.post(format!("{base}/v2/test/a/blobs/uploads/")).send().await.unwrap();
    assert_eq!(r.headers()["range"], "0-0");
    let uuid = r.headers()["docker-upload-uuid"].to_str().unwrap().to_string();
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let r = c
        .patch(format!("{base}{loc}"))
        .header("content-range", "0-99999")
        .body(data[..100_000].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert_eq!(r.headers()["range"], "0-99999");
    // A chunk that does not start where the upload is: 416, upload untouched.
    let r = c
        .patch(format!("{base}{loc}"))
        .header("content-range", "5-10")
        .body(vec![0u8; 6])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    let r = c
        .patch(format!("{base}{loc}"))
        .header("content-range", "100000-199999")
        .body(data[100_000..].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = c.get(format!("{base}/v2/test/a/blobs/uploads/{uuid}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(r.headers()["range"], "0-199999");
    let d2 = sha256(&data);
    let r = c.put(format!("{base}{loc}?digest={d2}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["docker-content-digest"].to_str().unwrap(), d2);
    assert_eq!(r.headers()["location"].to_str().unwrap(), format!("/v2/test/a/blobs/{d2}"));
    // The session is gone once committed.
    let r = c.get(format!("{base}/v2/test/a/blobs/uploads/{uuid}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // Single POST with ?digest= (OCI monolithic).
    let d3 = sha256(b"single post");
    let r = c
        .post(format!("{base}/v2/test/a/blobs/uploads/?digest={d3}"))
        .body(b"single post".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);

    // HEAD and GET, whole and ranged.
    let r = c.head(format!("{base}/v2/test/a/blobs/{d2}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-length"], "200000");
    assert_eq!(r.headers()["docker-content-digest"].to_str().unwrap(), d2);
    let body = c.get(format!("{base}/v2/test/a/blobs/{d2}")).send().await.unwrap().bytes().await.unwrap();
    assert_eq!(&body[..], &data[..]);
    let r = c
        .get(format!("{base}/v2/test/a/blobs/{d2}"))
        .header("range", "bytes=150000-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.headers()["content-range"], "bytes 150000-199999/200000");
    assert_eq!(&r.bytes().await.unwrap()[..], &data[150_000..]);
    let r = c
        .get(format!("{base}/v2/test/a/blobs/{d2}"))
        .header("range", "bytes=300000-")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.headers()["content-range"], "bytes */200000");

    let text = c.get(format!("{base}/v2/test/a/blobs/{d1}")).send().await.unwrap().text().await.unwrap();
    assert_eq!(text, "monolithic blob");
    // Blobs belong to a repository: another one does not see them.
    let r = c.head(format!("{base}/v2/other/blobs/{d1}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn wrong_digest_is_rejected_and_nothing_is_stored() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start_registry(dir.path()).await;
    let (base, c) = (srv.url(), http());
    let claimed = sha256(b"what the client claims");
    let r = c.post(format!("{base}/v2/r/blobs/uploads/")).send().await.unwrap();
    let loc = r.headers()["location"].to_str().unwrap().to_string();
    let r = c.put(format!("{base}{loc}?digest={claimed}")).body("corrupted bytes").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
    let r = c.head(format!("{base}/v2/r/blobs/{claimed}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = c.head(format!("{base}/v2/r/blobs/{}", sha256(b"corrupted bytes"))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    // No blob files and no upload left behind.
    assert!(std::fs::read_dir(dir.path().join("uploads")).unwrap().next().is_none());
    let blobs = dir.path().join("blobs/sha256");
    assert!(!blobs.exists() || std::fs::read_dir(blobs).unwrap().next().is_none());

    // Malformed digests and names are refused outright.
    let r = c.head(format!("{base}/v2/r/blobs/sha256:nothex")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = c.get(format!("{base}/v2/Bad_Name/tags/list")).send().await.unwrap();
    assert_eq!(error_code(r).await, "NAME_INVALID");
    let r = c.get(format!("{base}/v2/a/../b/tags/list")).send().await.unwrap();
    assert_ne!(r.status(), StatusCode::OK);
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn manifests_tags_catalog_mount_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start_registry(dir.path()).await;
    let (base, c) = (srv.url(), http());
    let cfg = push_blob(&c, &base, "lib/app", b"{\"architecture\":\"amd64\",\"os\":\"linux\"}").await;
    let layer = push_blob(&c, &base, "lib/app", b"layer bytes").await;
    let m = manifest(&cfg, 37, &[(&layer, 11)]);

    // A manifest naming a blob the repository lacks is refused.
    let missing = sha256(b"missing");
    let bad = manifest(&cfg, 37, &[(&missing, 7)]);
    let r = put_manifest(&c, &base, "lib/app", "v1", &bad).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(error_code(r).await, "MANIFEST_BLOB_UNKNOWN");
    let r = put_manifest(&c, &base, "lib/app", "v1", "{not json").await;
    assert_eq!(error_code(r).await, "MANIFEST_INVALID");

    let md = sha256(m.as_bytes());
    for tag in ["v1", "v2", "v3", "latest"] {
        let r = put_manifest(&c, &base, "lib/app", tag, &m).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(r.headers()["docker-content-digest"].to_str().unwrap(), md);
    }
    // By digest: must match the body.
    let r = put_manifest(&c, &base, "lib/app", &sha256(b"x"), &m).await;
    assert_eq!(error_code(r).await, "DIGEST_INVALID");
    let r = put_manifest(&c, &base, "lib/app", &md, &m).await;
    assert_eq!(r.status(), StatusCode::CREATED);

    for reference in ["v1", md.as_str()] {
        let r = c.get(format!("{base}/v2/lib/app/manifests/{reference}")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], "application/vnd.oci.image.manifest.v1+json");
        assert_eq!(r.headers()["docker-content-digest"].to_str().unwrap(), md);
        assert_eq!(r.text().await.unwrap(), m);
    }
    let r = c.head(format!("{base}/v2/lib/app/manifests/v2")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-length"].to_str().unwrap(), m.len().to_string());
    let r = c.get(format!("{base}/v2/lib/app/manifests/nope")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(error_code(r).await, "MANIFEST_UNKNOWN");
    let r = c.get(format!("{base}/v2/no/such/manifests/latest")).send().await.unwrap();
    assert_eq!(error_code(r).await, "NAME_UNKNOWN");

    // Tags with pagination.
    let r = c.get(format!("{base}/v2/lib/app/tags/list?n=2")).send().await.unwrap();
    assert_eq!(r.headers()["link"], "</v2/lib/app/tags/list?last=v1&n=2>; rel=\"next\"");
    let v: Value = json(r).await;
    assert_eq!(v, serde_json::json!({"name": "lib/app", "tags": ["latest", "v1"]}));
    let r = c.get(format!("{base}/v2/lib/app/tags/list?last=v1&n=2")).send().await.unwrap();
    assert!(r.headers().get("link").is_none());
    let v: Value = json(r).await;
    assert_eq!(v["tags"], serde_json::json!(["v2", "v3"]));

    // Cross-repository mount: 201 when the source has it, a normal upload otherwise.
    let r = c
        .post(format!("{base}/v2/other/app/blobs/uploads/?mount={layer}&from=lib/app"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    assert_eq!(r.headers()["docker-content-digest"].to_str().unwrap(), layer);
    let r = c.head(format!("{base}/v2/other/app/blobs/{layer}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = c
        .post(format!("{base}/v2/other/app/blobs/uploads/?mount={layer}&from=not/there"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    assert!(r.headers().contains_key("docker-upload-uuid"));

    let r = c.get(format!("{base}/v2/_catalog")).send().await.unwrap();
    let v: Value = json(r).await;
    assert_eq!(v, serde_json::json!({"repositories": ["lib/app", "other/app"]}));
    let r = c.get(format!("{base}/v2/_catalog?n=1")).send().await.unwrap();
    assert_eq!(r.headers()["link"], "</v2/_catalog?last=lib/app&n=1>; rel=\"next\"");

    // Delete a tag, then the manifest by digest (which takes its other tags along).
    let r = c.delete(format!("{base}/v2/lib/app/manifests/v3")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = c.delete(format!("{base}/v2/lib/app/manifests/{md}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    for reference in ["v1", md.as_str()] {
        let r = c.get(format!("{base}/v2/lib/app/manifests/{reference}")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
    }
    let v: Value = json(c.get(format!("{base}/v2/lib/app/tags/list")).send().await.unwrap()).await;
    assert_eq!(v["tags"], serde_json::json!([]));
    let r = c.delete(format!("{base}/v2/lib/app/blobs/{layer}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let r = c.head(format!("{base}/v2/lib/app/blobs/{layer}")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    srv.shutdown().await.unwrap();
}

#[tokio::test]
async fn htpasswd_basic_auth() {
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("htpasswd");
    std::fs::write(&pw, format!("alice:{}\n", bcrypt::hash("wonderland", 5).unwrap())).unwrap();
    let mut cfg = ServerConfig::new(loopback0(), &dir.path().join("root"));
    cfg.htpasswd = Some(pw);
    let srv = server::start(cfg).await.unwrap();
    let (base, c) = (srv.url(), http());
    let r = c.get(format!("{base}/v2/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["www-authenticate"], "Basic realm=\"berth-registry\"");
    assert_eq!(error_code(r).await, "UNAUTHORIZED");
    let r = c.get(format!("{base}/v2/")).basic_auth("alice", Some("nope")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = c.get(format!("{base}/v2/")).basic_auth("alice", Some("wonderland")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = c.get(format!("{base}/v2/_catalog")).basic_auth("alice", Some("wonderland")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    srv.shutdown().await.unwrap();

    // A non-bcrypt file is refused at start, with the line named.
    let bad = dir.path().join("bad");
    std::fs::write(&bad, "bob:{SHA}abc\n").unwrap();
    let mut cfg = ServerConfig::new(loopback0(), &dir.path().join("root"));
    cfg.htpasswd = Some(bad);
    let err = server::start(cfg).await.err().unwrap().to_string();
    assert!(err.contains("line 1") && err.contains("bcrypt"), "{err}");
}

#[tokio::test]
async fn tls_with_a_generated_ca() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_pem, cert_pem, key_pem) = tls_material(&["127.0.0.1", "localhost"]);
    std::fs::write(dir.path().join("cert.pem"), &cert_pem).unwrap();
    std::fs::write(dir.path().join("key.pem"), &key_pem).unwrap();
    let mut cfg = ServerConfig::new(loopback0(), &dir.path().join("root"));
    cfg.tls = Some(TlsFiles {
        cert: dir.path().join("cert.pem"),
        key: dir.path().join("key.pem"),
    });
    let srv = server::start(cfg).await.unwrap();
    assert!(srv.url().starts_with("https://"));
    let _ = rustls::crypto::ring::default_provider().install_default();
    let c = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap()])
        .build()
        .unwrap();
    let r = c.get(format!("{}/v2/", srv.url())).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    // Plain HTTP to a TLS port gets nowhere.
    let plain = http().get(format!("http://{}/v2/", srv.local_addr())).send().await;
    assert!(plain.is_err() || plain.unwrap().status() != StatusCode::OK);
    srv.shutdown().await.unwrap();

    // A key that does not belong to the certificate is refused at start.
    let (_, _, other_key) = tls_material(&["127.0.0.1"]);
    std::fs::write(dir.path().join("other.pem"), other_key).unwrap();
    let mut cfg = ServerConfig::new(loopback0(), &dir.path().join("root"));
    cfg.tls = Some(TlsFiles {
        cert: dir.path().join("cert.pem"),
        key: dir.path().join("other.pem"),
    });
    assert!(server::start(cfg).await.is_err());
}


#[tokio::test]
async fn garbage_collect_keeps_referenced_blobs_only() {
    let dir = tempfile::tempdir().unwrap();
    let srv = start_registry(dir.path()).await;
    let (base, c) = (srv.url(), http());
    let cfg = push_blob(&c, &base, "gc/a", b"{}").await;
    let shared = push_blob(&c, &base, "gc/a", b"shared layer").await;
    let only_b = push_blob(&c, &base, "gc/a", b"layer only in b").await;
    let stray = push_blob(&c, &base, "gc/a", b"never referenced").await;
    let ma = manifest(&cfg, 2, &[(&shared, 12)]);
    let mb = manifest(&cfg, 2, &[(&shared, 12), (&only_b, 15)]);
    assert_eq!(put_manifest(&c, &base, "gc/a", "a", &ma).await.status(), StatusCode::CREATED);
    assert_eq!(put_manifest(&c, &base, "gc/a", "b", &mb).await.status(), StatusCode::CREATED);
    let r = c.delete(format!("{base}/v2/gc/a/manifests/{}", sha256(mb.as_bytes()))).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);

    // Refused while the server holds the storage.
    let err = garbage_collect(dir.path(), &GcOptions::default()).unwrap_err();
    assert!(err.to_string().contains("locked"), "{err}");
    srv.shutdown().await.unwrap();

    let dry = garbage_collect(dir.path(), &GcOptions { dry_run: true, ..Default::default() }).unwrap();
    assert_eq!(dry.blobs_deleted.len(), 3);
    let report = garbage_collect(dir.path(), &GcOptions::default()).unwrap();
    let mut deleted: Vec<String> = report.blobs_deleted.iter().map(|d| d.to_string()).collect();
    deleted.sort();
    let mut expect = vec![only_b.clone(), stray.clone(), sha256(mb.as_bytes())];
    expect.sort();
    assert_eq!(deleted, expect);

    let srv = start_registry(dir.path()).await;
    let (base, c) = (srv.url(), http());
    for (d, status) in [(&cfg, 200), (&shared, 200), (&only_b, 404), (&stray, 404)] {
        let r = c.head(format!("{base}/v2/gc/a/blobs/{d}")).send().await.unwrap();
        assert_eq!(r.status().as_u16(), status, "{d}");
    }
    let r = c.get(format!("{base}/v2/gc/a/manifests/a")).send().await.unwrap();
    assert_eq!(r.text().await.unwrap(), ma);
    srv.shutdown().await.unwrap();

    // --delete-untagged drops a manifest that only a digest reaches.
    let srv = start_registry(dir.path()).await;
    let (base, c) = (srv.url(), http());
    let mc = manifest(&cfg, 2, &[]);
    let mcd = sha256(mc.as_bytes());
    assert_eq!(put_manifest(&c, &base, "gc/a", &mcd, &mc).await.status(), StatusCode::CREATED);
    srv.shutdown().await.unwrap();
    let report = garbage_collect(dir.path(), &GcOptions { delete_untagged: true, ..Default::default() }).unwrap();
    assert_eq!(report.manifests_deleted.len(), 1);
    assert_eq!(report.manifests_deleted[0].1.to_string(), mcd);
}
