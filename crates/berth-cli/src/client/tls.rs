//! TLS to a TCP daemon: `--tls` (encrypt, trust any server), `--tlsverify` (check the
//! server against `--tlscacert`, or the system roots), client certificates from
//! `--tlscert`/`--tlskey` (default `DOCKER_CERT_PATH` or `~/.docker`). rustls with
//! the ring provider, chosen per config rather than process-wide.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsOptions {
    pub verify: bool,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("could not read CA certificate {path:?}: {source}")]
    Ca { path: PathBuf, source: std::io::Error },
    #[error("could not read TLS certificate {path:?}: {source}")]
    Cert { path: PathBuf, source: std::io::Error },
    #[error("could not read TLS key {path:?}: {source}")]
    Key { path: PathBuf, source: std::io::Error },
    #[error("no private key found in {0:?}")]
    NoKey(PathBuf),
    #[error("no certificate found in {0:?}")]
    NoCert(PathBuf),
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, std::io::Error> {
    let data = std::fs::read(path)?;
    rustls_pemfile::certs(&mut data.as_slice()).collect()
}

pub fn client_config(opts: &TlsOptions) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let builder = if opts.verify {
        let mut roots = RootCertStore::empty();
        match &opts.ca {
            Some(ca) => {
                let certs = read_certs(ca).map_err(|source| TlsError::Ca { path: ca.clone(), source })?;
                if certs.is_empty() {
                    return Err(TlsError::NoCert(ca.clone()));
                }
                for c in certs {
                    roots.add(c)?;
                }
            }
            None => {
                for c in rustls_native_certs::load_native_certs().certs {
                    let _ = roots.add(c);
                }
            }
        }
        builder.with_root_certificates(roots)
    } else {
        // docker's `--tls` without `--tlsverify`: encrypted, server identity unchecked.
        builder.dangerous().with_custom_certificate_verifier(Arc::new(AcceptAnyServer(provider())))
    };
    let config = match (&opts.cert, &opts.key) {
        (Some(cert), Some(key)) => {
            let chain = read_certs(cert).map_err(|source| TlsError::Cert { path: cert.clone(), source })?;
            if chain.is_empty() {
                return Err(TlsError::NoCert(cert.clone()));
            }
            let data = std::fs::read(key).map_err(|source| TlsError::Key { path: key.clone(), source })?;
            let key_der: PrivateKeyDer<'static> = rustls_pemfile::private_key(&mut data.as_slice())
                .map_err(|source| TlsError::Key { path: key.clone(), source })?
                .ok_or_else(|| TlsError::NoKey(key.clone()))?;
            builder.with_client_auth_cert(chain, key_der)?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Arc::new(config))
}

/// Accepts any server certificate but still checks the handshake signatures, so the
/// session is encrypted to whoever holds the presented key.
#[derive(Debug)]
struct AcceptAnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AcceptAnyServer {
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
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
