//! Attributes: PutAttributes, DeleteAttributes, ListAttributes.
//!
//! The only target type ECS has is `container-instance`; attributes live in the container
//! instance record's `attributes` list (name and value only, as DescribeContainerInstances
//! shows them).

use std::collections::BTreeMap;

use berth_wire::ecs::ErrorCode;
use berth_wire::ecs::shapes as s;
use berth_wire::{AwsError, RequestContext};

use super::Ecs;
use super::common::{self, Page, aws, invalid, kind, scope};
use super::container_instances::{instance_arn, is_custom_attribute, store_id};
use crate::failure::Failure;

/// Custom attributes a resource may carry, and attributes one call may name.
pub const MAX_CUSTOM: usize = 10;

/// An attribute name: 1–128 letters, digits, hyphens, underscores, periods, at signs,
/// forward slashes or back slashes.
pub fn valid_name(name: &str) -> bool {
    (1..=128).contains(&name.len())
        && name.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'@' | b'/' | b'\\')
        })
}

/// An attribute value: 1–128 letters, digits, hyphens, underscores, periods, at signs,
/// forward or back slashes, colons or spaces, not starting or ending with whitespace.
pub fn valid_value(value: &str) -> bool {
    (1..=128).contains(&value.len())
        && value.bytes().all(|b| {
            b.is_ascii_alphanumeric()
                || matches!(b, b'-' | b'_' | b'.' | b'@' | b'/' | b'\\' | b':' | b' ')
        })
        && !value.starts_with(char::is_whitespace)
        && !value.ends_with(char::is_whitespace)
}

/// Checks an attribute's name, value and target type as ECS does.
pub fn validate_attribute(a: &s::Attribute) -> Result<(), AwsError> {
    if !valid_name(&a.name) {
        return Err(invalid(format!(
            "Attribute name '{}' is invalid. The name must contain between 1 and 128 characters: letters (uppercase and lowercase), numbers, hyphens, underscores, periods, at signs, forward slashes or back slashes.",
            a.name
        )));
    }
    if let Some(v) = &a.value
        && !valid_value(v)
    {
        return Err(invalid(format!(
            "Attribute value '{v}' of attribute '{}' is invalid. The value must contain between 1 and 128 characters: letters (uppercase and lowercase), numbers, hyphens, underscores, periods, at signs, forward slashes, back slashes, colons, or spaces, and may not start or end with whitespace.",
            a.name
        )));
    }
    Ok(())
}

fn target_not_found(target: &str) -> AwsError {
    ErrorCode::TargetNotFoundException.with(format!(
        "Could not find {target}. The specified target wasn't found. You can specify a valid target by using the targetId and targetType parameters."
    ))
}

/// Checks a PutAttributes/DeleteAttributes request and groups its attributes by target.
fn by_target(
    attributes: &[s::Attribute],
    check_values: bool,
) -> Result<BTreeMap<String, Vec<s::Attribute>>, AwsError> {
    if attributes.is_empty() {
        return Err(invalid("Attributes cannot be empty."));
    }
    if attributes.len() > MAX_CUSTOM {
        return Err(invalid(
            "You can specify up to 10 attributes in a single call.",
        ));
    }
    let mut groups: BTreeMap<String, Vec<s::Attribute>> = BTreeMap::new();
    for a in attributes {
        if check_values {
            validate_attribute(a)?;
        } else if !valid_name(&a.name) {
            validate_attribute(&s::Attribute {
                value: None,
                ..a.clone()
            })?;
        }
        if a.target_type
            .is_some_and(|t| t != s::TargetType::ContainerInstance)
        {
            return Err(invalid(
                "The only supported target type is container-instance.",
            ));
        }
        let Some(target) = a.target_id.as_deref().filter(|t| !t.is_empty()) else {
            return Err(invalid(format!(
                "A targetId must be specified for attribute '{}'.",
                a.name
            )));
        };
        groups
            .entry(target.to_string())
            .or_default()
            .push(a.clone());
    }
    Ok(groups)
}

/// Applies `change` to the attributes of each target instance of `cluster`.
fn modify(
    ecs: &Ecs,
    ctx: &RequestContext,
    cluster: Option<&str>,
    groups: &BTreeMap<String, Vec<s::Attribute>>,
    change: impl Fn(&mut Vec<s::Attribute>, &[s::Attribute]),
) -> Result<(), AwsError> {
    ecs.store
        .write(|tx| -> Result<(), Failure> {
            let (c, _) = common::active_cluster(tx, ctx, cluster)?;
            let cluster_name = c.cluster_name.unwrap_or_default();
            for (target, attrs) in groups {
                let id =
                    store_id(ctx, &cluster_name, target).ok_or_else(|| target_not_found(target))?;
                let Some((mut ci, version)) =
                    tx.get_json::<s::ContainerInstance>(scope(ctx), kind::CONTAINER_INSTANCE, &id)?
                else {
                    return Err(target_not_found(target).into());
                };
                if ci.status.as_deref() == Some("INACTIVE") {
                    return Err(target_not_found(target).into());
                }
                let list = ci.attributes.get_or_insert_with(Vec::new);
                change(list, attrs);
                if list.iter().filter(|a| is_custom_attribute(&a.name)).count() > MAX_CUSTOM {
                    return Err(ErrorCode::AttributeLimitExceededException
                        .with("You can specify up to 10 custom attributes for each resource.")
                        .into());
                }
                ci.version = Some(ci.version.unwrap_or(1) + 1);
                tx.put(
                    scope(ctx),
                    kind::CONTAINER_INSTANCE,
                    &id,
                    Some(version),
                    &ci,
                )?;
            }
            Ok(())
        })
        .map_err(aws)
}

pub fn put(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::PutAttributesRequest,
) -> Result<s::PutAttributesResponse, AwsError> {
    let groups = by_target(&input.attributes, true)?;
    modify(
        ecs,
        ctx,
        input.cluster.as_deref(),
        &groups,
        super::container_instances::merge_attributes,
    )?;
    Ok(s::PutAttributesResponse {
        attributes: Some(input.attributes),
    })
}

pub fn delete(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::DeleteAttributesRequest,
) -> Result<s::DeleteAttributesResponse, AwsError> {
    let groups = by_target(&input.attributes, false)?;
    modify(
        ecs,
        ctx,
        input.cluster.as_deref(),
        &groups,
        |list, attrs| {
            list.retain(|a| !attrs.iter().any(|d| d.name == a.name));
        },
    )?;
    Ok(s::DeleteAttributesResponse {
        attributes: Some(input.attributes),
    })
}

pub fn list(
    ecs: &Ecs,
    ctx: &RequestContext,
    input: s::ListAttributesRequest,
) -> Result<s::ListAttributesResponse, AwsError> {
    if input.attribute_value.is_some() && input.attribute_name.is_none() {
        return Err(invalid(
            "To filter attributes by value, you must also specify an attribute name.",
        ));
    }
    let page = Page::parse(input.next_token.as_deref(), input.max_results, 100)?;
    ecs.store
        .read(|tx| -> Result<s::ListAttributesResponse, Failure> {
            let (c, _) = common::active_cluster(tx, ctx, input.cluster.as_deref())?;
            let cluster_name = c.cluster_name.unwrap_or_default();
            let prefix = format!("{cluster_name}/");
            // (instance id, attribute name) orders the listing; the page token is both.
            let mut found: Vec<((String, String), s::Attribute)> = Vec::new();
            for (id, ci) in
                tx.list_json::<s::ContainerInstance>(scope(ctx), kind::CONTAINER_INSTANCE, &prefix)?
            {
                if ci.status.as_deref() == Some("INACTIVE") {
                    continue;
                }
                let short = id[prefix.len()..].to_string();
                for a in ci.attributes.iter().flatten() {
                    if input.attribute_name.as_ref().is_some_and(|n| *n != a.name)
                        || input
                            .attribute_value
                            .as_ref()
                            .is_some_and(|v| a.value.as_ref() != Some(v))
                    {
                        continue;
                    }
                    found.push((
                        (short.clone(), a.name.clone()),
                        s::Attribute {
                            name: a.name.clone(),
                            value: a.value.clone(),
                            target_type: Some(s::TargetType::ContainerInstance),
                            target_id: Some(instance_arn(ctx, &cluster_name, &short)),
                        },
                    ));
                }
            }
            found.sort_by(|a, b| a.0.cmp(&b.0));
            if let Some(after) = &page.after {
                let (id, name) = after
                    .split_once('/')
                    .ok_or_else(|| invalid("The specified nextToken is invalid."))?;
                let after = (id.to_string(), name.to_string());
                found.retain(|(k, _)| *k > after);
            }
            let next_token = page.next_token(&mut found, |((id, name), _)| format!("{id}/{name}"));
            Ok(s::ListAttributesResponse {
                attributes: Some(found.into_iter().map(|(_, a)| a).collect()),
                next_token,
            })
        })
        .map_err(aws)
}

#[cfg(test)]
mod tests {
    use super::super::container_instances::tests::{ctx, ecs_with_cluster, register_one};
    use super::*;

    fn list_req(
        name: Option<&str>,
        value: Option<&str>,
        max: Option<i32>,
        token: Option<String>,
    ) -> s::ListAttributesRequest {
        s::ListAttributesRequest {
            cluster: Some("web".into()),
            target_type: s::TargetType::ContainerInstance,
            attribute_name: name.map(String::from),
            attribute_value: value.map(String::from),
            max_results: max,
            next_token: token,
        }
    }

    fn attr(name: &str, value: &str, target: &str) -> s::Attribute {
        s::Attribute {
            name: name.into(),
            value: Some(value.into()),
            target_type: Some(s::TargetType::ContainerInstance),
            target_id: Some(target.into()),
        }
    }

    #[test]
    fn name_and_value_rules() {
        assert!(valid_name("stack"));
        assert!(valid_name("com.example/zone@a_b-c\\d"));
        assert!(!valid_name(""));
        assert!(!valid_name("a b"));
        assert!(!valid_name("a:b"));
        assert!(!valid_name(&"a".repeat(129)));
        assert!(valid_name(&"a".repeat(128)));
        assert!(valid_value("us-east-1a"));
        assert!(valid_value("a b:c/d\\e@f"));
        assert!(!valid_value(" lead"));
        assert!(!valid_value("trail "));
        assert!(!valid_value(""));
        assert!(!valid_value("a=b"));
        assert!(!valid_value(&"v".repeat(129)));
    }

    #[test]
    fn put_list_delete() {
        let e = ecs_with_cluster();
        let c = ctx();
        let ci = register_one(&e, vec![]);
        let arn = ci.container_instance_arn.unwrap();
        let id = arn.rsplit('/').next().unwrap().to_string();
        let put_one = |a: s::Attribute| {
            put(
                &e,
                &c,
                s::PutAttributesRequest {
                    cluster: Some("web".into()),
                    attributes: vec![a],
                },
            )
        };
        put_one(attr("stack", "prod", &id)).unwrap();
        put_one(attr("stack", "dev", &arn)).unwrap();
        let listed = list(&e, &c, list_req(Some("stack"), None, None, None))
            .unwrap()
            .attributes
            .unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].value.as_deref(), Some("dev"));
        assert_eq!(listed[0].target_id.as_deref(), Some(arn.as_str()));
        assert_eq!(
            list(&e, &c, list_req(Some("stack"), Some("prod"), None, None))
                .unwrap()
                .attributes
                .unwrap()
                .len(),
            0
        );

        // Paging through everything (ECS's own attributes included) sees each once.
        let all = list(&e, &c, list_req(None, None, None, None))
            .unwrap()
            .attributes
            .unwrap();
        assert!(all.len() > 2);
        let mut seen = 0;
        let mut token = None;
        loop {
            let p = list(&e, &c, list_req(None, None, Some(2), token)).unwrap();
            seen += p.attributes.unwrap().len();
            token = p.next_token;
            if token.is_none() {
                break;
            }
        }
        assert_eq!(seen, all.len());

        let missing = put_one(attr("x", "y", "ffffffffffffffffffffffffffffffff")).unwrap_err();
        assert_eq!(missing.code, "TargetNotFoundException");
        assert!(missing.message.contains("ffffffffffffffffffffffffffffffff"));
        assert_eq!(
            put_one(attr("bad name", "y", &id)).unwrap_err().code,
            "InvalidParameterException"
        );

        let ten: Vec<_> = (0..10).map(|i| attr(&format!("k{i}"), "v", &id)).collect();
        let limit = put(
            &e,
            &c,
            s::PutAttributesRequest {
                cluster: Some("web".into()),
                attributes: ten,
            },
        )
        .unwrap_err();
        assert_eq!(limit.code, "AttributeLimitExceededException");

        delete(
            &e,
            &c,
            s::DeleteAttributesRequest {
                cluster: Some("web".into()),
                attributes: vec![s::Attribute {
                    value: None,
                    ..attr("stack", "x", &id)
                }],
            },
        )
        .unwrap();
        assert!(
            list(&e, &c, list_req(Some("stack"), None, None, None))
                .unwrap()
                .attributes
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            list(&e, &c, list_req(None, Some("x"), None, None))
                .unwrap_err()
                .code,
            "InvalidParameterException"
        );
    }
}
