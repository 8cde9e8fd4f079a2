//! The task manager: one tokio task per task, the only writer of that task's containers'
//! states (principle 6). It drives the task from its assignment (desired RUNNING or
//! STOPPED) through the runtime, reports what it observes (statuses only move forward) and
//! persists its record so that a restarted agent carries on.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_model::lifecycle::TaskStatus;
use berth_runtime::{ContainerState, Image, ImageStore, Runtime};
use berth_wire::Timestamp;
use berth_wire::agent::TaskAssignment;
use berth_wire::ecs::shapes as s;
use serde::{Deserialize, Serialize};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use crate::control_plane::{ContainerHealth, ControlPlane, TaskHealthReport};
use crate::error::{ControlPlaneError, Error, Result};
use crate::plan::{self, DepCheck, HealthCheckPlan, HealthTracker, NetworkPlan, Progress};

/// How often a task manager looks at its containers.
const TICK: Duration = Duration::from_millis(200);

/// How long a stopped task's cleanup waits for its awslogs shippers to drain the
/// containers' output; what is still unshipped then is lost with the container.
const LOG_DRAIN_TIMEOUT: Duration = Duration::from_secs(60);

/// How long a container's start waits for its awslogs stream to be created; if the Logs
/// service cannot be reached by then, the container starts and its shipper creates the
/// stream later.
const LOG_INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the agent keeps about a task in `<state dir>/tasks/<task id>.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskRecord {
    /// The assignment as last received.
    pub assignment: TaskAssignment,
    /// The last task status reported to the control plane.
    #[serde(default)]
    pub reported: Option<String>,
    /// When image pulls started and ended, ms since the epoch.
    #[serde(default)]
    pub pull_started_at: Option<i64>,
    #[serde(default)]
    pub pull_stopped_at: Option<i64>,
    /// When the last container stopped.
    #[serde(default)]
    pub execution_stopped_at: Option<i64>,
    /// Why the agent stops the task on its own (an essential exit, a failed start).
    #[serde(default)]
    pub stop_reason: Option<String>,
    /// The task's containers, in task-definition order.
    pub containers: Vec<ContainerRecord>,
    /// Set once STOPPED was reported and everything was cleaned up.
    #[serde(default)]
    pub done_at_ms: Option<i64>,
}

/// What the agent keeps about one container.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerRecord {
    /// Name in the task definition.
    pub name: String,
    /// The runtime's container id.
    pub runtime_id: String,
    /// Whether it was started.
    #[serde(default)]
    pub started: bool,
    /// Whether it is over (exited, or will never run).
    #[serde(default)]
    pub exited: bool,
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub reason: Option<String>,
    /// The last status reported.
    #[serde(default)]
    pub reported: Option<String>,
    #[serde(default)]
    pub image_digest: Option<String>,
    /// The image's STOPSIGNAL, if any.
    #[serde(default)]
    pub stop_signal: Option<String>,
    #[serde(default)]
    pub health: Option<s::HealthStatus>,
    /// The id of its task metadata endpoint (`/v4/<id>`), unguessable.
    #[serde(default)]
    pub metadata_id: Option<String>,
    /// When it was created, started and finished, ms since the epoch (for the metadata).
    #[serde(default)]
    pub created_at: Option<i64>,
    #[serde(default)]
    pub started_at: Option<i64>,
    #[serde(default)]
    pub finished_at: Option<i64>,
}

impl TaskRecord {
    /// A fresh record for a new assignment.
    pub fn new(assignment: TaskAssignment) -> TaskRecord {
        let task_id = plan::task_id(&assignment.task_arn);
        let containers = plan::definitions(&assignment)
            .iter()
            .map(|d| {
                let name = d.name.clone().unwrap_or_default();
                ContainerRecord {
                    runtime_id: plan::container_id(&task_id, &name),
                    name,
                    started: false,
                    exited: false,
                    exit_code: None,
                    reason: None,
                    reported: None,
                    image_digest: None,
                    stop_signal: None,
                    health: None,
                    metadata_id: Some(crate::metadata::new_endpoint_id()),
                    created_at: None,
                    started_at: None,
                    finished_at: None,
                }
            })
            .collect();
        TaskRecord {
            assignment,
            reported: None,
            pull_started_at: None,
            pull_stopped_at: None,
            execution_stopped_at: None,
            stop_reason: None,
            containers,
            done_at_ms: None,
        }
    }

    fn reported_status(&self) -> Option<TaskStatus> {
        self.reported.as_deref().and_then(TaskStatus::parse)
    }
}

/// Where a task's record lives.
pub fn record_path(state_dir: &Path, task_arn: &str) -> PathBuf {
    state_dir
        .join("tasks")
        .join(format!("{}.json", plan::task_id(task_arn)))
}

/// Writes a record atomically.
pub fn save_record(state_dir: &Path, rec: &TaskRecord) -> Result<()> {
    let path = record_path(state_dir, &rec.assignment.task_arn);
    let data = serde_json::to_vec_pretty(rec).map_err(|source| Error::State {
        path: path.clone(),
        source,
    })?;
    crate::write_atomic(&path, &data)
}

/// What task managers share.
pub(crate) struct Shared {
    pub cp: Arc<dyn ControlPlane>,
    pub rt: Arc<Runtime>,
    pub images: Arc<ImageStore>,
    pub state_dir: PathBuf,
    pub shutdown: watch::Receiver<bool>,
    pub metadata: crate::metadata::Endpoint,
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> berth_runtime::Result<T> + Send + 'static,
) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Join(e.to_string()))?
        .map_err(Error::from)
}

fn now_ms() -> i64 {
    Timestamp::now().0
}

/// A health check result: (container index, passed).
type HealthResult = (usize, bool);

/// One task's manager.
pub(crate) struct TaskManager {
    shared: Arc<Shared>,
    rec: TaskRecord,
    desired: watch::Receiver<TaskAssignment>,
    task_id: String,
    defs: Vec<s::ContainerDefinition>,
    images: BTreeMap<usize, Image>,
    pulled: bool,
    network: Option<NetworkPlan>,
    /// The task side's address on its metadata link (awsvpc).
    metadata_ip: Option<std::net::Ipv4Addr>,
    volumes: BTreeMap<String, PathBuf>,
    pending_reports: Vec<usize>,
    health_tx: mpsc::UnboundedSender<HealthResult>,
    health_rx: mpsc::UnboundedReceiver<HealthResult>,
    health: BTreeMap<usize, (HealthCheckPlan, HealthTracker, Instant, JoinHandle<()>)>,
    saved: Option<Vec<u8>>,
    /// Set while every container is being stopped: exits are then expected.
    stopping: bool,
    /// The awslogs shipper of each container that has one.
    shippers: BTreeMap<usize, JoinHandle<crate::awslogs::Outcome>>,
    /// The execution role's credentials, shared with the shippers (memory only).
    execution_role: crate::control_plane::ExecutionCredentials,
}

impl TaskManager {
    pub(crate) fn new(
        shared: Arc<Shared>,
        rec: TaskRecord,
        desired: watch::Receiver<TaskAssignment>,
    ) -> TaskManager {
        let task_id = plan::task_id(&rec.assignment.task_arn);
        let defs = plan::definitions(&rec.assignment).to_vec();
        let volumes = plan::volume_sources(
            &rec.assignment.task_definition,
            &shared.state_dir.join("volumes").join(&task_id),
            &shared.state_dir.join("volumes").join("shared"),
        );
        let (health_tx, health_rx) = mpsc::unbounded_channel();
        let execution_role = crate::control_plane::ExecutionCredentials::new(
            desired
                .borrow()
                .execution_role_credentials
                .clone()
                .or_else(|| rec.assignment.execution_role_credentials.clone()),
        );
        TaskManager {
            shared,
            rec,
            desired,
            task_id,
            defs,
            images: BTreeMap::new(),
            pulled: false,
            network: None,
            metadata_ip: None,
            volumes,
            pending_reports: Vec::new(),
            health_tx,
            health_rx,
            health: BTreeMap::new(),
            saved: None,
            stopping: false,
            shippers: BTreeMap::new(),
            execution_role,
        }
    }

    fn save(&mut self) {
        // Role credentials stay in memory: the record on disk never holds a secret (after a
        // restart, the next poll brings them again).
        let mut on_disk = self.rec.clone();
        on_disk.assignment.task_role_credentials = None;
        on_disk.assignment.execution_role_credentials = None;
        let Ok(data) = serde_json::to_vec_pretty(&on_disk) else {
            return;
        };
        if self.saved.as_ref() == Some(&data) {
            return;
        }
        if self.rec.done_at_ms.is_none() {
            let plan = self.network.clone().or_else(|| {
                plan::network_plan(
                    self.rec.assignment.task_definition.network_mode,
                    &self.task_id,
                )
                .ok()
            });
            self.shared
                .metadata
                .publish(&self.rec, plan.as_ref(), self.metadata_ip);
        }
        let path = record_path(&self.shared.state_dir, &self.rec.assignment.task_arn);
        match crate::write_atomic(&path, &data) {
            Ok(()) => self.saved = Some(data),
            Err(e) => {
                tracing::warn!(task = %self.rec.assignment.task_arn, %e, "cannot save task record")
            }
        }
    }

    /// Links the task's namespace to the metadata endpoint; without it the containers still
    /// run (their metadata requests fail).
    async fn link_metadata(&mut self, netns: &str) {
        if !self
            .shared
            .metadata
            .serves(&NetworkPlan::TaskNamespace(netns.into()))
        {
            return;
        }
        match self.shared.metadata.attach(netns, &self.task_id).await {
            Ok(ip) => self.metadata_ip = Some(ip),
            Err(e) => {
                tracing::warn!(task = %self.rec.assignment.task_arn, %e, "task metadata link not set up")
            }
        }
    }

    fn shutting_down(&self) -> bool {
        *self.shared.shutdown.borrow()
    }

    /// Runs the task to its end (STOPPED reported, cleaned up) or until the agent shuts down.
    pub(crate) async fn run(mut self) -> TaskRecord {
        let arn = self.rec.assignment.task_arn.clone();
        match self.drive().await {
            Ok(()) => tracing::info!(task = %arn, "task done"),
            Err(Error::Shutdown) => tracing::debug!(task = %arn, "task manager detached"),
            Err(e) => tracing::error!(task = %arn, %e, "task manager failed"),
        }
        for (_, (_, _, _, h)) in std::mem::take(&mut self.health) {
            h.abort();
        }
        self.save();
        self.rec
    }

    async fn drive(&mut self) -> Result<()> {
        if self.rec.done_at_ms.is_some() {
            return Ok(());
        }
        self.adopt().await;
        let mut shutdown = self.shared.shutdown.clone();
        loop {
            if self.shutting_down() {
                return Err(Error::Shutdown);
            }
            // Rotated role credentials take effect at once (the endpoint serves the record).
            let fresh = self.desired.borrow().task_role_credentials.clone();
            if fresh.is_some() && fresh != self.rec.assignment.task_role_credentials {
                self.rec.assignment.task_role_credentials = fresh;
                self.saved = None;
                self.save();
            }
            let fresh = self.desired.borrow().execution_role_credentials.clone();
            if fresh.is_some() && fresh != self.execution_role.current() {
                self.execution_role.replace(fresh);
            }
            let desired_stop = self.desired.borrow().desired_status == "STOPPED";
            if desired_stop || self.rec.stop_reason.is_some() {
                if desired_stop && self.rec.stop_reason.is_none() {
                    self.rec.assignment = self.desired.borrow().clone();
                }
                self.save();
                self.stop_all().await?;
                return self.finish().await;
            }
            if !self.pulled && self.rec.containers.iter().any(|c| !c.started && !c.exited) {
                self.prepare().await?;
                self.save();
                continue;
            }
            self.observe().await;
            if self.rec.stop_reason.is_none() {
                self.start_ready().await;
            }
            let essentials_started = self
                .defs
                .iter()
                .zip(&self.rec.containers)
                .all(|(d, c)| !plan::is_essential(d) || c.started);
            if self.rec.stop_reason.is_none()
                && essentials_started
                && plan::should_report(self.rec.reported_status(), TaskStatus::Running)
            {
                // awsvpc tasks pass through ACTIVATING (ECS attaches them to their network
                // and load balancers there), as ECS shows them.
                if self.is_awsvpc()
                    && plan::should_report(self.rec.reported_status(), TaskStatus::Activating)
                {
                    self.report_task(TaskStatus::Activating, None).await?;
                }
                self.report_task(TaskStatus::Running, None).await?;
            }
            self.flush_container_reports().await?;
            self.save();
            tokio::select! {
                _ = tokio::time::sleep(TICK) => {}
                r = self.desired.changed() => if r.is_err() { return Err(Error::Shutdown) },
                r = shutdown.changed() => if r.is_err() { return Err(Error::Shutdown) },
                Some(r) = self.health_rx.recv() => self.on_health(r).await?,
            }
        }
    }

    /// Reconciles the record with the runtime (after a restart, or a crash between a start
    /// and the record's save): containers that exist were started.
    async fn adopt(&mut self) {
        for i in 0..self.rec.containers.len() {
            let id = self.rec.containers[i].runtime_id.clone();
            let rt = self.shared.rt.clone();
            let state = blocking(move || rt.state(&id)).await;
            let c = &mut self.rec.containers[i];
            if state.is_ok() {
                c.started = true;
            }
        }
        // A re-attached awsvpc task gets its metadata link back (or keeps it).
        if self.rec.containers.iter().any(|c| c.started && !c.exited)
            && let Ok(NetworkPlan::TaskNamespace(name)) = plan::network_plan(
                self.rec.assignment.task_definition.network_mode,
                &self.task_id,
            )
            && Path::new("/var/run/netns").join(&name).exists()
        {
            self.link_metadata(&name).await;
        }
        // Health checks of running containers start again.
        for i in 0..self.rec.containers.len() {
            if self.rec.containers[i].started && !self.rec.containers[i].exited {
                self.start_health(i);
            }
        }
        // Shippers resume from their cursors, also for containers that exited meanwhile
        // (their output is drained before cleanup).
        for i in 0..self.rec.containers.len() {
            if self.rec.containers[i].started
                && let Some(Ok(spec)) = self.awslogs_spec(i)
            {
                self.start_shipper(i, spec);
            }
        }
    }

    /// The awslogs shipper's settings of container `i`, if its log driver is awslogs (an
    /// error names the option at fault, as Docker does).
    fn awslogs_spec(
        &self,
        i: usize,
    ) -> Option<std::result::Result<crate::awslogs::ShipperSpec, String>> {
        let lc = self.defs[i].log_configuration.as_ref()?;
        if lc.log_driver != s::LogDriver::Awslogs {
            return None;
        }
        let c = &self.rec.containers[i];
        let task_region = berth_model::Arn::parse(&self.rec.assignment.task_arn)
            .map(|a| a.region)
            .unwrap_or_default();
        let options = match crate::awslogs::options::parse(
            &lc.options.clone().unwrap_or_default(),
            &task_region,
            &c.name,
            &self.task_id,
            &c.runtime_id,
        ) {
            Ok(o) => o,
            Err(e) => return Some(Err(e)),
        };
        let dir = match self.shared.rt.state_dir(&c.runtime_id) {
            Ok(d) => d,
            Err(e) => return Some(Err(e.to_string())),
        };
        Some(Ok(crate::awslogs::ShipperSpec {
            scope: crate::control_plane::LogsScope {
                task_arn: self.rec.assignment.task_arn.clone(),
                region: options.region.clone(),
                execution_role: self.execution_role.clone(),
            },
            options,
            files: vec![dir.join("stdout.log"), dir.join("stderr.log")],
            cursor_path: crate::awslogs::cursor_path(&self.shared.state_dir, &c.runtime_id),
        }))
    }

    fn start_shipper(&mut self, i: usize, spec: crate::awslogs::ShipperSpec) {
        if self.shippers.contains_key(&i) {
            return;
        }
        let rt = self.shared.rt.clone();
        let id = self.rec.containers[i].runtime_id.clone();
        let ended: crate::awslogs::EndedFn = Arc::new(move || {
            !matches!(
                rt.state(&id),
                Ok(ContainerState::Creating | ContainerState::Running { .. })
            )
        });
        let shipper = crate::awslogs::Shipper::new(
            self.shared.cp.clone(),
            spec,
            ended,
            self.shared.shutdown.clone(),
        );
        self.shippers.insert(i, tokio::spawn(shipper.run()));
    }

    /// Waits (bounded) until every shipper has shipped its container's whole output.
    async fn drain_logs(&mut self) -> Result<()> {
        if self.shippers.is_empty() {
            return Ok(());
        }
        tracing::info!(task = %self.rec.assignment.task_arn, "waiting for container output to be shipped");
        let deadline = tokio::time::Instant::now() + LOG_DRAIN_TIMEOUT;
        for (i, mut h) in std::mem::take(&mut self.shippers) {
            match tokio::time::timeout_at(deadline, &mut h).await {
                Ok(Ok(crate::awslogs::Outcome::Drained)) => {}
                Ok(Ok(crate::awslogs::Outcome::Shutdown)) => return Err(Error::Shutdown),
                Ok(Err(e)) => {
                    tracing::error!(container = %self.rec.containers[i].runtime_id, %e, "awslogs shipper failed")
                }
                Err(_) => {
                    tracing::warn!(container = %self.rec.containers[i].runtime_id, "container output not fully shipped within {LOG_DRAIN_TIMEOUT:?}; the rest is lost");
                    h.abort();
                }
            }
        }
        if self.shutting_down() {
            return Err(Error::Shutdown);
        }
        Ok(())
    }

    /// Reports PENDING, prepares the task's network, cgroup and volumes, and resolves (pulls)
    /// every image. A failure becomes the task's stop reason.
    async fn prepare(&mut self) -> Result<()> {
        let a = self.rec.assignment.clone();
        let network = match plan::network_plan(a.task_definition.network_mode, &self.task_id) {
            Ok(n) => n,
            Err(reason) => {
                self.fail_unstarted(&reason);
                return Ok(());
            }
        };
        if self.rec.pull_started_at.is_none() {
            self.rec.pull_started_at = Some(now_ms());
        }
        if plan::should_report(self.rec.reported_status(), TaskStatus::Pending) {
            self.report_task(TaskStatus::Pending, None).await?;
        }
        if let NetworkPlan::TaskNamespace(name) = &network
            && let Err(e) = ensure_netns(name).await
        {
            self.fail_unstarted(&format!("CannotStartContainerError: {e}"));
            return Ok(());
        }
        if let NetworkPlan::TaskNamespace(name) = &network {
            self.link_metadata(name).await;
        }
        self.network = Some(network);
        if let Some(r) = plan::task_resources(&a) {
            let cg = plan::task_cgroup(&self.task_id);
            if let Err(e) =
                blocking(move || berth_runtime::cgroup::apply_task_limits(&cg, &r)).await
            {
                tracing::warn!(task = %a.task_arn, %e, "task-level limits not applied");
            }
        }
        for dir in self.volumes.values() {
            if let Err(e) = std::fs::create_dir_all(dir) {
                self.fail_unstarted(&format!(
                    "CannotStartContainerError: creating volume directory {}: {e}",
                    dir.display()
                ));
                return Ok(());
            }
        }
        for i in 0..self.defs.len() {
            let c = &self.rec.containers[i];
            if c.started || c.exited {
                continue;
            }
            let reference = self.defs[i].image.clone().unwrap_or_default();
            let images = self.shared.images.clone();
            let r = reference.clone();
            let got = tokio::task::spawn_blocking(move || {
                images.resolve(&r).or_else(|_| images.pull(&r))
            })
            .await
            .map_err(|e| Error::Join(e.to_string()))?;
            match got {
                Ok(img) => {
                    self.rec.containers[i].image_digest = Some(img.manifest_digest.clone());
                    self.rec.containers[i].stop_signal = img.config.stop_signal.clone();
                    self.images.insert(i, img);
                }
                Err(e) => {
                    let msg = e.to_string();
                    let reason = if msg.starts_with("CannotPullContainerError") {
                        msg
                    } else {
                        format!("CannotPullContainerError: pulling {reference}: {msg}")
                    };
                    self.rec.pull_stopped_at = Some(now_ms());
                    self.fail_unstarted(&reason);
                    return Ok(());
                }
            }
        }
        self.rec.pull_stopped_at = Some(now_ms());
        self.pulled = true;
        Ok(())
    }

    /// The task cannot start: every container that has not run gets `reason`.
    fn fail_unstarted(&mut self, reason: &str) {
        for (i, c) in self.rec.containers.iter_mut().enumerate() {
            if !c.started && !c.exited {
                c.exited = true;
                c.reason = Some(reason.to_string());
                self.pending_reports.push(i);
            }
        }
        if self.rec.stop_reason.is_none() {
            self.rec.stop_reason = Some(reason.to_string());
        }
    }

    fn progress(&self, i: usize) -> Progress {
        let c = &self.rec.containers[i];
        if c.exited {
            Progress::Exited(c.exit_code)
        } else if c.started {
            Progress::Running(c.health)
        } else {
            Progress::NotStarted
        }
    }

    /// Starts every container whose dependencies hold, in dependsOn order.
    async fn start_ready(&mut self) {
        let order = match plan::start_order(&self.defs) {
            Ok(o) => o,
            Err(e) => {
                self.fail_unstarted(&format!("CannotStartContainerError: {e}"));
                return;
            }
        };
        for i in order {
            let c = &self.rec.containers[i];
            if c.started || c.exited {
                continue;
            }
            let mut ready = true;
            for dep in self.defs[i].depends_on.clone().unwrap_or_default() {
                let Some(j) = self
                    .rec
                    .containers
                    .iter()
                    .position(|c| c.name == dep.container_name)
                else {
                    ready = false;
                    break;
                };
                match plan::check_dependency(dep.condition, &dep.container_name, self.progress(j)) {
                    DepCheck::Met => {}
                    DepCheck::Wait => ready = false,
                    DepCheck::Never(why) => {
                        let reason = format!(
                            "CannotStartContainerError: container {}: {why}",
                            self.rec.containers[i].name
                        );
                        self.fail_unstarted(&reason);
                        return;
                    }
                }
            }
            if ready {
                self.start_container(i).await;
                if self.rec.stop_reason.is_some() {
                    return;
                }
            }
        }
    }

    async fn start_container(&mut self, i: usize) {
        let Some(image) = self.images.get(&i).cloned() else {
            // Resumed without resolving images (they are resolved before any start).
            self.pulled = false;
            return;
        };
        let network = self.network.clone().unwrap_or(NetworkPlan::None);
        let def = self.defs[i].clone();
        let env = match plan::environment(
            &def,
            plan::container_override(&self.rec.assignment, &self.rec.containers[i].name),
            &|p| std::fs::read_to_string(p),
        ) {
            Ok(e) => e,
            Err(e) => return self.container_failed(i, format!("CannotStartContainerError: {e}")),
        };
        let mut env = env;
        if self.shared.metadata.serves(&network)
            && let Some(mid) = self.rec.containers[i].metadata_id.clone()
        {
            env.extend(crate::metadata::env_for(&mid));
        }
        // The task role's credentials, for the AWS SDKs' container credential provider.
        if self.shared.metadata.serves(&network)
            && let Some(c) = &self.rec.assignment.task_role_credentials
        {
            env.push(crate::metadata::credentials_env(&c.credentials_id));
        }
        let ctx = plan::TaskContext {
            assignment: &self.rec.assignment,
            task_id: &self.task_id,
            network: &network,
            volumes: &self.volumes,
        };
        let id = self.rec.containers[i].runtime_id.clone();
        let rt = self.shared.rt.clone();
        let images = self.shared.images.clone();
        // The spec needs the rootfs path, which is known before mounting it.
        let rootfs = match rt.state_dir(&id) {
            Ok(d) => d.join("rootfs"),
            Err(e) => return self.container_failed(i, format!("CannotStartContainerError: {e}")),
        };
        let spec = match plan::container_spec(&ctx, &def, &image.config, rootfs, &env) {
            Ok(s) => s,
            Err(e) => return self.container_failed(i, format!("CannotStartContainerError: {e}")),
        };
        let awslogs = match self.awslogs_spec(i) {
            None => None,
            Some(Err(e)) => {
                return self.container_failed(
                    i,
                    format!("CannotStartContainerError: failed to initialize logging driver: {e}"),
                );
            }
            Some(Ok(spec)) => {
                let init = crate::awslogs::shipper::init(
                    self.shared.cp.as_ref(),
                    &spec.scope,
                    &spec.options,
                );
                match tokio::time::timeout(LOG_INIT_TIMEOUT, init).await {
                    Ok(Err(ControlPlaneError::Aws {
                        status,
                        code,
                        message,
                        ..
                    })) if status < 500 && status != 429 && !code.contains("Throttl") => {
                        return self.container_failed(
                            i,
                            format!("CannotStartContainerError: failed to initialize logging driver: failed to create Cloudwatch log stream: {code}: {message}"),
                        );
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(%e, "awslogs stream not created yet; the shipper retries")
                    }
                    Err(_) => tracing::warn!("awslogs stream not created yet; the shipper retries"),
                    Ok(Ok(())) => {}
                }
                Some(spec)
            }
        };
        self.rec.containers[i].created_at = Some(now_ms());
        // Published before the process starts, so that it finds itself in the metadata.
        self.save();
        let started = blocking(move || {
            rt.prepare_rootfs(&spec.id, &images, &image)?;
            rt.create_and_start(&spec)
        })
        .await;
        match started {
            Ok(h) => {
                tracing::info!(task = %self.rec.assignment.task_arn, container = %self.rec.containers[i].name, pid = h.pid, "container started");
                self.rec.containers[i].started = true;
                self.rec.containers[i].started_at = Some(now_ms());
                self.pending_reports.push(i);
                self.start_health(i);
                if let Some(spec) = awslogs {
                    self.start_shipper(i, spec);
                }
            }
            Err(e) => {
                let msg = e.to_string();
                let reason = if msg.contains("CannotPullContainerError") {
                    msg
                } else {
                    format!("CannotStartContainerError: {msg}")
                };
                // Leave no half-made container behind.
                let rt = self.shared.rt.clone();
                let id = self.rec.containers[i].runtime_id.clone();
                let _ = blocking(move || rt.remove(&id)).await;
                self.container_failed(i, reason);
            }
        }
    }

    fn container_failed(&mut self, i: usize, reason: String) {
        let c = &mut self.rec.containers[i];
        c.exited = true;
        c.reason = Some(reason.clone());
        self.pending_reports.push(i);
        if plan::is_essential(&self.defs[i]) && self.rec.stop_reason.is_none() {
            self.rec.stop_reason = Some(reason);
        }
    }

    fn start_health(&mut self, i: usize) {
        if self.health.contains_key(&i) {
            return;
        }
        let Some(plan) = self.defs[i]
            .health_check
            .as_ref()
            .and_then(plan::health_check_plan)
        else {
            return;
        };
        let rt = self.shared.rt.clone();
        let id = self.rec.containers[i].runtime_id.clone();
        let tx = self.health_tx.clone();
        let p = plan.clone();
        let handle = tokio::spawn(async move {
            loop {
                tokio::time::sleep(p.interval).await;
                let (rt, id, args, timeout) = (rt.clone(), id.clone(), p.args.clone(), p.timeout);
                let ok = matches!(
                    blocking(move || rt.exec(&id, &args, timeout)).await,
                    Ok(berth_runtime::exec::ExecOutcome::Exited(0))
                );
                if tx.send((i, ok)).is_err() {
                    return;
                }
            }
        });
        let mut tracker = HealthTracker::default();
        if let Some(h) = self.rec.containers[i].health {
            tracker.status = h;
        }
        self.health
            .insert(i, (plan, tracker, Instant::now(), handle));
        if self.rec.containers[i].health.is_none() {
            self.rec.containers[i].health = Some(s::HealthStatus::Unknown);
        }
    }

    async fn on_health(&mut self, (i, ok): HealthResult) -> Result<()> {
        let Some((plan, tracker, started, _)) = self.health.get_mut(&i) else {
            return Ok(());
        };
        if self.rec.containers[i].exited {
            return Ok(());
        }
        let before = tracker.status;
        let now = tracker.record(plan, ok, started.elapsed());
        self.rec.containers[i].health = Some(now);
        if before != now {
            tracing::info!(task = %self.rec.assignment.task_arn, container = %self.rec.containers[i].name, status = now.as_str(), "health changed");
            self.report_health().await?;
        }
        Ok(())
    }

    async fn report_health(&mut self) -> Result<()> {
        let essential: Vec<s::HealthStatus> = self
            .defs
            .iter()
            .zip(&self.rec.containers)
            .filter(|(d, _)| plan::is_essential(d) && d.health_check.is_some())
            .map(|(_, c)| c.health.unwrap_or(s::HealthStatus::Unknown))
            .collect();
        let report = TaskHealthReport {
            cluster: self.rec.assignment.cluster_arn.clone(),
            task: self.rec.assignment.task_arn.clone(),
            health_status: plan::task_health(&essential),
            containers: self
                .rec
                .containers
                .iter()
                .filter_map(|c| {
                    c.health.map(|h| ContainerHealth {
                        container_name: c.name.clone(),
                        health_status: h,
                    })
                })
                .collect(),
        };
        let cp = self.shared.cp.clone();
        self.with_retries(move || {
            let cp = cp.clone();
            let r = report.clone();
            async move { cp.submit_task_health(r).await }
        })
        .await
    }

    /// Looks at every running container; records exits. An essential exit stops the task.
    async fn observe(&mut self) {
        for i in 0..self.rec.containers.len() {
            let c = &self.rec.containers[i];
            if !c.started || c.exited {
                continue;
            }
            let id = c.runtime_id.clone();
            let rt = self.shared.rt.clone();
            let state = blocking(move || rt.state(&id)).await;
            let (code, reason) = match state {
                Ok(ContainerState::Exited(e)) => plan::exit_report(&e),
                Ok(ContainerState::Unknown)
                | Err(Error::Runtime(berth_runtime::Error::NotFound(_))) => (
                    None,
                    Some("CannotInspectContainerError: the container's supervisor is gone".into()),
                ),
                _ => continue,
            };
            self.container_exited(i, code, reason);
        }
    }

    fn container_exited(&mut self, i: usize, code: Option<i32>, reason: Option<String>) {
        let c = &mut self.rec.containers[i];
        c.exited = true;
        c.exit_code = code;
        c.reason = reason;
        c.finished_at = Some(now_ms());
        self.rec.execution_stopped_at = Some(now_ms());
        if let Some((_, _, _, h)) = self.health.remove(&i) {
            h.abort();
        }
        tracing::info!(task = %self.rec.assignment.task_arn, container = %c.name, exit_code = ?code, "container exited");
        self.pending_reports.push(i);
        if plan::is_essential(&self.defs[i]) && self.rec.stop_reason.is_none() && !self.stopping {
            self.rec.stop_reason = Some(plan::ESSENTIAL_EXITED_REASON.into());
        }
    }

    /// Stops every running container (SIGTERM, SIGKILL after its stopTimeout), dependents
    /// before what they depend on.
    async fn stop_all(&mut self) -> Result<()> {
        // Containers exited meanwhile are recorded first (an essential exit found here, with
        // no stop asked by the control plane, is still the reason).
        self.stopping = self.desired.borrow().desired_status == "STOPPED";
        self.observe().await;
        self.stopping = true;
        // The task is on its way down: DEACTIVATING (awsvpc) then STOPPING, as ECS shows it.
        let mut downs = vec![TaskStatus::Stopping];
        if self.is_awsvpc() {
            downs.insert(0, TaskStatus::Deactivating);
        }
        for status in downs {
            if self
                .rec
                .reported_status()
                .is_some_and(|r| r >= TaskStatus::Running)
                && plan::should_report(self.rec.reported_status(), status)
                && let Err(e) = self.report_task(status, None).await
            {
                tracing::warn!(task = %self.rec.assignment.task_arn, %e, "reporting {status}");
            }
        }
        // Tell the control plane at once which containers already exited (an essential
        // exit is why the task stops: its desired status turns STOPPED while the others are
        // still being stopped, as on ECS).
        if let Err(e) = self.flush_container_reports().await {
            tracing::warn!(task = %self.rec.assignment.task_arn, %e, "reporting exited containers");
        }
        let running: Vec<bool> = self
            .rec
            .containers
            .iter()
            .map(|c| c.started && !c.exited)
            .collect();
        for wave in plan::stop_waves(&self.defs, &running) {
            let mut joins = Vec::new();
            for i in wave {
                let rt = self.shared.rt.clone();
                let id = self.rec.containers[i].runtime_id.clone();
                let timeout = plan::stop_timeout(&self.defs[i]);
                let signal = self.rec.containers[i]
                    .stop_signal
                    .as_deref()
                    .and_then(berth_runtime::signal_from_name);
                joins.push((
                    i,
                    tokio::task::spawn_blocking(move || rt.stop(&id, timeout, signal)),
                ));
            }
            for (i, j) in joins {
                match j.await {
                    Ok(Ok(exit)) => {
                        let (code, reason) = plan::exit_report(&exit);
                        self.container_exited(i, code, reason);
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(container = %self.rec.containers[i].runtime_id, %e, "stopping container");
                        let rt = self.shared.rt.clone();
                        let id = self.rec.containers[i].runtime_id.clone();
                        let state = blocking(move || rt.state(&id)).await;
                        let (code, reason) = match state {
                            Ok(ContainerState::Exited(e)) => plan::exit_report(&e),
                            _ => (None, Some(format!("CannotStopContainerError: {e}"))),
                        };
                        self.container_exited(i, code, reason);
                    }
                    Err(e) => return Err(Error::Join(e.to_string())),
                }
            }
            self.save();
        }
        // Containers that never started are over too.
        for i in 0..self.rec.containers.len() {
            if !self.rec.containers[i].exited {
                self.rec.containers[i].exited = true;
                self.pending_reports.push(i);
            }
        }
        Ok(())
    }

    /// Whether the task has its own network namespace in a VPC (awsvpc mode).
    fn is_awsvpc(&self) -> bool {
        self.rec.assignment.task_definition.network_mode == Some(s::NetworkMode::Awsvpc)
    }

    /// Reports STOPPED, then cleans up (containers, cgroup, network namespace, volumes).
    async fn finish(&mut self) -> Result<()> {
        if self.rec.execution_stopped_at.is_none() {
            self.rec.execution_stopped_at = Some(now_ms());
        }
        if self.is_awsvpc()
            && self
                .rec
                .reported_status()
                .is_some_and(|r| r >= TaskStatus::Running)
            && plan::should_report(self.rec.reported_status(), TaskStatus::Deprovisioning)
        {
            self.report_task(TaskStatus::Deprovisioning, None).await?;
        }
        if plan::should_report(self.rec.reported_status(), TaskStatus::Stopped) {
            let reason = self
                .rec
                .stop_reason
                .clone()
                .or_else(|| self.rec.assignment.stopped_reason.clone());
            self.report_task(TaskStatus::Stopped, reason).await?;
        }
        self.flush_container_reports().await?;
        self.save();
        // The containers' output is shipped before their files go away.
        self.drain_logs().await?;
        for c in &self.rec.containers {
            let rt = self.shared.rt.clone();
            let id = c.runtime_id.clone();
            match blocking(move || rt.remove(&id)).await {
                Ok(()) | Err(Error::Runtime(berth_runtime::Error::NotFound(_))) => {}
                Err(e) => tracing::warn!(container = %c.runtime_id, %e, "cleanup"),
            }
            let _ = std::fs::remove_file(crate::awslogs::cursor_path(
                &self.shared.state_dir,
                &c.runtime_id,
            ));
        }
        berth_runtime::cgroup::remove(&plan::task_cgroup(&self.task_id));
        self.shared
            .metadata
            .detach(&self.rec.assignment.task_arn, &self.task_id)
            .await;
        if let Ok(NetworkPlan::TaskNamespace(name)) = plan::network_plan(
            self.rec.assignment.task_definition.network_mode,
            &self.task_id,
        ) {
            delete_netns(&name).await;
        }
        let task_volumes = self.shared.state_dir.join("volumes").join(&self.task_id);
        if task_volumes.exists() {
            let _ = std::fs::remove_dir_all(&task_volumes);
        }
        self.rec.done_at_ms = Some(now_ms());
        self.save();
        Ok(())
    }

    fn container_change(&self, i: usize, status: TaskStatus) -> s::ContainerStateChange {
        let c = &self.rec.containers[i];
        s::ContainerStateChange {
            container_name: Some(c.name.clone()),
            runtime_id: c.started.then(|| c.runtime_id.clone()),
            image_digest: c.image_digest.clone(),
            status: Some(status.as_str().into()),
            exit_code: if status == TaskStatus::Stopped {
                c.exit_code
            } else {
                None
            },
            reason: if status == TaskStatus::Stopped {
                c.reason.clone()
            } else {
                None
            },
            network_bindings: None,
        }
    }

    fn container_status(&self, i: usize) -> Option<TaskStatus> {
        let c = &self.rec.containers[i];
        if c.exited {
            Some(TaskStatus::Stopped)
        } else if c.started {
            Some(TaskStatus::Running)
        } else {
            None
        }
    }

    /// Container changes not reported yet, marking them reported.
    fn take_container_changes(&mut self) -> Vec<s::ContainerStateChange> {
        let mut idx: Vec<usize> = std::mem::take(&mut self.pending_reports);
        idx.sort_unstable();
        idx.dedup();
        let mut out = Vec::new();
        for i in idx {
            let Some(status) = self.container_status(i) else {
                continue;
            };
            let last = self.rec.containers[i]
                .reported
                .as_deref()
                .and_then(TaskStatus::parse);
            if plan::should_report(last, status) {
                out.push(self.container_change(i, status));
                self.rec.containers[i].reported = Some(status.as_str().into());
            }
        }
        out
    }

    async fn report_task(&mut self, status: TaskStatus, reason: Option<String>) -> Result<()> {
        let containers = self.take_container_changes();
        let req = s::SubmitTaskStateChangeRequest {
            cluster: Some(self.rec.assignment.cluster_arn.clone()),
            task: Some(self.rec.assignment.task_arn.clone()),
            status: Some(status.as_str().into()),
            reason,
            containers: (!containers.is_empty()).then_some(containers),
            pull_started_at: self.rec.pull_started_at.map(Timestamp),
            pull_stopped_at: self.rec.pull_stopped_at.map(Timestamp),
            execution_stopped_at: if status == TaskStatus::Stopped {
                self.rec.execution_stopped_at.map(Timestamp)
            } else {
                None
            },
            ..Default::default()
        };
        tracing::info!(task = %self.rec.assignment.task_arn, status = status.as_str(), "reporting task state");
        let cp = self.shared.cp.clone();
        self.with_retries(move || {
            let cp = cp.clone();
            let r = req.clone();
            async move { cp.submit_task_state(r).await }
        })
        .await?;
        self.rec.reported = Some(status.as_str().into());
        self.save();
        Ok(())
    }

    async fn flush_container_reports(&mut self) -> Result<()> {
        for change in self.take_container_changes() {
            let req = s::SubmitContainerStateChangeRequest {
                cluster: Some(self.rec.assignment.cluster_arn.clone()),
                task: Some(self.rec.assignment.task_arn.clone()),
                container_name: change.container_name,
                runtime_id: change.runtime_id,
                status: change.status,
                exit_code: change.exit_code,
                reason: change.reason,
                network_bindings: None,
            };
            let cp = self.shared.cp.clone();
            self.with_retries(move || {
                let cp = cp.clone();
                let r = req.clone();
                async move { cp.submit_container_state(r).await }
            })
            .await?;
        }
        Ok(())
    }

    /// Calls the control plane until it answers, backing off while it is unreachable; a
    /// rejected report is logged and dropped (the control plane ignores stale reports).
    async fn with_retries<F, Fut>(&self, call: F) -> Result<()>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<(), ControlPlaneError>>,
    {
        let mut backoff = Duration::from_millis(200);
        let mut shutdown = self.shared.shutdown.clone();
        loop {
            match call().await {
                Ok(()) => return Ok(()),
                Err(e) if e.is_retryable() => {
                    tracing::warn!(%e, ?backoff, "control plane unavailable; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.changed() => {}
                    }
                    if self.shutting_down() {
                        return Err(Error::Shutdown);
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
                Err(e) => {
                    tracing::warn!(%e, "report rejected");
                    return Ok(());
                }
            }
        }
    }
}

async fn ip(args: &[&str]) -> std::result::Result<(), String> {
    let out = tokio::process::Command::new("ip")
        .args(args)
        .output()
        .await
        .map_err(|e| format!("running ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Creates the task's network namespace (loopback up) unless it exists.
async fn ensure_netns(name: &str) -> std::result::Result<(), String> {
    if !Path::new("/var/run/netns").join(name).exists() {
        ip(&["netns", "add", name]).await?;
    }
    ip(&["-n", name, "link", "set", "lo", "up"]).await
}

async fn delete_netns(name: &str) {
    if Path::new("/var/run/netns").join(name).exists()
        && let Err(e) = ip(&["netns", "delete", name]).await
    {
        tracing::warn!(%e, "deleting network namespace");
    }
}
