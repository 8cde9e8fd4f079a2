//! What the agent's integration tests share: the readiness check, an in-memory control plane
//! (`Fake`), a test environment with the real runtime and the busybox test image (`Env`), task
//! assignments and a waiter. Each test file uses what it needs.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use berth_agent::{
    Agent, AgentConfig, BoxFuture, ControlPlane, ControlPlaneError, LogsCall, LogsReply, LogsScope,
    TaskHealthReport,
};
use berth_runtime::{ImageStore, Runtime, RuntimeConfig};
use berth_wire::agent::{PollRequest, PollResponse, TaskAssignment};
use berth_wire::ecs::shapes as s;
use serde_json::json;

pub fn ready(test: &str) -> bool {
    let ci = std::env::var_os("CI").is_some();
    let why = if berth_runtime::geteuid() != 0 {
        Some("needs root (namespaces, mounts, veths, cgroups)")
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

/// The in-memory control plane: a task set with a sequence number, and every report kept.
#[derive(Default)]
pub struct Fake {
    pub state: Mutex<FakeState>,
    changed: tokio::sync::Notify,
}

#[derive(Default)]
pub struct FakeState {
    pub seq: i64,
    pub tasks: Vec<TaskAssignment>,
    pub task_reports: Vec<s::SubmitTaskStateChangeRequest>,
    pub container_reports: Vec<s::SubmitContainerStateChangeRequest>,
    pub health: Vec<TaskHealthReport>,
    /// CloudWatch Logs: groups, and the events of each (group, stream).
    pub log_groups: std::collections::BTreeSet<String>,
    pub log_streams: std::collections::BTreeMap<(String, String), Vec<(i64, String)>>,
    /// While set, Logs calls fail as if the control plane were unreachable.
    pub logs_down: bool,
    pub put_log_events_calls: usize,
}

impl Fake {
    pub fn assign(&self, a: TaskAssignment) {
        let mut st = self.state.lock().unwrap();
        st.tasks.retain(|t| t.task_arn != a.task_arn);
        st.tasks.push(a);
        st.seq += 1;
        drop(st);
        self.changed.notify_waiters();
    }

    pub fn stop(&self, arn: &str) {
        let mut st = self.state.lock().unwrap();
        for t in st.tasks.iter_mut().filter(|t| t.task_arn == arn) {
            t.desired_status = "STOPPED".into();
            t.stopped_reason = Some("Task stopped by user".into());
        }
        st.seq += 1;
        drop(st);
        self.changed.notify_waiters();
    }

    pub fn task_statuses(&self, arn: &str) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .task_reports
            .iter()
            .filter(|r| r.task.as_deref() == Some(arn))
            .filter_map(|r| r.status.clone())
            .collect()
    }

    pub fn last_report(&self, arn: &str, status: &str) -> Option<s::SubmitTaskStateChangeRequest> {
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
    pub fn container_changes(
        &self,
        arn: &str,
    ) -> Vec<(String, String, Option<i32>, Option<String>)> {
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

    /// The messages of a log stream, in order.
    pub fn log_messages(&self, group: &str, stream: &str) -> Vec<String> {
        self.state
            .lock()
            .unwrap()
            .log_streams
            .get(&(group.to_string(), stream.to_string()))
            .map(|v| v.iter().map(|(_, m)| m.clone()).collect())
            .unwrap_or_default()
    }

    pub fn stopped(&self, arn: &str, name: &str) -> Option<(Option<i32>, Option<String>)> {
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

    fn logs(
        &self,
        _scope: LogsScope,
        call: LogsCall,
    ) -> BoxFuture<'_, Result<LogsReply, ControlPlaneError>> {
        Box::pin(async move {
            let mut st = self.state.lock().unwrap();
            let err = |code: &str, message: &str| ControlPlaneError::Aws {
                operation: call.operation().into(),
                status: 400,
                code: code.into(),
                message: message.into(),
            };
            if st.logs_down {
                return Err(ControlPlaneError::Unreachable {
                    endpoint: "fake".into(),
                    reason: "connection refused".into(),
                });
            }
            match &call {
                LogsCall::CreateLogGroup(r) => {
                    if !st.log_groups.insert(r.log_group_name.clone()) {
                        return Err(err(
                            "ResourceAlreadyExistsException",
                            "The specified log group already exists",
                        ));
                    }
                    Ok(LogsReply::Done)
                }
                LogsCall::CreateLogStream(r) => {
                    if !st.log_groups.contains(&r.log_group_name) {
                        return Err(err(
                            "ResourceNotFoundException",
                            "The specified log group does not exist.",
                        ));
                    }
                    st.log_streams
                        .entry((r.log_group_name.clone(), r.log_stream_name.clone()))
                        .or_default();
                    Ok(LogsReply::Done)
                }
                LogsCall::PutLogEvents(r) => {
                    st.put_log_events_calls += 1;
                    let Some(events) = st
                        .log_streams
                        .get_mut(&(r.log_group_name.clone(), r.log_stream_name.clone()))
                    else {
                        return Err(err(
                            "ResourceNotFoundException",
                            "The specified log stream does not exist.",
                        ));
                    };
                    assert!(
                        r.log_events
                            .windows(2)
                            .all(|w| w[0].timestamp <= w[1].timestamp)
                    );
                    events.extend(
                        r.log_events
                            .iter()
                            .map(|e| (e.timestamp, e.message.clone())),
                    );
                    Ok(LogsReply::PutLogEvents(Default::default()))
                }
                LogsCall::GetLogEvents(r) => {
                    let group = r.log_group_name.clone().unwrap_or_default();
                    let Some(events) = st.log_streams.get(&(group, r.log_stream_name.clone()))
                    else {
                        return Err(err(
                            "ResourceNotFoundException",
                            "The specified log stream does not exist.",
                        ));
                    };
                    let from: usize = r.next_token.as_deref().map_or(0, |t| t.parse().unwrap());
                    let page: Vec<_> = events
                        .iter()
                        .filter(|(t, _)| *t >= r.start_time.unwrap_or(0))
                        .skip(from)
                        .take(1000)
                        .map(|(t, m)| berth_wire::logs::shapes::OutputLogEvent {
                            timestamp: Some(*t),
                            message: Some(m.clone()),
                            ingestion_time: None,
                        })
                        .collect();
                    Ok(LogsReply::GetLogEvents(
                        berth_wire::logs::shapes::GetLogEventsResponse {
                            next_forward_token: Some((from + page.len()).to_string()),
                            events: Some(page),
                            next_backward_token: None,
                        },
                    ))
                }
            }
        })
    }
}

/// A state directory, a runtime and an image store with the test image as busybox:latest.
pub struct Env {
    /// The cluster's name (`test`, `meta`), also the first letter of task ids.
    pub cluster: &'static str,
    /// Distinguishes this environment's tasks (and so their network namespaces) from those of
    /// the other tests running in the same process.
    id: u32,
    dir: tempfile::TempDir,
    pub rt: Arc<Runtime>,
    pub images: Arc<ImageStore>,
}

impl Env {
    pub fn new(cluster: &'static str) -> Env {
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
            cluster,
            id: COUNTER.fetch_add(1, Ordering::Relaxed),
            rt: Arc::new(Runtime::new(cfg).unwrap()),
            images: Arc::new(images),
            dir,
        }
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("agent")
    }

    /// The beginning of this environment's task ids (`<cluster letter><pid>e<env id>`).
    fn task_id_prefix(&self) -> String {
        format!("{}{}e{}", &self.cluster[..1], std::process::id(), self.id)
    }

    pub fn cluster_arn(&self) -> String {
        format!(
            "arn:aws:ecs:us-east-1:000000000000:cluster/{}",
            self.cluster
        )
    }

    /// Starts the agent in the background; the returned sender stops it.
    pub fn start(
        &self,
        cp: &Arc<Fake>,
    ) -> (
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    ) {
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let agent = self.agent(cp.clone());
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

    pub fn agent(&self, cp: Arc<Fake>) -> Agent {
        let mut cfg = AgentConfig::new(
            self.state_dir(),
            self.cluster_arn(),
            format!(
                "arn:aws:ecs:us-east-1:000000000000:container-instance/{}/i1",
                self.cluster
            ),
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
        // A failed test leaves its task namespaces (and so their metadata links) behind.
        // Only this environment's: other tests of this process may still be running theirs.
        let mine = format!("berth-{}x", self.task_id_prefix());
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

pub static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A task of `env`'s cluster to run `definition` (task definition members: family, revision,
/// networkMode, containerDefinitions, …), with `extra` task members (cpu, memory, …).
pub fn task(env: &Env, definition: serde_json::Value, extra: serde_json::Value) -> TaskAssignment {
    let id = format!(
        "{}x{}",
        env.task_id_prefix(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let mut t = json!({
        "taskArn": format!("arn:aws:ecs:us-east-1:000000000000:task/{}/{id}", env.cluster),
        "clusterArn": env.cluster_arn(),
        "desiredStatus": "RUNNING",
        "lastStatus": "PROVISIONING",
        "taskDefinition": definition,
        "containers": [],
    });
    if let (Some(t), Some(extra)) = (t.as_object_mut(), extra.as_object()) {
        t.extend(extra.clone());
    }
    serde_json::from_value(t).unwrap()
}

pub async fn wait_for(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
