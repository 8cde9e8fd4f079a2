//! What every IAM handler shares: ids and ARNs as IAM makes them, name and path validation
//! with IAM's messages, Marker pagination, policy documents on the wire, and tags.

use berth_store::Scope;
use berth_wire::iam::{ErrorCode, shapes as s};
use berth_wire::{AwsError, RequestContext};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC};
use rand::Rng;

use crate::failure::Failure;

/// IAM is global: its records live in the account-wide scope.
pub fn scope(ctx: &RequestContext) -> Scope<'_> {
    Scope::new(&ctx.account_id, "")
}

/// A store failure or an AWS error, as IAM's `ServiceFailure`.
pub fn aws(f: Failure) -> AwsError {
    f.into_aws(|m| ErrorCode::ServiceFailure.with(m))
}

/// A unique id as IAM makes them: a four-letter prefix naming the kind (`AIDA` users,
/// `AROA` roles, `AGPA` groups, `ANPA` policies, `AIPA` instance profiles) and 17
/// characters.
pub fn new_id(prefix: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut rng = rand::rng();
    let tail: String = (0..17)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("{prefix}{tail}")
}

/// `arn:aws:iam::ACCOUNT:<kind><path><name>`.
pub fn arn(ctx: &RequestContext, kind: &str, path: &str, name: &str) -> String {
    format!("arn:aws:iam::{}:{kind}{path}{name}", ctx.account_id)
}

/// The store id of a named entity: IAM names are unique regardless of case.
pub fn key(name: &str) -> String {
    name.to_ascii_lowercase()
}

pub fn validation(message: impl Into<String>) -> AwsError {
    AwsError::new("ValidationError", 400, message)
}

pub fn invalid_input(message: impl Into<String>) -> AwsError {
    ErrorCode::InvalidInput.with(message.into())
}

pub fn no_such(message: impl Into<String>) -> AwsError {
    ErrorCode::NoSuchEntity.with(message.into())
}

pub fn exists(message: impl Into<String>) -> AwsError {
    ErrorCode::EntityAlreadyExists.with(message.into())
}

pub fn conflict(message: impl Into<String>) -> AwsError {
    ErrorCode::DeleteConflict.with(message.into())
}

pub fn limit(message: impl Into<String>) -> AwsError {
    ErrorCode::LimitExceeded.with(message.into())
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)
}

/// A user, role, group, policy or instance-profile name: `[\w+=,.@-]+` within `max`
/// characters, refused with IAM's validation message naming the member.
pub fn check_name(member: &str, value: &str, max: usize) -> Result<(), AwsError> {
    if value.is_empty() || value.chars().count() > max {
        return Err(validation(format!(
            "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: Member must have length between 1 and {max}"
        )));
    }
    if !value.chars().all(is_name_char) {
        return Err(validation(format!(
            "1 validation error detected: Value '{value}' at '{member}' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]+"
        )));
    }
    Ok(())
}

/// A path: `/` alone, or `/…/` of printable characters, up to 512.
pub fn check_path(member: &str, path: Option<&str>) -> Result<String, AwsError> {
    let path = path.unwrap_or("/");
    let ok = path.starts_with('/')
        && path.ends_with('/')
        && path.len() <= 512
        && path.chars().all(|c| ('\u{21}'..='\u{7f}').contains(&c));
    if !ok {
        return Err(validation(format!(
            "The specified value for {member} is invalid. It must begin and end with / and contain only alphanumeric characters and/or / characters."
        )));
    }
    Ok(path.to_string())
}

/// IAM's `MaxItems` (1–1000, default 100) and `Marker` (an index into the listing).
pub struct Marker {
    pub start: usize,
    pub max: usize,
}

impl Marker {
    pub fn parse(marker: Option<&str>, max_items: Option<i32>) -> Result<Marker, AwsError> {
        let max = match max_items {
            None => 100,
            Some(n) if (1..=1000).contains(&n) => n as usize,
            Some(n) => {
                return Err(validation(format!(
                    "1 validation error detected: Value '{n}' at 'maxItems' failed to satisfy constraint: Member must have value between 1 and 1000"
                )));
            }
        };
        let start = match marker {
            None => 0,
            Some(m) => {
                use base64::Engine as _;
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(m)
                    .ok()
                    .and_then(|b| String::from_utf8(b).ok())
                    .and_then(|s| s.strip_prefix("berth:").and_then(|n| n.parse().ok()))
                    .ok_or_else(|| invalid_input("Invalid Marker."))?
            }
        };
        Ok(Marker { start, max })
    }

    /// This page of `items`, whether more follow, and the marker of the next page.
    pub fn page<T>(&self, items: Vec<T>) -> (Vec<T>, bool, Option<String>) {
        let total = items.len();
        let page: Vec<T> = items.into_iter().skip(self.start).take(self.max).collect();
        let next = self.start + page.len();
        if next < total {
            use base64::Engine as _;
            let m =
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("berth:{next}"));
            (page, true, Some(m))
        } else {
            (page, false, None)
        }
    }
}

/// RFC 3986 unreserved characters stay; everything else is percent-encoded, as IAM encodes
/// the policy documents in its replies.
const DOCUMENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// A policy document as IAM returns it: URL-encoded JSON (clients decode it).
pub fn wire_document(doc: &str) -> String {
    percent_encoding::utf8_percent_encode(doc, DOCUMENT).to_string()
}

/// Parses and validates a policy document for its use, or refuses it with IAM's
/// `MalformedPolicyDocument`.
pub fn check_document(
    doc: &str,
    kind: berth_iam::policy::PolicyKind,
) -> Result<berth_iam::Policy, AwsError> {
    if doc.chars().count() > 131_072 {
        return Err(
            ErrorCode::MalformedPolicyDocument.with("Cannot exceed quota for PolicySize: 6144")
        );
    }
    berth_iam::Policy::parse(doc, kind).map_err(|e| ErrorCode::MalformedPolicyDocument.with(e.0))
}

/// Tags on IAM resources: at most 50, keys 1–128 characters, values up to 256, no `aws:`.
pub fn check_tags(tags: &[s::Tag]) -> Result<(), AwsError> {
    if tags.len() > 50 {
        return Err(limit("The number of tags has reached the maximum limit."));
    }
    let mut seen = std::collections::BTreeSet::new();
    for t in tags {
        if t.key.is_empty() || t.key.chars().count() > 128 {
            return Err(validation(format!(
                "1 validation error detected: Value '{}' at 'tags.member.key' failed to satisfy constraint: Member must have length between 1 and 128",
                t.key
            )));
        }
        if t.value.chars().count() > 256 {
            return Err(validation(
                "1 validation error detected: Value at 'tags.member.value' failed to satisfy constraint: Member must have length less than or equal to 256",
            ));
        }
        if t.key.to_ascii_lowercase().starts_with("aws:") {
            return Err(invalid_input(
                "User-defined tag keys can't start with \"aws:\". This prefix is reserved for AWS tags.",
            ));
        }
        if !seen.insert(t.key.to_ascii_lowercase()) {
            return Err(invalid_input(
                "Duplicate tag keys found. Please note that Tag keys are case insensitive.",
            ));
        }
    }
    Ok(())
}

/// `existing` with `new` merged in (keys compare case-insensitively; the new value wins).
pub fn merge_tags(existing: &mut Vec<s::Tag>, new: &[s::Tag]) -> Result<(), AwsError> {
    for t in new {
        match existing
            .iter_mut()
            .find(|e| e.key.eq_ignore_ascii_case(&t.key))
        {
            Some(e) => *e = t.clone(),
            None => existing.push(t.clone()),
        }
    }
    if existing.len() > 50 {
        return Err(limit("The number of tags has reached the maximum limit."));
    }
    Ok(())
}

pub fn remove_tags(existing: &mut Vec<s::Tag>, keys: &[String]) {
    existing.retain(|t| !keys.iter().any(|k| k.eq_ignore_ascii_case(&t.key)));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_paths() {
        assert!(check_name("userName", "alice.b+c@x", 64).is_ok());
        let e = check_name("userName", "a b", 64).unwrap_err();
        assert_eq!(e.code, "ValidationError");
        assert!(e.message.contains("'userName'"));
        assert!(check_name("userName", &"a".repeat(65), 64).is_err());
        assert_eq!(check_path("path", None).unwrap(), "/");
        assert!(check_path("path", Some("/team/")).is_ok());
        assert!(check_path("path", Some("team")).is_err());
    }

    #[test]
    fn markers_page_through() {
        let m = Marker::parse(None, Some(2)).unwrap();
        let (p, more, next) = m.page(vec![1, 2, 3]);
        assert_eq!((p, more), (vec![1, 2], true));
        let m = Marker::parse(next.as_deref(), Some(2)).unwrap();
        let (p, more, next) = m.page(vec![1, 2, 3]);
        assert_eq!((p, more, next), (vec![3], false, None));
        assert!(Marker::parse(Some("nope"), None).is_err());
        assert!(Marker::parse(None, Some(0)).is_err());
    }

    #[test]
    fn documents_are_url_encoded() {
        assert_eq!(
            wire_document(r#"{"Version":"2012-10-17"}"#),
            "%7B%22Version%22%3A%222012-10-17%22%7D"
        );
    }
}
