//! Authorisation of every call: the caller's IAM policies evaluated (with `berth-iam`) for
//! the action and the resource ARNs that AWS's service authorization reference gives the
//! operation, with the global condition keys the gateway knows.
//!
//! The account's root user is never limited, as on AWS. Everyone else needs an `Allow` for
//! `service:Operation` on each resource the call touches, and no `Deny`.
//!
//! A caller's policies are loaded once and cached per access key until IAM changes (every
//! IAM write bumps a generation) or for at most [`CACHE_TTL`].

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use berth_iam::policy::PolicyKind;
use berth_iam::{Decision, Policy, PolicySet, Principal, RequestContext as Request};
use berth_store::{Store, Tx};
use berth_wire::{AwsError, RequestContext};
use serde_json::Value;

use crate::failure::Failure;
use crate::iam::entities::{StoredGroup, StoredRole, StoredUser, kind};
use crate::iam::{common, policies, users};

/// What one call asks for, before policies are consulted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Call {
    /// `ecs:RunTask`, `iam:CreateUser`, …
    pub action: String,
    /// The ARNs the call touches (`*` for actions without a resource).
    pub resources: Vec<String>,
    /// Service-specific condition keys (`ecs:cluster`, `aws:RequestTag/…`, `aws:TagKeys`).
    pub keys: Vec<(String, Vec<String>)>,
}

/// How a denial is phrased on the wire: the JSON services' `AccessDeniedException` (400) or
/// the query services' `AccessDenied` (403).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Json,
    Query,
}

/// Everything the evaluator needs of the caller.
pub struct Caller {
    pub principal: Principal,
    pub identity: Vec<Policy>,
    pub boundary: Option<Policy>,
    /// Session policies of a role session.
    pub session: Vec<Policy>,
    pub tags: Vec<(String, String)>,
    pub user_name: Option<String>,
    pub user_id: Option<String>,
}

fn parse(doc: &str) -> Option<Policy> {
    // Stored documents were validated when written; one that no longer parses grants nothing.
    Policy::parse(doc, PolicyKind::Identity).ok()
}

/// Loads the caller's policies: inline and attached, its groups', and its boundary. `None`
/// for the root user (no policy applies).
pub fn caller(store: &Store, ctx: &RequestContext) -> Result<Option<Caller>, Failure> {
    if ctx.principal_arn == crate::accounts::root_arn(&ctx.account_id) {
        return Ok(None);
    }
    store.read(|tx| caller_in(tx, ctx))
}

/// The policies of a user, role or group, in evaluation form.
fn entity_policies(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    p: &crate::iam::entities::Policies,
    out: &mut Vec<Policy>,
) -> Result<(), Failure> {
    out.extend(p.inline.values().filter_map(|d| parse(d)));
    for arn in &p.attached {
        if let Some(d) = policies::default_document(tx, ctx, arn)? {
            out.extend(parse(&d));
        }
    }
    Ok(())
}

fn boundary_of(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    b: Option<&berth_wire::iam::shapes::AttachedPermissionsBoundary>,
) -> Result<Option<Policy>, Failure> {
    match b.and_then(|b| b.permissions_boundary_arn.as_deref()) {
        Some(arn) => Ok(policies::default_document(tx, ctx, arn)?.and_then(|d| parse(&d))),
        None => Ok(None),
    }
}

/// [`caller`] within a transaction (root included: it then gets a caller with every right
/// decided by the evaluator's root rule).
pub fn caller_in(tx: &Tx<'_>, ctx: &RequestContext) -> Result<Option<Caller>, Failure> {
    let scope = common::scope(ctx);
    if ctx.principal_arn == crate::accounts::root_arn(&ctx.account_id) {
        return Ok(None);
    }
    let mut caller = Caller {
        principal: Principal::User {
            arn: ctx.principal_arn.clone(),
            account: ctx.account_id.clone(),
        },
        identity: Vec::new(),
        boundary: None,
        session: Vec::new(),
        tags: Vec::new(),
        user_name: None,
        user_id: None,
    };
    if ctx.access_key_id.starts_with("ASIA") {
        // A role session: the role's policies, narrowed by the session's.
        let Some(session) = crate::sts::session(tx, &ctx.account_id, &ctx.access_key_id)? else {
            return Ok(Some(caller));
        };
        caller.principal = Principal::AssumedRole {
            session_arn: session.session_arn.clone(),
            role_arn: session.role_arn.clone(),
            account: ctx.account_id.clone(),
        };
        caller.user_id = Some(crate::sts::session_user_id(&session));
        caller.session = session.policies.iter().filter_map(|d| parse(d)).collect();
        if let Some((role, _)) =
            tx.get_json::<StoredRole>(scope, kind::ROLE, &common::key(&session.role_name))?
        {
            entity_policies(tx, ctx, &role.policies, &mut caller.identity)?;
            caller.boundary = boundary_of(tx, ctx, role.role.permissions_boundary.as_ref())?;
            caller.tags = role
                .role
                .tags
                .iter()
                .flatten()
                .map(|t| (t.key.clone(), t.value.clone()))
                .collect();
        }
        caller.tags.extend(session.tags.iter().cloned());
        return Ok(Some(caller));
    }
    let Some(name) = users::user_name_of(&ctx.principal_arn) else {
        // A principal Berth keeps no policies for: it is allowed nothing.
        return Ok(Some(caller));
    };
    caller.user_name = Some(name.to_string());
    let Some((user, _)) = tx.get_json::<StoredUser>(scope, kind::USER, &common::key(name))? else {
        return Ok(Some(caller));
    };
    entity_policies(tx, ctx, &user.policies, &mut caller.identity)?;
    for g in &user.groups {
        if let Some((group, _)) = tx.get_json::<StoredGroup>(scope, kind::GROUP, g)? {
            entity_policies(tx, ctx, &group.policies, &mut caller.identity)?;
        }
    }
    caller.boundary = boundary_of(tx, ctx, user.user.permissions_boundary.as_ref())?;
    caller.tags = user
        .user
        .tags
        .iter()
        .flatten()
        .map(|t| (t.key.clone(), t.value.clone()))
        .collect();
    caller.user_id = Some(user.user.user_id.clone());
    Ok(Some(caller))
}

/// `aws:CurrentTime` as IAM writes it.
fn iso_time(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

/// The request context of one resource of a call.
pub fn request(ctx: &RequestContext, caller: &Caller, call: &Call, resource: &str) -> Request {
    let mut r = Request::new(call.action.as_str(), resource);
    r.set("aws:SourceIp", ctx.source_ip.as_str())
        .set("aws:CurrentTime", iso_time(ctx.now.millis()))
        .set("aws:EpochTime", ctx.now.seconds().to_string())
        .set("aws:SecureTransport", "false")
        .set("aws:PrincipalArn", ctx.principal_arn.as_str())
        .set("aws:PrincipalAccount", ctx.account_id.as_str())
        .set(
            "aws:PrincipalType",
            match caller.principal {
                Principal::AssumedRole { .. } => "AssumedRole",
                _ => "User",
            },
        )
        .set("aws:RequestedRegion", ctx.region.as_str())
        .set("aws:UserAgent", ctx.user_agent.as_str());
    if let Some(n) = &caller.user_name {
        r.set("aws:username", n.as_str());
    }
    if let Some(id) = &caller.user_id {
        r.set("aws:userid", id.as_str());
    }
    for (k, v) in &caller.tags {
        r.set(&format!("aws:PrincipalTag/{k}"), v.as_str());
    }
    for (k, vs) in &call.keys {
        if vs.len() == 1 && !k.eq_ignore_ascii_case("aws:TagKeys") {
            r.set(k, vs[0].as_str());
        } else {
            r.set_multi(k, vs.clone());
        }
    }
    r
}

/// Decides a call for a caller; the first resource denied ends it.
pub fn decide(
    ctx: &RequestContext,
    caller: &Caller,
    call: &Call,
    dialect: Dialect,
) -> Result<(), AwsError> {
    let set = PolicySet {
        identity: &caller.identity,
        resource: None,
        boundary: caller.boundary.as_ref(),
        session: &caller.session,
    };
    for resource in &call.resources {
        let req = request(ctx, caller, call, resource);
        let d = berth_iam::evaluate(&caller.principal, &set, &req);
        if d != Decision::Allow {
            let message = d.message(&caller.principal, &req).unwrap_or_default();
            return Err(match dialect {
                Dialect::Json => AwsError::new("AccessDeniedException", 400, message),
                Dialect::Query => AwsError::new("AccessDenied", 403, message),
            });
        }
    }
    Ok(())
}

/// Bumped by every IAM write: cached callers older than the current generation are loaded
/// again, so a policy change applies to the very next call.
static IAM_GENERATION: AtomicU64 = AtomicU64::new(0);

/// How long a cached caller is trusted at most, whatever the generation says (bounds the
/// staleness when several servers share one store and another one changed IAM).
const CACHE_TTL: Duration = Duration::from_secs(5);

/// Callers are cached per access key; beyond this many entries the cache starts afresh.
const CACHE_MAX: usize = 10_000;

struct Cached {
    generation: u64,
    loaded: Instant,
    caller: Arc<Caller>,
}

static CACHE: LazyLock<Mutex<HashMap<String, Cached>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// Records that IAM state changed (users, groups, roles, policies, attachments).
pub fn iam_changed() {
    IAM_GENERATION.fetch_add(1, Ordering::SeqCst);
}

/// The caller of a request, from the cache when it is current.
fn cached_caller(store: &Store, ctx: &RequestContext) -> Result<Option<Arc<Caller>>, Failure> {
    if ctx.principal_arn == crate::accounts::root_arn(&ctx.account_id) {
        return Ok(None);
    }
    let generation = IAM_GENERATION.load(Ordering::SeqCst);
    if let Ok(cache) = CACHE.lock()
        && let Some(c) = cache.get(&ctx.access_key_id)
        && c.generation == generation
        && c.loaded.elapsed() < CACHE_TTL
    {
        return Ok(Some(c.caller.clone()));
    }
    let Some(caller) = caller(store, ctx)? else {
        return Ok(None);
    };
    let caller = Arc::new(caller);
    if let Ok(mut cache) = CACHE.lock() {
        if cache.len() >= CACHE_MAX {
            cache.clear();
        }
        cache.insert(
            ctx.access_key_id.clone(),
            Cached {
                generation,
                loaded: Instant::now(),
                caller: caller.clone(),
            },
        );
    }
    Ok(Some(caller))
}

/// Authorises a call: root passes, everyone else is evaluated.
pub fn authorize(
    store: &Store,
    ctx: &RequestContext,
    call: &Call,
    dialect: Dialect,
) -> Result<(), AwsError> {
    let caller = cached_caller(store, ctx).map_err(|e| e.into_aws(|m| AwsError::internal(m)))?;
    match caller {
        None => Ok(()),
        Some(c) => decide(ctx, &c, call, dialect),
    }
}

// ----- what each operation touches -----

fn ecs_arn(ctx: &RequestContext, resource: &str) -> String {
    format!("arn:aws:ecs:{}:{}:{resource}", ctx.region, ctx.account_id)
}

/// A cluster named by name or ARN, as its ARN (`default` when absent).
fn cluster_arn(ctx: &RequestContext, v: Option<&Value>) -> String {
    match v.and_then(Value::as_str) {
        Some(a) if a.starts_with("arn:") => a.to_string(),
        Some(n) => ecs_arn(ctx, &format!("cluster/{n}")),
        None => ecs_arn(ctx, "cluster/default"),
    }
}

fn strs(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        Some(Value::String(s)) => vec![s.clone()],
        _ => Vec::new(),
    }
}

/// The tags a request carries (`tags` of ECS shapes, `tags` map of Logs), as request keys.
fn tag_keys(input: &Value) -> Vec<(String, Vec<String>)> {
    let mut tags = BTreeMap::new();
    match input.get("tags") {
        Some(Value::Array(a)) => {
            for t in a {
                if let Some(k) = t.get("key").and_then(Value::as_str) {
                    let v = t.get("value").and_then(Value::as_str).unwrap_or("");
                    tags.insert(k.to_string(), v.to_string());
                }
            }
        }
        Some(Value::Object(m)) => {
            for (k, v) in m {
                tags.insert(k.clone(), v.as_str().unwrap_or("").to_string());
            }
        }
        _ => {}
    }
    if tags.is_empty() {
        return Vec::new();
    }
    let mut out: Vec<(String, Vec<String>)> = tags
        .iter()
        .map(|(k, v)| (format!("aws:RequestTag/{k}"), vec![v.clone()]))
        .collect();
    out.push(("aws:TagKeys".into(), tags.into_keys().collect()));
    out
}

/// An ECS call: the resources of the service authorization reference, and `ecs:cluster`.
pub fn ecs_call(ctx: &RequestContext, operation: &str, input: &Value) -> Call {
    let cluster = cluster_arn(ctx, input.get("cluster"));
    let task_arn = |t: &str| {
        if t.starts_with("arn:") {
            t.to_string()
        } else {
            let name = cluster.rsplit('/').next().unwrap_or("default");
            ecs_arn(ctx, &format!("task/{name}/{t}"))
        }
    };
    let mut keys = tag_keys(input);
    let resources = match operation {
        "DescribeClusters" => {
            let c = strs(input.get("clusters"));
            if c.is_empty() {
                vec![ecs_arn(ctx, "cluster/default")]
            } else {
                c.iter()
                    .map(|c| cluster_arn(ctx, Some(&Value::String(c.clone()))))
                    .collect()
            }
        }
        "DeleteCluster"
        | "UpdateCluster"
        | "UpdateClusterSettings"
        | "PutClusterCapacityProviders"
        | "ListContainerInstances"
        | "DescribeContainerInstances"
        | "RegisterContainerInstance"
        | "DeregisterContainerInstance"
        | "UpdateContainerInstancesState"
        | "SubmitTaskStateChange"
        | "SubmitContainerStateChange"
        | "SubmitAttachmentStateChanges"
        | "PutAttributes"
        | "DeleteAttributes"
        | "ListAttributes" => vec![cluster.clone()],
        "CreateCluster" => vec![ecs_arn(
            ctx,
            &format!(
                "cluster/{}",
                input
                    .get("clusterName")
                    .and_then(Value::as_str)
                    .unwrap_or("default")
            ),
        )],
        "RunTask" | "StartTask" => {
            let td = input
                .get("taskDefinition")
                .and_then(Value::as_str)
                .unwrap_or("");
            let arn = if td.starts_with("arn:") {
                td.to_string()
            } else if td.contains(':') {
                ecs_arn(ctx, &format!("task-definition/{td}"))
            } else {
                ecs_arn(ctx, &format!("task-definition/{td}:*"))
            };
            keys.push(("ecs:cluster".into(), vec![cluster.clone()]));
            vec![arn]
        }
        "StopTask" => {
            keys.push(("ecs:cluster".into(), vec![cluster.clone()]));
            vec![task_arn(
                input.get("task").and_then(Value::as_str).unwrap_or(""),
            )]
        }
        "DescribeTasks" => {
            keys.push(("ecs:cluster".into(), vec![cluster.clone()]));
            strs(input.get("tasks"))
                .iter()
                .map(|t| task_arn(t))
                .collect()
        }
        "ListTasks" | "ListServices" | "DescribeServices" | "CreateService" | "UpdateService"
        | "DeleteService" => {
            keys.push(("ecs:cluster".into(), vec![cluster.clone()]));
            vec!["*".into()]
        }
        "TagResource" | "UntagResource" | "ListTagsForResource" => {
            vec![
                input
                    .get("resourceArn")
                    .and_then(Value::as_str)
                    .unwrap_or("*")
                    .to_string(),
            ]
        }
        _ => vec!["*".into()],
    };
    Call {
        action: format!("ecs:{operation}"),
        resources: if resources.is_empty() {
            vec!["*".into()]
        } else {
            resources
        },
        keys,
    }
}

/// The `iam:PassRole` checks a call implies: registering a task definition that names task
/// or execution roles, or running a task whose overrides name them, passes those roles to
/// ECS (`iam:PassedToService` is `ecs-tasks.amazonaws.com`).
pub fn pass_role_calls(operation: &str, input: &Value) -> Vec<Call> {
    let holder = match operation {
        "RegisterTaskDefinition" => Some(input),
        "RunTask" | "StartTask" => input.get("overrides"),
        _ => None,
    };
    let Some(h) = holder else {
        return Vec::new();
    };
    ["taskRoleArn", "executionRoleArn"]
        .iter()
        .filter_map(|k| h.get(*k).and_then(Value::as_str))
        .filter(|r| !r.is_empty())
        .map(|role| Call {
            action: "iam:PassRole".into(),
            resources: vec![role.to_string()],
            keys: vec![(
                "iam:PassedToService".into(),
                vec!["ecs-tasks.amazonaws.com".into()],
            )],
        })
        .collect()
}

/// A CloudWatch Logs call: its log group (and stream) ARN where it names one.
pub fn logs_call(ctx: &RequestContext, operation: &str, input: &Value) -> Call {
    let group = input
        .get("logGroupName")
        .and_then(Value::as_str)
        .or_else(|| input.get("logGroupIdentifier").and_then(Value::as_str));
    let resource = match (group, input.get("logStreamName").and_then(Value::as_str)) {
        (Some(g), _) if g.starts_with("arn:") => g.to_string(),
        (Some(g), Some(s))
            if operation.contains("LogEvents") || operation.contains("LogStream") =>
        {
            format!(
                "arn:aws:logs:{}:{}:log-group:{g}:log-stream:{s}",
                ctx.region, ctx.account_id
            )
        }
        (Some(g), _) => format!(
            "arn:aws:logs:{}:{}:log-group:{g}:*",
            ctx.region, ctx.account_id
        ),
        (None, _) => input
            .get("resourceArn")
            .and_then(Value::as_str)
            .unwrap_or("*")
            .to_string(),
    };
    Call {
        action: format!("logs:{operation}"),
        resources: vec![resource],
        keys: tag_keys(input),
    }
}

/// A query-protocol call (IAM, STS): the entity the form names.
pub fn query_call(
    ctx: &RequestContext,
    service: &str,
    operation: &str,
    get: impl Fn(&str) -> Option<String>,
) -> Call {
    let iam = |kind: &str, name: String| format!("arn:aws:iam::{}:{kind}/{name}", ctx.account_id);
    let resource = if service == "iam" {
        if let Some(arn) = get("PolicyArn") {
            arn
        } else if let Some(r) = get("RoleName") {
            iam("role", r)
        } else if let Some(g) = get("GroupName") {
            iam("group", g)
        } else if let Some(u) = get("UserName") {
            iam("user", u)
        } else if let Some(p) = get("InstanceProfileName") {
            iam("instance-profile", p)
        } else if let Some(p) = get("PolicyName") {
            iam("policy", p)
        } else if matches!(operation, "CreateAccessKey" | "ListAccessKeys" | "GetUser") {
            ctx.principal_arn.clone()
        } else {
            "*".into()
        }
    } else if let Some(r) = get("RoleArn") {
        r
    } else {
        "*".into()
    };
    Call {
        action: format!("{service}:{operation}"),
        resources: vec![resource],
        keys: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn caller(policy: &str) -> Caller {
        Caller {
            principal: Principal::User {
                arn: "arn:aws:iam::123456789012:user/alice".into(),
                account: "123456789012".into(),
            },
            identity: vec![Policy::parse(policy, PolicyKind::Identity).unwrap()],
            boundary: None,
            session: Vec::new(),
            tags: vec![("team".into(), "web".into())],
            user_name: Some("alice".into()),
            user_id: Some("AIDAEXAMPLE".into()),
        }
    }

    #[test]
    fn run_task_is_scoped_by_the_cluster_condition() {
        let ctx = crate::test_support::context(1_700_000_000_000);
        let c = caller(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecs:RunTask","Resource":"*",
                "Condition":{"ArnEquals":{"ecs:cluster":"arn:aws:ecs:us-east-1:123456789012:cluster/prod"}}}]}"#,
        );
        let ok = ecs_call(
            &ctx,
            "RunTask",
            &json!({"cluster": "prod", "taskDefinition": "web:1"}),
        );
        assert_eq!(
            ok.resources,
            vec!["arn:aws:ecs:us-east-1:123456789012:task-definition/web:1"]
        );
        assert!(decide(&ctx, &c, &ok, Dialect::Json).is_ok());
        let other = ecs_call(
            &ctx,
            "RunTask",
            &json!({"cluster": "dev", "taskDefinition": "web"}),
        );
        let e = decide(&ctx, &c, &other, Dialect::Json).unwrap_err();
        assert_eq!(e.code, "AccessDeniedException");
        assert_eq!(
            e.message,
            "User: arn:aws:iam::123456789012:user/alice is not authorized to perform: ecs:RunTask on resource: arn:aws:ecs:us-east-1:123456789012:task-definition/web:* because no identity-based policy allows the ecs:RunTask action"
        );
    }

    #[test]
    fn cluster_resources_and_request_tags() {
        let ctx = crate::test_support::context(1_700_000_000_000);
        let c = caller(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ecs:DescribeClusters","Resource":"arn:aws:ecs:*:*:cluster/${aws:PrincipalTag/team}-*"}]}"#,
        );
        let mine = ecs_call(
            &ctx,
            "DescribeClusters",
            &json!({"clusters": ["web-1", "web-2"]}),
        );
        assert!(decide(&ctx, &c, &mine, Dialect::Json).is_ok());
        let mixed = ecs_call(
            &ctx,
            "DescribeClusters",
            &json!({"clusters": ["web-1", "db-1"]}),
        );
        assert!(decide(&ctx, &c, &mixed, Dialect::Json).is_err());
        let tagged = ecs_call(
            &ctx,
            "CreateCluster",
            &json!({"clusterName": "x", "tags": [{"key": "env", "value": "prod"}]}),
        );
        assert!(
            tagged
                .keys
                .contains(&("aws:RequestTag/env".into(), vec!["prod".into()]))
        );
        assert!(
            tagged
                .keys
                .contains(&("aws:TagKeys".into(), vec!["env".into()]))
        );
    }

    #[test]
    fn query_denials_are_403_access_denied() {
        let ctx = crate::test_support::context(1_700_000_000_000);
        let c = caller(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"iam:Get*","Resource":"*"}]}"#,
        );
        let call = query_call(&ctx, "iam", "CreateUser", |k| {
            (k == "UserName").then(|| "bob".to_string())
        });
        assert_eq!(call.resources, vec!["arn:aws:iam::123456789012:user/bob"]);
        let e = decide(&ctx, &c, &call, Dialect::Query).unwrap_err();
        assert_eq!((e.code.as_ref(), e.status), ("AccessDenied", 403));
    }
}
