//! Cost of one authorisation decision: a user with 10 attached policies of 5 statements each
//! (wildcard actions and resources, a condition in every statement), evaluated for one ECS
//! call. Prints nanoseconds per decision for an allowed and a denied request.
//!
//! ```sh
//! cargo bench -p berth-iam --bench evaluate
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::hint::black_box;
use std::time::Instant;

use berth_iam::policy::PolicyKind;
use berth_iam::{Policy, PolicySet, Principal, RequestContext, evaluate};

fn policies() -> Vec<Policy> {
    (0..10)
        .map(|i| {
            let statements: Vec<String> = (0..5)
                .map(|j| {
                    let action = if i == 9 && j == 4 {
                        "ecs:Describe*".to_string()
                    } else {
                        format!("service{i}:Action{j}*")
                    };
                    format!(
                        r#"{{"Effect":"Allow","Action":["{action}","logs:Get*"],"Resource":"arn:aws:ecs:*:123456789012:cluster/team{i}-*",
                            "Condition":{{"StringEquals":{{"aws:RequestedRegion":["us-east-1","eu-west-1"]}},"IpAddress":{{"aws:SourceIp":"127.0.0.0/8"}}}}}}"#
                    )
                })
                .collect();
            Policy::parse(
                &format!(r#"{{"Version":"2012-10-17","Statement":[{}]}}"#, statements.join(",")),
                PolicyKind::Identity,
            )
            .unwrap()
        })
        .collect()
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("run with: cargo bench -p berth-iam --bench evaluate");
        return;
    }
    let ps = policies();
    let who = Principal::User {
        arn: "arn:aws:iam::123456789012:user/alice".into(),
        account: "123456789012".into(),
    };
    let set = PolicySet {
        identity: &ps,
        ..Default::default()
    };
    let ctx = |cluster: &str| {
        RequestContext::new(
            "ecs:DescribeClusters",
            format!("arn:aws:ecs:us-east-1:123456789012:cluster/{cluster}"),
        )
        .with("aws:RequestedRegion", "us-east-1")
        .with("aws:SourceIp", "127.0.0.1")
        .with("aws:username", "alice")
    };
    let allowed = ctx("team9-web");
    let denied = ctx("other");
    assert!(evaluate(&who, &set, &allowed).allowed());
    assert!(!evaluate(&who, &set, &denied).allowed());
    println!("| request | decisions | ns per decision |");
    println!("|---|---:|---:|");
    for (name, req) in [
        ("allowed (last statement matches)", &allowed),
        ("denied (nothing matches)", &denied),
    ] {
        let n = 200_000;
        let start = Instant::now();
        for _ in 0..n {
            black_box(evaluate(black_box(&who), black_box(&set), black_box(req)));
        }
        let ns = start.elapsed().as_nanos() as f64 / n as f64;
        println!("| {name} | {n} | {ns:.0} |");
    }
}
