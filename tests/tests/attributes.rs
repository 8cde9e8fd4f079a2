//! Container instances and attributes end to end, through aws-sdk-ecs and the aws CLI:
//! RegisterContainerInstance as an agent sends it, DescribeContainerInstances,
//! ListContainerInstances, DeregisterContainerInstance; PutAttributes, ListAttributes
//! (filters, pagination), DeleteAttributes; TargetNotFoundException,
//! AttributeLimitExceededException; DeleteCluster refused while an instance is registered.

// A failed expectation panics, which is how a test fails; helpers unwrap for the same reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use aws_sdk_ecs::types::{
    Attribute, ClusterField, Compatibility, ContainerDefinition, ContainerInstanceField,
    ContainerInstanceStatus, Resource, TargetType, VersionInfo,
};
use berth_e2e::{ACCOUNT_ID, BerthServer, REGION, assert_sdk_error, sdk_error_code};
use serde_json::json;

fn cluster_arn(name: &str) -> String {
    format!("arn:aws:ecs:{REGION}:{ACCOUNT_ID}:cluster/{name}")
}

fn attr(name: &str, value: &str, target: &str) -> Attribute {
    Attribute::builder()
        .name(name)
        .value(value)
        .target_type(TargetType::ContainerInstance)
        .target_id(target)
        .build()
        .unwrap()
}

fn custom(name: &str, value: &str) -> Attribute {
    Attribute::builder()
        .name(name)
        .value(value)
        .build()
        .unwrap()
}

fn resources() -> Vec<Resource> {
    vec![
        Resource::builder()
            .name("CPU")
            .r#type("INTEGER")
            .integer_value(2048)
            .build(),
        Resource::builder()
            .name("MEMORY")
            .r#type("INTEGER")
            .integer_value(3928)
            .build(),
        Resource::builder()
            .name("PORTS")
            .r#type("STRINGSET")
            .string_set_value("22")
            .string_set_value("2375")
            .string_set_value("51678")
            .build(),
        Resource::builder()
            .name("PORTS_UDP")
            .r#type("STRINGSET")
            .build(),
    ]
}

fn version_info() -> VersionInfo {
    VersionInfo::builder()
        .agent_version("1.89.2")
        .agent_hash("a1b2c3d4")
        .docker_version("DockerVersion: 25.0.6")
        .build()
}

/// Registers an instance in `cluster` as the ECS agent would; returns its ARN.
async fn register(ecs: &aws_sdk_ecs::Client, cluster: &str, attrs: Vec<Attribute>) -> String {
    ecs.register_container_instance()
        .cluster(cluster)
        .set_total_resources(Some(resources()))
        .version_info(version_info())
        .set_attributes(Some(attrs))
        .send()
        .await
        .unwrap()
        .container_instance()
        .unwrap()
        .container_instance_arn()
        .unwrap()
        .to_owned()
}

/// DescribeClusters' registeredContainerInstancesCount of `cluster`.
async fn registered_count(ecs: &aws_sdk_ecs::Client, cluster: &str) -> i32 {
    let c = ecs
        .describe_clusters()
        .clusters(cluster)
        .send()
        .await
        .unwrap();
    c.clusters()[0].registered_container_instances_count()
}

#[tokio::test]
async fn register_describe_list_deregister() {
    let berth = BerthServer::start();
    let ecs = berth.ecs_client(REGION);
    ecs.create_cluster()
        .cluster_name("prod")
        .send()
        .await
        .unwrap();

    let identity = json!({
        "instanceId": "i-0123456789abcdef0",
        "instanceType": "m5.large",
        "imageId": "ami-0abcdef1234567890",
        "availabilityZone": "us-east-1c",
        "architecture": "x86_64",
        "region": REGION
    });
    let out = ecs
        .register_container_instance()
        .cluster("prod")
        .instance_identity_document(identity.to_string())
        .instance_identity_document_signature("c2lnbmF0dXJl")
        .set_total_resources(Some(resources()))
        .version_info(version_info())
        .attributes(custom("stack", "blue"))
        .attributes(custom(
            "ecs.capability.secrets.asm.environment-variables",
            "",
        ))
        .send()
        .await;
    // An attribute value must not be empty.
    assert_sdk_error(out, "InvalidParameterException");

    let out = ecs
        .register_container_instance()
        .cluster("prod")
        .instance_identity_document(identity.to_string())
        .set_total_resources(Some(resources()))
        .version_info(version_info())
        .attributes(custom("stack", "blue"))
        .attributes(
            Attribute::builder()
                .name("ecs.capability.execution-role-awslogs")
                .build()
                .unwrap(),
        )
        .tags(
            aws_sdk_ecs::types::Tag::builder()
                .key("k")
                .value("v")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let ci = out.container_instance().unwrap();
    let arn = ci.container_instance_arn().unwrap().to_owned();
    let prefix = format!("arn:aws:ecs:{REGION}:{ACCOUNT_ID}:container-instance/prod/");
    assert!(arn.starts_with(&prefix), "{arn}");
    let id = arn[prefix.len()..].to_owned();
    assert_eq!(id.len(), 32, "{id}");
    assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    assert_eq!(ci.ec2_instance_id(), Some("i-0123456789abcdef0"));
    assert_eq!(ci.status(), Some("ACTIVE"));
    assert!(!ci.agent_connected());
    assert_eq!(ci.running_tasks_count(), 0);
    assert_eq!(ci.pending_tasks_count(), 0);
    assert_eq!(ci.registered_resources(), resources().as_slice());
    assert_eq!(ci.remaining_resources(), resources().as_slice());
    assert_eq!(ci.version_info(), Some(&version_info()));
    assert!(ci.registered_at().is_some());
    let attr_value = |ci: &aws_sdk_ecs::types::ContainerInstance, name: &str| {
        ci.attributes()
            .iter()
            .find(|a| a.name() == name)
            .map(|a| a.value().map(str::to_owned))
    };
    assert_eq!(attr_value(ci, "stack"), Some(Some("blue".into())));
    assert_eq!(
        attr_value(ci, "ecs.capability.execution-role-awslogs"),
        Some(None)
    );
    assert_eq!(attr_value(ci, "ecs.os-type"), Some(Some("linux".into())));
    assert_eq!(
        attr_value(ci, "ecs.instance-type"),
        Some(Some("m5.large".into()))
    );
    assert_eq!(
        attr_value(ci, "ecs.availability-zone"),
        Some(Some("us-east-1c".into()))
    );
    assert_eq!(
        attr_value(ci, "ecs.ami-id"),
        Some(Some("ami-0abcdef1234567890".into()))
    );
    assert_eq!(
        attr_value(ci, "ecs.cpu-architecture"),
        Some(Some("x86_64".into()))
    );
    assert_eq!(ci.tags().len(), 1);

    // A second instance, without identity document.
    let second = register(&ecs, "prod", vec![custom("stack", "green")]).await;

    // The cluster counts them.
    assert_eq!(registered_count(&ecs, "prod").await, 2);

    // A RunTask loads the cluster into the placement index (no agent is connected, so it
    // places nothing): from here on DescribeClusters and DeleteCluster count from the index.
    ecs.register_task_definition()
        .family("counted")
        .requires_compatibilities(Compatibility::Ec2)
        .container_definitions(
            ContainerDefinition::builder()
                .name("app")
                .image("busybox")
                .memory(64)
                .build(),
        )
        .send()
        .await
        .unwrap();
    let run = ecs
        .run_task()
        .cluster("prod")
        .task_definition("counted")
        .send()
        .await
        .unwrap();
    assert!(run.tasks().is_empty(), "{run:?}");
    assert_eq!(registered_count(&ecs, "prod").await, 2);

    // Describe: by ARN and by id; MISSING failures; tags only when included.
    let d = ecs
        .describe_container_instances()
        .cluster("prod")
        .container_instances(&arn)
        .container_instances(second.rsplit('/').next().unwrap())
        .container_instances("0123456789abcdef0123456789abcdef")
        .send()
        .await
        .unwrap();
    assert_eq!(d.container_instances().len(), 2);
    assert_eq!(
        d.container_instances()[0].container_instance_arn(),
        Some(arn.as_str())
    );
    assert_eq!(
        d.container_instances()[1].container_instance_arn(),
        Some(second.as_str())
    );
    assert!(d.container_instances()[0].tags().is_empty());
    assert_eq!(d.failures().len(), 1);
    assert_eq!(d.failures()[0].reason(), Some("MISSING"));
    assert_eq!(
        d.failures()[0].arn(),
        Some(format!("{prefix}0123456789abcdef0123456789abcdef").as_str())
    );
    let d = ecs
        .describe_container_instances()
        .cluster(cluster_arn("prod"))
        .container_instances(&arn)
        .include(ContainerInstanceField::Tags)
        .include(ContainerInstanceField::ContainerInstanceHealth)
        .send()
        .await
        .unwrap();
    assert_eq!(d.container_instances()[0].tags()[0].key(), Some("k"));
    assert!(d.container_instances()[0].health_status().is_some());
    assert_sdk_error(
        ecs.describe_container_instances()
            .cluster("nope")
            .container_instances(&arn)
            .send()
            .await,
        "ClusterNotFoundException",
    );
    assert_sdk_error(
        ecs.describe_container_instances()
            .cluster("prod")
            .set_container_instances(Some(vec![]))
            .send()
            .await,
        "InvalidParameterException",
    );

    // Re-registration with the ARN keeps the id and custom attributes.
    let again = ecs
        .register_container_instance()
        .cluster("prod")
        .container_instance_arn(&second)
        .set_total_resources(Some(resources()))
        .version_info(version_info())
        .send()
        .await
        .unwrap();
    let again = again.container_instance().unwrap();
    assert_eq!(again.container_instance_arn(), Some(second.as_str()));
    assert_eq!(attr_value(again, "stack"), Some(Some("green".into())));

    // List: both, then pages of one.
    let mut want = vec![arn.clone(), second.clone()];
    want.sort();
    let l = ecs
        .list_container_instances()
        .cluster("prod")
        .send()
        .await
        .unwrap();
    assert_eq!(l.container_instance_arns(), want.as_slice());
    let paged: Vec<String> = ecs
        .list_container_instances()
        .cluster("prod")
        .max_results(1)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(paged, want);
    let first = ecs
        .list_container_instances()
        .cluster("prod")
        .max_results(1)
        .send()
        .await
        .unwrap();
    assert_eq!(first.container_instance_arns(), &want[..1]);
    let rest = ecs
        .list_container_instances()
        .cluster("prod")
        .max_results(1)
        .next_token(first.next_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(rest.container_instance_arns(), &want[1..]);
    assert!(rest.next_token().is_none());
    let active = ecs
        .list_container_instances()
        .cluster("prod")
        .status(ContainerInstanceStatus::Active)
        .send()
        .await
        .unwrap();
    assert_eq!(active.container_instance_arns().len(), 2);
    let draining = ecs
        .list_container_instances()
        .cluster("prod")
        .status(ContainerInstanceStatus::Draining)
        .send()
        .await
        .unwrap();
    assert!(draining.container_instance_arns().is_empty());
    assert_sdk_error(
        ecs.list_container_instances().cluster("nope").send().await,
        "ClusterNotFoundException",
    );
    assert_sdk_error(
        ecs.list_container_instances()
            .cluster("prod")
            .max_results(101)
            .send()
            .await,
        "InvalidParameterException",
    );

    // DeleteCluster is refused while instances are registered.
    assert_sdk_error(
        ecs.delete_cluster().cluster("prod").send().await,
        "ClusterContainsContainerInstancesException",
    );

    // Deregister both: INACTIVE, off the list, still described.
    let gone = ecs
        .deregister_container_instance()
        .cluster("prod")
        .container_instance(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(
        gone.container_instance().unwrap().status(),
        Some("INACTIVE")
    );
    assert_sdk_error(
        ecs.delete_cluster().cluster("prod").send().await,
        "ClusterContainsContainerInstancesException",
    );
    ecs.deregister_container_instance()
        .cluster("prod")
        .container_instance(second.rsplit('/').next().unwrap())
        .force(true)
        .send()
        .await
        .unwrap();
    let l = ecs
        .list_container_instances()
        .cluster("prod")
        .send()
        .await
        .unwrap();
    assert!(l.container_instance_arns().is_empty(), "{l:?}");
    let d = ecs
        .describe_container_instances()
        .cluster("prod")
        .container_instances(&arn)
        .send()
        .await
        .unwrap();
    assert_eq!(d.container_instances()[0].status(), Some("INACTIVE"));
    let c = ecs
        .describe_clusters()
        .clusters("prod")
        .include(ClusterField::Statistics)
        .send()
        .await
        .unwrap();
    assert_eq!(c.clusters()[0].registered_container_instances_count(), 0);
    // Deregistering again, or an unknown instance, is refused.
    assert_sdk_error(
        ecs.deregister_container_instance()
            .cluster("prod")
            .container_instance(&arn)
            .send()
            .await,
        "InvalidParameterException",
    );
    assert_sdk_error(
        ecs.deregister_container_instance()
            .cluster("prod")
            .container_instance("0123456789abcdef0123456789abcdef")
            .send()
            .await,
        "InvalidParameterException",
    );
    // An inactive instance cannot re-register.
    assert_sdk_error(
        ecs.register_container_instance()
            .cluster("prod")
            .container_instance_arn(&arn)
            .send()
            .await,
        "ClientException",
    );
    // Now the cluster can go.
    let deleted = ecs.delete_cluster().cluster("prod").send().await.unwrap();
    assert_eq!(deleted.cluster().unwrap().status(), Some("INACTIVE"));
    // Registering into a missing cluster.
    assert_sdk_error(
        ecs.register_container_instance()
            .cluster("prod")
            .send()
            .await,
        "ClusterNotFoundException",
    );
}

#[tokio::test]
async fn register_into_the_default_cluster() {
    let berth = BerthServer::start();
    let ecs = berth.ecs_client(REGION);
    ecs.create_cluster()
        .cluster_name("default")
        .send()
        .await
        .unwrap();
    let out = ecs
        .register_container_instance()
        .set_total_resources(Some(resources()))
        .send()
        .await
        .unwrap();
    let arn = out
        .container_instance()
        .unwrap()
        .container_instance_arn()
        .unwrap();
    assert!(arn.contains(":container-instance/default/"), "{arn}");
    let l = ecs.list_container_instances().send().await.unwrap();
    assert_eq!(l.container_instance_arns(), [arn.to_owned()]);
    // Negative resources are refused.
    assert_sdk_error(
        ecs.register_container_instance()
            .total_resources(
                Resource::builder()
                    .name("CPU")
                    .r#type("INTEGER")
                    .integer_value(-1)
                    .build(),
            )
            .send()
            .await,
        "InvalidParameterException",
    );
}

#[tokio::test]
async fn put_list_delete_attributes() {
    let berth = BerthServer::start();
    let ecs = berth.ecs_client(REGION);
    ecs.create_cluster()
        .cluster_name("web")
        .send()
        .await
        .unwrap();
    let a = register(&ecs, "web", vec![]).await;
    let b = register(&ecs, "web", vec![custom("zone", "z1")]).await;
    let a_id = a.rsplit('/').next().unwrap().to_owned();

    // Put on both, by ARN and by id; the reply echoes the request.
    let put = ecs
        .put_attributes()
        .cluster("web")
        .attributes(attr("stack", "prod", &a))
        .attributes(attr("tier", "front", &a))
        .attributes(
            Attribute::builder()
                .name("flag")
                .target_id(&a_id)
                .build()
                .unwrap(),
        )
        .attributes(attr("stack", "dev", &b))
        .send()
        .await
        .unwrap();
    assert_eq!(put.attributes().len(), 4);
    assert_eq!(put.attributes()[0].name(), "stack");

    let list = |name: Option<&str>, value: Option<&str>| {
        let mut r = ecs
            .list_attributes()
            .cluster("web")
            .target_type(TargetType::ContainerInstance);
        if let Some(n) = name {
            r = r.attribute_name(n);
        }
        if let Some(v) = value {
            r = r.attribute_value(v);
        }
        r
    };
    let summary = |attrs: &[Attribute]| -> Vec<(String, String, String)> {
        let mut v: Vec<_> = attrs
            .iter()
            .map(|a| {
                (
                    a.name().to_owned(),
                    a.value().unwrap_or_default().to_owned(),
                    a.target_id().unwrap_or_default().to_owned(),
                )
            })
            .collect();
        v.sort();
        v
    };
    let row = |n: &str, v: &str, t: &str| (n.to_owned(), v.to_owned(), t.to_owned());

    // By name.
    let stack = list(Some("stack"), None).send().await.unwrap();
    assert_eq!(
        summary(stack.attributes()),
        [row("stack", "dev", &b), row("stack", "prod", &a)]
    );
    assert!(
        stack
            .attributes()
            .iter()
            .all(|x| x.target_type() == Some(&TargetType::ContainerInstance))
    );
    // By name and value.
    let prod = list(Some("stack"), Some("prod")).send().await.unwrap();
    assert_eq!(summary(prod.attributes()), [row("stack", "prod", &a)]);
    let none = list(Some("stack"), Some("qa")).send().await.unwrap();
    assert!(none.attributes().is_empty());
    let flag = list(Some("flag"), None).send().await.unwrap();
    assert_eq!(summary(flag.attributes()), [row("flag", "", &a)]);
    assert_eq!(flag.attributes()[0].value(), None);
    // A value filter needs a name.
    assert_sdk_error(
        list(None, Some("prod")).send().await,
        "InvalidParameterException",
    );

    // Everything (ECS's own attributes too), in pages.
    let all = list(None, None).send().await.unwrap();
    let total = all.attributes().len();
    assert!(
        total >= 5 + 6,
        "custom plus ecs.* attributes: {:?}",
        all.attributes()
    );
    assert!(
        all.attributes()
            .iter()
            .any(|x| x.name() == "ecs.os-type" && x.value() == Some("linux"))
    );
    let mut paged = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = list(None, None)
            .max_results(4)
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap();
        assert!(page.attributes().len() <= 4);
        paged.extend(page.attributes().iter().cloned());
        pages += 1;
        token = page.next_token().map(String::from);
        if token.is_none() {
            break;
        }
    }
    assert_eq!(paged, all.attributes());
    assert_eq!(pages, total.div_ceil(4));
    let via_paginator: Vec<Attribute> = list(Some("stack"), None)
        .max_results(1)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<Vec<_>, _>>()
        .await
        .unwrap();
    assert_eq!(summary(&via_paginator), summary(stack.attributes()));
    assert_sdk_error(
        list(None, None).next_token("zz!").send().await,
        "InvalidParameterException",
    );

    // Overwrite a value; the instance shows it.
    ecs.put_attributes()
        .cluster("web")
        .attributes(attr("stack", "staging", &a))
        .send()
        .await
        .unwrap();
    let d = ecs
        .describe_container_instances()
        .cluster("web")
        .container_instances(&a)
        .send()
        .await
        .unwrap();
    let shown: Vec<_> = d.container_instances()[0]
        .attributes()
        .iter()
        .filter(|x| x.name() == "stack")
        .map(|x| x.value().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(shown, ["staging"]);

    // Delete: by name (the value does not matter).
    let del = ecs
        .delete_attributes()
        .cluster("web")
        .attributes(
            Attribute::builder()
                .name("stack")
                .target_id(&a)
                .build()
                .unwrap(),
        )
        .attributes(attr("tier", "whatever", &a))
        .send()
        .await
        .unwrap();
    assert_eq!(del.attributes().len(), 2);
    let stack = list(Some("stack"), None).send().await.unwrap();
    assert_eq!(summary(stack.attributes()), [row("stack", "dev", &b)]);
    assert!(
        list(Some("tier"), None)
            .send()
            .await
            .unwrap()
            .attributes()
            .is_empty()
    );

    // Unknown targets: TargetNotFoundException; unknown clusters: ClusterNotFoundException.
    for missing in [
        "0123456789abcdef0123456789abcdef".to_owned(),
        format!(
            "arn:aws:ecs:{REGION}:{ACCOUNT_ID}:container-instance/web/0123456789abcdef0123456789abcdef"
        ),
        format!("arn:aws:ecs:{REGION}:{ACCOUNT_ID}:container-instance/other/{a_id}"),
    ] {
        assert_sdk_error(
            ecs.put_attributes()
                .cluster("web")
                .attributes(attr("x", "y", &missing))
                .send()
                .await,
            "TargetNotFoundException",
        );
        assert_sdk_error(
            ecs.delete_attributes()
                .cluster("web")
                .attributes(attr("x", "y", &missing))
                .send()
                .await,
            "TargetNotFoundException",
        );
    }
    // A refused call changes nothing, even for the targets that exist.
    assert_sdk_error(
        ecs.put_attributes()
            .cluster("web")
            .attributes(attr("partial", "1", &a))
            .attributes(attr("partial", "1", "0123456789abcdef0123456789abcdef"))
            .send()
            .await,
        "TargetNotFoundException",
    );
    assert!(
        list(Some("partial"), None)
            .send()
            .await
            .unwrap()
            .attributes()
            .is_empty()
    );
    assert_sdk_error(
        ecs.put_attributes()
            .cluster("nope")
            .attributes(attr("x", "y", &a))
            .send()
            .await,
        "ClusterNotFoundException",
    );
    assert_sdk_error(
        ecs.list_attributes()
            .cluster("nope")
            .target_type(TargetType::ContainerInstance)
            .send()
            .await,
        "ClusterNotFoundException",
    );
    // Bad names and values; no target.
    for bad in [
        attr("has space", "v", &a),
        attr(&"n".repeat(129), "v", &a),
        attr("ok", "bad*value", &a),
        attr("ok", " leading", &a),
        Attribute::builder().name("ok").value("v").build().unwrap(),
    ] {
        assert_sdk_error(
            ecs.put_attributes()
                .cluster("web")
                .attributes(bad)
                .send()
                .await,
            "InvalidParameterException",
        );
    }
    // A deregistered instance is no target.
    ecs.deregister_container_instance()
        .cluster("web")
        .container_instance(&b)
        .send()
        .await
        .unwrap();
    assert_sdk_error(
        ecs.put_attributes()
            .cluster("web")
            .attributes(attr("x", "y", &b))
            .send()
            .await,
        "TargetNotFoundException",
    );
    let stack = list(Some("stack"), None).send().await.unwrap();
    assert!(stack.attributes().is_empty(), "{stack:?}");
}

#[tokio::test]
async fn attribute_limit() {
    let berth = BerthServer::start();
    let ecs = berth.ecs_client(REGION);
    ecs.create_cluster()
        .cluster_name("lim")
        .send()
        .await
        .unwrap();
    // At registration: 11 custom attributes are too many; 10 fit (ECS's own don't count).
    let eleven: Vec<Attribute> = (0..11).map(|i| custom(&format!("a{i}"), "v")).collect();
    assert_sdk_error(
        ecs.register_container_instance()
            .cluster("lim")
            .set_attributes(Some(eleven))
            .send()
            .await,
        "AttributeLimitExceededException",
    );
    let ten: Vec<Attribute> = (0..10).map(|i| custom(&format!("a{i}"), "v")).collect();
    let ci = register(&ecs, "lim", ten).await;
    // An eleventh through PutAttributes is refused; replacing one is fine.
    let msg = assert_sdk_error(
        ecs.put_attributes()
            .cluster("lim")
            .attributes(attr("a10", "v", &ci))
            .send()
            .await,
        "AttributeLimitExceededException",
    );
    assert!(msg.contains("10"), "{msg}");
    ecs.put_attributes()
        .cluster("lim")
        .attributes(attr("a0", "changed", &ci))
        .send()
        .await
        .unwrap();
    // ecs.* attributes are not custom and do not count.
    ecs.put_attributes()
        .cluster("lim")
        .attributes(attr("ecs.capability.extra", "1", &ci))
        .send()
        .await
        .unwrap();
    // After deleting one, there is room again.
    ecs.delete_attributes()
        .cluster("lim")
        .attributes(attr("a9", "v", &ci))
        .send()
        .await
        .unwrap();
    ecs.put_attributes()
        .cluster("lim")
        .attributes(attr("a10", "v", &ci))
        .send()
        .await
        .unwrap();
    // More than 10 attributes in one call are refused either way.
    let mut req = ecs.put_attributes().cluster("lim");
    for i in 0..11 {
        req = req.attributes(attr(&format!("b{i}"), "v", &ci));
    }
    let err = req.send().await.expect_err("11 attributes in one call");
    let code = sdk_error_code(&err);
    assert!(
        matches!(
            code.as_deref(),
            Some("InvalidParameterException" | "AttributeLimitExceededException")
        ),
        "{code:?}"
    );
}

#[test]
fn container_instances_and_attributes_through_the_cli() {
    let berth = BerthServer::start();
    berth.aws_cli_json(REGION, &["ecs", "create-cluster", "--cluster-name", "cli"]);
    let out = berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "register-container-instance",
            "--cluster",
            "cli",
            "--total-resources",
            r#"[{"name":"CPU","type":"INTEGER","integerValue":1024},{"name":"MEMORY","type":"INTEGER","integerValue":2048},{"name":"PORTS","type":"STRINGSET","stringSetValue":["22"]}]"#,
            "--version-info",
            "agentVersion=1.89.2,agentHash=abc,dockerVersion=25.0.6",
            "--attributes",
            "name=stack,value=prod",
        ],
    );
    let ci = &out["containerInstance"];
    let arn = ci["containerInstanceArn"].as_str().unwrap().to_owned();
    assert_eq!(ci["status"], "ACTIVE");
    assert_eq!(ci["agentConnected"], false);
    assert_eq!(ci["versionInfo"]["agentVersion"], "1.89.2");
    assert_eq!(
        ci["registeredResources"][0],
        json!({"name": "CPU", "type": "INTEGER", "integerValue": 1024})
    );
    assert_eq!(
        ci["registeredResources"][2]["stringSetValue"],
        json!(["22"])
    );

    let l = berth.aws_cli_json(
        REGION,
        &["ecs", "list-container-instances", "--cluster", "cli"],
    );
    assert_eq!(l["containerInstanceArns"], json!([arn]));
    let d = berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "describe-container-instances",
            "--cluster",
            "cli",
            "--container-instances",
            &arn,
            "missing1",
        ],
    );
    assert_eq!(d["containerInstances"][0]["containerInstanceArn"], arn);
    assert_eq!(d["failures"][0]["reason"], "MISSING");

    let p = berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "put-attributes",
            "--cluster",
            "cli",
            "--attributes",
            &format!("name=tier,value=back,targetType=container-instance,targetId={arn}"),
        ],
    );
    assert_eq!(p["attributes"][0]["name"], "tier");
    let la = berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "list-attributes",
            "--cluster",
            "cli",
            "--target-type",
            "container-instance",
            "--attribute-name",
            "tier",
        ],
    );
    assert_eq!(
        la["attributes"],
        json!([{"name": "tier", "value": "back", "targetType": "container-instance",
                "targetId": arn}])
    );
    // Auto-pagination over every attribute.
    let all = berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "list-attributes",
            "--cluster",
            "cli",
            "--target-type",
            "container-instance",
            "--page-size",
            "1",
        ],
    );
    let names: Vec<&str> = all["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"tier") && names.contains(&"stack"),
        "{names:?}"
    );
    berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "delete-attributes",
            "--cluster",
            "cli",
            "--attributes",
            &format!("name=tier,targetId={arn}"),
        ],
    );
    berth.aws_cli_error(
        REGION,
        &[
            "ecs",
            "put-attributes",
            "--cluster",
            "cli",
            "--attributes",
            "name=tier,value=x,targetId=0123456789abcdef0123456789abcdef",
        ],
        "TargetNotFoundException",
    );
    berth.aws_cli_error(
        REGION,
        &["ecs", "delete-cluster", "--cluster", "cli"],
        "ClusterContainsContainerInstancesException",
    );
    let dr = berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "deregister-container-instance",
            "--cluster",
            "cli",
            "--container-instance",
            &arn,
        ],
    );
    assert_eq!(dr["containerInstance"]["status"], "INACTIVE");
    let del = berth.aws_cli_json(REGION, &["ecs", "delete-cluster", "--cluster", "cli"]);
    assert_eq!(del["cluster"]["status"], "INACTIVE");
}
