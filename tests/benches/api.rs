//! API throughput and latency of `berth up`, measured through aws-sdk-ecs.
//!
//! ```sh
//! cargo build --release -p berth && cargo bench -p berth-e2e --bench api
//! ```
//!
//! For each operation (DescribeClusters as root and as an IAM user whose 10 attached policies
//! are evaluated on every call, RegisterTaskDefinition) and each concurrency level
//! (1, 8, 64 clients, each sending its next request as soon as the previous one answered), it
//! runs for a fixed time and prints requests per second and p50/p99 latency as a markdown
//! table. Knobs (environment): `BERTH_BIN` (the binary to measure; default: `berth` in this
//! bench's profile directory, i.e. the release build), `BERTH_BENCH_SECS` (seconds per cell,
//! default 5), `BERTH_BENCH_WARMUP_SECS` (default 1), `BERTH_BENCH_CLIENTS` (default `1,8,64`).
//!
//! Run without `--bench` (as `cargo test --benches` does) it only prints how to run it.

// Benchmark code: a panic with a message is how a broken run reports itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{Compatibility, ContainerDefinition, NetworkMode};
use berth_e2e::{BerthServer, REGION, RawRequest, berth_bin, profile_dir};

#[derive(Clone, Copy, Debug)]
enum Op {
    DescribeClusters,
    RegisterTaskDefinition,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::DescribeClusters => "DescribeClusters",
            Op::RegisterTaskDefinition => "RegisterTaskDefinition",
        }
    }

    /// One call; `client` numbers the concurrent client (each registers its own family, so the
    /// figure is the server's throughput, not contention on one family's revision counter).
    async fn call(self, ecs: &Client, client: usize) -> Result<(), String> {
        match self {
            Op::DescribeClusters => {
                let out = ecs
                    .describe_clusters()
                    .clusters("bench")
                    .send()
                    .await
                    .map_err(|e| aws_sdk_ecs::error::DisplayErrorContext(e).to_string())?;
                if out.clusters().len() == 1 {
                    Ok(())
                } else {
                    Err(format!("unexpected DescribeClusters output: {out:?}"))
                }
            }
            Op::RegisterTaskDefinition => {
                let container = ContainerDefinition::builder()
                    .name("app")
                    .image("busybox:latest")
                    .essential(true)
                    .command("sleep")
                    .command("3600")
                    .build();
                ecs.register_task_definition()
                    .family(format!("bench-{client}"))
                    .requires_compatibilities(Compatibility::Fargate)
                    .network_mode(NetworkMode::Awsvpc)
                    .cpu("256")
                    .memory("512")
                    .container_definitions(container)
                    .send()
                    .await
                    .map(|_| ())
                    .map_err(|e| aws_sdk_ecs::error::DisplayErrorContext(e).to_string())
            }
        }
    }
}

struct Cell {
    ok: usize,
    errors: usize,
    first_error: Option<String>,
    elapsed: Duration,
    /// Latencies of successful calls, sorted.
    latencies: Vec<Duration>,
}

impl Cell {
    fn percentile(&self, p: usize) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let idx = (self.latencies.len() * p / 100).min(self.latencies.len() - 1);
        self.latencies[idx]
    }
}

async fn measure(ecs: &Client, op: Op, clients: usize, duration: Duration) -> Cell {
    let ecs = Arc::new(ecs.clone());
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::with_capacity(clients);
    for client in 0..clients {
        let ecs = Arc::clone(&ecs);
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut errors = 0usize;
            let mut first_error = None;
            while Instant::now() < deadline {
                let t0 = Instant::now();
                match op.call(&ecs, client).await {
                    Ok(()) => latencies.push(t0.elapsed()),
                    Err(e) => {
                        errors += 1;
                        first_error.get_or_insert(e);
                    }
                }
            }
            (latencies, errors, first_error)
        }));
    }
    let mut cell = Cell {
        ok: 0,
        errors: 0,
        first_error: None,
        elapsed: Duration::ZERO,
        latencies: Vec::new(),
    };
    for task in tasks {
        let (latencies, errors, first_error) = task.await.expect("a bench client task");
        cell.latencies.extend(latencies);
        cell.errors += errors;
        if cell.first_error.is_none() {
            cell.first_error = first_error;
        }
    }
    cell.elapsed = start.elapsed();
    cell.ok = cell.latencies.len();
    cell.latencies.sort_unstable();
    cell
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// The binary to measure: BERTH_BIN, else this profile's `berth` (release under `cargo bench`),
/// else the debug build with a warning.
fn binary() -> (PathBuf, Option<String>) {
    match berth_bin() {
        Ok(bin) => (bin, None),
        Err(release_err) => {
            let debug = profile_dir()
                .ok()
                .and_then(|p| p.parent().map(|t| t.join("debug").join("berth")))
                .filter(|p| p.is_file());
            match debug {
                Some(bin) => (
                    bin,
                    Some(
                        "WARNING: measuring a debug build; run `cargo build --release -p berth` \
                         first for representative figures"
                            .to_owned(),
                    ),
                ),
                None => panic!("{release_err}"),
            }
        }
    }
}

/// An IAM call (query protocol) signed by the root key; panics unless it answers 200.
fn iam(berth: &BerthServer, form: &str) -> String {
    let req = RawRequest::new("POST", "/")
        .header(
            "Content-Type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )
        .body(format!("{form}&Version=2010-05-08").into_bytes())
        .sign(&berth.host(), &berth.signing_params(REGION).service("iam"));
    let resp = berth.raw(&req);
    assert_eq!(resp.status, 200, "{form}: {}", resp.text());
    resp.text()
}

fn between<'a>(xml: &'a str, tag: &str) -> &'a str {
    let open = format!("<{tag}>");
    let start = xml.find(&open).map(|i| i + open.len()).expect("element");
    let end = xml[start..]
        .find(&format!("</{tag}>"))
        .expect("end of element")
        + start;
    &xml[start..end]
}

/// An IAM user with `n` attached customer managed policies of five statements each (the
/// last one allows ecs:Describe*), and its access key.
fn iam_user_with_policies(berth: &BerthServer, n: usize) -> (String, String) {
    iam(berth, "Action=CreateUser&UserName=bench");
    for i in 0..n {
        let statements: Vec<String> = (0..5)
            .map(|j| {
                let action = if i + 1 == n && j == 4 {
                    "ecs:Describe*".to_string()
                } else {
                    format!("service{i}:Action{j}*")
                };
                format!(
                    r#"{{"Effect":"Allow","Action":["{action}","logs:Get*"],"Resource":"*","Condition":{{"IpAddress":{{"aws:SourceIp":"127.0.0.0/8"}}}}}}"#
                )
            })
            .collect();
        let doc = format!(
            r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
            statements.join(",")
        );
        let enc: String = doc
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        let out = iam(
            berth,
            &format!("Action=CreatePolicy&PolicyName=p{i}&PolicyDocument={enc}"),
        );
        let arn = between(&out, "Arn").to_string();
        iam(
            berth,
            &format!("Action=AttachUserPolicy&UserName=bench&PolicyArn={arn}"),
        );
    }
    let key = iam(berth, "Action=CreateAccessKey&UserName=bench");
    (
        between(&key, "AccessKeyId").to_string(),
        between(&key, "SecretAccessKey").to_string(),
    )
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "bench api: not run (run it with `cargo build --release -p berth && cargo bench -p \
             berth-e2e --bench api`)"
        );
        return;
    }
    let secs = env_u64("BERTH_BENCH_SECS", 5);
    let warmup = env_u64("BERTH_BENCH_WARMUP_SECS", 1);
    let levels: Vec<usize> = std::env::var("BERTH_BENCH_CLIENTS")
        .unwrap_or_else(|_| "1,8,64".to_owned())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .filter(|&n| n > 0)
        .collect();

    let (bin, warning) = binary();
    let berth = BerthServer::builder().bin(&bin).start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let ecs = berth.ecs_client(REGION);

    rt.block_on(async {
        ecs.create_cluster()
            .cluster_name("bench")
            .send()
            .await
            .expect("CreateCluster bench");

        println!();
        println!("berth binary: {}", bin.display());
        if let Some(w) = &warning {
            println!("{w}");
        }
        println!(
            "{} s per cell after {} s warm-up; {} CPUs shared by server and clients; client: \
             aws-sdk-ecs over HTTP/1.1 on loopback",
            secs,
            warmup,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
        println!();
        println!("| operation | clients | requests | errors | req/s | p50 (ms) | p99 (ms) |");
        println!("|---|---:|---:|---:|---:|---:|---:|");
        let user = iam_user_with_policies(&berth, 10);
        let as_user = berth.ecs_client_with_keys(REGION, &user.0, &user.1);
        let cells = [
            (Op::DescribeClusters, &ecs, ""),
            (Op::DescribeClusters, &as_user, " (IAM user, 10 policies)"),
            (Op::RegisterTaskDefinition, &ecs, ""),
        ];
        for (op, ecs, who) in cells {
            for &clients in &levels {
                if warmup > 0 {
                    measure(ecs, op, clients, Duration::from_secs(warmup)).await;
                }
                let cell = measure(ecs, op, clients, Duration::from_secs(secs)).await;
                let rps = cell.ok as f64 / cell.elapsed.as_secs_f64();
                println!(
                    "| {}{who} | {} | {} | {} | {:.0} | {} | {} |",
                    op.name(),
                    clients,
                    cell.ok,
                    cell.errors,
                    rps,
                    ms(cell.percentile(50)),
                    ms(cell.percentile(99)),
                );
                if let Some(e) = &cell.first_error {
                    eprintln!("  first error ({} x{clients}): {e}", op.name());
                }
            }
        }
        println!();
    });
}
