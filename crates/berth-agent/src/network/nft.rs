//! The nftables rule sets of task networks, as text for one `nft -f` transaction each (pure:
//! every value written into a rule set is parsed and checked first, so nothing from an
//! assignment reaches nft's parser unchecked).
//!
//! - [`shared_table`]: the host's `ip berth` table (masquerade for the task bridge);
//! - [`port_table`]: a bridge task's `ip berth-<task id>` table on the host (DNAT of its
//!   host ports to its address, from other hosts and from the host itself);
//! - [`security_group_table`]: an awsvpc task's `inet berth-sg` table inside its namespace
//!   (its security groups: stateful, ingress default deny, egress only what rules allow).

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr};

use berth_wire::agent::{FirewallRule, SecurityGroupRules};

use super::NetError;

/// The name of the security group table inside a task's namespace.
pub const SG_TABLE: &str = "berth-sg";

/// An IPv4 or IPv6 block, checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// Parses `a.b.c.d/n` or `x::y/n` (a bare address is a /32 or /128).
    pub fn parse(s: &str) -> Result<Cidr, NetError> {
        let bad = || NetError::Invalid(format!("cidr {s:?} is not an address block"));
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.trim().parse().map_err(|_| bad())?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.trim().parse::<u8>().map_err(|_| bad())?,
            None => max,
        };
        if prefix > max {
            return Err(bad());
        }
        Ok(Cidr { addr, prefix })
    }

    /// The block with host bits cleared, as nft wants it.
    pub fn network(&self) -> Cidr {
        let addr = match self.addr {
            IpAddr::V4(a) => {
                let m = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(self.prefix))
                };
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & m))
            }
            IpAddr::V6(a) => {
                let m = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(self.prefix))
                };
                IpAddr::V6(std::net::Ipv6Addr::from(u128::from(a) & m))
            }
        };
        Cidr {
            addr,
            prefix: self.prefix,
        }
    }

    fn is_all(&self) -> bool {
        self.prefix == 0
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.network();
        write!(f, "{}/{}", n.addr, n.prefix)
    }
}

/// A transport protocol of a port mapping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One host port forwarded to a task's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Forward {
    pub proto: Proto,
    pub host_port: u16,
    pub container_port: u16,
}

/// The host's shared table for the task bridge `bridge` with block `cidr`: traffic of the
/// tasks leaving by another interface is masqueraded, and so is traffic that reaches a task
/// through a DNAT from the host's loopback (127.0.0.0/8 may not leave on the bridge
/// otherwise) or from another task on the bridge (hairpin: the reply must come back through
/// the host to be un-NATed).
pub fn shared_table(bridge: &str, cidr: &Cidr) -> String {
    format!(
        "table ip berth {{}}\n\
         delete table ip berth\n\
         table ip berth {{\n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\tip saddr {cidr} oifname != \"{bridge}\" masquerade\n\
         \t\tip saddr 127.0.0.0/8 oifname \"{bridge}\" masquerade\n\
         \t\tip saddr {cidr} oifname \"{bridge}\" ct status dnat masquerade\n\
         \t}}\n\
         }}\n"
    )
}

/// A bridge task's table: each forward as DNAT to `addr`, for packets addressed to any of
/// the host's own addresses (from outside: prerouting; from the host itself: output).
pub fn port_table(table: &str, addr: Ipv4Addr, forwards: &[Forward]) -> String {
    let mut rules = String::new();
    for f in forwards {
        let _ = writeln!(
            rules,
            "\t\tfib daddr type local {} dport {} dnat to {addr}:{}",
            f.proto.as_str(),
            f.host_port,
            f.container_port
        );
    }
    format!(
        "table ip {table} {{}}\n\
         delete table ip {table}\n\
         table ip {table} {{\n\
         \tchain prerouting {{\n\
         \t\ttype nat hook prerouting priority dstnat; policy accept;\n\
         {rules}\
         \t}}\n\
         \tchain output {{\n\
         \t\ttype nat hook output priority -100; policy accept;\n\
         {rules}\
         \t}}\n\
         }}\n"
    )
}

/// The match of one rule's protocol and ports (after the address match); None when the
/// rule does not apply to the family (an ICMP rule of the other one).
fn proto_match(r: &FirewallRule, v6: bool) -> Result<Option<String>, NetError> {
    let ports = |from: Option<i32>, to: Option<i32>| -> Result<String, NetError> {
        let (from, to) = (from.unwrap_or(-1), to.unwrap_or(-1));
        if from < 0 || (from == 0 && (to == 65535 || to < 0)) {
            return Ok(String::new());
        }
        let to = if to < 0 { from } else { to };
        if from > 65535 || to > 65535 || to < from {
            return Err(NetError::Invalid(format!(
                "port range {from}-{to} is not valid"
            )));
        }
        Ok(if from == to {
            format!(" dport {from}")
        } else {
            format!(" dport {from}-{to}")
        })
    };
    let l4 = |name: &str, ports: String| {
        if ports.is_empty() {
            format!(" meta l4proto {name}")
        } else {
            format!(" {name}{ports}")
        }
    };
    let icmp = |kw: &str, l4: &str| -> Result<Option<String>, NetError> {
        let (t, c) = (r.from_port.unwrap_or(-1), r.to_port.unwrap_or(-1));
        if t < 0 {
            return Ok(Some(format!(" meta l4proto {l4}")));
        }
        if t > 255 || c > 255 {
            return Err(NetError::Invalid(format!(
                "icmp type {t} code {c} is not valid"
            )));
        }
        Ok(Some(if c < 0 {
            format!(" {kw} type {t}")
        } else {
            format!(" {kw} type {t} {kw} code {c}")
        }))
    };
    match r.protocol.as_str() {
        "tcp" | "6" => Ok(Some(l4("tcp", ports(r.from_port, r.to_port)?))),
        "udp" | "17" => Ok(Some(l4("udp", ports(r.from_port, r.to_port)?))),
        "icmp" | "1" if !v6 => icmp("icmp", "icmp"),
        "icmpv6" | "58" if v6 => icmp("icmpv6", "ipv6-icmp"),
        "icmp" | "1" | "icmpv6" | "58" => Ok(None),
        "-1" | "all" => Ok(Some(String::new())),
        p => match p.parse::<u8>() {
            Ok(n) => Ok(Some(format!(" meta l4proto {n}"))),
            Err(_) => Err(NetError::Invalid(format!("protocol {p:?} is not valid"))),
        },
    }
}

/// The rules of one direction: `addr_key` is `saddr` (ingress) or `daddr` (egress).
fn direction_rules(rules: &[&FirewallRule], addr_key: &str) -> Result<String, NetError> {
    let mut out = String::new();
    for r in rules {
        let cidrs: Vec<Cidr> = r
            .cidrs
            .iter()
            .map(|c| Cidr::parse(c))
            .collect::<Result<_, _>>()?;
        for v6 in [false, true] {
            let fam: Vec<&Cidr> = cidrs.iter().filter(|c| c.addr.is_ipv6() == v6).collect();
            if fam.is_empty() {
                continue;
            }
            let Some(m) = proto_match(r, v6)? else {
                continue;
            };
            let (nfproto, ipk) = if v6 { ("ipv6", "ip6") } else { ("ipv4", "ip") };
            let addr = if fam.iter().any(|c| c.is_all()) {
                format!("meta nfproto {nfproto}")
            } else {
                let set: Vec<String> = fam.iter().map(|c| c.to_string()).collect();
                format!("{ipk} {addr_key} {{ {} }}", set.join(", "))
            };
            let _ = writeln!(out, "\t\t{addr}{m} accept");
        }
    }
    Ok(out)
}

/// The security group table of an awsvpc task: the union of its groups' rules. Connections
/// already allowed go on (conntrack); loopback and the metadata link (`meta_if`) are always
/// open, as the ECS agent's endpoints are on AWS.
pub fn security_group_table(
    groups: &[SecurityGroupRules],
    meta_if: &str,
) -> Result<String, NetError> {
    let ingress: Vec<&FirewallRule> = groups.iter().flat_map(|g| &g.ingress).collect();
    let egress: Vec<&FirewallRule> = groups.iter().flat_map(|g| &g.egress).collect();
    let ingress = direction_rules(&ingress, "saddr")?;
    let egress = direction_rules(&egress, "daddr")?;
    let names: Vec<&str> = groups.iter().map(|g| g.group_id.as_str()).collect();
    for n in &names {
        if !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(NetError::Invalid(format!("security group id {n:?}")));
        }
    }
    Ok(format!(
        "table inet {SG_TABLE} {{}}\n\
         delete table inet {SG_TABLE}\n\
         table inet {SG_TABLE} {{\n\
         \tcomment \"{}\"\n\
         \tchain ingress {{\n\
         \t\ttype filter hook input priority filter; policy drop;\n\
         \t\tct state established,related accept\n\
         \t\tct state invalid drop\n\
         \t\tiif \"lo\" accept\n\
         {ingress}\
         \t}}\n\
         \tchain egress {{\n\
         \t\ttype filter hook output priority filter; policy drop;\n\
         \t\tct state established,related accept\n\
         \t\toif \"lo\" accept\n\
         \t\toifname \"{meta_if}\" accept\n\
         {egress}\
         \t}}\n\
         }}\n",
        names.join(" ")
    ))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn rule(p: &str, from: Option<i32>, to: Option<i32>, cidrs: &[&str]) -> FirewallRule {
        FirewallRule {
            protocol: p.into(),
            from_port: from,
            to_port: to,
            cidrs: cidrs.iter().map(|c| c.to_string()).collect(),
        }
    }

    #[test]
    fn cidrs_parse_and_normalise() {
        assert_eq!(Cidr::parse("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
        assert_eq!(Cidr::parse("10.1.2.3").unwrap().to_string(), "10.1.2.3/32");
        assert_eq!(Cidr::parse("::/0").unwrap().to_string(), "::/0");
        assert_eq!(Cidr::parse("0.0.0.0/0").unwrap().to_string(), "0.0.0.0/0");
        for bad in [
            "10.0.0.0/33",
            "x",
            "10.0.0.0/8; flush ruleset",
            "",
            "1.2.3.4/-1",
        ] {
            assert!(Cidr::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rules_become_matches() {
        let g = SecurityGroupRules {
            group_id: "sg-0123".into(),
            ingress: vec![
                rule(
                    "tcp",
                    Some(80),
                    Some(80),
                    &["10.0.0.0/16", "172.31.16.5/32"],
                ),
                rule("udp", Some(1000), Some(2000), &["0.0.0.0/0"]),
                rule("icmp", Some(8), Some(-1), &["0.0.0.0/0", "::/0"]),
                rule("-1", None, None, &["192.168.1.0/24"]),
                rule("tcp", Some(0), Some(65535), &["::/0"]),
            ],
            egress: vec![rule("-1", None, None, &["0.0.0.0/0"])],
        };
        let t = security_group_table(&[g], "meta0").unwrap();
        assert!(
            t.contains("ip saddr { 10.0.0.0/16, 172.31.16.5/32 } tcp dport 80 accept"),
            "{t}"
        );
        assert!(
            t.contains("meta nfproto ipv4 udp dport 1000-2000 accept"),
            "{t}"
        );
        assert!(t.contains("meta nfproto ipv4 icmp type 8 accept"), "{t}");
        assert!(!t.contains("icmpv6"), "{t}");
        assert!(t.contains("ip saddr { 192.168.1.0/24 } accept"), "{t}");
        assert!(
            t.contains("meta nfproto ipv6 meta l4proto tcp accept"),
            "{t}"
        );
        assert!(t.contains("meta nfproto ipv4 accept"), "{t}");
        assert!(t.contains("policy drop"));
    }

    #[test]
    fn bad_rules_are_refused() {
        for r in [
            rule("tcp", Some(90), Some(80), &["0.0.0.0/0"]),
            rule("tcp", Some(80), Some(70000), &["0.0.0.0/0"]),
            rule("gre; flush ruleset", None, None, &["0.0.0.0/0"]),
            rule("tcp", Some(80), Some(80), &["\"; flush ruleset"]),
        ] {
            let g = SecurityGroupRules {
                group_id: "sg-1".into(),
                ingress: vec![r],
                egress: vec![],
            };
            assert!(security_group_table(&[g], "meta0").is_err());
        }
    }

    #[test]
    fn port_tables_forward_each_mapping() {
        let t = port_table(
            "berth-abc",
            Ipv4Addr::new(169, 254, 172, 9),
            &[
                Forward {
                    proto: Proto::Tcp,
                    host_port: 8080,
                    container_port: 80,
                },
                Forward {
                    proto: Proto::Udp,
                    host_port: 49153,
                    container_port: 53,
                },
            ],
        );
        assert_eq!(
            t.matches("fib daddr type local tcp dport 8080 dnat to 169.254.172.9:80")
                .count(),
            2
        );
        assert_eq!(
            t.matches("udp dport 49153 dnat to 169.254.172.9:53")
                .count(),
            2
        );
    }
}
