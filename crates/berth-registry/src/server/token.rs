//! Bearer-token auth, as distribution's `auth: token` (docker_auth, Harbor and
//! GitLab issue such tokens): a request needs a JWT signed by a key whose certificate
//! is in the root certificate bundle, issued by `issuer` for `service`, in its
//! validity window, granting the repository actions the request needs. Otherwise a
//! 401 whose `WWW-Authenticate: Bearer realm=...,service=...,scope=...` tells the client
//! where to get one.

use std::path::PathBuf;

use base64::Engine as _;
use rustls::pki_types::CertificateDer;
use serde::Deserialize;

/// `--token-realm`, `--token-service`, `--token-issuer`, `--token-rootcertbundle`.
#[derive(Debug, Clone)]
pub struct TokenConfig {
    /// Where clients get tokens (the token server's URL).
    pub realm: String,
    /// This registry's name in tokens (`aud`).
    pub service: String,
    /// Who signs them (`iss`).
    pub issuer: String,
    /// PEM certificates of the keys tokens may be signed with.
    pub root_cert_bundle: PathBuf,
}

pub(crate) struct TokenAuth {
    cfg: TokenConfig,
    certs: Vec<CertificateDer<'static>>,
}

/// What a request needs: `repository:<name>:<actions>`, `registry:catalog:*`, or
/// nothing but a valid token (`GET /v2/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Scope {
    pub kind: String,
    pub name: String,
    pub actions: Vec<String>,
}

impl Scope {
    pub fn repository(name: &str, actions: &[&str]) -> Scope {
        Scope { kind: "repository".into(), name: name.into(), actions: actions.iter().map(|a| a.to_string()).collect() }
    }

    fn header(&self) -> String {
        format!("{}:{}:{}", self.kind, self.name, self.actions.join(","))
    }
}

#[derive(Debug, Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    x5c: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Debug, Deserialize)]
struct Access {
    #[serde(rename = "type")]
    kind: String,
    name: String,
    #[serde(default)]
    actions: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Claims {
    #[serde(default)]
    iss: String,
    aud: Option<Audience>,
    exp: Option<i64>,
    nbf: Option<i64>,
    #[serde(default)]
    access: Vec<Access>,
}

/// Clock skew allowed on `exp`/`nbf`, as distribution allows.
const LEEWAY: i64 = 60;

impl TokenAuth {
    pub fn load(cfg: TokenConfig) -> Result<TokenAuth, String> {
        let pem = std::fs::read(&cfg.root_cert_bundle).map_err(|e| format!("token root certificate bundle {}: {e}", cfg.root_cert_bundle.display()))?;
        let certs: Vec<CertificateDer<'static>> = rustls_pemfile::certs(&mut &pem[..])
            .collect::<Result<_, _>>()
            .map_err(|e| format!("token root certificate bundle {}: {e}", cfg.root_cert_bundle.display()))?;
        if certs.is_empty() {
            return Err(format!("token root certificate bundle {}: no certificate in it", cfg.root_cert_bundle.display()));
        }
        Ok(TokenAuth { cfg, certs })
    }

    /// The challenge for a request that lacks (or has not enough of) a token.
    pub fn challenge(&self, scope: Option<&Scope>, insufficient: bool) -> String {
        let mut c = format!("Bearer realm=\"{}\",service=\"{}\"", self.cfg.realm, self.cfg.service);
        if let Some(s) = scope {
            c.push_str(&format!(",scope=\"{}\"", s.header()));
        }
        if insufficient {
            c.push_str(",error=\"insufficient_scope\"");
        }
        c
    }

    /// Checks `Authorization` for `scope`: Ok, or Err(insufficient scope?).
    pub fn check(&self, authorization: Option<&str>, scope: Option<&Scope>) -> Result<(), bool> {
        let token = authorization.and_then(|a| a.strip_prefix("Bearer ")).map(str::trim).ok_or(false)?;
        let claims = self.verify(token).map_err(|e| {
            tracing::debug!("bearer token refused: {e}");
            false
        })?;
        let Some(want) = scope else { return Ok(()) };
        let granted = claims.access.iter().filter(|a| a.kind == want.kind && a.name == want.name).flat_map(|a| a.actions.iter()).collect::<Vec<_>>();
        if want.actions.iter().all(|w| granted.iter().any(|g| *g == w || *g == "*")) { Ok(()) } else { Err(true) }
    }

    fn verify(&self, token: &str) -> Result<Claims, String> {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
            return Err("not a JWS compact token".into());
        };
        let header: Header = serde_json::from_slice(&b64.decode(h).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
        let sig = b64.decode(s).map_err(|e| e.to_string())?;
        let signed = &token.as_bytes()[..h.len() + 1 + p.len()];
        let (alg, sig): (&dyn rustls::pki_types::SignatureVerificationAlgorithm, Vec<u8>) = match header.alg.as_str() {
            "RS256" => (webpki::ring::RSA_PKCS1_2048_8192_SHA256, sig),
            "RS384" => (webpki::ring::RSA_PKCS1_2048_8192_SHA384, sig),
            "RS512" => (webpki::ring::RSA_PKCS1_2048_8192_SHA512, sig),
            "ES256" => (webpki::ring::ECDSA_P256_SHA256, raw_to_der(&sig, 32)?),
            "ES384" => (webpki::ring::ECDSA_P384_SHA384, raw_to_der(&sig, 48)?),
            "EdDSA" => (webpki::ring::ED25519, sig),
            other => return Err(format!("unsupported token algorithm {other}")),
        };
        // The signing certificate: one of the bundle's, named by x5c or tried in turn.
        let named: Option<Vec<u8>> = header.x5c.first().map(|c| base64::engine::general_purpose::STANDARD.decode(c)).transpose().map_err(|e| e.to_string())?;
        let candidates: Vec<&CertificateDer<'static>> = match &named {
            Some(der) => self.certs.iter().filter(|c| c.as_ref() == der.as_slice()).collect(),
            None => self.certs.iter().collect(),
        };
        let verified = candidates.iter().any(|c| {
            webpki::EndEntityCert::try_from(*c).is_ok_and(|ee| ee.verify_signature(alg, signed, &sig).is_ok())
        });
        if !verified {
            return Err("token not signed by a trusted key".into());
        }
        let claims: Claims = serde_json::from_slice(&b64.decode(p).map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
        if claims.iss != self.cfg.issuer {
            return Err(format!("token issuer {:?} is not {:?}", claims.iss, self.cfg.issuer));
        }
        let aud_ok = match &claims.aud {
            Some(Audience::One(a)) => *a == self.cfg.service,
            Some(Audience::Many(v)) => v.iter().any(|a| *a == self.cfg.service),
            None => false,
        };
        if !aud_ok {
            return Err("token audience is not this service".into());
        }
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0);
        if claims.exp.is_none_or(|e| now > e + LEEWAY) {
            return Err("token expired".into());
        }
        if claims.nbf.is_some_and(|n| now + LEEWAY < n) {
            return Err("token not valid yet".into());
        }
        Ok(claims)
    }
}

/// A JWS ECDSA signature (r || s, `n` bytes each) as the DER the verifier takes.
fn raw_to_der(sig: &[u8], n: usize) -> Result<Vec<u8>, String> {
    if sig.len() != 2 * n {
        return Err("bad ECDSA signature length".into());
    }
    let int = |b: &[u8]| {
        let mut v: Vec<u8> = b.iter().copied().skip_while(|x| *x == 0).collect();
        if v.is_empty() || v[0] & 0x80 != 0 {
            v.insert(0, 0);
        }
        let mut out = vec![0x02, v.len() as u8];
        out.extend(v);
        out
    };
    let (r, s) = (int(&sig[..n]), int(&sig[n..]));
    let mut out = vec![0x30];
    let len = r.len() + s.len();
    if len >= 0x80 {
        out.push(0x81);
    }
    out.push(len as u8);
    out.extend(r);
    out.extend(s);
    Ok(out)
}
