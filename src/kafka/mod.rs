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
mod produce;
mod producers;
mod shape;
mod versions;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::task::JoinSet;

pub use broker::Broker;
pub use versions::SUPPORTED;

use crate::config::KafkaConfig;
use crate::log::Log;
use crate::stop::StopToken;
use admission::{Admission, Refusal};

/// The running server: its thread and the address it listens on.
pub struct KafkaServer {
    address: SocketAddr,
    stop: StopToken,
    thread: Option<JoinHandle<()>>,
}

/// A bound listener with its runtime, not serving yet: `blink run` binds before it touches the
/// disk, so a busy port is reported before anything is created.
pub struct KafkaListener {
    runtime: tokio::runtime::Runtime,
    listener: tokio::net::TcpListener,
    config: KafkaConfig,
}

impl KafkaListener {
    /// Binds `config.listen`.
    pub fn bind(config: &KafkaConfig) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("blink-kafka")
            .enable_all()
            .build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind(&config.listen))?;
        Ok(KafkaListener {
            runtime,
            listener,
            config: config.clone(),
        })
    }

    /// Serves `log` until [`KafkaServer::stop`].
    pub fn serve(self, log: Arc<Log>) -> std::io::Result<KafkaServer> {
        let KafkaListener {
            runtime,
            listener,
            config,
        } = self;
        let config = &config;
        let address = listener.local_addr()?;
        let broker = Arc::new(Broker::new(config.clone(), address, log)?);
        let stop = StopToken::new();
        let admission = Admission::new(config.max_connections, config.max_connections_per_ip);
        let timeouts = conn::Timeouts {
            idle: Duration::from_millis(config.connections_max_idle_ms),
            request_read: Duration::from_millis(config.request_read_timeout_ms),
        };
        let stopped = stop.clone();
        let thread = std::thread::Builder::new()
            .name("blink-kafka".into())
            .spawn(move || {
                let serving = broker.clone();
                runtime.block_on(accept(listener, serving, admission, timeouts, stopped));
                // Connections are drained by now; what is left is blocking-pool work of
                // requests given up on.
                runtime.shutdown_timeout(Duration::from_secs(1));
                // Idempotent producers as of the stop: the next start replays nothing.
                broker
                    .producers
                    .save_all(|topic, index| broker.partition(topic, index));
            })?;
        tracing::info!(%address, advertised = %format!("{}:{}", broker::config_host(config, address), address.port()), "kafka server listening");
        Ok(KafkaServer {
            address,
            stop,
            thread: Some(thread),
        })
    }
}

impl KafkaServer {
    /// Binds `config.listen` and serves `log` until [`KafkaServer::stop`].
    pub fn start(config: &KafkaConfig, log: Arc<Log>) -> std::io::Result<Self> {
        KafkaListener::bind(config)?.serve(log)
    }

    /// The address it listens on (with the port chosen when `listen` asked for port 0).
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops accepting, lets every connection finish the request it is serving (for up to
    /// [`DRAIN`]), then closes them.
    pub fn stop(mut self) {
        self.stop.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// One request frame (without its size prefix) through the whole request path — header,
/// shape, decoding, handler, encoding — as a connection would send it: the answer frame, or
/// `None` when the connection would be closed or nothing is answered. For the fuzzers.
#[doc(hidden)]
pub async fn answer(broker: &Arc<Broker>, frame: bytes::Bytes) -> Option<bytes::BytesMut> {
    let peer = SocketAddr::from(([127, 0, 0, 1], 1));
    match dispatch::handle(broker, frame, peer).await {
        dispatch::Reply::Frame(body) => Some(body),
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

/// Refused connections are logged at most once a second, with how many were refused since: a
/// flood of connections must not become a flood of log lines.
#[derive(Default)]
struct RefusalLog {
    last: Option<std::time::Instant>,
    since: u64,
}

impl RefusalLog {
    fn refused(&mut self, peer: SocketAddr, why: Refusal, admission: &Admission) {
        self.since += 1;
        if self
            .last
            .is_some_and(|t| t.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        let reason = match why {
            Refusal::Full => "max_connections reached",
            Refusal::PerAddress => "max_connections_per_ip reached for this address",
        };
        tracing::warn!(%peer, open = admission.open(), refused = self.since, "kafka: refusing connections: {reason}");
        self.last = Some(std::time::Instant::now());
        self.since = 0;
    }
}

/// How long a stopping server waits for connections to finish the request they are serving
/// (a fetch waiting for data, a produce being written) before it closes them.
pub const DRAIN: Duration = Duration::from_secs(5);

/// How often group members whose session ran out, and join barriers whose deadline passed,
/// are looked for, while any group has members (with none, nothing can expire and the task
/// sleeps until a member joins: an idle Blink is not woken five times a second for nothing).
const EXPIRE_EVERY: Duration = Duration::from_millis(200);

async fn accept(
    listener: tokio::net::TcpListener,
    broker: Arc<Broker>,
    mut admission: Admission,
    timeouts: conn::Timeouts,
    stop: StopToken,
) {
    let expiring = broker.clone();
    let expiry_stop = stop.clone();
    let expiry = tokio::spawn(async move {
        let mut tick = tokio::time::interval(EXPIRE_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            if !expiring.groups.has_members() {
                tokio::select! {
                    _ = expiry_stop.stopped() => return,
                    _ = expiring.groups.member_joined() => tick.reset(),
                }
            }
            tokio::select! {
                _ = expiry_stop.stopped() => return,
                _ = tick.tick() => expiring.groups.expire(),
            }
        }
    });
    let mut connections = JoinSet::new();
    // Each connection's address, by task, so its slot is given back however the task ends.
    let mut peers: HashMap<tokio::task::Id, IpAddr> = HashMap::new();
    let mut refusals = RefusalLog::default();
    loop {
        tokio::select! {
            biased;
            _ = stop.stopped() => break,
            Some(ended) = connections.join_next_with_id(), if !connections.is_empty() => {
                let id = match ended {
                    Ok((id, ())) => id,
                    Err(e) => e.id(),
                };
                if let Some(ip) = peers.remove(&id) {
                    admission.release(ip);
                }
            }
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if let Err(why) = admission.admit(peer.ip()) {
                        refusals.refused(peer, why, &admission);
                        continue;
                    }
                    let serving = conn::serve(stream, peer, broker.clone(), timeouts, stop.clone());
                    let id = connections.spawn(serving).id();
                    peers.insert(id, peer.ip());
                }
                Err(e) => {
                    tracing::warn!(error = %e, "kafka: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
        }
    }
    drop(listener);
    let _ = expiry.await;
    let open = connections.len();
    let drained = tokio::time::timeout(DRAIN, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            open,
            left = connections.len(),
            "kafka: connections still busy after {DRAIN:?}; closing them"
        );
        connections.abort_all();
        while connections.join_next().await.is_some() {}
    }
}
