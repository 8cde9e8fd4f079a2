//! What a host tells the control plane when it registers as a container instance: its
//! resources (as ECS counts them), ECS's standard attributes and capabilities, and version
//! information. The computations are pure; [`HostFacts::detect`] reads them from `/proc` and
//! `/sys`.

use berth_wire::ecs::shapes as s;

/// Ports ECS reserves on every container instance (ssh, the Docker daemon, the ECS agent's
/// introspection and metadata ports).
pub const RESERVED_PORTS: [u16; 5] = [22, 2375, 2376, 51678, 51679];

/// Memory kept for the host itself when none is configured, MiB.
pub const DEFAULT_RESERVED_MEMORY_MIB: u64 = 256;

/// The default `ecs.instance-type` of a Berth host.
pub const DEFAULT_INSTANCE_TYPE: &str = "berth.host";

/// Docker remote API versions whose capability attributes the agent advertises (as the ECS
/// agent does for the Docker versions it supports).
const DOCKER_API_MINORS: std::ops::RangeInclusive<u32> = 17..=44;

/// Facts about the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostFacts {
    /// Online CPU cores.
    pub cores: u32,
    /// `MemTotal`, KiB.
    pub mem_total_kib: u64,
    /// `uname -m`.
    pub machine: String,
}

/// Parses `/sys/devices/system/cpu/online` (`0-3,6,8-9`) into a number of cores.
pub fn parse_cpu_list(list: &str) -> Option<u32> {
    let mut n = 0u32;
    for part in list.trim().split(',').filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u32, u32) = (a.trim().parse().ok()?, b.trim().parse().ok()?);
                if b < a {
                    return None;
                }
                n += b - a + 1;
            }
            None => {
                part.trim().parse::<u32>().ok()?;
                n += 1;
            }
        }
    }
    (n > 0).then_some(n)
}

/// `MemTotal` of `/proc/meminfo`, KiB.
pub fn parse_mem_total_kib(meminfo: &str) -> Option<u64> {
    meminfo.lines().find_map(|l| {
        let rest = l.strip_prefix("MemTotal:")?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// ECS's `ecs.cpu-architecture` value for a `uname -m` machine name.
pub fn cpu_architecture(machine: &str) -> &str {
    match machine {
        "aarch64" | "arm64" => "arm64",
        "x86_64" | "amd64" => "x86_64",
        other => other,
    }
}

fn machine_from_target() -> &'static str {
    std::env::consts::ARCH
}

impl HostFacts {
    /// Reads the facts of this host.
    pub fn detect() -> HostFacts {
        let cores = std::fs::read_to_string("/sys/devices/system/cpu/online")
            .ok()
            .and_then(|s| parse_cpu_list(&s))
            .or_else(|| {
                std::thread::available_parallelism()
                    .ok()
                    .and_then(|n| u32::try_from(n.get()).ok())
            })
            .unwrap_or(1);
        let mem_total_kib = std::fs::read_to_string("/proc/meminfo")
            .ok()
            .and_then(|s| parse_mem_total_kib(&s))
            .unwrap_or(0);
        HostFacts {
            cores,
            mem_total_kib,
            machine: machine_from_target().to_string(),
        }
    }
}

/// The settings of a registration that do not come from the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationSettings {
    /// `ecs.instance-type`.
    pub instance_type: String,
    /// `ecs.availability-zone`, when known.
    pub availability_zone: Option<String>,
    /// Memory kept back for the host, MiB.
    pub reserved_memory_mib: u64,
    /// `versionInfo.dockerVersion`: the container runtime's name and version.
    pub runtime_version: String,
    /// The capacity provider this instance joins (sent as `capacityProviderName` in the
    /// instance identity document: ECS knows it from the instance's Auto Scaling group).
    pub capacity_provider: Option<String>,
    /// The ids of the GPUs offered to tasks (ECS's `GPU` resource).
    pub gpus: Vec<String>,
}

impl Default for RegistrationSettings {
    fn default() -> Self {
        RegistrationSettings {
            instance_type: DEFAULT_INSTANCE_TYPE.into(),
            availability_zone: None,
            reserved_memory_mib: DEFAULT_RESERVED_MEMORY_MIB,
            runtime_version: format!("berth-runtime {}", env!("CARGO_PKG_VERSION")),
            capacity_provider: None,
            gpus: Vec::new(),
        }
    }
}

fn integer(name: &str, value: i64) -> s::Resource {
    s::Resource {
        name: Some(name.into()),
        r#type: Some("INTEGER".into()),
        integer_value: Some(i32::try_from(value).unwrap_or(i32::MAX)),
        long_value: Some(0),
        double_value: Some(0.0),
        ..Default::default()
    }
}

fn string_set(name: &str, values: Vec<String>) -> s::Resource {
    s::Resource {
        name: Some(name.into()),
        r#type: Some("STRINGSET".into()),
        string_set_value: Some(values),
        long_value: Some(0),
        integer_value: Some(0),
        double_value: Some(0.0),
    }
}

/// The GPU ids of `--gpus`: a count (`2`: `GPU-0`, `GPU-1`) or the ids themselves,
/// comma-separated (`GPU-a1,GPU-b2`).
pub fn parse_gpus(spec: &str) -> Vec<String> {
    let spec = spec.trim();
    if let Ok(n) = spec.parse::<u32>() {
        return (0..n).map(|k| format!("GPU-{k}")).collect();
    }
    let mut ids: Vec<String> = Vec::new();
    for id in spec.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        if !ids.iter().any(|x| x == id) {
            ids.push(id.to_string());
        }
    }
    ids
}

/// The host's resources as ECS counts them: CPU = 1024 × cores, MEMORY = MiB less the
/// reserve, PORTS = ECS's reserved ports, PORTS_UDP = none, GPU = the ids offered (only
/// when there are some).
pub fn total_resources(
    facts: &HostFacts,
    reserved_memory_mib: u64,
    gpus: &[String],
) -> Vec<s::Resource> {
    let mem_mib = (facts.mem_total_kib / 1024).saturating_sub(reserved_memory_mib);
    let mut out = vec![
        integer("CPU", i64::from(facts.cores) * 1024),
        integer("MEMORY", i64::try_from(mem_mib).unwrap_or(i64::MAX)),
        string_set(
            "PORTS",
            RESERVED_PORTS.iter().map(|p| p.to_string()).collect(),
        ),
        string_set("PORTS_UDP", Vec::new()),
    ];
    if !gpus.is_empty() {
        out.push(string_set("GPU", gpus.to_vec()));
    }
    out
}

fn attr(name: impl Into<String>, value: Option<&str>) -> s::Attribute {
    s::Attribute {
        name: name.into(),
        value: value.map(str::to_string),
        ..Default::default()
    }
}

/// ECS's standard attributes of the host plus the capabilities this agent has.
pub fn attributes(facts: &HostFacts, settings: &RegistrationSettings) -> Vec<s::Attribute> {
    let mut out = vec![
        attr("ecs.os-type", Some("linux")),
        attr("ecs.os-family", Some("LINUX")),
        attr(
            "ecs.cpu-architecture",
            Some(cpu_architecture(&facts.machine)),
        ),
        attr("ecs.instance-type", Some(&settings.instance_type)),
    ];
    if let Some(az) = &settings.availability_zone {
        out.push(attr("ecs.availability-zone", Some(az)));
    }
    for minor in DOCKER_API_MINORS {
        out.push(attr(
            format!("com.amazonaws.ecs.capability.docker-remote-api.1.{minor}"),
            None,
        ));
    }
    // The capabilities Berth's agent really has (amazon-ecs-agent's names). Not advertised
    // until the agent does them: privileged-container, secrets, ecr-auth, efs, firelens,
    // env-files.
    for cap in [
        // stdout/stderr are kept in files on the host, or discarded.
        "com.amazonaws.ecs.capability.logging-driver.json-file",
        "com.amazonaws.ecs.capability.logging-driver.none",
        // The awslogs driver ships container output to CloudWatch Logs.
        "com.amazonaws.ecs.capability.logging-driver.awslogs",
        // ... signed with the task's execution role credentials.
        "ecs.capability.execution-role-awslogs",
        "ecs.capability.task-eni",
        "ecs.capability.container-health-check",
        "ecs.capability.container-ordering",
        "ecs.capability.task-cpu-mem-limit",
        "ecs.capability.docker-plugin.local",
        // Task role credentials at 169.254.170.2 (awsvpc and host tasks).
        "com.amazonaws.ecs.capability.task-iam-role",
        "com.amazonaws.ecs.capability.task-iam-role-network-host",
    ] {
        out.push(attr(cap, None));
    }
    out
}

/// `versionInfo`.
pub fn version_info(settings: &RegistrationSettings) -> s::VersionInfo {
    s::VersionInfo {
        agent_version: Some(env!("CARGO_PKG_VERSION").into()),
        agent_hash: Some(option_env!("BERTH_GIT_HASH").unwrap_or("unknown").into()),
        docker_version: Some(settings.runtime_version.clone()),
    }
}

/// The whole `RegisterContainerInstance` request (`container_instance_arn` set when
/// re-registering after a restart).
pub fn registration(
    cluster: &str,
    container_instance_arn: Option<String>,
    facts: &HostFacts,
    settings: &RegistrationSettings,
) -> s::RegisterContainerInstanceRequest {
    s::RegisterContainerInstanceRequest {
        cluster: Some(cluster.to_string()),
        container_instance_arn,
        total_resources: Some(total_resources(
            facts,
            settings.reserved_memory_mib,
            &settings.gpus,
        )),
        instance_identity_document: settings
            .capacity_provider
            .as_ref()
            .map(|p| serde_json::json!({ "capacityProviderName": p }).to_string()),
        attributes: Some(attributes(facts, settings)),
        version_info: Some(version_info(settings)),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn cpu_lists_count_cores() {
        assert_eq!(parse_cpu_list("0-1\n"), Some(2));
        assert_eq!(parse_cpu_list("0"), Some(1));
        assert_eq!(parse_cpu_list("0-3,6,8-9"), Some(7));
        assert_eq!(parse_cpu_list(""), None);
        assert_eq!(parse_cpu_list("3-1"), None);
        assert_eq!(parse_cpu_list("x"), None);
    }

    #[test]
    fn meminfo_total() {
        let m = "MemTotal:        8142340 kB\nMemFree:          123 kB\n";
        assert_eq!(parse_mem_total_kib(m), Some(8_142_340));
        assert_eq!(parse_mem_total_kib("MemFree: 1 kB"), None);
    }

    #[test]
    fn architectures_use_ecs_names() {
        assert_eq!(cpu_architecture("x86_64"), "x86_64");
        assert_eq!(cpu_architecture("aarch64"), "arm64");
    }

    #[test]
    fn resources_are_counted_as_ecs_does() {
        let facts = HostFacts {
            cores: 2,
            mem_total_kib: 4 * 1024 * 1024,
            machine: "x86_64".into(),
        };
        let r = total_resources(&facts, 256, &[]);
        let get = |n: &str| r.iter().find(|x| x.name.as_deref() == Some(n)).unwrap();
        assert_eq!(get("CPU").integer_value, Some(2048));
        assert_eq!(get("CPU").r#type.as_deref(), Some("INTEGER"));
        assert_eq!(get("MEMORY").integer_value, Some(4096 - 256));
        assert_eq!(
            get("PORTS").string_set_value.clone().unwrap(),
            ["22", "2375", "2376", "51678", "51679"]
        );
        assert_eq!(get("PORTS").r#type.as_deref(), Some("STRINGSET"));
        assert_eq!(get("PORTS_UDP").string_set_value, Some(vec![]));
        // Less memory than the reserve never goes negative.
        let tiny = HostFacts {
            mem_total_kib: 1024,
            ..facts.clone()
        };
        assert_eq!(total_resources(&tiny, 256, &[])[1].integer_value, Some(0));
        assert!(!r.iter().any(|x| x.name.as_deref() == Some("GPU")));
        let gpus = parse_gpus("2");
        assert_eq!(gpus, ["GPU-0", "GPU-1"]);
        assert_eq!(parse_gpus("GPU-a, GPU-b,GPU-a,"), ["GPU-a", "GPU-b"]);
        let r = total_resources(&facts, 256, &gpus);
        let gpu = r.iter().find(|x| x.name.as_deref() == Some("GPU")).unwrap();
        assert_eq!(gpu.r#type.as_deref(), Some("STRINGSET"));
        assert_eq!(gpu.string_set_value.clone().unwrap(), ["GPU-0", "GPU-1"]);
    }

    #[test]
    fn attributes_and_registration() {
        let facts = HostFacts {
            cores: 4,
            mem_total_kib: 2048 * 1024,
            machine: "aarch64".into(),
        };
        let settings = RegistrationSettings {
            availability_zone: Some("us-east-1a".into()),
            runtime_version: "berth-runtime 0.1.0 (runc 1.1.5)".into(),
            ..Default::default()
        };
        let req = registration("web", None, &facts, &settings);
        let attrs = req.attributes.unwrap();
        let value = |n: &str| attrs.iter().find(|a| a.name == n).map(|a| a.value.clone());
        assert_eq!(value("ecs.os-type"), Some(Some("linux".into())));
        assert_eq!(value("ecs.cpu-architecture"), Some(Some("arm64".into())));
        assert_eq!(value("ecs.instance-type"), Some(Some("berth.host".into())));
        assert_eq!(
            value("ecs.availability-zone"),
            Some(Some("us-east-1a".into()))
        );
        for cap in [
            "com.amazonaws.ecs.capability.docker-remote-api.1.17",
            "com.amazonaws.ecs.capability.docker-remote-api.1.44",
            "ecs.capability.task-eni",
            "ecs.capability.container-health-check",
            "ecs.capability.container-ordering",
            "com.amazonaws.ecs.capability.logging-driver.json-file",
        ] {
            assert_eq!(value(cap), Some(None), "{cap}");
        }
        assert_eq!(
            value("com.amazonaws.ecs.capability.task-iam-role"),
            Some(None)
        );
        // Only what Berth does is advertised.
        assert_eq!(
            value("com.amazonaws.ecs.capability.logging-driver.awslogs"),
            Some(None)
        );
        assert_eq!(value("ecs.capability.execution-role-awslogs"), Some(None));
        assert_eq!(
            value("com.amazonaws.ecs.capability.privileged-container"),
            None
        );
        assert!(req.instance_identity_document.is_none());
        let joined = registration(
            "web",
            None,
            &facts,
            &RegistrationSettings {
                capacity_provider: Some("spot".into()),
                ..Default::default()
            },
        );
        let doc: serde_json::Value =
            serde_json::from_str(&joined.instance_identity_document.unwrap()).unwrap();
        assert_eq!(doc["capacityProviderName"], "spot");
        assert_eq!(
            value("com.amazonaws.ecs.capability.docker-remote-api.1.45"),
            None
        );
        assert_eq!(req.cluster.as_deref(), Some("web"));
        let v = req.version_info.unwrap();
        assert_eq!(
            v.docker_version.as_deref(),
            Some("berth-runtime 0.1.0 (runc 1.1.5)")
        );
        assert_eq!(v.agent_version.as_deref(), Some(env!("CARGO_PKG_VERSION")));
        // Without an availability zone the attribute is absent.
        let req = registration(
            "web",
            Some("arn".into()),
            &facts,
            &RegistrationSettings::default(),
        );
        assert_eq!(req.container_instance_arn.as_deref(), Some("arn"));
        assert!(
            !req.attributes
                .unwrap()
                .iter()
                .any(|a| a.name == "ecs.availability-zone")
        );
    }
}
