//! berth-registry: the distribution (OCI / Docker registry v2) protocol, both sides.
//!
//! - [`server`]: `berth registry serve`, a registry with filesystem storage, htpasswd
//!   auth, TLS and garbage collection.
//! - [`cli`]: the `berth registry ...` command line.
//!
//! Shared vocabulary: [`digest`], [`reference`], [`manifest`].

pub mod cli;
pub mod digest;
pub mod fsutil;
pub mod manifest;
pub mod reference;
pub mod server;

pub use digest::Digest;
pub use reference::Reference;
