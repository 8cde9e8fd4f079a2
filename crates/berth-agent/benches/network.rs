//! What task networks cost: the time from assignment to RUNNING per network mode (one
//! container, tasks started one after the other), and the TCP connection rate between two
//! awsvpc tasks on one subnet with their security groups on (an nft table of 50 rules in
//! each namespace) and off (tables removed). The agent runs in process against an in-memory
//! control plane, as in the agent's tests; the benchmark's own binary is the server and
//! client inside the task namespaces (`--serve PORT`, `--connect ADDR PORT SECS`).
//!
//! `cargo bench -p berth-agent --bench network` (root; see BENCHMARKS.md). Knobs:
//! `BERTH_BENCH_TASKS` (tasks per mode, default 10), `BERTH_BENCH_SECS` (seconds per
//! connection-rate run, default 3).

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::io::{Read, Write};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use berth_wire::agent::{FirewallRule, NetworkInterface, SecurityGroupRules, TaskNetwork};
use serde_json::json;

const LONG: &str = "trap 'exit 0' TERM; sleep 300 & wait";
const SUBNET: u8 = 215;

fn knob(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn serve(port: u16) {
    let l = std::net::TcpListener::bind(("0.0.0.0", port)).unwrap();
    for s in l.incoming().flatten() {
        let mut s = s;
        let _ = s.write_all(b"x");
    }
}

fn connect(addr: &str, port: u16, secs: u64) {
    let a: std::net::SocketAddr = format!("{addr}:{port}").parse().unwrap();
    let end = Instant::now() + Duration::from_secs(secs);
    let (mut ok, mut failed) = (0u64, 0u64);
    while Instant::now() < end {
        match std::net::TcpStream::connect_timeout(&a, Duration::from_secs(1)) {
            Ok(mut s) => {
                let mut b = [0u8; 1];
                if s.read_exact(&mut b).is_ok() {
                    ok += 1;
                } else {
                    failed += 1;
                }
            }
            Err(_) => failed += 1,
        }
    }
    println!("{ok} {failed}");
}

fn rule(protocol: &str, from: Option<i32>, to: Option<i32>, cidrs: &[&str]) -> FirewallRule {
    FirewallRule {
        protocol: protocol.into(),
        from_port: from,
        to_port: to,
        cidrs: cidrs.iter().map(|c| c.to_string()).collect(),
    }
}

/// 50 rules: the port served from the subnet, and 49 others (other ports, other /32s).
fn groups(port: u16) -> Vec<SecurityGroupRules> {
    let mut ingress = vec![rule(
        "tcp",
        Some(i32::from(port)),
        Some(i32::from(port)),
        &[&format!("100.64.{SUBNET}.0/24")],
    )];
    for i in 0..49 {
        let cidr = format!("10.{i}.0.1/32");
        ingress.push(rule("tcp", Some(1000 + i), Some(1000 + i), &[&cidr]));
    }
    vec![SecurityGroupRules {
        group_id: "sg-0bench".into(),
        ingress,
        egress: vec![rule("-1", None, None, &["0.0.0.0/0"])],
    }]
}

fn eni(host: u8, groups: Vec<SecurityGroupRules>) -> TaskNetwork {
    TaskNetwork {
        interface: NetworkInterface {
            network_interface_id: format!("eni-00000000000000b{host:02x}"),
            subnet_id: format!("subnet-bench{SUBNET}"),
            vpc_id: "vpc-bench".into(),
            subnet_cidr: format!("100.64.{SUBNET}.0/24"),
            vpc_cidr: "100.64.0.0/16".into(),
            private_ipv4_address: format!("100.64.{SUBNET}.{host}"),
            gateway_ipv4_address: format!("100.64.{SUBNET}.1"),
            mac_address: format!("0e:00:00:00:{SUBNET:02x}:{host:02x}"),
            private_dns_name: format!("ip-100-64-{SUBNET}-{host}.ec2.internal"),
        },
        security_groups: groups,
    }
}

fn task(
    env: &common::Env,
    mode: &str,
    ports: serde_json::Value,
) -> berth_wire::agent::TaskAssignment {
    common::task(
        env,
        json!({
            "family": "bench", "revision": 1, "networkMode": mode,
            "containerDefinitions": [{"name": "app", "image": "busybox", "stopTimeout": 1,
                "command": ["sh", "-c", LONG], "portMappings": ports}],
        }),
        json!({}),
    )
}

async fn until(cp: &common::Fake, arn: &str, status: &str) {
    common::wait_for(status, Duration::from_secs(60), || {
        cp.task_statuses(arn).iter().any(|s| s == status)
    })
    .await;
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

async fn bench() {
    let n = knob("BERTH_BENCH_TASKS", 10) as usize;
    let secs = knob("BERTH_BENCH_SECS", 3);
    let env = common::Env::new("bench");
    let cp = Arc::new(common::Fake::default());
    let (stop, h) = env.start(&cp);
    println!("## time from assignment to RUNNING ({n} tasks per mode, one after the other)\n");
    println!("| network mode | median (ms) | mean (ms) | added vs host (median, ms) |");
    println!("|---|---:|---:|---:|");
    let modes: [(&str, &str); 6] = [
        ("host", "host"),
        ("none", "none"),
        ("bridge, no port mapping", "bridge"),
        ("bridge, 2 mappings (static + dynamic)", "bridge"),
        ("awsvpc without an ENI (metadata link only)", "awsvpc"),
        ("awsvpc with an ENI and a 50-rule group", "awsvpc"),
    ];
    let mut host_median = 0.0;
    for (k, (label, mode)) in modes.iter().enumerate() {
        let mut times = Vec::new();
        for i in 0..n {
            let ports = if k == 3 {
                json!([{"containerPort": 80, "hostPort": 30000 + i}, {"containerPort": 81}])
            } else {
                json!([])
            };
            let mut t = task(&env, mode, ports);
            if k == 5 {
                t.network = Some(eni(10 + i as u8, groups(80)));
            }
            let arn = t.task_arn.clone();
            let t0 = Instant::now();
            cp.assign(t);
            until(&cp, &arn, "RUNNING").await;
            times.push(t0.elapsed().as_secs_f64() * 1000.0);
            cp.stop(&arn);
            until(&cp, &arn, "STOPPED").await;
        }
        let mean = times.iter().sum::<f64>() / times.len() as f64;
        let med = median(&mut times);
        if k == 0 {
            host_median = med;
        }
        println!(
            "| {label} | {med:.0} | {mean:.0} | {:+.0} |",
            med - host_median
        );
    }

    // The network setup alone, as the task manager calls it (then torn down).
    println!(
        "\n## network setup and teardown alone ({} tasks per mode)\n",
        2 * n
    );
    println!("| network mode | setup median (ms) | teardown median (ms) |");
    println!("|---|---:|---:|");
    let state = env.state_dir();
    for k in 0..4 {
        let (mut up, mut down) = (Vec::new(), Vec::new());
        for i in 0..2 * n {
            let tid = format!("benchnet{k}x{i}x{}", std::process::id());
            let nsn = format!("berth-{tid}");
            let record = state.join("tasks").join(format!("{tid}.json"));
            let t0 = Instant::now();
            berth_agent::network::claim(&tid, &nsn, &state, &record).unwrap();
            match k {
                0 => {
                    berth_agent::network::setup_bridge(&tid, &nsn, &[]).unwrap();
                }
                1 => {
                    let m = |c: u16, h: Option<u16>| berth_agent::network::Mapping {
                        container_name: "app".into(),
                        container_port: c,
                        host_port: h,
                        protocol: berth_agent::network::Proto::Tcp,
                        preferred: None,
                    };
                    berth_agent::network::setup_bridge(
                        &tid,
                        &nsn,
                        &[m(80, Some(31000 + i as u16)), m(81, None)],
                    )
                    .unwrap();
                }
                2 => {
                    berth_agent::network::ensure_netns(&nsn).unwrap();
                    berth_agent::metadata::net::attach(&nsn, &tid, "bench").unwrap();
                }
                _ => {
                    berth_agent::network::setup_awsvpc(&tid, &nsn, &eni(100 + i as u8, groups(80)))
                        .unwrap();
                    berth_agent::metadata::net::attach(&nsn, &tid, "bench").unwrap();
                }
            }
            up.push(t0.elapsed().as_secs_f64() * 1000.0);
            let t1 = Instant::now();
            berth_agent::network::teardown(&tid, &nsn);
            down.push(t1.elapsed().as_secs_f64() * 1000.0);
        }
        let label = [
            "bridge, no port mapping",
            "bridge, 2 mappings (static + dynamic)",
            "awsvpc without an ENI (namespace + metadata link)",
            "awsvpc with an ENI, a 50-rule group and the metadata link",
        ][k];
        println!(
            "| {label} | {:.1} | {:.1} |",
            median(&mut up),
            median(&mut down)
        );
    }

    // Two awsvpc tasks, A serving, B connecting.
    let port = 7000u16;
    let mut a = task(&env, "awsvpc", json!([]));
    a.network = Some(eni(200, groups(port)));
    let mut b = task(&env, "awsvpc", json!([]));
    b.network = Some(eni(201, groups(port)));
    let (a_arn, b_arn) = (a.task_arn.clone(), b.task_arn.clone());
    cp.assign(a);
    cp.assign(b);
    until(&cp, &a_arn, "RUNNING").await;
    until(&cp, &b_arn, "RUNNING").await;
    let ns = |arn: &str| format!("berth-{}", arn.rsplit('/').next().unwrap());
    let me = std::env::current_exe().unwrap();
    let mut server = Command::new("ip")
        .args(["netns", "exec", &ns(&a_arn)])
        .arg(&me)
        .args(["--serve", &port.to_string()])
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rate = |label: &str| {
        let out = Command::new("ip")
            .args(["netns", "exec", &ns(&b_arn)])
            .arg(&me)
            .args([
                "--connect",
                &format!("100.64.{SUBNET}.200"),
                &port.to_string(),
            ])
            .arg(secs.to_string())
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        let mut f = text.split_whitespace();
        let ok: f64 = f.next().and_then(|x| x.parse().ok()).unwrap_or(0.0);
        let failed: u64 = f.next().and_then(|x| x.parse().ok()).unwrap_or(0);
        println!("| {label} | {:.0} | {failed} |", ok / secs as f64);
    };
    println!("\n## TCP connections per second, task B to task A (one client, {secs} s each)\n");
    println!("| security groups | connections/s | failed |");
    println!("|---|---:|---:|");
    // Alternated, three rounds each, so that the machine's noise shows.
    for round in 1..=3 {
        for arn in [&a_arn, &b_arn] {
            berth_agent::network::apply_security_groups(&ns(arn), &groups(port)).unwrap();
        }
        rate(&format!("on (50 rules per task), round {round}"));
        for arn in [&a_arn, &b_arn] {
            let out = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &ns(arn),
                    "nft",
                    "delete",
                    "table",
                    "inet",
                    "berth-sg",
                ])
                .output()
                .unwrap();
            assert!(out.status.success());
        }
        rate(&format!("off (tables removed), round {round}"));
    }
    let _ = server.kill();
    let _ = server.wait();
    cp.stop(&a_arn);
    cp.stop(&b_arn);
    until(&cp, &a_arn, "STOPPED").await;
    until(&cp, &b_arn, "STOPPED").await;
    let _ = stop.send(());
    h.await.unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("--serve") => return serve(args[2].parse().unwrap()),
        Some("--connect") => {
            return connect(&args[2], args[3].parse().unwrap(), args[4].parse().unwrap());
        }
        _ => {}
    }
    if !common::ready("network bench") {
        return;
    }
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap()
        .block_on(bench());
}
