//! Pure shaping of ECS task metadata (v3/v4) responses from the agent's task state: the
//! container, task and Docker-stats documents with ECS's field names.

use std::net::Ipv4Addr;

use berth_runtime::ContainerStats;
use serde_json::{Map, Value, json};

use crate::plan;
use crate::task::TaskRecord;

/// How a task's containers reach the endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetView {
    /// `host`: from the host's namespace (peer address 169.254.170.2).
    Host,
    /// `none`: no endpoint (loopback only).
    None,
    /// `awsvpc`: the task's namespace, linked to the host by a veth whose task side has `ip`
    /// (once set up).
    Task {
        /// The task namespace's name.
        netns: String,
        /// The task side's address.
        ip: Option<Ipv4Addr>,
    },
}

impl NetView {
    fn mode(&self) -> &'static str {
        match self {
            NetView::Host => "host",
            NetView::None => "none",
            NetView::Task { .. } => "awsvpc",
        }
    }
}

/// What the endpoint knows about one task.
#[derive(Debug, Clone)]
pub struct TaskView {
    /// The task manager's record, as last saved.
    pub record: TaskRecord,
    /// Its network.
    pub network: NetView,
    /// The host's availability zone, when known.
    pub availability_zone: Option<String>,
}

/// Milliseconds since the epoch as RFC 3339 (UTC), as ECS's Go agent prints times.
pub fn rfc3339(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let frac = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{frac:03}Z",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    )
}

fn container_known_status(rec: &TaskRecord, i: usize) -> &'static str {
    let c = &rec.containers[i];
    if c.exited {
        "STOPPED"
    } else if c.started || c.created_at.is_some() {
        // Created and being started: its process can only ask once it runs.
        "RUNNING"
    } else if rec.pull_stopped_at.is_some() {
        "PULLED"
    } else {
        "NONE"
    }
}

fn desired(rec: &TaskRecord) -> &'static str {
    if rec.assignment.desired_status == "STOPPED" {
        "STOPPED"
    } else {
        "RUNNING"
    }
}

/// The container document (`${ECS_CONTAINER_METADATA_URI_V4}`) of container `i`.
pub fn container_json(view: &TaskView, i: usize) -> Value {
    let rec = &view.record;
    let a = &rec.assignment;
    let c = &rec.containers[i];
    let def = plan::definitions(a).get(i);
    let ovr = plan::container_override(a, &c.name);
    let mut o = Map::new();
    o.insert("DockerId".into(), json!(c.runtime_id));
    o.insert("Name".into(), json!(c.name));
    o.insert("DockerName".into(), json!(c.runtime_id));
    o.insert(
        "Image".into(),
        json!(def.and_then(|d| d.image.clone()).unwrap_or_default()),
    );
    o.insert(
        "ImageID".into(),
        json!(c.image_digest.clone().unwrap_or_default()),
    );
    let mut labels = def
        .and_then(|d| d.docker_labels.clone())
        .unwrap_or_default();
    labels.extend(plan::ecs_labels(a, &c.name));
    o.insert("Labels".into(), json!(labels));
    o.insert("DesiredStatus".into(), json!(desired(rec)));
    o.insert("KnownStatus".into(), json!(container_known_status(rec, i)));
    if c.exited
        && let Some(code) = c.exit_code
    {
        o.insert("ExitCode".into(), json!(code));
    }
    let cpu = ovr
        .and_then(|o| o.cpu)
        .or(def.and_then(|d| d.cpu))
        .unwrap_or(0)
        .max(0);
    let mut limits = Map::new();
    limits.insert("CPU".into(), json!(cpu));
    if let Some(m) = ovr.and_then(|o| o.memory).or(def.and_then(|d| d.memory)) {
        limits.insert("Memory".into(), json!(m));
    }
    o.insert("Limits".into(), Value::Object(limits));
    if let Some(t) = c.created_at {
        o.insert("CreatedAt".into(), json!(rfc3339(t)));
    }
    if let Some(t) = c.started_at {
        o.insert("StartedAt".into(), json!(rfc3339(t)));
    }
    if c.exited
        && let Some(t) = c.finished_at
    {
        o.insert("FinishedAt".into(), json!(rfc3339(t)));
    }
    o.insert("Type".into(), json!("NORMAL"));
    if let Some(arn) = a
        .containers
        .iter()
        .find(|x| x.name.as_deref() == Some(c.name.as_str()))
        .and_then(|x| x.container_arn.clone())
    {
        o.insert("ContainerARN".into(), json!(arn));
    }
    if let Some(h) = c.health {
        o.insert("Health".into(), json!({"status": h.as_str()}));
    }
    if let Some(lc) = def.and_then(|d| d.log_configuration.as_ref()) {
        o.insert("LogDriver".into(), json!(lc.log_driver.as_str()));
        if let Some(opts) = &lc.options {
            o.insert("LogOptions".into(), json!(opts));
        }
    }
    let mut net = Map::new();
    let td_mode = view.record.assignment.task_definition.network_mode;
    let mode = match view.network {
        NetView::Task { .. } if plan::is_bridge(td_mode) => "bridge",
        _ => view.network.mode(),
    };
    net.insert("NetworkMode".into(), json!(mode));
    if let NetView::Task { .. } = view.network {
        // The task's own address (bridge or ENI), never the link-local one of the metadata
        // link, which ECS would not show.
        let addrs: Vec<String> = view
            .record
            .network
            .as_ref()
            .and_then(|n| n.address)
            .map(|a| vec![a.to_string()])
            .unwrap_or_default();
        net.insert("IPv4Addresses".into(), json!(addrs));
        if let Some(eni) = &view.record.assignment.network {
            let i = &eni.interface;
            net.insert("AttachmentIndex".into(), json!(0));
            net.insert("MACAddress".into(), json!(i.mac_address));
            net.insert("IPv4SubnetCIDRBlock".into(), json!(i.subnet_cidr));
            net.insert("PrivateDNSName".into(), json!(i.private_dns_name));
            net.insert(
                "SubnetGatewayIpv4Address".into(),
                json!(format!(
                    "{}/{}",
                    i.gateway_ipv4_address,
                    i.subnet_cidr.rsplit('/').next().unwrap_or("32")
                )),
            );
        }
    }
    o.insert("Networks".into(), json!([Value::Object(net)]));
    Value::Object(o)
}

/// The task's cpu (vCPU) and memory (MiB), as ECS shows task-level limits.
fn task_limits(view: &TaskView) -> Option<Value> {
    let r = plan::task_resources(&view.record.assignment)?;
    let mut l = Map::new();
    if let Some(cpu) = r.cpu_units {
        l.insert("CPU".into(), json!(f64::from(cpu) / 1024.0));
    }
    if let Some(m) = r.memory_mib {
        l.insert("Memory".into(), json!(m));
    }
    Some(Value::Object(l))
}

/// The task document (`${ECS_CONTAINER_METADATA_URI_V4}/task`).
pub fn task_json(view: &TaskView) -> Value {
    let rec = &view.record;
    let a = &rec.assignment;
    let td = &a.task_definition;
    let mut o = Map::new();
    o.insert("Cluster".into(), json!(a.cluster_arn));
    o.insert("TaskARN".into(), json!(a.task_arn));
    o.insert(
        "Family".into(),
        json!(td.family.clone().unwrap_or_default()),
    );
    o.insert(
        "Revision".into(),
        json!(td.revision.map(|r| r.to_string()).unwrap_or_default()),
    );
    o.insert("DesiredStatus".into(), json!(desired(rec)));
    o.insert(
        "KnownStatus".into(),
        json!(rec.reported.clone().unwrap_or_else(|| "NONE".into())),
    );
    if let Some(l) = task_limits(view) {
        o.insert("Limits".into(), l);
    }
    if let Some(t) = rec.pull_started_at {
        o.insert("PullStartedAt".into(), json!(rfc3339(t)));
    }
    if let Some(t) = rec.pull_stopped_at {
        o.insert("PullStoppedAt".into(), json!(rfc3339(t)));
    }
    if let Some(t) = rec.execution_stopped_at
        && rec.containers.iter().all(|c| c.exited)
    {
        o.insert("ExecutionStoppedAt".into(), json!(rfc3339(t)));
    }
    if let Some(az) = &view.availability_zone {
        o.insert("AvailabilityZone".into(), json!(az));
    }
    if let Some(lt) = a.launch_type {
        o.insert("LaunchType".into(), json!(lt.as_str()));
    }
    let containers: Vec<Value> = (0..rec.containers.len())
        .map(|i| container_json(view, i))
        .collect();
    o.insert("Containers".into(), json!(containers));
    Value::Object(o)
}

/// A stats sample: when, the container's cgroup stats and the host's CPU time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    /// When taken, ms since the epoch.
    pub at_ms: i64,
    /// The container's cgroup.
    pub stats: ContainerStats,
    /// The host's total CPU time (all CPUs, all modes), ns.
    pub system_cpu_ns: u64,
}

/// What the host contributes to a stats document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostInfo {
    /// Online CPUs.
    pub online_cpus: u64,
    /// Total memory, bytes (the limit of an unlimited container, as Docker shows it).
    pub memory_bytes: u64,
}

fn cpu_stats(s: Option<&Sample>, host: HostInfo) -> Value {
    match s {
        Some(s) => json!({
            "cpu_usage": {"total_usage": s.stats.cpu_usage_ns, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "system_cpu_usage": s.system_cpu_ns,
            "online_cpus": host.online_cpus,
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
        }),
        None => json!({
            "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
        }),
    }
}

/// A Docker-stats-shaped document for container `id`, with `prev` as the pre-read sample.
pub fn stats_json(id: &str, now: &Sample, prev: Option<&Sample>, host: HostInfo) -> Value {
    json!({
        "read": rfc3339(now.at_ms),
        "preread": prev.map(|p| rfc3339(p.at_ms)).unwrap_or_else(|| "0001-01-01T00:00:00Z".into()),
        "pids_stats": {"current": now.stats.pids},
        "blkio_stats": {},
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": cpu_stats(Some(now), host),
        "precpu_stats": cpu_stats(prev, host),
        "memory_stats": {
            "usage": now.stats.memory_usage_bytes,
            "limit": now.stats.memory_limit_bytes.unwrap_or(host.memory_bytes).min(host.memory_bytes.max(1)),
            "stats": {},
        },
        "name": format!("/{id}"),
        "id": id,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use berth_wire::agent::TaskAssignment;

    fn view(network: NetView) -> TaskView {
        let a: TaskAssignment = serde_json::from_value(json!({
            "taskArn": "arn:aws:ecs:us-east-1:000000000000:task/c/abc",
            "clusterArn": "arn:aws:ecs:us-east-1:000000000000:cluster/c",
            "desiredStatus": "RUNNING",
            "lastStatus": "PENDING",
            "cpu": "512", "memory": "1024", "launchType": "FARGATE",
            "taskDefinition": {
                "family": "web", "revision": 3, "networkMode": "awsvpc",
                "containerDefinitions": [
                    {"name": "app", "image": "busybox", "cpu": 256, "memory": 128,
                     "dockerLabels": {"team": "a"},
                     "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "g"}}},
                    {"name": "side", "image": "busybox:1"},
                ],
            },
            "containers": [{"name": "app", "containerArn": "arn:aws:ecs:us-east-1:000000000000:container/c/abc/1"}],
        }))
        .unwrap();
        let mut record = TaskRecord::new(a);
        record.reported = Some("RUNNING".into());
        record.pull_started_at = Some(1_700_000_000_000);
        record.pull_stopped_at = Some(1_700_000_000_500);
        record.containers[0].started = true;
        record.containers[0].created_at = Some(1_700_000_001_000);
        record.containers[0].started_at = Some(1_700_000_001_250);
        record.containers[0].image_digest = Some("sha256:ab".into());
        record.containers[1].started = true;
        record.containers[1].exited = true;
        record.containers[1].exit_code = Some(3);
        record.containers[1].finished_at = Some(1_700_000_002_000);
        TaskView {
            record,
            network,
            availability_zone: Some("us-east-1a".into()),
        }
    }

    #[test]
    fn times_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_700_000_001_250), "2023-11-14T22:13:21.250Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    #[test]
    fn container_document_has_ecs_fields() {
        let v = view(NetView::Task {
            netns: "berth-abc".into(),
            ip: None,
        });
        let c = container_json(&v, 0);
        assert_eq!(c["DockerId"], "abc-app");
        assert_eq!(c["Name"], "app");
        assert_eq!(c["Image"], "busybox");
        assert_eq!(c["ImageID"], "sha256:ab");
        assert_eq!(
            c["Labels"]["com.amazonaws.ecs.task-arn"],
            "arn:aws:ecs:us-east-1:000000000000:task/c/abc"
        );
        assert_eq!(
            c["Labels"]["com.amazonaws.ecs.task-definition-family"],
            "web"
        );
        assert_eq!(
            c["Labels"]["com.amazonaws.ecs.task-definition-version"],
            "3"
        );
        assert_eq!(c["Labels"]["com.amazonaws.ecs.container-name"], "app");
        assert_eq!(c["Labels"]["team"], "a");
        assert_eq!(c["DesiredStatus"], "RUNNING");
        assert_eq!(c["KnownStatus"], "RUNNING");
        assert_eq!(c["Limits"], json!({"CPU": 256, "Memory": 128}));
        assert_eq!(c["CreatedAt"], "2023-11-14T22:13:21.000Z");
        assert_eq!(c["StartedAt"], "2023-11-14T22:13:21.250Z");
        assert_eq!(c["Type"], "NORMAL");
        assert_eq!(
            c["ContainerARN"],
            "arn:aws:ecs:us-east-1:000000000000:container/c/abc/1"
        );
        assert_eq!(c["LogDriver"], "awslogs");
        assert_eq!(c["LogOptions"]["awslogs-group"], "g");
        assert_eq!(c["Networks"][0]["NetworkMode"], "awsvpc");
        assert!(c.get("ExitCode").is_none());
        let side = container_json(&v, 1);
        assert_eq!(side["KnownStatus"], "STOPPED");
        assert_eq!(side["ExitCode"], 3);
        assert_eq!(side["Limits"], json!({"CPU": 0}));
        assert!(side.get("LogDriver").is_none());
        assert!(side.get("ContainerARN").is_none());
    }

    #[test]
    fn task_document_has_ecs_fields() {
        let t = task_json(&view(NetView::Host));
        assert_eq!(t["Cluster"], "arn:aws:ecs:us-east-1:000000000000:cluster/c");
        assert_eq!(
            t["TaskARN"],
            "arn:aws:ecs:us-east-1:000000000000:task/c/abc"
        );
        assert_eq!(t["Family"], "web");
        assert_eq!(t["Revision"], "3");
        assert_eq!(t["DesiredStatus"], "RUNNING");
        assert_eq!(t["KnownStatus"], "RUNNING");
        assert_eq!(t["Limits"], json!({"CPU": 0.5, "Memory": 1024}));
        assert_eq!(t["PullStartedAt"], "2023-11-14T22:13:20.000Z");
        assert_eq!(t["PullStoppedAt"], "2023-11-14T22:13:20.500Z");
        assert_eq!(t["AvailabilityZone"], "us-east-1a");
        assert_eq!(t["LaunchType"], "FARGATE");
        assert_eq!(t["Containers"].as_array().unwrap().len(), 2);
        assert_eq!(t["Containers"][0]["Networks"][0]["NetworkMode"], "host");
        assert!(t.get("ExecutionStoppedAt").is_none());
    }

    #[test]
    fn stats_are_docker_shaped() {
        let host = HostInfo {
            online_cpus: 2,
            memory_bytes: 8 << 30,
        };
        let s = |at_ms, cpu| Sample {
            at_ms,
            stats: ContainerStats {
                cpu_usage_ns: cpu,
                memory_usage_bytes: 4096,
                memory_limit_bytes: None,
                pids: 3,
            },
            system_cpu_ns: 10 * cpu,
        };
        let first = stats_json("abc-app", &s(1000, 5), None, host);
        assert_eq!(first["preread"], "0001-01-01T00:00:00Z");
        assert_eq!(first["cpu_stats"]["cpu_usage"]["total_usage"], 5);
        assert_eq!(first["cpu_stats"]["online_cpus"], 2);
        assert_eq!(first["precpu_stats"]["cpu_usage"]["total_usage"], 0);
        assert_eq!(first["memory_stats"]["usage"], 4096);
        assert_eq!(first["memory_stats"]["limit"], 8u64 << 30);
        assert_eq!(first["pids_stats"]["current"], 3);
        assert_eq!(first["name"], "/abc-app");
        assert_eq!(first["id"], "abc-app");
        let prev = s(1000, 5);
        let next = stats_json("abc-app", &s(2000, 9), Some(&prev), host);
        assert_eq!(next["read"], "1970-01-01T00:00:02.000Z");
        assert_eq!(next["preread"], "1970-01-01T00:00:01.000Z");
        assert_eq!(next["precpu_stats"]["cpu_usage"]["total_usage"], 5);
        assert_eq!(next["precpu_stats"]["system_cpu_usage"], 50);
        assert_eq!(next["cpu_stats"]["system_cpu_usage"], 90);
    }
}
