//! One API call as a CloudTrail event: who (userIdentity), what (eventSource, eventName,
//! requestParameters, responseElements or errorCode/errorMessage), from where, and which
//! resources it named. A pure function of the call and an event id; redaction and resource
//! extraction live in their own modules.

use axum::body::Bytes;
use berth_store::TrailEvent;
use berth_wire::{AwsError, RequestContext};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

use super::{redact, resources, scan};

/// The record format version Berth writes (AWS's current management-event format).
pub const EVENT_VERSION: &str = "1.09";

/// Parameters or elements whose JSON is larger than this are left out of the event, as
/// CloudTrail leaves out oversized ones (an event stays well under CloudTrail's 256 KB).
pub const MAX_ELEMENTS_BYTES: usize = 100 * 1024;

/// An authenticated API call, as the gateway hands it over after dispatch.
#[derive(Debug, Clone)]
pub struct ApiCall {
    /// `ecs.amazonaws.com`, `logs.amazonaws.com`, ...
    pub event_source: &'static str,
    pub operation: String,
    pub ctx: RequestContext,
    /// The request body as sent (AWS JSON).
    pub request: Bytes,
    /// The reply body, or the error the call failed with.
    pub response: Result<Bytes, AwsError>,
}

/// Whether an operation only reads (CloudTrail's `readOnly`), judged by its verb as AWS's
/// own operations are named.
pub fn is_read_only(operation: &str) -> bool {
    const READ_VERBS: &[&str] = &[
        "Describe", "List", "Get", "Lookup", "Filter", "Search", "BatchGet", "Discover",
    ];
    READ_VERBS.iter().any(|v| {
        operation
            .strip_prefix(v)
            .is_some_and(|rest| rest.is_empty() || rest.starts_with(|c: char| c.is_uppercase()))
    })
}

/// What CloudTrail calls the caller: `root`, an IAM user's name, an assumed role's session.
pub fn username(principal_arn: &str) -> String {
    let Some((_, resource)) = split_arn(principal_arn) else {
        return principal_arn.to_string();
    };
    if resource == "root" {
        return "root".into();
    }
    resource.rsplit('/').next().unwrap_or(resource).to_string()
}

/// `(service, resource)` of an `arn:aws:<service>:<region>:<account>:<resource>`.
fn split_arn(arn: &str) -> Option<(&str, &str)> {
    let mut parts = arn.splitn(6, ':');
    let (_, _, service, _, _, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    Some((service, resource))
}

/// A stable stand-in for IAM's unique ids (`AIDA…`, `AROA…`): `prefix` and 17 characters
/// derived from the ARN, the same every time.
fn unique_id(prefix: &str, arn: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    // FNV-1a, twice with different seeds, gives 128 bits to spell 17 characters from.
    let fnv = |seed: u64| {
        arn.bytes().fold(seed, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
        })
    };
    let bits =
        (u128::from(fnv(0xcbf2_9ce4_8422_2325)) << 64) | u128::from(fnv(0x8422_2325_cbf2_9ce4));
    let tail: String = (0..17)
        .map(|i| ALPHABET[((bits >> (i * 5)) & 31) as usize] as char)
        .collect();
    format!("{prefix}{tail}")
}

/// CloudTrail's `userIdentity` of the caller.
pub fn user_identity(ctx: &RequestContext) -> Value {
    let arn = ctx.principal_arn.as_str();
    let account = ctx.account_id.as_str();
    let resource = split_arn(arn).map(|(_, r)| r).unwrap_or("");
    if resource == "root" {
        return json!({
            "type": "Root",
            "principalId": account,
            "arn": arn,
            "accountId": account,
            "accessKeyId": ctx.access_key_id,
        });
    }
    if let Some(rest) = resource.strip_prefix("assumed-role/") {
        let (role, session) = rest.rsplit_once('/').unwrap_or((rest, ""));
        let role_arn = format!("arn:aws:iam::{account}:role/{role}");
        let role_id = unique_id("AROA", &role_arn);
        return json!({
            "type": "AssumedRole",
            "principalId": format!("{role_id}:{session}"),
            "arn": arn,
            "accountId": account,
            "accessKeyId": ctx.access_key_id,
            "sessionContext": {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": role_id,
                    "arn": role_arn,
                    "accountId": account,
                    "userName": role.rsplit('/').next().unwrap_or(role),
                },
                "attributes": { "mfaAuthenticated": "false" },
            },
        });
    }
    if resource.starts_with("user/") {
        return json!({
            "type": "IAMUser",
            "principalId": unique_id("AIDA", arn),
            "arn": arn,
            "accountId": account,
            "accessKeyId": ctx.access_key_id,
            "userName": username(arn),
        });
    }
    json!({
        "type": "AWSService",
        "invokedBy": arn,
        "accountId": account,
    })
}

/// `2026-11-26T07:00:00Z`, as CloudTrail writes eventTime.
pub fn event_time(ms: i64) -> String {
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_default()
}

/// A body as CloudTrail shows it: parsed, redacted; `null` when empty (`{}`), not JSON, or
/// too large.
fn elements(body: &[u8]) -> Value {
    shown(parsed(body))
}

/// A body parsed, if it is JSON and not too large.
fn parsed(body: &[u8]) -> Option<Value> {
    if body.len() > MAX_ELEMENTS_BYTES {
        return None;
    }
    serde_json::from_slice::<Value>(body).ok()
}

/// A parsed body as CloudTrail shows it (see [`elements`]).
fn shown(body: Option<Value>) -> Value {
    match body {
        Some(Value::Object(o)) if o.is_empty() => Value::Null,
        Some(mut v) => {
            redact::redact(&mut v);
            v
        }
        None => Value::Null,
    }
}

/// A write's reply as the event shows it, and the ARNs it names.
enum Reply<'a> {
    /// Nothing in it to redact: the reply's own text, and its ARNs in order.
    AsSent(Box<RawValue>, Vec<&'a str>),
    /// Parsed (and redacted once its ARNs are read).
    Parsed(Option<Value>),
}

/// `body` as [`Reply::AsSent`] when a scan finds nothing in it to redact (and it is a JSON
/// object other than `{}`, not too large), else parsed.
fn reply(body: &[u8]) -> Reply<'_> {
    if body.len() <= MAX_ELEMENTS_BYTES
        && let Ok(text) = std::str::from_utf8(body)
        && text.starts_with('{')
        && text != "{}"
        && let Some(scanned) = scan::scan(text, redact::hides_member)
        && !scanned.hides
        && let Ok(raw) = RawValue::from_string(text.to_string())
    {
        return Reply::AsSent(raw, scanned.arns);
    }
    Reply::Parsed(parsed(body))
}

/// An event as stored, its members in the order CloudTrail's JSON sorts them.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Record<'a> {
    aws_region: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_code: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error_message: Option<&'a str>,
    event_category: &'static str,
    #[serde(rename = "eventID")]
    event_id: &'a str,
    event_name: &'a str,
    event_source: &'a str,
    event_time: String,
    event_type: &'static str,
    event_version: &'static str,
    management_event: bool,
    read_only: bool,
    recipient_account_id: &'a str,
    #[serde(rename = "requestID")]
    request_id: &'a str,
    request_parameters: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    resources: Option<Vec<Value>>,
    response_elements: Elements,
    #[serde(rename = "sourceIPAddress")]
    source_ip_address: &'a str,
    user_agent: &'a str,
    user_identity: Value,
}

/// `responseElements`: the reply as sent, or parsed and redacted.
#[derive(Serialize)]
#[serde(untagged)]
enum Elements {
    AsSent(Box<RawValue>),
    Parsed(Value),
}

/// The CloudTrail event of `call`, ready to store.
pub fn build(call: &ApiCall, event_id: String) -> TrailEvent {
    let ctx = &call.ctx;
    let read_only = is_read_only(&call.operation);
    let request = elements(&call.request);
    // A write's reply, read once: its ARNs are read before it is redacted.
    let reply = match &call.response {
        Ok(body) if !read_only => reply(body),
        _ => Reply::Parsed(None),
    };
    // The resources a call acts on: those its request names, and for a write those its
    // reply names (a read's reply, like a lookup's query, merely mentions resources).
    let mut named = resources::from_request(call.event_source, &request);
    let response = match reply {
        Reply::AsSent(raw, arns) => {
            for arn in arns {
                resources::add_arn(arn, &mut named);
            }
            Elements::AsSent(raw)
        }
        Reply::Parsed(v) => {
            if let Some(v) = &v {
                resources::add_arns(v, &mut named);
            }
            Elements::Parsed(shown(v))
        }
    };
    if call.event_source != "cloudtrail.amazonaws.com" {
        resources::add_arns(&request, &mut named);
    }
    named.truncate(resources::MAX_RESOURCES);
    let resources = (!named.is_empty()).then(|| {
        named
            .iter()
            .map(|r| {
                let mut v = json!({ "type": r.resource_type, "accountId": ctx.account_id });
                let key = if r.name.starts_with("arn:") {
                    "ARN"
                } else {
                    "name"
                };
                v[key] = Value::String(r.name.clone());
                v
            })
            .collect()
    });
    let error = call.response.as_ref().err();
    let record = Record {
        aws_region: &ctx.region,
        error_code: error.map(|e| e.code.as_ref()),
        error_message: error.map(|e| e.message.as_str()),
        event_category: "Management",
        event_id: &event_id,
        event_name: &call.operation,
        event_source: call.event_source,
        event_time: event_time(ctx.now.millis()),
        event_type: "AwsApiCall",
        event_version: EVENT_VERSION,
        management_event: true,
        read_only,
        recipient_account_id: &ctx.account_id,
        request_id: &ctx.request_id,
        request_parameters: &request,
        resources,
        response_elements: response,
        source_ip_address: &ctx.source_ip,
        user_agent: &ctx.user_agent,
        user_identity: user_identity(ctx),
    };
    let body = serde_json::to_string(&record).unwrap_or_else(|_| "{}".into());
    TrailEvent {
        seq: 0,
        account: ctx.account_id.clone(),
        region: ctx.region.clone(),
        event_time_ms: ctx.now.millis(),
        event_id,
        event_name: call.operation.clone(),
        event_source: call.event_source.to_string(),
        read_only,
        username: username(&ctx.principal_arn),
        access_key_id: ctx.access_key_id.clone(),
        resources: named,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(operation: &str, request: &str, response: Result<&str, AwsError>) -> ApiCall {
        ApiCall {
            event_source: "ecs.amazonaws.com",
            operation: operation.into(),
            ctx: crate::test_support::context(1_700_000_000_123),
            request: Bytes::from(request.to_string()),
            response: response.map(|r| Bytes::from(r.to_string())),
        }
    }

    /// A reply with nothing to redact goes in as sent; one with a secret is parsed and
    /// redacted. Either way the event reads the same as a parsed reply would, and names the
    /// reply's ARNs.
    #[test]
    fn a_reply_goes_in_as_sent_unless_it_holds_a_secret() {
        let reply = r#"{"tasks":[{"taskArn":"arn:aws:ecs:us-east-1:123456789012:task/web/abc","containerInstanceArn":"arn:aws:ecs:us-east-1:123456789012:container-instance/web/i1","overrides":{"containerOverrides":[]},"containers":[{"name":"app","lastStatus":"PENDING"}]}],"failures":[]}"#;
        let e = build(
            &call("RunTask", r#"{"cluster":"web","count":1}"#, Ok(reply)),
            "id-1".into(),
        );
        let v: Value = serde_json::from_str(&e.body).unwrap();
        assert_eq!(
            v["responseElements"],
            serde_json::from_str::<Value>(reply).unwrap()
        );
        for arn in [
            "arn:aws:ecs:us-east-1:123456789012:task/web/abc",
            "arn:aws:ecs:us-east-1:123456789012:container-instance/web/i1",
        ] {
            assert!(e.resources.iter().any(|r| r.name == arn), "{arn}");
            assert!(
                v["resources"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .any(|r| r["ARN"] == arn)
            );
        }
        // The members in CloudTrail's sorted order, as before.
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(e.body.find("\"awsRegion\""), Some(1));
        assert_eq!(keys, sorted);

        let secret = reply.replace(
            r#""containerOverrides":[]"#,
            r#""containerOverrides":[{"name":"app","environment":[{"name":"DB","value":"hunter2"}]}]"#,
        );
        let e = build(
            &call("RunTask", r#"{"cluster":"web","count":1}"#, Ok(&secret)),
            "id-2".into(),
        );
        assert!(!e.body.contains("hunter2"));
        let v: Value = serde_json::from_str(&e.body).unwrap();
        assert_eq!(
            v["responseElements"]["tasks"][0]["overrides"]["containerOverrides"][0]["environment"]
                [0]["value"],
            redact::HIDDEN
        );
        assert!(
            e.resources
                .iter()
                .any(|r| r.name == "arn:aws:ecs:us-east-1:123456789012:task/web/abc")
        );
    }

    #[test]
    fn read_only_by_verb() {
        for op in [
            "DescribeTasks",
            "ListClusters",
            "GetLogEvents",
            "LookupEvents",
        ] {
            assert!(is_read_only(op), "{op}");
        }
        for op in [
            "RunTask",
            "CreateCluster",
            "PutLogEvents",
            "Listen",
            "Getaway",
        ] {
            assert!(!is_read_only(op), "{op}");
        }
    }

    #[test]
    fn identities_and_usernames() {
        let mut ctx = crate::test_support::context(0);
        let root = user_identity(&ctx);
        assert_eq!(root["type"], "Root");
        assert_eq!(root["principalId"], "123456789012");
        assert_eq!(root["accessKeyId"], "AKIATESTTESTTESTTEST");
        assert_eq!(username(&ctx.principal_arn), "root");
        ctx.principal_arn = "arn:aws:iam::123456789012:user/dev/alice".into();
        let user = user_identity(&ctx);
        assert_eq!(user["type"], "IAMUser");
        assert_eq!(user["userName"], "alice");
        assert!(user["principalId"].as_str().unwrap().starts_with("AIDA"));
        assert_eq!(user["principalId"].as_str().unwrap().len(), 21);
        assert_eq!(user_identity(&ctx)["principalId"], user["principalId"]);
        ctx.principal_arn = "arn:aws:sts::123456789012:assumed-role/deployer/ci-run-7".into();
        let role = user_identity(&ctx);
        assert_eq!(role["type"], "AssumedRole");
        assert_eq!(username(&ctx.principal_arn), "ci-run-7");
        assert!(role["principalId"].as_str().unwrap().ends_with(":ci-run-7"));
        assert_eq!(
            role["sessionContext"]["sessionIssuer"]["arn"],
            "arn:aws:iam::123456789012:role/deployer"
        );
    }

    #[test]
    fn a_write_keeps_its_response_a_read_does_not() {
        let e = build(
            &call(
                "CreateCluster",
                r#"{"clusterName":"web"}"#,
                Ok(
                    r#"{"cluster":{"clusterArn":"arn:aws:ecs:us-east-1:123456789012:cluster/web","clusterName":"web"}}"#,
                ),
            ),
            "id-1".into(),
        );
        let v: Value = serde_json::from_str(&e.body).unwrap();
        assert_eq!(v["eventVersion"], EVENT_VERSION);
        assert_eq!(v["eventTime"], "2023-11-14T22:13:20Z");
        assert_eq!(v["eventName"], "CreateCluster");
        assert_eq!(v["eventSource"], "ecs.amazonaws.com");
        assert_eq!(v["requestParameters"]["clusterName"], "web");
        assert_eq!(v["responseElements"]["cluster"]["clusterName"], "web");
        assert_eq!(v["readOnly"], false);
        assert_eq!(v["eventType"], "AwsApiCall");
        assert_eq!(v["recipientAccountId"], "123456789012");
        assert!(v.get("errorCode").is_none());
        assert_eq!(e.username, "root");
        assert!(
            e.resources
                .iter()
                .any(|r| r.resource_type == "AWS::ECS::Cluster" && r.name == "web")
        );
        assert!(
            e.resources
                .iter()
                .any(|r| r.name == "arn:aws:ecs:us-east-1:123456789012:cluster/web")
        );

        let read = build(
            &call(
                "DescribeClusters",
                r#"{"clusters":["web"]}"#,
                Ok(r#"{"clusters":[]}"#),
            ),
            "id-2".into(),
        );
        let v: Value = serde_json::from_str(&read.body).unwrap();
        assert!(v["responseElements"].is_null());
        assert_eq!(v["readOnly"], true);
        let empty = build(&call("ListClusters", "", Ok("{}")), "id-3".into());
        let v: Value = serde_json::from_str(&empty.body).unwrap();
        assert!(v["requestParameters"].is_null());
    }

    #[test]
    fn a_failed_call_records_its_error() {
        let e = build(
            &call(
                "RunTask",
                r#"{"cluster":"nope","taskDefinition":"web:1"}"#,
                Err(AwsError::new(
                    "ClusterNotFoundException",
                    400,
                    "Cluster not found.",
                )),
            ),
            "id".into(),
        );
        let v: Value = serde_json::from_str(&e.body).unwrap();
        assert_eq!(v["errorCode"], "ClusterNotFoundException");
        assert_eq!(v["errorMessage"], "Cluster not found.");
        assert!(v["responseElements"].is_null());
        assert!(
            e.resources
                .iter()
                .any(|r| r.resource_type == "AWS::ECS::TaskDefinition" && r.name == "web:1")
        );
    }
}
