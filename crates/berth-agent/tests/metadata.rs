//! The task metadata endpoint with the real runtime: busybox containers in `awsvpc` and
//! `host` mode fetch `$ECS_CONTAINER_METADATA_URI_V4/task` (and the container and stats
//! documents) with wget and exit 0 only when the TaskARN is theirs; a `none` container gets
//! no URI; the host cannot read an awsvpc task's metadata; the task's link is removed when
//! it stops. Needs root; outside CI a test without root, runc or busybox says why it skips.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_agent::{
    Agent, AgentConfig, BoxFuture, ControlPlane, ControlPlaneError, TaskHealthReport, TaskRecord,
};
use berth_runtime::{ImageStore, Runtime, RuntimeConfig};
use berth_wire::agent::{PollRequest, PollResponse, TaskAssignment};
use berth_wire::ecs::shapes as s;
use serde_json::json;

const CLUSTER: &str = "arn:aws:ecs:us-east-1:000000000000:cluster/meta";

fn ready(test: &str) -> bool {
    let ci = std::env::var_os("CI").is_some();
    let why = if berth_runtime::geteuid() != 0 {
        Some("needs root (namespaces, veths, cgroups)")
    } else if !Path::new("/bin/busybox").exists() {
        Some("/bin/busybox is missing: apt-get install -y busybox-static")
    } else if std::process::Command::new("runc")
        .arg("--version")
        .output()
        .is_err()
    {
        Some("runc is missing: apt-get install -y runc")
    } else if std::process::Command::new("ip").arg("-V").output().is_err() {
        Some("ip is missing: apt-get install -y iproute2")
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

    fn task_stopped(&self, arn: &str) -> bool {
        self.state
            .lock()
            .unwrap()
            .task_reports
            .iter()
            .any(|r| r.task.as_deref() == Some(arn) && r.status.as_deref() == Some("STOPPED"))
    }

    /// The exit code of container `name`, once reported STOPPED.
    fn exit(&self, arn: &str, name: &str) -> Option<(Option<i32>, Option<String>)> {
        let st = self.state.lock().unwrap();
        let from_tasks = st
            .task_reports
            .iter()
            .filter(|r| r.task.as_deref() == Some(arn))
            .flat_map(|r| r.containers.iter().flatten())
            .find(|c| {
                c.container_name.as_deref() == Some(name) && c.status.as_deref() == Some("STOPPED")
            })
            .map(|c| (c.exit_code, c.reason.clone()));
        from_tasks.or_else(|| {
            st.container_reports
                .iter()
                .find(|c| {
                    c.task.as_deref() == Some(arn)
                        && c.container_name.as_deref() == Some(name)
                        && c.status.as_deref() == Some("STOPPED")
                })
                .map(|c| (c.exit_code, c.reason.clone()))
        })
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
        _report: TaskHealthReport,
    ) -> BoxFuture<'_, Result<(), ControlPlaneError>> {
        Box::pin(async { Ok(()) })
    }
}

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

    /// Starts the agent in the background; the returned sender stops it.
    fn start(
        &self,
        cp: &Arc<Fake>,
    ) -> (
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ) {
        let mut cfg = AgentConfig::new(
            self.state_dir(),
            CLUSTER,
            "arn:aws:ecs:us-east-1:000000000000:container-instance/meta/i1",
        );
        cfg.poll_wait_seconds = 1;
        let agent = Agent::new(cfg, cp.clone(), self.rt.clone(), self.images.clone());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
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
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Ok(list) = self.rt.list() {
            for (spec, _) in list {
                let _ = self.rt.remove(&spec.id);
            }
        }
        // A failed test leaves its task namespaces (and so their metadata links) behind.
        let mine = format!("berth-m{}x", std::process::id());
        for e in std::fs::read_dir("/var/run/netns")
            .into_iter()
            .flatten()
            .flatten()
        {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with(&mine) {
                let _ = std::process::Command::new("ip")
                    .args(["netns", "delete", &name])
                    .output();
            }
        }
    }
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

fn task(network: &str, containers: serde_json::Value) -> TaskAssignment {
    let id = format!(
        "m{}x{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    serde_json::from_value(json!({
        "taskArn": format!("arn:aws:ecs:us-east-1:000000000000:task/meta/{id}"),
        "clusterArn": CLUSTER,
        "desiredStatus": "RUNNING",
        "lastStatus": "PROVISIONING",
        "cpu": "512", "memory": "256",
        "taskDefinition": {
            "family": "meta", "revision": 2, "networkMode": network,
            "containerDefinitions": containers,
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
    let env = Env::new();
    let cp = Arc::new(Fake::default());
    let (stop, h) = env.start(&cp);
    let mut t = task(network, json!([]));
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
        cp.exit(&arn, "app").is_some()
    })
    .await;
    let app_log = env
        .rt
        .state_dir(&format!("{}-app", arn.rsplit('/').next().unwrap()))
        .map(|d| std::fs::read_to_string(d.join("stderr.log")).unwrap_or_default())
        .unwrap_or_default();
    assert_eq!(
        cp.exit(&arn, "app"),
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
    wait_for("STOPPED", Duration::from_secs(60), || cp.task_stopped(&arn)).await;
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
    let env = Env::new();
    let cp = Arc::new(Fake::default());
    let (stop, h) = env.start(&cp);
    let t = task(
        "none",
        json!([{"name": "app", "image": "busybox", "essential": true,
                "command": ["sh", "-c", "test -z \"$ECS_CONTAINER_METADATA_URI_V4\" && test -z \"$ECS_CONTAINER_METADATA_URI\""]}]),
    );
    let arn = t.task_arn.clone();
    cp.assign(t);
    wait_for("STOPPED", Duration::from_secs(60), || cp.task_stopped(&arn)).await;
    assert_eq!(cp.exit(&arn, "app"), Some((Some(0), None)));
    let _ = stop.send(());
    h.await.unwrap();
}
