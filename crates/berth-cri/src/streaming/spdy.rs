//! SPDY/3.1 framing, server side, as the kubelet's clients (client-go over moby's
//! spdystream) speak it after `Upgrade: SPDY/3.1`: the client opens streams with
//! SYN_STREAM (headers say what each stream carries), the server answers each with
//! SYN_REPLY, and both sides send DATA frames, FIN ending a direction. Header blocks are
//! zlib-compressed with the SPDY/3 dictionary, one compression context per direction for
//! the whole connection. spdystream does no flow control, so WINDOW_UPDATE and SETTINGS
//! are read and ignored, and none are sent.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Mutex, mpsc};

/// The SPDY/3 header compression dictionary (draft 3, section 2.6.10.1).
pub const DICTIONARY: &[u8] = b"\x00\x00\x00\x07options\x00\x00\x00\x04head\x00\x00\x00\x04post\x00\x00\x00\x03put\x00\x00\x00\x06delete\x00\x00\x00\x05trace\
\x00\x00\x00\x06accept\x00\x00\x00\x0eaccept-charset\x00\x00\x00\x0faccept-encoding\x00\x00\x00\x0faccept-language\
\x00\x00\x00\x0daccept-ranges\x00\x00\x00\x03age\x00\x00\x00\x05allow\x00\x00\x00\x0dauthorization\x00\x00\x00\x0dcache-control\
\x00\x00\x00\x0aconnection\x00\x00\x00\x0ccontent-base\x00\x00\x00\x10content-encoding\x00\x00\x00\x10content-language\
\x00\x00\x00\x0econtent-length\x00\x00\x00\x10content-location\x00\x00\x00\x0bcontent-md5\x00\x00\x00\x0dcontent-range\
\x00\x00\x00\x0ccontent-type\x00\x00\x00\x04date\x00\x00\x00\x04etag\x00\x00\x00\x06expect\x00\x00\x00\x07expires\
\x00\x00\x00\x04from\x00\x00\x00\x04host\x00\x00\x00\x08if-match\x00\x00\x00\x11if-modified-since\x00\x00\x00\x0dif-none-match\
\x00\x00\x00\x08if-range\x00\x00\x00\x13if-unmodified-since\x00\x00\x00\x0dlast-modified\x00\x00\x00\x08location\
\x00\x00\x00\x0cmax-forwards\x00\x00\x00\x06pragma\x00\x00\x00\x12proxy-authenticate\x00\x00\x00\x13proxy-authorization\
\x00\x00\x00\x05range\x00\x00\x00\x07referer\x00\x00\x00\x0bretry-after\x00\x00\x00\x06server\x00\x00\x00\x02te\
\x00\x00\x00\x07trailer\x00\x00\x00\x11transfer-encoding\x00\x00\x00\x07upgrade\x00\x00\x00\x0auser-agent\x00\x00\x00\x04vary\
\x00\x00\x00\x03via\x00\x00\x00\x07warning\x00\x00\x00\x10www-authenticate\x00\x00\x00\x06method\x00\x00\x00\x03get\
\x00\x00\x00\x06status\x00\x00\x00\x06200 OK\x00\x00\x00\x07version\x00\x00\x00\x08HTTP/1.1\x00\x00\x00\x03url\
\x00\x00\x00\x06public\x00\x00\x00\x0aset-cookie\x00\x00\x00\x0akeep-alive\x00\x00\x00\x06origin\
100101201202205206300302303304305306307402405406407408409410411412413414415416417502504505\
203 Non-Authoritative Information204 No Content301 Moved Permanently400 Bad Request401 Unauthorized\
403 Forbidden404 Not Found500 Internal Server Error501 Not Implemented503 Service Unavailable\
Jan Feb Mar Apr May Jun Jul Aug Sept Oct Nov Dec 00:00:00 Mon, Tue, Wed, Thu, Fri, Sat, Sun, GMT\
chunked,text/html,image/png,image/jpg,image/gif,application/xml,application/xhtml+xml,text/plain,\
text/javascript,publicprivatemax-age=gzip,deflate,sdchcharset=utf-8charset=iso-8859-1,utf-,*,enq=0.";

const VERSION: u16 = 3;
const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const FLAG_FIN: u8 = 0x01;
/// The largest DATA frame berth sends (the format allows 16 MiB).
const MAX_DATA: usize = 64 * 1024;
/// RST_STREAM status codes.
pub const RST_PROTOCOL_ERROR: u32 = 1;
pub const RST_CANCEL: u32 = 5;

pub type Headers = Vec<(String, String)>;

/// A stream the client opened.
pub struct IncomingStream {
    pub id: u32,
    /// Names lowercased, as SPDY sends them.
    pub headers: Headers,
    /// What the client sends on it; closed at its FIN (or reset, or the connection's end).
    pub data: mpsc::Receiver<Bytes>,
}

impl IncomingStream {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// The sending side of a connection, shared by every stream's task. Frames go out whole,
/// in the order they are written; header compression state lives with it.
pub struct Writer<W> {
    inner: Mutex<(W, Compress)>,
}

impl<W: AsyncWrite + Unpin + Send> Writer<W> {
    fn new(w: W) -> Writer<W> {
        let mut c = Compress::new(Compression::default(), true);
        c.set_dictionary(DICTIONARY).expect("a zlib compressor takes a dictionary before any input");
        Writer { inner: Mutex::new((w, c)) }
    }

    async fn control(&self, kind: u16, flags: u8, body: &[u8]) -> std::io::Result<()> {
        let mut frame = Vec::with_capacity(8 + body.len());
        frame.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
        frame.extend_from_slice(&kind.to_be_bytes());
        frame.push(flags);
        frame.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        frame.extend_from_slice(body);
        let mut g = self.inner.lock().await;
        g.0.write_all(&frame).await?;
        g.0.flush().await
    }

    /// SYN_REPLY: accepts a stream the client opened.
    pub async fn reply(&self, id: u32, headers: &Headers, fin: bool) -> std::io::Result<()> {
        let block = encode_headers(headers);
        // The compressor's state must advance in the same order as frames go out.
        let mut g = self.inner.lock().await;
        let compressed = compress(&mut g.1, &block)?;
        let mut body = Vec::with_capacity(4 + compressed.len());
        body.extend_from_slice(&(id & 0x7fff_ffff).to_be_bytes());
        body.extend_from_slice(&compressed);
        let mut frame = Vec::with_capacity(8 + body.len());
        frame.extend_from_slice(&(0x8000 | VERSION).to_be_bytes());
        frame.extend_from_slice(&SYN_REPLY.to_be_bytes());
        frame.push(if fin { FLAG_FIN } else { 0 });
        frame.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        frame.extend_from_slice(&body);
        g.0.write_all(&frame).await?;
        g.0.flush().await
    }

    /// DATA on a stream; `fin` ends the server's side of it.
    pub async fn data(&self, id: u32, data: &[u8], fin: bool) -> std::io::Result<()> {
        let mut chunks: Vec<&[u8]> = data.chunks(MAX_DATA).collect();
        if chunks.is_empty() {
            chunks.push(&[]);
        }
        let last = chunks.len() - 1;
        let mut g = self.inner.lock().await;
        for (i, c) in chunks.into_iter().enumerate() {
            let mut frame = Vec::with_capacity(8 + c.len());
            frame.extend_from_slice(&(id & 0x7fff_ffff).to_be_bytes());
            frame.push(if fin && i == last { FLAG_FIN } else { 0 });
            frame.extend_from_slice(&(c.len() as u32).to_be_bytes()[1..]);
            frame.extend_from_slice(c);
            g.0.write_all(&frame).await?;
        }
        g.0.flush().await
    }

    pub async fn reset(&self, id: u32, code: u32) -> std::io::Result<()> {
        let mut body = (id & 0x7fff_ffff).to_be_bytes().to_vec();
        body.extend_from_slice(&code.to_be_bytes());
        self.control(RST_STREAM, 0, &body).await
    }

    /// GOAWAY, then the connection is shut for writing.
    pub async fn go_away(&self, last_stream: u32) -> std::io::Result<()> {
        let mut body = (last_stream & 0x7fff_ffff).to_be_bytes().to_vec();
        body.extend_from_slice(&0u32.to_be_bytes());
        self.control(GOAWAY, 0, &body).await?;
        let mut g = self.inner.lock().await;
        g.0.shutdown().await
    }

    async fn pong(&self, id: u32) -> std::io::Result<()> {
        self.control(PING, 0, &id.to_be_bytes()).await
    }
}

fn compress(c: &mut Compress, input: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() + 64);
    let mut consumed = 0;
    loop {
        out.reserve(256);
        let before_in = c.total_in();
        c.compress_vec(&input[consumed..], &mut out, FlushCompress::Sync).map_err(std::io::Error::other)?;
        consumed += (c.total_in() - before_in) as usize;
        // A sync flush is complete when all input is in and room was left over.
        if consumed == input.len() && out.len() < out.capacity() {
            return Ok(out);
        }
    }
}

/// Name/value pairs as SPDY/3 lays them out (32-bit lengths, names lowercase).
pub fn encode_headers(h: &Headers) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend_from_slice(&(h.len() as u32).to_be_bytes());
    for (k, v) in h {
        let k = k.to_ascii_lowercase();
        b.extend_from_slice(&(k.len() as u32).to_be_bytes());
        b.extend_from_slice(k.as_bytes());
        b.extend_from_slice(&(v.len() as u32).to_be_bytes());
        b.extend_from_slice(v.as_bytes());
    }
    b
}

pub fn decode_headers(b: &[u8]) -> Option<Headers> {
    let u32_at = |i: usize| -> Option<usize> { Some(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?) as usize) };
    let n = u32_at(0)?;
    let mut pos = 4;
    let mut out = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        let kl = u32_at(pos)?;
        let k = b.get(pos + 4..pos + 4 + kl)?;
        pos += 4 + kl;
        let vl = u32_at(pos)?;
        let v = b.get(pos + 4..pos + 4 + vl)?;
        pos += 4 + vl;
        // Several values of one name are NUL-separated; the first is what we need.
        let v = v.split(|c| *c == 0).next().unwrap_or_default();
        out.push((String::from_utf8_lossy(k).to_ascii_lowercase(), String::from_utf8_lossy(v).into_owned()));
    }
    Some(out)
}

/// Inflates one header block with the connection's decompressor (which asks for the
/// dictionary on the first block).
fn inflate(d: &mut Decompress, input: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() * 4 + 64);
    let mut consumed = 0;
    loop {
        out.reserve(1024);
        let before = d.total_in();
        match d.decompress_vec(&input[consumed..], &mut out, FlushDecompress::Sync) {
            Ok(Status::StreamEnd) => return Ok(out),
            Ok(_) => {}
            Err(e) if e.needs_dictionary().is_some() => {
                consumed += (d.total_in() - before) as usize;
                d.set_dictionary(DICTIONARY).map_err(std::io::Error::other)?;
                continue;
            }
            Err(e) => return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, e)),
        }
        consumed += (d.total_in() - before) as usize;
        if consumed == input.len() && out.len() < out.capacity() {
            return Ok(out);
        }
        if d.total_in() == before && out.len() < out.capacity() {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "truncated header block"));
        }
    }
}

/// A frame as read.
#[derive(Debug, PartialEq)]
enum Frame {
    Control { kind: u16, flags: u8, body: Vec<u8> },
    Data { id: u32, flags: u8, body: Vec<u8> },
}

async fn read_frame<R: AsyncRead + Unpin>(r: &mut R) -> std::io::Result<Option<Frame>> {
    let mut h = [0u8; 8];
    match r.read_exact(&mut h).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let flags = h[4];
    let len = u32::from_be_bytes([0, h[5], h[6], h[7]]) as usize;
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await?;
    if h[0] & 0x80 != 0 {
        let version = u16::from_be_bytes([h[0] & 0x7f, h[1]]);
        if version != VERSION {
            return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, format!("SPDY version {version} is not spoken here")));
        }
        Ok(Some(Frame::Control { kind: u16::from_be_bytes([h[2], h[3]]), flags, body }))
    } else {
        Ok(Some(Frame::Data { id: u32::from_be_bytes([h[0], h[1], h[2], h[3]]) & 0x7fff_ffff, flags, body }))
    }
}

/// Runs a server-side session over `io`: the returned receiver yields the streams the
/// client opens (each must be answered with [`Writer::reply`]); the writer is shared by
/// whoever sends. The session ends when the client hangs up or says GOAWAY.
pub fn serve<IO>(io: IO) -> (Arc<Writer<tokio::io::WriteHalf<IO>>>, mpsc::Receiver<IncomingStream>)
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, wr) = tokio::io::split(io);
    let writer = Arc::new(Writer::new(wr));
    let (tx, rx) = mpsc::channel(16);
    let w = writer.clone();
    tokio::spawn(async move {
        let mut decompress = Decompress::new(true);
        let mut streams: HashMap<u32, mpsc::Sender<Bytes>> = HashMap::new();
        while let Ok(Some(frame)) = read_frame(&mut rd).await {
            match frame {
                Frame::Control { kind: SYN_STREAM, flags, body } if body.len() >= 10 => {
                    let id = u32::from_be_bytes([body[0], body[1], body[2], body[3]]) & 0x7fff_ffff;
                    let Ok(block) = inflate(&mut decompress, &body[10..]) else { break };
                    let Some(headers) = decode_headers(&block) else {
                        let _ = w.reset(id, RST_PROTOCOL_ERROR).await;
                        continue;
                    };
                    let (dtx, drx) = mpsc::channel(64);
                    if flags & FLAG_FIN == 0 {
                        streams.insert(id, dtx);
                    }
                    if tx.send(IncomingStream { id, headers, data: drx }).await.is_err() {
                        break;
                    }
                }
                Frame::Control { kind: RST_STREAM, body, .. } if body.len() >= 4 => {
                    let id = u32::from_be_bytes([body[0], body[1], body[2], body[3]]) & 0x7fff_ffff;
                    streams.remove(&id);
                }
                Frame::Control { kind: PING, body, .. } if body.len() >= 4 => {
                    let id = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
                    // Client pings are odd; an even id would be an answer to ours.
                    if id % 2 == 1 && w.pong(id).await.is_err() {
                        break;
                    }
                }
                Frame::Control { kind: GOAWAY, .. } => break,
                // SYN_REPLY (we open no streams), HEADERS, SETTINGS, WINDOW_UPDATE.
                Frame::Control { .. } => {}
                Frame::Data { id, flags, body } => {
                    if let Some(s) = streams.get(&id) {
                        // A stream nobody reads any more is dropped, not waited for.
                        if !body.is_empty() && s.send(Bytes::from(body)).await.is_err() {
                            streams.remove(&id);
                        }
                    }
                    if flags & FLAG_FIN != 0 {
                        streams.remove(&id);
                    }
                }
            }
        }
        // Dropping the senders ends every stream's data: readers see EOF.
    });
    (writer, rx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dictionary_is_spdy3s() {
        // zlib names a preset dictionary by its Adler-32; this is the one SPDY/3 peers
        // (and Go's spdy framer) announce.
        assert_eq!(DICTIONARY.len(), 1423);
        let (mut a, mut b) = (1u32, 0u32);
        for &x in DICTIONARY {
            a = (a + x as u32) % 65521;
            b = (b + a) % 65521;
        }
        assert_eq!((b << 16) | a, 0xe3c6_a7c2);
    }

    #[test]
    fn headers_round_trip_through_shared_compression_contexts() {
        let mut c = Compress::new(Compression::default(), true);
        c.set_dictionary(DICTIONARY).unwrap();
        let mut d = Decompress::new(true);
        for i in 0..3 {
            let h: Headers = vec![("streamType".into(), format!("stdout{i}")), ("port".into(), "80".into())];
            let z = compress(&mut c, &encode_headers(&h)).unwrap();
            let back = decode_headers(&inflate(&mut d, &z).unwrap()).unwrap();
            assert_eq!(back, vec![("streamtype".to_string(), format!("stdout{i}")), ("port".to_string(), "80".to_string())]);
        }
    }

    #[tokio::test]
    async fn a_session_answers_streams_and_carries_data() {
        let (client, server) = tokio::io::duplex(1 << 16);
        let (writer, mut incoming) = serve(server);
        let (mut cr, mut cw) = tokio::io::split(client);
        // The client: SYN_STREAM id 1 with streamType=stdin, then data "hi" with FIN.
        let mut c = Compress::new(Compression::default(), true);
        c.set_dictionary(DICTIONARY).unwrap();
        let block = compress(&mut c, &encode_headers(&vec![("streamType".into(), "stdin".into())])).unwrap();
        let mut body = 1u32.to_be_bytes().to_vec();
        body.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
        body.extend_from_slice(&block);
        let mut frame = vec![0x80, 3, 0, 1, 0];
        frame.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
        frame.extend_from_slice(&body);
        frame.extend_from_slice(&[0, 0, 0, 1, FLAG_FIN, 0, 0, 2, b'h', b'i']);
        cw.write_all(&frame).await.unwrap();
        let mut s = incoming.recv().await.unwrap();
        assert_eq!((s.id, s.header("streamtype")), (1, Some("stdin")));
        writer.reply(s.id, &Vec::new(), false).await.unwrap();
        assert_eq!(&s.data.recv().await.unwrap()[..], b"hi");
        assert!(s.data.recv().await.is_none(), "FIN ends the stream's data");
        writer.data(1, b"out", true).await.unwrap();
        // What the client reads: SYN_REPLY for 1, then DATA "out" with FIN.
        let Frame::Control { kind, body, .. } = read_frame(&mut cr).await.unwrap().unwrap() else { panic!("expected SYN_REPLY") };
        assert_eq!((kind, &body[..4]), (SYN_REPLY, &[0, 0, 0, 1][..]));
        let mut d = Decompress::new(true);
        assert_eq!(decode_headers(&inflate(&mut d, &body[4..]).unwrap()).unwrap(), Vec::<(String, String)>::new());
        assert_eq!(read_frame(&mut cr).await.unwrap().unwrap(), Frame::Data { id: 1, flags: FLAG_FIN, body: b"out".to_vec() });
    }
}
