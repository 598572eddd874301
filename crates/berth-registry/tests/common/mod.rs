//! Helpers shared by berth-registry's integration tests.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use berth_registry::server::{self, RunningServer, ServerConfig};

/// The repository's fixtures directory (images made by real Docker and skopeo).
pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures")
}

pub fn loopback0() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

/// Starts berth's registry on a free loopback port with storage in `root`.
pub async fn start_registry(root: &Path) -> RunningServer {
    server::start(ServerConfig::new(loopback0(), root))
        .await
        .expect("start registry")
}

/// An HTTP client for poking at the API by hand.
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

pub fn sha256(data: &[u8]) -> String {
    berth_registry::Digest::sha256_of(data).to_string()
}

pub async fn json(r: reqwest::Response) -> serde_json::Value {
    let b = r.bytes().await.unwrap();
    serde_json::from_slice(&b).unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&b)))
}

/// A CA and a server certificate for `names`, all PEM: (ca, cert, key).
pub fn tls_material(names: &[&str]) -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
    let cert = params.signed_by(&key, &issuer).unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

pub mod distribution;
pub mod images;
pub mod proxy;

use std::sync::{Arc, Mutex};

use berth_registry::client::{ClientConfig, Progress, RegistryClient};

/// A client for tests: fast retries, no system certs.d.
pub fn client_config(certs_dir: &Path) -> ClientConfig {
    ClientConfig {
        certs_dir: certs_dir.to_path_buf(),
        retry_delay: std::time::Duration::from_millis(20),
        ..ClientConfig::default()
    }
}

pub fn client(certs_dir: &Path) -> RegistryClient {
    RegistryClient::new(client_config(certs_dir)).unwrap()
}

/// Collects progress events.
#[derive(Clone, Default)]
pub struct Events(pub Arc<Mutex<Vec<Progress>>>);

impl Events {
    pub fn sink(&self) -> impl Fn(Progress) + Send + Sync + 'static {
        let v = self.0.clone();
        move |p| v.lock().unwrap().push(p)
    }
    pub fn all(&self) -> Vec<Progress> {
        self.0.lock().unwrap().clone()
    }
    pub fn statuses(&self) -> Vec<String> {
        self.all()
            .iter()
            .flat_map(|p| p.to_json_messages())
            .map(|m| if m.id.is_empty() { m.status } else { format!("{}: {}", m.id, m.status) })
            .collect()
    }
}
