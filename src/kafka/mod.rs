//! The Kafka wire protocol over Blink's log: any Kafka client can produce into any topic and
//! fetch from any topic, the two Hindsight queues included.
//!
//! The network loop is Blink's own, on a tokio runtime of its own thread; messages are decoded
//! and encoded with the `kafka-protocol` crate. Each connection is one task that reads a request,
//! answers it, then reads the next, so answers go out in request order while clients may
//! pipeline. `dispatch.rs` routes each request to its handler and says where it runs: requests
//! that touch the log run on tokio's blocking pool, never on a worker. A frame that cannot be
//! parsed closes its connection with a logged reason; nothing else is affected. See
//! docs/kafka.md for the APIs and versions.

mod acl;
mod admin;
mod admission;
mod authorize;
mod broker;
pub mod codes;
mod committed_offsets;
mod configs;
mod conn;
mod coordinator;
mod dispatch;
mod fetch;
mod group_api;
mod group_state;
mod metadata;
mod network;
mod produce;
mod producers;
mod sasl;
mod server;
mod shape;
mod tls;
mod versions;

use std::net::SocketAddr;
use std::sync::Arc;

pub use broker::{Broker, Endpoint};
pub use sasl::{Credential, Hash, MIN_ITERATIONS};
pub use server::{DRAIN, KafkaListener, KafkaServer};
pub use versions::SUPPORTED;

/// One request frame (without its size prefix) through the whole request path — header,
/// shape, decoding, handler, encoding — as a connection would send it: the answer frame, or
/// `None` when the connection would be closed or nothing is answered. For the fuzzers.
#[doc(hidden)]
pub async fn answer(broker: &Arc<Broker>, frame: bytes::Bytes) -> Option<bytes::BytesMut> {
    let peer = SocketAddr::from(([127, 0, 0, 1], 1));
    let endpoint = Arc::new(Endpoint {
        host: kafka_protocol::protocol::StrBytes::from_static_str("127.0.0.1"),
        port: 9092,
    });
    let mut session = sasl::Session::new(Vec::new());
    match dispatch::handle(broker, frame, peer, &endpoint, &mut session).await {
        dispatch::Reply::Frame(body) | dispatch::Reply::Last(body) => Some(body),
        dispatch::Reply::Nothing | dispatch::Reply::Close(_) => None,
    }
}

/// A random, well-formed request frame (without its size prefix) of the `n`-th API and
/// version Blink serves, counting around: header v1 or v2, then a body built from the
/// request's shape. For the fuzzers' seeds; `seed` picks the values.
#[doc(hidden)]
pub fn sample_request(n: usize, seed: u64) -> Vec<u8> {
    let served: Vec<_> = versions::served().collect();
    let (api, version) = served[n % served.len()];
    let mut frame = Vec::new();
    frame.extend_from_slice(&(api as i16).to_be_bytes());
    frame.extend_from_slice(&version.to_be_bytes());
    frame.extend_from_slice(&(seed as i32).to_be_bytes()); // correlation id
    frame.extend_from_slice(&[0, 4]);
    frame.extend_from_slice(b"fuzz"); // client id
    if api.request_header_version(version) >= 2 {
        frame.push(0); // no tagged fields
    }
    let mut rng = shape::sample::Rng(seed | 1);
    frame.extend(shape::sample::build(api, version, &mut rng, None).0);
    frame
}

/// How many API versions [`sample_request`] counts around.
#[doc(hidden)]
pub fn served_versions() -> usize {
    versions::served().count()
}
