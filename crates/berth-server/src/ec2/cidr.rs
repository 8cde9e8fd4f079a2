//! IPv4 blocks as EC2 handles them: parsing and canonical form, containment and overlap,
//! and address allocation inside a subnet with the five addresses AWS reserves (network,
//! router, DNS, future use, broadcast). Pure.

use std::collections::BTreeSet;
use std::fmt;
use std::net::Ipv4Addr;

/// An IPv4 block in canonical form (host bits cleared).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Cidr {
    pub network: u32,
    pub prefix: u8,
}

/// How many addresses of every subnet AWS keeps for itself.
pub const RESERVED_PER_SUBNET: u64 = 5;

impl Cidr {
    /// Parses `a.b.c.d/n` and clears the host bits (EC2 canonicalises `10.0.0.18/16` to
    /// `10.0.0.0/16`). None when it is not an IPv4 block.
    pub fn parse(text: &str) -> Option<Cidr> {
        let (addr, len) = text.trim().split_once('/')?;
        let addr: Ipv4Addr = addr.parse().ok()?;
        if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) || len.len() > 2 {
            return None;
        }
        let prefix: u8 = len.parse().ok()?;
        if prefix > 32 {
            return None;
        }
        Some(Cidr {
            network: u32::from(addr) & mask(prefix),
            prefix,
        })
    }

    /// The block of one address.
    pub fn host(addr: Ipv4Addr) -> Cidr {
        Cidr {
            network: u32::from(addr),
            prefix: 32,
        }
    }

    pub fn size(self) -> u64 {
        1u64 << (32 - u32::from(self.prefix))
    }

    pub fn first(self) -> u32 {
        self.network
    }

    pub fn last(self) -> u32 {
        self.network | !mask(self.prefix)
    }

    pub fn contains_addr(self, addr: u32) -> bool {
        addr & mask(self.prefix) == self.network
    }

    /// Whether `inner` lies wholly inside this block.
    pub fn contains(self, inner: Cidr) -> bool {
        inner.prefix >= self.prefix && self.contains_addr(inner.network)
    }

    pub fn overlaps(self, other: Cidr) -> bool {
        self.contains(other) || other.contains(self)
    }

    /// The address `n` places after the network address.
    pub fn nth(self, n: u32) -> Ipv4Addr {
        Ipv4Addr::from(self.network.wrapping_add(n))
    }

    /// How many addresses a subnet of this block offers to interfaces.
    pub fn usable(self) -> u64 {
        self.size().saturating_sub(RESERVED_PER_SUBNET)
    }

    /// The lowest address of the subnet that AWS does not reserve and `used` does not hold.
    pub fn allocate(self, used: &BTreeSet<Ipv4Addr>) -> Option<Ipv4Addr> {
        if self.size() <= RESERVED_PER_SUBNET {
            return None;
        }
        // network+0..=network+3 and the broadcast address are reserved.
        (self.first() + 4..self.last())
            .map(Ipv4Addr::from)
            .find(|a| !used.contains(a))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.network), self.prefix)
    }
}

fn mask(prefix: u8) -> u32 {
    if prefix == 0 {
        0
    } else {
        u32::MAX << (32 - u32::from(prefix))
    }
}

/// The canonical form of an IPv6 block (`2001:DB8::/32` → `2001:db8::/32`), None when it is
/// not one.
pub fn canonical_ipv6(text: &str) -> Option<String> {
    let (addr, len) = text.trim().split_once('/')?;
    let addr: std::net::Ipv6Addr = addr.parse().ok()?;
    let prefix: u8 = len.parse().ok().filter(|p| *p <= 128)?;
    let bits = u128::from(addr);
    let m = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(prefix))
    };
    Some(format!("{}/{prefix}", std::net::Ipv6Addr::from(bits & m)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_canonicalises() {
        let c = Cidr::parse("100.68.0.18/18").unwrap();
        assert_eq!(c.to_string(), "100.68.0.0/18");
        assert!(Cidr::parse("10.0.0.0").is_none());
        assert!(Cidr::parse("10.0.0.0/33").is_none());
        assert!(Cidr::parse("10.0.0/16").is_none());
        assert!(Cidr::parse("10.0.0.0/+1").is_none());
        assert_eq!(Cidr::parse("0.0.0.0/0").unwrap().size(), 1 << 32);
        assert_eq!(canonical_ipv6("2001:DB8::1/32").unwrap(), "2001:db8::/32");
        assert_eq!(canonical_ipv6("::/0").unwrap(), "::/0");
    }

    #[test]
    fn containment_and_overlap() {
        let vpc = Cidr::parse("172.31.0.0/16").unwrap();
        let a = Cidr::parse("172.31.0.0/20").unwrap();
        let b = Cidr::parse("172.31.16.0/20").unwrap();
        assert!(vpc.contains(a) && vpc.contains(b));
        assert!(!a.overlaps(b));
        assert!(a.overlaps(Cidr::parse("172.31.15.0/24").unwrap()));
        assert!(!a.contains(vpc));
        assert!(!vpc.contains(Cidr::parse("172.32.0.0/20").unwrap()));
    }

    #[test]
    fn allocation_skips_the_five_reserved_addresses() {
        let c = Cidr::parse("10.0.1.0/28").unwrap();
        assert_eq!(c.usable(), 11);
        let mut used = BTreeSet::new();
        let mut got = Vec::new();
        while let Some(a) = c.allocate(&used) {
            used.insert(a);
            got.push(a);
        }
        assert_eq!(got.len(), 11);
        assert_eq!(got[0], Ipv4Addr::new(10, 0, 1, 4));
        assert_eq!(*got.last().unwrap(), Ipv4Addr::new(10, 0, 1, 14));
        // A freed address is given out again, lowest first.
        used.remove(&Ipv4Addr::new(10, 0, 1, 7));
        assert_eq!(c.allocate(&used), Some(Ipv4Addr::new(10, 0, 1, 7)));
        assert_eq!(Cidr::parse("10.0.0.0/30").unwrap().allocate(&used), None);
    }

    proptest::proptest! {
        #[test]
        fn allocated_addresses_are_inside_and_never_reserved(
            net in proptest::prelude::any::<u32>(), prefix in 16u8..=28, taken in proptest::collection::vec(0u32..64, 0..20)
        ) {
            let c = Cidr { network: net & mask(prefix), prefix };
            let used: BTreeSet<Ipv4Addr> = taken.iter().map(|n| c.nth(*n)).collect();
            if let Some(a) = c.allocate(&used) {
                let a = u32::from(a);
                proptest::prop_assert!(c.contains_addr(a));
                proptest::prop_assert!(a >= c.first() + 4 && a < c.last());
                proptest::prop_assert!(!used.contains(&Ipv4Addr::from(a)));
            }
        }
    }
}
