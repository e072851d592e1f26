//! Drives one [`Connection`] over any byte stream (TCP, TLS, WebSocket-as-stream).
//!
//! Reading, writing, broker events and timers all run in one `select!` loop, so a peer that
//! stops reading never stops the timers (heartbeats, close deadlines) or the reading of its
//! own input. The rules are the core's, as in every host (`warren_core::pump`): the connection
//! tells the broker when it is gone, and returns delivery credit as the driver reports its
//! writes ([`Connection::handle_written`]; window and low water from [`ConnectionConfig`]).
//! A slow consumer thus leaves messages in their queues instead of growing our buffers.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::debug;
use warren_core::{Command, Connection, ConnectionConfig};

use crate::hub::Hub;

/// Anything that carries the AMQP byte stream.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Transport for T {}

/// Output buffers up to this size are freed once written, if nothing else waits.
const SMALL_OUTPUT: usize = 4 << 10;
/// The least and the most free space the input buffer offers a read. A connection starts at
/// the least (an idle one stays small) and doubles its offer each time a read fills it.
const READ_MIN: usize = 1024;
const READ_MAX: usize = 64 << 10;

/// Runs a connection until it closes: socket bytes in, broker events in, bytes out.
pub async fn drive<T: Transport>(io: T, hub: Hub, config: ConnectionConfig, peer: String) {
    let (link, mut events) = hub.register().await;
    let id = link.id();
    let linger = Duration::from_millis(config.close_timeout_ms);
    let mut conn = Connection::new(config, hub.now_ms());
    let (mut rd, mut wr) = tokio::io::split(io);
    let mut commands: Vec<Command> = Vec::new();
    // Bytes being written; new output collects in `conn.output()` meanwhile.
    let mut pending: Vec<u8> = Vec::new();
    let mut written = 0usize;
    let mut peer_eof = false;
    let mut read_size = READ_MIN;
    debug!(%peer, conn = id.0, "connection accepted");
    loop {
        if written == pending.len() && !conn.output().is_empty() {
            written = 0;
            conn.take_output(&mut pending);
        }
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
        let writing = written < pending.len();
        let mut room = 0;
        if conn.wants_input() {
            // Frames split off the front of the buffer take its capacity with them, so the room
            // is topped up to the connection's read size before every read.
            let buf = conn.input_buffer();
            if buf.capacity() - buf.len() < read_size {
                buf.reserve(read_size);
            }
            room = buf.capacity() - buf.len();
        }
        tokio::select! {
            read = rd.read_buf(conn.input_buffer()), if conn.wants_input() => {
                match read {
                    Ok(0) | Err(_) => {
                        peer_eof = true;
                        conn.handle_eof();
                    }
                    Ok(n) => {
                        if n == room {
                            // More was waiting: offer a bigger read next time.
                            read_size = (read_size * 2).min(READ_MAX);
                        } else if n < read_size / 8 {
                            read_size = (read_size / 2).max(READ_MIN);
                        }
                        conn.process_input(hub.now_ms());
                    }
                }
            }
            wrote = wr.write(&pending[written..]), if writing => {
                match wrote {
                    Ok(0) | Err(_) => conn.handle_eof(),
                    Ok(n) => {
                        written += n;
                        conn.handle_written(n);
                        if written == pending.len() {
                            // A whole batch is out: let TLS push its records now.
                            if wr.flush().await.is_err() {
                                conn.handle_eof();
                            }
                            // A quiet connection need not keep the buffers of its last small
                            // writes (two: they take turns); a busy one writes big batches
                            // and keeps them.
                            if conn.output().is_empty() && pending.capacity() <= SMALL_OUTPUT {
                                pending = Vec::new();
                                written = 0;
                                if conn.output().capacity() <= SMALL_OUTPUT {
                                    *conn.output() = Vec::new();
                                }
                            }
                        }
                    }
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
            link.send(std::mem::take(&mut commands)).await;
        }
        if conn.is_closed() {
            // Last words (a close, a close-ok, our protocol header), within the linger time.
            let rest = [&pending[written..], conn.output().as_slice()].concat();
            let _ = tokio::time::timeout(linger, async {
                wr.write_all(&rest).await?;
                wr.flush().await
            })
            .await;
            break;
        }
    }
    // Whatever ended the loop (a close, a dead socket, the hub gone), the broker must forget
    // this connection: the connection says so itself, once.
    conn.handle_eof();
    let last: Vec<Command> = std::iter::from_fn(|| conn.poll_command()).collect();
    link.send(last).await;
    link.close().await;
    if conn.answered_close() && !peer_eof {
        // The client that sent connection.close hangs up once it has read our close-ok; as
        // RabbitMQ does, let it. lapin reports an error instead of a clean close when our EOF
        // wins the race with its handling of close-ok. Bounded by the linger time.
        let _ = tokio::time::timeout(linger, async {
            let mut discard = [0u8; 512];
            while matches!(rd.read(&mut discard).await, Ok(n) if n > 0) {}
        })
        .await;
    }
    // Bounded: a WebSocket waits here for the peer's close reply, TLS to send close_notify.
    let _ = tokio::time::timeout(linger, wr.shutdown()).await;
    debug!(%peer, conn = id.0, "connection closed");
}
