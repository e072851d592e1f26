//! Scenario-test harness: one [`Broker`], N server-side [`Connection`]s, and for each a tiny
//! AMQP client written on the core's own codec, all on virtual time.
//!
//! In the style of quinn-proto's `Pair::drive()`: [`World::drive`] shuttles client bytes into
//! the server connections, their commands into the broker, the broker's events back into the
//! connections and the connections' output back to the clients, until nothing moves. Nothing
//! here reads a clock: [`World::advance`] moves virtual time and fires every timer that falls
//! due on the way.
//!
//! Client operations ([`ClientHandle`]) send, drive, and return what the client decoded since
//! the last call ([`Received`]), so tests assert exactly what a real client would see.
//!
//! The client is strict: it panics on anything a correct server must never send (a frame
//! that does not decode, content out of sequence, a body longer than its header said), so
//! every scenario also checks the server's framing.
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use warren_core::auth::StaticUsers;
use warren_core::broker::{Broker, BrokerConfig};
use warren_core::codec::{
    decode_frame, encode_content, encode_heartbeat, encode_method_frame, BasicAck, BasicCancel,
    BasicConsume, BasicGet, BasicNack, BasicProperties, BasicPublish, BasicQos, BasicRecover,
    BasicReject, ChannelClose, ChannelCloseOk, ChannelOpen, ConfirmSelect, ConnectionClose,
    ConnectionCloseOk, ConnectionOpen, ConnectionStartOk, ConnectionTuneOk, ContentHeader,
    ExchangeBind, ExchangeDeclare, FieldTable, FieldValue, FrameKind, LongStr, Method, QueueBind,
    QueueDeclare, QueueDeclareOk, QueueDelete, ShortStr, TxCommit, TxRollback, TxSelect,
    FRAME_BODY, FRAME_HEADER, FRAME_HEARTBEAT, FRAME_METHOD, PROTOCOL_HEADER,
};
use warren_core::connection::{Connection, ConnectionConfig};
use warren_core::storage::{
    BindingRecord, ExchangeRecord, MemoryStorage, MessageRecord, QueueRecord, Recovered, Storage,
};
use warren_core::{ConnId, Pump};

// ---------------------------------------------------------------------------------------------
// What the client sees
// ---------------------------------------------------------------------------------------------

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

/// A field table of long-string values.
pub fn table(entries: &[(&str, &str)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in entries {
        t.insert(*k, FieldValue::LongStr(LongStr::from(*v)));
    }
    t
}

// ---------------------------------------------------------------------------------------------
// Shared storage
// ---------------------------------------------------------------------------------------------

/// A [`Storage`] that forwards to a shared [`MemoryStorage`], so a test can keep a handle on
/// what a broker stored and build a second broker over it.
#[derive(Clone, Default)]
pub struct SharedStorage(pub Arc<Mutex<MemoryStorage>>);

impl SharedStorage {
    pub fn new(inner: MemoryStorage) -> Self {
        SharedStorage(Arc::new(Mutex::new(inner)))
    }

    /// A copy of what is stored now.
    pub fn snapshot(&self) -> MemoryStorage {
        self.lock().clone()
    }

    pub fn message_count(&self) -> usize {
        self.lock().message_count()
    }

    /// What a broker starting now would recover.
    pub fn load(&self) -> Recovered {
        self.lock().load()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryStorage> {
        self.0.lock().expect("storage lock")
    }
}

impl Storage for SharedStorage {
    fn save_exchange(&mut self, vhost: &str, record: &ExchangeRecord) {
        self.lock().save_exchange(vhost, record)
    }
    fn delete_exchange(&mut self, vhost: &str, name: &str) {
        self.lock().delete_exchange(vhost, name)
    }
    fn save_queue(&mut self, record: &QueueRecord) {
        self.lock().save_queue(record)
    }
    fn delete_queue(&mut self, vhost: &str, name: &str) {
        self.lock().delete_queue(vhost, name)
    }
    fn save_binding(&mut self, vhost: &str, record: &BindingRecord) {
        self.lock().save_binding(vhost, record)
    }
    fn delete_binding(&mut self, vhost: &str, record: &BindingRecord) {
        self.lock().delete_binding(vhost, record)
    }
    fn save_message(&mut self, vhost: &str, queue: &str, record: &MessageRecord) {
        self.lock().save_message(vhost, queue, record)
    }
    fn delete_message(&mut self, vhost: &str, queue: &str, id: u64) {
        self.lock().delete_message(vhost, queue, id)
    }
    fn mark_delivered(&mut self, vhost: &str, queue: &str, id: u64) {
        self.lock().mark_delivered(vhost, queue, id)
    }
    fn load(&mut self) -> Recovered {
        self.lock().load()
    }
}

// ---------------------------------------------------------------------------------------------
// The client
// ---------------------------------------------------------------------------------------------

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

impl Client {
    fn new() -> Self {
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
        self.queue_method(channel, publish);
        let mut raw = Vec::new();
        props.encode(&mut raw);
        encode_content(
            &mut self.out,
            channel,
            BasicPublish::CLASS_ID,
            &raw,
            body,
            self.frame_max,
        );
    }

    /// Decodes whatever complete frames the server has sent.
    fn feed(&mut self, bytes: &[u8]) {
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
            match &m {
                Method::ConnectionClose(_) => self.queue_method(0, ConnectionCloseOk),
                Method::ChannelClose(_) => self.queue_method(channel, ChannelCloseOk),
                _ => {}
            }
        }
        self.received.push(Received::Method { channel, method: m });
    }
}

// ---------------------------------------------------------------------------------------------
// The world
// ---------------------------------------------------------------------------------------------

/// Identifies one client/connection pair in a [`World`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cid(pub usize);

struct Peer {
    id: ConnId,
    client: Client,
    /// The client hung up (EOF already given to the server).
    client_gone: bool,
    /// The client reads what reaches it, so the server hears its output written (and returns
    /// delivery credit) as it is delivered. Off: the bytes still reach the client, for the
    /// test to see, but count as written only at [`World::return_credit`] — a slow reader.
    reads: bool,
    /// Bytes delivered to the client and not yet reported written (with `reads` off).
    unread: usize,
}

/// Cuts byte streams into pieces, for the byte-splitting property test.
struct Chunker {
    sizes: Vec<usize>,
    next: usize,
}

impl Chunker {
    fn next_size(&mut self) -> usize {
        let s = self.sizes[self.next % self.sizes.len()].max(1);
        self.next += 1;
        s
    }
}

/// A broker and its connections (the core's [`Pump`]), their clients, and the virtual clock.
pub struct World {
    pump: Pump,
    pub storage: SharedStorage,
    /// Virtual time in milliseconds.
    pub now: u64,
    /// Configuration for connections made by [`World::connect`].
    pub conn_config: ConnectionConfig,
    peers: Vec<Peer>,
    chunker: Option<Chunker>,
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

impl World {
    /// A broker with `guest`/`guest` and empty memory storage.
    pub fn new() -> Self {
        Self::with_storage(SharedStorage::default())
    }

    /// A broker that recovers from (and writes to) `storage`.
    pub fn with_storage(storage: SharedStorage) -> Self {
        let broker = Broker::new(
            BrokerConfig::default(),
            Box::new(StaticUsers::with_guest()),
            Box::new(storage.clone()),
        );
        World {
            pump: Pump::new(broker, ConnectionConfig::default()),
            storage,
            now: 0,
            conn_config: ConnectionConfig::default(),
            peers: Vec::new(),
            chunker: None,
        }
    }

    pub fn broker(&self) -> &Broker {
        self.pump.broker()
    }

    /// Feeds every byte stream (both ways) in pieces of these sizes, cycling.
    pub fn set_chunking(&mut self, sizes: Vec<usize>) {
        assert!(!sizes.is_empty());
        self.chunker = Some(Chunker { sizes, next: 0 });
    }

    /// A new connection with [`World::conn_config`]; nothing is sent yet.
    pub fn connect(&mut self) -> Cid {
        let config = self.conn_config.clone();
        self.connect_with(config)
    }

    pub fn connect_with(&mut self, config: ConnectionConfig) -> Cid {
        let n = self.peers.len();
        let mut client = Client::new();
        client.last_send_ms = self.now;
        let id = self.pump.connect_with(config, self.now);
        self.peers.push(Peer {
            id,
            client,
            client_gone: false,
            reads: true,
            unread: 0,
        });
        Cid(n)
    }

    /// A new connection that has completed the handshake (PLAIN guest/guest).
    pub fn connect_open(&mut self) -> Cid {
        let c = self.connect();
        self.client(c).handshake();
        c
    }

    /// A new open connection with channel 1 open.
    pub fn connect_channel(&mut self) -> Cid {
        let c = self.connect_open();
        self.client(c).open_channel(1);
        c
    }

    pub fn client(&mut self, c: Cid) -> ClientHandle<'_> {
        ClientHandle { world: self, c }
    }

    pub fn client_state(&mut self, c: Cid) -> &mut Client {
        &mut self.peers[c.0].client
    }

    /// The server side of connection `c` (while the pump has it).
    pub fn server(&self, c: Cid) -> &Connection {
        self.pump
            .connection(self.peers[c.0].id)
            .expect("the connection is still in the pump")
    }

    pub fn conn_id(&self, c: Cid) -> ConnId {
        self.peers[c.0].id
    }

    /// Makes client `c` a slow reader: what reaches it counts as written only at
    /// [`World::return_credit`].
    pub fn stop_reading(&mut self, c: Cid) {
        self.peers[c.0].reads = false;
    }

    /// Client `c` has read everything that reached it: the server hears it written, which
    /// returns delivery credit as the core's rule has it.
    pub fn return_credit(&mut self, c: Cid) {
        let p = &mut self.peers[c.0];
        let unread = std::mem::take(&mut p.unread);
        let id = p.id;
        self.pump.handle_written(id, unread);
        self.drive();
    }

    /// Shuttles bytes, commands and events until nothing moves.
    pub fn drive(&mut self) {
        for _ in 0..10_000 {
            if !self.step() {
                return;
            }
        }
        panic!("world did not quiesce");
    }

    /// One round over every peer; true if anything moved.
    fn step(&mut self) -> bool {
        let mut moved = false;
        for i in 0..self.peers.len() {
            let p = &mut self.peers[i];
            if p.client.out.is_empty() {
                continue;
            }
            let data = std::mem::take(&mut p.client.out);
            moved = true;
            if p.client_gone || p.client.socket_closed {
                continue; // nobody is listening any more
            }
            p.client.last_send_ms = self.now;
            let id = p.id;
            match self.chunker.as_mut() {
                None => self.pump.handle_input(id, &data, self.now),
                Some(_) => {
                    let mut rest = &data[..];
                    while !rest.is_empty() {
                        let n = self.chunker.as_mut().expect("chunker").next_size();
                        let (piece, tail) = rest.split_at(n.min(rest.len()));
                        rest = tail;
                        self.pump.handle_input(id, piece, self.now);
                    }
                }
            }
        }
        moved | self.deliver_output()
    }

    /// The pump's output to the clients; true if anything moved.
    fn deliver_output(&mut self) -> bool {
        let mut moved = false;
        loop {
            let ready = self.pump.take_ready();
            if ready.is_empty() {
                return moved;
            }
            moved = true;
            for id in ready {
                let out = self.pump.take_output(id);
                let Some(p) = self.peers.iter_mut().find(|p| p.id == id) else {
                    continue;
                };
                if !out.is_empty() && !p.client_gone {
                    match self.chunker.as_mut() {
                        None => p.client.feed(&out),
                        Some(ch) => {
                            let mut rest = &out[..];
                            while !rest.is_empty() {
                                let n = ch.next_size();
                                let (piece, tail) = rest.split_at(n.min(rest.len()));
                                rest = tail;
                                p.client.feed(piece);
                            }
                        }
                    }
                }
                if self.pump.is_closed(id) {
                    p.client.socket_closed = true;
                }
                if out.is_empty() {
                    continue;
                }
                if p.reads {
                    self.pump.handle_written(id, out.len());
                } else {
                    p.unread += out.len();
                }
            }
        }
    }

    /// Moves virtual time forward by `ms`, firing every server timer and client heartbeat that
    /// falls due on the way, in time order.
    pub fn advance(&mut self, ms: u64) {
        let target = self.now + ms;
        let mut fired = 0u32;
        while let Some(t) = self.next_timer().filter(|&t| t <= target) {
            fired += 1;
            assert!(
                fired < 1_000_000,
                "a timer keeps firing at {t} ms without moving on"
            );
            self.now = self.now.max(t);
            self.fire_timers();
        }
        self.now = target;
        self.fire_timers();
    }

    /// Moves virtual time to `t` (absolute).
    pub fn advance_to(&mut self, t: u64) {
        assert!(t >= self.now);
        self.advance(t - self.now);
    }

    /// Moves virtual time to `t` without firing any timer: the host's timer is late (a
    /// suspended tab, a busy thread). Inputs until the next [`World::advance`] carry `t`.
    pub fn jump_to(&mut self, t: u64) {
        assert!(t >= self.now);
        self.now = t;
    }

    fn next_timer(&self) -> Option<u64> {
        let server = self.pump.poll_timeout();
        self.peers
            .iter()
            .map(|p| {
                if p.client_gone || p.client.socket_closed {
                    None
                } else {
                    p.client
                        .heartbeat_every_ms
                        .map(|every| p.client.last_send_ms + every)
                }
            })
            .chain([server])
            .flatten()
            .min()
    }

    fn fire_timers(&mut self) {
        let now = self.now;
        self.pump.handle_timeout(now);
        for p in &mut self.peers {
            if let Some(every) = p.client.heartbeat_every_ms {
                if !p.client_gone && !p.client.socket_closed && p.client.last_send_ms + every <= now
                {
                    encode_heartbeat(&mut p.client.out);
                    p.client.heartbeats_sent += 1;
                }
            }
        }
        self.drive();
    }
}

// ---------------------------------------------------------------------------------------------
// Client operations
// ---------------------------------------------------------------------------------------------

/// How the client logs in and tunes.
#[derive(Clone, Debug)]
pub struct Handshake {
    /// "PLAIN" or "AMQPLAIN" (anything else is sent as is, with a PLAIN response).
    pub mechanism: &'static str,
    pub username: &'static str,
    pub password: &'static str,
    /// Capabilities announced in client-properties (each set to true).
    pub capabilities: Vec<&'static str>,
    /// `None`: echo the server's tune values.
    pub tune_ok: Option<ConnectionTuneOk>,
    pub vhost: &'static str,
}

impl Default for Handshake {
    fn default() -> Self {
        Handshake {
            mechanism: "PLAIN",
            username: "guest",
            password: "guest",
            capabilities: vec![
                "authentication_failure_close",
                "basic.nack",
                "connection.blocked",
                "consumer_cancel_notify",
                "publisher_confirms",
            ],
            tune_ok: None,
            vhost: "/",
        }
    }
}

impl Handshake {
    /// The `connection.start-ok` this handshake sends.
    pub fn start_ok(&self) -> ConnectionStartOk {
        let mut caps = FieldTable::default();
        for c in &self.capabilities {
            caps.insert(*c, FieldValue::Bool(true));
        }
        let mut props = table(&[("product", "warren-core tests"), ("platform", "Rust")]);
        props.insert("capabilities", FieldValue::Table(caps));
        let response = if self.mechanism == "AMQPLAIN" {
            let mut t = FieldTable::default();
            t.insert("LOGIN", FieldValue::LongStr(self.username.into()));
            t.insert("PASSWORD", FieldValue::LongStr(self.password.into()));
            let mut raw = Vec::new();
            t.encode(&mut raw);
            LongStr::from(raw[4..].to_vec())
        } else {
            LongStr::from(format!("\0{}\0{}", self.username, self.password))
        };
        ConnectionStartOk {
            client_properties: props,
            mechanism: self.mechanism.into(),
            response,
            locale: "en_US".into(),
        }
    }
}

/// A client and the world it lives in: every operation sends, drives the world until it is
/// quiet, and returns what this client received meanwhile (and before, if not yet taken).
pub struct ClientHandle<'w> {
    world: &'w mut World,
    c: Cid,
}

impl ClientHandle<'_> {
    fn state(&mut self) -> &mut Client {
        &mut self.world.peers[self.c.0].client
    }

    /// Drives the world and returns everything this client received and has not yet taken.
    pub fn flush(&mut self) -> Vec<Received> {
        self.world.drive();
        self.state().take()
    }

    /// Returns what arrived without sending anything.
    pub fn take(&mut self) -> Vec<Received> {
        self.flush()
    }

    pub fn send_raw(&mut self, bytes: &[u8]) -> Vec<Received> {
        self.state().out.extend_from_slice(bytes);
        self.flush()
    }

    pub fn send(&mut self, channel: u16, m: impl Into<Method>) -> Vec<Received> {
        self.state().queue_method(channel, m);
        self.flush()
    }

    pub fn send_heartbeat(&mut self) -> Vec<Received> {
        encode_heartbeat(&mut self.state().out);
        self.flush()
    }

    /// The client hangs up (the server sees EOF).
    pub fn disconnect(&mut self) {
        let p = &mut self.world.peers[self.c.0];
        p.client_gone = true;
        let id = p.id;
        let now = self.world.now;
        self.world.pump.handle_eof(id, now);
        self.world.drive();
    }

    pub fn is_socket_closed(&mut self) -> bool {
        self.state().socket_closed
    }

    pub fn server(&self) -> &Connection {
        self.world.server(self.c)
    }

    /// Runs the handshake with `h`; returns everything received on the way (start, tune,
    /// open-ok or whatever came instead).
    pub fn handshake_with(&mut self, h: &Handshake) -> Vec<Received> {
        let mut all = self.send_raw(&PROTOCOL_HEADER);
        assert!(
            matches!(
                all.first().and_then(Received::method),
                Some(Method::ConnectionStart(_))
            ),
            "expected connection.start, got {all:?}"
        );
        let r = self.send(0, h.start_ok());
        let tune = match r.first().and_then(Received::method) {
            Some(Method::ConnectionTune(t)) => t.clone(),
            _ => {
                all.extend(r);
                return all;
            }
        };
        all.extend(r);
        let ok = h.tune_ok.clone().unwrap_or(ConnectionTuneOk {
            channel_max: tune.channel_max,
            frame_max: tune.frame_max,
            heartbeat: tune.heartbeat,
        });
        self.state().frame_max = ok.frame_max;
        self.state().queue_method(0, ok);
        let r = self.send(
            0,
            ConnectionOpen {
                virtual_host: h.vhost.into(),
                ..Default::default()
            },
        );
        all.extend(r);
        all
    }

    /// PLAIN guest/guest, echoing the server's tune values, vhost "/"; asserts it worked.
    pub fn handshake(&mut self) {
        let r = self.handshake_with(&Handshake::default());
        assert!(
            matches!(
                r.last().and_then(Received::method),
                Some(Method::ConnectionOpenOk(_))
            ),
            "handshake failed: {r:?}"
        );
    }

    pub fn open_channel(&mut self, channel: u16) {
        let r = self.send(channel, ChannelOpen::default());
        assert!(
            matches!(
                r.as_slice(),
                [Received::Method {
                    method: Method::ChannelOpenOk(_),
                    ..
                }]
            ),
            "channel.open failed: {r:?}"
        );
    }

    pub fn close_channel(&mut self, channel: u16) -> Vec<Received> {
        self.send(
            channel,
            ChannelClose {
                reply_code: 200,
                reply_text: "bye".into(),
                class_id: 0,
                method_id: 0,
            },
        )
    }

    pub fn close_connection(&mut self) -> Vec<Received> {
        self.send(
            0,
            ConnectionClose {
                reply_code: 200,
                reply_text: "bye".into(),
                class_id: 0,
                method_id: 0,
            },
        )
    }

    /// Sends `queue.declare` and returns the raw replies.
    pub fn queue_declare(&mut self, channel: u16, m: QueueDeclare) -> Vec<Received> {
        self.send(channel, m)
    }

    /// Declares a plain (non-durable) queue; asserts declare-ok.
    pub fn declare_queue(&mut self, channel: u16, name: &str) -> QueueDeclareOk {
        self.declare_queue_with(
            channel,
            QueueDeclare {
                queue: name.into(),
                ..Default::default()
            },
        )
    }

    /// Sends `queue.declare`; asserts declare-ok.
    pub fn declare_queue_with(&mut self, channel: u16, m: QueueDeclare) -> QueueDeclareOk {
        let r = self.send(channel, m);
        match r.as_slice() {
            [Received::Method {
                method: Method::QueueDeclareOk(ok),
                ..
            }] => ok.clone(),
            _ => panic!("queue.declare failed: {r:?}"),
        }
    }

    pub fn delete_queue(&mut self, channel: u16, name: &str) -> Vec<Received> {
        self.send(
            channel,
            QueueDelete {
                queue: name.into(),
                ..Default::default()
            },
        )
    }

    /// Declares a non-durable exchange; asserts declare-ok.
    pub fn declare_exchange(&mut self, channel: u16, name: &str, kind: &str) {
        self.declare_exchange_with(
            channel,
            ExchangeDeclare {
                exchange: name.into(),
                kind: kind.into(),
                ..Default::default()
            },
        )
    }

    pub fn declare_exchange_with(&mut self, channel: u16, m: ExchangeDeclare) {
        let r = self.send(channel, m);
        assert!(
            matches!(
                r.as_slice(),
                [Received::Method {
                    method: Method::ExchangeDeclareOk(_),
                    ..
                }]
            ),
            "exchange.declare failed: {r:?}"
        );
    }

    /// Binds; asserts bind-ok.
    pub fn bind_queue(&mut self, channel: u16, queue: &str, exchange: &str, rk: &str) {
        self.bind_queue_with(channel, queue, exchange, rk, FieldTable::default())
    }

    pub fn bind_queue_with(
        &mut self,
        channel: u16,
        queue: &str,
        exchange: &str,
        rk: &str,
        arguments: FieldTable,
    ) {
        let r = self.send(
            channel,
            QueueBind {
                queue: queue.into(),
                exchange: exchange.into(),
                routing_key: rk.into(),
                arguments,
                ..Default::default()
            },
        );
        assert!(
            matches!(
                r.as_slice(),
                [Received::Method {
                    method: Method::QueueBindOk(_),
                    ..
                }]
            ),
            "queue.bind failed: {r:?}"
        );
    }

    /// `exchange.bind destination <- source`; asserts bind-ok.
    pub fn bind_exchange(&mut self, channel: u16, destination: &str, source: &str, rk: &str) {
        let r = self.send(
            channel,
            ExchangeBind {
                destination: destination.into(),
                source: source.into(),
                routing_key: rk.into(),
                ..Default::default()
            },
        );
        assert!(
            matches!(
                r.as_slice(),
                [Received::Method {
                    method: Method::ExchangeBindOk(_),
                    ..
                }]
            ),
            "exchange.bind failed: {r:?}"
        );
    }

    pub fn publish(
        &mut self,
        channel: u16,
        exchange: &str,
        rk: &str,
        props: &BasicProperties,
        body: &[u8],
    ) -> Vec<Received> {
        self.publish_with(
            channel,
            BasicPublish {
                exchange: exchange.into(),
                routing_key: rk.into(),
                ..Default::default()
            },
            props,
            body,
        )
    }

    /// Publishes with mandatory=true.
    pub fn publish_mandatory(
        &mut self,
        channel: u16,
        exchange: &str,
        rk: &str,
        body: &[u8],
    ) -> Vec<Received> {
        self.publish_with(
            channel,
            BasicPublish {
                exchange: exchange.into(),
                routing_key: rk.into(),
                mandatory: true,
                ..Default::default()
            },
            &BasicProperties::default(),
            body,
        )
    }

    pub fn publish_with(
        &mut self,
        channel: u16,
        publish: BasicPublish,
        props: &BasicProperties,
        body: &[u8],
    ) -> Vec<Received> {
        self.state().queue_publish(channel, publish, props, body);
        self.flush()
    }

    /// Publishes each body to the default exchange with routing key `queue`.
    pub fn publish_all(&mut self, channel: u16, queue: &str, bodies: &[&str]) -> Vec<Received> {
        for b in bodies {
            self.state().queue_publish(
                channel,
                BasicPublish {
                    routing_key: queue.into(),
                    ..Default::default()
                },
                &BasicProperties::default(),
                b.as_bytes(),
            );
        }
        self.flush()
    }

    /// `basic.consume` with manual acks.
    pub fn consume(&mut self, channel: u16, queue: &str, tag: &str) -> Vec<Received> {
        self.send(
            channel,
            BasicConsume {
                queue: queue.into(),
                consumer_tag: tag.into(),
                ..Default::default()
            },
        )
    }

    pub fn consume_no_ack(&mut self, channel: u16, queue: &str, tag: &str) -> Vec<Received> {
        self.send(
            channel,
            BasicConsume {
                queue: queue.into(),
                consumer_tag: tag.into(),
                no_ack: true,
                ..Default::default()
            },
        )
    }

    pub fn cancel(&mut self, channel: u16, tag: &str) -> Vec<Received> {
        self.send(
            channel,
            BasicCancel {
                consumer_tag: tag.into(),
                no_wait: false,
            },
        )
    }

    pub fn qos(&mut self, channel: u16, prefetch_count: u16, global: bool) {
        let r = self.send(
            channel,
            BasicQos {
                prefetch_size: 0,
                prefetch_count,
                global,
            },
        );
        assert!(
            matches!(
                r.as_slice(),
                [Received::Method {
                    method: Method::BasicQosOk(_),
                    ..
                }]
            ),
            "basic.qos failed: {r:?}"
        );
    }

    pub fn ack(&mut self, channel: u16, delivery_tag: u64, multiple: bool) -> Vec<Received> {
        self.send(
            channel,
            BasicAck {
                delivery_tag,
                multiple,
            },
        )
    }

    pub fn nack(
        &mut self,
        channel: u16,
        delivery_tag: u64,
        multiple: bool,
        requeue: bool,
    ) -> Vec<Received> {
        self.send(
            channel,
            BasicNack {
                delivery_tag,
                multiple,
                requeue,
            },
        )
    }

    pub fn reject(&mut self, channel: u16, delivery_tag: u64, requeue: bool) -> Vec<Received> {
        self.send(
            channel,
            BasicReject {
                delivery_tag,
                requeue,
            },
        )
    }

    pub fn recover(&mut self, channel: u16) -> Vec<Received> {
        self.send(channel, BasicRecover { requeue: true })
    }

    pub fn get(&mut self, channel: u16, queue: &str, no_ack: bool) -> Vec<Received> {
        self.send(
            channel,
            BasicGet {
                queue: queue.into(),
                no_ack,
                ..Default::default()
            },
        )
    }

    pub fn confirm_select(&mut self, channel: u16) -> Vec<Received> {
        self.send(channel, ConfirmSelect { nowait: false })
    }

    pub fn tx_select(&mut self, channel: u16) -> Vec<Received> {
        self.send(channel, TxSelect)
    }

    pub fn tx_commit(&mut self, channel: u16) -> Vec<Received> {
        self.send(channel, TxCommit)
    }

    pub fn tx_rollback(&mut self, channel: u16) -> Vec<Received> {
        self.send(channel, TxRollback)
    }
}

/// A `ShortStr` from a `&str`, for building expected methods.
pub fn s(x: &str) -> ShortStr {
    ShortStr::from(x)
}
