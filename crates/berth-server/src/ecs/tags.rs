//! Tags: TagResource, UntagResource, ListTagsForResource, on every taggable resource Berth
//! has so far, named by ARN: clusters, capacity providers, container instances and task
//! definitions.
//!
//! Every one of those records keeps its tags in a top-level `tags` array, so the tag
//! operations work on the stored JSON and leave the rest of the record as it is (a task
//! definition is stored as `{"taskDefinition": …, "tags": […]}` under
//! `task_definitions::store_id`).

use berth_model::Arn;
use berth_wire::ecs::ErrorCode;
use berth_wire::ecs::shapes as s;
use berth_wire::{AwsError, RequestContext};
use serde_json::Value;

use super::Ecs;
use super::common::{self, aws, client, cluster_not_found, invalid, kind, scope};
use crate::failure::Failure;

/// A taggable resource: where it is stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub kind: &'static str,
    pub id: String,
}

fn invalid_arn() -> AwsError {
    invalid("The ARN provided is invalid.")
}

/// Which operation is asking: ListTagsForResource answers a missing resource with
/// ClientException (its model has no ResourceNotFoundException), the others with
/// ResourceNotFoundException.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Change,
    List,
}

fn resource_not_found(op: Op) -> AwsError {
    let message = "The specified resource could not be found.";
    match op {
        Op::Change => ErrorCode::ResourceNotFoundException.with(message),
        Op::List => client(message),
    }
}

/// The store record a resource ARN names. Not an ECS ARN: InvalidParameterException. An
/// ECS resource of another account or region, or of a type Berth does not have yet, does
/// not exist here (`Ok(None)`; a cluster's absence is ClusterNotFoundException).
pub fn target(ctx: &RequestContext, resource_arn: &str) -> Result<Option<Target>, AwsError> {
    let arn = Arn::parse(resource_arn).ok_or_else(invalid_arn)?;
    if arn.service != "ecs" || arn.partition != "aws" {
        return Err(invalid_arn());
    }
    let (resource_type, rest) = arn.resource_parts();
    if rest.is_empty() {
        return Err(invalid_arn());
    }
    let here = arn.account == ctx.account_id && arn.region == ctx.region;
    let target = match resource_type {
        "cluster" => {
            if !here || !berth_model::names::is_cluster_name(rest) {
                return Err(cluster_not_found());
            }
            Target {
                kind: kind::CLUSTER,
                id: rest.to_string(),
            }
        }
        "capacity-provider" => Target {
            kind: kind::CAPACITY_PROVIDER,
            id: rest.to_string(),
        },
        "container-instance" => {
            // Only the long format (`container-instance/<cluster>/<id>`) names a cluster.
            let Some((cluster, _)) = rest.split_once('/') else {
                return Err(invalid(
                    "Long arn format must be used for tagging operations.",
                ));
            };
            match super::container_instances::store_id(ctx, cluster, resource_arn) {
                Some(id) => Target {
                    kind: kind::CONTAINER_INSTANCE,
                    id,
                },
                None => return Ok(None),
            }
        }
        "task-definition" => {
            let Some((family, revision)) = rest.rsplit_once(':') else {
                return Err(invalid_arn());
            };
            match revision.parse::<i32>() {
                Ok(n) if n > 0 && revision.bytes().all(|b| b.is_ascii_digit()) => Target {
                    kind: kind::TASK_DEFINITION,
                    id: super::task_definitions::store_id(family, n),
                },
                _ => return Err(invalid_arn()),
            }
        }
        "service" | "task" | "task-set" | "container" | "service-deployment"
        | "service-revision" | "daemon" => {
            return Ok(None);
        }
        _ => return Err(invalid_arn()),
    };
    Ok(here.then_some(target))
}

/// Whether a stored record is a live resource (not deleted) that tags may be read or set on.
fn is_live(kind_: &str, record: &Value) -> bool {
    let status = record
        .get("status")
        .or_else(|| record.get("taskDefinition").and_then(|t| t.get("status")))
        .and_then(Value::as_str);
    match kind_ {
        k if k == kind::CLUSTER || k == kind::CAPACITY_PROVIDER => status == Some("ACTIVE"),
        k if k == kind::CONTAINER_INSTANCE => status != Some("INACTIVE"),
        // Task definitions keep their tags while INACTIVE; a deleted one is gone.
        k if k == kind::TASK_DEFINITION => status != Some("DELETE_IN_PROGRESS"),
        _ => false,
    }
}

fn tags_of(record: &Value) -> Result<Vec<s::Tag>, AwsError> {
    match record.get("tags") {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|_| common::server_error("A stored record is damaged.")),
    }
}

/// Loads the resource `resource_arn` names, lets `change` edit its tags, and stores it.
fn change_tags(
    ecs: &Ecs,
    ctx: &RequestContext,
    resource_arn: &str,
    change: impl FnOnce(&mut Vec<s::Tag>) -> Result<(), AwsError>,
) -> Result<(), AwsError> {
    let t = target(ctx, resource_arn)?.ok_or_else(|| missing(resource_arn, Op::Change))?;
    ecs.store
        .write(|tx| -> Result<(), Failure> {
            let Some((mut record, version)) = tx.get_json::<Value>(scope(ctx), t.kind, &t.id)?
            else {
                return Err(missing(resource_arn, Op::Change).into());
            };
            if !is_live(t.kind, &record) {
                return Err(missing(resource_arn, Op::Change).into());
            }
            let mut tags = tags_of(&record)?;
            change(&mut tags)?;
            let value = serde_json::to_value(&tags)
                .map_err(|_| common::server_error("Tags could not be stored."))?;
            match record.as_object_mut() {
                Some(obj) => {
                    obj.insert("tags".into(), value);
                }
                None => return Err(common::server_error("A stored record is damaged.").into()),
            }
            tx.put(scope(ctx), t.kind, &t.id, Some(version), &record)?;
            Ok(())
        })
        .map_err(aws)
}

/// The error for a resource that does not exist: clusters have their own.
fn missing(resource_arn: &str, op: Op) -> AwsError {
    match Arn::parse(resource_arn) {
        Some(a) if a.resource_parts().0 == "cluster" => cluster_not_found(),
        _ => resource_not_found(op),
    }
}

pub fn tag(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::TagResourceRequest,
) -> Result<s::TagResourceResponse, AwsError> {
    common::validate_tags(&input.tags)?;
    change_tags(ecs, ctx, &input.resource_arn, |tags| {
        common::merge_tags(tags, &input.tags);
        common::validate_tags(tags)
    })?;
    Ok(s::TagResourceResponse {})
}

pub fn untag(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::UntagResourceRequest,
) -> Result<s::UntagResourceResponse, AwsError> {
    for key in &input.tag_keys {
        if key.is_empty() || key.chars().count() > 128 {
            return Err(invalid("Tag keys must be between 1 and 128 characters."));
        }
    }
    change_tags(ecs, ctx, &input.resource_arn, |tags| {
        tags.retain(|t| !input.tag_keys.iter().any(|k| Some(k) == t.key.as_ref()));
        Ok(())
    })?;
    Ok(s::UntagResourceResponse {})
}

pub fn list(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::ListTagsForResourceRequest,
) -> Result<s::ListTagsForResourceResponse, AwsError> {
    let arn = input.resource_arn.as_str();
    let t = target(ctx, arn)?.ok_or_else(|| missing(arn, Op::List))?;
    ecs.store
        .read(|tx| -> Result<s::ListTagsForResourceResponse, Failure> {
            match tx.get_json::<Value>(scope(ctx), t.kind, &t.id)? {
                Some((record, _)) if is_live(t.kind, &record) => {
                    Ok(s::ListTagsForResourceResponse {
                        tags: Some(tags_of(&record)?),
                    })
                }
                _ => Err(missing(arn, Op::List).into()),
            }
        })
        .map_err(aws)
}

#[cfg(test)]
mod tests {
    use super::super::container_instances::tests::{ctx, ecs_with_cluster, register_one};
    use super::*;

    fn t(k: &str, v: &str) -> s::Tag {
        s::Tag {
            key: Some(k.into()),
            value: Some(v.into()),
        }
    }

    fn tags_of_arn(e: &Ecs, arn: &str) -> Result<Vec<(String, String)>, AwsError> {
        Ok(list(
            e,
            &ctx(),
            s::ListTagsForResourceRequest {
                resource_arn: arn.into(),
            },
        )?
        .tags
        .unwrap()
        .into_iter()
        .map(|t| (t.key.unwrap(), t.value.unwrap_or_default()))
        .collect())
    }

    #[test]
    fn arn_targets() {
        let c = ctx();
        assert_eq!(
            target(&c, "arn:aws:ecs:us-east-1:123456789012:cluster/web").unwrap(),
            Some(Target {
                kind: kind::CLUSTER,
                id: "web".into()
            })
        );
        assert_eq!(
            target(
                &c,
                "arn:aws:ecs:us-east-1:123456789012:task-definition/app:7"
            )
            .unwrap(),
            Some(Target {
                kind: kind::TASK_DEFINITION,
                id: super::super::task_definitions::store_id("app", 7)
            })
        );
        assert_eq!(
            target(
                &c,
                "arn:aws:ecs:us-east-1:123456789012:capacity-provider/cp"
            )
            .unwrap(),
            Some(Target {
                kind: kind::CAPACITY_PROVIDER,
                id: "cp".into()
            })
        );
        let id = "0123456789abcdef0123456789abcdef";
        assert_eq!(
            target(
                &c,
                &format!("arn:aws:ecs:us-east-1:123456789012:container-instance/web/{id}")
            )
            .unwrap(),
            Some(Target {
                kind: kind::CONTAINER_INSTANCE,
                id: format!("web/{id}")
            })
        );
        assert_eq!(
            target(
                &c,
                "arn:aws:ecs:eu-west-1:123456789012:capacity-provider/cp"
            )
            .unwrap(),
            None
        );
        assert_eq!(
            target(&c, "arn:aws:ecs:us-east-1:123456789012:service/web/api").unwrap(),
            None
        );
        assert_eq!(
            target(&c, "web").unwrap_err().code,
            "InvalidParameterException"
        );
        assert_eq!(
            target(&c, "arn:aws:ecr:us-east-1:123456789012:repository/x")
                .unwrap_err()
                .code,
            "InvalidParameterException"
        );
        assert_eq!(
            target(&c, "arn:aws:ecs:us-east-1:123456789012:task-definition/app")
                .unwrap_err()
                .code,
            "InvalidParameterException"
        );
        assert_eq!(
            target(&c, "arn:aws:ecs:eu-west-1:123456789012:cluster/web")
                .unwrap_err()
                .code,
            "ClusterNotFoundException"
        );
    }

    #[test]
    fn tag_untag_list_on_each_kind() {
        let e = ecs_with_cluster();
        let c = ctx();
        let ci = register_one(&e, vec![]).container_instance_arn.unwrap();
        super::super::capacity_providers::create(
            &e,
            &c,
            s::CreateCapacityProviderRequest {
                name: "cp1".into(),
                auto_scaling_group_provider: Some(s::AutoScalingGroupProvider {
                    auto_scaling_group_arn: "asg".into(),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )
        .unwrap();
        // A task definition, registered as the task-definition module stores it.
        super::super::task_definitions::register(
            &e,
            &c,
            s::RegisterTaskDefinitionRequest {
                family: "app".into(),
                container_definitions: vec![s::ContainerDefinition {
                    name: Some("app".into()),
                    image: Some("busybox".into()),
                    memory: Some(128),
                    ..Default::default()
                }],
                ..Default::default()
            },
        )
        .unwrap();
        let arns = [
            "arn:aws:ecs:us-east-1:123456789012:cluster/web".to_string(),
            "arn:aws:ecs:us-east-1:123456789012:capacity-provider/cp1".to_string(),
            "arn:aws:ecs:us-east-1:123456789012:task-definition/app:1".to_string(),
            ci,
        ];
        for arn in &arns {
            tag(
                &e,
                &c,
                s::TagResourceRequest {
                    resource_arn: arn.clone(),
                    tags: vec![t("a", "1"), t("b", "2")],
                },
            )
            .unwrap();
            tag(
                &e,
                &c,
                s::TagResourceRequest {
                    resource_arn: arn.clone(),
                    tags: vec![t("a", "3")],
                },
            )
            .unwrap();
            let mut got = tags_of_arn(&e, arn).unwrap();
            got.retain(|(k, _)| k != "team");
            assert_eq!(
                got,
                vec![("a".into(), "3".into()), ("b".into(), "2".into())],
                "{arn}"
            );
            untag(
                &e,
                &c,
                s::UntagResourceRequest {
                    resource_arn: arn.clone(),
                    tag_keys: vec!["a".into()],
                },
            )
            .unwrap();
            let mut got = tags_of_arn(&e, arn).unwrap();
            got.retain(|(k, _)| k != "team");
            assert_eq!(got, vec![("b".into(), "2".into())], "{arn}");
        }
        // DescribeTaskDefinition sees the tags set here.
        let td = super::super::task_definitions::describe(
            &e,
            &c,
            s::DescribeTaskDefinitionRequest {
                task_definition: "app:1".into(),
                include: Some(vec![s::TaskDefinitionField::Tags]),
            },
        )
        .unwrap();
        assert_eq!(td.tags.unwrap().len(), 1);
        assert_eq!(td.task_definition.unwrap().revision, Some(1));
        // The cluster record keeps its other fields.
        let cluster = e
            .store
            .read(|tx| tx.get_json::<s::Cluster>(scope(&c), kind::CLUSTER, "web"))
            .unwrap()
            .unwrap()
            .0;
        assert_eq!(cluster.status.as_deref(), Some("ACTIVE"));
        // Too many tags after merging.
        let many: Vec<_> = (0..50).map(|i| t(&format!("k{i}"), "v")).collect();
        assert_eq!(
            tag(
                &e,
                &c,
                s::TagResourceRequest {
                    resource_arn: arns[0].clone(),
                    tags: many
                }
            )
            .unwrap_err()
            .code,
            "InvalidParameterException"
        );
        assert_eq!(
            tag(
                &e,
                &c,
                s::TagResourceRequest {
                    resource_arn: arns[0].clone(),
                    tags: vec![t("aws:x", "1")]
                }
            )
            .unwrap_err()
            .code,
            "InvalidParameterException"
        );
        // Missing resources.
        let nope = |arn: &str| {
            tag(
                &e,
                &c,
                s::TagResourceRequest {
                    resource_arn: arn.into(),
                    tags: vec![t("a", "1")],
                },
            )
        };
        assert_eq!(
            nope("arn:aws:ecs:us-east-1:123456789012:cluster/nope")
                .unwrap_err()
                .code,
            "ClusterNotFoundException"
        );
        assert_eq!(
            nope("arn:aws:ecs:us-east-1:123456789012:capacity-provider/nope")
                .unwrap_err()
                .code,
            "ResourceNotFoundException"
        );
        assert_eq!(
            nope("arn:aws:ecs:us-east-1:123456789012:task-definition/app:2")
                .unwrap_err()
                .code,
            "ResourceNotFoundException"
        );
        assert_eq!(
            tags_of_arn(
                &e,
                "arn:aws:ecs:us-east-1:123456789012:capacity-provider/nope"
            )
            .unwrap_err()
            .code,
            "ClientException"
        );
        assert_eq!(
            tags_of_arn(&e, "not-an-arn").unwrap_err().code,
            "InvalidParameterException"
        );
    }
}
