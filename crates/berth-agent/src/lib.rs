//! Berth's agent: it turns a host into an ECS container instance.
//!
//! - [`host`]: what the host registers with (resources, attributes, capabilities, versions);
//! - [`control_plane`]: [`ControlPlane`], the agent's view of the control plane, and
//!   [`HttpControlPlane`] for a remote `berth server`;
//! - [`plan`]: the pure parts of running a task (specs from task definitions and overrides,
//!   dependsOn, health checks, what is reported);
//! - [`Agent`]: the poll loop and one task manager per task over `berth-runtime`;
//! - [`metadata`]: the task metadata endpoint (v3/v4) for containers;
//! - [`awslogs`]: the awslogs log driver (containers' output shipped to CloudWatch Logs).

pub mod agent;
pub mod awslogs;
pub mod control_plane;
pub mod error;
pub mod host;
pub mod metadata;
pub mod plan;
pub mod task;

pub(crate) use agent::write_atomic;

pub use agent::{Agent, AgentConfig, register};
pub use control_plane::{
    BoxFuture, ContainerHealth, ControlPlane, HttpConfig, HttpControlPlane, LogsCall, LogsReply,
    LogsScope, TaskHealthReport,
};
pub use error::{ControlPlaneError, Error, Result};
pub use host::{HostFacts, RegistrationSettings};
pub use plan::stop_code_for_reason;
pub use task::TaskRecord;
