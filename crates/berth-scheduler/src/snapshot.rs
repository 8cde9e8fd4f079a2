//! What placement sees: the cluster's container instances and what is asked of them.

use std::collections::BTreeMap;

use crate::query::Expr;

/// The default range host ports are picked from when a mapping asks for a dynamic one (the
/// ECS agent's default ephemeral range).
pub const DYNAMIC_PORTS: (i32, i32) = (49153, 65535);

/// Whether an instance takes new tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InstanceStatus {
    Active,
    /// Keeps its tasks, takes no new ones.
    Draining,
}

/// CPU units and MiB (GPUs are counted by id: [`Instance::gpus`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Resources {
    pub cpu: i64,
    pub memory: i64,
}

/// A task an instance holds (not STOPPED).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct RunningTask {
    pub group: Option<String>,
    /// Task definition family.
    pub family: String,
}

/// The tasks an instance holds, counted per distinct (group, family): a host holds many
/// tasks of few groups, so checking a task group or counting a group's tasks for spread costs
/// a look at each distinct one, not at every task (at 100 tasks per instance, spread had
/// walked every task of the cluster for each request, and the index kept a copy of each).
/// Entries are kept sorted, so two equal multisets compare equal.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeldTasks(Vec<(RunningTask, usize)>);

impl HeldTasks {
    /// One more task `t`.
    pub fn push(&mut self, t: RunningTask) {
        match self.0.binary_search_by(|(e, _)| e.cmp(&t)) {
            Ok(k) => self.0[k].1 += 1,
            Err(k) => self.0.insert(k, (t, 1)),
        }
    }

    /// One task `t` fewer; false if it held none.
    pub fn remove(&mut self, t: &RunningTask) -> bool {
        match self.0.binary_search_by(|(e, _)| e.cmp(t)) {
            Ok(k) => {
                self.0[k].1 -= 1;
                if self.0[k].1 == 0 {
                    self.0.remove(k);
                }
                true
            }
            Err(_) => false,
        }
    }

    /// How many tasks it holds.
    pub fn len(&self) -> usize {
        self.0.iter().map(|(_, n)| n).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// How many of its tasks are in `group`.
    pub fn in_group(&self, group: &str) -> usize {
        self.0
            .iter()
            .filter(|(t, _)| t.group.as_deref() == Some(group))
            .map(|(_, n)| n)
            .sum()
    }

    /// Each distinct task it holds, with how many of it.
    pub fn counted(&self) -> impl Iterator<Item = (&RunningTask, usize)> {
        self.0.iter().map(|(t, n)| (t, *n))
    }

    /// Keeps only the tasks `keep` accepts.
    pub fn retain(&mut self, mut keep: impl FnMut(&RunningTask) -> bool) {
        self.0.retain(|(t, _)| keep(t));
    }
}

impl Extend<RunningTask> for HeldTasks {
    fn extend<I: IntoIterator<Item = RunningTask>>(&mut self, iter: I) {
        for t in iter {
            self.push(t);
        }
    }
}

impl FromIterator<RunningTask> for HeldTasks {
    fn from_iter<I: IntoIterator<Item = RunningTask>>(iter: I) -> HeldTasks {
        let mut held = HeldTasks::default();
        held.extend(iter);
        held
    }
}

/// A container instance as placement sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// The caller's key for it (Berth: the store id), what a placement names.
    pub id: String,
    pub arn: String,
    pub ec2_instance_id: Option<String>,
    pub status: InstanceStatus,
    pub agent_connected: bool,
    pub agent_version: Option<String>,
    pub registered_at_ms: Option<i64>,
    pub registered: Resources,
    pub remaining: Resources,
    /// Host ports in use (TCP), including the agent's reserved ones.
    pub used_ports: Vec<i32>,
    pub used_ports_udp: Vec<i32>,
    /// The GPU ids no task holds (ECS's `GPU` resource: a string set of ids).
    pub gpus: Vec<String>,
    /// Dynamic host ports come from this inclusive range.
    pub dynamic_ports: (i32, i32),
    /// Name → value (None: an attribute without value), ECS's own and custom ones.
    pub attributes: BTreeMap<String, Option<String>>,
    /// ECS's `runningTasksCount`.
    pub running_tasks_count: i32,
    /// The tasks it holds, for task groups and spread.
    pub tasks: HeldTasks,
}

impl Instance {
    /// An ACTIVE, connected instance with nothing registered (tests and builders start here).
    pub fn new(id: impl Into<String>, arn: impl Into<String>) -> Instance {
        Instance {
            id: id.into(),
            arn: arn.into(),
            ec2_instance_id: None,
            status: InstanceStatus::Active,
            agent_connected: true,
            agent_version: None,
            registered_at_ms: None,
            registered: Resources::default(),
            remaining: Resources::default(),
            used_ports: Vec::new(),
            used_ports_udp: Vec::new(),
            gpus: Vec::new(),
            dynamic_ports: DYNAMIC_PORTS,
            attributes: BTreeMap::new(),
            running_tasks_count: 0,
            tasks: HeldTasks::default(),
        }
    }
}

/// The cluster at one moment.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Snapshot {
    pub instances: Vec<Instance>,
}

/// What one task reserves on its instance.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Needs {
    pub cpu: i64,
    pub memory: i64,
    /// How many GPUs (each a distinct id of the instance).
    pub gpu: i64,
    /// Static host ports (TCP).
    pub ports: Vec<i32>,
    /// Static host ports (UDP).
    pub ports_udp: Vec<i32>,
    /// How many TCP host ports to pick from the dynamic range.
    pub dynamic_ports: usize,
}

/// A placement constraint.
#[derive(Debug, Clone, PartialEq)]
pub enum Constraint {
    /// No two tasks of the request's group on one instance, counting the group's tasks
    /// already running.
    DistinctInstance,
    /// Only instances the expression selects.
    MemberOf(Expr),
}

/// The resource binpack packs by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BinpackField {
    Cpu,
    Memory,
}

/// What spread spreads over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpreadField {
    /// `instanceId` or `host`.
    Instance,
    /// `attribute:NAME`.
    Attribute(String),
}

/// A placement strategy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    Binpack(BinpackField),
    Spread(SpreadField),
    Random,
}

/// An attribute the task definition requires (`requiresAttributes`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequiredAttribute {
    pub name: String,
    /// When set, the instance's value must equal it.
    pub value: Option<String>,
}

/// What to place.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Request {
    pub count: usize,
    pub needs: Needs,
    /// The task group (`family:NAME` unless the caller set one).
    pub group: String,
    pub family: String,
    pub constraints: Vec<Constraint>,
    /// Applied in order; none means random.
    pub strategies: Vec<Strategy>,
    pub required_attributes: Vec<RequiredAttribute>,
}
