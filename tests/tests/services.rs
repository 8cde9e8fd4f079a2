//! Services end to end, with real containers: REPLICA services on `berth up` (Fargate)
//! scaled 0→5→2, rolled to a new revision with health checks (sampled: never below
//! minimumHealthyPercent, never above maximumPercent), and a bad revision tripping the
//! deployment circuit breaker and rolling back; a DAEMON service on `berth server` + agents
//! (one task per instance, a joining instance, draining) and the replacement of a killed
//! agent's tasks. Driven through the `aws` CLI (including `aws ecs wait services-stable`) and
//! aws-sdk-ecs for sampling.
//!
//! Needs root, runc and busybox-static (CI has them); skips with a message when not root.

// Tests fail by panicking: unwrap/expect are the intended failure mode here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{DesiredStatus, HealthStatus};
use berth_e2e::{
    BerthAgent, BerthServer, REGION, busybox_image_tar, containers_or_skip, unique_name,
};
use serde_json::{Value, json};

struct Env {
    berth: BerthServer,
    ecs: Client,
    cluster: String,
    agents: Vec<BerthAgent>,
}

/// `berth up` with the test image loaded and a cluster; `None` when not root.
async fn fargate(test: &str) -> Option<Env> {
    if !containers_or_skip(test) {
        return None;
    }
    let berth = BerthServer::start();
    berth.load_image(&busybox_image_tar());
    let ecs = berth.ecs_client(REGION);
    let cluster = unique_name("svc");
    ecs.create_cluster()
        .cluster_name(&cluster)
        .send()
        .await
        .expect("CreateCluster");
    Some(Env {
        berth,
        ecs,
        cluster,
        agents: Vec::new(),
    })
}

/// A container that sleeps, optionally with a health check that passes.
fn sleeper(health: bool) -> Value {
    let mut c = json!({"name": "app", "image": "busybox", "essential": true, "stopTimeout": 2,
        "command": ["sleep", "3600"]});
    if health {
        c["healthCheck"] =
            json!({"command": ["CMD-SHELL", "true"], "interval": 5, "timeout": 4, "retries": 1});
    }
    c
}

impl Env {
    fn cli(&self, args: &[&str]) -> Value {
        self.berth.aws_cli_json(REGION, args)
    }

    /// Registers a Fargate task definition; returns its ARN.
    fn register_fargate(&self, family: &str, container: Value) -> String {
        let input = json!({
            "family": family, "requiresCompatibilities": ["FARGATE"], "networkMode": "awsvpc",
            "cpu": "256", "memory": "512", "containerDefinitions": [container],
        })
        .to_string();
        let out = self.cli(&[
            "ecs",
            "register-task-definition",
            "--cli-input-json",
            &input,
        ]);
        out["taskDefinition"]["taskDefinitionArn"]
            .as_str()
            .unwrap()
            .to_string()
    }

    fn service(&self, name: &str) -> Value {
        let out = self.cli(&[
            "ecs",
            "describe-services",
            "--cluster",
            &self.cluster,
            "--services",
            name,
        ]);
        out["services"][0].clone()
    }

    /// Polls DescribeServices until `pred` holds (at most `within`).
    fn wait_service(
        &self,
        name: &str,
        what: &str,
        within: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let s = self.service(name);
            if pred(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "waiting for {what}: {}",
                serde_json::to_string_pretty(&s).unwrap()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// `aws ecs wait services-stable` (its first check is immediate; it polls every 15 s).
    fn wait_stable(&self, name: &str) {
        let out = self.berth.aws_cli(
            REGION,
            &[
                "ecs",
                "wait",
                "services-stable",
                "--cluster",
                &self.cluster,
                "--services",
                name,
            ],
        );
        assert!(out.status.success(), "services-stable: {out:?}");
    }

    /// The service's tasks that are not STOPPED (desired RUNNING unless `all`).
    async fn tasks(&self, service: &str, all: bool) -> Vec<aws_sdk_ecs::types::Task> {
        let mut arns = Vec::new();
        let statuses: &[DesiredStatus] = if all {
            &[DesiredStatus::Running, DesiredStatus::Stopped]
        } else {
            &[DesiredStatus::Running]
        };
        for st in statuses {
            let out = self
                .ecs
                .list_tasks()
                .cluster(&self.cluster)
                .service_name(service)
                .desired_status(st.clone())
                .send()
                .await
                .expect("ListTasks");
            arns.extend(out.task_arns().iter().cloned());
        }
        let mut tasks = Vec::new();
        for chunk in arns.chunks(100) {
            let out = self
                .ecs
                .describe_tasks()
                .cluster(&self.cluster)
                .set_tasks(Some(chunk.to_vec()))
                .send()
                .await
                .expect("DescribeTasks");
            tasks.extend(out.tasks().iter().cloned());
        }
        tasks
            .into_iter()
            .filter(|t| all || t.last_status() != Some("STOPPED"))
            .collect()
    }
}

fn events(s: &Value) -> Vec<String> {
    s["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["message"].as_str().unwrap().to_string())
        .collect()
}

fn counts(s: &Value) -> (i64, i64, usize) {
    (
        s["runningCount"].as_i64().unwrap(),
        s["desiredCount"].as_i64().unwrap(),
        s["deployments"].as_array().unwrap().len(),
    )
}

const STEADY: Duration = Duration::from_secs(90);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_service_scales_0_5_2() {
    let Some(env) = fargate("replica_service_scales_0_5_2").await else {
        return;
    };
    let family = unique_name("scale");
    env.register_fargate(&family, sleeper(false));
    let name = "web";
    let created = env.cli(&[
        "ecs",
        "create-service",
        "--cluster",
        &env.cluster,
        "--service-name",
        name,
        "--task-definition",
        &family,
        "--desired-count",
        "0",
        "--launch-type",
        "FARGATE",
        "--network-configuration",
        &env.berth.cli_network(),
        "--tags",
        "key=team,value=a",
    ]);
    let s = &created["service"];
    assert_eq!(s["status"], "ACTIVE");
    assert_eq!(s["schedulingStrategy"], "REPLICA");
    assert_eq!(s["deployments"][0]["status"], "PRIMARY");
    assert_eq!(s["deployments"][0]["rolloutState"], "IN_PROGRESS");
    assert_eq!(s["deploymentConfiguration"]["maximumPercent"], 200);
    assert_eq!(s["deploymentConfiguration"]["minimumHealthyPercent"], 100);
    env.wait_stable(name);

    env.cli(&[
        "ecs",
        "update-service",
        "--cluster",
        &env.cluster,
        "--service",
        name,
        "--desired-count",
        "5",
    ]);
    env.wait_service(name, "5 running", STEADY, |s| counts(s) == (5, 5, 1));
    env.wait_stable(name);
    let tasks = env.tasks(name, false).await;
    assert_eq!(tasks.len(), 5);
    let deployment = env.service(name)["deployments"][0]["id"]
        .as_str()
        .unwrap()
        .to_string();
    for t in &tasks {
        assert_eq!(t.started_by(), Some(deployment.as_str()));
        assert_eq!(t.group(), Some("service:web"));
    }

    env.cli(&[
        "ecs",
        "update-service",
        "--cluster",
        &env.cluster,
        "--service",
        name,
        "--desired-count",
        "2",
    ]);
    let s = env.wait_service(name, "2 running", STEADY, |s| {
        counts(s) == (2, 2, 1) && s["pendingCount"] == 0
    });
    env.wait_stable(name);
    let ev = events(&s);
    assert!(
        ev.iter()
            .any(|e| e.starts_with("(service web) has started 5 tasks: (task ")),
        "{ev:?}"
    );
    assert!(
        ev.iter()
            .any(|e| e.starts_with("(service web) has stopped 3 running tasks: (task ")),
        "{ev:?}"
    );
    assert!(
        ev.contains(&"(service web) has reached a steady state.".to_string()),
        "{ev:?}"
    );
    let stopped: Vec<_> = env
        .tasks(name, true)
        .await
        .into_iter()
        .filter(|t| t.desired_status() == Some("STOPPED"))
        .collect();
    assert_eq!(stopped.len(), 3);
    for t in &stopped {
        assert_eq!(
            t.stop_code(),
            Some(&aws_sdk_ecs::types::TaskStopCode::ServiceSchedulerInitiated)
        );
        assert_eq!(
            t.stopped_reason(),
            Some(format!("Scaling activity initiated by (deployment {deployment})").as_str())
        );
    }
    // Listing, tags, the cluster's count; deleting needs force.
    let listed = env.cli(&[
        "ecs",
        "list-services",
        "--cluster",
        &env.cluster,
        "--launch-type",
        "FARGATE",
    ]);
    assert_eq!(listed["serviceArns"].as_array().unwrap().len(), 1);
    let d = env.cli(&[
        "ecs",
        "describe-services",
        "--cluster",
        &env.cluster,
        "--services",
        name,
        "nope",
        "--include",
        "TAGS",
    ]);
    assert_eq!(d["services"][0]["tags"][0]["key"], "team");
    assert_eq!(d["failures"][0]["reason"], "MISSING");
    let c = env.cli(&["ecs", "describe-clusters", "--clusters", &env.cluster]);
    assert_eq!(c["clusters"][0]["activeServicesCount"], 1);
    let msg = env.berth.aws_cli_error(
        REGION,
        &[
            "ecs",
            "delete-service",
            "--cluster",
            &env.cluster,
            "--service",
            name,
        ],
        "InvalidParameterException",
    );
    assert!(
        msg.contains("The service cannot be stopped while it is scaled above 0."),
        "{msg}"
    );
    env.berth.aws_cli_error(
        REGION,
        &["ecs", "delete-cluster", "--cluster", &env.cluster],
        "ClusterContainsServicesException",
    );
    let del = env.cli(&[
        "ecs",
        "delete-service",
        "--cluster",
        &env.cluster,
        "--service",
        name,
        "--force",
    ]);
    assert_eq!(del["service"]["status"], "DRAINING");
    env.wait_service(name, "INACTIVE", STEADY, |s| s["status"] == "INACTIVE");
    assert!(env.tasks(name, false).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rolling_update_never_goes_below_the_minimum() {
    let Some(env) = fargate("rolling_update_never_goes_below_the_minimum").await else {
        return;
    };
    let family = unique_name("roll");
    env.register_fargate(&family, sleeper(true));
    let mut second = sleeper(true);
    second["command"] = json!(["sleep", "3599"]);
    let v2 = env.register_fargate(&family, second);
    let name = "api";
    env.cli(&[
        "ecs",
        "create-service",
        "--cluster",
        &env.cluster,
        "--service-name",
        name,
        "--task-definition",
        &format!("{family}:1"),
        "--desired-count",
        "3",
        "--launch-type",
        "FARGATE",
        "--network-configuration",
        &env.berth.cli_network(),
        "--deployment-configuration",
        "maximumPercent=150,minimumHealthyPercent=100",
    ]);
    env.wait_service(name, "3 running", STEADY, |s| {
        counts(s) == (3, 3, 1) && s["deployments"][0]["rolloutState"] == "COMPLETED"
    });
    env.wait_stable(name);
    env.cli(&[
        "ecs",
        "update-service",
        "--cluster",
        &env.cluster,
        "--service",
        name,
        "--task-definition",
        &v2,
    ]);
    // Sample while the deployment rolls: at least 3 healthy tasks (100% of 3) that stay,
    // never more than 4 (150%) tasks not yet stopped.
    let deadline = Instant::now() + Duration::from_secs(150);
    let mut samples = 0;
    let mut lowest = usize::MAX;
    loop {
        let tasks = env.tasks(name, false).await;
        let healthy = tasks
            .iter()
            .filter(|t| {
                t.desired_status() == Some("RUNNING")
                    && t.last_status() == Some("RUNNING")
                    && t.health_status() == Some(&HealthStatus::Healthy)
            })
            .count();
        lowest = lowest.min(healthy);
        samples += 1;
        assert!(healthy >= 3, "only {healthy} healthy tasks: {tasks:#?}");
        assert!(
            tasks.len() <= 4,
            "{} tasks above maximumPercent",
            tasks.len()
        );
        let s = env.service(name);
        let primary = &s["deployments"][0];
        if primary["taskDefinition"] == v2.as_str() && primary["rolloutState"] == "COMPLETED" {
            assert_eq!(s["deployments"].as_array().unwrap().len(), 1);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the deployment did not complete: {s:#}"
        );
    }
    eprintln!("rolling update: {samples} samples, lowest healthy count {lowest}");
    env.wait_stable(name);
    let tasks = env.tasks(name, false).await;
    assert_eq!(tasks.len(), 3);
    assert!(
        tasks
            .iter()
            .all(|t| t.task_definition_arn() == Some(v2.as_str()))
    );
    let ev = events(&env.service(name));
    assert!(
        ev.iter().any(|e| e.ends_with("deployment completed.")),
        "{ev:?}"
    );
    let listed = env.cli(&[
        "ecs",
        "list-service-deployments",
        "--cluster",
        &env.cluster,
        "--service",
        name,
    ]);
    let sds = listed["serviceDeployments"].as_array().unwrap();
    assert_eq!(sds.len(), 2);
    assert!(sds.iter().all(|d| d["status"] == "SUCCESSFUL"), "{sds:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_revision_trips_the_circuit_breaker_and_rolls_back() {
    let Some(env) = fargate("a_bad_revision_trips_the_circuit_breaker_and_rolls_back").await else {
        return;
    };
    let family = unique_name("cb");
    let v1 = env.register_fargate(&family, sleeper(true));
    let mut bad = sleeper(true);
    bad["command"] = json!(["sh", "-c", "exit 3"]);
    let v2 = env.register_fargate(&family, bad);
    let name = "api";
    env.cli(&[
        "ecs",
        "create-service",
        "--cluster",
        &env.cluster,
        "--service-name",
        name,
        "--task-definition",
        &v1,
        "--desired-count",
        "2",
        "--launch-type",
        "FARGATE",
        "--network-configuration",
        &env.berth.cli_network(),
        "--deployment-configuration",
        "deploymentCircuitBreaker={enable=true,rollback=true},maximumPercent=200,minimumHealthyPercent=100",
    ]);
    let s = env.wait_service(name, "2 running", STEADY, |s| {
        counts(s) == (2, 2, 1) && s["deployments"][0]["rolloutState"] == "COMPLETED"
    });
    let good = s["deployments"][0]["id"].as_str().unwrap().to_string();
    env.cli(&[
        "ecs",
        "update-service",
        "--cluster",
        &env.cluster,
        "--service",
        name,
        "--task-definition",
        &v2,
    ]);
    // ECS's threshold for 2 tasks: max(3, min(200, ceil(0.5 × 2))) = 3 failed tasks.
    let rolled = format!("ECS deployment circuit breaker: rolling back to deploymentId {good}.");
    let s = env.wait_service(name, "the rollback", Duration::from_secs(120), |s| {
        s["deployments"][0]["rolloutStateReason"] == rolled.as_str()
    });
    assert_eq!(s["deployments"][0]["taskDefinition"], v1.as_str());
    assert_eq!(s["taskDefinition"], v1.as_str());
    // The failed deployment left `deployments` once its tasks stopped; its service deployment
    // tells the story.
    let listed = env.cli(&[
        "ecs",
        "list-service-deployments",
        "--cluster",
        &env.cluster,
        "--service",
        name,
    ]);
    let arn = listed["serviceDeployments"][0]["serviceDeploymentArn"]
        .as_str()
        .unwrap()
        .to_string();
    let d = env.cli(&[
        "ecs",
        "describe-service-deployments",
        "--service-deployment-arns",
        &arn,
    ]);
    let failed = &d["serviceDeployments"][0];
    assert_eq!(
        failed["targetServiceRevision"]["arn"]
            .as_str()
            .map(|a| a.contains("service-revision/")),
        Some(true)
    );
    assert_eq!(
        failed["deploymentCircuitBreaker"]["status"], "TRIGGERED",
        "{failed:#}"
    );
    assert_eq!(failed["deploymentCircuitBreaker"]["threshold"], 3);
    assert!(
        failed["deploymentCircuitBreaker"]["failureCount"]
            .as_i64()
            .unwrap()
            >= 3,
        "{failed:#}"
    );
    assert_eq!(
        failed["rollback"]["reason"],
        "ECS deployment circuit breaker: tasks failed to start."
    );
    let s = env.wait_service(name, "the rollback to complete", STEADY, |s| {
        counts(s) == (2, 2, 1) && s["deployments"][0]["rolloutState"] == "COMPLETED"
    });
    env.wait_stable(name);
    // The service runs the old revision again, under the rollback deployment.
    let tasks = env.tasks(name, false).await;
    assert_eq!(tasks.len(), 2);
    let rollback = s["deployments"][0]["id"].as_str().unwrap();
    assert!(
        tasks
            .iter()
            .all(|t| t.task_definition_arn() == Some(v1.as_str())
                && t.started_by() == Some(rollback)),
        "{tasks:#?}"
    );
    let ev = events(&s);
    assert!(
        ev.iter()
            .any(|e| e.ends_with("deployment failed: tasks failed to start.")),
        "{ev:?}"
    );
    let listed = env.cli(&[
        "ecs",
        "list-service-deployments",
        "--cluster",
        &env.cluster,
        "--service",
        name,
    ]);
    let statuses: Vec<&str> = listed["serviceDeployments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["ROLLBACK_SUCCESSFUL", "SUCCESSFUL"]);
}

/// `berth server` (agents lost after 30 s of silence) and one agent per zone.
async fn ec2(test: &str, zones: &[&str]) -> Option<Env> {
    if !containers_or_skip(test) {
        return None;
    }
    let berth = BerthServer::builder()
        .subcommand("server")
        .env(
            "BERTH_INSTANCE_LOST_AFTER_SECONDS",
            LOST_AFTER.as_secs().to_string(),
        )
        .start();
    let ecs = berth.ecs_client(REGION);
    let cluster = unique_name("daemon");
    ecs.create_cluster()
        .cluster_name(&cluster)
        .send()
        .await
        .expect("CreateCluster");
    let mut env = Env {
        berth,
        ecs,
        cluster,
        agents: Vec::new(),
    };
    for z in zones {
        env.join(z);
    }
    env.wait_instances(zones.len()).await;
    Some(env)
}

/// How long an agent may stay silent (the agent's long poll answers at least every 20 s).
const LOST_AFTER: Duration = Duration::from_secs(30);

impl Env {
    fn join(&mut self, zone: &str) {
        let a = BerthAgent::start(&self.berth, &self.cluster, zone);
        a.load_image(&busybox_image_tar());
        self.agents.push(a);
    }

    /// Waits until `n` instances are registered and connected; returns their ARNs by zone.
    async fn wait_instances(&self, n: usize) -> Vec<(String, String)> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let arns = self
                .ecs
                .list_container_instances()
                .cluster(&self.cluster)
                .send()
                .await
                .expect("ListContainerInstances")
                .container_instance_arns()
                .to_vec();
            if arns.len() == n {
                let cis = self
                    .ecs
                    .describe_container_instances()
                    .cluster(&self.cluster)
                    .set_container_instances(Some(arns))
                    .send()
                    .await
                    .expect("DescribeContainerInstances")
                    .container_instances()
                    .to_vec();
                if cis.iter().all(|c| c.agent_connected()) {
                    return cis
                        .iter()
                        .map(|c| {
                            let zone = c
                                .attributes()
                                .iter()
                                .find(|a| a.name() == "ecs.availability-zone")
                                .and_then(|a| a.value())
                                .unwrap_or("")
                                .to_string();
                            (zone, c.container_instance_arn().unwrap().to_string())
                        })
                        .collect();
                }
            }
            assert!(
                Instant::now() < deadline,
                "{n} connected instances expected"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    fn register_ec2(&self, family: &str) {
        let input = json!({
            "family": family, "requiresCompatibilities": ["EC2"], "networkMode": "host",
            "containerDefinitions": [{"name": "app", "image": "busybox", "cpu": 64, "memory": 32,
                "stopTimeout": 2, "command": ["sleep", "3600"]}],
        })
        .to_string();
        self.cli(&[
            "ecs",
            "register-task-definition",
            "--cli-input-json",
            &input,
        ]);
    }

    /// The container instances the service's running tasks are on.
    async fn placed(&self, service: &str) -> Vec<String> {
        let mut on: Vec<String> = self
            .tasks(service, false)
            .await
            .iter()
            .filter(|t| t.desired_status() == Some("RUNNING"))
            .map(|t| t.container_instance_arn().unwrap().to_string())
            .collect();
        on.sort();
        on
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_service_follows_instances_and_lost_agents_are_replaced() {
    let zones = ["us-east-1a", "us-east-1b", "us-east-1c"];
    let Some(mut env) = ec2(
        "daemon_service_follows_instances_and_lost_agents_are_replaced",
        &zones,
    )
    .await
    else {
        return;
    };
    let family = unique_name("daemon");
    env.register_ec2(&family);
    let name = "agentd";
    let created = env.cli(&[
        "ecs",
        "create-service",
        "--cluster",
        &env.cluster,
        "--service-name",
        name,
        "--task-definition",
        &family,
        "--scheduling-strategy",
        "DAEMON",
        "--launch-type",
        "EC2",
    ]);
    assert_eq!(created["service"]["schedulingStrategy"], "DAEMON");
    assert_eq!(
        created["service"]["deploymentConfiguration"]["maximumPercent"],
        100
    );
    assert_eq!(
        created["service"]["deploymentConfiguration"]["minimumHealthyPercent"],
        0
    );
    env.wait_service(name, "one task per instance", STEADY, |s| {
        counts(s) == (3, 3, 1)
    });
    env.wait_stable(name);
    let mut on = env.placed(name).await;
    on.dedup();
    assert_eq!(on.len(), 3, "one task on each instance");

    // A fourth instance joins: it gets its task.
    env.join("us-east-1d");
    let instances = env.wait_instances(4).await;
    env.wait_service(name, "a task on the new instance", STEADY, |s| {
        counts(s) == (4, 4, 1)
    });
    let mut on = env.placed(name).await;
    on.dedup();
    assert_eq!(on.len(), 4);

    // Draining the first: its task stops, none starts there again.
    let first = instances
        .iter()
        .find(|(z, _)| z == "us-east-1a")
        .unwrap()
        .1
        .clone();
    env.cli(&[
        "ecs",
        "update-container-instances-state",
        "--cluster",
        &env.cluster,
        "--container-instances",
        &first,
        "--status",
        "DRAINING",
    ]);
    env.wait_service(name, "the draining instance's task to stop", STEADY, |s| {
        counts(s) == (3, 3, 1) && s["pendingCount"] == 0
    });
    assert!(!env.placed(name).await.contains(&first));

    // A replica service on two distinct instances; then the host of one of them dies
    // (kill -9 of its agent and every process it started).
    env.register_ec2(&format!("{family}-rep"));
    env.cli(&[
        "ecs",
        "create-service",
        "--cluster",
        &env.cluster,
        "--service-name",
        "rep",
        "--task-definition",
        &format!("{family}-rep"),
        "--desired-count",
        "2",
        "--launch-type",
        "EC2",
        "--placement-constraints",
        "type=distinctInstance",
    ]);
    env.wait_service("rep", "2 running", STEADY, |s| counts(s) == (2, 2, 1));
    let placed = env.placed("rep").await;
    assert!(!placed.contains(&first));
    let victim_arn = placed[0].clone();
    let zone = instances
        .iter()
        .find(|(_, a)| *a == victim_arn)
        .unwrap()
        .0
        .clone();
    let idx = ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"]
        .iter()
        .position(|z| *z == zone)
        .unwrap();
    let killed_at = Instant::now();
    let victim = &mut env.agents[idx];
    victim.kill9();
    berth_e2e::kill_processes_under(victim.data_dir());
    // Replaced within the stated bound: the lost-after timeout (30 s) plus one long poll
    // (20 s) plus scheduling and start-up (10 s).
    let bound = LOST_AFTER + Duration::from_secs(30);
    let deadline = killed_at + bound;
    loop {
        let placed = env.placed("rep").await;
        let running = env.service("rep")["runningCount"].as_i64().unwrap();
        if placed.len() == 2 && !placed.contains(&victim_arn) && running >= 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the lost instance's task was not replaced within {bound:?}: {placed:?}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    eprintln!("lost agent's task replaced after {:?}", killed_at.elapsed());
    let stopped: Vec<_> = env
        .tasks("rep", true)
        .await
        .into_iter()
        .filter(|t| t.container_instance_arn() == Some(victim_arn.as_str()))
        .collect();
    assert_eq!(stopped.len(), 1);
    assert_eq!(stopped[0].desired_status(), Some("STOPPED"));
    assert_eq!(
        stopped[0].stop_code(),
        Some(&aws_sdk_ecs::types::TaskStopCode::ServiceSchedulerInitiated)
    );
    // The daemon no longer counts the lost instance.
    env.wait_service(name, "the daemon without the lost instance", STEADY, |s| {
        s["desiredCount"] == 2
    });
}
