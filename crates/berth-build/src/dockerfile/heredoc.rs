//! Heredoc words (`<<EOF`, `<<-EOF`, `<<"EOF"`, `3<<EOF`) as BuildKit recognises
//! them: which words of an instruction line open a heredoc, the delimiter name, whether
//! the body is expanded (no part of the delimiter quoted) and whether tabs are chomped.
//! Reading the bodies themselves is the line reader's job.

use std::sync::LazyLock;

use regex::Regex;

use super::lex::Lexer;

static HEREDOC: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^([0-9]*)<<(-?)([^<]*)$").expect("heredoc regex"));
static LEADING_TABS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?m)^\t+").expect("tabs regex"));

/// A heredoc delimiter found in an instruction line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeredocWord {
    pub(crate) name: String,
    pub(crate) expand: bool,
    pub(crate) chomp: bool,
}

/// BuildKit's `ParseHeredoc`: None when `word` is not a heredoc opener; an error for a
/// broken delimiter such as `<<'EOF`.
pub(crate) fn parse_heredoc(word: &str) -> Result<Option<HeredocWord>, String> {
    let Some(caps) = HEREDOC.captures(word) else {
        return Ok(None);
    };
    let chomp = &caps[2] == "-";
    let rest = &caps[3];
    if rest.is_empty() {
        return Ok(None);
    }
    let none = |_: &str| None;
    // Lex the delimiter with and without its quotes: if the counts of quote characters
    // differ, part of it was quoted and the body must not be expanded.
    let lex = Lexer::new('\\').skip_unset_env(true);
    let words = lex.expand_words(rest, &none)?;
    if words.len() != 1 {
        return Ok(None);
    }
    let raw = lex.raw_quotes(true).expand_words(rest, &none)?;
    if raw.len() != words.len() {
        return Err(format!(
            "internal lexing of heredoc produced inconsistent results: {rest}"
        ));
    }
    let quotes = |s: &str| s.chars().filter(|c| *c == '\'' || *c == '"').count();
    let expand = quotes(&words[0]) == quotes(&raw[0]);
    Ok(Some(HeredocWord {
        name: words[0].clone(),
        expand,
        chomp,
    }))
}

/// The heredocs a line opens, in order (BuildKit's `heredocsFromLine`). The line is
/// split into words the way the shell would see them, quotes kept, so a quoted `"<<EOF"`
/// opens nothing.
pub(crate) fn heredocs_from_line(line: &str) -> Result<Vec<HeredocWord>, String> {
    let lex = Lexer::new('\\')
        .raw_quotes(true)
        .raw_escapes(true)
        .skip_unset_env(true);
    let none = |_: &str| None;
    // BuildKit ignores a lexing failure here: such a line simply opens no heredoc.
    let words = lex.expand_words(line, &none).unwrap_or_default();
    let mut docs = Vec::new();
    for word in words {
        if let Some(doc) = parse_heredoc(&word)? {
            docs.push(doc);
        }
    }
    Ok(docs)
}

/// Strips the leading tabs of every line (`<<-`).
pub(crate) fn chomp(content: &str) -> String {
    LEADING_TABS.replace_all(content, "").into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_heredoc_words() {
        for src in [
            "<<EOF",
            "<<'EOF'",
            "<<\"EOF\"",
            "<<-EOF",
            "<<-'EOF'",
            "<<-\"EOF\"",
        ] {
            let doc = parse_heredoc(src)
                .unwrap()
                .unwrap_or_else(|| panic!("{src}"));
            assert_eq!(doc.name, "EOF", "{src}");
        }
        for src in ["<<'EOF", "<<\"EOF", "<<EOF'", "<<EOF\""] {
            assert!(parse_heredoc(src).is_err(), "{src}");
        }
        for src in ["", "EOF", "<<", "<<-", "<EOF", "<<<EOF"] {
            assert_eq!(parse_heredoc(src).unwrap(), None, "{src}");
        }
    }

    #[test]
    fn quoting_any_part_disables_expansion() {
        let d = |s: &str| parse_heredoc(s).unwrap().unwrap();
        assert!(d("<<EOF").expand);
        assert!(!d("<<'EOF'").expand);
        assert!(!d("<<\"EOF\"").expand);
        assert!(!d("<<E\"O\"F").expand);
        assert_eq!(d("<<E\"O\"F").name, "EOF");
        assert!(d("<<-EOF").chomp);
        assert!(!d("<<EOF").chomp);
        assert_eq!(d("3<<EOF").name, "EOF");
    }

    #[test]
    fn heredocs_from_lines() {
        let names = |line: &str| -> Vec<String> {
            heredocs_from_line(line)
                .unwrap()
                .into_iter()
                .map(|d| d.name)
                .collect()
        };
        assert_eq!(names("RUN <<EOF"), ["EOF"]);
        assert_eq!(names("RUN <<-EOF"), ["EOF"]);
        assert_eq!(names("RUN <<'EOF'"), ["EOF"]);
        assert_eq!(names("RUN 4<<EOF"), ["EOF"]);
        assert_eq!(names("RUN <<EOF <<EOF2"), ["EOF", "EOF2"]);
        assert!(names("RUN '<<EOF'").is_empty());
        assert!(names("RUN \"<<EOF\"").is_empty());
        assert!(names("RUN echo 'unbalanced <<EOF").is_empty());
        assert_eq!(names("COPY <<FILE1 <<FILE2 /dest"), ["FILE1", "FILE2"]);
        assert_eq!(names("RUN python3 <<EOF > out"), ["EOF"]);
    }

    #[test]
    fn chomps_leading_tabs() {
        assert_eq!(chomp("\thello\n\tworld\n"), "hello\nworld\n");
        assert_eq!(chomp("\t\t a\n  b\n"), " a\n  b\n");
    }
}
