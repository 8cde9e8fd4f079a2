//! The `Condition` block: IAM's condition operators and how they treat absent and
//! multivalued keys.
//!
//! One condition is one operator applied to one key with one or more policy values. Policy
//! values are alternatives (OR); a statement's conditions must all hold (AND). For a key
//! absent from the request: positive operators are false, negated ones (`StringNotEquals`,
//! `NotIpAddress`, …) are true, `…IfExists` is true, `ForAllValues:` is true and
//! `ForAnyValue:` is false, as IAM documents.

use std::net::IpAddr;

use time::OffsetDateTime;
use time::format_description::well_known::{Iso8601, Rfc3339};

use crate::context::{ContextValue, RequestContext};
use crate::pattern::{LITERAL_QUESTION, LITERAL_STAR, arn_like, glob};
use crate::variables::substitute;

/// The operator families, each in its positive form where a negated twin exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Base {
    StringEquals,
    StringEqualsIgnoreCase,
    StringLike,
    NumericEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    DateEquals,
    DateLessThan,
    DateLessThanEquals,
    DateGreaterThan,
    DateGreaterThanEquals,
    Bool,
    BinaryEquals,
    IpAddress,
    ArnEquals,
    ArnLike,
    Null,
}

/// `ForAnyValue:` / `ForAllValues:` for multivalued keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetQualifier {
    None,
    ForAnyValue,
    ForAllValues,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operator {
    pub base: Base,
    /// `StringNotEquals`, `NotIpAddress`, `ArnNotLike`, …
    pub negated: bool,
    pub set: SetQualifier,
    pub if_exists: bool,
}

impl Operator {
    /// Parses an operator name as it appears in a policy (`ForAnyValue:StringLikeIfExists`).
    pub fn parse(name: &str) -> Option<Operator> {
        let (set, rest) = if let Some(r) = name.strip_prefix("ForAnyValue:") {
            (SetQualifier::ForAnyValue, r)
        } else if let Some(r) = name.strip_prefix("ForAllValues:") {
            (SetQualifier::ForAllValues, r)
        } else {
            (SetQualifier::None, name)
        };
        let (rest, if_exists) = match rest.strip_suffix("IfExists") {
            Some(r) => (r, true),
            None => (rest, false),
        };
        let (base, negated) = match rest {
            "StringEquals" => (Base::StringEquals, false),
            "StringNotEquals" => (Base::StringEquals, true),
            "StringEqualsIgnoreCase" => (Base::StringEqualsIgnoreCase, false),
            "StringNotEqualsIgnoreCase" => (Base::StringEqualsIgnoreCase, true),
            "StringLike" => (Base::StringLike, false),
            "StringNotLike" => (Base::StringLike, true),
            "NumericEquals" => (Base::NumericEquals, false),
            "NumericNotEquals" => (Base::NumericEquals, true),
            "NumericLessThan" => (Base::NumericLessThan, false),
            "NumericLessThanEquals" => (Base::NumericLessThanEquals, false),
            "NumericGreaterThan" => (Base::NumericGreaterThan, false),
            "NumericGreaterThanEquals" => (Base::NumericGreaterThanEquals, false),
            "DateEquals" => (Base::DateEquals, false),
            "DateNotEquals" => (Base::DateEquals, true),
            "DateLessThan" => (Base::DateLessThan, false),
            "DateLessThanEquals" => (Base::DateLessThanEquals, false),
            "DateGreaterThan" => (Base::DateGreaterThan, false),
            "DateGreaterThanEquals" => (Base::DateGreaterThanEquals, false),
            "Bool" => (Base::Bool, false),
            "BinaryEquals" => (Base::BinaryEquals, false),
            "IpAddress" => (Base::IpAddress, false),
            "NotIpAddress" => (Base::IpAddress, true),
            "ArnEquals" => (Base::ArnEquals, false),
            "ArnNotEquals" => (Base::ArnEquals, true),
            "ArnLike" => (Base::ArnLike, false),
            "ArnNotLike" => (Base::ArnLike, true),
            "Null" => (Base::Null, false),
            _ => return None,
        };
        if base == Base::Null && (if_exists || set != SetQualifier::None) {
            return None;
        }
        Some(Operator {
            base,
            negated,
            set,
            if_exists,
        })
    }
}

/// One operator on one key, with the policy's values for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub operator: Operator,
    pub key: String,
    pub values: Vec<String>,
}

/// Seconds since the epoch for the date forms IAM accepts: ISO 8601 / RFC 3339 date-times, a
/// bare date, or epoch seconds.
pub fn parse_date(s: &str) -> Option<i128> {
    if let Ok(n) = s.parse::<i64>() {
        return Some(i128::from(n) * 1_000_000_000);
    }
    if let Ok(t) = OffsetDateTime::parse(s, &Rfc3339) {
        return Some(t.unix_timestamp_nanos());
    }
    if let Ok(t) = OffsetDateTime::parse(s, &Iso8601::DEFAULT) {
        return Some(t.unix_timestamp_nanos());
    }
    let fmt = time::macros::format_description!("[year]-[month]-[day]");
    time::Date::parse(s, &fmt)
        .ok()
        .map(|d| d.midnight().assume_utc().unix_timestamp_nanos())
}

/// Whether `ip` lies in `cidr` (an address, or an address with a prefix length).
pub fn ip_in(cidr: &str, ip: &str) -> bool {
    let Ok(ip) = ip.trim().parse::<IpAddr>() else {
        return false;
    };
    let (net, len) = match cidr.trim().split_once('/') {
        Some((n, l)) => match l.parse::<u32>() {
            Ok(l) => (n, Some(l)),
            Err(_) => return false,
        },
        None => (cidr.trim(), None),
    };
    let Ok(net) = net.parse::<IpAddr>() else {
        return false;
    };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(i)) => {
            let len = len.unwrap_or(32);
            if len > 32 {
                return false;
            }
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            u32::from(n) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(i)) => {
            let len = len.unwrap_or(128);
            if len > 128 {
                return false;
            }
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len)
            };
            u128::from(n) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

/// A substituted policy value back to plain text (for operators without wildcards).
fn plain(p: &str) -> String {
    p.chars()
        .map(|c| match c {
            LITERAL_STAR => '*',
            LITERAL_QUESTION => '?',
            c => c,
        })
        .collect()
}

fn numeric(p: &str, v: &str, cmp: fn(f64, f64) -> bool) -> bool {
    match (p.trim().parse::<f64>(), v.trim().parse::<f64>()) {
        (Ok(p), Ok(v)) => cmp(v, p),
        _ => false,
    }
}

fn date(p: &str, v: &str, cmp: fn(i128, i128) -> bool) -> bool {
    match (parse_date(p), parse_date(v)) {
        (Some(p), Some(v)) => cmp(v, p),
        _ => false,
    }
}

/// Whether one request value satisfies one policy value, for the positive operator.
fn positive(base: Base, p: &str, v: &str) -> bool {
    match base {
        Base::StringEquals => plain(p) == v,
        Base::StringEqualsIgnoreCase => plain(p).to_lowercase() == v.to_lowercase(),
        Base::StringLike => glob(p, v),
        Base::NumericEquals => numeric(p, v, |v, p| v == p),
        Base::NumericLessThan => numeric(p, v, |v, p| v < p),
        Base::NumericLessThanEquals => numeric(p, v, |v, p| v <= p),
        Base::NumericGreaterThan => numeric(p, v, |v, p| v > p),
        Base::NumericGreaterThanEquals => numeric(p, v, |v, p| v >= p),
        Base::DateEquals => date(p, v, |v, p| v == p),
        Base::DateLessThan => date(p, v, |v, p| v < p),
        Base::DateLessThanEquals => date(p, v, |v, p| v <= p),
        Base::DateGreaterThan => date(p, v, |v, p| v > p),
        Base::DateGreaterThanEquals => date(p, v, |v, p| v >= p),
        Base::Bool => plain(p).eq_ignore_ascii_case(v),
        Base::BinaryEquals => plain(p) == v,
        Base::IpAddress => ip_in(&plain(p), v),
        Base::ArnEquals | Base::ArnLike => arn_like(p, v),
        // Null is decided on presence alone (see `holds`).
        Base::Null => false,
    }
}

impl Condition {
    /// Whether the condition holds for the request. `variables` says whether the document
    /// allows policy variables (version 2012-10-17).
    pub fn holds(&self, ctx: &RequestContext, variables: bool) -> bool {
        let policy_values: Vec<std::borrow::Cow<'_, str>> = self
            .values
            .iter()
            .filter_map(|v| {
                if variables {
                    substitute(v, ctx)
                } else {
                    Some(std::borrow::Cow::Borrowed(v.as_str()))
                }
            })
            .collect();
        let present = ctx.get(&self.key).filter(|v| !v.values().is_empty());
        let op = self.operator;
        if op.base == Base::Null {
            return policy_values
                .iter()
                .any(|p| match p.to_ascii_lowercase().as_str() {
                    "true" => present.is_none(),
                    "false" => present.is_some(),
                    _ => false,
                });
        }
        let Some(value) = present else {
            return op.if_exists
                || op.set == SetQualifier::ForAllValues
                || (op.negated && op.set == SetQualifier::None);
        };
        // Whether one request value matches any of the policy's values.
        let matches = |v: &String| policy_values.iter().any(|p| positive(op.base, p, v));
        // Whether one request value satisfies the operator as written (negation included).
        let satisfies = |v: &String| matches(v) != op.negated;
        let values = value.values();
        match (op.set, value) {
            (SetQualifier::ForAllValues, _) => values.iter().all(satisfies),
            (SetQualifier::ForAnyValue, _) => values.iter().any(satisfies),
            (SetQualifier::None, ContextValue::Single(v)) => satisfies(v),
            // A multivalued key without a set qualifier: positive operators need one match,
            // negated ones need no value to match.
            (SetQualifier::None, ContextValue::Multi(vs)) => {
                if op.negated {
                    !vs.iter().any(matches)
                } else {
                    vs.iter().any(matches)
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn cond(op: &str, key: &str, values: &[&str]) -> Condition {
        Condition {
            operator: Operator::parse(op).unwrap(),
            key: key.into(),
            values: values.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn ctx() -> RequestContext {
        RequestContext::new("ecs:RunTask", "*")
            .with("aws:SourceIp", "203.0.113.7")
            .with("aws:SecureTransport", "true")
            .with("aws:CurrentTime", "2026-11-26T08:00:00Z")
            .with("aws:username", "alice")
            .with(
                "ecs:cluster",
                "arn:aws:ecs:us-east-1:123456789012:cluster/prod",
            )
            .with("aws:MultiFactorAuthAge", "300")
            .with_multi("aws:TagKeys", vec!["team".into(), "env".into()])
    }

    #[test]
    fn operator_names() {
        assert!(Operator::parse("ForAllValues:StringLikeIfExists").is_some());
        assert!(Operator::parse("NotIpAddress").unwrap().negated);
        assert!(Operator::parse("NullIfExists").is_none());
        assert!(Operator::parse("StringEqualz").is_none());
    }

    #[test]
    fn strings() {
        let c = ctx();
        assert!(cond("StringEquals", "aws:username", &["bob", "alice"]).holds(&c, true));
        assert!(!cond("StringEquals", "aws:username", &["Alice"]).holds(&c, true));
        assert!(cond("StringEqualsIgnoreCase", "aws:username", &["ALICE"]).holds(&c, true));
        assert!(cond("StringNotEquals", "aws:username", &["bob"]).holds(&c, true));
        assert!(!cond("StringNotEquals", "aws:username", &["bob", "alice"]).holds(&c, true));
        assert!(cond("StringLike", "aws:username", &["a*"]).holds(&c, true));
        assert!(cond("StringNotLike", "aws:username", &["b*"]).holds(&c, true));
        // Key names compare case-insensitively.
        assert!(cond("StringEquals", "AWS:UserName", &["alice"]).holds(&c, true));
    }

    #[test]
    fn absent_keys() {
        let c = ctx();
        assert!(!cond("StringEquals", "aws:PrincipalTag/team", &["web"]).holds(&c, true));
        assert!(cond("StringNotEquals", "aws:PrincipalTag/team", &["web"]).holds(&c, true));
        assert!(cond("StringEqualsIfExists", "aws:PrincipalTag/team", &["web"]).holds(&c, true));
        assert!(cond("ForAllValues:StringEquals", "aws:RequestTag/x", &["y"]).holds(&c, true));
        assert!(!cond("ForAnyValue:StringEquals", "aws:RequestTag/x", &["y"]).holds(&c, true));
        assert!(cond("Null", "aws:PrincipalTag/team", &["true"]).holds(&c, true));
        assert!(!cond("Null", "aws:username", &["true"]).holds(&c, true));
        assert!(cond("Null", "aws:username", &["false"]).holds(&c, true));
    }

    #[test]
    fn numbers_dates_bools_addresses_arns() {
        let c = ctx();
        assert!(cond("NumericLessThan", "aws:MultiFactorAuthAge", &["3600"]).holds(&c, true));
        assert!(!cond("NumericGreaterThan", "aws:MultiFactorAuthAge", &["3600"]).holds(&c, true));
        assert!(cond("NumericNotEquals", "aws:MultiFactorAuthAge", &["301"]).holds(&c, true));
        assert!(
            !cond("NumericEquals", "aws:username", &["1"]).holds(&c, true),
            "not a number"
        );
        assert!(
            cond(
                "DateGreaterThan",
                "aws:CurrentTime",
                &["2026-01-01T00:00:00Z"]
            )
            .holds(&c, true)
        );
        assert!(cond("DateLessThan", "aws:CurrentTime", &["2027-01-01"]).holds(&c, true));
        assert!(!cond("DateLessThan", "aws:CurrentTime", &["1700000000"]).holds(&c, true));
        assert!(cond("Bool", "aws:SecureTransport", &["true"]).holds(&c, true));
        assert!(!cond("Bool", "aws:SecureTransport", &["false"]).holds(&c, true));
        assert!(cond("IpAddress", "aws:SourceIp", &["203.0.113.0/24"]).holds(&c, true));
        assert!(cond("NotIpAddress", "aws:SourceIp", &["198.51.100.0/24"]).holds(&c, true));
        assert!(!cond("IpAddress", "aws:SourceIp", &["198.51.100.0/24", "::/0"]).holds(&c, true));
        assert!(cond("ArnLike", "ecs:cluster", &["arn:aws:ecs:*:*:cluster/p*"]).holds(&c, true));
        assert!(
            cond(
                "ArnNotEquals",
                "ecs:cluster",
                &["arn:aws:ecs:*:*:cluster/dev"]
            )
            .holds(&c, true)
        );
        assert!(!cond("ArnLike", "ecs:cluster", &["arn:aws:ecs:*:cluster/prod"]).holds(&c, true));
    }

    #[test]
    fn set_qualifiers() {
        let c = ctx();
        let allowed = ["team", "env", "owner"];
        assert!(cond("ForAllValues:StringEquals", "aws:TagKeys", &allowed).holds(&c, true));
        assert!(!cond("ForAllValues:StringEquals", "aws:TagKeys", &["team"]).holds(&c, true));
        assert!(cond("ForAnyValue:StringEquals", "aws:TagKeys", &["team"]).holds(&c, true));
        assert!(!cond("ForAnyValue:StringEquals", "aws:TagKeys", &["owner"]).holds(&c, true));
        assert!(cond("ForAnyValue:StringNotEquals", "aws:TagKeys", &["team"]).holds(&c, true));
        assert!(!cond("ForAllValues:StringNotEquals", "aws:TagKeys", &["team"]).holds(&c, true));
    }

    #[test]
    fn variables_in_condition_values() {
        let c = ctx();
        let k = cond("StringEquals", "aws:username", &["${aws:username}"]);
        assert!(k.holds(&c, true));
        assert!(
            !k.holds(&c, false),
            "2008-10-17 documents take ${{…}} literally"
        );
    }

    proptest! {
        /// A negated operator is the complement of its positive twin for a present
        /// single-valued key.
        #[test]
        fn negation_is_complement(v in "[a-c]{0,3}", ps in proptest::collection::vec("[a-c*]{0,3}", 1..4)) {
            let c = RequestContext::new("a:b", "*").with("k:x", v);
            for (pos, neg) in [("StringEquals", "StringNotEquals"), ("StringLike", "StringNotLike")] {
                let vals: Vec<&str> = ps.iter().map(String::as_str).collect();
                prop_assert_eq!(cond(pos, "k:x", &vals).holds(&c, true), !cond(neg, "k:x", &vals).holds(&c, true));
            }
        }

        /// ForAllValues holds exactly when every request value is among the policy's; ForAnyValue
        /// when one is.
        #[test]
        fn set_semantics(req in proptest::collection::vec("[a-d]", 0..4), pol in proptest::collection::vec("[a-d]", 1..4)) {
            let c = RequestContext::new("a:b", "*").with_multi("k:x", req.clone());
            let vals: Vec<&str> = pol.iter().map(String::as_str).collect();
            let all = req.iter().all(|r| pol.contains(r));
            let any = req.iter().any(|r| pol.contains(r));
            prop_assert_eq!(cond("ForAllValues:StringEquals", "k:x", &vals).holds(&c, true), all);
            prop_assert_eq!(cond("ForAnyValue:StringEquals", "k:x", &vals).holds(&c, true), any);
        }

        #[test]
        fn ipv4_cidr_agrees_with_masks(a in any::<u32>(), b in any::<u32>(), len in 0u32..=32) {
            let ia = std::net::Ipv4Addr::from(a);
            let ib = std::net::Ipv4Addr::from(b);
            let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
            prop_assert_eq!(ip_in(&format!("{ia}/{len}"), &ib.to_string()), a & mask == b & mask);
        }
    }
}
