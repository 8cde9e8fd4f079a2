//! [`ContainerSpec`], the plain description of a container the agent builds from a task
//! definition, and its translation into an OCI bundle (`config.json`).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::error::{Error, IoContext, Result, json_err};
use crate::image::ImageConfig;

/// `PATH` set when neither the image nor the task gives one (Docker's default).
pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
/// The CFS period used for hard CPU limits, in microseconds.
pub const CPU_PERIOD_US: u64 = 100_000;

/// How the container gets its network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NetworkMode {
    /// A new, empty network namespace (loopback only) — ECS's `none`, or a namespace the
    /// network code sets up afterwards.
    #[default]
    New,
    /// The host's network namespace (ECS's `host`).
    Host,
    /// Join an existing network namespace (`/var/run/netns/<name>`, `/proc/<pid>/ns/net`):
    /// `awsvpc` tasks and containers sharing a task's namespace.
    Join(PathBuf),
}

/// A bind mount from the host (a host path or a task-scoped volume's directory).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// Host path.
    pub source: PathBuf,
    /// Absolute path inside the container.
    pub destination: String,
    /// Mounted read-only.
    #[serde(default)]
    pub read_only: bool,
}

/// A resource limit (ECS's `ulimits`: `name` is `nofile`, `nproc`, `core`, ...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ulimit {
    /// Name without `RLIMIT_`, lowercase as in ECS.
    pub name: String,
    /// Soft limit.
    pub soft: u64,
    /// Hard limit.
    pub hard: u64,
}

/// Cgroup resources in ECS's units.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Resources {
    /// ECS `cpu` units (1024 per core); becomes cpu shares (at least 2).
    #[serde(default)]
    pub cpu_units: Option<u32>,
    /// Hard CPU limit in units (1024 per core): a CFS quota over [`CPU_PERIOD_US`].
    #[serde(default)]
    pub cpu_limit_units: Option<u32>,
    /// ECS `memory` (hard limit), MiB.
    #[serde(default)]
    pub memory_mib: Option<u64>,
    /// ECS `memoryReservation` (soft limit), MiB.
    #[serde(default)]
    pub memory_reservation_mib: Option<u64>,
    /// Maximum number of processes.
    #[serde(default)]
    pub pids_limit: Option<i64>,
}

/// Everything needed to run one container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerSpec {
    /// Unique id (the runtime id ECS reports); `[A-Za-z0-9_.-]`, at most 128 characters.
    pub id: String,
    /// The root filesystem (usually from [`crate::Runtime::prepare_rootfs`]).
    pub rootfs: PathBuf,
    /// The process: entryPoint + command resolved against the image ([`resolve_args`]).
    pub args: Vec<String>,
    /// Environment as `KEY=value` ([`merge_env`]).
    pub env: Vec<String>,
    /// Working directory; `/` when empty.
    #[serde(default)]
    pub working_dir: String,
    /// `user`, `uid`, `user:group` or `uid:gid`, resolved against the rootfs' /etc/passwd
    /// and /etc/group; root when empty.
    #[serde(default)]
    pub user: String,
    /// Hostname; the first 12 characters of the id when empty.
    #[serde(default)]
    pub hostname: String,
    /// ECS `readonlyRootFilesystem`.
    #[serde(default)]
    pub readonly_rootfs: bool,
    /// Bind mounts.
    #[serde(default)]
    pub mounts: Vec<Mount>,
    /// Resource limits.
    #[serde(default)]
    pub ulimits: Vec<Ulimit>,
    /// Network namespace.
    #[serde(default)]
    pub network: NetworkMode,
    /// Cgroup path relative to the cgroup root(s); `/berth/<id>` when empty. A task's
    /// containers can share a parent (`/berth/<task>/<container>`).
    #[serde(default)]
    pub cgroup_path: String,
    /// Cgroup limits.
    #[serde(default)]
    pub resources: Resources,
    /// Labels (ECS `dockerLabels`), written as OCI annotations.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Content of /etc/hosts; a localhost + hostname file when `None`.
    #[serde(default)]
    pub etc_hosts: Option<String>,
    /// Content of /etc/resolv.conf; the host's when `None`.
    #[serde(default)]
    pub resolv_conf: Option<String>,
}

impl ContainerSpec {
    /// A spec for `id` on `rootfs` that runs the image's defaults (entrypoint, cmd, env,
    /// working dir, user).
    pub fn from_image(
        id: impl Into<String>,
        rootfs: impl Into<PathBuf>,
        image: &ImageConfig,
    ) -> Result<ContainerSpec> {
        Ok(ContainerSpec {
            id: id.into(),
            rootfs: rootfs.into(),
            args: resolve_args(image, None, None)?,
            env: merge_env(image.env.as_deref().unwrap_or_default(), &[]),
            working_dir: image.working_dir.clone().unwrap_or_default(),
            user: image.user.clone().unwrap_or_default(),
            ..ContainerSpec::default()
        })
    }

    /// The effective cgroup path.
    pub fn effective_cgroup_path(&self) -> String {
        if self.cgroup_path.is_empty() {
            format!("/berth/{}", self.id)
        } else {
            self.cgroup_path.clone()
        }
    }

    /// The effective hostname.
    pub fn effective_hostname(&self) -> String {
        if self.hostname.is_empty() {
            self.id.chars().take(12).collect()
        } else {
            self.hostname.clone()
        }
    }
}

/// Checks a container id.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && !id.starts_with('.')
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidSpec(format!("invalid container id {id:?}")))
    }
}

/// The process arguments as Docker computes them: the task's `entryPoint` replaces the
/// image's ENTRYPOINT and then also drops the image's CMD; the task's `command` replaces CMD.
pub fn resolve_args(
    image: &ImageConfig,
    entry_point: Option<&[String]>,
    command: Option<&[String]>,
) -> Result<Vec<String>> {
    let entry: Vec<String> = match entry_point {
        Some(e) => e.to_vec(),
        None => image.entrypoint.clone().unwrap_or_default(),
    };
    let cmd: Vec<String> = match (command, entry_point) {
        (Some(c), _) => c.to_vec(),
        (None, Some(_)) => Vec::new(),
        (None, None) => image.cmd.clone().unwrap_or_default(),
    };
    let args: Vec<String> = entry.into_iter().chain(cmd).collect();
    if args.is_empty() {
        return Err(Error::InvalidSpec("no command specified".into()));
    }
    Ok(args)
}

/// The image's environment overridden by the task's (`KEY=value` each), in order, with a
/// default `PATH`.
pub fn merge_env(image_env: &[String], overrides: &[(String, String)]) -> Vec<String> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: &str| match out.iter_mut().find(|(ok, _)| ok == k) {
        Some(e) => e.1 = v.to_string(),
        None => out.push((k.to_string(), v.to_string())),
    };
    for e in image_env {
        let (k, v) = e.split_once('=').unwrap_or((e, ""));
        set(k, v);
    }
    for (k, v) in overrides {
        set(k, v);
    }
    if !out.iter().any(|(k, _)| k == "PATH") {
        out.insert(0, ("PATH".into(), DEFAULT_PATH.into()));
    }
    out.into_iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// ECS cpu units → cgroup cpu shares (at least 2, as the ECS agent does).
pub fn cpu_shares(units: Option<u32>) -> u64 {
    u64::from(units.unwrap_or(0)).max(2)
}

/// A hard CPU limit in units → CFS quota (µs per [`CPU_PERIOD_US`]); at least 1 ms.
pub fn cpu_quota(limit_units: u32) -> i64 {
    let q = u64::from(limit_units) * CPU_PERIOD_US / 1024;
    q.max(1000) as i64
}

/// MiB → bytes.
pub fn mib_to_bytes(mib: u64) -> i64 {
    (mib.saturating_mul(1024 * 1024)).min(i64::MAX as u64) as i64
}

/// A user resolved against the container's /etc/passwd and /etc/group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedUser {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary groups (from /etc/group memberships).
    pub additional_gids: Vec<u32>,
    /// Home directory (`/` when unknown).
    pub home: String,
}

fn read_db(rootfs: &Path, file: &str) -> Vec<Vec<String>> {
    // The file is read through the rootfs path; a symlinked /etc/passwd pointing outside is
    // not followed out (it is resolved against the host, so refuse symlinks).
    let p = rootfs.join(file);
    match fs::symlink_metadata(&p) {
        Ok(m) if m.is_file() => {}
        _ => return Vec::new(),
    }
    fs::read_to_string(&p)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| l.split(':').map(str::to_string).collect())
        .collect()
}

/// Resolves `user` as Docker does: `name`, `uid`, `name:group`, `uid:gid` (each part a name
/// or a number). A name that is not found is an error; a numeric uid need not exist.
pub fn resolve_user(rootfs: &Path, user: &str) -> Result<ResolvedUser> {
    let passwd = read_db(rootfs, "etc/passwd");
    let group = read_db(rootfs, "etc/group");
    let (u, g) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let u = if u.is_empty() { "0" } else { u };
    let entry = passwd
        .iter()
        .find(|e| e.len() >= 4 && (e[0] == u || (u.parse::<u32>().is_ok() && e[2] == u)));
    let (uid, mut gid, name, home) = match (entry, u.parse::<u32>()) {
        (Some(e), _) => (
            e[2].parse::<u32>()
                .map_err(|_| Error::UserNotFound(user.to_string()))?,
            e[3].parse::<u32>().unwrap_or(0),
            Some(e[0].clone()),
            e.get(5)
                .cloned()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| "/".into()),
        ),
        (None, Ok(uid)) => (uid, 0, None, "/".into()),
        (None, Err(_)) => return Err(Error::UserNotFound(user.to_string())),
    };
    if let Some(g) = g.filter(|g| !g.is_empty()) {
        gid = match group.iter().find(|e| e.len() >= 3 && e[0] == g) {
            Some(e) => e[2]
                .parse()
                .map_err(|_| Error::UserNotFound(user.to_string()))?,
            None => g
                .parse()
                .map_err(|_| Error::UserNotFound(format!("{user} (group {g})")))?,
        };
    }
    let mut additional_gids = Vec::new();
    if let (Some(name), None) = (&name, g) {
        for e in &group {
            if e.len() >= 4
                && e[3].split(',').any(|m| m == name)
                && let Ok(id) = e[2].parse::<u32>()
                && id != gid
                && !additional_gids.contains(&id)
            {
                additional_gids.push(id);
            }
        }
    }
    Ok(ResolvedUser {
        uid,
        gid,
        additional_gids,
        home,
    })
}

/// Docker's default capabilities.
const CAPABILITIES: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

const MASKED_PATHS: &[&str] = &[
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

const READONLY_PATHS: &[&str] = &[
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

fn rlimit_name(name: &str) -> Result<String> {
    const KNOWN: &[&str] = &[
        "core",
        "cpu",
        "data",
        "fsize",
        "locks",
        "memlock",
        "msgqueue",
        "nice",
        "nofile",
        "nproc",
        "rss",
        "rtprio",
        "rttime",
        "sigpending",
        "stack",
        "as",
    ];
    let lower = name.to_ascii_lowercase();
    if KNOWN.contains(&lower.as_str()) {
        Ok(format!("RLIMIT_{}", lower.to_ascii_uppercase()))
    } else {
        Err(Error::InvalidSpec(format!("unknown ulimit {name:?}")))
    }
}

/// Builds the OCI runtime `config.json` for `spec`. `files` is the directory holding the
/// generated `hosts`, `hostname` and `resolv.conf` that are bind-mounted into the container.
pub fn oci_config(spec: &ContainerSpec, user: &ResolvedUser, files: &Path) -> Result<Value> {
    validate_id(&spec.id)?;
    if spec.args.is_empty() {
        return Err(Error::InvalidSpec("no command specified".into()));
    }
    let mut env = spec.env.clone();
    if !env.iter().any(|e| e.starts_with("PATH=")) {
        env.insert(0, format!("PATH={DEFAULT_PATH}"));
    }
    if !env.iter().any(|e| e.starts_with("HOSTNAME=")) {
        env.push(format!("HOSTNAME={}", spec.effective_hostname()));
    }
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", user.home));
    }
    let cwd = if spec.working_dir.is_empty() {
        "/".to_string()
    } else {
        spec.working_dir.clone()
    };
    if !cwd.starts_with('/') {
        return Err(Error::InvalidSpec(format!(
            "working directory {cwd:?} is not absolute"
        )));
    }
    let rlimits: Vec<Value> = spec
        .ulimits
        .iter()
        .map(|u| Ok(json!({"type": rlimit_name(&u.name)?, "soft": u.soft, "hard": u.hard})))
        .collect::<Result<_>>()?;

    let mut mounts = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts", "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/shm", "type": "tmpfs", "source": "shm", "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", "ro"]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}),
    ];
    if spec.network == NetworkMode::Host {
        // As Docker does: without a network namespace of its own, sysfs is bind-mounted.
        mounts[5] = json!({"destination": "/sys", "type": "bind", "source": "/sys", "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
    }
    for (name, dest) in [
        ("hosts", "/etc/hosts"),
        ("hostname", "/etc/hostname"),
        ("resolv.conf", "/etc/resolv.conf"),
    ] {
        mounts.push(json!({"destination": dest, "type": "bind", "source": files.join(name), "options": ["rbind", "rprivate"]}));
    }
    for m in &spec.mounts {
        if !m.destination.starts_with('/') {
            return Err(Error::InvalidSpec(format!(
                "mount destination {:?} is not absolute",
                m.destination
            )));
        }
        let mut options = vec!["rbind", "rprivate"];
        if m.read_only {
            options.push("ro");
        }
        mounts.push(json!({"destination": m.destination, "type": "bind", "source": m.source, "options": options}));
    }

    let mut namespaces = vec![
        json!({"type": "pid"}),
        json!({"type": "ipc"}),
        json!({"type": "uts"}),
        json!({"type": "mount"}),
    ];
    match &spec.network {
        NetworkMode::New => namespaces.push(json!({"type": "network"})),
        NetworkMode::Host => {}
        NetworkMode::Join(path) => namespaces.push(json!({"type": "network", "path": path})),
    }

    let r = &spec.resources;
    let mut resources = json!({
        "devices": [{"allow": false, "access": "rwm"}],
        "cpu": {"shares": cpu_shares(r.cpu_units)},
    });
    if let Some(limit) = r.cpu_limit_units {
        resources["cpu"]["quota"] = json!(cpu_quota(limit));
        resources["cpu"]["period"] = json!(CPU_PERIOD_US);
    }
    let mut memory = serde_json::Map::new();
    if let Some(m) = r.memory_mib {
        memory.insert("limit".into(), json!(mib_to_bytes(m)));
    }
    if let Some(m) = r.memory_reservation_mib {
        memory.insert("reservation".into(), json!(mib_to_bytes(m)));
    }
    if let (Some(hard), Some(soft)) = (r.memory_mib, r.memory_reservation_mib)
        && soft > hard
    {
        return Err(Error::InvalidSpec(format!(
            "memory reservation ({soft} MiB) is greater than the memory limit ({hard} MiB)"
        )));
    }
    if !memory.is_empty() {
        resources["memory"] = Value::Object(memory);
    }
    if let Some(p) = r.pids_limit {
        resources["pids"] = json!({"limit": p});
    }

    let caps: Vec<&str> = CAPABILITIES.to_vec();
    let mut process = json!({
        "terminal": false,
        "user": {"uid": user.uid, "gid": user.gid},
        "args": spec.args,
        "env": env,
        "cwd": cwd,
        "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
        "noNewPrivileges": false,
    });
    if !user.additional_gids.is_empty() {
        process["user"]["additionalGids"] = json!(user.additional_gids);
    }
    if !rlimits.is_empty() {
        process["rlimits"] = Value::Array(rlimits);
    }
    Ok(json!({
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": spec.rootfs, "readonly": spec.readonly_rootfs},
        "hostname": spec.effective_hostname(),
        "mounts": mounts,
        "annotations": spec.labels,
        "linux": {
            "namespaces": namespaces,
            "cgroupsPath": spec.effective_cgroup_path(),
            "resources": resources,
            "maskedPaths": MASKED_PATHS,
            "readonlyPaths": READONLY_PATHS,
        },
    }))
}

/// Writes the bundle into `dir`: `config.json` plus the `hosts`, `hostname` and
/// `resolv.conf` files it bind-mounts. Resolves the user against the rootfs.
pub fn write_bundle(spec: &ContainerSpec, dir: &Path) -> Result<()> {
    let user = resolve_user(&spec.rootfs, &spec.user)?;
    let hostname = spec.effective_hostname();
    let hosts = spec.etc_hosts.clone().unwrap_or_else(|| {
        format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n")
    });
    let resolv = match &spec.resolv_conf {
        Some(r) => r.clone(),
        None => fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
    };
    for (name, content) in [
        ("hosts", hosts),
        ("hostname", format!("{hostname}\n")),
        ("resolv.conf", resolv),
    ] {
        let p = dir.join(name);
        fs::write(&p, content).ctx("writing", &p)?;
    }
    let config = oci_config(spec, &user, dir)?;
    let data = serde_json::to_vec_pretty(&config).map_err(json_err("config.json"))?;
    crate::image::write_atomic(&dir.join("config.json"), &data)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img(entry: Option<&[&str]>, cmd: Option<&[&str]>) -> ImageConfig {
        let v = |x: &[&str]| x.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        ImageConfig {
            entrypoint: entry.map(v),
            cmd: cmd.map(v),
            ..ImageConfig::default()
        }
    }

    fn s(x: &[&str]) -> Vec<String> {
        x.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn args_resolve_like_docker() {
        let i = img(Some(&["/entry"]), Some(&["default"]));
        assert_eq!(
            resolve_args(&i, None, None).unwrap(),
            s(&["/entry", "default"])
        );
        assert_eq!(
            resolve_args(&i, None, Some(&s(&["x"]))).unwrap(),
            s(&["/entry", "x"])
        );
        // Overriding the entrypoint drops the image's CMD.
        assert_eq!(
            resolve_args(&i, Some(&s(&["sh"])), None).unwrap(),
            s(&["sh"])
        );
        assert_eq!(
            resolve_args(&i, Some(&s(&["sh"])), Some(&s(&["-c", "x"]))).unwrap(),
            s(&["sh", "-c", "x"])
        );
        assert!(resolve_args(&img(None, None), None, None).is_err());
    }

    #[test]
    fn env_merges_with_task_winning() {
        let e = merge_env(
            &s(&["A=1", "B=2"]),
            &[("B".into(), "3".into()), ("C".into(), "x=y".into())],
        );
        assert_eq!(
            e,
            s(&[&format!("PATH={DEFAULT_PATH}"), "A=1", "B=3", "C=x=y"])
        );
        let e = merge_env(&s(&["PATH=/bin"]), &[]);
        assert_eq!(e, s(&["PATH=/bin"]));
    }

    #[test]
    fn cpu_and_memory_conversions() {
        assert_eq!(cpu_shares(None), 2);
        assert_eq!(cpu_shares(Some(0)), 2);
        assert_eq!(cpu_shares(Some(1)), 2);
        assert_eq!(cpu_shares(Some(512)), 512);
        assert_eq!(cpu_quota(1024), 100_000);
        assert_eq!(cpu_quota(256), 25_000);
        assert_eq!(cpu_quota(1), 1000);
        assert_eq!(mib_to_bytes(64), 64 * 1024 * 1024);
    }

    fn rootfs_with_users() -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        fs::create_dir(d.path().join("etc")).unwrap();
        fs::write(
            d.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\napp:x:1000:1000::/home/app:/bin/sh\n",
        )
        .unwrap();
        fs::write(
            d.path().join("etc/group"),
            "root:x:0:\napp:x:1000:\nwheel:x:10:app\nnogroup:x:65534:\n",
        )
        .unwrap();
        d
    }

    #[test]
    fn users_resolve_against_passwd_and_group() {
        let d = rootfs_with_users();
        let r = resolve_user(d.path(), "").unwrap();
        assert_eq!((r.uid, r.gid, r.home.as_str()), (0, 0, "/root"));
        let r = resolve_user(d.path(), "app").unwrap();
        assert_eq!(
            (r.uid, r.gid, r.additional_gids.clone(), r.home.as_str()),
            (1000, 1000, vec![10], "/home/app")
        );
        let r = resolve_user(d.path(), "app:nogroup").unwrap();
        assert_eq!((r.uid, r.gid), (1000, 65534));
        let r = resolve_user(d.path(), "1000").unwrap();
        assert_eq!((r.uid, r.gid), (1000, 1000));
        let r = resolve_user(d.path(), "4242:4343").unwrap();
        assert_eq!((r.uid, r.gid, r.home.as_str()), (4242, 4343, "/"));
        assert!(matches!(
            resolve_user(d.path(), "ghost"),
            Err(Error::UserNotFound(_))
        ));
        assert!(resolve_user(d.path(), "app:ghosts").is_err());
    }

    #[test]
    fn config_json_carries_the_spec() {
        let d = rootfs_with_users();
        let spec = ContainerSpec {
            id: "c1".into(),
            rootfs: d.path().to_path_buf(),
            args: s(&["sh", "-c", "echo hi"]),
            env: s(&["A=1"]),
            working_dir: "/tmp".into(),
            user: "app".into(),
            readonly_rootfs: true,
            mounts: vec![Mount {
                source: "/data".into(),
                destination: "/mnt".into(),
                read_only: true,
            }],
            ulimits: vec![Ulimit {
                name: "nofile".into(),
                soft: 100,
                hard: 200,
            }],
            network: NetworkMode::Join("/var/run/netns/t1".into()),
            resources: Resources {
                cpu_units: Some(256),
                cpu_limit_units: Some(512),
                memory_mib: Some(64),
                memory_reservation_mib: Some(32),
                pids_limit: Some(100),
            },
            labels: BTreeMap::from([("k".to_string(), "v".to_string())]),
            ..ContainerSpec::default()
        };
        let user = resolve_user(d.path(), &spec.user).unwrap();
        let c = oci_config(&spec, &user, Path::new("/state/c1")).unwrap();
        assert_eq!(c["process"]["args"], json!(["sh", "-c", "echo hi"]));
        assert_eq!(c["process"]["cwd"], "/tmp");
        assert_eq!(c["process"]["user"]["uid"], 1000);
        assert_eq!(c["process"]["user"]["additionalGids"], json!([10]));
        let env = c["process"]["env"].as_array().unwrap();
        assert!(env.contains(&json!("A=1")));
        assert!(env.contains(&json!("HOME=/home/app")));
        assert_eq!(
            c["process"]["rlimits"][0],
            json!({"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200})
        );
        assert_eq!(c["root"]["readonly"], true);
        assert_eq!(c["hostname"], "c1");
        assert_eq!(c["linux"]["cgroupsPath"], "/berth/c1");
        assert_eq!(
            c["linux"]["resources"]["cpu"],
            json!({"shares": 256, "quota": 50000, "period": 100000})
        );
        assert_eq!(
            c["linux"]["resources"]["memory"],
            json!({"limit": 67108864, "reservation": 33554432})
        );
        assert_eq!(c["linux"]["resources"]["pids"], json!({"limit": 100}));
        let ns = c["linux"]["namespaces"].as_array().unwrap();
        assert!(ns.contains(&json!({"type": "network", "path": "/var/run/netns/t1"})));
        assert!(ns.contains(&json!({"type": "pid"})));
        let mounts = c["mounts"].as_array().unwrap();
        assert!(mounts.contains(&json!({"destination": "/mnt", "type": "bind", "source": "/data", "options": ["rbind", "rprivate", "ro"]})));
        assert!(
            mounts.iter().any(|m| m["destination"] == "/etc/resolv.conf"
                && m["source"] == "/state/c1/resolv.conf")
        );
        assert_eq!(c["annotations"]["k"], "v");
    }

    #[test]
    fn host_network_has_no_network_namespace() {
        let d = rootfs_with_users();
        let spec = ContainerSpec {
            id: "c2".into(),
            rootfs: d.path().into(),
            args: s(&["true"]),
            network: NetworkMode::Host,
            ..ContainerSpec::default()
        };
        let user = resolve_user(d.path(), "").unwrap();
        let c = oci_config(&spec, &user, Path::new("/s")).unwrap();
        assert!(
            !c["linux"]["namespaces"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["type"] == "network")
        );
        let bad = ContainerSpec {
            id: "bad id".into(),
            ..spec.clone()
        };
        assert!(oci_config(&bad, &user, Path::new("/s")).is_err());
        let bad = ContainerSpec {
            resources: Resources {
                memory_mib: Some(10),
                memory_reservation_mib: Some(20),
                ..Resources::default()
            },
            ..spec
        };
        assert!(oci_config(&bad, &user, Path::new("/s")).is_err());
    }
}
