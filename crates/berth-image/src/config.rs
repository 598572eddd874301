//! The image configuration file (Docker's image JSON, a superset of the OCI image
//! config). Loaded configs are kept as the exact bytes they came in (the image ID is
//! their digest); these types read them, and write the configs berth creates
//! (`import`, `commit`) in the byte layout Docker uses, so that the same inputs give
//! the same image ID as Docker.

use std::collections::BTreeMap;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize};

use crate::digest::Digest;
use crate::error::{ImageError, Result};

/// Docker's "empty struct" map values: `"ExposedPorts": {"80/tcp": {}}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Empty {}

impl<'de> Deserialize<'de> for Empty {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        // Accept `{}`, `null` or anything else: only the key matters.
        serde::de::IgnoredAny::deserialize(d)?;
        Ok(Empty {})
    }
}

/// Docker's `StrSlice`: a JSON string, an array of strings, or null.
fn str_or_vec<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum StrOrVec {
        One(String),
        Many(Vec<String>),
    }
    Ok(match Option::<StrOrVec>::deserialize(d)? {
        None => None,
        Some(StrOrVec::One(s)) => Some(vec![s]),
        Some(StrOrVec::Many(v)) => Some(v),
    })
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The container configuration inside an image config (`config` and
/// `container_config`), field order and omission rules as in moby's
/// `container.Config`, so that serialising it gives Docker's bytes.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ContainerConfig {
    #[serde(default)]
    pub hostname: String,
    #[serde(default)]
    pub domainname: String,
    #[serde(default)]
    pub user: String,
    #[serde(default)]
    pub attach_stdin: bool,
    #[serde(default)]
    pub attach_stdout: bool,
    #[serde(default)]
    pub attach_stderr: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exposed_ports: Option<BTreeMap<String, Empty>>,
    #[serde(default)]
    pub tty: bool,
    #[serde(default)]
    pub open_stdin: bool,
    #[serde(default)]
    pub stdin_once: bool,
    #[serde(default)]
    pub env: Option<Vec<String>>,
    #[serde(default, deserialize_with = "str_or_vec")]
    pub cmd: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthcheck: Option<HealthConfig>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub args_escaped: bool,
    #[serde(default)]
    pub image: String,
    #[serde(default)]
    pub volumes: Option<BTreeMap<String, Empty>>,
    #[serde(default)]
    pub working_dir: String,
    #[serde(default, deserialize_with = "str_or_vec")]
    pub entrypoint: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "is_false")]
    pub network_disabled: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac_address: String,
    #[serde(default)]
    pub on_build: Option<Vec<String>>,
    #[serde(default)]
    pub labels: Option<BTreeMap<String, String>>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub stop_signal: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_timeout: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shell: Option<Vec<String>>,
}

/// `Healthcheck` of a container config (moby's `HealthcheckConfig`): durations in
/// nanoseconds, zero meaning "inherit / the default"; empty fields are left out, as
/// Go's `omitempty` does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct HealthConfig {
    /// `["NONE"]`, `["CMD", args...]` or `["CMD-SHELL", command]`.
    #[serde(default, skip_serializing_if = "is_none_or_empty")]
    pub test: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub interval: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub timeout: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_period: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub start_interval: i64,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub retries: i64,
}

fn is_zero(v: &i64) -> bool {
    *v == 0
}

fn is_none_or_empty(v: &Option<Vec<String>>) -> bool {
    v.as_ref().is_none_or(Vec::is_empty)
}

/// One entry of the image history.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct History {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub author: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub created_by: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
    #[serde(default, skip_serializing_if = "is_false")]
    pub empty_layer: bool,
}

/// The image's layers, bottom first.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootFs {
    #[serde(rename = "type", default)]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diff_ids: Vec<Digest>,
}

/// An image config. Fields are declared in alphabetical order because Docker writes
/// the top level through a Go map (sorted keys); keep it that way.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ImageConfig {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub architecture: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub author: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub comment: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ContainerConfig>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub container: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_config: Option<ContainerConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub docker_version: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub history: Vec<History>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub os: String,
    #[serde(rename = "os.version", default, skip_serializing_if = "String::is_empty")]
    pub os_version: String,
    pub rootfs: RootFs,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub variant: String,
}

impl ImageConfig {
    /// Parses and validates a config blob.
    pub fn parse(bytes: &[u8]) -> Result<ImageConfig> {
        let c: ImageConfig = serde_json::from_slice(bytes)
            .map_err(|e| ImageError::InvalidConfig(e.to_string()))?;
        if c.rootfs.kind != "layers" {
            return Err(ImageError::InvalidConfig(format!(
                "rootfs type {:?} is not supported (expected \"layers\")",
                c.rootfs.kind
            )));
        }
        if !(c.os.is_empty() || c.os == "linux") {
            return Err(ImageError::InvalidConfig(format!(
                "image operating system {:?} cannot be used on this platform",
                c.os
            )));
        }
        Ok(c)
    }

    /// The bytes berth writes for a config it creates (compact JSON, Docker's order).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        serde_json::to_vec(self).map_err(|e| ImageError::System(format!("encode config: {e}")))
    }

    /// `created` as a UTC time, if present and parseable.
    pub fn created_time(&self) -> Option<DateTime<Utc>> {
        parse_time(self.created.as_deref()?)
    }
}

/// Parses an RFC 3339 time as found in image configs.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s).ok().map(|t| t.with_timezone(&Utc))
}

/// Formats a time as Go's `time.RFC3339Nano` (trailing zeros of the fraction dropped),
/// which is what Docker writes into configs.
pub fn format_time(t: &DateTime<Utc>) -> String {
    let base = t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let nanos = t.timestamp_subsec_nanos();
    if nanos == 0 {
        return base;
    }
    let frac = format!("{nanos:09}");
    let frac = frac.trim_end_matches('0');
    // base ends with 'Z'.
    format!("{}.{}Z", &base[..base.len() - 1], frac)
}

pub use crate::change::apply_changes;

#[cfg(test)]
mod tests {
    use super::*;

    /// Docker's config for `docker import -c 'CMD ["sh"]'` of the base fixture; berth
    /// must produce the same bytes (and so the same image ID) from the same inputs.
    #[test]
    fn import_config_bytes_match_docker() {
        let created = "2026-11-27T20:50:20.618739265Z".to_string();
        let mut cfg = ContainerConfig::default();
        apply_changes(&mut cfg, &[r#"CMD ["sh"]"#.to_string()]).unwrap();
        let ic = ImageConfig {
            architecture: "amd64".into(),
            comment: "Imported from -".into(),
            config: Some(cfg),
            container_config: Some(ContainerConfig::default()),
            created: Some(created.clone()),
            docker_version: "20.10.24+dfsg1".into(),
            history: vec![History {
                created: Some(created),
                comment: "Imported from -".into(),
                ..Default::default()
            }],
            os: "linux".into(),
            rootfs: RootFs {
                kind: "layers".into(),
                diff_ids: vec![Digest::parse(
                    "sha256:452f786823ef11cd754ee0e1fba9445a348075d2df3ff2f2a42a93c8dca243ec",
                )
                .unwrap()],
            },
            ..Default::default()
        };
        let bytes = ic.to_bytes().unwrap();
        assert_eq!(
            Digest::of(&bytes).to_string(),
            "sha256:fd16d151ea2d88e4a128d4ba4f9e3b0b9be463fc8636bb8c4b2c6421fc97ca2f",
            "{}",
            String::from_utf8_lossy(&bytes)
        );
    }

    #[test]
    fn parses_and_validates() {
        let ok = br#"{"architecture":"amd64","os":"linux","config":{"Cmd":"sh","Env":null},"rootfs":{"type":"layers","diff_ids":[]}}"#;
        let c = ImageConfig::parse(ok).unwrap();
        assert_eq!(c.config.unwrap().cmd, Some(vec!["sh".into()]));
        let win = br#"{"os":"windows","rootfs":{"type":"layers"}}"#;
        assert!(ImageConfig::parse(win).unwrap_err().to_string().contains("windows"));
        let bad_fs = br#"{"rootfs":{"type":"other"}}"#;
        assert!(ImageConfig::parse(bad_fs).is_err());
        let bad_digest = br#"{"rootfs":{"type":"layers","diff_ids":["sha256:xyz"]}}"#;
        assert!(ImageConfig::parse(bad_digest).is_err());
        assert!(ImageConfig::parse(b"{not json").is_err());
    }

    #[test]
    fn go_time_format() {
        let t = parse_time("2026-11-27T20:50:20.618739265Z").unwrap();
        assert_eq!(format_time(&t), "2026-11-27T20:50:20.618739265Z");
        let t = parse_time("2026-11-27T20:50:20.5Z").unwrap();
        assert_eq!(format_time(&t), "2026-11-27T20:50:20.5Z");
        let t = parse_time("2026-11-27T20:50:20Z").unwrap();
        assert_eq!(format_time(&t), "2026-11-27T20:50:20Z");
        let t = parse_time("2026-11-27T22:50:20.100+02:00").unwrap();
        assert_eq!(format_time(&t), "2026-11-27T20:50:20.1Z");
    }

    #[test]
    fn serialises_container_config_like_docker() {
        let c = ContainerConfig::default();
        let s = serde_json::to_string(&c).unwrap();
        assert_eq!(
            s,
            r#"{"Hostname":"","Domainname":"","User":"","AttachStdin":false,"AttachStdout":false,"AttachStderr":false,"Tty":false,"OpenStdin":false,"StdinOnce":false,"Env":null,"Cmd":null,"Image":"","Volumes":null,"WorkingDir":"","Entrypoint":null,"OnBuild":null,"Labels":null}"#
        );
    }
}
