//! `berth sim`: **simulated** agents, for measuring the control plane at scale (DESIGN
//! principle 9: Kubernetes' hollow nodes, Nomad's mock driver). Each one registers a
//! container instance and speaks the real agent channel through the signed gateway, like
//! `berth agent`, but runs no process: it reports a task RUNNING a configurable delay after it
//! is assigned, and STOPPED a delay after it is told to stop. Never a stand-in for real
//! containers in a functional test.
//!
//! What differs from a real agent, to keep thousands of them in one process cheap on both
//! sides: each reads only the tasks that changed (`changesOnly`) from its assignments
//! stream, paced as polls at `min_poll_interval` would be (`minIntervalMs`), and their
//! reports travel in batches (`SubmitTaskStateChanges`, one store transaction per
//! batch) instead of one `SubmitTaskStateChange` per task.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use berth_agent::ControlPlane as _;
use berth_wire::agent::{
    MAX_STATE_CHANGES, PollRequest, SUBMIT_TASK_STATE_CHANGES, TARGET_PREFIX, TaskStateChanges,
    TaskStateChangesResponse,
};
use berth_wire::ecs::shapes as s;
use clap::Args;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// Where and as whom to call.
#[derive(Debug, Clone)]
pub struct Credentials {
    /// `host:port` of the endpoint.
    pub host: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub region: String,
}

impl Credentials {
    /// From AWS_ENDPOINT_URL (http only), AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION.
    pub fn from_env() -> anyhow::Result<Credentials> {
        let var = |k: &str| std::env::var(k).with_context(|| format!("{k} is not set"));
        let endpoint = var("AWS_ENDPOINT_URL")?;
        let host = endpoint
            .strip_prefix("http://")
            .map(|h| h.trim_end_matches('/').to_string())
            .filter(|h| !h.is_empty() && !h.contains('/'))
            .with_context(|| {
                format!("AWS_ENDPOINT_URL must be http://host:port, got {endpoint}")
            })?;
        Ok(Credentials {
            host,
            access_key_id: var("AWS_ACCESS_KEY_ID")?,
            secret_access_key: var("AWS_SECRET_ACCESS_KEY")?,
            region: std::env::var("AWS_REGION").unwrap_or_else(|_| "us-east-1".into()),
        })
    }
}

/// One keep-alive HTTP/1.1 connection that sends SigV4-signed AWS JSON 1.1 calls (what an
/// SDK does, without its weight: the point is to load the server, not the client).
pub struct Client {
    creds: Arc<Credentials>,
    stream: Option<TcpStream>,
    buf: Vec<u8>,
}

/// An AWS error answer.
#[derive(Debug, thiserror::Error)]
#[error("{target} answered {status}: {body}")]
pub struct CallError {
    pub target: String,
    pub status: u16,
    pub body: String,
}

impl Client {
    pub fn new(creds: Arc<Credentials>) -> Client {
        Client {
            creds,
            stream: None,
            buf: Vec::with_capacity(16 * 1024),
        }
    }

    /// Calls `target` (`Prefix.Operation`, signing name `ecs`) with `input`.
    pub async fn call<I: Serialize, O: DeserializeOwned>(
        &mut self,
        target: &str,
        input: &I,
    ) -> anyhow::Result<O> {
        self.call_service(berth_wire::ecs::SIGNING_NAME, target, input)
            .await
    }

    /// Calls `target` of the service whose signing name is `service` with `input`.
    pub async fn call_service<I: Serialize, O: DeserializeOwned>(
        &mut self,
        service: &str,
        target: &str,
        input: &I,
    ) -> anyhow::Result<O> {
        let body = serde_json::to_vec(input).context("cannot encode the request")?;
        let (status, answer) = match self.exchange(service, target, &body).await {
            Ok(r) => r,
            // A keep-alive connection the server closed meanwhile: once more on a new one.
            Err(_) => {
                self.stream = None;
                self.exchange(service, target, &body).await?
            }
        };
        if status != 200 {
            return Err(CallError {
                target: target.to_string(),
                status,
                body: String::from_utf8_lossy(&answer).into_owned(),
            }
            .into());
        }
        let answer: &[u8] = if answer.is_empty() { b"{}" } else { &answer };
        serde_json::from_slice(answer).with_context(|| format!("cannot decode {target}'s answer"))
    }

    async fn exchange(
        &mut self,
        service: &str,
        target: &str,
        body: &[u8],
    ) -> anyhow::Result<(u16, Vec<u8>)> {
        let base = vec![
            (
                "content-type".to_string(),
                "application/x-amz-json-1.1".to_string(),
            ),
            ("host".to_string(), self.creds.host.clone()),
            ("x-amz-target".to_string(), target.to_string()),
        ];
        let unsigned = berth_wire::sigv4::SignedRequest {
            method: "POST",
            raw_path: "/",
            raw_query: "",
            headers: &base,
            body,
        };
        let key = berth_wire::sigv4::SigningKey {
            access_key_id: &self.creds.access_key_id,
            secret: &self.creds.secret_access_key,
            region: &self.creds.region,
            service,
        };
        let signed = berth_wire::sigv4::sign_headers(
            &unsigned,
            &key,
            berth_wire::Timestamp::now().seconds(),
        );
        let mut req = Vec::with_capacity(512 + body.len());
        req.extend_from_slice(b"POST / HTTP/1.1\r\n");
        for (k, v) in base.iter().chain(signed.iter()) {
            req.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        req.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
        req.extend_from_slice(body);
        if self.stream.is_none() {
            let s = TcpStream::connect(&self.creds.host)
                .await
                .with_context(|| format!("cannot connect to {}", self.creds.host))?;
            s.set_nodelay(true)?;
            self.stream = Some(s);
        }
        let Some(stream) = self.stream.as_mut() else {
            bail!("no connection");
        };
        stream.write_all(&req).await?;
        // Headers, then a content-length body.
        self.buf.clear();
        let head_end = loop {
            if let Some(p) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p;
            }
            if read_more(stream, &mut self.buf).await? == 0 {
                self.stream = None;
                bail!("the connection closed before an answer");
            }
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let status: u16 = head
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .context("bad status line")?;
        let mut length = None;
        let mut close = false;
        for line in head.split("\r\n").skip(1) {
            if let Some((k, v)) = line.split_once(':') {
                let k = k.trim().to_ascii_lowercase();
                if k == "content-length" {
                    length = v.trim().parse::<usize>().ok();
                } else if k == "connection" && v.trim().eq_ignore_ascii_case("close") {
                    close = true;
                } else if k == "transfer-encoding" {
                    bail!("chunked answers are not expected from berth");
                }
            }
        }
        let length = length.context("an answer without content-length")?;
        let start = head_end + 4;
        while self.buf.len() < start + length {
            if read_more(stream, &mut self.buf).await? == 0 {
                self.stream = None;
                bail!("the connection closed mid-answer");
            }
        }
        let body = self.buf[start..start + length].to_vec();
        if close {
            self.stream = None;
        }
        Ok((status, body))
    }
}

async fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut chunk = [0u8; 16 * 1024];
    let n = stream.read(&mut chunk).await?;
    buf.extend_from_slice(&chunk[..n]);
    Ok(n)
}

/// `ecs` target of an ECS operation.
pub fn ecs(op: &str) -> String {
    format!("{}.{op}", berth_wire::ecs::TARGET_PREFIX)
}

fn agent_target(op: &str) -> String {
    format!("{TARGET_PREFIX}.{op}")
}

/// What the simulated fleet looks like and how it behaves.
#[derive(Args, Debug, Clone)]
pub struct SimArgs {
    /// The cluster the instances join (it must exist).
    #[arg(long, default_value = "default")]
    pub cluster: String,
    /// How many simulated container instances.
    #[arg(long, default_value_t = 100)]
    pub instances: usize,
    /// CPU units each registers.
    #[arg(long, default_value_t = 4096)]
    pub cpu: i64,
    /// Memory (MiB) each registers.
    #[arg(long, default_value_t = 16384)]
    pub memory: i64,
    /// Availability zones, assigned round-robin (`ecs.availability-zone`).
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "us-east-1a,us-east-1b,us-east-1c"
    )]
    pub zones: Vec<String>,
    /// How long after an assignment a task is reported RUNNING (and after a stop, STOPPED).
    #[arg(long, default_value_t = 100)]
    pub transition_delay_ms: u64,
    /// Paces each instance's answers as polls at this interval would be (changes close
    /// together travel in one answer).
    #[arg(long, default_value_t = 1000)]
    pub min_poll_interval_ms: u64,
    /// Registrations in flight at once.
    #[arg(long, default_value_t = 32)]
    pub register_concurrency: usize,
    /// Connections that carry the batched state reports.
    #[arg(long, default_value_t = 2)]
    pub reporters: usize,
}

/// Counters of a running simulation.
#[derive(Debug, Default)]
pub struct SimStats {
    pub registered: AtomicU64,
    /// Polls sent (each is also the instance's heartbeat, recorded as it arrives).
    pub polls_started: AtomicU64,
    /// Polls answered.
    pub polls: AtomicU64,
    pub reported_running: AtomicU64,
    pub reported_stopped: AtomicU64,
    pub report_calls: AtomicU64,
    pub errors: AtomicU64,
}

/// One report, due at `due`.
struct Due {
    due: Instant,
    change: s::SubmitTaskStateChangeRequest,
    running: bool,
}

/// Starts the simulated fleet: registers every instance (returns once all are registered),
/// then leaves their poll loops and the reporters running in the background until the
/// process ends.
pub async fn start(creds: Arc<Credentials>, args: SimArgs) -> anyhow::Result<Arc<SimStats>> {
    let stats = Arc::new(SimStats::default());
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<Due>();
    let rx = Arc::new(tokio::sync::Mutex::new(rx));
    for _ in 0..args.reporters.max(1) {
        tokio::spawn(reporter(creds.clone(), rx.clone(), stats.clone()));
    }
    // Register in waves of `register_concurrency`.
    let sem = Arc::new(tokio::sync::Semaphore::new(
        args.register_concurrency.max(1),
    ));
    let mut joins = Vec::new();
    for k in 0..args.instances {
        let permit = sem.clone().acquire_owned().await?;
        let creds = creds.clone();
        let args = args.clone();
        let stats = stats.clone();
        let tx = tx.clone();
        joins.push(tokio::spawn(async move {
            let mut client = Client::new(creds.clone());
            let arn = register(&mut client, &args, k).await;
            drop(permit);
            let arn = arn?;
            stats.registered.fetch_add(1, Ordering::Relaxed);
            // The registration's connection is not needed any more: the agent's assignments
            // come on a stream of its own.
            drop(client);
            let cp = berth_agent::HttpControlPlane::new(berth_agent::HttpConfig {
                endpoint: format!("http://{}", creds.host),
                access_key_id: creds.access_key_id.clone(),
                secret_access_key: creds.secret_access_key.clone(),
                session_token: None,
                region: creds.region.clone(),
                retries: 0,
            })?
            .with_stream_interval(
                u32::try_from(args.min_poll_interval_ms)
                    .unwrap_or(berth_wire::agent::MAX_MIN_INTERVAL_MS)
                    .min(berth_wire::agent::MAX_MIN_INTERVAL_MS),
            );
            tokio::spawn(agent_loop(cp, args, arn, stats, tx));
            anyhow::Ok(())
        }));
    }
    for j in joins {
        j.await??;
    }
    Ok(stats)
}

async fn register(client: &mut Client, args: &SimArgs, k: usize) -> anyhow::Result<String> {
    let facts = berth_agent::HostFacts {
        cores: u32::try_from(args.cpu / 1024).unwrap_or(1).max(1),
        mem_total_kib: u64::try_from(args.memory).unwrap_or(0) * 1024,
        machine: std::env::consts::ARCH.to_string(),
    };
    let zone = args
        .zones
        .get(k % args.zones.len().max(1))
        .cloned()
        .filter(|z| !z.is_empty());
    let settings = berth_agent::RegistrationSettings {
        availability_zone: zone,
        reserved_memory_mib: 0,
        runtime_version: "berth-sim (simulated: runs no process)".into(),
        ..Default::default()
    };
    let mut req = berth_agent::host::registration(&args.cluster, None, &facts, &settings);
    // Exactly the configured size, whatever the cores arithmetic gave.
    for r in req.total_resources.iter_mut().flatten() {
        match r.name.as_deref() {
            Some("CPU") => r.integer_value = i32::try_from(args.cpu).ok(),
            Some("MEMORY") => r.integer_value = i32::try_from(args.memory).ok(),
            _ => {}
        }
    }
    req.attributes
        .get_or_insert_with(Vec::new)
        .push(s::Attribute {
            name: "berth.simulated".into(),
            value: Some("true".into()),
            ..Default::default()
        });
    let resp: s::RegisterContainerInstanceResponse =
        client.call(&ecs("RegisterContainerInstance"), &req).await?;
    resp.container_instance
        .and_then(|c| c.container_instance_arn)
        .context("RegisterContainerInstance answered no ARN")
}

/// One simulated agent: its polls are answered from the agent channel's stream (as the real
/// agent's are, through the same client), which the control plane paces as polls at
/// `min_poll_interval` would be.
async fn agent_loop(
    cp: berth_agent::HttpControlPlane,
    args: SimArgs,
    arn: String,
    stats: Arc<SimStats>,
    tx: tokio::sync::mpsc::UnboundedSender<Due>,
) {
    let delay = Duration::from_millis(args.transition_delay_ms);
    let mut acked = 0i64;
    loop {
        let req = PollRequest {
            cluster: args.cluster.clone(),
            container_instance_arn: arn.clone(),
            acked_seq: acked,
            wait_seconds: Some(berth_wire::agent::MAX_WAIT_SECONDS),
            changes_only: true,
        };
        stats.polls_started.fetch_add(1, Ordering::Relaxed);
        match cp.poll(req).await {
            Ok(resp) => {
                stats.polls.fetch_add(1, Ordering::Relaxed);
                for t in resp.tasks {
                    let (status, running) =
                        match (t.desired_status.as_str(), t.last_status.as_str()) {
                            (_, "STOPPED") => continue,
                            ("STOPPED", _) => ("STOPPED", false),
                            (_, "RUNNING") => continue,
                            _ => ("RUNNING", true),
                        };
                    let change = s::SubmitTaskStateChangeRequest {
                        cluster: Some(t.cluster_arn.clone()),
                        task: Some(t.task_arn.clone()),
                        status: Some(status.into()),
                        reason: (!running).then(|| {
                            t.stopped_reason
                                .clone()
                                .unwrap_or_else(|| "Task stopped by the simulator".into())
                        }),
                        containers: Some(
                            t.containers
                                .iter()
                                .map(|c| s::ContainerStateChange {
                                    container_name: c.name.clone(),
                                    status: Some(status.into()),
                                    exit_code: (!running).then_some(0),
                                    ..Default::default()
                                })
                                .collect(),
                        ),
                        ..Default::default()
                    };
                    let _ = tx.send(Due {
                        due: Instant::now() + delay,
                        change,
                        running,
                    });
                }
                acked = resp.seq;
            }
            Err(e) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "simulated agent poll failed");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Sends due reports in batches: everything due (up to [`MAX_STATE_CHANGES`]) per call.
async fn reporter(
    creds: Arc<Credentials>,
    rx: Arc<tokio::sync::Mutex<tokio::sync::mpsc::UnboundedReceiver<Due>>>,
    stats: Arc<SimStats>,
) {
    let mut client = Client::new(creds);
    let mut queue: VecDeque<Due> = VecDeque::new();
    loop {
        // Wait for work only with nothing queued: a reporter with reports of its own never
        // waits on the one that is blocked receiving.
        let guard = if queue.is_empty() {
            let mut rx = rx.lock().await;
            match rx.recv().await {
                Some(d) => queue.push_back(d),
                None => return,
            }
            Some(rx)
        } else {
            rx.try_lock().ok()
        };
        if let Some(mut rx) = guard {
            while queue.len() < MAX_STATE_CHANGES {
                match rx.try_recv() {
                    Ok(d) => queue.push_back(d),
                    Err(_) => break,
                }
            }
        }
        // Delays are all the same, so the queue is in due order.
        if let Some(first) = queue.front()
            && first.due > Instant::now()
        {
            tokio::time::sleep_until(first.due.into()).await;
            continue;
        }
        let now = Instant::now();
        let mut batch = Vec::new();
        let mut running = 0;
        while batch.len() < MAX_STATE_CHANGES
            && let Some(d) = queue.front()
            && d.due <= now
        {
            if let Some(d) = queue.pop_front() {
                running += u64::from(d.running);
                batch.push(d.change);
            }
        }
        let stopped = batch.len() as u64 - running;
        let body = TaskStateChanges { changes: batch };
        match client
            .call::<_, TaskStateChangesResponse>(&agent_target(SUBMIT_TASK_STATE_CHANGES), &body)
            .await
        {
            Ok(_) => {
                stats.report_calls.fetch_add(1, Ordering::Relaxed);
                stats.reported_running.fetch_add(running, Ordering::Relaxed);
                stats.reported_stopped.fetch_add(stopped, Ordering::Relaxed);
            }
            Err(e) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, "simulated agents' state report failed");
                // Put them back to try again shortly.
                for c in body.changes.into_iter().rev() {
                    queue.push_front(Due {
                        due: now,
                        running: c.status.as_deref() == Some("RUNNING"),
                        change: c,
                    });
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// `berth sim`: runs the simulated fleet against AWS_ENDPOINT_URL until interrupted,
/// printing its counters every few seconds.
pub async fn run(args: SimArgs) -> anyhow::Result<()> {
    let creds = Arc::new(Credentials::from_env()?);
    let t0 = Instant::now();
    eprintln!(
        "berth sim: SIMULATED agents (they run no process): registering {} instances in cluster {}",
        args.instances, args.cluster
    );
    let stats = start(creds, args).await?;
    eprintln!(
        "berth sim: {} instances registered in {:.1}s",
        stats.registered.load(Ordering::Relaxed),
        t0.elapsed().as_secs_f64()
    );
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tick.tick() => eprintln!(
                "berth sim: polls {} · reported RUNNING {} · STOPPED {} · errors {}",
                stats.polls.load(Ordering::Relaxed),
                stats.reported_running.load(Ordering::Relaxed),
                stats.reported_stopped.load(Ordering::Relaxed),
                stats.errors.load(Ordering::Relaxed),
            ),
        }
    }
    Ok(())
}
