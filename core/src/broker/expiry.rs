//! Time-driven behaviour and dead-lettering: message TTL (`x-message-ttl`, `expiration`),
//! queue expiry (`x-expires`), length limits (`x-max-length[-bytes]`, `x-overflow`), and
//! republishing dead messages to `x-dead-letter-exchange` with RabbitMQ's `x-death` headers.

use alloc::vec::Vec;

use super::queue::{Overflow, QueueId, QueuedMessage, NEVER};
use super::{Broker, Message};
use crate::codec::{BasicProperties, FieldTable, FieldValue, LongStr, ShortStr};

/// Why a message died, as `x-death` records it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeathReason {
    Rejected,
    Expired,
    MaxLen,
}

impl DeathReason {
    fn as_str(self) -> &'static str {
        match self {
            DeathReason::Rejected => "rejected",
            DeathReason::Expired => "expired",
            DeathReason::MaxLen => "maxlen",
        }
    }
}

impl Broker {
    /// Tells the broker the time (ms since any fixed origin) and does what is due: expires
    /// messages at queue heads and deletes queues unused past their `x-expires`.
    pub fn handle_timeout(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
        self.release_flow();
        if self.timed.is_empty() {
            return;
        }
        let timed: Vec<QueueId> = self.timed.iter().copied().collect();
        for id in timed {
            let Some(q) = self.queues.get(&id) else {
                self.timed.remove(&id);
                continue;
            };
            if q.expires_at().is_some_and(|at| self.now_ms >= at) {
                self.delete_queue_by_id(id, None);
                continue;
            }
            self.expire_head(id);
            let q = &self.queues[&id];
            if !q.limits.is_timed() && !q.has_message_expiry {
                self.timed.remove(&id);
            }
        }
        self.settle_work();
    }

    /// When `handle_timeout` next has something to do, if ever.
    pub fn poll_timeout(&self) -> Option<u64> {
        let mut next: Option<u64> = self.flow_timeout();
        for id in &self.timed {
            let Some(q) = self.queues.get(id) else {
                continue;
            };
            let head = q
                .head()
                .map(|m| m.expires_at)
                .filter(|&at| at != NEVER)
                .map(|at| at.saturating_add(1));
            for at in [head, q.expires_at()].into_iter().flatten() {
                next = Some(next.map_or(at, |n| n.min(at)));
            }
        }
        next
    }

    /// Tells the broker what its time 0 is in Unix milliseconds, for `x-death` timestamps.
    pub fn set_unix_time_offset(&mut self, unix_ms_at_zero: u64) {
        self.unix_offset_ms = unix_ms_at_zero;
    }

    /// When a message enqueued now into `queue` expires.
    pub(crate) fn expiry_for(&self, queue: QueueId, message: &Message) -> u64 {
        let q_ttl = self.queues.get(&queue).and_then(|q| q.limits.message_ttl);
        let ttl = match (q_ttl, message.expiration_ms()) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => match a.or(b) {
                Some(t) => t,
                None => return NEVER,
            },
        };
        self.now_ms.saturating_add(ttl)
    }

    /// Notes that `queue` needs `handle_timeout`.
    pub(crate) fn watch_time(&mut self, queue: QueueId) {
        self.timed.insert(queue);
    }

    /// Drops (dead-letters) expired messages at the head of a queue.
    pub(crate) fn expire_head(&mut self, queue: QueueId) {
        loop {
            let Some(q) = self.queues.get_mut(&queue) else {
                return;
            };
            if q.ready_in_memory() == 0 && q.has_outside_head() {
                // The next messages wait in the store: they are the head now.
                q.refill(&mut *self.storage, &mut self.page_scratch);
                if q.has_message_expiry {
                    self.timed.insert(queue);
                }
            }
            // Strictly past: a TTL of 0 still lets a waiting consumer take the message now.
            if q.head().is_none_or(|m| self.now_ms <= m.expires_at) {
                return;
            }
            let Some(m) = q.pop_front() else { return };
            self.drop_message(queue, m, DeathReason::Expired);
        }
    }

    /// Applies the length limit after an enqueue: drops from the head while over it.
    pub(crate) fn enforce_length(&mut self, queue: QueueId) {
        loop {
            let Some(q) = self.queues.get_mut(&queue) else {
                return;
            };
            if q.limits.overflow != Overflow::DropHead || !q.is_over_limits() {
                return;
            }
            let Some(m) = q.take_front(&mut *self.storage, &mut self.page_scratch) else {
                return;
            };
            if q.has_message_expiry {
                self.timed.insert(queue);
            }
            self.drop_message(queue, m, DeathReason::MaxLen);
        }
    }

    /// A message leaves `queue` without being delivered: forget it in storage and, when the
    /// queue has a dead-letter exchange, republish it there.
    pub(crate) fn drop_message(&mut self, queue: QueueId, m: QueuedMessage, reason: DeathReason) {
        let Some(q) = self.queues.get(&queue) else {
            return;
        };
        if m.store_id != 0 {
            self.storage.delete_message(&q.vhost, &q.name, m.store_id);
        }
        self.dead_letter(queue, &m.message, reason);
    }

    /// Queues a dead message for its queue's dead-letter exchange, if the queue has one. It
    /// is republished after the command that killed it ([`Broker::settle_work`]), not here:
    /// a dead letter can kill others (a full dead-letter queue drops its head), and a work
    /// list keeps that from recursing (RabbitMQ's queues dead-letter asynchronously too).
    pub(crate) fn dead_letter(&mut self, queue: QueueId, message: &Message, reason: DeathReason) {
        let Some(q) = self.queues.get(&queue) else {
            return;
        };
        let Some(exchange) = q.limits.dead_letter_exchange.clone() else {
            return;
        };
        let routing_key = q
            .limits
            .dead_letter_routing_key
            .clone()
            .unwrap_or_else(|| message.routing_key().clone());
        self.dead_letters.push_back(DeadLetter {
            vhost: q.vhost.clone(),
            queue: q.name.clone(),
            exchange,
            routing_key,
            message: message.clone(),
            reason,
        });
    }

    /// Republishes a dead message (RabbitMQ semantics: `x-death` entries counted per queue and
    /// reason, `x-first-death-*` kept, per-message `expiration` removed, cycles without a
    /// rejection dropped).
    pub(crate) fn republish_dead(&mut self, d: DeadLetter) {
        let DeadLetter {
            vhost,
            queue,
            exchange,
            routing_key,
            message,
            reason,
        } = d;
        let mut props = BasicProperties::decode(message.properties()).unwrap_or_default();
        let original_expiration = if reason == DeathReason::Expired {
            props.expiration.take()
        } else {
            None
        };
        let mut headers = props.headers.take().unwrap_or_default();
        let time = (self.now_ms.saturating_add(self.unix_offset_ms)) / 1000;
        record_death(
            &mut headers,
            &queue,
            reason,
            &message,
            time,
            original_expiration,
        );
        props.headers = Some(headers);
        let mut raw = Vec::with_capacity(message.properties().len() + 128);
        props.encode(&mut raw);
        let dead = Message::new(
            exchange,
            routing_key,
            bytes::Bytes::from(raw),
            message.body().clone(),
        );
        let mut targets = Vec::new();
        if self.route(&vhost, &dead, false, &mut targets).is_err() {
            // A missing dead-letter exchange drops the message, as RabbitMQ does.
            return;
        }
        for t in targets {
            let name = match self.queues.get(&t) {
                Some(tq) => tq.name.clone(),
                None => continue,
            };
            if props
                .headers
                .as_ref()
                .is_some_and(|h| is_automatic_cycle(h, reason, &name))
            {
                continue;
            }
            self.enqueue(t, dead.clone(), false);
        }
    }
}

/// A message that died in a queue with a dead-letter exchange, waiting to be republished.
pub(crate) struct DeadLetter {
    vhost: ShortStr,
    /// The queue it died in.
    queue: ShortStr,
    exchange: ShortStr,
    routing_key: ShortStr,
    message: Message,
    reason: DeathReason,
}

/// Adds (or counts) this death in the `x-death` header, newest first, and sets the
/// `x-first-death-*` headers on a message's first death.
fn record_death(
    headers: &mut FieldTable,
    queue: &ShortStr,
    reason: DeathReason,
    message: &Message,
    time: u64,
    original_expiration: Option<ShortStr>,
) {
    let reason_text = reason.as_str();
    let mut deaths: Vec<FieldValue> = match headers.get("x-death") {
        Some(FieldValue::Array(a)) => a.clone(),
        _ => Vec::new(),
    };
    let same = |v: &FieldValue| match v {
        FieldValue::Table(t) => {
            t.get("queue").and_then(FieldValue::as_str) == Some(queue.as_str())
                && t.get("reason").and_then(FieldValue::as_str) == Some(reason_text)
        }
        _ => false,
    };
    let previous = deaths.iter().position(same).map(|i| deaths.remove(i));
    let count = previous
        .as_ref()
        .and_then(|v| v.as_table())
        .and_then(|t| t.get("count"))
        .and_then(FieldValue::as_i64)
        .unwrap_or(0)
        + 1;
    let mut entry = FieldTable::default();
    entry.insert("count", FieldValue::I64(count));
    entry.insert("reason", long(reason_text));
    entry.insert("queue", long(queue));
    entry.insert("time", FieldValue::Timestamp(time));
    entry.insert("exchange", long(message.exchange()));
    entry.insert(
        "routing-keys",
        FieldValue::Array(alloc::vec![long(message.routing_key())]),
    );
    if let Some(exp) = original_expiration {
        entry.insert("original-expiration", long(&exp));
    }
    deaths.insert(0, FieldValue::Table(entry));
    headers.insert("x-death", FieldValue::Array(deaths));
    if headers.get("x-first-death-reason").is_none() {
        headers.insert("x-first-death-reason", long(reason_text));
        headers.insert("x-first-death-queue", long(queue));
        headers.insert("x-first-death-exchange", long(message.exchange()));
    }
}

/// Would a dead letter that just died for `reason` go round an automatic cycle by entering
/// `queue`? RabbitMQ's rule: never after a rejection (a client decided); otherwise a cycle is
/// the deaths up to and including the last one in `queue` (`x-death` is newest first), and it
/// is dropped when none of them was a rejection.
fn is_automatic_cycle(headers: &FieldTable, reason: DeathReason, queue: &str) -> bool {
    if reason == DeathReason::Rejected {
        return false;
    }
    let Some(FieldValue::Array(deaths)) = headers.get("x-death") else {
        return false;
    };
    let queue_of = |v: &FieldValue| {
        v.as_table()
            .and_then(|t| t.get("queue"))
            .and_then(FieldValue::as_str)
            .map(|q| q == queue)
    };
    let Some(last) = deaths.iter().position(|v| queue_of(v) == Some(true)) else {
        return false;
    };
    // Anything but a table in x-death was put there by a client: not automatic.
    deaths[..=last].iter().all(|v| {
        v.as_table()
            .is_some_and(|t| t.get("reason").and_then(FieldValue::as_str) != Some("rejected"))
    })
}

fn long(s: &str) -> FieldValue {
    FieldValue::LongStr(LongStr::from(s))
}
