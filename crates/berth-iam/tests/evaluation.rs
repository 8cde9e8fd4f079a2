//! IAM's evaluation logic, as a table of the cases its documentation walks through, and
//! property tests of its invariants.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use berth_iam::evaluate::{DenyKind, PolicyType};
use berth_iam::policy::PolicyKind;
use berth_iam::{Decision, Policy, PolicySet, Principal, RequestContext, evaluate};
use proptest::prelude::*;

const ACCOUNT: &str = "123456789012";

fn identity(doc: &str) -> Policy {
    Policy::parse(doc, PolicyKind::Identity).expect("valid identity policy")
}

fn resource_policy(doc: &str) -> Policy {
    Policy::parse(doc, PolicyKind::Resource).expect("valid resource policy")
}

fn trust(doc: &str) -> Policy {
    Policy::parse(doc, PolicyKind::Trust).expect("valid trust policy")
}

fn alice() -> Principal {
    Principal::User {
        arn: format!("arn:aws:iam::{ACCOUNT}:user/alice"),
        account: ACCOUNT.into(),
    }
}

fn session() -> Principal {
    Principal::AssumedRole {
        session_arn: format!("arn:aws:sts::{ACCOUNT}:assumed-role/deployer/ci"),
        role_arn: format!("arn:aws:iam::{ACCOUNT}:role/deployer"),
        account: ACCOUNT.into(),
    }
}

fn cluster(name: &str) -> String {
    format!("arn:aws:ecs:us-east-1:{ACCOUNT}:cluster/{name}")
}

fn req(action: &str, resource: &str) -> RequestContext {
    RequestContext::new(action, resource)
        .with("aws:username", "alice")
        .with("aws:SourceIp", "127.0.0.1")
}

fn decide(who: &Principal, set: PolicySet<'_>, ctx: &RequestContext) -> Decision {
    evaluate(who, &set, ctx)
}

const RUN_ON_PROD: &str = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
    "Action":"ecs:RunTask","Resource":"arn:aws:ecs:*:*:cluster/prod"}]}"#;

#[test]
fn an_allow_on_one_cluster_is_not_an_allow_on_another() {
    let p = [identity(RUN_ON_PROD)];
    let set = PolicySet {
        identity: &p,
        ..Default::default()
    };
    assert_eq!(
        decide(&alice(), set, &req("ecs:RunTask", &cluster("prod"))),
        Decision::Allow
    );
    let other = req("ecs:RunTask", &cluster("dev"));
    let d = decide(&alice(), set, &other);
    assert_eq!(d, Decision::Deny(DenyKind::NoAllow(PolicyType::Identity)));
    assert_eq!(
        d.message(&alice(), &other).unwrap(),
        format!(
            "User: arn:aws:iam::{ACCOUNT}:user/alice is not authorized to perform: ecs:RunTask on resource: {} because no identity-based policy allows the ecs:RunTask action",
            cluster("dev")
        )
    );
}

#[test]
fn nothing_attached_is_an_implicit_deny() {
    let d = decide(
        &alice(),
        PolicySet::default(),
        &req("ecs:ListClusters", "*"),
    );
    assert_eq!(d, Decision::Deny(DenyKind::NoAllow(PolicyType::Identity)));
}

#[test]
fn an_explicit_deny_wins_over_any_allow() {
    let p = [
        identity(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#,
        ),
        identity(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"ecs:Delete*","Resource":"*"}]}"#,
        ),
    ];
    let set = PolicySet {
        identity: &p,
        ..Default::default()
    };
    assert!(decide(&alice(), set, &req("ecs:ListClusters", "*")).allowed());
    let del = req("ecs:DeleteCluster", &cluster("prod"));
    let d = decide(&alice(), set, &del);
    assert_eq!(d, Decision::Deny(DenyKind::Explicit(PolicyType::Identity)));
    assert!(
        d.message(&alice(), &del)
            .unwrap()
            .ends_with("with an explicit deny in an identity-based policy")
    );
}

#[test]
fn not_action_and_not_resource() {
    // The documentation's example: everything except IAM.
    let p = [identity(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","NotAction":"iam:*","Resource":"*"}]}"#,
    )];
    let set = PolicySet {
        identity: &p,
        ..Default::default()
    };
    assert!(decide(&alice(), set, &req("ecs:RunTask", &cluster("a"))).allowed());
    assert!(!decide(&alice(), set, &req("iam:CreateUser", "*")).allowed());
    // Deny everything outside one cluster.
    let p = [
        identity(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecs:*","Resource":"*"}]}"#,
        ),
        identity(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"ecs:*","NotResource":"arn:aws:ecs:*:*:cluster/sandbox"}]}"#,
        ),
    ];
    let set = PolicySet {
        identity: &p,
        ..Default::default()
    };
    assert!(decide(&alice(), set, &req("ecs:RunTask", &cluster("sandbox"))).allowed());
    assert_eq!(
        decide(&alice(), set, &req("ecs:RunTask", &cluster("prod"))),
        Decision::Deny(DenyKind::Explicit(PolicyType::Identity))
    );
}

#[test]
fn conditions_gate_statements() {
    let p = [identity(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecs:*","Resource":"*",
            "Condition":{"IpAddress":{"aws:SourceIp":"10.0.0.0/8"}}}]}"#,
    )];
    let set = PolicySet {
        identity: &p,
        ..Default::default()
    };
    assert!(!decide(&alice(), set, &req("ecs:ListClusters", "*")).allowed());
    let inside = RequestContext::new("ecs:ListClusters", "*").with("aws:SourceIp", "10.1.2.3");
    assert!(decide(&alice(), set, &inside).allowed());
    // A deny on a tag condition (ABAC).
    let p = [
        identity(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecs:*","Resource":"*"}]}"#,
        ),
        identity(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"ecs:StopTask","Resource":"*",
                "Condition":{"StringNotEquals":{"ecs:ResourceTag/team":"${aws:PrincipalTag/team}"}}}]}"#,
        ),
    ];
    let set = PolicySet {
        identity: &p,
        ..Default::default()
    };
    let mine = RequestContext::new("ecs:StopTask", "*")
        .with("aws:PrincipalTag/team", "web")
        .with("ecs:ResourceTag/team", "web");
    let theirs = mine.clone().with("ecs:ResourceTag/team", "db");
    assert!(decide(&alice(), set, &mine).allowed());
    assert!(!decide(&alice(), set, &theirs).allowed());
}

#[test]
fn policy_variables_scope_a_user_to_itself() {
    let p = [identity(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
            "Action":["iam:CreateAccessKey","iam:ListAccessKeys"],
            "Resource":"arn:aws:iam::*:user/${aws:username}"}]}"#,
    )];
    let set = PolicySet {
        identity: &p,
        ..Default::default()
    };
    let own = format!("arn:aws:iam::{ACCOUNT}:user/alice");
    let other = format!("arn:aws:iam::{ACCOUNT}:user/bob");
    assert!(decide(&alice(), set, &req("iam:CreateAccessKey", &own)).allowed());
    assert!(!decide(&alice(), set, &req("iam:CreateAccessKey", &other)).allowed());
    // Without the key in the request, the variable matches nothing.
    let anonymous = RequestContext::new("iam:CreateAccessKey", own.as_str());
    assert!(!decide(&alice(), set, &anonymous).allowed());
}

#[test]
fn a_permissions_boundary_caps_what_identity_policies_grant() {
    let p = [identity(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ecs:*","iam:*"],"Resource":"*"}]}"#,
    )];
    let boundary = identity(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["ecs:*","logs:*"],"Resource":"*"}]}"#,
    );
    let set = PolicySet {
        identity: &p,
        boundary: Some(&boundary),
        ..Default::default()
    };
    assert!(decide(&alice(), set, &req("ecs:RunTask", &cluster("a"))).allowed());
    let d = decide(&alice(), set, &req("iam:CreateUser", "*"));
    assert_eq!(d, Decision::Deny(DenyKind::NoAllow(PolicyType::Boundary)));
    // The boundary grants nothing by itself.
    assert_eq!(
        decide(&alice(), set, &req("logs:CreateLogGroup", "*")),
        Decision::Deny(DenyKind::NoAllow(PolicyType::Identity))
    );
}

#[test]
fn session_policies_narrow_a_role_session() {
    let role = [identity(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecs:*","Resource":"*"}]}"#,
    )];
    let sess = [identity(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecs:Describe*","Resource":"*"}]}"#,
    )];
    let set = PolicySet {
        identity: &role,
        session: &sess,
        ..Default::default()
    };
    assert!(decide(&session(), set, &req("ecs:DescribeClusters", "*")).allowed());
    assert_eq!(
        decide(&session(), set, &req("ecs:RunTask", &cluster("a"))),
        Decision::Deny(DenyKind::NoAllow(PolicyType::Session))
    );
}

#[test]
fn resource_policies_in_one_account() {
    let log_group = format!("arn:aws:logs:us-east-1:{ACCOUNT}:log-group:app");
    // Naming the user exactly allows without any identity policy, even past a boundary.
    let by_user = resource_policy(&format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{ACCOUNT}:user/alice"}},"Action":"logs:PutLogEvents","Resource":"*"}}]}}"#
    ));
    let boundary = identity(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecs:*","Resource":"*"}]}"#,
    );
    let set = PolicySet {
        resource: Some(&by_user),
        boundary: Some(&boundary),
        ..Default::default()
    };
    assert!(decide(&alice(), set, &req("logs:PutLogEvents", &log_group)).allowed());
    // Naming the role (not the session) still lets session policies limit it.
    let by_role = resource_policy(&format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{ACCOUNT}:role/deployer"}},"Action":"logs:*","Resource":"*"}}]}}"#
    ));
    let sess = [identity(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecs:*","Resource":"*"}]}"#,
    )];
    let set = PolicySet {
        resource: Some(&by_role),
        session: &sess,
        ..Default::default()
    };
    assert_eq!(
        decide(&session(), set, &req("logs:PutLogEvents", &log_group)),
        Decision::Deny(DenyKind::NoAllow(PolicyType::Session))
    );
    let set = PolicySet {
        resource: Some(&by_role),
        ..Default::default()
    };
    assert!(decide(&session(), set, &req("logs:PutLogEvents", &log_group)).allowed());
    // An explicit deny in the resource policy stops even the root user.
    let deny_all = resource_policy(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Principal":"*","Action":"logs:DeleteLogGroup","Resource":"*"}]}"#,
    );
    let root = Principal::Root {
        account: ACCOUNT.into(),
    };
    let set = PolicySet {
        resource: Some(&deny_all),
        ..Default::default()
    };
    assert_eq!(
        decide(&root, set, &req("logs:DeleteLogGroup", &log_group)),
        Decision::Deny(DenyKind::Explicit(PolicyType::Resource))
    );
    assert!(decide(&root, set, &req("logs:PutLogEvents", &log_group)).allowed());
}

#[test]
fn across_accounts_both_sides_must_allow() {
    let foreign = "arn:aws:logs:us-east-1:999999999999:log-group:shared";
    let id = [identity(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"logs:*","Resource":"*"}]}"#,
    )];
    let set = PolicySet {
        identity: &id,
        ..Default::default()
    };
    assert_eq!(
        decide(&alice(), set, &req("logs:GetLogEvents", foreign)),
        Decision::Deny(DenyKind::NoAllow(PolicyType::Resource))
    );
    let rp = resource_policy(&format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{ACCOUNT}"}},"Action":"logs:GetLogEvents","Resource":"*"}}]}}"#
    ));
    let set = PolicySet {
        identity: &id,
        resource: Some(&rp),
        ..Default::default()
    };
    assert!(decide(&alice(), set, &req("logs:GetLogEvents", foreign)).allowed());
    let set = PolicySet {
        resource: Some(&rp),
        ..Default::default()
    };
    assert_eq!(
        decide(&alice(), set, &req("logs:GetLogEvents", foreign)),
        Decision::Deny(DenyKind::NoAllow(PolicyType::Identity))
    );
}

#[test]
fn assume_role_trust() {
    let role_arn = format!("arn:aws:iam::{ACCOUNT}:role/deployer");
    let ctx = req("sts:AssumeRole", &role_arn);
    // Trusting the account: the caller's own policies must allow sts:AssumeRole.
    let account_trust = trust(&format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{ACCOUNT}:root"}},"Action":"sts:AssumeRole"}}]}}"#
    ));
    let set = PolicySet {
        resource: Some(&account_trust),
        ..Default::default()
    };
    assert_eq!(
        decide(&alice(), set, &ctx),
        Decision::Deny(DenyKind::NoAllow(PolicyType::Identity)),
        "trusting the account delegates to its identity policies"
    );
    let may_assume = [identity(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole","Resource":"*"}]}"#,
    )];
    let set = PolicySet {
        identity: &may_assume,
        resource: Some(&account_trust),
        ..Default::default()
    };
    assert!(decide(&alice(), set, &ctx).allowed());
    // Trusting the user itself needs nothing more.
    let user_trust = trust(&format!(
        r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"arn:aws:iam::{ACCOUNT}:user/alice"}},"Action":"sts:AssumeRole"}}]}}"#
    ));
    let set = PolicySet {
        resource: Some(&user_trust),
        ..Default::default()
    };
    assert!(decide(&alice(), set, &ctx).allowed());
    // Trusting a service only: a user may not assume it.
    let service_trust = trust(
        r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole"}]}"#,
    );
    let set = PolicySet {
        resource: Some(&service_trust),
        ..Default::default()
    };
    assert!(!decide(&alice(), set, &ctx).allowed());
    let ecs_tasks = Principal::Service {
        name: "ecs-tasks.amazonaws.com".into(),
    };
    assert!(decide(&ecs_tasks, set, &ctx).allowed());
}

#[test]
fn the_root_user_is_not_limited_by_identity_policies() {
    let root = Principal::Root {
        account: ACCOUNT.into(),
    };
    assert!(decide(&root, PolicySet::default(), &req("iam:CreateUser", "*")).allowed());
}

// ----- properties -----

fn statement() -> impl Strategy<Value = String> {
    (
        prop::bool::ANY,
        prop::bool::ANY,
        prop::sample::select(vec!["*", "ecs:*", "ecs:RunTask", "ecs:Describe*", "iam:*"]),
        prop::bool::ANY,
        prop::sample::select(vec![
            "*",
            "arn:aws:ecs:*:*:cluster/a",
            "arn:aws:ecs:*:*:cluster/*",
            "arn:aws:ecs:us-east-1:123456789012:cluster/b",
        ]),
    )
        .prop_map(|(deny, not_action, action, not_resource, resource)| {
            format!(
                r#"{{"Effect":"{}","{}":"{}","{}":"{}"}}"#,
                if deny { "Deny" } else { "Allow" },
                if not_action { "NotAction" } else { "Action" },
                action,
                if not_resource {
                    "NotResource"
                } else {
                    "Resource"
                },
                resource
            )
        })
}

fn policies() -> impl Strategy<Value = Vec<Policy>> {
    prop::collection::vec(prop::collection::vec(statement(), 1..4), 0..4).prop_map(|ps| {
        ps.into_iter()
            .map(|ss| {
                identity(&format!(
                    r#"{{"Version":"2012-10-17","Statement":[{}]}}"#,
                    ss.join(",")
                ))
            })
            .collect()
    })
}

fn request() -> impl Strategy<Value = RequestContext> {
    (
        prop::sample::select(vec![
            "ecs:RunTask",
            "ecs:DescribeClusters",
            "iam:CreateUser",
        ]),
        prop::sample::select(vec!["a", "b", "c"]),
    )
        .prop_map(|(a, c)| RequestContext::new(a, cluster(c)))
}

/// The reference for identity policies alone: allowed iff some Allow statement matches and no
/// Deny statement does, with matching written out from the documentation's definitions.
fn oracle(ps: &[Policy], ctx: &RequestContext) -> bool {
    use berth_iam::pattern::{action_matches, resource_matches};
    let matches = |s: &berth_iam::Statement| {
        let a = s
            .action
            .values
            .iter()
            .any(|v| action_matches(v, &ctx.action))
            != s.action.negated;
        let r = s.resource.as_ref().is_some_and(|r| {
            r.values.iter().any(|v| resource_matches(v, &ctx.resource)) != r.negated
        });
        a && r
    };
    let all: Vec<_> = ps.iter().flat_map(|p| &p.statements).collect();
    let deny = all
        .iter()
        .any(|s| s.effect == berth_iam::Effect::Deny && matches(s));
    let allow = all
        .iter()
        .any(|s| s.effect == berth_iam::Effect::Allow && matches(s));
    allow && !deny
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn identity_policies_agree_with_the_definition(ps in policies(), ctx in request()) {
        let set = PolicySet { identity: &ps, ..Default::default() };
        prop_assert_eq!(evaluate(&alice(), &set, &ctx).allowed(), oracle(&ps, &ctx));
    }

    #[test]
    fn a_matching_deny_always_wins(ps in policies(), ctx in request(), place in 0usize..4) {
        let mut ps = ps;
        let deny = identity(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Deny","Action":"*","Resource":"*"}]}"#);
        let at = place.min(ps.len());
        ps.insert(at, deny);
        let boundary = identity(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#);
        for b in [None, Some(&boundary)] {
            let set = PolicySet { identity: &ps, boundary: b, ..Default::default() };
            let d = evaluate(&alice(), &set, &ctx);
            prop_assert_eq!(d, Decision::Deny(DenyKind::Explicit(PolicyType::Identity)));
        }
    }

    #[test]
    fn allows_only_add(ps in policies(), ctx in request()) {
        let before = evaluate(&alice(), &PolicySet { identity: &ps, ..Default::default() }, &ctx);
        let mut more = ps.clone();
        more.push(identity(r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecs:*","Resource":"*"}]}"#));
        let after = evaluate(&alice(), &PolicySet { identity: &more, ..Default::default() }, &ctx);
        prop_assert!(!before.allowed() || after.allowed());
    }

    #[test]
    fn boundaries_and_sessions_only_restrict(ps in policies(), limit in policies(), ctx in request()) {
        let plain = evaluate(&session(), &PolicySet { identity: &ps, ..Default::default() }, &ctx);
        if let Some(b) = limit.first() {
            let bounded = evaluate(&session(), &PolicySet { identity: &ps, boundary: Some(b), ..Default::default() }, &ctx);
            prop_assert!(!bounded.allowed() || plain.allowed());
        }
        let narrowed = evaluate(&session(), &PolicySet { identity: &ps, session: &limit, ..Default::default() }, &ctx);
        prop_assert!(!narrowed.allowed() || plain.allowed());
    }
}
