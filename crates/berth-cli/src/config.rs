//! The client's config directory (`--config`, `DOCKER_CONFIG`, `~/.docker`) and its
//! docker-compatible `config.json`: registry credentials, detach keys, default
//! formats for `ps` and `images`.

use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde_json::{Map, Value};

use crate::error::{Error, Result};
use crate::opts::parse::Env;

/// Docker Hub's key in `auths`.
pub const DOCKER_HUB: &str = "https://index.docker.io/v1/";

#[derive(Debug, Clone)]
pub struct ConfigFile {
    pub path: PathBuf,
    pub json: Map<String, Value>,
}

pub fn config_dir(flag: Option<&str>, env: &Env) -> PathBuf {
    if let Some(f) = flag {
        return PathBuf::from(f);
    }
    if let Some(d) = env.get("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return PathBuf::from(d);
    }
    let home = env.get("HOME").cloned().unwrap_or_else(|| "/root".into());
    Path::new(&home).join(".docker")
}

impl ConfigFile {
    /// Loads `dir/config.json`; a missing file is an empty config.
    pub fn load(dir: &Path) -> Result<ConfigFile> {
        let path = dir.join("config.json");
        let json = match std::fs::read(&path) {
            Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Map::new(),
            Ok(b) => match serde_json::from_slice::<Value>(&b) {
                Ok(Value::Object(m)) => m,
                _ => return Err(Error::msg(format!("loading config file {}: invalid JSON", path.display()))),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Map::new(),
            Err(e) => return Err(Error::msg(format!("loading config file {}: {e}", path.display()))),
        };
        Ok(ConfigFile { path, json })
    }

    pub fn string(&self, key: &str) -> Option<&str> {
        self.json.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
    }

    /// Credentials for a registry key, from `auths` or a credential helper.
    pub fn credentials(&self, server: &str) -> Option<berth_types::system::AuthConfig> {
        let text = serde_json::to_vec(&self.json).ok()?;
        match docker_credential::get_credential_from_reader(text.as_slice(), server) {
            Ok(docker_credential::DockerCredential::UsernamePassword(username, password)) => Some(berth_types::system::AuthConfig {
                username,
                password,
                server_address: server.to_string(),
                ..Default::default()
            }),
            Ok(docker_credential::DockerCredential::IdentityToken(token)) => Some(berth_types::system::AuthConfig {
                identity_token: token,
                server_address: server.to_string(),
                ..Default::default()
            }),
            Err(_) => None,
        }
    }

    pub fn set_auth(&mut self, server: &str, username: &str, password: &str, identity_token: &str) {
        let auths = self.json.entry("auths").or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        let mut entry = Map::new();
        if identity_token.is_empty() {
            let b = base64::engine::general_purpose::STANDARD.encode(format!("{username}:{password}"));
            entry.insert("auth".into(), Value::String(b));
        } else {
            let b = base64::engine::general_purpose::STANDARD.encode(format!("{username}:"));
            entry.insert("auth".into(), Value::String(b));
            entry.insert("identitytoken".into(), Value::String(identity_token.into()));
        }
        if let Some(m) = auths.as_object_mut() {
            m.insert(server.to_string(), Value::Object(entry));
        }
    }

    /// Removes a registry's credentials; false when there were none.
    pub fn remove_auth(&mut self, server: &str) -> bool {
        self.json
            .get_mut("auths")
            .and_then(Value::as_object_mut)
            .map(|m| m.remove(server).is_some())
            .unwrap_or(false)
    }

    /// The credential helper for a registry, as the docker CLI chooses it:
    /// `credHelpers[server]`, else `credsStore`.
    pub fn helper_for(&self, server: &str) -> Option<String> {
        self.json
            .get("credHelpers")
            .and_then(|h| h.get(server))
            .and_then(Value::as_str)
            .or_else(|| self.string("credsStore"))
            .filter(|h| !h.is_empty())
            .map(str::to_string)
    }

    /// Marks a registry as logged in without a secret (the helper holds it), as the
    /// docker CLI does: an empty entry in `auths`.
    pub fn set_auth_placeholder(&mut self, server: &str) {
        let auths = self.json.entry("auths").or_insert_with(|| Value::Object(Map::new()));
        if !auths.is_object() {
            *auths = Value::Object(Map::new());
        }
        if let Some(m) = auths.as_object_mut() {
            m.insert(server.to_string(), Value::Object(Map::new()));
        }
    }

    /// Writes the file atomically (temp file, fsync, rename), mode 0600.
    pub fn save(&self) -> Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| Error::msg(format!("creating {}: {e}", dir.display())))?;
        let tmp = dir.join(format!(".config.json.{}", std::process::id()));
        let text = serde_json::to_string_pretty(&self.json).map_err(|e| Error::msg(e.to_string()))?;
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
            f.write_all(text.as_bytes())?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            std::fs::File::open(dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::msg(format!("saving {}: {e}", self.path.display()))
        })
    }
}

/// `docker-credential-<name>` on `PATH` (the environment the command was given).
fn helper_path(name: &str, env: &Env) -> Result<PathBuf> {
    let bin = format!("docker-credential-{name}");
    let path = env.get("PATH").cloned().unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
    path.split(':')
        .filter(|d| !d.is_empty())
        .map(|d| Path::new(d).join(&bin))
        .find(|p| p.is_file())
        .ok_or_else(|| Error::msg(format!("exec: \"{bin}\": executable file not found in $PATH")))
}

/// Runs a credential helper's `action` (`store`, `erase`) with `input` on its stdin,
/// returning its output; failures carry its output as the docker CLI shows it.
fn run_helper(name: &str, action: &str, input: &[u8], env: &Env) -> Result<String> {
    use std::process::{Command, Stdio};
    let exe = helper_path(name, env)?;
    let mut child = Command::new(&exe)
        .arg(action)
        .env_clear()
        .envs(env.iter())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::msg(format!("{}: {e}", exe.display())))?;
    if let Some(mut i) = child.stdin.take() {
        let _ = i.write_all(input);
    }
    let out = child.wait_with_output().map_err(|e| Error::msg(e.to_string()))?;
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if !out.status.success() {
        let code = out.status.code().unwrap_or(1);
        return Err(Error::msg(format!("exit status {code}, out: `{text}`")));
    }
    Ok(text)
}

/// `docker-credential-<helper> store`: `{"ServerURL","Username","Secret"}`.
pub fn helper_store(helper: &str, server: &str, username: &str, secret: &str, env: &Env) -> Result<()> {
    let body = serde_json::json!({"ServerURL": server, "Username": username, "Secret": secret});
    run_helper(helper, "store", body.to_string().as_bytes(), env).map(|_| ()).map_err(|e| Error::msg(format!("Error saving credentials: error storing credentials - err: {e}")))
}

/// `docker-credential-<helper> erase` with the server on stdin.
pub fn helper_erase(helper: &str, server: &str, env: &Env) -> Result<()> {
    run_helper(helper, "erase", server.as_bytes(), env).map(|_| ())
}

/// The registry an image reference lives on, as the key docker uses in `auths`.
pub fn registry_key(image: &str) -> String {
    match image.split_once('/') {
        Some((first, _)) if first.contains('.') || first.contains(':') || first == "localhost" => {
            if first == "docker.io" || first == "index.docker.io" { DOCKER_HUB.to_string() } else { first.to_string() }
        }
        _ => DOCKER_HUB.to_string(),
    }
}

/// `X-Registry-Auth`: URL-safe base64 of the JSON auth config (`{}` when anonymous).
pub fn registry_auth_header(auth: Option<&berth_types::system::AuthConfig>) -> String {
    let json = match auth {
        Some(a) => serde_json::to_string(a).unwrap_or_else(|_| "{}".into()),
        None => "{}".into(),
    };
    base64::engine::general_purpose::URL_SAFE.encode(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_keys() {
        assert_eq!(registry_key("busybox"), DOCKER_HUB);
        assert_eq!(registry_key("library/busybox:1"), DOCKER_HUB);
        assert_eq!(registry_key("127.0.0.1:5000/trace/bb:1"), "127.0.0.1:5000");
        assert_eq!(registry_key("localhost/x"), "localhost");
        assert_eq!(registry_key("docker.io/library/busybox"), DOCKER_HUB);
        assert_eq!(registry_auth_header(None), "e30=");
    }

    #[test]
    fn auth_round_trip_and_atomic_save() {
        let dir = tempfile::tempdir().unwrap();
        let mut c = ConfigFile::load(dir.path()).unwrap();
        assert!(c.credentials("127.0.0.1:5000").is_none());
        c.set_auth("127.0.0.1:5000", "me", "secret", "");
        c.save().unwrap();
        let c2 = ConfigFile::load(dir.path()).unwrap();
        let a = c2.credentials("127.0.0.1:5000").unwrap();
        assert_eq!((a.username.as_str(), a.password.as_str()), ("me", "secret"));
        let mode = std::fs::metadata(dir.path().join("config.json")).unwrap().permissions();
        assert_eq!(std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777, 0o600);
        let mut c3 = c2.clone();
        assert!(c3.remove_auth("127.0.0.1:5000"));
        assert!(!c3.remove_auth("127.0.0.1:5000"));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temp files left behind");
    }
}
