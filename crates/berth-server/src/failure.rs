//! The error type of handler code that touches the store: either an AWS error for the
//! caller, or a store failure that becomes the service's internal error.

use berth_store::StoreError;
use berth_wire::AwsError;

/// What a handler's transaction closure fails with.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Failure {
    /// The AWS error to send: store failures become `server_error` (each service has its own
    /// code for an internal failure, e.g. ECS's ServerException), with no internals leaked.
    pub fn into_aws(self, server_error: impl FnOnce(&str) -> AwsError) -> AwsError {
        match self {
            Failure::Aws(e) => e,
            Failure::Store(e) => {
                tracing::error!(error = %e, "store failure");
                server_error("An internal error occurred. Try the request again.")
            }
        }
    }
}
