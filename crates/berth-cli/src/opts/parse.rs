//! Parsers for docker's option values: ports, env files, volumes and mounts, restart
//! policies, ulimits, devices, sizes, detach keys. Each returns docker's error text.

use std::collections::BTreeMap;
use std::path::Path;

use berth_types::Empty;
use berth_types::container::{
    BindOptions, DeviceMapping, Mount, PortBinding, PortMap, RestartPolicy, ThrottleDevice, TmpfsOptions, Ulimit,
    VolumeDriverConfig, VolumeOptions, WeightDevice,
};

use crate::format::units;

/// The process environment, passed in so tests can supply their own.
pub type Env = std::collections::HashMap<String, String>;

/// `-e K=V` stays; `-e K` takes K's value from our environment when set.
pub fn env_entry(s: &str, env: &Env) -> String {
    if s.contains('=') {
        return s.to_string();
    }
    match env.get(s) {
        Some(v) => format!("{s}={v}"),
        None => s.to_string(),
    }
}

/// Reads an `--env-file` (or `--label-file`): `K=V` lines, bare `K` taken from the
/// environment (env files only), `#` comments and blank lines skipped.
pub fn read_kv_file(path: &str, env: Option<&Env>) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("open {path}: {}", io_msg(&e)))?;
    let mut out = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim_start();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k, Some(v)),
            None => (line, None),
        };
        if key.is_empty() {
            return Err(format!("invalid variable on line {}: {raw:?}: variable name cannot be empty", n + 1));
        }
        if key.contains(char::is_whitespace) {
            return Err(format!("variable '{key}' contains whitespaces"));
        }
        match (value, env) {
            (Some(v), _) => out.push(format!("{key}={v}")),
            (None, Some(env)) => {
                if let Some(v) = env.get(key) {
                    out.push(format!("{key}={v}"));
                }
            }
            (None, None) => out.push(key.to_string()),
        }
    }
    Ok(out)
}

pub fn io_msg(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// `K=V` (or `K` meaning empty value) into a map, for labels, options, sysctls.
pub fn kv_map(items: &[String]) -> BTreeMap<String, String> {
    items
        .iter()
        .map(|s| match s.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (s.clone(), String::new()),
        })
        .collect()
}

fn parse_range(s: &str) -> Result<(u16, u16), String> {
    let (a, b) = s.split_once('-').unwrap_or((s, s));
    let a: u16 = a.parse().map_err(|_| format!("invalid containerPort: {s}"))?;
    let b: u16 = b.parse().map_err(|_| format!("invalid containerPort: {s}"))?;
    if b < a {
        return Err(format!("invalid range specified for port: {s}"));
    }
    Ok((a, b))
}

/// `-p [ip:][hostPort:]containerPort[/proto]` with ranges, as nat.ParsePortSpec does.
pub fn parse_publish(spec: &str, exposed: &mut BTreeMap<String, Empty>, bindings: &mut PortMap) -> Result<(), String> {
    let parts: Vec<&str> = spec.split(':').collect();
    let n = parts.len();
    let (ip, host_port, container) = match n {
        1 => ("".to_string(), "", parts[0]),
        2 => ("".to_string(), parts[0], parts[1]),
        3 => (parts[0].to_string(), parts[1], parts[2]),
        _ => (parts[..n - 2].join(":"), parts[n - 2], parts[n - 1]),
    };
    let ip = ip.trim_start_matches('[').trim_end_matches(']').to_string();
    if !ip.is_empty() && ip.parse::<std::net::IpAddr>().is_err() {
        return Err(format!("invalid IP address: {ip}"));
    }
    let (container, proto) = match container.split_once('/') {
        Some((c, p)) => (c, p.to_ascii_lowercase()),
        None => (container, "tcp".to_string()),
    };
    if container.is_empty() {
        return Err(format!("no port specified: {spec}<empty>"));
    }
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    let (start, end) = parse_range(container).map_err(|_| format!("invalid containerPort: {container}"))?;
    let (hstart, hend) = if host_port.is_empty() {
        (0, 0)
    } else {
        parse_range(host_port).map_err(|_| format!("invalid hostPort: {host_port}"))?
    };
    if !host_port.is_empty() && (end - start) != (hend - hstart) && end != start {
        return Err(format!("invalid ranges specified for container and host Ports: {container} and {host_port}"));
    }
    for i in 0..=(end - start) {
        let port = format!("{}/{proto}", start + i);
        let mut hp = if host_port.is_empty() { String::new() } else { (hstart + i).to_string() };
        if start == end && hstart != hend {
            hp = format!("{hp}-{hend}");
        }
        exposed.insert(port.clone(), Empty {});
        bindings
            .entry(port)
            .or_insert_with(|| Some(Vec::new()))
            .get_or_insert_with(Vec::new)
            .push(PortBinding { host_ip: ip.clone(), host_port: hp });
    }
    Ok(())
}

/// `--expose 80`, `--expose 7000-7010/udp`.
pub fn parse_expose(spec: &str, exposed: &mut BTreeMap<String, Empty>) -> Result<(), String> {
    let (ports, proto) = spec.split_once('/').unwrap_or((spec, "tcp"));
    let (a, b) = parse_range(ports).map_err(|_| format!("invalid range format for --expose: {spec}, error: invalid port"))?;
    for p in a..=b {
        exposed.insert(format!("{p}/{proto}"), Empty {});
    }
    Ok(())
}

/// What `-v` means: a bind or named volume (`src:dst[:opts]`), or an anonymous volume
/// at `dst`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeSpec {
    Bind(String),
    Anonymous(String),
}

pub fn parse_volume(spec: &str, cwd: &Path) -> Result<VolumeSpec, String> {
    let parts: Vec<&str> = spec.split(':').collect();
    if parts.iter().any(|p| p.is_empty()) {
        return Err(format!("invalid spec: {spec}: empty section between colons"));
    }
    match parts.len() {
        1 => Ok(VolumeSpec::Anonymous(parts[0].to_string())),
        2 | 3 => {
            let mut host = parts[0].to_string();
            // Relative host paths ("./data") are made absolute on the client.
            if host.starts_with('.') {
                host = cwd.join(&host).to_string_lossy().into_owned();
                host = normalize(&host);
            }
            let rest = parts[1..].join(":");
            Ok(VolumeSpec::Bind(format!("{host}:{rest}")))
        }
        _ => Err(format!("invalid spec: {spec}: too many colons")),
    }
}

/// Lexically cleans a path ("/a/./b/../c" → "/a/c").
fn normalize(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for part in p.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            x => out.push(x),
        }
    }
    format!("/{}", out.join("/"))
}

fn parse_bool_opt(key: &str, v: Option<&str>) -> Result<bool, String> {
    match v {
        None => Ok(true),
        Some(v) => berth_types::parse_bool(&v.to_ascii_lowercase())
            .ok_or_else(|| format!("invalid value for {key}: {v}")),
    }
}

/// `--mount type=bind,source=/a,target=/b,readonly,...`.
pub fn parse_mount(spec: &str) -> Result<Mount, String> {
    let mut m = Mount { kind: "volume".into(), ..Default::default() };
    let mut bind = BindOptions::default();
    let mut volume = VolumeOptions::default();
    let mut tmpfs = TmpfsOptions::default();
    let (mut has_bind, mut has_volume, mut has_tmpfs) = (false, false, false);
    for field in spec.split(',') {
        let (key, value) = match field.split_once('=') {
            Some((k, v)) => (k.trim().to_ascii_lowercase(), Some(v.trim())),
            None => (field.trim().to_ascii_lowercase(), None),
        };
        let need = || value.ok_or_else(|| format!("invalid field '{field}' must be a key=value pair"));
        match key.as_str() {
            "type" => m.kind = need()?.to_ascii_lowercase(),
            "source" | "src" => m.source = need()?.to_string(),
            "target" | "dst" | "destination" => m.target = need()?.to_string(),
            "readonly" | "ro" => m.read_only = parse_bool_opt(&key, value)?,
            "consistency" => m.consistency = need()?.to_string(),
            "bind-propagation" => {
                has_bind = true;
                bind.propagation = need()?.to_ascii_lowercase();
            }
            "bind-nonrecursive" => {
                has_bind = true;
                bind.non_recursive = parse_bool_opt(&key, value)?;
            }
            "bind-recursive" => {
                has_bind = true;
                match need()? {
                    "enabled" => {}
                    "disabled" => bind.non_recursive = true,
                    "writable" => bind.read_only_non_recursive = true,
                    "readonly" => bind.read_only_force_recursive = true,
                    other => return Err(format!("invalid value for {key}: {other} (must be \"enabled\", \"disabled\", \"writable\", or \"readonly\")")),
                }
            }
            "bind-create-src" => {
                has_bind = true;
                bind.create_mountpoint = parse_bool_opt(&key, value)?;
            }
            "volume-nocopy" => {
                has_volume = true;
                volume.no_copy = parse_bool_opt(&key, value)?;
            }
            "volume-label" => {
                has_volume = true;
                let (k, v) = need()?.split_once('=').unwrap_or((need()?, ""));
                volume.labels.get_or_insert_with(BTreeMap::new).insert(k.to_string(), v.to_string());
            }
            "volume-driver" => {
                has_volume = true;
                volume.driver_config.get_or_insert_with(VolumeDriverConfig::default).name = need()?.to_string();
            }
            "volume-opt" => {
                has_volume = true;
                let (k, v) = need()?.split_once('=').unwrap_or((need()?, ""));
                volume
                    .driver_config
                    .get_or_insert_with(VolumeDriverConfig::default)
                    .options
                    .get_or_insert_with(BTreeMap::new)
                    .insert(k.to_string(), v.to_string());
            }
            "volume-subpath" => {
                has_volume = true;
                volume.subpath = need()?.to_string();
            }
            "tmpfs-size" => {
                has_tmpfs = true;
                tmpfs.size_bytes = units::ram_in_bytes(need()?).map_err(|e| format!("invalid value for {key}: {e}"))?;
            }
            "tmpfs-mode" => {
                has_tmpfs = true;
                tmpfs.mode = u32::from_str_radix(need()?, 8).map_err(|_| format!("invalid value for {key}: {}", need().unwrap_or_default()))?;
            }
            _ => return Err(format!("unexpected key '{key}' in '{field}'")),
        }
    }
    if m.target.is_empty() {
        return Err("target is required".into());
    }
    if !matches!(m.kind.as_str(), "bind" | "volume" | "tmpfs" | "npipe" | "image" | "cluster") {
        return Err(format!("invalid mount type: {:?}", m.kind));
    }
    if has_bind {
        if m.kind != "bind" {
            return Err(format!("cannot mix 'bind-*' options with mount type '{}'", m.kind));
        }
        m.bind_options = Some(bind);
    }
    if has_volume {
        if m.kind != "volume" {
            return Err(format!("cannot mix 'volume-*' options with mount type '{}'", m.kind));
        }
        m.volume_options = Some(volume);
    }
    if has_tmpfs {
        if m.kind != "tmpfs" {
            return Err(format!("cannot mix 'tmpfs-*' options with mount type '{}'", m.kind));
        }
        m.tmpfs_options = Some(tmpfs);
    }
    if m.kind == "bind" && m.source.is_empty() {
        return Err("source is required when specifying bind mount".into());
    }
    Ok(m)
}

/// `--tmpfs /run[:opts]`.
pub fn parse_tmpfs(spec: &str) -> Result<(String, String), String> {
    let (dst, opts) = spec.split_once(':').unwrap_or((spec, ""));
    if !dst.starts_with('/') {
        return Err(format!("invalid mount path for tmpfs: {dst:?}: must be absolute"));
    }
    Ok((dst.to_string(), opts.to_string()))
}

/// `--restart no|always|unless-stopped|on-failure[:N]`.
pub fn parse_restart(s: &str) -> Result<RestartPolicy, String> {
    let (name, count) = match s.split_once(':') {
        Some((n, c)) => (n, Some(c)),
        None => (s, None),
    };
    let maximum_retry_count = match count {
        Some(c) => c.parse().map_err(|_| "invalid restart policy format: maximum retry count must be an integer".to_string())?,
        None => 0,
    };
    match name {
        "" | "no" | "always" | "unless-stopped" => {
            if count.is_some() {
                return Err("invalid restart policy format: maximum retry count can only be used with 'on-failure'".to_string());
            }
        }
        "on-failure" => {}
        other => return Err(format!("invalid restart policy format: no such policy: {other}")),
    }
    Ok(RestartPolicy { name: if name.is_empty() { "no".into() } else { name.into() }, maximum_retry_count })
}

const ULIMITS: &[&str] = &[
    "as", "core", "cpu", "data", "fsize", "locks", "memlock", "msgqueue", "nice", "nofile", "nproc", "rss",
    "rtprio", "rttime", "sigpending", "stack",
];

/// `--ulimit nofile=1024[:2048]`.
pub fn parse_ulimit(s: &str) -> Result<Ulimit, String> {
    let (name, limits) = s.split_once('=').ok_or_else(|| format!("invalid ulimit argument: {s}"))?;
    if !ULIMITS.contains(&name) {
        return Err(format!("invalid ulimit type: {name}"));
    }
    let (soft, hard) = limits.split_once(':').unwrap_or((limits, limits));
    let soft: i64 = soft.parse().map_err(|_| format!("invalid ulimit soft value: {soft}"))?;
    let hard: i64 = hard.parse().map_err(|_| format!("invalid ulimit hard value: {hard}"))?;
    if soft > hard {
        return Err(format!("ulimit soft limit must be less than or equal to hard limit: {soft} > {hard}"));
    }
    Ok(Ulimit { name: name.into(), soft, hard })
}

/// `--device /dev/x[:/dev/y][:rwm]`.
pub fn parse_device(s: &str) -> Result<DeviceMapping, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let valid_mode = |m: &str| !m.is_empty() && m.chars().all(|c| matches!(c, 'r' | 'w' | 'm'));
    let (src, dst, perms) = match parts.as_slice() {
        [src] => (*src, *src, "rwm"),
        [src, x] if valid_mode(x) => (*src, *src, *x),
        [src, dst] => (*src, *dst, "rwm"),
        [src, dst, m] if valid_mode(m) => (*src, *dst, *m),
        [_, _, m] => return Err(format!("bad mode specified: {m}")),
        _ => return Err(format!("bad format for path: {s}")),
    };
    if !dst.starts_with('/') {
        return Err(format!("{dst} is not an absolute path"));
    }
    Ok(DeviceMapping { path_on_host: src.into(), path_in_container: dst.into(), cgroup_permissions: perms.into() })
}

/// `--device-read-bps /dev/sda:1mb` (or iops when `bytes` is false).
pub fn parse_throttle(s: &str, bytes: bool) -> Result<ThrottleDevice, String> {
    let (path, rate) = s.split_once(':').ok_or_else(|| format!("bad format: {s}"))?;
    if !path.starts_with("/dev/") {
        return Err(format!("bad format for device path: {s}"));
    }
    let rate = if bytes {
        units::ram_in_bytes(rate).map_err(|_| format!("invalid rate for device: {s}. The correct format is <device-path>:<number>[<unit>]. Number must be a positive integer. Unit is optional and can be kb, mb, or gb"))? as u64
    } else {
        rate.parse().map_err(|_| format!("invalid rate for device: {s}. The correct format is <device-path>:<number>. Number must be a positive integer"))?
    };
    Ok(ThrottleDevice { path: path.into(), rate })
}

pub fn parse_weight_device(s: &str) -> Result<WeightDevice, String> {
    let (path, w) = s.split_once(':').ok_or_else(|| format!("bad format: {s}"))?;
    if !path.starts_with("/dev/") {
        return Err(format!("bad format for device path: {s}"));
    }
    let weight: u16 = w.parse().map_err(|_| format!("invalid weight for device: {s}"))?;
    if weight != 0 && !(10..=1000).contains(&weight) {
        return Err(format!("invalid weight for device: {s}"));
    }
    Ok(WeightDevice { path: path.into(), weight })
}

/// `--add-host name:ip` or `name=ip` (`host-gateway` allowed); kept as `name:ip`.
pub fn parse_add_host(s: &str) -> Result<String, String> {
    let (name, ip) = match s.split_once('=') {
        Some(x) => x,
        None => s.split_once(':').ok_or_else(|| format!("bad format for add-host: {s:?}"))?,
    };
    if name.is_empty() || ip.is_empty() {
        return Err(format!("bad format for add-host: {s:?}"));
    }
    let bare = ip.trim_start_matches('[').trim_end_matches(']');
    if bare != "host-gateway" && bare.parse::<std::net::IpAddr>().is_err() {
        return Err(format!("invalid IP address in add-host: {ip:?}"));
    }
    Ok(format!("{name}:{bare}"))
}

/// `--cpus 1.5` → NanoCPUs.
pub fn parse_cpus(s: &str) -> Result<i64, String> {
    let v: f64 = s.parse().map_err(|_| format!("failed to parse {s} as a rational number"))?;
    if v.is_nan() || v < 0.0 {
        return Err(format!("failed to parse {s} as a rational number"));
    }
    let nano = (v * 1e9).round();
    if nano > i64::MAX as f64 {
        return Err("value is too precise to convert to nanoseconds".into());
    }
    Ok(nano as i64)
}

/// A `bytes`-typed flag (`64m`); `-1` allowed where docker allows it (memory-swap).
pub fn parse_bytes(s: &str) -> Result<i64, String> {
    if s == "-1" {
        return Ok(-1);
    }
    units::ram_in_bytes(s).map_err(|e| e.to_string())
}

/// A Go duration flag (`--health-interval 30s`), in nanoseconds.
pub fn parse_duration(s: &str) -> Result<i64, String> {
    units::parse_go_duration(s).map_err(|e| e.to_string())
}

/// docker's `term.ToBytes`: "ctrl-p,ctrl-q" → [16, 17]; single characters allowed.
pub fn detach_keys(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    for key in s.split(',') {
        let k = key.trim();
        if let Some(c) = k.strip_prefix("ctrl-") {
            let code = match c {
                "@" => 0,
                "[" => 27,
                "\\" => 28,
                "]" => 29,
                "^" => 30,
                "_" => 31,
                c if c.len() == 1 && c.as_bytes()[0].is_ascii_lowercase() => c.as_bytes()[0] - b'a' + 1,
                _ => return Err(format!("Unknown character: '{k}'")),
            };
            out.push(code);
        } else if k.len() == 1 {
            out.push(k.as_bytes()[0]);
        } else {
            return Err(format!("Unknown character: '{k}'"));
        }
    }
    Ok(out)
}

/// An image reference split into what `POST /images/create` wants: the name
/// (`fromImage`) and the tag or digest (`tag`).
pub fn split_reference(r: &str) -> (String, String) {
    if let Some((name, digest)) = r.split_once('@') {
        return (name.to_string(), digest.to_string());
    }
    match r.rsplit_once(':') {
        Some((name, tag)) if !tag.contains('/') => (name.to_string(), tag.to_string()),
        _ => (r.to_string(), String::new()),
    }
}

/// Validates a reference's syntax enough to give docker's error early.
pub fn validate_reference(r: &str) -> Result<(), String> {
    let (name, _) = split_reference(r);
    let repo = name.rsplit_once('/').map(|(_, p)| p).unwrap_or(&name);
    if name.is_empty() || repo.chars().any(|c| c.is_ascii_uppercase()) && !name.contains('/') {
        return Err(format!("invalid reference format: repository name ({name}) must be lowercase"));
    }
    if r.chars().any(|c| c.is_whitespace()) || r.starts_with(':') || r.ends_with(':') {
        return Err("invalid reference format".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn publish(spec: &str) -> Result<(BTreeMap<String, Empty>, PortMap), String> {
        let mut e = BTreeMap::new();
        let mut b = PortMap::new();
        parse_publish(spec, &mut e, &mut b)?;
        Ok((e, b))
    }

    fn binding(ip: &str, port: &str) -> PortBinding {
        PortBinding { host_ip: ip.into(), host_port: port.into() }
    }

    #[test]
    fn publish_forms() {
        let (e, b) = publish("127.0.0.1:18099:80").unwrap();
        assert!(e.contains_key("80/tcp"));
        assert_eq!(b["80/tcp"], Some(vec![binding("127.0.0.1", "18099")]));
        let (_, b) = publish("8080:80/udp").unwrap();
        assert_eq!(b["80/udp"], Some(vec![binding("", "8080")]));
        let (_, b) = publish("80").unwrap();
        assert_eq!(b["80/tcp"], Some(vec![binding("", "")]));
        let (_, b) = publish("8000-8001:80-81").unwrap();
        assert_eq!(b["81/tcp"], Some(vec![binding("", "8001")]));
        let (_, b) = publish("8000-8010:80").unwrap();
        assert_eq!(b["80/tcp"], Some(vec![binding("", "8000-8010")]));
        let (_, b) = publish("[::1]:8080:80").unwrap();
        assert_eq!(b["80/tcp"], Some(vec![binding("::1", "8080")]));
        assert!(publish("8000-8002:80-81").is_err());
        assert!(publish("1.2.3:80:80").is_err());
        assert!(publish("80/xyz").is_err());
        assert!(publish("abc").is_err());
    }

    #[test]
    fn env_and_files() {
        let mut env = Env::new();
        env.insert("HOME".into(), "/root".into());
        assert_eq!(env_entry("A=1", &env), "A=1");
        assert_eq!(env_entry("HOME", &env), "HOME=/root");
        assert_eq!(env_entry("NOPE", &env), "NOPE");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("env");
        std::fs::write(&p, "# comment\n\nA=1\n  B=two words\nHOME\nUNSET\n").unwrap();
        assert_eq!(read_kv_file(p.to_str().unwrap(), Some(&env)).unwrap(), vec!["A=1", "B=two words", "HOME=/root"]);
        std::fs::write(&p, "BAD KEY=1\n").unwrap();
        assert_eq!(read_kv_file(p.to_str().unwrap(), Some(&env)).unwrap_err(), "variable 'BAD KEY' contains whitespaces");
        assert!(read_kv_file("/nonexistent/x", None).unwrap_err().contains("no such file or directory"));
    }

    #[test]
    fn volumes_and_mounts() {
        let cwd = Path::new("/home/u/proj");
        assert_eq!(parse_volume("/data", cwd).unwrap(), VolumeSpec::Anonymous("/data".into()));
        assert_eq!(parse_volume("vol:/v", cwd).unwrap(), VolumeSpec::Bind("vol:/v".into()));
        assert_eq!(parse_volume("./d:/v:ro", cwd).unwrap(), VolumeSpec::Bind("/home/u/proj/d:/v:ro".into()));
        assert!(parse_volume("a::b", cwd).unwrap_err().contains("empty section"));
        assert!(parse_volume("a:b:c:d", cwd).unwrap_err().contains("too many colons"));

        let m = parse_mount("type=bind,source=/a,target=/b,readonly,bind-propagation=rshared").unwrap();
        assert_eq!((m.kind.as_str(), m.source.as_str(), m.target.as_str(), m.read_only), ("bind", "/a", "/b", true));
        assert_eq!(m.bind_options.unwrap().propagation, "rshared");
        let m = parse_mount("type=tmpfs,dst=/t,tmpfs-size=64m,tmpfs-mode=1770").unwrap();
        let t = m.tmpfs_options.unwrap();
        assert_eq!((t.size_bytes, t.mode), (64 << 20, 0o1770));
        let m = parse_mount("src=v,dst=/d,volume-nocopy,ro=false").unwrap();
        assert_eq!(m.kind, "volume");
        assert!(!m.read_only);
        assert!(m.volume_options.unwrap().no_copy);
        assert_eq!(parse_mount("type=bind,src=/a").unwrap_err(), "target is required");
        assert!(parse_mount("type=volume,dst=/a,tmpfs-size=1").is_err());
        assert!(parse_mount("type=bind,dst=/a,bogus=1").unwrap_err().contains("unexpected key"));
        assert_eq!(parse_tmpfs("/run:rw,size=64m").unwrap(), ("/run".into(), "rw,size=64m".into()));
        assert!(parse_tmpfs("run").is_err());
    }

    #[test]
    fn restart_ulimit_device_host_cpus() {
        assert_eq!(parse_restart("on-failure:3").unwrap(), RestartPolicy { name: "on-failure".into(), maximum_retry_count: 3 });
        assert_eq!(parse_restart("always").unwrap().name, "always");
        assert!(parse_restart("sometimes").is_err());
        assert!(parse_restart("on-failure:x").is_err());
        assert_eq!(parse_ulimit("nofile=1024:2048").unwrap(), Ulimit { name: "nofile".into(), soft: 1024, hard: 2048 });
        assert_eq!(parse_ulimit("nproc=10").unwrap(), Ulimit { name: "nproc".into(), soft: 10, hard: 10 });
        assert!(parse_ulimit("bogus=1").unwrap_err().contains("invalid ulimit type"));
        assert!(parse_ulimit("nofile=10:5").is_err());
        let d = parse_device("/dev/fuse:/dev/f:rw").unwrap();
        assert_eq!((d.path_on_host.as_str(), d.path_in_container.as_str(), d.cgroup_permissions.as_str()), ("/dev/fuse", "/dev/f", "rw"));
        assert_eq!(parse_device("/dev/null:r").unwrap().path_in_container, "/dev/null");
        assert_eq!(parse_add_host("db:10.0.0.2").unwrap(), "db:10.0.0.2");
        assert_eq!(parse_add_host("db=::1").unwrap(), "db:::1");
        assert_eq!(parse_add_host("gw:host-gateway").unwrap(), "gw:host-gateway");
        assert!(parse_add_host("db:notanip").is_err());
        assert_eq!(parse_cpus("1.5").unwrap(), 1_500_000_000);
        assert!(parse_cpus("x").is_err());
        assert_eq!(parse_bytes("-1").unwrap(), -1);
        assert_eq!(parse_throttle("/dev/sda:1mb", true).unwrap().rate, 1 << 20);
        assert_eq!(parse_weight_device("/dev/sda:500").unwrap().weight, 500);
    }

    #[test]
    fn detach_keys_and_refs() {
        assert_eq!(detach_keys("ctrl-p,ctrl-q").unwrap(), vec![16, 17]);
        assert_eq!(detach_keys("ctrl-a,x").unwrap(), vec![1, b'x']);
        assert_eq!(detach_keys("ctrl-@,ctrl-[").unwrap(), vec![0, 27]);
        assert!(detach_keys("ctrl-longer").is_err());
        assert_eq!(split_reference("127.0.0.1:5000/trace/bb:1"), ("127.0.0.1:5000/trace/bb".into(), "1".into()));
        assert_eq!(split_reference("127.0.0.1:5000/trace/bb"), ("127.0.0.1:5000/trace/bb".into(), "".into()));
        assert_eq!(split_reference("busybox@sha256:abc"), ("busybox".into(), "sha256:abc".into()));
        assert!(validate_reference("BusyBox").is_err());
        assert!(validate_reference("busybox:latest").is_ok());
    }
}
