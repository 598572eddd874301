//! `stats`: per-container CPU, memory, network, block I/O and PIDs, computed from the
//! stats stream as docker does; redrawn every second unless `--no-stream`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::{ArgAction, Args};

use super::{filters_json, value};
use crate::client::{Call, JsonLines};
use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::format::{self, Map, Value, template::context, truncate_id, units};

#[derive(Debug, Clone, Args)]
#[command(about = "Display a live stream of container(s) resource usage statistics")]
pub struct StatsArgs {
    #[arg(short, long, action = ArgAction::SetTrue, help = "Show all containers (default shows just running)")]
    pub all: bool,
    #[arg(long, value_name = "string", help = "Format output using a custom template")]
    pub format: Option<String>,
    #[arg(long = "no-stream", action = ArgAction::SetTrue, help = "Disable streaming stats and only pull the first result")]
    pub no_stream: bool,
    #[arg(long = "no-trunc", action = ArgAction::SetTrue, help = "Do not truncate output")]
    pub no_trunc: bool,
    #[arg(value_name = "CONTAINER")]
    pub containers: Vec<String>,
}

/// The numbers docker derives from one stats sample.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StatsEntry {
    pub id: String,
    pub name: String,
    pub cpu_percent: f64,
    pub memory: f64,
    pub memory_limit: f64,
    pub memory_percent: f64,
    pub net_rx: f64,
    pub net_tx: f64,
    pub block_read: f64,
    pub block_write: f64,
    pub pids: u64,
}

pub fn compute(s: &Value) -> StatsEntry {
    let total = s.f64_at(&["cpu_stats", "cpu_usage", "total_usage"]);
    let pre_total = s.f64_at(&["precpu_stats", "cpu_usage", "total_usage"]);
    let system = s.f64_at(&["cpu_stats", "system_cpu_usage"]);
    let pre_system = s.f64_at(&["precpu_stats", "system_cpu_usage"]);
    let mut online = s.f64_at(&["cpu_stats", "online_cpus"]);
    if online == 0.0 {
        online = s.list_at(&["cpu_stats", "cpu_usage", "percpu_usage"]).len() as f64;
    }
    let cpu_delta = total - pre_total;
    let system_delta = system - pre_system;
    let cpu_percent = if system_delta > 0.0 && cpu_delta > 0.0 { cpu_delta / system_delta * online * 100.0 } else { 0.0 };

    // Memory without the page cache: v1 "total_inactive_file", v2 "inactive_file".
    let usage = s.f64_at(&["memory_stats", "usage"]);
    let inactive = match s.path(&["memory_stats", "stats", "total_inactive_file"]) {
        Some(_) => s.f64_at(&["memory_stats", "stats", "total_inactive_file"]),
        None => s.f64_at(&["memory_stats", "stats", "inactive_file"]),
    };
    let memory = if inactive < usage { usage - inactive } else { usage };
    let limit = s.f64_at(&["memory_stats", "limit"]);
    let memory_percent = if limit != 0.0 { memory / limit * 100.0 } else { 0.0 };

    let (mut rx, mut tx) = (0.0, 0.0);
    for (_, n) in s.entries_at(&["networks"]) {
        rx += n.f64_at(&["rx_bytes"]);
        tx += n.f64_at(&["tx_bytes"]);
    }
    let (mut br, mut bw) = (0.0, 0.0);
    for e in s.list_at(&["blkio_stats", "io_service_bytes_recursive"]) {
        match e.str_at(&["op"]).to_ascii_lowercase().as_str() {
            "read" => br += e.f64_at(&["value"]),
            "write" => bw += e.f64_at(&["value"]),
            _ => {}
        }
    }
    StatsEntry {
        id: s.str_at(&["id"]),
        name: s.str_at(&["name"]).trim_start_matches('/').to_string(),
        cpu_percent,
        memory,
        memory_limit: limit,
        memory_percent,
        net_rx: rx,
        net_tx: tx,
        block_read: br,
        block_write: bw,
        pids: s.i64_at(&["pids_stats", "current"]).max(0) as u64,
    }
}

pub fn stats_context(e: &StatsEntry, trunc: bool) -> Value {
    context(vec![
        ("BlockIO", Value::from(format!("{} / {}", units::human_size_precision(e.block_read, 3), units::human_size_precision(e.block_write, 3)))),
        ("CPUPerc", Value::from(format!("{:.2}%", e.cpu_percent))),
        ("Container", Value::from(if e.name.is_empty() { e.id.clone() } else { e.name.clone() })),
        ("ID", Value::from(if trunc { truncate_id(&e.id) } else { e.id.clone() })),
        ("MemPerc", Value::from(format!("{:.2}%", e.memory_percent))),
        ("MemUsage", Value::from(format!("{} / {}", units::bytes_size(e.memory), units::bytes_size(e.memory_limit)))),
        ("Name", Value::from(e.name.clone())),
        ("NetIO", Value::from(format!("{} / {}", units::human_size_precision(e.net_rx, 3), units::human_size_precision(e.net_tx, 3)))),
        ("PIDs", Value::from(e.pids.to_string())),
    ])
}

fn headers() -> Value {
    Value::Map(
        Map::new()
            .with("Container", "CONTAINER")
            .with("ID", "CONTAINER ID")
            .with("Name", "NAME")
            .with("CPUPerc", "CPU %")
            .with("MemUsage", "MEM USAGE / LIMIT")
            .with("MemPerc", "MEM %")
            .with("NetIO", "NET I/O")
            .with("BlockIO", "BLOCK I/O")
            .with("PIDs", "PIDS"),
    )
}

const DEFAULT_FORMAT: &str = "table {{.ID}}\t{{.Name}}\t{{.CPUPerc}}\t{{.MemUsage}}\t{{.MemPerc}}\t{{.NetIO}}\t{{.BlockIO}}\t{{.PIDs}}";

pub async fn stats(ctx: &Ctx, a: StatsArgs) -> Result<()> {
    let format = a.format.clone().or_else(|| ctx.config.string("statsFormat").map(str::to_string)).unwrap_or_else(|| DEFAULT_FORMAT.into());
    let format = if format == "table" { DEFAULT_FORMAT.to_string() } else { format };
    format::Template::parse(&format::prepare_format(&format).0).map_err(|e| Error::msg(format!("failed to parse template: {e}")))?;
    let c = ctx.client().await?;
    let names: Vec<String> = if a.containers.is_empty() {
        let mut call = Call::get("/containers/json").flag("all", a.all);
        if !a.all
            && let Some(f) = filters_json(&["status=running".into()])? {
                call = call.query("filters", f);
            }
        value(&c.bytes(call).await?)?.list_at(&[]).iter().map(|x| x.str_at(&["Id"])).collect()
    } else {
        a.containers.clone()
    };
    if a.no_stream {
        let mut rows = Vec::new();
        let mut errors = Vec::new();
        for n in &names {
            match c.bytes(Call::get(format!("/containers/{n}/stats")).query("stream", "0")).await {
                Ok(b) => rows.push(stats_context(&compute(&value(&b)?), !a.no_trunc)),
                Err(e @ Error::Connect { .. }) => return Err(e),
                Err(e) => errors.push(e.to_string()),
            }
        }
        ctx.io.print(&format::render_list(&format, &headers(), &rows)?);
        return if errors.is_empty() { Ok(()) } else { Err(Error::Msg(errors.join("\n"))) };
    }
    // Streaming: one reader per container, a redraw every second. Without names, as
    // docker: containers that start are added, and (without -a) those that stop go.
    let latest: Arc<Mutex<Vec<(String, Option<StatsEntry>)>>> = Arc::new(Mutex::new(names.iter().map(|n| (n.clone(), None)).collect()));
    let owned = c.clone();
    let follow = move |name: String, latest: Arc<Mutex<Vec<(String, Option<StatsEntry>)>>>| {
        let c = owned.clone();
        tokio::spawn(async move {
            let call = Call::get(format!("/containers/{name}/stats")).query("stream", "1");
            let Ok(res) = c.send(call).await else { return };
            let mut lines = JsonLines::new(res);
            while let Ok(Some(line)) = lines.next_line().await {
                if let Ok(v) = Value::from_json_slice(&line)
                    && let Ok(mut m) = latest.lock()
                    && let Some(slot) = m.iter_mut().find(|(n, _)| *n == name)
                {
                    slot.1 = Some(compute(&v));
                }
            }
        });
    };
    for n in &names {
        follow(n.clone(), latest.clone());
    }
    if a.containers.is_empty() {
        let c2 = c.clone();
        let latest2 = latest.clone();
        let all = a.all;
        let follow2 = follow.clone();
        tokio::spawn(async move {
            let f = r#"{"type":{"container":true},"event":{"start":true,"die":true,"destroy":true}}"#;
            let Ok(res) = c2.send(Call::get("/events").query("filters", f)).await else { return };
            let mut lines = JsonLines::new(res);
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(ev) = Value::from_json_slice(&line) else { continue };
                let id = ev.str_at(&["Actor", "ID"]);
                let action = ev.str_at(&["Action"]);
                let mut m = match latest2.lock() {
                    Ok(m) => m,
                    Err(_) => return,
                };
                let known = m.iter().any(|(n, _)| *n == id);
                match action.as_str() {
                    "start" if !known => {
                        m.push((id.clone(), None));
                        drop(m);
                        follow2(id, latest2.clone());
                    }
                    "die" if !all => m.retain(|(n, _)| *n != id),
                    "destroy" => m.retain(|(n, _)| *n != id),
                    _ => {}
                }
            }
        });
    }
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rows: Vec<Value> = latest
            .lock()
            .map(|m| m.iter().filter_map(|(_, e)| e.as_ref()).map(|e| stats_context(e, !a.no_trunc)).collect())
            .unwrap_or_default();
        let mut text = String::from("\x1b[2J\x1b[H");
        text.push_str(&format::render_list(&format, &headers(), &rows)?);
        ctx.io.print(&text);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn computes_the_trace_sample() {
        let trace = include_str!("../../../../fixtures/api-traces/stats.txt");
        let body = trace.lines().find(|l| l.starts_with("{\"read\"")).expect("stats body");
        let e = compute(&Value::from_json_str(body).unwrap());
        let row = stats_context(&e, true);
        let out = format::render_list(DEFAULT_FORMAT, &headers(), &[row]).unwrap();
        let seen: String = trace
            .lines()
            .skip_while(|l| !l.starts_with("#   $ docker stats"))
            .skip(1)
            .take_while(|l| !l.starts_with("#   [exit"))
            .map(|l| format!("{}\n", &l[4..]))
            .collect();
        assert_eq!(out, seen);
    }

    #[test]
    fn cpu_percent_uses_deltas() {
        let v = Value::from_json_str(
            r#"{"cpu_stats":{"cpu_usage":{"total_usage":200},"system_cpu_usage":2000,"online_cpus":2},
                "precpu_stats":{"cpu_usage":{"total_usage":100},"system_cpu_usage":1000},
                "memory_stats":{"usage":1000,"limit":4000,"stats":{"inactive_file":200}}}"#,
        )
        .unwrap();
        let e = compute(&v);
        assert!((e.cpu_percent - 20.0).abs() < 1e-9);
        assert_eq!(e.memory, 800.0);
        assert!((e.memory_percent - 20.0).abs() < 1e-9);
    }
}
