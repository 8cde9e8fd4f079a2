//! The agent with a fake in-memory control plane and the real runtime (runc, namespaces,
//! cgroups, overlayfs) running the busybox-static test image. Needs root; outside CI a test
//! without root, runc or busybox says why it skips.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_agent::{
    Agent, AgentConfig, BoxFuture, ControlPlane, ControlPlaneError, TaskHealthReport,
    stop_code_for_reason,
};
use berth_runtime::{ImageStore, Runtime, RuntimeConfig};
use berth_wire::agent::{PollRequest, PollResponse, TaskAssignment};
use berth_wire::ecs::shapes as s;
use serde_json::json;

const CLUSTER: &str = "arn:aws:ecs:us-east-1:000000000000:cluster/test";

fn ready(test: &str) -> bool {
    let ci = std::env::var_os("CI").is_some();
    let why = if berth_runtime::geteuid() != 0 {
        Some("needs root (namespaces, mounts, cgroups)")
    } else if !Path::new("/bin/busybox").exists() {
        Some("/bin/busybox is missing: apt-get install -y busybox-static")
    } else if std::process::Command::new("runc")
        .arg("--version")
        .output()
        .is_err()
    {
        Some("runc is missing: apt-get install -y runc")
    } else {
        None
    };
    match why {
        None => true,
        Some(w) if ci => panic!("{test}: {w}"),
        Some(w) => {
            eprintln!("skipping {test}: {w}");
            false
        }
    }
}

/// The in-memory control plane: a task set with a sequence number, and every report kept.
#[derive(Default)]
struct Fake {
    state: Mutex<FakeState>,
    changed: tokio::sync::Notify,
}

#[derive(Default)]
struct FakeState {
    seq: i64,
    tasks: Vec<TaskAssignment>,
    task_reports: Vec<s::SubmitTaskStateChangeRequest>,
    container_reports: Vec<s::SubmitContainerStateChangeRequest>,
    health: Vec<TaskHealthReport>,
}

impl Fake {
    fn assign(&self, a: TaskAssignment) {
        let mut st = self.state.lock().unwrap();
        st.tasks.retain(|t| t.task_arn != a.task_arn);
        st.tasks.push(a);
        st.seq += 1;
        drop(st);
        self.changed.notify_waiters();
    }

    fn stop(&self, arn: &str) {
        let mut st = self.state.lock().unwrap();
        for t in st.tasks.iter_mut().filter(|t| t.task_arn == arn) {
            t.desired_status = "STOPPED".into();
            t.stopped_reason = Some("Task stopped by user".into());
        }
        st.seq += 1;
        drop(st);
        self.changed.notify_waiters();
    }

    fn task_statuses(&self, arn: &str) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .task_reports
            .iter()
            .filter(|r| r.task.as_deref() == Some(arn))
            .filter_map(|r| r.status.clone())
            .collect()
    }

    fn last_report(&self, arn: &str, status: &str) -> Option<s::SubmitTaskStateChangeRequest> {
        self.state
            .lock()
            .unwrap()
            .task_reports
            .iter()
            .rev()
            .find(|r| r.task.as_deref() == Some(arn) && r.status.as_deref() == Some(status))
            .cloned()
    }

    /// Every container change of a task, from task and container reports, in order.
    fn container_changes(&self, arn: &str) -> Vec<(String, String, Option<i32>, Option<String>)> {
        let st = self.state.lock().unwrap();
        let mut out = Vec::new();
        // Task reports and container reports interleave; both are kept in order of arrival
        // per kind, which is enough for the checks below.
        for r in st
            .task_reports
            .iter()
            .filter(|r| r.task.as_deref() == Some(arn))
        {
            for c in r.containers.iter().flatten() {
                out.push((
                    c.container_name.clone().unwrap_or_default(),
                    c.status.clone().unwrap_or_default(),
                    c.exit_code,
                    c.reason.clone(),
                ));
            }
        }
        for c in st
            .container_reports
            .iter()
            .filter(|r| r.task.as_deref() == Some(arn))
        {
            out.push((
                c.container_name.clone().unwrap_or_default(),
                c.status.clone().unwrap_or_default(),
                c.exit_code,
                c.reason.clone(),
            ));
        }
        out
    }

    fn stopped(&self, arn: &str, name: &str) -> Option<(Option<i32>, Option<String>)> {
        self.container_changes(arn)
            .into_iter()
            .find(|(n, st, _, _)| n == name && st == "STOPPED")
            .map(|(_, _, code, reason)| (code, reason))
    }
}

impl ControlPlane for Fake {
    fn register(
        &self,
        _req: s::RegisterContainerInstanceRequest,
    ) -> BoxFuture<'_, Result<s::RegisterContainerInstanceResponse, ControlPlaneError>> {
        Box::pin(async { Ok(s::RegisterContainerInstanceResponse::default()) })
    }

    fn poll(&self, req: PollRequest) -> BoxFuture<'_, Result<PollResponse, ControlPlaneError>> {
        Box::pin(async move {
            let wait = Duration::from_secs(u64::from(req.wait_seconds.unwrap_or(1)));
            let deadline = tokio::time::Instant::now() + wait;
            loop {
                let notified = self.changed.notified();
                {
                    let st = self.state.lock().unwrap();
                    if st.seq > req.acked_seq || tokio::time::Instant::now() >= deadline {
                        return Ok(PollResponse {
                            seq: st.seq,
                            tasks: st.tasks.clone(),
                        });
                    }
                }
                let _ = tokio::time::timeout_at(deadline, notified).await;
            }
        })
    }

    fn submit_task_state(
        &self,
        req: s::SubmitTaskStateChangeRequest,
    ) -> BoxFuture<'_, Result<(), ControlPlaneError>> {
        Box::pin(async move {
            let mut st = self.state.lock().unwrap();
            if req.status.as_deref() == Some("STOPPED") {
                let arn = req.task.clone().unwrap_or_default();
                st.tasks.retain(|t| t.task_arn != arn);
                st.seq += 1;
            }
            st.task_reports.push(req);
            Ok(())
        })
    }

    fn submit_container_state(
        &self,
        req: s::SubmitContainerStateChangeRequest,
    ) -> BoxFuture<'_, Result<(), ControlPlaneError>> {
        Box::pin(async move {
            self.state.lock().unwrap().container_reports.push(req);
            Ok(())
        })
    }

    fn submit_task_health(
        &self,
        report: TaskHealthReport,
    ) -> BoxFuture<'_, Result<(), ControlPlaneError>> {
        Box::pin(async move {
            self.state.lock().unwrap().health.push(report);
            Ok(())
        })
    }
}

/// A state directory, a runtime and an image store with the test image as busybox:latest.
struct Env {
    dir: tempfile::TempDir,
    rt: Arc<Runtime>,
    images: Arc<ImageStore>,
}

impl Env {
    fn new() -> Env {
        let dir = tempfile::tempdir().unwrap();
        let images = ImageStore::open(dir.path().join("images")).unwrap();
        let tar = dir.path().join("busybox.tar");
        let script = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../tests/images/make-busybox-image.sh"
        );
        let out = std::process::Command::new("sh")
            .arg(script)
            .arg(&tar)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        images.load(&tar).unwrap();
        let mut cfg = RuntimeConfig::new(dir.path().join("containers"));
        cfg.shim_program = PathBuf::from(env!("CARGO_BIN_EXE_berth-agent-test-shim"));
        cfg.shim_args = Vec::new();
        Env {
            rt: Arc::new(Runtime::new(cfg).unwrap()),
            images: Arc::new(images),
            dir,
        }
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("agent")
    }

    fn agent(&self, cp: Arc<Fake>) -> Agent {
        let mut cfg = AgentConfig::new(
            self.state_dir(),
            CLUSTER,
            "arn:aws:ecs:us-east-1:000000000000:container-instance/test/i1",
        );
        cfg.poll_wait_seconds = 1;
        Agent::new(cfg, cp, self.rt.clone(), self.images.clone())
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Ok(list) = self.rt.list() {
            for (spec, _) in list {
                let _ = self.rt.remove(&spec.id);
            }
        }
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn task(network: &str, containers: serde_json::Value) -> TaskAssignment {
    let id = format!(
        "t{}x{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    serde_json::from_value(json!({
        "taskArn": format!("arn:aws:ecs:us-east-1:000000000000:task/test/{id}"),
        "clusterArn": CLUSTER,
        "desiredStatus": "RUNNING",
        "lastStatus": "PROVISIONING",
        "taskDefinition": {
            "family": "fam", "revision": 1, "networkMode": network,
            "containerDefinitions": containers,
            "volumes": [{"name": "shared"}],
        },
        "containers": [],
    }))
    .unwrap()
}

async fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Starts the agent in the background; the returned sender stops it.
fn start(
    env: &Env,
    cp: &Arc<Fake>,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let agent = env.agent(cp.clone());
    let h = tokio::spawn(async move {
        agent
            .run(async move {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    (tx, h)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dependent_containers_run_in_order_and_exit() {
    if !ready("dependent_containers_run_in_order_and_exit") {
        return;
    }
    let env = Env::new();
    let cp = Arc::new(Fake::default());
    let (stop, h) = start(&env, &cp);
    let t = task(
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
    let env = Env::new();
    let cp = Arc::new(Fake::default());
    let (stop, h) = start(&env, &cp);
    let t = task(
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
    let env = Env::new();
    let cp = Arc::new(Fake::default());
    let (stop, h) = start(&env, &cp);
    let t = task(
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
    let env = Env::new();
    let cp = Arc::new(Fake::default());
    let (stop, h) = start(&env, &cp);
    let t = task(
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
async fn bridge_network_fails_to_start() {
    if !ready("bridge_network_fails_to_start") {
        return;
    }
    let env = Env::new();
    let cp = Arc::new(Fake::default());
    let (stop, h) = start(&env, &cp);
    let t = task(
        "bridge",
        json!([{"name": "a", "image": "busybox", "command": ["true"]}]),
    );
    let arn = t.task_arn.clone();
    cp.assign(t);
    wait_for("STOPPED", Duration::from_secs(30), || {
        cp.last_report(&arn, "STOPPED").is_some()
    })
    .await;
    let reason = cp.last_report(&arn, "STOPPED").unwrap().reason.unwrap();
    assert!(reason.contains("bridge"), "{reason}");
    assert_eq!(stop_code_for_reason(&reason), "TaskFailedToStart");
    let _ = stop.send(());
    h.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn restarted_agent_reattaches_and_stops() {
    if !ready("restarted_agent_reattaches_and_stops") {
        return;
    }
    let env = Env::new();
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
    let (stop, h) = start(&env, &cp);
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
    let env = Env::new();
    let cp = Arc::new(Fake::default());
    let (stop, h) = start(&env, &cp);
    let t = task(
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
