//! Host devices in a container: `--device`, `--device-cgroup-rule` and the host's whole
//! /dev for `--privileged`, turned into OCI `linux.devices` nodes and device cgroup
//! rules the way Docker does.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

use berth_types::container::{DeviceMapping, HostConfig};
use serde_json::{Value, json};

use crate::error::{Error, Result};

/// What create checks before anything is made: access modes, absolute paths, rule syntax.
pub fn validate(hc: &HostConfig) -> Result<()> {
    for d in hc.devices.iter().flatten() {
        mode(d)?;
        let inside = in_container(d);
        if !inside.starts_with('/') {
            return Err(Error::invalid(format!("invalid device mapping: device path {inside} must be absolute")));
        }
    }
    for r in hc.device_cgroup_rules.iter().flatten() {
        parse_rule(r)?;
    }
    Ok(())
}

fn in_container(d: &DeviceMapping) -> &str {
    if d.path_in_container.is_empty() { &d.path_on_host } else { &d.path_in_container }
}

fn mode(d: &DeviceMapping) -> Result<&str> {
    let m = if d.cgroup_permissions.is_empty() { "rwm" } else { d.cgroup_permissions.as_str() };
    if m.len() > 3 || !m.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        return Err(Error::invalid(format!("invalid device mode: {m}")));
    }
    Ok(m)
}

/// `type major:minor access`, e.g. `c 1:3 mr` or `a *:* rwm`, as a cgroup rule.
fn parse_rule(s: &str) -> Result<Value> {
    let bad = || Error::invalid(format!("invalid device cgroup rule format: '{s}'"));
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [typ, numbers, access] = parts.as_slice() else { return Err(bad()) };
    if !matches!(*typ, "a" | "b" | "c") {
        return Err(bad());
    }
    let (major, minor) = numbers.split_once(':').ok_or_else(bad)?;
    let number = |n: &str| -> Result<Value> {
        match n {
            "*" => Ok(Value::Null),
            n => n.parse::<i64>().map(|v| json!(v)).map_err(|_| bad()),
        }
    };
    let (major, minor) = (number(major)?, number(minor)?);
    if access.is_empty() || access.len() > 3 || !access.chars().all(|c| matches!(c, 'r' | 'w' | 'm')) {
        return Err(bad());
    }
    let mut rule = json!({"allow": true, "type": typ, "access": access});
    if !major.is_null() {
        rule["major"] = major;
    }
    if !minor.is_null() {
        rule["minor"] = minor;
    }
    Ok(rule)
}

/// The device node whose host file has `meta`, to appear at `inside`.
fn node(inside: &Path, meta: &std::fs::Metadata) -> Option<Value> {
    let ft = meta.file_type();
    let typ = if ft.is_char_device() {
        "c"
    } else if ft.is_block_device() {
        "b"
    } else {
        return None;
    };
    let rdev = meta.rdev();
    Some(json!({
        "path": inside,
        "type": typ,
        "major": nix::sys::stat::major(rdev),
        "minor": nix::sys::stat::minor(rdev),
        "fileMode": meta.mode() & 0o7777,
        "uid": meta.uid(),
        "gid": meta.gid(),
    }))
}

fn rule_for(node: &Value, access: &str) -> Value {
    json!({"allow": true, "type": node["type"], "major": node["major"], "minor": node["minor"], "access": access})
}

/// Every device node under `dir` (recursively), mapped below `inside`. What Docker
/// skips when it gathers /dev is skipped here too; /dev/ptmx stays the runtime's
/// link to the container's own devpts.
fn walk(dir: &Path, inside: &Path, out: &mut Vec<Value>, skip_special: bool) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let meta = match std::fs::symlink_metadata(entry.path()) {
            Ok(m) => m,
            Err(_) => continue,
        };
        if meta.is_dir() {
            if skip_special && matches!(name.as_ref(), "pts" | "shm" | "fd" | "mqueue" | ".lxc" | ".lxd-mounts" | ".udev") {
                continue;
            }
            walk(&entry.path(), &inside.join(name.as_ref()), out, skip_special)?;
        } else if !(skip_special && matches!(name.as_ref(), "console" | "ptmx"))
            && let Some(n) = node(&inside.join(name.as_ref()), &meta)
        {
            out.push(n);
        }
    }
    Ok(())
}

/// The `linux.devices` nodes and extra cgroup rules of a container.
pub fn gather(hc: &HostConfig) -> Result<(Vec<Value>, Vec<Value>)> {
    let mut nodes = Vec::new();
    let mut rules = Vec::new();
    if hc.privileged {
        walk(Path::new("/dev"), Path::new("/dev"), &mut nodes, true)
            .map_err(|e| Error::system(format!("error gathering the host's devices: {e}")))?;
    }
    for d in hc.devices.iter().flatten() {
        let access = mode(d)?;
        let host = PathBuf::from(&d.path_on_host);
        let inside = PathBuf::from(in_container(d));
        let gathering = |e: &dyn std::fmt::Display| {
            Error::invalid(format!("error gathering device information while adding custom device \"{}\": {e}", d.path_on_host))
        };
        let meta = std::fs::metadata(&host).map_err(|e| {
            let text = match e.kind() {
                std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
                _ => e.to_string(),
            };
            gathering(&text)
        })?;
        let mut found = Vec::new();
        if meta.is_dir() {
            walk(&host, &inside, &mut found, false).map_err(|e| gathering(&e))?;
        } else {
            found.push(node(&inside, &meta).ok_or_else(|| gathering(&"not a device node"))?);
        }
        for n in found {
            rules.push(rule_for(&n, access));
            nodes.retain(|o: &Value| o["path"] != n["path"]);
            nodes.push(n);
        }
    }
    for r in hc.device_cgroup_rules.iter().flatten() {
        rules.push(parse_rule(r)?);
    }
    Ok((nodes, rules))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(host: &str, inside: &str, perms: &str) -> DeviceMapping {
        DeviceMapping { path_on_host: host.into(), path_in_container: inside.into(), cgroup_permissions: perms.into() }
    }

    #[test]
    fn rules_parse_as_docker_writes_them() {
        assert_eq!(parse_rule("c 1:3 mr").unwrap(), json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "mr"}));
        assert_eq!(parse_rule("a *:* rwm").unwrap(), json!({"allow": true, "type": "a", "access": "rwm"}));
        assert_eq!(parse_rule("b 8:* r").unwrap(), json!({"allow": true, "type": "b", "major": 8, "access": "r"}));
        for bad in ["", "c 1:3", "x 1:3 r", "c 1 r", "c a:3 r", "c 1:3 rx", "c 1:3 rwmr"] {
            assert!(parse_rule(bad).unwrap_err().message.contains("invalid device cgroup rule format"), "{bad}");
        }
    }

    #[test]
    fn a_device_maps_with_its_numbers_and_access() {
        let hc = HostConfig { devices: Some(vec![mapping("/dev/null", "/dev/mynull", "r")]), ..Default::default() };
        let (nodes, rules) = gather(&hc).unwrap();
        assert_eq!(nodes.len(), 1);
        assert_eq!(nodes[0]["path"], "/dev/mynull");
        assert_eq!((nodes[0]["type"].as_str(), nodes[0]["major"].as_u64(), nodes[0]["minor"].as_u64()), (Some("c"), Some(1), Some(3)));
        assert_eq!(rules, vec![json!({"allow": true, "type": "c", "major": 1, "minor": 3, "access": "r"})]);
    }

    #[test]
    fn bad_devices_are_refused_with_dockers_words() {
        let hc = HostConfig { devices: Some(vec![mapping("/dev/no-such-device", "", "")]), ..Default::default() };
        assert_eq!(
            gather(&hc).unwrap_err().message,
            "error gathering device information while adding custom device \"/dev/no-such-device\": no such file or directory"
        );
        let hc = HostConfig { devices: Some(vec![mapping("/etc/hostname", "", "")]), ..Default::default() };
        assert!(gather(&hc).unwrap_err().message.ends_with("not a device node"));
        let hc = HostConfig { devices: Some(vec![mapping("/dev/null", "", "rwx")]), ..Default::default() };
        assert_eq!(validate(&hc).unwrap_err().message, "invalid device mode: rwx");
        let hc = HostConfig { devices: Some(vec![mapping("/dev/null", "relative", "")]), ..Default::default() };
        assert!(validate(&hc).unwrap_err().message.contains("must be absolute"));
    }

    #[test]
    fn privileged_gets_the_hosts_devices_but_not_its_ptys() {
        let hc = HostConfig { privileged: true, ..Default::default() };
        let (nodes, rules) = gather(&hc).unwrap();
        assert!(rules.is_empty());
        assert!(nodes.iter().any(|n| n["path"] == "/dev/null"));
        assert!(!nodes.iter().any(|n| n["path"].as_str().unwrap().starts_with("/dev/pts/")));
        assert!(!nodes.iter().any(|n| n["path"] == "/dev/console"));
    }
}
