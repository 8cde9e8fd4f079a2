//! Task roles end to end: a real container on a `berth agent` runs the real `aws` CLI (the
//! host's venv and Python, bind-mounted read-only) with no keys configured. The CLI's
//! default credential chain finds `AWS_CONTAINER_CREDENTIALS_RELATIVE_URI`, fetches the task
//! role's credentials from 169.254.170.2, and Berth authorises its calls with the role's
//! policy: ListClusters succeeds, DeleteCluster is denied. A second task cannot read the first
//! task's credentials. iam:PassRole and the role's trust policy are checked.
//!
//! The containers run in their own network namespaces (awsvpc); they reach the API through
//! a forwarder the test runs on the agent's endpoint address (169.254.170.2), on the host.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use berth_e2e::{
    BerthAgent, BerthServer, REGION, assert_cli_error, aws_cli_path, busybox_image_tar,
    containers_or_skip, unique_name,
};
use serde_json::{Value, json};

/// Relays connections on `169.254.170.2:<port>` to the server (both directions), for the
/// life of the test process. Returns the port.
fn forward_to(server: std::net::SocketAddr) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(30);
    // The agent creates the endpoint address when it starts.
    let listener = loop {
        match TcpListener::bind(("169.254.170.2", 0)) {
            Ok(l) => break l,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(200));
            }
            Err(e) => panic!("bind 169.254.170.2: {e}"),
        }
    };
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(upstream) = TcpStream::connect(server) else {
                continue;
            };
            let pipe = |mut from: TcpStream, mut to: TcpStream| {
                std::thread::spawn(move || {
                    let mut buf = [0u8; 16 * 1024];
                    while let Ok(n) = from.read(&mut buf) {
                        if n == 0 || to.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = to.shutdown(std::net::Shutdown::Write);
                });
            };
            pipe(client.try_clone().unwrap(), upstream.try_clone().unwrap());
            pipe(upstream, client);
        }
    });
    port
}

/// The venv that holds the aws CLI (`<venv>/bin/aws`).
fn venv() -> PathBuf {
    let aws = std::fs::canonicalize(aws_cli_path()).expect("the aws CLI of the test venv");
    aws.parent().and_then(|b| b.parent()).unwrap().to_path_buf()
}

fn cli(berth: &BerthServer, args: &[&str]) -> Value {
    berth.aws_cli_json(REGION, args)
}

/// Waits until the task's lastStatus is `status` (panics if it stops first, or after 2 min).
fn wait_status(berth: &BerthServer, cluster: &str, task: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let d = cli(
            berth,
            &[
                "ecs",
                "describe-tasks",
                "--cluster",
                cluster,
                "--tasks",
                task,
            ],
        );
        let t = d["tasks"][0].clone();
        if t["lastStatus"] == status {
            return t;
        }
        assert_ne!(t["lastStatus"], "STOPPED", "task stopped: {t:#}");
        assert!(Instant::now() < deadline, "task never {status}: {t:#}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn run(berth: &BerthServer, cluster: &str, family: &str) -> String {
    let out = cli(
        berth,
        &[
            "ecs",
            "run-task",
            "--cluster",
            cluster,
            "--task-definition",
            family,
            "--launch-type",
            "EC2",
            "--network-configuration",
            &berth.cli_network(),
        ],
    );
    assert_eq!(out["failures"], json!([]), "{out:#}");
    out["tasks"][0]["taskArn"].as_str().unwrap().to_string()
}

fn exit_code(t: &Value) -> i64 {
    t["containers"][0]["exitCode"].as_i64().unwrap_or(-1)
}

/// The credentials id the control plane vended for a task (from the store, where the test
/// can see it; containers only ever see their own).
fn credentials_id(berth: &BerthServer, task_arn: &str) -> String {
    let id = task_arn.rsplit('/').next().unwrap();
    let out: Output = std::process::Command::new("python3")
        .arg("-c")
        .arg(
            berth_e2e::PY_BODY_TEXT.to_string()
                + "import sqlite3,sys,json\n\
             c=sqlite3.connect(sys.argv[1])\n\
             for (i,b) in c.execute(\"SELECT id, body FROM records WHERE kind='ecs/task-credentials'\"):\n\
             \x20   if i.endswith('/'+sys.argv[2]): print(json.loads(body_text(b))['credentials_id'])",
        )
        .arg(berth.data_dir().join("berth.db"))
        .arg(id)
        .output()
        .expect("python3");
    let s = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(
        !s.is_empty(),
        "no credentials for {task_arn}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    s
}

#[test]
fn a_container_calls_berth_with_its_task_role_and_only_its_own() {
    if !containers_or_skip("a_container_calls_berth_with_its_task_role_and_only_its_own") {
        return;
    }
    // One agent process per host serves 169.254.170.2:80: wait for any earlier one to go.
    let deadline = Instant::now() + Duration::from_secs(60);
    while TcpStream::connect_timeout(
        &"169.254.170.2:80".parse().unwrap(),
        Duration::from_millis(200),
    )
    .is_ok()
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(500));
    }
    let berth = BerthServer::builder().subcommand("server").start();
    let account = berth.account_id().to_string();
    let cluster = unique_name("roles");
    cli(
        &berth,
        &["ecs", "create-cluster", "--cluster-name", &cluster],
    );
    let agent = BerthAgent::start(&berth, &cluster, "us-east-1a");
    agent.load_image(&busybox_image_tar());
    let port = forward_to(berth.addr());

    // The role: trusted by ECS tasks, allowed to list clusters and nothing else.
    let trust = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;
    let role = cli(
        &berth,
        &[
            "iam",
            "create-role",
            "--role-name",
            "app",
            "--assume-role-policy-document",
            trust,
        ],
    );
    let role_arn = role["Role"]["Arn"].as_str().unwrap().to_string();
    cli(
        &berth,
        &[
            "iam",
            "put-role-policy",
            "--role-name",
            "app",
            "--policy-name",
            "list",
            "--policy-document",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecs:ListClusters","Resource":"*"}]}"#,
        ],
    );
    // A role ECS tasks may not assume.
    cli(
        &berth,
        &[
            "iam",
            "create-role",
            "--role-name",
            "untrusting",
            "--assume-role-policy-document",
            &format!(
                r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{account}:root"}},"Action":"sts:AssumeRole"}}]}}"#
            ),
        ],
    );

    let venv = venv();
    let venv_s = venv.to_string_lossy().to_string();
    let endpoint = format!("http://169.254.170.2:{port}");
    let volumes = json!([
        {"name": "usr", "host": {"sourcePath": "/usr"}},
        {"name": "lib", "host": {"sourcePath": "/usr/lib"}},
        {"name": "lib64", "host": {"sourcePath": "/usr/lib64"}},
        {"name": "venv", "host": {"sourcePath": venv_s}},
    ]);
    let mounts = json!([
        {"sourceVolume": "usr", "containerPath": "/usr", "readOnly": true},
        {"sourceVolume": "lib", "containerPath": "/lib", "readOnly": true},
        {"sourceVolume": "lib64", "containerPath": "/lib64", "readOnly": true},
        {"sourceVolume": "venv", "containerPath": venv_s, "readOnly": true},
    ]);
    // Exit codes tell what happened inside: 0 = as expected.
    let script = format!(
        "set -u; export AWS_DEFAULT_REGION={REGION} HOME=/tmp; \
         wget -q -O /tmp/creds http://169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI || exit 10; \
         grep -q AccessKeyId /tmp/creds || exit 11; \
         {venv_s}/bin/aws --endpoint-url {endpoint} ecs list-clusters > /tmp/out 2> /tmp/err || {{ cat /tmp/err; exit 12; }}; \
         grep -q {cluster} /tmp/out || exit 13; \
         {venv_s}/bin/aws --endpoint-url {endpoint} ecs delete-cluster --cluster {cluster} > /tmp/out 2> /tmp/err && exit 14; \
         grep -q AccessDeniedException /tmp/err || {{ cat /tmp/err; exit 15; }}; \
         grep -q 'assumed-role/app/' /tmp/err || exit 16; \
         exit 0"
    );
    let td = |family: &str, role: &str, command: &str| {
        let containers = json!([{
            "name": "main", "image": "busybox", "memory": 256, "essential": true,
            "command": ["sh", "-c", command],
            "mountPoints": mounts,
        }]);
        cli(
            &berth,
            &[
                "ecs",
                "register-task-definition",
                "--family",
                family,
                "--network-mode",
                "awsvpc",
                "--requires-compatibilities",
                "EC2",
                "--task-role-arn",
                role,
                "--container-definitions",
                &containers.to_string(),
                "--volumes",
                &volumes.to_string(),
            ],
        );
    };
    td("caller", &role_arn, &script);
    let caller = run(&berth, &cluster, "caller");
    let t = wait_status(&berth, &cluster, &caller, "STOPPED");
    assert_eq!(
        exit_code(&t),
        0,
        "inside the task: {t:#}\nagent log:\n{}",
        agent.log()
    );

    // A task holding its credentials, and another that tries to read them.
    td("holder", &role_arn, "sleep 120");
    let holder = run(&berth, &cluster, "holder");
    wait_status(&berth, &cluster, &holder, "RUNNING");
    let stolen = credentials_id(&berth, &holder);
    td(
        "thief",
        &role_arn,
        &format!(
            "wget -q -O /tmp/own http://169.254.170.2$AWS_CONTAINER_CREDENTIALS_RELATIVE_URI || exit 20; \
             wget -q -O /tmp/stolen http://169.254.170.2/v2/credentials/{stolen} && exit 21; exit 0"
        ),
    );
    let thief = run(&berth, &cluster, "thief");
    let t = wait_status(&berth, &cluster, &thief, "STOPPED");
    assert_eq!(
        exit_code(&t),
        0,
        "the second task read the first's credentials: {t:#}"
    );
    cli(
        &berth,
        &["ecs", "stop-task", "--cluster", &cluster, "--task", &holder],
    );

    // ECS tasks cannot assume a role that does not trust them.
    td(
        "untrusted",
        &format!("arn:aws:iam::{account}:role/untrusting"),
        "true",
    );
    let msg = berth.aws_cli_error(
        REGION,
        &[
            "ecs",
            "run-task",
            "--cluster",
            &cluster,
            "--task-definition",
            "untrusted",
            "--launch-type",
            "EC2",
            "--network-configuration",
            &berth.cli_network(),
        ],
        "InvalidParameterException",
    );
    assert!(msg.contains("ECS was unable to assume the role"), "{msg}");

    // Passing a role needs iam:PassRole.
    cli(&berth, &["iam", "create-user", "--user-name", "dev"]);
    let key = cli(&berth, &["iam", "create-access-key", "--user-name", "dev"]);
    cli(
        &berth,
        &[
            "iam",
            "put-user-policy",
            "--user-name",
            "dev",
            "--policy-name",
            "ecs",
            "--policy-document",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecs:*","Resource":"*"}]}"#,
        ],
    );
    let out = berth
        .aws_cli_command(
            REGION,
            &[
                "ecs",
                "register-task-definition",
                "--family",
                "passing",
                "--task-role-arn",
                &role_arn,
                "--container-definitions",
                r#"[{"name":"m","image":"busybox","memory":64}]"#,
            ],
        )
        .env(
            "AWS_ACCESS_KEY_ID",
            key["AccessKey"]["AccessKeyId"].as_str().unwrap(),
        )
        .env(
            "AWS_SECRET_ACCESS_KEY",
            key["AccessKey"]["SecretAccessKey"].as_str().unwrap(),
        )
        .output()
        .unwrap();
    let stderr = assert_cli_error(&out, "AccessDeniedException", &[]);
    assert!(stderr.contains("iam:PassRole"), "{stderr}");
}
