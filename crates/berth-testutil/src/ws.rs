//! A minimal WebSocket client (RFC 6455) for tests, over any byte stream (a unix socket
//! to the daemon, TCP to the dashboard): the handshake, masked frames out, frames in.

use std::io::{Read, Write};

pub struct WsClient<S: Read + Write> {
    s: S,
    /// The handshake's answer (status and headers).
    pub status: u16,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    Text(String),
    Binary(Vec<u8>),
    /// Close code and reason (0 when none).
    Close(u16, String),
}

impl<S: Read + Write> WsClient<S> {
    /// Sends the upgrade request for `path`; a non-101 answer is returned as an error
    /// with the status and body.
    pub fn connect(mut s: S, host: &str, path: &str, extra: &[(&str, &str)]) -> Result<WsClient<S>, (u16, String)> {
        let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n");
        for (k, v) in extra {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        s.write_all(req.as_bytes()).map_err(|e| (0, e.to_string()))?;
        let r = crate::http::read_response(&mut s).map_err(|e| (0, e.to_string()))?;
        if r.status != 101 {
            return Err((r.status, r.text()));
        }
        // RFC 6455's example key has this accept value.
        assert_eq!(r.header("sec-websocket-accept"), Some("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
        Ok(WsClient { s, status: r.status })
    }

    fn send_frame(&mut self, opcode: u8, data: &[u8]) {
        let mut f = vec![0x80 | opcode];
        let mask = [0x12u8, 0x34, 0x56, 0x78];
        match data.len() {
            n if n < 126 => f.push(0x80 | n as u8),
            n if n < 65536 => {
                f.push(0x80 | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(0x80 | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        f.extend_from_slice(&mask);
        f.extend(data.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.s.write_all(&f).expect("write frame");
    }

    pub fn send_binary(&mut self, data: &[u8]) {
        self.send_frame(2, data);
    }

    pub fn send_text(&mut self, text: &str) {
        self.send_frame(1, text.as_bytes());
    }

    pub fn close(&mut self) {
        self.send_frame(8, &1000u16.to_be_bytes());
    }

    /// The next data or close frame (pings are answered); None when the stream ends.
    pub fn next(&mut self) -> Option<Frame> {
        loop {
            let mut h = [0u8; 2];
            self.s.read_exact(&mut h).ok()?;
            let opcode = h[0] & 0x0f;
            let mut len = (h[1] & 0x7f) as u64;
            if len == 126 {
                let mut b = [0u8; 2];
                self.s.read_exact(&mut b).ok()?;
                len = u16::from_be_bytes(b) as u64;
            } else if len == 127 {
                let mut b = [0u8; 8];
                self.s.read_exact(&mut b).ok()?;
                len = u64::from_be_bytes(b);
            }
            let mut data = vec![0u8; len as usize];
            self.s.read_exact(&mut data).ok()?;
            match opcode {
                1 => return Some(Frame::Text(String::from_utf8_lossy(&data).into_owned())),
                2 => return Some(Frame::Binary(data)),
                8 => {
                    let code = if data.len() >= 2 { u16::from_be_bytes([data[0], data[1]]) } else { 0 };
                    let reason = String::from_utf8_lossy(data.get(2..).unwrap_or_default()).into_owned();
                    return Some(Frame::Close(code, reason));
                }
                9 => self.send_frame(10, &data),
                _ => {}
            }
        }
    }

    /// Reads data frames until their text contains `needle` (or the stream ends);
    /// returns everything read.
    pub fn read_until(&mut self, needle: &str) -> String {
        let mut seen = String::new();
        while !seen.contains(needle) {
            match self.next() {
                Some(Frame::Text(t)) => seen.push_str(&t),
                Some(Frame::Binary(b)) => seen.push_str(&String::from_utf8_lossy(&b)),
                Some(Frame::Close(..)) | None => break,
            }
        }
        seen
    }

    pub fn stream(&mut self) -> &mut S {
        &mut self.s
    }
}
