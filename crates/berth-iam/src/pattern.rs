//! IAM's wildcards: `*` matches any run of characters (including none), `?` any single
//! character. Actions compare case-insensitively (`ecs:runtask` is `ecs:RunTask`); resources
//! compare case-sensitively and segment by segment, so a wildcard in an ARN's region never
//! swallows its account.

/// Stands, in a pattern, for a literal `*` (from the policy variable `${*}` or a substituted
/// value), which must not act as a wildcard.
pub const LITERAL_STAR: char = '\u{E000}';
/// Stands, in a pattern, for a literal `?`.
pub const LITERAL_QUESTION: char = '\u{E001}';

/// Whether `text` matches the wildcard `pattern`, character for character.
pub fn glob(pattern: &str, text: &str) -> bool {
    glob_by(pattern, text, |p, t| p == t)
}

/// The matcher over any symbols, `same` deciding equality of a pattern symbol and a text
/// symbol (wildcards are handled here). Iterative, with one backtracking point: linear in
/// practice, quadratic at worst, never allocating.
fn matches<T: Copy>(
    p: &[T],
    t: &[T],
    is_star: impl Fn(T) -> bool,
    is_any: impl Fn(T) -> bool,
    same: impl Fn(T, T) -> bool,
) -> bool {
    let (mut pi, mut ti) = (0usize, 0usize);
    // Where the last `*` was seen, and the text position it currently absorbs up to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && !is_star(p[pi]) && (is_any(p[pi]) || same(p[pi], t[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && is_star(p[pi]) {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| is_star(*c))
}

/// [`glob`] with a custom equality (e.g. ignoring ASCII case). ASCII text is matched byte by
/// byte without allocating; other text character by character.
pub fn glob_by(pattern: &str, text: &str, same: impl Fn(char, char) -> bool) -> bool {
    if pattern.is_ascii() && text.is_ascii() {
        return matches(
            pattern.as_bytes(),
            text.as_bytes(),
            |c| c == b'*',
            |c| c == b'?',
            |p, t| same(p as char, t as char),
        );
    }
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    matches(
        &p,
        &t,
        |c| c == '*',
        |c| c == '?',
        |p, t| same(p, t) || (p == LITERAL_STAR && t == '*') || (p == LITERAL_QUESTION && t == '?'),
    )
}

/// Whether an action in a policy (`ecs:Describe*`, `*`) covers the requested action.
pub fn action_matches(pattern: &str, action: &str) -> bool {
    glob_by(pattern, action, |p, t| p.eq_ignore_ascii_case(&t))
}

/// Whether a resource in a policy covers the requested resource ARN.
///
/// Both ARNs are split into their six colon-separated segments (the sixth keeps any further
/// colons) and compared segment by segment; a pattern that starts like an ARN but has fewer
/// segments (`arn:aws:ecs:*`) matches nothing, as IAM's ARN format requires six. A pattern
/// that is no ARN at all is compared as a whole.
pub fn resource_matches(pattern: &str, resource: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    if pattern.starts_with("arn:") {
        arn_like(pattern, resource)
    } else {
        glob(pattern, resource)
    }
}

/// Whether an ARN in a policy's `ArnLike` condition covers a value: like
/// [`resource_matches`], but both must be ARNs with six segments.
pub fn arn_like(pattern: &str, value: &str) -> bool {
    let mut p = pattern.splitn(6, ':');
    let mut r = value.splitn(6, ':');
    for _ in 0..6 {
        match (p.next(), r.next()) {
            (Some(a), Some(b)) if glob(a, b) => {}
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn wildcards() {
        assert!(glob("*", ""));
        assert!(glob("*", "anything"));
        assert!(glob("a*c", "abbbc"));
        assert!(glob("a*c", "ac"));
        assert!(!glob("a*c", "ab"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "ac"));
        assert!(glob("*a*b*", "xxaxxbxx"));
        assert!(!glob("abc", "abcd"));
        assert!(glob("", ""));
        assert!(!glob("", "a"));
    }

    #[test]
    fn actions_ignore_case() {
        assert!(action_matches("ecs:Describe*", "ecs:DescribeClusters"));
        assert!(action_matches("ECS:runtask", "ecs:RunTask"));
        assert!(action_matches("*", "iam:CreateUser"));
        assert!(!action_matches("ecs:Describe*", "ecs:RunTask"));
        assert!(!action_matches("ecs:*", "iam:CreateUser"));
    }

    #[test]
    fn resources_by_segment() {
        let arn = "arn:aws:ecs:us-east-1:123456789012:cluster/prod";
        assert!(resource_matches("*", arn));
        assert!(resource_matches(
            "arn:aws:ecs:*:123456789012:cluster/*",
            arn
        ));
        assert!(resource_matches(
            "arn:aws:ecs:us-east-1:*:cluster/prod",
            arn
        ));
        assert!(!resource_matches(
            "arn:aws:ecs:us-east-1:*:cluster/dev",
            arn
        ));
        // A region wildcard cannot absorb the account.
        assert!(!resource_matches("arn:aws:ecs:*:cluster/prod", arn));
        // Case matters for resources.
        assert!(!resource_matches(
            "arn:aws:ecs:us-east-1:123456789012:cluster/Prod",
            arn
        ));
        // The resource segment keeps its colons.
        assert!(resource_matches(
            "arn:aws:ecs:*:*:task-definition/web:*",
            "arn:aws:ecs:us-east-1:123456789012:task-definition/web:3"
        ));
        assert!(
            !resource_matches("arn:aws:ecs:*", arn),
            "an ARN pattern needs six segments"
        );
        assert!(resource_matches("arn:aws:ecs:*:*:*", arn));
    }

    /// The reference: the same wildcard language compiled to a naive recursive matcher.
    fn oracle(p: &[char], t: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('*', rest)) => (0..=t.len()).any(|i| oracle(rest, &t[i..])),
            Some(('?', rest)) => !t.is_empty() && oracle(rest, &t[1..]),
            Some((c, rest)) => t.first() == Some(c) && oracle(rest, &t[1..]),
        }
    }

    proptest! {
        #[test]
        fn glob_agrees_with_the_recursive_definition(p in "[ab*?]{0,8}", t in "[ab]{0,10}") {
            let pc: Vec<char> = p.chars().collect();
            let tc: Vec<char> = t.chars().collect();
            prop_assert_eq!(glob(&p, &t), oracle(&pc, &tc));
        }

        #[test]
        fn a_text_matches_itself_and_star(t in "[a-z:/]{0,16}") {
            prop_assert!(glob(&t, &t));
            prop_assert!(glob("*", &t));
        }
    }
}
