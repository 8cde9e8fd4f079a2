//! The placement function: a snapshot and a request in, one outcome per task out.

use std::collections::BTreeMap;

use crate::snapshot::{
    BinpackField, Constraint, Instance, InstanceStatus, Request, Snapshot, SpreadField, Strategy,
};

/// Why an instance cannot take a task, as ECS names it in `failures`. The order is the order
/// of the checks: an instance refused by a later check came closer to taking the task.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    /// The instance's agent is not connected.
    Agent,
    /// It lacks an attribute the task definition requires (`requiresAttributes`).
    MissingAttribute(String),
    MemberOf,
    DistinctInstance,
    Cpu,
    Memory,
    Ports,
    PortsUdp,
    Gpu,
}

impl Reason {
    /// ECS's `reason`.
    pub fn as_str(&self) -> &'static str {
        match self {
            Reason::Agent => "AGENT",
            Reason::MissingAttribute(_) => "MissingAttribute",
            Reason::MemberOf => "MemberOf placement constraint unsatisfied.",
            Reason::DistinctInstance => "DistinctInstance placement constraint unsatisfied.",
            Reason::Cpu => "RESOURCE:CPU",
            Reason::Memory => "RESOURCE:MEMORY",
            Reason::Ports => "RESOURCE:PORTS",
            Reason::PortsUdp => "RESOURCE:PORTS_UDP",
            Reason::Gpu => "RESOURCE:GPU",
        }
    }
    /// A `detail` for the failure, where there is more to say than the reason.
    pub fn detail(&self) -> Option<String> {
        match self {
            Reason::MissingAttribute(name) => Some(format!("missing attribute {name}")),
            _ => None,
        }
    }
}

/// Why a task was not placed: the reason of the instance that came closest (the first of
/// them in snapshot order), or no instance at all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No ACTIVE container instance in the snapshot.
    NoInstances,
    Instance {
        id: String,
        arn: String,
        reason: Reason,
    },
}

/// Where one task goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The instance's id (as in the snapshot).
    pub instance: String,
    pub arn: String,
    /// The host ports picked for its dynamic mappings, in order.
    pub dynamic_ports: Vec<i32>,
    /// The GPU ids it holds (`needs.gpu` of them, taken in the instance's order).
    pub gpus: Vec<String>,
}

impl Placement {
    /// A task placed on `i`, taking the dynamic ports and GPU ids [`reserve`] picked there.
    fn on(i: &Instance, (dynamic_ports, gpus): (Vec<i32>, Vec<String>)) -> Placement {
        Placement {
            instance: i.id.clone(),
            arn: i.arn.clone(),
            dynamic_ports,
            gpus,
        }
    }
}

/// One outcome per requested task, in order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub tasks: Vec<Result<Placement, Refusal>>,
}

impl Plan {
    pub fn placed(&self) -> impl Iterator<Item = &Placement> {
        self.tasks.iter().filter_map(|t| t.as_ref().ok())
    }
}

fn free_dynamic_ports(i: &Instance, taken: Option<&Taken>) -> usize {
    let (lo, hi) = i.dynamic_ports;
    let size = usize::try_from(i64::from(hi) - i64::from(lo) + 1).unwrap_or(0);
    let extra: &[i32] = taken.map(|t| t.ports.as_slice()).unwrap_or_default();
    let mut used: Vec<i32> = i
        .used_ports
        .iter()
        .chain(extra)
        .copied()
        .filter(|p| (lo..=hi).contains(p))
        .collect();
    used.sort_unstable();
    used.dedup();
    size.saturating_sub(used.len())
}

/// What a plan in progress has taken on one instance so far (the snapshot itself is never
/// copied: a plan over 10,000 instances touches only the few it places on).
#[derive(Debug, Clone, Default)]
struct Taken {
    cpu: i64,
    memory: i64,
    gpu: i64,
    ports: Vec<i32>,
    ports_udp: Vec<i32>,
    /// Tasks of the request placed on it.
    tasks: usize,
}

/// Why `i` cannot take one more task of `r`, if it cannot.
pub fn check(i: &Instance, r: &Request) -> Option<Reason> {
    check_with(i, None, r)
}

/// [`check`] of `i` with what the plan has `taken` on it already.
fn check_with(i: &Instance, taken: Option<&Taken>, r: &Request) -> Option<Reason> {
    if !i.agent_connected {
        return Some(Reason::Agent);
    }
    for a in &r.required_attributes {
        let ok = match (i.attributes.get(&a.name), &a.value) {
            (None, _) => false,
            (Some(_), None) => true,
            (Some(have), Some(want)) => have.as_deref() == Some(want.as_str()),
        };
        if !ok {
            return Some(Reason::MissingAttribute(a.name.clone()));
        }
    }
    let placed = taken.map_or(0, |t| t.tasks);
    for c in &r.constraints {
        match c {
            Constraint::MemberOf(e) => {
                let extra = vec![r.group.as_str(); placed];
                if !e.matches(i, &extra) {
                    return Some(Reason::MemberOf);
                }
            }
            Constraint::DistinctInstance if placed > 0 || i.tasks.in_group(&r.group) > 0 => {
                return Some(Reason::DistinctInstance);
            }
            _ => {}
        }
    }
    let n = &r.needs;
    let (cpu, memory, gpu) = taken.map_or((0, 0, 0), |t| (t.cpu, t.memory, t.gpu));
    let extra_ports: &[i32] = taken.map(|t| t.ports.as_slice()).unwrap_or_default();
    let extra_udp: &[i32] = taken.map(|t| t.ports_udp.as_slice()).unwrap_or_default();
    if i.remaining.cpu - cpu < n.cpu {
        return Some(Reason::Cpu);
    }
    if i.remaining.memory - memory < n.memory {
        return Some(Reason::Memory);
    }
    if n.ports
        .iter()
        .any(|p| i.used_ports.contains(p) || extra_ports.contains(p))
        || (n.dynamic_ports > 0 && free_dynamic_ports(i, taken) < n.dynamic_ports)
    {
        return Some(Reason::Ports);
    }
    if n.ports_udp
        .iter()
        .any(|p| i.used_ports_udp.contains(p) || extra_udp.contains(p))
    {
        return Some(Reason::PortsUdp);
    }
    if (i.gpus.len() as i64) - gpu < n.gpu {
        return Some(Reason::Gpu);
    }
    None
}

/// The value `i` has for a spread field: its id, or an attribute's value (an attribute
/// without a value counts as the empty one, a missing attribute as none).
fn spread_key<'a>(i: &'a Instance, f: &SpreadField) -> Option<&'a str> {
    match f {
        SpreadField::Instance => Some(&i.id),
        SpreadField::Attribute(name) => i.attributes.get(name).map(|v| v.as_deref().unwrap_or("")),
    }
}

/// What one spread strategy counts, from the snapshot, once per plan: each ACTIVE instance's
/// value (as an index into the field's distinct values) and, per value, the tasks of the
/// request's group the snapshot's instances hold. A task of the plan adds to its value's
/// count through what it has `taken`; counting from scratch for every task walked every task
/// of every instance (a tenth of a second per RunTask of 10 at 1,000,000 tasks).
#[derive(Debug)]
struct SpreadCounts {
    /// Per instance, its value's index (`usize::MAX` for an instance that is not ACTIVE).
    value_of: Vec<usize>,
    /// Per value, the group's tasks in the snapshot.
    base: Vec<usize>,
}

impl SpreadCounts {
    /// For `field`, with `group_tasks[k]` the group's tasks instance `k` holds.
    fn new(insts: &[Instance], field: &SpreadField, group_tasks: &[usize]) -> SpreadCounts {
        let mut ids: BTreeMap<Option<&str>, usize> = BTreeMap::new();
        let mut value_of = vec![usize::MAX; insts.len()];
        let mut base = Vec::new();
        for (k, i) in insts.iter().enumerate() {
            if i.status != InstanceStatus::Active {
                continue;
            }
            let next = ids.len();
            let v = *ids.entry(spread_key(i, field)).or_insert(next);
            if v == base.len() {
                base.push(0);
            }
            value_of[k] = v;
            base[v] += group_tasks[k];
        }
        SpreadCounts { value_of, base }
    }

    /// Per value, the group's tasks with what the plan has `taken` so far.
    fn now(&self, taken: &BTreeMap<usize, Taken>) -> Vec<usize> {
        let mut counts = self.base.clone();
        for (&k, t) in taken {
            if let Some(c) = self.value_of.get(k).and_then(|&v| counts.get_mut(v)) {
                *c += t.tasks;
            }
        }
        counts
    }
}

/// The [`SpreadCounts`] of each of `r`'s strategies (None for those that are not spread).
fn spread_counts(insts: &[Instance], r: &Request) -> Vec<Option<SpreadCounts>> {
    if !r
        .strategies
        .iter()
        .any(|s| matches!(s, Strategy::Spread(_)))
    {
        return Vec::new();
    }
    let group_tasks: Vec<usize> = insts.iter().map(|i| i.tasks.in_group(&r.group)).collect();
    r.strategies
        .iter()
        .map(|s| match s {
            Strategy::Spread(field) => Some(SpreadCounts::new(insts, field, &group_tasks)),
            _ => None,
        })
        .collect()
}

/// Keeps the entries of `fits` whose `key` is least, in order, in one pass.
fn keep_least(fits: &mut Vec<usize>, key: impl Fn(usize) -> i64) {
    let mut least = i64::MAX;
    let mut kept = 0;
    for j in 0..fits.len() {
        let k = fits[j];
        let v = key(k);
        if v < least {
            least = v;
            kept = 0;
        }
        if v == least {
            fits[kept] = k;
            kept += 1;
        }
    }
    fits.truncate(kept);
}

/// Narrows `fits` (indices into `insts`) by each strategy in turn (`spread` holds each
/// strategy's [`SpreadCounts`]; `touched[k]` says whether the plan has `taken` anything on
/// instance `k`, so the others are not looked up).
fn narrow(
    insts: &[Instance],
    taken: &BTreeMap<usize, Taken>,
    touched: &[bool],
    r: &Request,
    spread: &[Option<SpreadCounts>],
    mut fits: Vec<usize>,
) -> Vec<usize> {
    let took = |k: usize| {
        if touched.get(k).copied().unwrap_or(true) {
            taken.get(&k)
        } else {
            None
        }
    };
    for (n, s) in r.strategies.iter().enumerate() {
        if fits.len() <= 1 {
            break;
        }
        match s {
            Strategy::Random => {}
            Strategy::Binpack(BinpackField::Cpu) => keep_least(&mut fits, |k| {
                insts[k].remaining.cpu - took(k).map_or(0, |t| t.cpu)
            }),
            Strategy::Binpack(BinpackField::Memory) => keep_least(&mut fits, |k| {
                insts[k].remaining.memory - took(k).map_or(0, |t| t.memory)
            }),
            Strategy::Spread(_) => {
                // Invariant: `spread` was made from `r` (one entry per strategy, Some for
                // each spread); without it, nothing narrows.
                let Some(Some(sc)) = spread.get(n) else {
                    continue;
                };
                let counts = sc.now(taken);
                keep_least(&mut fits, |k| {
                    sc.value_of
                        .get(k)
                        .and_then(|&v| counts.get(v))
                        .map_or(0, |&c| i64::try_from(c).unwrap_or(i64::MAX))
                });
            }
        }
    }
    fits
}

/// Takes one task of `r` on `i` (into what the plan has `taken` there): resources, GPU ids
/// (the first free ones), ports (dynamic ones picked lowest first), and the task itself (so
/// later tasks of the plan see it in groups and spread). Returns the dynamic ports and GPU ids
/// taken.
fn reserve(i: &Instance, taken: &mut Taken, r: &Request) -> (Vec<i32>, Vec<String>) {
    let n = &r.needs;
    taken.cpu += n.cpu;
    taken.memory += n.memory;
    let from = usize::try_from(taken.gpu).unwrap_or(0).min(i.gpus.len());
    let take = usize::try_from(n.gpu).unwrap_or(0).min(i.gpus.len() - from);
    let gpus: Vec<String> = i.gpus[from..from + take].to_vec();
    taken.gpu += take as i64;
    taken.ports.extend(&n.ports);
    taken.ports_udp.extend(&n.ports_udp);
    let mut picked = Vec::new();
    let (lo, hi) = i.dynamic_ports;
    let mut p = lo;
    while picked.len() < n.dynamic_ports && p <= hi {
        if !i.used_ports.contains(&p) && !taken.ports.contains(&p) {
            taken.ports.push(p);
            picked.push(p);
        }
        p += 1;
    }
    taken.tasks += 1;
    (picked, gpus)
}

/// How many random instances the random strategy probes before it scans them all.
const RANDOM_PROBES: usize = 32;

/// The random strategy's rejection sampling: the first of [`RANDOM_PROBES`] `rng`-chosen
/// instances that is ACTIVE and can take one more task of `r`, if any.
fn probe(
    insts: &[Instance],
    taken: &BTreeMap<usize, Taken>,
    r: &Request,
    rng: &mut impl FnMut(usize) -> usize,
) -> Option<usize> {
    if insts.is_empty() {
        return None;
    }
    (0..RANDOM_PROBES).find_map(|_| {
        let k = rng(insts.len()) % insts.len();
        (insts[k].status == InstanceStatus::Active
            && check_with(&insts[k], taken.get(&k), r).is_none())
        .then_some(k)
    })
}

/// Which ACTIVE instances of the snapshot can take one more task of a request (in snapshot
/// order), each checked once per request, not once per task: a task of the plan changes only
/// the instance it lands on, so only that one is checked again, and it leaves the set when it
/// is full for the request (it never comes back: what the plan takes on it only grows).
struct Fitting {
    fits: Vec<usize>,
    /// Per instance, whether the plan has taken anything on it.
    touched: Vec<bool>,
}

impl Fitting {
    fn new(insts: &[Instance], taken: &BTreeMap<usize, Taken>, r: &Request) -> Fitting {
        let mut touched = vec![false; insts.len()];
        for &k in taken.keys() {
            touched[k] = true;
        }
        let fits = insts
            .iter()
            .enumerate()
            .filter(|(k, i)| {
                i.status == InstanceStatus::Active && check_with(i, taken.get(k), r).is_none()
            })
            .map(|(k, _)| k)
            .collect();
        Fitting { fits, touched }
    }

    /// The plan has just placed a task on instance `k`.
    fn placed(
        &mut self,
        k: usize,
        insts: &[Instance],
        taken: &BTreeMap<usize, Taken>,
        r: &Request,
    ) {
        self.touched[k] = true;
        if check_with(&insts[k], taken.get(&k), r).is_some()
            && let Ok(at) = self.fits.binary_search(&k)
        {
            self.fits.remove(at);
        }
    }
}

/// Why no instance can take one more task: the reason of the instance that came closest (the
/// first of them in snapshot order).
fn refusal(insts: &[Instance], taken: &BTreeMap<usize, Taken>, r: &Request) -> Refusal {
    let mut closest: Option<(usize, Reason)> = None;
    for (k, i) in insts.iter().enumerate() {
        if i.status != InstanceStatus::Active {
            continue;
        }
        if let Some(why) = check_with(i, taken.get(&k), r)
            && closest.as_ref().is_none_or(|(_, best)| why > *best)
        {
            closest = Some((k, why));
        }
    }
    match closest {
        Some((k, reason)) => Refusal::Instance {
            id: insts[k].id.clone(),
            arn: insts[k].arn.clone(),
            reason,
        },
        None => Refusal::NoInstances,
    }
}

/// Places `r.count` tasks on the snapshot's ACTIVE instances, reserving as it goes (two tasks
/// never share the last MiB or a port). Each task: the instances that pass every check, then
/// each strategy in order keeps only its best (binpack: least remaining of its resource;
/// spread: the value with fewest tasks of the group), ties go to the next strategy and the
/// last ties to `rng(n)` (an index below `n`: randomness is an input).
///
/// When every strategy is random (or there is none), the choice is uniform among the
/// instances that fit, so it is made by rejection sampling: probe `rng`-chosen instances and
/// take the first that fits (uniform among those that fit), and scan them all only when
/// [`RANDOM_PROBES`] probes found none. A plan then costs a few checks instead of one per
/// instance, whatever the size of the cluster. Otherwise every instance is checked once per
/// request ([`Fitting`]), not once per task.
pub fn place(snapshot: &Snapshot, r: &Request, rng: &mut impl FnMut(usize) -> usize) -> Plan {
    let insts = &snapshot.instances;
    let mut taken: BTreeMap<usize, Taken> = BTreeMap::new();
    let random = r.strategies.iter().all(|s| *s == Strategy::Random);
    let mut plan = Plan::default();
    let spread = spread_counts(insts, r);
    let mut fitting: Option<Fitting> = None;
    for _ in 0..r.count {
        if random && let Some(k) = probe(insts, &taken, r, rng) {
            let taking = reserve(&insts[k], taken.entry(k).or_default(), r);
            if let Some(f) = fitting.as_mut() {
                f.placed(k, insts, &taken, r);
            }
            plan.tasks.push(Ok(Placement::on(&insts[k], taking)));
            continue;
        }
        let f = fitting.get_or_insert_with(|| Fitting::new(insts, &taken, r));
        if f.fits.is_empty() {
            plan.tasks.push(Err(refusal(insts, &taken, r)));
            continue;
        }
        let best = narrow(insts, &taken, &f.touched, r, &spread, f.fits.clone());
        let k = best[rng(best.len()) % best.len()];
        let taking = reserve(&insts[k], taken.entry(k).or_default(), r);
        f.placed(k, insts, &taken, r);
        plan.tasks.push(Ok(Placement::on(&insts[k], taking)));
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::query::parse;
    use crate::snapshot::{Needs, RequiredAttribute, Resources, RunningTask};

    fn inst(id: &str, cpu: i64, mem: i64, az: &str) -> Instance {
        let mut i = Instance::new(id, format!("arn:{id}"));
        i.registered = Resources { cpu, memory: mem };
        i.remaining = i.registered;
        i.attributes
            .insert("ecs.availability-zone".into(), Some(az.into()));
        i
    }

    fn req(count: usize, cpu: i64, mem: i64) -> Request {
        Request {
            count,
            needs: Needs {
                cpu,
                memory: mem,
                ..Needs::default()
            },
            group: "family:web".into(),
            family: "web".into(),
            ..Request::default()
        }
    }

    fn first(_: usize) -> usize {
        0
    }

    fn ids(p: &Plan) -> Vec<String> {
        p.tasks
            .iter()
            .map(|t| match t {
                Ok(p) => p.instance.clone(),
                Err(Refusal::Instance { reason, .. }) => reason.as_str().to_string(),
                Err(Refusal::NoInstances) => "none".into(),
            })
            .collect()
    }

    #[test]
    fn binpack_fills_the_fullest_first() {
        let snap = Snapshot {
            instances: vec![inst("a", 1024, 2048, "z1"), inst("b", 512, 2048, "z1")],
        };
        let mut r = req(3, 256, 256);
        r.strategies = vec![Strategy::Binpack(BinpackField::Cpu)];
        assert_eq!(ids(&place(&snap, &r, &mut first)), ["b", "b", "a"]);
    }

    #[test]
    fn spread_by_zone_then_binpack() {
        let snap = Snapshot {
            instances: vec![
                inst("a", 4096, 4096, "z1"),
                inst("b", 2048, 4096, "z1"),
                inst("c", 4096, 4096, "z2"),
            ],
        };
        let mut r = req(4, 256, 256);
        r.strategies = vec![
            Strategy::Spread(SpreadField::Attribute("ecs.availability-zone".into())),
            Strategy::Binpack(BinpackField::Cpu),
        ];
        assert_eq!(ids(&place(&snap, &r, &mut first)), ["b", "c", "b", "c"]);
    }

    #[test]
    fn spread_counts_the_groups_running_tasks() {
        let mut a = inst("a", 4096, 4096, "z1");
        a.tasks.push(RunningTask {
            group: Some("family:web".into()),
            family: "web".into(),
        });
        let snap = Snapshot {
            instances: vec![a, inst("b", 4096, 4096, "z1")],
        };
        let mut r = req(1, 1, 1);
        r.strategies = vec![Strategy::Spread(SpreadField::Instance)];
        assert_eq!(ids(&place(&snap, &r, &mut first)), ["b"]);
    }

    #[test]
    fn distinct_instance_and_member_of() {
        let mut a = inst("a", 4096, 4096, "z1");
        a.tasks.push(RunningTask {
            group: Some("family:web".into()),
            family: "web".into(),
        });
        let snap = Snapshot {
            instances: vec![a, inst("b", 4096, 4096, "z1"), inst("c", 4096, 4096, "z2")],
        };
        let mut r = req(3, 1, 1);
        r.constraints = vec![Constraint::DistinctInstance];
        assert_eq!(
            ids(&place(&snap, &r, &mut first)),
            [
                "b",
                "c",
                "DistinctInstance placement constraint unsatisfied."
            ]
        );
        r.constraints = vec![Constraint::MemberOf(
            parse("attribute:ecs.availability-zone == z2").unwrap(),
        )];
        r.count = 1;
        assert_eq!(ids(&place(&snap, &r, &mut first)), ["c"]);
        r.constraints = vec![Constraint::MemberOf(
            parse("attribute:ecs.availability-zone == z3").unwrap(),
        )];
        assert_eq!(
            ids(&place(&snap, &r, &mut first)),
            ["MemberOf placement constraint unsatisfied."]
        );
        // anti-affinity through the query language sees the plan's own tasks
        r.constraints = vec![Constraint::MemberOf(
            parse("not(task:group == family:web)").unwrap(),
        )];
        r.count = 3;
        assert_eq!(
            ids(&place(&snap, &r, &mut first)),
            ["b", "c", "MemberOf placement constraint unsatisfied."]
        );
    }

    #[test]
    fn refusals_name_the_closest_instance() {
        let mut off = inst("off", 9999, 9999, "z1");
        off.agent_connected = false;
        let mut ported = inst("ported", 4096, 4096, "z1");
        ported.used_ports.push(80);
        let snap = Snapshot {
            instances: vec![off, inst("small", 10, 4096, "z1"), ported],
        };
        let mut r = req(1, 100, 100);
        r.needs.ports = vec![80];
        match &place(&snap, &r, &mut first).tasks[0] {
            Err(Refusal::Instance { id, reason, .. }) => {
                assert_eq!(id, "ported");
                assert_eq!(reason.as_str(), "RESOURCE:PORTS");
            }
            other => panic!("{other:?}"),
        }
        r.required_attributes = vec![RequiredAttribute {
            name: "ecs.capability.secrets.asm.environment-variables".into(),
            value: None,
        }];
        let p = place(&snap, &r, &mut first);
        let Err(Refusal::Instance { reason, .. }) = &p.tasks[0] else {
            panic!("{p:?}");
        };
        assert_eq!(reason.as_str(), "MissingAttribute");
        assert_eq!(
            reason.detail().as_deref(),
            Some("missing attribute ecs.capability.secrets.asm.environment-variables")
        );
        assert_eq!(
            place(&Snapshot::default(), &r, &mut first).tasks,
            vec![Err(Refusal::NoInstances)]
        );
    }

    #[test]
    fn the_last_port_and_mib_go_once_and_draining_takes_nothing() {
        let mut d = inst("d", 9999, 9999, "z1");
        d.status = InstanceStatus::Draining;
        let mut a = inst("a", 4096, 300, "z1");
        a.dynamic_ports = (100, 101);
        a.used_ports.push(100);
        let snap = Snapshot {
            instances: vec![d, a],
        };
        let mut r = req(3, 1, 100);
        r.needs.dynamic_ports = 1;
        r.needs.ports_udp = vec![53];
        let p = place(&snap, &r, &mut first);
        assert_eq!(
            p.tasks[0],
            Ok(Placement {
                instance: "a".into(),
                arn: "arn:a".into(),
                dynamic_ports: vec![101],
                gpus: vec![],
            })
        );
        assert_eq!(ids(&p)[1..], ["RESOURCE:PORTS", "RESOURCE:PORTS"]);
        r.needs.dynamic_ports = 0;
        assert_eq!(ids(&place(&snap, &r, &mut first))[1], "RESOURCE:PORTS_UDP");
        r.needs.ports_udp.clear();
        assert_eq!(ids(&place(&snap, &r, &mut first)), ["a", "a", "a"]);
        r.count = 4;
        assert_eq!(ids(&place(&snap, &r, &mut first))[3], "RESOURCE:MEMORY");
        r.needs.gpu = 1;
        assert_eq!(ids(&place(&snap, &r, &mut first))[0], "RESOURCE:GPU");
    }

    #[test]
    fn gpu_ids_go_to_one_task_each() {
        let mut a = inst("a", 4096, 4096, "z1");
        a.gpus = vec!["GPU-0".into(), "GPU-1".into(), "GPU-2".into()];
        let mut b = inst("b", 4096, 4096, "z1");
        b.gpus = vec!["GPU-9".into()];
        let snap = Snapshot {
            instances: vec![a, b],
        };
        let mut r = req(3, 1, 1);
        r.needs.gpu = 2;
        let p = place(&snap, &r, &mut first);
        let gpus: Vec<Vec<String>> = p.placed().map(|p| p.gpus.clone()).collect();
        assert_eq!(gpus, [vec!["GPU-0".to_string(), "GPU-1".to_string()]]);
        assert_eq!(ids(&p)[1..], ["RESOURCE:GPU", "RESOURCE:GPU"]);
        r.needs.gpu = 1;
        let p = place(&snap, &r, &mut first);
        let mut all: Vec<String> = p.placed().flat_map(|p| p.gpus.clone()).collect();
        all.sort();
        assert_eq!(all, ["GPU-0", "GPU-1", "GPU-2"]);
    }

    /// Spread as defined, counted from scratch: for each ACTIVE instance, the group's tasks it
    /// holds and those the plan has taken there, summed per value.
    fn spread_by_definition(
        insts: &[Instance],
        taken: &BTreeMap<usize, Taken>,
        r: &Request,
        field: &SpreadField,
        fits: &[usize],
    ) -> Vec<usize> {
        let mut counts: BTreeMap<Option<String>, usize> = BTreeMap::new();
        let value = |i: &Instance| spread_key(i, field).map(str::to_string);
        for (k, i) in insts.iter().enumerate() {
            if i.status != InstanceStatus::Active {
                continue;
            }
            let n = i
                .tasks
                .counted()
                .filter(|(t, _)| t.group.as_deref() == Some(&r.group))
                .map(|(_, n)| n)
                .sum::<usize>()
                + taken.get(&k).map_or(0, |t| t.tasks);
            *counts.entry(value(i)).or_default() += n;
        }
        let count = |k: usize| counts.get(&value(&insts[k])).copied().unwrap_or(0);
        let least = fits.iter().map(|k| count(*k)).min().unwrap_or(0);
        fits.iter()
            .copied()
            .filter(|k| count(*k) == least)
            .collect()
    }

    /// `place` as defined, without shortcuts: each task checks every instance with what the
    /// plan has taken so far, binpack and spread narrow counted from scratch, the same random
    /// probes first when every strategy is random.
    fn place_by_definition(
        snapshot: &Snapshot,
        r: &Request,
        rng: &mut impl FnMut(usize) -> usize,
    ) -> Plan {
        let insts = &snapshot.instances;
        let mut taken: BTreeMap<usize, Taken> = BTreeMap::new();
        let random = r.strategies.iter().all(|s| *s == Strategy::Random);
        let mut plan = Plan::default();
        for _ in 0..r.count {
            let mut chosen = if random {
                probe(insts, &taken, r, rng)
            } else {
                None
            };
            if chosen.is_none() {
                let mut fits: Vec<usize> = insts
                    .iter()
                    .enumerate()
                    .filter(|(k, i)| {
                        i.status == InstanceStatus::Active
                            && check_with(i, taken.get(k), r).is_none()
                    })
                    .map(|(k, _)| k)
                    .collect();
                if fits.is_empty() {
                    plan.tasks.push(Err(refusal(insts, &taken, r)));
                    continue;
                }
                for s in &r.strategies {
                    fits = match s {
                        Strategy::Random => fits,
                        Strategy::Binpack(field) => {
                            let left = |k: usize| {
                                let t = taken.get(&k).cloned().unwrap_or_default();
                                match field {
                                    BinpackField::Cpu => insts[k].remaining.cpu - t.cpu,
                                    BinpackField::Memory => insts[k].remaining.memory - t.memory,
                                }
                            };
                            let least = fits.iter().map(|k| left(*k)).min().unwrap_or(0);
                            fits.into_iter().filter(|k| left(*k) == least).collect()
                        }
                        Strategy::Spread(field) => {
                            spread_by_definition(insts, &taken, r, field, &fits)
                        }
                    };
                }
                chosen = Some(fits[rng(fits.len()) % fits.len()]);
            }
            let Some(k) = chosen else { continue };
            let taking = reserve(&insts[k], taken.entry(k).or_default(), r);
            plan.tasks.push(Ok(Placement::on(&insts[k], taking)));
        }
        plan
    }

    fn a_strategy(n: usize) -> Strategy {
        match n {
            0 => Strategy::Binpack(BinpackField::Cpu),
            1 => Strategy::Binpack(BinpackField::Memory),
            2 => Strategy::Spread(SpreadField::Instance),
            3 => Strategy::Spread(SpreadField::Attribute("ecs.availability-zone".into())),
            _ => Strategy::Random,
        }
    }

    proptest::proptest! {
        /// The plan checked once per request is the plan by definition, task for task, for any
        /// cluster (full, draining, disconnected, ports taken, tasks of the group or not),
        /// request (resources, ports, distinctInstance, memberOf on task groups) and
        /// strategies, with the same randomness.
        #[test]
        fn place_plans_as_defined(
            shape in proptest::collection::vec(
                (0..5i64, 0..5i64, 0..4usize, 0..3usize, 0..3usize, 0..4u8, proptest::bool::ANY),
                0..16,
            ),
            (count, cpu, mem) in (1..12usize, 0..3i64, 0..3i64),
            (port, distinct, member) in (proptest::bool::ANY, proptest::bool::ANY, 0..3usize),
            strategies in proptest::collection::vec(0..5usize, 0..3),
            seed in proptest::num::u64::ANY,
        ) {
            let mut insts = Vec::new();
            for (k, (c, m, zone, group_tasks, other_tasks, state, ported)) in shape.iter().enumerate() {
                let mut i = inst(&format!("i{k}"), 512 * c, 512 * m, &format!("z{zone}"));
                if *zone == 3 {
                    i.attributes.remove("ecs.availability-zone");
                }
                match state {
                    0 => i.status = InstanceStatus::Draining,
                    1 => i.agent_connected = false,
                    _ => {}
                }
                if *ported {
                    i.used_ports.push(80);
                }
                for _ in 0..*group_tasks {
                    i.tasks.push(RunningTask { group: Some("family:web".into()), family: "web".into() });
                }
                for _ in 0..*other_tasks {
                    i.tasks.push(RunningTask { group: Some("service:api".into()), family: "api".into() });
                }
                insts.push(i);
            }
            let snap = Snapshot { instances: insts };
            let mut r = req(count, 256 * cpu, 256 * mem);
            if port {
                r.needs.ports = vec![80];
            }
            if distinct {
                r.constraints.push(Constraint::DistinctInstance);
            }
            match member {
                1 => r.constraints.push(Constraint::MemberOf(
                    crate::query::parse("not(task:group == family:web)").unwrap(),
                )),
                2 => r.constraints.push(Constraint::MemberOf(
                    crate::query::parse("attribute:ecs.availability-zone in [z0, z1]").unwrap(),
                )),
                _ => {}
            }
            r.strategies = strategies.into_iter().map(a_strategy).collect();
            let lcg = |mut s: u64| move |n: usize| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                ((s >> 33) as usize) % n.max(1)
            };
            proptest::prop_assert_eq!(
                place(&snap, &r, &mut lcg(seed)),
                place_by_definition(&snap, &r, &mut lcg(seed))
            );
        }
    }

    proptest::proptest! {
        /// The counts made once per plan narrow exactly as counting from scratch does, for
        /// any cluster (zones missing, attributes without value, inactive instances, tasks of
        /// other groups) and anything a plan has taken.
        #[test]
        fn spread_counted_once_narrows_as_defined(
            shape in proptest::collection::vec(
                (0..4usize, proptest::bool::ANY, 0..4usize, 0..3usize, 0..3usize),
                1..24,
            ),
            by_instance in proptest::bool::ANY,
        ) {
            let mut insts = Vec::new();
            let mut taken = BTreeMap::new();
            for (k, (zone, active, group_tasks, other_tasks, took)) in shape.iter().enumerate() {
                let mut i = inst(&format!("i{k}"), 4096, 4096, "z");
                match zone {
                    0 => { i.attributes.remove("ecs.availability-zone"); }
                    1 => { i.attributes.insert("ecs.availability-zone".into(), None); }
                    z => { i.attributes.insert("ecs.availability-zone".into(), Some(format!("z{z}"))); }
                }
                if !active {
                    i.status = InstanceStatus::Draining;
                }
                for _ in 0..*group_tasks {
                    i.tasks.push(RunningTask { group: Some("family:web".into()), family: "web".into() });
                }
                for _ in 0..*other_tasks {
                    i.tasks.push(RunningTask { group: Some("service:api".into()), family: "api".into() });
                }
                if *took > 0 && *active {
                    taken.insert(k, Taken { tasks: *took, ..Taken::default() });
                }
                insts.push(i);
            }
            let field = if by_instance {
                SpreadField::Instance
            } else {
                SpreadField::Attribute("ecs.availability-zone".into())
            };
            let mut r = req(1, 1, 1);
            r.strategies = vec![Strategy::Spread(field.clone())];
            let fits: Vec<usize> = insts
                .iter()
                .enumerate()
                .filter(|(_, i)| i.status == InstanceStatus::Active)
                .map(|(k, _)| k)
                .collect();
            let spread = spread_counts(&insts, &r);
            proptest::prop_assert_eq!(
                narrow(&insts, &taken, &[], &r, &spread, fits.clone()),
                spread_by_definition(&insts, &taken, &r, &field, &fits)
            );
        }
    }
}

#[cfg(test)]
mod random_tests {
    use super::*;
    use crate::snapshot::{Needs, Resources};

    fn lcg(mut s: u64) -> impl FnMut(usize) -> usize {
        move |n| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 33) as usize) % n.max(1)
        }
    }

    #[test]
    fn random_finds_the_one_instance_that_fits_among_many() {
        let mut instances: Vec<Instance> = (0..1000)
            .map(|k| Instance::new(format!("i{k}"), format!("arn:i{k}")))
            .collect();
        instances[777].remaining = Resources {
            cpu: 100,
            memory: 100,
        };
        let snap = Snapshot { instances };
        let r = Request {
            count: 2,
            needs: Needs {
                cpu: 60,
                memory: 1,
                ..Needs::default()
            },
            ..Request::default()
        };
        let p = place(&snap, &r, &mut lcg(7));
        assert_eq!(p.tasks[0].as_ref().map(|p| p.instance.as_str()), Ok("i777"));
        assert!(matches!(
            &p.tasks[1],
            Err(Refusal::Instance {
                reason: Reason::Cpu,
                ..
            })
        ));
    }

    #[test]
    fn random_is_uniform_among_the_instances_that_fit() {
        let instances: Vec<Instance> = (0..4)
            .map(|k| {
                let mut i = Instance::new(format!("i{k}"), format!("arn:i{k}"));
                // i0 and i2 fit, i1 and i3 do not.
                let cpu = if k % 2 == 0 { 10 } else { 0 };
                i.remaining = Resources { cpu, memory: 10 };
                i
            })
            .collect();
        let snap = Snapshot { instances };
        let r = Request {
            count: 1,
            needs: Needs {
                cpu: 1,
                ..Needs::default()
            },
            ..Request::default()
        };
        let mut rng = lcg(42);
        let mut hits = BTreeMap::new();
        for _ in 0..4000 {
            let p = place(&snap, &r, &mut rng);
            let Ok(p) = &p.tasks[0] else { panic!("{p:?}") };
            *hits.entry(p.instance.clone()).or_insert(0) += 1;
        }
        assert_eq!(hits.len(), 2, "{hits:?}");
        assert!(hits.values().all(|n| (1700..2300).contains(n)), "{hits:?}");
    }
}
