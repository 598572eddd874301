//! The interactive commands: create, run, start, attach, exec. They follow the
//! docker CLI's call order (create → attach (hijack) → wait → start), forward
//! signals, keep the container's TTY sized to ours, and exit with the container's
//! status (125/126/127 when the engine fails, cannot invoke, or cannot find).

use std::time::Duration;

use clap::{ArgAction, Args};
use tokio::signal::unix::{SignalKind, signal};

use super::{image, value};
use crate::client::{Call, Client};
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::io::Sink;
use crate::opts::container::ContainerOpts;
use crate::opts::parse;
use crate::stream::attach::{self, AttachOptions, Outcome};
use crate::stream::escape::DEFAULT_DETACH_KEYS;
use crate::stream::term;

#[derive(Debug, Clone, Args)]
#[command(about = "Create a new container", disable_help_flag = true)]
pub struct CreateArgs {
    #[arg(long, action = ArgAction::Help, help = "Print usage")]
    pub help: Option<bool>,
    #[command(flatten)]
    pub opts: ContainerOpts,
    #[arg(value_name = "IMAGE")]
    pub image: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(Debug, Clone, Args)]
#[command(about = "Create and run a new container from an image", disable_help_flag = true)]
pub struct RunArgs {
    #[arg(long, action = ArgAction::Help, help = "Print usage")]
    pub help: Option<bool>,
    #[arg(short, long, action = ArgAction::SetTrue, help = "Run container in background and print container ID")]
    pub detach: bool,
    #[arg(long = "sig-proxy", value_name = "bool", default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true, help = "Proxy received signals to the process")]
    pub sig_proxy: bool,
    #[arg(long = "detach-keys", value_name = "string", help = "Override the key sequence for detaching a container")]
    pub detach_keys: Option<String>,
    #[command(flatten)]
    pub opts: ContainerOpts,
    #[arg(value_name = "IMAGE")]
    pub image: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// How docker maps a failed create/start to an exit status.
pub fn start_error_code(msg: &str) -> i32 {
    if msg.contains("executable file not found") || msg.contains("no such file or directory") || msg.contains("system cannot find the file specified") {
        127
    } else if msg.contains("permission denied") || msg.contains("is a directory") {
        126
    } else {
        125
    }
}

/// Prints a run/create failure docker's way and returns the exit status.
fn report(ctx: &Ctx, cmd: &str, e: &Error, with_help: bool) -> Error {
    if let Error::Status(c) = e {
        return Error::Status(*c);
    }
    let msg = e.to_string();
    if with_help {
        ctx.io.eprintln(&format!("berth: {msg}\n\nRun 'berth {cmd} --help' for more information"));
    } else {
        ctx.io.eprintln(&format!("berth: {msg}"));
    }
    match e {
        Error::Connect { .. } => Error::Status(1),
        _ => Error::Status(start_error_code(&msg)),
    }
}

/// Adds `:latest` when a reference has neither tag nor digest (docker's messages).
fn tagged(image: &str) -> String {
    let (_, tag) = parse::split_reference(image);
    if tag.is_empty() { format!("{image}:latest") } else { image.to_string() }
}

/// `POST /containers/create`, pulling the image when it is missing (or always).
async fn create_container(ctx: &Ctx, c: &Client, req: &berth_types::container::CreateRequest, opts: &ContainerOpts) -> Result<String> {
    let image = req.config.image.clone();
    parse::validate_reference(&image).map_err(Error::Msg)?;
    if !opts.cidfile.is_empty() && std::path::Path::new(&opts.cidfile).exists() {
        return Err(Error::msg(format!("container ID file found, make sure the other container isn't running or delete {}", opts.cidfile)));
    }
    let pull = |quiet: bool| {
        let image = image.clone();
        async move { image::pull_image(ctx, c, &image, &opts.platform, quiet, false, ctx.io.err.clone(), false).await }
    };
    if opts.pull == "always" {
        pull(opts.quiet).await?;
    }
    let call = || Call::post("/containers/create").query_opt("name", &opts.name).query_opt("platform", &opts.platform).json(req);
    let res = match c.bytes(call()).await {
        Err(e) if e.is_not_found() && opts.pull == "missing" => {
            ctx.io.eprintln(&format!("Unable to find image '{}' locally", tagged(&image)));
            pull(opts.quiet).await?;
            c.bytes(call()).await?
        }
        r => r?,
    };
    let v = value(&res)?;
    for w in v.list_at(&["Warnings"]) {
        ctx.io.eprintln(&format!("WARNING: {}", w.display()));
    }
    let id = v.str_at(&["Id"]);
    if !opts.cidfile.is_empty() {
        std::fs::write(&opts.cidfile, &id).map_err(|e| Error::msg(format!("failed to write the container ID to the file: {e}")))?;
    }
    Ok(id)
}

pub async fn create(ctx: &Ctx, a: CreateArgs) -> Result<()> {
    let mut req = a.opts.to_request(&a.image, &a.command, &ctx.env, &ctx.cwd).map_err(|m| report(ctx, "create", &Error::Msg(m), true))?;
    if req.config.tty && ctx.io.stdout_tty
        && let Some((h, w)) = term::stdout_size()
            && let Some(hc) = req.host_config.as_mut() {
                hc.console_size = Some([h as u32, w as u32]);
            }
    let c = ctx.client().await.map_err(|e| report(ctx, "create", &e, false))?;
    let id = create_container(ctx, c, &req, &a.opts).await.map_err(|e| report(ctx, "create", &e, true))?;
    ctx.io.println(&id);
    Ok(())
}

fn detach_keys(ctx: &Ctx, flag: Option<&str>) -> Vec<u8> {
    let spec = flag.map(str::to_string).or_else(|| ctx.config.string("detachKeys").map(str::to_string));
    match spec {
        Some(s) => parse::detach_keys(&s).unwrap_or_else(|e| {
            ctx.io.eprintln(&format!("WARNING: invalid detach escape keys, using default: {e}"));
            DEFAULT_DETACH_KEYS.to_vec()
        }),
        None => DEFAULT_DETACH_KEYS.to_vec(),
    }
}

/// Forwards the signals a user can send us to the container (`--sig-proxy`).
fn forward_signals(c: Client, id: String) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let kinds = [
            (SignalKind::interrupt(), libc::SIGINT),
            (SignalKind::terminate(), libc::SIGTERM),
            (SignalKind::hangup(), libc::SIGHUP),
            (SignalKind::quit(), libc::SIGQUIT),
            (SignalKind::user_defined1(), libc::SIGUSR1),
            (SignalKind::user_defined2(), libc::SIGUSR2),
        ];
        let (tx, mut rx) = tokio::sync::mpsc::channel::<i32>(8);
        for (kind, num) in kinds {
            let Ok(mut s) = signal(kind) else { continue };
            let tx = tx.clone();
            tokio::spawn(async move {
                while s.recv().await.is_some() {
                    if tx.send(num).await.is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        while let Some(num) = rx.recv().await {
            let _ = c.bytes(Call::post(format!("/containers/{id}/kill")).query("signal", num.to_string())).await;
        }
    })
}

/// Keeps the remote TTY at our terminal's size: once now (retrying while the
/// process starts), then on every SIGWINCH.
fn monitor_tty_size(c: Client, path: String) -> tokio::task::JoinHandle<()> {
    // Listen before the first resize: SIGWINCH is ignored by default, so a window change
    // that came while that request was on its way would otherwise be lost for good.
    let winch = signal(SignalKind::window_change());
    tokio::spawn(async move {
        let resize = |c: Client, path: String| async move {
            let Some((h, w)) = term::stdout_size() else { return Ok(()) };
            c.bytes(Call::post(path).query("h", h.to_string()).query("w", w.to_string())).await.map(|_| ())
        };
        for attempt in 0..10u64 {
            if resize(c.clone(), path.clone()).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10 * (attempt + 1))).await;
        }
        let Ok(mut winch) = winch else { return };
        while winch.recv().await.is_some() {
            let _ = resize(c.clone(), path.clone()).await;
        }
    })
}

/// Starts `POST /containers/{id}/wait?condition=...` and returns once the daemon has
/// taken it (its response headers arrived), so a container that exits at once is
/// still seen. The handle yields the exit status.
async fn wait_for_exit(c: &Client, id: &str, condition: &str) -> tokio::task::JoinHandle<Result<i64>> {
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let c = c.clone();
    let call = Call::post(format!("/containers/{id}/wait")).query_opt("condition", condition);
    let handle = tokio::spawn(async move {
        let res = c.send(call).await;
        let _ = ready_tx.send(());
        let body = crate::client::read_body(res?).await?;
        let v = value(&body)?;
        let msg = v.str_at(&["Error", "Message"]);
        if !msg.is_empty() {
            return Err(Error::Msg(format!("Error waiting for container: {msg}")));
        }
        Ok(v.i64_at(&["StatusCode"]))
    });
    // A daemon that only answers at exit (not moby's behaviour) costs us this delay.
    let _ = tokio::time::timeout(Duration::from_secs(1), ready_rx).await;
    handle
}

fn check_tty(ctx: &Ctx, attach_stdin: bool, tty: bool) -> Result<()> {
    if attach_stdin && tty && !ctx.io.stdin_tty {
        return Err(Error::msg("the input device is not a TTY"));
    }
    Ok(())
}

pub async fn run(ctx: &Ctx, a: RunArgs) -> Result<()> {
    let mut req = a.opts.to_request(&a.image, &a.command, &ctx.env, &ctx.cwd).map_err(|m| report(ctx, "run", &Error::Msg(m), true))?;
    if a.detach {
        if !a.opts.attach.is_empty() {
            return Err(report(ctx, "run", &Error::msg("Conflicting options: -a and -d"), true));
        }
        req.config.attach_stdin = false;
        req.config.attach_stdout = false;
        req.config.attach_stderr = false;
        req.config.stdin_once = false;
    } else {
        check_tty(ctx, req.config.attach_stdin, req.config.tty)?;
        if req.config.attach_stdin && req.config.open_stdin {
            req.config.stdin_once = true;
        }
    }
    let cfg = req.config.clone();
    if cfg.tty && ctx.io.stdout_tty
        && let Some((h, w)) = term::stdout_size()
            && let Some(hc) = req.host_config.as_mut() {
                hc.console_size = Some([h as u32, w as u32]);
            }
    let c = ctx.client().await.map_err(|e| report(ctx, "run", &e, false))?;
    let id = create_container(ctx, c, &req, &a.opts).await.map_err(|e| report(ctx, "run", &e, true))?;

    let _signals = if a.sig_proxy { Some(forward_signals(c.clone(), id.clone())) } else { None };
    let attach = cfg.attach_stdin || cfg.attach_stdout || cfg.attach_stderr;
    let mut streamer = None;
    if attach {
        let keys = detach_keys(ctx, a.detach_keys.as_deref());
        let call = Call::post(format!("/containers/{id}/attach"))
            .query("stream", "1")
            .flag("stdin", cfg.attach_stdin)
            .flag("stdout", cfg.attach_stdout)
            .flag("stderr", cfg.attach_stderr)
            .query_opt("detachKeys", a.detach_keys.as_deref().unwrap_or(""));
        let conn = c.hijack(call).await.map_err(|e| report(ctx, "run", &e, false))?;
        let err_sink = if cfg.tty { ctx.io.out.clone() } else { ctx.io.err.clone() };
        let opts = AttachOptions {
            tty: cfg.tty,
            input: if cfg.attach_stdin { Some(attach::stdin_input()) } else { None },
            stdout: cfg.attach_stdout.then(|| ctx.io.out.clone()),
            stderr: cfg.attach_stderr.then_some(err_sink),
            detach_keys: keys,
            raw_terminal: ctx.io.stdin_tty,
        };
        streamer = Some(tokio::spawn(attach::stream(conn, opts)));
    }
    let condition = if a.opts.rm { "removed" } else { "next-exit" };
    let status = wait_for_exit(c, &id, condition).await;

    if let Err(e) = c.bytes(Call::post(format!("/containers/{id}/start"))).await {
        if let Some(s) = streamer {
            s.abort();
        }
        let code = report(ctx, "run", &e, false);
        if a.opts.rm {
            let _ = tokio::time::timeout(Duration::from_secs(5), status).await;
        }
        return Err(code);
    }
    if !cfg.attach_stdout && !cfg.attach_stderr {
        ctx.io.println(&id);
    }
    if attach && cfg.tty && ctx.io.stdout_tty {
        monitor_tty_size(c.clone(), format!("/containers/{id}/resize"));
    }
    if let Some(s) = streamer {
        match s.await {
            Ok(Ok(Outcome::Detached)) => return Ok(()),
            Ok(Ok(Outcome::Finished)) => {}
            Ok(Err(e)) => return Err(e),
            Err(e) => return Err(Error::msg(format!("attach: {e}"))),
        }
    }
    if !cfg.attach_stdout && !cfg.attach_stderr {
        return Ok(());
    }
    match status.await {
        Ok(Ok(0)) => Ok(()),
        Ok(Ok(code)) => Err(Error::Status(code as i32)),
        Ok(Err(e)) => {
            ctx.io.eprintln(&e.to_string());
            Err(Error::Status(125))
        }
        Err(_) => Err(Error::Status(125)),
    }
}

#[derive(Debug, Clone, Args)]
#[command(about = "Start one or more stopped containers")]
pub struct StartArgs {
    #[arg(short, long, action = ArgAction::SetTrue, help = "Attach STDOUT/STDERR and forward signals")]
    pub attach: bool,
    #[arg(long = "detach-keys", value_name = "string", help = "Override the key sequence for detaching a container")]
    pub detach_keys: Option<String>,
    #[arg(short, long, action = ArgAction::SetTrue, help = "Attach container's STDIN")]
    pub interactive: bool,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

pub async fn start(ctx: &Ctx, a: StartArgs) -> Result<()> {
    let c = ctx.client().await?;
    if !(a.attach || a.interactive) {
        return super::for_each(ctx, &a.containers, |name| {
            let call = Call::post(format!("/containers/{name}/start"));
            async move { c.bytes(call).await.map(|_| Some(name)) }
        })
        .await;
    }
    if a.containers.len() > 1 {
        return Err(Error::msg("you cannot start and attach multiple containers at once"));
    }
    let name = &a.containers[0];
    let info = value(&c.bytes(Call::get(format!("/containers/{name}/json"))).await?)?;
    let id = info.str_at(&["Id"]);
    let tty = info.bool_at(&["Config", "Tty"]);
    let stdin = a.interactive && info.bool_at(&["Config", "OpenStdin"]);
    check_tty(ctx, stdin, tty)?;
    let _signals = if !tty { Some(forward_signals(c.clone(), id.clone())) } else { None };
    let call = Call::post(format!("/containers/{id}/attach"))
        .query("stream", "1")
        .flag("stdin", stdin)
        .query("stdout", "1")
        .query("stderr", "1")
        .query_opt("detachKeys", a.detach_keys.as_deref().unwrap_or(""));
    let conn = c.hijack(call).await?;
    let opts = AttachOptions {
        tty,
        input: if stdin { Some(attach::stdin_input()) } else { None },
        stdout: Some(ctx.io.out.clone()),
        stderr: Some(if tty { ctx.io.out.clone() } else { ctx.io.err.clone() }),
        detach_keys: detach_keys(ctx, a.detach_keys.as_deref()),
        raw_terminal: ctx.io.stdin_tty,
    };
    let streamer = tokio::spawn(attach::stream(conn, opts));
    let auto_remove = info.bool_at(&["HostConfig", "AutoRemove"]);
    let status = wait_for_exit(c, &id, if auto_remove { "removed" } else { "next-exit" }).await;
    if let Err(e) = c.bytes(Call::post(format!("/containers/{id}/start"))).await {
        streamer.abort();
        return Err(e);
    }
    if tty && ctx.io.stdout_tty {
        monitor_tty_size(c.clone(), format!("/containers/{id}/resize"));
    }
    match streamer.await {
        Ok(Ok(Outcome::Detached)) => return Ok(()),
        Ok(Ok(Outcome::Finished)) => {}
        Ok(Err(e)) => return Err(e),
        Err(e) => return Err(Error::msg(format!("attach: {e}"))),
    }
    match status.await {
        Ok(Ok(0)) => Ok(()),
        Ok(Ok(code)) => Err(Error::Status(code as i32)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(Error::Status(125)),
    }
}

#[derive(Debug, Clone, Args)]
#[command(about = "Attach local standard input, output, and error streams to a running container")]
pub struct AttachArgs {
    #[arg(long = "detach-keys", value_name = "string", help = "Override the key sequence for detaching a container")]
    pub detach_keys: Option<String>,
    #[arg(long = "no-stdin", action = ArgAction::SetTrue, help = "Do not attach STDIN")]
    pub no_stdin: bool,
    #[arg(long = "sig-proxy", value_name = "bool", default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true, help = "Proxy all received signals to the process")]
    pub sig_proxy: bool,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

pub async fn attach_cmd(ctx: &Ctx, a: AttachArgs) -> Result<()> {
    let c = ctx.client().await?;
    let info = value(&c.bytes(Call::get(format!("/containers/{}/json", a.container))).await?)?;
    if !info.bool_at(&["State", "Running"]) {
        return Err(Error::msg("You cannot attach to a stopped container, start it first"));
    }
    if info.bool_at(&["State", "Paused"]) {
        return Err(Error::msg("You cannot attach to a paused container, unpause it first"));
    }
    if info.bool_at(&["State", "Restarting"]) {
        return Err(Error::msg("You cannot attach to a restarting container, wait until it is running"));
    }
    let id = info.str_at(&["Id"]);
    let tty = info.bool_at(&["Config", "Tty"]);
    let stdin = !a.no_stdin && info.bool_at(&["Config", "OpenStdin"]);
    check_tty(ctx, stdin, tty)?;
    let _signals = if a.sig_proxy && !tty { Some(forward_signals(c.clone(), id.clone())) } else { None };
    // Register the wait first so the exit status is not missed.
    let status = wait_for_exit(c, &id, "").await;
    let call = Call::post(format!("/containers/{id}/attach"))
        .query("stream", "1")
        .flag("stdin", stdin)
        .query("stdout", "1")
        .query("stderr", "1")
        .query_opt("detachKeys", a.detach_keys.as_deref().unwrap_or(""));
    let conn = c.hijack(call).await?;
    if tty && ctx.io.stdout_tty {
        monitor_tty_size(c.clone(), format!("/containers/{id}/resize"));
    }
    let opts = AttachOptions {
        tty,
        input: if stdin { Some(attach::stdin_input()) } else { None },
        stdout: Some(ctx.io.out.clone()),
        stderr: Some(if tty { ctx.io.out.clone() } else { ctx.io.err.clone() }),
        detach_keys: detach_keys(ctx, a.detach_keys.as_deref()),
        raw_terminal: ctx.io.stdin_tty,
    };
    match attach::stream(conn, opts).await? {
        Outcome::Detached => Ok(()),
        Outcome::Finished => match status.await {
            Ok(Ok(0)) => Ok(()),
            Ok(Ok(code)) => Err(Error::Status(code as i32)),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(Error::Status(125)),
        },
    }
}

#[derive(Debug, Clone, Args)]
#[command(about = "Execute a command in a running container")]
pub struct ExecArgs {
    #[arg(short, long, action = ArgAction::SetTrue, help = "Detached mode: run command in the background")]
    pub detach: bool,
    #[arg(long = "detach-keys", value_name = "string", help = "Override the key sequence for detaching a container")]
    pub detach_keys: Option<String>,
    #[arg(short, long, value_name = "list", help = "Set environment variables")]
    pub env: Vec<String>,
    #[arg(long = "env-file", value_name = "list", help = "Read in a file of environment variables")]
    pub env_file: Vec<String>,
    #[arg(short, long, action = ArgAction::SetTrue, help = "Keep STDIN open even if not attached")]
    pub interactive: bool,
    #[arg(long, action = ArgAction::SetTrue, help = "Give extended privileges to the command")]
    pub privileged: bool,
    #[arg(short, long, action = ArgAction::SetTrue, help = "Allocate a pseudo-TTY")]
    pub tty: bool,
    #[arg(short, long, value_name = "string", help = "Username or UID (format: \"<name|uid>[:<group|gid>]\")")]
    pub user: Option<String>,
    #[arg(short, long, value_name = "string", help = "Working directory inside the container")]
    pub workdir: Option<String>,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct ExecCreate<'a> {
    user: &'a str,
    privileged: bool,
    tty: bool,
    attach_stdin: bool,
    attach_stderr: bool,
    attach_stdout: bool,
    detach: bool,
    detach_keys: &'a str,
    env: Option<Vec<String>>,
    working_dir: &'a str,
    cmd: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    console_size: Option<[u32; 2]>,
}

pub async fn exec(ctx: &Ctx, a: ExecArgs) -> Result<()> {
    let mut env = Vec::new();
    for f in &a.env_file {
        env.extend(parse::read_kv_file(f, Some(&ctx.env)).map_err(Error::Msg)?);
    }
    env.extend(a.env.iter().map(|e| parse::env_entry(e, &ctx.env)));
    if !a.detach {
        check_tty(ctx, a.interactive, a.tty)?;
    }
    let c = ctx.client().await?;
    // docker checks the container first, so a bad name fails before creating anything.
    c.bytes(Call::get(format!("/containers/{}/json", a.container))).await?;
    let console_size = if a.tty && ctx.io.stdout_tty { term::stdout_size().map(|(h, w)| [h as u32, w as u32]) } else { None };
    let body = ExecCreate {
        user: a.user.as_deref().unwrap_or(""),
        privileged: a.privileged,
        tty: a.tty,
        attach_stdin: a.interactive && !a.detach,
        attach_stderr: !a.detach,
        attach_stdout: !a.detach,
        detach: a.detach,
        detach_keys: a.detach_keys.as_deref().unwrap_or(""),
        env: if env.is_empty() { None } else { Some(env) },
        working_dir: a.workdir.as_deref().unwrap_or(""),
        cmd: &a.command,
        console_size,
    };
    let v = value(&c.bytes(Call::post(format!("/containers/{}/exec", a.container)).json(&body)).await?)?;
    let exec_id = v.str_at(&["Id"]);
    if exec_id.is_empty() {
        return Err(Error::msg("exec ID empty"));
    }
    #[derive(serde::Serialize)]
    #[serde(rename_all = "PascalCase")]
    struct Start {
        detach: bool,
        tty: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        console_size: Option<[u32; 2]>,
    }
    let start = Start { detach: a.detach, tty: a.tty, console_size };
    if a.detach {
        c.bytes(Call::post(format!("/exec/{exec_id}/start")).json(&start)).await?;
        return Ok(());
    }
    let conn = c.hijack(Call::post(format!("/exec/{exec_id}/start")).json(&start)).await?;
    if a.tty && ctx.io.stdout_tty {
        monitor_tty_size(c.clone(), format!("/exec/{exec_id}/resize"));
    }
    let err_sink: Sink = if a.tty { ctx.io.out.clone() } else { ctx.io.err.clone() };
    let opts = AttachOptions {
        tty: a.tty,
        input: if a.interactive { Some(attach::stdin_input()) } else { None },
        stdout: Some(ctx.io.out.clone()),
        stderr: Some(err_sink),
        detach_keys: detach_keys(ctx, a.detach_keys.as_deref()),
        raw_terminal: ctx.io.stdin_tty,
    };
    if attach::stream(conn, opts).await? == Outcome::Detached {
        return Ok(());
    }
    let info = value(&c.bytes(Call::get(format!("/exec/{exec_id}/json"))).await?)?;
    match info.i64_at(&["ExitCode"]) {
        0 => Ok(()),
        code => Err(Error::Status(code as i32)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_errors_map_to_docker_codes() {
        assert_eq!(start_error_code("exec: \"nosuch\": executable file not found in $PATH"), 127);
        assert_eq!(start_error_code("open /x: no such file or directory"), 127);
        assert_eq!(start_error_code("exec /etc: permission denied"), 126);
        assert_eq!(start_error_code("No such image: x"), 125);
    }
}
