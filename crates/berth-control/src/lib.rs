//! Berth's service reconciler, as pure functions.
//!
//! [`reconcile`] takes a service, its deployments, its tasks, the cluster's container
//! instances and the clock, and returns the [`Action`]s that move the service towards what it
//! asks for: tasks to start and stop, deployment transitions (PRIMARY, ACTIVE, INACTIVE;
//! rolloutState IN_PROGRESS, COMPLETED, FAILED), the circuit breaker and its rollback, the
//! steady-state report. It performs no I/O: the control plane's controller loop reads a
//! snapshot from the store, calls it, and applies the actions in one transaction.
//!
//! The rules are ECS's:
//! - REPLICA keeps `desiredCount` tasks of the PRIMARY deployment; during a rolling
//!   deployment the tasks that are not stopped never exceed `maximumPercent` of the desired
//!   count, and old tasks are stopped only while at least `minimumHealthyPercent` stay
//!   healthy. A task is healthy when it is RUNNING and, if its task definition defines
//!   container health checks, HEALTHY. An UNHEALTHY task is replaced once the service's
//!   `healthCheckGracePeriodSeconds` after its start have passed.
//! - DAEMON keeps exactly one task on every ACTIVE container instance that satisfies the
//!   service's constraints, none on DRAINING ones, and never two on one instance.
//! - A container instance whose agent has not been heard of for longer than the service's
//!   `instance_lost_after_ms` is lost: its tasks are told to stop and no longer count; the
//!   service starts replacements elsewhere.
//! - The deployment circuit breaker counts the PRIMARY deployment's tasks that stopped on
//!   their own (failed to start, essential container exited, failed health checks); at the
//!   threshold the deployment is FAILED and, with rollback, the service rolls back to the
//!   last COMPLETED deployment.

pub mod messages;
mod model;
mod reconcile;
#[cfg(test)]
mod sim;

pub use model::{
    Action, CircuitBreaker, Deployment, DeploymentStatus, Health, Instance, InstanceStatus,
    RolloutState, SchedulingStrategy, Service, ServiceStatus, StopReason, Task, TaskPhase,
    Threshold,
};
pub use reconcile::{circuit_breaker_threshold, placement_backoff_ms, reconcile};
