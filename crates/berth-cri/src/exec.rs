//! ExecSync (run, collect, time out), and Exec / Attach / PortForward, which only check
//! the request and hand back a one-time URL of the streaming server.

use std::time::Duration;

use berth_types::exec::ExecCreateRequest;

use crate::Cri;
use crate::api;
use crate::error::{OrStatus, Result, invalid, not_found};
use crate::meta;
use crate::streaming::Session;

/// The most output ExecSync keeps per stream (the kubelet's limit on a probe's output).
const MAX_OUTPUT: usize = 16 << 20;

impl Cri {
    fn running_container(&self, id: &str) -> Result<meta::Ctr> {
        let c = meta::find_container(self.engine(), id).ok_or_else(|| not_found(format!("container {id} not found")))?;
        if !c.rec.state.status.is_alive() {
            return Err(tonic::Status::failed_precondition(format!("container {} is not running", c.id())));
        }
        Ok(c)
    }

    pub async fn exec_sync(&self, req: api::ExecSyncRequest) -> Result<api::ExecSyncResponse> {
        if req.cmd.is_empty() {
            return Err(invalid("no command to run"));
        }
        let c = self.running_container(&req.container_id)?;
        let engine = self.engine();
        let exec_id = engine
            .exec_create(c.id(), ExecCreateRequest { cmd: Some(req.cmd.clone()), attach_stdout: true, attach_stderr: true, ..Default::default() })
            .await
            .or_status()?;
        let inst = engine.exec_prepare(&exec_id).or_status()?;
        let mut session = match engine.exec_run(&inst).await {
            Ok(s) => s,
            Err(e) => {
                engine.exec_forget(&exec_id);
                return Err(tonic::Status::unknown(format!("failed to exec in container: {}", e.message)));
            }
        };
        // Whatever ends this call early (its timeout, or the client giving up, which drops
        // this future) must not leave the command running: the guard kills it.
        let mut guard = KillOnDrop { engine: engine.clone(), exec_id: exec_id.clone(), armed: true };
        let collect = async move {
            let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
            while let Some((stream, data)) = session.next().await {
                let buf = if stream == 2 { &mut stderr } else { &mut stdout };
                let room = MAX_OUTPUT.saturating_sub(buf.len());
                buf.extend_from_slice(&data[..data.len().min(room)]);
            }
            (stdout, stderr)
        };
        tokio::pin!(collect);
        let collected = if req.timeout > 0 {
            tokio::select! {
                out = &mut collect => Some(out),
                _ = tokio::time::sleep(Duration::from_secs(req.timeout as u64)) => None,
            }
        } else {
            Some((&mut collect).await)
        };
        let Some((stdout, stderr)) = collected else {
            // Killed and reaped before the answer: the caller may look for it next.
            guard.armed = false;
            let _ = engine.exec_kill(&exec_id, libc::SIGKILL).await;
            let _ = tokio::time::timeout(Duration::from_secs(5), &mut collect).await;
            engine.exec_forget(&exec_id);
            return Err(tonic::Status::deadline_exceeded(format!("command {:?} timed out after {}s", req.cmd, req.timeout)));
        };
        guard.armed = false;
        let code = inst.wait().await;
        engine.exec_forget(&exec_id);
        Ok(api::ExecSyncResponse { stdout, stderr, exit_code: code as i32 })
    }

    pub fn exec_url(&self, req: api::ExecRequest) -> Result<String> {
        if req.cmd.is_empty() {
            return Err(invalid("no command to run"));
        }
        check_streams(req.stdin, req.stdout, req.stderr, req.tty)?;
        let c = self.running_container(&req.container_id)?;
        Ok(self.streams.register(Session::Exec { container_id: c.rec.id.clone(), cmd: req.cmd, tty: req.tty, stdin: req.stdin, stdout: req.stdout, stderr: req.stderr }))
    }

    pub fn attach_url(&self, req: api::AttachRequest) -> Result<String> {
        check_streams(req.stdin, req.stdout, req.stderr, req.tty)?;
        let c = self.running_container(&req.container_id)?;
        if req.stdin && !c.meta.config.stdin {
            return Err(invalid(format!("container {} was not created with stdin: it cannot be attached to with stdin", c.id())));
        }
        Ok(self.streams.register(Session::Attach { container_id: c.rec.id.clone(), tty: c.meta.config.tty, stdin: req.stdin, stdout: req.stdout, stderr: req.stderr }))
    }

    pub fn port_forward_url(&self, req: api::PortForwardRequest) -> Result<String> {
        let sb = meta::find_sandbox(self.engine(), &req.pod_sandbox_id).ok_or_else(|| not_found(format!("pod sandbox {} not found", req.pod_sandbox_id)))?;
        if !sb.ready() {
            return Err(tonic::Status::failed_precondition(format!("pod sandbox {} is not ready", sb.id())));
        }
        for p in &req.port {
            if !(1..=65535).contains(p) {
                return Err(invalid(format!("invalid port {p}")));
            }
        }
        let netns = if sb.host_network() { None } else { Some(std::path::PathBuf::from(&sb.rec.network.sandbox_key)) };
        Ok(self.streams.register(Session::PortForward { sandbox_id: sb.rec.id.clone(), netns, ports: req.port }))
    }
}

/// Kills an exec'd process (and forgets it) unless disarmed.
struct KillOnDrop {
    engine: std::sync::Arc<berth_engine::Engine>,
    exec_id: String,
    armed: bool,
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let (engine, id) = (self.engine.clone(), self.exec_id.clone());
        tokio::spawn(async move {
            let _ = engine.exec_kill(&id, libc::SIGKILL).await;
            engine.exec_forget(&id);
        });
    }
}

/// The kubelet's rules for a stream request.
fn check_streams(stdin: bool, stdout: bool, stderr: bool, tty: bool) -> Result<()> {
    if !stdin && !stdout && !stderr {
        return Err(invalid("one of stdin, stdout, or stderr must be set"));
    }
    if tty && stderr {
        return Err(invalid("tty and stderr cannot both be set: a terminal has one output"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_rules() {
        assert!(check_streams(false, false, false, false).is_err());
        assert!(check_streams(true, true, true, true).is_err());
        assert!(check_streams(true, true, false, true).is_ok());
        assert!(check_streams(false, true, true, false).is_ok());
    }
}
