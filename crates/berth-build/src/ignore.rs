//! `.dockerignore`: which files of the build context are not sent to the builder.
//! Reading follows moby's `ignorefile.ReadAll` and matching moby/patternmatcher
//! (`MatchesOrParentMatches`): patterns are Go `filepath.Match` globs plus `**`,
//! the last matching pattern wins, `!` patterns re-include, and a pattern that matches
//! a parent directory covers everything below it. As in the docker CLI, the Dockerfile
//! and `.dockerignore` themselves are always sent.

use regex::Regex;

/// A pattern Docker would refuse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct IgnoreError {
    /// The pattern as given.
    pub pattern: String,
    /// Docker's wording, naming the pattern.
    pub message: String,
}

/// Reads a `.dockerignore` file: one pattern per line; lines starting with `#` are
/// comments; blanks trimmed; each pattern cleaned like a path (`a//b/../c` → `a/c`) with
/// a leading `/` dropped; `!` exceptions kept (`! /x` → `!x`).
pub fn parse_dockerignore(text: &str) -> Vec<String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for line in text.lines() {
        // a comment only when `#` is the very first character, as in moby
        if line.starts_with('#') {
            continue;
        }
        let mut pattern = line.trim();
        if pattern.is_empty() {
            continue;
        }
        let invert = pattern.starts_with('!');
        if invert {
            pattern = pattern[1..].trim();
        }
        let mut cleaned = String::new();
        if !pattern.is_empty() {
            cleaned = go_clean(pattern);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
        }
        out.push(if invert {
            format!("!{cleaned}")
        } else {
            cleaned
        });
    }
    out
}

/// Matches context paths against `.dockerignore` patterns.
#[derive(Debug, Clone)]
pub struct Matcher {
    patterns: Vec<Pattern>,
    exclusions: bool,
}

#[derive(Debug, Clone)]
struct Pattern {
    /// Cleaned, without the `!`.
    cleaned: String,
    /// Number of path components, for the single-parent check of `Matches`.
    dirs: usize,
    exclusion: bool,
    kind: MatchKind,
}

#[derive(Debug, Clone)]
enum MatchKind {
    Exact,
    /// `dir/**`: a prefix.
    Prefix,
    /// `**/x`: a suffix (or `x` itself).
    Suffix,
    Regex(Regex),
}

impl Matcher {
    /// A matcher for `docker build` with a context whose Dockerfile is `Dockerfile`:
    /// the patterns, plus the docker CLI's rule that `.dockerignore` and the Dockerfile
    /// are sent even when a pattern excludes them. Use `for_build` for another
    /// Dockerfile name.
    pub fn new(patterns: &[String]) -> Result<Matcher, IgnoreError> {
        Matcher::for_build(patterns, Some("Dockerfile"))
    }

    /// As `new`, with the Dockerfile's path in the context (slash-separated), or None
    /// when the Dockerfile does not come from the context (read from stdin).
    pub fn for_build(
        patterns: &[String],
        dockerfile: Option<&str>,
    ) -> Result<Matcher, IgnoreError> {
        let mut all = patterns.to_vec();
        if Matcher::from_patterns(&all)?.matches_single_parent(".dockerignore") {
            all.push("!.dockerignore".into());
        }
        if let Some(df) = dockerfile
            && Matcher::from_patterns(&all)?.matches_single_parent(df)
        {
            all.push(format!("!{df}"));
        }
        Matcher::from_patterns(&all)
    }

    /// The patterns alone, without the Dockerfile rule (moby/patternmatcher's `New`).
    pub fn from_patterns(patterns: &[String]) -> Result<Matcher, IgnoreError> {
        let mut out = Vec::with_capacity(patterns.len());
        let mut exclusions = false;
        for given in patterns {
            let p = given.trim();
            if p.is_empty() {
                continue;
            }
            let mut p = go_clean(p);
            let mut exclusion = false;
            if let Some(rest) = p.strip_prefix('!') {
                if rest.is_empty() {
                    return Err(IgnoreError {
                        pattern: given.clone(),
                        message: "illegal exclusion pattern: \"!\"".into(),
                    });
                }
                p = rest.to_string();
                exclusion = true;
                exclusions = true;
            }
            if !valid_glob(&p) {
                return Err(IgnoreError {
                    pattern: given.clone(),
                    message: format!("invalid pattern {given:?}: syntax error in pattern"),
                });
            }
            let kind = compile(&p).map_err(|e| IgnoreError {
                pattern: given.clone(),
                message: format!("invalid pattern {given:?}: {e}"),
            })?;
            out.push(Pattern {
                dirs: p.split('/').count(),
                cleaned: p,
                exclusion,
                kind,
            });
        }
        Ok(Matcher {
            patterns: out,
            exclusions,
        })
    }

    /// Whether the context path `path` (slash-separated, relative) is left out of the
    /// context: the last pattern matching it or one of its parent directories decides.
    pub fn excluded(&self, path: &str) -> bool {
        let file = go_clean(path);
        if file == "." {
            return false;
        }
        let parent = go_dir(&file);
        let parent_dirs: Vec<&str> = parent.split('/').collect();
        let mut matched = false;
        for p in &self.patterns {
            // an inclusion cannot change a match, an exclusion cannot change a non-match
            if p.exclusion != matched {
                continue;
            }
            let mut m = p.matches(&file);
            if !m && parent != "." {
                m = (1..=parent_dirs.len()).any(|i| p.matches(&parent_dirs[..i].join("/")));
            }
            if m {
                matched = !p.exclusion;
            }
        }
        matched
    }

    /// Whether an exception pattern could re-include something below the directory
    /// `dir`, so that a walker must still descend into it although `dir` is excluded
    /// (the check of Docker's context walker: an exception that starts with `dir/`).
    pub fn may_include_under(&self, dir: &str) -> bool {
        if !self.exclusions {
            return false;
        }
        let dir_slash = format!("{}/", go_clean(dir));
        self.patterns
            .iter()
            .any(|p| p.exclusion && format!("{}/", p.cleaned).starts_with(&dir_slash))
    }

    /// No patterns at all.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// patternmatcher's deprecated `Matches`, which checks only the parent directory
    /// as deep as each pattern; the docker CLI uses it to decide whether to re-add the
    /// Dockerfile and `.dockerignore`.
    fn matches_single_parent(&self, path: &str) -> bool {
        let file = go_clean(path);
        if file == "." {
            return false;
        }
        let parent = go_dir(&file);
        let parent_dirs: Vec<&str> = parent.split('/').collect();
        let mut matched = false;
        for p in &self.patterns {
            if p.exclusion != matched {
                continue;
            }
            let mut m = p.matches(&file);
            if !m && parent != "." && p.dirs <= parent_dirs.len() {
                m = p.matches(&parent_dirs[..p.dirs].join("/"));
            }
            if m {
                matched = !p.exclusion;
            }
        }
        matched
    }
}

impl Pattern {
    fn matches(&self, path: &str) -> bool {
        match &self.kind {
            MatchKind::Exact => path == self.cleaned,
            MatchKind::Prefix => path.starts_with(&self.cleaned[..self.cleaned.len() - 2]),
            MatchKind::Suffix => {
                let suffix = &self.cleaned[2..];
                path.ends_with(suffix) || suffix.strip_prefix('/').is_some_and(|s| path == s)
            }
            MatchKind::Regex(re) => re.is_match(path),
        }
    }
}

/// patternmatcher's `compile`: plain text is an exact match, `dir/**` a prefix, `**x`
/// a suffix, anything else a regular expression where `*` and `?` stop at `/` and
/// `**` crosses directories.
fn compile(pattern: &str) -> Result<MatchKind, String> {
    #[derive(PartialEq)]
    enum Detected {
        Exact,
        Prefix,
        Suffix,
        Regex,
    }
    let chars: Vec<char> = pattern.chars().collect();
    let mut re = String::from("^");
    let mut detected = Detected::Exact;
    let mut i = 0;
    let mut iteration = 0;
    while i < chars.len() {
        let ch = chars[i];
        i += 1;
        match ch {
            '*' if chars.get(i) == Some(&'*') => {
                i += 1;
                // `**/` is `**`
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                if i == chars.len() {
                    // `**` at the end: everything below
                    if detected == Detected::Exact {
                        detected = Detected::Prefix;
                    } else {
                        re.push_str(".*");
                        detected = Detected::Regex;
                    }
                } else {
                    // any number of directories, even none
                    re.push_str("(.*/)?");
                    detected = Detected::Regex;
                }
                if iteration == 0 {
                    detected = Detected::Suffix;
                }
            }
            '*' => {
                re.push_str("[^/]*");
                detected = Detected::Regex;
            }
            '?' => {
                re.push_str("[^/]");
                detected = Detected::Regex;
            }
            '\\' => match chars.get(i) {
                Some(&next) => {
                    i += 1;
                    re.push_str(&regex::escape(&next.to_string()));
                    detected = Detected::Regex;
                }
                None => re.push_str(r"\\"),
            },
            '[' => {
                i = push_class(&chars, i, &mut re);
                detected = Detected::Regex;
            }
            ']' => {
                re.push_str(r"\]");
                detected = Detected::Regex;
            }
            c => re.push_str(&regex::escape(&c.to_string())),
        }
        iteration += 1;
    }
    Ok(match detected {
        Detected::Exact => MatchKind::Exact,
        Detected::Prefix => MatchKind::Prefix,
        Detected::Suffix => MatchKind::Suffix,
        Detected::Regex => {
            re.push('$');
            MatchKind::Regex(Regex::new(&re).map_err(|e| e.to_string())?)
        }
    })
}

/// Translates a (validated) `[...]` class starting after the `[` at `i`; returns the
/// index after its `]`.
fn push_class(chars: &[char], mut i: usize, re: &mut String) -> usize {
    re.push('[');
    if chars.get(i) == Some(&'^') {
        re.push('^');
        i += 1;
    }
    let mut first = true;
    while i < chars.len() {
        if chars[i] == ']' && !first {
            i += 1;
            break;
        }
        first = false;
        let (lo, next) = class_char(chars, i);
        i = next;
        re.push_str(&regex::escape(&lo.to_string()));
        if chars.get(i) == Some(&'-') {
            let (hi, next) = class_char(chars, i + 1);
            i = next;
            re.push('-');
            re.push_str(&regex::escape(&hi.to_string()));
        }
    }
    re.push(']');
    i
}

fn class_char(chars: &[char], i: usize) -> (char, usize) {
    match chars.get(i) {
        Some('\\') => (chars.get(i + 1).copied().unwrap_or('\\'), i + 2),
        Some(&c) => (c, i + 1),
        None => ('\\', i + 1),
    }
}

/// Whether Go's `filepath.Match` accepts the pattern's syntax: classes closed and
/// non-empty, ranges complete, no `-` or `]` where a class character is expected, no
/// trailing `\`.
fn valid_glob(pattern: &str) -> bool {
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '\\' => {
                if i + 1 >= chars.len() {
                    return false;
                }
                i += 2;
            }
            '[' => {
                i += 1;
                if chars.get(i) == Some(&'^') {
                    i += 1;
                }
                let mut ranges = 0;
                loop {
                    if chars.get(i) == Some(&']') && ranges > 0 {
                        i += 1;
                        break;
                    }
                    let Some(next) = class_escape(&chars, i) else {
                        return false;
                    };
                    i = next;
                    if chars.get(i) == Some(&'-') {
                        let Some(next) = class_escape(&chars, i + 1) else {
                            return false;
                        };
                        i = next;
                    }
                    ranges += 1;
                }
            }
            _ => i += 1,
        }
    }
    true
}

/// Go's `getEsc`: one class character (possibly escaped) that must be followed by
/// more pattern; returns the index after it.
fn class_escape(chars: &[char], mut i: usize) -> Option<usize> {
    match chars.get(i) {
        None | Some('-') | Some(']') => return None,
        Some('\\') => {
            i += 1;
            chars.get(i)?;
        }
        Some(_) => {}
    }
    i += 1;
    (i < chars.len()).then_some(i)
}

/// Go's `path.Clean` for relative and absolute slash paths.
fn go_clean(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            x => parts.push(x),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// Go's `path.Dir` of a cleaned path.
fn go_dir(p: &str) -> String {
    match p.rfind('/') {
        Some(i) => go_clean(&p[..i + 1]),
        None => ".".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleans_like_go() {
        for (input, want) in [
            ("", "."),
            ("a/b/../c", "a/c"),
            ("/../x", "/x"),
            ("../../x", "../../x"),
            ("a/../..", ".."),
            ("./a//b/", "a/b"),
            ("/", "/"),
            ("!foo/../bar", "bar"),
        ] {
            assert_eq!(go_clean(input), want, "{input:?}");
        }
        assert_eq!(go_dir("a/b/c"), "a/b");
        assert_eq!(go_dir("a"), ".");
        assert_eq!(go_dir("/a"), "/");
    }

    #[test]
    fn compile_kinds() {
        let kind = |p: &str| match compile(p).unwrap() {
            MatchKind::Exact => "exact".to_string(),
            MatchKind::Prefix => "prefix".to_string(),
            MatchKind::Suffix => "suffix".to_string(),
            MatchKind::Regex(r) => r.as_str().to_string(),
        };
        assert_eq!(kind("*"), "^[^/]*$");
        assert_eq!(kind("file*"), "^file[^/]*$");
        assert_eq!(kind("a*/b"), "^a[^/]*/b$");
        assert_eq!(kind("**"), "suffix");
        assert_eq!(kind("**/**"), "^(.*/)?.*$");
        assert_eq!(kind("dir/**"), "prefix");
        assert_eq!(kind("**/dir"), "suffix");
        assert_eq!(kind("**/dir2/*"), "^(.*/)?dir2/[^/]*$");
        assert_eq!(kind("**/dir2/**"), "^(.*/)?dir2/.*$");
        assert_eq!(kind("**file"), "suffix");
        assert_eq!(kind("**/file*txt"), "^(.*/)?file[^/]*txt$");
        assert_eq!(kind("**/**/*.txt"), "^(.*/)?(.*/)?[^/]*\\.txt$");
        assert_eq!(kind("a[b-d]e"), "^a[b-d]e$");
        assert_eq!(kind(".*"), "^\\.[^/]*$");
        assert_eq!(kind("abc"), "exact");
        assert_eq!(kind("abc.def"), "exact");
    }

    #[test]
    fn glob_syntax() {
        for ok in [
            "abc", "a*", "[a-z]", "[^a]", "[\\]a]", "[\\-]", "[x\\-]", "a\\*b", "]", "[*]", "[[]",
        ] {
            assert!(valid_glob(ok), "{ok}");
        }
        for bad in [
            "[", "[^", "[^bc", "a[", "[]a]", "[-]", "[x-]", "[-x]", "\\", "[a-b-c]", "a\\",
        ] {
            assert!(!valid_glob(bad), "{bad}");
        }
    }
}

/// Go's `filepath.Match`: does `name` match `pattern` (`*` and `?` never match `/`,
/// `[...]` classes with ranges and `^` negation, `\` escapes)? COPY's wildcards use it
/// one path component at a time.
pub fn path_match(pattern: &str, name: &str) -> Result<bool, String> {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    glob_match(&p, &n)
}

fn glob_match(p: &[char], n: &[char]) -> Result<bool, String> {
    let (mut pi, mut ni) = (0usize, 0usize);
    // Backtracking point for the last `*`: (pattern index after it, name index).
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pi < p.len() {
            match p[pi] {
                '*' => {
                    star = Some((pi + 1, ni));
                    pi += 1;
                    continue;
                }
                '?' if ni < n.len() && n[ni] != '/' => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                '[' if ni < n.len() => {
                    let (ok, next) = match_class(p, pi, n[ni])?;
                    if ok && n[ni] != '/' {
                        pi = next;
                        ni += 1;
                        continue;
                    }
                }
                '\\' => {
                    let Some(&c) = p.get(pi + 1) else { return Err("syntax error in pattern".into()) };
                    if ni < n.len() && n[ni] == c {
                        pi += 2;
                        ni += 1;
                        continue;
                    }
                }
                c if c != '?' && c != '[' && ni < n.len() && n[ni] == c => {
                    pi += 1;
                    ni += 1;
                    continue;
                }
                _ => {}
            }
        } else if ni == n.len() {
            return Ok(true);
        }
        // Mismatch: let the last `*` swallow one more character (never a `/`).
        match star {
            Some((sp, sn)) if sn < n.len() && n[sn] != '/' => {
                star = Some((sp, sn + 1));
                pi = sp;
                ni = sn + 1;
            }
            _ => {
                // Go still reports a malformed pattern after a mismatch.
                check_syntax(&p[pi.min(p.len())..])?;
                return Ok(false);
            }
        }
    }
}

/// Matches `c` against the class starting at `p[i] == '['`; returns whether it
/// matched and the index after the class.
fn match_class(p: &[char], i: usize, c: char) -> Result<(bool, usize), String> {
    let bad = || "syntax error in pattern".to_string();
    let mut j = i + 1;
    let negate = p.get(j) == Some(&'^');
    if negate {
        j += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let Some(&ch) = p.get(j) else { return Err(bad()) };
        if ch == ']' && !first {
            j += 1;
            break;
        }
        first = false;
        let (lo, next) = class_literal(p, j)?;
        j = next;
        let hi = if p.get(j) == Some(&'-') && p.get(j + 1).is_some_and(|x| *x != ']') {
            let (hi, next) = class_literal(p, j + 1)?;
            j = next;
            hi
        } else {
            lo
        };
        if lo <= c && c <= hi {
            matched = true;
        }
    }
    Ok((matched != negate, j))
}

fn class_literal(p: &[char], j: usize) -> Result<(char, usize), String> {
    match p.get(j) {
        Some('\\') => p.get(j + 1).map(|c| (*c, j + 2)).ok_or_else(|| "syntax error in pattern".to_string()),
        Some(c) => Ok((*c, j + 1)),
        None => Err("syntax error in pattern".into()),
    }
}

fn check_syntax(p: &[char]) -> Result<(), String> {
    let mut i = 0;
    while i < p.len() {
        match p[i] {
            '\\' => {
                if i + 1 >= p.len() {
                    return Err("syntax error in pattern".into());
                }
                i += 2;
            }
            '[' => {
                let (_, next) = match_class(p, i, '\0')?;
                i = next;
            }
            _ => i += 1,
        }
    }
    Ok(())
}

#[cfg(test)]
mod path_match_tests {
    use super::path_match;

    #[test]
    fn go_filepath_match_table() {
        let cases: &[(&str, &str, bool)] = &[
            ("abc", "abc", true),
            ("*", "abc", true),
            ("*c", "abc", true),
            ("a*", "a", true),
            ("a*", "abc", true),
            ("a*", "ab/c", false),
            ("a*/b", "abc/b", true),
            ("a*/b", "a/c/b", false),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", true),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false),
            ("a*b?c*x", "abxbbxdbxebxczzx", true),
            ("a*b?c*x", "abxbbxdbxebxczzy", false),
            ("ab[c]", "abc", true),
            ("ab[b-d]", "abc", true),
            ("ab[e-g]", "abc", false),
            ("ab[^c]", "abc", false),
            ("ab[^b-d]", "abc", false),
            ("ab[^e-g]", "abc", true),
            ("a\\*b", "a*b", true),
            ("a\\*b", "ab", false),
            ("a?b", "a☺b", true),
            ("a[^a]b", "a☺b", true),
            ("a???b", "a☺b", false),
            ("*x", "xxx", true),
        ];
        for (p, n, want) in cases {
            assert_eq!(path_match(p, n).unwrap(), *want, "{p} vs {n}");
        }
        for bad in ["[", "[^", "[^bc", "a[", "ab[", "\\"] {
            assert!(path_match(bad, "x").is_err() || path_match(bad, "a").is_err(), "{bad} should be an error");
        }
    }
}
