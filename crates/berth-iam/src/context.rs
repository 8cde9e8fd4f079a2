//! The request context: what is being asked (action, resource) and the condition keys IAM
//! knows about the request (`aws:SourceIp`, `aws:username`, `ecs:cluster`, …).

use std::collections::BTreeMap;

/// A condition key's value in the request context. IAM keys are single-valued (most) or
/// multivalued (`aws:TagKeys`, `aws:PrincipalServiceNamesList`, …); every value travels as
/// text, as it does in IAM, and each operator reads it as a number, a date, an address or an
/// ARN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContextValue {
    Single(String),
    Multi(Vec<String>),
}

impl ContextValue {
    /// The values, one for a single-valued key.
    pub fn values(&self) -> &[String] {
        match self {
            ContextValue::Single(v) => std::slice::from_ref(v),
            ContextValue::Multi(v) => v,
        }
    }
}

/// One request as the authoriser sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext {
    /// `service:Operation`, e.g. `ecs:RunTask`.
    pub action: String,
    /// The resource ARN the action applies to, or `*` for actions that take no resource.
    pub resource: String,
    /// Condition keys by lower-cased name (IAM compares key names case-insensitively).
    keys: BTreeMap<String, ContextValue>,
}

impl RequestContext {
    pub fn new(action: impl Into<String>, resource: impl Into<String>) -> RequestContext {
        RequestContext {
            action: action.into(),
            resource: resource.into(),
            keys: BTreeMap::new(),
        }
    }

    /// Sets a single-valued key.
    pub fn set(&mut self, key: &str, value: impl Into<String>) -> &mut Self {
        self.keys
            .insert(key.to_ascii_lowercase(), ContextValue::Single(value.into()));
        self
    }

    /// Sets a multivalued key.
    pub fn set_multi(&mut self, key: &str, values: Vec<String>) -> &mut Self {
        self.keys
            .insert(key.to_ascii_lowercase(), ContextValue::Multi(values));
        self
    }

    /// Builder form of [`Self::set`].
    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.set(key, value);
        self
    }

    /// Builder form of [`Self::set_multi`].
    pub fn with_multi(mut self, key: &str, values: Vec<String>) -> Self {
        self.set_multi(key, values);
        self
    }

    /// A key's value; names compare case-insensitively.
    pub fn get(&self, key: &str) -> Option<&ContextValue> {
        // Keys are short: lower-case them on the stack rather than allocating.
        let mut buf = [0u8; 256];
        match buf.get_mut(..key.len()) {
            Some(dst) if key.is_ascii() => {
                dst.copy_from_slice(key.as_bytes());
                dst.make_ascii_lowercase();
                std::str::from_utf8(dst).ok().and_then(|k| self.keys.get(k))
            }
            _ => self.keys.get(&key.to_ascii_lowercase()),
        }
    }

    /// A copy of this context for another resource (one call may touch several resources,
    /// each authorised on its own).
    pub fn for_resource(&self, resource: impl Into<String>) -> RequestContext {
        RequestContext {
            resource: resource.into(),
            ..self.clone()
        }
    }
}
