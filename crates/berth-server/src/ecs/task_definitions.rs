//! Task definitions: RegisterTaskDefinition, DescribeTaskDefinition, ListTaskDefinitions,
//! ListTaskDefinitionFamilies, DeregisterTaskDefinition, DeleteTaskDefinitions.
//!
//! A revision is stored as a [`StoredTaskDefinition`]: the whole `TaskDefinition` wire shape
//! as ECS returns it (container defaults filled in, compatibilities and requiresAttributes
//! derived, task cpu/memory converted to units and MiB) plus its tags. Revisions come from a
//! per-family counter, so a number is never reused, even after DeleteTaskDefinitions.
//!
//! Store ids are `<family>#<revision zero-padded to 10 digits>`. The separator `#` sorts
//! before every character a family may contain (letters, digits, `-`, `_`), so id order is
//! exactly ECS's listing order (family lexicographically, then revision), a prefix scan of
//! `<family>#` lists one family in revision order, and a scan of `<prefix>` lists every
//! family starting with it.
//!
//! Validation ([`prepare`]) is a pure function of the request; the handlers only add the
//! identity (ARN, revision, timestamps) and do the store I/O.

use std::collections::BTreeSet;

use berth_store::Tx;
use berth_wire::ecs::shapes as s;
use berth_wire::{AwsError, RequestContext};
use serde::{Deserialize, Serialize};

use super::Ecs;
use super::common::{self, Page, aws, client, invalid, kind, scope};
use crate::failure::Failure;

/// Separates family and revision in store ids; sorts before every family character.
const SEP: char = '#';

/// At most this many containers in one task definition, as on ECS.
const MAX_CONTAINERS: usize = 10;

/// ECS's answer when the task definition to describe does not exist.
const UNABLE_TO_DESCRIBE: &str = "Unable to describe task definition.";

/// The failure reason of DeleteTaskDefinitions for an ACTIVE revision.
const STILL_ACTIVE: &str = "The specified task definition is still in ACTIVE status. Please deregister the target and try again.";

/// The failure reason of DeleteTaskDefinitions for a revision that does not exist.
const DOES_NOT_EXIST: &str = "The specified task definition does not exist. Specify a valid account, family, revision and try again.";

/// The failure reason of DeleteTaskDefinitions for an identifier without a revision.
const INVALID_IDENTIFIER: &str = "The specified task definition identifier is invalid. Specify a valid name or ARN and try again.";

/// One stored revision: the task definition as ECS returns it, and its tags.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredTaskDefinition {
    pub task_definition: s::TaskDefinition,
    #[serde(default)]
    pub tags: Vec<s::Tag>,
}

impl StoredTaskDefinition {
    fn status(&self) -> s::TaskDefinitionStatus {
        self.task_definition
            .status
            .unwrap_or(s::TaskDefinitionStatus::Active)
    }
}

/// The store id of `family:revision`.
pub fn store_id(family: &str, revision: i32) -> String {
    format!("{family}{SEP}{revision:010}")
}

/// `arn:aws:ecs:<region>:<account>:task-definition/<family>:<revision>`.
pub fn task_definition_arn(ctx: &RequestContext, family: &str, revision: i32) -> String {
    common::arn(ctx, format!("task-definition/{family}:{revision}"))
}

/// The name of a family's revision counter.
fn sequence_name(family: &str) -> String {
    format!("{}/{family}", kind::TASK_DEFINITION)
}

/// The family of a store id.
fn family_of_id(id: &str) -> &str {
    id.split_once(SEP).map_or(id, |(f, _)| f)
}

// ---------------------------------------------------------------------------------------
// Identifiers
// ---------------------------------------------------------------------------------------

/// What a `taskDefinition` parameter names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ident {
    /// A family alone: its latest ACTIVE revision.
    Family(String),
    /// One revision of a family.
    Revision(String, i32),
}

/// Parses a `taskDefinition` parameter: `family`, `family:revision` or a full ARN (with or
/// without revision). `Ok(None)` when it cannot name a task definition here (an ARN of
/// another account or region, a malformed family); a revision that is not a number is
/// ClientException, as ECS answers.
pub fn parse_ident(ctx: &RequestContext, ident: &str) -> Result<Option<Ident>, AwsError> {
    let rest = match common::arn_resource(ctx, ident, "task-definition") {
        Some(Ok(rest)) => rest,
        Some(Err(())) => return Ok(None),
        None => ident,
    };
    let (family, revision) = match rest.split_once(':') {
        Some((f, r)) => (f, Some(r)),
        None => (rest, None),
    };
    if !berth_model::names::is_family(family) {
        return Ok(None);
    }
    match revision {
        None => Ok(Some(Ident::Family(family.to_string()))),
        Some(r) => match r.parse::<i32>() {
            Ok(n) if n > 0 && r.bytes().all(|b| b.is_ascii_digit()) => {
                Ok(Some(Ident::Revision(family.to_string(), n)))
            }
            _ => Err(client(format!("Invalid revision number. Number: {r}"))),
        },
    }
}

/// The revision `ident` names (a family alone: its latest ACTIVE revision), with its record
/// version; `None` if there is none. For other modules (services, tasks) as well.
pub fn resolve(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    ident: &Ident,
) -> Result<Option<(StoredTaskDefinition, i64)>, Failure> {
    match ident {
        Ident::Revision(family, revision) => Ok(tx.get_json::<StoredTaskDefinition>(
            scope(ctx),
            kind::TASK_DEFINITION,
            &store_id(family, *revision),
        )?),
        Ident::Family(family) => {
            // The latest revision alone first: it is nearly always the one (RunTask reads it
            // inside the store's writer, so each record read there counts); then older ones
            // a few at a time, however many the family has.
            const PAGE: usize = 8;
            let prefix = format!("{family}{SEP}");
            let mut before: Option<String> = None;
            let mut page = 1;
            loop {
                let records = tx.list_backwards(
                    scope(ctx),
                    kind::TASK_DEFINITION,
                    &prefix,
                    before.as_deref(),
                    page,
                )?;
                for r in &records {
                    let td: StoredTaskDefinition = r.decode(kind::TASK_DEFINITION)?;
                    if td.status() == s::TaskDefinitionStatus::Active {
                        return Ok(Some((td, r.version)));
                    }
                }
                match records.last() {
                    Some(last) if records.len() == page => before = Some(last.id.clone()),
                    _ => return Ok(None),
                }
                page = PAGE;
            }
        }
    }
}

/// For TagResource/UntagResource/ListTagsForResource: the revision `family_rev` names (the
/// part of a task definition ARN after `task-definition/`, i.e. `family:revision`), whatever
/// its status, with its record version. `None` if it does not exist or `family_rev` is not of
/// that form.
pub fn load_for_tags(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    family_rev: &str,
) -> Result<Option<(StoredTaskDefinition, i64)>, Failure> {
    match parse_ident(ctx, family_rev) {
        Ok(Some(ident @ Ident::Revision(..))) => resolve(tx, ctx, &ident),
        _ => Ok(None),
    }
}

/// Writes back `record` (e.g. with its `tags` changed) loaded at `version` by
/// [`load_for_tags`]; fails with a store conflict if it changed since. Returns the new version.
pub fn store_tags(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    record: &StoredTaskDefinition,
    version: i64,
) -> Result<i64, Failure> {
    let family = record.task_definition.family.clone().unwrap_or_default();
    let revision = record.task_definition.revision.unwrap_or_default();
    Ok(tx.put(
        scope(ctx),
        kind::TASK_DEFINITION,
        &store_id(&family, revision),
        Some(version),
        record,
    )?)
}

// ---------------------------------------------------------------------------------------
// Task size
// ---------------------------------------------------------------------------------------

/// Task-level cpu as CPU units: an integer (`"1024"`) or vCPUs (`"1 vCPU"`, `"0.5vcpu"`).
pub fn parse_task_cpu(value: &str) -> Option<i32> {
    let v = value.trim();
    if let Ok(n) = v.parse::<i32>() {
        return Some(n);
    }
    let lower = v.to_ascii_lowercase();
    let number = lower.strip_suffix("vcpu")?.trim();
    scaled(number, 1024)
}

/// Task-level memory in MiB: an integer (`"2048"`) or GB (`"2 GB"`, `"0.5GB"`).
pub fn parse_task_memory(value: &str) -> Option<i32> {
    let v = value.trim();
    if let Ok(n) = v.parse::<i32>() {
        return Some(n);
    }
    let lower = v.to_ascii_lowercase();
    let number = lower.strip_suffix("gb")?.trim();
    scaled(number, 1024)
}

/// `number` (a decimal like `0.25`) times `unit`, if that is a whole number.
fn scaled(number: &str, unit: i64) -> Option<i32> {
    if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if frac.contains('.') || (whole.is_empty() && frac.is_empty()) || frac.len() > 6 {
        return None;
    }
    let whole: i64 = if whole.is_empty() {
        0
    } else {
        whole.parse().ok()?
    };
    let frac_value: i64 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    let denominator = 10_i64.pow(frac.len() as u32);
    let numerator = whole
        .checked_mul(denominator)?
        .checked_add(frac_value)?
        .checked_mul(unit)?;
    if numerator % denominator != 0 {
        return None;
    }
    i32::try_from(numerator / denominator).ok()
}

/// Whether `cpu` units and `memory` MiB are one of Fargate's task sizes.
pub fn is_fargate_size(cpu: i32, memory: i32) -> bool {
    let in_steps =
        |min: i32, max: i32, step: i32| (min..=max).contains(&memory) && (memory - min) % step == 0;
    match cpu {
        256 => matches!(memory, 512 | 1024 | 2048),
        512 => in_steps(1024, 4096, 1024),
        1024 => in_steps(2048, 8192, 1024),
        2048 => in_steps(4096, 16384, 1024),
        4096 => in_steps(8192, 30720, 1024),
        8192 => in_steps(16384, 61440, 4096),
        16384 => in_steps(32768, 122880, 8192),
        _ => false,
    }
}

// ---------------------------------------------------------------------------------------
// Validation and the returned shape
// ---------------------------------------------------------------------------------------

fn is_container_name(name: &str) -> bool {
    berth_model::names::is_simple_name(name, 255)
}

fn requires(input: &s::RegisterTaskDefinitionRequest, c: s::Compatibility) -> bool {
    input
        .requires_compatibilities
        .iter()
        .flatten()
        .any(|r| *r == c)
}

/// The network mode's name in ECS's messages.
fn mode_name(mode: Option<s::NetworkMode>) -> &'static str {
    mode.map_or("bridge", |m| m.as_str())
}

/// Checks a RegisterTaskDefinition request as ECS does and returns the task definition as
/// ECS returns it, without its identity (ARN, revision, status, registration): container
/// defaults filled in, task cpu/memory normalized, compatibilities and requiresAttributes
/// derived.
pub fn prepare(input: &s::RegisterTaskDefinitionRequest) -> Result<s::TaskDefinition, AwsError> {
    validate(input)?;
    Ok(build(input))
}

/// The task-level cpu units and memory MiB a request asks for, checked.
fn task_size(
    input: &s::RegisterTaskDefinitionRequest,
) -> Result<(Option<i32>, Option<i32>), AwsError> {
    let cpu = match input.cpu.as_deref() {
        None => None,
        Some(v) => match parse_task_cpu(v) {
            Some(n) if (128..=196_608).contains(&n) => Some(n),
            _ => return Err(invalid("Invalid 'cpu' setting for task.")),
        },
    };
    let memory = match input.memory.as_deref() {
        None => None,
        Some(v) => match parse_task_memory(v) {
            Some(n) if n > 0 => Some(n),
            _ => return Err(invalid("Invalid 'memory' setting for task.")),
        },
    };
    Ok((cpu, memory))
}

/// Every rule of RegisterTaskDefinition, in the order ECS reports them.
pub fn validate(input: &s::RegisterTaskDefinitionRequest) -> Result<(), AwsError> {
    if !berth_model::names::is_family(&input.family) {
        return Err(client(
            "Family contains invalid characters. Up to 255 letters (uppercase and lowercase), numbers, hyphens, and underscores are allowed.",
        ));
    }
    let containers = &input.container_definitions;
    if containers.is_empty() {
        return Err(client("Container list cannot be empty."));
    }
    if containers.len() > MAX_CONTAINERS {
        return Err(client("Too many containers."));
    }
    let (task_cpu, task_memory) = task_size(input)?;
    let mode = input.network_mode;
    let fargate = requires(input, s::Compatibility::Fargate);

    // Volumes: unique names.
    let mut volume_names = BTreeSet::new();
    for v in input.volumes.iter().flatten() {
        let name = v.name.as_deref().unwrap_or("");
        if name.is_empty() {
            continue;
        }
        if !volume_names.insert(name) {
            return Err(client(format!("Duplicate volume name '{name}'.")));
        }
    }

    // Containers on their own.
    let mut names = BTreeSet::new();
    for c in containers {
        let name = c.name.as_deref().unwrap_or("");
        if name.is_empty() {
            return Err(client("Container.name should not be null or empty."));
        }
        if !is_container_name(name) {
            return Err(client(format!(
                "Invalid container name '{name}'. Up to 255 letters (uppercase and lowercase), numbers, hyphens, and underscores are allowed."
            )));
        }
        if !names.insert(name) {
            return Err(client(format!(
                "Duplicate container name '{name}'. Container names must be unique within a task definition."
            )));
        }
        if c.image.as_deref().is_none_or(|i| i.trim().is_empty()) {
            return Err(client("Container.image should not be null or empty."));
        }
        validate_container_resources(c, name, task_memory)?;
        validate_port_mappings(c, name, mode)?;
        if mode == Some(s::NetworkMode::Awsvpc) {
            if c.links.as_ref().is_some_and(|l| !l.is_empty()) {
                return Err(client(
                    "links are not supported on container when networkMode=awsvpc.",
                ));
            }
            if c.hostname.is_some() {
                return Err(client(
                    "hostname is not supported on container when networkMode=awsvpc.",
                ));
            }
        }
        for m in c.mount_points.iter().flatten() {
            match m.source_volume.as_deref() {
                Some(v) if volume_names.contains(v) => {}
                Some(v) => return Err(client(format!("Unknown volume '{v}'."))),
                None => {
                    return Err(client(format!(
                        "Invalid 'sourceVolume' setting for container '{name}'."
                    )));
                }
            }
            if m.container_path.as_deref().is_none_or(str::is_empty) {
                return Err(client(format!(
                    "Invalid 'containerPath' setting for container '{name}'."
                )));
            }
        }
        if let Some(l) = &c.log_configuration
            && l.log_driver == s::LogDriver::Awslogs
        {
            let option = |k: &str| l.options.as_ref().and_then(|o| o.get(k));
            if option("awslogs-group").is_none_or(|g| g.is_empty()) {
                return Err(client(
                    "Log driver awslogs option 'awslogs-group' should not be null or empty.",
                ));
            }
            if option("awslogs-create-group").is_some_and(|v| v != "true") {
                return Err(client(
                    "Log driver awslogs option 'awslogs-create-group' should only be set to 'true', else omit option.",
                ));
            }
        }
        if fargate
            && c.log_configuration
                .as_ref()
                .is_some_and(|l| l.log_driver == s::LogDriver::Awslogs)
            && input.execution_role_arn.is_none()
        {
            return Err(client(
                "Fargate requires task definition to have execution role ARN to support log driver awslogs.",
            ));
        }
    }
    if !containers.iter().any(|c| c.essential.unwrap_or(true)) {
        return Err(client(
            "Task definition doesn't have any essential container.",
        ));
    }

    // References between containers.
    for c in containers {
        let name = c.name.as_deref().unwrap_or("");
        for from in c.volumes_from.iter().flatten() {
            match from.source_container.as_deref() {
                Some(src) if names.contains(src) && src != name => {}
                Some(src) => {
                    return Err(client(format!(
                        "Unknown container '{src}' in volumesFrom of container '{name}'."
                    )));
                }
                None => {
                    return Err(client(format!(
                        "Invalid 'volumesFrom' setting for container '{name}'."
                    )));
                }
            }
        }
        for link in c.links.iter().flatten() {
            let target = link.split(':').next().unwrap_or("");
            if !names.contains(target) || target == name {
                return Err(client(format!(
                    "Invalid 'links' setting for container '{name}': unknown container '{target}'."
                )));
            }
        }
        for dep in c.depends_on.iter().flatten() {
            let target = dep.container_name.as_str();
            let Some(other) = containers
                .iter()
                .find(|o| o.name.as_deref() == Some(target))
            else {
                return Err(client(format!(
                    "Container '{name}' depends on container '{target}', which does not exist in the task definition."
                )));
            };
            if target == name {
                return Err(client(format!(
                    "Container '{name}' cannot depend on itself."
                )));
            }
            match dep.condition {
                s::ContainerCondition::Success | s::ContainerCondition::Complete
                    if other.essential.unwrap_or(true) =>
                {
                    return Err(client(
                        "A dependency container with SUCCESS or COMPLETE condition cannot be an essential container",
                    ));
                }
                s::ContainerCondition::Healthy if other.health_check.is_none() => {
                    return Err(client(format!(
                        "A dependency container with HEALTHY condition must have a health check. Container '{target}' has none."
                    )));
                }
                _ => {}
            }
        }
    }

    // Host ports are shared by the whole task.
    let mut host_ports = BTreeSet::new();
    for c in containers {
        for p in c.port_mappings.iter().flatten() {
            let host = effective_host_port(p, mode).unwrap_or(0);
            if host == 0 {
                continue;
            }
            let protocol = p.protocol.unwrap_or(s::TransportProtocol::Tcp);
            if !host_ports.insert((protocol, host)) {
                return Err(client(format!(
                    "{} host port '{host}' is mapped multiple times in task.",
                    protocol.as_str().to_ascii_uppercase()
                )));
            }
        }
    }

    // Container resources against the task size.
    if let Some(task_cpu) = task_cpu {
        let sum: i64 = containers
            .iter()
            .map(|c| i64::from(c.cpu.unwrap_or(0).max(0)))
            .sum();
        if sum > i64::from(task_cpu) {
            return Err(client(
                "The sum of all container 'cpu' values cannot be greater than the value of the task 'cpu'.",
            ));
        }
    }
    if let Some(task_memory) = task_memory {
        for c in containers {
            if c.memory.is_some_and(|m| m > task_memory) {
                return Err(client(format!(
                    "Invalid setting for container '{}'. The container 'memory' value cannot be greater than the value of the task 'memory'.",
                    c.name.as_deref().unwrap_or("")
                )));
            }
        }
        let reservations: i64 = containers
            .iter()
            .map(|c| i64::from(c.memory_reservation.or(c.memory).unwrap_or(0)))
            .sum();
        if reservations > i64::from(task_memory) {
            let what = if containers.iter().any(|c| c.memory_reservation.is_some()) {
                "memoryReservation"
            } else {
                "memory"
            };
            return Err(client(format!(
                "The sum of all container '{what}' values cannot be greater than the value of the task 'memory'."
            )));
        }
    }

    // Launch types the definition must support.
    if fargate {
        if mode != Some(s::NetworkMode::Awsvpc) {
            return Err(client(
                "Fargate only supports network mode \u{2018}awsvpc\u{2019}.",
            ));
        }
        let Some(cpu) = task_cpu else {
            return Err(client(
                "Fargate requires that 'cpu' be defined at the task level.",
            ));
        };
        let Some(memory) = task_memory else {
            return Err(client(
                "Fargate requires that 'memory' be defined at the task level.",
            ));
        };
        if !is_fargate_size(cpu, memory) {
            return Err(client(format!(
                "No Fargate configuration exists for given values: {cpu} CPU, {memory} memory. See the Amazon ECS documentation for the valid values."
            )));
        }
        if input.ipc_mode.is_some() {
            return Err(client(
                "Tasks using the Fargate launch type do not support ipcMode.",
            ));
        }
        if input.pid_mode == Some(s::PidMode::Host) {
            return Err(client(
                "Tasks using the Fargate launch type do not support pidMode 'host'.",
            ));
        }
        if containers.iter().any(|c| c.privileged == Some(true)) {
            return Err(client(
                "Tasks using the Fargate launch type do not support privileged containers.",
            ));
        }
        if input
            .placement_constraints
            .as_ref()
            .is_some_and(|p| !p.is_empty())
        {
            return Err(client(
                "Tasks using the Fargate launch type do not support placement constraints.",
            ));
        }
    }
    if requires(input, s::Compatibility::External) && !supports_external(input) {
        return Err(client(format!(
            "Task definition does not support launch_type EXTERNAL with networkMode={}.",
            mode_name(mode)
        )));
    }
    Ok(())
}

/// Memory and cpu rules of one container.
fn validate_container_resources(
    c: &s::ContainerDefinition,
    name: &str,
    task_memory: Option<i32>,
) -> Result<(), AwsError> {
    if c.cpu.is_some_and(|cpu| cpu < 0) {
        return Err(client(format!(
            "Invalid 'cpu' setting for container '{name}'."
        )));
    }
    if task_memory.is_none() && c.memory.is_none() && c.memory_reservation.is_none() {
        return Err(client(format!(
            "Invalid setting for container '{name}'. At least one of 'memory' or 'memoryReservation' must be specified."
        )));
    }
    if c.memory.is_some_and(|m| m < 6) {
        return Err(client(format!(
            "Invalid 'memory' setting for container '{name}'. The minimum is 6 MiB."
        )));
    }
    if c.memory_reservation.is_some_and(|m| m < 6) {
        return Err(client(format!(
            "Invalid 'memoryReservation' setting for container '{name}'. The minimum is 6 MiB."
        )));
    }
    if let (Some(memory), Some(reservation)) = (c.memory, c.memory_reservation)
        && reservation > memory
    {
        return Err(client(format!(
            "Invalid setting for container '{name}'. 'memory' must be greater than or equal to 'memoryReservation'."
        )));
    }
    Ok(())
}

/// Port mapping rules of one container.
fn validate_port_mappings(
    c: &s::ContainerDefinition,
    name: &str,
    mode: Option<s::NetworkMode>,
) -> Result<(), AwsError> {
    let mut container_ports = BTreeSet::new();
    for p in c.port_mappings.iter().flatten() {
        if let Some(range) = p.container_port_range.as_deref() {
            if p.container_port.is_some() || p.host_port.is_some() || !is_port_range(range) {
                return Err(client(format!(
                    "Invalid 'containerPortRange' setting for container '{name}'."
                )));
            }
            continue;
        }
        let container_port = match p.container_port {
            Some(port) if (1..=65535).contains(&port) => port,
            _ => {
                return Err(client(format!(
                    "Invalid 'containerPort' setting for container '{name}'."
                )));
            }
        };
        if p.host_port.is_some_and(|h| !(0..=65535).contains(&h)) {
            return Err(client(format!(
                "Invalid 'hostPort' setting for container '{name}'."
            )));
        }
        if matches!(mode, Some(s::NetworkMode::Awsvpc | s::NetworkMode::Host))
            && p.host_port.is_some_and(|h| h != 0 && h != container_port)
        {
            return Err(client(format!(
                "When networkMode={}, the host ports and container ports in port mappings must match.",
                mode_name(mode)
            )));
        }
        let protocol = p.protocol.unwrap_or(s::TransportProtocol::Tcp);
        if !container_ports.insert((protocol, container_port)) {
            return Err(client(format!(
                "{} container port '{container_port}' is mapped multiple times in container '{name}'.",
                protocol.as_str().to_ascii_uppercase()
            )));
        }
    }
    Ok(())
}

/// `"8000-8010"`: two ports, the first lower than the second.
fn is_port_range(range: &str) -> bool {
    let Some((a, b)) = range.split_once('-') else {
        return false;
    };
    match (a.trim().parse::<i32>(), b.trim().parse::<i32>()) {
        (Ok(a), Ok(b)) => (1..=65535).contains(&a) && (1..=65535).contains(&b) && a < b,
        _ => false,
    }
}

/// The host port ECS records for a mapping: the container port under awsvpc and host
/// network modes, the given port (0 = dynamic) under bridge; none for a port range.
fn effective_host_port(p: &s::PortMapping, mode: Option<s::NetworkMode>) -> Option<i32> {
    if p.container_port_range.is_some() {
        return p.host_port;
    }
    match mode {
        Some(s::NetworkMode::Awsvpc | s::NetworkMode::Host) => match p.host_port {
            Some(h) if h != 0 => Some(h),
            _ => p.container_port,
        },
        Some(s::NetworkMode::None) => p.host_port,
        _ => Some(p.host_port.unwrap_or(0)),
    }
}

/// Whether ECS Anywhere (EXTERNAL) can run the definition: no awsvpc, no EFS or FSx
/// volumes, no App Mesh proxy, no inference accelerators.
fn supports_external(input: &s::RegisterTaskDefinitionRequest) -> bool {
    input.network_mode != Some(s::NetworkMode::Awsvpc)
        && input.proxy_configuration.is_none()
        && input
            .inference_accelerators
            .as_ref()
            .is_none_or(Vec::is_empty)
        && input.volumes.iter().flatten().all(|v| {
            v.efs_volume_configuration.is_none()
                && v.fsx_windows_file_server_volume_configuration.is_none()
        })
}

/// Whether Fargate can run the definition: awsvpc, a Fargate task size, and nothing Fargate
/// refuses.
fn supports_fargate(
    input: &s::RegisterTaskDefinitionRequest,
    cpu: Option<i32>,
    memory: Option<i32>,
) -> bool {
    let size_ok = matches!((cpu, memory), (Some(c), Some(m)) if is_fargate_size(c, m));
    size_ok
        && input.network_mode == Some(s::NetworkMode::Awsvpc)
        && input.ipc_mode.is_none()
        && input.pid_mode != Some(s::PidMode::Host)
        && input
            .placement_constraints
            .as_ref()
            .is_none_or(Vec::is_empty)
        && input
            .inference_accelerators
            .as_ref()
            .is_none_or(Vec::is_empty)
        && input.volumes.iter().flatten().all(|v| {
            v.docker_volume_configuration.is_none()
                && v.fsx_windows_file_server_volume_configuration.is_none()
                && v.host.as_ref().is_none_or(|h| h.source_path.is_none())
        })
        && input.container_definitions.iter().all(|c| {
            c.privileged != Some(true)
                && c.links.as_ref().is_none_or(Vec::is_empty)
                && !(c
                    .log_configuration
                    .as_ref()
                    .is_some_and(|l| l.log_driver == s::LogDriver::Awslogs)
                    && input.execution_role_arn.is_none())
        })
}

/// The launch types ECS reports the definition compatible with, in ECS's order.
fn compatibilities(
    input: &s::RegisterTaskDefinitionRequest,
    cpu: Option<i32>,
    memory: Option<i32>,
) -> Vec<s::Compatibility> {
    let mut out = Vec::new();
    if supports_external(input) {
        out.push(s::Compatibility::External);
    }
    out.push(s::Compatibility::Ec2);
    if requires(input, s::Compatibility::ManagedInstances) {
        out.push(s::Compatibility::ManagedInstances);
    }
    if supports_fargate(input, cpu, memory) {
        out.push(s::Compatibility::Fargate);
    }
    out
}

fn is_ecr_image(image: &str) -> bool {
    let registry = image.split('/').next().unwrap_or("");
    registry.contains(".dkr.ecr.") && registry.contains(".amazonaws.com")
}

/// The container instance attributes ECS derives from a definition (`requiresAttributes`).
fn required_attributes(input: &s::RegisterTaskDefinitionRequest) -> Vec<s::Attribute> {
    let mut names: Vec<String> = Vec::new();
    let mut add = |n: &str| {
        if !names.iter().any(|e| e == n) {
            names.push(n.to_string());
        }
    };
    const API: &str = "com.amazonaws.ecs.capability.docker-remote-api.";
    let execution_role = input.execution_role_arn.is_some();
    for c in &input.container_definitions {
        if let Some(log) = &c.log_configuration {
            add(&format!(
                "com.amazonaws.ecs.capability.logging-driver.{}",
                log.log_driver.as_str()
            ));
            if log.log_driver == s::LogDriver::Awslogs && execution_role {
                add("ecs.capability.execution-role-awslogs");
            }
            if log.options.as_ref().is_some_and(|o| !o.is_empty()) {
                add(&format!("{API}1.19"));
            }
            for secret in log.secret_options.iter().flatten() {
                add(if secret.value_from.contains(":secretsmanager:") {
                    "ecs.capability.secrets.asm.bootstrap.log-driver"
                } else {
                    "ecs.capability.secrets.ssm.bootstrap.log-driver"
                });
            }
        }
        if c.memory_reservation.is_some() {
            add(&format!("{API}1.21"));
        }
        if let Some(image) = c.image.as_deref()
            && is_ecr_image(image)
        {
            add("com.amazonaws.ecs.capability.ecr-auth");
            if execution_role {
                add("ecs.capability.execution-role-ecr-pull");
            }
        }
        if c.repository_credentials.is_some() {
            add("com.amazonaws.ecs.capability.private-registry-authentication.secretsmanager");
        }
        for secret in c.secrets.iter().flatten() {
            add(if secret.value_from.contains(":secretsmanager:") {
                "ecs.capability.secrets.asm.environment-variables"
            } else {
                "ecs.capability.secrets.ssm.environment-variables"
            });
        }
        if c.environment_files.as_ref().is_some_and(|f| !f.is_empty()) {
            add("ecs.capability.env-files.s3");
        }
        if c.health_check.is_some() {
            add("ecs.capability.container-health-check");
        }
        if c.depends_on.as_ref().is_some_and(|d| !d.is_empty())
            || c.start_timeout.is_some()
            || c.stop_timeout.is_some()
        {
            add("ecs.capability.container-ordering");
        }
        if c.privileged == Some(true) {
            add("com.amazonaws.ecs.capability.privileged-container");
        }
        if let Some(firelens) = &c.firelens_configuration {
            add(&format!(
                "ecs.capability.firelens.{}",
                firelens.r#type.as_str()
            ));
        }
        if c.linux_parameters
            .as_ref()
            .and_then(|l| l.init_process_enabled)
            == Some(true)
        {
            add(&format!("{API}1.25"));
        }
        if c.log_configuration.is_some()
            || c.docker_labels.as_ref().is_some_and(|l| !l.is_empty())
            || c.ulimits.as_ref().is_some_and(|u| !u.is_empty())
        {
            add(&format!("{API}1.18"));
        }
    }
    if input.task_role_arn.is_some() {
        add("com.amazonaws.ecs.capability.task-iam-role");
        if input.network_mode == Some(s::NetworkMode::Host) {
            add("com.amazonaws.ecs.capability.task-iam-role-network-host");
        }
    }
    if input.pid_mode.is_some() || input.ipc_mode.is_some() {
        add("ecs.capability.pid-ipc-namespace-sharing");
    }
    for v in input.volumes.iter().flatten() {
        if let Some(efs) = &v.efs_volume_configuration {
            add("ecs.capability.efs");
            if efs.authorization_config.is_some() {
                add("ecs.capability.efsAuth");
            }
        }
        if v.fsx_windows_file_server_volume_configuration.is_some() {
            add("ecs.capability.fsxWindowsFileServer");
        }
        if let Some(docker) = &v.docker_volume_configuration
            && let Some(driver) = docker.driver.as_deref()
            && driver != "local"
        {
            add(&format!("ecs.capability.docker-plugin.{driver}"));
        }
    }
    if input.network_mode.is_some() {
        add(&format!("{API}1.18"));
    }
    if input.network_mode == Some(s::NetworkMode::Awsvpc) {
        add("ecs.capability.task-eni");
    }
    names
        .into_iter()
        .map(|name| s::Attribute {
            name,
            ..Default::default()
        })
        .collect()
}

/// A container as ECS returns it: the defaults ECS fills in added.
fn normalize_container(
    mut c: s::ContainerDefinition,
    mode: Option<s::NetworkMode>,
) -> s::ContainerDefinition {
    c.cpu.get_or_insert(0);
    c.essential.get_or_insert(true);
    let mappings = c.port_mappings.get_or_insert_with(Vec::new);
    for p in mappings.iter_mut() {
        // ECS fills the host port in for awsvpc (= containerPort) and bridge (0 = dynamic);
        // under host mode it keeps what was sent.
        if mode != Some(s::NetworkMode::Host) {
            p.host_port = effective_host_port(p, mode);
        }
        p.protocol.get_or_insert(s::TransportProtocol::Tcp);
    }
    c.environment.get_or_insert_with(Vec::new);
    c.mount_points.get_or_insert_with(Vec::new);
    c.volumes_from.get_or_insert_with(Vec::new);
    c.system_controls.get_or_insert_with(Vec::new);
    if let Some(h) = c.health_check.as_mut() {
        h.interval.get_or_insert(30);
        h.timeout.get_or_insert(5);
        h.retries.get_or_insert(3);
    }
    c
}

/// A volume as ECS returns it: a bare named volume is a host volume.
fn normalize_volume(mut v: s::Volume) -> s::Volume {
    let other = v.docker_volume_configuration.is_some()
        || v.efs_volume_configuration.is_some()
        || v.fsx_windows_file_server_volume_configuration.is_some()
        || v.s3files_volume_configuration.is_some()
        || v.configured_at_launch == Some(true);
    if v.host.is_none() && !other {
        v.host = Some(s::HostVolumeProperties::default());
    }
    if let Some(d) = v.docker_volume_configuration.as_mut() {
        d.scope.get_or_insert(s::Scope::Task);
    }
    v
}

/// The definition as ECS returns it, from a request [`validate`] accepted.
fn build(input: &s::RegisterTaskDefinitionRequest) -> s::TaskDefinition {
    let cpu = input.cpu.as_deref().and_then(parse_task_cpu);
    let memory = input.memory.as_deref().and_then(parse_task_memory);
    let mode = input.network_mode;
    s::TaskDefinition {
        family: Some(input.family.clone()),
        container_definitions: Some(
            input
                .container_definitions
                .iter()
                .cloned()
                .map(|c| normalize_container(c, mode))
                .collect(),
        ),
        task_role_arn: input.task_role_arn.clone(),
        execution_role_arn: input.execution_role_arn.clone(),
        network_mode: input.network_mode,
        volumes: Some(
            input
                .volumes
                .iter()
                .flatten()
                .cloned()
                .map(normalize_volume)
                .collect(),
        ),
        requires_attributes: Some(required_attributes(input)),
        placement_constraints: Some(input.placement_constraints.clone().unwrap_or_default()),
        compatibilities: Some(compatibilities(input, cpu, memory)),
        requires_compatibilities: input.requires_compatibilities.clone(),
        cpu: cpu.map(|c| c.to_string()),
        memory: memory.map(|m| m.to_string()),
        inference_accelerators: input.inference_accelerators.clone(),
        pid_mode: input.pid_mode,
        ipc_mode: input.ipc_mode,
        proxy_configuration: input.proxy_configuration.clone(),
        runtime_platform: input.runtime_platform.clone(),
        ephemeral_storage: input.ephemeral_storage.clone(),
        enable_fault_injection: input.enable_fault_injection,
        trusted_execution_configuration: input.trusted_execution_configuration.clone(),
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------------------
// Handlers
// ---------------------------------------------------------------------------------------

pub fn register(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::RegisterTaskDefinitionRequest,
) -> Result<s::RegisterTaskDefinitionResponse, AwsError> {
    let prepared = prepare(&input)?;
    let tags = input.tags.clone().unwrap_or_default();
    common::validate_tags(&tags)?;
    let family = input.family.clone();
    ecs.store
        .write(|tx| -> Result<s::RegisterTaskDefinitionResponse, Failure> {
            let next = tx.next_sequence(scope(ctx), &sequence_name(&family))?;
            let revision = i32::try_from(next)
                .map_err(|_| client("The maximum number of revisions for this task definition family has been reached."))?;
            let mut td = prepared.clone();
            td.task_definition_arn = Some(task_definition_arn(ctx, &family, revision));
            td.revision = Some(revision);
            td.status = Some(s::TaskDefinitionStatus::Active);
            td.registered_at = Some(ctx.now);
            td.registered_by = Some(ctx.principal_arn.clone());
            let record = StoredTaskDefinition { task_definition: td, tags: tags.clone() };
            tx.insert(scope(ctx), kind::TASK_DEFINITION, &store_id(&family, revision), &record)?;
            Ok(s::RegisterTaskDefinitionResponse { task_definition: Some(record.task_definition), tags: Some(tags.clone()) })
        })
        .map_err(aws)
}

pub fn describe(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::DescribeTaskDefinitionRequest,
) -> Result<s::DescribeTaskDefinitionResponse, AwsError> {
    let with_tags = input
        .include
        .iter()
        .flatten()
        .any(|f| *f == s::TaskDefinitionField::Tags);
    let Some(ident) = parse_ident(ctx, &input.task_definition)? else {
        return Err(client(UNABLE_TO_DESCRIBE));
    };
    ecs.store
        .read(|tx| -> Result<s::DescribeTaskDefinitionResponse, Failure> {
            let Some((record, _)) = resolve(tx, ctx, &ident)? else {
                return Err(client(UNABLE_TO_DESCRIBE).into());
            };
            Ok(s::DescribeTaskDefinitionResponse {
                task_definition: Some(record.task_definition),
                tags: with_tags.then_some(record.tags),
            })
        })
        .map_err(aws)
}

pub fn list(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::ListTaskDefinitionsRequest,
) -> Result<s::ListTaskDefinitionsResponse, AwsError> {
    let page = Page::parse(input.next_token.as_deref(), input.max_results, 100)?;
    let status = input.status.unwrap_or(s::TaskDefinitionStatus::Active);
    let descending = input.sort == Some(s::SortOrder::Desc);
    // familyPrefix is, despite its name, the full family name (ECS's API reference).
    let family = input.family_prefix.clone().unwrap_or_default();
    if family.contains(SEP) {
        return Ok(s::ListTaskDefinitionsResponse {
            task_definition_arns: Some(Vec::new()),
            next_token: None,
        });
    }
    let prefix = if family.is_empty() {
        String::new()
    } else {
        format!("{family}{SEP}")
    };
    ecs.store
        .read(|tx| -> Result<s::ListTaskDefinitionsResponse, Failure> {
            let mut found: Vec<(String, String)> = Vec::new();
            let keep = |r: &berth_store::Record| -> Result<Option<(String, String)>, Failure> {
                let td: StoredTaskDefinition = r.decode(kind::TASK_DEFINITION)?;
                Ok((td.status() == status).then(|| {
                    (
                        r.id.clone(),
                        td.task_definition
                            .task_definition_arn
                            .clone()
                            .unwrap_or_default(),
                    )
                }))
            };
            if descending {
                // The store scans upwards only: read the prefix and walk it backwards.
                let all = tx.list(scope(ctx), kind::TASK_DEFINITION, &prefix, None, usize::MAX)?;
                for r in all.iter().rev() {
                    if page.after.as_deref().is_some_and(|a| r.id.as_str() >= a) {
                        continue;
                    }
                    found.extend(keep(r)?);
                    if found.len() > page.limit {
                        break;
                    }
                }
            } else {
                let mut after = page.after.clone();
                loop {
                    let chunk = tx.list(
                        scope(ctx),
                        kind::TASK_DEFINITION,
                        &prefix,
                        after.as_deref(),
                        256,
                    )?;
                    let done = chunk.len() < 256;
                    for r in &chunk {
                        found.extend(keep(r)?);
                    }
                    after = chunk.last().map(|r| r.id.clone());
                    if done || found.len() > page.limit {
                        break;
                    }
                }
            }
            let next_token = page.next_token(&mut found, |(id, _)| id.clone());
            Ok(s::ListTaskDefinitionsResponse {
                task_definition_arns: Some(found.into_iter().map(|(_, arn)| arn).collect()),
                next_token,
            })
        })
        .map_err(aws)
}

pub fn list_families(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::ListTaskDefinitionFamiliesRequest,
) -> Result<s::ListTaskDefinitionFamiliesResponse, AwsError> {
    let page = Page::parse(input.next_token.as_deref(), input.max_results, 100)?;
    let status = input.status.unwrap_or(s::TaskDefinitionFamilyStatus::All);
    let prefix = input.family_prefix.clone().unwrap_or_default();
    if prefix.contains(SEP) {
        return Ok(s::ListTaskDefinitionFamiliesResponse {
            families: Some(Vec::new()),
            next_token: None,
        });
    }
    let wanted = |has_active: bool| match status {
        s::TaskDefinitionFamilyStatus::All => true,
        s::TaskDefinitionFamilyStatus::Active => has_active,
        s::TaskDefinitionFamilyStatus::Inactive => !has_active,
    };
    ecs.store
        .read(
            |tx| -> Result<s::ListTaskDefinitionFamiliesResponse, Failure> {
                let mut families: Vec<String> = Vec::new();
                // After family F comes the first id above every `F#<digits>`.
                let mut after = page.after.as_ref().map(|f| format!("{f}{SEP}~"));
                let mut current: Option<(String, bool)> = None;
                loop {
                    let chunk = tx.list(
                        scope(ctx),
                        kind::TASK_DEFINITION,
                        &prefix,
                        after.as_deref(),
                        256,
                    )?;
                    let done = chunk.len() < 256;
                    for r in &chunk {
                        let family = family_of_id(&r.id);
                        let td: StoredTaskDefinition = r.decode(kind::TASK_DEFINITION)?;
                        let active = td.status() == s::TaskDefinitionStatus::Active;
                        match current.as_mut() {
                            Some((f, has_active)) if f == family => *has_active |= active,
                            _ => {
                                if let Some((f, has_active)) = current.take()
                                    && wanted(has_active)
                                {
                                    families.push(f);
                                }
                                current = Some((family.to_string(), active));
                            }
                        }
                    }
                    after = chunk.last().map(|r| r.id.clone());
                    if done || families.len() > page.limit {
                        break;
                    }
                }
                if families.len() <= page.limit
                    && let Some((f, has_active)) = current
                    && wanted(has_active)
                {
                    families.push(f);
                }
                let next_token = page.next_token(&mut families, Clone::clone);
                Ok(s::ListTaskDefinitionFamiliesResponse {
                    families: Some(families),
                    next_token,
                })
            },
        )
        .map_err(aws)
}

pub fn deregister(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::DeregisterTaskDefinitionRequest,
) -> Result<s::DeregisterTaskDefinitionResponse, AwsError> {
    let ident = match parse_ident(ctx, &input.task_definition)? {
        Some(ident @ Ident::Revision(..)) => ident,
        Some(Ident::Family(_)) => {
            return Err(client(
                "A revision must be specified: use family:revision or the full ARN of the task definition to deregister.",
            ));
        }
        None => return Err(client("The specified task definition does not exist.")),
    };
    ecs.store
        .write(
            |tx| -> Result<s::DeregisterTaskDefinitionResponse, Failure> {
                let Some((mut record, version)) = resolve(tx, ctx, &ident)? else {
                    return Err(client("The specified task definition does not exist.").into());
                };
                if record.status() == s::TaskDefinitionStatus::Active {
                    record.task_definition.status = Some(s::TaskDefinitionStatus::Inactive);
                    record.task_definition.deregistered_at = Some(ctx.now);
                    store_tags(tx, ctx, &record, version)?;
                }
                Ok(s::DeregisterTaskDefinitionResponse {
                    task_definition: Some(record.task_definition),
                })
            },
        )
        .map_err(aws)
}

pub fn delete(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::DeleteTaskDefinitionsRequest,
) -> Result<s::DeleteTaskDefinitionsResponse, AwsError> {
    if input.task_definitions.is_empty() || input.task_definitions.len() > 10 {
        return Err(invalid(
            "taskDefinitions must contain between 1 and 10 task definitions.",
        ));
    }
    ecs.store
        .write(|tx| -> Result<s::DeleteTaskDefinitionsResponse, Failure> {
            let mut deleted: Vec<s::TaskDefinition> = Vec::new();
            let mut failures = Vec::new();
            for raw in &input.task_definitions {
                let failure_arn = |family: &str, revision: i32| {
                    if raw.starts_with("arn:") {
                        raw.clone()
                    } else {
                        task_definition_arn(ctx, family, revision)
                    }
                };
                let (family, revision) = match parse_ident(ctx, raw) {
                    Ok(Some(Ident::Revision(f, r))) => (f, r),
                    Ok(Some(Ident::Family(_))) | Err(_) => {
                        failures.push(s::Failure {
                            arn: Some(raw.clone()),
                            reason: Some(INVALID_IDENTIFIER.into()),
                            detail: None,
                        });
                        continue;
                    }
                    Ok(None) => {
                        failures.push(s::Failure {
                            arn: Some(raw.clone()),
                            reason: Some(DOES_NOT_EXIST.into()),
                            detail: None,
                        });
                        continue;
                    }
                };
                let id = store_id(&family, revision);
                let Some((mut record, version)) =
                    tx.get_json::<StoredTaskDefinition>(scope(ctx), kind::TASK_DEFINITION, &id)?
                else {
                    failures.push(s::Failure {
                        arn: Some(failure_arn(&family, revision)),
                        reason: Some(DOES_NOT_EXIST.into()),
                        detail: None,
                    });
                    continue;
                };
                match record.status() {
                    s::TaskDefinitionStatus::Active => {
                        failures.push(s::Failure {
                            arn: Some(failure_arn(&family, revision)),
                            reason: Some(STILL_ACTIVE.into()),
                            detail: None,
                        });
                        continue;
                    }
                    s::TaskDefinitionStatus::Inactive => {
                        record.task_definition.status =
                            Some(s::TaskDefinitionStatus::DeleteInProgress);
                        record.task_definition.delete_requested_at = Some(ctx.now);
                        tx.put(
                            scope(ctx),
                            kind::TASK_DEFINITION,
                            &id,
                            Some(version),
                            &record,
                        )?;
                    }
                    s::TaskDefinitionStatus::DeleteInProgress => {}
                }
                if !deleted
                    .iter()
                    .any(|d| d.task_definition_arn == record.task_definition.task_definition_arn)
                {
                    deleted.push(record.task_definition);
                }
            }
            Ok(s::DeleteTaskDefinitionsResponse {
                task_definitions: Some(deleted),
                failures: Some(failures),
            })
        })
        .map_err(aws)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn ctx() -> RequestContext {
        crate::test_support::context(1_700_000_000_000)
    }

    fn ecs() -> Ecs {
        Ecs::new(Arc::new(berth_store::Store::open_in_memory().unwrap()))
    }

    fn container(name: &str) -> s::ContainerDefinition {
        s::ContainerDefinition {
            name: Some(name.into()),
            image: Some("nginx:latest".into()),
            memory: Some(128),
            ..Default::default()
        }
    }

    fn request(
        family: &str,
        containers: Vec<s::ContainerDefinition>,
    ) -> s::RegisterTaskDefinitionRequest {
        s::RegisterTaskDefinitionRequest {
            family: family.into(),
            container_definitions: containers,
            ..Default::default()
        }
    }

    fn fargate(cpu: &str, memory: &str) -> s::RegisterTaskDefinitionRequest {
        let mut c = container("app");
        c.memory = None;
        s::RegisterTaskDefinitionRequest {
            requires_compatibilities: Some(vec![s::Compatibility::Fargate]),
            network_mode: Some(s::NetworkMode::Awsvpc),
            cpu: Some(cpu.into()),
            memory: Some(memory.into()),
            ..request("web", vec![c])
        }
    }

    fn err(input: &s::RegisterTaskDefinitionRequest) -> AwsError {
        prepare(input).unwrap_err()
    }

    fn attrs(td: &s::TaskDefinition) -> Vec<String> {
        td.requires_attributes
            .iter()
            .flatten()
            .map(|a| a.name.clone())
            .collect()
    }

    #[test]
    fn fargate_size_table() {
        for m in [512, 1024, 2048] {
            assert!(is_fargate_size(256, m));
        }
        assert!(!is_fargate_size(256, 3072));
        assert!(!is_fargate_size(256, 4096));
        for m in (1024..=4096).step_by(1024) {
            assert!(is_fargate_size(512, m));
        }
        assert!(!is_fargate_size(512, 512));
        assert!(!is_fargate_size(512, 5120));
        assert!(
            is_fargate_size(1024, 2048)
                && is_fargate_size(1024, 8192)
                && !is_fargate_size(1024, 1024)
        );
        assert!(
            is_fargate_size(2048, 4096)
                && is_fargate_size(2048, 16384)
                && !is_fargate_size(2048, 17408)
        );
        assert!(
            is_fargate_size(4096, 8192)
                && is_fargate_size(4096, 30720)
                && !is_fargate_size(4096, 31744)
        );
        assert!(is_fargate_size(8192, 16384) && is_fargate_size(8192, 61440));
        assert!(
            !is_fargate_size(8192, 17408),
            "8 vCPU memory goes in 4 GB steps"
        );
        assert!(is_fargate_size(16384, 32768) && is_fargate_size(16384, 122880));
        assert!(
            !is_fargate_size(16384, 36864),
            "16 vCPU memory goes in 8 GB steps"
        );
        assert!(!is_fargate_size(128, 512) && !is_fargate_size(3072, 8192));
    }

    #[test]
    fn task_size_strings() {
        assert_eq!(parse_task_cpu("1024"), Some(1024));
        assert_eq!(parse_task_cpu("1 vCPU"), Some(1024));
        assert_eq!(parse_task_cpu("1 vcpu"), Some(1024));
        assert_eq!(parse_task_cpu(".25 vCPU"), Some(256));
        assert_eq!(parse_task_cpu("0.5vcpu"), Some(512));
        assert_eq!(parse_task_cpu("abc"), None);
        assert_eq!(parse_task_cpu(""), None);
        assert_eq!(parse_task_memory("2 GB"), Some(2048));
        assert_eq!(parse_task_memory("0.5GB"), Some(512));
        assert_eq!(parse_task_memory("512"), Some(512));
        assert_eq!(parse_task_memory("2 TB"), None);

        let td = prepare(&fargate("1 vCPU", "2 GB")).unwrap();
        assert_eq!(td.cpu.as_deref(), Some("1024"));
        assert_eq!(td.memory.as_deref(), Some("2048"));
        assert_eq!(
            err(&fargate("", "512")).message,
            "Invalid 'cpu' setting for task."
        );
        assert_eq!(
            err(&fargate("256", "lots")).code,
            "InvalidParameterException"
        );
    }

    #[test]
    fn fargate_rules() {
        assert!(prepare(&fargate("256", "512")).is_ok());
        let e = err(&fargate("256", "4096"));
        assert_eq!(e.code, "ClientException");
        assert_eq!(
            e.message,
            "No Fargate configuration exists for given values: 256 CPU, 4096 memory. See the Amazon ECS documentation for the valid values."
        );
        let mut bridge = fargate("256", "512");
        bridge.network_mode = None;
        assert_eq!(
            err(&bridge).message,
            "Fargate only supports network mode \u{2018}awsvpc\u{2019}."
        );
        let mut no_cpu = fargate("256", "512");
        no_cpu.cpu = None;
        assert!(err(&no_cpu).message.contains("'cpu'"));
        let mut no_memory = fargate("256", "512");
        no_memory.memory = None;
        assert!(err(&no_memory).message.contains("memory"));
        let mut ipc = fargate("256", "512");
        ipc.ipc_mode = Some(s::IpcMode::Task);
        assert_eq!(
            err(&ipc).message,
            "Tasks using the Fargate launch type do not support ipcMode."
        );
        let mut logs = fargate("256", "512");
        logs.container_definitions[0].log_configuration = Some(s::LogConfiguration {
            log_driver: s::LogDriver::Awslogs,
            options: None,
            secret_options: None,
        });
        logs.execution_role_arn = Some("arn:aws:iam::123456789012:role/exec".into());
        assert_eq!(
            err(&logs).message,
            "Log driver awslogs option 'awslogs-group' should not be null or empty."
        );
        let options = |pairs: &[(&str, &str)]| {
            Some(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        };
        if let Some(l) = logs.container_definitions[0].log_configuration.as_mut() {
            l.options = options(&[("awslogs-group", "g"), ("awslogs-create-group", "false")]);
        }
        assert_eq!(
            err(&logs).message,
            "Log driver awslogs option 'awslogs-create-group' should only be set to 'true', else omit option."
        );
        if let Some(l) = logs.container_definitions[0].log_configuration.as_mut() {
            l.options = options(&[("awslogs-group", "g"), ("awslogs-create-group", "true")]);
        }
        logs.execution_role_arn = None;
        assert_eq!(
            err(&logs).message,
            "Fargate requires task definition to have execution role ARN to support log driver awslogs."
        );
        logs.execution_role_arn = Some("arn:aws:iam::123456789012:role/exec".into());
        assert!(prepare(&logs).is_ok());
    }

    #[test]
    fn container_rules() {
        assert_eq!(
            err(&request("web", vec![])).message,
            "Container list cannot be empty."
        );
        let eleven: Vec<_> = (0..11).map(|i| container(&format!("c{i}"))).collect();
        assert_eq!(err(&request("web", eleven)).message, "Too many containers.");
        assert_eq!(
            err(&request("bad family", vec![container("a")])).code,
            "ClientException"
        );
        assert!(prepare(&request(&"f".repeat(255), vec![container("a")])).is_ok());
        assert!(prepare(&request(&"f".repeat(256), vec![container("a")])).is_err());

        let mut unnamed = container("a");
        unnamed.name = None;
        assert_eq!(
            err(&request("web", vec![unnamed])).message,
            "Container.name should not be null or empty."
        );
        assert!(
            err(&request("web", vec![container("a.b")]))
                .message
                .contains("Invalid container name")
        );
        assert!(
            err(&request("web", vec![container("a"), container("a")]))
                .message
                .contains("Duplicate container name")
        );
        let mut no_image = container("a");
        no_image.image = Some(String::new());
        assert_eq!(
            err(&request("web", vec![no_image])).message,
            "Container.image should not be null or empty."
        );

        let mut not_essential = container("a");
        not_essential.essential = Some(false);
        assert_eq!(
            err(&request("web", vec![not_essential.clone()])).message,
            "Task definition doesn't have any essential container."
        );
        assert!(prepare(&request("web", vec![not_essential, container("b")])).is_ok());
    }

    #[test]
    fn memory_rules() {
        let mut no_memory = container("app");
        no_memory.memory = None;
        assert_eq!(
            err(&request("web", vec![no_memory.clone()])).message,
            "Invalid setting for container 'app'. At least one of 'memory' or 'memoryReservation' must be specified."
        );
        let mut with_task_memory = request("web", vec![no_memory.clone()]);
        with_task_memory.memory = Some("512".into());
        assert!(prepare(&with_task_memory).is_ok());
        let mut reservation_only = no_memory.clone();
        reservation_only.memory_reservation = Some(64);
        assert!(prepare(&request("web", vec![reservation_only])).is_ok());

        let mut too_small = container("app");
        too_small.memory = Some(4);
        assert!(
            err(&request("web", vec![too_small]))
                .message
                .contains("'memory'")
        );
        let mut over = container("app");
        over.memory_reservation = Some(256);
        assert!(
            err(&request("web", vec![over]))
                .message
                .contains("memoryReservation")
        );

        let mut sum = request("web", vec![container("a"), container("b")]);
        sum.memory = Some("200".into());
        assert_eq!(
            err(&sum).message,
            "The sum of all container 'memory' values cannot be greater than the value of the task 'memory'."
        );
        let mut big = request("web", vec![container("a")]);
        big.memory = Some("100".into());
        assert!(
            err(&big)
                .message
                .contains("cannot be greater than the value of the task 'memory'")
        );

        let mut cpu = request("web", vec![container("a"), container("b")]);
        cpu.container_definitions[0].cpu = Some(512);
        cpu.container_definitions[1].cpu = Some(512);
        cpu.cpu = Some("512".into());
        assert_eq!(
            err(&cpu).message,
            "The sum of all container 'cpu' values cannot be greater than the value of the task 'cpu'."
        );
        cpu.cpu = Some("1024".into());
        assert!(prepare(&cpu).is_ok());
    }

    fn port(container_port: i32, host_port: Option<i32>) -> s::PortMapping {
        s::PortMapping {
            container_port: Some(container_port),
            host_port,
            ..Default::default()
        }
    }

    #[test]
    fn port_rules() {
        let mut c = container("app");
        c.port_mappings = Some(vec![port(80, Some(8080))]);
        let mut awsvpc = request("web", vec![c.clone()]);
        awsvpc.network_mode = Some(s::NetworkMode::Awsvpc);
        assert_eq!(
            err(&awsvpc).message,
            "When networkMode=awsvpc, the host ports and container ports in port mappings must match."
        );
        // Bridge accepts any host port.
        assert!(prepare(&request("web", vec![c])).is_ok());

        let mut c = container("app");
        c.port_mappings = Some(vec![port(80, None)]);
        awsvpc.container_definitions = vec![c.clone()];
        let td = prepare(&awsvpc).unwrap();
        let mapping = &td.container_definitions.unwrap()[0]
            .port_mappings
            .clone()
            .unwrap()[0];
        assert_eq!(mapping.host_port, Some(80));
        assert_eq!(mapping.protocol, Some(s::TransportProtocol::Tcp));
        // Bridge: a dynamic host port is returned as 0; host mode keeps what was sent.
        let bridge = prepare(&request("web", vec![c.clone()])).unwrap();
        let ports = bridge.container_definitions.unwrap()[0]
            .port_mappings
            .clone();
        assert_eq!(ports.unwrap()[0].host_port, Some(0));
        let mut host = request("web", vec![c.clone()]);
        host.network_mode = Some(s::NetworkMode::Host);
        let ports = prepare(&host).unwrap().container_definitions.unwrap()[0]
            .port_mappings
            .clone();
        assert_eq!(ports.unwrap()[0].host_port, None);

        let mut links = c.clone();
        links.links = Some(vec!["db".into()]);
        awsvpc.container_definitions = vec![links];
        assert!(err(&awsvpc).message.contains("networkMode=awsvpc"));

        let mut twice = container("app");
        twice.port_mappings = Some(vec![port(80, None), port(80, None)]);
        assert!(
            err(&request("web", vec![twice]))
                .message
                .contains("mapped multiple times")
        );
        let mut udp = container("app");
        udp.port_mappings = Some(vec![
            port(53, None),
            s::PortMapping {
                protocol: Some(s::TransportProtocol::Udp),
                ..port(53, None)
            },
        ]);
        assert!(prepare(&request("web", vec![udp])).is_ok());

        let mut a = container("a");
        a.port_mappings = Some(vec![port(80, Some(3000))]);
        let mut b = container("b");
        b.port_mappings = Some(vec![port(81, Some(3000))]);
        assert_eq!(
            err(&request("web", vec![a, b])).message,
            "TCP host port '3000' is mapped multiple times in task."
        );

        let mut none = container("app");
        none.port_mappings = Some(vec![s::PortMapping::default()]);
        assert_eq!(
            err(&request("web", vec![none])).message,
            "Invalid 'containerPort' setting for container 'app'."
        );
    }

    #[test]
    fn volume_and_dependency_rules() {
        let vol = |n: &str| s::Volume {
            name: Some(n.into()),
            ..Default::default()
        };
        let mut c = container("app");
        c.mount_points = Some(vec![s::MountPoint {
            source_volume: Some("data".into()),
            container_path: Some("/data".into()),
            read_only: None,
        }]);
        let mut r = request("web", vec![c]);
        assert_eq!(err(&r).message, "Unknown volume 'data'.");
        r.volumes = Some(vec![vol("data")]);
        let td = prepare(&r).unwrap();
        assert_eq!(
            td.volumes.unwrap()[0].host,
            Some(s::HostVolumeProperties::default())
        );
        r.volumes = Some(vec![vol("data"), vol("data")]);
        assert!(err(&r).message.contains("Duplicate volume name"));

        let dep = |name: &str, condition| s::ContainerDependency {
            container_name: name.into(),
            condition,
        };
        let mut app = container("app");
        app.depends_on = Some(vec![dep("ghost", s::ContainerCondition::Start)]);
        assert!(
            err(&request("web", vec![app.clone()]))
                .message
                .contains("ghost")
        );
        app.depends_on = Some(vec![dep("init", s::ContainerCondition::Success)]);
        assert!(
            err(&request("web", vec![app.clone(), container("init")]))
                .message
                .contains("cannot be an essential")
        );
        let mut init = container("init");
        init.essential = Some(false);
        assert!(prepare(&request("web", vec![app.clone(), init.clone()])).is_ok());
        app.depends_on = Some(vec![dep("init", s::ContainerCondition::Healthy)]);
        assert!(
            err(&request("web", vec![app, init]))
                .message
                .contains("health check")
        );
    }

    #[test]
    fn defaults_compatibilities_and_attributes() {
        let td = prepare(&request("web", vec![container("app")])).unwrap();
        let c = &td.container_definitions.clone().unwrap()[0];
        assert_eq!(c.cpu, Some(0));
        assert_eq!(c.essential, Some(true));
        assert_eq!(c.port_mappings, Some(vec![]));
        assert_eq!(c.environment, Some(vec![]));
        assert_eq!(c.mount_points, Some(vec![]));
        assert_eq!(c.volumes_from, Some(vec![]));
        assert_eq!(td.volumes, Some(vec![]));
        assert_eq!(td.placement_constraints, Some(vec![]));
        assert_eq!(
            td.compatibilities,
            Some(vec![s::Compatibility::External, s::Compatibility::Ec2])
        );
        assert!(attrs(&td).is_empty());

        let td = prepare(&fargate("256", "512")).unwrap();
        assert_eq!(
            td.compatibilities,
            Some(vec![s::Compatibility::Ec2, s::Compatibility::Fargate])
        );
        assert_eq!(
            attrs(&td),
            vec![
                "com.amazonaws.ecs.capability.docker-remote-api.1.18".to_string(),
                "ecs.capability.task-eni".to_string()
            ]
        );

        // awsvpc without a Fargate size: EC2 only.
        let mut ec2 = fargate("256", "512");
        ec2.requires_compatibilities = None;
        ec2.memory = Some("4096".into());
        assert_eq!(
            prepare(&ec2).unwrap().compatibilities,
            Some(vec![s::Compatibility::Ec2])
        );

        let mut rich = fargate("512", "1024");
        rich.task_role_arn = Some("arn:aws:iam::123456789012:role/task".into());
        rich.execution_role_arn = Some("arn:aws:iam::123456789012:role/exec".into());
        let c = &mut rich.container_definitions[0];
        c.image = Some("123456789012.dkr.ecr.us-east-1.amazonaws.com/app:1".into());
        c.log_configuration = Some(s::LogConfiguration {
            log_driver: s::LogDriver::Awslogs,
            options: Some([("awslogs-group".to_string(), "g".to_string())].into()),
            secret_options: None,
        });
        c.secrets = Some(vec![s::Secret {
            name: "DB".into(),
            value_from: "arn:aws:secretsmanager:us-east-1:123456789012:secret:db".into(),
        }]);
        c.health_check = Some(s::HealthCheck {
            command: vec!["CMD".into(), "true".into()],
            ..Default::default()
        });
        let td = prepare(&rich).unwrap();
        let names = attrs(&td);
        for expected in [
            "com.amazonaws.ecs.capability.logging-driver.awslogs",
            "ecs.capability.execution-role-awslogs",
            "com.amazonaws.ecs.capability.docker-remote-api.1.19",
            "com.amazonaws.ecs.capability.ecr-auth",
            "ecs.capability.execution-role-ecr-pull",
            "ecs.capability.secrets.asm.environment-variables",
            "ecs.capability.container-health-check",
            "com.amazonaws.ecs.capability.task-iam-role",
            "com.amazonaws.ecs.capability.docker-remote-api.1.18",
            "ecs.capability.task-eni",
        ] {
            assert!(
                names.iter().any(|n| n == expected),
                "missing {expected} in {names:?}"
            );
        }
        let h = td.container_definitions.unwrap()[0]
            .health_check
            .clone()
            .unwrap();
        assert_eq!(
            (h.interval, h.timeout, h.retries),
            (Some(30), Some(5), Some(3))
        );
    }

    #[test]
    fn identifiers() {
        let c = ctx();
        assert_eq!(
            parse_ident(&c, "web").unwrap(),
            Some(Ident::Family("web".into()))
        );
        assert_eq!(
            parse_ident(&c, "web:3").unwrap(),
            Some(Ident::Revision("web".into(), 3))
        );
        assert_eq!(
            parse_ident(
                &c,
                "arn:aws:ecs:us-east-1:123456789012:task-definition/web:7"
            )
            .unwrap(),
            Some(Ident::Revision("web".into(), 7))
        );
        assert_eq!(
            parse_ident(
                &c,
                "arn:aws:ecs:eu-west-1:123456789012:task-definition/web:7"
            )
            .unwrap(),
            None
        );
        assert_eq!(
            parse_ident(&c, "web:x").unwrap_err().code,
            "ClientException"
        );
        assert_eq!(
            parse_ident(&c, "web:0").unwrap_err().code,
            "ClientException"
        );
        assert_eq!(parse_ident(&c, "we b").unwrap(), None);
    }

    #[test]
    fn store_ids_sort_as_ecs_lists() {
        let mut ids = vec![
            store_id("ab-c", 1),
            store_id("ab", 10),
            store_id("ab", 2),
            store_id("ab1", 1),
            store_id("aB", 1),
        ];
        ids.sort();
        assert_eq!(
            ids,
            vec![
                store_id("aB", 1),
                store_id("ab", 2),
                store_id("ab", 10),
                store_id("ab-c", 1),
                store_id("ab1", 1)
            ]
        );
    }

    fn register_ok(e: &Ecs, family: &str) -> s::TaskDefinition {
        let mut r = request(family, vec![container("app")]);
        r.tags = Some(vec![s::Tag {
            key: Some("team".into()),
            value: Some("core".into()),
        }]);
        let out = register(e, &ctx(), r).unwrap();
        assert_eq!(out.tags.as_ref().unwrap().len(), 1);
        out.task_definition.unwrap()
    }

    fn list_all(
        e: &Ecs,
        status: Option<s::TaskDefinitionStatus>,
        sort: Option<s::SortOrder>,
        page: i32,
    ) -> Vec<String> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let r = list(
                e,
                &ctx(),
                s::ListTaskDefinitionsRequest {
                    status,
                    sort,
                    max_results: Some(page),
                    next_token: token,
                    family_prefix: None,
                },
            )
            .unwrap();
            out.extend(r.task_definition_arns.unwrap());
            token = r.next_token;
            if token.is_none() {
                return out;
            }
        }
    }

    fn families(e: &Ecs, status: Option<s::TaskDefinitionFamilyStatus>, page: i32) -> Vec<String> {
        let mut out = Vec::new();
        let mut token = None;
        loop {
            let r = list_families(
                e,
                &ctx(),
                s::ListTaskDefinitionFamiliesRequest {
                    status,
                    max_results: Some(page),
                    next_token: token,
                    family_prefix: None,
                },
            )
            .unwrap();
            out.extend(r.families.unwrap());
            token = r.next_token;
            if token.is_none() {
                return out;
            }
        }
    }

    #[test]
    fn lifecycle_end_to_end() {
        let e = ecs();
        let c = ctx();
        let first = register_ok(&e, "web");
        assert_eq!(first.revision, Some(1));
        assert_eq!(first.status, Some(s::TaskDefinitionStatus::Active));
        assert_eq!(
            first.task_definition_arn.as_deref(),
            Some("arn:aws:ecs:us-east-1:123456789012:task-definition/web:1")
        );
        assert_eq!(
            first.registered_by.as_deref(),
            Some("arn:aws:iam::123456789012:root")
        );
        assert_eq!(register_ok(&e, "web").revision, Some(2));
        register_ok(&e, "web-api");
        register_ok(&e, "api");

        // Describe: family alone is the latest ACTIVE revision; tags only when asked.
        let d = describe(
            &e,
            &c,
            s::DescribeTaskDefinitionRequest {
                task_definition: "web".into(),
                include: None,
            },
        )
        .unwrap();
        assert_eq!(d.task_definition.unwrap().revision, Some(2));
        assert!(d.tags.is_none());
        let d = describe(
            &e,
            &c,
            s::DescribeTaskDefinitionRequest {
                task_definition: "web:1".into(),
                include: Some(vec![s::TaskDefinitionField::Tags]),
            },
        )
        .unwrap();
        assert_eq!(d.tags.unwrap()[0].key.as_deref(), Some("team"));
        let missing = describe(
            &e,
            &c,
            s::DescribeTaskDefinitionRequest {
                task_definition: "nope".into(),
                include: None,
            },
        );
        assert_eq!(
            missing.unwrap_err().message,
            "Unable to describe task definition."
        );

        // Listing order and pagination.
        let asc = list_all(&e, None, None, 1);
        let short: Vec<_> = asc
            .iter()
            .map(|a| a.rsplit('/').next().unwrap().to_string())
            .collect();
        assert_eq!(short, vec!["api:1", "web:1", "web:2", "web-api:1"]);
        let desc = list_all(&e, None, Some(s::SortOrder::Desc), 3);
        assert_eq!(desc, asc.iter().rev().cloned().collect::<Vec<_>>());
        let prefixed = list(
            &e,
            &c,
            s::ListTaskDefinitionsRequest {
                family_prefix: Some("web".into()),
                ..Default::default()
            },
        )
        .unwrap();
        // familyPrefix is the full family name: web-api:1 is not listed.
        assert_eq!(prefixed.task_definition_arns.unwrap().len(), 2);

        // Deregister: a family alone is refused; a revision becomes INACTIVE.
        let refused = deregister(
            &e,
            &c,
            s::DeregisterTaskDefinitionRequest {
                task_definition: "web".into(),
            },
        );
        assert_eq!(refused.unwrap_err().code, "ClientException");
        let d = deregister(
            &e,
            &c,
            s::DeregisterTaskDefinitionRequest {
                task_definition: "web:2".into(),
            },
        )
        .unwrap();
        let td = d.task_definition.unwrap();
        assert_eq!(td.status, Some(s::TaskDefinitionStatus::Inactive));
        assert!(td.deregistered_at.is_some());
        let d = describe(
            &e,
            &c,
            s::DescribeTaskDefinitionRequest {
                task_definition: "web".into(),
                include: None,
            },
        )
        .unwrap();
        assert_eq!(d.task_definition.unwrap().revision, Some(1));
        deregister(
            &e,
            &c,
            s::DeregisterTaskDefinitionRequest {
                task_definition: "api:1".into(),
            },
        )
        .unwrap();

        assert_eq!(
            list_all(&e, Some(s::TaskDefinitionStatus::Inactive), None, 10).len(),
            2
        );
        assert_eq!(families(&e, None, 1), vec!["api", "web", "web-api"]);
        assert_eq!(
            families(&e, Some(s::TaskDefinitionFamilyStatus::Active), 1),
            vec!["web", "web-api"]
        );
        assert_eq!(
            families(&e, Some(s::TaskDefinitionFamilyStatus::Inactive), 2),
            vec!["api"]
        );

        // Delete: only INACTIVE revisions; failures for the others.
        let out = delete(
            &e,
            &c,
            s::DeleteTaskDefinitionsRequest {
                task_definitions: vec![
                    "web:2".into(),
                    "web:1".into(),
                    "web:9".into(),
                    "web".into(),
                ],
            },
        )
        .unwrap();
        let deleted = out.task_definitions.unwrap();
        assert_eq!(deleted.len(), 1);
        assert_eq!(
            deleted[0].status,
            Some(s::TaskDefinitionStatus::DeleteInProgress)
        );
        assert!(deleted[0].delete_requested_at.is_some());
        let failures = out.failures.unwrap();
        assert_eq!(failures.len(), 3);
        assert_eq!(failures[0].reason.as_deref(), Some(STILL_ACTIVE));
        assert_eq!(
            failures[0].arn.as_deref(),
            Some("arn:aws:ecs:us-east-1:123456789012:task-definition/web:1")
        );
        assert_eq!(failures[1].reason.as_deref(), Some(DOES_NOT_EXIST));
        assert_eq!(
            list_all(
                &e,
                Some(s::TaskDefinitionStatus::DeleteInProgress),
                None,
                10
            )
            .len(),
            1
        );

        // Revisions are never reused.
        assert_eq!(register_ok(&e, "web").revision, Some(3));
    }

    #[test]
    fn a_family_names_its_latest_active_revision_past_inactive_ones() {
        let e = ecs();
        let c = ctx();
        for _ in 0..12 {
            register_ok(&e, "app");
        }
        let latest = |e: &Ecs| {
            describe(
                e,
                &c,
                s::DescribeTaskDefinitionRequest {
                    task_definition: "app".into(),
                    include: None,
                },
            )
            .ok()
            .and_then(|d| d.task_definition?.revision)
        };
        assert_eq!(latest(&e), Some(12));
        deregister(
            &e,
            &c,
            s::DeregisterTaskDefinitionRequest {
                task_definition: "app:12".into(),
            },
        )
        .unwrap();
        assert_eq!(
            latest(&e),
            Some(11),
            "past the first page (the latest alone)"
        );
        // Ten more revisions INACTIVE: past the second page of the backwards lookup too.
        for revision in [6, 4, 5, 3, 2, 11, 9, 10, 7, 8] {
            deregister(
                &e,
                &c,
                s::DeregisterTaskDefinitionRequest {
                    task_definition: format!("app:{revision}"),
                },
            )
            .unwrap();
        }
        assert_eq!(latest(&e), Some(1));
        deregister(
            &e,
            &c,
            s::DeregisterTaskDefinitionRequest {
                task_definition: "app:1".into(),
            },
        )
        .unwrap();
        assert_eq!(latest(&e), None);
    }

    #[test]
    fn tag_helpers_round_trip() {
        let e = ecs();
        let c = ctx();
        register_ok(&e, "web");
        e.store
            .write(|tx| -> Result<(), Failure> {
                let (mut record, version) = load_for_tags(tx, &c, "web:1")?.unwrap();
                record.tags.push(s::Tag {
                    key: Some("env".into()),
                    value: Some("prod".into()),
                });
                store_tags(tx, &c, &record, version)?;
                assert!(load_for_tags(tx, &c, "web")?.is_none());
                assert!(load_for_tags(tx, &c, "web:2")?.is_none());
                Ok(())
            })
            .unwrap();
        let d = describe(
            &e,
            &c,
            s::DescribeTaskDefinitionRequest {
                task_definition: "web:1".into(),
                include: Some(vec![s::TaskDefinitionField::Tags]),
            },
        )
        .unwrap();
        assert_eq!(d.tags.unwrap().len(), 2);
    }
}
