//! Task networks through the server: a bridge-mode task run with the aws CLI on a `berth
//! agent` host serves on a static and a dynamic host port; DescribeTasks shows its
//! networkBindings; the host reaches both ports on 127.0.0.1; after StopTask the ports are
//! closed. Two awsvpc tasks in the default VPC, with security groups made with `aws ec2`: the
//! client's group reaches the one port a source-group rule allows and not another, the host
//! (in no group) reaches neither, revoking the rule while they run cuts the traffic, and the
//! ENIs are gone after StopTask. Needs root, runc, busybox-static, iproute2, nftables and bash
//! (CI has them).

// Tests fail by panicking: unwrap/expect are the intended failure mode here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use berth_e2e::{
    BerthAgent, BerthServer, REGION, busybox_image_tar, containers_or_skip, unique_name,
};
use serde_json::{Value, json};

fn http_get(port: u16) -> Option<String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(3)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(3))).ok()?;
    s.write_all(b"GET / HTTP/1.0\r\n\r\n").ok()?;
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    Some(out)
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn wait<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn bridge_task_port_mappings_through_the_cli() {
    if !containers_or_skip("bridge_task_port_mappings_through_the_cli") {
        return;
    }
    let berth = BerthServer::builder().subcommand("server").start();
    let cluster = unique_name("bridge");
    berth.aws_cli_json(
        REGION,
        &["ecs", "create-cluster", "--cluster-name", &cluster],
    );
    let agent = BerthAgent::start(&berth, &cluster, "us-east-1a");
    agent.load_image(&busybox_image_tar());
    wait("the instance to connect", Duration::from_secs(60), || {
        let l = berth.aws_cli_json(
            REGION,
            &["ecs", "list-container-instances", "--cluster", &cluster],
        );
        let arns = l["containerInstanceArns"].as_array()?.clone();
        let arn = arns.first()?.as_str()?.to_string();
        let d = berth.aws_cli_json(
            REGION,
            &[
                "ecs",
                "describe-container-instances",
                "--cluster",
                &cluster,
                "--container-instances",
                &arn,
            ],
        );
        (d["containerInstances"][0]["agentConnected"] == json!(true)).then_some(())
    });
    let static_port = free_port();
    let containers = json!([{
        "name": "web", "image": "busybox", "memory": 64,
        "command": ["sh", "-c", "mkdir -p /w && echo hello-e2e > /w/index.html && busybox httpd -p 81 -h /w && exec busybox httpd -f -p 80 -h /w"],
        "portMappings": [
            {"containerPort": 80, "hostPort": static_port, "protocol": "tcp"},
            {"containerPort": 81, "protocol": "tcp"}
        ]
    }]);
    let td = berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "register-task-definition",
            "--family",
            "web-bridge",
            "--network-mode",
            "bridge",
            "--container-definitions",
            &containers.to_string(),
        ],
    );
    assert_eq!(td["taskDefinition"]["networkMode"], "bridge");
    let run = berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "run-task",
            "--cluster",
            &cluster,
            "--task-definition",
            "web-bridge",
            "--launch-type",
            "EC2",
        ],
    );
    assert_eq!(run["failures"], json!([]), "{run}");
    let arn = run["tasks"][0]["taskArn"].as_str().unwrap().to_string();
    let describe = || {
        berth.aws_cli_json(
            REGION,
            &[
                "ecs",
                "describe-tasks",
                "--cluster",
                &cluster,
                "--tasks",
                &arn,
            ],
        )["tasks"][0]
            .clone()
    };
    let task: Value = wait(
        "RUNNING with network bindings",
        Duration::from_secs(60),
        || {
            let t = describe();
            assert_ne!(t["lastStatus"], "STOPPED", "{t:#}\n{}", agent.log());
            (t["lastStatus"] == "RUNNING"
                && t["containers"][0]["networkBindings"]
                    .as_array()
                    .is_some_and(|b| b.len() == 2))
            .then_some(t)
        },
    );
    let bindings = task["containers"][0]["networkBindings"].as_array().unwrap();
    let host_port = |cport: u64| -> u16 {
        let b = bindings
            .iter()
            .find(|b| b["containerPort"] == json!(cport))
            .unwrap_or_else(|| panic!("no binding for {cport}: {bindings:?}"));
        assert_eq!(b["bindIP"], "0.0.0.0");
        assert_eq!(b["protocol"], "tcp");
        u16::try_from(b["hostPort"].as_u64().unwrap()).unwrap()
    };
    assert_eq!(host_port(80), static_port);
    let dynamic = host_port(81);
    assert!((49153..=65535).contains(&dynamic), "{dynamic}");
    // The port the agent forwards is the one placement reserved on the instance.
    let ci = task["containerInstanceArn"].as_str().unwrap().to_string();
    let d = berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "describe-container-instances",
            "--cluster",
            &cluster,
            "--container-instances",
            &ci,
        ],
    );
    let reserved: Vec<String> = d["containerInstances"][0]["remainingResources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "PORTS")
        .and_then(|r| r["stringSetValue"].as_array())
        .map(|v| {
            v.iter()
                .filter_map(|x| x.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    for p in [static_port, dynamic] {
        assert!(reserved.contains(&p.to_string()), "{p} not in {reserved:?}");
    }
    for port in [static_port, dynamic] {
        let got = wait("an answer", Duration::from_secs(10), || {
            http_get(port).filter(|g| g.contains("hello-e2e"))
        });
        assert!(got.contains("200 OK"), "{got}");
    }
    berth.aws_cli_json(
        REGION,
        &["ecs", "stop-task", "--cluster", &cluster, "--task", &arn],
    );
    wait("STOPPED", Duration::from_secs(60), || {
        (describe()["lastStatus"] == "STOPPED").then_some(())
    });
    wait("the ports to close", Duration::from_secs(10), || {
        [static_port, dynamic]
            .iter()
            .all(|p| http_get(*p).is_none_or(|g| !g.contains("hello-e2e")))
            .then_some(())
    });
}

/// An HTTP GET of `http://addr:port/` made from inside `namespace` (bash's `/dev/tcp` under
/// `ip netns exec`; the static busybox's wget crashes on a glibc host): whether the server's
/// page came back within 2 s.
fn fetch_from(namespace: &str, addr: &str, port: u16) -> bool {
    let script = format!(
        "exec 3<>/dev/tcp/{addr}/{port} && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 && cat <&3"
    );
    std::process::Command::new("ip")
        .args([
            "netns", "exec", namespace, "timeout", "2", "bash", "-c", &script,
        ])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("vpc-e2e"))
}

/// Two awsvpc tasks through the API: groups created with `aws ec2`, a rule naming the
/// client's group as source lets the client reach one port of the server and not another;
/// the host (in no group) is refused; revoking the rule while both run cuts the traffic;
/// after StopTask the ENIs are gone.
#[test]
fn awsvpc_security_groups_through_the_cli() {
    if !containers_or_skip("awsvpc_security_groups_through_the_cli") {
        return;
    }
    let berth = BerthServer::builder().subcommand("server").start();
    let cli = |args: &[&str]| berth.aws_cli_json(REGION, args);
    let cluster = unique_name("vpc");
    cli(&["ecs", "create-cluster", "--cluster-name", &cluster]);
    let agent = BerthAgent::start(&berth, &cluster, "us-east-1a");
    agent.load_image(&busybox_image_tar());
    let subnet = berth.default_subnet();
    let vpc = cli(&["ec2", "describe-subnets", "--subnet-ids", &subnet])["Subnets"][0]["VpcId"]
        .as_str()
        .unwrap()
        .to_string();
    let group = |name: &str| -> String {
        cli(&[
            "ec2",
            "create-security-group",
            "--group-name",
            &unique_name(name),
            "--description",
            name,
            "--vpc-id",
            &vpc,
        ])["GroupId"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (web, client) = (group("web"), group("client"));
    let rule = [
        "--group-id",
        web.as_str(),
        "--protocol",
        "tcp",
        "--port",
        "8080",
        "--source-group",
        client.as_str(),
    ];
    cli(&[&["ec2", "authorize-security-group-ingress"][..], &rule[..]].concat());

    let def = |family: &str, command: &str| {
        let containers = json!([{
            "name": "app", "image": "busybox", "memory": 64, "stopTimeout": 2,
            "command": ["sh", "-c", command],
        }]);
        cli(&[
            "ecs",
            "register-task-definition",
            "--family",
            family,
            "--network-mode",
            "awsvpc",
            "--requires-compatibilities",
            "EC2",
            "--container-definitions",
            &containers.to_string(),
        ]);
    };
    def(
        "vpc-web",
        "mkdir -p /w && echo vpc-e2e > /w/index.html && busybox httpd -p 9090 -h /w && exec busybox httpd -f -p 8080 -h /w",
    );
    def("vpc-client", "exec sleep 3600");
    let run = |family: &str, group: &str| -> String {
        let network =
            format!("awsvpcConfiguration={{subnets=[{subnet}],securityGroups=[{group}]}}");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let out = cli(&[
                "ecs",
                "run-task",
                "--cluster",
                &cluster,
                "--task-definition",
                family,
                "--launch-type",
                "EC2",
                "--network-configuration",
                &network,
            ]);
            if let Some(arn) = out["tasks"][0]["taskArn"].as_str() {
                return arn.to_string();
            }
            assert!(Instant::now() < deadline, "{out}");
            std::thread::sleep(Duration::from_millis(500));
        }
    };
    let (web_arn, client_arn) = (run("vpc-web", &web), run("vpc-client", &client));
    let running = |arn: &str| -> Value {
        wait("RUNNING", Duration::from_secs(60), || {
            let t = cli(&[
                "ecs",
                "describe-tasks",
                "--cluster",
                &cluster,
                "--tasks",
                arn,
            ])["tasks"][0]
                .clone();
            assert_ne!(t["lastStatus"], "STOPPED", "{t:#}\n{}", agent.log());
            (t["lastStatus"] == "RUNNING").then_some(t)
        })
    };
    let web_task = running(&web_arn);
    running(&client_arn);
    let details = web_task["attachments"][0]["details"]
        .as_array()
        .unwrap()
        .clone();
    let detail = |name: &str| {
        details
            .iter()
            .find(|d| d["name"] == name)
            .and_then(|d| d["value"].as_str())
            .unwrap_or_else(|| panic!("no {name} in {details:?}"))
            .to_string()
    };
    let web_ip = detail("privateIPv4Address");
    let eni = detail("networkInterfaceId");
    let client_ns = format!("berth-{}", client_arn.rsplit('/').next().unwrap());

    // The client's group may reach 8080, not 9090; the host, in no group, reaches neither.
    let web_ns = format!("berth-{}", web_arn.rsplit('/').next().unwrap());
    let reached = (0..60).any(|_| {
        std::thread::sleep(Duration::from_millis(250));
        fetch_from(&client_ns, &web_ip, 8080)
    });
    if !reached {
        let sh = |cmd: &str| {
            let o = std::process::Command::new("sh")
                .args(["-c", cmd])
                .output()
                .unwrap();
            format!(
                "$ {cmd}\n{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        };
        panic!(
            "the client did not reach {web_ip}:8080\n{}\n{}\n{}\n{}\n{}",
            sh(&format!(
                "ip netns exec {client_ns} ip -4 addr; ip netns exec {client_ns} ip route"
            )),
            sh(&format!(
                "ip netns exec {web_ns} ip -4 addr; ip netns exec {web_ns} ip route"
            )),
            sh(&format!("ip netns exec {web_ns} nft list ruleset")),
            sh(&format!("ip netns exec {client_ns} nft list ruleset")),
            sh("ip netns list | head; ip -br link | grep -v bm")
        );
    }
    assert!(
        !fetch_from(&client_ns, &web_ip, 9090),
        "9090 is not allowed"
    );
    let addr: std::net::SocketAddr = format!("{web_ip}:8080").parse().unwrap();
    assert!(
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_err(),
        "the host is in no group"
    );

    // Revoked while both run: new connections are refused.
    cli(&[&["ec2", "revoke-security-group-ingress"][..], &rule[..]].concat());
    wait("the revocation to apply", Duration::from_secs(15), || {
        (!fetch_from(&client_ns, &web_ip, 8080)).then_some(())
    });

    for arn in [&web_arn, &client_arn] {
        cli(&["ecs", "stop-task", "--cluster", &cluster, "--task", arn]);
    }
    wait("the ENI to be deleted", Duration::from_secs(60), || {
        let out = cli(&[
            "ec2",
            "describe-network-interfaces",
            "--filters",
            &format!("Name=network-interface-id,Values={eni}"),
        ]);
        (out["NetworkInterfaces"] == json!([])).then_some(())
    });
}
