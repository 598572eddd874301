//! The `gelf` driver (Graylog Extended Log Format 1.1): each message a JSON object with
//! Docker's fields (`_container_id`, `_container_name`, `_image_id`, `_image_name`,
//! `_command`, `_tag`, `_created`, extras). Over UDP it is compressed (gzip by default,
//! zlib or none) and cut into GELF chunks when larger than a datagram should be; over
//! TCP it is plain JSON ended by a NUL byte.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::time::UNIX_EPOCH;

use super::net::{Addr, Conn};
use super::{LogInfo, Message, Sink};

/// As Docker's (go-gelf) writer: at most this many bytes per datagram.
const CHUNK: usize = 1420;
const CHUNK_HEADER: usize = 12;
const MAX_CHUNKS: usize = 128;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Zlib,
    None,
}

fn address(opts: &BTreeMap<String, String>) -> Result<Addr, String> {
    match opts.get("gelf-address").map(String::as_str) {
        None | Some("") => Err("gelf-address is a required parameter".into()),
        Some(a) => Addr::parse(a, 12201, &["udp", "tcp"]),
    }
}

fn compression(opts: &BTreeMap<String, String>) -> Result<(Compression, u32), String> {
    let kind = match opts.get("gelf-compression-type").map(String::as_str) {
        None | Some("") | Some("gzip") => Compression::Gzip,
        Some("zlib") => Compression::Zlib,
        Some("none") => Compression::None,
        Some(o) => return Err(format!("Unknown gelf compression type {o:?}")),
    };
    let level = match opts.get("gelf-compression-level") {
        None => 1,
        Some(l) => match l.parse::<i32>() {
            Ok(-1) => 6,
            Ok(n @ 0..=9) => n as u32,
            _ => return Err(format!("invalid gelf-compression-level {l:?}: use -1 to 9")),
        },
    };
    Ok((kind, level))
}

pub fn check(opts: &BTreeMap<String, String>) -> Result<(), String> {
    let addr = address(opts)?;
    compression(opts)?;
    let tcp = matches!(addr, Addr::Tcp(_));
    for k in ["gelf-compression-type", "gelf-compression-level"] {
        if tcp && opts.contains_key(k) {
            return Err(format!("{k} is not supported with TCP: GELF over TCP is not compressed"));
        }
    }
    for k in ["gelf-tcp-max-reconnect", "gelf-tcp-reconnect-delay"] {
        if let Some(v) = opts.get(k) {
            if !tcp {
                return Err(format!("{k} is only supported with TCP"));
            }
            if v.parse::<u32>().is_err() {
                return Err(format!("invalid value for {k}: {v:?}"));
            }
        }
    }
    Ok(())
}

/// The GELF JSON of one message.
pub fn document(info: &LogInfo, host: &str, m: &Message) -> String {
    let ms = m.time.duration_since(UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or(0);
    let mut o = serde_json::Map::new();
    o.insert("version".into(), "1.1".into());
    o.insert("host".into(), host.into());
    o.insert("short_message".into(), String::from_utf8_lossy(m.line).into_owned().into());
    o.insert("timestamp".into(), serde_json::Value::from(ms as f64 / 1000.0));
    o.insert("level".into(), if m.stream == 2 { 3.into() } else { 6.into() });
    o.insert("_container_id".into(), info.id.clone().into());
    o.insert("_container_name".into(), info.name.clone().into());
    o.insert("_image_id".into(), info.image_id.clone().into());
    o.insert("_image_name".into(), info.image_name.clone().into());
    o.insert("_command".into(), info.command.clone().into());
    o.insert("_tag".into(), info.tag.clone().into());
    o.insert("_created".into(), info.created.clone().into());
    for (k, v) in &info.extra {
        o.insert(format!("_{k}"), v.clone().into());
    }
    if m.partial {
        o.insert("_partial_message".into(), true.into());
    }
    serde_json::Value::Object(o).to_string()
}

fn compress(kind: Compression, level: u32, data: &[u8]) -> io::Result<Vec<u8>> {
    let l = flate2::Compression::new(level);
    Ok(match kind {
        Compression::None => data.to_vec(),
        Compression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), l);
            e.write_all(data)?;
            e.finish()?
        }
        Compression::Zlib => {
            let mut e = flate2::write::ZlibEncoder::new(Vec::new(), l);
            e.write_all(data)?;
            e.finish()?
        }
    })
}

/// GELF chunks: `0x1e 0x0f`, an 8-byte message ID, sequence number, count, data.
pub fn chunks(id: [u8; 8], payload: &[u8]) -> Vec<Vec<u8>> {
    if payload.len() <= CHUNK {
        return vec![payload.to_vec()];
    }
    let per = CHUNK - CHUNK_HEADER;
    let parts: Vec<&[u8]> = payload.chunks(per).collect();
    let count = parts.len();
    parts
        .into_iter()
        .enumerate()
        .map(|(i, p)| {
            let mut c = Vec::with_capacity(CHUNK_HEADER + p.len());
            c.extend_from_slice(&[0x1e, 0x0f]);
            c.extend_from_slice(&id);
            c.push(i as u8);
            c.push(count as u8);
            c.extend_from_slice(p);
            c
        })
        .collect()
}

pub struct Gelf {
    conn: Conn,
    info: LogInfo,
    compression: (Compression, u32),
    tcp: bool,
    next_id: u64,
}

impl Gelf {
    pub fn open(opts: &BTreeMap<String, String>, info: &LogInfo) -> Result<Gelf, String> {
        check(opts)?;
        let addr = address(opts)?;
        let tcp = matches!(addr, Addr::Tcp(_));
        let conn = Conn::open(addr).map_err(|e| format!("gelf: cannot connect to GELF endpoint: {e}"))?;
        let seed = std::time::SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0) ^ (std::process::id() as u64) << 32;
        Ok(Gelf { conn, info: info.clone(), compression: compression(opts)?, tcp, next_id: seed })
    }
}

impl Sink for Gelf {
    fn log(&mut self, m: &Message) -> io::Result<()> {
        let doc = document(&self.info, &self.info.hostname, m);
        if self.tcp {
            let mut b = doc.into_bytes();
            b.push(0);
            return self.conn.send(&b);
        }
        let payload = compress(self.compression.0, self.compression.1, doc.as_bytes())?;
        self.next_id = self.next_id.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let parts = chunks(self.next_id.to_be_bytes(), &payload);
        if parts.len() > MAX_CHUNKS {
            return Err(io::Error::other("GELF message too large"));
        }
        for c in parts {
            self.conn.send(&c)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_and_chunks() {
        let info = LogInfo { id: "abc".into(), name: "web".into(), tag: "abc".into(), ..Default::default() };
        let m = Message { stream: 2, line: b"oops", time: UNIX_EPOCH + std::time::Duration::from_millis(1500), partial: false };
        let v: serde_json::Value = serde_json::from_str(&document(&info, "h", &m)).unwrap();
        assert_eq!((v["short_message"].as_str(), v["level"].as_i64(), v["timestamp"].as_f64()), (Some("oops"), Some(3), Some(1.5)));
        assert_eq!(v["_container_name"], "web");
        let big = vec![7u8; 5000];
        let c = chunks([1; 8], &big);
        assert_eq!(c.len(), 4);
        assert!(c.iter().all(|x| x.len() <= CHUNK && x[..2] == [0x1e, 0x0f] && x[11] == 4));
        assert_eq!(c.iter().map(|x| x.len() - CHUNK_HEADER).sum::<usize>(), 5000);
        let o = |k: &str, v: &str| [("gelf-address".to_string(), "tcp://h:1".to_string()), (k.to_string(), v.to_string())].into_iter().collect::<BTreeMap<_, _>>();
        assert!(check(&o("gelf-compression-type", "gzip")).is_err());
        assert!(check(&o("gelf-tcp-max-reconnect", "3")).is_ok());
    }
}
