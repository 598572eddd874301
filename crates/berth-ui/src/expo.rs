//! Prometheus' text exposition format (version 0.0.4): one `# HELP` and `# TYPE` per
//! family, then its samples, with label values and help text escaped as the format
//! requires. Families are written whole, so a family never appears twice.

use std::fmt::Write;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// Writes families into one text body.
#[derive(Default)]
pub struct Exposition {
    out: String,
}

/// One family being written; samples go through it.
pub struct Family<'a> {
    out: &'a mut String,
    name: &'static str,
}

impl Exposition {
    pub fn new() -> Exposition {
        Exposition { out: String::with_capacity(64 * 1024) }
    }

    pub fn family(&mut self, name: &'static str, kind: Kind, help: &str) -> Family<'_> {
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
        Family { out: &mut self.out, name }
    }

    pub fn finish(self) -> String {
        self.out
    }
}

impl Family<'_> {
    /// A sample of the family itself (counter or gauge).
    pub fn sample(&mut self, labels: &[(&str, &str)], value: f64) -> &mut Self {
        write_sample(self.out, self.name, "", labels, None, value);
        self
    }

    /// A whole histogram: cumulative buckets, `+Inf`, `_sum`, `_count`.
    pub fn histogram(&mut self, labels: &[(&str, &str)], h: &berth_engine::metrics::Histogram) -> &mut Self {
        for (b, n) in h.bounds.iter().zip(&h.buckets) {
            write_sample(self.out, self.name, "_bucket", labels, Some(&format_value(*b)), *n as f64);
        }
        write_sample(self.out, self.name, "_bucket", labels, Some("+Inf"), h.count as f64);
        write_sample(self.out, self.name, "_sum", labels, None, h.sum);
        write_sample(self.out, self.name, "_count", labels, None, h.count as f64);
        self
    }
}

fn write_sample(out: &mut String, name: &str, suffix: &str, labels: &[(&str, &str)], le: Option<&str>, value: f64) {
    out.push_str(name);
    out.push_str(suffix);
    if !labels.is_empty() || le.is_some() {
        out.push('{');
        let mut first = true;
        for (k, v) in labels.iter().copied().chain(le.map(|l| ("le", l))) {
            if !first {
                out.push(',');
            }
            first = false;
            out.push_str(k);
            out.push_str("=\"");
            escape_label_into(out, v);
            out.push('"');
        }
        out.push('}');
    }
    out.push(' ');
    out.push_str(&format_value(value));
    out.push('\n');
}

/// Integers without a fraction (counters read better), others as Go's %g would.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf".into() } else { "-Inf".into() }
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// Label values: backslash, double quote and line feed are escaped.
fn escape_label_into(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// Help text: backslash and line feed are escaped.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_families_escaped() {
        let mut e = Exposition::new();
        e.family("x_total", Kind::Counter, "A \\ thing\nsecond line").sample(&[("name", "a\"b\\c\nd")], 3.0);
        let mut h = berth_engine::metrics::Histogram::new(&[0.5, 1.0]);
        h.observe(0.25);
        h.observe(2.0);
        e.family("d_seconds", Kind::Histogram, "Durations.").histogram(&[("action", "start")], &h);
        let text = e.finish();
        assert_eq!(
            text,
            "# HELP x_total A \\\\ thing\\nsecond line\n# TYPE x_total counter\nx_total{name=\"a\\\"b\\\\c\\nd\"} 3\n\
             # HELP d_seconds Durations.\n# TYPE d_seconds histogram\n\
             d_seconds_bucket{action=\"start\",le=\"0.5\"} 1\nd_seconds_bucket{action=\"start\",le=\"1\"} 1\n\
             d_seconds_bucket{action=\"start\",le=\"+Inf\"} 2\nd_seconds_sum{action=\"start\"} 2.25\nd_seconds_count{action=\"start\"} 2\n"
        );
        assert_eq!(format_value(0.005), "0.005");
        assert_eq!(format_value(f64::INFINITY), "+Inf");
    }
}
