//! Credential helpers written through on login and logout, as the docker CLI does:
//! `credsStore` for every registry, `credHelpers` for one; the secret goes to
//! `docker-credential-<name> store` and config.json keeps only an empty entry.

mod common;

use std::sync::Arc;

use common::{Received, run_cli, serve_unix};

fn reply(status: &str, body: &str) -> Vec<u8> {
    format!("HTTP/1.1 {status}\r\nApi-Version: 1.51\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}", body.len()).into_bytes()
}

/// A helper that keeps what it is given in files of `dir`.
fn fake_helper(dir: &std::path::Path, name: &str) {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(format!("docker-credential-{name}"));
    std::fs::write(
        &p,
        format!(
            "#!/bin/sh\ncase \"$1\" in\n  store) cat > {d}/{name}.stored ;;\n  erase) cat > {d}/{name}.erased ;;\n  get) echo 'credentials not found in native keychain'; exit 1 ;;\n  *) exit 1 ;;\nesac\n",
            d = dir.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
}

#[test]
fn login_and_logout_go_through_the_credential_helpers() {
    let mock = serve_unix(Arc::new(|r: &Received| {
        Some(match (r.method.as_str(), r.uri.split('?').next().unwrap_or("")) {
            ("HEAD", _) => reply("200 OK", ""),
            ("POST", "/v1.51/auth") => reply("200 OK", "{\"Status\":\"Login Succeeded\"}"),
            _ => return None,
        })
    }));
    let bin = tempfile::tempdir().unwrap();
    fake_helper(bin.path(), "store");
    fake_helper(bin.path(), "special");
    let cfg = tempfile::tempdir().unwrap();
    std::fs::write(cfg.path().join("config.json"), r#"{"credsStore":"store","credHelpers":{"10.0.0.9:5000":"special"}}"#).unwrap();
    let path = format!("{}:/usr/bin:/bin", bin.path().display());
    let env = [("DOCKER_CONFIG", cfg.path().to_str().unwrap()), ("PATH", path.as_str())];

    let (code, out, err) = run_cli(&["-H", &mock.host, "login", "-u", "me", "-p", "s3cret", "127.0.0.1:5999"], &env);
    assert_eq!((code, out.as_str()), (0, "Login Succeeded\n"), "{err}");
    assert!(!err.contains("unencrypted"), "{err}");
    let stored: serde_json::Value = serde_json::from_slice(&std::fs::read(bin.path().join("store.stored")).unwrap()).unwrap();
    assert_eq!(stored, serde_json::json!({"ServerURL": "127.0.0.1:5999", "Username": "me", "Secret": "s3cret"}));
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(cfg.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(config["auths"]["127.0.0.1:5999"], serde_json::json!({}), "no secret in config.json");
    assert_eq!(config["credsStore"], "store");

    // credHelpers wins for its registry.
    let (code, _, err) = run_cli(&["-H", &mock.host, "login", "-u", "you", "-p", "pw2", "10.0.0.9:5000"], &env);
    assert_eq!(code, 0, "{err}");
    let stored: serde_json::Value = serde_json::from_slice(&std::fs::read(bin.path().join("special.stored")).unwrap()).unwrap();
    assert_eq!(stored["Username"], "you");

    let (code, out, err) = run_cli(&["logout", "127.0.0.1:5999"], &env);
    assert_eq!((code, out.as_str()), (0, "Removing login credentials for 127.0.0.1:5999\n"), "{err}");
    assert_eq!(std::fs::read_to_string(bin.path().join("store.erased")).unwrap(), "127.0.0.1:5999");
    let config: serde_json::Value = serde_json::from_slice(&std::fs::read(cfg.path().join("config.json")).unwrap()).unwrap();
    assert!(config["auths"].get("127.0.0.1:5999").is_none());

    // A helper that is not there: the login fails as docker's does, nothing stored.
    std::fs::write(cfg.path().join("config.json"), r#"{"credsStore":"nosuch"}"#).unwrap();
    let (code, _, err) = run_cli(&["-H", &mock.host, "login", "-u", "me", "-p", "x", "127.0.0.1:5999"], &env);
    assert_eq!(code, 1);
    assert!(err.contains("Error saving credentials") && err.contains("docker-credential-nosuch"), "{err}");
    assert_eq!(std::fs::read_to_string(cfg.path().join("config.json")).unwrap(), r#"{"credsStore":"nosuch"}"#);
}
