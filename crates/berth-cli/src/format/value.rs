//! The data that templates and JSON output see: JSON with its key order kept (docker
//! prints inspect objects in the daemon's order, and `{{json .State}}` in struct
//! order), plus "methods" (`{{.Label "com.x"}}`) for docker's formatter contexts.

use std::fmt::Write as _;
use std::sync::Arc;

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

/// A method value: called with the template's arguments.
pub type Method = Arc<dyn Fn(&[Value]) -> Result<Value, String> + Send + Sync>;

#[derive(Clone, Default)]
pub enum Value {
    /// A map lookup that found nothing (Go's invalid reflect.Value): prints `<no value>`.
    Missing,
    #[default]
    Null,
    Bool(bool),
    Num(serde_json::Number),
    Str(String),
    List(Vec<Value>),
    Map(Map),
    Func(Method),
}

/// An object with its keys in insertion order. `strict` objects stand for Go structs:
/// an unknown field is an error instead of `<no value>`.
#[derive(Clone, Default)]
pub struct Map {
    pub entries: Vec<(String, Value)>,
    pub strict: bool,
}

impl Map {
    pub fn new() -> Self {
        Map::default()
    }

    pub fn strict() -> Self {
        Map { entries: Vec::new(), strict: true }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn insert(&mut self, key: impl Into<String>, value: Value) {
        let key = key.into();
        if let Some(slot) = self.entries.iter_mut().find(|(k, _)| *k == key) {
            slot.1 = value;
        } else {
            self.entries.push((key, value));
        }
    }

    pub fn with(mut self, key: impl Into<String>, value: impl Into<Value>) -> Self {
        self.insert(key, value.into());
        self
    }

    pub fn sort(&mut self) {
        self.entries.sort_by(|a, b| a.0.cmp(&b.0));
    }
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Func(_) => f.write_str("<method>"),
            Value::Missing => f.write_str("<no value>"),
            other => f.write_str(&other.to_json()),
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::Str(s.to_string())
    }
}
impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::Str(s)
    }
}
impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}
impl From<i64> for Value {
    fn from(n: i64) -> Self {
        Value::Num(n.into())
    }
}
impl From<u64> for Value {
    fn from(n: u64) -> Self {
        Value::Num(n.into())
    }
}
impl From<Map> for Value {
    fn from(m: Map) -> Self {
        Value::Map(m)
    }
}
impl From<Vec<Value>> for Value {
    fn from(v: Vec<Value>) -> Self {
        Value::List(v)
    }
}

impl Value {
    pub fn method(f: impl Fn(&[Value]) -> Result<Value, String> + Send + Sync + 'static) -> Value {
        Value::Func(Arc::new(f))
    }

    /// Parses JSON text keeping object key order.
    pub fn from_json_str(s: &str) -> Result<Value, serde_json::Error> {
        serde_json::from_str(s)
    }

    pub fn from_json_slice(s: &[u8]) -> Result<Value, serde_json::Error> {
        serde_json::from_slice(s)
    }

    /// Converts a serde_json value (keys come out sorted, like a Go map).
    pub fn from_serde(v: &serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => Value::Num(n.clone()),
            serde_json::Value::String(s) => Value::Str(s.clone()),
            serde_json::Value::Array(a) => Value::List(a.iter().map(Value::from_serde).collect()),
            serde_json::Value::Object(o) => Value::Map(Map {
                entries: o.iter().map(|(k, v)| (k.clone(), Value::from_serde(v))).collect(),
                strict: false,
            }),
        }
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        match self {
            Value::Map(m) => m.get(key),
            _ => None,
        }
    }

    /// Follows a dotted path of object keys (`["State", "Status"]`).
    pub fn path(&self, keys: &[&str]) -> Option<&Value> {
        keys.iter().try_fold(self, |v, k| v.get(k))
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    /// A string field, or "" when absent or not a string.
    pub fn str_at(&self, keys: &[&str]) -> String {
        self.path(keys).and_then(Value::as_str).unwrap_or_default().to_string()
    }

    pub fn i64_at(&self, keys: &[&str]) -> i64 {
        match self.path(keys) {
            Some(Value::Num(n)) => n.as_i64().or_else(|| n.as_f64().map(|f| f as i64)).unwrap_or(0),
            _ => 0,
        }
    }

    pub fn f64_at(&self, keys: &[&str]) -> f64 {
        match self.path(keys) {
            Some(Value::Num(n)) => n.as_f64().unwrap_or(0.0),
            _ => 0.0,
        }
    }

    pub fn bool_at(&self, keys: &[&str]) -> bool {
        matches!(self.path(keys), Some(Value::Bool(true)))
    }

    pub fn list_at(&self, keys: &[&str]) -> &[Value] {
        match self.path(keys) {
            Some(Value::List(l)) => l,
            _ => &[],
        }
    }

    pub fn entries_at(&self, keys: &[&str]) -> &[(String, Value)] {
        match self.path(keys) {
            Some(Value::Map(m)) => &m.entries,
            _ => &[],
        }
    }

    /// Go's template truth: false, 0, nil, and empty strings, lists and maps are false.
    pub fn truthy(&self) -> bool {
        match self {
            Value::Missing | Value::Null => false,
            Value::Bool(b) => *b,
            Value::Num(n) => n.as_f64().is_some_and(|f| f != 0.0),
            Value::Str(s) => !s.is_empty(),
            Value::List(l) => !l.is_empty(),
            Value::Map(m) => !m.entries.is_empty(),
            Value::Func(_) => true,
        }
    }

    /// Go's `fmt` `%v` rendering: strings bare, `[a b]` lists, `map[k:v]` maps.
    pub fn display(&self) -> String {
        let mut s = String::new();
        self.write_display(&mut s);
        s
    }

    fn write_display(&self, out: &mut String) {
        match self {
            Value::Missing => out.push_str("<no value>"),
            Value::Null => out.push_str("<nil>"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Num(n) => out.push_str(&display_number(n)),
            Value::Str(s) => out.push_str(s),
            Value::List(l) => {
                out.push('[');
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    v.write_display(out);
                }
                out.push(']');
            }
            Value::Map(m) => {
                // Go prints maps with sorted keys.
                let mut entries: Vec<&(String, Value)> = m.entries.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(&b.0));
                out.push_str("map[");
                for (i, (k, v)) in entries.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    out.push_str(k);
                    out.push(':');
                    v.write_display(out);
                }
                out.push(']');
            }
            Value::Func(_) => out.push_str("<method>"),
        }
    }

    /// Go's `json.Marshal` with HTML escaping off (docker's `json` template function).
    pub fn to_json(&self) -> String {
        let mut s = String::new();
        self.write_json(&mut s);
        s
    }

    fn write_json(&self, out: &mut String) {
        match self {
            Value::Missing | Value::Null | Value::Func(_) => out.push_str("null"),
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Num(n) => out.push_str(&n.to_string()),
            Value::Str(s) => write_json_string(s, out),
            Value::List(l) => {
                out.push('[');
                for (i, v) in l.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    v.write_json(out);
                }
                out.push(']');
            }
            Value::Map(m) => {
                out.push('{');
                let mut first = true;
                for (k, v) in &m.entries {
                    if matches!(v, Value::Func(_)) {
                        continue;
                    }
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    write_json_string(k, out);
                    out.push(':');
                    v.write_json(out);
                }
                out.push('}');
            }
        }
    }
}

/// Go prints whole floats without a decimal point and large ones in exponent form.
fn display_number(n: &serde_json::Number) -> String {
    if n.is_i64() || n.is_u64() {
        return n.to_string();
    }
    match n.as_f64() {
        Some(f) if f.fract() == 0.0 && f.abs() < 1e21 => format!("{}", f as i128),
        Some(f) => f.to_string(),
        None => n.to_string(),
    }
}

pub fn write_json_string(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{2028}' => out.push_str("\\u2028"),
            '\u{2029}' => out.push_str("\\u2029"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Value;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_unit<E>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_none<E>(self) -> Result<Value, E> {
                Ok(Value::Null)
            }
            fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
                Ok(Value::Bool(b))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
                Ok(Value::Num(n.into()))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
                Ok(Value::Num(n.into()))
            }
            fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
                Ok(serde_json::Number::from_f64(n).map(Value::Num).unwrap_or(Value::Null))
            }
            fn visit_str<E>(self, s: &str) -> Result<Value, E> {
                Ok(Value::Str(s.to_string()))
            }
            fn visit_string<E>(self, s: String) -> Result<Value, E> {
                Ok(Value::Str(s))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
                let mut v = Vec::new();
                while let Some(x) = seq.next_element()? {
                    v.push(x);
                }
                Ok(Value::List(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
                let mut m = Map::new();
                while let Some((k, v)) = map.next_entry::<String, Value>()? {
                    m.entries.push((k, v));
                }
                Ok(Value::Map(m))
            }
        }
        d.deserialize_any(V)
    }
}

/// Go's `json.Indent(dst, src, "", indent)` on raw JSON bytes: re-indents without
/// re-encoding, so the daemon's key order and escapes survive (`docker inspect`).
pub fn indent_json(src: &[u8], indent: &str) -> String {
    let mut out = Vec::with_capacity(src.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    // A newline is owed after an opening bracket, unless the bracket closes at once.
    let mut need_indent = false;
    let newline = |out: &mut Vec<u8>, depth: usize| {
        out.push(b'\n');
        for _ in 0..depth {
            out.extend_from_slice(indent.as_bytes());
        }
    };
    for &c in src {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == b'\\' {
                escaped = true;
            } else if c == b'"' {
                in_string = false;
            }
            continue;
        }
        if c.is_ascii_whitespace() {
            continue;
        }
        if need_indent && c != b']' && c != b'}' {
            need_indent = false;
            depth += 1;
            newline(&mut out, depth);
        }
        match c {
            b'"' => {
                in_string = true;
                out.push(c);
            }
            b'{' | b'[' => {
                out.push(c);
                need_indent = true;
            }
            b',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            b':' => {
                out.extend_from_slice(b": ");
            }
            b'}' | b']' => {
                if need_indent {
                    need_indent = false;
                } else {
                    depth = depth.saturating_sub(1);
                    newline(&mut out, depth);
                }
                out.push(c);
            }
            _ => out.push(c),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_key_order_and_prints_go_style() {
        let v = Value::from_json_str(r#"{"b":1,"a":[true,null,"x"],"c":{"z":1,"y":2.5}}"#).unwrap();
        assert_eq!(v.to_json(), r#"{"b":1,"a":[true,null,"x"],"c":{"z":1,"y":2.5}}"#);
        assert_eq!(v.get("a").unwrap().display(), "[true <nil> x]");
        assert_eq!(v.get("c").unwrap().display(), "map[y:2.5 z:1]");
        assert_eq!(v.str_at(&["missing"]), "");
    }

    #[test]
    fn json_strings_escape_like_go_without_html_escaping() {
        assert_eq!(Value::from("a<b>&\"\n\u{1}").to_json(), r#""a<b>&\"\n\u0001""#);
    }

    #[test]
    fn indent_matches_go_json_indent() {
        let src = br#"{"Id":"x","Args":["-c","a, b: {c}"],"Empty":[],"Obj":{},"N":{"A":null}}"#;
        let want = "{\n    \"Id\": \"x\",\n    \"Args\": [\n        \"-c\",\n        \"a, b: {c}\"\n    ],\n    \"Empty\": [],\n    \"Obj\": {},\n    \"N\": {\n        \"A\": null\n    }\n}";
        assert_eq!(indent_json(src, "    "), want);
    }

    #[test]
    fn truth_follows_go() {
        assert!(!Value::from("").truthy());
        assert!(!Value::from(0i64).truthy());
        assert!(!Value::List(vec![]).truthy());
        assert!(Value::from("x").truthy());
        assert!(!Value::Missing.truthy());
    }
}
