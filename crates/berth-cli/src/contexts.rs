//! The docker CLI's context store, in its format, so that `berth context` and
//! `docker context` share contexts: `<config dir>/contexts/meta/<sha256(name)>/meta.json`
//! (`{"Name":..,"Metadata":{"Description":..},"Endpoints":{"docker":{"Host":..,
//! "SkipTLSVerify":..}}}`), TLS files in `contexts/tls/<sha256(name)>/docker/`
//! (`ca.pem`, `cert.pem`, `key.pem`), and `currentContext` in config.json. The
//! `default` context is not stored: it is `DOCKER_HOST` or the default socket.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::Digest;

use crate::error::{Error, Result};

pub const DEFAULT: &str = "default";

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Meta {
    pub name: String,
    #[serde(default)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    pub endpoints: std::collections::BTreeMap<String, Endpoint>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Endpoint {
    #[serde(default)]
    pub host: String,
    #[serde(default, rename = "SkipTLSVerify")]
    pub skip_tls_verify: bool,
}

/// A context as the commands use it.
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    pub name: String,
    pub description: String,
    pub host: String,
    pub skip_tls_verify: bool,
    /// `ca.pem`, `cert.pem`, `key.pem` present in its TLS directory.
    pub tls_files: Vec<String>,
    /// Stored (false for `default`).
    pub stored: bool,
}

pub struct Store {
    root: PathBuf,
}

/// Docker's rule for context names.
pub fn valid_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(Error::msg("context name cannot be empty"));
    }
    if name == DEFAULT {
        return Err(Error::msg(format!("\"{DEFAULT}\" is a reserved context name")));
    }
    let mut chars = name.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    if !first_ok || name.len() < 2 || !chars.all(|c| c.is_ascii_alphanumeric() || "_.+-".contains(c)) {
        return Err(Error::msg(format!("context name {name:?} is invalid, names are validated against regexp \"^[a-zA-Z0-9][a-zA-Z0-9_.+-]+$\"")));
    }
    Ok(())
}

fn digest(name: &str) -> String {
    hex::encode(sha2::Sha256::digest(name.as_bytes()))
}

impl Store {
    pub fn new(config_dir: &Path) -> Store {
        Store { root: config_dir.join("contexts") }
    }

    pub fn meta_dir(&self, name: &str) -> PathBuf {
        self.root.join("meta").join(digest(name))
    }

    pub fn tls_dir(&self, name: &str) -> PathBuf {
        self.root.join("tls").join(digest(name))
    }

    /// The stored context `name`, or None.
    pub fn get(&self, name: &str) -> Result<Option<Context>> {
        let p = self.meta_dir(name).join("meta.json");
        let data = match std::fs::read(&p) {
            Ok(d) => d,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::msg(format!("reading {}: {e}", p.display()))),
        };
        let m: Meta = serde_json::from_slice(&data).map_err(|e| Error::msg(format!("{}: {e}", p.display())))?;
        Ok(Some(self.context_of(m)))
    }

    fn context_of(&self, m: Meta) -> Context {
        let ep = m.endpoints.get("docker").cloned().unwrap_or_default();
        let tls = self.tls_dir(&m.name).join("docker");
        let tls_files = ["ca.pem", "cert.pem", "key.pem"].iter().filter(|f| tls.join(f).exists()).map(|f| f.to_string()).collect();
        Context {
            description: m.metadata.get("Description").and_then(|v| v.as_str()).unwrap_or_default().to_string(),
            name: m.name,
            host: ep.host,
            skip_tls_verify: ep.skip_tls_verify,
            tls_files,
            stored: true,
        }
    }

    /// Every stored context, by name.
    pub fn list(&self) -> Result<Vec<Context>> {
        let mut out = Vec::new();
        let Ok(rd) = std::fs::read_dir(self.root.join("meta")) else { return Ok(out) };
        for e in rd.flatten() {
            let p = e.path().join("meta.json");
            if let Ok(data) = std::fs::read(&p)
                && let Ok(m) = serde_json::from_slice::<Meta>(&data)
            {
                out.push(self.context_of(m));
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Writes a context (its TLS files copied in from `tls`: (file name, source path)).
    pub fn save(&self, c: &Context, tls: &[(&str, PathBuf)]) -> Result<()> {
        let mut metadata = serde_json::Map::new();
        if !c.description.is_empty() {
            metadata.insert("Description".into(), c.description.clone().into());
        }
        let m = Meta {
            name: c.name.clone(),
            metadata,
            endpoints: [("docker".to_string(), Endpoint { host: c.host.clone(), skip_tls_verify: c.skip_tls_verify })].into_iter().collect(),
        };
        let dir = self.meta_dir(&c.name);
        std::fs::create_dir_all(&dir).map_err(|e| Error::msg(format!("creating {}: {e}", dir.display())))?;
        let tmp = dir.join(".meta.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(&m).unwrap_or_default()).map_err(|e| Error::msg(format!("writing {}: {e}", tmp.display())))?;
        std::fs::rename(&tmp, dir.join("meta.json")).map_err(|e| Error::msg(e.to_string()))?;
        if !tls.is_empty() {
            use std::os::unix::fs::PermissionsExt;
            let tdir = self.tls_dir(&c.name).join("docker");
            std::fs::create_dir_all(&tdir).map_err(|e| Error::msg(format!("creating {}: {e}", tdir.display())))?;
            for (name, src) in tls {
                let dst = tdir.join(name);
                std::fs::copy(src, &dst).map_err(|e| Error::msg(format!("{}: {e}", src.display())))?;
                let _ = std::fs::set_permissions(&dst, std::fs::Permissions::from_mode(0o600));
            }
        }
        Ok(())
    }

    pub fn remove(&self, name: &str) -> Result<bool> {
        let existed = self.meta_dir(name).exists();
        let _ = std::fs::remove_dir_all(self.meta_dir(name));
        let _ = std::fs::remove_dir_all(self.tls_dir(name));
        Ok(existed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_round_trip_in_dockers_layout() {
        let dir = tempfile::tempdir().unwrap();
        let s = Store::new(dir.path());
        let c = Context { name: "remote".into(), description: "a box".into(), host: "ssh://me@h".into(), skip_tls_verify: false, tls_files: vec![], stored: true };
        s.save(&c, &[]).unwrap();
        // The directory docker uses: the sha256 of the name.
        assert_eq!(s.meta_dir("remote"), dir.path().join("contexts/meta/b71199ebd070b36beab7317920c2c2f1d777df8d05e5527d8458fda57cb17a7a"));
        let meta = std::fs::read_to_string(s.meta_dir("remote").join("meta.json")).unwrap();
        assert_eq!(meta, r#"{"Name":"remote","Metadata":{"Description":"a box"},"Endpoints":{"docker":{"Host":"ssh://me@h","SkipTLSVerify":false}}}"#);
        assert_eq!(s.get("remote").unwrap().unwrap(), c);
        assert_eq!(s.list().unwrap().len(), 1);
        assert!(s.remove("remote").unwrap());
        assert!(s.get("remote").unwrap().is_none());
        assert!(valid_name("default").is_err() && valid_name("-x").is_err() && valid_name("prod-1").is_ok());
        assert_eq!(digest("default").len(), 64);
    }
}
