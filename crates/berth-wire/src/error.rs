//! AWS's error shape: a code (`__type`), a message and an HTTP status.

use std::borrow::Cow;

/// An error as AWS sends it. Service logic returns these; the gateway encodes them in the
/// protocol of the request (JSON `__type`/`message`, or query XML).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct AwsError {
    /// The error code, sent as `__type` (JSON) or `<Code>` (query).
    pub code: Cow<'static, str>,
    /// The HTTP status of the reply.
    pub status: u16,
    /// The human-readable message.
    pub message: String,
}

impl AwsError {
    pub fn new(
        code: impl Into<Cow<'static, str>>,
        status: u16,
        message: impl Into<String>,
    ) -> AwsError {
        AwsError {
            code: code.into(),
            status,
            message: message.into(),
        }
    }

    /// An operation the model defines but Berth does not serve yet.
    pub fn not_implemented(operation: &str) -> AwsError {
        AwsError::new(
            "UnknownOperationException",
            400,
            format!("The operation {operation} is not served by Berth yet."),
        )
    }

    /// An operation name the service does not define.
    pub fn unknown_operation(operation: &str) -> AwsError {
        AwsError::new(
            "UnknownOperationException",
            400,
            format!("The operation {operation} is not known to this service."),
        )
    }

    /// A body that is not valid JSON, or a member of the wrong JSON type.
    pub fn serialization(message: impl Into<String>) -> AwsError {
        AwsError::new("SerializationException", 400, message)
    }

    /// An unexpected failure inside Berth (never a panic): AWS's InternalFailure.
    pub fn internal(message: impl Into<String>) -> AwsError {
        AwsError::new("InternalFailure", 500, message)
    }

    /// The JSON protocol body of this error: `{"__type": ..., "message": ...}`.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({ "__type": self.code, "message": self.message }))
            .unwrap_or_else(|_| b"{}".to_vec())
    }
}
