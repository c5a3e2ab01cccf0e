//! The broker: decodes a request, runs its API, encodes the answer.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use super::groups::Coordinator;
use super::produce::Producers;
use super::versions;
use crate::config::KafkaConfig;
use crate::log::Log;

/// What a connection does with a request's outcome.
pub enum Reply {
    /// Send this frame body (response header and body).
    Frame(BytesMut),
    /// Send nothing (a Produce with acks=0).
    Nothing,
    /// Close the connection; the reason is logged.
    Close(String),
}

/// The state every connection shares.
pub struct Broker {
    pub(super) config: KafkaConfig,
    pub(super) host: StrBytes,
    pub(super) port: i32,
    pub(super) log: Arc<Log>,
    pub(super) producers: Producers,
    pub(super) groups: Coordinator,
}

impl Broker {
    /// The broker over `log`; committed consumer offsets live beside it
    /// (`consumer_offsets.json`).
    pub fn new(config: KafkaConfig, address: SocketAddr, log: Arc<Log>) -> std::io::Result<Self> {
        let host = super::config_host(&config, address);
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
        })
    }

    /// Partition `index` of `topic`, if both exist (a negative index never does).
    pub(super) fn partition(&self, topic: &str, index: i32) -> Option<Arc<crate::log::Partition>> {
        let index = u32::try_from(index).ok()?;
        self.log.partition(topic, index).ok()
    }

    pub fn max_request_bytes(&self) -> usize {
        self.config.max_request_bytes
    }

    /// Answers one request frame (without its length prefix).
    pub async fn handle(self: &Arc<Self>, frame: Bytes, peer: SocketAddr) -> Reply {
        let key = i16::from_be_bytes([frame[0], frame[1]]);
        let version = i16::from_be_bytes([frame[2], frame[3]]);
        let correlation = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
        let Ok(api) = ApiKey::try_from(key) else {
            return Reply::Close(format!("unknown API key {key}"));
        };
        if !versions::supports(api, version) {
            if api == ApiKey::ApiVersions {
                // KIP-511: a v0 answer listing what is supported, so the client can step down.
                return Reply::Frame(versions::unsupported(correlation));
            }
            return Reply::Close(format!(
                "{api:?} v{version} is not supported (ApiVersions lists what is)"
            ));
        }
        let mut body = frame;
        let header = match RequestHeader::decode(&mut body, api.request_header_version(version)) {
            Ok(h) => h,
            Err(e) => return Reply::Close(format!("{api:?} v{version}: bad request header: {e}")),
        };
        let request = match RequestKind::decode(api, &mut body, version) {
            Ok(r) => r,
            Err(e) => return Reply::Close(format!("{api:?} v{version}: cannot decode: {e}")),
        };
        tracing::trace!(%peer, ?api, version, client = ?header.client_id, "kafka request");
        // A handler that reads or writes the log runs on the blocking pool; if it fails, the
        // connection closes with the reason.
        macro_rules! on_pool {
            ($broker:ident, $kind:ident, $call:expr) => {
                match $broker.blocking($call).await {
                    Ok(r) => ResponseKind::$kind(r),
                    Err(e) => return Reply::Close(e),
                }
            };
        }
        let response = match request {
            RequestKind::ApiVersions(_) => ResponseKind::ApiVersions(versions::response()),
            RequestKind::Metadata(r) => on_pool!(self, Metadata, move |b| b.metadata(r, version)),
            RequestKind::CreateTopics(r) => {
                on_pool!(self, CreateTopics, move |b| b.create_topics(r))
            }
            RequestKind::InitProducerId(r) => {
                ResponseKind::InitProducerId(self.init_producer_id(&r))
            }
            RequestKind::Produce(r) => {
                let acks = r.acks;
                let response = if self.produce_is_light(&r) {
                    self.produce(r)
                } else {
                    match self.blocking(move |b| b.produce(r)).await {
                        Ok(r) => r,
                        Err(e) => return Reply::Close(e),
                    }
                };
                if acks == 0 {
                    return Reply::Nothing;
                }
                ResponseKind::Produce(response)
            }
            RequestKind::Fetch(r) => ResponseKind::Fetch(self.fetch(r, version).await),
            RequestKind::ListOffsets(r) => on_pool!(self, ListOffsets, move |b| b.list_offsets(r)),
            RequestKind::DeleteTopics(r) => {
                on_pool!(self, DeleteTopics, move |b| b.delete_topics(r))
            }
            RequestKind::CreatePartitions(r) => {
                on_pool!(self, CreatePartitions, move |b| b.create_partitions(r))
            }
            RequestKind::DescribeConfigs(r) => {
                ResponseKind::DescribeConfigs(self.describe_configs(r))
            }
            RequestKind::AlterConfigs(r) => {
                on_pool!(self, AlterConfigs, move |b| b.alter_configs(r))
            }
            RequestKind::IncrementalAlterConfigs(r) => {
                on_pool!(self, IncrementalAlterConfigs, move |b| b
                    .incremental_alter_configs(r))
            }
            RequestKind::DeleteGroups(r) => {
                on_pool!(self, DeleteGroups, move |b| b.delete_groups(r))
            }
            RequestKind::FindCoordinator(r) => {
                ResponseKind::FindCoordinator(self.find_coordinator(&r, version))
            }
            RequestKind::JoinGroup(r) => {
                let client = header.client_id.map(|c| c.to_string()).unwrap_or_default();
                ResponseKind::JoinGroup(self.join_group(r, version, client, peer).await)
            }
            RequestKind::SyncGroup(r) => ResponseKind::SyncGroup(self.sync_group(r).await),
            RequestKind::Heartbeat(r) => ResponseKind::Heartbeat(self.heartbeat(&r)),
            RequestKind::LeaveGroup(r) => ResponseKind::LeaveGroup(self.leave_group(&r, version)),
            RequestKind::OffsetCommit(r) => {
                on_pool!(self, OffsetCommit, move |b| b.offset_commit(r))
            }
            RequestKind::OffsetFetch(r) => ResponseKind::OffsetFetch(self.offset_fetch(r, version)),
            RequestKind::DescribeGroups(r) => {
                ResponseKind::DescribeGroups(self.describe_groups(&r))
            }
            RequestKind::ListGroups(r) => ResponseKind::ListGroups(self.list_groups(&r)),
            _ => return Reply::Close(format!("{api:?} is not served")),
        };
        encode(&response, version, correlation)
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

/// Response header and body.
fn encode(response: &ResponseKind, version: i16, correlation: i32) -> Reply {
    let mut out = BytesMut::with_capacity(256);
    let header = ResponseHeader::default().with_correlation_id(correlation);
    let encoded = header
        .encode(&mut out, response.header_version(version))
        .and_then(|()| response.encode(&mut out, version));
    match encoded {
        Ok(()) => Reply::Frame(out),
        Err(e) => Reply::Close(format!("cannot encode the response: {e}")),
    }
}
