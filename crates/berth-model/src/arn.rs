//! Amazon Resource Names.

use std::fmt;

/// A parsed ARN: `arn:partition:service:region:account:resource`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Arn {
    pub partition: String,
    pub service: String,
    pub region: String,
    pub account: String,
    /// Everything after the account, e.g. `cluster/default` or `task-definition/web:3`.
    pub resource: String,
}

impl Arn {
    pub fn new(service: &str, region: &str, account: &str, resource: impl Into<String>) -> Arn {
        Arn {
            partition: "aws".into(),
            service: service.into(),
            region: region.into(),
            account: account.into(),
            resource: resource.into(),
        }
    }

    /// Parses an ARN; `None` when `s` is not one.
    pub fn parse(s: &str) -> Option<Arn> {
        let mut parts = s.splitn(6, ':');
        let (
            Some("arn"),
            Some(partition),
            Some(service),
            Some(region),
            Some(account),
            Some(resource),
        ) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        )
        else {
            return None;
        };
        if partition.is_empty() || service.is_empty() || resource.is_empty() {
            return None;
        }
        Some(Arn {
            partition: partition.into(),
            service: service.into(),
            region: region.into(),
            account: account.into(),
            resource: resource.into(),
        })
    }

    /// The resource type (before the first `/`) and the rest, e.g. `("cluster", "default")`.
    pub fn resource_parts(&self) -> (&str, &str) {
        match self.resource.split_once('/') {
            Some((kind, rest)) => (kind, rest),
            None => (self.resource.as_str(), ""),
        }
    }
}

impl fmt::Display for Arn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "arn:{}:{}:{}:{}:{}",
            self.partition, self.service, self.region, self.account, self.resource
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let s = "arn:aws:ecs:us-east-1:123456789012:task-definition/web:3";
        let a = Arn::parse(s).unwrap();
        assert_eq!(a.resource_parts(), ("task-definition", "web:3"));
        assert_eq!(a.to_string(), s);
        assert_eq!(Arn::parse("web:3"), None);
        assert_eq!(
            Arn::parse("arn:aws:iam::123456789012:root").unwrap().region,
            ""
        );
    }
}
