//! Properties of `place` over random clusters and requests.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};

use berth_scheduler::{
    BinpackField, Constraint, Instance, InstanceStatus, Needs, Placement, Plan, Refusal, Request,
    Resources, RunningTask, Share, Snapshot, SpreadField, Strategy as Placing, check, parse, place,
    split,
};
use proptest::prelude::*;

const GROUP: &str = "family:web";
const EXPRESSIONS: [&str; 6] = [
    "attribute:ecs.availability-zone == z1",
    "attribute:stack exists and attribute:stack != dev",
    "not(task:group == family:web)",
    "task:group == family:db or runningTasksCount < 2",
    "attribute:ecs.availability-zone in [z2, z3] || attribute:stack =~ p*",
    "!(attribute:stack !exists)",
];

fn instance() -> impl Strategy<Value = (Instance, i64)> {
    (
        (0i64..4, 0i64..4, 0i64..3),
        prop::sample::subsequence(vec![80, 443, 8080], 0..=3),
        any::<bool>(),
        0usize..3,
        prop::option::of(prop::sample::select(vec!["prod", "dev"])),
        (0u8..10, 0u8..10),
        prop::collection::vec(prop::sample::select(vec![GROUP, "family:db"]), 0..3),
        0i32..3,
    )
        .prop_map(
            |((cpu, mem, gpu), ports, udp53, az, stack, (conn, drain), groups, dyn_size)| {
                let mut i = Instance::new("", "");
                i.registered = Resources {
                    cpu: 1024 * (cpu + 1),
                    memory: 1024 * (mem + 1),
                };
                // Some of it already taken.
                i.remaining = Resources {
                    cpu: i.registered.cpu - 256 * groups.len() as i64,
                    memory: i.registered.memory - 256 * groups.len() as i64,
                };
                i.gpus = (0..gpu).map(|g| format!("GPU-{g}")).collect();
                i.used_ports = ports;
                if udp53 {
                    i.used_ports_udp.push(53);
                }
                i.dynamic_ports = (60000, 60000 + dyn_size - 1);
                i.attributes
                    .insert("ecs.availability-zone".into(), Some(format!("z{}", az + 1)));
                if let Some(s) = stack {
                    i.attributes.insert("stack".into(), Some(s.into()));
                }
                i.agent_connected = conn > 0;
                if drain == 0 {
                    i.status = InstanceStatus::Draining;
                }
                i.running_tasks_count = groups.len() as i32;
                i.tasks = groups
                    .iter()
                    .map(|g| RunningTask {
                        group: Some(g.to_string()),
                        family: g.trim_start_matches("family:").into(),
                    })
                    .collect();
                (i, 0)
            },
        )
}

fn snapshot(max: usize) -> impl Strategy<Value = Snapshot> {
    prop::collection::vec(instance(), 1..=max).prop_map(|v| Snapshot {
        instances: v
            .into_iter()
            .enumerate()
            .map(|(k, (mut i, _))| {
                i.id = format!("i{k}");
                i.arn = format!("arn:aws:ecs:us-east-1:0:container-instance/c/i{k}");
                i
            })
            .collect(),
    })
}

fn a_strategy() -> impl Strategy<Value = Placing> {
    prop_oneof![
        Just(Placing::Binpack(BinpackField::Cpu)),
        Just(Placing::Binpack(BinpackField::Memory)),
        Just(Placing::Spread(SpreadField::Instance)),
        Just(Placing::Spread(SpreadField::Attribute(
            "ecs.availability-zone".into()
        ))),
        Just(Placing::Random),
    ]
}

fn request(max_count: usize) -> impl Strategy<Value = Request> {
    (
        1..=max_count,
        (0i64..5, 0i64..5, 0i64..2),
        prop::sample::subsequence(vec![80, 8080], 0..=2),
        any::<bool>(),
        0usize..2,
        any::<bool>(),
        prop::option::of(prop::sample::select(EXPRESSIONS.to_vec())),
        prop::collection::vec(a_strategy(), 0..3),
    )
        .prop_map(
            |(count, (cpu, mem, gpu), ports, udp, dynamic, distinct, member, strategies)| {
                let mut constraints = Vec::new();
                if distinct {
                    constraints.push(Constraint::DistinctInstance);
                }
                if let Some(e) = member {
                    constraints.push(Constraint::MemberOf(parse(e).unwrap()));
                }
                Request {
                    count,
                    needs: Needs {
                        cpu: cpu * 256,
                        memory: mem * 256,
                        gpu,
                        ports,
                        ports_udp: if udp { vec![53] } else { vec![] },
                        dynamic_ports: dynamic,
                    },
                    group: GROUP.into(),
                    family: "web".into(),
                    constraints,
                    strategies,
                    required_attributes: vec![],
                }
            },
        )
}

fn lcg(seed: u64) -> impl FnMut(usize) -> usize {
    let mut s = seed;
    move |n| {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((s >> 33) as usize) % n.max(1)
    }
}

/// Whether `i` may take one more task of `r`, written independently of the engine.
fn fits(i: &Instance, r: &Request) -> bool {
    let n = &r.needs;
    let (lo, hi) = i.dynamic_ports;
    let free_dynamic = (lo..=hi).filter(|p| !i.used_ports.contains(p)).count();
    i.status == InstanceStatus::Active
        && i.agent_connected
        && i.remaining.cpu >= n.cpu
        && i.remaining.memory >= n.memory
        && i.gpus.len() as i64 >= n.gpu
        && n.ports.iter().all(|p| !i.used_ports.contains(p))
        && n.ports_udp.iter().all(|p| !i.used_ports_udp.contains(p))
        && free_dynamic >= n.dynamic_ports
        && r.constraints.iter().all(|c| match c {
            Constraint::DistinctInstance => !i
                .tasks
                .counted()
                .any(|(t, _)| t.group.as_deref() == Some(GROUP)),
            Constraint::MemberOf(e) => e.matches(i, &[]),
        })
}

/// Applies one placement of `r` to `i` as the plan says (dynamic ports as picked).
fn apply(i: &mut Instance, r: &Request, p: &Placement) {
    i.remaining.cpu -= r.needs.cpu;
    i.remaining.memory -= r.needs.memory;
    i.gpus.retain(|g| !p.gpus.contains(g));
    i.used_ports.extend(&r.needs.ports);
    i.used_ports.extend(&p.dynamic_ports);
    i.used_ports_udp.extend(&r.needs.ports_udp);
    i.tasks.push(RunningTask {
        group: Some(GROUP.into()),
        family: "web".into(),
    });
}

/// Replays `plan`, checking each placed task against the state it was placed in; returns
/// the states before each task.
fn replay(snap: &Snapshot, r: &Request, plan: &Plan) -> Result<Vec<Vec<Instance>>, TestCaseError> {
    let mut state = snap.instances.clone();
    let mut before = Vec::new();
    for t in &plan.tasks {
        before.push(state.clone());
        if let Ok(p) = t {
            let k = state
                .iter()
                .position(|i| i.id == p.instance)
                .ok_or_else(|| TestCaseError::fail("unknown instance"))?;
            prop_assert!(
                fits(&state[k], r),
                "placed on {} which did not fit",
                p.instance
            );
            prop_assert_eq!(p.dynamic_ports.len(), r.needs.dynamic_ports);
            prop_assert_eq!(p.gpus.len() as i64, r.needs.gpu);
            for g in &p.gpus {
                prop_assert!(
                    state[k].gpus.contains(g),
                    "GPU {} is not free on {}",
                    g,
                    p.instance
                );
            }
            for d in &p.dynamic_ports {
                let (lo, hi) = state[k].dynamic_ports;
                prop_assert!((lo..=hi).contains(d));
            }
            apply(&mut state[k], r, p);
        }
    }
    before.push(state);
    Ok(before)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Nothing goes below zero, no host port is given twice on an instance, and every placed
    /// task passed every check (constraints included) in the state it was placed in.
    #[test]
    fn safe(snap in snapshot(6), r in request(8), seed in any::<u64>()) {
        let plan = place(&snap, &r, &mut lcg(seed));
        prop_assert_eq!(plan.tasks.len(), r.count);
        let states = replay(&snap, &r, &plan)?;
        let last = states.last().cloned().unwrap_or_default();
        for (i, orig) in last.iter().zip(&snap.instances) {
            prop_assert!(i.remaining.cpu >= 0 && i.remaining.memory >= 0);
            prop_assert!(i.remaining.cpu <= orig.registered.cpu);
            let tcp: BTreeSet<i32> = i.used_ports.iter().copied().collect();
            prop_assert_eq!(tcp.len(), i.used_ports.len(), "a TCP port twice on {}", i.id);
            let udp: BTreeSet<i32> = i.used_ports_udp.iter().copied().collect();
            prop_assert_eq!(udp.len(), i.used_ports_udp.len(), "a UDP port twice on {}", i.id);
        }
        // A refusal names an instance that indeed refuses (or there is none to name).
        for (t, state) in plan.tasks.iter().zip(&states) {
            match t {
                Err(Refusal::Instance { id, reason, .. }) => {
                    prop_assert!(state.iter().all(|i| !fits(i, &r)));
                    let i = state.iter().find(|i| &i.id == id).ok_or_else(|| TestCaseError::fail("unknown"))?;
                    prop_assert_eq!(check(i, &r), Some(reason.clone()));
                }
                Err(Refusal::NoInstances) => {
                    prop_assert!(state.iter().all(|i| i.status != InstanceStatus::Active));
                }
                Ok(_) => {}
            }
        }
    }

    /// The first strategy's choice: binpack picks an instance with the least remaining of its
    /// resource among those that fit.
    #[test]
    fn binpack_picks_the_least_remaining(
        snap in snapshot(6), mut r in request(6), seed in any::<u64>(), memory in any::<bool>(),
        rest in prop::collection::vec(a_strategy(), 0..2),
    ) {
        let field = if memory { BinpackField::Memory } else { BinpackField::Cpu };
        r.strategies = std::iter::once(Placing::Binpack(field)).chain(rest).collect();
        let plan = place(&snap, &r, &mut lcg(seed));
        let states = replay(&snap, &r, &plan)?;
        let left = |i: &Instance| match field { BinpackField::Cpu => i.remaining.cpu, BinpackField::Memory => i.remaining.memory };
        for (t, state) in plan.tasks.iter().zip(&states) {
            if let Ok(p) = t {
                let least = state.iter().filter(|i| fits(i, &r)).map(left).min();
                let chosen = state.iter().find(|i| i.id == p.instance).map(left);
                prop_assert_eq!(chosen, least);
            }
        }
    }

    /// Spread over instances or zones keeps the per-value counts of the group within one when
    /// capacity allows (every ACTIVE, connected instance takes everything; no task of the
    /// group runs yet).
    #[test]
    fn spread_is_even(
        snap in snapshot(6), count in 1usize..20, seed in any::<u64>(), by_zone in any::<bool>(),
    ) {
        let mut snap = snap;
        for i in &mut snap.instances {
            i.remaining = Resources { cpu: 1 << 20, memory: 1 << 20 };
            i.tasks.retain(|t| t.group.as_deref() != Some(GROUP));
            i.agent_connected = true;
        }
        let field = if by_zone {
            SpreadField::Attribute("ecs.availability-zone".into())
        } else {
            SpreadField::Instance
        };
        let r = Request {
            count,
            needs: Needs { cpu: 1, memory: 1, ..Needs::default() },
            group: GROUP.into(),
            family: "web".into(),
            strategies: vec![Placing::Spread(field.clone())],
            ..Request::default()
        };
        let plan = place(&snap, &r, &mut lcg(seed));
        let active: Vec<&Instance> = snap.instances.iter().filter(|i| i.status == InstanceStatus::Active).collect();
        if active.is_empty() {
            return Ok(());
        }
        let value = |i: &Instance| match &field {
            SpreadField::Instance => i.id.clone(),
            SpreadField::Attribute(n) => i.attributes.get(n).cloned().flatten().unwrap_or_default(),
        };
        let mut counts: BTreeMap<String, usize> = active.iter().map(|i| (value(i), 0)).collect();
        for p in plan.placed() {
            let i = snap.instances.iter().find(|i| i.id == p.instance).ok_or_else(|| TestCaseError::fail("unknown"))?;
            *counts.entry(value(i)).or_default() += 1;
        }
        prop_assert_eq!(plan.placed().count(), count);
        let max = counts.values().max().copied().unwrap_or(0);
        let min = counts.values().min().copied().unwrap_or(0);
        prop_assert!(max - min <= 1, "{:?}", counts);
    }

    /// A request that can be placed is placed: on small clusters, the engine places as many
    /// tasks as the best of every sequence of choices (brute force).
    #[test]
    fn placeable_is_placed(snap in snapshot(3), r in request(4), seed in any::<u64>()) {
        fn best(state: &mut Vec<Instance>, r: &Request, left: usize) -> usize {
            if left == 0 {
                return 0;
            }
            let mut most = 0;
            for k in 0..state.len() {
                if fits(&state[k], r) {
                    let saved = state[k].clone();
                    let (lo, _) = saved.dynamic_ports;
                    let dynamic: Vec<i32> = (lo..).filter(|p| !saved.used_ports.contains(p)).take(r.needs.dynamic_ports).collect();
                    let gpus: Vec<String> = saved.gpus.iter().take(r.needs.gpu as usize).cloned().collect();
                    let p = Placement { instance: saved.id.clone(), arn: saved.arn.clone(), dynamic_ports: dynamic, gpus };
                    apply(&mut state[k], r, &p);
                    most = most.max(1 + best(state, r, left - 1));
                    state[k] = saved;
                    if most == left {
                        break;
                    }
                }
            }
            most
        }
        let mut state = snap.instances.clone();
        let possible = best(&mut state, &r, r.count);
        let plan = place(&snap, &r, &mut lcg(seed));
        prop_assert_eq!(plan.placed().count(), possible);
    }

    /// Successive requests (each placed on the state the previous ones left, as RunTask
    /// calls see the store) never give a GPU id or a host port twice on an instance.
    #[test]
    fn successive_placements_share_nothing(
        snap in snapshot(4), requests in prop::collection::vec(request(4), 1..4), seed in any::<u64>(),
    ) {
        let mut state = snap.clone();
        let mut rng = lcg(seed);
        let mut gpus: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        let mut ports: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
        for i in &snap.instances {
            ports.insert(i.id.clone(), i.used_ports.iter().copied().collect());
            gpus.insert(i.id.clone(), BTreeSet::new());
        }
        for r in &requests {
            let plan = place(&state, r, &mut rng);
            for p in plan.placed() {
                let k = state.instances.iter().position(|i| i.id == p.instance).ok_or_else(|| TestCaseError::fail("unknown"))?;
                for g in &p.gpus {
                    prop_assert!(gpus.entry(p.instance.clone()).or_default().insert(g.clone()), "GPU {} twice on {}", g, p.instance);
                }
                for port in r.needs.ports.iter().chain(&p.dynamic_ports) {
                    prop_assert!(ports.entry(p.instance.clone()).or_default().insert(*port), "port {} twice on {}", port, p.instance);
                }
                apply(&mut state.instances[k], r, p);
            }
        }
    }

    /// A capacity provider strategy's split: the counts sum to the request, the base is
    /// honoured first, and beyond it each provider's share is its weight's quota rounded down
    /// or up (weight 0: nothing beyond its base; all weights 0: refused).
    #[test]
    fn capacity_split_follows_base_and_weights(
        items in prop::collection::vec((0u32..4, 0u32..6), 1..5),
        base_at in any::<prop::sample::Index>(),
        count in 0usize..40,
    ) {
        let base_k = base_at.index(items.len());
        let strategy: Vec<Share> = items
            .iter()
            .enumerate()
            .map(|(k, (b, w))| Share { base: if k == base_k { *b } else { 0 }, weight: *w })
            .collect();
        let total: u64 = strategy.iter().map(|s| u64::from(s.weight)).sum();
        let got = split(&strategy, count);
        if total == 0 {
            prop_assert!(got.is_err());
            return Ok(());
        }
        let got = got.map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(got.iter().sum::<usize>(), count);
        if strategy.len() == 1 {
            prop_assert_eq!(got[0], count);
            return Ok(());
        }
        let base = (strategy[base_k].base as usize).min(count);
        prop_assert!(got[base_k] >= base);
        let rest = (count - base) as u64;
        for (k, s) in strategy.iter().enumerate() {
            let beyond = (got[k] - if k == base_k { base } else { 0 }) as u64;
            let exact = rest * u64::from(s.weight);
            let floor = exact / total;
            let ceil = exact.div_ceil(total);
            prop_assert!(beyond == floor || beyond == ceil, "{:?} {:?} {}", strategy, got, count);
        }
    }
}
