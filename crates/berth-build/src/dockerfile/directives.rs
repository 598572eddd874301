//! Parser directives (`# syntax=`, `# escape=`, `# check=`). BuildKit only honours
//! them in the comment lines at the very top of the file: the first line that is not a
//! known directive (an instruction, an ordinary comment, a blank line) ends the search.

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;

/// `^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$` with Go's `\s` ([\t\n\f\r ]).
static DIRECTIVE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^#[\t\n\x0C\r ]*([a-zA-Z][a-zA-Z0-9]*)[\t\n\x0C\r ]*=[\t\n\x0C\r ]*(.+?)[\t\n\x0C\r ]*$",
    )
    .expect("directive regex compiles")
});

/// The state of directive detection while the first lines are read.
#[derive(Debug)]
pub(crate) struct Directives {
    done: bool,
    seen: HashSet<String>,
    pub(crate) escape: char,
    pub(crate) syntax: Option<String>,
}

impl Directives {
    /// Directives are looked for at the top of the file; the escape starts as `\`.
    pub(crate) fn new() -> Directives {
        Directives {
            done: false,
            seen: HashSet::new(),
            escape: '\\',
            syntax: None,
        }
    }

    /// No directive detection (for a single ONBUILD trigger), with a given escape.
    pub(crate) fn disabled(escape: char) -> Directives {
        Directives {
            done: true,
            seen: HashSet::new(),
            escape,
            syntax: None,
        }
    }

    /// Looks at one physical line (newline and leading whitespace already gone).
    /// Errors are BuildKit's: a repeated directive, an escape other than `\` or `` ` ``.
    pub(crate) fn feed(&mut self, line: &str) -> Result<(), String> {
        if self.done {
            return Ok(());
        }
        let Some(caps) = DIRECTIVE.captures(line) else {
            self.done = true;
            return Ok(());
        };
        let key = caps[1].to_lowercase();
        if !matches!(key.as_str(), "escape" | "syntax" | "check") {
            self.done = true;
            return Ok(());
        }
        if !self.seen.insert(key.clone()) {
            return Err(format!("only one {key} parser directive can be used"));
        }
        let value = &caps[2];
        match key.as_str() {
            "escape" => {
                self.escape = match value {
                    "`" => '`',
                    "\\" => '\\',
                    v => return Err(format!("invalid escape token '{v}' does not match ` or \\")),
                };
            }
            "syntax" => self.syntax = Some(value.to_string()),
            _ => {} // check=: lint configuration, accepted and ignored
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(lines: &[&str]) -> Result<Directives, String> {
        let mut d = Directives::new();
        for l in lines {
            d.feed(l)?;
        }
        Ok(d)
    }

    #[test]
    fn reads_directives_at_the_top() {
        let d = run(&[
            "# syntax = docker/dockerfile:1",
            "#escape=`",
            "# check=skip=all",
            "FROM x",
        ])
        .unwrap();
        assert_eq!(d.escape, '`');
        assert_eq!(d.syntax.as_deref(), Some("docker/dockerfile:1"));
        assert!(d.done);
    }

    #[test]
    fn directive_names_are_case_insensitive_and_values_trimmed() {
        let d = run(&["# ESCAPE =  `   "]).unwrap();
        assert_eq!(d.escape, '`');
    }

    #[test]
    fn a_comment_or_instruction_ends_the_search() {
        let d = run(&["# just a comment", "# escape=`"]).unwrap();
        assert_eq!(d.escape, '\\');
        let d = run(&["FROM x", "# escape=`"]).unwrap();
        assert_eq!(d.escape, '\\');
        let d = run(&["", "# escape=`"]).unwrap();
        assert_eq!(d.escape, '\\');
        // an unknown directive is an ordinary comment, which ends the search too
        let d = run(&["# foo=bar", "# escape=`"]).unwrap();
        assert_eq!(d.escape, '\\');
    }

    #[test]
    fn repeated_and_invalid_directives_fail() {
        assert_eq!(
            run(&["# escape=`", "# escape=\\"]).unwrap_err(),
            "only one escape parser directive can be used"
        );
        assert_eq!(
            run(&["# syntax=a", "# Syntax=b"]).unwrap_err(),
            "only one syntax parser directive can be used"
        );
        assert_eq!(
            run(&["# escape=x"]).unwrap_err(),
            "invalid escape token 'x' does not match ` or \\"
        );
    }

    #[test]
    fn disabled_keeps_the_given_escape() {
        let mut d = Directives::disabled('`');
        d.feed("# escape=\\").unwrap();
        assert_eq!(d.escape, '`');
    }
}
