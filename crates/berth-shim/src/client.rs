//! A blocking client of the shim protocol (the daemon's async client is built on the
//! same [`protocol`](crate::protocol) functions).

use std::io::{self, BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use crate::protocol::{self, ExitStatus, Request, Response};

/// One request, one answer (Start, Kill, Resize, State...).
pub fn call(socket: &Path, req: &Request) -> io::Result<Response> {
    let (resp, _) = open(socket, req)?;
    Ok(resp)
}

/// Sends the request line and reads the answer line; returns the stream positioned
/// after it (for Attach and Exec, the frames follow).
pub fn open(socket: &Path, req: &Request) -> io::Result<(Response, BufReader<UnixStream>)> {
    let mut s = UnixStream::connect(socket)?;
    let mut line = serde_json::to_vec(req).map_err(io::Error::other)?;
    line.push(b'\n');
    s.write_all(&line)?;
    let mut r = BufReader::new(s);
    let mut answer = String::new();
    r.read_line(&mut answer)?;
    if answer.is_empty() {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "shim closed the connection"));
    }
    let resp = serde_json::from_str(&answer).map_err(io::Error::other)?;
    Ok((resp, r))
}

/// Reads one frame from a streaming connection; None at EOF.
pub fn read_frame(r: &mut impl Read) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut h = [0u8; protocol::HEADER_LEN];
    match r.read_exact(&mut h) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
    let mut payload = vec![0; len];
    r.read_exact(&mut payload)?;
    Ok(Some((h[0], payload)))
}

/// Output collected from a stream until its exit frame.
#[derive(Debug, Default)]
pub struct Collected {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    pub exit: Option<ExitStatus>,
}

/// Reads frames up to and including the exit frame (the last one the shim sends).
pub fn collect(r: &mut impl Read) -> io::Result<Collected> {
    let mut c = Collected::default();
    while let Some((kind, payload)) = read_frame(r)? {
        match kind {
            protocol::FRAME_STDOUT => c.stdout.extend(payload),
            protocol::FRAME_STDERR => c.stderr.extend(payload),
            protocol::FRAME_EXIT => {
                c.exit = serde_json::from_slice(&payload).ok();
                break;
            }
            _ => {}
        }
    }
    Ok(c)
}
