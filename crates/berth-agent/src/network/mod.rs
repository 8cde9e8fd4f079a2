//! Task networks on the host, with iproute2 and nftables (`ip`, `nft`):
//!
//! - **bridge**: the host bridge [`TASK_BRIDGE`] (169.254.172.1/22, shared by every agent of
//!   the host); each task a namespace `berth-<task id>` with `eth0` on it (an address of the
//!   bridge's block, default route via the bridge), traffic out masqueraded, and its port
//!   mappings (static, or dynamic from ECS's ephemeral range) DNATed from every address of
//!   the host, 127.0.0.1 included (`route_localnet` on the bridge, see DESIGN §8);
//! - **awsvpc** with an ENI: `eth0` in the task's namespace with the ENI's MAC and address,
//!   default route via the subnet's gateway, which a per-subnet host bridge `bs<hash>` holds
//!   (shared by every task of the subnet on the host); its security groups as an nftables
//!   table inside the namespace ([`nft::security_group_table`]);
//! - **cleanup**: everything a task gets is named after its id and listed in a manifest
//!   under [`RUN_DIR`] written *before* anything is created, so a task's network can be
//!   removed whole after any crash ([`teardown`]), and an agent that starts removes what
//!   belongs to tasks it no longer runs ([`sweep`]).
//!
//! Every function here blocks (it runs commands); the task manager calls them on tokio's
//! blocking pool.

pub mod nft;

use std::collections::HashSet;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Mutex;

use berth_wire::agent::{SecurityGroupRules, TaskNetwork};
use serde::{Deserialize, Serialize};

pub use nft::{Cidr, Forward, Proto};

/// Where host-wide network state lives (a tmpfs: it goes with a reboot, as namespaces do).
pub const RUN_DIR: &str = "/run/berth";
/// The host bridge of bridge-mode tasks.
pub const TASK_BRIDGE: &str = "berth-br0";
/// Its block: link-local, like ECS's own task bridge, so it clashes with no VPC or LAN.
pub const TASK_BRIDGE_NET: Ipv4Addr = Ipv4Addr::new(169, 254, 172, 0);
/// Its prefix length (1022 task addresses).
pub const TASK_BRIDGE_PREFIX: u8 = 22;
/// The bridge's own address, the tasks' gateway.
pub const TASK_BRIDGE_GATEWAY: Ipv4Addr = Ipv4Addr::new(169, 254, 172, 1);
/// ECS's ephemeral host port range for dynamic mappings.
pub const EPHEMERAL_PORTS: (u16, u16) = (49153, 65535);
/// The task side of the task's interface.
pub const TASK_IF: &str = "eth0";

/// Why a task's network could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// The assignment asks for something that cannot be set up.
    #[error("invalid network setting: {0}")]
    Invalid(String),
    /// A command failed.
    #[error("running {command}: {detail}")]
    Command {
        /// The command line.
        command: String,
        /// What it said.
        detail: String,
    },
    /// A state file could not be written or read.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// No free address or port is left.
    #[error("no free {0} left")]
    Exhausted(&'static str),
    /// A static host port is taken.
    #[error("Bind for 0.0.0.0:{port} failed: port is already allocated ({protocol})")]
    PortTaken {
        /// The port.
        port: u16,
        /// tcp or udp.
        protocol: &'static str,
    },
}

/// One port binding of a container, as `networkBindings` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Binding {
    pub container_name: String,
    pub container_port: u16,
    pub host_port: u16,
    pub protocol: Proto,
}

/// A port mapping a task asks for (hostPort None or 0: dynamic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub container_name: String,
    pub container_port: u16,
    pub host_port: Option<u16>,
    pub protocol: Proto,
    /// For a dynamic mapping: the host port the control plane's placement picked (and
    /// reserved), used unless the host has taken it meanwhile.
    pub preferred: Option<u16>,
}

/// A task's network as set up, kept in its record.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct NetState {
    /// The task's address (bridge: on the task bridge; awsvpc: the ENI's).
    #[serde(default)]
    pub address: Option<Ipv4Addr>,
    /// Host ports forwarded to it.
    #[serde(default)]
    pub bindings: Vec<Binding>,
    /// The security groups last applied (awsvpc with an ENI).
    #[serde(default)]
    pub security_groups: Option<Vec<SecurityGroupRules>>,
}

/// FNV-1a, for short stable names.
fn fnv(s: &str) -> u64 {
    crate::metadata::net::fnv(s)
}

/// A task's host-side veth: `prefix` + 12 hex digits (interface names have at most 15).
fn veth_name(prefix: &str, task_id: &str) -> String {
    format!("{prefix}{:012x}", fnv(task_id) & 0xffff_ffff_ffff)
}

/// The host side of a bridge task's veth.
pub fn bridge_veth(task_id: &str) -> String {
    veth_name("bb", task_id)
}

/// The host side of an awsvpc task's ENI veth.
pub fn eni_veth(task_id: &str) -> String {
    veth_name("be", task_id)
}

/// The host bridge of a subnet.
pub fn subnet_bridge(subnet_id: &str) -> String {
    veth_name("bs", subnet_id)
}

/// A bridge task's nftables table on the host.
pub fn port_table_name(task_id: &str) -> String {
    format!("berth-{task_id}")
}

fn run(program: &str, args: &[&str], stdin: Option<&str>) -> Result<String, NetError> {
    let command = format!("{program} {}", args.join(" "));
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| NetError::Command {
            command: command.clone(),
            detail: e.to_string(),
        })?;
    if let (Some(text), Some(mut w)) = (stdin, child.stdin.take()) {
        w.write_all(text.as_bytes())
            .map_err(|e| NetError::Command {
                command: command.clone(),
                detail: e.to_string(),
            })?;
    }
    let out = child.wait_with_output().map_err(|e| NetError::Command {
        command: command.clone(),
        detail: e.to_string(),
    })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(NetError::Command {
            command,
            detail: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}

fn ip(args: &[&str]) -> Result<String, NetError> {
    run("ip", args, None)
}

/// Applies an nftables rule set in one transaction, in the host's namespace or `netns`.
pub fn nft_apply(netns: Option<&str>, text: &str) -> Result<(), NetError> {
    match netns {
        None => run("nft", &["-f", "-"], Some(text)).map(|_| ()),
        Some(ns) => run("ip", &["netns", "exec", ns, "nft", "-f", "-"], Some(text)).map(|_| ()),
    }
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

fn netns_path(name: &str) -> PathBuf {
    Path::new("/var/run/netns").join(name)
}

fn write_sysctl(path: &str, value: &str) -> Result<(), NetError> {
    std::fs::write(path, value).map_err(|source| NetError::Io {
        what: "writing",
        path: PathBuf::from(path),
        source,
    })
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> NetError {
    let path = path.to_path_buf();
    move |source| NetError::Io { what, path, source }
}

// ---- the manifest: which tasks have network state on this host, and whose they are ----

/// What `<RUN_DIR>/tasks/<task id>.json` says.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Manifest {
    task_id: String,
    netns: String,
    /// The owning agent's state directory.
    state_dir: PathBuf,
    /// The owning agent's record of the task: once it is gone, so is every agent that could
    /// clean up after the task.
    record: PathBuf,
}

fn manifest_path(task_id: &str) -> PathBuf {
    Path::new(RUN_DIR)
        .join("tasks")
        .join(format!("{task_id}.json"))
}

/// Records that task `task_id` (namespace `netns`, record `record` of the agent whose state
/// directory is `state_dir`) is about to get network state. Call before creating anything.
pub fn claim(task_id: &str, netns: &str, state_dir: &Path, record: &Path) -> Result<(), NetError> {
    let path = manifest_path(task_id);
    let dir = path.parent().unwrap_or(Path::new(RUN_DIR));
    std::fs::create_dir_all(dir).map_err(io("creating", dir))?;
    let m = Manifest {
        task_id: task_id.into(),
        netns: netns.into(),
        state_dir: state_dir.to_path_buf(),
        record: record.to_path_buf(),
    };
    let data = serde_json::to_vec(&m).map_err(|e| NetError::Invalid(e.to_string()))?;
    let tmp = dir.join(format!(".{task_id}.tmp"));
    std::fs::write(&tmp, data).map_err(io("writing", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(io("renaming", &path))
}

/// Whether task `task_id` has (or had, before a crash) network state on this host.
pub fn claimed(task_id: &str) -> bool {
    manifest_path(task_id).exists()
}

// ---- reservations: host-wide files, created exclusively, holding the owning task id ----

fn reservation_dir(kind: &str) -> PathBuf {
    Path::new(RUN_DIR).join(kind)
}

/// Takes `name` in `kind` for `task_id`; true if it is (now or already) the task's.
fn reserve(kind: &str, name: &str, task_id: &str) -> Result<bool, NetError> {
    let dir = reservation_dir(kind);
    std::fs::create_dir_all(&dir).map_err(io("creating", &dir))?;
    let path = dir.join(name);
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
    {
        Ok(mut f) => {
            f.write_all(task_id.as_bytes())
                .map_err(io("writing", &path))?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            Ok(std::fs::read_to_string(&path).is_ok_and(|o| o == task_id))
        }
        Err(e) => Err(io("creating", &path)(e)),
    }
}

/// Releases every reservation of `task_id`.
fn release_all(task_id: &str) {
    for kind in ["ipam", "ports"] {
        let Ok(entries) = std::fs::read_dir(reservation_dir(kind)) else {
            continue;
        };
        for e in entries.flatten() {
            if std::fs::read_to_string(e.path()).is_ok_and(|o| o == task_id) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// The ports some socket of the host holds (tcp: listening; udp: bound), from /proc.
fn ports_in_use(proto: Proto) -> HashSet<u16> {
    let files: &[&str] = match proto {
        Proto::Tcp => &["/proc/net/tcp", "/proc/net/tcp6"],
        Proto::Udp => &["/proc/net/udp", "/proc/net/udp6"],
    };
    let mut out = HashSet::new();
    for f in files {
        let Ok(text) = std::fs::read_to_string(f) else {
            continue;
        };
        out.extend(parse_proc_net(&text, proto == Proto::Tcp));
    }
    out
}

/// Local ports in a /proc/net/{tcp,udp}[6] table (tcp: listening sockets only).
pub fn parse_proc_net(text: &str, listening_only: bool) -> Vec<u16> {
    text.lines()
        .skip(1)
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let local = f.nth(1)?;
            let state = f.nth(1)?;
            if listening_only && state != "0A" {
                return None;
            }
            u16::from_str_radix(local.rsplit(':').next()?, 16).ok()
        })
        .collect()
}

/// The candidates for a dynamic port, starting at a place that depends on `seed` (so that
/// concurrent tasks rarely race for the same one).
pub fn dynamic_candidates(seed: u64) -> impl Iterator<Item = u16> {
    let (lo, hi) = EPHEMERAL_PORTS;
    let size = u64::from(hi - lo) + 1;
    let start = seed % size;
    (0..size).map(move |i| lo + ((start + i) % size) as u16)
}

fn reserve_port(task_id: &str, m: &Mapping, seq: usize) -> Result<u16, NetError> {
    let proto = m.protocol.as_str();
    let in_use = ports_in_use(m.protocol);
    match m.host_port.filter(|p| *p != 0) {
        Some(p) => {
            if reserve("ports", &format!("{proto}-{p}"), task_id)? && !in_use.contains(&p) {
                Ok(p)
            } else {
                Err(NetError::PortTaken {
                    port: p,
                    protocol: proto,
                })
            }
        }
        None => {
            let seed = fnv(&format!("{task_id}/{seq}"));
            for p in m.preferred.into_iter().chain(dynamic_candidates(seed)) {
                if !in_use.contains(&p) && reserve("ports", &format!("{proto}-{p}"), task_id)? {
                    return Ok(p);
                }
            }
            Err(NetError::Exhausted("host port in the ephemeral range"))
        }
    }
}

/// The task bridge's task addresses (gateway and broadcast excluded).
pub fn bridge_addresses() -> impl Iterator<Item = Ipv4Addr> {
    let base = u32::from(TASK_BRIDGE_NET);
    let size = 1u32 << (32 - u32::from(TASK_BRIDGE_PREFIX));
    (2..size - 1).map(move |i| Ipv4Addr::from(base + i))
}

fn reserve_bridge_address(task_id: &str) -> Result<Ipv4Addr, NetError> {
    let n = (1u64 << (32 - u32::from(TASK_BRIDGE_PREFIX))) - 3;
    let start = (fnv(task_id) % n) as usize;
    let all: Vec<Ipv4Addr> = bridge_addresses().collect();
    for i in 0..all.len() {
        let a = all[(start + i) % all.len()];
        if reserve("ipam", &format!("{TASK_BRIDGE}-{a}"), task_id)? {
            return Ok(a);
        }
    }
    Err(NetError::Exhausted("address on the task bridge"))
}

// ---- the host's shared pieces ----

static BRIDGE_READY: Mutex<bool> = Mutex::new(false);

/// The task bridge with its address, routing and masquerade (idempotent, shared by every
/// agent of the host: nothing here is ever removed).
fn ensure_task_bridge() -> Result<(), NetError> {
    let mut ready = BRIDGE_READY
        .lock()
        .map_err(|_| NetError::Invalid("task bridge lock poisoned".into()))?;
    if *ready && link_exists(TASK_BRIDGE) {
        return Ok(());
    }
    ensure_bridge(TASK_BRIDGE, TASK_BRIDGE_GATEWAY, TASK_BRIDGE_PREFIX)?;
    // Packets from 127.0.0.1 DNATed to a task may leave by the bridge (and come back).
    write_sysctl(
        &format!("/proc/sys/net/ipv4/conf/{TASK_BRIDGE}/route_localnet"),
        "1",
    )?;
    write_sysctl("/proc/sys/net/ipv4/ip_forward", "1")?;
    let cidr = Cidr {
        addr: TASK_BRIDGE_NET.into(),
        prefix: TASK_BRIDGE_PREFIX,
    };
    nft_apply(None, &nft::shared_table(TASK_BRIDGE, &cidr))?;
    *ready = true;
    Ok(())
}

/// Bridges this process has set up (and the address they hold).
static BRIDGES: Mutex<Vec<(String, Ipv4Addr, u8)>> = Mutex::new(Vec::new());

/// A bridge `name` holding `gateway/prefix`, up (idempotent; several agents may race).
fn ensure_bridge(name: &str, gateway: Ipv4Addr, prefix: u8) -> Result<(), NetError> {
    let key = (name.to_string(), gateway, prefix);
    if BRIDGES.lock().is_ok_and(|b| b.contains(&key)) && link_exists(name) {
        return Ok(());
    }
    if !link_exists(name)
        && let Err(e) = ip(&["link", "add", name, "type", "bridge"])
        && !link_exists(name)
    {
        return Err(e);
    }
    ip(&[
        "addr",
        "replace",
        &format!("{gateway}/{prefix}"),
        "dev",
        name,
    ])?;
    ip(&["link", "set", name, "up"])?;
    if let Ok(mut b) = BRIDGES.lock() {
        b.push(key);
    }
    Ok(())
}

/// The task's namespace with loopback up (idempotent).
pub fn ensure_netns(name: &str) -> Result<(), NetError> {
    if !netns_path(name).exists() {
        ip(&["netns", "add", name])?;
    }
    ip(&["-n", name, "link", "set", "lo", "up"]).map(|_| ())
}

/// A veth pair: `host` on the host (enslaved to `bridge`, up) and `eth0` in `netns` with
/// `mac` if given, `addr/prefix`, up, default route via `gateway` (two `ip -batch` runs).
fn plug(
    host: &str,
    bridge: &str,
    netns: &str,
    mac: Option<&str>,
    addr: Ipv4Addr,
    prefix: u8,
    gateway: Ipv4Addr,
) -> Result<(), NetError> {
    if link_exists(host) {
        ip(&["link", "del", host])?;
    }
    let mac = mac.map(|m| format!(" address {m}")).unwrap_or_default();
    run(
        "ip",
        &["-batch", "-"],
        Some(&format!(
            "link add {host} type veth peer name {TASK_IF}{mac} netns {netns}\n\
             link set {host} master {bridge} up\n"
        )),
    )?;
    run(
        "ip",
        &["-n", netns, "-batch", "-"],
        Some(&format!(
            "addr replace {addr}/{prefix} dev {TASK_IF}\n\
             link set {TASK_IF} up\n\
             route replace default via {gateway} dev {TASK_IF}\n"
        )),
    )?;
    Ok(())
}

/// A bridge-mode task: its namespace on the task bridge and its host ports forwarded.
pub fn setup_bridge(
    task_id: &str,
    netns: &str,
    mappings: &[Mapping],
) -> Result<NetState, NetError> {
    ensure_task_bridge()?;
    ensure_netns(netns)?;
    let addr = reserve_bridge_address(task_id)?;
    plug(
        &bridge_veth(task_id),
        TASK_BRIDGE,
        netns,
        None,
        addr,
        TASK_BRIDGE_PREFIX,
        TASK_BRIDGE_GATEWAY,
    )?;
    let mut bindings = Vec::new();
    for (i, m) in mappings.iter().enumerate() {
        let host_port = reserve_port(task_id, m, i)?;
        bindings.push(Binding {
            container_name: m.container_name.clone(),
            container_port: m.container_port,
            host_port,
            protocol: m.protocol,
        });
    }
    if !bindings.is_empty() {
        let forwards: Vec<Forward> = bindings
            .iter()
            .map(|b| Forward {
                proto: b.protocol,
                host_port: b.host_port,
                container_port: b.container_port,
            })
            .collect();
        nft_apply(
            None,
            &nft::port_table(&port_table_name(task_id), addr, &forwards),
        )?;
    }
    Ok(NetState {
        address: Some(addr),
        bindings,
        security_groups: None,
    })
}

/// Parses the ENI's settings.
fn eni_settings(n: &TaskNetwork) -> Result<(Ipv4Addr, u8, Ipv4Addr, String), NetError> {
    let i = &n.interface;
    let bad = |what: &str, v: &str| {
        NetError::Invalid(format!("{what} {v:?} of {}", i.network_interface_id))
    };
    let addr: Ipv4Addr = i
        .private_ipv4_address
        .parse()
        .map_err(|_| bad("privateIpv4Address", &i.private_ipv4_address))?;
    let gw: Ipv4Addr = i
        .gateway_ipv4_address
        .parse()
        .map_err(|_| bad("gateway", &i.gateway_ipv4_address))?;
    let subnet = Cidr::parse(&i.subnet_cidr)?;
    if !subnet.addr.is_ipv4() || subnet.prefix > 30 {
        return Err(bad("subnet cidr", &i.subnet_cidr));
    }
    let mac = i.mac_address.to_ascii_lowercase();
    let ok_mac = mac.len() == 17
        && mac
            .split(':')
            .all(|o| o.len() == 2 && o.chars().all(|c| c.is_ascii_hexdigit()));
    if !ok_mac {
        return Err(bad("macAddress", &i.mac_address));
    }
    Ok((addr, subnet.prefix, gw, mac))
}

/// The host-wide lock under which subnet bridges are made, joined, and removed once empty
/// (held until the returned file is dropped).
fn bridge_lock() -> Result<std::fs::File, NetError> {
    let path = Path::new(RUN_DIR).join("bridges.lock");
    std::fs::create_dir_all(RUN_DIR).map_err(io("creating", Path::new(RUN_DIR)))?;
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io("opening", &path))?;
    f.lock().map_err(io("locking", &path))?;
    Ok(f)
}

/// Removes subnet bridge `name` if no task is plugged into it any more (call under
/// [`bridge_lock`]).
fn remove_if_empty(name: &str) {
    let ports = Path::new("/sys/class/net").join(name).join("brif");
    let empty = std::fs::read_dir(&ports).is_ok_and(|mut d| d.next().is_none());
    if empty
        && let Err(e) = ip(&["link", "del", name])
        && link_exists(name)
    {
        tracing::warn!(%e, "removing an empty subnet bridge");
    }
    if let Ok(mut b) = BRIDGES.lock() {
        b.retain(|(n, _, _)| n != name);
    }
}

/// Removes every subnet bridge no task is plugged into (after a crash).
fn remove_empty_subnet_bridges() {
    let Ok(_lock) = bridge_lock() else { return };
    for name in std::fs::read_dir("/sys/class/net")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
    {
        if name.len() == 14 && name.starts_with("bs") {
            remove_if_empty(&name);
        }
    }
}

/// An awsvpc task's ENI: `eth0` in its namespace on its subnet's bridge, and its security
/// groups.
pub fn setup_awsvpc(task_id: &str, netns: &str, n: &TaskNetwork) -> Result<NetState, NetError> {
    let (addr, prefix, gw, mac) = eni_settings(n)?;
    let bridge = subnet_bridge(&n.interface.subnet_id);
    ensure_netns(netns)?;
    {
        let _lock = bridge_lock()?;
        ensure_bridge(&bridge, gw, prefix)?;
        plug(
            &eni_veth(task_id),
            &bridge,
            netns,
            Some(&mac),
            addr,
            prefix,
            gw,
        )?;
    }
    apply_security_groups(netns, &n.security_groups)?;
    Ok(NetState {
        address: Some(addr),
        bindings: Vec::new(),
        security_groups: Some(n.security_groups.clone()),
    })
}

/// Replaces the security group table of a task's namespace (one transaction).
pub fn apply_security_groups(netns: &str, groups: &[SecurityGroupRules]) -> Result<(), NetError> {
    let text = nft::security_group_table(groups, crate::metadata::net::TASK_IF)?;
    nft_apply(Some(netns), &text)
}

/// Removes everything of a task's network: its host table, namespace (and so the veths in
/// it, their host routes and its security groups), host-side veths, reservations and
/// manifest. Idempotent; what cannot be removed is logged.
pub fn teardown(task_id: &str, netns: &str) {
    // The subnet bridge the task's ENI is plugged into goes once its last task has.
    let subnet_bridge = std::fs::read_link(
        Path::new("/sys/class/net")
            .join(eni_veth(task_id))
            .join("master"),
    )
    .ok()
    .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()));
    let table = port_table_name(task_id);
    if let Err(e) = run("nft", &["delete", "table", "ip", &table], None)
        && !e.to_string().contains("No such file")
    {
        tracing::warn!(%e, "removing a task's port table");
    }
    if netns_path(netns).exists()
        && let Err(e) = ip(&["netns", "delete", netns])
    {
        tracing::warn!(%e, "removing a task's network namespace");
    }
    for link in [
        bridge_veth(task_id),
        eni_veth(task_id),
        crate::metadata::net::host_veth(task_id),
    ] {
        if link_exists(&link)
            && let Err(e) = ip(&["link", "del", &link])
            && link_exists(&link)
        {
            tracing::warn!(%e, "removing a task's veth");
        }
    }
    if let Some(b) = subnet_bridge
        && let Ok(_lock) = bridge_lock()
    {
        remove_if_empty(&b);
    }
    release_all(task_id);
    let _ = std::fs::remove_file(manifest_path(task_id));
}

/// Removes the network state of tasks nobody runs any more: those of this agent (state
/// directory `state_dir`) that are not in `keep` (task ids), and those of any agent whose
/// record of the task is gone or says the task is done.
pub fn sweep(state_dir: &Path, keep: &HashSet<String>) -> usize {
    let Ok(entries) = std::fs::read_dir(Path::new(RUN_DIR).join("tasks")) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let p = e.path();
        if p.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        let Some(m) = std::fs::read(&p)
            .ok()
            .and_then(|d| serde_json::from_slice::<Manifest>(&d).ok())
        else {
            continue;
        };
        let mine = m.state_dir == state_dir;
        let orphan = if mine {
            !keep.contains(&m.task_id)
        } else {
            match std::fs::read(&m.record) {
                Err(_) => true,
                Ok(d) => serde_json::from_slice::<serde_json::Value>(&d)
                    .ok()
                    .and_then(|v| v.get("doneAtMs").cloned())
                    .is_some_and(|v| !v.is_null()),
            }
        };
        if orphan {
            tracing::info!(task = %m.task_id, "removing the network of a task no agent runs");
            teardown(&m.task_id, &m.netns);
            removed += 1;
        }
    }
    remove_empty_subnet_bridges();
    removed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_interface_limits() {
        for n in [
            bridge_veth("abc"),
            eni_veth("abc"),
            subnet_bridge("subnet-0123"),
        ] {
            assert_eq!(n.len(), 14);
        }
        assert_ne!(bridge_veth("a"), bridge_veth("b"));
        assert_ne!(bridge_veth("a"), eni_veth("a"));
    }

    #[test]
    fn bridge_addresses_skip_gateway_and_broadcast() {
        let all: Vec<Ipv4Addr> = bridge_addresses().collect();
        assert_eq!(all.len(), 1021);
        assert_eq!(all[0], Ipv4Addr::new(169, 254, 172, 2));
        assert_eq!(
            *all.last().unwrap_or(&all[0]),
            Ipv4Addr::new(169, 254, 175, 254)
        );
        assert!(!all.contains(&TASK_BRIDGE_GATEWAY));
    }

    #[test]
    fn dynamic_ports_cover_the_ephemeral_range_once() {
        let v: Vec<u16> = dynamic_candidates(12345).collect();
        assert_eq!(v.len(), 65535 - 49153 + 1);
        let set: HashSet<u16> = v.iter().copied().collect();
        assert_eq!(set.len(), v.len());
        assert!(v.iter().all(|p| *p >= 49153));
    }

    #[test]
    fn proc_net_tables_parse() {
        let text = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n\
   1: 0100007F:C001 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0\n";
        assert_eq!(parse_proc_net(text, true), vec![8080]);
        assert_eq!(parse_proc_net(text, false), vec![8080, 49153]);
    }
}
