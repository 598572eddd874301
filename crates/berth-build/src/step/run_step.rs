//! RUN steps: the command line (shell or exec form, heredoc scripts), the build
//! arguments in effect, `--mount`s and `--network`, the cache key, and the
//! intermediate container the backend runs it in.

use std::path::Path;

use super::*;

impl<B: Backend> StageRun<'_, B> {
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

    pub(super) async fn run_step(&mut self, form: &ShellOrExec, heredocs: &[Heredoc], mounts: &[dockerfile::RunMount], network: Option<&str>, security: Option<&str>) -> Result<()> {
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

/// `RUN <<EOF` with nothing else on the line.
fn is_lone_heredoc(cmd: &str) -> bool {
    let c = cmd.trim();
    c.starts_with("<<") && !c.contains(char::is_whitespace)
}

fn copy_tree(src: &Path, dst: &Path) -> Result<()> {
    let status = std::process::Command::new("cp").arg("-a").arg(src).arg(dst).status()?;
    if !status.success() {
        return Err(BuildError::system(format!("copying {} failed", src.display())));
    }
    Ok(())
}
