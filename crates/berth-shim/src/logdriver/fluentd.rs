//! The `fluentd` driver: Fluentd's forward protocol (message mode) over TCP or a unix
//! socket: each message a MessagePack array `[tag, time, record]`, the record holding
//! Docker's keys (`container_id`, `container_name`, `source`, `log`, the partial-message
//! keys, and the `labels`/`env` extras). Time in whole seconds, or as Fluentd's
//! EventTime with `fluentd-sub-second-precision=true`.

use std::collections::BTreeMap;
use std::io;
use std::time::UNIX_EPOCH;

use super::net::{Addr, Conn};
use super::{LogInfo, Message, Sink, parse_bool};

// ------------------------------------------------------------------ MessagePack

pub fn str(out: &mut Vec<u8>, s: &str) {
    let n = s.len();
    match n {
        0..32 => out.push(0xa0 | n as u8),
        32..256 => out.extend_from_slice(&[0xd9, n as u8]),
        256..65536 => {
            out.push(0xda);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        _ => {
            out.push(0xdb);
            out.extend_from_slice(&(n as u32).to_be_bytes());
        }
    }
    out.extend_from_slice(s.as_bytes());
}

pub fn uint(out: &mut Vec<u8>, v: u64) {
    match v {
        0..128 => out.push(v as u8),
        128..0x1_0000_0000 => {
            out.push(0xce);
            out.extend_from_slice(&(v as u32).to_be_bytes());
        }
        _ => {
            out.push(0xcf);
            out.extend_from_slice(&v.to_be_bytes());
        }
    }
}

pub fn map_header(out: &mut Vec<u8>, n: usize) {
    if n < 16 {
        out.push(0x80 | n as u8);
    } else {
        out.push(0xde);
        out.extend_from_slice(&(n as u16).to_be_bytes());
    }
}

// ------------------------------------------------------------------ driver

fn address(opts: &BTreeMap<String, String>) -> Result<Addr, String> {
    match opts.get("fluentd-address").map(String::as_str) {
        None | Some("") => Ok(Addr::Tcp("localhost:24224".into())),
        Some(a) if a.contains("://") => Addr::parse(a, 24224, &["tcp", "unix"]),
        Some(a) => Addr::parse(&format!("tcp://{a}"), 24224, &["tcp"]),
    }
}

fn flag(opts: &BTreeMap<String, String>, k: &str) -> bool {
    opts.get(k).and_then(|v| parse_bool(v)).unwrap_or(false)
}

pub fn check(opts: &BTreeMap<String, String>) -> Result<(), String> {
    address(opts)?;
    for k in ["fluentd-buffer-limit", "fluentd-max-retries"] {
        if let Some(v) = opts.get(k)
            && v.parse::<u64>().is_err()
        {
            return Err(format!("invalid value for {k}: {v:?}"));
        }
    }
    if flag(opts, "fluentd-request-ack") {
        return Err("fluentd-request-ack is not supported by berth".into());
    }
    Ok(())
}

/// One forward-protocol message.
pub fn encode(tag: &str, secs: u64, nanos: u32, sub_second: bool, record: &BTreeMap<&str, &str>) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.push(0x93);
    str(&mut out, tag);
    if sub_second {
        // EventTime: ext type 0, seconds and nanoseconds as big-endian 32-bit.
        out.extend_from_slice(&[0xd7, 0x00]);
        out.extend_from_slice(&(secs as u32).to_be_bytes());
        out.extend_from_slice(&nanos.to_be_bytes());
    } else {
        uint(&mut out, secs);
    }
    map_header(&mut out, record.len());
    for (k, v) in record {
        str(&mut out, k);
        str(&mut out, v);
    }
    out
}

pub struct Fluentd {
    conn: Conn,
    tag: String,
    id: String,
    name: String,
    extra: BTreeMap<String, String>,
    sub_second: bool,
}

impl Fluentd {
    pub fn open(opts: &BTreeMap<String, String>, info: &LogInfo) -> Result<Fluentd, String> {
        let addr = address(opts)?;
        let conn = if flag(opts, "fluentd-async") || flag(opts, "fluentd-async-connect") {
            Conn::lazy(addr)
        } else {
            Conn::open(addr).map_err(|e| format!("dial to the fluentd server failed: {e}"))?
        };
        Ok(Fluentd {
            conn,
            tag: info.tag.clone(),
            id: info.id.clone(),
            name: format!("/{}", info.name),
            extra: info.extra.clone(),
            sub_second: flag(opts, "fluentd-sub-second-precision"),
        })
    }
}

impl Sink for Fluentd {
    fn log(&mut self, m: &Message) -> io::Result<()> {
        let d = m.time.duration_since(UNIX_EPOCH).unwrap_or_default();
        let line = String::from_utf8_lossy(m.line);
        let mut record: BTreeMap<&str, &str> = self.extra.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        record.insert("container_id", &self.id);
        record.insert("container_name", &self.name);
        record.insert("source", m.source());
        record.insert("log", &line);
        if m.partial {
            record.insert("partial_message", "true");
        }
        self.conn.send(&encode(&self.tag, d.as_secs(), d.subsec_nanos(), self.sub_second, &record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forward_messages() {
        let mut r = BTreeMap::new();
        r.insert("log", "hi");
        let b = encode("t", 5, 0, false, &r);
        assert_eq!(b, [0x93, 0xa1, b't', 5, 0x81, 0xa3, b'l', b'o', b'g', 0xa2, b'h', b'i']);
        let b = encode("t", 1_700_000_000, 7, true, &r);
        assert_eq!(&b[3..13], &[0xd7, 0, 0x65, 0x53, 0xf1, 0x00, 0, 0, 0, 7]);
        let mut long = Vec::new();
        str(&mut long, &"x".repeat(300));
        assert_eq!(&long[..3], &[0xda, 1, 44]);
        let o = |k: &str, v: &str| [(k.to_string(), v.to_string())].into_iter().collect::<BTreeMap<_, _>>();
        assert_eq!(address(&o("fluentd-address", "127.0.0.1:9")).unwrap(), Addr::Tcp("127.0.0.1:9".into()));
        assert_eq!(address(&o("fluentd-address", "unix:///x.sock")).unwrap(), Addr::Unix("/x.sock".into()));
        assert!(check(&o("fluentd-max-retries", "x")).is_err());
    }
}
