//! berth-runtime: berth's OCI runtime, as a library (the shim calls it in-process) and as
//! the runc-compatible `berth runtime` CLI ([`cli`]).
//!
//! ```no_run
//! use berth_runtime::{CreateOptions, Runtime};
//! let rt = Runtime::new("/run/berth/runtime");
//! let st = rt.create("c1", std::path::Path::new("/path/to/bundle"), CreateOptions::default())?;
//! rt.start("c1")?;
//! // ... waitpid(st.pid) in the caller (the init is the caller's child) ...
//! rt.delete("c1", false)?;
//! # Ok::<(), berth_runtime::Error>(())
//! ```
//!
//! How it works: `create` parses config.json (oci-spec), plans everything it can in the
//! calling process (mounts, capabilities, rlimits, a compiled seccomp filter, cgroup
//! limits) so that bad input fails before anything exists, makes the cgroup, then clones
//! the init straight into its new namespaces (no re-exec). The child waits for the parent
//! to write its uid/gid maps and join it to the cgroup, sets up the rootfs through the
//! [`syscall::Syscall`] seam, drops privileges, reports READY over a socketpair and blocks
//! on `exec.fifo` until `start` opens it (runc's protocol, so a separate `start` process
//! works). Every failure during create undoes what was made.
//!
//! Module map: [`spec`] (config.json), [`namespaces`], [`rootfs`], [`process`]
//! (user, caps, rlimits, seccomp, personality, I/O priority), [`cgroups`] (v1 and v2
//! managers, the v2 eBPF device filter), [`state`] (runc state JSON, records, pidfds),
//! `init` (the child side), [`pid1`] (the minimal init of `io.berth.init`), [`pause`]
//! (the pod sandbox's process of `io.berth.pause`), `create`,
//! `exec` and `container` (the verbs), `hooks`,
//! [`ipc`] (sync socket, SCM_RIGHTS), [`syscall`] (the seam), [`cli`].

pub mod cgroups;
pub mod cli;
mod container;
mod create;
mod error;
mod exec;
mod hooks;
mod init;
pub mod ipc;
pub mod pause;
pub mod phases;
pub mod pid1;
pub mod namespaces;
pub mod process;
pub mod rootfs;
pub mod seccomp;
pub mod spec;
pub mod state;
pub mod syscall;

pub use cgroups::Stats;
pub use container::{CreateOptions, ExecOptions, Runtime};
pub use error::{CommandError, Error, Result};
pub use spec::default_spec;
pub use state::{State, Status};

/// Where berth keeps runtime state by default (runc uses /run/runc).
pub const DEFAULT_ROOT: &str = "/run/berth/runtime";
