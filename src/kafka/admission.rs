//! Who may open a connection: at most `max_connections` in all and `max_connections_per_ip`
//! from any one address, so one host (or one attacker) cannot take every slot.

use std::collections::HashMap;
use std::net::IpAddr;

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Every slot is taken.
    Full,
    /// This address has its share.
    PerAddress,
}

pub struct Admission {
    max_total: usize,
    max_per_ip: usize,
    total: usize,
    per_ip: HashMap<IpAddr, usize>,
}

impl Admission {
    pub fn new(max_total: usize, max_per_ip: usize) -> Self {
        Admission {
            max_total,
            max_per_ip,
            total: 0,
            per_ip: HashMap::new(),
        }
    }

    /// Takes a slot for a connection from `ip`, or says why not.
    pub fn admit(&mut self, ip: IpAddr) -> Result<(), Refusal> {
        if self.total >= self.max_total {
            return Err(Refusal::Full);
        }
        let mine = self.per_ip.entry(ip).or_default();
        if *mine >= self.max_per_ip {
            return Err(Refusal::PerAddress);
        }
        *mine += 1;
        self.total += 1;
        Ok(())
    }

    /// Gives back the slot of a connection from `ip` that has closed.
    pub fn release(&mut self, ip: IpAddr) {
        if let Some(mine) = self.per_ip.get_mut(&ip) {
            *mine -= 1;
            self.total -= 1;
            if *mine == 0 {
                // The map holds only addresses with open connections: it cannot grow with
                // every address ever seen.
                self.per_ip.remove(&ip);
            }
        }
    }

    pub fn open(&self) -> usize {
        self.total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_cannot_take_every_slot() {
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let mut admission = Admission::new(3, 2);
        assert_eq!(admission.admit(a), Ok(()));
        assert_eq!(admission.admit(a), Ok(()));
        assert_eq!(admission.admit(a), Err(Refusal::PerAddress));
        assert_eq!(admission.admit(b), Ok(()));
        assert_eq!(admission.admit(b), Err(Refusal::Full));
        admission.release(a);
        assert_eq!(admission.admit(b), Ok(()));
        assert_eq!(admission.open(), 3);
        for ip in [a, b, b] {
            admission.release(ip);
        }
        assert_eq!(admission.open(), 0);
        assert!(
            admission.per_ip.is_empty(),
            "closed addresses are forgotten"
        );
        // Releasing an address with nothing open changes nothing.
        admission.release(a);
        assert_eq!(admission.open(), 0);
    }
}
