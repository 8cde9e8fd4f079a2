//! The reconciler: one service's snapshot and the clock in, actions out.

use std::collections::{HashMap, HashSet};

use crate::messages;
use crate::model::{
    Action, Deployment, DeploymentStatus, Health, Instance, InstanceStatus, RolloutState,
    SchedulingStrategy, Service, ServiceStatus, StopReason, Task, TaskPhase, Threshold,
};

/// `ceil(count * percent / 100)`.
fn ceil_percent(count: u32, percent: u32) -> u32 {
    let v = (u64::from(count) * u64::from(percent)).div_ceil(100);
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// `floor(count * percent / 100)`.
fn floor_percent(count: u32, percent: u32) -> u32 {
    let v = u64::from(count) * u64::from(percent) / 100;
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// The number of failed tasks at which the circuit breaker fails a deployment of
/// `desired` tasks. ECS's default (BOUNDED_PERCENT 50) is `max(3, min(200, ceil(0.5 ×
/// desired)))`.
pub fn circuit_breaker_threshold(threshold: Threshold, desired: u32) -> u32 {
    match threshold {
        Threshold::BoundedPercent(v) => ceil_percent(desired, v).clamp(3, 200),
        Threshold::UnboundedPercent(v) => ceil_percent(desired, v).max(1),
        Threshold::Count(v) => v.max(1),
    }
}

/// How long the scheduler waits before placing again after `failures` placement failures in
/// a row: 1 s, doubling, at most 60 s.
pub fn placement_backoff_ms(failures: u32) -> i64 {
    (1000i64 << failures.saturating_sub(1).min(6)).min(60_000)
}

/// What one pass knows and has decided so far.
struct Pass<'a> {
    service: &'a Service,
    now: i64,
    deployments: HashMap<&'a str, &'a Deployment>,
    primary: Option<&'a Deployment>,
    /// Tasks that are not STOPPED and not on a lost instance.
    live: Vec<&'a Task>,
    /// Tasks this pass stops.
    stopping: HashSet<&'a str>,
    /// The DRAINING container instances.
    draining: HashSet<&'a str>,
    actions: Vec<Action>,
}

impl<'a> Pass<'a> {
    fn stop(&mut self, t: &'a Task, reason: StopReason) {
        if self.stopping.insert(&t.id) {
            self.actions.push(Action::Stop {
                task: t.id.clone(),
                reason,
            });
        }
    }

    fn scaling(&self) -> StopReason {
        StopReason::Scaling {
            deployment: self.primary.map(|p| p.id.clone()).unwrap_or_default(),
        }
    }

    /// The task should keep running (its desired status is RUNNING and this pass keeps it).
    fn wanted(&self, t: &Task) -> bool {
        !t.desired_stopped && !self.stopping.contains(t.id.as_str())
    }

    fn is_primary(&self, t: &Task) -> bool {
        self.primary.is_some_and(|p| p.id == t.deployment)
    }

    /// RUNNING and, where its containers define health checks, HEALTHY.
    fn healthy(&self, t: &Task) -> bool {
        let checked = self
            .deployments
            .get(t.deployment.as_str())
            .is_some_and(|d| d.health_checked);
        t.phase == TaskPhase::Running && (!checked || t.health == Health::Healthy)
    }

    /// Whether new tasks may be started now.
    fn may_start(&self) -> bool {
        self.service.status == ServiceStatus::Active
            && self
                .primary
                .is_some_and(|p| p.rollout_state != RolloutState::Failed)
            && self
                .service
                .retry_placement_at_ms
                .is_none_or(|at| self.now >= at)
    }

    /// Orders tasks from the one most worth keeping to the least: healthy, then running,
    /// then by id (deterministic).
    fn by_worth(&self, tasks: &mut [&'a Task]) {
        tasks.sort_by_key(|t| {
            (
                !self.healthy(t),
                t.phase != TaskPhase::Running,
                t.id.clone(),
            )
        });
    }
}

/// The actions that move `service` towards its desired state. See the crate's documentation
/// for the rules.
pub fn reconcile(
    service: &Service,
    deployments: &[Deployment],
    tasks: &[Task],
    instances: &[Instance],
    now_ms: i64,
) -> Vec<Action> {
    let by_id: HashMap<&str, &Instance> = instances.iter().map(|i| (i.id.as_str(), i)).collect();
    // A task's instance is lost when it left the cluster or its agent stayed silent too long.
    let lost = |t: &Task| -> bool {
        t.instance.as_deref().is_some_and(|i| match by_id.get(i) {
            None => true,
            Some(i) => i
                .last_seen_ms
                .is_some_and(|at| now_ms - at > service.instance_lost_after_ms),
        })
    };
    let mut pass = Pass {
        service,
        now: now_ms,
        deployments: deployments.iter().map(|d| (d.id.as_str(), d)).collect(),
        primary: deployments
            .iter()
            .find(|d| d.status == DeploymentStatus::Primary),
        live: Vec::new(),
        stopping: HashSet::new(),
        draining: instances
            .iter()
            .filter(|i| i.status == InstanceStatus::Draining)
            .map(|i| i.id.as_str())
            .collect(),
        actions: Vec::new(),
    };
    for t in tasks.iter().filter(|t| t.phase != TaskPhase::Stopped) {
        if lost(t) {
            if !t.desired_stopped {
                pass.stop(t, StopReason::InstanceLost);
            }
        } else {
            pass.live.push(t);
        }
    }
    // Unhealthy tasks are replaced once the grace period after their start is over.
    let live = pass.live.clone();
    for t in &live {
        let past_grace = t
            .started_at_ms
            .is_none_or(|s| now_ms - s >= service.health_check_grace_period_ms);
        if !t.desired_stopped
            && t.phase == TaskPhase::Running
            && t.health == Health::Unhealthy
            && past_grace
        {
            pass.stop(t, StopReason::HealthCheck);
        }
    }
    let desired = match service.strategy {
        SchedulingStrategy::Replica => replica(&mut pass),
        SchedulingStrategy::Daemon => daemon(&mut pass, instances, now_ms),
    };
    deployments_and_steady_state(&mut pass, deployments, tasks, desired);
    pass.actions
}

/// REPLICA: `desiredCount` tasks of the primary deployment, rolled within the limits.
/// Returns the desired count in force.
fn replica(pass: &mut Pass<'_>) -> u32 {
    let service = pass.service;
    let desired = match service.status {
        ServiceStatus::Active => service.desired_count,
        ServiceStatus::Draining => 0,
    };
    let max_total = floor_percent(desired, service.maximum_percent);
    let min_healthy = ceil_percent(desired, service.minimum_healthy_percent);
    let live = pass.live.clone();
    let draining_instance = |t: &Task| -> bool {
        t.instance
            .as_deref()
            .is_some_and(|i| pass.draining.contains(i))
    };
    let mut keepers: Vec<_> = live
        .iter()
        .copied()
        .filter(|t| pass.wanted(t) && pass.is_primary(t) && !draining_instance(t))
        .collect();
    let mut obsolete: Vec<_> = live
        .iter()
        .copied()
        .filter(|t| pass.wanted(t) && (!pass.is_primary(t) || draining_instance(t)))
        .collect();
    // Scale in: the primary's tasks beyond the desired count, least worth keeping first.
    if keepers.len() > desired as usize {
        pass.by_worth(&mut keepers);
        let reason = pass.scaling();
        for t in keepers.split_off(desired as usize) {
            pass.stop(t, reason.clone());
        }
    }
    // Start what is missing, within maximumPercent of every task not yet STOPPED.
    let occupying = u32::try_from(live.len()).unwrap_or(u32::MAX);
    if pass.may_start()
        && let Some(p) = pass.primary
    {
        let want = desired.saturating_sub(u32::try_from(keepers.len()).unwrap_or(u32::MAX));
        let n = want.min(max_total.saturating_sub(occupying));
        if n > 0 {
            pass.actions.push(Action::Start {
                deployment: p.id.clone(),
                count: n,
            });
        }
    }
    // Stop old tasks (old deployments, draining instances) while minimumHealthyPercent holds.
    // A FAILED primary without rollback freezes the old tasks where they are.
    let frozen = pass
        .primary
        .is_some_and(|p| p.rollout_state == RolloutState::Failed)
        && service.status == ServiceStatus::Active;
    let healthy = keepers.iter().filter(|t| pass.healthy(t)).count()
        + obsolete.iter().filter(|t| pass.healthy(t)).count();
    let mut budget = healthy as i64 - i64::from(min_healthy);
    obsolete.sort_by_key(|t| (pass.healthy(t), t.id.clone()));
    let reason = pass.scaling();
    for t in obsolete {
        if !pass.healthy(t) {
            if !frozen || t.phase != TaskPhase::Running {
                pass.stop(t, reason.clone());
            }
        } else if budget > 0 && !frozen {
            pass.stop(t, reason.clone());
            budget -= 1;
        }
    }
    desired
}

/// DAEMON: one task on every ACTIVE instance that satisfies the constraints. Returns the
/// desired count (the number of such instances).
fn daemon(pass: &mut Pass<'_>, instances: &[Instance], now_ms: i64) -> u32 {
    let service = pass.service;
    let eligible: Vec<&Instance> = instances
        .iter()
        .filter(|i| {
            service.status == ServiceStatus::Active
                && i.status == InstanceStatus::Active
                && i.eligible
                && i.last_seen_ms
                    .is_none_or(|at| now_ms - at <= service.instance_lost_after_ms)
        })
        .collect();
    let desired = u32::try_from(eligible.len()).unwrap_or(u32::MAX);
    if desired != service.desired_count {
        pass.actions.push(Action::SetDesiredCount(desired));
    }
    let min_healthy = ceil_percent(desired, service.minimum_healthy_percent);
    let eligible_ids: HashSet<&str> = eligible.iter().map(|i| i.id.as_str()).collect();
    let live = pass.live.clone();
    let reason = pass.scaling();
    // Tasks off the eligible instances (DRAINING, constraints no longer met) stop.
    for t in &live {
        let on_eligible = t
            .instance
            .as_deref()
            .is_some_and(|i| eligible_ids.contains(i));
        if pass.wanted(t) && !on_eligible {
            pass.stop(t, reason.clone());
        }
    }
    let healthy = live
        .iter()
        .filter(|t| pass.wanted(t) && pass.healthy(t))
        .count();
    let mut budget = healthy as i64 - i64::from(min_healthy);
    let frozen = pass
        .primary
        .is_some_and(|p| p.rollout_state == RolloutState::Failed);
    for i in eligible {
        let on: Vec<&Task> = live
            .iter()
            .copied()
            .filter(|t| t.instance.as_deref() == Some(i.id.as_str()))
            .collect();
        let mut primary: Vec<&Task> = on
            .iter()
            .copied()
            .filter(|t| pass.wanted(t) && pass.is_primary(t))
            .collect();
        let mut old: Vec<&Task> = on
            .iter()
            .copied()
            .filter(|t| pass.wanted(t) && !pass.is_primary(t))
            .collect();
        if !primary.is_empty() {
            pass.by_worth(&mut primary);
            for t in primary.into_iter().skip(1).chain(old) {
                pass.stop(t, reason.clone());
            }
        } else if !old.is_empty() {
            pass.by_worth(&mut old);
            let mut rest = old.into_iter();
            if let Some(first) = rest.next()
                && !frozen
            {
                if !pass.healthy(first) {
                    pass.stop(first, reason.clone());
                } else if budget > 0 {
                    pass.stop(first, reason.clone());
                    budget -= 1;
                }
            }
            for t in rest {
                pass.stop(t, reason.clone());
            }
        } else if on.is_empty()
            && pass.may_start()
            && let Some(p) = pass.primary
        {
            pass.actions.push(Action::StartOn {
                deployment: p.id.clone(),
                instance: i.id.clone(),
            });
        }
    }
    desired
}

/// Deployment transitions, the circuit breaker, the steady state and a drained service.
fn deployments_and_steady_state(
    pass: &mut Pass<'_>,
    deployments: &[Deployment],
    tasks: &[Task],
    desired: u32,
) {
    let live = pass.live.clone();
    let moved = pass.actions.iter().any(|a| {
        matches!(
            a,
            Action::Start { .. } | Action::StartOn { .. } | Action::Stop { .. }
        )
    });
    for d in deployments {
        if d.status == DeploymentStatus::Active && !live.iter().any(|t| t.deployment == d.id) {
            pass.actions.push(Action::SetStatus {
                deployment: d.id.clone(),
                status: DeploymentStatus::Inactive,
            });
        }
    }
    // Every live task is a healthy task of the primary that stays, and there are as many as
    // desired.
    let converged = !moved
        && live.len() == desired as usize
        && live
            .iter()
            .all(|t| pass.wanted(t) && pass.is_primary(t) && pass.healthy(t));
    let mut in_progress = false;
    if let Some(p) = pass.primary {
        let failed = tasks
            .iter()
            .filter(|t| t.deployment == p.id && t.phase == TaskPhase::Stopped && t.failed)
            .count();
        let failed = u32::try_from(failed).unwrap_or(u32::MAX);
        if failed > p.failed_tasks {
            pass.actions.push(Action::SetFailedTasks {
                deployment: p.id.clone(),
                count: failed,
            });
        }
        let failed = failed.max(p.failed_tasks);
        if p.rollout_state == RolloutState::InProgress {
            let tripped = pass.service.circuit_breaker.filter(|cb| {
                failed >= circuit_breaker_threshold(cb.threshold, pass.service.desired_count)
            });
            if let Some(cb) = tripped {
                pass.actions.push(Action::SetRollout {
                    deployment: p.id.clone(),
                    state: RolloutState::Failed,
                    reason: messages::rollout_failed(),
                });
                let to = deployments
                    .iter()
                    .filter(|d| d.id != p.id && d.rollout_state == RolloutState::Completed)
                    .max_by_key(|d| (d.created_at_ms, d.id.clone()));
                if cb.rollback
                    && let Some(to) = to
                {
                    pass.actions.push(Action::Rollback {
                        failed: p.id.clone(),
                        to: to.id.clone(),
                    });
                }
                in_progress = true;
            } else if converged {
                pass.actions.push(Action::SetRollout {
                    deployment: p.id.clone(),
                    state: RolloutState::Completed,
                    reason: messages::rollout_completed(&p.id),
                });
            } else {
                in_progress = true;
            }
        }
    }
    let steady = converged && !in_progress && pass.service.status == ServiceStatus::Active;
    if steady && !pass.service.steady_reported {
        pass.actions.push(Action::SteadyState);
    } else if !steady && pass.service.steady_reported {
        pass.actions.push(Action::Unsteady);
    }
    if pass.service.status == ServiceStatus::Draining && live.is_empty() {
        pass.actions.push(Action::ServiceInactive);
    }
}
