//! Where a task may run: what it needs (CPU units, MiB, host ports) and a simple choice among
//! container instances that have it. A pure function of a snapshot; the full scheduler
//! (strategies, constraints, capacity providers) is its own issue.

use berth_wire::ecs::shapes as s;

/// What one task reserves on its container instance.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Needs {
    pub cpu: i32,
    pub memory: i32,
    /// Static host ports (TCP).
    pub ports: Vec<i32>,
    /// Static host ports (UDP).
    pub ports_udp: Vec<i32>,
}

/// An instance as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub id: String,
    pub remaining_cpu: i32,
    pub remaining_memory: i32,
    pub used_ports: Vec<i32>,
    pub used_ports_udp: Vec<i32>,
    pub connected: bool,
}

/// Why a task could not be placed, as ECS names it in `failures`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Cpu,
    Memory,
    Ports,
    PortsUdp,
    Agent,
}

impl Refusal {
    pub fn reason(self) -> &'static str {
        match self {
            Refusal::Cpu => "RESOURCE:CPU",
            Refusal::Memory => "RESOURCE:MEMORY",
            Refusal::Ports => "RESOURCE:PORTS",
            Refusal::PortsUdp => "RESOURCE:PORTS_UDP",
            Refusal::Agent => "AGENT",
        }
    }
}

/// The needs of a task: task-level cpu/memory when set, else the sum of its containers'
/// (memory: the hard limit, else the reservation); host ports in host and bridge modes.
pub fn needs(td: &s::TaskDefinition, task_cpu: Option<i32>, task_memory: Option<i32>) -> Needs {
    let containers = td.container_definitions.as_deref().unwrap_or_default();
    let cpu = task_cpu.unwrap_or_else(|| containers.iter().map(|c| c.cpu.unwrap_or(0)).sum());
    let memory = task_memory.unwrap_or_else(|| {
        containers
            .iter()
            .map(|c| c.memory.or(c.memory_reservation).unwrap_or(0))
            .sum()
    });
    let host_mode = matches!(
        td.network_mode,
        Some(s::NetworkMode::Host) | Some(s::NetworkMode::Bridge)
    );
    let mut n = Needs {
        cpu,
        memory,
        ..Needs::default()
    };
    if host_mode {
        for c in containers {
            for p in c.port_mappings.iter().flatten() {
                let host = match td.network_mode {
                    Some(s::NetworkMode::Host) => p.host_port.or(p.container_port),
                    _ => p.host_port.filter(|h| *h != 0),
                };
                if let Some(h) = host {
                    if p.protocol == Some(s::TransportProtocol::Udp) {
                        n.ports_udp.push(h);
                    } else {
                        n.ports.push(h);
                    }
                }
            }
        }
    }
    n
}

/// Why `c` cannot take `n`, if it cannot.
pub fn refusal(c: &Candidate, n: &Needs) -> Option<Refusal> {
    if !c.connected {
        return Some(Refusal::Agent);
    }
    if c.remaining_cpu < n.cpu {
        return Some(Refusal::Cpu);
    }
    if c.remaining_memory < n.memory {
        return Some(Refusal::Memory);
    }
    if n.ports.iter().any(|p| c.used_ports.contains(p)) {
        return Some(Refusal::Ports);
    }
    if n.ports_udp.iter().any(|p| c.used_ports_udp.contains(p)) {
        return Some(Refusal::PortsUdp);
    }
    None
}

/// Places `count` tasks of needs `n` on `candidates`, reserving as it goes (so two tasks never
/// share the last MiB or a port): each task on a random instance among those that fit
/// (`pick(k)` returns an index below `k`: the randomness is an input). Returns the chosen
/// instance per task, or the refusal of the first instance in the snapshot when none fits.
pub fn place(
    candidates: &mut [Candidate],
    n: &Needs,
    count: usize,
    mut pick: impl FnMut(usize) -> usize,
) -> Vec<Result<String, Refusal>> {
    (0..count)
        .map(|_| {
            let fits: Vec<usize> = (0..candidates.len())
                .filter(|i| refusal(&candidates[*i], n).is_none())
                .collect();
            if fits.is_empty() {
                let why = candidates
                    .iter()
                    .filter_map(|c| refusal(c, n))
                    .max_by_key(|r| *r as u8)
                    .unwrap_or(Refusal::Agent);
                return Err(why);
            }
            let i = fits[pick(fits.len()) % fits.len()];
            let c = &mut candidates[i];
            c.remaining_cpu -= n.cpu;
            c.remaining_memory -= n.memory;
            c.used_ports.extend(&n.ports);
            c.used_ports_udp.extend(&n.ports_udp);
            Ok(c.id.clone())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cand(id: &str, cpu: i32, mem: i32) -> Candidate {
        Candidate {
            id: id.into(),
            remaining_cpu: cpu,
            remaining_memory: mem,
            used_ports: vec![22],
            used_ports_udp: vec![],
            connected: true,
        }
    }

    #[test]
    fn refusals_name_the_resource() {
        let n = Needs {
            cpu: 512,
            memory: 256,
            ports: vec![80],
            ports_udp: vec![],
        };
        assert_eq!(refusal(&cand("a", 100, 1000), &n), Some(Refusal::Cpu));
        assert_eq!(refusal(&cand("a", 1000, 100), &n), Some(Refusal::Memory));
        let mut c = cand("a", 1000, 1000);
        c.used_ports.push(80);
        assert_eq!(refusal(&c, &n), Some(Refusal::Ports));
        c.connected = false;
        assert_eq!(refusal(&c, &n), Some(Refusal::Agent));
        assert_eq!(Refusal::Memory.reason(), "RESOURCE:MEMORY");
    }

    #[test]
    fn the_last_port_is_given_once() {
        let mut cs = vec![cand("a", 4096, 4096)];
        let n = Needs {
            cpu: 10,
            memory: 10,
            ports: vec![8080],
            ports_udp: vec![],
        };
        let r = place(&mut cs, &n, 2, |_| 0);
        assert_eq!(r[0], Ok("a".into()));
        assert_eq!(r[1], Err(Refusal::Ports));
    }

    proptest! {
        /// No instance ever goes below zero CPU or memory, whatever the requests.
        #[test]
        fn never_overcommits(
            caps in proptest::collection::vec((0i32..4096, 0i32..8192), 1..6),
            cpu in 0i32..2048, mem in 0i32..4096, count in 1usize..10, seed in 0usize..1000,
        ) {
            let mut cs: Vec<Candidate> = caps.iter().enumerate().map(|(i, (c, m))| cand(&i.to_string(), *c, *m)).collect();
            let n = Needs { cpu, memory: mem, ports: vec![], ports_udp: vec![] };
            let mut k = seed;
            let placed = place(&mut cs, &n, count, |len| { k = k.wrapping_mul(31).wrapping_add(7); k % len });
            for c in &cs {
                prop_assert!(c.remaining_cpu >= 0 && c.remaining_memory >= 0);
            }
            let ok = placed.iter().filter(|r| r.is_ok()).count() as i64;
            let total_cpu: i64 = caps.iter().map(|(c, _)| *c as i64).sum();
            prop_assert!(ok * cpu as i64 <= total_cpu);
        }
    }
}
