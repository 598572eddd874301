//! The `filters` query parameter: JSON `{"key": ["v1", "v2"]}`, or the older
//! `{"key": {"v1": true}}` form the docker CLI still sends for some commands.

use std::collections::BTreeMap;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    map: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct FilterError(String);

impl Filters {
    /// Parses the (URL-decoded) value of `filters`. An empty string is no filter.
    pub fn parse(s: &str) -> Result<Filters, FilterError> {
        if s.trim().is_empty() {
            return Ok(Filters::default());
        }
        let v: serde_json::Value = serde_json::from_str(s).map_err(|e| FilterError(format!("invalid filter {s:?}: {e}")))?;
        let obj = v.as_object().ok_or_else(|| FilterError(format!("invalid filter {s:?}: not a JSON object")))?;
        let mut map = BTreeMap::new();
        for (k, v) in obj {
            let values = match v {
                serde_json::Value::Array(a) => a
                    .iter()
                    .map(|x| x.as_str().map(str::to_string).ok_or_else(|| FilterError(format!("{k}: values must be strings"))))
                    .collect::<Result<Vec<_>, _>>()?,
                serde_json::Value::Object(o) => o
                    .iter()
                    .filter(|(_, on)| on.as_bool().unwrap_or(false))
                    .map(|(name, _)| name.clone())
                    .collect(),
                _ => return Err(FilterError(format!("{k}: unsupported value"))),
            };
            map.insert(k.clone(), values);
        }
        Ok(Filters { map })
    }

    pub fn from_pairs<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Filters {
        let mut map: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for (k, v) in pairs {
            map.entry(k).or_default().push(v);
        }
        Filters { map }
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Adds a value under a key (Go's `Args.Add`).
    pub fn add(&mut self, key: &str, value: &str) {
        self.map.entry(key.to_string()).or_default().push(value.to_string());
    }

    pub fn get(&self, key: &str) -> &[String] {
        self.map.get(key).map(Vec::as_slice).unwrap_or(&[])
    }

    pub fn contains(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.map.keys().map(String::as_str)
    }

    /// Refuses keys outside `allowed`, with Docker's message.
    pub fn validate(&self, allowed: &[&str]) -> Result<(), FilterError> {
        for k in self.map.keys() {
            if !allowed.contains(&k.as_str()) {
                return Err(FilterError(format!("invalid filter '{k}'")));
            }
        }
        Ok(())
    }

    /// `key` absent, or one of its values equals `value`.
    pub fn matches_exact(&self, key: &str, value: &str) -> bool {
        match self.map.get(key) {
            None => true,
            Some(vals) => vals.iter().any(|v| v == value),
        }
    }

    /// Label filters: each value is `k` (present) or `k=v` (equal); all must hold.
    pub fn matches_labels(&self, key: &str, labels: &BTreeMap<String, String>) -> bool {
        self.get(key).iter().all(|f| match f.split_once('=') {
            Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
            None => labels.contains_key(f.as_str()),
        })
    }

    /// The JSON form, for clients.
    pub fn to_json(&self) -> String {
        serde_json::to_string(&self.map).unwrap_or_else(|_| "{}".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_both_forms() {
        let a = Filters::parse(r#"{"status":["running","exited"]}"#).unwrap();
        assert_eq!(a.get("status"), ["running", "exited"]);
        let b = Filters::parse(r#"{"type":{"container":true}}"#).unwrap();
        assert_eq!(b.get("type"), ["container"]);
        assert!(Filters::parse("").unwrap().is_empty());
        assert!(Filters::parse("[1]").is_err());
    }

    #[test]
    fn labels_and_validation() {
        let f = Filters::parse(r#"{"label":["a","b=c"]}"#).unwrap();
        let mut l = BTreeMap::new();
        l.insert("a".into(), "x".into());
        assert!(!f.matches_labels("label", &l));
        l.insert("b".into(), "c".into());
        assert!(f.matches_labels("label", &l));
        assert!(f.validate(&["label"]).is_ok());
        assert_eq!(f.validate(&["name"]).unwrap_err().to_string(), "invalid filter 'label'");
    }
}
