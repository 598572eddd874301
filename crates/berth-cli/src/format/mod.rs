//! Output the way docker prints it: `--format` templates (with the `table` prefix and
//! `json` shorthand), aligned tables, inspect's indented JSON, human units.

pub mod tabwriter;
pub mod template;
pub mod units;
pub mod value;

pub use template::{Template, TemplateError};
pub use value::{Map, Value};

/// Shortens a 64-hex ID (optionally `sha256:`-prefixed) to docker's 12 characters.
pub fn truncate_id(id: &str) -> String {
    let id = id.split_once(':').map(|(_, h)| h).unwrap_or(id);
    id.chars().take(12).collect()
}

/// docker's `Ellipsis`: cut to `max` characters, the last one replaced by `…`.
pub fn ellipsis(s: &str, max: usize) -> String {
    if max == 0 {
        return String::new();
    }
    let n = s.chars().count();
    if n <= max {
        return s.to_string();
    }
    if max == 1 {
        return s.chars().take(1).collect();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

/// docker's `SubHeaderContext.Label`: the header of a `{{.Label "com.x.some-key"}}`
/// column is the label's last dotted part with `-` and `_` as spaces ("some key").
pub fn header_label_method() -> Value {
    Value::method(|args| {
        let name = args.first().map(Value::display).unwrap_or_default();
        let last = name.rsplit('.').next().unwrap_or("").replace(['-', '_'], " ");
        Ok(Value::from(last))
    })
}

/// Turns a user's `--format` into the template text docker executes, and tells
/// whether it is a table.
pub fn prepare_format(src: &str) -> (String, bool) {
    let (body, table) = if let Some(rest) = src.strip_prefix("table") {
        (rest, true)
    } else if src == "json" {
        ("{{json .}}", false)
    } else {
        (src, false)
    };
    let body = body.trim_matches(' ').replace("\\t", "\t").replace("\\n", "\n");
    (body, table)
}

/// Renders rows with a list format (`docker ps`, `images`, `network ls`...): for a
/// table, a header line from `headers` then one line per row, aligned like docker's
/// tabwriter; otherwise one rendered template per row.
pub fn render_list(format: &str, headers: &Value, rows: &[Value]) -> Result<String, TemplateError> {
    let (body, table) = prepare_format(format);
    let tmpl = Template::parse(&body).map_err(|e| TemplateError(format!("template parsing error: {e}")))?;
    let mut buf = String::new();
    for row in rows {
        buf.push_str(&tmpl.execute(row).map_err(|e| TemplateError(format!("template parsing error: {e}")))?);
        buf.push('\n');
    }
    if table {
        let mut text = tmpl.execute_header(headers);
        text.push('\n');
        text.push_str(&buf);
        Ok(tabwriter::docker_table(&text))
    } else {
        Ok(buf)
    }
}

/// `docker inspect` output: without a format, the raw JSON elements re-indented in
/// one array (key order and escapes as the daemon sent them); with one, the template
/// per element.
pub fn render_inspect(format: Option<&str>, raw: &[Vec<u8>]) -> Result<String, TemplateError> {
    match format.filter(|f| !f.is_empty()) {
        None => {
            if raw.is_empty() {
                return Ok("[]\n".into());
            }
            let mut joined = Vec::new();
            joined.push(b'[');
            for (i, r) in raw.iter().enumerate() {
                if i > 0 {
                    joined.push(b',');
                }
                joined.extend_from_slice(r);
            }
            joined.push(b']');
            let mut s = value::indent_json(&joined, "    ");
            s.push('\n');
            Ok(s)
        }
        Some(f) => {
            let (body, _) = prepare_format(f);
            let tmpl = Template::parse(&body).map_err(|e| TemplateError(format!("template parsing error: {e}")))?;
            let mut out = String::new();
            for r in raw {
                let v = Value::from_json_slice(r).map_err(|e| TemplateError(format!("invalid JSON from the daemon: {e}")))?;
                out.push_str(&tmpl.execute(&v).map_err(|e| TemplateError(format!("template parsing error: {e}")))?);
                out.push('\n');
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_ellipsis() {
        assert_eq!(truncate_id("sha256:bb3e12e5c47756e4725dafa57e9cb755af59067dfdf60aebf3f6af391b417f2f"), "bb3e12e5c477");
        assert_eq!(ellipsis("sh -c 'echo started; echo", 20), "sh -c 'echo started…");
        assert_eq!(ellipsis("short", 20), "short");
    }

    #[test]
    fn list_formats() {
        let headers = Value::Map(Map::new().with("ID", "CONTAINER ID").with("Names", "NAMES"));
        let rows = vec![
            template::context(vec![("ID", "abc".into()), ("Names", "web".into())]),
            template::context(vec![("ID", "defdef".into()), ("Names", "db".into())]),
        ];
        assert_eq!(
            render_list("table {{.ID}}\\t{{.Names}}", &headers, &rows).unwrap(),
            "CONTAINER ID   NAMES\nabc            web\ndefdef         db\n"
        );
        assert_eq!(render_list("{{.Names}}", &headers, &rows).unwrap(), "web\ndb\n");
        assert_eq!(render_list("json", &headers, &rows).unwrap(), "{\"ID\":\"abc\",\"Names\":\"web\"}\n{\"ID\":\"defdef\",\"Names\":\"db\"}\n");
        assert_eq!(render_list("table {{.ID}}", &headers, &[]).unwrap(), "CONTAINER ID\n");
        let headers = Value::Map(Map::new().with("Label", header_label_method()));
        assert_eq!(render_list("table {{.Label \"com.example.some-key\"}}", &headers, &[]).unwrap(), "some key\n");
        assert!(render_list("{{.ID", &headers, &rows).unwrap_err().0.starts_with("template parsing error: template: :1: unclosed action"));
    }

    #[test]
    fn inspect_matches_the_trace() {
        let trace = include_str!("../../../../fixtures/api-traces/inspect.txt");
        // What the user saw is the commented block at the top of the trace.
        let seen: String = trace
            .lines()
            .skip_while(|l| !l.starts_with("#   $ docker inspect"))
            .skip(1)
            .take_while(|l| l.starts_with("#   ") && !l.starts_with("#   [exit"))
            .map(|l| format!("{}\n", &l[4..]))
            .collect();
        let body = trace
            .lines()
            .find(|l| l.starts_with("{\"Id\":"))
            .expect("inspect body in the trace");
        assert_eq!(render_inspect(None, &[body.as_bytes().to_vec()]).unwrap(), seen);
        assert_eq!(render_inspect(Some("{{.State.Status}}"), &[body.as_bytes().to_vec()]).unwrap(), "running\n");
        assert_eq!(render_inspect(None, &[]).unwrap(), "[]\n");
    }
}
