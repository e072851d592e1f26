//! The oracle: a small reference model of RabbitMQ 3.x's AMQP semantics, run beside the
//! broker and fed exactly the commands the broker is fed.
//!
//! For each command the model applies the operation to its own state and writes down what
//! the broker must answer (replies, errors with their codes and texts, returns, cancel
//! notifications). Then every event the broker emits is checked: replies against that list,
//! in order per connection; deliveries against the dispatch rules (the consumer exists and
//! has room under its prefetch, the message is the head of its queue, the delivery tag is the
//! channel's next, `redelivered` is right); publisher confirms against the publishes still
//! unconfirmed. After the command the model checks that nothing deliverable was left waiting
//! and that the broker's queues hold exactly the messages the model's do.
//!
//! Where RabbitMQ may legitimately choose (which consumer gets a message, server-generated
//! names, coalesced confirms), the model accepts any valid choice and learns it.
//!
//! Message identity: every body starts with an 8-byte id the simulator assigns, so each copy
//! of a message in each queue is tracked from publish to ack, return or death.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;

use bytes::Bytes;
use warren_core::broker::Broker;
use warren_core::codec::{
    peek_delivery_mode, peek_expiration, peek_headers, peek_priority, peek_user_id, BasicCancel,
    BasicCancelOk, BasicConsumeOk, BasicDeliver, BasicGetEmpty, BasicGetOk, BasicProperties,
    BasicQosOk, BasicRecoverOk, BasicReturn, ChannelClose, ChannelCloseOk, ChannelFlowOk,
    ChannelOpenOk, ConfirmSelectOk, ConnectionClose, ConnectionOpenOk, ConnectionTune,
    ExchangeBindOk, ExchangeDeclareOk, ExchangeDeleteOk, ExchangeUnbindOk, FieldTable, FieldValue,
    Method, QueueBindOk, QueueDeclareOk, QueueDeleteOk, QueuePurgeOk, QueueUnbindOk, ShortStr,
    TxCommitOk, TxRollbackOk, TxSelectOk,
};
use warren_core::Command;
use warren_core::{ConnId, Event, Message};

use crate::client::Expect;

mod limits;
mod reply_to;

use limits::{by_value, DeadLetter, Death, Limits};
use reply_to::{PendingReply, ReplyConsumer};
pub use reply_to::{REPLY_TO, REPLY_TO_PREFIX};

pub type MsgId = u64;
type Qid = u32;

/// What a client put on the wire for one publish, as the simulator's client encoded it: the
/// truth every copy of the message is checked against (the broker's decoded commands are not,
/// since a connection that decodes wrongly would make them agree with themselves).
#[derive(Clone, Debug)]
pub struct Sent {
    pub exchange: ShortStr,
    pub routing_key: ShortStr,
    pub properties: Bytes,
    pub body: Bytes,
}

/// Which RabbitMQ behaviours the model insists on where Warren is known to differ (see
/// `sim/regressions.txt`). Off = the model accepts Warren's current behaviour.
#[derive(Clone, Copy, Debug, Default)]
pub struct Strictness {
    /// RabbitMQ returns an unroutable mandatory publish made inside a transaction at commit
    /// (and never, if rolled back); Warren returns it at publish time.
    pub tx_return_at_commit: bool,
    /// RabbitMQ refuses a reused consumer tag (530) before it looks at the queue; Warren
    /// looks at the queue first (404/405 for a missing or locked one).
    pub consumer_tag_first: bool,
}

/// One form of a message: as published, or as a dead letter (another exchange and routing
/// key, `x-death` headers). Copies in queues point at a form by key ([`Inst::msg`]); the form
/// of a published message has its message id as key.
#[derive(Clone, Debug)]
struct MsgInfo {
    /// The message id its body starts with.
    id: MsgId,
    /// Compared byte for byte (as published); a dead letter's properties, which the broker
    /// re-encodes, are compared by value (header tables in any order).
    exact: bool,
    /// delivery_mode = 2: survives a restart in a durable queue.
    persistent: bool,
    exchange: ShortStr,
    rk: ShortStr,
    props: Bytes,
    body: Bytes,
    /// The `priority` property (0 when absent).
    priority: u8,
    /// The `expiration` property: a per-message TTL, ms.
    expiration: Option<u64>,
}

/// One copy of a message in one queue.
#[derive(Clone, Copy, Debug)]
struct Inst {
    /// The form it has (key into `Model::msgs`).
    msg: MsgId,
    /// Place in the queue's publish order: a requeued copy goes back here.
    seq: u64,
    redelivered: bool,
    /// Its priority in this queue: the message's, capped at the queue's `x-max-priority`;
    /// 0 in a plain queue.
    prio: u8,
    /// When it expires (broker time, ms): alive while `now <= expires_at`. A requeued copy
    /// keeps it.
    expires_at: u64,
}

/// `expires_at` of a copy that never expires.
const NEVER: u64 = u64::MAX;

#[derive(Clone, Debug)]
struct MQueue {
    name: ShortStr,
    durable: bool,
    auto_delete: bool,
    exclusive_owner: Option<ConnId>,
    /// `x-max-priority`, for a priority queue.
    max_priority: Option<u8>,
    /// The declare's arguments (for the equivalence check of a redeclare).
    arguments: FieldTable,
    /// `x-message-ttl`, ms.
    message_ttl: Option<u64>,
    /// `x-expires`: deleted after this long unused (no consumers, no declare, no get), ms.
    expires: Option<u64>,
    /// When the queue was last used (for `x-expires`).
    last_used: u64,
    /// Length limits, overflow and dead-lettering.
    limits: Limits,
    /// Ready copies in delivery order: highest `prio` first, then ascending by `seq`.
    ready: VecDeque<Inst>,
    next_seq: u64,
    /// (conn, channel, tag) in the order they started consuming.
    consumers: Vec<(ConnId, u16, ShortStr)>,
    has_exclusive_consumer: bool,
    /// The consumer the last delivery went to, since the consumers last changed: the next
    /// one goes elsewhere if another consumer of the same or higher priority has room
    /// (round-robin).
    last_to: Option<(ConnId, u16, ShortStr)>,
}

impl MQueue {
    /// Puts a copy at its place: after every copy of higher priority, and among its own
    /// priority by publish order (a requeued copy goes back where it was, as in RabbitMQ).
    fn insert_by_seq(&mut self, inst: Inst) {
        let key = |i: &Inst| (core::cmp::Reverse(i.prio), i.seq);
        let at = self.ready.partition_point(|x| key(x) < key(&inst));
        self.ready.insert(at, inst);
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Dest {
    Q(Qid),
    X(ShortStr),
}

#[derive(Clone, Debug, PartialEq)]
struct MBinding {
    dest: Dest,
    key: ShortStr,
    args: FieldTable,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Direct,
    Fanout,
    Topic,
    Headers,
}

impl Kind {
    fn parse(s: &str) -> Option<Kind> {
        Some(match s {
            "direct" => Kind::Direct,
            "fanout" => Kind::Fanout,
            "topic" => Kind::Topic,
            "headers" => Kind::Headers,
            _ => return None,
        })
    }
    fn name(self) -> &'static str {
        match self {
            Kind::Direct => "direct",
            Kind::Fanout => "fanout",
            Kind::Topic => "topic",
            Kind::Headers => "headers",
        }
    }
}

#[derive(Clone, Debug)]
struct MExchange {
    kind: Kind,
    durable: bool,
    auto_delete: bool,
    internal: bool,
    bindings: Vec<MBinding>,
}

#[derive(Clone, Debug)]
struct Unacked {
    tag: u64,
    queue: Qid,
    inst: Inst,
    consumer: Option<ShortStr>,
}

#[derive(Clone, Debug)]
enum TxOp {
    Publish {
        queues: Vec<Qid>,
        msg: MsgId,
        /// Unroutable and mandatory: returned at commit (RabbitMQ).
        returned: bool,
    },
    Ack(Unacked),
    Nack(Unacked, bool),
}

#[derive(Clone, Debug)]
struct MConsumer {
    queue: Qid,
    no_ack: bool,
    prefetch: u16,
    unacked: u32,
    /// consume-ok has gone out (deliveries may follow).
    announced: bool,
    /// `x-priority`: a queue delivers to its highest-priority consumers that have room.
    priority: i64,
}

#[derive(Clone, Debug, Default)]
struct Confirms {
    next_seq: u64,
    pending: BTreeSet<u64>,
    /// Unroutable mandatory publishes whose basic.return has not gone out yet: their confirm
    /// must not come first.
    awaiting_return: BTreeSet<u64>,
    /// A `multiple` ack seen ahead of the publishes it covers: the broker folded the confirm of
    /// a later command of the batch into an earlier ack still queued.
    future_upto: u64,
    /// Publishes a full queue refused (`x-overflow` reject-publish): nacked, not acked.
    nacks: BTreeSet<u64>,
    /// The message of each publish awaiting its confirm.
    ids: BTreeMap<u64, MsgId>,
}

#[derive(Clone, Debug)]
struct MChannel {
    next_tag: u64,
    /// Ascending by tag.
    unacked: Vec<Unacked>,
    consumers: BTreeMap<ShortStr, MConsumer>,
    consumer_prefetch: u16,
    global_prefetch: u16,
    /// Consumer deliveries not yet settled (held tx acks included).
    consumer_unacked: u32,
    confirm: Option<Confirms>,
    tx: Option<Vec<TxOp>>,
    last_queue: Option<ShortStr>,
    /// Its direct reply-to consumer.
    reply: Option<ReplyConsumer>,
}

impl MChannel {
    fn new() -> Self {
        MChannel {
            next_tag: 1,
            unacked: Vec::new(),
            consumers: BTreeMap::new(),
            consumer_prefetch: 0,
            global_prefetch: 0,
            consumer_unacked: 0,
            confirm: None,
            tx: None,
            last_queue: None,
            reply: None,
        }
    }

    fn has_room(&self, tag: &ShortStr) -> bool {
        let Some(c) = self.consumers.get(tag) else {
            return false;
        };
        if c.no_ack {
            return true;
        }
        if c.prefetch != 0 && c.unacked >= u32::from(c.prefetch) {
            return false;
        }
        self.global_prefetch == 0 || self.consumer_unacked < u32::from(self.global_prefetch)
    }

    /// Credit a delivery holds stops counting.
    fn forget(&mut self, u: &Unacked) {
        if let Some(tag) = &u.consumer {
            if let Some(c) = self.consumers.get_mut(tag) {
                c.unacked = c.unacked.saturating_sub(1);
            }
            self.consumer_unacked = self.consumer_unacked.saturating_sub(1);
        }
    }

    fn hold(&mut self, u: &Unacked) {
        if let Some(tag) = &u.consumer {
            if let Some(c) = self.consumers.get_mut(tag) {
                c.unacked += 1;
            }
            self.consumer_unacked += 1;
        }
    }

    /// The deliveries an ack/nack names; None if a named tag is unknown.
    fn take(&mut self, tag: u64, multiple: bool) -> Option<Vec<Unacked>> {
        let taken: Vec<Unacked> = if multiple {
            if tag != 0 && !self.unacked.iter().any(|u| u.tag == tag) {
                return None;
            }
            let n = if tag == 0 {
                self.unacked.len()
            } else {
                self.unacked.partition_point(|u| u.tag <= tag)
            };
            self.unacked.drain(..n).collect()
        } else {
            let i = self.unacked.iter().position(|u| u.tag == tag)?;
            vec![self.unacked.remove(i)]
        };
        for u in &taken {
            self.forget(u);
        }
        Some(taken)
    }
}

#[derive(Clone, Debug)]
struct MConn {
    open: bool,
    notify: bool,
    /// What deliveries may still cost (`Command::Credit`); `None`: no flow control.
    window: Option<u64>,
    channels: BTreeMap<u16, MChannel>,
    exclusive: Vec<Qid>,
    /// It published during the memory alarm: the connection reads nothing more until the
    /// alarm clears.
    blocked: bool,
    /// Publisher flow control held it at some point: commands it had read before a hold reach
    /// the broker after it, perhaps once an alarm came and it published, so `blocked` cannot be
    /// checked for it any more (it stays checked for every connection never held).
    flow_held: bool,
}

/// What the broker must emit for the command being handled.
#[derive(Clone, Debug)]
enum Exp {
    Method(u16, Method),
    /// basic.get-ok or basic.return carrying this message.
    Content(u16, Method, MsgId),
    /// queue.declare-ok for a server-named queue: the name is the broker's choice.
    DeclareOkNamed(u16, Qid),
    /// basic.consume-ok with a server-generated tag, registered under a placeholder.
    ConsumeOkNamed(u16, ShortStr),
    ChannelError(u16, u16, String, u16, u16),
    ConnectionError(u16, String, u16, u16),
    LoginOk,
    OpenOk,
    /// The broker let the connection go (answering `Command::Close`).
    Closed,
}

/// An error the model predicts.
struct Fault {
    conn: bool,
    code: u16,
    text: String,
    class_id: u16,
    method_id: u16,
}

fn code_name(code: u16) -> &'static str {
    match code {
        403 => "ACCESS_REFUSED",
        404 => "NOT_FOUND",
        405 => "RESOURCE_LOCKED",
        406 => "PRECONDITION_FAILED",
        503 => "COMMAND_INVALID",
        504 => "CHANNEL_ERROR",
        530 => "NOT_ALLOWED",
        540 => "NOT_IMPLEMENTED",
        _ => "UNKNOWN",
    }
}

fn ch_err(code: u16, text: impl std::fmt::Display) -> Fault {
    Fault {
        conn: false,
        code,
        text: format!("{} - {text}", code_name(code)),
        class_id: 0,
        method_id: 0,
    }
}

fn conn_err(code: u16, text: impl std::fmt::Display) -> Fault {
    Fault {
        conn: true,
        ..ch_err(code, text)
    }
}

fn no_queue(name: &str) -> Fault {
    ch_err(404, format_args!("no queue '{name}' in vhost '/'"))
}

fn no_exchange(name: &str) -> Fault {
    ch_err(404, format_args!("no exchange '{name}' in vhost '/'"))
}

fn locked(name: &str) -> Fault {
    ch_err(
        405,
        format_args!(
            "cannot obtain exclusive access to locked queue '{name}' in vhost '/'. \
             It could be originally declared on another connection or the exclusive property \
             value does not match that of the original declaration."
        ),
    )
}

fn default_refused() -> Fault {
    ch_err(403, "operation not permitted on the default exchange")
}

fn inequivalent(what: &str, arg: &str, name: &str, got: bool, have: bool) -> Fault {
    ch_err(
        406,
        format_args!(
            "inequivalent arg '{arg}' for {what} '{name}' in vhost '/': received '{got}' but current is '{have}'"
        ),
    )
}

/// RabbitMQ's topic matching: words split on '.', `*` one word, `#` zero or more; the empty
/// key has no words.
pub fn topic_matches(pattern: &str, key: &str) -> bool {
    fn words(s: &str) -> Vec<&str> {
        if s.is_empty() {
            Vec::new()
        } else {
            s.split('.').collect()
        }
    }
    fn go(p: &[&str], w: &[&str]) -> bool {
        match p.split_first() {
            None => w.is_empty(),
            Some((&"#", rest)) => (0..=w.len()).any(|i| go(rest, &w[i..])),
            Some((&"*", rest)) => !w.is_empty() && go(rest, &w[1..]),
            Some((x, rest)) => w.first() == Some(x) && go(rest, &w[1..]),
        }
    }
    go(&words(pattern), &words(key))
}

/// RabbitMQ's headers matching (x-match all/any; `x-` keys ignored; void = presence).
pub fn headers_matches(args: &FieldTable, headers: Option<&FieldTable>) -> bool {
    let any = matches!(args.get("x-match"), Some(FieldValue::LongStr(s)) if s.as_bytes() == b"any");
    let mut checked = 0;
    let mut matched = 0;
    for (k, want) in args.iter() {
        if k.starts_with("x-") {
            continue;
        }
        checked += 1;
        let ok = match headers.and_then(|h| h.get(k)) {
            None => false,
            Some(have) => matches!(want, FieldValue::Void) || have == want,
        };
        matched += usize::from(ok);
    }
    if any {
        matched > 0
    } else {
        matched == checked
    }
}

impl Model {
    /// How a message the broker sent differs from form `key` of it, if it does.
    fn differs_from(&self, key: MsgId, message: &Message) -> Option<String> {
        let info = &self.msgs[&key];
        let expected = match self.resolve_reply_to(&info.props, message.properties()) {
            Ok(p) => p,
            Err(e) => return Some(e),
        };
        let sent = Sent {
            exchange: info.exchange.clone(),
            routing_key: info.rk.clone(),
            properties: expected.clone(),
            body: info.body.clone(),
        };
        let props = if info.exact || by_value(message.properties()) != by_value(&expected) {
            message.properties()
        } else {
            &expected
        };
        differs(
            &sent,
            message.exchange(),
            message.routing_key(),
            props,
            message.body(),
        )
    }
}

/// How a message differs from what was published, if it does: the first field that does.
fn differs(
    sent: &Sent,
    exchange: &ShortStr,
    rk: &ShortStr,
    props: &Bytes,
    body: &Bytes,
) -> Option<String> {
    if *exchange != sent.exchange {
        return Some(format!("exchange '{exchange}', sent '{}'", sent.exchange));
    }
    if *rk != sent.routing_key {
        return Some(format!("routing key '{rk}', sent '{}'", sent.routing_key));
    }
    if *props != sent.properties {
        return Some(format!(
            "properties {:?}, sent {:?}",
            BasicProperties::decode(props),
            BasicProperties::decode(&sent.properties)
        ));
    }
    if *body != sent.body {
        let at = body
            .iter()
            .zip(sent.body.iter())
            .take_while(|(a, b)| a == b)
            .count();
        return Some(format!(
            "body of {} bytes, sent {} (first difference at byte {at})",
            body.len(),
            sent.body.len()
        ));
    }
    None
}

/// A queue argument as RabbitMQ's inequivalence message shows it.
fn describe_arg(v: Option<&FieldValue>) -> String {
    match v {
        None => "none".into(),
        Some(FieldValue::I32(n)) => format!("the value '{n}' of type 'signedint'"),
        Some(FieldValue::LongStr(s)) => format!(
            "the value '{}' of type 'longstr'",
            String::from_utf8_lossy(s.as_bytes())
        ),
        Some(other) => format!("{other:?}"),
    }
}

/// RabbitMQ's name for a field's type in reply texts (the kinds the workload sends).
fn field_type(v: &FieldValue) -> &'static str {
    match v {
        FieldValue::I8(_) => "byte",
        FieldValue::I32(_) => "signedint",
        FieldValue::I64(_) => "long",
        FieldValue::LongStr(_) => "longstr",
        FieldValue::Timestamp(_) => "timestamp",
        _ => "another type",
    }
}

/// Body prefix carrying the message id.
pub fn msg_id(body: &[u8]) -> Option<MsgId> {
    Some(u64::from_be_bytes(body.get(..8)?.try_into().ok()?))
}

/// A command as the model reads it: taken from the [`Command`] before the broker consumes it.
#[derive(Debug)]
pub enum Cmd {
    Login {
        notify: bool,
    },
    Open,
    Method {
        channel: u16,
        method: Method,
    },
    Publish {
        channel: u16,
        mandatory: bool,
        immediate: bool,
        message: Message,
    },
    ChannelGone {
        channel: u16,
    },
    /// Delivery credit: opens or refills the connection's window.
    Credit(u64),
    Close,
    /// Anything the model does not know (new commands; the simulator does not produce them).
    Other,
}

impl Cmd {
    pub fn of(c: &Command) -> Cmd {
        #[allow(unreachable_patterns)]
        match c {
            Command::Login { capabilities, .. } => Cmd::Login {
                notify: capabilities.consumer_cancel_notify,
            },
            Command::Open { .. } => Cmd::Open,
            Command::Method { channel, method } => Cmd::Method {
                channel: *channel,
                method: method.clone(),
            },
            Command::Publish {
                channel,
                flags,
                message,
            } => Cmd::Publish {
                channel: *channel,
                mandatory: flags.mandatory,
                immediate: flags.immediate,
                message: message.clone(),
            },
            Command::ChannelGone { channel } => Cmd::ChannelGone { channel: *channel },
            Command::Credit(credit) => Cmd::Credit(*credit),
            Command::Close => Cmd::Close,
            _ => Cmd::Other,
        }
    }
}

/// What [`Model::on_event`] made of an event.
#[allow(clippy::large_enum_variant)] // short-lived, never stored
pub enum Step {
    /// It belongs to the command being checked; the client must receive this (if anything).
    Took(Option<Expect>),
    /// It does not fit the command being checked (whose events are all in): it belongs to the
    /// next command of the batch.
    NotMine,
}

#[derive(Clone)]
pub struct Model {
    pub strict: Strictness,
    /// A violation found while applying a command (checked by `end_command`).
    late: Option<String>,
    /// The memory alarm is on.
    alarm: bool,
    /// A persistent map: a snapshot of the model at each sync shares it.
    msgs: imbl::OrdMap<MsgId, MsgInfo>,
    /// Every publish the clients wrote, by message id (see [`Sent`]).
    sent: imbl::OrdMap<MsgId, Sent>,
    /// Key of the next dead-letter form in `msgs` (above every message id).
    next_form: MsgId,
    /// Number of the last reply consumer.
    next_reply: u64,
    /// The broker's reply address key of each reply consumer, once seen.
    reply_keys: std::cell::RefCell<BTreeMap<u64, ShortStr>>,
    /// Replies the broker must deliver during the command being handled.
    replies: VecDeque<PendingReply>,
    /// Dead messages waiting to be republished.
    dead_letters: VecDeque<DeadLetter>,
    queues: BTreeMap<Qid, MQueue>,
    names: BTreeMap<ShortStr, Qid>,
    next_qid: Qid,
    exchanges: BTreeMap<ShortStr, MExchange>,
    conns: BTreeMap<ConnId, MConn>,
    /// Expectations of the command being handled: (conn, what, matched).
    exp: Vec<(ConnId, Exp, bool)>,
    /// Messages whose publishers are told they are safe by the next `basic.ack` or
    /// `tx.commit-ok` decided on that channel (see [`Model::take_promised`]).
    promises: BTreeMap<(ConnId, u16), Vec<MsgId>>,
    /// Placeholder names for server-generated consumer tags.
    placeholder: u64,
    /// Counters, for the report.
    pub delivered: u64,
    pub confirmed: u64,
    /// Publishers held by flow control.
    pub flow_holds: u64,
    pub errors: u64,
    pub published: u64,
    pub routed: u64,
    /// Messages dropped for their TTL.
    pub expired: u64,
    /// Messages a full queue refused (reject-publish), dropped from its head (drop-head), and
    /// republished dead letters.
    pub refused: u64,
    pub dropped: u64,
    pub dead_lettered: u64,
    /// The broker's clock (ms): the time of the input being handled, set by the runner.
    pub now: u64,
    pub error_kinds: BTreeMap<String, u64>,
}

impl Model {
    pub fn new(strict: Strictness) -> Self {
        let mut m = Model {
            strict,
            late: None,
            alarm: false,
            msgs: imbl::OrdMap::new(),
            sent: imbl::OrdMap::new(),
            next_form: 1 << 48,
            next_reply: 0,
            reply_keys: Default::default(),
            replies: VecDeque::new(),
            dead_letters: VecDeque::new(),
            queues: BTreeMap::new(),
            names: BTreeMap::new(),
            next_qid: 1,
            exchanges: BTreeMap::new(),
            conns: BTreeMap::new(),
            exp: Vec::new(),
            promises: BTreeMap::new(),
            placeholder: 0,
            delivered: 0,
            confirmed: 0,
            flow_holds: 0,
            errors: 0,
            published: 0,
            routed: 0,
            expired: 0,
            refused: 0,
            dropped: 0,
            dead_lettered: 0,
            now: 0,
            error_kinds: BTreeMap::new(),
        };
        for (name, kind) in [
            ("", Kind::Direct),
            ("amq.direct", Kind::Direct),
            ("amq.fanout", Kind::Fanout),
            ("amq.topic", Kind::Topic),
            ("amq.headers", Kind::Headers),
            ("amq.match", Kind::Headers),
        ] {
            m.exchanges.insert(
                ShortStr::from(name),
                MExchange {
                    kind,
                    durable: true,
                    auto_delete: false,
                    internal: false,
                    bindings: Vec::new(),
                },
            );
        }
        m
    }

    // -----------------------------------------------------------------------------------------
    // Commands
    // -----------------------------------------------------------------------------------------

    /// The broker handled `cmd` from `conn`: apply it, noting what must come out.
    pub fn on_command(&mut self, conn: ConnId, cmd: &Cmd) {
        self.exp.clear();
        if let Some(c) = self.conns.get_mut(&conn) {
            let read = matches!(cmd, Cmd::Method { .. } | Cmd::Publish { .. });
            if read && c.blocked && !c.flow_held {
                self.late = Some(format!(
                    "connection {} was read while blocked by the memory alarm: {cmd:?}",
                    conn.0
                ));
            }
            if self.alarm && matches!(cmd, Cmd::Publish { .. }) {
                c.blocked = true;
            }
        }
        match cmd {
            Cmd::Login { notify } => {
                self.conns.insert(
                    conn,
                    MConn {
                        open: false,
                        notify: *notify,
                        window: None,
                        channels: BTreeMap::new(),
                        exclusive: Vec::new(),
                        blocked: false,
                        flow_held: false,
                    },
                );
                self.expect(conn, Exp::LoginOk);
            }
            Cmd::Open => {
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.open = true;
                    self.expect(conn, Exp::OpenOk);
                }
            }
            Cmd::Method { channel, method } => {
                let Some(c) = self.conns.get_mut(&conn) else {
                    return;
                };
                if !c.open {
                    return;
                }
                if let Method::ChannelOpen(_) = method {
                    c.channels.insert(*channel, MChannel::new());
                    self.expect(conn, Exp::Method(*channel, ChannelOpenOk::default().into()));
                    return;
                }
                if !c.channels.contains_key(channel) {
                    return;
                }
                if let Err(f) = self.method(conn, *channel, method) {
                    let (class_id, method_id) = if f.class_id == 0 && f.method_id == 0 {
                        (method.class_id(), method.method_id())
                    } else {
                        (f.class_id, f.method_id)
                    };
                    self.raise(conn, *channel, f, class_id, method_id);
                }
            }
            Cmd::Publish {
                channel,
                mandatory,
                immediate,
                message,
            } => {
                if let Err(f) = self.publish(
                    conn,
                    *channel,
                    *mandatory,
                    *immediate,
                    message.exchange(),
                    message.routing_key(),
                    message.properties(),
                    message.body(),
                ) {
                    self.raise(conn, *channel, f, 60, 40);
                }
            }
            Cmd::ChannelGone { channel } => self.close_channel(conn, *channel),
            Cmd::Close => {
                // The broker answers the close of a connection it knows with `Closed` (the
                // connection then sends close-ok to a client that asked).
                if self.conns.contains_key(&conn) {
                    self.close_connection(conn);
                    self.expect(conn, Exp::Closed);
                }
            }
            Cmd::Other => {}
            Cmd::Credit(credit) => {
                // Nothing answers it; it may make queues deliverable again.
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.window = Some(c.window.unwrap_or(0).saturating_add(*credit));
                }
            }
        }
        self.drain_dead_letters();
    }

    /// The memory alarm is raised or cleared (before the broker hears of it).
    pub fn set_alarm(&mut self, on: bool) {
        self.alarm = on;
        if !on {
            for c in self.conns.values_mut() {
                c.blocked = false;
            }
        }
    }

    /// A client wrote a publish of message `id` (before any of its bytes reach the broker).
    pub fn note_sent(&mut self, id: MsgId, sent: Sent) {
        self.sent.insert(id, sent);
    }

    fn expect(&mut self, conn: ConnId, e: Exp) {
        self.exp.push((conn, e, false));
    }

    fn reply(&mut self, conn: ConnId, channel: u16, m: impl Into<Method>) {
        self.expect(conn, Exp::Method(channel, m.into()));
    }

    fn raise(&mut self, conn: ConnId, channel: u16, f: Fault, class_id: u16, method_id: u16) {
        self.errors += 1;
        if std::env::var_os("SIM_ERRORS").is_some() {
            let key: String = f.text.chars().take(60).collect();
            *self
                .error_kinds
                .entry(format!("{key} ({class_id}.{method_id})"))
                .or_default() += 1;
        }
        if f.conn {
            self.close_connection(conn);
            self.expect(
                conn,
                Exp::ConnectionError(f.code, f.text, class_id, method_id),
            );
        } else {
            self.close_channel(conn, channel);
            self.expect(
                conn,
                Exp::ChannelError(channel, f.code, f.text, class_id, method_id),
            );
        }
    }

    fn chan(&mut self, conn: ConnId, channel: u16) -> &mut MChannel {
        self.conns
            .get_mut(&conn)
            .and_then(|c| c.channels.get_mut(&channel))
            .expect("channel checked open")
    }

    /// An empty queue name means the channel's last declared queue.
    fn resolve(&mut self, conn: ConnId, channel: u16, name: &ShortStr) -> Result<ShortStr, Fault> {
        if !name.is_empty() {
            return Ok(name.clone());
        }
        self.chan(conn, channel)
            .last_queue
            .clone()
            .ok_or_else(|| ch_err(404, "no previously declared queue"))
    }

    /// A queue this connection may use.
    fn usable(&self, conn: ConnId, name: &str) -> Result<Qid, Fault> {
        let id = *self.names.get(name).ok_or_else(|| no_queue(name))?;
        match self.queues[&id].exclusive_owner {
            Some(owner) if owner != conn => Err(locked(name)),
            _ => Ok(id),
        }
    }

    fn method(&mut self, conn: ConnId, ch: u16, method: &Method) -> Result<(), Fault> {
        match method {
            Method::ChannelClose(_) => {
                self.close_channel(conn, ch);
                self.reply(conn, ch, ChannelCloseOk);
            }
            Method::ChannelFlow(f) => {
                if !f.active {
                    return Err(conn_err(540, "active=false"));
                }
                self.reply(conn, ch, ChannelFlowOk { active: true });
            }
            Method::ExchangeDeclare(m) => {
                let name = &m.exchange;
                if name.is_empty() {
                    return Err(default_refused());
                }
                if m.passive {
                    if !self.exchanges.contains_key(name) {
                        return Err(no_exchange(name));
                    }
                } else {
                    let Some(kind) = Kind::parse(&m.kind) else {
                        return Err(conn_err(
                            503,
                            format_args!("unknown exchange type '{}'", m.kind),
                        ));
                    };
                    match self.exchanges.get(name) {
                        None if name.starts_with("amq.") => {
                            return Err(ch_err(
                                403,
                                format_args!(
                                    "exchange name '{name}' contains reserved prefix 'amq.*'"
                                ),
                            ))
                        }
                        None => {
                            self.exchanges.insert(
                                name.clone(),
                                MExchange {
                                    kind,
                                    durable: m.durable,
                                    auto_delete: m.auto_delete,
                                    internal: m.internal,
                                    bindings: Vec::new(),
                                },
                            );
                        }
                        Some(x) => {
                            if x.kind != kind {
                                return Err(ch_err(406, format_args!(
                                    "inequivalent arg 'type' for exchange '{name}' in vhost '/': received '{}' but current is '{}'",
                                    kind.name(), x.kind.name()
                                )));
                            }
                            for (arg, got, have) in [
                                ("durable", m.durable, x.durable),
                                ("auto_delete", m.auto_delete, x.auto_delete),
                                ("internal", m.internal, x.internal),
                            ] {
                                if got != have {
                                    return Err(inequivalent("exchange", arg, name, got, have));
                                }
                            }
                        }
                    }
                }
                self.reply(conn, ch, ExchangeDeclareOk);
            }
            Method::ExchangeDelete(m) => {
                let name = &m.exchange;
                if name.is_empty() {
                    return Err(default_refused());
                }
                if name.starts_with("amq.") {
                    return Err(ch_err(
                        403,
                        format_args!(
                            "deletion of system exchange '{name}' in vhost '/' not allowed"
                        ),
                    ));
                }
                if let Some(x) = self.exchanges.get(name) {
                    if m.if_unused && !x.bindings.is_empty() {
                        return Err(ch_err(
                            406,
                            format_args!("exchange '{name}' in vhost '/' in use"),
                        ));
                    }
                    self.delete_exchange(name);
                }
                self.reply(conn, ch, ExchangeDeleteOk);
            }
            Method::ExchangeBind(m) => {
                if m.source.is_empty() || m.destination.is_empty() {
                    return Err(default_refused());
                }
                if !self.exchanges.contains_key(&m.destination) {
                    return Err(no_exchange(&m.destination));
                }
                let Some(x) = self.exchanges.get_mut(&m.source) else {
                    return Err(no_exchange(&m.source));
                };
                let b = MBinding {
                    dest: Dest::X(m.destination.clone()),
                    key: m.routing_key.clone(),
                    args: m.arguments.clone(),
                };
                if !x.bindings.contains(&b) {
                    x.bindings.push(b);
                }
                self.reply(conn, ch, ExchangeBindOk);
            }
            Method::ExchangeUnbind(m) => {
                if m.source.is_empty() || m.destination.is_empty() {
                    return Err(default_refused());
                }
                let b = MBinding {
                    dest: Dest::X(m.destination.clone()),
                    key: m.routing_key.clone(),
                    args: m.arguments.clone(),
                };
                self.remove_binding(&m.source, &b);
                self.reply(conn, ch, ExchangeUnbindOk);
            }
            Method::QueueDeclare(m) => self.queue_declare(conn, ch, m)?,
            Method::QueueBind(m) => {
                let name = self.resolve(conn, ch, &m.queue)?;
                if m.exchange.is_empty() {
                    return Err(default_refused());
                }
                let id = self.usable(conn, &name)?;
                let Some(x) = self.exchanges.get_mut(&m.exchange) else {
                    return Err(no_exchange(&m.exchange));
                };
                let b = MBinding {
                    dest: Dest::Q(id),
                    key: m.routing_key.clone(),
                    args: m.arguments.clone(),
                };
                if !x.bindings.contains(&b) {
                    x.bindings.push(b);
                }
                self.reply(conn, ch, QueueBindOk);
            }
            Method::QueueUnbind(m) => {
                let name = self.resolve(conn, ch, &m.queue)?;
                if m.exchange.is_empty() {
                    return Err(default_refused());
                }
                match self.usable(conn, &name) {
                    Ok(id) => {
                        let b = MBinding {
                            dest: Dest::Q(id),
                            key: m.routing_key.clone(),
                            args: m.arguments.clone(),
                        };
                        self.remove_binding(&m.exchange, &b);
                    }
                    Err(f) if f.code == 404 => {}
                    Err(f) => return Err(f),
                }
                self.reply(conn, ch, QueueUnbindOk);
            }
            Method::QueuePurge(m) => {
                let name = self.resolve(conn, ch, &m.queue)?;
                let id = self.usable(conn, &name)?;
                let q = self.queues.get_mut(&id).expect("usable");
                let n = q.ready.len() as u32;
                q.ready.clear();
                self.reply(conn, ch, QueuePurgeOk { message_count: n });
            }
            Method::QueueDelete(m) => {
                let name = self.resolve(conn, ch, &m.queue)?;
                let id = match self.usable(conn, &name) {
                    Ok(id) => id,
                    Err(f) if f.code == 404 => {
                        self.reply(conn, ch, QueueDeleteOk { message_count: 0 });
                        return Ok(());
                    }
                    Err(f) => return Err(f),
                };
                let q = &self.queues[&id];
                if m.if_unused && !q.consumers.is_empty() {
                    return Err(ch_err(
                        406,
                        format_args!("queue '{name}' in vhost '/' in use"),
                    ));
                }
                if m.if_empty && !q.ready.is_empty() {
                    return Err(ch_err(
                        406,
                        format_args!("queue '{name}' in vhost '/' not empty"),
                    ));
                }
                let n = q.ready.len() as u32;
                self.reply(conn, ch, QueueDeleteOk { message_count: n });
                self.delete_queue(id);
            }
            Method::BasicQos(m) => {
                if m.prefetch_size != 0 {
                    return Err(conn_err(
                        540,
                        format_args!("prefetch_size!=0 ({})", m.prefetch_size),
                    ));
                }
                let c = self.chan(conn, ch);
                if m.global {
                    c.global_prefetch = m.prefetch_count;
                } else {
                    c.consumer_prefetch = m.prefetch_count;
                }
                self.reply(conn, ch, BasicQosOk);
            }
            Method::BasicConsume(m) if m.queue.as_str() == REPLY_TO => {
                self.consume_reply_to(conn, ch, m)?;
            }
            Method::BasicConsume(m) => {
                let reused = |s: &mut Self| {
                    if !m.consumer_tag.is_empty()
                        && s.chan(conn, ch).consumers.contains_key(&m.consumer_tag)
                    {
                        return Err(conn_err(
                            530,
                            format_args!("attempt to reuse consumer tag '{}'", m.consumer_tag),
                        ));
                    }
                    Ok(())
                };
                // RabbitMQ looks the tag up before anything else.
                if self.strict.consumer_tag_first {
                    reused(self)?;
                }
                let name = self.resolve(conn, ch, &m.queue)?;
                let id = self.usable(conn, &name)?;
                // Arguments before exclusive use; an integer of any width, not a timestamp.
                let priority = match m.arguments.get("x-priority") {
                    None => 0,
                    Some(v) => v
                        .as_i64()
                        .filter(|_| !matches!(v, FieldValue::Timestamp(_)))
                        .ok_or_else(|| {
                            ch_err(
                                406,
                                format_args!(
                                    "invalid arg 'x-priority' for queue '{name}' in vhost '/': \"expected integer, got {}\"",
                                    field_type(v)
                                ),
                            )
                        })?,
                };
                let q = &self.queues[&id];
                if q.has_exclusive_consumer || (m.exclusive && !q.consumers.is_empty()) {
                    return Err(ch_err(
                        403,
                        format_args!("queue '{name}' in vhost '/' in exclusive use"),
                    ));
                }
                if !self.strict.consumer_tag_first {
                    reused(self)?;
                }
                let (tag, named) = if m.consumer_tag.is_empty() {
                    self.placeholder += 1;
                    (
                        ShortStr::from(format!("\u{0}ctag{}", self.placeholder)),
                        false,
                    )
                } else {
                    (m.consumer_tag.clone(), true)
                };
                let c = self.chan(conn, ch);
                let prefetch = c.consumer_prefetch;
                c.consumers.insert(
                    tag.clone(),
                    MConsumer {
                        queue: id,
                        no_ack: m.no_ack,
                        prefetch,
                        unacked: 0,
                        announced: false,
                        priority,
                    },
                );
                let now = self.now;
                let q = self.queues.get_mut(&id).expect("usable");
                q.last_used = now;
                q.consumers.push((conn, ch, tag.clone()));
                q.last_to = None;
                q.has_exclusive_consumer = m.exclusive;
                if named {
                    self.reply(conn, ch, BasicConsumeOk { consumer_tag: tag });
                } else {
                    self.expect(conn, Exp::ConsumeOkNamed(ch, tag));
                }
            }
            Method::BasicCancel(m) => {
                let c = self.chan(conn, ch);
                if let Some(c) = c.consumers.remove(&m.consumer_tag) {
                    self.detach(conn, ch, &m.consumer_tag, c.queue);
                } else if c.reply.as_ref().is_some_and(|r| r.tag == m.consumer_tag) {
                    c.reply = None;
                }
                self.reply(
                    conn,
                    ch,
                    BasicCancelOk {
                        consumer_tag: m.consumer_tag.clone(),
                    },
                );
            }
            Method::BasicGet(m) => {
                let name = self.resolve(conn, ch, &m.queue)?;
                let id = self.usable(conn, &name)?;
                self.use_queue(id);
                let q = self.queues.get_mut(&id).expect("usable");
                let Some(inst) = q.ready.pop_front() else {
                    self.reply(conn, ch, BasicGetEmpty::default());
                    return Ok(());
                };
                // The count is taken once the new head's TTL was looked at.
                self.expire_heads(id);
                let count = self.queues[&id].ready.len() as u32;
                let info = &self.msgs[&inst.msg];
                let c = self
                    .conns
                    .get_mut(&conn)
                    .unwrap()
                    .channels
                    .get_mut(&ch)
                    .unwrap();
                let tag = c.next_tag;
                c.next_tag += 1;
                let get_ok = BasicGetOk {
                    delivery_tag: tag,
                    redelivered: inst.redelivered,
                    exchange: info.exchange.clone(),
                    routing_key: info.rk.clone(),
                    message_count: count,
                };
                if !m.no_ack {
                    c.unacked.push(Unacked {
                        tag,
                        queue: id,
                        inst,
                        consumer: None,
                    });
                }
                self.delivered += 1;
                self.expect(conn, Exp::Content(ch, get_ok.into(), inst.msg));
            }
            Method::BasicAck(m) => self.settle(conn, ch, m.delivery_tag, m.multiple, None)?,
            Method::BasicNack(m) => {
                self.settle(conn, ch, m.delivery_tag, m.multiple, Some(m.requeue))?
            }
            Method::BasicReject(m) => {
                self.settle(conn, ch, m.delivery_tag, false, Some(m.requeue))?
            }
            Method::BasicRecover(m) => {
                if !m.requeue {
                    return Err(conn_err(540, "requeue=false"));
                }
                let c = self.chan(conn, ch);
                let taken = c.take(0, true).unwrap_or_default();
                self.requeue(taken);
                self.reply(conn, ch, BasicRecoverOk);
            }
            Method::ConfirmSelect(m) => {
                let c = self.chan(conn, ch);
                if c.tx.is_some() {
                    return Err(ch_err(406, "cannot switch from tx to confirm mode"));
                }
                if c.confirm.is_none() {
                    c.confirm = Some(Confirms {
                        next_seq: 1,
                        ..Default::default()
                    });
                }
                if !m.nowait {
                    self.reply(conn, ch, ConfirmSelectOk);
                }
            }
            Method::TxSelect(_) => {
                let c = self.chan(conn, ch);
                if c.confirm.is_some() {
                    return Err(ch_err(406, "cannot switch from confirm to tx mode"));
                }
                if c.tx.is_none() {
                    c.tx = Some(Vec::new());
                }
                self.reply(conn, ch, TxSelectOk);
            }
            Method::TxCommit(_) => {
                let c = self.chan(conn, ch);
                let Some(ops) = c.tx.as_mut().map(std::mem::take) else {
                    return Err(ch_err(406, "channel is not transactional"));
                };
                for op in &ops {
                    if let TxOp::Ack(u) | TxOp::Nack(u, _) = op {
                        c.forget(u);
                    }
                }
                for op in ops {
                    match op {
                        TxOp::Publish {
                            queues,
                            msg,
                            returned,
                        } => {
                            if returned {
                                self.expect_return(conn, ch, msg);
                            }
                            self.promises.entry((conn, ch)).or_default().push(msg);
                            for q in queues {
                                self.enqueue(q, msg);
                            }
                        }
                        TxOp::Ack(_) => {}
                        TxOp::Nack(u, requeue) => {
                            if requeue {
                                self.requeue(vec![u]);
                            } else {
                                self.dead_letter(u.queue, u.inst.msg, Death::Rejected);
                            }
                        }
                    }
                }
                self.reply(conn, ch, TxCommitOk);
            }
            Method::TxRollback(_) => {
                let c = self.chan(conn, ch);
                let Some(ops) = c.tx.as_mut().map(std::mem::take) else {
                    return Err(ch_err(406, "channel is not transactional"));
                };
                for op in ops {
                    if let TxOp::Ack(u) | TxOp::Nack(u, _) = op {
                        let at = c.unacked.partition_point(|x| x.tag < u.tag);
                        c.unacked.insert(at, u);
                    }
                }
                self.reply(conn, ch, TxRollbackOk);
            }
            m => {
                return Err(conn_err(
                    503,
                    format_args!("unimplemented method {}", m.name()),
                ))
            }
        }
        Ok(())
    }

    fn queue_declare(
        &mut self,
        conn: ConnId,
        ch: u16,
        m: &warren_core::codec::QueueDeclare,
    ) -> Result<(), Fault> {
        let durable = m.durable && !m.exclusive;
        // The simulator sends valid levels only (0..=255, as a signed int).
        let max_priority = m
            .arguments
            .get("x-max-priority")
            .and_then(FieldValue::as_i64)
            .map(|n| n.clamp(0, 255) as u8);
        if m.passive {
            let name = self.resolve(conn, ch, &m.queue)?;
            let id = self.usable(conn, &name)?;
            self.use_queue(id);
            let q = &self.queues[&id];
            let ok = QueueDeclareOk {
                queue: q.name.clone(),
                message_count: q.ready.len() as u32,
                consumer_count: q.consumers.len() as u32,
            };
            self.chan(conn, ch).last_queue = Some(name);
            self.reply(conn, ch, ok);
            return Ok(());
        }
        if m.queue.is_empty() {
            let id = self.new_queue(
                ShortStr::from(""),
                durable,
                m.auto_delete,
                m.exclusive.then_some(conn),
                max_priority,
                &m.arguments,
            );
            if m.exclusive {
                self.conns.get_mut(&conn).unwrap().exclusive.push(id);
            }
            self.expect(conn, Exp::DeclareOkNamed(ch, id));
            return Ok(());
        }
        let name = m.queue.clone();
        let id = match self.names.get(&name).copied() {
            None if name.starts_with("amq.") => {
                return Err(ch_err(
                    403,
                    format_args!("queue name '{name}' contains reserved prefix 'amq.*'"),
                ))
            }
            None => {
                let id = self.new_queue(
                    name.clone(),
                    durable,
                    m.auto_delete,
                    m.exclusive.then_some(conn),
                    max_priority,
                    &m.arguments,
                );
                self.names.insert(name.clone(), id);
                if m.exclusive {
                    self.conns.get_mut(&conn).unwrap().exclusive.push(id);
                }
                id
            }
            Some(id) => {
                let q = &self.queues[&id];
                let owner_ok = match q.exclusive_owner {
                    Some(owner) => owner == conn && m.exclusive,
                    None => !m.exclusive,
                };
                if !owner_ok {
                    return Err(locked(&name));
                }
                for (arg, got, have) in [
                    ("durable", durable, q.durable),
                    ("auto_delete", m.auto_delete, q.auto_delete),
                ] {
                    if got != have {
                        return Err(inequivalent("queue", arg, &name, got, have));
                    }
                }
                // RabbitMQ's order: the first argument that differs is the one reported.
                for key in [
                    "x-expires",
                    "x-message-ttl",
                    "x-dead-letter-exchange",
                    "x-dead-letter-routing-key",
                    "x-max-length",
                    "x-max-length-bytes",
                    "x-max-priority",
                    "x-overflow",
                    "x-queue-mode",
                ] {
                    let (got, have) = (m.arguments.get(key), q.arguments.get(key));
                    if got != have {
                        return Err(ch_err(406, format_args!(
                            "inequivalent arg '{key}' for queue '{name}' in vhost '/': received {} but current is {}",
                            describe_arg(got),
                            describe_arg(have)
                        )));
                    }
                }
                id
            }
        };
        self.use_queue(id);
        let q = &self.queues[&id];
        let ok = QueueDeclareOk {
            queue: name.clone(),
            message_count: q.ready.len() as u32,
            consumer_count: q.consumers.len() as u32,
        };
        self.chan(conn, ch).last_queue = Some(name);
        self.reply(conn, ch, ok);
        Ok(())
    }

    fn new_queue(
        &mut self,
        name: ShortStr,
        durable: bool,
        auto_delete: bool,
        exclusive_owner: Option<ConnId>,
        max_priority: Option<u8>,
        arguments: &FieldTable,
    ) -> Qid {
        let ms = |k: &str| {
            arguments
                .get(k)
                .and_then(FieldValue::as_i64)
                .and_then(|n| u64::try_from(n).ok())
        };
        let (message_ttl, expires) = (ms("x-message-ttl"), ms("x-expires"));
        let limits = Limits::of(arguments);
        let id = self.next_qid;
        self.next_qid += 1;
        self.queues.insert(
            id,
            MQueue {
                name,
                durable,
                auto_delete,
                exclusive_owner,
                max_priority,
                arguments: arguments.clone(),
                message_ttl,
                expires,
                last_used: self.now,
                limits,
                ready: VecDeque::new(),
                next_seq: 0,
                consumers: Vec::new(),
                last_to: None,
                has_exclusive_consumer: false,
            },
        );
        id
    }

    #[allow(clippy::too_many_arguments)]
    fn publish(
        &mut self,
        conn: ConnId,
        ch: u16,
        mandatory: bool,
        immediate: bool,
        exchange: &ShortStr,
        rk: &ShortStr,
        props: &Bytes,
        body: &Bytes,
    ) -> Result<(), Fault> {
        let open = self.conns.get(&conn).is_some_and(|c| c.open);
        if !open {
            return Err(conn_err(503, "connection is not open"));
        }
        if !self.conns[&conn].channels.contains_key(&ch) {
            return Ok(());
        }
        if immediate {
            return Err(conn_err(540, "immediate=true"));
        }
        if let Ok(Some(user)) = peek_user_id(props) {
            if user != "guest" {
                return Err(ch_err(
                    406,
                    format_args!(
                        "user_id property set to '{user}' but authenticated user was 'guest'"
                    ),
                ));
            }
        }
        if let Ok(Some(text)) = peek_expiration(props) {
            let reason = match text.parse::<i64>() {
                Ok(n) if n < 0 => Some(format!("{{value_negative,{n}}}")),
                Ok(_) => None,
                Err(_) => Some("badarg".to_string()),
            };
            if let Some(reason) = reason {
                return Err(ch_err(
                    406,
                    format_args!("invalid expiration '{text}': {reason}"),
                ));
            }
        }
        let request = self.request_properties(conn, ch, props)?;
        let Some(id) = msg_id(body) else {
            self.late = Some(format!(
                "the broker took a publish whose body ({} bytes) starts with no message id",
                body.len()
            ));
            return Ok(());
        };
        let Some(sent) = self.sent.get(&id).cloned() else {
            self.late = Some(format!(
                "the broker took message {id}, which no client sent"
            ));
            return Ok(());
        };
        if let Some(diff) = differs(&sent, exchange, rk, props, body) {
            self.late = Some(format!(
                "the connection made publish of message {id} into something else than the client sent: {diff}"
            ));
        }
        let exact = request.is_none();
        let props = request.as_ref().unwrap_or(&sent.properties);
        self.msgs.insert(
            id,
            MsgInfo {
                id,
                exact,
                persistent: matches!(peek_delivery_mode(props), Ok(Some(2))),
                exchange: sent.exchange.clone(),
                rk: sent.routing_key.clone(),
                props: props.clone(),
                body: sent.body.clone(),
                priority: peek_priority(props).ok().flatten().unwrap_or(0),
                expiration: peek_expiration(props)
                    .ok()
                    .flatten()
                    .and_then(|t| t.parse().ok()),
            },
        );
        let (exchange, rk) = (&sent.exchange, &sent.routing_key);
        if let Some(key) = rk
            .strip_prefix(REPLY_TO_PREFIX)
            .filter(|_| exchange.is_empty())
        {
            return self.publish_reply(conn, ch, mandatory, id, key);
        }
        let headers = peek_headers(props).ok().flatten();
        let queues = self.route(exchange, rk, headers.as_ref())?;
        self.published += 1;
        self.routed += queues.len() as u64;
        let (seq, early) = self.take_publish_seq(conn, ch, queues.is_empty() && mandatory, id);
        let c = self.chan(conn, ch);
        let unroutable = queues.is_empty() && mandatory;
        let in_tx = c.tx.is_some();
        let at_commit = self.strict.tx_return_at_commit;
        let c = self.chan(conn, ch);
        if let Some(tx) = c.tx.as_mut() {
            tx.push(TxOp::Publish {
                queues: queues.clone(),
                msg: id,
                returned: unroutable && at_commit,
            });
        }
        if unroutable && !(in_tx && self.strict.tx_return_at_commit) {
            if let Some(s) = seq {
                self.chan(conn, ch)
                    .confirm
                    .as_mut()
                    .expect("confirm mode")
                    .awaiting_return
                    .insert(s);
            }
            self.expect_return(conn, ch, id);
        }
        if !in_tx {
            let mut refused = false;
            for q in queues {
                refused |= !self.enqueue(q, id);
            }
            if let (true, Some(s)) = (refused, seq) {
                if early {
                    self.late = Some(format!(
                        "publish {s} on channel {ch} was acked, but a full queue refused it"
                    ));
                }
                let cf = self.chan(conn, ch).confirm.as_mut().expect("confirm mode");
                cf.nacks.insert(s);
            }
        }
        Ok(())
    }

    /// The publisher-confirm sequence number of a publish on `ch`, if in confirm mode, and
    /// whether its ack already came (folded into an earlier ack of the batch).
    fn take_publish_seq(
        &mut self,
        conn: ConnId,
        ch: u16,
        returned: bool,
        msg: MsgId,
    ) -> (Option<u64>, bool) {
        let c = self.chan(conn, ch);
        let mut early = false;
        let seq = c.confirm.as_mut().map(|cf| {
            let s = cf.next_seq;
            cf.next_seq += 1;
            if s <= cf.future_upto {
                early = true;
            } else {
                cf.pending.insert(s);
                cf.ids.insert(s, msg);
            }
            s
        });
        if early {
            self.confirmed += 1;
            if returned {
                self.late = Some(format!(
                    "publish {} on channel {ch} was confirmed before its basic.return",
                    seq.unwrap_or(0)
                ));
            }
        }
        (seq, early)
    }

    fn expect_return(&mut self, conn: ConnId, ch: u16, msg: MsgId) {
        let info = &self.msgs[&msg];
        let ret = BasicReturn {
            reply_code: 312,
            reply_text: ShortStr::from("NO_ROUTE"),
            exchange: info.exchange.clone(),
            routing_key: info.rk.clone(),
        };
        self.expect(conn, Exp::Content(ch, ret.into(), msg));
    }

    fn route(
        &self,
        exchange: &ShortStr,
        rk: &ShortStr,
        headers: Option<&FieldTable>,
    ) -> Result<Vec<Qid>, Fault> {
        self.route_from(exchange, rk, headers, true)
    }

    /// The queues a message reaches from `exchange`; a client may not publish to an internal
    /// exchange (the broker may: dead letters).
    fn route_from(
        &self,
        exchange: &ShortStr,
        rk: &ShortStr,
        headers: Option<&FieldTable>,
        client: bool,
    ) -> Result<Vec<Qid>, Fault> {
        if exchange.is_empty() {
            return Ok(self.names.get(rk).copied().into_iter().collect());
        }
        let Some(x) = self.exchanges.get(exchange) else {
            return Err(no_exchange(exchange));
        };
        if x.internal && client {
            return Err(ch_err(
                403,
                format_args!("cannot publish to internal exchange '{exchange}' in vhost '/'"),
            ));
        }
        let mut out = BTreeSet::new();
        let mut seen: BTreeSet<&ShortStr> = BTreeSet::new();
        let mut todo = vec![exchange];
        seen.insert(exchange);
        while let Some(name) = todo.pop() {
            let x = &self.exchanges[name];
            for b in &x.bindings {
                let hit = match x.kind {
                    Kind::Direct => b.key == *rk,
                    Kind::Fanout => true,
                    Kind::Topic => topic_matches(&b.key, rk),
                    Kind::Headers => headers_matches(&b.args, headers),
                };
                if !hit {
                    continue;
                }
                match &b.dest {
                    Dest::Q(q) => {
                        out.insert(*q);
                    }
                    Dest::X(n) => {
                        if self.exchanges.contains_key(n) && seen.insert(n) {
                            todo.push(n);
                        }
                    }
                }
            }
        }
        Ok(out.into_iter().collect())
    }

    /// A declare or a get: the queue counts as used (`x-expires`), and expired messages at
    /// its head go first.
    fn use_queue(&mut self, id: Qid) {
        if let Some(q) = self.queues.get_mut(&id) {
            q.last_used = self.now;
        }
        self.expire_heads(id);
    }

    /// Drops the messages at the head of a queue whose TTL has passed. RabbitMQ looks only at
    /// the head, whenever it changes (after a fetch, a requeue) and when its timer fires: an
    /// expired message behind a live one waits until it reaches the head.
    pub(super) fn expire_heads(&mut self, id: Qid) {
        let now = self.now;
        let Some(q) = self.queues.get_mut(&id) else {
            return;
        };
        let mut dead = Vec::new();
        while q.ready.front().is_some_and(|h| now > h.expires_at) {
            dead.extend(q.ready.pop_front());
            self.expired += 1;
        }
        for inst in dead {
            self.dead_letter(id, inst.msg, Death::Expired);
        }
    }

    /// The broker's timers at `now`: unused queues past their `x-expires` go, expired heads
    /// go.
    pub fn tick(&mut self) {
        let ids: Vec<Qid> = self.queues.keys().copied().collect();
        for id in ids {
            let q = &self.queues[&id];
            let unused_since = q
                .expires
                .filter(|_| q.consumers.is_empty())
                .map(|ttl| q.last_used.saturating_add(ttl));
            if unused_since.is_some_and(|at| self.now >= at) {
                self.delete_queue(id);
                continue;
            }
            self.expire_heads(id);
        }
        self.drain_dead_letters();
    }

    fn settle(
        &mut self,
        conn: ConnId,
        ch: u16,
        tag: u64,
        multiple: bool,
        nack: Option<bool>,
    ) -> Result<(), Fault> {
        let c = self.chan(conn, ch);
        let Some(taken) = c.take(tag, multiple) else {
            return Err(ch_err(406, format_args!("unknown delivery tag {tag}")));
        };
        if c.tx.is_some() {
            for u in &taken {
                c.hold(u);
            }
            let tx = c.tx.as_mut().expect("tx");
            for u in taken {
                tx.push(match nack {
                    None => TxOp::Ack(u),
                    Some(requeue) => TxOp::Nack(u, requeue),
                });
            }
            return Ok(());
        }
        match nack {
            Some(true) => self.requeue(taken),
            Some(false) => {
                for u in taken {
                    self.dead_letter(u.queue, u.inst.msg, Death::Rejected);
                }
            }
            None => {}
        }
        Ok(())
    }

    /// Deliveries go back to their queues, at their places, marked redelivered.
    fn requeue(&mut self, list: Vec<Unacked>) {
        let mut touched = Vec::new();
        for u in list {
            if let Some(q) = self.queues.get_mut(&u.queue) {
                q.insert_by_seq(Inst {
                    redelivered: true,
                    ..u.inst
                });
                if !touched.contains(&u.queue) {
                    touched.push(u.queue);
                }
            }
        }
        // A requeued copy whose TTL passed while it was out goes as soon as it is back. Each
        // RabbitMQ queue does this on its own, so the order of their dead letters is free:
        // the broker takes the queues in the order the requeue first touched them.
        for q in touched {
            self.expire_heads(q);
        }
    }

    fn detach(&mut self, conn: ConnId, ch: u16, tag: &ShortStr, queue: Qid) {
        let Some(q) = self.queues.get_mut(&queue) else {
            return;
        };
        q.consumers
            .retain(|(c, n, t)| !(*c == conn && *n == ch && t == tag));
        q.last_to = None;
        q.has_exclusive_consumer = false;
        q.last_used = self.now;
        if q.auto_delete && q.consumers.is_empty() {
            self.delete_queue(queue);
        }
    }

    fn close_channel(&mut self, conn: ConnId, ch: u16) {
        let Some(c) = self
            .conns
            .get_mut(&conn)
            .and_then(|c| c.channels.remove(&ch))
        else {
            return;
        };
        self.release(conn, ch, c);
    }

    fn release(&mut self, conn: ConnId, ch: u16, mut c: MChannel) {
        let mut unacked = std::mem::take(&mut c.unacked);
        if let Some(ops) = c.tx.take() {
            for op in ops {
                if let TxOp::Ack(u) | TxOp::Nack(u, _) = op {
                    unacked.push(u);
                }
            }
            unacked.sort_by_key(|u| u.tag);
        }
        let mut auto_delete = Vec::new();
        for (tag, cons) in &c.consumers {
            if let Some(q) = self.queues.get_mut(&cons.queue) {
                q.consumers
                    .retain(|(cc, n, t)| !(*cc == conn && *n == ch && t == tag));
                q.last_to = None;
                q.has_exclusive_consumer = false;
                q.last_used = self.now;
                if q.auto_delete && q.consumers.is_empty() {
                    auto_delete.push(cons.queue);
                }
            }
        }
        self.requeue(unacked);
        for q in auto_delete {
            self.delete_queue(q);
        }
    }

    fn close_connection(&mut self, conn: ConnId) {
        let Some(c) = self.conns.remove(&conn) else {
            return;
        };
        for (n, ch) in c.channels {
            self.release(conn, n, ch);
        }
        for q in c.exclusive {
            self.delete_queue(q);
        }
    }

    fn delete_queue(&mut self, id: Qid) {
        let Some(q) = self.queues.remove(&id) else {
            return;
        };
        if self.names.get(&q.name) == Some(&id) {
            self.names.remove(&q.name);
        }
        if let Some(owner) = q.exclusive_owner {
            if let Some(c) = self.conns.get_mut(&owner) {
                c.exclusive.retain(|x| *x != id);
            }
        }
        for (conn, ch, tag) in &q.consumers {
            let Some(c) = self.conns.get_mut(conn) else {
                continue;
            };
            let notify = c.notify;
            if let Some(chan) = c.channels.get_mut(ch) {
                chan.consumers.remove(tag);
            }
            if notify {
                self.exp.push((
                    *conn,
                    Exp::Method(
                        *ch,
                        BasicCancel {
                            consumer_tag: tag.clone(),
                            no_wait: true,
                        }
                        .into(),
                    ),
                    false,
                ));
            }
        }
        self.unbind_everywhere(&Dest::Q(id));
    }

    fn delete_exchange(&mut self, name: &ShortStr) {
        if self.exchanges.remove(name).is_some() {
            self.unbind_everywhere(&Dest::X(name.clone()));
        }
    }

    fn unbind_everywhere(&mut self, dest: &Dest) {
        let mut emptied = Vec::new();
        for (name, x) in self.exchanges.iter_mut() {
            let before = x.bindings.len();
            x.bindings.retain(|b| &b.dest != dest);
            if x.bindings.len() != before && x.auto_delete && x.bindings.is_empty() {
                emptied.push(name.clone());
            }
        }
        for name in emptied {
            self.delete_exchange(&name);
        }
    }

    fn remove_binding(&mut self, source: &ShortStr, b: &MBinding) {
        let Some(x) = self.exchanges.get_mut(source) else {
            return;
        };
        let Some(i) = x.bindings.iter().position(|y| y == b) else {
            return;
        };
        x.bindings.remove(i);
        if x.auto_delete && x.bindings.is_empty() {
            self.delete_exchange(source);
        }
    }

    // -----------------------------------------------------------------------------------------
    // Events
    // -----------------------------------------------------------------------------------------

    /// Checks one event the broker emitted while handling the current command; returns what
    /// the client must receive for it.
    pub fn on_event(&mut self, conn: ConnId, ev: &Event, lookahead: bool) -> Result<Step, String> {
        let all_in = self.exp.iter().all(|(_, _, done)| *done);
        match self.event(conn, ev) {
            Ok(x) => Ok(Step::Took(x)),
            Err(_) if lookahead && all_in => Ok(Step::NotMine),
            Err(e) => Err(e),
        }
    }

    fn event(&mut self, conn: ConnId, ev: &Event) -> Result<Option<Expect>, String> {
        match ev {
            Event::Deliver {
                channel,
                consumer_tag,
                delivery_tag,
                redelivered,
                message,
            } => {
                self.check_deliver(
                    conn,
                    *channel,
                    consumer_tag,
                    *delivery_tag,
                    *redelivered,
                    message,
                )?;
                let m = BasicDeliver {
                    consumer_tag: consumer_tag.clone(),
                    delivery_tag: *delivery_tag,
                    redelivered: *redelivered,
                    exchange: message.exchange().clone(),
                    routing_key: message.routing_key().clone(),
                };
                return Ok(Some(Expect {
                    channel: *channel,
                    method: m.into(),
                    content: Some((message.properties().clone(), message.body().clone())),
                }));
            }
            Event::Method {
                channel,
                method: Method::BasicAck(a),
            } => {
                self.check_confirm(conn, *channel, a.delivery_tag, a.multiple, false)?;
                return Ok(Some(Expect {
                    channel: *channel,
                    method: Method::BasicAck(a.clone()),
                    content: None,
                }));
            }
            Event::Method {
                channel,
                method: Method::BasicNack(n),
            } => {
                self.check_confirm(conn, *channel, n.delivery_tag, n.multiple, true)?;
                return Ok(Some(Expect {
                    channel: *channel,
                    method: Method::BasicNack(n.clone()),
                    content: None,
                }));
            }
            Event::ResourceAlarm { .. } => return Ok(None),
            Event::Flow { hold } => {
                self.flow_holds += u64::from(*hold);
                if let Some(c) = self.conns.get_mut(&conn) {
                    c.flow_held |= *hold;
                }
                return Ok(None);
            }
            _ => {}
        }
        let Some(i) = self.exp.iter().position(|(c, _, done)| *c == conn && !done) else {
            return Err(format!(
                "the broker sent {} that the model did not expect",
                show(ev)
            ));
        };
        self.exp[i].2 = true;
        let mismatch = |want: &dyn std::fmt::Debug| {
            Err(format!(
                "the broker sent {} where the model expected {want:?}",
                show(ev)
            ))
        };
        let (_, want, _) = &self.exp[i];
        if let (Exp::Closed, Event::Closed) = (want, ev) {
            return Ok(None);
        }
        let out = match (want, ev) {
            (Exp::LoginOk, Event::LoginOk) => Expect {
                channel: 0,
                method: ConnectionTune::default().into(),
                content: None,
            },
            (Exp::OpenOk, Event::OpenOk) => Expect {
                channel: 0,
                method: ConnectionOpenOk::default().into(),
                content: None,
            },
            (Exp::Method(ch, m), Event::Method { channel, method })
                if ch == channel && m == method =>
            {
                Expect {
                    channel: *channel,
                    method: method.clone(),
                    content: None,
                }
            }
            (
                Exp::Content(ch, m, msg),
                Event::Content {
                    channel,
                    method,
                    message,
                },
            ) if ch == channel
                && m == method
                && msg_id(message.body()) == Some(self.msgs[msg].id) =>
            {
                if let Some(diff) = self.differs_from(*msg, message) {
                    return Err(format!(
                        "message {} came back otherwise than the model has it: {diff}",
                        self.msgs[msg].id
                    ));
                }
                if let Method::BasicReturn(_) = method {
                    self.returned(conn, *channel, *msg);
                }
                Expect {
                    channel: *channel,
                    method: method.clone(),
                    content: Some((message.properties().clone(), message.body().clone())),
                }
            }
            (
                Exp::DeclareOkNamed(ch, id),
                Event::Method {
                    channel,
                    method: Method::QueueDeclareOk(ok),
                },
            ) if ch == channel && ok.message_count == 0 && ok.consumer_count == 0 => {
                let (ch, id) = (*ch, *id);
                if !ok.queue.starts_with("amq.gen-") || self.names.contains_key(&ok.queue) {
                    return Err(format!(
                        "server-named queue got the name '{}' (taken, or not amq.gen-…)",
                        ok.queue
                    ));
                }
                self.queues.get_mut(&id).expect("declared").name = ok.queue.clone();
                self.names.insert(ok.queue.clone(), id);
                self.chan(conn, ch).last_queue = Some(ok.queue.clone());
                Expect {
                    channel: ch,
                    method: Method::QueueDeclareOk(ok.clone()),
                    content: None,
                }
            }
            (
                Exp::ConsumeOkNamed(ch, placeholder),
                Event::Method {
                    channel,
                    method: Method::BasicConsumeOk(ok),
                },
            ) if ch == channel => {
                let (ch, placeholder) = (*ch, placeholder.clone());
                let tag = ok.consumer_tag.clone();
                let c = self.chan(conn, ch);
                if !tag.starts_with("amq.ctag-") || c.consumers.contains_key(&tag) {
                    return Err(format!(
                        "server-generated consumer tag '{tag}' is bad or taken"
                    ));
                }
                let mut cons = c.consumers.remove(&placeholder).expect("registered");
                cons.announced = true;
                let q = cons.queue;
                c.consumers.insert(tag.clone(), cons);
                if let Some(q) = self.queues.get_mut(&q) {
                    for e in q.consumers.iter_mut() {
                        if e.0 == conn && e.1 == ch && e.2 == placeholder {
                            e.2 = tag.clone();
                        }
                    }
                }
                Expect {
                    channel: ch,
                    method: Method::BasicConsumeOk(ok.clone()),
                    content: None,
                }
            }
            (Exp::ChannelError(ch, code, text, cl, me), Event::ChannelError { channel, fault })
                if ch == channel
                    && *code == fault.code.0
                    && *text == fault.text
                    && *cl == fault.class_id
                    && *me == fault.method_id =>
            {
                Expect {
                    channel: *ch,
                    method: ChannelClose {
                        reply_code: *code,
                        reply_text: wire_text(text),
                        class_id: *cl,
                        method_id: *me,
                    }
                    .into(),
                    content: None,
                }
            }
            (Exp::ConnectionError(code, text, cl, me), Event::ConnectionError { fault })
                if *code == fault.code.0
                    && *text == fault.text
                    && *cl == fault.class_id
                    && *me == fault.method_id =>
            {
                Expect {
                    channel: 0,
                    method: ConnectionClose {
                        reply_code: *code,
                        reply_text: wire_text(text),
                        class_id: *cl,
                        method_id: *me,
                    }
                    .into(),
                    content: None,
                }
            }
            (want, _) => return mismatch(want),
        };
        if let Method::BasicConsumeOk(ok) = &out.method {
            let tag = ok.consumer_tag.clone();
            if let Some(c) = self
                .conns
                .get_mut(&conn)
                .and_then(|c| c.channels.get_mut(&out.channel))
                .and_then(|c| c.consumers.get_mut(&tag))
            {
                c.announced = true;
            }
        }
        Ok(Some(out))
    }

    fn returned(&mut self, conn: ConnId, ch: u16, msg: MsgId) {
        // The seq of this publish is the one awaiting a return with the lowest number whose
        // message is this one; seqs are not stored per message, so take the oldest.
        let _ = msg;
        if let Some(cf) = self
            .conns
            .get_mut(&conn)
            .and_then(|c| c.channels.get_mut(&ch))
            .and_then(|c| c.confirm.as_mut())
        {
            if let Some(&s) = cf.awaiting_return.iter().next() {
                cf.awaiting_return.remove(&s);
            }
        }
    }

    fn check_deliver(
        &mut self,
        conn: ConnId,
        ch: u16,
        ctag: &ShortStr,
        dtag: u64,
        redelivered: bool,
        message: &Message,
    ) -> Result<(), String> {
        let body = message.body();
        let Some(msg) = msg_id(body) else {
            return Err("a delivery without a message id".into());
        };
        // Checked here, taken once every check has passed (a failed check may mean the event
        // belongs to the next command, which checks it again).
        let Some(c) = self.conns.get(&conn).and_then(|c| c.channels.get(&ch)) else {
            return Err(format!(
                "delivery of message {msg} to channel {ch}, which is not open"
            ));
        };
        // A queue consumer may reuse the reply consumer's tag (neither RabbitMQ nor the
        // broker checks one against the other): a reply is what a publish sent there.
        let reply_tag = c.reply.as_ref().is_some_and(|r| r.tag == *ctag);
        let queue_tag = c.consumers.contains_key(ctag);
        if reply_tag && (!queue_tag || self.reply_waiting(conn, ch, msg)) {
            return self.check_reply_delivery(conn, ch, dtag, redelivered, message);
        }
        // Replies are never held back; queue deliveries wait for credit.
        if self.conns.get(&conn).is_some_and(|c| c.window == Some(0)) {
            return Err(format!(
                "delivery of message {msg} to connection {} with no delivery credit left",
                conn.0
            ));
        }
        let c = &self.conns[&conn].channels[&ch];
        let Some(cons) = c.consumers.get(ctag) else {
            return Err(format!(
                "delivery of message {msg} to consumer '{ctag}', which does not exist on channel {ch}"
            ));
        };
        if !cons.announced {
            return Err(format!(
                "delivery to consumer '{ctag}' before its basic.consume-ok"
            ));
        }
        if !c.has_room(ctag) {
            return Err(format!(
                "delivery to consumer '{ctag}' beyond its prefetch (consumer {}/{}, channel {}/{})",
                cons.unacked, cons.prefetch, c.consumer_unacked, c.global_prefetch
            ));
        }
        if dtag != c.next_tag {
            return Err(format!(
                "delivery tag {dtag} on channel {ch}, expected {}",
                c.next_tag
            ));
        }
        let (qid, no_ack, priority) = (cons.queue, cons.no_ack, cons.priority);
        if let Some((_, _, other)) = self.queues.get(&qid).and_then(|q| {
            q.consumers.iter().find(|(oc, och, otag)| {
                self.consumer_priority(*oc, *och, otag) > priority && self.has_room(*oc, *och, otag)
            })
        }) {
            return Err(format!(
                "delivery of message {msg} to consumer '{ctag}' (x-priority {priority}) while '{other}', of higher priority, has room"
            ));
        }
        let this = (conn, ch, ctag.clone());
        if let Some((_, _, other)) = self.queues.get(&qid).and_then(|q| {
            q.last_to
                .as_ref()
                .filter(|last| **last == this)
                .and(q.consumers.iter().find(|(oc, och, otag)| {
                    (*oc, *och, otag) != (conn, ch, ctag)
                        && self.consumer_priority(*oc, *och, otag) >= priority
                        && self.has_room(*oc, *och, otag)
                }))
        }) {
            return Err(format!(
                "two deliveries in a row of queue {qid} went to consumer '{ctag}' while '{other}' had room (round-robin)"
            ));
        }
        let Some(q) = self.queues.get_mut(&qid) else {
            return Err(format!("delivery from queue {qid}, which is gone"));
        };
        let Some(head) = q.ready.front().copied() else {
            return Err(format!(
                "delivery of message {msg} from queue '{}', which has no ready message",
                q.name
            ));
        };
        let id_of = |i: &Inst| self.msgs[&i.msg].id;
        if id_of(&head) != msg {
            let pos = q.ready.iter().position(|i| id_of(i) == msg);
            return Err(format!(
                "queue '{}' delivered message {msg} (at position {pos:?}) but its head is message {} — out of order, duplicated or lost",
                q.name,
                id_of(&head)
            ));
        }
        if head.redelivered != redelivered {
            return Err(format!(
                "message {msg} delivered with redelivered={redelivered}, model says {}",
                head.redelivered
            ));
        }
        if let Some(diff) = self.differs_from(head.msg, message) {
            return Err(format!(
                "message {msg} delivered otherwise than the model has it: {diff}"
            ));
        }
        let q = self.queues.get_mut(&qid).expect("checked");
        q.ready.pop_front();
        q.last_to = Some(this);
        self.expire_heads(qid);
        self.charge_window(conn, message);
        let c = self
            .conns
            .get_mut(&conn)
            .unwrap()
            .channels
            .get_mut(&ch)
            .unwrap();
        c.next_tag += 1;
        if !no_ack {
            let cons = c.consumers.get_mut(ctag).expect("checked");
            cons.unacked += 1;
            c.consumer_unacked += 1;
            c.unacked.push(Unacked {
                tag: dtag,
                queue: qid,
                inst: head,
                consumer: Some(ctag.clone()),
            });
        }
        self.delivered += 1;
        // Heads that expired during a dispatch die when the dispatch ends (the broker, like a
        // RabbitMQ queue process, finishes delivering before it republishes them).
        if !self.dispatch_goes_on(qid) {
            self.drain_dead_letters();
        }
        Ok(())
    }

    fn check_confirm(
        &mut self,
        conn: ConnId,
        ch: u16,
        tag: u64,
        multiple: bool,
        nack: bool,
    ) -> Result<(), String> {
        let Some(cf) = self
            .conns
            .get_mut(&conn)
            .and_then(|c| c.channels.get_mut(&ch))
            .and_then(|c| c.confirm.as_mut())
        else {
            return Err(format!(
                "basic.{} {tag} on channel {ch}, which is not in confirm mode",
                if nack { "nack" } else { "ack" }
            ));
        };
        if nack {
            // Only a publish a full queue refused is nacked, alone.
            cf.ids.remove(&tag);
            if multiple || !cf.nacks.remove(&tag) || !cf.pending.remove(&tag) {
                return Err(format!(
                    "publish {tag} (multiple={multiple}) on channel {ch} was nacked, but no full queue refused it"
                ));
            }
            return Ok(());
        }
        let covered: Vec<u64> = if multiple {
            cf.pending.range(..=tag).copied().collect()
        } else if cf.pending.contains(&tag) {
            vec![tag]
        } else {
            vec![]
        };
        if multiple && tag >= cf.next_seq {
            // Folded in ahead of later publishes of the batch; checked at the batch's end.
            cf.future_upto = cf.future_upto.max(tag);
        } else if covered.is_empty() {
            return Err(format!(
                "confirm {tag} (multiple={multiple}) on channel {ch} covers no publish awaiting one (next seq {})",
                cf.next_seq
            ));
        }
        let promised = self.promises.entry((conn, ch)).or_default();
        for s in covered {
            promised.extend(cf.ids.remove(&s));
            if cf.nacks.contains(&s) {
                return Err(format!(
                    "publish {s} on channel {ch} was acked, but a full queue refused it"
                ));
            }
            if cf.awaiting_return.contains(&s) {
                return Err(format!(
                    "publish {s} on channel {ch} was confirmed before its basic.return"
                ));
            }
            cf.pending.remove(&s);
            self.confirmed += 1;
        }
        Ok(())
    }

    /// Whether a consumer can take a delivery now: prefetch, the connection's delivery window.
    fn has_room(&self, conn: ConnId, ch: u16, tag: &ShortStr) -> bool {
        self.conns
            .get(&conn)
            .filter(|c| c.window != Some(0))
            .and_then(|c| c.channels.get(&ch))
            .is_some_and(|c| c.has_room(tag))
    }

    /// A delivery uses up some of its connection's credit (when it has a window).
    fn charge_window(&mut self, conn: ConnId, message: &Message) {
        if let Some(window) = self.conns.get_mut(&conn).and_then(|c| c.window.as_mut()) {
            *window = window.saturating_sub(message.delivery_cost());
        }
    }

    fn consumer_priority(&self, conn: ConnId, ch: u16, tag: &ShortStr) -> i64 {
        self.conns
            .get(&conn)
            .and_then(|c| c.channels.get(&ch))
            .and_then(|c| c.consumers.get(tag))
            .map_or(0, |c| c.priority)
    }

    /// Whether the broker's dispatch of a queue goes on to another delivery: it runs while
    /// the queue holds a message and one of its consumers has room.
    fn dispatch_goes_on(&self, qid: Qid) -> bool {
        self.queues.get(&qid).is_some_and(|q| {
            !q.ready.is_empty()
                && q.consumers
                    .iter()
                    .any(|(conn, ch, tag)| self.has_room(*conn, *ch, tag))
        })
    }

    /// After the command's events: everything expected came, nothing deliverable waits.
    pub fn end_command(&mut self) -> Result<(), String> {
        if let Some(e) = self.late.take() {
            return Err(e);
        }
        if let Some(e) = self.undelivered_reply() {
            return Err(e);
        }
        if let Some((conn, e, _)) = self.exp.iter().find(|(_, _, done)| !done) {
            return Err(format!(
                "the broker did not send what the model expected to connection {}: {e:?}",
                conn.0
            ));
        }
        for q in self.queues.values() {
            if q.ready.is_empty() {
                continue;
            }
            for (conn, ch, tag) in &q.consumers {
                if self.has_room(*conn, *ch, tag) {
                    return Err(format!(
                        "queue '{}' holds {} ready message(s) while its consumer '{tag}' (connection {}, channel {ch}) has room",
                        q.name,
                        q.ready.len(),
                        conn.0
                    ));
                }
            }
        }
        Ok(())
    }

    /// The broker holds exactly what the model holds: the same queues with the same numbers of
    /// ready and unacked messages and consumers; with `exchanges`, the same exchanges and
    /// bindings too.
    pub fn compare(&self, broker: &Broker, exchanges: bool) -> Result<(), String> {
        let mut unacked: BTreeMap<Qid, usize> = BTreeMap::new();
        for c in self.conns.values() {
            for ch in c.channels.values() {
                for u in &ch.unacked {
                    *unacked.entry(u.queue).or_default() += 1;
                }
                for op in ch.tx.iter().flatten() {
                    if let TxOp::Ack(u) | TxOp::Nack(u, _) = op {
                        *unacked.entry(u.queue).or_default() += 1;
                    }
                }
            }
        }
        let broker_queues = broker.queues().count();
        if broker_queues != self.queues.len() {
            let mut theirs: Vec<&str> = broker.queues().map(|q| q.name.as_str()).collect();
            theirs.sort();
            let mut ours: Vec<&str> = self.queues.values().map(|q| q.name.as_str()).collect();
            ours.sort();
            return Err(format!(
                "the broker has {broker_queues} queues {theirs:?}, the model {} {ours:?}",
                self.queues.len()
            ));
        }
        for (id, q) in &self.queues {
            let Some(b) = broker.queue("/", &q.name) else {
                return Err(format!("queue '{}' is missing from the broker", q.name));
            };
            let want_unacked = unacked.get(id).copied().unwrap_or(0);
            if b.len() != q.ready.len()
                || b.unacked() != want_unacked
                || b.consumers.len() != q.consumers.len()
                || b.durable != q.durable
                || b.auto_delete != q.auto_delete
                || b.is_exclusive() != q.exclusive_owner.is_some()
            {
                return Err(format!(
                    "queue '{}': broker has {} ready, {} unacked, {} consumers; model {} ready, {} unacked, {} consumers",
                    q.name,
                    b.len(),
                    b.unacked(),
                    b.consumers.len(),
                    q.ready.len(),
                    want_unacked,
                    q.consumers.len()
                ));
            }
            if let (Some(bh), Some(mh)) = (b.head(), q.ready.front()) {
                if msg_id(bh.message.body()) != Some(self.msgs[&mh.msg].id)
                    || bh.redelivered != mh.redelivered
                {
                    return Err(format!(
                        "queue '{}': broker's head is message {:?} (redelivered={}), model's {} (redelivered={})",
                        q.name,
                        msg_id(bh.message.body()),
                        bh.redelivered,
                        self.msgs[&mh.msg].id,
                        mh.redelivered
                    ));
                }
            }
        }
        if exchanges {
            let mut theirs: Vec<(String, usize)> = broker
                .exchanges("/")
                .map(|x| (x.name.to_string(), x.bindings().len()))
                .collect();
            theirs.sort();
            let ours: Vec<(String, usize)> = self
                .exchanges
                .iter()
                .map(|(n, x)| (n.to_string(), x.bindings.len()))
                .collect();
            if theirs != ours {
                let mut diff = String::new();
                for t in &theirs {
                    if !ours.contains(t) {
                        let _ = write!(diff, " broker:{t:?}");
                    }
                }
                for o in &ours {
                    if !theirs.contains(o) {
                        let _ = write!(diff, " model:{o:?}");
                    }
                }
                return Err(format!("exchanges and bindings differ:{diff}"));
            }
        }
        Ok(())
    }

    /// After a batch: no ack is left covering publishes that never came.
    pub fn end_batch(&mut self) -> Result<(), String> {
        for (id, c) in &mut self.conns {
            for (n, ch) in &mut c.channels {
                if let Some(cf) = &mut ch.confirm {
                    if cf.future_upto >= cf.next_seq {
                        return Err(format!(
                            "confirm {} on connection {} channel {n} covers publishes never made (next seq {})",
                            cf.future_upto, id.0, cf.next_seq
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// At a quiet moment: every publish on a channel still open has been confirmed.
    pub fn check_quiet(&self) -> Result<(), String> {
        for (id, c) in &self.conns {
            for (n, ch) in &c.channels {
                if let Some(cf) = &ch.confirm {
                    if let Some(s) = cf.pending.iter().next() {
                        return Err(format!(
                            "publish {s} on connection {} channel {n} was never confirmed",
                            id.0
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    /// The messages the broker promised safe with the `basic.ack` or `tx.commit-ok` it just
    /// decided on `channel`.
    pub fn take_promised(&mut self, conn: ConnId, channel: u16) -> Vec<MsgId> {
        self.promises.remove(&(conn, channel)).unwrap_or_default()
    }

    /// The ids of the messages a restart must bring back: persistent ones in durable queues,
    /// ready or delivered and unsettled (dead letters by the id of the message they were). With
    /// `as_published`, only copies where the publish put them: a publisher confirm covers
    /// those, not a dead letter's copy made later (at most once, as in RabbitMQ).
    pub fn recoverable(&self, as_published: bool) -> BTreeSet<MsgId> {
        let kept = |q: &Qid| {
            self.queues
                .get(q)
                .is_some_and(|q| q.durable && q.exclusive_owner.is_none())
        };
        let mut ids = BTreeSet::new();
        let mut add = |inst: &Inst| {
            let info = &self.msgs[&inst.msg];
            if info.persistent && (!as_published || inst.msg == info.id) {
                ids.insert(info.id);
            }
        };
        for q in self.queues.values() {
            if q.durable && q.exclusive_owner.is_none() {
                q.ready.iter().for_each(&mut add);
            }
        }
        for c in self.conns.values() {
            for ch in c.channels.values() {
                let tx = ch.tx.iter().flatten().filter_map(|op| match op {
                    TxOp::Ack(u) | TxOp::Nack(u, _) => Some(u),
                    TxOp::Publish { .. } => None,
                });
                for u in ch.unacked.iter().chain(tx) {
                    if kept(&u.queue) {
                        add(&u.inst);
                    }
                }
            }
        }
        ids
    }

    /// The broker process died: what it had decided since the store's last sync is lost, so
    /// the model goes back to `synced`, its state as of that sync; what clients sent and the
    /// counters stay.
    pub fn roll_back(&mut self, mut synced: Model) {
        synced.sent = std::mem::take(&mut self.sent);
        synced.error_kinds = std::mem::take(&mut self.error_kinds);
        synced.late = self.late.take();
        synced.now = self.now;
        synced.delivered = self.delivered;
        synced.confirmed = self.confirmed;
        synced.flow_holds = self.flow_holds;
        synced.errors = self.errors;
        synced.published = self.published;
        synced.routed = self.routed;
        synced.expired = self.expired;
        synced.refused = self.refused;
        synced.dropped = self.dropped;
        synced.dead_lettered = self.dead_lettered;
        *self = synced;
    }

    /// The broker restarted from its storage: connections are gone; durable exchanges and
    /// queues stay, bindings between durable ends stay, and durable queues keep their
    /// persistent messages — ready or delivered and unsettled — in queue order, delivered ones
    /// marked redelivered.
    pub fn restart(&mut self) {
        self.alarm = false;
        self.promises.clear();
        let mut held: BTreeMap<Qid, Vec<Inst>> = BTreeMap::new();
        for c in std::mem::take(&mut self.conns).into_values() {
            for ch in c.channels.into_values() {
                let mut all = ch.unacked;
                for op in ch.tx.into_iter().flatten() {
                    if let TxOp::Ack(u) | TxOp::Nack(u, _) = op {
                        all.push(u);
                    }
                }
                for u in all {
                    held.entry(u.queue).or_default().push(Inst {
                        redelivered: true,
                        ..u.inst
                    });
                }
            }
        }
        self.queues
            .retain(|_, q| q.durable && q.exclusive_owner.is_none());
        self.names.retain(|_, id| self.queues.contains_key(id));
        for (id, q) in self.queues.iter_mut() {
            let mut all: Vec<Inst> = q.ready.drain(..).collect();
            all.extend(held.remove(id).unwrap_or_default());
            all.retain(|i| self.msgs[&i.msg].persistent);
            // TTLs start again at recovery (the broker does not know how long it was down),
            // and so does the queue's `x-expires` lease.
            for i in all.iter_mut() {
                let ttl = match (q.message_ttl, self.msgs[&i.msg].expiration) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                };
                i.expires_at = ttl.map_or(NEVER, |t| self.now.saturating_add(t));
            }
            q.last_used = self.now;
            // Delivery order (priority, then publish order) survives; the seqs are renumbered.
            all.sort_by_key(|i| (core::cmp::Reverse(i.prio), i.seq));
            q.ready = all
                .into_iter()
                .enumerate()
                .map(|(n, i)| Inst { seq: n as u64, ..i })
                .collect();
            q.next_seq = q.ready.len() as u64;
            q.consumers.clear();
            q.last_to = None;
            q.has_exclusive_consumer = false;
        }
        let durable_x: BTreeSet<ShortStr> = self
            .exchanges
            .iter()
            .filter(|(_, x)| x.durable)
            .map(|(n, _)| n.clone())
            .collect();
        self.exchanges.retain(|_, x| x.durable);
        let queues = &self.queues;
        for x in self.exchanges.values_mut() {
            x.bindings.retain(|b| match &b.dest {
                Dest::Q(q) => queues.contains_key(q),
                Dest::X(n) => durable_x.contains(n),
            });
        }
    }

    /// Takes the broker's bindings as they are (a workaround for a known core bug: stale
    /// binding records of deleted durable queues come back after a restart).
    pub fn adopt_bindings(&mut self, broker: &Broker) {
        use warren_core::broker::Destination;
        let by_id: BTreeMap<u32, ShortStr> =
            broker.queues().map(|q| (q.id.0, q.name.clone())).collect();
        for bx in broker.exchanges("/") {
            let Some(x) = self.exchanges.get_mut(&bx.name) else {
                continue;
            };
            x.bindings = bx
                .bindings()
                .iter()
                .filter_map(|b| {
                    let dest = match &b.destination {
                        Destination::Queue(id) => Dest::Q(*self.names.get(by_id.get(&id.0)?)?),
                        Destination::Exchange(n) => Dest::X(n.clone()),
                    };
                    Some(MBinding {
                        dest,
                        key: b.routing_key.clone(),
                        args: b.arguments.clone(),
                    })
                })
                .collect();
        }
    }

    /// Whether the model knows this connection (the broker has not let it go).
    pub fn knows(&self, conn: ConnId) -> bool {
        self.conns.contains_key(&conn)
    }

    pub fn queue_count(&self) -> usize {
        self.queues.len()
    }
}

fn wire_text(text: &str) -> ShortStr {
    if text.len() <= 255 {
        return ShortStr::from(text);
    }
    let mut end = 252;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    ShortStr::from(format!("{}...", &text[..end]))
}

fn show(ev: &Event) -> String {
    match ev {
        Event::Method { channel, method } => {
            format!("{} on channel {channel}: {method:?}", method.name())
        }
        Event::Content {
            channel,
            method,
            message,
        } => format!(
            "{} on channel {channel} with message {:?}: {method:?}",
            method.name(),
            msg_id(message.body())
        ),
        Event::ChannelError { channel, fault } => {
            format!("channel.close on channel {channel}: {fault:?}")
        }
        Event::ConnectionError { fault } => format!("connection.close: {fault:?}"),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_matching_follows_rabbitmq() {
        assert!(topic_matches("#", ""));
        assert!(topic_matches("#", "a.b"));
        assert!(!topic_matches("*", ""));
        assert!(topic_matches("a.*", "a.b"));
        assert!(!topic_matches("a.*", "a.b.c"));
        assert!(topic_matches("a.#", "a"));
        assert!(topic_matches("#.c", "a.b.c"));
        assert!(topic_matches("*.c", "b.c"));
        assert!(!topic_matches("a", "a.b"));
    }
}
