//! The daemon's own log, for people and for log systems: colours only on a terminal,
//! `--log-format text|json` (dockerd's logrus shapes: `time="..." level=info msg="..."`
//! and `{"level":"info","msg":"...","time":"..."}`), and a level that can change while
//! the daemon runs (SIGHUP re-reads the configuration, as dockerd does).

use std::fmt;
use std::io::IsTerminal;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::reload;
use tracing_subscriber::util::SubscriberInitExt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
}

impl Format {
    pub fn parse(s: &str) -> Result<Format, String> {
        match s {
            "" | "text" => Ok(Format::Text),
            "json" => Ok(Format::Json),
            other => Err(format!("invalid log format {other:?}: use text or json")),
        }
    }
}

/// Changes the level of the installed logger.
pub struct LevelHandle(reload::Handle<EnvFilter, tracing_subscriber::Registry>);

impl LevelHandle {
    pub fn set(&self, level: &str) -> Result<(), String> {
        self.0.reload(filter_for(level)).map_err(|e| e.to_string())
    }
}

/// `BERTH_LOG` (an env-filter directive) wins over the configured level.
fn filter_for(level: &str) -> EnvFilter {
    EnvFilter::try_from_env("BERTH_LOG").unwrap_or_else(|_| EnvFilter::new(level))
}

/// Installs the logger on stderr; None if one was installed already.
pub fn init(level: &str, format: Format) -> Option<LevelHandle> {
    let (filter, handle) = reload::Layer::new(filter_for(level));
    let ansi = std::io::stderr().is_terminal();
    let registry = tracing_subscriber::registry().with(filter);
    let ok = match format {
        Format::Text => registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi).event_format(Logrus { json: false, ansi }))
            .try_init()
            .is_ok(),
        Format::Json => registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(false).event_format(Logrus { json: true, ansi: false }))
            .try_init()
            .is_ok(),
    };
    ok.then_some(LevelHandle(handle))
}

/// logrus' two formatters, which is what dockerd writes and log pipelines expect.
struct Logrus {
    json: bool,
    ansi: bool,
}

/// The event's message and its other fields, in order.
#[derive(Default)]
struct Fields {
    msg: String,
    rest: Vec<(String, String)>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.msg = value.to_string();
        } else {
            self.rest.push((field.name().to_string(), value.to_string()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.msg = format!("{value:?}");
        } else {
            self.rest.push((field.name().to_string(), format!("{value:?}")));
        }
    }
}

fn level_name(l: &tracing::Level) -> &'static str {
    match *l {
        tracing::Level::ERROR => "error",
        tracing::Level::WARN => "warning",
        tracing::Level::INFO => "info",
        tracing::Level::DEBUG => "debug",
        tracing::Level::TRACE => "trace",
    }
}

/// logrus quotes a text value when it holds anything but these.
fn needs_quotes(s: &str) -> bool {
    s.is_empty() || !s.chars().all(|c| c.is_ascii_alphanumeric() || "-._/@^+".contains(c))
}

fn text_value(s: &str) -> String {
    if needs_quotes(s) { format!("{s:?}") } else { s.to_string() }
}

impl<S, N> FormatEvent<S, N> for Logrus
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _ctx: &FmtContext<'_, S, N>, mut w: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        let mut f = Fields::default();
        event.record(&mut f);
        let time = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
        let level = level_name(event.metadata().level());
        if self.json {
            let mut m = serde_json::Map::new();
            m.insert("level".into(), level.into());
            m.insert("msg".into(), f.msg.into());
            m.insert("time".into(), time.into());
            for (k, v) in f.rest {
                m.insert(k, v.into());
            }
            return writeln!(w, "{}", serde_json::Value::Object(m));
        }
        if self.ansi {
            // As logrus on a terminal: a coloured, short level.
            let colour = match *event.metadata().level() {
                tracing::Level::ERROR => 31,
                tracing::Level::WARN => 33,
                tracing::Level::INFO => 36,
                _ => 37,
            };
            write!(w, "\x1b[{colour}m{}\x1b[0m[{}] {}", level[..4].to_ascii_uppercase(), &time[..19], f.msg)?;
            for (k, v) in f.rest {
                write!(w, " \x1b[{colour}m{k}\x1b[0m={}", text_value(&v))?;
            }
            return writeln!(w);
        }
        write!(w, "time={} level={level} msg={}", text_value(&time), text_value(&f.msg))?;
        for (k, v) in f.rest {
            write!(w, " {k}={}", text_value(&v))?;
        }
        writeln!(w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logrus_text_quoting() {
        assert_eq!(text_value("info"), "info");
        assert_eq!(text_value("berth daemon serving"), "\"berth daemon serving\"");
        assert_eq!(text_value("a\"b"), "\"a\\\"b\"");
        assert_eq!(text_value(""), "\"\"");
        assert!(Format::parse("yaml").is_err());
    }
}
