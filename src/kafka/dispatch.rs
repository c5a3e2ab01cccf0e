//! From a request frame to its answer: the header peeked (with its own bounds check), the
//! request decoded, its handler run where [`route`] says, the response encoded.
//!
//! Every handler has one shape, `handler(&Broker, request, &RequestContext) -> response` (the
//! three that wait are `async`), and [`route`] is the one table saying where each API runs:
//! - **inline** on the connection's task: in-memory state only, no I/O, no waiting;
//! - **pool**, tokio's blocking pool: it reads or writes the log or a file;
//! - **waits** on the connection's task, awaiting: a fetch waiting for data, a join or sync
//!   waiting for its group's barrier. Waiting holds no thread.
//!
//! A request Blink cannot decode, or of an API or version it does not serve, closes its
//! connection with a logged reason; nothing else is affected. Before decoding, the body is
//! walked against its request's shape ([`shape`]), so no count in a hostile frame can make the
//! decoder reserve more memory than the frame holds.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, RequestHeader, RequestKind, ResponseHeader, ResponseKind, SaslAuthenticateResponse,
    SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::protocol::{Decodable, Encodable};

use super::broker::{Broker, Endpoint, RequestContext};
use super::codes;
use super::sasl::Session;
use super::{shape, versions};

/// What a connection does with a request's outcome.
pub enum Reply {
    /// Send this frame body (response header and body).
    Frame(BytesMut),
    /// Send nothing (a Produce with acks=0).
    Nothing,
    /// Close the connection; the reason is logged.
    Close(String),
    /// Send this frame, then close the connection (a failed authentication, with its reason:
    /// never a password or a token).
    Last(BytesMut, String),
}

/// A request bound to its handler, and where it runs.
enum Route {
    Inline(Box<dyn FnOnce(&Broker) -> ResponseKind + Send>),
    Pool(Box<dyn FnOnce(&Broker) -> ResponseKind + Send>),
    Waits(Pin<Box<dyn Future<Output = ResponseKind> + Send>>),
}

/// Bytes before a request's header fields vary: API key, version, correlation id.
const PEEK_LEN: usize = 8;

/// The table: each API Blink serves, its handler and where it runs; `None` for the rest.
fn route(broker: &Arc<Broker>, request: RequestKind, cx: RequestContext) -> Option<Route> {
    use ResponseKind as R;
    fn inline(f: impl FnOnce(&Broker) -> ResponseKind + Send + 'static) -> Route {
        Route::Inline(Box::new(f))
    }
    fn pool(f: impl FnOnce(&Broker) -> ResponseKind + Send + 'static) -> Route {
        Route::Pool(Box::new(f))
    }
    fn waits(f: impl Future<Output = ResponseKind> + Send + 'static) -> Route {
        Route::Waits(Box::pin(f))
    }
    // Only a waiting handler outlives this call, so only it takes a reference of its own.
    let b = || broker.clone();
    Some(match request {
        RequestKind::ApiVersions(_) => inline(|_| R::ApiVersions(versions::response())),
        RequestKind::Metadata(r) => pool(move |b| R::Metadata(b.metadata(r, &cx))),
        RequestKind::CreateTopics(r) => pool(move |b| R::CreateTopics(b.create_topics(r, &cx))),
        RequestKind::DeleteTopics(r) => pool(move |b| R::DeleteTopics(b.delete_topics(r, &cx))),
        RequestKind::CreatePartitions(r) => {
            pool(move |b| R::CreatePartitions(b.create_partitions(r, &cx)))
        }
        RequestKind::DescribeConfigs(r) => {
            inline(move |b| R::DescribeConfigs(b.describe_configs(r, &cx)))
        }
        RequestKind::AlterConfigs(r) => pool(move |b| R::AlterConfigs(b.alter_configs(r, &cx))),
        RequestKind::IncrementalAlterConfigs(r) => {
            pool(move |b| R::IncrementalAlterConfigs(b.incremental_alter_configs(r, &cx)))
        }
        RequestKind::InitProducerId(r) => {
            inline(move |b| R::InitProducerId(b.init_producer_id(r, &cx)))
        }
        // A small produce into a user topic is a copy into the page cache: cheaper here than a
        // round trip to the pool.
        RequestKind::Produce(r) if broker.produce_is_light(&r) => {
            inline(move |b| R::Produce(b.produce(r, &cx)))
        }
        RequestKind::Produce(r) => pool(move |b| R::Produce(b.produce(r, &cx))),
        RequestKind::Fetch(r) => {
            let b = b();
            waits(async move { R::Fetch(b.fetch(r, &cx).await) })
        }
        RequestKind::ListOffsets(r) => pool(move |b| R::ListOffsets(b.list_offsets(r, &cx))),
        RequestKind::FindCoordinator(r) => {
            inline(move |b| R::FindCoordinator(b.find_coordinator(r, &cx)))
        }
        RequestKind::JoinGroup(r) => {
            let b = b();
            waits(async move { R::JoinGroup(b.join_group(r, &cx).await) })
        }
        RequestKind::SyncGroup(r) => {
            let b = b();
            waits(async move { R::SyncGroup(b.sync_group(r, &cx).await) })
        }
        RequestKind::Heartbeat(r) => inline(move |b| R::Heartbeat(b.heartbeat(r, &cx))),
        RequestKind::LeaveGroup(r) => inline(move |b| R::LeaveGroup(b.leave_group(r, &cx))),
        RequestKind::OffsetCommit(r) => pool(move |b| R::OffsetCommit(b.offset_commit(r, &cx))),
        RequestKind::OffsetFetch(r) => inline(move |b| R::OffsetFetch(b.offset_fetch(r, &cx))),
        RequestKind::DescribeGroups(r) => {
            inline(move |b| R::DescribeGroups(b.describe_groups(r, &cx)))
        }
        RequestKind::ListGroups(r) => inline(move |b| R::ListGroups(b.list_groups(r, &cx))),
        RequestKind::DeleteGroups(r) => pool(move |b| R::DeleteGroups(b.delete_groups(r, &cx))),
        _ => return None,
    })
}

/// Whether the protocol has the broker answer this request: a Produce with acks=0 gets no
/// response at all.
fn expects_response(request: &RequestKind) -> bool {
    !matches!(request, RequestKind::Produce(r) if r.acks == 0)
}

/// Answers one request frame (without its length prefix).
pub async fn handle(
    broker: &Arc<Broker>,
    frame: Bytes,
    peer: SocketAddr,
    endpoint: &Arc<Endpoint>,
    session: &mut Session,
) -> Reply {
    let Some(head) = frame.first_chunk::<PEEK_LEN>() else {
        return Reply::Close(format!(
            "a request frame of {} bytes is shorter than a request header",
            frame.len()
        ));
    };
    let key = i16::from_be_bytes([head[0], head[1]]);
    let version = i16::from_be_bytes([head[2], head[3]]);
    let correlation = i32::from_be_bytes([head[4], head[5], head[6], head[7]]);
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
    // Every count is proven to fit in the frame before the decoder reserves room for it.
    if let Err(e) = shape::check(api, version, &body) {
        return Reply::Close(format!("{api:?} v{version}: {e}"));
    }
    let request = match RequestKind::decode(api, &mut body, version) {
        Ok(r) => r,
        Err(e) => return Reply::Close(format!("{api:?} v{version}: cannot decode: {e}")),
    };
    tracing::trace!(%peer, ?api, version, client = ?header.client_id, "kafka request");
    // Authentication is the connection's own business: answered here, before any handler.
    let request = match request {
        RequestKind::SaslHandshake(r) => {
            let answer = sasl_handshake(session, &r.mechanism);
            return encode(&ResponseKind::SaslHandshake(answer), version, correlation);
        }
        RequestKind::SaslAuthenticate(r) => {
            let answer = sasl_authenticate(broker, session, &r.auth_bytes, version);
            let why = answer.error_message.as_ref().map(|m| m.to_string());
            let reply = encode(
                &ResponseKind::SaslAuthenticate(answer),
                version,
                correlation,
            );
            return match reply {
                Reply::Frame(body) if session.failed() => {
                    Reply::Last(body, why.unwrap_or_default())
                }
                other => other,
            };
        }
        RequestKind::ApiVersions(_) => request,
        _ if session.expired() => {
            return Reply::Close(format!(
                "{api:?} after the session's token expired: the client must authenticate again"
            ));
        }
        _ if !session.may_serve() => {
            return Reply::Close(format!(
                "{api:?} before authenticating: this listener requires SASL ({})",
                session.offered().join(", ")
            ));
        }
        _ => request,
    };
    let answers = expects_response(&request);
    let cx = RequestContext {
        version,
        client_id: header.client_id.map(|c| c.to_string()).unwrap_or_default(),
        peer,
        endpoint: endpoint.clone(),
        principal: session.principal(),
    };
    let response = match route(broker, request, cx) {
        None => return Reply::Close(format!("{api:?} is not served")),
        Some(Route::Inline(handler)) => handler(broker),
        Some(Route::Pool(handler)) => match broker.blocking(handler).await {
            Ok(response) => response,
            Err(e) => return Reply::Close(e),
        },
        Some(Route::Waits(handler)) => handler.await,
    };
    if !answers {
        return Reply::Nothing;
    }
    encode(&response, version, correlation)
}

fn sasl_handshake(session: &mut Session, mechanism: &str) -> SaslHandshakeResponse {
    let offered = session
        .offered()
        .into_iter()
        .map(StrBytes::from_static_str)
        .collect();
    let code = match session.handshake(mechanism) {
        Ok(()) => codes::NONE,
        Err(()) => codes::UNSUPPORTED_SASL_MECHANISM,
    };
    SaslHandshakeResponse::default()
        .with_error_code(code)
        .with_mechanisms(offered)
}

fn sasl_authenticate(
    broker: &Broker,
    session: &mut Session,
    bytes: &[u8],
    version: i16,
) -> SaslAuthenticateResponse {
    let step = session.authenticate(broker.authenticator(), bytes);
    let mut response = SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(step.bytes));
    // v1 added the session's lifetime; a client told it authenticates again before it ends.
    if let Some(lifetime) = step.lifetime.filter(|_| version >= 1) {
        response =
            response.with_session_lifetime_ms(lifetime.as_millis().min(i64::MAX as u128) as i64);
    }
    match step.error {
        None => response,
        Some(message) => response
            .with_error_code(codes::SASL_AUTHENTICATION_FAILED)
            .with_error_message(Some(StrBytes::from_string(message))),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn broker(dir: &std::path::Path) -> Arc<Broker> {
        let log = Arc::new(crate::log::Log::open(crate::log::LogConfig::in_dir(dir)).unwrap());
        let address = "127.0.0.1:9092".parse().unwrap();
        Arc::new(Broker::new(crate::config::KafkaConfig::default(), address, log).unwrap())
    }

    #[test]
    fn a_frame_shorter_than_a_header_closes_its_connection() {
        let dir = tempfile::tempdir().unwrap();
        let broker = broker(dir.path());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let peer = "127.0.0.1:1".parse().unwrap();
        for frame in [&b""[..], b"\x00\x12\x00\x03\x00\x00\x00"] {
            let endpoint = Arc::new(Endpoint {
                host: kafka_protocol::protocol::StrBytes::from_static_str("127.0.0.1"),
                port: 9092,
            });
            let frame = Bytes::copy_from_slice(frame);
            let mut session = Session::new(Vec::new());
            match runtime.block_on(handle(&broker, frame, peer, &endpoint, &mut session)) {
                Reply::Close(reason) => assert!(reason.contains("shorter"), "{reason}"),
                _ => panic!("a short frame must close its connection"),
            }
        }
    }

    #[test]
    fn every_supported_api_has_a_route() {
        let dir = tempfile::tempdir().unwrap();
        let broker = broker(dir.path());
        let cx = RequestContext {
            version: 0,
            client_id: String::new(),
            peer: "127.0.0.1:1".parse().unwrap(),
            endpoint: Arc::new(Endpoint {
                host: kafka_protocol::protocol::StrBytes::from_static_str("127.0.0.1"),
                port: 9092,
            }),
            principal: None,
        };
        for &(api, _, _) in versions::SUPPORTED {
            if matches!(api, ApiKey::SaslHandshake | ApiKey::SaslAuthenticate) {
                continue; // the connection's own: answered before routing
            }
            let request = default_request(api);
            assert!(
                route(&broker, request, cx.clone()).is_some(),
                "{api:?} is listed as supported but has no route"
            );
        }
    }

    /// An empty request of `api`.
    fn default_request(api: ApiKey) -> RequestKind {
        use kafka_protocol::messages::*;
        match api {
            ApiKey::Produce => RequestKind::Produce(ProduceRequest::default()),
            ApiKey::Fetch => RequestKind::Fetch(FetchRequest::default()),
            ApiKey::ListOffsets => RequestKind::ListOffsets(ListOffsetsRequest::default()),
            ApiKey::Metadata => RequestKind::Metadata(MetadataRequest::default()),
            ApiKey::OffsetCommit => RequestKind::OffsetCommit(OffsetCommitRequest::default()),
            ApiKey::OffsetFetch => RequestKind::OffsetFetch(OffsetFetchRequest::default()),
            ApiKey::FindCoordinator => {
                RequestKind::FindCoordinator(FindCoordinatorRequest::default())
            }
            ApiKey::JoinGroup => RequestKind::JoinGroup(JoinGroupRequest::default()),
            ApiKey::Heartbeat => RequestKind::Heartbeat(HeartbeatRequest::default()),
            ApiKey::LeaveGroup => RequestKind::LeaveGroup(LeaveGroupRequest::default()),
            ApiKey::SyncGroup => RequestKind::SyncGroup(SyncGroupRequest::default()),
            ApiKey::DescribeGroups => RequestKind::DescribeGroups(DescribeGroupsRequest::default()),
            ApiKey::ListGroups => RequestKind::ListGroups(ListGroupsRequest::default()),
            ApiKey::ApiVersions => RequestKind::ApiVersions(ApiVersionsRequest::default()),
            ApiKey::CreateTopics => RequestKind::CreateTopics(CreateTopicsRequest::default()),
            ApiKey::DeleteTopics => RequestKind::DeleteTopics(DeleteTopicsRequest::default()),
            ApiKey::InitProducerId => RequestKind::InitProducerId(InitProducerIdRequest::default()),
            ApiKey::DescribeConfigs => {
                RequestKind::DescribeConfigs(DescribeConfigsRequest::default())
            }
            ApiKey::AlterConfigs => RequestKind::AlterConfigs(AlterConfigsRequest::default()),
            ApiKey::CreatePartitions => {
                RequestKind::CreatePartitions(CreatePartitionsRequest::default())
            }
            ApiKey::DeleteGroups => RequestKind::DeleteGroups(DeleteGroupsRequest::default()),
            ApiKey::IncrementalAlterConfigs => {
                RequestKind::IncrementalAlterConfigs(IncrementalAlterConfigsRequest::default())
            }
            other => panic!("{other:?}: add it to default_request"),
        }
    }
}
