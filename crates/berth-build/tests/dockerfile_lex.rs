//! The shell lexer against BuildKit's own tables: `shell/envVarTest` (ProcessWord),
//! `shell/wordsTest` (ProcessWords) and the cases of `lex_test.go`.

use berth_build::dockerfile::Lexer;

/// BuildKit's `EnvsFromSlice`: `k=v` entries, the last one of a name wins.
fn env_from(entries: &[&str]) -> impl Fn(&str) -> Option<String> {
    let pairs: Vec<(String, String)> = entries
        .iter()
        .map(|e| match e.split_once('=') {
            Some((k, v)) => (k.to_string(), v.to_string()),
            None => (e.to_string(), String::new()),
        })
        .collect();
    move |k| {
        pairs
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    }
}

const ENV_VAR_TEST: &str = r#"A|hello                    |     hello
A|he'll'o                  |     hello
A|he'llo                   |     error
A|he\'llo                  |     he'llo
A|he\\'llo                 |     error
A|abc\tdef                 |     abctdef
A|"abc\tdef"               |     abc\tdef
A|"abc\\tdef"              |     abc\tdef
A|'abc\tdef'               |     abc\tdef
A|hello\                   |     hello
A|hello\\                  |     hello\
A|"hello                   |     error
A|"hello\"                 |     error
A|"hel'lo"                 |     hel'lo
A|'hello                   |     error
A|'hello\'                 |     hello\
A|'hello\there'            |     hello\there
A|'hello\\there'           |     hello\\there
A|"''"                     |     ''
A|$.                       |     $.
A|$1                       |
A|he$1x                    |     hex
A|he$.x                    |     he$.x
# Next one is different on Windows as $pwd==$PWD
U|he$pwd.                  |     he.
W|he$pwd.                  |     he/home.
A|he$PWD                   |     he/home
A|he\$PWD                  |     he$PWD
A|he\\$PWD                 |     he\/home
A|"he\$PWD"                |     he$PWD
A|"he\\$PWD"               |     he\/home
A|\${}                     |     ${}
A|\${}aaa                  |     ${}aaa
A|he\${}                   |     he${}
A|he\${}xx                 |     he${}xx
A|${}                      |     error
A|${}aaa                   |     error
A|he${}                    |     error
A|he${}xx                  |     error
A|he${hi}                  |     he
A|he${hi}xx                |     hexx
A|he${PWD}                 |     he/home
A|he${.}                   |     error
A|he${XXX:-000}xx          |     he000xx
A|he${PWD:-000}xx          |     he/homexx
A|he${XXX:-$PWD}xx         |     he/homexx
A|he${XXX:-${PWD:-yyy}}xx  |     he/homexx
A|he${XXX:-${YYY:-yyy}}xx  |     heyyyxx
A|he${XXX:YYY}             |     error
A|he${XXX:+${PWD}}xx       |     hexx
A|he${PWD:+${XXX}}xx       |     hexx
A|he${PWD:+${SHELL}}xx     |     hebashxx
A|he${XXX:+000}xx          |     hexx
A|he${PWD:+000}xx          |     he000xx
A|'he${XX}'                |     he${XX}
A|"he${PWD}"               |     he/home
A|"he'$PWD'"               |     he'/home'
A|"$PWD"                   |     /home
A|'$PWD'                   |     $PWD
A|'\$PWD'                  |     \$PWD
A|'"hello"'                |     "hello"
A|he\$PWD                  |     he$PWD
A|"he\$PWD"                |     he$PWD
A|'he\$PWD'                |     he\$PWD
A|he${PWD                  |     error
A|he${PWD:=000}xx          |     error
A|he${PWD:+${PWD}:}xx      |     he/home:xx
A|he${XXX:-\$PWD:}xx       |     he$PWD:xx
A|he${XXX:-\${PWD}z}xx     |     he${PWDz}xx
A|안녕하세요                 |     안녕하세요
A|안'녕'하세요               |     안녕하세요
A|안'녕하세요                |     error
A|안녕\'하세요               |     안녕'하세요
A|안\\'녕하세요              |     error
A|안녕\t하세요               |     안녕t하세요
A|"안녕\t하세요"             |     안녕\t하세요
A|'안녕\t하세요              |     error
A|안녕하세요\                |     안녕하세요
A|안녕하세요\\               |     안녕하세요\
A|"안녕하세요                |     error
A|"안녕하세요\"              |     error
A|"안녕'하세요"              |     안녕'하세요
A|'안녕하세요                |     error
A|'안녕하세요\'              |     안녕하세요\
A|안녕$1x                    |     안녕x
A|안녕$.x                    |     안녕$.x
# Next one is different on Windows as $pwd==$PWD
U|안녕$pwd.                  |     안녕.
W|안녕$pwd.                  |     안녕/home.
A|안녕$PWD                   |     안녕/home
A|안녕\$PWD                  |     안녕$PWD
A|안녕\\$PWD                 |     안녕\/home
A|안녕\${}                   |     안녕${}
A|안녕\${}xx                 |     안녕${}xx
A|안녕${}                    |     error
A|안녕${}xx                  |     error
A|안녕${hi}                  |     안녕
A|안녕${hi}xx                |     안녕xx
A|안녕${PWD}                 |     안녕/home
A|안녕${.}                   |     error
A|안녕${XXX:-000}xx          |     안녕000xx
A|안녕${PWD:-000}xx          |     안녕/homexx
A|안녕${XXX:-$PWD}xx         |     안녕/homexx
A|안녕${XXX:-${PWD:-yyy}}xx  |     안녕/homexx
A|안녕${XXX:-${YYY:-yyy}}xx  |     안녕yyyxx
A|안녕${XXX:YYY}             |     error
A|안녕${XXX:+${PWD}}xx       |     안녕xx
A|안녕${PWD:+${XXX}}xx       |     안녕xx
A|안녕${PWD:+${SHELL}}xx     |     안녕bashxx
A|안녕${XXX:+000}xx          |     안녕xx
A|안녕${PWD:+000}xx          |     안녕000xx
A|'안녕${XX}'                |     안녕${XX}
A|"안녕${PWD}"               |     안녕/home
A|"안녕'$PWD'"               |     안녕'/home'
A|'"안녕"'                   |     "안녕"
A|안녕\$PWD                  |     안녕$PWD
A|"안녕\$PWD"                |     안녕$PWD
A|'안녕\$PWD'                |     안녕\$PWD
A|안녕${PWD                  |     error
A|안녕${PWD:=000}xx          |     error
A|안녕${PWD:+${PWD}:}xx      |     안녕/home:xx
A|안녕${XXX:-\$PWD:}xx       |     안녕$PWD:xx
A|안녕${XXX:-\${PWD}z}xx     |     안녕${PWDz}xx
A|$KOREAN                    |     한국어
A|안녕$KOREAN                |     안녕한국어
A|${{aaa}                   |     error
A|${aaa}}                   |     }
A|${aaa                     |     error
A|${{aaa:-bbb}              |     error
A|${aaa:-bbb}}              |     bbb}
A|${aaa:-bbb                |     error
A|${aaa:-bbb}               |     bbb
A|${aaa:-${bbb:-ccc}}       |     ccc
A|${aaa:-bbb ${foo}         |     error
A|${aaa:-bbb {foo}          |     bbb {foo
A|${:}                      |     error
A|${:-bbb}                  |     error
A|${:+bbb}                  |     error
A|${NULL:-abc}              |     abc
A|${NULL-abc}               |
A|${NULL:+abc}              |
A|${NULL+abc}               |     abc
A|${aaa-bbb}                |     bbb
A|${aaa+bbb}                |
"#;

#[test]
fn envvar_test_table() {
    let env = env_from(&["PWD=/home", "SHELL=bash", "KOREAN=한국어", "NULL="]);
    let lex = Lexer::new('\\');
    let mut checked = 0;
    for (n, line) in ENV_VAR_TEST.lines().enumerate() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let parts: Vec<&str> = line.split('|').collect();
        assert_eq!(parts.len(), 3, "line {}", n + 1);
        let (platform, source, expected) = (parts[0].trim(), parts[1].trim(), parts[2].trim());
        if platform == "W" {
            continue;
        }
        let got = lex.expand_word(source, &env);
        if expected == "error" {
            assert!(got.is_err(), "line {}: {source:?} gave {got:?}", n + 1);
        } else {
            assert_eq!(got.as_deref(), Ok(expected), "line {}: {source:?}", n + 1);
        }
        checked += 1;
    }
    assert_eq!(checked, 140);
}

const WORDS_TEST: &str = "hello | hello
hello${hi}bye | hellobye
ENV hi=hi
hello${hi}bye | hellohibye
ENV space=abc  def
hello${space}bye | helloabc,defbye
hello\"${space}\"bye | helloabc  defbye
hello \"${space}\"bye | hello,abc  defbye
ENV leading=  ab c
hello${leading}def | hello,ab,cdef
hello\"${leading}\" def | hello  ab c,def
hello\"${leading}\" | hello  ab c
hello${leading} | hello,ab,c
# next line MUST have 3 trailing spaces, don't erase them!
ENV trailing=ab c   
hello${trailing} | helloab,c
hello${trailing}d | helloab,c,d
hello\"${trailing}\"d | helloab c   d
# next line MUST have 3 trailing spaces, don't erase them!
hel\"lo${trailing}\" | helloab c   
hello\" there  \" | hello there  
hello there     | hello,there
hello\\ there | hello there
hello\" there | error
hello\\\" there | hello\",there
hello\"\\\\there\" | hello\\there
hello\"\\there\" | hello\\there
hello'\\\\there' | hello\\\\there
hello'\\there' | hello\\there
hello'$there' | hello$there
";

#[test]
fn words_test_table() {
    let lex = Lexer::new('\\');
    let mut envs: Vec<String> = Vec::new();
    let mut checked = 0;
    for (n, line) in WORDS_TEST.lines().enumerate() {
        if line.starts_with('#') {
            continue;
        }
        if let Some(rest) = line.strip_prefix("ENV ") {
            envs.push(rest.trim_start_matches(' ').to_string());
            continue;
        }
        let parts: Vec<&str> = line.split('|').collect();
        assert_eq!(parts.len(), 2, "line {}", n + 1);
        let test = parts[0].trim();
        let expected: Vec<&str> = parts[1].trim_start_matches(' ').split(',').collect();
        let refs: Vec<&str> = envs.iter().map(String::as_str).collect();
        let env = env_from(&refs);
        let got = lex
            .expand_words(test, &env)
            .unwrap_or_else(|_| vec!["error".to_string()]);
        assert_eq!(got, expected, "line {}: {test:?}", n + 1);
        checked += 1;
    }
    assert_eq!(checked, 24);
}

#[test]
fn mandatory_variables() {
    let lex = Lexer::new('\\');
    let set = env_from(&["VAR=plain", "ARG=x"]);
    let empty = env_from(&["VAR=", "ARG=x"]);
    let unset = env_from(&["ARG=x"]);
    let no_empty = "${VAR:?message here$ARG}";
    let no_unset = "${VAR?message here$ARG}";
    assert_eq!(lex.expand_word(no_empty, &set).unwrap(), "plain");
    assert!(
        lex.expand_word(no_empty, &empty)
            .unwrap_err()
            .contains("message herex")
    );
    assert!(
        lex.expand_word(no_empty, &unset)
            .unwrap_err()
            .contains("message herex")
    );
    assert_eq!(lex.expand_word(no_unset, &set).unwrap(), "plain");
    assert_eq!(lex.expand_word(no_unset, &empty).unwrap(), "");
    assert!(
        lex.expand_word(no_unset, &unset)
            .unwrap_err()
            .contains("message herex")
    );
    assert_eq!(
        lex.expand_word("${X?}", &unset).unwrap_err(),
        "failed to process \"${X?}\": X: is not allowed to be unset"
    );
    assert_eq!(
        lex.expand_word("${VAR:?}", &empty).unwrap_err(),
        "failed to process \"${VAR:?}\": VAR: is not allowed to be empty"
    );
}

/// `TestProcessWithMatches`: (input, env, expected; None = error).
#[test]
fn process_with_matches_table() {
    let cases: &[(&str, &[&str], Option<&str>)] = &[
        ("x", &["DUMMY=dummy"], Some("x")),
        ("x ${UNUSED}", &["DUMMY=dummy"], Some("x ")),
        ("x ${FOO}", &["FOO=y"], Some("x y")),
        (
            "${FOO-aaa} ${BAR-bbb} ${BAZ-ccc}",
            &["FOO=xxx", "BAR="],
            Some("xxx  ccc"),
        ),
        (
            "${FOO:-aaa} ${BAR:-bbb} ${BAZ:-ccc}",
            &["FOO=xxx", "BAR="],
            Some("xxx bbb ccc"),
        ),
        ("${FOO:-}", &["FOO=xxx", "BAR="], Some("xxx")),
        ("${FOO:-}", &[], Some("")),
        (
            "${FOO+aaa} ${BAR+bbb} ${BAZ+ccc}",
            &["FOO=xxx", "BAR="],
            Some("aaa bbb "),
        ),
        (
            "${FOO:+aaa} ${BAR:+bbb} ${BAZ:+ccc}",
            &["FOO=xxx", "BAR="],
            Some("aaa  "),
        ),
        ("${FOO?aaa}", &["FOO=xxx", "BAR="], Some("xxx")),
        ("${BAR?bbb}", &["FOO=xxx", "BAR="], Some("")),
        ("${BAZ?ccc}", &["FOO=xxx", "BAR="], None),
        ("${FOO:?aaa}", &["FOO=xxx", "BAR="], Some("xxx")),
        ("${BAR:?bbb}", &["FOO=xxx", "BAR="], None),
        ("${BAZ:?ccc}", &["FOO=xxx", "BAR="], None),
        ("${BAZ:?}", &["FOO=xxx", "BAR="], None),
        ("${FOO=aaa}", &["FOO=xxx", "BAR="], None),
        ("${FOO=:aaa}", &["FOO=xxx", "BAR="], None),
        ("${FOO=}", &[], None),
        (
            "${FOO#()[]{\\}^$.\\*\\?|\\\\}",
            &["FOO=()[]{}^$.*?|\\x"],
            Some("x"),
        ),
        ("${FOO%%\\**}", &["FOO=xx**"], Some("xx")),
        ("${FOO#*x*y}", &["FOO=xxyy"], Some("y")),
        ("${FOO#*}", &["FOO=xxyy"], Some("xxyy")),
        ("${FOO#$BAR}", &["FOO=xxyy", "BAR=x"], Some("xyy")),
        ("${FOO#$BAR}", &["FOO=xxyy", "BAR="], Some("xxyy")),
        ("${FOO#}", &["FOO=xxyy"], Some("xxyy")),
        ("${FOO##*x}", &["FOO=xxyy"], Some("yy")),
        ("${FOO##}", &["FOO=xxyy"], Some("xxyy")),
        ("${FOO#?\\?}", &["FOO=???y"], Some("?y")),
        ("${ABC:-.}${FOO%x}${ABC:-.}", &["FOO=xxyy"], Some(".xxyy.")),
        ("${FOO%%\\**\\*}", &["FOO=a***yy*"], Some("a")),
        ("${FOO%}", &["FOO=xxyy"], Some("xxyy")),
        ("${FOO%%$BAR}", &["FOO=xxyy", "BAR="], Some("xxyy")),
        ("${FOO:#}", &[], None),
        ("${FOO:##}", &[], None),
        ("${FOO:%}", &[], None),
        ("${FOO:%%}", &[], None),
        (
            "${FOO/$NEEDLE/.} - ${FOO//$NEEDLE/.}",
            &["FOO=/foo*/*/*.txt", "NEEDLE=\\*/"],
            Some("/foo.*/*.txt - /foo..*.txt"),
        ),
        (
            "${FOO/$NEEDLE/} - ${FOO//$NEEDLE/}",
            &["FOO=/tmp/tmp/bar.txt", "NEEDLE=/tmp"],
            Some("/tmp/bar.txt - /bar.txt"),
        ),
        (
            "${FOO/$NEEDLE/$REPLACEMENT} - ${FOO//$NEEDLE/$REPLACEMENT}",
            &["FOO=/a/foo/b/c.txt", "NEEDLE=/?/", "REPLACEMENT=/"],
            Some("/foo/b/c.txt - /foo/c.txt"),
        ),
        (
            "${FOO/$NEEDLE/$REPLACEMENT}",
            &[
                "FOO=http://google.de",
                "NEEDLE=http://",
                "REPLACEMENT=https://",
            ],
            Some("https://google.de"),
        ),
        (
            "${FOO//\\//\\/}",
            &["FOO=/tmp/foo.txt"],
            Some("\\/tmp\\/foo.txt"),
        ),
        ("${FOO/$BAR/ww}", &["FOO=xxyy", "BAR="], Some("wwxxyy")),
        ("${FOO//ww}", &["FOO=xxyy"], None),
        ("${FOO//}", &["FOO=xxyy"], None),
        ("${FOO///}", &["FOO=xxyy"], Some("xxyy")),
        ("${FOO///}", &[], Some("")),
    ];
    let lex = Lexer::new('\\');
    for (input, envs, expected) in cases {
        let env = env_from(envs);
        let got = lex.expand_word(input, &env);
        match expected {
            Some(want) => assert_eq!(got.as_deref(), Ok(*want), "{input:?} with {envs:?}"),
            None => assert!(got.is_err(), "{input:?} with {envs:?} gave {got:?}"),
        }
    }
}

#[test]
fn platform_release_names() {
    let lex = Lexer::new('\\');
    let release =
        "something-${VERSION}.${TARGETOS}-${TARGETARCH}${TARGETVARIANT:+-${TARGETVARIANT}}.tar.gz";
    let env = env_from(&[
        "VERSION=v1.2.3",
        "TARGETOS=linux",
        "TARGETARCH=arm",
        "TARGETVARIANT=v7",
    ]);
    assert_eq!(
        lex.expand_word(release, &env).unwrap(),
        "something-v1.2.3.linux-arm-v7.tar.gz"
    );
    let env = env_from(&[
        "VERSION=v1.2.3",
        "TARGETOS=linux",
        "TARGETARCH=arm64",
        "TARGETVARIANT=",
    ]);
    assert_eq!(
        lex.expand_word(release, &env).unwrap(),
        "something-v1.2.3.linux-arm64.tar.gz"
    );
    let env = env_from(&["VERSION=v1.2.3", "TARGETOS=linux", "TARGETARCH=arm64"]);
    assert_eq!(
        lex.expand_word(release, &env).unwrap(),
        "something-v1.2.3.linux-arm64.tar.gz"
    );
}

#[test]
fn words_split_values_but_not_quotes() {
    let lex = Lexer::new('\\');
    let env = env_from(&["A=1 2", "EMPTY="]);
    assert_eq!(
        lex.expand_words("x $A \"$A\" '$A' a\\ b", &env).unwrap(),
        ["x", "1", "2", "1 2", "$A", "a b"]
    );
    // an empty quoted word is dropped, as in BuildKit
    assert_eq!(
        lex.expand_words("a \"\" b $EMPTY", &env).unwrap(),
        ["a", "b"]
    );
    assert_eq!(lex.expand_word("  a  ", &env).unwrap(), "  a  ");
}

#[test]
fn special_parameters_and_digits() {
    let lex = Lexer::new('\\');
    let env = env_from(&["1=one", "@=at"]);
    assert_eq!(
        lex.expand_word("$1 ${1} $12 $@ $", &env).unwrap(),
        "one one  at $"
    );
}
