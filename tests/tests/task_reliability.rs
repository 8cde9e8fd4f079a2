//! Reliability with real containers: `kill -9` of an agent while its task runs (the
//! container keeps running, the restarted agent carries on, StopTask still stops it), and
//! `kill -9` of `berth up` while tasks start (after the restart no acknowledged task is lost
//! or doubled).
//!
//! Needs root, runc and busybox-static (CI has them); skips with a message when not root.

// Tests fail by panicking: unwrap/expect are the intended failure mode here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashSet;
use std::fs;
use std::time::{Duration, Instant};

use aws_sdk_ecs::types::{
    AwsVpcConfiguration, DesiredStatus, LaunchType, NetworkConfiguration, TaskStopCode,
};
use berth_e2e::{
    BerthAgent, BerthServer, REGION, busybox_image_tar, containers_or_skip, pids_with_marker,
    unique_name, wait_task_status,
};
use serde_json::json;

const START: Duration = Duration::from_secs(60);

/// A shell that exits 0 on SIGTERM and otherwise runs forever; `$0` is the marker, so the
/// container's process can be found by its command line.
fn long_command(marker: &str) -> serde_json::Value {
    json!([
        "sh",
        "-c",
        "trap 'exit 0' TERM; while true; do sleep 1; done",
        marker
    ])
}

fn alive(pid: u32, marker: &str) -> bool {
    fs::read(format!("/proc/{pid}/cmdline"))
        .is_ok_and(|c| String::from_utf8_lossy(&c).contains(marker))
}

/// The containers' main processes carrying `marker`: those whose parent does not carry it
/// (a shell's short-lived forks share its command line).
fn main_pids(marker: &str) -> Vec<u32> {
    let pids = pids_with_marker(marker);
    let set: HashSet<u32> = pids.iter().copied().collect();
    pids.into_iter()
        .filter(|pid| {
            let ppid = fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .and_then(|s| {
                    s.rsplit_once(')')
                        .and_then(|(_, rest)| rest.split_whitespace().nth(1).map(str::to_owned))
                })
                .and_then(|p| p.parse::<u32>().ok());
            ppid.is_some_and(|p| !set.contains(&p))
        })
        .collect()
}

async fn agent_connected(ecs: &aws_sdk_ecs::Client, cluster: &str, arn: &str) -> bool {
    ecs.describe_container_instances()
        .cluster(cluster)
        .container_instances(arn)
        .send()
        .await
        .expect("DescribeContainerInstances")
        .container_instances()
        .first()
        .is_some_and(|ci| ci.agent_connected())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_agent_leaves_its_container_running_and_picks_it_up_again() {
    agent_restart(
        "a_killed_agent_leaves_its_container_running_and_picks_it_up_again",
        false,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_agent_keeps_its_instance_accounting() {
    agent_restart("a_restarted_agent_keeps_its_instance_accounting", true).await;
}

/// Kill -9 the agent while a task runs, start it again, stop the task. With `accounting`,
/// also checks runningTasksCount and remainingResources after the restart.
async fn agent_restart(test: &str, accounting: bool) {
    if !containers_or_skip(test) {
        return;
    }
    let berth = BerthServer::builder().subcommand("server").start();
    let ecs = berth.ecs_client(REGION);
    let cluster = unique_name("rel");
    ecs.create_cluster()
        .cluster_name(&cluster)
        .send()
        .await
        .expect("CreateCluster");
    let mut agent = BerthAgent::start(&berth, &cluster, "us-east-1a");
    agent.load_image(&busybox_image_tar());

    let marker = unique_name("berth-e2e-marker");
    let family = unique_name("long");
    let input = json!({
        "family": family, "requiresCompatibilities": ["EC2"], "networkMode": "host",
        "containerDefinitions": [{"name": "app", "image": "busybox", "memory": 64,
                                  "stopTimeout": 10, "command": long_command(&marker)}],
    })
    .to_string();
    berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "register-task-definition",
            "--cli-input-json",
            &input,
        ],
    );
    // RunTask retries until the agent has registered.
    let deadline = Instant::now() + START;
    let out = loop {
        let out = berth.aws_cli(
            REGION,
            &[
                "ecs",
                "run-task",
                "--cluster",
                &cluster,
                "--task-definition",
                &family,
                "--launch-type",
                "EC2",
            ],
        );
        if out.status.success() {
            break berth_e2e::cli_json(&out, &["run-task"]);
        }
        assert!(
            Instant::now() < deadline,
            "RunTask kept failing: {}\nagent log:\n{}",
            String::from_utf8_lossy(&out.stderr),
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let arn = out["tasks"][0]["taskArn"].as_str().unwrap().to_owned();
    let ci_arn = out["tasks"][0]["containerInstanceArn"]
        .as_str()
        .unwrap()
        .to_owned();
    wait_task_status(&ecs, &cluster, &arn, "RUNNING", START).await;
    let pids = main_pids(&marker);
    assert_eq!(pids.len(), 1, "one container process expected: {pids:?}");
    let pid = pids[0];

    agent.kill9();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(alive(pid, &marker), "the container died with its agent");
    let t = wait_task_status(&ecs, &cluster, &arn, "RUNNING", START).await;
    assert_eq!(t.desired_status(), Some("RUNNING"));

    agent.start_again();
    // The restarted agent connects again and still holds the task.
    let deadline = Instant::now() + START;
    while !agent_connected(&ecs, &cluster, &ci_arn).await {
        assert!(
            Instant::now() < deadline,
            "the agent did not reconnect:\n{}",
            agent.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        alive(pid, &marker),
        "the restarted agent killed the container"
    );
    assert_eq!(
        main_pids(&marker),
        [pid],
        "the restarted agent started a copy"
    );
    let t = wait_task_status(&ecs, &cluster, &arn, "RUNNING", START).await;
    assert_eq!(t.containers()[0].last_status(), Some("RUNNING"), "{t:#?}");
    if accounting {
        let ci = ecs
            .describe_container_instances()
            .cluster(&cluster)
            .container_instances(&ci_arn)
            .send()
            .await
            .expect("DescribeContainerInstances");
        let ci = &ci.container_instances()[0];
        let memory = |rs: &[aws_sdk_ecs::types::Resource]| {
            rs.iter()
                .find(|r| r.name() == Some("MEMORY"))
                .map(|r| r.integer_value())
        };
        assert_eq!(ci.running_tasks_count(), 1, "{ci:#?}");
        assert_eq!(
            memory(ci.remaining_resources()),
            memory(ci.registered_resources()).map(|m| m - 64),
            "{ci:#?}"
        );
    }

    // StopTask reaches the adopted container: SIGTERM, which it handles with exit 0.
    ecs.stop_task()
        .cluster(&cluster)
        .task(&arn)
        .reason("stopped after the agent restart")
        .send()
        .await
        .expect("StopTask");
    let t = wait_task_status(&ecs, &cluster, &arn, "STOPPED", START).await;
    assert_eq!(t.stop_code(), Some(&TaskStopCode::UserInitiated), "{t:#?}");
    assert_eq!(t.stopped_reason(), Some("stopped after the agent restart"));
    assert_eq!(t.containers()[0].exit_code(), Some(0), "{t:#?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid, &marker) {
        assert!(Instant::now() < deadline, "the container still runs");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_loses_and_doubles_no_starting_task() {
    let test = "a_killed_server_loses_and_doubles_no_starting_task";
    if !containers_or_skip(test) {
        return;
    }
    let mut berth = BerthServer::start();
    berth.load_image(&busybox_image_tar());
    let ecs = berth.ecs_client(REGION);
    let cluster = unique_name("rel");
    ecs.create_cluster()
        .cluster_name(&cluster)
        .send()
        .await
        .expect("CreateCluster");
    let marker = unique_name("berth-e2e-marker");
    let family = unique_name("five");
    let input = json!({
        "family": family, "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc",
        "cpu": "256", "memory": "512",
        "containerDefinitions": [{"name": "app", "image": "busybox", "stopTimeout": 5,
                                  "command": long_command(&marker)}],
    })
    .to_string();
    berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "register-task-definition",
            "--cli-input-json",
            &input,
        ],
    );
    let out = ecs
        .run_task()
        .cluster(&cluster)
        .task_definition(&family)
        .launch_type(LaunchType::Fargate)
        .network_configuration(
            NetworkConfiguration::builder()
                .awsvpc_configuration(
                    AwsVpcConfiguration::builder()
                        .subnets(berth.default_subnet())
                        .build()
                        .unwrap(),
                )
                .build(),
        )
        .count(5)
        .send()
        .await
        .expect("RunTask count 5");
    berth.kill9();
    let mut acked: Vec<String> = out
        .tasks()
        .iter()
        .map(|t| t.task_arn().unwrap().to_owned())
        .collect();
    acked.sort();
    assert_eq!(acked.len(), 5, "{out:?}");
    berth.start_again();
    let ecs = berth.ecs_client(REGION);

    // Every acknowledged task is listed exactly once (running or stopped), and nothing else.
    let mut listed = Vec::new();
    for desired in [DesiredStatus::Running, DesiredStatus::Stopped] {
        let page = ecs
            .list_tasks()
            .cluster(&cluster)
            .desired_status(desired)
            .send()
            .await
            .expect("ListTasks");
        listed.extend(page.task_arns().iter().cloned());
    }
    listed.sort();
    assert_eq!(listed, acked, "tasks after the restart");

    // Each reaches a final state.
    let mut running = 0;
    for arn in &acked {
        let deadline = Instant::now() + START;
        loop {
            let t = ecs
                .describe_tasks()
                .cluster(&cluster)
                .tasks(arn)
                .send()
                .await
                .expect("DescribeTasks");
            let t = t.tasks()[0].clone();
            match t.last_status() {
                Some("RUNNING") => {
                    running += 1;
                    break;
                }
                Some("STOPPED") => {
                    assert!(
                        t.stop_code().is_some() && t.stopped_reason().is_some(),
                        "{t:#?}"
                    );
                    break;
                }
                _ => {}
            }
            assert!(Instant::now() < deadline, "not settled: {t:#?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // One container process per running task: none started twice.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        main_pids(&marker).len(),
        running,
        "container processes vs RUNNING tasks"
    );
    for arn in &acked {
        ecs.stop_task()
            .cluster(&cluster)
            .task(arn)
            .send()
            .await
            .expect("StopTask");
    }
    for arn in &acked {
        wait_task_status(&ecs, &cluster, arn, "STOPPED", START).await;
    }
    let listed = ecs
        .list_tasks()
        .cluster(&cluster)
        .desired_status(DesiredStatus::Stopped)
        .send()
        .await
        .expect("ListTasks");
    assert_eq!(listed.task_arns().len(), 5);
}
