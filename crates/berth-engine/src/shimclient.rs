//! The daemon's async side of the shim protocol (see berth_shim::protocol).

use std::io;
use std::path::Path;

use berth_shim::protocol::{self, Request, Response};
use bytes::Bytes;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

pub type FrameReader = BufReader<OwnedReadHalf>;

/// Sends `req` and reads the answer line; the halves carry the frames that follow.
pub async fn open(socket: &Path, req: &Request) -> io::Result<(Response, FrameReader, OwnedWriteHalf)> {
    let s = UnixStream::connect(socket).await?;
    let (r, mut w) = s.into_split();
    let mut line = serde_json::to_vec(req).map_err(io::Error::other)?;
    line.push(b'\n');
    w.write_all(&line).await?;
    let mut r = BufReader::new(r);
    let mut answer = String::new();
    r.read_line(&mut answer).await?;
    if answer.is_empty() {
        return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "shim closed the connection"));
    }
    let resp: Response = serde_json::from_str(&answer).map_err(io::Error::other)?;
    Ok((resp, r, w))
}

/// One request, one answer.
pub async fn call(socket: &Path, req: &Request) -> io::Result<Response> {
    Ok(open(socket, req).await?.0)
}

pub async fn read_frame(r: &mut FrameReader) -> io::Result<Option<(u8, Bytes)>> {
    let mut h = [0u8; protocol::HEADER_LEN];
    match r.read_exact(&mut h).await {
        Ok(_) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes([h[4], h[5], h[6], h[7]]) as usize;
    let mut payload = vec![0; len];
    r.read_exact(&mut payload).await?;
    Ok(Some((h[0], Bytes::from(payload))))
}

pub async fn write_frame(w: &mut OwnedWriteHalf, kind: u8, data: &[u8]) -> io::Result<()> {
    w.write_all(&protocol::frame(kind, data)).await
}
