//! `aws logs tail` (AWS CLI v2 only) against `berth server`: the events of a group's streams
//! in time order, `--format short`, `--filter-pattern`, `--log-stream-name-prefix`,
//! `--since`, and `--follow` printing events put after it started (it polls FilterLogEvents).
//!
//! The CLI v2 comes from `BERTH_AWS_CLI_V2` or the bundle `scripts/test` unpacks.

// Tests fail by panicking: unwrap/expect are the intended failure mode here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use berth_e2e::{BerthServer, REGION, unique_name};
use serde_json::json;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn put(berth: &BerthServer, group: &str, stream: &str, events: &[(i64, &str)]) {
    let events: Vec<_> = events
        .iter()
        .map(|(t, m)| json!({"timestamp": t, "message": m}))
        .collect();
    let events = serde_json::Value::Array(events).to_string();
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
            &events,
        ],
    );
}

/// `aws logs tail <args>` through the CLI v2; its stdout lines.
fn tail(berth: &BerthServer, args: &[&str]) -> Vec<String> {
    let mut all = vec!["logs", "tail"];
    all.extend_from_slice(args);
    let out = berth
        .aws_cli_v2_command(REGION, &all)
        .output()
        .expect("run the AWS CLI v2");
    assert!(
        out.status.success(),
        "aws {all:?} failed with {}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

#[test]
fn logs_tail_and_follow_through_the_cli_v2() {
    let berth = BerthServer::builder().subcommand("server").start();
    let group = format!("/ecs/{}", unique_name("tail"));
    berth.aws_cli_json(
        REGION,
        &["logs", "create-log-group", "--log-group-name", &group],
    );
    for stream in ["web/app/1", "worker/app/2"] {
        berth.aws_cli_json(
            REGION,
            &[
                "logs",
                "create-log-stream",
                "--log-group-name",
                &group,
                "--log-stream-name",
                stream,
            ],
        );
    }
    let t = now_ms() - 60_000;
    put(
        &berth,
        &group,
        "web/app/1",
        &[(t, "GET / 200"), (t + 2_000, "ERROR boom")],
    );
    put(
        &berth,
        &group,
        "worker/app/2",
        &[(t + 1_000, "job started")],
    );
    // An event older than --since: left out.
    put(
        &berth,
        &group,
        "worker/app/2",
        &[(t - 3 * 3_600_000, "ancient")],
    );

    let lines = tail(&berth, &[&group, "--since", "1h"]);
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert!(lines[0].ends_with(" web/app/1 GET / 200"), "{lines:?}");
    assert!(lines[1].ends_with(" worker/app/2 job started"), "{lines:?}");
    assert!(lines[2].ends_with(" web/app/1 ERROR boom"), "{lines:?}");
    assert_eq!(tail(&berth, &[&group, "--since", "1d"]).len(), 4);

    let short = tail(&berth, &[&group, "--since", "1h", "--format", "short"]);
    assert!(
        short[0].ends_with(" GET / 200") && !short[0].contains("web/app/1"),
        "{short:?}"
    );
    let errors = tail(
        &berth,
        &[&group, "--since", "1h", "--filter-pattern", "ERROR"],
    );
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].ends_with("ERROR boom"));
    let worker = tail(
        &berth,
        &[
            &group,
            "--since",
            "1h",
            "--log-stream-name-prefix",
            "worker/",
        ],
    );
    assert_eq!(worker.len(), 1, "{worker:?}");
    assert!(worker[0].ends_with("job started"));

    // --follow: what is there, then what arrives (the CLI polls every few seconds).
    let dir = tempfile::tempdir().unwrap();
    let out_path = dir.path().join("follow.out");
    let mut follow = berth
        .aws_cli_v2_command(
            REGION,
            &["logs", "tail", &group, "--since", "1h", "--follow"],
        )
        .stdout(fs::File::create(&out_path).unwrap())
        .stderr(Stdio::null())
        .spawn()
        .expect("run aws logs tail --follow");
    let wait_for = |what: &str| {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = fs::read_to_string(&out_path).unwrap_or_default();
            if text.contains(what) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "`aws logs tail --follow` did not print {what:?}; printed:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    wait_for("ERROR boom");
    put(
        &berth,
        &group,
        "worker/app/2",
        &[(now_ms(), "arrived while following")],
    );
    let text = wait_for("arrived while following");
    let _ = follow.kill();
    let _ = follow.wait();
    let followed: Vec<&str> = text.lines().collect();
    assert_eq!(followed.len(), 4, "each event once: {followed:?}");
    assert!(followed[3].ends_with(" worker/app/2 arrived while following"));
}
