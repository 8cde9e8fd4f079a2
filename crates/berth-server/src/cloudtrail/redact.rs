//! What never enters an event: secret values are replaced by CloudTrail's own placeholder
//! wherever they appear in request parameters or response elements.
//!
//! - members named like a secret (`secretAccessKey`, `sessionToken`, `password`,
//!   `secretString`, `secretBinary`, `plaintext`, `privateKey`, …), at any depth;
//! - the `value` of every `environment` entry (task definitions' container definitions,
//!   RunTask/StartTask container overrides): names stay, values go. `secrets` entries keep
//!   their `valueFrom`, which is an ARN, not a secret;
//! - the `message` of every log event (`logEvents`), should a Logs data call ever be recorded.

use serde_json::Value;

/// CloudTrail's placeholder for a value it does not record.
pub const HIDDEN: &str = "HIDDEN_DUE_TO_SECURITY_REASONS";

/// Member names (lowercased) whose values are secrets wherever they appear.
const SECRET_MEMBERS: &[&str] = &[
    "secretaccesskey",
    "sessiontoken",
    "password",
    "oldpassword",
    "newpassword",
    "secretstring",
    "secretbinary",
    "plaintext",
    "privatekey",
    "clientsecret",
    "authorizationtoken",
    "authtoken",
    "credentials",
];

/// Whether [`redact`] hides anything of a member named `name` (its value, or members of
/// its items): a body without such a member needs no redacting.
pub fn hides_member(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    SECRET_MEMBERS.contains(&lower.as_str()) || lower == "environment" || lower == "logevents"
}

/// Replaces every secret in `v` with [`HIDDEN`], in place.
pub fn redact(v: &mut Value) {
    match v {
        Value::Object(members) => {
            for (name, child) in members.iter_mut() {
                let lower = name.to_ascii_lowercase();
                if SECRET_MEMBERS.contains(&lower.as_str()) {
                    *child = Value::String(HIDDEN.into());
                    continue;
                }
                match lower.as_str() {
                    "environment" => hide_member_of_each(child, "value"),
                    "logevents" => hide_member_of_each(child, "message"),
                    _ => {}
                }
                redact(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// In a list of objects, hides `member` of each.
fn hide_member_of_each(list: &mut Value, member: &str) {
    if let Value::Array(items) = list {
        for item in items {
            if let Some(v) = item.get_mut(member) {
                *v = Value::String(HIDDEN.into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What `hides_member` promises: a body without such a member is left as it is.
    #[test]
    fn a_body_without_hidden_members_is_left_alone() {
        use proptest::prelude::*;
        let leaf = prop_oneof![
            Just(json!("v")),
            Just(json!(1)),
            Just(json!([{"name": "n", "value": "v"}])),
        ];
        let tree = leaf.prop_recursive(3, 24, 4, |inner| {
            prop::collection::btree_map(
                prop_oneof![
                    Just("name".to_string()),
                    Just("Environment".to_string()),
                    Just("password".to_string()),
                    Just("logEvents".to_string()),
                    "[a-z]{1,5}",
                ],
                inner,
                0..4,
            )
            .prop_map(|m| Value::Object(m.into_iter().collect()))
        });
        proptest!(|(v in tree)| {
            let text = v.to_string();
            let scanned = crate::cloudtrail::scan::scan(&text, hides_member).unwrap();
            let mut redacted = v.clone();
            redact(&mut redacted);
            if !scanned.hides {
                prop_assert_eq!(redacted, v);
            }
        });
    }

    #[test]
    fn environment_values_and_secret_members_are_hidden() {
        let mut v = json!({
            "overrides": {"containerOverrides": [{
                "name": "app",
                "environment": [{"name": "DB_PASSWORD", "value": "hunter2"}],
                "command": ["run"]
            }]},
            "containerDefinitions": [{
                "environment": [{"name": "A", "value": "a-secret"}],
                "secrets": [{"name": "S", "valueFrom": "arn:aws:ssm:us-east-1:1:parameter/s"}]
            }],
            "AccessKey": {"AccessKeyId": "AKIA1", "SecretAccessKey": "abc"},
            "Credentials": {"SessionToken": "tok"},
            "logEvents": [{"timestamp": 1, "message": "password=hunter2"}],
            "tags": [{"key": "value", "value": "kept"}]
        });
        redact(&mut v);
        let text = v.to_string();
        for secret in ["hunter2", "a-secret", "\"abc\"", "tok"] {
            assert!(!text.contains(secret), "{secret} leaked: {text}");
        }
        assert_eq!(
            v["overrides"]["containerOverrides"][0]["environment"][0]["name"],
            "DB_PASSWORD"
        );
        assert_eq!(
            v["overrides"]["containerOverrides"][0]["environment"][0]["value"],
            HIDDEN
        );
        assert_eq!(
            v["containerDefinitions"][0]["secrets"][0]["valueFrom"],
            "arn:aws:ssm:us-east-1:1:parameter/s"
        );
        assert_eq!(v["AccessKey"]["AccessKeyId"], "AKIA1");
        assert_eq!(v["tags"][0]["value"], "kept");
        assert_eq!(v["logEvents"][0]["timestamp"], 1);
    }
}
