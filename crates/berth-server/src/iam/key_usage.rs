//! When each access key was last used, for `GetAccessKeyLastUsed`.
//!
//! The gateway records every authenticated request here, in memory (a map update under a
//! lock, no store write on the request path); housekeeping flushes the map to the store.
//! Reads merge what is still in memory, so the answer is current on this replica and at
//! most one flush interval old on others — IAM itself documents that it updates this
//! information with a delay.

use std::collections::HashMap;
use std::sync::Mutex;

use berth_store::{Scope, Store, StoreError, Tx};
use serde::{Deserialize, Serialize};

/// Record kind, by access key id, in the key's account (no region).
pub const KIND: &str = "iam/access-key-last-used";

/// One key's last use, as `AccessKeyLastUsed` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LastUse {
    pub at_ms: i64,
    /// The signing name of the service called (`ecs`, `iam`, `logs`, …).
    pub service: String,
    pub region: String,
    /// The key's account.
    pub account: String,
}

/// Uses not yet written to the store, by access key id.
#[derive(Debug, Default)]
pub struct KeyUsage {
    pending: Mutex<HashMap<String, LastUse>>,
}

impl KeyUsage {
    /// Notes that `access_key_id` (of `account`) signed a request to `service` in `region`.
    pub fn record(
        &self,
        access_key_id: &str,
        account: &str,
        service: &str,
        region: &str,
        at_ms: i64,
    ) {
        let mut pending = match self.pending.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        match pending.get_mut(access_key_id) {
            // Requests of one moment may be recorded out of order: the latest one wins.
            Some(u) if u.at_ms <= at_ms => {
                u.at_ms = at_ms;
                if u.service != service {
                    service.clone_into(&mut u.service);
                }
                if u.region != region {
                    region.clone_into(&mut u.region);
                }
            }
            Some(_) => {}
            None => {
                pending.insert(
                    access_key_id.to_string(),
                    LastUse {
                        at_ms,
                        service: service.to_string(),
                        region: region.to_string(),
                        account: account.to_string(),
                    },
                );
            }
        }
    }

    /// The key's last use: the one in memory, else the stored one.
    pub fn last_used(
        &self,
        tx: &Tx<'_>,
        access_key_id: &str,
        account: &str,
    ) -> Result<Option<LastUse>, StoreError> {
        let pending = match self.pending.lock() {
            Ok(g) => g.get(access_key_id).cloned(),
            Err(poisoned) => poisoned.into_inner().get(access_key_id).cloned(),
        };
        if pending.is_some() {
            return Ok(pending);
        }
        Ok(tx
            .get_json::<LastUse>(Scope::new(account, ""), KIND, access_key_id)?
            .map(|(u, _)| u))
    }

    /// Writes what is in memory to the store (one transaction) and forgets it. Returns how
    /// many keys were written. On failure the uses are kept for the next flush.
    pub fn flush(&self, store: &Store) -> Result<usize, StoreError> {
        let batch: Vec<(String, LastUse)> = {
            let mut pending = match self.pending.lock() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            pending.drain().collect()
        };
        if batch.is_empty() {
            return Ok(0);
        }
        let written = store.write(|tx| -> Result<usize, StoreError> {
            for (key, u) in &batch {
                let scope = Scope::new(&u.account, "");
                // A key deleted since its use has nothing to report.
                if tx.access_key(key)?.is_none() {
                    continue;
                }
                let newer = tx
                    .get_json::<LastUse>(scope, KIND, key)?
                    .is_none_or(|(old, _)| old.at_ms <= u.at_ms);
                if newer {
                    tx.put(scope, KIND, key, None, u)?;
                }
            }
            Ok(batch.len())
        });
        if written.is_err() {
            for (key, u) in batch {
                self.record(&key, &u.account, &u.service, &u.region, u.at_ms);
            }
        }
        written
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_latest_use_wins_and_survives_a_flush() {
        let store = Store::open_in_memory().unwrap();
        store
            .write(|tx| {
                tx.insert_access_key(&berth_store::AccessKey {
                    access_key_id: "AKIAEXAMPLE".into(),
                    secret_access_key: "s".into(),
                    account: "123456789012".into(),
                    principal_arn: "arn:aws:iam::123456789012:user/u".into(),
                    status: "Active".into(),
                    created_at_ms: 1,
                })
            })
            .unwrap();
        let usage = KeyUsage::default();
        usage.record("AKIAEXAMPLE", "123456789012", "ecs", "us-east-1", 10);
        usage.record("AKIAEXAMPLE", "123456789012", "iam", "us-east-1", 20);
        usage.record("AKIAEXAMPLE", "123456789012", "ecs", "eu-west-1", 15);
        let u = store
            .read(|tx| usage.last_used(tx, "AKIAEXAMPLE", "123456789012"))
            .unwrap()
            .unwrap();
        assert_eq!(u.at_ms, 20);
        assert_eq!(usage.flush(&store).unwrap(), 1);
        let stored = store
            .read(|tx| usage.last_used(tx, "AKIAEXAMPLE", "123456789012"))
            .unwrap()
            .unwrap();
        assert_eq!((stored.at_ms, stored.service.as_str()), (20, "iam"));
        assert_eq!(stored.region, "us-east-1");
        // A use from before what is stored does not go back in time.
        usage.record("AKIAEXAMPLE", "123456789012", "logs", "us-east-1", 5);
        usage.flush(&store).unwrap();
        let stored = store
            .read(|tx| usage.last_used(tx, "AKIAEXAMPLE", "123456789012"))
            .unwrap()
            .unwrap();
        assert_eq!(stored.at_ms, 20);
        // Unknown keys are not stored.
        usage.record("AKIAGONE", "123456789012", "ecs", "us-east-1", 30);
        usage.flush(&store).unwrap();
        assert!(
            store
                .read(|tx| usage.last_used(tx, "AKIAGONE", "123456789012"))
                .unwrap()
                .is_none()
        );
    }
}
