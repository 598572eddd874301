//! BuildKit's shell-word lexer (`frontend/dockerfile/shell`): variable expansion and
//! quote/escape removal for the words of ADD, COPY, ENV, EXPOSE, FROM, LABEL,
//! STOPSIGNAL, USER, VOLUME, WORKDIR, ONBUILD and flag values. It is not a shell:
//! no command substitution, no globbing, only the `${...}` forms BuildKit knows,
//! with BuildKit's quirks kept so that words expand exactly as under `docker build`.

use regex::Regex;

use super::messages::go_quote;

/// Expands variables and removes quotes and escapes as BuildKit's `shell.Lex` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lexer {
    escape: char,
    raw_quotes: bool,
    raw_escapes: bool,
    skip_unset_env: bool,
    skip_process_quotes: bool,
}

impl Lexer {
    /// A lexer with the Dockerfile's escape character (`\` or `` ` ``).
    pub fn new(escape: char) -> Lexer {
        Lexer {
            escape,
            raw_quotes: false,
            raw_escapes: false,
            skip_unset_env: false,
            skip_process_quotes: false,
        }
    }

    /// Keep quote characters in the output (BuildKit's `RawQuotes`).
    pub fn raw_quotes(mut self, on: bool) -> Lexer {
        self.raw_quotes = on;
        self
    }

    /// Keep escape characters in the output (BuildKit's `RawEscapes`).
    pub fn raw_escapes(mut self, on: bool) -> Lexer {
        self.raw_escapes = on;
        self
    }

    /// Leave references to unset variables as written (BuildKit's `SkipUnsetEnv`).
    pub fn skip_unset_env(mut self, on: bool) -> Lexer {
        self.skip_unset_env = on;
        self
    }

    /// Treat quotes as ordinary characters (BuildKit's `SkipProcessQuotes`).
    pub fn skip_process_quotes(mut self, on: bool) -> Lexer {
        self.skip_process_quotes = on;
        self
    }

    /// BuildKit's `ProcessWord`: expands `$v`, `${v}`, `${v:-x}`, `${v-x}`, `${v:+x}`,
    /// `${v+x}`, `${v:?msg}`, `${v?msg}`, `${v#p}`, `${v##p}`, `${v%p}`, `${v%%p}`,
    /// `${v/a/b}`, `${v//a/b}`, and removes quotes and escapes. Whitespace is kept.
    /// Errors read as BuildKit's ("failed to process \"...\": syntax error: missing '}'").
    pub fn expand_word(
        &self,
        word: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<String, String> {
        self.process(word, env).map(|(w, _)| w)
    }

    /// BuildKit's `ProcessWords`: as `expand_word`, then split on whitespace that was
    /// not quoted or escaped (including whitespace that came out of a variable).
    pub fn expand_words(
        &self,
        word: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Vec<String>, String> {
        self.process(word, env).map(|(_, ws)| ws)
    }

    fn process(
        &self,
        source: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<(String, Vec<String>), String> {
        let mut sw = ShellWord {
            lex: self,
            chars: source.chars().collect(),
            pos: 0,
            env,
            raw_escapes: self.raw_escapes,
        };
        let raw = sw.raw_escapes;
        sw.process_stop_on(None, raw)
            .map_err(|e| format!("failed to process {}: {e}", go_quote(source)))
    }
}

/// Collects the words of `ProcessWords` while the word is being expanded.
#[derive(Default)]
struct Words {
    buf: String,
    words: Vec<String>,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, ch: char) {
        if ch.is_whitespace() {
            if self.in_word && !self.buf.is_empty() {
                self.words.push(std::mem::take(&mut self.buf));
                self.in_word = false;
            }
        } else {
            self.add_raw_char(ch);
        }
    }

    fn add_raw_char(&mut self, ch: char) {
        self.buf.push(ch);
        self.in_word = true;
    }

    fn add_string(&mut self, s: &str) {
        for ch in s.chars() {
            self.add_char(ch);
        }
    }

    fn add_raw_string(&mut self, s: &str) {
        self.buf.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if !self.buf.is_empty() {
            self.words.push(std::mem::take(&mut self.buf));
        }
        self.words
    }
}

/// One run of the lexer over one word.
struct ShellWord<'a> {
    lex: &'a Lexer,
    chars: Vec<char>,
    pos: usize,
    env: &'a dyn Fn(&str) -> Option<String>,
    raw_escapes: bool,
}

/// What Go's `string(scanner.EOF)` prints.
const EOF_TEXT: char = '\u{FFFD}';

impl ShellWord<'_> {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.chars.get(self.pos).copied();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn get_env(&self, name: &str) -> Option<String> {
        (self.env)(name)
    }

    /// Processes up to `stop` (consumed) or the end of the word.
    fn process_stop_on(
        &mut self,
        stop: Option<char>,
        raw_escapes: bool,
    ) -> Result<(String, Vec<String>), String> {
        let saved = self.raw_escapes;
        self.raw_escapes = raw_escapes;
        let r = self.stop_on(stop);
        self.raw_escapes = saved;
        r
    }

    fn stop_on(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), String> {
        let mut result = String::new();
        let mut words = Words::default();
        while let Some(ch) = self.peek() {
            if stop == Some(ch) {
                self.next();
                return Ok((result, words.finish()));
            }
            let quotes = !self.lex.skip_process_quotes;
            if ch == '$' {
                let tmp = self.process_dollar()?;
                result.push_str(&tmp);
                words.add_string(&tmp);
            } else if quotes && (ch == '\'' || ch == '"') {
                let tmp = if ch == '\'' {
                    self.process_single_quote()?
                } else {
                    self.process_double_quote()?
                };
                result.push_str(&tmp);
                words.add_raw_string(&tmp);
            } else {
                let mut ch = self.next().unwrap_or(ch);
                if ch == self.lex.escape {
                    if self.raw_escapes {
                        words.add_raw_char(ch);
                        result.push(ch);
                    }
                    // the escape escapes the next character; at the end it is dropped
                    match self.next() {
                        Some(c) => ch = c,
                        None => break,
                    }
                    words.add_raw_char(ch);
                } else {
                    words.add_char(ch);
                }
                result.push(ch);
            }
        }
        if let Some(stop) = stop {
            return Err(format!(
                "unexpected end of statement while looking for matching {stop}"
            ));
        }
        Ok((result, words.finish()))
    }

    /// `'...'`: everything literal up to the next `'`; no escapes.
    fn process_single_quote(&mut self) -> Result<String, String> {
        let mut result = String::new();
        if let Some(q) = self.next()
            && self.lex.raw_quotes
        {
            result.push(q);
        }
        loop {
            match self.next() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching single-quote"
                            .into(),
                    );
                }
                Some('\'') => {
                    if self.lex.raw_quotes {
                        result.push('\'');
                    }
                    return Ok(result);
                }
                Some(c) => result.push(c),
            }
        }
    }

    /// `"..."`: literal except `$` expansion and the escape before `"`, `$` or itself.
    fn process_double_quote(&mut self) -> Result<String, String> {
        let mut result = String::new();
        if let Some(q) = self.next()
            && self.lex.raw_quotes
        {
            result.push(q);
        }
        loop {
            match self.peek() {
                None => {
                    return Err(
                        "unexpected end of statement while looking for matching double-quote"
                            .into(),
                    );
                }
                Some('"') => {
                    self.next();
                    if self.lex.raw_quotes {
                        result.push('"');
                    }
                    return Ok(result);
                }
                Some('$') => {
                    let value = self.process_dollar()?;
                    result.push_str(&value);
                }
                Some(_) => {
                    let Some(mut ch) = self.next() else { continue };
                    if ch == self.lex.escape {
                        if self.raw_escapes {
                            result.push(ch);
                        }
                        match self.peek() {
                            // an escape at the very end is dropped (and the quote is unclosed)
                            None => continue,
                            Some(c) if c == '"' || c == '$' || c == self.lex.escape => {
                                self.next();
                                ch = c;
                            }
                            Some(_) => {}
                        }
                    }
                    result.push(ch);
                }
            }
        }
    }

    fn process_dollar(&mut self) -> Result<String, String> {
        self.next(); // the '$'
        if self.peek() != Some('{') {
            let name = self.process_name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.lex.skip_unset_env => format!("${name}"),
                None => String::new(),
            });
        }
        self.next(); // the '{'
        match self.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            _ => {}
        }
        let name = self.process_name();
        let first = self.next();
        let mut chs = String::from(first.unwrap_or(EOF_TEXT));
        match first {
            Some('}') => Ok(match self.get_env(&name) {
                Some(v) => v,
                None if self.lex.skip_unset_env => format!("${{{name}}}"),
                None => String::new(),
            }),
            Some(':' | '+' | '-' | '?' | '#' | '%') => {
                let null_is_unset = first == Some(':');
                let modifier = if null_is_unset {
                    let m = self.next();
                    chs.push(m.unwrap_or(EOF_TEXT));
                    m
                } else {
                    first
                };
                let raw = matches!(modifier, Some('#' | '%'));
                if null_is_unset && raw {
                    return Err(format!("unsupported modifier ({chs}) in substitution"));
                }
                let mut word = match self.process_stop_on(Some('}'), raw) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        if self.peek().is_none() {
                            return Err("syntax error: missing '}'".into());
                        }
                        return Err(e);
                    }
                };
                let value = self.get_env(&name);
                if self.lex.skip_unset_env && value.is_none() {
                    return Ok(format!("${{{name}{chs}{word}}}"));
                }
                let set = value.is_some();
                let value = value.unwrap_or_default();
                match modifier {
                    Some('-') => Ok(if !set || (null_is_unset && value.is_empty()) {
                        word
                    } else {
                        value
                    }),
                    Some('+') => Ok(if !set || (null_is_unset && value.is_empty()) {
                        String::new()
                    } else {
                        word
                    }),
                    Some('?') => {
                        if !set {
                            let msg = if word.is_empty() {
                                "is not allowed to be unset".to_string()
                            } else {
                                word
                            };
                            return Err(format!("{name}: {msg}"));
                        }
                        if null_is_unset && value.is_empty() {
                            let msg = if word.is_empty() {
                                "is not allowed to be empty".to_string()
                            } else {
                                word
                            };
                            return Err(format!("{name}: {msg}"));
                        }
                        Ok(value)
                    }
                    Some(m @ ('%' | '#')) => {
                        // %/# remove the shortest match, %%/## the longest
                        let greedy = word.starts_with(m);
                        if greedy {
                            word.remove(0);
                        }
                        if m == '%' {
                            trim_suffix(&word, &value, greedy)
                        } else {
                            trim_prefix(&word, &value, greedy)
                        }
                    }
                    _ => Err(format!("unsupported modifier ({chs}) in substitution")),
                }
            }
            Some('/') => {
                let replace_all = self.peek() == Some('/');
                if replace_all {
                    self.next();
                }
                let pattern = match self.process_stop_on(Some('/'), true) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        if self.peek().is_none() {
                            return Err("syntax error: missing '/' in ${}".into());
                        }
                        return Err(e);
                    }
                };
                let replacement = match self.process_stop_on(Some('}'), true) {
                    Ok((w, _)) => w,
                    Err(e) => {
                        if self.peek().is_none() {
                            return Err("syntax error: missing '}'".into());
                        }
                        return Err(e);
                    }
                };
                let Some(value) = self.get_env(&name) else {
                    if self.lex.skip_unset_env {
                        return Ok(format!("${{{name}/{pattern}/{replacement}}}"));
                    }
                    return substitute("", &pattern, &replacement, replace_all);
                };
                substitute(&value, &pattern, &replacement, replace_all)
            }
            _ => Err(format!("unsupported modifier ({chs}) in substitution")),
        }
    }

    /// A variable name: letters, digits and `_`; or a run of digits; or one special
    /// parameter character (`@*#?-$!0`).
    fn process_name(&mut self) -> String {
        let mut name = String::new();
        while let Some(ch) = self.peek() {
            if name.is_empty() && is_go_digit(ch) {
                while let Some(c) = self.peek() {
                    if !is_go_digit(c) {
                        break;
                    }
                    self.next();
                    name.push(c);
                }
                return name;
            }
            if name.is_empty() && matches!(ch, '@' | '*' | '#' | '?' | '-' | '$' | '!' | '0') {
                self.next();
                return ch.to_string();
            }
            if !ch.is_alphabetic() && !is_go_digit(ch) && ch != '_' {
                break;
            }
            self.next();
            name.push(ch);
        }
        name
    }
}

/// Go's `unicode.IsDigit`, close enough: ASCII digits, and numeric characters of
/// other scripts.
fn is_go_digit(c: char) -> bool {
    c.is_ascii_digit() || (!c.is_ascii() && c.is_numeric())
}

/// `${v/pattern/replacement}` and `${v//pattern/replacement}`.
fn substitute(value: &str, pattern: &str, replacement: &str, all: bool) -> Result<String, String> {
    let re = shell_pattern_regex(pattern, true, false)
        .map_err(|e| format!("invalid pattern ({pattern}) in substitution: {e}"))?;
    if all {
        Ok(re
            .replace_all(value, regex::NoExpand(replacement))
            .into_owned())
    } else if let Some(m) = re.find(value) {
        Ok(format!(
            "{}{}{}",
            &value[..m.start()],
            replacement,
            &value[m.end()..]
        ))
    } else {
        Ok(value.to_string())
    }
}

/// BuildKit's `convertShellPatternToRegex`: `*` any string (shortest unless greedy),
/// `?` one character, `\` escapes `*`, `?` and `\` (and is dropped before `}` or `/`),
/// everything else literal. Bracket expressions are not supported, as in BuildKit.
fn shell_pattern_regex(pattern: &str, greedy: bool, anchored: bool) -> Result<Regex, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 4);
    if anchored {
        out.push('^');
    }
    let star = if greedy { ".*" } else { ".*?" };
    let mut i = 0;
    while i < chars.len() {
        let tok = chars[i];
        i += 1;
        match tok {
            '*' => out.push_str(star),
            '?' => out.push('.'),
            '\\' => {
                if matches!(chars.get(i), Some('}' | '/')) {
                    continue;
                }
                let next = chars.get(i).copied();
                i += 1;
                match next {
                    Some(c @ ('*' | '?' | '\\')) => out.push_str(&regex::escape(&c.to_string())),
                    other => {
                        return Err(format!("invalid escape '\\{}'", other.unwrap_or(EOF_TEXT)));
                    }
                }
            }
            c => out.push_str(&regex::escape(&c.to_string())),
        }
    }
    Regex::new(&out).map_err(|e| e.to_string())
}

fn trim_prefix(pattern: &str, value: &str, greedy: bool) -> Result<String, String> {
    let re = shell_pattern_regex(pattern, greedy, true)
        .map_err(|e| format!("invalid pattern ({pattern}) in substitution: {e}"))?;
    Ok(match re.find(value) {
        Some(m) => value[m.end()..].to_string(),
        None => value.to_string(),
    })
}

/// Regular expressions cannot find the shortest match from the right, so both the
/// pattern and the value are reversed and the prefix is trimmed instead.
fn trim_suffix(pattern: &str, value: &str, greedy: bool) -> Result<String, String> {
    let rev: String = value.chars().rev().collect();
    let trimmed = trim_prefix(&reverse_pattern(pattern), &rev, greedy)?;
    Ok(trimmed.chars().rev().collect())
}

/// Reverses a pattern but keeps each `\x` escape in front of its character.
fn reverse_pattern(pattern: &str) -> String {
    let p: Vec<char> = pattern.chars().collect();
    let mut out = vec!['\0'; p.len()];
    let last = p.len().saturating_sub(1);
    let mut i = 0;
    while i < p.len() {
        let out_idx = last - i;
        if p[i] == '\\' && i != last {
            out[out_idx - 1] = '\\';
            out[out_idx] = p[i + 1];
            i += 2;
        } else {
            out[out_idx] = p[i];
            i += 1;
        }
    }
    out.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k| {
            pairs
                .iter()
                .rev()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn reverses_patterns_keeping_escapes() {
        assert_eq!(reverse_pattern("a\\*c"), "c\\*a");
        assert_eq!(reverse_pattern("\\\\\\ab"), "b\\a\\\\");
        assert_eq!(reverse_pattern("ab\\"), "\\ba");
        assert_eq!(reverse_pattern("👽\\🚀🖖"), "🖖\\🚀👽");
        assert_eq!(reverse_pattern("\\\\b"), "b\\\\");
    }

    #[test]
    fn shell_patterns() {
        let re = shell_pattern_regex("(()[]{\\}^$.\\*\\?|\\\\", true, true).unwrap();
        assert!(re.is_match("(()[]{}^$.*?|\\"));
        for bad in ["\\", "\\x", "\\\\\\"] {
            assert!(shell_pattern_regex(bad, true, true).is_err(), "{bad:?}");
        }
        assert_eq!(
            shell_pattern_regex("\\x", true, true).unwrap_err(),
            "invalid escape '\\x'"
        );
    }

    #[test]
    fn raw_modes_keep_quotes_and_escapes() {
        let none = env(&[]);
        let lex = Lexer::new('\\')
            .raw_quotes(true)
            .raw_escapes(true)
            .skip_unset_env(true);
        assert_eq!(
            lex.expand_words("RUN <<'EOF' \"a b\" \\x $HOME ${X:-y}", &none)
                .unwrap(),
            vec!["RUN", "<<'EOF'", "\"a b\"", "\\x", "$HOME", "${X:-y}"]
        );
    }

    #[test]
    fn backtick_escape() {
        let none = env(&[]);
        let lex = Lexer::new('`');
        assert_eq!(lex.expand_word("a`$b", &none).unwrap(), "a$b");
        assert_eq!(lex.expand_word("c:\\dir", &none).unwrap(), "c:\\dir");
        assert_eq!(lex.expand_word("\"a`\"b\"", &none).unwrap(), "a\"b");
    }

    #[test]
    fn skip_process_quotes() {
        let e = env(&[("A", "x")]);
        let lex = Lexer::new('\\').skip_process_quotes(true);
        assert_eq!(lex.expand_word("'$A' \"$A\"", &e).unwrap(), "'x' \"x\"");
    }

    #[test]
    fn errors_name_the_word() {
        let none = env(&[]);
        assert_eq!(
            Lexer::new('\\')
                .expand_word("he${PWD:-x", &none)
                .unwrap_err(),
            "failed to process \"he${PWD:-x\": syntax error: missing '}'"
        );
        assert_eq!(
            Lexer::new('\\').expand_word("he${PWD", &none).unwrap_err(),
            "failed to process \"he${PWD\": unsupported modifier (\u{FFFD}) in substitution"
        );
    }
}
