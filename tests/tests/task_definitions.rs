//! Task definitions end to end, through aws-sdk-ecs and the aws CLI: RegisterTaskDefinition
//! (EC2 and Fargate, every kind of container field round-tripped, revisions, task sizes,
//! compatibilities, tags), DescribeTaskDefinition, ListTaskDefinitions,
//! ListTaskDefinitionFamilies (filters, sort, pagination), DeregisterTaskDefinition,
//! DeleteTaskDefinitions and every validation error ECS answers.

// A failed expectation panics, which is how a test fails; helpers unwrap for the same reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]
#![recursion_limit = "512"]

use aws_sdk_ecs::types::{
    Compatibility, ContainerCondition, ContainerDefinition, ContainerDependency, HealthCheck,
    HostVolumeProperties, KernelCapabilities, KeyValuePair, LinuxParameters, LogConfiguration,
    LogDriver, MountPoint, NetworkMode, PortMapping, Secret, SortOrder, Tag,
    TaskDefinitionFamilyStatus, TaskDefinitionField, TaskDefinitionStatus, Tmpfs,
    TransportProtocol, Ulimit, UlimitName, Volume, VolumeFrom,
};
use berth_e2e::{ACCOUNT_ID, BerthServer, REGION, assert_sdk_error};
use serde_json::{Value, json};

fn td_arn(family: &str, revision: i32) -> String {
    format!("arn:aws:ecs:{REGION}:{ACCOUNT_ID}:task-definition/{family}:{revision}")
}

/// A minimal EC2 container: name, image, hard memory limit.
fn container(name: &str) -> ContainerDefinition {
    ContainerDefinition::builder()
        .name(name)
        .image("busybox")
        .memory(128)
        .build()
}

async fn register_simple(ecs: &aws_sdk_ecs::Client, family: &str) -> i32 {
    ecs.register_task_definition()
        .family(family)
        .container_definitions(container("app"))
        .send()
        .await
        .unwrap()
        .task_definition()
        .unwrap()
        .revision()
}

/// Asserts that every field of `expected` is in `actual` with the same value (objects may
/// have more keys in `actual`; arrays must match element by element).
#[track_caller]
fn assert_subset(expected: &Value, actual: &Value, path: &str) {
    match (expected, actual) {
        (Value::Object(e), Value::Object(a)) => {
            for (k, v) in e {
                let got = a
                    .get(k)
                    .unwrap_or_else(|| panic!("{path}.{k} missing from {actual}"));
                assert_subset(v, got, &format!("{path}.{k}"));
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            assert_eq!(e.len(), a.len(), "{path}: {expected} vs {actual}");
            for (i, (ev, av)) in e.iter().zip(a).enumerate() {
                assert_subset(ev, av, &format!("{path}[{i}]"));
            }
        }
        _ => assert_eq!(expected, actual, "at {path}"),
    }
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

/// Every container field of the model ECS can take on Linux, as the CLI sends it.
fn rich_ec2_definition(family: &str) -> Value {
    json!({
        "family": family,
        "taskRoleArn": format!("arn:aws:iam::{ACCOUNT_ID}:role/task"),
        "executionRoleArn": format!("arn:aws:iam::{ACCOUNT_ID}:role/exec"),
        "networkMode": "bridge",
        "pidMode": "task",
        "ipcMode": "none",
        "placementConstraints": [
            {"type": "memberOf", "expression": "attribute:ecs.instance-type =~ t3.*"}
        ],
        "volumes": [
            {"name": "data", "host": {"sourcePath": "/srv/data"}},
            {"name": "scratch", "host": {}},
            {"name": "docker", "dockerVolumeConfiguration": {
                "scope": "shared", "autoprovision": true, "driver": "local",
                "driverOpts": {"type": "tmpfs"}, "labels": {"k": "v"}}}
        ],
        "containerDefinitions": [
            {
                "name": "web",
                "image": "nginx:1.27",
                "cpu": 256,
                "memory": 512,
                "memoryReservation": 256,
                "essential": true,
                "links": ["sidecar:side"],
                "portMappings": [
                    {"containerPort": 80, "hostPort": 8080, "protocol": "tcp", "name": "http",
                     "appProtocol": "http"},
                    {"containerPort": 53, "hostPort": 0, "protocol": "udp"}
                ],
                "entryPoint": ["/docker-entrypoint.sh"],
                "command": ["nginx", "-g", "daemon off;"],
                "environment": [{"name": "MODE", "value": "prod"}, {"name": "EMPTY", "value": ""}],
                "environmentFiles": [{"value": "arn:aws:s3:::bucket/app.env", "type": "s3"}],
                "secrets": [
                    {"name": "DB_PASSWORD",
                     "valueFrom": format!("arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:db-AbCdEf")},
                    {"name": "API_KEY",
                     "valueFrom": format!("arn:aws:ssm:{REGION}:{ACCOUNT_ID}:parameter/api-key")}
                ],
                "mountPoints": [
                    {"sourceVolume": "data", "containerPath": "/usr/share/nginx/html", "readOnly": true},
                    {"sourceVolume": "scratch", "containerPath": "/tmp/scratch", "readOnly": false}
                ],
                "volumesFrom": [{"sourceContainer": "sidecar", "readOnly": true}],
                "linuxParameters": {
                    "capabilities": {"add": ["NET_ADMIN"], "drop": ["MKNOD"]},
                    "devices": [{"hostPath": "/dev/fuse", "containerPath": "/dev/fuse",
                                 "permissions": ["read", "write"]}],
                    "initProcessEnabled": true,
                    "sharedMemorySize": 64,
                    "tmpfs": [{"containerPath": "/run", "size": 32, "mountOptions": ["noexec"]}],
                    "maxSwap": 1024,
                    "swappiness": 10
                },
                "dependsOn": [{"containerName": "sidecar", "condition": "HEALTHY"},
                              {"containerName": "init", "condition": "SUCCESS"}],
                "startTimeout": 60,
                "stopTimeout": 30,
                "hostname": "web-host",
                "user": "nginx",
                "workingDirectory": "/srv",
                "disableNetworking": false,
                "privileged": false,
                "readonlyRootFilesystem": true,
                "dnsServers": ["10.0.0.2"],
                "dnsSearchDomains": ["corp.example"],
                "extraHosts": [{"hostname": "db", "ipAddress": "10.0.0.5"}],
                "dockerSecurityOptions": ["no-new-privileges"],
                "interactive": false,
                "pseudoTerminal": false,
                "dockerLabels": {"team": "web", "tier": "front"},
                "ulimits": [{"name": "nofile", "softLimit": 1024, "hardLimit": 4096}],
                "logConfiguration": {
                    "logDriver": "awslogs",
                    "options": {"awslogs-group": "/ecs/web", "awslogs-region": REGION,
                                "awslogs-stream-prefix": "web"},
                    "secretOptions": [{"name": "token",
                        "valueFrom": format!("arn:aws:ssm:{REGION}:{ACCOUNT_ID}:parameter/log-token")}]
                },
                "healthCheck": {"command": ["CMD-SHELL", "curl -f http://localhost/ || exit 1"],
                                "interval": 10, "timeout": 3, "retries": 4, "startPeriod": 20},
                "systemControls": [{"namespace": "net.core.somaxconn", "value": "1024"}],
                "resourceRequirements": [{"value": "1", "type": "GPU"}],
                "versionConsistency": "disabled"
            },
            {
                "name": "sidecar",
                "image": "busybox",
                "memoryReservation": 64,
                "essential": false,
                "command": ["sleep", "3600"],
                "healthCheck": {"command": ["CMD", "true"]},
                "repositoryCredentials": {"credentialsParameter":
                    format!("arn:aws:secretsmanager:{REGION}:{ACCOUNT_ID}:secret:reg-AbCdEf")}
            },
            {
                "name": "init",
                "image": "busybox",
                "memory": 32,
                "essential": false,
                "command": ["true"],
                "mountPoints": [{"sourceVolume": "docker", "containerPath": "/cache"}]
            }
        ],
        "tags": [{"key": "team", "value": "web"}, {"key": "cost", "value": "42"}]
    })
}

/// The request JSON without the nulls (the CLI drops them; the response never has them).
fn without_nulls(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), without_nulls(v)))
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.iter().map(without_nulls).collect()),
        other => other.clone(),
    }
}

#[test]
fn every_container_field_round_trips_through_the_cli() {
    let berth = BerthServer::start();
    let input = rich_ec2_definition("rich");
    let out = berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "register-task-definition",
            "--cli-input-json",
            &input.to_string(),
        ],
    );
    let td = &out["taskDefinition"];
    assert_eq!(td["taskDefinitionArn"], td_arn("rich", 1));
    assert_eq!(td["family"], "rich");
    assert_eq!(td["revision"], 1);
    assert_eq!(td["status"], "ACTIVE");
    assert_eq!(
        td["registeredBy"],
        format!("arn:aws:iam::{ACCOUNT_ID}:root")
    );
    assert!(td["registeredAt"].is_string() || td["registeredAt"].is_number());
    assert_eq!(
        out["tags"],
        json!([{"key": "team", "value": "web"}, {"key": "cost", "value": "42"}])
    );
    // Bridge mode, no awsvpc: EC2 and EXTERNAL, not FARGATE.
    let compat = strings(&td["compatibilities"]);
    assert!(compat.contains(&"EC2".to_owned()), "{compat:?}");
    assert!(compat.contains(&"EXTERNAL".to_owned()), "{compat:?}");
    assert!(!compat.contains(&"FARGATE".to_owned()), "{compat:?}");
    // What ECS derives: requiresAttributes for the features in use.
    let required: Vec<String> = td["requiresAttributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap().to_owned())
        .collect();
    for want in [
        "com.amazonaws.ecs.capability.logging-driver.awslogs",
        "ecs.capability.execution-role-awslogs",
        "ecs.capability.secrets.asm.environment-variables",
        "ecs.capability.secrets.ssm.environment-variables",
        "ecs.capability.container-health-check",
        "ecs.capability.container-ordering",
        "com.amazonaws.ecs.capability.task-iam-role",
        "com.amazonaws.ecs.capability.private-registry-authentication.secretsmanager",
        "ecs.capability.env-files.s3",
        "ecs.capability.pid-ipc-namespace-sharing",
    ] {
        assert!(
            required.iter().any(|r| r == want),
            "{want} not in {required:?}"
        );
    }

    // Everything sent comes back, in the response and from DescribeTaskDefinition.
    let mut sent = without_nulls(&input);
    let sent_obj = sent.as_object_mut().unwrap();
    sent_obj.remove("tags");
    assert_subset(&sent, td, "taskDefinition");
    let described = berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "describe-task-definition",
            "--task-definition",
            "rich:1",
            "--include",
            "TAGS",
        ],
    );
    assert_subset(&sent, &described["taskDefinition"], "described");
    assert_eq!(described["tags"], out["tags"]);

    // ECS's defaults on what was left out: cpu 0, essential true, health check timings,
    // host ports and protocol, empty lists, the host volume of a bare named volume.
    let sidecar = &td["containerDefinitions"][1];
    assert_eq!(sidecar["cpu"], 0);
    assert_eq!(sidecar["portMappings"], json!([]));
    assert_eq!(sidecar["environment"], json!([]));
    assert_eq!(sidecar["mountPoints"], json!([]));
    assert_eq!(sidecar["volumesFrom"], json!([]));
    assert_eq!(sidecar["healthCheck"]["interval"], 30);
    assert_eq!(sidecar["healthCheck"]["timeout"], 5);
    assert_eq!(sidecar["healthCheck"]["retries"], 3);
    assert_eq!(td["volumes"][1]["host"], json!({}));
    assert_eq!(td["containerDefinitions"][2]["essential"], false);
}

#[tokio::test]
async fn register_through_the_sdk_round_trips_fields_and_counts_revisions() {
    let berth = BerthServer::start();
    let ecs = berth.ecs_client(REGION);

    let health = HealthCheck::builder()
        .command("CMD-SHELL")
        .command("wget -q -O- localhost:8080/health")
        .interval(15)
        .timeout(4)
        .retries(2)
        .start_period(30)
        .build()
        .unwrap();
    let log = LogConfiguration::builder()
        .log_driver(LogDriver::Awslogs)
        .options("awslogs-group", "/ecs/api")
        .options("awslogs-region", REGION)
        .options("awslogs-stream-prefix", "api")
        .build()
        .unwrap();
    let linux = LinuxParameters::builder()
        .capabilities(KernelCapabilities::builder().add("SYS_PTRACE").build())
        .init_process_enabled(true)
        .tmpfs(
            Tmpfs::builder()
                .container_path("/run")
                .size(16)
                .mount_options("noexec")
                .build()
                .unwrap(),
        )
        .build();
    let ulimit = Ulimit::builder()
        .name(UlimitName::Nofile)
        .soft_limit(2048)
        .hard_limit(8192)
        .build()
        .unwrap();
    let api = ContainerDefinition::builder()
        .name("api")
        .image("public.ecr.aws/docker/library/busybox:latest")
        .cpu(512)
        .memory(1024)
        .essential(true)
        .port_mappings(
            PortMapping::builder()
                .container_port(8080)
                .host_port(8080)
                .protocol(TransportProtocol::Tcp)
                .name("api-http")
                .build(),
        )
        .environment(KeyValuePair::builder().name("LOG").value("debug").build())
        .secrets(
            Secret::builder()
                .name("TOKEN")
                .value_from(format!("arn:aws:ssm:{REGION}:{ACCOUNT_ID}:parameter/token"))
                .build()
                .unwrap(),
        )
        .health_check(health.clone())
        .depends_on(
            ContainerDependency::builder()
                .container_name("migrate")
                .condition(ContainerCondition::Complete)
                .build()
                .unwrap(),
        )
        .mount_points(
            MountPoint::builder()
                .source_volume("shared")
                .container_path("/shared")
                .read_only(false)
                .build(),
        )
        .volumes_from(
            VolumeFrom::builder()
                .source_container("migrate")
                .read_only(true)
                .build(),
        )
        .log_configuration(log.clone())
        .ulimits(ulimit.clone())
        .linux_parameters(linux.clone())
        .docker_labels("app", "api")
        .build();
    let migrate = ContainerDefinition::builder()
        .name("migrate")
        .image("busybox")
        .memory_reservation(64)
        .essential(false)
        .command("true")
        .build();
    let registered = ecs
        .register_task_definition()
        .family("api")
        .network_mode(NetworkMode::Bridge)
        .execution_role_arn(format!("arn:aws:iam::{ACCOUNT_ID}:role/exec"))
        .volumes(
            Volume::builder()
                .name("shared")
                .host(HostVolumeProperties::builder().source_path("/srv").build())
                .build(),
        )
        .container_definitions(api.clone())
        .container_definitions(migrate)
        .tags(Tag::builder().key("env").value("dev").build())
        .send()
        .await
        .unwrap();
    assert_eq!(registered.tags().len(), 1);
    assert_eq!(registered.tags()[0].key(), Some("env"));
    let td = registered.task_definition().unwrap();
    assert_eq!(td.task_definition_arn(), Some(td_arn("api", 1).as_str()));
    assert_eq!(td.revision(), 1);
    assert_eq!(td.status(), Some(&TaskDefinitionStatus::Active));
    assert_eq!(td.network_mode(), Some(&NetworkMode::Bridge));
    assert!(td.registered_at().is_some());
    assert!(td.deregistered_at().is_none());
    let c = &td.container_definitions()[0];
    assert_eq!(c.name(), Some("api"));
    assert_eq!(c.cpu(), 512);
    assert_eq!(c.memory(), Some(1024));
    assert_eq!(c.port_mappings(), api.port_mappings());
    assert_eq!(c.environment(), api.environment());
    assert_eq!(c.secrets(), api.secrets());
    assert_eq!(c.health_check(), Some(&health));
    assert_eq!(c.depends_on(), api.depends_on());
    assert_eq!(c.mount_points(), api.mount_points());
    assert_eq!(c.volumes_from(), api.volumes_from());
    assert_eq!(c.log_configuration(), Some(&log));
    assert_eq!(c.ulimits(), [ulimit]);
    assert_eq!(c.linux_parameters(), Some(&linux));
    assert_eq!(
        c.docker_labels()
            .and_then(|l| l.get("app"))
            .map(String::as_str),
        Some("api")
    );
    assert_eq!(td.volumes()[0].name(), Some("shared"));
    assert_eq!(
        td.volumes()[0].host().and_then(|h| h.source_path()),
        Some("/srv")
    );
    let migrate = &td.container_definitions()[1];
    assert_eq!(migrate.memory_reservation(), Some(64));
    assert_eq!(migrate.essential(), Some(false));
    assert_eq!(migrate.cpu(), 0);

    // Revisions count up per family; another family starts at 1.
    assert_eq!(register_simple(&ecs, "api").await, 2);
    assert_eq!(register_simple(&ecs, "api").await, 3);
    assert_eq!(register_simple(&ecs, "other").await, 1);
    assert_eq!(register_simple(&ecs, "api").await, 4);
    // A deregistered revision's number is not reused.
    ecs.deregister_task_definition()
        .task_definition("api:4")
        .send()
        .await
        .unwrap();
    assert_eq!(register_simple(&ecs, "api").await, 5);
}

#[tokio::test]
async fn fargate_sizes_and_compatibilities() {
    let berth = BerthServer::start();
    let ecs = berth.ecs_client(REGION);
    let fargate = ContainerDefinition::builder()
        .name("app")
        .image("busybox")
        .port_mappings(PortMapping::builder().container_port(8080).build())
        .build();
    let out = ecs
        .register_task_definition()
        .family("fg")
        .requires_compatibilities(Compatibility::Fargate)
        .network_mode(NetworkMode::Awsvpc)
        .cpu("1 vCPU")
        .memory("2 GB")
        .container_definitions(fargate.clone())
        .send()
        .await
        .unwrap();
    let td = out.task_definition().unwrap();
    assert_eq!(td.cpu(), Some("1024"));
    assert_eq!(td.memory(), Some("2048"));
    assert_eq!(td.requires_compatibilities(), [Compatibility::Fargate]);
    assert!(
        td.compatibilities().contains(&Compatibility::Ec2)
            && td.compatibilities().contains(&Compatibility::Fargate),
        "{:?}",
        td.compatibilities()
    );
    assert!(!td.compatibilities().contains(&Compatibility::External));
    // awsvpc: the host port is the container port, protocol tcp.
    let pm = &td.container_definitions()[0].port_mappings()[0];
    assert_eq!(pm.host_port(), Some(8080));
    assert_eq!(pm.protocol(), Some(&TransportProtocol::Tcp));
    assert!(out.tags().is_empty());
    assert!(
        td.requires_attributes()
            .iter()
            .any(|a| a.name() == "ecs.capability.task-eni"),
        "{:?}",
        td.requires_attributes()
    );

    // Fractions and other spellings.
    let out = ecs
        .register_task_definition()
        .family("fg")
        .requires_compatibilities(Compatibility::Fargate)
        .network_mode(NetworkMode::Awsvpc)
        .cpu(".25 vcpu")
        .memory("0.5GB")
        .container_definitions(fargate.clone())
        .send()
        .await
        .unwrap();
    let td = out.task_definition().unwrap();
    assert_eq!((td.cpu(), td.memory()), (Some("256"), Some("512")));
    assert_eq!(td.revision(), 2);

    // An awsvpc EC2 definition with a Fargate size is Fargate-compatible too, even unasked.
    let out = ecs
        .register_task_definition()
        .family("ec2vpc")
        .network_mode(NetworkMode::Awsvpc)
        .cpu("512")
        .memory("1024")
        .container_definitions(fargate)
        .send()
        .await
        .unwrap();
    let td = out.task_definition().unwrap();
    assert!(td.requires_compatibilities().is_empty());
    assert!(td.compatibilities().contains(&Compatibility::Fargate));

    // Through the CLI, as the README shows it.
    let out = berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "register-task-definition",
            "--family",
            "hello",
            "--requires-compatibilities",
            "FARGATE",
            "--network-mode",
            "awsvpc",
            "--cpu",
            "2 vCPU",
            "--memory",
            "4 GB",
            "--container-definitions",
            r#"[{"name":"hello","image":"busybox","command":["echo","hi"]}]"#,
            "--tags",
            "key=k,value=v",
        ],
    );
    assert_eq!(out["taskDefinition"]["cpu"], "2048");
    assert_eq!(out["taskDefinition"]["memory"], "4096");
    assert_eq!(out["taskDefinition"]["networkMode"], "awsvpc");
    assert_eq!(
        out["taskDefinition"]["requiresCompatibilities"],
        json!(["FARGATE"])
    );
    assert_eq!(out["tags"], json!([{"key": "k", "value": "v"}]));
}

#[tokio::test]
async fn describe_by_family_revision_and_arn() {
    let berth = BerthServer::start();
    let ecs = berth.ecs_client(REGION);
    for _ in 0..3 {
        ecs.register_task_definition()
            .family("svc")
            .container_definitions(container("app"))
            .tags(Tag::builder().key("k").value("v").build())
            .send()
            .await
            .unwrap();
    }
    let latest = ecs
        .describe_task_definition()
        .task_definition("svc")
        .send()
        .await
        .unwrap();
    assert_eq!(latest.task_definition().unwrap().revision(), 3);
    assert!(
        latest.tags().is_empty(),
        "tags need include TAGS: {latest:?}"
    );
    let by_rev = ecs
        .describe_task_definition()
        .task_definition("svc:2")
        .include(TaskDefinitionField::Tags)
        .send()
        .await
        .unwrap();
    assert_eq!(
        by_rev.task_definition().unwrap().task_definition_arn(),
        Some(td_arn("svc", 2).as_str())
    );
    assert_eq!(by_rev.tags()[0].key(), Some("k"));
    let by_arn = ecs
        .describe_task_definition()
        .task_definition(td_arn("svc", 1))
        .send()
        .await
        .unwrap();
    assert_eq!(by_arn.task_definition().unwrap().revision(), 1);

    // The family alone names the latest ACTIVE revision.
    ecs.deregister_task_definition()
        .task_definition("svc:3")
        .send()
        .await
        .unwrap();
    let latest = ecs
        .describe_task_definition()
        .task_definition("svc")
        .send()
        .await
        .unwrap();
    assert_eq!(latest.task_definition().unwrap().revision(), 2);
    // An INACTIVE revision is still described by number.
    let inactive = ecs
        .describe_task_definition()
        .task_definition("svc:3")
        .send()
        .await
        .unwrap();
    assert_eq!(
        inactive.task_definition().unwrap().status(),
        Some(&TaskDefinitionStatus::Inactive)
    );

    // Unknown families, revisions and ARNs: ClientException.
    for missing in [
        "nope".to_owned(),
        "svc:9".to_owned(),
        td_arn("nope", 1),
        format!("arn:aws:ecs:eu-west-1:{ACCOUNT_ID}:task-definition/svc:1"),
    ] {
        let msg = assert_sdk_error(
            ecs.describe_task_definition()
                .task_definition(&missing)
                .send()
                .await,
            "ClientException",
        );
        assert_eq!(msg, "Unable to describe task definition.", "{missing}");
    }
    assert_sdk_error(
        ecs.describe_task_definition()
            .task_definition("svc:x")
            .send()
            .await,
        "ClientException",
    );
    // A family with only INACTIVE revisions has no latest.
    ecs.register_task_definition()
        .family("gone")
        .container_definitions(container("app"))
        .send()
        .await
        .unwrap();
    ecs.deregister_task_definition()
        .task_definition("gone:1")
        .send()
        .await
        .unwrap();
    assert_sdk_error(
        ecs.describe_task_definition()
            .task_definition("gone")
            .send()
            .await,
        "ClientException",
    );

    // The CLI.
    let d = berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "describe-task-definition",
            "--task-definition",
            "svc",
            "--include",
            "TAGS",
        ],
    );
    assert_eq!(d["taskDefinition"]["revision"], 2);
    assert_eq!(d["tags"], json!([{"key": "k", "value": "v"}]));
    let err = berth.aws_cli_error(
        REGION,
        &[
            "ecs",
            "describe-task-definition",
            "--task-definition",
            "nope",
        ],
        "ClientException",
    );
    assert!(err.contains("Unable to describe task definition"), "{err}");
    // Regional: nothing in another region.
    assert_sdk_error(
        berth
            .ecs_client("eu-west-1")
            .describe_task_definition()
            .task_definition("svc")
            .send()
            .await,
        "ClientException",
    );
}

#[tokio::test]
async fn list_task_definitions_filters_sorts_and_paginates() {
    let berth = BerthServer::start();
    let ecs = berth.ecs_client(REGION);
    // 12 revisions of `web` (numeric order past 9), 2 of `web-api`, 1 of `db`.
    for _ in 0..12 {
        register_simple(&ecs, "web").await;
    }
    register_simple(&ecs, "web-api").await;
    register_simple(&ecs, "web-api").await;
    register_simple(&ecs, "db").await;
    ecs.deregister_task_definition()
        .task_definition("web:5")
        .send()
        .await
        .unwrap();
    ecs.deregister_task_definition()
        .task_definition("web-api:1")
        .send()
        .await
        .unwrap();

    let mut active: Vec<String> = vec![td_arn("db", 1)];
    active.extend((1..=12).filter(|r| *r != 5).map(|r| td_arn("web", r)));
    active.push(td_arn("web-api", 2));

    // Default: ACTIVE, ascending by family then revision.
    let all = ecs.list_task_definitions().send().await.unwrap();
    assert_eq!(all.task_definition_arns(), active.as_slice());
    assert!(all.next_token().is_none());

    // DESC reverses it.
    let desc = ecs
        .list_task_definitions()
        .sort(SortOrder::Desc)
        .send()
        .await
        .unwrap();
    let mut reversed = active.clone();
    reversed.reverse();
    assert_eq!(desc.task_definition_arns(), reversed.as_slice());
    let asc = ecs
        .list_task_definitions()
        .sort(SortOrder::Asc)
        .send()
        .await
        .unwrap();
    assert_eq!(asc.task_definition_arns(), active.as_slice());

    // INACTIVE.
    let inactive = ecs
        .list_task_definitions()
        .status(TaskDefinitionStatus::Inactive)
        .send()
        .await
        .unwrap();
    assert_eq!(
        inactive.task_definition_arns(),
        [td_arn("web", 5), td_arn("web-api", 1)]
    );

    // familyPrefix with a family of its own only.
    let web_api = ecs
        .list_task_definitions()
        .family_prefix("web-api")
        .send()
        .await
        .unwrap();
    assert_eq!(web_api.task_definition_arns(), [td_arn("web-api", 2)]);
    let none = ecs
        .list_task_definitions()
        .family_prefix("zzz")
        .send()
        .await
        .unwrap();
    assert!(none.task_definition_arns().is_empty());

    // Pagination: maxResults pages with nextToken to the end, both directions.
    for (order, want) in [(SortOrder::Asc, &active), (SortOrder::Desc, &reversed)] {
        let mut got = Vec::new();
        let mut token: Option<String> = None;
        let mut pages = 0;
        loop {
            let page = ecs
                .list_task_definitions()
                .sort(order.clone())
                .max_results(4)
                .set_next_token(token.clone())
                .send()
                .await
                .unwrap();
            assert!(page.task_definition_arns().len() <= 4);
            got.extend(page.task_definition_arns().iter().cloned());
            pages += 1;
            token = page.next_token().map(String::from);
            if token.is_none() {
                break;
            }
        }
        assert_eq!(&got, want, "{order:?}");
        assert_eq!(pages, 4, "{order:?}: 13 ARNs in pages of 4");
    }
    // The SDK paginator.
    let paged: Vec<String> = ecs
        .list_task_definitions()
        .max_results(5)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(paged, active);

    // The CLI: auto-pagination with a small page size, filters, and a manual page.
    let cli = berth.aws_cli_json(
        REGION,
        &["ecs", "list-task-definitions", "--page-size", "3"],
    );
    assert_eq!(strings(&cli["taskDefinitionArns"]), active);
    let cli = berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "list-task-definitions",
            "--family-prefix",
            "web-api",
            "--status",
            "ACTIVE",
            "--sort",
            "DESC",
        ],
    );
    assert_eq!(strings(&cli["taskDefinitionArns"]), [td_arn("web-api", 2)]);
    let first = berth.aws_cli_json(
        REGION,
        &["ecs", "list-task-definitions", "--max-items", "2"],
    );
    assert_eq!(strings(&first["taskDefinitionArns"]), active[..2]);
    let token = first["NextToken"].as_str().expect("a NextToken").to_owned();
    let rest = berth.aws_cli_json(
        REGION,
        &["ecs", "list-task-definitions", "--starting-token", &token],
    );
    assert_eq!(strings(&rest["taskDefinitionArns"]), active[2..]);

    // Bad paging parameters.
    assert_sdk_error(
        ecs.list_task_definitions().max_results(0).send().await,
        "InvalidParameterException",
    );
    assert_sdk_error(
        ecs.list_task_definitions().max_results(101).send().await,
        "InvalidParameterException",
    );
    assert_sdk_error(
        ecs.list_task_definitions()
            .next_token("garbage!")
            .send()
            .await,
        "InvalidParameterException",
    );
    berth.aws_cli_error(
        REGION,
        &["ecs", "list-task-definitions", "--max-results", "500"],
        "InvalidParameterException",
    );
}

#[tokio::test]
async fn list_task_definitions_family_prefix_is_the_full_family_name() {
    let berth = BerthServer::start();
    let ecs = berth.ecs_client(REGION);
    register_simple(&ecs, "web").await;
    register_simple(&ecs, "web").await;
    register_simple(&ecs, "web-api").await;
    // The ECS API reference: "familyPrefix: The full family name to filter the
    // ListTaskDefinitions results with. Specifying a familyPrefix limits the listed task
    // definitions to task definition revisions that belong to that family."
    let web = ecs
        .list_task_definitions()
        .family_prefix("web")
        .send()
        .await
        .unwrap();
    assert_eq!(
        web.task_definition_arns(),
        [td_arn("web", 1), td_arn("web", 2)]
    );
    let cli = berth.aws_cli_json(
        REGION,
        &["ecs", "list-task-definitions", "--family-prefix", "web"],
    );
    assert_eq!(
        strings(&cli["taskDefinitionArns"]),
        [td_arn("web", 1), td_arn("web", 2)]
    );
}

#[tokio::test]
async fn list_task_definition_families_by_status_prefix_and_page() {
    let berth = BerthServer::start();
    let ecs = berth.ecs_client(REGION);
    for f in ["alpha", "beta", "beta-2", "gamma", "delta"] {
        register_simple(&ecs, f).await;
    }
    register_simple(&ecs, "beta").await;
    // gamma: every revision INACTIVE; beta: one of two INACTIVE (still ACTIVE as a family).
    ecs.deregister_task_definition()
        .task_definition("gamma:1")
        .send()
        .await
        .unwrap();
    ecs.deregister_task_definition()
        .task_definition("beta:1")
        .send()
        .await
        .unwrap();

    let fams = |r: &aws_sdk_ecs::operation::list_task_definition_families::ListTaskDefinitionFamiliesOutput| {
        r.families().to_vec()
    };
    // Default is ALL.
    let all = ecs.list_task_definition_families().send().await.unwrap();
    assert_eq!(fams(&all), ["alpha", "beta", "beta-2", "delta", "gamma"]);
    let all = ecs
        .list_task_definition_families()
        .status(TaskDefinitionFamilyStatus::All)
        .send()
        .await
        .unwrap();
    assert_eq!(fams(&all).len(), 5);
    let active = ecs
        .list_task_definition_families()
        .status(TaskDefinitionFamilyStatus::Active)
        .send()
        .await
        .unwrap();
    assert_eq!(fams(&active), ["alpha", "beta", "beta-2", "delta"]);
    let inactive = ecs
        .list_task_definition_families()
        .status(TaskDefinitionFamilyStatus::Inactive)
        .send()
        .await
        .unwrap();
    assert_eq!(fams(&inactive), ["gamma"]);
    // familyPrefix is a real prefix here.
    let beta = ecs
        .list_task_definition_families()
        .family_prefix("beta")
        .send()
        .await
        .unwrap();
    assert_eq!(fams(&beta), ["beta", "beta-2"]);
    let none = ecs
        .list_task_definition_families()
        .family_prefix("zeta")
        .send()
        .await
        .unwrap();
    assert!(none.families().is_empty());

    // Pagination to the end.
    let mut got = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = ecs
            .list_task_definition_families()
            .max_results(2)
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap();
        assert!(page.families().len() <= 2);
        got.extend(page.families().iter().cloned());
        pages += 1;
        token = page.next_token().map(String::from);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(got, ["alpha", "beta", "beta-2", "delta", "gamma"]);
    assert_eq!(pages, 3);
    let paged: Vec<String> = ecs
        .list_task_definition_families()
        .status(TaskDefinitionFamilyStatus::Active)
        .max_results(1)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(paged, ["alpha", "beta", "beta-2", "delta"]);

    // The CLI.
    let cli = berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "list-task-definition-families",
            "--status",
            "ACTIVE",
            "--page-size",
            "1",
        ],
    );
    assert_eq!(
        strings(&cli["families"]),
        ["alpha", "beta", "beta-2", "delta"]
    );
    let cli = berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "list-task-definition-families",
            "--family-prefix",
            "g",
            "--status",
            "INACTIVE",
        ],
    );
    assert_eq!(strings(&cli["families"]), ["gamma"]);
    assert_sdk_error(
        ecs.list_task_definition_families()
            .max_results(0)
            .send()
            .await,
        "InvalidParameterException",
    );
    berth.aws_cli_error(
        REGION,
        &[
            "ecs",
            "list-task-definition-families",
            "--starting-token",
            "x",
            "--max-items",
            "1",
        ],
        "InvalidParameterException",
    );
}

#[tokio::test]
async fn deregister_then_delete() {
    let berth = BerthServer::start();
    let ecs = berth.ecs_client(REGION);
    for _ in 0..3 {
        register_simple(&ecs, "job").await;
    }
    let out = ecs
        .deregister_task_definition()
        .task_definition("job:1")
        .send()
        .await
        .unwrap();
    let td = out.task_definition().unwrap();
    assert_eq!(td.status(), Some(&TaskDefinitionStatus::Inactive));
    assert!(td.deregistered_at().is_some(), "{td:?}");
    assert_eq!(td.task_definition_arn(), Some(td_arn("job", 1).as_str()));
    // Deregistering again is harmless and keeps it INACTIVE.
    let again = ecs
        .deregister_task_definition()
        .task_definition(td_arn("job", 1))
        .send()
        .await
        .unwrap();
    assert_eq!(
        again.task_definition().unwrap().status(),
        Some(&TaskDefinitionStatus::Inactive)
    );
    // A revision is required; unknown revisions are ClientException.
    assert_sdk_error(
        ecs.deregister_task_definition()
            .task_definition("job")
            .send()
            .await,
        "ClientException",
    );
    assert_sdk_error(
        ecs.deregister_task_definition()
            .task_definition("job:99")
            .send()
            .await,
        "ClientException",
    );
    // The CLI deregisters too.
    let cli = berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "deregister-task-definition",
            "--task-definition",
            "job:2",
        ],
    );
    assert_eq!(cli["taskDefinition"]["status"], "INACTIVE");
    assert!(!cli["taskDefinition"]["deregisteredAt"].is_null(), "{cli}");
    berth.aws_cli_error(
        REGION,
        &[
            "ecs",
            "deregister-task-definition",
            "--task-definition",
            "nope:1",
        ],
        "ClientException",
    );

    // Delete: INACTIVE ones go to DELETE_IN_PROGRESS; ACTIVE and unknown ones are failures.
    let out = ecs
        .delete_task_definitions()
        .task_definitions("job:1")
        .task_definitions("job:3")
        .task_definitions("job:42")
        .send()
        .await
        .unwrap();
    assert_eq!(out.task_definitions().len(), 1, "{out:?}");
    let deleted = &out.task_definitions()[0];
    assert_eq!(
        deleted.task_definition_arn(),
        Some(td_arn("job", 1).as_str())
    );
    assert_eq!(
        deleted.status(),
        Some(&TaskDefinitionStatus::DeleteInProgress)
    );
    assert!(deleted.delete_requested_at().is_some());
    assert_eq!(out.failures().len(), 2, "{out:?}");
    let active_failure = &out.failures()[0];
    assert_eq!(active_failure.arn(), Some(td_arn("job", 3).as_str()));
    assert!(
        active_failure
            .reason()
            .unwrap()
            .contains("still in ACTIVE status"),
        "{active_failure:?}"
    );
    assert_eq!(out.failures()[1].arn(), Some(td_arn("job", 42).as_str()));
    assert!(
        out.failures()[1]
            .reason()
            .unwrap()
            .contains("does not exist"),
        "{:?}",
        out.failures()[1]
    );
    // A deleted one is listed neither ACTIVE nor INACTIVE.
    let inactive = ecs
        .list_task_definitions()
        .status(TaskDefinitionStatus::Inactive)
        .send()
        .await
        .unwrap();
    assert_eq!(inactive.task_definition_arns(), [td_arn("job", 2)]);
    let deleting = ecs
        .list_task_definitions()
        .status(TaskDefinitionStatus::DeleteInProgress)
        .send()
        .await
        .unwrap();
    assert_eq!(deleting.task_definition_arns(), [td_arn("job", 1)]);

    // Through the CLI, by ARN.
    let cli = berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "delete-task-definitions",
            "--task-definitions",
            &td_arn("job", 2),
            "job",
        ],
    );
    assert_eq!(cli["taskDefinitions"][0]["status"], "DELETE_IN_PROGRESS");
    assert_eq!(cli["failures"][0]["arn"], "job");
    assert!(
        cli["failures"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("identifier is invalid"),
        "{cli}"
    );

    // 0 or more than 10 at once: InvalidParameterException.
    let mut eleven = ecs.delete_task_definitions();
    for i in 1..=11 {
        eleven = eleven.task_definitions(format!("job:{i}"));
    }
    assert_sdk_error(eleven.send().await, "InvalidParameterException");
    assert_sdk_error(
        ecs.delete_task_definitions()
            .set_task_definitions(Some(vec![]))
            .send()
            .await,
        "InvalidParameterException",
    );
}

/// `RegisterTaskDefinition` for family `f` with `containers`; the rest set by `tweak`.
async fn register_err(
    ecs: &aws_sdk_ecs::Client,
    containers: Vec<ContainerDefinition>,
    tweak: impl FnOnce(
        aws_sdk_ecs::operation::register_task_definition::builders::RegisterTaskDefinitionFluentBuilder,
    ) -> aws_sdk_ecs::operation::register_task_definition::builders::RegisterTaskDefinitionFluentBuilder,
    code: &str,
) -> String {
    let req = ecs
        .register_task_definition()
        .family("bad")
        .set_container_definitions(Some(containers));
    assert_sdk_error(tweak(req).send().await, code)
}

#[tokio::test]
async fn validation_errors() {
    let berth = BerthServer::start();
    let ecs = berth.ecs_client(REGION);
    let fargate_container = ContainerDefinition::builder()
        .name("app")
        .image("busybox")
        .build();

    // Duplicate container names.
    let msg = register_err(
        &ecs,
        vec![container("app"), container("app")],
        |r| r,
        "ClientException",
    )
    .await;
    assert!(msg.contains("Duplicate container name"), "{msg}");
    // No essential container.
    let nonessential = |n: &str| {
        ContainerDefinition::builder()
            .name(n)
            .image("busybox")
            .memory(64)
            .essential(false)
            .build()
    };
    let msg = register_err(
        &ecs,
        vec![nonessential("a"), nonessential("b")],
        |r| r,
        "ClientException",
    )
    .await;
    assert!(msg.contains("essential"), "{msg}");
    // Fargate without awsvpc.
    let msg = register_err(
        &ecs,
        vec![fargate_container.clone()],
        |r| {
            r.requires_compatibilities(Compatibility::Fargate)
                .network_mode(NetworkMode::Bridge)
                .cpu("256")
                .memory("512")
        },
        "ClientException",
    )
    .await;
    assert!(msg.contains("awsvpc"), "{msg}");
    let msg = register_err(
        &ecs,
        vec![fargate_container.clone()],
        |r| {
            r.requires_compatibilities(Compatibility::Fargate)
                .cpu("256")
                .memory("512")
        },
        "ClientException",
    )
    .await;
    assert!(msg.contains("awsvpc"), "{msg}");
    // Invalid Fargate cpu/memory pair, and a missing task size.
    let msg = register_err(
        &ecs,
        vec![fargate_container.clone()],
        |r| {
            r.requires_compatibilities(Compatibility::Fargate)
                .network_mode(NetworkMode::Awsvpc)
                .cpu("256")
                .memory("4096")
        },
        "ClientException",
    )
    .await;
    assert!(
        msg.contains("No Fargate configuration exists for given values"),
        "{msg}"
    );
    let msg = register_err(
        &ecs,
        vec![fargate_container.clone()],
        |r| {
            r.requires_compatibilities(Compatibility::Fargate)
                .network_mode(NetworkMode::Awsvpc)
                .memory("512")
        },
        "ClientException",
    )
    .await;
    assert!(msg.contains("'cpu'"), "{msg}");
    // Unparseable task sizes.
    register_err(
        &ecs,
        vec![container("app")],
        |r| r.cpu("lots"),
        "InvalidParameterException",
    )
    .await;
    register_err(
        &ecs,
        vec![container("app")],
        |r| r.memory("2 TB"),
        "InvalidParameterException",
    )
    .await;
    // EC2 without any memory at task or container level.
    let msg = register_err(
        &ecs,
        vec![fargate_container.clone()],
        |r| r,
        "ClientException",
    )
    .await;
    assert!(
        msg.contains("At least one of 'memory' or 'memoryReservation' must be specified"),
        "{msg}"
    );
    // ... which a task-level memory satisfies.
    ecs.register_task_definition()
        .family("ok")
        .memory("512")
        .container_definitions(fargate_container.clone())
        .send()
        .await
        .unwrap();
    // awsvpc: hostPort must equal containerPort.
    let mismatched = ContainerDefinition::builder()
        .name("app")
        .image("busybox")
        .memory(128)
        .port_mappings(
            PortMapping::builder()
                .container_port(80)
                .host_port(8080)
                .build(),
        )
        .build();
    let msg = register_err(
        &ecs,
        vec![mismatched.clone()],
        |r| r.network_mode(NetworkMode::Awsvpc),
        "ClientException",
    )
    .await;
    assert!(
        msg.contains("host ports and container ports in port mappings must match"),
        "{msg}"
    );
    // ... which bridge mode allows.
    ecs.register_task_definition()
        .family("bridge")
        .network_mode(NetworkMode::Bridge)
        .container_definitions(mismatched)
        .send()
        .await
        .unwrap();
    // Bad family names.
    for family in ["has space", "semi:colon", &"x".repeat(256), ""] {
        let r = ecs
            .register_task_definition()
            .family(family)
            .container_definitions(container("app"))
            .send()
            .await;
        assert_sdk_error(r, "ClientException");
    }
    // No containers; a container without image; an unknown volume; a dependency on a
    // container that is not there; memory below the reservation; reserved tag keys.
    register_err(&ecs, vec![], |r| r, "ClientException").await;
    register_err(
        &ecs,
        vec![ContainerDefinition::builder().name("x").memory(64).build()],
        |r| r,
        "ClientException",
    )
    .await;
    let msg = register_err(
        &ecs,
        vec![
            ContainerDefinition::builder()
                .name("x")
                .image("busybox")
                .memory(64)
                .mount_points(
                    MountPoint::builder()
                        .source_volume("nowhere")
                        .container_path("/x")
                        .build(),
                )
                .build(),
        ],
        |r| r,
        "ClientException",
    )
    .await;
    assert!(msg.contains("nowhere"), "{msg}");
    register_err(
        &ecs,
        vec![
            ContainerDefinition::builder()
                .name("x")
                .image("busybox")
                .memory(64)
                .depends_on(
                    ContainerDependency::builder()
                        .container_name("ghost")
                        .condition(ContainerCondition::Start)
                        .build()
                        .unwrap(),
                )
                .build(),
        ],
        |r| r,
        "ClientException",
    )
    .await;
    register_err(
        &ecs,
        vec![
            ContainerDefinition::builder()
                .name("x")
                .image("busybox")
                .memory(64)
                .memory_reservation(128)
                .build(),
        ],
        |r| r,
        "ClientException",
    )
    .await;
    register_err(
        &ecs,
        vec![container("app")],
        |r| r.tags(Tag::builder().key("aws:owner").value("x").build()),
        "InvalidParameterException",
    )
    .await;

    // Nothing was registered by the refused calls.
    let families = ecs.list_task_definition_families().send().await.unwrap();
    assert_eq!(families.families(), ["bridge", "ok"]);

    // The same rules through the CLI.
    let err = berth.aws_cli_error(
        REGION,
        &[
            "ecs",
            "register-task-definition",
            "--family",
            "cli",
            "--container-definitions",
            r#"[{"name":"a","image":"busybox","memory":64},{"name":"a","image":"busybox","memory":64}]"#,
        ],
        "ClientException",
    );
    assert!(err.contains("Duplicate container name"), "{err}");
    berth.aws_cli_error(
        REGION,
        &[
            "ecs",
            "register-task-definition",
            "--family",
            "cli",
            "--requires-compatibilities",
            "FARGATE",
            "--network-mode",
            "awsvpc",
            "--cpu",
            "512",
            "--memory",
            "512",
            "--container-definitions",
            r#"[{"name":"a","image":"busybox"}]"#,
        ],
        "ClientException",
    );
    berth.aws_cli_error(
        REGION,
        &[
            "ecs",
            "register-task-definition",
            "--family",
            "cli",
            "--network-mode",
            "awsvpc",
            "--container-definitions",
            r#"[{"name":"a","image":"busybox","memory":64,"portMappings":[{"containerPort":80,"hostPort":81}]}]"#,
        ],
        "ClientException",
    );
    berth.aws_cli_error(
        REGION,
        &[
            "ecs",
            "register-task-definition",
            "--family",
            "cli",
            "--container-definitions",
            r#"[{"name":"a","image":"busybox"}]"#,
        ],
        "ClientException",
    );
    berth.aws_cli_error(
        REGION,
        &[
            "ecs",
            "register-task-definition",
            "--family",
            "bad/family",
            "--container-definitions",
            r#"[{"name":"a","image":"busybox","memory":64}]"#,
        ],
        "ClientException",
    );
    berth.aws_cli_error(
        REGION,
        &[
            "ecs",
            "register-task-definition",
            "--family",
            "cli",
            "--container-definitions",
            r#"[{"name":"a","image":"busybox","memory":64,"essential":false}]"#,
        ],
        "ClientException",
    );
}
