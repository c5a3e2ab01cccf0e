//! One client connection: length-prefixed frames in, answers out, in order.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

use super::broker::Broker;
use super::dispatch::{self, Reply};
use crate::stop::StopToken;

pub async fn serve(stream: TcpStream, peer: SocketAddr, broker: Arc<Broker>, stop: StopToken) {
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();
    let mut read = BufReader::with_capacity(64 << 10, read);
    let max = broker.max_request_bytes();
    loop {
        let len = tokio::select! {
            biased;
            // Between requests: a stopping server closes the connection here.
            _ = stop.stopped() => return,
            len = read.read_i32() => match len {
                Ok(len) => len,
                Err(_) => return, // the client went away
            },
        };
        if len < 8 || len as usize > max {
            tracing::warn!(%peer, len, max, "kafka: closing a connection: request frame size out of range");
            return;
        }
        // Filled with read_buf, which writes into spare capacity: no zeroing of large frames.
        let mut frame = BytesMut::with_capacity(len as usize);
        while frame.len() < len as usize {
            let left = len as usize - frame.len();
            let mut limited = (&mut frame).limit(left);
            match read.read_buf(&mut limited).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
        match dispatch::handle(&broker, Bytes::from(frame), peer).await {
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
