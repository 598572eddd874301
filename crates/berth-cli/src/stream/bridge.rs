//! Between blocking tar code (on a `spawn_blocking` thread) and async HTTP bodies:
//! bounded channels of chunks, so a large copy streams in constant memory.

use std::io::{Read, Write};

use bytes::Bytes;
use futures_util::stream;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use tokio::sync::mpsc;

use crate::client::Body;

/// How many chunks may wait in a channel (with 64 KiB writes, about 512 KiB).
pub const DEPTH: usize = 8;

/// A blocking reader over chunks sent from async code; the end of the channel is EOF.
pub struct ChunkReader {
    rx: mpsc::Receiver<std::io::Result<Bytes>>,
    cur: Bytes,
}

impl ChunkReader {
    pub fn new(rx: mpsc::Receiver<std::io::Result<Bytes>>) -> ChunkReader {
        ChunkReader { rx, cur: Bytes::new() }
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.cur = b,
                Some(Err(e)) => return Err(e),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur.split_to(n));
        Ok(n)
    }
}

/// A blocking writer whose writes become chunks of an async request body.
pub struct ChunkWriter {
    tx: mpsc::Sender<std::io::Result<Bytes>>,
}

impl ChunkWriter {
    pub fn new(tx: mpsc::Sender<std::io::Result<Bytes>>) -> ChunkWriter {
        ChunkWriter { tx }
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tx
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the request was abandoned"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A request body fed by a channel; an `Err` item aborts the request.
pub fn channel_body(rx: mpsc::Receiver<std::io::Result<Bytes>>) -> Body {
    let s = stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item.map(Frame::data), rx)) });
    BodyExt::boxed(StreamBody::new(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_sees_chunks_in_order_then_eof() {
        let (tx, rx) = mpsc::channel(DEPTH);
        let feeder = std::thread::spawn(move || {
            for part in ["hel", "lo ", "world"] {
                tx.blocking_send(Ok(Bytes::from(part))).unwrap();
            }
        });
        let mut s = String::new();
        ChunkReader::new(rx).read_to_string(&mut s).unwrap();
        feeder.join().unwrap();
        assert_eq!(s, "hello world");
    }

    #[test]
    fn writer_errors_once_the_reader_is_gone() {
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        assert_eq!(ChunkWriter::new(tx).write(b"x").unwrap_err().kind(), std::io::ErrorKind::BrokenPipe);
    }
}
