//! EC2's Describe filters: `Filter.N.Name` with `Filter.N.Value.M`; values of one filter are
//! ORed, filters are ANDed, values may use `*` and `?` wildcards, and `tag:<key>`, `tag-key`
//! and `tag-value` work on every taggable resource. Pure.

use berth_wire::AwsError;
use berth_wire::ec2::shapes as s;

/// What a resource answers for a filter name: its values (any one matching a filter value
/// is a match), or None when the resource type has no such filter.
pub trait Filterable {
    fn values(&self, name: &str) -> Option<Vec<String>>;
    fn tags(&self) -> &[s::Tag];
}

/// A filter name the resource type does not know, as EC2 words it.
pub fn unknown(name: &str) -> AwsError {
    super::error::invalid_parameter(format!("The filter '{name}' is invalid"))
}

/// Whether `text` matches `pattern` (`*` any run, `?` one character, `\` escapes).
pub fn wildcard(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    fn go(p: &[char], t: &[char]) -> bool {
        match p.first() {
            None => t.is_empty(),
            Some('*') => (0..=t.len()).any(|i| go(&p[1..], &t[i..])),
            Some('?') => !t.is_empty() && go(&p[1..], &t[1..]),
            Some('\\') if p.len() > 1 => t.first() == Some(&p[1]) && go(&p[2..], &t[1..]),
            Some(c) => t.first() == Some(c) && go(&p[1..], &t[1..]),
        }
    }
    go(&p, &t)
}

fn tag_values(tags: &[s::Tag], name: &str) -> Option<Vec<String>> {
    if let Some(key) = name.strip_prefix("tag:") {
        return Some(
            tags.iter()
                .filter(|t| t.key.as_deref() == Some(key))
                .filter_map(|t| t.value.clone())
                .collect(),
        );
    }
    match name {
        "tag-key" => Some(tags.iter().filter_map(|t| t.key.clone()).collect()),
        "tag-value" => Some(tags.iter().filter_map(|t| t.value.clone()).collect()),
        _ => None,
    }
}

/// Whether `r` passes every filter; an unknown filter name is an error.
pub fn matches<R: Filterable>(r: &R, filters: &[s::Filter]) -> Result<bool, AwsError> {
    for f in filters {
        let name = f.name.as_deref().unwrap_or("");
        let values = match r.values(name) {
            Some(v) => v,
            None => tag_values(r.tags(), name).ok_or_else(|| unknown(name))?,
        };
        let wanted = f.values.as_deref().unwrap_or_default();
        if !wanted.iter().any(|w| values.iter().any(|v| wildcard(w, v))) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Checks every filter name against a resource type before any resource is looked at (so
/// an empty result still refuses a bad filter), using `probe` as a stand-in resource.
pub fn check<R: Filterable>(probe: &R, filters: &[s::Filter]) -> Result<(), AwsError> {
    for f in filters {
        let name = f.name.as_deref().unwrap_or("");
        if probe.values(name).is_none() && tag_values(&[], name).is_none() {
            return Err(unknown(name));
        }
    }
    Ok(())
}

/// A boolean as filters compare it.
pub fn flag(b: Option<bool>) -> Vec<String> {
    vec![b.unwrap_or(false).to_string()]
}

/// An optional string as filter values.
pub fn one(v: &Option<String>) -> Vec<String> {
    v.iter().cloned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    struct R(Vec<s::Tag>, String);
    impl Filterable for R {
        fn values(&self, name: &str) -> Option<Vec<String>> {
            (name == "vpc-id").then(|| vec![self.1.clone()])
        }
        fn tags(&self) -> &[s::Tag] {
            &self.0
        }
    }

    fn filter(name: &str, values: &[&str]) -> s::Filter {
        s::Filter {
            name: Some(name.into()),
            values: Some(values.iter().map(|v| v.to_string()).collect()),
        }
    }

    #[test]
    fn wildcards() {
        assert!(wildcard("vpc-*", "vpc-0123"));
        assert!(wildcard("a?c", "abc"));
        assert!(!wildcard("a?c", "ac"));
        assert!(wildcard("*", ""));
        assert!(wildcard("a\\*", "a*"));
        assert!(!wildcard("a\\*", "ab"));
        assert!(!wildcard("web", "web1"));
    }

    #[test]
    fn filters_and_across_names_or_across_values() {
        let r = R(
            vec![s::Tag {
                key: Some("Name".into()),
                value: Some("web".into()),
            }],
            "vpc-1".into(),
        );
        let ok = |fs: &[s::Filter]| matches(&r, fs).unwrap();
        assert!(ok(&[filter("vpc-id", &["vpc-2", "vpc-1"])]));
        assert!(!ok(&[filter("vpc-id", &["vpc-2"])]));
        assert!(ok(&[
            filter("tag:Name", &["w*"]),
            filter("vpc-id", &["vpc-1"])
        ]));
        assert!(!ok(&[
            filter("tag:Name", &["web"]),
            filter("vpc-id", &["vpc-9"])
        ]));
        assert!(ok(&[filter("tag-key", &["Name"])]));
        assert!(!ok(&[filter("tag:Other", &["*"])]));
        assert!(ok(&[filter("tag-value", &["web"])]));
        let e = matches(&r, &[filter("colour", &["red"])]).unwrap_err();
        assert_eq!(e.code, "InvalidParameterValue");
        assert_eq!(e.message, "The filter 'colour' is invalid");
        assert!(check(&r, &[filter("colour", &["x"])]).is_err());
        assert!(check(&r, &[filter("tag:x", &["x"]), filter("vpc-id", &["x"])]).is_ok());
    }
}
