//! The in-memory index of each cluster's container instances, as placement sees them: the
//! engine's [`sched::Snapshot`] (registered and remaining resources, attributes, status, the
//! groups and families of the tasks each holds) beside each instance's stored record and its
//! version, and when its agent last polled. RunTask plans from it instead of reading every
//! instance record (and every task) of the cluster.
//!
//! Coherence with the store:
//! - **Built from the store** the first time a cluster is planned on (so after every start),
//!   from the instance records and the host entries (no task record is decoded when the
//!   index carries the task's group and family).
//! - **Write-through**: the task paths that change an instance's reservations or counts
//!   (RunTask, StartTask, task state changes, polls) update the entry after their transaction
//!   commits ([`berth_store::Tx::after_commit`]), and only if the entry was at the version the
//!   write started from; otherwise the entry is marked stale.
//! - **Every other writer** is caught by the store's commit observer: a committed change of an
//!   instance record whose version the entry does not have marks the entry stale (a deletion
//!   or a wiped account drops it). Stale entries are reloaded from the store before the next
//!   plan. A failed write commits nothing, so it changes nothing here.
//! - **Apply checks versions**: a plan writes each chosen instance back with the version it
//!   was planned from (`put` with an expected version), so a plan made from a stale entry fails
//!   with a conflict instead of overcommitting; the caller marks the entries stale and plans
//!   again (bounded retries).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use berth_model::lifecycle::TaskStatus;
use berth_scheduler as sched;
use berth_store::{Change, Scope, Tx};
use berth_wire::ecs::shapes as s;
use serde::{Deserialize, Serialize};

use super::common::kind;
use super::instance_usage::{self, InstanceUsage};
use super::placement;
use crate::failure::Failure;

/// What a host's entry for each of its tasks holds (`Tx::put_host_entry`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HostTask {
    /// The host's assignment sequence when the task last changed (for polls that ask only
    /// for what changed).
    pub seq: i64,
    pub group: Option<String>,
    pub family: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct ClusterKey {
    account: String,
    region: String,
    cluster: String,
}

impl ClusterKey {
    fn new(scope: Scope<'_>, cluster: &str) -> ClusterKey {
        ClusterKey {
            account: scope.account.to_string(),
            region: scope.region.to_string(),
            cluster: cluster.to_string(),
        }
    }
}

/// One cluster's instances (ACTIVE and DRAINING only: the others take and hold nothing
/// placement cares about).
#[derive(Default)]
pub struct ClusterState {
    loaded: bool,
    /// The engine's view; `instances[k]` is the instance of `records[k]`.
    snapshot: sched::Snapshot,
    /// Shared: a plan hands out an instance's record per task placed on it without copying
    /// its attributes and resources.
    records: Vec<(Arc<s::ContainerInstance>, i64)>,
    /// Each instance's usage and its usage record's version (0: none yet).
    usages: Vec<(InstanceUsage, i64)>,
    /// Tasks each instance started that its record does not count yet (see
    /// [`super::tasks::started_tasks`]).
    started: Vec<i64>,
    last_poll_ms: Vec<Option<i64>>,
    pos: HashMap<String, usize>,
    stale: HashSet<String>,
    /// Instances whose agent polled since their last poll time was read.
    polled: HashSet<String>,
    /// The clock's span in which every entry's `agent_connected` holds as last set: from the
    /// last full refresh to the moment the first connected agent's last poll grows too old.
    /// A plan inside it refreshes only the instances that polled (a full refresh writes into
    /// every instance of the snapshot: 10,000 cache lines per plan).
    connected_span: (i64, i64),
}

impl ClusterState {
    /// The snapshot to plan from.
    pub fn snapshot(&self) -> &sched::Snapshot {
        &self.snapshot
    }

    /// The stored record and version instance `id` was planned from.
    pub fn record(&self, id: &str) -> Option<&(Arc<s::ContainerInstance>, i64)> {
        self.pos.get(id).map(|k| &self.records[*k])
    }

    /// What a plan that places on instance `id` reserves from and expects.
    pub fn planned_on(&self, id: &str) -> Option<PlannedOn> {
        let k = *self.pos.get(id)?;
        let (record, record_version) = &self.records[k];
        let (usage, usage_version) = &self.usages[k];
        Some(PlannedOn {
            record: record.clone(),
            record_version: *record_version,
            usage: usage.clone(),
            usage_version: *usage_version,
        })
    }

    fn remove(&mut self, id: &str) {
        let Some(k) = self.pos.remove(id) else {
            return;
        };
        self.snapshot.instances.swap_remove(k);
        self.records.swap_remove(k);
        self.usages.swap_remove(k);
        self.started.swap_remove(k);
        self.last_poll_ms.swap_remove(k);
        if let Some(moved) = self.snapshot.instances.get(k) {
            self.pos.insert(moved.id.clone(), k);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn upsert(
        &mut self,
        id: &str,
        ci: s::ContainerInstance,
        version: i64,
        usage: (InstanceUsage, i64),
        tasks: sched::HeldTasks,
        last_poll_ms: Option<i64>,
        started: i64,
    ) {
        let started_i32 = i32::try_from(started).unwrap_or(i32::MAX);
        if !matches!(ci.status.as_deref(), Some("ACTIVE") | Some("DRAINING")) {
            self.remove(id);
            return;
        }
        match self.pos.get(id) {
            Some(k) => {
                // Most writes of an instance change only what its tasks use: the entry's
                // attributes and registration stay, its usage is set.
                if placement::differs_in_usage_only(&self.records[*k].0, &ci) {
                    placement::set_usage(&mut self.snapshot.instances[*k], &usage.0, tasks);
                } else {
                    self.snapshot.instances[*k] =
                        placement::instance(id, &ci, &usage.0, false, tasks);
                    self.connected_span = (0, 0);
                }
                // Both set the record's running count: the tasks started since add to it.
                let inst = &mut self.snapshot.instances[*k];
                inst.running_tasks_count = inst.running_tasks_count.saturating_add(started_i32);
                self.records[*k] = (Arc::new(ci), version);
                self.usages[*k] = usage;
                self.started[*k] = started;
                self.last_poll_ms[*k] = last_poll_ms;
            }
            None => {
                let mut inst = placement::instance(id, &ci, &usage.0, false, tasks);
                inst.running_tasks_count = inst.running_tasks_count.saturating_add(started_i32);
                self.pos.insert(id.to_string(), self.records.len());
                self.snapshot.instances.push(inst);
                self.connected_span = (0, 0);
                self.records.push((Arc::new(ci), version));
                self.usages.push(usage);
                self.started.push(started);
                self.last_poll_ms.push(last_poll_ms);
            }
        }
    }

    /// Reloads instance `id` (its record, its tasks, its last poll) from the store.
    fn reload(&mut self, tx: &Tx<'_>, scope: Scope<'_>, id: &str) -> Result<(), Failure> {
        match tx.get_json::<s::ContainerInstance>(scope, kind::CONTAINER_INSTANCE, id)? {
            None => self.remove(id),
            Some((ci, version)) => self.load(tx, scope, id, ci, version)?,
        }
        Ok(())
    }

    /// Sets instance `id`'s entry from its record `ci` at `version` and what else the store
    /// holds of it: its usage, its tasks, its agent's last poll, its started tasks.
    fn load(
        &mut self,
        tx: &Tx<'_>,
        scope: Scope<'_>,
        id: &str,
        ci: s::ContainerInstance,
        version: i64,
    ) -> Result<(), Failure> {
        let usage = instance_usage::of_instance(tx, scope, id, &ci)?;
        let tasks = held_tasks(tx, scope, id)?;
        let host = super::tasks::instance_host(scope, id);
        let last = super::tasks::last_poll(tx, &host)?;
        let started = super::tasks::started_tasks(tx, scope, id)?;
        self.upsert(id, ci, version, usage, tasks, last, started);
        Ok(())
    }

    /// Sets each instance's `agent_connected` as of `now_ms`.
    fn refresh_connected(&mut self, now_ms: i64) {
        let (from, until) = self.connected_span;
        if (from..until).contains(&now_ms) {
            return;
        }
        let mut until = i64::MAX;
        for (i, last) in self.snapshot.instances.iter_mut().zip(&self.last_poll_ms) {
            let connected = super::tasks::connected_until(*last, now_ms);
            i.agent_connected = connected.is_some();
            until = until.min(connected.unwrap_or(i64::MAX));
        }
        self.connected_span = (now_ms, until);
    }
}

/// The tasks (not STOPPED) that instance `id` holds, from its host entries.
fn held_tasks(tx: &Tx<'_>, scope: Scope<'_>, id: &str) -> Result<sched::HeldTasks, Failure> {
    let host = super::tasks::instance_host(scope, id);
    let prefix = format!("{}|{}|", scope.account, scope.region);
    let mut out = sched::HeldTasks::default();
    for r in tx.host_entries(&host, &prefix)? {
        if let Ok(h) = r.decode::<HostTask>() {
            out.push(sched::RunningTask {
                group: h.group,
                family: h.family,
            });
            continue;
        }
        // An index entry from before it carried the group: read the task.
        let Some(task_id) = r.task.strip_prefix(&prefix) else {
            continue;
        };
        if let Some((t, _)) =
            tx.get_json::<super::tasks::StoredTask>(scope, super::tasks::task_kind::TASK, task_id)?
            && t.last_status() != TaskStatus::Stopped
        {
            out.push(t.running_task());
        }
    }
    Ok(out)
}

/// How the tasks an instance holds changed in a write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    Added(Vec<sched::RunningTask>),
    Removed(Vec<sched::RunningTask>),
}

/// What a plan that places on an instance reserves from and expects: its record (shared with
/// the index) and usage, each with its version.
#[derive(Debug, Clone)]
pub struct PlannedOn {
    pub record: Arc<s::ContainerInstance>,
    pub record_version: i64,
    pub usage: InstanceUsage,
    pub usage_version: i64,
}

/// Every cluster's index, built on first use.
#[derive(Default)]
pub struct ClusterIndex {
    clusters: Mutex<HashMap<ClusterKey, Arc<Mutex<ClusterState>>>>,
    /// Set when the store cannot tell the index what changed: every plan then rebuilds.
    disabled: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding it leaves at worst an entry to reload: recover the guard.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// The cluster part of an instance store id `<cluster>/<id>`.
fn cluster_of(instance_store_id: &str) -> &str {
    instance_store_id
        .split_once('/')
        .map_or(instance_store_id, |(c, _)| c)
}

impl ClusterIndex {
    fn state(&self, scope: Scope<'_>, cluster: &str) -> Arc<Mutex<ClusterState>> {
        lock(&self.clusters)
            .entry(ClusterKey::new(scope, cluster))
            .or_default()
            .clone()
    }

    fn existing(&self, scope: Scope<'_>, cluster: &str) -> Option<Arc<Mutex<ClusterState>>> {
        lock(&self.clusters)
            .get(&ClusterKey::new(scope, cluster))
            .cloned()
    }

    /// Runs `f` on `cluster`'s state, current as of `tx` and `now_ms`: built on first use,
    /// stale entries reloaded, agents' connectivity evaluated at `now_ms`. Call it in the write
    /// transaction that applies the plan, before that transaction writes anything.
    pub fn with_cluster<T>(
        &self,
        tx: &Tx<'_>,
        scope: Scope<'_>,
        cluster: &str,
        now_ms: i64,
        f: impl FnOnce(&ClusterState) -> T,
    ) -> Result<T, Failure> {
        let state = self.state(scope, cluster);
        let mut st = lock(&state);
        if !st.loaded || self.disabled.load(Ordering::Relaxed) {
            *st = ClusterState::default();
            for r in tx.list(
                scope,
                kind::CONTAINER_INSTANCE,
                &format!("{cluster}/"),
                None,
                usize::MAX,
            )? {
                let ci: s::ContainerInstance = r.decode(kind::CONTAINER_INSTANCE)?;
                if !matches!(ci.status.as_deref(), Some("ACTIVE") | Some("DRAINING")) {
                    continue;
                }
                st.load(tx, scope, &r.id, ci, r.version)?;
            }
            st.loaded = true;
        }
        let stale: Vec<String> = st.stale.drain().collect();
        for id in stale {
            st.reload(tx, scope, &id)?;
        }
        let polled: Vec<String> = st.polled.drain().collect();
        for id in polled {
            if let Some(k) = st.pos.get(&id).copied() {
                let host = super::tasks::instance_host(scope, &id);
                let last = super::tasks::last_poll(tx, &host)?;
                st.last_poll_ms[k] = last;
                let connected = super::tasks::connected_until(last, now_ms);
                st.snapshot.instances[k].agent_connected = connected.is_some();
                let (from, until) = st.connected_span;
                st.connected_span = (from, until.min(connected.unwrap_or(i64::MAX)));
            }
        }
        st.refresh_connected(now_ms);
        Ok(f(&st))
    }

    /// How many of `cluster`'s instances are ACTIVE or DRAINING, as `tx` sees the ones the
    /// index does not trust (stale entries, instances it has not loaded yet) and as the index
    /// has the rest; `None` when it does not hold the cluster (never planned on since the
    /// start) or is disabled. Reads only: a reader must not load or reload entries (its
    /// snapshot may be older than the index, and a load would hold the cluster's lock, which
    /// the writer's commit observer takes).
    pub fn registered_count(
        &self,
        tx: &Tx<'_>,
        scope: Scope<'_>,
        cluster: &str,
    ) -> Result<Option<i32>, Failure> {
        if self.disabled.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let Some(state) = self.existing(scope, cluster) else {
            return Ok(None);
        };
        let (trusted, stale) = {
            let st = lock(&state);
            if !st.loaded {
                return Ok(None);
            }
            let trusted = st
                .snapshot
                .instances
                .iter()
                .filter(|i| !st.stale.contains(&i.id))
                .count();
            (trusted, st.stale.iter().cloned().collect::<Vec<_>>())
        };
        let mut n = trusted;
        for id in stale {
            if let Some(r) = tx.get(scope, kind::CONTAINER_INSTANCE, &id)?
                && super::container_instances::is_registered(&r)?
            {
                n += 1;
            }
        }
        Ok(Some(i32::try_from(n).unwrap_or(i32::MAX)))
    }

    /// Whether the index holds container instance `id` (ACTIVE or DRAINING) and trusts its
    /// copy: then the store has it too, or had it a moment ago. `false` says nothing.
    pub fn holds(&self, scope: Scope<'_>, id: &str) -> bool {
        if self.disabled.load(Ordering::Relaxed) {
            return false;
        }
        let Some(state) = self.existing(scope, cluster_of(id)) else {
            return false;
        };
        let st = lock(&state);
        st.loaded && !st.stale.contains(id) && st.record(id).is_some()
    }

    /// Stops trusting the index: every plan rebuilds its cluster from the store.
    pub fn disable(&self) {
        self.disabled.store(true, Ordering::Relaxed);
    }

    /// Marks instances stale (their next plan reloads them).
    pub fn invalidate(&self, scope: Scope<'_>, ids: &[String]) {
        for id in ids {
            if let Some(state) = self.existing(scope, cluster_of(id)) {
                lock(&state).stale.insert(id.clone());
            }
        }
    }

    /// Write-through: instance `id`'s usage is now `usage`, its usage record at `version`
    /// (written over `version - 1`), holding the tasks it held changed by `held`. An entry
    /// that was not at `version - 1` missed a write: it is marked stale instead.
    pub fn usage_written(
        &self,
        scope: Scope<'_>,
        id: &str,
        usage: InstanceUsage,
        version: i64,
        held: Held,
    ) {
        let Some(state) = self.existing(scope, cluster_of(id)) else {
            return;
        };
        let mut st = lock(&state);
        if !st.loaded {
            return;
        }
        let Some(k) = st.pos.get(id).copied() else {
            // Not indexed (e.g. INACTIVE): a reload decides.
            st.stale.insert(id.to_string());
            return;
        };
        if st.usages[k].1 != version - 1 {
            st.stale.insert(id.to_string());
            return;
        }
        let started = i32::try_from(st.started[k]).unwrap_or(i32::MAX);
        let inst = &mut st.snapshot.instances[k];
        let mut tasks = std::mem::take(&mut inst.tasks);
        match held {
            Held::Added(add) => tasks.extend(add),
            Held::Removed(gone) => {
                for g in gone {
                    tasks.remove(&g);
                }
            }
        }
        placement::set_usage(inst, &usage, tasks);
        // The usage counts the tasks that started before the counter: the counter adds to it.
        inst.running_tasks_count = inst.running_tasks_count.saturating_add(started);
        st.usages[k] = (usage, version);
    }

    /// Write-through: `n` more of instance `id`'s tasks started (counted apart from its
    /// record, which stays as it was). An instance the index does not hold is read from the
    /// store, counter included, when it is next loaded.
    pub fn tasks_started(&self, scope: Scope<'_>, id: &str, n: i64) {
        let Some(state) = self.existing(scope, cluster_of(id)) else {
            return;
        };
        let mut st = lock(&state);
        if let Some(k) = st.pos.get(id).copied() {
            st.started[k] += n;
            let inst = &mut st.snapshot.instances[k];
            inst.running_tasks_count = inst
                .running_tasks_count
                .saturating_add(i32::try_from(n).unwrap_or(i32::MAX));
        }
    }

    /// The store's commit observer: marks stale what a commit changed behind the index's back.
    pub fn observe(&self, changes: &[Change]) {
        for c in changes {
            match c {
                Change::Record {
                    account,
                    region,
                    kind: k,
                    id,
                    version,
                } if k == kind::CONTAINER_INSTANCE || k == kind::CONTAINER_INSTANCE_USAGE => {
                    let scope = Scope::new(account, region);
                    let Some(state) = self.existing(scope, cluster_of(id)) else {
                        continue;
                    };
                    let mut st = lock(&state);
                    let usage = k == kind::CONTAINER_INSTANCE_USAGE;
                    let current = st.pos.get(id.as_str()).map(|&n| {
                        if usage {
                            st.usages[n].1
                        } else {
                            st.records[n].1
                        }
                    });
                    match version {
                        None if !usage => st.remove(id),
                        Some(v) if current == Some(*v) => {}
                        // Not the version the entry has (or an instance it does not hold
                        // yet): a reload decides.
                        _ => {
                            st.stale.insert(id.clone());
                        }
                    }
                }
                Change::Record {
                    kind: k, id: host, ..
                } if k == super::tasks::task_kind::HOST => {
                    // `instance|<account>|<region>|<cluster>/<id>`: an agent polled.
                    let mut parts = host.splitn(4, '|');
                    let (Some("instance"), Some(account), Some(region), Some(id)) =
                        (parts.next(), parts.next(), parts.next(), parts.next())
                    else {
                        continue;
                    };
                    if let Some(state) = self.existing(Scope::new(account, region), cluster_of(id))
                    {
                        lock(&state).polled.insert(id.to_string());
                    }
                }
                Change::Record { .. } => {}
                Change::Account { account } => {
                    lock(&self.clusters).retain(|k, _| k.account != *account);
                }
                // Writes the index heard of were lost: rebuild everything on next use.
                Change::Reset => lock(&self.clusters).clear(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ci(status: &str, cpu: i32) -> s::ContainerInstance {
        s::ContainerInstance {
            container_instance_arn: Some("arn".into()),
            status: Some(status.into()),
            remaining_resources: Some(vec![s::Resource {
                name: Some("CPU".into()),
                integer_value: Some(cpu),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    const S: Scope<'static> = Scope {
        account: "000000000000",
        region: "us-east-1",
    };

    #[test]
    fn agents_connected_are_refreshed_when_the_clock_or_an_entry_changes_them() {
        let limit = berth_wire::agent::DISCONNECT_AFTER_SECONDS * 1000;
        let mut st = ClusterState::default();
        let add = |st: &mut ClusterState, id: &str, last| {
            let record = ci("ACTIVE", 100);
            let usage = (InstanceUsage::of(&record), 0);
            st.upsert(id, record, 1, usage, sched::HeldTasks::default(), last, 0);
        };
        add(&mut st, "c/a", Some(0));
        add(&mut st, "c/b", Some(10_000));
        add(&mut st, "c/c", None);
        let connected = |st: &ClusterState| -> Vec<bool> {
            st.snapshot
                .instances
                .iter()
                .map(|i| i.agent_connected)
                .collect()
        };
        st.refresh_connected(1_000);
        assert_eq!(connected(&st), [true, true, false]);
        st.refresh_connected(limit - 1);
        assert_eq!(connected(&st), [true, true, false]);
        st.refresh_connected(limit);
        assert_eq!(connected(&st), [false, true, false]);
        st.refresh_connected(10_000 + limit);
        assert_eq!(connected(&st), [false, false, false]);
        // A new entry is refreshed at the next plan, whatever the span.
        add(&mut st, "c/d", Some(10_000 + limit));
        st.refresh_connected(10_000 + limit + 1);
        assert_eq!(connected(&st), [false, false, false, true]);
        // The clock going back refreshes too (a poll "later" than now counts as recent).
        st.refresh_connected(5_000);
        assert_eq!(connected(&st), [true, true, false, true]);
    }

    #[test]
    fn write_through_applies_only_in_version_order_and_the_observer_marks_the_rest() {
        let store =
            berth_store::Store::open_in_memory_holding(crate::ecs::KINDS_HELD_IN_MEMORY).unwrap();
        let index = ClusterIndex::default();
        store
            .write(|tx| -> Result<(), Failure> {
                tx.insert(S, kind::CONTAINER_INSTANCE, "c/a", &ci("ACTIVE", 100))?;
                tx.insert(S, kind::CONTAINER_INSTANCE, "c/b", &ci("INACTIVE", 100))?;
                Ok(())
            })
            .unwrap();
        let cpu = |index: &ClusterIndex| {
            store
                .read(|tx| {
                    index.with_cluster(tx, S, "c", 0, |st| {
                        st.snapshot()
                            .instances
                            .iter()
                            .map(|i| (i.id.clone(), i.remaining.cpu, i.tasks.len()))
                            .collect::<Vec<_>>()
                    })
                })
                .unwrap()
        };
        assert_eq!(cpu(&index), vec![("c/a".into(), 100, 0)]);
        // In order: applied.
        let t = sched::RunningTask {
            group: Some("family:x".into()),
            family: "x".into(),
        };
        let usage = |cpu| InstanceUsage::of(&ci("ACTIVE", cpu));
        // The first usage record (version 1 over none).
        index.usage_written(S, "c/a", usage(60), 1, Held::Added(vec![t.clone()]));
        assert_eq!(cpu(&index), vec![("c/a".into(), 60, 1)]);
        // Out of order (a write it missed): stale, reloaded from the store (no usage record
        // there: the instance record's own fields).
        index.usage_written(S, "c/a", usage(10), 9, Held::Added(Vec::new()));
        assert_eq!(cpu(&index), vec![("c/a".into(), 100, 0)]);
        // A write through another path: the observer marks it stale.
        let index = Arc::new(index);
        let i2 = index.clone();
        store
            .observe(
                &[kind::CONTAINER_INSTANCE, kind::CONTAINER_INSTANCE_USAGE],
                move |c| i2.observe(c),
            )
            .unwrap();
        store
            .write(|tx| -> Result<(), Failure> {
                tx.put(
                    S,
                    kind::CONTAINER_INSTANCE,
                    "c/a",
                    Some(1),
                    &ci("ACTIVE", 42),
                )?;
                tx.put(
                    S,
                    kind::CONTAINER_INSTANCE,
                    "c/b",
                    Some(1),
                    &ci("ACTIVE", 7),
                )?;
                Ok(())
            })
            .unwrap();
        let mut now = cpu(&index);
        now.sort();
        assert_eq!(now, vec![("c/a".into(), 42, 0), ("c/b".into(), 7, 0)]);
        // A usage record written elsewhere: stale, reloaded, and it counts over the record.
        store
            .write(|tx| -> Result<(), Failure> {
                instance_usage::reset(tx, S, "c/b", &usage(5))?;
                Ok(())
            })
            .unwrap();
        let mut now = cpu(&index);
        now.sort();
        assert_eq!(now, vec![("c/a".into(), 42, 0), ("c/b".into(), 5, 0)]);
        store
            .write(|tx| -> Result<(), Failure> {
                tx.delete(S, kind::CONTAINER_INSTANCE, "c/a")?;
                Ok(())
            })
            .unwrap();
        assert_eq!(cpu(&index), vec![("c/b".into(), 5, 0)]);
    }
}
