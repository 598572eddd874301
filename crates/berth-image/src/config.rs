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
    pub healthcheck: Option<serde_json::Value>,
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

/// Applies Dockerfile-style `--change` instructions (CMD, ENTRYPOINT, ENV, EXPOSE,
/// LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR) to a container config, as
/// `docker commit --change` and `docker import --change` do.
pub fn apply_changes(config: &mut ContainerConfig, changes: &[String]) -> Result<()> {
    let mut cmd_set = false;
    for change in changes {
        let line = change.trim();
        if line.is_empty() {
            continue;
        }
        let (word, rest) = match line.split_once(char::is_whitespace) {
            Some((w, r)) => (w, r.trim()),
            None => (line, ""),
        };
        let bad = |why: &str| ImageError::InvalidChange(change.clone(), why.to_owned());
        match word.to_ascii_uppercase().as_str() {
            "CMD" => {
                config.cmd = Some(command_form(rest));
                cmd_set = true;
            }
            "ENTRYPOINT" => {
                config.entrypoint = Some(command_form(rest));
                // As in a Dockerfile: a new ENTRYPOINT resets an inherited CMD.
                if !cmd_set {
                    config.cmd = None;
                }
            }
            "ENV" => {
                let pairs = key_value_pairs(rest).map_err(|e| bad(&e))?;
                let env = config.env.get_or_insert_with(Vec::new);
                for (k, v) in pairs {
                    let entry = format!("{k}={v}");
                    match env
                        .iter()
                        .position(|e| e.split_once('=').map(|(ek, _)| ek) == Some(k.as_str()) || *e == k)
                    {
                        Some(i) => env[i] = entry,
                        None => env.push(entry),
                    }
                }
            }
            "LABEL" => {
                let pairs = key_value_pairs(rest).map_err(|e| bad(&e))?;
                let labels = config.labels.get_or_insert_with(BTreeMap::new);
                for (k, v) in pairs {
                    labels.insert(k, v);
                }
            }
            "EXPOSE" => {
                if rest.is_empty() {
                    return Err(bad("EXPOSE requires at least one argument"));
                }
                let ports = config.exposed_ports.get_or_insert_with(BTreeMap::new);
                for p in rest.split_whitespace() {
                    for port in expand_port(p).map_err(|e| bad(&e))? {
                        ports.insert(port, Empty {});
                    }
                }
            }
            "VOLUME" => {
                let vols: Vec<String> = match json_array(rest) {
                    Some(v) => v,
                    None => rest.split_whitespace().map(str::to_owned).collect(),
                };
                if vols.is_empty() || vols.iter().any(|v| v.trim().is_empty()) {
                    return Err(bad("VOLUME specified can not be an empty string"));
                }
                let map = config.volumes.get_or_insert_with(BTreeMap::new);
                for v in vols {
                    map.insert(v, Empty {});
                }
            }
            "WORKDIR" => {
                if rest.is_empty() {
                    return Err(bad("WORKDIR requires exactly one argument"));
                }
                config.working_dir = if rest.starts_with('/') || config.working_dir.is_empty() {
                    clean_abs(rest)
                } else {
                    clean_abs(&format!("{}/{}", config.working_dir, rest))
                };
            }
            "USER" => {
                if rest.is_empty() {
                    return Err(bad("USER requires exactly one argument"));
                }
                config.user = rest.to_owned();
            }
            "STOPSIGNAL" => {
                if rest.is_empty() {
                    return Err(bad("STOPSIGNAL requires exactly one argument"));
                }
                config.stop_signal = rest.to_owned();
            }
            "ONBUILD" => {
                if rest.is_empty() {
                    return Err(bad("ONBUILD requires at least one argument"));
                }
                config.on_build.get_or_insert_with(Vec::new).push(rest.to_owned());
            }
            "HEALTHCHECK" => {
                return Err(bad("HEALTHCHECK is not supported as a change yet"));
            }
            "RUN" | "COPY" | "ADD" | "FROM" | "ARG" | "SHELL" | "MAINTAINER" => {
                return Err(bad(&format!("{} is not a valid change command", word.to_ascii_uppercase())));
            }
            _ => return Err(bad(&format!("unknown instruction: {}", word.to_ascii_uppercase()))),
        }
    }
    Ok(())
}

/// `["a","b"]` (exec form) or anything else (shell form → `/bin/sh -c`).
fn command_form(rest: &str) -> Vec<String> {
    match json_array(rest) {
        Some(v) => v,
        None => vec!["/bin/sh".into(), "-c".into(), rest.to_owned()],
    }
}

fn json_array(s: &str) -> Option<Vec<String>> {
    if !s.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(s).ok()
}

/// `k=v k2="v 2"` pairs, or the legacy single `k v w` form.
fn key_value_pairs(rest: &str) -> std::result::Result<Vec<(String, String)>, String> {
    if rest.is_empty() {
        return Err("requires at least one argument".into());
    }
    let words = shell_words::split(rest).map_err(|e| format!("bad quoting: {e}"))?;
    let first_has_eq = words.first().is_some_and(|w| w.contains('='));
    if !first_has_eq {
        // Legacy form: the first word is the key, the rest of the line the value.
        let (k, v) = rest
            .split_once(char::is_whitespace)
            .ok_or_else(|| "needs a value (key=value or key value)".to_string())?;
        let v = shell_words::split(v.trim()).map_err(|e| format!("bad quoting: {e}"))?.join(" ");
        return Ok(vec![(k.to_owned(), v)]);
    }
    let mut out = Vec::new();
    for w in words {
        let (k, v) = w
            .split_once('=')
            .ok_or_else(|| format!("{w:?} is not of the form key=value"))?;
        if k.is_empty() {
            return Err("a key cannot be empty".into());
        }
        out.push((k.to_owned(), v.to_owned()));
    }
    Ok(out)
}

/// `80` → `80/tcp`; `53/UDP` → `53/udp`; `8000-8002/tcp` → three ports.
fn expand_port(p: &str) -> std::result::Result<Vec<String>, String> {
    let (ports, proto) = match p.split_once('/') {
        Some((a, b)) => (a, b.to_ascii_lowercase()),
        None => (p, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    let parse = |s: &str| s.parse::<u16>().map_err(|_| format!("invalid port: {s}"));
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => {
            let v = parse(ports)?;
            (v, v)
        }
    };
    if hi < lo {
        return Err(format!("invalid port range: {ports}"));
    }
    Ok((lo..=hi).map(|n| format!("{n}/{proto}")).collect())
}

/// Lexically cleans an absolute path (`/a/./b/../c` → `/a/c`).
fn clean_abs(p: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            x => parts.push(x),
        }
    }
    format!("/{}", parts.join("/"))
}

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

    fn changed(changes: &[&str]) -> ContainerConfig {
        let mut c = ContainerConfig::default();
        apply_changes(&mut c, &changes.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        c
    }

    #[test]
    fn change_instructions() {
        let c = changed(&[
            "CMD echo hi",
            r#"ENTRYPOINT ["/bin/sh", "-c"]"#,
            "ENV A=1 B=\"two words\"",
            "ENV A 3",
            "WORKDIR /data",
            "WORKDIR sub/../x",
            "USER 1000:1000",
            "LABEL a=b \"c d\"=e",
            "EXPOSE 8080 53/udp 9000-9001",
            "VOLUME /v1 /v2",
            r#"VOLUME ["/v3"]"#,
            "STOPSIGNAL SIGTERM",
        ]);
        // ENTRYPOINT after CMD in the same batch keeps the CMD.
        assert_eq!(c.cmd, Some(vec!["/bin/sh".into(), "-c".into(), "echo hi".into()]));
        assert_eq!(c.entrypoint, Some(vec!["/bin/sh".into(), "-c".into()]));
        assert_eq!(c.env, Some(vec!["A=3".into(), "B=two words".into()]));
        assert_eq!(c.working_dir, "/data/x");
        assert_eq!(c.user, "1000:1000");
        let labels = c.labels.unwrap();
        assert_eq!(labels.get("a").map(String::as_str), Some("b"));
        assert_eq!(labels.get("c d").map(String::as_str), Some("e"));
        let ports: Vec<_> = c.exposed_ports.unwrap().into_keys().collect();
        assert_eq!(ports, vec!["53/udp", "8080/tcp", "9000/tcp", "9001/tcp"]);
        let vols: Vec<_> = c.volumes.unwrap().into_keys().collect();
        assert_eq!(vols, vec!["/v1", "/v2", "/v3"]);
        assert_eq!(c.stop_signal, "SIGTERM");
    }

    #[test]
    fn entrypoint_resets_inherited_cmd() {
        let mut c = ContainerConfig {
            cmd: Some(vec!["sh".into()]),
            ..Default::default()
        };
        apply_changes(&mut c, &[r#"ENTRYPOINT ["top"]"#.into()]).unwrap();
        assert_eq!(c.cmd, None);
    }

    #[test]
    fn bad_changes_are_refused() {
        let mut c = ContainerConfig::default();
        for bad in ["RUN echo", "FOO bar", "EXPOSE 99999", "EXPOSE 80/xyz", "ENV", "LABEL =x", "USER", "ENV A=\"unterminated"] {
            let e = apply_changes(&mut c, &[bad.to_string()]).unwrap_err();
            assert!(matches!(e, ImageError::InvalidChange(..)), "{bad}: {e}");
        }
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
