//! Smoke tests of the scale tooling, so it does not rot: `berth sim` (SIMULATED agents, no
//! process runs) joined to a `berth server` takes 100 tasks placed by RunTask to RUNNING and a
//! stopped one to STOPPED, through the real API; `berth bench placement` runs end to end at a
//! tiny size. These test the simulator itself; no functional test uses it in place of real
//! containers.

// Tests fail by panicking: unwrap/expect are the intended failure mode here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use aws_sdk_ecs::types::{Compatibility, ContainerDefinition, LaunchType, NetworkMode};
use berth_e2e::{BerthServer, REGION, berth_bin, unique_name};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_agents_take_tasks_to_running_and_stopped() {
    let berth = BerthServer::builder().subcommand("server").start();
    let ecs = berth.ecs_client(REGION);
    let cluster = unique_name("sim");
    ecs.create_cluster()
        .cluster_name(&cluster)
        .send()
        .await
        .unwrap();
    ecs.register_task_definition()
        .family("simmed")
        .network_mode(NetworkMode::Host)
        .requires_compatibilities(Compatibility::Ec2)
        .container_definitions(
            ContainerDefinition::builder()
                .name("app")
                .image("busybox")
                .cpu(16)
                .memory(32)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let _sim = Killed(berth.spawn_sim(&cluster, 20));
    // 20 instances registered, each marked as simulated.
    let deadline = Instant::now() + Duration::from_secs(60);
    let arns = loop {
        let arns = ecs
            .list_container_instances()
            .cluster(&cluster)
            .send()
            .await
            .unwrap()
            .container_instance_arns
            .unwrap_or_default();
        if arns.len() == 20 {
            break arns;
        }
        assert!(
            Instant::now() < deadline,
            "{} instances registered",
            arns.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let described = ecs
        .describe_container_instances()
        .cluster(&cluster)
        .set_container_instances(Some(arns[..1].to_vec()))
        .send()
        .await
        .unwrap();
    let ci = &described.container_instances()[0];
    assert!(
        ci.attributes()
            .iter()
            .any(|a| a.name() == "berth.simulated" && a.value() == Some("true"))
    );
    // Their first polls (heartbeats) make them connected.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut tasks = Vec::new();
    for _ in 0..10 {
        let out = ecs
            .run_task()
            .cluster(&cluster)
            .task_definition("simmed")
            .launch_type(LaunchType::Ec2)
            .count(10)
            .send()
            .await
            .unwrap();
        assert!(out.failures().is_empty(), "{:?}", out.failures());
        tasks.extend(
            out.tasks()
                .iter()
                .map(|t| t.task_arn().unwrap().to_string()),
        );
    }
    assert_eq!(tasks.len(), 100);
    let status_of = |arns: Vec<String>| {
        let ecs = ecs.clone();
        let cluster = cluster.clone();
        async move {
            let mut out = Vec::new();
            for chunk in arns.chunks(100) {
                let d = ecs
                    .describe_tasks()
                    .cluster(&cluster)
                    .set_tasks(Some(chunk.to_vec()))
                    .send()
                    .await
                    .unwrap();
                out.extend(
                    d.tasks()
                        .iter()
                        .map(|t| t.last_status().unwrap().to_string()),
                );
            }
            out
        }
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let statuses = status_of(tasks.clone()).await;
        if statuses.iter().all(|s| s == "RUNNING") {
            break;
        }
        assert!(Instant::now() < deadline, "not all RUNNING: {statuses:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Told to stop, a simulated task reports STOPPED.
    ecs.stop_task()
        .cluster(&cluster)
        .task(&tasks[0])
        .send()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if status_of(vec![tasks[0].clone()]).await == ["STOPPED"] {
            break;
        }
        assert!(Instant::now() < deadline, "the stopped task never stopped");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Runs `berth bench <args>`, which must succeed; its standard output.
fn bench(args: &[&str]) -> String {
    let out = Command::new(berth_bin().unwrap())
        .arg("bench")
        .args(args)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn bench_placement_runs_end_to_end_at_a_tiny_size() {
    let stdout = bench(&[
        "placement",
        "--instances",
        "20",
        "--tasks",
        "100",
        "--clients",
        "4",
        "--micro-seconds",
        "1",
        "--min-poll-interval-ms",
        "100",
        "--settle-timeout-seconds",
        "60",
    ]);
    assert!(stdout.contains("placements/s"), "{stdout}");
    assert!(
        stdout.contains("reported RUNNING by the simulated agents: "),
        "{stdout}"
    );
    // What a placement cost the server, read from its /proc entry and its health answer.
    for line in [
        "server CPU while placing: ",
        "store writer while placing: held ",
    ] {
        let found = stdout.lines().find(|l| l.starts_with(line));
        assert!(
            found.is_some_and(|l| l.contains(" µs per placement")),
            "{line}: {stdout}"
        );
    }
}

#[test]
fn bench_service_runs_end_to_end_at_a_tiny_size() {
    let stdout = bench(&[
        "service",
        "--instances",
        "5",
        "--tasks",
        "20",
        "--min-poll-interval-ms",
        "100",
        "--timeout-seconds",
        "120",
    ]);
    assert!(stdout.contains("| scale 0 → 20"), "{stdout}");
    assert!(
        stdout.contains("| rolling deployment svc:1 → svc:2"),
        "{stdout}"
    );
}
