//! The error a tool attaches to a record: a kind a script can match and a message a person reads.

use serde_json::{json, Value};

/// A failure while working on one record (or while configuring a tool).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Error {
    /// snake_case kind, stable for scripts: `bad_reference`, `not_found`, `registry`, `kms`, ...
    pub kind: &'static str,
    /// lower-case message without a trailing period, saying what to do where possible
    pub message: String,
}

/// `Result` with the library's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error of `kind` with `message`.
    pub fn new(kind: &'static str, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    /// The `error` field of a record for `tool`.
    pub fn to_json(&self, tool: &str) -> Value {
        json!({"tool": tool, "kind": self.kind, "message": self.message})
    }
}
