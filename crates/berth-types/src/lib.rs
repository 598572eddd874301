//! The Docker Engine API's wire types, shared by the daemon (berth-api, berth-engine)
//! and the client (berth-cli): JSON bodies with Docker's field names, the stdcopy
//! framing of attach/exec/logs streams, the `filters` query parameter and the JSON
//! progress messages of pull/push/load.
//!
//! Field shapes follow moby's Go structs: a Go slice, map or pointer without
//! `omitempty` is an `Option` here that serialises as `null`; `omitempty` fields skip
//! when empty. Every field deserialises leniently (missing → default), because
//! clients send anything from a bare `{"Image": "x"}` to the CLI's full structs.

pub mod container;
pub mod exec;
pub mod filters;
pub mod gofmt;
pub mod image;
pub mod iotext;
pub mod json;
pub mod network;
pub mod paths;
pub mod progress;
pub mod stdcopy;
pub mod system;
pub mod units;
pub mod volume;

use serde::{Deserialize, Serialize};

/// The body of every API error: `{"message": "..."}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ErrorResponse {
    pub message: String,
}

/// `{"Id": "..."}` answers (exec create, commit, network create...).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
pub struct IdResponse {
    pub id: String,
}

/// Docker's "empty struct" values, e.g. `"ExposedPorts": {"80/tcp": {}}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// Parses a boolean the way Go's `strconv.ParseBool` does (the docker CLI sends
/// `1`/`0`, other clients `true`/`false`).
pub fn parse_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_bool_accepts_go_forms() {
        assert_eq!(parse_bool("1"), Some(true));
        assert_eq!(parse_bool("True"), Some(true));
        assert_eq!(parse_bool("0"), Some(false));
        assert_eq!(parse_bool("false"), Some(false));
        assert_eq!(parse_bool("yes"), None);
    }
}
