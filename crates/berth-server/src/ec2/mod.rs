//! Amazon EC2 (the `ec2` query protocol), the subset ECS networking needs: VPCs, subnets,
//! security groups and their rules, network interfaces (the ENIs of awsvpc tasks), tags,
//! availability zones, and what Terraform's aws_vpc, aws_subnet and aws_security_group read
//! (VPC attributes, the main route table, the default network ACL, account attributes).
//!
//! Every account+region has a default VPC (172.31.0.0/16) with a default subnet per
//! availability zone and a `default` security group, made on first use by EC2 or ECS.
//! Operations of EC2's model that are not listed in `berth-wire/build.rs` answer that they
//! are not served.

pub mod cidr;
pub mod entities;
pub mod error;
pub mod filter;
pub mod groups;
pub mod interfaces;
pub mod rules;
pub mod tags;
pub mod vpcs;

use std::sync::Arc;

use berth_store::{Store, Tx};
use berth_wire::ec2::{Api, shapes as s};
use berth_wire::{AwsError, RequestContext};

use crate::agent_channel::Notifier;
use crate::failure::Failure;

/// The EC2 service over the store.
pub struct Ec2 {
    pub store: Arc<Store>,
    /// Wakes the agents whose tasks' rules changed.
    pub notifier: Arc<Notifier>,
}

type R<T> = Result<T, AwsError>;

impl Ec2 {
    pub fn new(store: Arc<Store>, notifier: Arc<Notifier>) -> Ec2 {
        Ec2 { store, notifier }
    }

    /// Makes the default network of the caller's account+region if it is not there yet.
    fn ensure(&self, ctx: &RequestContext) -> R<()> {
        let scope = entities::scope(ctx);
        if self
            .store
            .read(|tx| entities::has_defaults(tx, scope))
            .map_err(error::aws)?
        {
            return Ok(());
        }
        self.store
            .write(|tx| entities::ensure_defaults(tx, scope))
            .map_err(error::aws)
    }

    fn read<T>(&self, ctx: &RequestContext, f: impl FnOnce(&Tx<'_>) -> Result<T, Failure>) -> R<T> {
        self.ensure(ctx)?;
        self.store.read(f).map_err(error::aws)
    }

    fn write<T>(
        &self,
        ctx: &RequestContext,
        f: impl FnOnce(&mut Tx<'_>) -> Result<T, Failure>,
    ) -> R<T> {
        let scope = entities::scope(ctx);
        self.store
            .write(|tx| {
                entities::ensure_defaults(tx, scope)?;
                f(tx)
            })
            .map_err(error::aws)
    }

    /// A write that may change running tasks' rules: their agents are woken once it is in.
    fn write_rules<T>(
        &self,
        ctx: &RequestContext,
        f: impl FnOnce(&mut Tx<'_>) -> Result<groups::Changed<T>, Failure>,
    ) -> R<T> {
        let changed = self.write(ctx, f)?;
        for h in &changed.hosts {
            self.notifier.notify(h);
        }
        Ok(changed.output)
    }
}

/// Serves one EC2 action: the generated dispatch, with EC2's own answers around it (DryRun,
/// a missing required parameter, an action EC2 does not have).
pub fn dispatch(
    ec2: &Ec2,
    ctx: &RequestContext,
    action: &str,
    params: &berth_wire::query::Params,
) -> R<Vec<u8>> {
    let known = berth_wire::ec2::OPERATIONS.contains(&action)
        || berth_wire::ec2::UNSERVED_OPERATIONS.contains(&action);
    if !known {
        return Err(AwsError::new(
            "InvalidAction",
            400,
            format!("The action {action} is not valid for this web service."),
        ));
    }
    if params
        .get("DryRun")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
        && berth_wire::ec2::OPERATIONS.contains(&action)
    {
        return Err(AwsError::new(
            "DryRunOperation",
            412,
            "Request would have succeeded, but DryRun flag is set.",
        ));
    }
    berth_wire::ec2::dispatch(ec2, ctx, action, params).map_err(|e| {
        if let Some(rest) = e
            .message
            .strip_prefix("1 validation error detected: Value null at '")
            && let Some((path, _)) = rest.split_once('\'')
        {
            let mut c = path.chars();
            let name: String = c
                .next()
                .map(|f| f.to_ascii_uppercase())
                .into_iter()
                .chain(c)
                .collect();
            return error::missing(&name);
        }
        e
    })
}

/// One page of `items` (sorted by `key`): at most `max_results` after the token (the key
/// of the last item of the previous page).
pub fn page<T>(
    mut items: Vec<T>,
    key: impl Fn(&T) -> String,
    max_results: Option<i32>,
    next_token: Option<&str>,
) -> Result<(Vec<T>, Option<String>), AwsError> {
    if let Some(m) = max_results
        && !(5..=1000).contains(&m)
    {
        return Err(error::invalid_value(
            "MaxResults",
            &m.to_string(),
            "Valid values are between 5 and 1000.",
        ));
    }
    items.sort_by_key(|i| key(i));
    if let Some(t) = next_token {
        items.retain(|i| key(i).as_str() > t);
    }
    let Some(max) = max_results.and_then(|m| usize::try_from(m).ok()) else {
        return Ok((items, None));
    };
    if items.len() <= max {
        return Ok((items, None));
    }
    items.truncate(max);
    let token = items.last().map(&key);
    Ok((items, token))
}

impl Api for Ec2 {
    fn create_vpc(
        &self,
        ctx: &RequestContext,
        input: s::CreateVpcRequest,
    ) -> R<s::CreateVpcResult> {
        self.write(ctx, |tx| vpcs::create_vpc(tx, ctx, input))
    }
    fn describe_vpcs(
        &self,
        ctx: &RequestContext,
        input: s::DescribeVpcsRequest,
    ) -> R<s::DescribeVpcsResult> {
        self.read(ctx, |tx| vpcs::describe_vpcs(tx, ctx, input))
    }
    fn delete_vpc(&self, ctx: &RequestContext, input: s::DeleteVpcRequest) -> R<()> {
        self.write(ctx, |tx| vpcs::delete_vpc(tx, ctx, input))
    }
    fn modify_vpc_attribute(
        &self,
        ctx: &RequestContext,
        input: s::ModifyVpcAttributeRequest,
    ) -> R<()> {
        self.write(ctx, |tx| vpcs::modify_vpc_attribute(tx, ctx, input))
    }
    fn describe_vpc_attribute(
        &self,
        ctx: &RequestContext,
        input: s::DescribeVpcAttributeRequest,
    ) -> R<s::DescribeVpcAttributeResult> {
        self.read(ctx, |tx| vpcs::describe_vpc_attribute(tx, ctx, input))
    }
    fn create_subnet(
        &self,
        ctx: &RequestContext,
        input: s::CreateSubnetRequest,
    ) -> R<s::CreateSubnetResult> {
        self.write(ctx, |tx| vpcs::create_subnet(tx, ctx, input))
    }
    fn describe_subnets(
        &self,
        ctx: &RequestContext,
        input: s::DescribeSubnetsRequest,
    ) -> R<s::DescribeSubnetsResult> {
        self.read(ctx, |tx| vpcs::describe_subnets(tx, ctx, input))
    }
    fn delete_subnet(&self, ctx: &RequestContext, input: s::DeleteSubnetRequest) -> R<()> {
        self.write(ctx, |tx| vpcs::delete_subnet(tx, ctx, input))
    }
    fn modify_subnet_attribute(
        &self,
        ctx: &RequestContext,
        input: s::ModifySubnetAttributeRequest,
    ) -> R<()> {
        self.write(ctx, |tx| vpcs::modify_subnet_attribute(tx, ctx, input))
    }
    fn describe_route_tables(
        &self,
        ctx: &RequestContext,
        input: s::DescribeRouteTablesRequest,
    ) -> R<s::DescribeRouteTablesResult> {
        self.read(ctx, |tx| vpcs::describe_route_tables(tx, ctx, input))
    }
    fn describe_network_acls(
        &self,
        ctx: &RequestContext,
        input: s::DescribeNetworkAclsRequest,
    ) -> R<s::DescribeNetworkAclsResult> {
        self.read(ctx, |tx| vpcs::describe_network_acls(tx, ctx, input))
    }
    fn describe_availability_zones(
        &self,
        ctx: &RequestContext,
        input: s::DescribeAvailabilityZonesRequest,
    ) -> R<s::DescribeAvailabilityZonesResult> {
        vpcs::describe_availability_zones(ctx, input).map_err(error::aws)
    }
    fn describe_account_attributes(
        &self,
        ctx: &RequestContext,
        input: s::DescribeAccountAttributesRequest,
    ) -> R<s::DescribeAccountAttributesResult> {
        self.read(ctx, |tx| vpcs::describe_account_attributes(tx, ctx, input))
    }
    fn create_security_group(
        &self,
        ctx: &RequestContext,
        input: s::CreateSecurityGroupRequest,
    ) -> R<s::CreateSecurityGroupResult> {
        self.write(ctx, |tx| groups::create(tx, ctx, input))
    }
    fn describe_security_groups(
        &self,
        ctx: &RequestContext,
        input: s::DescribeSecurityGroupsRequest,
    ) -> R<s::DescribeSecurityGroupsResult> {
        self.read(ctx, |tx| groups::describe(tx, ctx, input))
    }
    fn delete_security_group(
        &self,
        ctx: &RequestContext,
        input: s::DeleteSecurityGroupRequest,
    ) -> R<s::DeleteSecurityGroupResult> {
        self.write(ctx, |tx| groups::delete(tx, ctx, input))
    }
    fn authorize_security_group_ingress(
        &self,
        ctx: &RequestContext,
        input: s::AuthorizeSecurityGroupIngressRequest,
    ) -> R<s::AuthorizeSecurityGroupIngressResult> {
        self.write_rules(ctx, |tx| groups::authorize_ingress(tx, ctx, input))
    }
    fn authorize_security_group_egress(
        &self,
        ctx: &RequestContext,
        input: s::AuthorizeSecurityGroupEgressRequest,
    ) -> R<s::AuthorizeSecurityGroupEgressResult> {
        self.write_rules(ctx, |tx| groups::authorize_egress(tx, ctx, input))
    }
    fn revoke_security_group_ingress(
        &self,
        ctx: &RequestContext,
        input: s::RevokeSecurityGroupIngressRequest,
    ) -> R<s::RevokeSecurityGroupIngressResult> {
        let r = self.write_rules(ctx, |tx| groups::revoke_ingress(tx, ctx, input))?;
        Ok(s::RevokeSecurityGroupIngressResult {
            r#return: Some(true),
            revoked_security_group_rules: Some(r.removed),
            unknown_ip_permissions: (!r.unknown.is_empty()).then_some(r.unknown),
        })
    }
    fn revoke_security_group_egress(
        &self,
        ctx: &RequestContext,
        input: s::RevokeSecurityGroupEgressRequest,
    ) -> R<s::RevokeSecurityGroupEgressResult> {
        let r = self.write_rules(ctx, |tx| groups::revoke_egress(tx, ctx, input))?;
        Ok(s::RevokeSecurityGroupEgressResult {
            r#return: Some(true),
            revoked_security_group_rules: Some(r.removed),
            unknown_ip_permissions: (!r.unknown.is_empty()).then_some(r.unknown),
        })
    }
    fn describe_security_group_rules(
        &self,
        ctx: &RequestContext,
        input: s::DescribeSecurityGroupRulesRequest,
    ) -> R<s::DescribeSecurityGroupRulesResult> {
        self.read(ctx, |tx| groups::describe_rules(tx, ctx, input))
    }
    fn modify_security_group_rules(
        &self,
        ctx: &RequestContext,
        input: s::ModifySecurityGroupRulesRequest,
    ) -> R<s::ModifySecurityGroupRulesResult> {
        self.write_rules(ctx, |tx| groups::modify_rules(tx, ctx, input))
    }
    fn describe_network_interfaces(
        &self,
        ctx: &RequestContext,
        input: s::DescribeNetworkInterfacesRequest,
    ) -> R<s::DescribeNetworkInterfacesResult> {
        self.read(ctx, |tx| interfaces::describe(tx, ctx, input))
    }
    fn create_tags(&self, ctx: &RequestContext, input: s::CreateTagsRequest) -> R<()> {
        self.write(ctx, |tx| tags::create(tx, ctx, input))
    }
    fn delete_tags(&self, ctx: &RequestContext, input: s::DeleteTagsRequest) -> R<()> {
        self.write(ctx, |tx| tags::delete(tx, ctx, input))
    }
    fn describe_tags(
        &self,
        ctx: &RequestContext,
        input: s::DescribeTagsRequest,
    ) -> R<s::DescribeTagsResult> {
        self.read(ctx, |tx| tags::describe(tx, ctx, input))
    }
}

#[cfg(test)]
mod tests;
