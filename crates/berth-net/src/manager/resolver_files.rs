//! The container's /etc/resolv.conf, /etc/hosts and /etc/hostname for its network
//! mode, from the manager's knowledge of its endpoints.

use super::NetworkManager;
use crate::dataplane::Dataplane;
use crate::error::{NetError, Result};
use crate::files::{self, DnsSettings, HostResolvConf, ResolverMode};

/// How the container is networked, as far as its files are concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkMode {
    /// Its own namespace with endpoints on bridge networks (default bridge or user).
    Sandbox,
    /// `--network host`.
    Host,
    /// `--network none`.
    None,
}

/// Inputs for [`NetworkManager::container_files`].
#[derive(Debug, Clone)]
pub struct FilesRequest {
    pub container_id: String,
    pub mode: NetworkMode,
    pub hostname: String,
    pub domainname: String,
    /// `--dns`, `--dns-search`, `--dns-option`.
    pub dns: DnsSettings,
    /// `--add-host` values as given ("name:ip", "name:host-gateway").
    pub extra_hosts: Vec<String>,
    /// Legacy links' /etc/hosts entries ("alias hostname name" → address), after them.
    pub links: Vec<files::ExtraHost>,
}

/// The three files' contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerFiles {
    pub resolv_conf: String,
    pub hosts: String,
    pub hostname: String,
}

impl<D: Dataplane> NetworkManager<D> {
    /// Renders the container's resolver files the way Docker writes them: user
    /// networks point at the embedded DNS (127.0.0.11), the default bridge, host and
    /// none modes get the host's resolv.conf without loopback servers.
    pub async fn container_files(&self, req: &FilesRequest) -> Result<ContainerFiles> {
        let host_gateway = self.host_gateway_ip().await.unwrap_or(std::net::Ipv4Addr::LOCALHOST);
        let mut extra: Vec<files::ExtraHost> =
            req.extra_hosts.iter().map(|h| files::parse_extra_host(h, host_gateway)).collect::<Result<_>>()?;
        extra.extend(req.links.iter().cloned());
        let host_rc = HostResolvConf::read(&self.config.host_resolv_conf)?;
        let host_path = self.config.host_resolv_conf.display().to_string();
        let endpoints = self.endpoints_of(&req.container_id).await;
        let (resolv_conf, hosts) = match req.mode {
            NetworkMode::Sandbox => {
                let internal = {
                    let st = self.state.lock().await;
                    Self::sandbox_has_dns(&st, &req.container_id)
                };
                let mode = if internal { ResolverMode::Internal } else { ResolverMode::HostCopy };
                let ips: Vec<std::net::IpAddr> = endpoints
                    .iter()
                    .flat_map(|e| std::iter::once(std::net::IpAddr::V4(e.ip)).chain(e.v6.map(|v| std::net::IpAddr::V6(v.ip))))
                    .collect();
                (
                    files::resolv_conf(&host_rc, &req.dns, mode, &host_path),
                    files::hosts(&req.hostname, &req.domainname, &ips, &extra),
                )
            }
            NetworkMode::Host => {
                let path = &self.config.host_hosts;
                let host_hosts = match std::fs::read_to_string(path) {
                    Ok(t) => t,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
                    Err(e) => return Err(NetError::system(format!("read {}", path.display()), e)),
                };
                (
                    files::resolv_conf(&host_rc, &req.dns, ResolverMode::HostCopy, &host_path),
                    files::hosts_for_host_network(&host_hosts, &extra),
                )
            }
            NetworkMode::None => (
                files::resolv_conf(&host_rc, &req.dns, ResolverMode::HostCopy, &host_path),
                files::hosts(&req.hostname, &req.domainname, &[], &extra),
            ),
        };
        Ok(ContainerFiles { resolv_conf, hosts, hostname: files::hostname_file(&req.hostname) })
    }
}
