//! berth's docker-compatible client: `berth <command>` speaks the Docker Engine API
//! to berth's daemon or to dockerd, with docker's flags, output, exit codes and
//! interactive behaviour.
//!
//! Entry points: [`main`] for the binary (real stdio and environment) and [`run`]
//! for callers that supply their own streams and environment (tests).

pub mod app;
pub mod client;
pub mod cmd;
pub mod config;
pub mod contexts;
pub mod ctx;
pub mod error;
pub mod format;
pub mod io;
pub mod opts;
pub mod stream;

use std::ffi::OsString;

use client::tls::TlsOptions;
use error::Error;
use io::Streams;
use opts::parse::Env;

/// Runs `berth <args>` with the process's stdio and environment; returns the exit
/// status. `args[0]` is the program name.
pub fn main(args: Vec<OsString>) -> i32 {
    run(args, std::env::vars().collect(), Streams::stdio())
}

/// Runs the client with explicit streams and environment; returns the exit status.
pub fn run(args: Vec<OsString>, env: Env, io: Streams) -> i32 {
    // `berth help [COMMAND...]` is `berth [COMMAND...] --help`, as in docker.
    let args = match args.get(1) {
        Some(a) if a == "help" => {
            let mut v: Vec<OsString> = args[..1].to_vec();
            v.extend_from_slice(&args[2..]);
            v.push("--help".into());
            v
        }
        _ => args,
    };
    let (cli, root) = match app::parse(&args) {
        Ok(x) => x,
        Err((out, err, code)) => {
            io.print(&out);
            if !err.is_empty() {
                let _ = std::io::Write::write_all(&mut io.err.clone(), err.as_bytes());
            }
            return code;
        }
    };
    if cli.version {
        io.println(&format!("berth version {}", env!("CARGO_PKG_VERSION")));
        return 0;
    }
    let Some(cmd) = cli.cmd else {
        io.print(&root.clone().render_help().to_string());
        return 0;
    };
    let (path, _) = app::command_path(&root, &args);
    let setup = || -> Result<ctx::Ctx, Error> {
        if cli.host.len() > 1 {
            return Err(Error::Usage("Specify only one -H".into()));
        }
        if !cli.host.is_empty() && cli.context.is_some() {
            return Err(Error::msg("conflicting options: either specify --host or --context, not both"));
        }
        let dir = config::config_dir(cli.config.as_deref(), &env);
        let cfg = config::ConfigFile::load(&dir)?;
        // docker's order: -H, --context, DOCKER_HOST, DOCKER_CONTEXT, currentContext.
        let env_host = env.get("BERTH_HOST").filter(|h| !h.is_empty()).or_else(|| env.get("DOCKER_HOST").filter(|h| !h.is_empty())).cloned();
        let store = contexts::Store::new(&dir);
        let from_context = |name: &str| -> Result<(String, Option<TlsOptions>), Error> {
            let c = cmd::context::lookup(&store, &env, name)?;
            let tls_dir = store.tls_dir(&c.name).join("docker");
            let file = |f: &str| c.tls_files.iter().any(|x| x == f).then(|| tls_dir.join(f));
            let tls = (c.host.starts_with("tcp://") && (!c.tls_files.is_empty() || c.skip_tls_verify))
                .then(|| TlsOptions { verify: !c.skip_tls_verify, ca: file("ca.pem"), cert: file("cert.pem"), key: file("key.pem") });
            Ok((c.host, tls))
        };
        let (host, context_tls) = match (cli.host.first(), &cli.context, env_host) {
            (Some(h), _, _) => (h.clone(), None),
            (None, Some(c), _) => from_context(c)?,
            (None, None, Some(h)) => (h, None),
            (None, None, None) => from_context(&cmd::context::current_name(None, &env, &cfg))?,
        };
        let host = if host.is_empty() { client::host::default_host(env.get("XDG_RUNTIME_DIR").map(String::as_str)) } else { host };
        let verify = cli.tlsverify || env.get("DOCKER_TLS_VERIFY").is_some_and(|v| !v.is_empty());
        let tls = if cli.tls || verify {
            let cert_dir = env.get("DOCKER_CERT_PATH").filter(|p| !p.is_empty()).map(std::path::PathBuf::from).unwrap_or(dir.clone());
            // Explicit paths must exist; default ones are used only when present.
            let pick = |flag: &Option<String>, file: &str| -> Option<std::path::PathBuf> {
                match flag {
                    Some(f) => Some(f.into()),
                    None => Some(cert_dir.join(file)).filter(|p| p.exists()),
                }
            };
            Some(TlsOptions {
                verify,
                ca: pick(&cli.tlscacert, "ca.pem"),
                cert: pick(&cli.tlscert, "cert.pem"),
                key: pick(&cli.tlskey, "key.pem"),
            })
        } else {
            context_tls
        };
        let mut c = ctx::Ctx::new(io.clone(), env.clone(), cfg, host, tls);
        c.context_flag = cli.context.clone();
        Ok(c)
    };
    let ctx = match setup() {
        Ok(c) => c,
        Err(e) => return report(&io, &path, &e),
    };
    let rt = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            io.eprintln(&format!("failed to start the async runtime: {e}"));
            return 1;
        }
    };
    let result = rt.block_on(app::dispatch(&ctx, cmd));
    // Background readers (stdin) may still be blocked; don't wait for them.
    rt.shutdown_background();
    match result {
        Ok(()) => 0,
        Err(e) => report(&io, &path, &e),
    }
}

fn report(io: &Streams, path: &str, e: &Error) -> i32 {
    match e {
        Error::Status(_) => {}
        e if e.is_broken_pipe() => {}
        Error::Usage(m) => {
            io.eprintln(&format!("{m}\n\nRun '{path} --help' for more information"));
        }
        other => io.eprintln(&other.to_string()),
    }
    e.exit_code()
}
