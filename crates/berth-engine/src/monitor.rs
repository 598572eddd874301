//! Watching running containers: each has one task reading its shim's stream (output
//! for attached clients, then the exit), which then records the exit, cleans up and
//! applies the restart policy. Also the restore of containers after a daemon restart.

use std::sync::Arc;
use std::time::Duration;

use berth_shim::protocol::{self, ExitStatus, Request};
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::mpsc;

use crate::container::live::{Live, Output, StdinMsg};
use crate::container::{Container, Status};
use crate::engine::Engine;
use crate::shimclient::{self, FrameReader};
use crate::util::now_rfc3339;

/// Starts the monitor of one run; returns the stdin sender when stdin is open.
pub(crate) fn spawn(
    engine: Arc<Engine>,
    c: Arc<Container>,
    generation: u64,
    mut reader: FrameReader,
    mut writer: OwnedWriteHalf,
    open_stdin: bool,
) -> Option<mpsc::Sender<StdinMsg>> {
    let (tx, mut rx) = mpsc::channel::<StdinMsg>(64);
    tokio::spawn(async move {
        while let Some(msg) = rx.recv().await {
            let r = match msg {
                StdinMsg::Data(d) => shimclient::write_frame(&mut writer, protocol::FRAME_STDIN, &d).await,
                StdinMsg::Close => shimclient::write_frame(&mut writer, protocol::FRAME_STDIN, &[]).await,
            };
            if r.is_err() {
                break;
            }
        }
    });
    let stdin = open_stdin.then(|| tx.clone());
    tokio::spawn(async move {
        // Keeps the writer task alive while this run lasts, even without stdin.
        let _keep = tx;
        let mut status: Option<ExitStatus> = None;
        loop {
            match shimclient::read_frame(&mut reader).await {
                Ok(Some((protocol::FRAME_STDOUT, d))) => {
                    c.send_output(Output::Stdout(d));
                }
                Ok(Some((protocol::FRAME_STDERR, d))) => {
                    c.send_output(Output::Stderr(d));
                }
                Ok(Some((protocol::FRAME_EXIT, d))) => {
                    status = serde_json::from_slice(&d).ok();
                    break;
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
        let status = match status {
            Some(s) => s,
            None => engine.lost_shim_status(&c).await,
        };
        engine.on_exit(&c, generation, status).await;
    });
    stdin
}

impl Engine {
    /// The shim's stream ended without an exit frame: read `exit.json`, or — if the shim
    /// died without writing it — kill what is left and report the loss.
    pub(crate) async fn lost_shim_status(&self, c: &Container) -> ExitStatus {
        let exit_file = self.state_dir_of(&c.id).join("exit.json");
        for _ in 0..50 {
            if let Ok(d) = std::fs::read(&exit_file)
                && let Ok(s) = serde_json::from_slice::<ExitStatus>(&d) {
                    return s;
                }
            // The shim may still be finishing: its socket disappears when it is done.
            if !self.shim_socket_of(&c.id).exists() {
                if let Ok(d) = std::fs::read(&exit_file)
                    && let Ok(s) = serde_json::from_slice::<ExitStatus>(&d) {
                        return s;
                    }
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let rec = c.snapshot();
        if let Ok(rt) = self.runtime_of(&rec) {
            let id = rec.id.clone();
            let shim_kind = rt.shim_kind();
            let _ = tokio::task::spawn_blocking(move || {
                let r = berth_shim::runtime::Runtime::new(&shim_kind);
                let _ = r.kill(&id, libc::SIGKILL, true);
                r.delete(&id)
            })
            .await;
        }
        ExitStatus { exit_code: 255, oom_killed: false, finished_at: now_rfc3339(), error: "container shim exited unexpectedly".into() }
    }

    /// Records an exit and cleans up; then restart policy or auto-remove.
    pub(crate) async fn on_exit(self: &Arc<Self>, c: &Arc<Container>, generation: u64, status: ExitStatus) {
        if c.generation() != generation {
            return;
        }
        c.send_output(Output::End);
        let rec = c.snapshot();
        let id = rec.id.clone();
        let started = crate::util::parse_rfc3339(&rec.state.started_at);
        let mut ph = crate::timing::Phases::new("exit", &id);
        self.end_execs(&id);
        // The exit first (waiters learn it at once), then the teardown, in parallel. A
        // container its policy restarts is `restarting` from this moment on, as in
        // dockerd (so it cannot be removed without force in between).
        c.mark_exited(generation);
        let restart = {
            let mut pre = c.snapshot();
            pre.state.exit_code = status.exit_code as i64;
            self.should_restart(&pre)
        };
        let rec = match c.update_state(true, |r| {
            r.state.status = if restart { Status::Restarting } else { Status::Exited };
            r.state.pid = 0;
            r.state.exit_code = status.exit_code as i64;
            r.state.oom_killed = status.oom_killed;
            r.state.finished_at = if status.finished_at.is_empty() { now_rfc3339() } else { status.finished_at.clone() };
            if !status.error.is_empty() {
                r.state.error = status.error.clone();
            }
            if let Some(h) = r.state.health.as_mut() {
                h.status = "unhealthy".into();
            }
        }) {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("recording exit of {id}: {e}");
                c.snapshot()
            }
        };
        ph.mark("record");
        let net = self.net.detach(self, &rec);
        let fs = async {
            for m in rec.mounts.iter().filter(|m| m.kind == "volume") {
                self.volumes.release(&m.name);
            }
            if let Err(e) = self.images.unmount_snapshot(&id, &self.rootfs_of(&id)).await {
                tracing::warn!("unmounting rootfs of {id}: {e}");
            }
            self.release_shm(&id);
            let _ = std::fs::remove_dir_all(self.state_dir_of(&id));
        };
        tokio::join!(net, fs);
        ph.mark("teardown");
        ph.finish();
        c.set_live(None);
        if status.oom_killed {
            self.emit_container(&rec, "oom", &[]);
        }
        self.emit_container(&rec, "die", &[("exitCode", status.exit_code.to_string())]);

        let ran_for = started.map(|s| (chrono::Utc::now() - s).num_milliseconds()).unwrap_or(0);
        if restart {
            let engine = self.clone();
            let c = c.clone();
            // Docker's back-off: 100ms doubling per quick failure, reset after 10s of running.
            let n = if ran_for > 10_000 { 0 } else { rec.restart_count.min(10) };
            let delay = Duration::from_millis((100u64 << n).min(60_000));
            let _ = c.update_state(false, |r| r.state.status = Status::Restarting);
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                let _op = c.op.lock().await;
                let r = c.snapshot();
                if r.state.status != Status::Restarting || r.state.manually_stopped {
                    if r.state.status == Status::Restarting {
                        let _ = c.update_state(false, |r| r.state.status = Status::Exited);
                    }
                    return;
                }
                let _ = c.update_state(false, |r| r.restart_count += 1);
                if let Err(e) = engine.start_locked(&c).await {
                    tracing::warn!("restarting {}: {e}", c.id);
                    let _ = c.update_state(false, |r| r.state.status = Status::Exited);
                }
            });
        } else if rec.host_config.auto_remove {
            self.spawn_auto_remove(c);
        }
    }

    /// Removes an `--rm` container on a task of its own, once its lock is free.
    fn spawn_auto_remove(self: &Arc<Self>, c: &Arc<Container>) {
        let engine = self.clone();
        let c = c.clone();
        tokio::spawn(async move {
            let _op = c.op.lock().await;
            // A `docker restart` (which held the lock) started it again: it stays, as
            // with dockerd, until that run ends.
            if c.status().is_alive() {
                return;
            }
            if let Err(e) = engine.remove_locked(&c, true, true).await {
                tracing::warn!("auto-removing {}: {e}", c.id);
            }
        });
    }

    fn should_restart(&self, rec: &crate::container::ContainerRecord) -> bool {
        if rec.state.manually_stopped {
            return false;
        }
        let p = &rec.host_config.restart_policy;
        match p.name.as_str() {
            "always" | "unless-stopped" => true,
            "on-failure" => rec.state.exit_code != 0 && (p.maximum_retry_count == 0 || rec.restart_count < p.maximum_retry_count),
            _ => false,
        }
    }

    /// After a daemon (re)start: reattach to shims of running containers, record the
    /// exits that happened meanwhile, and start what the restart policies ask for.
    pub(crate) async fn restore(self: Arc<Self>) {
        let mut to_start = Vec::new();
        for c in self.containers.list() {
            let rec = c.snapshot();
            match rec.state.status {
                Status::Running | Status::Paused | Status::Restarting => {
                    if self.reattach(&c).await {
                        continue;
                    }
                    let status = self.lost_shim_status(&c).await;
                    let generation = c.next_generation();
                    self.on_exit(&c, generation, status).await;
                }
                Status::Removing => {
                    // A removal cut short: finish it.
                    let engine = self.clone();
                    let c = c.clone();
                    tokio::spawn(async move {
                        let _ = c.update_state(false, |r| r.state.status = Status::Dead);
                        let _ = engine.remove_locked(&c, true, false).await;
                    });
                }
                _ if self.shim_socket_of(&rec.id).exists() && self.reattach(&c).await => {
                    // A start whose last record write a crash cut off: the container runs.
                    let pid = c.live().map(|l| l.init_pid as i64).unwrap_or(0);
                    let _ = c.update_state(false, |r| {
                        r.state.status = Status::Running;
                        r.state.pid = pid;
                        r.state.manually_stopped = false;
                        if r.state.started_at == crate::util::ZERO_TIME {
                            r.state.started_at = crate::util::now_rfc3339();
                        }
                    });
                }
                _ if rec.host_config.auto_remove && matches!(rec.state.status, Status::Created | Status::Exited | Status::Dead) => {
                    // A `--rm` container that is not running (it ended while the daemon
                    // was down, a crash prevented its removal, or it was only created):
                    // removed, as dockerd's restore does.
                    self.unmount_stale_rootfs(&rec.id).await;
                    self.spawn_auto_remove(&c);
                }
                _ => {
                    // Nothing runs: a start the daemon's death cut short (between mounting
                    // the rootfs and the shim) must not leave the rootfs mounted.
                    self.unmount_stale_rootfs(&rec.id).await;
                    let p = rec.host_config.restart_policy.name.as_str();
                    if (p == "always" || (p == "unless-stopped" && !rec.state.manually_stopped)) && rec.state.started_at != crate::util::ZERO_TIME {
                        to_start.push(c.clone());
                    }
                }
            }
        }
        self.clean_build_leftovers().await;
        let all: std::collections::HashSet<String> = self.containers.list().iter().map(|c| c.id.clone()).collect();
        self.images.remove_orphan_snapshots(&all).await;
        self.clean_build_workspaces();
        let live: std::collections::HashSet<String> = self.containers.list().iter().filter(|c| c.status().is_alive()).map(|c| c.id.clone()).collect();
        self.net.reconcile(&live).await;
        for c in to_start {
            let engine = self.clone();
            tokio::spawn(async move {
                let _op = c.op.lock().await;
                if !c.status().is_alive()
                    && let Err(e) = engine.start_locked(&c).await {
                        tracing::warn!("starting {} on daemon start: {e}", c.id);
                    }
            });
        }
    }

    /// Unmounts the rootfs of a container that does not run, whether or not the mount
    /// made it into the snapshot's record (found by crates/berth/tests/chaos.rs).
    async fn unmount_stale_rootfs(self: &Arc<Self>, id: &str) {
        let rootfs = self.rootfs_of(id);
        let _ = self.images.unmount_snapshot(id, &rootfs).await;
        if berth_image::mount::is_mount_point(&rootfs).unwrap_or(false) {
            tracing::info!("unmounting the rootfs a cut-short start left: {id}");
            let _ = nix::mount::umount2(&rootfs, nix::mount::MntFlags::MNT_DETACH);
        }
    }

    /// Reconnects to a live shim; false when there is none.
    async fn reattach(self: &Arc<Self>, c: &Arc<Container>) -> bool {
        let rec = c.snapshot();
        let socket = self.shim_socket_of(&rec.id);
        let open_stdin = rec.config.open_stdin;
        let Ok((resp, reader, writer)) = shimclient::open(&socket, &Request::Attach { stdin: open_stdin, stdout: true, stderr: true }).await else {
            return false;
        };
        if !resp.ok {
            return false;
        }
        let pid = resp.pid.unwrap_or(rec.state.pid as i32);
        let generation = c.next_generation();
        let stdin = spawn(self.clone(), c.clone(), generation, reader, writer, open_stdin);
        c.set_live(Some(Live { shim_socket: socket, init_pid: pid, stdin }));
        let _ = self.images.note_mounted(&rec.id, &self.rootfs_of(&rec.id)).await;
        for m in rec.mounts.iter().filter(|m| m.kind == "volume") {
            let _ = self.volumes.acquire(&m.name);
        }
        self.net.reattached(self, &rec).await;
        crate::health::spawn(self.clone(), c.clone(), generation);
        true
    }
}
