//! berth-types
