//! PutLogEvents batches by AWS's rules: at most 10,000 events and 1,048,576 bytes (the
//! messages' UTF-8 bytes plus 26 per event), spanning at most 24 hours, in chronological
//! order. [`next_batch`] merges the ready events of a container's output streams (stdout,
//! stderr) by time, without consuming them: they are dropped from the queues only once the
//! batch is acknowledged.

use std::collections::VecDeque;

use berth_wire::logs::shapes::InputLogEvent;

use super::multiline::Event;

pub const MAX_BATCH_EVENTS: usize = 10_000;
pub const MAX_BATCH_BYTES: usize = 1_048_576;
pub const EVENT_OVERHEAD_BYTES: usize = 26;
pub const MAX_SPAN_MS: u64 = 24 * 3_600_000;

/// A batch taken from the heads of the queues.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    /// What is sent (empty events are skipped, timestamps made non-decreasing).
    pub events: Vec<InputLogEvent>,
    /// How many events of each queue the batch takes (including skipped empty ones).
    pub taken: Vec<usize>,
    /// Where each queue's last taken event ends in its file.
    pub ends: Vec<Option<u64>>,
}

impl Batch {
    /// Whether nothing is taken.
    pub fn is_empty(&self) -> bool {
        self.taken.iter().all(|&n| n == 0)
    }

    /// The (timestamp, count of events with it) after this batch is stored on top of
    /// `last` (the same pair before it).
    pub fn last_after(&self, last: (u64, u64)) -> (u64, u64) {
        let (mut ts, mut n) = last;
        for e in &self.events {
            let t = e.timestamp as u64;
            if t == ts {
                n += 1;
            } else if t > ts {
                ts = t;
                n = 1;
            }
        }
        (ts, n)
    }
}

/// Takes the oldest events with a timestamp below `below` from `queues`, in timestamp order
/// (ties go to the earlier queue), as long as the batch stays within AWS's limits. A
/// timestamp older than `floor` (the last one shipped) is raised to it, so that what is
/// shipped never goes back in time.
pub fn next_batch(queues: &[&VecDeque<Event>], below: u64, floor: u64) -> Batch {
    let mut batch = Batch {
        events: Vec::new(),
        taken: vec![0; queues.len()],
        ends: vec![None; queues.len()],
    };
    let mut bytes = 0usize;
    let mut first: Option<u64> = None;
    let mut last = floor;
    loop {
        let next = queues
            .iter()
            .enumerate()
            .filter_map(|(i, q)| q.get(batch.taken[i]).map(|e| (i, e)))
            .min_by_key(|(i, e)| (e.timestamp_ms, *i));
        let Some((i, e)) = next else { break };
        if e.timestamp_ms >= below {
            break;
        }
        let ts = e.timestamp_ms.max(last);
        if !e.message.is_empty() {
            let size = e.message.len() + EVENT_OVERHEAD_BYTES;
            if batch.events.len() >= MAX_BATCH_EVENTS
                || bytes + size > MAX_BATCH_BYTES
                || first.is_some_and(|f| ts - f > MAX_SPAN_MS)
            {
                break;
            }
            bytes += size;
            first.get_or_insert(ts);
            batch.events.push(InputLogEvent {
                timestamp: ts as i64,
                message: e.message.clone(),
            });
        }
        last = ts;
        batch.taken[i] += 1;
        batch.ends[i] = Some(e.end);
    }
    batch
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn ev(ts: u64, msg: &str, end: u64) -> Event {
        Event {
            timestamp_ms: ts,
            message: msg.into(),
            end,
        }
    }

    #[test]
    fn streams_merge_by_time_below_the_watermark() {
        let out: VecDeque<Event> = [ev(1, "o1", 10), ev(3, "o3", 20), ev(9, "o9", 30)].into();
        let err: VecDeque<Event> = [ev(2, "e2", 5), ev(3, "e3", 7)].into();
        let b = next_batch(&[&out, &err], 9, 0);
        let msgs: Vec<&str> = b.events.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(msgs, ["o1", "e2", "o3", "e3"]);
        assert_eq!(b.taken, [2, 2]);
        assert_eq!(b.ends, [Some(20), Some(7)]);
        assert_eq!(b.last_after((1, 1)), (3, 2));
    }

    #[test]
    fn empty_lines_move_the_cursor_but_are_not_sent() {
        let q: VecDeque<Event> = [ev(1, "", 1), ev(2, "a", 3), ev(3, "", 4)].into();
        let b = next_batch(&[&q], u64::MAX, 0);
        assert_eq!(b.events.len(), 1);
        assert_eq!((b.taken[0], b.ends[0]), (3, Some(4)));
        let q: VecDeque<Event> = [ev(1, "", 1)].into();
        let b = next_batch(&[&q], u64::MAX, 0);
        assert!(b.events.is_empty() && !b.is_empty());
    }

    #[test]
    fn timestamps_never_go_back() {
        let q: VecDeque<Event> = [ev(5, "a", 1), ev(7, "b", 2)].into();
        let b = next_batch(&[&q], u64::MAX, 6);
        let ts: Vec<i64> = b.events.iter().map(|e| e.timestamp).collect();
        assert_eq!(ts, [6, 7]);
    }

    #[test]
    fn limits_cut_batches() {
        let many: VecDeque<Event> = (0..10_005).map(|i| ev(i, "x", i)).collect();
        assert_eq!(
            next_batch(&[&many], u64::MAX, 0).events.len(),
            MAX_BATCH_EVENTS
        );
        let big = "y".repeat(100_000);
        let large: VecDeque<Event> = (0..20).map(|i| ev(i, &big, i)).collect();
        assert_eq!(next_batch(&[&large], u64::MAX, 0).events.len(), 10);
        let spread: VecDeque<Event> = [
            ev(0, "a", 1),
            ev(MAX_SPAN_MS, "b", 2),
            ev(MAX_SPAN_MS + 1, "c", 3),
        ]
        .into();
        assert_eq!(next_batch(&[&spread], u64::MAX, 0).events.len(), 2);
    }

    proptest! {
        /// Whatever the queues, a batch obeys AWS's rules, keeps each queue's order, and
        /// successive batches ship every event exactly once.
        #[test]
        fn batches_obey_the_rules_and_lose_nothing(
            a in proptest::collection::vec((0u64..200_000_000, 0usize..40_000), 0..300),
            b in proptest::collection::vec((0u64..200_000_000, 0usize..40_000), 0..300),
        ) {
            let mk = |v: &Vec<(u64, usize)>| -> VecDeque<Event> {
                let mut v = v.clone();
                v.sort();
                v.iter().enumerate().map(|(i, (t, n))| ev(*t, &"m".repeat(*n), i as u64 + 1)).collect()
            };
            let mut queues = [mk(&a), mk(&b)];
            let total = a.len() + b.len();
            let mut shipped = 0;
            let mut floor = 0;
            while queues.iter().any(|q| !q.is_empty()) {
                let batch = next_batch(&[&queues[0], &queues[1]], u64::MAX, floor);
                prop_assert!(!batch.is_empty());
                prop_assert!(batch.events.len() <= MAX_BATCH_EVENTS);
                let bytes: usize = batch.events.iter().map(|e| e.message.len() + EVENT_OVERHEAD_BYTES).sum();
                prop_assert!(bytes <= MAX_BATCH_BYTES);
                prop_assert!(batch.events.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
                if let (Some(f), Some(l)) = (batch.events.first(), batch.events.last()) {
                    prop_assert!(l.timestamp - f.timestamp <= MAX_SPAN_MS as i64);
                    prop_assert!(f.timestamp as u64 >= floor);
                    floor = l.timestamp as u64;
                }
                for (q, n) in queues.iter_mut().zip(&batch.taken) {
                    q.drain(..*n);
                    shipped += n;
                }
            }
            prop_assert_eq!(shipped, total);
        }
    }
}
