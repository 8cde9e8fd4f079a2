//! The agent's side: [`Runtime`] creates containers through their shims and observes them
//! through their state directories. Every call only forks and execs (the shim, runc) or
//! reads files, so it is safe from a multi-threaded (tokio) process; calls block, so an async
//! caller runs them with `spawn_blocking`.
//!
//! A container's state directory `<state root>/<id>/` holds `spec.json`, the OCI bundle
//! (`config.json`, `hosts`, `hostname`, `resolv.conf`), `shim.json`, `shim.pid`,
//! `started.json`, `stdout.log`, `stderr.log`, `exit.json`, and, when the runtime prepared it,
//! the overlay (`rootfs/`, `upper/`, `work/`).

use std::ffi::OsString;
use std::fs;
use std::io::{self, Read};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::cgroup::{self, CgroupStats};
use crate::error::{Error, IoContext, Result, json_err};
use crate::image::{Image, ImageStore, write_atomic};
use crate::rootfs;
use crate::shim::ShimConfig;
use crate::spec::{self, ContainerSpec};
use crate::sys;

/// How a container ended (`exit.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitStatus {
    /// Exit code; 128 + signal when killed by a signal (as Docker reports).
    pub exit_code: i32,
    /// The signal that killed it, if any.
    pub signal: Option<i32>,
    /// Whether the OOM killer killed a process of the container.
    pub oom_killed: bool,
    /// When the shim started it, ms since the epoch.
    pub started_at_ms: u64,
    /// When the shim saw it end, ms since the epoch.
    pub finished_at_ms: u64,
    /// Set when the container never started (the OCI runtime's error).
    #[serde(default)]
    pub error: Option<String>,
}

/// Written by the shim once the container runs (`started.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Started {
    pub pid: i32,
    pub shim_pid: i32,
    pub started_at_ms: u64,
}

/// What a container is doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContainerState {
    /// Its shim is starting it.
    Creating,
    /// It runs, as `pid` in the host's pid namespace.
    Running {
        /// Host pid of the container's init process.
        pid: i32,
        /// When it started, ms since the epoch.
        started_at_ms: u64,
    },
    /// It ended (or never started: `error` is set).
    Exited(ExitStatus),
    /// Its shim is gone without recording an exit (killed, or the host rebooted).
    Unknown,
}

/// A started container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerHandle {
    /// The container id.
    pub id: String,
    /// Host pid of its init process.
    pub pid: i32,
    /// Its state directory.
    pub state_dir: PathBuf,
    /// Timestamped stdout lines (see [`crate::shim::parse_log`]).
    pub stdout_path: PathBuf,
    /// Timestamped stderr lines.
    pub stderr_path: PathBuf,
}

/// Usage of a container, from its cgroup.
pub type ContainerStats = CgroupStats;

/// Which OCI runtime the shim starts containers with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// youki's `libcontainer` crate, in the shim's own process (no runtime binary to exec).
    #[default]
    Libcontainer,
    /// The `runc` binary: the reference runtime.
    Runc,
}

impl Backend {
    /// The environment variable that chooses the backend: `libcontainer` or `runc`.
    pub const ENV: &'static str = "BERTH_OCI_RUNTIME";

    /// The backend named by [`Backend::ENV`], the default when it is unset or empty.
    pub fn from_env() -> Result<Backend> {
        match std::env::var(Backend::ENV) {
            Ok(v) if v.trim().is_empty() => Ok(Backend::default()),
            Ok(v) => v.parse(),
            Err(_) => Ok(Backend::default()),
        }
    }

    /// Its name, as [`Backend::ENV`] spells it.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Libcontainer => "libcontainer",
            Backend::Runc => "runc",
        }
    }
}

impl std::str::FromStr for Backend {
    type Err = Error;

    fn from_str(s: &str) -> Result<Backend> {
        match s.trim() {
            "libcontainer" | "youki" => Ok(Backend::Libcontainer),
            "runc" => Ok(Backend::Runc),
            other => Err(Error::UnknownBackend(other.to_string())),
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Where the runtime keeps things and which programs it runs.
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// One directory per container.
    pub state_root: PathBuf,
    /// The shim executable; `/proc/self/exe` by default (the `berth` binary).
    pub shim_program: PathBuf,
    /// Arguments before the state directory; `["shim"]` by default.
    pub shim_args: Vec<OsString>,
    /// The runc binary (looked up in `PATH` when relative).
    pub runc: PathBuf,
    /// runc's `--root`; `<state root>/.runc` by default.
    pub runc_root: Option<PathBuf>,
    /// The OCI runtime the shims use for new containers; from `BERTH_OCI_RUNTIME` by default
    /// ([`Runtime::new`] rejects an unknown name there).
    pub backend: Backend,
}

impl RuntimeConfig {
    /// Defaults for a state root.
    pub fn new(state_root: impl Into<PathBuf>) -> RuntimeConfig {
        RuntimeConfig {
            state_root: state_root.into(),
            shim_program: PathBuf::from("/proc/self/exe"),
            shim_args: vec![OsString::from("shim")],
            runc: PathBuf::from("runc"),
            runc_root: None,
            backend: Backend::from_env().unwrap_or_default(),
        }
    }
}

/// The container runtime as the agent sees it.
#[derive(Debug, Clone)]
pub struct Runtime {
    config: RuntimeConfig,
    runc_root: PathBuf,
    libcontainer_root: PathBuf,
}

/// How long the agent waits for a shim to say whether the container started.
const START_TIMEOUT: Duration = Duration::from_secs(60);

fn read_json<T: for<'de> Deserialize<'de>>(p: &Path) -> Option<T> {
    fs::read(p)
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok())
}

fn parent_pid(pid: i32) -> Option<i32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may contain spaces: parse after the last ')'.
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(1)?.parse().ok()
}

impl Runtime {
    /// A runtime over `config.state_root` (created if missing).
    pub fn new(config: RuntimeConfig) -> Result<Runtime> {
        fs::create_dir_all(&config.state_root).ctx("creating directory", &config.state_root)?;
        let runc_root = config
            .runc_root
            .clone()
            .unwrap_or_else(|| config.state_root.join(".runc"));
        fs::create_dir_all(&runc_root).ctx("creating directory", &runc_root)?;
        // An unknown name in the environment is a configuration error, not a silent default.
        Backend::from_env()?;
        let libcontainer_root = config.state_root.join(".libcontainer");
        fs::create_dir_all(&libcontainer_root).ctx("creating directory", &libcontainer_root)?;
        Ok(Runtime {
            config,
            runc_root,
            libcontainer_root,
        })
    }

    pub(crate) fn shim_program(&self) -> &Path {
        &self.config.shim_program
    }

    pub(crate) fn shim_args(&self) -> &[OsString] {
        &self.config.shim_args
    }

    /// The OCI runtime new containers are started with.
    pub fn backend(&self) -> Backend {
        self.config.backend
    }

    /// The state directory of a container.
    pub fn state_dir(&self, id: &str) -> Result<PathBuf> {
        spec::validate_id(id)?;
        Ok(self.config.state_root.join(id))
    }

    /// Mounts an overlay root filesystem for container `id` over `image`'s layers (unpacked
    /// in `store` if needed) at `<state dir>/rootfs`; [`Runtime::remove`] unmounts it.
    pub fn prepare_rootfs(&self, id: &str, store: &ImageStore, image: &Image) -> Result<PathBuf> {
        let dir = self.state_dir(id)?;
        if dir.join("spec.json").exists() {
            return Err(Error::AlreadyExists(id.to_string()));
        }
        let layers = store.layer_dirs(image)?;
        let target = dir.join("rootfs");
        if rootfs::is_mounted(&target) {
            rootfs::unmount(&target)?;
        }
        rootfs::mount_overlay(&layers, &dir.join("upper"), &dir.join("work"), &target)?;
        Ok(target)
    }

    /// Writes the bundle, spawns the container's shim and waits until the shim reports the
    /// container started (or why it did not).
    pub fn create_and_start(&self, spec: &ContainerSpec) -> Result<ContainerHandle> {
        let dir = self.state_dir(&spec.id)?;
        if dir.join("spec.json").exists() {
            return Err(Error::AlreadyExists(spec.id.clone()));
        }
        fs::create_dir_all(&dir).ctx("creating directory", &dir)?;
        spec::write_bundle(spec, &dir)?;
        let shim = ShimConfig {
            id: spec.id.clone(),
            runc: self.config.runc.clone(),
            runc_root: self.runc_root.clone(),
            cgroup_path: spec.effective_cgroup_path(),
            backend: self.config.backend,
            libcontainer_root: self.libcontainer_root.clone(),
        };
        write_atomic(
            &dir.join("shim.json"),
            &serde_json::to_vec(&shim).map_err(json_err("shim.json"))?,
        )?;
        write_atomic(
            &dir.join("spec.json"),
            &serde_json::to_vec_pretty(spec).map_err(json_err("spec.json"))?,
        )?;

        let shim_log = dir.join("shim.log");
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&shim_log)
            .ctx("opening", &shim_log)?;
        let start_err = |reason: String| Error::Start {
            id: spec.id.clone(),
            reason,
        };
        let mut child = Command::new(&self.config.shim_program)
            .args(&self.config.shim_args)
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .map_err(|e| {
                start_err(format!(
                    "spawning shim {}: {e}",
                    self.config.shim_program.display()
                ))
            })?;
        let mut out = child
            .stdout
            .take()
            .ok_or_else(|| start_err("shim has no stdout".into()))?;
        // The first shim process exits as soon as it has forked the supervisor.
        child
            .wait()
            .map_err(|e| start_err(format!("waiting for shim: {e}")))?;
        let line = read_status_line(&mut out, START_TIMEOUT)
            .map_err(|e| start_err(format!("reading shim status: {e}")))?;
        if let Some(pid) = line.strip_prefix("started ") {
            let pid = pid
                .trim()
                .parse()
                .map_err(|_| start_err(format!("bad shim status {line:?}")))?;
            return Ok(ContainerHandle {
                id: spec.id.clone(),
                pid,
                stdout_path: dir.join("stdout.log"),
                stderr_path: dir.join("stderr.log"),
                state_dir: dir,
            });
        }
        let reason = match line.strip_prefix("failed ") {
            Some(r) => r.to_string(),
            None => {
                let log = fs::read_to_string(&shim_log).unwrap_or_default();
                format!("shim exited without a status: {}", log.trim())
            }
        };
        Err(start_err(reason))
    }

    /// The container's state, read from its state directory.
    pub fn state(&self, id: &str) -> Result<ContainerState> {
        let dir = self.state_dir(id)?;
        if !dir.join("spec.json").exists() {
            return Err(Error::NotFound(id.to_string()));
        }
        if let Some(exit) = read_json::<ExitStatus>(&dir.join("exit.json")) {
            return Ok(ContainerState::Exited(exit));
        }
        let shim_pid: Option<i32> = fs::read_to_string(dir.join("shim.pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok());
        let shim_alive = shim_pid.is_some_and(sys::process_exists);
        // Re-read: the shim may have written exit.json and gone in between.
        if !shim_alive {
            if let Some(exit) = read_json::<ExitStatus>(&dir.join("exit.json")) {
                return Ok(ContainerState::Exited(exit));
            }
            return Ok(if shim_pid.is_none() {
                ContainerState::Creating
            } else {
                ContainerState::Unknown
            });
        }
        match read_json::<Started>(&dir.join("started.json")) {
            Some(s) => Ok(ContainerState::Running {
                pid: s.pid,
                started_at_ms: s.started_at_ms,
            }),
            None => Ok(ContainerState::Creating),
        }
    }

    /// Sends `signal` to the container's init process. A container that already exited is
    /// not an error.
    pub fn kill(&self, id: &str, signal: i32) -> Result<()> {
        let dir = self.state_dir(id)?;
        let ContainerState::Running { pid, .. } = self.state(id)? else {
            return Ok(());
        };
        let started: Option<Started> = read_json(&dir.join("started.json"));
        // Guard against pid reuse: the init process is a child of its shim (the subreaper).
        if started.is_some_and(|s| parent_pid(pid) == Some(s.shim_pid)) {
            match sys::kill(pid, signal) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::ESRCH) => {}
                Err(source) => {
                    return Err(Error::Signal {
                        id: id.to_string(),
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    /// Waits until the container exits, at most `timeout`.
    pub fn wait(&self, id: &str, timeout: Duration) -> Result<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.state(id)? {
                ContainerState::Exited(e) => return Ok(e),
                ContainerState::Unknown => {
                    return Err(Error::Start {
                        id: id.into(),
                        reason: "shim is gone".into(),
                    });
                }
                _ => {}
            }
            if Instant::now() >= deadline {
                return Err(Error::Timeout(id.to_string()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// ECS's stop: SIGTERM (or `stop_signal`), then SIGKILL after `timeout` (stopTimeout).
    pub fn stop(
        &self,
        id: &str,
        timeout: Duration,
        stop_signal: Option<i32>,
    ) -> Result<ExitStatus> {
        self.kill(id, stop_signal.unwrap_or(libc::SIGTERM))?;
        match self.wait(id, timeout) {
            Err(Error::Timeout(_)) => {
                self.kill(id, libc::SIGKILL)?;
                self.wait(id, Duration::from_secs(30))
            }
            other => other,
        }
    }

    /// Removes a container: kills it if it still runs, then its OCI runtime state, cgroups,
    /// rootfs mount and state directory.
    pub fn remove(&self, id: &str) -> Result<()> {
        let dir = self.state_dir(id)?;
        if !dir.exists() {
            return Err(Error::NotFound(id.to_string()));
        }
        let spec: Option<ContainerSpec> = read_json(&dir.join("spec.json"));
        if matches!(self.state(id), Ok(ContainerState::Running { .. })) {
            self.kill(id, libc::SIGKILL)?;
            let _ = self.wait(id, Duration::from_secs(10));
        }
        let shim: Option<ShimConfig> = read_json(&dir.join("shim.json"));
        if let Some(shim) = &shim
            && crate::shim::has_runtime_state(shim)
        {
            crate::shim::cleanup(shim);
        }
        if let Some(spec) = &spec {
            cgroup::remove(&spec.effective_cgroup_path());
        }
        let root = dir.join("rootfs");
        if rootfs::is_mounted(&root) {
            rootfs::unmount(&root)?;
        }
        fs::remove_dir_all(&dir).ctx("removing", &dir)
    }

    /// Every container in the state directory with its spec and state — how a restarted
    /// agent finds its containers again.
    pub fn list(&self) -> Result<Vec<(ContainerSpec, ContainerState)>> {
        let mut out = Vec::new();
        let root = &self.config.state_root;
        for e in fs::read_dir(root).ctx("reading", root)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let Some(spec) = read_json::<ContainerSpec>(&e.path().join("spec.json")) else {
                continue;
            };
            if let Ok(state) = self.state(&name) {
                out.push((spec, state));
            }
        }
        out.sort_by(|a, b| a.0.id.cmp(&b.0.id));
        Ok(out)
    }

    /// The container's spec as it was started.
    pub fn spec(&self, id: &str) -> Result<ContainerSpec> {
        let p = self.state_dir(id)?.join("spec.json");
        let data = fs::read(&p).map_err(|_| Error::NotFound(id.to_string()))?;
        serde_json::from_slice(&data).map_err(json_err(format!("spec of {id}")))
    }

    /// CPU and memory usage from the container's cgroup.
    pub fn stats(&self, id: &str) -> Result<ContainerStats> {
        Ok(cgroup::stats(&self.spec(id)?.effective_cgroup_path()))
    }
}

/// Reads one line from the shim's status pipe, with a timeout.
fn read_status_line(out: &mut std::process::ChildStdout, timeout: Duration) -> io::Result<String> {
    let deadline = Instant::now() + timeout;
    let mut buf = Vec::new();
    let mut byte = [0u8; 256];
    loop {
        if buf.contains(&b'\n') {
            break;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "shim did not answer",
            ));
        }
        let ready = sys::poll_readable(
            &[out.as_raw_fd()],
            left.as_millis().min(i32::MAX as u128) as i32,
        )?;
        if !ready[0] {
            continue;
        }
        let n = out.read(&mut byte)?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&byte[..n]);
    }
    let s = String::from_utf8_lossy(&buf);
    Ok(s.lines().next().unwrap_or("").to_string())
}
