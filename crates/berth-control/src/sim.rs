//! A pure model of a cluster under the reconciler: tasks start (or fail to), become healthy
//! (or not) and stop after random delays; the reconciler's actions are applied as the
//! control plane would. Property tests check ECS's invariants at every step.

use proptest::prelude::*;

use crate::model::*;
use crate::reconcile::{placement_backoff_ms, reconcile};

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// How the tasks of a revision behave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Revision {
    Good,
    /// Its tasks never reach RUNNING.
    FailsToStart,
    /// Its tasks run but never pass their health checks.
    Unhealthy,
}

struct World {
    service: Service,
    deployments: Vec<(Deployment, Revision)>,
    tasks: Vec<Task>,
    instances: Vec<Instance>,
    now: i64,
    next_id: u64,
    /// At most this many tasks that are not STOPPED may be placed (REPLICA).
    capacity: Option<usize>,
    placement_failures: u32,
    rng: Rng,
    /// The healthy count fell below minimumHealthyPercent while capacity existed.
    history: Vec<String>,
}

impl World {
    fn new(service: Service, seed: u64) -> World {
        World {
            service,
            deployments: Vec::new(),
            tasks: Vec::new(),
            instances: Vec::new(),
            now: 1_000_000,
            next_id: 0,
            capacity: None,
            placement_failures: 0,
            rng: Rng(seed | 1),
            history: Vec::new(),
        }
    }

    fn id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}{:04}", self.next_id)
    }

    fn deploy(&mut self, revision: Revision, health_checked: bool) -> String {
        let id = self.id("ecs-svc/");
        for (d, _) in &mut self.deployments {
            if d.status == DeploymentStatus::Primary {
                d.status = DeploymentStatus::Active;
            }
        }
        self.deployments.push((
            Deployment {
                id: id.clone(),
                status: DeploymentStatus::Primary,
                rollout_state: RolloutState::InProgress,
                failed_tasks: 0,
                health_checked,
                created_at_ms: self.now,
            },
            revision,
        ));
        self.service.steady_reported = false;
        id
    }

    fn deployment(&mut self, id: &str) -> &mut (Deployment, Revision) {
        self.deployments
            .iter_mut()
            .find(|(d, _)| d.id == id)
            .expect("deployment exists")
    }

    fn live(&self) -> usize {
        self.tasks
            .iter()
            .filter(|t| t.phase != TaskPhase::Stopped)
            .count()
    }

    fn healthy(&self) -> usize {
        self.tasks
            .iter()
            .filter(|t| {
                let checked = self
                    .deployments
                    .iter()
                    .any(|(d, _)| d.id == t.deployment && d.health_checked);
                !t.desired_stopped
                    && t.phase == TaskPhase::Running
                    && (!checked || t.health == Health::Healthy)
            })
            .count()
    }

    fn new_task(&mut self, deployment: &str, instance: Option<String>) {
        let id = self.id("t");
        self.tasks.push(Task {
            id,
            deployment: deployment.to_string(),
            instance,
            phase: TaskPhase::Pending,
            desired_stopped: false,
            started_at_ms: None,
            health: Health::Unknown,
            failed: false,
        });
    }

    /// One reconcile pass, applied.
    fn reconcile(&mut self) -> Vec<Action> {
        let deployments: Vec<Deployment> =
            self.deployments.iter().map(|(d, _)| d.clone()).collect();
        let actions = reconcile(
            &self.service,
            &deployments,
            &self.tasks,
            &self.instances,
            self.now,
        );
        for a in &actions {
            match a {
                Action::Start { deployment, count } => {
                    let room = self
                        .capacity
                        .map_or(usize::MAX, |c| c.saturating_sub(self.live()));
                    let placed = (*count as usize).min(room);
                    for _ in 0..placed {
                        self.new_task(deployment, None);
                    }
                    if placed < *count as usize {
                        self.placement_failures += 1;
                        self.service.retry_placement_at_ms =
                            Some(self.now + placement_backoff_ms(self.placement_failures));
                    } else {
                        self.placement_failures = 0;
                    }
                }
                Action::StartOn {
                    deployment,
                    instance,
                } => self.new_task(deployment, Some(instance.clone())),
                Action::Stop { task, .. } => {
                    let t = self
                        .tasks
                        .iter_mut()
                        .find(|t| t.id == *task)
                        .expect("task exists");
                    t.desired_stopped = true;
                }
                Action::SetStatus { deployment, status } => {
                    self.deployment(deployment).0.status = *status;
                }
                Action::SetRollout {
                    deployment, state, ..
                } => self.deployment(deployment).0.rollout_state = *state,
                Action::SetFailedTasks { deployment, count } => {
                    self.deployment(deployment).0.failed_tasks = *count;
                }
                Action::Rollback { to, .. } => {
                    let (d, revision) = self.deployment(to).clone();
                    self.deploy(revision, d.health_checked);
                }
                Action::SetDesiredCount(n) => self.service.desired_count = *n,
                Action::SteadyState => self.service.steady_reported = true,
                Action::Unsteady => self.service.steady_reported = false,
                Action::ServiceInactive => {}
            }
        }
        actions
    }

    /// Time passes: tasks move on.
    fn advance(&mut self, crashes: bool) {
        self.now += 1000;
        for i in &mut self.instances {
            if i.last_seen_ms.is_some_and(|at| at >= 0) {
                i.last_seen_ms = Some(self.now);
            }
        }
        let revisions: Vec<(String, Revision)> = self
            .deployments
            .iter()
            .map(|(d, r)| (d.id.clone(), *r))
            .collect();
        for t in &mut self.tasks {
            let revision = revisions
                .iter()
                .find(|(id, _)| *id == t.deployment)
                .map_or(Revision::Good, |(_, r)| *r);
            let rng = &mut self.rng;
            match t.phase {
                TaskPhase::Stopped => {}
                _ if t.desired_stopped => {
                    if rng.chance(60) {
                        t.phase = TaskPhase::Stopped;
                    }
                }
                TaskPhase::Pending => {
                    if rng.chance(50) {
                        if revision == Revision::FailsToStart {
                            t.phase = TaskPhase::Stopped;
                            t.desired_stopped = true;
                            t.failed = true;
                        } else {
                            t.phase = TaskPhase::Running;
                            t.started_at_ms = Some(self.now);
                        }
                    }
                }
                TaskPhase::Running => {
                    if t.health == Health::Unknown && rng.chance(50) {
                        t.health = if revision == Revision::Unhealthy {
                            Health::Unhealthy
                        } else {
                            Health::Healthy
                        };
                    }
                    if crashes && rng.chance(3) {
                        t.phase = TaskPhase::Stopped;
                        t.desired_stopped = true;
                        t.failed = true;
                    }
                }
            }
        }
        // The health-check stops: a stopped unhealthy task counts as failed.
        for t in &mut self.tasks {
            if t.phase == TaskPhase::Stopped && t.health == Health::Unhealthy {
                t.failed = true;
            }
        }
    }

    fn primary(&self) -> &Deployment {
        &self
            .deployments
            .iter()
            .find(|(d, _)| d.status == DeploymentStatus::Primary)
            .expect("a primary deployment")
            .0
    }

    fn settled(&self) -> bool {
        self.primary().rollout_state != RolloutState::InProgress && self.service.steady_reported
            || self.primary().rollout_state == RolloutState::Failed
    }
}

fn service(
    strategy: SchedulingStrategy,
    desired: u32,
    min: u32,
    max: u32,
    cb: Option<CircuitBreaker>,
) -> Service {
    Service {
        name: "web".into(),
        strategy,
        status: ServiceStatus::Active,
        desired_count: desired,
        minimum_healthy_percent: min,
        maximum_percent: max,
        circuit_breaker: cb,
        health_check_grace_period_ms: 2000,
        steady_reported: false,
        retry_placement_at_ms: None,
        instance_lost_after_ms: 30_000,
    }
}

fn limits(desired: u32, min: u32, max: u32) -> (usize, usize) {
    (
        (desired as usize * max as usize) / 100,
        (desired as usize * min as usize).div_ceil(100),
    )
}

/// Runs until the primary deployment settles (at most `steps`), checking after every pass
/// that the tasks not STOPPED stay within maximumPercent and, when `guard_min`, that the
/// healthy ones stay at or above minimumHealthyPercent.
fn run(w: &mut World, steps: usize, guard_min: bool) -> Result<(), TestCaseError> {
    let (max_total, min_healthy) = limits(
        w.service.desired_count,
        w.service.minimum_healthy_percent,
        w.service.maximum_percent,
    );
    for _ in 0..steps {
        w.reconcile();
        prop_assert!(
            w.live() <= max_total,
            "{} tasks not stopped, maximumPercent allows {max_total}; {:?}",
            w.live(),
            w.history
        );
        if guard_min {
            prop_assert!(
                w.healthy() >= min_healthy,
                "{} healthy, minimumHealthyPercent needs {min_healthy}",
                w.healthy()
            );
        }
        if w.settled() {
            return Ok(());
        }
        w.advance(false);
        w.history
            .push(format!("live={} healthy={}", w.live(), w.healthy()));
        if w.history.len() > 12 {
            w.history.remove(0);
        }
    }
    prop_assert!(
        false,
        "the deployment did not settle in {steps} steps: {:?}",
        w.primary()
    );
    Ok(())
}

fn percents() -> impl Strategy<Value = (u32, u32, u32)> {
    (
        1u32..=6,
        prop_oneof![Just(0u32), Just(50), Just(100)],
        prop_oneof![Just(100u32), Just(150), Just(200)],
    )
        .prop_filter(
            "a rolling deployment must be able to move",
            |(d, min, max)| {
                let (max_total, min_healthy) = limits(*d, *min, *max);
                max_total > *d as usize || min_healthy < *d as usize
            },
        )
}

fn revision() -> impl Strategy<Value = Revision> {
    prop_oneof![
        3 => Just(Revision::Good),
        1 => Just(Revision::FailsToStart),
        1 => Just(Revision::Unhealthy),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// A replica service reaches its desired count, then rolls to a new revision: never
    /// above maximumPercent, never below minimumHealthyPercent healthy, and the deployment
    /// ends COMPLETED (good revision) or FAILED (bad revision, circuit breaker); with
    /// rollback, the service is back on a COMPLETED deployment of the old revision.
    #[test]
    fn rolling_deployments_keep_ecs_limits_and_end(
        (desired, min, max) in percents(),
        second in revision(),
        health_checked in any::<bool>(),
        rollback in any::<bool>(),
        seed in any::<u64>(),
    ) {
        let cb = CircuitBreaker { rollback, threshold: Threshold::default() };
        let mut w = World::new(service(SchedulingStrategy::Replica, desired, min, max, Some(cb)), seed);
        // An unhealthy revision only shows as such with health checks.
        let second = if second == Revision::Unhealthy && !health_checked { Revision::FailsToStart } else { second };
        let first = w.deploy(Revision::Good, health_checked);
        run(&mut w, 400, false)?;
        prop_assert_eq!(w.primary().rollout_state, RolloutState::Completed);
        prop_assert_eq!(w.healthy(), desired as usize);
        let second_id = w.deploy(second, health_checked);
        run(&mut w, 2000, true)?;
        let by_id = |id: &str| w.deployments.iter().find(|(d, _)| d.id == id).map(|(d, _)| d.clone()).unwrap();
        match second {
            Revision::Good => {
                prop_assert_eq!(by_id(&second_id).rollout_state, RolloutState::Completed);
                prop_assert_eq!(by_id(&first).status, DeploymentStatus::Inactive);
            }
            _ => {
                prop_assert_eq!(by_id(&second_id).rollout_state, RolloutState::Failed);
                if rollback {
                    // The rollback deployment runs the old revision to completion.
                    run(&mut w, 2000, true)?;
                    prop_assert_ne!(&w.primary().id, &second_id);
                    prop_assert_eq!(w.primary().rollout_state, RolloutState::Completed);
                    prop_assert_eq!(w.healthy(), desired as usize);
                }
            }
        }
        for (d, _) in &w.deployments {
            prop_assert!(d.rollout_state != RolloutState::InProgress, "{:?}", d);
        }
    }

    /// With crashes and limited capacity the service still never exceeds maximumPercent and
    /// converges once capacity suffices.
    #[test]
    fn crashes_and_scarce_capacity_stay_within_maximum(
        (desired, min, max) in percents(),
        seed in any::<u64>(),
        capacity in 0usize..8,
    ) {
        let mut w = World::new(service(SchedulingStrategy::Replica, desired, min, max, None), seed);
        w.capacity = Some(capacity);
        w.deploy(Revision::Good, false);
        let (max_total, _) = limits(desired, min, max);
        for step in 0..300 {
            w.reconcile();
            prop_assert!(w.live() <= max_total);
            w.advance(step < 150);
        }
        w.capacity = None;
        run(&mut w, 600, false)?;
        prop_assert_eq!(w.healthy(), desired as usize);
    }

    /// A daemon service: never two tasks on one instance, one on every ACTIVE instance,
    /// none on DRAINING ones, as instances join, drain and a new revision rolls out.
    #[test]
    fn daemon_has_one_task_per_active_instance(
        n in 1usize..5,
        joins in 0usize..3,
        drain in any::<bool>(),
        min in prop_oneof![Just(0u32), Just(50)],
        seed in any::<u64>(),
    ) {
        // (One instance at 50% could never stop its old task: a daemon's maximum is 100%.)
        let min = if n + joins - usize::from(drain) < 2 { 0 } else { min };
        let mut w = World::new(service(SchedulingStrategy::Daemon, 0, min, 100, None), seed);
        for i in 0..n {
            w.instances.push(Instance { id: format!("i{i}"), status: InstanceStatus::Active, last_seen_ms: Some(0), eligible: true });
        }
        w.deploy(Revision::Good, true);
        let check = |w: &World| -> Result<(), TestCaseError> {
            for i in &w.instances {
                let on = w.tasks.iter().filter(|t| t.phase != TaskPhase::Stopped && t.instance.as_deref() == Some(&i.id)).count();
                prop_assert!(on <= 1, "{} tasks on {}", on, i.id);
            }
            Ok(())
        };
        for step in 0..400 {
            if step == 40 {
                for j in 0..joins {
                    w.instances.push(Instance { id: format!("j{j}"), status: InstanceStatus::Active, last_seen_ms: Some(0), eligible: true });
                }
            }
            if step == 80 && drain {
                w.instances[0].status = InstanceStatus::Draining;
            }
            if step == 120 {
                w.deploy(Revision::Good, true);
            }
            w.reconcile();
            check(&w)?;
            w.advance(false);
        }
        for i in &w.instances {
            let on: Vec<_> = w.tasks.iter().filter(|t| t.phase != TaskPhase::Stopped && t.instance.as_deref() == Some(&i.id)).collect();
            if i.status == InstanceStatus::Active {
                prop_assert_eq!(on.len(), 1);
                prop_assert_eq!(&on[0].deployment, &w.primary().id);
            } else {
                prop_assert_eq!(on.len(), 0);
            }
        }
        prop_assert_eq!(w.primary().rollout_state, RolloutState::Completed);
    }
}

#[test]
fn tasks_of_a_lost_instance_are_replaced_and_stopped_when_it_returns() {
    let mut w = World::new(service(SchedulingStrategy::Replica, 2, 100, 200, None), 7);
    w.instances.push(Instance {
        id: "a".into(),
        status: InstanceStatus::Active,
        last_seen_ms: Some(w.now),
        eligible: true,
    });
    let d = w.deploy(Revision::Good, false);
    w.new_task(&d, Some("a".into()));
    w.new_task(&d, Some("a".into()));
    for t in &mut w.tasks {
        t.phase = TaskPhase::Running;
    }
    assert!(w.reconcile().contains(&Action::SteadyState));
    // The agent goes silent past the timeout: both tasks are stopped and replaced.
    w.instances[0].last_seen_ms = Some(w.now - 31_000);
    let actions = w.reconcile();
    let stops = actions
        .iter()
        .filter(|a| {
            matches!(
                a,
                Action::Stop {
                    reason: StopReason::InstanceLost,
                    ..
                }
            )
        })
        .count();
    assert_eq!(stops, 2);
    assert!(actions.contains(&Action::Start {
        deployment: d.clone(),
        count: 2
    }));
    // It comes back: its tasks (desired STOPPED) count against maximumPercent until they
    // stop, and nothing more starts.
    w.instances[0].last_seen_ms = Some(w.now);
    let actions = w.reconcile();
    assert!(!actions.iter().any(|a| matches!(a, Action::Start { .. })));
}

#[test]
fn draining_moves_replica_tasks_within_the_limits() {
    let mut w = World::new(service(SchedulingStrategy::Replica, 2, 50, 100, None), 3);
    for id in ["a", "b"] {
        w.instances.push(Instance {
            id: id.into(),
            status: InstanceStatus::Active,
            last_seen_ms: Some(w.now),
            eligible: true,
        });
    }
    let d = w.deploy(Revision::Good, false);
    w.new_task(&d, Some("a".into()));
    w.new_task(&d, Some("a".into()));
    for t in &mut w.tasks {
        t.phase = TaskPhase::Running;
    }
    w.instances[0].status = InstanceStatus::Draining;
    let actions = reconcile(
        &w.service,
        &[w.primary().clone()],
        &w.tasks,
        &w.instances,
        w.now,
    );
    // minimumHealthyPercent 50 of 2: one task may stop now, none may start yet (maximum 2).
    let stops = actions
        .iter()
        .filter(|a| matches!(a, Action::Stop { .. }))
        .count();
    assert_eq!(stops, 1);
    assert!(!actions.iter().any(|a| matches!(a, Action::Start { .. })));
}

#[test]
fn thresholds_are_ecs_s() {
    use crate::reconcile::circuit_breaker_threshold as t;
    assert_eq!(t(Threshold::default(), 1), 3);
    assert_eq!(t(Threshold::default(), 10), 5);
    assert_eq!(t(Threshold::default(), 11), 6);
    assert_eq!(t(Threshold::default(), 1000), 200);
    assert_eq!(t(Threshold::Count(1), 1000), 1);
    assert_eq!(placement_backoff_ms(1), 1000);
    assert_eq!(placement_backoff_ms(3), 4000);
    assert_eq!(placement_backoff_ms(40), 60_000);
}
