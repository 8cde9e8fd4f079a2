//! Where a task may run, between the store's shapes and the pure engine of `berth_scheduler`:
//! what a task needs (CPU units, MiB, GPUs, host ports), a container instance as the engine
//! sees it, the constraints and strategies of a task definition and a request (validated as
//! ECS validates them), and a refusal as ECS phrases it in `failures`.

use berth_scheduler as sched;
use berth_wire::AwsError;
use berth_wire::ecs::shapes as s;

use super::common::invalid;
use super::instance_usage::InstanceUsage;

/// What one task reserves on its container instance.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Needs {
    pub cpu: i32,
    pub memory: i32,
    /// Static host ports (TCP).
    pub ports: Vec<i32>,
    /// Static host ports (UDP).
    pub ports_udp: Vec<i32>,
    /// TCP host ports to pick from the instance's dynamic range (bridge mappings without a
    /// host port).
    pub dynamic_ports: usize,
}

/// The needs of a task: task-level cpu/memory when set, else the sum of its containers'
/// (memory: the hard limit, else the reservation); host ports in host and bridge modes (a
/// bridge mapping without a host port, or with 0, takes a dynamic TCP port).
pub fn needs(td: &s::TaskDefinition, task_cpu: Option<i32>, task_memory: Option<i32>) -> Needs {
    let containers = td.container_definitions.as_deref().unwrap_or_default();
    let cpu = task_cpu.unwrap_or_else(|| containers.iter().map(|c| c.cpu.unwrap_or(0)).sum());
    let memory = task_memory.unwrap_or_else(|| {
        containers
            .iter()
            .map(|c| c.memory.or(c.memory_reservation).unwrap_or(0))
            .sum()
    });
    // No network mode is bridge, ECS's default on Linux.
    let host_mode = matches!(
        td.network_mode,
        Some(s::NetworkMode::Host) | Some(s::NetworkMode::Bridge) | None
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
                let udp = p.protocol == Some(s::TransportProtocol::Udp);
                match host {
                    Some(h) if udp => n.ports_udp.push(h),
                    Some(h) => n.ports.push(h),
                    // Dynamic UDP ports are left to the host (ECS counts TCP ones).
                    None if !udp && p.container_port.is_some() => n.dynamic_ports += 1,
                    None => {}
                }
            }
        }
    }
    n
}

/// The host ports placement picked for the dynamic mappings of `td` (`ports`, in the order
/// [`needs`] counts them), as each container's `networkBindings`; the agent forwards these
/// ports unless the host has meanwhile taken one (then it picks another and reports it).
pub fn dynamic_bindings(td: &s::TaskDefinition, ports: &[i32]) -> Vec<Vec<s::NetworkBinding>> {
    let mut next = ports.iter();
    let bridge = matches!(td.network_mode, Some(s::NetworkMode::Bridge) | None);
    td.container_definitions
        .iter()
        .flatten()
        .map(|c| {
            c.port_mappings
                .iter()
                .flatten()
                .filter(|p| {
                    bridge
                        && p.host_port.is_none_or(|h| h == 0)
                        && p.protocol != Some(s::TransportProtocol::Udp)
                        && p.container_port.is_some()
                })
                .filter_map(|p| {
                    next.next().map(|h| s::NetworkBinding {
                        bind_ip: Some("0.0.0.0".into()),
                        container_port: p.container_port,
                        host_port: Some(*h),
                        protocol: Some(s::TransportProtocol::Tcp),
                        ..Default::default()
                    })
                })
                .collect()
        })
        .collect()
}

/// The engine's needs for `n`, with the GPUs the definition's containers ask for.
pub fn engine_needs(n: &Needs, td: &s::TaskDefinition) -> sched::Needs {
    let gpu = td
        .container_definitions
        .iter()
        .flatten()
        .flat_map(|c| c.resource_requirements.iter().flatten())
        .filter(|r| r.r#type == s::ResourceType::Gpu)
        .filter_map(|r| r.value.as_deref()?.parse::<i64>().ok())
        .sum();
    sched::Needs {
        cpu: i64::from(n.cpu),
        memory: i64::from(n.memory),
        gpu,
        ports: n.ports.clone(),
        ports_udp: n.ports_udp.clone(),
        dynamic_ports: n.dynamic_ports,
    }
}

/// The GPU ids each container of `td` is given from `gpus` (the ids its task holds), in
/// container order: as many as the container's `GPU` resource requirement asks.
pub fn container_gpus(td: &s::TaskDefinition, gpus: &[String]) -> Vec<Vec<String>> {
    let mut left = gpus.iter();
    td.container_definitions
        .iter()
        .flatten()
        .map(|c| {
            let n: usize = c
                .resource_requirements
                .iter()
                .flatten()
                .filter(|r| r.r#type == s::ResourceType::Gpu)
                .filter_map(|r| r.value.as_deref()?.parse::<usize>().ok())
                .sum();
            left.by_ref().take(n).cloned().collect()
        })
        .collect()
}

/// The attributes a container instance must have for `td` (its `requiresAttributes`, which
/// ECS derives from what the definition uses).
pub fn required_attributes(td: &s::TaskDefinition) -> Vec<sched::RequiredAttribute> {
    td.requires_attributes
        .iter()
        .flatten()
        .map(|a| sched::RequiredAttribute {
            name: a.name.clone(),
            value: a.value.clone(),
        })
        .collect()
}

fn resources(rs: &[s::Resource]) -> sched::Resources {
    let int = |name: &str| {
        rs.iter()
            .find(|r| r.name.as_deref() == Some(name))
            .map(|r| {
                r.integer_value
                    .map(i64::from)
                    .or(r.long_value)
                    .or_else(|| r.string_set_value.as_ref().map(|v| v.len() as i64))
                    .unwrap_or(0)
            })
            .unwrap_or(0)
    };
    sched::Resources {
        cpu: int("CPU"),
        memory: int("MEMORY"),
    }
}

fn string_set(rs: &[s::Resource], name: &str) -> Vec<String> {
    rs.iter()
        .find(|r| r.name.as_deref() == Some(name))
        .and_then(|r| r.string_set_value.clone())
        .unwrap_or_default()
}

fn port_set(rs: &[s::Resource], name: &str) -> Vec<i32> {
    string_set(rs, name)
        .iter()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Container instance `id` (its store id, stored as `ci` with `usage`) as the engine sees it,
/// holding `tasks`.
pub fn instance(
    id: &str,
    ci: &s::ContainerInstance,
    usage: &InstanceUsage,
    connected: bool,
    tasks: sched::HeldTasks,
) -> sched::Instance {
    let registered = ci.registered_resources.as_deref().unwrap_or_default();
    let mut i = sched::Instance::new(id, ci.container_instance_arn.clone().unwrap_or_default());
    i.ec2_instance_id = ci.ec2_instance_id.clone();
    i.status = if ci.status.as_deref() == Some("ACTIVE") {
        sched::InstanceStatus::Active
    } else {
        sched::InstanceStatus::Draining
    };
    i.agent_connected = connected;
    i.agent_version = ci
        .version_info
        .as_ref()
        .and_then(|v| v.agent_version.clone());
    i.registered_at_ms = ci.registered_at.map(|t| t.millis());
    i.registered = resources(registered);
    i.attributes = ci
        .attributes
        .iter()
        .flatten()
        .map(|a| (a.name.clone(), a.value.clone()))
        .collect();
    set_usage(&mut i, usage, tasks);
    i
}

/// Sets on `i` what tasks change on a container instance, its `usage` (remaining resources,
/// host ports and GPUs in use, running tasks count), and the tasks it holds.
pub fn set_usage(i: &mut sched::Instance, usage: &InstanceUsage, tasks: sched::HeldTasks) {
    let remaining = usage.remaining_resources.as_slice();
    i.remaining = resources(remaining);
    i.used_ports = port_set(remaining, "PORTS");
    i.used_ports_udp = port_set(remaining, "PORTS_UDP");
    i.gpus = string_set(remaining, "GPU");
    i.running_tasks_count = usage.running_tasks_count;
    i.tasks = tasks;
}

/// Whether container instances `a` and `b` differ at most in what [`set_usage`] sets, so
/// that the engine's view of `a` becomes `b`'s by setting its usage only (what placing a task
/// or a task's state change writes, most writes of an instance).
pub fn differs_in_usage_only(a: &s::ContainerInstance, b: &s::ContainerInstance) -> bool {
    a.container_instance_arn == b.container_instance_arn
        && a.ec2_instance_id == b.ec2_instance_id
        && a.status == b.status
        && a.version_info == b.version_info
        && a.registered_at == b.registered_at
        && a.registered_resources == b.registered_resources
        && a.attributes == b.attributes
}

fn bad(e: sched::InvalidPlacement) -> AwsError {
    invalid(e)
}

/// The constraints (the task definition's, then the request's) and strategies of a placement,
/// checked as ECS checks them (InvalidParameterException).
pub fn rules(
    td: &s::TaskDefinition,
    constraints: Option<&[s::PlacementConstraint]>,
    strategies: Option<&[s::PlacementStrategy]>,
) -> Result<(Vec<sched::Constraint>, Vec<sched::Strategy>), AwsError> {
    let from_td = td.placement_constraints.as_deref().unwrap_or_default();
    let given = constraints.unwrap_or_default();
    let strategies = strategies.unwrap_or_default();
    sched::check_counts(from_td.len() + given.len(), strategies.len()).map_err(bad)?;
    let mut out = Vec::new();
    for c in from_td {
        out.push(
            sched::constraint(c.r#type.map(|t| t.as_str()), c.expression.as_deref())
                .map_err(bad)?,
        );
    }
    for c in given {
        out.push(
            sched::constraint(c.r#type.map(|t| t.as_str()), c.expression.as_deref())
                .map_err(bad)?,
        );
    }
    let strategies = strategies
        .iter()
        .map(|p| sched::strategy(p.r#type.map(|t| t.as_str()), p.field.as_deref()).map_err(bad))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((out, strategies))
}

/// A refusal as ECS phrases it in `failures`.
pub fn failure(r: &sched::Refusal) -> s::Failure {
    match r {
        sched::Refusal::Instance { arn, reason, .. } => s::Failure {
            arn: Some(arn.clone()),
            reason: Some(reason.as_str().into()),
            detail: reason.detail(),
        },
        sched::Refusal::NoInstances => s::Failure {
            arn: None,
            reason: Some("No Container Instances were found in your cluster.".into()),
            detail: None,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resource(name: &str, int: Option<i32>, set: Option<&[&str]>) -> s::Resource {
        s::Resource {
            name: Some(name.into()),
            r#type: Some(
                if set.is_some() {
                    "STRINGSET"
                } else {
                    "INTEGER"
                }
                .into(),
            ),
            integer_value: int,
            string_set_value: set.map(|v| v.iter().map(|p| p.to_string()).collect()),
            ..Default::default()
        }
    }

    /// An entry refreshed by its usage alone is the entry built from the new record.
    #[test]
    fn setting_usage_matches_a_rebuild_when_only_usage_changed() {
        let before = s::ContainerInstance {
            container_instance_arn: Some("arn:aws:ecs:r:1:container-instance/c/i".into()),
            status: Some("ACTIVE".into()),
            attributes: Some(vec![s::Attribute {
                name: "ecs.availability-zone".into(),
                value: Some("r-a".into()),
                ..Default::default()
            }]),
            registered_resources: Some(vec![
                resource("CPU", Some(1024), None),
                resource("PORTS", None, Some(&["22"])),
            ]),
            remaining_resources: Some(vec![
                resource("CPU", Some(1024), None),
                resource("PORTS", None, Some(&["22"])),
            ]),
            running_tasks_count: Some(0),
            ..Default::default()
        };
        let mut after = before.clone();
        after.remaining_resources = Some(vec![
            resource("CPU", Some(768), None),
            resource("PORTS", None, Some(&["22", "8080"])),
        ]);
        after.running_tasks_count = Some(1);
        let held: sched::HeldTasks = [sched::RunningTask {
            group: Some("family:web".into()),
            family: "web".into(),
        }]
        .into_iter()
        .collect();
        assert!(differs_in_usage_only(&before, &after));
        let used = |ci: &s::ContainerInstance| InstanceUsage::of(ci);
        let mut refreshed = instance(
            "c/i",
            &before,
            &used(&before),
            false,
            sched::HeldTasks::default(),
        );
        set_usage(&mut refreshed, &used(&after), held.clone());
        assert_eq!(
            refreshed,
            instance("c/i", &after, &used(&after), false, held)
        );
        let mut drained = after.clone();
        drained.status = Some("DRAINING".into());
        assert!(!differs_in_usage_only(&after, &drained));
        let mut tagged = after.clone();
        tagged.attributes = None;
        assert!(!differs_in_usage_only(&after, &tagged));
    }

    #[test]
    fn rules_are_checked_as_ecs_checks_them() {
        let td = s::TaskDefinition {
            placement_constraints: Some(vec![s::TaskDefinitionPlacementConstraint {
                r#type: Some(s::TaskDefinitionPlacementConstraintType::MemberOf),
                expression: Some("attribute:stack == prod".into()),
            }]),
            ..Default::default()
        };
        let distinct = s::PlacementConstraint {
            r#type: Some(s::PlacementConstraintType::DistinctInstance),
            expression: None,
        };
        let spread = s::PlacementStrategy {
            r#type: Some(s::PlacementStrategyType::Spread),
            field: Some("attribute:ecs.availability-zone".into()),
        };
        let (c, st) = rules(
            &td,
            Some(std::slice::from_ref(&distinct)),
            Some(std::slice::from_ref(&spread)),
        )
        .unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(st.len(), 1);
        let e = rules(&td, Some(&vec![distinct; 10]), None).unwrap_err();
        assert_eq!(e.code, "InvalidParameterException");
        let e = rules(&td, None, Some(&vec![spread; 6])).unwrap_err();
        assert_eq!(e.code, "InvalidParameterException");
        let e = rules(
            &td,
            Some(&[s::PlacementConstraint {
                r#type: Some(s::PlacementConstraintType::MemberOf),
                expression: Some("attribute:stack in [prod".into()),
            }]),
            None,
        )
        .unwrap_err();
        assert!(
            e.message.contains("attribute:stack in [prod"),
            "{}",
            e.message
        );
    }

    #[test]
    fn an_instance_as_the_engine_sees_it() {
        let ci = s::ContainerInstance {
            container_instance_arn: Some("arn:ci".into()),
            status: Some("DRAINING".into()),
            remaining_resources: Some(vec![
                s::Resource {
                    name: Some("CPU".into()),
                    integer_value: Some(512),
                    ..Default::default()
                },
                s::Resource {
                    name: Some("PORTS".into()),
                    string_set_value: Some(vec!["22".into(), "80".into()]),
                    ..Default::default()
                },
                s::Resource {
                    name: Some("GPU".into()),
                    string_set_value: Some(vec!["gpu0".into()]),
                    ..Default::default()
                },
            ]),
            attributes: Some(vec![s::Attribute {
                name: "stack".into(),
                value: Some("prod".into()),
                ..Default::default()
            }]),
            ..Default::default()
        };
        let i = instance(
            "web/1",
            &ci,
            &InstanceUsage::of(&ci),
            true,
            sched::HeldTasks::default(),
        );
        assert_eq!(i.status, sched::InstanceStatus::Draining);
        assert_eq!(i.remaining.cpu, 512);
        assert_eq!(i.gpus, ["gpu0"]);
        assert_eq!(i.used_ports, vec![22, 80]);
        assert_eq!(i.attributes.get("stack"), Some(&Some("prod".into())));
        let f = failure(&sched::Refusal::Instance {
            id: "web/1".into(),
            arn: "arn:ci".into(),
            reason: sched::Reason::Memory,
        });
        assert_eq!(f.reason.as_deref(), Some("RESOURCE:MEMORY"));
        assert_eq!(f.arn.as_deref(), Some("arn:ci"));
    }

    #[test]
    fn bridge_mappings_without_a_host_port_take_dynamic_ones() {
        let td: s::TaskDefinition = serde_json::from_value(serde_json::json!({
            "networkMode": "bridge",
            "containerDefinitions": [{"name": "a", "memory": 8, "portMappings": [
                {"containerPort": 80},
                {"containerPort": 81, "hostPort": 0},
                {"containerPort": 82, "hostPort": 8082},
                {"containerPort": 53, "protocol": "udp", "hostPort": 53}
            ]}]
        }))
        .unwrap();
        let n = needs(&td, None, None);
        assert_eq!(n.ports, [8082]);
        assert_eq!(n.ports_udp, [53]);
        assert_eq!(n.dynamic_ports, 2);
        assert_eq!(engine_needs(&n, &td).dynamic_ports, 2);
        let b = dynamic_bindings(&td, &[49153, 49154]);
        let ports: Vec<(Option<i32>, Option<i32>)> = b
            .iter()
            .flatten()
            .map(|x| (x.container_port, x.host_port))
            .collect();
        assert_eq!(ports.len(), 2);
        assert!(ports.iter().all(|(_, h)| h.is_some_and(|h| h >= 49153)));
        let gpus = ["g0".to_string(), "g1".to_string()];
        assert_eq!(container_gpus(&td, &gpus), vec![Vec::<String>::new()]);
    }
}
