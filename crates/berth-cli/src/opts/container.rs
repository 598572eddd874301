//! `docker create`/`run` flags and their translation into the create request.

use std::collections::BTreeMap;
use std::path::Path;

use berth_types::container::{Config, CreateRequest, HealthConfig, HostConfig, LogConfig, NetworkingConfig, RestartPolicy};
use berth_types::network::{EndpointIpamConfig, EndpointSettings};
use clap::{ArgAction, Args};

use super::parse::{self, Env, VolumeSpec};

fn bytes(s: &str) -> Result<i64, String> {
    parse::parse_bytes(s)
}
fn cpus(s: &str) -> Result<i64, String> {
    parse::parse_cpus(s)
}
fn duration(s: &str) -> Result<i64, String> {
    parse::parse_duration(s)
}
fn restart(s: &str) -> Result<RestartPolicy, String> {
    parse::parse_restart(s)
}
fn ulimit(s: &str) -> Result<berth_types::container::Ulimit, String> {
    parse::parse_ulimit(s)
}
fn add_host(s: &str) -> Result<String, String> {
    parse::parse_add_host(s)
}
fn attach_stream(s: &str) -> Result<String, String> {
    let l = s.to_ascii_lowercase();
    if matches!(l.as_str(), "stdin" | "stdout" | "stderr") {
        Ok(l)
    } else {
        Err("valid streams are STDIN, STDOUT and STDERR".to_string())
    }
}
fn pull_policy(s: &str) -> Result<String, String> {
    if matches!(s, "always" | "missing" | "never") {
        Ok(s.to_string())
    } else {
        Err(format!("invalid pull option: '{s}': must be one of \"always\", \"missing\" or \"never\""))
    }
}

/// The flags `docker create` and `docker run` share.
#[derive(Debug, Clone, Default, Args)]
pub struct ContainerOpts {
    #[arg(long = "add-host", value_name = "list", value_parser = add_host, help = "Add a custom host-to-IP mapping (host:ip)")]
    pub add_host: Vec<String>,
    #[arg(long, value_name = "map", help = "Add an annotation to the container (passed through to the OCI runtime)")]
    pub annotation: Vec<String>,
    #[arg(short = 'a', long, value_name = "list", value_parser = attach_stream, help = "Attach to STDIN, STDOUT or STDERR")]
    pub attach: Vec<String>,
    #[arg(long = "blkio-weight", value_name = "uint16", default_value_t = 0, help = "Block IO (relative weight), between 10 and 1000, or 0 to disable")]
    pub blkio_weight: u16,
    #[arg(long = "blkio-weight-device", value_name = "list", value_parser = parse::parse_weight_device, help = "Block IO weight (relative device weight)")]
    pub blkio_weight_device: Vec<berth_types::container::WeightDevice>,
    #[arg(long = "cap-add", value_name = "list", help = "Add Linux capabilities")]
    pub cap_add: Vec<String>,
    #[arg(long = "cap-drop", value_name = "list", help = "Drop Linux capabilities")]
    pub cap_drop: Vec<String>,
    #[arg(long = "cgroup-parent", value_name = "string", default_value = "", hide_default_value = true, help = "Optional parent cgroup for the container")]
    pub cgroup_parent: String,
    #[arg(long = "cgroupns", value_name = "string", default_value = "", hide_default_value = true, help = "Cgroup namespace to use (host|private)")]
    pub cgroupns: String,
    #[arg(long, value_name = "string", default_value = "", hide_default_value = true, help = "Write the container ID to the file")]
    pub cidfile: String,
    #[arg(long = "cpu-period", value_name = "int", default_value_t = 0, hide_default_value = true, help = "Limit CPU CFS (Completely Fair Scheduler) period")]
    pub cpu_period: i64,
    #[arg(long = "cpu-quota", value_name = "int", default_value_t = 0, hide_default_value = true, help = "Limit CPU CFS (Completely Fair Scheduler) quota")]
    pub cpu_quota: i64,
    #[arg(long = "cpu-rt-period", value_name = "int", default_value_t = 0, hide_default_value = true, help = "Limit CPU real-time period in microseconds")]
    pub cpu_rt_period: i64,
    #[arg(long = "cpu-rt-runtime", value_name = "int", default_value_t = 0, hide_default_value = true, help = "Limit CPU real-time runtime in microseconds")]
    pub cpu_rt_runtime: i64,
    #[arg(short = 'c', long = "cpu-shares", value_name = "int", default_value_t = 0, hide_default_value = true, help = "CPU shares (relative weight)")]
    pub cpu_shares: i64,
    #[arg(long, value_name = "decimal", value_parser = cpus, help = "Number of CPUs")]
    pub cpus: Option<i64>,
    #[arg(long = "cpuset-cpus", value_name = "string", default_value = "", hide_default_value = true, help = "CPUs in which to allow execution (0-3, 0,1)")]
    pub cpuset_cpus: String,
    #[arg(long = "cpuset-mems", value_name = "string", default_value = "", hide_default_value = true, help = "MEMs in which to allow execution (0-3, 0,1)")]
    pub cpuset_mems: String,
    #[arg(long, value_name = "list", value_parser = parse::parse_device, help = "Add a host device to the container")]
    pub device: Vec<berth_types::container::DeviceMapping>,
    #[arg(long = "device-cgroup-rule", value_name = "list", help = "Add a rule to the cgroup allowed devices list")]
    pub device_cgroup_rule: Vec<String>,
    #[arg(long = "device-read-bps", value_name = "list", value_parser = |s: &str| parse::parse_throttle(s, true), help = "Limit read rate (bytes per second) from a device")]
    pub device_read_bps: Vec<berth_types::container::ThrottleDevice>,
    #[arg(long = "device-read-iops", value_name = "list", value_parser = |s: &str| parse::parse_throttle(s, false), help = "Limit read rate (IO per second) from a device")]
    pub device_read_iops: Vec<berth_types::container::ThrottleDevice>,
    #[arg(long = "device-write-bps", value_name = "list", value_parser = |s: &str| parse::parse_throttle(s, true), help = "Limit write rate (bytes per second) to a device")]
    pub device_write_bps: Vec<berth_types::container::ThrottleDevice>,
    #[arg(long = "device-write-iops", value_name = "list", value_parser = |s: &str| parse::parse_throttle(s, false), help = "Limit write rate (IO per second) to a device")]
    pub device_write_iops: Vec<berth_types::container::ThrottleDevice>,
    #[arg(long = "disable-content-trust", hide = true, action = ArgAction::SetTrue)]
    pub disable_content_trust: bool,
    #[arg(long, value_name = "list", help = "Set custom DNS servers")]
    pub dns: Vec<String>,
    #[arg(long = "dns-option", value_name = "list", help = "Set DNS options")]
    pub dns_option: Vec<String>,
    #[arg(long = "dns-search", value_name = "list", help = "Set custom DNS search domains")]
    pub dns_search: Vec<String>,
    #[arg(long, value_name = "string", default_value = "", hide_default_value = true, help = "Container NIS domain name")]
    pub domainname: String,
    #[arg(long, value_name = "string", help = "Overwrite the default ENTRYPOINT of the image")]
    pub entrypoint: Option<String>,
    #[arg(short = 'e', long, value_name = "list", help = "Set environment variables")]
    pub env: Vec<String>,
    #[arg(long = "env-file", value_name = "list", help = "Read in a file of environment variables")]
    pub env_file: Vec<String>,
    #[arg(long, value_name = "list", help = "Expose a port or a range of ports")]
    pub expose: Vec<String>,
    #[arg(long, value_name = "gpu-request", help = "GPU devices to add to the container ('all' to pass all GPUs)")]
    pub gpus: Option<String>,
    #[arg(long = "group-add", value_name = "list", help = "Add additional groups to join")]
    pub group_add: Vec<String>,
    #[arg(long = "health-cmd", value_name = "string", help = "Command to run to check health")]
    pub health_cmd: Option<String>,
    #[arg(long = "health-interval", value_name = "duration", value_parser = duration, help = "Time between running the check (ms|s|m|h) (default 0s)")]
    pub health_interval: Option<i64>,
    #[arg(long = "health-retries", value_name = "int", help = "Consecutive failures needed to report unhealthy")]
    pub health_retries: Option<i64>,
    #[arg(long = "health-start-interval", value_name = "duration", value_parser = duration, help = "Time between running the check during the start period (ms|s|m|h) (default 0s)")]
    pub health_start_interval: Option<i64>,
    #[arg(long = "health-start-period", value_name = "duration", value_parser = duration, help = "Start period for the container to initialize before starting health-retries countdown (ms|s|m|h) (default 0s)")]
    pub health_start_period: Option<i64>,
    #[arg(long = "health-timeout", value_name = "duration", value_parser = duration, help = "Maximum time to allow one check to run (ms|s|m|h) (default 0s)")]
    pub health_timeout: Option<i64>,
    #[arg(short = 'h', long, value_name = "string", default_value = "", hide_default_value = true, help = "Container host name")]
    pub hostname: String,
    #[arg(long, action = ArgAction::SetTrue, help = "Run an init inside the container that forwards signals and reaps processes")]
    pub init: bool,
    #[arg(short = 'i', long, action = ArgAction::SetTrue, help = "Keep STDIN open even if not attached")]
    pub interactive: bool,
    #[arg(long, value_name = "string", default_value = "", hide_default_value = true, help = "IPv4 address (e.g., 172.30.100.104)")]
    pub ip: String,
    #[arg(long, value_name = "string", default_value = "", hide_default_value = true, help = "IPv6 address (e.g., 2001:db8::33)")]
    pub ip6: String,
    #[arg(long, value_name = "string", default_value = "", hide_default_value = true, help = "IPC mode to use")]
    pub ipc: String,
    #[arg(long, value_name = "string", default_value = "", hide_default_value = true, help = "Container isolation technology")]
    pub isolation: String,
    #[arg(long = "kernel-memory", value_name = "bytes", value_parser = bytes, hide = true)]
    pub kernel_memory: Option<i64>,
    #[arg(short = 'l', long, value_name = "list", help = "Set meta data on a container")]
    pub label: Vec<String>,
    #[arg(long = "label-file", value_name = "list", help = "Read in a line delimited file of labels")]
    pub label_file: Vec<String>,
    #[arg(long, value_name = "list", help = "Add link to another container")]
    pub link: Vec<String>,
    #[arg(long = "link-local-ip", value_name = "list", help = "Container IPv4/IPv6 link-local addresses")]
    pub link_local_ip: Vec<String>,
    #[arg(long = "log-driver", value_name = "string", default_value = "", hide_default_value = true, help = "Logging driver for the container")]
    pub log_driver: String,
    #[arg(long = "log-opt", value_name = "list", help = "Log driver options")]
    pub log_opt: Vec<String>,
    #[arg(long = "mac-address", value_name = "string", default_value = "", hide_default_value = true, help = "Container MAC address (e.g., 92:d0:c6:0a:29:33)")]
    pub mac_address: String,
    #[arg(short = 'm', long, value_name = "bytes", value_parser = bytes, help = "Memory limit")]
    pub memory: Option<i64>,
    #[arg(long = "memory-reservation", value_name = "bytes", value_parser = bytes, help = "Memory soft limit")]
    pub memory_reservation: Option<i64>,
    #[arg(long = "memory-swap", value_name = "bytes", value_parser = bytes, allow_hyphen_values = true, help = "Swap limit equal to memory plus swap: '-1' to enable unlimited swap")]
    pub memory_swap: Option<i64>,
    #[arg(long = "memory-swappiness", value_name = "int", default_value_t = -1, allow_hyphen_values = true, help = "Tune container memory swappiness (0 to 100)")]
    pub memory_swappiness: i64,
    #[arg(long, value_name = "mount", value_parser = parse::parse_mount, help = "Attach a filesystem mount to the container")]
    pub mount: Vec<berth_types::container::Mount>,
    #[arg(long, value_name = "string", default_value = "", hide_default_value = true, help = "Assign a name to the container")]
    pub name: String,
    #[arg(long = "network", alias = "net", value_name = "network", help = "Connect a container to a network")]
    pub network: Vec<String>,
    #[arg(long = "network-alias", alias = "net-alias", value_name = "list", help = "Add network-scoped alias for the container")]
    pub network_alias: Vec<String>,
    #[arg(long = "no-healthcheck", action = ArgAction::SetTrue, help = "Disable any container-specified HEALTHCHECK")]
    pub no_healthcheck: bool,
    #[arg(long = "oom-kill-disable", action = ArgAction::SetTrue, help = "Disable OOM Killer")]
    pub oom_kill_disable: bool,
    #[arg(long = "oom-score-adj", value_name = "int", default_value_t = 0, hide_default_value = true, allow_hyphen_values = true, help = "Tune host's OOM preferences (-1000 to 1000)")]
    pub oom_score_adj: i64,
    #[arg(long, value_name = "string", default_value = "", hide_default_value = true, help = "PID namespace to use")]
    pub pid: String,
    #[arg(long = "pids-limit", value_name = "int", allow_hyphen_values = true, help = "Tune container pids limit (set -1 for unlimited)")]
    pub pids_limit: Option<i64>,
    #[arg(long, value_name = "string", default_value = "", hide_default_value = true, help = "Set platform if server is multi-platform capable")]
    pub platform: String,
    #[arg(long, action = ArgAction::SetTrue, help = "Give extended privileges to this container")]
    pub privileged: bool,
    #[arg(short = 'p', long, value_name = "list", help = "Publish a container's port(s) to the host")]
    pub publish: Vec<String>,
    #[arg(short = 'P', long = "publish-all", action = ArgAction::SetTrue, help = "Publish all exposed ports to random ports")]
    pub publish_all: bool,
    #[arg(long, value_name = "string", default_value = "missing", value_parser = pull_policy, help = "Pull image before running (\"always\", \"missing\", \"never\")")]
    pub pull: String,
    #[arg(short = 'q', long, action = ArgAction::SetTrue, help = "Suppress the pull output")]
    pub quiet: bool,
    #[arg(long = "read-only", action = ArgAction::SetTrue, help = "Mount the container's root filesystem as read only")]
    pub read_only: bool,
    #[arg(long, value_name = "string", value_parser = restart, help = "Restart policy to apply when a container exits (default \"no\")")]
    pub restart: Option<RestartPolicy>,
    #[arg(long, action = ArgAction::SetTrue, help = "Automatically remove the container and its associated anonymous volumes when it exits")]
    pub rm: bool,
    #[arg(long, value_name = "string", default_value = "", hide_default_value = true, help = "Runtime to use for this container")]
    pub runtime: String,
    #[arg(long = "security-opt", value_name = "list", help = "Security Options")]
    pub security_opt: Vec<String>,
    #[arg(long = "shm-size", value_name = "bytes", value_parser = bytes, help = "Size of /dev/shm")]
    pub shm_size: Option<i64>,
    #[arg(long = "stop-signal", value_name = "string", default_value = "", hide_default_value = true, help = "Signal to stop the container")]
    pub stop_signal: String,
    #[arg(long = "stop-timeout", value_name = "int", allow_hyphen_values = true, help = "Timeout (in seconds) to stop a container")]
    pub stop_timeout: Option<i64>,
    #[arg(long = "storage-opt", value_name = "list", help = "Storage driver options for the container")]
    pub storage_opt: Vec<String>,
    #[arg(long, value_name = "map", help = "Sysctl options")]
    pub sysctl: Vec<String>,
    #[arg(long, value_name = "list", help = "Mount a tmpfs directory")]
    pub tmpfs: Vec<String>,
    #[arg(short = 't', long, action = ArgAction::SetTrue, help = "Allocate a pseudo-TTY")]
    pub tty: bool,
    #[arg(long, value_name = "ulimit", value_parser = ulimit, help = "Ulimit options")]
    pub ulimit: Vec<berth_types::container::Ulimit>,
    #[arg(short = 'u', long, value_name = "string", default_value = "", hide_default_value = true, help = "Username or UID (format: <name|uid>[:<group|gid>])")]
    pub user: String,
    #[arg(long, value_name = "string", default_value = "", hide_default_value = true, help = "User namespace to use")]
    pub userns: String,
    #[arg(long, value_name = "string", default_value = "", hide_default_value = true, help = "UTS namespace to use")]
    pub uts: String,
    #[arg(short = 'v', long, value_name = "list", help = "Bind mount a volume")]
    pub volume: Vec<String>,
    #[arg(long = "volume-driver", value_name = "string", default_value = "", hide_default_value = true, help = "Optional volume driver for the container")]
    pub volume_driver: String,
    #[arg(long = "volumes-from", value_name = "list", help = "Mount volumes from the specified container(s)")]
    pub volumes_from: Vec<String>,
    #[arg(short = 'w', long, value_name = "string", default_value = "", hide_default_value = true, help = "Working directory inside the container")]
    pub workdir: String,
}

fn some_if<T>(v: Vec<T>) -> Option<Vec<T>> {
    if v.is_empty() { None } else { Some(v) }
}

impl ContainerOpts {
    /// Translates the flags into the create body, as docker's `parse()` does.
    /// `image` and `cmd` are the positional arguments.
    pub fn to_request(&self, image: &str, cmd: &[String], env: &Env, cwd: &Path) -> Result<CreateRequest, String> {
        if self.gpus.is_some() {
            return Err("--gpus is not supported by berth".into());
        }
        let mut attach_stdin = self.attach.iter().any(|a| a == "stdin");
        let mut attach_stdout = self.attach.iter().any(|a| a == "stdout");
        let mut attach_stderr = self.attach.iter().any(|a| a == "stderr");
        if self.interactive {
            attach_stdin = true;
        }
        if self.attach.is_empty() {
            attach_stdout = true;
            attach_stderr = true;
        }

        let mut exposed = BTreeMap::new();
        let mut bindings = BTreeMap::new();
        for p in &self.publish {
            parse::parse_publish(p, &mut exposed, &mut bindings)?;
        }
        for e in &self.expose {
            parse::parse_expose(e, &mut exposed)?;
        }

        let mut env_list = Vec::new();
        for f in &self.env_file {
            env_list.extend(parse::read_kv_file(f, Some(env))?);
        }
        env_list.extend(self.env.iter().map(|e| parse::env_entry(e, env)));

        let mut labels = Vec::new();
        for f in &self.label_file {
            labels.extend(parse::read_kv_file(f, None)?);
        }
        labels.extend(self.label.iter().cloned());

        let mut binds = Vec::new();
        let mut volumes = BTreeMap::new();
        for v in &self.volume {
            match parse::parse_volume(v, cwd)? {
                VolumeSpec::Bind(b) => binds.push(b),
                VolumeSpec::Anonymous(d) => {
                    volumes.insert(d, berth_types::Empty {});
                }
            }
        }
        let mut tmpfs = BTreeMap::new();
        for t in &self.tmpfs {
            let (d, o) = parse::parse_tmpfs(t)?;
            tmpfs.insert(d, o);
        }

        let restart = self.restart.clone().unwrap_or(RestartPolicy { name: "no".into(), maximum_retry_count: 0 });
        if self.rm && restart.name != "no" {
            return Err("Conflicting options: --restart and --rm".into());
        }

        let entrypoint = match &self.entrypoint {
            Some(e) if !e.is_empty() => Some(vec![e.clone()]),
            // `--entrypoint=""` resets the image's entrypoint.
            Some(_) => Some(vec![String::new()]),
            None => None,
        };

        let healthcheck = if self.no_healthcheck {
            if self.health_cmd.is_some() || self.health_interval.is_some() || self.health_timeout.is_some() || self.health_retries.is_some() {
                return Err("--no-healthcheck conflicts with --health-* options".into());
            }
            Some(HealthConfig { test: Some(vec!["NONE".into()]), ..Default::default() })
        } else if self.health_cmd.is_some()
            || self.health_interval.is_some()
            || self.health_timeout.is_some()
            || self.health_retries.is_some()
            || self.health_start_period.is_some()
            || self.health_start_interval.is_some()
        {
            let test = self.health_cmd.as_ref().map(|c| vec!["CMD-SHELL".to_string(), c.clone()]);
            for (name, v) in [
                ("--health-interval", self.health_interval),
                ("--health-timeout", self.health_timeout),
                ("--health-start-period", self.health_start_period),
                ("--health-start-interval", self.health_start_interval),
            ] {
                if v.is_some_and(|v| v < 0) {
                    return Err(format!("{name} cannot be negative"));
                }
            }
            if self.health_retries.is_some_and(|r| r < 0) {
                return Err("--health-retries cannot be negative".into());
            }
            Some(HealthConfig {
                test,
                interval: self.health_interval.unwrap_or(0),
                timeout: self.health_timeout.unwrap_or(0),
                start_period: self.health_start_period.unwrap_or(0),
                start_interval: self.health_start_interval.unwrap_or(0),
                retries: self.health_retries.unwrap_or(0),
            })
        } else {
            None
        };

        let network_mode = self.network.first().cloned().unwrap_or_else(|| "default".into());
        let mut endpoints = BTreeMap::new();
        let has_endpoint_opts = !self.network_alias.is_empty()
            || !self.ip.is_empty()
            || !self.ip6.is_empty()
            || !self.link_local_ip.is_empty()
            || !self.mac_address.is_empty();
        if self.network.is_empty() || has_endpoint_opts || self.network.len() > 1 {
            let ipam = if self.ip.is_empty() && self.ip6.is_empty() && self.link_local_ip.is_empty() {
                None
            } else {
                Some(EndpointIpamConfig {
                    ipv4_address: self.ip.clone(),
                    ipv6_address: self.ip6.clone(),
                    link_local_ips: some_if(self.link_local_ip.clone()),
                })
            };
            endpoints.insert(
                network_mode.clone(),
                EndpointSettings {
                    ipam_config: ipam,
                    aliases: some_if(self.network_alias.clone()),
                    mac_address: self.mac_address.clone(),
                    ..Default::default()
                },
            );
            for extra in self.network.iter().skip(1) {
                endpoints.insert(extra.clone(), EndpointSettings::default());
            }
        }

        let config = Config {
            hostname: self.hostname.clone(),
            domainname: self.domainname.clone(),
            user: self.user.clone(),
            attach_stdin,
            attach_stdout,
            attach_stderr,
            exposed_ports: if exposed.is_empty() { None } else { Some(exposed) },
            tty: self.tty,
            open_stdin: self.interactive,
            stdin_once: false,
            env: some_if(env_list),
            cmd: if cmd.is_empty() { None } else { Some(cmd.to_vec()) },
            healthcheck,
            image: image.to_string(),
            volumes: Some(volumes),
            working_dir: self.workdir.clone(),
            entrypoint,
            mac_address: String::new(),
            labels: Some(parse::kv_map(&labels)),
            stop_signal: self.stop_signal.clone(),
            stop_timeout: self.stop_timeout,
            ..Default::default()
        };

        let host = HostConfig {
            binds: some_if(binds),
            container_id_file: self.cidfile.clone(),
            log_config: LogConfig { kind: self.log_driver.clone(), config: Some(parse::kv_map(&self.log_opt)) },
            network_mode,
            port_bindings: Some(bindings),
            restart_policy: restart,
            auto_remove: self.rm,
            volume_driver: self.volume_driver.clone(),
            volumes_from: some_if(self.volumes_from.clone()),
            console_size: Some([0, 0]),
            annotations: if self.annotation.is_empty() { None } else { Some(parse::kv_map(&self.annotation)) },
            cap_add: some_if(self.cap_add.clone()),
            cap_drop: some_if(self.cap_drop.clone()),
            cgroupns_mode: self.cgroupns.clone(),
            dns: Some(self.dns.clone()),
            dns_options: Some(self.dns_option.clone()),
            dns_search: Some(self.dns_search.clone()),
            extra_hosts: some_if(self.add_host.clone()),
            group_add: some_if(self.group_add.clone()),
            ipc_mode: self.ipc.clone(),
            links: some_if(self.link.clone()),
            oom_score_adj: self.oom_score_adj,
            pid_mode: self.pid.clone(),
            privileged: self.privileged,
            publish_all_ports: self.publish_all,
            readonly_rootfs: self.read_only,
            security_opt: some_if(self.security_opt.clone()),
            storage_opt: if self.storage_opt.is_empty() { None } else { Some(parse::kv_map(&self.storage_opt)) },
            tmpfs: if tmpfs.is_empty() { None } else { Some(tmpfs) },
            uts_mode: self.uts.clone(),
            userns_mode: self.userns.clone(),
            shm_size: self.shm_size.unwrap_or(0),
            sysctls: if self.sysctl.is_empty() { None } else { Some(parse::kv_map(&self.sysctl)) },
            runtime: self.runtime.clone(),
            isolation: self.isolation.clone(),
            cpu_shares: self.cpu_shares,
            memory: self.memory.unwrap_or(0),
            nano_cpus: self.cpus.unwrap_or(0),
            cgroup_parent: self.cgroup_parent.clone(),
            blkio_weight: self.blkio_weight,
            blkio_weight_device: Some(self.blkio_weight_device.clone()),
            blkio_device_read_bps: Some(self.device_read_bps.clone()),
            blkio_device_write_bps: Some(self.device_write_bps.clone()),
            blkio_device_read_iops: Some(self.device_read_iops.clone()),
            blkio_device_write_iops: Some(self.device_write_iops.clone()),
            cpu_period: self.cpu_period,
            cpu_quota: self.cpu_quota,
            cpu_realtime_period: self.cpu_rt_period,
            cpu_realtime_runtime: self.cpu_rt_runtime,
            cpuset_cpus: self.cpuset_cpus.clone(),
            cpuset_mems: self.cpuset_mems.clone(),
            devices: Some(self.device.clone()),
            device_cgroup_rules: some_if(self.device_cgroup_rule.clone()),
            memory_reservation: self.memory_reservation.unwrap_or(0),
            memory_swap: self.memory_swap.unwrap_or(0),
            memory_swappiness: Some(self.memory_swappiness),
            oom_kill_disable: Some(self.oom_kill_disable),
            pids_limit: Some(self.pids_limit.unwrap_or(0)),
            ulimits: Some(self.ulimit.clone()),
            mounts: some_if(self.mount.clone()),
            init: if self.init { Some(true) } else { None },
            ..Default::default()
        };
        if self.memory_swappiness != -1 && !(0..=100).contains(&self.memory_swappiness) {
            return Err(format!("invalid value: {}. Valid memory swappiness range is 0-100", self.memory_swappiness));
        }
        if self.oom_score_adj < -1000 || self.oom_score_adj > 1000 {
            return Err(format!("invalid value: {}. Valid OOM score adjustment range is -1000-1000", self.oom_score_adj));
        }

        Ok(CreateRequest {
            config,
            host_config: Some(host),
            networking_config: Some(NetworkingConfig { endpoints_config: Some(endpoints) }),
        })
    }
}
