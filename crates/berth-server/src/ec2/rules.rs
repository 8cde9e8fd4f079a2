//! Security group rules: turning EC2's IpPermissions (and the older flat parameters) into
//! one rule per source, duplicates and revocations as EC2 decides them, rules back into
//! IpPermissions for DescribeSecurityGroups, and rules resolved to address ranges for the
//! agent. Pure, except for the store lookups of referenced groups done by the callers.

use berth_store::Scope;
use berth_wire::AwsError;
use berth_wire::agent::FirewallRule;
use berth_wire::ec2::shapes as s;

use super::cidr::{self, Cidr};
use super::entities::{arn, new_id};
use super::error::invalid_parameter;

/// Where a rule's traffic comes from (ingress) or goes to (egress).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Peer {
    Ipv4(String),
    Ipv6(String),
    Group(String),
    PrefixList(String),
}

/// One rule as requested: a protocol, a port range and one peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    /// `tcp`, `udp`, `icmp`, `icmpv6`, `-1` or another protocol number.
    pub protocol: String,
    pub from_port: i32,
    pub to_port: i32,
    pub peer: Peer,
    pub description: Option<String>,
}

impl Spec {
    /// Whether two specs are the same rule (descriptions do not count).
    pub fn same_rule(&self, other: &Spec) -> bool {
        self.protocol == other.protocol
            && self.from_port == other.from_port
            && self.to_port == other.to_port
            && self.peer == other.peer
    }

    /// The rule as EC2's duplicate message quotes it.
    fn quoted(&self) -> String {
        let peer = match &self.peer {
            Peer::Ipv4(c) | Peer::Ipv6(c) => c.clone(),
            Peer::Group(g) => g.clone(),
            Peer::PrefixList(p) => p.clone(),
        };
        match self.protocol.as_str() {
            "-1" => format!("peer: {peer}, ALL, ALLOW"),
            p => format!(
                "peer: {peer}, {}, from port: {}, to port: {}, ALLOW",
                p.to_uppercase(),
                self.from_port,
                self.to_port
            ),
        }
    }
}

/// EC2's IpProtocol in its normal form: names for tcp, udp, icmp and icmpv6 (also when
/// given as 6, 17, 1, 58), `-1` for all, other protocol numbers as they are.
pub fn normalize_protocol(p: &str) -> Result<String, AwsError> {
    let lower = p.trim().to_ascii_lowercase();
    Ok(match lower.as_str() {
        "tcp" | "6" => "tcp".into(),
        "udp" | "17" => "udp".into(),
        "icmp" | "1" => "icmp".into(),
        "icmpv6" | "58" => "icmpv6".into(),
        "-1" | "all" => "-1".into(),
        n if n.parse::<u8>().is_ok() => n.parse::<u8>().map(|x| x.to_string()).unwrap_or_default(),
        _ => {
            return Err(invalid_parameter(format!(
                "Invalid value '{p}' for IP protocol. Unknown protocol."
            )));
        }
    })
}

/// The port range a protocol keeps: tcp/udp need both ends (0-65535, from ≤ to); icmp takes
/// a type and code (-1 for all); other protocols cover every port (-1, -1).
fn ports(protocol: &str, from: Option<i32>, to: Option<i32>) -> Result<(i32, i32), AwsError> {
    match protocol {
        "tcp" | "udp" => {
            let (Some(f), Some(t)) = (from, to) else {
                return Err(invalid_parameter(
                    "Invalid value 'Must specify both from and to ports with TCP/UDP.' for portRange.",
                ));
            };
            if !(0..=65535).contains(&f) || !(0..=65535).contains(&t) || f > t {
                return Err(invalid_parameter(format!(
                    "Invalid value 'Invalid TCP/UDP port range {f}-{t}.' for portRange."
                )));
            }
            Ok((f, t))
        }
        "icmp" | "icmpv6" => {
            let f = from.unwrap_or(-1);
            let t = to.unwrap_or(-1);
            if !(-1..=255).contains(&f) || !(-1..=255).contains(&t) {
                return Err(invalid_parameter(format!(
                    "Invalid value '{f}' for icmp type or '{t}' for icmp code."
                )));
            }
            Ok((f, t))
        }
        _ => Ok((-1, -1)),
    }
}

/// The rules an IpPermission asks for, one per peer. `resolve_group` turns a group
/// reference (id, or name in the default VPC) into a group id.
pub fn specs_of(
    p: &s::IpPermission,
    resolve_group: &mut dyn FnMut(&s::UserIdGroupPair) -> Result<String, AwsError>,
) -> Result<Vec<Spec>, AwsError> {
    let protocol = normalize_protocol(
        p.ip_protocol
            .as_deref()
            .ok_or_else(|| super::error::missing("IpProtocol"))?,
    )?;
    let (from_port, to_port) = ports(&protocol, p.from_port, p.to_port)?;
    let mut out = Vec::new();
    let spec = |peer: Peer, description: &Option<String>| Spec {
        protocol: protocol.clone(),
        from_port,
        to_port,
        peer,
        description: description.clone(),
    };
    for r in p.ip_ranges.iter().flatten() {
        let raw = r.cidr_ip.as_deref().unwrap_or("");
        let c = Cidr::parse(raw)
            .ok_or_else(|| invalid_parameter(format!("CIDR block {raw} is malformed")))?;
        out.push(spec(Peer::Ipv4(c.to_string()), &r.description));
    }
    for r in p.ipv6_ranges.iter().flatten() {
        let raw = r.cidr_ipv6.as_deref().unwrap_or("");
        let c = cidr::canonical_ipv6(raw)
            .ok_or_else(|| invalid_parameter(format!("CIDR block {raw} is malformed")))?;
        out.push(spec(Peer::Ipv6(c), &r.description));
    }
    for g in p.user_id_group_pairs.iter().flatten() {
        out.push(spec(Peer::Group(resolve_group(g)?), &g.description));
    }
    for l in p.prefix_list_ids.iter().flatten() {
        out.push(spec(
            Peer::PrefixList(l.prefix_list_id.clone().unwrap_or_default()),
            &l.description,
        ));
    }
    if out.is_empty() {
        // A permission with no peer at all: EC2 refuses it.
        return Err(missing_peer());
    }
    Ok(out)
}

fn missing_peer() -> AwsError {
    AwsError::new(
        "InvalidParameterValue",
        400,
        "The request must contain at least one of CidrIp, CidrIpv6, source group, or prefix list.",
    )
}

/// The spec a stored rule is.
pub fn spec_of(r: &s::SecurityGroupRule) -> Spec {
    let peer = if let Some(c) = &r.cidr_ipv4 {
        Peer::Ipv4(c.clone())
    } else if let Some(c) = &r.cidr_ipv6 {
        Peer::Ipv6(c.clone())
    } else if let Some(g) = r
        .referenced_group_info
        .as_ref()
        .and_then(|g| g.group_id.clone())
    {
        Peer::Group(g)
    } else {
        Peer::PrefixList(r.prefix_list_id.clone().unwrap_or_default())
    };
    Spec {
        protocol: r.ip_protocol.clone().unwrap_or_else(|| "-1".into()),
        from_port: r.from_port.unwrap_or(-1),
        to_port: r.to_port.unwrap_or(-1),
        peer,
        description: r.description.clone(),
    }
}

/// A stored rule (`sgr-…`) of group `group_id` from a spec.
pub fn new_rule(
    scope: Scope<'_>,
    group_id: &str,
    egress: bool,
    spec: Spec,
) -> s::SecurityGroupRule {
    let id = new_id("sgr");
    let mut r = s::SecurityGroupRule {
        security_group_rule_id: Some(id.clone()),
        security_group_rule_arn: Some(arn(scope, &format!("security-group-rule/{id}"))),
        group_id: Some(group_id.to_string()),
        group_owner_id: Some(scope.account.to_string()),
        is_egress: Some(egress),
        ip_protocol: Some(spec.protocol),
        from_port: Some(spec.from_port),
        to_port: Some(spec.to_port),
        description: spec.description,
        tags: Some(Vec::new()),
        ..Default::default()
    };
    match spec.peer {
        Peer::Ipv4(c) => r.cidr_ipv4 = Some(c),
        Peer::Ipv6(c) => r.cidr_ipv6 = Some(c),
        Peer::Group(g) => {
            r.referenced_group_info = Some(s::ReferencedSecurityGroup {
                group_id: Some(g),
                user_id: Some(scope.account.to_string()),
                ..Default::default()
            })
        }
        Peer::PrefixList(p) => r.prefix_list_id = Some(p),
    }
    r
}

/// The egress rule every new group starts with: all traffic to 0.0.0.0/0.
pub fn allow_all_out(scope: Scope<'_>, group_id: &str) -> s::SecurityGroupRule {
    new_rule(
        scope,
        group_id,
        true,
        Spec {
            protocol: "-1".into(),
            from_port: -1,
            to_port: -1,
            peer: Peer::Ipv4("0.0.0.0/0".into()),
            description: None,
        },
    )
}

/// Adds `specs` to `rules` as new rules of direction `egress`; a spec that is already a
/// rule (or given twice) is EC2's InvalidPermission.Duplicate. Returns the new rules.
pub fn authorize(
    scope: Scope<'_>,
    group_id: &str,
    rules: &mut Vec<s::SecurityGroupRule>,
    egress: bool,
    specs: Vec<Spec>,
) -> Result<Vec<s::SecurityGroupRule>, AwsError> {
    let mut added: Vec<s::SecurityGroupRule> = Vec::new();
    for spec in specs {
        let exists = rules
            .iter()
            .chain(added.iter())
            .filter(|r| r.is_egress == Some(egress))
            .any(|r| spec_of(r).same_rule(&spec));
        if exists {
            return Err(AwsError::new(
                "InvalidPermission.Duplicate",
                400,
                format!("the specified rule \"{}\" already exists", spec.quoted()),
            ));
        }
        added.push(new_rule(scope, group_id, egress, spec));
    }
    rules.extend(added.iter().cloned());
    Ok(added)
}

/// Removes the rules matching `specs` (direction `egress`). Returns the removed rules and
/// the specs no rule matched; EC2 refuses the call when nothing matched at all.
pub fn revoke(
    rules: &mut Vec<s::SecurityGroupRule>,
    egress: bool,
    specs: &[Spec],
) -> Result<(Vec<s::SecurityGroupRule>, Vec<Spec>), AwsError> {
    let mut removed = Vec::new();
    let mut unknown = Vec::new();
    for spec in specs {
        match rules
            .iter()
            .position(|r| r.is_egress == Some(egress) && spec_of(r).same_rule(spec))
        {
            Some(i) => removed.push(rules.remove(i)),
            None => unknown.push(spec.clone()),
        }
    }
    if removed.is_empty() && !specs.is_empty() {
        return Err(AwsError::new(
            "InvalidPermission.NotFound",
            400,
            "The specified rule does not exist in this security group.",
        ));
    }
    Ok((removed, unknown))
}

/// Removes the rules named by id (of direction `egress`); an id that is not one is an error.
pub fn revoke_ids(
    rules: &mut Vec<s::SecurityGroupRule>,
    egress: bool,
    ids: &[String],
    group_id: &str,
) -> Result<Vec<s::SecurityGroupRule>, AwsError> {
    let mut removed = Vec::new();
    for id in ids {
        let Some(i) = rules.iter().position(|r| {
            r.is_egress == Some(egress) && r.security_group_rule_id.as_deref() == Some(id)
        }) else {
            return Err(AwsError::new(
                "InvalidSecurityGroupRuleId.NotFound",
                400,
                format!(
                    "The security group rule ID '{id}' does not exist in security group '{group_id}'"
                ),
            ));
        };
        removed.push(rules.remove(i));
    }
    Ok(removed)
}

/// A spec as an IpPermission (for unknownIpPermissions).
pub fn permission_of(spec: &Spec) -> s::IpPermission {
    let mut p = s::IpPermission {
        ip_protocol: Some(spec.protocol.clone()),
        from_port: (spec.protocol != "-1").then_some(spec.from_port),
        to_port: (spec.protocol != "-1").then_some(spec.to_port),
        ip_ranges: Some(Vec::new()),
        ipv6_ranges: Some(Vec::new()),
        prefix_list_ids: Some(Vec::new()),
        user_id_group_pairs: Some(Vec::new()),
    };
    add_peer(&mut p, spec, "");
    p
}

fn add_peer(p: &mut s::IpPermission, spec: &Spec, owner: &str) {
    let d = spec.description.clone();
    match &spec.peer {
        Peer::Ipv4(c) => p.ip_ranges.get_or_insert_with(Vec::new).push(s::IpRange {
            cidr_ip: Some(c.clone()),
            description: d,
        }),
        Peer::Ipv6(c) => p
            .ipv6_ranges
            .get_or_insert_with(Vec::new)
            .push(s::Ipv6Range {
                cidr_ipv6: Some(c.clone()),
                description: d,
            }),
        Peer::Group(g) => {
            p.user_id_group_pairs
                .get_or_insert_with(Vec::new)
                .push(s::UserIdGroupPair {
                    group_id: Some(g.clone()),
                    user_id: (!owner.is_empty()).then(|| owner.to_string()),
                    description: d,
                    ..Default::default()
                })
        }
        Peer::PrefixList(l) => {
            p.prefix_list_ids
                .get_or_insert_with(Vec::new)
                .push(s::PrefixListId {
                    prefix_list_id: Some(l.clone()),
                    description: d,
                })
        }
    }
}

/// A group's rules of one direction as DescribeSecurityGroups shows them: one IpPermission
/// per (protocol, port range), in the order the rules were added.
pub fn permissions(
    rules: &[s::SecurityGroupRule],
    egress: bool,
    owner: &str,
) -> Vec<s::IpPermission> {
    let mut out: Vec<s::IpPermission> = Vec::new();
    for r in rules.iter().filter(|r| r.is_egress == Some(egress)) {
        let spec = spec_of(r);
        let all = spec.protocol == "-1";
        let from = (!all).then_some(spec.from_port);
        let to = (!all).then_some(spec.to_port);
        let i = match out.iter().position(|p| {
            p.ip_protocol.as_deref() == Some(spec.protocol.as_str())
                && p.from_port == from
                && p.to_port == to
        }) {
            Some(i) => i,
            None => {
                out.push(s::IpPermission {
                    ip_protocol: Some(spec.protocol.clone()),
                    from_port: from,
                    to_port: to,
                    ip_ranges: Some(Vec::new()),
                    ipv6_ranges: Some(Vec::new()),
                    prefix_list_ids: Some(Vec::new()),
                    user_id_group_pairs: Some(Vec::new()),
                });
                out.len() - 1
            }
        };
        add_peer(&mut out[i], &spec, owner);
    }
    out
}

/// A rule as the agent enforces it, with a group peer resolved by `members` to the /32 of
/// every interface in that group now.
pub fn firewall_rule(
    r: &s::SecurityGroupRule,
    members: &mut dyn FnMut(&str) -> Vec<String>,
) -> FirewallRule {
    let spec = spec_of(r);
    let all = spec.protocol == "-1";
    let cidrs = match &spec.peer {
        Peer::Ipv4(c) | Peer::Ipv6(c) => vec![c.clone()],
        Peer::Group(g) => members(g)
            .into_iter()
            .map(|ip| format!("{ip}/32"))
            .collect(),
        // Prefix lists are not served: they match nothing.
        Peer::PrefixList(_) => Vec::new(),
    };
    FirewallRule {
        protocol: spec.protocol,
        from_port: (!all).then_some(spec.from_port),
        to_port: (!all).then_some(spec.to_port),
        cidrs,
    }
}

/// The request's rules from its IpPermissions or the older flat parameters (CidrIp,
/// IpProtocol, FromPort, ToPort, SourceSecurityGroupName), which may not be mixed.
pub struct Flat<'a> {
    pub cidr_ip: Option<&'a str>,
    pub ip_protocol: Option<&'a str>,
    pub from_port: Option<i32>,
    pub to_port: Option<i32>,
    pub source_group_name: Option<&'a str>,
    pub source_group_owner: Option<&'a str>,
}

impl Flat<'_> {
    pub fn is_empty(&self) -> bool {
        self.cidr_ip.is_none()
            && self.ip_protocol.is_none()
            && self.from_port.is_none()
            && self.to_port.is_none()
            && self.source_group_name.is_none()
    }

    /// The one IpPermission the flat parameters describe (a source group alone means every
    /// protocol and port, as EC2 reads it).
    pub fn permission(&self) -> s::IpPermission {
        let protocol = self.ip_protocol.map(str::to_string).unwrap_or_else(|| {
            if self.source_group_name.is_some() {
                "-1".into()
            } else {
                String::new()
            }
        });
        s::IpPermission {
            ip_protocol: Some(protocol),
            from_port: self.from_port,
            to_port: self.to_port,
            ip_ranges: self.cidr_ip.map(|c| {
                vec![s::IpRange {
                    cidr_ip: Some(c.to_string()),
                    description: None,
                }]
            }),
            user_id_group_pairs: self.source_group_name.map(|n| {
                vec![s::UserIdGroupPair {
                    group_name: Some(n.to_string()),
                    user_id: self.source_group_owner.map(str::to_string),
                    ..Default::default()
                }]
            }),
            ..Default::default()
        }
    }
}

/// The permissions of a request: IpPermissions or the flat parameters.
pub fn requested(
    ip_permissions: Option<&Vec<s::IpPermission>>,
    flat: &Flat<'_>,
) -> Result<Vec<s::IpPermission>, AwsError> {
    match (ip_permissions.filter(|p| !p.is_empty()), flat.is_empty()) {
        (Some(_), false) => Err(super::error::combination(
            "The parameter 'ipPermissions' may not be used in combination with 'cidrIp', 'ipProtocol', 'fromPort', 'toPort' or 'sourceSecurityGroupName'",
        )),
        (Some(p), true) => Ok(p.clone()),
        (None, false) => Ok(vec![flat.permission()]),
        (None, true) => Err(super::error::missing("IpPermissions")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SCOPE: Scope<'static> = Scope {
        account: "123456789012",
        region: "us-east-1",
    };

    fn tcp(port: i32, cidr: &str) -> s::IpPermission {
        s::IpPermission {
            ip_protocol: Some("6".into()),
            from_port: Some(port),
            to_port: Some(port),
            ip_ranges: Some(vec![s::IpRange {
                cidr_ip: Some(cidr.into()),
                description: None,
            }]),
            ..Default::default()
        }
    }

    fn no_groups(_: &s::UserIdGroupPair) -> Result<String, AwsError> {
        unreachable!()
    }

    #[test]
    fn protocols_normalise() {
        assert_eq!(normalize_protocol("TCP").unwrap(), "tcp");
        assert_eq!(normalize_protocol("17").unwrap(), "udp");
        assert_eq!(normalize_protocol("all").unwrap(), "-1");
        assert_eq!(normalize_protocol("50").unwrap(), "50");
        assert!(normalize_protocol("tcpx").is_err());
        assert!(normalize_protocol("256").is_err());
    }

    #[test]
    fn permissions_become_one_rule_per_peer_and_back() {
        let mut p = tcp(22, "10.0.0.18/8");
        p.ip_ranges.as_mut().unwrap().push(s::IpRange {
            cidr_ip: Some("192.168.0.0/16".into()),
            description: Some("office".into()),
        });
        p.user_id_group_pairs = Some(vec![s::UserIdGroupPair {
            group_id: Some("sg-1".into()),
            ..Default::default()
        }]);
        let specs = specs_of(&p, &mut |g| Ok(g.group_id.clone().unwrap())).unwrap();
        assert_eq!(specs.len(), 3);
        assert_eq!(specs[0].peer, Peer::Ipv4("10.0.0.0/8".into()), "canonical");
        let mut rules = Vec::new();
        authorize(SCOPE, "sg-9", &mut rules, false, specs).unwrap();
        let perms = permissions(&rules, false, "123456789012");
        assert_eq!(perms.len(), 1);
        assert_eq!(perms[0].ip_protocol.as_deref(), Some("tcp"));
        assert_eq!(perms[0].ip_ranges.as_ref().unwrap().len(), 2);
        assert_eq!(perms[0].user_id_group_pairs.as_ref().unwrap().len(), 1);
        assert!(permissions(&rules, true, "").is_empty());
    }

    #[test]
    fn duplicates_are_refused_and_revocation_matches_rules() {
        let mut rules = vec![allow_all_out(SCOPE, "sg-9")];
        let specs = specs_of(&tcp(80, "0.0.0.0/0"), &mut no_groups).unwrap();
        authorize(SCOPE, "sg-9", &mut rules, false, specs.clone()).unwrap();
        let e = authorize(SCOPE, "sg-9", &mut rules, false, specs.clone()).unwrap_err();
        assert_eq!(e.code, "InvalidPermission.Duplicate");
        assert_eq!(
            e.message,
            "the specified rule \"peer: 0.0.0.0/0, TCP, from port: 80, to port: 80, ALLOW\" already exists"
        );
        // The same rule twice in one request is a duplicate too.
        let twice = [specs.clone(), specs.clone()].concat();
        let mut fresh = Vec::new();
        assert!(authorize(SCOPE, "sg-9", &mut fresh, false, twice).is_err());
        // Egress is another direction.
        authorize(SCOPE, "sg-9", &mut rules, true, specs.clone()).unwrap();
        let (removed, unknown) = revoke(&mut rules, false, &specs).unwrap();
        assert_eq!(removed.len(), 1);
        assert!(unknown.is_empty());
        let e = revoke(&mut rules, false, &specs).unwrap_err();
        assert_eq!(e.code, "InvalidPermission.NotFound");
        assert_eq!(rules.len(), 2);
    }

    #[test]
    fn ports_are_checked() {
        let mut p = tcp(80, "0.0.0.0/0");
        p.to_port = None;
        assert!(specs_of(&p, &mut no_groups).is_err());
        p.to_port = Some(79);
        assert!(specs_of(&p, &mut no_groups).is_err());
        p.ip_protocol = Some("-1".into());
        let s = specs_of(&p, &mut no_groups).unwrap();
        assert_eq!((s[0].from_port, s[0].to_port), (-1, -1));
    }

    #[test]
    fn group_peers_resolve_to_member_addresses() {
        let r = new_rule(
            SCOPE,
            "sg-a",
            false,
            Spec {
                protocol: "tcp".into(),
                from_port: 80,
                to_port: 81,
                peer: Peer::Group("sg-b".into()),
                description: None,
            },
        );
        let f = firewall_rule(&r, &mut |g| {
            assert_eq!(g, "sg-b");
            vec!["10.0.0.4".into(), "10.0.0.5".into()]
        });
        assert_eq!(f.cidrs, ["10.0.0.4/32", "10.0.0.5/32"]);
        assert_eq!((f.from_port, f.to_port), (Some(80), Some(81)));
        let all = firewall_rule(&allow_all_out(SCOPE, "sg-a"), &mut |_| Vec::new());
        assert_eq!(all.protocol, "-1");
        assert_eq!(all.from_port, None);
        assert_eq!(all.cidrs, ["0.0.0.0/0"]);
    }

    #[test]
    fn flat_parameters_and_permissions_do_not_mix() {
        let flat = Flat {
            cidr_ip: Some("0.0.0.0/0"),
            ip_protocol: Some("tcp"),
            from_port: Some(22),
            to_port: Some(22),
            source_group_name: None,
            source_group_owner: None,
        };
        let perms = requested(None, &flat).unwrap();
        assert_eq!(specs_of(&perms[0], &mut no_groups).unwrap().len(), 1);
        assert_eq!(
            requested(Some(&vec![tcp(1, "0.0.0.0/0")]), &flat)
                .unwrap_err()
                .code,
            "InvalidParameterCombination"
        );
    }
}
