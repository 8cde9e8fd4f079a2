//! `kill -9` of `berth up` loses nothing that was acknowledged.

use berth_e2e::{BerthServer, REGION};

#[tokio::test]
async fn kill9_and_restart_keeps_every_acknowledged_write() {
    let mut berth = BerthServer::start();
    let ecs = berth.ecs_client(REGION);
    let mut names = Vec::new();
    for i in 0..25 {
        let name = format!("durable-{i}");
        ecs.create_cluster()
            .cluster_name(&name)
            .send()
            .await
            .unwrap();
        names.push(name);
    }
    ecs.delete_cluster()
        .cluster("durable-0")
        .send()
        .await
        .unwrap();
    // Killed right after the last acknowledged write: no clean shutdown, no flush.
    berth.kill9();
    berth.start_again();
    let ecs = berth.ecs_client(REGION);
    let listed = ecs.list_clusters().send().await.unwrap();
    assert_eq!(listed.cluster_arns().len(), 24, "{listed:?}");
    let d = ecs
        .describe_clusters()
        .clusters("durable-0")
        .clusters("durable-24")
        .send()
        .await
        .unwrap();
    assert_eq!(d.clusters()[0].status(), Some("INACTIVE"));
    assert_eq!(d.clusters()[1].status(), Some("ACTIVE"));
    // The root key survived too (the client above is signed with it), and writes go on.
    ecs.create_cluster()
        .cluster_name("after")
        .send()
        .await
        .unwrap();
}

/// The same for what the server holds in memory with the database as its log (tasks,
/// container instances and their usage, counters, agents' assignments): tasks placed and
/// reported RUNNING on simulated instances, then `kill -9` before the log is folded into
/// the tables, and everything is read back as acknowledged after the restart (the log
/// replayed); placement goes on from the same usage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_keeps_the_tasks_and_usage_held_in_memory() {
    use aws_sdk_ecs::types::{Compatibility, ContainerDefinition, LaunchType, NetworkMode};
    use std::time::{Duration, Instant};

    let mut berth = BerthServer::builder().subcommand("server").start();
    let ecs = berth.ecs_client(REGION);
    ecs.create_cluster()
        .cluster_name("held")
        .send()
        .await
        .unwrap();
    ecs.register_task_definition()
        .family("held")
        .network_mode(NetworkMode::Host)
        .requires_compatibilities(Compatibility::Ec2)
        .container_definitions(
            ContainerDefinition::builder()
                .name("app")
                .image("busybox")
                .cpu(256)
                .memory(64)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let mut agents = berth.spawn_sim("held", 3);
    let deadline = Instant::now() + Duration::from_secs(60);
    while ecs
        .list_container_instances()
        .cluster("held")
        .send()
        .await
        .unwrap()
        .container_instance_arns()
        .len()
        < 3
    {
        assert!(
            Instant::now() < deadline,
            "the simulated instances never registered"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let run_ten = |ecs: aws_sdk_ecs::Client| async move {
        let out = ecs
            .run_task()
            .cluster("held")
            .task_definition("held")
            .launch_type(LaunchType::Ec2)
            .count(10)
            .send()
            .await
            .unwrap();
        assert!(out.failures().is_empty(), "{:?}", out.failures());
        out
    };
    let mut tasks = Vec::new();
    for _ in 0..2 {
        let out = run_ten(ecs.clone()).await;
        tasks.extend(
            out.tasks()
                .iter()
                .map(|t| t.task_arn().unwrap().to_string()),
        );
    }
    let describe = |ecs: aws_sdk_ecs::Client, arns: Vec<String>| async move {
        ecs.describe_tasks()
            .cluster("held")
            .set_tasks(Some(arns))
            .send()
            .await
            .unwrap()
    };
    // Until each of `arns` is reported at `status` by its agent.
    let wait_for = |ecs: aws_sdk_ecs::Client, arns: Vec<String>, status: &'static str| async move {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let d = describe(ecs.clone(), arns.clone()).await;
            if d.tasks().iter().all(|t| t.last_status() == Some(status)) {
                break;
            }
            assert!(Instant::now() < deadline, "never all {status}: {d:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    // Wait for the reports (writes to tasks, usage and counters), then stop one.
    wait_for(ecs.clone(), tasks.clone(), "RUNNING").await;
    ecs.stop_task()
        .cluster("held")
        .task(&tasks[0])
        .send()
        .await
        .unwrap();
    // Its agent's report ends it: nothing is in flight when the state is read.
    wait_for(ecs.clone(), vec![tasks[0].clone()], "STOPPED").await;
    let before = describe(ecs.clone(), tasks.clone()).await;
    let instances = |ecs: aws_sdk_ecs::Client| async move {
        let arns = ecs
            .list_container_instances()
            .cluster("held")
            .send()
            .await
            .unwrap()
            .container_instance_arns()
            .to_vec();
        let mut d = ecs
            .describe_container_instances()
            .cluster("held")
            .set_container_instances(Some(arns))
            .send()
            .await
            .unwrap()
            .container_instances()
            .iter()
            .map(|c| {
                let cpu = c
                    .remaining_resources()
                    .iter()
                    .find(|r| r.name() == Some("CPU"))
                    .map(|r| r.integer_value());
                (
                    c.container_instance_arn().unwrap().to_string(),
                    c.running_tasks_count(),
                    c.pending_tasks_count(),
                    cpu,
                )
            })
            .collect::<Vec<_>>();
        d.sort();
        d
    };
    let instances_before = instances(ecs.clone()).await;
    let cluster_counts = |ecs: aws_sdk_ecs::Client| async move {
        let c = ecs
            .describe_clusters()
            .clusters("held")
            .send()
            .await
            .unwrap();
        let c = &c.clusters()[0];
        (c.running_tasks_count(), c.pending_tasks_count())
    };
    let counts_before = cluster_counts(ecs.clone()).await;
    assert_eq!(counts_before, (19, 0));

    // No clean shutdown: the log rows not yet folded are all the tables lack.
    let health = berth.raw(&berth_e2e::RawRequest::new("GET", "/_berth/health"));
    let health: serde_json::Value = serde_json::from_slice(&health.body).unwrap();
    let unfolded = health["store"]["hotState"]["unfoldedKeys"].as_u64();
    assert!(unfolded.is_some_and(|n| n > 0), "{health}");
    let _ = agents.kill();
    let _ = agents.wait();
    berth.kill9();
    berth.start_again();
    let ecs = berth.ecs_client(REGION);
    let after = describe(ecs.clone(), tasks.clone()).await;
    let state = |d: &aws_sdk_ecs::operation::describe_tasks::DescribeTasksOutput| {
        let mut v: Vec<_> = d
            .tasks()
            .iter()
            .map(|t| {
                (
                    t.task_arn().unwrap().to_string(),
                    t.last_status().map(str::to_string),
                    t.desired_status().map(str::to_string),
                    t.version(),
                )
            })
            .collect();
        v.sort();
        v
    };
    assert_eq!(state(&before), state(&after));
    assert_eq!(instances(ecs.clone()).await, instances_before);
    assert_eq!(cluster_counts(ecs.clone()).await, counts_before);
    let listed = ecs
        .list_tasks()
        .cluster("held")
        .send()
        .await
        .unwrap()
        .task_arns()
        .len();
    let stopped = ecs
        .list_tasks()
        .cluster("held")
        .desired_status(aws_sdk_ecs::types::DesiredStatus::Stopped)
        .send()
        .await
        .unwrap()
        .task_arns()
        .len();
    assert_eq!(listed + stopped, 20);

    // The agents come back; placement goes on from the usage the log restored.
    let mut agents = berth.spawn_sim("held", 3);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    run_ten(ecs.clone()).await;
    let (running, pending) = cluster_counts(ecs.clone()).await;
    assert_eq!(running + pending, 29, "{running} + {pending}");
    let _ = agents.kill();
    let _ = agents.wait();
}
