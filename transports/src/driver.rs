//! Drives one [`Connection`] over any byte stream (TCP, TLS, WebSocket-as-stream).
//!
//! Reading, writing, broker events and timers all run in one `select!` loop, so a peer that
//! stops reading never stops the timers (heartbeats, close deadlines) or the reading of its
//! own input. Output that piles up past [`HIGH_WATER`] pauses deliveries to this connection
//! (`Command::Paused`) until it drains below [`LOW_WATER`]: a slow consumer leaves messages
//! in their queues instead of growing the broker's buffers.

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tracing::debug;
use warren_core::{Command, Connection, ConnectionConfig};

use crate::hub::Hub;

/// Anything that carries the AMQP byte stream.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Transport for T {}

/// Unwritten output above which deliveries to the connection pause.
pub const HIGH_WATER: usize = 1 << 20;
/// Unwritten output below which paused deliveries resume.
pub const LOW_WATER: usize = 256 << 10;
/// Free space the input buffer has before a read, and the most it grows by at once.
const READ_MIN: usize = 1024;
const READ_MAX: usize = 64 << 10;

/// Runs a connection until it closes: socket bytes in, broker events in, bytes out.
pub async fn drive<T: Transport>(io: T, hub: Hub, config: ConnectionConfig, peer: String) {
    let (id, mut events) = hub.register().await;
    let linger = Duration::from_millis(config.close_timeout_ms);
    let mut conn = Connection::new(config, hub.now_ms());
    let (mut rd, mut wr) = tokio::io::split(io);
    let mut commands: Vec<Command> = Vec::new();
    // Bytes being written; new output collects in `conn.output()` meanwhile.
    let mut pending: Vec<u8> = Vec::new();
    let mut written = 0usize;
    let mut paused = false;
    let mut peer_eof = false;
    debug!(%peer, conn = id.0, "connection accepted");
    loop {
        if written == pending.len() && !conn.output().is_empty() {
            pending.clear();
            written = 0;
            std::mem::swap(&mut pending, conn.output());
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
        if conn.wants_input() {
            // Room for a good read; grows only on a connection that fills it, so an idle one
            // stays small.
            let buf = conn.input_buffer();
            if buf.capacity() - buf.len() < READ_MIN {
                let grow = buf.capacity().clamp(READ_MIN, READ_MAX);
                buf.reserve(grow);
            }
        }
        tokio::select! {
            read = rd.read_buf(conn.input_buffer()), if conn.wants_input() => {
                match read {
                    Ok(0) | Err(_) => {
                        peer_eof = true;
                        conn.handle_eof();
                    }
                    Ok(_) => conn.process_input(hub.now_ms()),
                }
            }
            wrote = wr.write(&pending[written..]), if writing => {
                match wrote {
                    Ok(0) | Err(_) => conn.handle_eof(),
                    Ok(n) => {
                        written += n;
                        // A whole batch is out: let TLS push its records now.
                        if written == pending.len() && wr.flush().await.is_err() {
                            conn.handle_eof();
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
        let backlog = pending.len() - written + conn.output().len();
        if !paused && backlog > HIGH_WATER {
            paused = true;
            commands.push(Command::Paused(true));
        } else if paused && backlog < LOW_WATER {
            paused = false;
            commands.push(Command::Paused(false));
        }
        while let Some(c) = conn.poll_command() {
            commands.push(c);
        }
        if !commands.is_empty() {
            hub.send(id, std::mem::take(&mut commands)).await;
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
    // Whatever happened, the broker must forget this connection (duplicates are ignored).
    hub.send(id, vec![Command::Close]).await;
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
