//! The pure parts of running a task: ids, the network plan, each container's
//! [`ContainerSpec`] from the task definition and RunTask's overrides, dependsOn order and
//! conditions, health-check bookkeeping, and the rules of what is reported.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use berth_model::lifecycle::TaskStatus;
use berth_runtime::{ContainerSpec, ImageConfig, Mount, NetworkMode, Resources, Ulimit};
use berth_wire::agent::TaskAssignment;
use berth_wire::ecs::shapes as s;

use crate::error::{Error, Result};

/// The stoppedReason of a task whose essential container exited (ECS's words).
pub const ESSENTIAL_EXITED_REASON: &str = "Essential container in task exited";
/// The reason of an OOM-killed container (ECS's words).
pub const OOM_REASON: &str = "OutOfMemoryError: Container killed due to memory usage";
/// ECS's default stopTimeout.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// The stopCode the control plane records for a task the agent stopped with `reason` (ECS's
/// `SubmitTaskStateChange` carries no stop code; see [`crate::ControlPlane`]).
pub fn stop_code_for_reason(reason: &str) -> &'static str {
    if reason.starts_with(ESSENTIAL_EXITED_REASON) {
        "EssentialContainerExited"
    } else {
        "TaskFailedToStart"
    }
}

/// The task id: the last part of the task ARN.
pub fn task_id(task_arn: &str) -> String {
    task_arn
        .rsplit('/')
        .next()
        .unwrap_or(task_arn)
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || "_.-".contains(*c))
        .collect()
}

/// The runtime id of a task's container: `<task id>-<container name>`, as the runtime
/// accepts ids (at most 128 characters of `[A-Za-z0-9_.-]`).
pub fn container_id(task_id: &str, name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut id = format!("{task_id}-{clean}");
    id.truncate(128);
    id
}

/// The cgroup parent of a task's containers.
pub fn task_cgroup(task_id: &str) -> String {
    format!("/berth/{task_id}")
}

/// How a task's containers get their network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetworkPlan {
    /// `host`: the host's namespace.
    Host,
    /// `none`: each container its own fresh namespace with loopback only.
    None,
    /// `awsvpc` and `bridge`: one fresh namespace for the task (named `berth-<task id>`
    /// under `/var/run/netns`) that every container joins, so they share localhost.
    TaskNamespace(String),
}

impl NetworkPlan {
    /// The runtime's network mode for one container.
    pub fn container_mode(&self) -> NetworkMode {
        match self {
            NetworkPlan::Host => NetworkMode::Host,
            NetworkPlan::None => NetworkMode::New,
            NetworkPlan::TaskNamespace(name) => {
                NetworkMode::Join(PathBuf::from("/var/run/netns").join(name))
            }
        }
    }
}

/// The network plan of a task (no network mode is bridge, ECS's default on Linux).
pub fn network_plan(mode: Option<s::NetworkMode>, task_id: &str) -> Result<NetworkPlan, String> {
    match mode {
        Some(s::NetworkMode::Host) => Ok(NetworkPlan::Host),
        Some(s::NetworkMode::None) => Ok(NetworkPlan::None),
        Some(s::NetworkMode::Awsvpc) | Some(s::NetworkMode::Bridge) | None => {
            let mut name = format!("berth-{task_id}");
            name.truncate(60);
            Ok(NetworkPlan::TaskNamespace(name))
        }
    }
}

/// Whether a task definition's network mode is bridge (stated, or ECS's default).
pub fn is_bridge(mode: Option<s::NetworkMode>) -> bool {
    matches!(mode, Some(s::NetworkMode::Bridge) | None)
}

/// The port mappings of a task's containers, in definition order (ranges are not served).
pub fn port_mappings(assignment: &TaskAssignment) -> Result<Vec<crate::network::Mapping>> {
    let mut out = Vec::new();
    for d in definitions(assignment) {
        let name = d.name.clone().unwrap_or_default();
        for m in d.port_mappings.iter().flatten() {
            if m.container_port_range.is_some() {
                return Err(Error::InvalidTask(format!(
                    "container {name}: containerPortRange is not supported yet"
                )));
            }
            let Some(cp) = m.container_port else { continue };
            let port = |v: i32, what: &str| {
                u16::try_from(v).map_err(|_| {
                    Error::InvalidTask(format!("container {name}: {what} {v} is not a port"))
                })
            };
            let container_port = port(cp, "containerPort")?;
            let host_port = match m.host_port {
                Some(h) if h != 0 => Some(port(h, "hostPort")?),
                _ => None,
            };
            let udp = m.protocol == Some(s::TransportProtocol::Udp);
            // The port placement picked for a dynamic mapping, in the assignment's bindings.
            let preferred = assignment
                .containers
                .iter()
                .find(|c| c.name.as_deref() == Some(name.as_str()))
                .and_then(|c| c.network_bindings.as_ref())
                .and_then(|bs| {
                    bs.iter().find(|b| {
                        b.container_port == Some(cp)
                            && (b.protocol == Some(s::TransportProtocol::Udp)) == udp
                    })
                })
                .and_then(|b| b.host_port)
                .and_then(|h| u16::try_from(h).ok())
                .filter(|_| host_port.is_none());
            out.push(crate::network::Mapping {
                container_name: name.clone(),
                container_port,
                host_port,
                protocol: if udp {
                    crate::network::Proto::Udp
                } else {
                    crate::network::Proto::Tcp
                },
                preferred,
            });
        }
    }
    Ok(out)
}

/// A container's `networkBindings` as ECS reports them (bindIP 0.0.0.0).
pub fn network_bindings(
    bindings: &[crate::network::Binding],
    container: &str,
) -> Option<Vec<s::NetworkBinding>> {
    let v: Vec<s::NetworkBinding> = bindings
        .iter()
        .filter(|b| b.container_name == container)
        .map(|b| s::NetworkBinding {
            bind_ip: Some("0.0.0.0".into()),
            container_port: Some(i32::from(b.container_port)),
            host_port: Some(i32::from(b.host_port)),
            protocol: Some(match b.protocol {
                crate::network::Proto::Tcp => s::TransportProtocol::Tcp,
                crate::network::Proto::Udp => s::TransportProtocol::Udp,
            }),
            ..Default::default()
        })
        .collect();
    (!v.is_empty()).then_some(v)
}

/// The bindings of a host-mode task: each mapping's port on the host itself.
pub fn host_bindings(mappings: &[crate::network::Mapping]) -> Vec<crate::network::Binding> {
    mappings
        .iter()
        .map(|m| crate::network::Binding {
            container_name: m.container_name.clone(),
            container_port: m.container_port,
            host_port: m.host_port.unwrap_or(m.container_port),
            protocol: m.protocol,
        })
        .collect()
}

/// A container's override, if RunTask gave one.
pub fn container_override<'a>(
    assignment: &'a TaskAssignment,
    name: &str,
) -> Option<&'a s::ContainerOverride> {
    assignment
        .overrides
        .as_ref()?
        .container_overrides
        .as_ref()?
        .iter()
        .find(|o| o.name.as_deref() == Some(name))
}

/// The task's container definitions.
pub fn definitions(assignment: &TaskAssignment) -> &[s::ContainerDefinition] {
    assignment
        .task_definition
        .container_definitions
        .as_deref()
        .unwrap_or_default()
}

/// Whether a container is essential (ECS's default: yes).
pub fn is_essential(def: &s::ContainerDefinition) -> bool {
    def.essential.unwrap_or(true)
}

/// The container's stopTimeout.
pub fn stop_timeout(def: &s::ContainerDefinition) -> Duration {
    match def.stop_timeout {
        Some(t) if t >= 0 => Duration::from_secs(t as u64),
        _ => DEFAULT_STOP_TIMEOUT,
    }
}

/// Parses an environment file: `NAME=value` lines; blank lines and `#` comments skipped.
pub fn parse_env_file(content: &str) -> Vec<(String, String)> {
    content
        .lines()
        .map(str::trim_start)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (k, v) = l.split_once('=')?;
            (!k.trim().is_empty()).then(|| (k.trim().to_string(), v.to_string()))
        })
        .collect()
}

/// The local path of an environment file value (`/path` or `file:///path`); S3 objects
/// are not reachable from Berth yet.
pub fn env_file_path(value: &str) -> Result<PathBuf> {
    let p = value.strip_prefix("file://").unwrap_or(value);
    if p.starts_with('/') {
        Ok(PathBuf::from(p))
    } else {
        Err(Error::InvalidTask(format!(
            "environment file {value:?} is not a local absolute path (s3 environment files are not supported yet)"
        )))
    }
}

/// The container's environment variables in order of precedence (later wins): environment
/// files of the definition and of the override, then `environment`, then the override's.
/// `read` reads a local file.
pub fn environment(
    def: &s::ContainerDefinition,
    ovr: Option<&s::ContainerOverride>,
    read: &dyn Fn(&Path) -> std::io::Result<String>,
) -> Result<Vec<(String, String)>> {
    let mut out: Vec<(String, String)> = Vec::new();
    let files = def.environment_files.iter().flatten().chain(
        ovr.and_then(|o| o.environment_files.as_ref())
            .into_iter()
            .flatten(),
    );
    for f in files {
        let path = env_file_path(&f.value)?;
        let content = read(&path).map_err(|e| {
            Error::InvalidTask(format!("reading environment file {}: {e}", path.display()))
        })?;
        out.extend(parse_env_file(&content));
    }
    let pairs = def.environment.iter().flatten().chain(
        ovr.and_then(|o| o.environment.as_ref())
            .into_iter()
            .flatten(),
    );
    for kv in pairs {
        if let Some(name) = &kv.name {
            out.push((name.clone(), kv.value.clone().unwrap_or_default()));
        }
    }
    Ok(out)
}

/// Where each of the task's volumes lives on the host: `host.sourcePath` for host volumes,
/// else a directory of the task (`<task volumes>/<name>`), or a shared one for Docker
/// volumes with `scope: shared`.
pub fn volume_sources(
    td: &s::TaskDefinition,
    task_volumes: &Path,
    shared_volumes: &Path,
) -> BTreeMap<String, PathBuf> {
    let mut out = BTreeMap::new();
    for v in td.volumes.iter().flatten() {
        let Some(name) = v.name.clone() else { continue };
        let source = if let Some(p) = v.host.as_ref().and_then(|h| h.source_path.clone()) {
            PathBuf::from(p)
        } else if v.docker_volume_configuration.as_ref().and_then(|d| d.scope)
            == Some(s::Scope::Shared)
        {
            shared_volumes.join(safe_name(&name))
        } else {
            task_volumes.join(safe_name(&name))
        };
        out.insert(name, source);
    }
    out
}

fn safe_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// What a task's containers share when their specs are built.
#[derive(Debug, Clone)]
pub struct TaskContext<'a> {
    /// The task as assigned.
    pub assignment: &'a TaskAssignment,
    /// Its id.
    pub task_id: &'a str,
    /// Its network.
    pub network: &'a NetworkPlan,
    /// Its volumes' host directories.
    pub volumes: &'a BTreeMap<String, PathBuf>,
}

fn positive(v: Option<i32>) -> Option<u32> {
    v.filter(|x| *x > 0).map(|x| x as u32)
}

fn limit(v: i32) -> u64 {
    if v < 0 { u64::MAX } else { v as u64 }
}

/// ECS's labels on a task's containers (as the ECS agent puts them on Docker containers).
pub fn ecs_labels(assignment: &TaskAssignment, name: &str) -> BTreeMap<String, String> {
    let td = &assignment.task_definition;
    let mut l = BTreeMap::new();
    l.insert(
        "com.amazonaws.ecs.cluster".into(),
        assignment.cluster_arn.clone(),
    );
    l.insert("com.amazonaws.ecs.container-name".into(), name.to_string());
    l.insert(
        "com.amazonaws.ecs.task-arn".into(),
        assignment.task_arn.clone(),
    );
    if let Some(f) = &td.family {
        l.insert("com.amazonaws.ecs.task-definition-family".into(), f.clone());
    }
    if let Some(r) = td.revision {
        l.insert(
            "com.amazonaws.ecs.task-definition-version".into(),
            r.to_string(),
        );
    }
    l
}

/// The spec of one container: the definition, RunTask's override and the image's defaults
/// (Docker's rules for entryPoint/command, environment merged over the image's).
pub fn container_spec(
    task: &TaskContext<'_>,
    def: &s::ContainerDefinition,
    image: &ImageConfig,
    rootfs: PathBuf,
    env: &[(String, String)],
) -> Result<ContainerSpec> {
    let name = def.name.clone().unwrap_or_default();
    let ovr = container_override(task.assignment, &name);
    let id = container_id(task.task_id, &name);
    let command = ovr
        .and_then(|o| o.command.as_deref())
        .or(def.command.as_deref());
    let args = berth_runtime::spec::resolve_args(image, def.entry_point.as_deref(), command)
        .map_err(|e| Error::InvalidTask(format!("container {name}: {e}")))?;
    let mut mounts = Vec::new();
    for mp in def.mount_points.iter().flatten() {
        let vol = mp.source_volume.clone().unwrap_or_default();
        let source = task.volumes.get(&vol).ok_or_else(|| {
            Error::InvalidTask(format!(
                "container {name}: mount point source volume {vol:?} is not a volume of the task"
            ))
        })?;
        let destination = mp.container_path.clone().unwrap_or_default();
        mounts.push(Mount {
            source: source.clone(),
            destination,
            read_only: mp.read_only.unwrap_or(false),
        });
    }
    let ulimits = def
        .ulimits
        .iter()
        .flatten()
        .map(|u| Ulimit {
            name: u.name.as_str().to_string(),
            soft: limit(u.soft_limit),
            hard: limit(u.hard_limit),
        })
        .collect();
    let mut labels = def.docker_labels.clone().unwrap_or_default();
    labels.extend(ecs_labels(task.assignment, &name));
    let resources = Resources {
        cpu_units: positive(ovr.and_then(|o| o.cpu).or(def.cpu)),
        cpu_limit_units: None,
        memory_mib: positive(ovr.and_then(|o| o.memory).or(def.memory)).map(u64::from),
        memory_reservation_mib: positive(
            ovr.and_then(|o| o.memory_reservation)
                .or(def.memory_reservation),
        )
        .map(u64::from),
        pids_limit: None,
    };
    Ok(ContainerSpec {
        cgroup_path: format!("{}/{id}", task_cgroup(task.task_id)),
        id,
        rootfs,
        args,
        env: berth_runtime::spec::merge_env(image.env.as_deref().unwrap_or_default(), env),
        working_dir: def
            .working_directory
            .clone()
            .or_else(|| image.working_dir.clone())
            .unwrap_or_default(),
        user: def
            .user
            .clone()
            .or_else(|| image.user.clone())
            .unwrap_or_default(),
        hostname: def.hostname.clone().unwrap_or_default(),
        readonly_rootfs: def.readonly_root_filesystem.unwrap_or(false),
        mounts,
        ulimits,
        network: task.network.container_mode(),
        resources,
        labels,
        etc_hosts: None,
        resolv_conf: None,
    })
}

/// Task-level limits (the task's `cpu` and `memory`, after overrides) for its cgroup
/// parent, if it states any. The task's cpu is a hard limit, as ECS applies it on Linux.
pub fn task_resources(assignment: &TaskAssignment) -> Option<Resources> {
    let ovr = assignment.overrides.as_ref();
    let td = &assignment.task_definition;
    let cpu = assignment
        .cpu
        .clone()
        .or_else(|| ovr.and_then(|o| o.cpu.clone()))
        .or_else(|| td.cpu.clone())
        .and_then(|c| parse_units(&c, 1024));
    let mem = assignment
        .memory
        .clone()
        .or_else(|| ovr.and_then(|o| o.memory.clone()))
        .or_else(|| td.memory.clone())
        .and_then(|m| parse_units(&m, 1024));
    if cpu.is_none() && mem.is_none() {
        return None;
    }
    Some(Resources {
        cpu_units: cpu.map(|c| c as u32),
        cpu_limit_units: cpu.map(|c| c as u32),
        memory_mib: mem,
        ..Resources::default()
    })
}

/// Parses ECS's task cpu/memory strings: `256`, `1024`, `1 vCPU`, `0.5 vcpu`, `2 GB`.
pub fn parse_units(v: &str, per_unit: u64) -> Option<u64> {
    let v = v.trim().to_ascii_lowercase();
    if let Ok(n) = v.parse::<u64>() {
        return (n > 0).then_some(n);
    }
    let num: String = v
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let unit = v[num.len()..].trim();
    let n: f64 = num.parse().ok()?;
    match unit {
        "vcpu" | "gb" => Some((n * per_unit as f64).round() as u64).filter(|x| *x > 0),
        _ => None,
    }
}

/// The order in which a task's containers can start: each after the containers it depends
/// on. Errors on an unknown dependency or a cycle.
pub fn start_order(defs: &[s::ContainerDefinition]) -> Result<Vec<usize>> {
    let names: Vec<String> = defs
        .iter()
        .map(|d| d.name.clone().unwrap_or_default())
        .collect();
    let index = |n: &str| names.iter().position(|x| x == n);
    let mut deps: Vec<Vec<usize>> = Vec::new();
    for (i, d) in defs.iter().enumerate() {
        let mut v = Vec::new();
        for dep in d.depends_on.iter().flatten() {
            let j = index(&dep.container_name).ok_or_else(|| {
                Error::InvalidTask(format!(
                    "container {} depends on unknown container {}",
                    names[i], dep.container_name
                ))
            })?;
            v.push(j);
        }
        deps.push(v);
    }
    let mut order = Vec::new();
    let mut done = vec![false; defs.len()];
    while order.len() < defs.len() {
        let next = (0..defs.len()).find(|&i| !done[i] && deps[i].iter().all(|&j| done[j]));
        match next {
            Some(i) => {
                done[i] = true;
                order.push(i);
            }
            None => {
                let stuck: Vec<&str> = (0..defs.len())
                    .filter(|&i| !done[i])
                    .map(|i| names[i].as_str())
                    .collect();
                return Err(Error::InvalidTask(format!(
                    "dependsOn has a cycle among containers {}",
                    stuck.join(", ")
                )));
            }
        }
    }
    Ok(order)
}

/// What a container has done so far, as dependsOn conditions see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// Not started yet.
    NotStarted,
    /// Started and running, with its health.
    Running(Option<s::HealthStatus>),
    /// Exited with this code (None: it never ran, or the code is unknown).
    Exited(Option<i32>),
}

/// Whether a dependency's condition holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DepCheck {
    /// The condition holds.
    Met,
    /// Not yet.
    Wait,
    /// It never will (the reason).
    Never(String),
}

/// ECS's dependsOn conditions: START (started), COMPLETE (exited), SUCCESS (exited 0),
/// HEALTHY (its health check passed).
pub fn check_dependency(cond: s::ContainerCondition, dep_name: &str, dep: Progress) -> DepCheck {
    use s::ContainerCondition as C;
    match (cond, dep) {
        (_, Progress::NotStarted) => DepCheck::Wait,
        (C::Start, _) => DepCheck::Met,
        (C::Complete, Progress::Exited(_)) => DepCheck::Met,
        (C::Complete | C::Success, Progress::Running(_)) => DepCheck::Wait,
        (C::Success, Progress::Exited(Some(0))) => DepCheck::Met,
        (C::Success, Progress::Exited(code)) => DepCheck::Never(format!(
            "dependency container {dep_name} exited with code {} and the condition is SUCCESS",
            code.map_or("unknown".to_string(), |c| c.to_string())
        )),
        (C::Healthy, Progress::Running(Some(s::HealthStatus::Healthy))) => DepCheck::Met,
        (C::Healthy, Progress::Running(_)) => DepCheck::Wait,
        (C::Healthy, Progress::Exited(_)) => DepCheck::Never(format!(
            "dependency container {dep_name} exited before it became HEALTHY"
        )),
    }
}

/// The waves in which running containers are stopped: first those no other running
/// container depends on, then what they depended on (ECS's reverse dependency order).
/// `running[i]` says whether container `i` still needs stopping.
pub fn stop_waves(defs: &[s::ContainerDefinition], running: &[bool]) -> Vec<Vec<usize>> {
    let names: Vec<&str> = defs
        .iter()
        .map(|d| d.name.as_deref().unwrap_or_default())
        .collect();
    let mut left: Vec<bool> = running.to_vec();
    let mut waves = Vec::new();
    while left.iter().any(|x| *x) {
        let wave: Vec<usize> = (0..defs.len())
            .filter(|&i| left[i])
            .filter(|&i| {
                // Nobody still running depends on i.
                !(0..defs.len()).any(|j| {
                    j != i
                        && left[j]
                        && defs[j]
                            .depends_on
                            .iter()
                            .flatten()
                            .any(|d| d.container_name == names[i])
                })
            })
            .collect();
        // A cycle cannot be registered, but never loop forever: stop the rest together.
        let wave = if wave.is_empty() {
            (0..defs.len()).filter(|&i| left[i]).collect()
        } else {
            wave
        };
        for &i in &wave {
            left[i] = false;
        }
        waves.push(wave);
    }
    waves
}

/// A container's health check with ECS's defaults (interval 30 s, timeout 5 s, 3 retries,
/// no start period).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheckPlan {
    /// The command run inside the container.
    pub args: Vec<String>,
    /// Between checks.
    pub interval: Duration,
    /// Longest a check may run.
    pub timeout: Duration,
    /// Consecutive failures that make the container UNHEALTHY.
    pub retries: u32,
    /// Failures during this time after start do not count.
    pub start_period: Duration,
}

/// The health check of a definition, if it has a usable one.
pub fn health_check_plan(hc: &s::HealthCheck) -> Option<HealthCheckPlan> {
    let (kind, rest) = hc.command.split_first()?;
    let args = match kind.as_str() {
        "CMD" => rest.to_vec(),
        "CMD-SHELL" => vec!["/bin/sh".into(), "-c".into(), rest.join(" ")],
        "NONE" => return None,
        // Docker treats a bare command as CMD-SHELL-less exec form.
        _ => hc.command.clone(),
    };
    if args.is_empty() {
        return None;
    }
    let secs =
        |v: Option<i32>, d: u64| Duration::from_secs(v.filter(|x| *x >= 0).map_or(d, |x| x as u64));
    Some(HealthCheckPlan {
        args,
        interval: secs(hc.interval, 30),
        timeout: secs(hc.timeout, 5),
        retries: hc.retries.filter(|r| *r > 0).map_or(3, |r| r as u32),
        start_period: secs(hc.start_period, 0),
    })
}

/// Docker's health state machine as ECS reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthTracker {
    /// The current status (UNKNOWN until the first verdict).
    pub status: s::HealthStatus,
    failures: u32,
}

impl Default for HealthTracker {
    fn default() -> Self {
        HealthTracker {
            status: s::HealthStatus::Unknown,
            failures: 0,
        }
    }
}

impl HealthTracker {
    /// Records one check's outcome, `since_start` after the container started; returns the
    /// new status. A success makes it HEALTHY; `retries` consecutive failures after the start
    /// period make it UNHEALTHY.
    pub fn record(
        &mut self,
        plan: &HealthCheckPlan,
        ok: bool,
        since_start: Duration,
    ) -> s::HealthStatus {
        if ok {
            self.failures = 0;
            self.status = s::HealthStatus::Healthy;
        } else if since_start >= plan.start_period {
            self.failures += 1;
            if self.failures >= plan.retries {
                self.status = s::HealthStatus::Unhealthy;
            }
        }
        self.status
    }
}

/// A task's health from its essential containers' (ECS): UNHEALTHY if one is, HEALTHY if
/// every essential container with a health check is, else UNKNOWN.
pub fn task_health(essential_with_checks: &[s::HealthStatus]) -> s::HealthStatus {
    if essential_with_checks.is_empty() {
        return s::HealthStatus::Unknown;
    }
    if essential_with_checks.contains(&s::HealthStatus::Unhealthy) {
        s::HealthStatus::Unhealthy
    } else if essential_with_checks
        .iter()
        .all(|h| *h == s::HealthStatus::Healthy)
    {
        s::HealthStatus::Healthy
    } else {
        s::HealthStatus::Unknown
    }
}

/// Whether `new` may be reported after `last`: statuses only move forward.
pub fn should_report(last: Option<TaskStatus>, new: TaskStatus) -> bool {
    last.is_none_or(|l| new > l)
}

/// A container's exit as ECS reports it: OOM-killed containers get exit code 137 and ECS's
/// reason.
pub fn exit_report(exit: &berth_runtime::ExitStatus) -> (Option<i32>, Option<String>) {
    if exit.oom_killed {
        return (Some(137), Some(OOM_REASON.into()));
    }
    if let Some(e) = &exit.error {
        return (None, Some(format!("CannotStartContainerError: {e}")));
    }
    (Some(exit.exit_code), None)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn assignment(td: serde_json::Value, overrides: serde_json::Value) -> TaskAssignment {
        serde_json::from_value(json!({
            "taskArn": "arn:aws:ecs:us-east-1:000000000000:task/c/0123abcd",
            "clusterArn": "arn:aws:ecs:us-east-1:000000000000:cluster/c",
            "desiredStatus": "RUNNING",
            "lastStatus": "PROVISIONING",
            "taskDefinition": td,
            "overrides": overrides,
            "containers": [],
        }))
        .unwrap()
    }

    fn defs(v: serde_json::Value) -> Vec<s::ContainerDefinition> {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn ids_are_runtime_safe() {
        assert_eq!(task_id("arn:aws:ecs:us-east-1:1:task/c/abc123"), "abc123");
        assert_eq!(container_id("abc", "web app"), "abc-web_app");
        assert_eq!(container_id("abc", &"x".repeat(300)).len(), 128);
        assert_eq!(task_cgroup("abc"), "/berth/abc");
    }

    #[test]
    fn network_modes() {
        assert_eq!(
            network_plan(Some(s::NetworkMode::Host), "t"),
            Ok(NetworkPlan::Host)
        );
        assert_eq!(
            network_plan(Some(s::NetworkMode::None), "t")
                .unwrap()
                .container_mode(),
            NetworkMode::New
        );
        assert_eq!(
            network_plan(Some(s::NetworkMode::Awsvpc), "t")
                .unwrap()
                .container_mode(),
            NetworkMode::Join("/var/run/netns/berth-t".into())
        );
        assert_eq!(
            network_plan(Some(s::NetworkMode::Bridge), "t"),
            Ok(NetworkPlan::TaskNamespace("berth-t".into()))
        );
        assert_eq!(
            network_plan(None, "t"),
            network_plan(Some(s::NetworkMode::Bridge), "t")
        );
        assert!(is_bridge(None) && !is_bridge(Some(s::NetworkMode::Awsvpc)));
    }

    #[test]
    fn port_mappings_and_bindings() {
        let a: TaskAssignment = serde_json::from_value(json!({
            "taskArn": "arn:aws:ecs:us-east-1:0:task/c/t", "clusterArn": "c",
            "desiredStatus": "RUNNING", "lastStatus": "PENDING",
            "containers": [{"name": "web", "networkBindings": [
                {"containerPort": 81, "hostPort": 50001, "protocol": "tcp"}]}],
            "taskDefinition": {"containerDefinitions": [
                {"name": "web", "portMappings": [
                    {"containerPort": 80, "hostPort": 8080},
                    {"containerPort": 81},
                    {"containerPort": 53, "hostPort": 0, "protocol": "udp"}]},
                {"name": "side"}]}
        }))
        .unwrap();
        let m = port_mappings(&a).unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!((m[0].container_port, m[0].host_port), (80, Some(8080)));
        assert_eq!(m[1].host_port, None);
        assert_eq!(m[1].preferred, Some(50001));
        assert_eq!(m[0].preferred, None);
        assert_eq!(m[2].host_port, None);
        assert_eq!(m[2].protocol, crate::network::Proto::Udp);
        let b = host_bindings(&m[..1]);
        let nb = network_bindings(&b, "web").unwrap();
        assert_eq!(nb[0].bind_ip.as_deref(), Some("0.0.0.0"));
        assert_eq!(
            (nb[0].container_port, nb[0].host_port),
            (Some(80), Some(8080))
        );
        assert_eq!(nb[0].protocol, Some(s::TransportProtocol::Tcp));
        assert!(network_bindings(&b, "side").is_none());
    }

    #[test]
    fn depends_on_orders_and_detects_cycles() {
        let d = defs(json!([
            {"name": "app", "dependsOn": [{"containerName": "db", "condition": "HEALTHY"}, {"containerName": "init", "condition": "SUCCESS"}]},
            {"name": "db"},
            {"name": "init", "dependsOn": [{"containerName": "db", "condition": "START"}]},
        ]));
        assert_eq!(start_order(&d).unwrap(), [1, 2, 0]);
        // Stopping: app first, then init, then db.
        assert_eq!(
            stop_waves(&d, &[true, true, true]),
            [vec![0], vec![2], vec![1]]
        );
        assert_eq!(stop_waves(&d, &[false, true, false]), [vec![1]]);
        let cyc = defs(json!([
            {"name": "a", "dependsOn": [{"containerName": "b", "condition": "START"}]},
            {"name": "b", "dependsOn": [{"containerName": "a", "condition": "START"}]},
        ]));
        assert!(start_order(&cyc).unwrap_err().to_string().contains("cycle"));
        let unknown = defs(
            json!([{"name": "a", "dependsOn": [{"containerName": "zz", "condition": "START"}]}]),
        );
        assert!(start_order(&unknown).is_err());
    }

    #[test]
    fn dependency_conditions() {
        use s::ContainerCondition as C;
        assert_eq!(
            check_dependency(C::Start, "d", Progress::NotStarted),
            DepCheck::Wait
        );
        assert_eq!(
            check_dependency(C::Start, "d", Progress::Running(None)),
            DepCheck::Met
        );
        assert_eq!(
            check_dependency(C::Start, "d", Progress::Exited(Some(1))),
            DepCheck::Met
        );
        assert_eq!(
            check_dependency(C::Complete, "d", Progress::Running(None)),
            DepCheck::Wait
        );
        assert_eq!(
            check_dependency(C::Complete, "d", Progress::Exited(Some(1))),
            DepCheck::Met
        );
        assert_eq!(
            check_dependency(C::Success, "d", Progress::Exited(Some(0))),
            DepCheck::Met
        );
        assert!(matches!(
            check_dependency(C::Success, "d", Progress::Exited(Some(2))),
            DepCheck::Never(_)
        ));
        assert_eq!(
            check_dependency(
                C::Healthy,
                "d",
                Progress::Running(Some(s::HealthStatus::Unknown))
            ),
            DepCheck::Wait
        );
        assert_eq!(
            check_dependency(
                C::Healthy,
                "d",
                Progress::Running(Some(s::HealthStatus::Healthy))
            ),
            DepCheck::Met
        );
        assert!(matches!(
            check_dependency(C::Healthy, "d", Progress::Exited(Some(0))),
            DepCheck::Never(_)
        ));
    }

    #[test]
    fn specs_come_from_definition_overrides_and_image() {
        let a = assignment(
            json!({
                "family": "web", "revision": 3, "networkMode": "awsvpc", "cpu": "512", "memory": "1 GB",
                "volumes": [{"name": "scratch"}, {"name": "hostdata", "host": {"sourcePath": "/srv/data"}},
                            {"name": "cache", "dockerVolumeConfiguration": {"scope": "shared"}}],
                "containerDefinitions": [{
                    "name": "app", "image": "busybox", "cpu": 256, "memory": 128, "memoryReservation": 64,
                    "command": ["echo", "def"], "entryPoint": ["/bin/sh", "-c"],
                    "environment": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                    "environmentFiles": [{"type": "s3", "value": "/etc/app.env"}],
                    "workingDirectory": "/srv", "user": "app", "readonlyRootFilesystem": true,
                    "hostname": "h1", "dockerLabels": {"team": "x"},
                    "ulimits": [{"name": "nofile", "softLimit": 100, "hardLimit": 200}],
                    "mountPoints": [{"sourceVolume": "scratch", "containerPath": "/tmp/s"},
                                    {"sourceVolume": "hostdata", "containerPath": "/data", "readOnly": true},
                                    {"sourceVolume": "cache", "containerPath": "/cache"}],
                }],
            }),
            json!({"containerOverrides": [{"name": "app", "command": ["echo", "over"], "cpu": 300,
                   "environment": [{"name": "B", "value": "3"}]}]}),
        );
        let tid = task_id(&a.task_arn);
        let net = network_plan(a.task_definition.network_mode, &tid).unwrap();
        let vols = volume_sources(
            &a.task_definition,
            Path::new("/v/t"),
            Path::new("/v/shared"),
        );
        assert_eq!(vols["scratch"], PathBuf::from("/v/t/scratch"));
        assert_eq!(vols["hostdata"], PathBuf::from("/srv/data"));
        assert_eq!(vols["cache"], PathBuf::from("/v/shared/cache"));
        let def = &definitions(&a)[0];
        let env = environment(def, container_override(&a, "app"), &|p| {
            assert_eq!(p, Path::new("/etc/app.env"));
            Ok("# comment\nA=from-file\nC=file\n\n".into())
        })
        .unwrap();
        let image = ImageConfig {
            env: Some(vec!["PATH=/bin".into(), "C=image".into()]),
            cmd: Some(vec!["image-cmd".into()]),
            ..ImageConfig::default()
        };
        let ctx = TaskContext {
            assignment: &a,
            task_id: &tid,
            network: &net,
            volumes: &vols,
        };
        let spec = container_spec(&ctx, def, &image, PathBuf::from("/r"), &env).unwrap();
        assert_eq!(spec.id, "0123abcd-app");
        assert_eq!(spec.args, ["/bin/sh", "-c", "echo", "over"]);
        assert_eq!(spec.env, ["PATH=/bin", "C=file", "A=1", "B=3"]);
        assert_eq!(spec.working_dir, "/srv");
        assert_eq!(spec.user, "app");
        assert_eq!(spec.hostname, "h1");
        assert!(spec.readonly_rootfs);
        assert_eq!(spec.cgroup_path, "/berth/0123abcd/0123abcd-app");
        assert_eq!(
            spec.network,
            NetworkMode::Join("/var/run/netns/berth-0123abcd".into())
        );
        assert_eq!(spec.resources.cpu_units, Some(300));
        assert_eq!(spec.resources.memory_mib, Some(128));
        assert_eq!(spec.resources.memory_reservation_mib, Some(64));
        assert_eq!(
            spec.ulimits,
            [Ulimit {
                name: "nofile".into(),
                soft: 100,
                hard: 200
            }]
        );
        assert_eq!(spec.mounts.len(), 3);
        assert!(spec.mounts[1].read_only && spec.mounts[1].source == Path::new("/srv/data"));
        assert_eq!(spec.labels["team"], "x");
        assert_eq!(spec.labels["com.amazonaws.ecs.task-arn"], a.task_arn);
        assert_eq!(spec.labels["com.amazonaws.ecs.container-name"], "app");
        assert_eq!(
            spec.labels["com.amazonaws.ecs.task-definition-version"],
            "3"
        );
        let r = task_resources(&a).unwrap();
        assert_eq!(
            (r.cpu_units, r.cpu_limit_units, r.memory_mib),
            (Some(512), Some(512), Some(1024))
        );
    }

    #[test]
    fn specs_fall_back_to_the_image_and_reject_unknown_volumes() {
        let a = assignment(
            json!({"networkMode": "host", "containerDefinitions": [{"name": "c", "image": "i",
                   "mountPoints": [{"sourceVolume": "nope", "containerPath": "/x"}]}]}),
            json!(null),
        );
        let net = NetworkPlan::Host;
        let vols = BTreeMap::new();
        let ctx = TaskContext {
            assignment: &a,
            task_id: "t",
            network: &net,
            volumes: &vols,
        };
        let image = ImageConfig {
            entrypoint: Some(vec!["/entry".into()]),
            cmd: Some(vec!["x".into()]),
            working_dir: Some("/w".into()),
            user: Some("1000".into()),
            ..ImageConfig::default()
        };
        let def = &definitions(&a)[0];
        assert!(container_spec(&ctx, def, &image, "/r".into(), &[]).is_err());
        let mut def = def.clone();
        def.mount_points = None;
        let spec = container_spec(&ctx, &def, &image, "/r".into(), &[]).unwrap();
        assert_eq!(spec.args, ["/entry", "x"]);
        assert_eq!(
            (spec.working_dir.as_str(), spec.user.as_str()),
            ("/w", "1000")
        );
        assert_eq!(spec.network, NetworkMode::Host);
        assert!(task_resources(&a).is_none());
        assert!(env_file_path("arn:aws:s3:::bucket/key.env").is_err());
        assert_eq!(
            env_file_path("file:///etc/x.env").unwrap(),
            PathBuf::from("/etc/x.env")
        );
    }

    #[test]
    fn task_units_parse() {
        assert_eq!(parse_units("256", 1024), Some(256));
        assert_eq!(parse_units("1 vCPU", 1024), Some(1024));
        assert_eq!(parse_units("0.5 vcpu", 1024), Some(512));
        assert_eq!(parse_units("2 GB", 1024), Some(2048));
        assert_eq!(parse_units("0", 1024), None);
        assert_eq!(parse_units("lots", 1024), None);
    }

    #[test]
    fn health_checks_follow_docker() {
        let hc: s::HealthCheck = serde_json::from_value(json!({
            "command": ["CMD-SHELL", "test -f /ok"], "interval": 5, "retries": 2, "startPeriod": 10
        }))
        .unwrap();
        let p = health_check_plan(&hc).unwrap();
        assert_eq!(p.args, ["/bin/sh", "-c", "test -f /ok"]);
        assert_eq!(
            (p.interval, p.timeout, p.retries),
            (Duration::from_secs(5), Duration::from_secs(5), 2)
        );
        let cmd: s::HealthCheck =
            serde_json::from_value(json!({"command": ["CMD", "true"]})).unwrap();
        let c = health_check_plan(&cmd).unwrap();
        assert_eq!(c.args, ["true"]);
        assert_eq!(
            (c.interval, c.retries, c.start_period),
            (Duration::from_secs(30), 3, Duration::ZERO)
        );
        let mut t = HealthTracker::default();
        let s5 = Duration::from_secs(5);
        // Failures in the start period do not count.
        assert_eq!(t.record(&p, false, s5), s::HealthStatus::Unknown);
        assert_eq!(t.record(&p, false, s5), s::HealthStatus::Unknown);
        assert_eq!(t.record(&p, true, s5), s::HealthStatus::Healthy);
        let s20 = Duration::from_secs(20);
        assert_eq!(t.record(&p, false, s20), s::HealthStatus::Healthy);
        assert_eq!(t.record(&p, false, s20), s::HealthStatus::Unhealthy);
        assert_eq!(t.record(&p, true, s20), s::HealthStatus::Healthy);
        use s::HealthStatus::*;
        assert_eq!(task_health(&[]), Unknown);
        assert_eq!(task_health(&[Healthy, Healthy]), Healthy);
        assert_eq!(task_health(&[Healthy, Unknown]), Unknown);
        assert_eq!(task_health(&[Healthy, Unhealthy]), Unhealthy);
    }

    #[test]
    fn reports_only_move_forward_and_stop_codes() {
        assert!(should_report(None, TaskStatus::Pending));
        assert!(should_report(
            Some(TaskStatus::Pending),
            TaskStatus::Running
        ));
        assert!(!should_report(
            Some(TaskStatus::Running),
            TaskStatus::Running
        ));
        assert!(!should_report(
            Some(TaskStatus::Running),
            TaskStatus::Pending
        ));
        assert!(!should_report(
            Some(TaskStatus::Stopped),
            TaskStatus::Running
        ));
        assert_eq!(
            stop_code_for_reason(ESSENTIAL_EXITED_REASON),
            "EssentialContainerExited"
        );
        assert_eq!(
            stop_code_for_reason("CannotPullContainerError: x"),
            "TaskFailedToStart"
        );
        let exit = |code, oom| berth_runtime::ExitStatus {
            exit_code: code,
            signal: None,
            oom_killed: oom,
            started_at_ms: 0,
            finished_at_ms: 0,
            error: None,
        };
        assert_eq!(exit_report(&exit(3, false)), (Some(3), None));
        assert_eq!(
            exit_report(&exit(9, true)),
            (Some(137), Some(OOM_REASON.into()))
        );
        assert_eq!(
            parse_env_file("A=1\n # c\nB==x\nbad\n"),
            [("A".into(), "1".into()), ("B".into(), "=x".into())]
        );
    }
}
