//! The WebSocket side of the streaming server (RFC 6455, server end), for clients that
//! ask for it (`crictl --transport websocket`, critest's `-websocket-*`, kubectl through
//! newer API servers):
//!
//! - exec and attach speak the channel protocols (`v5.channel.k8s.io` .. `channel.k8s.io`,
//!   and the base64 variants): each message starts with its channel — 0 stdin, 1 stdout,
//!   2 stderr, 3 error (the final status), 4 resize; v5 adds 255 `<channel>` to close a
//!   channel (the client's stdin EOF).
//! - port-forward tunnels SPDY (`SPDY/3.1+portforward.k8s.io`): the message payloads are
//!   the bytes of a SPDY session, served exactly as over a plain upgrade.

use std::sync::Arc;

use base64::Engine as _;
use berth_engine::Engine;
use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

use super::Session;
use super::remotecommand::{self, Input, Out};

/// Channel protocols for exec and attach, in the order berth prefers them.
const CHANNEL_PROTOCOLS: &[&str] =
    &["v5.channel.k8s.io", "v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io", "channel.k8s.io", "v4.base64.channel.k8s.io", "base64.channel.k8s.io"];
/// Port-forward over WebSocket: a SPDY session tunnelled in binary messages.
const TUNNEL_PROTOCOL: &str = "SPDY/3.1+portforward.k8s.io";
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

const OP_CONT: u8 = 0x0;
const OP_TEXT: u8 = 0x1;
const OP_BINARY: u8 = 0x2;
const OP_CLOSE: u8 = 0x8;
const OP_PING: u8 = 0x9;
const OP_PONG: u8 = 0xA;
/// Messages larger than this are refused (the client's stdin arrives in small pieces).
const MAX_MESSAGE: usize = 16 << 20;

/// Answers the upgrade (101 with the chosen subprotocol) and serves the session.
pub fn accept(engine: Arc<Engine>, session: Session, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let h = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
    let Some(key) = h("sec-websocket-key") else { return super::plain(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key") };
    if h("sec-websocket-version").as_deref() != Some("13") {
        return super::plain(StatusCode::BAD_REQUEST, "only WebSocket version 13 is spoken here");
    }
    let offered: Vec<String> = req
        .headers()
        .get_all("sec-websocket-protocol")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect();
    let pf = matches!(session, Session::PortForward { .. });
    let chosen = if pf {
        if !offered.iter().any(|o| o == TUNNEL_PROTOCOL) {
            return super::plain(StatusCode::FORBIDDEN, &format!("port-forward over WebSocket needs the {TUNNEL_PROTOCOL} subprotocol"));
        }
        TUNNEL_PROTOCOL.to_string()
    } else if offered.is_empty() {
        String::new()
    } else {
        match CHANNEL_PROTOCOLS.iter().find(|p| offered.iter().any(|o| o == *p)) {
            Some(p) => p.to_string(),
            None => return super::plain(StatusCode::FORBIDDEN, &format!("none of the offered subprotocols {offered:?} is supported")),
        }
    };
    let accept_key = base64::engine::general_purpose::STANDARD.encode(sha1(format!("{key}{GUID}").as_bytes()));
    let proto = chosen.clone();
    let mut req = req;
    tokio::spawn(async move {
        let Ok(up) = hyper::upgrade::on(&mut req).await else { return };
        let io = TokioIo::new(up);
        match session {
            Session::PortForward { netns, ports, .. } => tunnel_port_forward(io, netns, ports).await,
            other => serve_channels(engine, other, &proto, io).await,
        }
    });
    let mut resp = Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header("Upgrade", "websocket")
        .header("Connection", "Upgrade")
        .header("Sec-WebSocket-Accept", accept_key);
    if !chosen.is_empty() {
        resp = resp.header("Sec-WebSocket-Protocol", chosen);
    }
    resp.body(Full::new(Bytes::new())).unwrap_or_default()
}

/// A complete message (fragments joined), or the end of the connection.
#[derive(Debug, PartialEq)]
enum Message {
    Text(Vec<u8>),
    Binary(Vec<u8>),
    Close,
}

/// Reads client frames (masked, as RFC 6455 requires), answers pings, joins fragments.
async fn read_message<R: AsyncRead + Unpin, W: AsyncWrite + Unpin>(r: &mut R, w: &tokio::sync::Mutex<W>) -> std::io::Result<Message> {
    let mut msg: Vec<u8> = Vec::new();
    let mut kind = None;
    loop {
        let mut h = [0u8; 2];
        r.read_exact(&mut h).await?;
        let fin = h[0] & 0x80 != 0;
        let op = h[0] & 0x0f;
        let masked = h[1] & 0x80 != 0;
        let len = match h[1] & 0x7f {
            126 => {
                let mut b = [0u8; 2];
                r.read_exact(&mut b).await?;
                u16::from_be_bytes(b) as usize
            }
            127 => {
                let mut b = [0u8; 8];
                r.read_exact(&mut b).await?;
                u64::from_be_bytes(b) as usize
            }
            n => n as usize,
        };
        if len > MAX_MESSAGE || msg.len() + len > MAX_MESSAGE {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "WebSocket message too large"));
        }
        let mut mask = [0u8; 4];
        if masked {
            r.read_exact(&mut mask).await?;
        }
        let mut payload = vec![0u8; len];
        r.read_exact(&mut payload).await?;
        if masked {
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= mask[i % 4];
            }
        }
        match op {
            OP_PING => {
                let mut g = w.lock().await;
                write_frame(&mut *g, OP_PONG, &payload).await?;
            }
            OP_PONG => {}
            OP_CLOSE => return Ok(Message::Close),
            OP_TEXT | OP_BINARY | OP_CONT => {
                if op != OP_CONT {
                    kind = Some(op);
                }
                msg.extend_from_slice(&payload);
                if fin {
                    return Ok(if kind == Some(OP_TEXT) { Message::Text(msg) } else { Message::Binary(msg) });
                }
            }
            _ => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("unknown WebSocket opcode {op}"))),
        }
    }
}

/// One unmasked frame (servers do not mask).
async fn write_frame<W: AsyncWrite + Unpin>(w: &mut W, op: u8, payload: &[u8]) -> std::io::Result<()> {
    let mut f = Vec::with_capacity(payload.len() + 10);
    f.push(0x80 | op);
    match payload.len() {
        n if n < 126 => f.push(n as u8),
        n if n <= u16::MAX as usize => {
            f.push(126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(payload);
    w.write_all(&f).await?;
    w.flush().await
}

/// How a channel protocol frames its messages.
struct Codec {
    base64: bool,
    /// v4 and later: the error channel carries a JSON Status.
    v4: bool,
    /// v5: 255 <channel> closes a channel.
    v5: bool,
}

impl Codec {
    fn of(proto: &str) -> Codec {
        Codec { base64: proto.contains("base64"), v4: proto.starts_with("v4.") || proto.starts_with("v5."), v5: proto.starts_with("v5.") }
    }

    fn encode(&self, channel: u8, data: &[u8]) -> (u8, Vec<u8>) {
        if self.base64 {
            let mut m = vec![b'0' + channel];
            m.extend_from_slice(base64::engine::general_purpose::STANDARD.encode(data).as_bytes());
            (OP_TEXT, m)
        } else {
            let mut m = Vec::with_capacity(data.len() + 1);
            m.push(channel);
            m.extend_from_slice(data);
            (OP_BINARY, m)
        }
    }

    /// (channel, data) of a client message; None for an empty or undecodable one.
    fn decode(&self, msg: &[u8]) -> Option<(u8, Vec<u8>)> {
        let (&first, rest) = msg.split_first()?;
        if self.base64 {
            let data = base64::engine::general_purpose::STANDARD.decode(rest).ok()?;
            Some((first.checked_sub(b'0')?, data))
        } else {
            Some((first, rest.to_vec()))
        }
    }
}

async fn serve_channels<IO: AsyncRead + AsyncWrite + Send + 'static>(engine: Arc<Engine>, session: Session, proto: &str, io: IO) {
    let codec = Arc::new(Codec::of(proto));
    let (mut rd, wr) = tokio::io::split(io);
    let wr = Arc::new(tokio::sync::Mutex::new(wr));
    let (stdin_tx, stdin_rx) = mpsc::channel::<Bytes>(16);
    let (resize_tx, resize_rx) = mpsc::channel::<Bytes>(4);
    let cmd = match &session {
        Session::Exec { cmd, .. } => cmd.clone(),
        _ => Vec::new(),
    };
    let wants_stdin = matches!(session, Session::Exec { stdin: true, .. } | Session::Attach { stdin: true, .. });
    // The client's messages: stdin and resizes, until it closes.
    let reader = {
        let (codec, wr) = (codec.clone(), wr.clone());
        tokio::spawn(async move {
            let mut stdin_tx = wants_stdin.then_some(stdin_tx);
            loop {
                let data = match read_message(&mut rd, &wr).await {
                    Ok(Message::Binary(d)) | Ok(Message::Text(d)) => d,
                    _ => return,
                };
                let Some((ch, payload)) = codec.decode(&data) else { continue };
                match ch {
                    0 => {
                        if let Some(tx) = &stdin_tx
                            && !payload.is_empty()
                            && tx.send(Bytes::from(payload)).await.is_err()
                        {
                            stdin_tx = None;
                        }
                    }
                    4 => {
                        let _ = resize_tx.send(Bytes::from(payload)).await;
                    }
                    255 if codec.v5 && payload.first() == Some(&0) => stdin_tx = None,
                    _ => {}
                }
            }
        })
    };
    let (tx, mut rx) = mpsc::channel(32);
    let input = Input { stdin: wants_stdin.then_some(stdin_rx), resize: Some(resize_rx) };
    tokio::spawn(remotecommand::run(engine, session, input, tx));
    while let Some(o) = rx.recv().await {
        let (ch, data, done) = match o {
            Out::Stdout(d) => (1u8, d.to_vec(), None),
            Out::Stderr(d) => (2u8, d.to_vec(), None),
            Out::Done(outcome) => (3u8, Vec::new(), Some(outcome)),
        };
        let mut g = wr.lock().await;
        if let Some(outcome) = done {
            if let Some(msg) = remotecommand::status_message(&outcome, &cmd, codec.v4) {
                let (op, m) = codec.encode(ch, msg.as_bytes());
                let _ = write_frame(&mut *g, op, &m).await;
            }
            let _ = write_frame(&mut *g, OP_CLOSE, &1000u16.to_be_bytes()).await;
            let _ = g.shutdown().await;
            break;
        }
        let (op, m) = codec.encode(ch, &data);
        if write_frame(&mut *g, op, &m).await.is_err() {
            break;
        }
    }
    reader.abort();
}

/// Port-forward's SPDY session carried in binary messages both ways.
async fn tunnel_port_forward<IO: AsyncRead + AsyncWrite + Send + 'static>(io: IO, netns: Option<std::path::PathBuf>, ports: Vec<i32>) {
    let (near, far) = tokio::io::duplex(256 * 1024);
    let (writer, incoming) = super::spdy::serve(far);
    tokio::spawn(super::portforward::serve_spdy(writer, incoming, netns, ports));
    let (mut ws_rd, ws_wr) = tokio::io::split(io);
    let ws_wr = Arc::new(tokio::sync::Mutex::new(ws_wr));
    let (mut near_rd, mut near_wr) = tokio::io::split(near);
    let w2 = ws_wr.clone();
    let up = async move {
        while let Ok(Message::Binary(d)) | Ok(Message::Text(d)) = read_message(&mut ws_rd, &w2).await {
            if near_wr.write_all(&d).await.is_err() {
                break;
            }
        }
        let _ = near_wr.shutdown().await;
    };
    let down = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match near_rd.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let mut g = ws_wr.lock().await;
                    if write_frame(&mut *g, OP_BINARY, &buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        }
        let mut g = ws_wr.lock().await;
        let _ = write_frame(&mut *g, OP_CLOSE, &1000u16.to_be_bytes()).await;
        let _ = g.shutdown().await;
    };
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

/// SHA-1 (FIPS 180-4), only for the handshake's Sec-WebSocket-Accept.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [0x6745_2301, 0xEFCD_AB89, 0x98BA_DCFE, 0x1032_5476, 0xC3D2_E1F0];
    let mut msg = data.to_vec();
    let bits = (data.len() as u64).wrapping_mul(8);
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&bits.to_be_bytes());
    for block in msg.chunks(64) {
        let mut w = [0u32; 80];
        for (i, c) in block.chunks(4).enumerate() {
            w[i] = u32::from_be_bytes([c[0], c[1], c[2], c[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a.rotate_left(5).wrapping_add(f).wrapping_add(e).wrapping_add(k).wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (i, v) in h.iter().enumerate() {
        out[i * 4..i * 4 + 4].copy_from_slice(&v.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_and_the_rfc_handshake_example() {
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        assert_eq!(hex(&sha1(b"abc")), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(hex(&sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        // RFC 6455, section 1.3.
        let accept = base64::engine::general_purpose::STANDARD.encode(sha1(format!("dGhlIHNhbXBsZSBub25jZQ=={GUID}").as_bytes()));
        assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn channel_codecs() {
        let raw = Codec::of("v5.channel.k8s.io");
        assert_eq!(raw.encode(1, b"hi"), (OP_BINARY, vec![1, b'h', b'i']));
        assert_eq!(raw.decode(&[0, b'x']), Some((0, b"x".to_vec())));
        assert!(raw.v4 && raw.v5);
        let b64 = Codec::of("base64.channel.k8s.io");
        assert_eq!(b64.encode(2, b"hi"), (OP_TEXT, b"2aGk=".to_vec()));
        assert_eq!(b64.decode(b"0aGk="), Some((0, b"hi".to_vec())));
        assert!(!b64.v4);
    }

    #[tokio::test]
    async fn frames_are_unmasked_fragments_joined_and_pings_answered() {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let (mut srd, swr) = tokio::io::split(server);
        let swr = tokio::sync::Mutex::new(swr);
        // A masked ping, then a binary message in two fragments.
        let mask = [1u8, 2, 3, 4];
        let masked = |p: &[u8]| p.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]).collect::<Vec<u8>>();
        let mut bytes = vec![0x80 | OP_PING, 0x80 | 2];
        bytes.extend_from_slice(&mask);
        bytes.extend(masked(b"pp"));
        bytes.extend([OP_BINARY, 0x80 | 2]);
        bytes.extend_from_slice(&mask);
        bytes.extend(masked(&[1, b'a']));
        bytes.extend([0x80 | OP_CONT, 0x80 | 1]);
        bytes.extend_from_slice(&mask);
        bytes.extend(masked(b"b"));
        client.write_all(&bytes).await.unwrap();
        assert_eq!(read_message(&mut srd, &swr).await.unwrap(), Message::Binary(vec![1, b'a', b'b']));
        let mut pong = [0u8; 4];
        client.read_exact(&mut pong).await.unwrap();
        assert_eq!(pong, [0x80 | OP_PONG, 2, b'p', b'p']);
    }
}
