//! Terraform's AWS provider against Berth: the configuration in `tests/terraform/ecs` (a
//! cluster with settings and tags, a Fargate task definition, the cluster's capacity
//! providers, a CloudWatch Logs log group with retention and tags) applies to `berth up`,
//! plans clean a second time (no drift) and destroys; `tests/terraform/services` (IAM roles,
//! policies and attachments, an awslogs task definition naming both roles, a replica and a
//! daemon service) applies to `berth server` with one real agent, runs, rolls out a new
//! revision, plans clean and destroys; `tests/terraform/vpc` (a VPC, a subnet, security
//! groups and rules, an awsvpc service using them) applies to `berth server`, plans clean and
//! destroys.
//!
//! Providers come from a local filesystem mirror (default `/opt/tf-plugins`, override with
//! `BERTH_TF_PLUGINS`); nothing is downloaded. `terraform` is taken from `BERTH_TERRAFORM`, else
//! from `PATH`. Set `BERTH_SKIP_TERRAFORM=1` to skip this test where Terraform is not installed.

// Test code: a panic with a message is how a test fails (helpers included).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_ecs::types::{ClusterField, TaskDefinitionField, TaskDefinitionStatus};
use berth_e2e::{ACCOUNT_ID, BerthServer, REGION, unique_name};

struct Terraform {
    bin: PathBuf,
    workdir: PathBuf,
    envs: Vec<(String, String)>,
    log: PathBuf,
}

struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

impl Terraform {
    /// Runs `terraform <args>` in the working directory, killing it after `timeout`.
    fn run(&self, args: &[&str], timeout: Duration) -> Run {
        let out_path = self.workdir.join("tf.stdout");
        let err_path = self.workdir.join("tf.stderr");
        let mut child = Command::new(&self.bin)
            .args(args)
            .current_dir(&self.workdir)
            .envs(self.envs.iter().map(|(k, v)| (k, v)))
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_DEFAULT_PROFILE")
            .env_remove("AWS_SESSION_TOKEN")
            .env_remove("AWS_ENDPOINT_URL")
            .env_remove("AWS_ENDPOINT_URL_ECS")
            .env_remove("AWS_CA_BUNDLE")
            .stdin(Stdio::null())
            .stdout(fs::File::create(&out_path).unwrap())
            .stderr(fs::File::create(&err_path).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.bin.display()));
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "terraform {args:?} did not finish within {timeout:?}\nstdout:\n{}\nstderr:\n{}\n{}",
                    fs::read_to_string(&out_path).unwrap_or_default(),
                    fs::read_to_string(&err_path).unwrap_or_default(),
                    self.log_tail(),
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        Run {
            status,
            stdout: fs::read_to_string(&out_path).unwrap_or_default(),
            stderr: fs::read_to_string(&err_path).unwrap_or_default(),
        }
    }

    /// Runs and asserts exit code 0.
    fn ok(&self, args: &[&str], timeout: Duration) -> Run {
        let run = self.run(args, timeout);
        assert!(
            run.status.success(),
            "terraform {args:?} failed with {}\nstdout:\n{}\nstderr:\n{}\n{}",
            run.status,
            run.stdout,
            run.stderr,
            self.log_tail()
        );
        run
    }

    /// The provider's last HTTP exchanges and errors, from its debug log, for failure
    /// messages (the whole log stays in the kept working directory).
    fn log_tail(&self) -> String {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        let summary = summarize_tf_log(&log);
        let start = summary.len().saturating_sub(40);
        format!(
            "----- provider HTTP exchanges and errors (last {} of {}; full log {}) -----\n{}",
            summary.len() - start,
            summary.len(),
            self.log.display(),
            summary[start..].join("\n")
        )
    }
}

/// Turns Terraform's DEBUG log into one line per HTTP request (`-> Target body`), response
/// (`<- status body`) and error. Entries start with a timestamp line; continuation lines are
/// indented, and bodies are the lines starting with `  | `.
fn summarize_tf_log(log: &str) -> Vec<String> {
    let mut entries: Vec<Vec<&str>> = Vec::new();
    for line in log.lines() {
        if line.starts_with(|c: char| c.is_ascii_digit()) || entries.is_empty() {
            entries.push(vec![line]);
        } else if let Some(entry) = entries.last_mut() {
            entry.push(line);
        }
    }
    let field = |entry: &[&str], key: &str| -> Option<String> {
        entry.iter().find_map(|l| {
            let at = l.find(key)? + key.len();
            let rest = &l[at..];
            Some(
                rest.split_whitespace()
                    .next()
                    .unwrap_or("")
                    .trim_matches('"')
                    .to_owned(),
            )
        })
    };
    let body = |entry: &[&str]| -> String {
        entry
            .iter()
            .filter_map(|l| l.strip_prefix("  | "))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut out = Vec::new();
    for entry in &entries {
        let head = entry[0];
        if head.contains("HTTP Request Sent") {
            let target = field(entry, "x_amz_target=").unwrap_or_default();
            let op = target.rsplit('.').next().unwrap_or(&target).to_owned();
            out.push(format!("-> {op} {}", body(entry)));
        } else if head.contains("HTTP Response Received") {
            let status = field(entry, "http.status_code=").unwrap_or_default();
            out.push(format!("<- {status} {}", body(entry)));
        } else if head.contains("[ERROR]") {
            out.push(format!("!! {}", entry.join(" ")));
        }
    }
    out
}

/// Keeps the Terraform working directory (state, log) when the test fails.
struct KeepOnPanic(Option<tempfile::TempDir>);

impl KeepOnPanic {
    fn path(&self) -> &Path {
        self.0.as_ref().unwrap().path()
    }
}

impl Drop for KeepOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking()
            && let Some(dir) = self.0.take()
        {
            eprintln!("terraform working directory kept: {}", dir.keep().display());
        }
    }
}

fn terraform_bin() -> Option<PathBuf> {
    if let Some(bin) = std::env::var_os("BERTH_TERRAFORM").filter(|b| !b.is_empty()) {
        return Some(PathBuf::from(bin));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("terraform"))
        .find(|candidate| candidate.is_file())
}

fn copy_config(from: &Path, to: &Path) {
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if name.to_string_lossy().ends_with(".tf") {
            fs::copy(entry.path(), to.join(&name)).unwrap();
        }
    }
}

/// A Terraform working directory with one of `tests/terraform/<config>` copied in, the
/// provider mirror configured and the provider pointed at `berth`.
struct Workspace {
    tf: Terraform,
    /// Kept (with state and log) if the test fails; dropped last.
    _dir: KeepOnPanic,
}

/// `None` when Terraform or the provider mirror is missing and `BERTH_SKIP_TERRAFORM` is set.
fn workspace(
    berth: &BerthServer,
    config: &str,
    name: &str,
    vars: &[(&str, &str)],
) -> Option<Workspace> {
    let skip = std::env::var_os("BERTH_SKIP_TERRAFORM").is_some_and(|v| v != "0" && !v.is_empty());
    let plugins = PathBuf::from(
        std::env::var_os("BERTH_TF_PLUGINS").unwrap_or_else(|| "/opt/tf-plugins".into()),
    );
    let Some(bin) = terraform_bin() else {
        if skip {
            eprintln!("skipped: terraform not found and BERTH_SKIP_TERRAFORM is set");
            return None;
        }
        panic!("terraform not found on PATH (set BERTH_TERRAFORM, or BERTH_SKIP_TERRAFORM=1)");
    };
    assert!(
        plugins.is_dir() || skip,
        "the provider mirror {} does not exist (set BERTH_TF_PLUGINS)",
        plugins.display()
    );
    if !plugins.is_dir() {
        eprintln!("skipped: no provider mirror and BERTH_SKIP_TERRAFORM is set");
        return None;
    }
    let work = KeepOnPanic(Some(
        tempfile::Builder::new()
            .prefix("berth-tf-")
            .tempdir()
            .unwrap(),
    ));
    let workdir = work.path().join(config);
    fs::create_dir_all(&workdir).unwrap();
    copy_config(
        &Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("terraform")
            .join(config),
        &workdir,
    );
    let cli_config = work.path().join("terraform.rc");
    fs::write(
        &cli_config,
        format!(
            r#"provider_installation {{
  filesystem_mirror {{
    path    = "{}"
    include = ["registry.terraform.io/*/*"]
  }}
  direct {{
    exclude = ["registry.terraform.io/*/*"]
  }}
}}
"#,
            plugins.display()
        ),
    )
    .unwrap();
    let log = work.path().join("terraform.log");
    let s = |v: &str| v.to_owned();
    let mut envs = vec![
        (s("TF_CLI_CONFIG_FILE"), cli_config.display().to_string()),
        (s("TF_IN_AUTOMATION"), s("1")),
        (s("TF_INPUT"), s("0")),
        (s("CHECKPOINT_DISABLE"), s("1")),
        (s("TF_LOG"), s("DEBUG")),
        (s("TF_LOG_PATH"), log.display().to_string()),
        (s("AWS_EC2_METADATA_DISABLED"), s("true")),
        (s("TF_VAR_endpoint"), berth.endpoint()),
        (s("TF_VAR_region"), s(REGION)),
        (s("TF_VAR_access_key"), s(berth.access_key_id())),
        (s("TF_VAR_secret_key"), s(berth.secret_access_key())),
        (s("TF_VAR_name"), s(name)),
    ];
    envs.extend(vars.iter().map(|(k, v)| (format!("TF_VAR_{k}"), s(v))));
    let tf = Terraform {
        bin,
        workdir,
        log,
        envs,
    };
    tf.ok(&["init", "-input=false", "-no-color"], minutes(3));
    Some(Workspace { tf, _dir: work })
}

fn minutes(m: u64) -> Duration {
    Duration::from_secs(m * 60)
}

impl Terraform {
    fn apply(&self, extra: &[&str]) {
        let mut args = vec!["apply", "-auto-approve", "-input=false", "-no-color"];
        args.extend_from_slice(extra);
        self.ok(&args, minutes(5));
    }

    /// A second plan finds nothing to change: what the provider reads back equals what it
    /// wrote.
    fn assert_plan_is_clean(&self, extra: &[&str]) {
        let mut args = vec![
            "plan",
            "-detailed-exitcode",
            "-input=false",
            "-no-color",
            "-lock=false",
        ];
        args.extend_from_slice(extra);
        let plan = self.run(&args, minutes(3));
        assert_eq!(
            plan.status.code(),
            Some(0),
            "terraform plan shows drift (exit 2) or failed (exit 1):\nstdout:\n{}\nstderr:\n{}\n{}",
            plan.stdout,
            plan.stderr,
            self.log_tail()
        );
    }

    fn destroy(&self, extra: &[&str]) {
        let mut args = vec!["destroy", "-auto-approve", "-input=false", "-no-color"];
        args.extend_from_slice(extra);
        self.ok(&args, minutes(5));
    }

    fn outputs(&self) -> serde_json::Value {
        let output = self.ok(&["output", "-json"], minutes(1));
        serde_json::from_str(&output.stdout).unwrap()
    }
}

#[test]
fn terraform_apply_plan_destroy() {
    let berth = BerthServer::start();
    let name = unique_name("tf");
    let Some(ws) = workspace(&berth, "ecs", &name, &[]) else {
        return;
    };
    let tf = &ws.tf;
    tf.apply(&[]);

    let cluster_name = format!("{name}-cluster");
    let cluster_arn = format!("arn:aws:ecs:{REGION}:{ACCOUNT_ID}:cluster/{cluster_name}");
    let family = format!("{name}-web");

    let outputs = tf.outputs();
    assert_eq!(
        outputs["cluster_arn"]["value"].as_str(),
        Some(cluster_arn.as_str()),
        "outputs: {outputs}"
    );
    assert_eq!(
        outputs["task_definition_arn"]["value"].as_str(),
        Some(format!("arn:aws:ecs:{REGION}:{ACCOUNT_ID}:task-definition/{family}:1").as_str()),
        "outputs: {outputs}"
    );

    let group = format!("/ecs/{name}-web");
    assert_eq!(
        outputs["log_group_arn"]["value"].as_str(),
        Some(format!("arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{group}").as_str()),
        "outputs: {outputs}"
    );
    let groups = berth.aws_cli_json(
        REGION,
        &[
            "logs",
            "describe-log-groups",
            "--log-group-name-prefix",
            &group,
        ],
    );
    let described = &groups["logGroups"][0];
    assert_eq!(described["logGroupName"], group.as_str(), "{groups}");
    assert_eq!(described["retentionInDays"], 14, "{groups}");
    let tags = berth.aws_cli_json(
        REGION,
        &[
            "logs",
            "list-tags-for-resource",
            "--resource-arn",
            &format!("arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{group}"),
        ],
    );
    assert_eq!(tags["tags"]["Project"], "berth", "{tags}");
    assert_eq!(tags["tags"]["Suite"], "terraform", "{tags}");

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ecs = berth.ecs_client(REGION);

    // What Terraform created is what the API shows.
    rt.block_on(async {
        let out = ecs
            .describe_clusters()
            .clusters(&cluster_name)
            .include(ClusterField::Settings)
            .include(ClusterField::Tags)
            .send()
            .await
            .unwrap();
        let cluster = out
            .clusters()
            .first()
            .unwrap_or_else(|| panic!("cluster {cluster_name} not found: {out:?}"));
        assert_eq!(cluster.status(), Some("ACTIVE"));
        assert_eq!(cluster.cluster_arn(), Some(cluster_arn.as_str()));
        assert!(
            cluster.settings().iter().any(|s| {
                s.name().map(|n| n.as_str()) == Some("containerInsights")
                    && s.value() == Some("enabled")
            }),
            "settings: {:?}",
            cluster.settings()
        );
        assert!(
            cluster
                .tags()
                .iter()
                .any(|t| t.key() == Some("Project") && t.value() == Some("berth")),
            "tags: {:?}",
            cluster.tags()
        );
        let mut cps: Vec<&str> = cluster
            .capacity_providers()
            .iter()
            .map(String::as_str)
            .collect();
        cps.sort_unstable();
        assert_eq!(cps, ["FARGATE", "FARGATE_SPOT"]);
        let strategy = cluster.default_capacity_provider_strategy();
        assert_eq!(strategy.len(), 1, "strategy: {strategy:?}");
        assert_eq!(strategy[0].capacity_provider(), "FARGATE");
        assert_eq!(strategy[0].base(), 1);
        assert_eq!(strategy[0].weight(), 100);

        let td = ecs
            .describe_task_definition()
            .task_definition(&family)
            .include(TaskDefinitionField::Tags)
            .send()
            .await
            .unwrap();
        let def = td.task_definition().unwrap();
        assert_eq!(def.status(), Some(&TaskDefinitionStatus::Active));
        assert_eq!(def.cpu(), Some("256"));
        assert_eq!(def.memory(), Some("512"));
        let container = def.container_definitions().first().unwrap();
        assert_eq!(container.name(), Some("web"));
        assert_eq!(
            container
                .port_mappings()
                .first()
                .and_then(|p| p.container_port()),
            Some(8080)
        );
        assert!(
            container
                .environment()
                .iter()
                .any(|kv| kv.name() == Some("GREETING") && kv.value() == Some("hello")),
            "environment: {:?}",
            container.environment()
        );
        assert!(
            td.tags()
                .iter()
                .any(|t| t.key() == Some("Project") && t.value() == Some("berth")),
            "task definition tags: {:?}",
            td.tags()
        );
    });

    tf.assert_plan_is_clean(&[]);
    tf.destroy(&[]);

    rt.block_on(async {
        let listed = ecs.list_clusters().send().await.unwrap();
        assert!(
            !listed.cluster_arns().contains(&cluster_arn),
            "{cluster_arn} still listed after destroy: {:?}",
            listed.cluster_arns()
        );
        let out = ecs
            .describe_clusters()
            .clusters(&cluster_name)
            .send()
            .await
            .unwrap();
        // AWS describes a deleted cluster as INACTIVE for a while, or reports it MISSING.
        let inactive = out
            .clusters()
            .iter()
            .all(|c| c.status() == Some("INACTIVE"));
        let missing = out.failures().iter().any(|f| f.reason() == Some("MISSING"));
        assert!(
            inactive && (!out.clusters().is_empty() || missing),
            "cluster not gone after destroy: {out:?}"
        );

        let groups = berth.aws_cli_json(
            REGION,
            &[
                "logs",
                "describe-log-groups",
                "--log-group-name-prefix",
                &group,
            ],
        );
        assert_eq!(
            groups["logGroups"].as_array().map(Vec::len),
            Some(0),
            "log group not gone after destroy: {groups}"
        );

        let td = ecs
            .describe_task_definition()
            .task_definition(format!("{family}:1"))
            .send()
            .await;
        if let Ok(td) = td {
            assert_ne!(
                td.task_definition().and_then(|d| d.status()),
                Some(&TaskDefinitionStatus::Active),
                "task definition still ACTIVE after destroy"
            );
        }
    });
}

/// DescribeServices of one service of `cluster`, through the CLI.
fn describe_service(berth: &BerthServer, cluster: &str, service: &str) -> serde_json::Value {
    let out = berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "describe-services",
            "--cluster",
            cluster,
            "--services",
            service,
        ],
    );
    out["services"][0].clone()
}

/// Waits (polling DescribeServices) until the service runs one task of `revision` and its
/// deployment is COMPLETED, then checks `aws ecs wait services-stable` agrees.
fn wait_rolled_out(berth: &BerthServer, cluster: &str, service: &str, revision: &str) {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let s = describe_service(berth, cluster, service);
        let deployments = s["deployments"].as_array().cloned().unwrap_or_default();
        let done = deployments.len() == 1
            && deployments[0]["taskDefinition"]
                .as_str()
                .is_some_and(|t| t.ends_with(revision))
            && deployments[0]["rolloutState"] == "COMPLETED"
            && s["runningCount"] == 1
            && s["pendingCount"] == 0;
        if done {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{service} did not roll out {revision}: {}",
            serde_json::to_string_pretty(&s).unwrap()
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let out = berth.aws_cli(
        REGION,
        &[
            "ecs",
            "wait",
            "services-stable",
            "--cluster",
            cluster,
            "--services",
            service,
        ],
    );
    assert!(out.status.success(), "services-stable: {out:?}");
}

/// Waits until the log group holds an event with `message` (shipped by the agent with the
/// task's execution role credentials).
fn wait_log_event(berth: &BerthServer, group: &str, message: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = berth.aws_cli_json(
            REGION,
            &[
                "logs",
                "filter-log-events",
                "--log-group-name",
                group,
                "--filter-pattern",
                &format!("\"{message}\""),
            ],
        );
        if found["events"]
            .as_array()
            .is_some_and(|e| e.iter().any(|e| e["message"] == message))
        {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "no event {message:?} in {group}: {found}"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// `tests/terraform/services` against `berth server` and one real agent: IAM roles, policies
/// and attachments, a user in a group, a log group, a task definition naming a task role and
/// an execution role and logging with awslogs, a replica service (circuit breaker, placement
/// strategies, distinctInstance) and a daemon service. Both run their task; its output
/// reaches the log group through the execution role; a new revision rolls out to both; the
/// second plan is clean each time; destroy removes everything.
#[test]
fn terraform_iam_services_and_a_new_revision() {
    if !berth_e2e::containers_or_skip("terraform_iam_services_and_a_new_revision") {
        return;
    }
    let began = Instant::now();
    let berth = BerthServer::builder().subcommand("server").start();
    let cluster = unique_name("tfsvc");
    berth.aws_cli_json(
        REGION,
        &["ecs", "create-cluster", "--cluster-name", &cluster],
    );
    let agent = berth.start_agent(&cluster, "us-east-1a");
    agent.load_image(&berth_e2e::busybox_image_tar());
    let deadline = Instant::now() + Duration::from_secs(30);
    while berth.aws_cli_json(
        REGION,
        &["ecs", "list-container-instances", "--cluster", &cluster],
    )["containerInstanceArns"]
        .as_array()
        .is_none_or(Vec::is_empty)
    {
        assert!(Instant::now() < deadline, "the agent did not register");
        std::thread::sleep(Duration::from_millis(200));
    }

    let name = unique_name("tf");
    let Some(ws) = workspace(&berth, "services", &name, &[("cluster", &cluster)]) else {
        return;
    };
    let tf = &ws.tf;
    eprintln!("[{:>6.1?}] apply", began.elapsed());
    tf.apply(&[]);
    let family = format!("{name}-app");
    let (web, daemon) = (format!("{name}-web"), format!("{name}-daemon"));
    let group = format!("/ecs/{name}");

    eprintln!("[{:>6.1?}] iam checks", began.elapsed());
    // IAM as configured.
    let attached = berth.aws_cli_json(
        REGION,
        &[
            "iam",
            "list-attached-role-policies",
            "--role-name",
            &format!("{name}-execution"),
        ],
    );
    assert_eq!(
        attached["AttachedPolicies"][0]["PolicyName"], "AmazonECSTaskExecutionRolePolicy",
        "{attached}"
    );
    let groups = berth.aws_cli_json(
        REGION,
        &[
            "iam",
            "list-groups-for-user",
            "--user-name",
            &format!("{name}-operator"),
        ],
    );
    assert_eq!(
        groups["Groups"][0]["GroupName"],
        format!("{name}-operators"),
        "{groups}"
    );
    let outputs = tf.outputs();
    let td_arn = format!("arn:aws:ecs:{REGION}:{ACCOUNT_ID}:task-definition/{family}:1");
    assert_eq!(outputs["task_definition_arn"]["value"], td_arn.as_str());
    let td = berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "describe-task-definition",
            "--task-definition",
            &td_arn,
        ],
    )["taskDefinition"]
        .clone();
    assert_eq!(td["taskRoleArn"], outputs["task_role_arn"]["value"]);
    assert_eq!(
        td["executionRoleArn"],
        format!("arn:aws:iam::{ACCOUNT_ID}:role/{name}-execution")
    );

    eprintln!("[{:>6.1?}] rollout v1", began.elapsed());
    // Both services run their task, and the task's output is shipped.
    wait_rolled_out(&berth, &cluster, &web, ":1");
    wait_rolled_out(&berth, &cluster, &daemon, ":1");
    let s = describe_service(&berth, &cluster, &web);
    assert_eq!(
        s["deploymentConfiguration"]["deploymentCircuitBreaker"],
        serde_json::json!({"enable": true, "rollback": true})
    );
    assert_eq!(
        s["placementStrategy"],
        serde_json::json!([
            {"type": "spread", "field": "attribute:ecs.availability-zone"},
            {"type": "binpack", "field": "memory"},
        ])
    );
    assert_eq!(
        s["placementConstraints"],
        serde_json::json!([{"type": "distinctInstance"}])
    );
    let d = describe_service(&berth, &cluster, &daemon);
    assert_eq!(d["schedulingStrategy"], "DAEMON");
    eprintln!("[{:>6.1?}] log v1", began.elapsed());
    wait_log_event(&berth, &group, "hello from v1");
    eprintln!("[{:>6.1?}] plan", began.elapsed());
    tf.assert_plan_is_clean(&[]);

    // A new revision rolls out to both services.
    let v2 = ["-var", "message=v2"];
    eprintln!("[{:>6.1?}] apply v2", began.elapsed());
    tf.apply(&v2);
    eprintln!("[{:>6.1?}] rollout v2", began.elapsed());
    wait_rolled_out(&berth, &cluster, &web, ":2");
    wait_rolled_out(&berth, &cluster, &daemon, ":2");
    wait_log_event(&berth, &group, "hello from v2");
    eprintln!("[{:>6.1?}] plan v2", began.elapsed());
    tf.assert_plan_is_clean(&v2);

    eprintln!("[{:>6.1?}] destroy", began.elapsed());
    tf.destroy(&v2);
    for service in [&web, &daemon] {
        let s = describe_service(&berth, &cluster, service);
        assert!(
            s.is_null() || s["status"] != "ACTIVE",
            "{service} still active after destroy: {s}"
        );
    }
    let roles = berth.aws_cli_json(REGION, &["iam", "list-roles"]);
    assert!(
        !roles.to_string().contains(&name),
        "roles left after destroy: {roles}"
    );
    let groups = berth.aws_cli_json(
        REGION,
        &[
            "logs",
            "describe-log-groups",
            "--log-group-name-prefix",
            &group,
        ],
    );
    assert_eq!(groups["logGroups"], serde_json::json!([]), "{groups}");
    eprintln!("[{:>6.1?}] end", began.elapsed());
    drop(agent);
}

/// `tests/terraform/vpc`: aws_vpc, aws_subnet, aws_security_group with inline ingress and
/// egress rules, aws_vpc_security_group_ingress_rule, and an awsvpc aws_ecs_service using
/// them (desired count 0: the API is the point here) apply, plan clean and destroy.
#[test]
fn terraform_vpc_subnet_security_groups_and_awsvpc_service() {
    let berth = BerthServer::builder().subcommand("server").start();
    let name = unique_name("tfvpc");
    let Some(ws) = workspace(&berth, "vpc", &name, &[]) else {
        return;
    };
    let tf = &ws.tf;
    tf.apply(&[]);
    let outputs = tf.outputs();
    let vpc_id = outputs["vpc_id"]["value"].as_str().unwrap().to_owned();
    let subnet_id = outputs["subnet_id"]["value"].as_str().unwrap().to_owned();
    let group_id = outputs["web_group_id"]["value"]
        .as_str()
        .unwrap()
        .to_owned();

    let vpcs = berth.aws_cli_json(REGION, &["ec2", "describe-vpcs", "--vpc-ids", &vpc_id]);
    assert_eq!(vpcs["Vpcs"][0]["CidrBlock"], "10.20.0.0/16", "{vpcs}");
    let subnet = berth.aws_cli_json(
        REGION,
        &["ec2", "describe-subnets", "--subnet-ids", &subnet_id],
    );
    assert_eq!(subnet["Subnets"][0]["VpcId"], vpc_id.as_str(), "{subnet}");
    let group = berth.aws_cli_json(
        REGION,
        &["ec2", "describe-security-groups", "--group-ids", &group_id],
    );
    let ingress = &group["SecurityGroups"][0]["IpPermissions"][0];
    assert_eq!(ingress["FromPort"], 80, "{group}");
    assert_eq!(ingress["IpRanges"][0]["CidrIp"], "10.20.0.0/16", "{group}");
    let service = berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "describe-services",
            "--cluster",
            &format!("{name}-cluster"),
            "--services",
            &format!("{name}-web"),
        ],
    );
    let awsvpc = &service["services"][0]["networkConfiguration"]["awsvpcConfiguration"];
    assert_eq!(awsvpc["subnets"][0], subnet_id.as_str(), "{service}");
    assert_eq!(awsvpc["securityGroups"][0], group_id.as_str(), "{service}");

    tf.assert_plan_is_clean(&[]);
    tf.destroy(&[]);
    berth.aws_cli_error(
        REGION,
        &["ec2", "describe-vpcs", "--vpc-ids", &vpc_id],
        "InvalidVpcID.NotFound",
    );
}
