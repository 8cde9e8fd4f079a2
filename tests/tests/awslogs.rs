//! The awslogs log driver end to end with real containers: a Fargate task on `berth up`
//! whose container prints a multiline stack trace, a stderr line and a burst of 100,000
//! lines is read back complete and in order with `aws logs get-log-events` and
//! `aws logs filter-log-events` (patterns, and the calls `aws logs tail` makes); and on `berth server` + `berth agent`,
//! an agent killed with SIGKILL in the middle of a 100,000-line burst and started again
//! ships every line exactly once, in order, to the stream named after the container's
//! runtime id (no stream prefix, as ECS on EC2 does).
//!
//! The Fargate task's logs are shipped with its execution role's credentials: a role with
//! AmazonECSTaskExecutionRolePolicy ships them, a role without logs permissions ships
//! nothing (the root key would have).
//!
//! Needs root, runc and busybox-static (CI has them); skips with a message when not root.

// Tests fail by panicking: unwrap/expect are the intended failure mode here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use aws_sdk_ecs::types::LaunchType;
use berth_e2e::{
    BerthAgent, BerthServer, REGION, RawRequest, busybox_image_tar, containers_or_skip,
    unique_name, wait_task_status,
};
use serde_json::{Value, json};

const START: Duration = Duration::from_secs(60);
const BURST: usize = 100_000;

/// Creates a role that `ecs-tasks.amazonaws.com` may assume, with `managed` attached.
fn execution_role(berth: &BerthServer, name: &str, managed: Option<&str>) -> String {
    let trust = json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"},
        "Action": "sts:AssumeRole"}]})
    .to_string();
    let role = berth.aws_cli_json(
        REGION,
        &[
            "iam",
            "create-role",
            "--role-name",
            name,
            "--assume-role-policy-document",
            &trust,
        ],
    );
    if let Some(policy) = managed {
        berth.aws_cli(
            REGION,
            &[
                "iam",
                "attach-role-policy",
                "--role-name",
                name,
                "--policy-arn",
                &format!("arn:aws:iam::aws:policy/service-role/{policy}"),
            ],
        );
    }
    role["Role"]["Arn"].as_str().unwrap().to_owned()
}

/// Registers the Fargate task definition `input` and runs it once in the default subnet;
/// returns the task's ARN.
async fn register_and_run(
    berth: &BerthServer,
    ecs: &aws_sdk_ecs::Client,
    cluster: &str,
    family: &str,
    input: &str,
) -> String {
    berth.aws_cli_json(
        REGION,
        &["ecs", "register-task-definition", "--cli-input-json", input],
    );
    let out = ecs
        .run_task()
        .cluster(cluster)
        .task_definition(family)
        .launch_type(LaunchType::Fargate)
        .network_configuration(berth.sdk_network())
        .send()
        .await
        .expect("RunTask");
    out.tasks()[0].task_arn().unwrap().to_owned()
}

/// Prints the burst: `INFO line 000001` … `INFO line 100000`, as fast as the shell can.
fn burst_command() -> String {
    format!("awk 'BEGIN {{ for (i = 1; i <= {BURST}; i++) printf \"INFO line %06d\\n\", i }}'")
}

fn burst_line(i: usize) -> String {
    format!("INFO line {i:06}")
}

/// A signed CloudWatch Logs call (root key) through the raw client: fast enough to poll.
fn logs_call(berth: &BerthServer, operation: &str, body: &Value) -> Value {
    let mut params = berth.signing_params(REGION);
    params.service = "logs";
    let req = RawRequest::new("POST", "/")
        .header("Content-Type", "application/x-amz-json-1.1")
        .header("X-Amz-Target", &format!("Logs_20140328.{operation}"))
        .body(body.to_string())
        .sign(&berth.host(), &params);
    let resp = berth.raw(&req);
    assert_eq!(resp.status, 200, "{operation}: {}", resp.text());
    resp.json()
}

/// The newest event of a stream, if the stream exists and has one.
fn last_event(berth: &BerthServer, group: &str, stream: &str) -> Option<Value> {
    let mut params = berth.signing_params(REGION);
    params.service = "logs";
    let body = json!({"logGroupName": group, "logStreamName": stream, "limit": 1});
    let req = RawRequest::new("POST", "/")
        .header("Content-Type", "application/x-amz-json-1.1")
        .header("X-Amz-Target", "Logs_20140328.GetLogEvents")
        .body(body.to_string())
        .sign(&berth.host(), &params);
    let resp = berth.raw(&req);
    if resp.status != 200 {
        return None;
    }
    resp.json()["events"].as_array()?.first().cloned()
}

/// Waits until the stream's newest event is `message`; returns it.
fn wait_last(berth: &BerthServer, group: &str, stream: &str, message: &str) -> Value {
    let deadline = Instant::now() + START;
    loop {
        let last = last_event(berth, group, stream);
        if let Some(e) = &last
            && e["message"] == message
        {
            return e.clone();
        }
        assert!(
            Instant::now() < deadline,
            "the stream {group}/{stream} does not end with {message:?}: {last:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Every event of a stream through `aws logs get-log-events`, page by page from the head.
fn cli_all_events(berth: &BerthServer, group: &str, stream: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut args = vec![
            "logs",
            "get-log-events",
            "--log-group-name",
            group,
            "--log-stream-name",
            stream,
            "--start-from-head",
            "--limit",
            "10000",
        ];
        if let Some(t) = &token {
            args.extend(["--next-token", t.as_str()]);
        }
        let page = berth.aws_cli_json(REGION, &args);
        let events = page["events"].as_array().cloned().unwrap_or_default();
        let next = page["nextForwardToken"].as_str().map(str::to_owned);
        if events.is_empty() || next == token {
            return out;
        }
        out.extend(events);
        token = next;
    }
}

/// Every event of a stream through signed GetLogEvents calls (faster than the CLI).
fn raw_all_messages(berth: &BerthServer, group: &str, stream: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut body = json!({"logGroupName": group, "logStreamName": stream,
                              "startFromHead": true, "limit": 10000});
        if let Some(t) = &token {
            body["nextToken"] = json!(t);
        }
        let page = logs_call(berth, "GetLogEvents", &body);
        let events = page["events"].as_array().cloned().unwrap_or_default();
        let next = page["nextForwardToken"].as_str().map(str::to_owned);
        if events.is_empty() || next == token {
            return out;
        }
        out.extend(
            events
                .iter()
                .map(|e| e["message"].as_str().unwrap_or_default().to_string()),
        );
        token = next;
    }
}

fn messages(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fargate_output_is_read_back_complete_and_in_order() {
    let test = "fargate_output_is_read_back_complete_and_in_order";
    if !containers_or_skip(test) {
        return;
    }
    let berth = BerthServer::start();
    berth.load_image(&busybox_image_tar());
    let ecs = berth.ecs_client(REGION);
    let cluster = unique_name("logs");
    ecs.create_cluster()
        .cluster_name(&cluster)
        .send()
        .await
        .expect("CreateCluster");
    let family = unique_name("printer");
    let group = format!("/ecs/{family}");
    let trace = "ERROR boom\n  at com.example.Main.run(Main.java:42)\n  at com.example.Main.main(Main.java:7)";
    let script = format!(
        "echo 'INFO starting'; printf '%s\\n' '{trace}'; sleep 0.2; \
         echo 'ERROR on stderr' >&2; sleep 0.2; {}; echo 'INFO done'",
        burst_command()
    );
    let role = execution_role(
        &berth,
        "ecsTaskExecutionRole",
        Some("AmazonECSTaskExecutionRolePolicy"),
    );
    // awslogs-create-group needs logs:CreateLogGroup, which the managed policy lacks (as
    // ECS's documentation says).
    let create_group = json!({"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow", "Action": "logs:CreateLogGroup", "Resource": "*"}]})
    .to_string();
    berth.aws_cli(
        REGION,
        &[
            "iam",
            "put-role-policy",
            "--role-name",
            "ecsTaskExecutionRole",
            "--policy-name",
            "create-groups",
            "--policy-document",
            &create_group,
        ],
    );
    let input = json!({
        "family": family,
        "requiresCompatibilities": ["FARGATE"],
        "networkMode": "awsvpc", "cpu": "256", "memory": "512",
        "executionRoleArn": role,
        "containerDefinitions": [{
            "name": "app", "image": "busybox", "essential": true,
            "command": ["sh", "-c", script],
            "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": group, "awslogs-region": REGION,
                "awslogs-stream-prefix": "web", "awslogs-create-group": "true",
                "awslogs-multiline-pattern": "INFO|ERROR",
            }},
        }],
    })
    .to_string();
    let arn = register_and_run(&berth, &ecs, &cluster, &family, &input).await;
    let task_id = arn.rsplit('/').next().unwrap().to_owned();
    let stream = format!("web/app/{task_id}");
    let stopped = wait_task_status(&ecs, &cluster, &arn, "STOPPED", START).await;
    assert_eq!(stopped.containers()[0].exit_code(), Some(0), "{stopped:#?}");
    wait_last(&berth, &group, &stream, "INFO done");

    // The group was created, the stream is named as ECS names it.
    let streams = berth.aws_cli_json(
        REGION,
        &["logs", "describe-log-streams", "--log-group-name", &group],
    );
    let names: Vec<&str> = streams["logStreams"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["logStreamName"].as_str())
        .collect();
    assert_eq!(names, [stream.as_str()]);

    // Everything, in order, through the CLI.
    let events = cli_all_events(&berth, &group, &stream);
    let got = messages(&events);
    let mut want = vec![
        "INFO starting".to_string(),
        trace.to_string(),
        "ERROR on stderr".to_string(),
    ];
    want.extend((1..=BURST).map(burst_line));
    want.push("INFO done".into());
    assert_eq!(got.len(), want.len());
    if let Some(i) = (0..want.len()).find(|&i| got[i] != want[i]) {
        panic!("event {i} is {:?}, want {:?}", got[i], want[i]);
    }
    assert!(
        events
            .windows(2)
            .all(|w| w[0]["timestamp"].as_i64() <= w[1]["timestamp"].as_i64())
    );

    // Patterns find the stack trace, alternatives and one line of the burst.
    let found = berth.aws_cli_json(
        REGION,
        &[
            "logs",
            "filter-log-events",
            "--log-group-name",
            &group,
            "--filter-pattern",
            "\"com.example.Main.run\"",
        ],
    );
    assert_eq!(messages(found["events"].as_array().unwrap()), [trace]);
    assert_eq!(found["events"][0]["logStreamName"], stream.as_str());
    let found = berth.aws_cli_json(
        REGION,
        &[
            "logs",
            "filter-log-events",
            "--log-group-name",
            &group,
            "--filter-pattern",
            "?stderr ?done ?\"line 054321\"",
        ],
    );
    assert_eq!(
        messages(found["events"].as_array().unwrap()),
        ["ERROR on stderr", "INFO line 054321", "INFO done"]
    );
    // What `aws logs tail --filter-pattern ERROR` asks (FilterLogEvents over the group with
    // a start time; the CLI v1 used here has no `tail`) finds both errors, in order.
    let since = (events[0]["timestamp"].as_i64().unwrap() - 1000).to_string();
    let found = berth.aws_cli_json(
        REGION,
        &[
            "logs",
            "filter-log-events",
            "--log-group-name",
            &group,
            "--start-time",
            &since,
            "--interleaved",
            "--filter-pattern",
            "ERROR",
        ],
    );
    assert_eq!(
        messages(found["events"].as_array().unwrap()),
        [trace, "ERROR on stderr"]
    );

    // An execution role without logs permissions: the container cannot start, as on ECS
    // (the logging driver fails to create its group), and nothing is created.
    let powerless = execution_role(&berth, "noLogsRole", None);
    let denied_family = unique_name("denied");
    let denied_group = format!("/ecs/{denied_family}");
    let input = json!({
        "family": denied_family,
        "requiresCompatibilities": ["FARGATE"],
        "networkMode": "awsvpc", "cpu": "256", "memory": "512",
        "executionRoleArn": powerless,
        "containerDefinitions": [{
            "name": "app", "image": "busybox", "essential": true,
            "command": ["sh", "-c", "echo 'INFO quiet'; sleep 1"],
            "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": denied_group, "awslogs-region": REGION,
                "awslogs-stream-prefix": "web", "awslogs-create-group": "true",
            }},
        }],
    })
    .to_string();
    let arn = register_and_run(&berth, &ecs, &cluster, &denied_family, &input).await;
    let stopped = wait_task_status(&ecs, &cluster, &arn, "STOPPED", START).await;
    let reason = stopped.stopped_reason().unwrap_or_default();
    assert!(
        reason.starts_with("CannotStartContainerError")
            && reason.contains("AccessDeniedException")
            && reason.contains(":assumed-role/noLogsRole/")
            && reason.contains("logs:CreateLogGroup"),
        "{reason}"
    );
    let groups = berth.aws_cli_json(
        REGION,
        &[
            "logs",
            "describe-log-groups",
            "--log-group-name-prefix",
            &denied_group,
        ],
    );
    assert_eq!(groups["logGroups"], json!([]), "{groups}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_agent_ships_every_line_exactly_once() {
    let test = "a_killed_agent_ships_every_line_exactly_once";
    if !containers_or_skip(test) {
        return;
    }
    let berth = BerthServer::builder().subcommand("server").start();
    let ecs = berth.ecs_client(REGION);
    let cluster = unique_name("logs");
    ecs.create_cluster()
        .cluster_name(&cluster)
        .send()
        .await
        .expect("CreateCluster");
    let mut agent = BerthAgent::start(&berth, &cluster, "us-east-1a");
    agent.load_image(&busybox_image_tar());
    let group = unique_name("/ec2/burst");
    berth.aws_cli(
        REGION,
        &["logs", "create-log-group", "--log-group-name", &group],
    );
    let family = unique_name("burst");
    let input = json!({
        "family": family, "requiresCompatibilities": ["EC2"], "networkMode": "host",
        "containerDefinitions": [{
            "name": "app", "image": "busybox", "memory": 64, "essential": true,
            "command": ["sh", "-c", burst_command()],
            "logConfiguration": {"logDriver": "awslogs",
                                 "options": {"awslogs-group": group, "awslogs-region": REGION}},
        }],
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
    let arn = loop {
        let out = ecs
            .run_task()
            .cluster(&cluster)
            .task_definition(&family)
            .launch_type(LaunchType::Ec2)
            .send()
            .await
            .expect("RunTask");
        if let Some(t) = out.tasks().first() {
            break t.task_arn().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "RunTask never placed: {out:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let running = wait_task_status(&ecs, &cluster, &arn, "RUNNING", START).await;
    // Without a prefix the stream is the container's id, as Docker's driver names it.
    let stream = running.containers()[0]
        .runtime_id()
        .expect("runtimeId")
        .to_owned();

    // Kill -9 as soon as the first batch is in: the burst is then still being shipped.
    let deadline = Instant::now() + START;
    while last_event(&berth, &group, &stream).is_none() {
        assert!(
            Instant::now() < deadline,
            "nothing shipped: {}",
            agent.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    agent.kill9();
    let before = raw_all_messages(&berth, &group, &stream).len();
    std::thread::sleep(Duration::from_millis(500));
    agent.start_again();

    wait_last(&berth, &group, &stream, &burst_line(BURST));
    wait_task_status(&ecs, &cluster, &arn, "STOPPED", START).await;
    let got = raw_all_messages(&berth, &group, &stream);
    eprintln!(
        "{before} of {BURST} lines were shipped when the agent was killed; reconciled an unacknowledged batch: {}",
        agent.log().contains("reconciled an unacknowledged batch")
    );
    assert_eq!(got.len(), BURST, "lines lost or doubled");
    if let Some(i) = (0..BURST).find(|&i| got[i] != burst_line(i + 1)) {
        panic!("event {i} is {:?}", got[i]);
    }
    // And the same through the CLI's FilterLogEvents paging.
    let found = berth.aws_cli_json(
        REGION,
        &[
            "logs",
            "filter-log-events",
            "--log-group-name",
            &group,
            "--filter-pattern",
            "\"line 0999\"",
        ],
    );
    let want: Vec<String> = (99_900..=99_999).map(burst_line).collect();
    assert_eq!(messages(found["events"].as_array().unwrap()), want);
}
