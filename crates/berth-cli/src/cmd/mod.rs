//! The commands: each parses its flags (clap), calls the API, prints like docker.

pub mod build;
pub mod container;
pub mod context;
pub mod cp;
pub mod image;
pub mod network;
pub mod run;
pub mod stats;
pub mod system;
pub mod volume;

use std::collections::BTreeMap;

use crate::ctx::Ctx;
use crate::error::{Error, Result};
use crate::format::Value;

/// `-f key=value` flags into the API's `filters` JSON (`{"key":{"value":true}}`,
/// the form the docker CLI sends).
pub fn filters_json(filters: &[String]) -> Result<Option<String>> {
    if filters.is_empty() {
        return Ok(None);
    }
    let mut map: BTreeMap<String, BTreeMap<String, bool>> = BTreeMap::new();
    for f in filters {
        let (k, v) = f
            .split_once('=')
            .ok_or_else(|| Error::Usage(format!("invalid argument \"{f}\" for \"-f, --filter\" flag: bad format of filter (expected name=value)")))?;
        map.entry(k.trim().to_lowercase()).or_default().insert(v.to_string(), true);
    }
    Ok(Some(serde_json::to_string(&map).unwrap_or_default()))
}

/// Runs `op` on every name, printing each name that succeeded; failures are
/// collected and reported together (exit 1), as docker's multi-object commands do.
pub async fn for_each<F, Fut>(ctx: &Ctx, names: &[String], mut op: F) -> Result<()>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = Result<Option<String>>>,
{
    let mut errors = Vec::new();
    for n in names {
        match op(n.clone()).await {
            Ok(Some(line)) => ctx.io.println(&line),
            Ok(None) => {}
            Err(e @ Error::Connect { .. }) => return Err(e),
            Err(e) => errors.push(e.to_string()),
        }
    }
    if errors.is_empty() { Ok(()) } else { Err(Error::Msg(errors.join("\n"))) }
}

/// Go's `strconv.Quote`.
pub use berth_types::gofmt::quote as go_quote;

/// Go's `time.Time.String()` for a unix timestamp, in local time:
/// "2026-11-27 21:06:59 +0000 UTC".
pub fn go_time_string(ts: i64) -> String {
    use chrono::TimeZone;
    match chrono::Local.timestamp_opt(ts, 0).single() {
        Some(t) => {
            let offset = t.format("%z").to_string();
            let zone = if offset == "+0000" { "UTC".to_string() } else { offset.clone() };
            format!("{} {offset} {zone}", t.format("%Y-%m-%d %H:%M:%S"))
        }
        None => ts.to_string(),
    }
}

/// "3 minutes ago" for a unix timestamp.
pub fn ago(ts: i64) -> String {
    format!("{} ago", crate::format::units::human_duration(crate::format::units::since_unix(ts)))
}

/// Parses an RFC 3339 time from the API into a unix timestamp.
pub fn rfc3339_unix(s: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(s).ok().map(|d| d.timestamp())
}

/// Strips `docker.io/library/` and `docker.io/` the way docker's familiar names do.
pub fn familiar(name: &str) -> String {
    let n = name.strip_prefix("docker.io/").unwrap_or(name);
    n.strip_prefix("library/").filter(|r| !r.contains('/')).unwrap_or(n).to_string()
}

/// Parses a JSON body into our ordered value.
pub fn value(bytes: &[u8]) -> Result<Value> {
    Value::from_json_slice(bytes).map_err(|e| Error::msg(format!("unexpected answer from the daemon: {e}")))
}

/// Asks "Are you sure you want to continue? [y/N]" unless forced; false = abort.
pub fn confirm(ctx: &Ctx, warning: &str, force: bool) -> bool {
    if force {
        return true;
    }
    ctx.io.print(&format!("{warning}\nAre you sure you want to continue? [y/N] "));
    let mut line = String::new();
    if std::io::stdin().read_line(&mut line).is_err() {
        return false;
    }
    matches!(line.trim().to_lowercase().as_str(), "y" | "yes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_use_the_cli_form() {
        assert_eq!(filters_json(&[]).unwrap(), None);
        assert_eq!(
            filters_json(&["type=container".into(), "status=running".into(), "status=exited".into()]).unwrap().unwrap(),
            r#"{"status":{"exited":true,"running":true},"type":{"container":true}}"#
        );
        assert_eq!(filters_json(&["nope".into()]).unwrap_err().exit_code(), 125);
    }

    #[test]
    fn quoting_and_names() {
        assert_eq!(go_quote("sh -c 'echo started…"), "\"sh -c 'echo started…\"");
        assert_eq!(go_quote("a\"b\\\n\u{1}"), "\"a\\\"b\\\\\\n\\x01\"");
        assert_eq!(familiar("docker.io/library/busybox:latest"), "busybox:latest");
        assert_eq!(familiar("docker.io/me/app"), "me/app");
        assert_eq!(familiar("127.0.0.1:5000/x"), "127.0.0.1:5000/x");
    }
}
