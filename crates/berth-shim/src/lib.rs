//! berth-shim
