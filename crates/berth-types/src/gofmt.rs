//! Go's formatting where clients and messages show it byte for byte: `%q` of a
//! string (`strconv.Quote`) and of a string slice (`["a" "b"]`), as dockerd, the
//! docker CLI and BuildKit print them.

/// `strconv.Quote`: double quotes, Go's escapes, non-printable runes as `\x`, `\u`, `\U`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => out.push_str(&format!("\\x{:02x}", c as u32)),
            c if is_printable(c) => out.push(c),
            c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push_str(&format!("\\U{:08x}", c as u32)),
        }
    }
    out.push('"');
    out
}

/// `fmt.Sprintf("%q", []string{...})`: `["a" "b"]`.
pub fn quote_slice(v: &[String]) -> String {
    let parts: Vec<String> = v.iter().map(|s| quote(s)).collect();
    format!("[{}]", parts.join(" "))
}

/// Close to Go's `strconv.IsPrint`: graphic characters and the ASCII space, but no
/// other spaces and no control or format characters.
fn is_printable(c: char) -> bool {
    if c == ' ' {
        return true;
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    // Format characters (Cf) Go refuses that Rust does not flag as control.
    !matches!(c as u32, 0xad | 0x600..=0x605 | 0x200b..=0x200f | 0x202a..=0x202e | 0x2060..=0x2064 | 0xfeff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_like_go() {
        assert_eq!(quote("a b"), "\"a b\"");
        assert_eq!(quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(quote("tab\there\n"), "\"tab\\there\\n\"");
        assert_eq!(quote("\u{1}"), "\"\\x01\"");
        assert_eq!(quote("한국어"), "\"한국어\"");
        assert_eq!(quote("\u{a0}"), "\"\\u00a0\"");
        assert_eq!(quote("sh -c 'echo started…"), "\"sh -c 'echo started…\"");
        assert_eq!(quote_slice(&["/bin/sh".into(), "-c".into()]), r#"["/bin/sh" "-c"]"#);
    }
}
