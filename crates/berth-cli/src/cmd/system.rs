//! System commands: version, info, events, df, prune, login, logout, and the generic
//! `inspect`.

use std::io::Write;

use clap::{ArgAction, Args, Subcommand};

use super::{filters_json, value};
use crate::client::{API_VERSION, Call, JsonLines};
use crate::config::{self, ConfigFile};
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::format::{self, Map, Value, units};

#[derive(Debug, Clone, Subcommand)]
pub enum SystemCmd {
    /// Show docker disk usage
    Df(DfArgs),
    /// Get real time events from the server
    Events(EventsArgs),
    /// Display system-wide information
    Info(InfoArgs),
    /// Remove unused data
    Prune(PruneArgs),
    /// Proxy the stdio stream to the daemon connection (what `ssh` runs remotely)
    #[command(name = "dial-stdio", hide = true)]
    DialStdio,
}

#[derive(Debug, Clone, Args)]
#[command(about = "Show the berth version information")]
pub struct VersionArgs {
    #[arg(short, long, value_name = "string", help = "Format output using a custom template")]
    pub format: Option<String>,
}

fn client_version(ctx: &Ctx, negotiated: Option<&str>) -> Value {
    Value::Map(
        Map::new()
            .with("Platform", Value::Map(Map::new().with("Name", "")))
            .with("Version", env!("CARGO_PKG_VERSION"))
            .with("ApiVersion", negotiated.unwrap_or(API_VERSION))
            .with("DefaultAPIVersion", API_VERSION)
            .with("GitCommit", option_env!("BERTH_GIT_COMMIT").unwrap_or(""))
            .with("GoVersion", "")
            .with("Os", std::env::consts::OS)
            .with("Arch", go_arch())
            .with("BuildTime", "")
            .with("Context", ctx.env.get("DOCKER_CONTEXT").cloned().unwrap_or_else(|| "default".into())),
    )
}

fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    }
}

pub async fn version(ctx: &Ctx, a: VersionArgs) -> Result<()> {
    let tmpl = match &a.format {
        Some(f) => Some(format::Template::parse(&format::prepare_format(f).0).map_err(|e| Error::Usage(format!("template parsing error: {e}")))?),
        None => None,
    };
    let server = match ctx.client().await {
        Ok(c) => Ok((c.version().to_string(), value(&c.bytes(Call::get("/version")).await?)?)),
        Err(e) => Err(e),
    };
    let negotiated = server.as_ref().ok().map(|(v, _)| v.clone());
    let client = client_version(ctx, negotiated.as_deref());
    if let Some(t) = tmpl {
        let data = Value::Map(
            Map::new()
                .with("Client", client)
                .with("Server", server.as_ref().map(|(_, s)| s.clone()).unwrap_or(Value::Null)),
        );
        ctx.io.println(&t.execute(&data)?);
        return server.map(|_| ());
    }
    let mut out = String::new();
    let api = match &negotiated {
        Some(v) if v != API_VERSION => format!("{v} (downgraded from {API_VERSION})"),
        _ => API_VERSION.to_string(),
    };
    out.push_str("Client:\n");
    out.push_str(&format!(" Version:           {}\n", env!("CARGO_PKG_VERSION")));
    out.push_str(&format!(" API version:       {api}\n"));
    out.push_str(&format!(" OS/Arch:           {}/{}\n", std::env::consts::OS, go_arch()));
    out.push_str(&format!(" Context:           {}\n", client.str_at(&["Context"])));
    ctx.io.print(&out);
    let (_, s) = server?;
    let mut out = String::new();
    let platform = s.str_at(&["Platform", "Name"]);
    out.push_str(&format!("\nServer:{}\n", if platform.is_empty() { String::new() } else { format!(" {platform}") }));
    out.push_str(" Engine:\n");
    out.push_str(&format!("  Version:          {}\n", s.str_at(&["Version"])));
    out.push_str(&format!("  API version:      {} (minimum version {})\n", s.str_at(&["ApiVersion"]), s.str_at(&["MinAPIVersion"])));
    for (k, label) in [("GoVersion", "Go version"), ("GitCommit", "Git commit"), ("BuildTime", "Built")] {
        let v = s.str_at(&[k]);
        if !v.is_empty() {
            out.push_str(&format!("  {:<18}{v}\n", format!("{label}:")));
        }
    }
    out.push_str(&format!("  OS/Arch:          {}/{}\n", s.str_at(&["Os"]), s.str_at(&["Arch"])));
    out.push_str(&format!("  Experimental:     {}\n", s.bool_at(&["Experimental"])));
    for comp in s.list_at(&["Components"]) {
        let name = comp.str_at(&["Name"]);
        if name == "Engine" {
            continue;
        }
        out.push_str(&format!(" {name}:\n"));
        out.push_str(&format!("  Version:          {}\n", comp.str_at(&["Version"])));
        for (k, v) in comp.entries_at(&["Details"]) {
            out.push_str(&format!("  {:<18}{}\n", format!("{k}:"), v.display()));
        }
    }
    ctx.io.print(&out);
    Ok(())
}

#[derive(Debug, Clone, Args)]
#[command(about = "Display system-wide information")]
pub struct InfoArgs {
    #[arg(short, long, value_name = "string", help = "Format output using a custom template")]
    pub format: Option<String>,
}

pub async fn info(ctx: &Ctx, a: InfoArgs) -> Result<()> {
    let c = ctx.client().await?;
    let s = value(&c.bytes(Call::get("/info")).await?)?;
    if let Some(f) = &a.format {
        let t = format::Template::parse(&format::prepare_format(f).0).map_err(|e| Error::Usage(format!("template parsing error: {e}")))?;
        ctx.io.println(&t.execute(&s)?);
        return Ok(());
    }
    let mut o = String::new();
    o.push_str("Client:\n");
    o.push_str(&format!(" Version:    {}\n", env!("CARGO_PKG_VERSION")));
    o.push_str(&format!(" Context:    {}\n", ctx.env.get("DOCKER_CONTEXT").cloned().unwrap_or_else(|| "default".into())));
    o.push_str(" Debug Mode: false\n\nServer:\n");
    o.push_str(&format!(" Containers: {}\n", s.i64_at(&["Containers"])));
    o.push_str(&format!("  Running: {}\n", s.i64_at(&["ContainersRunning"])));
    o.push_str(&format!("  Paused: {}\n", s.i64_at(&["ContainersPaused"])));
    o.push_str(&format!("  Stopped: {}\n", s.i64_at(&["ContainersStopped"])));
    o.push_str(&format!(" Images: {}\n", s.i64_at(&["Images"])));
    o.push_str(&format!(" Server Version: {}\n", s.str_at(&["ServerVersion"])));
    o.push_str(&format!(" Storage Driver: {}\n", s.str_at(&["Driver"])));
    for pair in s.list_at(&["DriverStatus"]) {
        if let Value::List(kv) = pair
            && kv.len() == 2 {
                o.push_str(&format!("  {}: {}\n", kv[0].display(), kv[1].display()));
            }
    }
    o.push_str(&format!(" Logging Driver: {}\n", s.str_at(&["LoggingDriver"])));
    o.push_str(&format!(" Cgroup Driver: {}\n", s.str_at(&["CgroupDriver"])));
    o.push_str(&format!(" Cgroup Version: {}\n", s.str_at(&["CgroupVersion"])));
    let runtimes: Vec<String> = s.entries_at(&["Runtimes"]).iter().map(|(k, _)| k.clone()).collect();
    o.push_str(&format!(" Runtimes: {}\n", runtimes.join(" ")));
    o.push_str(&format!(" Default Runtime: {}\n", s.str_at(&["DefaultRuntime"])));
    let sec = s.list_at(&["SecurityOptions"]);
    if !sec.is_empty() {
        o.push_str(" Security Options:\n");
        for opt in sec {
            // "name=seccomp,profile=builtin" → "  seccomp\n   Profile: builtin"
            let text = opt.display();
            let mut parts = text.split(',');
            let name = parts.next().unwrap_or("").trim_start_matches("name=");
            o.push_str(&format!("  {name}\n"));
            for p in parts {
                if let Some((k, v)) = p.split_once('=') {
                    let mut k = k.to_string();
                    if let Some(first) = k.get_mut(0..1) {
                        first.make_ascii_uppercase();
                    }
                    o.push_str(&format!("   {k}: {v}\n"));
                }
            }
        }
    }
    o.push_str(&format!(" Kernel Version: {}\n", s.str_at(&["KernelVersion"])));
    o.push_str(&format!(" Operating System: {}\n", s.str_at(&["OperatingSystem"])));
    o.push_str(&format!(" OSType: {}\n", s.str_at(&["OSType"])));
    o.push_str(&format!(" Architecture: {}\n", s.str_at(&["Architecture"])));
    o.push_str(&format!(" CPUs: {}\n", s.i64_at(&["NCPU"])));
    o.push_str(&format!(" Total Memory: {}\n", units::bytes_size(s.f64_at(&["MemTotal"]))));
    o.push_str(&format!(" Name: {}\n", s.str_at(&["Name"])));
    o.push_str(&format!(" ID: {}\n", s.str_at(&["ID"])));
    o.push_str(&format!(" Docker Root Dir: {}\n", s.str_at(&["DockerRootDir"])));
    o.push_str(&format!(" Debug Mode: {}\n", s.bool_at(&["Debug"])));
    o.push_str(&format!(" Experimental: {}\n", s.bool_at(&["ExperimentalBuild"])));
    let insecure = s.list_at(&["RegistryConfig", "InsecureRegistryCIDRs"]);
    if !insecure.is_empty() {
        o.push_str(" Insecure Registries:\n");
        for r in insecure {
            o.push_str(&format!("  {}\n", r.display()));
        }
    }
    o.push_str(&format!(" Live Restore Enabled: {}\n", s.bool_at(&["LiveRestoreEnabled"])));
    // berth's daemon reports its bounds (docs/security.md); dockerd has none to report.
    let limit = |k: &str| s.i64_at(&["Limits", k]);
    if limit("MaxJsonBody") > 0 {
        let size = |k: &str| match limit(k) {
            0 => "none".to_string(),
            n => units::bytes_size(n as f64),
        };
        let count = |k: &str| match limit(k) {
            0 => "none".to_string(),
            n => n.to_string(),
        };
        o.push_str(" Limits:\n");
        o.push_str(&format!("  JSON Body: {} (container create/update: {})\n", size("MaxJsonBody"), size("MaxContainerBody")));
        o.push_str(&format!("  Request Headers: {} (HTTP/2: {})\n", size("MaxHttp1HeaderBytes"), size("MaxHttp2HeaderBytes")));
        o.push_str(&format!("  Streams Per HTTP/2 Connection: {}\n", count("MaxHttp2StreamsPerConnection")));
        o.push_str(&format!("  Connections Per Client: {}\n", count("MaxConnectionsPerClient")));
        o.push_str(&format!("  Layer Size: {}\n", size("MaxLayerSize")));
        o.push_str(&format!("  Min Free Space: {}\n", size("MinFreeSpace")));
        o.push_str(&format!("  Log Line: {}\n", size("MaxLogLine")));
    }
    ctx.io.print(&o);
    for w in s.list_at(&["Warnings"]) {
        ctx.io.eprintln(&w.display());
    }
    Ok(())
}

#[derive(Debug, Clone, Args)]
#[command(about = "Get real time events from the server")]
pub struct EventsArgs {
    #[arg(short, long, value_name = "filter", help = "Filter output based on conditions provided")]
    pub filter: Vec<String>,
    #[arg(long, value_name = "string", help = "Format output using a custom template")]
    pub format: Option<String>,
    #[arg(long, value_name = "string", help = "Show all events created since timestamp")]
    pub since: Option<String>,
    #[arg(long, value_name = "string", help = "Stream events until this timestamp")]
    pub until: Option<String>,
}

/// docker's default event line: time, type, action, actor, sorted attributes.
pub fn event_line(e: &Value) -> String {
    use chrono::TimeZone;
    let nanos = e.i64_at(&["timeNano"]);
    let secs = e.i64_at(&["time"]);
    let mut s = String::new();
    let t = if nanos != 0 {
        chrono::Local.timestamp_nanos(nanos)
    } else {
        chrono::Local.timestamp_opt(secs, 0).single().unwrap_or_default()
    };
    if nanos != 0 || secs != 0 {
        s.push_str(&t.format("%Y-%m-%dT%H:%M:%S%.9f%:z ").to_string().replace("+00:00 ", "Z "));
    }
    let mut kind = e.str_at(&["Type"]);
    let mut action = e.str_at(&["Action"]);
    let mut id = e.str_at(&["Actor", "ID"]);
    // Old daemons only fill the deprecated fields.
    if kind.is_empty() {
        kind = "container".into();
    }
    if action.is_empty() {
        action = e.str_at(&["status"]);
    }
    if id.is_empty() {
        id = e.str_at(&["id"]);
    }
    s.push_str(&format!("{kind} {action} {id}"));
    let mut attrs: Vec<String> = e.entries_at(&["Actor", "Attributes"]).iter().map(|(k, v)| format!("{k}={}", v.display())).collect();
    attrs.sort();
    if !attrs.is_empty() {
        s.push_str(&format!(" ({})", attrs.join(", ")));
    }
    s
}

pub async fn events(ctx: &Ctx, a: EventsArgs) -> Result<()> {
    let tmpl = match &a.format {
        Some(f) => Some(format::Template::parse(&format::prepare_format(f).0).map_err(|e| Error::Usage(format!("template parsing error: {e}")))?),
        None => None,
    };
    let now = std::time::SystemTime::now();
    let since = match &a.since {
        Some(s) => units::api_timestamp(s, now).map_err(Error::Msg)?,
        None => String::new(),
    };
    let until = match &a.until {
        Some(s) => units::api_timestamp(s, now).map_err(Error::Msg)?,
        None => String::new(),
    };
    let c = ctx.client().await?;
    let mut call = Call::get("/events").query_opt("since", &since).query_opt("until", &until);
    if let Some(f) = filters_json(&a.filter)? {
        call = call.query("filters", f);
    }
    let res = c.send(call).await?;
    let mut lines = JsonLines::new(res);
    let mut out = ctx.io.out.clone();
    while let Some(line) = lines.next_line().await? {
        let e = value(&line)?;
        let text = match &tmpl {
            Some(t) => t.execute(&e)?,
            None => event_line(&e),
        };
        out.write_all(format!("{text}\n").as_bytes())?;
        out.flush()?;
    }
    Ok(())
}

#[derive(Debug, Clone, Args)]
#[command(about = "Show docker disk usage")]
pub struct DfArgs {
    #[arg(long, value_name = "string", help = "Format output using a custom template")]
    pub format: Option<String>,
    #[arg(short, long, action = ArgAction::SetTrue, help = "Show detailed information on space usage")]
    pub verbose: bool,
}

fn reclaimable(reclaim: i64, total: i64) -> String {
    if total > 0 {
        format!("{} ({}%)", units::human_size(reclaim as f64), reclaim * 100 / total)
    } else {
        units::human_size(reclaim as f64)
    }
}

pub fn df_rows(d: &Value) -> Vec<Value> {
    let images = d.list_at(&["Images"]);
    let layers = d.i64_at(&["LayersSize"]);
    let mut used = 0;
    for i in images {
        if i.i64_at(&["Containers"]) > 0 {
            let size = i.i64_at(&["Size"]);
            let shared = i.i64_at(&["SharedSize"]);
            if size != -1 && shared != -1 {
                used += size - shared;
            }
        }
    }
    let containers = d.list_at(&["Containers"]);
    let active = |c: &Value| matches!(c.str_at(&["State"]).as_str(), "running" | "paused" | "restarting");
    let c_size: i64 = containers.iter().map(|c| c.i64_at(&["SizeRw"])).sum();
    let c_reclaim: i64 = containers.iter().filter(|c| !active(c)).map(|c| c.i64_at(&["SizeRw"])).sum();
    let volumes = d.list_at(&["Volumes"]);
    let v_size: i64 = volumes.iter().map(|v| v.i64_at(&["UsageData", "Size"]).max(0)).sum();
    let v_reclaim: i64 = volumes.iter().filter(|v| v.i64_at(&["UsageData", "RefCount"]) == 0).map(|v| v.i64_at(&["UsageData", "Size"]).max(0)).sum();
    let cache = d.list_at(&["BuildCache"]);
    let cache_size: i64 = cache.iter().map(|b| b.i64_at(&["Size"])).sum();
    let row = |t: &str, total: usize, active: usize, size: String, rec: String| {
        format::template::context(vec![
            ("Active", Value::from(active.to_string())),
            ("Reclaimable", Value::from(rec)),
            ("Size", Value::from(size)),
            ("TotalCount", Value::from(total.to_string())),
            ("Type", Value::from(t)),
        ])
    };
    vec![
        row(
            "Images",
            images.len(),
            images.iter().filter(|i| i.i64_at(&["Containers"]) > 0).count(),
            units::human_size(layers as f64),
            reclaimable(layers - used, layers),
        ),
        row("Containers", containers.len(), containers.iter().filter(|c| active(c)).count(), units::human_size(c_size as f64), reclaimable(c_reclaim, c_size)),
        row(
            "Local Volumes",
            volumes.len(),
            volumes.iter().filter(|v| v.i64_at(&["UsageData", "RefCount"]) > 0).count(),
            units::human_size(v_size as f64),
            reclaimable(v_reclaim, v_size),
        ),
        row("Build Cache", cache.len(), 0, units::human_size(cache_size as f64), units::human_size(cache_size as f64)),
    ]
}

pub async fn df(ctx: &Ctx, a: DfArgs) -> Result<()> {
    let c = ctx.client().await?;
    let d = value(&c.bytes(Call::get("/system/df")).await?)?;
    let headers = Value::Map(
        Map::new()
            .with("Type", "TYPE")
            .with("TotalCount", "TOTAL")
            .with("Active", "ACTIVE")
            .with("Size", "SIZE")
            .with("Reclaimable", "RECLAIMABLE"),
    );
    if a.verbose {
        let mut o = String::from("Images space usage:\n\n");
        let rows: Vec<Value> = d.list_at(&["Images"]).iter().flat_map(|i| super::image::image_rows(i, true, false)).collect();
        o.push_str(&format::render_list(
            "table {{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}\t{{.SharedSize}}\t{{.UniqueSize}}\t{{.Containers}}",
            &Value::Map(
                Map::new()
                    .with("Repository", "REPOSITORY")
                    .with("Tag", "TAG")
                    .with("ID", "IMAGE ID")
                    .with("CreatedSince", "CREATED")
                    .with("Size", "SIZE")
                    .with("SharedSize", "SHARED SIZE")
                    .with("UniqueSize", "UNIQUE SIZE")
                    .with("Containers", "CONTAINERS"),
            ),
            &rows,
        )?);
        o.push_str("\nContainers space usage:\n\n");
        let rows: Vec<Value> = d.list_at(&["Containers"]).iter().map(|c| super::container::container_context(c, true)).collect();
        o.push_str(&format::render_list(
            "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.LocalVolumes}}\t{{.Size}}\t{{.RunningFor}}\t{{.Status}}\t{{.Names}}",
            &Value::Map(
                Map::new()
                    .with("ID", "CONTAINER ID")
                    .with("Image", "IMAGE")
                    .with("Command", "COMMAND")
                    .with("LocalVolumes", "LOCAL VOLUMES")
                    .with("Size", "SIZE")
                    .with("RunningFor", "CREATED")
                    .with("Status", "STATUS")
                    .with("Names", "NAMES"),
            ),
            &rows,
        )?);
        o.push_str("\nLocal Volumes space usage:\n\n");
        let rows: Vec<Value> = d.list_at(&["Volumes"]).iter().map(super::volume::volume_context).collect();
        o.push_str(&format::render_list("table {{.Name}}\t{{.Links}}\t{{.Size}}", &super::volume::volume_headers(), &rows)?);
        o.push_str("\nBuild cache usage: 0B\n");
        ctx.io.print(&o);
        return Ok(());
    }
    let format = a.format.clone().unwrap_or_else(|| "table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}".into());
    ctx.io.print(&format::render_list(&format, &headers, &df_rows(&d))?);
    Ok(())
}

#[derive(Debug, Clone, Args)]
#[command(about = "Remove unused data")]
pub struct PruneArgs {
    #[arg(short, long, action = ArgAction::SetTrue, help = "Remove all unused images not just dangling ones")]
    pub all: bool,
    #[arg(long, value_name = "filter", help = "Provide filter values (e.g. \"label=<key>=<value>\")")]
    pub filter: Vec<String>,
    #[arg(short, long, action = ArgAction::SetTrue, help = "Do not prompt for confirmation")]
    pub force: bool,
    #[arg(long, action = ArgAction::SetTrue, help = "Prune anonymous volumes")]
    pub volumes: bool,
}

pub async fn prune(ctx: &Ctx, a: PruneArgs) -> Result<()> {
    let mut warning = String::from("WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n");
    if a.volumes {
        warning.push_str("  - all anonymous volumes not used by at least one container\n");
    }
    warning.push_str(if a.all { "  - all images without at least one container associated to them\n" } else { "  - all dangling images\n" });
    warning.push_str("  - unused build cache\n");
    if !super::confirm(ctx, &warning, a.force) {
        return Ok(());
    }
    let mut total = 0u64;
    let (ids, space) = super::container::prune_containers(ctx, &a.filter).await?;
    total += space;
    if !ids.is_empty() {
        ctx.io.println("Deleted Containers:");
        ids.iter().for_each(|i| ctx.io.println(i));
        ctx.io.println("");
    }
    let nets = super::network::prune_networks(ctx, &a.filter).await?;
    if !nets.is_empty() {
        ctx.io.println("Deleted Networks:");
        nets.iter().for_each(|i| ctx.io.println(i));
        ctx.io.println("");
    }
    if a.volumes {
        let (vols, space) = super::volume::prune_volumes(ctx, false, &a.filter).await?;
        total += space;
        if !vols.is_empty() {
            ctx.io.println("Deleted Volumes:");
            vols.iter().for_each(|i| ctx.io.println(i));
            ctx.io.println("");
        }
    }
    let (imgs, space) = super::image::prune_images(ctx, a.all, &a.filter).await?;
    total += space;
    if !imgs.is_empty() {
        ctx.io.println("Deleted Images:");
        imgs.iter().for_each(|i| ctx.io.println(i));
        ctx.io.println("");
    }
    // Build cache knows only some of the filters (`until`); the others are not its.
    let cache_filter: Vec<String> = a.filter.iter().filter(|f| f.starts_with("until=")).cloned().collect();
    let (caches, space) = super::build::prune_cache(ctx, a.all, 0, &cache_filter).await?;
    total += space;
    if !caches.is_empty() {
        ctx.io.println("Deleted build cache objects:");
        caches.iter().for_each(|i| ctx.io.println(i));
        ctx.io.println("");
    }
    ctx.io.println(&format!("Total reclaimed space: {}", units::human_size(total as f64)));
    Ok(())
}

#[derive(Debug, Clone, Args)]
#[command(about = "Authenticate to a registry")]
pub struct LoginArgs {
    #[arg(short, long, value_name = "string", help = "Password or Personal Access Token (PAT)")]
    pub password: Option<String>,
    #[arg(long = "password-stdin", action = ArgAction::SetTrue, help = "Take the Password or Personal Access Token (PAT) from stdin")]
    pub password_stdin: bool,
    #[arg(short, long, value_name = "string", help = "Username")]
    pub username: Option<String>,
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,
}

fn server_key(server: Option<&str>) -> String {
    match server {
        None | Some("") => config::DOCKER_HUB.to_string(),
        Some(s) => {
            let s = s.trim_end_matches('/');
            let bare = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://")).unwrap_or(s);
            if matches!(bare, "docker.io" | "index.docker.io" | "registry-1.docker.io") || bare.starts_with("index.docker.io/") {
                config::DOCKER_HUB.to_string()
            } else {
                bare.to_string()
            }
        }
    }
}

/// Reads a line from the terminal, without echo when `secret`.
fn prompt(ctx: &Ctx, label: &str, secret: bool) -> Result<String> {
    ctx.io.print(label);
    let stdin = std::io::stdin();
    let guard = if secret {
        use std::os::fd::AsFd;
        let fd = stdin.as_fd();
        let saved = nix::sys::termios::tcgetattr(fd).ok();
        if let Some(s) = &saved {
            let mut t = s.clone();
            t.local_flags.remove(nix::sys::termios::LocalFlags::ECHO);
            let _ = nix::sys::termios::tcsetattr(fd, nix::sys::termios::SetArg::TCSANOW, &t);
        }
        saved
    } else {
        None
    };
    let mut line = String::new();
    let r = stdin.read_line(&mut line);
    if let Some(saved) = guard {
        use std::os::fd::AsFd;
        let _ = nix::sys::termios::tcsetattr(std::io::stdin().as_fd(), nix::sys::termios::SetArg::TCSANOW, &saved);
        ctx.io.println("");
    }
    r?;
    Ok(line.trim_end_matches(['\n', '\r']).to_string())
}

pub async fn login(ctx: &Ctx, a: LoginArgs) -> Result<()> {
    let key = server_key(a.server.as_deref());
    if a.password.is_some() && a.password_stdin {
        return Err(Error::Usage("--password and --password-stdin are mutually exclusive".into()));
    }
    if a.password_stdin && a.username.is_none() {
        return Err(Error::Usage("Must provide --username with --password-stdin".into()));
    }
    if a.password.is_some() {
        ctx.io.eprintln("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
    }
    let mut password = a.password.clone().unwrap_or_default();
    if a.password_stdin {
        let mut buf = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut buf)?;
        password = buf.trim_end_matches(['\n', '\r']).to_string();
    }
    let username = match &a.username {
        Some(u) => u.clone(),
        None => {
            if !ctx.io.stdin_tty {
                return Err(Error::msg("Error: Cannot perform an interactive login from a non TTY device"));
            }
            prompt(ctx, "Username: ", false)?
        }
    };
    if username.is_empty() {
        return Err(Error::msg("Error: Non-null Username Required"));
    }
    if password.is_empty() {
        if !ctx.io.stdin_tty {
            return Err(Error::msg("Error: Cannot perform an interactive login from a non TTY device"));
        }
        password = prompt(ctx, "Password: ", true)?;
        if password.is_empty() {
            return Err(Error::msg("Error: Password Required"));
        }
    }
    let c = ctx.client().await?;
    let body = berth_types::system::AuthConfig {
        username: username.clone(),
        password: password.clone(),
        server_address: key.clone(),
        ..Default::default()
    };
    let v = value(&c.bytes(Call::post("/auth").json(&body)).await?)?;
    let token = v.str_at(&["IdentityToken"]);
    let mut cfg = ConfigFile::load(ctx.config.path.parent().unwrap_or(std::path::Path::new(".")))?;
    match cfg.helper_for(&key) {
        // The helper keeps the secret; config.json only says that we logged in.
        Some(helper) => {
            let (user, secret) = if token.is_empty() { (username.as_str(), password.as_str()) } else { ("<token>", token.as_str()) };
            config::helper_store(&helper, &key, user, secret, &ctx.env)?;
            cfg.set_auth_placeholder(&key);
            cfg.save()?;
        }
        None => {
            cfg.set_auth(&key, &username, if token.is_empty() { &password } else { "" }, &token);
            cfg.save()?;
            ctx.io.eprintln(&format!(
                "WARNING! Your credentials are stored unencrypted in '{}'.\nConfigure a credential helper to remove this warning. See\nhttps://docs.docker.com/go/credential-store/\n",
                cfg.path.display()
            ));
        }
    }
    let status = v.str_at(&["Status"]);
    ctx.io.println(if status.is_empty() { "Login Succeeded" } else { &status });
    Ok(())
}

#[derive(Debug, Clone, Args)]
#[command(about = "Log out from a registry")]
pub struct LogoutArgs {
    #[arg(value_name = "SERVER")]
    pub server: Option<String>,
}

pub async fn logout(ctx: &Ctx, a: LogoutArgs) -> Result<()> {
    let key = server_key(a.server.as_deref());
    let mut cfg = ConfigFile::load(ctx.config.path.parent().unwrap_or(std::path::Path::new(".")))?;
    if !cfg.remove_auth(&key) {
        ctx.io.println(&format!("Not logged in to {key}"));
        return Ok(());
    }
    ctx.io.println(&format!("Removing login credentials for {key}"));
    if let Some(helper) = cfg.helper_for(&key)
        && let Err(e) = config::helper_erase(&helper, &key, &ctx.env)
    {
        ctx.io.eprintln(&format!("WARNING: could not erase credentials: {key}: error erasing credentials - err: {e}"));
    }
    cfg.save()
}

#[derive(Debug, Clone, Args)]
#[command(about = "Return low-level information on berth objects")]
pub struct InspectArgs {
    #[arg(short, long, value_name = "string", help = "Format output using a custom template")]
    pub format: Option<String>,
    #[arg(short, long, action = ArgAction::SetTrue, help = "Display total file sizes if the type is container")]
    pub size: bool,
    #[arg(long = "type", value_name = "string", help = "Only inspect objects of the given type")]
    pub kind: Option<String>,
    #[arg(required = true, value_name = "NAME|ID")]
    pub names: Vec<String>,
}

pub async fn inspect(ctx: &Ctx, a: InspectArgs) -> Result<()> {
    let kinds: Vec<&str> = match a.kind.as_deref() {
        None | Some("") => vec!["container", "image", "volume", "network"],
        Some(k @ ("container" | "image" | "volume" | "network")) => vec![k],
        Some(other) => return Err(Error::Usage(format!("\"{other}\" is not a valid value for --type"))),
    };
    if let Some(f) = &a.format {
        format::Template::parse(&format::prepare_format(f).0).map_err(|e| Error::msg(format!("template parsing error: {e}")))?;
    }
    let c = ctx.client().await?;
    let mut raw = Vec::new();
    let mut errors = Vec::new();
    'names: for n in &a.names {
        for k in &kinds {
            let call = match *k {
                "container" => Call::get(format!("/containers/{n}/json")).flag("size", a.size),
                "image" => Call::get(format!("/images/{n}/json")),
                "volume" => Call::get(format!("/volumes/{n}")),
                _ => Call::get(format!("/networks/{n}")),
            };
            match c.bytes(call).await {
                Ok(b) => {
                    raw.push(b.to_vec());
                    continue 'names;
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => {
                    errors.push(e.to_string());
                    continue 'names;
                }
            }
        }
        if kinds.len() == 1 {
            errors.push(format!("Error: No such {}: {n}", kinds[0]));
        } else {
            errors.push(format!("Error: No such object: {n}"));
        }
    }
    match format::render_inspect(a.format.as_deref(), &raw) {
        Ok(s) => ctx.io.print(&s),
        Err(e) => errors.push(e.to_string()),
    }
    if errors.is_empty() { Ok(()) } else { Err(Error::Msg(errors.join("\n"))) }
}

pub async fn dispatch(ctx: &Ctx, cmd: SystemCmd) -> Result<()> {
    match cmd {
        SystemCmd::Df(a) => df(ctx, a).await,
        SystemCmd::Events(a) => events(ctx, a).await,
        SystemCmd::Info(a) => info(ctx, a).await,
        SystemCmd::Prune(a) => prune(ctx, a).await,
        SystemCmd::DialStdio => dial_stdio(ctx).await,
    }
}

/// `system dial-stdio`: our stdin to the daemon's socket and the socket to our stdout,
/// raw, until the daemon closes; our stdin's end half-closes the socket. This is what
/// a client on another host runs over ssh (`DOCKER_HOST=ssh://...`).
pub async fn dial_stdio(ctx: &Ctx) -> Result<()> {
    use tokio::io::AsyncWriteExt;
    let client = crate::client::Client::new(&ctx.host, ctx.tls.as_ref())?;
    let conn = client.connect().await?;
    let (mut from_daemon, mut to_daemon) = tokio::io::split(conn);
    tokio::spawn(async move {
        let mut stdin = tokio::io::stdin();
        let _ = tokio::io::copy(&mut stdin, &mut to_daemon).await;
        let _ = to_daemon.shutdown().await;
    });
    let mut stdout = tokio::io::stdout();
    let r = tokio::io::copy(&mut from_daemon, &mut stdout).await;
    let _ = stdout.flush().await;
    r.map(|_| ()).map_err(|e| Error::msg(format!("dial-stdio: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_lines_match_docker() {
        let trace = include_str!("../../../../fixtures/api-traces/events.txt");
        let line = trace.lines().find(|l| l.starts_with("{\"status\":\"die\"")).unwrap();
        let e = Value::from_json_str(line).unwrap();
        let text = event_line(&e);
        let (time, rest) = text.split_once(' ').unwrap();
        assert!(time.len() >= 30, "{time}");
        assert_eq!(
            rest,
            "container die f150d8eb63755f39e8a8694e08db340db26ee9745610f3508644cb77836b911e (exitCode=0, image=busybox:latest, name=busy_nobel)"
        );
    }

    #[test]
    fn login_server_keys() {
        assert_eq!(server_key(None), config::DOCKER_HUB);
        assert_eq!(server_key(Some("docker.io")), config::DOCKER_HUB);
        assert_eq!(server_key(Some("https://127.0.0.1:5000/")), "127.0.0.1:5000");
        assert_eq!(server_key(Some("localhost:5000")), "localhost:5000");
    }

    #[test]
    fn df_summary() {
        let d = Value::from_json_str(
            r#"{"LayersSize":2000,"Images":[{"Containers":1,"Size":1500,"SharedSize":0},{"Containers":0,"Size":500,"SharedSize":0}],
                "Containers":[{"State":"running","SizeRw":10},{"State":"exited","SizeRw":30}],
                "Volumes":[{"UsageData":{"Size":100,"RefCount":0}}],"BuildCache":[]}"#,
        )
        .unwrap();
        let t = format::Template::parse("{{.Type}}|{{.TotalCount}}|{{.Active}}|{{.Size}}|{{.Reclaimable}}").unwrap();
        let rows: Vec<String> = df_rows(&d).iter().map(|r| t.execute(r).unwrap()).collect();
        assert_eq!(rows, vec!["Images|2|1|2kB|500B (25%)", "Containers|2|1|40B|30B (75%)", "Local Volumes|1|0|100B|100B (100%)", "Build Cache|0|0|0B|0B"]);
    }
}
