//! Docker's newline-delimited JSON progress messages (pull, push, load, import).

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ProgressDetail {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub current: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ErrorDetail {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<i64>,
    pub message: String,
}

/// One line of a progress stream. Docker always writes `progressDetail` for layer
/// lines (possibly `{}`), never for plain status lines.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct JsonMessage {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub stream: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub status: String,
    #[serde(rename = "progressDetail", skip_serializing_if = "Option::is_none")]
    pub progress_detail: Option<ProgressDetail>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub progress: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(rename = "errorDetail", skip_serializing_if = "Option::is_none")]
    pub error_detail: Option<ErrorDetail>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aux: Option<serde_json::Value>,
}

impl JsonMessage {
    pub fn status(status: impl Into<String>) -> Self {
        JsonMessage { status: status.into(), ..Default::default() }
    }

    pub fn stream(text: impl Into<String>) -> Self {
        JsonMessage { stream: text.into(), ..Default::default() }
    }

    pub fn error(message: impl Into<String>) -> Self {
        let message = message.into();
        JsonMessage {
            error_detail: Some(ErrorDetail { code: None, message: message.clone() }),
            error: message,
            ..Default::default()
        }
    }

    /// A layer line: `{"status":"Downloading","progressDetail":{...},"id":"abc"}`.
    pub fn layer(id: impl Into<String>, status: impl Into<String>, current: Option<i64>, total: Option<i64>) -> Self {
        JsonMessage {
            status: status.into(),
            id: id.into(),
            progress_detail: Some(ProgressDetail { current, total }),
            ..Default::default()
        }
    }

    /// The line with a trailing newline, as it goes on the wire.
    pub fn to_line(&self) -> String {
        let mut s = serde_json::to_string(self).unwrap_or_else(|_| "{}".into());
        s.push('\n');
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_line_has_docker_shape() {
        let m = JsonMessage::layer("abc", "Downloading", Some(10), Some(100));
        assert_eq!(
            m.to_line(),
            "{\"status\":\"Downloading\",\"progressDetail\":{\"current\":10,\"total\":100},\"id\":\"abc\"}\n"
        );
        assert_eq!(JsonMessage::status("x").to_line(), "{\"status\":\"x\"}\n");
    }
}
