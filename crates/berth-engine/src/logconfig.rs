//! A container's log configuration as dockerd settles it: the daemon's `log-driver` and
//! `log-opts` as defaults (its options apply to containers of the same driver, its
//! `cache-*` options to all), checked at create with Docker's messages; and what the
//! shim's driver needs at start — where the log (and the dual-logging cache) lives, the
//! tag from its template, the `labels`/`env` extras.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use berth_shim::logdriver::{self, LogInfo};
use berth_types::container::LogConfig;

use crate::config::EngineConfig;
use crate::container::ContainerRecord;
use crate::error::{Error, Result};

/// Fills in the daemon's defaults and checks the result (at create).
pub(crate) fn merge_and_validate(cfg: &EngineConfig, lc: &mut LogConfig) -> Result<()> {
    if lc.kind.is_empty() {
        lc.kind = cfg.log_driver.clone();
    }
    let opts = lc.config.get_or_insert_with(Default::default);
    // The cache options go to every driver that keeps a cache; the others to
    // containers of the daemon's driver.
    let keeps_cache = !logdriver::readable(&lc.kind) && lc.kind != "none";
    for (k, v) in &cfg.log_opts {
        let wanted = if k.starts_with("cache-") { keeps_cache } else { lc.kind == cfg.log_driver };
        if wanted && !opts.contains_key(k) {
            opts.insert(k.clone(), v.clone());
        }
    }
    let opts: BTreeMap<String, String> = opts.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    logdriver::validate(&lc.kind, &opts).map_err(Error::invalid)?;
    if let Some(t) = opts.get("tag") {
        render_tag(t, &LogInfo::default()).map_err(Error::invalid)?;
    }
    for k in ["labels-regex", "env-regex"] {
        if let Some(r) = opts.get(k) {
            regex::Regex::new(r).map_err(|e| Error::invalid(format!("invalid {k}: {e}")))?;
        }
    }
    Ok(())
}

/// The daemon's own `log-driver`/`log-opts`, checked when it starts.
pub(crate) fn validate_defaults(cfg: &EngineConfig) -> Result<()> {
    let bad = |m: String| Error::invalid(format!("invalid log-driver/log-opts: {m}"));
    let mut lc = LogConfig { kind: cfg.log_driver.clone(), config: None };
    merge_and_validate(cfg, &mut lc).map_err(|e| bad(e.message))?;
    let all: BTreeMap<String, String> = cfg.log_opts.clone().into_iter().collect();
    berth_shim::logdriver::local::Rotation::from_opts(&all, "cache-").map(|_| ()).map_err(bad)
}

/// Docker's tag template: `{{.ID}}` (12), `{{.FullID}}`, `{{.Name}}`, `{{.ImageID}}`
/// (12), `{{.ImageFullID}}`, `{{.ImageName}}`, `{{.DaemonName}}`, and literal text.
pub fn render_tag(template: &str, info: &LogInfo) -> std::result::Result<String, String> {
    let mut out = String::new();
    let mut rest = template;
    while let Some(i) = rest.find("{{") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let j = after.find("}}").ok_or_else(|| format!("template: tag: unclosed action in {template:?}"))?;
        let short = |s: &str| s.trim_start_matches("sha256:").chars().take(12).collect::<String>();
        out.push_str(&match after[..j].trim() {
            ".ID" => short(&info.id),
            ".FullID" => info.id.clone(),
            ".Name" => info.name.clone(),
            ".ImageID" => short(&info.image_id),
            ".ImageFullID" => info.image_id.clone(),
            ".ImageName" => info.image_name.clone(),
            ".DaemonName" => "berth".to_string(),
            other => return Err(format!("template: tag: can't evaluate {other:?}: use .ID, .FullID, .Name, .ImageID, .ImageFullID, .ImageName or .DaemonName")),
        });
        rest = &after[j + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Where a `local` log lives (as Docker's: `local-logs/container.log`).
pub fn local_path(container_dir: &Path) -> PathBuf {
    container_dir.join("local-logs").join("container.log")
}

/// Where the dual-logging cache lives.
pub fn cache_path(container_dir: &Path) -> PathBuf {
    container_dir.join("container-cached.log")
}

/// The file `logs` reads for this container, or why it can't.
pub(crate) enum Readable {
    JsonFile(PathBuf),
    Local(PathBuf),
}

pub(crate) fn readable(rec: &ContainerRecord, data_root: &Path) -> Result<Readable> {
    let lc = &rec.host_config.log_config;
    let dir = ContainerRecord::dir(data_root, &rec.id);
    let opts: BTreeMap<String, String> = lc.config.clone().unwrap_or_default().into_iter().collect();
    match lc.kind.as_str() {
        // CRI-format files are read by the same reader (it takes both line formats).
        "" | "json-file" | "cri" => Ok(Readable::JsonFile(PathBuf::from(&rec.log_path))),
        "local" => Ok(Readable::Local(local_path(&dir))),
        "none" => Err(Error::not_implemented("configured logging driver does not support reading")),
        d if logdriver::wants_cache(d, &opts) => Ok(Readable::Local(cache_path(&dir))),
        _ => Err(Error::not_implemented("configured logging driver does not support reading")),
    }
}

/// `LogPath` in inspect: the file of a driver that writes one.
pub(crate) fn shown_path(rec: &ContainerRecord, data_root: &Path) -> String {
    match rec.host_config.log_config.kind.as_str() {
        "" | "json-file" => rec.log_path.clone(),
        "local" => local_path(&ContainerRecord::dir(data_root, &rec.id)).to_string_lossy().into_owned(),
        _ => String::new(),
    }
}

/// The shim's log configuration for a start.
pub(crate) fn for_shim(rec: &ContainerRecord, data_root: &Path, rotation: (u64, u32)) -> berth_shim::LogConfig {
    let lc = &rec.host_config.log_config;
    let driver = if lc.kind.is_empty() { "json-file".to_string() } else { lc.kind.clone() };
    let opts: BTreeMap<String, String> = lc.config.clone().unwrap_or_default().into_iter().collect();
    let dir = ContainerRecord::dir(data_root, &rec.id);
    let size = match opts.get("max-size") {
        Some(s) if s == "-1" => Some(0),
        Some(s) => crate::config::parse_size(s),
        None => None,
    };
    let files = opts.get("max-file").and_then(|f| f.parse().ok());
    let mut info = LogInfo {
        id: rec.id.clone(),
        name: rec.bare_name().to_string(),
        image_name: rec.config.image.clone(),
        image_id: rec.image_id.clone(),
        created: rec.created.clone(),
        command: std::iter::once(rec.path.as_str()).chain(rec.args.iter().map(String::as_str)).collect::<Vec<_>>().join(" "),
        tag: String::new(),
        hostname: nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_default(),
        extra: extras(rec, &opts),
    };
    info.tag = render_tag(opts.get("tag").map(String::as_str).unwrap_or("{{.ID}}"), &info).unwrap_or_else(|_| info.id.chars().take(12).collect());
    berth_shim::LogConfig {
        path: match driver.as_str() {
            // The CRI names its file (kept as the log path); never rotated by the shim.
            "json-file" | "cri" => Some(PathBuf::from(&rec.log_path)),
            "local" => Some(local_path(&dir)),
            _ => None,
        },
        max_size: size.unwrap_or(rotation.0),
        max_files: files.unwrap_or(rotation.1),
        cache: logdriver::wants_cache(&driver, &opts).then(|| cache_path(&dir)),
        journal_socket: std::env::var_os("BERTH_JOURNAL_SOCKET").map(PathBuf::from),
        driver,
        opts,
        info,
    }
}

/// The `labels`, `labels-regex`, `env` and `env-regex` options: the container's labels
/// and environment variables they name, as extra attributes.
fn extras(rec: &ContainerRecord, opts: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let labels = rec.config.labels.clone().unwrap_or_default();
    let env: Vec<(String, String)> = rec.config.env.iter().flatten().filter_map(|e| e.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let names = |k: &str| opts.get(k).map(|v| v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect::<Vec<_>>()).unwrap_or_default();
    let re = |k: &str| opts.get(k).and_then(|r| regex::Regex::new(r).ok());
    for n in names("labels") {
        if let Some(v) = labels.get(&n) {
            out.insert(n, v.clone());
        }
    }
    if let Some(r) = re("labels-regex") {
        for (k, v) in &labels {
            if r.is_match(k) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    for n in names("env") {
        if let Some((_, v)) = env.iter().find(|(k, _)| *k == n) {
            out.insert(n, v.clone());
        }
    }
    if let Some(r) = re("env-regex") {
        for (k, v) in &env {
            if r.is_match(k) {
                out.insert(k.clone(), v.clone());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_and_defaults() {
        let info = LogInfo { id: "0123456789abcdef".into(), name: "web".into(), image_name: "busybox".into(), image_id: "sha256:fedcba9876543210".into(), ..Default::default() };
        assert_eq!(render_tag("{{.ID}}", &info).unwrap(), "0123456789ab");
        assert_eq!(render_tag("app/{{ .Name }}/{{.ImageID}}", &info).unwrap(), "app/web/fedcba987654");
        assert!(render_tag("{{.Nope}}", &info).is_err());
        assert!(render_tag("{{.ID", &info).is_err());

        let mut cfg = EngineConfig { log_driver: "syslog".into(), ..Default::default() };
        cfg.log_opts.insert("syslog-address".into(), "udp://127.0.0.1:514".into());
        cfg.log_opts.insert("cache-max-size".into(), "1m".into());
        // The daemon's driver: its options too.
        let mut lc = LogConfig::default();
        merge_and_validate(&cfg, &mut lc).unwrap();
        assert_eq!(lc.kind, "syslog");
        assert_eq!(lc.config.as_ref().unwrap().get("syslog-address").map(String::as_str), Some("udp://127.0.0.1:514"));
        // Another driver: only the cache options.
        let mut lc = LogConfig { kind: "gelf".into(), config: Some([("gelf-address".to_string(), "udp://127.0.0.1:1".to_string())].into_iter().collect()) };
        merge_and_validate(&cfg, &mut lc).unwrap();
        let c = lc.config.unwrap();
        assert!(!c.contains_key("syslog-address") && c.get("cache-max-size").map(String::as_str) == Some("1m"));
        let mut lc = LogConfig { kind: "json-file".into(), config: Some([("bogus".to_string(), "1".to_string())].into_iter().collect()) };
        assert_eq!(merge_and_validate(&cfg, &mut lc).unwrap_err().message, "unknown log opt 'bogus' for json-file log driver");
    }
}
