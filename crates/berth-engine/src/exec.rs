//! Exec instances: create, start (streamed through the shim), resize, inspect.

use std::sync::{Arc, Mutex};

use berth_shim::protocol::{self, ExitStatus, Request};
use berth_types::exec::{ExecCreateRequest, ExecInspect, ProcessConfig};
use tokio::net::unix::OwnedWriteHalf;

use crate::container::{Status, spec};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::shimclient::{self, FrameReader};
use crate::util::random_id;

#[derive(Debug, Default, Clone)]
pub struct ExecState {
    pub started: bool,
    pub running: bool,
    pub exit_code: Option<i64>,
    pub pid: i64,
}

#[derive(Debug)]
pub struct ExecInstance {
    pub id: String,
    pub container_id: String,
    pub config: ExecCreateRequest,
    state: Mutex<ExecState>,
    done: tokio::sync::watch::Sender<bool>,
}

impl ExecInstance {
    pub fn state(&self) -> ExecState {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set(&self, f: impl FnOnce(&mut ExecState)) {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()));
    }

    /// Records the end of the process (once).
    pub fn finish(&self, code: i64) {
        let mut first = false;
        self.set(|s| {
            if s.running || s.exit_code.is_none() {
                first = true;
            }
            s.running = false;
            if s.exit_code.is_none() {
                s.exit_code = Some(code);
            }
        });
        if first {
            // send_replace: `send` drops the value when nobody is subscribed yet, and a
            // later wait() would never see the end.
            self.done.send_replace(true);
        }
    }

    pub async fn wait(&self) -> i64 {
        let mut rx = self.done.subscribe();
        while !*rx.borrow() {
            if rx.changed().await.is_err() {
                break;
            }
        }
        self.state().exit_code.unwrap_or(-1)
    }
}

/// A started exec's stream: frames from the shim (stdout, stderr, exit) and the way to
/// its stdin.
pub struct ExecSession {
    reader: FrameReader,
    writer: OwnedWriteHalf,
    pub instance: Arc<ExecInstance>,
}

/// The output half of a split [`ExecSession`].
pub struct ExecOutput {
    reader: FrameReader,
    pub instance: Arc<ExecInstance>,
}

/// The stdin half of a split [`ExecSession`].
pub struct ExecInput {
    writer: OwnedWriteHalf,
}

impl ExecOutput {
    /// Reads the next output frame (1 stdout, 2 stderr); records the exit when it
    /// comes. None at the end.
    pub async fn next(&mut self) -> Option<(u8, bytes::Bytes)> {
        next_frame(&mut self.reader, &self.instance).await
    }
}

impl ExecInput {
    pub async fn send(&mut self, data: &[u8]) -> std::io::Result<()> {
        shimclient::write_frame(&mut self.writer, protocol::FRAME_STDIN, data).await
    }

    pub async fn close(&mut self) -> std::io::Result<()> {
        shimclient::write_frame(&mut self.writer, protocol::FRAME_STDIN, &[]).await
    }
}

async fn next_frame(reader: &mut FrameReader, instance: &ExecInstance) -> Option<(u8, bytes::Bytes)> {
    match shimclient::read_frame(reader).await {
        Ok(Some((protocol::FRAME_EXIT, d))) => {
            let code = serde_json::from_slice::<ExitStatus>(&d).map(|s| s.exit_code as i64).unwrap_or(-1);
            instance.finish(code);
            None
        }
        Ok(Some(f)) => Some(f),
        Ok(None) | Err(_) => {
            instance.finish(instance.state().exit_code.unwrap_or(-1));
            None
        }
    }
}

impl ExecSession {
    pub fn split(self) -> (ExecOutput, ExecInput) {
        (ExecOutput { reader: self.reader, instance: self.instance }, ExecInput { writer: self.writer })
    }

    /// Reads the next output frame; records the exit when it comes. None at the end.
    pub async fn next(&mut self) -> Option<(u8, bytes::Bytes)> {
        next_frame(&mut self.reader, &self.instance).await
    }

    pub async fn send_stdin(&mut self, data: &[u8]) -> std::io::Result<()> {
        shimclient::write_frame(&mut self.writer, protocol::FRAME_STDIN, data).await
    }

    pub async fn close_stdin(&mut self) -> std::io::Result<()> {
        shimclient::write_frame(&mut self.writer, protocol::FRAME_STDIN, &[]).await
    }
}

impl Engine {
    pub async fn exec_create(&self, key: &str, req: ExecCreateRequest) -> Result<String> {
        let c = self.container(key)?;
        let rec = c.snapshot();
        match rec.state.status {
            Status::Running => {}
            Status::Paused => return Err(Error::conflict(format!("Container {} is paused, unpause the container before exec", rec.id))),
            Status::Restarting => return Err(Error::conflict(format!("Container {} is restarting, wait until the container is running", rec.id))),
            _ => return Err(Error::conflict(format!("container {} is not running", rec.id))),
        }
        if req.cmd.as_ref().is_none_or(|c| c.is_empty()) {
            return Err(Error::invalid("No exec command specified"));
        }
        let id = random_id();
        let inst = Arc::new(ExecInstance {
            id: id.clone(),
            container_id: rec.id.clone(),
            config: req,
            state: Mutex::new(ExecState::default()),
            done: tokio::sync::watch::channel(false).0,
        });
        let cmd = inst.config.cmd.clone().unwrap_or_default().join(" ");
        self.execs.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone(), inst);
        self.emit_container(&rec, &format!("exec_create: {cmd}"), &[("execID", id.clone())]);
        Ok(id)
    }

    pub fn exec_get(&self, id: &str) -> Result<Arc<ExecInstance>> {
        self.execs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
            .ok_or_else(|| Error::not_found(format!("No such exec instance: {id}")))
    }

    /// Checks an exec can start and marks it started (before the API hijacks the
    /// connection; errors here are ordinary HTTP errors).
    pub fn exec_prepare(&self, id: &str) -> Result<Arc<ExecInstance>> {
        let inst = self.exec_get(id)?;
        let c = self.container(&inst.container_id)?;
        if c.status() != Status::Running {
            return Err(Error::conflict(format!("container {} is not running", inst.container_id)));
        }
        let mut err = None;
        inst.set(|s| {
            if s.started {
                err = Some(Error::conflict(format!("Error: Exec command {id} is already running")));
            } else {
                s.started = true;
                s.running = true;
            }
        });
        match err {
            Some(e) => Err(e),
            None => Ok(inst),
        }
    }

    /// Starts a prepared exec in the container. An error here happens after the hijack:
    /// the caller reports it in the stream, and the exec's exit code tells 126/127.
    pub async fn exec_run(&self, inst: &Arc<ExecInstance>) -> Result<ExecSession> {
        let c = self.container(&inst.container_id)?;
        let rec = c.snapshot();
        let live = c.live().ok_or_else(|| Error::conflict(format!("container {} is not running", rec.id)))?;
        let cfg = &inst.config;
        let process = spec::exec_process(
            &rec,
            &self.rootfs_of(&rec.id),
            cfg.cmd.as_deref().unwrap_or(&[]),
            cfg.env.as_deref().unwrap_or(&[]),
            &cfg.user,
            &cfg.working_dir,
            cfg.tty,
            cfg.privileged,
        );
        let process = match process {
            Ok(mut p) => {
                spec::apply_no_new_privileges(&mut p, &rec.host_config, self.cfg.no_new_privileges);
                p
            }
            Err(e) => {
                inst.finish(126);
                return Err(e);
            }
        };
        let req = Request::Exec { exec_id: inst.id.clone(), process, tty: cfg.tty, stdin: cfg.attach_stdin };
        let (resp, reader, writer) = match shimclient::open(&live.shim_socket, &req).await {
            Ok(x) => x,
            Err(e) => {
                inst.finish(126);
                return Err(Error::system(format!("exec: {e}")));
            }
        };
        if !resp.ok {
            let code = if resp.error.contains("not found") || resp.error.contains("no such") { 127 } else { 126 };
            inst.finish(code);
            return Err(Error::invalid(format!("OCI runtime exec failed: {}", resp.error)));
        }
        inst.set(|s| s.pid = resp.pid.unwrap_or(0) as i64);
        if let (Some([h, w]), true) = (cfg.console_size, cfg.tty)
            && h > 0 && w > 0 {
                let _ = self.exec_resize(&inst.id, h as u16, w as u16).await;
            }
        let cmd = cfg.cmd.clone().unwrap_or_default().join(" ");
        self.emit_container(&rec, &format!("exec_start: {cmd}"), &[("execID", inst.id.clone())]);
        Ok(ExecSession { reader, writer, instance: inst.clone() })
    }

    /// A detached exec: start it and let its output go.
    pub async fn exec_detached(self: &Arc<Self>, inst: Arc<ExecInstance>) -> Result<()> {
        let mut s = self.exec_run(&inst).await?;
        let engine = self.clone();
        tokio::spawn(async move {
            while s.next().await.is_some() {}
            engine.exec_finished(&s.instance);
        });
        Ok(())
    }

    /// Emits exec_die once the exec has ended.
    pub fn exec_finished(&self, inst: &ExecInstance) {
        if let Ok(c) = self.container(&inst.container_id) {
            let code = inst.state().exit_code.unwrap_or(-1);
            self.emit_container(&c.snapshot(), "exec_die", &[("execID", inst.id.clone()), ("exitCode", code.to_string())]);
        }
    }

    pub async fn exec_resize(&self, id: &str, h: u16, w: u16) -> Result<()> {
        let inst = self.exec_get(id)?;
        let c = self.container(&inst.container_id)?;
        let live = c.live().ok_or_else(|| Error::conflict(format!("container {} is not running", inst.container_id)))?;
        let r = shimclient::call(&live.shim_socket, &Request::Resize { exec_id: Some(id.to_string()), height: h, width: w })
            .await
            .map_err(|e| Error::system(e.to_string()))?;
        if r.ok { Ok(()) } else { Err(Error::invalid(r.error)) }
    }

    pub fn exec_inspect(&self, id: &str) -> Result<ExecInspect> {
        let inst = self.exec_get(id)?;
        let s = inst.state();
        let cfg = &inst.config;
        let cmd = cfg.cmd.clone().unwrap_or_default();
        Ok(ExecInspect {
            can_remove: false,
            container_id: inst.container_id.clone(),
            detach_keys: cfg.detach_keys.clone(),
            exit_code: s.exit_code,
            id: inst.id.clone(),
            open_stderr: cfg.attach_stderr,
            open_stdin: cfg.attach_stdin,
            open_stdout: cfg.attach_stdout,
            process_config: ProcessConfig {
                arguments: cmd.iter().skip(1).cloned().collect(),
                entrypoint: cmd.first().cloned().unwrap_or_default(),
                privileged: cfg.privileged,
                tty: cfg.tty,
                user: cfg.user.clone(),
            },
            running: s.running,
            pid: s.pid,
        })
    }

    /// IDs of the container's execs that are running (inspect's ExecIDs).
    pub(crate) fn exec_ids_of(&self, container_id: &str) -> Vec<String> {
        self.execs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|e| e.container_id == container_id && e.state().running)
            .map(|e| e.id.clone())
            .collect()
    }

    /// The container stopped: its execs are over; forget finished ones.
    pub(crate) fn end_execs(&self, container_id: &str) {
        let mut execs = self.execs.lock().unwrap_or_else(|p| p.into_inner());
        for e in execs.values() {
            if e.container_id == container_id && e.state().running {
                e.finish(e.state().exit_code.unwrap_or(137));
            }
        }
        execs.retain(|_, e| e.container_id != container_id || !e.state().started || e.state().running);
    }

    /// Runs a command in the container and collects its output (health checks).
    pub(crate) async fn exec_capture(&self, container_id: &str, cmd: Vec<String>, timeout: std::time::Duration) -> Result<(i64, String)> {
        let c = self.container(container_id)?;
        let rec = c.snapshot();
        let live = c.live().ok_or_else(|| Error::conflict("container is not running"))?;
        let mut process = spec::exec_process(&rec, &self.rootfs_of(&rec.id), &cmd, &[], "", "", false, false)?;
        spec::apply_no_new_privileges(&mut process, &rec.host_config, self.cfg.no_new_privileges);
        let exec_id = random_id();
        let (resp, mut reader, _w) = shimclient::open(&live.shim_socket, &Request::Exec { exec_id: exec_id.clone(), process, tty: false, stdin: false })
            .await
            .map_err(|e| Error::system(e.to_string()))?;
        if !resp.ok {
            return Ok((if resp.error.contains("not found") || resp.error.contains("no such") { 127 } else { 126 }, resp.error));
        }
        let mut out = Vec::new();
        let collect = async {
            loop {
                match shimclient::read_frame(&mut reader).await {
                    Ok(Some((protocol::FRAME_EXIT, d))) => {
                        return serde_json::from_slice::<ExitStatus>(&d).map(|s| s.exit_code as i64).unwrap_or(-1);
                    }
                    Ok(Some((_, d))) => {
                        if out.len() < 4096 {
                            out.extend_from_slice(&d[..d.len().min(4096 - out.len())]);
                        }
                    }
                    _ => return -1,
                }
            }
        };
        match tokio::time::timeout(timeout, collect).await {
            Ok(code) => Ok((code, String::from_utf8_lossy(&out).into_owned())),
            Err(_) => {
                let _ = shimclient::call(&live.shim_socket, &Request::KillExec { exec_id, signal: libc::SIGKILL }).await;
                Ok((-1, format!("Health check exceeded timeout ({}s)", timeout.as_secs())))
            }
        }
    }
}
