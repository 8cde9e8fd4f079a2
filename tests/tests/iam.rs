//! IAM through the aws CLI: users, groups, roles, managed and inline policies, access keys,
//! IAM's errors, and the policies enforced on every call the new users make.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Output;

use berth_e2e::{BerthServer, REGION, assert_cli_error};
use serde_json::Value;

const TRUST_ECS_TASKS: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#;

/// An IAM user of the server with its own access key.
struct User {
    access_key_id: String,
    secret: String,
}

fn new_user(berth: &BerthServer, name: &str) -> User {
    berth.aws_cli_json(REGION, &["iam", "create-user", "--user-name", name]);
    let key = berth.aws_cli_json(REGION, &["iam", "create-access-key", "--user-name", name]);
    User {
        access_key_id: key["AccessKey"]["AccessKeyId"]
            .as_str()
            .unwrap()
            .to_string(),
        secret: key["AccessKey"]["SecretAccessKey"]
            .as_str()
            .unwrap()
            .to_string(),
    }
}

fn as_user(berth: &BerthServer, user: &User, args: &[&str]) -> Output {
    berth
        .aws_cli_command(REGION, args)
        .env("AWS_ACCESS_KEY_ID", &user.access_key_id)
        .env("AWS_SECRET_ACCESS_KEY", &user.secret)
        .output()
        .expect("run aws")
}

fn ok_json(out: &Output, what: &str) -> Value {
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or(Value::Null)
}

#[test]
fn users_roles_policies_and_their_errors() {
    let berth = BerthServer::start();
    let account = berth.account_id().to_string();
    let user = berth.aws_cli_json(
        REGION,
        &[
            "iam",
            "create-user",
            "--user-name",
            "alice",
            "--path",
            "/team/",
            "--tags",
            "Key=team,Value=web",
        ],
    );
    assert_eq!(
        user["User"]["Arn"],
        format!("arn:aws:iam::{account}:user/team/alice")
    );
    assert!(user["User"]["UserId"].as_str().unwrap().starts_with("AIDA"));
    assert_cli_error(
        &berth.aws_cli(REGION, &["iam", "create-user", "--user-name", "ALICE"]),
        "EntityAlreadyExists",
        &[],
    );
    let msg = berth.aws_cli_error(
        REGION,
        &["iam", "get-user", "--user-name", "bob"],
        "NoSuchEntity",
    );
    assert!(
        msg.contains("The user with name bob cannot be found."),
        "{msg}"
    );
    berth.aws_cli_error(
        REGION,
        &["iam", "create-user", "--user-name", "no spaces"],
        "ValidationError",
    );

    // A role with a trust policy, documents come back decoded by the CLI.
    let role = berth.aws_cli_json(
        REGION,
        &[
            "iam",
            "create-role",
            "--role-name",
            "task",
            "--assume-role-policy-document",
            TRUST_ECS_TASKS,
        ],
    );
    assert_eq!(
        role["Role"]["AssumeRolePolicyDocument"]["Statement"][0]["Principal"]["Service"],
        "ecs-tasks.amazonaws.com"
    );
    let msg = berth.aws_cli_error(
        REGION,
        &["iam", "create-role", "--role-name", "bad", "--assume-role-policy-document", r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole"}]}"#],
        "MalformedPolicyDocument",
    );
    assert!(msg.contains("Missing required field Principal"), "{msg}");

    // Managed policies with versions, attached to the role.
    let doc = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecs:List*","Resource":"*"}]}"#;
    let p = berth.aws_cli_json(
        REGION,
        &[
            "iam",
            "create-policy",
            "--policy-name",
            "list-ecs",
            "--policy-document",
            doc,
        ],
    );
    let arn = p["Policy"]["Arn"].as_str().unwrap().to_string();
    assert_eq!(arn, format!("arn:aws:iam::{account}:policy/list-ecs"));
    berth.aws_cli_json(
        REGION,
        &[
            "iam",
            "create-policy-version",
            "--policy-arn",
            &arn,
            "--policy-document",
            doc,
            "--set-as-default",
        ],
    );
    let v = berth.aws_cli_json(REGION, &["iam", "get-policy", "--policy-arn", &arn]);
    assert_eq!(v["Policy"]["DefaultVersionId"], "v2");
    let got = berth.aws_cli_json(
        REGION,
        &[
            "iam",
            "get-policy-version",
            "--policy-arn",
            &arn,
            "--version-id",
            "v2",
        ],
    );
    assert_eq!(
        got["PolicyVersion"]["Document"]["Statement"][0]["Action"],
        "ecs:List*"
    );
    for policy in [
        arn.as_str(),
        "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy",
    ] {
        berth.aws_cli_json(
            REGION,
            &[
                "iam",
                "attach-role-policy",
                "--role-name",
                "task",
                "--policy-arn",
                policy,
            ],
        );
    }
    let attached = berth.aws_cli_json(
        REGION,
        &["iam", "list-attached-role-policies", "--role-name", "task"],
    );
    assert_eq!(attached["AttachedPolicies"].as_array().unwrap().len(), 2);
    let msg = berth.aws_cli_error(
        REGION,
        &["iam", "delete-policy", "--policy-arn", &arn],
        "DeleteConflict",
    );
    assert!(msg.contains("attached"), "{msg}");
    let msg = berth.aws_cli_error(
        REGION,
        &["iam", "delete-role", "--role-name", "task"],
        "DeleteConflict",
    );
    assert!(msg.contains("must detach all policies first"), "{msg}");
    let msg = berth.aws_cli_error(
        REGION,
        &[
            "iam",
            "attach-role-policy",
            "--role-name",
            "task",
            "--policy-arn",
            "arn:aws:iam::aws:policy/NoSuchPolicy",
        ],
        "NoSuchEntity",
    );
    assert!(msg.contains("does not exist or is not attachable"), "{msg}");
    let entities = berth.aws_cli_json(
        REGION,
        &["iam", "list-entities-for-policy", "--policy-arn", &arn],
    );
    assert_eq!(entities["PolicyRoles"][0]["RoleName"], "task");

    // Inline policies and the account view.
    berth.aws_cli_json(
        REGION,
        &[
            "iam",
            "put-role-policy",
            "--role-name",
            "task",
            "--policy-name",
            "inline",
            "--policy-document",
            doc,
        ],
    );
    let names = berth.aws_cli_json(
        REGION,
        &["iam", "list-role-policies", "--role-name", "task"],
    );
    assert_eq!(names["PolicyNames"], serde_json::json!(["inline"]));
    let details = berth.aws_cli_json(REGION, &["iam", "get-account-authorization-details"]);
    let role_detail = &details["RoleDetailList"][0];
    assert_eq!(role_detail["RoleName"], "task");
    assert_eq!(role_detail["RolePolicyList"][0]["PolicyName"], "inline");
    assert_eq!(details["UserDetailList"][0]["UserName"], "alice");

    // Tear down in IAM's order.
    berth.aws_cli_json(
        REGION,
        &[
            "iam",
            "delete-role-policy",
            "--role-name",
            "task",
            "--policy-name",
            "inline",
        ],
    );
    for policy in [
        arn.as_str(),
        "arn:aws:iam::aws:policy/service-role/AmazonECSTaskExecutionRolePolicy",
    ] {
        berth.aws_cli_json(
            REGION,
            &[
                "iam",
                "detach-role-policy",
                "--role-name",
                "task",
                "--policy-arn",
                policy,
            ],
        );
    }
    berth.aws_cli_json(REGION, &["iam", "delete-role", "--role-name", "task"]);
    berth.aws_cli_error(
        REGION,
        &["iam", "delete-policy", "--policy-arn", &arn],
        "DeleteConflict",
    );
    berth.aws_cli_json(
        REGION,
        &[
            "iam",
            "delete-policy-version",
            "--policy-arn",
            &arn,
            "--version-id",
            "v1",
        ],
    );
    berth.aws_cli_json(REGION, &["iam", "delete-policy", "--policy-arn", &arn]);
    berth.aws_cli_json(REGION, &["iam", "delete-user", "--user-name", "alice"]);
    let users = berth.aws_cli_json(REGION, &["iam", "list-users"]);
    assert_eq!(users["Users"], serde_json::json!([]));
}

#[test]
fn a_user_may_run_tasks_only_where_its_policy_allows() {
    let berth = BerthServer::start();
    let account = berth.account_id().to_string();
    for c in ["prod", "dev"] {
        berth.aws_cli_json(REGION, &["ecs", "create-cluster", "--cluster-name", c]);
    }
    berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "register-task-definition",
            "--family",
            "web",
            "--network-mode",
            "host",
            "--container-definitions",
            r#"[{"name":"web","image":"busybox","memory":64}]"#,
        ],
    );
    let alice = new_user(&berth, "alice");
    // Nothing attached: every call is denied with IAM's message.
    let stderr = assert_cli_error(
        &as_user(&berth, &alice, &["ecs", "list-clusters"]),
        "AccessDeniedException",
        &[],
    );
    assert!(
        stderr.contains(&format!(
            "User: arn:aws:iam::{account}:user/alice is not authorized to perform: ecs:ListClusters on resource: * because no identity-based policy allows the ecs:ListClusters action"
        )),
        "{stderr}"
    );
    // GetCallerIdentity needs no permission.
    let who = ok_json(
        &as_user(&berth, &alice, &["sts", "get-caller-identity"]),
        "whoami",
    );
    assert_eq!(who["Arn"], format!("arn:aws:iam::{account}:user/alice"));
    assert!(who["UserId"].as_str().unwrap().starts_with("AIDA"));

    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[
            {{"Effect":"Allow","Action":["ecs:RunTask"],"Resource":"*","Condition":{{"ArnEquals":{{"ecs:cluster":"arn:aws:ecs:{REGION}:{account}:cluster/prod"}}}}}},
            {{"Effect":"Allow","Action":["ecs:List*","ecs:Describe*"],"Resource":"*"}},
            {{"Effect":"Deny","Action":"ecs:DescribeClusters","Resource":"arn:aws:ecs:*:*:cluster/dev"}}]}}"#
    );
    berth.aws_cli_json(
        REGION,
        &[
            "iam",
            "put-user-policy",
            "--user-name",
            "alice",
            "--policy-name",
            "ecs",
            "--policy-document",
            &policy,
        ],
    );
    let clusters = ok_json(&as_user(&berth, &alice, &["ecs", "list-clusters"]), "list");
    assert_eq!(clusters["clusterArns"].as_array().unwrap().len(), 2);
    let stderr = assert_cli_error(
        &as_user(
            &berth,
            &alice,
            &["ecs", "describe-clusters", "--clusters", "dev"],
        ),
        "AccessDeniedException",
        &[],
    );
    assert!(
        stderr.contains("with an explicit deny in an identity-based policy"),
        "{stderr}"
    );
    // RunTask on prod passes authorisation (and fails for want of instances); on dev it is denied.
    let prod = as_user(
        &berth,
        &alice,
        &[
            "ecs",
            "run-task",
            "--cluster",
            "prod",
            "--task-definition",
            "web",
        ],
    );
    let stderr = String::from_utf8_lossy(&prod.stderr);
    assert!(!stderr.contains("AccessDenied"), "{stderr}");
    assert!(
        stderr.contains("No Container Instances were found"),
        "{stderr}"
    );
    let stderr = assert_cli_error(
        &as_user(
            &berth,
            &alice,
            &[
                "ecs",
                "run-task",
                "--cluster",
                "dev",
                "--task-definition",
                "web",
            ],
        ),
        "AccessDeniedException",
        &[],
    );
    assert!(stderr.contains("ecs:RunTask"), "{stderr}");
    // IAM itself is off limits to alice.
    assert_cli_error(
        &as_user(&berth, &alice, &["iam", "list-users"]),
        "AccessDenied",
        &[],
    );
    // Her key's last use (a denied call is a use too) is what IAM reports.
    let used = berth.aws_cli_json(
        REGION,
        &[
            "iam",
            "get-access-key-last-used",
            "--access-key-id",
            &alice.access_key_id,
        ],
    );
    assert_eq!(used["UserName"], "alice", "{used}");
    let last = &used["AccessKeyLastUsed"];
    assert_eq!(last["ServiceName"], "iam", "{used}");
    assert_eq!(last["Region"], REGION, "{used}");
    assert!(last["LastUsedDate"].is_string(), "{used}");
    // A key never used has no date, and N/A for the rest.
    let idle = new_user(&berth, "idle");
    let used = berth.aws_cli_json(
        REGION,
        &[
            "iam",
            "get-access-key-last-used",
            "--access-key-id",
            &idle.access_key_id,
        ],
    );
    assert_eq!(
        used["AccessKeyLastUsed"],
        serde_json::json!({"ServiceName": "N/A", "Region": "N/A"}),
        "{used}"
    );
}

#[test]
fn groups_boundaries_and_key_status_apply() {
    let berth = BerthServer::start();
    let bob = new_user(&berth, "bob");
    berth.aws_cli_json(REGION, &["iam", "create-group", "--group-name", "readers"]);
    berth.aws_cli_json(
        REGION,
        &[
            "iam",
            "add-user-to-group",
            "--group-name",
            "readers",
            "--user-name",
            "bob",
        ],
    );
    berth.aws_cli_json(
        REGION,
        &[
            "iam",
            "attach-group-policy",
            "--group-name",
            "readers",
            "--policy-arn",
            "arn:aws:iam::aws:policy/AdministratorAccess",
        ],
    );
    ok_json(
        &as_user(&berth, &bob, &["ecs", "list-clusters"]),
        "group grants",
    );
    ok_json(
        &as_user(&berth, &bob, &["iam", "list-users"]),
        "admin may list users",
    );
    // A boundary allowing only ECS caps the group's AdministratorAccess.
    let boundary = berth.aws_cli_json(
        REGION,
        &["iam", "create-policy", "--policy-name", "ecs-only", "--policy-document", r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecs:*","Resource":"*"}]}"#],
    );
    let boundary_arn = boundary["Policy"]["Arn"].as_str().unwrap().to_string();
    berth.aws_cli_json(
        REGION,
        &[
            "iam",
            "put-user-permissions-boundary",
            "--user-name",
            "bob",
            "--permissions-boundary",
            &boundary_arn,
        ],
    );
    ok_json(
        &as_user(&berth, &bob, &["ecs", "list-clusters"]),
        "still allowed",
    );
    let stderr = assert_cli_error(
        &as_user(&berth, &bob, &["iam", "list-users"]),
        "AccessDenied",
        &[],
    );
    assert!(
        stderr.contains("because no permissions boundary allows the iam:ListUsers action"),
        "{stderr}"
    );
    // An inactive key no longer authenticates.
    berth.aws_cli_json(
        REGION,
        &[
            "iam",
            "update-access-key",
            "--user-name",
            "bob",
            "--access-key-id",
            &bob.access_key_id,
            "--status",
            "Inactive",
        ],
    );
    assert_cli_error(
        &as_user(&berth, &bob, &["ecs", "list-clusters"]),
        "UnrecognizedClientException",
        &[],
    );
    let keys = berth.aws_cli_json(REGION, &["iam", "list-access-keys", "--user-name", "bob"]);
    assert_eq!(keys["AccessKeyMetadata"][0]["Status"], "Inactive");
    berth.aws_cli_json(REGION, &["iam", "create-access-key", "--user-name", "bob"]);
    let msg = berth.aws_cli_error(
        REGION,
        &["iam", "create-access-key", "--user-name", "bob"],
        "LimitExceeded",
    );
    assert!(msg.contains("AccessKeysPerUser: 2"), "{msg}");
}

/// Credentials of a role session, for the CLI.
fn session_env(creds: &Value) -> [(&'static str, String); 3] {
    let get = |k: &str| creds["Credentials"][k].as_str().unwrap().to_string();
    [
        ("AWS_ACCESS_KEY_ID", get("AccessKeyId")),
        ("AWS_SECRET_ACCESS_KEY", get("SecretAccessKey")),
        ("AWS_SESSION_TOKEN", get("SessionToken")),
    ]
}

fn as_session(berth: &BerthServer, env: &[(&'static str, String); 3], args: &[&str]) -> Output {
    let mut cmd = berth.aws_cli_command(REGION, args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run aws")
}

#[test]
fn assumed_roles_act_with_the_roles_rights_until_they_expire() {
    let mut berth = BerthServer::start();
    let account = berth.account_id().to_string();
    let role_arn = format!("arn:aws:iam::{account}:role/reader");
    let trust = format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{account}:root"}},"Action":"sts:AssumeRole"}}]}}"#
    );
    berth.aws_cli_json(
        REGION,
        &[
            "iam",
            "create-role",
            "--role-name",
            "reader",
            "--assume-role-policy-document",
            &trust,
        ],
    );
    berth.aws_cli_json(
        REGION,
        &[
            "iam", "put-role-policy", "--role-name", "reader", "--policy-name", "list",
            "--policy-document",
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecs:ListClusters","Resource":"*"}]}"#,
        ],
    );
    let alice = new_user(&berth, "alice");
    let bob = new_user(&berth, "bob");
    berth.aws_cli_json(
        REGION,
        &[
            "iam", "put-user-policy", "--user-name", "alice", "--policy-name", "assume",
            "--policy-document",
            &format!(r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"{role_arn}"}}]}}"#),
        ],
    );
    let assume = [
        "sts",
        "assume-role",
        "--role-arn",
        role_arn.as_str(),
        "--role-session-name",
        "ci",
    ];
    // The root user may not assume roles; bob's policies do not allow it.
    let msg = berth.aws_cli_error(REGION, &assume, "AccessDenied");
    assert!(
        msg.contains("Roles may not be assumed by root accounts."),
        "{msg}"
    );
    let stderr = assert_cli_error(&as_user(&berth, &bob, &assume), "AccessDenied", &[]);
    assert!(
        stderr.contains("is not authorized to perform: sts:AssumeRole"),
        "{stderr}"
    );

    let creds = ok_json(&as_user(&berth, &alice, &assume), "assume-role");
    assert!(
        creds["Credentials"]["AccessKeyId"]
            .as_str()
            .unwrap()
            .starts_with("ASIA")
    );
    assert_eq!(
        creds["AssumedRoleUser"]["Arn"],
        format!("arn:aws:sts::{account}:assumed-role/reader/ci")
    );
    let env = session_env(&creds);
    let who = ok_json(
        &as_session(&berth, &env, &["sts", "get-caller-identity"]),
        "whoami",
    );
    assert_eq!(
        who["Arn"],
        format!("arn:aws:sts::{account}:assumed-role/reader/ci")
    );
    assert!(who["UserId"].as_str().unwrap().ends_with(":ci"));
    // The role's rights, not alice's.
    ok_json(
        &as_session(&berth, &env, &["ecs", "list-clusters"]),
        "role may list",
    );
    let stderr = assert_cli_error(
        &as_session(
            &berth,
            &env,
            &["ecs", "create-cluster", "--cluster-name", "x"],
        ),
        "AccessDeniedException",
        &[],
    );
    assert!(
        stderr.contains("assumed-role/reader/ci is not authorized to perform: ecs:CreateCluster"),
        "{stderr}"
    );
    // A session policy narrows the session further.
    let narrowed = ok_json(
        &as_user(
            &berth,
            &alice,
            &[
                "sts",
                "assume-role",
                "--role-arn",
                &role_arn,
                "--role-session-name",
                "narrow",
                "--policy",
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecs:Describe*","Resource":"*"}]}"#,
            ],
        ),
        "assume with a session policy",
    );
    let stderr = assert_cli_error(
        &as_session(&berth, &session_env(&narrowed), &["ecs", "list-clusters"]),
        "AccessDeniedException",
        &[],
    );
    assert!(
        stderr.contains("because no session policy allows the ecs:ListClusters action"),
        "{stderr}"
    );
    // A wrong session token is refused.
    let mut forged = env.clone();
    forged[2].1 = "forged".into();
    assert_cli_error(
        &as_session(&berth, &forged, &["ecs", "list-clusters"]),
        "UnrecognizedClientException",
        &[],
    );

    // Expiry: move the session's end into the past in the store, then it is refused.
    berth.terminate();
    let db = berth.data_dir().join("berth.db");
    let key_id = env[0].1.clone();
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(berth_e2e::PY_BODY_TEXT.to_string()
            + "import sqlite3,sys,json\n\
             c=sqlite3.connect(sys.argv[1])\n\
             (body,)=c.execute(\"SELECT body FROM records WHERE kind='sts/session' AND id=?\",(sys.argv[2],)).fetchone()\n\
             b=json.loads(body_text(body)); b['expires_ms']=1000\n\
             c.execute(\"UPDATE records SET body=? WHERE kind='sts/session' AND id=?\",(json.dumps(b),sys.argv[2])); c.commit()",
        )
        .arg(&db)
        .arg(&key_id)
        .output()
        .expect("run python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    berth.start_again();
    let stderr = assert_cli_error(
        &as_session(&berth, &env, &["ecs", "list-clusters"]),
        "ExpiredTokenException",
        &[],
    );
    assert!(
        stderr.contains("The security token included in the request is expired"),
        "{stderr}"
    );
    assert_cli_error(
        &as_session(&berth, &env, &["sts", "get-caller-identity"]),
        "ExpiredToken",
        &[],
    );
}

#[test]
fn ecs_service_linked_role_is_created_protected_and_deleted_when_unused() {
    let berth = BerthServer::start();
    let account = berth.account_id().to_string();
    let name = "AWSServiceRoleForECS";
    // The account's first cluster brings ECS's service-linked role, as on AWS.
    berth.aws_cli_json(REGION, &["ecs", "create-cluster", "--cluster-name", "slr"]);
    let role = berth.aws_cli_json(REGION, &["iam", "get-role", "--role-name", name]);
    assert_eq!(
        role["Role"]["Arn"],
        format!("arn:aws:iam::{account}:role/aws-service-role/ecs.amazonaws.com/{name}"),
        "{role}"
    );
    let attached = berth.aws_cli_json(
        REGION,
        &["iam", "list-attached-role-policies", "--role-name", name],
    );
    assert_eq!(
        attached["AttachedPolicies"][0]["PolicyArn"],
        "arn:aws:iam::aws:policy/aws-service-role/AmazonECSServiceRolePolicy"
    );
    // Only AWS may change it.
    for args in [
        vec!["iam", "delete-role", "--role-name", name],
        vec![
            "iam",
            "detach-role-policy",
            "--role-name",
            name,
            "--policy-arn",
            "arn:aws:iam::aws:policy/aws-service-role/AmazonECSServiceRolePolicy",
        ],
        vec![
            "iam",
            "update-assume-role-policy",
            "--role-name",
            name,
            "--policy-document",
            TRUST_ECS_TASKS,
        ],
    ] {
        let msg = berth.aws_cli_error(REGION, &args, "UnmodifiableEntity");
        assert!(
            msg.contains(&format!("protected role '{name}'")),
            "{args:?}: {msg}"
        );
    }
    let slr = ["iam", "create-service-linked-role", "--aws-service-name"];
    let msg = berth.aws_cli_error(
        REGION,
        &[&slr[..], &["ecs.amazonaws.com"]].concat(),
        "InvalidInput",
    );
    assert!(msg.contains("has been taken in this account"), "{msg}");
    berth.aws_cli_error(
        REGION,
        &[&slr[..], &["nope.amazonaws.com"]].concat(),
        "InvalidInput",
    );
    // Deleting it fails while a cluster uses it, and names the cluster.
    let delete = ["iam", "delete-service-linked-role", "--role-name", name];
    let task = berth.aws_cli_json(REGION, &delete)["DeletionTaskId"]
        .as_str()
        .unwrap()
        .to_string();
    let status = |task: &str| {
        berth.aws_cli_json(
            REGION,
            &[
                "iam",
                "get-service-linked-role-deletion-status",
                "--deletion-task-id",
                task,
            ],
        )
    };
    let failed = status(&task);
    assert_eq!(failed["Status"], "FAILED", "{failed}");
    assert_eq!(
        failed["Reason"]["RoleUsageList"][0]["Resources"][0],
        format!("arn:aws:ecs:{REGION}:{account}:cluster/slr"),
        "{failed}"
    );
    // Once the cluster is gone, it goes.
    berth.aws_cli_json(REGION, &["ecs", "delete-cluster", "--cluster", "slr"]);
    let task = berth.aws_cli_json(REGION, &delete)["DeletionTaskId"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(status(&task)["Status"], "SUCCEEDED");
    berth.aws_cli_error(
        REGION,
        &["iam", "get-role", "--role-name", name],
        "NoSuchEntity",
    );
    let created = berth.aws_cli_json(REGION, &[&slr[..], &["ecs.amazonaws.com"]].concat());
    assert_eq!(created["Role"]["RoleName"], name, "{created}");
}
