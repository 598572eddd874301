//! berth-image: how images are stored, unpacked, shared between containers and moved in
//! and out as files. See `docs/image.md` for the design and the public API.

pub mod content;
pub mod digest;
pub mod error;
pub mod fsutil;
pub mod layer;
pub mod reference;

pub use digest::Digest;
pub use error::{ErrorKind, ImageError, Result};
pub use reference::Reference;
