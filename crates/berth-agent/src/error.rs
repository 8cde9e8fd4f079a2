//! Errors of the agent. Messages are lowercase and name what failed.

use std::path::PathBuf;

/// A call to the control plane failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ControlPlaneError {
    /// The control plane could not be reached (connection refused or reset, timeout): worth
    /// retrying, it may be restarting.
    #[error("control plane unreachable at {endpoint}: {reason}")]
    Unreachable {
        /// The endpoint tried.
        endpoint: String,
        /// Why.
        reason: String,
    },
    /// The control plane answered with an AWS error.
    #[error("{operation} failed with http {status}: {code}: {message}")]
    Aws {
        /// The operation called.
        operation: String,
        /// The HTTP status.
        status: u16,
        /// AWS's error code (`__type`).
        code: String,
        /// AWS's message.
        message: String,
    },
    /// The answer could not be decoded.
    #[error("invalid answer to {operation}: {reason}")]
    Decode {
        /// The operation called.
        operation: String,
        /// Why.
        reason: String,
    },
}

impl ControlPlaneError {
    /// Whether trying again later may succeed (connection errors and server-side errors).
    pub fn is_retryable(&self) -> bool {
        match self {
            ControlPlaneError::Unreachable { .. } => true,
            ControlPlaneError::Aws { status, code, .. } => {
                *status >= 500 || *status == 429 || code.contains("Throttl")
            }
            ControlPlaneError::Decode { .. } => false,
        }
    }
}

/// Everything the agent can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A control-plane call failed.
    #[error(transparent)]
    ControlPlane(#[from] ControlPlaneError),
    /// The container runtime failed.
    #[error(transparent)]
    Runtime(#[from] berth_runtime::Error),
    /// A file of the agent's state directory could not be read or written.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A state file holds invalid JSON.
    #[error("invalid state file {path}: {source}")]
    State {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// A task cannot be run as defined.
    #[error("invalid task: {0}")]
    InvalidTask(String),
    /// A blocking runtime call could not complete (its thread panicked or was cancelled).
    #[error("runtime call interrupted: {0}")]
    Join(String),
    /// The agent is shutting down.
    #[error("agent is shutting down")]
    Shutdown,
}

/// Result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
