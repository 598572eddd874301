//! Dockerfile-style `--change` instructions of `docker commit` and `docker import`
//! (CMD, ENTRYPOINT, ENV, EXPOSE, HEALTHCHECK, LABEL, ONBUILD, STOPSIGNAL, USER,
//! VOLUME, WORKDIR), applied to a container config the way Docker's builder does
//! (`BuildFromConfig`): the same argument parsing per instruction, and `$VAR` /
//! `${VAR}` expanded from the config's `Env` as it stands before each instruction in
//! ENV, LABEL, EXPOSE, VOLUME, WORKDIR, USER and STOPSIGNAL (CMD, ENTRYPOINT and
//! HEALTHCHECK keep theirs for the container's shell).

use berth_types::paths::clean_abs;
use std::collections::BTreeMap;

use crate::config::{ContainerConfig, Empty, HealthConfig};
use crate::error::{ImageError, Result};
use crate::shellword::{process_word, process_words};

/// Applies `changes` to `config` in order. A bad instruction fails the whole call with
/// [`ImageError::InvalidChange`] (the caller has not stored anything yet).
pub fn apply_changes(config: &mut ContainerConfig, changes: &[String]) -> Result<()> {
    let mut cmd_set = false;
    for change in changes {
        let line = change.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (word, rest) = match line.split_once(char::is_whitespace) {
            Some((w, r)) => (w, r.trim()),
            None => (line, ""),
        };
        let instruction = word.to_ascii_uppercase();
        let bad = |why: String| ImageError::InvalidChange(change.clone(), why);
        let (flags, rest) = extract_flags(rest);
        if instruction != "HEALTHCHECK"
            && let Some(f) = flags.first()
        {
            return Err(bad(format!("Unknown flag: {}", flag_name(f))));
        }
        // What `$VAR` sees: the environment before this instruction.
        let env = config.env.clone().unwrap_or_default();
        let word1 = |s: &str| process_word(s, &env).map_err(|e| bad(format!("failed to process {s:?}: {e}")));
        match instruction.as_str() {
            "CMD" => {
                config.cmd = Some(command_form(rest));
                cmd_set = true;
            }
            "ENTRYPOINT" => {
                config.entrypoint = Some(command_form(rest));
                // As in a Dockerfile: a new ENTRYPOINT resets an inherited CMD.
                if !cmd_set {
                    config.cmd = None;
                }
            }
            "ENV" => {
                let mut pairs = Vec::new();
                for (k, v) in name_values(rest, "ENV").map_err(bad)? {
                    let (k, v) = (word1(&k)?, word1(&v)?);
                    if k.is_empty() {
                        return Err(bad("ENV names can not be blank".into()));
                    }
                    pairs.push((k, v));
                }
                let env = config.env.get_or_insert_with(Vec::new);
                for (k, v) in pairs {
                    let entry = format!("{k}={v}");
                    match env
                        .iter()
                        .position(|e| e.split_once('=').map(|(ek, _)| ek) == Some(k.as_str()) || *e == k)
                    {
                        Some(i) => env[i] = entry,
                        None => env.push(entry),
                    }
                }
            }
            "LABEL" => {
                let mut pairs = Vec::new();
                for (k, v) in name_values(rest, "LABEL").map_err(bad)? {
                    let (k, v) = (word1(&k)?, word1(&v)?);
                    if k.is_empty() {
                        return Err(bad("LABEL names can not be blank".into()));
                    }
                    pairs.push((k, v));
                }
                let labels = config.labels.get_or_insert_with(BTreeMap::new);
                labels.extend(pairs);
            }
            "EXPOSE" => {
                if rest.is_empty() {
                    return Err(bad("EXPOSE requires at least one argument".into()));
                }
                let mut ports = Vec::new();
                for w in rest.split_whitespace() {
                    let expanded = process_words(w, &env).map_err(|e| bad(format!("failed to process {w:?}: {e}")))?;
                    for p in expanded {
                        ports.extend(expand_port(&p).map_err(bad)?);
                    }
                }
                let map = config.exposed_ports.get_or_insert_with(BTreeMap::new);
                for p in ports {
                    map.insert(p, Empty {});
                }
            }
            "VOLUME" => {
                let raw: Vec<String> = match json_array(rest) {
                    Some(v) => v,
                    None => rest.split_whitespace().map(str::to_owned).collect(),
                };
                if raw.is_empty() {
                    return Err(bad("VOLUME requires at least one argument".into()));
                }
                let mut vols = Vec::new();
                for v in raw {
                    let v = word1(v.trim())?;
                    if v.trim().is_empty() {
                        return Err(bad("VOLUME specified can not be an empty string".into()));
                    }
                    vols.push(v);
                }
                let map = config.volumes.get_or_insert_with(BTreeMap::new);
                for v in vols {
                    map.insert(v, Empty {});
                }
            }
            "WORKDIR" => {
                if rest.is_empty() {
                    return Err(bad("WORKDIR requires exactly one argument".into()));
                }
                let dir = word1(rest)?;
                config.working_dir = if dir.starts_with('/') || config.working_dir.is_empty() {
                    clean_abs(&dir)
                } else {
                    clean_abs(&format!("{}/{}", config.working_dir, dir))
                };
            }
            "USER" => {
                if rest.is_empty() {
                    return Err(bad("USER requires exactly one argument".into()));
                }
                config.user = word1(rest)?;
            }
            "STOPSIGNAL" => {
                if rest.is_empty() {
                    return Err(bad("STOPSIGNAL requires exactly one argument".into()));
                }
                config.stop_signal = word1(rest)?;
            }
            "ONBUILD" => {
                if rest.is_empty() {
                    return Err(bad("ONBUILD requires at least one argument".into()));
                }
                let trigger = rest.split_whitespace().next().unwrap_or("").to_ascii_uppercase();
                if matches!(trigger.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") {
                    return Err(bad(format!("{trigger} isn't allowed as an ONBUILD trigger")));
                }
                config.on_build.get_or_insert_with(Vec::new).push(rest.to_owned());
            }
            "HEALTHCHECK" => {
                config.healthcheck = Some(healthcheck(&flags, rest).map_err(bad)?);
            }
            "RUN" | "COPY" | "ADD" | "FROM" | "ARG" | "SHELL" | "MAINTAINER" => {
                return Err(bad(format!("{instruction} is not a valid change command")));
            }
            _ => return Err(bad(format!("unknown instruction: {instruction}"))),
        }
    }
    Ok(())
}

/// `HEALTHCHECK [--interval=D] [--timeout=D] [--start-period=D] [--start-interval=D]
/// [--retries=N] CMD command` or `HEALTHCHECK NONE`.
fn healthcheck(flags: &[String], rest: &str) -> std::result::Result<HealthConfig, String> {
    if rest.is_empty() {
        return Err("HEALTHCHECK requires at least one argument".into());
    }
    let (typ, args) = match rest.split_once(char::is_whitespace) {
        Some((t, a)) => (t.to_ascii_uppercase(), a.trim_start()),
        None => (rest.to_ascii_uppercase(), ""),
    };
    if typ == "NONE" {
        if !args.is_empty() {
            return Err("HEALTHCHECK NONE takes no arguments".into());
        }
        return Ok(HealthConfig {
            test: Some(vec!["NONE".into()]),
            ..Default::default()
        });
    }
    let mut values: BTreeMap<&str, Option<String>> = BTreeMap::new();
    for f in flags {
        let body = f.strip_prefix("--").unwrap_or(f);
        let (name, value) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_owned())),
            None => (body, None),
        };
        let known = ["interval", "timeout", "start-period", "start-interval", "retries"];
        let Some(name) = known.iter().find(|k| **k == name) else {
            return Err(format!("Unknown flag: {name}"));
        };
        if values.insert(name, value).is_some() {
            return Err(format!("Duplicate flag specified: {name}"));
        }
    }
    let mut hc = HealthConfig::default();
    match typ.as_str() {
        "CMD" => {
            let cmd = match json_array(args) {
                Some(v) => {
                    if v.is_empty() {
                        return Err("Missing command after HEALTHCHECK CMD".into());
                    }
                    std::iter::once("CMD".to_owned()).chain(v).collect()
                }
                None if args.is_empty() => return Err("Missing command after HEALTHCHECK CMD".into()),
                None => vec!["CMD-SHELL".to_owned(), args.to_owned()],
            };
            hc.test = Some(cmd);
        }
        other => return Err(format!("Unknown type {other:?} in HEALTHCHECK (try CMD)")),
    }
    for (name, value) in values {
        let v = value.ok_or_else(|| format!("Missing a value on flag: {name}"))?;
        if name == "retries" {
            let n: i32 = v.parse().map_err(|_| format!("strconv.ParseInt: parsing {v:?}: invalid syntax"))?;
            if n < 0 {
                return Err(format!("--retries cannot be negative ({n})"));
            }
            hc.retries = i64::from(n);
            continue;
        }
        let d = berth_types::units::parse_go_duration(&v).map_err(|e| e.to_string())?;
        // Zero means "the default"; anything else must be at least a millisecond.
        if d != 0 && d < 1_000_000 {
            return Err(format!("Interval {name:?} cannot be less than 1ms"));
        }
        match name {
            "interval" => hc.interval = d,
            "timeout" => hc.timeout = d,
            "start-period" => hc.start_period = d,
            _ => hc.start_interval = d,
        }
    }
    Ok(hc)
}

/// Docker's `extractBuilderFlags`: leading `--name[=value]` words (quotes removed), and
/// the rest of the line.
fn extract_flags(rest: &str) -> (Vec<String>, &str) {
    let mut flags = Vec::new();
    let mut s = rest;
    loop {
        let t = s.trim_start();
        if !t.starts_with("--") {
            return (flags, t);
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        let mut end = t.len();
        let mut chars = t.char_indices().peekable();
        while let Some((i, c)) = chars.next() {
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) if c == '\\' => {
                    if let Some((_, n)) = chars.next() {
                        word.push(n);
                    }
                }
                Some(_) => word.push(c),
                None if c.is_whitespace() => {
                    end = i;
                    break;
                }
                None if c == '\'' || c == '"' => quote = Some(c),
                None if c == '\\' => {
                    if let Some((_, n)) = chars.next() {
                        word.push(n);
                    }
                }
                None => word.push(c),
            }
        }
        s = &t[end..];
        // A bare `--` ends the flags.
        if word == "--" {
            return (flags, s.trim_start());
        }
        flags.push(word);
    }
}

fn flag_name(f: &str) -> &str {
    let b = f.strip_prefix("--").unwrap_or(f);
    b.split_once('=').map_or(b, |(n, _)| n)
}

/// `["a","b"]` (exec form) or anything else (shell form → `/bin/sh -c`).
fn command_form(rest: &str) -> Vec<String> {
    match json_array(rest) {
        Some(v) => v,
        None => vec!["/bin/sh".into(), "-c".into(), rest.to_owned()],
    }
}

fn json_array(s: &str) -> Option<Vec<String>> {
    if !s.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(s).ok()
}

/// Docker's `parseWords`: split on whitespace outside quotes, quotes and escapes kept
/// for the word processing that follows.
fn parse_words(rest: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut blank_ok = false;
    let mut quote: Option<char> = None;
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            None if c.is_whitespace() => {
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                blank_ok = false;
            }
            None => {
                if c == '\'' || c == '"' {
                    quote = Some(c);
                    blank_ok = true;
                }
                word.push(c);
                if c == '\\'
                    && let Some(n) = chars.next()
                {
                    word.push(n);
                }
            }
            Some(q) => {
                if c == q {
                    quote = None;
                }
                word.push(c);
                if c == '\\' && q != '\''
                    && let Some(n) = chars.next()
                {
                    word.push(n);
                }
            }
        }
    }
    if blank_ok || !word.is_empty() {
        words.push(word);
    }
    words
}

/// Docker's `parseNameVal`: `k=v k2="v 2"`, or the legacy `k v w` (the key, then the
/// rest of the line as the value). Keys and values are still to be word-processed.
fn name_values(rest: &str, instruction: &str) -> std::result::Result<Vec<(String, String)>, String> {
    let words = parse_words(rest);
    let Some(first) = words.first() else {
        return Err(format!("{instruction} requires at least one argument"));
    };
    if !first.contains('=') {
        return match rest.split_once(char::is_whitespace) {
            Some((k, v)) if !v.trim().is_empty() => Ok(vec![(k.to_owned(), v.trim_start().to_owned())]),
            _ => Err(format!("{instruction} must have two arguments")),
        };
    }
    words
        .into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) => Ok((k.to_owned(), v.to_owned())),
            None => Err(format!("Syntax error - can't find = in {w:?}. Must be of the form: name=value")),
        })
        .collect()
}

/// `80` → `80/tcp`; `53/UDP` → `53/udp`; `8000-8002/tcp` → three ports.
fn expand_port(p: &str) -> std::result::Result<Vec<String>, String> {
    let (ports, proto) = match p.split_once('/') {
        Some((a, b)) => (a, b.to_ascii_lowercase()),
        None => (p, "tcp".to_string()),
    };
    if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
        return Err(format!("invalid proto: {proto}"));
    }
    let parse = |s: &str| s.parse::<u16>().map_err(|_| format!("invalid port: {s}"));
    let (lo, hi) = match ports.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => {
            let v = parse(ports)?;
            (v, v)
        }
    };
    if hi < lo {
        return Err(format!("invalid port range: {ports}"));
    }
    Ok((lo..=hi).map(|n| format!("{n}/{proto}")).collect())
}


#[cfg(test)]
mod tests {
    use super::*;

    fn changed(changes: &[&str]) -> ContainerConfig {
        let mut c = ContainerConfig::default();
        apply_changes(&mut c, &changes.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        c
    }

    fn refused(c: &mut ContainerConfig, change: &str) -> String {
        match apply_changes(c, &[change.to_string()]) {
            Err(ImageError::InvalidChange(_, why)) => why,
            other => panic!("{change}: expected InvalidChange, got {other:?}"),
        }
    }

    #[test]
    fn change_instructions() {
        let c = changed(&[
            "CMD echo hi",
            r#"ENTRYPOINT ["/bin/sh", "-c"]"#,
            "ENV A=1 B=\"two words\"",
            "ENV A 3",
            "WORKDIR /data",
            "WORKDIR sub/../x",
            "USER 1000:1000",
            "LABEL a=b \"c d\"=e",
            "EXPOSE 8080 53/udp 9000-9001",
            "VOLUME /v1 /v2",
            r#"VOLUME ["/v3"]"#,
            "STOPSIGNAL SIGTERM",
        ]);
        // ENTRYPOINT after CMD in the same batch keeps the CMD.
        assert_eq!(c.cmd, Some(vec!["/bin/sh".into(), "-c".into(), "echo hi".into()]));
        assert_eq!(c.entrypoint, Some(vec!["/bin/sh".into(), "-c".into()]));
        assert_eq!(c.env, Some(vec!["A=3".into(), "B=two words".into()]));
        assert_eq!(c.working_dir, "/data/x");
        assert_eq!(c.user, "1000:1000");
        let labels = c.labels.unwrap();
        assert_eq!(labels.get("a").map(String::as_str), Some("b"));
        assert_eq!(labels.get("c d").map(String::as_str), Some("e"));
        let ports: Vec<_> = c.exposed_ports.unwrap().into_keys().collect();
        assert_eq!(ports, vec!["53/udp", "8080/tcp", "9000/tcp", "9001/tcp"]);
        let vols: Vec<_> = c.volumes.unwrap().into_keys().collect();
        assert_eq!(vols, vec!["/v1", "/v2", "/v3"]);
        assert_eq!(c.stop_signal, "SIGTERM");
    }

    #[test]
    fn variables_expand_from_the_env_defined_so_far() {
        let mut c = ContainerConfig {
            env: Some(vec!["PATH=/usr/bin".into(), "HOME=/root".into()]),
            cmd: Some(vec!["sh".into()]),
            ..Default::default()
        };
        let changes: Vec<String> = [
            // Each instruction sees the env before it: in one ENV, $APP is still unset.
            "ENV APP=/opt/app PORT=8080 SAME_LINE=${APP:-unset}",
            "ENV BIN=$APP/bin",
            "ENV PATH=$BIN:$PATH",
            "WORKDIR $APP",
            "WORKDIR ${SUB:-data}",
            "USER ${NOBODY:-65534}",
            "LABEL home=$HOME 'raw'='$HOME' \"q\"=\"$PORT\"",
            "EXPOSE $PORT ${EXTRA:-9090/udp}",
            "ENV PORTS=\"1 2\"",
            "EXPOSE $PORTS",
            "VOLUME $APP/data [\"x\"]",
            r#"VOLUME ["$APP/logs"]"#,
            "STOPSIGNAL ${SIG:-SIGQUIT}",
            "CMD echo $APP",
            "ENV key\\=with=escaped",
            "ENV LEGACY $APP and more",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        apply_changes(&mut c, &changes).unwrap();
        let env = c.env.clone().unwrap();
        assert!(env.contains(&"BIN=/opt/app/bin".to_string()), "{env:?}");
        assert!(env.contains(&"SAME_LINE=unset".to_string()), "{env:?}");
        assert_eq!(env[0], "PATH=/opt/app/bin:/usr/bin", "PATH replaced in place");
        assert!(env.contains(&"key=with=escaped".to_string()), "{env:?}");
        assert!(env.contains(&"LEGACY=/opt/app and more".to_string()), "{env:?}");
        assert_eq!(c.working_dir, "/opt/app/data");
        assert_eq!(c.user, "65534");
        let labels = c.labels.clone().unwrap();
        assert_eq!(labels["home"], "/root");
        assert_eq!(labels["raw"], "$HOME", "single quotes keep the dollar");
        assert_eq!(labels["q"], "8080");
        let ports: Vec<_> = c.exposed_ports.clone().unwrap().into_keys().collect();
        assert_eq!(ports, vec!["1/tcp", "2/tcp", "8080/tcp", "9090/udp"]);
        let vols: Vec<_> = c.volumes.clone().unwrap().into_keys().collect();
        // Not JSON (it does not start with `[`): words, quotes removed.
        assert_eq!(vols, vec!["/opt/app/data", "/opt/app/logs", "[x]"]);
        assert_eq!(c.stop_signal, "SIGQUIT");
        // CMD is the shell's to expand.
        assert_eq!(c.cmd, Some(vec!["/bin/sh".into(), "-c".into(), "echo $APP".into()]));
        // A bad substitution is refused.
        assert!(refused(&mut c, "WORKDIR ${X").contains("missing '}'"));
        assert!(refused(&mut c, "USER ${NEED:?set it}").contains("NEED: set it"));
    }

    #[test]
    fn healthchecks() {
        let hc = |s: &str| changed(&[s]).healthcheck.unwrap();
        let h = hc("HEALTHCHECK --interval=30s --timeout=5s --start-period=1m30s --start-interval=500ms --retries=3 CMD curl -f http://localhost/ || exit 1");
        assert_eq!(
            h,
            HealthConfig {
                test: Some(vec!["CMD-SHELL".into(), "curl -f http://localhost/ || exit 1".into()]),
                interval: 30_000_000_000,
                timeout: 5_000_000_000,
                start_period: 90_000_000_000,
                start_interval: 500_000_000,
                retries: 3,
            }
        );
        // Docker's JSON in the image config.
        assert_eq!(
            serde_json::to_string(&h).unwrap(),
            r#"{"Test":["CMD-SHELL","curl -f http://localhost/ || exit 1"],"Interval":30000000000,"Timeout":5000000000,"StartPeriod":90000000000,"StartInterval":500000000,"Retries":3}"#
        );
        let h = hc(r#"healthcheck cmd ["/bin/check", "--deep"]"#);
        assert_eq!(h.test, Some(vec!["CMD".into(), "/bin/check".into(), "--deep".into()]));
        assert_eq!(serde_json::to_string(&h).unwrap(), r#"{"Test":["CMD","/bin/check","--deep"]}"#);
        let none = hc("HEALTHCHECK NONE");
        assert_eq!(serde_json::to_string(&none).unwrap(), r#"{"Test":["NONE"]}"#);
        // Quoted flag values and zero durations (the default).
        let h = hc("HEALTHCHECK --interval=\"1h\" --timeout=0 CMD true");
        assert_eq!((h.interval, h.timeout), (3_600_000_000_000, 0));
        // The last HEALTHCHECK wins; NONE disables an inherited one.
        let c = changed(&["HEALTHCHECK CMD a", "HEALTHCHECK NONE"]);
        assert_eq!(c.healthcheck.unwrap().test, Some(vec!["NONE".into()]));
        // $VAR stays for the container's shell.
        assert_eq!(hc("HEALTHCHECK CMD test -f $F").test.unwrap()[1], "test -f $F");

        let mut c = ContainerConfig::default();
        for (bad, why) in [
            ("HEALTHCHECK", "requires at least one argument"),
            ("HEALTHCHECK CMD", "Missing command after HEALTHCHECK CMD"),
            ("HEALTHCHECK CMD []", "Missing command after HEALTHCHECK CMD"),
            ("HEALTHCHECK NONE x", "HEALTHCHECK NONE takes no arguments"),
            ("HEALTHCHECK RUN x", "Unknown type \"RUN\" in HEALTHCHECK (try CMD)"),
            ("HEALTHCHECK --every=5s CMD x", "Unknown flag: every"),
            ("HEALTHCHECK --interval CMD x", "Missing a value on flag: interval"),
            ("HEALTHCHECK --interval=5s --interval=6s CMD x", "Duplicate flag specified: interval"),
            ("HEALTHCHECK --interval=5 CMD x", "missing unit in duration"),
            ("HEALTHCHECK --interval=5x CMD x", "unknown unit"),
            ("HEALTHCHECK --timeout=10us CMD x", "Interval \"timeout\" cannot be less than 1ms"),
            ("HEALTHCHECK --interval=-1s CMD x", "cannot be less than 1ms"),
            ("HEALTHCHECK --retries=-1 CMD x", "--retries cannot be negative (-1)"),
            ("HEALTHCHECK --retries=x CMD x", "invalid syntax"),
            ("CMD --interval=5s x", "Unknown flag: interval"),
        ] {
            let got = refused(&mut c, bad);
            assert!(got.contains(why), "{bad}: {got}");
        }
        assert_eq!(c, ContainerConfig::default(), "refused changes leave the config alone");
    }

    #[test]
    fn entrypoint_resets_inherited_cmd() {
        let mut c = ContainerConfig {
            cmd: Some(vec!["sh".into()]),
            ..Default::default()
        };
        apply_changes(&mut c, &[r#"ENTRYPOINT ["top"]"#.into()]).unwrap();
        assert_eq!(c.cmd, None);
    }

    #[test]
    fn bad_changes_are_refused() {
        let mut c = ContainerConfig::default();
        for bad in [
            "RUN echo", "FOO bar", "EXPOSE 99999", "EXPOSE 80/xyz", "ENV", "LABEL =x", "USER", "ENV A=\"unterminated",
            "ENV A", "ENV A=1 B", "ONBUILD FROM x", "VOLUME \"\"",
        ] {
            let e = apply_changes(&mut c, &[bad.to_string()]).unwrap_err();
            assert!(matches!(e, ImageError::InvalidChange(..)), "{bad}: {e}");
        }
    }
}
