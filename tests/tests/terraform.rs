//! Terraform's AWS provider against Berth: the configuration in `tests/terraform/ecs`
//! (a cluster with settings and tags, a Fargate task definition, the cluster's capacity
//! providers, a CloudWatch Logs log group with retention and tags) and the one in
//! `tests/terraform/vpc` (a VPC, a subnet, security groups and rules, an awsvpc service using
//! them) apply, plan clean a second time (no drift) and destroy.
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

/// A Terraform working directory with configuration `tests/terraform/<config>`, the
/// provider mirror and Berth's endpoint and root keys as variables; None when Terraform is
/// not there and `BERTH_SKIP_TERRAFORM` is set.
fn terraform_for(
    berth: &BerthServer,
    config: &str,
    name: &str,
) -> Option<(KeepOnPanic, Terraform)> {
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
    let tf = Terraform {
        bin,
        workdir,
        log: log.clone(),
        envs: vec![
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
        ],
    };
    Some((work, tf))
}

/// A second plan finds nothing to change: what the provider reads back equals what it wrote.
fn assert_plan_is_clean(tf: &Terraform) {
    let plan = tf.run(
        &[
            "plan",
            "-detailed-exitcode",
            "-input=false",
            "-no-color",
            "-lock=false",
        ],
        Duration::from_secs(180),
    );
    assert_eq!(
        plan.status.code(),
        Some(0),
        "terraform plan shows drift (exit 2) or failed (exit 1):\nstdout:\n{}\nstderr:\n{}\n{}",
        plan.stdout,
        plan.stderr,
        tf.log_tail()
    );
}

#[test]
fn terraform_apply_plan_destroy() {
    let berth = BerthServer::start();
    let name = unique_name("tf");
    let Some((_work, tf)) = terraform_for(&berth, "ecs", &name) else {
        return;
    };

    let minutes = |m: u64| Duration::from_secs(m * 60);
    tf.ok(&["init", "-input=false", "-no-color"], minutes(3));
    tf.ok(
        &["apply", "-auto-approve", "-input=false", "-no-color"],
        minutes(5),
    );

    let cluster_name = format!("{name}-cluster");
    let cluster_arn = format!("arn:aws:ecs:{REGION}:{ACCOUNT_ID}:cluster/{cluster_name}");
    let family = format!("{name}-web");

    let output = tf.ok(&["output", "-json"], minutes(1));
    let outputs: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
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

    assert_plan_is_clean(&tf);

    tf.ok(
        &["destroy", "-auto-approve", "-input=false", "-no-color"],
        minutes(5),
    );

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

/// `tests/terraform/vpc`: aws_vpc, aws_subnet, aws_security_group with inline ingress and
/// egress rules, aws_vpc_security_group_ingress_rule, and an awsvpc aws_ecs_service using
/// them (desired count 0: the API is the point here) apply, plan clean and destroy.
#[test]
fn terraform_vpc_subnet_security_groups_and_awsvpc_service() {
    let berth = BerthServer::builder().subcommand("server").start();
    let name = unique_name("tfvpc");
    let Some((_work, tf)) = terraform_for(&berth, "vpc", &name) else {
        return;
    };
    let minutes = |m: u64| Duration::from_secs(m * 60);
    tf.ok(&["init", "-input=false", "-no-color"], minutes(3));
    tf.ok(
        &["apply", "-auto-approve", "-input=false", "-no-color"],
        minutes(5),
    );
    let output = tf.ok(&["output", "-json"], minutes(1));
    let outputs: serde_json::Value = serde_json::from_str(&output.stdout).unwrap();
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

    assert_plan_is_clean(&tf);
    tf.ok(
        &["destroy", "-auto-approve", "-input=false", "-no-color"],
        minutes(5),
    );
    berth.aws_cli_error(
        REGION,
        &["ec2", "describe-vpcs", "--vpc-ids", &vpc_id],
        "InvalidVpcID.NotFound",
    );
}
