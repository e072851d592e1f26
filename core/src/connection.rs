//! One client connection's protocol state machine (AMQP 0-9-1 §2.2.4, §4.2), sans-IO.
//!
//! The connection owns framing, the handshake, channel bookkeeping, content assembly and
//! heartbeats. Everything that touches shared broker state (queues, exchanges, consumers) goes
//! out as a [`Command`] to the [`Broker`](crate::broker::Broker), whose answers come back in as
//! [`Event`]s. In the native server the two run on different threads; in a browser they run
//! side by side on one.
//!
//! Call order, after every mutation:
//! 1. feed input: [`Connection::handle_input`] (or write into [`Connection::input_buffer`] and
//!    call [`Connection::process_input`]), broker events with [`Connection::handle_event`], the
//!    clock with [`Connection::handle_timeout`], a dead socket with [`Connection::handle_eof`];
//! 2. drain [`Connection::poll_command`] into the broker;
//! 3. write out [`Connection::output`] (then clear it) and arm a timer for
//!    [`Connection::poll_timeout`];
//! 4. once [`Connection::is_closed`] and the output is written, close the socket.

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

use bytes::{Bytes, BytesMut};

use crate::codec::{
    decode_frame, encode_content, encode_deliver, encode_heartbeat, encode_method_frame,
    BasicPublish, ChannelCloseOk, ConnectionBlocked, ConnectionClose, ConnectionCloseOk,
    ConnectionStart, ConnectionTune, ConnectionUnblocked, ContentHeader, FieldTable, FieldValue,
    Frame, FrameKind, LongStr, Method, ShortStr, FRAME_OVERHEAD, PROTOCOL_HEADER,
};
use crate::message::Message;
use crate::reply::{Fault, Scope};
use crate::vocab::{ClientCapabilities, Command, Event, PublishFlags};
use crate::{channel_fault, connection_fault};

/// The smallest frame_max a client may ask for (spec constant frame-min-size).
pub const FRAME_MIN_SIZE: u32 = 4096;

/// Server-side limits offered in `connection.tune` (RabbitMQ's defaults).
#[derive(Clone, Debug)]
pub struct ConnectionConfig {
    pub frame_max: u32,
    pub channel_max: u16,
    /// Heartbeat interval offered, in seconds; 0 disables.
    pub heartbeat: u16,
    /// Largest message body accepted (RabbitMQ 3.x: 128 MiB).
    pub max_message_size: u64,
    /// `product` in server-properties.
    pub product: &'static str,
    pub version: &'static str,
    /// How long to wait for `connection.close-ok` after sending `connection.close`.
    pub close_timeout_ms: u64,
    /// How long a client may take to finish the handshake.
    pub handshake_timeout_ms: u64,
    /// With `Some(bytes)`, deliveries are flow-controlled: the connection opens a window of
    /// that size at login (`Command::Credit`) and gives credit back as the adapter reports its
    /// output written ([`Connection::handle_written`]). `None`: no limit.
    pub delivery_window: Option<u64>,
    /// Credit goes back only while less than this much output waits to be written (taken and
    /// not yet reported written, plus not yet taken). A peer that reads slowly thus holds its
    /// backlog in the queues, not in our buffers.
    pub credit_low_water: usize,
}

/// The delivery window every connection gets by default: what the broker may send a
/// connection before it hears that the bytes were written (in
/// [`Message::delivery_cost`](crate::message::Message::delivery_cost) units, about bytes).
pub const DELIVERY_WINDOW: u64 = 2 << 20;

/// The default [`ConnectionConfig::credit_low_water`]: a quarter of the window, so a consumer
/// that keeps up never waits for credit, and one that does not holds at most this much output.
pub const CREDIT_LOW_WATER: usize = 512 << 10;

impl Default for ConnectionConfig {
    fn default() -> Self {
        ConnectionConfig {
            frame_max: 131_072,
            channel_max: 2047,
            heartbeat: 60,
            max_message_size: 128 * 1024 * 1024,
            product: "Warren",
            version: env!("CARGO_PKG_VERSION"),
            close_timeout_ms: 3_000,
            handshake_timeout_ms: 10_000,
            delivery_window: Some(DELIVERY_WINDOW),
            credit_low_water: CREDIT_LOW_WATER,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Waiting for the 8-byte protocol header.
    Header,
    /// `connection.start` sent, waiting for `start-ok`.
    StartOk,
    /// Credentials sent to the broker, waiting for its verdict.
    Login,
    /// `connection.tune` sent, waiting for `tune-ok`.
    TuneOk,
    /// Waiting for `connection.open`.
    Open,
    /// `connection.open` forwarded, waiting for the broker.
    OpenOk,
    /// Open for business.
    Running,
    /// We sent `connection.close`; waiting for `close-ok`.
    Closing,
    /// The client sent `connection.close`; `close-ok` goes out once the broker has answered
    /// everything before it.
    PeerClosing,
    /// Done: flush output, then close the socket.
    Closed,
}

impl State {
    /// The state's name as RabbitMQ reports it in errors.
    fn name(self) -> &'static str {
        match self {
            State::Header | State::StartOk | State::Login => "starting",
            State::TuneOk => "tuning",
            State::Open | State::OpenOk => "opening",
            State::Running => "running",
            State::Closing | State::PeerClosing | State::Closed => "closing",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ChannelState {
    Open,
    /// The client sent `channel.close`; frames are dropped until we answer `close-ok`.
    ClosingByPeer,
    /// We sent `channel.close`; frames are dropped until the client's `close-ok`.
    ClosingByServer,
}

/// A publish waiting for its content header and body frames.
struct PendingContent {
    publish: BasicPublish,
    header: Option<ContentHeader>,
    body: BytesMut,
    /// A lone body frame kept as-is, so single-frame messages are never copied.
    single: Option<Bytes>,
    received: u64,
}

struct Channel {
    state: ChannelState,
    content: Option<PendingContent>,
}

/// One client connection. See the module docs for the call order.
pub struct Connection {
    config: ConnectionConfig,
    state: State,
    input: BytesMut,
    output: Vec<u8>,
    commands: VecDeque<Command>,
    /// Indexed by channel number; `None` = not open.
    channels: Vec<Option<Channel>>,
    frame_max: u32,
    channel_max: u16,
    /// Negotiated heartbeat interval in milliseconds (0 = off).
    heartbeat_ms: u64,
    last_recv_ms: u64,
    last_send_ms: u64,
    /// Deadline for the handshake or for the peer's `close-ok`.
    deadline_ms: Option<u64>,
    capabilities: ClientCapabilities,
    /// The username the broker accepted, for logs.
    username: String,
    /// The broker's resource alarm, while one is on.
    alarm: Option<ShortStr>,
    /// Publishing under an alarm stops reading from this peer until the alarm clears.
    blocked: bool,
    /// We answered the peer's `connection.close` with `close-ok`: the socket is the peer's
    /// to close.
    answered_close: bool,
    /// Delivery cost of the deliveries handled since credit was last returned.
    delivered_cost: u64,
    /// Output the adapter took ([`Connection::take_output`]) and has not yet reported written.
    in_flight: usize,
    /// The broker has been told that this connection is gone (`Command::Close`).
    told_gone: bool,
}

impl Connection {
    pub fn new(config: ConnectionConfig, now_ms: u64) -> Self {
        let frame_max = config.frame_max;
        let deadline = now_ms + config.handshake_timeout_ms;
        Connection {
            config,
            state: State::Header,
            answered_close: false,
            delivered_cost: 0,
            in_flight: 0,
            told_gone: false,
            // Small to start: an idle connection should cost little; the adapter grows the
            // input buffer for busy ones, and output grows with what is written.
            input: BytesMut::new(),
            output: Vec::new(),
            commands: VecDeque::new(),
            channels: Vec::new(),
            frame_max,
            channel_max: 0,
            heartbeat_ms: 0,
            last_recv_ms: now_ms,
            last_send_ms: now_ms,
            deadline_ms: Some(deadline),
            capabilities: ClientCapabilities::default(),
            username: String::new(),
            alarm: None,
            blocked: false,
        }
    }

    /// Copies `bytes` from the peer in and processes every complete frame.
    pub fn handle_input(&mut self, bytes: &[u8], now_ms: u64) {
        self.input.extend_from_slice(bytes);
        self.process_input(now_ms);
    }

    /// The buffer the adapter may read socket bytes into directly (then call `process_input`).
    pub fn input_buffer(&mut self) -> &mut BytesMut {
        &mut self.input
    }

    /// Goes on with frames that waited in the buffer while the connection paused.
    fn resume_input(&mut self, now_ms: u64) {
        let last_recv = self.last_recv_ms;
        self.process_input(now_ms);
        // Old bytes are not news from the peer.
        self.last_recv_ms = last_recv;
    }

    /// Processes every complete frame in the input buffer.
    pub fn process_input(&mut self, now_ms: u64) {
        if self.input.is_empty() || self.state == State::Closed {
            return;
        }
        self.last_recv_ms = now_ms;
        if self.state == State::Header && !self.read_protocol_header() {
            return;
        }
        // While the broker weighs credentials or the vhost, later frames wait in the buffer:
        // a client may pipeline `channel.open` right behind `connection.open`.
        while !matches!(
            self.state,
            State::Closed | State::Login | State::OpenOk | State::PeerClosing
        ) && !self.blocked
        {
            match decode_frame(&mut self.input, self.frame_max) {
                Ok(Some(frame)) => {
                    if let Err(fault) = self.handle_frame(frame) {
                        self.fail(fault, now_ms);
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    let fault = frame_decode_fault(&e, &self.input);
                    self.fail(fault, now_ms);
                    // The stream is no longer framed: nothing more can be read from it.
                    self.input.clear();
                    break;
                }
            }
        }
        if self.state == State::Closing || self.state == State::Closed {
            self.input.clear();
        }
    }

    /// False while the connection is blocked by a resource alarm: the adapter must stop reading
    /// from the socket (TCP backpressure then pauses the publisher), as RabbitMQ does.
    pub fn wants_input(&self) -> bool {
        !self.blocked
            && !matches!(
                self.state,
                State::Closed | State::Login | State::OpenOk | State::PeerClosing
            )
    }

    /// Takes an answer or a delivery from the broker.
    pub fn handle_event(&mut self, event: Event, now_ms: u64) {
        if self.state == State::Closed {
            return;
        }
        let before = self.output.len();
        match event {
            Event::LoginOk => {
                if self.state == State::Login {
                    self.state = State::TuneOk;
                    let tune = ConnectionTune {
                        channel_max: self.config.channel_max,
                        frame_max: self.config.frame_max,
                        heartbeat: self.config.heartbeat,
                    };
                    encode_method_frame(&mut self.output, 0, &tune.into());
                    self.resume_input(now_ms);
                }
            }
            Event::LoginRefused { mechanism } => {
                self.told_gone = true;
                // With `authentication_failure_close` the client learns why; without it, RabbitMQ
                // (and the spec) just drop the socket.
                if self.capabilities.authentication_failure_close {
                    let fault = connection_fault!(
                        ACCESS_REFUSED,
                        "Login was refused using authentication mechanism {mechanism}. \
                         For details see the broker logfile."
                    );
                    self.send_connection_close(&fault, now_ms);
                    self.state = State::Closed;
                } else {
                    self.state = State::Closed;
                }
            }
            Event::OpenOk => {
                if self.state == State::OpenOk {
                    self.state = State::Running;
                    self.deadline_ms = None;
                    let ok = crate::codec::ConnectionOpenOk::default();
                    encode_method_frame(&mut self.output, 0, &ok.into());
                    self.resume_input(now_ms);
                }
            }
            Event::Method { channel, method } => {
                if let Method::ChannelCloseOk(_) = method {
                    // The broker has let the channel go: the number is free again.
                    self.free_channel(channel);
                }
                if self.is_answering() {
                    encode_method_frame(&mut self.output, channel, &method);
                }
            }
            Event::Deliver {
                channel,
                consumer_tag,
                delivery_tag,
                redelivered,
                message,
            } => {
                self.delivered_cost += message.delivery_cost();
                if self.is_answering() {
                    encode_deliver(
                        &mut self.output,
                        channel,
                        &consumer_tag,
                        delivery_tag,
                        redelivered,
                        message.exchange(),
                        message.routing_key(),
                        message.properties(),
                        message.body(),
                        self.frame_max,
                    );
                }
            }
            Event::Content {
                channel,
                method,
                message,
            } => {
                if self.is_answering() {
                    encode_method_frame(&mut self.output, channel, &method);
                    encode_content(
                        &mut self.output,
                        channel,
                        BasicPublish::CLASS_ID,
                        message.properties(),
                        message.body(),
                        self.frame_max,
                    );
                }
            }
            Event::ChannelError { channel, fault } => {
                if self.is_answering() {
                    let mut peer_was_closing = false;
                    if let Some(Some(ch)) = self.channels.get_mut(usize::from(channel)) {
                        peer_was_closing = ch.state == ChannelState::ClosingByPeer;
                        ch.state = ChannelState::ClosingByServer;
                        ch.content = None;
                    }
                    let close = crate::codec::ChannelClose {
                        reply_code: fault.code.0,
                        reply_text: reply_text(&fault.text),
                        class_id: fault.class_id,
                        method_id: fault.method_id,
                    };
                    encode_method_frame(&mut self.output, channel, &close.into());
                    if peer_was_closing {
                        // The client's own channel.close reached a broker that had already let
                        // the channel go: answer it here, as RabbitMQ does.
                        encode_method_frame(&mut self.output, channel, &ChannelCloseOk.into());
                    }
                }
            }
            Event::Closed => {
                self.told_gone = true;
                if self.state == State::PeerClosing {
                    // Every answer to what the client sent before its close is out: now
                    // close-ok, and the connection is over.
                    encode_method_frame(&mut self.output, 0, &ConnectionCloseOk.into());
                    self.state = State::Closed;
                    self.answered_close = true;
                }
            }
            Event::ConnectionError { fault } => {
                // The broker has already forgotten this connection.
                self.told_gone = true;
                self.send_connection_close(&fault, now_ms);
            }
            Event::ResourceAlarm { reason } => {
                self.alarm = reason;
                if self.alarm.is_none() && self.blocked {
                    self.blocked = false;
                    // Time spent blocked is not the peer's silence.
                    self.last_recv_ms = now_ms;
                    if self.capabilities.connection_blocked && self.state == State::Running {
                        encode_method_frame(&mut self.output, 0, &ConnectionUnblocked.into());
                    }
                    self.resume_input(now_ms);
                }
            }
        }
        if self.output.len() != before {
            self.last_send_ms = now_ms;
        }
    }

    /// Advances the clock: sends heartbeats, detects a silent peer, enforces deadlines.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        if self.state == State::Closed {
            return;
        }
        if let Some(deadline) = self.deadline_ms {
            if now_ms >= deadline {
                self.close_silently();
                return;
            }
        }
        if self.heartbeat_ms == 0 || self.state != State::Running {
            return;
        }
        if self.blocked {
            // We are not reading, so the peer's heartbeats go unseen; keep ours going.
            self.last_recv_ms = now_ms;
        }
        // The peer is dead after two missed heartbeat intervals (RabbitMQ's rule).
        if now_ms.saturating_sub(self.last_recv_ms) >= 2 * self.heartbeat_ms {
            self.close_silently();
            return;
        }
        if now_ms.saturating_sub(self.last_send_ms) >= self.heartbeat_ms / 2 {
            encode_heartbeat(&mut self.output);
            self.last_send_ms = now_ms;
        }
    }

    /// The socket is gone (EOF or error).
    pub fn handle_eof(&mut self) {
        if self.state != State::Closed {
            self.close_silently();
        }
    }

    /// The next command for the broker.
    pub fn poll_command(&mut self) -> Option<Command> {
        self.commands.pop_front()
    }

    /// Bytes waiting to be written to the peer. An adapter that takes them from here (rather
    /// than with [`Connection::take_output`]) must clear the vector, and its writes do not
    /// count for delivery credit.
    pub fn output(&mut self) -> &mut Vec<u8> {
        &mut self.output
    }

    /// Moves the bytes waiting to be written into `into` (cleared first; the two buffers swap,
    /// so neither is reallocated). They are in flight until [`Connection::handle_written`]
    /// reports them written.
    pub fn take_output(&mut self, into: &mut Vec<u8>) {
        into.clear();
        core::mem::swap(into, &mut self.output);
        self.in_flight = self.in_flight.saturating_add(into.len());
    }

    /// The adapter wrote `n` bytes of what it took to the peer. This is what returns delivery
    /// credit (see [`ConnectionConfig::delivery_window`]): once what the broker sent since
    /// the last return is a quarter of the window and less than
    /// [`ConnectionConfig::credit_low_water`] waits to be written, the broker hears
    /// (`Command::Credit`) that it may send that much again.
    pub fn handle_written(&mut self, n: usize) {
        self.in_flight = self.in_flight.saturating_sub(n);
        let Some(window) = self.config.delivery_window else {
            return;
        };
        let batch = (window / 4).max(1);
        let waiting = self.in_flight.saturating_add(self.output.len());
        if self.delivered_cost >= batch && waiting < self.config.credit_low_water {
            let credit = core::mem::take(&mut self.delivered_cost);
            self.commands.push_back(Command::Credit(credit));
        }
    }

    /// When `handle_timeout` next needs to run, if ever.
    pub fn poll_timeout(&self) -> Option<u64> {
        if self.state == State::Closed {
            return None;
        }
        let mut next = self.deadline_ms;
        if self.heartbeat_ms != 0 && self.state == State::Running {
            let send = self.last_send_ms + self.heartbeat_ms / 2;
            let dead = self.last_recv_ms + 2 * self.heartbeat_ms;
            let t = send.min(dead);
            next = Some(next.map_or(t, |n| n.min(t)));
        }
        next
    }

    /// True once the connection is over: flush `output`, then close the socket.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// True when the connection ended by answering the peer's `connection.close`. The peer then
    /// closes the socket once it has read `close-ok`, and the adapter should wait for that
    /// (bounded) rather than hang up first, as RabbitMQ does: a client that sees EOF before it
    /// has handled `close-ok` may report a failed close.
    pub fn answered_close(&self) -> bool {
        self.answered_close
    }

    /// Output taken and not yet reported written plus output not yet taken: what a slow peer
    /// costs in buffers.
    pub fn unwritten(&self) -> usize {
        self.in_flight.saturating_add(self.output.len())
    }

    /// The negotiated frame_max (whole frame, overhead included).
    pub fn frame_max(&self) -> u32 {
        self.frame_max
    }

    /// The negotiated channel_max (0 before tune-ok).
    pub fn channel_max(&self) -> u16 {
        self.channel_max
    }

    /// The negotiated heartbeat interval in milliseconds (0 = none).
    pub fn heartbeat_ms(&self) -> u64 {
        self.heartbeat_ms
    }

    /// Whether broker answers still go out: while open, and while a client close waits for
    /// the answers to what came before it.
    fn is_answering(&self) -> bool {
        matches!(self.state, State::Running | State::PeerClosing)
    }

    /// True once `connection.open-ok` went out and until a close starts.
    pub fn is_running(&self) -> bool {
        self.state == State::Running
    }

    /// The authenticated user, once known.
    pub fn username(&self) -> &str {
        &self.username
    }

    fn read_protocol_header(&mut self) -> bool {
        let n = self.input.len().min(PROTOCOL_HEADER.len());
        if self.input[..n] != PROTOCOL_HEADER[..n] {
            // Wrong protocol or version: answer with ours and hang up (spec §4.2.2).
            self.output.extend_from_slice(&PROTOCOL_HEADER);
            self.state = State::Closed;
            self.input.clear();
            return false;
        }
        if n < PROTOCOL_HEADER.len() {
            return false;
        }
        let _ = self.input.split_to(PROTOCOL_HEADER.len());
        self.state = State::StartOk;
        let start = ConnectionStart {
            version_major: 0,
            version_minor: 9,
            server_properties: self.server_properties(),
            mechanisms: LongStr::from("PLAIN AMQPLAIN"),
            locales: LongStr::from("en_US"),
        };
        encode_method_frame(&mut self.output, 0, &start.into());
        true
    }

    fn server_properties(&self) -> FieldTable {
        let mut caps = FieldTable::default();
        for cap in [
            "publisher_confirms",
            "exchange_exchange_bindings",
            "basic.nack",
            "consumer_cancel_notify",
            "connection.blocked",
            "authentication_failure_close",
            "per_consumer_qos",
            "direct_reply_to",
            "consumer_priorities",
        ] {
            caps.insert(cap, FieldValue::Bool(true));
        }
        let mut props = FieldTable::default();
        props.insert("capabilities", FieldValue::Table(caps));
        props.insert("product", long(self.config.product));
        props.insert("version", long(self.config.version));
        props.insert("platform", long("Rust"));
        props.insert("cluster_name", long("warren"));
        props.insert("copyright", long("Copyright (c) the Warren authors"));
        props.insert(
            "information",
            long("Warren, an AMQP 0-9-1 broker. Licensed under MIT or Apache-2.0."),
        );
        props
    }

    fn handle_frame(&mut self, frame: Frame) -> Result<(), Fault> {
        let Frame { channel, kind } = frame;
        // Before `connection.open` only channel 0 may speak (RabbitMQ answers 505).
        if channel != 0 && !matches!(self.state, State::Running | State::Closing) {
            let (kind_id, payload) = match &kind {
                FrameKind::Method(p) => (1, p.as_ref()),
                FrameKind::Header(p) => (2, p.as_ref()),
                FrameKind::Body(p) => (3, p.as_ref()),
                FrameKind::Heartbeat => (8, &[][..]),
            };
            return Err(connection_fault!(
                UNEXPECTED_FRAME,
                "type {kind_id}, all octets = {}",
                ErlangBinary(payload)
            ));
        }
        match kind {
            FrameKind::Heartbeat => {
                if channel != 0 {
                    return Err(connection_fault!(
                        UNEXPECTED_FRAME,
                        "type 8, all octets = <<>>"
                    ));
                }
                Ok(())
            }
            FrameKind::Method(payload) => {
                // Decoded strings (names, tags, keys, argument tables) point into the payload,
                // and the payload into the read buffer (up to 64 KiB). What the broker keeps
                // for long (a queue's name, a consumer's tag, a connection's vhost) would pin
                // that whole buffer, so those methods are decoded from a copy of their frame.
                // The hot ones are not: a publish's exchange and key live as long as its body,
                // which shares the buffer anyway, and acks carry no strings.
                let payload = if is_hot_method(&payload) {
                    payload
                } else {
                    Bytes::copy_from_slice(&payload)
                };
                let method =
                    Method::decode(&payload).map_err(|e| method_decode_fault(&e, &payload))?;
                if channel == 0 {
                    self.handle_connection_method(method)
                } else {
                    self.handle_channel_method(channel, method)
                }
            }
            FrameKind::Header(payload) => self.handle_header(channel, payload),
            FrameKind::Body(payload) => self.handle_body(channel, payload),
        }
    }

    fn handle_connection_method(&mut self, method: Method) -> Result<(), Fault> {
        let (class_id, method_id) = (method.class_id(), method.method_id());
        let result = match (self.state, method) {
            (State::StartOk, Method::ConnectionStartOk(ok)) => {
                self.capabilities =
                    ClientCapabilities::from_client_properties(&ok.client_properties);
                let mechanism = ok.mechanism.as_str();
                let (username, password) = match mechanism {
                    "PLAIN" => parse_plain(ok.response.0.as_ref()),
                    "AMQPLAIN" => parse_amqplain(ok.response.0.as_ref()),
                    other => {
                        return Err(connection_fault!(
                            COMMAND_INVALID,
                            "unknown authentication mechanism '{other}'"
                        )
                        .caused_by(class_id, method_id));
                    }
                }
                .ok_or_else(|| {
                    connection_fault!(
                        ACCESS_REFUSED,
                        "Login was refused using authentication mechanism {mechanism}. \
                         For details see the broker logfile."
                    )
                })?;
                self.username = username.clone();
                self.state = State::Login;
                self.commands.push_back(Command::Login {
                    username,
                    password,
                    mechanism: ok.mechanism.clone(),
                    capabilities: self.capabilities,
                });
                if let Some(window) = self.config.delivery_window {
                    self.commands.push_back(Command::Credit(window));
                }
                Ok(())
            }
            (State::TuneOk, Method::ConnectionTuneOk(ok)) => {
                let frame_max = if ok.frame_max == 0 {
                    self.config.frame_max
                } else {
                    ok.frame_max
                };
                if frame_max < FRAME_MIN_SIZE {
                    return Err(connection_fault!(
                        NOT_ALLOWED,
                        "frame_max={frame_max} < {FRAME_MIN_SIZE} min size"
                    ));
                }
                if frame_max > self.config.frame_max {
                    return Err(connection_fault!(
                        NOT_ALLOWED,
                        "frame_max={frame_max} > {} max size",
                        self.config.frame_max
                    ));
                }
                if ok.channel_max > self.config.channel_max {
                    return Err(connection_fault!(
                        NOT_ALLOWED,
                        "channel_max={} > {} max",
                        ok.channel_max,
                        self.config.channel_max
                    ));
                }
                self.frame_max = frame_max;
                self.channel_max = if ok.channel_max == 0 {
                    self.config.channel_max
                } else {
                    ok.channel_max
                };
                self.heartbeat_ms = u64::from(ok.heartbeat) * 1000;
                self.state = State::Open;
                Ok(())
            }
            (State::Open, Method::ConnectionOpen(open)) => {
                self.state = State::OpenOk;
                self.commands.push_back(Command::Open {
                    vhost: open.virtual_host,
                });
                Ok(())
            }
            (State::Running | State::OpenOk, Method::ConnectionClose(_)) => {
                // close-ok waits for the broker: answers to commands sent before the close
                // must reach the client first (`Event::Closed` comes after them).
                self.state = State::PeerClosing;
                self.channels.clear();
                self.deadline_ms = Some(self.last_recv_ms + self.config.close_timeout_ms);
                self.tell_broker_gone();
                Ok(())
            }
            (State::PeerClosing, _) => Ok(()),
            (State::Closing, Method::ConnectionCloseOk(_)) => {
                self.state = State::Closed;
                Ok(())
            }
            (State::Closing, Method::ConnectionClose(_)) => {
                encode_method_frame(&mut self.output, 0, &ConnectionCloseOk.into());
                self.state = State::Closed;
                self.answered_close = true;
                Ok(())
            }
            (State::Closing, _) => Ok(()),
            (_, m) if m.class_id() == ConnectionClose::CLASS_ID => Err(connection_fault!(
                COMMAND_INVALID,
                "unexpected method {} in this connection state",
                m.name()
            )),
            (state, _) => Err(connection_fault!(
                CHANNEL_ERROR,
                "unexpected method in connection state {}",
                state.name()
            )),
        };
        result.map_err(|f| f.or_caused_by(class_id, method_id))
    }

    fn handle_channel_method(&mut self, channel: u16, method: Method) -> Result<(), Fault> {
        if self.state == State::Closing {
            return Ok(());
        }
        let (class_id, method_id) = (method.class_id(), method.method_id());
        if self.state != State::Running {
            return Err(connection_fault!(
                COMMAND_INVALID,
                "method {} before the connection is open",
                method.name()
            )
            .caused_by(class_id, method_id));
        }
        if class_id == ConnectionClose::CLASS_ID {
            return Err(connection_fault!(
                COMMAND_INVALID,
                "connection method {} on channel {channel}",
                method.name()
            )
            .caused_by(class_id, method_id));
        }
        let idx = usize::from(channel);
        let slot = self
            .channels
            .get(idx)
            .and_then(|c| c.as_ref())
            .map(|c| c.state);
        match (slot, method) {
            // A close-ok for a channel already gone (the answer to a close that crossed the
            // client's own): RabbitMQ ignores it.
            (None, Method::ChannelCloseOk(_)) => Ok(()),
            (None, Method::ChannelOpen(open)) => {
                if channel > self.channel_max {
                    return Err(connection_fault!(
                        CHANNEL_ERROR,
                        "channel number {channel} exceeds channel_max {}",
                        self.channel_max
                    )
                    .caused_by(class_id, method_id));
                }
                if self.channels.len() <= idx {
                    self.channels.resize_with(idx + 1, || None);
                }
                self.channels[idx] = Some(Channel {
                    state: ChannelState::Open,
                    content: None,
                });
                self.commands.push_back(Command::Method {
                    channel,
                    method: Method::ChannelOpen(open),
                });
                Ok(())
            }
            (None, _) => Err(connection_fault!(CHANNEL_ERROR, "expected 'channel.open'")
                .caused_by(class_id, method_id)),
            (Some(ChannelState::ClosingByServer), Method::ChannelCloseOk(_)) => {
                self.free_channel(channel);
                Ok(())
            }
            (Some(ChannelState::ClosingByServer), Method::ChannelClose(_)) => {
                // Both sides closed at once: answer, and the channel is gone.
                encode_method_frame(&mut self.output, channel, &ChannelCloseOk.into());
                self.free_channel(channel);
                Ok(())
            }
            (Some(ChannelState::ClosingByServer | ChannelState::ClosingByPeer), _) => Ok(()),
            (Some(ChannelState::Open), m) => {
                let ch = self.channels[idx].as_mut().expect("slot checked above");
                if ch.content.is_some() {
                    return Err(connection_fault!(
                        UNEXPECTED_FRAME,
                        "expected content header for class 60, got non content header frame instead"
                    )
                    // RabbitMQ names the publish that was interrupted, not the interrupter.
                    .caused_by(BasicPublish::CLASS_ID, BasicPublish::METHOD_ID));
                }
                match m {
                    Method::ChannelOpen(_) => Err(connection_fault!(
                        CHANNEL_ERROR,
                        "second 'channel.open' seen"
                    )
                    .caused_by(class_id, method_id)),
                    Method::BasicPublish(publish) => {
                        ch.content = Some(PendingContent {
                            publish,
                            header: None,
                            body: BytesMut::new(),
                            single: None,
                            received: 0,
                        });
                        Ok(())
                    }
                    Method::ChannelClose(close) => {
                        ch.state = ChannelState::ClosingByPeer;
                        self.commands.push_back(Command::Method {
                            channel,
                            method: Method::ChannelClose(close),
                        });
                        Ok(())
                    }
                    Method::ChannelCloseOk(_) => Ok(()),
                    m if is_client_method(&m) => {
                        self.commands
                            .push_back(Command::Method { channel, method: m });
                        Ok(())
                    }
                    m => Err(connection_fault!(
                        COMMAND_INVALID,
                        "method {} is not sent by clients",
                        m.name()
                    )
                    .caused_by(class_id, method_id)),
                }
            }
        }
    }

    fn open_channel(&mut self, channel: u16) -> Option<&mut Channel> {
        self.channels
            .get_mut(usize::from(channel))
            .and_then(|c| c.as_mut())
    }

    fn handle_header(&mut self, channel: u16, payload: Bytes) -> Result<(), Fault> {
        if self.state == State::Closing {
            return Ok(());
        }
        let max = self.config.max_message_size;
        let Some(ch) = self.open_channel(channel) else {
            return Err(connection_fault!(
                UNEXPECTED_FRAME,
                "expected method frame, got non method frame instead"
            ));
        };
        if ch.state != ChannelState::Open {
            return Ok(());
        }
        let Some(pending) = ch.content.as_mut().filter(|p| p.header.is_none()) else {
            return Err(connection_fault!(
                UNEXPECTED_FRAME,
                "expected method frame, got non method frame instead"
            ));
        };
        let header = ContentHeader::decode(payload).map_err(|e| {
            Fault::connection(crate::reply::ReplyCode(e.reply_code()), format_args!("{e}"))
        })?;
        if header.class_id != BasicPublish::CLASS_ID {
            return Err(connection_fault!(
                FRAME_ERROR,
                "content header for class {} on a basic.publish",
                header.class_id
            ));
        }
        if header.body_size > max {
            let size = header.body_size;
            ch.content = None;
            // A channel error: the channel closes and its body frames are dropped.
            ch.state = ChannelState::ClosingByServer;
            let fault = channel_fault!(
                PRECONDITION_FAILED,
                "message size {size} is larger than configured max size {max}"
            )
            .caused_by(BasicPublish::CLASS_ID, BasicPublish::METHOD_ID);
            let close = crate::codec::ChannelClose {
                reply_code: fault.code.0,
                reply_text: reply_text(&fault.text),
                class_id: fault.class_id,
                method_id: fault.method_id,
            };
            encode_method_frame(&mut self.output, channel, &close.into());
            // The broker must also forget the channel (requeue its unacked messages).
            self.commands.push_back(Command::ChannelGone { channel });
            return Ok(());
        }
        let body_size = header.body_size;
        pending.header = Some(header);
        if body_size == 0 {
            self.complete_publish(channel);
        }
        Ok(())
    }

    fn handle_body(&mut self, channel: u16, payload: Bytes) -> Result<(), Fault> {
        if self.state == State::Closing {
            return Ok(());
        }
        let Some(ch) = self.open_channel(channel) else {
            return Err(connection_fault!(
                UNEXPECTED_FRAME,
                "expected method frame, got non method frame instead"
            ));
        };
        if ch.state != ChannelState::Open {
            return Ok(());
        }
        let Some((pending, size)) = ch
            .content
            .as_mut()
            .and_then(|p| p.header.as_ref().map(|h| h.body_size).map(|s| (p, s)))
        else {
            return Err(connection_fault!(
                UNEXPECTED_FRAME,
                "expected method frame, got non method frame instead"
            ));
        };
        let len = payload.len() as u64;
        if pending.received + len > size {
            return Err(connection_fault!(
                FRAME_ERROR,
                "content body is {} bytes longer than its header said",
                pending.received + len - size
            ));
        }
        if pending.received == 0 && len == size {
            pending.single = Some(payload);
        } else {
            if pending.body.is_empty() {
                // Sized by the header, which is at most max_message_size.
                pending.body.reserve(size as usize);
            }
            pending.body.extend_from_slice(&payload);
        }
        pending.received += len;
        if pending.received == size {
            self.complete_publish(channel);
        }
        Ok(())
    }

    fn complete_publish(&mut self, channel: u16) {
        let Some(ch) = self.open_channel(channel) else {
            return;
        };
        let Some(pending) = ch.content.take() else {
            return;
        };
        let Some(header) = pending.header else {
            return;
        };
        let body = match pending.single {
            Some(b) => b,
            None => pending.body.freeze(),
        };
        let PendingContent { publish, .. } = pending;
        self.commands.push_back(Command::Publish {
            channel,
            flags: PublishFlags {
                mandatory: publish.mandatory,
                immediate: publish.immediate,
            },
            message: Message::new(
                publish.exchange,
                publish.routing_key,
                header.properties,
                body,
            ),
        });
        if let Some(reason) = self.alarm.clone() {
            if !self.blocked {
                self.blocked = true;
                if self.capabilities.connection_blocked {
                    let blocked = ConnectionBlocked { reason };
                    encode_method_frame(&mut self.output, 0, &blocked.into());
                }
            }
        }
    }

    fn free_channel(&mut self, channel: u16) {
        if let Some(slot) = self.channels.get_mut(usize::from(channel)) {
            *slot = None;
        }
    }

    /// Reacts to a fault found while reading: close the channel or the connection.
    fn fail(&mut self, fault: Fault, now_ms: u64) {
        match fault.scope {
            Scope::Channel => {
                // Channel faults found by the connection itself are rare (the broker raises
                // most); route them through the same path as the broker's.
                // The channel number is not known here, so treat it as a connection fault.
                let fault = Fault {
                    scope: Scope::Connection,
                    ..fault
                };
                self.fail(fault, now_ms)
            }
            Scope::Connection => {
                if matches!(
                    self.state,
                    State::Header | State::StartOk | State::Login | State::TuneOk
                ) {
                    // Before tune-ok, RabbitMQ drops the socket without a connection.close.
                    self.close_silently();
                    return;
                }
                self.send_connection_close(&fault, now_ms);
                self.tell_broker_gone();
            }
        }
    }

    fn send_connection_close(&mut self, fault: &Fault, now_ms: u64) {
        if matches!(self.state, State::Closing | State::Closed) {
            return;
        }
        let close = ConnectionClose {
            reply_code: fault.code.0,
            reply_text: reply_text(&fault.text),
            class_id: fault.class_id,
            method_id: fault.method_id,
        };
        encode_method_frame(&mut self.output, 0, &close.into());
        self.last_send_ms = now_ms;
        self.state = State::Closing;
        self.deadline_ms = Some(now_ms + self.config.close_timeout_ms);
        self.channels.clear();
    }

    /// Ends the connection without (further) protocol exchange and tells the broker.
    fn close_silently(&mut self) {
        let was_known_to_broker = !matches!(self.state, State::Header | State::StartOk);
        self.state = State::Closed;
        self.channels.clear();
        self.input.clear();
        if was_known_to_broker {
            self.tell_broker_gone();
        }
    }

    /// The one place that decides when the broker hears `Command::Close`: once, whichever way
    /// the connection ends (the peer's close, our fault, a timeout, a dead socket), and never
    /// when the broker let the connection go first or never knew it. Hosts add nothing.
    fn tell_broker_gone(&mut self) {
        if !self.told_gone {
            self.told_gone = true;
            self.commands.push_back(Command::Close);
        }
    }
}

/// A reply text as it goes on the wire: at most 255 bytes, cut with "..." like RabbitMQ.
fn reply_text(text: &str) -> ShortStr {
    if text.len() <= 255 {
        return ShortStr::from(text);
    }
    let mut end = 252;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut cut = String::with_capacity(255);
    cut.push_str(&text[..end]);
    cut.push_str("...");
    ShortStr::from(cut)
}

/// Bytes printed as an Erlang binary (`<<0,20,0,10>>`, or `<<"abc">>` when printable), as
/// RabbitMQ's frame errors show them.
struct ErlangBinary<'a>(&'a [u8]);

impl core::fmt::Display for ErlangBinary<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let printable = !self.0.is_empty() && self.0.iter().all(|b| (0x20..0x7f).contains(b));
        if printable {
            f.write_str("<<\"")?;
            for &b in self.0 {
                if b == b'"' || b == b'\\' {
                    f.write_str("\\")?;
                }
                write!(f, "{}", char::from(b))?;
            }
            return f.write_str("\">>");
        }
        f.write_str("<<")?;
        for (i, b) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{b}")?;
        }
        f.write_str(">>")
    }
}

/// The fault for bytes that do not frame, worded as RabbitMQ words it
/// (`FRAME_ERROR - type 1, all octets = <<…>>: {frame_too_large,4220,4088}`).
/// `input` still starts with the offending frame.
fn frame_decode_fault(e: &crate::codec::DecodeError, input: &[u8]) -> Fault {
    use crate::codec::DecodeError;
    let kind = input.first().copied().unwrap_or(0);
    let size = input
        .get(3..7)
        .map_or(0, |s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]) as usize);
    let payload = input.get(7..7 + size).unwrap_or(&[]);
    let overhead = FRAME_OVERHEAD as u64;
    match e {
        DecodeError::FrameTooLarge { size, max } => connection_fault!(
            FRAME_ERROR,
            "type {kind}, all octets = <<>>: {{frame_too_large,{},{}}}",
            size.saturating_sub(overhead),
            u64::from(*max).saturating_sub(overhead)
        ),
        DecodeError::UnknownFrameType(_) => connection_fault!(
            FRAME_ERROR,
            "type {kind}, all octets = {}: unknown_frame",
            ErlangBinary(payload)
        ),
        DecodeError::BadFrameEnd(end) => connection_fault!(
            FRAME_ERROR,
            "type {kind}, all octets = {}: {{invalid_frame_end_marker,{end}}}",
            ErlangBinary(payload)
        ),
        other => Fault::connection(
            crate::reply::ReplyCode(other.reply_code()),
            format_args!("{other}"),
        ),
    }
}

/// The fault for a method frame that does not decode: 501 naming the method when its ids are
/// known, as RabbitMQ does (`FRAME_ERROR - cannot decode <<…>>`).
fn method_decode_fault(e: &crate::codec::DecodeError, payload: &[u8]) -> Fault {
    let code = crate::reply::ReplyCode(e.reply_code());
    let ids = payload.get(..4).map(|h| {
        (
            u16::from_be_bytes([h[0], h[1]]),
            u16::from_be_bytes([h[2], h[3]]),
        )
    });
    match (e, ids) {
        (crate::codec::DecodeError::UnknownMethod { .. }, _) | (_, None) => {
            Fault::connection(code, format_args!("{e}"))
        }
        (_, Some((class_id, method_id))) => Fault::connection(
            crate::reply::ReplyCode::FRAME_ERROR,
            format_args!("cannot decode {}", ErlangBinary(&payload[4..])),
        )
        .caused_by(class_id, method_id),
    }
}

fn long(s: &str) -> FieldValue {
    FieldValue::LongStr(LongStr::from(s))
}

/// Methods a client may send on a channel; anything else is COMMAND_INVALID.
fn is_client_method(m: &Method) -> bool {
    !matches!(
        m,
        Method::ChannelOpenOk(_)
            | Method::ChannelFlowOk(_)
            | Method::ExchangeDeclareOk(_)
            | Method::ExchangeDeleteOk(_)
            | Method::ExchangeBindOk(_)
            | Method::ExchangeUnbindOk(_)
            | Method::QueueDeclareOk(_)
            | Method::QueueBindOk(_)
            | Method::QueueUnbindOk(_)
            | Method::QueuePurgeOk(_)
            | Method::QueueDeleteOk(_)
            | Method::BasicQosOk(_)
            | Method::BasicConsumeOk(_)
            | Method::BasicCancelOk(_)
            | Method::BasicReturn(_)
            | Method::BasicDeliver(_)
            | Method::BasicGetOk(_)
            | Method::BasicGetEmpty(_)
            | Method::BasicRecoverOk(_)
            | Method::TxSelectOk(_)
            | Method::TxCommitOk(_)
            | Method::TxRollbackOk(_)
            | Method::ConfirmSelectOk(_)
    )
}

/// PLAIN (RFC 4616): `[authzid] NUL authcid NUL passwd`.
fn parse_plain(response: &[u8]) -> Option<(String, String)> {
    let mut parts = response.split(|&b| b == 0);
    let _authzid = parts.next()?;
    let user = parts.next()?;
    let pass = parts.next()?;
    if parts.next().is_some() {
        return None;
    }
    Some((
        String::from(core::str::from_utf8(user).ok()?),
        String::from(core::str::from_utf8(pass).ok()?),
    ))
}

/// AMQPLAIN: a field table without its length prefix, holding LOGIN and PASSWORD.
fn parse_amqplain(response: &[u8]) -> Option<(String, String)> {
    let len = u32::try_from(response.len()).ok()?;
    let mut framed = Vec::with_capacity(response.len() + 4);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(response);
    let table = FieldTable::decode(&framed).ok()?;
    let text = |key: &str| match table.get(key)? {
        FieldValue::LongStr(s) | FieldValue::Bytes(s) => {
            core::str::from_utf8(s.as_bytes()).ok().map(String::from)
        }
        _ => None,
    };
    Some((text("LOGIN")?, text("PASSWORD")?))
}

/// Frame overhead is part of frame_max; the largest body chunk per frame.
pub fn max_body_chunk(frame_max: u32) -> usize {
    (frame_max as usize).saturating_sub(FRAME_OVERHEAD).max(1)
}

/// `basic.publish`, `basic.ack`, `basic.reject` and `basic.nack`: the per-message methods,
/// decoded in place in the read buffer (see `handle_frame`).
fn is_hot_method(payload: &[u8]) -> bool {
    const BASIC: u16 = 60;
    match payload {
        [c0, c1, m0, m1, ..] if u16::from_be_bytes([*c0, *c1]) == BASIC => {
            matches!(u16::from_be_bytes([*m0, *m1]), 40 | 80 | 90 | 120)
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_response_parses_with_and_without_authzid() {
        assert_eq!(
            parse_plain(b"\0guest\0secret"),
            Some(("guest".into(), "secret".into()))
        );
        assert_eq!(
            parse_plain(b"admin\0guest\0secret"),
            Some(("guest".into(), "secret".into()))
        );
        assert_eq!(parse_plain(b"guest"), None);
        assert_eq!(parse_plain(b"\0a\0b\0c"), None);
    }

    #[test]
    fn only_per_message_methods_are_decoded_in_place() {
        let payload = |m: Method| {
            let mut out = Vec::new();
            m.encode(&mut out);
            out
        };
        use crate::codec::{BasicAck, BasicConsume, BasicPublish, QueueDeclare};
        assert!(is_hot_method(&payload(BasicPublish::default().into())));
        assert!(is_hot_method(&payload(BasicAck::default().into())));
        assert!(!is_hot_method(&payload(QueueDeclare::default().into())));
        assert!(!is_hot_method(&payload(BasicConsume::default().into())));
        assert!(!is_hot_method(&[0, 60]));
    }
}
