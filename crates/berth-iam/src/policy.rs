//! Policy documents: parsing with IAM's element rules and `MalformedPolicyDocument` messages.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::condition::{Condition, Operator};

/// A document that IAM refuses, with the message IAM gives (`MalformedPolicyDocument`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

fn malformed(msg: impl Into<String>) -> PolicyError {
    PolicyError(msg.into())
}

/// Where a document is used; it decides which elements it must and must not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// Attached to a user, group or role, a permissions boundary, or a session policy: no
    /// `Principal`, `Resource` required.
    Identity,
    /// Attached to a resource (a secret, a key, a log group): `Principal` required.
    Resource,
    /// A role's trust policy: `Principal` required, no `Resource`.
    Trust,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// The principals a resource-based or trust policy statement names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principals {
    /// `"Principal": "*"` (or `{"AWS": "*"}`): everyone.
    Any,
    /// By type (`AWS`, `Service`, `Federated`, `CanonicalUser`), each with its identifiers.
    Named(BTreeMap<String, Vec<String>>),
}

/// One element that lists values and may be negated (`Action`/`NotAction`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Items<T> {
    pub values: T,
    /// True for `NotAction`, `NotResource` and `NotPrincipal`.
    pub negated: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub sid: Option<String>,
    pub effect: Effect,
    pub principal: Option<Items<Principals>>,
    pub action: Items<Vec<String>>,
    /// Absent in trust policies.
    pub resource: Option<Items<Vec<String>>>,
    pub conditions: Vec<Condition>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// `2012-10-17` enables policy variables; `2008-10-17` (the default when absent) does not.
    pub version: String,
    pub id: Option<String>,
    pub statements: Vec<Statement>,
}

impl Policy {
    /// Whether `${…}` policy variables are substituted (only in version 2012-10-17).
    pub fn variables_enabled(&self) -> bool {
        self.version == "2012-10-17"
    }

    /// Parses and validates a document for its use.
    pub fn parse(text: &str, kind: PolicyKind) -> Result<Policy, PolicyError> {
        let doc: Value =
            serde_json::from_str(text).map_err(|_| malformed("Syntax errors in policy."))?;
        let Value::Object(doc) = doc else {
            return Err(malformed("Syntax errors in policy."));
        };
        for key in doc.keys() {
            if !matches!(key.as_str(), "Version" | "Id" | "Statement") {
                return Err(malformed(format!("Unknown field {key}")));
            }
        }
        let version = match doc.get("Version") {
            None => "2008-10-17".to_string(),
            Some(Value::String(v)) if v == "2012-10-17" || v == "2008-10-17" => v.clone(),
            Some(_) => return Err(malformed("The policy failed legacy parsing")),
        };
        let id = match doc.get("Id") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(malformed("Syntax errors in policy.")),
        };
        let raw = match doc.get("Statement") {
            None => return Err(malformed("Missing required field Statement")),
            Some(Value::Array(items)) => items.iter().collect::<Vec<_>>(),
            Some(v @ Value::Object(_)) => vec![v],
            Some(_) => return Err(malformed("Syntax errors in policy.")),
        };
        if raw.is_empty() {
            return Err(malformed("Missing required field Statement"));
        }
        let mut statements = Vec::with_capacity(raw.len());
        let mut sids = Vec::new();
        for v in raw {
            let s = statement(v, kind)?;
            if let Some(sid) = &s.sid {
                if sids.contains(sid) {
                    return Err(malformed(
                        "Statement IDs (SID) in a single policy must be unique",
                    ));
                }
                sids.push(sid.clone());
            }
            statements.push(s);
        }
        Ok(Policy {
            version,
            id,
            statements,
        })
    }
}

/// A JSON string or array of strings (IAM accepts both wherever it accepts a list).
fn strings(v: &Value, field: &str) -> Result<Vec<String>, PolicyError> {
    match v {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|i| match i {
                Value::String(s) => Ok(s.clone()),
                _ => Err(malformed(format!("Syntax error at field {field}"))),
            })
            .collect(),
        _ => Err(malformed(format!("Syntax error at field {field}"))),
    }
}

fn negatable(
    obj: &serde_json::Map<String, Value>,
    plain: &str,
    not: &str,
) -> Result<Option<(Value, bool)>, PolicyError> {
    match (obj.get(plain), obj.get(not)) {
        (Some(_), Some(_)) => Err(malformed(format!(
            "Statement must not contain both {plain} and {not}"
        ))),
        (Some(v), None) => Ok(Some((v.clone(), false))),
        (None, Some(v)) => Ok(Some((v.clone(), true))),
        (None, None) => Ok(None),
    }
}

fn principals(v: &Value) -> Result<Principals, PolicyError> {
    match v {
        Value::String(s) if s == "*" => Ok(Principals::Any),
        Value::Object(map) if !map.is_empty() => {
            let mut named = BTreeMap::new();
            for (kind, ids) in map {
                if !matches!(
                    kind.as_str(),
                    "AWS" | "Service" | "Federated" | "CanonicalUser"
                ) {
                    return Err(malformed(format!(
                        "Invalid principal in policy: \"{kind}\""
                    )));
                }
                let ids = strings(ids, "Principal")?;
                if kind == "AWS" && ids.iter().any(|i| i == "*") {
                    return Ok(Principals::Any);
                }
                named.insert(kind.clone(), ids);
            }
            Ok(Principals::Named(named))
        }
        _ => Err(malformed("Invalid principal in policy")),
    }
}

fn statement(v: &Value, kind: PolicyKind) -> Result<Statement, PolicyError> {
    let Value::Object(obj) = v else {
        return Err(malformed("Syntax errors in policy."));
    };
    for key in obj.keys() {
        if !matches!(
            key.as_str(),
            "Sid"
                | "Effect"
                | "Principal"
                | "NotPrincipal"
                | "Action"
                | "NotAction"
                | "Resource"
                | "NotResource"
                | "Condition"
        ) {
            return Err(malformed(format!("Unknown field {key}")));
        }
    }
    let sid = match obj.get("Sid") {
        None => None,
        Some(Value::String(s)) => {
            if !s.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(malformed(
                    "Statement IDs (SID) must be alpha-numeric. Check that your input satisfies the regular expression [0-9A-Za-z]*",
                ));
            }
            Some(s.clone())
        }
        Some(_) => return Err(malformed("Syntax error at field Sid")),
    };
    let effect = match obj.get("Effect") {
        Some(Value::String(e)) if e == "Allow" => Effect::Allow,
        Some(Value::String(e)) if e == "Deny" => Effect::Deny,
        Some(_) => return Err(malformed("Invalid effect: must be Allow or Deny")),
        None => return Err(malformed("Missing required field Effect")),
    };
    let principal = match negatable(obj, "Principal", "NotPrincipal")? {
        Some((v, negated)) => {
            if kind == PolicyKind::Identity {
                return Err(malformed("Policy document should not specify a principal."));
            }
            Some(Items {
                values: principals(&v)?,
                negated,
            })
        }
        None => {
            if kind != PolicyKind::Identity {
                return Err(malformed("Missing required field Principal"));
            }
            None
        }
    };
    let action = match negatable(obj, "Action", "NotAction")? {
        Some((v, negated)) => {
            let values = strings(&v, if negated { "NotAction" } else { "Action" })?;
            if values.iter().any(|a| a != "*" && !a.contains(':')) {
                return Err(malformed(
                    "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc.",
                ));
            }
            Items { values, negated }
        }
        None => return Err(malformed("Policy statement must contain actions.")),
    };
    let resource = match negatable(obj, "Resource", "NotResource")? {
        Some((v, negated)) => {
            if kind == PolicyKind::Trust {
                return Err(malformed(if negated {
                    "Has prohibited field NotResource"
                } else {
                    "Has prohibited field Resource"
                }));
            }
            let values = strings(&v, if negated { "NotResource" } else { "Resource" })?;
            Some(Items { values, negated })
        }
        None => {
            if kind == PolicyKind::Identity {
                return Err(malformed("Policy statement must contain resources."));
            }
            None
        }
    };
    let conditions = match obj.get("Condition") {
        None => Vec::new(),
        Some(Value::Object(ops)) => {
            let mut out = Vec::new();
            for (op, keys) in ops {
                let operator = Operator::parse(op)
                    .ok_or_else(|| malformed(format!("Invalid Condition type : {op}")))?;
                let Value::Object(keys) = keys else {
                    return Err(malformed("Syntax error at field Condition"));
                };
                for (key, values) in keys {
                    let values = match values {
                        Value::Array(items) => {
                            items.iter().map(scalar).collect::<Result<_, _>>()?
                        }
                        other => vec![scalar(other)?],
                    };
                    out.push(Condition {
                        operator,
                        key: key.clone(),
                        values,
                    });
                }
            }
            out
        }
        Some(_) => return Err(malformed("Syntax error at field Condition")),
    };
    Ok(Statement {
        sid,
        effect,
        principal,
        action,
        resource,
        conditions,
    })
}

/// A condition value as text: IAM accepts strings, numbers and booleans.
fn scalar(v: &Value) -> Result<String, PolicyError> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        _ => Err(malformed("Syntax error at field Condition")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str, kind: PolicyKind) -> String {
        Policy::parse(text, kind).unwrap_err().0
    }

    #[test]
    fn parses_a_typical_identity_policy() {
        let p = Policy::parse(
            r#"{"Version":"2012-10-17","Statement":[{"Sid":"Run","Effect":"Allow",
                "Action":["ecs:RunTask","ecs:Describe*"],
                "Resource":"arn:aws:ecs:*:*:cluster/prod",
                "Condition":{"StringEquals":{"aws:RequestedRegion":["us-east-1","eu-west-1"]},
                             "Bool":{"aws:SecureTransport":true}}}]}"#,
            PolicyKind::Identity,
        )
        .unwrap();
        assert!(p.variables_enabled());
        let s = &p.statements[0];
        assert_eq!(s.effect, Effect::Allow);
        assert_eq!(s.action.values.len(), 2);
        assert_eq!(s.conditions.len(), 2);
        let bool_cond = s
            .conditions
            .iter()
            .find(|c| c.key == "aws:SecureTransport")
            .unwrap();
        assert_eq!(bool_cond.values, vec!["true"]);
    }

    #[test]
    fn a_single_statement_object_is_accepted() {
        let p = Policy::parse(
            r#"{"Statement":{"Effect":"Deny","NotAction":"iam:*","NotResource":"*"}}"#,
            PolicyKind::Identity,
        )
        .unwrap();
        assert_eq!(p.version, "2008-10-17");
        assert!(!p.variables_enabled());
        assert!(p.statements[0].action.negated);
        assert!(p.statements[0].resource.as_ref().unwrap().negated);
    }

    #[test]
    fn iam_refusals() {
        use PolicyKind::*;
        assert_eq!(err("{", Identity), "Syntax errors in policy.");
        assert_eq!(
            err(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"}]}"#,
                Identity
            ),
            "Policy document should not specify a principal."
        );
        assert_eq!(
            err(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*"}]}"#,
                Identity
            ),
            "Policy statement must contain resources."
        );
        assert_eq!(
            err(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Resource":"*"}]}"#,
                Identity
            ),
            "Policy statement must contain actions."
        );
        assert_eq!(
            err(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"ecs-tasks.amazonaws.com"},"Action":"sts:AssumeRole","Resource":"*"}]}"#,
                Trust
            ),
            "Has prohibited field Resource"
        );
        assert_eq!(
            err(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"sts:AssumeRole"}]}"#,
                Trust
            ),
            "Missing required field Principal"
        );
        assert_eq!(
            err(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Permit","Action":"s3:*","Resource":"*"}]}"#,
                Identity
            ),
            "Invalid effect: must be Allow or Deny"
        );
        assert_eq!(
            err(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"StringEqualz":{"a:b":"c"}}}]}"#,
                Identity
            ),
            "Invalid Condition type : StringEqualz"
        );
        assert_eq!(
            err(
                r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"RunTask","Resource":"*"}]}"#,
                Identity
            ),
            "Actions/Conditions must be prefaced by a vendor, e.g., iam, sdb, ec2, etc."
        );
        assert_eq!(
            err(
                r#"{"Version":"2012-10-17","Statement":[{"Sid":"a","Effect":"Allow","Action":"s3:*","Resource":"*"},{"Sid":"a","Effect":"Deny","Action":"s3:*","Resource":"*"}]}"#,
                Identity
            ),
            "Statement IDs (SID) in a single policy must be unique"
        );
    }

    #[test]
    fn principals_of_a_trust_policy() {
        let p = Policy::parse(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow",
                "Principal":{"Service":"ecs-tasks.amazonaws.com","AWS":["arn:aws:iam::123456789012:root"]},
                "Action":"sts:AssumeRole"}]}"#,
            PolicyKind::Trust,
        )
        .unwrap();
        let Some(Items {
            values: Principals::Named(m),
            negated: false,
        }) = &p.statements[0].principal
        else {
            panic!("named principals expected");
        };
        assert_eq!(m["Service"], vec!["ecs-tasks.amazonaws.com"]);
        let any = Policy::parse(
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"logs:*","Resource":"*"}]}"#,
            PolicyKind::Resource,
        )
        .unwrap();
        assert_eq!(
            any.statements[0].principal.as_ref().unwrap().values,
            Principals::Any
        );
    }
}
