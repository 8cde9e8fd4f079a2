//! Policy variables: `${aws:username}`, `${aws:PrincipalTag/team}`, `${ecs:cluster}`, with an
//! optional default (`${aws:username, 'nobody'}`) and the escapes `${*}`, `${?}` and `${$}`.
//!
//! Variables are substituted in `Resource` values and condition values of version
//! 2012-10-17 documents. Substituted text is literal: a `*` in a tag value is not a wildcard.

use std::borrow::Cow;

use crate::context::{ContextValue, RequestContext};
use crate::pattern::{LITERAL_QUESTION, LITERAL_STAR};

fn literal(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '*' => LITERAL_STAR,
            '?' => LITERAL_QUESTION,
            c => c,
        })
        .collect()
}

/// `value` with its variables replaced from `ctx`, or `None` when a variable has no value in
/// the request (and no default): the element that holds it then matches nothing, as in IAM.
pub fn substitute<'a>(value: &'a str, ctx: &RequestContext) -> Option<Cow<'a, str>> {
    if !value.contains("${") {
        return Some(Cow::Borrowed(value));
    }
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else {
            // An unterminated `${` is plain text.
            out.push_str(&rest[start..]);
            return Some(Cow::Owned(out));
        };
        let inner = &after[..end];
        rest = &after[end + 1..];
        match inner {
            "*" => out.push(LITERAL_STAR),
            "?" => out.push(LITERAL_QUESTION),
            "$" => out.push('$'),
            _ => {
                let (name, default) = match inner.split_once(',') {
                    Some((name, d)) => {
                        let d = d.trim();
                        let d = d
                            .strip_prefix('\'')
                            .and_then(|d| d.strip_suffix('\''))
                            .unwrap_or(d);
                        (name.trim(), Some(d))
                    }
                    None => (inner.trim(), None),
                };
                match (ctx.get(name), default) {
                    (Some(ContextValue::Single(v)), _) => out.push_str(&literal(v)),
                    (_, Some(d)) => out.push_str(&literal(d)),
                    _ => return None,
                }
            }
        }
    }
    out.push_str(rest);
    Some(Cow::Owned(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pattern::resource_matches;

    fn ctx() -> RequestContext {
        RequestContext::new("ecs:RunTask", "*")
            .with("aws:username", "alice")
            .with("aws:PrincipalTag/team", "web")
            .with_multi("aws:TagKeys", vec!["a".into()])
    }

    #[test]
    fn substitutes_known_keys_case_insensitively() {
        assert_eq!(
            substitute("arn:aws:iam::1:user/${aws:username}", &ctx()).as_deref(),
            Some("arn:aws:iam::1:user/alice")
        );
        assert_eq!(
            substitute("cluster/${aws:principaltag/team}-*", &ctx()).as_deref(),
            Some("cluster/web-*")
        );
    }

    #[test]
    fn missing_keys_match_nothing_unless_defaulted() {
        assert_eq!(substitute("x/${aws:userid}", &ctx()), None);
        assert_eq!(
            substitute("x/${aws:TagKeys}", &ctx()),
            None,
            "multivalued keys are not variables"
        );
        assert_eq!(
            substitute("x/${aws:userid, 'nobody'}", &ctx()).as_deref(),
            Some("x/nobody")
        );
    }

    #[test]
    fn escapes_are_literal() {
        let s = substitute("a${*}b${?}c${$}", &ctx()).unwrap();
        assert!(resource_matches(&s, "a*b?c$"));
        assert!(!resource_matches(&s, "axbyc$"));
        let tagged = RequestContext::new("a:b", "*").with("aws:username", "st*r");
        let s = substitute("user/${aws:username}", &tagged).unwrap();
        assert!(resource_matches(&s, "user/st*r"));
        assert!(
            !resource_matches(&s, "user/stair"),
            "a substituted * is no wildcard"
        );
    }
}
