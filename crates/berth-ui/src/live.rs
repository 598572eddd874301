//! `/ui/live`: one WebSocket per open page carries everything that changes — the
//! engine's own event stream as it happens, and once a second the resource usage of
//! the containers the page watches (`{"watch":"all"}` or `{"watch":[ids]}`). One
//! socket instead of a stats stream per container: a browser holds six HTTP/1.1
//! connections per host, and a list of 200 containers must not poll.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use berth_engine::Engine;
use berth_engine::metrics::ContainerMetrics;
use futures_util::{SinkExt, StreamExt};
use serde::Serialize;
use tokio::sync::broadcast::error::RecvError;

use crate::Ui;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Watch {
    Nothing,
    All,
    Some(HashSet<String>),
}

fn parse_watch(text: &str) -> Option<Watch> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    match v.get("watch")? {
        serde_json::Value::String(s) if s == "all" => Some(Watch::All),
        serde_json::Value::Array(ids) => {
            let set: HashSet<String> = ids.iter().filter_map(|i| i.as_str().map(str::to_string)).collect();
            Some(if set.is_empty() { Watch::Nothing } else { Watch::Some(set) })
        }
        serde_json::Value::Null => Some(Watch::Nothing),
        _ => None,
    }
}

/// One container's numbers in a stats message: CPU % since the last sample (100 =
/// one core), memory as `docker stats` counts it, and running totals for I/O.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Sample {
    pub id: String,
    pub cpu: f64,
    pub mem: u64,
    pub limit: u64,
    pub rx: u64,
    pub tx: u64,
    pub br: u64,
    pub bw: u64,
    pub pids: u64,
}

/// Turns readings into samples, remembering each container's last CPU reading.
#[derive(Default)]
pub struct Sampler {
    last: HashMap<String, (u64, Instant)>,
}

impl Sampler {
    pub fn sample(&mut self, readings: &[ContainerMetrics], now: Instant, host_memory: u64) -> Vec<Sample> {
        let mut seen = HashSet::new();
        let out = readings
            .iter()
            .map(|c| {
                seen.insert(c.id.clone());
                let total = c.stats.cpu.usage.total;
                let cpu = match self.last.insert(c.id.clone(), (total, now)) {
                    Some((before, at)) if total >= before && now > at => (total - before) as f64 / now.duration_since(at).as_nanos() as f64 * 100.0,
                    _ => 0.0,
                };
                let m = &c.stats.memory;
                let inactive = ["total_inactive_file", "inactive_file"].iter().find_map(|k| m.raw.get(*k)).copied().unwrap_or(0);
                let limit = if m.usage.limit == 0 || m.usage.limit > host_memory { host_memory } else { m.usage.limit };
                let (mut br, mut bw) = (0, 0);
                for e in &c.stats.blkio.io_service_bytes_recursive {
                    match e.op.to_ascii_lowercase().as_str() {
                        "read" => br += e.value,
                        "write" => bw += e.value,
                        _ => {}
                    }
                }
                Sample {
                    id: c.id.clone(),
                    cpu: (cpu * 100.0).round() / 100.0,
                    mem: m.usage.usage.saturating_sub(inactive),
                    limit,
                    rx: c.networks.iter().map(|(_, n)| n.rx_bytes).sum(),
                    tx: c.networks.iter().map(|(_, n)| n.tx_bytes).sum(),
                    br,
                    bw,
                    pids: c.stats.pids.current,
                }
            })
            .collect();
        self.last.retain(|id, _| seen.contains(id));
        out
    }
}

fn host_memory() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| t.lines().find_map(|l| l.strip_prefix("MemTotal:").and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())))
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

pub async fn upgrade(State(ui): State<Arc<Ui>>, ws: WebSocketUpgrade) -> Response {
    ws.on_upgrade(move |socket| run(ui.engine.clone(), socket))
}

async fn run(engine: Arc<Engine>, socket: WebSocket) {
    let (mut tx, mut rx) = socket.split();
    let (_, mut events) = engine.events.subscribe();
    let mut watch = Watch::Nothing;
    let mut sampler = Sampler::default();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mem = host_memory();
    loop {
        tokio::select! {
            m = rx.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    if let Some(w) = parse_watch(t.as_str()) {
                        watch = w;
                        // Answer at once rather than at the next tick.
                        tick.reset_immediately();
                    }
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                _ => {}
            },
            ev = events.recv() => {
                let msg = match ev {
                    Ok(ev) => serde_json::json!({"type": "event", "event": ev}),
                    // Too slow a reader: tell the page to reload its lists.
                    Err(RecvError::Lagged(_)) => serde_json::json!({"type": "lagged"}),
                    Err(RecvError::Closed) => return,
                };
                if tx.send(Message::Text(msg.to_string().into())).await.is_err() {
                    return;
                }
            }
            _ = tick.tick() => {
                let readings = match &watch {
                    Watch::Nothing => continue,
                    Watch::All => engine.container_metrics(None).await,
                    Watch::Some(ids) => engine.container_metrics(Some(ids)).await,
                };
                let samples = sampler.sample(&readings, Instant::now(), mem);
                let msg = serde_json::json!({"type": "stats", "stats": samples});
                if tx.send(Message::Text(msg.to_string().into())).await.is_err() {
                    return;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watch_messages() {
        assert_eq!(parse_watch(r#"{"watch":"all"}"#), Some(Watch::All));
        assert_eq!(parse_watch(r#"{"watch":["a","b"]}"#), Some(Watch::Some(["a".to_string(), "b".to_string()].into())));
        assert_eq!(parse_watch(r#"{"watch":[]}"#), Some(Watch::Nothing));
        assert_eq!(parse_watch("nope"), None);
    }

    #[test]
    fn cpu_percent_from_successive_readings() {
        let mut s = Sampler::default();
        let mut c = ContainerMetrics { id: "a".into(), ..Default::default() };
        c.stats.cpu.usage.total = 1_000_000_000;
        c.stats.memory.usage.usage = 5000;
        c.stats.memory.raw.insert("total_inactive_file".into(), 1000);
        let t0 = Instant::now();
        assert_eq!(s.sample(std::slice::from_ref(&c), t0, 1 << 30)[0].cpu, 0.0);
        c.stats.cpu.usage.total += 500_000_000;
        let out = s.sample(std::slice::from_ref(&c), t0 + Duration::from_secs(1), 1 << 30);
        assert_eq!(out[0].cpu, 50.0);
        assert_eq!(out[0].mem, 4000);
        assert_eq!(out[0].limit, 1 << 30);
        // A container that went away is forgotten.
        s.sample(&[], t0 + Duration::from_secs(2), 1 << 30);
        assert!(s.last.is_empty());
    }
}
