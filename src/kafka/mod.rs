//! The Kafka wire protocol over Blink's log: any Kafka client can produce into any topic and
//! fetch from any topic, the two Hindsight queues included.
//!
//! The network loop is Blink's own, on a tokio runtime of its own thread; messages are decoded
//! and encoded with the `kafka-protocol` crate. Each connection is one task that reads a request,
//! answers it, then reads the next, so answers go out in request order while clients may
//! pipeline. Requests that touch the log run on tokio's blocking pool, never on a worker. A
//! frame that cannot be parsed closes its connection with a logged reason; nothing else is
//! affected. See docs/kafka.md for the APIs and versions.

mod admin;
mod broker;
pub mod codes;
mod committed_offsets;
mod configs;
mod conn;
mod fetch;
mod group_api;
mod groups;
mod metadata;
mod produce;
mod versions;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use tokio::sync::watch;

pub use broker::Broker;
pub use versions::SUPPORTED;

use crate::config::KafkaConfig;
use crate::log::Log;

/// The running server: its thread and the address it listens on.
pub struct KafkaServer {
    address: SocketAddr,
    stop: watch::Sender<bool>,
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
        let (stop, stopped) = watch::channel(false);
        let max_connections = config.max_connections;
        let thread = std::thread::Builder::new()
            .name("blink-kafka".into())
            .spawn(move || {
                runtime.block_on(accept(listener, broker, max_connections, stopped));
                runtime.shutdown_timeout(std::time::Duration::from_secs(1));
            })?;
        tracing::info!(%address, advertised = %format!("{}:{}", config_host(config, address), address.port()), "kafka server listening");
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

    /// Stops accepting and closes every connection.
    pub fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The host clients are told to connect to.
fn config_host(config: &KafkaConfig, address: SocketAddr) -> String {
    if !config.advertised_host.is_empty() {
        return config.advertised_host.clone();
    }
    if address.ip().is_unspecified() {
        "127.0.0.1".into()
    } else {
        address.ip().to_string()
    }
}

async fn accept(
    listener: tokio::net::TcpListener,
    broker: Arc<Broker>,
    max_connections: usize,
    mut stopped: watch::Receiver<bool>,
) {
    let open = Arc::new(AtomicUsize::new(0));
    // Group members whose session ran out, and join barriers whose deadline passed.
    let expiring = broker.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_millis(200));
        loop {
            tick.tick().await;
            expiring.groups.expire();
        }
    });
    loop {
        tokio::select! {
            _ = stopped.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    if open.load(Ordering::Relaxed) >= max_connections {
                        tracing::warn!(%peer, max_connections, "kafka: too many connections; closing this one");
                        continue;
                    }
                    open.fetch_add(1, Ordering::Relaxed);
                    let (broker, open, stopped) = (broker.clone(), open.clone(), stopped.clone());
                    tokio::spawn(async move {
                        conn::serve(stream, peer, broker, stopped).await;
                        open.fetch_sub(1, Ordering::Relaxed);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "kafka: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                }
            },
        }
    }
}
