//! Tags on EC2 resources: CreateTags, DeleteTags, DescribeTags over VPCs, subnets, security
//! groups and their rules, network interfaces, route tables and network ACLs.

use berth_store::{Scope, Tx};
use berth_wire::ec2::shapes as s;
use berth_wire::{AwsError, RequestContext};

use super::entities::{self as e, StoredGroup, StoredInterface, StoredVpc, kind};
use super::error as err;
use super::filter::{self, Filterable};
use super::page;
use crate::failure::Failure;

/// The most tags a resource may have.
const MAX_TAGS: usize = 50;

/// Adds or replaces `new` in `tags`, checking EC2's limits.
pub fn merge(tags: &mut Vec<s::Tag>, new: &[s::Tag]) -> Result<(), AwsError> {
    for t in new {
        let key = t.key.as_deref().unwrap_or("");
        if key.is_empty() || key.chars().count() > 128 {
            return Err(err::invalid_parameter(format!(
                "Tag key must be between 1 and 128 characters: '{key}'"
            )));
        }
        if key.starts_with("aws:") {
            return Err(err::invalid_parameter(
                "Tag keys starting with 'aws:' are reserved for internal use",
            ));
        }
        let value = t.value.clone().unwrap_or_default();
        if value.chars().count() > 256 {
            return Err(err::invalid_parameter(format!(
                "Tag value exceeds the maximum length of 256 characters for key '{key}'"
            )));
        }
        match tags.iter_mut().find(|x| x.key.as_deref() == Some(key)) {
            Some(x) => x.value = Some(value),
            None => tags.push(s::Tag {
                key: Some(key.to_string()),
                value: Some(value),
            }),
        }
    }
    if tags.len() > MAX_TAGS {
        return Err(AwsError::new(
            "TagLimitExceeded",
            400,
            format!("The maximum number of Tags for a resource has been reached ({MAX_TAGS})."),
        ));
    }
    Ok(())
}

/// Removes `which` from `tags`: a tag with a value goes only when the value matches.
fn remove(tags: &mut Vec<s::Tag>, which: &[s::Tag]) {
    if which.is_empty() {
        tags.clear();
        return;
    }
    tags.retain(|t| {
        !which
            .iter()
            .any(|w| w.key == t.key && (w.value.is_none() || w.value == t.value))
    });
}

/// Runs `f` on the tags of resource `id` and stores the result.
fn with_tags(
    tx: &mut Tx<'_>,
    scope: Scope<'_>,
    id: &str,
    f: &dyn Fn(&mut Vec<s::Tag>) -> Result<(), AwsError>,
) -> Result<(), Failure> {
    fn update<T: serde::Serialize + serde::de::DeserializeOwned>(
        tx: &mut Tx<'_>,
        scope: Scope<'_>,
        kind: &str,
        id: &str,
        tags: fn(&mut T) -> &mut Option<Vec<s::Tag>>,
        f: &dyn Fn(&mut Vec<s::Tag>) -> Result<(), AwsError>,
    ) -> Result<(), Failure> {
        let (mut r, v) = e::get::<T>(tx, scope, kind, id)?.ok_or_else(|| err::not_found(id))?;
        f(tags(&mut r).get_or_insert_with(Vec::new))?;
        tx.put(scope, kind, id, Some(v), &r)?;
        Ok(())
    }
    let prefix = id.split('-').next().unwrap_or("");
    match prefix {
        "vpc" => update::<StoredVpc>(tx, scope, kind::VPC, id, |r| &mut r.vpc.tags, f),
        "subnet" => update::<s::Subnet>(tx, scope, kind::SUBNET, id, |r| &mut r.tags, f),
        "sg" => update::<StoredGroup>(tx, scope, kind::GROUP, id, |r| &mut r.group.tags, f),
        "eni" => update::<StoredInterface>(
            tx,
            scope,
            kind::INTERFACE,
            id,
            |r| &mut r.interface.tag_set,
            f,
        ),
        "rtb" => update::<s::RouteTable>(tx, scope, kind::ROUTE_TABLE, id, |r| &mut r.tags, f),
        "acl" => update::<s::NetworkAcl>(tx, scope, kind::NETWORK_ACL, id, |r| &mut r.tags, f),
        "sgr" => {
            for rec in tx.list(scope, kind::GROUP, "", None, usize::MAX)? {
                let mut g: StoredGroup = rec.decode(kind::GROUP)?;
                if let Some(r) = g
                    .rules
                    .iter_mut()
                    .find(|r| r.security_group_rule_id.as_deref() == Some(id))
                {
                    f(r.tags.get_or_insert_with(Vec::new))?;
                    tx.put(scope, kind::GROUP, &rec.id, Some(rec.version), &g)?;
                    return Ok(());
                }
            }
            Err(err::not_found(id).into())
        }
        _ => Err(AwsError::new("InvalidID", 400, format!("The ID '{id}' is not valid")).into()),
    }
}

pub fn create(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    input: s::CreateTagsRequest,
) -> Result<(), Failure> {
    let scope = e::scope(ctx);
    for id in &input.resources {
        with_tags(tx, scope, id, &|tags| merge(tags, &input.tags))?;
    }
    Ok(())
}

pub fn delete(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    input: s::DeleteTagsRequest,
) -> Result<(), Failure> {
    let scope = e::scope(ctx);
    let which = input.tags.clone().unwrap_or_default();
    for id in &input.resources {
        with_tags(tx, scope, id, &|tags| {
            remove(tags, &which);
            Ok(())
        })?;
    }
    Ok(())
}

struct Row(s::TagDescription);

impl Filterable for Row {
    fn values(&self, name: &str) -> Option<Vec<String>> {
        let t = &self.0;
        Some(match name {
            "key" => filter::one(&t.key),
            "value" => filter::one(&t.value),
            "resource-id" => filter::one(&t.resource_id),
            "resource-type" => t.resource_type.iter().map(|r| r.to_string()).collect(),
            _ => return None,
        })
    }
    fn tags(&self) -> &[s::Tag] {
        &[]
    }
}

pub fn describe(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    input: s::DescribeTagsRequest,
) -> Result<s::DescribeTagsResult, Failure> {
    let scope = e::scope(ctx);
    let mut filters = input.filters.unwrap_or_default();
    // `tag:<key>` on DescribeTags is key = <key> and value among the values.
    let mut tag_filters = Vec::new();
    filters.retain(|f| {
        if f.name.as_deref().is_some_and(|n| n.starts_with("tag:")) {
            tag_filters.push(f.clone());
            false
        } else {
            true
        }
    });
    filter::check(&Row(s::TagDescription::default()), &filters)?;
    let mut rows: Vec<(String, s::ResourceType, Vec<s::Tag>)> = Vec::new();
    for v in e::all::<StoredVpc>(tx, scope, kind::VPC)? {
        rows.push((
            v.id().to_string(),
            s::ResourceType::Vpc,
            v.vpc.tags.unwrap_or_default(),
        ));
    }
    for sn in e::all::<s::Subnet>(tx, scope, kind::SUBNET)? {
        rows.push((
            sn.subnet_id.unwrap_or_default(),
            s::ResourceType::Subnet,
            sn.tags.unwrap_or_default(),
        ));
    }
    for g in e::all::<StoredGroup>(tx, scope, kind::GROUP)? {
        for r in &g.rules {
            rows.push((
                r.security_group_rule_id.clone().unwrap_or_default(),
                s::ResourceType::SecurityGroupRule,
                r.tags.clone().unwrap_or_default(),
            ));
        }
        rows.push((
            g.id().to_string(),
            s::ResourceType::SecurityGroup,
            g.group.tags.unwrap_or_default(),
        ));
    }
    for i in e::all::<StoredInterface>(tx, scope, kind::INTERFACE)? {
        rows.push((
            i.id().to_string(),
            s::ResourceType::NetworkInterface,
            i.interface.tag_set.unwrap_or_default(),
        ));
    }
    for r in e::all::<s::RouteTable>(tx, scope, kind::ROUTE_TABLE)? {
        rows.push((
            r.route_table_id.unwrap_or_default(),
            s::ResourceType::RouteTable,
            r.tags.unwrap_or_default(),
        ));
    }
    for a in e::all::<s::NetworkAcl>(tx, scope, kind::NETWORK_ACL)? {
        rows.push((
            a.network_acl_id.unwrap_or_default(),
            s::ResourceType::NetworkAcl,
            a.tags.unwrap_or_default(),
        ));
    }
    let mut out = Vec::new();
    for (id, ty, tags) in rows {
        for t in tags {
            let row = Row(s::TagDescription {
                key: t.key.clone(),
                value: t.value.clone(),
                resource_id: Some(id.clone()),
                resource_type: Some(ty),
            });
            let tag_ok = tag_filters.iter().all(|f| {
                let key = f.name.as_deref().unwrap_or("").trim_start_matches("tag:");
                t.key.as_deref() == Some(key)
                    && f.values
                        .iter()
                        .flatten()
                        .any(|v| filter::wildcard(v, t.value.as_deref().unwrap_or("")))
            });
            if tag_ok && filter::matches(&row, &filters)? {
                out.push(row.0);
            }
        }
    }
    let (tags, next_token) = page(
        out,
        |t| {
            format!(
                "{}\u{1}{}",
                t.resource_id.clone().unwrap_or_default(),
                t.key.clone().unwrap_or_default()
            )
        },
        input.max_results,
        input.next_token.as_deref(),
    )?;
    Ok(s::DescribeTagsResult {
        tags: Some(tags),
        next_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(k: &str, v: Option<&str>) -> s::Tag {
        s::Tag {
            key: Some(k.into()),
            value: v.map(String::from),
        }
    }

    #[test]
    fn merge_and_remove() {
        let mut tags = Vec::new();
        merge(&mut tags, &[tag("Name", Some("a")), tag("env", None)]).unwrap();
        merge(&mut tags, &[tag("Name", Some("b"))]).unwrap();
        assert_eq!(tags, [tag("Name", Some("b")), tag("env", Some(""))]);
        assert!(merge(&mut tags, &[tag("aws:x", Some("1"))]).is_err());
        remove(&mut tags, &[tag("Name", Some("a"))]);
        assert_eq!(tags.len(), 2, "a value that differs keeps the tag");
        remove(&mut tags, &[tag("Name", None)]);
        assert_eq!(tags, [tag("env", Some(""))]);
        let many: Vec<s::Tag> = (0..51).map(|i| tag(&format!("k{i}"), Some("v"))).collect();
        assert_eq!(
            merge(&mut tags, &many).unwrap_err().code,
            "TagLimitExceeded"
        );
    }
}
