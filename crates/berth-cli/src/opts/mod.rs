//! docker's option syntax: value parsers and the container flag set.

pub mod container;
pub mod parse;
