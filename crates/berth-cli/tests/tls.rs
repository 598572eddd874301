//! TCP with TLS: `--tlsverify` checks the daemon against our CA and presents a client
//! certificate (the daemon requires one); `--tls` alone encrypts without checking;
//! DOCKER_CERT_PATH and DOCKER_TLS_VERIFY do the same as the flags.

mod common;

use std::path::Path;
use std::sync::Arc;

use common::{Received, run_cli, serve_tls};
use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

struct Pki {
    dir: tempfile::TempDir,
    server: Arc<rustls::ServerConfig>,
}

fn make_pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, &ca_key);

    let server_key = KeyPair::generate().unwrap();
    let server_cert = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .unwrap()
        .signed_by(&server_key, &issuer)
        .unwrap();
    let client_key = KeyPair::generate().unwrap();
    let client_cert = CertificateParams::new(vec!["client".to_string()]).unwrap().signed_by(&client_key, &issuer).unwrap();

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("ca.pem"), ca_cert.pem()).unwrap();
    std::fs::write(dir.path().join("cert.pem"), client_cert.pem()).unwrap();
    std::fs::write(dir.path().join("key.pem"), client_key.serialize_pem()).unwrap();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(ca_cert.der().clone()).unwrap();
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone()).build().unwrap();
    let server = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_client_cert_verifier(verifier)
        .with_single_cert(
            vec![CertificateDer::from(server_cert.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der())),
        )
        .unwrap();
    Pki { dir, server: Arc::new(server) }
}

fn daemon(pki: &Pki) -> common::Mock {
    serve_tls(
        Arc::new(|r: &Received| {
            let body = match r.uri.as_str() {
                "/v1.51/version" => "{\"Version\":\"tls-ok\",\"ApiVersion\":\"1.51\"}",
                _ => "",
            };
            Some(format!("HTTP/1.1 200 OK\r\nApi-Version: 1.51\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).into_bytes())
        }),
        pki.server.clone(),
    )
}

fn p(dir: &Path, f: &str) -> String {
    dir.join(f).display().to_string()
}

#[test]
fn tlsverify_with_client_certificate() {
    let pki = make_pki();
    let mock = daemon(&pki);
    let d = pki.dir.path();
    let (code, out, err) = run_cli(
        &["-H", &mock.host, "--tlsverify", "--tlscacert", &p(d, "ca.pem"), "--tlscert", &p(d, "cert.pem"), "--tlskey", &p(d, "key.pem"), "version", "--format", "{{.Server.Version}}"],
        &[],
    );
    assert_eq!((code, out.as_str()), (0, "tls-ok\n"), "{err}");
    assert_eq!(mock.request_lines(), vec!["HEAD /_ping", "GET /v1.51/version"]);
}

#[test]
fn environment_selects_tls_and_cert_path() {
    let pki = make_pki();
    let mock = daemon(&pki);
    let d = pki.dir.path().display().to_string();
    let (code, out, err) = run_cli(
        &["version", "--format", "{{.Server.Version}}"],
        &[("DOCKER_HOST", &mock.host), ("DOCKER_TLS_VERIFY", "1"), ("DOCKER_CERT_PATH", &d)],
    );
    assert_eq!((code, out.as_str()), (0, "tls-ok\n"), "{err}");
}

#[test]
fn tls_without_verify_still_needs_the_client_cert_but_not_the_ca() {
    let pki = make_pki();
    let mock = daemon(&pki);
    let d = pki.dir.path();
    let (code, out, err) = run_cli(
        &["-H", &mock.host, "--tls", "--tlscert", &p(d, "cert.pem"), "--tlskey", &p(d, "key.pem"), "version", "--format", "{{.Server.Version}}"],
        &[],
    );
    assert_eq!((code, out.as_str()), (0, "tls-ok\n"), "{err}");
}

#[test]
fn a_wrong_ca_or_no_client_cert_fails_clearly() {
    let pki = make_pki();
    let other = make_pki();
    let mock = daemon(&pki);
    let d = pki.dir.path();
    let (code, _, err) = run_cli(
        &["-H", &mock.host, "--tlsverify", "--tlscacert", &p(other.dir.path(), "ca.pem"), "--tlscert", &p(d, "cert.pem"), "--tlskey", &p(d, "key.pem"), "ps"],
        &[],
    );
    assert_eq!(code, 1);
    assert!(err.contains("TLS handshake"), "{err}");
    // Plain TCP to a TLS daemon, and TLS without a client certificate, fail too.
    let (code, _, _) = run_cli(&["-H", &mock.host, "ps"], &[]);
    assert_eq!(code, 1);
    let (code, _, err) = run_cli(&["-H", &mock.host, "--tlsverify", "--tlscacert", &p(d, "ca.pem"), "--config", "/nonexistent", "ps"], &[("DOCKER_CERT_PATH", "/nonexistent")]);
    assert_eq!(code, 1, "{err}");
    let (code, _, err) = run_cli(&["-H", &mock.host, "--tlsverify", "--tlscacert", "/nonexistent/ca.pem", "ps"], &[]);
    assert_eq!(code, 1);
    assert!(err.contains("could not read CA certificate"), "{err}");
}
