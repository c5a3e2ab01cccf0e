//! Access control lists: which principal may do what to which topic or group.
//!
//! The model is Kafka's, cut to what a single broker needs. An ACL names a principal
//! (`User:alice`, or `User:*` for everyone, unauthenticated clients being `User:ANONYMOUS`),
//! optionally the networks it applies from, one resource (a topic, a group, or the cluster)
//! matched literally, by prefix, or `*` for all, the operations it covers, and whether it allows
//! or denies them. A request is allowed when an ACL allows it and none denies it: a deny always
//! wins, and what no ACL mentions is denied. As in Kafka, `describe` is implied by `read`,
//! `write`, `delete` and `alter`, and `all` covers everything.

use std::fmt;
use std::net::IpAddr;

use super::network::Network;
use crate::config::AclConfig;

/// The principal of a client that did not authenticate (Kafka's name for it).
pub const ANONYMOUS: &str = "User:ANONYMOUS";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Topic,
    Group,
    Cluster,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Name {
    Any,
    Literal(String),
    Prefix(String),
}

impl Name {
    fn matches(&self, name: &str) -> bool {
        match self {
            Name::Any => true,
            Name::Literal(l) => l == name,
            Name::Prefix(p) => name.starts_with(p.as_str()),
        }
    }
}

/// What a request does to a resource (Kafka's ACL operations; `describe` also stands for
/// DescribeConfigs and `alter` for AlterConfigs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Read,
    Write,
    Create,
    Delete,
    Alter,
    Describe,
}

impl Operation {
    pub fn verb(self) -> &'static str {
        match self {
            Operation::Read => "read",
            Operation::Write => "write",
            Operation::Create => "create",
            Operation::Delete => "delete",
            Operation::Alter => "alter",
            Operation::Describe => "describe",
        }
    }

    /// Whether the operation only uses data (as opposed to creating, deleting or changing
    /// topics and groups): open to every client when no ACL is configured.
    pub fn uses_data(self) -> bool {
        matches!(
            self,
            Operation::Read | Operation::Write | Operation::Describe
        )
    }
}

/// What a request acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource<'a> {
    Topic(&'a str),
    Group(&'a str),
    Cluster,
}

impl fmt::Display for Resource<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Resource::Topic(t) => write!(f, "topic {t:?}"),
            Resource::Group(g) => write!(f, "group {g:?}"),
            Resource::Cluster => f.write_str("the cluster"),
        }
    }
}

/// One rule.
#[derive(Debug, Clone)]
pub struct Acl {
    /// `None`: every principal (`User:*`).
    principal: Option<String>,
    /// Empty: from anywhere.
    hosts: Vec<Network>,
    kind: Kind,
    name: Name,
    /// `None`: every operation (`all`).
    operations: Option<Vec<Operation>>,
    allow: bool,
}

impl Acl {
    /// Reads one `[[kafka.acls]]` table; the error says what is wrong with it.
    pub fn from_config(config: &AclConfig) -> Result<Self, String> {
        let principal = match config.principal.trim() {
            "" => return Err("`principal` is required (`User:name` or `User:*`)".into()),
            "User:*" => None,
            p if p.starts_with("User:") && p.len() > 5 => Some(p.to_string()),
            p => return Err(format!("principal {p:?} must be `User:name` or `User:*`")),
        };
        let (kind, name) = match (config.topic.as_str(), config.group.as_str(), config.cluster) {
            (t, "", false) if !t.is_empty() => (Kind::Topic, t),
            ("", g, false) if !g.is_empty() => (Kind::Group, g),
            ("", "", true) => (Kind::Cluster, "*"),
            _ => {
                return Err(
                    "name exactly one resource: `topic = NAME`, `group = NAME` or `cluster = true`"
                        .into(),
                );
            }
        };
        let name = match (config.pattern.as_str(), name) {
            (_, "*") => Name::Any,
            ("" | "literal", n) => Name::Literal(n.to_string()),
            ("prefixed", n) => Name::Prefix(n.to_string()),
            (other, _) => {
                return Err(format!("pattern {other:?} is not `literal` or `prefixed`"));
            }
        };
        if config.operations.is_empty() {
            return Err("`operations` is empty: list what the ACL covers, or `all`".into());
        }
        let mut operations = Some(Vec::new());
        for op in &config.operations {
            let op = match op.to_ascii_lowercase().as_str() {
                "all" => {
                    operations = None;
                    continue;
                }
                "read" => Operation::Read,
                "write" => Operation::Write,
                "create" => Operation::Create,
                "delete" => Operation::Delete,
                "alter" => Operation::Alter,
                "describe" => Operation::Describe,
                _ => {
                    return Err(format!(
                        "operation {op:?} is not one of read, write, create, delete, alter, \
                         describe, all"
                    ));
                }
            };
            if let Some(list) = operations.as_mut() {
                list.push(op);
            }
        }
        let allow = match config.permission.as_str() {
            "" | "allow" => true,
            "deny" => false,
            other => return Err(format!("permission {other:?} is not `allow` or `deny`")),
        };
        let hosts = config
            .hosts
            .iter()
            .map(|h| Network::parse(h))
            .collect::<Result<_, _>>()?;
        Ok(Acl {
            principal,
            hosts,
            kind,
            name,
            operations,
            allow,
        })
    }

    fn covers(
        &self,
        principal: &str,
        peer: IpAddr,
        operation: Operation,
        resource: &Resource,
    ) -> bool {
        let (kind, name) = match resource {
            Resource::Topic(n) => (Kind::Topic, *n),
            Resource::Group(n) => (Kind::Group, *n),
            Resource::Cluster => (Kind::Cluster, "*"),
        };
        self.kind == kind
            && self.applies_to(principal, peer)
            && self.name.matches(name)
            && self.covers_operation(operation)
    }

    /// Whether the ACL is about `principal` connecting from `peer`.
    fn applies_to(&self, principal: &str, peer: IpAddr) -> bool {
        self.principal.as_deref().is_none_or(|p| p == principal)
            && (self.hosts.is_empty() || self.hosts.iter().any(|h| h.contains(peer)))
    }

    fn covers_operation(&self, operation: Operation) -> bool {
        let Some(list) = &self.operations else {
            return true;
        };
        list.iter().any(|&granted| {
            granted == operation
                // Being allowed to act on a resource implies seeing it; denying an action
                // does not deny seeing.
                || (self.allow
                    && operation == Operation::Describe
                    && matches!(
                        granted,
                        Operation::Read | Operation::Write | Operation::Delete | Operation::Alter
                    ))
        })
    }
}

/// Every ACL configured.
#[derive(Debug, Clone, Default)]
pub struct Acls(Vec<Acl>);

impl Acls {
    pub fn from_config(configs: &[AclConfig]) -> Result<Self, String> {
        configs
            .iter()
            .enumerate()
            .map(|(i, c)| {
                Acl::from_config(c).map_err(|e| format!("[[kafka.acls]] #{}: {e}", i + 1))
            })
            .collect::<Result<_, _>>()
            .map(Acls)
    }

    /// Whether any ACL is configured: without one, ACLs are not enforced.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether an ACL allows `operation` on `resource` to `principal` from `peer`, and none
    /// denies it.
    pub fn allow(
        &self,
        principal: &str,
        peer: IpAddr,
        operation: Operation,
        resource: &Resource,
    ) -> bool {
        let mut allowed = false;
        for acl in &self.0 {
            if acl.covers(principal, peer, operation, resource) {
                if !acl.allow {
                    return false;
                }
                allowed = true;
            }
        }
        allowed
    }

    /// Whether `principal` is allowed `operation` on some resource of `resource`'s kind:
    /// Kafka lets a producer take an idempotent producer id if it may write to any topic.
    pub fn allow_somewhere(&self, principal: &str, peer: IpAddr, operation: Operation) -> bool {
        self.0.iter().any(|acl| {
            acl.allow
                && acl.kind == Kind::Topic
                && acl.applies_to(principal, peer)
                && acl.covers_operation(operation)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(
        principal: &str,
        resource: &str,
        pattern: &str,
        ops: &[&str],
        permission: &str,
    ) -> AclConfig {
        let (kind, name) = resource.split_once(':').unwrap();
        AclConfig {
            principal: principal.into(),
            topic: if kind == "topic" {
                name.into()
            } else {
                String::new()
            },
            group: if kind == "group" {
                name.into()
            } else {
                String::new()
            },
            cluster: kind == "cluster",
            pattern: pattern.into(),
            operations: ops.iter().map(|s| s.to_string()).collect(),
            permission: permission.into(),
            hosts: Vec::new(),
        }
    }

    fn ip() -> IpAddr {
        "192.0.2.1".parse().unwrap()
    }

    #[test]
    fn literal_prefixed_and_wildcard_names() {
        let acls = Acls::from_config(&[
            acl("User:alice", "topic:logs.", "prefixed", &["write"], ""),
            acl("User:alice", "topic:audit", "", &["read"], ""),
            acl("User:*", "group:*", "", &["read"], ""),
        ])
        .unwrap();
        let alice = "User:alice";
        assert!(acls.allow(
            alice,
            ip(),
            Operation::Write,
            &Resource::Topic("logs.nginx")
        ));
        assert!(!acls.allow(alice, ip(), Operation::Write, &Resource::Topic("logs")));
        assert!(!acls.allow(alice, ip(), Operation::Read, &Resource::Topic("logs.nginx")));
        assert!(acls.allow(alice, ip(), Operation::Read, &Resource::Topic("audit")));
        assert!(!acls.allow(alice, ip(), Operation::Read, &Resource::Topic("audit2")));
        assert!(acls.allow("User:bob", ip(), Operation::Read, &Resource::Group("any")));
        assert!(!acls.allow("User:bob", ip(), Operation::Read, &Resource::Topic("audit")));
        assert!(!acls.allow(alice, ip(), Operation::Read, &Resource::Cluster));
    }

    #[test]
    fn describe_is_implied_by_acting_and_deny_wins() {
        let acls = Acls::from_config(&[
            acl("User:*", "topic:*", "", &["read"], ""),
            acl("User:mallory", "topic:secrets", "", &["all"], "deny"),
            acl("User:eve", "topic:t", "", &["write"], "deny"),
        ])
        .unwrap();
        assert!(acls.allow("User:bob", ip(), Operation::Describe, &Resource::Topic("t")));
        assert!(!acls.allow("User:bob", ip(), Operation::Write, &Resource::Topic("t")));
        assert!(!acls.allow(
            "User:mallory",
            ip(),
            Operation::Describe,
            &Resource::Topic("secrets")
        ));
        assert!(acls.allow(
            "User:mallory",
            ip(),
            Operation::Read,
            &Resource::Topic("public")
        ));
        assert!(
            acls.allow("User:eve", ip(), Operation::Describe, &Resource::Topic("t")),
            "denying writes does not hide the topic"
        );
    }

    #[test]
    fn hosts_limit_where_an_acl_applies() {
        let mut c = acl("User:*", "topic:*", "", &["write"], "");
        c.hosts = vec!["10.0.0.0/8".into()];
        let acls = Acls::from_config(&[c]).unwrap();
        assert!(acls.allow(
            ANONYMOUS,
            "10.1.2.3".parse().unwrap(),
            Operation::Write,
            &Resource::Topic("t")
        ));
        assert!(!acls.allow(ANONYMOUS, ip(), Operation::Write, &Resource::Topic("t")));
        assert!(acls.allow_somewhere(ANONYMOUS, "10.1.2.3".parse().unwrap(), Operation::Write));
        assert!(!acls.allow_somewhere(ANONYMOUS, ip(), Operation::Write));
    }

    #[test]
    fn malformed_acls_say_what_is_wrong() {
        let cases = [
            (acl("alice", "topic:t", "", &["read"], ""), "User:name"),
            (acl("User:a", "topic:t", "glob", &["read"], ""), "pattern"),
            (acl("User:a", "topic:t", "", &["eat"], ""), "operation"),
            (acl("User:a", "topic:t", "", &[], ""), "operations"),
            (
                acl("User:a", "topic:t", "", &["read"], "maybe"),
                "permission",
            ),
        ];
        for (config, expected) in cases {
            let e = Acls::from_config(&[config]).unwrap_err();
            assert!(e.contains("#1") && e.contains(expected), "{e}");
        }
        let mut both = acl("User:a", "topic:t", "", &["read"], "");
        both.group = "g".into();
        assert!(
            Acls::from_config(&[both])
                .unwrap_err()
                .contains("exactly one resource")
        );
        let mut bad_host = acl("User:a", "topic:t", "", &["read"], "");
        bad_host.hosts = vec!["nowhere".into()];
        assert!(Acls::from_config(&[bad_host]).is_err());
    }
}
