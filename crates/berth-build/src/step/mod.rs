//! One stage of a build, instruction by instruction. Each instruction is turned
//! into the image configuration it produces and a cache key; on a hit the cached
//! image is used, otherwise the step runs (a config-only child image; a COPY/ADD or
//! WORKDIR into a fresh snapshot; a RUN in a container) and its image is recorded.
//! History lines are written as the classic builder writes them (`/bin/sh -c
//! #(nop)  ENV a=b`, `|1 X=y /bin/sh -c make`, `COPY file:<sum> in /app `), so
//! `docker history` reads the same and `--cache-from` can match Docker's images.

use std::collections::{BTreeMap, BTreeSet, HashMap};
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

mod copy_step;
mod run_step;

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

fn random_hex() -> String {
    use rand::RngExt;
    let n: u64 = rand::rng().random();
    format!("{n:016x}")
}
