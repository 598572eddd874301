//! Typed instructions, ported from BuildKit's `instructions/parse_test.go`,
//! `parse_heredoc_test.go` and `parser_heredoc_test.go`, plus the flags, mounts,
//! HEALTHCHECK and ONBUILD rules.

use berth_build::dockerfile::{
    CopyArgs, Healthcheck, Heredoc, Instruction, InstructionKind, MountKind, ShellOrExec, parse,
    parse_instruction,
};

/// The instructions of the single stage of `FROM scratch\n` + `body`.
fn instrs(body: &str) -> Vec<Instruction> {
    parse(&format!("FROM scratch\n{body}"))
        .unwrap_or_else(|e| panic!("{body:?}: {e}"))
        .stages
        .remove(0)
        .instructions
}

fn kind(body: &str) -> InstructionKind {
    instrs(body).remove(0).kind
}

/// The message of the error `FROM scratch\n` + `body` fails with.
fn err(body: &str) -> String {
    match parse(&format!("FROM scratch\n{body}")) {
        Ok(df) => panic!("{body:?} parsed: {df:?}"),
        Err(e) => e.message,
    }
}

fn doc(name: &str, content: &str, expand: bool, chomp: bool) -> Heredoc {
    Heredoc {
        name: name.into(),
        content: content.into(),
        expand,
        chomp,
    }
}

#[test]
fn commands_exactly_one_argument() {
    for cmd in ["MAINTAINER", "WORKDIR", "USER", "STOPSIGNAL"] {
        assert_eq!(err(cmd), format!("{cmd} requires exactly one argument"));
    }
}

#[test]
fn commands_at_least_one_argument() {
    for cmd in [
        "ENV",
        "LABEL",
        "ONBUILD",
        "HEALTHCHECK",
        "EXPOSE",
        "VOLUME",
        "ARG",
    ] {
        assert_eq!(err(cmd), format!("{cmd} requires at least one argument"));
    }
}

#[test]
fn commands_no_destination_argument() {
    for cmd in ["ADD", "COPY"] {
        assert_eq!(
            err(&format!("{cmd} arg1")),
            format!(
                "{cmd} requires at least two arguments, but only one was provided. Destination could not be determined"
            )
        );
    }
    // BuildKit's "copyEmptyWhitespace" case
    assert!(
        err("COPY\t\n\t\tquux \\\n      bar").starts_with("COPY requires at least two arguments")
    );
}

#[test]
fn commands_blank_names() {
    assert_eq!(err("ENV =arg2"), "ENV names can not be blank");
    assert_eq!(err("LABEL =arg2"), "LABEL names can not be blank");
    assert_eq!(err("ARG =x"), "ARG names can not be blank");
}

#[test]
fn error_cases() {
    assert_eq!(
        err("ONBUILD FROM scratch"),
        "FROM isn't allowed as an ONBUILD trigger"
    );
    assert_eq!(
        err("ONBUILD MAINTAINER docker.io"),
        "MAINTAINER isn't allowed as an ONBUILD trigger"
    );
    assert_eq!(
        err("ONBUILD ONBUILD RUN touch foobar"),
        "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
    );
    assert_eq!(err("MAINTAINER --boo joe@example.com"), "Unknown flag: boo");
    assert_eq!(err("ENV --x=1 a=b"), "Unknown flag: x");
    assert_eq!(err("COPY --form=build a b"), "Unknown flag: form");
    assert_eq!(err("COPY --from a b"), "Missing a value on flag: from");
    assert_eq!(
        err("COPY --from=a --from=b a b"),
        "Duplicate flag specified: from"
    );
    assert_eq!(
        err("COPY --link=maybe a b"),
        "Expecting boolean value for flag link, not: maybe"
    );
    assert_eq!(err("ADD --from=x a b"), "Unknown flag: from");
    assert_eq!(
        err("SHELL /bin/sh -c"),
        "SHELL requires the arguments to be in JSON form"
    );
    assert_eq!(err("SHELL []"), "SHELL requires at least one argument");
    assert_eq!(
        err("VOLUME [\"\"]"),
        "VOLUME specified can not be an empty string"
    );
    assert_eq!(
        err("VOLUME [\"  \"]"),
        "VOLUME specified can not be an empty string"
    );
    assert_eq!(
        err("RUN --network=bridge true"),
        "invalid network mode \"bridge\""
    );
    assert_eq!(
        err("RUN --security=privileged true"),
        "security \"privileged\" is not valid"
    );
    assert_eq!(err("RUN --device=/dev/x true"), "Unknown flag: device");
}

#[test]
fn from_lines() {
    assert_eq!(
        parse("FROM a b").unwrap_err().message,
        "FROM requires either one or three arguments"
    );
    assert_eq!(
        parse("FROM a AS b c").unwrap_err().message,
        "FROM requires either one or three arguments"
    );
    assert_eq!(
        parse("FROM").unwrap_err().message,
        "FROM requires either one or three arguments"
    );
    assert_eq!(
        parse("FROM a AS 1x").unwrap_err().message,
        "invalid name for build stage: \"1x\", name can't start with a number or contain symbols"
    );
    assert_eq!(
        parse("FROM a as B-1.x_y").unwrap().stages[0]
            .name
            .as_deref(),
        Some("b-1.x_y")
    );
    assert_eq!(
        parse("FROM --platfrom=x a").unwrap_err().message,
        "Unknown flag: platfrom"
    );
    let s = parse("FROM --platform=linux/arm64 a")
        .unwrap()
        .stages
        .remove(0);
    assert_eq!(s.platform.as_deref(), Some("linux/arm64"));
    assert_eq!(
        parse("FROM --platform= a").unwrap().stages[0].platform,
        None
    );
}

#[test]
fn env_label_arg_keep_values_raw() {
    assert_eq!(
        kind("ENV a=\"x y\" b=$c"),
        InstructionKind::Env(vec![
            ("a".into(), "\"x y\"".into()),
            ("b".into(), "$c".into())
        ])
    );
    assert_eq!(
        kind("ENV a b  c"),
        InstructionKind::Env(vec![("a".into(), "b  c".into())])
    );
    assert_eq!(
        kind("LABEL \"com.x\"=\"y z\""),
        InstructionKind::Label(vec![("\"com.x\"".into(), "\"y z\"".into())])
    );
    match kind("ARG a b=1 c=\"d e\" f=") {
        InstructionKind::Arg(args) => {
            let got: Vec<(String, Option<String>)> =
                args.into_iter().map(|a| (a.name, a.default)).collect();
            assert_eq!(
                got,
                [
                    ("a".to_string(), None),
                    ("b".to_string(), Some("1".to_string())),
                    ("c".to_string(), Some("\"d e\"".to_string())),
                    ("f".to_string(), Some(String::new())),
                ]
            );
        }
        k => panic!("{k:?}"),
    }
}

#[test]
fn simple_instructions() {
    assert_eq!(
        kind("WORKDIR /a b"),
        InstructionKind::Workdir("/a b".into())
    );
    assert_eq!(
        kind("USER 1000:1000"),
        InstructionKind::User("1000:1000".into())
    );
    assert_eq!(
        kind("STOPSIGNAL SIGKILL"),
        InstructionKind::StopSignal("SIGKILL".into())
    );
    assert_eq!(
        kind("EXPOSE 8080/udp 80 443"),
        InstructionKind::Expose(vec!["443".into(), "80".into(), "8080/udp".into()])
    );
    assert_eq!(
        kind("VOLUME /a /b"),
        InstructionKind::Volume(vec!["/a".into(), "/b".into()])
    );
    assert_eq!(
        kind("VOLUME [\"/a b\"]"),
        InstructionKind::Volume(vec!["/a b".into()])
    );
    assert_eq!(
        kind("SHELL [\"pwsh\", \"-c\"]"),
        InstructionKind::Shell(vec!["pwsh".into(), "-c".into()])
    );
    assert_eq!(
        kind("CMD echo  hi"),
        InstructionKind::Cmd(ShellOrExec::Shell("echo  hi".into()))
    );
    assert_eq!(
        kind("CMD"),
        InstructionKind::Cmd(ShellOrExec::Shell(String::new()))
    );
    assert_eq!(
        kind("ENTRYPOINT [\"/bin/app\"]"),
        InstructionKind::Entrypoint(ShellOrExec::Exec(vec!["/bin/app".into()]))
    );
    assert_eq!(
        kind("MAINTAINER Jane <j@x>"),
        InstructionKind::Maintainer("Jane <j@x>".into())
    );
}

#[test]
fn copy_and_add_flags() {
    let InstructionKind::Copy(c) = kind(
        "COPY --from=build --chown=1:2 --chmod=0755 --link --exclude=*.md --exclude=x --parents a b /dest/",
    ) else {
        panic!()
    };
    assert_eq!(
        c,
        CopyArgs {
            sources: vec!["a".into(), "b".into()],
            dest: "/dest/".into(),
            from: Some("build".into()),
            chown: Some("1:2".into()),
            chmod: Some("0755".into()),
            link: true,
            exclude: vec!["*.md".into(), "x".into()],
            parents: true,
            ..CopyArgs::default()
        }
    );
    let InstructionKind::Add(a) =
        kind("ADD --checksum=sha256:abc --keep-git-dir=true --link=false https://x/y.tgz /")
    else {
        panic!()
    };
    assert_eq!(a.checksum.as_deref(), Some("sha256:abc"));
    assert!(a.keep_git_dir);
    assert!(!a.link);
    let InstructionKind::Copy(c) = kind("COPY [\"a b\", \"c\"]") else {
        panic!()
    };
    assert_eq!(
        (c.sources, c.dest),
        (vec!["a b".to_string()], "c".to_string())
    );
}

#[test]
fn healthcheck() {
    assert_eq!(kind("HEALTHCHECK NONE"), InstructionKind::Healthcheck(None));
    assert_eq!(
        kind("HEALTHCHECK --interval=5s NONE"),
        InstructionKind::Healthcheck(None)
    );
    assert_eq!(
        kind("HEALTHCHECK --interval=5s --timeout=3s --retries=3 \\\n  CMD /app/check.sh --quiet"),
        InstructionKind::Healthcheck(Some(Healthcheck {
            test: ShellOrExec::Shell("/app/check.sh --quiet".into()),
            interval_ns: 5_000_000_000,
            timeout_ns: 3_000_000_000,
            start_period_ns: 0,
            start_interval_ns: 0,
            retries: 3,
        }))
    );
    assert_eq!(
        kind("HEALTHCHECK --start-period=0s --interval=5s --timeout=0s --retries=0 CMD [\"foo\"]"),
        InstructionKind::Healthcheck(Some(Healthcheck {
            test: ShellOrExec::Exec(vec!["foo".into()]),
            interval_ns: 5_000_000_000,
            timeout_ns: 0,
            start_period_ns: 0,
            start_interval_ns: 0,
            retries: 0,
        }))
    );
    let InstructionKind::Healthcheck(Some(h)) =
        kind("healthcheck --start-interval=1m30s cmd hello world")
    else {
        panic!()
    };
    assert_eq!(h.test, ShellOrExec::Shell("hello world".into()));
    assert_eq!(h.start_interval_ns, 90_000_000_000);

    assert_eq!(
        err("HEALTHCHECK"),
        "HEALTHCHECK requires at least one argument"
    );
    assert_eq!(
        err("HEALTHCHECK CMD"),
        "Missing command after HEALTHCHECK CMD"
    );
    assert_eq!(
        err("HEALTHCHECK CONNECT TCP 7000"),
        "Unknown type \"CONNECT\" in HEALTHCHECK (try CMD)"
    );
    assert_eq!(
        err("HEALTHCHECK NONE x"),
        "HEALTHCHECK NONE takes no arguments"
    );
    assert_eq!(
        err("HEALTHCHECK --interval=50ns CMD x"),
        "Interval \"interval\" cannot be less than 1ms"
    );
    assert_eq!(
        err("HEALTHCHECK --timeout=-1s CMD x"),
        "Interval \"timeout\" cannot be less than 1ms"
    );
    assert_eq!(
        err("HEALTHCHECK --interval=5 CMD x"),
        "time: missing unit in duration \"5\""
    );
    assert_eq!(
        err("HEALTHCHECK --retries=-1 CMD x"),
        "--retries cannot be negative (-1)"
    );
    assert_eq!(
        err("HEALTHCHECK --retries=x CMD x"),
        "strconv.ParseInt: parsing \"x\": invalid syntax"
    );
    assert_eq!(err("HEALTHCHECK --foo=1 CMD x"), "Unknown flag: foo");
    assert!(matches!(
        kind("HEALTHCHECK --interval=1ms CMD x"),
        InstructionKind::Healthcheck(Some(_))
    ));
}

#[test]
fn run_flags_and_mounts() {
    let InstructionKind::Run {
        cmd,
        mounts,
        network,
        security,
        heredocs,
    } = kind(
        "RUN --mount=type=cache,target=/root/.cache,id=x --mount=type=secret,id=tok --network=none --security=insecure go build",
    )
    else {
        panic!()
    };
    assert_eq!(cmd, ShellOrExec::Shell("go build".into()));
    assert!(heredocs.is_empty());
    assert_eq!(network.as_deref(), Some("none"));
    assert_eq!(security.as_deref(), Some("insecure"));
    assert_eq!(mounts.len(), 2);
    assert_eq!(
        (
            mounts[0].kind,
            mounts[0].target.as_str(),
            mounts[0].id.as_deref()
        ),
        (MountKind::Cache, "/root/.cache", Some("x"))
    );
    assert_eq!(mounts[0].spec, "type=cache,target=/root/.cache,id=x");
    assert_eq!(
        (mounts[1].kind, mounts[1].target.as_str()),
        (MountKind::Secret, "/run/secrets/tok")
    );
    assert_eq!(
        err("RUN --mount=type=cache,target=/x,sharing=nope true"),
        "unsupported sharing value \"nope\""
    );
    assert_eq!(
        err("RUN --mount=type=bindd,target=/x true"),
        "unsupported mount type \"bindd\" (did you mean bind?)"
    );
    assert_eq!(err("RUN --mount true"), "Missing a value on flag: mount");
    // variables are left for the builder to expand
    let InstructionKind::Run { network, .. } = kind("RUN --network=$NET true") else {
        panic!()
    };
    assert_eq!(network.as_deref(), Some("$NET"));
}

#[test]
fn onbuild_triggers() {
    assert_eq!(
        kind("ONBUILD RUN echo hi"),
        InstructionKind::OnBuild("RUN echo hi".into())
    );
    assert_eq!(
        kind("onbuild   ADD . /app/src"),
        InstructionKind::OnBuild("ADD . /app/src".into())
    );
    assert_eq!(
        kind("ONBUILD RUN <<EOF\necho hi\nEOF"),
        InstructionKind::OnBuild("RUN <<EOF\necho hi\nEOF".into())
    );
    assert_eq!(err("ONBUILD --x RUN a"), "Unknown flag: x");

    let i = parse_instruction("RUN <<EOF\necho hi\nEOF", '\\').unwrap();
    let InstructionKind::Run { cmd, heredocs, .. } = i.kind else {
        panic!()
    };
    assert_eq!(cmd, ShellOrExec::Shell("<<EOF".into()));
    assert_eq!(heredocs, [doc("EOF", "echo hi\n", true, false)]);
    assert_eq!(i.original, "RUN <<EOF");

    assert_eq!(
        parse_instruction("COPY a `\n b", '`').unwrap().original,
        "COPY a  b"
    );
    assert_eq!(
        parse_instruction("FROM x", '\\').unwrap_err().message,
        "FROM isn't allowed as an ONBUILD trigger"
    );
    assert_eq!(
        parse_instruction("MAINTAINER x", '\\').unwrap_err().message,
        "MAINTAINER isn't allowed as an ONBUILD trigger"
    );
    assert_eq!(
        parse_instruction("ONBUILD RUN x", '\\')
            .unwrap_err()
            .message,
        "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
    );
    assert_eq!(
        parse_instruction("RUN a\nRUN b", '\\').unwrap_err().message,
        "onbuild trigger should be a single expression"
    );
    assert_eq!(
        parse_instruction("FOO", '\\').unwrap_err().to_string(),
        "dockerfile parse error on line 1: unknown instruction: FOO (did you mean FROM?)"
    );
}

#[test]
fn heredoc_extraction() {
    // BuildKit's TestParseExtractsHeredoc, without the USER line it uses to show that
    // USER takes no heredoc (that line is checked separately below).
    let dockerfile = "
FROM alpine:3.6

ENV NAME=me

RUN ls

RUN <<EMPTY
EMPTY

RUN 3<<EMPTY2
EMPTY2

RUN \"<<NOHEREDOC\"

RUN <<INDENT
\tfoo
\tbar
INDENT

RUN <<-UNINDENT
\tbaz
\tquux
UNINDENT

RUN <<-UNINDENT2
\tbaz
\tquux
\tUNINDENT2

RUN <<-EXPAND
\texpand $NAME
EXPAND

RUN <<-'NOEXPAND'
\tdon't expand $NAME
NOEXPAND

RUN <<COPY
echo hello world
echo foo bar
COPY

RUN <<COMMENT
# internal comment
echo hello world
echo foo bar # trailing comment
COMMENT

RUN --mount=type=cache,target=/foo <<MOUNT
echo hello
MOUNT

COPY <<FILE1 <<FILE2 /dest
content 1
FILE1
content 2
FILE2

COPY <<X <<Y /dest
Y
X
X
Y
\t";
    let df = parse(dockerfile).unwrap();
    let got: Vec<Vec<Heredoc>> = df.stages[0]
        .instructions
        .iter()
        .map(|i| match &i.kind {
            InstructionKind::Run { heredocs, .. } => heredocs.clone(),
            InstructionKind::Copy(c) => c.heredocs.clone(),
            _ => Vec::new(),
        })
        .collect();
    let want: Vec<Vec<Heredoc>> = vec![
        vec![],
        vec![],
        vec![doc("EMPTY", "", true, false)],
        vec![doc("EMPTY2", "", true, false)],
        vec![],
        vec![doc("INDENT", "\tfoo\n\tbar\n", true, false)],
        vec![doc("UNINDENT", "\tbaz\n\tquux\n", true, true)],
        vec![doc("UNINDENT2", "\tbaz\n\tquux\n", true, true)],
        vec![doc("EXPAND", "\texpand $NAME\n", true, true)],
        vec![doc("NOEXPAND", "\tdon't expand $NAME\n", false, true)],
        vec![doc("COPY", "echo hello world\necho foo bar\n", true, false)],
        vec![doc(
            "COMMENT",
            "# internal comment\necho hello world\necho foo bar # trailing comment\n",
            true,
            false,
        )],
        vec![doc("MOUNT", "echo hello\n", true, false)],
        vec![
            doc("FILE1", "content 1\n", true, false),
            doc("FILE2", "content 2\n", true, false),
        ],
        vec![doc("X", "Y\n", true, false), doc("Y", "X\n", true, false)],
    ];
    assert_eq!(got, want);
    assert_eq!(got[6][0].body(), "baz\nquux\n");

    // USER takes no heredoc: the body line is an instruction of its own
    assert_eq!(
        err("USER <<INVALID\nINVALID"),
        "unknown instruction: INVALID"
    );
}

#[test]
fn json_forms_take_no_heredocs() {
    for body in ["RUN [\"whoami\"]", "RUN [\"<<EOF\"]", "RUN [\"<<'EOF'\"]"] {
        let InstructionKind::Run { heredocs, .. } = kind(body) else {
            panic!()
        };
        assert!(heredocs.is_empty(), "{body}");
    }
}

#[test]
fn copy_heredocs() {
    let copy = |body: &str| match kind(body) {
        InstructionKind::Copy(c) => (
            c.sources,
            c.dest,
            c.heredocs
                .iter()
                .map(|d| (d.name.clone(), d.body(), d.expand))
                .collect::<Vec<_>>(),
        ),
        k => panic!("{k:?}"),
    };
    let e = |s: &str, b: &str, x: bool| (s.to_string(), b.to_string(), x);
    assert_eq!(
        copy("COPY /foo /bar"),
        (vec!["/foo".to_string()], "/bar".to_string(), vec![])
    );
    assert_eq!(
        copy("COPY <<EOF /bar\nEOF"),
        (vec![], "/bar".to_string(), vec![e("EOF", "", true)])
    );
    assert_eq!(
        copy("COPY <<EOF /bar\nTESTING\nEOF"),
        (
            vec![],
            "/bar".to_string(),
            vec![e("EOF", "TESTING\n", true)]
        )
    );
    assert_eq!(
        copy("COPY <<-EOF /bar\n\tTESTING\nEOF"),
        (
            vec![],
            "/bar".to_string(),
            vec![e("EOF", "TESTING\n", true)]
        )
    );
    assert_eq!(
        copy("COPY <<'EOF' /bar\nTESTING\nEOF"),
        (
            vec![],
            "/bar".to_string(),
            vec![e("EOF", "TESTING\n", false)]
        )
    );
    assert_eq!(
        copy(
            "COPY <<EOF1 <<EOF2 /bar\nthis is the first file\nEOF1\nthis is the second file\nEOF2"
        ),
        (
            vec![],
            "/bar".to_string(),
            vec![
                e("EOF1", "this is the first file\n", true),
                e("EOF2", "this is the second file\n", true)
            ]
        )
    );
    assert_eq!(
        copy("COPY <<EOF foo.txt /bar\nthis is inline\nEOF"),
        (
            vec!["foo.txt".to_string()],
            "/bar".to_string(),
            vec![e("EOF", "this is inline\n", true)]
        )
    );
    assert_eq!(
        err("COPY /foo <<EOF\nEOF"),
        "COPY cannot accept a heredoc as a destination"
    );
}

#[test]
fn run_heredocs() {
    let run = |body: &str| match kind(body) {
        InstructionKind::Run { cmd, heredocs, .. } => (cmd, heredocs),
        k => panic!("{k:?}"),
    };
    assert_eq!(
        run("RUN [\"ls\", \"/\"]"),
        (ShellOrExec::Exec(vec!["ls".into(), "/".into()]), vec![])
    );
    assert_eq!(
        run("RUN [\"<<EOF\"]"),
        (ShellOrExec::Exec(vec!["<<EOF".into()]), vec![])
    );
    assert_eq!(run("RUN ls /"), (ShellOrExec::Shell("ls /".into()), vec![]));
    assert_eq!(
        run("RUN <<EOF\nls /\nwhoami\nEOF"),
        (
            ShellOrExec::Shell("<<EOF".into()),
            vec![doc("EOF", "ls /\nwhoami\n", true, false)]
        )
    );
    assert_eq!(
        run("RUN <<'EOF' | python\nprint(\"hello\")\nprint(\"world\")\nEOF"),
        (
            ShellOrExec::Shell("<<'EOF' | python".into()),
            vec![doc(
                "EOF",
                "print(\"hello\")\nprint(\"world\")\n",
                false,
                false
            )]
        )
    );
    assert_eq!(
        run("RUN <<-EOF\n\techo test\nEOF"),
        (
            ShellOrExec::Shell("<<-EOF".into()),
            vec![doc("EOF", "\techo test\n", true, true)]
        )
    );
    // the instruction after a heredoc starts on the right line
    let is = instrs("RUN <<EOF\na\nb\nEOF\nRUN c");
    assert_eq!((is[0].line, is[1].line), (2, 6));
    assert_eq!(is[0].original, "RUN <<EOF");
}
