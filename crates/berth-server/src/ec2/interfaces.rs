//! Network interfaces: the ENI of each ECS awsvpc task (allocated when the task is made,
//! deleted when it stops), DescribeNetworkInterfaces, the task network the agent gets in its
//! assignment (rules resolved to address ranges), and which hosts must hear again when a
//! group's rules or members change.

use std::collections::BTreeSet;

use berth_store::{Scope, Tx};
use berth_wire::RequestContext;
use berth_wire::agent::{NetworkInterface, SecurityGroupRules, TaskNetwork};
use berth_wire::ec2::shapes as s;
use berth_wire::ecs::shapes as ecs;

use super::cidr::Cidr;
use super::entities::{self as e, InterfaceOwner, StoredGroup, StoredInterface, StoredVpc, kind};
use super::error as err;
use super::filter;
use super::page;
use crate::ecs::common::invalid;
use crate::failure::Failure;

/// The account ECS's own requests come from (RequesterId of the ENIs it manages).
const ECS_REQUESTER_ID: &str = "578734482556";

/// The private DNS name of an address: `ip-10-0-1-4.ec2.internal` in us-east-1,
/// `ip-10-0-1-4.<region>.compute.internal` elsewhere, as EC2 names them.
pub fn private_dns_name(ip: &str, region: &str) -> String {
    let host = format!("ip-{}", ip.replace('.', "-"));
    if region == "us-east-1" {
        format!("{host}.ec2.internal")
    } else {
        format!("{host}.{region}.compute.internal")
    }
}

/// A locally administered unicast MAC address: `0e:` and five random octets.
fn new_mac() -> String {
    let b: [u8; 5] = rand::random();
    format!(
        "0e:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
        b[0], b[1], b[2], b[3], b[4]
    )
}

/// What an awsvpcConfiguration resolves to: the VPC, its subnets and groups (the VPC's
/// default group when none is given).
#[derive(Debug, Clone)]
pub struct Awsvpc {
    pub vpc: StoredVpc,
    pub subnets: Vec<s::Subnet>,
    pub groups: Vec<StoredGroup>,
}

/// Checks an awsvpcConfiguration against the account's VPC objects, as ECS does before it
/// accepts a RunTask, CreateService or UpdateService: every subnet exists and all are in one
/// VPC, every group exists in that VPC.
pub fn check_awsvpc(
    tx: &mut Tx<'_>,
    scope: Scope<'_>,
    conf: &ecs::AwsVpcConfiguration,
) -> Result<Awsvpc, Failure> {
    e::ensure_defaults(tx, scope)?;
    let mut subnets: Vec<s::Subnet> = Vec::new();
    for id in &conf.subnets {
        match e::get::<s::Subnet>(tx, scope, kind::SUBNET, id)? {
            Some((sn, _)) => subnets.push(sn),
            None => {
                return Err(invalid(format!(
                    "Error retrieving subnet information for [{id}]: The subnet ID '{id}' does not exist (Service: AmazonEC2; Status Code: 400; Error Code: InvalidSubnetID.NotFound)"
                ))
                .into());
            }
        }
    }
    let vpc_id = subnets
        .first()
        .and_then(|sn| sn.vpc_id.clone())
        .ok_or_else(|| invalid("subnets can not be empty."))?;
    if subnets
        .iter()
        .any(|sn| sn.vpc_id.as_deref() != Some(vpc_id.as_str()))
    {
        return Err(invalid("The subnets must all belong to the same VPC.").into());
    }
    let (vpc, _) = e::vpc(tx, scope, &vpc_id)?;
    let mut groups = Vec::new();
    let ids: Vec<String> = match conf.security_groups.as_ref().filter(|g| !g.is_empty()) {
        Some(g) => g.clone(),
        None => vec![vpc.default_security_group_id.clone()],
    };
    for id in &ids {
        let Some((g, _)) = e::get::<StoredGroup>(tx, scope, kind::GROUP, id)? else {
            return Err(invalid(format!(
                "Error retrieving security group information for [{id}]: The security group '{id}' does not exist (Service: AmazonEC2; Status Code: 400; Error Code: InvalidGroup.NotFound)"
            ))
            .into());
        };
        if g.vpc_id() != vpc_id {
            return Err(invalid(format!(
                "Security group {id} does not belong to VPC {vpc_id} of the subnets."
            ))
            .into());
        }
        if !groups.iter().any(|x: &StoredGroup| x.id() == id) {
            groups.push(g);
        }
    }
    Ok(Awsvpc {
        vpc,
        subnets,
        groups,
    })
}

/// Gives a new awsvpc task its ENI: a subnet of its configuration (in `zone` when one is
/// there, else the one with the most free addresses), the lowest free address of it, the
/// task's attachment details and its containers' interfaces. Returns the hosts of the other
/// tasks whose rules name one of its groups (they must hear of the new member).
pub fn attach_task(
    tx: &mut Tx<'_>,
    ctx: &RequestContext,
    task_store_id: &str,
    host: &str,
    task: &mut ecs::Task,
    conf: &ecs::AwsVpcConfiguration,
    zone: Option<&str>,
) -> Result<Vec<String>, Failure> {
    let scope = e::scope(ctx);
    let net = check_awsvpc(tx, scope, conf)?;
    let mut best: Option<(s::Subnet, Cidr, BTreeSet<std::net::Ipv4Addr>)> = None;
    for sn in &net.subnets {
        let Some(c) = sn.cidr_block.as_deref().and_then(Cidr::parse) else {
            continue;
        };
        let used = super::vpcs::used_addresses(tx, scope, sn.subnet_id.as_deref().unwrap_or(""))?;
        let free = c.usable().saturating_sub(used.len() as u64);
        if free == 0 {
            continue;
        }
        let in_zone = zone.is_some_and(|z| sn.availability_zone.as_deref() == Some(z));
        let better = match &best {
            None => true,
            Some((b, bc, bu)) => {
                let b_zone = zone.is_some_and(|z| b.availability_zone.as_deref() == Some(z));
                (in_zone && !b_zone)
                    || (in_zone == b_zone && free > bc.usable().saturating_sub(bu.len() as u64))
            }
        };
        if better {
            best = Some((sn.clone(), c, used));
        }
    }
    let Some((subnet, cidr, used)) = best else {
        return Err(invalid(format!(
            "No free IP address is left in the subnets {}.",
            conf.subnets.join(", ")
        ))
        .into());
    };
    let Some(ip) = cidr.allocate(&used) else {
        return Err(invalid("No free IP address is left in the subnets.").into());
    };
    let ip = ip.to_string();
    let subnet_id = subnet.subnet_id.clone().unwrap_or_default();
    let eni_id = e::new_id("eni");
    let mac = new_mac();
    let dns = private_dns_name(&ip, &ctx.region);
    let attachment = task
        .attachments
        .get_or_insert_with(Vec::new)
        .iter_mut()
        .find(|a| a.r#type.as_deref() == Some("ElasticNetworkInterface"));
    let attachment_id = match attachment {
        Some(a) => {
            let kv = |n: &str, v: &str| ecs::KeyValuePair {
                name: Some(n.into()),
                value: Some(v.into()),
            };
            a.details = Some(vec![
                kv("subnetId", &subnet_id),
                kv("networkInterfaceId", &eni_id),
                kv("macAddress", &mac),
                kv("privateDnsName", &dns),
                kv("privateIPv4Address", &ip),
            ]);
            a.id.clone().unwrap_or_default()
        }
        None => String::new(),
    };
    for c in task.containers.iter_mut().flatten() {
        c.network_interfaces = Some(vec![ecs::NetworkInterface {
            attachment_id: Some(attachment_id.clone()),
            private_ipv4_address: Some(ip.clone()),
            ipv6_address: None,
        }]);
    }
    if let Some(z) = &subnet.availability_zone {
        task.availability_zone = Some(z.clone());
    }
    let groups: Vec<s::GroupIdentifier> = net
        .groups
        .iter()
        .map(|g| s::GroupIdentifier {
            group_id: Some(g.id().to_string()),
            group_name: Some(g.name().to_string()),
        })
        .collect();
    let interface = s::NetworkInterface {
        network_interface_id: Some(eni_id.clone()),
        subnet_id: Some(subnet_id),
        vpc_id: Some(net.vpc.id().to_string()),
        availability_zone: subnet.availability_zone.clone(),
        availability_zone_id: subnet.availability_zone_id.clone(),
        description: Some(format!(
            "arn:aws:ecs:{}:{}:attachment/{attachment_id}",
            ctx.region, ctx.account_id
        )),
        groups: Some(groups),
        interface_type: Some(s::NetworkInterfaceType::Interface),
        ipv6_addresses: Some(Vec::new()),
        mac_address: Some(mac),
        owner_id: Some(ctx.account_id.clone()),
        private_dns_name: Some(dns.clone()),
        private_ip_address: Some(ip.clone()),
        private_ip_addresses: Some(vec![s::NetworkInterfacePrivateIpAddress {
            primary: Some(true),
            private_ip_address: Some(ip),
            private_dns_name: Some(dns),
            association: None,
        }]),
        requester_id: Some(ECS_REQUESTER_ID.into()),
        requester_managed: Some(true),
        source_dest_check: Some(true),
        status: Some(s::NetworkInterfaceStatus::InUse),
        tag_set: Some(Vec::new()),
        attachment: Some(s::NetworkInterfaceAttachment {
            attachment_id: Some(e::new_id("eni-attach")),
            attach_time: Some(ctx.now),
            delete_on_termination: Some(false),
            device_index: Some(1),
            network_card_index: Some(0),
            instance_owner_id: Some("amazon-aws".into()),
            status: Some(s::AttachmentStatus::Attached),
            ..Default::default()
        }),
        ..Default::default()
    };
    let stored = StoredInterface {
        interface,
        owner: Some(InterfaceOwner {
            task: task_store_id.to_string(),
            host: host.to_string(),
        }),
    };
    tx.insert(scope, kind::INTERFACE, &eni_id, &stored)?;
    let ids: Vec<String> = net.groups.iter().map(|g| g.id().to_string()).collect();
    // The new task itself is not stored yet: its creation marks it for its host.
    affected_hosts(tx, scope, &[], &ids, Some(task_store_id))
}

/// The ENI id of a task (its ElasticNetworkInterface attachment's networkInterfaceId).
pub fn task_interface_id(task: &ecs::Task) -> Option<String> {
    task.attachments
        .iter()
        .flatten()
        .filter(|a| a.r#type.as_deref() == Some("ElasticNetworkInterface"))
        .flat_map(|a| a.details.iter().flatten())
        .find(|d| d.name.as_deref() == Some("networkInterfaceId"))
        .and_then(|d| d.value.clone())
}

fn set_attachment_status(task: &mut ecs::Task, status: &str) {
    for a in task.attachments.iter_mut().flatten() {
        if a.r#type.as_deref() == Some("ElasticNetworkInterface") {
            a.status = Some(status.into());
        }
    }
}

/// Moves a task's ENI attachment along with the task: ATTACHED once the task left
/// PROVISIONING, DELETED (the interface deleted, its address free) once it is STOPPED.
/// Returns the hosts of other tasks whose rules named one of its groups.
pub fn on_task_status(
    tx: &mut Tx<'_>,
    scope: Scope<'_>,
    task_store_id: &str,
    task: &mut ecs::Task,
    stopped: bool,
) -> Result<Vec<String>, Failure> {
    let Some(eni) = task_interface_id(task) else {
        return Ok(Vec::new());
    };
    if !stopped {
        set_attachment_status(task, "ATTACHED");
        return Ok(Vec::new());
    }
    set_attachment_status(task, "DELETED");
    let Some((i, _)) = e::get::<StoredInterface>(tx, scope, kind::INTERFACE, &eni)? else {
        return Ok(Vec::new());
    };
    tx.delete(scope, kind::INTERFACE, &eni)?;
    affected_hosts(tx, scope, &[], &i.group_ids(), Some(task_store_id))
}

/// Marks the tasks whose rules must be sent again as changed on their hosts (and returns the
/// hosts to wake): those in a group of `rules_changed`, and those in a group with a rule
/// naming a group of `members_changed` (its member addresses moved). The task `skip` (store
/// id) is left out: its caller is changing it anyway.
pub fn affected_hosts(
    tx: &mut Tx<'_>,
    scope: Scope<'_>,
    rules_changed: &[String],
    members_changed: &[String],
    skip: Option<&str>,
) -> Result<Vec<String>, Failure> {
    let mut groups: BTreeSet<String> = rules_changed.iter().cloned().collect();
    if !members_changed.is_empty() {
        for g in e::all::<StoredGroup>(tx, scope, kind::GROUP)? {
            let names = g.rules.iter().any(|r| {
                r.referenced_group_info
                    .as_ref()
                    .and_then(|x| x.group_id.as_ref())
                    .is_some_and(|id| members_changed.contains(id))
            });
            if names {
                groups.insert(g.id().to_string());
            }
        }
    }
    if groups.is_empty() {
        return Ok(Vec::new());
    }
    let mut hosts: Vec<String> = Vec::new();
    for i in e::all::<StoredInterface>(tx, scope, kind::INTERFACE)? {
        let Some(owner) = &i.owner else { continue };
        if !i.group_ids().iter().any(|g| groups.contains(g)) || Some(owner.task.as_str()) == skip {
            continue;
        }
        if let Some(h) = crate::ecs::tasks::touch_for_rules(tx, scope, &owner.task)?
            && !hosts.contains(&h)
        {
            hosts.push(h);
        }
    }
    Ok(hosts)
}

/// The networks of the tasks of one host's assignments, reading each account+region's
/// interfaces once however many tasks it has.
#[derive(Default)]
pub struct Networks {
    interfaces: std::collections::HashMap<(String, String), Vec<StoredInterface>>,
}

impl Networks {
    /// The network of an awsvpc task as its agent needs it (see [`task_network`]).
    pub fn of(
        &mut self,
        tx: &Tx<'_>,
        scope: Scope<'_>,
        task: &ecs::Task,
    ) -> Result<Option<TaskNetwork>, Failure> {
        if task_interface_id(task).is_none() {
            return Ok(None);
        }
        let key = (scope.account.to_string(), scope.region.to_string());
        if !self.interfaces.contains_key(&key) {
            let all = e::all::<StoredInterface>(tx, scope, kind::INTERFACE)?;
            self.interfaces.insert(key.clone(), all);
        }
        let interfaces = self
            .interfaces
            .get(&key)
            .map(Vec::as_slice)
            .unwrap_or_default();
        network_with(tx, scope, task, interfaces)
    }
}

/// The network of an awsvpc task as its agent needs it: the interface, and each of its
/// groups' rules with group peers resolved to the /32 of every interface in them now.
pub fn task_network(
    tx: &Tx<'_>,
    scope: Scope<'_>,
    task: &ecs::Task,
) -> Result<Option<TaskNetwork>, Failure> {
    Networks::default().of(tx, scope, task)
}

fn network_with(
    tx: &Tx<'_>,
    scope: Scope<'_>,
    task: &ecs::Task,
    interfaces: &[StoredInterface],
) -> Result<Option<TaskNetwork>, Failure> {
    let Some(eni) = task_interface_id(task) else {
        return Ok(None);
    };
    let Some(i) = interfaces.iter().find(|x| x.id() == eni) else {
        return Ok(None);
    };
    let subnet_id = i.interface.subnet_id.clone().unwrap_or_default();
    let vpc_id = i.interface.vpc_id.clone().unwrap_or_default();
    let subnet = e::get::<s::Subnet>(tx, scope, kind::SUBNET, &subnet_id)?.map(|(x, _)| x);
    let vpc = e::get::<StoredVpc>(tx, scope, kind::VPC, &vpc_id)?.map(|(x, _)| x);
    let subnet_cidr = subnet
        .as_ref()
        .and_then(|x| x.cidr_block.as_deref())
        .and_then(Cidr::parse);
    let mut members = |group: &str| -> Vec<String> {
        interfaces
            .iter()
            .filter(|x| x.group_ids().iter().any(|g| g == group))
            .filter_map(|x| x.interface.private_ip_address.clone())
            .collect()
    };
    let mut security_groups = Vec::new();
    for gid in i.group_ids() {
        let Some((g, _)) = e::get::<StoredGroup>(tx, scope, kind::GROUP, &gid)? else {
            continue;
        };
        let mut rules = SecurityGroupRules {
            group_id: gid.clone(),
            ingress: Vec::new(),
            egress: Vec::new(),
        };
        for r in &g.rules {
            let f = super::rules::firewall_rule(r, &mut members);
            if r.is_egress == Some(true) {
                rules.egress.push(f);
            } else {
                rules.ingress.push(f);
            }
        }
        security_groups.push(rules);
    }
    Ok(Some(TaskNetwork {
        interface: NetworkInterface {
            network_interface_id: eni,
            subnet_id,
            vpc_id,
            subnet_cidr: subnet_cidr.map(|c| c.to_string()).unwrap_or_default(),
            vpc_cidr: vpc
                .as_ref()
                .and_then(|v| v.vpc.cidr_block.clone())
                .unwrap_or_default(),
            private_ipv4_address: i.interface.private_ip_address.clone().unwrap_or_default(),
            gateway_ipv4_address: subnet_cidr
                .map(|c| c.nth(1).to_string())
                .unwrap_or_default(),
            mac_address: i.interface.mac_address.clone().unwrap_or_default(),
            private_dns_name: i.interface.private_dns_name.clone().unwrap_or_default(),
        },
        security_groups,
    }))
}

pub fn describe(
    tx: &Tx<'_>,
    ctx: &RequestContext,
    input: s::DescribeNetworkInterfacesRequest,
) -> Result<s::DescribeNetworkInterfacesResult, Failure> {
    let filters = input.filters.unwrap_or_default();
    filter::check(
        &StoredInterface {
            interface: s::NetworkInterface::default(),
            owner: None,
        },
        &filters,
    )?;
    let all = e::all::<StoredInterface>(tx, e::scope(ctx), kind::INTERFACE)?;
    let ids = input.network_interface_ids.unwrap_or_default();
    for id in &ids {
        err::check_id(id, "eni")?;
        if !all.iter().any(|i| i.id() == id) {
            return Err(err::not_found(id).into());
        }
    }
    let mut out = Vec::new();
    for i in all {
        if (ids.is_empty() || ids.iter().any(|x| x == i.id())) && filter::matches(&i, &filters)? {
            out.push(i.interface);
        }
    }
    let (interfaces, next_token) = page(
        out,
        |i| i.network_interface_id.clone().unwrap_or_default(),
        input.max_results,
        input.next_token.as_deref(),
    )?;
    Ok(s::DescribeNetworkInterfacesResult {
        network_interfaces: Some(interfaces),
        next_token,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names_and_macs() {
        assert_eq!(
            private_dns_name("172.31.16.5", "us-east-1"),
            "ip-172-31-16-5.ec2.internal"
        );
        assert_eq!(
            private_dns_name("10.0.0.4", "eu-west-1"),
            "ip-10-0-0-4.eu-west-1.compute.internal"
        );
        let mac = new_mac();
        assert!(mac.starts_with("0e:") && mac.len() == 17, "{mac}");
    }
}
