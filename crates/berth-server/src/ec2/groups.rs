//! Security groups and their rules: create, describe (groups and rules), delete, authorize,
//! revoke, modify. Every change to a group's rules re-sends the assignments of the running
//! tasks it concerns (see `interfaces::affected_hosts`).

use berth_store::Tx;
use berth_wire::ec2::shapes as s;
use berth_wire::{AwsError, RequestContext};

use super::entities::{self as e, StoredGroup, StoredInterface, kind};
use super::error as err;
use super::filter::{self, Filterable};
use super::page;
use super::rules::{self, Flat, Spec};
use crate::failure::Failure;

impl Filterable for StoredGroup {
    fn values(&self, name: &str) -> Option<Vec<String>> {
        let g = &self.group;
        let of = |egress: bool| {
            self.rules
                .iter()
                .filter(move |r| r.is_egress == Some(egress))
        };
        let field = |egress: bool, f: &dyn Fn(&s::SecurityGroupRule) -> Option<String>| {
            of(egress).filter_map(f).collect::<Vec<_>>()
        };
        Some(match name {
            "description" => filter::one(&g.description),
            "group-id" => filter::one(&g.group_id),
            "group-name" => filter::one(&g.group_name),
            "owner-id" => filter::one(&g.owner_id),
            "vpc-id" => filter::one(&g.vpc_id),
            "ip-permission.cidr" => field(false, &|r| r.cidr_ipv4.clone()),
            "ip-permission.ipv6-cidr" => field(false, &|r| r.cidr_ipv6.clone()),
            "ip-permission.from-port" => field(false, &|r| r.from_port.map(|p| p.to_string())),
            "ip-permission.to-port" => field(false, &|r| r.to_port.map(|p| p.to_string())),
            "ip-permission.protocol" => field(false, &|r| r.ip_protocol.clone()),
            "ip-permission.group-id" => field(false, &|r| {
                r.referenced_group_info.as_ref()?.group_id.clone()
            }),
            "ip-permission.prefix-list-id" => field(false, &|r| r.prefix_list_id.clone()),
            "egress.ip-permission.cidr" => field(true, &|r| r.cidr_ipv4.clone()),
            "egress.ip-permission.ipv6-cidr" => field(true, &|r| r.cidr_ipv6.clone()),
            "egress.ip-permission.from-port" => {
                field(true, &|r| r.from_port.map(|p| p.to_string()))
            }
            "egress.ip-permission.to-port" => field(true, &|r| r.to_port.map(|p| p.to_string())),
            "egress.ip-permission.protocol" => field(true, &|r| r.ip_protocol.clone()),
            "egress.ip-permission.group-id" => field(true, &|r| {
                r.referenced_group_info.as_ref()?.group_id.clone()
            }),
            "egress.ip-permission.prefix-list-id" => field(true, &|r| r.prefix_list_id.clone()),
            _ => return None,
        })
    }
    fn tags(&self) -> &[s::Tag] {
        self.group.tags.as_deref().unwrap_or_default()
    }
}

struct Rule(s::SecurityGroupRule);

impl Filterable for Rule {
    fn values(&self, name: &str) -> Option<Vec<String>> {
        Some(match name {
            "group-id" => filter::one(&self.0.group_id),
            "security-group-rule-id" => filter::one(&self.0.security_group_rule_id),
            _ => return None,
        })
    }
    fn tags(&self) -> &[s::Tag] {
        self.0.tags.as_deref().unwrap_or_default()
    }
}

fn empty_group() -> StoredGroup {
    StoredGroup {
        group: s::SecurityGroup::default(),
        rules: Vec::new(),
    }
}

/// A group as DescribeSecurityGroups shows it: permissions derived from its rules.
pub fn present(g: &StoredGroup) -> s::SecurityGroup {
    let owner = g.group.owner_id.clone().unwrap_or_default();
    let mut out = g.group.clone();
    out.ip_permissions = Some(rules::permissions(&g.rules, false, &owner));
    out.ip_permissions_egress = Some(rules::permissions(&g.rules, true, &owner));
    out
}

/// The group a request names by id, or by name in the default VPC (EC2's older form).
fn named_group(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    id: Option<&str>,
    name: Option<&str>,
) -> Result<(StoredGroup, i64), Failure> {
    let scope = e::scope(ctx);
    if let Some(id) = id {
        err::check_id(id, "sg")?;
        return e::group(tx, scope, id);
    }
    let Some(name) = name else {
        return Err(err::missing("GroupId").into());
    };
    let vpc = e::default_vpc(tx, scope)?.ok_or_else(|| {
        AwsError::new(
            "VPCIdNotSpecified",
            400,
            "No default VPC for this user. GroupName is only supported for EC2-Classic and default VPC.",
        )
    })?;
    let found = tx
        .list(scope, kind::GROUP, "", None, usize::MAX)?
        .into_iter()
        .map(|r| Ok((r.decode::<StoredGroup>(kind::GROUP)?, r.version)))
        .collect::<Result<Vec<_>, Failure>>()?
        .into_iter()
        .find(|(g, _)| g.vpc_id() == vpc.id() && g.name() == name);
    found.ok_or_else(|| {
        AwsError::new(
            "InvalidGroup.NotFound",
            400,
            format!(
                "The security group '{name}' does not exist in default VPC '{}'",
                vpc.id()
            ),
        )
        .into()
    })
}

pub fn create(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    input: s::CreateSecurityGroupRequest,
) -> Result<s::CreateSecurityGroupResult, Failure> {
    let scope = e::scope(ctx);
    let name = input.group_name.trim();
    if name.is_empty() || name.len() > 255 {
        return Err(err::invalid_value("GroupName", &input.group_name, "").into());
    }
    if name.starts_with("sg-") {
        return Err(err::invalid_parameter("Group names may not be in the format sg-*.").into());
    }
    if input.description.is_empty() || input.description.len() > 255 {
        return Err(err::invalid_value("GroupDescription", &input.description, "").into());
    }
    let vpc = match &input.vpc_id {
        Some(id) => {
            err::check_id(id, "vpc")?;
            e::vpc(tx, scope, id)?.0
        }
        None => e::default_vpc(tx, scope)?.ok_or_else(|| {
            AwsError::new("VPCIdNotSpecified", 400, "No default VPC for this user")
        })?,
    };
    let groups = e::all::<StoredGroup>(tx, scope, kind::GROUP)?;
    if groups
        .iter()
        .any(|g| g.vpc_id() == vpc.id() && g.name() == name)
    {
        return Err(AwsError::new(
            "InvalidGroup.Duplicate",
            400,
            format!(
                "The security group '{name}' already exists for VPC '{}'",
                vpc.id()
            ),
        )
        .into());
    }
    let tags = super::vpcs::requested_tags(
        input.tag_specifications.as_ref(),
        s::ResourceType::SecurityGroup,
    )?;
    let id = e::new_id("sg");
    let group = StoredGroup {
        group: s::SecurityGroup {
            group_id: Some(id.clone()),
            group_name: Some(name.to_string()),
            description: Some(input.description.clone()),
            owner_id: Some(scope.account.to_string()),
            vpc_id: Some(vpc.id().to_string()),
            security_group_arn: Some(e::arn(scope, &format!("security-group/{id}"))),
            tags: Some(tags.clone()),
            ..Default::default()
        },
        rules: vec![rules::allow_all_out(scope, &id)],
    };
    tx.insert(scope, kind::GROUP, &id, &group)?;
    Ok(s::CreateSecurityGroupResult {
        group_id: Some(id),
        security_group_arn: group.group.security_group_arn.clone(),
        tags: (!tags.is_empty()).then_some(tags),
    })
}

pub fn describe(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    input: s::DescribeSecurityGroupsRequest,
) -> Result<s::DescribeSecurityGroupsResult, Failure> {
    let scope = e::scope(ctx);
    let filters = input.filters.unwrap_or_default();
    filter::check(&empty_group(), &filters)?;
    let all = e::all::<StoredGroup>(tx, scope, kind::GROUP)?;
    let ids = input.group_ids.unwrap_or_default();
    for id in &ids {
        err::check_id(id, "sg")?;
        if !all.iter().any(|g| g.id() == id) {
            return Err(err::not_found(id).into());
        }
    }
    // GroupName names groups of the default VPC.
    let names = input.group_names.unwrap_or_default();
    let default_vpc = if names.is_empty() {
        None
    } else {
        e::default_vpc(tx, scope)?.map(|v| v.id().to_string())
    };
    for n in &names {
        if !all
            .iter()
            .any(|g| g.name() == n && Some(g.vpc_id()) == default_vpc.as_deref())
        {
            return Err(AwsError::new(
                "InvalidGroup.NotFound",
                400,
                format!(
                    "The security group '{n}' does not exist in default VPC '{}'",
                    default_vpc.as_deref().unwrap_or("")
                ),
            )
            .into());
        }
    }
    let mut out = Vec::new();
    for g in all {
        let by_id = ids.is_empty() || ids.iter().any(|i| i == g.id());
        let by_name = names.is_empty()
            || (names.iter().any(|n| n == g.name()) && Some(g.vpc_id()) == default_vpc.as_deref());
        if by_id && by_name && filter::matches(&g, &filters)? {
            out.push(present(&g));
        }
    }
    let (security_groups, next_token) = page(
        out,
        |g| g.group_id.clone().unwrap_or_default(),
        input.max_results,
        input.next_token.as_deref(),
    )?;
    Ok(s::DescribeSecurityGroupsResult {
        security_groups: Some(security_groups),
        next_token,
    })
}

pub fn delete(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    input: s::DeleteSecurityGroupRequest,
) -> Result<s::DeleteSecurityGroupResult, Failure> {
    let scope = e::scope(ctx);
    let (g, _) = named_group(
        tx,
        ctx,
        input.group_id.as_deref(),
        input.group_name.as_deref(),
    )?;
    let id = g.id().to_string();
    if g.name() == "default" {
        return Err(AwsError::new(
            "CannotDelete",
            400,
            format!("the specified group: \"{id}\" name: \"default\" cannot be deleted by a user"),
        )
        .into());
    }
    let in_use = e::all::<StoredInterface>(tx, scope, kind::INTERFACE)?
        .iter()
        .any(|i| i.group_ids().contains(&id));
    let referenced = e::all::<StoredGroup>(tx, scope, kind::GROUP)?
        .iter()
        .filter(|o| o.id() != id)
        .any(|o| {
            o.rules.iter().any(|r| {
                r.referenced_group_info
                    .as_ref()
                    .and_then(|x| x.group_id.as_deref())
                    == Some(id.as_str())
            })
        });
    if in_use || referenced {
        return Err(err::dependency(format!("resource {id} has a dependent object")).into());
    }
    tx.delete(scope, kind::GROUP, &id)?;
    Ok(s::DeleteSecurityGroupResult {
        r#return: Some(true),
        group_id: Some(id),
    })
}

/// The specs of a request's permissions, with group peers resolved and checked.
fn specs(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    permissions: &[s::IpPermission],
) -> Result<Vec<Spec>, Failure> {
    let mut out = Vec::new();
    let mut resolve = |pair: &s::UserIdGroupPair| -> Result<String, AwsError> {
        let found = named_group(
            tx,
            ctx,
            pair.group_id.as_deref(),
            pair.group_name.as_deref(),
        )
        .map_err(|f| match f {
            Failure::Aws(e) => e,
            Failure::Store(e) => err::aws(Failure::Store(e)),
        })?;
        Ok(found.0.id().to_string())
    };
    for p in permissions {
        out.extend(rules::specs_of(p, &mut resolve)?);
    }
    Ok(out)
}

/// What a rule change needs to tell: the hosts whose tasks must get their rules again.
pub struct Changed<T> {
    pub output: T,
    pub hosts: Vec<String>,
}

fn authorize(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    group: (Option<&str>, Option<&str>),
    permissions: Vec<s::IpPermission>,
    egress: bool,
    tags: Vec<s::Tag>,
) -> Result<Changed<Vec<s::SecurityGroupRule>>, Failure> {
    let scope = e::scope(ctx);
    let (mut g, v) = named_group(tx, ctx, group.0, group.1)?;
    let specs = specs(tx, ctx, &permissions)?;
    let id = g.id().to_string();
    let mut added = rules::authorize(scope, &id, &mut g.rules, egress, specs)?;
    // Tags given with the call go on each new rule.
    if !tags.is_empty() {
        let new_ids: Vec<String> = added
            .iter()
            .filter_map(|r| r.security_group_rule_id.clone())
            .collect();
        for r in g.rules.iter_mut() {
            if r.security_group_rule_id
                .as_ref()
                .is_some_and(|i| new_ids.contains(i))
            {
                r.tags = Some(tags.clone());
            }
        }
        for r in added.iter_mut() {
            r.tags = Some(tags.clone());
        }
    }
    tx.put(scope, kind::GROUP, &id, Some(v), &g)?;
    let hosts = super::interfaces::affected_hosts(tx, scope, &[id], &[], None)?;
    Ok(Changed {
        output: added,
        hosts,
    })
}

pub fn authorize_ingress(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    input: s::AuthorizeSecurityGroupIngressRequest,
) -> Result<Changed<s::AuthorizeSecurityGroupIngressResult>, Failure> {
    let flat = Flat {
        cidr_ip: input.cidr_ip.as_deref(),
        ip_protocol: input.ip_protocol.as_deref(),
        from_port: input.from_port,
        to_port: input.to_port,
        source_group_name: input.source_security_group_name.as_deref(),
        source_group_owner: input.source_security_group_owner_id.as_deref(),
    };
    let perms = rules::requested(input.ip_permissions.as_ref(), &flat)?;
    let tags = super::vpcs::requested_tags(
        input.tag_specifications.as_ref(),
        s::ResourceType::SecurityGroupRule,
    )?;
    let c = authorize(
        tx,
        ctx,
        (input.group_id.as_deref(), input.group_name.as_deref()),
        perms,
        false,
        tags,
    )?;
    Ok(Changed {
        output: s::AuthorizeSecurityGroupIngressResult {
            r#return: Some(true),
            security_group_rules: Some(c.output),
        },
        hosts: c.hosts,
    })
}

pub fn authorize_egress(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    input: s::AuthorizeSecurityGroupEgressRequest,
) -> Result<Changed<s::AuthorizeSecurityGroupEgressResult>, Failure> {
    let flat = Flat {
        cidr_ip: input.cidr_ip.as_deref(),
        ip_protocol: input.ip_protocol.as_deref(),
        from_port: input.from_port,
        to_port: input.to_port,
        source_group_name: input.source_security_group_name.as_deref(),
        source_group_owner: input.source_security_group_owner_id.as_deref(),
    };
    let perms = rules::requested(input.ip_permissions.as_ref(), &flat)?;
    let tags = super::vpcs::requested_tags(
        input.tag_specifications.as_ref(),
        s::ResourceType::SecurityGroupRule,
    )?;
    let c = authorize(tx, ctx, (Some(&input.group_id), None), perms, true, tags)?;
    Ok(Changed {
        output: s::AuthorizeSecurityGroupEgressResult {
            r#return: Some(true),
            security_group_rules: Some(c.output),
        },
        hosts: c.hosts,
    })
}

fn revoked(r: &s::SecurityGroupRule) -> s::RevokedSecurityGroupRule {
    s::RevokedSecurityGroupRule {
        security_group_rule_id: r.security_group_rule_id.clone(),
        group_id: r.group_id.clone(),
        is_egress: r.is_egress,
        ip_protocol: r.ip_protocol.clone(),
        from_port: r.from_port,
        to_port: r.to_port,
        cidr_ipv4: r.cidr_ipv4.clone(),
        cidr_ipv6: r.cidr_ipv6.clone(),
        prefix_list_id: r.prefix_list_id.clone(),
        referenced_group_id: r
            .referenced_group_info
            .as_ref()
            .and_then(|g| g.group_id.clone()),
        description: r.description.clone(),
    }
}

/// What a revocation removed, and the permissions no rule matched.
pub struct Revoked {
    pub removed: Vec<s::RevokedSecurityGroupRule>,
    pub unknown: Vec<s::IpPermission>,
}

fn revoke(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    group: (Option<&str>, Option<&str>),
    permissions: Option<Vec<s::IpPermission>>,
    rule_ids: Option<&Vec<String>>,
    egress: bool,
) -> Result<Changed<Revoked>, Failure> {
    let scope = e::scope(ctx);
    let (mut g, v) = named_group(tx, ctx, group.0, group.1)?;
    let id = g.id().to_string();
    let (removed, unknown) = match (rule_ids.filter(|r| !r.is_empty()), permissions) {
        (Some(_), Some(_)) => {
            return Err(err::combination(
                "The parameter 'SecurityGroupRuleIds' may not be used in combination with 'IpPermissions'",
            )
            .into());
        }
        (Some(ids), None) => (
            rules::revoke_ids(&mut g.rules, egress, ids, &id)?,
            Vec::new(),
        ),
        (None, Some(perms)) => {
            let specs = specs(tx, ctx, &perms)?;
            rules::revoke(&mut g.rules, egress, &specs)?
        }
        (None, None) => return Err(err::missing("IpPermissions").into()),
    };
    tx.put(scope, kind::GROUP, &id, Some(v), &g)?;
    let hosts = super::interfaces::affected_hosts(tx, scope, &[id], &[], None)?;
    Ok(Changed {
        output: Revoked {
            removed: removed.iter().map(revoked).collect(),
            unknown: unknown.iter().map(rules::permission_of).collect(),
        },
        hosts,
    })
}

/// What a Revoke… call names: `None` when it names rules only by id, else the permissions
/// it spells out (as `IpPermissions` or the older flat parameters).
fn revoked_permissions(
    rule_ids: Option<&Vec<String>>,
    ip_permissions: Option<&Vec<s::IpPermission>>,
    flat: &Flat<'_>,
) -> Result<Option<Vec<s::IpPermission>>, AwsError> {
    let by_id_only = rule_ids.is_some_and(|r| !r.is_empty())
        && flat.is_empty()
        && ip_permissions.is_none_or(|p| p.is_empty());
    if by_id_only {
        Ok(None)
    } else {
        rules::requested(ip_permissions, flat).map(Some)
    }
}

pub fn revoke_ingress(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    input: s::RevokeSecurityGroupIngressRequest,
) -> Result<Changed<Revoked>, Failure> {
    let flat = Flat {
        cidr_ip: input.cidr_ip.as_deref(),
        ip_protocol: input.ip_protocol.as_deref(),
        from_port: input.from_port,
        to_port: input.to_port,
        source_group_name: input.source_security_group_name.as_deref(),
        source_group_owner: input.source_security_group_owner_id.as_deref(),
    };
    let perms = revoked_permissions(
        input.security_group_rule_ids.as_ref(),
        input.ip_permissions.as_ref(),
        &flat,
    )?;
    revoke(
        tx,
        ctx,
        (input.group_id.as_deref(), input.group_name.as_deref()),
        perms,
        input.security_group_rule_ids.as_ref(),
        false,
    )
}

pub fn revoke_egress(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    input: s::RevokeSecurityGroupEgressRequest,
) -> Result<Changed<Revoked>, Failure> {
    let flat = Flat {
        cidr_ip: input.cidr_ip.as_deref(),
        ip_protocol: input.ip_protocol.as_deref(),
        from_port: input.from_port,
        to_port: input.to_port,
        source_group_name: input.source_security_group_name.as_deref(),
        source_group_owner: input.source_security_group_owner_id.as_deref(),
    };
    let perms = revoked_permissions(
        input.security_group_rule_ids.as_ref(),
        input.ip_permissions.as_ref(),
        &flat,
    )?;
    revoke(
        tx,
        ctx,
        (Some(&input.group_id), None),
        perms,
        input.security_group_rule_ids.as_ref(),
        true,
    )
}

pub fn describe_rules(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    input: s::DescribeSecurityGroupRulesRequest,
) -> Result<s::DescribeSecurityGroupRulesResult, Failure> {
    let filters = input.filters.unwrap_or_default();
    filter::check(&Rule(s::SecurityGroupRule::default()), &filters)?;
    let ids = input.security_group_rule_ids.unwrap_or_default();
    let all: Vec<s::SecurityGroupRule> = e::all::<StoredGroup>(tx, e::scope(ctx), kind::GROUP)?
        .into_iter()
        .flat_map(|g| g.rules)
        .collect();
    for id in &ids {
        if !all
            .iter()
            .any(|r| r.security_group_rule_id.as_deref() == Some(id.as_str()))
        {
            return Err(err::not_found(id).into());
        }
    }
    let mut out = Vec::new();
    for r in all {
        let by_id = ids.is_empty()
            || ids
                .iter()
                .any(|i| r.security_group_rule_id.as_deref() == Some(i.as_str()));
        let r = Rule(r);
        if by_id && filter::matches(&r, &filters)? {
            out.push(r.0);
        }
    }
    let (rules, next_token) = page(
        out,
        |r| r.security_group_rule_id.clone().unwrap_or_default(),
        input.max_results,
        input.next_token.as_deref(),
    )?;
    Ok(s::DescribeSecurityGroupRulesResult {
        security_group_rules: Some(rules),
        next_token,
    })
}

pub fn modify_rules(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    input: s::ModifySecurityGroupRulesRequest,
) -> Result<Changed<s::ModifySecurityGroupRulesResult>, Failure> {
    let scope = e::scope(ctx);
    err::check_id(&input.group_id, "sg")?;
    let (mut g, v) = e::group(tx, scope, &input.group_id)?;
    for u in &input.security_group_rules {
        let req = u
            .security_group_rule
            .clone()
            .ok_or_else(|| err::missing("SecurityGroupRule"))?;
        let Some(i) = g.rules.iter().position(|r| {
            r.security_group_rule_id.as_deref() == Some(u.security_group_rule_id.as_str())
        }) else {
            return Err(AwsError::new(
                "InvalidSecurityGroupRuleId.NotFound",
                400,
                format!(
                    "The security group rule ID '{}' does not exist in security group '{}'",
                    u.security_group_rule_id, input.group_id
                ),
            )
            .into());
        };
        let perm = s::IpPermission {
            ip_protocol: req.ip_protocol.clone(),
            from_port: req.from_port,
            to_port: req.to_port,
            ip_ranges: req.cidr_ipv4.clone().map(|c| {
                vec![s::IpRange {
                    cidr_ip: Some(c),
                    description: req.description.clone(),
                }]
            }),
            ipv6_ranges: req.cidr_ipv6.clone().map(|c| {
                vec![s::Ipv6Range {
                    cidr_ipv6: Some(c),
                    description: req.description.clone(),
                }]
            }),
            user_id_group_pairs: req.referenced_group_id.clone().map(|id| {
                vec![s::UserIdGroupPair {
                    group_id: Some(id),
                    description: req.description.clone(),
                    ..Default::default()
                }]
            }),
            prefix_list_ids: req.prefix_list_id.clone().map(|id| {
                vec![s::PrefixListId {
                    prefix_list_id: Some(id),
                    description: req.description.clone(),
                }]
            }),
        };
        let mut spec = specs(tx, ctx, &[perm])?;
        if spec.len() != 1 {
            return Err(err::invalid_parameter(
                "A security group rule update names exactly one of CidrIpv4, CidrIpv6, PrefixListId or ReferencedGroupId.",
            )
            .into());
        }
        let spec = spec.remove(0);
        let old = &g.rules[i];
        let mut fresh = rules::new_rule(scope, &input.group_id, old.is_egress == Some(true), spec);
        fresh.security_group_rule_id = old.security_group_rule_id.clone();
        fresh.security_group_rule_arn = old.security_group_rule_arn.clone();
        fresh.tags = old.tags.clone();
        g.rules[i] = fresh;
    }
    tx.put(scope, kind::GROUP, &input.group_id, Some(v), &g)?;
    let hosts = super::interfaces::affected_hosts(
        tx,
        scope,
        std::slice::from_ref(&input.group_id),
        &[],
        None,
    )?;
    Ok(Changed {
        output: s::ModifySecurityGroupRulesResult {
            r#return: Some(true),
        },
        hosts,
    })
}
