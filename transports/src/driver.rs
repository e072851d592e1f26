//! Drives one [`Connection`] over any byte stream (TCP, TLS, WebSocket-as-stream).

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::debug;
use warren_core::{Command, Connection, ConnectionConfig};

use crate::hub::Hub;

/// Anything that carries the AMQP byte stream.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Transport for T {}

/// Runs a connection until it closes: socket bytes in, broker events in, bytes out.
pub async fn drive<T: Transport>(mut io: T, hub: Hub, config: ConnectionConfig, peer: String) {
    let (id, mut events) = hub.register();
    let linger = Duration::from_millis(config.close_timeout_ms);
    let mut conn = Connection::new(config, hub.now_ms());
    let mut commands: Vec<Command> = Vec::new();
    debug!(%peer, conn = id.0, "connection accepted");
    loop {
        let deadline = conn.poll_timeout();
        let sleep = async {
            match deadline {
                Some(at) => {
                    let now = hub.now_ms();
                    tokio::time::sleep(Duration::from_millis(at.saturating_sub(now))).await
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            read = io.read_buf(conn.input_buffer()), if conn.wants_input() => {
                match read {
                    Ok(0) | Err(_) => conn.handle_eof(),
                    Ok(_) => conn.process_input(hub.now_ms()),
                }
            }
            batch = events.recv() => {
                let Some(batch) = batch else { break };
                let now = hub.now_ms();
                for event in batch {
                    conn.handle_event(event, now);
                }
                // Drain whatever else is already queued: one write for many deliveries.
                while let Ok(batch) = events.try_recv() {
                    for event in batch {
                        conn.handle_event(event, now);
                    }
                }
            }
            _ = sleep => conn.handle_timeout(hub.now_ms()),
        }
        while let Some(c) = conn.poll_command() {
            commands.push(c);
        }
        if !commands.is_empty() {
            hub.send(id, std::mem::take(&mut commands));
        }
        let out = conn.output();
        if !out.is_empty() {
            // One write and one flush per batch: a WebSocket sends it as one message, TLS as
            // few records as it can; on TCP the flush does nothing.
            let res = match io.write_all(out).await {
                Ok(()) => io.flush().await,
                Err(e) => Err(e),
            };
            out.clear();
            if res.is_err() {
                conn.handle_eof();
                while let Some(c) = conn.poll_command() {
                    commands.push(c);
                }
                hub.send(id, std::mem::take(&mut commands));
                break;
            }
        }
        if conn.is_closed() {
            let _ = io.flush().await;
            break;
        }
    }
    // Whatever happened, the broker must forget this connection (duplicates are ignored).
    hub.send(id, vec![Command::Close]);
    // Bounded: a WebSocket waits here for the peer's close reply, TLS to send close_notify.
    let _ = tokio::time::timeout(linger, io.shutdown()).await;
    debug!(%peer, conn = id.0, "connection closed");
}
