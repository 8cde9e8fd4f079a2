//! Task networks through the server: a bridge-mode task run with the aws CLI on a `berth
//! agent` host serves on a static and a dynamic host port; DescribeTasks shows its
//! networkBindings; the host reaches both ports on 127.0.0.1; after StopTask the ports are
//! closed. Needs root, runc, busybox-static, iproute2 and nftables (CI has them).

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
