//! What the reconciler sees (a snapshot of one service) and what it asks for (actions).

/// `schedulingStrategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedulingStrategy {
    Replica,
    Daemon,
}

/// A service's `status` while the reconciler acts on it: DRAINING after DeleteService.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceStatus {
    Active,
    Draining,
}

/// How the circuit breaker's failure threshold is computed (`thresholdConfiguration`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Threshold {
    /// `value` percent of the desired count, within 3..=200 (ECS's default: 50).
    BoundedPercent(u32),
    /// `value` percent of the desired count, at least 1.
    UnboundedPercent(u32),
    /// `value` failed tasks.
    Count(u32),
}

impl Default for Threshold {
    fn default() -> Threshold {
        Threshold::BoundedPercent(50)
    }
}

/// `deploymentCircuitBreaker` when enabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CircuitBreaker {
    pub rollback: bool,
    pub threshold: Threshold,
}

/// One service as the reconciler needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Service {
    pub name: String,
    pub strategy: SchedulingStrategy,
    pub status: ServiceStatus,
    /// The desired count (for DAEMON, the last one computed).
    pub desired_count: u32,
    pub minimum_healthy_percent: u32,
    pub maximum_percent: u32,
    pub circuit_breaker: Option<CircuitBreaker>,
    pub health_check_grace_period_ms: i64,
    /// Whether "has reached a steady state" was reported since the service last changed.
    pub steady_reported: bool,
    /// No task is started before this time (backoff after a placement failure).
    pub retry_placement_at_ms: Option<i64>,
    /// How long an instance's agent may stay silent before its tasks are replaced.
    pub instance_lost_after_ms: i64,
}

/// A deployment's `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeploymentStatus {
    Primary,
    Active,
    Inactive,
}

impl DeploymentStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentStatus::Primary => "PRIMARY",
            DeploymentStatus::Active => "ACTIVE",
            DeploymentStatus::Inactive => "INACTIVE",
        }
    }
}

/// A deployment's `rolloutState`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RolloutState {
    InProgress,
    Completed,
    Failed,
}

/// One deployment of the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deployment {
    /// `ecs-svc/<digits>`; the tasks it starts carry it as `startedBy`.
    pub id: String,
    pub status: DeploymentStatus,
    pub rollout_state: RolloutState,
    /// `failedTasks` as last recorded.
    pub failed_tasks: u32,
    /// Whether its task definition's containers define health checks.
    pub health_checked: bool,
    pub created_at_ms: i64,
}

/// A task's `lastStatus`, folded to what scheduling needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum TaskPhase {
    /// PROVISIONING, PENDING, ACTIVATING.
    Pending,
    /// RUNNING and the statuses on the way down before STOPPED.
    Running,
    Stopped,
}

/// A task's health (from its containers' health checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    Unknown,
    Healthy,
    Unhealthy,
}

/// One task of the service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Task {
    pub id: String,
    /// The deployment that started it.
    pub deployment: String,
    /// The container instance it runs on (`None` on Fargate).
    pub instance: Option<String>,
    pub phase: TaskPhase,
    /// Its desired status is STOPPED.
    pub desired_stopped: bool,
    pub started_at_ms: Option<i64>,
    pub health: Health,
    /// It stopped on its own (failed to start, essential container exited, failed health
    /// checks): the circuit breaker counts it.
    pub failed: bool,
}

/// A container instance's `status` (REGISTERING and INACTIVE ones are not shown).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceStatus {
    Active,
    Draining,
}

/// One container instance of the service's cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub id: String,
    pub status: InstanceStatus,
    /// When its agent was last heard of (`None`: never).
    pub last_seen_ms: Option<i64>,
    /// It satisfies the service's placement constraints (DAEMON).
    pub eligible: bool,
}

/// Why the scheduler stops a task (its `stoppedReason`; the stop code is always
/// ServiceSchedulerInitiated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// Scaling in, replacing old tasks in a deployment, draining: the primary deployment's
    /// activity.
    Scaling { deployment: String },
    /// UNHEALTHY after the grace period.
    HealthCheck,
    /// Its instance's agent stayed disconnected past the timeout.
    InstanceLost,
}

/// What the reconciler asks the control plane to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Place and start `count` tasks of `deployment` (REPLICA: the placement engine picks
    /// the instances with the service's strategies and constraints).
    Start {
        deployment: String,
        count: u32,
    },
    /// Start one task of `deployment` on `instance` (DAEMON).
    StartOn {
        deployment: String,
        instance: String,
    },
    /// Set the task's desired status to STOPPED.
    Stop {
        task: String,
        reason: StopReason,
    },
    SetStatus {
        deployment: String,
        status: DeploymentStatus,
    },
    SetRollout {
        deployment: String,
        state: RolloutState,
        reason: String,
    },
    SetFailedTasks {
        deployment: String,
        count: u32,
    },
    /// The circuit breaker tripped on `failed`: start a new PRIMARY deployment with the
    /// configuration of the COMPLETED deployment `to`.
    Rollback {
        failed: String,
        to: String,
    },
    /// A DAEMON service's desired count (one per eligible instance).
    SetDesiredCount(u32),
    /// Report "has reached a steady state".
    SteadyState,
    /// The service left its steady state.
    Unsteady,
    /// A DRAINING service has no task left: it becomes INACTIVE.
    ServiceInactive,
}
