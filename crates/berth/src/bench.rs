//! `berth bench placement`: the control plane's placement throughput at scale. It starts a
//! `berth server` (this binary, fresh data directory), registers simulated container instances
//! (`crate::sim`: they run no process), drives RunTask (count 10 per call) from many
//! concurrent clients through the signed API until the target number of tasks is placed, and
//! reports placements per second, RunTask latency, how long the simulated agents took to
//! report every task RUNNING, the server's memory, and how listing and describing behave at
//! that scale. Before that, it measures the placement function alone over a snapshot of the
//! same size.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use berth_scheduler as sched;
use berth_wire::ecs::shapes as s;
use clap::Args;

use crate::sim::{self, Client, Credentials, SimArgs};

#[derive(Args, Debug, Clone)]
pub struct PlacementArgs {
    /// Simulated container instances.
    #[arg(long, default_value_t = 10_000)]
    pub instances: usize,
    /// Tasks to place end to end.
    #[arg(long, default_value_t = 1_000_000)]
    pub tasks: u64,
    /// Concurrent RunTask clients.
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Tasks per RunTask call (ECS allows 1 to 10).
    #[arg(long, default_value_t = 10)]
    pub count: u64,
    /// Seconds the placement function alone is measured for, per strategy (0: skip).
    #[arg(long, default_value_t = 3)]
    pub micro_seconds: u64,
    /// Delay before a simulated agent reports a task RUNNING.
    #[arg(long, default_value_t = 100)]
    pub transition_delay_ms: u64,
    /// Shortest time between two answers on one simulated instance's assignments stream.
    #[arg(long, default_value_t = 2000)]
    pub min_poll_interval_ms: u64,
    /// How long to wait, after the last placement, for every task to be reported RUNNING.
    #[arg(long, default_value_t = 600)]
    pub settle_timeout_seconds: u64,
}

const CPU_PER_INSTANCE: i64 = 4096;
const MEMORY_PER_INSTANCE: i64 = 16384;
const TASK_CPU: i64 = 16;
const TASK_MEMORY: i64 = 32;
const ZONES: [&str; 3] = ["us-east-1a", "us-east-1b", "us-east-1c"];

pub async fn placement(args: PlacementArgs) -> anyhow::Result<()> {
    println!("# berth bench placement");
    println!();
    println!(
        "machine: {} · {} cores · {} · berth {}",
        cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        mem_total(),
        env!("CARGO_PKG_VERSION")
    );
    if args.micro_seconds > 0 {
        micro(&args);
    }
    end_to_end(&args).await
}

/// Nearest-rank percentile of sorted `v`.
fn pct(v: &[u32], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    f64::from(v[rank.clamp(1, v.len()) - 1]) / 1000.0
}

fn snapshot_instance(k: usize) -> sched::Instance {
    let mut i = sched::Instance::new(
        format!("bench/{k:08}"),
        format!("arn:aws:ecs:us-east-1:000000000000:container-instance/bench/{k:08}"),
    );
    i.registered = sched::Resources {
        cpu: CPU_PER_INSTANCE,
        memory: MEMORY_PER_INSTANCE,
    };
    i.remaining = i.registered;
    i.used_ports = vec![22, 2375, 2376, 51678, 51679];
    i.attributes.insert(
        "ecs.availability-zone".into(),
        Some(ZONES[k % ZONES.len()].into()),
    );
    i.attributes
        .insert("ecs.instance-type".into(), Some("berth.sim".into()));
    i.attributes
        .insert("ecs.os-type".into(), Some("linux".into()));
    i
}

/// The placement function alone: `sched::place` over a snapshot of `args.instances`
/// instances (each already holding its share of `args.tasks`), requests of `args.count`.
fn micro(args: &PlacementArgs) {
    println!();
    println!(
        "## placement function alone ({} instances, {} tasks held, count {} per request)",
        args.instances, args.tasks, args.count
    );
    println!();
    println!("| strategy | requests | placements/s | µs per request |");
    println!("|---|---:|---:|---:|");
    let per = args.tasks as usize / args.instances.max(1);
    let mut instances: Vec<sched::Instance> = (0..args.instances).map(snapshot_instance).collect();
    for i in &mut instances {
        for _ in 0..per {
            i.tasks.push(sched::RunningTask {
                group: Some("family:bench".into()),
                family: "bench".into(),
            });
        }
        i.remaining.cpu -= TASK_CPU * per as i64;
        i.remaining.memory -= TASK_MEMORY * per as i64;
        i.running_tasks_count = per as i32;
    }
    let snapshot = sched::Snapshot { instances };
    let cases: [(&str, Vec<sched::Strategy>); 3] = [
        ("random (RunTask's default)", vec![]),
        (
            "binpack(memory)",
            vec![sched::Strategy::Binpack(sched::BinpackField::Memory)],
        ),
        (
            "spread(attribute:ecs.availability-zone)",
            vec![sched::Strategy::Spread(sched::SpreadField::Attribute(
                "ecs.availability-zone".into(),
            ))],
        ),
    ];
    let mut seed = 0x9e3779b97f4a7c15u64;
    let mut rng = move |n: usize| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % n.max(1) as u64) as usize
    };
    for (name, strategies) in cases {
        let request = sched::Request {
            count: args.count as usize,
            needs: sched::Needs {
                cpu: TASK_CPU,
                memory: TASK_MEMORY,
                ..sched::Needs::default()
            },
            group: "family:bench".into(),
            family: "bench".into(),
            strategies,
            ..sched::Request::default()
        };
        let budget = Duration::from_secs(args.micro_seconds);
        let t0 = Instant::now();
        let mut requests = 0u64;
        let mut placed = 0u64;
        while t0.elapsed() < budget {
            let plan = sched::place(&snapshot, &request, &mut rng);
            placed += plan.placed().count() as u64;
            requests += 1;
        }
        let secs = t0.elapsed().as_secs_f64();
        println!(
            "| {name} | {requests} | {:.0} | {:.1} |",
            placed as f64 / secs,
            secs * 1e6 / requests.max(1) as f64
        );
    }
}

struct Server {
    child: tokio::process::Child,
    dir: std::path::PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Server {
    fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

/// A process's memory, MiB: its resident set (`VmRSS`), the peak of it (`VmHWM`), and the
/// anonymous part (`RssAnon`: heap and stacks, what the process itself holds; the rest of
/// the resident set is mapped files, here the databases' pages the readers map, which the
/// kernel drops under pressure).
#[derive(Debug, Clone, Copy)]
struct Memory {
    rss: f64,
    hwm: f64,
    anon: f64,
}

/// `pid`'s [`Memory`] (zeros when it cannot be read).
fn memory(pid: u32) -> Memory {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    };
    Memory {
        rss: field("VmRSS:"),
        hwm: field("VmHWM:"),
        anon: field("RssAnon:"),
    }
}

/// The CPU time `pid` has used so far, all its threads, user and system, in seconds (from
/// `/proc/<pid>/stat`, whose times are in USER_HZ, 100 a second on Linux); `None` when it
/// cannot be read.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, in parentheses, may hold spaces: the fields follow its last ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime); `rest` starts at field 3.
    let ticks = |k: usize| fields.get(k - 3)?.parse::<f64>().ok();
    Some((ticks(14)? + ticks(15)?) / 100.0)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or_else(|| "unknown CPU".into(), |(_, v)| v.trim().to_string())
}

fn mem_total() -> String {
    std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .map_or_else(
            || "? GiB".into(),
            |kib| format!("{} GiB", kib / 1024 / 1024),
        )
}

/// The server's store writer as its health answer tells it: how long it has been held in
/// total (ms), and how many writes its commits carried, in how many commits.
#[derive(Debug, Clone, Copy)]
struct WriterHealth {
    held_ms: u64,
    writes: u64,
    commits: u64,
}

impl WriterHealth {
    /// From `earlier` to this reading: the seconds the writer was held, and the writes a
    /// commit carried on average.
    fn since(&self, earlier: &WriterHealth) -> (f64, f64) {
        (
            self.held_ms.saturating_sub(earlier.held_ms) as f64 / 1000.0,
            self.writes.saturating_sub(earlier.writes) as f64
                / self.commits.saturating_sub(earlier.commits).max(1) as f64,
        )
    }
}

async fn writer_health(host: &str) -> Option<WriterHealth> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(host).await.ok()?;
    let ask = format!("GET /_berth/health HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    conn.write_all(ask.as_bytes()).await.ok()?;
    let mut answer = String::new();
    conn.read_to_string(&mut answer).await.ok()?;
    let (_, body) = answer.split_once("\r\n\r\n")?;
    let health: serde_json::Value = serde_json::from_str(body).ok()?;
    let store = &health["store"];
    Some(WriterHealth {
        held_ms: store["writerHeldMs"].as_u64()?,
        writes: store["writes"].as_u64()?,
        commits: store["commits"].as_u64()?,
    })
}

async fn start_server() -> anyhow::Result<(Server, Arc<Credentials>)> {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0")?;
        l.local_addr()?.port()
    };
    let dir = std::env::temp_dir().join(format!("berth-bench-{}-{port}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let key = format!("AKIABENCH{:011}", u64::from(port) * 7919);
    let secret = format!("bench{:035}", u64::from(port) * 104_729);
    let exe = std::env::current_exe().context("cannot find the berth binary")?;
    let child = tokio::process::Command::new(exe)
        .arg("server")
        .arg("--listen")
        .arg(format!("127.0.0.1:{port}"))
        .arg("--data-dir")
        .arg(&dir)
        .arg("--root-access-key-id")
        .arg(&key)
        .arg("--root-secret-access-key")
        .arg(&secret)
        .env("BERTH_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("cannot start berth server")?;
    let server = Server { child, dir };
    let host = format!("127.0.0.1:{port}");
    let t0 = Instant::now();
    while tokio::net::TcpStream::connect(&host).await.is_err() {
        if t0.elapsed() > Duration::from_secs(30) {
            bail!("berth server did not listen within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let creds = Arc::new(Credentials {
        host,
        access_key_id: key,
        secret_access_key: secret,
        region: "us-east-1".into(),
    });
    Ok((server, creds))
}

/// Registers `instances` simulated instances of the bench's size in cluster `bench` and starts
/// their agents.
async fn start_fleet(
    creds: Arc<Credentials>,
    instances: usize,
    transition_delay_ms: u64,
    min_poll_interval_ms: u64,
) -> anyhow::Result<Arc<sim::SimStats>> {
    sim::start(
        creds,
        SimArgs {
            cluster: "bench".into(),
            instances,
            cpu: CPU_PER_INSTANCE,
            memory: MEMORY_PER_INSTANCE,
            zones: ZONES.iter().map(|z| z.to_string()).collect(),
            transition_delay_ms,
            min_poll_interval_ms,
            register_concurrency: 32,
            reporters: 2,
        },
    )
    .await
}

/// Waits until each of the fleet's `instances` sent its first poll (its heartbeat).
async fn until_every_instance_polled(stats: &sim::SimStats, instances: usize) {
    while stats.polls_started.load(Ordering::Relaxed) < instances as u64 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn end_to_end(args: &PlacementArgs) -> anyhow::Result<()> {
    let (server, creds) = start_server().await?;
    let pid = server.pid().context("the server has no pid")?;
    let mut admin = Client::new(creds.clone());
    let _: serde_json::Value = admin
        .call(
            &sim::ecs("CreateCluster"),
            &serde_json::json!({"clusterName": "bench"}),
        )
        .await?;
    let _: serde_json::Value = admin
        .call(
            &sim::ecs("RegisterTaskDefinition"),
            &serde_json::json!({
                "family": "bench", "networkMode": "host", "requiresCompatibilities": ["EC2"],
                "containerDefinitions": [{"name": "app", "image": "busybox",
                    "cpu": TASK_CPU, "memory": TASK_MEMORY, "command": ["sleep", "3600"]}]
            }),
        )
        .await?;
    let idle = memory(pid);
    let t0 = Instant::now();
    let stats = start_fleet(
        creds.clone(),
        args.instances,
        args.transition_delay_ms,
        args.min_poll_interval_ms,
    )
    .await?;
    let registration = t0.elapsed();
    // Every instance's first poll (its heartbeat) before placing.
    until_every_instance_polled(&stats, args.instances).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let fleet = memory(pid);
    println!();
    println!(
        "## end to end: {} simulated instances, {} tasks, RunTask count {} from {} clients",
        args.instances, args.tasks, args.count, args.clients
    );
    println!();
    println!(
        "registration of {} instances: {:.1} s ({:.0}/s)",
        args.instances,
        registration.as_secs_f64(),
        args.instances as f64 / registration.as_secs_f64()
    );

    // RunTask from many clients until the target is placed.
    let placed = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let cpu0 = cpu_seconds(pid);
    let writer0 = writer_health(&creds.host).await;
    let t0 = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..args.clients.max(1) {
        let creds = creds.clone();
        let (placed, refused, errors, done) = (
            placed.clone(),
            refused.clone(),
            errors.clone(),
            done.clone(),
        );
        let (target, count) = (args.tasks, args.count);
        clients.push(tokio::spawn(async move {
            let mut client = Client::new(creds);
            let mut latencies: Vec<u32> = Vec::new();
            let mut first_error = None;
            while !done.load(Ordering::Relaxed) {
                let started = Instant::now();
                let r: anyhow::Result<RunTaskCounts> = client
                    .call(
                        &sim::ecs("RunTask"),
                        &serde_json::json!({"cluster": "bench", "taskDefinition": "bench",
                            "launchType": "EC2", "count": count}),
                    )
                    .await;
                latencies.push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX));
                match r {
                    Ok(resp) => {
                        let n = resp.tasks.len() as u64;
                        refused.fetch_add(resp.failures.len() as u64, Ordering::Relaxed);
                        if placed.fetch_add(n, Ordering::Relaxed) + n >= target {
                            done.store(true, Ordering::Relaxed);
                        }
                    }
                    Err(e) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                        first_error.get_or_insert_with(|| e.to_string());
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            (latencies, first_error)
        }));
    }
    let mut last = (Instant::now(), 0u64, writer_health(&creds.host).await);
    while !done.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if last.0.elapsed() >= Duration::from_secs(10) {
            let now = placed.load(Ordering::Relaxed);
            let held = writer_health(&creds.host).await;
            let busy = match (last.2, held) {
                (Some(a), Some(b)) => {
                    let (held, per_commit) = b.since(&a);
                    format!(
                        "{:.0} % of the time, {per_commit:.1} writes a commit",
                        100.0 * held / last.0.elapsed().as_secs_f64()
                    )
                }
                _ => "?".into(),
            };
            let m = memory(pid);
            eprintln!(
                "bench: {now} placed ({:.0}/s over the last 10 s), {} reported RUNNING, server RSS {:.0} MiB ({:.0} anonymous), writer held {busy}",
                (now - last.1) as f64 / last.0.elapsed().as_secs_f64(),
                stats.reported_running.load(Ordering::Relaxed),
                m.rss,
                m.anon
            );
            last = (Instant::now(), now, held);
        }
        if errors.load(Ordering::Relaxed) > 1000 {
            done.store(true, Ordering::Relaxed);
        }
    }
    let mut latencies = Vec::new();
    let mut first_error = None;
    for c in clients {
        let (l, e) = c.await?;
        latencies.extend(l);
        if first_error.is_none() {
            first_error = e;
        }
    }
    let elapsed = t0.elapsed();
    let placed = placed.load(Ordering::Relaxed);
    let placed_memory = memory(pid);
    let cpu1 = cpu_seconds(pid);
    let writer1 = writer_health(&creds.host).await;
    latencies.sort_unstable();
    let secs = elapsed.as_secs_f64();
    println!();
    println!(
        "| placed | RunTask calls | refused | errors | seconds | placements/s | RunTask/s | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    println!(
        "| {placed} | {} | {} | {} | {secs:.1} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} |",
        latencies.len(),
        refused.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
        placed as f64 / secs,
        latencies.len() as f64 / secs,
        pct(&latencies, 50.0),
        pct(&latencies, 90.0),
        pct(&latencies, 99.0),
        pct(&latencies, 100.0),
    );
    if let Some(e) = &first_error {
        eprintln!("bench: first error: {e}");
    }
    // What a placement cost the server while they ran (its state reports and streams
    // included): its CPU, and the time its store's one writer was held, the serial path.
    let per_placement = |seconds: f64| seconds * 1e6 / placed.max(1) as f64;
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        println!();
        println!(
            "server CPU while placing: {:.2} cores, {:.0} µs per placement",
            (b - a) / secs,
            per_placement(b - a)
        );
    }
    if let (Some(a), Some(b)) = (writer0, writer1) {
        let (held, per_commit) = b.since(&a);
        println!(
            "store writer while placing: held {:.0} % of the time, {:.0} µs per placement, {per_commit:.1} writes a commit",
            100.0 * held / secs,
            per_placement(held),
        );
    }

    // The simulated agents' reports.
    let settle = Instant::now();
    while stats.reported_running.load(Ordering::Relaxed) < placed {
        if settle.elapsed() > Duration::from_secs(args.settle_timeout_seconds) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let running = stats.reported_running.load(Ordering::Relaxed);
    println!();
    println!(
        "all placed tasks reported RUNNING by the simulated agents: {} of {placed}, {:.1} s after the last placement ({} assignment answers streamed, {} batched report calls, {} agent errors)",
        running,
        settle.elapsed().as_secs_f64(),
        stats.polls.load(Ordering::Relaxed),
        stats.report_calls.load(Ordering::Relaxed),
        stats.errors.load(Ordering::Relaxed),
    );
    let settled = memory(pid);
    println!();
    println!("| server memory | RSS (MiB) | of it anonymous (MiB) |");
    println!("|---|---:|---:|");
    let row = |what: String, m: Memory, peak: bool| {
        let peak = if peak {
            format!(" (peak {:.0})", m.hwm)
        } else {
            String::new()
        };
        println!("| {what} | {:.0}{peak} | {:.0} |", m.rss, m.anon);
    };
    row(
        "idle (cluster and task definition only)".into(),
        idle,
        false,
    );
    row(
        format!("{} instances registered", args.instances),
        fleet,
        false,
    );
    row(format!("{placed} tasks placed"), placed_memory, true);
    row("all reported RUNNING".into(), settled, true);

    // Listing and describing at that scale.
    println!();
    println!("| call at that scale | ms |");
    println!("|---|---:|");
    let timed = |name: String, ms: f64| println!("| {name} | {ms:.1} |");
    let t = Instant::now();
    let mut page: s::ListTasksResponse = admin
        .call(
            &sim::ecs("ListTasks"),
            &serde_json::json!({"cluster": "bench", "maxResults": 100}),
        )
        .await?;
    let listed_task = page
        .task_arns
        .as_ref()
        .and_then(|arns| arns.first().cloned())
        .context("ListTasks listed no task")?;
    timed(
        "ListTasks, first page of 100".into(),
        t.elapsed().as_secs_f64() * 1e3,
    );
    let t = Instant::now();
    let mut pages = 1;
    for _ in 0..9 {
        let Some(token) = page.next_token.clone() else {
            break;
        };
        page = admin
            .call(
                &sim::ecs("ListTasks"),
                &serde_json::json!({"cluster": "bench", "maxResults": 100, "nextToken": token}),
            )
            .await?;
        pages += 1;
    }
    timed(
        format!("ListTasks, each of the next {} pages (mean)", pages - 1),
        t.elapsed().as_secs_f64() * 1e3 / f64::from((pages - 1).max(1)),
    );
    let arns = page.task_arns.clone().unwrap_or_default();
    let t = Instant::now();
    let described: s::DescribeTasksResponse = admin
        .call(
            &sim::ecs("DescribeTasks"),
            &serde_json::json!({"cluster": "bench", "tasks": arns}),
        )
        .await?;
    timed(
        format!(
            "DescribeTasks of {} tasks",
            described.tasks.map_or(0, |t| t.len())
        ),
        t.elapsed().as_secs_f64() * 1e3,
    );
    let t = Instant::now();
    let cis: s::ListContainerInstancesResponse = admin
        .call(
            &sim::ecs("ListContainerInstances"),
            &serde_json::json!({"cluster": "bench", "maxResults": 100}),
        )
        .await?;
    timed(
        "ListContainerInstances, first page of 100".into(),
        t.elapsed().as_secs_f64() * 1e3,
    );
    let t = Instant::now();
    let _: serde_json::Value = admin
        .call(
            &sim::ecs("DescribeContainerInstances"),
            &serde_json::json!({"cluster": "bench",
                "containerInstances": cis.container_instance_arns.unwrap_or_default()}),
        )
        .await?;
    timed(
        "DescribeContainerInstances of 100".into(),
        t.elapsed().as_secs_f64() * 1e3,
    );
    let t = Instant::now();
    let described: serde_json::Value = admin
        .call(
            &sim::ecs("DescribeClusters"),
            &serde_json::json!({"clusters": ["bench"]}),
        )
        .await?;
    timed(
        "DescribeClusters (task counters, registered instances counted)".into(),
        t.elapsed().as_secs_f64() * 1e3,
    );
    // CloudTrail at that scale: the newest events naming one task (its RunTask, found in the
    // lookup index or among the latest events still waiting for their keys).
    let t = Instant::now();
    let found: serde_json::Value = admin
        .call_service(
            berth_wire::cloudtrail::SIGNING_NAME,
            &format!("{}.LookupEvents", berth_wire::cloudtrail::TARGET_PREFIX),
            &serde_json::json!({"LookupAttributes": [
                {"AttributeKey": "ResourceName", "AttributeValue": listed_task}]}),
        )
        .await?;
    timed(
        "CloudTrail LookupEvents by a task's ARN".into(),
        t.elapsed().as_secs_f64() * 1e3,
    );
    let named = found["Events"]
        .as_array()
        .is_some_and(|events| events.iter().any(|e| e["EventName"] == "RunTask"));
    if !named {
        bail!("LookupEvents found no RunTask naming {listed_task}");
    }
    // The counts at this scale must be the fleet's and the run's.
    let shown = |field: &str| described["clusters"][0][field].as_u64();
    let expected = [
        (
            "registeredContainerInstancesCount",
            u64::try_from(args.instances).unwrap_or(u64::MAX),
        ),
        ("runningTasksCount", placed),
    ];
    for (field, want) in expected {
        if shown(field) != Some(want) {
            bail!(
                "DescribeClusters shows {field} {:?}, expected {want}",
                shown(field)
            );
        }
    }
    drop(server);
    if errors.load(Ordering::Relaxed) > 0 || placed < args.tasks || running < placed {
        bail!(
            "the run was not clean: {} errors, {placed} of {} placed, {running} reported RUNNING",
            errors.load(Ordering::Relaxed),
            args.tasks
        );
    }
    Ok(())
}

/// What the clients read of a RunTask answer: how many tasks it placed and refused. The
/// rest is skipped, not decoded into values: the clients share the cores with the server,
/// and decoding ten tasks an answer took a third of their CPU. (The answer's shape is the
/// SDK and CLI tests' concern.)
#[derive(serde::Deserialize)]
struct RunTaskCounts {
    #[serde(default)]
    tasks: Vec<serde::de::IgnoredAny>,
    #[serde(default)]
    failures: Vec<serde::de::IgnoredAny>,
}

#[derive(Args, Debug, Clone)]
pub struct ServiceArgs {
    /// Simulated container instances.
    #[arg(long, default_value_t = 100)]
    pub instances: usize,
    /// The service's desired count.
    #[arg(long, default_value_t = 1000)]
    pub tasks: u64,
    /// Delay before a simulated agent reports a task RUNNING (or STOPPED).
    #[arg(long, default_value_t = 100)]
    pub transition_delay_ms: u64,
    /// Shortest time between two answers on one simulated instance's assignments stream.
    #[arg(long, default_value_t = 1000)]
    pub min_poll_interval_ms: u64,
    /// How long each phase may take before the run is called failed.
    #[arg(long, default_value_t = 900)]
    pub timeout_seconds: u64,
}

/// What DescribeServices said at one moment.
struct ServiceView {
    running: i64,
    desired: i64,
    deployments: usize,
    /// The primary deployment's task definition and rollout state.
    primary: (String, String),
}

async fn describe_service(client: &mut Client) -> anyhow::Result<ServiceView> {
    let r: serde_json::Value = client
        .call(
            &sim::ecs("DescribeServices"),
            &serde_json::json!({"cluster": "bench", "services": ["bench"]}),
        )
        .await?;
    let svc = &r["services"][0];
    let deployments = svc["deployments"].as_array().cloned().unwrap_or_default();
    let primary = deployments
        .iter()
        .find(|d| d["status"] == "PRIMARY")
        .map(|d| {
            (
                d["taskDefinition"].as_str().unwrap_or("").to_string(),
                d["rolloutState"].as_str().unwrap_or("").to_string(),
            )
        })
        .unwrap_or_default();
    Ok(ServiceView {
        running: svc["runningCount"].as_i64().unwrap_or(0),
        desired: svc["desiredCount"].as_i64().unwrap_or(0),
        deployments: deployments.len(),
        primary,
    })
}

/// Polls DescribeServices until the service runs `want` tasks of one COMPLETED deployment
/// of `revision`; returns (seconds to reach it, the fewest and most tasks running sampled
/// on the way).
async fn until_steady(
    client: &mut Client,
    want: i64,
    revision: &str,
    timeout: Duration,
) -> anyhow::Result<(f64, i64, i64)> {
    let t0 = Instant::now();
    let (mut fewest, mut most) = (i64::MAX, 0);
    loop {
        let v = describe_service(client).await?;
        fewest = fewest.min(v.running);
        most = most.max(v.running);
        if v.running == want
            && v.desired == want
            && v.deployments == 1
            && v.primary.0.ends_with(revision)
            && v.primary.1 == "COMPLETED"
        {
            return Ok((t0.elapsed().as_secs_f64(), fewest, most));
        }
        if t0.elapsed() > timeout {
            bail!(
                "the service did not reach {want} running tasks of {revision} within {} s: {} running, {} deployments, primary {:?}",
                timeout.as_secs(),
                v.running,
                v.deployments,
                v.primary
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `berth bench service`: a replica service on simulated instances scaled from 0 to
/// `args.tasks`, then rolled to a new revision at minimumHealthyPercent 100 / maximumPercent
/// 200, each timed until DescribeServices shows the steady state (every task RUNNING, one
/// deployment, rolloutState COMPLETED).
pub async fn service(args: ServiceArgs) -> anyhow::Result<()> {
    println!("# berth bench service");
    println!();
    println!(
        "machine: {} · {} cores · {} · berth {}",
        cpu_model(),
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        mem_total(),
        env!("CARGO_PKG_VERSION")
    );
    let (server, creds) = start_server().await?;
    let pid = server.pid().context("the server has no pid")?;
    let mut admin = Client::new(creds.clone());
    let _: serde_json::Value = admin
        .call(
            &sim::ecs("CreateCluster"),
            &serde_json::json!({"clusterName": "bench"}),
        )
        .await?;
    for revision in 1..=2 {
        let _: serde_json::Value = admin
            .call(
                &sim::ecs("RegisterTaskDefinition"),
                &serde_json::json!({
                    "family": "svc", "networkMode": "host", "requiresCompatibilities": ["EC2"],
                    "containerDefinitions": [{"name": "app", "image": "busybox",
                        "cpu": TASK_CPU, "memory": TASK_MEMORY,
                        "command": ["sleep", "3600"],
                        "environment": [{"name": "REVISION", "value": revision.to_string()}]}]
                }),
            )
            .await?;
    }
    let stats = start_fleet(
        creds.clone(),
        args.instances,
        args.transition_delay_ms,
        args.min_poll_interval_ms,
    )
    .await?;
    until_every_instance_polled(&stats, args.instances).await;
    let timeout = Duration::from_secs(args.timeout_seconds);
    let want = i64::try_from(args.tasks).unwrap_or(i64::MAX);
    let _: serde_json::Value = admin
        .call(
            &sim::ecs("CreateService"),
            &serde_json::json!({"cluster": "bench", "serviceName": "bench",
                "taskDefinition": "svc:1", "desiredCount": 0, "launchType": "EC2",
                "deploymentConfiguration": {"minimumHealthyPercent": 100, "maximumPercent": 200}}),
        )
        .await?;
    let _: serde_json::Value = admin
        .call(
            &sim::ecs("UpdateService"),
            &serde_json::json!({"cluster": "bench", "service": "bench", "desiredCount": want}),
        )
        .await?;
    let (scale_secs, _, _) = until_steady(&mut admin, want, "svc:1", timeout).await?;
    let scaled = memory(pid);
    let _: serde_json::Value = admin
        .call(
            &sim::ecs("UpdateService"),
            &serde_json::json!({"cluster": "bench", "service": "bench", "taskDefinition": "svc:2"}),
        )
        .await?;
    let (roll_secs, fewest, most) = until_steady(&mut admin, want, "svc:2", timeout).await?;
    let rolled = memory(pid);
    println!();
    println!(
        "{} simulated instances, tasks reported RUNNING/STOPPED {} ms after the agent sees them, assignments streamed at most every {} ms",
        args.instances, args.transition_delay_ms, args.min_poll_interval_ms
    );
    println!();
    println!("| phase | tasks | seconds to steady state | tasks/s |");
    println!("|---|---:|---:|---:|");
    println!(
        "| scale 0 → {want} (UpdateService desiredCount) | {want} | {scale_secs:.1} | {:.0} |",
        want as f64 / scale_secs
    );
    println!(
        "| rolling deployment svc:1 → svc:2, min 100 % / max 200 % (to rolloutState COMPLETED) | {want} | {roll_secs:.1} | {:.0} |",
        want as f64 / roll_secs
    );
    println!();
    println!(
        "during the rolling deployment, tasks RUNNING (sampled every ~100 ms): fewest {fewest}, most {most}"
    );
    println!(
        "server RSS: {:.0} MiB after scaling ({:.0} anonymous), {:.0} MiB after the deployment (peak {:.0}; {:.0} anonymous)",
        scaled.rss, scaled.anon, rolled.rss, rolled.hwm, rolled.anon
    );
    println!(
        "simulated agents: {} assignment answers, {} report calls, {} errors",
        stats.polls.load(Ordering::Relaxed),
        stats.report_calls.load(Ordering::Relaxed),
        stats.errors.load(Ordering::Relaxed)
    );
    drop(server);
    Ok(())
}
