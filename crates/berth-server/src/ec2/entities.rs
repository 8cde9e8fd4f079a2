//! EC2's stored resources and the default network every account+region starts with.
//!
//! Records are wire shapes (DESIGN §8), one record per resource in the account+region scope,
//! keyed by the resource id: VPCs (with their attributes and the ids of their default
//! group, main route table and default network ACL), subnets, security groups (with their
//! rules, one `SecurityGroupRule` per source), network interfaces (with the task that holds
//! them), route tables and network ACLs. Derived fields (a subnet's free addresses, a
//! group's permissions) are computed when described.

use berth_store::{Scope, Tx};
use berth_wire::RequestContext;
use berth_wire::ec2::shapes as s;
use serde::{Deserialize, Serialize};

use super::cidr::Cidr;
use super::filter::{self, Filterable};
use crate::failure::Failure;

/// Store kinds.
pub mod kind {
    pub const VPC: &str = "ec2/vpc";
    pub const SUBNET: &str = "ec2/subnet";
    pub const GROUP: &str = "ec2/security-group";
    pub const INTERFACE: &str = "ec2/network-interface";
    pub const ROUTE_TABLE: &str = "ec2/route-table";
    pub const NETWORK_ACL: &str = "ec2/network-acl";
    /// Present once the default VPC of the account+region was made.
    pub const DEFAULTS: &str = "ec2/defaults";
}

/// The default VPC's block and its subnets' (one per availability zone a, b, c).
pub const DEFAULT_VPC_CIDR: &str = "172.31.0.0/16";
pub const DEFAULT_SUBNET_CIDRS: [&str; 3] = ["172.31.0.0/20", "172.31.16.0/20", "172.31.32.0/20"];

/// A new id: `prefix-` and 17 hex digits, as EC2's long ids are.
pub fn new_id(prefix: &str) -> String {
    let n: u128 = rand::random::<u128>() & ((1u128 << 68) - 1);
    format!("{prefix}-{n:017x}")
}

pub fn arn(scope: Scope<'_>, resource: &str) -> String {
    format!("arn:aws:ec2:{}:{}:{resource}", scope.region, scope.account)
}

/// The availability zones of a region: `<region>a`, `b`, `c`, with zone ids in AWS's style
/// (`use1-az1` for us-east-1).
pub fn availability_zones(region: &str) -> Vec<(String, String)> {
    let parts: Vec<&str> = region.split('-').collect();
    let mut short = String::new();
    for (i, p) in parts.iter().enumerate() {
        if i == 0 || i + 1 == parts.len() {
            short.push_str(p);
        } else {
            short.push_str(match *p {
                "northeast" => "ne",
                "southeast" => "se",
                "northwest" => "nw",
                "southwest" => "sw",
                "central" => "c",
                other => &other[..other.len().min(1)],
            });
        }
    }
    ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(i, l)| (format!("{region}{l}"), format!("{short}-az{}", i + 1)))
        .collect()
}

/// A VPC with what EC2 keeps beside its shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredVpc {
    pub vpc: s::Vpc,
    pub enable_dns_support: bool,
    pub enable_dns_hostnames: bool,
    #[serde(default)]
    pub enable_network_address_usage_metrics: bool,
    pub default_security_group_id: String,
    pub main_route_table_id: String,
    pub default_network_acl_id: String,
}

impl StoredVpc {
    pub fn id(&self) -> &str {
        self.vpc.vpc_id.as_deref().unwrap_or("")
    }
    pub fn cidr(&self) -> Option<Cidr> {
        self.vpc.cidr_block.as_deref().and_then(Cidr::parse)
    }
}

/// A security group: its shape (without permissions, derived from the rules when
/// described) and its rules.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredGroup {
    pub group: s::SecurityGroup,
    pub rules: Vec<s::SecurityGroupRule>,
}

impl StoredGroup {
    pub fn id(&self) -> &str {
        self.group.group_id.as_deref().unwrap_or("")
    }
    pub fn vpc_id(&self) -> &str {
        self.group.vpc_id.as_deref().unwrap_or("")
    }
    pub fn name(&self) -> &str {
        self.group.group_name.as_deref().unwrap_or("")
    }
}

/// The task an interface belongs to (ECS's awsvpc tasks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InterfaceOwner {
    /// The task's store id (`<cluster>/<task id>`).
    pub task: String,
    /// The host its agent polls as.
    pub host: String,
}

/// A network interface.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredInterface {
    pub interface: s::NetworkInterface,
    #[serde(default)]
    pub owner: Option<InterfaceOwner>,
}

impl StoredInterface {
    pub fn id(&self) -> &str {
        self.interface.network_interface_id.as_deref().unwrap_or("")
    }
    pub fn group_ids(&self) -> Vec<String> {
        self.interface
            .groups
            .iter()
            .flatten()
            .filter_map(|g| g.group_id.clone())
            .collect()
    }
}

pub fn get<T: serde::de::DeserializeOwned>(
    tx: &Tx<'_>,
    scope: Scope<'_>,
    kind: &str,
    id: &str,
) -> Result<Option<(T, i64)>, Failure> {
    Ok(tx.get_json::<T>(scope, kind, id)?)
}

pub fn all<T: serde::de::DeserializeOwned>(
    tx: &Tx<'_>,
    scope: Scope<'_>,
    kind: &str,
) -> Result<Vec<T>, Failure> {
    Ok(tx
        .list_json::<T>(scope, kind, "")?
        .into_iter()
        .map(|(_, v)| v)
        .collect())
}

pub fn vpc(tx: &Tx<'_>, scope: Scope<'_>, id: &str) -> Result<(StoredVpc, i64), Failure> {
    get::<StoredVpc>(tx, scope, kind::VPC, id)?.ok_or_else(|| super::error::not_found(id).into())
}

pub fn subnet(tx: &Tx<'_>, scope: Scope<'_>, id: &str) -> Result<(s::Subnet, i64), Failure> {
    get::<s::Subnet>(tx, scope, kind::SUBNET, id)?.ok_or_else(|| super::error::not_found(id).into())
}

pub fn group(tx: &Tx<'_>, scope: Scope<'_>, id: &str) -> Result<(StoredGroup, i64), Failure> {
    get::<StoredGroup>(tx, scope, kind::GROUP, id)?
        .ok_or_else(|| super::error::not_found(id).into())
}

/// The default VPC of the scope, if it has one.
pub fn default_vpc(tx: &Tx<'_>, scope: Scope<'_>) -> Result<Option<StoredVpc>, Failure> {
    Ok(all::<StoredVpc>(tx, scope, kind::VPC)?
        .into_iter()
        .find(|v| v.vpc.is_default == Some(true)))
}

/// Whether the scope's default network was made already.
pub fn has_defaults(tx: &Tx<'_>, scope: Scope<'_>) -> Result<bool, Failure> {
    Ok(tx.get(scope, kind::DEFAULTS, "made")?.is_some())
}

/// Makes the default VPC (172.31.0.0/16), its subnets (one per zone, public addresses on
/// launch, as AWS's default subnets) and its default group, once per account+region.
pub fn ensure_defaults(tx: &mut Tx<'_>, scope: Scope<'_>) -> Result<(), Failure> {
    if has_defaults(tx, scope)? {
        return Ok(());
    }
    tx.put(scope, kind::DEFAULTS, "made", None, &true)?;
    let cidr = Cidr::parse(DEFAULT_VPC_CIDR).unwrap_or(Cidr {
        network: 0xac1f_0000,
        prefix: 16,
    });
    let vpc = create_vpc(tx, scope, cidr, true, Vec::new(), s::Tenancy::Default)?;
    for ((zone, zone_id), block) in availability_zones(scope.region)
        .into_iter()
        .zip(DEFAULT_SUBNET_CIDRS)
    {
        let Some(block) = Cidr::parse(block) else {
            continue;
        };
        let mut sn = subnet_shape(scope, vpc.id(), block, &zone, &zone_id, Vec::new());
        sn.default_for_az = Some(true);
        sn.map_public_ip_on_launch = Some(true);
        let id = sn.subnet_id.clone().unwrap_or_default();
        tx.insert(scope, kind::SUBNET, &id, &sn)?;
    }
    Ok(())
}

/// A new VPC with its default security group, main route table and default network ACL.
pub fn create_vpc(
    tx: &mut Tx<'_>,
    scope: Scope<'_>,
    cidr: Cidr,
    is_default: bool,
    tags: Vec<s::Tag>,
    tenancy: s::Tenancy,
) -> Result<StoredVpc, Failure> {
    let vpc_id = new_id("vpc");
    let group_id = new_id("sg");
    let rtb_id = new_id("rtb");
    let acl_id = new_id("acl");
    let stored = StoredVpc {
        vpc: s::Vpc {
            vpc_id: Some(vpc_id.clone()),
            owner_id: Some(scope.account.to_string()),
            cidr_block: Some(cidr.to_string()),
            cidr_block_association_set: Some(vec![s::VpcCidrBlockAssociation {
                association_id: Some(new_id("vpc-cidr-assoc")),
                cidr_block: Some(cidr.to_string()),
                cidr_block_state: Some(s::VpcCidrBlockState {
                    state: Some(s::VpcCidrBlockStateCode::Associated),
                    status_message: None,
                }),
            }]),
            ipv6_cidr_block_association_set: None,
            dhcp_options_id: Some(format!("dopt-{:017x}", 0u64)),
            instance_tenancy: Some(tenancy),
            is_default: Some(is_default),
            state: Some(s::VpcState::Available),
            tags: Some(tags),
            block_public_access_states: Some(s::BlockPublicAccessStates {
                internet_gateway_block_mode: Some(s::BlockPublicAccessMode::Off),
            }),
            ..Default::default()
        },
        enable_dns_support: true,
        enable_dns_hostnames: is_default,
        enable_network_address_usage_metrics: false,
        default_security_group_id: group_id.clone(),
        main_route_table_id: rtb_id.clone(),
        default_network_acl_id: acl_id.clone(),
    };
    tx.insert(scope, kind::VPC, &vpc_id, &stored)?;
    // The default group: all traffic in from its own members, all traffic out.
    let mut group = StoredGroup {
        group: s::SecurityGroup {
            group_id: Some(group_id.clone()),
            group_name: Some("default".into()),
            description: Some("default VPC security group".into()),
            owner_id: Some(scope.account.to_string()),
            vpc_id: Some(vpc_id.clone()),
            security_group_arn: Some(arn(scope, &format!("security-group/{group_id}"))),
            tags: Some(Vec::new()),
            ..Default::default()
        },
        rules: Vec::new(),
    };
    group.rules.push(super::rules::new_rule(
        scope,
        &group_id,
        false,
        super::rules::Spec {
            protocol: "-1".into(),
            from_port: -1,
            to_port: -1,
            peer: super::rules::Peer::Group(group_id.clone()),
            description: None,
        },
    ));
    group
        .rules
        .push(super::rules::allow_all_out(scope, &group_id));
    tx.insert(scope, kind::GROUP, &group_id, &group)?;
    let rtb = s::RouteTable {
        route_table_id: Some(rtb_id.clone()),
        vpc_id: Some(vpc_id.clone()),
        owner_id: Some(scope.account.to_string()),
        routes: Some(vec![s::Route {
            destination_cidr_block: Some(cidr.to_string()),
            gateway_id: Some("local".into()),
            origin: Some(s::RouteOrigin::CreateRouteTable),
            state: Some(s::RouteState::Active),
            ..Default::default()
        }]),
        associations: Some(vec![s::RouteTableAssociation {
            main: Some(true),
            route_table_association_id: Some(new_id("rtbassoc")),
            route_table_id: Some(rtb_id.clone()),
            association_state: Some(s::RouteTableAssociationState {
                state: Some(s::RouteTableAssociationStateCode::Associated),
                status_message: None,
            }),
            ..Default::default()
        }]),
        propagating_vgws: Some(Vec::new()),
        tags: Some(Vec::new()),
    };
    tx.insert(scope, kind::ROUTE_TABLE, &rtb_id, &rtb)?;
    let entry = |egress: bool, number: i32, action: s::RuleAction| s::NetworkAclEntry {
        cidr_block: Some("0.0.0.0/0".into()),
        egress: Some(egress),
        protocol: Some("-1".into()),
        rule_action: Some(action),
        rule_number: Some(number),
        ..Default::default()
    };
    let acl = s::NetworkAcl {
        network_acl_id: Some(acl_id.clone()),
        vpc_id: Some(vpc_id),
        owner_id: Some(scope.account.to_string()),
        is_default: Some(true),
        associations: Some(Vec::new()),
        entries: Some(vec![
            entry(true, 100, s::RuleAction::Allow),
            entry(true, 32767, s::RuleAction::Deny),
            entry(false, 100, s::RuleAction::Allow),
            entry(false, 32767, s::RuleAction::Deny),
        ]),
        tags: Some(Vec::new()),
    };
    tx.insert(scope, kind::NETWORK_ACL, &acl_id, &acl)?;
    Ok(stored)
}

/// A new subnet's shape.
pub fn subnet_shape(
    scope: Scope<'_>,
    vpc_id: &str,
    cidr: Cidr,
    zone: &str,
    zone_id: &str,
    tags: Vec<s::Tag>,
) -> s::Subnet {
    let id = new_id("subnet");
    s::Subnet {
        subnet_id: Some(id.clone()),
        subnet_arn: Some(arn(scope, &format!("subnet/{id}"))),
        vpc_id: Some(vpc_id.to_string()),
        owner_id: Some(scope.account.to_string()),
        cidr_block: Some(cidr.to_string()),
        availability_zone: Some(zone.to_string()),
        availability_zone_id: Some(zone_id.to_string()),
        available_ip_address_count: Some(i32::try_from(cidr.usable()).unwrap_or(i32::MAX)),
        default_for_az: Some(false),
        map_public_ip_on_launch: Some(false),
        map_customer_owned_ip_on_launch: Some(false),
        assign_ipv6_address_on_creation: Some(false),
        ipv6_cidr_block_association_set: Some(Vec::new()),
        enable_dns64: Some(false),
        ipv6_native: Some(false),
        state: Some(s::SubnetState::Available),
        private_dns_name_options_on_launch: Some(s::PrivateDnsNameOptionsOnLaunch {
            hostname_type: Some(s::HostnameType::IpName),
            enable_resource_name_dns_a_record: Some(false),
            enable_resource_name_dns_aaaa_record: Some(false),
        }),
        block_public_access_states: Some(s::BlockPublicAccessStates {
            internet_gateway_block_mode: Some(s::BlockPublicAccessMode::Off),
        }),
        tags: Some(tags),
        ..Default::default()
    }
}

/// The request's account+region.
pub fn scope(ctx: &RequestContext) -> Scope<'_> {
    Scope::new(&ctx.account_id, &ctx.region)
}

fn tags_of(t: &Option<Vec<s::Tag>>) -> &[s::Tag] {
    t.as_deref().unwrap_or_default()
}

impl Filterable for StoredVpc {
    fn values(&self, name: &str) -> Option<Vec<String>> {
        let v = &self.vpc;
        let assoc = || v.cidr_block_association_set.iter().flatten();
        Some(match name {
            "cidr" | "cidr-block-association.cidr-block" => {
                assoc().filter_map(|a| a.cidr_block.clone()).collect()
            }
            "cidr-block-association.association-id" => {
                assoc().filter_map(|a| a.association_id.clone()).collect()
            }
            "cidr-block-association.state" => assoc()
                .filter_map(|a| a.cidr_block_state.as_ref()?.state)
                .map(|s| s.to_string())
                .collect(),
            "dhcp-options-id" => filter::one(&v.dhcp_options_id),
            "is-default" | "isDefault" => filter::flag(v.is_default),
            "owner-id" => filter::one(&v.owner_id),
            "state" => v.state.iter().map(|s| s.to_string()).collect(),
            "vpc-id" => filter::one(&v.vpc_id),
            _ => return None,
        })
    }
    fn tags(&self) -> &[s::Tag] {
        tags_of(&self.vpc.tags)
    }
}

impl Filterable for s::Subnet {
    fn values(&self, name: &str) -> Option<Vec<String>> {
        Some(match name {
            "availability-zone" | "availabilityZone" => filter::one(&self.availability_zone),
            "availability-zone-id" | "availabilityZoneId" => {
                filter::one(&self.availability_zone_id)
            }
            "available-ip-address-count" => self
                .available_ip_address_count
                .iter()
                .map(|n| n.to_string())
                .collect(),
            "cidr" | "cidr-block" | "cidrBlock" => filter::one(&self.cidr_block),
            "default-for-az" | "defaultForAz" => filter::flag(self.default_for_az),
            "map-public-ip-on-launch" => filter::flag(self.map_public_ip_on_launch),
            "owner-id" => filter::one(&self.owner_id),
            "state" => self.state.iter().map(|s| s.to_string()).collect(),
            "subnet-arn" => filter::one(&self.subnet_arn),
            "subnet-id" => filter::one(&self.subnet_id),
            "vpc-id" => filter::one(&self.vpc_id),
            "ipv6-native" => filter::flag(self.ipv6_native),
            _ => return None,
        })
    }
    fn tags(&self) -> &[s::Tag] {
        tags_of(&self.tags)
    }
}

impl Filterable for s::RouteTable {
    fn values(&self, name: &str) -> Option<Vec<String>> {
        let assoc = || self.associations.iter().flatten();
        Some(match name {
            "association.main" => assoc()
                .map(|a| a.main.unwrap_or(false).to_string())
                .collect(),
            "association.route-table-association-id" => assoc()
                .filter_map(|a| a.route_table_association_id.clone())
                .collect(),
            "association.route-table-id" => {
                assoc().filter_map(|a| a.route_table_id.clone()).collect()
            }
            "association.subnet-id" => assoc().filter_map(|a| a.subnet_id.clone()).collect(),
            "owner-id" => filter::one(&self.owner_id),
            "route-table-id" => filter::one(&self.route_table_id),
            "vpc-id" => filter::one(&self.vpc_id),
            "route.destination-cidr-block" => self
                .routes
                .iter()
                .flatten()
                .filter_map(|r| r.destination_cidr_block.clone())
                .collect(),
            "route.gateway-id" => self
                .routes
                .iter()
                .flatten()
                .filter_map(|r| r.gateway_id.clone())
                .collect(),
            _ => return None,
        })
    }
    fn tags(&self) -> &[s::Tag] {
        tags_of(&self.tags)
    }
}

impl Filterable for s::NetworkAcl {
    fn values(&self, name: &str) -> Option<Vec<String>> {
        let assoc = || self.associations.iter().flatten();
        Some(match name {
            "association.association-id" => assoc()
                .filter_map(|a| a.network_acl_association_id.clone())
                .collect(),
            "association.network-acl-id" => {
                assoc().filter_map(|a| a.network_acl_id.clone()).collect()
            }
            "association.subnet-id" => assoc().filter_map(|a| a.subnet_id.clone()).collect(),
            "default" => filter::flag(self.is_default),
            "network-acl-id" => filter::one(&self.network_acl_id),
            "owner-id" => filter::one(&self.owner_id),
            "vpc-id" => filter::one(&self.vpc_id),
            _ => return None,
        })
    }
    fn tags(&self) -> &[s::Tag] {
        tags_of(&self.tags)
    }
}

impl Filterable for StoredInterface {
    fn values(&self, name: &str) -> Option<Vec<String>> {
        let i = &self.interface;
        let att = i.attachment.as_ref();
        Some(match name {
            "network-interface-id" => filter::one(&i.network_interface_id),
            "subnet-id" => filter::one(&i.subnet_id),
            "vpc-id" => filter::one(&i.vpc_id),
            "availability-zone" => filter::one(&i.availability_zone),
            "group-id" => self.group_ids(),
            "group-name" => i
                .groups
                .iter()
                .flatten()
                .filter_map(|g| g.group_name.clone())
                .collect(),
            "private-ip-address" | "addresses.private-ip-address" => {
                filter::one(&i.private_ip_address)
            }
            "private-dns-name" => filter::one(&i.private_dns_name),
            "mac-address" => filter::one(&i.mac_address),
            "status" => i.status.iter().map(|s| s.to_string()).collect(),
            "interface-type" => i.interface_type.iter().map(|s| s.to_string()).collect(),
            "owner-id" => filter::one(&i.owner_id),
            "requester-id" => filter::one(&i.requester_id),
            "requester-managed" => filter::flag(i.requester_managed),
            "description" => filter::one(&i.description),
            "attachment.attachment-id" => att
                .and_then(|a| a.attachment_id.clone())
                .into_iter()
                .collect(),
            "attachment.status" => att
                .and_then(|a| a.status)
                .map(|s| s.to_string())
                .into_iter()
                .collect(),
            "attachment.instance-owner-id" => att
                .and_then(|a| a.instance_owner_id.clone())
                .into_iter()
                .collect(),
            "source-dest-check" => filter::flag(i.source_dest_check),
            _ => return None,
        })
    }
    fn tags(&self) -> &[s::Tag] {
        tags_of(&self.interface.tag_set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_and_ids() {
        let z = availability_zones("us-east-1");
        assert_eq!(z[0], ("us-east-1a".to_string(), "use1-az1".to_string()));
        assert_eq!(z[2].0, "us-east-1c");
        assert_eq!(availability_zones("ap-southeast-2")[1].1, "apse2-az2");
        let id = new_id("vpc");
        assert_eq!(id.len(), 4 + 17);
        assert!(super::super::error::check_id(&id, "vpc").is_ok());
    }

    #[test]
    fn defaults_are_made_once() {
        let store = berth_store::Store::open_in_memory().unwrap();
        let scope = Scope::new("123456789012", "us-east-1");
        store
            .write(|tx| -> Result<(), Failure> {
                ensure_defaults(tx, scope)?;
                ensure_defaults(tx, scope)
            })
            .unwrap();
        store
            .read(|tx| -> Result<(), Failure> {
                let vpcs = all::<StoredVpc>(tx, scope, kind::VPC)?;
                assert_eq!(vpcs.len(), 1);
                assert_eq!(vpcs[0].vpc.cidr_block.as_deref(), Some("172.31.0.0/16"));
                let mut subnets: Vec<_> = all::<s::Subnet>(tx, scope, kind::SUBNET)?
                    .into_iter()
                    .map(|s| (s.availability_zone.unwrap(), s.cidr_block.unwrap()))
                    .collect();
                subnets.sort();
                assert_eq!(
                    subnets,
                    [
                        ("us-east-1a".to_string(), "172.31.0.0/20".to_string()),
                        ("us-east-1b".to_string(), "172.31.16.0/20".to_string()),
                        ("us-east-1c".to_string(), "172.31.32.0/20".to_string()),
                    ]
                );
                let groups = all::<StoredGroup>(tx, scope, kind::GROUP)?;
                assert_eq!(groups.len(), 1);
                assert_eq!(groups[0].name(), "default");
                assert_eq!(groups[0].rules.len(), 2);
                Ok(())
            })
            .unwrap();
    }
}
