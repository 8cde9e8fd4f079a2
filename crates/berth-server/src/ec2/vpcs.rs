//! VPCs and subnets, and what hangs off a VPC read-only here: its main route table and
//! default network ACL; availability zones and account attributes.

use std::collections::BTreeSet;

use berth_store::{Scope, Tx};
use berth_wire::RequestContext;
use berth_wire::ec2::shapes as s;

use super::cidr::Cidr;
use super::entities::{self as e, StoredGroup, StoredInterface, StoredVpc, kind};
use super::error::{self as err, invalid_value};
use super::filter;
use super::page;
use crate::failure::Failure;

/// Tags a create call asks for its new resource (`TagSpecification` of `resource_type`).
pub fn requested_tags(
    specs: Option<&Vec<s::TagSpecification>>,
    resource_type: s::ResourceType,
) -> Result<Vec<s::Tag>, Failure> {
    let mut tags = Vec::new();
    for spec in specs.into_iter().flatten() {
        if spec.resource_type.is_some_and(|t| t != resource_type) {
            return Err(err::invalid_parameter(format!(
                "'{}' is not a valid taggable resource type for this operation.",
                spec.resource_type
                    .map(|t| t.to_string())
                    .unwrap_or_default()
            ))
            .into());
        }
        super::tags::merge(&mut tags, spec.tags.as_deref().unwrap_or_default())?;
    }
    Ok(tags)
}

pub fn create_vpc(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    input: s::CreateVpcRequest,
) -> Result<s::CreateVpcResult, Failure> {
    let scope = e::scope(ctx);
    let raw = input
        .cidr_block
        .as_deref()
        .ok_or_else(|| err::missing("CidrBlock"))?;
    let cidr = Cidr::parse(raw)
        .ok_or_else(|| invalid_value("cidrBlock", raw, "This is not a valid CIDR block."))?;
    if !(16..=28).contains(&cidr.prefix) {
        return Err(berth_wire::AwsError::new(
            "InvalidVpc.Range",
            400,
            format!("The CIDR '{raw}' is invalid."),
        )
        .into());
    }
    let tags = requested_tags(input.tag_specifications.as_ref(), s::ResourceType::Vpc)?;
    let vpc = e::create_vpc(
        tx,
        scope,
        cidr,
        false,
        tags,
        input.instance_tenancy.unwrap_or(s::Tenancy::Default),
    )?;
    // A VPC is `pending` for a moment on AWS; it is usable at once here.
    let mut shown = vpc.vpc.clone();
    shown.state = Some(s::VpcState::Pending);
    Ok(s::CreateVpcResult { vpc: Some(shown) })
}

pub fn describe_vpcs(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    input: s::DescribeVpcsRequest,
) -> Result<s::DescribeVpcsResult, Failure> {
    let scope = e::scope(ctx);
    let filters = input.filters.unwrap_or_default();
    let mut out = Vec::new();
    let all = e::all::<StoredVpc>(tx, scope, kind::VPC)?;
    if let Some(probe) = all.first() {
        filter::check(probe, &filters)?;
    }
    let ids = input.vpc_ids.unwrap_or_default();
    for id in &ids {
        err::check_id(id, "vpc")?;
        if !all.iter().any(|v| v.id() == id) {
            return Err(err::not_found(id).into());
        }
    }
    for v in all {
        if (ids.is_empty() || ids.iter().any(|i| i == v.id())) && filter::matches(&v, &filters)? {
            out.push(v.vpc);
        }
    }
    let (vpcs, next_token) = page(
        out,
        |v| v.vpc_id.clone().unwrap_or_default(),
        input.max_results,
        input.next_token.as_deref(),
    )?;
    Ok(s::DescribeVpcsResult {
        vpcs: Some(vpcs),
        next_token,
    })
}

pub fn delete_vpc(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    input: s::DeleteVpcRequest,
) -> Result<(), Failure> {
    let scope = e::scope(ctx);
    let id = &input.vpc_id;
    err::check_id(id, "vpc")?;
    let (vpc, _) = e::vpc(tx, scope, id)?;
    let in_vpc = |v: &Option<String>| v.as_deref() == Some(id.as_str());
    let has_subnets = e::all::<s::Subnet>(tx, scope, kind::SUBNET)?
        .iter()
        .any(|sn| in_vpc(&sn.vpc_id));
    let has_groups = e::all::<StoredGroup>(tx, scope, kind::GROUP)?
        .iter()
        .any(|g| g.vpc_id() == id && g.id() != vpc.default_security_group_id);
    let has_interfaces = e::all::<StoredInterface>(tx, scope, kind::INTERFACE)?
        .iter()
        .any(|i| in_vpc(&i.interface.vpc_id));
    if has_subnets || has_groups || has_interfaces {
        return Err(err::dependency(format!(
            "The vpc '{id}' has dependencies and cannot be deleted."
        ))
        .into());
    }
    tx.delete(scope, kind::VPC, id)?;
    tx.delete(scope, kind::GROUP, &vpc.default_security_group_id)?;
    tx.delete(scope, kind::ROUTE_TABLE, &vpc.main_route_table_id)?;
    tx.delete(scope, kind::NETWORK_ACL, &vpc.default_network_acl_id)?;
    Ok(())
}

pub fn modify_vpc_attribute(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    input: s::ModifyVpcAttributeRequest,
) -> Result<(), Failure> {
    let scope = e::scope(ctx);
    err::check_id(&input.vpc_id, "vpc")?;
    let (mut vpc, v) = e::vpc(tx, scope, &input.vpc_id)?;
    let given = [
        input.enable_dns_support.as_ref(),
        input.enable_dns_hostnames.as_ref(),
        input.enable_network_address_usage_metrics.as_ref(),
    ]
    .iter()
    .filter(|x| x.is_some())
    .count();
    if given != 1 {
        return Err(err::invalid_parameter(
            "Fields for multiple attribute types specified: enableDnsSupport, enableDnsHostnames, enableNetworkAddressUsageMetrics",
        )
        .into());
    }
    if let Some(b) = input.enable_dns_support.and_then(|b| b.value) {
        vpc.enable_dns_support = b;
    }
    if let Some(b) = input.enable_dns_hostnames.and_then(|b| b.value) {
        vpc.enable_dns_hostnames = b;
    }
    if let Some(b) = input
        .enable_network_address_usage_metrics
        .and_then(|b| b.value)
    {
        vpc.enable_network_address_usage_metrics = b;
    }
    tx.put(scope, kind::VPC, &input.vpc_id, Some(v), &vpc)?;
    Ok(())
}

pub fn describe_vpc_attribute(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    input: s::DescribeVpcAttributeRequest,
) -> Result<s::DescribeVpcAttributeResult, Failure> {
    err::check_id(&input.vpc_id, "vpc")?;
    let (vpc, _) = e::vpc(tx, e::scope(ctx), &input.vpc_id)?;
    let b = |v: bool| Some(s::AttributeBooleanValue { value: Some(v) });
    let mut out = s::DescribeVpcAttributeResult {
        vpc_id: Some(input.vpc_id.clone()),
        ..Default::default()
    };
    match input.attribute {
        s::VpcAttributeName::EnableDnsSupport => out.enable_dns_support = b(vpc.enable_dns_support),
        s::VpcAttributeName::EnableDnsHostnames => {
            out.enable_dns_hostnames = b(vpc.enable_dns_hostnames)
        }
        s::VpcAttributeName::EnableNetworkAddressUsageMetrics => {
            out.enable_network_address_usage_metrics = b(vpc.enable_network_address_usage_metrics)
        }
    }
    Ok(out)
}

/// The addresses interfaces hold in `subnet_id`.
pub fn used_addresses(
    tx: &Tx<'_>,
    scope: Scope<'_>,
    subnet_id: &str,
) -> Result<BTreeSet<std::net::Ipv4Addr>, Failure> {
    Ok(e::all::<StoredInterface>(tx, scope, kind::INTERFACE)?
        .into_iter()
        .filter(|i| i.interface.subnet_id.as_deref() == Some(subnet_id))
        .filter_map(|i| i.interface.private_ip_address?.parse().ok())
        .collect())
}

/// A subnet as described: its free address count from the interfaces in it.
fn present_subnet(tx: &Tx<'_>, scope: Scope<'_>, mut sn: s::Subnet) -> Result<s::Subnet, Failure> {
    let id = sn.subnet_id.clone().unwrap_or_default();
    if let Some(c) = sn.cidr_block.as_deref().and_then(Cidr::parse) {
        let used = used_addresses(tx, scope, &id)?.len() as u64;
        sn.available_ip_address_count =
            Some(i32::try_from(c.usable().saturating_sub(used)).unwrap_or(i32::MAX));
    }
    Ok(sn)
}

pub fn create_subnet(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    input: s::CreateSubnetRequest,
) -> Result<s::CreateSubnetResult, Failure> {
    let scope = e::scope(ctx);
    err::check_id(&input.vpc_id, "vpc")?;
    let (vpc, _) = e::vpc(tx, scope, &input.vpc_id)?;
    let raw = input
        .cidr_block
        .as_deref()
        .ok_or_else(|| err::missing("CidrBlock"))?;
    let cidr = Cidr::parse(raw)
        .ok_or_else(|| invalid_value("cidrBlock", raw, "This is not a valid CIDR block."))?;
    let range_error = || {
        berth_wire::AwsError::new(
            "InvalidSubnet.Range",
            400,
            format!("The CIDR '{raw}' is invalid."),
        )
    };
    if !(16..=28).contains(&cidr.prefix) || !vpc.cidr().is_some_and(|v| v.contains(cidr)) {
        return Err(range_error().into());
    }
    let siblings = e::all::<s::Subnet>(tx, scope, kind::SUBNET)?;
    if siblings.iter().any(|sn| {
        sn.vpc_id.as_deref() == Some(input.vpc_id.as_str())
            && sn
                .cidr_block
                .as_deref()
                .and_then(Cidr::parse)
                .is_some_and(|c| c.overlaps(cidr))
    }) {
        return Err(berth_wire::AwsError::new(
            "InvalidSubnet.Conflict",
            400,
            format!("The CIDR '{raw}' conflicts with another subnet"),
        )
        .into());
    }
    let zones = e::availability_zones(&ctx.region);
    let zone = match (&input.availability_zone, &input.availability_zone_id) {
        (Some(z), _) => zones.iter().find(|(n, _)| n == z).cloned().ok_or_else(|| {
            invalid_value(
                "availabilityZone",
                z,
                &format!(
                    "Subnets can currently only be created in the following availability zones: {}.",
                    zones.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(", ")
                ),
            )
        })?,
        (None, Some(zid)) => zones
            .iter()
            .find(|(_, i)| i == zid)
            .cloned()
            .ok_or_else(|| invalid_value("availabilityZoneId", zid, ""))?,
        // EC2 picks a zone; the first one with the fewest subnets of the VPC.
        (None, None) => zones
            .iter()
            .min_by_key(|(n, _)| {
                siblings
                    .iter()
                    .filter(|sn| {
                        sn.vpc_id.as_deref() == Some(input.vpc_id.as_str())
                            && sn.availability_zone.as_deref() == Some(n.as_str())
                    })
                    .count()
            })
            .cloned()
            .unwrap_or_default(),
    };
    let tags = requested_tags(input.tag_specifications.as_ref(), s::ResourceType::Subnet)?;
    let mut sn = e::subnet_shape(scope, &input.vpc_id, cidr, &zone.0, &zone.1, tags);
    let id = sn.subnet_id.clone().unwrap_or_default();
    tx.insert(scope, kind::SUBNET, &id, &sn)?;
    sn.state = Some(s::SubnetState::Pending);
    Ok(s::CreateSubnetResult { subnet: Some(sn) })
}

pub fn describe_subnets(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    input: s::DescribeSubnetsRequest,
) -> Result<s::DescribeSubnetsResult, Failure> {
    let scope = e::scope(ctx);
    let filters = input.filters.unwrap_or_default();
    filter::check(&s::Subnet::default(), &filters)?;
    let all = e::all::<s::Subnet>(tx, scope, kind::SUBNET)?;
    let ids = input.subnet_ids.unwrap_or_default();
    for id in &ids {
        err::check_id(id, "subnet")?;
        if !all
            .iter()
            .any(|v| v.subnet_id.as_deref() == Some(id.as_str()))
        {
            return Err(err::not_found(id).into());
        }
    }
    let mut out = Vec::new();
    for sn in all {
        if !ids.is_empty()
            && !ids
                .iter()
                .any(|i| sn.subnet_id.as_deref() == Some(i.as_str()))
        {
            continue;
        }
        let sn = present_subnet(tx, scope, sn)?;
        if filter::matches(&sn, &filters)? {
            out.push(sn);
        }
    }
    let (subnets, next_token) = page(
        out,
        |v| v.subnet_id.clone().unwrap_or_default(),
        input.max_results,
        input.next_token.as_deref(),
    )?;
    Ok(s::DescribeSubnetsResult {
        subnets: Some(subnets),
        next_token,
    })
}

pub fn delete_subnet(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    input: s::DeleteSubnetRequest,
) -> Result<(), Failure> {
    let scope = e::scope(ctx);
    err::check_id(&input.subnet_id, "subnet")?;
    e::subnet(tx, scope, &input.subnet_id)?;
    if !used_addresses(tx, scope, &input.subnet_id)?.is_empty() {
        return Err(err::dependency(format!(
            "The subnet '{}' has dependencies and cannot be deleted.",
            input.subnet_id
        ))
        .into());
    }
    tx.delete(scope, kind::SUBNET, &input.subnet_id)?;
    Ok(())
}

pub fn modify_subnet_attribute(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    input: s::ModifySubnetAttributeRequest,
) -> Result<(), Failure> {
    let scope = e::scope(ctx);
    err::check_id(&input.subnet_id, "subnet")?;
    let (mut sn, v) = e::subnet(tx, scope, &input.subnet_id)?;
    let val = |b: &Option<s::AttributeBooleanValue>| b.as_ref().and_then(|b| b.value);
    if let Some(b) = val(&input.map_public_ip_on_launch) {
        sn.map_public_ip_on_launch = Some(b);
    }
    if let Some(b) = val(&input.assign_ipv6_address_on_creation) {
        sn.assign_ipv6_address_on_creation = Some(b);
    }
    if let Some(b) = val(&input.map_customer_owned_ip_on_launch) {
        sn.map_customer_owned_ip_on_launch = Some(b);
    }
    if let Some(b) = val(&input.enable_dns64) {
        sn.enable_dns64 = Some(b);
    }
    let opts = sn
        .private_dns_name_options_on_launch
        .get_or_insert_with(Default::default);
    if let Some(b) = val(&input.enable_resource_name_dns_a_record_on_launch) {
        opts.enable_resource_name_dns_a_record = Some(b);
    }
    if let Some(b) = val(&input.enable_resource_name_dns_aaaa_record_on_launch) {
        opts.enable_resource_name_dns_aaaa_record = Some(b);
    }
    if let Some(h) = input.private_dns_hostname_type_on_launch {
        opts.hostname_type = Some(h);
    }
    tx.put(scope, kind::SUBNET, &input.subnet_id, Some(v), &sn)?;
    Ok(())
}

/// Route tables: each VPC's main one (local route, main association).
pub fn describe_route_tables(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    input: s::DescribeRouteTablesRequest,
) -> Result<s::DescribeRouteTablesResult, Failure> {
    let filters = input.filters.unwrap_or_default();
    filter::check(&s::RouteTable::default(), &filters)?;
    let ids = input.route_table_ids.unwrap_or_default();
    let all = e::all::<s::RouteTable>(tx, e::scope(ctx), kind::ROUTE_TABLE)?;
    for id in &ids {
        if !all
            .iter()
            .any(|r| r.route_table_id.as_deref() == Some(id.as_str()))
        {
            return Err(err::not_found(id).into());
        }
    }
    let mut out = Vec::new();
    for r in all {
        if (ids.is_empty()
            || ids
                .iter()
                .any(|i| r.route_table_id.as_deref() == Some(i.as_str())))
            && filter::matches(&r, &filters)?
        {
            out.push(r);
        }
    }
    let (route_tables, next_token) = page(
        out,
        |v| v.route_table_id.clone().unwrap_or_default(),
        input.max_results,
        input.next_token.as_deref(),
    )?;
    Ok(s::DescribeRouteTablesResult {
        route_tables: Some(route_tables),
        next_token,
    })
}

/// Network ACLs: each VPC's default one (allow all both ways), associated with its subnets.
pub fn describe_network_acls(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    input: s::DescribeNetworkAclsRequest,
) -> Result<s::DescribeNetworkAclsResult, Failure> {
    let scope = e::scope(ctx);
    let filters = input.filters.unwrap_or_default();
    filter::check(&s::NetworkAcl::default(), &filters)?;
    let ids = input.network_acl_ids.unwrap_or_default();
    let all = e::all::<s::NetworkAcl>(tx, scope, kind::NETWORK_ACL)?;
    for id in &ids {
        if !all
            .iter()
            .any(|r| r.network_acl_id.as_deref() == Some(id.as_str()))
        {
            return Err(err::not_found(id).into());
        }
    }
    let subnets = e::all::<s::Subnet>(tx, scope, kind::SUBNET)?;
    let mut out = Vec::new();
    for mut acl in all {
        if !ids.is_empty()
            && !ids
                .iter()
                .any(|i| acl.network_acl_id.as_deref() == Some(i.as_str()))
        {
            continue;
        }
        // Every subnet of the VPC is associated with its default ACL.
        acl.associations = Some(
            subnets
                .iter()
                .filter(|sn| sn.vpc_id == acl.vpc_id)
                .map(|sn| s::NetworkAclAssociation {
                    network_acl_association_id: sn
                        .subnet_id
                        .as_deref()
                        .map(|i| format!("aclassoc-{}", i.trim_start_matches("subnet-"))),
                    network_acl_id: acl.network_acl_id.clone(),
                    subnet_id: sn.subnet_id.clone(),
                })
                .collect(),
        );
        if filter::matches(&acl, &filters)? {
            out.push(acl);
        }
    }
    let (network_acls, next_token) = page(
        out,
        |v| v.network_acl_id.clone().unwrap_or_default(),
        input.max_results,
        input.next_token.as_deref(),
    )?;
    Ok(s::DescribeNetworkAclsResult {
        network_acls: Some(network_acls),
        next_token,
    })
}

struct Zone(s::AvailabilityZone);

impl filter::Filterable for Zone {
    fn values(&self, name: &str) -> Option<Vec<String>> {
        let z = &self.0;
        Some(match name {
            "zone-name" => filter::one(&z.zone_name),
            "zone-id" => filter::one(&z.zone_id),
            "region-name" => filter::one(&z.region_name),
            "state" => vec!["available".into()],
            "zone-type" => filter::one(&z.zone_type),
            "group-name" => filter::one(&z.group_name),
            "opt-in-status" => vec!["opt-in-not-required".into()],
            "network-border-group" => filter::one(&z.network_border_group),
            _ => return None,
        })
    }
    fn tags(&self) -> &[s::Tag] {
        &[]
    }
}

pub fn describe_availability_zones(
    ctx: &RequestContext,
    input: s::DescribeAvailabilityZonesRequest,
) -> Result<s::DescribeAvailabilityZonesResult, Failure> {
    let filters = input.filters.unwrap_or_default();
    let names = input.zone_names.unwrap_or_default();
    let ids = input.zone_ids.unwrap_or_default();
    let zones: Vec<Zone> = e::availability_zones(&ctx.region)
        .into_iter()
        .map(|(name, id)| {
            Zone(s::AvailabilityZone {
                zone_name: Some(name),
                zone_id: Some(id),
                region_name: Some(ctx.region.clone()),
                state: Some(s::AvailabilityZoneState::Available),
                opt_in_status: Some(s::AvailabilityZoneOptInStatus::OptInNotRequired),
                messages: Some(Vec::new()),
                group_name: Some(ctx.region.clone()),
                group_long_name: Some(ctx.region.clone()),
                network_border_group: Some(ctx.region.clone()),
                zone_type: Some("availability-zone".into()),
                ..Default::default()
            })
        })
        .collect();
    for n in &names {
        if !zones
            .iter()
            .any(|z| z.0.zone_name.as_deref() == Some(n.as_str()))
        {
            return Err(invalid_value("zoneName", n, "").into());
        }
    }
    let mut out = Vec::new();
    for z in zones {
        let named = names.is_empty() || names.iter().any(|n| z.0.zone_name.as_deref() == Some(n));
        let by_id = ids.is_empty() || ids.iter().any(|n| z.0.zone_id.as_deref() == Some(n));
        if named && by_id && filter::matches(&z, &filters)? {
            out.push(z.0);
        }
    }
    Ok(s::DescribeAvailabilityZonesResult {
        availability_zones: Some(out),
    })
}

pub fn describe_account_attributes(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    input: s::DescribeAccountAttributesRequest,
) -> Result<s::DescribeAccountAttributesResult, Failure> {
    let default_vpc = e::default_vpc(tx, e::scope(ctx))?
        .map(|v| v.id().to_string())
        .unwrap_or_else(|| "none".into());
    let all = [
        ("supported-platforms", vec!["VPC".to_string()]),
        ("default-vpc", vec![default_vpc]),
        ("max-instances", vec!["20".into()]),
        ("vpc-max-security-groups-per-interface", vec!["5".into()]),
        ("max-elastic-ips", vec!["5".into()]),
        ("vpc-max-elastic-ips", vec!["5".into()]),
    ];
    let wanted: Vec<String> = input
        .attribute_names
        .unwrap_or_default()
        .iter()
        .map(|n| n.to_string())
        .collect();
    Ok(s::DescribeAccountAttributesResult {
        account_attributes: Some(
            all.into_iter()
                .filter(|(n, _)| wanted.is_empty() || wanted.iter().any(|w| w == n))
                .map(|(n, vs)| s::AccountAttribute {
                    attribute_name: Some(n.into()),
                    attribute_values: Some(
                        vs.into_iter()
                            .map(|v| s::AccountAttributeValue {
                                attribute_value: Some(v),
                            })
                            .collect(),
                    ),
                })
                .collect(),
        ),
    })
}
