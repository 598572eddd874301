//! berth-cli
pub mod format;
