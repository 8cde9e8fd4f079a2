//! Identifiers Berth mints for resources it creates at a high rate (tasks, CloudTrail events).
//!
//! They are UUIDs of version 7: 48 bits of the creation time in milliseconds, then random
//! bits. To a client they read like AWS's (a task id is 32 hex digits, an event id a hyphenated
//! UUID); to the store they arrive in time order, so each index keyed by them grows at its end
//! instead of dirtying a random page of a large B-tree for every insert (the commit then writes
//! a handful of pages for thousands of new keys, not one page per key).

/// A time-ordered UUID minted at `now_ms` (milliseconds since the Unix epoch).
pub fn time_ordered(now_ms: i64) -> uuid::Uuid {
    let random = uuid::Uuid::new_v4();
    let mut tail = [0u8; 10];
    tail.copy_from_slice(&random.as_bytes()[..10]);
    uuid::Builder::from_unix_timestamp_millis(u64::try_from(now_ms).unwrap_or(0), &tail).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn later_ids_sort_after_earlier_ones_and_read_as_uuids() {
        let a = time_ordered(1_700_000_000_000).simple().to_string();
        let b = time_ordered(1_700_000_000_001).simple().to_string();
        assert!(a < b, "{a} !< {b}");
        assert_eq!(a.len(), 32);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        let h = time_ordered(1_700_000_000_000).to_string();
        assert_eq!(h.len(), 36);
        assert_ne!(time_ordered(5), time_ordered(5), "the random part differs");
    }
}
