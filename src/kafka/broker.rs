//! The broker: the state every connection's requests share — the log, the group coordinator,
//! the idempotent producers, and how clients are told to reach this server. What each request
//! does is in the file of its API; [`super::dispatch`] routes requests to them.

use std::net::SocketAddr;
use std::sync::Arc;

use kafka_protocol::protocol::StrBytes;

use super::acl::{Acls, Operation, Resource};
use super::authorize::{Policy, Who};
use super::coordinator::Coordinator;
use super::jwt::TokenValidator;
use super::network::Network;
use super::producers::Producers;
use super::sasl::{Authenticator, Users};
use super::throttled_log::ThrottledLog;
use crate::config::KafkaConfig;
use crate::log::Log;

/// What a handler knows of its request besides the body.
#[derive(Debug, Clone)]
pub struct RequestContext {
    pub version: i16,
    /// The client's `client.id` (empty if it sent none).
    pub client_id: String,
    pub peer: SocketAddr,
    /// The listener the request came in on, as clients are told to reach it.
    pub endpoint: Arc<Endpoint>,
    /// `User:name` once the connection authenticated (SASL); `None` without SASL.
    pub principal: Option<Arc<str>>,
}

impl RequestContext {
    pub fn who(&self) -> Who<'_> {
        Who {
            peer: self.peer.ip(),
            principal: self.principal.as_deref(),
        }
    }
}

/// A listener's address as clients are told it (Metadata, FindCoordinator).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: StrBytes,
    pub port: i32,
}

/// The state every connection shares.
pub struct Broker {
    pub(super) config: KafkaConfig,
    pub(super) host: StrBytes,
    pub(super) port: i32,
    pub(super) log: Arc<Log>,
    pub(super) producers: Producers,
    pub(super) groups: Coordinator,
    pub(super) policy: Policy,
    denials: ThrottledLog,
    /// Failed authentications, logged with their reason (never a password or token).
    pub(super) failed_logins: ThrottledLog,
    pub(super) authenticator: Authenticator,
}

impl Broker {
    /// The broker over `log`; committed consumer offsets live beside it
    /// (`consumer_offsets.json`).
    pub fn new(config: KafkaConfig, address: SocketAddr, log: Arc<Log>) -> std::io::Result<Self> {
        let access = Access::from_config(&config)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        Self::with_access(config, address, log, access)
    }

    /// [`Broker::new`] with who may connect and do what already read from `config` (the
    /// listener reads it before touching the disk, and it is not read twice).
    pub(super) fn with_access(
        config: KafkaConfig,
        address: SocketAddr,
        log: Arc<Log>,
        access: Access,
    ) -> std::io::Result<Self> {
        let host = config_host(&config, address);
        let Access {
            policy,
            authenticator,
        } = access;
        let groups = Coordinator::open(
            log.dir().join("consumer_offsets.json"),
            std::time::Duration::from_millis(config.group_initial_rebalance_delay_ms),
        )?;
        Ok(Broker {
            config,
            host: StrBytes::from_string(host),
            port: address.port() as i32,
            log,
            producers: Producers::new(),
            groups,
            policy,
            denials: ThrottledLog::new("request refused"),
            failed_logins: ThrottledLog::new("closing a connection after a failed authentication"),
            authenticator,
        })
    }

    /// Partition `index` of `topic`, if both exist (a negative index never does).
    pub(super) fn partition(&self, topic: &str, index: i32) -> Option<Arc<crate::log::Partition>> {
        let index = u32::try_from(index).ok()?;
        self.log.partition(topic, index).ok()
    }

    /// Whether the request's sender may do `operation` to `resource`; a refusal is logged
    /// (at most once a second, with how many there were).
    pub(super) fn may(
        &self,
        cx: &RequestContext,
        operation: Operation,
        resource: Resource,
    ) -> bool {
        let allowed = self.policy.allows(cx.who(), operation, resource);
        if !allowed {
            self.denials
                .warn(|| self.policy.refusal(cx.who(), operation, resource));
        }
        allowed
    }

    /// Why the request's sender may not do `operation` to `resource`, for its error message.
    pub(super) fn refusal(
        &self,
        cx: &RequestContext,
        operation: Operation,
        resource: Resource,
    ) -> StrBytes {
        StrBytes::from_string(self.policy.refusal(cx.who(), operation, resource))
    }

    pub(super) fn authenticator(&self) -> &Authenticator {
        &self.authenticator
    }

    pub fn max_request_bytes(&self) -> usize {
        self.config.max_request_bytes
    }

    /// Runs `f` on tokio's blocking pool: everything that reads or writes the log.
    pub(super) async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Broker) -> T + Send + 'static,
    ) -> Result<T, String> {
        let broker = self.clone();
        tokio::task::spawn_blocking(move || f(&broker))
            .await
            .map_err(|e| format!("request handler failed: {e}"))
    }
}

/// Who may connect and what they may do, from `[kafka]`: the authorisation policy and what
/// credentials are checked against.
pub(super) struct Access {
    policy: Policy,
    authenticator: Authenticator,
}

impl Access {
    /// Reads users, key files and ACLs; the error names the setting at fault.
    pub(super) fn from_config(config: &KafkaConfig) -> Result<Self, String> {
        let (policy, authenticator) = access(config)?;
        Ok(Access {
            policy,
            authenticator,
        })
    }
}

fn access(config: &KafkaConfig) -> Result<(Policy, Authenticator), String> {
    let networks = config
        .admin_networks
        .iter()
        .map(|n| Network::parse(n))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("[kafka] admin_networks: {e}"))?;
    let acls = Acls::from_config(&config.acls)?;
    let policy = Policy::new(networks, config.admin_principals.clone(), acls);
    let users = Users::from_config(&config.users)?;
    let offers_tokens = config
        .all_listeners()
        .iter()
        .any(|l| l.sasl_mechanisms.iter().any(|m| m == "OAUTHBEARER"));
    let tokens = offers_tokens
        .then(|| TokenValidator::from_config(&config.oauthbearer))
        .transpose()?;
    let max_session = (config.connections_max_reauth_ms > 0)
        .then(|| std::time::Duration::from_millis(config.connections_max_reauth_ms));
    Ok((
        policy,
        Authenticator {
            users,
            tokens,
            max_session,
        },
    ))
}

/// The host clients are told to connect to.
pub(super) fn config_host(config: &KafkaConfig, address: SocketAddr) -> String {
    if !config.advertised_host.is_empty() {
        return config.advertised_host.clone();
    }
    if address.ip().is_unspecified() {
        "127.0.0.1".into()
    } else {
        address.ip().to_string()
    }
}
