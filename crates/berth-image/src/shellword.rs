//! Docker's builder word processing (moby/buildkit `shell.Lex`): quotes are removed
//! and `$VAR` / `${VAR}` (with `:-`, `-`, `:+`, `+`, `:?`, `?`) are replaced from the
//! environment defined so far, the way `ENV`, `LABEL`, `WORKDIR`, `USER`, `VOLUME`,
//! `STOPSIGNAL` and `EXPOSE` see their arguments in a Dockerfile and in
//! `commit --change` / `import --change`.
//!
//! - `'...'` is literal; `"..."` expands variables, and `\` escapes `"`, `$` and `\`
//!   in it (any other backslash stays);
//! - outside quotes `\` escapes the next character (a trailing `\` is dropped);
//! - `$` not followed by a name or `{` is a literal `$`.

/// The value of a variable in `env` (`KEY=value` entries, as a config's `Env`).
fn lookup<'a>(env: &'a [String], name: &str) -> Option<&'a str> {
    env.iter().find_map(|e| match e.split_once('=') {
        Some((k, v)) if k == name => Some(v),
        None if e == name => Some(""),
        _ => None,
    })
}

/// Processes `word` into one string (spaces inside kept): `ENV`, `LABEL`, `WORKDIR`...
pub fn process_word(word: &str, env: &[String]) -> Result<String, String> {
    let mut lx = Lexer::new(word, env);
    let (s, _) = lx.process_until(None)?;
    Ok(s)
}

/// Processes `word` and splits the result into words on unquoted whitespace, the
/// splitting happening after expansion (`EXPOSE $PORTS` with `PORTS="80 443"`).
pub fn process_words(word: &str, env: &[String]) -> Result<Vec<String>, String> {
    let mut lx = Lexer::new(word, env);
    let (_, words) = lx.process_until(None)?;
    Ok(words)
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    env: &'a [String],
}

/// Words being collected: expanded variable values split on whitespace, quoted text
/// never.
#[derive(Default)]
struct Words {
    words: Vec<String>,
    word: String,
    in_word: bool,
}

impl Words {
    fn add_char(&mut self, c: char) {
        if c.is_whitespace() {
            if self.in_word && !self.word.is_empty() {
                self.words.push(std::mem::take(&mut self.word));
            }
            self.in_word = false;
        } else {
            self.add_raw_char(c);
        }
    }

    fn add_raw_char(&mut self, c: char) {
        self.word.push(c);
        self.in_word = true;
    }

    fn add_str(&mut self, s: &str) {
        s.chars().for_each(|c| self.add_char(c));
    }

    fn add_raw_str(&mut self, s: &str) {
        self.word.push_str(s);
        self.in_word = true;
    }

    fn finish(mut self) -> Vec<String> {
        if self.in_word {
            self.words.push(self.word);
        }
        self.words
    }
}

impl<'a> Lexer<'a> {
    fn new(s: &str, env: &'a [String]) -> Self {
        Lexer {
            chars: s.chars().collect(),
            pos: 0,
            env,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    /// Processes up to `stop` (consumed) or the end: the string and its words.
    fn process_until(&mut self, stop: Option<char>) -> Result<(String, Vec<String>), String> {
        let mut out = String::new();
        let mut words = Words::default();
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.pos += 1;
                return Ok((out, words.finish()));
            }
            match c {
                '\'' => {
                    let s = self.single_quoted()?;
                    out.push_str(&s);
                    words.add_raw_str(&s);
                }
                '"' => {
                    let s = self.double_quoted()?;
                    out.push_str(&s);
                    words.add_raw_str(&s);
                }
                '$' => {
                    let s = self.dollar()?;
                    out.push_str(&s);
                    words.add_str(&s);
                }
                '\\' => {
                    self.pos += 1;
                    // A trailing backslash is dropped.
                    let Some(e) = self.next() else { break };
                    out.push(e);
                    words.add_raw_char(e);
                }
                _ => {
                    self.pos += 1;
                    out.push(c);
                    words.add_char(c);
                }
            }
        }
        match stop {
            Some(s) => Err(format!("unexpected end of statement while looking for matching {s}")),
            None => Ok((out, words.finish())),
        }
    }

    fn single_quoted(&mut self) -> Result<String, String> {
        self.pos += 1;
        let mut s = String::new();
        loop {
            match self.next() {
                None => return Err("unexpected end of statement while looking for matching single-quote".into()),
                Some('\'') => return Ok(s),
                Some(c) => s.push(c),
            }
        }
    }

    fn double_quoted(&mut self) -> Result<String, String> {
        self.pos += 1;
        let mut s = String::new();
        loop {
            match self.peek() {
                None => return Err("unexpected end of statement while looking for matching double-quote".into()),
                Some('"') => {
                    self.pos += 1;
                    return Ok(s);
                }
                Some('$') => s.push_str(&self.dollar()?),
                Some('\\') => {
                    self.pos += 1;
                    match self.peek() {
                        None => {}
                        Some(c @ ('"' | '$' | '\\')) => {
                            self.pos += 1;
                            s.push(c);
                        }
                        Some(_) => s.push('\\'),
                    }
                }
                Some(c) => {
                    self.pos += 1;
                    s.push(c);
                }
            }
        }
    }

    /// A name: letters, digits and `_`; a leading digit is a one-character name.
    fn name(&mut self) -> String {
        let mut n = String::new();
        while let Some(c) = self.peek() {
            if n.is_empty() && c.is_ascii_digit() {
                self.pos += 1;
                return c.to_string();
            }
            if !(c.is_alphanumeric() || c == '_') {
                break;
            }
            self.pos += 1;
            n.push(c);
        }
        n
    }

    fn dollar(&mut self) -> Result<String, String> {
        self.pos += 1;
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".into());
            }
            return Ok(lookup(self.env, &name).unwrap_or("").to_owned());
        }
        self.pos += 1;
        match self.peek() {
            None => return Err("syntax error: missing '}'".into()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".into()),
            _ => {}
        }
        let name = self.name();
        let value = lookup(self.env, &name);
        match self.next() {
            Some('}') => Ok(value.unwrap_or("").to_owned()),
            Some(c @ (':' | '-' | '+' | '?')) => {
                // `${x:-w}` tests unset-or-empty; `${x-w}` only unset.
                let (colon, modifier) = if c == ':' {
                    (true, self.next().ok_or("syntax error: missing '}'")?)
                } else {
                    (false, c)
                };
                let word = match self.process_until(Some('}')) {
                    Ok((w, _)) => w,
                    Err(_) if self.peek().is_none() => return Err("syntax error: missing '}'".into()),
                    Err(e) => return Err(e),
                };
                let set = match value {
                    Some(v) => !(colon && v.is_empty()),
                    None => false,
                };
                match modifier {
                    '-' => Ok(if set { value.unwrap_or("").to_owned() } else { word }),
                    '+' => Ok(if set { word } else { String::new() }),
                    '?' => {
                        if set {
                            Ok(value.unwrap_or("").to_owned())
                        } else if word.is_empty() {
                            Err(format!("{name}: is not allowed to be unset"))
                        } else {
                            Err(format!("{name}: {word}"))
                        }
                    }
                    m => Err(format!("unsupported modifier ({m}) in substitution")),
                }
            }
            Some(c) => Err(format!("unsupported modifier ({c}) in substitution")),
            None => Err("syntax error: missing '}'".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> Vec<String> {
        ["A=1", "B=two words", "EMPTY=", "PORTS=80 443/udp", "PATH=/usr/bin"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    fn w(s: &str) -> String {
        process_word(s, &env()).unwrap()
    }

    #[test]
    fn variables_expand_like_dockers_builder() {
        assert_eq!(w("$A"), "1");
        assert_eq!(w("${A}x"), "1x");
        assert_eq!(w("$Ax"), "", "the name is Ax");
        assert_eq!(w("/opt/$A/bin"), "/opt/1/bin");
        assert_eq!(w("$UNSET"), "");
        assert_eq!(w("${UNSET:-dflt}"), "dflt");
        assert_eq!(w("${EMPTY:-dflt}"), "dflt");
        assert_eq!(w("${EMPTY-dflt}"), "", "'-' tests unset only");
        assert_eq!(w("${UNSET-dflt}"), "dflt");
        assert_eq!(w("${A:+alt}"), "alt");
        assert_eq!(w("${EMPTY:+alt}"), "");
        assert_eq!(w("${EMPTY+alt}"), "alt");
        assert_eq!(w("${UNSET:-$A$A}"), "11", "nested expansion in the word");
        assert_eq!(w("${PATH}:/x"), "/usr/bin:/x");
        assert_eq!(w("a$"), "a$");
        assert_eq!(w("$ x"), "$ x");
        assert_eq!(w("$1"), "", "positional names are one digit");
    }

    #[test]
    fn quotes_and_escapes() {
        assert_eq!(w("'$A'"), "$A");
        assert_eq!(w("\"$A\""), "1");
        assert_eq!(w("\"a \\\"q\\\" \\$A \\x\""), "a \"q\" $A \\x");
        assert_eq!(w("\\$A"), "$A");
        assert_eq!(w("a\\ b"), "a b");
        assert_eq!(w("x\\"), "x", "a trailing backslash is dropped");
        assert_eq!(w("\"two words\""), "two words");
        assert_eq!(w("it's\"\"ok'"), "its\"\"ok");
    }

    #[test]
    fn words_split_after_expansion_but_not_inside_quotes() {
        let ws = |s: &str| process_words(s, &env()).unwrap();
        assert_eq!(ws("$PORTS"), vec!["80", "443/udp"]);
        assert_eq!(ws("\"$PORTS\""), vec!["80 443/udp"]);
        assert_eq!(ws("8080 $A"), vec!["8080", "1"]);
        assert_eq!(ws("  a   b  "), vec!["a", "b"]);
    }

    #[test]
    fn errors() {
        let e = |s: &str| process_word(s, &env()).unwrap_err();
        assert!(e("'open").contains("single-quote"));
        assert!(e("\"open").contains("double-quote"));
        assert!(e("${A").contains("missing '}'"));
        assert!(e("${}").contains("bad substitution"));
        assert!(e("${:x}").contains("bad substitution"));
        assert!(e("${A:%x}").contains("unsupported modifier"));
        assert_eq!(e("${UNSET:?must be set}"), "UNSET: must be set");
        assert_eq!(e("${UNSET?}"), "UNSET: is not allowed to be unset");
        assert_eq!(w("${A:?x}"), "1");
    }
}
