//! What attach needs from the engine: the output of the container's runs, its stdin,
//! and terminal resizes.

use std::sync::Arc;
use std::time::Duration;

use berth_shim::protocol::Request;
use tokio::sync::{broadcast, mpsc};

use crate::container::Container;
use crate::container::live::{Output, StdinMsg};
use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::shimclient;

impl Engine {
    /// Subscribes to the container's output (now, or from its next start).
    pub fn attach_output(&self, key: &str) -> Result<(Arc<Container>, broadcast::Receiver<Output>)> {
        let c = self.container(key)?;
        let rx = c.subscribe_output();
        self.emit_container(&c.snapshot(), "attach", &[]);
        Ok((c, rx))
    }

    /// The container's stdin, waiting for it to start if it has not yet (clients attach
    /// before start and may type at once). None if it has no open stdin or stops first.
    pub async fn stdin_of(&self, c: &Container) -> Option<mpsc::Sender<StdinMsg>> {
        if !c.with(|r| r.config.open_stdin) {
            return None;
        }
        let mut rx = c.watch();
        loop {
            if let Some(l) = c.live()
                && let Some(s) = l.stdin {
                    return Some(s);
                }
            // Wait for a state change (start), but poll too: live is set before status.
            if let Ok(Err(_)) = tokio::time::timeout(Duration::from_millis(50), rx.changed()).await { return None }
            if rx.borrow().removed {
                return None;
            }
        }
    }

    pub async fn resize_container(&self, key: &str, height: u16, width: u16) -> Result<()> {
        let c = self.container(key)?;
        let live = c.live().ok_or_else(|| Error::conflict(format!("Container {} is not running", c.id)))?;
        let r = shimclient::call(&live.shim_socket, &Request::Resize { exec_id: None, height, width })
            .await
            .map_err(|e| Error::system(e.to_string()))?;
        if r.ok { Ok(()) } else { Err(Error::invalid(format!("cannot resize: {}", r.error))) }
    }
}
