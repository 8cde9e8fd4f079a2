//! EC2 tasks: `berth server` plus `berth agent` processes (own data directories and
//! availability zones) as container instances; RunTask and StartTask with the host and none
//! network modes run real containers; registered and remaining resources, running counts,
//! placement failures and DeleteCluster with tasks. Driven through aws-sdk-ecs and the CLI.
//!
//! Needs root, runc and busybox-static (CI has them); skips with a message when not root.

// Tests fail by panicking: unwrap/expect are the intended failure mode here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{ContainerInstance, LaunchType, Task};
use berth_e2e::{
    BerthAgent, BerthServer, REGION, assert_sdk_error, busybox_image_tar, containers_or_skip,
    unique_name, wait_task_status,
};
use serde_json::{Value, json};

const START: Duration = Duration::from_secs(60);

struct Env {
    berth: BerthServer,
    ecs: Client,
    cluster: String,
    agents: Vec<BerthAgent>,
}

/// `berth server`, a cluster, and one agent per availability zone with the test image
/// loaded; waits until every instance is registered and connected. `None` when not root.
async fn setup(test: &str, zones: &[&str]) -> Option<Env> {
    if !containers_or_skip(test) {
        return None;
    }
    let berth = BerthServer::builder().subcommand("server").start();
    let ecs = berth.ecs_client(REGION);
    let cluster = unique_name("ec2");
    ecs.create_cluster()
        .cluster_name(&cluster)
        .send()
        .await
        .expect("CreateCluster");
    let tar = busybox_image_tar();
    let agents: Vec<BerthAgent> = zones
        .iter()
        .map(|z| {
            let a = BerthAgent::start(&berth, &cluster, z);
            a.load_image(&tar);
            a
        })
        .collect();
    let env = Env {
        berth,
        ecs,
        cluster,
        agents,
    };
    env.wait_instances(zones.len()).await;
    Some(env)
}

fn resource(ci: &ContainerInstance, remaining: bool, name: &str) -> i32 {
    let list = if remaining {
        ci.remaining_resources()
    } else {
        ci.registered_resources()
    };
    list.iter()
        .find(|r| r.name() == Some(name))
        .map(|r| r.integer_value())
        .unwrap_or_else(|| panic!("no {name} resource in {ci:#?}"))
}

fn attribute<'a>(ci: &'a ContainerInstance, name: &str) -> Option<&'a str> {
    ci.attributes()
        .iter()
        .find(|a| a.name() == name)
        .and_then(|a| a.value())
}

impl Env {
    async fn instances(&self) -> Vec<ContainerInstance> {
        let arns = self
            .ecs
            .list_container_instances()
            .cluster(&self.cluster)
            .send()
            .await
            .expect("ListContainerInstances")
            .container_instance_arns()
            .to_vec();
        if arns.is_empty() {
            return Vec::new();
        }
        self.ecs
            .describe_container_instances()
            .cluster(&self.cluster)
            .set_container_instances(Some(arns))
            .send()
            .await
            .expect("DescribeContainerInstances")
            .container_instances()
            .to_vec()
    }

    async fn instance(&self, arn: &str) -> ContainerInstance {
        self.ecs
            .describe_container_instances()
            .cluster(&self.cluster)
            .container_instances(arn)
            .send()
            .await
            .expect("DescribeContainerInstances")
            .container_instances()
            .first()
            .cloned()
            .expect("the instance is described")
    }

    /// Waits until `n` instances are registered, connected, with CPU and MEMORY.
    async fn wait_instances(&self, n: usize) -> Vec<ContainerInstance> {
        let deadline = Instant::now() + START;
        loop {
            let cis = self.instances().await;
            let ready = cis.len() == n
                && cis.iter().all(|ci| {
                    ci.agent_connected()
                        && ci.status() == Some("ACTIVE")
                        && resource(ci, false, "CPU") > 0
                        && resource(ci, false, "MEMORY") > 0
                });
            if ready {
                return cis;
            }
            assert!(
                Instant::now() < deadline,
                "{n} connected instances expected: {cis:#?}\nagent logs:\n{}",
                self.agents
                    .iter()
                    .map(BerthAgent::log)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Registers an EC2 task definition through the CLI.
    fn register(&self, family: &str, network_mode: &str, containers: Value) {
        let input = json!({
            "family": family,
            "requiresCompatibilities": ["EC2"],
            "networkMode": network_mode,
            "containerDefinitions": containers,
        })
        .to_string();
        self.berth.aws_cli_json(
            REGION,
            &[
                "ecs",
                "register-task-definition",
                "--cli-input-json",
                &input,
            ],
        );
    }

    async fn stopped(&self, arn: &str) -> Task {
        wait_task_status(&self.ecs, &self.cluster, arn, "STOPPED", START).await
    }

    async fn stop(&self, arn: &str) {
        self.ecs
            .stop_task()
            .cluster(&self.cluster)
            .task(arn)
            .reason("e2e")
            .send()
            .await
            .expect("StopTask");
    }
}

fn exit_code(t: &Task) -> Option<i32> {
    t.containers().first().and_then(|c| c.exit_code())
}

/// Exits 0 on SIGTERM.
const LONG: &str = "trap 'exit 0' TERM; while true; do sleep 1; done";
/// Counts the network interfaces the container sees (lines of /proc/net/dev with a colon).
const IFACES: &str = "n=$(grep -c : /proc/net/dev)";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_register_and_run_host_and_none_tasks_with_resource_accounting() {
    let Some(env) = setup(
        "agents_register_and_run_host_and_none_tasks_with_resource_accounting",
        &["us-east-1a", "us-east-1b"],
    )
    .await
    else {
        return;
    };
    let cis = env.wait_instances(2).await;
    let mut zones: Vec<&str> = cis
        .iter()
        .map(|ci| attribute(ci, "ecs.availability-zone").unwrap_or(""))
        .collect();
    zones.sort_unstable();
    assert_eq!(zones, ["us-east-1a", "us-east-1b"], "{cis:#?}");
    for ci in &cis {
        assert_eq!(attribute(ci, "ecs.os-type"), Some("linux"), "{ci:#?}");
        assert_eq!(ci.running_tasks_count(), 0);
        assert_eq!(
            resource(ci, true, "MEMORY"),
            resource(ci, false, "MEMORY"),
            "{ci:#?}"
        );
    }
    let target = cis[0].container_instance_arn().unwrap().to_owned();
    let before = env.instance(&target).await;

    // host network mode: the container sees the host's interfaces (more than loopback). It
    // runs on the named instance (StartTask) and holds 256 CPU units and 128 MiB there.
    let host = unique_name("host");
    env.register(
        &host,
        "host",
        json!([{"name": "app", "image": "busybox", "cpu": 256, "memory": 128,
                "command": ["sh", "-c", format!("{IFACES}; test $n -gt 1 || exit 1; {LONG}")]}]),
    );
    let started = env
        .ecs
        .start_task()
        .cluster(&env.cluster)
        .task_definition(&host)
        .container_instances(&target)
        .started_by("e2e-start")
        .send()
        .await
        .expect("StartTask");
    assert!(started.failures().is_empty(), "{started:?}");
    let arn = started.tasks()[0].task_arn().unwrap().to_owned();
    assert_eq!(
        started.tasks()[0].container_instance_arn(),
        Some(target.as_str())
    );
    let t = wait_task_status(&env.ecs, &env.cluster, &arn, "RUNNING", START).await;
    assert_eq!(t.launch_type(), Some(&LaunchType::Ec2));
    let during = env.instance(&target).await;
    assert_eq!(
        resource(&during, true, "CPU"),
        resource(&before, true, "CPU") - 256,
        "{during:#?}"
    );
    assert_eq!(
        resource(&during, true, "MEMORY"),
        resource(&before, true, "MEMORY") - 128,
        "{during:#?}"
    );
    assert_eq!(during.running_tasks_count(), 1, "{during:#?}");
    // ListTasks by container instance.
    let listed = env
        .ecs
        .list_tasks()
        .cluster(&env.cluster)
        .container_instance(&target)
        .send()
        .await
        .expect("ListTasks");
    assert_eq!(listed.task_arns(), std::slice::from_ref(&arn));

    env.stop(&arn).await;
    let t = env.stopped(&arn).await;
    assert_eq!(exit_code(&t), Some(0), "{t:#?}");
    // Resources come back once the task stopped.
    let deadline = Instant::now() + START;
    loop {
        let after = env.instance(&target).await;
        if resource(&after, true, "MEMORY") == resource(&before, true, "MEMORY")
            && resource(&after, true, "CPU") == resource(&before, true, "CPU")
            && after.running_tasks_count() == 0
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "resources not released: {after:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // none network mode, through the CLI: only loopback; the exit code says so.
    let none = unique_name("none");
    env.register(
        &none,
        "none",
        json!([{"name": "app", "image": "busybox", "memory": 64,
                "command": ["sh", "-c", format!("{IFACES}; test $n -eq 1 && exit 11; exit 1")]}]),
    );
    let out = env.berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "run-task",
            "--cluster",
            &env.cluster,
            "--task-definition",
            &none,
            "--launch-type",
            "EC2",
        ],
    );
    assert_eq!(out["failures"], json!([]), "{out}");
    let arn = out["tasks"][0]["taskArn"].as_str().unwrap().to_owned();
    let t = env.stopped(&arn).await;
    assert_eq!(exit_code(&t), Some(11), "{t:#?}");
    assert_eq!(
        t.stop_code(),
        Some(&aws_sdk_ecs::types::TaskStopCode::EssentialContainerExited)
    );
    assert!(t.container_instance_arn().is_some(), "{t:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_failures_and_delete_cluster_with_an_instance() {
    let Some(env) = setup(
        "placement_failures_and_delete_cluster_with_an_instance",
        &["us-east-1c"],
    )
    .await
    else {
        return;
    };
    let cis = env.wait_instances(1).await;
    let ci_arn = cis[0].container_instance_arn().unwrap().to_owned();
    let registered_memory = resource(&cis[0], false, "MEMORY");

    // More memory than the instance has: a failure, no task.
    let huge = unique_name("huge");
    env.register(
        &huge,
        "host",
        json!([{"name": "app", "image": "busybox", "memory": registered_memory + 1024,
                "command": ["true"]}]),
    );
    let out = env
        .ecs
        .run_task()
        .cluster(&env.cluster)
        .task_definition(&huge)
        .launch_type(LaunchType::Ec2)
        .send()
        .await
        .expect("RunTask");
    assert!(out.tasks().is_empty(), "{out:?}");
    assert_eq!(out.failures().len(), 1, "{out:?}");
    assert_eq!(
        out.failures()[0].reason(),
        Some("RESOURCE:MEMORY"),
        "{out:?}"
    );
    assert_eq!(out.failures()[0].arn(), Some(ci_arn.as_str()), "{out:?}");

    // An instance (running a task) keeps the cluster alive; the Fargate suite checks
    // ClusterContainsTasksException, where no instance comes first.
    let long = unique_name("long");
    env.register(
        &long,
        "host",
        json!([{"name": "app", "image": "busybox", "memory": 64,
                "command": ["sh", "-c", LONG]}]),
    );
    let out = env
        .ecs
        .run_task()
        .cluster(&env.cluster)
        .task_definition(&long)
        .launch_type(LaunchType::Ec2)
        .send()
        .await
        .expect("RunTask");
    let arn = out.tasks()[0].task_arn().unwrap().to_owned();
    wait_task_status(&env.ecs, &env.cluster, &arn, "RUNNING", START).await;
    let res = env.ecs.delete_cluster().cluster(&env.cluster).send().await;
    assert_sdk_error(res, "ClusterContainsContainerInstancesException");
    env.stop(&arn).await;
    env.stopped(&arn).await;
}
