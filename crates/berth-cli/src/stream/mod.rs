//! Streams between the terminal and the daemon: attach/exec pumping, detach keys,
//! raw mode and window size, progress display.

pub mod attach;
pub mod bridge;
pub mod escape;
pub mod progress;
pub mod term;
