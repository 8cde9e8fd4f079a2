//! What every ECS operation shares: error constructors with ECS's codes, scopes and ARNs,
//! resolving a `cluster` parameter, pagination, tag validation.

use base64::Engine as _;
use berth_model::Arn;
use berth_store::{Scope, Tx};
use berth_wire::ecs::ErrorCode;
use berth_wire::ecs::shapes as s;
use berth_wire::{AwsError, RequestContext};

use crate::failure::Failure;

/// Store kinds of ECS records.
pub mod kind {
    pub const CLUSTER: &str = "ecs/cluster";
    pub const TASK_DEFINITION: &str = "ecs/task-definition";
    pub const CAPACITY_PROVIDER: &str = "ecs/capacity-provider";
    pub const CONTAINER_INSTANCE: &str = "ecs/container-instance";
    /// What an instance's tasks use ([`super::super::instance_usage`]), apart from its record.
    pub const CONTAINER_INSTANCE_USAGE: &str = "ecs/container-instance-usage";
    pub const ACCOUNT_SETTING: &str = "ecs/account-setting";
}

/// InvalidParameterException with `message`.
pub fn invalid(message: impl std::fmt::Display) -> AwsError {
    ErrorCode::InvalidParameterException.with(message)
}

/// ClientException with `message`.
pub fn client(message: impl std::fmt::Display) -> AwsError {
    ErrorCode::ClientException.with(message)
}

/// ECS's internal error (ServerException, 500).
pub fn server_error(message: &str) -> AwsError {
    ErrorCode::ServerException.with(message)
}

/// The error AWS sends for a cluster that does not exist (or is INACTIVE).
pub fn cluster_not_found() -> AwsError {
    ErrorCode::ClusterNotFoundException.with("Cluster not found.")
}

/// Turns a transaction's failure into the AWS error to send.
pub fn aws(f: Failure) -> AwsError {
    f.into_aws(server_error)
}

/// The request's regional scope in the store.
pub fn scope(ctx: &RequestContext) -> Scope<'_> {
    Scope::new(&ctx.account_id, &ctx.region)
}

/// `arn:aws:ecs:<region>:<account>:<resource>`.
pub fn arn(ctx: &RequestContext, resource: impl Into<String>) -> String {
    Arn::new("ecs", &ctx.region, &ctx.account_id, resource).to_string()
}

pub fn cluster_arn(ctx: &RequestContext, name: &str) -> String {
    arn(ctx, format!("cluster/{name}"))
}

/// If `ident` is an ECS ARN of resource type `resource_type` in the caller's account and
/// region, the part after `<type>/`; `None` if it is not an ARN at all. An ARN of another
/// type, account or region is `Some(Err)` with `on_foreign`.
pub fn arn_resource<'a>(
    ctx: &RequestContext,
    ident: &'a str,
    resource_type: &str,
) -> Option<Result<&'a str, ()>> {
    if !ident.starts_with("arn:") {
        return None;
    }
    let Some(parsed) = Arn::parse(ident) else {
        return Some(Err(()));
    };
    let (t, _) = parsed.resource_parts();
    if parsed.service != "ecs"
        || t != resource_type
        || parsed.account != ctx.account_id
        || parsed.region != ctx.region
    {
        return Some(Err(()));
    }
    let prefix_len = ident.len() - parsed.resource.len() + resource_type.len() + 1;
    Some(Ok(&ident[prefix_len.min(ident.len())..]))
}

/// The store id (`<cluster>/<id>`) of a cluster-scoped resource (`task`,
/// `container-instance`) named by `ident`, its id or its ARN (long form
/// `<type>/<cluster>/<id>` or short form `<type>/<id>`); `None` when it names one of another
/// cluster, account or region, or is not an id.
pub fn cluster_scoped_id(
    ctx: &RequestContext,
    cluster: &str,
    ident: &str,
    resource_type: &str,
) -> Option<String> {
    let id = match arn_resource(ctx, ident, resource_type) {
        Some(Ok(rest)) => match rest.split_once('/') {
            Some((c, id)) if c == cluster => id,
            Some(_) => return None,
            None => rest,
        },
        Some(Err(())) => return None,
        None => ident,
    };
    let valid = !id.is_empty()
        && id.len() <= 64
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    valid.then(|| format!("{cluster}/{id}"))
}

/// The cluster name a `cluster` parameter (name or ARN; `default` when absent) names.
/// A malformed value is InvalidParameterException; an ARN of another region or account
/// names a cluster that does not exist here.
pub fn cluster_name(ctx: &RequestContext, ident: Option<&str>) -> Result<String, AwsError> {
    let ident = match ident {
        None => return Ok("default".into()),
        Some("") => return Ok("default".into()),
        Some(i) => i,
    };
    match arn_resource(ctx, ident, "cluster") {
        Some(Ok(name)) if berth_model::names::is_cluster_name(name) => Ok(name.to_string()),
        Some(_) => Err(cluster_not_found()),
        None if berth_model::names::is_cluster_name(ident) => Ok(ident.to_string()),
        None => Err(invalid(format!(
            "Invalid identifier: Unexpected cluster name or ARN '{ident}'. Cluster names can have up to 255 characters: letters (uppercase and lowercase), numbers, hyphens, and underscores."
        ))),
    }
}

/// The ACTIVE cluster `ident` names, with its record version; ClusterNotFoundException if
/// it does not exist or was deleted.
pub fn active_cluster(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    ident: Option<&str>,
) -> Result<(s::Cluster, i64), Failure> {
    let name = cluster_name(ctx, ident)?;
    match tx.get_json::<s::Cluster>(scope(ctx), kind::CLUSTER, &name)? {
        Some((c, v)) if c.status.as_deref() == Some("ACTIVE") => Ok((c, v)),
        _ => Err(cluster_not_found().into()),
    }
}

/// A page request: where to start (the last id of the previous page) and how many.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub after: Option<String>,
    pub limit: usize,
}

impl Page {
    /// Parses `nextToken` and `maxResults` (1..=`max`, default `max`).
    pub fn parse(
        next_token: Option<&str>,
        max_results: Option<i32>,
        max: i32,
    ) -> Result<Page, AwsError> {
        let limit = match max_results {
            None => max,
            Some(n) if (1..=max).contains(&n) => n,
            Some(n) => {
                return Err(invalid(format!(
                    "maxResults must be between 1 and {max}, but was {n}."
                )));
            }
        };
        let after = match next_token {
            None => None,
            Some("") => None,
            Some(t) => Some(
                decode_token(t).ok_or_else(|| invalid("The specified nextToken is invalid."))?,
            ),
        };
        Ok(Page {
            after,
            limit: limit as usize,
        })
    }

    /// The token for the page after the one ending at `last_id`, when `fetched` (asked for
    /// `limit + 1`) shows there is more.
    pub fn next_token<T>(
        &self,
        fetched: &mut Vec<T>,
        last_id: impl Fn(&T) -> String,
    ) -> Option<String> {
        if fetched.len() > self.limit {
            fetched.truncate(self.limit);
            fetched.last().map(|t| encode_token(&last_id(t)))
        } else {
            None
        }
    }
}

/// An opaque pagination token for a position after `id`.
pub fn encode_token(id: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("v1|{id}"))
}

fn decode_token(token: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .ok()?;
    let s = String::from_utf8(bytes).ok()?;
    s.strip_prefix("v1|").map(String::from)
}

/// Checks tags as ECS does: at most 50, keys 1–128 and values 0–256 characters, no key
/// twice, no key in the reserved `aws:` namespace.
pub fn validate_tags(tags: &[s::Tag]) -> Result<(), AwsError> {
    if tags.len() > 50 {
        return Err(invalid(
            "Too many tags: a resource can have at most 50 tags.",
        ));
    }
    let mut seen = std::collections::BTreeSet::new();
    for t in tags {
        let key = t.key.as_deref().unwrap_or("");
        if key.is_empty() || key.chars().count() > 128 {
            return Err(invalid("Tag keys must be between 1 and 128 characters."));
        }
        if t.value.as_deref().unwrap_or("").chars().count() > 256 {
            return Err(invalid(format!(
                "The value of tag '{key}' must be at most 256 characters."
            )));
        }
        if key.to_ascii_lowercase().starts_with("aws:") {
            return Err(invalid(
                "Tag keys may not begin with the reserved prefix 'aws:'.",
            ));
        }
        if !seen.insert(key) {
            return Err(invalid(format!("Duplicate tag key '{key}'.")));
        }
    }
    Ok(())
}

/// `existing` with `new` merged in (a new value replaces the old one of the same key).
pub fn merge_tags(existing: &mut Vec<s::Tag>, new: &[s::Tag]) {
    for t in new {
        match existing.iter_mut().find(|e| e.key == t.key) {
            Some(e) => e.value = t.value.clone(),
            None => existing.push(t.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> RequestContext {
        crate::test_support::context(0)
    }

    #[test]
    fn cluster_names_and_arns() {
        let c = ctx();
        assert_eq!(cluster_name(&c, None).unwrap(), "default");
        assert_eq!(cluster_name(&c, Some("web")).unwrap(), "web");
        assert_eq!(
            cluster_name(&c, Some("arn:aws:ecs:us-east-1:123456789012:cluster/web")).unwrap(),
            "web"
        );
        assert_eq!(
            cluster_name(&c, Some("arn:aws:ecs:eu-west-1:123456789012:cluster/web"))
                .unwrap_err()
                .code,
            "ClusterNotFoundException"
        );
        assert_eq!(
            cluster_name(&c, Some("a b")).unwrap_err().code,
            "InvalidParameterException"
        );
    }

    #[test]
    fn pages_round_trip() {
        let p = Page::parse(None, Some(2), 100).unwrap();
        let mut v = vec!["a".to_string(), "b".into(), "c".into()];
        let token = p.next_token(&mut v, |s| s.clone()).unwrap();
        assert_eq!(v, vec!["a", "b"]);
        let p2 = Page::parse(Some(&token), Some(2), 100).unwrap();
        assert_eq!(p2.after.as_deref(), Some("b"));
        assert!(Page::parse(Some("garbage!"), None, 100).is_err());
        assert!(Page::parse(None, Some(0), 100).is_err());
        assert!(Page::parse(None, Some(101), 100).is_err());
    }

    #[test]
    fn tag_rules() {
        let t = |k: &str, v: &str| s::Tag {
            key: Some(k.into()),
            value: Some(v.into()),
        };
        assert!(validate_tags(&[t("a", "b")]).is_ok());
        assert!(validate_tags(&[t("aws:x", "b")]).is_err());
        assert!(validate_tags(&[t("a", "b"), t("a", "c")]).is_err());
        assert!(validate_tags(&[t("", "b")]).is_err());
        let many: Vec<_> = (0..51).map(|i| t(&format!("k{i}"), "v")).collect();
        assert!(validate_tags(&many).is_err());
    }
}
