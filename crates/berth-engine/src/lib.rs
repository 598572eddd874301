//! The daemon's object managers (containers, images, networks, volumes, exec, events,
//! stats) behind one facade, [`Engine`], that the API layer calls. Nothing here knows
//! HTTP exists.

mod archive;
mod attach;
pub mod build;
pub mod config;
pub mod container;
mod containers;
pub mod emulation;
mod engine;
pub mod error;
pub mod events;
pub mod exec;
pub mod frontdoor;
pub mod fsutil;
mod health;
pub mod images;
mod links;
pub mod logconfig;
pub mod logs;
pub mod metrics;
mod monitor;
pub mod reaper;
pub mod network;
pub mod query;
pub mod registry;
pub mod runtimes;
mod shimclient;
pub mod system;
pub mod timing;
pub mod remap;
pub mod slirp;
pub mod userns;
pub mod util;
pub mod volumes;

pub use config::EngineConfig;
pub use container::live::{Output, StdinMsg};
pub use containers::{WaitCondition, parse_signal};
pub use engine::Engine;
pub use error::{Error, ErrorKind, Result};
pub use exec::{ExecInput, ExecInstance, ExecOutput, ExecSession};
pub use logs::{LogLine, LogOptions};
pub use query::ListOptions;
