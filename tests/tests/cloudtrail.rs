//! CloudTrail's event history through the `aws` CLI against `berth up`: a Fargate RunTask (a
//! real container) and a failed RunTask are found by event name, by user, by access key and
//! by resource name; an IAM user's denied call is found under its name; a failed call
//! carries its errorCode and errorMessage; LookupEvents pages
//! and refuses bad lookups as CloudTrail does; no secret (environment values of a task
//! definition and of RunTask's overrides, the root key's secret, log event messages) appears
//! in any event; events survive a clean restart.
//!
//! Needs root, runc and busybox-static (CI has them); skips with a message when not root.

// Tests fail by panicking: unwrap/expect are the intended failure mode here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use berth_e2e::{
    BerthServer, REGION, RawRequest, SigningParams, busybox_image_tar, containers_or_skip,
    random_string, unique_name,
};
use serde_json::{Value, json};

const TARGET: &str = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101";

/// `aws cloudtrail lookup-events <args>` (the CLI follows NextToken through every page).
fn lookup(berth: &BerthServer, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["cloudtrail", "lookup-events"];
    all.extend_from_slice(args);
    let out = berth.aws_cli_json(REGION, &all);
    out["Events"].as_array().cloned().unwrap_or_default()
}

fn by(berth: &BerthServer, key: &str, value: &str) -> Vec<Value> {
    let attribute = format!("AttributeKey={key},AttributeValue={value}");
    lookup(berth, &["--lookup-attributes", &attribute])
}

/// Polls until `f` finds what it wants (events are stored off the request's path).
fn eventually<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "not recorded in time: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn record(event: &Value) -> Value {
    serde_json::from_str(event["CloudTrailEvent"].as_str().unwrap()).unwrap()
}

fn ids(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["EventId"].as_str().unwrap().to_owned())
        .collect()
}

/// A LookupEvents call sent as is, signed by root for the `cloudtrail` service.
fn lookup_raw(berth: &BerthServer, body: Value) -> berth_e2e::RawResponse {
    let req = RawRequest::new("POST", "/")
        .header("Content-Type", "application/x-amz-json-1.1")
        .header("X-Amz-Target", &format!("{TARGET}.LookupEvents"))
        .body(body.to_string())
        .sign(
            &berth.host(),
            &SigningParams::ecs(berth.access_key_id(), berth.secret_access_key(), REGION)
                .service("cloudtrail"),
        );
    berth.raw(&req)
}

#[test]
fn api_calls_are_recorded_and_looked_up() {
    if !containers_or_skip("api_calls_are_recorded_and_looked_up") {
        return;
    }
    let mut berth = BerthServer::start();
    berth.load_image(&busybox_image_tar());
    let network = berth.cli_network();
    let cluster = unique_name("trail");
    let family = unique_name("trail-td");
    let td_secret = format!("td-secret-{}", random_string(b"abcdefghij", 16));
    let override_secret = format!("override-secret-{}", random_string(b"abcdefghij", 16));
    let log_secret = format!("log-secret-{}", random_string(b"abcdefghij", 16));

    berth.aws_cli_json(
        REGION,
        &["ecs", "create-cluster", "--cluster-name", &cluster],
    );
    let containers = json!([{
        "name": "app",
        "image": "busybox:latest",
        "command": ["true"],
        "environment": [{"name": "DB_PASSWORD", "value": td_secret}],
    }])
    .to_string();
    berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "register-task-definition",
            "--family",
            &family,
            "--requires-compatibilities",
            "FARGATE",
            "--network-mode",
            "awsvpc",
            "--cpu",
            "256",
            "--memory",
            "512",
            "--container-definitions",
            &containers,
        ],
    );
    let overrides = json!({"containerOverrides": [{
        "name": "app",
        "environment": [{"name": "API_TOKEN", "value": override_secret}],
    }]})
    .to_string();
    let run = berth.aws_cli_json(
        REGION,
        &[
            "ecs",
            "run-task",
            "--cluster",
            &cluster,
            "--task-definition",
            &family,
            "--launch-type",
            "FARGATE",
            "--network-configuration",
            &network,
            "--overrides",
            &overrides,
        ],
    );
    let task_arn = run["tasks"][0]["taskArn"].as_str().unwrap().to_owned();
    // A call that fails, and one to another service.
    let missing = unique_name("missing");
    berth.aws_cli_error(
        REGION,
        &[
            "ecs",
            "run-task",
            "--cluster",
            &missing,
            "--task-definition",
            &family,
            "--launch-type",
            "FARGATE",
            "--network-configuration",
            &network,
        ],
        "ClusterNotFoundException",
    );
    let group = format!("/trail/{}", unique_name("g"));
    berth.aws_cli_json(
        REGION,
        &["logs", "create-log-group", "--log-group-name", &group],
    );
    berth.aws_cli_json(
        REGION,
        &[
            "logs",
            "create-log-stream",
            "--log-group-name",
            &group,
            "--log-stream-name",
            "s",
        ],
    );
    let log_events = json!([{"timestamp": 1_000 * std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs(), "message": log_secret}])
    .to_string();
    berth.aws_cli_json(
        REGION,
        &[
            "logs",
            "put-log-events",
            "--log-group-name",
            &group,
            "--log-stream-name",
            "s",
            "--log-events",
            &log_events,
        ],
    );

    // By event name: both RunTasks, newest first, the failed one with its error.
    let run_tasks = eventually("both RunTask calls", || {
        let found = by(&berth, "EventName", "RunTask");
        (found.len() == 2).then_some(found)
    });
    let failed = record(&run_tasks[0]);
    assert_eq!(failed["errorCode"], "ClusterNotFoundException", "{failed}");
    assert!(
        !failed["errorMessage"].as_str().unwrap().is_empty(),
        "{failed}"
    );
    assert!(failed["responseElements"].is_null());
    let ok_event = &run_tasks[1];
    let ok = record(ok_event);
    assert_eq!(ok_event["EventName"], "RunTask");
    assert_eq!(ok_event["EventSource"], "ecs.amazonaws.com");
    assert_eq!(ok_event["Username"], "root");
    assert_eq!(ok_event["ReadOnly"], "false");
    assert_eq!(ok_event["AccessKeyId"], berth.access_key_id());
    assert!(ok.get("errorCode").is_none(), "{ok}");
    assert_eq!(ok["eventVersion"], "1.09");
    assert_eq!(ok["eventType"], "AwsApiCall");
    assert_eq!(ok["eventSource"], "ecs.amazonaws.com");
    assert_eq!(ok["eventName"], "RunTask");
    assert_eq!(ok["awsRegion"], REGION);
    assert_eq!(ok["sourceIPAddress"], "127.0.0.1");
    assert!(
        ok["userAgent"].as_str().unwrap().contains("aws-cli"),
        "{ok}"
    );
    assert_eq!(ok["userIdentity"]["type"], "Root");
    assert_eq!(ok["userIdentity"]["accountId"], berth.account_id());
    assert_eq!(
        ok["userIdentity"]["arn"],
        format!("arn:aws:iam::{}:root", berth.account_id())
    );
    assert_eq!(ok["userIdentity"]["accessKeyId"], berth.access_key_id());
    assert_eq!(ok["recipientAccountId"], berth.account_id());
    assert_eq!(ok["readOnly"], false);
    assert_eq!(ok["managementEvent"], true);
    assert_eq!(ok["eventID"], ok_event["EventId"]);
    assert!(!ok["requestID"].as_str().unwrap().is_empty());
    assert_eq!(ok["requestParameters"]["cluster"], cluster.as_str());
    assert_eq!(
        ok["requestParameters"]["overrides"]["containerOverrides"][0]["environment"][0]["name"],
        "API_TOKEN"
    );
    assert_eq!(
        ok["requestParameters"]["overrides"]["containerOverrides"][0]["environment"][0]["value"],
        "HIDDEN_DUE_TO_SECURITY_REASONS"
    );
    assert_eq!(
        ok["responseElements"]["tasks"][0]["taskArn"],
        task_arn.as_str()
    );
    let resources: Vec<(String, String)> = ok_event["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["ResourceType"].as_str().unwrap().to_owned(),
                r["ResourceName"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for wanted in [
        ("AWS::ECS::Cluster", cluster.as_str()),
        ("AWS::ECS::TaskDefinition", family.as_str()),
        ("AWS::ECS::Task", task_arn.as_str()),
    ] {
        assert!(
            resources
                .iter()
                .any(|(t, n)| t == wanted.0 && n == wanted.1),
            "{wanted:?} not in {resources:?}"
        );
    }
    let run_id = ok_event["EventId"].as_str().unwrap().to_owned();

    // By user, access key, resource, source, id and read-only.
    let root_events = ids(&by(&berth, "Username", "root"));
    assert!(root_events.contains(&run_id));
    assert!(ids(&by(&berth, "AccessKeyId", berth.access_key_id())).contains(&run_id));
    assert!(by(&berth, "Username", "alice").is_empty());
    assert_eq!(
        ids(&by(&berth, "ResourceName", &task_arn)),
        vec![run_id.clone()]
    );
    let on_cluster: Vec<String> = by(&berth, "ResourceName", &cluster)
        .iter()
        .map(|e| e["EventName"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(on_cluster, vec!["RunTask", "CreateCluster"]);
    assert!(ids(&by(&berth, "ResourceType", "AWS::ECS::Task")).contains(&run_id));
    assert_eq!(ids(&by(&berth, "EventId", &run_id)), vec![run_id.clone()]);
    let logs: Vec<String> = by(&berth, "EventSource", "logs.amazonaws.com")
        .iter()
        .map(|e| e["EventName"].as_str().unwrap().to_owned())
        .collect();
    // PutLogEvents is a data event: not in the event history.
    assert_eq!(logs, vec!["CreateLogStream", "CreateLogGroup"]);
    let reads = by(&berth, "ReadOnly", "true");
    assert!(
        reads.iter().all(|e| e["ReadOnly"] == "true")
            && reads.iter().any(|e| e["EventName"] == "LookupEvents"),
        "LookupEvents calls are read-only events themselves"
    );
    let lookup_record = record(
        reads
            .iter()
            .find(|e| e["EventName"] == "LookupEvents")
            .unwrap(),
    );
    assert_eq!(lookup_record["eventSource"], "cloudtrail.amazonaws.com");
    assert!(lookup_record["responseElements"].is_null());

    // Paging: two events a page; the CLI's own pages and tokens, then by hand.
    let everything = lookup(&berth, &[]);
    assert!(everything.len() >= 8, "{}", everything.len());
    let paged = lookup(&berth, &["--page-size", "2"]);
    let first = berth.aws_cli_json(
        REGION,
        &[
            "cloudtrail",
            "lookup-events",
            "--page-size",
            "2",
            "--max-items",
            "3",
        ],
    );
    assert_eq!(first["Events"].as_array().unwrap().len(), 3);
    let token = first["NextToken"].as_str().unwrap().to_owned();
    let rest = berth.aws_cli_json(
        REGION,
        &[
            "cloudtrail",
            "lookup-events",
            "--page-size",
            "2",
            "--starting-token",
            &token,
        ],
    );
    let mut joined = ids(first["Events"].as_array().unwrap());
    joined.extend(ids(rest["Events"].as_array().unwrap()));
    // Later lookups add events at the head only; a page sequence never repeats or skips one.
    let expected: Vec<String> = ids(&paged);
    assert!(
        joined.ends_with(&expected),
        "paged {expected:?}\njoined {joined:?}"
    );
    let mut unique = joined.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), joined.len(), "a page repeated an event");
    let page = lookup_raw(&berth, json!({"MaxResults": 2}));
    assert_eq!(page.status, 200, "{}", page.text());
    let token = page.json()["NextToken"].as_str().unwrap().to_owned();
    let other = lookup_raw(
        &berth,
        json!({"MaxResults": 2, "NextToken": token,
               "LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "RunTask"}]}),
    );
    assert_eq!(other.status, 400);
    assert_eq!(
        other.error_code().as_deref(),
        Some("InvalidNextTokenException")
    );

    // CloudTrail's validation errors.
    berth.aws_cli_error(
        REGION,
        &[
            "cloudtrail",
            "lookup-events",
            "--lookup-attributes",
            "AttributeKey=EventName,AttributeValue=RunTask",
            "AttributeKey=Username,AttributeValue=root",
        ],
        "InvalidLookupAttributesException",
    );
    berth.aws_cli_error(
        REGION,
        &[
            "cloudtrail",
            "lookup-events",
            "--start-time",
            "2026-01-02T00:00:00Z",
            "--end-time",
            "2026-01-01T00:00:00Z",
        ],
        "InvalidTimeRangeException",
    );
    let too_many = lookup_raw(&berth, json!({"MaxResults": 51}));
    assert_eq!(
        too_many.error_code().as_deref(),
        Some("InvalidMaxResultsException")
    );
    // A time range selects: nothing before the server started.
    assert!(lookup(&berth, &["--end-time", "2001-01-01T00:00:00Z"]).is_empty());

    // An IAM user without permissions: its denied call is recorded under its name.
    let user = unique_name("alice");
    berth.aws_cli_json(REGION, &["iam", "create-user", "--user-name", &user]);
    let key = berth.aws_cli_json(REGION, &["iam", "create-access-key", "--user-name", &user]);
    let user_key = key["AccessKey"]["AccessKeyId"].as_str().unwrap().to_owned();
    let user_secret = key["AccessKey"]["SecretAccessKey"]
        .as_str()
        .unwrap()
        .to_owned();
    let denied = berth
        .aws_cli_command(REGION, &["ecs", "list-clusters"])
        .env("AWS_ACCESS_KEY_ID", &user_key)
        .env("AWS_SECRET_ACCESS_KEY", &user_secret)
        .output()
        .unwrap();
    berth_e2e::assert_cli_error(&denied, "AccessDeniedException", &["ecs", "list-clusters"]);
    let by_user = eventually("the IAM user's denied call", || {
        let found = by(&berth, "Username", &user);
        (!found.is_empty()).then_some(found)
    });
    assert_eq!(by_user[0]["EventName"], "ListClusters");
    assert_eq!(by_user[0]["AccessKeyId"], user_key.as_str());
    let denied_record = record(&by_user[0]);
    assert_eq!(denied_record["errorCode"], "AccessDeniedException");
    assert_eq!(denied_record["userIdentity"]["type"], "IAMUser");
    assert_eq!(denied_record["userIdentity"]["userName"], user.as_str());
    let iam_events: Vec<String> = by(&berth, "EventSource", "iam.amazonaws.com")
        .iter()
        .map(|e| e["EventName"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(iam_events, vec!["CreateAccessKey", "CreateUser"]);

    // No secret anywhere in any event, before or after a clean restart.
    let assert_no_secret = |berth: &BerthServer| {
        let all = lookup(berth, &[]);
        let text = serde_json::to_string(&all).unwrap();
        for secret in [
            td_secret.as_str(),
            override_secret.as_str(),
            log_secret.as_str(),
            user_secret.as_str(),
            berth.secret_access_key(),
        ] {
            assert!(!text.contains(secret), "a secret is recorded: {secret}");
        }
        all
    };
    let before = assert_no_secret(&berth);
    berth.terminate();
    berth.start_again();
    let after = assert_no_secret(&berth);
    let before_ids = ids(&before);
    assert!(
        ids(&after).ends_with(&before_ids),
        "events were lost across a clean restart"
    );
}
