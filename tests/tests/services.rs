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

const CLI_NETWORK: &str = "awsvpcConfiguration={subnets=[subnet-12345678]}";

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
        CLI_NETWORK,
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
        CLI_NETWORK,
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
        CLI_NETWORK,
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
