//! The command line: docker's verbs and management forms as a clap tree, docker's
//! usage lines, help layout and flag-error messages, and the dispatch to commands.

use std::ffi::OsString;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{ArgAction, ColorChoice, CommandFactory, FromArgMatches, Parser, Subcommand};

use crate::cmd::{build, container, context, cp, image, network, run, stats, system, volume};
use crate::ctx::Ctx;
use crate::error::Result;

#[derive(Debug, Parser)]
#[command(name = "berth", about = "A self-sufficient runtime for containers", disable_version_flag = true, disable_help_subcommand = true)]
pub struct Cli {
    #[arg(long, value_name = "string", help = "Location of client config files (default \"~/.docker\")")]
    pub config: Option<String>,
    #[arg(short = 'c', long, value_name = "string", help = "Name of the context to use to connect to the daemon (overrides DOCKER_HOST env var and default context set with \"berth context use\")")]
    pub context: Option<String>,
    #[arg(short = 'D', long, action = ArgAction::SetTrue, help = "Enable debug mode")]
    pub debug: bool,
    #[arg(short = 'H', long, value_name = "list", help = "Daemon socket to connect to")]
    pub host: Vec<String>,
    #[arg(short = 'l', long = "log-level", value_name = "string", help = "Set the logging level (\"debug\", \"info\", \"warn\", \"error\", \"fatal\")")]
    pub log_level: Option<String>,
    #[arg(long, action = ArgAction::SetTrue, help = "Use TLS; implied by --tlsverify")]
    pub tls: bool,
    #[arg(long, value_name = "string", help = "Trust certs signed only by this CA (default \"~/.docker/ca.pem\")")]
    pub tlscacert: Option<String>,
    #[arg(long, value_name = "string", help = "Path to TLS certificate file (default \"~/.docker/cert.pem\")")]
    pub tlscert: Option<String>,
    #[arg(long, value_name = "string", help = "Path to TLS key file (default \"~/.docker/key.pem\")")]
    pub tlskey: Option<String>,
    #[arg(long, action = ArgAction::SetTrue, help = "Use TLS and verify the remote")]
    pub tlsverify: bool,
    #[arg(short = 'v', long, action = ArgAction::SetTrue, help = "Print version information and quit")]
    pub version: bool,
    #[command(subcommand)]
    pub cmd: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    Run(run::RunArgs),
    Exec(run::ExecArgs),
    Ps(container::PsArgs),
    Build(build::BuildArgs),
    Pull(image::PullArgs),
    Push(image::PushArgs),
    Images(image::ImagesArgs),
    Login(system::LoginArgs),
    Logout(system::LogoutArgs),
    Version(system::VersionArgs),
    Info(system::InfoArgs),
    /// Manage containers
    #[command(arg_required_else_help = true)]
    Container {
        #[command(subcommand)]
        cmd: ContainerCmd,
    },
    /// Manage builds
    #[command(arg_required_else_help = true)]
    Builder {
        #[command(subcommand)]
        cmd: BuilderCmd,
    },
    /// Manage contexts
    #[command(arg_required_else_help = true)]
    Context {
        #[command(subcommand)]
        cmd: context::ContextCmd,
    },
    /// Manage images
    #[command(arg_required_else_help = true)]
    Image {
        #[command(subcommand)]
        cmd: ImageCmd,
    },
    /// Manage networks
    #[command(arg_required_else_help = true)]
    Network {
        #[command(subcommand)]
        cmd: network::NetworkCmd,
    },
    /// Manage berth
    #[command(arg_required_else_help = true)]
    System {
        #[command(subcommand)]
        cmd: system::SystemCmd,
    },
    /// Manage volumes
    #[command(arg_required_else_help = true)]
    Volume {
        #[command(subcommand)]
        cmd: volume::VolumeCmd,
    },
    Attach(run::AttachArgs),
    Commit(container::CommitArgs),
    Cp(cp::CpArgs),
    Create(run::CreateArgs),
    Diff(container::DiffArgs),
    Events(system::EventsArgs),
    Export(container::ExportArgs),
    History(image::HistoryArgs),
    Import(image::ImportArgs),
    Inspect(system::InspectArgs),
    Kill(container::KillArgs),
    Load(image::LoadArgs),
    Logs(container::LogsArgs),
    Pause(container::PauseArgs),
    Port(container::PortArgs),
    Rename(container::RenameArgs),
    Restart(container::RestartArgs),
    Rm(container::RmArgs),
    Rmi(image::RmiArgs),
    Save(image::SaveArgs),
    Start(run::StartArgs),
    Stats(stats::StatsArgs),
    Stop(container::StopArgs),
    Tag(image::TagArgs),
    Top(container::TopArgs),
    #[command(about = "Unpause all processes within one or more containers")]
    Unpause(container::PauseArgs),
    Update(container::UpdateArgs),
    Wait(container::WaitArgs),
    /// Generate the autocompletion script for the specified shell
    Completion {
        #[arg(value_name = "SHELL")]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum ContainerCmd {
    Attach(run::AttachArgs),
    Commit(container::CommitArgs),
    Cp(cp::CpArgs),
    Create(run::CreateArgs),
    Diff(container::DiffArgs),
    Exec(run::ExecArgs),
    Export(container::ExportArgs),
    Inspect(container::ContainerInspectArgs),
    Kill(container::KillArgs),
    Logs(container::LogsArgs),
    #[command(visible_aliases = ["ps", "list"])]
    Ls(container::PsArgs),
    Pause(container::PauseArgs),
    Port(container::PortArgs),
    Prune(container::PruneArgs),
    Rename(container::RenameArgs),
    Restart(container::RestartArgs),
    #[command(visible_alias = "remove")]
    Rm(container::RmArgs),
    Run(run::RunArgs),
    Start(run::StartArgs),
    Stats(stats::StatsArgs),
    Stop(container::StopArgs),
    Top(container::TopArgs),
    #[command(about = "Unpause all processes within one or more containers")]
    Unpause(container::PauseArgs),
    Update(container::UpdateArgs),
    Wait(container::WaitArgs),
}

#[derive(Debug, Subcommand)]
pub enum BuilderCmd {
    Build(build::BuildArgs),
    Prune(build::BuilderPruneArgs),
}

#[derive(Debug, Subcommand)]
pub enum ImageCmd {
    Build(build::BuildArgs),
    History(image::HistoryArgs),
    Import(image::ImportArgs),
    Inspect(image::ImageInspectArgs),
    Load(image::LoadArgs),
    #[command(visible_alias = "list")]
    Ls(image::ImagesArgs),
    Prune(image::ImagePruneArgs),
    Pull(image::PullArgs),
    Push(image::PushArgs),
    #[command(visible_alias = "remove")]
    Rm(image::RmiArgs),
    Save(image::SaveArgs),
    Tag(image::TagArgs),
}

/// docker's usage line (after the command path) for each command.
fn usage_suffix(parent: &str, name: &str) -> &'static str {
    match (parent, name) {
        (_, "builder" | "container" | "context" | "image" | "network" | "volume" | "system") if parent == "berth" => "COMMAND",
        ("context", "create") => "[OPTIONS] CONTEXT",
        ("context", "inspect") => "[OPTIONS] [CONTEXT] [CONTEXT...]",
        ("context", "rm") => "CONTEXT [CONTEXT...]",
        ("context", "use") => "CONTEXT",
        ("context", "update") => "[OPTIONS] CONTEXT",
        ("network", "connect" | "disconnect") => "[OPTIONS] NETWORK CONTAINER",
        ("network", "create") => "[OPTIONS] NETWORK",
        ("network", "inspect") => "[OPTIONS] NETWORK [NETWORK...]",
        ("network", "rm") => "[OPTIONS] NETWORK [NETWORK...]",
        ("volume", "create") => "[OPTIONS] [VOLUME]",
        ("volume", "inspect") => "[OPTIONS] VOLUME [VOLUME...]",
        ("volume", "rm") => "[OPTIONS] VOLUME [VOLUME...]",
        ("container", "inspect") => "[OPTIONS] CONTAINER [CONTAINER...]",
        ("image", "inspect") => "[OPTIONS] IMAGE [IMAGE...]",
        ("image", "rm") => "[OPTIONS] IMAGE [IMAGE...]",
        ("image", "ls") => "[OPTIONS] [REPOSITORY[:TAG]]",
        (_, "ls" | "prune" | "df" | "events" | "info" | "ps" | "load" | "version") => "[OPTIONS]",
        (_, "attach") => "[OPTIONS] CONTAINER",
        (_, "build") => "[OPTIONS] PATH | URL | -",
        (_, "commit") => "[OPTIONS] CONTAINER [REPOSITORY[:TAG]]",
        (_, "cp") => "[OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n\tberth cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH",
        (_, "create" | "run") => "[OPTIONS] IMAGE [COMMAND] [ARG...]",
        (_, "diff") => "CONTAINER",
        (_, "exec") => "[OPTIONS] CONTAINER COMMAND [ARG...]",
        (_, "export" | "logs") => "[OPTIONS] CONTAINER",
        (_, "history") => "[OPTIONS] IMAGE",
        (_, "images") => "[OPTIONS] [REPOSITORY[:TAG]]",
        (_, "import") => "[OPTIONS] file|URL|- [REPOSITORY[:TAG]]",
        (_, "inspect") => "[OPTIONS] NAME|ID [NAME|ID...]",
        (_, "kill" | "restart" | "rm" | "start" | "stop" | "update") => "[OPTIONS] CONTAINER [CONTAINER...]",
        (_, "login") => "[OPTIONS] [SERVER]",
        (_, "logout") => "[SERVER]",
        (_, "pause" | "unpause" | "wait") => "CONTAINER [CONTAINER...]",
        (_, "port") => "CONTAINER [PRIVATE_PORT[/PROTO]]",
        (_, "pull") => "[OPTIONS] NAME[:TAG|@DIGEST]",
        (_, "push") => "[OPTIONS] NAME[:TAG]",
        (_, "rename") => "CONTAINER NEW_NAME",
        (_, "rmi") => "[OPTIONS] IMAGE [IMAGE...]",
        (_, "save") => "[OPTIONS] IMAGE [IMAGE...]",
        (_, "stats") => "[OPTIONS] [CONTAINER...]",
        (_, "tag") => "SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]",
        (_, "top") => "CONTAINER [ps OPTIONS]",
        (_, "completion") => "bash|zsh|fish",
        _ => "[OPTIONS]",
    }
}

const COMMON: &[&str] = &["run", "exec", "ps", "build", "pull", "push", "images", "login", "logout", "version", "info"];
const MANAGEMENT: &[&str] = &["builder", "container", "image", "network", "system", "volume"];

fn root_help(root: &clap::Command) -> String {
    let about = |name: &str| {
        root.find_subcommand(name).and_then(|c| c.get_about()).map(|a| a.to_string()).unwrap_or_default()
    };
    let mut s = String::from("Usage:  berth [OPTIONS] COMMAND\n\nA self-sufficient runtime for containers\n\nCommon Commands:\n");
    for n in COMMON {
        s.push_str(&format!("  {n:<11} {}\n", about(n)));
    }
    s.push_str("\nManagement Commands:\n");
    for n in MANAGEMENT {
        s.push_str(&format!("  {n:<11} {}\n", about(n)));
    }
    s.push_str("\nCommands:\n");
    let mut rest: Vec<&str> = root
        .get_subcommands()
        .map(|c| c.get_name())
        .filter(|n| !COMMON.contains(n) && !MANAGEMENT.contains(n))
        .collect();
    rest.sort();
    for n in rest {
        s.push_str(&format!("  {n:<11} {}\n", about(n)));
    }
    s.push_str("\nGlobal Options:\n");
    for a in root.get_arguments() {
        let flag = match (a.get_short(), a.get_long()) {
            (Some(sh), Some(l)) => format!("-{sh}, --{l}"),
            (None, Some(l)) => format!("    --{l}"),
            _ => continue,
        };
        let value = a.get_value_names().and_then(|v| v.first()).map(|v| format!(" {v}")).unwrap_or_default();
        let help = a.get_help().map(|h| h.to_string()).unwrap_or_default();
        s.push_str(&format!("  {:<24} {help}\n", format!("{flag}{value}")));
    }
    s.push_str("\nRun 'berth COMMAND --help' for more information on a command.\n");
    s
}

/// Applies docker's usage lines and help layout to every command in the tree.
fn decorate(cmd: clap::Command, path: &str, parent: &str) -> clap::Command {
    let name = cmd.get_name().to_string();
    let full = if path.is_empty() { name.clone() } else { format!("{path} {name}") };
    let has_subs = cmd.has_subcommands();
    // docker lists flags alphabetically, one per line.
    let mut cmd = cmd.color(ColorChoice::Never).next_line_help(false).mut_args(|a| a.display_order(0));
    if !path.is_empty() {
        cmd = cmd.override_usage(format!("{full} {}", usage_suffix(parent, &name)));
        cmd = if has_subs {
            cmd.help_template(format!(
                "Usage:  {{usage}}\n\n{{about}}\n\nCommands:\n{{subcommands}}\n\nRun '{full} COMMAND --help' for more information on a command.\n"
            ))
        } else {
            cmd.help_template("Usage:  {usage}\n\n{about}\n\nOptions:\n{options}\n")
        };
    }
    let subs: Vec<String> = cmd.get_subcommands().map(|c| c.get_name().to_string()).collect();
    for s in subs {
        let f = full.clone();
        let n = name.clone();
        cmd = cmd.mut_subcommand(&s, move |c| decorate(c, &f, &n));
    }
    cmd
}

/// The whole command tree as clap sees it (also used for shell completions).
pub fn command() -> clap::Command {
    let root = decorate(Cli::command(), "", "");
    let help = root_help(&root);
    root.override_help(help)
}

/// Global options that take a value (skipped when finding the command path).
const GLOBAL_VALUED: &[&str] = &["--config", "-c", "--context", "-H", "--host", "-l", "--log-level", "--tlscacert", "--tlscert", "--tlskey"];

/// The subcommand path the user typed ("berth network create"), for messages.
pub fn command_path(root: &clap::Command, args: &[OsString]) -> (String, Option<clap::Command>) {
    let mut path = vec!["berth".to_string()];
    let mut cur = root.clone();
    let mut leaf: Option<clap::Command> = None;
    let mut i = 1;
    while i < args.len() {
        let a = args[i].to_string_lossy();
        if a.starts_with('-') {
            if path.len() == 1 && GLOBAL_VALUED.contains(&a.as_ref()) {
                i += 1;
            }
            i += 1;
            continue;
        }
        match cur.find_subcommand(a.as_ref()).cloned() {
            Some(sub) => {
                path.push(sub.get_name().to_string());
                let has_subs = sub.has_subcommands();
                leaf = Some(sub.clone());
                if !has_subs {
                    break;
                }
                cur = sub;
            }
            None => break,
        }
        i += 1;
    }
    (path.join(" "), leaf)
}

fn ctx_str(e: &clap::Error, k: ContextKind) -> Option<String> {
    match e.get(k) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::Strings(v)) => v.first().cloned(),
        _ => None,
    }
}

/// "-m, --memory" for the flag clap names in an error ("--memory <bytes>").
fn flag_display(leaf: Option<&clap::Command>, rendered: &str) -> String {
    let token = rendered.split([' ', '=']).next().unwrap_or(rendered);
    let arg = leaf.and_then(|c| {
        c.get_arguments().find(|a| {
            token.strip_prefix("--").is_some_and(|l| a.get_long() == Some(l))
                || token.strip_prefix('-').and_then(|s| s.chars().next()).is_some_and(|s| a.get_short() == Some(s) && !token.starts_with("--"))
        })
    });
    match arg {
        Some(a) => match (a.get_short(), a.get_long()) {
            (Some(s), Some(l)) => format!("-{s}, --{l}"),
            (None, Some(l)) => format!("--{l}"),
            (Some(s), None) => format!("-{s}"),
            _ => token.to_string(),
        },
        None => token.to_string(),
    }
}

fn arg_count_text(leaf: Option<&clap::Command>) -> String {
    let Some(c) = leaf else { return "requires at least 1 argument".into() };
    let positionals: Vec<&clap::Arg> = c.get_positionals().collect();
    let min = positionals.iter().filter(|a| a.is_required_set()).count().max(1);
    let unbounded = positionals.iter().any(|a| a.get_num_args().is_some_and(|n| n.max_values() > 1));
    let max = positionals.len().max(min);
    let noun = |n: usize| if n == 1 { "argument" } else { "arguments" };
    if unbounded {
        format!("requires at least {min} {}", noun(min))
    } else if min == max {
        format!("requires exactly {min} {}", noun(min))
    } else {
        format!("requires at least {min} and at most {max} {}", noun(max))
    }
}

/// Renders a clap error the way the docker CLI reports flag and argument errors;
/// returns (text for stdout, text for stderr, exit code).
pub fn render_clap_error(root: &clap::Command, e: &clap::Error, args: &[OsString]) -> (String, String, i32) {
    let (path, leaf) = command_path(root, args);
    let usage = leaf
        .as_ref()
        .and_then(|l| l.get_overridden_usage().map(|u| u.to_string()))
        .unwrap_or_else(|| "berth [OPTIONS] COMMAND".into());
    let usage_hint = |verb: &str| format!("\n\nUsage:  {usage}\n\n{verb} '{path} --help' for more information");
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            (e.render().to_string(), String::new(), 0)
        }
        ErrorKind::InvalidSubcommand => {
            let sub = ctx_str(e, ContextKind::InvalidSubcommand).unwrap_or_default();
            (String::new(), format!("berth: unknown command: {path} {sub}\n\nRun '{path} --help' for more information\n"), 1)
        }
        ErrorKind::UnknownArgument => {
            let arg = ctx_str(e, ContextKind::InvalidArg).unwrap_or_default();
            if let Some(long) = arg.strip_prefix("--") {
                let long = long.split('=').next().unwrap_or(long);
                (String::new(), format!("unknown flag: --{long}{}\n", usage_hint("Run")), 125)
            } else if let Some(short) = arg.strip_prefix('-') {
                let c = short.chars().next().unwrap_or('-');
                (String::new(), format!("unknown shorthand flag: '{c}' in {arg}{}\n", usage_hint("Run")), 125)
            } else {
                let what = arg_count_text(leaf.as_ref());
                (String::new(), format!("berth: '{path}' {what}{}\n", usage_hint("See")), 1)
            }
        }
        ErrorKind::InvalidValue | ErrorKind::ValueValidation => {
            let arg = ctx_str(e, ContextKind::InvalidArg).unwrap_or_default();
            let value = ctx_str(e, ContextKind::InvalidValue).unwrap_or_default();
            let reason = match std::error::Error::source(e) {
                Some(s) => s.to_string(),
                None => {
                    
                    match e.get(ContextKind::ValidValue) {
                        Some(ContextValue::Strings(v)) => format!("valid values are {}", v.join(", ")),
                        _ => "invalid value".into(),
                    }
                }
            };
            if arg.starts_with('-') {
                let flag = flag_display(leaf.as_ref(), &arg);
                (String::new(), format!("invalid argument \"{value}\" for \"{flag}\" flag: {reason}{}\n", usage_hint("Run")), 125)
            } else {
                (String::new(), format!("berth: invalid argument \"{value}\": {reason}{}\n", usage_hint("See")), 1)
            }
        }
        ErrorKind::MissingRequiredArgument | ErrorKind::TooFewValues | ErrorKind::WrongNumberOfValues
            if ctx_str(e, ContextKind::InvalidArg).is_none_or(|a| !a.starts_with('-')) =>
        {
            (String::new(), format!("berth: '{path}' {}{}\n", arg_count_text(leaf.as_ref()), usage_hint("See")), 1)
        }
        ErrorKind::NoEquals | ErrorKind::TooFewValues | ErrorKind::WrongNumberOfValues | ErrorKind::MissingRequiredArgument => {
            let arg = ctx_str(e, ContextKind::InvalidArg).unwrap_or_default();
            let flag = flag_display(leaf.as_ref(), &arg);
            (String::new(), format!("flag needs an argument: {flag}{}\n", usage_hint("Run")), 125)
        }
        _ => {
            let msg = e.render().to_string();
            let first = msg.lines().next().unwrap_or("").trim_start_matches("error: ").to_string();
            (String::new(), format!("{first}{}\n", usage_hint("Run")), 125)
        }
    }
}

/// Index of the first positional argument of `leaf` in `args[from..]`, skipping its
/// flags and their values.
fn first_positional(leaf: &clap::Command, args: &[OsString], from: usize) -> Option<usize> {
    let takes_value = |a: &clap::Arg| a.get_action().takes_values();
    let mut i = from;
    while i < args.len() {
        let t = args[i].to_string_lossy();
        if t == "--" {
            return (i + 1 < args.len()).then_some(i + 1);
        }
        if let Some(long) = t.strip_prefix("--") {
            if !long.contains('=') && leaf.get_arguments().any(|a| a.get_long() == Some(long) && takes_value(a) && a.get_num_args().is_none_or(|n| n.min_values() > 0)) {
                i += 1;
            }
        } else if t.len() > 1 && t.starts_with('-') {
            for (pos, c) in t.char_indices().skip(1) {
                if leaf.get_arguments().any(|a| a.get_short() == Some(c) && takes_value(a)) {
                    if pos + c.len_utf8() == t.len() {
                        i += 1;
                    }
                    break;
                }
            }
        } else {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// docker stops parsing flags at IMAGE (run, create) or CONTAINER (exec): what
/// follows is the command, even `-la`. A `--` after that first positional makes
/// clap do the same.
fn stop_flags_after_first_positional(root: &clap::Command, args: &[OsString]) -> Vec<OsString> {
    let (path, leaf) = command_path(root, args);
    let Some(leaf) = leaf else { return args.to_vec() };
    let parent = path.split(' ').rev().nth(1).unwrap_or("");
    if !matches!(leaf.get_name(), "run" | "create" | "exec") || !matches!(parent, "berth" | "container") {
        return args.to_vec();
    }
    // Where the leaf's own arguments start: just after its name.
    let depth = path.split(' ').count() - 1;
    let mut seen = 0;
    let mut start = None;
    let names: Vec<&str> = path.split(' ').skip(1).collect();
    for (i, a) in args.iter().enumerate().skip(1) {
        if seen < depth && a.to_string_lossy() == names[seen] {
            seen += 1;
            if seen == depth {
                start = Some(i + 1);
                break;
            }
        }
    }
    let Some(start) = start else { return args.to_vec() };
    match first_positional(&leaf, args, start) {
        Some(p) if args[..p].iter().skip(start).all(|a| a != "--") => {
            let mut v = args[..=p].to_vec();
            v.push(OsString::from("--"));
            v.extend_from_slice(&args[p + 1..]);
            v
        }
        _ => args.to_vec(),
    }
}

pub fn parse(args: &[OsString]) -> std::result::Result<(Cli, clap::Command), (String, String, i32)> {
    let root = command();
    let args = &stop_flags_after_first_positional(&root, args);
    match root.clone().try_get_matches_from(args) {
        Ok(m) => match Cli::from_arg_matches(&m) {
            Ok(cli) => Ok((cli, root)),
            Err(e) => Err(render_clap_error(&root, &e, args)),
        },
        Err(e) => Err(render_clap_error(&root, &e, args)),
    }
}

pub async fn dispatch(ctx: &Ctx, cmd: Cmd) -> Result<()> {
    match cmd {
        Cmd::Run(a) => run::run(ctx, a).await,
        Cmd::Exec(a) => run::exec(ctx, a).await,
        Cmd::Ps(a) => container::ps(ctx, a).await,
        Cmd::Build(a) => build::build(ctx, a).await,
        Cmd::Pull(a) => image::pull(ctx, a).await,
        Cmd::Push(a) => image::push(ctx, a).await,
        Cmd::Images(a) => image::images(ctx, a).await,
        Cmd::Login(a) => system::login(ctx, a).await,
        Cmd::Logout(a) => system::logout(ctx, a).await,
        Cmd::Version(a) => system::version(ctx, a).await,
        Cmd::Info(a) => system::info(ctx, a).await,
        Cmd::Container { cmd } => dispatch_container(ctx, cmd).await,
        Cmd::Image { cmd } => dispatch_image(ctx, cmd).await,
        Cmd::Builder { cmd } => match cmd {
            BuilderCmd::Build(a) => build::build(ctx, a).await,
            BuilderCmd::Prune(a) => build::builder_prune(ctx, a).await,
        },
        Cmd::Network { cmd } => network::dispatch(ctx, cmd).await,
        Cmd::Context { cmd } => context::dispatch(ctx, cmd).await,
        Cmd::System { cmd } => system::dispatch(ctx, cmd).await,
        Cmd::Volume { cmd } => volume::dispatch(ctx, cmd).await,
        Cmd::Attach(a) => run::attach_cmd(ctx, a).await,
        Cmd::Commit(a) => container::commit(ctx, a).await,
        Cmd::Cp(a) => cp::cp(ctx, a).await,
        Cmd::Create(a) => run::create(ctx, a).await,
        Cmd::Diff(a) => container::diff(ctx, a).await,
        Cmd::Events(a) => system::events(ctx, a).await,
        Cmd::Export(a) => container::export(ctx, a).await,
        Cmd::History(a) => image::history(ctx, a).await,
        Cmd::Import(a) => image::import(ctx, a).await,
        Cmd::Inspect(a) => system::inspect(ctx, a).await,
        Cmd::Kill(a) => container::kill(ctx, a).await,
        Cmd::Load(a) => image::load(ctx, a).await,
        Cmd::Logs(a) => container::logs(ctx, a).await,
        Cmd::Pause(a) => container::pause(ctx, a, false).await,
        Cmd::Port(a) => container::port(ctx, a).await,
        Cmd::Rename(a) => container::rename(ctx, a).await,
        Cmd::Restart(a) => container::restart(ctx, a).await,
        Cmd::Rm(a) => container::rm(ctx, a).await,
        Cmd::Rmi(a) => image::rmi(ctx, a).await,
        Cmd::Save(a) => image::save(ctx, a).await,
        Cmd::Start(a) => run::start(ctx, a).await,
        Cmd::Stats(a) => stats::stats(ctx, a).await,
        Cmd::Stop(a) => container::stop(ctx, a).await,
        Cmd::Tag(a) => image::tag(ctx, a).await,
        Cmd::Top(a) => container::top(ctx, a).await,
        Cmd::Unpause(a) => container::pause(ctx, a, true).await,
        Cmd::Update(a) => container::update(ctx, a).await,
        Cmd::Wait(a) => container::wait(ctx, a).await,
        Cmd::Completion { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut command(), "berth", &mut out);
            ctx.io.print(&String::from_utf8_lossy(&out));
            Ok(())
        }
    }
}

async fn dispatch_container(ctx: &Ctx, cmd: ContainerCmd) -> Result<()> {
    match cmd {
        ContainerCmd::Attach(a) => run::attach_cmd(ctx, a).await,
        ContainerCmd::Commit(a) => container::commit(ctx, a).await,
        ContainerCmd::Cp(a) => cp::cp(ctx, a).await,
        ContainerCmd::Create(a) => run::create(ctx, a).await,
        ContainerCmd::Diff(a) => container::diff(ctx, a).await,
        ContainerCmd::Exec(a) => run::exec(ctx, a).await,
        ContainerCmd::Export(a) => container::export(ctx, a).await,
        ContainerCmd::Inspect(a) => container::inspect(ctx, a).await,
        ContainerCmd::Kill(a) => container::kill(ctx, a).await,
        ContainerCmd::Logs(a) => container::logs(ctx, a).await,
        ContainerCmd::Ls(a) => container::ps(ctx, a).await,
        ContainerCmd::Pause(a) => container::pause(ctx, a, false).await,
        ContainerCmd::Port(a) => container::port(ctx, a).await,
        ContainerCmd::Prune(a) => container::prune(ctx, a).await,
        ContainerCmd::Rename(a) => container::rename(ctx, a).await,
        ContainerCmd::Restart(a) => container::restart(ctx, a).await,
        ContainerCmd::Rm(a) => container::rm(ctx, a).await,
        ContainerCmd::Run(a) => run::run(ctx, a).await,
        ContainerCmd::Start(a) => run::start(ctx, a).await,
        ContainerCmd::Stats(a) => stats::stats(ctx, a).await,
        ContainerCmd::Stop(a) => container::stop(ctx, a).await,
        ContainerCmd::Top(a) => container::top(ctx, a).await,
        ContainerCmd::Unpause(a) => container::pause(ctx, a, true).await,
        ContainerCmd::Update(a) => container::update(ctx, a).await,
        ContainerCmd::Wait(a) => container::wait(ctx, a).await,
    }
}

async fn dispatch_image(ctx: &Ctx, cmd: ImageCmd) -> Result<()> {
    match cmd {
        ImageCmd::Build(a) => build::build(ctx, a).await,
        ImageCmd::History(a) => image::history(ctx, a).await,
        ImageCmd::Import(a) => image::import(ctx, a).await,
        ImageCmd::Inspect(a) => image::inspect(ctx, a).await,
        ImageCmd::Load(a) => image::load(ctx, a).await,
        ImageCmd::Ls(a) => image::images(ctx, a).await,
        ImageCmd::Prune(a) => image::prune(ctx, a).await,
        ImageCmd::Pull(a) => image::pull(ctx, a).await,
        ImageCmd::Push(a) => image::push(ctx, a).await,
        ImageCmd::Rm(a) => image::rmi(ctx, a).await,
        ImageCmd::Save(a) => image::save(ctx, a).await,
        ImageCmd::Tag(a) => image::tag(ctx, a).await,
    }
}
