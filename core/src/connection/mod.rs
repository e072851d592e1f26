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
//! 3. take the bytes to send with [`Connection::take_output`], report each write with
//!    [`Connection::handle_written`] (that returns delivery credit), and arm a timer for
//!    [`Connection::poll_timeout`];
//! 4. once [`Connection::is_closed`] and the output is written, close the socket.
//!
//! The rules every host shares live here, not in the hosts: the broker hears
//! `Command::Close` once, whichever way the connection ends; delivery credit goes back as
//! output is written. [`crate::pump::Pump`] runs connections and a broker on one thread.
//!
//! By concern: `handshake` (header, start, tune, open, connection close), `channels`
//! (channel states and methods), `content` (publish assembly), `events` (broker events to
//! frames), `faults` (the one place a fault becomes `channel.close` / `connection.close`).

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

use bytes::{Bytes, BytesMut};

use crate::codec::{
    decode_frame, encode_heartbeat, BasicPublish, Frame, FrameKind, Method, ShortStr, FRAME_BODY,
    FRAME_HEADER, FRAME_HEARTBEAT, FRAME_METHOD, FRAME_OVERHEAD,
};
use crate::connection_fault;
use crate::reply::Fault;
use crate::vocab::{ClientCapabilities, Command};

mod channels;
mod content;
mod events;
mod faults;
mod handshake;

use channels::Channels;
use content::is_hot_method;
use faults::{frame_decode_fault, method_decode_fault, ErlangBinary};

/// The smallest frame_max a client may ask for (spec constant frame-min-size).
pub use crate::codec::FRAME_MIN_SIZE;

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
    /// The peer connects from this machine (a loopback address, and for WebSocket no
    /// `Origin` a browser would send): only then may a loopback-only user such as `guest` log
    /// in (RabbitMQ's `loopback_users`). Hosts without a network (a page's own broker) keep
    /// the default, true.
    pub from_loopback: bool,
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
            from_loopback: true,
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

/// One client connection. See the module docs for the call order.
pub struct Connection {
    config: ConnectionConfig,
    state: State,
    input: BytesMut,
    output: Vec<u8>,
    commands: VecDeque<Command>,
    /// Indexed by channel number; `None` = not open.
    channels: Channels,
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
    /// Held by publisher flow control: not read until the broker lets go.
    flow_held: bool,
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
            channels: Channels::default(),
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
            flow_held: false,
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
            && !self.flow_held
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

    /// False while the connection is blocked by a resource alarm or held by publisher flow
    /// control: the adapter must stop reading from the socket (TCP backpressure then pauses
    /// the publisher), as RabbitMQ does.
    pub fn wants_input(&self) -> bool {
        !self.blocked
            && !self.flow_held
            && !matches!(
                self.state,
                State::Closed | State::Login | State::OpenOk | State::PeerClosing
            )
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
        if self.blocked || self.flow_held {
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

    fn handle_frame(&mut self, frame: Frame) -> Result<(), Fault> {
        let Frame { channel, kind } = frame;
        // Before `connection.open` only channel 0 may speak (RabbitMQ answers 505).
        if channel != 0 && !matches!(self.state, State::Running | State::Closing) {
            let (kind_id, payload) = match &kind {
                FrameKind::Method(p) => (FRAME_METHOD, p.as_ref()),
                FrameKind::Header(p) => (FRAME_HEADER, p.as_ref()),
                FrameKind::Body(p) => (FRAME_BODY, p.as_ref()),
                FrameKind::Heartbeat => (FRAME_HEARTBEAT, &[][..]),
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
                let method = Method::decode(&payload)
                    .or_else(|e| publish_with_bytes_as_names(&payload).ok_or(e))
                    .map_err(|e| method_decode_fault(&e, &payload))?;
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

/// A `basic.publish` whose exchange or routing key is not UTF-8. RabbitMQ checks the strings
/// of every method but this one: such an exchange is simply not found (404), such a key routes
/// nowhere. Names here are UTF-8, so the bad sequences are replaced (no exchange declared by a
/// client can have the bytes sent) and the publish goes on as any other. `None` if the
/// payload is not a publish or is malformed otherwise.
fn publish_with_bytes_as_names(payload: &[u8]) -> Option<Method> {
    let rest = payload.strip_prefix(&[0, 60, 0, 40][..])?;
    let (reserved, rest) = rest.split_first_chunk::<2>()?;
    let (exchange, rest) = lossy_shortstr(rest)?;
    let (routing_key, rest) = lossy_shortstr(rest)?;
    let [bits] = rest else {
        return None;
    };
    Some(Method::BasicPublish(BasicPublish {
        reserved_1: u16::from_be_bytes(*reserved),
        exchange,
        routing_key,
        mandatory: bits & 1 != 0,
        immediate: bits & 2 != 0,
    }))
}

/// A shortstr and what follows it, with bad UTF-8 replaced (cut to 255 bytes).
fn lossy_shortstr(bytes: &[u8]) -> Option<(ShortStr, &[u8])> {
    let (len, rest) = bytes.split_first()?;
    let len = usize::from(*len);
    if rest.len() < len {
        return None;
    }
    Some((ShortStr::from_utf8_lossy(&rest[..len]), &rest[len..]))
}

/// Frame overhead is part of frame_max; the largest body chunk per frame.
pub fn max_body_chunk(frame_max: u32) -> usize {
    (frame_max as usize).saturating_sub(FRAME_OVERHEAD).max(1)
}
