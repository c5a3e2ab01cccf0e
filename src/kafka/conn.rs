//! One client connection: length-prefixed frames in, answers out, in order.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::broker::{Broker, Reply};

pub async fn serve(
    stream: TcpStream,
    peer: SocketAddr,
    broker: Arc<Broker>,
    mut stopped: watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::with_capacity(64 << 10, read);
    let max = broker.max_request_bytes();
    loop {
        let len = tokio::select! {
            _ = stopped.changed() => return,
            len = read.read_i32() => match len {
                Ok(len) => len,
                Err(_) => return, // the client went away
            },
        };
        if len < 8 || len as usize > max {
            tracing::warn!(%peer, len, max, "kafka: closing a connection: request frame size out of range");
            return;
        }
        let mut frame = BytesMut::zeroed(len as usize);
        if read.read_exact(&mut frame).await.is_err() {
            return;
        }
        match broker.handle(Bytes::from(frame), peer).await {
            Reply::Frame(body) => {
                let size = (body.len() as u32).to_be_bytes();
                if write.write_all(&size).await.is_err() || write.write_all(&body).await.is_err() {
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
