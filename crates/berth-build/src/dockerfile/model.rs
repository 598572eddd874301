//! The typed Dockerfile the builder works from. Values stay raw (quotes, `$VAR`s and
//! escapes as written) because Docker expands them only when a step runs, with the
//! ARG/ENV values of that moment; `Lexer` does that expansion.

/// A parsed Dockerfile: parser directives, the ARGs before the first FROM, and stages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// From the `# escape=` directive; `\` by default.
    pub escape: char,
    /// The `# syntax=` directive, recorded only (berth has one built-in frontend).
    pub syntax: Option<String>,
    /// ARG instructions before the first FROM (global build args, usable in FROM lines).
    pub meta_args: Vec<ArgDecl>,
    pub stages: Vec<Stage>,
    /// Warnings as Docker prints them (`[WARNING]: Empty continuation line found in: ...`).
    pub warnings: Vec<String>,
}

/// One build stage: a FROM line and the instructions up to the next FROM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub index: usize,
    /// `AS name`, lower-cased as Docker does.
    pub name: Option<String>,
    /// The image word as written (`$BASE`, `golang:${GO}`): expand with the meta args.
    pub base: String,
    /// The raw `--platform` value.
    pub platform: Option<String>,
    pub line: usize,
    /// The FROM line as Docker prints it in "Step 1/4 : FROM busybox:latest".
    pub original: String,
    pub instructions: Vec<Instruction>,
}

/// One instruction of a stage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// 1-based line the instruction starts on.
    pub line: usize,
    /// The logical line, continuations joined and trimmed, as Docker prints it in
    /// "Step N/M : ..."; heredoc bodies are not part of it.
    pub original: String,
    pub kind: InstructionKind,
}

impl Instruction {
    /// The instruction's name in upper case ("RUN", "COPY", ...).
    pub fn name(&self) -> &'static str {
        self.kind.name()
    }
}

/// A command in shell form (run through the SHELL) or exec form (a JSON array).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellOrExec {
    /// Shell form: the text as written (empty when the instruction has no arguments).
    Shell(String),
    /// Exec form: the JSON array's strings.
    Exec(Vec<String>),
}

/// A here-document attached to RUN, COPY or ADD (`<<EOF ... EOF`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter word with its quotes removed (`EOF` for `<<"EOF"`).
    pub name: String,
    /// The body as written, every line with its line ending; for `<<-` the leading
    /// tabs are still there (see `body`).
    pub content: String,
    /// False when (part of) the delimiter was quoted: the body is then used verbatim,
    /// otherwise Docker expands variables in it.
    pub expand: bool,
    /// `<<-`: leading tabs are stripped from every line of the body.
    pub chomp: bool,
}

impl Heredoc {
    /// The body to use: `content`, with leading tabs stripped when `chomp` is set.
    pub fn body(&self) -> String {
        if self.chomp {
            crate::dockerfile::heredoc::chomp(&self.content)
        } else {
            self.content.clone()
        }
    }
}

/// One name of an ARG instruction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    pub name: String,
    /// The default as written (quotes kept, unexpanded); None for a bare `ARG name`.
    pub default: Option<String>,
}

/// What an instruction says, with its flags parsed and its arguments raw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstructionKind {
    Run {
        cmd: ShellOrExec,
        heredocs: Vec<Heredoc>,
        mounts: Vec<RunMount>,
        /// Raw `--network` value (`default`, `none`, `host`).
        network: Option<String>,
        /// Raw `--security` value (`sandbox`, `insecure`).
        security: Option<String>,
    },
    Cmd(ShellOrExec),
    Entrypoint(ShellOrExec),
    /// Raw pairs (quotes kept), from `ENV a b c` (old form, one pair) or `ENV a=b c=d`.
    Env(Vec<(String, String)>),
    Arg(Vec<ArgDecl>),
    /// Raw pairs, as for ENV.
    Label(Vec<(String, String)>),
    /// Raw words, sorted as Docker sorts them.
    Expose(Vec<String>),
    Copy(CopyArgs),
    Add(CopyArgs),
    Workdir(String),
    User(String),
    /// JSON array or whitespace-separated words.
    Volume(Vec<String>),
    StopSignal(String),
    /// None for `HEALTHCHECK NONE`.
    Healthcheck(Option<Healthcheck>),
    /// Always the JSON form's strings.
    Shell(Vec<String>),
    /// The trigger as Docker stores it in the image config ("RUN echo hi"; heredoc
    /// bodies follow on their own lines); parse it back with `parse_instruction`.
    OnBuild(String),
    Maintainer(String),
}

impl InstructionKind {
    /// The instruction's name in upper case.
    pub fn name(&self) -> &'static str {
        match self {
            InstructionKind::Run { .. } => "RUN",
            InstructionKind::Cmd(_) => "CMD",
            InstructionKind::Entrypoint(_) => "ENTRYPOINT",
            InstructionKind::Env(_) => "ENV",
            InstructionKind::Arg(_) => "ARG",
            InstructionKind::Label(_) => "LABEL",
            InstructionKind::Expose(_) => "EXPOSE",
            InstructionKind::Copy(_) => "COPY",
            InstructionKind::Add(_) => "ADD",
            InstructionKind::Workdir(_) => "WORKDIR",
            InstructionKind::User(_) => "USER",
            InstructionKind::Volume(_) => "VOLUME",
            InstructionKind::StopSignal(_) => "STOPSIGNAL",
            InstructionKind::Healthcheck(_) => "HEALTHCHECK",
            InstructionKind::Shell(_) => "SHELL",
            InstructionKind::OnBuild(_) => "ONBUILD",
            InstructionKind::Maintainer(_) => "MAINTAINER",
        }
    }
}

/// Arguments and flags of COPY and ADD. Flag values are raw (expand them before use);
/// a flag given empty (`--from=`) is None, as Docker treats it as unset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyArgs {
    /// Source words that are not heredocs, raw (JSON form allowed).
    pub sources: Vec<String>,
    pub dest: String,
    /// Sources written as heredocs (`COPY <<EOF /dest`), in order.
    pub heredocs: Vec<Heredoc>,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    /// ADD --checksum.
    pub checksum: Option<String>,
    /// ADD --keep-git-dir.
    pub keep_git_dir: bool,
    /// --exclude patterns (repeatable).
    pub exclude: Vec<String>,
    /// COPY --parents.
    pub parents: bool,
}

/// HEALTHCHECK CMD with its options; durations in nanoseconds, 0 where not given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Healthcheck {
    /// Exec form becomes Docker's `["CMD", ...]`, shell form `["CMD-SHELL", "..."]`.
    pub test: ShellOrExec,
    pub interval_ns: i64,
    pub timeout_ns: i64,
    pub start_period_ns: i64,
    pub start_interval_ns: i64,
    pub retries: i64,
}

/// `RUN --mount=type=...`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MountKind {
    Bind,
    Cache,
    Tmpfs,
    Secret,
    Ssh,
}

impl MountKind {
    /// The name Docker uses (`bind`, `cache`, ...).
    pub fn as_str(&self) -> &'static str {
        match self {
            MountKind::Bind => "bind",
            MountKind::Cache => "cache",
            MountKind::Tmpfs => "tmpfs",
            MountKind::Secret => "secret",
            MountKind::Ssh => "ssh",
        }
    }
}

impl std::fmt::Display for MountKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One `RUN --mount`, with BuildKit's defaults filled in: bind and secret and ssh
/// mounts are read-only unless `rw`; cache and tmpfs are writable; a cache's `id`
/// defaults to its target and `sharing` to `shared`; a secret's id to the basename
/// of its target (or its source) and its target to `/run/secrets/<id>`; ssh's id to
/// `default` and its target to `/run/buildkit/ssh_agent.<n>`; `mode` to 0755 (cache),
/// 0400 (secret), 0600 (ssh) and `uid`/`gid` to 0 for those three kinds.
///
/// Option values may hold `$VAR`s: Docker expands them when the step runs. Parse
/// `spec` again with `RunMount::parse_all` and an expander at that point; values
/// of typed options (mode, uid, size, ...) that contain `$` are left at their
/// defaults until then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunMount {
    pub kind: MountKind,
    /// Mount point; relative paths are relative to the working directory (resolved by
    /// the builder).
    pub target: String,
    pub source: Option<String>,
    /// Stage or image to mount from.
    pub from: Option<String>,
    pub readonly: bool,
    pub id: Option<String>,
    /// `shared`, `private` or `locked` (cache mounts).
    pub sharing: Option<String>,
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// tmpfs size in bytes.
    pub size: Option<u64>,
    /// Secret and ssh mounts: fail when the secret or agent is missing.
    pub required: bool,
    /// Secret mounts: expose the secret as this environment variable.
    pub env: Option<String>,
    /// The `--mount` value as written, for expansion when the step runs.
    pub spec: String,
}
