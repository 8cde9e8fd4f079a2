//! The task metadata endpoint with the real runtime: busybox containers in `awsvpc` and
//! `host` mode fetch `$ECS_CONTAINER_METADATA_URI_V4/task` (and the container and stats
//! documents) with wget and exit 0 only when the TaskARN is theirs; a `none` container gets
//! no URI; the host cannot read an awsvpc task's metadata; the task's link is removed when
//! it stops. Needs root; outside CI a test without root, runc or busybox says why it skips.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use berth_agent::TaskRecord;
use berth_wire::agent::TaskAssignment;
use serde_json::json;

use common::{Env, Fake, ready, wait_for};

/// A task of cluster `meta` running `containers` in `network` mode (512 CPU units, 256 MiB).
fn task(env: &Env, network: &str, containers: serde_json::Value) -> TaskAssignment {
    common::task(
        env,
        json!({
            "family": "meta", "revision": 2, "networkMode": network,
            "containerDefinitions": containers,
        }),
        json!({"cpu": "512", "memory": "256"}),
    )
}

/// The shell script a container runs: exit 0 only when every document checks out.
fn checker(task_arn: &str) -> String {
    format!(
        r#"u="$ECS_CONTAINER_METADATA_URI_V4"; test -n "$u" || exit 10
test "$ECS_CONTAINER_METADATA_URI" = "$(echo "$u" | sed s,/v4/,/v3/,)" || exit 11
wget -q -O /tmp/task "$u/task" || exit 12
grep -q '"TaskARN":"{task_arn}"' /tmp/task || exit 13
grep -q '"Family":"meta"' /tmp/task || exit 14
wget -q -O /tmp/c "$u" || exit 15
grep -q '"Name":"app"' /tmp/c || exit 16
grep -q '"KnownStatus":"RUNNING"' /tmp/c || exit 17
wget -q -O /tmp/s "$u/stats" || exit 18
grep -q '"total_usage"' /tmp/s || exit 19
wget -q -O /tmp/ts "$u/task/stats" || exit 20
exit 0"#
    )
}

/// A GET from the host namespace: the HTTP status line.
fn host_get(path: &str) -> String {
    let mut s = std::net::TcpStream::connect(("169.254.170.2", 80)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: 169.254.170.2\r\n\r\n").unwrap();
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.lines().next().unwrap_or_default().to_string()
}

fn record(env: &Env, arn: &str) -> TaskRecord {
    let id = arn.rsplit('/').next().unwrap();
    let data = std::fs::read(env.state_dir().join("tasks").join(format!("{id}.json"))).unwrap();
    serde_json::from_slice(&data).unwrap()
}

async fn run_checker(network: &str) {
    let env = Env::new("meta");
    let cp = Arc::new(Fake::default());
    let (stop, h) = env.start(&cp);
    let mut t = task(&env, network, json!([]));
    let arn = t.task_arn.clone();
    t.task_definition.container_definitions = Some(
        serde_json::from_value(json!([
            {"name": "app", "image": "busybox", "essential": false,
             "command": ["sh", "-c", checker(&arn)]},
            {"name": "keep", "image": "busybox", "essential": true,
             "command": ["sleep", "120"], "stopTimeout": 2},
        ]))
        .unwrap(),
    );
    cp.assign(t);
    wait_for("app to exit", Duration::from_secs(60), || {
        cp.stopped(&arn, "app").is_some()
    })
    .await;
    let app_log = env
        .rt
        .state_dir(&format!("{}-app", arn.rsplit('/').next().unwrap()))
        .map(|d| std::fs::read_to_string(d.join("stderr.log")).unwrap_or_default())
        .unwrap_or_default();
    assert_eq!(
        cp.stopped(&arn, "app"),
        Some((Some(0), None)),
        "{network}: {app_log}"
    );
    let keep_id = record(&env, &arn)
        .containers
        .iter()
        .find(|c| c.name == "keep")
        .and_then(|c| c.metadata_id.clone())
        .unwrap();
    let from_host = host_get(&format!("/v4/{keep_id}/task"));
    if network == "awsvpc" {
        // The host (or another task) is not the task: no metadata.
        assert!(from_host.contains("404"), "{from_host}");
    } else {
        assert!(from_host.contains("200"), "{from_host}");
    }
    assert!(host_get("/v4/not-a-container/task").contains("404"));
    cp.stop(&arn);
    wait_for("STOPPED", Duration::from_secs(60), || {
        cp.task_statuses(&arn).iter().any(|s| s == "STOPPED")
    })
    .await;
    let veth = berth_agent::metadata::net::host_veth(arn.rsplit('/').next().unwrap());
    wait_for("link removal", Duration::from_secs(10), || {
        !Path::new("/sys/class/net").join(&veth).exists()
    })
    .await;
    let _ = stop.send(());
    h.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn awsvpc_container_reads_its_task_metadata() {
    if !ready("awsvpc_container_reads_its_task_metadata") {
        return;
    }
    run_checker("awsvpc").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn host_container_reads_its_task_metadata() {
    if !ready("host_container_reads_its_task_metadata") {
        return;
    }
    run_checker("host").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn none_container_gets_no_endpoint() {
    if !ready("none_container_gets_no_endpoint") {
        return;
    }
    let env = Env::new("meta");
    let cp = Arc::new(Fake::default());
    let (stop, h) = env.start(&cp);
    let t = task(
        &env,
        "none",
        json!([{"name": "app", "image": "busybox", "essential": true,
                "command": ["sh", "-c", "test -z \"$ECS_CONTAINER_METADATA_URI_V4\" && test -z \"$ECS_CONTAINER_METADATA_URI\""]}]),
    );
    let arn = t.task_arn.clone();
    cp.assign(t);
    wait_for("STOPPED", Duration::from_secs(60), || {
        cp.task_statuses(&arn).iter().any(|s| s == "STOPPED")
    })
    .await;
    assert_eq!(cp.stopped(&arn, "app"), Some((Some(0), None)));
    let _ = stop.send(());
    h.await.unwrap();
}
