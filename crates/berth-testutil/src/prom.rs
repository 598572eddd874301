//! A strict reader of Prometheus' text exposition format (0.0.4), for tests: it fails
//! on anything the format does not allow (bad names, bad escapes, samples before their
//! TYPE, a family split in two, duplicate series, histograms whose buckets are not
//! cumulative or whose `+Inf` bucket is not the count) and returns the samples.

use std::collections::{BTreeMap, HashMap, HashSet};

#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

pub struct Exposition {
    pub samples: Vec<Sample>,
    pub types: HashMap<String, String>,
}

impl Exposition {
    /// Samples named `name` whose labels include every pair in `labels`.
    pub fn find(&self, name: &str, labels: &[(&str, &str)]) -> Vec<&Sample> {
        self.samples
            .iter()
            .filter(|s| s.name == name && labels.iter().all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v)))
            .collect()
    }

    /// The one value of `name` with `labels`; panics when there is not exactly one.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let f = self.find(name, labels);
        assert_eq!(f.len(), 1, "expected one {name} {labels:?}, found {f:?}");
        f[0].value
    }
}

fn valid_metric_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_' || ch == ':') && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_' || ch == ':')
}

fn valid_label_name(s: &str) -> bool {
    let mut c = s.chars();
    matches!(c.next(), Some(ch) if ch.is_ascii_alphabetic() || ch == '_') && c.all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
}

fn parse_value(s: &str) -> Result<f64, String> {
    match s {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        "NaN" => Ok(f64::NAN),
        _ => s.parse::<f64>().map_err(|_| format!("bad value {s:?}")),
    }
}

/// `{a="x",b="y"}` → map and the rest of the line.
fn parse_labels(s: &str) -> Result<(BTreeMap<String, String>, &str), String> {
    let mut out = BTreeMap::new();
    let mut rest = s.strip_prefix('{').ok_or("expected {")?;
    loop {
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix('}') {
            return Ok((out, r));
        }
        let eq = rest.find('=').ok_or("label without =")?;
        let name = rest[..eq].trim();
        if !valid_label_name(name) {
            return Err(format!("bad label name {name:?}"));
        }
        rest = rest[eq + 1..].strip_prefix('"').ok_or("label value must be quoted")?;
        let mut value = String::new();
        let mut chars = rest.char_indices();
        let end = loop {
            match chars.next() {
                None => return Err("unterminated label value".into()),
                Some((i, '"')) => break i,
                Some((_, '\\')) => match chars.next() {
                    Some((_, '\\')) => value.push('\\'),
                    Some((_, '"')) => value.push('"'),
                    Some((_, 'n')) => value.push('\n'),
                    other => return Err(format!("bad escape {other:?} in label value")),
                },
                Some((_, '\n')) => return Err("newline in label value".into()),
                Some((_, c)) => value.push(c),
            }
        };
        if out.insert(name.to_string(), value).is_some() {
            return Err(format!("label {name} given twice"));
        }
        rest = &rest[end + 1..];
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r;
        } else if !rest.starts_with('}') {
            return Err("expected , or } after a label".into());
        }
    }
}

/// The family a sample name belongs to, given the declared types.
fn family_of<'a>(name: &'a str, types: &HashMap<String, String>) -> Option<&'a str> {
    if types.contains_key(name) {
        return Some(name);
    }
    for suffix in ["_bucket", "_sum", "_count"] {
        if let Some(base) = name.strip_suffix(suffix)
            && types.get(base).is_some_and(|t| t == "histogram" || t == "summary")
        {
            return Some(base);
        }
    }
    None
}

pub fn parse(text: &str) -> Result<Exposition, String> {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut helps: HashSet<String> = HashSet::new();
    let mut finished: HashSet<String> = HashSet::new();
    let mut current: Option<String> = None;
    let mut samples = Vec::new();
    let mut series: HashSet<(String, BTreeMap<String, String>)> = HashSet::new();
    if !text.is_empty() && !text.ends_with('\n') {
        return Err("the exposition must end with a line feed".into());
    }
    for (n, line) in text.lines().enumerate() {
        let err = |m: String| format!("line {}: {m}: {line:?}", n + 1);
        if line.is_empty() {
            continue;
        }
        if let Some(c) = line.strip_prefix('#') {
            let mut parts = c.trim_start().splitn(3, ' ');
            match (parts.next(), parts.next(), parts.next()) {
                (Some("HELP"), Some(name), _) => {
                    if !valid_metric_name(name) || !helps.insert(name.to_string()) {
                        return Err(err("bad or repeated HELP".into()));
                    }
                }
                (Some("TYPE"), Some(name), Some(t)) => {
                    if !valid_metric_name(name) || !["counter", "gauge", "histogram", "summary", "untyped"].contains(&t) {
                        return Err(err("bad TYPE".into()));
                    }
                    if types.insert(name.to_string(), t.to_string()).is_some() {
                        return Err(err("TYPE given twice".into()));
                    }
                    if samples.iter().any(|s: &Sample| family_of(&s.name, &types) == Some(name)) {
                        return Err(err("TYPE after the family's samples".into()));
                    }
                }
                _ => {}
            }
            continue;
        }
        let name_end = line.find(['{', ' ']).ok_or_else(|| err("no value".into()))?;
        let name = &line[..name_end];
        if !valid_metric_name(name) {
            return Err(err(format!("bad metric name {name:?}")));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') { parse_labels(&line[name_end..]).map_err(err)? } else { (BTreeMap::new(), &line[name_end..]) };
        let mut fields = rest.split_whitespace();
        let value = parse_value(fields.next().ok_or_else(|| err("no value".into()))?).map_err(err)?;
        if let Some(ts) = fields.next() {
            ts.parse::<i64>().map_err(|_| err("bad timestamp".into()))?;
        }
        if fields.next().is_some() {
            return Err(err("trailing text".into()));
        }
        let family = family_of(name, &types).ok_or_else(|| err("sample before its TYPE".into()))?.to_string();
        if current.as_deref() != Some(family.as_str()) {
            if finished.contains(&family) {
                return Err(err(format!("family {family} is split")));
            }
            if let Some(c) = current.take() {
                finished.insert(c);
            }
            current = Some(family.clone());
        }
        if types[&family] == "counter" && value < 0.0 {
            return Err(err("negative counter".into()));
        }
        if !series.insert((name.to_string(), labels.clone())) {
            return Err(err("duplicate series".into()));
        }
        samples.push(Sample { name: name.to_string(), labels, value });
    }
    check_histograms(&samples, &types)?;
    Ok(Exposition { samples, types })
}

/// Buckets cumulative, a `+Inf` bucket equal to `_count` for every label set.
fn check_histograms(samples: &[Sample], types: &HashMap<String, String>) -> Result<(), String> {
    for (family, _) in types.iter().filter(|(_, t)| *t == "histogram") {
        let mut groups: BTreeMap<BTreeMap<String, String>, Vec<(f64, f64)>> = BTreeMap::new();
        for s in samples.iter().filter(|s| s.name == format!("{family}_bucket")) {
            let mut key = s.labels.clone();
            let le = key.remove("le").ok_or_else(|| format!("{family}: bucket without le"))?;
            groups.entry(key).or_default().push((parse_value(&le)?, s.value));
        }
        for (labels, mut buckets) in groups {
            buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
            if buckets.windows(2).any(|w| w[1].1 < w[0].1) {
                return Err(format!("{family} {labels:?}: buckets are not cumulative"));
            }
            let inf = buckets.last().filter(|b| b.0.is_infinite()).ok_or_else(|| format!("{family} {labels:?}: no +Inf bucket"))?.1;
            let count = samples
                .iter()
                .find(|s| s.name == format!("{family}_count") && s.labels == labels)
                .ok_or_else(|| format!("{family} {labels:?}: no _count"))?
                .value;
            if count != inf {
                return Err(format!("{family} {labels:?}: +Inf bucket {inf} is not the count {count}"));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_good_and_refuses_bad() {
        let good = "# HELP a_total A.\n# TYPE a_total counter\na_total{x=\"q\\\"\\\\\\n\"} 1\n# TYPE h histogram\nh_bucket{le=\"1\"} 1\nh_bucket{le=\"+Inf\"} 2\nh_sum 3.5\nh_count 2\n";
        let e = parse(good).unwrap();
        assert_eq!(e.value("a_total", &[("x", "q\"\\\n")]), 1.0);
        for bad in [
            "x 1\n",
            "# TYPE x gauge\nx{a=\"\\t\"} 1\n",
            "# TYPE x gauge\n# TYPE y gauge\nx 1\ny 1\nx{a=\"b\"} 2\n",
            "# TYPE x gauge\nx 1\nx 2\n",
            "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\nh_sum 0\n",
            "# TYPE x gauge\nx 1",
            "# TYPE 1x gauge\n",
        ] {
            assert!(parse(bad).is_err(), "accepted {bad:?}");
        }
    }
}
