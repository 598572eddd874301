//! Container lifecycle: create, start, stop, kill, restart, pause, unpause, remove,
//! rename, update, wait.

use std::sync::Arc;
use std::time::Duration;

use berth_shim::protocol::Request;
use berth_types::container::{Config, CreateRequest, CreateResponse, HostConfig, UpdateConfig, UpdateResponse, WaitResponse};

use crate::container::mounts::{self, VolumeResolver};
use crate::container::record::{ContainerRecord, Extensions, NetworkRecord, StateRecord, Status};
use crate::container::{Container, spec};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::shimclient;
use crate::util::{now_rfc3339, random_id, random_name, valid_container_name};

/// Docker's `wait` conditions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitCondition {
    NotRunning,
    NextExit,
    Removed,
}

impl WaitCondition {
    pub fn parse(s: &str) -> Result<WaitCondition> {
        match s {
            "" | "not-running" => Ok(WaitCondition::NotRunning),
            "next-exit" => Ok(WaitCondition::NextExit),
            "removed" => Ok(WaitCondition::Removed),
            _ => Err(Error::invalid(format!("invalid condition: \"{s}\""))),
        }
    }
}

struct Vols<'a> {
    engine: &'a Engine,
    created: std::cell::RefCell<Vec<String>>,
}

impl VolumeResolver for Vols<'_> {
    fn named(&self, name: &str, labels: Option<&std::collections::BTreeMap<String, String>>) -> Result<String> {
        if self.engine.volumes.get(name).is_err() {
            let v = self.engine.volumes.create(Some(name), "local", Default::default(), labels.cloned().unwrap_or_default(), false)?;
            self.engine.events.emit("volume", "create", &v.name, [("driver".to_string(), "local".to_string())].into_iter().collect());
            self.created.borrow_mut().push(name.to_string());
        }
        Ok(self.path_of(name))
    }
    fn anonymous(&self) -> Result<(String, String)> {
        let v = self.engine.volumes.create(None, "local", Default::default(), Default::default(), true)?;
        self.engine.events.emit("volume", "create", &v.name, [("driver".to_string(), "local".to_string())].into_iter().collect());
        self.created.borrow_mut().push(v.name.clone());
        Ok((v.name.clone(), self.path_of(&v.name)))
    }
    fn path_of(&self, name: &str) -> String {
        self.engine.volumes.data_path(name).to_string_lossy().into_owned()
    }
}

/// Docker's merge of the image's config into a new container's.
pub fn merge_image_config(cfg: &mut Config, img: &Config) {
    // Env: the image's, overridden key by key by the container's.
    let mut env: Vec<String> = img.env.clone().unwrap_or_default();
    for e in cfg.env.clone().unwrap_or_default() {
        let key = e.split('=').next().unwrap_or("").to_string();
        env.retain(|x| x.split('=').next().unwrap_or("") != key);
        env.push(e);
    }
    cfg.env = Some(env);
    let user_entrypoint = cfg.entrypoint.as_ref().is_some_and(|e| !e.is_empty());
    if !user_entrypoint {
        // An explicitly empty entrypoint (`[]`) clears the image's, as in moby.
        if cfg.entrypoint.is_none() {
            cfg.entrypoint = img.entrypoint.clone();
        }
        if cfg.cmd.as_ref().is_none_or(|c| c.is_empty()) {
            cfg.cmd = img.cmd.clone();
        }
    }
    if cfg.working_dir.is_empty() {
        cfg.working_dir = img.working_dir.clone();
    }
    if cfg.user.is_empty() {
        cfg.user = img.user.clone();
    }
    if let Some(ports) = &img.exposed_ports {
        let mine = cfg.exposed_ports.get_or_insert_with(Default::default);
        for (k, v) in ports {
            mine.entry(k.clone()).or_insert(*v);
        }
    }
    if let Some(vols) = &img.volumes {
        let mine = cfg.volumes.get_or_insert_with(Default::default);
        for (k, v) in vols {
            mine.entry(k.clone()).or_insert(*v);
        }
    }
    let mut labels = img.labels.clone().unwrap_or_default();
    labels.extend(cfg.labels.clone().unwrap_or_default());
    cfg.labels = Some(labels);
    if cfg.stop_signal.is_empty() {
        cfg.stop_signal = img.stop_signal.clone();
    }
    if cfg.healthcheck.is_none() {
        cfg.healthcheck = img.healthcheck.clone();
    } else if let (Some(h), Some(ih)) = (cfg.healthcheck.as_mut(), img.healthcheck.as_ref()) {
        if h.test.as_ref().is_none_or(|t| t.is_empty()) {
            h.test = ih.test.clone();
        }
        if h.interval == 0 {
            h.interval = ih.interval;
        }
        if h.timeout == 0 {
            h.timeout = ih.timeout;
        }
        if h.start_period == 0 {
            h.start_period = ih.start_period;
        }
        if h.retries == 0 {
            h.retries = ih.retries;
        }
    }
    if cfg.shell.is_none() {
        cfg.shell = img.shell.clone();
    }
    if cfg.on_build.is_none() {
        cfg.on_build = img.on_build.clone();
    }
}

/// Docker's restart policy rules.
pub fn validate_restart_policy(hc: &HostConfig) -> Result<()> {
    let p = &hc.restart_policy;
    match p.name.as_str() {
        "" | "no" => {
            if p.maximum_retry_count != 0 {
                return Err(Error::invalid("invalid restart policy: maximum retry count can only be used with 'on-failure'"));
            }
        }
        "always" | "unless-stopped" => {
            if p.maximum_retry_count != 0 {
                return Err(Error::invalid("invalid restart policy: maximum retry count can only be used with 'on-failure'".to_string()));
            }
        }
        "on-failure" => {
            if p.maximum_retry_count < 0 {
                return Err(Error::invalid("invalid restart policy: maximum retry count cannot be negative"));
            }
        }
        other => return Err(Error::invalid(format!("invalid restart policy: unknown policy '{other}'; use one of 'no', 'always', 'on-failure', or 'unless-stopped'"))),
    }
    if hc.auto_remove && !matches!(p.name.as_str(), "" | "no") {
        return Err(Error::invalid("can't create 'AutoRemove' container with restart policy"));
    }
    Ok(())
}

/// Parses "SIGTERM", "TERM", "term", "15" into a signal number.
pub fn parse_signal(s: &str) -> Result<i32> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i32>() {
        if (1..=64).contains(&n) {
            return Ok(n);
        }
        return Err(Error::invalid(format!("Invalid signal: {s}")));
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") { up.clone() } else { format!("SIG{up}") };
    if let Some(rest) = name.strip_prefix("SIGRTMIN+")
        && let Ok(n) = rest.parse::<i32>() {
            return Ok(libc::SIGRTMIN() + n);
        }
    name.parse::<nix::sys::signal::Signal>().map(|s| s as i32).map_err(|_| Error::invalid(format!("Invalid signal: {s}")))
}

impl Engine {
    pub async fn create_container(self: &Arc<Self>, name: Option<&str>, req: CreateRequest) -> Result<CreateResponse> {
        self.create_container_for(name, req, "").await
    }

    /// `create` with the API's `platform` parameter (`os[/arch[/variant]]`, empty for
    /// none): the image must be of that platform (404 otherwise, as dockerd); without
    /// one, an image of another platform than the host's is used with a warning.
    pub async fn create_container_for(self: &Arc<Self>, name: Option<&str>, req: CreateRequest, platform: &str) -> Result<CreateResponse> {
        self.create_container_timed(name, req, platform, Extensions::default(), None).await
    }

    /// [`create_container`](Self::create_container) with what only the CRI asks for:
    /// `ext` (a pause sandbox without image, strict groups, the CRI's metadata) and, with
    /// `ext.cri_log`, the CRI-format log's path (None or empty: no log).
    pub async fn create_container_ext(self: &Arc<Self>, name: Option<&str>, req: CreateRequest, ext: Extensions, cri_log_path: Option<String>) -> Result<CreateResponse> {
        self.create_container_timed(name, req, "", ext, cri_log_path).await
    }

    async fn create_container_timed(self: &Arc<Self>, name: Option<&str>, req: CreateRequest, platform: &str, ext: Extensions, cri_log_path: Option<String>) -> Result<CreateResponse> {
        let t0 = std::time::Instant::now();
        let r = self.create_container_untimed(name, req, platform, ext, cri_log_path).await;
        self.metrics.observe_action("create", t0.elapsed(), r.is_ok());
        r
    }

    async fn create_container_untimed(self: &Arc<Self>, name: Option<&str>, req: CreateRequest, platform: &str, mut ext: Extensions, cri_log_path: Option<String>) -> Result<CreateResponse> {
        let wanted = if platform.is_empty() {
            None
        } else {
            Some(crate::images::parse_platform_arg(platform)?)
        };
        let mut warnings = Vec::new();
        let mut cfg = req.config;
        let mut hc = req.host_config.unwrap_or_default();
        let networking = req.networking_config;
        if cfg.image.is_empty() && !ext.pause {
            return Err(Error::invalid("no image specified: a container needs an image"));
        }
        let random_named = name.map(|n| n.trim_start_matches('/')).filter(|n| !n.is_empty()).is_none();
        let name = match name.map(|n| n.trim_start_matches('/')).filter(|n| !n.is_empty()) {
            Some(n) => {
                if !valid_container_name(n) {
                    return Err(Error::invalid(format!("Invalid container name ({n}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")));
                }
                if let Some(other) = self.containers.name_in_use(n) {
                    return Err(Error::conflict(format!(
                        "Conflict. The container name \"/{n}\" is already in use by container \"{other}\". You have to remove (or rename) that container to be able to reuse that name."
                    )));
                }
                n.to_string()
            }
            None => loop {
                let n = random_name();
                if self.containers.name_in_use(&n).is_none() {
                    break n;
                }
            },
        };
        let mut ph = crate::timing::Phases::new("create", "-");
        let image = if ext.pause {
            // The sandbox's process is the runtime's pause; its root an empty directory.
            cfg.entrypoint = Some(vec!["/pause".into()]);
            cfg.cmd = None;
            hc.readonly_rootfs = true;
            crate::images::ResolvedImage { id: String::new(), config: Default::default(), platform: berth_registry::manifest::Platform::host() }
        } else {
            match &wanted {
                Some(w) => {
                    let id = self.images.resolve_platform_id(&cfg.image, w).await?;
                    self.images.resolve(&id).await?
                }
                None => self.images.resolve(&cfg.image).await?,
            }
        };
        let have = image.platform.clone().normalised();
        match &wanted {
            Some(_) => {}
            None if !berth_registry::manifest::Platform::host().matches(&have) && !have.architecture.is_empty() => warnings.push(format!(
                "The requested image's platform ({have}) does not match the detected host platform ({}) and no specific platform was requested",
                berth_registry::manifest::Platform::host()
            )),
            _ => {}
        }
        ph.mark("image");
        merge_image_config(&mut cfg, &image.config);
        let (path, args) = {
            let mut full: Vec<String> = cfg.entrypoint.clone().unwrap_or_default();
            full.extend(cfg.cmd.clone().unwrap_or_default());
            if full.is_empty() {
                return Err(Error::invalid("no command specified"));
            }
            (full[0].clone(), full[1..].to_vec())
        };

        validate_restart_policy(&hc)?;
        spec::validate_resources(hc.memory, hc.memory_swap, hc.memory_reservation, hc.nano_cpus, hc.cpu_quota, hc.cpu_period, hc.cpu_shares)?;
        if self.cfg.rootless
            && let Some(flag) = spec::rootless_limit(&hc)
        {
            return Err(spec::rootless_limit_error(flag));
        }
        spec::capabilities(&hc)?;
        crate::container::devices::validate(&hc)?;
        if ext.cri_log {
            // The CRI names the file; no path means no log.
            hc.log_config.kind = if cri_log_path.as_deref().is_some_and(|p| !p.is_empty()) { "cri".into() } else { "none".into() };
            hc.log_config.config = None;
        } else {
            crate::logconfig::merge_and_validate(&self.cfg, &mut hc.log_config)?;
        }
        if hc.network_mode.is_empty() {
            hc.network_mode = "default".into();
        }
        self.net.validate_mode(&hc, &self.containers)?;
        let links = crate::links::normalize(hc.links.as_deref().unwrap_or_default(), &name, &hc.network_mode, &self.containers)?;
        hc.links = (!links.is_empty()).then_some(links);
        let networks = self.net.initial_networks(&hc, networking.as_ref()).await?;
        self.seccomp_profile(&hc, &[])?;
        let runtime = if hc.runtime.is_empty() { self.cfg.default_runtime.clone() } else { hc.runtime.clone() };
        crate::runtimes::RuntimeHandle::resolve(&self.cfg, &runtime)?;
        hc.runtime = runtime.clone();
        if hc.init == Some(true) && runtime != "berth" {
            return Err(Error::invalid(format!("--init needs berth's own runtime (this container uses {runtime})")));
        }
        if hc.ipc_mode.is_empty() {
            hc.ipc_mode = "private".into();
        }
        if hc.cgroupns_mode.is_empty() {
            hc.cgroupns_mode = if self.cgroup_v2 { "private".into() } else { "host".into() };
        }
        if hc.shm_size == 0 {
            hc.shm_size = 64 << 20;
        }
        if hc.restart_policy.name.is_empty() {
            hc.restart_policy.name = "no".into();
        }
        if hc.masked_paths.is_none() && !hc.privileged {
            hc.masked_paths = Some(spec::MASKED_PATHS.iter().map(|s| s.to_string()).collect());
        }
        if hc.readonly_paths.is_none() && !hc.privileged {
            hc.readonly_paths = Some(spec::READONLY_PATHS.iter().map(|s| s.to_string()).collect());
        }
        for p in [&hc.pid_mode, &hc.ipc_mode] {
            if let Some(other) = p.strip_prefix("container:") {
                self.containers.get(other)?;
            }
        }
        // Docker's containers (not the CRI's, which say what they want) under
        // --userns-remap: the daemon's user namespace, unless --userns=host.
        if ext.is_empty() {
            ext.userns = self.remap_userns(&hc)?;
        }

        let id = random_id();
        if cfg.hostname.is_empty() {
            cfg.hostname = if hc.network_mode == "host" { hostname() } else { id[..12].to_string() };
        }
        let vols = Vols { engine: self, created: Default::default() };
        let from = |n: &str| -> Result<Vec<crate::container::MountRecord>> { Ok(self.containers.get(n)?.snapshot().mounts) };
        let mounts = match mounts::resolve(&cfg, &hc, &vols, &from) {
            Ok(m) => m,
            Err(e) => {
                self.discard_volumes(&vols.created.borrow());
                return Err(e);
            }
        };
        let created_vols = vols.created.borrow().clone();
        let dir = crate::container::ContainerRecord::dir(&self.cfg.data_root, &id);
        let rec = ContainerRecord {
            id: id.clone(),
            name: format!("/{name}"),
            created: now_rfc3339(),
            path,
            args,
            config: cfg,
            host_config: hc,
            image_id: image.id.clone(),
            state: StateRecord::default(),
            restart_count: 0,
            network: NetworkRecord { networks, ..Default::default() },
            mounts,
            log_path: match (&cri_log_path, ext.cri_log) {
                (Some(p), true) => p.clone(),
                _ => dir.join(format!("{id}-json.log")).to_string_lossy().into_owned(),
            },
            resolv_conf_path: dir.join("resolv.conf").to_string_lossy().into_owned(),
            hostname_path: dir.join("hostname").to_string_lossy().into_owned(),
            hosts_path: dir.join("hosts").to_string_lossy().into_owned(),
            generated_digests: Default::default(),
            runtime,
            foreign_platform: if !have.architecture.is_empty() && !berth_registry::manifest::Platform::host().matches(&have) { have.to_string() } else { String::new() },
            ext,
        };
        ph.mark("validate");
        let snapshot = if rec.ext.pause { Ok(()) } else { self.images.prepare_snapshot(&id, &image.id, rec.host_config.auto_remove).await };
        if let Err(e) = snapshot {
            self.discard_volumes(&created_vols);
            return Err(e);
        }
        let mut rec = rec;
        let mut attempt = 0;
        let added = loop {
            match self.containers.add(rec.clone()) {
                // Two creates drew the same random name at once: draw again.
                Err(e) if e.kind == crate::ErrorKind::Conflict && random_named && attempt < 10 => {
                    attempt += 1;
                    rec.name = format!("/{}", if attempt < 3 { random_name() } else { format!("{}{}", random_name(), attempt) });
                }
                other => break other,
            }
        };
        let c = match added {
            Ok(c) => c,
            Err(e) => {
                let _ = self.images.remove_snapshot(&id, false).await;
                self.discard_volumes(&created_vols);
                let _ = std::fs::remove_dir_all(&dir);
                return Err(e);
            }
        };
        ph.mark("snapshot+record");
        self.emit_container(&c.snapshot(), "create", &[]);
        ph.mark("event");
        ph.finish();
        Ok(CreateResponse { id, warnings })
    }

    /// `HostConfig.UsernsMode` checked as dockerd does, and the user namespace of a
    /// container under `--userns-remap`: the daemon's mappings, made at start; a
    /// container that shares another's network, IPC or PID namespace shares its user
    /// namespace too (as dockerd does: the namespaces it joins belong to that one).
    fn remap_userns(&self, hc: &HostConfig) -> Result<Option<crate::container::record::UserNs>> {
        match hc.userns_mode.as_str() {
            "" | "host" => {}
            other => return Err(Error::invalid(format!("invalid USER mode: {other}"))),
        }
        let Some(remap) = &self.remap else { return Ok(None) };
        if hc.userns_mode == "host" {
            return Ok(None);
        }
        if hc.privileged {
            return Err(Error::invalid(
                "privileged mode is incompatible with user namespaces.  You must run the container in the host namespace when running privileged mode",
            ));
        }
        if hc.network_mode == "host" {
            return Err(Error::invalid("cannot share the host's network namespace when user namespaces are enabled"));
        }
        if hc.pid_mode == "host" {
            return Err(Error::invalid("cannot share the host PID namespace when user namespaces are enabled"));
        }
        let mut ns = remap.ns.clone();
        for mode in [&hc.network_mode, &hc.ipc_mode, &hc.pid_mode] {
            let Some(other) = mode.strip_prefix("container:") else { continue };
            let oc = self.containers.get(other)?;
            if let Some(u) = oc.with(|r| r.ext.userns.clone()) {
                ns.of = Some(u.of.unwrap_or_else(|| oc.id.clone()));
                break;
            }
        }
        Ok(Some(ns))
    }

    fn discard_volumes(&self, names: &[String]) {
        for n in names {
            let _ = self.volumes.remove(n, &[], true);
        }
    }

    /// The seccomp profile for a container (None: unconfined or privileged).
    pub(crate) fn seccomp_profile(&self, hc: &HostConfig, caps: &[String]) -> Result<Option<serde_json::Value>> {
        if hc.privileged {
            return Ok(None);
        }
        match spec::security_opt(hc, "seccomp") {
            Some("unconfined") => Ok(None),
            Some("builtin") | None => Ok(Some(crate::container::seccomp::default_profile(caps))),
            Some(profile) => {
                // The docker CLI sends the file's content; a path is read here.
                let data = if profile.trim_start().starts_with('{') {
                    profile.as_bytes().to_vec()
                } else {
                    std::fs::read(profile).map_err(|e| Error::invalid(format!("opening seccomp profile ({profile}) failed: {e}")))?
                };
                crate::container::seccomp::from_docker_profile(&data, caps).map(Some)
            }
        }
    }

    pub async fn start_container(self: &Arc<Self>, key: &str) -> Result<()> {
        let t0 = std::time::Instant::now();
        let r = self.start_container_untimed(key).await;
        self.metrics.observe_action("start", t0.elapsed(), r.is_ok());
        r
    }

    async fn start_container_untimed(self: &Arc<Self>, key: &str) -> Result<()> {
        let c = self.container(key)?;
        let _op = c.op.lock().await;
        match c.status() {
            Status::Running => return Err(Error::not_modified("container already started")),
            Status::Paused => return Err(Error::conflict("cannot start a paused container, try unpause instead")),
            Status::Removing | Status::Dead => {
                return Err(Error::conflict(format!("container {} is marked for removal and cannot be started", c.id)));
            }
            _ => {}
        }
        let r = self.start_locked(&c).await;
        if r.is_err() && c.with(|r| r.host_config.auto_remove) {
            // As dockerd: a --rm container that cannot start is removed (clients wait
            // for its removal).
            let engine = self.clone();
            let c2 = c.clone();
            tokio::spawn(async move {
                let _op = c2.op.lock().await;
                let _ = engine.remove_locked(&c2, true, true).await;
            });
        }
        r
    }

    /// Starts the container; the caller holds its op lock.
    pub(crate) async fn start_locked(self: &Arc<Self>, c: &Arc<Container>) -> Result<()> {
        let result = self.start_inner(c).await;
        // What the start took from the pools is made again (also after a failed start,
        // which may have taken some), now out of the start's way; a no-op for full pools.
        if let Some(pool) = &self.userns_pool {
            pool.discard_netns(&crate::userns::path(&self.cfg.exec_root, &c.id));
            pool.refill();
        }
        self.net.refill();
        if let Err(e) = &result {
            let code = if e.message.contains("executable file not found") || e.message.contains("no such file or directory") {
                127
            } else if e.message.contains("permission denied") {
                126
            } else {
                128
            };
            let msg = e.message.clone();
            let _ = c.update_state(false, |r| {
                r.state.error = msg;
                r.state.exit_code = code;
                if r.state.status != Status::Created {
                    r.state.status = Status::Exited;
                }
            });
        }
        result
    }

    async fn start_inner(self: &Arc<Self>, c: &Arc<Container>) -> Result<()> {
        let rec = c.snapshot();
        if !rec.foreign_platform.is_empty() {
            crate::emulation::check(&rec.foreign_platform)?;
        }
        let id = rec.id.clone();
        let rootfs = self.rootfs_of(&id);
        let runtime = self.runtime_of(&rec)?;
        let mut undo = StartUndo::new(self.clone(), id.clone());
        let mut ph = crate::timing::Phases::new("start", &id);

        // A user namespace of its own is made first (the network namespace goes in it);
        // one that is joined must be there, and the image's layers are id-mapped into it.
        let userns = match &rec.ext.userns {
            None => None,
            Some(u) => {
                crate::userns::check_searchable(&[&self.cfg.data_root, &self.cfg.exec_root]).map_err(Error::invalid)?;
                let owner = u.of.as_deref().unwrap_or(&id);
                let at = crate::userns::path(&self.cfg.exec_root, owner);
                // A ready one from the pool when it has one; it is topped up once this
                // start is done (making one forks the daemon: not in the middle of it).
                let pooled = u.of.is_none() && !berth_net::netns::is_netns(&at) && self.userns_pool.as_ref().is_some_and(|p| p.take(&at, u));
                if u.of.is_none() && !pooled {
                    let (at2, u2) = (at.clone(), u.clone());
                    tokio::task::spawn_blocking(move || crate::userns::create(&at2, &u2))
                        .await
                        .map_err(|e| Error::system(e.to_string()))?
                        .map_err(|e| Error::system(format!("making the user namespace: {e}")))?;
                } else if !berth_net::netns::is_netns(&at) {
                    return Err(Error::conflict(format!("the user namespace of container {owner} is gone (is it running?)")));
                }
                ph.mark("userns");
                Some((at, u.root().ok_or_else(|| Error::invalid("a user namespace must map uid and gid 0"))?))
            }
        };
        // The root filesystem's mount (a blocking thread: the kernel's overlay setup) and
        // the network's attach (namespace, veth, addresses, routes) need nothing of each
        // other: they run at once.
        let rootfs_ready = async {
            if rec.ext.pause {
                std::fs::create_dir_all(&rootfs)?;
                if let Some((_, (uid, gid))) = &userns {
                    // The runtime makes its mount points there as the namespace's root.
                    std::os::unix::fs::chown(&rootfs, Some(*uid), Some(*gid))?;
                }
                Ok::<bool, Error>(false)
            } else {
                match &userns {
                    Some((at, root)) => self.images.mount_snapshot_idmapped(&id, &rootfs, at, *root).await?,
                    None => self.images.mount_snapshot(&id, &rootfs).await?,
                }
                Ok(true)
            }
        };
        let (mounted, attached) = tokio::join!(rootfs_ready, self.net.attach(self, &rec));
        undo.rootfs = matches!(mounted, Ok(true));
        undo.network = attached.is_ok();
        let mut net = match (mounted, attached) {
            (Ok(_), Ok(net)) => net,
            (Err(e), _) | (_, Err(e)) => return Err(e),
        };
        ph.mark("rootfs+net");
        for m in rec.mounts.iter().filter(|m| m.kind == "volume") {
            let data = self.volumes.acquire(&m.name)?;
            undo.volumes.push(m.name.clone());
            if let Some((_, root)) = userns.as_ref().filter(|_| rec.ext.userns.as_ref().is_some_and(|u| u.remap)) {
                self.volumes.hand_to(&m.name, &data, *root)?;
            }
        }
        self.copy_up_volumes(c, &rootfs).await?;

        ph.mark("volumes");
        let mut rec = rec;
        rec.network = net.record.clone();
        crate::network::write_files(&mut rec, &net)?;

        let caps = spec::capabilities(&rec.host_config)?;
        let seccomp = self.seccomp_profile(&rec.host_config, &caps)?;
        let pid_ns_of = self.ns_owner_pid(&rec.host_config.pid_mode)?;
        let ipc_ns_of = self.ns_owner_pid(&rec.host_config.ipc_mode)?;
        let shm = self.shm_for(&rec)?;
        undo.shm = rec.host_config.ipc_mode == "shareable";
        // In a user namespace, what the container binds from the host is id-mapped too
        // (copies staged until the runtime has made its mounts). Never under a directory
        // that is removed recursively: a copy left by a crash must not be deleted through.
        let idmap_staging = crate::userns::staging(&self.cfg.exec_root, &id);
        let idmapped = match &userns {
            Some((at, root)) if !rec.ext.pause => {
                // Under --userns-remap (as dockerd) the host's binds keep their owners:
                // only the container's own files (resolv.conf, hostname, hosts) are its
                // root's, as dockerd chowns them.
                let remapped = rec.ext.userns.as_ref().is_some_and(|u| u.remap);
                let mut sources: Vec<(std::path::PathBuf, bool)> = rec
                    .mounts
                    .iter()
                    .filter(|m| m.kind == "bind" && !remapped)
                    .map(|m| (std::path::PathBuf::from(&m.source), true))
                    .collect();
                for p in [&rec.resolv_conf_path, &rec.hostname_path, &rec.hosts_path] {
                    if !p.is_empty() {
                        sources.push((std::path::PathBuf::from(p), false));
                    }
                }
                crate::userns::stage_binds(at, *root, &sources, &idmap_staging)
            }
            _ => Default::default(),
        };
        let inputs = spec::SpecInputs {
            rootfs: &rootfs,
            netns: net.netns.clone(),
            // Rootless: no cgroup (none is writable); the runtime then makes none.
            cgroup_parent: if self.cfg.rootless { "" } else if rec.host_config.cgroup_parent.is_empty() { &self.cfg.cgroup_parent } else { &rec.host_config.cgroup_parent },
            pid_ns_of,
            ipc_ns_of,
            cgroup_v2: self.cgroup_v2,
            seccomp,
            hostname: rec.config.hostname.clone(),
            shm,
            userns: userns.as_ref().map(|(at, _)| at.clone()),
            idmapped,
        };
        let mut spec = spec::build(&rec, &inputs)?;
        spec::apply_no_new_privileges(&mut spec["process"], &rec.host_config, self.cfg.no_new_privileges);
        let state_dir = self.state_dir_of(&id);
        std::fs::create_dir_all(&state_dir)?;
        crate::util::write_replace(&state_dir.join("config.json"), &serde_json::to_vec(&spec)?)?;
        ph.mark("spec");

        let shim_cfg = berth_shim::ShimConfig {
            id: id.clone(),
            bundle: state_dir.clone(),
            state_dir: state_dir.clone(),
            socket: self.shim_socket_of(&id),
            runtime: runtime.shim_kind(),
            tty: rec.config.tty,
            open_stdin: rec.config.open_stdin,
            log: crate::logconfig::for_shim(&rec, &self.cfg.data_root, self.log_rotation),
            console_size: rec.host_config.console_size.filter(|[h, w]| *h > 0 && *w > 0).map(|[h, w]| (h as u16, w as u16)),
        };
        let exe = self.shim_exe.clone();
        let zygote = self.cfg.exec_root.join(berth_shim::zygote::SOCKET);
        // The ports are published while the shim creates the container (both wait on
        // processes of their own); the process starts after both.
        let (published, spawned) = tokio::join!(
            self.net.publish(&rec, &mut net),
            tokio::task::spawn_blocking(move || berth_shim::spawn::spawn(&exe, &shim_cfg, Some(&zygote)))
        );
        // Created (or not): the container holds its mounts, the staged copies can go.
        crate::userns::release_binds(&idmap_staging);
        let spawned = spawned.map_err(|e| Error::system(format!("shim: {e}")))?;
        let berth_shim::spawn::Spawned { child, pid: init_pid, phases: shim_phases } = spawned.map_err(|e| match e {
            berth_shim::spawn::SpawnError::Create(msg) => Error::invalid(format!("failed to create task for container: {msg}")),
            other => Error::system(other.to_string()),
        })?;
        undo.shim = Some(self.shim_socket_of(&id));
        // Reap what we started (an exec'd shim, or a new zygote) when it ends, so it
        // leaves no zombie; a forked shim is the zygote's child.
        if let Some(child) = child {
            crate::reaper::adopt(child);
        }
        published?;
        ph.mark("shim");
        // Inside "shim": the shim's own report of where its create went.
        ph.detail("shim", shim_phases);

        let socket = self.shim_socket_of(&id);
        let open_stdin = rec.config.open_stdin;
        let (resp, reader, writer) = shimclient::open(&socket, &Request::Attach { stdin: open_stdin, stdout: true, stderr: true })
            .await
            .map_err(|e| Error::system(format!("attaching to shim: {e}")))?;
        if !resp.ok {
            return Err(Error::system(format!("attaching to shim: {}", resp.error)));
        }
        let generation = c.next_generation();
        let stdin = crate::monitor::spawn(self.clone(), c.clone(), generation, reader, writer, open_stdin);
        c.set_live(Some(crate::container::live::Live { shim_socket: socket.clone(), init_pid, stdin }));
        ph.mark("attach");

        // Rootless: slirp4netns came up meanwhile; the process must find its network.
        self.net.ready(&mut net).await?;
        let r = shimclient::call(&socket, &Request::Start).await.map_err(|e| Error::system(format!("starting container: {e}")))?;
        if !r.ok {
            return Err(Error::system(format!("starting container: {}", r.error)));
        }
        let network = net.record.clone();
        let digests = std::mem::take(&mut rec.generated_digests);
        let rec = c.update_state(false, |r| {
            r.network = network;
            r.generated_digests = digests;
            r.state.manually_stopped = false;
            r.state.started_at = now_rfc3339();
            r.state.error.clear();
            // A process that already exited (and was recorded) keeps its exit.
            if !c.has_exited(generation) {
                r.state.status = Status::Running;
                r.state.pid = init_pid as i64;
                r.state.exit_code = 0;
                r.state.oom_killed = false;
                r.state.finished_at = crate::util::ZERO_TIME.into();
            }
        })?;
        undo.disarm();
        ph.mark("start+record");
        ph.finish();
        self.net.started(self, &rec).await;
        self.emit_container(&rec, "start", &[]);
        crate::health::spawn(self.clone(), c.clone(), generation);
        Ok(())
    }

    /// Copies the image's content into empty volumes mounted over it, once.
    async fn copy_up_volumes(&self, c: &Container, rootfs: &std::path::Path) -> Result<()> {
        let rec = c.snapshot();
        let mut done = Vec::new();
        for m in rec.mounts.iter().filter(|m| m.kind == "volume" && m.copy_up) {
            let src = rootfs.join(m.destination.trim_start_matches('/'));
            let dst = std::path::PathBuf::from(&m.source);
            let empty = std::fs::read_dir(&dst).map(|mut d| d.next().is_none()).unwrap_or(false);
            if empty && src.is_dir() {
                let (s, d) = (src.clone(), dst.clone());
                tokio::task::spawn_blocking(move || crate::fsutil::copy_tree(&s, &d))
                    .await
                    .map_err(|e| Error::system(e.to_string()))?
                    .map_err(|e| Error::system(format!("copying image content into volume {}: {e}", m.name)))?;
            }
            done.push(m.destination.clone());
        }
        if !done.is_empty() {
            c.update(false, |r| {
                for m in r.mounts.iter_mut() {
                    if done.contains(&m.destination) {
                        m.copy_up = false;
                    }
                }
            })?;
        }
        Ok(())
    }

    /// /dev/shm shared the way Docker does: a shareable container's is a tmpfs mounted
    /// under its directory (mounted here, unmounted when it stops); `container:<id>`
    /// shows that one. Others get a tmpfs of their own (None).
    fn shm_for(&self, rec: &ContainerRecord) -> Result<Option<std::path::PathBuf>> {
        let hc = &rec.host_config;
        if hc.ipc_mode == "shareable" {
            let dir = ContainerRecord::dir(&self.cfg.data_root, &rec.id).join("shm");
            std::fs::create_dir_all(&dir)?;
            if !crate::fsutil::is_mount_point(&dir) {
                let size = if hc.shm_size > 0 { hc.shm_size } else { 64 << 20 };
                let flags = nix::mount::MsFlags::MS_NOSUID | nix::mount::MsFlags::MS_NODEV | nix::mount::MsFlags::MS_NOEXEC;
                nix::mount::mount(Some("shm"), &dir, Some("tmpfs"), flags, Some(format!("mode=1777,size={size}").as_str()))
                    .map_err(|e| Error::system(format!("mounting the shareable /dev/shm of {}: {e}", rec.id)))?;
            }
            return Ok(Some(dir));
        }
        let Some(other) = hc.ipc_mode.strip_prefix("container:") else { return Ok(None) };
        let oc = self.containers.get(other)?;
        let dir = ContainerRecord::dir(&self.cfg.data_root, &oc.id).join("shm");
        Ok((oc.with(|r| r.host_config.ipc_mode == "shareable") && crate::fsutil::is_mount_point(&dir)).then_some(dir))
    }

    /// Unmounts a shareable container's /dev/shm (it stopped).
    pub(crate) fn release_shm(&self, id: &str) {
        let dir = ContainerRecord::dir(&self.cfg.data_root, id).join("shm");
        if crate::fsutil::is_mount_point(&dir) {
            let _ = nix::mount::umount2(&dir, nix::mount::MntFlags::MNT_DETACH);
        }
    }

    fn ns_owner_pid(&self, mode: &str) -> Result<Option<i32>> {
        let Some(other) = mode.strip_prefix("container:") else { return Ok(None) };
        let oc = self.containers.get(other)?;
        match oc.live() {
            Some(l) if oc.status().is_alive() => Ok(Some(l.init_pid)),
            _ => Err(Error::conflict(format!("cannot join namespace of a non running container: {}", oc.id))),
        }
    }

    /// Sends a signal through the shim.
    pub(crate) async fn signal(&self, c: &Container, sig: i32) -> Result<()> {
        let live = c.live().ok_or_else(|| Error::conflict(format!("container {} is not running", c.id)))?;
        let r = shimclient::call(&live.shim_socket, &Request::Kill { signal: sig, all: false })
            .await
            .map_err(|e| Error::system(format!("signalling container: {e}")))?;
        if r.ok { Ok(()) } else { Err(Error::conflict(r.error)) }
    }

    /// Waits until the container's current run has ended (or `timeout`).
    pub(crate) async fn wait_exit(&self, c: &Container, timeout: Option<Duration>) -> bool {
        let mut rx = c.watch();
        let fut = async {
            loop {
                if !rx.borrow().status.is_alive() {
                    return;
                }
                if rx.changed().await.is_err() {
                    return;
                }
            }
        };
        match timeout {
            Some(t) => tokio::time::timeout(t, fut).await.is_ok(),
            None => {
                fut.await;
                true
            }
        }
    }

    pub async fn stop_container(self: &Arc<Self>, key: &str, signal: Option<&str>, timeout: Option<i64>) -> Result<()> {
        let t0 = std::time::Instant::now();
        let r = self.stop_container_untimed(key, signal, timeout).await;
        self.metrics.observe_action("stop", t0.elapsed(), r.is_ok());
        r
    }

    async fn stop_container_untimed(self: &Arc<Self>, key: &str, signal: Option<&str>, timeout: Option<i64>) -> Result<()> {
        let c = self.container(key)?;
        let _op = c.op.lock().await;
        self.stop_locked(&c, signal, timeout).await
    }

    pub(crate) async fn stop_locked(&self, c: &Arc<Container>, signal: Option<&str>, timeout: Option<i64>) -> Result<()> {
        if !c.status().is_alive() {
            return Err(Error::not_modified("container already stopped"));
        }
        let rec = c.update(false, |r| r.state.manually_stopped = true)?;
        if rec.state.status == Status::Paused {
            self.runtime_of(&rec)?.resume(&rec.id)?;
            c.update_state(false, |r| r.state.status = Status::Running)?;
        }
        let sig_name = signal.filter(|s| !s.is_empty()).map(str::to_string).unwrap_or_else(|| {
            if rec.config.stop_signal.is_empty() { "SIGTERM".into() } else { rec.config.stop_signal.clone() }
        });
        let sig = parse_signal(&sig_name)?;
        let secs = timeout.or(rec.config.stop_timeout).unwrap_or(10);
        self.emit_container(&rec, "kill", &[("signal", sig.to_string())]);
        let _ = self.signal(c, sig).await;
        let graceful = if secs < 0 { None } else { Some(Duration::from_secs(secs as u64)) };
        if !self.wait_exit(c, graceful).await {
            self.emit_container(&rec, "kill", &[("signal", "9".into())]);
            let _ = self.signal(c, libc::SIGKILL).await;
            if !self.wait_exit(c, Some(Duration::from_secs(30))).await {
                return Err(Error::system(format!("container {} did not exit after SIGKILL", rec.id)));
            }
        }
        self.emit_container(&c.snapshot(), "stop", &[]);
        Ok(())
    }

    pub async fn kill_container(self: &Arc<Self>, key: &str, signal: Option<&str>) -> Result<()> {
        let c = self.container(key)?;
        let sig = parse_signal(signal.filter(|s| !s.is_empty()).unwrap_or("SIGKILL"))?;
        let _op = c.op.lock().await;
        let rec = c.snapshot();
        if !rec.state.status.is_alive() {
            return Err(Error::conflict(format!("Cannot kill container: {key}: container {} is not running", rec.id)));
        }
        if matches!(sig, libc::SIGKILL | libc::SIGTERM | libc::SIGINT) || parse_signal(&rec.config.stop_signal).ok() == Some(sig) {
            c.update(false, |r| r.state.manually_stopped = true)?;
        }
        if rec.state.status == Status::Paused && sig == libc::SIGKILL {
            // A frozen process cannot die; thaw it so the kill lands.
            let _ = self.runtime_of(&rec)?.resume(&rec.id);
            c.update_state(false, |r| r.state.status = Status::Running)?;
        }
        self.emit_container(&rec, "kill", &[("signal", sig.to_string())]);
        self.signal(&c, sig).await?;
        if sig == libc::SIGKILL {
            self.wait_exit(&c, Some(Duration::from_secs(30))).await;
        }
        Ok(())
    }

    pub async fn restart_container(self: &Arc<Self>, key: &str, signal: Option<&str>, timeout: Option<i64>) -> Result<()> {
        let t0 = std::time::Instant::now();
        let r = self.restart_container_untimed(key, signal, timeout).await;
        self.metrics.observe_action("restart", t0.elapsed(), r.is_ok());
        r
    }

    async fn restart_container_untimed(self: &Arc<Self>, key: &str, signal: Option<&str>, timeout: Option<i64>) -> Result<()> {
        let c = self.container(key)?;
        let _op = c.op.lock().await;
        if c.status().is_alive() {
            match self.stop_locked(&c, signal, timeout).await {
                Ok(()) => {}
                Err(e) if e.kind == crate::ErrorKind::NotModified => {}
                Err(e) => return Err(e),
            }
        }
        // The exit handler of the stopped run must have finished its clean-up.
        self.wait_cleanup(&c).await;
        self.start_locked(&c).await?;
        self.emit_container(&c.snapshot(), "restart", &[]);
        Ok(())
    }

    /// Waits until the monitor of the last run has released the container.
    pub(crate) async fn wait_cleanup(&self, c: &Container) {
        for _ in 0..500 {
            if c.live().is_none() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn pause_container(self: &Arc<Self>, key: &str) -> Result<()> {
        let c = self.container(key)?;
        let _op = c.op.lock().await;
        let rec = c.snapshot();
        match rec.state.status {
            Status::Running => {}
            Status::Paused => return Err(Error::conflict(format!("Container {} is already paused", rec.id))),
            _ => return Err(Error::conflict(format!("Container {} is not running", rec.id))),
        }
        let rt = self.runtime_of(&rec)?;
        let id = rec.id.clone();
        tokio::task::spawn_blocking(move || rt.pause(&id)).await.map_err(|e| Error::system(e.to_string()))??;
        let rec = c.update_state(false, |r| r.state.status = Status::Paused)?;
        self.emit_container(&rec, "pause", &[]);
        Ok(())
    }

    pub async fn unpause_container(self: &Arc<Self>, key: &str) -> Result<()> {
        let c = self.container(key)?;
        let _op = c.op.lock().await;
        let rec = c.snapshot();
        if rec.state.status != Status::Paused {
            return Err(Error::conflict(format!("Container {} is not paused", rec.id)));
        }
        let rt = self.runtime_of(&rec)?;
        let id = rec.id.clone();
        tokio::task::spawn_blocking(move || rt.resume(&id)).await.map_err(|e| Error::system(e.to_string()))??;
        let rec = c.update_state(false, |r| r.state.status = Status::Running)?;
        self.emit_container(&rec, "unpause", &[]);
        Ok(())
    }

    /// `DELETE /containers/{parent}/{alias}?link=1` (`docker rm --link`): removes the
    /// legacy link `alias` from container `parent`, as dockerd's rmLink. A name without
    /// a parent is the container's own name, which cannot be removed that way.
    pub async fn remove_link(self: &Arc<Self>, name: &str) -> Result<()> {
        let full = format!("/{}", name.trim_start_matches('/'));
        let (parent, alias) = full.rsplit_once('/').unwrap_or(("", &full));
        if parent.is_empty() {
            self.container(name)?;
            // dockerd answers 500 (an untyped error); the message says what it is: 409.
            return Err(Error::conflict("Conflict, cannot remove the default link name of the container"));
        }
        let Ok(pc) = self.container(parent.trim_start_matches('/')) else {
            return Err(Error::no_such_container(name));
        };
        let _op = pc.op.lock().await;
        let links = pc.snapshot().host_config.links.unwrap_or_default();
        let keep: Vec<String> = links.iter().filter(|l| crate::links::parse(l).map(|x| x.alias != alias).unwrap_or(true)).cloned().collect();
        if keep.len() == links.len() {
            return Err(Error::no_such_container(name));
        }
        pc.update(false, |r| r.host_config.links = (!keep.is_empty()).then_some(keep))?;
        Ok(())
    }

    pub async fn remove_container(self: &Arc<Self>, key: &str, force: bool, remove_volumes: bool) -> Result<()> {
        let t0 = std::time::Instant::now();
        let r = self.remove_container_untimed(key, force, remove_volumes).await;
        self.metrics.observe_action("delete", t0.elapsed(), r.is_ok());
        r
    }

    async fn remove_container_untimed(self: &Arc<Self>, key: &str, force: bool, remove_volumes: bool) -> Result<()> {
        let c = self.container(key)?;
        let _op = c.op.lock().await;
        self.remove_locked(&c, force, remove_volumes).await
    }

    pub(crate) async fn remove_locked(self: &Arc<Self>, c: &Arc<Container>, force: bool, remove_volumes: bool) -> Result<()> {
        let rec = c.snapshot();
        match rec.state.status {
            Status::Running | Status::Paused | Status::Restarting if !force => {
                let what = match rec.state.status {
                    Status::Paused => "paused",
                    Status::Restarting => "restarting",
                    _ => "running",
                };
                return Err(Error::conflict(format!(
                    "cannot remove container \"{}\": container is {what}: stop the container before removing or force remove",
                    rec.name
                )));
            }
            Status::Removing => return Err(Error::conflict(format!("removal of container {} is already in progress", rec.id))),
            _ => {}
        }
        // On a full disk the record cannot be saved; removing the container is how
        // space is freed, so that must not stop it (found by tests/disk_full.rs).
        let full_disk_ok = |r: Result<crate::container::ContainerRecord>| match r {
            Err(e) if e.message.contains("no space left on device") => {
                tracing::warn!("removing {}: {}", rec.id, e.message);
                Ok(())
            }
            r => r.map(|_| ()),
        };
        if rec.state.status.is_alive() {
            full_disk_ok(c.update(false, |r| r.state.manually_stopped = true))?;
            if rec.state.status == Status::Paused {
                let _ = self.runtime_of(&rec)?.resume(&rec.id);
            }
            let _ = self.signal(c, libc::SIGKILL).await;
            if !self.wait_exit(c, Some(Duration::from_secs(30))).await {
                return Err(Error::system(format!("could not kill running container {}, cannot remove", rec.id)));
            }
        }
        self.wait_cleanup(c).await;
        let mut ph = crate::timing::Phases::new("rm", &rec.id);
        full_disk_ok(c.update_state(false, |r| r.state.status = Status::Removing))?;
        ph.mark("mark");
        // A `--rm` container's `docker run` waits for this removal: its directories go
        // to the trash and are deleted just after. An explicit `docker rm` deletes them
        // before it returns, so the space is free when it does.
        let discard = rec.host_config.auto_remove;
        if let Err(e) = self.images.remove_snapshot(&rec.id, discard).await {
            let _ = c.update_state(false, |r| {
                r.state.status = Status::Dead;
                r.state.error = e.message.clone();
            });
            return Err(e.context("removing container filesystem"));
        }
        ph.mark("snapshot");
        self.net.forget(self, &rec).await;
        ph.mark("network");
        if rec.ext.userns.as_ref().is_some_and(|u| u.of.is_none()) {
            let _ = crate::userns::remove(&crate::userns::path(&self.cfg.exec_root, &rec.id));
        }
        if rec.ext.userns.is_some() {
            crate::userns::release_binds(&crate::userns::staging(&self.cfg.exec_root, &rec.id));
        }
        let trash = discard.then(|| self.images.trash());
        self.containers.remove(c, trash.as_deref())?;
        ph.mark("record");
        let _ = std::fs::remove_dir_all(self.state_dir_of(&rec.id));
        if remove_volumes {
            for m in rec.mounts.iter().filter(|m| m.kind == "volume" && m.anonymous) {
                if self.volume_users(&m.name).is_empty() && self.volumes.remove(&m.name, &[], true).is_ok() {
                    self.events.emit("volume", "destroy", &m.name, Default::default());
                }
            }
        }
        self.emit_container(&rec, "destroy", &[]);
        ph.mark("volumes+event");
        ph.finish();
        Ok(())
    }

    /// Names of containers whose mounts use volume `name`.
    pub(crate) fn volume_users(&self, name: &str) -> Vec<String> {
        self.containers
            .list()
            .iter()
            .filter(|c| c.with(|r| r.mounts.iter().any(|m| m.kind == "volume" && m.name == name)))
            .map(|c| c.id.clone())
            .collect()
    }

    pub async fn rename_container(self: &Arc<Self>, key: &str, new_name: &str) -> Result<()> {
        let c = self.container(key)?;
        let new_name = new_name.trim_start_matches('/');
        if new_name.is_empty() {
            return Err(Error::invalid("Neither old nor new names may be empty"));
        }
        if !valid_container_name(new_name) {
            return Err(Error::invalid(format!("Invalid container name ({new_name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed")));
        }
        let old = c.with(|r| r.bare_name().to_string());
        if old == new_name {
            return Err(Error::invalid("Renaming a container with the same name as its current name"));
        }
        self.containers.rename(&c, new_name)?;
        let rec = c.snapshot();
        self.net.renamed(self, &rec, &old).await;
        self.emit_container(&rec, "rename", &[("oldName", format!("/{old}"))]);
        Ok(())
    }

    pub async fn update_container(self: &Arc<Self>, key: &str, upd: UpdateConfig) -> Result<UpdateResponse> {
        let c = self.container(key)?;
        let _op = c.op.lock().await;
        let rec = c.snapshot();
        let mut hc = rec.host_config.clone();
        let set = |dst: &mut i64, v: i64| {
            if v != 0 {
                *dst = v;
            }
        };
        set(&mut hc.cpu_shares, upd.cpu_shares);
        set(&mut hc.memory, upd.memory);
        set(&mut hc.nano_cpus, upd.nano_cpus);
        set(&mut hc.cpu_period, upd.cpu_period);
        set(&mut hc.cpu_quota, upd.cpu_quota);
        set(&mut hc.memory_reservation, upd.memory_reservation);
        set(&mut hc.memory_swap, upd.memory_swap);
        if upd.blkio_weight != 0 {
            hc.blkio_weight = upd.blkio_weight;
        }
        if !upd.cpuset_cpus.is_empty() {
            hc.cpuset_cpus = upd.cpuset_cpus.clone();
        }
        if !upd.cpuset_mems.is_empty() {
            hc.cpuset_mems = upd.cpuset_mems.clone();
        }
        if let Some(p) = upd.pids_limit {
            hc.pids_limit = Some(p);
        }
        if let Some(rp) = &upd.restart_policy {
            hc.restart_policy = rp.clone();
            validate_restart_policy(&hc)?;
        }
        if upd.memory > 0 && rec.host_config.memory_swap > 0 && upd.memory_swap == 0 && upd.memory > rec.host_config.memory_swap {
            return Err(Error::invalid("Memory limit should be smaller than already set memoryswap limit, update the memoryswap at the same time"));
        }
        if self.cfg.rootless
            && let Some(flag) = spec::rootless_limit(&hc)
        {
            return Err(spec::rootless_limit_error(flag));
        }
        let resources = spec::resources(&hc)?;
        if rec.state.status.is_alive() {
            let rt = self.runtime_of(&rec)?;
            let id = rec.id.clone();
            let mut r = resources.clone();
            if let Some(o) = r.as_object_mut() {
                o.remove("devices");
            }
            tokio::task::spawn_blocking(move || rt.update(&id, &r))
                .await
                .map_err(|e| Error::system(e.to_string()))?
                .map_err(|e| Error::invalid(format!("Cannot update container {}: {}", rec.id, e.message)))?;
        }
        let rec = c.update(false, |r| r.host_config = hc)?;
        self.emit_container(&rec, "update", &[]);
        Ok(UpdateResponse { warnings: Vec::new() })
    }

    /// `POST /containers/{id}/wait`: returns the exit code once the condition holds.
    pub async fn wait_container(&self, key: &str, cond: WaitCondition) -> Result<WaitResponse> {
        let c = self.container(key)?;
        let mut rx = c.watch();
        let start = rx.borrow().clone();
        if cond == WaitCondition::NotRunning && !start.status.is_alive() && start.status != Status::Restarting {
            return Ok(wait_response(&start));
        }
        loop {
            if rx.changed().await.is_err() {
                // The container is gone with its sender.
                let w = rx.borrow().clone();
                return Ok(wait_response(&w));
            }
            let w = rx.borrow().clone();
            let done = match cond {
                WaitCondition::NotRunning => !w.status.is_alive() && w.status != Status::Restarting,
                WaitCondition::NextExit => w.exits > start.exits,
                WaitCondition::Removed => w.removed,
            };
            if done {
                return Ok(wait_response(&w));
            }
        }
    }
}

/// The wait answer. `Error` is for a failure of the wait itself, which the engine's
/// waits do not have; a start that failed is reported by the start call (as dockerd).
fn wait_response(w: &crate::container::WaitState) -> WaitResponse {
    WaitResponse { status_code: w.exit_code, error: None }
}

fn hostname() -> String {
    nix::unistd::gethostname().map(|h| h.to_string_lossy().into_owned()).unwrap_or_else(|_| "localhost".into())
}

/// Undoes a half-done start.
struct StartUndo {
    engine: Arc<Engine>,
    id: String,
    rootfs: bool,
    shm: bool,
    volumes: Vec<String>,
    network: bool,
    shim: Option<std::path::PathBuf>,
    armed: bool,
}

impl StartUndo {
    fn new(engine: Arc<Engine>, id: String) -> StartUndo {
        StartUndo { engine, id, rootfs: false, shm: false, volumes: Vec::new(), network: false, shim: None, armed: true }
    }
    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for StartUndo {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let engine = self.engine.clone();
        let id = self.id.clone();
        let (rootfs, volumes, network, shim) = (self.rootfs, std::mem::take(&mut self.volumes), self.network, self.shim.take());
        let shm = self.shm;
        // Clean-up needs async calls; run it on the runtime, it must not be skipped.
        tokio::spawn(async move {
            if let Some(sock) = shim {
                let _ = shimclient::call(&sock, &Request::Kill { signal: libc::SIGKILL, all: true }).await;
                for _ in 0..300 {
                    if !sock.exists() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            if let Ok(c) = engine.container(&id) {
                c.set_live(None);
                if network {
                    engine.net.detach(&engine, &c.snapshot()).await;
                }
            }
            for v in volumes {
                engine.volumes.release(&v);
            }
            if rootfs {
                let _ = engine.images.unmount_snapshot(&id, &engine.rootfs_of(&id)).await;
            }
            if shm {
                engine.release_shm(&id);
            }
            let _ = std::fs::remove_dir_all(engine.state_dir_of(&id));
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn image_config_merge_follows_docker() {
        let img = Config {
            env: Some(vec!["PATH=/bin".into(), "A=1".into()]),
            cmd: Some(vec!["sh".into()]),
            working_dir: "/w".into(),
            labels: Some([("x".to_string(), "img".to_string())].into_iter().collect()),
            ..Default::default()
        };
        let mut c = Config { env: Some(vec!["A=2".into()]), labels: Some([("x".to_string(), "mine".to_string())].into_iter().collect()), ..Default::default() };
        merge_image_config(&mut c, &img);
        assert_eq!(c.env.unwrap(), vec!["PATH=/bin".to_string(), "A=2".to_string()]);
        assert_eq!(c.cmd.unwrap(), vec!["sh".to_string()]);
        assert_eq!(c.working_dir, "/w");
        assert_eq!(c.labels.unwrap()["x"], "mine");
        // A user entrypoint drops the image's cmd.
        let mut c = Config { entrypoint: Some(vec!["echo".into()]), ..Default::default() };
        merge_image_config(&mut c, &img);
        assert_eq!(c.cmd, None);
    }

    #[test]
    fn signals_and_policies() {
        assert_eq!(parse_signal("SIGTERM").unwrap(), 15);
        assert_eq!(parse_signal("hup").unwrap(), 1);
        assert_eq!(parse_signal("9").unwrap(), 9);
        assert!(parse_signal("SIGNOPE").is_err());
        let mut hc = HostConfig::default();
        hc.restart_policy.name = "always".into();
        hc.auto_remove = true;
        assert!(validate_restart_policy(&hc).unwrap_err().message.contains("AutoRemove"));
        hc.auto_remove = false;
        hc.restart_policy.name = "sometimes".into();
        assert!(validate_restart_policy(&hc).is_err());
    }
}
