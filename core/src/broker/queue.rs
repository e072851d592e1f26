//! A queue: its messages waiting for delivery and the consumers that take them in turn.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use super::{ConnId, Message};
use crate::codec::{FieldTable, ShortStr};

/// Identifies a queue for the broker's lifetime (names can be reused after a delete).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueueId(pub u32);

/// A message waiting in a queue.
#[derive(Clone, Debug)]
pub struct QueuedMessage {
    pub message: Message,
    pub redelivered: bool,
    /// Storage id of a persistent message in a durable queue; 0 when not stored.
    pub store_id: u64,
}

/// Points at a consumer: the channel that owns it and its tag.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerRef {
    pub conn: ConnId,
    pub channel: u16,
    pub tag: ShortStr,
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
    pub ready: VecDeque<QueuedMessage>,
    /// Consumers in round-robin order; `next_consumer` is where the next delivery starts.
    pub consumers: Vec<ConsumerRef>,
    pub next_consumer: usize,
    /// An exclusive consumer holds the queue alone.
    pub has_exclusive_consumer: bool,
    /// Messages delivered and not yet acked, for `list_queues messages_unacknowledged`.
    pub unacked: usize,
}

impl Queue {
    pub fn message_count(&self) -> u32 {
        u32::try_from(self.ready.len()).unwrap_or(u32::MAX)
    }

    pub fn consumer_count(&self) -> u32 {
        u32::try_from(self.consumers.len()).unwrap_or(u32::MAX)
    }

    pub fn is_exclusive(&self) -> bool {
        self.exclusive_owner.is_some()
    }

    /// Puts messages back at the head of the queue, keeping their given order.
    pub fn requeue_front(&mut self, messages: impl DoubleEndedIterator<Item = QueuedMessage>) {
        for m in messages.rev() {
            self.ready.push_front(m);
        }
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
