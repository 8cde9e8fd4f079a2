//! Running a command inside a running container, e.g. for health checks: `runc exec`, or, for
//! a container libcontainer made, the shim program's `--exec` mode (libcontainer must not run
//! in this multi-threaded process).
//! The process joins the container's namespaces and cgroup and inherits its environment,
//! user and working directory. Blocking, like the rest of [`Runtime`].

use std::fs;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::error::{Error, Result};
use crate::runtime::{Backend, ContainerState, Runtime};
use crate::shim::{EXEC_FLAG, ShimConfig};

/// How an exec'd command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecOutcome {
    /// It exited with this code.
    Exited(i32),
    /// It ran longer than the timeout and was killed.
    TimedOut,
}

impl Runtime {
    /// Runs `args` inside running container `id`, at most `timeout`; output is discarded.
    pub fn exec(&self, id: &str, args: &[String], timeout: Duration) -> Result<ExecOutcome> {
        let dir = self.state_dir(id)?;
        if !matches!(self.state(id)?, ContainerState::Running { .. }) {
            return Err(Error::Start {
                id: id.to_string(),
                reason: "exec: container is not running".into(),
            });
        }
        let shim_json = dir.join("shim.json");
        let shim: ShimConfig = fs::read(&shim_json)
            .ok()
            .and_then(|d| serde_json::from_slice(&d).ok())
            .ok_or_else(|| Error::NotFound(id.to_string()))?;
        let mut command = match shim.backend {
            Backend::Runc => {
                let mut c = Command::new(&shim.runc);
                c.arg("--root")
                    .arg(&shim.runc_root)
                    .arg("exec")
                    .arg(&shim.id);
                c
            }
            Backend::Libcontainer => {
                let mut c = Command::new(self.shim_program());
                c.args(self.shim_args()).arg(EXEC_FLAG).arg(&dir);
                c
            }
        };
        let mut child = command
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| Error::Start {
                id: id.to_string(),
                reason: format!("exec: spawning {:?}: {e}", command.get_program()),
            })?;
        let deadline = Instant::now() + timeout;
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Ok(ExecOutcome::Exited(status.code().unwrap_or(-1))),
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Ok(ExecOutcome::TimedOut);
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(10)),
                Err(e) => {
                    return Err(Error::Start {
                        id: id.to_string(),
                        reason: format!("exec: waiting for {:?}: {e}", command.get_program()),
                    });
                }
            }
        }
    }
}
