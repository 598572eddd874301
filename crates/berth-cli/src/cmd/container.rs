//! Container commands that are one request and a printout: ps, stop, restart, kill,
//! rm, logs, inspect, top, wait, rename, update, pause, unpause, port, diff, commit,
//! export, prune.

use std::io::Write;

use clap::{ArgAction, Args};

use super::{ago, familiar, filters_json, for_each, go_quote, go_time_string, value};
use crate::client::{BodyStream, Call};
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::format::{self, Map, Value, ellipsis, template::context, truncate_id, units};
use crate::stream::attach::copy_logs;

const FORMAT_HELP: &str = "Format output using a custom template:\n'table':            Print output in table format with column headers (default)\n'table TEMPLATE':   Print output in table format using the given Go template\n'json':             Print in JSON format\n'TEMPLATE':         Print output using the given Go template";

#[derive(Debug, Clone, Args)]
#[command(about = "List containers")]
pub struct PsArgs {
    #[arg(short, long, action = ArgAction::SetTrue, help = "Show all containers (default shows just running)")]
    pub all: bool,
    #[arg(short, long, value_name = "filter", help = "Filter output based on conditions provided")]
    pub filter: Vec<String>,
    #[arg(long, value_name = "string", help = FORMAT_HELP)]
    pub format: Option<String>,
    #[arg(short = 'n', long, value_name = "int", default_value_t = -1, allow_hyphen_values = true, help = "Show n last created containers (includes all states)")]
    pub last: i64,
    #[arg(short = 'l', long, action = ArgAction::SetTrue, help = "Show the latest created container (includes all states)")]
    pub latest: bool,
    #[arg(long = "no-trunc", action = ArgAction::SetTrue, help = "Don't truncate output")]
    pub no_trunc: bool,
    #[arg(short, long, action = ArgAction::SetTrue, help = "Only display container IDs")]
    pub quiet: bool,
    #[arg(short, long, action = ArgAction::SetTrue, help = "Display total file sizes")]
    pub size: bool,
}

fn container_headers() -> Value {
    Value::Map(
        Map::new()
            .with("ID", "CONTAINER ID")
            .with("Names", "NAMES")
            .with("Image", "IMAGE")
            .with("Command", "COMMAND")
            .with("CreatedAt", "CREATED AT")
            .with("RunningFor", "CREATED")
            .with("Ports", "PORTS")
            .with("State", "STATE")
            .with("Status", "STATUS")
            .with("Size", "SIZE")
            .with("Labels", "LABELS")
            .with("Label", format::header_label_method())
            .with("Mounts", "MOUNTS")
            .with("LocalVolumes", "LOCAL VOLUMES")
            .with("Networks", "NETWORKS"),
    )
}

/// docker's `DisplayablePorts`: groups consecutive ports, e.g.
/// "0.0.0.0:8000-8001->80-81/tcp, 9988/tcp".
pub fn displayable_ports(ports: &[Value]) -> String {
    struct P {
        ip: String,
        private: u16,
        public: u16,
        kind: String,
    }
    let mut ps: Vec<P> = ports
        .iter()
        .map(|p| P {
            ip: p.str_at(&["IP"]),
            private: p.i64_at(&["PrivatePort"]) as u16,
            public: p.i64_at(&["PublicPort"]) as u16,
            kind: p.str_at(&["Type"]),
        })
        .collect();
    ps.sort_by(|a, b| (a.private, &a.ip, a.public, &a.kind).cmp(&(b.private, &b.ip, b.public, &b.kind)));
    let join = |ip: &str, port: &str| if ip.contains(':') { format!("[{ip}]:{port}") } else { format!("{ip}:{port}") };
    let mut groups: Vec<(String, u16, u16)> = Vec::new();
    let mut result = Vec::new();
    let mut host_mappings = Vec::new();
    for p in &ps {
        let mut key = p.kind.clone();
        if !p.ip.is_empty() {
            if p.public != p.private {
                host_mappings.push(format!("{}->{}/{}", join(&p.ip, &p.public.to_string()), p.private, p.kind));
                continue;
            }
            key = format!("{}/{}", p.ip, p.kind);
        }
        match groups.iter_mut().find(|g| g.0 == key) {
            None => groups.push((key, p.private, p.private)),
            Some(g) if p.private == g.2.wrapping_add(1) => g.2 = p.private,
            Some(g) => {
                result.push(form_group(&g.0, g.1, g.2));
                *g = (key, p.private, p.private);
            }
        }
    }
    for g in &groups {
        result.push(form_group(&g.0, g.1, g.2));
    }
    result.extend(host_mappings);
    result.join(", ")
}

fn form_group(key: &str, first: u16, last: u16) -> String {
    let (ip, kind) = match key.rsplit_once('/') {
        Some((ip, k)) => (ip, k),
        None => ("", key),
    };
    let mut group = first.to_string();
    if first != last {
        group = format!("{group}-{last}");
    }
    if !ip.is_empty() {
        let host = if ip.contains(':') { format!("[{ip}]:{group}") } else { format!("{ip}:{group}") };
        group = format!("{host}->{group}");
    }
    format!("{group}/{kind}")
}

/// The fields docker's `ps` templates can use for one container.
pub fn container_context(c: &Value, trunc: bool) -> Value {
    let id = c.str_at(&["Id"]);
    let names: Vec<String> = c.list_at(&["Names"]).iter().map(|n| n.display().trim_start_matches('/').to_string()).collect();
    let names = if trunc {
        names.iter().find(|n| !n.contains('/')).cloned().unwrap_or_default()
    } else {
        names.join(",")
    };
    let image = c.str_at(&["Image"]);
    let image = if image.is_empty() {
        "<no image>".to_string()
    } else if trunc && (image.starts_with("sha256:") || truncate_id(&c.str_at(&["ImageID"])) == truncate_id(&image)) {
        truncate_id(&image)
    } else if trunc {
        let no_digest = match image.split_once('@') {
            Some((n, _)) => n.to_string(),
            None => image.clone(),
        };
        familiar(&no_digest)
    } else {
        image
    };
    let mut command = c.str_at(&["Command"]);
    if trunc {
        command = ellipsis(&command, 20);
    }
    let created = c.i64_at(&["Created"]);
    let labels_map = c.get("Labels").cloned().unwrap_or(Value::Null);
    let mut labels: Vec<String> = c.entries_at(&["Labels"]).iter().map(|(k, v)| format!("{k}={}", v.display())).collect();
    labels.sort();
    let mounts: Vec<String> = c
        .list_at(&["Mounts"])
        .iter()
        .map(|m| {
            let n = m.str_at(&["Name"]);
            let n = if n.is_empty() { m.str_at(&["Source"]) } else { n };
            if trunc { ellipsis(&n, 15) } else { n }
        })
        .collect();
    let local_volumes = c.list_at(&["Mounts"]).iter().filter(|m| m.str_at(&["Driver"]) == "local").count();
    let networks: Vec<String> = c.entries_at(&["NetworkSettings", "Networks"]).iter().map(|(k, _)| k.clone()).collect();
    let size_rw = c.i64_at(&["SizeRw"]);
    let size_root = c.i64_at(&["SizeRootFs"]);
    let size = if size_root > 0 {
        format!("{} (virtual {})", units::human_size_precision(size_rw as f64, 3), units::human_size_precision(size_root as f64, 3))
    } else {
        units::human_size_precision(size_rw as f64, 3)
    };
    context(vec![
        ("Command", Value::from(go_quote(&command))),
        ("CreatedAt", Value::from(go_time_string(created))),
        ("ID", Value::from(if trunc { truncate_id(&id) } else { id })),
        ("Image", Value::from(image)),
        (
            "Label",
            Value::method(move |args| {
                let k = args.first().map(Value::display).unwrap_or_default();
                Ok(labels_map.get(&k).cloned().unwrap_or(Value::from("")))
            }),
        ),
        ("Labels", Value::from(labels.join(","))),
        ("LocalVolumes", Value::from(local_volumes.to_string())),
        ("Mounts", Value::from(mounts.join(","))),
        ("Names", Value::from(names)),
        ("Networks", Value::from(networks.join(","))),
        ("Ports", Value::from(displayable_ports(c.list_at(&["Ports"])))),
        ("RunningFor", Value::from(ago(created))),
        ("Size", Value::from(size)),
        ("State", Value::from(c.str_at(&["State"]))),
        ("Status", Value::from(c.str_at(&["Status"]))),
    ])
}

/// True when a template marshals the whole context (`{{json .}}`, `{{json $}}`).
fn json_of_whole(format: &str) -> bool {
    ["json .", "json $"].iter().any(|pat| {
        format.match_indices(pat).any(|(i, _)| {
            format[i + pat.len()..].chars().next().is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == '.'))
        })
    })
}

pub async fn ps(ctx: &Ctx, a: PsArgs) -> Result<()> {
    let format = if a.quiet {
        "{{.ID}}".to_string()
    } else {
        a.format.clone().or_else(|| ctx.config.string("psFormat").map(str::to_string)).unwrap_or_else(|| "table".into())
    };
    let format = if format == "table" {
        let mut f = "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}".to_string();
        if a.size {
            f.push_str("\t{{.Size}}");
        }
        f
    } else {
        format
    };
    // Parse the format before asking the daemon anything.
    format::Template::parse(&format::prepare_format(&format).0)
        .map_err(|e| Error::msg(format!("failed to parse template: {e}")))?;
    let c = ctx.client().await?;
    let limit = if a.latest { 1 } else { a.last };
    // docker asks for sizes when the template shows them (`{{json .}}` includes Size).
    let wants_size = format.contains(".Size") || format == "json" || json_of_whole(&format);
    let mut call = Call::get("/containers/json").flag("all", a.all).flag("size", a.size || wants_size);
    if limit > 0 {
        call = call.query("limit", limit.to_string());
    }
    if let Some(f) = filters_json(&a.filter)? {
        call = call.query("filters", f);
    }
    let list = value(&c.bytes(call).await?)?;
    let rows: Vec<Value> = match &list {
        Value::List(l) => l.iter().map(|x| container_context(x, !a.no_trunc)).collect(),
        _ => Vec::new(),
    };
    ctx.io.print(&format::render_list(&format, &container_headers(), &rows)?);
    Ok(())
}

#[derive(Debug, Clone, Args)]
#[command(about = "Stop one or more running containers")]
pub struct StopArgs {
    #[arg(short, long, value_name = "string", help = "Signal to send to the container")]
    pub signal: Option<String>,
    #[arg(short, long, visible_alias = "time", value_name = "int", allow_hyphen_values = true, help = "Seconds to wait before killing the container")]
    pub timeout: Option<i64>,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

pub async fn stop(ctx: &Ctx, a: StopArgs) -> Result<()> {
    let c = ctx.client().await?;
    for_each(ctx, &a.containers, |name| {
        let mut call = Call::post(format!("/containers/{name}/stop"));
        if let Some(t) = a.timeout {
            call = call.query("t", t.to_string());
        }
        if let Some(s) = &a.signal {
            call = call.query("signal", s.clone());
        }
        async move { c.bytes(call).await.map(|_| Some(name)) }
    })
    .await
}

#[derive(Debug, Clone, Args)]
#[command(about = "Restart one or more containers")]
pub struct RestartArgs {
    #[arg(short, long, value_name = "string", help = "Signal to send to the container")]
    pub signal: Option<String>,
    #[arg(short, long, visible_alias = "time", value_name = "int", allow_hyphen_values = true, help = "Seconds to wait before killing the container")]
    pub timeout: Option<i64>,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

pub async fn restart(ctx: &Ctx, a: RestartArgs) -> Result<()> {
    let c = ctx.client().await?;
    for_each(ctx, &a.containers, |name| {
        let mut call = Call::post(format!("/containers/{name}/restart"));
        if let Some(t) = a.timeout {
            call = call.query("t", t.to_string());
        }
        if let Some(s) = &a.signal {
            call = call.query("signal", s.clone());
        }
        async move { c.bytes(call).await.map(|_| Some(name)) }
    })
    .await
}

#[derive(Debug, Clone, Args)]
#[command(about = "Kill one or more running containers")]
pub struct KillArgs {
    #[arg(short, long, value_name = "string", help = "Signal to send to the container")]
    pub signal: Option<String>,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

pub async fn kill(ctx: &Ctx, a: KillArgs) -> Result<()> {
    let c = ctx.client().await?;
    for_each(ctx, &a.containers, |name| {
        let call = Call::post(format!("/containers/{name}/kill")).query_opt("signal", a.signal.as_deref().unwrap_or(""));
        async move { c.bytes(call).await.map(|_| Some(name)) }
    })
    .await
}

#[derive(Debug, Clone, Args)]
#[command(about = "Remove one or more containers")]
pub struct RmArgs {
    #[arg(short, long, action = ArgAction::SetTrue, help = "Force the removal of a running container (uses SIGKILL)")]
    pub force: bool,
    #[arg(short, long, action = ArgAction::SetTrue, help = "Remove the specified link")]
    pub link: bool,
    #[arg(short, long, action = ArgAction::SetTrue, help = "Remove anonymous volumes associated with the container")]
    pub volumes: bool,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

pub async fn rm(ctx: &Ctx, a: RmArgs) -> Result<()> {
    let c = ctx.client().await?;
    for_each(ctx, &a.containers, |name| {
        let call = Call::delete(format!("/containers/{}", name.trim_matches('/')))
            .flag("force", a.force)
            .flag("link", a.link)
            .flag("v", a.volumes);
        async move { c.bytes(call).await.map(|_| Some(name)) }
    })
    .await
}

#[derive(Debug, Clone, Args)]
#[command(about = "Fetch the logs of a container")]
pub struct LogsArgs {
    #[arg(long, action = ArgAction::SetTrue, help = "Show extra details provided to logs")]
    pub details: bool,
    #[arg(short, long, action = ArgAction::SetTrue, help = "Follow log output")]
    pub follow: bool,
    #[arg(long, value_name = "string", help = "Show logs since timestamp (e.g. \"2013-01-02T13:23:37Z\") or relative (e.g. \"42m\" for 42 minutes)")]
    pub since: Option<String>,
    #[arg(short = 'n', long, value_name = "string", default_value = "all", help = "Number of lines to show from the end of the logs")]
    pub tail: String,
    #[arg(short, long, action = ArgAction::SetTrue, help = "Show timestamps")]
    pub timestamps: bool,
    #[arg(long, value_name = "string", help = "Show logs before a timestamp (e.g. \"2013-01-02T13:23:37Z\") or relative (e.g. \"42m\" for 42 minutes)")]
    pub until: Option<String>,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

fn timestamp_arg(s: &Option<String>) -> Result<String> {
    match s {
        None => Ok(String::new()),
        Some(v) => units::api_timestamp(v, std::time::SystemTime::now()).map_err(Error::Msg),
    }
}

pub async fn logs(ctx: &Ctx, a: LogsArgs) -> Result<()> {
    let since = timestamp_arg(&a.since)?;
    let until = timestamp_arg(&a.until)?;
    let c = ctx.client().await?;
    let info = value(&c.bytes(Call::get(format!("/containers/{}/json", a.container))).await?)?;
    let id = info.str_at(&["Id"]);
    let call = Call::get(format!("/containers/{id}/logs"))
        .query("stdout", "1")
        .query("stderr", "1")
        .query_opt("since", &since)
        .query_opt("until", &until)
        .flag("timestamps", a.timestamps)
        .flag("follow", a.follow)
        .query_opt("tail", &a.tail)
        .flag("details", a.details);
    let res = c.send(call).await?;
    copy_logs(BodyStream::new(res), info.bool_at(&["Config", "Tty"]), ctx.io.out.clone(), ctx.io.err.clone()).await
}

#[derive(Debug, Clone, Args)]
#[command(about = "Display detailed information on one or more containers")]
pub struct ContainerInspectArgs {
    #[arg(short, long, value_name = "string", help = "Format output using a custom template")]
    pub format: Option<String>,
    #[arg(short, long, action = ArgAction::SetTrue, help = "Display total file sizes")]
    pub size: bool,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// Fetches raw inspect bodies for each name from `path(name)`; prints them like
/// docker, then the errors.
pub async fn inspect_each(ctx: &Ctx, format: Option<&str>, names: &[String], path: impl Fn(&str) -> Call) -> Result<()> {
    if let Some(f) = format {
        format::Template::parse(&format::prepare_format(f).0).map_err(|e| Error::msg(format!("template parsing error: {e}")))?;
    }
    let c = ctx.client().await?;
    let mut raw = Vec::new();
    let mut errors = Vec::new();
    for n in names {
        match c.bytes(path(n)).await {
            Ok(b) => raw.push(b.to_vec()),
            Err(e @ Error::Connect { .. }) => return Err(e),
            Err(e) => errors.push(e.to_string()),
        }
    }
    let out = format::render_inspect(format, &raw);
    match out {
        Ok(s) => ctx.io.print(&s),
        Err(e) => errors.push(e.to_string()),
    }
    if errors.is_empty() { Ok(()) } else { Err(Error::Msg(errors.join("\n"))) }
}

pub async fn inspect(ctx: &Ctx, a: ContainerInspectArgs) -> Result<()> {
    let size = a.size;
    inspect_each(ctx, a.format.as_deref(), &a.containers, |n| Call::get(format!("/containers/{n}/json")).flag("size", size)).await
}

#[derive(Debug, Clone, Args)]
#[command(about = "Display the running processes of a container")]
pub struct TopArgs {
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, value_name = "ps OPTIONS")]
    pub ps_args: Vec<String>,
}

pub async fn top(ctx: &Ctx, a: TopArgs) -> Result<()> {
    let c = ctx.client().await?;
    let call = Call::get(format!("/containers/{}/top", a.container)).query_opt("ps_args", &a.ps_args.join(" "));
    let v = value(&c.bytes(call).await?)?;
    let mut text = v.list_at(&["Titles"]).iter().map(Value::display).collect::<Vec<_>>().join("\t");
    text.push('\n');
    for p in v.list_at(&["Processes"]) {
        if let Value::List(cols) = p {
            text.push_str(&cols.iter().map(Value::display).collect::<Vec<_>>().join("\t"));
            text.push('\n');
        }
    }
    ctx.io.print(&format::tabwriter::align(&text, 20, 3));
    Ok(())
}

#[derive(Debug, Clone, Args)]
#[command(about = "Block until one or more containers stop, then print their exit codes")]
pub struct WaitArgs {
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

pub async fn wait(ctx: &Ctx, a: WaitArgs) -> Result<()> {
    let c = ctx.client().await?;
    for_each(ctx, &a.containers, |name| async move {
        let v = value(&c.bytes(Call::post(format!("/containers/{name}/wait"))).await?)?;
        let msg = v.str_at(&["Error", "Message"]);
        if !msg.is_empty() {
            return Err(Error::Msg(msg));
        }
        Ok(Some(v.i64_at(&["StatusCode"]).to_string()))
    })
    .await
}

#[derive(Debug, Clone, Args)]
#[command(about = "Rename a container")]
pub struct RenameArgs {
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    #[arg(value_name = "NEW_NAME")]
    pub new_name: String,
}

pub async fn rename(ctx: &Ctx, a: RenameArgs) -> Result<()> {
    let new = a.new_name.trim().trim_start_matches('/');
    if new.is_empty() {
        return Err(Error::msg("Error: Neither old nor new names may be empty"));
    }
    let c = ctx.client().await?;
    c.bytes(Call::post(format!("/containers/{}/rename", a.container)).query("name", new))
        .await
        .map_err(|e| Error::Msg(format!("{e}\nError: failed to rename container named {}", a.container)))?;
    Ok(())
}

#[derive(Debug, Clone, Args)]
#[command(about = "Update configuration of one or more containers")]
pub struct UpdateArgs {
    #[arg(long = "blkio-weight", value_name = "uint16", help = "Block IO (relative weight), between 10 and 1000, or 0 to disable")]
    pub blkio_weight: Option<u16>,
    #[arg(long = "cpu-period", value_name = "int", help = "Limit CPU CFS (Completely Fair Scheduler) period")]
    pub cpu_period: Option<i64>,
    #[arg(long = "cpu-quota", value_name = "int", allow_hyphen_values = true, help = "Limit CPU CFS (Completely Fair Scheduler) quota")]
    pub cpu_quota: Option<i64>,
    #[arg(short = 'c', long = "cpu-shares", value_name = "int", help = "CPU shares (relative weight)")]
    pub cpu_shares: Option<i64>,
    #[arg(long, value_name = "decimal", value_parser = crate::opts::parse::parse_cpus, help = "Number of CPUs")]
    pub cpus: Option<i64>,
    #[arg(long = "cpuset-cpus", value_name = "string", help = "CPUs in which to allow execution (0-3, 0,1)")]
    pub cpuset_cpus: Option<String>,
    #[arg(long = "cpuset-mems", value_name = "string", help = "MEMs in which to allow execution (0-3, 0,1)")]
    pub cpuset_mems: Option<String>,
    #[arg(short = 'm', long, value_name = "bytes", value_parser = crate::opts::parse::parse_bytes, help = "Memory limit")]
    pub memory: Option<i64>,
    #[arg(long = "memory-reservation", value_name = "bytes", value_parser = crate::opts::parse::parse_bytes, help = "Memory soft limit")]
    pub memory_reservation: Option<i64>,
    #[arg(long = "memory-swap", value_name = "bytes", value_parser = crate::opts::parse::parse_bytes, allow_hyphen_values = true, help = "Swap limit equal to memory plus swap: -1 to enable unlimited swap")]
    pub memory_swap: Option<i64>,
    #[arg(long = "pids-limit", value_name = "int", allow_hyphen_values = true, help = "Tune container pids limit (set -1 for unlimited)")]
    pub pids_limit: Option<i64>,
    #[arg(long, value_name = "string", value_parser = crate::opts::parse::parse_restart, help = "Restart policy to apply when a container exits")]
    pub restart: Option<berth_types::container::RestartPolicy>,
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

pub async fn update(ctx: &Ctx, a: UpdateArgs) -> Result<()> {
    if a.blkio_weight.is_none()
        && a.cpu_period.is_none()
        && a.cpu_quota.is_none()
        && a.cpu_shares.is_none()
        && a.cpus.is_none()
        && a.cpuset_cpus.is_none()
        && a.cpuset_mems.is_none()
        && a.memory.is_none()
        && a.memory_reservation.is_none()
        && a.memory_swap.is_none()
        && a.pids_limit.is_none()
        && a.restart.is_none()
    {
        return Err(Error::Usage("you must provide one or more flags when using this command".into()));
    }
    let body = berth_types::container::UpdateConfig {
        cpu_shares: a.cpu_shares.unwrap_or(0),
        memory: a.memory.unwrap_or(0),
        nano_cpus: a.cpus.unwrap_or(0),
        blkio_weight: a.blkio_weight.unwrap_or(0),
        cpu_period: a.cpu_period.unwrap_or(0),
        cpu_quota: a.cpu_quota.unwrap_or(0),
        cpuset_cpus: a.cpuset_cpus.clone().unwrap_or_default(),
        cpuset_mems: a.cpuset_mems.clone().unwrap_or_default(),
        memory_reservation: a.memory_reservation.unwrap_or(0),
        memory_swap: a.memory_swap.unwrap_or(0),
        pids_limit: a.pids_limit,
        restart_policy: a.restart.clone(),
    };
    let c = ctx.client().await?;
    for_each(ctx, &a.containers, |name| {
        let call = Call::post(format!("/containers/{name}/update")).json(&body);
        async move {
            let v = value(&c.bytes(call).await?)?;
            for w in v.list_at(&["Warnings"]) {
                ctx.io.eprintln(&format!("WARNING: {}", w.display()));
            }
            Ok(Some(name))
        }
    })
    .await
}

#[derive(Debug, Clone, Args)]
#[command(about = "Pause all processes within one or more containers")]
pub struct PauseArgs {
    #[arg(required = true, value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

pub async fn pause(ctx: &Ctx, a: PauseArgs, resume: bool) -> Result<()> {
    let c = ctx.client().await?;
    let verb = if resume { "unpause" } else { "pause" };
    for_each(ctx, &a.containers, |name| {
        let call = Call::post(format!("/containers/{name}/{verb}"));
        async move { c.bytes(call).await.map(|_| Some(name)) }
    })
    .await
}

#[derive(Debug, Clone, Args)]
#[command(about = "List port mappings or a specific mapping for the container")]
pub struct PortArgs {
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    #[arg(value_name = "PRIVATE_PORT[/PROTO]")]
    pub port: Option<String>,
}

pub async fn port(ctx: &Ctx, a: PortArgs) -> Result<()> {
    let c = ctx.client().await?;
    let v = value(&c.bytes(Call::get(format!("/containers/{}/json", a.container))).await?)?;
    let join = |ip: &str, port: &str| if ip.contains(':') { format!("[{ip}]:{port}") } else { format!("{ip}:{port}") };
    let mut ports: Vec<(u16, String, Vec<String>)> = v
        .entries_at(&["NetworkSettings", "Ports"])
        .iter()
        .map(|(k, b)| {
            let num = k.split('/').next().and_then(|p| p.parse().ok()).unwrap_or(0);
            let hosts = match b {
                Value::List(l) => l.iter().map(|x| join(&x.str_at(&["HostIp"]), &x.str_at(&["HostPort"]))).collect(),
                _ => Vec::new(),
            };
            (num, k.clone(), hosts)
        })
        .collect();
    ports.sort();
    if let Some(want) = &a.port {
        let key = if want.contains('/') { want.clone() } else { format!("{want}/tcp") };
        let (_, proto) = key.split_once('/').unwrap_or((&key, "tcp"));
        let num: u16 = key
            .split('/')
            .next()
            .and_then(|p| p.parse().ok())
            .ok_or_else(|| Error::msg(format!("Error: invalid port ({want}): invalid syntax")))?;
        let key = format!("{num}/{proto}");
        match ports.iter().find(|p| p.1 == key && !p.2.is_empty()) {
            Some(p) => {
                for h in &p.2 {
                    ctx.io.println(h);
                }
                Ok(())
            }
            None => Err(Error::msg(format!("Error: No public port '{key}' published for {}", a.container))),
        }
    } else {
        for (_, k, hosts) in &ports {
            for h in hosts {
                ctx.io.println(&format!("{k} -> {h}"));
            }
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Args)]
#[command(about = "Inspect changes to files or directories on a container's filesystem")]
pub struct DiffArgs {
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

pub async fn diff(ctx: &Ctx, a: DiffArgs) -> Result<()> {
    let c = ctx.client().await?;
    let v = value(&c.bytes(Call::get(format!("/containers/{}/changes", a.container))).await?)?;
    for ch in match &v {
        Value::List(l) => l.as_slice(),
        _ => &[],
    } {
        let kind = match ch.i64_at(&["Kind"]) {
            0 => "C",
            1 => "A",
            2 => "D",
            _ => "?",
        };
        ctx.io.println(&format!("{kind} {}", ch.str_at(&["Path"])));
    }
    Ok(())
}

#[derive(Debug, Clone, Args)]
#[command(about = "Create a new image from a container's changes")]
pub struct CommitArgs {
    #[arg(short, long, value_name = "string", help = "Author (e.g., \"John Hannibal Smith <hannibal@a-team.com>\")")]
    pub author: Option<String>,
    #[arg(short, long, value_name = "list", help = "Apply Dockerfile instruction to the created image")]
    pub change: Vec<String>,
    #[arg(short, long, value_name = "string", help = "Commit message")]
    pub message: Option<String>,
    #[arg(short, long, value_name = "bool", default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", require_equals = true, help = "Pause container during commit")]
    pub pause: bool,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
    #[arg(value_name = "REPOSITORY[:TAG]")]
    pub repository: Option<String>,
}

pub async fn commit(ctx: &Ctx, a: CommitArgs) -> Result<()> {
    let (repo, tag) = match &a.repository {
        Some(r) => {
            crate::opts::parse::validate_reference(r).map_err(Error::Msg)?;
            crate::opts::parse::split_reference(r)
        }
        None => (String::new(), String::new()),
    };
    let c = ctx.client().await?;
    let mut call = Call::post("/commit")
        .query("container", a.container.clone())
        .query_opt("repo", &repo)
        .query_opt("tag", &tag)
        .query_opt("comment", a.message.as_deref().unwrap_or(""))
        .query_opt("author", a.author.as_deref().unwrap_or(""));
    if !a.pause {
        call = call.query("pause", "0");
    }
    for ch in &a.change {
        call = call.query("changes", ch.clone());
    }
    let v = value(&c.bytes(call.json(&serde_json::json!({}))).await?)?;
    ctx.io.println(&v.str_at(&["Id"]));
    Ok(())
}

/// Writes a streamed body to `-o FILE` (atomically) or to stdout (refusing a terminal).
pub async fn save_stream(ctx: &Ctx, res: hyper::Response<hyper::body::Incoming>, output: Option<&str>) -> Result<()> {
    let mut body = BodyStream::new(res);
    match output {
        Some(path) if path != "-" => {
            let target = std::path::Path::new(path);
            let dir = target.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
            let name = target.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "out".into());
            let tmp = dir.join(format!(".{name}.berth-tmp-{}", std::process::id()));
            let result = async {
                let mut f = std::fs::File::create(&tmp).map_err(|e| Error::msg(format!("failed to save to {path}: {e}")))?;
                while let Some(chunk) = body.chunk().await? {
                    f.write_all(&chunk)?;
                }
                f.sync_all()?;
                std::fs::rename(&tmp, target).map_err(|e| Error::msg(format!("failed to save to {path}: {e}")))?;
                Ok::<(), Error>(())
            }
            .await;
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            result
        }
        _ => {
            if ctx.io.stdout_tty {
                return Err(Error::msg("cowardly refusing to save to a terminal. Use the -o flag or redirect"));
            }
            let mut out = ctx.io.out.clone();
            while let Some(chunk) = body.chunk().await? {
                out.write_all(&chunk)?;
            }
            out.flush()?;
            Ok(())
        }
    }
}

#[derive(Debug, Clone, Args)]
#[command(about = "Export a container's filesystem as a tar archive")]
pub struct ExportArgs {
    #[arg(short, long, value_name = "string", help = "Write to a file, instead of STDOUT")]
    pub output: Option<String>,
    #[arg(value_name = "CONTAINER")]
    pub container: String,
}

pub async fn export(ctx: &Ctx, a: ExportArgs) -> Result<()> {
    if a.output.is_none() && ctx.io.stdout_tty {
        return Err(Error::msg("cowardly refusing to save to a terminal. Use the -o flag or redirect"));
    }
    let c = ctx.client().await?;
    let res = c.send(Call::get(format!("/containers/{}/export", a.container))).await?;
    save_stream(ctx, res, a.output.as_deref()).await
}

#[derive(Debug, Clone, Args)]
#[command(about = "Remove all stopped containers")]
pub struct PruneArgs {
    #[arg(long, value_name = "filter", help = "Provide filter values (e.g. \"until=<timestamp>\")")]
    pub filter: Vec<String>,
    #[arg(short, long, action = ArgAction::SetTrue, help = "Do not prompt for confirmation")]
    pub force: bool,
}

pub async fn prune(ctx: &Ctx, a: PruneArgs) -> Result<()> {
    if !super::confirm(ctx, "WARNING! This will remove all stopped containers.", a.force) {
        return Ok(());
    }
    let (ids, space) = prune_containers(ctx, &a.filter).await?;
    if !ids.is_empty() {
        ctx.io.println("Deleted Containers:");
        for id in &ids {
            ctx.io.println(id);
        }
        ctx.io.println("");
    }
    ctx.io.println(&format!("Total reclaimed space: {}", units::human_size(space as f64)));
    Ok(())
}

pub async fn prune_containers(ctx: &Ctx, filter: &[String]) -> Result<(Vec<String>, u64)> {
    let c = ctx.client().await?;
    let mut call = Call::post("/containers/prune");
    if let Some(f) = filters_json(filter)? {
        call = call.query("filters", f);
    }
    let v = value(&c.bytes(call).await?)?;
    let ids = v.list_at(&["ContainersDeleted"]).iter().map(Value::display).collect();
    Ok((ids, v.i64_at(&["SpaceReclaimed"]).max(0) as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn port(ip: &str, private: i64, public: i64, kind: &str) -> Value {
        let mut m = Map::new().with("PrivatePort", private).with("Type", kind);
        if !ip.is_empty() {
            m = m.with("IP", ip).with("PublicPort", public);
        }
        Value::Map(m)
    }

    #[test]
    fn json_of_the_whole_context() {
        assert!(json_of_whole("{{json .}}"));
        assert!(json_of_whole("{{ json . }}"));
        assert!(json_of_whole("{{json $}}"));
        assert!(!json_of_whole("{{json .Labels}}"));
        assert!(!json_of_whole("{{.ID}}"));
    }

    #[test]
    fn ports_display_like_docker() {
        assert_eq!(displayable_ports(&[port("127.0.0.1", 80, 18099, "tcp")]), "127.0.0.1:18099->80/tcp");
        assert_eq!(displayable_ports(&[port("", 9988, 0, "tcp"), port("", 9989, 0, "tcp")]), "9988-9989/tcp");
        assert_eq!(
            displayable_ports(&[port("0.0.0.0", 8080, 8080, "tcp"), port("0.0.0.0", 8081, 8081, "tcp"), port("", 53, 0, "udp")]),
            "53/udp, 0.0.0.0:8080-8081->8080-8081/tcp"
        );
        assert_eq!(displayable_ports(&[port("::", 80, 8080, "tcp")]), "[::]:8080->80/tcp");
        assert_eq!(displayable_ports(&[]), "");
    }

    #[test]
    fn ps_row_matches_the_trace() {
        let trace = include_str!("../../../../fixtures/api-traces/ps.txt");
        let body = trace.lines().find(|l| l.starts_with("[{")).expect("list body");
        let list = Value::from_json_str(body).unwrap();
        let Value::List(items) = &list else { panic!() };
        let row = container_context(&items[0], true);
        let t = format::Template::parse("{{.ID}}|{{.Image}}|{{.Command}}|{{.Ports}}|{{.Names}}|{{.State}}").unwrap();
        assert_eq!(t.execute(&row).unwrap(), "d3c7d04c9be3|busybox:latest|\"sh -c 'echo started…\"||trace-d|running");
        // The whole table, with the relative times replaced by what docker printed then.
        let mut fixed = row.clone();
        if let Value::Map(m) = &mut fixed {
            m.insert("RunningFor", Value::from("1 second ago"));
            m.insert("Status", Value::from("Up Less than a second"));
        }
        let table = format::render_list(
            "table {{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}",
            &container_headers(),
            &[fixed],
        )
        .unwrap();
        let seen: String = trace
            .lines()
            .skip_while(|l| !l.starts_with("#   $ docker ps"))
            .skip(1)
            .take_while(|l| !l.starts_with("#   [exit"))
            .map(|l| format!("{}\n", &l[4..]))
            .collect();
        assert_eq!(table, seen);
    }
}
