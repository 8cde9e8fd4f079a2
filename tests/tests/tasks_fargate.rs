//! Fargate tasks on `berth up`, with real containers from the busybox-static test image:
//! exit codes, essential and non-essential exits, dependsOn, health checks, stopTimeout, the
//! memory limit, overrides, image pulls (missing image, loopback registry), StopTask,
//! timestamps, ListTasks filters, clientToken and RunTask's validation errors. Driven through
//! aws-sdk-ecs and the `aws` CLI.
//!
//! Needs root, runc and busybox-static (CI has them); skips with a message when not root.

// Tests fail by panicking: unwrap/expect are the intended failure mode here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_ecs::Client;
use aws_sdk_ecs::types::{Container, DesiredStatus, LaunchType, Task};
use berth_e2e::{
    BerthServer, REGION, RawRequest, assert_sdk_error, busybox_image_tar, containers_or_skip, raw,
    unique_name, wait_task_status,
};
use serde_json::{Value, json};

const START: Duration = Duration::from_secs(60);

struct Env {
    berth: BerthServer,
    ecs: Client,
    cluster: String,
}

/// `berth up` with the test image loaded and a cluster; `None` when not root.
async fn setup(test: &str) -> Option<Env> {
    if !containers_or_skip(test) {
        return None;
    }
    let berth = BerthServer::start();
    berth.load_image(&busybox_image_tar());
    let ecs = berth.ecs_client(REGION);
    let cluster = unique_name("fg");
    ecs.create_cluster()
        .cluster_name(&cluster)
        .send()
        .await
        .expect("CreateCluster");
    Some(Env {
        berth,
        ecs,
        cluster,
    })
}

impl Env {
    /// Registers a Fargate task definition (cpu 256, memory 512, awsvpc) through the CLI.
    fn register(&self, family: &str, containers: Value, volumes: Value) {
        let input = json!({
            "family": family,
            "requiresCompatibilities": ["FARGATE"],
            "networkMode": "awsvpc",
            "cpu": "256",
            "memory": "512",
            "containerDefinitions": containers,
            "volumes": volumes,
        });
        let input = input.to_string();
        self.berth.aws_cli_json(
            REGION,
            &[
                "ecs",
                "register-task-definition",
                "--cli-input-json",
                &input,
            ],
        );
    }

    /// RunTask (FARGATE, one task) through the SDK; returns its ARN.
    async fn run(&self, family: &str) -> String {
        let out = self
            .ecs
            .run_task()
            .cluster(&self.cluster)
            .task_definition(family)
            .launch_type(LaunchType::Fargate)
            .network_configuration(self.berth.sdk_network())
            .send()
            .await
            .expect("RunTask");
        assert!(out.failures().is_empty(), "{:?}", out.failures());
        assert_eq!(out.tasks().len(), 1, "{out:?}");
        out.tasks()[0].task_arn().unwrap().to_owned()
    }

    async fn describe(&self, arn: &str) -> Task {
        let out = self
            .ecs
            .describe_tasks()
            .cluster(&self.cluster)
            .tasks(arn)
            .send()
            .await
            .expect("DescribeTasks");
        out.tasks().first().cloned().expect("the task is described")
    }

    /// Polls DescribeTasks until `pred` holds.
    async fn wait_for(&self, arn: &str, what: &str, pred: impl Fn(&Task) -> bool) -> Task {
        let deadline = Instant::now() + START;
        loop {
            let t = self.describe(arn).await;
            if pred(&t) {
                return t;
            }
            assert!(Instant::now() < deadline, "waiting for {what}: {t:#?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn stopped(&self, arn: &str) -> Task {
        wait_task_status(&self.ecs, &self.cluster, arn, "STOPPED", START).await
    }

    async fn stop(&self, arn: &str, reason: &str) {
        self.ecs
            .stop_task()
            .cluster(&self.cluster)
            .task(arn)
            .reason(reason)
            .send()
            .await
            .expect("StopTask");
    }
}

fn container<'a>(t: &'a Task, name: &str) -> &'a Container {
    t.containers()
        .iter()
        .find(|c| c.name() == Some(name))
        .unwrap_or_else(|| panic!("no container {name} in {t:#?}"))
}

fn millis(t: Option<&aws_sdk_ecs::primitives::DateTime>, what: &str, task: &Task) -> i64 {
    t.unwrap_or_else(|| panic!("{what} is not set: {task:#?}"))
        .to_millis()
        .unwrap()
}

/// A long-running container that exits 0 as soon as it gets SIGTERM.
fn sleeper(name: &str) -> Value {
    json!({
        "name": name, "image": "busybox", "stopTimeout": 5,
        "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"],
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn essential_exit_code_stops_the_task_with_every_timestamp() {
    let Some(env) = setup("essential_exit_code_stops_the_task_with_every_timestamp").await else {
        return;
    };
    let family = unique_name("exit");
    env.register(
        &family,
        json!([{"name": "app", "image": "busybox",
                "command": ["sh", "-c", "echo hi; sleep 1; exit 3"]}]),
        json!([]),
    );
    let arn = env.run(&family).await;
    let t = env.stopped(&arn).await;
    assert_eq!(t.desired_status(), Some("STOPPED"));
    assert_eq!(
        t.stop_code(),
        Some(&aws_sdk_ecs::types::TaskStopCode::EssentialContainerExited)
    );
    assert!(
        t.stopped_reason()
            .is_some_and(|r| r.contains("Essential container")),
        "{t:#?}"
    );
    let app = container(&t, "app");
    assert_eq!(app.last_status(), Some("STOPPED"));
    assert_eq!(app.exit_code(), Some(3));
    assert!(app.runtime_id().is_some_and(|r| !r.is_empty()), "{app:?}");

    // createdAt ≤ pullStartedAt ≤ pullStoppedAt ≤ startedAt ≤ stoppingAt ≤ stoppedAt, and
    // executionStoppedAt ≤ stoppedAt.
    let order = [
        ("createdAt", millis(t.created_at(), "createdAt", &t)),
        (
            "pullStartedAt",
            millis(t.pull_started_at(), "pullStartedAt", &t),
        ),
        (
            "pullStoppedAt",
            millis(t.pull_stopped_at(), "pullStoppedAt", &t),
        ),
        ("startedAt", millis(t.started_at(), "startedAt", &t)),
        ("stoppingAt", millis(t.stopping_at(), "stoppingAt", &t)),
        ("stoppedAt", millis(t.stopped_at(), "stoppedAt", &t)),
    ];
    for w in order.windows(2) {
        assert!(w[0].1 <= w[1].1, "{} > {}: {order:?}", w[0].0, w[1].0);
    }
    let exec = millis(t.execution_stopped_at(), "executionStoppedAt", &t);
    assert!(exec <= order[5].1, "executionStoppedAt after stoppedAt");
    // The container ran for at least its `sleep 1`.
    assert!(
        exec - order[3].1 >= 900,
        "{order:?} executionStoppedAt {exec}"
    );

    // The CLI sees the same stopped task.
    let cli = env.berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "describe-tasks",
            "--cluster",
            &env.cluster,
            "--tasks",
            &arn,
        ],
    );
    let task = &cli["tasks"][0];
    assert_eq!(task["lastStatus"], "STOPPED", "{cli}");
    assert_eq!(task["stopCode"], "EssentialContainerExited", "{cli}");
    assert_eq!(task["containers"][0]["exitCode"], 3, "{cli}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_essential_exit_keeps_the_task_running_until_stop_task() {
    let Some(env) = setup("a_non_essential_exit_keeps_the_task_running_until_stop_task").await
    else {
        return;
    };
    let family = unique_name("nonessential");
    env.register(
        &family,
        json!([
            sleeper("main"),
            {"name": "side", "image": "busybox", "essential": false,
             "command": ["sh", "-c", "exit 7"]},
        ]),
        json!([]),
    );
    // RunTask through the CLI.
    let out = env.berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "run-task",
            "--cluster",
            &env.cluster,
            "--task-definition",
            &family,
            "--launch-type",
            "FARGATE",
            "--network-configuration",
            &env.berth.cli_network(),
        ],
    );
    let arn = out["tasks"][0]["taskArn"].as_str().unwrap().to_owned();
    let t = env
        .wait_for(&arn, "side STOPPED while the task runs", |t| {
            container(t, "side").last_status() == Some("STOPPED")
                && t.last_status() == Some("RUNNING")
        })
        .await;
    assert_eq!(container(&t, "side").exit_code(), Some(7), "{t:#?}");
    assert_eq!(container(&t, "main").last_status(), Some("RUNNING"));
    assert_eq!(t.desired_status(), Some("RUNNING"));
    // Still running a moment later: the non-essential exit did not stop it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let t = env.describe(&arn).await;
    assert_eq!(t.last_status(), Some("RUNNING"), "{t:#?}");

    // StopTask with a reason, through the CLI.
    env.berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "stop-task",
            "--cluster",
            &env.cluster,
            "--task",
            &arn,
            "--reason",
            "done by the e2e test",
        ],
    );
    let t = env.stopped(&arn).await;
    assert_eq!(
        t.stop_code(),
        Some(&aws_sdk_ecs::types::TaskStopCode::UserInitiated)
    );
    assert_eq!(t.stopped_reason(), Some("done by the e2e test"));
    assert_eq!(container(&t, "main").exit_code(), Some(0), "{t:#?}");
    assert_eq!(container(&t, "side").exit_code(), Some(7), "{t:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depends_on_orders_start_complete_and_success() {
    let Some(env) = setup("depends_on_orders_start_complete_and_success").await else {
        return;
    };
    let family = unique_name("deps");
    // `init` writes a file into the task volume after a second; `flaky` fails; `reader` may
    // only start after init SUCCEEDED and flaky COMPLETED, and checks the file; `tail`
    // starts once reader STARTed and checks nothing but runs.
    let mount = json!([{"sourceVolume": "shared", "containerPath": "/shared"}]);
    env.register(
        &family,
        json!([
            {"name": "init", "image": "busybox", "essential": false, "mountPoints": mount,
             "command": ["sh", "-c", "sleep 1; echo ok > /shared/ready"]},
            {"name": "flaky", "image": "busybox", "essential": false,
             "command": ["sh", "-c", "sleep 1; exit 4"]},
            {"name": "reader", "image": "busybox", "mountPoints": mount,
             "dependsOn": [{"containerName": "init", "condition": "SUCCESS"},
                           {"containerName": "flaky", "condition": "COMPLETE"}],
             "command": ["sh", "-c", "test \"$(cat /shared/ready)\" = ok && sleep 1 && exit 0; exit 1"]},
            {"name": "tail", "image": "busybox", "essential": false, "stopTimeout": 2,
             "dependsOn": [{"containerName": "reader", "condition": "START"}],
             "command": ["sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"]},
        ]),
        json!([{"name": "shared"}]),
    );
    let arn = env.run(&family).await;
    let t = env.stopped(&arn).await;
    assert_eq!(
        t.stop_code(),
        Some(&aws_sdk_ecs::types::TaskStopCode::EssentialContainerExited),
        "{t:#?}"
    );
    assert_eq!(container(&t, "init").exit_code(), Some(0), "{t:#?}");
    assert_eq!(container(&t, "flaky").exit_code(), Some(4), "{t:#?}");
    // 0: the file was there when reader started, so it started after init succeeded.
    assert_eq!(container(&t, "reader").exit_code(), Some(0), "{t:#?}");
    // tail started (after reader) and was stopped with the task.
    assert_eq!(container(&t, "tail").exit_code(), Some(0), "{t:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_checks_reach_healthy_and_unhealthy() {
    let Some(env) = setup("health_checks_reach_healthy_and_unhealthy").await else {
        return;
    };
    let check = |cmd: Value| json!({"command": cmd, "interval": 5, "timeout": 4, "retries": 1});
    let mut good = sleeper("good");
    good["healthCheck"] = check(json!(["CMD-SHELL", "test -f /etc/passwd"]));
    let mut bad = sleeper("bad");
    bad["healthCheck"] = check(json!(["CMD", "false"]));
    bad["essential"] = json!(false);
    let healthy = unique_name("healthy");
    env.register(&healthy, json!([good, bad.clone()]), json!([]));
    let mut bad_essential = bad;
    bad_essential["essential"] = json!(true);
    let unhealthy = unique_name("unhealthy");
    env.register(&unhealthy, json!([bad_essential]), json!([]));

    let a = env.run(&healthy).await;
    let b = env.run(&unhealthy).await;
    let ta = env
        .wait_for(&a, "HEALTHY task", |t| {
            t.health_status().map(|h| h.as_str()) == Some("HEALTHY")
                && container(t, "bad").health_status().map(|h| h.as_str()) == Some("UNHEALTHY")
        })
        .await;
    assert_eq!(
        container(&ta, "good").health_status().map(|h| h.as_str()),
        Some("HEALTHY")
    );
    let tb = env
        .wait_for(&b, "UNHEALTHY task", |t| {
            t.health_status().map(|h| h.as_str()) == Some("UNHEALTHY")
        })
        .await;
    assert_eq!(
        container(&tb, "bad").health_status().map(|h| h.as_str()),
        Some("UNHEALTHY")
    );
    // The CLI shows the same.
    let cli = env.berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "describe-tasks",
            "--cluster",
            &env.cluster,
            "--tasks",
            &a,
            &b,
        ],
    );
    let statuses: Vec<&str> = cli["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["healthStatus"].as_str().unwrap_or(""))
        .collect();
    assert!(
        statuses.contains(&"HEALTHY") && statuses.contains(&"UNHEALTHY"),
        "{cli}"
    );
    env.stop(&a, "cleanup").await;
    env.stop(&b, "cleanup").await;
    env.stopped(&a).await;
    env.stopped(&b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_timeout_is_honoured_on_stop_task() {
    let Some(env) = setup("stop_timeout_is_honoured_on_stop_task").await else {
        return;
    };
    let polite = unique_name("polite");
    let mut c = sleeper("app");
    c["stopTimeout"] = json!(30);
    env.register(&polite, json!([c]), json!([]));
    let stubborn = unique_name("stubborn");
    env.register(
        &stubborn,
        json!([{"name": "app", "image": "busybox", "stopTimeout": 4,
                "command": ["sh", "-c", "trap '' TERM; while true; do sleep 1; done"]}]),
        json!([]),
    );
    let a = env.run(&polite).await;
    let b = env.run(&stubborn).await;
    wait_task_status(&env.ecs, &env.cluster, &a, "RUNNING", START).await;
    wait_task_status(&env.ecs, &env.cluster, &b, "RUNNING", START).await;

    let asked = Instant::now();
    env.stop(&a, "polite stop").await;
    env.stop(&b, "stubborn stop").await;
    let ta = env.stopped(&a).await;
    // It trapped SIGTERM and exited 0 (not SIGKILLed after its 30 s).
    assert_eq!(container(&ta, "app").exit_code(), Some(0), "{ta:#?}");
    let tb = env.stopped(&b).await;
    let waited = asked.elapsed();
    assert!(
        waited >= Duration::from_secs(4),
        "a container ignoring SIGTERM was stopped after {waited:?}, before its stopTimeout of 4 s"
    );
    assert_eq!(container(&tb, "app").exit_code(), Some(137), "{tb:#?}");
    let stopping = millis(tb.stopping_at(), "stoppingAt", &tb);
    let exec = millis(tb.execution_stopped_at(), "executionStoppedAt", &tb);
    assert!(
        exec - stopping >= 3_900,
        "stoppingAt {stopping}, executionStoppedAt {exec}"
    );
    assert_eq!(
        tb.stop_code(),
        Some(&aws_sdk_ecs::types::TaskStopCode::UserInitiated)
    );
    assert_eq!(tb.stopped_reason(), Some("stubborn stop"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exceeding_the_memory_limit_is_an_oom_kill() {
    let Some(env) = setup("exceeding_the_memory_limit_is_an_oom_kill").await else {
        return;
    };
    let family = unique_name("oom");
    // A shell variable of 100 MB in a container limited to 20 MiB.
    env.register(
        &family,
        json!([{"name": "hog", "image": "busybox", "memory": 20,
                "command": ["sh", "-c", "x=$(head -c 100000000 /dev/zero | tr '\\0' a); echo ${#x}"]}]),
        json!([]),
    );
    let arn = env.run(&family).await;
    let t = env.stopped(&arn).await;
    let hog = container(&t, "hog");
    assert!(
        hog.reason()
            .is_some_and(|r| r.starts_with("OutOfMemoryError")),
        "{t:#?}"
    );
    assert_eq!(hog.exit_code(), Some(137), "{t:#?}");
    assert_eq!(hog.memory(), Some("20"));
    assert_eq!(
        t.stop_code(),
        Some(&aws_sdk_ecs::types::TaskStopCode::EssentialContainerExited)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn environment_and_command_overrides_reach_the_process() {
    let Some(env) = setup("environment_and_command_overrides_reach_the_process").await else {
        return;
    };
    let family = unique_name("override");
    env.register(
        &family,
        json!([{"name": "app", "image": "busybox",
                "environment": [{"name": "FOO", "value": "from-definition"},
                                {"name": "KEEP", "value": "kept"}],
                "command": ["sh", "-c", "exit 9"]}]),
        json!([]),
    );
    let overrides = json!({"containerOverrides": [{
        "name": "app",
        "environment": [{"name": "FOO", "value": "bar"}, {"name": "NEW", "value": "baz qux"}],
        "command": ["sh", "-c",
                    "test \"$FOO\" = bar && test \"$NEW\" = 'baz qux' && test \"$KEEP\" = kept && exit 42; exit 1"],
    }]})
    .to_string();
    let out = env.berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "run-task",
            "--cluster",
            &env.cluster,
            "--task-definition",
            &family,
            "--launch-type",
            "FARGATE",
            "--network-configuration",
            &env.berth.cli_network(),
            "--overrides",
            &overrides,
        ],
    );
    let arn = out["tasks"][0]["taskArn"].as_str().unwrap().to_owned();
    assert_eq!(
        out["tasks"][0]["overrides"]["containerOverrides"][0]["name"], "app",
        "{out}"
    );
    let t = env.stopped(&arn).await;
    assert_eq!(container(&t, "app").exit_code(), Some(42), "{t:#?}");

    // Without overrides the definition's command runs.
    let arn = env.run(&family).await;
    let t = env.stopped(&arn).await;
    assert_eq!(container(&t, "app").exit_code(), Some(9), "{t:#?}");
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_image_fails_the_task_with_cannot_pull_container_error() {
    let Some(env) = setup("a_missing_image_fails_the_task_with_cannot_pull_container_error").await
    else {
        return;
    };
    let family = unique_name("missing");
    // A registry address where nothing listens: the pull fails at once, without the internet.
    let image = format!("127.0.0.1:{}/team/nosuch:1", free_port());
    env.register(
        &family,
        json!([{"name": "app", "image": image, "command": ["true"]}]),
        json!([]),
    );
    let arn = env.run(&family).await;
    let t = env.stopped(&arn).await;
    assert_eq!(
        t.stop_code(),
        Some(&aws_sdk_ecs::types::TaskStopCode::TaskFailedToStart),
        "{t:#?}"
    );
    assert!(
        t.stopped_reason()
            .is_some_and(|r| r.contains("CannotPullContainerError")),
        "{t:#?}"
    );
    let app = container(&t, "app");
    assert!(
        app.reason()
            .is_some_and(|r| r.starts_with("CannotPullContainerError")),
        "{t:#?}"
    );
    assert_eq!(app.last_status(), Some("STOPPED"));
    assert_eq!(app.exit_code(), None, "{t:#?}");
}

/// Debian's `docker-registry` on a loopback port, killed on drop.
struct Registry {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_registry() -> Registry {
    let bin = Path::new("/usr/bin/docker-registry");
    assert!(
        bin.exists(),
        "/usr/bin/docker-registry is missing: apt-get install -y docker-registry"
    );
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = dir.path().join("config.yml");
    fs::write(
        &config,
        format!(
            "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        ),
    )
    .unwrap();
    let child = Command::new(bin)
        .arg("serve")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let reg = Registry {
        child,
        addr,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "docker-registry did not listen");
        std::thread::sleep(Duration::from_millis(50));
    }
    reg
}

fn sha256(data: &[u8]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("blob");
    fs::write(&f, data).unwrap();
    let out = Command::new("sha256sum").arg(&f).output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    format!("sha256:{}", text.split_whitespace().next().unwrap())
}

fn registry_send(reg: &Registry, req: RawRequest) -> raw::RawResponse {
    raw::send(reg.addr, &req, Duration::from_secs(30)).expect("talk to docker-registry")
}

/// Pushes a blob with the distribution API (one monolithic PUT).
fn push_blob(reg: &Registry, repo: &str, data: &[u8]) -> String {
    let digest = sha256(data);
    let resp = registry_send(
        reg,
        RawRequest::new("POST", &format!("/v2/{repo}/blobs/uploads/")),
    );
    assert_eq!(resp.status, 202, "{}", resp.text());
    let loc = resp.header("location").unwrap().to_owned();
    let path = match loc.find("/v2/") {
        Some(i) => loc[i..].to_owned(),
        None => loc,
    };
    let sep = if path.contains('?') { '&' } else { '?' };
    let resp = registry_send(
        reg,
        RawRequest::new("PUT", &format!("{path}{sep}digest={digest}"))
            .header("Content-Type", "application/octet-stream")
            .body(data.to_vec()),
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
    digest
}

/// Pushes the busybox test image (its docker-save layer and config) as an OCI manifest.
fn push_busybox(reg: &Registry, repo: &str, tag: &str) {
    let dir = tempfile::tempdir().unwrap();
    let st = Command::new("tar")
        .arg("-xf")
        .arg(busybox_image_tar())
        .arg("-C")
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(st.success());
    let manifest: Value =
        serde_json::from_slice(&fs::read(dir.path().join("manifest.json")).unwrap()).unwrap();
    let config = fs::read(dir.path().join(manifest[0]["Config"].as_str().unwrap())).unwrap();
    let layer = fs::read(dir.path().join(manifest[0]["Layers"][0].as_str().unwrap())).unwrap();
    let layer_digest = push_blob(reg, repo, &layer);
    let config_digest = push_blob(reg, repo, &config);
    let m = json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": config.len()},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": layer.len()}],
    });
    let resp = registry_send(
        reg,
        RawRequest::new("PUT", &format!("/v2/{repo}/manifests/{tag}"))
            .header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            .body(serde_json::to_vec(&m).unwrap()),
    );
    assert_eq!(resp.status, 201, "{}", resp.text());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_is_pulled_from_a_loopback_registry() {
    let Some(env) = setup("an_image_is_pulled_from_a_loopback_registry").await else {
        return;
    };
    let reg = start_registry();
    push_busybox(&reg, "team/bb", "1");
    let family = unique_name("pulled");
    let image = format!("{}/team/bb:1", reg.addr);
    env.register(
        &family,
        json!([{"name": "app", "image": image, "command": ["sh", "-c", "test -x /bin/busybox && exit 5"]}]),
        json!([]),
    );
    let arn = env.run(&family).await;
    let t = env.stopped(&arn).await;
    let app = container(&t, "app");
    assert_eq!(app.exit_code(), Some(5), "{t:#?}");
    assert!(
        app.image_digest().is_some_and(|d| d.starts_with("sha256:")),
        "{t:#?}"
    );
    assert_eq!(
        t.stop_code(),
        Some(&aws_sdk_ecs::types::TaskStopCode::EssentialContainerExited)
    );
    // The pull is timed on the task.
    let pulled = millis(t.pull_stopped_at(), "pullStoppedAt", &t);
    assert!(millis(t.pull_started_at(), "pullStartedAt", &t) <= pulled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_task_count_client_token_list_filters_and_validation() {
    let Some(env) = setup("run_task_count_client_token_list_filters_and_validation").await else {
        return;
    };
    let family = unique_name("many");
    env.register(
        &family,
        json!([{"name": "app", "image": "busybox", "command": ["sh", "-c", "sleep 1"]}]),
        json!([]),
    );
    let other = unique_name("other");
    env.register(&other, json!([sleeper("app")]), json!([]));

    // count 3 with a clientToken: the same call again returns the same three tasks.
    let run = || {
        env.ecs
            .run_task()
            .cluster(&env.cluster)
            .task_definition(&family)
            .launch_type(LaunchType::Fargate)
            .network_configuration(env.berth.sdk_network())
            .count(3)
            .started_by("e2e-batch")
            .client_token("token-123")
            .send()
    };
    let first = run().await.expect("RunTask count 3");
    let mut arns: Vec<String> = first
        .tasks()
        .iter()
        .map(|t| t.task_arn().unwrap().to_owned())
        .collect();
    assert_eq!(arns.len(), 3, "{first:?}");
    let second = run()
        .await
        .expect("RunTask again with the same clientToken");
    let mut again: Vec<String> = second
        .tasks()
        .iter()
        .map(|t| t.task_arn().unwrap().to_owned())
        .collect();
    arns.sort();
    again.sort();
    assert_eq!(arns, again);

    let long = env.run(&other).await;
    for arn in &arns {
        let t = env.stopped(arn).await;
        assert_eq!(container(&t, "app").exit_code(), Some(0), "{t:#?}");
        assert_eq!(t.started_by(), Some("e2e-batch"));
    }
    wait_task_status(&env.ecs, &env.cluster, &long, "RUNNING", START).await;

    let list = |family: Option<&str>, started_by: Option<&str>, desired: Option<DesiredStatus>| {
        let mut req = env
            .ecs
            .list_tasks()
            .cluster(&env.cluster)
            .set_family(family.map(str::to_owned))
            .set_started_by(started_by.map(str::to_owned))
            .set_desired_status(desired);
        req = req.launch_type(LaunchType::Fargate);
        async move {
            let mut v = req.send().await.expect("ListTasks").task_arns().to_vec();
            v.sort();
            v
        }
    };
    assert_eq!(list(None, None, Some(DesiredStatus::Stopped)).await, arns);
    assert_eq!(
        list(Some(&family), None, Some(DesiredStatus::Stopped)).await,
        arns
    );
    assert_eq!(
        list(None, Some("e2e-batch"), Some(DesiredStatus::Stopped)).await,
        arns
    );
    assert_eq!(list(None, None, None).await, vec![long.clone()]);
    assert!(list(Some(&family), None, None).await.is_empty());
    // EC2 launch type: none of these.
    let ec2 = env
        .ecs
        .list_tasks()
        .cluster(&env.cluster)
        .launch_type(LaunchType::Ec2)
        .desired_status(DesiredStatus::Stopped)
        .send()
        .await
        .expect("ListTasks EC2");
    assert!(ec2.task_arns().is_empty(), "{ec2:?}");
    // The CLI's family filter.
    let cli = env.berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "list-tasks",
            "--cluster",
            &env.cluster,
            "--family",
            &other,
        ],
    );
    assert_eq!(cli["taskArns"], json!([long]), "{cli}");

    // Validation.
    let no_network = env
        .ecs
        .run_task()
        .cluster(&env.cluster)
        .task_definition(&family)
        .launch_type(LaunchType::Fargate)
        .send()
        .await;
    assert_sdk_error(no_network, "InvalidParameterException");
    let eleven = env
        .ecs
        .run_task()
        .cluster(&env.cluster)
        .task_definition(&family)
        .launch_type(LaunchType::Fargate)
        .network_configuration(env.berth.sdk_network())
        .count(11)
        .send()
        .await;
    assert_sdk_error(eleven, "InvalidParameterException");
    let ec2_family = unique_name("ec2only");
    let input =
        json!({"family": ec2_family, "requiresCompatibilities": ["EC2"], "networkMode": "host",
        "containerDefinitions": [{"name": "app", "image": "busybox", "memory": 64}]})
        .to_string();
    env.berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "register-task-definition",
            "--cli-input-json",
            &input,
        ],
    );
    let out = env.berth.aws_cli(
        REGION,
        &[
            "ecs",
            "run-task",
            "--cluster",
            &env.cluster,
            "--task-definition",
            &ec2_family,
            "--launch-type",
            "EC2",
        ],
    );
    let stderr = berth_e2e::assert_cli_error(&out, "InvalidParameterException", &[]);
    assert!(
        stderr.contains("No Container Instances were found in your cluster."),
        "{stderr}"
    );

    // A running task keeps its cluster from being deleted.
    let res = env.ecs.delete_cluster().cluster(&env.cluster).send().await;
    assert_sdk_error(res, "ClusterContainsTasksException");

    env.stop(&long, "cleanup").await;
    env.stopped(&long).await;
    env.berth.aws_cli_json(
        REGION,
        &["ecs", "delete-cluster", "--cluster", &env.cluster],
    );
}
