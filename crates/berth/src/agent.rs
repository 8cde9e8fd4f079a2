//! `berth agent`: turns this host into a container instance of a cluster, and the hidden
//! `berth shim` that supervises one container (berth-runtime's shim entry point).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::Args;

/// Settings of `berth agent`.
#[derive(Args, Clone, Debug)]
pub struct AgentArgs {
    /// The Berth endpoint (`http://host:port`).
    #[arg(long, env = "AWS_ENDPOINT_URL")]
    pub endpoint: String,
    /// The cluster to join (name or ARN).
    #[arg(long, default_value = "default", env = "BERTH_CLUSTER")]
    pub cluster: String,
    /// Where the agent keeps its state, images and containers (default:
    /// $XDG_DATA_HOME/berth-agent, else ~/.local/share/berth-agent).
    #[arg(long, env = "BERTH_AGENT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// `ecs.availability-zone` of this host.
    #[arg(long, env = "BERTH_AVAILABILITY_ZONE")]
    pub availability_zone: Option<String>,
    /// `ecs.instance-type` of this host.
    #[arg(long, default_value = berth_agent::host::DEFAULT_INSTANCE_TYPE, env = "BERTH_INSTANCE_TYPE")]
    pub instance_type: String,
    /// Memory kept for the host, MiB (not offered to tasks).
    #[arg(long, default_value_t = berth_agent::host::DEFAULT_RESERVED_MEMORY_MIB, env = "BERTH_RESERVED_MEMORY")]
    pub reserved_memory: u64,
    /// The capacity provider (created with CreateCapacityProvider) this instance joins: its
    /// `capacityProviderName`, what a capacity provider strategy places on.
    #[arg(long, env = "BERTH_CAPACITY_PROVIDER")]
    pub capacity_provider: Option<String>,
    /// GPUs offered to tasks: a count (`2`: ids GPU-0, GPU-1) or comma-separated ids.
    #[arg(long, env = "BERTH_GPUS")]
    pub gpus: Option<String>,
}

/// Runs `berth shim <state dir>` if that is what was asked. Must be called before any
/// thread or async runtime exists: the shim forks. Never returns when it runs.
pub fn shim_if_requested() {
    let mut args = std::env::args_os().skip(1);
    if args.next().is_some_and(|a| a == "shim") {
        berth_runtime::shim_main(args);
    }
}

fn default_data_dir() -> anyhow::Result<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|x| !x.is_empty()) {
        return Ok(PathBuf::from(x).join("berth-agent"));
    }
    let home =
        std::env::var_os("HOME").context("neither --data-dir, XDG_DATA_HOME nor HOME is set")?;
    Ok(PathBuf::from(home).join(".local/share/berth-agent"))
}

fn runtime_version() -> String {
    let runc = std::process::Command::new("runc")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(|l| l.replace("runc version ", "")));
    match runc {
        Some(v) => format!("berth-runtime {} (runc {v})", env!("CARGO_PKG_VERSION")),
        None => format!("berth-runtime {}", env!("CARGO_PKG_VERSION")),
    }
}

async fn signalled() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

/// A signed client of the endpoint (`endpoint`, else AWS_ENDPOINT_URL) with the credentials
/// and region of the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION).
pub fn client_from_env(endpoint: Option<&str>) -> anyhow::Result<berth_agent::HttpControlPlane> {
    let env = |n: &str| {
        std::env::var(n).with_context(|| format!("{n} is not set (source <data-dir>/env first)"))
    };
    let endpoint = match endpoint {
        Some(e) => e.to_string(),
        None => env("AWS_ENDPOINT_URL")?,
    };
    let region = std::env::var("AWS_REGION")
        .or_else(|_| std::env::var("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|_| "us-east-1".into());
    Ok(berth_agent::HttpControlPlane::new(
        berth_agent::HttpConfig {
            endpoint,
            access_key_id: env("AWS_ACCESS_KEY_ID")?,
            secret_access_key: env("AWS_SECRET_ACCESS_KEY")?,
            session_token: std::env::var("AWS_SESSION_TOKEN")
                .ok()
                .filter(|t| !t.is_empty()),
            region,
            retries: 5,
        },
    )?)
}

/// `berth agent`: registers (once; re-registers with the kept ARN after a restart), then
/// runs the agent until SIGINT/SIGTERM. Containers keep running when it stops.
pub async fn run(args: AgentArgs) -> anyhow::Result<()> {
    let cp: Arc<dyn berth_agent::ControlPlane> = Arc::new(client_from_env(Some(&args.endpoint))?);
    let data_dir = match args.data_dir {
        Some(d) => d,
        None => default_data_dir()?,
    };
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let images = berth_runtime::ImageStore::open(data_dir.join("images"))?;
    let rt = berth_runtime::Runtime::new(berth_runtime::RuntimeConfig::new(
        data_dir.join("containers"),
    ))?;
    let settings = berth_agent::RegistrationSettings {
        instance_type: args.instance_type,
        availability_zone: args.availability_zone,
        reserved_memory_mib: args.reserved_memory,
        runtime_version: runtime_version(),
        capacity_provider: args.capacity_provider,
        gpus: args
            .gpus
            .as_deref()
            .map(berth_agent::host::parse_gpus)
            .unwrap_or_default(),
    };
    let state_dir = data_dir.join("agent");
    let shutdown = signalled();
    tokio::pin!(shutdown);
    let mut backoff = Duration::from_millis(500);
    let arn = loop {
        let attempt = berth_agent::register(cp.as_ref(), &state_dir, &args.cluster, &settings);
        tokio::select! {
            _ = &mut shutdown => return Ok(()),
            r = attempt => match r {
                Ok(arn) => break arn,
                Err(berth_agent::Error::ControlPlane(e)) if e.is_retryable() => {
                    tracing::warn!(%e, ?backoff, "cannot register yet");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
                Err(e) => return Err(e).context("cannot register the container instance"),
            }
        }
    };
    tracing::info!(container_instance = %arn, cluster = %args.cluster, "registered");
    let agent = berth_agent::Agent::new(
        berth_agent::AgentConfig::new(state_dir, args.cluster, arn),
        cp,
        Arc::new(rt),
        Arc::new(images),
    );
    agent.run(shutdown).await?;
    Ok(())
}
