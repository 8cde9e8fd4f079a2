//! Errors of the runtime. Messages are lowercase and name what failed.

use std::io;
use std::path::PathBuf;

/// Everything the image store, the rootfs, the bundle writer and the runtime can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file system operation failed on `path`.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done ("reading", "creating directory", ...).
        what: &'static str,
        /// The path the operation was about.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A JSON document (manifest, config, state file) could not be read or written.
    #[error("invalid json in {what}: {source}")]
    Json {
        /// Which document.
        what: String,
        /// The underlying error.
        #[source]
        source: serde_json::Error,
    },
    /// An image reference does not parse.
    #[error("invalid image reference {0:?}")]
    InvalidReference(String),
    /// The image could not be found or pulled. Reads like ECS's `CannotPullContainerError`.
    #[error("CannotPullContainerError: {reason}")]
    CannotPull {
        /// The reference asked for.
        reference: String,
        /// Why, e.g. `pull access denied for foo, repository does not exist`.
        reason: String,
    },
    /// An image is malformed (bad layout, manifest, layer, digest mismatch).
    #[error("invalid image {what}: {reason}")]
    InvalidImage {
        /// The image, blob or file at fault.
        what: String,
        /// Why.
        reason: String,
    },
    /// A layer entry would be written outside the layer's root.
    #[error("unsafe path in layer: {0:?}")]
    UnsafePath(String),
    /// A container specification cannot be turned into a bundle.
    #[error("invalid container spec: {0}")]
    InvalidSpec(String),
    /// The `user` of a container is not found in the image's /etc/passwd or /etc/group.
    #[error("unable to find user {0}: no matching entries in passwd file")]
    UserNotFound(String),
    /// A mount or unmount system call failed.
    #[error("mounting {target}: {source}")]
    Mount {
        /// The mount point.
        target: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// No container with this id is known in the state directory.
    /// `BERTH_OCI_RUNTIME` names no OCI runtime backend Berth has.
    #[error("unknown OCI runtime {0:?} in BERTH_OCI_RUNTIME (expected libcontainer or runc)")]
    UnknownBackend(String),
    #[error("no such container {0}")]
    NotFound(String),
    /// A container with this id already exists.
    #[error("container {0} already exists")]
    AlreadyExists(String),
    /// The container is still running and the operation needs it stopped.
    #[error("container {0} is running")]
    Running(String),
    /// The shim or the OCI runtime failed to start the container.
    #[error("starting container {id}: {reason}")]
    Start {
        /// The container.
        id: String,
        /// What the shim or the OCI runtime said.
        reason: String,
    },
    /// Sending a signal to a container failed.
    #[error("signalling container {id}: {source}")]
    Signal {
        /// The container.
        id: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// A timeout elapsed while waiting for a container.
    #[error("timed out waiting for container {0}")]
    Timeout(String),
}

/// Result of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds a path and an action to an I/O error.
pub(crate) trait IoContext<T> {
    fn ctx(self, what: &'static str, path: impl Into<PathBuf>) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn ctx(self, what: &'static str, path: impl Into<PathBuf>) -> Result<T> {
        self.map_err(|source| Error::Io {
            what,
            path: path.into(),
            source,
        })
    }
}

pub(crate) fn json_err(what: impl Into<String>) -> impl FnOnce(serde_json::Error) -> Error {
    let what = what.into();
    move |source| Error::Json { what, source }
}
