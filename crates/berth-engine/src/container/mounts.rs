//! Resolving a container's mounts at create time, as Docker does: `-v` (Binds),
//! `--mount` (Mounts), anonymous volumes (Config.Volumes and the image's VOLUMEs),
//! and `--volumes-from`.

use berth_types::paths::clean_abs;
use std::path::Path;

use berth_types::container::{Config, HostConfig, Mount};

use super::record::MountRecord;
use crate::error::{Error, Result};

const PROPAGATIONS: &[&str] = &["shared", "rshared", "slave", "rslave", "private", "rprivate"];

/// What create needs from the volume store.
pub trait VolumeResolver {
    /// Returns (name, _data path) of a named volume, creating it if missing.
    fn named(&self, name: &str, labels: Option<&std::collections::BTreeMap<String, String>>) -> Result<String>;
    /// Creates an anonymous volume; returns (name, path).
    fn anonymous(&self) -> Result<(String, String)>;
    fn path_of(&self, name: &str) -> String;
}

fn invalid_spec(spec: &str) -> Error {
    Error::invalid(format!("invalid volume specification: '{spec}'"))
}

fn check_dest(kind: &str, dest: &str) -> Result<()> {
    if !dest.starts_with('/') {
        return Err(Error::invalid(format!("invalid mount config for type \"{kind}\": invalid mount path: '{dest}' mount path must be absolute")));
    }
    if dest == "/" {
        return Err(Error::invalid(format!("invalid mount config for type \"{kind}\": invalid specification: destination can't be '/'")));
    }
    Ok(())
}


/// `-v src:dst[:opts]`.
fn parse_bind(spec: &str, vols: &dyn VolumeResolver) -> Result<MountRecord> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (src, dst, mode) = match parts.as_slice() {
        [dst] => ("", *dst, ""),
        [src, dst] => (*src, *dst, ""),
        [src, dst, mode] => (*src, *dst, *mode),
        _ => return Err(invalid_spec(spec)),
    };
    if dst.is_empty() {
        return Err(invalid_spec(spec));
    }
    let mut rw = true;
    let mut propagation = String::new();
    let mut nocopy = false;
    for m in mode.split(',').filter(|m| !m.is_empty()) {
        match m {
            "ro" => rw = false,
            "rw" => rw = true,
            "z" | "Z" => {}
            "nocopy" => nocopy = true,
            p if PROPAGATIONS.contains(&p) => propagation = p.to_string(),
            _ => return Err(Error::invalid(format!("invalid mode: {m}"))),
        }
    }
    if src.is_empty() {
        check_dest("volume", dst)?;
        let (name, path) = vols.anonymous()?;
        return Ok(MountRecord { kind: "volume".into(), name, source: path, destination: clean_abs(dst), rw, mode: mode.into(), anonymous: true, copy_up: !nocopy, ..Default::default() });
    }
    if src.starts_with('/') {
        check_dest("bind", dst)?;
        let host = clean_abs(src);
        let mut created = false;
        if !Path::new(&host).exists() {
            // `-v` creates a missing host path, as Docker does (`--mount` refuses).
            std::fs::create_dir_all(&host).map_err(|e| Error::invalid(format!("error while creating mount source path '{host}': {e}")))?;
            created = true;
        }
        return Ok(MountRecord {
            kind: "bind".into(),
            source: host,
            destination: clean_abs(dst),
            rw,
            mode: mode.into(),
            propagation: if propagation.is_empty() { "rprivate".into() } else { propagation },
            created_source: created,
            ..Default::default()
        });
    }
    check_dest("volume", dst)?;
    if !super::super::volumes::valid_name(src) {
        return Err(Error::invalid(format!(
            "create {src}: \"{src}\" includes invalid characters for a local volume name, only \"[a-zA-Z0-9][a-zA-Z0-9_.-]\" are allowed. If you intended to pass a host directory, use absolute path"
        )));
    }
    let path = vols.named(src, None)?;
    Ok(MountRecord { kind: "volume".into(), name: src.into(), source: path, destination: clean_abs(dst), rw, mode: volume_mode(mode), copy_up: !nocopy, ..Default::default() })
}

/// A named local-driver volume shows Mode `z` when no mode was given (dockerd's
/// setBindModeIfNull); anonymous ones (`-v /path`, image VOLUMEs) keep an empty mode.
fn volume_mode(mode: &str) -> String {
    if mode.is_empty() { "z".into() } else { mode.into() }
}

/// `--mount type=...`.
fn parse_mount(m: &Mount, vols: &dyn VolumeResolver) -> Result<MountRecord> {
    let kind = m.kind.as_str();
    match kind {
        "bind" | "volume" | "tmpfs" => {}
        "" => return Err(Error::invalid("invalid mount config: mount type unknown")),
        other => return Err(Error::invalid(format!("invalid mount config for type \"{other}\": mount type unknown"))),
    }
    if m.target.is_empty() {
        return Err(Error::invalid(format!("invalid mount config for type \"{kind}\": field Target must not be empty")));
    }
    check_dest(kind, &m.target)?;
    let dest = clean_abs(&m.target);
    match kind {
        "bind" => {
            if m.volume_options.is_some() || m.tmpfs_options.is_some() {
                return Err(Error::invalid("invalid mount config for type \"bind\": only BindOptions may be set"));
            }
            if m.source.is_empty() {
                return Err(Error::invalid("invalid mount config for type \"bind\": field Source must not be empty"));
            }
            if !m.source.starts_with('/') {
                return Err(Error::invalid(format!("invalid mount config for type \"bind\": invalid mount path: '{}' mount path must be absolute", m.source)));
            }
            let src = clean_abs(&m.source);
            if !Path::new(&src).exists() {
                return Err(Error::invalid(format!("invalid mount config for type \"bind\": bind source path does not exist: {src}")));
            }
            let prop = m.bind_options.as_ref().map(|b| b.propagation.clone()).filter(|p| !p.is_empty()).unwrap_or_else(|| "rprivate".into());
            if !PROPAGATIONS.contains(&prop.as_str()) {
                return Err(Error::invalid(format!("invalid mount config for type \"bind\": invalid propagation mode: {prop}")));
            }
            // bind-recursive=readonly: the submounts are read-only too (the runtime's "rro").
            let rro = m.read_only && m.bind_options.as_ref().is_some_and(|b| b.read_only_force_recursive);
            let options = if rro { vec!["rro".to_string()] } else { Vec::new() };
            Ok(MountRecord { kind: "bind".into(), source: src, destination: dest, rw: !m.read_only, propagation: prop, options, ..Default::default() })
        }
        "volume" => {
            if m.bind_options.is_some() || m.tmpfs_options.is_some() {
                return Err(Error::invalid("invalid mount config for type \"volume\": only VolumeOptions may be set"));
            }
            let nocopy = m.volume_options.as_ref().is_some_and(|v| v.no_copy);
            let (name, path, anonymous) = if m.source.is_empty() {
                let (n, p) = vols.anonymous()?;
                (n, p, true)
            } else {
                if !super::super::volumes::valid_name(&m.source) {
                    return Err(Error::invalid(format!("invalid mount config for type \"volume\": invalid volume name {:?}", m.source)));
                }
                let labels = m.volume_options.as_ref().and_then(|v| v.labels.as_ref());
                (m.source.clone(), vols.named(&m.source, labels)?, false)
            };
            Ok(MountRecord { kind: "volume".into(), name, source: path, destination: dest, rw: !m.read_only, mode: if anonymous { String::new() } else { volume_mode("") }, anonymous, copy_up: !nocopy, ..Default::default() })
        }
        _ => {
            if m.bind_options.is_some() || m.volume_options.is_some() {
                return Err(Error::invalid("invalid mount config for type \"tmpfs\": only TmpfsOptions may be set"));
            }
            if !m.source.is_empty() {
                return Err(Error::invalid("invalid mount config for type \"tmpfs\": field Source must not be specified"));
            }
            let mut options = Vec::new();
            if let Some(t) = &m.tmpfs_options {
                if t.size_bytes < 0 {
                    return Err(Error::invalid("invalid mount config for type \"tmpfs\": invalid size"));
                }
                if t.size_bytes > 0 {
                    options.push(format!("size={}", t.size_bytes));
                }
                if t.mode != 0 {
                    options.push(format!("mode={:o}", t.mode));
                }
            }
            Ok(MountRecord { kind: "tmpfs".into(), destination: dest, rw: !m.read_only, options, ..Default::default() })
        }
    }
}

/// All mounts of a new container. `image_volumes` are the image's VOLUME paths;
/// `from` gives the mounts of each `--volumes-from` container by name.
pub fn resolve(
    cfg: &Config,
    hc: &HostConfig,
    vols: &dyn VolumeResolver,
    from: &dyn Fn(&str) -> Result<Vec<MountRecord>>,
) -> Result<Vec<MountRecord>> {
    let mut out: Vec<MountRecord> = Vec::new();
    let push = |m: MountRecord, out: &mut Vec<MountRecord>| -> Result<()> {
        if out.iter().any(|x| x.destination == m.destination) {
            return Err(Error::invalid(format!("Duplicate mount point: {}", m.destination)));
        }
        out.push(m);
        Ok(())
    };
    for spec in hc.binds.clone().unwrap_or_default() {
        push(parse_bind(&spec, vols)?, &mut out)?;
    }
    for m in hc.mounts.clone().unwrap_or_default() {
        push(parse_mount(&m, vols)?, &mut out)?;
    }
    for spec in hc.volumes_from.clone().unwrap_or_default() {
        let (name, mode) = match spec.split_once(':') {
            Some((n, m)) => (n.to_string(), Some(m.to_string())),
            None => (spec.clone(), None),
        };
        if let Some(m) = &mode
            && m != "ro" && m != "rw" && m != "z" && m != "Z" {
                return Err(Error::invalid(format!("invalid mode: {m}")));
            }
        for mut m in from(&name)? {
            if out.iter().any(|x| x.destination == m.destination) {
                continue;
            }
            if let Some(mode) = &mode {
                m.rw = mode != "ro";
                m.mode = mode.clone();
            }
            m.anonymous = false;
            m.created_source = false;
            m.copy_up = false;
            out.push(m);
        }
    }
    // Anonymous volumes for Config.Volumes (the image's VOLUME and `-v /path`) not
    // covered by another mount.
    if let Some(v) = &cfg.volumes {
        for dest in v.keys() {
            let dest = clean_abs(dest);
            if out.iter().any(|x| x.destination == dest) {
                continue;
            }
            check_dest("volume", &dest)?;
            let (name, path) = vols.anonymous()?;
            out.push(MountRecord { kind: "volume".into(), name, source: path, destination: dest, rw: true, anonymous: true, copy_up: true, ..Default::default() });
        }
    }
    for tmpfs_dest in hc.tmpfs.as_ref().map(|t| t.keys().cloned().collect::<Vec<_>>()).unwrap_or_default() {
        check_dest("tmpfs", &tmpfs_dest)?;
        if out.iter().any(|x| x.destination == clean_abs(&tmpfs_dest)) {
            return Err(Error::invalid(format!("Duplicate mount point: {}", clean_abs(&tmpfs_dest))));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    struct Fake(RefCell<u32>);
    impl VolumeResolver for Fake {
        fn named(&self, name: &str, _: Option<&std::collections::BTreeMap<String, String>>) -> Result<String> {
            Ok(format!("/vols/{name}/_data"))
        }
        fn anonymous(&self) -> Result<(String, String)> {
            *self.0.borrow_mut() += 1;
            let n = format!("anon{}", self.0.borrow());
            Ok((n.clone(), format!("/vols/{n}/_data")))
        }
        fn path_of(&self, name: &str) -> String {
            format!("/vols/{name}/_data")
        }
    }

    #[test]
    fn binds_volumes_and_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let host = tmp.path().join("new/dir");
        let hc = HostConfig {
            binds: Some(vec![format!("{}:/mnt:ro,rshared", host.display()), "data:/data".into(), "/x/../y:/z".into()]),
            ..Default::default()
        };
        let mut cfg = Config::default();
        cfg.volumes = Some([("/data".to_string(), Default::default()), ("/cache".to_string(), Default::default())].into_iter().collect());
        let f = Fake(RefCell::new(0));
        let m = resolve(&cfg, &hc, &f, &|_| Ok(vec![])).unwrap();
        assert!(host.is_dir(), "-v creates the host path");
        assert_eq!(m[0].kind, "bind");
        assert!(!m[0].rw);
        assert_eq!(m[0].propagation, "rshared");
        assert_eq!(m[1].name, "data");
        assert_eq!(m[2].source, "/y");
        assert_eq!(m.len(), 4, "/data is already a mount; /cache gets an anonymous volume");
        assert!(m[3].anonymous);

        for bad in ["data:relative", "a:b:c:d", "/src:/dst:bogus", "bad name:/x"] {
            let hc = HostConfig { binds: Some(vec![bad.into()]), ..Default::default() };
            assert!(resolve(&Config::default(), &hc, &f, &|_| Ok(vec![])).is_err(), "{bad}");
        }
        let dup = HostConfig { binds: Some(vec!["a1:/d".into(), "b1:/d".into()]), ..Default::default() };
        assert!(resolve(&Config::default(), &dup, &f, &|_| Ok(vec![])).unwrap_err().message.contains("Duplicate mount point"));
    }

    #[test]
    fn mount_flag_refuses_missing_bind_source() {
        let f = Fake(RefCell::new(0));
        let hc = HostConfig {
            mounts: Some(vec![Mount { kind: "bind".into(), source: "/no/such/path".into(), target: "/x".into(), ..Default::default() }]),
            ..Default::default()
        };
        let e = resolve(&Config::default(), &hc, &f, &|_| Ok(vec![])).unwrap_err();
        assert!(e.message.contains("bind source path does not exist"), "{}", e.message);
        assert!(!Path::new("/no/such/path").exists());
    }
}
