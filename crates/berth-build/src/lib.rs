//! berth's image builder (`docker build` over the classic builder protocol).
//!
//! - `dockerfile`: Dockerfile text → typed stages and instructions (parser
//!   directives, continuations, heredocs), and the shell lexer for variables.
//! - `ignore`: `.dockerignore` rules (and Go's `filepath.Match`).
//! - `context`: the build context received from the client, unpacked.
//! - `plan`: which stages a target needs.
//! - `driver` and `step`: running a build, stage by stage and instruction by
//!   instruction, over a [`Backend`] the engine implements.
//! - `cache`: the cache index (key → image); `checksum`: what "same sources" means.
//! - `copy`, `fetch`, `scoped`: COPY/ADD on the filesystem, ADD's URLs, and paths
//!   that never leave their root.

pub mod backend;
pub mod cache;
pub mod checksum;
pub mod context;
pub mod copy;
pub mod dockerfile;
pub mod driver;
pub mod error;
pub mod fetch;
pub mod ignore;
pub mod options;
pub mod plan;
pub mod scoped;
mod step;

pub use backend::Backend;
pub use context::Context;
pub use driver::Builder;
pub use error::{BuildError, ErrorKind};
pub use options::BuildOptions;
