//! `RUN --mount=type=...,k=v,...` as BuildKit reads it (`commands_runmount.go`): the
//! value is one CSV record of `key=value` fields and bare `ro`/`rw`/`required`, keys are
//! case-insensitive, and each mount type has its defaults and its forbidden options.
//! Errors are BuildKit's, including its "(did you mean ...?)" hints.

use super::messages::{go_quote, with_suggestion};
use super::model::{MountKind, RunMount};

/// Expands one option value (`$VAR`s) when the step runs.
pub type MountExpander<'a> = &'a dyn Fn(&str) -> Result<String, String>;

const ALL_KEYS: &[&str] = &[
    "type",
    "from",
    "source",
    "target",
    "readonly",
    "id",
    "sharing",
    "required",
    "size",
    "mode",
    "uid",
    "gid",
    "src",
    "dst",
    "destination",
    "ro",
    "rw",
    "readwrite",
    "env",
];
const MOUNT_TYPES: &[&str] = &["bind", "cache", "tmpfs", "secret", "ssh"];

impl RunMount {
    /// Parses the `--mount` values of one RUN. Without `expand` (at parse time) values
    /// are taken as written and typed options holding a `$` are left for later; with it
    /// (when the step runs) every value is expanded first, as BuildKit does then.
    pub fn parse_all(
        specs: &[String],
        expand: Option<MountExpander<'_>>,
    ) -> Result<Vec<RunMount>, String> {
        let mut mounts = Vec::with_capacity(specs.len());
        let mut ssh_index = 0;
        for spec in specs {
            let mut m = RunMount::parse(spec, expand)?;
            if m.kind == MountKind::Ssh {
                if m.target.is_empty() {
                    m.target = format!("/run/buildkit/ssh_agent.{ssh_index}");
                }
                ssh_index += 1;
            }
            mounts.push(m);
        }
        Ok(mounts)
    }

    /// Parses one `--mount` value (see `parse_all`); an ssh mount's default target,
    /// which depends on its position, is left empty here.
    pub fn parse(spec: &str, expand: Option<MountExpander<'_>>) -> Result<RunMount, String> {
        let fields = csv_record(spec).map_err(|e| format!("failed to parse csv mounts: {e}"))?;
        let mut m = RunMount {
            kind: MountKind::Bind,
            target: String::new(),
            source: None,
            from: None,
            readonly: false,
            id: None,
            sharing: None,
            mode: None,
            uid: None,
            gid: None,
            size: None,
            required: false,
            env: None,
            spec: spec.to_string(),
        };
        let mut ro_auto = true;
        // a `type=$X` left for later: type-dependent checks must wait too
        let mut type_deferred = false;

        for field in &fields {
            let (key, value) = match field.split_once('=') {
                Some((k, v)) => (k.to_lowercase(), Some(v)),
                None => (field.to_lowercase(), None),
            };
            let Some(value) = value else {
                match key.as_str() {
                    "readonly" | "ro" => {
                        m.readonly = true;
                        ro_auto = false;
                    }
                    "readwrite" | "rw" => {
                        m.readonly = false;
                        ro_auto = false;
                    }
                    "required"
                        if matches!(m.kind, MountKind::Secret | MountKind::Ssh)
                            || type_deferred =>
                    {
                        m.required = true;
                    }
                    "required" => {
                        return Err(format!(
                            "unexpected key '{key}' for mount type '{}'",
                            m.kind
                        ));
                    }
                    _ => return Err(format!("invalid field '{field}' must be a key=value pair")),
                }
                continue;
            };

            let value = match expand {
                Some(f) => f(value)?,
                None => {
                    if key == "from" && value.find('$').is_some_and(|i| i != value.len() - 1) {
                        return Err(format!(
                            "'{key}' doesn't support variable expansion, define alias stage instead"
                        ));
                    }
                    if value.contains('$') && is_typed_key(&key) {
                        if key == "type" {
                            type_deferred = true;
                        }
                        continue;
                    }
                    value.to_string()
                }
            };

            match key.as_str() {
                "type" => {
                    m.kind = match value.to_lowercase().as_str() {
                        "bind" => MountKind::Bind,
                        "cache" => MountKind::Cache,
                        "tmpfs" => MountKind::Tmpfs,
                        "secret" => MountKind::Secret,
                        "ssh" => MountKind::Ssh,
                        _ => {
                            let msg = format!("unsupported mount type {}", go_quote(&value));
                            return Err(with_suggestion(msg, &value, MOUNT_TYPES, true));
                        }
                    }
                }
                "from" => m.from = Some(value),
                "source" | "src" => m.source = Some(value),
                "target" | "dst" | "destination" => m.target = value,
                "readonly" | "ro" => {
                    m.readonly = parse_bool(&value)
                        .ok_or_else(|| format!("invalid value for {key}: {value}"))?;
                    ro_auto = false;
                }
                "readwrite" | "rw" => {
                    let rw = parse_bool(&value)
                        .ok_or_else(|| format!("invalid value for {key}: {value}"))?;
                    m.readonly = !rw;
                    ro_auto = false;
                }
                "required" => {
                    if matches!(m.kind, MountKind::Secret | MountKind::Ssh) || type_deferred {
                        m.required = parse_bool(&value)
                            .ok_or_else(|| format!("invalid value for {key}: {value}"))?;
                    } else {
                        return Err(format!(
                            "unexpected key '{key}' for mount type '{}'",
                            m.kind
                        ));
                    }
                }
                "size" => {
                    if m.kind == MountKind::Tmpfs || type_deferred {
                        m.size = Some(
                            ram_in_bytes(&value)
                                .ok_or_else(|| format!("invalid value for {key}: {value}"))?,
                        );
                    } else {
                        return Err(format!(
                            "unexpected key '{key}' for mount type '{}'",
                            m.kind
                        ));
                    }
                }
                "id" => m.id = Some(value),
                "sharing" => {
                    let v = value.to_lowercase();
                    if !matches!(v.as_str(), "shared" | "private" | "locked") {
                        return Err(format!("unsupported sharing value {}", go_quote(&value)));
                    }
                    m.sharing = Some(v);
                }
                "mode" => {
                    m.mode = Some(
                        u32::from_str_radix(&value, 8)
                            .map_err(|_| format!("invalid value {value} for mode"))?,
                    );
                }
                "uid" => {
                    m.uid = Some(
                        value
                            .parse()
                            .map_err(|_| format!("invalid value {value} for uid"))?,
                    )
                }
                "gid" => {
                    m.gid = Some(
                        value
                            .parse()
                            .map_err(|_| format!("invalid value {value} for gid"))?,
                    )
                }
                "env" => m.env = Some(value),
                _ => {
                    let msg = format!("unexpected key '{key}' in '{field}'");
                    return Err(with_suggestion(msg, &key, ALL_KEYS, true));
                }
            }
        }

        if !type_deferred {
            check_and_default(&mut m, ro_auto)?;
        }
        Ok(m)
    }
}

/// Keys whose value is checked as a number, boolean or name; a `$` in them waits for
/// expansion.
fn is_typed_key(key: &str) -> bool {
    matches!(
        key,
        "type"
            | "readonly"
            | "ro"
            | "readwrite"
            | "rw"
            | "required"
            | "size"
            | "sharing"
            | "mode"
            | "uid"
            | "gid"
    )
}

/// BuildKit's checks after the options are read, then its defaults.
fn check_and_default(m: &mut RunMount, ro_auto: bool) -> Result<(), String> {
    let kind = m.kind;
    let file_info_allowed = matches!(kind, MountKind::Secret | MountKind::Ssh | MountKind::Cache);
    for (set, what) in [
        (m.mode.is_some(), "mode"),
        (m.uid.is_some(), "uid"),
        (m.gid.is_some(), "gid"),
    ] {
        if set && !file_info_allowed {
            return Err(format!(
                "{what} not allowed for {} type mounts",
                go_quote(kind.as_str())
            ));
        }
    }
    if ro_auto {
        m.readonly = !matches!(kind, MountKind::Cache | MountKind::Tmpfs);
    }
    if m.sharing.is_some() && kind != MountKind::Cache {
        return Err(format!("invalid cache sharing set for {kind} mount"));
    }
    match kind {
        MountKind::Secret => {
            if m.from.is_some() {
                return Err("secret mount should not have a from".into());
            }
            if m.sharing.is_some() {
                return Err("secret mount should not define sharing".into());
            }
            if m.source.is_none() && m.target.is_empty() && m.id.is_none() && m.env.is_none() {
                return Err("invalid secret mount. one of source, target required".into());
            }
            if m.source.is_some() && m.id.is_some() {
                return Err("both source and id can't be set".into());
            }
            if m.id.is_none() {
                m.id = Some(match &m.source {
                    Some(src) => src.clone(),
                    None => base_name(&m.target),
                });
            }
            if m.target.is_empty() && m.env.is_none() {
                m.target = format!(
                    "/run/secrets/{}",
                    base_name(m.id.as_deref().unwrap_or_default())
                );
            }
            m.mode.get_or_insert(0o400);
        }
        MountKind::Ssh => {
            if m.source.is_some() {
                return Err("ssh does not support source".into());
            }
            m.id.get_or_insert_with(|| "default".into());
            m.mode.get_or_insert(0o600);
        }
        MountKind::Cache => {
            if m.id.is_none() {
                m.id = Some(m.target.clone());
            }
            m.sharing.get_or_insert_with(|| "shared".into());
            m.mode.get_or_insert(0o755);
        }
        MountKind::Bind | MountKind::Tmpfs => {}
    }
    if file_info_allowed {
        m.uid.get_or_insert(0);
        m.gid.get_or_insert(0);
    }
    Ok(())
}

/// Go's `path.Base`.
fn base_name(p: &str) -> String {
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        return if p.is_empty() { ".".into() } else { "/".into() };
    }
    t.rsplit('/').next().unwrap_or(t).to_string()
}

/// Go's `strconv.ParseBool`.
fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// go-units `RAMInBytes`: `64m`, `1.5g`, `100`, `2 GiB`; binary multiples.
fn ram_in_bytes(s: &str) -> Option<u64> {
    let num_end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, mut unit) = s.split_at(num_end);
    if num.is_empty()
        || !num.starts_with(|c: char| c.is_ascii_digit())
        || num.ends_with('.')
        || num.contains("..")
    {
        return None;
    }
    let value: f64 = num.parse().ok()?;
    unit = unit.strip_prefix(' ').unwrap_or(unit);
    let mut chars = unit.chars().peekable();
    let mult: f64 = match chars.peek().map(|c| c.to_ascii_lowercase()) {
        Some('k') => 1024f64,
        Some('m') => 1024f64.powi(2),
        Some('g') => 1024f64.powi(3),
        Some('t') => 1024f64.powi(4),
        Some('p') => 1024f64.powi(5),
        _ => 1.0,
    };
    if mult != 1.0 {
        chars.next();
    }
    if chars.peek().is_some_and(|c| c.eq_ignore_ascii_case(&'i')) {
        chars.next();
    }
    if chars.peek().is_some_and(|c| c.eq_ignore_ascii_case(&'b')) {
        chars.next();
    }
    if chars.next().is_some() {
        return None;
    }
    let bytes = value * mult;
    (bytes.is_finite() && bytes >= 0.0).then_some(bytes as u64)
}

/// One record of Go's `encoding/csv` reader (comma-separated, `"` quoting with `""`
/// for a quote), with its error texts.
fn csv_record(s: &str) -> Result<Vec<String>, String> {
    let line = s.split('\n').next().unwrap_or_default();
    let line = line.strip_suffix('\r').unwrap_or(line);
    if s.is_empty() {
        return Err("EOF".into());
    }
    let b: Vec<char> = line.chars().collect();
    let mut fields = Vec::new();
    let mut i = 0;
    // 1-based byte column of char index `i`, for error messages
    let col = |i: usize| {
        b[..i.min(b.len())]
            .iter()
            .map(|c| c.len_utf8())
            .sum::<usize>()
            + 1
    };
    loop {
        if b.get(i) != Some(&'"') {
            let start = i;
            while i < b.len() && b[i] != ',' {
                if b[i] == '"' {
                    return Err(format!(
                        "parse error on line 1, column {}: bare \" in non-quoted field",
                        col(i)
                    ));
                }
                i += 1;
            }
            fields.push(b[start..i].iter().collect());
        } else {
            i += 1;
            let mut field = String::new();
            loop {
                match b.get(i) {
                    None => {
                        return Err(format!(
                            "parse error on line 1, column {}: extraneous or missing \" in quoted-field",
                            col(i)
                        ));
                    }
                    Some('"') if b.get(i + 1) == Some(&'"') => {
                        field.push('"');
                        i += 2;
                    }
                    Some('"') => {
                        i += 1;
                        break;
                    }
                    Some(c) => {
                        field.push(*c);
                        i += 1;
                    }
                }
            }
            if i < b.len() && b[i] != ',' {
                return Err(format!(
                    "parse error on line 1, column {}: extraneous or missing \" in quoted-field",
                    col(i)
                ));
            }
            fields.push(field);
        }
        if i >= b.len() {
            break;
        }
        i += 1; // the comma
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(spec: &str) -> Result<RunMount, String> {
        RunMount::parse(spec, None)
    }

    #[test]
    fn defaults_per_type() {
        let m = p("target=/src").unwrap();
        assert_eq!(m.kind, MountKind::Bind);
        assert!(m.readonly);
        assert_eq!(m.target, "/src");
        assert_eq!(m.mode, None);

        let m = p("type=cache,target=/root/.cache").unwrap();
        assert!(!m.readonly);
        assert_eq!(m.id.as_deref(), Some("/root/.cache"));
        assert_eq!(m.sharing.as_deref(), Some("shared"));
        assert_eq!((m.mode, m.uid, m.gid), (Some(0o755), Some(0), Some(0)));

        let m = p("type=tmpfs,dst=/tmp,size=64m").unwrap();
        assert!(!m.readonly);
        assert_eq!(m.size, Some(64 * 1024 * 1024));

        let m = p("type=secret,id=aws").unwrap();
        assert!(m.readonly);
        assert_eq!(m.target, "/run/secrets/aws");
        assert_eq!(m.mode, Some(0o400));
        let m = p("type=secret,target=/root/.npmrc").unwrap();
        assert_eq!(m.id.as_deref(), Some(".npmrc"));
        let m = p("type=secret,id=tok,env=TOKEN").unwrap();
        assert_eq!(m.target, "");
        assert_eq!(m.env.as_deref(), Some("TOKEN"));

        let m = p("type=ssh,required").unwrap();
        assert!(m.required);
        assert_eq!(m.id.as_deref(), Some("default"));
        assert_eq!(m.mode, Some(0o600));
    }

    #[test]
    fn options() {
        let m = p("type=bind,from=build,source=/out,target=/in,rw").unwrap();
        assert_eq!(m.from.as_deref(), Some("build"));
        assert_eq!(m.source.as_deref(), Some("/out"));
        assert!(!m.readonly);
        let m =
            p("type=cache,target=/x,readonly=true,sharing=LOCKED,id=c,mode=0700,uid=1000,gid=1000")
                .unwrap();
        assert!(m.readonly);
        assert_eq!(m.sharing.as_deref(), Some("locked"));
        assert_eq!(
            (m.mode, m.uid, m.gid),
            (Some(0o700), Some(1000), Some(1000))
        );
        let m = p("Type=Cache,Target=/x,RW=false").unwrap();
        assert_eq!(m.kind, MountKind::Cache);
        assert!(m.readonly);
        let m = p("\"target=/a,b\",rw").unwrap();
        assert_eq!(m.target, "/a,b");
        assert!(!m.readonly);
    }

    #[test]
    fn errors_read_like_buildkits() {
        let e = |s: &str| p(s).unwrap_err();
        assert_eq!(e("type=foo"), "unsupported mount type \"foo\"");
        assert_eq!(
            e("type=cach"),
            "unsupported mount type \"cach\" (did you mean cache?)"
        );
        assert_eq!(
            e("type=cache,targt=/x"),
            "unexpected key 'targt' in 'targt=/x' (did you mean target?)"
        );
        assert_eq!(
            e("type=cache,bogus=bar"),
            "unexpected key 'bogus' in 'bogus=bar'"
        );
        assert_eq!(
            e("type=cache,foo=bar"),
            "unexpected key 'foo' in 'foo=bar' (did you mean from?)"
        );
        assert_eq!(
            e("target=/x,required"),
            "unexpected key 'required' for mount type 'bind'"
        );
        assert_eq!(
            e("target=/x,bogus"),
            "invalid field 'bogus' must be a key=value pair"
        );
        assert_eq!(e("target=/x,ro=maybe"), "invalid value for ro: maybe");
        assert_eq!(
            e("type=cache,target=/x,mode=999"),
            "invalid value 999 for mode"
        );
        assert_eq!(e("type=cache,target=/x,uid=-1"), "invalid value -1 for uid");
        assert_eq!(
            e("target=/x,mode=0700"),
            "mode not allowed for \"bind\" type mounts"
        );
        assert_eq!(
            e("type=tmpfs,target=/x,uid=1"),
            "uid not allowed for \"tmpfs\" type mounts"
        );
        assert_eq!(
            e("target=/x,sharing=shared"),
            "invalid cache sharing set for bind mount"
        );
        assert_eq!(
            e("type=cache,target=/x,sharing=all"),
            "unsupported sharing value \"all\""
        );
        assert_eq!(
            e("type=secret"),
            "invalid secret mount. one of source, target required"
        );
        assert_eq!(
            e("type=secret,id=a,source=b"),
            "both source and id can't be set"
        );
        assert_eq!(
            e("type=secret,id=a,from=x"),
            "secret mount should not have a from"
        );
        assert_eq!(e("type=ssh,source=x"), "ssh does not support source");
        assert_eq!(
            e("type=bind,target=/x,size=1m"),
            "unexpected key 'size' for mount type 'bind'"
        );
        assert_eq!(
            e("type=tmpfs,target=/x,size=lots"),
            "invalid value for size: lots"
        );
        assert_eq!(
            e("from=$STAGE,target=/x"),
            "'from' doesn't support variable expansion, define alias stage instead"
        );
        assert_eq!(e(""), "failed to parse csv mounts: EOF");
        assert_eq!(
            e("target=/a\"b"),
            "failed to parse csv mounts: parse error on line 1, column 10: bare \" in non-quoted field"
        );
    }

    #[test]
    fn variables_wait_for_expansion() {
        let m = p("type=cache,target=$HOME/.cache,mode=$MODE").unwrap();
        assert_eq!(m.target, "$HOME/.cache");
        assert_eq!(m.mode, Some(0o755));
        assert!(p("type=$T,target=/x,mode=0700").is_ok());
        assert!(p("from=stage$,target=/x").is_ok());

        let expand = |v: &str| -> Result<String, String> {
            Ok(v.replace("$HOME", "/root").replace("$MODE", "0700"))
        };
        let m =
            RunMount::parse("type=cache,target=$HOME/.cache,mode=$MODE", Some(&expand)).unwrap();
        assert_eq!(m.target, "/root/.cache");
        assert_eq!(m.mode, Some(0o700));
    }

    #[test]
    fn ssh_targets_are_numbered() {
        let specs = vec![
            "type=ssh".to_string(),
            "type=cache,target=/c".to_string(),
            "type=ssh,id=other".to_string(),
        ];
        let ms = RunMount::parse_all(&specs, None).unwrap();
        assert_eq!(ms[0].target, "/run/buildkit/ssh_agent.0");
        assert_eq!(ms[2].target, "/run/buildkit/ssh_agent.1");
    }

    #[test]
    fn ram_sizes() {
        assert_eq!(ram_in_bytes("100"), Some(100));
        assert_eq!(ram_in_bytes("64m"), Some(64 << 20));
        assert_eq!(ram_in_bytes("1.5g"), Some(3 << 29));
        assert_eq!(ram_in_bytes("2 GiB"), Some(2 << 30));
        assert_eq!(ram_in_bytes("10kb"), Some(10 << 10));
        for bad in ["", "m", "1x", "1.", "-1", "1mm"] {
            assert_eq!(ram_in_bytes(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn csv_records() {
        assert_eq!(csv_record("a,b,,c").unwrap(), ["a", "b", "", "c"]);
        assert_eq!(csv_record("\"a,b\",\"c\"\"d\"").unwrap(), ["a,b", "c\"d"]);
        assert_eq!(csv_record("a,").unwrap(), ["a", ""]);
        assert!(csv_record("\"a").is_err());
        assert!(csv_record("\"a\"b").is_err());
    }

    #[test]
    fn base_names() {
        assert_eq!(base_name("/a/b"), "b");
        assert_eq!(base_name("/a/b/"), "b");
        assert_eq!(base_name("b"), "b");
        assert_eq!(base_name("/"), "/");
        assert_eq!(base_name(""), ".");
    }
}
