//! The agent: registration, the poll loop over the agent channel, and a task manager per
//! assigned task. It persists each task's record under its state directory and, after a
//! restart (even `kill -9`), re-attaches to the containers its tasks left running.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use berth_runtime::{ImageStore, Runtime};
use berth_wire::agent::{PollRequest, TaskAssignment};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::control_plane::ControlPlane;
use crate::error::{Error, Result};
use crate::host::{HostFacts, RegistrationSettings};
use crate::task::{Shared, TaskManager, TaskRecord};

/// How long a stopped task's record is kept (so that a late assignment does not run it
/// again).
const TOMBSTONE_MS: i64 = 3_600_000;

/// The agent's settings.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// Where the agent keeps its records (`tasks/`, `volumes/`, `instance.json`).
    pub state_dir: PathBuf,
    /// The cluster (name or ARN).
    pub cluster: String,
    /// This host's container instance ARN (from [`register`]).
    pub container_instance_arn: String,
    /// How long a poll may be held by the control plane, seconds.
    pub poll_wait_seconds: u32,
    /// Serve the task metadata endpoint (169.254.170.2) to containers.
    pub metadata_endpoint: bool,
    /// The availability zone the metadata endpoint shows, when known.
    pub availability_zone: Option<String>,
}

impl AgentConfig {
    /// Settings with the longest poll wait.
    pub fn new(
        state_dir: impl Into<PathBuf>,
        cluster: impl Into<String>,
        container_instance_arn: impl Into<String>,
    ) -> AgentConfig {
        AgentConfig {
            state_dir: state_dir.into(),
            cluster: cluster.into(),
            container_instance_arn: container_instance_arn.into(),
            poll_wait_seconds: berth_wire::agent::MAX_WAIT_SECONDS,
            metadata_endpoint: true,
            availability_zone: None,
        }
    }
}

/// What `instance.json` in the state directory holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InstanceFile {
    cluster: String,
    container_instance_arn: String,
}

fn io_err(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io { what, path, source }
}

/// Writes `data` to `path` atomically (temporary file, then rename).
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io_err("creating directory", dir))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, data).map_err(io_err("writing", &tmp))?;
    std::fs::rename(&tmp, path).map_err(io_err("renaming into", path))
}

/// Registers this host with the control plane (once: the ARN is kept in
/// `<state dir>/instance.json`, and a restarted agent re-registers with it). Returns the
/// container instance ARN.
pub async fn register(
    cp: &dyn ControlPlane,
    state_dir: &Path,
    cluster: &str,
    settings: &RegistrationSettings,
) -> Result<String> {
    let file = state_dir.join("instance.json");
    let known: Option<InstanceFile> = std::fs::read(&file)
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok())
        .filter(|f: &InstanceFile| f.cluster == cluster);
    let req = crate::host::registration(
        cluster,
        known.map(|k| k.container_instance_arn),
        &HostFacts::detect(),
        settings,
    );
    let resp = cp.register(req).await?;
    let arn = resp
        .container_instance
        .and_then(|c| c.container_instance_arn)
        .ok_or_else(|| {
            Error::ControlPlane(crate::error::ControlPlaneError::Decode {
                operation: "RegisterContainerInstance".into(),
                reason: "no containerInstanceArn in the answer".into(),
            })
        })?;
    let data = serde_json::to_vec_pretty(&InstanceFile {
        cluster: cluster.to_string(),
        container_instance_arn: arn.clone(),
    })
    .map_err(|source| Error::State {
        path: file.clone(),
        source,
    })?;
    write_atomic(&file, &data)?;
    Ok(arn)
}

struct Managed {
    desired: watch::Sender<TaskAssignment>,
    join: JoinHandle<TaskRecord>,
}

/// The agent of one host.
pub struct Agent {
    config: AgentConfig,
    cp: Arc<dyn ControlPlane>,
    rt: Arc<Runtime>,
    images: Arc<ImageStore>,
}

/// Desired status only moves forward: once STOPPED, an assignment stays STOPPED.
fn forward(current: &TaskAssignment, mut incoming: TaskAssignment) -> TaskAssignment {
    if current.desired_status == "STOPPED" {
        incoming.desired_status = "STOPPED".into();
        if incoming.stopped_reason.is_none() {
            incoming.stopped_reason = current.stopped_reason.clone();
        }
    }
    incoming
}

impl Agent {
    /// An agent driving `rt` (containers) and `images` for the control plane `cp`.
    pub fn new(
        config: AgentConfig,
        cp: Arc<dyn ControlPlane>,
        rt: Arc<Runtime>,
        images: Arc<ImageStore>,
    ) -> Agent {
        Agent {
            config,
            cp,
            rt,
            images,
        }
    }

    fn load_records(&self) -> Vec<TaskRecord> {
        let dir = self.config.state_dir.join("tasks");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for e in entries.flatten() {
            let p = e.path();
            if p.extension().and_then(|x| x.to_str()) != Some("json") {
                continue;
            }
            match std::fs::read(&p)
                .ok()
                .map(|d| serde_json::from_slice::<TaskRecord>(&d))
            {
                Some(Ok(r)) => out.push(r),
                Some(Err(e)) => tracing::warn!(path = %p.display(), %e, "unreadable task record"),
                None => {}
            }
        }
        out
    }

    /// Runs until `shutdown` completes. Containers keep running when the agent stops; a
    /// later `run` with the same state directory picks them up again.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) -> Result<()> {
        std::fs::create_dir_all(self.config.state_dir.join("tasks"))
            .map_err(io_err("creating directory", &self.config.state_dir))?;
        let (stop_tx, stop_rx) = watch::channel(false);
        let metadata = crate::metadata::Endpoint::new(
            self.config.metadata_endpoint,
            self.rt.clone(),
            &self.config.state_dir,
            self.config.availability_zone.clone(),
        );
        let shared = Arc::new(Shared {
            metadata: metadata.clone(),
            cp: self.cp.clone(),
            rt: self.rt.clone(),
            images: self.images.clone(),
            state_dir: self.config.state_dir.clone(),
            shutdown: stop_rx,
        });
        let mut managers: HashMap<String, Managed> = HashMap::new();
        let mut tombstones: HashMap<String, i64> = HashMap::new();
        let now = berth_wire::Timestamp::now().0;
        for rec in self.load_records() {
            let arn = rec.assignment.task_arn.clone();
            match rec.done_at_ms {
                Some(t) if now - t > TOMBSTONE_MS => {
                    let _ = std::fs::remove_file(crate::task::record_path(
                        &self.config.state_dir,
                        &arn,
                    ));
                }
                Some(t) => {
                    tombstones.insert(arn, t);
                }
                None => {
                    tracing::info!(task = %arn, "re-attaching task");
                    managers.insert(arn, spawn(&shared, rec));
                }
            }
        }
        self.log_orphans(&managers);
        let keep: std::collections::HashSet<String> = managers
            .keys()
            .map(|arn| crate::plan::task_id(arn))
            .collect();
        metadata.remove_stale(&keep);

        tokio::pin!(shutdown);
        let mut acked = 0i64;
        let mut backoff = Duration::from_millis(200);
        loop {
            let req = PollRequest {
                cluster: self.config.cluster.clone(),
                container_instance_arn: self.config.container_instance_arn.clone(),
                acked_seq: acked,
                wait_seconds: Some(self.config.poll_wait_seconds),
                changes_only: false,
            };
            tokio::select! {
                _ = &mut shutdown => break,
                r = self.cp.poll(req) => match r {
                    Ok(resp) => {
                        backoff = Duration::from_millis(200);
                        reap(&mut managers, &mut tombstones).await;
                        apply(&shared, &mut managers, &tombstones, resp.tasks);
                        acked = resp.seq;
                    }
                    Err(e) => {
                        tracing::warn!(%e, ?backoff, "poll failed");
                        tokio::select! {
                            _ = &mut shutdown => break,
                            _ = tokio::time::sleep(backoff) => {}
                        }
                        backoff = (backoff * 2).min(Duration::from_secs(10));
                    }
                }
            }
            reap(&mut managers, &mut tombstones).await;
        }
        tracing::info!("agent stopping; containers keep running");
        let _ = stop_tx.send(true);
        for (_, m) in managers {
            let _ = m.join.await;
        }
        Ok(())
    }

    fn log_orphans(&self, managers: &HashMap<String, Managed>) {
        let Ok(list) = self.rt.list() else { return };
        for (spec, _) in list {
            if let Some(arn) = spec.labels.get("com.amazonaws.ecs.task-arn")
                && !managers.contains_key(arn)
            {
                tracing::warn!(container = %spec.id, task = %arn, "container of a task without a record; it is adopted if the task is assigned again");
            }
        }
    }
}

fn spawn(shared: &Arc<Shared>, rec: TaskRecord) -> Managed {
    let (tx, rx) = watch::channel(rec.assignment.clone());
    let manager = TaskManager::new(shared.clone(), rec, rx);
    Managed {
        desired: tx,
        join: tokio::spawn(manager.run()),
    }
}

/// Collects finished task managers: tasks that are done become tombstones.
async fn reap(managers: &mut HashMap<String, Managed>, tombstones: &mut HashMap<String, i64>) {
    let finished: Vec<String> = managers
        .iter()
        .filter(|(_, m)| m.join.is_finished())
        .map(|(k, _)| k.clone())
        .collect();
    for arn in finished {
        if let Some(m) = managers.remove(&arn) {
            match m.join.await {
                Ok(rec) => {
                    if let Some(t) = rec.done_at_ms {
                        tombstones.insert(arn, t);
                    }
                }
                Err(e) => tracing::error!(task = %arn, %e, "task manager panicked"),
            }
        }
    }
    let now = berth_wire::Timestamp::now().0;
    tombstones.retain(|_, t| now - *t <= TOMBSTONE_MS);
}

/// Applies the host's whole task set: new tasks get a manager, known ones their (forward
/// only) desired status, and local tasks no longer assigned are stopped.
fn apply(
    shared: &Arc<Shared>,
    managers: &mut HashMap<String, Managed>,
    tombstones: &HashMap<String, i64>,
    tasks: Vec<TaskAssignment>,
) {
    let assigned: std::collections::HashSet<String> =
        tasks.iter().map(|t| t.task_arn.clone()).collect();
    for a in tasks {
        if let Some(m) = managers.get(&a.task_arn) {
            m.desired.send_if_modified(|cur| {
                let next = forward(cur, a);
                let changed = *cur != next;
                *cur = next;
                changed
            });
            continue;
        }
        if tombstones.contains_key(&a.task_arn) {
            continue;
        }
        tracing::info!(task = %a.task_arn, desired = %a.desired_status, "new task");
        let arn = a.task_arn.clone();
        managers.insert(arn, spawn(shared, TaskRecord::new(a)));
    }
    for (arn, m) in managers.iter() {
        if !assigned.contains(arn) && !m.join.is_finished() {
            m.desired.send_if_modified(|cur| {
                if cur.desired_status == "STOPPED" {
                    return false;
                }
                cur.desired_status = "STOPPED".into();
                if cur.stopped_reason.is_none() {
                    cur.stopped_reason =
                        Some("Task is no longer assigned to this container instance".into());
                }
                true
            });
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn assignment(desired: &str) -> TaskAssignment {
        serde_json::from_value(serde_json::json!({
            "taskArn": "arn:aws:ecs:us-east-1:000000000000:task/c/abc",
            "clusterArn": "arn:aws:ecs:us-east-1:000000000000:cluster/c",
            "desiredStatus": desired,
            "lastStatus": "PENDING",
            "taskDefinition": {},
            "containers": [],
        }))
        .unwrap()
    }

    #[test]
    fn desired_status_only_moves_forward() {
        let stopped = TaskAssignment {
            stopped_reason: Some("Task stopped by user".into()),
            ..assignment("STOPPED")
        };
        let next = forward(&stopped, assignment("RUNNING"));
        assert_eq!(next.desired_status, "STOPPED");
        assert_eq!(next.stopped_reason.as_deref(), Some("Task stopped by user"));
        let next = forward(&assignment("RUNNING"), assignment("STOPPED"));
        assert_eq!(next.desired_status, "STOPPED");
    }
}
