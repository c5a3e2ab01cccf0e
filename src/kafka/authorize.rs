//! Who may do what over the Kafka protocol.
//!
//! Until the listener authenticates its clients (TLS and SASL are to come, issue 13 item 9),
//! what a request may do is decided by where it comes from: the operations that destroy or
//! reconfigure — creating topics or partitions explicitly, deleting topics and consumer groups,
//! changing topic settings — are allowed only from `admin_networks` (loopback by default);
//! producing, consuming, committing offsets and auto-creating topics stay open to every client
//! that reaches the listener. A refused request gets the authorisation error Kafka gives for
//! its API (TOPIC_, GROUP_ or CLUSTER_AUTHORIZATION_FAILED). Every decision goes through
//! [`Policy::allows`], where per-principal ACLs will be decided.

use std::net::IpAddr;

/// What a request does to a resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Create,
    Delete,
    Alter,
}

/// An IP network: an address and how many of its leading bits a peer must share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

impl Network {
    /// Parses `a.b.c.d/n`, `x::y/n`, or an address alone (all its bits).
    pub fn parse(text: &str) -> Result<Self, String> {
        let (address, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        let address: IpAddr = address
            .trim()
            .parse()
            .map_err(|_| format!("{text:?} is not an IP address or network (a.b.c.d/n)"))?;
        let bits = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|&p| p <= bits)
                .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {bits}"))?,
        };
        Ok(Network { address, prefix })
    }

    pub fn contains(&self, peer: IpAddr) -> bool {
        // An IPv4 client on a dual-stack socket shows as ::ffff:a.b.c.d.
        let peer = match peer {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(peer, IpAddr::V4),
            v4 => v4,
        };
        match (self.address, peer) {
            (IpAddr::V4(net), IpAddr::V4(peer)) => {
                leading_bits_equal(&net.octets(), &peer.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(peer)) => {
                leading_bits_equal(&net.octets(), &peer.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

fn leading_bits_equal(a: &[u8], b: &[u8], bits: u8) -> bool {
    let (whole, rest) = ((bits / 8) as usize, bits % 8);
    if a[..whole] != b[..whole] {
        return false;
    }
    rest == 0 || (a[whole] ^ b[whole]) >> (8 - rest) == 0
}

/// Who sends a request: its address, and its principal (`User:name`) once authenticated.
#[derive(Debug, Clone, Copy)]
pub struct Who<'a> {
    pub peer: IpAddr,
    pub principal: Option<&'a str>,
}

/// The authorisation policy.
#[derive(Debug, Clone)]
pub struct Policy {
    admin_networks: Vec<Network>,
    admin_principals: Vec<String>,
}

impl Policy {
    pub fn new(admin_networks: Vec<Network>, admin_principals: Vec<String>) -> Self {
        Policy {
            admin_networks,
            admin_principals,
        }
    }

    /// Whether `who` may do `operation`: from an admin network, or as an admin principal.
    pub fn allows(&self, who: Who, operation: Operation) -> bool {
        match operation {
            Operation::Create | Operation::Delete | Operation::Alter => {
                self.admin_networks.iter().any(|n| n.contains(who.peer))
                    || who
                        .principal
                        .is_some_and(|p| self.admin_principals.iter().any(|a| a == p))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks_contain_their_addresses_only() {
        let lan = Network::parse("10.1.0.0/16").unwrap();
        assert!(lan.contains(ip("10.1.200.3")));
        assert!(!lan.contains(ip("10.2.0.1")));
        assert!(lan.contains(ip("::ffff:10.1.0.9")), "IPv4-mapped");
        let odd = Network::parse("192.168.1.128/25").unwrap();
        assert!(odd.contains(ip("192.168.1.200")));
        assert!(!odd.contains(ip("192.168.1.100")));
        let one = Network::parse("127.0.0.1").unwrap();
        assert!(one.contains(ip("127.0.0.1")) && !one.contains(ip("127.0.0.2")));
        let v6 = Network::parse("::1/128").unwrap();
        assert!(v6.contains(ip("::1")) && !v6.contains(ip("127.0.0.1")));
        assert!(Network::parse("0.0.0.0/0").unwrap().contains(ip("8.8.8.8")));
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "localhost",
            "10.0.0/8",
            "10.0.0.0/x",
        ] {
            assert!(Network::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_admin_networks_and_principals_may_create_delete_or_alter() {
        let policy = Policy::new(
            vec![Network::parse("127.0.0.0/8").unwrap()],
            vec!["User:admin".into()],
        );
        let who = |peer: &str, principal| Who {
            peer: ip(peer),
            principal,
        };
        for op in [Operation::Create, Operation::Delete, Operation::Alter] {
            assert!(policy.allows(who("127.0.0.1", None), op));
            assert!(!policy.allows(who("192.0.2.7", None), op));
            assert!(policy.allows(who("192.0.2.7", Some("User:admin")), op));
            assert!(!policy.allows(who("192.0.2.7", Some("User:alice")), op));
        }
        let none = Policy::new(Vec::new(), Vec::new());
        assert!(!none.allows(who("127.0.0.1", None), Operation::Delete));
    }
}
