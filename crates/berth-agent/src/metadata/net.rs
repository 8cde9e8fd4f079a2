//! The endpoint's plumbing with iproute2: a dummy interface `berth-meta0` (or, where the
//! kernel has no dummy links, the loopback interface) holding 169.254.170.2/32 in the host
//! namespace (reachable as a local address from `host`-mode
//! containers), and per `awsvpc` task a veth pair: `bm<hash>` on the host, `meta0` in the
//! task's namespace with 169.254.170.N/32, a route to 169.254.170.2 over it (with a static
//! neighbour entry) and, on the host, 169.254.170.N/32 routed back over the veth.
//!
//! Nothing here touches addresses outside 169.254.170.0/24 or links other than the dummy,
//! the `bm*` veths (which carry the owning agent's tag as their alias) and the task's
//! namespace.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;

/// The endpoint's address.
pub const ENDPOINT_IP: Ipv4Addr = Ipv4Addr::new(169, 254, 170, 2);
/// The host-side dummy interface.
pub const DUMMY: &str = "berth-meta0";
/// The task-side interface name.
pub const TASK_IF: &str = "meta0";

/// Address allocation (and the set of links this process owns) is serialised here.
static ALLOC: Mutex<Option<HashSet<String>>> = Mutex::new(None);

fn ip(args: &[&str]) -> Result<String, String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("running ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// FNV-1a, for short stable names.
pub fn fnv(s: &str) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// The host side of a task's veth: `bm` + 12 hex digits (interface names have at most 15).
pub fn host_veth(task_id: &str) -> String {
    format!("bm{:012x}", fnv(task_id) & 0xffff_ffff_ffff)
}

fn is_host_veth(name: &str) -> bool {
    name.len() == 14 && name.starts_with("bm") && name[2..].chars().all(|c| c.is_ascii_hexdigit())
}

/// 169.254.170.2/32 on the dummy interface, up (idempotent); on kernels without dummy
/// links, an alias of the loopback interface. Returns the interface used.
pub fn ensure_dummy() -> Result<&'static str, String> {
    let dev = if link_exists(DUMMY) || ip(&["link", "add", DUMMY, "type", "dummy"]).is_ok() {
        ip(&["link", "set", DUMMY, "up"])?;
        DUMMY
    } else {
        "lo"
    };
    ip(&["addr", "replace", "169.254.170.2/32", "dev", dev])?;
    Ok(dev)
}

/// Host addresses already routed to task veths.
fn used_addresses() -> Result<HashSet<u8>, String> {
    let out = ip(&["-4", "route", "show", "root", "169.254.170.0/24"])?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|a| a.parse::<Ipv4Addr>().ok())
        .map(|a| a.octets()[3])
        .collect())
}

/// The free last octet for a task (3..=254), given those in use.
pub fn pick_free(used: &HashSet<u8>) -> Option<u8> {
    (3u8..=254).find(|n| !used.contains(n))
}

fn task_address(netns: &str) -> Option<Ipv4Addr> {
    let out = ip(&["-n", netns, "-4", "-o", "addr", "show", "dev", TASK_IF]).ok()?;
    out.split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .and_then(|a| a.parse().ok())
}

/// Links task `task_id`'s namespace `netns` to the endpoint (idempotent: an existing link
/// is kept and its address returned). `owner` tags the host side (the agent's identity).
pub fn attach(netns: &str, task_id: &str, owner: &str) -> Result<Ipv4Addr, String> {
    let host = host_veth(task_id);
    let mut guard = ALLOC.lock().map_err(|_| "metadata link lock poisoned")?;
    let live = guard.get_or_insert_with(HashSet::new);
    if link_exists(&host)
        && let Some(addr) = task_address(netns)
    {
        ip(&[
            "route",
            "replace",
            &format!("{addr}/32"),
            "dev",
            &host,
            "src",
            "169.254.170.2",
        ])?;
        live.insert(host);
        return Ok(addr);
    }
    if link_exists(&host) {
        ip(&["link", "del", &host])?;
    }
    let n = pick_free(&used_addresses()?).ok_or("no free address in 169.254.170.0/24")?;
    let addr = Ipv4Addr::new(169, 254, 170, n);
    let result = (|| {
        ip(&[
            "link", "add", &host, "type", "veth", "peer", "name", TASK_IF, "netns", netns,
        ])?;
        ip(&[
            "link",
            "set",
            &host,
            "alias",
            &format!("berth-meta {owner} {task_id}"),
        ])?;
        ip(&["link", "set", &host, "up"])?;
        let mac = std::fs::read_to_string(Path::new("/sys/class/net").join(&host).join("address"))
            .map_err(|e| format!("reading {host}'s address: {e}"))?;
        ip(&[
            "-n",
            netns,
            "addr",
            "add",
            &format!("{addr}/32"),
            "dev",
            TASK_IF,
        ])?;
        ip(&["-n", netns, "link", "set", TASK_IF, "up"])?;
        ip(&[
            "-n",
            netns,
            "route",
            "replace",
            "169.254.170.2/32",
            "dev",
            TASK_IF,
            "scope",
            "link",
            "src",
            &addr.to_string(),
        ])?;
        ip(&[
            "-n",
            netns,
            "neigh",
            "replace",
            "169.254.170.2",
            "lladdr",
            mac.trim(),
            "dev",
            TASK_IF,
            "nud",
            "permanent",
        ])?;
        ip(&[
            "route",
            "replace",
            &format!("{addr}/32"),
            "dev",
            &host,
            "src",
            "169.254.170.2",
        ])?;
        Ok::<(), String>(())
    })();
    if let Err(e) = result {
        let _ = ip(&["link", "del", &host]);
        return Err(e);
    }
    live.insert(host);
    Ok(addr)
}

/// Removes a task's link (the veth pair and so its routes).
pub fn detach(task_id: &str) {
    let host = host_veth(task_id);
    if let Ok(mut g) = ALLOC.lock()
        && let Some(live) = g.as_mut()
    {
        live.remove(&host);
    }
    if link_exists(&host)
        && let Err(e) = ip(&["link", "del", &host])
    {
        tracing::warn!(%e, "removing metadata link");
    }
}

/// Removes `owner`'s links left by a crash: those whose task is not in `keep` (task ids) and
/// not attached by this process.
pub fn remove_stale(owner: &str, keep: &HashSet<String>) {
    let Ok(entries) = std::fs::read_dir("/sys/class/net") else {
        return;
    };
    let Ok(mut g) = ALLOC.lock() else { return };
    let live = g.get_or_insert_with(HashSet::new);
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !is_host_veth(&name) || live.contains(&name) {
            continue;
        }
        let alias = std::fs::read_to_string(e.path().join("ifalias")).unwrap_or_default();
        let mut parts = alias.split_whitespace();
        if parts.next() != Some("berth-meta") || parts.next() != Some(owner) {
            continue;
        }
        if parts.next().is_some_and(|t| keep.contains(t)) {
            continue;
        }
        tracing::info!(link = %name, "removing a stale metadata link");
        if let Err(e) = ip(&["link", "del", &name]) {
            tracing::warn!(%e, "removing a stale metadata link");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses() {
        let h = host_veth("0123456789abcdef");
        assert_eq!(h.len(), 14);
        assert!(is_host_veth(&h));
        assert_eq!(h, host_veth("0123456789abcdef"));
        assert_ne!(h, host_veth("0123456789abcdeg"));
        assert!(!is_host_veth("berth-meta0"));
        let used: HashSet<u8> = [3, 4, 6].into_iter().collect();
        assert_eq!(pick_free(&used), Some(5));
        assert_eq!(pick_free(&HashSet::new()), Some(3));
        let full: HashSet<u8> = (0..=255).collect();
        assert_eq!(pick_free(&full), None);
    }
}
