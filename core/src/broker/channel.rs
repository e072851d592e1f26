//! Broker-side state of one channel: consumers, unacked deliveries, prefetch, confirms, tx.

use alloc::collections::VecDeque;
use alloc::sync::Arc;
use alloc::vec::Vec;

use super::queue::{QueueId, QueuedMessage};
use super::Map;
use crate::access::Permissions;
use crate::codec::ShortStr;

/// A consumer registered by `basic.consume`.
#[derive(Debug)]
pub struct Consumer {
    pub queue: QueueId,
    pub no_ack: bool,
    pub exclusive: bool,
    /// Per-consumer prefetch limit (0 = unlimited).
    pub prefetch: u16,
    /// Deliveries to this consumer not yet acked (kept by `Channel`).
    unacked: u32,
}

impl Consumer {
    pub fn new(queue: QueueId, no_ack: bool, exclusive: bool, prefetch: u16) -> Self {
        Consumer {
            queue,
            no_ack,
            exclusive,
            prefetch,
            unacked: 0,
        }
    }

    /// Deliveries to this consumer not yet acked.
    pub fn unacked(&self) -> u32 {
        self.unacked
    }
}

/// A delivery awaiting ack.
#[derive(Debug)]
pub struct Unacked {
    pub tag: u64,
    pub queue: QueueId,
    pub message: QueuedMessage,
    /// The consumer it went to; `None` for `basic.get`.
    pub consumer: Option<ShortStr>,
}

/// A publish or settle buffered by a transaction until commit.
#[derive(Debug)]
pub enum TxOp {
    Publish {
        queues: Vec<QueueId>,
        message: super::Message,
        mandatory: bool,
    },
    Ack(Unacked),
    Nack {
        unacked: Unacked,
        requeue: bool,
    },
}

#[derive(Debug)]
pub struct Channel {
    pub next_delivery_tag: u64,
    /// Ascending by tag; with the counts below, changed only by `Channel`'s methods.
    unacked: VecDeque<Unacked>,
    pub consumers: Map<ShortStr, Consumer>,
    /// Prefetch applied to consumers created from now on (`basic.qos global=false`).
    pub consumer_prefetch: u16,
    /// Channel-wide limit shared by all consumers (`basic.qos global=true`), 0 = none.
    pub global_prefetch: u16,
    /// Unacked deliveries made to consumers (what the global limit counts).
    consumer_unacked: u32,
    /// Next publish sequence number once `confirm.select` was seen.
    pub next_publish_seq: Option<u64>,
    /// Buffered operations once `tx.select` was seen.
    pub tx: Option<Vec<TxOp>>,
    /// `channel.flow`: false stops deliveries.
    pub flow_active: bool,
    /// The queue most recently declared on this channel (an empty queue name means it).
    pub last_queue: Option<ShortStr>,
    /// Direct reply-to consumer: (consumer tag, reply address key).
    pub reply_consumer: Option<(ShortStr, ShortStr)>,
    /// The user's permissions in the vhost as the channel opened; `None`: none at all.
    pub permissions: Option<Arc<Permissions>>,
    /// `write` allows every exchange: publishing checks nothing.
    pub writes_anywhere: bool,
}

impl Channel {
    /// A channel of a user with `permissions` in its vhost.
    pub fn with_permissions(permissions: Option<Arc<Permissions>>) -> Self {
        let writes_anywhere = permissions
            .as_ref()
            .is_some_and(|p| p.write.matches_everything());
        Channel {
            permissions,
            writes_anywhere,
            ..Channel::new()
        }
    }

    /// A channel whose user has no permissions.
    pub fn new() -> Self {
        Channel {
            permissions: None,
            writes_anywhere: false,
            next_delivery_tag: 1,
            unacked: VecDeque::new(),
            consumers: Map::default(),
            consumer_prefetch: 0,
            global_prefetch: 0,
            consumer_unacked: 0,
            next_publish_seq: None,
            tx: None,
            flow_active: true,
            last_queue: None,
            reply_consumer: None,
        }
    }

    /// Deliveries not settled yet: unacked, or settled in a transaction not committed.
    pub fn held_deliveries(&self) -> impl Iterator<Item = &Unacked> {
        let in_tx = self.tx.iter().flatten().filter_map(|op| match op {
            TxOp::Ack(u) | TxOp::Nack { unacked: u, .. } => Some(u),
            TxOp::Publish { .. } => None,
        });
        self.unacked.iter().chain(in_tx)
    }

    /// Queues this channel consumes from.
    pub fn consumed_queues(&self) -> Vec<QueueId> {
        let mut qs: Vec<QueueId> = self.consumers.values().map(|c| c.queue).collect();
        qs.sort();
        qs.dedup();
        qs
    }

    /// Whether the consumer `tag` may take one more delivery now.
    pub fn can_deliver_to(&self, tag: &ShortStr) -> bool {
        if !self.flow_active {
            return false;
        }
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

    pub fn take_tag(&mut self) -> u64 {
        let tag = self.next_delivery_tag;
        self.next_delivery_tag += 1;
        tag
    }

    /// Records a delivery awaiting its ack; one to a consumer counts against that consumer's
    /// prefetch and the channel's.
    pub fn record_unacked(&mut self, u: Unacked) {
        self.hold_credit(&u);
        self.unacked.push_back(u);
    }

    /// Every delivery awaiting an ack, in tag order (the channel is going away).
    pub fn take_all_unacked(&mut self) -> Vec<Unacked> {
        let taken: Vec<Unacked> = self.unacked.drain(..).collect();
        for u in &taken {
            self.forget_consumer_unacked(u);
        }
        taken
    }

    /// Deliveries awaiting an ack.
    pub fn unacked_count(&self) -> usize {
        self.unacked.len()
    }

    /// Removes the unacked deliveries an ack/nack names: one tag, or all up to it
    /// (`multiple`; tag 0 with multiple means all). None if a named tag is unknown.
    pub fn take_unacked(&mut self, tag: u64, multiple: bool) -> Option<Vec<Unacked>> {
        if multiple {
            let upto = if tag == 0 { u64::MAX } else { tag };
            if tag != 0 && self.unacked.binary_search_by_key(&tag, |u| u.tag).is_err() {
                return None;
            }
            let n = self.unacked.partition_point(|u| u.tag <= upto);
            let taken: Vec<Unacked> = self.unacked.drain(..n).collect();
            for u in &taken {
                self.forget_consumer_unacked(u);
            }
            Some(taken)
        } else {
            let i = self.unacked.binary_search_by_key(&tag, |u| u.tag).ok()?;
            let u = self.unacked.remove(i)?;
            self.forget_consumer_unacked(&u);
            Some(alloc::vec![u])
        }
    }

    /// Puts a delivery back as unacked (a rolled-back transaction), keeping tag order. Its
    /// prefetch credit was held by the transaction, so counts do not change.
    pub fn reinsert_unacked(&mut self, u: Unacked) {
        let i = self.unacked.partition_point(|x| x.tag < u.tag);
        self.unacked.insert(i, u);
    }

    /// Counts a delivery against its consumer's and the channel's prefetch again: an ack
    /// inside a transaction frees no room until the commit.
    pub fn hold_credit(&mut self, u: &Unacked) {
        if let Some(tag) = &u.consumer {
            if let Some(c) = self.consumers.get_mut(tag) {
                c.unacked += 1;
            }
            self.consumer_unacked += 1;
        }
    }

    /// Releases the prefetch room a delivery held.
    pub fn release_credit(&mut self, u: &Unacked) {
        self.forget_consumer_unacked(u);
    }

    fn forget_consumer_unacked(&mut self, u: &Unacked) {
        if let Some(tag) = &u.consumer {
            if let Some(c) = self.consumers.get_mut(tag) {
                c.unacked = c.unacked.saturating_sub(1);
            }
            self.consumer_unacked = self.consumer_unacked.saturating_sub(1);
        }
    }
}

impl Default for Channel {
    fn default() -> Self {
        Self::new()
    }
}
