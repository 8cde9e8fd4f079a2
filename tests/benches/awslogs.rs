//! The awslogs driver's throughput: one container prints N lines (default 100,000) as fast as
//! it can; how fast they reach CloudWatch Logs end to end, how fast GetLogEvents reads them
//! back, and what DescribeClusters latency the control plane shows meanwhile.
//!
//! ```sh
//! cargo build --release -p berth && cargo bench -p berth-e2e --bench awslogs
//! ```
//!
//! Two set-ups, each started by the bench with a fresh data directory and the busybox test
//! image: `berth up` running the container as a Fargate task (the managed agent calls the Logs
//! service in process), and `berth server` + `berth agent` running it as an EC2 task (the agent
//! calls PutLogEvents over HTTP, SigV4-signed). Per run:
//!
//! - **ship rate**: N / (ingestion time of the last event − timestamp of the first line), both
//!   from GetLogEvents: from the moment the shim read the first line to the moment the last
//!   batch was stored;
//! - **print time**: last line's timestamp − first line's (how fast the container wrote);
//! - **read rate**: N / time to read every event with GetLogEvents pages of 10,000 (signed raw
//!   HTTP requests, one client);
//! - **API latency**: DescribeClusters in a closed loop by one client, p50/p99, idle for 3 s
//!   before the task, and while the output is shipped (RunTask until the last event is in).
//!
//! Knobs: `BERTH_BIN`, `BERTH_BENCH_LINES` (N, default 100000), `BERTH_BENCH_RUNS` (runs per
//! set-up, default 3). Run without `--bench` it only prints how to run it. Needs root.

// Benchmark code: a panic with a message is how a broken run reports itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use berth_e2e::{
    ACCOUNT_ID, BerthAgent, BerthServer, REGION, RawRequest, berth_bin, busybox_image_tar, is_root,
};
use serde_json::{Value, json};

const TIMEOUT: Duration = Duration::from_secs(300);

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn logs(berth: &BerthServer, operation: &str, body: &Value) -> Option<Value> {
    let mut params = berth.signing_params(REGION);
    params.service = "logs";
    let req = RawRequest::new("POST", "/")
        .header("Content-Type", "application/x-amz-json-1.1")
        .header("X-Amz-Target", &format!("Logs_20140328.{operation}"))
        .body(body.to_string())
        .sign(&berth.host(), &params);
    let resp = berth.raw(&req);
    (resp.status == 200).then(|| resp.json())
}

fn ecs(berth: &BerthServer, operation: &str, body: &Value) -> Value {
    let resp = berth.ecs_raw(REGION, operation, &body.to_string());
    assert_eq!(resp.status, 200, "{operation}: {}", resp.text());
    resp.json()
}

/// p50 and p99 (nearest rank) in ms.
fn percentiles(mut v: Vec<f64>) -> (f64, f64, usize) {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return (0.0, 0.0, 0);
    }
    let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
    (rank(0.50), rank(0.99), v.len())
}

/// DescribeClusters in a loop until `stop`; the latencies in ms.
fn describe_loop(berth: Arc<BerthServer>, cluster: String, stop: Arc<AtomicBool>) -> Vec<f64> {
    let mut out = Vec::new();
    let body = json!({"clusters": [cluster]});
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        ecs(&berth, "DescribeClusters", &body);
        out.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    out
}

struct Run {
    ship_rate: f64,
    print_ms: f64,
    ship_ms: f64,
    read_rate: f64,
    idle: (f64, f64, usize),
    busy: (f64, f64, usize),
}

fn run_once(berth: &Arc<BerthServer>, cluster: &str, fargate: bool, n: usize, i: usize) -> Run {
    let family = format!("bench-logs-{i}");
    let group = format!("/bench/{family}");
    let launch = if fargate { "FARGATE" } else { "EC2" };
    let def = json!({
        "family": family, "requiresCompatibilities": [launch],
        "networkMode": if fargate { "awsvpc" } else { "host" },
        "cpu": "256", "memory": "512",
        "executionRoleArn": format!("arn:aws:iam::{ACCOUNT_ID}:role/ecsTaskExecutionRole"),
        "containerDefinitions": [{
            "name": "app", "image": "busybox", "essential": true,
            "command": ["sh", "-c", format!(
                "awk 'BEGIN {{ for (i = 1; i <= {n}; i++) printf \"INFO line %07d\\n\", i }}'")],
            "logConfiguration": {"logDriver": "awslogs", "options": {
                "awslogs-group": group, "awslogs-region": REGION,
                "awslogs-stream-prefix": "bench", "awslogs-create-group": "true"}},
        }],
    });
    ecs(berth, "RegisterTaskDefinition", &def);

    let stop = Arc::new(AtomicBool::new(false));
    let idle = {
        let (b, c, s) = (berth.clone(), cluster.to_string(), stop.clone());
        let h = std::thread::spawn(move || describe_loop(b, c, s));
        std::thread::sleep(Duration::from_secs(3));
        stop.store(true, Ordering::Relaxed);
        h.join().unwrap()
    };
    let stop = Arc::new(AtomicBool::new(false));
    let (b, c, s) = (berth.clone(), cluster.to_string(), stop.clone());
    let busy = std::thread::spawn(move || describe_loop(b, c, s));

    let mut run = json!({"cluster": cluster, "taskDefinition": family, "launchType": launch});
    if fargate {
        run["networkConfiguration"] =
            json!({"awsvpcConfiguration": {"subnets": [berth.default_subnet()]}});
    }
    let deadline = Instant::now() + TIMEOUT;
    let arn = loop {
        let out = ecs(berth, "RunTask", &run);
        if let Some(a) = out["tasks"][0]["taskArn"].as_str() {
            break a.to_string();
        }
        assert!(Instant::now() < deadline, "RunTask: {out}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let task_id = arn.rsplit('/').next().unwrap().to_string();
    let stream = format!("bench/app/{task_id}");
    let last_line = format!("INFO line {n:07}");
    let last = loop {
        let page = logs(
            berth,
            "GetLogEvents",
            &json!({"logGroupName": group, "logStreamName": stream, "limit": 1}),
        );
        if let Some(e) = page.as_ref().and_then(|p| p["events"].get(0))
            && e["message"] == last_line.as_str()
        {
            break e.clone();
        }
        assert!(Instant::now() < deadline, "the last line never arrived");
        std::thread::sleep(Duration::from_millis(20));
    };
    stop.store(true, Ordering::Relaxed);
    let busy = busy.join().unwrap();

    let t = Instant::now();
    let mut token: Option<String> = None;
    let mut events: Vec<Value> = Vec::with_capacity(n);
    loop {
        let mut body = json!({"logGroupName": group, "logStreamName": stream,
                              "startFromHead": true, "limit": 10000});
        if let Some(tk) = &token {
            body["nextToken"] = json!(tk);
        }
        let page = logs(berth, "GetLogEvents", &body).expect("GetLogEvents");
        let got = page["events"].as_array().cloned().unwrap_or_default();
        let next = page["nextForwardToken"].as_str().map(str::to_owned);
        if got.is_empty() || next == token {
            break;
        }
        events.extend(got);
        token = next;
    }
    let read_secs = t.elapsed().as_secs_f64();
    assert_eq!(events.len(), n, "every line is read back");
    let first_ts = events[0]["timestamp"].as_i64().unwrap();
    let last_ts = last["timestamp"].as_i64().unwrap();
    let last_ingested = last["ingestionTime"].as_i64().unwrap();
    let ship_ms = (last_ingested - first_ts).max(1) as f64;
    Run {
        ship_rate: n as f64 / (ship_ms / 1000.0),
        print_ms: (last_ts - first_ts) as f64,
        ship_ms,
        read_rate: n as f64 / read_secs,
        idle: percentiles(idle),
        busy: percentiles(busy),
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "bench awslogs: not run (run it with `cargo build --release -p berth && cargo bench \
             -p berth-e2e --bench awslogs`)"
        );
        return;
    }
    assert!(
        is_root(),
        "the awslogs bench runs containers: run it as root"
    );
    let n = env_usize("BERTH_BENCH_LINES", 100_000);
    let runs = env_usize("BERTH_BENCH_RUNS", 3);
    let bin = berth_bin().unwrap_or_else(|e| panic!("{e}"));
    let image = busybox_image_tar();
    println!(
        "| set-up | run | lines | print (ms) | shipped in (ms) | ship rate (lines/s) | GetLogEvents read (events/s) | DescribeClusters idle p50/p99 (ms) | while shipping p50/p99 (ms) |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for fargate in [true, false] {
        let (berth, agent) = if fargate {
            let b = BerthServer::builder().bin(&bin).start();
            b.load_image(&image);
            (Arc::new(b), None)
        } else {
            let b = BerthServer::builder()
                .bin(&bin)
                .subcommand("server")
                .start();
            (Arc::new(b), Some(()))
        };
        let cluster = "bench-logs";
        ecs(&berth, "CreateCluster", &json!({"clusterName": cluster}));
        // The execution role the tasks' logs are shipped with (its policy allows every logs
        // call the driver makes, creating the group included).
        let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
        let logs_policy = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            "Resource": "*"}]});
        berth.aws_cli(
            REGION,
            &[
                "iam",
                "create-role",
                "--role-name",
                "ecsTaskExecutionRole",
                "--assume-role-policy-document",
                &trust.to_string(),
            ],
        );
        berth.aws_cli(
            REGION,
            &[
                "iam",
                "put-role-policy",
                "--role-name",
                "ecsTaskExecutionRole",
                "--policy-name",
                "logs",
                "--policy-document",
                &logs_policy.to_string(),
            ],
        );
        let _agent = agent.map(|()| {
            let a = BerthAgent::start(&berth, cluster, "us-east-1a");
            a.load_image(&image);
            a
        });
        let name = if fargate {
            "`berth up`, Fargate (in process)"
        } else {
            "`berth server` + `berth agent`, EC2 (HTTP)"
        };
        for i in 0..runs {
            let r = run_once(&berth, cluster, fargate, n, i);
            println!(
                "| {name} | {} | {n} | {:.0} | {:.0} | {:.0} | {:.0} | {:.2} / {:.2} ({} calls) | {:.2} / {:.2} ({} calls) |",
                i + 1,
                r.print_ms,
                r.ship_ms,
                r.ship_rate,
                r.read_rate,
                r.idle.0,
                r.idle.1,
                r.idle.2,
                r.busy.0,
                r.busy.1,
                r.busy.2,
            );
        }
    }
}
