//! [`Engine`]: the daemon's state and the facade the API layer calls. The verbs live in
//! their own modules (containers, exec, logs, images, volumes, networks, system).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::config::EngineConfig;
use crate::container::{Container, ContainerRecord, ContainerStore};
use crate::error::{Error, Result};
use crate::events::EventBus;
use crate::exec::ExecInstance;
use crate::images::ImageService;
use crate::network::Networking;
use crate::runtimes::RuntimeHandle;
use crate::volumes::VolumeStore;

pub struct Engine {
    pub cfg: EngineConfig,
    /// The berth binary (`berth runtime` is named after it in /info).
    pub(crate) exe: PathBuf,
    /// What shims are run from: `berth-shim` beside `exe`, or `exe` itself.
    pub(crate) shim_exe: PathBuf,
    pub(crate) containers: ContainerStore,
    pub(crate) images: ImageService,
    pub(crate) volumes: VolumeStore,
    pub(crate) net: Networking,
    pub(crate) registry: crate::registry::RegistryService,
    pub events: EventBus,
    /// Counters for `/metrics`.
    pub metrics: crate::metrics::Metrics,
    pub(crate) execs: Mutex<HashMap<String, Arc<ExecInstance>>>,
    pub(crate) cgroup_v2: bool,
    /// A stable ID for /info.
    pub(crate) engine_id: String,
    pub(crate) log_rotation: (u64, u32),
    /// The image builder (set once the engine exists: it holds a weak reference back).
    pub(crate) builder: std::sync::OnceLock<Arc<crate::build::EngineBuilder>>,
    /// `--userns-remap`, resolved: the user namespace Docker's containers run in.
    pub(crate) remap: Option<crate::remap::Remap>,
    /// User namespaces with the remap's mappings, made ahead of starts.
    pub(crate) userns_pool: Option<Arc<crate::userns::Pool>>,
}

impl Engine {
    /// Opens (or creates) the daemon's state under the configured roots and brings
    /// running containers back under management.
    pub async fn open(cfg: EngineConfig, exe: PathBuf) -> Result<Arc<Engine>> {
        let log_rotation = cfg.log_rotation().map_err(Error::invalid)?;
        crate::logconfig::validate_defaults(&cfg)?;
        let remap = crate::remap::resolve(&cfg.userns_remap).map_err(Error::invalid)?;
        std::fs::create_dir_all(&cfg.data_root)?;
        std::fs::create_dir_all(cfg.exec_root.join("containers"))?;
        std::fs::create_dir_all(cfg.exec_root.join("s"))?;
        if let Some(r) = &remap {
            open_roots_to(r, &cfg)?;
        }
        let userns_pool = match &remap {
            Some(r) => Some(crate::userns::Pool::new(&cfg.exec_root, r.ns.clone())?),
            None => None,
        };
        let engine_id = load_engine_id(&cfg.data_root)?;
        let containers = ContainerStore::load(&cfg.data_root)?;
        let images = ImageService::open(&cfg).await?;
        let volumes = VolumeStore::open(&cfg.data_root)?;
        let net = Networking::open(&cfg).await?;
        let registry = crate::registry::RegistryService::new(&cfg)?;
        let shim_exe = berth_shim::spawn::shim_binary(&exe);
        tracing::info!(shim = %shim_exe.display(), "shims run from");
        let engine = Arc::new(Engine {
            exe,
            shim_exe,
            containers,
            images,
            volumes,
            net,
            registry,
            events: EventBus::default(),
            metrics: crate::metrics::Metrics::default(),
            execs: Mutex::new(HashMap::new()),
            cgroup_v2: std::path::Path::new("/sys/fs/cgroup/cgroup.controllers").exists(),
            engine_id,
            log_rotation,
            builder: std::sync::OnceLock::new(),
            remap,
            userns_pool,
            cfg,
        });
        if let Some(pool) = &engine.userns_pool {
            pool.refill();
        }
        let builder = engine.open_builder().map_err(|e| Error::system(format!("opening the builder's state: {e}")))?;
        let _ = engine.builder.set(builder);
        engine.clone().restore().await;
        Ok(engine)
    }

    pub fn container(&self, key: &str) -> Result<Arc<Container>> {
        self.containers.get(key)
    }

    pub(crate) fn runtime_of(&self, rec: &ContainerRecord) -> Result<RuntimeHandle> {
        let name = if rec.runtime.is_empty() { self.cfg.default_runtime.as_str() } else { rec.runtime.as_str() };
        RuntimeHandle::resolve(&self.cfg, name)
    }

    /// The rootfs mount point of a container.
    pub(crate) fn rootfs_of(&self, id: &str) -> PathBuf {
        ContainerRecord::dir(&self.cfg.data_root, id).join("rootfs")
    }

    /// The container's directory in the exec root (bundle, shim state).
    pub(crate) fn state_dir_of(&self, id: &str) -> PathBuf {
        self.cfg.exec_root.join("containers").join(id)
    }

    pub(crate) fn shim_socket_of(&self, id: &str) -> PathBuf {
        self.cfg.exec_root.join("s").join(format!("{}.sock", &id[..12.min(id.len())]))
    }

    /// A container event with Docker's attributes (name, image, labels, extras).
    pub fn emit_container(&self, rec: &ContainerRecord, action: &str, extra: &[(&str, String)]) {
        let mut attrs: BTreeMap<String, String> = rec.config.labels.clone().unwrap_or_default();
        attrs.insert("name".into(), rec.bare_name().to_string());
        attrs.insert("image".into(), rec.config.image.clone());
        for (k, v) in extra {
            attrs.insert((*k).to_string(), v.clone());
        }
        self.events.emit("container", action, &rec.id, attrs);
    }

    pub fn data_root(&self) -> &Path {
        &self.cfg.data_root
    }

    /// The daemon is stopping; containers live on (live restore). Firewall rules that
    /// no running container needs are removed.
    pub async fn shutdown(&self) {
        self.net.shutdown().await;
        if let Some(pool) = &self.userns_pool {
            pool.clear();
        }
    }
}

/// A remapped root is nobody to the host: it reaches its rootfs, state files and volumes
/// only through directories others may search. The roots are made 0711 as dockerd makes
/// its own; a closed directory above them is refused now rather than at every start.
fn open_roots_to(r: &crate::remap::Remap, cfg: &EngineConfig) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    for root in [&cfg.data_root, &cfg.exec_root] {
        let mode = std::fs::metadata(root)?.permissions().mode() & 0o7777;
        if mode & 0o001 == 0 {
            std::fs::set_permissions(root, std::fs::Permissions::from_mode(mode | 0o711))?;
        }
    }
    crate::userns::check_searchable(&[&cfg.data_root, &cfg.exec_root]).map_err(|e| {
        Error::invalid(format!("a directory above the data or exec root restricts access to the remapped root ({}): {e}", r.user))
    })?;
    tracing::info!("User namespaces: ID ranges will be mapped to subuid/subgid ranges of: {}:{}", r.user, r.group);
    Ok(())
}

fn load_engine_id(data_root: &Path) -> Result<String> {
    let p = data_root.join("engine-id");
    if let Ok(s) = std::fs::read_to_string(&p) {
        let s = s.trim().to_string();
        if !s.is_empty() {
            return Ok(s);
        }
    }
    let id = uuid_like();
    crate::util::write_atomic(&p, id.as_bytes())?;
    Ok(id)
}

fn uuid_like() -> String {
    let h = crate::util::random_id();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}
