//! Berth's placement engine, pure: a [`Snapshot`] of a cluster's container instances and a
//! [`Request`] in, a [`Plan`] out (one placement or refusal per task), with randomness as an
//! input. Strategies (binpack, spread, random) combine as ECS combines them; constraints
//! (distinctInstance, memberOf with the cluster query language of [`query`]) and the task
//! definition's `requiresAttributes` filter instances; resources (CPU, MEMORY, GPU, PORTS,
//! PORTS_UDP) are reserved as the plan goes, so two tasks never share the last of anything.
//! [`capacity`] splits a request between the providers of a capacity provider strategy.
//! No I/O, no store, no clock.

pub mod capacity;
pub mod place;
pub mod query;
pub mod snapshot;
pub mod spec;

pub use capacity::{Share, SplitError, split};
pub use place::{Placement, Plan, Reason, Refusal, check, place};
pub use query::{Expr, QueryError, parse};
pub use snapshot::{
    BinpackField, Constraint, DYNAMIC_PORTS, HeldTasks, Instance, InstanceStatus, Needs, Request,
    RequiredAttribute, Resources, RunningTask, Snapshot, SpreadField, Strategy,
};
pub use spec::{InvalidPlacement, check_counts, constraint, strategy};
