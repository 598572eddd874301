//! Registry credentials: Docker's `AuthConfig` (also what the `X-Registry-Auth` header
//! carries) and the docker `config.json` file, read the way docker reads it (`auths`,
//! `credsStore`, `credHelpers` with `docker-credential-*` helpers) and written the way
//! `docker login` / `docker logout` write it.
//!
//! Not the `docker_credential` crate: it reads only from the environment's default path
//! and cannot write, and login/logout need both a chosen path and writing.

use std::collections::BTreeMap;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::fsutil::atomic_write;
use crate::reference::DOCKER_HUB;

/// The key Docker files Docker Hub credentials under.
pub const DOCKER_HUB_KEY: &str = "https://index.docker.io/v1/";

#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("cannot parse {path}: {message}")]
    Parse { path: String, message: String },
    #[error("cannot write {path}: {source}")]
    Write { path: String, source: std::io::Error },
    #[error("credential helper docker-credential-{helper}: {message}")]
    Helper { helper: String, message: String },
    #[error("invalid X-Registry-Auth header: {0}")]
    Header(String),
    #[error("invalid auth entry for {0}: not base64 of user:password")]
    AuthField(String),
}

/// Credentials for one registry, in Docker's `AuthConfig` shape.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthConfig {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub username: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password: String,
    /// base64(`username:password`), as stored in config.json.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub auth: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub email: String,
    #[serde(default, rename = "serveraddress", skip_serializing_if = "String::is_empty")]
    pub server_address: String,
    /// An OAuth refresh token from a previous login.
    #[serde(default, rename = "identitytoken", skip_serializing_if = "String::is_empty")]
    pub identity_token: String,
    /// A bearer token to send as is.
    #[serde(default, rename = "registrytoken", skip_serializing_if = "String::is_empty")]
    pub registry_token: String,
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |s: &str| if s.is_empty() { "" } else { "<set>" };
        f.debug_struct("AuthConfig")
            .field("username", &self.username)
            .field("password", &set(&self.password))
            .field("auth", &set(&self.auth))
            .field("server_address", &self.server_address)
            .field("identity_token", &set(&self.identity_token))
            .field("registry_token", &set(&self.registry_token))
            .finish()
    }
}

impl AuthConfig {
    pub fn basic(username: &str, password: &str) -> AuthConfig {
        AuthConfig {
            username: username.to_string(),
            password: password.to_string(),
            ..Default::default()
        }
    }

    /// No credentials at all (anonymous).
    pub fn is_empty(&self) -> bool {
        self.username.is_empty()
            && self.password.is_empty()
            && self.auth.is_empty()
            && self.identity_token.is_empty()
            && self.registry_token.is_empty()
    }

    /// Decodes an `X-Registry-Auth` header: base64url (or standard base64) of the JSON.
    pub fn from_x_registry_auth(header: &str) -> Result<AuthConfig, CredentialError> {
        let h = header.trim();
        if h.is_empty() {
            return Ok(AuthConfig::default());
        }
        use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
        let raw = URL_SAFE
            .decode(h)
            .or_else(|_| URL_SAFE_NO_PAD.decode(h))
            .or_else(|_| STANDARD.decode(h))
            .map_err(|e| CredentialError::Header(e.to_string()))?;
        let a: AuthConfig =
            serde_json::from_slice(&raw).map_err(|e| CredentialError::Header(e.to_string()))?;
        a.with_decoded_auth()
    }

    /// Encodes for an `X-Registry-Auth` header.
    pub fn to_x_registry_auth(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_else(|_| b"{}".to_vec());
        base64::engine::general_purpose::URL_SAFE.encode(json)
    }

    /// Fills username/password from the `auth` field when only that is set.
    pub fn with_decoded_auth(mut self) -> Result<AuthConfig, CredentialError> {
        if !self.auth.is_empty() && self.username.is_empty() {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(self.auth.trim())
                .map_err(|_| CredentialError::AuthField(self.server_address.clone()))?;
            let s = String::from_utf8(raw).map_err(|_| CredentialError::AuthField(self.server_address.clone()))?;
            let (u, p) = s
                .split_once(':')
                .ok_or_else(|| CredentialError::AuthField(self.server_address.clone()))?;
            self.username = u.to_string();
            self.password = p.trim_end_matches('\0').to_string();
        }
        Ok(self)
    }
}

/// The config.json key for a registry: Docker Hub's historical URL, else the host.
pub fn config_key(registry: &str) -> String {
    if is_docker_hub(registry) {
        DOCKER_HUB_KEY.to_string()
    } else {
        registry.to_string()
    }
}

fn is_docker_hub(host: &str) -> bool {
    matches!(host, DOCKER_HUB | "index.docker.io" | "registry-1.docker.io")
}

/// Docker's `ConvertToHostname`: `https://host:5000/v1/` → `host:5000`.
fn key_hostname(key: &str) -> &str {
    let k = key
        .strip_prefix("http://")
        .or_else(|| key.strip_prefix("https://"))
        .unwrap_or(key);
    k.split('/').next().unwrap_or(k)
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct ConfigFile {
    #[serde(default)]
    auths: BTreeMap<String, AuthConfig>,
    #[serde(default, rename = "credsStore")]
    creds_store: Option<String>,
    #[serde(default, rename = "credHelpers")]
    cred_helpers: BTreeMap<String, String>,
}

/// A docker `config.json` (possibly not existing yet).
#[derive(Debug, Clone)]
pub struct DockerConfig {
    path: PathBuf,
    helper_dir: Option<PathBuf>,
}

impl DockerConfig {
    /// `$DOCKER_CONFIG/config.json`, else `$HOME/.docker/config.json`.
    pub fn default_path() -> PathBuf {
        if let Some(d) = std::env::var_os("DOCKER_CONFIG") {
            return PathBuf::from(d).join("config.json");
        }
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
        home.join(".docker/config.json")
    }

    pub fn at(path: &Path) -> DockerConfig {
        DockerConfig {
            path: path.to_path_buf(),
            helper_dir: None,
        }
    }

    /// Looks for `docker-credential-*` helpers in `dir` instead of `$PATH`.
    pub fn with_helper_dir(mut self, dir: &Path) -> DockerConfig {
        self.helper_dir = Some(dir.to_path_buf());
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn load(&self) -> Result<ConfigFile, CredentialError> {
        match std::fs::read(&self.path) {
            Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Ok(ConfigFile::default()),
            Ok(b) => serde_json::from_slice(&b).map_err(|e| CredentialError::Parse {
                path: self.path.display().to_string(),
                message: e.to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(ConfigFile::default()),
            Err(source) => Err(CredentialError::Read {
                path: self.path.display().to_string(),
                source,
            }),
        }
    }

    fn helper_for(&self, cfg: &ConfigFile, registry: &str) -> Option<String> {
        let host = if is_docker_hub(registry) { "index.docker.io" } else { registry };
        cfg.cred_helpers
            .get(registry)
            .or_else(|| cfg.cred_helpers.get(host))
            .or(cfg.creds_store.as_ref())
            .filter(|h| !h.is_empty())
            .cloned()
    }

    /// The credentials for `registry` (empty when there are none), as docker finds them:
    /// a helper named for the registry in `credHelpers`, else `credsStore`, else `auths`.
    pub fn get(&self, registry: &str) -> Result<AuthConfig, CredentialError> {
        let cfg = self.load()?;
        let key = config_key(registry);
        if let Some(helper) = self.helper_for(&cfg, registry)
            && let Some(a) = self.helper_get(&helper, &key)?
        {
            return Ok(a);
        }
        let wanted = if is_docker_hub(registry) { "index.docker.io" } else { registry };
        let entry = cfg.auths.get(&key).or_else(|| {
            cfg.auths
                .iter()
                .find(|(k, _)| {
                    let h = key_hostname(k);
                    h == wanted || (is_docker_hub(wanted) && is_docker_hub(h))
                })
                .map(|(_, v)| v)
        });
        match entry {
            Some(a) => {
                let mut a = a.clone();
                a.server_address = key;
                a.with_decoded_auth()
            }
            None => Ok(AuthConfig::default()),
        }
    }

    /// Saves credentials for `registry` (`docker login`): through the configured helper if
    /// there is one, else as base64 `auth` in `auths`. Other content of the file is kept.
    pub fn store(&self, registry: &str, auth: &AuthConfig) -> Result<(), CredentialError> {
        let cfg = self.load()?;
        let key = config_key(registry);
        let mut doc = self.load_value()?;
        let entry = if let Some(helper) = self.helper_for(&cfg, registry) {
            let (user, secret) = if auth.identity_token.is_empty() {
                (auth.username.clone(), auth.password.clone())
            } else {
                ("<token>".to_string(), auth.identity_token.clone())
            };
            let input = serde_json::json!({ "ServerURL": key, "Username": user, "Secret": secret });
            self.run_helper(&helper, "store", input.to_string().as_bytes())?;
            serde_json::json!({})
        } else {
            let mut e = serde_json::Map::new();
            let userpass = format!("{}:{}", auth.username, auth.password);
            e.insert("auth".into(), base64::engine::general_purpose::STANDARD.encode(userpass).into());
            if !auth.identity_token.is_empty() {
                e.insert("identitytoken".into(), auth.identity_token.clone().into());
            }
            serde_json::Value::Object(e)
        };
        let auths = doc
            .as_object_mut()
            .ok_or_else(|| self.parse_error("top level is not an object"))?
            .entry("auths")
            .or_insert_with(|| serde_json::json!({}));
        let auths = auths
            .as_object_mut()
            .ok_or_else(|| self.parse_error("\"auths\" is not an object"))?;
        auths.insert(key, entry);
        self.save_value(&doc)
    }

    /// Forgets credentials for `registry` (`docker logout`). Returns whether any existed.
    pub fn erase(&self, registry: &str) -> Result<bool, CredentialError> {
        let cfg = self.load()?;
        let key = config_key(registry);
        let mut found = false;
        if let Some(helper) = self.helper_for(&cfg, registry) {
            found |= self.run_helper(&helper, "erase", key.as_bytes()).is_ok();
        }
        let mut doc = self.load_value()?;
        if let Some(auths) = doc.get_mut("auths").and_then(|a| a.as_object_mut()) {
            let keys: Vec<String> = auths
                .keys()
                .filter(|k| **k == key || key_hostname(k) == key_hostname(&key))
                .cloned()
                .collect();
            for k in keys {
                auths.remove(&k);
                found = true;
            }
        }
        if found {
            self.save_value(&doc)?;
        }
        Ok(found)
    }

    fn parse_error(&self, message: &str) -> CredentialError {
        CredentialError::Parse {
            path: self.path.display().to_string(),
            message: message.to_string(),
        }
    }

    fn load_value(&self) -> Result<serde_json::Value, CredentialError> {
        match std::fs::read(&self.path) {
            Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Ok(serde_json::json!({})),
            Ok(b) => serde_json::from_slice(&b).map_err(|e| self.parse_error(&e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(serde_json::json!({})),
            Err(source) => Err(CredentialError::Read {
                path: self.path.display().to_string(),
                source,
            }),
        }
    }

    fn save_value(&self, doc: &serde_json::Value) -> Result<(), CredentialError> {
        use std::os::unix::fs::PermissionsExt;
        let werr = |source| CredentialError::Write {
            path: self.path.display().to_string(),
            source,
        };
        if let Some(dir) = self.path.parent()
            && !dir.exists()
        {
            std::fs::create_dir_all(dir).map_err(werr)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(werr)?;
        }
        let mut text = serde_json::to_vec_pretty(doc).map_err(|e| self.parse_error(&e.to_string()))?;
        text.push(b'\n');
        atomic_write(&self.path, &text).map_err(werr)?;
        // Credentials: owner only, as docker does.
        std::fs::set_permissions(&self.path, std::fs::Permissions::from_mode(0o600)).map_err(werr)
    }

    fn helper_get(&self, helper: &str, key: &str) -> Result<Option<AuthConfig>, CredentialError> {
        #[derive(Deserialize)]
        struct Out {
            #[serde(rename = "Username", default)]
            username: String,
            #[serde(rename = "Secret", default)]
            secret: String,
        }
        let out = match self.run_helper(helper, "get", key.as_bytes()) {
            Ok(o) => o,
            Err(CredentialError::Helper { message, .. })
                if message.contains("credentials not found") =>
            {
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        let o: Out = serde_json::from_slice(&out).map_err(|e| CredentialError::Helper {
            helper: helper.to_string(),
            message: format!("unreadable answer: {e}"),
        })?;
        let mut a = AuthConfig {
            server_address: key.to_string(),
            ..Default::default()
        };
        if o.username == "<token>" {
            a.identity_token = o.secret;
        } else {
            a.username = o.username;
            a.password = o.secret;
        }
        Ok(Some(a))
    }

    /// Runs `docker-credential-<helper> <action>` with `input` on stdin; returns stdout.
    fn run_helper(&self, helper: &str, action: &str, input: &[u8]) -> Result<Vec<u8>, CredentialError> {
        let name = format!("docker-credential-{helper}");
        let program = match &self.helper_dir {
            Some(d) => d.join(&name),
            None => PathBuf::from(&name),
        };
        let herr = |message: String| CredentialError::Helper {
            helper: helper.to_string(),
            message,
        };
        let mut child = Command::new(&program)
            .arg(action)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| herr(format!("cannot run {}: {e}", program.display())))?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(input).map_err(|e| herr(e.to_string()))?;
        }
        let out = child.wait_with_output().map_err(|e| herr(e.to_string()))?;
        if out.status.success() {
            Ok(out.stdout)
        } else {
            let mut msg = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if msg.is_empty() {
                msg = String::from_utf8_lossy(&out.stderr).trim().to_string();
            }
            Err(herr(format!("{action} failed ({}): {msg}", out.status)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn x_registry_auth_round_trip() {
        assert!(AuthConfig::from_x_registry_auth("e30=").unwrap().is_empty());
        assert!(AuthConfig::from_x_registry_auth("").unwrap().is_empty());
        let a = AuthConfig::basic("u", "p?>");
        let h = a.to_x_registry_auth();
        assert_eq!(AuthConfig::from_x_registry_auth(&h).unwrap(), a);
        // Docker clients may send only "auth".
        let raw = base64::engine::general_purpose::URL_SAFE
            .encode(br#"{"auth":"dTpw","serveraddress":"r"}"#);
        let a = AuthConfig::from_x_registry_auth(&raw).unwrap();
        assert_eq!((a.username.as_str(), a.password.as_str()), ("u", "p"));
        assert!(AuthConfig::from_x_registry_auth("!!!").is_err());
    }

    #[test]
    fn login_logout_in_auths() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/config.json");
        let cfg = DockerConfig::at(&path);
        assert!(cfg.get("127.0.0.1:5000").unwrap().is_empty());
        cfg.store("127.0.0.1:5000", &AuthConfig::basic("alice", "pw")).unwrap();
        cfg.store("docker.io", &AuthConfig::basic("bob", "hub")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("\"https://index.docker.io/v1/\""), "{text}");
        assert!(text.contains("YWxpY2U6cHc="), "{text}"); // base64("alice:pw")
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        let a = cfg.get("127.0.0.1:5000").unwrap();
        assert_eq!((a.username.as_str(), a.password.as_str()), ("alice", "pw"));
        assert_eq!(cfg.get("docker.io").unwrap().username, "bob");
        assert!(cfg.erase("127.0.0.1:5000").unwrap());
        assert!(!cfg.erase("127.0.0.1:5000").unwrap());
        assert!(cfg.get("127.0.0.1:5000").unwrap().is_empty());
        assert_eq!(cfg.get("docker.io").unwrap().username, "bob");
    }

    #[test]
    fn keeps_other_settings_and_matches_url_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths":{"https://reg.example:5000/v2/":{"auth":"eDp5"}},"psFormat":"table {{.ID}}"}"#,
        )
        .unwrap();
        let cfg = DockerConfig::at(&path);
        assert_eq!(cfg.get("reg.example:5000").unwrap().username, "x");
        cfg.store("other:1", &AuthConfig::basic("a", "b")).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        assert_eq!(v["psFormat"], "table {{.ID}}");
        assert!(v["auths"]["https://reg.example:5000/v2/"].is_object());
        std::fs::write(&path, "{not json").unwrap();
        assert!(matches!(cfg.get("x"), Err(CredentialError::Parse { .. })));
    }

    #[test]
    fn credential_helpers() {
        let dir = tempfile::tempdir().unwrap();
        let store_dir = dir.path().join("secrets");
        std::fs::create_dir(&store_dir).unwrap();
        // A file-backed helper speaking the docker-credential protocol.
        let helper = dir.path().join("docker-credential-test");
        std::fs::write(
            &helper,
            format!(
                r#"#!/bin/sh
d={store}
case "$1" in
  get) read -r url; f="$d/$(echo "$url" | tr '/:' '__')"
       if [ -f "$f" ]; then cat "$f"; else echo "credentials not found in native keychain"; exit 1; fi ;;
  store) json=$(cat); url=$(echo "$json" | sed 's/.*"ServerURL":"\([^"]*\)".*/\1/')
       echo "$json" > "$d/$(echo "$url" | tr '/:' '__')" ;;
  erase) read -r url; rm "$d/$(echo "$url" | tr '/:' '__')" ;;
esac
"#,
                store = store_dir.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.path().join("config.json");
        std::fs::write(&path, r#"{"credHelpers":{"reg:1":"test"}}"#).unwrap();
        let cfg = DockerConfig::at(&path).with_helper_dir(dir.path());
        assert!(cfg.get("reg:1").unwrap().is_empty());
        cfg.store("reg:1", &AuthConfig::basic("carol", "s3")).unwrap();
        let a = cfg.get("reg:1").unwrap();
        assert_eq!((a.username.as_str(), a.password.as_str()), ("carol", "s3"));
        // The secret went to the helper, not into config.json.
        assert!(!std::fs::read_to_string(&path).unwrap().contains("s3"));
        // Registries without a helper still use auths.
        cfg.store("plain:2", &AuthConfig::basic("dave", "pw")).unwrap();
        assert_eq!(cfg.get("plain:2").unwrap().username, "dave");
        assert!(cfg.erase("reg:1").unwrap());
        assert!(cfg.get("reg:1").unwrap().is_empty());

        std::fs::write(&path, r#"{"credsStore":"missing"}"#).unwrap();
        let err = DockerConfig::at(&path).with_helper_dir(dir.path()).get("x").unwrap_err();
        assert!(err.to_string().contains("docker-credential-missing"), "{err}");
    }
}
