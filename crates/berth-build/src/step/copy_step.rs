//! COPY and ADD steps: sources from the context, another stage or image, ADD's URLs
//! and heredocs; their checksum as the cache key; the copy itself into a fresh
//! snapshot of the parent (crate::copy has the filesystem rules).

use std::path::Path;

use super::*;

impl<B: Backend> StageRun<'_, B> {
    pub(super) async fn copy(&mut self, c: &CopyArgs, add: bool) -> Result<()> {
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
                sources.retain(|s| !m.excluded(crate::scoped::container_path(&root, &s.path).trim_start_matches('/')));
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
        self.lexer.skip_process_quotes(true).expand_word(content, &|k| self.lookup(k)).map_err(BuildError::invalid)
    }
}

fn is_git_url(s: &str) -> bool {
    s.starts_with("git://") || s.starts_with("git@") || (s.starts_with("github.com/")) || s.ends_with(".git") && s.contains("://")
}
