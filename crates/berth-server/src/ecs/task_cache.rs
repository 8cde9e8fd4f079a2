//! Tasks as RunTask created them, decoded, by record version.
//!
//! A task created by RunTask is read twice soon after: by its agent's poll (the assignment)
//! and by the agent's report that it is RUNNING. Each read had decompressed and decoded the
//! task's record (its task definition included) again. The cache holds the tasks this
//! process created most recently, each with the version it was written at (a new record's,
//! 1); a read that finds the record at that version in the store uses the copy. It is
//! exact, never stale: a copy is used only for the version it was written as, and a record's
//! version moves with every write of it (another process's writes too: it then misses).
//! Bounded: the oldest copies leave first.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use berth_store::{Scope, Tx};

use super::tasks::{StoredTask, task_kind};
use crate::failure::Failure;

/// Copies kept: a few seconds of RunTask at full rate, where the reads come within
/// milliseconds (the poll) to a few hundred (the report).
pub const CAPACITY: usize = 4096;

/// Recently created tasks, decoded (see the module's documentation).
#[derive(Default)]
pub struct TaskCache {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    copies: HashMap<String, (i64, Arc<StoredTask>)>,
    /// Keys in the order they came in (each once), the oldest first.
    order: VecDeque<String>,
}

fn key(scope: Scope<'_>, id: &str) -> String {
    format!("{}|{}|{id}", scope.account, scope.region)
}

impl TaskCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Keeps `task`, which is what record `id` of `scope` holds at `version`.
    pub fn put(&self, scope: Scope<'_>, id: &str, version: i64, task: Arc<StoredTask>) {
        let k = key(scope, id);
        let mut inner = self.lock();
        if inner.copies.insert(k.clone(), (version, task)).is_none() {
            inner.order.push_back(k);
        }
        while inner.order.len() > CAPACITY {
            if let Some(oldest) = inner.order.pop_front() {
                inner.copies.remove(&oldest);
            }
        }
    }

    /// The copy of record `id` of `scope` at `version`, if one is kept.
    pub fn get(&self, scope: Scope<'_>, id: &str, version: i64) -> Option<Arc<StoredTask>> {
        let inner = self.lock();
        match inner.copies.get(&key(scope, id)) {
            Some((v, task)) if *v == version => Some(task.clone()),
            _ => None,
        }
    }

    /// How many copies are kept.
    pub fn len(&self) -> usize {
        self.lock().copies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Task record `id` of `scope` and its version, as `tx` sees it: the kept copy when it is
/// of that version, else the record decoded. One lookup either way (the JSON decoding is
/// what a copy saves; a record older than the cache costs no second seek).
pub fn read_task(
    tx: &Tx<'_>,
    cache: &TaskCache,
    scope: Scope<'_>,
    id: &str,
) -> Result<Option<(Arc<StoredTask>, i64)>, Failure> {
    let Some(record) = tx.get(scope, task_kind::TASK, id)? else {
        return Ok(None);
    };
    if let Some(task) = cache.get(scope, id, record.version) {
        return Ok(Some((task, record.version)));
    }
    let task: StoredTask = record.decode(task_kind::TASK)?;
    Ok(Some((Arc::new(task), record.version)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(reason: &str) -> Arc<StoredTask> {
        let mut t: StoredTask = serde_json::from_value(serde_json::json!({
            "task": {}, "taskDefinition": {}, "host": "h"
        }))
        .unwrap();
        t.task.stopped_reason = Some(reason.into());
        Arc::new(t)
    }

    #[test]
    fn a_copy_serves_its_own_version_only_and_the_oldest_leave_first() {
        let cache = TaskCache::default();
        let s = Scope::new("111", "r");
        cache.put(s, "c/1", 1, task("one"));
        assert!(cache.get(s, "c/1", 1).is_some());
        assert!(cache.get(s, "c/1", 2).is_none(), "another version");
        assert!(cache.get(Scope::new("222", "r"), "c/1", 1).is_none());
        cache.put(s, "c/1", 2, task("two"));
        let two = cache.get(s, "c/1", 2).unwrap();
        assert_eq!(two.task.stopped_reason.as_deref(), Some("two"));
        assert!(cache.get(s, "c/1", 1).is_none());
        for n in 0..CAPACITY {
            cache.put(s, &format!("c/x{n}"), 1, task("x"));
        }
        assert_eq!(cache.len(), CAPACITY);
        assert!(cache.get(s, "c/1", 2).is_none(), "the oldest left");
        assert!(cache.get(s, "c/x0", 1).is_some());
    }
}
