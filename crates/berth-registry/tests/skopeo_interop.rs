//! skopeo (containers/image, a third-party client) against berth's registry: images made
//! by real Docker and skopeo go in and come back out byte-identical.

mod common;

use std::path::Path;
use std::process::Command;

use berth_registry::server::{self, ServerConfig, TlsFiles};
use common::*;

fn skopeo(args: &[&str]) -> Vec<u8> {
    let out = Command::new("skopeo")
        .arg("--insecure-policy")
        .args(args)
        .output()
        .expect("run skopeo");
    assert!(
        out.status.success(),
        "skopeo {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

async fn skopeo_async(args: Vec<String>) -> Vec<u8> {
    tokio::task::spawn_blocking(move || {
        let a: Vec<&str> = args.iter().map(String::as_str).collect();
        skopeo(&a)
    })
    .await
    .unwrap()
}

fn sv(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| s.to_string()).collect()
}

/// Unpacks an OCI archive and returns (dir, manifest bytes of its only image).
fn oci_archive_manifest(archive: &Path, into: &Path) -> Vec<u8> {
    let st = Command::new("tar").arg("-xf").arg(archive).arg("-C").arg(into).status().unwrap();
    assert!(st.success());
    let index: serde_json::Value = serde_json::from_slice(&std::fs::read(into.join("index.json")).unwrap()).unwrap();
    let digest = index["manifests"][0]["digest"].as_str().unwrap();
    std::fs::read(into.join("blobs/sha256").join(&digest[7..])).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_copies_oci_archives_in_and_out_unchanged() {
    let dir = berth_testutil::short_tempdir("breg-sk");
    let srv = start_registry(&dir.path().join("root")).await;
    let host = srv.local_addr().to_string();
    for (archive, repo) in [("layers-oci-gzip.tar", "fixture/layers-gzip"), ("layers-oci-zstd.tar", "fixture/layers-zstd")] {
        let src = dir.path().join(repo.replace('/', "_"));
        std::fs::create_dir_all(&src).unwrap();
        let original = oci_archive_manifest(&fixtures().join(archive), &src);
        let dest = format!("docker://{host}/{repo}:1.0");
        skopeo_async(sv(&["copy", "--dest-tls-verify=false", &format!("oci-archive:{}", fixtures().join(archive).display()), &dest])).await;

        // The registry serves the manifest byte for byte.
        let raw = skopeo_async(sv(&["inspect", "--raw", "--tls-verify=false", &dest])).await;
        assert_eq!(raw, original, "{archive}: manifest changed on the way in");

        // And skopeo gets the same image back out: same manifest, every blob intact.
        let out = dir.path().join(format!("out-{}", repo.replace('/', "_")));
        skopeo_async(sv(&["copy", "--src-tls-verify=false", &dest, &format!("oci:{}:1.0", out.display())])).await;
        let index: serde_json::Value = serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
        let md = index["manifests"][0]["digest"].as_str().unwrap().to_string();
        assert_eq!(md, sha256(&original));
        for entry in std::fs::read_dir(out.join("blobs/sha256")).unwrap() {
            let p = entry.unwrap().path();
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            assert_eq!(sha256(&std::fs::read(&p).unwrap()), format!("sha256:{name}"));
        }
        let tags = skopeo_async(sv(&["list-tags", "--tls-verify=false", &format!("docker://{host}/{repo}")])).await;
        let tags: serde_json::Value = serde_json::from_slice(&tags).unwrap();
        assert_eq!(tags["Tags"], serde_json::json!(["1.0"]));
    }
    srv.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_docker_archive_keeps_the_image_id_and_can_delete() {
    let dir = berth_testutil::short_tempdir("breg-sk");
    let srv = start_registry(&dir.path().join("root")).await;
    let dest = format!("docker://{}/fixture/base:1.0", srv.local_addr());
    skopeo_async(sv(&["copy", "--dest-tls-verify=false", &format!("docker-archive:{}", fixtures().join("base-docker-save.tar").display()), &dest])).await;
    // The config blob is Docker's image config: its digest is the image ID Docker reported.
    let config = skopeo_async(sv(&["inspect", "--config", "--raw", "--tls-verify=false", &dest])).await;
    assert_eq!(sha256(&config), "sha256:fd16d151ea2d88e4a128d4ba4f9e3b0b9be463fc8636bb8c4b2c6421fc97ca2f");
    let raw = skopeo_async(sv(&["inspect", "--raw", "--tls-verify=false", &dest])).await;
    let m: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    assert_eq!(m["mediaType"], "application/vnd.docker.distribution.manifest.v2+json");

    skopeo_async(sv(&["delete", "--tls-verify=false", &dest])).await;
    let st = Command::new("skopeo")
        .args(["--insecure-policy", "inspect", "--raw", "--tls-verify=false", &dest])
        .output()
        .unwrap();
    assert!(!st.status.success(), "manifest still there after delete");
    srv.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn skopeo_over_tls_with_htpasswd() {
    let dir = berth_testutil::short_tempdir("breg-sk");
    let (ca, cert, key) = tls_material(&["127.0.0.1"]);
    let certs = dir.path().join("certs");
    std::fs::create_dir_all(&certs).unwrap();
    std::fs::write(certs.join("ca.crt"), ca).unwrap();
    std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
    std::fs::write(dir.path().join("key.pem"), key).unwrap();
    std::fs::write(dir.path().join("htpasswd"), format!("bob:{}\n", bcrypt::hash("builder", 5).unwrap())).unwrap();
    let mut cfg = ServerConfig::new(loopback0(), &dir.path().join("root"));
    cfg.tls = Some(TlsFiles { cert: dir.path().join("cert.pem"), key: dir.path().join("key.pem") });
    cfg.htpasswd = Some(dir.path().join("htpasswd"));
    let srv = server::start(cfg).await.unwrap();
    let dest = format!("docker://{}/secure/base:1", srv.local_addr());
    let archive = format!("docker-archive:{}", fixtures().join("base-docker-save.tar").display());
    let cert_dir = certs.display().to_string();

    // Wrong password: refused.
    let a = sv(&["copy", "--dest-cert-dir", &cert_dir, "--dest-creds", "bob:wrong", &archive, &dest]);
    let bad = tokio::task::spawn_blocking(move || Command::new("skopeo").arg("--insecure-policy").args(&a).output().unwrap()).await.unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("401") || String::from_utf8_lossy(&bad.stderr).to_lowercase().contains("unauthorized"),
        "{}", String::from_utf8_lossy(&bad.stderr));

    // Verified TLS (the CA from the cert dir) and the right password.
    skopeo_async(sv(&["copy", "--dest-cert-dir", &cert_dir, "--dest-creds", "bob:builder", &archive, &dest])).await;
    let config = skopeo_async(sv(&["inspect", "--config", "--raw", "--cert-dir", &cert_dir, "--creds", "bob:builder", &dest])).await;
    assert_eq!(sha256(&config), "sha256:fd16d151ea2d88e4a128d4ba4f9e3b0b9be463fc8636bb8c4b2c6421fc97ca2f");
    srv.shutdown().await.unwrap();
}

