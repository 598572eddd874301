//! The runtime's error type. Kinds map onto what a caller does next (moby style): a bad
//! spec is the user's to fix, a missing container is a 404, a busy id a conflict, a
//! missing privilege names the privilege.

use std::path::PathBuf;

/// Everything the runtime can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The bundle's config.json (or an option) is not something we can run.
    #[error("invalid configuration: {0}")]
    InvalidSpec(String),
    /// config.json could not be read or parsed.
    #[error("cannot load {path}: {reason}")]
    LoadSpec { path: PathBuf, reason: String },
    /// A container id that is not allowed (empty, path separators, ...).
    #[error("invalid container id {0:?}: ids are 1-1024 characters of [A-Za-z0-9_+.-] and may not start with '.'")]
    InvalidId(String),
    #[error("container {0} does not exist")]
    NotFound(String),
    #[error("container with id {0} already exists")]
    AlreadyExists(String),
    /// The operation does not fit the container's current status.
    #[error("container {id} is {status}: {what}")]
    WrongState {
        id: String,
        status: String,
        what: &'static str,
    },
    /// The host does not grant something the spec needs; the message names it.
    #[error("missing privilege or host feature: {0}")]
    Unsupported(String),
    /// A cgroup value the kernel (or our validation) refused.
    #[error("cgroup {file}: {reason}")]
    Cgroup { file: PathBuf, reason: String },
    /// The container's init failed while setting up (the message comes from inside).
    #[error("container init failed: {0}")]
    Init(String),
    /// The process of an exec failed before running its command.
    #[error("exec failed: {0}")]
    Exec(String),
    /// The process's executable cannot be run (missing, not executable). Worded as runc
    /// words it, which is what the docker CLI reads to exit 127 or 126.
    #[error("unable to start container process: {0}")]
    Command(CommandError),
    /// An OS call failed; `context` says what we were doing.
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: impl Into<std::io::Error>) -> Self {
        Error::Io {
            context: context.into(),
            source: source.into(),
        }
    }

    pub(crate) fn errno(context: impl Into<String>, errno: nix::errno::Errno) -> Self {
        Error::Io {
            context: context.into(),
            source: std::io::Error::from_raw_os_error(errno as i32),
        }
    }
}

/// Why `process.args[0]` cannot be executed, in the words of runc (Go's `exec.LookPath`
/// and `os.Stat`): the docker CLI exits 127 on "executable file not found" or "no such
/// file or directory" and 126 on "permission denied".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum CommandError {
    /// A bare name that no `$PATH` directory holds as an executable file.
    #[error("exec: {}: executable file not found in $PATH", quote(.name))]
    NotInPath { name: String },
    /// A path that stat(2) cannot reach; `reason` is the errno's text ("no such file or directory").
    #[error("exec: {}: stat {name}: {reason}", quote(.name))]
    Missing { name: String, reason: String },
    /// A path that exists but may not be executed (a directory, no x bit, a noexec mount:
    /// "permission denied").
    #[error("exec: {}: {reason}", quote(.name))]
    NotExecutable { name: String, reason: String },
    /// execve(2) itself failed ("exec format error", ...), after every check passed.
    #[error("exec {path}: {reason}")]
    Execve { path: String, reason: String },
}

impl CommandError {
    /// The exit status a shell (and docker) gives this failure: 127 not found, 126 not runnable.
    pub fn exit_code(&self) -> i32 {
        match self {
            CommandError::NotInPath { .. } | CommandError::Missing { .. } => 127,
            CommandError::NotExecutable { .. } | CommandError::Execve { .. } => 126,
        }
    }
}

/// Go's strconv.Quote for the names runc prints: double quotes, backslash escapes.
fn quote(s: &str) -> String {
    format!("{s:?}")
}

/// An errno's text the way Go prints it (glibc's strerror with a lower-case first letter,
/// no "(os error N)"), so messages match runc's word for word.
pub(crate) fn errno_text(errno: i32) -> String {
    let full = std::io::Error::from_raw_os_error(errno).to_string();
    let text = match full.rfind(" (os error ") {
        Some(i) => &full[..i],
        None => full.as_str(),
    };
    let mut c = text.chars();
    match c.next() {
        Some(f) => f.to_lowercase().chain(c).collect(),
        None => String::new(),
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds what we were doing to io / errno results.
pub(crate) trait Context<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T>;
}

impl<T> Context<T> for std::io::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::io(what(), e))
    }
}

impl<T> Context<T> for nix::Result<T> {
    fn ctx(self, what: impl FnOnce() -> String) -> Result<T> {
        self.map_err(|e| Error::errno(what(), e))
    }
}
