//! What the Logs operations share: errors with Logs' codes, name rules, records, ARNs,
//! pagination tokens and tag rules.

use std::collections::BTreeMap;

use base64::Engine as _;
use berth_store::{Scope, Tx};
use berth_wire::logs::ErrorCode;
use berth_wire::logs::shapes as s;
use berth_wire::{AwsError, RequestContext};
use serde::{Deserialize, Serialize};

use crate::failure::Failure;

/// Store kinds of Logs records.
pub mod kind {
    /// A log group, by name.
    pub const GROUP: &str = "logs/group";
    /// A log stream, by `<group>:<stream>` (neither name may hold a `:`).
    pub const STREAM: &str = "logs/stream";
}

/// The retention periods (days) PutRetentionPolicy accepts.
pub const RETENTION_DAYS: &[i32] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

pub const DAY_MS: i64 = 86_400_000;

/// InvalidParameterException with `message`.
pub fn invalid(message: impl std::fmt::Display) -> AwsError {
    ErrorCode::InvalidParameterException.with(message)
}

/// Logs' internal error (ServiceUnavailableException, 500).
pub fn server_error(message: &str) -> AwsError {
    ErrorCode::ServiceUnavailableException.with(message)
}

pub fn group_not_found() -> AwsError {
    ErrorCode::ResourceNotFoundException.with("The specified log group does not exist.")
}

pub fn stream_not_found() -> AwsError {
    ErrorCode::ResourceNotFoundException.with("The specified log stream does not exist.")
}

/// Turns a transaction's failure into the AWS error to send.
pub fn aws(f: Failure) -> AwsError {
    f.into_aws(server_error)
}

/// The request's regional scope in the store.
pub fn scope(ctx: &RequestContext) -> Scope<'_> {
    Scope::new(&ctx.account_id, &ctx.region)
}

/// AWS's validation message for a member that breaks a model constraint.
pub fn validation(value: &str, member: &str, constraint: &str) -> AwsError {
    invalid(format!(
        "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: {constraint}"
    ))
}

fn check_length(value: &str, member: &str, max: usize) -> Result<(), AwsError> {
    let n = value.chars().count();
    if n < 1 {
        return Err(validation(
            value,
            member,
            "Member must have length greater than or equal to 1",
        ));
    }
    if n > max {
        return Err(validation(
            value,
            member,
            &format!("Member must have length less than or equal to {max}"),
        ));
    }
    Ok(())
}

/// A log group name: 1–512 of `[\.\-_/#A-Za-z0-9]`.
pub fn check_group_name(name: &str, member: &str) -> Result<(), AwsError> {
    check_length(name, member, 512)?;
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'/' | b'#'))
    {
        return Err(validation(
            name,
            member,
            r"Member must satisfy regular expression pattern: [\.\-_/#A-Za-z0-9]+",
        ));
    }
    Ok(())
}

/// A log stream name: 1–512 characters, neither `:` nor `*`.
pub fn check_stream_name(name: &str, member: &str) -> Result<(), AwsError> {
    check_length(name, member, 512)?;
    if name.contains([':', '*']) {
        return Err(validation(
            name,
            member,
            "Member must satisfy regular expression pattern: [^:*]*",
        ));
    }
    Ok(())
}

/// `arn:aws:logs:<region>:<account>:log-group:<name>` (`logGroupArn`; `arn` adds `:*`).
pub fn group_arn(ctx: &RequestContext, name: &str) -> String {
    format!(
        "arn:aws:logs:{}:{}:log-group:{name}",
        ctx.region, ctx.account_id
    )
}

pub fn stream_arn(ctx: &RequestContext, group: &str, stream: &str) -> String {
    format!("{}:log-stream:{stream}", group_arn(ctx, group))
}

/// The log group name a log group ARN (with or without `:*`) names, if it is one of the
/// caller's account and region.
pub fn group_from_arn<'a>(ctx: &RequestContext, arn: &'a str) -> Option<&'a str> {
    let prefix = format!("arn:aws:logs:{}:{}:log-group:", ctx.region, ctx.account_id);
    let name = arn.strip_prefix(&prefix)?;
    Some(name.strip_suffix(":*").unwrap_or(name))
}

/// The group a `logGroupName` / `logGroupIdentifier` pair names (exactly one must be given;
/// the identifier is a name or an ARN).
pub fn resolve_group(
    ctx: &RequestContext,
    name: Option<&str>,
    identifier: Option<&str>,
) -> Result<String, AwsError> {
    match (name, identifier) {
        (Some(_), Some(_)) => Err(invalid(
            "LogGroup name and LogGroup ARN are mutually exclusive parameters.",
        )),
        (None, None) => Err(invalid(
            "Should provide either logGroupName or logGroupIdentifier.",
        )),
        (Some(n), None) => {
            check_group_name(n, "logGroupName")?;
            Ok(n.to_string())
        }
        (None, Some(id)) if id.starts_with("arn:") => match group_from_arn(ctx, id) {
            Some(n) if check_group_name(n, "logGroupIdentifier").is_ok() => Ok(n.to_string()),
            _ => Err(group_not_found()),
        },
        (None, Some(id)) => {
            check_group_name(id, "logGroupIdentifier")?;
            Ok(id.to_string())
        }
    }
}

/// A log group as stored: the wire shape (without derived fields) and its tags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupRecord {
    pub group: s::LogGroup,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
}

/// The log group `name` with its version; ResourceNotFoundException if there is none.
pub fn get_group(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    name: &str,
) -> Result<(GroupRecord, i64), Failure> {
    tx.get_json::<GroupRecord>(scope(ctx), kind::GROUP, name)?
        .ok_or_else(|| group_not_found().into())
}

pub fn stream_id(group: &str, stream: &str) -> String {
    format!("{group}:{stream}")
}

/// The earliest event time a group's retention keeps at `now_ms` (None: kept forever).
pub fn retention_cutoff(group: &s::LogGroup, now_ms: i64) -> Option<i64> {
    group
        .retention_in_days
        .map(|d| now_ms - i64::from(d) * DAY_MS)
}

/// An opaque pagination token for `key`.
pub fn encode_token(key: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("v1|{key}"))
}

/// The key of a token made by [`encode_token`]; InvalidParameterException otherwise.
pub fn decode_token(token: &str) -> Result<String, AwsError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.strip_prefix("v1|").map(String::from))
        .ok_or_else(|| invalid("The specified nextToken is invalid."))
}

/// A `limit` within 1..=`max` (default `max`).
pub fn check_limit(limit: Option<i32>, max: i32) -> Result<usize, AwsError> {
    match limit {
        None => Ok(max as usize),
        Some(n) if (1..=max).contains(&n) => Ok(n as usize),
        Some(n) if n < 1 => Err(validation(
            &n.to_string(),
            "limit",
            "Member must have value greater than or equal to 1",
        )),
        Some(n) => Err(validation(
            &n.to_string(),
            "limit",
            &format!("Member must have value less than or equal to {max}"),
        )),
    }
}

fn tag_chars_ok(s: &str) -> bool {
    s.chars().all(|c| {
        c.is_alphanumeric()
            || c.is_whitespace()
            || matches!(c, '_' | '.' | ':' | '/' | '=' | '+' | '-' | '@')
    })
}

/// Checks tags as Logs does: 1–50 of them, keys 1–128 and values 0–256 characters of
/// `[\p{L}\p{Z}\p{N}_.:/=+\-@]`, no key in the reserved `aws:` namespace.
pub fn validate_tags(tags: &BTreeMap<String, String>) -> Result<(), AwsError> {
    if tags.is_empty() {
        return Err(validation(
            "{}",
            "tags",
            "Member must have length greater than or equal to 1",
        ));
    }
    if tags.len() > 50 {
        return Err(validation(
            "map",
            "tags",
            "Member must have length less than or equal to 50",
        ));
    }
    for (k, v) in tags {
        if k.is_empty() || k.chars().count() > 128 || !tag_chars_ok(k) {
            return Err(validation(
                k,
                "tags.key",
                r"Member must satisfy regular expression pattern: ^([\p{L}\p{Z}\p{N}_.:/=+\-@]+)$",
            ));
        }
        if v.chars().count() > 256 || !tag_chars_ok(v) {
            return Err(validation(
                v,
                "tags.value",
                r"Member must satisfy regular expression pattern: ^([\p{L}\p{Z}\p{N}_.:/=+\-@]*)$",
            ));
        }
        if k.to_ascii_lowercase().starts_with("aws:") {
            return Err(invalid("Tag keys starting with 'aws:' are reserved."));
        }
    }
    Ok(())
}

/// A Logs event position (timestamp, seq) as the 56 digits AWS's tokens and event ids have.
pub fn position_digits(timestamp_ms: i64, seq: i64) -> String {
    format!("{:020}{:036}", timestamp_ms.max(0), seq.max(0))
}

/// The position [`position_digits`] wrote.
pub fn parse_position(digits: &str) -> Option<(i64, i64)> {
    if digits.len() != 56 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((digits[..20].parse().ok()?, digits[20..].parse().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> RequestContext {
        crate::test_support::context(0)
    }

    #[test]
    fn group_and_stream_names() {
        assert!(check_group_name("/ecs/web-app_1.#x", "logGroupName").is_ok());
        assert!(check_group_name("", "logGroupName").is_err());
        assert!(check_group_name(&"a".repeat(512), "logGroupName").is_ok());
        assert!(check_group_name(&"a".repeat(513), "logGroupName").is_err());
        let e = check_group_name("a b", "logGroupName").unwrap_err();
        assert_eq!(e.code, "InvalidParameterException");
        assert!(e.message.contains("regular expression pattern"), "{e:?}");
        assert!(check_stream_name("ecs/web/0123abcd", "logStreamName").is_ok());
        assert!(check_stream_name("with space ok", "logStreamName").is_ok());
        assert!(check_stream_name("a:b", "logStreamName").is_err());
        assert!(check_stream_name("a*", "logStreamName").is_err());
    }

    #[test]
    fn group_identifiers() {
        let c = ctx();
        assert_eq!(resolve_group(&c, Some("g"), None).unwrap(), "g");
        assert_eq!(
            resolve_group(
                &c,
                None,
                Some("arn:aws:logs:us-east-1:123456789012:log-group:/a/b:*")
            )
            .unwrap(),
            "/a/b"
        );
        assert_eq!(
            resolve_group(
                &c,
                None,
                Some("arn:aws:logs:us-east-1:123456789012:log-group:/a/b")
            )
            .unwrap(),
            "/a/b"
        );
        assert_eq!(
            resolve_group(
                &c,
                None,
                Some("arn:aws:logs:eu-west-1:123456789012:log-group:g")
            )
            .unwrap_err()
            .code,
            "ResourceNotFoundException"
        );
        assert!(resolve_group(&c, None, None).is_err());
        assert!(resolve_group(&c, Some("g"), Some("g")).is_err());
    }

    #[test]
    fn tokens_and_positions_round_trip() {
        assert_eq!(decode_token(&encode_token("a/b")).unwrap(), "a/b");
        assert!(decode_token("garbage!").is_err());
        let d = position_digits(1_700_000_000_000, 42);
        assert_eq!(d.len(), 56);
        assert_eq!(parse_position(&d), Some((1_700_000_000_000, 42)));
        assert_eq!(parse_position("12"), None);
        assert_eq!(check_limit(None, 50).unwrap(), 50);
        assert!(check_limit(Some(0), 50).is_err());
        assert!(check_limit(Some(51), 50).is_err());
    }

    #[test]
    fn tag_rules() {
        let tags = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(validate_tags(&tags(&[("team", "blue"), ("cost-center", "a/b:c")])).is_ok());
        assert!(validate_tags(&tags(&[])).is_err());
        assert!(validate_tags(&tags(&[("aws:x", "1")])).is_err());
        assert!(validate_tags(&tags(&[("bad*key", "1")])).is_err());
        assert!(validate_tags(&tags(&[("k", "bad#value")])).is_err());
        let many: BTreeMap<String, String> = (0..51)
            .map(|i| (format!("k{i}"), "v".to_string()))
            .collect();
        assert!(validate_tags(&many).is_err());
    }
}
