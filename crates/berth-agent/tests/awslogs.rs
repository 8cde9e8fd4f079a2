//! The awslogs driver with the real runtime and an in-memory CloudWatch Logs (the shared
//! `Fake`): a container's output reaches its stream complete and in order (multiline events
//! grouped, stdout and stderr merged), a missing log group fails the container's start as
//! Docker's driver does, and output written while the Logs service is down and the agent is
//! restarted arrives exactly once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{Env, Fake, ready, wait_for};
use serde_json::json;

fn logs_task(
    env: &Env,
    command: &str,
    options: serde_json::Value,
) -> berth_wire::agent::TaskAssignment {
    common::task(
        env,
        json!({
            "family": "logs", "revision": 1, "networkMode": "none",
            "containerDefinitions": [{
                "name": "app", "image": "busybox", "essential": true,
                "command": ["sh", "-c", command],
                "logConfiguration": {"logDriver": "awslogs", "options": options},
            }],
        }),
        json!({}),
    )
}

fn task_id(arn: &str) -> String {
    arn.rsplit('/').next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn container_output_reaches_its_stream_in_order() {
    if !ready("container_output_reaches_its_stream_in_order") {
        return;
    }
    let env = Env::new("logs");
    let cp = Arc::new(Fake::default());
    let (stop, h) = env.start(&cp);
    let script = "echo '2024-05-01 INFO starting'; \
        echo '2024-05-01 ERROR boom' ; echo '  at a()'; echo '  at b()'; \
        echo '2024-05-01 WARN to stderr' >&2; sleep 0.3; \
        for i in $(seq 1 2000); do echo \"2024-05-01 INFO line $i\"; done; \
        echo '2024-05-01 INFO done'";
    let t = logs_task(
        &env,
        script,
        json!({"awslogs-group": "/ecs/logs", "awslogs-region": "us-east-1",
               "awslogs-stream-prefix": "ecs", "awslogs-create-group": "true",
               "awslogs-datetime-format": "%Y-%m-%d"}),
    );
    let arn = t.task_arn.clone();
    cp.assign(t);
    let record = env
        .state_dir()
        .join("tasks")
        .join(format!("{}.json", task_id(&arn)));
    wait_for("task done", Duration::from_secs(60), || {
        std::fs::read(&record)
            .ok()
            .and_then(|r| serde_json::from_slice::<serde_json::Value>(&r).ok())
            .is_some_and(|r| r["doneAtMs"].is_i64())
    })
    .await;
    let got = cp.log_messages("/ecs/logs", &format!("ecs/app/{}", task_id(&arn)));
    assert_eq!(got.len(), 2004, "{:?}", &got[..got.len().min(10)]);
    assert_eq!(got[0], "2024-05-01 INFO starting");
    assert_eq!(got[1], "2024-05-01 ERROR boom\n  at a()\n  at b()");
    assert_eq!(got[2], "2024-05-01 WARN to stderr");
    for (i, m) in got[3..2003].iter().enumerate() {
        assert_eq!(*m, format!("2024-05-01 INFO line {}", i + 1));
    }
    assert_eq!(got[2003], "2024-05-01 INFO done");
    // The cursor goes with the container.
    assert!(
        std::fs::read_dir(env.state_dir().join("awslogs"))
            .map(|d| d.count() == 0)
            .unwrap_or(true)
    );
    stop.send(()).unwrap();
    h.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_missing_log_group_fails_the_start() {
    if !ready("a_missing_log_group_fails_the_start") {
        return;
    }
    let env = Env::new("logs");
    let cp = Arc::new(Fake::default());
    let (stop, h) = env.start(&cp);
    let t = logs_task(&env, "echo hi", json!({"awslogs-group": "absent"}));
    let arn = t.task_arn.clone();
    cp.assign(t);
    wait_for("STOPPED", Duration::from_secs(60), || {
        cp.last_report(&arn, "STOPPED").is_some()
    })
    .await;
    let (_, reason) = cp.stopped(&arn, "app").unwrap();
    assert_eq!(
        reason.as_deref(),
        Some(
            "CannotStartContainerError: failed to initialize logging driver: failed to create Cloudwatch log stream: ResourceNotFoundException: The specified log group does not exist."
        )
    );
    let t = logs_task(
        &env,
        "echo hi",
        json!({"awslogs-group": "g", "mode": "fast"}),
    );
    let arn = t.task_arn.clone();
    cp.assign(t);
    wait_for("STOPPED", Duration::from_secs(60), || {
        cp.last_report(&arn, "STOPPED").is_some()
    })
    .await;
    let (_, reason) = cp.stopped(&arn, "app").unwrap();
    assert_eq!(
        reason.as_deref(),
        Some(
            "CannotStartContainerError: failed to initialize logging driver: logger: logging mode not supported: fast"
        )
    );
    stop.send(()).unwrap();
    h.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn output_during_an_outage_and_a_restart_arrives_once() {
    if !ready("output_during_an_outage_and_a_restart_arrives_once") {
        return;
    }
    let env = Env::new("logs");
    let cp = Arc::new(Fake::default());
    let (stop, h) = env.start(&cp);
    let t = logs_task(
        &env,
        "seq 1 20000; sleep 2; seq 20001 30000",
        json!({"awslogs-group": "g", "awslogs-create-group": "true"}),
    );
    let arn = t.task_arn.clone();
    let stream = format!("{}-app", task_id(&arn));
    cp.assign(t);
    // Some output ships, then the Logs service goes away and the agent restarts.
    wait_for("first events", Duration::from_secs(60), || {
        !cp.log_messages("g", &stream).is_empty()
    })
    .await;
    cp.state.lock().unwrap().logs_down = true;
    stop.send(()).unwrap();
    h.await.unwrap();
    let (stop, h) = env.start(&cp);
    tokio::time::sleep(Duration::from_millis(500)).await;
    cp.state.lock().unwrap().logs_down = false;
    wait_for("all events", Duration::from_secs(60), || {
        cp.log_messages("g", &stream).len() >= 30000
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let want: Vec<String> = (1..=30000).map(|i| i.to_string()).collect();
    assert_eq!(cp.log_messages("g", &stream), want);
    stop.send(()).unwrap();
    h.await.unwrap();
}
