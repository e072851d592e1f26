//! A queue: its messages waiting for delivery, the consumers that take them in turn, and the
//! limits RabbitMQ users set through queue arguments (TTL, expiry, max length, dead-lettering).

use alloc::vec::Vec;

use super::paging::Paging;
use super::ready::Ready;
use super::{ConnId, Message};
use crate::codec::{FieldTable, FieldValue, ShortStr};
use crate::storage::MessageRecord;
use crate::storage::QueueRecord;

/// Identifies a queue for the broker's lifetime (names can be reused after a delete).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(pub u32);

/// Expiry time of a message that never expires.
pub const NEVER: u64 = u64::MAX;

/// A message waiting in a queue.
#[derive(Clone, Debug)]
pub struct QueuedMessage {
    pub message: Message,
    pub redelivered: bool,
    /// Times it went out to a consumer that was to ack it (kept by the store, for
    /// `x-delivery-count`).
    pub deliveries: u32,
    /// Storage id of a persistent message in a durable queue; 0 when not stored.
    pub store_id: u64,
    /// When it expires (broker time, ms); [`NEVER`] without a TTL.
    pub expires_at: u64,
    /// Position in the queue's publish order, set by [`Queue::push_back`]: a requeued
    /// message goes back to this place, as in RabbitMQ's classic queues.
    pub seq: u64,
}

impl QueuedMessage {
    /// The message as storage keeps it; `paged_only` for a message of a queue that is not
    /// durable (see [`Queue::record_of`]).
    pub fn record(&self, paged_only: bool) -> MessageRecord {
        MessageRecord {
            id: self.store_id,
            exchange: self.message.exchange().clone(),
            routing_key: self.message.routing_key().clone(),
            properties: self.message.properties().clone(),
            body: self.message.body().clone(),
            deliveries: self.deliveries,
            paged_only,
        }
    }
}

/// Points at a consumer: the channel that owns it and its tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerRef {
    pub conn: ConnId,
    pub channel: u16,
    pub tag: ShortStr,
    /// `x-priority`: higher-priority consumers with room are served first.
    pub priority: i64,
}

/// What happens when a queue with a length limit is full (`x-overflow`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Overflow {
    /// Drop (or dead-letter) the oldest message to make room.
    #[default]
    DropHead,
    /// Refuse the new message (nacked to a confirming publisher).
    RejectPublish,
    /// Refuse the new message and dead-letter it.
    RejectPublishDlx,
}

/// Limits set by queue arguments.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QueueLimits {
    /// `x-message-ttl`, ms.
    pub message_ttl: Option<u64>,
    /// `x-expires`: the queue is deleted after this long unused, ms.
    pub expires: Option<u64>,
    /// `x-max-length`, messages ready.
    pub max_length: Option<u64>,
    /// `x-max-length-bytes`, body bytes ready.
    pub max_length_bytes: Option<u64>,
    pub overflow: Overflow,
    /// `x-dead-letter-exchange`.
    pub dead_letter_exchange: Option<ShortStr>,
    /// `x-dead-letter-routing-key`.
    pub dead_letter_routing_key: Option<ShortStr>,
}

impl QueueLimits {
    /// Reads the limits from declare arguments (already validated).
    pub fn from_arguments(args: &FieldTable) -> Self {
        let num = |k: &str| {
            args.get(k)
                .and_then(FieldValue::as_i64)
                .and_then(|n| u64::try_from(n).ok())
        };
        let text = |k: &str| match args.get(k) {
            Some(FieldValue::LongStr(s)) | Some(FieldValue::Bytes(s)) => {
                s.as_str().map(ShortStr::from)
            }
            _ => None,
        };
        let overflow = match text("x-overflow").as_deref() {
            Some("reject-publish") => Overflow::RejectPublish,
            Some("reject-publish-dlx") => Overflow::RejectPublishDlx,
            _ => Overflow::DropHead,
        };
        QueueLimits {
            message_ttl: num("x-message-ttl"),
            expires: num("x-expires"),
            max_length: num("x-max-length"),
            max_length_bytes: num("x-max-length-bytes"),
            overflow,
            dead_letter_exchange: text("x-dead-letter-exchange"),
            dead_letter_routing_key: text("x-dead-letter-routing-key"),
        }
    }

    /// Whether anything about this queue depends on time.
    pub fn is_timed(&self) -> bool {
        self.message_ttl.is_some() || self.expires.is_some()
    }
}

/// `x-max-priority`, when the queue is a priority queue (levels above 255 are capped).
pub fn max_priority(args: &FieldTable) -> Option<u8> {
    let n = args.get("x-max-priority")?.as_i64()?;
    u8::try_from(n.clamp(0, 255)).ok()
}

#[derive(Debug)]
pub struct Queue {
    pub id: QueueId,
    pub vhost: ShortStr,
    pub name: ShortStr,
    pub durable: bool,
    /// The connection that owns an exclusive queue.
    pub exclusive_owner: Option<ConnId>,
    pub auto_delete: bool,
    pub arguments: FieldTable,
    pub limits: QueueLimits,
    ready: Ready,
    /// Consumers in round-robin order; `next_consumer` is where the next delivery starts.
    pub consumers: Vec<ConsumerRef>,
    pub next_consumer: usize,
    /// An exclusive consumer holds the queue alone.
    pub has_exclusive_consumer: bool,
    /// Messages delivered and not yet acked: changed only by the methods below.
    unacked: usize,
    /// Last time the queue was declared, consumed from or read (for `x-expires`).
    pub last_used_ms: u64,
    /// Some ready message carries its own expiry (`expiration` property).
    pub has_message_expiry: bool,
    /// Sequence number for the next message appended.
    next_seq: u64,
    /// How much of the queue stays in memory, when it pages (see `paging.rs`).
    pub(super) window: Option<super::paging::Window>,
    /// What lies beyond the head, while anything does.
    pub(super) paging: Option<alloc::boxed::Box<Paging>>,
    /// It has written messages to the store though it is not a durable queue (spilled under
    /// memory pressure): the store must hear when it goes.
    pub(super) spilled: bool,
    /// Messages handed to consumers and `basic.get` so far, and when the last went (broker
    /// time): what publisher flow control watches (`flow.rs`).
    pub(super) delivered: u64,
    pub(super) last_delivery_ms: u64,
}

impl Queue {
    /// What storage keeps of this (durable) queue.
    /// Durable and not exclusive: its definition and its persistent messages outlive a
    /// restart.
    pub fn is_stored(&self) -> bool {
        self.durable && self.exclusive_owner.is_none()
    }

    /// One of its messages as storage keeps it: a message of a queue that is not stored never
    /// outlives a restart, whatever its delivery mode.
    pub fn record_of(&self, m: &QueuedMessage) -> MessageRecord {
        m.record(!self.is_stored())
    }

    pub fn record(&self) -> QueueRecord {
        QueueRecord {
            vhost: self.vhost.clone(),
            name: self.name.clone(),
            auto_delete: self.auto_delete,
            arguments: self.arguments.clone(),
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub fn new(
        id: QueueId,
        vhost: ShortStr,
        name: ShortStr,
        durable: bool,
        exclusive_owner: Option<ConnId>,
        auto_delete: bool,
        arguments: FieldTable,
        now_ms: u64,
    ) -> Self {
        Queue {
            id,
            vhost,
            name,
            durable,
            exclusive_owner,
            auto_delete,
            limits: QueueLimits::from_arguments(&arguments),
            ready: Ready::new(max_priority(&arguments)),
            arguments,
            consumers: Vec::new(),
            next_consumer: 0,
            has_exclusive_consumer: false,
            unacked: 0,
            last_used_ms: now_ms,
            has_message_expiry: false,
            next_seq: 0,
            window: None,
            paging: None,
            spilled: false,
            delivered: 0,
            last_delivery_ms: 0,
        }
    }

    /// Messages delivered and not yet acked (`list_queues messages_unacknowledged`).
    pub fn unacked(&self) -> usize {
        self.unacked
    }

    /// A message went to a consumer or a `basic.get` that must ack it.
    pub(crate) fn delivered_unacked(&mut self) {
        self.unacked += 1;
    }

    /// An unacked message was acked or died: it is no longer the queue's.
    pub(crate) fn settled(&mut self) {
        self.unacked = self.unacked.saturating_sub(1);
    }

    /// An unacked message came back: ready again at its old place, redelivered.
    pub(crate) fn requeue_unacked(&mut self, mut m: QueuedMessage) {
        self.settled();
        m.redelivered = true;
        self.requeue(core::iter::once(m));
    }

    pub fn message_count(&self) -> u32 {
        u32::try_from(self.len()).unwrap_or(u32::MAX)
    }

    /// Ready messages, those in the store only included.
    pub fn len(&self) -> usize {
        self.ready.len() + self.paging.as_ref().map_or(0, |p| p.len() as usize)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Body bytes of the ready messages.
    pub fn ready_bytes(&self) -> u64 {
        self.ready.bytes() + self.paging.as_ref().map_or(0, |p| p.bytes())
    }

    /// Ready messages held in memory at the head (the rest wait in the store).
    pub fn ready_in_memory(&self) -> usize {
        self.ready.len()
    }

    pub fn ready_bytes_in_memory(&self) -> u64 {
        self.ready.bytes()
    }

    pub fn consumer_count(&self) -> u32 {
        u32::try_from(self.consumers.len()).unwrap_or(u32::MAX)
    }

    pub fn is_exclusive(&self) -> bool {
        self.exclusive_owner.is_some()
    }

    /// The oldest ready message.
    pub fn head(&self) -> Option<&QueuedMessage> {
        self.ready.front()
    }

    /// Appends a newly enqueued message (its `seq` is assigned here).
    pub fn push_back(&mut self, mut m: QueuedMessage) {
        m.seq = self.next_seq;
        self.next_seq += 1;
        if m.expires_at != NEVER {
            self.has_message_expiry = true;
        }
        self.ready.push_back(m);
    }

    pub fn pop_front(&mut self) -> Option<QueuedMessage> {
        let m = self.ready.pop_front()?;
        if self.ready.is_empty() {
            self.has_message_expiry = false;
        }
        Some(m)
    }

    /// Puts delivered messages back where they were in publish order (by `seq`).
    pub fn requeue(&mut self, messages: impl IntoIterator<Item = QueuedMessage>) {
        for m in messages {
            if m.expires_at != NEVER {
                self.has_message_expiry = true;
            }
            self.ready.insert_by_seq(m);
        }
    }

    /// Every ready message of the head, in delivery order. (A paging queue's other messages
    /// are the store's: they are read back by id order, so they are never written again.)
    pub fn ready_messages(&self) -> impl Iterator<Item = &QueuedMessage> {
        self.ready.iter()
    }

    /// Removes the head's messages beyond a window (see `Ready::split_off_after`), in order.
    pub(super) fn split_head_after(
        &mut self,
        keep_messages: usize,
        keep_bytes: u64,
    ) -> alloc::collections::VecDeque<QueuedMessage> {
        self.ready.split_off_after(keep_messages, keep_bytes)
    }

    /// Removes every ready message of the head (see `Queue::drain_outside_head` for the rest).
    pub fn drain_ready(&mut self) -> Vec<QueuedMessage> {
        self.has_message_expiry = false;
        self.ready.drain()
    }

    /// Whether one more message of `body_len` bytes would exceed the length limits.
    pub fn is_full_for(&self, body_len: u64) -> bool {
        self.limits
            .max_length
            .is_some_and(|max| self.len() as u64 >= max)
            || self
                .limits
                .max_length_bytes
                .is_some_and(|max| self.ready_bytes() + body_len > max)
    }

    /// Whether the ready messages exceed the length limits.
    pub fn is_over_limits(&self) -> bool {
        self.limits
            .max_length
            .is_some_and(|max| self.len() as u64 > max)
            || self
                .limits
                .max_length_bytes
                .is_some_and(|max| self.ready_bytes() > max)
    }

    /// When the queue expires if it stays unused, if it can.
    pub fn expires_at(&self) -> Option<u64> {
        let ttl = self.limits.expires?;
        self.consumers
            .is_empty()
            .then(|| self.last_used_ms.saturating_add(ttl))
    }

    pub fn remove_consumer(&mut self, conn: ConnId, channel: u16, tag: &ShortStr) -> bool {
        let Some(i) = self
            .consumers
            .iter()
            .position(|c| c.conn == conn && c.channel == channel && &c.tag == tag)
        else {
            return false;
        };
        self.consumers.remove(i);
        if i < self.next_consumer {
            self.next_consumer -= 1;
        }
        if self.next_consumer >= self.consumers.len() {
            self.next_consumer = 0;
        }
        self.has_exclusive_consumer = false;
        true
    }
}
