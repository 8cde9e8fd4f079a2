//! Reading (and removing) a container's cgroup, on cgroups v1 (including hybrid hosts) and
//! v2, detected at run time.

use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

const ROOT: &str = "/sys/fs/cgroup";
/// v1 memory limit meaning "unlimited" (page-rounded `i64::MAX`), and anything above it.
const V1_UNLIMITED: u64 = 0x7FFF_FFFF_FFFF_F000;

/// Which cgroup hierarchy holds the controllers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    /// One hierarchy per controller (`/sys/fs/cgroup/<controller>/...`), also on hybrid hosts.
    V1,
    /// The unified hierarchy at `/sys/fs/cgroup`.
    V2,
}

/// Detects the layout of this host.
pub fn detect() -> CgroupVersion {
    if Path::new(ROOT).join("cgroup.controllers").exists() {
        CgroupVersion::V2
    } else {
        CgroupVersion::V1
    }
}

/// Resource usage of a cgroup.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupStats {
    /// Total CPU time consumed, nanoseconds.
    pub cpu_usage_ns: u64,
    /// Memory in use, bytes, without the inactive page cache (as `docker stats` counts).
    pub memory_usage_bytes: u64,
    /// Memory limit in bytes; `None` when unlimited.
    pub memory_limit_bytes: Option<u64>,
    /// Number of processes.
    pub pids: u64,
}

fn rel(path: &str) -> &str {
    path.trim_start_matches('/')
}

fn read_u64(p: &Path) -> Option<u64> {
    fs::read_to_string(p).ok()?.trim().parse().ok()
}

fn keyed(p: &Path, key: &str) -> Option<u64> {
    let content = fs::read_to_string(p).ok()?;
    content.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// The directories of a cgroup path (one per v1 controller, or the single v2 one).
pub fn dirs(path: &str) -> Vec<PathBuf> {
    match detect() {
        CgroupVersion::V2 => vec![Path::new(ROOT).join(rel(path))],
        CgroupVersion::V1 => {
            let mut out = Vec::new();
            if let Ok(entries) = fs::read_dir(ROOT) {
                for e in entries.flatten() {
                    // Skip the v2 mount of hybrid hosts and comounted symlinks (cpu,cpuacct).
                    let is_dir = e.file_type().is_ok_and(|t| t.is_dir());
                    if is_dir && e.file_name() != "unified" {
                        out.push(e.path().join(rel(path)));
                    }
                }
            }
            out
        }
    }
}

/// Reads a cgroup's usage. Missing files read as zero.
pub fn stats(path: &str) -> CgroupStats {
    let root = Path::new(ROOT);
    match detect() {
        CgroupVersion::V2 => {
            let d = root.join(rel(path));
            let usage = read_u64(&d.join("memory.current")).unwrap_or(0);
            let inactive = keyed(&d.join("memory.stat"), "inactive_file").unwrap_or(0);
            CgroupStats {
                cpu_usage_ns: keyed(&d.join("cpu.stat"), "usage_usec").unwrap_or(0) * 1000,
                memory_usage_bytes: usage.saturating_sub(inactive),
                memory_limit_bytes: fs::read_to_string(d.join("memory.max"))
                    .ok()
                    .and_then(|s| s.trim().parse().ok()),
                pids: read_u64(&d.join("pids.current")).unwrap_or(0),
            }
        }
        CgroupVersion::V1 => {
            let mem = root.join("memory").join(rel(path));
            let cpu = if root.join("cpuacct").join(rel(path)).exists() {
                root.join("cpuacct").join(rel(path))
            } else {
                root.join("cpu,cpuacct").join(rel(path))
            };
            let usage = read_u64(&mem.join("memory.usage_in_bytes")).unwrap_or(0);
            let inactive = keyed(&mem.join("memory.stat"), "total_inactive_file").unwrap_or(0);
            CgroupStats {
                cpu_usage_ns: read_u64(&cpu.join("cpuacct.usage")).unwrap_or(0),
                memory_usage_bytes: usage.saturating_sub(inactive),
                memory_limit_bytes: read_u64(&mem.join("memory.limit_in_bytes"))
                    .filter(|&l| l < V1_UNLIMITED),
                pids: read_u64(&root.join("pids").join(rel(path)).join("pids.current"))
                    .unwrap_or(0),
            }
        }
    }
}

/// Whether the kernel's OOM killer killed a process of this cgroup.
pub fn oom_killed(path: &str) -> bool {
    let root = Path::new(ROOT);
    match detect() {
        CgroupVersion::V2 => {
            keyed(&root.join(rel(path)).join("memory.events"), "oom_kill").unwrap_or(0) > 0
        }
        CgroupVersion::V1 => {
            keyed(
                &root
                    .join("memory")
                    .join(rel(path))
                    .join("memory.oom_control"),
                "oom_kill",
            )
            .unwrap_or(0)
                > 0
        }
    }
}

fn write(dir: &Path, file: &str, value: &str) -> crate::Result<()> {
    use crate::error::IoContext;
    let p = dir.join(file);
    fs::write(&p, value).ctx("writing", p)
}

/// Creates the cgroup of a task (the parent of its containers' cgroups, e.g.
/// `/berth/<task>` for containers at `/berth/<task>/<container>`) and applies ECS's
/// task-level limits to it: cpu units as shares (and as a hard quota when `cpu_limit_units`
/// is set), memory as a hard limit, memory reservation as a soft one, pids.
pub fn apply_task_limits(path: &str, r: &crate::spec::Resources) -> crate::Result<()> {
    use crate::error::IoContext;
    use crate::spec::{CPU_PERIOD_US, cpu_quota, cpu_shares, mib_to_bytes};
    for d in dirs(path) {
        fs::create_dir_all(&d).ctx("creating cgroup", &d)?;
    }
    let root = Path::new(ROOT);
    match detect() {
        CgroupVersion::V1 => {
            let cpu = root.join("cpu").join(rel(path));
            if r.cpu_units.is_some() {
                write(&cpu, "cpu.shares", &cpu_shares(r.cpu_units).to_string())?;
            }
            if let Some(l) = r.cpu_limit_units {
                write(&cpu, "cpu.cfs_period_us", &CPU_PERIOD_US.to_string())?;
                write(&cpu, "cpu.cfs_quota_us", &cpu_quota(l).to_string())?;
            }
            let mem = root.join("memory").join(rel(path));
            if let Some(m) = r.memory_mib {
                write(&mem, "memory.limit_in_bytes", &mib_to_bytes(m).to_string())?;
            }
            if let Some(m) = r.memory_reservation_mib {
                write(
                    &mem,
                    "memory.soft_limit_in_bytes",
                    &mib_to_bytes(m).to_string(),
                )?;
            }
            if let Some(p) = r.pids_limit {
                write(
                    &root.join("pids").join(rel(path)),
                    "pids.max",
                    &p.to_string(),
                )?;
            }
        }
        CgroupVersion::V2 => {
            let d = root.join(rel(path));
            if r.cpu_units.is_some() {
                // runc's conversion of shares [2, 262144] to weight [1, 10000].
                let shares = cpu_shares(r.cpu_units);
                let weight = 1 + ((shares.saturating_sub(2)) * 9999) / 262142;
                write(&d, "cpu.weight", &weight.to_string())?;
            }
            if let Some(l) = r.cpu_limit_units {
                write(&d, "cpu.max", &format!("{} {CPU_PERIOD_US}", cpu_quota(l)))?;
            }
            if let Some(m) = r.memory_mib {
                write(&d, "memory.max", &mib_to_bytes(m).to_string())?;
            }
            if let Some(m) = r.memory_reservation_mib {
                write(&d, "memory.low", &mib_to_bytes(m).to_string())?;
            }
            if let Some(p) = r.pids_limit {
                write(&d, "pids.max", &p.to_string())?;
            }
        }
    }
    Ok(())
}

/// Removes a cgroup's (empty) directories; missing ones are fine.
pub fn remove(path: &str) {
    if rel(path).is_empty() {
        return;
    }
    for d in dirs(path) {
        let _ = fs::remove_dir(d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_files_parse() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("memory.oom_control");
        fs::write(&p, "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n").unwrap();
        assert_eq!(keyed(&p, "oom_kill"), Some(3));
        assert_eq!(keyed(&p, "missing"), None);
    }
}
