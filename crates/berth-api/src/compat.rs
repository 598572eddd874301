//! Per-version semantics: what a request made under `/v1.NN/` gets, as dockerd gives it.
//!
//! Every behaviour or response shape that depends on the request's API version is
//! decided here, in one place, from Docker's version history
//! (docs/api-version-history.md) and dockerd's routers. Handlers call these
//! functions on the request body (as JSON, before it is read into berth's types) or on
//! the answer (as JSON, after berth's types are written), or ask a question
//! (`stop_signal`, `logs_multiplexed`, ...). Versions are `major*100+minor`
//! (`ApiVersion(141)` is 1.41); berth serves 1.24 to 1.51.

use serde_json::{Map, Value};

use crate::ApiVersion;
use crate::util::{ApiError, Params, invalid};

impl ApiVersion {
    /// The request's version is older than 1.`minor`.
    pub fn before(self, minor: u32) -> bool {
        self.0 < 100 + minor
    }

    /// The request's version is 1.`minor` or newer.
    pub fn since(self, minor: u32) -> bool {
        !self.before(minor)
    }
}

fn obj(v: &mut Value) -> Option<&mut Map<String, Value>> {
    v.as_object_mut()
}

fn mounts(body: &mut Value) -> impl Iterator<Item = &mut Map<String, Value>> {
    body.get_mut("HostConfig")
        .and_then(|h| h.get_mut("Mounts"))
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
        .filter_map(Value::as_object_mut)
}

fn is_set(v: Option<&Value>) -> bool {
    !matches!(v, None | Some(Value::Null))
}

/// `POST /containers/create`: the body as the request's version means it. Returns the
/// warnings dockerd adds to the answer; refuses what that version refuses.
pub fn container_create(v: ApiVersion, body: &mut Value) -> Result<Vec<String>, ApiError> {
    let mut warnings = Vec::new();
    if !body.is_object() {
        return Ok(warnings);
    }
    if !body.get("HostConfig").is_some_and(Value::is_object) {
        body["HostConfig"] = Value::Object(Map::new());
    }
    let hc = body["HostConfig"].as_object_mut().expect("object");
    // 1.25: AutoRemove is new; older clients remove the container themselves.
    if v.before(25) {
        hc.remove("AutoRemove");
    }
    if v.before(40) {
        // Older clients expect IPC namespaces to be shareable by default.
        if hc.get("IpcMode").and_then(Value::as_str).unwrap_or("").is_empty() {
            hc.insert("IpcMode".into(), "shareable".into());
        }
        hc.remove("KernelMemoryTCP");
    }
    if v.before(42) {
        // ConsoleSize is honoured from 1.42 on.
        hc.remove("ConsoleSize");
    }
    if v.before(43) {
        hc.remove("Annotations");
    }
    for m in mounts(body) {
        let kind = m.get("Type").and_then(Value::as_str).unwrap_or("").to_string();
        if v.before(40)
            && let Some(b) = m.get_mut("BindOptions").and_then(Value::as_object_mut)
        {
            b.remove("NonRecursive");
        }
        if v.before(42) {
            if let Some(b) = m.get_mut("BindOptions").and_then(Value::as_object_mut) {
                b.remove("CreateMountpoint");
            }
            // Not validated before 1.42: dropped so that validation passes.
            if kind != "volume" {
                m.remove("VolumeOptions");
            }
            if kind != "tmpfs" {
                m.remove("TmpfsOptions");
            }
        } else {
            for (field, wants) in [("VolumeOptions", "volume"), ("BindOptions", "bind"), ("TmpfsOptions", "tmpfs")] {
                if is_set(m.get(field)) && kind != wants {
                    return Err(invalid(format!("{field} must not be specified on mount type {kind:?}")));
                }
            }
        }
        if v.before(44)
            && kind == "bind"
            && m.get("BindOptions").and_then(|b| b.get("ReadOnlyForceRecursive")).and_then(Value::as_bool) == Some(true)
        {
            return Err(invalid("BindOptions.ReadOnlyForceRecursive needs API v1.44 or newer"));
        }
        if v.before(45) && m.get("VolumeOptions").and_then(|o| o.get("Subpath")).and_then(Value::as_str).is_some_and(|s| !s.is_empty()) {
            return Err(invalid("VolumeOptions.Subpath needs API v1.45 or newer"));
        }
        if v.before(46)
            && let Some(t) = m.get_mut("TmpfsOptions").and_then(Value::as_object_mut)
        {
            t.remove("Options");
        }
    }
    if v.before(44) {
        if let Some(h) = body.get_mut("Healthcheck").and_then(Value::as_object_mut) {
            h.remove("StartInterval");
        }
        let eps = body.get("NetworkingConfig").and_then(|n| n.get("EndpointsConfig")).and_then(Value::as_object);
        if let Some(eps) = eps
            && eps.len() > 1
        {
            let names: Vec<&str> = eps.keys().map(String::as_str).collect();
            return Err(invalid(format!("Container cannot be created with multiple network endpoints: {}", names.join(", "))));
        }
    }
    if let Some(w) = mac_address(v, body)? {
        warnings.push(w);
    }
    if v.before(48) {
        // GwPriority came in 1.48.
        if let Some(eps) = body.get_mut("NetworkingConfig").and_then(|n| n.get_mut("EndpointsConfig")).and_then(Value::as_object_mut) {
            for ep in eps.values_mut().filter_map(Value::as_object_mut) {
                ep.remove("GwPriority");
            }
        }
    }
    Ok(warnings)
}

/// The container-wide `MacAddress` moves to the endpoint of the container's network
/// (1.44 made it per endpoint); before 1.44 an endpoint's own MacAddress is ignored.
fn mac_address(v: ApiVersion, body: &mut Value) -> Result<Option<String>, ApiError> {
    let mac = body.get("MacAddress").and_then(Value::as_str).unwrap_or("").to_string();
    let mode = body["HostConfig"].get("NetworkMode").and_then(Value::as_str).unwrap_or("").to_string();
    let net = if mode.is_empty() || mode == "default" { "bridge".to_string() } else { mode.clone() };
    let private = !matches!(net.as_str(), "host" | "none") && !net.starts_with("container:");
    if !body.get("NetworkingConfig").is_some_and(Value::is_object) {
        body["NetworkingConfig"] = Value::Object(Map::new());
    }
    let nc = body["NetworkingConfig"].as_object_mut().expect("object");
    if !nc.get("EndpointsConfig").is_some_and(Value::is_object) {
        nc.insert("EndpointsConfig".into(), Value::Object(Map::new()));
    }
    let eps = nc.get_mut("EndpointsConfig").and_then(Value::as_object_mut).expect("object");
    // "default" names the default network, as the CLI sends it.
    if let Some(ep) = eps.remove("default") {
        eps.insert(net.clone(), ep);
    }
    if v.before(44) {
        if mac.is_empty() {
            for ep in eps.values_mut().filter_map(Value::as_object_mut) {
                ep.remove("MacAddress");
            }
            return Ok(None);
        }
        if !private {
            return Err(invalid("conflicting options: mac-address and the network mode"));
        }
        let key = eps.keys().next().cloned().unwrap_or(net);
        let ep = eps.entry(key).or_insert_with(|| Value::Object(Map::new()));
        ep["MacAddress"] = Value::String(mac);
        return Ok(None);
    }
    if mac.is_empty() {
        return Ok(None);
    }
    if private {
        if !eps.is_empty() && !eps.contains_key(&net) {
            return Err(invalid("unable to migrate container-wide MAC address to a specific network: HostConfig.NetworkMode must match the identity of a network in NetworkSettings.Networks"));
        }
        let ep = eps.entry(net).or_insert_with(|| Value::Object(Map::new()));
        match ep.get("MacAddress").and_then(Value::as_str).unwrap_or("") {
            "" => ep["MacAddress"] = Value::String(mac),
            m if m == mac => {}
            _ => return Err(invalid("the container-wide MAC address must match the endpoint-specific MAC address for the main network, or be left empty")),
        }
    }
    if let Some(o) = obj(body) {
        o.remove("MacAddress");
    }
    Ok(Some("The container-wide MacAddress field is now deprecated. It should be specified in EndpointsConfig instead.".into()))
}

/// `POST /containers/{id}/update`.
pub fn container_update(v: ApiVersion, body: &mut Value) {
    if let Some(o) = obj(body)
        && v.before(40)
    {
        o.remove("PidsLimit");
    }
}

/// `POST /containers/{id}/exec`: ConsoleSize is honoured from 1.42 on.
pub fn exec_create(v: ApiVersion, body: &mut Value) {
    if let Some(o) = obj(body)
        && v.before(42)
    {
        o.remove("ConsoleSize");
    }
}

/// `POST /exec/{id}/start`: ConsoleSize in the start body is read from 1.42 on.
pub fn exec_start(v: ApiVersion, body: &mut Value) {
    if let Some(o) = obj(body)
        && v.before(42)
    {
        o.remove("ConsoleSize");
    }
}

/// `wait`: before 1.30 the answer's headers wait for the result too (then it is sent
/// whole); before 1.34 a failed removal (`condition=removed`) gives an empty body.
pub fn wait_legacy(v: ApiVersion) -> (bool, bool) {
    (v.before(30), v.before(34))
}

/// `stop`/`restart`: the `signal` parameter exists from 1.42 on.
pub fn stop_signal(v: ApiVersion, p: &Params) -> Option<String> {
    if v.before(42) { None } else { p.get("signal").filter(|s| !s.is_empty()).map(str::to_string) }
}

/// `wait`: before 1.30 there is no `condition` (it waits for not-running).
pub fn wait_condition(v: ApiVersion, p: &Params) -> String {
    if v.before(30) { String::new() } else { p.str("condition").to_string() }
}

/// `stats`: `one-shot` exists from 1.41 on.
pub fn stats_one_shot(v: ApiVersion, p: &Params) -> Result<bool, ApiError> {
    if v.before(41) { Ok(false) } else { p.bool("one-shot") }
}

/// Whether a stream without a TTY is announced as multiplexed (attach, exec start,
/// logs): the `application/vnd.docker.multiplexed-stream` type is 1.42's.
pub fn multiplexed_content_type(v: ApiVersion) -> bool {
    v.since(42)
}

/// `POST /volumes/prune`: before 1.42 every unused volume goes, named ones too.
pub fn volume_prune(v: ApiVersion, filters: &mut berth_types::filters::Filters) {
    if v.before(42) && filters.get("all").is_empty() {
        filters.add("all", "true");
    }
}

/// `GET /images/json` parameters: the singular `filter` (a reference glob) was removed
/// in 1.41; `shared-size` came in 1.42.
pub fn image_list_params(v: ApiVersion, p: &Params, filters: &mut berth_types::filters::Filters) -> Result<bool, ApiError> {
    if v.before(41)
        && let Some(f) = p.get("filter").filter(|f| !f.is_empty())
    {
        filters.add("reference", f);
    }
    if v.before(42) { Ok(false) } else { p.bool("shared-size") }
}

/// `GET /images/json` entries.
pub fn image_list(v: ApiVersion, list: &mut Value) {
    for img in list.as_array_mut().into_iter().flatten().filter_map(Value::as_object_mut) {
        let empty = |k: &str, img: &Map<String, Value>| img.get(k).and_then(Value::as_array).is_none_or(|a| a.is_empty());
        if v.before(43) && empty("RepoTags", img) && empty("RepoDigests", img) {
            img.insert("RepoTags".into(), serde_json::json!(["<none>:<none>"]));
            img.insert("RepoDigests".into(), serde_json::json!(["<none>@<none>"]));
        }
        if v.before(44) {
            let size = img.get("Size").cloned().unwrap_or(Value::from(0));
            img.insert("VirtualSize".into(), size);
        } else {
            img.remove("VirtualSize");
        }
        if v.before(48) {
            img.remove("Descriptor");
        }
        if v.before(51) {
            img.insert("Containers".into(), Value::from(-1));
        }
    }
}

/// Image config fields dockerd shows on every `GET /images/{name}/json` before 1.50
/// (whether set or not), and the ones it still always shows from 1.50 on.
const LEGACY_CONFIG_149: &[(&str, fn() -> Value)] = &[
    ("AttachStderr", || Value::Bool(false)),
    ("AttachStdin", || Value::Bool(false)),
    ("AttachStdout", || Value::Bool(false)),
    ("Cmd", || Value::Null),
    ("Domainname", || Value::String(String::new())),
    ("Entrypoint", || Value::Null),
    ("Env", || Value::Null),
    ("Hostname", || Value::String(String::new())),
    ("Image", || Value::String(String::new())),
    ("Labels", || Value::Null),
    ("OnBuild", || Value::Null),
    ("OpenStdin", || Value::Bool(false)),
    ("StdinOnce", || Value::Bool(false)),
    ("Tty", || Value::Bool(false)),
    ("User", || Value::String(String::new())),
    ("Volumes", || Value::Null),
    ("WorkingDir", || Value::String(String::new())),
];
const LEGACY_CONFIG_CURRENT: &[&str] = &["Cmd", "Entrypoint", "Env", "Labels", "OnBuild", "User", "Volumes", "WorkingDir"];
/// Fields of a container's Config that an image's config never has (1.50 omits them).
const NOT_IMAGE_CONFIG: &[&str] = &["Hostname", "Domainname", "AttachStdin", "AttachStdout", "AttachStderr", "Tty", "OpenStdin", "StdinOnce", "Image", "NetworkDisabled", "MacAddress", "StopTimeout"];

/// `GET /images/{name}/json`.
pub fn image_inspect(v: ApiVersion, img: &mut Value) {
    let Some(o) = obj(img) else { return };
    if v.before(44) {
        let size = o.get("Size").cloned().unwrap_or(Value::from(0));
        o.insert("VirtualSize".into(), size);
        if o.get("Created").and_then(Value::as_str).unwrap_or("").is_empty() {
            o.insert("Created".into(), "0001-01-01T00:00:00Z".into());
        }
    } else {
        o.remove("VirtualSize");
        if o.get("Created").and_then(Value::as_str) == Some("") {
            o.remove("Created");
        }
    }
    if v.before(45) {
        o.entry("Container").or_insert_with(|| Value::String(String::new()));
        o.entry("ContainerConfig").or_insert_with(|| {
            let mut c = Map::new();
            for (k, f) in LEGACY_CONFIG_149 {
                c.insert((*k).to_string(), f());
            }
            Value::Object(c)
        });
    } else {
        o.remove("Container");
        o.remove("ContainerConfig");
    }
    if v.before(48) {
        o.remove("Descriptor");
        o.remove("Manifests");
    }
    if let Some(cfg) = o.get_mut("Config").and_then(Value::as_object_mut) {
        if v.before(50) {
            for (k, f) in LEGACY_CONFIG_149 {
                cfg.entry((*k).to_string()).or_insert_with(f);
            }
        } else {
            for k in NOT_IMAGE_CONFIG {
                cfg.remove(*k);
            }
            for k in LEGACY_CONFIG_CURRENT {
                cfg.entry((*k).to_string()).or_insert(Value::Null);
            }
            for k in ["User", "WorkingDir"] {
                if cfg.get(k).is_some_and(Value::is_null) {
                    cfg.insert(k.into(), Value::String(String::new()));
                }
            }
        }
    }
}

/// Parameters that carry a platform: accepted from the version that introduced them
/// (pull/import 1.32, create 1.41, push 1.46, history/load/save 1.48, inspect 1.49);
/// older requests have them ignored, as dockerd ignores them.
pub fn platform_param<'a>(v: ApiVersion, since_minor: u32, p: &'a Params) -> &'a str {
    if v.before(since_minor) { "" } else { p.str("platform") }
}

/// A JSON-encoded OCI platform parameter (`{"os":"linux","architecture":"arm64"}`),
/// decoded with dockerd's checks; `None` when the parameter is absent or the
/// request's version predates it.
pub fn platform_json(v: ApiVersion, since_minor: u32, p: &Params) -> Result<Option<berth_registry::manifest::Platform>, ApiError> {
    let raw = p.str("platform");
    if v.before(since_minor) || raw.is_empty() {
        return Ok(None);
    }
    #[derive(serde::Deserialize)]
    struct P {
        #[serde(default)]
        os: String,
        #[serde(default)]
        architecture: String,
        #[serde(default)]
        variant: String,
        #[serde(default, rename = "os.version")]
        os_version: String,
        #[serde(default, rename = "os.features")]
        os_features: Vec<String>,
    }
    let x: P = serde_json::from_str(raw).map_err(|e| invalid(format!("failed to parse platform: {e}")))?;
    let optional = !x.variant.is_empty() || !x.os_version.is_empty() || !x.os_features.is_empty();
    if x.os.is_empty() && x.architecture.is_empty() && optional {
        return Err(invalid("optional platform fields provided, but OS and Architecture are missing"));
    }
    if x.os.is_empty() || x.architecture.is_empty() {
        return Err(invalid("both OS and Architecture must be provided"));
    }
    Ok(Some(berth_registry::manifest::Platform::new(&x.os, &x.architecture, Some(x.variant.as_str()).filter(|v| !v.is_empty())).normalised()))
}

/// `GET /containers/{id}/json`.
pub fn container_inspect(v: ApiVersion, c: &mut Value) {
    let id = c.get("Id").and_then(Value::as_str).unwrap_or("").to_string();
    let hostname = c.get("Config").and_then(|x| x.get("Hostname")).and_then(Value::as_str).unwrap_or("").to_string();
    if v.before(45) {
        // Before 1.45 the aliases on user-defined networks include the short ID and
        // the hostname.
        let short: String = id.chars().take(12).collect();
        if let Some(nets) = c.get_mut("NetworkSettings").and_then(|n| n.get_mut("Networks")).and_then(Value::as_object_mut) {
            for (name, ep) in nets.iter_mut() {
                if matches!(name.as_str(), "bridge" | "host" | "none" | "default") || name.starts_with("container:") {
                    continue;
                }
                let mut aliases: Vec<Value> = ep.get("Aliases").and_then(Value::as_array).cloned().unwrap_or_default();
                for a in [&short, &hostname] {
                    if !a.is_empty() && !aliases.iter().any(|x| x.as_str() == Some(a.as_str())) {
                        aliases.push(Value::String(a.clone()));
                    }
                }
                ep["Aliases"] = Value::Array(aliases);
            }
        }
    }
    if v.before(48)
        && let Some(o) = obj(c)
    {
        o.remove("ImageManifestDescriptor");
    }
}

/// `GET /system/df`: which object types to compute (`type` is 1.42's) and the shape.
pub fn disk_usage_types(v: ApiVersion, p: &Params) -> Result<Vec<String>, ApiError> {
    if v.before(42) {
        return Ok(Vec::new());
    }
    let types = p.values("type");
    for t in &types {
        if !matches!(t.as_str(), "container" | "image" | "volume" | "build-cache") {
            return Err(invalid(format!("unknown object type: {t}")));
        }
    }
    Ok(types)
}

pub fn disk_usage(v: ApiVersion, du: &mut Value) {
    let Some(o) = obj(du) else { return };
    if let Some(imgs) = o.get_mut("Images") {
        for img in imgs.as_array_mut().into_iter().flatten().filter_map(Value::as_object_mut) {
            if v.before(44) {
                let size = img.get("Size").cloned().unwrap_or(Value::from(0));
                img.insert("VirtualSize".into(), size);
            } else {
                img.remove("VirtualSize");
            }
        }
    }
    if let Some(bc) = o.get_mut("BuildCache").and_then(Value::as_array_mut) {
        let mut total = 0i64;
        for r in bc.iter_mut().filter_map(Value::as_object_mut) {
            total += r.get("Size").and_then(Value::as_i64).unwrap_or(0);
            if v.before(42) {
                // One `Parent` instead of the list of `Parents`.
                let parent = r.get("Parents").and_then(Value::as_array).and_then(|a| a.first()).cloned().unwrap_or(Value::String(String::new()));
                r.remove("Parents");
                r.insert("Parent".into(), parent);
            } else {
                r.remove("Parent");
            }
        }
        if v.before(42) && total > 0 {
            o.insert("BuilderSize".into(), Value::from(total));
        }
    }
}

/// `GET /info`.
pub fn info(v: ApiVersion, info: &mut Value) {
    let Some(o) = obj(info) else { return };
    if v.before(49) {
        if let Some(rc) = o.get_mut("RegistryConfig").and_then(Value::as_object_mut) {
            rc.entry("AllowNondistributableArtifactsCIDRs").or_insert(Value::Null);
            rc.entry("AllowNondistributableArtifactsHostnames").or_insert(Value::Null);
        }
    } else if let Some(rc) = o.get_mut("RegistryConfig").and_then(Value::as_object_mut) {
        rc.remove("AllowNondistributableArtifactsCIDRs");
        rc.remove("AllowNondistributableArtifactsHostnames");
    }
    if v.before(50) {
        o.entry("BridgeNfIptables").or_insert(Value::Bool(false));
        o.entry("BridgeNfIp6tables").or_insert(Value::Bool(false));
    } else {
        o.remove("BridgeNfIptables");
        o.remove("BridgeNfIp6tables");
    }
}

/// `GET /networks`: before 1.28 each network lists its containers.
pub fn network_list_detailed(v: ApiVersion) -> bool {
    v.before(28)
}

/// `POST /networks/{id}/connect`: an endpoint's `MacAddress` is honoured from 1.44 on
/// and `GwPriority` from 1.48 on.
pub fn network_connect(v: ApiVersion, body: &mut Value) {
    if let Some(ep) = body.get_mut("EndpointConfig").and_then(Value::as_object_mut) {
        if v.before(44) {
            ep.remove("MacAddress");
        }
        if v.before(48) {
            ep.remove("GwPriority");
        }
    }
}

/// `POST /build/prune`: `reserved-space` (and `max-used-space`, `min-free-space`)
/// replaced `keep-storage` in 1.48, which still reads it when `reserved-space` is not
/// given. Returns (reserved, max-used, min-free).
pub fn build_prune_space(v: ApiVersion, p: &Params) -> Result<(u64, u64, u64), ApiError> {
    let bytes = |k: &str| -> Result<u64, ApiError> {
        match p.get(k).filter(|s| !s.is_empty()) {
            None => Ok(0),
            Some(s) => s
                .parse::<i64>()
                .map(|n| n.max(0) as u64)
                .map_err(|_| invalid(format!("{k} is in bytes and expects an integer, got {s}: strconv.Atoi: parsing {s:?}: invalid syntax"))),
        }
    };
    if v.before(48) {
        return Ok((bytes("keep-storage")?, 0, 0));
    }
    let mut reserved = bytes("reserved-space")?;
    if reserved == 0 {
        reserved = bytes("keep-storage")?;
    }
    Ok((reserved, bytes("max-used-space")?, bytes("min-free-space")?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn create_drops_fields_older_versions_lack() {
        let mut b = json!({"Image": "x", "HostConfig": {"AutoRemove": true, "ConsoleSize": [10, 20], "Annotations": {"a": "b"}}});
        container_create(ApiVersion(124), &mut b).unwrap();
        assert_eq!(b["HostConfig"]["AutoRemove"], Value::Null);
        assert_eq!(b["HostConfig"]["IpcMode"], "shareable");
        assert_eq!(b["HostConfig"]["ConsoleSize"], Value::Null);
        let mut b = json!({"Image": "x", "HostConfig": {"AutoRemove": true, "ConsoleSize": [10, 20], "Annotations": {"a": "b"}}});
        container_create(ApiVersion(151), &mut b).unwrap();
        assert_eq!(b["HostConfig"]["AutoRemove"], true);
        assert_eq!(b["HostConfig"]["IpcMode"], Value::Null);
        assert_eq!(b["HostConfig"]["ConsoleSize"], json!([10, 20]));
        assert_eq!(b["HostConfig"]["Annotations"], json!({"a": "b"}));
    }

    #[test]
    fn mismatched_mount_options() {
        let body = || json!({"HostConfig": {"Mounts": [{"Type": "bind", "Source": "/tmp", "Target": "/x", "VolumeOptions": {"NoCopy": true}}]}});
        let mut b = body();
        assert!(container_create(ApiVersion(141), &mut b).is_ok());
        assert_eq!(b["HostConfig"]["Mounts"][0]["VolumeOptions"], Value::Null);
        let e = container_create(ApiVersion(142), &mut body()).err().unwrap();
        assert_eq!(e.0.message, "VolumeOptions must not be specified on mount type \"bind\"");
    }

    #[test]
    fn mac_address_moves_to_the_endpoint() {
        let mut b = json!({"MacAddress": "02:42:ac:11:00:99", "HostConfig": {"NetworkMode": "default"}});
        let w = container_create(ApiVersion(151), &mut b).unwrap();
        assert_eq!(w.len(), 1);
        assert_eq!(b["NetworkingConfig"]["EndpointsConfig"]["bridge"]["MacAddress"], "02:42:ac:11:00:99");
        assert_eq!(b["MacAddress"], Value::Null);
        let mut b = json!({"MacAddress": "02:42:ac:11:00:99"});
        assert!(container_create(ApiVersion(143), &mut b).unwrap().is_empty());
        assert_eq!(b["NetworkingConfig"]["EndpointsConfig"]["bridge"]["MacAddress"], "02:42:ac:11:00:99");
        let mut b = json!({"NetworkingConfig": {"EndpointsConfig": {"n1": {"MacAddress": "02:42:ac:11:00:98"}}}, "HostConfig": {"NetworkMode": "n1"}});
        container_create(ApiVersion(143), &mut b).unwrap();
        assert_eq!(b["NetworkingConfig"]["EndpointsConfig"]["n1"]["MacAddress"], Value::Null);
    }

    #[test]
    fn image_shapes() {
        let mut l = json!([{"Id": "sha256:1", "RepoTags": [], "RepoDigests": [], "Size": 5, "VirtualSize": 5, "Containers": 2}]);
        image_list(ApiVersion(142), &mut l);
        assert_eq!(l[0]["RepoTags"], json!(["<none>:<none>"]));
        assert_eq!(l[0]["VirtualSize"], 5);
        assert_eq!(l[0]["Containers"], -1);
        let mut l = json!([{"Id": "sha256:1", "RepoTags": [], "RepoDigests": [], "Size": 5, "VirtualSize": 5, "Containers": 2}]);
        image_list(ApiVersion(151), &mut l);
        assert_eq!(l[0]["RepoTags"], json!([]));
        assert_eq!(l[0].get("VirtualSize"), None);
        assert_eq!(l[0]["Containers"], 2);
        let mut i = json!({"Id": "x", "Size": 3, "Created": "", "Config": {"Hostname": "", "Cmd": ["sh"], "Tty": false}});
        image_inspect(ApiVersion(141), &mut i);
        assert_eq!(i["VirtualSize"], 3);
        assert_eq!(i["Created"], "0001-01-01T00:00:00Z");
        assert_eq!(i["Container"], "");
        assert_eq!(i["Config"]["Domainname"], "");
        let mut i = json!({"Id": "x", "Size": 3, "Created": "", "Config": {"Hostname": "", "Cmd": ["sh"], "Tty": false}});
        image_inspect(ApiVersion(151), &mut i);
        assert_eq!(i.get("VirtualSize"), None);
        assert_eq!(i.get("Created"), None);
        assert_eq!(i.get("Container"), None);
        assert_eq!(i["Config"].get("Hostname"), None);
        assert_eq!(i["Config"]["Entrypoint"], Value::Null);
        assert_eq!(i["Config"]["WorkingDir"], "");
    }

    #[test]
    fn gw_priority_and_exec_start_console_size() {
        let body = || json!({"NetworkingConfig": {"EndpointsConfig": {"n1": {"GwPriority": 5}}}, "HostConfig": {"NetworkMode": "n1"}});
        let mut b = body();
        container_create(ApiVersion(147), &mut b).unwrap();
        assert_eq!(b["NetworkingConfig"]["EndpointsConfig"]["n1"]["GwPriority"], Value::Null);
        let mut b = body();
        container_create(ApiVersion(148), &mut b).unwrap();
        assert_eq!(b["NetworkingConfig"]["EndpointsConfig"]["n1"]["GwPriority"], 5);
        let mut s = json!({"Tty": true, "ConsoleSize": [24, 80]});
        exec_start(ApiVersion(141), &mut s);
        assert_eq!(s["ConsoleSize"], Value::Null);
        let mut s = json!({"Tty": true, "ConsoleSize": [24, 80]});
        exec_start(ApiVersion(142), &mut s);
        assert_eq!(s["ConsoleSize"], json!([24, 80]));
    }

    #[test]
    fn build_prune_reads_the_versions_parameter() {
        let p = Params::parse(Some("keep-storage=1000&reserved-space=2000"));
        assert_eq!(build_prune_space(ApiVersion(147), &p).unwrap().0, 1000);
        assert_eq!(build_prune_space(ApiVersion(148), &p).unwrap().0, 2000);
    }
}
