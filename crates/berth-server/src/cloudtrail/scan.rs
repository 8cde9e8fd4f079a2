//! A JSON text read once, without building a tree: its member names and its string values
//! that look like ARNs. What an event needs of a large reply (RunTask answers tens of KiB)
//! when nothing in it is to be redacted: the reply then goes into the event as it is, and
//! its resources are the ARNs found here.

/// What [`scan`] found in a JSON text.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scanned<'a> {
    /// A member name for which `hidden` said yes.
    pub hides: bool,
    /// String values (not member names) that start with `arn:`, in the order they appear.
    pub arns: Vec<&'a str>,
}

/// Scans `json` (assumed valid JSON: the caller validates it separately). `hidden` gets each
/// member name. `None` when a member name or an `arn:` value holds an escape sequence (the
/// caller parses the text instead).
pub fn scan<'a>(json: &'a str, hidden: impl Fn(&str) -> bool) -> Option<Scanned<'a>> {
    let bytes = json.as_bytes();
    let mut out = Scanned::default();
    let mut i = 0;
    while let Some(open) = memchr(b'"', bytes, i) {
        let start = open + 1;
        // The closing quote: the next one not escaped.
        let mut j = start;
        let mut escaped = false;
        loop {
            match bytes.get(j)? {
                b'\\' => {
                    escaped = true;
                    j += 2;
                }
                b'"' => break,
                _ => j += 1,
            }
        }
        let text = json.get(start..j)?;
        i = j + 1;
        let is_name = bytes[i..]
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .is_some_and(|b| *b == b':');
        if is_name {
            if escaped {
                return None;
            }
            if hidden(text) {
                out.hides = true;
            }
        } else if text.starts_with("arn:") {
            if escaped {
                return None;
            }
            out.arns.push(text);
        }
    }
    Some(out)
}

fn memchr(needle: u8, haystack: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .iter()
        .position(|b| *b == needle)
        .map(|k| from + k)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(name: &str) -> bool {
        name.eq_ignore_ascii_case("environment") || name.eq_ignore_ascii_case("secretAccessKey")
    }

    #[test]
    fn finds_names_to_hide_and_arn_values_in_order() {
        let json = r#"{"tasks":[{"taskArn":"arn:aws:ecs:us-east-1:1:task/c/b","clusterArn":"arn:aws:ecs:us-east-1:1:cluster/c","note":"say \"arn:\"","n":1}],"failures":[]}"#;
        let s = scan(json, secret).unwrap();
        assert!(!s.hides);
        assert_eq!(
            s.arns,
            vec![
                "arn:aws:ecs:us-east-1:1:task/c/b",
                "arn:aws:ecs:us-east-1:1:cluster/c"
            ]
        );
        let hidden = scan(
            r#"{"overrides":{"containerOverrides":[{"Environment" : [{"name":"A","value":"b"}]}]}}"#,
            secret,
        )
        .unwrap();
        assert!(hidden.hides);
        assert!(hidden.arns.is_empty());
    }

    #[test]
    fn an_arn_used_as_a_member_name_is_not_a_value() {
        let s = scan(r#"{"arn:aws:ecs:r:1:cluster/c": 1}"#, secret).unwrap();
        assert!(s.arns.is_empty());
    }

    #[test]
    fn escapes_in_names_or_arns_defer_to_a_parse() {
        assert_eq!(scan(r#"{"sec\u0072etAccessKey":"x"}"#, secret), None);
        assert_eq!(
            scan(r#"{"a":"arn:aws:ecs:r:1:task/c/\u0062"}"#, secret),
            None
        );
        // An escape elsewhere is only skipped over.
        let s = scan(r#"{"a":"x\\","b":"arn:aws:ecs:r:1:task/c/b"}"#, secret).unwrap();
        assert_eq!(s.arns, vec!["arn:aws:ecs:r:1:task/c/b"]);
    }

    /// Any text: no panic, and for valid JSON the same ARNs a parse finds (as a set).
    #[test]
    fn agrees_with_a_parse() {
        use proptest::prelude::*;
        let value = prop_oneof![
            Just(serde_json::json!("arn:aws:ecs:us-east-1:1:task/c/a")),
            Just(serde_json::json!("plain \" quote")),
            Just(serde_json::json!(12)),
            Just(serde_json::json!(null)),
        ];
        let tree = value.prop_recursive(3, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::Array),
                prop::collection::btree_map("[a-z]{1,6}|arn:x", inner, 0..4)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        });
        proptest!(|(v in tree, noise in ".{0,40}")| {
            let _ = scan(&noise, secret);
            let text = v.to_string();
            let s = scan(&text, secret).unwrap();
            let mut parsed = Vec::new();
            collect(&v, &mut parsed);
            let mut found: Vec<String> = s.arns.iter().map(|a| a.to_string()).collect();
            found.sort();
            parsed.sort();
            prop_assert_eq!(found, parsed);
        });
    }

    fn collect(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::String(s) if s.starts_with("arn:") => out.push(s.clone()),
            serde_json::Value::Array(a) => a.iter().for_each(|x| collect(x, out)),
            serde_json::Value::Object(m) => m.values().for_each(|x| collect(x, out)),
            _ => {}
        }
    }
}
