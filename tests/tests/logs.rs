//! CloudWatch Logs end to end through the `aws logs` CLI: log groups (tags, retention,
//! prefixes and patterns), streams (ordering, paging), PutLogEvents' batch rules,
//! GetLogEvents' tokens, FilterLogEvents' patterns and paging, what `aws logs tail` asks,
//! regional isolation and reset.

use std::time::{SystemTime, UNIX_EPOCH};

use berth_e2e::{ACCOUNT_ID, BerthServer, REGION};
use serde_json::{Value, json};

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn group_arn(name: &str) -> String {
    format!("arn:aws:logs:{REGION}:{ACCOUNT_ID}:log-group:{name}")
}

/// The messages of a GetLogEvents / FilterLogEvents answer.
fn messages(v: &Value) -> Vec<String> {
    v["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events in {v}"))
        .iter()
        .map(|e| e["message"].as_str().unwrap_or_default().to_string())
        .collect()
}

/// `--log-events` as a JSON file the CLI reads (`file://`), for batches of any size.
fn events_file(dir: &tempfile::TempDir, name: &str, events: &[(i64, String)]) -> String {
    let path = dir.path().join(name);
    let body: Vec<Value> = events
        .iter()
        .map(|(t, m)| json!({"timestamp": t, "message": m}))
        .collect();
    let bytes = serde_json::to_vec(&body).unwrap_or_else(|e| panic!("encode events: {e}"));
    std::fs::write(&path, bytes).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    format!("file://{}", path.display())
}

fn put(berth: &BerthServer, group: &str, stream: &str, events: &[(i64, &str)]) -> Value {
    let body: Vec<Value> = events
        .iter()
        .map(|(t, m)| json!({"timestamp": t, "message": m}))
        .collect();
    let body = serde_json::to_string(&body).unwrap_or_else(|e| panic!("encode events: {e}"));
    berth.aws_cli_json(
        REGION,
        &[
            "logs",
            "put-log-events",
            "--log-group-name",
            group,
            "--log-stream-name",
            stream,
            "--log-events",
            &body,
        ],
    )
}

#[test]
fn log_groups_through_the_cli() {
    let berth = BerthServer::start();
    let cli = |args: &[&str]| berth.aws_cli_json(REGION, args);
    cli(&[
        "logs",
        "create-log-group",
        "--log-group-name",
        "/ecs/web",
        "--tags",
        "team=blue,env=test",
    ]);
    cli(&["logs", "create-log-group", "--log-group-name", "/ecs/api"]);
    cli(&[
        "logs",
        "create-log-group",
        "--log-group-name",
        "/lambda/Thumbnails",
    ]);
    berth.aws_cli_error(
        REGION,
        &["logs", "create-log-group", "--log-group-name", "/ecs/web"],
        "ResourceAlreadyExistsException",
    );
    let bad = berth.aws_cli_error(
        REGION,
        &["logs", "create-log-group", "--log-group-name", "no spaces"],
        "InvalidParameterException",
    );
    assert!(bad.contains("regular expression pattern"), "{bad}");

    let d = cli(&[
        "logs",
        "describe-log-groups",
        "--log-group-name-prefix",
        "/ecs/",
    ]);
    let groups = d["logGroups"].as_array().unwrap();
    let names: Vec<&str> = groups
        .iter()
        .map(|g| g["logGroupName"].as_str().unwrap())
        .collect();
    assert_eq!(names, vec!["/ecs/api", "/ecs/web"]);
    let web = &groups[1];
    assert_eq!(web["arn"], format!("{}:*", group_arn("/ecs/web")).as_str());
    assert_eq!(web["logGroupArn"], group_arn("/ecs/web").as_str());
    assert_eq!(web["storedBytes"], 0);
    assert_eq!(web["metricFilterCount"], 0);
    assert_eq!(web["logGroupClass"], "STANDARD");
    assert!(web["creationTime"].as_i64().unwrap() > 1_600_000_000_000);
    assert!(web.get("retentionInDays").is_none());

    // Patterns are case-insensitive substrings; prefix and pattern exclude each other.
    let d = cli(&[
        "logs",
        "describe-log-groups",
        "--log-group-name-pattern",
        "thumb",
    ]);
    assert_eq!(d["logGroups"][0]["logGroupName"], "/lambda/Thumbnails");
    berth.aws_cli_error(
        REGION,
        &[
            "logs",
            "describe-log-groups",
            "--log-group-name-pattern",
            "a",
            "--log-group-name-prefix",
            "/",
        ],
        "InvalidParameterException",
    );
    // Paging: one group a page, the CLI follows nextToken.
    let d = cli(&["logs", "describe-log-groups", "--page-size", "1"]);
    assert_eq!(d["logGroups"].as_array().unwrap().len(), 3);
    let one = cli(&["logs", "describe-log-groups", "--max-items", "1"]);
    assert_eq!(one["logGroups"].as_array().unwrap().len(), 1);
    assert!(one["NextToken"].is_string(), "{one}");
    berth.aws_cli_error(
        REGION,
        &[
            "logs",
            "describe-log-groups",
            "--limit",
            "51",
            "--no-paginate",
        ],
        "InvalidParameterException",
    );

    // Retention: AWS's values only.
    cli(&[
        "logs",
        "put-retention-policy",
        "--log-group-name",
        "/ecs/web",
        "--retention-in-days",
        "7",
    ]);
    let d = cli(&[
        "logs",
        "describe-log-groups",
        "--log-group-name-prefix",
        "/ecs/web",
    ]);
    assert_eq!(d["logGroups"][0]["retentionInDays"], 7);
    let bad = berth.aws_cli_error(
        REGION,
        &[
            "logs",
            "put-retention-policy",
            "--log-group-name",
            "/ecs/web",
            "--retention-in-days",
            "2",
        ],
        "InvalidParameterException",
    );
    assert!(bad.contains("enum value set"), "{bad}");
    berth.aws_cli_error(
        REGION,
        &[
            "logs",
            "put-retention-policy",
            "--log-group-name",
            "/missing",
            "--retention-in-days",
            "7",
        ],
        "ResourceNotFoundException",
    );
    cli(&[
        "logs",
        "delete-retention-policy",
        "--log-group-name",
        "/ecs/web",
    ]);
    let d = cli(&[
        "logs",
        "describe-log-groups",
        "--log-group-name-prefix",
        "/ecs/web",
    ]);
    assert!(d["logGroups"][0].get("retentionInDays").is_none());

    // Tags, by ARN and by the older by-name operations.
    let arn = group_arn("/ecs/web");
    let t = cli(&["logs", "list-tags-for-resource", "--resource-arn", &arn]);
    assert_eq!(t["tags"], json!({"team": "blue", "env": "test"}));
    cli(&[
        "logs",
        "tag-resource",
        "--resource-arn",
        &arn,
        "--tags",
        "owner=ops",
    ]);
    cli(&[
        "logs",
        "untag-resource",
        "--resource-arn",
        &arn,
        "--tag-keys",
        "env",
    ]);
    let t = cli(&[
        "logs",
        "list-tags-log-group",
        "--log-group-name",
        "/ecs/web",
    ]);
    assert_eq!(t["tags"], json!({"team": "blue", "owner": "ops"}));
    cli(&[
        "logs",
        "tag-log-group",
        "--log-group-name",
        "/ecs/api",
        "--tags",
        "a=1",
    ]);
    let t = cli(&[
        "logs",
        "list-tags-for-resource",
        "--resource-arn",
        &group_arn("/ecs/api"),
    ]);
    assert_eq!(t["tags"], json!({"a": "1"}));
    berth.aws_cli_error(
        REGION,
        &[
            "logs",
            "tag-resource",
            "--resource-arn",
            &arn,
            "--tags",
            "aws:reserved=x",
        ],
        "InvalidParameterException",
    );
    berth.aws_cli_error(
        REGION,
        &[
            "logs",
            "list-tags-for-resource",
            "--resource-arn",
            &group_arn("/missing"),
        ],
        "ResourceNotFoundException",
    );

    // Delete, then it is gone; regions do not see each other's groups.
    cli(&["logs", "delete-log-group", "--log-group-name", "/ecs/api"]);
    berth.aws_cli_error(
        REGION,
        &["logs", "delete-log-group", "--log-group-name", "/ecs/api"],
        "ResourceNotFoundException",
    );
    let west = berth.aws_cli_json("eu-west-1", &["logs", "describe-log-groups"]);
    assert_eq!(west["logGroups"], json!([]));
    berth.reset();
    let d = cli(&["logs", "describe-log-groups"]);
    assert_eq!(d["logGroups"], json!([]));
}

#[test]
fn streams_and_events_through_the_cli() {
    let berth = BerthServer::start();
    let cli = |args: &[&str]| berth.aws_cli_json(REGION, args);
    let g = "/ecs/app";
    cli(&["logs", "create-log-group", "--log-group-name", g]);
    for s in ["web/web/aaa", "web/web/bbb", "worker/worker/ccc"] {
        cli(&[
            "logs",
            "create-log-stream",
            "--log-group-name",
            g,
            "--log-stream-name",
            s,
        ]);
    }
    berth.aws_cli_error(
        REGION,
        &[
            "logs",
            "create-log-stream",
            "--log-group-name",
            g,
            "--log-stream-name",
            "web/web/aaa",
        ],
        "ResourceAlreadyExistsException",
    );
    berth.aws_cli_error(
        REGION,
        &[
            "logs",
            "create-log-stream",
            "--log-group-name",
            "/missing",
            "--log-stream-name",
            "s",
        ],
        "ResourceNotFoundException",
    );
    berth.aws_cli_error(
        REGION,
        &[
            "logs",
            "create-log-stream",
            "--log-group-name",
            g,
            "--log-stream-name",
            "a:b",
        ],
        "InvalidParameterException",
    );

    let t = now_ms() - 60_000;
    let r = put(
        &berth,
        g,
        "web/web/aaa",
        &[
            (t, "GET /index.html 200"),
            (t + 1, "ERROR database timeout"),
            (t + 2, r#"{"level":"error","latency":250,"path":"/api"}"#),
            (t + 3, r#"{"level":"info","latency":12,"path":"/health"}"#),
        ],
    );
    assert!(r["nextSequenceToken"].is_string(), "{r}");
    assert!(r.get("rejectedLogEventsInfo").is_none(), "{r}");
    put(
        &berth,
        g,
        "web/web/bbb",
        &[
            (t + 10, "WARN disk almost full"),
            (t + 11, "ERROR disk full"),
        ],
    );
    put(&berth, g, "worker/worker/ccc", &[(t + 5, "job done")]);

    // The sequence token is accepted and ignored, as AWS does now.
    let r = berth.aws_cli_json(
        REGION,
        &[
            "logs",
            "put-log-events",
            "--log-group-name",
            g,
            "--log-stream-name",
            "worker/worker/ccc",
            "--sequence-token",
            "12345",
            "--log-events",
            &format!("timestamp={},message=second job", t + 6),
        ],
    );
    assert!(r["nextSequenceToken"].is_string());

    // Too new, too old: reported, the rest kept.
    let r = put(
        &berth,
        g,
        "worker/worker/ccc",
        &[
            (now_ms() - 15 * 86_400_000, "too old"),
            (t + 7, "kept"),
            (now_ms() + 3 * 3_600_000, "too new"),
        ],
    );
    assert_eq!(r["rejectedLogEventsInfo"]["tooOldLogEventEndIndex"], 0);
    assert_eq!(r["rejectedLogEventsInfo"]["tooNewLogEventStartIndex"], 2);
    // Out of order: refused whole.
    let e = berth.aws_cli_error(
        REGION,
        &[
            "logs",
            "put-log-events",
            "--log-group-name",
            g,
            "--log-stream-name",
            "worker/worker/ccc",
            "--log-events",
            &format!(
                r#"[{{"timestamp":{},"message":"b"}},{{"timestamp":{},"message":"a"}}]"#,
                t + 9,
                t + 8
            ),
        ],
        "InvalidParameterException",
    );
    assert!(e.contains("chronological"), "{e}");
    berth.aws_cli_error(
        REGION,
        &[
            "logs",
            "put-log-events",
            "--log-group-name",
            g,
            "--log-stream-name",
            "nope",
            "--log-events",
            &format!("timestamp={t},message=x"),
        ],
        "ResourceNotFoundException",
    );

    // GetLogEvents: from the head, paged forward with f/ tokens; the end repeats its token.
    let args = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = [
            "logs",
            "get-log-events",
            "--log-group-name",
            g,
            "--log-stream-name",
            "web/web/aaa",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    let run = |extra: &[&str]| -> Value {
        let a = args(extra);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        berth.aws_cli_json(REGION, &a)
    };
    let p1 = run(&["--start-from-head", "--limit", "3"]);
    assert_eq!(
        messages(&p1)[..2],
        ["GET /index.html 200", "ERROR database timeout"]
    );
    assert!(p1["events"][0]["ingestionTime"].is_i64());
    let fwd = p1["nextForwardToken"].as_str().unwrap().to_string();
    assert!(fwd.starts_with("f/"), "{fwd}");
    assert!(p1["nextBackwardToken"].as_str().unwrap().starts_with("b/"));
    let p2 = run(&["--start-from-head", "--limit", "3", "--next-token", &fwd]);
    assert_eq!(messages(&p2).len(), 1);
    let end_token = p2["nextForwardToken"].as_str().unwrap().to_string();
    let p3 = run(&["--limit", "3", "--next-token", &end_token]);
    assert!(messages(&p3).is_empty());
    assert_eq!(p3["nextForwardToken"], end_token.as_str());
    // Without startFromHead: the newest events.
    let tail = run(&["--limit", "1"]);
    assert!(messages(&tail)[0].contains("/health"));
    // A time window.
    let window = run(&[
        "--start-time",
        &(t + 1).to_string(),
        "--end-time",
        &(t + 2).to_string(),
        "--start-from-head",
    ]);
    assert_eq!(messages(&window), vec!["ERROR database timeout"]);

    // DescribeLogStreams: by last event time, newest first; a prefix needs name order.
    let d = cli(&[
        "logs",
        "describe-log-streams",
        "--log-group-name",
        g,
        "--order-by",
        "LastEventTime",
        "--descending",
    ]);
    let names: Vec<&str> = d["logStreams"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["logStreamName"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["web/web/bbb", "worker/worker/ccc", "web/web/aaa"]
    );
    let s0 = &d["logStreams"][0];
    assert_eq!(s0["firstEventTimestamp"], t + 10);
    assert_eq!(s0["lastEventTimestamp"], t + 11);
    assert!(s0["lastIngestionTime"].is_i64());
    assert_eq!(
        s0["arn"],
        format!("{}:log-stream:web/web/bbb", group_arn(g)).as_str()
    );
    let d = cli(&[
        "logs",
        "describe-log-streams",
        "--log-group-name",
        g,
        "--log-stream-name-prefix",
        "web/",
        "--page-size",
        "1",
    ]);
    assert_eq!(d["logStreams"].as_array().unwrap().len(), 2);
    berth.aws_cli_error(
        REGION,
        &[
            "logs",
            "describe-log-streams",
            "--log-group-name",
            g,
            "--log-stream-name-prefix",
            "web/",
            "--order-by",
            "LastEventTime",
        ],
        "InvalidParameterException",
    );

    // FilterLogEvents: CloudWatch's pattern syntax, across streams in time order.
    let filter = |pattern: &str, extra: &[&str]| -> Vec<String> {
        let mut a = vec![
            "logs",
            "filter-log-events",
            "--log-group-name",
            g,
            "--filter-pattern",
            pattern,
        ];
        a.extend_from_slice(extra);
        messages(&berth.aws_cli_json(REGION, &a))
    };
    assert_eq!(
        filter("ERROR", &[]),
        vec!["ERROR database timeout", "ERROR disk full"]
    );
    assert_eq!(filter("\"disk full\"", &[]), vec!["ERROR disk full"]);
    assert_eq!(
        filter("?WARN ?timeout", &[]),
        vec!["ERROR database timeout", "WARN disk almost full"]
    );
    assert_eq!(filter("ERROR -database", &[]), vec!["ERROR disk full"]);
    assert_eq!(
        filter(r#"{ $.level = "error" }"#, &[]),
        vec![r#"{"level":"error","latency":250,"path":"/api"}"#]
    );
    assert_eq!(filter("{ $.latency > 100 }", &[]).len(), 1);
    assert_eq!(
        filter(r#"{ $.latency < 100 || $.path = "/api" }"#, &[]).len(),
        2
    );
    assert_eq!(
        filter(r#"{ $.latency > 10 && $.level = "info" }"#, &[]).len(),
        1
    );
    assert_eq!(
        filter("ERROR", &["--log-stream-names", "web/web/bbb"]),
        vec!["ERROR disk full"]
    );
    assert_eq!(
        filter("job", &["--log-stream-name-prefix", "worker/"]),
        vec!["job done", "second job"]
    );
    let all = filter("", &[]);
    assert_eq!(all.len(), 9, "{all:?}");
    let windowed = filter(
        "",
        &[
            "--start-time",
            &(t + 5).to_string(),
            "--end-time",
            &(t + 9).to_string(),
        ],
    );
    assert_eq!(windowed, vec!["job done", "second job", "kept"]);
    berth.aws_cli_error(
        REGION,
        &[
            "logs",
            "filter-log-events",
            "--log-group-name",
            g,
            "--filter-pattern",
            "{ $.level = }",
        ],
        "InvalidParameterException",
    );
    let ev = berth.aws_cli_json(
        REGION,
        &[
            "logs",
            "filter-log-events",
            "--log-group-name",
            g,
            "--filter-pattern",
            "\"disk full\"",
        ],
    );
    let e0 = &ev["events"][0];
    assert_eq!(e0["logStreamName"], "web/web/bbb");
    assert!(e0["eventId"].as_str().unwrap().len() >= 56);
    assert_eq!(ev["searchedLogStreams"], json!([]));

    // What `aws logs tail GROUP` (CLI v2) sends: FilterLogEvents with a start time and
    // interleaved, following nextToken; printed as the tail command prints.
    let since = (t - 1000).to_string();
    let tailed = berth.aws_cli_json(
        REGION,
        &[
            "logs",
            "filter-log-events",
            "--log-group-name",
            g,
            "--start-time",
            &since,
            "--interleaved",
            "--page-size",
            "3",
        ],
    );
    for e in tailed["events"].as_array().unwrap() {
        println!(
            "{} {} {}",
            e["timestamp"],
            e["logStreamName"].as_str().unwrap(),
            e["message"].as_str().unwrap()
        );
    }
    assert_eq!(messages(&tailed), all);

    // Deleting a stream drops its events; deleting the group drops everything.
    cli(&[
        "logs",
        "delete-log-stream",
        "--log-group-name",
        g,
        "--log-stream-name",
        "web/web/bbb",
    ]);
    assert_eq!(filter("ERROR", &[]), vec!["ERROR database timeout"]);
    berth.aws_cli_error(
        REGION,
        &[
            "logs",
            "delete-log-stream",
            "--log-group-name",
            g,
            "--log-stream-name",
            "web/web/bbb",
        ],
        "ResourceNotFoundException",
    );
    let d = cli(&["logs", "describe-log-groups", "--log-group-name-prefix", g]);
    assert!(d["logGroups"][0]["storedBytes"].as_i64().unwrap() > 0);
    cli(&["logs", "delete-log-group", "--log-group-name", g]);
    berth.aws_cli_error(
        REGION,
        &[
            "logs",
            "get-log-events",
            "--log-group-name",
            g,
            "--log-stream-name",
            "web/web/aaa",
        ],
        "ResourceNotFoundException",
    );
}

#[test]
fn large_batches_and_paging_through_everything() {
    let berth = BerthServer::start();
    let dir = tempfile::tempdir().unwrap();
    let g = "bulk";
    berth.aws_cli_json(REGION, &["logs", "create-log-group", "--log-group-name", g]);
    berth.aws_cli_json(
        REGION,
        &[
            "logs",
            "create-log-stream",
            "--log-group-name",
            g,
            "--log-stream-name",
            "s",
        ],
    );
    let t = now_ms() - 3_600_000;
    let mut expected = Vec::new();
    for batch in 0..2 {
        let events: Vec<(i64, String)> = (0..10_000)
            .map(|i| {
                let n = batch * 10_000 + i;
                (t + n / 10, format!("line {n:05}"))
            })
            .collect();
        expected.extend(events.iter().map(|(_, m)| m.clone()));
        let file = events_file(&dir, &format!("batch{batch}.json"), &events);
        let r = berth.aws_cli_json(
            REGION,
            &[
                "logs",
                "put-log-events",
                "--log-group-name",
                g,
                "--log-stream-name",
                "s",
                "--log-events",
                &file,
            ],
        );
        assert!(r.get("rejectedLogEventsInfo").is_none(), "{r}");
    }
    // 10,001 events, and a batch over 1,048,576 bytes, are refused.
    let too_many: Vec<(i64, String)> = (0..10_001).map(|i| (t, format!("x{i}"))).collect();
    let file = events_file(&dir, "too-many.json", &too_many);
    berth.aws_cli_error(
        REGION,
        &[
            "logs",
            "put-log-events",
            "--log-group-name",
            g,
            "--log-stream-name",
            "s",
            "--log-events",
            &file,
        ],
        "InvalidParameterException",
    );
    let big: Vec<(i64, String)> = (0..5).map(|_| (t, "y".repeat(210_000))).collect();
    let file = events_file(&dir, "too-big.json", &big);
    let e = berth.aws_cli_error(
        REGION,
        &[
            "logs",
            "put-log-events",
            "--log-group-name",
            g,
            "--log-stream-name",
            "s",
            "--log-events",
            &file,
        ],
        "InvalidParameterException",
    );
    assert!(e.contains("Upload too large"), "{e}");

    // GetLogEvents forward through everything, 10,000 at a time, until the token repeats.
    let mut got = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut args = vec![
            "logs",
            "get-log-events",
            "--log-group-name",
            g,
            "--log-stream-name",
            "s",
            "--start-from-head",
        ];
        if let Some(tok) = &token {
            args.push("--next-token");
            args.push(tok);
        }
        let page = berth.aws_cli_json(REGION, &args);
        let next = page["nextForwardToken"].as_str().unwrap().to_string();
        got.extend(messages(&page));
        pages += 1;
        if token.as_deref() == Some(next.as_str()) {
            break;
        }
        token = Some(next);
        assert!(pages < 10, "GetLogEvents never repeated its token");
    }
    assert_eq!(got.len(), expected.len());
    assert_eq!(got, expected);
    // FilterLogEvents through the CLI's paginator.
    let all = berth.aws_cli_json(
        REGION,
        &[
            "logs",
            "filter-log-events",
            "--log-group-name",
            g,
            "--filter-pattern",
            "\"line 1\"",
            "--page-size",
            "4000",
        ],
    );
    assert_eq!(messages(&all).len(), 10_000);
}
