//! Task networks with the real runtime: a bridge task serving on a static and a dynamic host
//! port reached from the host; a host-mode task; two awsvpc tasks on one subnet whose
//! security groups allow one port and block another, a rule removed while they run (the
//! assignment sent again) cutting new connections, a source-group rule (the peer's /32)
//! letting the peer in; a none task without a route; every task's network gone after it
//! stops. Traffic goes only to 127.0.0.1, to the task bridge's address (created here) and
//! to addresses inside namespaces these tests create. Needs root, `ip` and `nft`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use berth_wire::agent::{
    FirewallRule, NetworkInterface, SecurityGroupRules, TaskAssignment, TaskNetwork,
};
use berth_wire::ecs::shapes as s;
use serde_json::json;

use common::{Env, Fake, ready, wait_for};

/// The tests of this file run one at a time: the 200-task one loads the machine enough to
/// push the others' waits past their limits.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn net_ready(test: &str) -> bool {
    if !ready(test) {
        return false;
    }
    assert!(
        Command::new("nft").arg("--version").output().is_ok(),
        "{test}: nft is missing: apt-get install -y nftables"
    );
    true
}

fn task(env: &Env, network: &str, containers: serde_json::Value) -> TaskAssignment {
    common::task(
        env,
        json!({
            "family": "net", "revision": 1, "networkMode": network,
            "containerDefinitions": containers,
        }),
        json!({}),
    )
}

fn id(arn: &str) -> String {
    arn.rsplit('/').next().unwrap().to_string()
}

/// An HTTP GET of `/` from the host: the whole answer, or None when no connection.
fn host_get(addr: &str, port: u16) -> Option<String> {
    let a: std::net::SocketAddr = format!("{addr}:{port}").parse().unwrap();
    let mut s = std::net::TcpStream::connect_timeout(&a, Duration::from_secs(3)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    write!(s, "GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    Some(out)
}

/// An HTTP GET of `/` from inside network namespace `netns` (busybox nc, 2 s timeout):
/// whether it answered 200.
fn netns_get(netns: &str, addr: &str, port: u16) -> bool {
    let mut child = Command::new("ip")
        .args(["netns", "exec", netns, "busybox", "nc", "-w", "2", addr])
        .arg(port.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"GET / HTTP/1.0\r\n\r\n")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8_lossy(&out.stdout).contains("200 OK")
}

async fn until_running(cp: &Fake, arn: &str) {
    wait_for("RUNNING", Duration::from_secs(60), || {
        let st = cp.task_statuses(arn);
        assert!(
            !st.iter().any(|s| s == "STOPPED"),
            "{arn} stopped: {:?}",
            cp.last_report(arn, "STOPPED")
        );
        st.iter().any(|s| s == "RUNNING")
    })
    .await;
}

async fn until_stopped(cp: &Fake, arn: &str) {
    wait_for("STOPPED", Duration::from_secs(60), || {
        cp.task_statuses(arn).iter().any(|s| s == "STOPPED")
    })
    .await;
}

/// The network bindings a task's RUNNING reports carried.
fn bindings(cp: &Fake, arn: &str) -> Vec<s::NetworkBinding> {
    let st = cp.state.lock().unwrap();
    let mut out = Vec::new();
    for r in st
        .task_reports
        .iter()
        .filter(|r| r.task.as_deref() == Some(arn))
    {
        for c in r.containers.iter().flatten() {
            out.extend(c.network_bindings.clone().unwrap_or_default());
        }
    }
    for c in st
        .container_reports
        .iter()
        .filter(|r| r.task.as_deref() == Some(arn))
    {
        out.extend(c.network_bindings.clone().unwrap_or_default());
    }
    out
}

/// What of tasks' networks is on the host now.
pub struct Snapshot {
    netns: Vec<String>,
    links: Vec<String>,
    tables: String,
    manifests: Vec<String>,
    reservations: Vec<(String, String)>,
}

fn names(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

impl Snapshot {
    pub fn take() -> Snapshot {
        let run = Path::new(berth_agent::network::RUN_DIR);
        let tables = Command::new("nft")
            .args(["list", "tables"])
            .output()
            .unwrap();
        let mut reservations = Vec::new();
        for kind in ["ipam", "ports"] {
            for e in std::fs::read_dir(run.join(kind))
                .into_iter()
                .flatten()
                .flatten()
            {
                if let Ok(owner) = std::fs::read_to_string(e.path()) {
                    reservations.push((e.path().display().to_string(), owner));
                }
            }
        }
        Snapshot {
            netns: names(Path::new("/var/run/netns")),
            links: names(Path::new("/sys/class/net")),
            tables: String::from_utf8_lossy(&tables.stdout).into_owned(),
            manifests: names(&run.join("tasks")),
            reservations,
        }
    }

    /// What of a task's network is still there (empty when nothing).
    pub fn of(&self, task_id: &str) -> Vec<String> {
        let mut out = Vec::new();
        let ns = format!("berth-{task_id}");
        if self.netns.contains(&ns) {
            out.push(format!("netns {ns}"));
        }
        for l in [
            berth_agent::network::bridge_veth(task_id),
            berth_agent::network::eni_veth(task_id),
            berth_agent::metadata::net::host_veth(task_id),
        ] {
            if self.links.contains(&l) {
                out.push(format!("link {l}"));
            }
        }
        let table = berth_agent::network::port_table_name(task_id);
        if self
            .tables
            .lines()
            .any(|l| l.trim() == format!("table ip {table}"))
        {
            out.push(format!("nft table {table}"));
        }
        if self.manifests.contains(&format!("{task_id}.json")) {
            out.push("manifest".into());
        }
        for (path, owner) in &self.reservations {
            if owner == task_id {
                out.push(format!("reservation {path}"));
            }
        }
        out
    }
}

/// What of a task's network is still on the host (empty when nothing).
pub fn leftovers(task_id: &str) -> Vec<String> {
    Snapshot::take().of(task_id)
}

/// A TCP port nothing listens on now (for a static mapping).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bridge_task_serves_on_static_and_dynamic_host_ports() {
    if !net_ready("bridge_task_serves_on_static_and_dynamic_host_ports") {
        return;
    }
    let _serial = SERIAL.lock().await;
    let env = Env::new("netb");
    let cp = Arc::new(Fake::default());
    let (stop, h) = env.start(&cp);
    let static_port = free_port();
    let t = task(
        &env,
        "bridge",
        json!([{
            "name": "web", "image": "busybox", "stopTimeout": 1,
            "command": ["sh", "-c", "mkdir -p /w && echo hello-bridge > /w/index.html && busybox httpd -p 81 -h /w && exec busybox httpd -f -p 80 -h /w"],
            "portMappings": [
                {"containerPort": 80, "hostPort": static_port},
                {"containerPort": 81},
            ],
        }]),
    );
    let arn = t.task_arn.clone();
    cp.assign(t);
    until_running(&cp, &arn).await;
    let b = bindings(&cp, &arn);
    assert_eq!(b.len(), 2, "{b:?}");
    let host_port = |cport: i32| {
        let x = b.iter().find(|x| x.container_port == Some(cport)).unwrap();
        assert_eq!(x.bind_ip.as_deref(), Some("0.0.0.0"));
        assert_eq!(x.protocol, Some(s::TransportProtocol::Tcp));
        u16::try_from(x.host_port.unwrap()).unwrap()
    };
    assert_eq!(host_port(80), static_port);
    let dynamic = host_port(81);
    assert!((49153..=65535).contains(&dynamic), "{dynamic}");
    // From the host: loopback and the host's own address on the task bridge.
    for addr in ["127.0.0.1", "169.254.172.1"] {
        for port in [static_port, dynamic] {
            let mut got = None;
            for _ in 0..50 {
                got = host_get(addr, port);
                if got.as_deref().is_some_and(|g| g.contains("hello-bridge")) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            assert!(
                got.as_deref().is_some_and(|g| g.contains("hello-bridge")),
                "{addr}:{port}: {got:?}"
            );
        }
    }
    cp.stop(&arn);
    until_stopped(&cp, &arn).await;
    wait_for("cleanup", Duration::from_secs(10), || {
        leftovers(&id(&arn)).is_empty()
    })
    .await;
    assert!(host_get("127.0.0.1", dynamic).is_none_or(|g| !g.contains("hello-bridge")));
    let _ = stop.send(());
    h.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn host_task_serves_on_the_host_and_reports_its_bindings() {
    if !net_ready("host_task_serves_on_the_host_and_reports_its_bindings") {
        return;
    }
    let _serial = SERIAL.lock().await;
    let env = Env::new("neth");
    let cp = Arc::new(Fake::default());
    let (stop, h) = env.start(&cp);
    let port = free_port();
    let t = task(
        &env,
        "host",
        json!([{
            "name": "web", "image": "busybox", "stopTimeout": 1,
            "command": ["sh", "-c", format!("mkdir -p /w && echo hello-host > /w/index.html && exec busybox httpd -f -p 127.0.0.1:{port} -h /w")],
            "portMappings": [{"containerPort": port, "hostPort": port}],
        }]),
    );
    let arn = t.task_arn.clone();
    cp.assign(t);
    until_running(&cp, &arn).await;
    let b = bindings(&cp, &arn);
    assert_eq!(b.len(), 1);
    assert_eq!(b[0].host_port, Some(i32::from(port)));
    let mut got = None;
    for _ in 0..50 {
        got = host_get("127.0.0.1", port);
        if got.as_deref().is_some_and(|g| g.contains("hello-host")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(got.unwrap().contains("hello-host"));
    cp.stop(&arn);
    until_stopped(&cp, &arn).await;
    let _ = stop.send(());
    h.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn none_task_has_no_route_out() {
    if !net_ready("none_task_has_no_route_out") {
        return;
    }
    let _serial = SERIAL.lock().await;
    let env = Env::new("netn");
    let cp = Arc::new(Fake::default());
    let (stop, h) = env.start(&cp);
    // Exit 0 only without any route or non-loopback address, and when a connection to the
    // task bridge fails.
    let t = task(
        &env,
        "none",
        json!([{
            "name": "app", "image": "busybox",
            "command": ["sh", "-c", "test -z \"$(busybox ip route)\" || exit 3; busybox ip -o addr | grep -v ' lo ' | grep -q . && exit 4; echo x | nc -w 1 169.254.172.1 80 && exit 5; exit 0"],
        }]),
    );
    let arn = t.task_arn.clone();
    cp.assign(t);
    until_stopped(&cp, &arn).await;
    assert_eq!(cp.stopped(&arn, "app"), Some((Some(0), None)));
    let _ = stop.send(());
    h.await.unwrap();
}

fn rule(protocol: &str, from: Option<i32>, to: Option<i32>, cidrs: &[&str]) -> FirewallRule {
    FirewallRule {
        protocol: protocol.into(),
        from_port: from,
        to_port: to,
        cidrs: cidrs.iter().map(|c| c.to_string()).collect(),
    }
}

/// An ENI on subnet 100.64.`net`.0/24 with address .`host`.
fn eni(net: u8, host: u8, groups: Vec<SecurityGroupRules>) -> TaskNetwork {
    TaskNetwork {
        interface: NetworkInterface {
            network_interface_id: format!("eni-0000000000000{net:02x}{host:02x}"),
            subnet_id: format!("subnet-test{net}"),
            vpc_id: "vpc-test".into(),
            subnet_cidr: format!("100.64.{net}.0/24"),
            vpc_cidr: "100.64.0.0/16".into(),
            private_ipv4_address: format!("100.64.{net}.{host}"),
            gateway_ipv4_address: format!("100.64.{net}.1"),
            mac_address: format!("0e:00:00:00:{net:02x}:{host:02x}"),
            private_dns_name: format!("ip-100-64-{net}-{host}.ec2.internal"),
        },
        security_groups: groups,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn awsvpc_security_groups_allow_block_and_change_while_running() {
    if !net_ready("awsvpc_security_groups_allow_block_and_change_while_running") {
        return;
    }
    let _serial = SERIAL.lock().await;
    let env = Env::new("netv");
    let cp = Arc::new(Fake::default());
    let (stop, h) = env.start(&cp);
    // A fixed test subnet: its host bridge stays, as subnet bridges do.
    let net = 213u8;
    let (a_ip, b_ip) = (format!("100.64.{net}.10"), format!("100.64.{net}.11"));
    let all_out = || vec![rule("-1", None, None, &["0.0.0.0/0"])];
    // A serves on 80, 81 and 82: 80 from the subnet, 82 from B's /32 (a source-group rule
    // as the control plane resolves it), 83 from another address only; 81 from nobody.
    let subnet = format!("100.64.{net}.0/24");
    let b32 = format!("{b_ip}/32");
    let a_groups = |with_80: bool| {
        let mut ingress = vec![
            rule("tcp", Some(82), Some(82), &[b32.as_str()]),
            rule("tcp", Some(83), Some(83), &["100.64.250.250/32"]),
            rule("icmp", Some(-1), Some(-1), &[subnet.as_str()]),
        ];
        if with_80 {
            ingress.push(rule("tcp", Some(80), Some(80), &[subnet.as_str()]));
        }
        vec![SecurityGroupRules {
            group_id: "sg-0a".into(),
            ingress,
            egress: all_out(),
        }]
    };
    let serve = "mkdir -p /w && echo hello-vpc > /w/index.html && for p in 81 82 83; do busybox httpd -p $p -h /w; done && exec busybox httpd -f -p 80 -h /w";
    let mut a = task(
        &env,
        "awsvpc",
        json!([
            {"name": "web", "image": "busybox", "stopTimeout": 1, "command": ["sh", "-c", serve]},
            // A second container of the task reaches the first on localhost.
            {"name": "side", "image": "busybox", "stopTimeout": 1, "essential": false,
             "command": ["sh", "-c", "for i in $(seq 50); do echo 'GET / HTTP/1.0' | nc -w 1 127.0.0.1 80 | grep -q hello-vpc && exit 0; sleep 0.2; done; exit 1"]},
        ]),
    );
    a.network = Some(eni(net, 10, a_groups(true)));
    let mut b = task(
        &env,
        "awsvpc",
        json!([{"name": "client", "image": "busybox", "stopTimeout": 1, "command": ["sleep", "300"]}]),
    );
    b.network = Some(eni(
        net,
        11,
        vec![SecurityGroupRules {
            group_id: "sg-0b".into(),
            ingress: vec![],
            egress: all_out(),
        }],
    ));
    let (a_arn, b_arn) = (a.task_arn.clone(), b.task_arn.clone());
    cp.assign(a.clone());
    cp.assign(b.clone());
    until_running(&cp, &a_arn).await;
    until_running(&cp, &b_arn).await;
    let b_ns = format!("berth-{}", id(&b_arn));
    let a_ns = format!("berth-{}", id(&a_arn));
    // The ENI: its MAC and address on eth0 of A's namespace.
    let link = Command::new("ip")
        .args(["-n", &a_ns, "-o", "addr", "show", "dev", "eth0"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&link.stdout).contains(&format!("{a_ip}/24")));
    let mac = Command::new("ip")
        .args(["-n", &a_ns, "link", "show", "dev", "eth0"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&mac.stdout).contains(&format!("0e:00:00:00:{net:02x}:0a")));
    wait_for("A to serve on 80", Duration::from_secs(20), || {
        netns_get(&b_ns, &a_ip, 80)
    })
    .await;
    assert!(netns_get(&b_ns, &a_ip, 82), "source-group rule lets B in");
    assert!(!netns_get(&b_ns, &a_ip, 81), "no rule for 81");
    assert!(
        !netns_get(&b_ns, &a_ip, 83),
        "83 is for another address only"
    );
    // B has no ingress rule: A cannot reach B (B's listener is its own busybox nc here).
    assert!(!netns_get(&a_ns, &b_ip, 80));
    wait_for(
        "side container to reach web on localhost",
        Duration::from_secs(30),
        || cp.stopped(&a_arn, "side").is_some(),
    )
    .await;
    assert_eq!(cp.stopped(&a_arn, "side"), Some((Some(0), None)));
    // The rule for 80 is revoked: the control plane sends the assignment again.
    let mut a2 = a.clone();
    a2.network = Some(eni(net, 10, a_groups(false)));
    cp.assign(a2);
    let revoked = std::time::Instant::now();
    wait_for("80 to be cut", Duration::from_secs(10), || {
        !netns_get(&b_ns, &a_ip, 80)
    })
    .await;
    eprintln!(
        "revocation effective after {:?} (one probe included)",
        revoked.elapsed()
    );
    assert!(netns_get(&b_ns, &a_ip, 82), "82 still allowed");
    for arn in [&a_arn, &b_arn] {
        cp.stop(arn);
    }
    for arn in [&a_arn, &b_arn] {
        until_stopped(&cp, arn).await;
        wait_for("cleanup", Duration::from_secs(10), || {
            leftovers(&id(arn)).is_empty()
        })
        .await;
    }
    // The subnet's bridge goes with its last task.
    let br = berth_agent::network::subnet_bridge(&format!("subnet-test{net}"));
    wait_for("the subnet bridge to go", Duration::from_secs(10), || {
        !Path::new("/sys/class/net").join(&br).exists()
    })
    .await;
    let _ = stop.send(());
    h.await.unwrap();
}

/// 200 tasks (bridge with a dynamic and a static port, awsvpc with an ENI and a group),
/// the agent killed while they start (its runtime dropped at once: no task manager gets to
/// clean up), some tasks stopped or forgotten by the control plane meanwhile, a new agent on
/// the same state directory: once every task has stopped, nothing of their networks is left.
#[test]
fn two_hundred_tasks_and_a_kill_leave_nothing_behind() {
    if !net_ready("two_hundred_tasks_and_a_kill_leave_nothing_behind") {
        return;
    }
    let _serial = SERIAL.blocking_lock();
    const N: usize = 200;
    // Runs until told to stop, and stops at once.
    const LONG: &str = "trap 'exit 0' TERM; sleep 300 & wait";
    let env = Env::new("netk");
    let cp = Arc::new(Fake::default());
    let start_agent = |env: &Env| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(4)
            .enable_all()
            .build()
            .unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let agent = env.agent(cp.clone());
        rt.spawn(async move {
            agent
                .run(async move {
                    let _ = rx.await;
                })
                .await
                .unwrap();
        });
        (rt, tx)
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let (agent1, _keep1) = start_agent(&env);
    let mut arns = Vec::new();
    let base_port = free_port();
    for i in 0..N {
        let mut t = if i % 2 == 0 {
            let mut ports = vec![json!({"containerPort": 80})];
            if i % 10 == 0 {
                // A static one too, for some (distinct per task).
                ports.push(json!({"containerPort": 81, "hostPort": 20000 + (base_port as usize + i) % 20000}));
            }
            task(
                &env,
                "bridge",
                json!([{"name": "app", "image": "busybox", "stopTimeout": 1,
                        "command": ["sh", "-c", LONG], "portMappings": ports}]),
            )
        } else {
            task(
                &env,
                "awsvpc",
                json!([{"name": "app", "image": "busybox", "stopTimeout": 1, "command": ["sh", "-c", LONG]}]),
            )
        };
        if i % 2 == 1 {
            let host = 10 + (i / 2) as u8;
            t.network = Some(eni(
                214,
                host,
                vec![SecurityGroupRules {
                    group_id: "sg-0c".into(),
                    ingress: vec![rule("tcp", Some(80), Some(80), &["100.64.214.0/24"])],
                    egress: vec![rule("-1", None, None, &["0.0.0.0/0"])],
                }],
            ));
        }
        arns.push(t.task_arn.clone());
        cp.assign(t);
    }
    let running = |cp: &Fake| {
        arns.iter()
            .filter(|a| cp.task_statuses(a).iter().any(|s| s == "RUNNING"))
            .count()
    };
    let t0 = std::time::Instant::now();
    rt.block_on(wait_for(
        "half the tasks RUNNING",
        Duration::from_secs(60),
        || running(&cp) >= N / 2,
    ));
    eprintln!("{} tasks RUNNING after {:?}", N / 2, t0.elapsed());
    // kill -9: every task manager is dropped where it is (blocking calls in flight finish).
    agent1.shutdown_timeout(Duration::from_secs(5));
    eprintln!("agent killed with {} tasks running", running(&cp));
    // Meanwhile the control plane stops some tasks and forgets others (as after a
    // reassignment): the new agent must clean up both.
    for a in arns.iter().step_by(7) {
        cp.stop(a);
    }
    {
        let mut st = cp.state.lock().unwrap();
        let forgotten: Vec<String> = arns.iter().skip(3).step_by(11).cloned().collect();
        st.tasks.retain(|t| !forgotten.contains(&t.task_arn));
        st.seq += 1;
    }
    let t0 = std::time::Instant::now();
    let (agent2, keep2) = start_agent(&env);
    rt.block_on(wait_for(
        "every task RUNNING or STOPPED",
        Duration::from_secs(60),
        || {
            arns.iter().all(|a| {
                let st = cp.task_statuses(a);
                st.iter().any(|s| s == "RUNNING" || s == "STOPPED")
                    || !cp
                        .state
                        .lock()
                        .unwrap()
                        .tasks
                        .iter()
                        .any(|t| &t.task_arn == a)
            })
        },
    ));
    eprintln!("restarted agent settled after {:?}", t0.elapsed());
    for a in &arns {
        cp.stop(a);
    }
    let t0 = std::time::Instant::now();
    rt.block_on(async {
        while t0.elapsed() < Duration::from_secs(60) {
            let snap = Snapshot::take();
            if arns.iter().all(|a| snap.of(&id(a)).is_empty()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    eprintln!("cleanup took {:?}", t0.elapsed());
    let snap = Snapshot::take();
    let left: Vec<(String, Vec<String>, Vec<String>)> = arns
        .iter()
        .map(|a| (a.clone(), snap.of(&id(a)), cp.task_statuses(a)))
        .filter(|(_, l, _)| !l.is_empty())
        .collect();
    assert!(
        left.is_empty(),
        "{} left: {:?}",
        left.len(),
        &left[..left.len().min(5)]
    );
    let _ = keep2.send(());
    agent2.shutdown_timeout(Duration::from_secs(10));
}
