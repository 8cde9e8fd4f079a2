//! Clusters end to end, through aws-sdk-ecs and the aws CLI: create (idempotent), describe
//! with every `include`, list with pagination, update, settings, capacity providers, delete,
//! regional isolation and every error path.

use aws_sdk_ecs::types::{
    CapacityProviderStrategyItem, ClusterField, ClusterSetting, ClusterSettingName, Tag,
};
use berth_e2e::{ACCOUNT_ID, BerthServer, REGION, assert_sdk_error};

fn arn(name: &str) -> String {
    format!("arn:aws:ecs:{REGION}:{ACCOUNT_ID}:cluster/{name}")
}

#[tokio::test]
async fn create_describe_update_delete_through_the_sdk() {
    let berth = BerthServer::start();
    let ecs = berth.ecs_client(REGION);

    let created = ecs
        .create_cluster()
        .cluster_name("web")
        .tags(Tag::builder().key("team").value("blue").build())
        .settings(
            ClusterSetting::builder()
                .name(ClusterSettingName::ContainerInsights)
                .value("enabled")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let c = created.cluster().unwrap();
    assert_eq!(c.cluster_arn(), Some(arn("web").as_str()));
    assert_eq!(c.status(), Some("ACTIVE"));
    assert_eq!(c.registered_container_instances_count(), 0);
    assert_eq!(c.tags().len(), 1);
    assert_eq!(c.settings()[0].value(), Some("enabled"));

    // CreateCluster of an existing name answers with the existing cluster.
    let again = ecs
        .create_cluster()
        .cluster_name("web")
        .send()
        .await
        .unwrap();
    assert_eq!(again.cluster().unwrap().tags().len(), 1);

    // Describe: by name and by ARN; tags and settings only when included.
    let plain = ecs
        .describe_clusters()
        .clusters("web")
        .send()
        .await
        .unwrap();
    let c = &plain.clusters()[0];
    assert!(c.tags().is_empty(), "tags need include TAGS: {c:?}");
    assert!(
        c.settings().is_empty(),
        "settings need include SETTINGS: {c:?}"
    );
    assert!(c.statistics().is_empty());
    let full = ecs
        .describe_clusters()
        .clusters(arn("web"))
        .include(ClusterField::Tags)
        .include(ClusterField::Settings)
        .include(ClusterField::Statistics)
        .include(ClusterField::Configurations)
        .send()
        .await
        .unwrap();
    let c = &full.clusters()[0];
    assert_eq!(c.tags()[0].key(), Some("team"));
    assert_eq!(c.settings()[0].value(), Some("enabled"));
    assert!(
        c.statistics()
            .iter()
            .any(|kv| kv.name() == Some("runningFargateTasksCount") && kv.value() == Some("0")),
        "{:?}",
        c.statistics()
    );

    // Missing clusters are failures, not errors.
    let mixed = ecs
        .describe_clusters()
        .clusters("web")
        .clusters("nope")
        .send()
        .await
        .unwrap();
    assert_eq!(mixed.clusters().len(), 1);
    assert_eq!(mixed.failures()[0].reason(), Some("MISSING"));
    assert_eq!(mixed.failures()[0].arn(), Some(arn("nope").as_str()));

    // UpdateClusterSettings and UpdateCluster.
    let updated = ecs
        .update_cluster_settings()
        .cluster("web")
        .settings(
            ClusterSetting::builder()
                .name(ClusterSettingName::ContainerInsights)
                .value("disabled")
                .build(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        updated.cluster().unwrap().settings()[0].value(),
        Some("disabled")
    );
    let bad = ecs
        .update_cluster()
        .cluster("web")
        .settings(
            ClusterSetting::builder()
                .name(ClusterSettingName::ContainerInsights)
                .value("sometimes")
                .build(),
        )
        .send()
        .await;
    assert_sdk_error(bad, "InvalidParameterException");

    // Capacity providers on the cluster.
    let put = ecs
        .put_cluster_capacity_providers()
        .cluster("web")
        .capacity_providers("FARGATE")
        .capacity_providers("FARGATE_SPOT")
        .default_capacity_provider_strategy(
            CapacityProviderStrategyItem::builder()
                .capacity_provider("FARGATE")
                .base(1)
                .weight(100)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let c = put.cluster().unwrap();
    assert_eq!(c.capacity_providers(), ["FARGATE", "FARGATE_SPOT"]);
    assert_eq!(c.default_capacity_provider_strategy()[0].base(), 1);
    // A strategy naming a provider the cluster lacks is refused.
    let bad = ecs
        .put_cluster_capacity_providers()
        .cluster("web")
        .capacity_providers("FARGATE")
        .default_capacity_provider_strategy(
            CapacityProviderStrategyItem::builder()
                .capacity_provider("FARGATE_SPOT")
                .weight(1)
                .build()
                .unwrap(),
        )
        .send()
        .await;
    assert_sdk_error(bad, "InvalidParameterException");
    let bad = ecs
        .put_cluster_capacity_providers()
        .cluster("web")
        .capacity_providers("no-such-provider")
        .set_default_capacity_provider_strategy(Some(vec![]))
        .send()
        .await;
    assert_sdk_error(bad, "InvalidParameterException");

    // Delete: INACTIVE, gone from the list, still described, then not found for updates.
    let deleted = ecs.delete_cluster().cluster("web").send().await.unwrap();
    assert_eq!(deleted.cluster().unwrap().status(), Some("INACTIVE"));
    let listed = ecs.list_clusters().send().await.unwrap();
    assert!(listed.cluster_arns().is_empty(), "{listed:?}");
    let described = ecs
        .describe_clusters()
        .clusters("web")
        .send()
        .await
        .unwrap();
    assert_eq!(described.clusters()[0].status(), Some("INACTIVE"));
    assert_sdk_error(
        ecs.delete_cluster().cluster("web").send().await,
        "ClusterNotFoundException",
    );
    assert_sdk_error(
        ecs.update_cluster_settings()
            .cluster("web")
            .settings(
                ClusterSetting::builder()
                    .name(ClusterSettingName::ContainerInsights)
                    .value("enabled")
                    .build(),
            )
            .send()
            .await,
        "ClusterNotFoundException",
    );
    // Re-creating the name gives a fresh ACTIVE cluster.
    let recreated = ecs
        .create_cluster()
        .cluster_name("web")
        .send()
        .await
        .unwrap();
    assert_eq!(recreated.cluster().unwrap().status(), Some("ACTIVE"));
    assert!(recreated.cluster().unwrap().tags().is_empty());
}

#[tokio::test]
async fn bad_names_and_limits_are_refused() {
    let berth = BerthServer::start();
    let ecs = berth.ecs_client(REGION);
    let msg = assert_sdk_error(
        ecs.create_cluster().cluster_name("has space").send().await,
        "InvalidParameterException",
    );
    assert!(msg.to_lowercase().contains("cluster name"), "{msg}");
    assert_sdk_error(
        ecs.create_cluster()
            .cluster_name("x".repeat(256))
            .send()
            .await,
        "InvalidParameterException",
    );
    assert_sdk_error(
        ecs.create_cluster()
            .cluster_name("tagged")
            .tags(Tag::builder().key("aws:reserved").value("x").build())
            .send()
            .await,
        "InvalidParameterException",
    );
    assert_sdk_error(
        ecs.list_clusters().max_results(101).send().await,
        "InvalidParameterException",
    );
    assert_sdk_error(
        ecs.list_clusters().next_token("not-a-token!").send().await,
        "InvalidParameterException",
    );
}

#[tokio::test]
async fn list_clusters_paginates() {
    let berth = BerthServer::start();
    let ecs = berth.ecs_client(REGION);
    let mut want: Vec<String> = Vec::new();
    for i in 0..7 {
        let name = format!("c{i:02}");
        ecs.create_cluster()
            .cluster_name(&name)
            .send()
            .await
            .unwrap();
        want.push(arn(&name));
    }
    // A deleted cluster is skipped by the listing.
    ecs.create_cluster()
        .cluster_name("c03x")
        .send()
        .await
        .unwrap();
    ecs.delete_cluster().cluster("c03x").send().await.unwrap();

    let mut got = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = ecs
            .list_clusters()
            .max_results(3)
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap();
        assert!(page.cluster_arns().len() <= 3);
        got.extend(page.cluster_arns().iter().cloned());
        pages += 1;
        token = page.next_token().map(String::from);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(got, want);
    assert_eq!(pages, 3);

    // The SDK's paginator and the CLI's auto-pagination see the same list.
    let all: Vec<String> = ecs
        .list_clusters()
        .max_results(2)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(all, want);
    let cli = berth.aws_cli_json(REGION, &["ecs", "list-clusters", "--page-size", "2"]);
    let cli: Vec<&str> = cli["clusterArns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(cli, want);
}

#[tokio::test]
async fn clusters_are_regional() {
    let berth = BerthServer::start();
    let east = berth.ecs_client("us-east-1");
    let west = berth.ecs_client("eu-west-1");
    east.create_cluster()
        .cluster_name("here")
        .send()
        .await
        .unwrap();
    assert!(
        west.list_clusters()
            .send()
            .await
            .unwrap()
            .cluster_arns()
            .is_empty()
    );
    let d = west
        .describe_clusters()
        .clusters("here")
        .send()
        .await
        .unwrap();
    assert_eq!(d.failures()[0].reason(), Some("MISSING"));
    assert_eq!(
        d.failures()[0].arn(),
        Some(format!("arn:aws:ecs:eu-west-1:{ACCOUNT_ID}:cluster/here").as_str())
    );
    // An ARN of the other region names nothing here.
    assert_sdk_error(
        west.delete_cluster().cluster(arn("here")).send().await,
        "ClusterNotFoundException",
    );
    let made = west
        .create_cluster()
        .cluster_name("here")
        .send()
        .await
        .unwrap();
    assert_eq!(
        made.cluster().unwrap().cluster_arn(),
        Some(format!("arn:aws:ecs:eu-west-1:{ACCOUNT_ID}:cluster/here").as_str())
    );
}

#[test]
fn clusters_through_the_cli() {
    let berth = BerthServer::start();
    let out = berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "create-cluster",
            "--cluster-name",
            "cli",
            "--tags",
            "key=env,value=test",
            "--settings",
            "name=containerInsights,value=enhanced",
        ],
    );
    assert_eq!(out["cluster"]["clusterArn"], arn("cli").as_str());
    assert_eq!(out["cluster"]["settings"][0]["value"], "enhanced");
    let d = berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "describe-clusters",
            "--clusters",
            "cli",
            "--include",
            "TAGS",
        ],
    );
    assert_eq!(d["clusters"][0]["tags"][0]["key"], "env");
    assert_eq!(d["failures"], serde_json::json!([]));
    berth.aws_cli_error(
        REGION,
        &["ecs", "delete-cluster", "--cluster", "missing"],
        "ClusterNotFoundException",
    );
    berth.aws_cli_error(
        REGION,
        &["ecs", "list-clusters", "--max-results", "0"],
        "InvalidParameterException",
    );
    let d = berth.aws_cli_json(REGION, &["ecs", "delete-cluster", "--cluster", "cli"]);
    assert_eq!(d["cluster"]["status"], "INACTIVE");
    // The CLI's waiter-free check: nothing left.
    let l = berth.aws_cli_json(REGION, &["ecs", "list-clusters"]);
    assert_eq!(l["clusterArns"], serde_json::json!([]));
}

#[tokio::test]
async fn reset_wipes_the_account_and_keeps_the_key() {
    let berth = BerthServer::start();
    let ecs = berth.ecs_client(REGION);
    ecs.create_cluster().cluster_name("a").send().await.unwrap();
    berth
        .ecs_client("eu-west-1")
        .create_cluster()
        .cluster_name("b")
        .send()
        .await
        .unwrap();
    berth.reset();
    assert!(
        ecs.list_clusters()
            .send()
            .await
            .unwrap()
            .cluster_arns()
            .is_empty()
    );
    assert!(
        berth
            .ecs_client("eu-west-1")
            .list_clusters()
            .send()
            .await
            .unwrap()
            .cluster_arns()
            .is_empty()
    );
    // The same key still works.
    ecs.create_cluster().cluster_name("a").send().await.unwrap();
}
