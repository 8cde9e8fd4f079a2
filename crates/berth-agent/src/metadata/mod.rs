//! The ECS task metadata endpoint (v3 and v4) for containers.
//!
//! One HTTP server per agent process listens on 169.254.170.2:80 (on a dummy interface of
//! the host namespace, see [`net`]) in a thread of its own, so that it outlives any one
//! agent's tokio runtime. Task managers publish their records into the process-wide
//! [`Registry`]; each container gets `ECS_CONTAINER_METADATA_URI_V4` (and `_URI` for v3)
//! with an unguessable endpoint id. Requests are answered only from the container's own
//! task: the peer must be the task's veth address (`awsvpc`) or the endpoint address itself
//! (`host`: the host namespace). `none` tasks get no endpoint, as in ECS.
//!
//! The same server answers the task role credentials endpoint (`/v2/credentials/<id>`, the
//! `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI` the AWS SDKs read), under the same rule: a task
//! reads only its own credentials.

pub mod net;
mod server;
pub mod shape;

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex, OnceLock};

use berth_runtime::Runtime;
use serde_json::Value;

use crate::plan::NetworkPlan;
use crate::task::TaskRecord;
pub use shape::{HostInfo, NetView, Sample, TaskView};

/// The environment variable of the v4 endpoint.
pub const ENV_V4: &str = "ECS_CONTAINER_METADATA_URI_V4";
/// The environment variable of the v3 endpoint.
pub const ENV_V3: &str = "ECS_CONTAINER_METADATA_URI";
/// The environment variable the AWS SDKs read task role credentials from.
pub const ENV_CREDENTIALS: &str = "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI";
/// Where the task role credentials are served.
pub const CREDENTIALS_PREFIX: &str = "/v2/credentials/";

/// The credentials variable for a task whose role credentials have id `id`.
pub fn credentials_env(id: &str) -> (String, String) {
    (ENV_CREDENTIALS.into(), format!("{CREDENTIALS_PREFIX}{id}"))
}

struct Entry {
    view: TaskView,
    rt: Arc<Runtime>,
}

/// Every task the endpoint serves, by task ARN, and the last stats sample per container.
#[derive(Default)]
pub struct Registry {
    tasks: Mutex<HashMap<String, Arc<Entry>>>,
    samples: Mutex<HashMap<String, Sample>>,
}

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `/v4/<id>`.
    Container,
    /// `/v4/<id>/task`.
    Task,
    /// `/v4/<id>/stats`.
    ContainerStats,
    /// `/v4/<id>/task/stats`.
    TaskStats,
}

/// Parses a request path into (endpoint id, route); v3 and v4 share their paths.
pub fn parse_path(path: &str) -> Option<(&str, Route)> {
    let path = path.split('?').next().unwrap_or(path).trim_end_matches('/');
    let rest = path
        .strip_prefix("/v4/")
        .or_else(|| path.strip_prefix("/v3/"))?;
    let (id, tail) = rest.split_once('/').unwrap_or((rest, ""));
    let route = match tail {
        "" => Route::Container,
        "task" => Route::Task,
        "stats" => Route::ContainerStats,
        "task/stats" => Route::TaskStats,
        _ => return None,
    };
    (!id.is_empty()).then_some((id, route))
}

/// Whether `peer` may read the metadata of a task with network `net`.
pub fn peer_allowed(net: &NetView, peer: IpAddr) -> bool {
    match (net, peer) {
        (NetView::Host, IpAddr::V4(p)) => p == net::ENDPOINT_IP || p.is_loopback(),
        (NetView::Task { ip: Some(ip), .. }, IpAddr::V4(p)) => p == *ip,
        _ => false,
    }
}

fn host_info() -> HostInfo {
    let online_cpus = std::thread::available_parallelism()
        .map(|n| n.get() as u64)
        .unwrap_or(1);
    let memory_bytes = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<u64>().ok())
        })
        .unwrap_or(0)
        * 1024;
    HostInfo {
        online_cpus,
        memory_bytes,
    }
}

/// The host's CPU time, ns (the `cpu` line of /proc/stat, in USER_HZ = 100).
fn system_cpu_ns() -> u64 {
    std::fs::read_to_string("/proc/stat")
        .ok()
        .and_then(|s| {
            s.lines().next().map(|l| {
                l.split_whitespace()
                    .skip(1)
                    .take(8)
                    .filter_map(|x| x.parse::<u64>().ok())
                    .sum::<u64>()
            })
        })
        .unwrap_or(0)
        * 10_000_000
}

impl Registry {
    /// Publishes (or replaces) a task's state.
    pub fn publish(&self, view: TaskView, rt: Arc<Runtime>) {
        if let Ok(mut t) = self.tasks.lock() {
            t.insert(
                view.record.assignment.task_arn.clone(),
                Arc::new(Entry { view, rt }),
            );
        }
    }

    /// Forgets a task.
    pub fn remove(&self, task_arn: &str) {
        let removed = self.tasks.lock().ok().and_then(|mut t| t.remove(task_arn));
        if let (Some(e), Ok(mut s)) = (removed, self.samples.lock()) {
            for c in &e.view.record.containers {
                s.remove(&c.runtime_id);
            }
        }
    }

    fn find(&self, endpoint_id: &str) -> Option<(Arc<Entry>, usize)> {
        let t = self.tasks.lock().ok()?;
        t.values().find_map(|e| {
            e.view
                .record
                .containers
                .iter()
                .position(|c| c.metadata_id.as_deref() == Some(endpoint_id))
                .map(|i| (e.clone(), i))
        })
    }

    fn stats(&self, rt: &Runtime, id: &str) -> Option<Value> {
        let stats = rt.stats(id).ok()?;
        let now = Sample {
            at_ms: berth_wire::Timestamp::now().0,
            stats,
            system_cpu_ns: system_cpu_ns(),
        };
        let prev = self
            .samples
            .lock()
            .ok()
            .and_then(|mut s| s.insert(id.to_string(), now));
        Some(shape::stats_json(id, &now, prev.as_ref(), host_info()))
    }

    /// The task whose role credentials have this id.
    fn find_credentials(&self, id: &str) -> Option<Arc<Entry>> {
        let t = self.tasks.lock().ok()?;
        t.values()
            .find(|e| {
                e.view
                    .record
                    .assignment
                    .task_role_credentials
                    .as_ref()
                    .is_some_and(|c| c.credentials_id == id)
            })
            .cloned()
    }

    /// The credentials endpoint (`/v2/credentials/<id>`), answered only to the task's own
    /// network, in the ECS agent's format.
    fn credentials(&self, id: &str, peer: IpAddr) -> (u16, Value) {
        let not_found = || {
            (
                400,
                serde_json::json!({"code": "InvalidIdInRequest", "message": "CredentialsV2Request: Credentials not found"}),
            )
        };
        let Some(entry) = self.find_credentials(id) else {
            return not_found();
        };
        if !peer_allowed(&entry.view.network, peer) {
            tracing::warn!(%peer, task = %entry.view.record.assignment.task_arn, "credentials request from outside the task");
            return not_found();
        }
        let Some(c) = &entry.view.record.assignment.task_role_credentials else {
            return not_found();
        };
        (
            200,
            serde_json::json!({
                "RoleArn": c.role_arn,
                "AccessKeyId": c.access_key_id,
                "SecretAccessKey": c.secret_access_key,
                "Token": c.session_token,
                "Expiration": shape::rfc3339(c.expiration_ms),
            }),
        )
    }

    /// Answers a request: (HTTP status, JSON body).
    pub fn answer(&self, path: &str, peer: IpAddr) -> (u16, Value) {
        if let Some(id) = path
            .split('?')
            .next()
            .and_then(|p| p.strip_prefix(CREDENTIALS_PREFIX))
        {
            return self.credentials(id.trim_end_matches('/'), peer);
        }
        let not_found = || {
            (
                404,
                serde_json::json!({"error": "unable to get metadata for the container"}),
            )
        };
        let Some((id, route)) = parse_path(path) else {
            return (404, serde_json::json!({"error": "no such path"}));
        };
        let Some((entry, i)) = self.find(id) else {
            return not_found();
        };
        if !peer_allowed(&entry.view.network, peer) {
            tracing::warn!(%peer, task = %entry.view.record.assignment.task_arn, "metadata request from outside the task");
            return not_found();
        }
        let view = &entry.view;
        match route {
            Route::Container => (200, shape::container_json(view, i)),
            Route::Task => (200, shape::task_json(view)),
            Route::ContainerStats => {
                let c = &view.record.containers[i];
                match self.stats(&entry.rt, &c.runtime_id) {
                    Some(v) => (200, v),
                    None => (200, Value::Null),
                }
            }
            Route::TaskStats => {
                let mut m = serde_json::Map::new();
                for c in view.record.containers.iter().filter(|c| c.started) {
                    let v = if c.exited {
                        Value::Null
                    } else {
                        self.stats(&entry.rt, &c.runtime_id).unwrap_or(Value::Null)
                    };
                    m.insert(c.runtime_id.clone(), v);
                }
                (200, Value::Object(m))
            }
        }
    }
}

static GLOBAL: OnceLock<Result<Arc<Registry>, String>> = OnceLock::new();

/// The process-wide registry, starting the server on first use (the dummy interface, the
/// listener on 169.254.170.2:80 and its thread). An error says why the endpoint is off.
pub fn global() -> Result<Arc<Registry>, String> {
    GLOBAL
        .get_or_init(|| {
            let dev = net::ensure_dummy()?;
            let listener = std::net::TcpListener::bind((net::ENDPOINT_IP, 80))
                .map_err(|e| format!("binding {}:80: {e}", net::ENDPOINT_IP))?;
            listener
                .set_nonblocking(true)
                .map_err(|e| format!("listener: {e}"))?;
            let registry = Arc::new(Registry::default());
            server::spawn(listener, registry.clone())?;
            tracing::info!(dev, "task metadata endpoint on http://169.254.170.2/v4/");
            Ok(registry)
        })
        .clone()
}

/// The task managers' handle on the endpoint.
#[derive(Clone)]
pub struct Endpoint {
    registry: Option<Arc<Registry>>,
    rt: Arc<Runtime>,
    owner: String,
    availability_zone: Option<String>,
}

/// A fresh, unguessable endpoint id (a random UUID, as the ECS agent's v3 endpoint ids).
pub fn new_endpoint_id() -> String {
    use std::io::Read;
    let mut b = [0u8; 16];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .is_ok();
    if !ok {
        // Not expected on Linux; fall back to time and a counter (still unique).
        static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let t = berth_wire::Timestamp::now().0 as u64;
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        b[..8].copy_from_slice(&net::fnv(&format!("{t}-{n}")).to_le_bytes());
        b[8..].copy_from_slice(&(t ^ n.rotate_left(32)).to_le_bytes());
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// The endpoint's variables for a container with endpoint id `id`.
pub fn env_for(id: &str) -> [(String, String); 2] {
    [
        (
            ENV_V4.into(),
            format!("http://{}/v4/{id}", net::ENDPOINT_IP),
        ),
        (
            ENV_V3.into(),
            format!("http://{}/v3/{id}", net::ENDPOINT_IP),
        ),
    ]
}

fn net_view(plan: Option<&NetworkPlan>, ip: Option<Ipv4Addr>) -> NetView {
    match plan {
        Some(NetworkPlan::Host) => NetView::Host,
        Some(NetworkPlan::TaskNamespace(n)) => NetView::Task {
            netns: n.clone(),
            ip,
        },
        Some(NetworkPlan::None) | None => NetView::None,
    }
}

impl Endpoint {
    /// A handle; `enabled` starts the process-wide server (a failure is logged and leaves
    /// the endpoint off). `owner` identifies this agent (its state directory).
    pub fn new(
        enabled: bool,
        rt: Arc<Runtime>,
        owner: &std::path::Path,
        availability_zone: Option<String>,
    ) -> Endpoint {
        let registry = if enabled {
            match global() {
                Ok(r) => Some(r),
                Err(e) => {
                    tracing::warn!(%e, "task metadata endpoint unavailable");
                    None
                }
            }
        } else {
            None
        };
        Endpoint {
            registry,
            rt,
            owner: format!(
                "{:012x}",
                net::fnv(&owner.to_string_lossy()) & 0xffff_ffff_ffff
            ),
            availability_zone,
        }
    }

    /// Whether containers of a task with network `plan` get the endpoint.
    pub fn serves(&self, plan: &NetworkPlan) -> bool {
        self.registry.is_some() && !matches!(plan, NetworkPlan::None)
    }

    /// Links a task namespace to the endpoint; returns the task side's address.
    pub async fn attach(&self, netns: &str, task_id: &str) -> Result<Ipv4Addr, String> {
        let (n, t, o) = (netns.to_string(), task_id.to_string(), self.owner.clone());
        tokio::task::spawn_blocking(move || net::attach(&n, &t, &o))
            .await
            .map_err(|e| e.to_string())?
    }

    /// Unlinks a task and forgets it.
    pub async fn detach(&self, task_arn: &str, task_id: &str) {
        if let Some(r) = &self.registry {
            r.remove(task_arn);
        }
        let t = task_id.to_string();
        let _ = tokio::task::spawn_blocking(move || net::detach(&t)).await;
    }

    /// Removes links of this agent left behind by a crash (tasks not in `keep`).
    pub fn remove_stale(&self, keep: &std::collections::HashSet<String>) {
        if self.registry.is_some() {
            net::remove_stale(&self.owner, keep);
        }
    }

    /// Publishes a task's record.
    pub fn publish(&self, rec: &TaskRecord, plan: Option<&NetworkPlan>, ip: Option<Ipv4Addr>) {
        let Some(r) = &self.registry else { return };
        if plan.is_none_or(|p| matches!(p, NetworkPlan::None)) {
            return;
        }
        r.publish(
            TaskView {
                record: rec.clone(),
                network: net_view(plan, ip),
                availability_zone: self.availability_zone.clone(),
            },
            self.rt.clone(),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse() {
        assert_eq!(parse_path("/v4/abc"), Some(("abc", Route::Container)));
        assert_eq!(parse_path("/v4/abc/"), Some(("abc", Route::Container)));
        assert_eq!(parse_path("/v4/abc/task"), Some(("abc", Route::Task)));
        assert_eq!(
            parse_path("/v3/abc/stats"),
            Some(("abc", Route::ContainerStats))
        );
        assert_eq!(
            parse_path("/v4/abc/task/stats"),
            Some(("abc", Route::TaskStats))
        );
        assert_eq!(parse_path("/v4/"), None);
        assert_eq!(parse_path("/v4/abc/other"), None);
        assert_eq!(parse_path("/v2/metadata"), None);
    }

    #[test]
    fn peers_are_checked() {
        let ip = Ipv4Addr::new(169, 254, 170, 7);
        let task = NetView::Task {
            netns: "n".into(),
            ip: Some(ip),
        };
        assert!(peer_allowed(&task, IpAddr::V4(ip)));
        assert!(!peer_allowed(
            &task,
            IpAddr::V4(Ipv4Addr::new(169, 254, 170, 8))
        ));
        assert!(!peer_allowed(&task, IpAddr::V4(net::ENDPOINT_IP)));
        assert!(peer_allowed(&NetView::Host, IpAddr::V4(net::ENDPOINT_IP)));
        assert!(!peer_allowed(&NetView::Host, IpAddr::V4(ip)));
        assert!(!peer_allowed(&NetView::None, IpAddr::V4(net::ENDPOINT_IP)));
        let pending = NetView::Task {
            netns: "n".into(),
            ip: None,
        };
        assert!(!peer_allowed(&pending, IpAddr::V4(ip)));
    }

    #[test]
    fn endpoint_ids_are_uuids_and_env_points_at_them() {
        let a = new_endpoint_id();
        assert_eq!(a.len(), 36);
        assert_ne!(a, new_endpoint_id());
        let env = env_for(&a);
        assert_eq!(env[0].0, "ECS_CONTAINER_METADATA_URI_V4");
        assert_eq!(env[0].1, format!("http://169.254.170.2/v4/{a}"));
        assert_eq!(env[1].1, format!("http://169.254.170.2/v3/{a}"));
    }
}
