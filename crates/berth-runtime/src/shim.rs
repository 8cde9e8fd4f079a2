//! The per-container shim: a small single-threaded supervisor process that starts the
//! container with the OCI runtime, owns its stdio (timestamped lines appended to
//! `stdout.log` / `stderr.log`), waits for its exit, records it in `exit.json` and cleans the
//! OCI runtime's state. It detaches from the agent (own session, reparented to init), so the
//! container outlives the agent.
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
use crate::runtime::{ExitStatus, Started};
use crate::sys::{self, Reaped};

/// What the shim needs, written by the agent as `shim.json` in the state directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ShimConfig {
    pub id: String,
    pub runc: PathBuf,
    pub runc_root: PathBuf,
    pub cgroup_path: String,
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
    let cfg_path = dir.join("shim.json");
    let cfg: ShimConfig = serde_json::from_slice(&fs::read(&cfg_path).ctx("reading", &cfg_path)?)
        .map_err(json_err("shim.json"))?;
    let pid_path = dir.join("shim.pid");
    fs::write(&pid_path, std::process::id().to_string()).ctx("writing", &pid_path)?;
    sys::set_child_subreaper().ctx("becoming subreaper for", dir)?;
    let sigfd = sys::sigchld_fd().ctx("creating signalfd for", dir)?;

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

    let container_pid_file = dir.join("container.pid");
    let runc_log = dir.join("runc.log");
    let started_at = now_ms();
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
    let start_error = match status {
        Ok(s) if s.success() => None,
        Ok(s) => Some(runc_error(&runc_log).unwrap_or_else(|| format!("runc run exited with {s}"))),
        Err(e) => Some(format!("running {}: {e}", cfg.runc.display())),
    };
    let pid: Option<i32> = if start_error.is_none() {
        fs::read_to_string(&container_pid_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
    } else {
        None
    };
    let Some(pid) = pid else {
        let reason = start_error.unwrap_or_else(|| "runc wrote no pid file".into());
        for p in &mut pumps {
            p.pump();
        }
        cleanup_runc(&cfg);
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
    cleanup_runc(&cfg);
    Ok(())
}

fn write_exit(dir: &Path, exit: &ExitStatus) -> Result<()> {
    let data = serde_json::to_vec_pretty(exit).map_err(json_err("exit.json"))?;
    write_atomic(&dir.join("exit.json"), &data)
}

/// `runc delete --force`: removes runc's state and the container's cgroup.
pub(crate) fn cleanup_runc(cfg: &ShimConfig) {
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
