//! The per-container shim: a small single-threaded supervisor process that starts the
//! container with the OCI runtime (youki's `libcontainer` in this very process, or the `runc`
//! binary: [`crate::Backend`], recorded in `shim.json`), owns its stdio (timestamped lines appended to
//! `stdout.log` / `stderr.log`), waits for its exit, records it in `exit.json` and cleans the
//! OCI runtime's state. It detaches from the agent (own session, reparented to init), so the
//! container outlives the agent.
//!
//! `<shim program> --exec <state dir> <command...>` is the other mode, for
//! [`crate::Runtime::exec`] on a container libcontainer made: it runs the command inside the
//! container with libcontainer (in this single-threaded process, not in the agent) and exits
//! with the command's status.
//!
//! Protocol with the agent ([`crate::Runtime::create_and_start`]): the agent writes
//! `shim.json` into the container's state directory and spawns `<shim program> <state dir>`
//! with stdout on a pipe; the shim answers one line on that pipe, `started <pid>` or
//! `failed <reason>`, then lets go of it.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::cgroup;
use crate::error::{IoContext, Result, json_err};
use crate::image::write_atomic;
use crate::runtime::{Backend, ExitStatus, Started};
use crate::sys::{self, Reaped};

/// What the shim needs, written by the agent as `shim.json` in the state directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ShimConfig {
    pub id: String,
    pub runc: PathBuf,
    pub runc_root: PathBuf,
    pub cgroup_path: String,
    /// Which OCI runtime made the container; shims written before the choice existed used runc.
    #[serde(default = "runc_backend")]
    pub backend: Backend,
    /// libcontainer's state root (`<state root>/.libcontainer`).
    #[serde(default)]
    pub libcontainer_root: PathBuf,
}

fn runc_backend() -> Backend {
    Backend::Runc
}

/// Longest line kept whole; longer output is split.
const MAX_LINE: usize = 16 * 1024;

pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// One line of a container's `stdout.log` or `stderr.log`: `<unix ms> <text>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// When the shim read it, milliseconds since the epoch.
    pub timestamp_ms: u64,
    /// The line without its newline.
    pub text: String,
}

/// Parses a log file written by the shim.
pub fn parse_log(content: &str) -> Vec<LogLine> {
    content
        .lines()
        .filter_map(|l| {
            let (ts, text) = l.split_once(' ').unwrap_or((l, ""));
            Some(LogLine {
                timestamp_ms: ts.parse().ok()?,
                text: text.to_string(),
            })
        })
        .collect()
}

/// Copies one of the container's output pipes into its log file, line by line.
struct LogPump {
    pipe: Option<OwnedFd>,
    file: File,
    partial: Vec<u8>,
}

impl LogPump {
    fn fd(&self) -> i32 {
        self.pipe.as_ref().map_or(-1, AsRawFd::as_raw_fd)
    }

    fn emit(&mut self, line: &[u8]) {
        let mut out = Vec::with_capacity(line.len() + 16);
        out.extend_from_slice(now_ms().to_string().as_bytes());
        out.push(b' ');
        out.extend_from_slice(line);
        out.push(b'\n');
        let _ = self.file.write_all(&out);
    }

    /// Reads what is available; returns false at end of file.
    fn pump(&mut self) -> bool {
        let Some(pipe) = &self.pipe else { return false };
        let mut buf = [0u8; 64 * 1024];
        let mut f = File::from(match pipe.try_clone() {
            Ok(fd) => fd,
            Err(_) => return false,
        });
        loop {
            match f.read(&mut buf) {
                Ok(0) => {
                    self.finish();
                    return false;
                }
                Ok(n) => {
                    self.partial.extend_from_slice(&buf[..n]);
                    while let Some(pos) = self.partial.iter().position(|&b| b == b'\n') {
                        let line: Vec<u8> = self.partial.drain(..=pos).collect();
                        self.emit(&line[..line.len() - 1]);
                    }
                    while self.partial.len() >= MAX_LINE {
                        let chunk: Vec<u8> = self.partial.drain(..MAX_LINE).collect();
                        self.emit(&chunk);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return true, // WouldBlock: nothing more for now.
            }
        }
    }

    fn finish(&mut self) {
        if !self.partial.is_empty() {
            let rest = std::mem::take(&mut self.partial);
            self.emit(&rest);
        }
        self.pipe = None;
    }
}

/// Entry point of the hidden `berth shim <state dir>` subcommand. Must run before any other
/// thread exists (no tokio runtime): it forks. Never returns.
pub fn shim_main<I, S>(args: I) -> !
where
    I: IntoIterator<Item = S>,
    S: Into<std::ffi::OsString>,
{
    let args: Vec<std::ffi::OsString> = args.into_iter().map(Into::into).collect();
    if args.first().is_some_and(|a| a == EXEC_FLAG) {
        std::process::exit(exec_main(&args[1..]));
    }
    let Some(dir) = args
        .iter()
        .rev()
        .find(|a| !a.to_string_lossy().starts_with('-'))
        .map(PathBuf::from)
    else {
        eprintln!("berth shim: usage: shim <container state dir>");
        std::process::exit(2);
    };
    // Own session, then fork so that the supervisor is not a session leader and is adopted
    // by init when the first process exits right away (the agent waits for it).
    if let Err(e) = sys::setsid() {
        eprintln!("berth shim: setsid: {e}");
    }
    match sys::fork() {
        Ok(0) => {}
        Ok(_) => std::process::exit(0),
        Err(e) => {
            let _ = writeln!(io::stdout(), "failed fork: {e}");
            std::process::exit(1);
        }
    }
    let code = match supervise(&dir) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("berth shim: {e}");
            report(&format!("failed {e}"));
            1
        }
    };
    std::process::exit(code)
}

/// The first argument of the shim's exec mode.
pub(crate) const EXEC_FLAG: &str = "--exec";

/// `--exec <state dir> <command...>`: runs the command in the running container with
/// libcontainer and returns its exit status (128 + signal when killed; 127 when it could
/// not be started, with the reason on stderr).
fn exec_main(args: &[std::ffi::OsString]) -> i32 {
    let [dir, command @ ..] = args else {
        eprintln!("berth shim: usage: shim --exec <container state dir> <command...>");
        return 2;
    };
    let command: Vec<String> = command
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    match exec_libcontainer(Path::new(dir), command) {
        Ok(Reaped::Exited(code)) => code,
        Ok(Reaped::Signaled(sig)) => 128 + sig,
        Err(reason) => {
            eprintln!("berth shim: exec: {reason}");
            127
        }
    }
}

fn exec_libcontainer(dir: &Path, command: Vec<String>) -> std::result::Result<Reaped, String> {
    use libcontainer::container::builder::ContainerBuilder;
    use libcontainer::syscall::syscall::SyscallType;

    if command.is_empty() {
        return Err("no command".into());
    }
    let dir = std::path::absolute(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let cfg_path = dir.join("shim.json");
    let cfg: ShimConfig = fs::read(&cfg_path)
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok())
        .ok_or_else(|| format!("no readable {}", cfg_path.display()))?;
    let root = std::path::absolute(&cfg.libcontainer_root)
        .map_err(|e| format!("{}: {e}", cfg.libcontainer_root.display()))?;
    let null = |write: bool| {
        File::options()
            .read(!write)
            .write(write)
            .open("/dev/null")
            .map_err(|e| format!("opening /dev/null: {e}"))
    };
    // The tenant keeps the container's environment but not its user and working directory
    // (as `runc exec` does): those come from the bundle.
    let bundle_path = dir.join("config.json");
    let bundle: serde_json::Value = fs::read(&bundle_path)
        .ok()
        .and_then(|d| serde_json::from_slice(&d).ok())
        .ok_or_else(|| format!("no readable {}", bundle_path.display()))?;
    let process = &bundle["process"];
    let id_of = |v: &serde_json::Value| v.as_u64().and_then(|n| u32::try_from(n).ok());
    let additional_gids: Vec<u32> = process["user"]["additionalGids"]
        .as_array()
        .map(|a| a.iter().filter_map(id_of).collect())
        .unwrap_or_default();
    let lc_err = |e: libcontainer::error::LibcontainerError| libcontainer_reason(&error_chain(&e));
    let pid = ContainerBuilder::new(cfg.id.clone(), SyscallType::Linux)
        .with_root_path(root)
        .map_err(lc_err)?
        .with_stdin(null(false)?)
        .with_stdout(null(true)?)
        .with_stderr(null(true)?)
        .as_tenant()
        .with_container_args(command)
        .with_user(id_of(&process["user"]["uid"]))
        .with_group(id_of(&process["user"]["gid"]))
        .with_additional_gids(additional_gids)
        .with_cwd(process["cwd"].as_str().map(PathBuf::from))
        .with_detach(true)
        .build()
        .map_err(lc_err)?;
    sys::wait_pid(pid.as_raw()).map_err(|e| format!("waiting for {pid}: {e}"))
}

/// Writes the one status line to the agent, then detaches stdout from its pipe.
fn report(line: &str) {
    let mut out = io::stdout();
    let _ = writeln!(out, "{}", line.replace('\n', " "));
    let _ = out.flush();
    if let Ok(null) = File::options().write(true).open("/dev/null") {
        let _ = sys::dup2(null.as_raw_fd(), 1);
    }
}

fn runc_error(log: &Path) -> Option<String> {
    let content = fs::read_to_string(log).ok()?;
    content.lines().rev().find_map(|l| {
        let v: serde_json::Value = serde_json::from_str(l).ok()?;
        (v["level"] == "error")
            .then(|| v["msg"].as_str().map(str::to_string))
            .flatten()
    })
}

fn supervise(dir: &Path) -> Result<()> {
    // Absolute paths only from here: libcontainer may change this process's working directory.
    let dir = &std::path::absolute(dir).ctx("resolving", dir)?;
    let cfg_path = dir.join("shim.json");
    let mut cfg: ShimConfig =
        serde_json::from_slice(&fs::read(&cfg_path).ctx("reading", &cfg_path)?)
            .map_err(json_err("shim.json"))?;
    for p in [&mut cfg.runc_root, &mut cfg.libcontainer_root] {
        if !p.as_os_str().is_empty() {
            *p = std::path::absolute(&*p).ctx("resolving", &*p)?;
        }
    }
    let pid_path = dir.join("shim.pid");
    fs::write(&pid_path, std::process::id().to_string()).ctx("writing", &pid_path)?;
    sys::set_child_subreaper().ctx("becoming subreaper for", dir)?;

    let open_log = |name: &str| -> Result<File> {
        let p = dir.join(name);
        OpenOptions::new()
            .create(true)
            .append(true)
            .open(&p)
            .ctx("opening", p)
    };
    let (out_r, out_w) = sys::pipe().ctx("creating stdout pipe for", dir)?;
    let (err_r, err_w) = sys::pipe().ctx("creating stderr pipe for", dir)?;
    for fd in [&out_r, &err_r] {
        sys::set_nonblocking(fd.as_raw_fd()).ctx("configuring pipe for", dir)?;
    }
    let mut pumps = [
        LogPump {
            pipe: Some(out_r),
            file: open_log("stdout.log")?,
            partial: Vec::new(),
        },
        LogPump {
            pipe: Some(err_r),
            file: open_log("stderr.log")?,
            partial: Vec::new(),
        },
    ];

    let started_at = now_ms();
    let started = match cfg.backend {
        Backend::Runc => start_runc(&cfg, dir, out_w, err_w),
        Backend::Libcontainer => start_libcontainer(&cfg, dir, out_w, err_w),
    };
    // Only now: the container must not inherit a blocked SIGCHLD (libcontainer clones without
    // resetting the signal mask). A child that exited in between stays a zombie until reaped.
    let sigfd = sys::sigchld_fd().ctx("creating signalfd for", dir)?;
    let (pid, start_error) = match started {
        Ok(pid) => (Some(pid), None),
        Err(reason) => (None, Some(reason)),
    };
    let Some(pid) = pid else {
        let reason = start_error.unwrap_or_else(|| "the OCI runtime reported no pid".into());
        for p in &mut pumps {
            p.pump();
        }
        cleanup(&cfg);
        let exit = ExitStatus {
            exit_code: 128,
            signal: None,
            oom_killed: false,
            started_at_ms: started_at,
            finished_at_ms: now_ms(),
            error: Some(reason.clone()),
        };
        write_exit(dir, &exit)?;
        report(&format!("failed {reason}"));
        return Ok(());
    };
    let started = Started {
        pid,
        shim_pid: std::process::id() as i32,
        started_at_ms: started_at,
    };
    let data = serde_json::to_vec(&started).map_err(json_err("started.json"))?;
    write_atomic(&dir.join("started.json"), &data)?;
    report(&format!("started {pid}"));

    let mut exited: Option<Reaped> = None;
    let mut drain_deadline: Option<Instant> = None;
    loop {
        // Reap first: the container may have exited before we looked.
        while let Some((p, how)) = sys::reap_any() {
            if p == pid {
                exited = Some(how);
                drain_deadline = Some(Instant::now() + Duration::from_secs(2));
            }
        }
        let open = pumps.iter().any(|p| p.pipe.is_some());
        if exited.is_some() && (!open || drain_deadline.is_some_and(|d| Instant::now() >= d)) {
            break;
        }
        let timeout = if exited.is_some() { 100 } else { -1 };
        let fds = [sigfd.as_raw_fd(), pumps[0].fd(), pumps[1].fd()];
        let ready = sys::poll_readable(&fds, timeout).ctx("polling in", dir)?;
        if ready[0] {
            sys::drain_fd(sigfd.as_raw_fd());
        }
        for (i, p) in pumps.iter_mut().enumerate() {
            if ready[i + 1] && !p.pump() {
                p.pipe = None;
            }
        }
    }
    for p in &mut pumps {
        p.pump();
        p.finish();
    }
    let (exit_code, signal) = match exited {
        Some(Reaped::Exited(c)) => (c, None),
        Some(Reaped::Signaled(s)) => (128 + s, Some(s)),
        None => (-1, None),
    };
    let exit = ExitStatus {
        exit_code,
        signal,
        oom_killed: cgroup::oom_killed(&cfg.cgroup_path),
        started_at_ms: started_at,
        finished_at_ms: now_ms(),
        error: None,
    };
    write_exit(dir, &exit)?;
    cleanup(&cfg);
    Ok(())
}

/// `runc run --detach`: the container's init process ends up a child of this subreaper.
fn start_runc(
    cfg: &ShimConfig,
    dir: &Path,
    out_w: OwnedFd,
    err_w: OwnedFd,
) -> std::result::Result<i32, String> {
    let container_pid_file = dir.join("container.pid");
    let runc_log = dir.join("runc.log");
    let status = Command::new(&cfg.runc)
        .arg("--root")
        .arg(&cfg.runc_root)
        .arg("--log")
        .arg(&runc_log)
        .arg("--log-format")
        .arg("json")
        .arg("run")
        .arg("--detach")
        .arg("--bundle")
        .arg(dir)
        .arg("--pid-file")
        .arg(&container_pid_file)
        .arg(&cfg.id)
        .stdin(Stdio::null())
        .stdout(Stdio::from(out_w))
        .stderr(Stdio::from(err_w))
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => {
            return Err(
                runc_error(&runc_log).unwrap_or_else(|| format!("runc run exited with {s}"))
            );
        }
        Err(e) => return Err(format!("running {}: {e}", cfg.runc.display())),
    }
    fs::read_to_string(&container_pid_file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .ok_or_else(|| "runc wrote no pid file".to_string())
}

/// An error and its sources, `outer: inner: ...` (libcontainer's errors are layered).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

/// libcontainer's reason for a failed start, with runc's wording where the agent (and ECS's
/// users) know it: a missing executable is only reported as "not found in $PATH" by
/// libcontainer's check before exec.
fn libcontainer_reason(chain: &str) -> String {
    const PREFIX: &str = "executable '";
    const SUFFIX: &str = "' not found in $PATH";
    if let Some(start) = chain.find(PREFIX)
        && let Some(len) = chain[start + PREFIX.len()..].find(SUFFIX)
    {
        let exe = &chain[start + PREFIX.len()..start + PREFIX.len() + len];
        return if exe.contains('/') {
            format!("exec: \"{exe}\": stat {exe}: no such file or directory")
        } else {
            format!("exec: \"{exe}\": executable file not found in $PATH")
        };
    }
    chain.to_string()
}

/// Creates and starts the container with youki's `libcontainer` in this process. Only sound
/// because the shim is single-threaded: libcontainer clones and runs Rust code in the child
/// (a lock held by another thread would never be released there) and changes this process's
/// working directory, so every path it gets is absolute. The container's init process is a
/// child of this process.
fn start_libcontainer(
    cfg: &ShimConfig,
    dir: &Path,
    out_w: OwnedFd,
    err_w: OwnedFd,
) -> std::result::Result<i32, String> {
    use libcontainer::container::builder::ContainerBuilder;
    use libcontainer::syscall::syscall::SyscallType;

    let absolute = |p: &Path| std::path::absolute(p).map_err(|e| format!("{}: {e}", p.display()));
    let bundle = absolute(dir)?;
    let root = absolute(&cfg.libcontainer_root)?;
    fs::create_dir_all(&root).map_err(|e| format!("creating {}: {e}", root.display()))?;
    let stdin = File::open("/dev/null").map_err(|e| format!("opening /dev/null: {e}"))?;
    let lc_err = |e: libcontainer::error::LibcontainerError| libcontainer_reason(&error_chain(&e));
    let mut container = ContainerBuilder::new(cfg.id.clone(), SyscallType::Linux)
        .with_root_path(root)
        .map_err(lc_err)?
        .with_stdin(stdin)
        .with_stdout(out_w)
        .with_stderr(err_w)
        .validate_id()
        .map_err(lc_err)?
        .as_init(bundle)
        .with_systemd(false)
        .with_detach(true)
        .build()
        .map_err(lc_err)?;
    let pid = container
        .pid()
        .map(|p| p.as_raw())
        .ok_or_else(|| "libcontainer reported no pid".to_string())?;
    container.start().map_err(lc_err)?;
    Ok(pid)
}

fn write_exit(dir: &Path, exit: &ExitStatus) -> Result<()> {
    let data = serde_json::to_vec_pretty(exit).map_err(json_err("exit.json"))?;
    write_atomic(&dir.join("exit.json"), &data)
}

/// Whether the OCI runtime still has state for the container.
pub(crate) fn has_runtime_state(cfg: &ShimConfig) -> bool {
    match cfg.backend {
        Backend::Runc => cfg.runc_root.join(&cfg.id).exists(),
        Backend::Libcontainer => cfg.libcontainer_root.join(&cfg.id).exists(),
    }
}

/// Removes the OCI runtime's state of a container that no longer runs, and its cgroup.
/// Called by the shim and by the agent (multi-threaded): the libcontainer state is only
/// files, so it is removed without calling into libcontainer.
pub(crate) fn cleanup(cfg: &ShimConfig) {
    match cfg.backend {
        Backend::Runc => cleanup_runc(cfg),
        Backend::Libcontainer => {
            let state = cfg.libcontainer_root.join(&cfg.id);
            if state.exists() {
                let _ = fs::remove_dir_all(&state);
            }
            cgroup::remove(&cfg.cgroup_path);
        }
    }
}

/// `runc delete --force`: removes runc's state and the container's cgroup.
fn cleanup_runc(cfg: &ShimConfig) {
    let _ = Command::new(&cfg.runc)
        .arg("--root")
        .arg(&cfg.runc_root)
        .args(["delete", "--force"])
        .arg(&cfg.id)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    cgroup::remove(&cfg.cgroup_path);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn libcontainer_reasons_use_runc_wording_for_missing_executables() {
        let lc = "failed to create container: exec process failed with error error in executing process : executable '/no/such/binary' not found in $PATH";
        assert_eq!(
            libcontainer_reason(lc),
            "exec: \"/no/such/binary\": stat /no/such/binary: no such file or directory"
        );
        assert_eq!(
            libcontainer_reason("x: executable 'nope' not found in $PATH"),
            "exec: \"nope\": executable file not found in $PATH"
        );
        assert_eq!(libcontainer_reason("other failure"), "other failure");
    }

    #[test]
    fn old_shim_configs_mean_runc() {
        let cfg: ShimConfig = serde_json::from_str(
            r#"{"id":"c","runc":"runc","runc_root":"/r","cgroup_path":"/berth/c"}"#,
        )
        .unwrap();
        assert_eq!(cfg.backend, Backend::Runc);
    }

    #[test]
    fn log_lines_parse() {
        let l = parse_log("1700000000000 hello world\n1700000000001 \n");
        assert_eq!(l.len(), 2);
        assert_eq!(
            l[0],
            LogLine {
                timestamp_ms: 1_700_000_000_000,
                text: "hello world".into()
            }
        );
        assert_eq!(l[1].text, "");
    }
}
