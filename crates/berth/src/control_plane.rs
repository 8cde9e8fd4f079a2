//! `berth up` / `berth server`: open the store, settle the account and its root key, write
//! the client environment file, serve until SIGINT or SIGTERM.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use berth_server::{App, accounts, gateway};
use berth_store::Store;

use crate::ServerArgs;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The whole product on this machine.
    Up,
    /// The control plane only.
    Server,
}

/// The account id a data directory gets when none is given (LocalStack's convention, so
/// tools written for a local AWS work unchanged).
const DEFAULT_ACCOUNT_ID: &str = "000000000000";

pub fn default_data_dir() -> PathBuf {
    if let Some(x) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(x).join("berth");
    }
    match std::env::var_os("HOME") {
        Some(h) => PathBuf::from(h).join(".local/share/berth"),
        None => PathBuf::from("/var/lib/berth"),
    }
}

pub async fn run(args: ServerArgs, mode: Mode) -> anyhow::Result<()> {
    let data_dir = args.data_dir.clone().unwrap_or_else(default_data_dir);
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
    if let Some(a) = &args.account_id
        && !accounts::is_account_id(a)
    {
        anyhow::bail!("--account-id must be 12 digits, got '{a}'");
    }
    let store_path = data_dir.join("berth.db");
    let store = if args.no_hot_state {
        Store::open(&store_path)
    } else {
        Store::open_holding_in_memory(&store_path, berth_server::ecs::KINDS_HELD_IN_MEMORY)
    }
    .context("cannot open the store")?;
    // CloudTrail's event history in a database of its own: recording every call never takes
    // the main store's writer. Events recorded before it existed move there once.
    let trail_path = data_dir.join("trail.db");
    let trail_store = Store::open(&trail_path).context("cannot open the CloudTrail store")?;
    // One thread writes it (the recorder): nobody waits for its writer.
    trail_store.set_raise_writer(false);
    let moved = store
        .move_trail_events_to(&trail_path)
        .context("cannot move CloudTrail events to their own store")?;
    if moved > 0 {
        tracing::info!(events = moved, "moved CloudTrail events to trail.db");
    }
    let account = accounts::settle_account(&store, args.account_id.as_deref(), DEFAULT_ACCOUNT_ID)?;
    let given = args
        .root_access_key_id
        .as_deref()
        .zip(args.root_secret_access_key.as_deref());
    let root = accounts::ensure_root_key(
        &store,
        &account,
        given,
        berth_wire::Timestamp::now().millis(),
    )?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener
        .local_addr()
        .context("cannot read the listening address")?;
    let endpoint = format!("http://{addr}");
    let env_file = data_dir.join("env");
    write_env_file(
        &env_file,
        &endpoint,
        &root.key.access_key_id,
        &root.key.secret_access_key,
        &args.region,
    )?;

    let what = match mode {
        Mode::Up => "berth up",
        Mode::Server => "berth server",
    };
    if root.created && given.is_none() {
        println!("berth: created the root access key of account {account}:");
        println!("  AWS_ACCESS_KEY_ID={}", root.key.access_key_id);
        println!("  AWS_SECRET_ACCESS_KEY={}", root.key.secret_access_key);
    }
    println!(
        "berth: {what} serves the AWS APIs at {endpoint} (account {account}, data in {})",
        data_dir.display()
    );
    println!("berth: to use it from a shell: . {}", env_file.display());

    let app = Arc::new(App::with_trail_store(
        Arc::new(store),
        Arc::new(trail_store),
    ));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let stopped = move |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    tokio::spawn(housekeeping(app.clone(), stop_rx.clone()));
    tokio::spawn(heartbeats(app.clone(), stop_rx.clone()));
    // The service scheduler: one controller per process.
    tokio::spawn(berth_server::ecs::service_controller::run(
        app.clone(),
        berth_server::ecs::service_controller::ControllerConfig {
            instance_lost_after: std::time::Duration::from_secs(args.instance_lost_after_seconds),
            ..Default::default()
        },
        stop_rx.clone(),
    ));
    let managed = match mode {
        Mode::Up => Some(tokio::spawn(run_managed_capacity(
            app.clone(),
            data_dir.clone(),
            stopped(stop_rx.clone()),
        ))),
        Mode::Server => None,
    };
    tokio::spawn(async move {
        shutdown_signal().await;
        let _ = stop_tx.send(true);
    });
    let closing = app.clone();
    let served = gateway::serve(listener, app.clone(), async move {
        stopped(stop_rx).await;
        // Agents' assignment streams are requests in flight too: end them, or the graceful
        // stop would wait out each one's lifetime.
        closing.ecs.notifier.close_streams();
    })
    .await;
    // Every call answered is in the CloudTrail queue: store what is left before exiting.
    let trail_app = app.clone();
    let _ = tokio::task::spawn_blocking(move || trail_app.trail.shutdown()).await;
    served.context("the HTTP server failed")?;
    if let Some(m) = managed {
        // The agent stops at once; its containers keep running and are found again at the
        // next start (each is held by its own shim).
        let _ = tokio::time::timeout(std::time::Duration::from_secs(10), m).await;
    }
    println!("berth: stopped");
    Ok(())
}

/// Berth-managed (Fargate) capacity: the agent of the managed host, in this process.
async fn run_managed_capacity(
    app: Arc<App>,
    data_dir: PathBuf,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let result = async {
        let images = berth_runtime::ImageStore::open(data_dir.join("images"))?;
        let rt = berth_runtime::Runtime::new(berth_runtime::RuntimeConfig::new(
            data_dir.join("managed/containers"),
        ))?;
        let cp: Arc<dyn berth_agent::ControlPlane> =
            Arc::new(crate::managed::ManagedCapacity::new(app));
        let config = berth_agent::AgentConfig::new(
            data_dir.join("managed/agent"),
            "managed",
            berth_server::ecs::tasks::MANAGED_HOST,
        );
        berth_agent::Agent::new(config, cp, Arc::new(rt), Arc::new(images))
            .run(shutdown)
            .await?;
        anyhow::Ok(())
    }
    .await;
    if let Err(e) = result {
        tracing::error!(error = %format!("{e:#}"), "managed capacity stopped; Fargate tasks cannot run");
    }
}

/// Writes the agents' queued heartbeats, all at once, every
/// [`berth_server::agent_channel::HEARTBEAT_FLUSH_EVERY`].
async fn heartbeats(app: Arc<App>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(berth_server::agent_channel::HEARTBEAT_FLUSH_EVERY);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let app = app.clone();
        let flushed =
            tokio::task::spawn_blocking(move || app.ecs.notifier.flush_heartbeats(&app.store))
                .await;
        if let Ok(Err(e)) = flushed {
            tracing::warn!(error = %e, "cannot record the agents' heartbeats");
        }
    }
}

/// Periodic upkeep: prunes STOPPED tasks past ECS's retention, log events past their
/// group's retention and CloudTrail events past the event history's 90 days; rotates task
/// role credentials before they expire and revokes those of stopped tasks.
async fn housekeeping(app: Arc<App>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let store = app.store.clone();
        let pruned = tokio::task::spawn_blocking(move || {
            berth_server::ecs::tasks::prune(&store, berth_wire::Timestamp::now())
        })
        .await;
        match pruned {
            Ok(Ok(n)) if n > 0 => tracing::info!(pruned = n, "pruned stopped tasks"),
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot prune stopped tasks"),
            _ => {}
        }
        let store = app.store.clone();
        let expired = tokio::task::spawn_blocking(move || {
            berth_server::logs::events::prune(&store, berth_wire::Timestamp::now().millis())
        })
        .await;
        match expired {
            Ok(Ok(n)) if n > 0 => tracing::info!(deleted = n, "deleted log events past retention"),
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot delete expired log events"),
            _ => {}
        }
        let store = app.trail_store.clone();
        let expired = tokio::task::spawn_blocking(move || {
            berth_server::cloudtrail::prune(&store, berth_wire::Timestamp::now().millis())
        })
        .await;
        match expired {
            Ok(Ok(n)) if n > 0 => {
                tracing::info!(deleted = n, "deleted CloudTrail events past 90 days")
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot delete expired CloudTrail events"),
            _ => {}
        }
        let (store, usage) = (app.store.clone(), app.key_usage.clone());
        if let Ok(Err(e)) = tokio::task::spawn_blocking(move || usage.flush(&store)).await {
            tracing::warn!(error = %e, "cannot record access keys' last use");
        }
        let store = app.store.clone();
        let credentials = tokio::task::spawn_blocking(move || {
            berth_server::ecs::task_credentials::upkeep(
                &store,
                berth_wire::Timestamp::now().millis(),
            )
        })
        .await;
        match credentials {
            Ok(Ok((rotated, revoked))) if rotated + revoked > 0 => {
                tracing::info!(rotated, revoked, "task role credentials")
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "cannot rotate task role credentials"),
            _ => {}
        }
    }
}

fn write_env_file(
    path: &Path,
    endpoint: &str,
    key: &str,
    secret: &str,
    region: &str,
) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let text = format!(
        "export AWS_ENDPOINT_URL={endpoint}\nexport AWS_ACCESS_KEY_ID={key}\nexport AWS_SECRET_ACCESS_KEY={secret}\nexport AWS_REGION={region}\nexport AWS_DEFAULT_REGION={region}\n"
    );
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot write {}", tmp.display()))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot watch SIGTERM");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    tracing::info!("shutting down");
}
