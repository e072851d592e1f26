//! A small, strict AMQP 0-9-1 client on the core's codec: it encodes what the program asks
//! for, decodes every byte the server writes, and checks each thing it decodes against what
//! the broker (as approved by the oracle) sent it, in order. It keeps the knowledge a client
//! library would keep (open channels, consumer tags, unacked delivery tags), which the runner
//! uses to turn abstract operations into sensible (or deliberately wrong) frames.

use std::collections::VecDeque;

use bytes::{Bytes, BytesMut};
use warren_core::codec::{
    decode_frame, encode_content, encode_heartbeat, encode_method_frame, BasicProperties,
    BasicPublish, ChannelCloseOk, ConnectionCloseOk, ContentHeader, FrameKind, Method, ShortStr,
};

use crate::model::REPLY_TO_PREFIX;

/// Highest channel number a client uses.
pub const MAX_CHANNELS: u16 = 4;

/// Something the client must receive, in order: a broker event as the connection encodes it.
#[derive(Clone, Debug, PartialEq)]
pub struct Expect {
    pub channel: u16,
    pub method: Method,
    /// Raw properties and body, for content-carrying methods.
    pub content: Option<(Bytes, Bytes)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// No connection.
    Down,
    /// Handshake sent (pipelined), connection.open-ok not yet seen.
    Opening,
    Open,
    /// We sent connection.close.
    Closing,
    /// The server closed (or we saw close-ok): waiting for the socket to close.
    Dead,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChState {
    Closed,
    Opening,
    Open,
    /// We sent channel.close.
    Closing,
}

#[derive(Clone, Debug)]
pub struct Chan {
    pub state: ChState,
    /// Every consumer tag seen on this channel and whether it is no-ack.
    pub tags: Vec<(ShortStr, bool)>,
    /// Consumers believed active (for cancel).
    pub active: Vec<ShortStr>,
    /// Consumes sent and not yet answered: (tag asked for, no_ack).
    pub pending_consumes: VecDeque<bool>,
    /// basic.get sent and not yet answered: no_ack.
    pub pending_gets: VecDeque<bool>,
    /// Delivery tags believed unacked, ascending.
    pub unacked: Vec<u64>,
    pub max_tag: u64,
    pub confirm: bool,
    pub tx: bool,
    /// The server closed this channel while we were closing it (both sides closed at once).
    pub crossed: bool,
    /// Synchronous requests sent and not yet answered, oldest first: the reply methods
    /// (class, method ids) each may be answered with.
    pub rpc: VecDeque<(u16, u16, u16)>,
    /// Publishes sent since confirm.select (their sequence numbers are 1..=published).
    pub published: u64,
    /// Sequence numbers sent and not yet confirmed.
    pub unconfirmed: std::collections::BTreeSet<u64>,
}

impl Chan {
    fn new() -> Self {
        Chan {
            state: ChState::Closed,
            tags: Vec::new(),
            active: Vec::new(),
            pending_consumes: VecDeque::new(),
            pending_gets: VecDeque::new(),
            unacked: Vec::new(),
            max_tag: 0,
            confirm: false,
            tx: false,
            crossed: false,
            rpc: VecDeque::new(),
            published: 0,
            unconfirmed: Default::default(),
        }
    }

    fn no_ack_of(&self, tag: &ShortStr) -> Option<bool> {
        self.tags
            .iter()
            .rev()
            .find(|(t, _)| t == tag)
            .map(|(_, n)| *n)
    }
}

struct Partial {
    channel: u16,
    method: Method,
    header: Option<(u64, Bytes)>,
    body: Vec<u8>,
}

pub struct Client {
    pub phase: Phase,
    /// Bytes waiting to go to the server.
    pub out: Vec<u8>,
    input: BytesMut,
    pub frame_max: u32,
    /// Heartbeat interval we asked for, in ms (0 = off).
    pub heartbeat_ms: u64,
    pub last_send_ms: u64,
    /// Last time bytes from the server were read (or reading resumed).
    pub last_recv_ms: u64,
    /// Not reading, not writing.
    pub stalled: bool,
    /// The server said `connection.blocked` (a resource alarm paused our publishing) and has
    /// not yet said `connection.unblocked`.
    pub blocked: bool,
    /// Publishes sent since connecting: a server blocks only a connection that published.
    pub published: u64,
    /// Direct reply-to addresses seen in messages received (kept across reconnects, so that
    /// replies also go to consumers that are gone).
    pub reply_addresses: Vec<ShortStr>,
    pub chans: Vec<Chan>,
    /// Server-named queues we declared.
    pub server_named: Vec<ShortStr>,
    partial: Vec<Partial>,
    pub expected: VecDeque<Expect>,
    /// A connection.close the server's connection (not the broker) will send, by reply code.
    pub local_close: Option<u16>,
    /// Counter for consumer tags (unique for the client's life, so tags are never reused).
    pub next_ctag: u32,
    /// Things received (for statistics).
    pub received: u64,
    /// Check that everything the broker sent before our connection.close arrives before its
    /// close-ok (RabbitMQ flushes channels before answering).
    pub strict_close: bool,
    got_start: bool,
    /// When the connection was opened (virtual ms).
    pub connected_at: u64,
    /// Answer a server channel.close that crosses our own with close-ok (as pika does).
    pub answers_crossed_close: bool,
}

impl Client {
    pub fn new() -> Self {
        Client {
            phase: Phase::Down,
            out: Vec::new(),
            input: BytesMut::new(),
            frame_max: 131_072,
            heartbeat_ms: 0,
            last_send_ms: 0,
            last_recv_ms: 0,
            stalled: false,
            blocked: false,
            published: 0,
            reply_addresses: Vec::new(),
            chans: (0..=MAX_CHANNELS).map(|_| Chan::new()).collect(),
            server_named: Vec::new(),
            partial: Vec::new(),
            expected: VecDeque::new(),
            local_close: None,
            next_ctag: 0,
            received: 0,
            strict_close: true,
            got_start: false,
            connected_at: 0,
            answers_crossed_close: false,
        }
    }

    /// Forgets the connection (after EOF or a kill).
    pub fn reset(&mut self) {
        let next_ctag = self.next_ctag;
        let strict = self.strict_close;
        let answers = self.answers_crossed_close;
        let addresses = std::mem::take(&mut self.reply_addresses);
        *self = Client::new();
        self.reply_addresses = addresses;
        self.next_ctag = next_ctag;
        self.strict_close = strict;
        self.answers_crossed_close = answers;
    }

    pub fn send(&mut self, channel: u16, m: impl Into<Method>) {
        let m = m.into();
        if let (Some(reply), Some(c)) = (reply_of(&m), self.chans.get_mut(usize::from(channel))) {
            if channel != 0 {
                c.rpc.push_back(reply);
            }
        }
        encode_method_frame(&mut self.out, channel, &m);
    }

    pub fn send_heartbeat(&mut self) {
        encode_heartbeat(&mut self.out);
    }

    pub fn send_publish(&mut self, channel: u16, p: BasicPublish, props: &[u8], body: &[u8]) {
        self.published += 1;
        if let Some(c) = self.chans.get_mut(usize::from(channel)) {
            if c.confirm {
                c.published += 1;
                c.unconfirmed.insert(c.published);
            }
        }
        self.send(channel, p);
        encode_content(
            &mut self.out,
            channel,
            BasicPublish::CLASS_ID,
            props,
            body,
            self.frame_max,
        );
    }

    pub fn chan(&mut self, ch: u16) -> &mut Chan {
        &mut self.chans[usize::from(ch)]
    }

    /// Decodes what the server wrote and checks it. Err: an invariant broke.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<(), String> {
        if matches!(self.phase, Phase::Down) {
            return Err("bytes from the server on a connection the client never opened".into());
        }
        self.input.extend_from_slice(bytes);
        loop {
            // Nothing the server sends may exceed the frame_max we agreed on.
            let frame = match decode_frame(&mut self.input, self.frame_max) {
                Ok(Some(f)) => f,
                Ok(None) => return Ok(()),
                Err(e) => return Err(format!("server sent bytes that do not frame: {e}")),
            };
            let ch = frame.channel;
            match frame.kind {
                FrameKind::Heartbeat => {
                    if ch != 0 {
                        return Err(format!("heartbeat on channel {ch}"));
                    }
                }
                FrameKind::Method(p) => {
                    if self.partial.iter().any(|x| x.channel == ch) {
                        return Err(format!("method frame on channel {ch} inside content"));
                    }
                    let m = Method::decode(&p).map_err(|e| format!("undecodable method: {e}"))?;
                    if m.has_content() {
                        self.partial.push(Partial {
                            channel: ch,
                            method: m,
                            header: None,
                            body: Vec::new(),
                        });
                    } else {
                        self.on_item(ch, m, None)?;
                    }
                }
                FrameKind::Header(p) => {
                    let Some(i) = self.partial.iter().position(|x| x.channel == ch) else {
                        return Err(format!("content header without a method on channel {ch}"));
                    };
                    if self.partial[i].header.is_some() {
                        return Err("second content header".into());
                    }
                    let h = ContentHeader::decode(p)
                        .map_err(|e| format!("content header does not decode: {e}"))?;
                    if h.class_id != BasicPublish::CLASS_ID {
                        return Err(format!("content header of class {}", h.class_id));
                    }
                    self.partial[i].header = Some((h.body_size, h.properties.clone()));
                    if h.body_size == 0 {
                        self.complete(i)?;
                    }
                }
                FrameKind::Body(p) => {
                    let Some(i) = self.partial.iter().position(|x| x.channel == ch) else {
                        return Err(format!("body frame without a method on channel {ch}"));
                    };
                    let Some((size, _)) = self.partial[i].header else {
                        return Err("body frame before the content header".into());
                    };
                    if p.is_empty() {
                        return Err("empty body frame".into());
                    }
                    self.partial[i].body.extend_from_slice(&p);
                    if self.partial[i].body.len() as u64 > size {
                        return Err("body longer than its header said".into());
                    }
                    if self.partial[i].body.len() as u64 == size {
                        self.complete(i)?;
                    }
                }
            }
        }
    }

    fn complete(&mut self, i: usize) -> Result<(), String> {
        let p = self.partial.swap_remove(i);
        let (_, props) = p.header.expect("checked");
        self.on_item(p.channel, p.method, Some((props, Bytes::from(p.body))))
    }

    /// One decoded method (with its content): check it, then learn from it.
    fn on_item(
        &mut self,
        ch: u16,
        m: Method,
        content: Option<(Bytes, Bytes)>,
    ) -> Result<(), String> {
        self.received += 1;
        if self.phase == Phase::Dead {
            // After connection.close (either way) only the socket's end is left.
            return Ok(());
        }
        if usize::from(ch) >= self.chans.len() {
            return Err(format!("{} on channel {ch}, which we never use", m.name()));
        }
        // Frames the server's connection writes on its own, not for a broker event.
        let own = match &m {
            Method::ConnectionStart(_) => !std::mem::replace(&mut self.got_start, true),
            Method::ConnectionCloseOk(_) => self.phase == Phase::Closing,
            Method::ChannelCloseOk(_) => {
                let c = &self.chans[usize::from(ch)];
                c.state == ChState::Closing && c.crossed
            }
            Method::ConnectionClose(close) => {
                self.local_close == Some(close.reply_code)
                    && self.expected.front().is_none_or(|e| e.method != m)
            }
            // The connection blocks itself at a publish during an alarm, and unblocks when
            // the alarm clears: once each, in that order, and only after we published.
            Method::ConnectionBlocked(_) => {
                if self.blocked || self.published == 0 {
                    return Err(format!(
                        "connection.blocked (blocked already: {}, publishes sent: {})",
                        self.blocked, self.published
                    ));
                }
                self.blocked = true;
                return Ok(());
            }
            Method::ConnectionUnblocked(_) => {
                if !self.blocked {
                    return Err("connection.unblocked without connection.blocked".into());
                }
                self.blocked = false;
                return Ok(());
            }
            _ => false,
        };
        if !own {
            let Some(exp) = self.expected.pop_front() else {
                return Err(format!(
                    "received {} on channel {ch} that the broker never sent: {m:?}",
                    m.name()
                ));
            };
            let matches = exp.channel == ch
                && match (&exp.method, &m) {
                    // The tune values are the connection's configuration, not the broker's.
                    (Method::ConnectionTune(_), Method::ConnectionTune(_)) => true,
                    (a, b) => a == b,
                }
                && exp.content == content;
            if !matches {
                return Err(format!(
                    "received {} on channel {ch} but the broker sent {} on channel {}: got {m:?} {:?}, expected {:?} {:?}",
                    m.name(),
                    exp.method.name(),
                    exp.channel,
                    content.as_ref().map(|c| c.1.len()),
                    exp.method,
                    exp.content.as_ref().map(|c| c.1.len())
                ));
            }
        }
        if let Some((props, _)) = &content {
            self.note_reply_address(props);
        }
        self.learn(ch, m)
    }

    /// Remembers a direct reply-to address a message carries (the last few).
    fn note_reply_address(&mut self, props: &[u8]) {
        let Ok(p) = BasicProperties::decode(props) else {
            return;
        };
        if let Some(to) = p.reply_to.filter(|t| t.starts_with(REPLY_TO_PREFIX)) {
            if !self.reply_addresses.contains(&to) {
                if self.reply_addresses.len() == 4 {
                    self.reply_addresses.remove(0);
                }
                self.reply_addresses.push(to);
            }
        }
    }

    /// Updates what the client knows, and answers what a client library answers.
    fn learn(&mut self, ch: u16, m: Method) -> Result<(), String> {
        let c = &mut self.chans[usize::from(ch)];
        let ids = (m.class_id(), m.method_id());
        if ch != 0 && is_reply(ids) && !matches!(m, Method::ChannelCloseOk(_)) {
            match c.rpc.pop_front() {
                Some((class, a, b)) if class == ids.0 && (ids.1 == a || ids.1 == b) => {}
                other => {
                    return Err(format!(
                        "reply {} on channel {ch} does not answer the oldest request waiting ({other:?})",
                        m.name()
                    ))
                }
            }
        }
        match m {
            Method::ConnectionOpenOk(_) if self.phase == Phase::Opening => {
                self.phase = Phase::Open;
            }
            Method::ConnectionClose(_) => {
                self.send(0, ConnectionCloseOk);
                self.phase = Phase::Dead;
                self.expected.clear();
            }
            Method::ConnectionCloseOk(_) => {
                if self.strict_close && !self.expected.is_empty() {
                    return Err(format!(
                        "connection.close-ok arrived before {} thing(s) the broker sent earlier, first {:?}",
                        self.expected.len(),
                        self.expected.front().map(|e| e.method.name())
                    ));
                }
                self.phase = Phase::Dead;
                self.expected.clear();
            }
            Method::ChannelOpenOk(_) if c.state == ChState::Opening => {
                c.state = ChState::Open;
            }
            Method::ChannelClose(_) => {
                if c.state == ChState::Closing {
                    // Both sides closed at once. We still wait for the close-ok of our own
                    // close; some clients (pika) also answer the server's close, which
                    // RabbitMQ ignores.
                    c.crossed = true;
                    if self.answers_crossed_close {
                        self.send(ch, ChannelCloseOk);
                    }
                } else {
                    *c = Chan::new();
                    self.send(ch, ChannelCloseOk);
                }
            }
            Method::ChannelCloseOk(_) => {
                *c = Chan::new();
            }
            Method::QueueDeclareOk(ok)
                if ok.queue.starts_with("amq.gen-") && !self.server_named.contains(&ok.queue) =>
            {
                if self.server_named.len() >= 4 {
                    self.server_named.remove(0);
                }
                self.server_named.push(ok.queue);
            }
            Method::BasicConsumeOk(ok) => {
                let no_ack = c.pending_consumes.pop_front().unwrap_or(false);
                c.tags.push((ok.consumer_tag.clone(), no_ack));
                c.active.push(ok.consumer_tag);
            }
            Method::BasicCancelOk(ok) => c.active.retain(|t| *t != ok.consumer_tag),
            Method::BasicCancel(cancel) => c.active.retain(|t| *t != cancel.consumer_tag),
            Method::BasicDeliver(d) => {
                if c.state == ChState::Open && c.no_ack_of(&d.consumer_tag) == Some(false) {
                    c.unacked.push(d.delivery_tag);
                }
                c.max_tag = c.max_tag.max(d.delivery_tag);
            }
            Method::BasicGetOk(g) => {
                let no_ack = c.pending_gets.pop_front().unwrap_or(true);
                if c.state == ChState::Open && !no_ack {
                    c.unacked.push(g.delivery_tag);
                }
                c.max_tag = c.max_tag.max(g.delivery_tag);
            }
            Method::BasicGetEmpty(_) => {
                c.pending_gets.pop_front();
            }
            Method::BasicRecoverOk(_) => c.unacked.clear(),
            Method::BasicAck(a) => settle_confirms(c, a.delivery_tag, a.multiple)?,
            Method::BasicNack(n) => settle_confirms(c, n.delivery_tag, n.multiple)?,
            _ => {}
        }
        Ok(())
    }

    /// The server closed the socket (after we read everything it wrote).
    /// `silent_ms`: how long the server had received nothing when it closed.
    pub fn on_eof(&mut self, silent_ms: u64, now_ms: u64) -> Result<(), String> {
        // A connection the server drops without a close handshake must have been silent
        // (two missed heartbeats), or slow to finish its handshake.
        if matches!(self.phase, Phase::Opening | Phase::Open) && self.local_close.is_none() {
            let silent = silent_ms;
            let heartbeat_expired = self.heartbeat_ms > 0 && silent >= self.heartbeat_ms;
            let handshake_expired =
                self.phase == Phase::Opening && now_ms.saturating_sub(self.connected_at) >= 10_000;
            if !heartbeat_expired && !handshake_expired {
                return Err(format!(
                    "the server dropped the connection ({:?}, heartbeat {} ms, silent for {silent} ms)",
                    self.phase, self.heartbeat_ms
                ));
            }
        }
        if !self.partial.is_empty() {
            return Err("the socket closed in the middle of a message".into());
        }
        if !self.input.is_empty() {
            return Err(format!(
                "the socket closed after {} bytes that are not a whole frame",
                self.input.len()
            ));
        }
        Ok(())
    }
}

/// A publisher confirm arrived: it must cover publishes we made and have not seen confirmed.
fn settle_confirms(c: &mut Chan, tag: u64, multiple: bool) -> Result<(), String> {
    if !c.confirm {
        return Err(format!(
            "a confirm ({tag}) on a channel not in confirm mode"
        ));
    }
    let covered: Vec<u64> = if multiple {
        c.unconfirmed.range(..=tag).copied().collect()
    } else {
        c.unconfirmed.get(&tag).copied().into_iter().collect()
    };
    if covered.is_empty() {
        return Err(format!(
            "confirm {tag} (multiple={multiple}) covers nothing we published and await ({} published)",
            c.published
        ));
    }
    for s in covered {
        c.unconfirmed.remove(&s);
    }
    Ok(())
}

/// The replies a synchronous channel request may get: (class, method, alternative method).
fn reply_of(m: &Method) -> Option<(u16, u16, u16)> {
    let (class, method) = (m.class_id(), m.method_id());
    let reply = match m {
        Method::ChannelOpen(_)
        | Method::ChannelClose(_)
        | Method::ChannelFlow(_)
        | Method::ExchangeDeclare(_)
        | Method::ExchangeDelete(_)
        | Method::ExchangeBind(_)
        | Method::QueueDeclare(_)
        | Method::QueueBind(_)
        | Method::QueuePurge(_)
        | Method::QueueDelete(_)
        | Method::BasicQos(_)
        | Method::BasicConsume(_)
        | Method::BasicCancel(_)
        | Method::TxSelect(_)
        | Method::TxCommit(_)
        | Method::TxRollback(_) => (class, method + 1, method + 1),
        // queue.unbind (50.50) is answered by unbind-ok (50.51); confirm.select (85.10) by
        // select-ok (85.11); basic.recover (60.110) by recover-ok (60.111).
        Method::QueueUnbind(_) | Method::ConfirmSelect(_) | Method::BasicRecover(_) => {
            (class, method + 1, method + 1)
        }
        // exchange.unbind (40.40) is answered by unbind-ok (40.51), as the spec numbers it.
        Method::ExchangeUnbind(_) => (class, 51, 51),
        Method::BasicGet(_) => (class, 71, 72),
        _ => return None,
    };
    Some(reply)
}

/// Whether a method from the server answers a synchronous channel request.
fn is_reply((class, method): (u16, u16)) -> bool {
    matches!(
        (class, method),
        (20, 11 | 21 | 41)
            | (40, 11 | 21 | 31 | 51)
            | (50, 11 | 21 | 31 | 41 | 51)
            | (60, 11 | 21 | 31 | 71 | 72 | 111)
            | (85, 11)
            | (90, 11 | 21 | 31)
    )
}

impl Default for Client {
    fn default() -> Self {
        Self::new()
    }
}
