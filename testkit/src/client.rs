//! The client: what it decoded (methods, assembled deliveries, frame facts) and the helpers
//! tests build expectations with.

use std::collections::HashMap;

use crate::frames::{close_ok_for, encode_publish};

use bytes::{Bytes, BytesMut};
use warren_core::codec::{
    decode_frame, encode_method_frame, BasicProperties, BasicPublish, ChannelClose,
    ConnectionClose, ContentHeader, FrameKind, Method, ShortStr, FRAME_BODY, FRAME_HEADER,
    FRAME_HEARTBEAT, FRAME_METHOD,
};

/// One thing the client decoded from the server's bytes. Heartbeats are counted, not listed
/// (see [`Client::heartbeats_received`]), so that assertions do not depend on idle time.
#[derive(Clone, Debug, PartialEq)]
pub enum Received {
    /// A method without content.
    Method { channel: u16, method: Method },
    /// `basic.deliver`, `basic.get-ok` or `basic.return` with its assembled content.
    Delivery(Box<Delivery>),
    /// Eight bytes of protocol header (the server's answer to a header it does not speak).
    ProtocolHeader([u8; 8]),
}

/// A content-carrying method and its content, assembled from header and body frames.
#[derive(Clone, Debug, PartialEq)]
pub struct Delivery {
    pub channel: u16,
    pub method: Method,
    pub properties: BasicProperties,
    pub body: Bytes,
}

impl Delivery {
    pub fn delivery_tag(&self) -> u64 {
        match &self.method {
            Method::BasicDeliver(d) => d.delivery_tag,
            Method::BasicGetOk(g) => g.delivery_tag,
            m => panic!("{} has no delivery tag", m.name()),
        }
    }

    pub fn redelivered(&self) -> bool {
        match &self.method {
            Method::BasicDeliver(d) => d.redelivered,
            Method::BasicGetOk(g) => g.redelivered,
            m => panic!("{} has no redelivered flag", m.name()),
        }
    }

    pub fn consumer_tag(&self) -> &str {
        match &self.method {
            Method::BasicDeliver(d) => d.consumer_tag.as_str(),
            m => panic!("{} has no consumer tag", m.name()),
        }
    }

    pub fn exchange(&self) -> &str {
        match &self.method {
            Method::BasicDeliver(d) => d.exchange.as_str(),
            Method::BasicGetOk(g) => g.exchange.as_str(),
            Method::BasicReturn(r) => r.exchange.as_str(),
            m => panic!("{} has no exchange", m.name()),
        }
    }

    pub fn routing_key(&self) -> &str {
        match &self.method {
            Method::BasicDeliver(d) => d.routing_key.as_str(),
            Method::BasicGetOk(g) => g.routing_key.as_str(),
            Method::BasicReturn(r) => r.routing_key.as_str(),
            m => panic!("{} has no routing key", m.name()),
        }
    }

    pub fn body_str(&self) -> &str {
        std::str::from_utf8(&self.body).expect("body is UTF-8")
    }
}

impl Received {
    /// The method, whether or not it carried content.
    pub fn method(&self) -> Option<&Method> {
        match self {
            Received::Method { method, .. } => Some(method),
            Received::Delivery(d) => Some(&d.method),
            Received::ProtocolHeader(_) => None,
        }
    }

    pub fn delivery(&self) -> Option<&Delivery> {
        match self {
            Received::Delivery(d) => Some(d.as_ref()),
            _ => None,
        }
    }
}

/// `Received::Method` in one short call.
pub fn method(channel: u16, m: impl Into<Method>) -> Received {
    Received::Method {
        channel,
        method: m.into(),
    }
}

/// The `channel.close` a server sends for a channel error.
pub fn channel_close(
    channel: u16,
    code: u16,
    text: &str,
    class_id: u16,
    method_id: u16,
) -> Received {
    method(
        channel,
        ChannelClose {
            reply_code: code,
            reply_text: text.into(),
            class_id,
            method_id,
        },
    )
}

/// The `connection.close` a server sends for a connection error.
pub fn connection_close(code: u16, text: &str, class_id: u16, method_id: u16) -> Received {
    method(
        0,
        ConnectionClose {
            reply_code: code,
            reply_text: text.into(),
            class_id,
            method_id,
        },
    )
}

/// Every delivery (deliver, get-ok, return) in `r`, in order.
pub fn deliveries(r: &[Received]) -> Vec<&Delivery> {
    r.iter().filter_map(Received::delivery).collect()
}

/// The bodies of every delivery in `r`, as strings.
pub fn bodies(r: &[Received]) -> Vec<&str> {
    deliveries(r).into_iter().map(Delivery::body_str).collect()
}

/// Everything in `r` that is not a delivery.
pub fn methods(r: &[Received]) -> Vec<&Method> {
    r.iter()
        .filter(|x| x.delivery().is_none())
        .filter_map(Received::method)
        .collect()
}

/// Properties marking a message persistent (`delivery_mode = 2`).
pub fn persistent() -> BasicProperties {
    BasicProperties {
        delivery_mode: Some(2),
        ..Default::default()
    }
}

/// Properties marking a message transient (`delivery_mode = 1`).
pub fn transient() -> BasicProperties {
    BasicProperties {
        delivery_mode: Some(1),
        ..Default::default()
    }
}

/// Facts about one frame the client received (for assertions on framing).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameInfo {
    pub kind: u8,
    pub channel: u16,
    /// Whole frame size, overhead included (what frame_max limits).
    pub size: usize,
}

/// Content being assembled on one channel.
struct Partial {
    method: Method,
    header: Option<(u64, BasicProperties)>,
    body: Vec<u8>,
}

/// A minimal AMQP 0-9-1 client: encodes what tests ask for, decodes what the server wrote.
pub struct Client {
    /// Bytes waiting to go to the server.
    pub out: Vec<u8>,
    input: BytesMut,
    received: Vec<Received>,
    assembling: HashMap<u16, Partial>,
    /// frame_max used to split outgoing content (set from tune-ok by `handshake`).
    pub frame_max: u32,
    /// Every frame received, in order.
    pub frames: Vec<FrameInfo>,
    pub heartbeats_received: usize,
    /// The server closed the socket (after flushing its output).
    pub socket_closed: bool,
    /// Answer `connection.close` / `channel.close` from the server with close-ok, as client
    /// libraries do.
    pub auto_close_ok: bool,
    /// Send a heartbeat whenever this long has passed without sending anything.
    pub heartbeat_every_ms: Option<u64>,
    pub last_send_ms: u64,
    pub heartbeats_sent: usize,
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}

impl Client {
    /// A client that has sent nothing (the world connects it).
    pub fn new() -> Self {
        Client {
            out: Vec::new(),
            input: BytesMut::new(),
            received: Vec::new(),
            assembling: HashMap::new(),
            frame_max: 131_072,
            frames: Vec::new(),
            heartbeats_received: 0,
            socket_closed: false,
            auto_close_ok: true,
            heartbeat_every_ms: None,
            last_send_ms: 0,
            heartbeats_sent: 0,
        }
    }

    /// Takes everything decoded so far.
    pub fn take(&mut self) -> Vec<Received> {
        std::mem::take(&mut self.received)
    }

    pub fn queue_method(&mut self, channel: u16, m: impl Into<Method>) {
        encode_method_frame(&mut self.out, channel, &m.into());
    }

    /// Queues a publish: method, content header, and body frames cut to `frame_max`.
    pub fn queue_publish(
        &mut self,
        channel: u16,
        publish: BasicPublish,
        props: &BasicProperties,
        body: &[u8],
    ) {
        encode_publish(&mut self.out, channel, publish, props, body, self.frame_max);
    }

    /// Decodes whatever complete frames the server has sent.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.input.extend_from_slice(bytes);
        if self.frames.is_empty()
            && self.input.len() >= 8
            && self.input.starts_with(b"AMQP")
            && !self
                .received
                .iter()
                .any(|r| matches!(r, Received::ProtocolHeader(_)))
        {
            let head = self.input.split_to(8);
            let mut h = [0u8; 8];
            h.copy_from_slice(&head);
            self.received.push(Received::ProtocolHeader(h));
        }
        if self.frames.is_empty() && self.input.starts_with(b"AMQP") {
            return;
        }
        loop {
            let before = self.input.len();
            let frame = match decode_frame(&mut self.input, 0) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => panic!("client: server sent bytes that do not frame: {e}"),
            };
            let size = before - self.input.len();
            let (kind, payload) = match frame.kind {
                FrameKind::Method(p) => (FRAME_METHOD, Some(p)),
                FrameKind::Header(p) => (FRAME_HEADER, Some(p)),
                FrameKind::Body(p) => (FRAME_BODY, Some(p)),
                FrameKind::Heartbeat => (FRAME_HEARTBEAT, None),
            };
            self.frames.push(FrameInfo {
                kind,
                channel: frame.channel,
                size,
            });
            let ch = frame.channel;
            match (kind, payload) {
                (FRAME_METHOD, Some(p)) => {
                    assert!(
                        !self.assembling.contains_key(&ch),
                        "client: method frame on channel {ch} in the middle of content"
                    );
                    let m = Method::decode(&p)
                        .unwrap_or_else(|e| panic!("client: undecodable method: {e}"));
                    if m.has_content() {
                        self.assembling.insert(
                            ch,
                            Partial {
                                method: m,
                                header: None,
                                body: Vec::new(),
                            },
                        );
                    } else {
                        self.on_method(ch, m);
                    }
                }
                (FRAME_HEADER, Some(p)) => {
                    let partial = self
                        .assembling
                        .get_mut(&ch)
                        .unwrap_or_else(|| panic!("client: content header without method"));
                    assert!(partial.header.is_none(), "client: second content header");
                    let h = ContentHeader::decode(p).expect("client: content header decodes");
                    assert_eq!(h.class_id, BasicPublish::CLASS_ID);
                    let props =
                        BasicProperties::decode(&h.properties).expect("client: properties decode");
                    partial.header = Some((h.body_size, props));
                    if h.body_size == 0 {
                        self.complete(ch);
                    }
                }
                (FRAME_BODY, Some(p)) => {
                    let partial = self
                        .assembling
                        .get_mut(&ch)
                        .unwrap_or_else(|| panic!("client: body frame without method"));
                    let (size, _) = partial
                        .header
                        .as_ref()
                        .unwrap_or_else(|| panic!("client: body frame before header"));
                    let size = *size;
                    partial.body.extend_from_slice(&p);
                    assert!(
                        partial.body.len() as u64 <= size,
                        "client: body longer than its header said"
                    );
                    if partial.body.len() as u64 == size {
                        self.complete(ch);
                    }
                }
                _ => {
                    assert_eq!(ch, 0, "client: heartbeat on channel {ch}");
                    self.heartbeats_received += 1;
                }
            }
        }
    }

    fn complete(&mut self, ch: u16) {
        let p = self.assembling.remove(&ch).expect("assembling");
        let (_, properties) = p.header.expect("header");
        self.received.push(Received::Delivery(Box::new(Delivery {
            channel: ch,
            method: p.method,
            properties,
            body: Bytes::from(p.body),
        })));
    }

    fn on_method(&mut self, channel: u16, m: Method) {
        if self.auto_close_ok {
            if let Some(ok) = close_ok_for(&m) {
                self.queue_method(channel, ok);
            }
        }
        self.received.push(Received::Method { channel, method: m });
    }
}

/// A `ShortStr` from a `&str`, for building expected methods.
pub fn s(x: &str) -> ShortStr {
    ShortStr::from(x)
}
