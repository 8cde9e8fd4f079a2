//! `berth`: Amazon ECS, self-hosted. One binary: `berth up` (the whole product on one
//! machine), `berth server` (the control plane), and friendly commands.

mod agent;
mod bench;
mod control_plane;
mod managed;
mod sim;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};

#[derive(Parser)]
#[command(name = "berth", version, about = "Amazon ECS, self-hosted")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start Berth on this machine with embedded defaults: the control plane (ECS API on
    /// the AWS wire protocol) with its store in the data directory.
    Up(ServerArgs),
    /// Start the control plane only (hosts join with `berth agent`).
    Server(ServerArgs),
    /// Wipe every resource of the account whose root key is in the environment
    /// (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION); keeps the key.
    Reset,
    /// Turn this host into a container instance of a cluster (credentials from
    /// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION).
    Agent(agent::AgentArgs),
    /// Manage the images of this host's store.
    #[command(subcommand)]
    Image(ImageCommand),
    /// SIMULATED agents for scale work: many container instances in this process that run no
    /// process and report their tasks RUNNING/STOPPED after a delay (credentials and endpoint
    /// from the environment, as `berth agent`). Never a stand-in for real containers.
    Sim(sim::SimArgs),
    /// Benchmarks of the control plane.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// Placement throughput: the placement function alone, then RunTask end to end through
    /// the signed API against a fresh `berth server` and simulated instances.
    Placement(bench::PlacementArgs),
    /// Services at scale: a replica service on simulated instances scaled from 0 to N tasks,
    /// then a rolling deployment of the N tasks at 100 %/200 %, each timed to steady state.
    Service(bench::ServiceArgs),
}

#[derive(Subcommand)]
enum ImageCommand {
    /// Load an OCI image layout (directory or tar) or a `docker save` tarball into the image
    /// store of a data directory, so tasks can use it without a registry.
    Load {
        /// The image archive or layout directory.
        path: PathBuf,
        /// The data directory of `berth up` (default as `berth up`'s) or of `berth agent`.
        #[arg(long, env = "BERTH_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
    /// List the images of a data directory's store.
    Ls {
        #[arg(long, env = "BERTH_DATA_DIR")]
        data_dir: Option<PathBuf>,
    },
}

/// Settings shared by `up` and `server`.
#[derive(Args, Clone, Debug)]
pub struct ServerArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:4566", env = "BERTH_LISTEN")]
    pub listen: SocketAddr,
    /// Where state lives (default: $XDG_DATA_HOME/berth, else ~/.local/share/berth).
    #[arg(long, env = "BERTH_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The 12-digit account id (fixed at the data directory's first start).
    #[arg(long, env = "BERTH_ACCOUNT_ID")]
    pub account_id: Option<String>,
    /// The region written to `<data-dir>/env` for clients (every region is served).
    #[arg(long, default_value = "us-east-1", env = "BERTH_REGION")]
    pub region: String,
    /// Use this root access key id instead of generating one (for test harnesses).
    #[arg(
        long,
        env = "BERTH_ROOT_ACCESS_KEY_ID",
        requires = "root_secret_access_key"
    )]
    pub root_access_key_id: Option<String>,
    /// The secret of `--root-access-key-id`.
    #[arg(
        long,
        env = "BERTH_ROOT_SECRET_ACCESS_KEY",
        requires = "root_access_key_id",
        hide_env_values = true
    )]
    pub root_secret_access_key: Option<String>,
    /// How long a container instance's agent may stay disconnected before the service
    /// scheduler replaces its service tasks on other instances.
    #[arg(
        long,
        default_value_t = berth_server::ecs::service_controller::DEFAULT_INSTANCE_LOST_AFTER_SECONDS,
        env = "BERTH_INSTANCE_LOST_AFTER_SECONDS"
    )]
    pub instance_lost_after_seconds: u64,
    /// Keep tasks, instance usage, counters and agents' assignments in SQLite only, instead
    /// of in memory with SQLite as their log (less memory, slower placement; DESIGN §6).
    #[arg(long, env = "BERTH_NO_HOT_STATE")]
    pub no_hot_state: bool,
}

/// Threads `berth server` runs blocking work (store calls) on.
const SERVER_BLOCKING_THREADS: usize = 64;

/// jemalloc instead of glibc's malloc: the control plane allocates from many threads at once,
/// where glibc's arenas spent a fifth of the server's CPU. jemalloc rather than mimalloc: its
/// thread caches hand out blocks without reading them, where reading mimalloc's free lists
/// missed the cache (its allocation path was a tenth of the server's samples); placements
/// were 7-8 % faster and the server's memory a fifth smaller (BENCHMARKS.md, "Placement at
/// scale", twentieth session).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() -> anyhow::Result<()> {
    // The hidden `berth shim`: before any thread or async runtime exists (it forks).
    agent::shim_if_requested();
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("BERTH_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,berth::request=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all().thread_name("berth");
    if matches!(cli.command, Command::Server(_)) {
        // A control plane alone blocks only on the store: more threads than this only wait
        // for its writer, each with its own stack and allocator heap (an agent's blocking
        // calls, in `up`, may wait for a container for minutes: those keep tokio's default).
        builder.max_blocking_threads(SERVER_BLOCKING_THREADS);
    }
    let runtime = builder.build().context("cannot start the async runtime")?;
    match cli.command {
        Command::Up(args) => runtime.block_on(control_plane::run(args, control_plane::Mode::Up)),
        Command::Server(args) => {
            runtime.block_on(control_plane::run(args, control_plane::Mode::Server))
        }
        Command::Reset => runtime.block_on(reset()),
        Command::Agent(args) => runtime.block_on(agent::run(args)),
        Command::Image(cmd) => image(cmd),
        Command::Sim(args) => runtime.block_on(sim::run(args)),
        Command::Bench(BenchCommand::Placement(args)) => runtime.block_on(bench::placement(args)),
        Command::Bench(BenchCommand::Service(args)) => runtime.block_on(bench::service(args)),
    }
}

fn image(cmd: ImageCommand) -> anyhow::Result<()> {
    match cmd {
        ImageCommand::Load { path, data_dir } => {
            let dir = data_dir.unwrap_or_else(control_plane::default_data_dir);
            let store = berth_runtime::ImageStore::open(dir.join("images"))?;
            let refs = store
                .load(&path)
                .with_context(|| format!("cannot load {}", path.display()))?;
            for r in refs {
                println!("Loaded image: {r}");
            }
        }
        ImageCommand::Ls { data_dir } => {
            let dir = data_dir.unwrap_or_else(control_plane::default_data_dir);
            let store = berth_runtime::ImageStore::open(dir.join("images"))?;
            for (reference, digest) in store.list()? {
                println!("{reference}\t{digest}");
            }
        }
    }
    Ok(())
}

async fn reset() -> anyhow::Result<()> {
    let client = agent::client_from_env(None)?;
    let _: serde_json::Value = client
        .call_service(
            "BerthAdmin_20261126.ResetAccount",
            "berth",
            &serde_json::json!({}),
        )
        .await?;
    println!("berth: every resource of the account is gone; the root key is kept");
    Ok(())
}
