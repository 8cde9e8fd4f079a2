//! Services: CreateService, UpdateService, DeleteService, DescribeServices, ListServices,
//! and their deployments (ListServiceDeployments, DescribeServiceDeployments,
//! StopServiceDeployment).
//!
//! A service is stored under `<cluster>/<name>` as its wire shape plus what the scheduler
//! keeps: every deployment (PRIMARY, ACTIVE and INACTIVE ones, each with its service
//! deployment), the events, the steady-state flag and the placement backoff. Counts are
//! derived from the tasks when the service is shown. The handlers only change records and
//! wake the controller (`super::service_controller`), which starts and stops the tasks.

use berth_model::lifecycle::TaskStatus;
use berth_store::Tx;
use berth_wire::ecs::ErrorCode;
use berth_wire::ecs::shapes as s;
use berth_wire::{AwsError, RequestContext, Timestamp};
use serde::{Deserialize, Serialize};

use super::Ecs;
use super::common::{self, aws, invalid, scope};
use super::task_definitions;
use super::tasks::{StoredTask, task_kind};
use crate::failure::Failure;

/// Store kind of services.
pub const SERVICE: &str = "ecs/service";

/// How many events a service keeps (ECS shows the latest 100).
const MAX_EVENTS: usize = 100;
/// How many INACTIVE deployments a service keeps for ListServiceDeployments.
const MAX_INACTIVE_DEPLOYMENTS: usize = 20;

/// One deployment of a service and its service deployment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredDeployment {
    /// As `deployments` shows it (counts are filled in when shown).
    pub deployment: s::Deployment,
    /// The service deployment's ARN.
    pub arn: String,
    /// The service revision's ARN.
    pub revision_arn: String,
    pub service_deployment_status: s::ServiceDeploymentStatus,
    #[serde(default)]
    pub status_reason: Option<String>,
    #[serde(default)]
    pub finished_at: Option<Timestamp>,
    #[serde(default)]
    pub stopped_at: Option<Timestamp>,
    /// The deployment configuration in force when it started.
    pub deployment_configuration: s::DeploymentConfiguration,
    /// Whether its task definition's containers define health checks.
    pub health_checked: bool,
    /// The ARNs of the revisions that ran when it started.
    #[serde(default)]
    pub source_revisions: Vec<String>,
    /// A rollback deployment: the deployment it rolls back (not listed on its own).
    #[serde(default)]
    pub rollback_of: Option<String>,
    #[serde(default)]
    pub rollback: Option<s::Rollback>,
}

impl StoredDeployment {
    pub fn id(&self) -> &str {
        self.deployment.id.as_deref().unwrap_or("")
    }
    pub fn status(&self) -> &str {
        self.deployment.status.as_deref().unwrap_or("")
    }
}

/// One stored service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredService {
    /// The wire shape without deployments, events and counts.
    pub service: s::Service,
    /// Newest first.
    pub deployments: Vec<StoredDeployment>,
    /// Newest first.
    pub events: Vec<s::ServiceEvent>,
    #[serde(default)]
    pub steady_reported: bool,
    #[serde(default)]
    pub placement_failures: u32,
    #[serde(default)]
    pub retry_placement_at_ms: Option<i64>,
    #[serde(default)]
    pub client_token: Option<String>,
}

impl StoredService {
    pub fn name(&self) -> &str {
        self.service.service_name.as_deref().unwrap_or("")
    }
    pub fn status(&self) -> &str {
        self.service.status.as_deref().unwrap_or("")
    }
    pub fn primary(&self) -> Option<&StoredDeployment> {
        self.deployments.iter().find(|d| d.status() == "PRIMARY")
    }
    pub fn deployment_mut(&mut self, id: &str) -> Option<&mut StoredDeployment> {
        self.deployments.iter_mut().find(|d| d.id() == id)
    }
    /// Adds an event (newest first, at most 100).
    pub fn event(&mut self, now: Timestamp, message: String) {
        self.events.insert(
            0,
            s::ServiceEvent {
                created_at: Some(now),
                id: Some(uuid::Uuid::new_v4().to_string()),
                message: Some(message),
            },
        );
        self.events.truncate(MAX_EVENTS);
    }
    /// Drops the oldest INACTIVE deployments beyond what is kept.
    fn trim_deployments(&mut self) {
        let mut inactive = 0;
        self.deployments.retain(|d| {
            if d.status() == "INACTIVE" {
                inactive += 1;
                inactive <= MAX_INACTIVE_DEPLOYMENTS
            } else {
                true
            }
        });
    }
}

fn service_arn(ctx: &RequestContext, cluster: &str, name: &str) -> String {
    common::arn(ctx, format!("service/{cluster}/{name}"))
}

/// The deployment configuration ECS fills in: REPLICA 100%/200%, DAEMON 0%/100%, the
/// circuit breaker off.
fn default_configuration(daemon: bool) -> s::DeploymentConfiguration {
    s::DeploymentConfiguration {
        maximum_percent: Some(if daemon { 100 } else { 200 }),
        minimum_healthy_percent: Some(if daemon { 0 } else { 100 }),
        deployment_circuit_breaker: Some(s::DeploymentCircuitBreaker {
            enable: false,
            rollback: false,
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// `base` with what `given` sets, checked as ECS checks it.
fn merge_configuration(
    base: &s::DeploymentConfiguration,
    given: Option<&s::DeploymentConfiguration>,
    daemon: bool,
) -> Result<s::DeploymentConfiguration, AwsError> {
    let mut c = base.clone();
    if let Some(g) = given {
        if g.maximum_percent.is_some() {
            c.maximum_percent = g.maximum_percent;
        }
        if g.minimum_healthy_percent.is_some() {
            c.minimum_healthy_percent = g.minimum_healthy_percent;
        }
        if g.deployment_circuit_breaker.is_some() {
            c.deployment_circuit_breaker = g.deployment_circuit_breaker.clone();
        }
        if g.alarms.is_some() {
            c.alarms = g.alarms.clone();
        }
        if g.strategy.is_some() {
            c.strategy = g.strategy;
        }
        if g.bake_time_in_minutes.is_some() {
            c.bake_time_in_minutes = g.bake_time_in_minutes;
        }
    }
    let min = c.minimum_healthy_percent.unwrap_or(100);
    let max = c.maximum_percent.unwrap_or(200);
    if !(0..=100).contains(&min) {
        return Err(invalid(
            "deploymentConfiguration.minimumHealthyPercent must be between 0 and 100.",
        ));
    }
    if max < 100 && !daemon || max < min || max > 2000 {
        return Err(invalid(
            "deploymentConfiguration.maximumPercent must be at least 100 and at least minimumHealthyPercent.",
        ));
    }
    if daemon && max != 100 {
        return Err(invalid(
            "The maximumPercent of a service with the DAEMON scheduling strategy must be 100.",
        ));
    }
    if c.strategy
        .is_some_and(|s| s != s::DeploymentStrategy::Rolling)
    {
        return Err(invalid(format!(
            "The deployment strategy {} is not served by Berth yet; use ROLLING.",
            c.strategy.map(|s| s.as_str()).unwrap_or("")
        )));
    }
    if let Some(t) = c
        .deployment_circuit_breaker
        .as_ref()
        .and_then(|b| b.threshold_configuration.as_ref())
        && t.value < 1
    {
        return Err(invalid(
            "deploymentCircuitBreaker.thresholdConfiguration.value must be at least 1.",
        ));
    }
    Ok(c)
}

/// A `ecs-svc/<19 digits>` deployment id.
fn deployment_id() -> String {
    format!(
        "ecs-svc/{}",
        rand::random_range(1_000_000_000_000_000_000u64..=9_999_999_999_999_999_999)
    )
}

/// What a new deployment starts from.
pub struct NewDeployment<'a> {
    pub task_definition: &'a str,
    pub health_checked: bool,
    pub rollback_of: Option<String>,
    pub reason: Option<String>,
}

/// Makes a new PRIMARY deployment of `svc` (the current PRIMARY becomes ACTIVE; an
/// IN_PROGRESS one is stopped as a service deployment) and returns its id.
pub fn start_deployment(
    svc: &mut StoredService,
    ctx: &RequestContext,
    cluster: &str,
    new: NewDeployment<'_>,
) -> String {
    let now = ctx.now;
    let source: Vec<String> = svc
        .deployments
        .iter()
        .filter(|d| d.status() != "INACTIVE")
        .map(|d| d.revision_arn.clone())
        .collect();
    for d in &mut svc.deployments {
        if d.status() == "PRIMARY" {
            d.deployment.status = Some("ACTIVE".into());
            d.deployment.updated_at = Some(now);
            if d.service_deployment_status == s::ServiceDeploymentStatus::InProgress {
                d.service_deployment_status = s::ServiceDeploymentStatus::Stopped;
                d.status_reason = Some("Superseded by a newer service deployment.".into());
                d.stopped_at = Some(now);
            }
        }
    }
    let id = deployment_id();
    let name = svc.name().to_string();
    let digits = id.trim_start_matches("ecs-svc/").to_string();
    let svc_shape = &svc.service;
    let deployment = s::Deployment {
        id: Some(id.clone()),
        status: Some("PRIMARY".into()),
        task_definition: Some(new.task_definition.to_string()),
        desired_count: svc_shape.desired_count,
        pending_count: Some(0),
        running_count: Some(0),
        failed_tasks: Some(0),
        created_at: Some(now),
        updated_at: Some(now),
        launch_type: svc_shape.launch_type,
        capacity_provider_strategy: svc_shape.capacity_provider_strategy.clone(),
        platform_version: svc_shape.platform_version.clone(),
        platform_family: svc_shape.platform_family.clone(),
        network_configuration: svc_shape.network_configuration.clone(),
        rollout_state: Some(s::DeploymentRolloutState::InProgress),
        rollout_state_reason: Some(
            new.reason
                .unwrap_or_else(|| berth_control::messages::rollout_in_progress(&id)),
        ),
        ..Default::default()
    };
    let rollback = new.rollback_of.as_ref().map(|_| s::Rollback {
        reason: Some("Rolling back to the last completed deployment.".into()),
        service_revision_arn: None,
        started_at: Some(now),
    });
    svc.deployments.insert(
        0,
        StoredDeployment {
            deployment,
            arn: common::arn(
                ctx,
                format!(
                    "service-deployment/{cluster}/{name}/{}",
                    &uuid::Uuid::new_v4().simple().to_string()[..21]
                ),
            ),
            revision_arn: common::arn(ctx, format!("service-revision/{cluster}/{name}/{digits}")),
            service_deployment_status: s::ServiceDeploymentStatus::InProgress,
            status_reason: None,
            finished_at: None,
            stopped_at: None,
            deployment_configuration: svc
                .service
                .deployment_configuration
                .clone()
                .unwrap_or_default(),
            health_checked: new.health_checked,
            source_revisions: source,
            rollback_of: new.rollback_of,
            rollback,
        },
    );
    svc.steady_reported = false;
    svc.placement_failures = 0;
    svc.retry_placement_at_ms = None;
    svc.trim_deployments();
    id
}

/// The service's tasks (group `service:<name>`), by store id.
pub fn service_tasks(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    cluster: &str,
    name: &str,
) -> Result<Vec<(String, StoredTask)>, Failure> {
    let group = format!("service:{name}");
    Ok(tx
        .list_json::<StoredTask>(scope(ctx), task_kind::TASK, &format!("{cluster}/"))?
        .into_iter()
        .filter(|(_, t)| t.task.group.as_deref() == Some(group.as_str()))
        .collect())
}

/// The service as DescribeServices shows it: counts from its tasks, its PRIMARY and ACTIVE
/// deployments, its events; tags only when asked for.
fn present(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    cluster: &str,
    svc: &StoredService,
    tags: bool,
) -> Result<s::Service, Failure> {
    let tasks = service_tasks(tx, ctx, cluster, svc.name())?;
    let count = |dep: Option<&str>, f: &dyn Fn(TaskStatus) -> bool| -> i32 {
        let n = tasks
            .iter()
            .filter(|(_, t)| dep.is_none_or(|d| t.task.started_by.as_deref() == Some(d)))
            .filter(|(_, t)| f(t.last_status()))
            .count();
        i32::try_from(n).unwrap_or(i32::MAX)
    };
    let running = |s: TaskStatus| s == TaskStatus::Running;
    let pending = |s: TaskStatus| s.is_pending();
    let mut out = svc.service.clone();
    out.running_count = Some(count(None, &running));
    out.pending_count = Some(count(None, &pending));
    out.deployments = Some(
        svc.deployments
            .iter()
            .filter(|d| d.status() != "INACTIVE")
            .map(|d| {
                let mut dep = d.deployment.clone();
                dep.running_count = Some(count(Some(d.id()), &running));
                dep.pending_count = Some(count(Some(d.id()), &pending));
                if d.status() == "PRIMARY" {
                    dep.desired_count = svc.service.desired_count;
                } else {
                    dep.desired_count = Some(count(Some(d.id()), &|s| s != TaskStatus::Stopped));
                }
                dep
            })
            .collect(),
    );
    out.events = Some(svc.events.clone());
    out.current_service_deployment = svc.primary().map(|d| d.arn.clone());
    out.current_service_revisions = Some(
        svc.deployments
            .iter()
            .filter(|d| d.status() != "INACTIVE")
            .map(|d| s::ServiceCurrentRevisionSummary {
                arn: Some(d.revision_arn.clone()),
                requested_task_count: if d.status() == "PRIMARY" {
                    svc.service.desired_count
                } else {
                    Some(0)
                },
                running_task_count: Some(count(Some(d.id()), &running)),
                pending_task_count: Some(count(Some(d.id()), &pending)),
            })
            .collect(),
    );
    if tags {
        out.tags.get_or_insert_with(Vec::new);
    } else {
        out.tags = None;
    }
    Ok(out)
}

/// The store id `<cluster>/<name>` a `service` parameter (name or ARN) names.
fn service_store_id(ctx: &RequestContext, cluster: &str, ident: &str) -> Option<String> {
    let name = match common::arn_resource(ctx, ident, "service") {
        Some(Ok(rest)) => match rest.split_once('/') {
            Some((c, n)) if c == cluster => n,
            Some(_) => return None,
            None => rest,
        },
        Some(Err(())) => return None,
        None => ident,
    };
    berth_model::names::is_simple_name(name, 255).then(|| format!("{cluster}/{name}"))
}

fn service_not_found() -> AwsError {
    ErrorCode::ServiceNotFoundException.with("Service not found.")
}

/// The service `ident` names in `cluster`, whatever its status.
fn find(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    cluster: &str,
    ident: &str,
) -> Result<(String, StoredService, i64), Failure> {
    let id = service_store_id(ctx, cluster, ident).ok_or_else(service_not_found)?;
    let (svc, v) = tx
        .get_json::<StoredService>(scope(ctx), SERVICE, &id)?
        .ok_or_else(service_not_found)?;
    Ok((id, svc, v))
}

/// The task definition a `taskDefinition` parameter names, ACTIVE, with whether its
/// containers define health checks.
fn task_definition(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    ident: &str,
) -> Result<(s::TaskDefinition, bool), Failure> {
    let parsed = task_definitions::parse_ident(ctx, ident)?
        .ok_or_else(|| invalid("TaskDefinition not found."))?;
    let (td, _) = task_definitions::resolve(tx, ctx, &parsed)?
        .ok_or_else(|| invalid("TaskDefinition not found."))?;
    if td.task_definition.status != Some(s::TaskDefinitionStatus::Active) {
        return Err(invalid("TaskDefinition is inactive").into());
    }
    let checked = td
        .task_definition
        .container_definitions
        .iter()
        .flatten()
        .any(|c| c.health_check.is_some());
    Ok((td.task_definition, checked))
}

/// Checks what a service's tasks need from the network configuration.
fn check_network(
    td: &s::TaskDefinition,
    fargate: bool,
    net: Option<&s::NetworkConfiguration>,
) -> Result<(), AwsError> {
    let awsvpc = net.and_then(|n| n.awsvpc_configuration.as_ref());
    match td.network_mode {
        Some(s::NetworkMode::Awsvpc) => {
            let conf = awsvpc.ok_or_else(|| {
                invalid("Network Configuration must be provided when networkMode 'awsvpc' is specified.")
            })?;
            if conf.subnets.is_empty() {
                return Err(invalid("subnets can not be empty."));
            }
        }
        _ if awsvpc.is_some() => {
            return Err(invalid(
                "Network Configuration is not valid for the given networkMode of this task definition.",
            ));
        }
        _ if fargate => {
            return Err(invalid(
                "Task definition does not support launch_type FARGATE.",
            ));
        }
        _ => {}
    }
    Ok(())
}

/// Checks an awsvpc service's subnets and security groups against the VPC objects.
fn check_vpc(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    td: &s::TaskDefinition,
    net: Option<&s::NetworkConfiguration>,
) -> Result<(), Failure> {
    if td.network_mode == Some(s::NetworkMode::Awsvpc)
        && let Some(conf) = net.and_then(|n| n.awsvpc_configuration.as_ref())
    {
        crate::ec2::interfaces::check_awsvpc(tx, scope(ctx), conf)?;
    }
    Ok(())
}

fn fargate(svc: &s::Service, cluster: &s::Cluster) -> bool {
    match svc.launch_type {
        Some(l) => l == s::LaunchType::Fargate,
        None => svc
            .capacity_provider_strategy
            .as_ref()
            .filter(|s| !s.is_empty())
            .or(cluster.default_capacity_provider_strategy.as_ref())
            .and_then(|s| s.first())
            .is_some_and(|i| i.capacity_provider.starts_with("FARGATE")),
    }
}

fn validate_placement(
    td: &s::TaskDefinition,
    daemon: bool,
    constraints: Option<&[s::PlacementConstraint]>,
    strategies: Option<&[s::PlacementStrategy]>,
) -> Result<(), AwsError> {
    if daemon && strategies.is_some_and(|s| !s.is_empty()) {
        return Err(invalid(
            "Placement strategies are not supported with the DAEMON scheduling strategy.",
        ));
    }
    super::placement::rules(td, constraints, strategies).map(|_| ())
}

pub fn create(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::CreateServiceRequest,
) -> Result<s::CreateServiceResponse, AwsError> {
    let name = input.service_name.clone();
    if !berth_model::names::is_simple_name(&name, 255) {
        return Err(invalid(
            "Service names can have up to 255 characters: letters (uppercase and lowercase), numbers, hyphens, and underscores.",
        ));
    }
    let daemon = input.scheduling_strategy == Some(s::SchedulingStrategy::Daemon);
    if input
        .deployment_controller
        .as_ref()
        .is_some_and(|c| c.r#type != s::DeploymentControllerType::Ecs)
    {
        return Err(ErrorCode::UnsupportedFeatureException.with(
            "Berth serves the ECS deployment controller only (CODE_DEPLOY and EXTERNAL are not served).",
        ));
    }
    if input.launch_type.is_some()
        && input
            .capacity_provider_strategy
            .as_ref()
            .is_some_and(|s| !s.is_empty())
    {
        return Err(invalid(
            "Specifying both a launch type and capacity provider strategy is not supported. Remove one and try again.",
        ));
    }
    if input
        .launch_type
        .is_some_and(|l| !matches!(l, s::LaunchType::Ec2 | s::LaunchType::Fargate))
    {
        return Err(invalid(format!(
            "The launch type {} is not supported by Berth yet.",
            input.launch_type.map(|l| l.as_str()).unwrap_or("")
        )));
    }
    let desired = match (daemon, input.desired_count) {
        (true, Some(_)) => {
            return Err(invalid(
                "The daemon scheduling strategy does not support a desired count for services.",
            ));
        }
        (true, None) => 0,
        (false, Some(n)) if n < 0 => return Err(invalid("desiredCount must be at least 0.")),
        (false, n) => n.unwrap_or(0),
    };
    if input
        .health_check_grace_period_seconds
        .is_some_and(|g| !(0..=2_147_483_647).contains(&g))
    {
        return Err(invalid("healthCheckGracePeriodSeconds must be at least 0."));
    }
    let tags = input.tags.clone().unwrap_or_default();
    common::validate_tags(&tags)?;
    let config = merge_configuration(
        &default_configuration(daemon),
        input.deployment_configuration.as_ref(),
        daemon,
    )?;
    let out = ecs
        .store
        .write(|tx| -> Result<s::CreateServiceResponse, Failure> {
            let (cluster, _) = common::active_cluster(tx, ctx, input.cluster.as_deref())?;
            let cluster_name = cluster.cluster_name.clone().unwrap_or_default();
            let id = format!("{cluster_name}/{name}");
            let existing = tx.get_json::<StoredService>(scope(ctx), SERVICE, &id)?;
            if let Some((svc, _)) = &existing
                && svc.status() != "INACTIVE"
            {
                if input.client_token.is_some() && svc.client_token == input.client_token {
                    return Ok(s::CreateServiceResponse {
                        service: Some(present(tx, ctx, &cluster_name, svc, true)?),
                    });
                }
                return Err(invalid("Creation of service was not idempotent.").into());
            }
            let td_ident = input
                .task_definition
                .as_deref()
                .ok_or_else(|| invalid("TaskDefinition must be specified."))?;
            let (td, health_checked) = task_definition(tx, ctx, td_ident)?;
            let mut service = s::Service {
                service_arn: Some(service_arn(ctx, &cluster_name, &name)),
                service_name: Some(name.clone()),
                cluster_arn: cluster.cluster_arn.clone(),
                status: Some("ACTIVE".into()),
                desired_count: Some(desired),
                launch_type: input.launch_type,
                capacity_provider_strategy: input.capacity_provider_strategy.clone(),
                platform_version: input.platform_version.clone(),
                task_definition: td.task_definition_arn.clone(),
                deployment_configuration: Some(config.clone()),
                role_arn: input.role.clone(),
                created_at: Some(ctx.now),
                placement_constraints: Some(
                    input.placement_constraints.clone().unwrap_or_default(),
                ),
                placement_strategy: Some(input.placement_strategy.clone().unwrap_or_default()),
                network_configuration: input.network_configuration.clone(),
                health_check_grace_period_seconds: input.health_check_grace_period_seconds,
                scheduling_strategy: Some(
                    input
                        .scheduling_strategy
                        .unwrap_or(s::SchedulingStrategy::Replica),
                ),
                deployment_controller: Some(s::DeploymentController {
                    r#type: s::DeploymentControllerType::Ecs,
                }),
                tags: Some(tags.clone()),
                created_by: Some(ctx.principal_arn.clone()),
                enable_ecs_managed_tags: Some(input.enable_ecs_managed_tags.unwrap_or(false)),
                propagate_tags: Some(input.propagate_tags.unwrap_or(s::PropagateTags::None)),
                enable_execute_command: Some(input.enable_execute_command.unwrap_or(false)),
                load_balancers: Some(input.load_balancers.clone().unwrap_or_default()),
                service_registries: Some(input.service_registries.clone().unwrap_or_default()),
                availability_zone_rebalancing: input.availability_zone_rebalancing,
                ..Default::default()
            };
            if service.launch_type.is_none()
                && service
                    .capacity_provider_strategy
                    .as_ref()
                    .is_none_or(|s| s.is_empty())
            {
                match cluster
                    .default_capacity_provider_strategy
                    .as_ref()
                    .filter(|s| !s.is_empty())
                {
                    Some(strategy) => service.capacity_provider_strategy = Some(strategy.clone()),
                    None => service.launch_type = Some(s::LaunchType::Ec2),
                }
            }
            let is_fargate = fargate(&service, &cluster);
            if is_fargate && daemon {
                return Err(invalid(
                    "The DAEMON scheduling strategy is not supported for the FARGATE launch type.",
                )
                .into());
            }
            let compat = if is_fargate {
                s::Compatibility::Fargate
            } else {
                s::Compatibility::Ec2
            };
            if !td.compatibilities.iter().flatten().any(|c| *c == compat) {
                return Err(invalid(format!(
                    "Task definition does not support launch_type {}.",
                    if is_fargate { "FARGATE" } else { "EC2" }
                ))
                .into());
            }
            if is_fargate {
                service
                    .platform_version
                    .get_or_insert_with(|| "LATEST".into());
                service.platform_family = Some("Linux".into());
            }
            check_network(&td, is_fargate, input.network_configuration.as_ref())?;
            check_vpc(tx, ctx, &td, input.network_configuration.as_ref())?;
            validate_placement(
                &td,
                daemon,
                input.placement_constraints.as_deref(),
                input.placement_strategy.as_deref(),
            )?;
            let mut svc = StoredService {
                service,
                deployments: existing.map(|(old, _)| old.deployments).unwrap_or_default(),
                events: Vec::new(),
                steady_reported: false,
                placement_failures: 0,
                retry_placement_at_ms: None,
                client_token: input.client_token.clone(),
            };
            for d in &mut svc.deployments {
                d.deployment.status = Some("INACTIVE".into());
            }
            start_deployment(
                &mut svc,
                ctx,
                &cluster_name,
                NewDeployment {
                    task_definition: td.task_definition_arn.as_deref().unwrap_or(""),
                    health_checked,
                    rollback_of: None,
                    reason: None,
                },
            );
            tx.put(scope(ctx), SERVICE, &id, None, &svc)?;
            Ok(s::CreateServiceResponse {
                service: Some(present(tx, ctx, &cluster_name, &svc, true)?),
            })
        })
        .map_err(aws)?;
    ecs.notifier.wake_controller();
    Ok(out)
}

/// UpdateService's rule for a setting that starts a new deployment: a value given and
/// different from the service's replaces it; returns whether it did.
fn replace_changed<T: PartialEq + Clone>(slot: &mut Option<T>, given: &Option<T>) -> bool {
    match given {
        Some(v) if slot.as_ref() != Some(v) => {
            *slot = Some(v.clone());
            true
        }
        _ => false,
    }
}

pub fn update(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::UpdateServiceRequest,
) -> Result<s::UpdateServiceResponse, AwsError> {
    if input.desired_count.is_some_and(|n| n < 0) {
        return Err(invalid("desiredCount must be at least 0."));
    }
    if input
        .health_check_grace_period_seconds
        .is_some_and(|g| g < 0)
    {
        return Err(invalid("healthCheckGracePeriodSeconds must be at least 0."));
    }
    let out = ecs
        .store
        .write(|tx| -> Result<s::UpdateServiceResponse, Failure> {
            let (cluster, _) = common::active_cluster(tx, ctx, input.cluster.as_deref())?;
            let cluster_name = cluster.cluster_name.clone().unwrap_or_default();
            let (id, mut svc, v) = find(tx, ctx, &cluster_name, &input.service)?;
            if svc.status() != "ACTIVE" {
                return Err(ErrorCode::ServiceNotActiveException
                    .with("Service was not ACTIVE.")
                    .into());
            }
            let daemon = svc.service.scheduling_strategy == Some(s::SchedulingStrategy::Daemon);
            if daemon && input.desired_count.is_some() {
                return Err(invalid(
                    "The daemon scheduling strategy does not support a desired count for services.",
                )
                .into());
            }
            let mut redeploy = input.force_new_deployment.unwrap_or(false);
            let current_td = svc.service.task_definition.clone().unwrap_or_default();
            let (td, health_checked) = task_definition(
                tx,
                ctx,
                input.task_definition.as_deref().unwrap_or(&current_td),
            )?;
            if td.task_definition_arn.as_deref() != Some(current_td.as_str()) {
                redeploy = true;
            }
            let s_ = &mut svc.service;
            if let Some(n) = input.desired_count
                && s_.desired_count != Some(n)
            {
                s_.desired_count = Some(n);
                svc.steady_reported = false;
            }
            let s_ = &mut svc.service;
            if input.deployment_configuration.is_some() {
                s_.deployment_configuration = Some(merge_configuration(
                    s_.deployment_configuration
                        .as_ref()
                        .unwrap_or(&default_configuration(daemon)),
                    input.deployment_configuration.as_ref(),
                    daemon,
                )?);
            }
            if let Some(g) = input.health_check_grace_period_seconds {
                s_.health_check_grace_period_seconds = Some(g);
            }
            redeploy |=
                replace_changed(&mut s_.network_configuration, &input.network_configuration);
            redeploy |=
                replace_changed(&mut s_.placement_constraints, &input.placement_constraints);
            redeploy |= replace_changed(&mut s_.placement_strategy, &input.placement_strategy);
            if let Some(p) = input.propagate_tags {
                s_.propagate_tags = Some(p);
            }
            if let Some(m) = input.enable_ecs_managed_tags {
                s_.enable_ecs_managed_tags = Some(m);
            }
            if let Some(e) = input.enable_execute_command {
                s_.enable_execute_command = Some(e);
            }
            redeploy |= replace_changed(&mut s_.platform_version, &input.platform_version);
            if replace_changed(
                &mut s_.capacity_provider_strategy,
                &input.capacity_provider_strategy,
            ) {
                s_.launch_type = None;
                redeploy = true;
            }
            let is_fargate = fargate(&svc.service, &cluster);
            check_network(&td, is_fargate, svc.service.network_configuration.as_ref())?;
            check_vpc(tx, ctx, &td, svc.service.network_configuration.as_ref())?;
            validate_placement(
                &td,
                daemon,
                svc.service.placement_constraints.as_deref(),
                svc.service.placement_strategy.as_deref(),
            )?;
            svc.service.task_definition = td.task_definition_arn.clone();
            if redeploy {
                start_deployment(
                    &mut svc,
                    ctx,
                    &cluster_name,
                    NewDeployment {
                        task_definition: td.task_definition_arn.as_deref().unwrap_or(""),
                        health_checked,
                        rollback_of: None,
                        reason: None,
                    },
                );
            } else if let Some(p) = svc.deployments.iter_mut().find(|d| d.status() == "PRIMARY") {
                p.deployment.desired_count = svc.service.desired_count;
                p.deployment.updated_at = Some(ctx.now);
            }
            tx.put(scope(ctx), SERVICE, &id, Some(v), &svc)?;
            Ok(s::UpdateServiceResponse {
                service: Some(present(tx, ctx, &cluster_name, &svc, false)?),
            })
        })
        .map_err(aws)?;
    ecs.notifier.wake_controller();
    Ok(out)
}

pub fn delete(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::DeleteServiceRequest,
) -> Result<s::DeleteServiceResponse, AwsError> {
    let out = ecs
        .store
        .write(|tx| -> Result<s::DeleteServiceResponse, Failure> {
            let (cluster, _) = common::active_cluster(tx, ctx, input.cluster.as_deref())?;
            let cluster_name = cluster.cluster_name.clone().unwrap_or_default();
            let (id, mut svc, v) = find(tx, ctx, &cluster_name, &input.service)?;
            if svc.status() == "INACTIVE" {
                return Err(ErrorCode::ServiceNotActiveException
                    .with("Service was not ACTIVE.")
                    .into());
            }
            let replica = svc.service.scheduling_strategy != Some(s::SchedulingStrategy::Daemon);
            if replica
                && svc.service.desired_count.unwrap_or(0) > 0
                && !input.force.unwrap_or(false)
            {
                return Err(
                    invalid("The service cannot be stopped while it is scaled above 0.").into(),
                );
            }
            svc.service.status = Some("DRAINING".into());
            svc.service.desired_count = Some(0);
            svc.steady_reported = false;
            tx.put(scope(ctx), SERVICE, &id, Some(v), &svc)?;
            Ok(s::DeleteServiceResponse {
                service: Some(present(tx, ctx, &cluster_name, &svc, false)?),
            })
        })
        .map_err(aws)?;
    ecs.notifier.wake_controller();
    Ok(out)
}

pub fn describe(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::DescribeServicesRequest,
) -> Result<s::DescribeServicesResponse, AwsError> {
    if input.services.is_empty() {
        return Err(invalid("Services cannot be empty."));
    }
    if input.services.len() > 10 {
        return Err(invalid("Services can have at most 10 items."));
    }
    let tags = input
        .include
        .iter()
        .flatten()
        .any(|f| *f == s::ServiceField::Tags);
    ecs.store
        .read(|tx| -> Result<s::DescribeServicesResponse, Failure> {
            let (cluster, _) = common::active_cluster(tx, ctx, input.cluster.as_deref())?;
            let cluster_name = cluster.cluster_name.clone().unwrap_or_default();
            let mut services = Vec::new();
            let mut failures = Vec::new();
            for ident in &input.services {
                match find(tx, ctx, &cluster_name, ident) {
                    Ok((_, svc, _)) => services.push(present(tx, ctx, &cluster_name, &svc, tags)?),
                    Err(Failure::Aws(_)) => failures.push(s::Failure {
                        arn: Some(if ident.starts_with("arn:") {
                            ident.clone()
                        } else {
                            service_arn(ctx, &cluster_name, ident)
                        }),
                        reason: Some("MISSING".into()),
                        detail: None,
                    }),
                    Err(e) => return Err(e),
                }
            }
            Ok(s::DescribeServicesResponse {
                services: Some(services),
                failures: Some(failures),
            })
        })
        .map_err(aws)
}

pub fn list(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::ListServicesRequest,
) -> Result<s::ListServicesResponse, AwsError> {
    let mut page = common::Page::parse(input.next_token.as_deref(), input.max_results, 100)?;
    if input.max_results.is_none() {
        page.limit = 10;
    }
    ecs.store
        .read(|tx| -> Result<s::ListServicesResponse, Failure> {
            let (cluster, _) = common::active_cluster(tx, ctx, input.cluster.as_deref())?;
            let cluster_name = cluster.cluster_name.clone().unwrap_or_default();
            let prefix = format!("{cluster_name}/");
            let after = page.after.as_ref().map(|a| format!("{prefix}{a}"));
            let mut rows: Vec<(String, String)> = Vec::new();
            for r in tx.list(scope(ctx), SERVICE, &prefix, after.as_deref(), usize::MAX)? {
                let svc: StoredService = r.decode(SERVICE)?;
                if svc.status() == "INACTIVE" {
                    continue;
                }
                let is_fargate = fargate(&svc.service, &cluster);
                if let Some(l) = input.launch_type {
                    let mine = if is_fargate {
                        s::LaunchType::Fargate
                    } else {
                        s::LaunchType::Ec2
                    };
                    if l != mine {
                        continue;
                    }
                }
                if input
                    .scheduling_strategy
                    .is_some_and(|st| svc.service.scheduling_strategy != Some(st))
                {
                    continue;
                }
                rows.push((
                    r.id.trim_start_matches(&prefix).to_string(),
                    svc.service.service_arn.clone().unwrap_or_default(),
                ));
                if rows.len() > page.limit {
                    break;
                }
            }
            let next_token = page.next_token(&mut rows, |(id, _)| id.clone());
            Ok(s::ListServicesResponse {
                service_arns: Some(rows.into_iter().map(|(_, a)| a).collect()),
                next_token,
            })
        })
        .map_err(aws)
}

/// How many services of `cluster` are ACTIVE or DRAINING (activeServicesCount).
pub fn count_active(tx: &Tx<'_>, ctx: &RequestContext, cluster: &str) -> Result<i32, Failure> {
    let n = tx
        .list_json::<StoredService>(scope(ctx), SERVICE, &format!("{cluster}/"))?
        .into_iter()
        .filter(|(_, s)| s.status() != "INACTIVE")
        .count();
    Ok(i32::try_from(n).unwrap_or(i32::MAX))
}

fn brief(svc: &StoredService, d: &StoredDeployment) -> s::ServiceDeploymentBrief {
    s::ServiceDeploymentBrief {
        cluster_arn: svc.service.cluster_arn.clone(),
        service_arn: svc.service.service_arn.clone(),
        service_deployment_arn: Some(d.arn.clone()),
        created_at: d.deployment.created_at,
        started_at: d.deployment.created_at,
        finished_at: d.finished_at,
        status: Some(d.service_deployment_status),
        status_reason: d.status_reason.clone(),
        target_service_revision_arn: Some(d.revision_arn.clone()),
    }
}

fn full(svc: &StoredService, d: &StoredDeployment) -> s::ServiceDeployment {
    let cb = d
        .deployment_configuration
        .deployment_circuit_breaker
        .as_ref()
        .filter(|b| b.enable);
    let desired = svc.service.desired_count.unwrap_or(0).max(0) as u32;
    s::ServiceDeployment {
        cluster_arn: svc.service.cluster_arn.clone(),
        service_arn: svc.service.service_arn.clone(),
        service_deployment_arn: Some(d.arn.clone()),
        created_at: d.deployment.created_at,
        started_at: d.deployment.created_at,
        updated_at: d.deployment.updated_at,
        finished_at: d.finished_at,
        stopped_at: d.stopped_at,
        status: Some(d.service_deployment_status),
        status_reason: d.status_reason.clone(),
        deployment_configuration: Some(d.deployment_configuration.clone()),
        target_service_revision: Some(s::ServiceRevisionSummary {
            arn: Some(d.revision_arn.clone()),
            requested_task_count: d.deployment.desired_count,
            running_task_count: d.deployment.running_count,
            pending_task_count: d.deployment.pending_count,
            ..Default::default()
        }),
        source_service_revisions: Some(
            d.source_revisions
                .iter()
                .map(|a| s::ServiceRevisionSummary {
                    arn: Some(a.clone()),
                    ..Default::default()
                })
                .collect(),
        ),
        deployment_circuit_breaker: Some(s::ServiceDeploymentCircuitBreaker {
            status: Some(match (cb, d.deployment.rollout_state) {
                (None, _) => s::ServiceDeploymentRollbackMonitorsStatus::Disabled,
                (Some(_), Some(s::DeploymentRolloutState::Failed)) => {
                    s::ServiceDeploymentRollbackMonitorsStatus::Triggered
                }
                (Some(_), Some(s::DeploymentRolloutState::InProgress)) => {
                    s::ServiceDeploymentRollbackMonitorsStatus::Monitoring
                }
                (Some(_), _) => s::ServiceDeploymentRollbackMonitorsStatus::MonitoringComplete,
            }),
            failure_count: d.deployment.failed_tasks,
            threshold: Some(
                i32::try_from(berth_control::circuit_breaker_threshold(
                    super::service_controller::threshold(cb),
                    desired,
                ))
                .unwrap_or(i32::MAX),
            ),
        }),
        rollback: d.rollback.clone(),
        ..Default::default()
    }
}

pub fn list_deployments(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::ListServiceDeploymentsRequest,
) -> Result<s::ListServiceDeploymentsResponse, AwsError> {
    let page = common::Page::parse(input.next_token.as_deref(), input.max_results, 100)?;
    ecs.store
        .read(|tx| -> Result<s::ListServiceDeploymentsResponse, Failure> {
            let (cluster, _) = common::active_cluster(tx, ctx, input.cluster.as_deref())?;
            let cluster_name = cluster.cluster_name.clone().unwrap_or_default();
            let (_, svc, _) = find(tx, ctx, &cluster_name, &input.service)?;
            let mut rows: Vec<s::ServiceDeploymentBrief> = svc
                .deployments
                .iter()
                .filter(|d| d.rollback_of.is_none())
                .filter(|d| {
                    input
                        .status
                        .as_ref()
                        .is_none_or(|st| st.contains(&d.service_deployment_status))
                })
                .filter(|d| {
                    let at = d.deployment.created_at.map_or(0, |t| t.millis());
                    input.created_at.as_ref().is_none_or(|c| {
                        c.after.is_none_or(|a| at >= a.millis())
                            && c.before.is_none_or(|b| at <= b.millis())
                    })
                })
                .map(|d| brief(&svc, d))
                .collect();
            if let Some(after) = &page.after {
                match rows
                    .iter()
                    .position(|b| b.service_deployment_arn.as_deref() == Some(after))
                {
                    Some(i) => {
                        rows.drain(..=i);
                    }
                    None => rows.clear(),
                }
            }
            let next_token = page.next_token(&mut rows, |b| {
                b.service_deployment_arn.clone().unwrap_or_default()
            });
            Ok(s::ListServiceDeploymentsResponse {
                service_deployments: Some(rows),
                next_token,
            })
        })
        .map_err(aws)
}

/// The service (store id, record, version) and the deployment a service deployment ARN names.
fn find_deployment(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    arn: &str,
) -> Result<Option<(String, StoredService, i64, usize)>, Failure> {
    let Some(Ok(rest)) = common::arn_resource(ctx, arn, "service-deployment") else {
        return Ok(None);
    };
    let mut parts = rest.splitn(3, '/');
    let (Some(cluster), Some(service), Some(_)) = (parts.next(), parts.next(), parts.next()) else {
        return Ok(None);
    };
    let id = format!("{cluster}/{service}");
    let Some((svc, v)) = tx.get_json::<StoredService>(scope(ctx), SERVICE, &id)? else {
        return Ok(None);
    };
    let Some(i) = svc.deployments.iter().position(|d| d.arn == arn) else {
        return Ok(None);
    };
    Ok(Some((id, svc, v, i)))
}

pub fn describe_deployments(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::DescribeServiceDeploymentsRequest,
) -> Result<s::DescribeServiceDeploymentsResponse, AwsError> {
    if input.service_deployment_arns.is_empty() || input.service_deployment_arns.len() > 20 {
        return Err(invalid(
            "serviceDeploymentArns must have between 1 and 20 items.",
        ));
    }
    ecs.store
        .read(
            |tx| -> Result<s::DescribeServiceDeploymentsResponse, Failure> {
                let mut out = Vec::new();
                let mut failures = Vec::new();
                for arn in &input.service_deployment_arns {
                    match find_deployment(tx, ctx, arn)? {
                        Some((_, svc, _, i)) => {
                            let cluster = svc
                                .service
                                .cluster_arn
                                .as_deref()
                                .and_then(|a| a.rsplit('/').next())
                                .unwrap_or("")
                                .to_string();
                            // Counts as of now.
                            let shown = present(tx, ctx, &cluster, &svc, false)?;
                            let mut d = svc.deployments[i].clone();
                            if let Some(live) = shown
                                .deployments
                                .iter()
                                .flatten()
                                .find(|x| x.id.as_deref() == Some(d.id()))
                            {
                                d.deployment.running_count = live.running_count;
                                d.deployment.pending_count = live.pending_count;
                            }
                            out.push(full(&svc, &d));
                        }
                        None => failures.push(s::Failure {
                            arn: Some(arn.clone()),
                            reason: Some("MISSING".into()),
                            detail: None,
                        }),
                    }
                }
                Ok(s::DescribeServiceDeploymentsResponse {
                    service_deployments: Some(out),
                    failures: Some(failures),
                })
            },
        )
        .map_err(aws)
}

pub fn stop_deployment(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::StopServiceDeploymentRequest,
) -> Result<s::StopServiceDeploymentResponse, AwsError> {
    let arn = input.service_deployment_arn.clone();
    ecs.store
        .write(|tx| -> Result<(), Failure> {
            let (id, mut svc, v, i) = find_deployment(tx, ctx, &arn)?.ok_or_else(|| {
                ErrorCode::ServiceDeploymentNotFoundException
                    .with("The service deployment does not exist.")
            })?;
            let d = &svc.deployments[i];
            if d.service_deployment_status != s::ServiceDeploymentStatus::InProgress
                || d.status() != "PRIMARY"
            {
                return Err(ErrorCode::ConflictException
                    .with("The service deployment is not in progress and cannot be stopped.")
                    .into());
            }
            let failed = d.id().to_string();
            let cluster = svc
                .service
                .cluster_arn
                .as_deref()
                .and_then(|a| a.rsplit('/').next())
                .unwrap_or("")
                .to_string();
            let rollback = input.stop_type != Some(s::StopServiceDeploymentStopType::Abort);
            let target = svc
                .deployments
                .iter()
                .filter(|x| {
                    x.id() != failed
                        && x.deployment.rollout_state == Some(s::DeploymentRolloutState::Completed)
                })
                .max_by_key(|x| x.deployment.created_at.map_or(0, |t| t.millis()))
                .map(|x| {
                    (
                        x.id().to_string(),
                        x.deployment.task_definition.clone(),
                        x.health_checked,
                    )
                });
            let d = &mut svc.deployments[i];
            d.deployment.rollout_state = Some(s::DeploymentRolloutState::Failed);
            d.deployment.rollout_state_reason =
                Some("Service deployment stopped by request.".into());
            d.deployment.updated_at = Some(ctx.now);
            match (rollback, target) {
                (true, Some((to, td, checked))) => {
                    d.service_deployment_status = s::ServiceDeploymentStatus::RollbackRequested;
                    d.status_reason = Some("Rollback requested.".into());
                    svc.service.task_definition = td.clone();
                    start_deployment(
                        &mut svc,
                        ctx,
                        &cluster,
                        NewDeployment {
                            task_definition: td.as_deref().unwrap_or(""),
                            health_checked: checked,
                            rollback_of: Some(failed.clone()),
                            reason: Some(berth_control::messages::rollout_rolling_back(&to)),
                        },
                    );
                    if let Some(f) = svc.deployment_mut(&failed) {
                        f.service_deployment_status =
                            s::ServiceDeploymentStatus::RollbackInProgress;
                        f.stopped_at = None;
                    }
                }
                _ => {
                    d.service_deployment_status = s::ServiceDeploymentStatus::Stopped;
                    d.status_reason = Some("Service deployment stopped by request.".into());
                    d.stopped_at = Some(ctx.now);
                }
            }
            tx.put(scope(ctx), SERVICE, &id, Some(v), &svc)?;
            Ok(())
        })
        .map_err(aws)?;
    ecs.notifier.wake_controller();
    Ok(s::StopServiceDeploymentResponse {
        service_deployment_arn: Some(arn),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ecs::service_controller::{ControllerConfig, reconcile_all};
    use berth_wire::ecs::Api;
    use std::sync::Arc;

    fn setup() -> (Ecs, RequestContext) {
        let ecs = Ecs::new(Arc::new(
            berth_store::Store::open_in_memory_holding(crate::ecs::KINDS_HELD_IN_MEMORY).unwrap(),
        ));
        let c = crate::test_support::context(1_700_000_000_000);
        ecs.create_cluster(
            &c,
            s::CreateClusterRequest {
                cluster_name: Some("c".into()),
                ..Default::default()
            },
        )
        .unwrap();
        for cmd in ["a", "b"] {
            let td: s::RegisterTaskDefinitionRequest = serde_json::from_value(serde_json::json!({
                "family": "web", "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"],
                "cpu": "256", "memory": "512",
                "containerDefinitions": [{"name": "app", "image": "busybox", "command": [cmd]}]
            }))
            .unwrap();
            ecs.register_task_definition(&c, td).unwrap();
        }
        (ecs, c)
    }

    fn create(ecs: &Ecs, c: &RequestContext, extra: serde_json::Value) -> s::Service {
        let mut req = serde_json::json!({
            "cluster": "c", "serviceName": "web", "taskDefinition": "web:1", "desiredCount": 2,
            "launchType": "FARGATE",
            "networkConfiguration": {"awsvpcConfiguration": {"subnets": [crate::test_support::default_subnet(&ecs.store, c)]}},
            "tags": [{"key": "team", "value": "a"}]
        });
        for (k, v) in extra.as_object().unwrap() {
            req[k] = v.clone();
        }
        ecs.create_service(c, serde_json::from_value(req).unwrap())
            .unwrap()
            .service
            .unwrap()
    }

    fn describe(ecs: &Ecs, c: &RequestContext) -> s::Service {
        ecs.describe_services(
            c,
            s::DescribeServicesRequest {
                cluster: Some("c".into()),
                services: vec!["web".into()],
                include: Some(vec![s::ServiceField::Tags]),
            },
        )
        .unwrap()
        .services
        .unwrap()
        .remove(0)
    }

    fn tick(ecs: &Ecs, now: i64) {
        reconcile_all(ecs, Timestamp(now), &ControllerConfig::default()).unwrap();
    }

    fn tasks_of(ecs: &Ecs, c: &RequestContext) -> Vec<StoredTask> {
        ecs.store
            .read(|tx| service_tasks(tx, c, "c", "web"))
            .unwrap()
            .into_iter()
            .map(|(_, t)| t)
            .collect()
    }

    fn report(ecs: &Ecs, c: &RequestContext, t: &StoredTask, status: &str) {
        let req: s::SubmitTaskStateChangeRequest = serde_json::from_value(serde_json::json!({
            "cluster": "c", "task": t.task.task_arn, "status": status,
            "containers": [{"containerName": "app", "status": status}]
        }))
        .unwrap();
        ecs.submit_task_state_change(c, req).unwrap();
    }

    #[test]
    fn a_service_starts_its_tasks_reaches_steady_state_and_rolls() {
        let (ecs, c) = setup();
        let svc = create(&ecs, &c, serde_json::json!({}));
        assert_eq!(svc.status.as_deref(), Some("ACTIVE"));
        let deps = svc.deployments.unwrap();
        assert_eq!(deps.len(), 1);
        assert_eq!(deps[0].status.as_deref(), Some("PRIMARY"));
        assert_eq!(
            deps[0].rollout_state,
            Some(s::DeploymentRolloutState::InProgress)
        );
        let first = deps[0].id.clone().unwrap();
        assert!(
            first.starts_with("ecs-svc/") && first.len() == 27,
            "{first}"
        );
        let dc = svc.deployment_configuration.unwrap();
        assert_eq!(
            (dc.maximum_percent, dc.minimum_healthy_percent),
            (Some(200), Some(100))
        );
        // A second create is not idempotent.
        let again: s::CreateServiceRequest = serde_json::from_value(serde_json::json!({
            "cluster": "c", "serviceName": "web", "taskDefinition": "web:1", "desiredCount": 1,
            "launchType": "FARGATE",
            "networkConfiguration": {"awsvpcConfiguration": {"subnets": [crate::test_support::default_subnet(&ecs.store, &c)]}}
        }))
        .unwrap();
        let e = ecs.create_service(&c, again).unwrap_err();
        assert_eq!(e.message, "Creation of service was not idempotent.");

        let now = c.now.millis();
        tick(&ecs, now);
        let tasks = tasks_of(&ecs, &c);
        assert_eq!(tasks.len(), 2);
        for t in &tasks {
            assert_eq!(t.task.started_by.as_deref(), Some(first.as_str()));
            assert_eq!(t.task.group.as_deref(), Some("service:web"));
        }
        let d = describe(&ecs, &c);
        assert_eq!(d.pending_count, Some(2));
        let started = d.events.as_ref().unwrap()[0].message.clone().unwrap();
        assert!(
            started.starts_with("(service web) has started 2 tasks: (task "),
            "{started}"
        );
        assert_eq!(d.tags.unwrap().len(), 1);
        for t in &tasks {
            report(&ecs, &c, t, "RUNNING");
        }
        tick(&ecs, now + 1000);
        let d = describe(&ecs, &c);
        assert_eq!((d.running_count, d.desired_count), (Some(2), Some(2)));
        assert_eq!(
            d.events.as_ref().unwrap()[0].message.as_deref(),
            Some("(service web) has reached a steady state.")
        );
        let dep = &d.deployments.as_ref().unwrap()[0];
        assert_eq!(
            dep.rollout_state,
            Some(s::DeploymentRolloutState::Completed)
        );
        assert_eq!(
            dep.rollout_state_reason.as_deref(),
            Some(format!("ECS deployment {first} completed.").as_str())
        );

        // The cluster counts the service and refuses to be deleted.
        let cl = ecs
            .describe_clusters(
                &c,
                s::DescribeClustersRequest {
                    clusters: Some(vec!["c".into()]),
                    include: None,
                },
            )
            .unwrap()
            .clusters
            .unwrap()
            .remove(0);
        assert_eq!(cl.active_services_count, Some(1));
        let e = ecs
            .delete_cluster(
                &c,
                s::DeleteClusterRequest {
                    cluster: "c".into(),
                },
            )
            .unwrap_err();
        assert_eq!(e.code, "ClusterContainsServicesException");

        // A new revision: two new tasks first (200%), the old ones stop once they run.
        let upd: s::UpdateServiceRequest = serde_json::from_value(serde_json::json!({
            "cluster": "c", "service": "web", "taskDefinition": "web:2"
        }))
        .unwrap();
        let u = ecs.update_service(&c, upd).unwrap().service.unwrap();
        assert_eq!(u.deployments.as_ref().unwrap().len(), 2);
        tick(&ecs, now + 2000);
        let all = tasks_of(&ecs, &c);
        assert_eq!(all.len(), 4);
        let new: Vec<_> = all
            .iter()
            .filter(|t| t.task.started_by.as_deref() != Some(first.as_str()))
            .cloned()
            .collect();
        assert_eq!(new.len(), 2);
        assert!(
            all.iter()
                .all(|t| t.desired_status() == TaskStatus::Running)
        );
        for t in &new {
            report(&ecs, &c, t, "RUNNING");
        }
        tick(&ecs, now + 3000);
        let old: Vec<_> = tasks_of(&ecs, &c)
            .into_iter()
            .filter(|t| t.task.started_by.as_deref() == Some(first.as_str()))
            .collect();
        for t in &old {
            assert_eq!(t.desired_status(), TaskStatus::Stopped);
            assert_eq!(
                t.task.stop_code,
                Some(s::TaskStopCode::ServiceSchedulerInitiated)
            );
            assert!(
                t.task
                    .stopped_reason
                    .as_deref()
                    .unwrap()
                    .starts_with("Scaling activity initiated by (deployment ecs-svc/")
            );
            report(&ecs, &c, t, "STOPPED");
        }
        tick(&ecs, now + 4000);
        let d = describe(&ecs, &c);
        let deps = d.deployments.unwrap();
        assert_eq!(deps.len(), 1, "{deps:?}");
        assert_eq!(
            deps[0].rollout_state,
            Some(s::DeploymentRolloutState::Completed)
        );
        assert_eq!(
            d.task_definition.as_deref().map(|t| t.ends_with("web:2")),
            Some(true)
        );
        let listed = ecs
            .list_service_deployments(
                &c,
                s::ListServiceDeploymentsRequest {
                    cluster: Some("c".into()),
                    service: "web".into(),
                    ..Default::default()
                },
            )
            .unwrap()
            .service_deployments
            .unwrap();
        assert_eq!(listed.len(), 2);
        assert!(
            listed
                .iter()
                .all(|b| b.status == Some(s::ServiceDeploymentStatus::Successful))
        );
        let described = ecs
            .describe_service_deployments(
                &c,
                s::DescribeServiceDeploymentsRequest {
                    service_deployment_arns: vec![
                        listed[0].service_deployment_arn.clone().unwrap(),
                        "arn:aws:ecs:us-east-1:123456789012:service-deployment/c/web/nope".into(),
                    ],
                },
            )
            .unwrap();
        assert_eq!(described.service_deployments.unwrap().len(), 1);
        assert_eq!(
            described.failures.unwrap()[0].reason.as_deref(),
            Some("MISSING")
        );

        // Deleting needs force (or desiredCount 0); then DRAINING, then INACTIVE.
        let del = |force| {
            ecs.delete_service(
                &c,
                s::DeleteServiceRequest {
                    cluster: Some("c".into()),
                    service: "web".into(),
                    force,
                },
            )
        };
        assert_eq!(
            del(None).unwrap_err().message,
            "The service cannot be stopped while it is scaled above 0."
        );
        assert_eq!(
            del(Some(true)).unwrap().service.unwrap().status.as_deref(),
            Some("DRAINING")
        );
        tick(&ecs, now + 5000);
        for t in tasks_of(&ecs, &c) {
            if t.last_status() != TaskStatus::Stopped {
                assert_eq!(t.desired_status(), TaskStatus::Stopped);
                report(&ecs, &c, &t, "STOPPED");
            }
        }
        tick(&ecs, now + 6000);
        assert_eq!(describe(&ecs, &c).status.as_deref(), Some("INACTIVE"));
        let listed = ecs
            .list_services(
                &c,
                s::ListServicesRequest {
                    cluster: Some("c".into()),
                    ..Default::default()
                },
            )
            .unwrap();
        assert!(listed.service_arns.unwrap().is_empty());
    }

    #[test]
    fn failing_tasks_trip_the_circuit_breaker_and_roll_back() {
        let (ecs, c) = setup();
        create(
            &ecs,
            &c,
            serde_json::json!({"desiredCount": 1, "deploymentConfiguration": {
                "deploymentCircuitBreaker": {"enable": true, "rollback": true}}}),
        );
        let mut now = c.now.millis();
        tick(&ecs, now);
        for t in tasks_of(&ecs, &c) {
            report(&ecs, &c, &t, "RUNNING");
        }
        now += 1000;
        tick(&ecs, now);
        let good = describe(&ecs, &c).deployments.unwrap()[0]
            .id
            .clone()
            .unwrap();
        let upd: s::UpdateServiceRequest = serde_json::from_value(serde_json::json!({
            "cluster": "c", "service": "web", "taskDefinition": "web:2"
        }))
        .unwrap();
        ecs.update_service(&c, upd).unwrap();
        // Each new task fails to start; ECS's threshold for 1 task is 3.
        for _ in 0..3 {
            now += 1000;
            tick(&ecs, now);
            for t in tasks_of(&ecs, &c) {
                if t.last_status() == TaskStatus::Provisioning {
                    report(&ecs, &c, &t, "STOPPED");
                }
            }
        }
        now += 1000;
        tick(&ecs, now);
        let d = describe(&ecs, &c);
        let deps = d.deployments.unwrap();
        let primary = &deps[0];
        assert_eq!(primary.status.as_deref(), Some("PRIMARY"));
        assert_eq!(
            primary.rollout_state_reason.as_deref(),
            Some(
                format!("ECS deployment circuit breaker: rolling back to deploymentId {good}.")
                    .as_str()
            )
        );
        assert!(
            primary
                .task_definition
                .as_deref()
                .unwrap()
                .ends_with("web:1")
        );
        let failed = deps
            .iter()
            .find(|x| x.rollout_state == Some(s::DeploymentRolloutState::Failed))
            .unwrap();
        assert_eq!(failed.failed_tasks, Some(3));
        assert_eq!(
            failed.rollout_state_reason.as_deref(),
            Some("ECS deployment circuit breaker: tasks failed to start.")
        );
        let events: Vec<_> = d
            .events
            .unwrap()
            .into_iter()
            .filter_map(|e| e.message)
            .collect();
        assert!(
            events
                .iter()
                .any(|e| e.ends_with("deployment failed: tasks failed to start.")),
            "{events:?}"
        );
    }
}
