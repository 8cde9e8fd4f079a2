//! The service controller: runs `berth_control::reconcile` on every service and applies its
//! actions, one store transaction per service. It runs when woken (a task changed state, a
//! service or container instance changed: see `Notifier::wake_controller`) and on a short
//! timer for what only time changes (grace periods, backoff, lost agents).

use std::sync::Arc;
use std::time::Duration;

use berth_control as control;
use berth_model::lifecycle::{TaskStatus, advance_desired};
use berth_scheduler as sched;
use berth_store::{Scope, StoreError, Tx};
use berth_wire::ecs::shapes as s;
use berth_wire::{RequestContext, Timestamp};

use super::Ecs;
use super::cluster_index::ClusterIndex;
use super::common::kind;
use super::placement;
use super::services::{self, NewDeployment, SERVICE, StoredService};
use super::task_definitions;
use super::tasks::{self, StoredTask, task_kind};
use crate::failure::Failure;

/// How long an instance's agent may stay disconnected before its service tasks are
/// replaced elsewhere, unless configured.
pub const DEFAULT_INSTANCE_LOST_AFTER_SECONDS: u64 = 120;

/// The controller's settings.
#[derive(Debug, Clone, Copy)]
pub struct ControllerConfig {
    pub instance_lost_after: Duration,
    /// The timer between passes when nothing wakes the controller.
    pub tick: Duration,
}

impl Default for ControllerConfig {
    fn default() -> ControllerConfig {
        ControllerConfig {
            instance_lost_after: Duration::from_secs(DEFAULT_INSTANCE_LOST_AFTER_SECONDS),
            tick: Duration::from_secs(1),
        }
    }
}

/// The circuit breaker's threshold rule (`thresholdConfiguration`, else ECS's default).
pub fn threshold(cb: Option<&s::DeploymentCircuitBreaker>) -> control::Threshold {
    match cb.and_then(|b| b.threshold_configuration.as_ref()) {
        None => control::Threshold::default(),
        Some(t) => {
            let v = u32::try_from(t.value.max(1)).unwrap_or(1);
            match t.r#type {
                s::ThresholdType::Count => control::Threshold::Count(v),
                s::ThresholdType::BoundedPercent => control::Threshold::BoundedPercent(v),
                s::ThresholdType::UnboundedPercent => control::Threshold::UnboundedPercent(v),
            }
        }
    }
}

/// Runs the controller until `stop` turns true.
pub async fn run(
    app: Arc<crate::App>,
    config: ControllerConfig,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let ecs = &app.ecs;
    loop {
        let a = app.clone();
        let passed =
            tokio::task::spawn_blocking(move || reconcile_all(&a.ecs, Timestamp::now(), &config))
                .await;
        match passed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "the service controller's pass failed"),
            Err(e) => tracing::error!(error = %e, "the service controller's pass panicked"),
        }
        tokio::select! {
            _ = ecs.notifier.controller_woken() => {}
            _ = tokio::time::sleep(config.tick) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

/// One pass over every service of every account and region.
pub fn reconcile_all(
    ecs: &Ecs,
    now: Timestamp,
    config: &ControllerConfig,
) -> Result<(), StoreError> {
    let mut ids = Vec::new();
    ecs.store.read(|tx| -> Result<(), StoreError> {
        let mut after: Option<(String, String, String)> = None;
        loop {
            let chunk = tx.list_everywhere(
                SERVICE,
                after
                    .as_ref()
                    .map(|(a, r, i)| (a.as_str(), r.as_str(), i.as_str())),
                256,
            )?;
            for (a, r, rec) in &chunk {
                if rec.decode::<StoredService>(SERVICE)?.status() != "INACTIVE" {
                    ids.push((a.clone(), r.clone(), rec.id.clone()));
                }
            }
            if chunk.len() < 256 {
                return Ok(());
            }
            after = chunk
                .last()
                .map(|(a, r, rec)| (a.clone(), r.clone(), rec.id.clone()));
        }
    })?;
    for (account, region, id) in ids {
        // A launch planned from a stale view of an instance conflicts: planned again.
        let hosts = tasks::with_replanning(
            tasks::PLAN_ATTEMPTS,
            || {
                ecs.store.write(|tx| -> Result<Vec<String>, Failure> {
                    reconcile_one(tx, &ecs.index, &account, &region, &id, now, config)
                })
            },
            |stale| {
                ecs.index
                    .invalidate(Scope::new(&account, &region), &[stale.to_string()])
            },
        );
        match hosts {
            Ok(hosts) => {
                for h in hosts {
                    ecs.notifier.notify(&h);
                }
            }
            Err(Failure::Store(StoreError::Conflict { .. })) => {}
            Err(Failure::Store(e)) => return Err(e),
            Err(Failure::Aws(e)) => {
                tracing::warn!(service = %id, error = %e.message, "cannot reconcile the service");
            }
        }
    }
    Ok(())
}

/// The identity the scheduler acts as in the service's account and region.
fn scheduler_context(account: &str, region: &str, now: Timestamp) -> RequestContext {
    RequestContext {
        account_id: account.to_string(),
        region: region.to_string(),
        principal_arn: format!(
            "arn:aws:iam::{account}:role/aws-service-role/ecs.amazonaws.com/AWSServiceRoleForECS"
        ),
        access_key_id: String::new(),
        request_id: uuid::Uuid::new_v4().to_string(),
        source_ip: "ecs.amazonaws.com".into(),
        user_agent: "ecs.amazonaws.com".into(),
        now,
    }
}

fn phase(t: &StoredTask) -> control::TaskPhase {
    let st = t.last_status();
    if st >= TaskStatus::Stopped {
        control::TaskPhase::Stopped
    } else if st >= TaskStatus::Running {
        control::TaskPhase::Running
    } else {
        control::TaskPhase::Pending
    }
}

const HEALTH_REASON: &str = "Task failed container health checks";

/// The task as the reconciler sees it.
fn control_task(t: &StoredTask) -> control::Task {
    let phase = phase(t);
    let scheduler_stop = matches!(
        t.task.stop_code,
        Some(s::TaskStopCode::ServiceSchedulerInitiated | s::TaskStopCode::UserInitiated)
    );
    let health_stop = t.task.stopped_reason.as_deref() == Some(HEALTH_REASON);
    control::Task {
        id: t.id(),
        deployment: t.task.started_by.clone().unwrap_or_default(),
        instance: t.container_instance.clone(),
        phase,
        desired_stopped: t.desired_status() == TaskStatus::Stopped,
        started_at_ms: t.task.started_at.map(|a| a.millis()),
        health: match t.task.health_status {
            Some(s::HealthStatus::Healthy) => control::Health::Healthy,
            Some(s::HealthStatus::Unhealthy) => control::Health::Unhealthy,
            _ => control::Health::Unknown,
        },
        failed: phase == control::TaskPhase::Stopped && (health_stop || !scheduler_stop),
    }
}

fn deployment_status(s: &str) -> control::DeploymentStatus {
    match s {
        "PRIMARY" => control::DeploymentStatus::Primary,
        "ACTIVE" => control::DeploymentStatus::Active,
        _ => control::DeploymentStatus::Inactive,
    }
}

fn rollout(r: Option<s::DeploymentRolloutState>) -> control::RolloutState {
    match r {
        Some(s::DeploymentRolloutState::Completed) => control::RolloutState::Completed,
        Some(s::DeploymentRolloutState::Failed) => control::RolloutState::Failed,
        _ => control::RolloutState::InProgress,
    }
}

/// The container instances of `cluster` (ACTIVE and DRAINING) as the reconciler sees them;
/// `rules` are the daemon's constraints.
fn control_instances(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    cluster: &str,
    rules: Option<&[sched::Constraint]>,
) -> Result<Vec<control::Instance>, Failure> {
    let scope_ = Scope::new(&ctx.account_id, &ctx.region);
    let mut out = Vec::new();
    for (id, mut ci) in tx.list_json::<s::ContainerInstance>(
        scope_,
        kind::CONTAINER_INSTANCE,
        &format!("{cluster}/"),
    )? {
        let status = match ci.status.as_deref() {
            Some("ACTIVE") => control::InstanceStatus::Active,
            Some("DRAINING") => control::InstanceStatus::Draining,
            _ => continue,
        };
        let last_seen_ms = tasks::last_poll(tx, &tasks::instance_host(scope_, &id))?;
        let eligible = match rules {
            None => true,
            Some(constraints) => {
                let request = sched::Request {
                    count: 1,
                    constraints: constraints.to_vec(),
                    ..Default::default()
                };
                tasks::with_usage(tx, scope_, &id, &mut ci)?;
                let usage = super::instance_usage::InstanceUsage::of(&ci);
                let i = placement::instance(&id, &ci, &usage, true, sched::HeldTasks::default());
                sched::check(&i, &request).is_none()
            }
        };
        out.push(control::Instance {
            id,
            status,
            last_seen_ms,
            eligible,
        });
    }
    Ok(out)
}

/// ECS's event for a task the engine could not place.
fn placement_event(service: &str, why: &sched::Refusal) -> String {
    use control::messages::{Closest, unable_to_place};
    match why {
        sched::Refusal::NoInstances => unable_to_place(service, None, &Closest::NoInstances),
        sched::Refusal::Instance { id, reason, .. } => {
            let short = id.rsplit('/').next().unwrap_or(id);
            let closest = match reason {
                sched::Reason::Memory => Closest::Memory,
                sched::Reason::Cpu => Closest::Cpu,
                sched::Reason::Ports | sched::Reason::PortsUdp => Closest::Ports,
                sched::Reason::MissingAttribute(_) => Closest::Attribute,
                sched::Reason::Gpu => Closest::Gpu,
                other => Closest::Error(other.as_str().to_string()),
            };
            unable_to_place(service, Some(short), &closest)
        }
    }
}

/// One service's pass: snapshot, reconcile, apply. Returns the hosts to wake.
fn reconcile_one(
    tx: &mut Tx<'_>,
    index: &Arc<ClusterIndex>,
    account: &str,
    region: &str,
    id: &str,
    now: Timestamp,
    config: &ControllerConfig,
) -> Result<Vec<String>, Failure> {
    let scope_ = Scope::new(account, region);
    let Some((mut svc, v)) = tx.get_json::<StoredService>(scope_, SERVICE, id)? else {
        return Ok(Vec::new());
    };
    if svc.status() == "INACTIVE" {
        return Ok(Vec::new());
    }
    let before = svc.clone();
    let ctx = scheduler_context(account, region, now);
    let cluster_name = id.split('/').next().unwrap_or("").to_string();
    let Some((cluster, _)) = tx.get_json::<s::Cluster>(scope_, kind::CLUSTER, &cluster_name)?
    else {
        return Ok(Vec::new());
    };
    let name = svc.name().to_string();
    let daemon = svc.service.scheduling_strategy == Some(s::SchedulingStrategy::Daemon);
    let stored_tasks = services::service_tasks(tx, &ctx, &cluster_name, &name)?;
    let ctasks: Vec<control::Task> = stored_tasks.iter().map(|(_, t)| control_task(t)).collect();
    // The daemon's constraints: its task definition's and the service's.
    let rules = if daemon {
        let td = svc
            .primary()
            .and_then(|p| p.deployment.task_definition.clone())
            .unwrap_or_default();
        let td = match task_definitions::parse_ident(&ctx, &td)? {
            Some(i) => task_definitions::resolve(tx, &ctx, &i)?.map(|(t, _)| t.task_definition),
            None => None,
        }
        .unwrap_or_default();
        Some(placement::rules(&td, svc.service.placement_constraints.as_deref(), None)?.0)
    } else {
        None
    };
    let instances = control_instances(tx, &ctx, &cluster_name, rules.as_deref())?;
    let conf = svc
        .service
        .deployment_configuration
        .clone()
        .unwrap_or_default();
    let cb = conf
        .deployment_circuit_breaker
        .as_ref()
        .filter(|b| b.enable);
    let cservice = control::Service {
        name: name.clone(),
        strategy: if daemon {
            control::SchedulingStrategy::Daemon
        } else {
            control::SchedulingStrategy::Replica
        },
        status: if svc.status() == "DRAINING" {
            control::ServiceStatus::Draining
        } else {
            control::ServiceStatus::Active
        },
        desired_count: u32::try_from(svc.service.desired_count.unwrap_or(0)).unwrap_or(0),
        minimum_healthy_percent: u32::try_from(conf.minimum_healthy_percent.unwrap_or(100))
            .unwrap_or(100),
        maximum_percent: u32::try_from(conf.maximum_percent.unwrap_or(200)).unwrap_or(200),
        circuit_breaker: cb.map(|b| control::CircuitBreaker {
            rollback: b.rollback,
            threshold: threshold(Some(b)),
        }),
        health_check_grace_period_ms: i64::from(
            svc.service.health_check_grace_period_seconds.unwrap_or(0),
        ) * 1000,
        steady_reported: svc.steady_reported,
        retry_placement_at_ms: svc.retry_placement_at_ms,
        instance_lost_after_ms: i64::try_from(config.instance_lost_after.as_millis())
            .unwrap_or(i64::MAX),
    };
    let cdeployments: Vec<control::Deployment> = svc
        .deployments
        .iter()
        .map(|d| control::Deployment {
            id: d.id().to_string(),
            status: deployment_status(d.status()),
            rollout_state: rollout(d.deployment.rollout_state),
            failed_tasks: u32::try_from(d.deployment.failed_tasks.unwrap_or(0)).unwrap_or(0),
            health_checked: d.health_checked,
            created_at_ms: d.deployment.created_at.map_or(0, |t| t.millis()),
        })
        .collect();
    let actions = control::reconcile(&cservice, &cdeployments, &ctasks, &instances, now.millis());
    let mut hosts = Vec::new();
    let mut started = Vec::new();
    let mut stopped = Vec::new();
    let mut events = Vec::new();
    // What this pass's launches take on instances, written once at the end.
    let mut reservations = tasks::Reservations::default();
    for action in actions {
        match action {
            control::Action::Start { deployment, count } => launch(
                tx,
                index,
                &mut reservations,
                &ctx,
                &cluster,
                &mut svc,
                &deployment,
                count as usize,
                None,
                &mut started,
                &mut hosts,
                &mut events,
            )?,
            control::Action::StartOn {
                deployment,
                instance,
            } => launch(
                tx,
                index,
                &mut reservations,
                &ctx,
                &cluster,
                &mut svc,
                &deployment,
                1,
                Some(&instance),
                &mut started,
                &mut hosts,
                &mut events,
            )?,
            control::Action::Stop { task, reason } => {
                let tid = format!("{cluster_name}/{task}");
                if let Some((mut t, tv)) =
                    tx.get_json::<StoredTask>(scope_, task_kind::TASK, &tid)?
                    && t.desired_status() != TaskStatus::Stopped
                {
                    t.task.desired_status = Some(
                        advance_desired(t.desired_status(), TaskStatus::Stopped)
                            .as_str()
                            .into(),
                    );
                    t.task.stop_code = Some(s::TaskStopCode::ServiceSchedulerInitiated);
                    t.task.stopped_reason = Some(control::messages::stopped_reason(&reason));
                    t.task.stopping_at = Some(now);
                    t.task.version = Some(t.task.version.unwrap_or(1) + 1);
                    tx.put(scope_, task_kind::TASK, &tid, Some(tv), &t)?;
                    tasks::touch_host_task(tx, scope_, &tid, &t)?;
                    if !hosts.contains(&t.host) {
                        hosts.push(t.host.clone());
                    }
                    if reason == control::StopReason::HealthCheck {
                        events.push(control::messages::health_check_failed(&name, &task));
                    }
                    stopped.push(task);
                }
            }
            control::Action::SetStatus { deployment, status } => {
                if let Some(d) = svc.deployment_mut(&deployment) {
                    d.deployment.status = Some(status.as_str().into());
                    d.deployment.updated_at = Some(now);
                }
            }
            control::Action::SetRollout {
                deployment,
                state,
                reason,
            } => {
                let rollback_of = svc
                    .deployment_mut(&deployment)
                    .and_then(|d| d.rollback_of.clone());
                if let Some(d) = svc.deployment_mut(&deployment) {
                    d.deployment.updated_at = Some(now);
                    d.deployment.rollout_state_reason = Some(reason);
                    match state {
                        control::RolloutState::Completed => {
                            d.deployment.rollout_state = Some(s::DeploymentRolloutState::Completed);
                            d.service_deployment_status = s::ServiceDeploymentStatus::Successful;
                            d.finished_at = Some(now);
                            events
                                .push(control::messages::deployment_completed(&name, &deployment));
                        }
                        control::RolloutState::Failed => {
                            d.deployment.rollout_state = Some(s::DeploymentRolloutState::Failed);
                            d.service_deployment_status = s::ServiceDeploymentStatus::Stopped;
                            d.status_reason = d.deployment.rollout_state_reason.clone();
                            d.stopped_at = Some(now);
                            events.push(control::messages::deployment_failed(&name, &deployment));
                        }
                        control::RolloutState::InProgress => {
                            d.deployment.rollout_state =
                                Some(s::DeploymentRolloutState::InProgress);
                        }
                    }
                }
                if state == control::RolloutState::Completed
                    && let Some(f) = rollback_of.and_then(|f| svc.deployment_mut(&f))
                {
                    f.service_deployment_status = s::ServiceDeploymentStatus::RollbackSuccessful;
                    f.finished_at = Some(now);
                }
            }
            control::Action::SetFailedTasks { deployment, count } => {
                if let Some(d) = svc.deployment_mut(&deployment) {
                    d.deployment.failed_tasks = Some(i32::try_from(count).unwrap_or(i32::MAX));
                }
            }
            control::Action::Rollback { failed, to } => {
                let Some(target) = svc.deployments.iter().find(|d| d.id() == to).cloned() else {
                    continue;
                };
                svc.service.task_definition = target.deployment.task_definition.clone();
                services::start_deployment(
                    &mut svc,
                    &ctx,
                    &cluster_name,
                    NewDeployment {
                        task_definition: target.deployment.task_definition.as_deref().unwrap_or(""),
                        health_checked: target.health_checked,
                        rollback_of: Some(failed.clone()),
                        reason: Some(control::messages::rollout_rolling_back(&to)),
                    },
                );
                if let Some(f) = svc.deployment_mut(&failed) {
                    f.service_deployment_status = s::ServiceDeploymentStatus::RollbackInProgress;
                    f.stopped_at = None;
                    f.rollback = Some(s::Rollback {
                        reason: Some(control::messages::rollout_failed()),
                        service_revision_arn: Some(target.revision_arn.clone()),
                        started_at: Some(now),
                    });
                }
                events.push(control::messages::rolling_back(&name, &to));
            }
            control::Action::SetDesiredCount(n) => {
                let n = i32::try_from(n).unwrap_or(i32::MAX);
                svc.service.desired_count = Some(n);
                if let Some(p) = svc.deployments.iter_mut().find(|d| d.status() == "PRIMARY") {
                    p.deployment.desired_count = Some(n);
                }
            }
            control::Action::SteadyState => {
                svc.steady_reported = true;
                events.push(control::messages::steady_state(&name));
            }
            control::Action::Unsteady => svc.steady_reported = false,
            control::Action::ServiceInactive => {
                svc.service.status = Some("INACTIVE".into());
                for d in &mut svc.deployments {
                    d.deployment.status = Some("INACTIVE".into());
                }
            }
        }
    }
    if !stopped.is_empty() {
        svc.event(now, control::messages::stopped(&name, &stopped));
    }
    if !started.is_empty() {
        svc.event(now, control::messages::started(&name, &started));
    }
    for e in events {
        svc.event(now, e);
    }
    reservations.apply(tx, scope_, index)?;
    if svc != before {
        tx.put(scope_, SERVICE, id, Some(v), &svc)?;
    }
    Ok(hosts)
}

/// Launches `count` tasks of `deployment` (on `instance` for a daemon); a failure to place
/// becomes ECS's event and a backoff.
#[allow(clippy::too_many_arguments)]
fn launch(
    tx: &mut Tx<'_>,
    index: &Arc<ClusterIndex>,
    reservations: &mut tasks::Reservations,
    ctx: &RequestContext,
    cluster: &s::Cluster,
    svc: &mut StoredService,
    deployment: &str,
    count: usize,
    instance: Option<&str>,
    started: &mut Vec<String>,
    hosts: &mut Vec<String>,
    events: &mut Vec<String>,
) -> Result<(), Failure> {
    let Some(d) = svc
        .deployments
        .iter()
        .find(|d| d.id() == deployment)
        .cloned()
    else {
        return Ok(());
    };
    let name = svc.name().to_string();
    let tags = if svc.service.propagate_tags == Some(s::PropagateTags::Service) {
        svc.service.tags.clone().unwrap_or_default()
    } else {
        Vec::new()
    };
    let td = d.deployment.task_definition.clone().unwrap_or_default();
    let l = tasks::ServiceLaunch {
        ctx,
        cluster,
        task_definition: &td,
        launch_type: d.deployment.launch_type,
        capacity_provider_strategy: d.deployment.capacity_provider_strategy.as_deref(),
        network_configuration: d.deployment.network_configuration.as_ref(),
        placement_constraints: svc.service.placement_constraints.as_deref(),
        placement_strategy: svc.service.placement_strategy.as_deref(),
        group: format!("service:{name}"),
        started_by: deployment.to_string(),
        tags,
        propagate_tags: svc.service.propagate_tags,
        managed_tags: svc.service.enable_ecs_managed_tags.unwrap_or(false),
        count,
        on_instance: instance,
    };
    let problem = match tasks::launch_for_service(tx, index, &l, reservations) {
        Ok(out) => {
            started.extend(out.task_ids);
            for h in out.hosts {
                if !hosts.contains(&h) {
                    hosts.push(h);
                }
            }
            out.refusals.first().map(|r| placement_event(&name, r))
        }
        Err(Failure::Aws(e)) => Some(format!(
            "(service {name}) failed to launch a task with (error {}).",
            e.message
        )),
        Err(e) => return Err(e),
    };
    match problem {
        Some(message) => {
            svc.placement_failures += 1;
            svc.retry_placement_at_ms =
                Some(ctx.now.millis() + control::placement_backoff_ms(svc.placement_failures));
            events.push(message);
        }
        None => {
            svc.placement_failures = 0;
            svc.retry_placement_at_ms = None;
        }
    }
    Ok(())
}
