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
mod jwt;
mod metadata;
mod network;
mod produce;
mod producers;
mod sasl;
mod server;
mod shape;
mod throttled_log;
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
        dispatch::Reply::Frame(body) | dispatch::Reply::Last(body, _) => Some(body),
        dispatch::Reply::Nothing | dispatch::Reply::Close(_) => None,
    }
}

/// One SASL exchange as a client would drive it, for the fuzzers: the first byte picks the
/// mechanism (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512, OAUTHBEARER), the rest is sent as each
/// SaslAuthenticate step, twice (SCRAM's second step follows a challenge). Users have cheap
/// credentials (one PBKDF2 iteration); tokens are HS256 with a fixed secret.
#[doc(hidden)]
pub fn sasl_exchange(data: &[u8]) {
    use std::sync::OnceLock;
    static AUTHENTICATOR: OnceLock<sasl::Authenticator> = OnceLock::new();
    let authenticator = AUTHENTICATOR.get_or_init(|| {
        let mut users = sasl::Users::default();
        users.add("alice", Credential::new(Hash::Sha256, "pw", 1));
        users.add("alice", Credential::new(Hash::Sha512, "pw", 1));
        let tokens = crate::config::OAuthBearerConfig {
            issuer: "idp".into(),
            audience: "blink".into(),
            hs256_secret: FUZZ_HS256_SECRET.into(),
            ..Default::default()
        };
        sasl::Authenticator {
            users,
            tokens: Some(jwt::TokenValidator::from_config(&tokens).expect("a valid config")),
            max_session: Some(std::time::Duration::from_secs(60)),
        }
    });
    let Some((&pick, message)) = data.split_first() else {
        return;
    };
    let mechanisms = [
        sasl::Mechanism::Plain,
        sasl::Mechanism::ScramSha256,
        sasl::Mechanism::ScramSha512,
        sasl::Mechanism::OAuthBearer,
    ];
    let mechanism = mechanisms[pick as usize % mechanisms.len()];
    let mut session = sasl::Session::new(mechanisms.to_vec());
    session
        .handshake(mechanism.name())
        .expect("an offered mechanism");
    for _ in 0..2 {
        let step = session.authenticate(authenticator, message);
        assert!(
            step.error.is_some() || session.may_serve() || !step.bytes.is_empty(),
            "a step either fails, authenticates or challenges"
        );
        if session.failed() || session.may_serve() {
            break;
        }
    }
}

/// The HS256 secret of [`sasl_exchange`]'s tokens.
#[doc(hidden)]
pub const FUZZ_HS256_SECRET: &str = "the fuzzers' secret, 32 bytes long";

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
