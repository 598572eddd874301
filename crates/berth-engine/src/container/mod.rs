//! Containers: records, the store, OCI spec translation, users.

pub mod record;
pub mod spec;
pub mod store;
pub mod user;

pub use record::{ContainerRecord, MountRecord, Status};
pub use store::{Container, ContainerStore, WaitState};
