//! One logical line → instruction name, `--flags` and arguments, split the way each
//! instruction's arguments are shaped in BuildKit's parser (`line_parsers.go`):
//! JSON-or-text (RUN, CMD), JSON-or-words (COPY, ADD, VOLUME), name/value pairs (ENV,
//! LABEL), words with quotes kept (ARG), whitespace words (FROM, EXPOSE), the whole
//! rest (USER, WORKDIR), HEALTHCHECK's type word, ONBUILD's nested instruction.
//! Arguments stay raw; checking them is `instructions`' job.

use std::sync::LazyLock;

use regex::Regex;

use super::messages::go_quote;

/// BuildKit's `reWhitespace`/`tokenWhitespace`.
static WHITESPACE: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[\t\x0B\x0C\r ]+").expect("whitespace regex"));

pub(crate) const NOT_STRING_ARRAY: &str =
    "when using JSON array syntax, arrays must be comprised of strings only";

/// An instruction line split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Node {
    /// The instruction name as written (any case).
    pub(crate) cmd: String,
    /// `--name=value` words before the arguments, quotes removed.
    pub(crate) flags: Vec<String>,
    /// The arguments (for ONBUILD: the nested instruction's name then its arguments).
    pub(crate) args: Vec<String>,
    /// ENV and LABEL: the name/value pairs.
    pub(crate) pairs: Vec<(String, String)>,
    /// The arguments were a JSON array.
    pub(crate) json: bool,
    /// ONBUILD: the nested instruction.
    pub(crate) sub: Option<Box<Node>>,
    /// The line this node was made from.
    pub(crate) original: String,
}

impl Node {
    pub(crate) fn lower(&self) -> String {
        self.cmd.to_lowercase()
    }

    /// RUN, COPY and ADD in shell form take heredocs, also as an ONBUILD trigger.
    pub(crate) fn can_contain_heredoc(&self) -> bool {
        let node = match (&self.sub, self.lower().as_str()) {
            (Some(sub), "onbuild") => sub,
            _ => self,
        };
        matches!(node.lower().as_str(), "run" | "copy" | "add") && !node.json
    }
}

/// Splits and shapes one logical line (BuildKit's `newNodeFromLine`).
pub(crate) fn parse_line(line: &str, escape: char) -> Result<Node, String> {
    let (cmd, flags, rest) = split_command(line);
    let mut node = Node {
        cmd,
        flags,
        args: Vec::new(),
        pairs: Vec::new(),
        json: false,
        sub: None,
        original: line.to_string(),
    };
    match node.lower().as_str() {
        "add" | "copy" | "volume" => (node.args, node.json) = maybe_json_to_list(&rest)?,
        "arg" => node.args = parse_words(&rest, escape),
        "cmd" | "entrypoint" | "run" | "shell" => (node.args, node.json) = maybe_json(&rest)?,
        "env" => node.pairs = name_val(&rest, "ENV", escape)?,
        "label" => node.pairs = name_val(&rest, "LABEL", escape)?,
        "expose" | "from" => node.args = whitespace_words(&rest),
        "healthcheck" => (node.args, node.json) = health_config(&rest)?,
        "maintainer" | "stopsignal" | "user" | "workdir" if !rest.is_empty() => {
            node.args = vec![rest]
        }
        "onbuild" if !rest.is_empty() => {
            let sub = parse_line(&rest, escape)?;
            node.args = std::iter::once(sub.cmd.clone())
                .chain(sub.args.iter().cloned())
                .collect();
            node.sub = Some(Box::new(sub));
        }
        _ => {} // no arguments, or unknown: reported when the instructions are typed
    }
    Ok(node)
}

/// The instruction name, the leading `--flags`, and the trimmed rest.
fn split_command(line: &str) -> (String, Vec<String>, String) {
    let trimmed = line.trim();
    let mut parts = WHITESPACE.splitn(trimmed, 2);
    let cmd = parts.next().unwrap_or_default().to_string();
    match parts.next() {
        Some(rest) => {
            let (args, flags) = extract_builder_flags(rest);
            (cmd, flags, args.trim().to_string())
        }
        None => (cmd, Vec::new(), String::new()),
    }
}

#[derive(PartialEq, Clone, Copy)]
enum Phase {
    Spaces,
    Word,
    Quote,
}

/// Leading words that start with `--` are flags (quotes removed, `\` escapes); a bare
/// `--` ends them. Returns the rest of the line and the flags. The escape here is
/// always `\`, whatever the `# escape=` directive says, as in BuildKit.
fn extract_builder_flags(line: &str) -> (String, Vec<String>) {
    let chars: Vec<char> = line.chars().collect();
    let n = chars.len();
    let rest_from = |pos: usize| chars[pos..].iter().collect::<String>();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut pos = 0;
    loop {
        let at_end = pos == n;
        let mut ch = if at_end { '\0' } else { chars[pos] };
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if ch.is_whitespace() {
                pos += 1;
                continue;
            }
            if ch != '-' || pos + 1 == n || chars[pos + 1] != '-' {
                return (rest_from(pos), words);
            }
            phase = Phase::Word;
        }
        if at_end {
            if word != "--" && (blank_ok || !word.is_empty()) {
                words.push(word);
            }
            break;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if word == "--" {
                    return (rest_from(pos), words);
                }
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
                pos += 1;
                continue;
            }
            if ch == '\\' {
                if pos + 1 == n {
                    pos += 1;
                    continue;
                }
                pos += 1;
                ch = chars[pos];
            }
            word.push(ch);
            pos += 1;
            continue;
        }
        // inside quotes
        if ch == quote {
            phase = Phase::Word;
            pos += 1;
            continue;
        }
        if ch == '\\' {
            if pos + 1 == n {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            ch = chars[pos];
        }
        word.push(ch);
        pos += 1;
    }
    (String::new(), words)
}

/// BuildKit's `parseWords`: whitespace-separated words; quotes and escapes are kept
/// (the lexer removes them later) but quoted whitespace does not split.
pub(crate) fn parse_words(rest: &str, escape: char) -> Vec<String> {
    let chars: Vec<char> = rest.chars().collect();
    let n = chars.len();
    let mut words = Vec::new();
    let mut phase = Phase::Spaces;
    let mut word = String::new();
    let mut quote = '\0';
    let mut blank_ok = false;
    let mut pos = 0;
    loop {
        let at_end = pos == n;
        let mut ch = if at_end { '\0' } else { chars[pos] };
        if phase == Phase::Spaces {
            if at_end {
                break;
            }
            if ch.is_whitespace() {
                pos += 1;
                continue;
            }
            phase = Phase::Word;
        }
        if at_end {
            if blank_ok || !word.is_empty() {
                words.push(word);
            }
            break;
        }
        if phase == Phase::Word {
            if ch.is_whitespace() {
                phase = Phase::Spaces;
                if blank_ok || !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
                word.clear();
                blank_ok = false;
                pos += 1;
                continue;
            }
            if ch == '\'' || ch == '"' {
                quote = ch;
                blank_ok = true;
                phase = Phase::Quote;
            }
            if ch == escape {
                if pos + 1 == n {
                    pos += 1;
                    continue; // an escape at the very end is dropped
                }
                // unquoted: keep the escape and the escaped character, even a quote
                word.push(ch);
                pos += 1;
                ch = chars[pos];
            }
            word.push(ch);
            pos += 1;
            continue;
        }
        // inside quotes
        if ch == quote {
            phase = Phase::Word;
        }
        // the escape works inside double quotes only
        if ch == escape && quote != '\'' {
            if pos + 1 == n {
                phase = Phase::Word;
                pos += 1;
                continue;
            }
            pos += 1;
            word.push(ch);
            ch = chars[pos];
        }
        word.push(ch);
        pos += 1;
    }
    words
}

/// ENV and LABEL: the old `KEY value with spaces` form (a space before any `=`) or
/// `k=v k2="v 2"` pairs (BuildKit's `parseNameVal`). Values stay raw.
fn name_val(rest: &str, key: &str, escape: char) -> Result<Vec<(String, String)>, String> {
    let words = parse_words(rest, escape);
    let Some(first) = words.first() else {
        return Ok(Vec::new());
    };
    if !first.contains('=') {
        let parts: Vec<&str> = WHITESPACE.splitn(rest, 2).collect();
        if parts.len() < 2 {
            return Err(format!("{key} must have two arguments"));
        }
        return Ok(vec![(parts[0].to_string(), parts[1].to_string())]);
    }
    words
        .iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => Err(format!(
                "Syntax error - can't find = in {}. Must be of the form: name=value",
                go_quote(w)
            )),
        })
        .collect()
}

/// Whitespace-separated words, as written.
fn whitespace_words(rest: &str) -> Vec<String> {
    if rest.is_empty() {
        return Vec::new();
    }
    WHITESPACE.split(rest).map(str::to_string).collect()
}

enum JsonArgs {
    Strings(Vec<String>),
    NotJson,
}

/// A JSON array of strings; anything that is not valid JSON (or not an array) is not
/// JSON; an array holding anything but strings is an error.
fn parse_json(rest: &str) -> Result<JsonArgs, String> {
    let rest = rest.trim_start();
    if !rest.starts_with('[') {
        return Ok(JsonArgs::NotJson);
    }
    let Ok(serde_json::Value::Array(items)) = serde_json::from_str::<serde_json::Value>(rest)
    else {
        return Ok(JsonArgs::NotJson);
    };
    items
        .into_iter()
        .map(|v| match v {
            serde_json::Value::String(s) => Ok(s),
            _ => Err(NOT_STRING_ARRAY.to_string()),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(JsonArgs::Strings)
}

/// RUN, CMD, ENTRYPOINT, SHELL: a JSON array, or else the whole text as one argument.
fn maybe_json(rest: &str) -> Result<(Vec<String>, bool), String> {
    if rest.is_empty() {
        return Ok((Vec::new(), false));
    }
    Ok(match parse_json(rest)? {
        JsonArgs::Strings(v) => (v, true),
        JsonArgs::NotJson => (vec![rest.to_string()], false),
    })
}

/// COPY, ADD, VOLUME: a JSON array, or else whitespace-separated words.
fn maybe_json_to_list(rest: &str) -> Result<(Vec<String>, bool), String> {
    Ok(match parse_json(rest)? {
        JsonArgs::Strings(v) => (v, true),
        JsonArgs::NotJson => (whitespace_words(rest), false),
    })
}

/// HEALTHCHECK: a type word (CMD, NONE, ...) then a command as for CMD.
fn health_config(rest: &str) -> Result<(Vec<String>, bool), String> {
    let sep = rest.find(char::is_whitespace).unwrap_or(rest.len());
    if sep == 0 {
        return Ok((Vec::new(), false));
    }
    let typ = rest[..sep].to_string();
    let cmd = rest[sep..].trim_start();
    let (words, json) = maybe_json(cmd)?;
    Ok((std::iter::once(typ).chain(words).collect(), json))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(line: &str) -> Node {
        parse_line(line, '\\').unwrap()
    }

    #[test]
    fn parse_words_keeps_quotes_and_escapes() {
        let cases: &[(&str, &[&str])] = &[
            ("foo", &["foo"]),
            ("foo bar", &["foo", "bar"]),
            ("foo\\ bar", &["foo\\ bar"]),
            ("foo=bar", &["foo=bar"]),
            ("foo bar 'abc xyz'", &["foo", "bar", "'abc xyz'"]),
            ("foo bar \"abc xyz\"", &["foo", "bar", "\"abc xyz\""]),
            ("àöû", &["àöû"]),
            ("föo bàr \"âbc xÿz\"", &["föo", "bàr", "\"âbc xÿz\""]),
            ("a=\"\" b=''", &["a=\"\"", "b=''"]),
            ("\"\"", &["\"\""]),
            ("a\\", &["a"]),
            ("\"a\\\"b\" c", &["\"a\\\"b\"", "c"]),
            ("'a\\'b c", &["'a\\'b", "c"]),
        ];
        for (input, expect) in cases {
            assert_eq!(parse_words(input, '\\'), *expect, "{input:?}");
        }
    }

    #[test]
    fn flags_are_split_off() {
        let n = node("COPY --from=build --chown=1:1 a b");
        assert_eq!(n.flags, ["--from=build", "--chown=1:1"]);
        assert_eq!(n.args, ["a", "b"]);
        let n = node("RUN --mount=\"type=bind,source=a b\" echo");
        assert_eq!(n.flags, ["--mount=type=bind,source=a b"]);
        assert_eq!(n.args, ["echo"]);
        let n = node("RUN -- --not-a-flag");
        assert!(n.flags.is_empty());
        assert_eq!(n.args, ["--not-a-flag"]);
        let n = node("RUN --network=none");
        assert_eq!(n.flags, ["--network=none"]);
        assert!(n.args.is_empty());
        let n = node("RUN -x");
        assert!(n.flags.is_empty());
        assert_eq!(n.args, ["-x"]);
        let n = node("COPY --link\tsrc dst");
        assert_eq!(n.flags, ["--link"]);
    }

    #[test]
    fn json_or_text() {
        let n = node("CMD [\"a\", \"b c\"]");
        assert!(n.json);
        assert_eq!(n.args, ["a", "b c"]);
        let n = node("CMD [\"a\", \"b\"");
        assert!(!n.json);
        assert_eq!(n.args, ["[\"a\", \"b\""]);
        let n = node("CMD [\"a\"] trailing");
        assert!(!n.json);
        assert_eq!(
            parse_line("CMD [\"a\", 1]", '\\').unwrap_err(),
            NOT_STRING_ARRAY
        );
        let n = node("COPY [ \"test file\", \"/tmp\" ]");
        assert_eq!(n.args, ["test file", "/tmp"]);
        let n = node("COPY\t.\t/go");
        assert_eq!(n.args, [".", "/go"]);
    }

    #[test]
    fn json_arrays_of_strings() {
        let valid: &[(&str, &[&str])] = &[
            ("[]", &[]),
            ("[\"\"]", &[""]),
            ("[\"a\"]", &["a"]),
            ("[\"a\",\"b\"]", &["a", "b"]),
            ("[ \"a\", \"b\" ]", &["a", "b"]),
            ("[\t\"a\",\t\"b\"\t]", &["a", "b"]),
            ("\t[\t\"a\",\t\"b\"\t]\t", &["a", "b"]),
            (
                r#"["abc 123", "♥", "☃", "\" \\ \/ \b \f \n \r \t \u0000"]"#,
                &["abc 123", "♥", "☃", "\" \\ / \u{8} \u{c} \n \r \t \u{0}"],
            ),
        ];
        for (src, expect) in valid {
            match parse_json(src).unwrap() {
                JsonArgs::Strings(v) => assert_eq!(v, *expect, "{src}"),
                JsonArgs::NotJson => panic!("{src} should be JSON"),
            }
        }
        for src in [
            "[\"a\",42,\"b\"]",
            "[\"a\",123.456,\"b\"]",
            "[\"a\",{},\"b\"]",
            "[\"a\",{\"c\": \"d\"},\"b\"]",
            "[\"a\",[\"c\"],\"b\"]",
            "[\"a\",true,\"b\"]",
            "[\"a\",false,\"b\"]",
            "[\"a\",null,\"b\"]",
        ] {
            assert_eq!(
                parse_json(src).err().as_deref(),
                Some(NOT_STRING_ARRAY),
                "{src}"
            );
        }
    }

    #[test]
    fn env_forms() {
        assert_eq!(node("ENV a b c").pairs, [("a".into(), "b c".into())]);
        assert_eq!(
            node("ENV\tPATH\t/usr/local/go/bin:$PATH").pairs,
            [("PATH".into(), "/usr/local/go/bin:$PATH".into())]
        );
        assert_eq!(
            node("ENV a=1 b=\"x y\" c=z\\ w").pairs,
            [
                ("a".into(), "1".into()),
                ("b".into(), "\"x y\"".into()),
                ("c".into(), "z\\ w".into())
            ]
        );
        assert_eq!(
            parse_line("ENV a", '\\').unwrap_err(),
            "ENV must have two arguments"
        );
        assert_eq!(
            parse_line("LABEL a", '\\').unwrap_err(),
            "LABEL must have two arguments"
        );
        assert_eq!(
            parse_line("ENV a=1 b", '\\').unwrap_err(),
            "Syntax error - can't find = in \"b\". Must be of the form: name=value"
        );
        assert!(node("ENV").pairs.is_empty());
    }

    #[test]
    fn healthcheck_shapes() {
        let n = node("HEALTHCHECK --interval=5s CMD /check --quiet");
        assert_eq!(n.flags, ["--interval=5s"]);
        assert_eq!(n.args, ["CMD", "/check --quiet"]);
        let n = node("HEALTHCHECK   CMD   a b");
        assert_eq!(n.args, ["CMD", "a b"]);
        let n = node("HEALTHCHECK CMD [\"foo\"]");
        assert!(n.json);
        assert_eq!(n.args, ["CMD", "foo"]);
        assert!(node("HEALTHCHECK").args.is_empty());
        assert_eq!(
            node("HEALTHCHECK CONNECT TCP 7000").args,
            ["CONNECT", "TCP 7000"]
        );
    }

    #[test]
    fn onbuild_nests() {
        let n = node("ONBUILD RUN --mount=type=cache,target=/x echo hi");
        assert_eq!(n.args, ["RUN", "echo hi"]);
        let sub = n.sub.as_ref().unwrap();
        assert_eq!(sub.flags, ["--mount=type=cache,target=/x"]);
        assert!(n.can_contain_heredoc());
        assert!(!node("ONBUILD RUN [\"a\"]").can_contain_heredoc());
        assert!(!node("ONBUILD ENV a=b").can_contain_heredoc());
        assert_eq!(
            parse_line("ONBUILD ENV a", '\\').unwrap_err(),
            "ENV must have two arguments"
        );
    }

    #[test]
    fn names_keep_their_case() {
        let n = node("run echo");
        assert_eq!(n.cmd, "run");
        assert!(n.can_contain_heredoc());
        assert_eq!(node("WorkDir /a b").args, ["/a b"]);
        assert_eq!(node("FROM  a  AS  b").args, ["a", "AS", "b"]);
    }
}
