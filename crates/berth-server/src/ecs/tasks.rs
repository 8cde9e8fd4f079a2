//! Tasks: RunTask, StartTask, StopTask, DescribeTasks, ListTasks, and the agents' state
//! reports (SubmitTaskStateChange, SubmitContainerStateChange).
//!
//! A task is stored as its wire shape plus what its host's agent needs (the task definition
//! revision it runs) under `<cluster>/<task id>`. Where it runs is a *host*: a container
//! instance (EC2 launch type) or Berth's own managed capacity (Fargate). Each host has an
//! assignment sequence number and an index of its tasks (account-wide, so the managed host
//! sees every account and region); every change an agent must act on bumps the sequence and
//! wakes the host's pending poll (see `crate::agent_channel`).

use std::sync::Arc;

use berth_model::lifecycle::{TaskStatus, advance_desired};
use berth_scheduler as sched;
use berth_store::{Scope, Tx};
use berth_wire::agent::TaskAssignment;
use berth_wire::ecs::shapes as s;
use berth_wire::ecs::shapes::TaskField;
use berth_wire::{AwsError, RequestContext, Timestamp};
use serde::{Deserialize, Serialize};

use super::Ecs;
use super::capacity::{self, Capacity};
use super::cluster_index::{ClusterIndex, Held, HostTask, PlannedOn};
use super::common::{self, Page, aws, invalid, kind, scope};
use super::instance_usage::{self, InstanceUsage};
use super::placement;
use super::task_cache::{TaskCache, read_task};
use super::task_credentials::{self, RolePurpose};
use super::task_definitions::{self, Ident};
use crate::failure::Failure;

/// Store kinds of the task machinery.
pub mod task_kind {
    pub const TASK: &str = "ecs/task";
    /// Account-wide record of a host: its last poll.
    pub const HOST: &str = "ecs/host";
    /// RunTask clientToken → the tasks it made.
    pub const RUN_TOKEN: &str = "ecs/run-task-token";
}

/// The host of Berth-managed (Fargate) capacity.
pub const MANAGED_HOST: &str = "managed";

/// How long a STOPPED task stays visible before it is pruned (ECS: at least an hour).
pub const STOPPED_RETENTION_MS: i64 = 60 * 60 * 1000;

/// One stored task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredTask {
    pub task: s::Task,
    /// Where it runs (see [`instance_host`], [`MANAGED_HOST`]).
    pub host: String,
    /// The store id of its container instance (`<cluster>/<id>`), for EC2 tasks.
    #[serde(default)]
    pub container_instance: Option<String>,
    /// The revision it runs, as registered.
    pub task_definition: s::TaskDefinition,
    /// What it reserved on its container instance.
    #[serde(default)]
    pub reserved_cpu: i32,
    #[serde(default)]
    pub reserved_memory: i32,
    #[serde(default)]
    pub reserved_ports: Vec<i32>,
    #[serde(default)]
    pub reserved_ports_udp: Vec<i32>,
    /// The GPU ids it holds on its container instance.
    #[serde(default)]
    pub reserved_gpus: Vec<String>,
}

impl StoredTask {
    pub fn last_status(&self) -> TaskStatus {
        self.task
            .last_status
            .as_deref()
            .and_then(TaskStatus::parse)
            .unwrap_or(TaskStatus::Provisioning)
    }
    pub fn desired_status(&self) -> TaskStatus {
        self.task
            .desired_status
            .as_deref()
            .and_then(TaskStatus::parse)
            .unwrap_or(TaskStatus::Running)
    }
    pub fn id(&self) -> String {
        let arn = self.task.task_arn.as_deref().unwrap_or("");
        arn.rsplit('/').next().unwrap_or("").to_string()
    }
    fn cluster(&self) -> String {
        let arn = self.task.cluster_arn.as_deref().unwrap_or("");
        arn.rsplit('/').next().unwrap_or("").to_string()
    }
    /// Its record's id in the store: `<cluster>/<task id>`.
    fn store_id(&self) -> String {
        format!("{}/{}", self.cluster(), self.id())
    }
    /// The task as placement counts it on its instance (task group and family).
    pub fn running_task(&self) -> sched::RunningTask {
        sched::RunningTask {
            group: self.task.group.clone(),
            family: self.task_definition.family.clone().unwrap_or_default(),
        }
    }
}

/// The host name of a container instance (stored as `<cluster>/<id>` in `scope`).
pub fn instance_host(scope: Scope<'_>, instance_store_id: &str) -> String {
    format!(
        "instance|{}|{}|{}",
        scope.account, scope.region, instance_store_id
    )
}

/// How a task is named among its host's entries: `{account}|{region}|{cluster/id}`.
fn host_entry_task(scope: Scope<'_>, task_store_id: &str) -> String {
    format!("{}|{}|{}", scope.account, scope.region, task_store_id)
}

pub(crate) const GLOBAL: Scope<'static> = Scope {
    account: "",
    region: "",
};

/// `host`'s current sequence and the assignments of its tasks that are not STOPPED.
pub fn assignments(tx: &Tx<'_>, host: &str) -> Result<(i64, Vec<TaskAssignment>), Failure> {
    assignments_since(tx, &TaskCache::default(), host, None)
}

/// [`assignments`], only of the tasks that changed after sequence `since` when given.
pub fn assignments_since(
    tx: &Tx<'_>,
    cache: &TaskCache,
    host: &str,
    since: Option<i64>,
) -> Result<(i64, Vec<TaskAssignment>), Failure> {
    let mut out = Vec::new();
    let entries = match since {
        Some(since) => tx.host_entries_since(host, since)?,
        None => tx.host_entries(host, "")?,
    };
    // The host's sequence is its latest entry's: the highest of those read when any were (all
    // entries past `since` are), else one more seek (it may be below `since`: an entry deleted
    // with its task, or a store started over under a running agent).
    let seq = match entries.iter().map(|e| e.seq).max() {
        Some(seq) => seq,
        None => tx.host_sequence(host)?,
    };
    // Every change an agent must act on moves the host's sequence: none since `since`, none
    // to read.
    if since.is_some_and(|since| seq <= since) {
        return Ok((seq, out));
    }
    let mut networks = crate::ec2::interfaces::Networks::default();
    for e in entries {
        let mut parts = e.task.splitn(3, '|');
        let (Some(account), Some(region), Some(id)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let Some((t, _)) = read_task(tx, cache, Scope::new(account, region), id)? else {
            continue;
        };
        // Credentials are vended only for the roles a task has: no role, nothing to read.
        let credentials = |purpose| -> Result<_, Failure> {
            match task_credentials::role_for(purpose, &t.task_definition, t.task.overrides.as_ref())
            {
                Some(_) => {
                    task_credentials::for_assignment(tx, purpose, Scope::new(account, region), id)
                }
                None => Ok(None),
            }
        };
        out.push(TaskAssignment {
            task_arn: t.task.task_arn.clone().unwrap_or_default(),
            cluster_arn: t.task.cluster_arn.clone().unwrap_or_default(),
            desired_status: t.desired_status().as_str().to_string(),
            last_status: t.last_status().as_str().to_string(),
            task_definition: t.task_definition.clone(),
            overrides: t.task.overrides.clone(),
            cpu: t.task.cpu.clone(),
            memory: t.task.memory.clone(),
            launch_type: t.task.launch_type,
            containers: t.task.containers.clone().unwrap_or_default(),
            stopped_reason: t.task.stopped_reason.clone(),
            task_role_credentials: credentials(RolePurpose::Task)?,
            execution_role_credentials: credentials(RolePurpose::Execution)?,
            network: networks.of(tx, Scope::new(account, region), &t.task)?,
        });
    }
    Ok((seq, out))
}

/// Records that `host` polled at `now_ms` (the agent's heartbeat).
pub fn record_poll(tx: &mut Tx<'_>, host: &str, now_ms: i64) -> Result<(), Failure> {
    tx.put(GLOBAL, task_kind::HOST, host, None, &now_ms)?;
    Ok(())
}

/// When `host` last polled.
pub fn last_poll(tx: &Tx<'_>, host: &str) -> Result<Option<i64>, Failure> {
    Ok(tx
        .get_json::<i64>(GLOBAL, task_kind::HOST, host)?
        .map(|(v, _)| v))
}

/// Whether the agent of container instance `instance_store_id` polled recently.
pub fn agent_connected(
    tx: &Tx<'_>,
    scope_: Scope<'_>,
    instance_store_id: &str,
    now: Timestamp,
) -> Result<bool, Failure> {
    let host = instance_host(scope_, instance_store_id);
    Ok(connected_until(last_poll(tx, &host)?, now.millis()).is_some())
}

/// Until when an agent whose last poll was at `last` counts as connected, if it does at
/// `now_ms` (`agentConnected`).
pub fn connected_until(last: Option<i64>, now_ms: i64) -> Option<i64> {
    let limit = berth_wire::agent::DISCONNECT_AFTER_SECONDS * 1000;
    last.filter(|at| now_ms - at < limit)
        .map(|at| at.saturating_add(limit))
}

fn task_arn(ctx: &RequestContext, cluster: &str, id: &str) -> String {
    common::arn(ctx, format!("task/{cluster}/{id}"))
}

/// A new task id: 32 hex digits as ECS's, in creation order (see [`crate::ids`]).
fn new_id(ctx: &RequestContext) -> String {
    crate::ids::time_ordered(ctx.now.millis())
        .simple()
        .to_string()
}

/// The store id (`<cluster>/<id>`) a `task` parameter (id or ARN) names in `cluster`.
fn task_store_id(ctx: &RequestContext, cluster: &str, ident: &str) -> Option<String> {
    common::cluster_scoped_id(ctx, cluster, ident, "task")
}

/// Checks a task's overrides against its task definition.
fn validate_overrides(td: &s::TaskDefinition, o: Option<&s::TaskOverride>) -> Result<(), AwsError> {
    let Some(o) = o else { return Ok(()) };
    let names: Vec<&str> = td
        .container_definitions
        .iter()
        .flatten()
        .filter_map(|c| c.name.as_deref())
        .collect();
    for c in o.container_overrides.iter().flatten() {
        let name = c.name.as_deref().unwrap_or("");
        if !names.contains(&name) {
            return Err(invalid(format!(
                "Override for container named {name} is not a container in the TaskDefinition."
            )));
        }
        if c.cpu.is_some_and(|v| v < 0)
            || c.memory.is_some_and(|v| v < 6)
            || c.memory_reservation.is_some_and(|v| v < 6)
        {
            return Err(invalid(format!(
                "Invalid cpu or memory override for container {name}."
            )));
        }
    }
    if let Some(cpu) = &o.cpu
        && task_definitions::parse_task_cpu(cpu).is_none()
    {
        return Err(invalid(format!("Invalid 'cpu' setting for task: {cpu}.")));
    }
    if let Some(m) = &o.memory
        && task_definitions::parse_task_memory(m).is_none()
    {
        return Err(invalid(format!("Invalid 'memory' setting for task: {m}.")));
    }
    Ok(())
}

/// The container definitions with their overrides applied (cpu/memory only: command and
/// environment overrides travel to the agent in the task's `overrides`).
fn effective_td(td: &s::TaskDefinition, o: Option<&s::TaskOverride>) -> s::TaskDefinition {
    let mut td = td.clone();
    if let Some(o) = o {
        for c in td.container_definitions.iter_mut().flatten() {
            if let Some(co) = o
                .container_overrides
                .iter()
                .flatten()
                .find(|x| x.name == c.name)
            {
                if co.cpu.is_some() {
                    c.cpu = co.cpu;
                }
                if co.memory.is_some() {
                    c.memory = co.memory;
                }
                if co.memory_reservation.is_some() {
                    c.memory_reservation = co.memory_reservation;
                }
            }
        }
        if o.cpu.is_some() {
            td.cpu = o.cpu.clone();
        }
        if o.memory.is_some() {
            td.memory = o.memory.clone();
        }
    }
    td
}

/// What a task reserves on its instance, from its effective task definition.
fn needs_of(td: &s::TaskDefinition) -> placement::Needs {
    placement::needs(
        td,
        td.cpu.as_deref().and_then(task_definitions::parse_task_cpu),
        td.memory
            .as_deref()
            .and_then(task_definitions::parse_task_memory),
    )
}

/// Once the transaction that changed their tasks committed: wakes the polls of `hosts` (their
/// assignments changed) and the service controller (a task changed, whether or not an agent
/// must hear of it).
fn notify_all(ecs: &Ecs, hosts: &[String]) {
    for h in hosts {
        ecs.notifier.notify(h);
    }
    ecs.notifier.wake_controller();
}

/// What RunTask and StartTask share once the capacity is known.
struct Launch<'a> {
    ctx: &'a RequestContext,
    cluster: &'a s::Cluster,
    td: &'a s::TaskDefinition,
    td_tags: &'a [s::Tag],
    overrides: Option<&'a s::TaskOverride>,
    group: Option<String>,
    started_by: Option<String>,
    tags: Vec<s::Tag>,
    propagate_tags: Option<s::PropagateTags>,
    managed_tags: bool,
    network_configuration: Option<&'a s::NetworkConfiguration>,
}

impl Launch<'_> {
    fn validate_network(&self, fargate: bool) -> Result<(), AwsError> {
        match self.td.network_mode {
            Some(s::NetworkMode::Awsvpc) => {
                let conf = self.network_configuration.and_then(|n| n.awsvpc_configuration.as_ref()).ok_or_else(|| {
                    invalid("Network Configuration must be provided when networkMode 'awsvpc' is specified.")
                })?;
                if conf.subnets.is_empty() {
                    return Err(invalid("subnets can not be empty."));
                }
                if conf.subnets.len() > 16 {
                    return Err(invalid("subnets can have at most 16 items."));
                }
                if conf.security_groups.as_ref().is_some_and(|g| g.len() > 5) {
                    return Err(invalid("securityGroups can have at most 5 items."));
                }
                if !fargate && conf.assign_public_ip == Some(s::AssignPublicIp::Enabled) {
                    return Err(invalid(
                        "Assign public IP is not supported for this launch type.",
                    ));
                }
            }
            _ if self
                .network_configuration
                .is_some_and(|n| n.awsvpc_configuration.is_some()) =>
            {
                return Err(invalid(
                    "Network Configuration is not valid for the given networkMode of this task definition.",
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// A new task record, PROVISIONING (awsvpc) or PENDING, desired RUNNING.
    fn task(
        &self,
        host: String,
        instance: Option<(&str, &s::ContainerInstance)>,
        fargate: Option<&str>,
    ) -> StoredTask {
        let ctx = self.ctx;
        let cluster_name = self.cluster.cluster_name.clone().unwrap_or_default();
        let id = new_id(ctx);
        let arn = task_arn(ctx, &cluster_name, &id);
        let td = effective_td(self.td, self.overrides);
        let needs = needs_of(&td);
        let containers = td
            .container_definitions
            .iter()
            .flatten()
            .map(|c| s::Container {
                container_arn: Some(common::arn(
                    ctx,
                    format!("container/{cluster_name}/{id}/{}", uuid::Uuid::new_v4()),
                )),
                task_arn: Some(arn.clone()),
                name: c.name.clone(),
                image: c.image.clone(),
                last_status: Some("PENDING".into()),
                network_interfaces: Some(Vec::new()),
                cpu: Some(c.cpu.unwrap_or(0).to_string()),
                memory: c.memory.map(|m| m.to_string()),
                memory_reservation: c.memory_reservation.map(|m| m.to_string()),
                health_status: c.health_check.as_ref().map(|_| s::HealthStatus::Unknown),
                ..Default::default()
            })
            .collect();
        let awsvpc = td.network_mode == Some(s::NetworkMode::Awsvpc);
        let mut tags = Vec::new();
        if self.propagate_tags == Some(s::PropagateTags::TaskDefinition) {
            common::merge_tags(&mut tags, self.td_tags);
        }
        common::merge_tags(&mut tags, &self.tags);
        if self.managed_tags {
            common::merge_tags(
                &mut tags,
                &[s::Tag {
                    key: Some("aws:ecs:clusterName".into()),
                    value: Some(cluster_name.clone()),
                }],
            );
        }
        let az = instance
            .and_then(|(_, i)| {
                i.attributes
                    .iter()
                    .flatten()
                    .find(|a| a.name == "ecs.availability-zone")
                    .and_then(|a| a.value.clone())
            })
            .unwrap_or_else(|| format!("{}a", ctx.region));
        let attachments = if awsvpc {
            let subnet = self
                .network_configuration
                .and_then(|n| n.awsvpc_configuration.as_ref())
                .and_then(|a| a.subnets.first().cloned())
                .unwrap_or_default();
            vec![s::Attachment {
                id: Some(uuid::Uuid::new_v4().to_string()),
                r#type: Some("ElasticNetworkInterface".into()),
                status: Some("PRECREATED".into()),
                details: Some(vec![s::KeyValuePair {
                    name: Some("subnetId".into()),
                    value: Some(subnet),
                }]),
            }]
        } else {
            Vec::new()
        };
        let task = s::Task {
            task_arn: Some(arn),
            cluster_arn: self.cluster.cluster_arn.clone(),
            task_definition_arn: td.task_definition_arn.clone(),
            container_instance_arn: instance.and_then(|(_, i)| i.container_instance_arn.clone()),
            overrides: Some(self.overrides.cloned().unwrap_or(s::TaskOverride {
                container_overrides: Some(Vec::new()),
                inference_accelerator_overrides: Some(Vec::new()),
                ..Default::default()
            })),
            last_status: Some(if awsvpc { "PROVISIONING" } else { "PENDING" }.into()),
            desired_status: Some("RUNNING".into()),
            cpu: Some(needs.cpu.to_string()),
            memory: Some(needs.memory.to_string()),
            containers: Some(containers),
            started_by: self.started_by.clone(),
            version: Some(1),
            created_at: Some(ctx.now),
            group: Some(
                self.group
                    .clone()
                    .unwrap_or_else(|| format!("family:{}", td.family.clone().unwrap_or_default())),
            ),
            launch_type: Some(if fargate.is_some() {
                s::LaunchType::Fargate
            } else {
                s::LaunchType::Ec2
            }),
            capacity_provider_name: fargate.map(String::from),
            platform_version: fargate.map(|_| "1.4.0".to_string()),
            platform_family: fargate.map(|_| "Linux".to_string()),
            attachments: Some(attachments),
            attributes: Some(vec![s::Attribute {
                name: "ecs.cpu-architecture".into(),
                value: Some(
                    if std::env::consts::ARCH == "aarch64" {
                        "arm64"
                    } else {
                        "x86_64"
                    }
                    .into(),
                ),
                ..Default::default()
            }]),
            availability_zone: Some(az),
            connectivity: Some(s::Connectivity::Connected),
            connectivity_at: Some(ctx.now),
            health_status: Some(s::HealthStatus::Unknown),
            enable_execute_command: Some(false),
            tags: Some(tags),
            ephemeral_storage: fargate.map(|_| s::EphemeralStorage { size_in_gi_b: 20 }),
            ..Default::default()
        };
        StoredTask {
            task,
            host,
            container_instance: instance.map(|(id, _)| id.to_string()),
            task_definition: td,
            reserved_cpu: if fargate.is_some() { 0 } else { needs.cpu },
            reserved_memory: if fargate.is_some() { 0 } else { needs.memory },
            reserved_ports: if fargate.is_some() {
                Vec::new()
            } else {
                needs.ports
            },
            reserved_ports_udp: if fargate.is_some() {
                Vec::new()
            } else {
                needs.ports_udp
            },
            reserved_gpus: Vec::new(),
        }
    }
}

/// Records what placement `p` gave task `t` beyond its static needs: the dynamic host ports
/// (reserved with its static ones) and the GPU ids (its containers' `gpuIds`).
fn take_placement(t: &mut StoredTask, p: &sched::Placement) {
    t.reserved_ports.extend(&p.dynamic_ports);
    t.reserved_gpus = p.gpus.clone();
    let per_container = placement::container_gpus(&t.task_definition, &p.gpus);
    for (c, ids) in t.task.containers.iter_mut().flatten().zip(per_container) {
        if !ids.is_empty() {
            c.gpu_ids = Some(ids);
        }
    }
    // The dynamic ports go to the agent as the containers' bindings (it reports the real ones).
    let bindings = placement::dynamic_bindings(&t.task_definition, &p.dynamic_ports);
    for (c, b) in t.task.containers.iter_mut().flatten().zip(bindings) {
        if !b.is_empty() {
            c.network_bindings = Some(b);
        }
    }
}

/// Adds (`sign` = -1 reserves, +1 releases) a task's resources to its instance's remaining
/// ones, `rs`.
fn adjust_remaining(rs: &mut Vec<s::Resource>, t: &StoredTask, sign: i32) {
    // An instance that registered no port set still keeps the ports its tasks take.
    for (name, ports) in [
        ("PORTS", &t.reserved_ports),
        ("PORTS_UDP", &t.reserved_ports_udp),
    ] {
        if !ports.is_empty() && !rs.iter().any(|r| r.name.as_deref() == Some(name)) {
            rs.push(s::Resource {
                name: Some(name.into()),
                r#type: Some("STRINGSET".into()),
                string_set_value: Some(Vec::new()),
                ..Default::default()
            });
        }
    }
    for r in rs.iter_mut() {
        match r.name.as_deref() {
            Some("CPU") => {
                r.integer_value = Some(r.integer_value.unwrap_or(0) + sign * t.reserved_cpu)
            }
            Some("MEMORY") => {
                r.integer_value = Some(r.integer_value.unwrap_or(0) + sign * t.reserved_memory)
            }
            Some(name @ ("PORTS" | "PORTS_UDP")) => {
                let ports = if name == "PORTS" {
                    &t.reserved_ports
                } else {
                    &t.reserved_ports_udp
                };
                let set = r.string_set_value.get_or_insert_with(Vec::new);
                for p in ports {
                    let p = p.to_string();
                    if sign < 0 {
                        if !set.contains(&p) {
                            set.push(p);
                        }
                    } else {
                        set.retain(|x| *x != p);
                    }
                }
            }
            // GPU lists the ids no task holds (PORTS lists the ports in use).
            Some("GPU") => {
                let set = r.string_set_value.get_or_insert_with(Vec::new);
                for g in &t.reserved_gpus {
                    if sign < 0 {
                        set.retain(|x| x != g);
                    } else if !set.contains(g) {
                        set.push(g.clone());
                    }
                }
            }
            _ => {}
        }
    }
}

/// Re-applies the reservations and counts of the tasks container instance
/// `instance_store_id` still holds to `ci` (whose remaining resources were reset to its
/// registered ones), e.g. when its agent registers again after a restart.
pub fn reserve_current_tasks(
    tx: &Tx<'_>,
    scope_: Scope<'_>,
    instance_store_id: &str,
    ci: &mut s::ContainerInstance,
) -> Result<(), Failure> {
    let host = instance_host(scope_, instance_store_id);
    let prefix = host_entry_task(scope_, "");
    let (mut running, mut pending) = (0, 0);
    for e in tx.host_entries(&host, &prefix)? {
        let Some(id) = e.task.strip_prefix(&prefix) else {
            continue;
        };
        let Some((t, _)) = tx.get_json::<StoredTask>(scope_, task_kind::TASK, id)? else {
            continue;
        };
        if t.last_status() == TaskStatus::Stopped {
            continue;
        }
        adjust_remaining(ci.remaining_resources.get_or_insert_with(Vec::new), &t, -1);
        if t.last_status() < TaskStatus::Running {
            pending += 1;
        } else {
            running += 1;
        }
    }
    ci.running_tasks_count = Some(running);
    ci.pending_tasks_count = Some(pending);
    Ok(())
}

/// The counter of the tasks that started (reached RUNNING) on instance `instance_store_id`
/// since its record last counted them.
///
/// A task that starts moves its instance from pending to running; counting that in the
/// instance's record meant rewriting the whole record (about 4 KiB of JSON) inside the writer
/// for every task that started, and moving the instance's version under every plan made from
/// it. The record counts tasks placed (pending) and stopped; this counter the starts in
/// between, and what the instance shows is the two together ([`with_usage`]). Only a
/// new registration, which counts its tasks afresh, sets it back to 0. An instance from before
/// the counter has none: 0.
fn started_counter(instance_store_id: &str) -> String {
    format!("ci-started/{instance_store_id}")
}

/// How many tasks started on instance `instance_store_id` beyond what its record counts.
pub fn started_tasks(
    tx: &Tx<'_>,
    scope_: Scope<'_>,
    instance_store_id: &str,
) -> Result<i64, Failure> {
    Ok(tx
        .sequence_if_any(scope_, &started_counter(instance_store_id))?
        .unwrap_or(0))
}

/// `ci`, as stored for instance `instance_store_id`, with what its tasks use as it shows it:
/// its usage record's remaining resources and counts (see [`instance_usage`]), with the tasks
/// that started since moved from pending to running.
pub fn with_usage(
    tx: &Tx<'_>,
    scope_: Scope<'_>,
    instance_store_id: &str,
    ci: &mut s::ContainerInstance,
) -> Result<(), Failure> {
    instance_usage::show(tx, scope_, instance_store_id, ci)?;
    let started = started_tasks(tx, scope_, instance_store_id)?;
    count_started(ci, started);
    Ok(())
}

/// Moves `started` tasks of `ci`'s counts from pending to running (never below 0 shown).
pub fn count_started(ci: &mut s::ContainerInstance, started: i64) {
    let (pending, running) = counts_with_started(ci, started);
    ci.pending_tasks_count = Some(pending);
    ci.running_tasks_count = Some(running);
}

/// `ci`'s (pending, running) counts as shown, with `started` tasks moved across.
pub fn counts_with_started(ci: &s::ContainerInstance, started: i64) -> (i32, i32) {
    let started = i32::try_from(started).unwrap_or(i32::MAX);
    let pending = ci.pending_tasks_count.unwrap_or(0).saturating_sub(started);
    let running = ci.running_tasks_count.unwrap_or(0).saturating_add(started);
    (pending.max(0), running.max(0))
}

/// Sets instance `instance_store_id`'s started-tasks counter back to 0: its record has just
/// counted its tasks afresh ([`reserve_current_tasks`]).
pub fn forget_started_tasks(
    tx: &mut Tx<'_>,
    scope_: Scope<'_>,
    instance_store_id: &str,
) -> Result<(), Failure> {
    let started = started_tasks(tx, scope_, instance_store_id)?;
    if started != 0 {
        tx.add_to_sequence(scope_, &started_counter(instance_store_id), -started)?;
    }
    Ok(())
}

/// Stores a new task, indexes it under its host and wakes the host; its cluster's counters
/// move in `counts` (written by the caller after the call's tasks). Its instance's
/// reservation is [`Reservations`]'s business.
fn create_task(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    t: &mut StoredTask,
    network: Option<&s::NetworkConfiguration>,
    hosts: &mut Vec<String>,
    counts: &mut ClusterCounts,
) -> Result<(), Failure> {
    let id = t.store_id();
    // An awsvpc task gets its ENI now (the tasks whose rules name its groups hear of it).
    if t.task_definition.network_mode == Some(s::NetworkMode::Awsvpc)
        && let Some(conf) = network.and_then(|n| n.awsvpc_configuration.as_ref())
    {
        let zone = t
            .container_instance
            .as_ref()
            .and(t.task.availability_zone.clone());
        let peers = crate::ec2::interfaces::attach_task(
            tx,
            ctx,
            &id,
            &t.host,
            &mut t.task,
            conf,
            zone.as_deref(),
        )?;
        for h in peers {
            if !hosts.contains(&h) {
                hosts.push(h);
            }
        }
    }
    tx.insert(scope(ctx), task_kind::TASK, &id, t)?;
    counts.count(&t.cluster(), None, t.last_status());
    super::task_credentials::for_new_task(
        tx,
        ctx,
        &id,
        &t.id(),
        &t.task_definition,
        t.task.overrides.as_ref(),
    )?;
    touch_host_task(tx, scope(ctx), &id, t)?;
    if !hosts.contains(&t.host) {
        hosts.push(t.host.clone());
    }
    Ok(())
}

/// Marks task `task_store_id` of `scope` as changed on `t.host` at a new assignment sequence
/// (the host's agent must look again; a host's sequence is its latest entry's, so every
/// write an agent must act on goes through here).
pub fn touch_host_task(
    tx: &mut Tx<'_>,
    scope_: Scope<'_>,
    task_store_id: &str,
    t: &StoredTask,
) -> Result<i64, Failure> {
    let seq = tx.next_host_sequence()?;
    tx.put_host_entry(
        &t.host,
        &host_entry_task(scope_, task_store_id),
        seq,
        &HostTask {
            seq,
            group: t.task.group.clone(),
            family: t.task_definition.family.clone().unwrap_or_default(),
        },
    )?;
    Ok(seq)
}

/// One container instance a write touches: its usage as first read or planned from (with
/// the versions of its usage record and of its record then), adjusted in memory task by task,
/// with the tasks it gained or gave back.
struct Touched {
    id: String,
    usage: InstanceUsage,
    usage_version: i64,
    record_version: i64,
    tasks: Vec<sched::RunningTask>,
}

/// Container instances one write touches, each once; each one's usage is written once at the
/// write's end with the versions it was seen at expected (a conflict if anything else moved
/// either meanwhile), and through to the cluster index once committed. Its record is not
/// written: what tasks change lives in its usage record ([`instance_usage`]).
#[derive(Default)]
struct TouchedInstances(Vec<Touched>);

impl TouchedInstances {
    /// Where instance `id` is, if it was touched.
    fn position(&self, id: &str) -> Option<usize> {
        self.0.iter().position(|t| t.id == id)
    }

    /// Touches instance `id`, using `usage` (at `usage_version`, its record at
    /// `record_version`); where it is.
    fn push(
        &mut self,
        id: &str,
        usage: InstanceUsage,
        usage_version: i64,
        record_version: i64,
    ) -> usize {
        self.0.push(Touched {
            id: id.to_string(),
            usage,
            usage_version,
            record_version,
            tasks: Vec::new(),
        });
        self.0.len() - 1
    }

    /// Writes each instance's usage with the versions it was first seen at, and the index's
    /// entry once committed, with `held` of the tasks it gained or gave back.
    fn apply(
        self,
        tx: &mut Tx<'_>,
        index: &Arc<ClusterIndex>,
        scope_: Scope<'_>,
        held: fn(Vec<sched::RunningTask>) -> Held,
    ) -> Result<(), Failure> {
        for t in self.0 {
            let version = instance_usage::write(
                tx,
                scope_,
                &t.id,
                t.record_version,
                t.usage_version,
                &t.usage,
            )?;
            let index = index.clone();
            let (account, region) = (scope_.account.to_string(), scope_.region.to_string());
            let held = held(t.tasks);
            tx.after_commit(move || {
                index.usage_written(Scope::new(&account, &region), &t.id, t.usage, version, held)
            });
        }
        Ok(())
    }
}

/// What the tasks of one call reserve on their instances: each instance's record as the plan
/// saw it (and the version it had), adjusted task by task, written once per instance with that
/// version expected (a stale plan fails with a conflict, it never overcommits), and written
/// through to the cluster index once committed.
#[derive(Default)]
pub struct Reservations {
    touched: TouchedInstances,
    /// How the call's new tasks move their clusters' counters.
    counts: ClusterCounts,
}

impl Reservations {
    fn is_empty(&self) -> bool {
        self.touched.0.is_empty()
    }

    /// Instance `i` (as the index has it) with what these reservations took on it.
    fn as_left(&self, i: &sched::Instance) -> sched::Instance {
        match self.touched.position(&i.id).map(|k| &self.touched.0[k]) {
            Some(touched) => {
                let mut left = i.clone();
                // Reservations add pending tasks only; the running count (with the tasks
                // started beyond the record's count) is the index's.
                let running = i.running_tasks_count;
                let mut held = i.tasks.clone();
                held.extend(touched.tasks.iter().cloned());
                placement::set_usage(&mut left, &touched.usage, held);
                left.running_tasks_count = running;
                left
            }
            None => i.clone(),
        }
    }

    /// Reserves `t` on instance `id`, planned from what the index had of it (`planned`: its
    /// usage and the versions to expect).
    fn add(&mut self, id: &str, planned: &PlannedOn, t: &StoredTask) {
        let k = self.touched.position(id).unwrap_or_else(|| {
            self.touched.push(
                id,
                planned.usage.clone(),
                planned.usage_version,
                planned.record_version,
            )
        });
        let touched = &mut self.touched.0[k];
        adjust_remaining(&mut touched.usage.remaining_resources, t, -1);
        touched.usage.pending_tasks_count += 1;
        touched.tasks.push(t.running_task());
    }

    /// Writes each touched instance with the version it was planned from (a conflict if it
    /// changed since), and writes the index through once the transaction commits.
    pub fn apply(
        self,
        tx: &mut Tx<'_>,
        scope_: Scope<'_>,
        index: &Arc<ClusterIndex>,
    ) -> Result<(), Failure> {
        self.touched.apply(tx, index, scope_, Held::Added)?;
        self.counts.apply(tx, scope_)
    }
}

/// How the tasks one write creates or moves change their clusters' (running, pending)
/// counters, summed per cluster and written once each at the write's end (two counter rows
/// per cluster, not two per task). Apply it after the tasks' records are written.
#[derive(Default)]
struct ClusterCounts(Vec<(String, i64, i64)>);

impl ClusterCounts {
    /// Counts a task of `cluster` whose status went from `before` (None: a new task) to
    /// `after`.
    fn count(&mut self, cluster: &str, before: Option<TaskStatus>, after: TaskStatus) {
        let (running, pending) = count_deltas(before, after);
        if running == 0 && pending == 0 {
            return;
        }
        match self.0.iter_mut().find(|(c, ..)| c == cluster) {
            Some((_, r, p)) => {
                *r += running;
                *p += pending;
            }
            None => self.0.push((cluster.to_string(), running, pending)),
        }
    }

    fn apply(self, tx: &mut Tx<'_>, scope_: Scope<'_>) -> Result<(), Failure> {
        for (cluster, running, pending) in self.0 {
            move_cluster_counts(tx, scope_, &cluster, running, pending)?;
        }
        Ok(())
    }
}

/// How many times a write whose plan went stale is planned again.
pub const PLAN_ATTEMPTS: usize = 4;

/// Runs `attempt` until it does not fail with a conflict on a container instance record (a
/// plan made from a stale view of it), at most `attempts` times; `stale` hears of each
/// instance that was.
pub fn with_replanning<T>(
    attempts: usize,
    mut attempt: impl FnMut() -> Result<T, Failure>,
    mut stale: impl FnMut(&str),
) -> Result<T, Failure> {
    let mut left = attempts.max(1);
    loop {
        match attempt() {
            Err(Failure::Store(berth_store::StoreError::Conflict { kind: k, id, .. }))
                if k == kind::CONTAINER_INSTANCE && left > 1 =>
            {
                stale(&id);
                left -= 1;
            }
            other => return other,
        }
    }
}

fn present(t: &StoredTask, include: &[TaskField]) -> s::Task {
    let mut task = t.task.clone();
    if !include.contains(&TaskField::Tags) {
        task.tags = None;
    }
    task
}

/// The tasks (not STOPPED) each container instance of `cluster` holds, by instance store id.
pub fn held_tasks(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    cluster: &str,
) -> Result<std::collections::HashMap<String, sched::HeldTasks>, Failure> {
    let mut held: std::collections::HashMap<String, sched::HeldTasks> =
        std::collections::HashMap::new();
    for (_, t) in tx.list_json::<StoredTask>(scope(ctx), task_kind::TASK, &format!("{cluster}/"))? {
        if let Some(ci) = &t.container_instance
            && t.last_status() != TaskStatus::Stopped
        {
            held.entry(ci.clone()).or_default().push(t.running_task());
        }
    }
    Ok(held)
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RunToken {
    task_ids: Vec<String>,
    failures: Vec<s::Failure>,
}

pub fn run(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::RunTaskRequest,
) -> Result<s::RunTaskResponse, AwsError> {
    let count = input.count.unwrap_or(1);
    if !(1..=10).contains(&count) {
        return Err(invalid("count must be between 1 and 10."));
    }
    if input
        .started_by
        .as_ref()
        .is_some_and(|s| s.chars().count() > 128)
    {
        return Err(invalid("startedBy may not be longer than 128 characters."));
    }
    if input
        .group
        .as_ref()
        .is_some_and(|g| g.chars().count() > 255)
    {
        return Err(invalid("group may not be longer than 255 characters."));
    }
    if input
        .client_token
        .as_ref()
        .is_some_and(|t| t.is_empty() || t.len() > 64)
    {
        return Err(invalid("clientToken must be between 1 and 64 characters."));
    }
    let tags = input.tags.clone().unwrap_or_default();
    common::validate_tags(&tags)?;
    let run = with_replanning(
        PLAN_ATTEMPTS,
        || run_once(ecs, ctx, &input, &tags),
        |id| ecs.index.invalidate(scope(ctx), &[id.to_string()]),
    )
    .map_err(aws)?;
    // The reply is made once the writer is free.
    let resp = s::RunTaskResponse {
        tasks: Some(
            run.tasks
                .iter()
                .map(|t| present(t, &[TaskField::Tags]))
                .collect(),
        ),
        failures: Some(run.failures),
    };
    // Kept decoded before their agents are woken: the poll and the RUNNING report read them.
    if run.created {
        for t in run.tasks {
            let id = t.store_id();
            ecs.task_cache.put(scope(ctx), &id, 1, Arc::new(t));
        }
    }
    notify_all(ecs, &run.hosts);
    Ok(resp)
}

/// What one RunTask attempt did: its tasks (created now, each as its new record, version 1,
/// holds it; or, for a client token already used, as the earlier call's tasks are now), the
/// failures to report, and the hosts to wake.
struct RunOutcome {
    tasks: Vec<StoredTask>,
    failures: Vec<s::Failure>,
    hosts: Vec<String>,
    created: bool,
}

/// One attempt of RunTask: plan from the cluster index and apply, in one write transaction.
fn run_once(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: &s::RunTaskRequest,
    tags: &[s::Tag],
) -> Result<RunOutcome, Failure> {
    let count = input.count.unwrap_or(1);
    ecs.store.write(|tx| -> Result<RunOutcome, Failure> {
        let (cluster, _) = common::active_cluster(tx, ctx, input.cluster.as_deref())?;
        let cluster_name = cluster.cluster_name.clone().unwrap_or_default();
        let token_id = input
            .client_token
            .as_ref()
            .map(|t| format!("{cluster_name}/{t}"));
        if let Some(tid) = &token_id
            && let Some((done, _)) =
                tx.get_json::<RunToken>(scope(ctx), task_kind::RUN_TOKEN, tid)?
        {
            let mut tasks = Vec::new();
            for id in &done.task_ids {
                if let Some((t, _)) = tx.get_json::<StoredTask>(scope(ctx), task_kind::TASK, id)? {
                    tasks.push(t);
                }
            }
            return Ok(RunOutcome {
                tasks,
                failures: done.failures,
                hosts: Vec::new(),
                created: false,
            });
        }
        let ident = task_definitions::parse_ident(ctx, &input.task_definition)?
            .ok_or_else(|| invalid("TaskDefinition not found."))?;
        let (td, _) = task_definitions::resolve(tx, ctx, &ident)?
            .ok_or_else(|| invalid("TaskDefinition not found."))?;
        if td.task_definition.status == Some(s::TaskDefinitionStatus::Inactive)
            && matches!(ident, Ident::Revision(..))
        {
            return Err(invalid("TaskDefinition is inactive").into());
        }
        if td.task_definition.status == Some(s::TaskDefinitionStatus::DeleteInProgress) {
            return Err(invalid("TaskDefinition not found.").into());
        }
        validate_overrides(&td.task_definition, input.overrides.as_ref())?;
        let shares = capacity::shares(
            &cluster,
            input.launch_type,
            input.capacity_provider_strategy.as_deref(),
            count as usize,
        )?;
        let launch = Launch {
            ctx,
            cluster: &cluster,
            td: &td.task_definition,
            td_tags: &td.tags,
            overrides: input.overrides.as_ref(),
            group: input.group.clone(),
            started_by: input.started_by.clone(),
            tags: tags.to_vec(),
            propagate_tags: input.propagate_tags,
            managed_tags: input.enable_ecs_managed_tags.unwrap_or(false),
            network_configuration: input.network_configuration.as_ref(),
        };
        // RunTask refuses what a service launch reports as a failure to place.
        for (capacity, n) in &shares {
            let (wanted, name) = match capacity {
                Capacity::Fargate { .. } => (s::Compatibility::Fargate, "FARGATE"),
                Capacity::Ec2 { .. } => (s::Compatibility::Ec2, "EC2"),
            };
            let compatible = td
                .task_definition
                .compatibilities
                .iter()
                .flatten()
                .any(|c| *c == wanted);
            if *n > 0 && !compatible {
                return Err(invalid(format!(
                    "Task definition does not support launch_type {name}."
                ))
                .into());
            }
        }
        let group = input.group.clone().unwrap_or_else(|| {
            format!(
                "family:{}",
                td.task_definition.family.clone().unwrap_or_default()
            )
        });
        let request = LaunchRequest {
            shares,
            placement_constraints: input.placement_constraints.as_deref(),
            placement_strategy: input.placement_strategy.as_deref(),
            group,
            on_instance: None,
        };
        let mut reservations = Reservations::default();
        let made = launch_tasks(tx, &ecs.index, &launch, &request, &mut reservations)?;
        if made.no_active_instance {
            return Err(invalid("No Container Instances were found in your cluster.").into());
        }
        reservations.apply(tx, scope(ctx), &ecs.index)?;
        let ids: Vec<String> = made.tasks.iter().map(StoredTask::store_id).collect();
        let failures: Vec<s::Failure> = made.refusals.iter().map(placement::failure).collect();
        if let Some(tid) = &token_id {
            tx.put(
                scope(ctx),
                task_kind::RUN_TOKEN,
                tid,
                None,
                &RunToken {
                    task_ids: ids,
                    failures: failures.clone(),
                },
            )?;
        }
        Ok(RunOutcome {
            tasks: made.tasks,
            failures,
            hosts: made.hosts,
            created: true,
        })
    })
}

pub fn start(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::StartTaskRequest,
) -> Result<s::StartTaskResponse, AwsError> {
    if input.container_instances.is_empty() || input.container_instances.len() > 10 {
        return Err(invalid(
            "containerInstances must have between 1 and 10 items.",
        ));
    }
    let tags = input.tags.clone().unwrap_or_default();
    common::validate_tags(&tags)?;
    let (resp, hosts) = with_replanning(
        PLAN_ATTEMPTS,
        || {
            ecs.store.write(
                |tx| -> Result<(s::StartTaskResponse, Vec<String>), Failure> {
                    let (cluster, _) = common::active_cluster(tx, ctx, input.cluster.as_deref())?;
                    let cluster_name = cluster.cluster_name.clone().unwrap_or_default();
                    let ident = task_definitions::parse_ident(ctx, &input.task_definition)?
                        .ok_or_else(|| invalid("TaskDefinition not found."))?;
                    let (td, _) = task_definitions::resolve(tx, ctx, &ident)?
                        .ok_or_else(|| invalid("TaskDefinition not found."))?;
                    validate_overrides(&td.task_definition, input.overrides.as_ref())?;
                    let launch = Launch {
                        ctx,
                        cluster: &cluster,
                        td: &td.task_definition,
                        td_tags: &td.tags,
                        overrides: input.overrides.as_ref(),
                        group: input.group.clone(),
                        started_by: input.started_by.clone(),
                        tags: tags.clone(),
                        propagate_tags: input.propagate_tags,
                        managed_tags: input.enable_ecs_managed_tags.unwrap_or(false),
                        network_configuration: input.network_configuration.as_ref(),
                    };
                    launch.validate_network(false)?;
                    let wanted: Vec<Option<String>> = input
                        .container_instances
                        .iter()
                        .map(|ident| {
                            super::container_instances::store_id(ctx, &cluster_name, ident)
                        })
                        .collect();
                    // The named instances that are ACTIVE, as the index has them.
                    let found = ecs.index.with_cluster(
                        tx,
                        scope(ctx),
                        &cluster_name,
                        ctx.now.millis(),
                        |st| {
                            wanted
                                .iter()
                                .map(|id| {
                                    let id = id.as_deref()?;
                                    let i = st.snapshot().instances.iter().find(|i| {
                                        i.id == id && i.status == sched::InstanceStatus::Active
                                    })?;
                                    Some((i.clone(), st.planned_on(id)?))
                                })
                                .collect::<Vec<_>>()
                        },
                    )?;
                    let etd = effective_td(&td.task_definition, input.overrides.as_ref());
                    // StartTask places where it is told: resources and the agent are checked,
                    // no constraints or strategies.
                    let request = sched::Request {
                        count: 1,
                        needs: placement::engine_needs(&needs_of(&etd), &etd),
                        required_attributes: placement::required_attributes(&etd),
                        ..sched::Request::default()
                    };
                    let mut hosts = Vec::new();
                    let mut tasks = Vec::new();
                    let mut failures = Vec::new();
                    let mut reservations = Reservations::default();
                    for (ident, found) in input.container_instances.iter().zip(found) {
                        let Some((base, planned)) = found else {
                            failures.push(s::Failure {
                                arn: Some(ident.clone()),
                                reason: Some("MISSING".into()),
                                detail: None,
                            });
                            continue;
                        };
                        // Check against the instance as this call left it (its earlier tasks count).
                        let fresh = reservations.as_left(&base);
                        if let Some(why) = sched::check(&fresh, &request) {
                            failures.push(placement::failure(&sched::Refusal::Instance {
                                id: fresh.id.clone(),
                                arn: fresh.arn.clone(),
                                reason: why,
                            }));
                            continue;
                        }
                        let mut t = launch.task(
                            instance_host(scope(ctx), &base.id),
                            Some((&base.id, &planned.record)),
                            None,
                        );
                        // The engine on this one instance picks its dynamic ports and GPU ids.
                        let one = sched::Snapshot {
                            instances: vec![fresh],
                        };
                        if let Some(Ok(p)) = sched::place(&one, &request, &mut |_| 0).tasks.first()
                        {
                            take_placement(&mut t, p);
                        }
                        create_task(
                            tx,
                            ctx,
                            &mut t,
                            launch.network_configuration,
                            &mut hosts,
                            &mut reservations.counts,
                        )?;
                        reservations.add(&base.id, &planned, &t);
                        tasks.push(present(&t, &[TaskField::Tags]));
                    }
                    reservations.apply(tx, scope(ctx), &ecs.index)?;
                    Ok((
                        s::StartTaskResponse {
                            tasks: Some(tasks),
                            failures: Some(failures),
                        },
                        hosts,
                    ))
                },
            )
        },
        |id| ecs.index.invalidate(scope(ctx), &[id.to_string()]),
    )
    .map_err(aws)?;
    notify_all(ecs, &hosts);
    Ok(resp)
}

pub fn stop(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::StopTaskRequest,
) -> Result<s::StopTaskResponse, AwsError> {
    if input
        .reason
        .as_ref()
        .is_some_and(|r| r.chars().count() > 255)
    {
        return Err(invalid("reason may not be longer than 255 characters."));
    }
    let (task, host) = ecs
        .store
        .write(|tx| -> Result<(s::Task, String), Failure> {
            let (cluster, _) = common::active_cluster(tx, ctx, input.cluster.as_deref())?;
            let cluster_name = cluster.cluster_name.clone().unwrap_or_default();
            let id = task_store_id(ctx, &cluster_name, &input.task)
                .ok_or_else(|| invalid("The referenced task was not found."))?;
            let (mut t, v) = tx
                .get_json::<StoredTask>(scope(ctx), task_kind::TASK, &id)?
                .ok_or_else(|| invalid("The referenced task was not found."))?;
            if t.desired_status() != TaskStatus::Stopped {
                t.task.desired_status = Some(
                    advance_desired(t.desired_status(), TaskStatus::Stopped)
                        .as_str()
                        .into(),
                );
                t.task.stopped_reason = Some(
                    input
                        .reason
                        .clone()
                        .filter(|r| !r.is_empty())
                        .unwrap_or_else(|| "Task stopped by user".into()),
                );
                t.task.stop_code = Some(s::TaskStopCode::UserInitiated);
                t.task.stopping_at = Some(ctx.now);
                t.task.version = Some(t.task.version.unwrap_or(1) + 1);
                tx.put(scope(ctx), task_kind::TASK, &id, Some(v), &t)?;
                touch_host_task(tx, scope(ctx), &id, &t)?;
            }
            Ok((present(&t, &[TaskField::Tags]), t.host.clone()))
        })
        .map_err(aws)?;
    ecs.notifier.notify(&host);
    Ok(s::StopTaskResponse { task: Some(task) })
}

pub fn describe(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::DescribeTasksRequest,
) -> Result<s::DescribeTasksResponse, AwsError> {
    if input.tasks.is_empty() {
        return Err(invalid("Tasks cannot be empty."));
    }
    if input.tasks.len() > 100 {
        return Err(invalid("Tasks can have at most 100 items."));
    }
    let include = input.include.clone().unwrap_or_default();
    ecs.store
        .read(|tx| -> Result<s::DescribeTasksResponse, Failure> {
            let (cluster, _) = common::active_cluster(tx, ctx, input.cluster.as_deref())?;
            let cluster_name = cluster.cluster_name.clone().unwrap_or_default();
            let mut tasks = Vec::new();
            let mut failures = Vec::new();
            for ident in &input.tasks {
                let found = match task_store_id(ctx, &cluster_name, ident) {
                    Some(id) => tx.get_json::<StoredTask>(scope(ctx), task_kind::TASK, &id)?,
                    None => None,
                };
                match found {
                    Some((t, _)) => tasks.push(present(&t, &include)),
                    None => failures.push(s::Failure {
                        arn: Some(if ident.starts_with("arn:") {
                            ident.clone()
                        } else {
                            task_arn(ctx, &cluster_name, ident)
                        }),
                        reason: Some("MISSING".into()),
                        detail: None,
                    }),
                }
            }
            Ok(s::DescribeTasksResponse {
                tasks: Some(tasks),
                failures: Some(failures),
            })
        })
        .map_err(aws)
}

pub fn list(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::ListTasksRequest,
) -> Result<s::ListTasksResponse, AwsError> {
    let page = Page::parse(input.next_token.as_deref(), input.max_results, 100)?;
    ecs.store
        .read(|tx| -> Result<s::ListTasksResponse, Failure> {
            let (cluster, _) = common::active_cluster(tx, ctx, input.cluster.as_deref())?;
            let cluster_name = cluster.cluster_name.clone().unwrap_or_default();
            let instance = match &input.container_instance {
                Some(ci) => Some(
                    super::container_instances::store_id(ctx, &cluster_name, ci)
                        .ok_or_else(|| invalid("Invalid containerInstance."))?,
                ),
                None => None,
            };
            let family = input.family.clone();
            let want_desired = match input.desired_status {
                Some(s::DesiredStatus::Stopped) => Some(TaskStatus::Stopped),
                Some(s::DesiredStatus::Pending) => Some(TaskStatus::Pending),
                _ => Some(TaskStatus::Running),
            };
            let mut rows: Vec<(String, String)> = Vec::new();
            let mut after = page.after.clone().map(|a| format!("{cluster_name}/{a}"));
            let prefix = format!("{cluster_name}/");
            loop {
                let chunk = tx.list(scope(ctx), task_kind::TASK, &prefix, after.as_deref(), 256)?;
                let done = chunk.len() < 256;
                for r in &chunk {
                    let t: StoredTask = r.decode(task_kind::TASK)?;
                    let desired = t.desired_status();
                    let desired_ok = match want_desired {
                        Some(TaskStatus::Pending) => false,
                        Some(w) => desired == w,
                        None => true,
                    };
                    let ok = desired_ok
                        && instance
                            .as_ref()
                            .is_none_or(|i| t.container_instance.as_ref() == Some(i))
                        && family
                            .as_ref()
                            .is_none_or(|f| t.task_definition.family.as_ref() == Some(f))
                        && input
                            .started_by
                            .as_ref()
                            .is_none_or(|s| t.task.started_by.as_ref() == Some(s))
                        && input
                            .launch_type
                            .is_none_or(|l| t.task.launch_type == Some(l))
                        && input.service_name.as_ref().is_none_or(|s| {
                            t.task.group.as_deref() == Some(&format!("service:{s}"))
                        });
                    if ok {
                        rows.push((
                            r.id.trim_start_matches(&prefix).to_string(),
                            t.task.task_arn.clone().unwrap_or_default(),
                        ));
                    }
                }
                after = chunk.last().map(|r| r.id.clone());
                if done || rows.len() > page.limit {
                    break;
                }
            }
            let next_token = page.next_token(&mut rows, |(id, _)| id.clone());
            Ok(s::ListTasksResponse {
                task_arns: Some(rows.into_iter().map(|(_, a)| a).collect()),
                next_token,
            })
        })
        .map_err(aws)
}

/// Applies a container's reported state to `t` (forward only).
fn apply_container_change(t: &mut StoredTask, c: &s::ContainerStateChange) {
    let Some(name) = c.container_name.as_deref() else {
        return;
    };
    let Some(container) = t
        .task
        .containers
        .iter_mut()
        .flatten()
        .find(|x| x.name.as_deref() == Some(name))
    else {
        return;
    };
    let current = container
        .last_status
        .as_deref()
        .and_then(TaskStatus::parse)
        .unwrap_or(TaskStatus::Pending);
    if let Some(reported) = c.status.as_deref().and_then(TaskStatus::parse) {
        container.last_status = Some(current.advance(reported).as_str().into());
    }
    if c.exit_code.is_some() {
        container.exit_code = c.exit_code;
    }
    if c.reason.is_some() {
        container.reason = c.reason.clone();
    }
    if c.runtime_id.is_some() {
        container.runtime_id = c.runtime_id.clone();
    }
    if c.image_digest.is_some() {
        container.image_digest = c.image_digest.clone();
    }
    if c.network_bindings.is_some() {
        container.network_bindings = c.network_bindings.clone();
    }
}

/// Record `kind/id` as `tx` sees it: `copy` (decoded outside the write, or the cluster
/// index's) when its version is still the stored one, else read and decoded here. Decoding
/// a task or an attribute-heavy container instance is most of what applying a state change
/// costs; done elsewhere, it does not hold the store's one writer.
fn current_record<T: serde::de::DeserializeOwned>(
    tx: &Tx<'_>,
    scope_: Scope<'_>,
    kind: &str,
    id: &str,
    copy: Option<(T, i64)>,
) -> Result<Option<(T, i64)>, Failure> {
    if let Some((record, v)) = copy
        && tx.version(scope_, kind, id)? == Some(v)
    {
        return Ok(Some((record, v)));
    }
    Ok(tx.get_json::<T>(scope_, kind, id)?)
}

/// The state an agent reports for a task, applied forward-only, with ECS's timestamps and
/// stop code; releases the instance's resources (and its ENI) once the task is STOPPED.
/// Returns the hosts whose assignments changed (None when the task is unknown): the task's
/// own when it must act (an essential container stopped the task), and those of tasks whose
/// security group rules changed with it.
#[allow(clippy::too_many_arguments)]
pub fn apply_task_change(
    tx: &mut Tx<'_>,
    accounting: &mut Accounting,
    scope_: Scope<'_>,
    id: &str,
    read_before: Option<(StoredTask, i64)>,
    change: &s::SubmitTaskStateChangeRequest,
    health: Option<s::HealthStatus>,
    container_health: &[(String, s::HealthStatus)],
    now: Timestamp,
) -> Result<Option<Vec<String>>, Failure> {
    let Some((mut t, v)) = current_record(tx, scope_, task_kind::TASK, id, read_before)? else {
        return Ok(None);
    };
    let before = t.last_status();
    let mut host_changed = false;
    for c in change.containers.iter().flatten() {
        apply_container_change(&mut t, c);
        // An essential container that stopped stops its task: desired STOPPED at once, as
        // ECS does, while the agent stops the other containers.
        let essential = t
            .task_definition
            .container_definitions
            .iter()
            .flatten()
            .find(|d| d.name == c.container_name)
            .is_some_and(|d| d.essential.unwrap_or(true));
        // (Before the task ran, the task's own report says why it failed to start.)
        if essential
            && before == TaskStatus::Running
            && c.status.as_deref() == Some("STOPPED")
            && t.desired_status() != TaskStatus::Stopped
        {
            t.task.desired_status = Some("STOPPED".into());
            t.task.stop_code = Some(s::TaskStopCode::EssentialContainerExited);
            t.task.stopped_reason = Some("Essential container in task exited".into());
            t.task.stopping_at = Some(now);
            host_changed = true;
        }
    }
    for (name, h) in container_health {
        if let Some(c) = t
            .task
            .containers
            .iter_mut()
            .flatten()
            .find(|c| c.name.as_deref() == Some(name))
        {
            c.health_status = Some(*h);
        }
    }
    if let Some(h) = health {
        t.task.health_status = Some(h);
    }
    if change.pull_started_at.is_some() && t.task.pull_started_at.is_none() {
        t.task.pull_started_at = change.pull_started_at;
    }
    if change.pull_stopped_at.is_some() && t.task.pull_stopped_at.is_none() {
        t.task.pull_stopped_at = change.pull_stopped_at;
    }
    let reported = change.status.as_deref().and_then(TaskStatus::parse);
    let after = reported.map_or(before, |r| before.advance(r));
    let mut peers = Vec::new();
    if after != before {
        t.task.last_status = Some(after.as_str().into());
        peers = crate::ec2::interfaces::on_task_status(
            tx,
            scope_,
            id,
            &mut t.task,
            after == TaskStatus::Stopped,
        )?;
        if after >= TaskStatus::Running
            && t.task.started_at.is_none()
            && reported == Some(TaskStatus::Running)
        {
            t.task.started_at = Some(now);
        }
        if after >= TaskStatus::Deactivating && t.task.stopping_at.is_none() {
            t.task.stopping_at = Some(now);
        }
        if after == TaskStatus::Stopped {
            t.task.stopped_at = Some(now);
            t.task.execution_stopped_at = Some(change.execution_stopped_at.unwrap_or(now));
            t.task.desired_status = Some("STOPPED".into());
            if t.task.stop_code.is_none() {
                // SubmitTaskStateChange has no stopCode: the agent's reason tells it.
                let started = t.task.started_at.is_some();
                let (code, reason) = match change.reason.clone() {
                    Some(r) if r.starts_with("Essential container in task exited") => {
                        (s::TaskStopCode::EssentialContainerExited, r)
                    }
                    Some(r) => (s::TaskStopCode::TaskFailedToStart, r),
                    None if started => (
                        s::TaskStopCode::EssentialContainerExited,
                        "Essential container in task exited".to_string(),
                    ),
                    None => (
                        s::TaskStopCode::TaskFailedToStart,
                        "Task failed to start".to_string(),
                    ),
                };
                t.task.stop_code = Some(code);
                t.task.stopped_reason = Some(reason);
            }
            for c in t.task.containers.iter_mut().flatten() {
                c.last_status = Some("STOPPED".into());
            }
            accounting.release(tx, scope_, &t, before)?;
            let cluster_task = t.store_id();
            tx.delete_host_entry(&t.host, &host_entry_task(scope_, &cluster_task))?;
        } else if after >= TaskStatus::Running && before < TaskStatus::Running {
            accounting.started(&t);
        }
    }
    t.task.version = Some(t.task.version.unwrap_or(1) + 1);
    tx.put(scope_, task_kind::TASK, id, Some(v), &t)?;
    if after != before {
        accounting.count(&t.cluster(), before, after);
    }
    peers.retain(|h| *h != t.host);
    // The task's own agent reported this change: its poll is woken only when the change is
    // one it must act on (its assignment's sequence moved), not by its own report.
    if host_changed && after != TaskStatus::Stopped {
        touch_host_task(tx, scope_, id, &t)?;
        peers.insert(0, t.host.clone());
    }
    Ok(Some(peers))
}

/// Marks a task's assignment as changed on its host (its security group rules changed, or
/// the members of a group its rules name): returns the host to wake, or None when the task
/// is gone or STOPPED.
pub fn touch_for_rules(
    tx: &mut Tx<'_>,
    scope_: Scope<'_>,
    task_store_id: &str,
) -> Result<Option<String>, Failure> {
    let Some((t, _)) = tx.get_json::<StoredTask>(scope_, task_kind::TASK, task_store_id)? else {
        return Ok(None);
    };
    if t.last_status() == TaskStatus::Stopped {
        return Ok(None);
    }
    touch_host_task(tx, scope_, task_store_id, &t)?;
    Ok(Some(t.host))
}

/// What the task transitions of one write do to their container instances and cluster
/// counters, applied once per instance and per counter at the write's end
/// ([`Accounting::apply`]). A batch of state reports from one agent names many tasks of the
/// same instance: each had rewritten the instance's whole record (about 4 KiB) and moved the
/// counters on its own.
#[derive(Default)]
pub struct Accounting {
    /// Each instance touched, with the tasks it no longer holds.
    instances: TouchedInstances,
    /// Tasks started per instance (see [`started_counter`]).
    started: Vec<(String, i64)>,
    /// How the tasks moved their clusters' counters.
    counts: ClusterCounts,
}

impl Accounting {
    /// Instance `ci_id`'s usage as this write left it so far, read the first time (its usage
    /// record, a few hundred bytes: the instance's record is decoded only when it has none
    /// yet); None when the instance is gone.
    fn instance(
        &mut self,
        tx: &Tx<'_>,
        scope_: Scope<'_>,
        ci_id: &str,
    ) -> Result<Option<usize>, Failure> {
        if let Some(k) = self.instances.position(ci_id) {
            return Ok(Some(k));
        }
        let Some(record_version) = tx.version(scope_, kind::CONTAINER_INSTANCE, ci_id)? else {
            return Ok(None);
        };
        let (usage, usage_version) = match instance_usage::stored(tx, scope_, ci_id)? {
            Some(stored) => stored,
            None => {
                let Some((ci, _)) =
                    tx.get_json::<s::ContainerInstance>(scope_, kind::CONTAINER_INSTANCE, ci_id)?
                else {
                    return Ok(None);
                };
                (InstanceUsage::of(&ci), 0)
            }
        };
        Ok(Some(self.instances.push(
            ci_id,
            usage,
            usage_version,
            record_version,
        )))
    }

    /// The instance task `t` was placed on, as this write left it so far (None: no instance,
    /// or it is gone).
    fn instance_of(
        &mut self,
        tx: &Tx<'_>,
        scope_: Scope<'_>,
        t: &StoredTask,
    ) -> Result<Option<usize>, Failure> {
        match &t.container_instance {
            Some(ci_id) => self.instance(tx, scope_, ci_id),
            None => Ok(None),
        }
    }

    /// Moves a task between its instance's pending and running counts.
    fn move_counts(
        &mut self,
        tx: &Tx<'_>,
        scope_: Scope<'_>,
        t: &StoredTask,
        pending: i32,
        running: i32,
    ) -> Result<(), Failure> {
        if let Some(k) = self.instance_of(tx, scope_, t)? {
            let usage = &mut self.instances.0[k].usage;
            // Not clamped at 0: the usage's running count leaves out the tasks counted as
            // started apart from it, so one that stops may take it below 0 (what is shown,
            // with the started tasks, is not).
            usage.pending_tasks_count += pending;
            usage.running_tasks_count += running;
        }
        Ok(())
    }

    /// Counts task `t` as started on its instance: the instance's started-tasks counter,
    /// not its record, moves (once per instance at the write's end).
    fn started(&mut self, t: &StoredTask) {
        let Some(ci_id) = &t.container_instance else {
            return;
        };
        match self.started.iter_mut().find(|(id, _)| id == ci_id) {
            Some((_, n)) => *n += 1,
            None => self.started.push((ci_id.clone(), 1)),
        }
    }

    /// Gives a stopped task's resources back to its instance, out of its pending or running
    /// count (by its status `before` it stopped).
    fn release(
        &mut self,
        tx: &Tx<'_>,
        scope_: Scope<'_>,
        t: &StoredTask,
        before: TaskStatus,
    ) -> Result<(), Failure> {
        if let Some(k) = self.instance_of(tx, scope_, t)? {
            let touched = &mut self.instances.0[k];
            adjust_remaining(&mut touched.usage.remaining_resources, t, 1);
            touched.tasks.push(t.running_task());
        }
        let (pending, running) = if before < TaskStatus::Running {
            (-1, 0)
        } else {
            (0, -1)
        };
        self.move_counts(tx, scope_, t, pending, running)
    }

    /// Counts a task of `cluster` whose status went from `before` to `after`.
    fn count(&mut self, cluster: &str, before: TaskStatus, after: TaskStatus) {
        self.counts.count(cluster, Some(before), after);
    }

    /// Writes each touched instance once, with the version it was read at expected (a
    /// conflict if anything else moved it meanwhile), and the index's entry once committed;
    /// then moves the counters. Call it after the tasks' records are written.
    pub fn apply(
        self,
        tx: &mut Tx<'_>,
        index: &Arc<ClusterIndex>,
        scope_: Scope<'_>,
    ) -> Result<(), Failure> {
        self.instances.apply(tx, index, scope_, Held::Removed)?;
        for (id, n) in self.started {
            tx.add_to_sequence(scope_, &started_counter(&id), n)?;
            let index = index.clone();
            let (account, region) = (scope_.account.to_string(), scope_.region.to_string());
            tx.after_commit(move || index.tasks_started(Scope::new(&account, &region), &id, n));
        }
        self.counts.apply(tx, scope_)
    }
}

fn submitted_task_id(
    ctx: &RequestContext,
    cluster: Option<&str>,
    task: Option<&str>,
) -> Result<String, AwsError> {
    let cluster = common::cluster_name(ctx, cluster)?;
    let task = task.ok_or_else(|| invalid("task must be specified."))?;
    task_store_id(ctx, &cluster, task).ok_or_else(|| invalid("The referenced task was not found."))
}

/// Applies one reported change of task `id` in its own write; the hosts to wake, or the
/// error an agent gets when the task is unknown.
fn apply_one_change(
    ecs: &Ecs,
    ctx: &RequestContext,
    id: &str,
    change: &s::SubmitTaskStateChangeRequest,
    health: Option<s::HealthStatus>,
    container_health: &[(String, s::HealthStatus)],
) -> Result<Vec<String>, AwsError> {
    ecs.store
        .write(|tx| {
            let mut accounting = Accounting::default();
            let applied = apply_task_change(
                tx,
                &mut accounting,
                scope(ctx),
                id,
                None,
                change,
                health,
                container_health,
                ctx.now,
            )?;
            accounting.apply(tx, &ecs.index, scope(ctx))?;
            Ok::<_, Failure>(applied)
        })
        .map_err(aws)?
        .ok_or_else(|| invalid("The referenced task was not found."))
}

pub fn submit_task_state_change(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::SubmitTaskStateChangeRequest,
) -> Result<s::SubmitTaskStateChangeResponse, AwsError> {
    let id = submitted_task_id(ctx, input.cluster.as_deref(), input.task.as_deref())?;
    let hosts = apply_one_change(ecs, ctx, &id, &input, None, &[])?;
    notify_all(ecs, &hosts);
    Ok(s::SubmitTaskStateChangeResponse {
        acknowledgment: Some("ACK".into()),
    })
}

/// Applies a batch of agents' task state changes in one transaction (the agent channel's
/// `SubmitTaskStateChanges`).
pub fn submit_task_state_changes(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: &berth_wire::agent::TaskStateChanges,
) -> Result<berth_wire::agent::TaskStateChangesResponse, AwsError> {
    if input.changes.len() > berth_wire::agent::MAX_STATE_CHANGES {
        return Err(invalid(format!(
            "changes can have at most {} items.",
            berth_wire::agent::MAX_STATE_CHANGES
        )));
    }
    let ids = input
        .changes
        .iter()
        .map(|c| submitted_task_id(ctx, c.cluster.as_deref(), c.task.as_deref()))
        .collect::<Result<Vec<_>, _>>()?;
    // The tasks are decoded before the write; it uses each copy whose version is unchanged.
    let mut read_before = ecs
        .store
        .read(|tx| -> Result<Vec<_>, Failure> {
            ids.iter()
                .map(|id| {
                    Ok(read_task(tx, &ecs.task_cache, scope(ctx), id)?
                        .map(|(t, v)| (Arc::unwrap_or_clone(t), v)))
                })
                .collect()
        })
        .map_err(aws)?;
    let (applied, missing, hosts) = ecs
        .store
        .write(|tx| -> Result<_, Failure> {
            let mut hosts: Vec<String> = Vec::new();
            let mut missing = Vec::new();
            let mut applied = 0;
            let mut accounting = Accounting::default();
            for ((id, change), read) in ids.iter().zip(&input.changes).zip(&mut read_before) {
                match apply_task_change(
                    tx,
                    &mut accounting,
                    scope(ctx),
                    id,
                    read.take(),
                    change,
                    None,
                    &[],
                    ctx.now,
                )? {
                    Some(woken) => {
                        applied += 1;
                        for host in woken {
                            if !hosts.contains(&host) {
                                hosts.push(host);
                            }
                        }
                    }
                    None => missing.push(change.task.clone().unwrap_or_default()),
                }
            }
            accounting.apply(tx, &ecs.index, scope(ctx))?;
            Ok((applied, missing, hosts))
        })
        .map_err(aws)?;
    notify_all(ecs, &hosts);
    Ok(berth_wire::agent::TaskStateChangesResponse { applied, missing })
}

pub fn submit_container_state_change(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::SubmitContainerStateChangeRequest,
) -> Result<s::SubmitContainerStateChangeResponse, AwsError> {
    let id = submitted_task_id(ctx, input.cluster.as_deref(), input.task.as_deref())?;
    let change = s::SubmitTaskStateChangeRequest {
        cluster: input.cluster.clone(),
        task: input.task.clone(),
        containers: Some(vec![s::ContainerStateChange {
            container_name: input.container_name.clone(),
            exit_code: input.exit_code,
            network_bindings: input.network_bindings.clone(),
            reason: input.reason.clone(),
            runtime_id: input.runtime_id.clone(),
            status: input.status.clone(),
            image_digest: None,
        }]),
        ..Default::default()
    };
    let hosts = apply_one_change(ecs, ctx, &id, &change, None, &[])?;
    notify_all(ecs, &hosts);
    Ok(s::SubmitContainerStateChangeResponse {
        acknowledgment: Some("ACK".into()),
    })
}

/// Applies an agent's health report of a task.
pub fn submit_health(
    ecs: &Ecs,
    ctx: &RequestContext,
    report: &berth_wire::agent::TaskHealthReport,
) -> Result<(), AwsError> {
    let id = submitted_task_id(ctx, Some(&report.cluster), Some(&report.task))?;
    let containers: Vec<(String, s::HealthStatus)> = report
        .containers
        .iter()
        .map(|c| (c.container_name.clone(), c.health_status))
        .collect();
    let change = s::SubmitTaskStateChangeRequest::default();
    apply_one_change(
        ecs,
        ctx,
        &id,
        &change,
        Some(report.health_status),
        &containers,
    )?;
    ecs.notifier.wake_controller();
    Ok(())
}

/// What the service scheduler launches: tasks of one deployment, placed with the service's
/// rules (REPLICA) or on one container instance (DAEMON).
pub struct ServiceLaunch<'a> {
    pub ctx: &'a RequestContext,
    pub cluster: &'a s::Cluster,
    /// The task definition's ARN (a revision).
    pub task_definition: &'a str,
    pub launch_type: Option<s::LaunchType>,
    pub capacity_provider_strategy: Option<&'a [s::CapacityProviderStrategyItem]>,
    pub network_configuration: Option<&'a s::NetworkConfiguration>,
    pub placement_constraints: Option<&'a [s::PlacementConstraint]>,
    pub placement_strategy: Option<&'a [s::PlacementStrategy]>,
    /// `service:<name>`.
    pub group: String,
    /// The deployment id (`ecs-svc/<digits>`).
    pub started_by: String,
    pub tags: Vec<s::Tag>,
    pub propagate_tags: Option<s::PropagateTags>,
    pub managed_tags: bool,
    pub count: usize,
    /// DAEMON: the store id of the container instance the one task goes to.
    pub on_instance: Option<&'a str>,
}

/// What a [`ServiceLaunch`] made.
#[derive(Debug, Default)]
pub struct Launched {
    /// The ids of the tasks created.
    pub task_ids: Vec<String>,
    /// One refusal per task that could not be placed.
    pub refusals: Vec<sched::Refusal>,
    /// The hosts to wake once the transaction commits.
    pub hosts: Vec<String>,
}

/// Creates the tasks of a service launch with RunTask's machinery ([`launch_tasks`]), in the
/// caller's transaction; what they take on container instances goes into `reservations`,
/// which the caller applies once before it commits (several launches of one transaction see
/// each other's reservations).
pub fn launch_for_service(
    tx: &mut Tx<'_>,
    index: &Arc<ClusterIndex>,
    l: &ServiceLaunch<'_>,
    reservations: &mut Reservations,
) -> Result<Launched, Failure> {
    let ctx = l.ctx;
    let ident = task_definitions::parse_ident(ctx, l.task_definition)?
        .ok_or_else(|| invalid("TaskDefinition not found."))?;
    let (td, _) = task_definitions::resolve(tx, ctx, &ident)?
        .ok_or_else(|| invalid("TaskDefinition not found."))?;
    let shares = capacity::shares(
        l.cluster,
        l.launch_type,
        l.capacity_provider_strategy,
        l.count,
    )?;
    let launch = Launch {
        ctx,
        cluster: l.cluster,
        td: &td.task_definition,
        td_tags: &td.tags,
        overrides: None,
        group: Some(l.group.clone()),
        started_by: Some(l.started_by.clone()),
        tags: l.tags.clone(),
        propagate_tags: l.propagate_tags,
        managed_tags: l.managed_tags,
        network_configuration: l.network_configuration,
    };
    let request = LaunchRequest {
        shares,
        placement_constraints: l.placement_constraints,
        placement_strategy: l.placement_strategy,
        group: l.group.clone(),
        on_instance: l.on_instance,
    };
    let made = launch_tasks(tx, index, &launch, &request, reservations)?;
    Ok(Launched {
        task_ids: made.tasks.iter().map(|t| t.id()).collect(),
        refusals: made.refusals,
        hosts: made.hosts,
    })
}

/// What one launch asks for beyond the task definition and the task's fields ([`Launch`]):
/// how many tasks go to which capacity, and where they may go on container instances.
struct LaunchRequest<'a> {
    /// Each capacity's share of the tasks ([`capacity::shares`]).
    shares: Vec<(Capacity, usize)>,
    placement_constraints: Option<&'a [s::PlacementConstraint]>,
    placement_strategy: Option<&'a [s::PlacementStrategy]>,
    /// The task group (RunTask's `group`, `family:<family>`, or `service:<name>`).
    group: String,
    /// Only this container instance (store id): a daemon's task.
    on_instance: Option<&'a str>,
}

/// What a launch made.
#[derive(Default)]
struct Made {
    tasks: Vec<StoredTask>,
    /// One per task that could not be placed.
    refusals: Vec<sched::Refusal>,
    /// The hosts to wake once the transaction commits.
    hosts: Vec<String>,
    /// An EC2 share found no ACTIVE container instance in the cluster at all (RunTask
    /// refuses the call; a service reports the refusals).
    no_active_instance: bool,
}

/// The one launch path of RunTask and the service scheduler: Fargate shares go to the
/// managed host; EC2 shares are planned from the cluster index ([`ClusterIndex`]) with the
/// placement engine and applied by creating the tasks, their instances' reservations added to
/// `reservations` (written by the caller with the versions planned from: a stale plan fails
/// with a conflict and is planned again). A plan sees what earlier launches of the same
/// `reservations` took.
fn launch_tasks(
    tx: &mut Tx<'_>,
    index: &Arc<ClusterIndex>,
    launch: &Launch<'_>,
    r: &LaunchRequest<'_>,
    reservations: &mut Reservations,
) -> Result<Made, Failure> {
    let ctx = launch.ctx;
    let cluster_name = launch.cluster.cluster_name.clone().unwrap_or_default();
    let mut made = Made::default();
    for (capacity, count) in &r.shares {
        let count = *count;
        if count == 0 {
            continue;
        }
        match capacity {
            Capacity::Fargate { provider } => {
                launch.validate_network(true)?;
                let provider = provider.clone().unwrap_or_else(|| "FARGATE".into());
                for _ in 0..count {
                    let mut t = launch.task(MANAGED_HOST.to_string(), None, Some(&provider));
                    create_task(
                        tx,
                        ctx,
                        &mut t,
                        launch.network_configuration,
                        &mut made.hosts,
                        &mut reservations.counts,
                    )?;
                    made.tasks.push(t);
                }
            }
            Capacity::Ec2 { provider } => {
                launch.validate_network(false)?;
                let (constraints, strategies) =
                    placement::rules(launch.td, r.placement_constraints, r.placement_strategy)?;
                let etd = effective_td(launch.td, launch.overrides);
                let request = sched::Request {
                    count,
                    needs: placement::engine_needs(&needs_of(&etd), &etd),
                    group: r.group.clone(),
                    family: etd.family.clone().unwrap_or_default(),
                    constraints,
                    strategies,
                    required_attributes: placement::required_attributes(&etd),
                };
                // Plan from the index (current: this transaction holds the store's writer,
                // and every committed write reached the index before it)...
                let plan =
                    index.with_cluster(tx, scope(ctx), &cluster_name, ctx.now.millis(), |st| {
                        let all = st.snapshot();
                        if !all
                            .instances
                            .iter()
                            .any(|i| i.status == sched::InstanceStatus::Active)
                        {
                            return None;
                        }
                        // A provider's tasks go to the instances that joined it, a daemon's
                        // to its instance; earlier launches of this transaction count.
                        let narrowed;
                        let snapshot = if r.on_instance.is_some()
                            || provider.is_some()
                            || !reservations.is_empty()
                        {
                            narrowed = sched::Snapshot {
                                instances: all
                                    .instances
                                    .iter()
                                    .filter(|i| r.on_instance.is_none_or(|only| i.id == only))
                                    .filter(|i| {
                                        provider.as_ref().is_none_or(|p| {
                                            st.record(&i.id).is_some_and(|(ci, _)| {
                                                ci.capacity_provider_name.as_ref() == Some(p)
                                            })
                                        })
                                    })
                                    .map(|i| reservations.as_left(i))
                                    .collect(),
                            };
                            &narrowed
                        } else {
                            all
                        };
                        let plan = sched::place(snapshot, &request, &mut |n| {
                            rand::random_range(0..n.max(1))
                        });
                        Some(
                            plan.tasks
                                .into_iter()
                                .map(|p| {
                                    p.and_then(|p| {
                                        // Invariant: the engine places only on instances
                                        // of the snapshot, which the index holds.
                                        let planned =
                                            st.planned_on(&p.instance).ok_or_else(|| {
                                                sched::Refusal::Instance {
                                                    id: p.instance.clone(),
                                                    arn: p.arn.clone(),
                                                    reason: sched::Reason::Agent,
                                                }
                                            })?;
                                        Ok((p, planned))
                                    })
                                })
                                .collect::<Vec<_>>(),
                        )
                    })?;
                let Some(plan) = plan else {
                    made.no_active_instance = true;
                    made.refusals
                        .extend((0..count).map(|_| sched::Refusal::NoInstances));
                    continue;
                };
                // ...and apply it: each task created, its instance's reservation noted.
                for p in plan {
                    match p {
                        Ok((p, planned)) => {
                            let host = instance_host(scope(ctx), &p.instance);
                            let mut t =
                                launch.task(host, Some((&p.instance, &planned.record)), None);
                            t.task.capacity_provider_name = provider.clone();
                            take_placement(&mut t, &p);
                            create_task(
                                tx,
                                ctx,
                                &mut t,
                                launch.network_configuration,
                                &mut made.hosts,
                                &mut reservations.counts,
                            )?;
                            reservations.add(&p.instance, &planned, &t);
                            made.tasks.push(t);
                        }
                        Err(why) => made.refusals.push(why),
                    }
                }
            }
        }
    }
    Ok(made)
}

/// The counters of a cluster's running and pending tasks (DescribeClusters'
/// `runningTasksCount`/`pendingTasksCount`), kept beside the tasks by the two paths that set
/// a task's status ([`create_task`], [`apply_task_change`]) so that reading them costs two
/// rows, not a scan of every task.
fn count_names(cluster: &str) -> (String, String) {
    (
        format!("tasks-running/{cluster}"),
        format!("tasks-pending/{cluster}"),
    )
}

/// How a task whose status went from `before` (None: a new task) to `after` moves its
/// cluster's (running, pending) counters.
fn count_deltas(before: Option<TaskStatus>, after: TaskStatus) -> (i64, i64) {
    let counted = |s: TaskStatus| match s {
        TaskStatus::Running => (1, 0),
        s if s.is_pending() => (0, 1),
        _ => (0, 0),
    };
    let ((r0, p0), (r1, p1)) = (before.map_or((0, 0), counted), counted(after));
    (r1 - r0, p1 - p0)
}

/// Adds `running` and `pending` to `cluster`'s task counters. Call it after the tasks'
/// records are written: a cluster whose counters never counted (a store from before them)
/// is counted once by a scan, these changes included.
fn move_cluster_counts(
    tx: &mut Tx<'_>,
    scope_: Scope<'_>,
    cluster: &str,
    running: i64,
    pending: i64,
) -> Result<(), Failure> {
    let (running_name, pending_name) = count_names(cluster);
    if tx.sequence_if_any(scope_, &running_name)?.is_none() {
        let (r, p) = scan_counts(tx, scope_, cluster)?;
        tx.add_to_sequence(scope_, &running_name, i64::from(r))?;
        tx.add_to_sequence(scope_, &pending_name, i64::from(p))?;
        return Ok(());
    }
    if running != 0 {
        tx.add_to_sequence(scope_, &running_name, running)?;
    }
    if pending != 0 {
        tx.add_to_sequence(scope_, &pending_name, pending)?;
    }
    Ok(())
}

/// How many tasks of `cluster` are running and pending (for DescribeClusters).
pub fn counts(tx: &Tx<'_>, ctx: &RequestContext, cluster: &str) -> Result<(i32, i32), Failure> {
    let (running, pending) = count_names(cluster);
    match (
        tx.sequence_if_any(scope(ctx), &running)?,
        tx.sequence_if_any(scope(ctx), &pending)?,
    ) {
        (Some(r), Some(p)) => Ok((
            i32::try_from(r.max(0)).unwrap_or(i32::MAX),
            i32::try_from(p.max(0)).unwrap_or(i32::MAX),
        )),
        _ => scan_counts(tx, scope(ctx), cluster),
    }
}

/// Counts `cluster`'s running and pending tasks by reading every one.
fn scan_counts(tx: &Tx<'_>, scope_: Scope<'_>, cluster: &str) -> Result<(i32, i32), Failure> {
    let mut running = 0;
    let mut pending = 0;
    for (_, t) in tx.list_json::<StoredTask>(scope_, task_kind::TASK, &format!("{cluster}/"))? {
        match t.last_status() {
            TaskStatus::Running => running += 1,
            s if s.is_pending() => pending += 1,
            _ => {}
        }
    }
    Ok((running, pending))
}

/// Deletes STOPPED tasks older than the retention (ECS keeps them at least an hour). The scan
/// runs in read transactions (beside the writer, in WAL mode) and each chunk's deletions in a
/// short write, so a store of a million tasks does not stall every write while it is swept.
pub fn prune(store: &berth_store::Store, now: Timestamp) -> Result<usize, berth_store::StoreError> {
    let mut pruned = 0;
    let mut after: Option<(String, String, String)> = None;
    loop {
        let chunk = store.read(|tx| {
            tx.list_everywhere(
                task_kind::TASK,
                after
                    .as_ref()
                    .map(|(a, r, i)| (a.as_str(), r.as_str(), i.as_str())),
                512,
            )
        })?;
        let done = chunk.len() < 512;
        let mut expired = Vec::new();
        for (account, region, rec) in &chunk {
            let t: StoredTask = rec.decode(task_kind::TASK)?;
            if t.last_status() == TaskStatus::Stopped
                && t.task
                    .stopped_at
                    .is_some_and(|at| now.millis() - at.millis() > STOPPED_RETENTION_MS)
            {
                expired.push((account.clone(), region.clone(), rec.id.clone()));
            }
        }
        if !expired.is_empty() {
            pruned += store.write(|tx| -> Result<usize, berth_store::StoreError> {
                let mut n = 0;
                for (account, region, id) in &expired {
                    // Only what is still STOPPED (a task never leaves STOPPED, so it is).
                    if tx.delete(Scope::new(account, region), task_kind::TASK, id)? {
                        n += 1;
                    }
                }
                Ok(n)
            })?;
        }
        after = chunk
            .last()
            .map(|(a, r, rec)| (a.clone(), r.clone(), rec.id.clone()));
        if done {
            break;
        }
    }
    Ok(pruned)
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_wire::ecs::Api;
    use std::sync::Arc;

    fn ctx() -> RequestContext {
        crate::test_support::context(1_700_000_000_000)
    }

    fn setup() -> (Ecs, RequestContext) {
        let ecs = Ecs::new(Arc::new(
            berth_store::Store::open_in_memory_holding(crate::ecs::KINDS_HELD_IN_MEMORY).unwrap(),
        ));
        let c = ctx();
        ecs.create_cluster(
            &c,
            s::CreateClusterRequest {
                cluster_name: Some("c".into()),
                ..Default::default()
            },
        )
        .unwrap();
        let td: s::RegisterTaskDefinitionRequest = serde_json::from_value(serde_json::json!({
            "family": "web",
            "networkMode": "awsvpc",
            "requiresCompatibilities": ["FARGATE"],
            "cpu": "256", "memory": "512",
            "containerDefinitions": [{"name": "app", "image": "busybox", "essential": true}]
        }))
        .unwrap();
        ecs.register_task_definition(&c, td).unwrap();
        (ecs, c)
    }

    fn run_fargate(
        ecs: &Ecs,
        c: &RequestContext,
        count: i32,
        token: Option<&str>,
    ) -> s::RunTaskResponse {
        let req: s::RunTaskRequest = serde_json::from_value(serde_json::json!({
            "cluster": "c", "taskDefinition": "web", "launchType": "FARGATE", "count": count,
            "networkConfiguration": {"awsvpcConfiguration": {"subnets": [crate::test_support::default_subnet(&ecs.store, c)]}},
            "clientToken": token,
        }))
        .unwrap();
        ecs.run_task(c, req).unwrap()
    }

    #[test]
    fn polls_read_new_tasks_from_the_cache_as_the_store_holds_them() {
        let (ecs, c) = setup();
        let out = run_fargate(&ecs, &c, 2, None);
        assert_eq!(ecs.task_cache.len(), 2, "RunTask keeps what it created");
        let cached = |ecs: &Ecs| {
            ecs.store
                .read(|tx| assignments_since(tx, &ecs.task_cache, MANAGED_HOST, None))
                .unwrap()
        };
        let decoded = |ecs: &Ecs| ecs.store.read(|tx| assignments(tx, MANAGED_HOST)).unwrap();
        assert_eq!(cached(&ecs), decoded(&ecs));
        // A report moves the record past the kept version: it is read from the store again.
        let arn = out.tasks.unwrap()[0].task_arn.clone().unwrap();
        let req: s::SubmitTaskStateChangeRequest = serde_json::from_value(serde_json::json!({
            "cluster": "c", "task": arn, "status": "RUNNING",
            "containers": [{"containerName": "app", "status": "RUNNING", "runtimeId": "x"}]
        }))
        .unwrap();
        ecs.submit_task_state_change(&c, req).unwrap();
        let (seq, now) = cached(&ecs);
        assert_eq!((seq, now.clone()), decoded(&ecs));
        let mine = now.iter().find(|a| a.task_arn == arn).unwrap();
        assert_eq!(mine.last_status, "RUNNING");
    }

    #[test]
    fn fargate_task_lifecycle_moves_forward_only() {
        let (ecs, c) = setup();
        let out = run_fargate(&ecs, &c, 2, None);
        let tasks = out.tasks.unwrap();
        assert_eq!(tasks.len(), 2);
        let t = &tasks[0];
        assert_eq!(t.last_status.as_deref(), Some("PROVISIONING"));
        assert_eq!(t.desired_status.as_deref(), Some("RUNNING"));
        assert_eq!(t.launch_type, Some(s::LaunchType::Fargate));
        assert_eq!(t.cpu.as_deref(), Some("256"));
        assert!(t.container_instance_arn.is_none());
        let (seq, assigned) = ecs.store.read(|tx| assignments(tx, MANAGED_HOST)).unwrap();
        // Two creations, and the first task marked again when the second joined the VPC's
        // default group (whose rule admits its members: the first task's rules changed).
        assert_eq!((seq, assigned.len()), (3, 2));

        let arn = t.task_arn.clone().unwrap();
        let report = |status: &str, containers: serde_json::Value| {
            let req: s::SubmitTaskStateChangeRequest = serde_json::from_value(serde_json::json!({
                "cluster": "c", "task": arn, "status": status, "containers": containers
            }))
            .unwrap();
            ecs.submit_task_state_change(&c, req).unwrap();
        };
        report(
            "RUNNING",
            serde_json::json!([{"containerName": "app", "status": "RUNNING", "runtimeId": "x"}]),
        );
        // A late PENDING changes nothing.
        report("PENDING", serde_json::json!([]));
        let d = ecs
            .describe_tasks(
                &c,
                s::DescribeTasksRequest {
                    cluster: Some("c".into()),
                    tasks: vec![arn.clone()],
                    include: None,
                },
            )
            .unwrap();
        let t = &d.tasks.unwrap()[0];
        assert_eq!(t.last_status.as_deref(), Some("RUNNING"));
        assert!(t.started_at.is_some());
        assert_eq!(
            t.containers.as_ref().unwrap()[0].runtime_id.as_deref(),
            Some("x")
        );

        let stopped = ecs
            .stop_task(
                &c,
                s::StopTaskRequest {
                    cluster: Some("c".into()),
                    task: arn.clone(),
                    reason: Some("bye".into()),
                },
            )
            .unwrap()
            .task
            .unwrap();
        assert_eq!(stopped.desired_status.as_deref(), Some("STOPPED"));
        assert_eq!(stopped.stop_code, Some(s::TaskStopCode::UserInitiated));
        let (seq2, assigned) = ecs.store.read(|tx| assignments(tx, MANAGED_HOST)).unwrap();
        assert!(seq2 > seq);
        assert!(
            assigned
                .iter()
                .any(|a| a.task_arn == arn && a.desired_status == "STOPPED")
        );
        report(
            "STOPPED",
            serde_json::json!([{"containerName": "app", "status": "STOPPED", "exitCode": 0}]),
        );
        let d = ecs
            .describe_tasks(
                &c,
                s::DescribeTasksRequest {
                    cluster: Some("c".into()),
                    tasks: vec![arn.clone()],
                    include: None,
                },
            )
            .unwrap();
        let t = &d.tasks.unwrap()[0];
        assert_eq!(t.last_status.as_deref(), Some("STOPPED"));
        assert_eq!(t.stopped_reason.as_deref(), Some("bye"));
        assert!(t.stopped_at.is_some() && t.execution_stopped_at.is_some());
        // Stopped tasks leave the host's assignments and the default listing.
        let (_, assigned) = ecs.store.read(|tx| assignments(tx, MANAGED_HOST)).unwrap();
        assert_eq!(assigned.len(), 1);
        let listed = ecs
            .list_tasks(
                &c,
                s::ListTasksRequest {
                    cluster: Some("c".into()),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(listed.task_arns.unwrap().len(), 1);
        let listed = ecs
            .list_tasks(
                &c,
                s::ListTasksRequest {
                    cluster: Some("c".into()),
                    desired_status: Some(s::DesiredStatus::Stopped),
                    ..Default::default()
                },
            )
            .unwrap();
        assert_eq!(listed.task_arns.unwrap(), vec![arn]);
        // Pruned after the retention.
        let later = Timestamp(c.now.millis() + STOPPED_RETENTION_MS + 1);
        assert_eq!(prune(&ecs.store, later).unwrap(), 1);
    }

    /// DescribeClusters' counters follow every status change, as a scan of the tasks would
    /// count them.
    #[test]
    fn task_counters_match_a_scan() {
        let (ecs, c) = setup();
        let arns: Vec<String> = run_fargate(&ecs, &c, 5, None)
            .tasks
            .unwrap()
            .into_iter()
            .map(|t| t.task_arn.unwrap())
            .collect();
        let both = |ecs: &Ecs| {
            ecs.store
                .read(|tx| -> Result<_, Failure> {
                    Ok((counts(tx, &c, "c")?, scan_counts(tx, scope(&c), "c")?))
                })
                .unwrap()
        };
        assert_eq!(both(&ecs), ((0, 5), (0, 5)));
        for (k, status) in [
            (0, "RUNNING"),
            (1, "RUNNING"),
            (1, "STOPPED"),
            (2, "STOPPED"),
        ] {
            let change: s::SubmitTaskStateChangeRequest =
                serde_json::from_value(serde_json::json!({
                    "cluster": "c", "task": arns[k], "status": status
                }))
                .unwrap();
            ecs.submit_task_state_change(&c, change).unwrap();
        }
        let (counted, scanned) = both(&ecs);
        assert_eq!(counted, scanned);
        assert_eq!(counted, (1, 2));
    }

    #[test]
    fn an_essential_container_stopping_stops_its_task() {
        let (ecs, c) = setup();
        let arn = run_fargate(&ecs, &c, 1, None).tasks.unwrap()[0]
            .task_arn
            .clone()
            .unwrap();
        let running: s::SubmitTaskStateChangeRequest = serde_json::from_value(serde_json::json!({
            "cluster": "c", "task": arn, "status": "RUNNING",
            "containers": [{"containerName": "app", "status": "RUNNING"}]
        }))
        .unwrap();
        ecs.submit_task_state_change(&c, running).unwrap();
        let (seq, _) = ecs.store.read(|tx| assignments(tx, MANAGED_HOST)).unwrap();
        ecs.submit_container_state_change(
            &c,
            s::SubmitContainerStateChangeRequest {
                cluster: Some("c".into()),
                task: Some(arn.clone()),
                container_name: Some("app".into()),
                status: Some("STOPPED".into()),
                exit_code: Some(1),
                ..Default::default()
            },
        )
        .unwrap();
        let t = ecs
            .describe_tasks(
                &c,
                s::DescribeTasksRequest {
                    cluster: Some("c".into()),
                    tasks: vec![arn],
                    include: None,
                },
            )
            .unwrap()
            .tasks
            .unwrap()
            .remove(0);
        assert_eq!(t.last_status.as_deref(), Some("RUNNING"));
        assert_eq!(t.desired_status.as_deref(), Some("STOPPED"));
        assert_eq!(t.stop_code, Some(s::TaskStopCode::EssentialContainerExited));
        assert!(t.stopping_at.is_some());
        let (seq2, _) = ecs.store.read(|tx| assignments(tx, MANAGED_HOST)).unwrap();
        assert!(seq2 > seq, "the host must see the new desired status");
    }

    #[test]
    fn client_token_makes_run_task_idempotent() {
        let (ecs, c) = setup();
        let a = run_fargate(&ecs, &c, 1, Some("tok"));
        let b = run_fargate(&ecs, &c, 1, Some("tok"));
        assert_eq!(a.tasks.unwrap()[0].task_arn, b.tasks.unwrap()[0].task_arn);
    }

    #[test]
    fn ec2_without_instances_and_bad_requests_are_refused() {
        let (ecs, c) = setup();
        let req: s::RunTaskRequest = serde_json::from_value(serde_json::json!({
            "cluster": "c", "taskDefinition": "web", "launchType": "EC2",
            "networkConfiguration": {"awsvpcConfiguration": {"subnets": [crate::test_support::default_subnet(&ecs.store, &c)]}}
        }))
        .unwrap();
        let e = ecs.run_task(&c, req).unwrap_err();
        assert_eq!(
            e.message,
            "No Container Instances were found in your cluster."
        );
        let req: s::RunTaskRequest = serde_json::from_value(serde_json::json!({
            "cluster": "c", "taskDefinition": "web", "launchType": "FARGATE"
        }))
        .unwrap();
        let e = ecs.run_task(&c, req).unwrap_err();
        assert!(
            e.message.contains("Network Configuration must be provided"),
            "{}",
            e.message
        );
        let req: s::RunTaskRequest = serde_json::from_value(serde_json::json!({
            "cluster": "c", "taskDefinition": "web", "launchType": "FARGATE", "count": 11
        }))
        .unwrap();
        assert_eq!(
            ecs.run_task(&c, req).unwrap_err().code,
            "InvalidParameterException"
        );
        let e = ecs
            .stop_task(
                &c,
                s::StopTaskRequest {
                    cluster: Some("c".into()),
                    task: "0123".into(),
                    reason: None,
                },
            )
            .unwrap_err();
        assert_eq!(e.message, "The referenced task was not found.");
    }

    /// RunTask places with the engine: strategies, constraints and ECS's failure reasons.
    #[test]
    fn run_task_follows_strategies_and_constraints() {
        let (ecs, c) = setup();
        let mut arns = Vec::new();
        for zone in ["z1", "z2"] {
            let ci = ecs
                .register_container_instance(
                    &c,
                    serde_json::from_value(serde_json::json!({
                        "cluster": "c",
                        "totalResources": [
                            {"name": "CPU", "type": "INTEGER", "integerValue": 4096},
                            {"name": "MEMORY", "type": "INTEGER", "integerValue": 4096}
                        ],
                        "attributes": [{"name": "zone", "value": zone},
                            {"name": "com.amazonaws.ecs.capability.docker-remote-api.1.18"}]
                    }))
                    .unwrap(),
                )
                .unwrap()
                .container_instance
                .unwrap();
            let arn = ci.container_instance_arn.unwrap();
            ecs.store
                .write(|tx| {
                    let id = super::super::container_instances::store_id(&c, "c", &arn).unwrap();
                    record_poll(tx, &instance_host(scope(&c), &id), c.now.millis())
                })
                .unwrap();
            arns.push(arn);
        }
        let td: s::RegisterTaskDefinitionRequest = serde_json::from_value(serde_json::json!({
            "family": "svc", "networkMode": "host",
            "containerDefinitions": [{"name": "app", "image": "busybox", "cpu": 256, "memory": 128}]
        }))
        .unwrap();
        ecs.register_task_definition(&c, td).unwrap();
        let run = |extra: serde_json::Value| {
            let mut req =
                serde_json::json!({"cluster": "c", "taskDefinition": "svc", "launchType": "EC2"});
            for (k, v) in extra.as_object().unwrap() {
                req[k] = v.clone();
            }
            ecs.run_task(&c, serde_json::from_value(req).unwrap())
        };
        let on = |r: &s::RunTaskResponse| -> Vec<String> {
            r.tasks
                .iter()
                .flatten()
                .map(|t| t.container_instance_arn.clone().unwrap())
                .collect()
        };
        let spread = run(serde_json::json!({
            "count": 4, "group": "spread",
            "placementStrategy": [{"type": "spread", "field": "attribute:zone"}]
        }))
        .unwrap();
        let placed = on(&spread);
        assert_eq!(placed.iter().filter(|a| **a == arns[0]).count(), 2);
        assert_eq!(placed.iter().filter(|a| **a == arns[1]).count(), 2);
        let member = run(serde_json::json!({
            "count": 2,
            "placementConstraints": [{"type": "memberOf", "expression": "attribute:zone == z2"}]
        }))
        .unwrap();
        assert_eq!(on(&member), vec![arns[1].clone(), arns[1].clone()]);
        let distinct = run(serde_json::json!({
            "count": 3, "group": "solo",
            "placementConstraints": [{"type": "distinctInstance"}]
        }))
        .unwrap();
        assert_eq!(on(&distinct).len(), 2);
        let f = distinct.failures.unwrap();
        assert_eq!(
            f[0].reason.as_deref(),
            Some("DistinctInstance placement constraint unsatisfied.")
        );
        assert!(arns.contains(f[0].arn.as_ref().unwrap()));
        let none = run(serde_json::json!({
            "placementConstraints": [{"type": "memberOf", "expression": "attribute:zone == z9"}]
        }))
        .unwrap();
        assert_eq!(
            none.failures.unwrap()[0].reason.as_deref(),
            Some("MemberOf placement constraint unsatisfied.")
        );
        for bad in [
            serde_json::json!({"placementStrategy": [{"type": "binpack", "field": "disk"}]}),
            serde_json::json!({"placementConstraints": [{"type": "memberOf", "expression": "attribute:zone =="}]}),
            serde_json::json!({"placementConstraints": [{"type": "distinctInstance", "expression": "attribute:zone exists"}]}),
        ] {
            assert_eq!(run(bad).unwrap_err().code, "InvalidParameterException");
        }
    }

    /// Registers a polling container instance with `cpu` units and 4096 MiB in cluster "c".
    fn ec2_instance(ecs: &Ecs, c: &RequestContext, cpu: i32) -> (String, String) {
        let ci = ecs
            .register_container_instance(
                c,
                serde_json::from_value(serde_json::json!({
                    "cluster": "c",
                    "totalResources": [
                        {"name": "CPU", "type": "INTEGER", "integerValue": cpu},
                        {"name": "MEMORY", "type": "INTEGER", "integerValue": 4096}
                    ],
                    // What a host-mode definition requires.
                    "attributes": [{"name": "com.amazonaws.ecs.capability.docker-remote-api.1.18"}]
                }))
                .unwrap(),
            )
            .unwrap()
            .container_instance
            .unwrap();
        let arn = ci.container_instance_arn.unwrap();
        let id = super::super::container_instances::store_id(c, "c", &arn).unwrap();
        ecs.store
            .write(|tx| record_poll(tx, &instance_host(scope(c), &id), c.now.millis()))
            .unwrap();
        (id, arn)
    }

    fn ec2_td(ecs: &Ecs, c: &RequestContext, family: &str, cpu: i32, host_port: Option<i32>) {
        let ports = match host_port {
            Some(p) => serde_json::json!([{"containerPort": p, "hostPort": p}]),
            None => serde_json::json!([]),
        };
        let td: s::RegisterTaskDefinitionRequest = serde_json::from_value(serde_json::json!({
            "family": family, "networkMode": "host",
            "containerDefinitions": [{"name": "app", "image": "busybox", "cpu": cpu,
                "memory": 16, "portMappings": ports}]
        }))
        .unwrap();
        ecs.register_task_definition(c, td).unwrap();
    }

    fn run_ec2(ecs: &Ecs, c: &RequestContext, family: &str, count: i32) -> s::RunTaskResponse {
        let req: s::RunTaskRequest = serde_json::from_value(serde_json::json!({
            "cluster": "c", "taskDefinition": family, "launchType": "EC2", "count": count,
        }))
        .unwrap();
        ecs.run_task(c, req).unwrap()
    }

    /// What the store says each instance holds: (remaining CPU recorded, CPU of its tasks
    /// that are not STOPPED, their host ports).
    fn held_from_store(ecs: &Ecs, c: &RequestContext) -> Vec<(String, i32, i32, Vec<i32>)> {
        ecs.store
            .read(|tx| -> Result<_, Failure> {
                let tasks = tx.list_json::<StoredTask>(scope(c), task_kind::TASK, "c/")?;
                let mut out = Vec::new();
                for (id, mut ci) in
                    tx.list_json::<s::ContainerInstance>(scope(c), kind::CONTAINER_INSTANCE, "c/")?
                {
                    with_usage(tx, scope(c), &id, &mut ci)?;
                    let mine: Vec<&StoredTask> = tasks
                        .iter()
                        .map(|(_, t)| t)
                        .filter(|t| t.container_instance.as_deref() == Some(id.as_str()))
                        .filter(|t| t.last_status() != TaskStatus::Stopped)
                        .collect();
                    let remaining = ci
                        .remaining_resources
                        .iter()
                        .flatten()
                        .find(|r| r.name.as_deref() == Some("CPU"))
                        .and_then(|r| r.integer_value)
                        .unwrap_or(0);
                    out.push((
                        id,
                        remaining,
                        mine.iter().map(|t| t.reserved_cpu).sum(),
                        mine.iter().flat_map(|t| t.reserved_ports.clone()).collect(),
                    ));
                }
                Ok(out)
            })
            .unwrap()
    }

    #[test]
    fn replanning_stops_at_success_at_another_error_or_after_the_attempts() {
        let conflict = |id: &str| {
            Failure::Store(berth_store::StoreError::Conflict {
                kind: kind::CONTAINER_INSTANCE.into(),
                id: id.into(),
                expected: 1,
            })
        };
        // Stale twice, then applied.
        let mut tries = 0;
        let mut stale = Vec::new();
        let out = with_replanning(
            4,
            || {
                tries += 1;
                if tries < 3 {
                    Err(conflict("c/a"))
                } else {
                    Ok(tries)
                }
            },
            |id| stale.push(id.to_string()),
        );
        assert_eq!(out.unwrap(), 3);
        assert_eq!(stale, ["c/a", "c/a"]);
        // Always stale: gives up with the conflict after the bounded attempts.
        let mut tries = 0;
        let out: Result<(), Failure> = with_replanning(
            3,
            || {
                tries += 1;
                Err(conflict("c/b"))
            },
            |_| {},
        );
        assert!(matches!(out, Err(Failure::Store(_))));
        assert_eq!(tries, 3);
        // Another error is not retried.
        let mut tries = 0;
        let out: Result<(), Failure> = with_replanning(
            3,
            || {
                tries += 1;
                Err(invalid("no").into())
            },
            |_| {},
        );
        assert!(matches!(out, Err(Failure::Aws(_))));
        assert_eq!(tries, 1);
    }

    /// A plan made from a stale view of an instance (a write the index never heard of, as
    /// another server replica's would be) fails its version check, and is planned again from
    /// the store instead of overcommitting.
    #[test]
    fn a_stale_plan_is_planned_again_not_applied() {
        let (ecs, c) = setup();
        let (id, arn) = ec2_instance(&ecs, &c, 1024);
        ec2_td(&ecs, &c, "small", 512, None);
        // The index is built and current.
        assert_eq!(run_ec2(&ecs, &c, "small", 1).tasks.unwrap().len(), 1);
        // Deaf index: the store no longer tells it anything. Another writer takes the rest.
        ecs.store.observe(&[], |_| {}).unwrap();
        ecs.store
            .write(|tx| -> Result<(), Failure> {
                let (mut usage, v) = instance_usage::stored(tx, scope(&c), &id)?.unwrap();
                for r in &mut usage.remaining_resources {
                    if r.name.as_deref() == Some("CPU") {
                        r.integer_value = Some(0);
                    }
                }
                tx.put(
                    scope(&c),
                    kind::CONTAINER_INSTANCE_USAGE,
                    &id,
                    Some(v),
                    &usage,
                )?;
                Ok(())
            })
            .unwrap();
        // The index still believes 512 units are free; the apply finds out, replans.
        let out = run_ec2(&ecs, &c, "small", 1);
        assert!(out.tasks.unwrap().is_empty());
        let f = out.failures.unwrap();
        assert_eq!(f[0].reason.as_deref(), Some("RESOURCE:CPU"));
        assert_eq!(f[0].arn.as_deref(), Some(arn.as_str()));
    }

    /// Many clients racing for few free slots: the store never shows an instance holding more
    /// than it registered, or a host port twice.
    #[test]
    fn concurrent_run_tasks_never_overcommit() {
        let (ecs, c) = setup();
        let ecs = Arc::new(ecs);
        for _ in 0..3 {
            ec2_instance(&ecs, &c, 1024);
        }
        // 1024 units / 384 = 2 per instance by CPU; port 8080 allows 1 per instance.
        ec2_td(&ecs, &c, "cpu", 384, None);
        ec2_td(&ecs, &c, "port", 1, Some(8080));
        let threads: Vec<_> = (0..12)
            .map(|k| {
                let ecs = ecs.clone();
                let c = c.clone();
                std::thread::spawn(move || {
                    let family = if k % 2 == 0 { "cpu" } else { "port" };
                    let mut placed = 0;
                    for _ in 0..5 {
                        placed += run_ec2(&ecs, &c, family, 1 + (k % 3)).tasks.unwrap().len();
                    }
                    (family, placed)
                })
            })
            .collect();
        let mut placed: std::collections::HashMap<&str, usize> = Default::default();
        for t in threads {
            let (family, n) = t.join().unwrap();
            *placed.entry(family).or_default() += n;
        }
        assert_eq!(placed["cpu"], 6, "{placed:?}");
        assert_eq!(placed["port"], 3, "{placed:?}");
        for (id, remaining, used, ports) in held_from_store(&ecs, &c) {
            assert!(used <= 1024, "{id} holds {used} CPU units");
            assert_eq!(remaining, 1024 - used, "{id}");
            let mut unique = ports.clone();
            unique.sort_unstable();
            unique.dedup();
            assert_eq!(
                unique.len(),
                ports.len(),
                "{id} gave a port twice: {ports:?}"
            );
        }
    }

    /// A batch of reports naming several tasks of one instance writes the instance once,
    /// with every task's counts and released resources, and moves the cluster's counters;
    /// tasks that start move only the instance's started-tasks counter, not its record.
    #[test]
    fn a_batch_of_reports_accounts_each_task_and_writes_its_instance_once() {
        let (ecs, c) = setup();
        let (ci_id, _) = ec2_instance(&ecs, &c, 1024);
        ec2_td(&ecs, &c, "cpu", 100, None);
        let arns: Vec<String> = run_ec2(&ecs, &c, "cpu", 4)
            .tasks
            .unwrap()
            .into_iter()
            .map(|t| t.task_arn.unwrap())
            .collect();
        // The record as stored, with its usage and counts as shown (the started tasks
        // counted in), and the versions of the record and of its usage record.
        let instance = |ecs: &Ecs| {
            ecs.store
                .read(|tx| -> Result<_, Failure> {
                    let (mut ci, v) = tx
                        .get_json::<s::ContainerInstance>(
                            scope(&c),
                            kind::CONTAINER_INSTANCE,
                            &ci_id,
                        )?
                        .unwrap();
                    let (_, usage_version) =
                        instance_usage::stored(tx, scope(&c), &ci_id)?.unwrap();
                    with_usage(tx, scope(&c), &ci_id, &mut ci)?;
                    Ok((ci, (v, usage_version)))
                })
                .unwrap()
        };
        let report = |status: &str| berth_wire::agent::TaskStateChanges {
            changes: arns
                .iter()
                .map(|a| s::SubmitTaskStateChangeRequest {
                    cluster: Some("c".into()),
                    task: Some(a.clone()),
                    status: Some(status.into()),
                    ..Default::default()
                })
                .collect(),
        };
        let cpu_left = |ci: &s::ContainerInstance| {
            ci.remaining_resources
                .iter()
                .flatten()
                .find(|r| r.name.as_deref() == Some("CPU"))
                .and_then(|r| r.integer_value)
        };
        let (placed, v0) = instance(&ecs);
        assert_eq!(v0.0, 1, "placing tasks leaves the instance's record alone");
        assert_eq!(placed.pending_tasks_count, Some(4));
        assert_eq!(cpu_left(&placed), Some(1024 - 400));

        let done = submit_task_state_changes(&ecs, &c, &report("RUNNING")).unwrap();
        assert_eq!(done.applied, 4);
        let (running, v1) = instance(&ecs);
        assert_eq!(v1, v0, "starting tasks leaves the instance's records alone");
        assert_eq!(running.pending_tasks_count, Some(0));
        assert_eq!(running.running_tasks_count, Some(4));
        assert_eq!(ecs.store.read(|tx| counts(tx, &c, "c")).unwrap(), (4, 0));

        submit_task_state_changes(&ecs, &c, &report("STOPPED")).unwrap();
        let (stopped, v2) = instance(&ecs);
        assert_eq!(
            v2.0, v1.0,
            "stopping tasks leaves the instance's record alone"
        );
        assert_eq!(v2.1, v1.1 + 1, "one write of its usage for the whole batch");
        assert_eq!(stopped.running_tasks_count, Some(0));
        assert_eq!(stopped.pending_tasks_count, Some(0));
        assert_eq!(
            cpu_left(&stopped),
            Some(1024),
            "every task's CPU given back"
        );
        assert_eq!(ecs.store.read(|tx| counts(tx, &c, "c")).unwrap(), (0, 0));
        // The index saw the same: the freed CPU places 10 tasks again at once.
        assert_eq!(run_ec2(&ecs, &c, "cpu", 10).tasks.unwrap().len(), 10);
    }

    /// Registers a connected container instance of cluster "c" from `body` (JSON of
    /// RegisterContainerInstance, merged over 4096 CPU / 4096 MiB and the attribute a
    /// host-mode definition requires); returns its ARN.
    fn connected_instance(ecs: &Ecs, c: &RequestContext, body: serde_json::Value) -> String {
        let mut req = serde_json::json!({
            "cluster": "c",
            "totalResources": [
                {"name": "CPU", "type": "INTEGER", "integerValue": 4096},
                {"name": "MEMORY", "type": "INTEGER", "integerValue": 4096}
            ],
            "attributes": [{"name": "com.amazonaws.ecs.capability.docker-remote-api.1.18"}]
        });
        for (k, v) in body.as_object().unwrap() {
            req[k] = v.clone();
        }
        let arn = ecs
            .register_container_instance(c, serde_json::from_value(req).unwrap())
            .unwrap()
            .container_instance
            .unwrap()
            .container_instance_arn
            .unwrap();
        ecs.store
            .write(|tx| {
                let id = super::super::container_instances::store_id(c, "c", &arn).unwrap();
                record_poll(tx, &instance_host(scope(c), &id), c.now.millis())
            })
            .unwrap();
        arn
    }

    fn run_json(ecs: &Ecs, c: &RequestContext, body: serde_json::Value) -> s::RunTaskResponse {
        ecs.run_task(c, serde_json::from_value(body).unwrap())
            .unwrap()
    }

    /// A capacity provider strategy splits a RunTask call: base first, then by weight, each
    /// provider's share placed on the instances that joined it; the cluster's default
    /// strategy applies when neither a launch type nor a strategy is given.
    #[test]
    fn capacity_provider_strategy_splits_between_providers() {
        let (ecs, c) = setup();
        for name in ["cpa", "cpb", "idle"] {
            ecs.create_capacity_provider(
                &c,
                s::CreateCapacityProviderRequest {
                    name: name.into(),
                    auto_scaling_group_provider: Some(s::AutoScalingGroupProvider {
                        auto_scaling_group_arn: format!("arn:aws:autoscaling:us-east-1:000000000000:autoScalingGroup:1:autoScalingGroupName/{name}"),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            )
            .unwrap();
        }
        ecs.put_cluster_capacity_providers(
            &c,
            s::PutClusterCapacityProvidersRequest {
                cluster: "c".into(),
                capacity_providers: vec!["cpa".into(), "cpb".into(), "FARGATE_SPOT".into()],
                default_capacity_provider_strategy: vec![],
            },
        )
        .unwrap();
        let a = connected_instance(
            &ecs,
            &c,
            serde_json::json!({"instanceIdentityDocument": "{\"capacityProviderName\":\"cpa\"}"}),
        );
        let b = connected_instance(
            &ecs,
            &c,
            serde_json::json!({"instanceIdentityDocument": "{\"capacityProviderName\":\"cpb\"}"}),
        );
        let shown = ecs
            .describe_container_instances(
                &c,
                s::DescribeContainerInstancesRequest {
                    cluster: Some("c".into()),
                    container_instances: vec![a.clone()],
                    include: None,
                },
            )
            .unwrap()
            .container_instances
            .unwrap();
        assert_eq!(shown[0].capacity_provider_name.as_deref(), Some("cpa"));
        let nope = ecs.register_container_instance(
            &c,
            serde_json::from_value(serde_json::json!({
                "cluster": "c", "instanceIdentityDocument": "{\"capacityProviderName\":\"nope\"}"
            }))
            .unwrap(),
        );
        assert!(nope.unwrap_err().message.contains("'nope' does not exist"));
        let td: s::RegisterTaskDefinitionRequest = serde_json::from_value(serde_json::json!({
            "family": "svc", "networkMode": "host",
            "containerDefinitions": [{"name": "app", "image": "busybox", "cpu": 1, "memory": 8}]
        }))
        .unwrap();
        ecs.register_task_definition(&c, td).unwrap();
        let by_provider = |r: &s::RunTaskResponse, p: &str, arn: &str| {
            let tasks = r.tasks.as_deref().unwrap_or_default();
            assert!(tasks.iter().all(|t| {
                (t.capacity_provider_name.as_deref() == Some(p))
                    == (t.container_instance_arn.as_deref() == Some(arn))
            }));
            tasks
                .iter()
                .filter(|t| t.capacity_provider_name.as_deref() == Some(p))
                .count()
        };
        // Base 1 on cpa, then 1:3 over the 4 others.
        let out = run_json(
            &ecs,
            &c,
            serde_json::json!({"cluster": "c", "taskDefinition": "svc", "count": 5,
                "capacityProviderStrategy": [
                    {"capacityProvider": "cpa", "base": 1, "weight": 1},
                    {"capacityProvider": "cpb", "weight": 3}]}),
        );
        assert_eq!(out.failures.as_deref(), Some(&[][..]));
        assert_eq!(by_provider(&out, "cpa", &a), 2);
        assert_eq!(by_provider(&out, "cpb", &b), 3);
        // The cluster's default strategy.
        ecs.put_cluster_capacity_providers(
            &c,
            s::PutClusterCapacityProvidersRequest {
                cluster: "c".into(),
                capacity_providers: vec!["cpa".into(), "cpb".into()],
                default_capacity_provider_strategy: vec![s::CapacityProviderStrategyItem {
                    capacity_provider: "cpb".into(),
                    base: None,
                    weight: Some(1),
                }],
            },
        )
        .unwrap();
        let out = run_json(
            &ecs,
            &c,
            serde_json::json!({"cluster": "c", "taskDefinition": "svc", "count": 2}),
        );
        assert_eq!(by_provider(&out, "cpb", &b), 2);
        // A provider the cluster does not have.
        let e = ecs
            .run_task(
                &c,
                serde_json::from_value(serde_json::json!({"cluster": "c", "taskDefinition": "svc",
                    "capacityProviderStrategy": [{"capacityProvider": "idle", "weight": 1}]}))
                .unwrap(),
            )
            .unwrap_err();
        assert_eq!(e.code, "InvalidParameterException");
        assert!(
            e.message.contains("not associated with the cluster"),
            "{}",
            e.message
        );
        // Fargate providers split the same way, on Berth-managed capacity.
        ecs.put_cluster_capacity_providers(
            &c,
            s::PutClusterCapacityProvidersRequest {
                cluster: "c".into(),
                capacity_providers: vec!["FARGATE".into(), "FARGATE_SPOT".into()],
                default_capacity_provider_strategy: vec![],
            },
        )
        .unwrap();
        let out = run_json(
            &ecs,
            &c,
            serde_json::json!({"cluster": "c", "taskDefinition": "web", "count": 3,
                "networkConfiguration": {"awsvpcConfiguration": {"subnets": [crate::test_support::default_subnet(&ecs.store, &c)]}},
                "capacityProviderStrategy": [
                    {"capacityProvider": "FARGATE", "base": 1, "weight": 1},
                    {"capacityProvider": "FARGATE_SPOT", "weight": 1}]}),
        );
        let names: Vec<Option<String>> = out
            .tasks
            .unwrap()
            .iter()
            .map(|t| {
                assert_eq!(t.launch_type, Some(s::LaunchType::Fargate));
                t.capacity_provider_name.clone()
            })
            .collect();
        assert_eq!(
            names,
            [
                Some("FARGATE".to_string()),
                Some("FARGATE".to_string()),
                Some("FARGATE_SPOT".to_string())
            ]
        );
    }

    /// GPUs are reserved by id, never twice, and come back when the task stops; a missing
    /// required attribute is a MissingAttribute failure naming the instance.
    #[test]
    fn gpus_by_id_and_missing_attributes() {
        let (ecs, c) = setup();
        let arn = connected_instance(
            &ecs,
            &c,
            serde_json::json!({"totalResources": [
                {"name": "CPU", "type": "INTEGER", "integerValue": 4096},
                {"name": "MEMORY", "type": "INTEGER", "integerValue": 4096},
                {"name": "GPU", "type": "STRINGSET", "stringSetValue": ["GPU-0", "GPU-1", "GPU-2"]}
            ]}),
        );
        let td: s::RegisterTaskDefinitionRequest = serde_json::from_value(serde_json::json!({
            "family": "ml", "networkMode": "host",
            "containerDefinitions": [
                {"name": "a", "image": "busybox", "memory": 8,
                 "resourceRequirements": [{"type": "GPU", "value": "1"}]},
                {"name": "b", "image": "busybox", "memory": 8,
                 "resourceRequirements": [{"type": "GPU", "value": "1"}]}]
        }))
        .unwrap();
        ecs.register_task_definition(&c, td).unwrap();
        let run = || {
            run_json(
                &ecs,
                &c,
                serde_json::json!({"cluster": "c", "taskDefinition": "ml", "launchType": "EC2"}),
            )
        };
        let first = run();
        let t = &first.tasks.as_ref().unwrap()[0];
        let ids: Vec<Vec<String>> = t
            .containers
            .iter()
            .flatten()
            .map(|c| c.gpu_ids.clone().unwrap_or_default())
            .collect();
        assert_eq!(ids.iter().map(Vec::len).collect::<Vec<_>>(), [1, 1]);
        assert_ne!(ids[0], ids[1]);
        let second = run();
        let f = &second.failures.unwrap()[0];
        assert_eq!(f.reason.as_deref(), Some("RESOURCE:GPU"));
        assert_eq!(f.arn.as_deref(), Some(arn.as_str()));
        let free = |ecs: &Ecs| -> Vec<String> {
            let ci = ecs
                .describe_container_instances(
                    &c,
                    s::DescribeContainerInstancesRequest {
                        cluster: Some("c".into()),
                        container_instances: vec![arn.clone()],
                        include: None,
                    },
                )
                .unwrap()
                .container_instances
                .unwrap()
                .remove(0);
            let mut v = ci
                .remaining_resources
                .unwrap()
                .into_iter()
                .find(|r| r.name.as_deref() == Some("GPU"))
                .and_then(|r| r.string_set_value)
                .unwrap();
            v.sort();
            v
        };
        assert_eq!(free(&ecs).len(), 1);
        assert!(!ids.iter().flatten().any(|g| free(&ecs).contains(g)));
        // Stopped: its GPUs are free again.
        let stopped: s::SubmitTaskStateChangeRequest = serde_json::from_value(serde_json::json!({
            "cluster": "c", "task": t.task_arn, "status": "STOPPED"
        }))
        .unwrap();
        ecs.submit_task_state_change(&c, stopped).unwrap();
        assert_eq!(free(&ecs), ["GPU-0", "GPU-1", "GPU-2"]);
        // A definition requiring what the instance lacks (a health check needs
        // ecs.capability.container-health-check).
        let td: s::RegisterTaskDefinitionRequest = serde_json::from_value(serde_json::json!({
            "family": "checked", "networkMode": "host",
            "containerDefinitions": [{"name": "a", "image": "busybox", "memory": 8,
                "healthCheck": {"command": ["CMD", "true"]}}]
        }))
        .unwrap();
        ecs.register_task_definition(&c, td).unwrap();
        let out = run_json(
            &ecs,
            &c,
            serde_json::json!({"cluster": "c", "taskDefinition": "checked", "launchType": "EC2"}),
        );
        let f = &out.failures.unwrap()[0];
        assert_eq!(f.reason.as_deref(), Some("MissingAttribute"));
        assert_eq!(f.arn.as_deref(), Some(arn.as_str()));
        assert_eq!(
            f.detail.as_deref(),
            Some("missing attribute ecs.capability.container-health-check")
        );
    }
}
