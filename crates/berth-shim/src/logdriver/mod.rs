//! Docker's log drivers, written by the shim so that logs flow while the daemon is
//! down: `json-file` (see [`crate::log`]), `local` (Docker's protobuf entries, rotated
//! and gzipped), `syslog`, `journald`, `fluentd` and `gelf`. The container's output is
//! cut into messages as Docker's copier cuts it — at each newline, and every 16 KiB of
//! a longer line (marked partial) — and each message goes to the driver. Drivers that
//! cannot be read back also write a `local` cache (Docker's dual logging) unless
//! `cache-disabled=true`, so `logs` keeps working.
//!
//! [`validate`] holds every driver's options and their checks; the daemon calls it when
//! a container is created, with Docker's messages.

pub mod fluentd;
pub mod gelf;
pub mod journald;
pub mod local;
mod net;
pub mod syslog;

use std::collections::BTreeMap;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::config::LogConfig;
use crate::log::JsonFileLog;

/// Docker's copier cuts longer lines into messages of this size.
pub const MAX_MESSAGE: usize = 16 * 1024;

/// The drivers berth has, as `--log-driver` names them.
pub const DRIVERS: &[&str] = &["json-file", "local", "syslog", "journald", "fluentd", "gelf", "none"];

/// One message: a line without its newline (or a 16 KiB piece of a longer one).
#[derive(Debug, Clone, PartialEq)]
pub struct Message<'a> {
    /// 1 stdout, 2 stderr.
    pub stream: u8,
    pub line: &'a [u8],
    pub time: SystemTime,
    /// Not the end of a line: more of it follows.
    pub partial: bool,
}

impl Message<'_> {
    pub fn source(&self) -> &'static str {
        if self.stream == 2 { "stderr" } else { "stdout" }
    }
}

/// What the daemon knows about the container, for tags and fields.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LogInfo {
    pub id: String,
    /// Without the leading slash.
    pub name: String,
    pub image_name: String,
    pub image_id: String,
    /// RFC 3339.
    pub created: String,
    pub command: String,
    /// The `tag` option, its template already filled in.
    pub tag: String,
    /// The host's name.
    pub hostname: String,
    /// Attributes from the `labels`, `env` and `env-regex` options.
    pub extra: BTreeMap<String, String>,
}

/// A driver that takes messages.
trait Sink {
    fn log(&mut self, m: &Message) -> std::io::Result<()>;

    /// Writes out what `log` held back (after each read from the container).
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Cuts output into messages per stream, keeping incomplete lines until their end.
#[derive(Default)]
struct Splitter {
    partial: [Vec<u8>; 2],
}

impl Splitter {
    fn feed(&mut self, stream: u8, data: &[u8], out: &mut dyn FnMut(Message)) {
        let idx = if stream == 2 { 1 } else { 0 };
        let now = SystemTime::now();
        let buf = &mut self.partial[idx];
        buf.extend_from_slice(data);
        let mut start = 0;
        loop {
            let rest = &buf[start..];
            if let Some(pos) = memchr::memchr(b'\n', rest).filter(|p| *p < MAX_MESSAGE) {
                out(Message { stream, line: &rest[..pos], time: now, partial: false });
                start += pos + 1;
            } else if rest.len() >= MAX_MESSAGE {
                out(Message { stream, line: &rest[..MAX_MESSAGE], time: now, partial: true });
                start += MAX_MESSAGE;
            } else {
                break;
            }
        }
        buf.drain(..start);
    }

    /// What is left (at exit) goes out as a last, partial message.
    fn flush(&mut self, out: &mut dyn FnMut(Message)) {
        for idx in 0..2 {
            let buf = std::mem::take(&mut self.partial[idx]);
            if !buf.is_empty() {
                out(Message { stream: idx as u8 + 1, line: &buf, time: SystemTime::now(), partial: true });
            }
        }
    }
}

/// The shim's log: the container's driver, and the dual-logging cache beside it.
pub struct Logger(Inner);

enum Inner {
    JsonFile(JsonFileLog),
    /// The kubelet's CRI format: lines of its own, not messages.
    Cri(crate::crilog::CriLog),
    Messages { splitter: Splitter, sink: Box<dyn Sink>, cache: Option<local::LocalLog> },
}

impl Logger {
    /// Opens the configured driver; None for `none`. Errors are Docker's "failed to
    /// initialize logging driver" causes (an unreachable server, no journald).
    pub fn open(cfg: &LogConfig) -> Result<Option<Logger>, String> {
        let driver = if cfg.driver.is_empty() { "json-file" } else { cfg.driver.as_str() };
        let opts = &cfg.opts;
        let info = &cfg.info;
        let sink: Box<dyn Sink> = match driver {
            "none" => return Ok(None),
            "json-file" => {
                let Some(p) = &cfg.path else { return Ok(None) };
                return JsonFileLog::open(p, cfg.max_size, cfg.max_files).map(|l| Some(Logger(Inner::JsonFile(l)))).map_err(|e| format!("open log {}: {e}", p.display()));
            }
            "cri" => {
                let Some(p) = &cfg.path else { return Ok(None) };
                return crate::crilog::CriLog::open(p).map(|l| Some(Logger(Inner::Cri(l)))).map_err(|e| format!("open log {}: {e}", p.display()));
            }
            "local" => {
                let p = cfg.path.as_ref().ok_or("the local driver needs a path")?;
                Box::new(local::LocalLog::open(p, local::Rotation::from_opts(opts, "")?).map_err(|e| format!("open log {}: {e}", p.display()))?)
            }
            "syslog" => Box::new(syslog::Syslog::open(opts, info)?),
            "journald" => Box::new(journald::Journald::open(cfg.journal_socket.as_deref(), info)?),
            "fluentd" => Box::new(fluentd::Fluentd::open(opts, info)?),
            "gelf" => Box::new(gelf::Gelf::open(opts, info)?),
            other => return Err(format!("logger: no log driver named '{other}' is registered")),
        };
        let cache = match &cfg.cache {
            Some(p) if driver != "local" => Some(local::LocalLog::open(p, local::Rotation::from_opts(opts, "cache-")?).map_err(|e| format!("open log cache {}: {e}", p.display()))?),
            _ => None,
        };
        Ok(Some(Logger(Inner::Messages { splitter: Splitter::default(), sink, cache })))
    }

    /// Logs output read from stream 1 (stdout) or 2 (stderr).
    pub fn write(&mut self, stream: u8, data: &[u8]) -> std::io::Result<()> {
        match &mut self.0 {
            Inner::JsonFile(l) => l.write(stream, data),
            Inner::Cri(l) => l.write(stream, data),
            Inner::Messages { splitter, sink, cache } => {
                let mut first_err = None;
                splitter.feed(stream, data, &mut |m| deliver(sink.as_mut(), cache.as_mut(), &m, &mut first_err));
                flush_all(sink.as_mut(), cache.as_mut(), &mut first_err);
                first_err.map_or(Ok(()), Err)
            }
        }
    }

    /// Writes out incomplete lines (at exit).
    pub fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.0 {
            Inner::JsonFile(l) => l.flush(),
            Inner::Cri(l) => l.flush(),
            Inner::Messages { splitter, sink, cache } => {
                let mut first_err = None;
                splitter.flush(&mut |m| deliver(sink.as_mut(), cache.as_mut(), &m, &mut first_err));
                flush_all(sink.as_mut(), cache.as_mut(), &mut first_err);
                first_err.map_or(Ok(()), Err)
            }
        }
    }
}

impl Logger {
    /// Reopens the file at its path (CRI logs, after the kubelet rotated them); drivers
    /// that write no file have nothing to reopen.
    pub fn reopen(&mut self) -> std::io::Result<()> {
        match &mut self.0 {
            Inner::JsonFile(l) => l.reopen(),
            Inner::Cri(l) => l.reopen(),
            Inner::Messages { .. } => Ok(()),
        }
    }
}

fn deliver(sink: &mut dyn Sink, cache: Option<&mut local::LocalLog>, m: &Message, err: &mut Option<std::io::Error>) {
    // The cache first: what `logs` shows does not depend on a remote server.
    if let Some(c) = cache
        && let Err(e) = c.log(m)
    {
        err.get_or_insert(e);
    }
    if let Err(e) = sink.log(m) {
        err.get_or_insert(e);
    }
}

fn flush_all(sink: &mut dyn Sink, cache: Option<&mut local::LocalLog>, err: &mut Option<std::io::Error>) {
    if let Some(c) = cache
        && let Err(e) = c.flush()
    {
        err.get_or_insert(e);
    }
    if let Err(e) = sink.flush() {
        err.get_or_insert(e);
    }
}

/// Options every driver but none takes, and each driver's own.
fn known_opts(driver: &str) -> Option<&'static [&'static str]> {
    Some(match driver {
        "json-file" => &["max-size", "max-file", "compress", "labels", "labels-regex", "env", "env-regex", "tag", "mode", "max-buffer-size"],
        "local" => &["max-size", "max-file", "compress", "mode", "max-buffer-size"],
        "syslog" => &[
            "syslog-address",
            "syslog-facility",
            "syslog-format",
            "syslog-tls-ca-cert",
            "syslog-tls-cert",
            "syslog-tls-key",
            "syslog-tls-skip-verify",
            "tag",
            "labels",
            "labels-regex",
            "env",
            "env-regex",
            "mode",
            "max-buffer-size",
        ],
        "journald" => &["tag", "labels", "labels-regex", "env", "env-regex", "mode", "max-buffer-size"],
        "fluentd" => &[
            "fluentd-address",
            "fluentd-async",
            "fluentd-async-connect",
            "fluentd-buffer-limit",
            "fluentd-retry-wait",
            "fluentd-max-retries",
            "fluentd-sub-second-precision",
            "fluentd-request-ack",
            "fluentd-read-timeout",
            "fluentd-write-timeout",
            "tag",
            "labels",
            "labels-regex",
            "env",
            "env-regex",
            "mode",
            "max-buffer-size",
        ],
        "gelf" => &[
            "gelf-address",
            "gelf-compression-type",
            "gelf-compression-level",
            "gelf-tcp-max-reconnect",
            "gelf-tcp-reconnect-delay",
            "tag",
            "labels",
            "labels-regex",
            "env",
            "env-regex",
            "mode",
            "max-buffer-size",
        ],
        "none" => &[],
        _ => return None,
    })
}

/// Whether the driver's log can be read back (the others read their cache).
pub fn readable(driver: &str) -> bool {
    matches!(driver, "json-file" | "local" | "cri" | "")
}

fn parse_bool(v: &str) -> Option<bool> {
    match v {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// Checks a driver and its options as dockerd does at create, with its messages.
pub fn validate(driver: &str, opts: &BTreeMap<String, String>) -> Result<(), String> {
    let known = known_opts(driver).ok_or_else(|| format!("logger: no log driver named '{driver}' is registered"))?;
    let cache_opts = ["cache-disabled", "cache-max-size", "cache-max-file", "cache-compress"];
    for k in opts.keys() {
        if !known.contains(&k.as_str()) && !(cache_opts.contains(&k.as_str()) && !readable(driver) && driver != "none") {
            return Err(format!("unknown log opt '{k}' for {driver} log driver"));
        }
    }
    if let Some(m) = opts.get("mode")
        && m != "blocking"
        && m != "non-blocking"
    {
        return Err(format!("logger: unknown mode \"{m}\": use blocking or non-blocking"));
    }
    for k in ["cache-disabled", "cache-compress", "compress", "fluentd-async", "fluentd-async-connect", "fluentd-sub-second-precision", "fluentd-request-ack", "syslog-tls-skip-verify"] {
        if let Some(v) = opts.get(k)
            && parse_bool(v).is_none()
        {
            return Err(format!("invalid value for {k}: {v:?}"));
        }
    }
    match driver {
        "json-file" => json_file_check(opts),
        "local" => local::Rotation::from_opts(opts, "").map(|_| ()),
        "syslog" => syslog::check(opts),
        "fluentd" => fluentd::check(opts),
        "gelf" => gelf::check(opts),
        _ => Ok(()),
    }?;
    if !readable(driver) && driver != "none" {
        local::Rotation::from_opts(opts, "cache-")?;
    }
    Ok(())
}

fn json_file_check(opts: &BTreeMap<String, String>) -> Result<(), String> {
    if let Some(n) = opts.get("max-file") {
        match n.parse::<i64>() {
            Ok(n) if n >= 1 => {}
            Ok(_) => return Err("max-file cannot be less than 1".into()),
            Err(_) => return Err(format!("invalid max-file {n:?}")),
        }
    }
    if let Some(s) = opts.get("max-size")
        && s != "-1"
    {
        local::Rotation::from_opts(&[("max-size".to_string(), s.clone())].into_iter().collect(), "")?;
    }
    Ok(())
}

/// Whether the driver keeps a dual-logging cache with these options.
pub fn wants_cache(driver: &str, opts: &BTreeMap<String, String>) -> bool {
    !readable(driver) && driver != "none" && !opts.get("cache-disabled").and_then(|v| parse_bool(v)).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cut(s: &mut Splitter, stream: u8, data: &[u8]) -> Vec<(u8, Vec<u8>, bool)> {
        let mut out = Vec::new();
        s.feed(stream, data, &mut |m| out.push((m.stream, m.line.to_vec(), m.partial)));
        out
    }

    #[test]
    fn messages_are_lines_and_16k_pieces() {
        let mut s = Splitter::default();
        assert!(cut(&mut s, 1, b"hel").is_empty());
        assert_eq!(cut(&mut s, 2, b"err\n"), vec![(2, b"err".to_vec(), false)]);
        assert_eq!(cut(&mut s, 1, b"lo\nx\n"), vec![(1, b"hello".to_vec(), false), (1, b"x".to_vec(), false)]);
        let long = vec![b'a'; MAX_MESSAGE + 10];
        let out = cut(&mut s, 1, &long);
        assert_eq!(out.len(), 1);
        assert!(out[0].2 && out[0].1.len() == MAX_MESSAGE);
        assert_eq!(cut(&mut s, 1, b"\n"), vec![(1, vec![b'a'; 10], false)]);
        let mut rest = Vec::new();
        cut(&mut s, 1, b"tail");
        s.flush(&mut |m| rest.push((m.line.to_vec(), m.partial)));
        assert_eq!(rest, vec![(b"tail".to_vec(), true)]);
    }

    #[test]
    fn options_are_checked_as_dockerd_does() {
        let o = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<BTreeMap<_, _>>();
        assert!(validate("json-file", &o(&[("max-size", "1m")])).is_ok());
        assert_eq!(validate("json-file", &o(&[("nope", "1")])).unwrap_err(), "unknown log opt 'nope' for json-file log driver");
        assert_eq!(validate("nosuch", &o(&[])).unwrap_err(), "logger: no log driver named 'nosuch' is registered");
        assert!(validate("syslog", &o(&[("cache-disabled", "true")])).is_ok());
        assert!(validate("local", &o(&[("cache-disabled", "true")])).is_err());
        assert!(validate("syslog", &o(&[("syslog-address", "ftp://x")])).is_err());
        assert!(validate("gelf", &o(&[])).is_err(), "gelf needs an address");
        assert!(validate("local", &o(&[("max-file", "0")])).is_err());
        assert!(wants_cache("syslog", &o(&[])));
        assert!(!wants_cache("syslog", &o(&[("cache-disabled", "true")])));
        assert!(!wants_cache("local", &o(&[])));
    }
}
