//! Bearer-token auth on `berth registry serve` (distribution's `auth: token`): a token
//! server on loopback signs ES256 JWTs with a key whose certificate is the registry's
//! root bundle; requests without a token, with too little scope, expired, from another
//! issuer, for another service or signed by another key are refused with the Bearer
//! challenge; berth's own client goes through the whole flow (challenge, token, retry).

mod common;

use std::sync::Arc;

use base64::Engine as _;
use berth_registry::client::AuthConfig;
use berth_registry::server::token::TokenConfig;
use berth_registry::server::{self, ServerConfig};
use common::*;
use reqwest::StatusCode;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde_json::{Value, json};

struct Signer {
    key: EcdsaKeyPair,
    cert_pem: String,
}

fn signer() -> Signer {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let kp = rcgen::KeyPair::try_from(pkcs8.as_ref()).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["token-signer".to_string()]).unwrap().self_signed(&kp).unwrap();
    Signer { key, cert_pem: cert.pem() }
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

fn jwt(s: &Signer, claims: Value) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let head = b64.encode(json!({"alg": "ES256", "typ": "JWT"}).to_string());
    let body = b64.encode(claims.to_string());
    let signed = format!("{head}.{body}");
    let sig = s.key.sign(&ring::rand::SystemRandom::new(), signed.as_bytes()).unwrap();
    format!("{signed}.{}", b64.encode(sig.as_ref()))
}

fn claims(scope: &[(&str, &[&str])]) -> Value {
    let access: Vec<Value> = scope.iter().map(|(n, a)| json!({"type": "repository", "name": n, "actions": a})).collect();
    json!({"iss": "test-issuer", "aud": "berth-test", "exp": now() + 300, "nbf": now() - 10, "iat": now(), "access": access})
}

/// A token server granting whatever scope is asked for (docker_auth without ACLs).
async fn token_server(s: Arc<Signer>) -> String {
    let app = axum::Router::new().route(
        "/token",
        axum::routing::get(move |q: axum::extract::Query<std::collections::HashMap<String, String>>| {
            let s = s.clone();
            async move {
                let mut access = Vec::new();
                if let Some(scope) = q.get("scope") {
                    for one in scope.split(' ') {
                        let parts: Vec<&str> = one.split(':').collect();
                        if parts.len() == 3 {
                            access.push(json!({"type": parts[0], "name": parts[1], "actions": parts[2].split(',').collect::<Vec<_>>()}));
                        }
                    }
                }
                let t = jwt(&s, json!({"iss": "test-issuer", "aud": q.get("service").cloned().unwrap_or_default(), "exp": now() + 300, "access": access}));
                axum::Json(json!({"token": t, "expires_in": 300}))
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    format!("http://{addr}/token")
}

#[tokio::test]
async fn bearer_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let s = Arc::new(signer());
    let bundle = dir.path().join("bundle.pem");
    std::fs::write(&bundle, &s.cert_pem).unwrap();
    let realm = token_server(s.clone()).await;
    let mut cfg = ServerConfig::new(loopback0(), &dir.path().join("root"));
    cfg.token = Some(TokenConfig { realm: realm.clone(), service: "berth-test".into(), issuer: "test-issuer".into(), root_cert_bundle: bundle });
    let srv = server::start(cfg).await.unwrap();
    let (c, base) = (http(), srv.url());

    // No token: the challenge.
    let r = c.get(format!("{base}/v2/")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["www-authenticate"], format!("Bearer realm=\"{realm}\",service=\"berth-test\"").as_str());
    let r = c.get(format!("{base}/v2/app/tags/list")).send().await.unwrap();
    assert_eq!(r.headers()["www-authenticate"], format!("Bearer realm=\"{realm}\",service=\"berth-test\",scope=\"repository:app:pull\"").as_str());

    // A pull-only token: reads pass, a push is refused with insufficient_scope.
    let pull = jwt(&s, claims(&[("app", &["pull"])]));
    let r = c.get(format!("{base}/v2/")).bearer_auth(&pull).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = c.get(format!("{base}/v2/app/manifests/1")).bearer_auth(&pull).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND, "authorised, and there is nothing");
    let r = c.post(format!("{base}/v2/app/blobs/uploads/")).bearer_auth(&pull).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let ch = r.headers()["www-authenticate"].to_str().unwrap().to_string();
    assert!(ch.contains("scope=\"repository:app:pull,push\"") && ch.contains("error=\"insufficient_scope\""), "{ch}");
    // Another repository is out of its scope.
    let r = c.get(format!("{base}/v2/other/tags/list")).bearer_auth(&pull).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Bad tokens.
    let mut expired = claims(&[("app", &["pull"])]);
    expired["exp"] = json!(now() - 600);
    let mut wrong_iss = claims(&[("app", &["pull"])]);
    wrong_iss["iss"] = json!("someone-else");
    let mut wrong_aud = claims(&[("app", &["pull"])]);
    wrong_aud["aud"] = json!("other-registry");
    let other = signer();
    let tampered = {
        let t = jwt(&s, claims(&[("app", &["pull"])]));
        let mut parts: Vec<String> = t.split('.').map(str::to_string).collect();
        parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims(&[("app", &["pull", "push"])]).to_string());
        parts.join(".")
    };
    for (what, t) in [
        ("expired", jwt(&s, expired)),
        ("issuer", jwt(&s, wrong_iss)),
        ("audience", jwt(&s, wrong_aud)),
        ("untrusted key", jwt(&other, claims(&[("app", &["pull"])]))),
        ("tampered", tampered),
        ("garbage", "a.b.c".to_string()),
    ] {
        let r = c.get(format!("{base}/v2/app/tags/list")).bearer_auth(&t).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{what}");
    }

    // A push with a pull,push token, then berth's client reads it back through the
    // whole flow (401, token from the realm, retry).
    let push = jwt(&s, claims(&[("app", &["pull", "push"])]));
    let d = sha256(b"{}");
    let r = c.post(format!("{base}/v2/app/blobs/uploads/?digest={d}")).bearer_auth(&push).body("{}").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let m = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": d, "size": 2}, "layers": []})
    .to_string();
    let r = c.put(format!("{base}/v2/app/manifests/1")).bearer_auth(&push).header("content-type", "application/vnd.oci.image.manifest.v1+json").body(m.clone()).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::CREATED);
    let client = client(dir.path());
    let reference = berth_registry::Reference::parse(&format!("{}/app:1", srv.local_addr())).unwrap();
    let fetched = client.fetch_manifest(&reference, &AuthConfig::default()).await.unwrap();
    assert_eq!(fetched.bytes, m.as_bytes());
    let tags = client.list_tags(&berth_registry::Reference::parse(&format!("{}/app", srv.local_addr())).unwrap(), &AuthConfig::default()).await.unwrap();
    assert_eq!(tags, ["1"]);
    // Delete needs the delete action.
    let r = c.delete(format!("{base}/v2/app/manifests/1")).bearer_auth(&push).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let del = jwt(&s, claims(&[("app", &["delete"])]));
    let r = c.delete(format!("{base}/v2/app/manifests/1")).bearer_auth(&del).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);

    // htpasswd and tokens together are refused.
    let pw = dir.path().join("htpasswd");
    std::fs::write(&pw, "alice:$2y$05$abcdefghijklmnopqrstuu5Vx5Xo0Vq8Zq9mQ6b8m9QG9QG9QG9QG\n").unwrap();
    let mut cfg = ServerConfig::new(loopback0(), &dir.path().join("root2"));
    cfg.htpasswd = Some(pw);
    cfg.token = Some(TokenConfig { realm, service: "berth-test".into(), issuer: "test-issuer".into(), root_cert_bundle: dir.path().join("bundle.pem") });
    assert!(server::start(cfg).await.is_err());
}
