//! berth-net: Docker's network model as a library.
//!
//! - [`NetworkManager`] owns one daemon's networks: the predefined `bridge`, `host`
//!   and `none`, user-defined bridge networks (IPAM, `--internal`, labels, options),
//!   endpoints (veth pairs into container namespaces via rtnetlink), published ports
//!   (in-kernel DNAT in the daemon's own nftables table), outbound NAT, isolation
//!   between networks, and the embedded DNS server at 127.0.0.11.
//! - [`netns`] creates and deletes network namespaces bound to paths; [`nspool`] keeps
//!   namespaces made ahead of time for starts to take.
//! - [`files`] renders a container's resolv.conf, hosts and hostname like Docker.
//! - [`ports`] parses `-p`/`-P` and the Engine API's PortMap.
//!
//! State is persisted under the configured data directory with crash-safe writes;
//! kernel objects carry ownership tags so a restart after `kill -9` removes exactly
//! the leftovers of this daemon and nothing else. See docs/networking.md.

pub mod config;
pub mod dataplane;
pub mod dns;
pub mod error;
pub mod files;
pub mod host_check;
pub mod firewall;
pub mod ids;
pub mod iptables;
pub mod ipam;
pub mod ipam6;
mod manager;
pub mod model;
pub mod netns;
pub mod nspool;
mod persist;
pub mod ports;
pub mod proxy;
mod resolv_watch;
pub mod tools;

pub use config::NetConfig;
pub use ipnet::{Ipv4Net, Ipv6Net};
pub use dataplane::{Dataplane, LinuxDataplane, RecordingDataplane};
pub use error::{ErrorKind, NetError, Result};
pub use manager::{ContainerFiles, FilesRequest, NetworkFilters, NetworkManager, NetworkMode, ReconcileReport, options};
pub use berth_types::network::{
    EndpointSettings, Ipam, IpamPoolConfig, Network, NetworkContainer, NetworkCreateRequest, NetworkCreateResponse,
};
pub use model::{Endpoint, EndpointRequest};
pub use ports::{HostPort, PortBinding, PortBindingRequest, PortMap, PortMapping, Proto};
