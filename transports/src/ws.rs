//! AMQP 0-9-1 over WebSocket: a WebSocket presented as a byte stream.
//!
//! A WebSocket message is not an AMQP frame. The client's binary messages are concatenated into
//! one byte stream and fed to the same decoder as TCP, so a message may hold part of a frame,
//! one frame or many. Each batch the driver writes (one `write_all` + `flush`) leaves as one
//! binary message, which may likewise hold many frames.
//!
//! [`WsStream`] is the adapter: `AsyncRead` yields the payloads of binary messages, `AsyncWrite`
//! turns each `poll_write` into one binary message. Everything that is not AMQP data ends the
//! stream with a close frame, never a panic:
//!
//! | client sends | server answers |
//! |---|---|
//! | a text message | close 1003 (unsupported data) |
//! | a message over [`WsConfig::max_message_size`] | close 1009 (message too big) |
//! | more than [`WsConfig::max_control_per_sec`] pings/pongs in a second | close 1008 (policy) |
//! | invalid UTF-8 in a text message, a protocol violation | close 1007 / 1002 |
//! | close | the close reply, then end of stream |
//!
//! Pings within the budget are answered by tungstenite, which keeps at most one pong queued
//! (a newer ping replaces an unsent pong), so a peer that pings without reading cannot grow
//! the server's memory.
//!
//! The handshake ([`accept`]) takes any path. The `amqp` subprotocol is echoed when the client
//! offers it and not required (as LavinMQ does). With [`WsConfig::allowed_origins`] set, a
//! request whose `Origin` is not in the list gets HTTP 403; requests without `Origin` (not from
//! a browser, which always sends it) are let through.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use futures_util::{Sink, Stream};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::handshake::server::{
    Callback, ErrorResponse, Request, Response,
};
use tokio_tungstenite::tungstenite::http::{self, HeaderValue};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;
use tracing::debug;
use warren_core::ConnectionConfig;

use crate::driver::{drive, Transport};
use crate::hub::Hub;
use crate::tcp::accept_loop;
use crate::tls::TlsAcceptor;

/// The subprotocol name echoed back when a client asks for it.
pub const SUBPROTOCOL: &str = "amqp";

/// tungstenite zero-fills the free part of its read buffer (up to this size) before every
/// socket read, including the ones that find nothing: its 128 KiB default cost more broker
/// CPU than the AMQP work for small messages. Larger messages just take more reads.
const READ_BUFFER_SIZE: usize = 16 * 1024;

/// Limits and checks of the WebSocket listener.
#[derive(Clone, Debug)]
pub struct WsConfig {
    /// Largest incoming message, in bytes; larger ones get close 1009. Clients such as
    /// amqp-client.js send a whole publish (method, header and every body frame) as one
    /// message, so this must exceed the largest message body the broker accepts.
    pub max_message_size: usize,
    /// Most pings and pongs a client may send in one second; more get close 1008.
    pub max_control_per_sec: u32,
    /// `Origin` values allowed to connect (exact match, e.g. `https://app.example`); empty
    /// allows any.
    pub allowed_origins: Vec<String>,
    /// How long the TLS and WebSocket handshakes may take together.
    pub handshake_timeout: Duration,
}

impl Default for WsConfig {
    fn default() -> Self {
        WsConfig {
            // RabbitMQ's default largest body (128 MiB) plus room for its frames' overhead.
            max_message_size: 128 * 1024 * 1024 + 1024 * 1024,
            max_control_per_sec: 100,
            allowed_origins: Vec::new(),
            handshake_timeout: Duration::from_secs(10),
        }
    }
}

impl WsConfig {
    /// The tungstenite settings that enforce these limits. A single WebSocket frame may not
    /// exceed the message limit either, so an oversized frame is refused from its header.
    pub fn tungstenite(&self) -> WebSocketConfig {
        WebSocketConfig::default()
            .read_buffer_size(READ_BUFFER_SIZE)
            .max_message_size(Some(self.max_message_size))
            .max_frame_size(Some(self.max_message_size))
    }

    /// Whether a handshake with this `Origin` header may proceed.
    pub fn origin_allowed(&self, origin: Option<&[u8]>) -> bool {
        match origin {
            _ if self.allowed_origins.is_empty() => true,
            None => true,
            Some(origin) => self
                .allowed_origins
                .iter()
                .any(|allowed| allowed.as_bytes().eq_ignore_ascii_case(origin)),
        }
    }
}

/// Accepts connections forever and runs AMQP over WebSocket on each, over TLS when `tls` is
/// given (`wss://`).
pub async fn serve(
    listener: TcpListener,
    hub: Hub,
    config: ConnectionConfig,
    ws: Arc<WsConfig>,
    tls: Option<TlsAcceptor>,
) {
    let what = if tls.is_some() { "wss" } else { "ws" };
    accept_loop(listener, what, move |stream, peer| {
        let (hub, ws, tls) = (hub.clone(), ws.clone(), tls.clone());
        let config = ConnectionConfig {
            from_loopback: peer.ip().is_loopback(),
            ..config.clone()
        };
        let peer = peer.to_string();
        async move {
            let deadline = tokio::time::Instant::now() + ws.handshake_timeout;
            match tls {
                None => serve_connection(stream, hub, config, &ws, peer, deadline).await,
                Some(tls) => match tokio::time::timeout_at(deadline, tls.accept(stream)).await {
                    Ok(Ok(stream)) => {
                        serve_connection(stream, hub, config, &ws, peer, deadline).await
                    }
                    Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                    Err(_) => debug!(%peer, "TLS handshake timed out"),
                },
            }
        }
    })
    .await
}

/// Runs the WebSocket handshake on `stream` (finishing by `deadline`), then AMQP over it.
///
/// Any web page can open `ws://127.0.0.1:…`, and its connection arrives from loopback: without
/// [`WsConfig::allowed_origins`], a request carrying an `Origin` (a browser's) does not count
/// as coming from this machine, so loopback-only users such as `guest` may not log in on it.
pub async fn serve_connection<S: Transport>(
    stream: S,
    hub: Hub,
    mut config: ConnectionConfig,
    ws: &WsConfig,
    peer: String,
    deadline: tokio::time::Instant,
) {
    let origin = Arc::new(AtomicBool::new(false));
    match tokio::time::timeout_at(deadline, accept_noting_origin(stream, ws, origin.clone())).await
    {
        Ok(Ok(stream)) => {
            if origin.load(Ordering::Relaxed) && ws.allowed_origins.is_empty() {
                config.from_loopback = false;
            }
            drive(stream, hub, config, peer).await
        }
        Ok(Err(e)) => debug!(%peer, error = %e, "WebSocket handshake failed"),
        Err(_) => debug!(%peer, "WebSocket handshake timed out"),
    }
}

/// The server side of the WebSocket handshake: checks the origin, echoes the `amqp`
/// subprotocol if offered, and returns the connection as a byte stream.
pub async fn accept<S>(stream: S, ws: &WsConfig) -> Result<WsStream<S>, WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    accept_noting_origin(stream, ws, Arc::default()).await
}

/// [`accept`], setting `origin` if the request carried an `Origin` header.
async fn accept_noting_origin<S>(
    stream: S,
    ws: &WsConfig,
    origin: Arc<AtomicBool>,
) -> Result<WsStream<S>, WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let socket = tokio_tungstenite::accept_hdr_async_with_config(
        stream,
        HandshakeCheck { ws, origin },
        Some(ws.tungstenite()),
    )
    .await?;
    Ok(WsStream::new(socket, ws))
}

/// Looks at the upgrade request: origin, subprotocol.
struct HandshakeCheck<'a> {
    ws: &'a WsConfig,
    /// Set when the request carries an `Origin` header (it comes from a browser).
    origin: Arc<AtomicBool>,
}

impl Callback for HandshakeCheck<'_> {
    fn on_request(
        self,
        request: &Request,
        mut response: Response,
    ) -> Result<Response, ErrorResponse> {
        let origin = request.headers().get(http::header::ORIGIN);
        self.origin.store(origin.is_some(), Ordering::Relaxed);
        if !self.ws.origin_allowed(origin.map(HeaderValue::as_bytes)) {
            let mut refusal = ErrorResponse::new(Some("origin not allowed\n".to_owned()));
            *refusal.status_mut() = http::StatusCode::FORBIDDEN;
            return Err(refusal);
        }
        let offers_amqp = request
            .headers()
            .get_all(http::header::SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|p| p.trim().eq_ignore_ascii_case(SUBPROTOCOL));
        if offers_amqp {
            response.headers_mut().insert(
                http::header::SEC_WEBSOCKET_PROTOCOL,
                HeaderValue::from_static(SUBPROTOCOL),
            );
        }
        Ok(response)
    }
}

/// Wraps a connection whose WebSocket handshake an HTTP server already answered (e.g. an
/// upgrade on the management listener): the caller checked the origin and chose the
/// subprotocol; the limits of `ws` still apply. Feed the result to [`drive`].
pub async fn from_upgraded<S>(io: S, ws: &WsConfig) -> WsStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let socket = WebSocketStream::from_raw_socket(io, Role::Server, Some(ws.tungstenite())).await;
    WsStream::new(socket, ws)
}

/// A WebSocket connection as the AMQP byte stream; see the module docs.
pub struct WsStream<S> {
    socket: WebSocketStream<S>,
    /// The unread rest of the last binary message.
    pending: Bytes,
    /// Set when the read side has ended; the close frame to send on shutdown, if we chose it.
    ended: Option<Option<CloseFrame>>,
    shutdown: Shutdown,
    control: ControlBudget,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Shutdown {
    /// Nothing sent yet.
    Open,
    /// Our close frame is queued; flushing it.
    Closing,
    /// Waiting for the peer's close reply (bounded by the caller).
    Draining,
    Done,
}

/// Pings and pongs allowed per one-second window.
struct ControlBudget {
    limit: u32,
    window_start: Instant,
    count: u32,
}

impl ControlBudget {
    /// Counts one control frame; false once the window's budget is spent.
    fn take(&mut self, now: Instant) -> bool {
        if now.duration_since(self.window_start) >= Duration::from_secs(1) {
            self.window_start = now;
            self.count = 0;
        }
        self.count = self.count.saturating_add(1);
        self.count <= self.limit
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> WsStream<S> {
    /// Wraps an accepted WebSocket (from [`accept`], or from an HTTP server's upgrade).
    pub fn new(socket: WebSocketStream<S>, ws: &WsConfig) -> Self {
        WsStream {
            socket,
            pending: Bytes::new(),
            ended: None,
            shutdown: Shutdown::Open,
            control: ControlBudget {
                limit: ws.max_control_per_sec,
                window_start: Instant::now(),
                count: 0,
            },
        }
    }

    /// The close code this side will send (or has sent) because of what the peer did, if any.
    pub fn close_code(&self) -> Option<CloseCode> {
        self.ended.as_ref().and_then(|f| f.as_ref()).map(|f| f.code)
    }

    /// Ends the read side; `close` is what shutdown will send.
    fn end(&mut self, close: Option<(CloseCode, &'static str)>) {
        if let Some((code, reason)) = close {
            debug!(?code, reason, "closing WebSocket");
        }
        self.pending = Bytes::new();
        self.ended = Some(close.map(|(code, reason)| CloseFrame {
            code,
            reason: reason.into(),
        }));
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for WsStream<S> {
    /// Copies out binary payloads, taking every message that is already in until `buf` is
    /// full: clients such as amqp-client.js send one message per publish, and the driver hands
    /// the core whatever one read returns, so a read per message would cost a hub round each.
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let start = buf.filled().len();
        loop {
            if !this.pending.is_empty() {
                let n = this.pending.len().min(buf.remaining());
                buf.put_slice(&this.pending[..n]);
                this.pending.advance(n);
                if buf.remaining() == 0 {
                    return Poll::Ready(Ok(()));
                }
                continue;
            }
            if this.ended.is_some() {
                // The bytes copied so far, then end of stream on the next read.
                return Poll::Ready(Ok(()));
            }
            let next = match Pin::new(&mut this.socket).poll_next(cx) {
                Poll::Ready(next) => next,
                Poll::Pending if buf.filled().len() > start => return Poll::Ready(Ok(())),
                Poll::Pending => return Poll::Pending,
            };
            match next {
                Some(Ok(Message::Binary(data))) => this.pending = data,
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {
                    if !this.control.take(Instant::now()) {
                        this.end(Some((CloseCode::Policy, "too many pings")));
                    }
                }
                Some(Ok(Message::Text(_))) => this.end(Some((
                    CloseCode::Unsupported,
                    "AMQP frames must be sent in binary messages",
                ))),
                // The peer closed: tungstenite has queued the reply, shutdown flushes it.
                Some(Ok(Message::Close(_))) | None => this.end(None),
                Some(Ok(Message::Frame(_))) => {}
                Some(Err(WsError::Capacity(_))) => {
                    this.end(Some((CloseCode::Size, "message too big")))
                }
                Some(Err(WsError::Utf8(_))) => {
                    this.end(Some((CloseCode::Invalid, "invalid UTF-8")))
                }
                Some(Err(WsError::Protocol(e))) => {
                    debug!(error = %e, "WebSocket protocol error");
                    this.end(Some((CloseCode::Protocol, "WebSocket protocol error")))
                }
                Some(Err(WsError::ConnectionClosed | WsError::AlreadyClosed)) => this.end(None),
                Some(Err(e)) => {
                    this.end(None);
                    if buf.filled().len() == start {
                        return Poll::Ready(Err(match e {
                            WsError::Io(e) => e,
                            e => io::Error::other(e),
                        }));
                    }
                }
            }
        }
    }
}

fn io_error(e: WsError) -> io::Error {
    match e {
        WsError::Io(e) => e,
        WsError::ConnectionClosed | WsError::AlreadyClosed => {
            io::Error::new(io::ErrorKind::BrokenPipe, "WebSocket closed")
        }
        e => io::Error::other(e),
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for WsStream<S> {
    /// Sends all of `buf` as one binary message.
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if this.shutdown != Shutdown::Open {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "WebSocket closing",
            )));
        }
        let mut socket = Pin::new(&mut this.socket);
        ready!(socket.as_mut().poll_ready(cx)).map_err(io_error)?;
        socket
            .start_send(Message::Binary(Bytes::copy_from_slice(buf)))
            .map_err(io_error)?;
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().socket)
            .poll_flush(cx)
            .map_err(io_error)
    }

    /// Sends a close frame (1000, or the code chosen when reading ended), flushes it and waits
    /// for the peer's close reply. Callers bound the wait.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        loop {
            match this.shutdown {
                Shutdown::Open => {
                    let frame = match &this.ended {
                        Some(frame) => frame.clone(),
                        None => Some(CloseFrame {
                            code: CloseCode::Normal,
                            reason: "".into(),
                        }),
                    };
                    let mut socket = Pin::new(&mut this.socket);
                    if ready!(socket.as_mut().poll_ready(cx)).is_ok() {
                        // Fails harmlessly if the peer closed first: its reply is queued.
                        let _ = socket.start_send(Message::Close(frame));
                    }
                    this.shutdown = Shutdown::Closing;
                }
                Shutdown::Closing => {
                    let closed = ready!(Pin::new(&mut this.socket).poll_close(cx));
                    this.shutdown = if closed.is_ok() {
                        Shutdown::Draining
                    } else {
                        Shutdown::Done
                    };
                }
                Shutdown::Draining => match ready!(Pin::new(&mut this.socket).poll_next(cx)) {
                    Some(Ok(_)) => {}
                    None | Some(Err(_)) => this.shutdown = Shutdown::Done,
                },
                Shutdown::Done => {
                    let _ = ready!(Pin::new(this.socket.get_mut()).poll_shutdown(cx));
                    return Poll::Ready(Ok(()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::{SinkExt, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};

    type Client = WebSocketStream<DuplexStream>;

    async fn pair(ws: WsConfig) -> (WsStream<DuplexStream>, Client) {
        let (a, b) = tokio::io::duplex(1 << 20);
        let server = from_upgraded(a, &ws);
        let client = WebSocketStream::from_raw_socket(b, Role::Client, None);
        tokio::join!(server, client)
    }

    async fn read_exactly(server: &mut WsStream<DuplexStream>, n: usize) -> Vec<u8> {
        let mut out = vec![0; n];
        tokio::time::timeout(Duration::from_secs(5), server.read_exact(&mut out))
            .await
            .expect("bytes within 5 s")
            .expect("read");
        out
    }

    /// Reads the server to its end, shuts it down, and returns the close frame the client got.
    async fn close_seen_by_client(
        mut server: WsStream<DuplexStream>,
        mut client: Client,
    ) -> Option<CloseFrame> {
        let mut rest = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(5), server.read_to_end(&mut rest))
            .await
            .expect("read side ends within 5 s")
            .expect("read to end");
        assert_eq!(n, 0, "no stream bytes after a refused message");
        let shutdown = tokio::spawn(async move {
            tokio::time::timeout(Duration::from_secs(5), server.shutdown()).await
        });
        let close = loop {
            match tokio::time::timeout(Duration::from_secs(5), client.next())
                .await
                .expect("close frame within 5 s")
            {
                Some(Ok(Message::Close(frame))) => break frame,
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        };
        // Send the client's automatic close reply, so that the server's drain ends.
        let _ = client.flush().await;
        shutdown
            .await
            .expect("shutdown task")
            .expect("shutdown finishes within 5 s once the client replied")
            .expect("shutdown");
        close
    }

    #[tokio::test]
    async fn binary_messages_concatenate_into_one_stream() {
        let (mut server, mut client) = pair(WsConfig::default()).await;
        client.send(Message::binary(b"AMQ".to_vec())).await.unwrap();
        client.send(Message::binary(Vec::new())).await.unwrap();
        client
            .send(Message::binary(b"P\0\0\x09\x01".to_vec()))
            .await
            .unwrap();
        client.send(Message::binary(b"xyz".to_vec())).await.unwrap();
        assert_eq!(read_exactly(&mut server, 8).await, b"AMQP\0\0\x09\x01");
        assert_eq!(read_exactly(&mut server, 3).await, b"xyz");
    }

    #[tokio::test]
    async fn one_read_takes_every_message_already_received() {
        let (mut server, mut client) = pair(WsConfig::default()).await;
        for i in 0..100u8 {
            client.feed(Message::binary(vec![i; 3])).await.unwrap();
        }
        client.flush().await.unwrap();
        // Wait for all of it to be in, then one read gets it all.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let mut buf = vec![0u8; 4096];
        let n = server.read(&mut buf).await.unwrap();
        let want: Vec<u8> = (0..100u8).flat_map(|i| [i; 3]).collect();
        assert_eq!(&buf[..n], &want[..]);
    }

    #[tokio::test]
    async fn a_message_larger_than_the_read_buffer_is_read_in_parts() {
        let (mut server, mut client) = pair(WsConfig::default()).await;
        let big: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        client.send(Message::binary(big.clone())).await.unwrap();
        let mut got = Vec::new();
        let mut chunk = [0u8; 4096];
        while got.len() < big.len() {
            let n = server.read(&mut chunk).await.unwrap();
            assert!(n > 0 && n <= chunk.len());
            got.extend_from_slice(&chunk[..n]);
        }
        assert_eq!(got, big);
    }

    #[tokio::test]
    async fn each_write_is_one_binary_message() {
        let (mut server, mut client) = pair(WsConfig::default()).await;
        server.write_all(b"first batch").await.unwrap();
        server.flush().await.unwrap();
        server.write_all(b"second").await.unwrap();
        server.flush().await.unwrap();
        for want in [&b"first batch"[..], b"second"] {
            match client.next().await {
                Some(Ok(Message::Binary(data))) => assert_eq!(&data[..], want),
                other => panic!("expected a binary message, got {other:?}"),
            }
        }
    }

    #[tokio::test]
    async fn text_message_is_closed_with_1003() {
        let (mut server, mut client) = pair(WsConfig::default()).await;
        client
            .send(Message::binary(b"AMQP".to_vec()))
            .await
            .unwrap();
        client.send(Message::text("hello")).await.unwrap();
        assert_eq!(read_exactly(&mut server, 4).await, b"AMQP");
        let close = close_seen_by_client(server, client).await;
        assert_eq!(close.map(|f| f.code), Some(CloseCode::Unsupported));
    }

    #[tokio::test]
    async fn oversized_message_is_closed_with_1009() {
        let ws = WsConfig {
            max_message_size: 1024,
            ..WsConfig::default()
        };
        let (mut server, mut client) = pair(ws).await;
        client.send(Message::binary(vec![1u8; 1024])).await.unwrap();
        client.send(Message::binary(vec![2u8; 1025])).await.unwrap();
        assert_eq!(read_exactly(&mut server, 1024).await, vec![1u8; 1024]);
        let close = close_seen_by_client(server, client).await;
        assert_eq!(close.map(|f| f.code), Some(CloseCode::Size));
    }

    #[tokio::test]
    async fn pings_within_budget_are_answered() {
        let (mut server, mut client) = pair(WsConfig::default()).await;
        client
            .send(Message::Ping(Bytes::from_static(b"p1")))
            .await
            .unwrap();
        client
            .send(Message::binary(b"data".to_vec()))
            .await
            .unwrap();
        assert_eq!(read_exactly(&mut server, 4).await, b"data");
        // The pong goes out on the server's next read or write.
        server.write_all(b"x").await.unwrap();
        server.flush().await.unwrap();
        let mut pong = None;
        for _ in 0..2 {
            match client.next().await {
                Some(Ok(Message::Pong(data))) => pong = Some(data),
                Some(Ok(Message::Binary(data))) => assert_eq!(&data[..], b"x"),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(pong.as_deref(), Some(&b"p1"[..]));
    }

    #[tokio::test]
    async fn ping_flood_is_closed_with_1008() {
        let ws = WsConfig {
            max_control_per_sec: 10,
            ..WsConfig::default()
        };
        let (server, mut client) = pair(ws).await;
        for i in 0..50u32 {
            client
                .feed(Message::Ping(i.to_be_bytes().to_vec().into()))
                .await
                .unwrap();
        }
        client.flush().await.unwrap();
        let close = close_seen_by_client(server, client).await;
        assert_eq!(close.map(|f| f.code), Some(CloseCode::Policy));
    }

    #[tokio::test]
    async fn peer_close_ends_the_stream() {
        let (mut server, mut client) = pair(WsConfig::default()).await;
        client.send(Message::binary(b"ab".to_vec())).await.unwrap();
        client.close(None).await.unwrap();
        let mut all = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), server.read_to_end(&mut all))
            .await
            .expect("end within 5 s")
            .unwrap();
        assert_eq!(all, b"ab");
        assert_eq!(server.close_code(), None);
        tokio::time::timeout(Duration::from_secs(5), server.shutdown())
            .await
            .expect("shutdown within 5 s")
            .unwrap();
    }

    #[test]
    fn origins_are_checked_only_when_configured() {
        let open = WsConfig::default();
        assert!(open.origin_allowed(Some(b"http://evil.example")));
        let strict = WsConfig {
            allowed_origins: vec!["http://app.example".into()],
            ..WsConfig::default()
        };
        assert!(strict.origin_allowed(Some(b"http://app.example")));
        assert!(strict.origin_allowed(Some(b"HTTP://APP.EXAMPLE")));
        assert!(!strict.origin_allowed(Some(b"http://evil.example")));
        assert!(!strict.origin_allowed(Some(b"http://app.example.evil")));
        assert!(strict.origin_allowed(None));
    }
}
