//! The server: its listeners (plaintext or TLS), the runtime they run on, and the accept loop
//! that admits each connection or refuses it.
//!
//! Every listener feeds one accept loop, so the connection limits hold across all of them. A
//! connection is told the address of the listener it came in on (Metadata, FindCoordinator),
//! so a client that bootstrapped on the TLS listener stays on it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use kafka_protocol::protocol::StrBytes;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::admission::{Admission, Refusal};
use super::broker::{self, Access, Broker, Endpoint};
use super::sasl::Mechanism;
use super::throttled_log::ThrottledLog;
use super::{conn, tls};
use crate::config::{KafkaConfig, ListenerConfig};
use crate::log::Log;
use crate::stop::StopToken;

/// The running server: its thread and the addresses it listens on.
pub struct KafkaServer {
    addresses: Vec<SocketAddr>,
    stop: StopToken,
    thread: Option<JoinHandle<()>>,
}

/// One bound listener.
struct Bound {
    listener: TcpListener,
    via: conn::Via,
}

/// The listeners, bound, with their runtime, not serving yet: `blink run` binds before it
/// touches the disk, so a busy port or a bad certificate is reported before anything is created.
pub struct KafkaListener {
    runtime: tokio::runtime::Runtime,
    bound: Vec<Bound>,
    config: KafkaConfig,
    access: Access,
}

/// How long a stopping server waits for connections to finish the request they are serving
/// (a fetch waiting for data, a produce being written) before it closes them.
pub const DRAIN: Duration = Duration::from_secs(5);

/// How often group members whose session ran out, and join barriers whose deadline passed,
/// are looked for, while any group has members (with none, nothing can expire and the task
/// sleeps until a member joins: an idle Blink is not woken five times a second for nothing).
const EXPIRE_EVERY: Duration = Duration::from_millis(200);

impl KafkaListener {
    /// Binds every listener of `config` (`listen` first) and reads their TLS files. The error
    /// names the setting at fault.
    pub fn bind(config: &KafkaConfig) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("blink-kafka")
            .enable_all()
            .build()?;
        // Read here, before anything touches the disk, and handed to the broker.
        let access = Access::from_config(config)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let bound = config
            .all_listeners()
            .iter()
            .map(|l| runtime.block_on(bind_one(config, l)))
            .collect::<std::io::Result<Vec<_>>>()?;
        Ok(KafkaListener {
            runtime,
            bound,
            config: config.clone(),
            access,
        })
    }

    /// Serves `log` until [`KafkaServer::stop`].
    pub fn serve(self, log: Arc<Log>) -> std::io::Result<KafkaServer> {
        let KafkaListener {
            runtime,
            bound,
            config,
            access,
        } = self;
        let addresses = bound
            .iter()
            .map(|b| b.listener.local_addr())
            .collect::<std::io::Result<Vec<_>>>()?;
        let main = *addresses.first().ok_or_else(|| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "no Kafka listener")
        })?;
        let broker = Arc::new(Broker::with_access(config.clone(), main, log, access)?);
        for (b, address) in bound.iter().zip(&addresses) {
            let via = &b.via;
            let sasl: Vec<_> = via.sasl.iter().map(|m| m.name()).collect();
            tracing::info!(%address, advertised = %format!("{}:{}", via.endpoint.host.as_str(), via.endpoint.port), tls = via.tls.is_some(), sasl = %sasl.join(","), "kafka server listening");
        }
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
                runtime.block_on(accept(bound, serving, admission, timeouts, stopped));
                // Connections are drained by now; what is left is blocking-pool work of
                // requests given up on.
                runtime.shutdown_timeout(Duration::from_secs(1));
                // Idempotent producers as of the stop: the next start replays nothing.
                broker
                    .producers
                    .save_all(|topic, index| broker.partition(topic, index));
            })?;
        Ok(KafkaServer {
            addresses,
            stop,
            thread: Some(thread),
        })
    }
}

async fn bind_one(config: &KafkaConfig, l: &ListenerConfig) -> std::io::Result<Bound> {
    let listener = TcpListener::bind(&l.listen).await.map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!("[kafka] listen = {:?}: cannot listen there: {e}", l.listen),
        )
    })?;
    let tls = if l.tls_cert.as_os_str().is_empty() {
        None
    } else {
        let acceptor = tls::acceptor(&l.tls_cert, &l.tls_key).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("[kafka] TLS for {}: {e}", l.listen),
            )
        })?;
        Some(acceptor)
    };
    let address = listener.local_addr()?;
    let host = if l.advertised_host.is_empty() {
        broker::config_host(config, address)
    } else {
        l.advertised_host.clone()
    };
    // The names were checked with the configuration.
    let sasl: Vec<Mechanism> = l
        .sasl_mechanisms
        .iter()
        .filter_map(|m| Mechanism::parse(m))
        .collect();
    Ok(Bound {
        listener,
        via: conn::Via {
            endpoint: Arc::new(Endpoint {
                host: StrBytes::from_string(host),
                port: address.port() as i32,
            }),
            tls,
            sasl: sasl.into(),
        },
    })
}

impl KafkaServer {
    /// Binds the listeners of `config` and serves `log` until [`KafkaServer::stop`].
    pub fn start(config: &KafkaConfig, log: Arc<Log>) -> std::io::Result<Self> {
        KafkaListener::bind(config)?.serve(log)
    }

    /// The address of the first listener (`listen`; with the port chosen when it asked for
    /// port 0).
    pub fn address(&self) -> SocketAddr {
        self.addresses[0]
    }

    /// Every listener's address, `listen` first.
    pub fn addresses(&self) -> &[SocketAddr] {
        &self.addresses
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

/// A new connection and the listener it came in on.
type Accepted = (TcpStream, SocketAddr, usize);

/// Accepts on one listener and hands each connection to the accept loop.
async fn listen(listener: TcpListener, index: usize, to: mpsc::Sender<Accepted>, stop: StopToken) {
    loop {
        let accepted = tokio::select! {
            biased;
            _ = stop.stopped() => return,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, peer)) => {
                if to.send((stream, peer, index)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                // Out of file descriptors, typically: wait a little rather than spin.
                tracing::warn!(error = %e, "kafka: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn accept(
    bound: Vec<Bound>,
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
    let (to, mut incoming) = mpsc::channel::<Accepted>(64);
    let mut listeners = JoinSet::new();
    let mut vias = Vec::new();
    for (index, b) in bound.into_iter().enumerate() {
        vias.push(b.via);
        listeners.spawn(listen(b.listener, index, to.clone(), stop.clone()));
    }
    drop(to);
    let mut connections = JoinSet::new();
    // Each connection's address, by task, so its slot is given back however the task ends.
    let mut peers: HashMap<tokio::task::Id, IpAddr> = HashMap::new();
    let refusals = ThrottledLog::new("refusing connections");
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
            accepted = incoming.recv() => {
                let Some((stream, peer, index)) = accepted else { break };
                if let Err(why) = admission.admit(peer.ip()) {
                    refusals.warn(|| {
                        let reason = match why {
                            Refusal::Full => "max_connections reached",
                            Refusal::PerAddress => "max_connections_per_ip reached for this address",
                        };
                        format!("{reason} (from {peer}; {} open)", admission.open())
                    });
                    continue;
                }
                let serving = conn::serve(
                    stream,
                    peer,
                    vias[index].clone(),
                    broker.clone(),
                    timeouts,
                    stop.clone(),
                );
                let id = connections.spawn(serving).id();
                peers.insert(id, peer.ip());
            }
        }
    }
    // Closing the queue first: a listener blocked handing over a connection (the queue full
    // at the stop) sees it closed and ends, instead of waiting on a loop that no longer reads.
    drop(incoming);
    while listeners.join_next().await.is_some() {}
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
