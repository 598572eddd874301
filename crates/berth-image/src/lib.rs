//! berth-image: how images are stored, unpacked, shared between containers and moved in
//! and out as files. See `docs/image.md` for the design and the public API.
//!
//! - [`ImageStore`] is the facade: one per data root, `Send + Sync`.
//! - [`content::ContentStore`]: blobs by digest, resumable ingests.
//! - [`layer::LayerStore`]: unpacked layers by chain ID, shared by images and
//!   containers.
//! - Snapshots: a container's overlay of its image's layers ([`Snapshot`]).
//! - Archives: `load`/`save` (docker-archive, OCI layout), `import`, `export`.

pub mod archive;
pub mod change;
mod child;
pub mod config;
pub mod content;
pub mod digest;
pub mod error;
pub mod fsutil;
pub mod import;
pub mod ingest;
pub mod layer;
pub mod lease;
pub mod manifest;
pub mod meta;
pub mod mount;
mod pgzip;
mod pool;
pub mod push;
pub mod reference;
pub mod shellword;
pub mod snapshot;
pub mod store;
pub mod types;

pub use config::{ContainerConfig, HealthConfig, ImageConfig};
pub use digest::Digest;
pub use error::{ErrorKind, ImageError, Result};
pub use import::ImportOptions;
pub use ingest::{LayerBlob, LayerWriter, PendingLayer};
pub use layer::diff::{Change, ChangeKind};
pub use layer::{Compression, UnpackLimit};
pub use lease::Lease;
pub use manifest::Descriptor;
pub use reference::Reference;
pub use snapshot::{CommitOptions, Snapshot, SnapshotOptions};
pub use store::{ImageStore, NewImage, StoreOptions, Variant};
pub use types::*;
