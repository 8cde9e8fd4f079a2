//! Capacity providers end to end, through aws-sdk-ecs and the aws CLI: CreateCapacityProvider
//! with an Auto Scaling group provider, DescribeCapacityProviders (FARGATE and FARGATE_SPOT
//! always present, include TAGS, MISSING failures, pagination), UpdateCapacityProvider,
//! DeleteCapacityProvider (refused while a cluster uses the provider), the name rules and a
//! cluster's default strategy with a custom provider.

// A failed expectation panics, which is how a test fails; helpers unwrap for the same reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_ecs::types::{
    AutoScalingGroupProvider, AutoScalingGroupProviderUpdate, CapacityProviderField,
    CapacityProviderStatus, CapacityProviderStrategyItem, CapacityProviderType,
    CapacityProviderUpdateStatus, ClusterField, ManagedDraining, ManagedScaling,
    ManagedScalingStatus, ManagedTerminationProtection, Tag,
};
use berth_e2e::{ACCOUNT_ID, BerthServer, REGION, assert_sdk_error};
use serde_json::json;

fn cp_arn(name: &str) -> String {
    format!("arn:aws:ecs:{REGION}:{ACCOUNT_ID}:capacity-provider/{name}")
}

fn asg_arn(name: &str) -> String {
    format!(
        "arn:aws:autoscaling:{REGION}:{ACCOUNT_ID}:autoScalingGroup:0b1c2d3e-1111-2222-3333-444455556666:autoScalingGroupName/{name}"
    )
}

fn asg(name: &str) -> AutoScalingGroupProvider {
    AutoScalingGroupProvider::builder()
        .auto_scaling_group_arn(asg_arn(name))
        .build()
        .unwrap()
}

async fn create(ecs: &aws_sdk_ecs::Client, name: &str) {
    ecs.create_capacity_provider()
        .name(name)
        .auto_scaling_group_provider(asg(name))
        .send()
        .await
        .unwrap();
}

fn names(cps: &[aws_sdk_ecs::types::CapacityProvider]) -> Vec<String> {
    cps.iter().map(|c| c.name().unwrap().to_owned()).collect()
}

#[tokio::test]
async fn create_describe_update_delete_through_the_sdk() {
    let berth = BerthServer::start();
    let ecs = berth.ecs_client(REGION);

    let created = ecs
        .create_capacity_provider()
        .name("ec2-spot_1")
        .auto_scaling_group_provider(
            AutoScalingGroupProvider::builder()
                .auto_scaling_group_arn(asg_arn("spot"))
                .managed_scaling(
                    ManagedScaling::builder()
                        .status(ManagedScalingStatus::Enabled)
                        .target_capacity(80)
                        .build(),
                )
                .managed_termination_protection(ManagedTerminationProtection::Enabled)
                .build()
                .unwrap(),
        )
        .tags(Tag::builder().key("team").value("infra").build())
        .send()
        .await
        .unwrap();
    let cp = created.capacity_provider().unwrap();
    assert_eq!(
        cp.capacity_provider_arn(),
        Some(cp_arn("ec2-spot_1").as_str())
    );
    assert_eq!(cp.name(), Some("ec2-spot_1"));
    assert_eq!(cp.status(), Some(&CapacityProviderStatus::Active));
    assert_eq!(cp.r#type(), Some(&CapacityProviderType::Ec2Autoscaling));
    assert_eq!(cp.tags().len(), 1);
    let p = cp.auto_scaling_group_provider().unwrap();
    assert_eq!(p.auto_scaling_group_arn(), asg_arn("spot"));
    let m = p.managed_scaling().unwrap();
    // ECS's defaults fill what was left out.
    assert_eq!(m.status(), Some(&ManagedScalingStatus::Enabled));
    assert_eq!(m.target_capacity(), Some(80));
    assert_eq!(m.minimum_scaling_step_size(), Some(1));
    assert_eq!(m.maximum_scaling_step_size(), Some(10000));
    assert_eq!(m.instance_warmup_period(), Some(300));
    assert_eq!(
        p.managed_termination_protection(),
        Some(&ManagedTerminationProtection::Enabled)
    );
    assert_eq!(p.managed_draining(), Some(&ManagedDraining::Enabled));

    // A second provider with defaults only.
    let plain = ecs
        .create_capacity_provider()
        .name("plain")
        .auto_scaling_group_provider(asg("plain"))
        .send()
        .await
        .unwrap();
    let p = plain
        .capacity_provider()
        .unwrap()
        .auto_scaling_group_provider()
        .unwrap();
    assert_eq!(
        p.managed_scaling().unwrap().status(),
        Some(&ManagedScalingStatus::Disabled)
    );
    assert_eq!(p.managed_scaling().unwrap().target_capacity(), Some(100));
    assert_eq!(
        p.managed_termination_protection(),
        Some(&ManagedTerminationProtection::Disabled)
    );

    // Describe everything: custom providers, then FARGATE and FARGATE_SPOT.
    let all = ecs.describe_capacity_providers().send().await.unwrap();
    assert_eq!(
        names(all.capacity_providers()),
        ["ec2-spot_1", "plain", "FARGATE", "FARGATE_SPOT"]
    );
    assert!(all.failures().is_empty());
    let fargate = &all.capacity_providers()[2];
    assert_eq!(
        fargate.capacity_provider_arn(),
        Some(cp_arn("FARGATE").as_str())
    );
    assert_eq!(fargate.status(), Some(&CapacityProviderStatus::Active));
    assert_eq!(fargate.r#type(), Some(&CapacityProviderType::Fargate));
    assert!(fargate.auto_scaling_group_provider().is_none());
    assert_eq!(
        all.capacity_providers()[3].r#type(),
        Some(&CapacityProviderType::FargateSpot)
    );
    // Tags only with include TAGS.
    assert!(all.capacity_providers()[0].tags().is_empty());
    let tagged = ecs
        .describe_capacity_providers()
        .capacity_providers("ec2-spot_1")
        .include(CapacityProviderField::Tags)
        .send()
        .await
        .unwrap();
    assert_eq!(tagged.capacity_providers()[0].tags()[0].key(), Some("team"));
    assert_eq!(
        tagged.capacity_providers()[0].tags()[0].value(),
        Some("infra")
    );

    // By name and ARN, with MISSING failures for unknown ones.
    let mixed = ecs
        .describe_capacity_providers()
        .capacity_providers(cp_arn("plain"))
        .capacity_providers("FARGATE_SPOT")
        .capacity_providers("ghost")
        .capacity_providers(cp_arn("ghost2"))
        .send()
        .await
        .unwrap();
    assert_eq!(names(mixed.capacity_providers()), ["plain", "FARGATE_SPOT"]);
    assert_eq!(mixed.failures().len(), 2);
    assert_eq!(mixed.failures()[0].arn(), Some(cp_arn("ghost").as_str()));
    assert_eq!(mixed.failures()[0].reason(), Some("MISSING"));
    assert_eq!(mixed.failures()[1].arn(), Some(cp_arn("ghost2").as_str()));
    assert_eq!(mixed.failures()[1].reason(), Some("MISSING"));

    // Update: merged over the present settings.
    let updated = ecs
        .update_capacity_provider()
        .name("plain")
        .auto_scaling_group_provider(
            AutoScalingGroupProviderUpdate::builder()
                .managed_scaling(
                    ManagedScaling::builder()
                        .status(ManagedScalingStatus::Enabled)
                        .maximum_scaling_step_size(50)
                        .build(),
                )
                .managed_draining(ManagedDraining::Disabled)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let cp = updated.capacity_provider().unwrap();
    assert_eq!(
        cp.update_status(),
        Some(&CapacityProviderUpdateStatus::UpdateInProgress)
    );
    let d = ecs
        .describe_capacity_providers()
        .capacity_providers("plain")
        .send()
        .await
        .unwrap();
    let cp = &d.capacity_providers()[0];
    assert_eq!(
        cp.update_status(),
        Some(&CapacityProviderUpdateStatus::UpdateComplete)
    );
    let p = cp.auto_scaling_group_provider().unwrap();
    let m = p.managed_scaling().unwrap();
    assert_eq!(m.status(), Some(&ManagedScalingStatus::Enabled));
    assert_eq!(m.maximum_scaling_step_size(), Some(50));
    assert_eq!(m.target_capacity(), Some(100));
    assert_eq!(p.managed_draining(), Some(&ManagedDraining::Disabled));
    assert_eq!(p.auto_scaling_group_arn(), asg_arn("plain"));
    // Bad updates.
    assert_sdk_error(
        ecs.update_capacity_provider()
            .name("plain")
            .auto_scaling_group_provider(
                AutoScalingGroupProviderUpdate::builder()
                    .managed_scaling(ManagedScaling::builder().target_capacity(101).build())
                    .build(),
            )
            .send()
            .await,
        "InvalidParameterException",
    );
    assert_sdk_error(
        ecs.update_capacity_provider()
            .name("plain")
            .auto_scaling_group_provider(
                AutoScalingGroupProviderUpdate::builder()
                    .managed_scaling(
                        ManagedScaling::builder()
                            .minimum_scaling_step_size(60)
                            .build(),
                    )
                    .build(),
            )
            .send()
            .await,
        "InvalidParameterException",
    );
    assert_sdk_error(
        ecs.update_capacity_provider()
            .name("ghost")
            .auto_scaling_group_provider(AutoScalingGroupProviderUpdate::builder().build())
            .send()
            .await,
        "ClientException",
    );
    assert_sdk_error(
        ecs.update_capacity_provider()
            .name("FARGATE")
            .auto_scaling_group_provider(AutoScalingGroupProviderUpdate::builder().build())
            .send()
            .await,
        "ClientException",
    );

    // Delete: answers DELETE_IN_PROGRESS, then the provider is gone.
    let deleted = ecs
        .delete_capacity_provider()
        .capacity_provider(cp_arn("ec2-spot_1"))
        .send()
        .await
        .unwrap();
    let cp = deleted.capacity_provider().unwrap();
    assert_eq!(cp.name(), Some("ec2-spot_1"));
    assert_eq!(
        cp.update_status(),
        Some(&CapacityProviderUpdateStatus::DeleteInProgress)
    );
    let all = ecs.describe_capacity_providers().send().await.unwrap();
    assert_eq!(
        names(all.capacity_providers()),
        ["plain", "FARGATE", "FARGATE_SPOT"]
    );
    assert_sdk_error(
        ecs.delete_capacity_provider()
            .capacity_provider("ec2-spot_1")
            .send()
            .await,
        "ClientException",
    );
    assert_sdk_error(
        ecs.delete_capacity_provider()
            .capacity_provider("FARGATE")
            .send()
            .await,
        "ClientException",
    );
    assert_sdk_error(
        ecs.delete_capacity_provider()
            .capacity_provider("FARGATE_SPOT")
            .send()
            .await,
        "ClientException",
    );
    // The name is free again (with its Auto Scaling group).
    create(&ecs, "ec2-spot_1").await;
}

#[tokio::test]
async fn create_errors_and_name_rules() {
    let berth = BerthServer::start();
    let ecs = berth.ecs_client(REGION);
    create(&ecs, "taken").await;
    // The same name twice; the same Auto Scaling group twice.
    assert_sdk_error(
        ecs.create_capacity_provider()
            .name("taken")
            .auto_scaling_group_provider(asg("other"))
            .send()
            .await,
        "ClientException",
    );
    assert_sdk_error(
        ecs.create_capacity_provider()
            .name("second")
            .auto_scaling_group_provider(asg("taken"))
            .send()
            .await,
        "ClientException",
    );
    // Reserved prefixes, any case; FARGATE itself; bad characters; too long.
    for bad in [
        "aws-pool",
        "AWSpool",
        "ecs_pool",
        "Ecs1",
        "fargate-x",
        "FargateLike",
    ] {
        let msg = assert_sdk_error(
            ecs.create_capacity_provider()
                .name(bad)
                .auto_scaling_group_provider(asg(bad))
                .send()
                .await,
            "InvalidParameterException",
        );
        assert!(msg.contains("prefixed"), "{bad}: {msg}");
    }
    for reserved in ["FARGATE", "FARGATE_SPOT"] {
        assert_sdk_error(
            ecs.create_capacity_provider()
                .name(reserved)
                .auto_scaling_group_provider(asg(reserved))
                .send()
                .await,
            "ClientException",
        );
    }
    for bad in [
        "has space".to_owned(),
        "dots.here".to_owned(),
        "x".repeat(256),
    ] {
        assert_sdk_error(
            ecs.create_capacity_provider()
                .name(&bad)
                .auto_scaling_group_provider(asg("n"))
                .send()
                .await,
            "InvalidParameterException",
        );
    }
    // 255 characters is fine.
    create(&ecs, &"p".repeat(255)).await;
    // No Auto Scaling group provider; an empty ARN.
    assert_sdk_error(
        ecs.create_capacity_provider().name("noasg").send().await,
        "InvalidParameterException",
    );
    // Managed termination protection needs managed scaling.
    assert_sdk_error(
        ecs.create_capacity_provider()
            .name("protected")
            .auto_scaling_group_provider(
                AutoScalingGroupProvider::builder()
                    .auto_scaling_group_arn(asg_arn("protected"))
                    .managed_termination_protection(ManagedTerminationProtection::Enabled)
                    .build()
                    .unwrap(),
            )
            .send()
            .await,
        "ClientException",
    );
    // Managed scaling ranges.
    for m in [
        ManagedScaling::builder().target_capacity(0).build(),
        ManagedScaling::builder()
            .minimum_scaling_step_size(0)
            .build(),
        ManagedScaling::builder()
            .maximum_scaling_step_size(10001)
            .build(),
        ManagedScaling::builder().instance_warmup_period(-1).build(),
    ] {
        assert_sdk_error(
            ecs.create_capacity_provider()
                .name("scaling")
                .auto_scaling_group_provider(
                    AutoScalingGroupProvider::builder()
                        .auto_scaling_group_arn(asg_arn("scaling"))
                        .managed_scaling(m)
                        .build()
                        .unwrap(),
                )
                .send()
                .await,
            "InvalidParameterException",
        );
    }
    // Reserved tag keys.
    assert_sdk_error(
        ecs.create_capacity_provider()
            .name("tagged")
            .auto_scaling_group_provider(asg("tagged"))
            .tags(Tag::builder().key("aws:x").value("y").build())
            .send()
            .await,
        "InvalidParameterException",
    );
    // Only the two valid providers exist.
    let all = ecs.describe_capacity_providers().send().await.unwrap();
    assert_eq!(all.capacity_providers().len(), 4, "{all:?}");
}

#[tokio::test]
async fn describe_paginates() {
    let berth = BerthServer::start();
    let ecs = berth.ecs_client(REGION);
    for i in 0..5 {
        create(&ecs, &format!("cp{i}")).await;
    }
    let want = ["cp0", "cp1", "cp2", "cp3", "cp4", "FARGATE", "FARGATE_SPOT"];
    let mut got = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = ecs
            .describe_capacity_providers()
            .max_results(2)
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap();
        assert!(page.capacity_providers().len() <= 2);
        got.extend(names(page.capacity_providers()));
        pages += 1;
        token = page.next_token().map(String::from);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(got, want);
    assert_eq!(pages, 4);
    // The CLI (DescribeCapacityProviders has no CLI paginator): page by hand.
    let mut cli_names: Vec<String> = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut args = vec!["ecs", "describe-capacity-providers", "--max-results", "3"];
        if let Some(t) = token.as_deref() {
            args.extend(["--next-token", t]);
        }
        let page = berth.aws_cli_json(REGION, &args);
        cli_names.extend(
            page["capacityProviders"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| c["name"].as_str().unwrap().to_owned()),
        );
        match page["nextToken"].as_str() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
    }
    assert_eq!(cli_names, want);
    assert_sdk_error(
        ecs.describe_capacity_providers()
            .max_results(11)
            .send()
            .await,
        "InvalidParameterException",
    );
    assert_sdk_error(
        ecs.describe_capacity_providers()
            .next_token("???")
            .send()
            .await,
        "InvalidParameterException",
    );
}

#[tokio::test]
async fn cluster_association_blocks_deletion_and_sets_the_default_strategy() {
    let berth = BerthServer::start();
    let ecs = berth.ecs_client(REGION);
    create(&ecs, "pool").await;
    create(&ecs, "pool2").await;
    ecs.create_cluster()
        .cluster_name("web")
        .send()
        .await
        .unwrap();
    ecs.create_cluster()
        .cluster_name("api")
        .send()
        .await
        .unwrap();

    let put = ecs
        .put_cluster_capacity_providers()
        .cluster("web")
        .capacity_providers("pool")
        .capacity_providers("pool2")
        .default_capacity_provider_strategy(
            CapacityProviderStrategyItem::builder()
                .capacity_provider("pool")
                .base(2)
                .weight(3)
                .build()
                .unwrap(),
        )
        .default_capacity_provider_strategy(
            CapacityProviderStrategyItem::builder()
                .capacity_provider("pool2")
                .weight(1)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let c = put.cluster().unwrap();
    assert_eq!(c.capacity_providers().len(), 2);
    let strategy = c.default_capacity_provider_strategy();
    assert_eq!(strategy.len(), 2);
    assert_eq!(strategy[0].capacity_provider(), "pool");
    assert_eq!(strategy[0].base(), 2);
    assert_eq!(strategy[0].weight(), 3);
    assert_eq!(strategy[1].capacity_provider(), "pool2");
    let described = ecs
        .describe_clusters()
        .clusters("web")
        .include(ClusterField::Settings)
        .send()
        .await
        .unwrap();
    assert_eq!(
        described.clusters()[0].default_capacity_provider_strategy(),
        strategy
    );

    // DescribeCapacityProviders with cluster: only that cluster's providers.
    let of_web = ecs
        .describe_capacity_providers()
        .cluster("web")
        .send()
        .await
        .unwrap();
    assert_eq!(names(of_web.capacity_providers()), ["pool", "pool2"]);

    // Another cluster cannot take the same provider.
    assert_sdk_error(
        ecs.put_cluster_capacity_providers()
            .cluster("api")
            .capacity_providers("pool")
            .set_default_capacity_provider_strategy(Some(vec![]))
            .send()
            .await,
        "ResourceInUseException",
    );
    // Fargate and Auto Scaling group providers do not mix in a strategy.
    assert_sdk_error(
        ecs.put_cluster_capacity_providers()
            .cluster("web")
            .capacity_providers("pool")
            .capacity_providers("FARGATE")
            .default_capacity_provider_strategy(
                CapacityProviderStrategyItem::builder()
                    .capacity_provider("pool")
                    .weight(1)
                    .build()
                    .unwrap(),
            )
            .default_capacity_provider_strategy(
                CapacityProviderStrategyItem::builder()
                    .capacity_provider("FARGATE")
                    .weight(1)
                    .build()
                    .unwrap(),
            )
            .send()
            .await,
        "InvalidParameterException",
    );

    // While associated, deletion fails: DELETE_FAILED with the reason naming the cluster,
    // and the provider stays ACTIVE.
    let refused = ecs
        .delete_capacity_provider()
        .capacity_provider("pool")
        .send()
        .await
        .unwrap();
    let cp = refused.capacity_provider().unwrap();
    assert_eq!(cp.status(), Some(&CapacityProviderStatus::Active));
    assert_eq!(
        cp.update_status(),
        Some(&CapacityProviderUpdateStatus::DeleteFailed)
    );
    assert!(
        cp.update_status_reason()
            .unwrap_or_default()
            .contains("web"),
        "{cp:?}"
    );
    let still = ecs
        .describe_capacity_providers()
        .capacity_providers("pool")
        .send()
        .await
        .unwrap();
    assert_eq!(
        still.capacity_providers()[0].status(),
        Some(&CapacityProviderStatus::Active)
    );

    // Remove it from the cluster; now it deletes.
    ecs.put_cluster_capacity_providers()
        .cluster("web")
        .capacity_providers("pool2")
        .default_capacity_provider_strategy(
            CapacityProviderStrategyItem::builder()
                .capacity_provider("pool2")
                .weight(1)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let deleted = ecs
        .delete_capacity_provider()
        .capacity_provider("pool")
        .send()
        .await
        .unwrap();
    assert_eq!(
        deleted.capacity_provider().unwrap().update_status(),
        Some(&CapacityProviderUpdateStatus::DeleteInProgress)
    );
    // A deleted provider cannot be associated.
    assert_sdk_error(
        ecs.put_cluster_capacity_providers()
            .cluster("api")
            .capacity_providers("pool")
            .set_default_capacity_provider_strategy(Some(vec![]))
            .send()
            .await,
        "InvalidParameterException",
    );
    // Deleting the cluster frees pool2 too.
    ecs.delete_cluster().cluster("web").send().await.unwrap();
    ecs.delete_capacity_provider()
        .capacity_provider("pool2")
        .send()
        .await
        .unwrap();
    let all = ecs.describe_capacity_providers().send().await.unwrap();
    assert_eq!(names(all.capacity_providers()), ["FARGATE", "FARGATE_SPOT"]);
}

#[test]
fn capacity_providers_through_the_cli() {
    let berth = BerthServer::start();
    let out = berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "create-capacity-provider",
            "--name",
            "cli-pool",
            "--auto-scaling-group-provider",
            &json!({
                "autoScalingGroupArn": asg_arn("cli"),
                "managedScaling": {"status": "ENABLED", "targetCapacity": 90,
                                   "minimumScalingStepSize": 2, "maximumScalingStepSize": 20,
                                   "instanceWarmupPeriod": 60},
                "managedTerminationProtection": "DISABLED"
            })
            .to_string(),
            "--tags",
            "key=env,value=ci",
        ],
    );
    let cp = &out["capacityProvider"];
    assert_eq!(cp["capacityProviderArn"], cp_arn("cli-pool"));
    assert_eq!(cp["status"], "ACTIVE");
    assert_eq!(cp["type"], "EC2_AUTOSCALING");
    assert_eq!(
        cp["autoScalingGroupProvider"]["managedScaling"],
        json!({"status": "ENABLED", "targetCapacity": 90, "minimumScalingStepSize": 2,
               "maximumScalingStepSize": 20, "instanceWarmupPeriod": 60})
    );
    assert_eq!(cp["tags"], json!([{"key": "env", "value": "ci"}]));

    let d = berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "describe-capacity-providers",
            "--capacity-providers",
            "cli-pool",
            "FARGATE",
            "missing",
            "--include",
            "TAGS",
        ],
    );
    assert_eq!(d["capacityProviders"][0]["tags"][0]["key"], "env");
    assert_eq!(d["capacityProviders"][1]["name"], "FARGATE");
    assert_eq!(d["failures"][0]["arn"], cp_arn("missing"));
    assert_eq!(d["failures"][0]["reason"], "MISSING");

    let u = berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "update-capacity-provider",
            "--name",
            "cli-pool",
            "--auto-scaling-group-provider",
            r#"{"managedScaling":{"targetCapacity":50}}"#,
        ],
    );
    assert_eq!(
        u["capacityProvider"]["autoScalingGroupProvider"]["managedScaling"]["targetCapacity"],
        50
    );
    assert_eq!(u["capacityProvider"]["updateStatus"], "UPDATE_IN_PROGRESS");

    berth.aws_cli_error(
        REGION,
        &[
            "ecs",
            "create-capacity-provider",
            "--name",
            "aws-reserved",
            "--auto-scaling-group-provider",
            &format!("autoScalingGroupArn={}", asg_arn("r")),
        ],
        "InvalidParameterException",
    );
    berth.aws_cli_error(
        REGION,
        &[
            "ecs",
            "delete-capacity-provider",
            "--capacity-provider",
            "missing",
        ],
        "ClientException",
    );

    // Refused while associated with a cluster, deleted after.
    berth.aws_cli_json(REGION, &["ecs", "create-cluster", "--cluster-name", "c"]);
    berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "put-cluster-capacity-providers",
            "--cluster",
            "c",
            "--capacity-providers",
            "cli-pool",
            "--default-capacity-provider-strategy",
            "capacityProvider=cli-pool,weight=1,base=1",
        ],
    );
    let c = berth.aws_cli_json(REGION, &["ecs", "describe-clusters", "--clusters", "c"]);
    assert_eq!(
        c["clusters"][0]["defaultCapacityProviderStrategy"],
        json!([{"capacityProvider": "cli-pool", "weight": 1, "base": 1}])
    );
    let refused = berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "delete-capacity-provider",
            "--capacity-provider",
            "cli-pool",
        ],
    );
    assert_eq!(refused["capacityProvider"]["updateStatus"], "DELETE_FAILED");
    berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "put-cluster-capacity-providers",
            "--cluster",
            "c",
            "--capacity-providers",
            "[]",
            "--default-capacity-provider-strategy",
            "[]",
        ],
    );
    let deleted = berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "delete-capacity-provider",
            "--capacity-provider",
            &cp_arn("cli-pool"),
        ],
    );
    assert_eq!(
        deleted["capacityProvider"]["updateStatus"],
        "DELETE_IN_PROGRESS"
    );
    let all = berth.aws_cli_json(REGION, &["ecs", "describe-capacity-providers"]);
    assert_eq!(all["capacityProviders"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn provider_associated_by_arn_is_still_refused_deletion() {
    let berth = BerthServer::start();
    let ecs = berth.ecs_client(REGION);
    create(&ecs, "pool").await;
    ecs.create_cluster()
        .cluster_name("web")
        .send()
        .await
        .unwrap();
    // PutClusterCapacityProviders accepts the provider's ARN ...
    let put = ecs
        .put_cluster_capacity_providers()
        .cluster("web")
        .capacity_providers(cp_arn("pool"))
        .set_default_capacity_provider_strategy(Some(vec![]))
        .send()
        .await
        .unwrap();
    // ... and the cluster should show the provider by its short name, as ECS does
    // (Cluster.capacityProviders: "The capacity providers associated with the cluster",
    // short names).
    assert_eq!(put.cluster().unwrap().capacity_providers(), ["pool"]);
    // While associated, deletion must fail.
    let refused = ecs
        .delete_capacity_provider()
        .capacity_provider("pool")
        .send()
        .await
        .unwrap();
    assert_eq!(
        refused.capacity_provider().unwrap().update_status(),
        Some(&CapacityProviderUpdateStatus::DeleteFailed)
    );
}
