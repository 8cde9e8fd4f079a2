//! Log groups: CreateLogGroup, DeleteLogGroup, DescribeLogGroups, Put/DeleteRetentionPolicy,
//! and tags (TagResource, UntagResource, ListTagsForResource and the older TagLogGroup,
//! UntagLogGroup, ListTagsLogGroup).
//!
//! A group is stored as its wire shape with its tags; `arn`, `logGroupArn` and
//! `metricFilterCount` are derived when it is described, `storedBytes` is kept up to date by
//! PutLogEvents.

use std::collections::BTreeMap;

use berth_store::Tx;
use berth_wire::logs::ErrorCode;
use berth_wire::logs::shapes as s;
use berth_wire::{AwsError, RequestContext};

use super::Logs;
use super::common::{
    self, GroupRecord, RETENTION_DAYS, aws, check_group_name, get_group, group_arn, invalid, kind,
    scope, validation,
};
use crate::failure::Failure;

/// A group as DescribeLogGroups shows it.
pub fn present(ctx: &RequestContext, stored: &s::LogGroup) -> s::LogGroup {
    let mut g = stored.clone();
    let name = g.log_group_name.clone().unwrap_or_default();
    let arn = group_arn(ctx, &name);
    g.arn = Some(format!("{arn}:*"));
    g.log_group_arn = Some(arn);
    g.metric_filter_count = Some(0);
    g.stored_bytes.get_or_insert(0);
    g.log_group_class.get_or_insert(s::LogGroupClass::Standard);
    g
}

pub fn create(
    logs: &Logs,
    ctx: &RequestContext,
    input: s::CreateLogGroupRequest,
) -> Result<(), AwsError> {
    let name = input.log_group_name;
    check_group_name(&name, "logGroupName")?;
    if name.starts_with("aws/") {
        return Err(invalid(
            "Log group names starting with 'aws/' are reserved for AWS.",
        ));
    }
    let tags = input.tags.unwrap_or_default();
    if !tags.is_empty() {
        common::validate_tags(&tags)?;
    }
    let record = GroupRecord {
        group: s::LogGroup {
            log_group_name: Some(name.clone()),
            creation_time: Some(ctx.now.millis()),
            stored_bytes: Some(0),
            kms_key_id: input.kms_key_id,
            log_group_class: Some(input.log_group_class.unwrap_or(s::LogGroupClass::Standard)),
            deletion_protection_enabled: input.deletion_protection_enabled,
            ..Default::default()
        },
        tags,
    };
    logs.store
        .write(|tx| -> Result<(), Failure> {
            if tx.get(scope(ctx), kind::GROUP, &name)?.is_some() {
                return Err(ErrorCode::ResourceAlreadyExistsException
                    .with("The specified log group already exists")
                    .into());
            }
            tx.insert(scope(ctx), kind::GROUP, &name, &record)?;
            Ok(())
        })
        .map_err(aws)
}

pub fn delete(
    logs: &Logs,
    ctx: &RequestContext,
    input: s::DeleteLogGroupRequest,
) -> Result<(), AwsError> {
    let name = input.log_group_name;
    check_group_name(&name, "logGroupName")?;
    logs.store
        .write(|tx| -> Result<(), Failure> {
            let (g, _) = get_group(tx, ctx, &name)?;
            if g.group.deletion_protection_enabled == Some(true) {
                return Err(ErrorCode::ValidationException
                    .with("Log group deletion protection is enabled. Disable it before deleting the log group.")
                    .into());
            }
            let streams = tx.list(scope(ctx), kind::STREAM, &format!("{name}:"), None, usize::MAX)?;
            for r in streams {
                tx.delete(scope(ctx), kind::STREAM, &r.id)?;
            }
            tx.delete_log_events(scope(ctx), &name, None)?;
            tx.delete(scope(ctx), kind::GROUP, &name)?;
            Ok(())
        })
        .map_err(aws)
}

pub fn describe(
    logs: &Logs,
    ctx: &RequestContext,
    input: s::DescribeLogGroupsRequest,
) -> Result<s::DescribeLogGroupsResponse, AwsError> {
    if input.log_group_name_prefix.is_some() && input.log_group_name_pattern.is_some() {
        return Err(invalid(
            "LogGroupNamePrefix and LogGroupNamePattern are mutually exclusive parameters.",
        ));
    }
    if let Some(p) = &input.log_group_name_prefix {
        check_group_name(p, "logGroupNamePrefix")?;
    }
    if let Some(p) = &input.log_group_name_pattern {
        if p.chars().count() > 512 {
            return Err(validation(
                p,
                "logGroupNamePattern",
                "Member must have length less than or equal to 512",
            ));
        }
        if !p.is_empty() && check_group_name(p, "logGroupNamePattern").is_err() {
            return Err(validation(
                p,
                "logGroupNamePattern",
                r"Member must satisfy regular expression pattern: [\.\-_/#A-Za-z0-9]*",
            ));
        }
    }
    let limit = common::check_limit(input.limit, 50)?;
    let after = input
        .next_token
        .as_deref()
        .map(common::decode_token)
        .transpose()?;
    let prefix = input.log_group_name_prefix.clone().unwrap_or_default();
    let pattern = input
        .log_group_name_pattern
        .as_deref()
        .map(str::to_ascii_lowercase);
    let identifiers: Option<Vec<String>> = input.log_group_identifiers.as_ref().map(|ids| {
        ids.iter()
            .map(|i| common::group_from_arn(ctx, i).unwrap_or(i).to_string())
            .collect()
    });
    let records = logs
        .store
        .read(|tx| {
            tx.list(
                scope(ctx),
                kind::GROUP,
                &prefix,
                after.as_deref(),
                usize::MAX,
            )
        })
        .map_err(|e| aws(e.into()))?;
    let mut groups = Vec::new();
    let mut next_token = None;
    for r in records {
        let g: GroupRecord = r.decode(kind::GROUP).map_err(|e| aws(e.into()))?;
        let name = g.group.log_group_name.clone().unwrap_or_default();
        if let Some(p) = &pattern
            && !name.to_ascii_lowercase().contains(p.as_str())
        {
            continue;
        }
        if let Some(class) = input.log_group_class
            && g.group
                .log_group_class
                .unwrap_or(s::LogGroupClass::Standard)
                != class
        {
            continue;
        }
        if let Some(ids) = &identifiers
            && !ids.contains(&name)
        {
            continue;
        }
        if groups.len() == limit {
            next_token = groups
                .last()
                .and_then(|g: &s::LogGroup| g.log_group_name.as_deref())
                .map(common::encode_token);
            break;
        }
        groups.push(present(ctx, &g.group));
    }
    Ok(s::DescribeLogGroupsResponse {
        log_groups: Some(groups),
        next_token,
    })
}

pub fn put_retention(
    logs: &Logs,
    ctx: &RequestContext,
    input: s::PutRetentionPolicyRequest,
) -> Result<(), AwsError> {
    let name = input.log_group_name;
    check_group_name(&name, "logGroupName")?;
    let days = input.retention_in_days;
    if !RETENTION_DAYS.contains(&days) {
        let allowed: Vec<String> = RETENTION_DAYS.iter().map(i32::to_string).collect();
        return Err(validation(
            &days.to_string(),
            "retentionInDays",
            &format!(
                "Member must satisfy enum value set: [{}]",
                allowed.join(", ")
            ),
        ));
    }
    update_group(logs, ctx, &name, |g| {
        g.group.retention_in_days = Some(days);
        Ok(())
    })
}

pub fn delete_retention(
    logs: &Logs,
    ctx: &RequestContext,
    input: s::DeleteRetentionPolicyRequest,
) -> Result<(), AwsError> {
    check_group_name(&input.log_group_name, "logGroupName")?;
    update_group(logs, ctx, &input.log_group_name, |g| {
        g.group.retention_in_days = None;
        Ok(())
    })
}

fn update_group(
    logs: &Logs,
    ctx: &RequestContext,
    name: &str,
    f: impl FnOnce(&mut GroupRecord) -> Result<(), AwsError>,
) -> Result<(), AwsError> {
    logs.store
        .write(|tx: &mut Tx<'_>| -> Result<(), Failure> {
            let (mut g, version) = get_group(tx, ctx, name)?;
            f(&mut g)?;
            tx.put(scope(ctx), kind::GROUP, name, Some(version), &g)?;
            Ok(())
        })
        .map_err(aws)
}

/// The group a tagging ARN names; ResourceNotFoundException for one of another account,
/// region or resource type.
fn tagged_group(ctx: &RequestContext, arn: &str) -> Result<String, AwsError> {
    if !arn.starts_with("arn:") || arn.split(':').count() < 6 {
        return Err(invalid(format!("Invalid ARN: {arn}")));
    }
    match common::group_from_arn(ctx, arn) {
        Some(name) if check_group_name(name, "resourceArn").is_ok() => Ok(name.to_string()),
        _ => {
            Err(ErrorCode::ResourceNotFoundException.with("The specified resource does not exist."))
        }
    }
}

fn add_tags(
    logs: &Logs,
    ctx: &RequestContext,
    name: &str,
    tags: BTreeMap<String, String>,
) -> Result<(), AwsError> {
    common::validate_tags(&tags)?;
    update_group(logs, ctx, name, |g| {
        let mut merged = g.tags.clone();
        merged.extend(tags);
        if merged.len() > 50 {
            return Err(ErrorCode::TooManyTagsException.with(format!(
                "A resource can have no more than 50 tags; '{name}' would have {}.",
                merged.len()
            )));
        }
        g.tags = merged;
        Ok(())
    })
}

fn remove_tags(
    logs: &Logs,
    ctx: &RequestContext,
    name: &str,
    keys: &[String],
) -> Result<(), AwsError> {
    update_group(logs, ctx, name, |g| {
        for k in keys {
            g.tags.remove(k);
        }
        Ok(())
    })
}

fn tags_of(
    logs: &Logs,
    ctx: &RequestContext,
    name: &str,
) -> Result<BTreeMap<String, String>, AwsError> {
    logs.store
        .read(|tx| -> Result<_, Failure> { Ok(get_group(tx, ctx, name)?.0.tags) })
        .map_err(aws)
}

pub fn tag_resource(
    logs: &Logs,
    ctx: &RequestContext,
    input: s::TagResourceRequest,
) -> Result<(), AwsError> {
    let name = tagged_group(ctx, &input.resource_arn)?;
    add_tags(logs, ctx, &name, input.tags)
}

pub fn untag_resource(
    logs: &Logs,
    ctx: &RequestContext,
    input: s::UntagResourceRequest,
) -> Result<(), AwsError> {
    let name = tagged_group(ctx, &input.resource_arn)?;
    remove_tags(logs, ctx, &name, &input.tag_keys)
}

pub fn list_tags_for_resource(
    logs: &Logs,
    ctx: &RequestContext,
    input: s::ListTagsForResourceRequest,
) -> Result<s::ListTagsForResourceResponse, AwsError> {
    let name = tagged_group(ctx, &input.resource_arn)?;
    Ok(s::ListTagsForResourceResponse {
        tags: Some(tags_of(logs, ctx, &name)?),
    })
}

pub fn tag_log_group(
    logs: &Logs,
    ctx: &RequestContext,
    input: s::TagLogGroupRequest,
) -> Result<(), AwsError> {
    check_group_name(&input.log_group_name, "logGroupName")?;
    add_tags(logs, ctx, &input.log_group_name, input.tags)
}

pub fn untag_log_group(
    logs: &Logs,
    ctx: &RequestContext,
    input: s::UntagLogGroupRequest,
) -> Result<(), AwsError> {
    check_group_name(&input.log_group_name, "logGroupName")?;
    remove_tags(logs, ctx, &input.log_group_name, &input.tags)
}

pub fn list_tags_log_group(
    logs: &Logs,
    ctx: &RequestContext,
    input: s::ListTagsLogGroupRequest,
) -> Result<s::ListTagsLogGroupResponse, AwsError> {
    check_group_name(&input.log_group_name, "logGroupName")?;
    Ok(s::ListTagsLogGroupResponse {
        tags: Some(tags_of(logs, ctx, &input.log_group_name)?),
    })
}
