//! berth-registry: the distribution (OCI / Docker registry v2) protocol, both sides.
//!
//! - [`client`]: ping, auth (anonymous, Basic, Bearer tokens), docker config.json
//!   credentials, pull (platform choice, concurrent resumable layer downloads into a
//!   [`store::ContentStore`]) and push (HEAD skip, cross-repository mount, monolithic or
//!   chunked upload), with typed [`client::Progress`] events.
//! - [`image_store`]: berth-image's `ImageStore` as the pull/push content store
//!   (layers unpack while they download).
//! - [`server`]: `berth registry serve`, a registry with filesystem storage, htpasswd
//!   auth, TLS and garbage collection.
//! - [`cli`]: the `berth registry ...` command line.
//!
//! Shared vocabulary: [`digest`], [`reference`], [`manifest`].

pub mod cli;
pub mod client;
pub mod digest;
pub mod fsutil;
pub mod image_store;
pub mod manifest;
pub mod reference;
pub mod server;
pub mod store;

pub use digest::Digest;
pub use reference::Reference;
