//! Pumping a hijacked attach/exec connection: our stdin to the container (watching
//! for the detach keys on a TTY), its output to our stdout/stderr (demultiplexing
//! stdcopy frames when there is no TTY). Mirrors docker's `hijackedIOStreamer`.

use std::io::{Read, Write};

use berth_types::stdcopy::{Decoder, Stream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;

use super::escape::{EscapeProxy, Fed};
use super::term::RawMode;
use crate::client::{BodyStream, Hijacked};
use crate::error::{Error, Result};
use crate::io::Sink;

/// Chunks of input for the container.
pub type Input = mpsc::Receiver<Vec<u8>>;

/// Reads our stdin on a plain thread (a blocked read must not hold up the async
/// runtime at exit) and hands the chunks over; the channel closes at EOF.
pub fn stdin_input() -> Input {
    let (tx, rx) = mpsc::channel(16);
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin();
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        break;
                    }
                }
            }
        }
    });
    rx
}

pub struct AttachOptions {
    pub tty: bool,
    /// Input to forward (None: stdin is not attached).
    pub input: Option<Input>,
    pub stdout: Option<Sink>,
    pub stderr: Option<Sink>,
    pub detach_keys: Vec<u8>,
    /// Put our terminal in raw mode while attached.
    pub raw_terminal: bool,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The container's output ended.
    Finished,
    /// The user typed the detach keys.
    Detached,
}

fn write_out(sink: &mut Option<Sink>, data: &[u8]) {
    if let Some(s) = sink {
        let _ = s.write_all(data);
        let _ = s.flush();
    }
}

pub async fn stream(conn: Hijacked, opts: AttachOptions) -> Result<Outcome> {
    let AttachOptions { tty, input, mut stdout, mut stderr, detach_keys, raw_terminal } = opts;
    let (mut rd, mut wr) = tokio::io::split(conn);
    let raw = if raw_terminal && input.is_some() && tty {
        Some(RawMode::stdin().map_err(|e| Error::msg(format!("unable to set IO streams as raw terminal: {e}")))?)
    } else {
        None
    };

    let output = async move {
        let mut buf = vec![0u8; 32 * 1024];
        let mut dec = Decoder::new();
        loop {
            let n = rd.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            if tty {
                write_out(&mut stdout, &buf[..n]);
                continue;
            }
            dec.push(&buf[..n]);
            while let Some((s, payload)) = dec.next_frame().map_err(|e| Error::msg(e.to_string()))? {
                match s {
                    Stream::Stdout => write_out(&mut stdout, &payload),
                    Stream::Stderr => write_out(&mut stderr, &payload),
                    _ => {}
                }
            }
        }
        Ok::<(), Error>(())
    };

    let send = async move {
        if let Some(mut rx) = input {
            // docker only watches for detach keys on a TTY.
            let mut proxy = EscapeProxy::new(if tty { detach_keys } else { Vec::new() });
            while let Some(chunk) = rx.recv().await {
                match proxy.feed(&chunk) {
                    Fed::Data(d) => {
                        if wr.write_all(&d).await.is_err() {
                            break;
                        }
                    }
                    Fed::Detach(d) => {
                        let _ = wr.write_all(&d).await;
                        return true;
                    }
                }
            }
        }
        // Half-close: the container sees EOF on its stdin, output keeps flowing.
        let _ = wr.shutdown().await;
        false
    };

    tokio::pin!(output);
    tokio::pin!(send);
    let outcome = tokio::select! {
        r = &mut output => { r?; Outcome::Finished }
        detached = &mut send => {
            if detached { Outcome::Detached } else { output.await?; Outcome::Finished }
        }
    };
    drop(raw);
    Ok(outcome)
}

/// Copies a logs body to stdout/stderr: raw with a TTY, demultiplexed without.
pub async fn copy_logs(mut body: BodyStream, tty: bool, mut out: Sink, mut err: Sink) -> Result<()> {
    let mut dec = Decoder::new();
    while let Some(chunk) = body.chunk().await? {
        if tty {
            out.write_all(&chunk)?;
            continue;
        }
        dec.push(&chunk);
        while let Some((s, payload)) = dec.next_frame().map_err(|e| Error::msg(e.to_string()))? {
            match s {
                Stream::Stderr => err.write_all(&payload)?,
                _ => out.write_all(&payload)?,
            }
        }
    }
    out.flush()?;
    Ok(())
}
