//! The agent with a fake in-memory control plane and the real runtime (runc, namespaces,
//! cgroups, overlayfs) running the busybox-static test image. Needs root; outside CI a test
//! without root, runc or busybox says why it skips.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_agent::stop_code_for_reason;
use berth_wire::agent::TaskAssignment;
use berth_wire::ecs::shapes as s;
use common::{Env, Fake, ready, wait_for};
use serde_json::json;

/// A task of cluster `test` running `containers` in `network` mode, with a task volume `shared`.
fn task(env: &Env, network: &str, containers: serde_json::Value) -> TaskAssignment {
    common::task(
        env,
        json!({
            "family": "fam", "revision": 1, "networkMode": network,
            "containerDefinitions": containers,
            "volumes": [{"name": "shared"}],
        }),
        json!({}),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dependent_containers_run_in_order_and_exit() {
    if !ready("dependent_containers_run_in_order_and_exit") {
        return;
    }
    let env = Env::new("test");
    let cp = Arc::new(Fake::default());
    let (stop, h) = env.start(&cp);
    let t = task(
        &env,
        "awsvpc",
        json!([
            {"name": "init", "image": "busybox", "essential": false,
             "command": ["sh", "-c", "echo made > /data/ready"],
             "mountPoints": [{"sourceVolume": "shared", "containerPath": "/data"}]},
            {"name": "app", "image": "busybox", "essential": true,
             "dependsOn": [{"containerName": "init", "condition": "SUCCESS"}],
             "command": ["sh", "-c", "test \"$(cat /data/ready)\" = made && test \"$GREETING\" = hi && exit 4"],
             "environment": [{"name": "GREETING", "value": "bye"}],
             "mountPoints": [{"sourceVolume": "shared", "containerPath": "/data"}]},
        ]),
    );
    let mut t = t;
    t.overrides = Some(serde_json::from_value(json!({
        "containerOverrides": [{"name": "app", "environment": [{"name": "GREETING", "value": "hi"}]}]
    })).unwrap());
    let arn = t.task_arn.clone();
    cp.assign(t);
    wait_for("STOPPED", Duration::from_secs(60), || {
        cp.last_report(&arn, "STOPPED").is_some()
    })
    .await;
    // ECS's whole lifecycle for an awsvpc task.
    assert_eq!(
        cp.task_statuses(&arn),
        [
            "PENDING",
            "ACTIVATING",
            "RUNNING",
            "DEACTIVATING",
            "STOPPING",
            "DEPROVISIONING",
            "STOPPED"
        ]
    );
    let pending = cp.last_report(&arn, "PENDING").unwrap();
    assert!(pending.pull_started_at.is_some());
    let running = cp.last_report(&arn, "RUNNING").unwrap();
    assert!(running.pull_stopped_at.is_some());
    assert_eq!(cp.stopped(&arn, "init"), Some((Some(0), None)));
    assert_eq!(cp.stopped(&arn, "app"), Some((Some(4), None)));
    // init had stopped before app ran.
    let changes = cp.container_changes(&arn);
    let app_running = changes
        .iter()
        .position(|c| c.0 == "app" && c.1 == "RUNNING");
    assert!(app_running.is_some(), "{changes:?}");
    let stopped = cp.last_report(&arn, "STOPPED").unwrap();
    let reason = stopped.reason.clone().unwrap();
    assert_eq!(reason, "Essential container in task exited");
    assert_eq!(stop_code_for_reason(&reason), "EssentialContainerExited");
    assert!(stopped.execution_stopped_at.is_some());
    // Cleaned up after reporting.
    wait_for("cleanup", Duration::from_secs(10), || {
        env.rt.list().unwrap().is_empty()
    })
    .await;
    let _ = stop.send(());
    h.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn essential_exit_stops_the_other_containers() {
    if !ready("essential_exit_stops_the_other_containers") {
        return;
    }
    let env = Env::new("test");
    let cp = Arc::new(Fake::default());
    let (stop, h) = env.start(&cp);
    let t = task(
        &env,
        "none",
        json!([
            {"name": "side", "image": "busybox", "essential": false, "stopTimeout": 2,
             "command": ["sleep", "1000"]},
            {"name": "main", "image": "busybox", "command": ["sh", "-c", "sleep 1; exit 3"]},
        ]),
    );
    let arn = t.task_arn.clone();
    cp.assign(t);
    wait_for("STOPPED", Duration::from_secs(60), || {
        cp.last_report(&arn, "STOPPED").is_some()
    })
    .await;
    let stopped = cp.last_report(&arn, "STOPPED").unwrap();
    assert_eq!(
        stop_code_for_reason(stopped.reason.as_deref().unwrap()),
        "EssentialContainerExited"
    );
    assert_eq!(cp.stopped(&arn, "main"), Some((Some(3), None)));
    // sleep as pid 1 ignores SIGTERM: killed after its stopTimeout.
    assert_eq!(cp.stopped(&arn, "side").map(|s| s.0), Some(Some(137)));
    let _ = stop.send(());
    h.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stop_honours_stop_timeout() {
    if !ready("stop_honours_stop_timeout") {
        return;
    }
    let env = Env::new("test");
    let cp = Arc::new(Fake::default());
    let (stop, h) = env.start(&cp);
    let t = task(
        &env,
        "host",
        json!([
            {"name": "stubborn", "image": "busybox", "stopTimeout": 3,
             "command": ["sh", "-c", "trap '' TERM; while true; do sleep 0.2; done"]},
            {"name": "polite", "image": "busybox", "stopTimeout": 30,
             "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 0.2; done"]},
        ]),
    );
    let arn = t.task_arn.clone();
    cp.assign(t);
    wait_for("RUNNING", Duration::from_secs(60), || {
        cp.last_report(&arn, "RUNNING").is_some()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let t0 = Instant::now();
    cp.stop(&arn);
    wait_for("STOPPED", Duration::from_secs(60), || {
        cp.last_report(&arn, "STOPPED").is_some()
    })
    .await;
    let took = t0.elapsed();
    assert!(took >= Duration::from_secs(3), "stopped after {took:?}");
    assert!(took < Duration::from_secs(15), "stopped after {took:?}");
    assert_eq!(cp.stopped(&arn, "stubborn").map(|s| s.0), Some(Some(137)));
    assert_eq!(cp.stopped(&arn, "polite").map(|s| s.0), Some(Some(0)));
    let stopped = cp.last_report(&arn, "STOPPED").unwrap();
    assert_eq!(stopped.reason.as_deref(), Some("Task stopped by user"));
    let _ = stop.send(());
    h.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn missing_image_cannot_be_pulled() {
    if !ready("missing_image_cannot_be_pulled") {
        return;
    }
    let env = Env::new("test");
    let cp = Arc::new(Fake::default());
    let (stop, h) = env.start(&cp);
    let t = task(
        &env,
        "host",
        json!([{"name": "ghost", "image": "127.0.0.1:9/does-not-exist:latest", "command": ["true"]}]),
    );
    let arn = t.task_arn.clone();
    cp.assign(t);
    wait_for("STOPPED", Duration::from_secs(60), || {
        cp.last_report(&arn, "STOPPED").is_some()
    })
    .await;
    let stopped = cp.last_report(&arn, "STOPPED").unwrap();
    let reason = stopped.reason.unwrap();
    assert!(reason.starts_with("CannotPullContainerError"), "{reason}");
    assert_eq!(stop_code_for_reason(&reason), "TaskFailedToStart");
    let (_, creason) = cp.stopped(&arn, "ghost").unwrap();
    assert!(creason.unwrap().starts_with("CannotPullContainerError: "));
    assert!(!cp.task_statuses(&arn).contains(&"RUNNING".to_string()));
    let _ = stop.send(());
    h.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bridge_task_whose_host_port_is_taken_fails_to_start() {
    if !ready("bridge_task_whose_host_port_is_taken_fails_to_start") {
        return;
    }
    let env = Env::new("test");
    let cp = Arc::new(Fake::default());
    let (stop, h) = env.start(&cp);
    // Something on the host already listens on the port the task wants.
    let taken = std::net::TcpListener::bind("0.0.0.0:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let t = task(
        &env,
        "bridge",
        json!([{"name": "a", "image": "busybox", "command": ["true"],
                "portMappings": [{"containerPort": 80, "hostPort": port}]}]),
    );
    let arn = t.task_arn.clone();
    cp.assign(t);
    wait_for("STOPPED", Duration::from_secs(30), || {
        cp.last_report(&arn, "STOPPED").is_some()
    })
    .await;
    let reason = cp.last_report(&arn, "STOPPED").unwrap().reason.unwrap();
    assert!(
        reason.contains(&format!("0.0.0.0:{port} failed: port is already allocated")),
        "{reason}"
    );
    assert_eq!(stop_code_for_reason(&reason), "TaskFailedToStart");
    let id = arn.rsplit('/').next().unwrap();
    wait_for("no namespace left", Duration::from_secs(10), || {
        !std::path::Path::new("/var/run/netns")
            .join(format!("berth-{id}"))
            .exists()
    })
    .await;
    drop(taken);
    let _ = stop.send(());
    h.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarted_agent_reattaches_and_stops() {
    if !ready("restarted_agent_reattaches_and_stops") {
        return;
    }
    let env = Env::new("test");
    let cp = Arc::new(Fake::default());
    // The first agent runs on its own runtime, dropped abruptly (as kill -9 would).
    let first = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let agent = env.agent(cp.clone());
    first.spawn(async move { agent.run(std::future::pending()).await });
    let t = task(
        &env,
        "none",
        json!([{"name": "web", "image": "busybox", "stopTimeout": 2, "command": ["sleep", "1000"]}]),
    );
    let arn = t.task_arn.clone();
    cp.assign(t);
    wait_for("RUNNING", Duration::from_secs(60), || {
        cp.last_report(&arn, "RUNNING").is_some()
    })
    .await;
    first.shutdown_background();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The container outlived the agent.
    let list = env.rt.list().unwrap();
    assert_eq!(list.len(), 1);
    assert!(matches!(
        list[0].1,
        berth_runtime::ContainerState::Running { .. }
    ));
    // A new agent picks the task up again and StopTask still stops it.
    let (stop, h) = env.start(&cp);
    cp.stop(&arn);
    wait_for("STOPPED", Duration::from_secs(60), || {
        cp.last_report(&arn, "STOPPED").is_some()
    })
    .await;
    assert_eq!(cp.stopped(&arn, "web").map(|s| s.0), Some(Some(137)));
    assert_eq!(
        cp.task_statuses(&arn),
        ["PENDING", "RUNNING", "STOPPING", "STOPPED"]
    );
    wait_for("cleanup", Duration::from_secs(10), || {
        env.rt.list().unwrap().is_empty()
    })
    .await;
    let _ = stop.send(());
    h.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn healthy_dependency_gates_start_and_health_is_reported() {
    if !ready("healthy_dependency_gates_start_and_health_is_reported") {
        return;
    }
    let env = Env::new("test");
    let cp = Arc::new(Fake::default());
    let (stop, h) = env.start(&cp);
    let t = task(
        &env,
        "awsvpc",
        json!([
            {"name": "db", "image": "busybox", "essential": true, "stopTimeout": 1,
             "healthCheck": {"command": ["CMD-SHELL", "test -f /tmp/ok"], "interval": 1, "timeout": 2, "retries": 2},
             "command": ["sh", "-c", "sleep 1; touch /tmp/ok; sleep 1000"]},
            {"name": "app", "image": "busybox", "essential": false,
             "dependsOn": [{"containerName": "db", "condition": "HEALTHY"}],
             "command": ["true"]},
        ]),
    );
    let arn = t.task_arn.clone();
    cp.assign(t);
    wait_for("app exit", Duration::from_secs(60), || {
        cp.stopped(&arn, "app").is_some()
    })
    .await;
    assert_eq!(cp.stopped(&arn, "app"), Some((Some(0), None)));
    let health = cp.state.lock().unwrap().health.clone();
    let last = health.last().unwrap();
    assert_eq!(last.health_status, s::HealthStatus::Healthy);
    assert_eq!(last.containers[0].container_name, "db");
    // A non-essential exit does not stop the task.
    assert!(cp.last_report(&arn, "STOPPED").is_none());
    cp.stop(&arn);
    wait_for("STOPPED", Duration::from_secs(30), || {
        cp.last_report(&arn, "STOPPED").is_some()
    })
    .await;
    let _ = stop.send(());
    h.await.unwrap();
}
