//! What exists of a container only while it runs: its shim, the fan-out of its output
//! to attached clients, and the way to its stdin.

use std::path::PathBuf;

use bytes::Bytes;
use tokio::sync::{broadcast, mpsc};

/// Output as attach clients receive it.
#[derive(Debug, Clone)]
pub enum Output {
    Stdout(Bytes),
    Stderr(Bytes),
    /// The process exited: attach streams of this run end here.
    End,
}

#[derive(Debug)]
pub enum StdinMsg {
    Data(Bytes),
    /// Close the container's stdin (an attached client hung up with StdinOnce).
    Close,
}

/// The running container's handles.
#[derive(Debug, Clone)]
pub struct Live {
    pub shim_socket: PathBuf,
    pub init_pid: i32,
    /// Present when the container keeps its stdin open (OpenStdin).
    pub stdin: Option<mpsc::Sender<StdinMsg>>,
}

pub fn output_channel() -> broadcast::Sender<Output> {
    // Slots hold chunks of up to 64 KiB; a client more than this far behind loses output.
    broadcast::channel(256).0
}
