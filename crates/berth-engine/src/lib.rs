//! The daemon's object managers (containers, images, networks, volumes, exec, events,
//! stats) behind one facade, [`Engine`], that the API layer calls. Nothing here knows
//! HTTP exists.

pub mod config;
pub mod container;
pub mod error;
pub mod fsutil;
pub mod util;

pub use config::EngineConfig;
pub use error::{Error, ErrorKind, Result};
