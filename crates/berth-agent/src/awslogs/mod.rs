//! The awslogs log driver, as ECS's agent runs it with Docker's awslogs driver: a container
//! whose `logConfiguration.logDriver` is `awslogs` has its stdout and stderr shipped to a
//! CloudWatch Logs stream (`prefix/container-name/task-id`, else the container's id).
//!
//! - [`options`]: the driver's options, checked as Docker checks them at container start;
//! - [`multiline`]: `awslogs-datetime-format` / `awslogs-multiline-pattern` grouping;
//! - [`batch`]: PutLogEvents batches by AWS's rules (pure);
//! - [`shipper`]: one task per container that reads the shim's log files and ships them,
//!   with a persisted cursor, so nothing is lost or sent twice across an agent restart.

pub mod batch;
pub mod multiline;
pub mod options;
pub mod shipper;

pub use options::{AwslogsOptions, Mode};
pub use shipper::{Cursor, EndedFn, Outcome, Shipper, ShipperSpec};

/// Where the shippers keep their cursors, under the agent's state directory.
pub fn cursor_path(state_dir: &std::path::Path, container_id: &str) -> std::path::PathBuf {
    state_dir
        .join("awslogs")
        .join(format!("{container_id}.json"))
}
