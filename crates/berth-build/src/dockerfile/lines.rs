//! From text to logical lines, as BuildKit's `parser.Parse` reads a Dockerfile:
//! parser directives at the top, `#` comment lines dropped (also inside continued
//! lines), the escape character at the end of a line continuing it (trailing blanks
//! allowed), blank lines inside a continuation skipped with a warning, and heredoc
//! bodies read after the line that opens them.

use super::directives::Directives;
use super::error::ParseError;
use super::heredoc;
use super::model::Heredoc;
use super::syntax::{self, Node};

/// bufio.Scanner's limit for one line, newline included.
const MAX_LINE: usize = 64 * 1024;

/// One instruction as read: its node, where it is, and its heredoc bodies.
#[derive(Debug, Clone)]
pub(crate) struct RawInstruction {
    pub(crate) start_line: usize,
    pub(crate) node: Node,
    pub(crate) heredocs: Vec<Heredoc>,
}

/// The file as logical lines.
#[derive(Debug)]
pub(crate) struct Ast {
    pub(crate) escape: char,
    pub(crate) syntax: Option<String>,
    pub(crate) nodes: Vec<RawInstruction>,
    pub(crate) warnings: Vec<String>,
}

/// Physical lines, each with its line ending.
struct PhysicalLines<'a> {
    rest: &'a str,
    number: usize,
}

impl<'a> PhysicalLines<'a> {
    /// The next line and its 1-based number.
    fn next_line(&mut self) -> Result<Option<(&'a str, usize)>, ParseError> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let end = self.rest.find('\n').map_or(self.rest.len(), |i| i + 1);
        let (line, rest) = self.rest.split_at(end);
        self.rest = rest;
        self.number += 1;
        if line.len() > MAX_LINE {
            return Err(ParseError::new(
                self.number,
                format!(
                    "dockerfile line greater than max allowed size of {}",
                    MAX_LINE - 1
                ),
            ));
        }
        let line = if self.number == 1 {
            line.strip_prefix('\u{feff}').unwrap_or(line)
        } else {
            line
        };
        Ok(Some((line, self.number)))
    }
}

/// Reads `text` into logical lines. `directives` decides whether `# escape=` and
/// friends are looked for and which escape character starts out.
pub(crate) fn read(text: &str, mut directives: Directives) -> Result<Ast, ParseError> {
    let mut lines = PhysicalLines {
        rest: text,
        number: 0,
    };
    let mut nodes = Vec::new();
    let mut warnings = Vec::new();

    while let Some((raw, number)) = lines.next_line()? {
        let first =
            process_line(&mut directives, raw, true).map_err(|m| ParseError::new(number, m))?;
        let start_line = number;
        let (mut line, mut end_of_line) = trim_continuation(&first, directives.escape);
        if end_of_line && line.is_empty() {
            continue;
        }

        let mut has_empty_continuation = false;
        while !end_of_line {
            let Some((raw, number)) = lines.next_line()? else {
                break;
            };
            let processed = process_line(&mut directives, raw, false)
                .map_err(|m| ParseError::new(number, m))?;
            if is_comment(raw) {
                continue;
            }
            if processed.trim_start().is_empty() {
                has_empty_continuation = true;
                continue;
            }
            let (part, end) = trim_continuation(&processed, directives.escape);
            line.push_str(&part);
            end_of_line = end;
        }
        if has_empty_continuation {
            warnings.push(format!(
                "[WARNING]: Empty continuation line found in: {line}"
            ));
        }

        let node = syntax::parse_line(&line, directives.escape)
            .map_err(|m| ParseError::new(start_line, m))?;
        let mut heredocs = Vec::new();
        if node.can_contain_heredoc() && line.contains("<<") {
            for doc in
                heredoc::heredocs_from_line(&line).map_err(|m| ParseError::new(start_line, m))?
            {
                let mut content = String::new();
                let mut terminated = false;
                while let Some((raw, _)) = lines.next_line()? {
                    let mut candidate = trim_newline(raw);
                    if doc.chomp {
                        candidate = candidate.trim_start_matches('\t');
                    }
                    if candidate == doc.name {
                        terminated = true;
                        break;
                    }
                    content.push_str(raw);
                }
                if !terminated {
                    return Err(ParseError::new(start_line, "unterminated heredoc"));
                }
                heredocs.push(Heredoc {
                    name: doc.name,
                    content,
                    expand: doc.expand,
                    chomp: doc.chomp,
                });
            }
        }
        nodes.push(RawInstruction {
            start_line,
            node,
            heredocs,
        });
    }

    if !warnings.is_empty() {
        warnings.push(
            "[WARNING]: Empty continuation lines will become errors in a future release.".into(),
        );
    }
    if nodes.is_empty() {
        return Err(ParseError::new(0, "file with no instructions"));
    }
    Ok(Ast {
        escape: directives.escape,
        syntax: directives.syntax,
        nodes,
        warnings,
    })
}

/// Drops the line ending (and the leading whitespace of a first line), lets the
/// directive parser see the line, and turns a comment line into an empty one.
fn process_line(
    directives: &mut Directives,
    raw: &str,
    strip_left: bool,
) -> Result<String, String> {
    let mut token = trim_newline(raw);
    if strip_left {
        token = token.trim_start();
    }
    directives.feed(token)?;
    Ok(if is_comment(token) {
        String::new()
    } else {
        token.to_string()
    })
}

fn trim_newline(s: &str) -> &str {
    s.trim_end_matches(['\r', '\n'])
}

fn is_comment(line: &str) -> bool {
    line.trim_start().starts_with('#')
}

/// The escape character as the last non-blank character continues the line, unless
/// it is itself escaped (`\\`). Returns the line without it and whether the logical
/// line ends here.
fn trim_continuation(line: &str, escape: char) -> (String, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    if let Some(before) = t.strip_suffix(escape)
        && !before.ends_with(escape)
    {
        return (before.to_string(), false);
    }
    (line.to_string(), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logical(text: &str) -> Vec<String> {
        read(text, Directives::new())
            .unwrap()
            .nodes
            .into_iter()
            .map(|n| n.node.original)
            .collect()
    }

    #[test]
    fn continuation_rules() {
        assert_eq!(trim_continuation("a \\", '\\'), ("a ".to_string(), false));
        assert_eq!(
            trim_continuation("a \\  \t", '\\'),
            ("a ".to_string(), false)
        );
        assert_eq!(trim_continuation("\\", '\\'), (String::new(), false));
        assert_eq!(
            trim_continuation("a \\\\", '\\'),
            ("a \\\\".to_string(), true)
        );
        assert_eq!(trim_continuation("a `", '`'), ("a ".to_string(), false));
        assert_eq!(trim_continuation("a \\", '`'), ("a \\".to_string(), true));
    }

    #[test]
    fn joins_continued_lines_and_drops_comments() {
        let text = "FROM x\nRUN a \\\n  b \\\n# comment\n  # indented comment\n  c\nRUN d\n";
        assert_eq!(logical(text), ["FROM x", "RUN a   b   c", "RUN d"]);
    }

    #[test]
    fn counts_lines_and_reports_them() {
        let ast = read("\n# c\nFROM x\n\nRUN a \\\n b\nRUN c", Directives::new()).unwrap();
        let lines: Vec<usize> = ast.nodes.iter().map(|n| n.start_line).collect();
        assert_eq!(lines, [3, 5, 7]);
    }

    #[test]
    fn crlf_and_bom() {
        assert_eq!(
            logical("\u{feff}FROM x\r\nRUN a \\\r\n b\r\n"),
            ["FROM x", "RUN a  b"]
        );
    }

    #[test]
    fn escape_directive_changes_continuation() {
        let ast = read(
            "# escape=`\nFROM x\nRUN a `\n b\nRUN c:\\ \n",
            Directives::new(),
        )
        .unwrap();
        assert_eq!(ast.escape, '`');
        let o: Vec<String> = ast.nodes.iter().map(|n| n.node.original.clone()).collect();
        assert_eq!(o, ["FROM x", "RUN a  b", "RUN c:\\ "]);
    }

    #[test]
    fn warns_on_empty_continuation_lines() {
        let text = "\nFROM alpine:3.6\n\nRUN valid \\\n    continuation\n\nRUN something \\\n\n    following \\\n\n    more\n\nRUN another \\\n\n    thing\n\nRUN non-indented \\\n# this is a comment\n   after-comment\n\nRUN indented \\\n    # this is an indented comment\n    comment\n\t";
        let ast = read(text, Directives::new()).unwrap();
        assert_eq!(ast.warnings.len(), 3);
        assert!(ast.warnings[0].contains("Empty continuation line found in"));
        assert!(ast.warnings[0].contains("RUN something     following     more"));
        assert!(ast.warnings[1].contains("RUN another     thing"));
        assert!(ast.warnings[2].contains("will become errors in a future release"));
    }

    #[test]
    fn long_lines_fail() {
        let text = format!("FROM image\nLABEL test={}\n", "a".repeat(MAX_LINE));
        let err = read(&text, Directives::new()).unwrap_err();
        assert_eq!(
            err.message,
            "dockerfile line greater than max allowed size of 65535"
        );
        assert_eq!(err.line, 2);
    }

    #[test]
    fn reads_heredoc_bodies() {
        let ast = read(
            "FROM x\nRUN <<EOF\necho hi\nEOF\nRUN <<-A cat - <<B\n\tone\n\tA\ntwo\r\nB\nRUN done\n",
            Directives::new(),
        )
        .unwrap();
        assert_eq!(ast.nodes.len(), 4);
        assert_eq!(ast.nodes[1].heredocs[0].content, "echo hi\n");
        assert_eq!(ast.nodes[2].heredocs[0].content, "\tone\n");
        assert!(ast.nodes[2].heredocs[0].chomp);
        assert_eq!(ast.nodes[2].heredocs[1].content, "two\r\n");
        assert_eq!(ast.nodes[3].start_line, 10);
    }

    #[test]
    fn unterminated_heredoc() {
        let err = read("FROM x\nRUN <<EOF\necho\n", Directives::new()).unwrap_err();
        assert_eq!(
            (err.line, err.message.as_str()),
            (2, "unterminated heredoc")
        );
    }

    #[test]
    fn no_instructions() {
        let err = read("# only a comment\n\n   \n", Directives::new()).unwrap_err();
        assert_eq!(err.to_string(), "file with no instructions");
    }
}
