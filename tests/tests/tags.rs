//! Tags end to end, through aws-sdk-ecs and the aws CLI: TagResource, UntagResource and
//! ListTagsForResource on a cluster, a task definition, a capacity provider and a container
//! instance; the 50-tag limit, the reserved `aws:` prefix, bad ARNs and missing resources.

// A failed expectation panics, which is how a test fails; helpers unwrap for the same reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_ecs::types::{
    AutoScalingGroupProvider, CapacityProviderField, ClusterField, ContainerDefinition,
    ContainerInstanceField, Resource, Tag, TaskDefinitionField,
};
use berth_e2e::{ACCOUNT_ID, BerthServer, REGION, assert_sdk_error};
use serde_json::json;

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build()
}

fn pairs(tags: &[Tag]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = tags
        .iter()
        .map(|t| {
            (
                t.key().unwrap_or_default().to_owned(),
                t.value().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    v.sort();
    v
}

fn owned(p: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = p
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    v.sort();
    v
}

/// The ARNs of one resource of each taggable kind: cluster, task definition, capacity
/// provider, container instance (all made with tag `origin=create`).
async fn make_resources(ecs: &aws_sdk_ecs::Client) -> [String; 4] {
    let cluster = ecs
        .create_cluster()
        .cluster_name("tagged")
        .tags(tag("origin", "create"))
        .send()
        .await
        .unwrap()
        .cluster()
        .unwrap()
        .cluster_arn()
        .unwrap()
        .to_owned();
    let td = ecs
        .register_task_definition()
        .family("tagged")
        .container_definitions(
            ContainerDefinition::builder()
                .name("app")
                .image("busybox")
                .memory(64)
                .build(),
        )
        .tags(tag("origin", "create"))
        .send()
        .await
        .unwrap()
        .task_definition()
        .unwrap()
        .task_definition_arn()
        .unwrap()
        .to_owned();
    let cp = ecs
        .create_capacity_provider()
        .name("tagged")
        .auto_scaling_group_provider(
            AutoScalingGroupProvider::builder()
                .auto_scaling_group_arn(format!(
                    "arn:aws:autoscaling:{REGION}:{ACCOUNT_ID}:autoScalingGroup:1:autoScalingGroupName/tagged"
                ))
                .build()
                .unwrap(),
        )
        .tags(tag("origin", "create"))
        .send()
        .await
        .unwrap()
        .capacity_provider()
        .unwrap()
        .capacity_provider_arn()
        .unwrap()
        .to_owned();
    let ci = ecs
        .register_container_instance()
        .cluster("tagged")
        .total_resources(
            Resource::builder()
                .name("CPU")
                .r#type("INTEGER")
                .integer_value(1024)
                .build(),
        )
        .tags(tag("origin", "create"))
        .send()
        .await
        .unwrap()
        .container_instance()
        .unwrap()
        .container_instance_arn()
        .unwrap()
        .to_owned();
    [cluster, td, cp, ci]
}

async fn list(ecs: &aws_sdk_ecs::Client, arn: &str) -> Vec<(String, String)> {
    pairs(
        ecs.list_tags_for_resource()
            .resource_arn(arn)
            .send()
            .await
            .unwrap()
            .tags(),
    )
}

#[tokio::test]
async fn tag_untag_and_list_every_taggable_resource() {
    let berth = BerthServer::start();
    let ecs = berth.ecs_client(REGION);
    let arns = make_resources(&ecs).await;
    assert_eq!(
        arns[1],
        format!("arn:aws:ecs:{REGION}:{ACCOUNT_ID}:task-definition/tagged:1")
    );
    assert!(
        arns[3].starts_with(&format!(
            "arn:aws:ecs:{REGION}:{ACCOUNT_ID}:container-instance/tagged/"
        )),
        "{}",
        arns[3]
    );

    for arn in &arns {
        assert_eq!(
            list(&ecs, arn).await,
            owned(&[("origin", "create")]),
            "{arn}"
        );
        ecs.tag_resource()
            .resource_arn(arn)
            .tags(tag("team", "blue"))
            .tags(tag("env", "prod"))
            .tags(tag("empty", ""))
            .send()
            .await
            .unwrap();
        assert_eq!(
            list(&ecs, arn).await,
            owned(&[
                ("origin", "create"),
                ("team", "blue"),
                ("env", "prod"),
                ("empty", "")
            ]),
            "{arn}"
        );
        // An existing key is overwritten, not duplicated.
        ecs.tag_resource()
            .resource_arn(arn)
            .tags(tag("team", "red"))
            .send()
            .await
            .unwrap();
        ecs.untag_resource()
            .resource_arn(arn)
            .tag_keys("env")
            .tag_keys("origin")
            .tag_keys("never-there")
            .send()
            .await
            .unwrap();
        assert_eq!(
            list(&ecs, arn).await,
            owned(&[("team", "red"), ("empty", "")]),
            "{arn}"
        );
    }

    // The tags show where each resource's describe shows tags.
    let c = ecs
        .describe_clusters()
        .clusters("tagged")
        .include(ClusterField::Tags)
        .send()
        .await
        .unwrap();
    assert_eq!(
        pairs(c.clusters()[0].tags()),
        owned(&[("team", "red"), ("empty", "")])
    );
    let td = ecs
        .describe_task_definition()
        .task_definition("tagged:1")
        .include(TaskDefinitionField::Tags)
        .send()
        .await
        .unwrap();
    assert_eq!(pairs(td.tags()), owned(&[("team", "red"), ("empty", "")]));
    let cp = ecs
        .describe_capacity_providers()
        .capacity_providers("tagged")
        .include(CapacityProviderField::Tags)
        .send()
        .await
        .unwrap();
    assert_eq!(
        pairs(cp.capacity_providers()[0].tags()),
        owned(&[("team", "red"), ("empty", "")])
    );
    let ci = ecs
        .describe_container_instances()
        .cluster("tagged")
        .container_instances(&arns[3])
        .include(ContainerInstanceField::Tags)
        .send()
        .await
        .unwrap();
    assert_eq!(
        pairs(ci.container_instances()[0].tags()),
        owned(&[("team", "red"), ("empty", "")])
    );

    // A task definition keeps its tags while INACTIVE.
    ecs.deregister_task_definition()
        .task_definition("tagged:1")
        .send()
        .await
        .unwrap();
    ecs.tag_resource()
        .resource_arn(&arns[1])
        .tags(tag("after", "deregister"))
        .send()
        .await
        .unwrap();
    assert_eq!(list(&ecs, &arns[1]).await.len(), 3);
}

#[tokio::test]
async fn limits_reserved_prefix_and_bad_arns() {
    let berth = BerthServer::start();
    let ecs = berth.ecs_client(REGION);
    let arns = make_resources(&ecs).await;

    for arn in &arns {
        // 51 new tags in one call.
        let mut req = ecs.tag_resource().resource_arn(arn);
        for i in 0..51 {
            req = req.tags(tag(&format!("k{i}"), "v"));
        }
        assert_sdk_error(req.send().await, "InvalidParameterException");
        // 49 more fit beside the one from creation (50 in all) ...
        let mut req = ecs.tag_resource().resource_arn(arn);
        for i in 0..49 {
            req = req.tags(tag(&format!("k{i}"), "v"));
        }
        req.send().await.unwrap();
        assert_eq!(list(&ecs, arn).await.len(), 50);
        // ... and the 51st is refused, leaving the 50 as they were; an existing key still
        // takes a new value.
        assert_sdk_error(
            ecs.tag_resource()
                .resource_arn(arn)
                .tags(tag("one-too-many", "v"))
                .send()
                .await,
            "InvalidParameterException",
        );
        ecs.tag_resource()
            .resource_arn(arn)
            .tags(tag("k0", "new"))
            .send()
            .await
            .unwrap();
        assert_eq!(list(&ecs, arn).await.len(), 50);

        // The reserved aws: prefix, any case.
        for key in ["aws:owner", "AWS:owner", "Aws:x"] {
            assert_sdk_error(
                ecs.tag_resource()
                    .resource_arn(arn)
                    .tags(tag(key, "x"))
                    .send()
                    .await,
                "InvalidParameterException",
            );
        }
        // Key and value lengths.
        assert_sdk_error(
            ecs.tag_resource()
                .resource_arn(arn)
                .tags(tag(&"k".repeat(129), "x"))
                .send()
                .await,
            "InvalidParameterException",
        );
        assert_sdk_error(
            ecs.tag_resource()
                .resource_arn(arn)
                .tags(tag("k1", &"v".repeat(257)))
                .send()
                .await,
            "InvalidParameterException",
        );
    }

    // ARNs that are not ECS resource ARNs.
    for bad in [
        "tagged",
        "arn:aws:ecs",
        "arn:aws:s3:::bucket",
        &format!("arn:aws:ecs:{REGION}:{ACCOUNT_ID}:widget/x"),
        &format!("arn:aws:ecs:{REGION}:{ACCOUNT_ID}:task-definition/tagged"),
    ] {
        assert_sdk_error(
            ecs.tag_resource()
                .resource_arn(bad)
                .tags(tag("a", "b"))
                .send()
                .await,
            "InvalidParameterException",
        );
        assert_sdk_error(
            ecs.untag_resource()
                .resource_arn(bad)
                .tag_keys("a")
                .send()
                .await,
            "InvalidParameterException",
        );
        assert_sdk_error(
            ecs.list_tags_for_resource().resource_arn(bad).send().await,
            "InvalidParameterException",
        );
    }
}

#[tokio::test]
async fn missing_resources() {
    let berth = BerthServer::start();
    let ecs = berth.ecs_client(REGION);
    let arns = make_resources(&ecs).await;
    let base = format!("arn:aws:ecs:{REGION}:{ACCOUNT_ID}");

    // A cluster that does not exist: ClusterNotFoundException everywhere.
    let cluster = format!("{base}:cluster/nope");
    assert_sdk_error(
        ecs.tag_resource()
            .resource_arn(&cluster)
            .tags(tag("a", "b"))
            .send()
            .await,
        "ClusterNotFoundException",
    );
    assert_sdk_error(
        ecs.untag_resource()
            .resource_arn(&cluster)
            .tag_keys("a")
            .send()
            .await,
        "ClusterNotFoundException",
    );
    assert_sdk_error(
        ecs.list_tags_for_resource()
            .resource_arn(&cluster)
            .send()
            .await,
        "ClusterNotFoundException",
    );

    // Other kinds: ResourceNotFoundException for Tag/Untag, ClientException for
    // ListTagsForResource (its model has no ResourceNotFoundException).
    for missing in [
        format!("{base}:task-definition/tagged:9"),
        format!("{base}:capacity-provider/nope"),
        format!("{base}:container-instance/tagged/0123456789abcdef0123456789abcdef"),
    ] {
        assert_sdk_error(
            ecs.tag_resource()
                .resource_arn(&missing)
                .tags(tag("a", "b"))
                .send()
                .await,
            "ResourceNotFoundException",
        );
        assert_sdk_error(
            ecs.untag_resource()
                .resource_arn(&missing)
                .tag_keys("a")
                .send()
                .await,
            "ResourceNotFoundException",
        );
        assert_sdk_error(
            ecs.list_tags_for_resource()
                .resource_arn(&missing)
                .send()
                .await,
            "ClientException",
        );
    }

    // The same resources seen from another region do not exist.
    let west = berth.ecs_client("eu-west-1");
    assert_sdk_error(
        west.tag_resource()
            .resource_arn(&arns[2])
            .tags(tag("a", "b"))
            .send()
            .await,
        "ResourceNotFoundException",
    );
    assert_sdk_error(
        west.list_tags_for_resource()
            .resource_arn(&arns[0])
            .send()
            .await,
        "ClusterNotFoundException",
    );

    // Deleted resources: tags are gone with them.
    ecs.deregister_container_instance()
        .cluster("tagged")
        .container_instance(&arns[3])
        .send()
        .await
        .unwrap();
    assert_sdk_error(
        ecs.tag_resource()
            .resource_arn(&arns[3])
            .tags(tag("a", "b"))
            .send()
            .await,
        "ResourceNotFoundException",
    );
    ecs.delete_cluster().cluster("tagged").send().await.unwrap();
    assert_sdk_error(
        ecs.tag_resource()
            .resource_arn(&arns[0])
            .tags(tag("a", "b"))
            .send()
            .await,
        "ClusterNotFoundException",
    );
    ecs.delete_capacity_provider()
        .capacity_provider("tagged")
        .send()
        .await
        .unwrap();
    assert_sdk_error(
        ecs.list_tags_for_resource()
            .resource_arn(&arns[2])
            .send()
            .await,
        "ClientException",
    );
}

#[test]
fn tags_through_the_cli() {
    let berth = BerthServer::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let arns = rt.block_on(make_resources(&berth.ecs_client(REGION)));
    for arn in &arns {
        let out = berth.aws_cli_json(
            REGION,
            &[
                "ecs",
                "tag-resource",
                "--resource-arn",
                arn,
                "--tags",
                "key=a,value=1",
                "key=b,value=2",
            ],
        );
        // TagResource has an empty output.
        assert!(out.is_null() || out == json!({}), "{out}");
        berth.aws_cli_json(
            REGION,
            &[
                "ecs",
                "untag-resource",
                "--resource-arn",
                arn,
                "--tag-keys",
                "a",
                "origin",
            ],
        );
        let l = berth.aws_cli_json(
            REGION,
            &["ecs", "list-tags-for-resource", "--resource-arn", arn],
        );
        assert_eq!(l["tags"], json!([{"key": "b", "value": "2"}]), "{arn}");
        berth.aws_cli_error(
            REGION,
            &[
                "ecs",
                "tag-resource",
                "--resource-arn",
                arn,
                "--tags",
                "key=aws:x,value=1",
            ],
            "InvalidParameterException",
        );
    }
    let many: Vec<String> = (0..51).map(|i| format!("key=k{i},value=v")).collect();
    let mut args = vec!["ecs", "tag-resource", "--resource-arn", &arns[0], "--tags"];
    args.extend(many.iter().map(String::as_str));
    berth.aws_cli_error(REGION, &args, "InvalidParameterException");
    berth.aws_cli_error(
        REGION,
        &[
            "ecs",
            "list-tags-for-resource",
            "--resource-arn",
            "not-an-arn",
        ],
        "InvalidParameterException",
    );
    berth.aws_cli_error(
        REGION,
        &[
            "ecs",
            "tag-resource",
            "--resource-arn",
            &format!("arn:aws:ecs:{REGION}:{ACCOUNT_ID}:capacity-provider/ghost"),
            "--tags",
            "key=a,value=1",
        ],
        "ResourceNotFoundException",
    );
    berth.aws_cli_error(
        REGION,
        &[
            "ecs",
            "list-tags-for-resource",
            "--resource-arn",
            &format!("arn:aws:ecs:{REGION}:{ACCOUNT_ID}:cluster/ghost"),
        ],
        "ClusterNotFoundException",
    );
}
