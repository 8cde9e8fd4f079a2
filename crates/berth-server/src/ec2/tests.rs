//! Handler tests of the EC2 service over an in-memory store, and of awsvpc tasks' ENIs.

use std::sync::Arc;

use berth_wire::RequestContext;
use berth_wire::ec2::{Api, shapes as s};
use berth_wire::ecs::Api as _;
use berth_wire::ecs::shapes as ecs;
use serde_json::json;

use super::Ec2;
use crate::ecs::Ecs;
use crate::ecs::tasks::{self, MANAGED_HOST};

fn setup() -> (Ec2, Ecs, RequestContext) {
    let store = Arc::new(berth_store::Store::open_in_memory().unwrap());
    let ecs = Ecs::new(store.clone());
    let ec2 = Ec2::new(store, ecs.notifier.clone());
    (ec2, ecs, crate::test_support::context(1_700_000_000_000))
}

fn from<T: serde::de::DeserializeOwned>(v: serde_json::Value) -> T {
    serde_json::from_value(v).unwrap()
}

fn filter(name: &str, values: &[&str]) -> serde_json::Value {
    json!({"Name": name, "Values": values})
}

#[test]
fn default_vpc_subnets_and_group_exist_on_first_use() {
    let (ec2, _, c) = setup();
    let vpcs = ec2
        .describe_vpcs(
            &c,
            from(json!({"Filters": [filter("is-default", &["true"])]})),
        )
        .unwrap()
        .vpcs
        .unwrap();
    assert_eq!(vpcs.len(), 1);
    let vpc = &vpcs[0];
    assert_eq!(vpc.cidr_block.as_deref(), Some("172.31.0.0/16"));
    assert_eq!(vpc.owner_id.as_deref(), Some("123456789012"));
    let id = vpc.vpc_id.clone().unwrap();
    assert!(id.starts_with("vpc-") && id.len() == 21, "{id}");
    let subnets = ec2
        .describe_subnets(
            &c,
            from(
                json!({"Filters": [filter("vpc-id", &[&id]), filter("default-for-az", &["true"])]}),
            ),
        )
        .unwrap()
        .subnets
        .unwrap();
    assert_eq!(subnets.len(), 3);
    assert!(
        subnets
            .iter()
            .all(|s| s.available_ip_address_count == Some(4091))
    );
    let groups = ec2
        .describe_security_groups(
            &c,
            from(
                json!({"Filters": [filter("group-name", &["default"]), filter("vpc-id", &[&id])]}),
            ),
        )
        .unwrap()
        .security_groups
        .unwrap();
    assert_eq!(groups.len(), 1);
    let g = &groups[0];
    let ingress = g.ip_permissions.as_ref().unwrap();
    assert_eq!(ingress.len(), 1);
    assert_eq!(
        ingress[0].user_id_group_pairs.as_ref().unwrap()[0].group_id,
        g.group_id
    );
    let egress = g.ip_permissions_egress.as_ref().unwrap();
    assert_eq!(egress[0].ip_protocol.as_deref(), Some("-1"));
    assert_eq!(
        egress[0].ip_ranges.as_ref().unwrap()[0].cidr_ip.as_deref(),
        Some("0.0.0.0/0")
    );
    // Terraform's reads: the main route table and default ACL of the VPC.
    let rtb = ec2
        .describe_route_tables(
            &c,
            from(json!({"Filters": [filter("vpc-id", &[&id]), filter("association.main", &["true"])]})),
        )
        .unwrap();
    assert_eq!(rtb.route_tables.unwrap().len(), 1);
    let acl = ec2
        .describe_network_acls(
            &c,
            from(json!({"Filters": [filter("vpc-id", &[&id]), filter("default", &["true"])]})),
        )
        .unwrap()
        .network_acls
        .unwrap();
    assert_eq!(acl[0].associations.as_ref().unwrap().len(), 3);
}

#[test]
fn vpcs_subnets_and_their_errors() {
    let (ec2, _, c) = setup();
    let vpc = ec2
        .create_vpc(
            &c,
            from(json!({"CidrBlock": "10.1.0.18/16", "TagSpecifications": [
                {"ResourceType": "vpc", "Tags": [{"Key": "Name", "Value": "main"}]}]})),
        )
        .unwrap()
        .vpc
        .unwrap();
    assert_eq!(vpc.cidr_block.as_deref(), Some("10.1.0.0/16"));
    let id = vpc.vpc_id.unwrap();
    let e = ec2
        .create_vpc(&c, from(json!({"CidrBlock": "10.0.0.0/8"})))
        .unwrap_err();
    assert_eq!(e.code, "InvalidVpc.Range");
    let e = ec2
        .create_vpc(&c, from(json!({"CidrBlock": "banana"})))
        .unwrap_err();
    assert_eq!(e.code, "InvalidParameterValue");
    let by_tag = ec2
        .describe_vpcs(&c, from(json!({"Filters": [filter("tag:Name", &["ma*"])]})))
        .unwrap()
        .vpcs
        .unwrap();
    assert_eq!(by_tag.len(), 1);
    let sn = ec2
        .create_subnet(
            &c,
            from(
                json!({"VpcId": id, "CidrBlock": "10.1.1.0/24", "AvailabilityZone": "us-east-1b"}),
            ),
        )
        .unwrap()
        .subnet
        .unwrap();
    assert_eq!(sn.available_ip_address_count, Some(251));
    let conflict = ec2
        .create_subnet(&c, from(json!({"VpcId": id, "CidrBlock": "10.1.1.128/25"})))
        .unwrap_err();
    assert_eq!(conflict.code, "InvalidSubnet.Conflict");
    assert_eq!(
        conflict.message,
        "The CIDR '10.1.1.128/25' conflicts with another subnet"
    );
    let outside = ec2
        .create_subnet(&c, from(json!({"VpcId": id, "CidrBlock": "10.2.0.0/24"})))
        .unwrap_err();
    assert_eq!(outside.code, "InvalidSubnet.Range");
    let e = ec2.delete_vpc(&c, from(json!({"VpcId": id}))).unwrap_err();
    assert_eq!(e.code, "DependencyViolation");
    assert_eq!(
        e.message,
        format!("The vpc '{id}' has dependencies and cannot be deleted.")
    );
    ec2.delete_subnet(&c, from(json!({"SubnetId": sn.subnet_id})))
        .unwrap();
    ec2.delete_vpc(&c, from(json!({"VpcId": id}))).unwrap();
    let e = ec2
        .describe_vpcs(&c, from(json!({"VpcIds": [id]})))
        .unwrap_err();
    assert_eq!(e.code, "InvalidVpcID.NotFound");
    assert_eq!(e.message, format!("The vpc ID '{id}' does not exist"));
    let e = ec2
        .describe_vpcs(&c, from(json!({"Filters": [filter("colour", &["x"])]})))
        .unwrap_err();
    assert_eq!(e.message, "The filter 'colour' is invalid");
}

#[test]
fn groups_rules_duplicates_and_tags() {
    let (ec2, _, c) = setup();
    let g = ec2
        .create_security_group(
            &c,
            from(json!({"GroupName": "web", "Description": "web servers"})),
        )
        .unwrap()
        .group_id
        .unwrap();
    let e = ec2
        .create_security_group(&c, from(json!({"GroupName": "web", "Description": "x"})))
        .unwrap_err();
    assert_eq!(e.code, "InvalidGroup.Duplicate");
    let rule = json!({"GroupId": g, "IpPermissions": [{"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80,
        "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]});
    let added = ec2
        .authorize_security_group_ingress(&c, from(rule.clone()))
        .unwrap();
    let rule_id = added.security_group_rules.unwrap()[0]
        .security_group_rule_id
        .clone()
        .unwrap();
    assert!(rule_id.starts_with("sgr-"));
    let e = ec2
        .authorize_security_group_ingress(&c, from(rule.clone()))
        .unwrap_err();
    assert_eq!(e.code, "InvalidPermission.Duplicate");
    ec2.create_tags(
        &c,
        from(json!({"Resources": [g, rule_id], "Tags": [{"Key": "team", "Value": "a"}]})),
    )
    .unwrap();
    let tags = ec2
        .describe_tags(&c, from(json!({"Filters": [filter("key", &["team"])]})))
        .unwrap()
        .tags
        .unwrap();
    assert_eq!(tags.len(), 2);
    let rules = ec2
        .describe_security_group_rules(&c, from(json!({"Filters": [filter("group-id", &[&g])]})))
        .unwrap()
        .security_group_rules
        .unwrap();
    assert_eq!(rules.len(), 2, "the new rule and the default egress");
    ec2.revoke_security_group_ingress(&c, from(rule.clone()))
        .unwrap();
    let e = ec2
        .revoke_security_group_ingress(&c, from(rule))
        .unwrap_err();
    assert_eq!(e.code, "InvalidPermission.NotFound");
    let default = ec2
        .describe_security_groups(&c, from(json!({"GroupNames": ["default"]})))
        .unwrap()
        .security_groups
        .unwrap()[0]
        .group_id
        .clone();
    let e = ec2
        .delete_security_group(&c, from(json!({"GroupId": default})))
        .unwrap_err();
    assert_eq!(e.code, "CannotDelete");
    ec2.delete_security_group(&c, from(json!({"GroupName": "web"})))
        .unwrap();
    let e = ec2
        .describe_security_groups(&c, from(json!({"GroupIds": [g]})))
        .unwrap_err();
    assert_eq!(e.code, "InvalidGroup.NotFound");
}

/// An awsvpc Fargate task gets an ENI whose address, MAC and DNS name show in DescribeTasks
/// and DescribeNetworkInterfaces; its assignment carries its groups' rules with group peers
/// resolved; a rule change re-sends it; the ENI goes when the task stops.
#[test]
fn awsvpc_tasks_get_enis_and_rules() {
    let (ec2, ecs_, c) = setup();
    ecs_.create_cluster(&c, from(json!({"clusterName": "c"})))
        .unwrap();
    ecs_.register_task_definition(
        &c,
        from(json!({"family": "web", "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"],
            "cpu": "256", "memory": "512", "containerDefinitions": [{"name": "app", "image": "busybox"}]})),
    )
    .unwrap();
    let subnet = crate::test_support::default_subnet(&ec2.store, &c);
    let web = ec2
        .create_security_group(&c, from(json!({"GroupName": "web", "Description": "web"})))
        .unwrap()
        .group_id
        .unwrap();
    let client = ec2
        .create_security_group(&c, from(json!({"GroupName": "client", "Description": "c"})))
        .unwrap()
        .group_id
        .unwrap();
    // web admits port 80 from members of client.
    ec2.authorize_security_group_ingress(
        &c,
        from(json!({"GroupId": web, "IpPermissions": [{"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80,
            "UserIdGroupPairs": [{"GroupId": client}]}]})),
    )
    .unwrap();
    let run = |groups: &[&str]| -> ecs::Task {
        ecs_.run_task(
            &c,
            from(json!({"cluster": "c", "taskDefinition": "web", "launchType": "FARGATE",
                "networkConfiguration": {"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": groups}}})),
        )
        .unwrap()
        .tasks
        .unwrap()
        .remove(0)
    };
    let server = run(&[&web]);
    let att = &server.attachments.as_ref().unwrap()[0];
    assert_eq!(att.status.as_deref(), Some("PRECREATED"));
    let detail = |t: &ecs::Task, n: &str| -> String {
        t.attachments.as_ref().unwrap()[0]
            .details
            .as_ref()
            .unwrap()
            .iter()
            .find(|d| d.name.as_deref() == Some(n))
            .and_then(|d| d.value.clone())
            .unwrap()
    };
    assert_eq!(detail(&server, "subnetId"), subnet);
    assert_eq!(detail(&server, "privateIPv4Address"), "172.31.0.4");
    assert_eq!(
        detail(&server, "privateDnsName"),
        "ip-172-31-0-4.ec2.internal"
    );
    assert!(detail(&server, "macAddress").starts_with("0e:"));
    let eni = detail(&server, "networkInterfaceId");
    let c0 = &server.containers.as_ref().unwrap()[0];
    assert_eq!(
        c0.network_interfaces.as_ref().unwrap()[0]
            .private_ipv4_address
            .as_deref(),
        Some("172.31.0.4")
    );
    assert_eq!(server.availability_zone.as_deref(), Some("us-east-1a"));
    let enis = ec2
        .describe_network_interfaces(&c, from(json!({"NetworkInterfaceIds": [eni]})))
        .unwrap()
        .network_interfaces
        .unwrap();
    assert_eq!(enis[0].status, Some(s::NetworkInterfaceStatus::InUse));
    assert_eq!(
        enis[0].groups.as_ref().unwrap()[0].group_id.as_deref(),
        Some(web.as_str())
    );
    let (seq0, assigned) = ecs_
        .store
        .read(|tx| tasks::assignments(tx, MANAGED_HOST))
        .unwrap();
    let net = assigned[0].network.clone().unwrap();
    assert_eq!(net.interface.private_ipv4_address, "172.31.0.4");
    assert_eq!(net.interface.gateway_ipv4_address, "172.31.0.1");
    assert_eq!(net.interface.subnet_cidr, "172.31.0.0/20");
    assert_eq!(
        net.security_groups[0].ingress[0].cidrs,
        Vec::<String>::new(),
        "client has no members yet"
    );

    // A client task joins `client`: the server's rules now name its address.
    let client_task = run(&[&client]);
    assert_eq!(detail(&client_task, "privateIPv4Address"), "172.31.0.5");
    let (seq1, assigned) = ecs_
        .store
        .read(|tx| tasks::assignments(tx, MANAGED_HOST))
        .unwrap();
    assert!(seq1 > seq0);
    let server_net = assigned
        .iter()
        .find(|a| Some(&a.task_arn) == server.task_arn.as_ref())
        .and_then(|a| a.network.clone())
        .unwrap();
    assert_eq!(
        server_net.security_groups[0].ingress[0].cidrs,
        ["172.31.0.5/32"]
    );
    assert_eq!(server_net.security_groups[0].ingress[0].from_port, Some(80));

    // Revoking the rule re-sends the assignment (the host's sequence moves).
    ec2.revoke_security_group_ingress(
        &c,
        from(json!({"GroupId": web, "IpPermissions": [{"IpProtocol": "tcp", "FromPort": 80, "ToPort": 80,
            "UserIdGroupPairs": [{"GroupId": client}]}]})),
    )
    .unwrap();
    let (seq2, assigned) = ecs_
        .store
        .read(|tx| tasks::assignments(tx, MANAGED_HOST))
        .unwrap();
    assert!(seq2 > seq1);
    let server_net = assigned
        .iter()
        .find(|a| Some(&a.task_arn) == server.task_arn.as_ref())
        .and_then(|a| a.network.clone())
        .unwrap();
    assert!(server_net.security_groups[0].ingress.is_empty());
    // An agent polling for changes only gets the server task again (its rules changed).
    let (_, changed) = ecs_
        .store
        .read(|tx| tasks::assignments_since(tx, &Default::default(), MANAGED_HOST, Some(seq1)))
        .unwrap();
    assert!(
        changed
            .iter()
            .any(|a| Some(&a.task_arn) == server.task_arn.as_ref()),
        "{changed:?}"
    );

    // A group in use cannot go; a subnet with interfaces neither.
    assert_eq!(
        ec2.delete_security_group(&c, from(json!({"GroupId": web})))
            .unwrap_err()
            .code,
        "DependencyViolation"
    );
    assert_eq!(
        ec2.delete_subnet(&c, from(json!({"SubnetId": subnet})))
            .unwrap_err()
            .code,
        "DependencyViolation"
    );

    // The task runs (ATTACHED), then stops: the ENI is deleted, its address free again.
    let report = |status: &str| {
        ecs_.submit_task_state_change(
            &c,
            from(json!({"cluster": "c", "task": server.task_arn, "status": status})),
        )
        .unwrap();
    };
    report("RUNNING");
    let described = |arn: &Option<String>| -> ecs::Task {
        ecs_.describe_tasks(&c, from(json!({"cluster": "c", "tasks": [arn]})))
            .unwrap()
            .tasks
            .unwrap()
            .remove(0)
    };
    assert_eq!(
        described(&server.task_arn).attachments.unwrap()[0]
            .status
            .as_deref(),
        Some("ATTACHED")
    );
    report("STOPPED");
    assert_eq!(
        described(&server.task_arn).attachments.unwrap()[0]
            .status
            .as_deref(),
        Some("DELETED")
    );
    let e = ec2
        .describe_network_interfaces(&c, from(json!({"NetworkInterfaceIds": [eni]})))
        .unwrap_err();
    assert_eq!(e.code, "InvalidNetworkInterfaceID.NotFound");
    let again = run(&[&web]);
    assert_eq!(detail(&again, "privateIPv4Address"), "172.31.0.4");
}

#[test]
fn run_task_refuses_unknown_subnets_and_foreign_groups() {
    let (ec2, ecs_, c) = setup();
    ecs_.create_cluster(&c, from(json!({"clusterName": "c"})))
        .unwrap();
    ecs_.register_task_definition(
        &c,
        from(json!({"family": "web", "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"],
            "cpu": "256", "memory": "512", "containerDefinitions": [{"name": "app", "image": "busybox"}]})),
    )
    .unwrap();
    let run = |net: serde_json::Value| {
        ecs_.run_task(
            &c,
            from(
                json!({"cluster": "c", "taskDefinition": "web", "launchType": "FARGATE",
                "networkConfiguration": {"awsvpcConfiguration": net}}),
            ),
        )
    };
    let e = run(json!({"subnets": ["subnet-12345678"]})).unwrap_err();
    assert_eq!(e.code, "InvalidParameterException");
    assert!(
        e.message
            .contains("The subnet ID 'subnet-12345678' does not exist"),
        "{}",
        e.message
    );
    let other = ec2
        .create_vpc(&c, from(json!({"CidrBlock": "10.9.0.0/16"})))
        .unwrap()
        .vpc
        .unwrap()
        .vpc_id
        .unwrap();
    let foreign = ec2
        .create_security_group(
            &c,
            from(json!({"GroupName": "x", "Description": "x", "VpcId": other})),
        )
        .unwrap()
        .group_id
        .unwrap();
    let subnet = crate::test_support::default_subnet(&ec2.store, &c);
    let e = run(json!({"subnets": [subnet], "securityGroups": [foreign]})).unwrap_err();
    assert_eq!(e.code, "InvalidParameterException");
    // No group given: the VPC's default group.
    let t = run(json!({"subnets": [subnet]}))
        .unwrap()
        .tasks
        .unwrap()
        .remove(0);
    let eni = t.attachments.unwrap()[0]
        .details
        .as_ref()
        .unwrap()
        .iter()
        .find(|d| d.name.as_deref() == Some("networkInterfaceId"))
        .and_then(|d| d.value.clone())
        .unwrap();
    let i = ec2
        .describe_network_interfaces(
            &c,
            from(json!({"Filters": [filter("network-interface-id", &[&eni])]})),
        )
        .unwrap()
        .network_interfaces
        .unwrap();
    assert_eq!(
        i[0].groups.as_ref().unwrap()[0].group_name.as_deref(),
        Some("default")
    );
}

/// A rule change wakes the poll the task's agent holds open: the new rules reach it at once,
/// not at the end of the poll.
#[test]
fn a_rule_change_wakes_the_waiting_agent() {
    let app = Arc::new(crate::App::new(Arc::new(
        berth_store::Store::open_in_memory().unwrap(),
    )));
    let c = crate::test_support::context(1_700_000_000_000);
    app.ecs
        .create_cluster(&c, from(json!({"clusterName": "c"})))
        .unwrap();
    app.ecs
        .register_task_definition(
            &c,
            from(json!({"family": "web", "networkMode": "awsvpc", "requiresCompatibilities": ["FARGATE"],
                "cpu": "256", "memory": "512", "containerDefinitions": [{"name": "app", "image": "busybox"}]})),
        )
        .unwrap();
    let group = app
        .ec2
        .create_security_group(&c, from(json!({"GroupName": "web", "Description": "web"})))
        .unwrap()
        .group_id
        .unwrap();
    let subnet = crate::test_support::default_subnet(&app.store, &c);
    app.ecs
        .run_task(
            &c,
            from(json!({"cluster": "c", "taskDefinition": "web", "launchType": "FARGATE",
                "networkConfiguration": {"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [group]}}})),
        )
        .unwrap();
    let (seq, _) = app
        .store
        .read(|tx| tasks::assignments(tx, MANAGED_HOST))
        .unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    // The poll may wait an hour; only the wake-up can end it within the test's bound.
    let poll = rt.spawn(crate::agent_channel::poll_host(
        app.clone(),
        MANAGED_HOST.to_string(),
        seq,
        std::time::Duration::from_secs(3600),
    ));
    std::thread::sleep(std::time::Duration::from_millis(200));
    app.ec2
        .authorize_security_group_ingress(
            &c,
            from(
                json!({"GroupId": group, "IpPermissions": [{"IpProtocol": "tcp", "FromPort": 443,
                "ToPort": 443, "IpRanges": [{"CidrIp": "192.0.2.0/24"}]}]}),
            ),
        )
        .unwrap();
    let resp = rt
        .block_on(async { tokio::time::timeout(std::time::Duration::from_secs(60), poll).await })
        .expect("the poll was woken")
        .unwrap()
        .unwrap();
    assert!(resp.seq > seq);
    let ingress = &resp.tasks[0].network.as_ref().unwrap().security_groups[0].ingress;
    assert_eq!(ingress[0].cidrs, ["192.0.2.0/24"]);
    assert_eq!(ingress[0].from_port, Some(443));
}
