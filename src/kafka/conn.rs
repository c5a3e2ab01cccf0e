//! One client connection: length-prefixed frames in, answers out, in order.
//!
//! A connection holds a slot only while it is used: one with no request for
//! `connections_max_idle_ms` is closed, and once a request's first byte has arrived the rest
//! must arrive within `request_read_timeout_ms` (a client trickling bytes, slowloris, cannot
//! hold its slot). Room for a frame grows with the bytes received, not with the size its
//! prefix claims.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use tokio_rustls::TlsAcceptor;

use super::broker::{Broker, Endpoint};
use super::dispatch::{self, Reply};
use super::sasl::{Mechanism, Session};
use crate::stop::StopToken;

/// How long a connection may wait for, and take over, each request.
#[derive(Debug, Clone, Copy)]
pub struct Timeouts {
    pub idle: Duration,
    pub request_read: Duration,
}

/// Most room reserved ahead of the bytes actually received.
const RESERVE_STEP: usize = 1 << 20;

/// The listener a connection came in on.
#[derive(Clone)]
pub struct Via {
    pub endpoint: Arc<Endpoint>,
    /// Set on a TLS listener: the handshake comes first.
    pub tls: Option<TlsAcceptor>,
    /// The SASL mechanisms the listener requires one of; empty: no authentication.
    pub sasl: Arc<[Mechanism]>,
}

pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    via: Via,
    broker: Arc<Broker>,
    timeouts: Timeouts,
    stop: StopToken,
) {
    let _ = stream.set_nodelay(true);
    let session = Session::new(via.sasl.to_vec());
    let Some(acceptor) = via.tls else {
        let (read, write) = stream.into_split();
        let endpoint = &via.endpoint;
        return serve_frames(read, write, peer, endpoint, session, broker, timeouts, stop).await;
    };
    // The handshake is held to the time a request may take to arrive, so a client that
    // connects and never speaks TLS cannot keep its slot.
    let handshake = tokio::select! {
        biased;
        _ = stop.stopped() => return,
        handshake = tokio::time::timeout(timeouts.request_read, acceptor.accept(stream)) => handshake,
    };
    match handshake {
        Ok(Ok(tls)) => {
            let (read, write) = tokio::io::split(tls);
            let endpoint = &via.endpoint;
            serve_frames(read, write, peer, endpoint, session, broker, timeouts, stop).await
        }
        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "kafka: TLS handshake failed"),
        Err(_) => tracing::debug!(%peer, "kafka: TLS handshake timed out"),
    }
}

/// Requests in, answers out, in order, until the client goes, idles out or Blink stops.
#[allow(clippy::too_many_arguments)]
async fn serve_frames(
    read: impl AsyncRead + Unpin,
    mut write: impl AsyncWrite + Unpin,
    peer: SocketAddr,
    endpoint: &Arc<Endpoint>,
    mut session: Session,
    broker: Arc<Broker>,
    timeouts: Timeouts,
    stop: StopToken,
) {
    let mut read = BufReader::with_capacity(64 << 10, read);
    let max = broker.max_request_bytes();
    loop {
        // Between requests: a stopping server closes the connection here.
        let waiting = tokio::select! {
            biased;
            _ = stop.stopped() => return,
            first = tokio::time::timeout(timeouts.idle, read.fill_buf()) => first,
        };
        match waiting {
            Err(_) => {
                tracing::debug!(%peer, idle = ?timeouts.idle, "kafka: closing an idle connection");
                return;
            }
            Ok(Ok([])) | Ok(Err(_)) => return, // the client went away
            Ok(Ok(_)) => {}
        }
        let frame = match tokio::time::timeout(timeouts.request_read, read_frame(&mut read, max))
            .await
        {
            Err(_) => {
                tracing::warn!(%peer, timeout = ?timeouts.request_read, "kafka: closing a connection: a request did not arrive in time");
                return;
            }
            Ok(Err(FrameError::Closed)) => return,
            Ok(Err(FrameError::Size(len))) => {
                tracing::warn!(%peer, len, max, "kafka: closing a connection: request frame size out of range");
                return;
            }
            Ok(Ok(frame)) => frame,
        };
        match dispatch::handle(&broker, frame, peer, endpoint, &mut session).await {
            Reply::Last(body, why) => {
                let size = (body.len() as u32).to_be_bytes();
                let _ = write.write_all(&size).await;
                let _ = write.write_all(&body).await;
                let _ = write.flush().await;
                broker.failed_logins.warn(|| format!("{why} (from {peer})"));
                return;
            }
            Reply::Frame(body) => {
                let size = (body.len() as u32).to_be_bytes();
                if write.write_all(&size).await.is_err()
                    || write.write_all(&body).await.is_err()
                    || write.flush().await.is_err()
                {
                    return;
                }
            }
            Reply::Nothing => {}
            Reply::Close(reason) => {
                tracing::warn!(%peer, reason, "kafka: closing a connection");
                return;
            }
        }
    }
}

enum FrameError {
    /// The client went away mid-frame.
    Closed,
    /// The size prefix is below a header's size or above `max_request_bytes`.
    Size(i32),
}

/// Reads one size-prefixed frame of at most `max` bytes.
async fn read_frame(read: &mut (impl AsyncRead + Unpin), max: usize) -> Result<Bytes, FrameError> {
    let len = read.read_i32().await.map_err(|_| FrameError::Closed)?;
    if len < 8 || len as usize > max {
        return Err(FrameError::Size(len));
    }
    let len = len as usize;
    // Filled with read_buf, which writes into spare capacity: no zeroing of large frames. Room
    // is reserved a step at a time, so a prefix claiming 100 MB followed by nothing costs 1 MB.
    let mut frame = BytesMut::with_capacity(len.min(RESERVE_STEP));
    while frame.len() < len {
        let left = len - frame.len();
        if frame.capacity() == frame.len() {
            frame.reserve(left.min(RESERVE_STEP.max(frame.len())));
        }
        let mut limited = (&mut frame).limit(left);
        match read.read_buf(&mut limited).await {
            Ok(0) | Err(_) => return Err(FrameError::Closed),
            Ok(_) => {}
        }
    }
    Ok(frame.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_frame_is_read_whole_refused_for_its_size_or_ends_with_its_client() {
        let mut claimed = (50i32 << 20).to_be_bytes().to_vec();
        claimed.extend_from_slice(&[7; 1000]);
        let mut reader = &claimed[..];
        // The client stops after 1000 bytes of a claimed 50 MB.
        assert!(matches!(
            read_frame(&mut reader, 100 << 20).await,
            Err(FrameError::Closed)
        ));
        let mut whole = 3000i32.to_be_bytes().to_vec();
        whole.extend((0..3000).map(|i| i as u8));
        let mut reader = &whole[..];
        let frame = read_frame(&mut reader, 100 << 20).await.ok().unwrap();
        assert_eq!(&frame[..], &whole[4..]);
        let mut reader = &whole[..];
        assert!(matches!(
            read_frame(&mut reader, 1024).await,
            Err(FrameError::Size(3000))
        ));
    }
}
