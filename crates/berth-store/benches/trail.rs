//! Cost of recording CloudTrail events: appending RunTask-like events (each naming a cluster,
//! a task definition, 10 new tasks and 10 of 10,000 container instances, with a 24 KiB reply
//! as its body; task ids grow in time order, as Berth mints them, instance ids are random)
//! to a trail database on disk that already holds `BERTH_TRAIL_PREFILL` of them (default
//! 20,000), in transactions of 1, 4 and 16 events. Prints microseconds of the appending
//! thread per event, and the database's size.
//!
//! ```sh
//! cargo bench -p berth-store --bench trail
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::Instant;

use berth_store::{Store, TrailEvent, TrailResource};

const ACCOUNT: &str = "111122223333";
const REGION: &str = "us-east-1";

/// The next pseudo-random number of `state` (xorshift).
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Pseudo-random 32-hex ids for the 10,000 container instances.
fn instance_ids(state: &mut u64) -> Vec<String> {
    (0..10_000)
        .map(|_| format!("{:016x}{:016x}", next(state), next(state)))
        .collect()
}

/// The `i`th task of event `n`: its id starts with a number that grows with time, as
/// Berth's UUIDv7 task ids do.
fn task_id(n: i64, i: i64, state: &mut u64) -> String {
    format!("{:016x}{:016x}", n * 10 + i, next(state))
}

fn run_task_event(n: i64, instances: &[String], state: &mut u64) -> TrailEvent {
    let arn = |kind: &str, id: &str| format!("arn:aws:ecs:{REGION}:{ACCOUNT}:{kind}/bench/{id}");
    let mut resources = vec![
        TrailResource {
            resource_type: "AWS::ECS::Cluster".into(),
            name: "bench".into(),
        },
        TrailResource {
            resource_type: "AWS::ECS::TaskDefinition".into(),
            name: "bench:1".into(),
        },
    ];
    let mut body = String::from("{\"responseElements\":{\"tasks\":[");
    for i in 0..10 {
        let task = arn("task", &task_id(n, i, state));
        let pick = usize::try_from(next(state) % instances.len() as u64).unwrap_or(0);
        let instance = arn("container-instance", &instances[pick]);
        body.push_str(&format!(
            "{{\"taskArn\":\"{task}\",\"containerInstanceArn\":\"{instance}\",\"padding\":\"{}\"}},",
            "x".repeat(2300)
        ));
        resources.push(TrailResource {
            resource_type: "AWS::ECS::Task".into(),
            name: task,
        });
        resources.push(TrailResource {
            resource_type: "AWS::ECS::ContainerInstance".into(),
            name: instance,
        });
    }
    body.push_str("{}]}}");
    TrailEvent {
        seq: 0,
        account: ACCOUNT.into(),
        region: REGION.into(),
        event_time_ms: 1_700_000_000_000 + n,
        event_id: format!("{:032x}", n),
        event_name: "RunTask".into(),
        event_source: "ecs.amazonaws.com".into(),
        read_only: false,
        username: "root".into(),
        access_key_id: "AKIAEXAMPLE".into(),
        resources,
        body,
    }
}

fn main() {
    let prefill: i64 = std::env::var("BERTH_TRAIL_PREFILL")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let measured: i64 = 4_096;
    let dir = std::env::temp_dir().join(format!("berth-trail-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("trail.db");
    let store = Store::open(&path).unwrap();
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let instances = instance_ids(&mut state);
    let mut n = 0;
    while n < prefill {
        let batch: Vec<TrailEvent> = (n..(n + 256).min(prefill))
            .map(|i| run_task_event(i, &instances, &mut state))
            .collect();
        store.write(|tx| tx.append_trail_events(&batch)).unwrap();
        n += batch.len() as i64;
    }
    println!("trail database with {prefill} RunTask events (24 resources each)");
    println!("| events a transaction | µs per event |");
    println!("|---:|---:|");
    for per_tx in [1_i64, 4, 16] {
        let events: Vec<TrailEvent> = (n..n + measured)
            .map(|i| run_task_event(i, &instances, &mut state))
            .collect();
        n += measured;
        let started = Instant::now();
        for batch in events.chunks(per_tx as usize) {
            store.write(|tx| tx.append_trail_events(batch)).unwrap();
        }
        let us = started.elapsed().as_secs_f64() * 1e6 / measured as f64;
        println!("| {per_tx} | {us:.0} |");
    }
    drop(store);
    let size: u64 = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    println!("files: {:.0} MiB", size as f64 / (1 << 20) as f64);
    let _ = std::fs::remove_dir_all(&dir);
}
