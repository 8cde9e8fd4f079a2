//! The resources an event names (LookupEvents' `Resources`, and its ResourceType and
//! ResourceName attributes): the names a request gives in the members each service uses for
//! them, and every ARN of a known resource type in the request or the reply.

use berth_store::TrailResource;
use serde_json::Value;

/// At most this many resources are kept per event.
pub const MAX_RESOURCES: usize = 50;

/// Request members that name a resource, per event source: (member, resource type).
fn named_members(event_source: &str) -> &'static [(&'static str, &'static str)] {
    match event_source {
        "ecs.amazonaws.com" => &[
            ("cluster", "AWS::ECS::Cluster"),
            ("clusterName", "AWS::ECS::Cluster"),
            ("clusters", "AWS::ECS::Cluster"),
            ("taskDefinition", "AWS::ECS::TaskDefinition"),
            ("family", "AWS::ECS::TaskDefinition"),
            ("task", "AWS::ECS::Task"),
            ("tasks", "AWS::ECS::Task"),
            ("containerInstance", "AWS::ECS::ContainerInstance"),
            ("containerInstances", "AWS::ECS::ContainerInstance"),
            ("service", "AWS::ECS::Service"),
            ("serviceName", "AWS::ECS::Service"),
            ("services", "AWS::ECS::Service"),
            ("capacityProvider", "AWS::ECS::CapacityProvider"),
            ("capacityProviders", "AWS::ECS::CapacityProvider"),
        ],
        "logs.amazonaws.com" => &[
            ("logGroupName", "AWS::Logs::LogGroup"),
            ("logGroupIdentifier", "AWS::Logs::LogGroup"),
            ("logStreamName", "AWS::Logs::LogStream"),
        ],
        "iam.amazonaws.com" => &[
            ("userName", "AWS::IAM::User"),
            ("roleName", "AWS::IAM::Role"),
            ("groupName", "AWS::IAM::Group"),
            ("policyArn", "AWS::IAM::Policy"),
        ],
        "sts.amazonaws.com" => &[("roleArn", "AWS::IAM::Role")],
        "cloudtrail.amazonaws.com" => &[
            ("Name", "AWS::CloudTrail::Trail"),
            ("TrailName", "AWS::CloudTrail::Trail"),
        ],
        _ => &[],
    }
}

/// The resource type of an ARN, if it is of a type Berth knows.
pub fn arn_type(arn: &str) -> Option<&'static str> {
    let mut parts = arn.splitn(6, ':');
    if parts.next() != Some("arn") {
        return None;
    }
    let _partition = parts.next()?;
    let service = parts.next()?;
    let _region = parts.next()?;
    let _account = parts.next()?;
    let resource = parts.next()?;
    let kind = resource.split(['/', ':']).next().unwrap_or("");
    Some(match (service, kind) {
        ("ecs", "cluster") => "AWS::ECS::Cluster",
        ("ecs", "task-definition") => "AWS::ECS::TaskDefinition",
        ("ecs", "task") => "AWS::ECS::Task",
        ("ecs", "container-instance") => "AWS::ECS::ContainerInstance",
        ("ecs", "service") => "AWS::ECS::Service",
        ("ecs", "capacity-provider") => "AWS::ECS::CapacityProvider",
        ("ecs", "task-set") => "AWS::ECS::TaskSet",
        ("logs", "log-group") => "AWS::Logs::LogGroup",
        ("cloudtrail", "trail") => "AWS::CloudTrail::Trail",
        ("iam", "user") => "AWS::IAM::User",
        ("iam", "role") => "AWS::IAM::Role",
        _ => return None,
    })
}

fn push(out: &mut Vec<TrailResource>, resource_type: &str, name: &str) {
    if name.is_empty() || out.len() >= MAX_RESOURCES {
        return;
    }
    let r = TrailResource {
        resource_type: resource_type.to_string(),
        name: name.trim_end_matches(":*").to_string(),
    };
    if !out.contains(&r) {
        out.push(r);
    }
}

/// The resources the top-level members of a (redacted) request name.
pub fn from_request(event_source: &str, request: &Value) -> Vec<TrailResource> {
    let mut out = Vec::new();
    let Some(members) = request.as_object() else {
        return out;
    };
    for (member, resource_type) in named_members(event_source) {
        let values: Vec<&str> = match members.get(*member) {
            Some(Value::String(s)) => vec![s.as_str()],
            Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
            _ => continue,
        };
        for v in values {
            // An ARN names its own type; a plain name takes the member's.
            push(&mut out, arn_type(v).unwrap_or(resource_type), v);
        }
    }
    out
}

/// Adds every ARN of a known type found anywhere in `v`.
/// Adds `arn` if it is of a type Berth knows.
pub fn add_arn(arn: &str, out: &mut Vec<TrailResource>) {
    if let Some(t) = arn_type(arn) {
        push(out, t, arn);
    }
}

pub fn add_arns(v: &Value, out: &mut Vec<TrailResource>) {
    match v {
        Value::String(s) => {
            if let Some(t) = arn_type(s) {
                push(out, t, s);
            }
        }
        Value::Array(items) => items.iter().for_each(|i| add_arns(i, out)),
        Value::Object(members) => members.values().for_each(|i| add_arns(i, out)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_and_arns_become_resources() {
        let req = json!({"cluster": "web", "taskDefinition": "app:3", "count": 1});
        let mut r = from_request("ecs.amazonaws.com", &req);
        add_arns(
            &json!({"tasks": [{"taskArn": "arn:aws:ecs:us-east-1:1:task/web/abc",
                               "clusterArn": "arn:aws:ecs:us-east-1:1:cluster/web"}]}),
            &mut r,
        );
        let pairs: Vec<(&str, &str)> = r
            .iter()
            .map(|r| (r.resource_type.as_str(), r.name.as_str()))
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("AWS::ECS::Cluster", "web"),
                ("AWS::ECS::TaskDefinition", "app:3"),
                ("AWS::ECS::Cluster", "arn:aws:ecs:us-east-1:1:cluster/web"),
                ("AWS::ECS::Task", "arn:aws:ecs:us-east-1:1:task/web/abc"),
            ]
        );
        let logs = from_request(
            "logs.amazonaws.com",
            &json!({"logGroupName": "/ecs/web", "resourceArn": "x"}),
        );
        assert_eq!(logs[0].resource_type, "AWS::Logs::LogGroup");
        let mut l = Vec::new();
        add_arns(
            &json!("arn:aws:logs:us-east-1:1:log-group:/ecs/web:*"),
            &mut l,
        );
        assert_eq!(l[0].name, "arn:aws:logs:us-east-1:1:log-group:/ecs/web");
        assert_eq!(arn_type("arn:aws:s3:::bucket"), None);
        assert_eq!(arn_type("not an arn"), None);
    }
}
