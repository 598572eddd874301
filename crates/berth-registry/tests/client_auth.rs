//! Authentication end to end: Basic against htpasswd registries (Debian's
//! docker-registry and berth's), the Bearer token flow through a test token endpoint in
//! front of a registry, docker config.json credentials, login, TLS with certs.d, the
//! insecure-registries list and mirrors.

mod common;

use std::sync::Arc;

use berth_registry::Reference;
use berth_registry::client::{AuthConfig, DockerConfig, ErrorKind, PullOptions, PushOptions, RegistryClient};
use berth_registry::server::{self, ServerConfig, TlsFiles};
use berth_registry::store::{ContentStore, DirStore};
use common::distribution::{DistAuth, DistributionRegistry};
use common::images::*;
use common::*;

fn store(dir: &std::path::Path, name: &str) -> Arc<dyn ContentStore> {
    Arc::new(DirStore::open(&dir.join(name)).unwrap())
}

fn test_image(dir: &std::path::Path) -> (Arc<dyn ContentStore>, berth_registry::manifest::Descriptor) {
    let s = DirStore::open(&dir.join("src")).unwrap();
    let m = synthetic_image(&s, &[20_000, 30_000], 11, ("linux", "amd64"));
    (Arc::new(s), m)
}

fn with_auth(a: &AuthConfig) -> (PullOptions, PushOptions) {
    (PullOptions { auth: a.clone(), ..Default::default() }, PushOptions { auth: a.clone() })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bearer_token_flow_with_scopes() {
    let dir = berth_testutil::short_tempdir("breg-a");
    let srv = start_registry(&dir.path().join("root")).await;
    let proxy = proxy::Proxy::start(&srv.url()).await;
    proxy.require_bearer("tokuser", "tokpass");
    let (src, m) = test_image(dir.path());
    let certs = tempfile::tempdir().unwrap();
    let c = client(certs.path());
    let target = Reference::parse(&format!("{}/bearer/app:1", proxy.host())).unwrap();

    // Anonymous: the token endpoint refuses, and the error says so.
    let err = c.push(&target, &m, src.clone(), &PushOptions::default(), &Events::default().sink()).await.unwrap_err();
    assert_eq!(err.to_string(), "unauthorized: authentication required");
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
    let bad = AuthConfig::basic("tokuser", "wrong");
    let err = c.push(&target, &m, src.clone(), &PushOptions { auth: bad }, &Events::default().sink()).await.unwrap_err();
    assert_eq!(err.to_string(), "unauthorized: incorrect username or password");

    let good = AuthConfig::basic("tokuser", "tokpass");
    let (pull_opts, push_opts) = with_auth(&good);
    c.push(&target, &m, src.clone(), &push_opts, &Events::default().sink()).await.unwrap();
    assert!(proxy.asked_scopes().iter().any(|s| s == &vec!["repository:bearer/app:pull,push".to_string()]), "{:?}", proxy.asked_scopes());

    let dst = store(dir.path(), "dst");
    c.pull(&target, &pull_opts, dst.clone(), &Events::default().sink()).await.unwrap();
    let after_first_pull = proxy.token_requests();
    // The token is cached: a second pull asks for none.
    c.pull(&target, &pull_opts, dst.clone(), &Events::default().sink()).await.unwrap();
    assert_eq!(proxy.token_requests(), after_first_pull);

    // A push to another repository asks for pull on the source too, and mounts.
    let other = Reference::parse(&format!("{}/bearer/copy:1", proxy.host())).unwrap();
    let ev = Events::default();
    c.push(&other, &m, src.clone(), &push_opts, &ev.sink()).await.unwrap();
    let scopes = proxy.asked_scopes();
    let last = scopes.last().unwrap();
    assert!(last.contains(&"repository:bearer/copy:pull,push".to_string()) && last.contains(&"repository:bearer/app:pull".to_string()), "{last:?}");
    assert_eq!(ev.statuses().iter().filter(|s| s.ends_with("Mounted from bearer/app")).count(), 2, "{:?}", ev.statuses());

    // login checks credentials against the token endpoint.
    c.login(&proxy.host(), &good).await.unwrap();
    let err = c.login(&proxy.host(), &AuthConfig::basic("tokuser", "nope")).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unauthorized);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_auth_against_htpasswd_registries_and_config_json() {
    let dir = berth_testutil::short_tempdir("breg-a");
    let htpasswd = dir.path().join("htpasswd");
    std::fs::write(&htpasswd, format!("carol:{}\n", bcrypt::hash("secret", 5).unwrap())).unwrap();
    let dist = DistributionRegistry::start(DistAuth::Htpasswd(&htpasswd));
    let mut cfg = ServerConfig::new(loopback0(), &dir.path().join("root"));
    cfg.htpasswd = Some(htpasswd.clone());
    let berth = server::start(cfg).await.unwrap();
    let (src, m) = test_image(dir.path());
    let certs = tempfile::tempdir().unwrap();
    let c = client(certs.path());

    for host in [dist.addr.clone(), berth.local_addr().to_string()] {
        let target = Reference::parse(&format!("{host}/basic/app:1")).unwrap();
        let err = c.push(&target, &m, src.clone(), &PushOptions::default(), &Events::default().sink()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unauthorized, "{host}: {err}");
        assert_eq!(err.to_string(), "unauthorized: authentication required", "{host}");

        // `berth login` writes config.json; pulls read credentials from it.
        let err = c.login(&host, &AuthConfig::basic("carol", "wrong")).await.unwrap_err();
        assert_eq!(err.to_string(), "unauthorized: incorrect username or password");
        c.login(&host, &AuthConfig::basic("carol", "secret")).await.unwrap();
        let conf = DockerConfig::at(&dir.path().join("docker/config.json"));
        conf.store(&host, &AuthConfig::basic("carol", "secret")).unwrap();
        let auth = conf.get(&host).unwrap();
        let (pull_opts, push_opts) = with_auth(&auth);
        c.push(&target, &m, src.clone(), &push_opts, &Events::default().sink()).await.unwrap();
        let dst = store(dir.path(), &format!("dst-{}", host.replace(':', "_")));
        let img = c.pull(&target, &pull_opts, dst, &Events::default().sink()).await.unwrap();
        assert_eq!(img.digest, m.digest);
        let tags = c.list_tags(&target, &auth).await.unwrap();
        assert_eq!(tags, vec!["1"]);
    }
    berth.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_verified_with_certs_d_and_refused_without() {
    let dir = berth_testutil::short_tempdir("breg-a");
    let (ca, cert, key) = tls_material(&["127.0.0.1"]);
    std::fs::write(dir.path().join("cert.pem"), cert).unwrap();
    std::fs::write(dir.path().join("key.pem"), key).unwrap();
    let mut cfg = ServerConfig::new(loopback0(), &dir.path().join("root"));
    cfg.tls = Some(TlsFiles { cert: dir.path().join("cert.pem"), key: dir.path().join("key.pem") });
    let srv = server::start(cfg).await.unwrap();
    let host = srv.local_addr().to_string();
    let (src, m) = test_image(dir.path());
    let target = Reference::parse(&format!("{host}/tls/app:1")).unwrap();

    // Loopback is not trusted blindly here: the certificate must verify.
    let certs_d = dir.path().join("certs.d");
    std::fs::create_dir_all(&certs_d).unwrap();
    let mut conf = client_config(&certs_d);
    conf.insecure_loopback = false;
    let c = RegistryClient::new(conf.clone()).unwrap();
    let err = c.push(&target, &m, src.clone(), &PushOptions::default(), &Events::default().sink()).await.unwrap_err();
    assert!(err.to_string().to_lowercase().contains("certificate"), "{err}");

    std::fs::create_dir_all(certs_d.join(&host)).unwrap();
    std::fs::write(certs_d.join(&host).join("ca.crt"), ca).unwrap();
    let c = RegistryClient::new(conf).unwrap();
    c.push(&target, &m, src.clone(), &PushOptions::default(), &Events::default().sink()).await.unwrap();
    let img = c.pull(&target, &PullOptions::default(), store(dir.path(), "dst"), &Events::default().sink()).await.unwrap();
    assert_eq!(img.digest, m.digest);
    assert_eq!(c.ping(&host).await.unwrap(), format!("https://{host}/"));

    // Insecure (loopback default): any certificate is accepted, still over TLS.
    let c = client(&dir.path().join("empty"));
    assert_eq!(c.ping(&host).await.unwrap(), format!("https://{host}/"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insecure_registries_setting_allows_plain_http() {
    let dir = berth_testutil::short_tempdir("breg-a");
    let srv = start_registry(&dir.path().join("root")).await;
    let host = srv.local_addr().to_string();
    let certs = tempfile::tempdir().unwrap();
    let mut conf = client_config(certs.path());
    conf.insecure_loopback = false;
    let c = RegistryClient::new(conf.clone()).unwrap();
    let err = c.ping(&host).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
    for entry in [host.clone(), "127.0.0.0/8".to_string()] {
        conf.insecure_registries = vec![entry];
        let c = RegistryClient::new(conf.clone()).unwrap();
        assert_eq!(c.ping(&host).await.unwrap(), format!("http://{host}/"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docker_hub_pulls_go_through_mirrors_first() {
    let dir = berth_testutil::short_tempdir("breg-a");
    // "Docker Hub" and a mirror, both on loopback.
    let hub = DistributionRegistry::start(DistAuth::None);
    let mirror = start_registry(&dir.path().join("mirror")).await;
    let mirror_proxy = proxy::Proxy::start(&mirror.url()).await;
    let certs = tempfile::tempdir().unwrap();
    let plain = client(certs.path());
    let s = DirStore::open(&dir.path().join("src")).unwrap();
    let only_mirror = synthetic_image(&s, &[1000], 21, ("linux", "amd64"));
    let only_hub = synthetic_image(&s, &[2000], 22, ("linux", "amd64"));
    let src: Arc<dyn ContentStore> = Arc::new(s);
    let put = |host: String, tag: &str| Reference::parse(&format!("{host}/library/busybox:{tag}")).unwrap();
    plain.push(&put(mirror_proxy.host(), "1"), &only_mirror, src.clone(), &PushOptions::default(), &Events::default().sink()).await.unwrap();
    plain.push(&put(hub.addr.clone(), "2"), &only_hub, src.clone(), &PushOptions::default(), &Events::default().sink()).await.unwrap();

    let mut conf = client_config(certs.path());
    conf.docker_hub_url = format!("http://{}", hub.addr);
    conf.registry_mirrors = vec![format!("http://{}", mirror_proxy.host())];
    let c = RegistryClient::new(conf).unwrap();
    let dst = store(dir.path(), "dst");
    let ev = Events::default();
    let img = c.pull(&Reference::parse("busybox:1").unwrap(), &PullOptions::default(), dst.clone(), &ev.sink()).await.unwrap();
    assert_eq!(img.digest, only_mirror.digest);
    assert_eq!(ev.statuses().last().unwrap(), "Status: Downloaded newer image for busybox:1");
    let mirror_hits = mirror_proxy.requests().len();
    // Not on the mirror: asked there first, then fetched from the hub.
    let img = c.pull(&Reference::parse("busybox:2").unwrap(), &PullOptions::default(), dst.clone(), &Events::default().sink()).await.unwrap();
    assert_eq!(img.digest, only_hub.digest);
    assert!(mirror_proxy.requests().len() > mirror_hits);
    let err = c.pull(&Reference::parse("busybox:3").unwrap(), &PullOptions::default(), dst, &Events::default().sink()).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::NotFound, "{err}");
}

