//! The CNI plugin protocol (the spec's ADD / DEL, versions 0.4.0 and 1.0.0): the node's
//! first network config in the config directory (`.conflist`, or a single `.conf`), its
//! plugins run in order with the previous one's result, as the kubelet expects containerd
//! and CRI-O to do. Port mappings go to plugins that declare the `portMappings`
//! capability (portmap). A failed ADD is undone with DEL of what ran.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::api;
use crate::error::CriError;
use crate::meta::{CniAttachment, Sandbox};

pub struct Cni {
    conf_dir: PathBuf,
    bin_dirs: Vec<PathBuf>,
}

/// A network config list as loaded.
#[derive(Debug, Clone)]
pub struct NetworkList {
    pub name: String,
    pub version: String,
    pub plugins: Vec<Value>,
}

impl Cni {
    pub fn load(conf_dir: &Path, bin_dirs: &[PathBuf]) -> Result<Option<Cni>, CriError> {
        if bin_dirs.is_empty() {
            return Err(CriError::Config("CNI needs at least one plugin directory".into()));
        }
        Ok(Some(Cni { conf_dir: conf_dir.to_path_buf(), bin_dirs: bin_dirs.to_vec() }))
    }

    /// The node's network: the first config file (by name) that parses. Read each time,
    /// so a config installed after the daemon started is picked up (the kubelet waits
    /// on NetworkReady for that).
    pub fn network(&self) -> Result<NetworkList, String> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&self.conf_dir)
            .map_err(|e| format!("reading {}: {e}", self.conf_dir.display()))?
            .flatten()
            .map(|e| e.path())
            .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("conf" | "conflist" | "json")))
            .collect();
        files.sort();
        for f in files {
            let Ok(data) = std::fs::read(&f) else { continue };
            let Ok(v) = serde_json::from_slice::<Value>(&data) else { continue };
            if let Some(list) = parse_config(&v) {
                return Ok(list);
            }
        }
        Err(format!("no CNI network config in {}", self.conf_dir.display()))
    }

    fn plugin_path(&self, kind: &str) -> Result<PathBuf, String> {
        if kind.is_empty() || kind.contains('/') {
            return Err(format!("invalid CNI plugin type {kind:?}"));
        }
        self.bin_dirs.iter().map(|d| d.join(kind)).find(|p| p.is_file()).ok_or_else(|| format!("CNI plugin {kind} not found in {:?}", self.bin_dirs))
    }

    /// Runs one plugin; its stdout is the result (or a CNI error object).
    async fn exec(&self, command: &str, plugin: &Value, env: &Env<'_>) -> Result<Value, String> {
        let kind = plugin.get("type").and_then(Value::as_str).unwrap_or("");
        let path = self.plugin_path(kind)?;
        let paths = self.bin_dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(":");
        let mut child = tokio::process::Command::new(&path)
            .env_clear()
            .env("CNI_COMMAND", command)
            .env("CNI_CONTAINERID", env.container_id)
            .env("CNI_NETNS", &env.netns)
            .env("CNI_IFNAME", env.ifname)
            .env("CNI_ARGS", &env.args)
            .env("CNI_PATH", paths)
            .env("PATH", "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("running CNI plugin {}: {e}", path.display()))?;
        let input = serde_json::to_vec(plugin).map_err(|e| e.to_string())?;
        if let Some(mut stdin) = child.stdin.take() {
            stdin.write_all(&input).await.map_err(|e| format!("writing to CNI plugin {kind}: {e}"))?;
        }
        let out = child.wait_with_output().await.map_err(|e| format!("CNI plugin {kind}: {e}"))?;
        let parsed: Option<Value> = serde_json::from_slice(&out.stdout).ok();
        if !out.status.success() {
            let msg = parsed
                .as_ref()
                .map(|v| format!("{} {}", v["msg"].as_str().unwrap_or(""), v["details"].as_str().unwrap_or("")).trim().to_string())
                .filter(|m| !m.is_empty())
                .unwrap_or_else(|| String::from_utf8_lossy(&out.stderr).trim().to_string());
            return Err(format!("CNI plugin {kind} {command} failed: {msg}"));
        }
        Ok(parsed.unwrap_or(Value::Null))
    }

    /// ADD: the pod's interface, addresses and routes (and its host ports, if a plugin
    /// takes them). On failure, DEL of the plugins that ran.
    pub async fn add(&self, net: &NetworkList, sb: &Sandbox) -> Result<CniAttachment, String> {
        let netns = sb.rec.network.sandbox_key.clone();
        if netns.is_empty() {
            return Err("the sandbox has no network namespace".into());
        }
        let env = Env::of(sb, &netns);
        let runtime = runtime_config(&sb.meta.config);
        let mut prev = Value::Null;
        for (i, p) in net.plugins.iter().enumerate() {
            let conf = plugin_conf(net, p, &prev, &runtime);
            match self.exec("ADD", &conf, &env).await {
                Ok(r) => prev = r,
                Err(e) => {
                    for q in net.plugins[..=i].iter().rev() {
                        let _ = self.exec("DEL", &plugin_conf(net, q, &Value::Null, &runtime), &env).await;
                    }
                    return Err(e);
                }
            }
        }
        Ok(CniAttachment { netns, ifname: env.ifname.into(), ips: result_ips(&prev), network: net.name.clone(), result: prev, released: false })
    }

    /// DEL, in reverse order, with the ADD result. The namespace may be gone already:
    /// plugins must then still release what they hold (addresses, host ports).
    pub async fn del(&self, att: &CniAttachment, sb: &Sandbox) -> Result<(), String> {
        let net = self.network()?;
        let netns = if Path::new(&att.netns).exists() { att.netns.clone() } else { String::new() };
        let env = Env::of(sb, &netns);
        let runtime = runtime_config(&sb.meta.config);
        let mut first_err = None;
        for p in net.plugins.iter().rev() {
            let conf = plugin_conf(&net, p, &att.result, &runtime);
            if let Err(e) = self.exec("DEL", &conf, &env).await {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

struct Env<'a> {
    container_id: &'a str,
    netns: String,
    ifname: &'static str,
    args: String,
}

impl<'a> Env<'a> {
    fn of(sb: &'a Sandbox, netns: &str) -> Env<'a> {
        let md = sb.metadata();
        Env {
            container_id: &sb.rec.id,
            netns: netns.to_string(),
            ifname: "eth0",
            args: format!("IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID={}", md.namespace, md.name, sb.rec.id, md.uid),
        }
    }
}

/// A `.conflist`, or a single plugin `.conf` made into a list of one.
fn parse_config(v: &Value) -> Option<NetworkList> {
    let name = v.get("name")?.as_str()?.to_string();
    let version = v.get("cniVersion").and_then(Value::as_str).unwrap_or("0.4.0").to_string();
    let plugins = match v.get("plugins") {
        Some(Value::Array(a)) if !a.is_empty() => a.clone(),
        Some(_) => return None,
        None if v.get("type").is_some() => vec![v.clone()],
        None => return None,
    };
    Some(NetworkList { name, version, plugins })
}

/// The `runtimeConfig` capabilities berth provides: the pod's host ports.
fn runtime_config(cfg: &api::PodSandboxConfig) -> Value {
    let ports: Vec<Value> = cfg
        .port_mappings
        .iter()
        .filter(|p| p.host_port > 0)
        .map(|p| {
            let proto = match api::Protocol::try_from(p.protocol).unwrap_or(api::Protocol::Tcp) {
                api::Protocol::Tcp => "tcp",
                api::Protocol::Udp => "udp",
                api::Protocol::Sctp => "sctp",
            };
            json!({"hostPort": p.host_port, "containerPort": p.container_port, "protocol": proto, "hostIP": p.host_ip})
        })
        .collect();
    json!({"portMappings": ports})
}

/// One plugin's stdin: its config with the list's name and version, the previous
/// result, and the runtime config it declared capabilities for.
fn plugin_conf(net: &NetworkList, plugin: &Value, prev: &Value, runtime: &Value) -> Value {
    let mut conf = plugin.clone();
    conf["name"] = json!(net.name);
    conf["cniVersion"] = json!(net.version);
    if !prev.is_null() {
        conf["prevResult"] = prev.clone();
    }
    if let Some(caps) = plugin.get("capabilities").and_then(Value::as_object) {
        let mut rc = serde_json::Map::new();
        for (k, on) in caps {
            if on.as_bool() == Some(true)
                && let Some(v) = runtime.get(k)
            {
                rc.insert(k.clone(), v.clone());
            }
        }
        if !rc.is_empty() {
            conf["runtimeConfig"] = Value::Object(rc);
        }
    }
    conf
}

/// The addresses of a result (`ips[].address`, without prefix length).
fn result_ips(result: &Value) -> Vec<String> {
    result
        .get("ips")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|ip| ip.get("address")?.as_str()?.split('/').next().map(str::to_string)).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configs_lists_and_single_plugins() {
        let list = parse_config(&json!({"cniVersion":"1.0.0","name":"pods","plugins":[{"type":"bridge"},{"type":"portmap","capabilities":{"portMappings":true}}]})).unwrap();
        assert_eq!((list.name.as_str(), list.version.as_str(), list.plugins.len()), ("pods", "1.0.0", 2));
        let one = parse_config(&json!({"cniVersion":"0.4.0","name":"n","type":"bridge"})).unwrap();
        assert_eq!(one.plugins.len(), 1);
        assert!(parse_config(&json!({"name":"x"})).is_none());
    }

    #[test]
    fn plugin_input_carries_prev_result_and_capabilities() {
        let net = NetworkList { name: "pods".into(), version: "1.0.0".into(), plugins: vec![] };
        let cfg = api::PodSandboxConfig {
            port_mappings: vec![api::PortMapping { protocol: 0, container_port: 80, host_port: 8080, host_ip: String::new() }, api::PortMapping { protocol: 1, container_port: 53, host_port: 0, host_ip: String::new() }],
            ..Default::default()
        };
        let rc = runtime_config(&cfg);
        let prev = json!({"ips":[{"address":"10.88.0.5/16"}]});
        let pm = plugin_conf(&net, &json!({"type":"portmap","capabilities":{"portMappings":true}}), &prev, &rc);
        assert_eq!(pm["runtimeConfig"]["portMappings"].as_array().unwrap().len(), 1);
        assert_eq!(pm["prevResult"], prev);
        assert_eq!(pm["name"], "pods");
        let br = plugin_conf(&net, &json!({"type":"bridge"}), &Value::Null, &rc);
        assert!(br.get("runtimeConfig").is_none() && br.get("prevResult").is_none());
        assert_eq!(result_ips(&prev), vec!["10.88.0.5".to_string()]);
    }
}
