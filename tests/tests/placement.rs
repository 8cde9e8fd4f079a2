//! Placement end to end: `berth server` and three real `berth agent`s, one per availability
//! zone, with their own attributes (a custom `stack` from PutAttributes, a capacity provider
//! each for two of them, GPUs on the third), driven through the aws CLI: spread across zones,
//! memberOf with a cluster query over a custom attribute, distinctInstance, the failure
//! reasons (RESOURCE:MEMORY, RESOURCE:CPU, RESOURCE:PORTS, RESOURCE:GPU, MissingAttribute) with the
//! instance's arn, GPU ids, and a capacity provider strategy's base/weight split and the
//! cluster's default strategy. Tasks are busybox sleeps; the agents kill them on drop.

// Tests fail by panicking: unwrap/expect are the intended failure mode here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_ecs::types::ContainerInstance;
use berth_e2e::{
    BerthAgent, BerthServer, REGION, busybox_image_tar, containers_or_skip, unique_name,
};
use serde_json::{Value, json};

const ZONES: [&str; 3] = ["us-east-1a", "us-east-1b", "us-east-1c"];
const SLEEP: &str = "trap 'exit 0' TERM; sleep 600 & wait";

struct Env {
    berth: BerthServer,
    cluster: String,
    agents: Vec<BerthAgent>,
}

impl Env {
    fn cli(&self, args: &[&str]) -> Value {
        self.berth.aws_cli_json(REGION, args)
    }

    /// `aws ecs run-task --cluster … --task-definition FAMILY` with `extra` arguments.
    fn run(&self, family: &str, extra: &[&str]) -> Value {
        let mut args = vec![
            "ecs",
            "run-task",
            "--cluster",
            &self.cluster,
            "--task-definition",
            family,
        ];
        args.extend_from_slice(extra);
        self.cli(&args)
    }

    /// Registers an EC2 host-mode definition whose container is `container` over a sleeping
    /// busybox (16 CPU units, 16 MiB), plus `extra` top-level fields.
    fn register(&self, family: &str, container: Value, extra: Value) {
        let mut c = json!({"name": "app", "image": "busybox", "cpu": 16, "memory": 16,
                           "command": ["sh", "-c", SLEEP]});
        for (k, v) in container.as_object().unwrap() {
            c[k] = v.clone();
        }
        let mut input = json!({
            "family": family,
            "requiresCompatibilities": ["EC2"],
            "networkMode": "host",
            "containerDefinitions": [c],
        });
        for (k, v) in extra.as_object().unwrap() {
            input[k] = v.clone();
        }
        self.cli(&[
            "ecs",
            "register-task-definition",
            "--cli-input-json",
            &input.to_string(),
        ]);
    }

    async fn instances(&self) -> Vec<ContainerInstance> {
        let ecs = self.berth.ecs_client(REGION);
        let arns = ecs
            .list_container_instances()
            .cluster(&self.cluster)
            .send()
            .await
            .expect("ListContainerInstances")
            .container_instance_arns()
            .to_vec();
        if arns.is_empty() {
            return Vec::new();
        }
        ecs.describe_container_instances()
            .cluster(&self.cluster)
            .set_container_instances(Some(arns))
            .send()
            .await
            .expect("DescribeContainerInstances")
            .container_instances()
            .to_vec()
    }

    /// Waits until the three agents are registered and connected; returns zone → instance.
    async fn wait_instances(&self) -> BTreeMap<String, ContainerInstance> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let cis = self.instances().await;
            if cis.len() == ZONES.len()
                && cis
                    .iter()
                    .all(|ci| ci.agent_connected() && ci.status() == Some("ACTIVE"))
            {
                return cis
                    .into_iter()
                    .map(|ci| (attribute(&ci, "ecs.availability-zone").unwrap(), ci))
                    .collect();
            }
            assert!(
                Instant::now() < deadline,
                "3 connected instances expected: {cis:#?}\nagent logs:\n{}",
                self.agents
                    .iter()
                    .map(BerthAgent::log)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

fn attribute(ci: &ContainerInstance, name: &str) -> Option<String> {
    ci.attributes()
        .iter()
        .find(|a| a.name() == name)
        .and_then(|a| a.value())
        .map(String::from)
}

fn registered(ci: &ContainerInstance, name: &str) -> i32 {
    ci.registered_resources()
        .iter()
        .find(|r| r.name() == Some(name))
        .map(|r| r.integer_value())
        .unwrap()
}

/// The placed tasks' instance arns, and the failures.
fn outcome(out: &Value) -> (Vec<String>, Vec<Value>) {
    let placed = out["tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["containerInstanceArn"].as_str().unwrap().to_string())
        .collect();
    (placed, out["failures"].as_array().unwrap().clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_across_agents_with_their_own_attributes() {
    if !containers_or_skip("placement_across_agents_with_their_own_attributes") {
        return;
    }
    let berth = BerthServer::builder().subcommand("server").start();
    let cluster = unique_name("place");
    let mut env = Env {
        berth,
        cluster,
        agents: Vec::new(),
    };
    env.cli(&["ecs", "create-cluster", "--cluster-name", &env.cluster]);
    // Two providers backed by container instances: the agents join them at registration.
    let providers = [unique_name("cpa"), unique_name("cpb")];
    for p in &providers {
        env.cli(&[
            "ecs",
            "create-capacity-provider",
            "--name",
            p,
            "--auto-scaling-group-provider",
            &format!("autoScalingGroupArn=arn:aws:autoscaling:us-east-1:000000000000:autoScalingGroup:1:autoScalingGroupName/{p}"),
        ]);
    }
    let tar = busybox_image_tar();
    for (k, zone) in ZONES.iter().enumerate() {
        let extra: Vec<&str> = match k {
            0 | 1 => vec!["--capacity-provider", &providers[k]],
            _ => vec!["--gpus", "2"],
        };
        let a = BerthAgent::start_with(&env.berth, &env.cluster, zone, &extra);
        a.load_image(&tar);
        env.agents.push(a);
    }
    let by_zone = env.wait_instances().await;
    let arn = |zone: &str| by_zone[zone].container_instance_arn().unwrap().to_string();
    let zone_of: BTreeMap<String, String> = by_zone
        .iter()
        .map(|(z, ci)| (ci.container_instance_arn().unwrap().to_string(), z.clone()))
        .collect();
    assert_eq!(
        by_zone[ZONES[0]].capacity_provider_name(),
        Some(providers[0].as_str())
    );
    assert_eq!(
        by_zone[ZONES[1]].capacity_provider_name(),
        Some(providers[1].as_str())
    );
    assert_eq!(by_zone[ZONES[2]].capacity_provider_name(), None);
    // Custom attributes through PutAttributes: stack=prod on a and b, dev on c.
    for (zone, stack) in [(ZONES[0], "prod"), (ZONES[1], "prod"), (ZONES[2], "dev")] {
        env.cli(&[
            "ecs",
            "put-attributes",
            "--cluster",
            &env.cluster,
            "--attributes",
            &format!("name=stack,value={stack},targetId={}", arn(zone)),
        ]);
    }

    let sleep = unique_name("sleep");
    env.register(&sleep, json!({}), json!({}));

    // spread over the zones: 6 tasks, 2 in each.
    let out = env.run(
        &sleep,
        &[
            "--launch-type",
            "EC2",
            "--count",
            "6",
            "--group",
            "spread",
            "--placement-strategy",
            "type=spread,field=attribute:ecs.availability-zone",
        ],
    );
    let (placed, failures) = outcome(&out);
    assert!(failures.is_empty(), "{out}");
    let mut per_zone: BTreeMap<&str, usize> = BTreeMap::new();
    for a in &placed {
        *per_zone.entry(zone_of[a].as_str()).or_default() += 1;
    }
    assert_eq!(
        per_zone,
        ZONES.iter().map(|z| (*z, 2)).collect::<BTreeMap<_, _>>(),
        "{out}"
    );

    // memberOf with a custom attribute: prod, outside zone a, i.e. only b.
    let constraint = json!([{"type": "memberOf",
        "expression": format!("attribute:stack == prod and attribute:ecs.availability-zone != {}", ZONES[0])}])
    .to_string();
    let out = env.run(
        &sleep,
        &[
            "--launch-type",
            "EC2",
            "--count",
            "2",
            "--placement-constraints",
            &constraint,
        ],
    );
    let (placed, failures) = outcome(&out);
    assert!(failures.is_empty(), "{out}");
    assert_eq!(placed, vec![arn(ZONES[1]), arn(ZONES[1])], "{out}");
    // Nothing matches: the failure names the instance that came closest.
    let out = env.run(
        &sleep,
        &[
            "--launch-type",
            "EC2",
            "--placement-constraints",
            r#"[{"type":"memberOf","expression":"attribute:stack in [staging, qa]"}]"#,
        ],
    );
    let (_, failures) = outcome(&out);
    assert_eq!(
        failures[0]["reason"], "MemberOf placement constraint unsatisfied.",
        "{out}"
    );

    // distinctInstance: 4 tasks of one group on 3 instances.
    let out = env.run(
        &sleep,
        &[
            "--launch-type",
            "EC2",
            "--count",
            "4",
            "--group",
            "solo",
            "--placement-constraints",
            "type=distinctInstance",
        ],
    );
    let (mut placed, failures) = outcome(&out);
    placed.sort();
    placed.dedup();
    assert_eq!(placed.len(), 3, "{out}");
    assert_eq!(failures.len(), 1, "{out}");
    assert_eq!(
        failures[0]["reason"], "DistinctInstance placement constraint unsatisfied.",
        "{out}"
    );
    assert!(zone_of.contains_key(failures[0]["arn"].as_str().unwrap()));

    // Failure reasons with the instance's arn.
    let memory = by_zone
        .values()
        .map(|ci| registered(ci, "MEMORY"))
        .max()
        .unwrap();
    let cpu = by_zone
        .values()
        .map(|ci| registered(ci, "CPU"))
        .max()
        .unwrap();
    let cases = [
        (
            json!({"memory": memory + 1024}),
            json!({}),
            "RESOURCE:MEMORY",
        ),
        (json!({"cpu": cpu + 1024}), json!({}), "RESOURCE:CPU"),
        // An EFS volume needs ecs.capability.efs, which Berth's agent does not have.
        (
            json!({}),
            json!({"volumes": [{"name": "shared",
                "efsVolumeConfiguration": {"fileSystemId": "fs-12345678"}}]}),
            "MissingAttribute",
        ),
    ];
    for (container, extra, reason) in cases {
        let family = unique_name("refused");
        env.register(&family, container, extra);
        let out = env.run(&family, &["--launch-type", "EC2"]);
        let (placed, failures) = outcome(&out);
        assert!(placed.is_empty(), "{out}");
        assert_eq!(failures.len(), 1, "{out}");
        assert_eq!(failures[0]["reason"], reason, "{out}");
        assert!(
            zone_of.contains_key(failures[0]["arn"].as_str().unwrap()),
            "{out}"
        );
    }

    // A static host port: one task per instance, then RESOURCE:PORTS; the port shows in
    // the instances' remainingResources PORTS.
    let ported = unique_name("ported");
    env.register(
        &ported,
        json!({"portMappings": [{"containerPort": 18080, "hostPort": 18080}]}),
        json!({}),
    );
    let out = env.run(&ported, &["--launch-type", "EC2", "--count", "4"]);
    let (mut placed, failures) = outcome(&out);
    placed.sort();
    placed.dedup();
    assert_eq!(placed.len(), 3, "{out}");
    assert_eq!(failures.len(), 1, "{out}");
    assert_eq!(failures[0]["reason"], "RESOURCE:PORTS", "{out}");
    for ci in env.instances().await {
        let ports = ci
            .remaining_resources()
            .iter()
            .find(|r| r.name() == Some("PORTS"))
            .map(|r| r.string_set_value().to_vec())
            .unwrap_or_default();
        assert!(ports.iter().any(|p| p == "18080"), "{ci:#?}");
    }

    // GPUs by id: the third instance offers two; a task taking both, then none left.
    let gpu = unique_name("gpu");
    env.register(
        &gpu,
        json!({"resourceRequirements": [{"type": "GPU", "value": "2"}]}),
        json!({}),
    );
    let out = env.run(&gpu, &["--launch-type", "EC2"]);
    let (placed, failures) = outcome(&out);
    assert!(failures.is_empty(), "{out}");
    assert_eq!(placed, vec![arn(ZONES[2])]);
    let mut ids: Vec<&str> = out["tasks"][0]["containers"][0]["gpuIds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["GPU-0", "GPU-1"], "{out}");
    let out = env.run(&gpu, &["--launch-type", "EC2"]);
    let (_, failures) = outcome(&out);
    assert_eq!(failures[0]["reason"], "RESOURCE:GPU", "{out}");
    assert!(
        zone_of.contains_key(failures[0]["arn"].as_str().unwrap()),
        "{out}"
    );

    // A capacity provider strategy: base 1 on the first provider, then 1:2.
    env.cli(&[
        "ecs",
        "put-cluster-capacity-providers",
        "--cluster",
        &env.cluster,
        "--capacity-providers",
        &providers[0],
        &providers[1],
        "--default-capacity-provider-strategy",
        &format!("capacityProvider={},weight=1", providers[1]),
    ]);
    let strategy = json!([
        {"capacityProvider": providers[0], "base": 1, "weight": 1},
        {"capacityProvider": providers[1], "weight": 2}
    ])
    .to_string();
    let out = env.run(
        &sleep,
        &["--count", "4", "--capacity-provider-strategy", &strategy],
    );
    let (_, failures) = outcome(&out);
    assert!(failures.is_empty(), "{out}");
    let mut per_provider: BTreeMap<String, usize> = BTreeMap::new();
    for t in out["tasks"].as_array().unwrap() {
        let p = t["capacityProviderName"].as_str().unwrap().to_string();
        let k = providers.iter().position(|x| *x == p).unwrap();
        assert_eq!(t["containerInstanceArn"], arn(ZONES[k]).as_str(), "{out}");
        *per_provider.entry(p).or_default() += 1;
    }
    assert_eq!(per_provider[&providers[0]], 2, "{out}");
    assert_eq!(per_provider[&providers[1]], 2, "{out}");
    // Neither a launch type nor a strategy: the cluster's default strategy.
    let out = env.run(&sleep, &["--count", "2"]);
    let (placed, failures) = outcome(&out);
    assert!(failures.is_empty(), "{out}");
    assert_eq!(placed, vec![arn(ZONES[1]), arn(ZONES[1])], "{out}");
    for t in out["tasks"].as_array().unwrap() {
        assert_eq!(t["capacityProviderName"], providers[1].as_str(), "{out}");
    }
    // A strategy with no weight: refused as ECS does.
    let bad = json!([
        {"capacityProvider": providers[0], "base": 1},
        {"capacityProvider": providers[1]}
    ])
    .to_string();
    let out = env.berth.aws_cli(
        REGION,
        &[
            "ecs",
            "run-task",
            "--cluster",
            &env.cluster,
            "--task-definition",
            &sleep,
            "--capacity-provider-strategy",
            &bad,
        ],
    );
    berth_e2e::assert_cli_error(&out, "InvalidParameterException", &["run-task"]);
}
