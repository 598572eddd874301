//! `berth build` (and `image build`) and `berth builder prune`: the docker CLI's
//! classic build. The context directory is tarred as the docker CLI does it —
//! `.dockerignore` (or `<Dockerfile>.dockerignore`) with Docker's pattern rules, the
//! Dockerfile and the ignore file always sent, owners 0:0 — and streamed to the
//! daemon, never held in memory; `-` reads a tar or a Dockerfile from stdin; a URL is
//! fetched by the daemon (`remote=`).

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use clap::{ArgAction, Args};

use super::image::show_progress;
use crate::client::{Call, reader_body};
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::format::units;
use crate::opts::parse;
use crate::io::Sink;

#[derive(Debug, Clone, Args)]
#[command(about = "Build an image from a Dockerfile")]
pub struct BuildArgs {
    #[arg(long = "add-host", value_name = "list", help = "Add a custom host-to-IP mapping (\"host:ip\")")]
    pub add_host: Vec<String>,
    #[arg(long = "build-arg", value_name = "list", help = "Set build-time variables")]
    pub build_arg: Vec<String>,
    #[arg(long = "cache-from", value_name = "strings", help = "Images to consider as cache sources")]
    pub cache_from: Vec<String>,
    #[arg(long = "cgroup-parent", value_name = "string", default_value = "", hide_default_value = true, help = "Set the parent cgroup for the \"RUN\" instructions during build")]
    pub cgroup_parent: String,
    #[arg(long, action = ArgAction::SetTrue, help = "Compress the build context using gzip")]
    pub compress: bool,
    #[arg(long = "cpu-period", value_name = "int", default_value_t = 0, hide_default_value = true, help = "Limit the CPU CFS (Completely Fair Scheduler) period")]
    pub cpu_period: i64,
    #[arg(long = "cpu-quota", value_name = "int", default_value_t = 0, hide_default_value = true, help = "Limit the CPU CFS (Completely Fair Scheduler) quota")]
    pub cpu_quota: i64,
    #[arg(short = 'c', long = "cpu-shares", value_name = "int", default_value_t = 0, hide_default_value = true, help = "CPU shares (relative weight)")]
    pub cpu_shares: i64,
    #[arg(long = "cpuset-cpus", value_name = "string", default_value = "", hide_default_value = true, help = "CPUs in which to allow execution (0-3, 0,1)")]
    pub cpuset_cpus: String,
    #[arg(long = "disable-content-trust", hide = true, action = ArgAction::SetTrue)]
    pub disable_content_trust: bool,
    #[arg(short, long, value_name = "string", help = "Name of the Dockerfile (default: \"PATH/Dockerfile\")")]
    pub file: Option<String>,
    #[arg(long = "force-rm", action = ArgAction::SetTrue, help = "Always remove intermediate containers")]
    pub force_rm: bool,
    #[arg(long, value_name = "string", help = "Write the image ID to the file")]
    pub iidfile: Option<String>,
    #[arg(long, value_name = "string", default_value = "", hide_default_value = true, help = "Container isolation technology")]
    pub isolation: String,
    #[arg(long, value_name = "list", help = "Set metadata for an image")]
    pub label: Vec<String>,
    #[arg(short = 'm', long, value_name = "bytes", default_value = "", hide_default_value = true, help = "Memory limit")]
    pub memory: String,
    #[arg(long = "memory-swap", value_name = "bytes", default_value = "", hide_default_value = true, help = "Swap limit equal to memory plus swap: -1 to enable unlimited swap")]
    pub memory_swap: String,
    #[arg(long, value_name = "string", default_value = "", hide_default_value = true, help = "Set the networking mode for the RUN instructions during build")]
    pub network: String,
    #[arg(long = "no-cache", action = ArgAction::SetTrue, help = "Do not use cache when building the image")]
    pub no_cache: bool,
    #[arg(long, value_name = "string", default_value = "", hide_default_value = true, help = "Set platform if server is multi-platform capable")]
    pub platform: String,
    #[arg(long, value_name = "string", default_value = "auto", hide_default_value = true, help = "Set type of progress output (auto, plain, tty)")]
    pub progress: String,
    #[arg(long, action = ArgAction::SetTrue, help = "Always attempt to pull a newer version of the image")]
    pub pull: bool,
    #[arg(short, long, action = ArgAction::SetTrue, help = "Suppress the build output and print image ID on success")]
    pub quiet: bool,
    #[arg(long, value_name = "bool", default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true, help = "Remove intermediate containers after a successful build")]
    pub rm: bool,
    #[arg(long = "security-opt", value_name = "strings", help = "Security options")]
    pub security_opt: Vec<String>,
    #[arg(long = "shm-size", value_name = "bytes", default_value = "", hide_default_value = true, help = "Size of \"/dev/shm\"")]
    pub shm_size: String,
    #[arg(long, action = ArgAction::SetTrue, help = "Squash newly built layers into a single new layer")]
    pub squash: bool,
    #[arg(short, long, value_name = "list", help = "Name and optionally a tag in the \"name:tag\" format")]
    pub tag: Vec<String>,
    #[arg(long, value_name = "string", default_value = "", hide_default_value = true, help = "Set the target build stage to build")]
    pub target: String,
    #[arg(long, value_name = "ulimit", help = "Ulimit options")]
    pub ulimit: Vec<String>,
    #[arg(value_name = "PATH | URL | -")]
    pub context: String,
}

/// Where the context comes from.
enum Source {
    /// A directory, with the Dockerfile's path in it and, for a Dockerfile outside
    /// it (or from stdin), its content to add under that name.
    Dir { dir: PathBuf, dockerfile: String, extra: Option<Vec<u8>> },
    /// A tar (maybe compressed) or a bare Dockerfile on stdin, sent as it is.
    Stdin,
    /// A URL the daemon fetches.
    Remote(String),
}

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://") || s.starts_with("git://") || s.starts_with("git@") || s.starts_with("github.com/")
}

fn random_name() -> String {
    let n = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0) ^ std::process::id();
    format!(".dockerfile.{n:08x}")
}

fn read_stdin() -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    std::io::Read::read_to_end(&mut std::io::stdin(), &mut buf)?;
    Ok(buf)
}

fn source(ctx: &Ctx, a: &BuildArgs) -> Result<Source> {
    if a.context == "-" {
        if a.file.as_deref() == Some("-") {
            return Err(Error::msg("invalid argument: can't use stdin for both build context and dockerfile"));
        }
        return Ok(Source::Stdin);
    }
    if is_url(&a.context) {
        return Ok(Source::Remote(a.context.clone()));
    }
    let dir = ctx.cwd.join(&a.context);
    if !dir.is_dir() {
        return Err(Error::msg(format!("unable to prepare context: path {:?} not found", a.context)));
    }
    match a.file.as_deref() {
        None => Ok(Source::Dir { dir, dockerfile: "Dockerfile".into(), extra: None }),
        Some("-") => Ok(Source::Dir { dir, dockerfile: random_name(), extra: Some(read_stdin()?) }),
        Some(f) => {
            // `-f` is relative to the current directory, as the docker CLI reads it.
            let p = ctx.cwd.join(f);
            let canon_dir = dir.canonicalize().unwrap_or(dir.clone());
            let canon_p = p.canonicalize().map_err(|_| Error::msg(format!("unable to prepare context: the Dockerfile ({f}) cannot be found")))?;
            match canon_p.strip_prefix(&canon_dir) {
                Ok(rel) => Ok(Source::Dir { dir, dockerfile: rel.to_string_lossy().into_owned(), extra: None }),
                // Outside the context: sent inside it under a random name.
                Err(_) => Ok(Source::Dir { dir, dockerfile: random_name(), extra: Some(std::fs::read(&canon_p)?) }),
            }
        }
    }
}

/// Writes the context directory as a tar to `out`; returns the bytes written.
fn write_context(dir: &Path, dockerfile: &str, extra: Option<&[u8]>, out: impl Write) -> std::io::Result<u64> {
    use berth_build::ignore::{Matcher, parse_dockerignore};
    let specific = dir.join(format!("{dockerfile}.dockerignore"));
    let text = std::fs::read_to_string(&specific).or_else(|_| std::fs::read_to_string(dir.join(".dockerignore"))).unwrap_or_default();
    let patterns = parse_dockerignore(&text);
    let in_context = extra.is_none().then_some(dockerfile);
    let matcher = Matcher::for_build(&patterns, in_context).map_err(|e| std::io::Error::other(format!("error checking context: {e}")))?;
    let counter = Counter { inner: out, n: 0 };
    let mut tar = tar::Builder::new(counter);
    tar.follow_symlinks(false);
    add_dir(&mut tar, dir, "", &matcher)?;
    if let Some(content) = extra {
        let mut h = tar::Header::new_gnu();
        h.set_size(content.len() as u64);
        h.set_mode(0o600);
        h.set_mtime(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0));
        h.set_entry_type(tar::EntryType::Regular);
        tar.append_data(&mut h, dockerfile, content)?;
    }
    let counter = tar.into_inner()?;
    Ok(counter.n)
}

struct Counter<W> {
    inner: W,
    n: u64,
}

impl<W: Write> Write for Counter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

fn add_dir<W: Write>(tar: &mut tar::Builder<W>, dir: &Path, rel: &str, m: &berth_build::ignore::Matcher) -> std::io::Result<()> {
    let mut names: Vec<_> = std::fs::read_dir(dir)?.map(|e| e.map(|e| e.file_name())).collect::<std::io::Result<_>>()?;
    names.sort();
    for name in names {
        let path = dir.join(&name);
        let r = if rel.is_empty() { name.to_string_lossy().into_owned() } else { format!("{rel}/{}", name.to_string_lossy()) };
        let meta = std::fs::symlink_metadata(&path)?;
        let excluded = m.excluded(&r);
        if excluded && !(meta.is_dir() && m.may_include_under(&r)) {
            continue;
        }
        if !excluded {
            let mut h = tar::Header::new_gnu();
            h.set_metadata_in_mode(&meta, tar::HeaderMode::Complete);
            // The docker CLI sends everything as root's.
            h.set_uid(0);
            h.set_gid(0);
            let _ = h.set_username("");
            let _ = h.set_groupname("");
            h.set_mtime(meta.mtime().max(0) as u64);
            let ft = meta.file_type();
            if ft.is_dir() {
                tar.append_data(&mut h, format!("{r}/"), std::io::empty())?;
            } else if ft.is_file() {
                let f = std::fs::File::open(&path)?;
                tar.append_data(&mut h, &r, f)?;
            } else if ft.is_symlink() {
                let target = std::fs::read_link(&path)?;
                tar.append_link(&mut h, &r, &target)?;
            } else {
                // Sockets and devices are not part of a context.
                continue;
            }
        }
        if meta.is_dir() {
            add_dir(tar, &path, &r, m)?;
        }
    }
    Ok(())
}

fn byte_size(flag: &str, v: &str) -> Result<Option<i64>> {
    if v.is_empty() {
        return Ok(None);
    }
    if v == "-1" {
        return Ok(Some(-1));
    }
    units::ram_in_bytes(v).map(Some).map_err(|e| Error::Usage(format!("invalid argument \"{v}\" for \"{flag}\" flag: {e}")))
}

pub async fn build(ctx: &Ctx, a: BuildArgs) -> Result<()> {
    for t in &a.tag {
        parse::validate_reference(t).map_err(|e| Error::Usage(format!("invalid argument \"{t}\" for \"-t, --tag\" flag: {e}")))?;
    }
    if a.squash {
        return Err(Error::msg("Error response from daemon: squash is only supported with experimental mode"));
    }
    let src = source(ctx, &a)?;
    let mut build_args = BTreeMap::new();
    for ba in &a.build_arg {
        match ba.split_once('=') {
            Some((k, v)) => {
                build_args.insert(k.to_string(), Some(v.to_string()));
            }
            // `--build-arg NAME` takes the value from the environment, if set there.
            None => match ctx.env.get(ba) {
                Some(v) => {
                    build_args.insert(ba.clone(), Some(v.clone()));
                }
                None => {
                    build_args.insert(ba.clone(), None);
                }
            },
        }
    }
    let dockerfile = match &src {
        Source::Dir { dockerfile, .. } => dockerfile.clone(),
        _ => a.file.clone().unwrap_or_else(|| "Dockerfile".into()),
    };
    let mut call = Call::post("/build")
        .query("dockerfile", dockerfile)
        .flag("nocache", a.no_cache)
        .flag("pull", a.pull)
        .flag("q", a.quiet)
        .flag("forcerm", a.force_rm)
        .query_opt("networkmode", &a.network)
        .query_opt("platform", &a.platform)
        .query_opt("target", &a.target)
        .query_opt("cgroupparent", &a.cgroup_parent)
        .query_opt("cpusetcpus", &a.cpuset_cpus)
        .query("version", "1");
    if !a.rm {
        call = call.query("rm", "0");
    }
    for (k, v) in [("cpuperiod", a.cpu_period), ("cpuquota", a.cpu_quota), ("cpushares", a.cpu_shares)] {
        if v != 0 {
            call = call.query(k, v.to_string());
        }
    }
    for (k, flag, v) in [("memory", "-m, --memory", &a.memory), ("memswap", "--memory-swap", &a.memory_swap), ("shmsize", "--shm-size", &a.shm_size)] {
        if let Some(n) = byte_size(flag, v)? {
            call = call.query(k, n.to_string());
        }
    }
    for t in &a.tag {
        call = call.query("t", t.clone());
    }
    for h in &a.add_host {
        call = call.query("extrahosts", h.clone());
    }
    if !build_args.is_empty() {
        call = call.query("buildargs", serde_json::to_string(&build_args).unwrap_or_default());
    }
    if !a.label.is_empty() {
        call = call.query("labels", serde_json::to_string(&parse::kv_map(&a.label)).unwrap_or_default());
    }
    if !a.cache_from.is_empty() {
        call = call.query("cachefrom", serde_json::to_string(&a.cache_from).unwrap_or_default());
    }
    if !a.ulimit.is_empty() {
        let mut ul = Vec::new();
        for u in &a.ulimit {
            ul.push(parse::parse_ulimit(u).map_err(|e| Error::Usage(format!("invalid argument \"{u}\" for \"--ulimit\" flag: {e}")))?);
        }
        call = call.query("ulimits", serde_json::to_string(&ul).unwrap_or_default());
    }
    let mut auths = serde_json::Map::new();
    if let Some(m) = ctx.config.json.get("auths").and_then(|v| v.as_object()) {
        for k in m.keys() {
            if let Some(cred) = ctx.config.credentials(k) {
                auths.insert(k.clone(), serde_json::to_value(cred).unwrap_or_default());
            }
        }
    }
    use base64::Engine;
    let registry_config = base64::engine::general_purpose::URL_SAFE.encode(serde_json::Value::Object(auths).to_string());
    call = call.header("X-Registry-Config", &registry_config);

    // The context streams through a pipe from a thread that tars it.
    let mut writer_thread = None;
    let call = match src {
        Source::Remote(url) => call.query("remote", url),
        Source::Stdin => {
            if ctx.io.stdin_tty {
                return Err(Error::msg("unable to prepare context: the build context (\"-\") must come from stdin: redirect a tar or a Dockerfile"));
            }
            call.body(reader_body(tokio::io::stdin()), "application/x-tar")
        }
        Source::Dir { dir, dockerfile, extra } => {
            let (rd, wr) = std::io::pipe()?;
            let compress = a.compress;
            writer_thread = Some(std::thread::spawn(move || -> std::io::Result<u64> {
                if compress {
                    let mut gz = flate2::write::GzEncoder::new(wr, flate2::Compression::fast());
                    let n = write_context(&dir, &dockerfile, extra.as_deref(), &mut gz)?;
                    gz.finish()?;
                    Ok(n)
                } else {
                    write_context(&dir, &dockerfile, extra.as_deref(), wr)
                }
            }));
            let rd = tokio::net::unix::pipe::Receiver::from_owned_fd(std::os::fd::OwnedFd::from(rd))?;
            call.body(reader_body(rd), "application/x-tar")
        }
    };
    let c = ctx.client().await?;
    let sent = c.send(call).await;
    if let Some(t) = writer_thread {
        match t.join() {
            Ok(Ok(n)) => {
                if !a.quiet {
                    ctx.io.println(&format!("Sending build context to berth daemon  {}", units::human_size_precision(n as f64, 4)));
                }
            }
            Ok(Err(e)) => return Err(Error::msg(format!("error checking context: {e}"))),
            Err(_) => return Err(Error::msg("error checking context")),
        }
    }
    let res = sent?;
    let mut image_id = String::new();
    let out = if a.quiet { Sink::Buffer(Default::default()) } else { ctx.io.out.clone() };
    let tty = ctx.io.stdout_tty && !a.quiet && a.progress != "plain";
    let shown = show_progress(res, out.clone(), tty, |aux| {
        if let Some(id) = aux.get("ID").and_then(|v| v.as_str()) {
            image_id = id.to_string();
        }
    })
    .await;
    if let Err(e) = shown {
        if a.quiet
            && let Sink::Buffer(b) = &out {
                // Quiet builds show their output only when they fail.
                ctx.io.eprintln(String::from_utf8_lossy(&b.lock().unwrap_or_else(|p| p.into_inner())).trim_end());
            }
        return Err(e);
    }
    if a.quiet {
        ctx.io.println(&image_id);
    }
    if let Some(f) = &a.iidfile {
        std::fs::write(f, &image_id).map_err(|e| Error::msg(format!("failed to write image ID to file: {e}")))?;
    }
    Ok(())
}

#[derive(Debug, Clone, Args)]
#[command(about = "Remove build cache")]
pub struct BuilderPruneArgs {
    #[arg(short, long, action = ArgAction::SetTrue, help = "Remove all unused build cache, not just dangling ones")]
    pub all: bool,
    #[arg(long, value_name = "filter", help = "Provide filter values (e.g. \"until=24h\")")]
    pub filter: Vec<String>,
    #[arg(short, long, action = ArgAction::SetTrue, help = "Do not prompt for confirmation")]
    pub force: bool,
    #[arg(long = "keep-storage", value_name = "bytes", default_value = "", hide_default_value = true, help = "Amount of disk space to keep for cache")]
    pub keep_storage: String,
}

pub async fn builder_prune(ctx: &Ctx, a: BuilderPruneArgs) -> Result<()> {
    let warning = if a.all { "WARNING! This will remove all build cache." } else { "WARNING! This will remove all dangling build cache." };
    if !super::confirm(ctx, warning, a.force) {
        return Ok(());
    }
    let keep = byte_size("--keep-storage", &a.keep_storage)?.unwrap_or(0);
    let (deleted, space) = prune_cache(ctx, a.all, keep, &a.filter).await?;
    if !deleted.is_empty() {
        ctx.io.println("Deleted build cache objects:");
        for d in &deleted {
            ctx.io.println(d);
        }
        ctx.io.println("");
    }
    ctx.io.println(&format!("Total reclaimed space: {}", units::human_size(space as f64)));
    Ok(())
}

/// `POST /build/prune`: the IDs removed and the bytes given back.
pub async fn prune_cache(ctx: &Ctx, all: bool, keep_storage: i64, filter: &[String]) -> Result<(Vec<String>, u64)> {
    let c = ctx.client().await?;
    let mut call = Call::post("/build/prune").flag("all", all);
    if keep_storage > 0 {
        call = call.query("keep-storage", keep_storage.to_string());
    }
    if let Some(f) = super::filters_json(filter)? {
        call = call.query("filters", f);
    }
    let v: serde_json::Value = serde_json::from_slice(&c.bytes(call).await?).map_err(|e| Error::msg(format!("unexpected answer from the daemon: {e}")))?;
    let deleted = v["CachesDeleted"].as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(str::to_string)).collect()).unwrap_or_default();
    Ok((deleted, v["SpaceReclaimed"].as_u64().unwrap_or(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(tar_bytes: &[u8]) -> Vec<String> {
        let mut ar = tar::Archive::new(tar_bytes);
        let mut names: Vec<String> = ar.entries().unwrap().map(|e| e.unwrap().path().unwrap().to_string_lossy().trim_end_matches('/').to_string()).collect();
        names.sort();
        names
    }

    #[test]
    fn context_honours_dockerignore_with_exceptions() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("Dockerfile"), "FROM busybox\n").unwrap();
        std::fs::write(d.join(".dockerignore"), "*.log\nsecret\nDockerfile\n**/*.tmp\n!keep/important.tmp\n").unwrap();
        std::fs::write(d.join("a.log"), "x").unwrap();
        std::fs::create_dir_all(d.join("secret")).unwrap();
        std::fs::write(d.join("secret/key"), "k").unwrap();
        std::fs::create_dir_all(d.join("src")).unwrap();
        std::fs::write(d.join("src/main.c"), "int main;").unwrap();
        std::fs::write(d.join("src/x.tmp"), "t").unwrap();
        std::fs::create_dir_all(d.join("keep")).unwrap();
        std::fs::write(d.join("keep/important.tmp"), "i").unwrap();
        let mut out = Vec::new();
        let n = write_context(d, "Dockerfile", None, &mut out).unwrap();
        assert_eq!(n as usize, out.len());
        // The Dockerfile and .dockerignore are sent even when a pattern names them.
        assert_eq!(names(&out), vec![".dockerignore", "Dockerfile", "keep", "keep/important.tmp", "src", "src/main.c"]);
        let mut ar = tar::Archive::new(out.as_slice());
        for e in ar.entries().unwrap() {
            let e = e.unwrap();
            assert_eq!((e.header().uid().unwrap(), e.header().gid().unwrap()), (0, 0));
        }
    }

    #[test]
    fn a_dockerfile_from_outside_gets_its_own_name() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("data"), "d").unwrap();
        let mut out = Vec::new();
        write_context(dir.path(), ".dockerfile.abc", Some(b"FROM scratch\n"), &mut out).unwrap();
        assert_eq!(names(&out), vec![".dockerfile.abc", "data"]);
    }
}
