//! The `syslog` driver: each message to a syslog server over udp, tcp, a unix stream
//! or a unix datagram socket (the local `/dev/log` by default), in the formats
//! Docker's driver writes: its default (BSD without the host), `rfc3164`, `rfc5424`
//! and `rfc5424micro`. stdout is severity info, stderr err; the facility is `daemon`
//! unless `syslog-facility` says otherwise. As Docker's (srslog), every message ends
//! with a newline.

use std::collections::BTreeMap;
use std::io;

use chrono::{DateTime, Local};

use super::net::{Addr, Conn};
use super::{LogInfo, Message, Sink};

const FACILITIES: &[(&str, u8)] = &[
    ("kern", 0),
    ("user", 1),
    ("mail", 2),
    ("daemon", 3),
    ("auth", 4),
    ("syslog", 5),
    ("lpr", 6),
    ("news", 7),
    ("uucp", 8),
    ("cron", 9),
    ("authpriv", 10),
    ("ftp", 11),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
    ("local7", 23),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Docker's default: `<pri>Jan _2 15:04:05 tag[pid]: msg`.
    Unix,
    Rfc3164,
    Rfc5424,
    Rfc5424Micro,
}

fn facility(opts: &BTreeMap<String, String>) -> Result<u8, String> {
    match opts.get("syslog-facility").map(String::as_str) {
        None | Some("") => Ok(3),
        Some(f) => FACILITIES
            .iter()
            .find(|(n, _)| *n == f)
            .map(|(_, v)| *v)
            .or_else(|| f.parse::<u8>().ok().filter(|n| *n <= 23))
            .ok_or_else(|| format!("invalid syslog facility {f:?}")),
    }
}

fn format(opts: &BTreeMap<String, String>) -> Result<Format, String> {
    match opts.get("syslog-format").map(String::as_str) {
        None | Some("") => Ok(Format::Unix),
        Some("rfc3164") => Ok(Format::Rfc3164),
        Some("rfc5424") => Ok(Format::Rfc5424),
        Some("rfc5424micro") => Ok(Format::Rfc5424Micro),
        Some(f) => Err(format!("Invalid syslog format: {f}")),
    }
}

fn address(opts: &BTreeMap<String, String>) -> Result<Addr, String> {
    match opts.get("syslog-address").map(String::as_str) {
        None | Some("") => Ok(Addr::Unixgram("/dev/log".into())),
        Some(a) if a.starts_with("tcp+tls://") => Err("syslog over TLS (tcp+tls://) is not supported by berth: use udp, tcp or a unix socket".into()),
        Some(a) => Addr::parse(a, 514, &["udp", "tcp", "unix", "unixgram"]),
    }
}

/// The options' checks, for create.
pub fn check(opts: &BTreeMap<String, String>) -> Result<(), String> {
    address(opts)?;
    facility(opts)?;
    format(opts)?;
    if opts.keys().any(|k| k.starts_with("syslog-tls-")) {
        return Err("syslog over TLS is not supported by berth: the syslog-tls-* options cannot be used".into());
    }
    Ok(())
}

/// One syslog line (with its newline), as Docker's driver formats it.
pub fn render(format: Format, pri: u8, time: DateTime<Local>, hostname: &str, tag: &str, pid: u32, msg: &str) -> String {
    match format {
        Format::Unix => format!("<{pri}>{} {tag}[{pid}]: {msg}\n", time.format("%b %e %H:%M:%S")),
        Format::Rfc3164 => format!("<{pri}>{} {hostname} {tag}[{pid}]: {msg}\n", time.format("%b %e %H:%M:%S")),
        Format::Rfc5424 => format!("<{pri}>1 {} {hostname} {tag} {pid} {tag} - {msg}\n", time.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        Format::Rfc5424Micro => format!("<{pri}>1 {} {hostname} {tag} {pid} {tag} - {msg}\n", time.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
    }
}

pub struct Syslog {
    conn: Conn,
    format: Format,
    facility: u8,
    tag: String,
    hostname: String,
    pid: u32,
}

impl Syslog {
    pub fn open(opts: &BTreeMap<String, String>, info: &LogInfo) -> Result<Syslog, String> {
        let addr = address(opts)?;
        let conn = match Conn::open(addr.clone()) {
            Ok(c) => c,
            // The local socket may be a stream one.
            Err(_) if addr == Addr::Unixgram("/dev/log".into()) => Conn::open(Addr::Unix("/dev/log".into())).map_err(|e| format!("Unix syslog delivery error: {e}"))?,
            Err(e) => return Err(format!("failed to connect to the syslog server: {e}")),
        };
        Ok(Syslog { conn, format: format(opts)?, facility: facility(opts)?, tag: info.tag.clone(), hostname: info.hostname.clone(), pid: std::process::id() })
    }
}

impl Sink for Syslog {
    fn log(&mut self, m: &Message) -> io::Result<()> {
        let severity = if m.stream == 2 { 3 } else { 6 };
        let line = render(self.format, self.facility * 8 + severity, DateTime::<Local>::from(m.time), &self.hostname, &self.tag, self.pid, &String::from_utf8_lossy(m.line));
        self.conn.send(line.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn formats_as_dockers_driver() {
        let t = Local.with_ymd_and_hms(2024, 3, 5, 7, 8, 9).unwrap();
        assert_eq!(render(Format::Unix, 30, t, "h", "web", 42, "hi"), "<30>Mar  5 07:08:09 web[42]: hi\n");
        assert_eq!(render(Format::Rfc3164, 27, t, "h", "web", 42, "hi"), "<27>Mar  5 07:08:09 h web[42]: hi\n");
        let r = render(Format::Rfc5424, 30, t, "h", "web", 42, "hi");
        assert!(r.starts_with("<30>1 2024-03-05T") && r.ends_with(" h web 42 web - hi\n"), "{r}");
        let o = |k: &str, v: &str| [(k.to_string(), v.to_string())].into_iter().collect::<BTreeMap<_, _>>();
        assert_eq!(facility(&o("syslog-facility", "local3")).unwrap(), 19);
        assert!(facility(&o("syslog-facility", "nope")).is_err());
        assert!(check(&o("syslog-format", "rfc5424micro")).is_ok());
        assert!(check(&o("syslog-address", "tcp+tls://h:1")).is_err());
    }
}
