//! One stage of a build, instruction by instruction. Each instruction is turned
//! into the image configuration it produces and a cache key; on a hit the cached
//! image is used, otherwise the step runs (a config-only child image; a COPY/ADD or
//! WORKDIR into a fresh snapshot; a RUN in a container) and its image is recorded.
//! History lines are written as the classic builder writes them (`/bin/sh -c
//! #(nop)  ENV a=b`, `|1 X=y /bin/sh -c make`, `COPY file:<sum> in /app `), so
//! `docker history` reads the same and `--cache-from` can match Docker's images.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use berth_image::config::{ContainerConfig, Empty, HealthConfig, History, ImageConfig};
use berth_types::progress::JsonMessage;
use tokio_util::sync::CancellationToken;

use crate::backend::{Backend, Out, Result, RunMount, RunRequest, Workspace};
use crate::cache::{self, Entry};
use crate::checksum;
use crate::context::Context;
use crate::copy::{self, CopyInto, Owner};
use crate::dockerfile::{self, CopyArgs, Dockerfile, Heredoc, Instruction, InstructionKind, Lexer, MountKind, ShellOrExec};
use crate::driver::{Builder, PROXY_ARGS, StageOut, StageSlot, short_id};
use crate::error::BuildError;
use crate::options::BuildOptions;
use crate::plan::{self, Source};

const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub(crate) struct StageRun<'a, B: Backend> {
    b: &'a Builder<B>,
    df: &'a Dockerfile,
    index: usize,
    ctx: &'a Context,
    opts: &'a BuildOptions,
    global: &'a BTreeMap<String, Option<String>>,
    stages: &'a HashMap<usize, StageSlot>,
    consumed: &'a Mutex<BTreeSet<String>>,
    out: Out,
    cancel: CancellationToken,
    step: usize,
    total: usize,
    lexer: Lexer,
    is_target: bool,
    // The stage's state.
    image: Option<String>,
    config: ImageConfig,
    /// ARGs declared in this stage (value `None`: declared without one).
    args: BTreeMap<String, Option<String>>,
    /// CMD set in this stage (ENTRYPOINT then keeps it).
    cmd_set: bool,
}

/// `created_by` of a step that only changes the configuration.
fn nop(text: &str) -> String {
    format!("/bin/sh -c #(nop)  {text}")
}

/// Go's `%v` of a string slice: `[a b]`.
fn go_plain(v: &[String]) -> String {
    format!("[{}]", v.join(" "))
}

fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".into();
    }
    let mut s = String::new();
    let mut rest = ns;
    let h = rest / 3_600_000_000_000;
    rest %= 3_600_000_000_000;
    let m = rest / 60_000_000_000;
    rest %= 60_000_000_000;
    if h > 0 {
        s.push_str(&format!("{h}h"));
    }
    if h > 0 || m > 0 {
        s.push_str(&format!("{m}m"));
    }
    let secs = rest as f64 / 1e9;
    s.push_str(&format!("{}s", trim_float(secs)));
    s
}

fn trim_float(f: f64) -> String {
    let s = format!("{f:.9}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

impl<'a, B: Backend> StageRun<'a, B> {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        b: &'a Builder<B>,
        df: &'a Dockerfile,
        index: usize,
        ctx: &'a Context,
        opts: &'a BuildOptions,
        global: &'a BTreeMap<String, Option<String>>,
        stages: &'a HashMap<usize, StageSlot>,
        consumed: &'a Mutex<BTreeSet<String>>,
        out: Out,
        cancel: CancellationToken,
        first_step: usize,
        total: usize,
        lexer: Lexer,
        is_target: bool,
    ) -> Self {
        StageRun {
            b,
            df,
            index,
            ctx,
            opts,
            global,
            stages,
            consumed,
            out,
            cancel,
            step: first_step,
            total,
            lexer,
            is_target,
            image: None,
            config: ImageConfig::default(),
            args: BTreeMap::new(),
            cmd_set: false,
        }
    }

    fn say(&self, text: impl Into<String>) {
        let _ = self.out.send(JsonMessage::stream(text.into()));
    }

    fn header(&mut self, original: &str) {
        self.say(format!("Step {}/{} : {}", self.step, self.total, original));
        self.say("\n");
        self.step += 1;
    }

    fn check_cancel(&self) -> Result<()> {
        if self.cancel.is_cancelled() { Err(BuildError::cancelled()) } else { Ok(()) }
    }

    /// The value of a variable for expansion: ENV wins over ARG.
    fn lookup(&self, name: &str) -> Option<String> {
        let env = self.config.config.as_ref().and_then(|c| c.env.as_ref());
        if let Some(env) = env {
            for e in env.iter().rev() {
                if let Some((k, v)) = e.split_once('=')
                    && k == name {
                        return Some(v.to_string());
                    }
            }
        }
        self.args.get(name).cloned().flatten()
    }

    fn expand(&self, word: &str) -> Result<String> {
        self.lexer.expand_word(word, &|k| self.lookup(k)).map_err(BuildError::invalid)
    }

    fn expand_words(&self, word: &str) -> Result<Vec<String>> {
        self.lexer.expand_words(word, &|k| self.lookup(k)).map_err(BuildError::invalid)
    }

    fn cc(&self) -> ContainerConfig {
        self.config.config.clone().unwrap_or_default()
    }

    /// Waits for another stage of this build.
    async fn stage_result(&self, i: usize) -> Result<Arc<StageOut>> {
        let mut rx = self.stages.get(&i).cloned().ok_or_else(|| BuildError::system(format!("stage {i} is not part of this build")))?;
        loop {
            if let Some(r) = rx.borrow().clone() {
                return r;
            }
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        return Err(BuildError::system(format!("stage {i} ended without a result")));
                    }
                }
                _ = self.cancel.cancelled() => return Err(BuildError::cancelled()),
            }
        }
    }

    pub(crate) async fn run(mut self) -> Result<StageOut> {
        let stage = &self.df.stages[self.index];
        self.header(&stage.original.clone());
        let base = self.lexer.expand_word(&stage.base, &|k| self.global.get(k).cloned().flatten()).map_err(BuildError::invalid)?;
        match plan::resolve_ref(self.df, self.index, &base) {
            Source::Stage(i) => {
                let s = self.stage_result(i).await?;
                self.image = s.image.clone();
                self.config = s.config.clone();
            }
            Source::Image(name) if name.eq_ignore_ascii_case("scratch") => {
                self.image = None;
                self.config = ImageConfig {
                    architecture: berth_image::manifest::host_architecture().to_string(),
                    os: "linux".into(),
                    ..Default::default()
                };
            }
            Source::Image(name) => {
                if name.is_empty() {
                    return Err(BuildError::invalid(format!("base name ({}) should not be blank", stage.base)));
                }
                let platform = match &stage.platform {
                    Some(p) => Some(self.lexer.expand_word(p, &|k| self.global.get(k).cloned().flatten()).map_err(BuildError::invalid)?),
                    None => self.opts.platform.clone(),
                };
                let img = self.b.backend.base_image(&name, platform.as_deref(), self.opts.pull, self.opts.registry_config.as_deref(), &self.out).await?;
                self.image = Some(img.id);
                self.config = img.config;
            }
        }
        // Every build environment has a PATH (scratch and PATH-less images get
        // Docker's default).
        let mut cc = self.cc();
        let env = cc.env.get_or_insert_with(Vec::new);
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.insert(0, DEFAULT_PATH.to_string());
        }
        self.config.config = Some(cc);
        self.say(format!(" ---> {}\n", self.image.as_deref().map(short_id).unwrap_or_default()));

        // The base image's ONBUILD triggers run first, then are cleared.
        let triggers = self.config.config.as_ref().and_then(|c| c.on_build.clone()).unwrap_or_default();
        if !triggers.is_empty() {
            self.say(format!("# Executing {} build trigger{}\n", triggers.len(), if triggers.len() == 1 { "" } else { "s" }));
            if let Some(c) = self.config.config.as_mut() {
                c.on_build = None;
            }
            for t in &triggers {
                self.check_cancel()?;
                let ins = dockerfile::parse_instruction(t, self.df.escape).map_err(|e| BuildError::invalid(format!("failed to parse ONBUILD trigger {t:?}: {e}")))?;
                self.dispatch(&ins).await?;
            }
        }

        for ins in &stage.instructions {
            self.check_cancel()?;
            self.header(&ins.original);
            self.dispatch(ins).await?;
            self.say(format!(" ---> {}\n", self.image.as_deref().map(short_id).unwrap_or_default()));
        }
        if self.is_target && !self.opts.labels.is_empty() {
            self.check_cancel()?;
            let text: Vec<String> = self.opts.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let quoted: Vec<String> = self.opts.labels.iter().map(|(k, v)| format!("{k}={}", serde_json::to_string(v).unwrap_or_default())).collect();
            self.header(&format!("LABEL {}", quoted.join(" ")));
            let labels = self.opts.labels.clone();
            self.config_step(&format!("LABEL {}", text.join(" ")), move |c| {
                c.labels.get_or_insert_with(BTreeMap::new).extend(labels);
            })
            .await?;
            self.say(format!(" ---> {}\n", self.image.as_deref().map(short_id).unwrap_or_default()));
        }
        Ok(StageOut { image: self.image, config: self.config })
    }

    async fn dispatch(&mut self, ins: &Instruction) -> Result<()> {
        match &ins.kind {
            InstructionKind::Env(pairs) => {
                let mut set = Vec::new();
                for (k, v) in pairs {
                    let k = self.expand(k)?;
                    if k.is_empty() {
                        return Err(BuildError::invalid("ENV names can not be blank"));
                    }
                    let v = self.expand(v)?;
                    set.push((k, v));
                }
                let text: Vec<String> = set.iter().map(|(k, v)| format!("{k}={v}")).collect();
                self.config_step(&format!("ENV {}", text.join(" ")), move |c| {
                    let env = c.env.get_or_insert_with(Vec::new);
                    for (k, v) in set {
                        let entry = format!("{k}={v}");
                        match env.iter_mut().find(|e| e.split_once('=').map(|(ek, _)| ek) == Some(k.as_str()) || **e == k) {
                            Some(e) => *e = entry,
                            None => env.push(entry),
                        }
                    }
                })
                .await
            }
            InstructionKind::Label(pairs) => {
                let mut set = Vec::new();
                for (k, v) in pairs {
                    let k = self.expand(k)?;
                    if k.is_empty() {
                        return Err(BuildError::invalid("LABEL names can not be blank"));
                    }
                    set.push((k, self.expand(v)?));
                }
                let text: Vec<String> = set.iter().map(|(k, v)| format!("{k}={v}")).collect();
                self.config_step(&format!("LABEL {}", text.join(" ")), move |c| {
                    let labels = c.labels.get_or_insert_with(BTreeMap::new);
                    for (k, v) in set {
                        labels.insert(k, v);
                    }
                })
                .await
            }
            InstructionKind::Arg(decls) => {
                let mut text = Vec::new();
                for a in decls {
                    self.consumed.lock().unwrap_or_else(|p| p.into_inner()).insert(a.name.clone());
                    let default = match &a.default {
                        Some(d) => Some(self.expand(d)?),
                        None => None,
                    };
                    let value = match self.opts.build_args.get(&a.name) {
                        Some(Some(v)) => Some(v.clone()),
                        _ => default.clone().or_else(|| self.global.get(&a.name).cloned().flatten()),
                    };
                    text.push(match &default {
                        Some(d) => format!("{}={d}", a.name),
                        None => a.name.clone(),
                    });
                    self.args.insert(a.name.clone(), value);
                }
                self.config_step(&format!("ARG {}", text.join(" ")), |_| {}).await
            }
            InstructionKind::Expose(words) => {
                let mut ports = BTreeSet::new();
                for w in words {
                    for p in self.expand_words(w)? {
                        for port in expand_port(&p)? {
                            ports.insert(port);
                        }
                    }
                }
                let list: Vec<String> = ports.iter().cloned().collect();
                self.config_step(&format!("EXPOSE {}", list.join(" ")), move |c| {
                    let m = c.exposed_ports.get_or_insert_with(BTreeMap::new);
                    for p in ports {
                        m.insert(p, Empty {});
                    }
                })
                .await
            }
            InstructionKind::Volume(words) => {
                let mut vols = Vec::new();
                for w in words {
                    let v = self.expand(w)?;
                    if v.trim().is_empty() {
                        return Err(BuildError::invalid("VOLUME specified can not be an empty string"));
                    }
                    vols.push(v);
                }
                let text = go_plain(&vols);
                self.config_step(&format!("VOLUME {text}"), move |c| {
                    let m = c.volumes.get_or_insert_with(BTreeMap::new);
                    for v in vols {
                        m.insert(v, Empty {});
                    }
                })
                .await
            }
            InstructionKind::User(u) => {
                let u = self.expand(u)?;
                self.config_step(&format!("USER {u}"), move |c| c.user = u).await
            }
            InstructionKind::StopSignal(s) => {
                let s = self.expand(s)?;
                if !valid_signal(&s) {
                    return Err(BuildError::invalid(format!("Invalid signal: {s}")));
                }
                self.config_step(&format!("STOPSIGNAL {s}"), move |c| c.stop_signal = s).await
            }
            InstructionKind::Maintainer(m) => {
                let m = m.clone();
                self.config.author = m.clone();
                self.config_step(&format!("MAINTAINER {m}"), |_| {}).await
            }
            InstructionKind::Shell(v) => {
                let v = v.clone();
                self.config_step(&format!("SHELL {}", go_plain(&v)), move |c| c.shell = Some(v)).await
            }
            InstructionKind::OnBuild(t) => {
                let t = t.clone();
                self.config_step(&format!("ONBUILD {t}"), move |c| c.on_build.get_or_insert_with(Vec::new).push(t)).await
            }
            InstructionKind::Cmd(form) => {
                let cmd = self.command(form);
                self.cmd_set = true;
                self.config_step(&format!("CMD {}", berth_types::gofmt::quote_slice(&cmd)), move |c| c.cmd = Some(cmd)).await
            }
            InstructionKind::Entrypoint(form) => {
                let ep = self.command(form);
                let keep_cmd = self.cmd_set;
                self.config_step(&format!("ENTRYPOINT {}", berth_types::gofmt::quote_slice(&ep)), move |c| {
                    c.entrypoint = Some(ep);
                    if !keep_cmd {
                        c.cmd = None;
                    }
                })
                .await
            }
            InstructionKind::Healthcheck(h) => {
                let hc = match h {
                    None => HealthConfig { test: Some(vec!["NONE".into()]), ..Default::default() },
                    Some(h) => {
                        let test = match &h.test {
                            ShellOrExec::Shell(s) => vec!["CMD-SHELL".to_string(), s.clone()],
                            ShellOrExec::Exec(v) => {
                                let mut t = vec!["CMD".to_string()];
                                t.extend(v.iter().cloned());
                                t
                            }
                        };
                        HealthConfig {
                            test: Some(test),
                            interval: h.interval_ns,
                            timeout: h.timeout_ns,
                            start_period: h.start_period_ns,
                            start_interval: h.start_interval_ns,
                            retries: h.retries,
                        }
                    }
                };
                let text = format!(
                    "HEALTHCHECK &{{{} {:?} {:?} {:?} {:?} '\\x{:02x}'}}",
                    berth_types::gofmt::quote_slice(hc.test.as_deref().unwrap_or_default()),
                    go_duration(hc.interval),
                    go_duration(hc.timeout),
                    go_duration(hc.start_period),
                    go_duration(hc.start_interval),
                    hc.retries
                );
                self.config_step(&text, move |c| c.healthcheck = Some(hc)).await
            }
            InstructionKind::Workdir(w) => self.workdir(w).await,
            InstructionKind::Copy(c) => self.copy(c, false).await,
            InstructionKind::Add(c) => self.copy(c, true).await,
            InstructionKind::Run { cmd, heredocs, mounts, network, security } => {
                self.run_step(cmd, heredocs, mounts, network.as_deref(), security.as_deref()).await
            }
        }
    }

    /// CMD/ENTRYPOINT/RUN argv: exec form as is, shell form through SHELL.
    fn command(&self, form: &ShellOrExec) -> Vec<String> {
        match form {
            ShellOrExec::Exec(v) => v.clone(),
            ShellOrExec::Shell(s) => {
                let mut v = self.shell();
                v.push(s.clone());
                v
            }
        }
    }

    fn shell(&self) -> Vec<String> {
        self.config.config.as_ref().and_then(|c| c.shell.clone()).unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()])
    }

    /// The next image's config: the current one with `cc` as its container config,
    /// `container_cmd` recorded as the (legacy) container_config Cmd, and a history
    /// entry.
    fn next_config(&self, cc: ContainerConfig, container_cmd: Vec<String>, created_by: &str, container: &str) -> ImageConfig {
        let now = berth_image::config::format_time(&chrono::Utc::now());
        let mut cfg = self.config.clone();
        let mut cc = cc;
        cc.image = self.image.clone().unwrap_or_default();
        let mut ccc = cc.clone();
        ccc.cmd = Some(container_cmd);
        ccc.hostname = container.chars().take(12).collect();
        cfg.config = Some(cc);
        cfg.container_config = Some(ccc);
        cfg.container = container.to_string();
        cfg.created = Some(now.clone());
        cfg.docker_version = String::new();
        cfg.history.push(History { created: Some(now), author: cfg.author.clone(), created_by: created_by.to_string(), comment: String::new(), empty_layer: false });
        cfg
    }

    fn parent_key(&self) -> String {
        self.image.clone().unwrap_or_else(|| "scratch".into())
    }

    /// Looks the key up in the cache (and, failing that, in `--cache-from` images).
    /// On a hit the stage moves to the cached image and "Using cache" is printed.
    async fn try_cache(&mut self, key: &str, created_by: &str, next: &ImageConfig) -> Result<bool> {
        if self.opts.no_cache {
            return Ok(false);
        }
        if let Some(e) = self.b.cache.get(key) {
            match self.b.backend.local_image(&e.image).await? {
                Some(img) if img.config.rootfs.diff_ids.starts_with(&self.config.rootfs.diff_ids) => {
                    self.b.cache.touch(key);
                    self.say(" ---> Using cache\n");
                    self.image = Some(img.id);
                    self.config = img.config;
                    return Ok(true);
                }
                _ => self.b.cache.remove(key),
            }
        }
        for name in &self.opts.cache_from {
            let Some(donor) = self.b.backend.local_image(name).await? else { continue };
            let n = self.config.history.len();
            let same_history = donor.config.history.len() > n
                && donor.config.history.iter().zip(&self.config.history).all(|(a, b)| a.created_by == b.created_by && a.empty_layer == b.empty_layer);
            let layers = &self.config.rootfs.diff_ids;
            if !same_history || !donor.config.rootfs.diff_ids.starts_with(layers) || donor.config.history[n].created_by != created_by {
                continue;
            }
            let h = donor.config.history[n].clone();
            let layer = if h.empty_layer { None } else { Some(layers.len()) };
            if layer.is_some_and(|l| l >= donor.config.rootfs.diff_ids.len()) {
                continue;
            }
            let mut cfg = next.clone();
            if let Some(last) = cfg.history.last_mut() {
                *last = h;
            }
            if let Some(l) = layer {
                cfg.rootfs.diff_ids.truncate(layers.len());
                cfg.rootfs.diff_ids.push(donor.config.rootfs.diff_ids[l].clone());
            }
            let id = self.b.backend.adopt(self.image.as_deref(), cfg, &donor.id, layer).await?;
            self.say(" ---> Using cache\n");
            self.remember(key, &id, created_by, layer.is_some())?;
            return self.move_to(&id).await.map(|_| true);
        }
        Ok(false)
    }

    async fn move_to(&mut self, id: &str) -> Result<()> {
        let img = self.b.backend.local_image(id).await?.ok_or_else(|| BuildError::system(format!("image {id} vanished during the build")))?;
        self.image = Some(img.id);
        self.config = img.config;
        Ok(())
    }

    fn remember(&self, key: &str, id: &str, created_by: &str, layer: bool) -> Result<()> {
        let now = cache::now();
        self.b
            .cache
            .put(Entry { key: key.to_string(), image: id.to_string(), parent: self.image.clone(), description: created_by.to_string(), created: now, last_used: now, usage_count: 0, layer })
            .map_err(|e| BuildError::system(format!("recording the build cache: {e}")))
    }

    /// A step that changes only the configuration.
    async fn config_step(&mut self, text: &str, change: impl FnOnce(&mut ContainerConfig)) -> Result<()> {
        let mut cc = self.cc();
        change(&mut cc);
        let created_by = nop(text);
        let container_cmd = vec!["/bin/sh".into(), "-c".into(), "#(nop) ".into(), text.to_string()];
        let next = self.next_config(cc.clone(), container_cmd, &created_by, "");
        let key = cache::key(&[&self.parent_key(), "config", &created_by, &serde_json::to_string(&cc).unwrap_or_default(), &self.config.author]);
        if self.try_cache(&key, &created_by, &next).await? {
            return Ok(());
        }
        let id = self.b.backend.record(self.image.as_deref(), next).await?;
        self.remember(&key, &id, &created_by, false)?;
        self.move_to(&id).await
    }

    async fn workdir(&mut self, w: &str) -> Result<()> {
        let w = self.expand(w)?;
        if w.is_empty() {
            return Err(BuildError::invalid("WORKDIR requires exactly one argument"));
        }
        let base = self.cc().working_dir;
        let dir = if w.starts_with('/') { berth_types::paths::clean_abs(&w) } else { berth_types::paths::clean_abs(&format!("{}/{w}", if base.is_empty() { "/" } else { &base })) };
        let mut cc = self.cc();
        cc.working_dir = dir.clone();
        let text = format!("WORKDIR {dir}");
        let created_by = format!("/bin/sh -c #(nop) {text}");
        let container_cmd = vec!["/bin/sh".into(), "-c".into(), "#(nop) ".into(), text.clone()];
        let next = self.next_config(cc.clone(), container_cmd, &created_by, "");
        let key = cache::key(&[&self.parent_key(), "workdir", &created_by, &serde_json::to_string(&cc).unwrap_or_default()]);
        if self.try_cache(&key, &created_by, &next).await? {
            return Ok(());
        }
        let ws = self.b.backend.prepare(self.image.as_deref()).await?;
        let root = ws.rootfs.clone();
        let made = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let p = crate::scoped::resolve(&root, &dir, true)?;
            if !p.is_dir() {
                std::fs::create_dir_all(&p)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| BuildError::system(e.to_string()))
        .and_then(|r| r.map_err(|e| BuildError::system(format!("failed to create WORKDIR: {e}"))));
        self.finish_fs_step(ws, made, next, &key, &created_by).await
    }

    /// Commits a filesystem step's workspace (or discards it after a failure).
    async fn finish_fs_step(&mut self, ws: Workspace, done: Result<()>, next: ImageConfig, key: &str, created_by: &str) -> Result<()> {
        if let Err(e) = done {
            self.b.backend.release(ws).await;
            return Err(e);
        }
        let committed = self.b.backend.commit(&ws, self.image.as_deref(), next).await;
        let container = ws.container.clone();
        self.b.backend.release(ws).await;
        let (id, layer) = committed?;
        if let Some(c) = container {
            self.say(format!("Removing intermediate container {}\n", short_id(&c)));
        }
        self.remember(key, &id, created_by, layer)?;
        self.move_to(&id).await
    }

    async fn copy(&mut self, c: &CopyArgs, add: bool) -> Result<()> {
        let verb = if add { "ADD" } else { "COPY" };
        let scratch = self.b.tmp.join(format!("step-{}", random_hex()));
        std::fs::create_dir_all(&scratch)?;
        let r = self.copy_in(c, add, verb, &scratch).await;
        let _ = std::fs::remove_dir_all(&scratch);
        r
    }

    async fn copy_in(&mut self, c: &CopyArgs, add: bool, verb: &str, scratch: &Path) -> Result<()> {
        if c.parents {
            return Err(BuildError::invalid(format!("{verb} --parents is not supported by berth")));
        }
        let mut words = Vec::new();
        for s in &c.sources {
            words.extend(self.expand_words(s).map(|v| if v.is_empty() { vec![String::new()] } else { v })?);
        }
        let dest_raw = self.expand(&c.dest)?;
        let workdir = self.cc().working_dir;
        let dest = if dest_raw.starts_with('/') {
            dest_raw.clone()
        } else {
            let base = if workdir.is_empty() { "/".to_string() } else { workdir.clone() };
            let joined = format!("{}/{dest_raw}", base.trim_end_matches('/'));
            if dest_raw.ends_with('/') || dest_raw == "." { format!("{}/", joined.trim_end_matches('.').trim_end_matches('/')) } else { joined }
        };
        let chown = match &c.chown {
            Some(s) => Some(self.expand(s)?),
            None => None,
        };
        let chmod = match &c.chmod {
            Some(s) => Some(copy::parse_chmod(&self.expand(s)?)?),
            None => None,
        };

        // Where the sources come from, and what identifies them for the cache.
        let heredoc_dir = scratch.join("heredocs");
        let mut from_root: Option<Workspace> = None;
        let (root, what, mut ident, owner_default) = match &c.from {
            Some(f) => {
                let f = self.expand(f)?;
                let image = match plan::resolve_ref(self.df, self.index, &f) {
                    Source::Stage(i) => self.stage_result(i).await?.image.clone(),
                    Source::Image(name) => Some(self.b.backend.base_image(&name, self.opts.platform.as_deref(), false, self.opts.registry_config.as_deref(), &self.out).await?.id),
                };
                let ws = self.b.backend.prepare(image.as_deref()).await?;
                let root = ws.rootfs.clone();
                from_root = Some(ws);
                (root, format!("stage {f}"), format!("from:{}", image.unwrap_or_else(|| "scratch".into())), Owner::Keep)
            }
            None => (self.ctx.root().to_path_buf(), "build context".to_string(), String::new(), Owner::Fixed(0, 0)),
        };
        let result = async {
            let mut sources = Vec::new();
            // ADD's URLs are fetched first: their content is part of the key.
            let mut local_words = Vec::new();
            for w in &words {
                if add && (w.starts_with("http://") || w.starts_with("https://")) {
                    let (path, name) = crate::fetch::download(&self.b.http, w, scratch, c.checksum.as_deref()).await?;
                    sources.push(copy::Source { path, name, is_dir: false });
                } else if add && is_git_url(w) {
                    return Err(BuildError::invalid(format!("ADD of a git repository ({w}) is not supported by berth")));
                } else {
                    local_words.push(w.clone());
                }
            }
            if !c.heredocs.is_empty() {
                std::fs::create_dir_all(&heredoc_dir)?;
                for h in &c.heredocs {
                    let content = if h.expand { self.expand_heredoc(&h.body())? } else { h.body() };
                    let p = heredoc_dir.join(&h.name);
                    std::fs::write(&p, content)?;
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644))?;
                    sources.push(copy::Source { path: p, name: h.name.clone(), is_dir: false });
                }
            }
            if !local_words.is_empty() {
                let r = root.clone();
                let what2 = what.clone();
                let matched = tokio::task::spawn_blocking(move || copy::match_sources(&r, &local_words, &what2)).await.map_err(|e| BuildError::system(e.to_string()))??;
                sources.extend(matched);
            }
            if sources.is_empty() {
                return Err(BuildError::invalid(format!("{verb} failed: no source files were specified")));
            }
            if !c.exclude.is_empty() {
                let m = crate::ignore::Matcher::from_patterns(&c.exclude).map_err(|e| BuildError::invalid(e.to_string()))?;
                sources.retain(|s| !m.excluded(&crate::scoped::container_path(&root, &s.path).trim_start_matches('/').to_string()));
            }
            // The sources' checksum: content from the context, fetched or inline;
            // for another stage or image its ID and the paths.
            let srcs = sources.clone();
            let sums = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<String>> { srcs.iter().map(|s| checksum::tree_digest(&s.path)).collect() })
                .await
                .map_err(|e| BuildError::system(e.to_string()))??;
            let kind = if sources.len() > 1 { "multi" } else if sources[0].is_dir { "dir" } else { "file" };
            let sum = if sums.len() == 1 { sums[0].clone() } else { cache::key(&sums.iter().map(String::as_str).collect::<Vec<_>>()) };
            if ident.is_empty() {
                ident = format!("{kind}:{sum}");
            } else {
                ident = format!("{ident}:{sum}");
            }
            let created_by = format!("/bin/sh -c #(nop) {verb} {kind}:{sum} in {dest} ");
            let cc = self.cc();
            let container_cmd = vec!["/bin/sh".into(), "-c".into(), format!("#(nop) {verb} {kind}:{sum} in {dest} ")];
            let next = self.next_config(cc.clone(), container_cmd, &created_by, "");
            let key = cache::key(&[
                &self.parent_key(),
                verb,
                &ident,
                &dest,
                chown.as_deref().unwrap_or(""),
                &chmod.map(|m| format!("{m:o}")).unwrap_or_default(),
                &serde_json::to_string(&cc).unwrap_or_default(),
            ]);
            if self.try_cache(&key, &created_by, &next).await? {
                return Ok(());
            }
            let ws = self.b.backend.prepare(self.image.as_deref()).await?;
            let owner = match &chown {
                Some(spec) => match self.b.backend.resolve_user(&ws.rootfs, spec) {
                    Ok((u, g)) => Owner::Fixed(u, g),
                    Err(e) => {
                        self.b.backend.release(ws).await;
                        return Err(e);
                    }
                },
                None => owner_default,
            };
            let (dst_root, dest2, scratch2) = (ws.rootfs.clone(), dest.clone(), scratch.to_path_buf());
            let done = tokio::task::spawn_blocking(move || {
                copy::copy(&sources, &CopyInto { root: &dst_root, dest: &dest2, owner, chmod, unpack: add, scratch: &scratch2 })
            })
            .await
            .map_err(|e| BuildError::system(e.to_string()))
            .and_then(|r| r);
            self.finish_fs_step(ws, done, next, &key, &created_by).await
        }
        .await;
        if let Some(ws) = from_root {
            self.b.backend.release(ws).await;
        }
        result
    }

    /// A heredoc body with its variables expanded (quotes and line breaks kept).
    fn expand_heredoc(&self, content: &str) -> Result<String> {
        self.lexer.clone().skip_process_quotes(true).expand_word(content, &|k| self.lookup(k)).map_err(BuildError::invalid)
    }

    /// Environment of a RUN step: the image's ENV, then the ARGs in scope (ENV wins),
    /// then undeclared proxy arguments the build was given.
    fn run_env(&self) -> (Vec<String>, Vec<String>) {
        let mut env = self.cc().env.unwrap_or_default();
        let names: BTreeSet<String> = env.iter().filter_map(|e| e.split_once('=').map(|(k, _)| k.to_string())).collect();
        let mut history_args = Vec::new();
        for (k, v) in &self.args {
            let Some(v) = v else { continue };
            history_args.push(format!("{k}={v}"));
            if !names.contains(k) {
                env.push(format!("{k}={v}"));
            }
        }
        for p in PROXY_ARGS {
            if self.args.contains_key(*p) || names.contains(*p) {
                continue;
            }
            if let Some(Some(v)) = self.opts.build_args.get(*p) {
                env.push(format!("{p}={v}"));
            }
        }
        (env, history_args)
    }

    async fn run_step(&mut self, form: &ShellOrExec, heredocs: &[Heredoc], mounts: &[dockerfile::RunMount], network: Option<&str>, security: Option<&str>) -> Result<()> {
        // Mount options that name variables are parsed again now that they have values.
        let reparsed;
        let mounts = if mounts.iter().any(|m| m.spec.contains('$')) {
            let specs: Vec<String> = mounts.iter().map(|m| m.spec.clone()).collect();
            let expand = |w: &str| self.expand(w).map_err(|e| e.message);
            reparsed = dockerfile::RunMount::parse_all(&specs, Some(&expand)).map_err(BuildError::invalid)?;
            &reparsed[..]
        } else {
            mounts
        };
        if let Some(s) = security
            && s != "sandbox" {
                return Err(BuildError::invalid(format!("RUN --security={s} is not allowed (berth grants no build entitlements)")));
            }
        let Some(parent) = self.image.clone() else {
            return Err(BuildError::invalid("RUN on an empty scratch stage: there is no filesystem (and no /bin/sh) to run in yet"));
        };
        let scratch = self.b.tmp.join(format!("run-{}", random_hex()));
        std::fs::create_dir_all(&scratch)?;
        let mut held: Vec<Workspace> = Vec::new();
        let r = self.run_in(&parent, form, heredocs, mounts, network, &scratch, &mut held).await;
        for ws in held {
            self.b.backend.release(ws).await;
        }
        let _ = std::fs::remove_dir_all(&scratch);
        r
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_in(
        &mut self,
        parent: &str,
        form: &ShellOrExec,
        heredocs: &[Heredoc],
        mounts: &[dockerfile::RunMount],
        network: Option<&str>,
        scratch: &Path,
        held: &mut Vec<Workspace>,
    ) -> Result<()> {
        let mut run_mounts = Vec::new();
        let mut mount_ident = Vec::new();
        let mut in_use = Vec::new();
        // A lone heredoc is the script (a file to execute when it has a shebang);
        // otherwise the heredocs are put back after the command for the shell.
        let argv = match (form, heredocs) {
            (ShellOrExec::Shell(cmd), [h]) if is_lone_heredoc(cmd) => {
                let body = h.body();
                if body.starts_with("#!") {
                    let dir = scratch.join("pipes");
                    std::fs::create_dir_all(&dir)?;
                    let p = dir.join(&h.name);
                    std::fs::write(&p, &body)?;
                    use std::os::unix::fs::PermissionsExt;
                    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))?;
                    run_mounts.push(RunMount::Bind { source: dir, target: "/dev/pipes".into(), readonly: true });
                    self.command(&ShellOrExec::Shell(format!("/dev/pipes/{}", h.name)))
                } else {
                    self.command(&ShellOrExec::Shell(body))
                }
            }
            (ShellOrExec::Shell(cmd), hs) if !hs.is_empty() => {
                let mut full = cmd.clone();
                for h in hs {
                    full.push('\n');
                    full.push_str(&h.content);
                    full.push_str(&h.name);
                }
                self.command(&ShellOrExec::Shell(full))
            }
            (f, _) => self.command(f),
        };
        let cc = self.cc();
        let workdir = if cc.working_dir.is_empty() { "/".to_string() } else { cc.working_dir.clone() };
        for m in mounts {
            let target = if m.target.starts_with('/') { m.target.clone() } else { format!("{}/{}", workdir.trim_end_matches('/'), m.target) };
            match m.kind {
                MountKind::Tmpfs => {
                    mount_ident.push(format!("tmpfs:{target}:{:?}", m.size));
                    run_mounts.push(RunMount::Tmpfs { target, size: m.size });
                }
                MountKind::Cache => {
                    if m.from.is_some() {
                        return Err(BuildError::invalid("RUN --mount=type=cache,from=... is not supported by berth"));
                    }
                    let id = m.id.clone().unwrap_or_else(|| target.clone());
                    let dir = self.b.cache_mounts.join(cache::key(&[&id]));
                    if !dir.exists() {
                        std::fs::create_dir_all(&dir)?;
                        use std::os::unix::fs::PermissionsExt;
                        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(m.mode.unwrap_or(0o755)))?;
                        std::os::unix::fs::chown(&dir, Some(m.uid.unwrap_or(0)), Some(m.gid.unwrap_or(0)))?;
                    }
                    mount_ident.push(format!("cache:{target}:{id}"));
                    in_use.push(crate::driver::MountUse::new(&self.b.mounts_in_use, dir.clone()));
                    run_mounts.push(RunMount::Bind { source: dir, target, readonly: m.readonly });
                }
                MountKind::Bind => {
                    let src_word = m.source.clone().unwrap_or_else(|| "/".into());
                    let (root, ident) = match &m.from {
                        Some(f) => {
                            let f = self.expand(f)?;
                            let image = match plan::resolve_ref(self.df, self.index, &f) {
                                Source::Stage(i) => self.stage_result(i).await?.image.clone(),
                                Source::Image(name) => Some(self.b.backend.base_image(&name, self.opts.platform.as_deref(), false, self.opts.registry_config.as_deref(), &self.out).await?.id),
                            };
                            let ws = self.b.backend.prepare(image.as_deref()).await?;
                            let root = ws.rootfs.clone();
                            held.push(ws);
                            (root, format!("from:{}", image.unwrap_or_default()))
                        }
                        None => (self.ctx.root().to_path_buf(), String::new()),
                    };
                    let src = crate::scoped::resolve(&root, &src_word, true)?;
                    if !src.exists() {
                        return Err(BuildError::not_found(format!("RUN --mount: source {src_word} not found")));
                    }
                    let sum = if ident.is_empty() {
                        let s = src.clone();
                        tokio::task::spawn_blocking(move || checksum::tree_digest(&s)).await.map_err(|e| BuildError::system(e.to_string()))??
                    } else {
                        format!("{ident}:{src_word}")
                    };
                    mount_ident.push(format!("bind:{target}:{sum}:{}", m.readonly));
                    let source = if m.readonly {
                        src
                    } else {
                        // Writes to a read-write bind are thrown away: give the step a copy.
                        let copy_dir = scratch.join(format!("rw-{}", mount_ident.len()));
                        let (s, d) = (src.clone(), copy_dir.clone());
                        tokio::task::spawn_blocking(move || copy_tree(&s, &d)).await.map_err(|e| BuildError::system(e.to_string()))??;
                        copy_dir
                    };
                    run_mounts.push(RunMount::Bind { source, target, readonly: m.readonly });
                }
                MountKind::Secret | MountKind::Ssh => {
                    if m.required {
                        return Err(BuildError::invalid(format!(
                            "RUN --mount=type={}: berth's build API has no session to pass {} through",
                            if m.kind == MountKind::Secret { "secret" } else { "ssh" },
                            if m.kind == MountKind::Secret { "secrets" } else { "an SSH agent" }
                        )));
                    }
                }
            }
        }
        let (env, history_args) = self.run_env();
        let mut save_cmd = Vec::new();
        if !history_args.is_empty() {
            save_cmd.push(format!("|{}", history_args.len()));
            save_cmd.extend(history_args.iter().cloned());
        }
        save_cmd.extend(argv.iter().cloned());
        let created_by = save_cmd.join(" ");
        let network = network.map(str::to_string).unwrap_or_else(|| if self.opts.network_mode.is_empty() { "default".into() } else { self.opts.network_mode.clone() });
        let next_cc = cc.clone();
        let key = cache::key(&[
            &self.parent_key(),
            "run",
            &created_by,
            &env.join("\n"),
            &mount_ident.join("\n"),
            &network,
            &serde_json::to_string(&cc).unwrap_or_default(),
        ]);
        let probe = self.next_config(next_cc.clone(), save_cmd.clone(), &created_by, "");
        if self.try_cache(&key, &created_by, &probe).await? {
            return Ok(());
        }

        let mut run_cc = cc.clone();
        run_cc.cmd = Some(argv.clone());
        run_cc.entrypoint = Some(Vec::new());
        run_cc.env = Some(env);
        run_cc.on_build = None;
        run_cc.healthcheck = None;
        run_cc.labels = None;
        run_cc.exposed_ports = None;
        run_cc.volumes = None;
        let mut labels = BTreeMap::new();
        labels.insert("io.berth.build.step".to_string(), created_by.clone());
        let req = RunRequest {
            image: parent.to_string(),
            config: run_cc,
            network,
            mounts: run_mounts,
            extra_hosts: self.opts.extra_hosts.clone(),
            resources: self.opts.resources.clone(),
            labels,
        };
        // Cache mounts shared with `sharing=locked` are held for the whole step.
        let mut guards = Vec::new();
        for m in mounts.iter().filter(|m| m.kind == MountKind::Cache && m.sharing.as_deref() == Some("locked")) {
            let id = m.id.clone().unwrap_or_else(|| m.target.clone());
            let dir = self.b.cache_mounts.join(cache::key(&[&id]));
            let lock = self.b.mount_locks.lock().unwrap_or_else(|p| p.into_inner()).entry(dir).or_default().clone();
            guards.push(lock.lock_owned().await);
        }
        let (ws, code) = self.b.backend.run(req, &self.out, &self.cancel).await?;
        drop(guards);
        drop(in_use);
        if self.cancel.is_cancelled() {
            self.b.backend.release(ws).await;
            return Err(BuildError::cancelled());
        }
        if code != 0 {
            // With `rm=false` (and no `forcerm`) the failed container stays for
            // inspection, as dockerd leaves it; otherwise nothing of it remains
            // (dockerd would keep it unless `forcerm`).
            let keep = !self.opts.remove && !self.opts.force_remove;
            if !keep {
                self.b.backend.release(ws).await;
            }
            let mut e = BuildError::invalid(format!("The command '{}' returned a non-zero code: {code}", argv.join(" ")));
            e.code = Some(code as i64);
            return Err(e);
        }
        let container = ws.container.clone().unwrap_or_default();
        let next = self.next_config(next_cc, save_cmd, &created_by, &container);
        if !self.opts.remove {
            // `--rm=false`: commit but keep the container.
            let committed = self.b.backend.commit(&ws, self.image.as_deref(), next).await;
            let (id, layer) = committed?;
            self.remember(&key, &id, &created_by, layer)?;
            return self.move_to(&id).await;
        }
        self.finish_fs_step(ws, Ok(()), next, &key, &created_by).await
    }
}

/// A signal as STOPSIGNAL takes it: a number, or a name with or without `SIG`
/// (`SIGRTMIN+3` included). The runtime resolves it when the container stops.
fn valid_signal(s: &str) -> bool {
    if let Ok(n) = s.parse::<u32>() {
        return (1..=64).contains(&n);
    }
    let name = s.to_ascii_uppercase();
    let name = name.strip_prefix("SIG").unwrap_or(&name);
    const NAMES: &[&str] = &[
        "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "IOT", "BUS", "FPE", "KILL", "USR1", "SEGV", "USR2", "PIPE", "ALRM", "TERM", "STKFLT", "CHLD",
        "CONT", "STOP", "TSTP", "TTIN", "TTOU", "URG", "XCPU", "XFSZ", "VTALRM", "PROF", "WINCH", "IO", "POLL", "PWR", "SYS",
    ];
    if NAMES.contains(&name) {
        return true;
    }
    for base in ["RTMIN", "RTMAX"] {
        if let Some(rest) = name.strip_prefix(base) {
            return rest.is_empty() || rest.trim_start_matches(['+', '-']).parse::<u32>().is_ok_and(|n| n <= 30);
        }
    }
    false
}

/// `RUN <<EOF` with nothing else on the line.
fn is_lone_heredoc(cmd: &str) -> bool {
    let c = cmd.trim();
    c.starts_with("<<") && !c.contains(char::is_whitespace)
}

fn is_git_url(s: &str) -> bool {
    s.starts_with("git://") || s.starts_with("git@") || (s.starts_with("github.com/")) || s.ends_with(".git") && s.contains("://")
}

/// EXPOSE's port specs: `80`, `80/tcp`, `53/udp`, `8000-8002`.
fn expand_port(p: &str) -> Result<Vec<String>> {
    let (ports, proto) = match p.split_once('/') {
        Some((a, b)) => (a, b.to_ascii_lowercase()),
        None => (p, "tcp".to_string()),
    };
    if !["tcp", "udp", "sctp"].contains(&proto.as_str()) {
        return Err(BuildError::invalid(format!("invalid proto: {proto}")));
    }
    let bad = || BuildError::invalid(format!("invalid containerPort: {ports}"));
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (a.parse::<u16>().map_err(|_| bad())?, b.parse::<u16>().map_err(|_| bad())?),
        None => {
            let v = ports.parse::<u16>().map_err(|_| bad())?;
            (v, v)
        }
    };
    if hi < lo {
        return Err(BuildError::invalid(format!("invalid range specified for containerPort: {ports}")));
    }
    Ok((lo..=hi).map(|n| format!("{n}/{proto}")).collect())
}

fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    let status = std::process::Command::new("cp").arg("-a").arg(src).arg(dst).status()?;
    if !status.success() {
        return Err(BuildError::system(format!("copying {} failed", src.display())));
    }
    Ok(())
}

fn random_hex() -> String {
    use rand::RngExt;
    let n: u64 = rand::rng().random();
    format!("{n:016x}")
}
