//! AMQP over WebSocket against a served hub, with tokio-tungstenite as the client: frames split
//! across messages, many frames in one message, both transports on one broker, the refusals
//! (text, oversize, origin), and TLS for both listeners.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::rustls;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::WebSocketStream;
use warren_core::codec::{
    decode_frame, encode_content, encode_method_frame, BasicConsume, BasicGet, BasicPublish,
    ChannelOpen, ConnectionOpen, ConnectionStartOk, ConnectionTuneOk, ContentHeader, FrameKind,
    LongStr, Method, QueueDeclare, PROTOCOL_HEADER,
};
use warren_core::storage::MemoryStorage;
use warren_core::{Broker, BrokerConfig, ConnectionConfig};
use warren_transports::{tcp, tls, ws, Hub, WsConfig};

const STEP: Duration = Duration::from_secs(5);

/// A broker with a TCP and a WebSocket listener (and TLS ones when asked).
struct Server {
    amqp: SocketAddr,
    ws: SocketAddr,
}

fn connection_config() -> ConnectionConfig {
    ConnectionConfig {
        heartbeat: 0,
        ..ConnectionConfig::default()
    }
}

async fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    (l, addr)
}

fn hub() -> Hub {
    Hub::spawn(Broker::new(
        BrokerConfig::default(),
        Box::new(MemoryStorage::new()),
    ))
}

async fn serve(ws_config: WsConfig) -> Server {
    let hub = hub();
    let (amqp_l, amqp) = listener().await;
    let (ws_l, ws) = listener().await;
    tokio::spawn(tcp::serve(amqp_l, hub.clone(), connection_config()));
    tokio::spawn(ws::serve(
        ws_l,
        hub,
        connection_config(),
        Arc::new(ws_config),
        None,
    ));
    Server { amqp, ws }
}

/// A hand-driven AMQP client over either transport. Over WebSocket, each `send` chunk is one
/// message.
struct Client {
    wire: Wire,
    inbuf: BytesMut,
    messages: usize,
    frames: usize,
}

enum Wire {
    Ws(Box<WebSocketStream<Box<dyn Stream>>>),
    Stream(Box<dyn Stream>),
}

trait Stream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Stream for T {}

impl Client {
    async fn ws(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.unwrap();
        Client::ws_over(Box::new(stream), &format!("ws://{addr}/ws")).await
    }

    async fn ws_over(stream: Box<dyn Stream>, url: &str) -> Client {
        let (socket, _) = tokio_tungstenite::client_async(url, stream)
            .await
            .expect("WebSocket handshake");
        Client::new(Wire::Ws(Box::new(socket)))
    }

    async fn tcp(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Client::new(Wire::Stream(Box::new(stream)))
    }

    fn new(wire: Wire) -> Client {
        Client {
            wire,
            inbuf: BytesMut::new(),
            messages: 0,
            frames: 0,
        }
    }

    async fn send(&mut self, chunks: &[&[u8]]) {
        match &mut self.wire {
            Wire::Ws(s) => {
                for chunk in chunks {
                    s.feed(Message::binary(chunk.to_vec())).await.unwrap();
                }
                s.flush().await.unwrap();
            }
            Wire::Stream(s) => {
                for chunk in chunks {
                    s.write_all(chunk).await.unwrap();
                }
                s.flush().await.unwrap();
            }
        }
    }

    async fn fill(&mut self) {
        match &mut self.wire {
            Wire::Ws(s) => match tokio::time::timeout(STEP, s.next()).await {
                Ok(Some(Ok(Message::Binary(data)))) => {
                    self.messages += 1;
                    self.inbuf.extend_from_slice(&data);
                }
                Ok(other) => panic!("expected a binary message, got {other:?}"),
                Err(_) => panic!("no message within {STEP:?}"),
            },
            Wire::Stream(s) => {
                match tokio::time::timeout(STEP, s.read_buf(&mut self.inbuf)).await {
                    Ok(Ok(n)) if n > 0 => {}
                    Ok(other) => panic!("stream ended: {other:?}"),
                    Err(_) => panic!("no bytes within {STEP:?}"),
                }
            }
        }
    }

    async fn frame(&mut self) -> (u16, FrameKind) {
        loop {
            if let Some(frame) = decode_frame(&mut self.inbuf, 0).expect("valid frame") {
                self.frames += 1;
                return (frame.channel, frame.kind);
            }
            self.fill().await;
        }
    }

    async fn method(&mut self) -> (u16, Method) {
        match self.frame().await {
            (channel, FrameKind::Method(payload)) => {
                (channel, Method::decode(&payload).expect("valid method"))
            }
            other => panic!("expected a method frame, got {other:?}"),
        }
    }

    /// A method followed by its content: returns the method and the whole body.
    async fn message(&mut self) -> (Method, Vec<u8>) {
        let (_, method) = self.method().await;
        let header = match self.frame().await {
            (_, FrameKind::Header(payload)) => ContentHeader::decode(payload).unwrap(),
            other => panic!("expected a content header after {method:?}, got {other:?}"),
        };
        let mut body = Vec::new();
        while (body.len() as u64) < header.body_size {
            match self.frame().await {
                (_, FrameKind::Body(data)) => body.extend_from_slice(&data),
                other => panic!("expected a body frame, got {other:?}"),
            }
        }
        (method, body)
    }

    /// Protocol header, start-ok, then tune-ok and open in one write.
    async fn handshake(&mut self) {
        self.send(&[&PROTOCOL_HEADER]).await;
        self.expect_start().await;
        self.login().await;
    }

    async fn expect_start(&mut self) {
        let (_, start) = self.method().await;
        assert!(
            matches!(start, Method::ConnectionStart(_)),
            "expected connection.start, got {start:?}"
        );
    }

    /// start-ok, tune, then tune-ok + open in one message, open-ok.
    async fn login(&mut self) {
        self.send(&[&start_ok_frame()]).await;
        let (_, tune) = self.method().await;
        assert!(matches!(tune, Method::ConnectionTune(_)), "{tune:?}");
        self.send(&[&tune_ok_and_open_frames()]).await;
        let (_, open_ok) = self.method().await;
        assert!(
            matches!(open_ok, Method::ConnectionOpenOk(_)),
            "{open_ok:?}"
        );
    }

    async fn open_channel(&mut self, channel: u16) {
        self.send(&[&frame(channel, ChannelOpen::default().into())])
            .await;
        let (ch, ok) = self.method().await;
        assert_eq!(ch, channel);
        assert!(matches!(ok, Method::ChannelOpenOk(_)), "{ok:?}");
    }

    async fn declare(&mut self, channel: u16, queue: &str) {
        self.send(&[&frame(channel, declare(queue))]).await;
        let (_, ok) = self.method().await;
        assert!(matches!(ok, Method::QueueDeclareOk(_)), "{ok:?}");
    }

    /// `basic.get` with no-ack: the body, or `None` for get-empty.
    async fn get(&mut self, channel: u16, queue: &str) -> Option<Vec<u8>> {
        self.send(&[&frame(channel, get(queue))]).await;
        let (_, method) = self.method().await;
        match method {
            Method::BasicGetEmpty(_) => None,
            Method::BasicGetOk(_) => {
                let header = match self.frame().await {
                    (_, FrameKind::Header(p)) => ContentHeader::decode(p).unwrap(),
                    other => panic!("expected a content header, got {other:?}"),
                };
                let mut body = Vec::new();
                while (body.len() as u64) < header.body_size {
                    match self.frame().await {
                        (_, FrameKind::Body(data)) => body.extend_from_slice(&data),
                        other => panic!("expected a body frame, got {other:?}"),
                    }
                }
                Some(body)
            }
            other => panic!("expected get-ok or get-empty, got {other:?}"),
        }
    }

    /// Waits for the server's close frame (WebSocket only).
    async fn close_code(&mut self) -> Option<CloseCode> {
        let Wire::Ws(s) = &mut self.wire else {
            panic!("not a WebSocket")
        };
        loop {
            match tokio::time::timeout(STEP, s.next()).await {
                Ok(Some(Ok(Message::Close(frame)))) => return frame.map(|f| f.code),
                Ok(Some(Ok(_))) => continue,
                Ok(other) => panic!("expected a close frame, got {other:?}"),
                Err(_) => panic!("no close frame within {STEP:?}"),
            }
        }
    }
}

fn frame(channel: u16, method: Method) -> Vec<u8> {
    let mut out = Vec::new();
    encode_method_frame(&mut out, channel, &method);
    out
}

fn start_ok_frame() -> Vec<u8> {
    frame(
        0,
        ConnectionStartOk {
            mechanism: "PLAIN".into(),
            response: LongStr::from("\0guest\0guest"),
            locale: "en_US".into(),
            ..ConnectionStartOk::default()
        }
        .into(),
    )
}

/// tune-ok and open: two frames the client may send together.
fn tune_ok_and_open_frames() -> Vec<u8> {
    let mut out = frame(
        0,
        ConnectionTuneOk {
            channel_max: 2047,
            frame_max: 131_072,
            heartbeat: 0,
        }
        .into(),
    );
    encode_method_frame(
        &mut out,
        0,
        &ConnectionOpen {
            virtual_host: "/".into(),
            ..ConnectionOpen::default()
        }
        .into(),
    );
    out
}

fn declare(queue: &str) -> Method {
    QueueDeclare {
        queue: queue.into(),
        ..QueueDeclare::default()
    }
    .into()
}

fn get(queue: &str) -> Method {
    BasicGet {
        queue: queue.into(),
        no_ack: true,
        ..BasicGet::default()
    }
    .into()
}

/// basic.publish to the default exchange + content header + body frames (no properties).
fn publish(channel: u16, queue: &str, body: &[u8], frame_max: u32) -> Vec<u8> {
    let mut out = frame(
        channel,
        BasicPublish {
            routing_key: queue.into(),
            ..BasicPublish::default()
        }
        .into(),
    );
    encode_content(&mut out, channel, 60, &[0, 0], body, frame_max);
    out
}

#[tokio::test]
async fn protocol_header_split_across_two_messages() {
    let server = serve(WsConfig::default()).await;
    let mut c = Client::ws(server.ws).await;
    c.send(&[&PROTOCOL_HEADER[..3], &PROTOCOL_HEADER[3..]])
        .await;
    c.expect_start().await;
    c.login().await;
}

#[tokio::test]
async fn a_frame_split_byte_by_byte_across_messages() {
    let server = serve(WsConfig::default()).await;
    let mut c = Client::ws(server.ws).await;
    c.handshake().await;
    let open = frame(1, ChannelOpen::default().into());
    let bytes: Vec<&[u8]> = open.chunks(1).collect();
    assert!(bytes.len() > 8);
    c.send(&bytes).await;
    let (ch, ok) = c.method().await;
    assert_eq!(ch, 1);
    assert!(matches!(ok, Method::ChannelOpenOk(_)), "{ok:?}");
    // A body split over frames and the frames split unevenly over messages.
    c.declare(1, "split").await;
    let body: Vec<u8> = (0..40_000u32).map(|i| (i % 251) as u8).collect();
    let all = publish(1, "split", &body, 4096);
    let pieces: Vec<&[u8]> = all.chunks(1000).collect();
    c.send(&pieces).await;
    assert_eq!(c.get(1, "split").await, Some(body));
}

#[tokio::test]
async fn many_frames_in_one_message() {
    let server = serve(WsConfig::default()).await;
    let mut c = Client::ws(server.ws).await;
    c.handshake().await;
    let mut batch = frame(1, ChannelOpen::default().into());
    batch.extend(frame(1, declare("batch")));
    for i in 0..3 {
        batch.extend(publish(1, "batch", format!("m{i}").as_bytes(), 131_072));
    }
    for _ in 0..4 {
        batch.extend(frame(1, get("batch")));
    }
    c.send(&[&batch]).await;
    assert!(matches!(c.method().await.1, Method::ChannelOpenOk(_)));
    assert!(matches!(c.method().await.1, Method::QueueDeclareOk(_)));
    for i in 0..3 {
        let (method, body) = c.message().await;
        assert!(matches!(method, Method::BasicGetOk(_)), "{method:?}");
        assert_eq!(body, format!("m{i}").as_bytes());
    }
    assert!(matches!(c.method().await.1, Method::BasicGetEmpty(_)));
}

#[tokio::test]
async fn server_batches_deliveries_into_few_messages() {
    let server = serve(WsConfig::default()).await;
    let mut publisher = Client::tcp(server.amqp).await;
    publisher.handshake().await;
    publisher.open_channel(1).await;
    publisher.declare(1, "burst").await;
    let mut burst = Vec::new();
    for i in 0..200 {
        burst.extend(publish(1, "burst", format!("{i}").as_bytes(), 131_072));
    }
    publisher.send(&[&burst]).await;
    // Wait until all 200 are queued: the consumer then gets them in few batches.
    publisher.declare(1, "burst").await;

    let mut consumer = Client::ws(server.ws).await;
    consumer.handshake().await;
    consumer.open_channel(1).await;
    let before = (consumer.messages, consumer.frames);
    let consume = BasicConsume {
        queue: "burst".into(),
        no_ack: true,
        ..BasicConsume::default()
    };
    consumer.send(&[&frame(1, consume.into())]).await;
    assert!(matches!(
        consumer.method().await.1,
        Method::BasicConsumeOk(_)
    ));
    for i in 0..200 {
        let (method, body) = consumer.message().await;
        assert!(matches!(method, Method::BasicDeliver(_)), "{method:?}");
        assert_eq!(body, format!("{i}").as_bytes());
    }
    let messages = consumer.messages - before.0;
    let frames = consumer.frames - before.1;
    assert_eq!(frames, 1 + 3 * 200);
    assert!(
        messages * 10 < frames,
        "{frames} frames came in {messages} WebSocket messages: expected batching"
    );
}

#[tokio::test]
async fn websocket_and_tcp_share_one_broker() {
    let server = serve(WsConfig::default()).await;
    let mut over_ws = Client::ws(server.ws).await;
    let mut over_tcp = Client::tcp(server.amqp).await;
    for c in [&mut over_ws, &mut over_tcp] {
        c.handshake().await;
        c.open_channel(1).await;
        c.declare(1, "to-tcp").await;
        c.declare(1, "to-ws").await;
    }
    over_ws
        .send(&[&publish(1, "to-tcp", b"from ws", 131_072)])
        .await;
    over_tcp
        .send(&[&publish(1, "to-ws", b"from tcp", 131_072)])
        .await;
    // A declare round trip orders each publish before the other side's get.
    over_ws.declare(1, "to-tcp").await;
    over_tcp.declare(1, "to-ws").await;
    assert_eq!(
        over_tcp.get(1, "to-tcp").await.as_deref(),
        Some(&b"from ws"[..])
    );
    assert_eq!(
        over_ws.get(1, "to-ws").await.as_deref(),
        Some(&b"from tcp"[..])
    );
}

#[tokio::test]
async fn text_message_gets_close_1003() {
    let server = serve(WsConfig::default()).await;
    let mut c = Client::ws(server.ws).await;
    c.handshake().await;
    let Wire::Ws(s) = &mut c.wire else {
        unreachable!()
    };
    s.send(Message::text("AMQP")).await.unwrap();
    assert_eq!(c.close_code().await, Some(CloseCode::Unsupported));
}

#[tokio::test]
async fn oversized_message_gets_close_1009() {
    let server = serve(WsConfig {
        max_message_size: 64 * 1024,
        ..WsConfig::default()
    })
    .await;
    let mut c = Client::ws(server.ws).await;
    c.handshake().await;
    c.open_channel(1).await;
    c.declare(1, "big").await;
    // Just under the limit passes, in one message.
    let fits = vec![7u8; 60 * 1024];
    c.send(&[&publish(1, "big", &fits, 131_072)]).await;
    assert_eq!(c.get(1, "big").await, Some(fits));
    c.send(&[&publish(1, "big", &[7u8; 70 * 1024], 131_072)])
        .await;
    assert_eq!(c.close_code().await, Some(CloseCode::Size));
}

#[tokio::test]
async fn ping_flood_gets_close_1008_and_pings_get_pongs() {
    let server = serve(WsConfig {
        max_control_per_sec: 20,
        ..WsConfig::default()
    })
    .await;
    let mut c = Client::ws(server.ws).await;
    c.handshake().await;
    let Wire::Ws(s) = &mut c.wire else {
        unreachable!()
    };
    s.send(Message::Ping(Bytes::from_static(b"hi")))
        .await
        .unwrap();
    match tokio::time::timeout(STEP, s.next()).await {
        Ok(Some(Ok(Message::Pong(data)))) => assert_eq!(&data[..], b"hi"),
        other => panic!("expected a pong, got {other:?}"),
    }
    for i in 0..10_000u32 {
        if s.feed(Message::Ping(i.to_be_bytes().to_vec().into()))
            .await
            .is_err()
        {
            break;
        }
    }
    let _ = s.flush().await;
    assert_eq!(c.close_code().await, Some(CloseCode::Policy));
}

#[tokio::test]
async fn clean_amqp_close_ends_with_websocket_close_1000() {
    let server = serve(WsConfig::default()).await;
    let mut c = Client::ws(server.ws).await;
    c.handshake().await;
    let close = warren_core::codec::ConnectionClose {
        reply_code: 200,
        reply_text: "bye".into(),
        ..Default::default()
    };
    c.send(&[&frame(0, close.into())]).await;
    let (_, ok) = c.method().await;
    assert!(matches!(ok, Method::ConnectionCloseOk(_)), "{ok:?}");
    assert_eq!(c.close_code().await, Some(CloseCode::Normal));
}

#[tokio::test]
async fn subprotocol_amqp_is_echoed_but_not_required() {
    let server = serve(WsConfig::default()).await;
    let url = format!("ws://{}/any/path", server.ws);
    let mut request = url.as_str().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("amqp"));
    let (_, response) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(
        response.headers().get("Sec-WebSocket-Protocol"),
        Some(&HeaderValue::from_static("amqp"))
    );
    let (_, response) = tokio_tungstenite::connect_async(url).await.unwrap();
    assert_eq!(response.headers().get("Sec-WebSocket-Protocol"), None);
}

#[tokio::test]
async fn origin_outside_the_allowed_list_gets_403() {
    let server = serve(WsConfig {
        allowed_origins: vec!["http://app.example".into()],
        ..WsConfig::default()
    })
    .await;
    let connect = |origin: Option<&'static str>| {
        let mut request = format!("ws://{}/ws", server.ws)
            .into_client_request()
            .unwrap();
        if let Some(origin) = origin {
            request
                .headers_mut()
                .insert("Origin", HeaderValue::from_static(origin));
        }
        tokio_tungstenite::connect_async(request)
    };
    match connect(Some("http://evil.example")).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 403),
        other => panic!("expected HTTP 403, got {:?}", other.map(|_| ())),
    }
    assert!(connect(Some("http://app.example")).await.is_ok());
    assert!(
        connect(None).await.is_ok(),
        "non-browser clients send no Origin"
    );
}

/// A self-signed certificate for `localhost`, written to PEM files; the acceptor is built
/// from the files as the binary does.
struct Cert {
    dir: PathBuf,
    der: rustls::pki_types::CertificateDer<'static>,
}

impl Cert {
    fn new() -> Cert {
        let key = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let dir = std::env::temp_dir().join(format!(
            "warren-tls-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("cert.pem"), key.cert.pem()).unwrap();
        std::fs::write(dir.join("key.pem"), key.signing_key.serialize_pem()).unwrap();
        Cert {
            dir,
            der: key.cert.der().clone(),
        }
    }

    fn acceptor(&self) -> tls::TlsAcceptor {
        tls::acceptor(&self.dir.join("cert.pem"), &self.dir.join("key.pem")).unwrap()
    }

    async fn connect(&self, addr: SocketAddr) -> Box<dyn Stream> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).unwrap();
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        Box::new(
            tokio::time::timeout(STEP, connector.connect(name, tcp))
                .await
                .expect("TLS handshake in time")
                .expect("TLS handshake"),
        )
    }
}

impl Drop for Cert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn amqps_and_wss_share_one_broker() {
    let cert = Cert::new();
    let hub = hub();
    let (amqps_l, amqps) = listener().await;
    let (wss_l, wss) = listener().await;
    tokio::spawn(tls::serve(
        amqps_l,
        cert.acceptor(),
        hub.clone(),
        connection_config(),
    ));
    tokio::spawn(ws::serve(
        wss_l,
        hub,
        connection_config(),
        Arc::new(WsConfig::default()),
        Some(cert.acceptor()),
    ));
    let mut over_wss = Client::ws_over(cert.connect(wss).await, "wss://localhost/ws").await;
    let mut over_amqps = Client::new(Wire::Stream(cert.connect(amqps).await));
    for c in [&mut over_wss, &mut over_amqps] {
        c.handshake().await;
        c.open_channel(1).await;
        c.declare(1, "tls").await;
    }
    let body = vec![42u8; 300_000];
    over_wss.send(&[&publish(1, "tls", &body, 131_072)]).await;
    over_wss.declare(1, "tls").await;
    assert_eq!(over_amqps.get(1, "tls").await, Some(body));
}

#[test]
fn tls_files_that_are_not_pem_are_refused_with_their_name() {
    let cert = Cert::new();
    let bogus = cert.dir.join("bogus.pem");
    std::fs::write(&bogus, "not a certificate").unwrap();
    let err = tls::server_config(&bogus, &cert.dir.join("key.pem")).unwrap_err();
    assert!(err.to_string().contains("bogus.pem"), "{err}");
    let err = tls::server_config(&cert.dir.join("cert.pem"), &bogus).unwrap_err();
    assert!(err.to_string().contains("bogus.pem"), "{err}");
}

/// Any page can open `ws://127.0.0.1:…`; its connection comes from loopback, where `guest` may
/// log in. Without allowed origins, a request with an `Origin` (a browser's) does not count as
/// this machine: `guest`, loopback-only, is refused there (the socket closes after start-ok,
/// as for a wrong password). Clients outside browsers send no `Origin` and log in as before;
/// with allowed origins configured, an allowed page may use `guest`.
#[tokio::test]
async fn a_browser_page_cannot_log_in_as_guest_unless_origins_are_configured() {
    async fn from_page(ws: SocketAddr) -> Client {
        let mut request = format!("ws://{ws}/ws").into_client_request().unwrap();
        request
            .headers_mut()
            .insert("Origin", HeaderValue::from_static("http://page.example"));
        let (socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let socket: WebSocketStream<Box<dyn Stream>> = WebSocketStream::from_raw_socket(
            Box::new(socket.into_inner()) as Box<dyn Stream>,
            tokio_tungstenite::tungstenite::protocol::Role::Client,
            None,
        )
        .await;
        Client::new(Wire::Ws(Box::new(socket)))
    }
    let open = serve(WsConfig::default()).await;
    let mut page = from_page(open.ws).await;
    page.send(&[&PROTOCOL_HEADER]).await;
    page.expect_start().await;
    page.send(&[&start_ok_frame()]).await;
    let Wire::Ws(s) = &mut page.wire else {
        unreachable!()
    };
    loop {
        match tokio::time::timeout(STEP, s.next()).await {
            Ok(Some(Ok(Message::Binary(data)))) => {
                panic!("guest logged in from a page: {data:?}")
            }
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => break,
            Ok(Some(Ok(_))) => continue,
            Err(_) => panic!("the refused connection stayed open"),
        }
    }
    let mut tool = Client::ws(open.ws).await;
    tool.handshake().await;

    let configured = serve(WsConfig {
        allowed_origins: vec!["http://page.example".into()],
        ..WsConfig::default()
    })
    .await;
    let mut allowed = from_page(configured.ws).await;
    allowed.handshake().await;
}
