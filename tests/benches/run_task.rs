//! Time from RunTask to RUNNING on `berth up` (Fargate, cached image), side by side with
//! `runc run --detach` of an equivalent bundle and `podman run -d` of the same image, and the
//! memory (RSS) of `berth up` idle and with 50 running tasks.
//!
//! ```sh
//! cargo build --release -p berth && cargo bench -p berth-e2e --bench run_task
//! ```
//!
//! Berth: a `berth up` started by the bench (fresh data directory), the busybox test image
//! loaded with `berth image load`, a Fargate task definition running `sleep 3600`; then N times
//! RunTask → DescribeTasks every 5 ms until lastStatus is RUNNING (timed from the start of the
//! RunTask call to the first RUNNING seen) → StopTask, waiting (untimed) for STOPPED before the
//! next one. runc: a bundle with the same image's root filesystem and `sleep 3600`, timed
//! `runc run --detach` (it returns once the process runs), then killed and deleted. podman:
//! `podman load` of the same tarball, timed `podman run -d` (returns once the container runs),
//! then removed; installed with `apt-get install -y podman` when missing, skipped with the
//! error when it cannot run here.
//!
//! Knobs (environment): `BERTH_BIN` (the binary to measure; default: the release build),
//! `BERTH_BENCH_RUNS` (N, default 50), `BERTH_BENCH_MEMORY_TASKS` (running tasks for the
//! memory figure, default 50), `BERTH_BENCH_PODMAN=0` (skip podman).
//!
//! Run without `--bench` (as `cargo test --benches` does) it only prints how to run it. Needs
//! root (containers).

// Benchmark code: a panic with a message is how a broken run reports itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{
    AwsVpcConfiguration, Compatibility, ContainerDefinition, LaunchType, NetworkConfiguration,
    NetworkMode,
};
use berth_e2e::{BerthServer, REGION, berth_bin, busybox_image_tar, is_root, kill_processes_under};

const CLUSTER: &str = "bench";
const FAMILY: &str = "bench-sleep";
const POLL: Duration = Duration::from_millis(5);
const TIMEOUT: Duration = Duration::from_secs(120);

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// p50, p99, mean, min, max in milliseconds of `samples`.
struct Stats {
    n: usize,
    p50: f64,
    p99: f64,
    mean: f64,
    min: f64,
    max: f64,
}

fn stats(samples: &[Duration]) -> Stats {
    let mut v: Vec<f64> = samples.iter().copied().map(ms).collect();
    v.sort_by(f64::total_cmp);
    let pct = |p: usize| {
        if v.is_empty() {
            return 0.0;
        }
        // Nearest rank.
        let rank = (v.len() * p).div_ceil(100).max(1);
        v[rank.min(v.len()) - 1]
    };
    Stats {
        n: v.len(),
        p50: pct(50),
        p99: pct(99),
        mean: if v.is_empty() {
            0.0
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        },
        min: v.first().copied().unwrap_or(0.0),
        max: v.last().copied().unwrap_or(0.0),
    }
}

/// VmRSS of `pid` in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// The shim processes of containers under `data_dir` (`berth shim <state dir>`): count and
/// summed RSS in KiB.
fn shims(data_dir: &Path) -> (usize, u64) {
    let needle = data_dir.to_string_lossy().into_owned();
    let mut count = 0;
    let mut sum = 0;
    for e in fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(cmdline) = fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmdline
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if args.get(1).map(String::as_str) == Some("shim")
            && args.iter().any(|a| a.contains(&needle))
            && let Some(kib) = rss_kib(pid)
        {
            count += 1;
            sum += kib;
        }
    }
    (count, sum)
}

fn mib(kib: u64) -> String {
    format!("{:.1}", kib as f64 / 1024.0)
}

/// The default subnet of the benchmark's server (set once it is up).
static SUBNET: std::sync::OnceLock<String> = std::sync::OnceLock::new();

fn network() -> NetworkConfiguration {
    NetworkConfiguration::builder()
        .awsvpc_configuration(
            AwsVpcConfiguration::builder()
                .subnets(SUBNET.get().cloned().unwrap_or_default())
                .build()
                .unwrap(),
        )
        .build()
}

async fn run_one(ecs: &Client) -> String {
    let out = ecs
        .run_task()
        .cluster(CLUSTER)
        .task_definition(FAMILY)
        .launch_type(LaunchType::Fargate)
        .network_configuration(network())
        .send()
        .await
        .expect("RunTask");
    assert!(out.failures().is_empty(), "RunTask failures: {out:?}");
    out.tasks()[0].task_arn().unwrap().to_owned()
}

/// lastStatus of `arns` (in order), failing on a task that stopped unexpectedly.
async fn statuses(ecs: &Client, arns: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for chunk in arns.chunks(100) {
        let d = ecs
            .describe_tasks()
            .cluster(CLUSTER)
            .set_tasks(Some(chunk.to_vec()))
            .send()
            .await
            .expect("DescribeTasks");
        for arn in chunk {
            let t = d
                .tasks()
                .iter()
                .find(|t| t.task_arn() == Some(arn.as_str()))
                .expect("the task is described");
            out.push(t.last_status().unwrap_or_default().to_owned());
        }
    }
    out
}

/// Waits until every task of `arns` has lastStatus `want`, polling every `every`.
async fn wait_all(ecs: &Client, arns: &[String], want: &str, every: Duration) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let s = statuses(ecs, arns).await;
        if s.iter().all(|x| x == want) {
            return;
        }
        if want != "STOPPED" && s.iter().any(|x| x == "STOPPED") {
            let d = ecs
                .describe_tasks()
                .cluster(CLUSTER)
                .set_tasks(Some(arns.to_vec()))
                .send()
                .await
                .expect("DescribeTasks");
            panic!("a task stopped while waiting for {want}: {d:?}");
        }
        assert!(
            Instant::now() < deadline,
            "tasks not {want} after {TIMEOUT:?}: {s:?}"
        );
        tokio::time::sleep(every).await;
    }
}

async fn stop_all(ecs: &Client, arns: &[String]) {
    for arn in arns {
        ecs.stop_task()
            .cluster(CLUSTER)
            .task(arn)
            .reason("bench")
            .send()
            .await
            .expect("StopTask");
    }
    wait_all(ecs, arns, "STOPPED", Duration::from_millis(100)).await;
}

/// One RunTask → RUNNING: from the start of the RunTask call to the first DescribeTasks that
/// shows RUNNING; the task is then stopped (untimed).
async fn berth_sample(ecs: &Client) -> Duration {
    let t0 = Instant::now();
    let arn = run_one(ecs).await;
    let arns = [arn];
    wait_all(ecs, &arns, "RUNNING", POLL).await;
    let took = t0.elapsed();
    stop_all(ecs, &arns).await;
    took
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{cmd:?} failed with {}: {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// An OCI bundle with the image's root filesystem and `sleep 3600` (runc's default spec:
/// pid, mount, ipc, uts and network namespaces).
fn runc_bundle(dir: &Path, image_tar: &Path) -> PathBuf {
    let bundle = dir.join("bundle");
    let rootfs = bundle.join("rootfs");
    fs::create_dir_all(&rootfs).unwrap();
    run(Command::new("tar")
        .arg("-xf")
        .arg(image_tar)
        .arg("-C")
        .arg(dir)
        .arg("layer/layer.tar"))
    .unwrap();
    run(Command::new("tar")
        .arg("-xf")
        .arg(dir.join("layer/layer.tar"))
        .arg("-C")
        .arg(&rootfs))
    .unwrap();
    run(Command::new("runc")
        .arg("spec")
        .arg("--bundle")
        .arg(&bundle))
    .unwrap();
    let path = bundle.join("config.json");
    let mut spec: serde_json::Value = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
    spec["process"]["args"] = serde_json::json!(["sleep", "3600"]);
    spec["process"]["terminal"] = serde_json::json!(false);
    spec["process"]["env"] = serde_json::json!(["PATH=/bin"]);
    spec["root"]["readonly"] = serde_json::json!(false);
    fs::write(&path, serde_json::to_vec_pretty(&spec).unwrap()).unwrap();
    bundle
}

fn runc_samples(dir: &Path, image_tar: &Path, n: usize) -> Result<Vec<Duration>, String> {
    let bundle = runc_bundle(dir, image_tar);
    let root = dir.join("runc-root");
    let runc = |args: &[&str]| {
        let mut c = Command::new("runc");
        c.arg("--root").arg(&root).args(args);
        c
    };
    let mut out = Vec::new();
    for i in 0..=n {
        let id = format!("berth-bench-{}-{i}", std::process::id());
        let t0 = Instant::now();
        run(runc(&["run", "--detach", "--bundle"])
            .arg(&bundle)
            .arg(&id)
            .stdout(Stdio::null())
            .stderr(Stdio::null()))?;
        let took = t0.elapsed();
        let state = run(&mut runc(&["state", &id]))?;
        let cleanup = || {
            let _ = run(&mut runc(&["delete", "--force", &id]));
        };
        if !state.contains("\"running\"") {
            cleanup();
            return Err(format!("runc container {id} is not running: {state}"));
        }
        cleanup();
        // The first run warms the page cache and is not counted.
        if i > 0 {
            out.push(took);
        }
    }
    Ok(out)
}

/// podman, installed from Debian when missing; `Err` says why it cannot be used here.
fn podman_ready() -> Result<(), String> {
    if Command::new("podman")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        return Ok(());
    }
    eprintln!("podman missing: apt-get install -y podman");
    run(Command::new("apt-get")
        .args(["install", "-y", "podman"])
        .env("DEBIAN_FRONTEND", "noninteractive"))
    .map(|_| ())
    .map_err(|e| format!("apt-get install -y podman: {e}"))
}

fn podman_samples(image_tar: &Path, n: usize) -> Result<(Vec<Duration>, String), String> {
    podman_ready()?;
    let version = run(Command::new("podman").arg("--version"))?;
    run(Command::new("podman").arg("load").arg("-i").arg(image_tar))?;
    let mut out = Vec::new();
    for i in 0..=n {
        let t0 = Instant::now();
        let id = run(Command::new("podman").args([
            "run",
            "-d",
            "--network",
            "none",
            // Podman's default limits (nofile 1048576, nproc from the host's hard limit) are
            // refused on this machine ("error setting rlimit type 7: operation not
            // permitted"); lowered ones start.
            "--ulimit",
            "nofile=1024:1024",
            "--ulimit",
            "nproc=4096:4096",
            "busybox:latest",
            "sleep",
            "3600",
        ]))?;
        let took = t0.elapsed();
        let id = id.trim().to_owned();
        let state = run(Command::new("podman").args(["inspect", "-f", "{{.State.Status}}", &id]));
        let _ = run(Command::new("podman").args(["rm", "-f", "-t", "0", &id]));
        let state = state?;
        if state.trim() != "running" {
            return Err(format!("podman container {id} is {}", state.trim()));
        }
        if i > 0 {
            out.push(took);
        }
    }
    Ok((out, version.trim().to_owned()))
}

fn row(what: &str, s: &Stats) {
    println!(
        "| {what} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
        s.n, s.p50, s.p99, s.mean, s.min, s.max
    );
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "bench run_task: not run (run it with `cargo build --release -p berth && cargo bench \
             -p berth-e2e --bench run_task`)"
        );
        return;
    }
    assert!(
        is_root(),
        "the run_task bench runs containers: run it as root"
    );
    let runs = env_usize("BERTH_BENCH_RUNS", 50);
    let memory_tasks = env_usize("BERTH_BENCH_MEMORY_TASKS", 50);
    let bin = berth_bin().unwrap_or_else(|e| panic!("{e}"));
    let image = busybox_image_tar();
    let work = tempfile::Builder::new()
        .prefix("berth-bench-")
        .tempdir()
        .unwrap();

    let berth = BerthServer::builder().bin(&bin).start();
    let _ = SUBNET.set(berth.default_subnet());
    berth.load_image(&image);
    let pid = berth.pid().expect("berth up runs");
    let data_dir = berth.data_dir().to_path_buf();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let ecs = berth.ecs_client(REGION);

    let (berth_times, idle, busy, after) = rt.block_on(async {
        ecs.create_cluster()
            .cluster_name(CLUSTER)
            .send()
            .await
            .expect("CreateCluster");
        let container = ContainerDefinition::builder()
            .name("app")
            .image("busybox:latest")
            .essential(true)
            .command("sleep")
            .command("3600")
            // `sleep` as PID 1 ignores SIGTERM: keep the (untimed) stops short.
            .stop_timeout(2)
            .build();
        ecs.register_task_definition()
            .family(FAMILY)
            .requires_compatibilities(Compatibility::Fargate)
            .network_mode(NetworkMode::Awsvpc)
            .cpu("256")
            .memory("512")
            .container_definitions(container)
            .send()
            .await
            .expect("RegisterTaskDefinition");
        tokio::time::sleep(Duration::from_secs(2)).await;
        let idle = rss_kib(pid).unwrap_or(0);

        // One warm-up task (first use of the image's layers, cgroup parents...), not counted.
        berth_sample(&ecs).await;
        let mut times = Vec::with_capacity(runs);
        for i in 0..runs {
            let took = berth_sample(&ecs).await;
            eprintln!("berth run {}/{runs}: {:.1} ms", i + 1, ms(took));
            times.push(took);
        }

        // Memory with `memory_tasks` running tasks.
        let mut arns = Vec::new();
        while arns.len() < memory_tasks {
            let count = (memory_tasks - arns.len()).min(10);
            let out = ecs
                .run_task()
                .cluster(CLUSTER)
                .task_definition(FAMILY)
                .launch_type(LaunchType::Fargate)
                .network_configuration(network())
                .count(i32::try_from(count).unwrap())
                .send()
                .await
                .expect("RunTask");
            assert!(out.failures().is_empty(), "RunTask failures: {out:?}");
            arns.extend(out.tasks().iter().map(|t| t.task_arn().unwrap().to_owned()));
        }
        wait_all(&ecs, &arns, "RUNNING", Duration::from_millis(200)).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let busy = (rss_kib(pid).unwrap_or(0), shims(&data_dir));
        stop_all(&ecs, &arns).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        let after = rss_kib(pid).unwrap_or(0);
        (times, idle, busy, after)
    });

    let runc = runc_samples(work.path(), &image, runs);
    let podman = if std::env::var("BERTH_BENCH_PODMAN").as_deref() == Ok("0") {
        Err("skipped (BERTH_BENCH_PODMAN=0)".to_owned())
    } else {
        podman_samples(&image, runs)
    };

    println!();
    println!("berth binary: {}", bin.display());
    println!(
        "{} CPUs shared by everything; {runs} timed runs each after one warm-up; DescribeTasks \
         polled every {} ms",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        POLL.as_millis()
    );
    println!();
    println!("| start | runs | p50 (ms) | p99 (ms) | mean (ms) | min (ms) | max (ms) |");
    println!("|---|---:|---:|---:|---:|---:|---:|");
    row(
        "Berth: RunTask (Fargate, awsvpc) → DescribeTasks RUNNING",
        &stats(&berth_times),
    );
    match &runc {
        Ok(t) => row("runc run --detach (same rootfs, sleep 3600)", &stats(t)),
        Err(e) => println!("| runc run --detach | failed: {e} |"),
    }
    match &podman {
        Ok((t, version)) => row(
            &format!("podman run -d --network none, lowered ulimits ({version})"),
            &stats(t),
        ),
        Err(e) => println!("| podman run -d | not measured: {} |", e.replace('\n', " ")),
    }
    println!();
    let (busy_rss, (shim_count, shim_rss)) = busy;
    println!("| memory | RSS (MiB) |");
    println!("|---|---:|");
    println!(
        "| berth up, idle (image loaded, no task yet) | {} |",
        mib(idle)
    );
    println!(
        "| berth up, {memory_tasks} running tasks | {} |",
        mib(busy_rss)
    );
    println!(
        "| shims of those tasks ({shim_count} processes), sum | {} ({} KiB each on average) |",
        mib(shim_rss),
        shim_rss / u64::try_from(shim_count.max(1)).unwrap()
    );
    println!("| berth up, after those tasks stopped | {} |", mib(after));
    println!();

    drop(berth);
    kill_processes_under(&data_dir);
}
