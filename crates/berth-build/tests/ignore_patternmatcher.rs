//! `.dockerignore` reading and matching, ported from moby/patternmatcher's
//! `patternmatcher_test.go` (including the `filepath.Match` table it borrows from Go)
//! and `ignorefile_test.go`, plus the docker CLI's Dockerfile/.dockerignore rule.

use berth_build::ignore::{Matcher, parse_dockerignore};
use proptest::prelude::*;

fn pats(p: &[&str]) -> Vec<String> {
    p.iter().map(|s| s.to_string()).collect()
}

/// patternmatcher's `MatchesOrParentMatches(file, patterns)`.
fn matches(file: &str, patterns: &[&str]) -> bool {
    Matcher::from_patterns(&pats(patterns))
        .unwrap()
        .excluded(file)
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Pass {
    Fail,
    Exact,
    Inexact,
}
use Pass::*;

const MATCHES: &[(&str, &str, Pass)] = &[
    ("**", "file", Exact),
    ("**", "file/", Exact),
    ("**/", "file", Exact),
    ("**/", "file/", Exact),
    ("**", "/", Exact),
    ("**/", "/", Exact),
    ("**", "dir/file", Exact),
    ("**/", "dir/file", Exact),
    ("**", "dir/file/", Exact),
    ("**/", "dir/file/", Exact),
    ("**/**", "dir/file", Exact),
    ("**/**", "dir/file/", Exact),
    ("dir/**", "dir/file", Exact),
    ("dir/**", "dir/file/", Exact),
    ("dir/**", "dir/dir2/file", Exact),
    ("dir/**", "dir/dir2/file/", Exact),
    ("**/dir", "dir", Exact),
    ("**/dir", "dir/file", Inexact),
    ("**/dir2/*", "dir/dir2/file", Exact),
    ("**/dir2/*", "dir/dir2/file/", Inexact),
    ("**/dir2/**", "dir/dir2/dir3/file", Exact),
    ("**/dir2/**", "dir/dir2/dir3/file/", Exact),
    ("**file", "file", Exact),
    ("**file", "dir/file", Exact),
    ("**/file", "dir/file", Exact),
    ("**file", "dir/dir/file", Exact),
    ("**/file", "dir/dir/file", Exact),
    ("**/file*", "dir/dir/file", Exact),
    ("**/file*", "dir/dir/file.txt", Exact),
    ("**/file*txt", "dir/dir/file.txt", Exact),
    ("**/file*.txt", "dir/dir/file.txt", Exact),
    ("**/file*.txt*", "dir/dir/file.txt", Exact),
    ("**/**/*.txt", "dir/dir/file.txt", Exact),
    ("**/**/*.txt2", "dir/dir/file.txt", Fail),
    ("**/*.txt", "file.txt", Exact),
    ("**/**/*.txt", "file.txt", Exact),
    ("a**/*.txt", "a/file.txt", Exact),
    ("a**/*.txt", "a/dir/file.txt", Exact),
    ("a**/*.txt", "a/dir/dir/file.txt", Exact),
    ("a/*.txt", "a/dir/file.txt", Fail),
    ("a/*.txt", "a/file.txt", Exact),
    ("a/*.txt**", "a/file.txt", Exact),
    ("a[b-d]e", "ae", Fail),
    ("a[b-d]e", "ace", Exact),
    ("a[b-d]e", "aae", Fail),
    ("a[^b-d]e", "aze", Exact),
    (".*", ".foo", Exact),
    (".*", "foo", Fail),
    ("abc.def", "abcdef", Fail),
    ("abc.def", "abc.def", Exact),
    ("abc.def", "abcZdef", Fail),
    ("abc?def", "abcZdef", Exact),
    ("abc?def", "abcdef", Fail),
    ("**/foo/bar", "foo/bar", Exact),
    ("**/foo/bar", "dir/foo/bar", Exact),
    ("**/foo/bar", "dir/dir2/foo/bar", Exact),
    ("abc/**", "abc", Fail),
    ("abc/**", "abc/def", Exact),
    ("abc/**", "abc/def/ghi", Exact),
    ("**/.foo", ".foo", Exact),
    ("**/.foo", "bar.foo", Fail),
    ("a(b)c/def", "a(b)c/def", Exact),
    ("a(b)c/def", "a(b)c/xyz", Fail),
    ("a.|)$(}+{bc", "a.|)$(}+{bc", Exact),
    (
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        Exact,
    ),
    (
        "dist/*.whl",
        "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
        Exact,
    ),
    ("a\\\\", "a\\", Exact),
    ("a\\*b", "a*b", Exact),
];

#[test]
fn matches_or_parent_matches_table() {
    for (pattern, text, pass) in MATCHES {
        let got = matches(text, &[pattern]);
        assert_eq!(got, *pass != Fail, "pattern={pattern:?} text={text:?}");
    }
}

#[test]
fn multi_pattern_table() {
    let cases: &[(&[&str], &str, bool)] = &[
        (&["**", "!util/docker/web"], "util/docker/web/foo", false),
        (
            &["**", "!util/docker/web", "util/docker/web/foo"],
            "util/docker/web/foo",
            true,
        ),
        (
            &[
                "**",
                "!dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            ],
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            false,
        ),
        (
            &["**", "!dist/*.whl"],
            "dist/proxy.py-2.4.0rc3.dev36+g08acad9-py3-none-any.whl",
            false,
        ),
    ];
    for (patterns, text, want) in cases {
        assert_eq!(
            matches(text, patterns),
            *want,
            "patterns={patterns:?} text={text:?}"
        );
    }
}

#[test]
fn simple_cases() {
    assert!(matches("fileutils.go", &["*"]));
    assert!(matches("fileutils.go", &["*.go"]));
    assert!(matches("fileutils.go", &["!fileutils.go", "*.go"]));
    assert!(!matches("docs/README.md", &["docs", "!docs/README.md"]));
    assert!(!matches("docs/README.md", &["docs/", "!docs/README.md"]));
    assert!(!matches("docs/README.md", &["docs/*", "!docs/README.md"]));
    assert!(!matches("fileutils.go", &["*.go", "!fileutils.go"]));
    assert!(!matches(".", &["*.go"]));
    assert!(!matches("/any/path/there", &[]));
    assert!(matches("docs/a/b/c.md", &["docs"]));
    assert!(!matches("docsx/a", &["docs"]));
}

#[test]
fn bad_patterns_fail() {
    let e = Matcher::from_patterns(&pats(&["!"])).unwrap_err();
    assert_eq!(e.to_string(), "illegal exclusion pattern: \"!\"");
    let e = Matcher::from_patterns(&pats(&["["])).unwrap_err();
    assert_eq!(e.pattern, "[");
    assert_eq!(
        e.to_string(),
        "invalid pattern \"[\": syntax error in pattern"
    );
    assert!(Matcher::new(&pats(&["ok", "a["])).is_err());
}

#[test]
fn cleaning_and_exceptions() {
    let m = Matcher::from_patterns(&pats(&["docs", "config", ""])).unwrap();
    assert!(!m.is_empty());
    assert!(
        Matcher::from_patterns(&pats(&["", "  "]))
            .unwrap()
            .is_empty()
    );
    for ps in [
        &["docs", "!docs/README.md"],
        &["docs", "  !docs/README.md"],
        &["docs", "!docs/README.md  "],
    ] {
        let m = Matcher::from_patterns(&pats(ps)).unwrap();
        assert!(!m.excluded("docs/README.md"), "{ps:?}");
        assert!(m.excluded("docs/other.md"), "{ps:?}");
    }
}

/// Go's `filepath.Match` table as patternmatcher runs it (`Matches(s, [pattern])`).
#[test]
fn go_filepath_match_table() {
    let ok: &[(&str, &str, bool)] = &[
        ("abc", "abc", true),
        ("*", "abc", true),
        ("*c", "abc", true),
        ("a*", "a", true),
        ("a*", "abc", true),
        ("a*", "ab/c", true),
        ("a*/b", "abc/b", true),
        ("a*/b", "a/c/b", false),
        ("a*b*c*d*e*/f", "axbxcxdxe/f", true),
        ("a*b*c*d*e*/f", "axbxcxdxexxx/f", true),
        ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", false),
        ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", false),
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
        ("a[^a][^a][^a]b", "a☺b", false),
        ("[a-ζ]*", "α", true),
        ("*[a-ζ]", "A", false),
        ("a?b", "a/b", false),
        ("a*b", "a/b", false),
        ("[\\]a]", "]", true),
        ("[\\-]", "-", true),
        ("[x\\-]", "x", true),
        ("[x\\-]", "-", true),
        ("[x\\-]", "z", false),
        ("[\\-x]", "x", true),
        ("[\\-x]", "-", true),
        ("[\\-x]", "a", false),
        ("*x", "xxx", true),
    ];
    for (pattern, s, want) in ok {
        let m = Matcher::from_patterns(&pats(&[pattern]))
            .unwrap_or_else(|e| panic!("{pattern:?}: {e}"));
        assert_eq!(m.excluded(s), *want, "pattern={pattern:?} s={s:?}");
    }
    for bad in [
        "[]a]", "[-]", "[x-]", "[-x]", "\\", "[a-b-c]", "[", "[^", "[^bc", "a[", "a[",
    ] {
        assert!(Matcher::from_patterns(&pats(&[bad])).is_err(), "{bad:?}");
    }
}

#[test]
fn reads_dockerignore_files() {
    let content =
        "test1\n/test2\n/a/file/here\n\nlastfile\n# this is a comment\n! /inverted/abs/path\n!\n! ";
    assert_eq!(
        parse_dockerignore(content),
        [
            "test1",
            "test2",
            "a/file/here",
            "lastfile",
            "!inverted/abs/path",
            "!",
            "!"
        ]
    );
    assert!(parse_dockerignore("").is_empty());
    assert_eq!(
        parse_dockerignore("\u{feff}# c\r\n a//b/../c/ \r\n  # not a comment\n/\n"),
        ["a/c", "# not a comment", "/"]
    );
}

#[test]
fn dockerfile_and_dockerignore_are_always_sent() {
    let m = Matcher::new(&pats(&["*"])).unwrap();
    assert!(!m.excluded("Dockerfile"));
    assert!(!m.excluded(".dockerignore"));
    assert!(m.excluded("main.go"));

    let m = Matcher::for_build(&pats(&["docker", "*.md"]), Some("docker/Dockerfile.dev")).unwrap();
    assert!(!m.excluded("docker/Dockerfile.dev"));
    assert!(m.excluded("docker/other"));
    assert!(m.may_include_under("docker"));

    // from stdin: only .dockerignore is kept
    let m = Matcher::for_build(&pats(&["*"]), None).unwrap();
    assert!(m.excluded("Dockerfile"));
    assert!(!m.excluded(".dockerignore"));

    // nothing ignored: no exceptions added
    let m = Matcher::new(&[]).unwrap();
    assert!(m.is_empty());
    assert!(!m.may_include_under("x"));
}

#[test]
fn may_include_under_follows_docker_s_walker() {
    let m = Matcher::from_patterns(&pats(&[
        "node_modules",
        "!node_modules/keep/me.js",
        "build",
    ]))
    .unwrap();
    assert!(m.excluded("node_modules"));
    assert!(m.may_include_under("node_modules"));
    assert!(m.may_include_under("node_modules/keep"));
    assert!(!m.may_include_under("node_modules/other"));
    assert!(!m.may_include_under("build"));
    assert!(!m.excluded("node_modules/keep/me.js"));
    assert!(m.excluded("node_modules/keep/other.js"));
    // without exceptions a walker never needs to descend
    let m = Matcher::from_patterns(&pats(&["a"])).unwrap();
    assert!(!m.may_include_under("a"));
}

#[test]
fn last_match_wins() {
    let m = Matcher::from_patterns(&pats(&["*.md", "!README*.md", "README-secret.md"])).unwrap();
    assert!(m.excluded("CHANGELOG.md"));
    assert!(!m.excluded("README.md"));
    assert!(m.excluded("README-secret.md"));
    // `*` does not cross directories, but a parent match covers children
    let m = Matcher::from_patterns(&pats(&["*/temp*"])).unwrap();
    assert!(m.excluded("somedir/temporary.txt"));
    assert!(m.excluded("somedir/temp/x"));
    assert!(!m.excluded("somedir/sub/temp"));
    let m = Matcher::from_patterns(&pats(&["temp?"])).unwrap();
    assert!(m.excluded("tempa"));
    assert!(!m.excluded("temp"));
}

proptest! {
    #[test]
    fn matcher_never_panics(patterns in prop::collection::vec("[a-z*?!\\[\\]\\\\/.^-]{0,8}", 0..5), path in "[a-z*?/.\\[\\]]{0,12}") {
        if let Ok(m) = Matcher::new(&patterns) {
            let _ = m.excluded(&path);
            let _ = m.may_include_under(&path);
        }
        let _ = parse_dockerignore(&patterns.join("\n"));
    }
}
