//! Health checks: the image's or container's HEALTHCHECK run in the container at its
//! interval, setting State.Health (starting → healthy / unhealthy) and emitting
//! `health_status` events, as Docker does.

use std::sync::Arc;
use std::time::Duration;

use berth_types::container::{Health, HealthcheckResult};

use crate::container::{Container, Status};
use crate::engine::Engine;
use crate::util::now_rfc3339;

const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);
const DEFAULT_RETRIES: i64 = 3;
const LOG_ENTRIES: usize = 5;

fn nanos(n: i64, default: Duration) -> Duration {
    if n > 0 { Duration::from_nanos(n as u64) } else { default }
}

/// Starts the checker of one run (no-op without a healthcheck).
pub(crate) fn spawn(engine: Arc<Engine>, c: Arc<Container>, generation: u64) {
    let Some(hc) = c.with(|r| r.config.healthcheck.clone()) else { return };
    let test = hc.test.clone().unwrap_or_default();
    let cmd: Vec<String> = match test.first().map(String::as_str) {
        Some("CMD") => test[1..].to_vec(),
        Some("CMD-SHELL") => {
            let shell = c.with(|r| r.config.shell.clone()).filter(|s| !s.is_empty()).unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into()]);
            let mut v = shell;
            v.push(test[1..].join(" "));
            v
        }
        _ => return, // NONE, or no test: no checks
    };
    if cmd.is_empty() {
        return;
    }
    let interval = nanos(hc.interval, DEFAULT_INTERVAL);
    let timeout = nanos(hc.timeout, DEFAULT_TIMEOUT);
    let start_period = nanos(hc.start_period, Duration::ZERO);
    let start_interval = nanos(hc.start_interval, Duration::from_secs(5));
    let retries = if hc.retries > 0 { hc.retries } else { DEFAULT_RETRIES };
    let _ = c.update_state(false, |r| r.state.health = Some(Health { status: "starting".into(), failing_streak: 0, log: Vec::new() }));
    tokio::spawn(async move {
        let began = tokio::time::Instant::now();
        loop {
            let in_start = began.elapsed() < start_period;
            tokio::time::sleep(if in_start && hc.start_interval > 0 { start_interval } else { interval }).await;
            if c.generation() != generation || c.status() == Status::Exited || c.live().is_none() {
                return;
            }
            if c.status() == Status::Paused {
                continue;
            }
            let start = now_rfc3339();
            let (code, output) = match engine.exec_capture(&c.id, cmd.clone(), timeout).await {
                Ok(r) => r,
                Err(e) => (-1, e.message),
            };
            if c.generation() != generation {
                return;
            }
            crate::metrics::Metrics::add(&engine.metrics.health_checks, 1);
            if code != 0 {
                crate::metrics::Metrics::add(&engine.metrics.health_checks_failed, 1);
            }
            let result = HealthcheckResult { start, end: now_rfc3339(), exit_code: code, output };
            let in_start = began.elapsed() < start_period;
            let mut changed = None;
            let rec = c.update_state(false, |r| {
                let h = r.state.health.get_or_insert_with(Health::default);
                let before = h.status.clone();
                if code == 0 {
                    h.failing_streak = 0;
                    h.status = "healthy".into();
                } else if !in_start {
                    h.failing_streak += 1;
                    if h.failing_streak >= retries {
                        h.status = "unhealthy".into();
                    }
                }
                h.log.push(result);
                if h.log.len() > LOG_ENTRIES {
                    h.log.remove(0);
                }
                if h.status != before {
                    changed = Some(h.status.clone());
                }
            });
            if let (Ok(rec), Some(status)) = (rec, changed) {
                engine.emit_container(&rec, &format!("health_status: {status}"), &[]);
            }
        }
    });
}
