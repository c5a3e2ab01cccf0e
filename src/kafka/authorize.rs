//! Who may do what over the Kafka protocol.
//!
//! Administrators — clients from `admin_networks` (loopback by default) and the authenticated
//! `admin_principals` — may do everything. For everyone else:
//! - without `[[kafka.acls]]`, producing, consuming, committing offsets and auto-creating
//!   topics are open, and the operations that destroy or reconfigure (creating topics or
//!   partitions explicitly, deleting topics and consumer groups, changing settings) are refused;
//! - with ACLs, every operation on every topic, group or the cluster needs an ACL allowing it
//!   ([`super::acl`]): what no ACL allows is refused.
//!
//! A refused request gets the authorisation error Kafka gives for its API (TOPIC_, GROUP_ or
//! CLUSTER_AUTHORIZATION_FAILED). Every decision goes through [`Policy::allows`].

use std::net::IpAddr;

use super::acl::{ANONYMOUS, Acls, Operation, Resource};
use super::network::Network;

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
    acls: Acls,
}

impl Policy {
    pub fn new(admin_networks: Vec<Network>, admin_principals: Vec<String>, acls: Acls) -> Self {
        Policy {
            admin_networks,
            admin_principals,
            acls,
        }
    }

    fn is_admin(&self, who: Who) -> bool {
        self.admin_networks.iter().any(|n| n.contains(who.peer))
            || who
                .principal
                .is_some_and(|p| self.admin_principals.iter().any(|a| a == p))
    }

    /// Whether `who` may do `operation` to `resource`.
    pub fn allows(&self, who: Who, operation: Operation, resource: Resource) -> bool {
        // Checked first: it is the whole decision on the produce and fetch paths without ACLs.
        if self.acls.is_empty() && operation.uses_data() {
            return true;
        }
        self.is_admin(who)
            || (!self.acls.is_empty()
                && self.acls.allow(
                    who.principal.unwrap_or(ANONYMOUS),
                    who.peer,
                    operation,
                    &resource,
                ))
    }

    /// Whether a topic a client asks for may be created for it (Metadata with auto-creation):
    /// always without ACLs, as Blink has always done; with ACLs, if it may create the topic.
    pub fn allows_auto_create(&self, who: Who, topic: &str) -> bool {
        self.acls.is_empty() || self.allows(who, Operation::Create, Resource::Topic(topic))
    }

    /// Whether `who` may take an idempotent producer id: Kafka allows it to a client that may
    /// write to some topic.
    pub fn allows_producer_id(&self, who: Who) -> bool {
        self.acls.is_empty()
            || self.is_admin(who)
            || self.acls.allow_somewhere(
                who.principal.unwrap_or(ANONYMOUS),
                who.peer,
                Operation::Write,
            )
    }

    /// Why `who` may not do `operation` to `resource`, for the error message a client shows.
    pub fn refusal(&self, who: Who, operation: Operation, resource: Resource) -> String {
        let principal = who.principal.unwrap_or(ANONYMOUS);
        if self.acls.is_empty() {
            format!(
                "{principal} from {} may not {} {resource}: only administrators may \
                 ([kafka] admin_networks, admin_principals; docs/security.md)",
                who.peer,
                operation.verb()
            )
        } else {
            format!(
                "{principal} from {} may not {} {resource}: no ACL allows it \
                 ([[kafka.acls]]; docs/security.md)",
                who.peer,
                operation.verb()
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn who(peer: &str, principal: Option<&'static str>) -> Who<'static> {
        Who {
            peer: ip(peer),
            principal,
        }
    }

    #[test]
    fn without_acls_only_admin_networks_and_principals_may_create_delete_or_alter() {
        let policy = Policy::new(
            vec![Network::parse("127.0.0.0/8").unwrap()],
            vec!["User:admin".into()],
            Acls::default(),
        );
        let t = Resource::Topic("t");
        for op in [Operation::Create, Operation::Delete, Operation::Alter] {
            assert!(policy.allows(who("127.0.0.1", None), op, t));
            assert!(!policy.allows(who("192.0.2.7", None), op, t));
            assert!(policy.allows(who("192.0.2.7", Some("User:admin")), op, t));
            assert!(!policy.allows(who("192.0.2.7", Some("User:alice")), op, t));
        }
        for op in [Operation::Read, Operation::Write, Operation::Describe] {
            assert!(policy.allows(who("192.0.2.7", None), op, t));
        }
        assert!(policy.allows_auto_create(who("192.0.2.7", None), "t"));
        assert!(policy.allows_producer_id(who("192.0.2.7", None)));
        let none = Policy::new(Vec::new(), Vec::new(), Acls::default());
        assert!(!none.allows(who("127.0.0.1", None), Operation::Delete, t));
        let why = none.refusal(who("127.0.0.1", None), Operation::Delete, t);
        assert!(
            why.contains("User:ANONYMOUS") && why.contains("delete topic"),
            "{why}"
        );
    }

    #[test]
    fn with_acls_everything_needs_an_acl_but_administrators() {
        let acls = Acls::from_config(&[crate::config::AclConfig {
            principal: "User:alice".into(),
            topic: "logs.".into(),
            pattern: "prefixed".into(),
            operations: vec!["write".into(), "create".into()],
            ..Default::default()
        }])
        .unwrap();
        let policy = Policy::new(
            vec![Network::parse("127.0.0.0/8").unwrap()],
            vec!["User:admin".into()],
            acls,
        );
        let alice = who("192.0.2.7", Some("User:alice"));
        let logs = Resource::Topic("logs.a");
        assert!(policy.allows(alice, Operation::Write, logs));
        assert!(policy.allows(alice, Operation::Describe, logs));
        assert!(!policy.allows(alice, Operation::Read, logs));
        assert!(!policy.allows(alice, Operation::Write, Resource::Topic("other")));
        assert!(!policy.allows(who("192.0.2.7", None), Operation::Read, logs));
        assert!(policy.allows_auto_create(alice, "logs.b"));
        assert!(!policy.allows_auto_create(alice, "other"));
        assert!(policy.allows_producer_id(alice));
        assert!(!policy.allows_producer_id(who("192.0.2.7", Some("User:bob"))));
        for op in [Operation::Read, Operation::Delete, Operation::Alter] {
            assert!(
                policy.allows(who("127.0.0.1", None), op, logs),
                "admin network"
            );
            assert!(policy.allows(who("192.0.2.7", Some("User:admin")), op, logs));
        }
        let why = policy.refusal(alice, Operation::Read, logs);
        assert!(
            why.contains("User:alice") && why.contains("no ACL"),
            "{why}"
        );
    }
}
