//! `context create|ls|use|inspect|rm|show|update`, over the docker CLI's context store
//! (see [`crate::contexts`]): the same files, so either CLI sees the other's contexts.

use std::path::PathBuf;

use clap::{ArgAction, Args, Subcommand};

use crate::config::ConfigFile;
use crate::contexts::{self, Context, DEFAULT, Store};
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::format::{self, Map, Value, template::context};

#[derive(Debug, Clone, Subcommand)]
pub enum ContextCmd {
    /// Create a context
    Create(CreateArgs),
    /// Display detailed information on one or more contexts
    Inspect(InspectArgs),
    /// List contexts
    #[command(visible_alias = "list")]
    Ls(LsArgs),
    /// Remove one or more contexts
    #[command(visible_alias = "remove")]
    Rm(RmArgs),
    /// Print the name of the current context
    Show,
    /// Update a context
    Update(UpdateArgs),
    /// Set the current berth context
    Use(UseArgs),
}

#[derive(Debug, Clone, Args)]
#[command(about = "Create a context")]
pub struct CreateArgs {
    #[arg(long, value_name = "string", help = "Description of the context")]
    pub description: Option<String>,
    #[arg(long, value_name = "stringToString", help = "set the docker endpoint (host=..., ca=..., cert=..., key=..., skip-tls-verify=...)")]
    pub docker: Option<String>,
    #[arg(long, value_name = "string", help = "create context from a named context")]
    pub from: Option<String>,
    #[arg(value_name = "CONTEXT")]
    pub name: String,
}

#[derive(Debug, Clone, Args)]
#[command(about = "Update a context")]
pub struct UpdateArgs {
    #[arg(long, value_name = "string", help = "Description of the context")]
    pub description: Option<String>,
    #[arg(long, value_name = "stringToString", help = "set the docker endpoint")]
    pub docker: Option<String>,
    #[arg(value_name = "CONTEXT")]
    pub name: String,
}

#[derive(Debug, Clone, Args)]
#[command(about = "List contexts")]
pub struct LsArgs {
    #[arg(long, value_name = "string", help = "Format output using a custom template")]
    pub format: Option<String>,
    #[arg(short, long, action = ArgAction::SetTrue, help = "Only show context names")]
    pub quiet: bool,
}

#[derive(Debug, Clone, Args)]
#[command(about = "Display detailed information on one or more contexts")]
pub struct InspectArgs {
    #[arg(short, long, value_name = "string", help = "Format output using a custom template")]
    pub format: Option<String>,
    #[arg(value_name = "CONTEXT")]
    pub names: Vec<String>,
}

#[derive(Debug, Clone, Args)]
#[command(about = "Remove one or more contexts")]
pub struct RmArgs {
    #[arg(short, long, action = ArgAction::SetTrue, help = "Force the removal of a context in use")]
    pub force: bool,
    #[arg(required = true, value_name = "CONTEXT")]
    pub names: Vec<String>,
}

#[derive(Debug, Clone, Args)]
#[command(about = "Set the current berth context")]
pub struct UseArgs {
    #[arg(value_name = "CONTEXT")]
    pub name: String,
}

fn store(ctx: &Ctx) -> Store {
    Store::new(config_dir(ctx))
}

fn config_dir(ctx: &Ctx) -> &std::path::Path {
    ctx.config.path.parent().unwrap_or(std::path::Path::new("."))
}

/// The context in use: `--context`, `DOCKER_CONTEXT`, then `currentContext`.
pub fn current_name(cli_context: Option<&str>, env: &crate::opts::parse::Env, cfg: &ConfigFile) -> String {
    cli_context
        .map(str::to_string)
        .or_else(|| env.get("DOCKER_CONTEXT").filter(|c| !c.is_empty()).cloned())
        .or_else(|| cfg.string("currentContext").map(str::to_string))
        .unwrap_or_else(|| DEFAULT.to_string())
}

/// The `default` context: `DOCKER_HOST` (or `BERTH_HOST`), else the default socket.
pub fn default_context(env: &crate::opts::parse::Env) -> Context {
    let host = env
        .get("BERTH_HOST")
        .filter(|h| !h.is_empty())
        .or_else(|| env.get("DOCKER_HOST").filter(|h| !h.is_empty()))
        .cloned()
        .unwrap_or_else(|| crate::client::host::default_host(env.get("XDG_RUNTIME_DIR").map(String::as_str)));
    Context { name: DEFAULT.into(), description: "Current DOCKER_HOST based configuration".into(), host, skip_tls_verify: false, tls_files: vec![], stored: false }
}

/// A context by name (`default` included).
pub fn lookup(store: &Store, env: &crate::opts::parse::Env, name: &str) -> Result<Context> {
    if name == DEFAULT {
        return Ok(default_context(env));
    }
    store.get(name)?.ok_or_else(|| Error::msg(format!("context \"{name}\" does not exist")))
}

/// `--docker host=...,ca=...,cert=...,key=...,skip-tls-verify=...`.
fn parse_docker(spec: &str) -> Result<(Option<String>, bool, Vec<(&'static str, PathBuf)>)> {
    let mut host = None;
    let mut skip = false;
    let mut tls = Vec::new();
    for kv in spec.split(',').filter(|s| !s.is_empty()) {
        let (k, v) = kv.split_once('=').ok_or_else(|| Error::Usage(format!("invalid docker endpoint option {kv:?}: expected key=value")))?;
        match k {
            "host" => {
                crate::client::host::parse_host(v, false)?;
                host = Some(v.to_string());
            }
            "ca" => tls.push(("ca.pem", PathBuf::from(v))),
            "cert" => tls.push(("cert.pem", PathBuf::from(v))),
            "key" => tls.push(("key.pem", PathBuf::from(v))),
            "skip-tls-verify" => skip = berth_types::parse_bool(v).ok_or_else(|| Error::Usage(format!("invalid skip-tls-verify {v:?}")))?,
            "from" | "description" => {}
            other => return Err(Error::Usage(format!("unrecognized config key: {other}"))),
        }
    }
    Ok((host, skip, tls))
}

pub async fn create(ctx: &Ctx, a: CreateArgs) -> Result<()> {
    contexts::valid_name(&a.name)?;
    let s = store(ctx);
    if s.get(&a.name)?.is_some() {
        return Err(Error::msg(format!("context \"{}\" already exists", a.name)));
    }
    let base = match &a.from {
        Some(f) => Some(lookup(&s, &ctx.env, f)?),
        None if a.docker.is_none() => Some(lookup(&s, &ctx.env, &current_name(None, &ctx.env, &ctx.config))?),
        None => None,
    };
    let (host, skip, tls) = parse_docker(a.docker.as_deref().unwrap_or(""))?;
    let host = host.or_else(|| base.as_ref().map(|b| b.host.clone())).unwrap_or_else(|| crate::client::host::DEFAULT_HOST.to_string());
    let mut tls_from: Vec<(&str, PathBuf)> = tls;
    if let Some(b) = base.as_ref().filter(|b| b.stored && tls_from.is_empty()) {
        let dir = s.tls_dir(&b.name).join("docker");
        for f in &b.tls_files {
            let name: &'static str = match f.as_str() {
                "ca.pem" => "ca.pem",
                "cert.pem" => "cert.pem",
                _ => "key.pem",
            };
            tls_from.push((name, dir.join(f)));
        }
    }
    let c = Context { name: a.name.clone(), description: a.description.clone().unwrap_or_default(), host, skip_tls_verify: skip, tls_files: vec![], stored: true };
    s.save(&c, &tls_from)?;
    ctx.io.println(&a.name);
    ctx.io.eprintln(&format!("Successfully created context \"{}\"", a.name));
    Ok(())
}

pub async fn update(ctx: &Ctx, a: UpdateArgs) -> Result<()> {
    let s = store(ctx);
    if a.name == DEFAULT {
        return Err(Error::msg("context \"default\" cannot be updated"));
    }
    let mut c = s.get(&a.name)?.ok_or_else(|| Error::msg(format!("context \"{}\" does not exist", a.name)))?;
    if let Some(d) = a.description {
        c.description = d;
    }
    let mut tls = Vec::new();
    if let Some(spec) = &a.docker {
        let (host, skip, t) = parse_docker(spec)?;
        if let Some(h) = host {
            c.host = h;
        }
        c.skip_tls_verify = skip;
        tls = t;
    }
    s.save(&c, &tls)?;
    ctx.io.println(&a.name);
    ctx.io.eprintln(&format!("Successfully updated context \"{}\"", a.name));
    Ok(())
}

fn ls_context(c: &Context, current: bool) -> Value {
    context(vec![
        ("Current", Value::Bool(current)),
        ("Description", Value::from(c.description.clone())),
        ("DockerEndpoint", Value::from(c.host.clone())),
        ("Error", Value::from("")),
        ("Name", Value::from(c.name.clone())),
    ])
}

pub async fn ls(ctx: &Ctx, a: LsArgs) -> Result<()> {
    let s = store(ctx);
    let current = current_name(None, &ctx.env, &ctx.config);
    let mut all = vec![default_context(&ctx.env)];
    all.extend(s.list()?);
    if a.quiet {
        for c in &all {
            ctx.io.println(&c.name);
        }
        return Ok(());
    }
    let format = a.format.clone().unwrap_or_else(|| "table".into());
    let rows: Vec<Value> = all.iter().map(|c| ls_context(c, c.name == current)).collect();
    if format == "table" {
        // The current context is marked with a star after its name, as docker does.
        let rows: Vec<Value> = all
            .iter()
            .map(|c| {
                let mut v = ls_context(c, c.name == current);
                if c.name == current
                    && let Value::Map(m) = &mut v
                {
                    m.insert("Name", Value::from(format!("{} *", c.name)));
                }
                v
            })
            .collect();
        let headers = Value::Map(Map::new().with("Name", "NAME").with("Description", "DESCRIPTION").with("DockerEndpoint", "DOCKER ENDPOINT").with("Error", "ERROR"));
        ctx.io.print(&format::render_list("table {{.Name}}\t{{.Description}}\t{{.DockerEndpoint}}\t{{.Error}}", &headers, &rows)?);
        return Ok(());
    }
    ctx.io.print(&format::render_list(&format, &Value::Map(Map::new()), &rows)?);
    Ok(())
}

/// `context inspect`'s object, in docker's field order.
#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct Inspected {
    name: String,
    metadata: serde_json::Map<String, serde_json::Value>,
    endpoints: std::collections::BTreeMap<String, contexts::Endpoint>,
    #[serde(rename = "TLSMaterial")]
    tls_material: std::collections::BTreeMap<String, Vec<String>>,
    storage: Storage,
}

#[derive(serde::Serialize)]
#[serde(rename_all = "PascalCase")]
struct Storage {
    metadata_path: String,
    #[serde(rename = "TLSPath")]
    tls_path: String,
}

fn inspect_json(s: &Store, c: &Context) -> Vec<u8> {
    let mut metadata = serde_json::Map::new();
    if !c.description.is_empty() && c.stored {
        metadata.insert("Description".into(), c.description.clone().into());
    }
    let (metadata_path, tls_path) = if c.stored {
        (s.meta_dir(&c.name).display().to_string(), s.tls_dir(&c.name).display().to_string())
    } else {
        ("<IN MEMORY>".to_string(), "<IN MEMORY>".to_string())
    };
    let v = Inspected {
        name: c.name.clone(),
        metadata,
        endpoints: [("docker".to_string(), contexts::Endpoint { host: c.host.clone(), skip_tls_verify: c.skip_tls_verify })].into_iter().collect(),
        tls_material: if c.tls_files.is_empty() { Default::default() } else { [("docker".to_string(), c.tls_files.clone())].into_iter().collect() },
        storage: Storage { metadata_path, tls_path },
    };
    // Go's encoder escapes these (they can only be inside strings here).
    let text = serde_json::to_string(&v).unwrap_or_default().replace('<', "\\u003c").replace('>', "\\u003e").replace('&', "\\u0026");
    text.into_bytes()
}

pub async fn inspect(ctx: &Ctx, a: InspectArgs) -> Result<()> {
    let s = store(ctx);
    let names = if a.names.is_empty() { vec![current_name(None, &ctx.env, &ctx.config)] } else { a.names.clone() };
    let mut raw = Vec::new();
    for n in &names {
        raw.push(inspect_json(&s, &lookup(&s, &ctx.env, n)?));
    }
    ctx.io.print(&format::render_inspect(a.format.as_deref(), &raw)?);
    Ok(())
}

pub async fn rm(ctx: &Ctx, a: RmArgs) -> Result<()> {
    let s = store(ctx);
    let current = current_name(None, &ctx.env, &ctx.config);
    let mut errors = Vec::new();
    for n in &a.names {
        if n == DEFAULT {
            errors.push("default: context \"default\" cannot be removed".to_string());
            continue;
        }
        if *n == current && !a.force {
            errors.push(format!("context \"{n}\" is in use, set -f flag to force remove"));
            continue;
        }
        if !s.remove(n)? {
            errors.push(format!("context \"{n}\" does not exist"));
            continue;
        }
        if *n == current {
            set_current(ctx, None)?;
        }
        ctx.io.println(n);
    }
    if errors.is_empty() { Ok(()) } else { Err(Error::Msg(errors.join("\n"))) }
}

fn set_current(ctx: &Ctx, name: Option<&str>) -> Result<()> {
    let mut cfg = ConfigFile::load(config_dir(ctx))?;
    match name {
        Some(n) => {
            cfg.json.insert("currentContext".into(), n.into());
        }
        None => {
            cfg.json.remove("currentContext");
        }
    }
    cfg.save()
}

pub async fn use_context(ctx: &Ctx, a: UseArgs) -> Result<()> {
    let s = store(ctx);
    lookup(&s, &ctx.env, &a.name)?;
    set_current(ctx, if a.name == DEFAULT { None } else { Some(&a.name) })?;
    ctx.io.println(&a.name);
    if ctx.env.get("DOCKER_HOST").is_some_and(|h| !h.is_empty()) {
        ctx.io.eprintln(&format!(
            "Warning: DOCKER_HOST environment variable overrides the active context. To use \"{}\", either set the global --context flag, or unset DOCKER_HOST environment variable.",
            a.name
        ));
    }
    ctx.io.eprintln(&format!("Current context is now \"{}\"", a.name));
    Ok(())
}

pub async fn dispatch(ctx: &Ctx, cmd: ContextCmd) -> Result<()> {
    match cmd {
        ContextCmd::Create(a) => create(ctx, a).await,
        ContextCmd::Inspect(a) => inspect(ctx, a).await,
        ContextCmd::Ls(a) => ls(ctx, a).await,
        ContextCmd::Rm(a) => rm(ctx, a).await,
        ContextCmd::Show => {
            ctx.io.println(&current_name(ctx.context_flag.as_deref(), &ctx.env, &ctx.config));
            Ok(())
        }
        ContextCmd::Update(a) => update(ctx, a).await,
        ContextCmd::Use(a) => use_context(ctx, a).await,
    }
}
