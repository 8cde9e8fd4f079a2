//! EC2 (VPCs, subnets, security groups, network interfaces, tags) through the `aws ec2` CLI:
//! the default network, create/describe/filter/tag/authorize/revoke/delete, EC2's errors,
//! and the ENI an awsvpc RunTask gets.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use berth_e2e::{BerthServer, REGION, busybox_image_tar, containers_or_skip};
use serde_json::Value;

fn s(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_string()
}

#[test]
fn default_network_vpcs_subnets_groups_and_errors() {
    let berth = BerthServer::start();
    let cli = |args: &[&str]| berth.aws_cli_json(REGION, args);

    // The default VPC, its three default subnets and its default group.
    let vpcs = cli(&[
        "ec2",
        "describe-vpcs",
        "--filters",
        "Name=isDefault,Values=true",
    ]);
    let default_vpc = &vpcs["Vpcs"][0];
    assert_eq!(default_vpc["CidrBlock"], "172.31.0.0/16");
    assert_eq!(default_vpc["OwnerId"], berth.account_id());
    let default_vpc_id = s(&default_vpc["VpcId"]);
    let subnets = cli(&[
        "ec2",
        "describe-subnets",
        "--filters",
        &format!("Name=vpc-id,Values={default_vpc_id}"),
        "Name=default-for-az,Values=true",
    ]);
    let mut cidrs: Vec<String> = subnets["Subnets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| format!("{} {}", s(&x["AvailabilityZone"]), s(&x["CidrBlock"])))
        .collect();
    cidrs.sort();
    assert_eq!(
        cidrs,
        [
            "us-east-1a 172.31.0.0/20",
            "us-east-1b 172.31.16.0/20",
            "us-east-1c 172.31.32.0/20"
        ]
    );
    let zones = cli(&["ec2", "describe-availability-zones"]);
    assert_eq!(zones["AvailabilityZones"].as_array().unwrap().len(), 3);

    // A VPC with a tag, a subnet, filters.
    let vpc = cli(&[
        "ec2",
        "create-vpc",
        "--cidr-block",
        "10.0.0.0/16",
        "--tag-specifications",
        "ResourceType=vpc,Tags=[{Key=Name,Value=e2e}]",
    ]);
    let vpc_id = s(&vpc["Vpc"]["VpcId"]);
    assert!(vpc_id.starts_with("vpc-") && vpc_id.len() == 21, "{vpc_id}");
    let by_tag = cli(&[
        "ec2",
        "describe-vpcs",
        "--filters",
        "Name=tag:Name,Values=e2e",
    ]);
    assert_eq!(by_tag["Vpcs"].as_array().unwrap().len(), 1);
    let by_cidr = cli(&[
        "ec2",
        "describe-vpcs",
        "--filters",
        "Name=cidr,Values=10.0.*",
    ]);
    assert_eq!(by_cidr["Vpcs"][0]["VpcId"], vpc_id.as_str());
    cli(&[
        "ec2",
        "modify-vpc-attribute",
        "--vpc-id",
        &vpc_id,
        "--enable-dns-hostnames",
        "{\"Value\":true}",
    ]);
    let attr = cli(&[
        "ec2",
        "describe-vpc-attribute",
        "--vpc-id",
        &vpc_id,
        "--attribute",
        "enableDnsHostnames",
    ]);
    assert_eq!(attr["EnableDnsHostnames"]["Value"], true);
    let subnet = cli(&[
        "ec2",
        "create-subnet",
        "--vpc-id",
        &vpc_id,
        "--cidr-block",
        "10.0.1.0/24",
        "--availability-zone",
        "us-east-1b",
    ]);
    let subnet_id = s(&subnet["Subnet"]["SubnetId"]);
    assert_eq!(subnet["Subnet"]["AvailableIpAddressCount"], 251);
    let err = berth.aws_cli_error(
        REGION,
        &[
            "ec2",
            "create-subnet",
            "--vpc-id",
            &vpc_id,
            "--cidr-block",
            "10.0.1.0/25",
        ],
        "InvalidSubnet.Conflict",
    );
    assert!(err.contains("conflicts with another subnet"), "{err}");
    let err = berth.aws_cli_error(
        REGION,
        &["ec2", "describe-vpcs", "--vpc-ids", "vpc-0123456789abcdef0"],
        "InvalidVpcID.NotFound",
    );
    assert!(
        err.contains("The vpc ID 'vpc-0123456789abcdef0' does not exist"),
        "{err}"
    );
    berth.aws_cli_error(
        REGION,
        &[
            "ec2",
            "describe-subnets",
            "--filters",
            "Name=colour,Values=red",
        ],
        "InvalidParameterValue",
    );

    // A group, rules (ingress from a CIDR and from a group), duplicates, revocation.
    let sg = cli(&[
        "ec2",
        "create-security-group",
        "--group-name",
        "web",
        "--description",
        "web servers",
        "--vpc-id",
        &vpc_id,
    ]);
    let sg_id = s(&sg["GroupId"]);
    berth.aws_cli_error(
        REGION,
        &[
            "ec2",
            "create-security-group",
            "--group-name",
            "web",
            "--description",
            "again",
            "--vpc-id",
            &vpc_id,
        ],
        "InvalidGroup.Duplicate",
    );
    let added = cli(&[
        "ec2",
        "authorize-security-group-ingress",
        "--group-id",
        &sg_id,
        "--protocol",
        "tcp",
        "--port",
        "80",
        "--cidr",
        "10.0.0.0/16",
    ]);
    assert_eq!(added["Return"], true);
    let rule_id = s(&added["SecurityGroupRules"][0]["SecurityGroupRuleId"]);
    assert!(rule_id.starts_with("sgr-"), "{rule_id}");
    berth.aws_cli_error(
        REGION,
        &[
            "ec2",
            "authorize-security-group-ingress",
            "--group-id",
            &sg_id,
            "--protocol",
            "tcp",
            "--port",
            "80",
            "--cidr",
            "10.0.0.0/16",
        ],
        "InvalidPermission.Duplicate",
    );
    let default_sg = cli(&[
        "ec2",
        "describe-security-groups",
        "--filters",
        &format!("Name=vpc-id,Values={vpc_id}"),
        "Name=group-name,Values=default",
    ]);
    let default_sg_id = s(&default_sg["SecurityGroups"][0]["GroupId"]);
    cli(&[
        "ec2",
        "authorize-security-group-ingress",
        "--group-id",
        &sg_id,
        "--ip-permissions",
        &format!(
            "IpProtocol=tcp,FromPort=8000,ToPort=8080,UserIdGroupPairs=[{{GroupId={default_sg_id}}}]"
        ),
    ]);
    let described = cli(&["ec2", "describe-security-groups", "--group-ids", &sg_id]);
    let perms = described["SecurityGroups"][0]["IpPermissions"]
        .as_array()
        .unwrap();
    assert_eq!(perms.len(), 2, "{perms:?}");
    let egress = &described["SecurityGroups"][0]["IpPermissionsEgress"][0];
    assert_eq!(egress["IpProtocol"], "-1");
    assert_eq!(egress["IpRanges"][0]["CidrIp"], "0.0.0.0/0");
    let by_port = cli(&[
        "ec2",
        "describe-security-groups",
        "--filters",
        "Name=ip-permission.from-port,Values=8000",
    ]);
    assert_eq!(by_port["SecurityGroups"][0]["GroupId"], sg_id.as_str());
    let rules = cli(&[
        "ec2",
        "describe-security-group-rules",
        "--filters",
        &format!("Name=group-id,Values={sg_id}"),
    ]);
    assert_eq!(rules["SecurityGroupRules"].as_array().unwrap().len(), 3);
    cli(&[
        "ec2",
        "revoke-security-group-egress",
        "--group-id",
        &sg_id,
        "--ip-permissions",
        "IpProtocol=-1,IpRanges=[{CidrIp=0.0.0.0/0}]",
    ]);
    cli(&[
        "ec2",
        "revoke-security-group-ingress",
        "--group-id",
        &sg_id,
        "--security-group-rule-ids",
        &rule_id,
    ]);
    berth.aws_cli_error(
        REGION,
        &[
            "ec2",
            "revoke-security-group-ingress",
            "--group-id",
            &sg_id,
            "--protocol",
            "tcp",
            "--port",
            "80",
            "--cidr",
            "10.0.0.0/16",
        ],
        "InvalidPermission.NotFound",
    );

    // Tags on several resources, DescribeTags, DeleteTags.
    cli(&[
        "ec2",
        "create-tags",
        "--resources",
        &sg_id,
        &subnet_id,
        "--tags",
        "Key=team,Value=blue",
    ]);
    let tags = cli(&["ec2", "describe-tags", "--filters", "Name=key,Values=team"]);
    assert_eq!(tags["Tags"].as_array().unwrap().len(), 2);
    cli(&[
        "ec2",
        "delete-tags",
        "--resources",
        &subnet_id,
        "--tags",
        "Key=team",
    ]);
    let tags = cli(&["ec2", "describe-tags", "--filters", "Name=key,Values=team"]);
    assert_eq!(tags["Tags"][0]["ResourceId"], sg_id.as_str());
    assert_eq!(tags["Tags"][0]["ResourceType"], "security-group");

    // Dependencies, then everything goes.
    let err = berth.aws_cli_error(
        REGION,
        &["ec2", "delete-vpc", "--vpc-id", &vpc_id],
        "DependencyViolation",
    );
    assert!(
        err.contains("has dependencies and cannot be deleted"),
        "{err}"
    );
    berth.aws_cli_error(
        REGION,
        &["ec2", "delete-security-group", "--group-id", &default_sg_id],
        "CannotDelete",
    );
    cli(&["ec2", "delete-security-group", "--group-id", &sg_id]);
    cli(&["ec2", "delete-subnet", "--subnet-id", &subnet_id]);
    cli(&["ec2", "delete-vpc", "--vpc-id", &vpc_id]);
    berth.aws_cli_error(
        REGION,
        &["ec2", "describe-security-groups", "--group-ids", &sg_id],
        "InvalidGroup.NotFound",
    );
    berth.aws_cli_error(
        REGION,
        &[
            "ec2",
            "create-vpc",
            "--cidr-block",
            "10.0.0.0/16",
            "--dry-run",
        ],
        "DryRunOperation",
    );
    // An EC2 action Berth does not serve says so.
    berth.aws_cli_error(
        REGION,
        &["ec2", "describe-instances"],
        "UnknownOperationException",
    );

    // State survives a restart.
    let mut berth = berth;
    berth.restart();
    let after = berth.aws_cli_json(
        REGION,
        &["ec2", "describe-vpcs", "--vpc-ids", &default_vpc_id],
    );
    assert_eq!(after["Vpcs"][0]["CidrBlock"], "172.31.0.0/16");
}

#[test]
fn awsvpc_run_task_gets_an_eni() {
    // No capacity runs the task: it stays PROVISIONING with its ENI.
    let berth = BerthServer::builder().subcommand("server").start();
    let cli = |args: &[&str]| berth.aws_cli_json(REGION, args);
    cli(&["ecs", "create-cluster", "--cluster-name", "net"]);
    cli(&[
        "ecs",
        "register-task-definition",
        "--family",
        "web",
        "--network-mode",
        "awsvpc",
        "--requires-compatibilities",
        "FARGATE",
        "--cpu",
        "256",
        "--memory",
        "512",
        "--container-definitions",
        r#"[{"name":"app","image":"busybox","command":["sleep","60"]}]"#,
    ]);
    let subnets = cli(&[
        "ec2",
        "describe-subnets",
        "--filters",
        "Name=availability-zone,Values=us-east-1b",
        "Name=default-for-az,Values=true",
    ]);
    let subnet = s(&subnets["Subnets"][0]["SubnetId"]);
    let err = berth.aws_cli_error(
        REGION,
        &[
            "ecs",
            "run-task",
            "--cluster",
            "net",
            "--task-definition",
            "web",
            "--launch-type",
            "FARGATE",
            "--network-configuration",
            "awsvpcConfiguration={subnets=[subnet-0123456789abcdef0]}",
        ],
        "InvalidParameterException",
    );
    assert!(err.contains("subnet-0123456789abcdef0"), "{err}");
    let run = cli(&[
        "ecs",
        "run-task",
        "--cluster",
        "net",
        "--task-definition",
        "web",
        "--launch-type",
        "FARGATE",
        "--network-configuration",
        &format!("awsvpcConfiguration={{subnets=[{subnet}]}}"),
    ]);
    let arn = s(&run["tasks"][0]["taskArn"]);
    let task = cli(&["ecs", "describe-tasks", "--cluster", "net", "--tasks", &arn]);
    let att = &task["tasks"][0]["attachments"][0];
    assert_eq!(att["type"], "ElasticNetworkInterface");
    let detail = |n: &str| -> String {
        att["details"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == n)
            .map(|d| s(&d["value"]))
            .unwrap_or_default()
    };
    assert_eq!(detail("subnetId"), subnet);
    assert_eq!(detail("privateIPv4Address"), "172.31.16.4");
    assert_eq!(detail("privateDnsName"), "ip-172-31-16-4.ec2.internal");
    let mac = detail("macAddress");
    let eni = detail("networkInterfaceId");
    assert_eq!(task["tasks"][0]["availabilityZone"], "us-east-1b");
    assert_eq!(
        task["tasks"][0]["containers"][0]["networkInterfaces"][0]["privateIpv4Address"],
        "172.31.16.4"
    );
    let enis = cli(&[
        "ec2",
        "describe-network-interfaces",
        "--network-interface-ids",
        &eni,
    ]);
    let i = &enis["NetworkInterfaces"][0];
    assert_eq!(i["MacAddress"], mac.as_str());
    assert_eq!(i["PrivateIpAddress"], "172.31.16.4");
    assert_eq!(i["Status"], "in-use");
    assert_eq!(i["InterfaceType"], "interface");
    assert_eq!(i["Groups"][0]["GroupName"], "default");
    assert!(s(&i["Description"]).starts_with("arn:aws:ecs:us-east-1:"));
    let free = cli(&["ec2", "describe-subnets", "--subnet-ids", &subnet]);
    assert_eq!(free["Subnets"][0]["AvailableIpAddressCount"], 4090);
}

/// A Fargate task that really runs holds its ENI (attachment ATTACHED) until it stops; then
/// the interface is gone, its address free and the attachment DELETED.
#[test]
fn a_stopped_task_gives_its_eni_back() {
    if !containers_or_skip("a_stopped_task_gives_its_eni_back") {
        return;
    }
    let berth = BerthServer::start();
    berth.load_image(&busybox_image_tar());
    let cli = |args: &[&str]| berth.aws_cli_json(REGION, args);
    cli(&["ecs", "create-cluster", "--cluster-name", "net"]);
    cli(&[
        "ecs",
        "register-task-definition",
        "--family",
        "sleeper",
        "--network-mode",
        "awsvpc",
        "--requires-compatibilities",
        "FARGATE",
        "--cpu",
        "256",
        "--memory",
        "512",
        "--container-definitions",
        r#"[{"name":"app","image":"busybox","command":["sleep","600"]}]"#,
    ]);
    let run = cli(&[
        "ecs",
        "run-task",
        "--cluster",
        "net",
        "--task-definition",
        "sleeper",
        "--launch-type",
        "FARGATE",
        "--network-configuration",
        &berth.cli_network(),
    ]);
    let arn = s(&run["tasks"][0]["taskArn"]);
    let wait = |status: &str| -> Value {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let t = cli(&["ecs", "describe-tasks", "--cluster", "net", "--tasks", &arn]);
            if t["tasks"][0]["lastStatus"] == status {
                return t["tasks"][0].clone();
            }
            assert!(Instant::now() < deadline, "task never {status}: {t}");
            std::thread::sleep(Duration::from_millis(250));
        }
    };
    let running = wait("RUNNING");
    let att = &running["attachments"][0];
    assert_eq!(att["status"], "ATTACHED");
    let eni = att["details"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == "networkInterfaceId")
        .map(|d| s(&d["value"]))
        .unwrap();
    let found = cli(&[
        "ec2",
        "describe-network-interfaces",
        "--filters",
        &format!("Name=network-interface-id,Values={eni}"),
    ]);
    assert_eq!(found["NetworkInterfaces"].as_array().unwrap().len(), 1);
    cli(&["ecs", "stop-task", "--cluster", "net", "--task", &arn]);
    let stopped = wait("STOPPED");
    assert_eq!(stopped["attachments"][0]["status"], "DELETED");
    let gone = cli(&[
        "ec2",
        "describe-network-interfaces",
        "--filters",
        &format!("Name=network-interface-id,Values={eni}"),
    ]);
    assert_eq!(gone["NetworkInterfaces"].as_array().unwrap().len(), 0);
    berth.aws_cli_error(
        REGION,
        &[
            "ec2",
            "describe-network-interfaces",
            "--network-interface-ids",
            &eni,
        ],
        "InvalidNetworkInterfaceID.NotFound",
    );
}

/// EC2 calls are authorised as `ec2:<Action>` (a denial is EC2's UnauthorizedOperation, a bad
/// key AuthFailure) and recorded in CloudTrail with eventSource ec2.amazonaws.com.
#[test]
fn ec2_calls_are_authorised_and_recorded() {
    let berth = BerthServer::start();
    berth.aws_cli_json(REGION, &["iam", "create-user", "--user-name", "netops"]);
    let key = berth.aws_cli_json(
        REGION,
        &["iam", "create-access-key", "--user-name", "netops"],
    );
    let id = s(&key["AccessKey"]["AccessKeyId"]);
    let secret = s(&key["AccessKey"]["SecretAccessKey"]);
    let as_user = |secret: &str, args: &[&str]| {
        berth
            .aws_cli_command(REGION, args)
            .env("AWS_ACCESS_KEY_ID", &id)
            .env("AWS_SECRET_ACCESS_KEY", secret)
            .output()
            .unwrap()
    };
    let denied = as_user(&secret, &["ec2", "describe-vpcs"]);
    let err = berth_e2e::assert_cli_error(&denied, "UnauthorizedOperation", &["describe-vpcs"]);
    assert!(err.contains("ec2:DescribeVpcs"), "{err}");
    berth.aws_cli_json(
        REGION,
        &[
            "iam",
            "put-user-policy",
            "--user-name",
            "netops",
            "--policy-name",
            "describe",
            "--policy-document",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:Describe*","Resource":"*"}]}"#,
        ],
    );
    // Authorisations are cached for at most 5 s after an IAM write (DESIGN §8).
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let out = as_user(&secret, &["ec2", "describe-vpcs"]);
        if out.status.success() {
            break;
        }
        assert!(Instant::now() < deadline, "still denied");
        std::thread::sleep(Duration::from_millis(500));
    }
    let still = as_user(
        &secret,
        &["ec2", "create-vpc", "--cidr-block", "10.3.0.0/16"],
    );
    berth_e2e::assert_cli_error(&still, "UnauthorizedOperation", &["create-vpc"]);
    let bad = as_user("wrong-secret", &["ec2", "describe-vpcs"]);
    berth_e2e::assert_cli_error(&bad, "AuthFailure", &["describe-vpcs"]);

    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events = berth.aws_cli_json(
            REGION,
            &[
                "cloudtrail",
                "lookup-events",
                "--lookup-attributes",
                "AttributeKey=EventSource,AttributeValue=ec2.amazonaws.com",
            ],
        );
        let names: Vec<String> = events["Events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| s(&e["EventName"]))
            .collect();
        if names.iter().any(|n| n == "CreateVpc") && names.iter().any(|n| n == "DescribeVpcs") {
            break;
        }
        assert!(Instant::now() < deadline, "events: {names:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}
