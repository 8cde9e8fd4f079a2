//! What a container instance's tasks use of it (its remaining resources and its pending and
//! running task counts), stored in a small record of its own beside the instance's record.
//!
//! Placing a task changes only these; when they lived in the instance's record (about 4 KiB of
//! JSON with its ~30 attributes), every task placed or stopped had the whole record cloned,
//! encoded and rewritten inside the store's writer. Now those writes touch this record, and
//! the instance's record changes only when the instance does (registration, attributes,
//! status). Where this record exists it holds the truth and every view of the instance shows
//! it over the record's own fields; an instance from before it has none, and its record's
//! fields count until its first placement writes one. A plan expects both versions: this
//! record's (what it reserved from) and the instance record's (the instance it planned on).

use berth_store::{Scope, StoreError, Tx};
use berth_wire::ecs::shapes as s;
use serde::{Deserialize, Serialize};

use super::common::kind;
use crate::failure::Failure;

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InstanceUsage {
    /// ECS's `remainingResources`.
    pub remaining_resources: Vec<s::Resource>,
    pub pending_tasks_count: i32,
    /// Without the tasks counted by the started-tasks counter
    /// ([`super::tasks::started_tasks`]).
    pub running_tasks_count: i32,
}

impl InstanceUsage {
    /// The usage instance record `ci` holds in its own fields.
    pub fn of(ci: &s::ContainerInstance) -> InstanceUsage {
        InstanceUsage {
            remaining_resources: ci.remaining_resources.clone().unwrap_or_default(),
            pending_tasks_count: ci.pending_tasks_count.unwrap_or(0),
            running_tasks_count: ci.running_tasks_count.unwrap_or(0),
        }
    }

    /// Shows this usage in `ci`'s fields.
    pub fn show_on(&self, ci: &mut s::ContainerInstance) {
        ci.remaining_resources = Some(self.remaining_resources.clone());
        ci.pending_tasks_count = Some(self.pending_tasks_count);
        ci.running_tasks_count = Some(self.running_tasks_count);
    }
}

/// Instance `id`'s usage record and its version, if it has one.
pub fn stored(
    tx: &Tx<'_>,
    scope: Scope<'_>,
    id: &str,
) -> Result<Option<(InstanceUsage, i64)>, Failure> {
    Ok(tx.get_json::<InstanceUsage>(scope, kind::CONTAINER_INSTANCE_USAGE, id)?)
}

/// Instance `id`'s usage (stored as `ci`) and the version of its usage record (0: it has
/// none yet, so `ci`'s own fields are its usage).
pub fn of_instance(
    tx: &Tx<'_>,
    scope: Scope<'_>,
    id: &str,
    ci: &s::ContainerInstance,
) -> Result<(InstanceUsage, i64), Failure> {
    Ok(stored(tx, scope, id)?.unwrap_or_else(|| (InstanceUsage::of(ci), 0)))
}

/// Shows instance `id`'s usage over `ci` (its record as stored).
pub fn show(
    tx: &Tx<'_>,
    scope: Scope<'_>,
    id: &str,
    ci: &mut s::ContainerInstance,
) -> Result<(), Failure> {
    if let Some((usage, _)) = stored(tx, scope, id)? {
        usage.show_on(ci);
    }
    Ok(())
}

/// Sets instance `id`'s usage, whatever it was (a registration counts it afresh).
pub fn reset(
    tx: &mut Tx<'_>,
    scope: Scope<'_>,
    id: &str,
    usage: &InstanceUsage,
) -> Result<i64, Failure> {
    Ok(tx.put(scope, kind::CONTAINER_INSTANCE_USAGE, id, None, usage)?)
}

/// A plan made from a stale view of instance `id`: [`super::tasks::with_replanning`] plans
/// again.
fn stale(id: &str, expected: i64) -> Failure {
    Failure::Store(StoreError::Conflict {
        kind: kind::CONTAINER_INSTANCE.into(),
        id: id.into(),
        expected,
    })
}

/// Writes instance `id`'s usage as a plan or a task's state change left it, if the instance
/// record is still at `record_version` and its usage record at `usage_version` (0: none yet);
/// else a conflict on the instance. Returns the usage record's new version.
pub fn write(
    tx: &mut Tx<'_>,
    scope: Scope<'_>,
    id: &str,
    record_version: i64,
    usage_version: i64,
    usage: &InstanceUsage,
) -> Result<i64, Failure> {
    if tx.version(scope, kind::CONTAINER_INSTANCE, id)? != Some(record_version) {
        return Err(stale(id, record_version));
    }
    let written = if usage_version == 0 {
        tx.insert(scope, kind::CONTAINER_INSTANCE_USAGE, id, usage)
    } else {
        tx.put(
            scope,
            kind::CONTAINER_INSTANCE_USAGE,
            id,
            Some(usage_version),
            usage,
        )
    };
    match written {
        Ok(v) => Ok(v),
        Err(StoreError::Conflict { .. } | StoreError::AlreadyExists { .. }) => {
            Err(stale(id, record_version))
        }
        Err(e) => Err(e.into()),
    }
}
