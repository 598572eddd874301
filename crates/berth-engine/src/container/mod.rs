//! Containers: records, the store, OCI spec translation, users.

pub mod devices;
pub mod live;
pub mod mounts;
pub mod record;
pub mod seccomp;
pub mod spec;
pub mod store;
pub mod user;

pub use record::{ContainerRecord, Extensions, GroupsPolicy, MountRecord, Status};
pub use store::{Container, ContainerStore, WaitState};
