//! Split lines → typed instructions and stages, with BuildKit's checks and messages
//! (`instructions/parse.go`): argument counts, accepted flags, stage names, ONBUILD
//! triggers, HEALTHCHECK options, heredoc sources, and which instructions may come
//! before the first FROM (only ARG).

use std::sync::LazyLock;

use berth_types::units::parse_go_duration;
use regex::Regex;

use super::error::ParseError;
use super::flags::FlagSpec;
use super::heredoc::parse_heredoc;
use super::lines::{Ast, RawInstruction};
use super::messages::{go_quote, with_suggestion};
use super::model::{
    ArgDecl, CopyArgs, Dockerfile, Healthcheck, Heredoc, Instruction, InstructionKind, RunMount,
    ShellOrExec, Stage,
};
use super::syntax::Node;

/// Every instruction name, for "(did you mean ...?)".
const INSTRUCTIONS: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// Docker's minimum for HEALTHCHECK durations (`container.MinimumDuration`).
const MIN_HEALTH_DURATION_NS: i64 = 1_000_000;

static ONBUILD_PREFIX: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?i)^[\t\n\x0C\r ]*ONBUILD[\t\n\x0C\r ]*").expect("onbuild regex")
});

/// A typed line: a stage start or an instruction.
pub(crate) enum Typed {
    From(Stage),
    Instr(Instruction),
}

/// Types every line and groups them into stages.
pub(crate) fn build(ast: Ast) -> Result<Dockerfile, ParseError> {
    let mut stages: Vec<Stage> = Vec::new();
    let mut meta_args = Vec::new();
    for raw in &ast.nodes {
        let typed = type_line(raw).map_err(|m| ParseError::new(raw.start_line, m))?;
        match typed {
            Typed::From(mut stage) => {
                stage.index = stages.len();
                stages.push(stage);
            }
            Typed::Instr(instr) => match stages.last_mut() {
                Some(stage) => stage.instructions.push(instr),
                None => match instr.kind {
                    InstructionKind::Arg(args) => meta_args.extend(args),
                    _ => {
                        return Err(ParseError::new(
                            raw.start_line,
                            "no build stage in current context",
                        ));
                    }
                },
            },
        }
    }
    if stages.is_empty() {
        return Err(ParseError::new(0, "dockerfile contains no stages to build"));
    }
    Ok(Dockerfile {
        escape: ast.escape,
        syntax: ast.syntax,
        meta_args,
        stages,
        warnings: ast.warnings,
    })
}

/// Types one line (BuildKit's `ParseInstruction`).
pub(crate) fn type_line(raw: &RawInstruction) -> Result<Typed, String> {
    let node = &raw.node;
    let original = node.original.trim().to_string();
    let instr = |kind: InstructionKind| {
        Ok(Typed::Instr(Instruction {
            line: raw.start_line,
            original: original.clone(),
            kind,
        }))
    };
    let args = &node.args;
    match node.lower().as_str() {
        "env" => {
            no_flags(node)?;
            instr(InstructionKind::Env(key_values(&node.pairs, "ENV")?))
        }
        "maintainer" => {
            exactly_one(args, "MAINTAINER")?;
            no_flags(node)?;
            instr(InstructionKind::Maintainer(args[0].clone()))
        }
        "label" => {
            no_flags(node)?;
            instr(InstructionKind::Label(key_values(&node.pairs, "LABEL")?))
        }
        "add" => instr(InstructionKind::Add(copy_args(raw, "ADD")?)),
        "copy" => instr(InstructionKind::Copy(copy_args(raw, "COPY")?)),
        "from" => from(raw, original.clone()).map(Typed::From),
        "onbuild" => instr(onbuild(raw)?),
        "workdir" => {
            exactly_one(args, "WORKDIR")?;
            no_flags(node)?;
            instr(InstructionKind::Workdir(args[0].clone()))
        }
        "run" => instr(run(raw)?),
        "cmd" => {
            no_flags(node)?;
            instr(InstructionKind::Cmd(shell_or_exec(args, node.json)))
        }
        "entrypoint" => {
            no_flags(node)?;
            instr(InstructionKind::Entrypoint(shell_or_exec(args, node.json)))
        }
        "healthcheck" => instr(InstructionKind::Healthcheck(healthcheck(node)?)),
        "expose" => {
            at_least_one(args, "EXPOSE")?;
            no_flags(node)?;
            let mut ports = args.clone();
            ports.sort();
            instr(InstructionKind::Expose(ports))
        }
        "user" => {
            exactly_one(args, "USER")?;
            no_flags(node)?;
            instr(InstructionKind::User(args[0].clone()))
        }
        "volume" => {
            at_least_one(args, "VOLUME")?;
            no_flags(node)?;
            let mut volumes = Vec::with_capacity(args.len());
            for v in args {
                let v = v.trim();
                if v.is_empty() {
                    return Err("VOLUME specified can not be an empty string".into());
                }
                volumes.push(v.to_string());
            }
            instr(InstructionKind::Volume(volumes))
        }
        // BuildKit does not look at STOPSIGNAL's or ARG's flags at all.
        "stopsignal" => {
            exactly_one(args, "STOPSIGNAL")?;
            instr(InstructionKind::StopSignal(args[0].clone()))
        }
        "arg" => instr(InstructionKind::Arg(arg_decls(args)?)),
        "shell" => {
            no_flags(node)?;
            if args.is_empty() {
                return Err("SHELL requires at least one argument".into());
            }
            if !node.json {
                return Err("SHELL requires the arguments to be in JSON form".into());
            }
            instr(InstructionKind::Shell(args.clone()))
        }
        _ => Err(with_suggestion(
            format!("unknown instruction: {}", node.cmd),
            &node.cmd,
            INSTRUCTIONS,
            false,
        )),
    }
}

fn no_flags(node: &Node) -> Result<(), String> {
    FlagSpec::new().parse(&node.flags).map(|_| ())
}

fn exactly_one(args: &[String], name: &str) -> Result<(), String> {
    if args.len() != 1 {
        return Err(format!("{name} requires exactly one argument"));
    }
    Ok(())
}

fn at_least_one(args: &[String], name: &str) -> Result<(), String> {
    if args.is_empty() {
        return Err(format!("{name} requires at least one argument"));
    }
    Ok(())
}

fn key_values(pairs: &[(String, String)], name: &str) -> Result<Vec<(String, String)>, String> {
    if pairs.is_empty() {
        return Err(format!("{name} requires at least one argument"));
    }
    if pairs.iter().any(|(k, _)| k.is_empty()) {
        return Err(format!("{name} names can not be blank"));
    }
    Ok(pairs.to_vec())
}

fn arg_decls(args: &[String]) -> Result<Vec<ArgDecl>, String> {
    at_least_one(args, "ARG")?;
    args.iter()
        .map(|a| match a.split_once('=') {
            Some(("", _)) => Err("ARG names can not be blank".to_string()),
            Some((k, v)) => Ok(ArgDecl {
                name: k.to_string(),
                default: Some(v.to_string()),
            }),
            None => Ok(ArgDecl {
                name: a.clone(),
                default: None,
            }),
        })
        .collect()
}

/// Shell form joins the words with spaces; exec form keeps them.
fn shell_or_exec(args: &[String], json: bool) -> ShellOrExec {
    if json {
        ShellOrExec::Exec(args.to_vec())
    } else {
        ShellOrExec::Shell(args.join(" "))
    }
}

fn from(raw: &RawInstruction, original: String) -> Result<Stage, String> {
    let args = &raw.node.args;
    let name = match args.len() {
        3 if args[1].eq_ignore_ascii_case("as") => {
            let name = args[2].to_lowercase();
            if !valid_stage_name(&name) {
                return Err(format!(
                    "invalid name for build stage: {}, name can't start with a number or contain symbols",
                    go_quote(&args[2])
                ));
            }
            Some(name)
        }
        1 => None,
        _ => return Err("FROM requires either one or three arguments".into()),
    };
    let flags = FlagSpec::new().string("platform").parse(&raw.node.flags)?;
    Ok(Stage {
        index: 0,
        name,
        base: args[0].clone(),
        platform: flags.string("platform"),
        line: raw.start_line,
        original,
        instructions: Vec::new(),
    })
}

/// `^[a-z][a-z0-9-_.]*$`
fn valid_stage_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '_' | '.'))
}

fn onbuild(raw: &RawInstruction) -> Result<InstructionKind, String> {
    let node = &raw.node;
    at_least_one(&node.args, "ONBUILD")?;
    no_flags(node)?;
    let trigger = node.args[0].trim().to_uppercase();
    match trigger.as_str() {
        "ONBUILD" => return Err("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed".into()),
        "MAINTAINER" | "FROM" => {
            return Err(format!("{trigger} isn't allowed as an ONBUILD trigger"));
        }
        _ => {}
    }
    let mut expression = ONBUILD_PREFIX.replace(&node.original, "").into_owned();
    for doc in &raw.heredocs {
        expression.push('\n');
        expression.push_str(&doc.content);
        expression.push_str(&doc.name);
    }
    Ok(InstructionKind::OnBuild(expression))
}

fn run(raw: &RawInstruction) -> Result<InstructionKind, String> {
    let node = &raw.node;
    let flags = FlagSpec::new()
        .strings("mount")
        .string("network")
        .string("security")
        .parse(&node.flags)?;
    let mounts = RunMount::parse_all(&flags.strings("mount"), None)?;
    let network = flags.string("network");
    if let Some(n) = &network
        && !n.contains('$')
        && !matches!(n.as_str(), "default" | "none" | "host")
    {
        return Err(format!("invalid network mode {}", go_quote(n)));
    }
    let security = flags.string("security");
    if let Some(s) = &security
        && !s.contains('$')
        && !matches!(s.as_str(), "sandbox" | "insecure")
    {
        return Err(format!("security {} is not valid", go_quote(s)));
    }
    Ok(InstructionKind::Run {
        cmd: shell_or_exec(&node.args, node.json),
        heredocs: raw.heredocs.clone(),
        mounts,
        network,
        security,
    })
}

fn copy_args(raw: &RawInstruction, name: &str) -> Result<CopyArgs, String> {
    let node = &raw.node;
    if node.args.len() < 2 {
        return Err(format!(
            "{name} requires at least two arguments, but only one was provided. Destination could not be determined"
        ));
    }
    let spec = if name == "ADD" {
        FlagSpec::new()
            .strings("exclude")
            .string("chown")
            .string("chmod")
            .bool("link")
            .bool("keep-git-dir")
            .string("checksum")
    } else {
        FlagSpec::new()
            .string("chown")
            .string("from")
            .string("chmod")
            .bool("link")
            .strings("exclude")
            .bool("parents")
    };
    let flags = spec.parse(&node.flags)?;

    let (srcs, dest) = node.args.split_at(node.args.len() - 1);
    let dest = dest[0].clone();
    if parse_heredoc(&dest).ok().flatten().is_some() {
        return Err(format!("{name} cannot accept a heredoc as a destination"));
    }
    let mut sources = Vec::new();
    let mut heredocs = Vec::new();
    for src in srcs {
        match parse_heredoc(src).ok().flatten() {
            Some(word) => {
                let body = raw.heredocs.iter().find(|d| d.name == word.name);
                heredocs.push(Heredoc {
                    name: word.name.clone(),
                    content: body.map(|d| d.content.clone()).unwrap_or_default(),
                    expand: word.expand,
                    chomp: word.chomp,
                });
            }
            None => sources.push(src.clone()),
        }
    }
    Ok(CopyArgs {
        sources,
        dest,
        heredocs,
        from: flags.string("from"),
        chown: flags.string("chown"),
        chmod: flags.string("chmod"),
        link: flags.bool("link"),
        checksum: flags.string("checksum"),
        keep_git_dir: flags.bool("keep-git-dir"),
        exclude: flags.strings("exclude"),
        parents: flags.bool("parents"),
    })
}

fn healthcheck(node: &Node) -> Result<Option<Healthcheck>, String> {
    at_least_one(&node.args, "HEALTHCHECK")?;
    let typ = node.args[0].to_uppercase();
    let rest = &node.args[1..];
    if typ == "NONE" {
        // BuildKit does not look at the flags of HEALTHCHECK NONE.
        if !rest.is_empty() {
            return Err("HEALTHCHECK NONE takes no arguments".into());
        }
        return Ok(None);
    }
    let flags = FlagSpec::new()
        .string("interval")
        .string("timeout")
        .string("start-period")
        .string("start-interval")
        .string("retries")
        .parse(&node.flags)?;
    if typ != "CMD" {
        return Err(format!(
            "Unknown type {} in HEALTHCHECK (try CMD)",
            go_quote(&typ)
        ));
    }
    if rest.is_empty() {
        return Err("Missing command after HEALTHCHECK CMD".into());
    }
    let test = shell_or_exec(rest, node.json);
    let duration = |name: &str| -> Result<i64, String> {
        let Some(v) = flags.string(name) else {
            return Ok(0);
        };
        let d = parse_go_duration(&v).map_err(|e| e.to_string())?;
        if d == 0 {
            return Ok(0);
        }
        if d < MIN_HEALTH_DURATION_NS {
            return Err(format!(
                "Interval {} cannot be less than 1ms",
                go_quote(name)
            ));
        }
        Ok(d)
    };
    let retries = match flags.string("retries") {
        None => 0,
        Some(v) => {
            let r: i64 = v
                .parse::<i32>()
                .map_err(|_| {
                    format!(
                        "strconv.ParseInt: parsing {}: {}",
                        go_quote(&v),
                        int_error(&v)
                    )
                })?
                .into();
            if r < 0 {
                return Err(format!("--retries cannot be negative ({r})"));
            }
            r
        }
    };
    Ok(Some(Healthcheck {
        test,
        interval_ns: duration("interval")?,
        timeout_ns: duration("timeout")?,
        start_period_ns: duration("start-period")?,
        start_interval_ns: duration("start-interval")?,
        retries,
    }))
}

/// Go's reason for a failed `strconv.ParseInt(v, 10, 32)`.
fn int_error(v: &str) -> &'static str {
    let digits = v.strip_prefix(['+', '-']).unwrap_or(v);
    if !digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()) {
        "value out of range"
    } else {
        "invalid syntax"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_names() {
        for ok in ["a", "build", "a-b_c.d", "x1"] {
            assert!(valid_stage_name(ok), "{ok}");
        }
        for bad in ["", "1a", "-a", "a b", "a/b", "a:b", "é"] {
            assert!(!valid_stage_name(bad), "{bad}");
        }
    }

    #[test]
    fn int_errors() {
        assert_eq!(int_error("x"), "invalid syntax");
        assert_eq!(int_error("99999999999"), "value out of range");
    }
}
