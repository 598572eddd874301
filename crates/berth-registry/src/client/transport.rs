//! How to reach a registry: which URLs to try (https, then http for insecure
//! registries), with which TLS settings (system CAs plus docker's `certs.d/<host>/`),
//! and the ping that picks the first URL that answers like a registry.

use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::auth::{Challenge, parse_challenges};
use super::error::RegistryError;

/// A registry base URL that answered a ping, with the HTTP client set up for it.
#[derive(Debug)]
pub struct Endpoint {
    /// The registry as named in references (`docker.io`, `127.0.0.1:5000`), or a
    /// mirror's host.
    pub registry: String,
    /// `scheme://host[:port]`, no trailing slash.
    pub base: reqwest::Url,
    pub http: reqwest::Client,
    /// What `/v2/` challenged with (None: no auth asked).
    pub challenge: Mutex<Option<Challenge>>,
}

impl Endpoint {
    pub fn url(&self, path: &str) -> Result<reqwest::Url, RegistryError> {
        self.base.join(path).map_err(|e| RegistryError::Protocol {
            registry: self.registry.clone(),
            message: format!("bad URL path {path:?}: {e}"),
        })
    }

    pub fn challenge(&self) -> Option<Challenge> {
        self.challenge.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set_challenge(&self, c: Option<Challenge>) {
        *self.challenge.lock().unwrap_or_else(|p| p.into_inner()) = c;
    }
}

/// One way of reaching a registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub base: String,
    /// Accept any server certificate (insecure registries).
    pub skip_verify: bool,
}

/// The host part of `host[:port]` (brackets of IPv6 literals removed).
pub fn hostname(host_port: &str) -> &str {
    if let Some(rest) = host_port.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host_port.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host_port,
    }
}

/// Whether `registry` may be spoken to without verified TLS: loopback addresses (as
/// Docker, unless disabled) and the configured `insecure-registries` (a host, a
/// host:port, or a CIDR that an IP-literal registry falls into).
pub fn is_insecure(registry: &str, insecure_loopback: bool, insecure: &[String]) -> bool {
    let host = hostname(registry);
    let ip: Option<IpAddr> = host.parse().ok();
    if insecure_loopback && (host == "localhost" || ip.is_some_and(|i| i.is_loopback())) {
        return true;
    }
    insecure.iter().any(|entry| {
        let e = entry
            .trim()
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .trim_end_matches('/');
        if e == registry || e == host {
            return true;
        }
        match (e.split_once('/'), ip) {
            (Some((net, bits)), Some(ip)) => match (net.parse::<IpAddr>(), bits.parse::<u8>()) {
                (Ok(net), Ok(bits)) => in_cidr(ip, net, bits),
                _ => false,
            },
            _ => false,
        }
    })
}

fn in_cidr(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(n)) if bits <= 32 => {
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            u32::from(a) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(n)) if bits <= 128 => {
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            u128::from(a) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// The URLs to try for a registry, in order.
pub fn candidates(registry: &str, hub_url: &str, insecure: bool) -> Vec<Candidate> {
    if registry == crate::reference::DOCKER_HUB {
        return vec![Candidate {
            base: hub_url.trim_end_matches('/').to_string(),
            skip_verify: false,
        }];
    }
    let mut v = vec![Candidate {
        base: format!("https://{registry}"),
        skip_verify: insecure,
    }];
    if insecure {
        v.push(Candidate {
            base: format!("http://{registry}"),
            skip_verify: true,
        });
    }
    v
}

/// CA certificates and a client certificate for one registry, from docker's
/// `certs.d/<host[:port]>/`: `*.crt` are CAs, `*.cert` + `*.key` a client pair.
#[derive(Debug, Default)]
pub struct HostCerts {
    pub roots: Vec<CertificateDer<'static>>,
    pub client: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
}

pub fn load_host_certs(certs_dir: &Path, registry: &str) -> Result<HostCerts, RegistryError> {
    let dir = certs_dir.join(registry);
    let mut out = HostCerts::default();
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => {
            return Err(tls_err(registry, format!("cannot read {}: {e}", dir.display())));
        }
    };
    let mut names: Vec<std::path::PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    names.sort();
    for p in &names {
        let ext = p.extension().and_then(|e| e.to_str()).unwrap_or("");
        match ext {
            "crt" => {
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(p)
                    .and_then(|it| it.collect::<Result<_, _>>())
                    .map_err(|e| tls_err(registry, format!("CA file {}: {e}", p.display())))?;
                out.roots.extend(certs);
            }
            "cert" => {
                let key = p.with_extension("key");
                if !key.exists() {
                    return Err(tls_err(
                        registry,
                        format!("missing key {} for client certificate {}", key.display(), p.display()),
                    ));
                }
                let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(p)
                    .and_then(|it| it.collect::<Result<_, _>>())
                    .map_err(|e| tls_err(registry, format!("client certificate {}: {e}", p.display())))?;
                let k = PrivateKeyDer::from_pem_file(&key)
                    .map_err(|e| tls_err(registry, format!("client key {}: {e}", key.display())))?;
                out.client = Some((certs, k));
            }
            "key" if !p.with_extension("cert").exists() => {
                return Err(tls_err(
                    registry,
                    format!("missing client certificate for key {}", p.display()),
                ));
            }
            _ => {}
        }
    }
    Ok(out)
}

fn tls_err(registry: &str, message: String) -> RegistryError {
    RegistryError::Tls {
        registry: registry.to_string(),
        message,
    }
}

/// The system's CA certificates (loaded once per process).
pub fn system_roots() -> Arc<RootCertStore> {
    static ROOTS: std::sync::OnceLock<Arc<RootCertStore>> = std::sync::OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let mut store = RootCertStore::empty();
            let loaded = rustls_native_certs::load_native_certs();
            for e in &loaded.errors {
                tracing::warn!("loading system CA certificates: {e}");
            }
            let (added, ignored) = store.add_parsable_certificates(loaded.certs);
            tracing::debug!(added, ignored, "system CA certificates");
            Arc::new(store)
        })
        .clone()
}

/// Builds the HTTP client for one registry.
pub fn build_http(
    registry: &str,
    certs: &HostCerts,
    skip_verify: bool,
    user_agent: &str,
    connect_timeout: Duration,
) -> Result<reqwest::Client, RegistryError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(registry, e.to_string()))?;
    let builder = if skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider)))
    } else {
        let mut roots = (*system_roots()).clone();
        for c in &certs.roots {
            roots
                .add(c.clone())
                .map_err(|e| tls_err(registry, format!("bad CA certificate: {e}")))?;
        }
        builder.with_root_certificates(roots)
    };
    let mut tls = match &certs.client {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain.clone(), key.clone_key())
            .map_err(|e| tls_err(registry, format!("client certificate: {e}")))?,
        None => builder.with_no_client_auth(),
    };
    // HTTP/1.1 only: several connections download layers side by side, which is what
    // a pull wants; h2 would multiplex them over one TCP stream.
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .user_agent(user_agent)
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .build()
        .map_err(|e| tls_err(registry, format!("HTTP client: {e}")))
}

/// Verifies nothing about the certificate (insecure registries), but still checks the
/// handshake signatures so the connection is at least encrypted to whoever answered.
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// An error with its causes (reqwest hides the interesting part, e.g. the TLS reason).
pub fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let m = c.to_string();
        if !s.contains(&m) {
            s.push_str(": ");
            s.push_str(&m);
        }
        cur = c.source();
    }
    s
}

/// Pings `/v2/` at one candidate. A 200 or a 401 means "a registry is here"; the 401's
/// challenge is what later requests must answer.
pub async fn ping(
    registry: &str,
    cand: &Candidate,
    http: reqwest::Client,
    timeout: Duration,
) -> Result<Endpoint, RegistryError> {
    let base = reqwest::Url::parse(&format!("{}/", cand.base)).map_err(|e| RegistryError::Protocol {
        registry: registry.to_string(),
        message: format!("bad registry URL {}: {e}", cand.base),
    })?;
    let url = base.join("v2/").map_err(|e| RegistryError::Protocol {
        registry: registry.to_string(),
        message: e.to_string(),
    })?;
    let resp = http
        .get(url.clone())
        .timeout(timeout)
        .send()
        .await
        .map_err(|e| RegistryError::Connect {
            registry: registry.to_string(),
            message: format!("{url}: {}", error_chain(&e)),
        })?;
    let status = resp.status();
    let challenge = match status.as_u16() {
        200..=299 => None,
        401 => {
            let values: Vec<String> = resp
                .headers()
                .get_all(reqwest::header::WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok().map(str::to_string))
                .collect();
            let all = parse_challenges(values.iter().map(String::as_str));
            // Prefer Bearer: it is what registries that offer both expect.
            all.iter()
                .find(|c| matches!(c, Challenge::Bearer { .. }))
                .or_else(|| all.first())
                .cloned()
        }
        _ => {
            return Err(RegistryError::Status {
                registry: registry.to_string(),
                what: format!("ping {url}"),
                status: status.as_u16(),
                message: "not a registry v2 endpoint".to_string(),
            });
        }
    };
    Ok(Endpoint {
        registry: registry.to_string(),
        base,
        http,
        challenge: Mutex::new(challenge),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insecure_rules() {
        assert!(is_insecure("127.0.0.1:5000", true, &[]));
        assert!(is_insecure("127.8.9.1", true, &[]));
        assert!(is_insecure("localhost:5000", true, &[]));
        assert!(is_insecure("[::1]:5000", true, &[]));
        assert!(!is_insecure("127.0.0.1:5000", false, &[]));
        assert!(!is_insecure("registry.example:5000", true, &[]));
        let list = vec!["registry.example:5000".to_string(), "10.0.0.0/8".to_string(), "plain.host".to_string()];
        assert!(is_insecure("registry.example:5000", true, &list));
        assert!(!is_insecure("registry.example:6000", true, &list));
        assert!(is_insecure("10.1.2.3:5000", true, &list));
        assert!(!is_insecure("11.1.2.3:5000", true, &list));
        assert!(is_insecure("plain.host:443", true, &list));
    }

    #[test]
    fn candidate_order() {
        let c = candidates("127.0.0.1:5000", "https://hub", true);
        assert_eq!(c[0].base, "https://127.0.0.1:5000");
        assert_eq!(c[1].base, "http://127.0.0.1:5000");
        let c = candidates("reg.example", "https://hub", false);
        assert_eq!(c, vec![Candidate { base: "https://reg.example".into(), skip_verify: false }]);
        let c = candidates("docker.io", "https://registry-1.docker.io", false);
        assert_eq!(c[0].base, "https://registry-1.docker.io");
    }

    #[test]
    fn certs_d_needs_pairs() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load_host_certs(dir.path(), "h:1").unwrap().roots.is_empty());
        std::fs::create_dir(dir.path().join("h:1")).unwrap();
        std::fs::write(dir.path().join("h:1/client.cert"), "x").unwrap();
        let e = load_host_certs(dir.path(), "h:1").unwrap_err();
        assert!(e.to_string().contains("missing key"), "{e}");
    }
}
