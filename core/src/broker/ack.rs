//! Settling deliveries: `basic.ack` / `nack` / `reject` / `recover`, and what a closing channel
//! gives back (its unacked deliveries return to their queues, redelivered).

use alloc::vec::Vec;

use super::channel::{Channel, TxOp, Unacked};
use super::expiry::DeathReason;
use super::queue::{QueueId, NEVER};
use super::Broker;
use crate::channel_fault;
use crate::codec::{BasicRecoverOk, ShortStr};
use crate::connection_fault;
use crate::reply::Fault;
use crate::vocab::ConnId;

impl Broker {
    fn take_unacked_or_fail(
        ch: &mut Channel,
        tag: u64,
        multiple: bool,
    ) -> Result<Vec<Unacked>, Fault> {
        ch.take_unacked(tag, multiple)
            .ok_or_else(|| channel_fault!(PRECONDITION_FAILED, "unknown delivery tag {tag}"))
    }

    pub(crate) fn basic_ack(
        &mut self,
        conn: ConnId,
        channel: u16,
        tag: u64,
        multiple: bool,
    ) -> Result<(), Fault> {
        let ch = self.channel_mut(conn, channel)?;
        let taken = Self::take_unacked_or_fail(ch, tag, multiple)?;
        let Some(taken) = hold_in_tx(ch, taken, TxOp::Ack) else {
            return Ok(());
        };
        let queues = ch.consumed_queues();
        for u in taken {
            self.settle(u);
        }
        self.dirty.extend(queues);
        Ok(())
    }

    pub(crate) fn basic_nack(
        &mut self,
        conn: ConnId,
        channel: u16,
        tag: u64,
        multiple: bool,
        requeue: bool,
    ) -> Result<(), Fault> {
        let ch = self.channel_mut(conn, channel)?;
        let taken = Self::take_unacked_or_fail(ch, tag, multiple)?;
        let nack = |unacked| TxOp::Nack { unacked, requeue };
        let Some(taken) = hold_in_tx(ch, taken, nack) else {
            return Ok(());
        };
        let queues = ch.consumed_queues();
        if requeue {
            self.requeue(taken);
        } else {
            for u in taken {
                self.reject(u);
            }
        }
        self.dirty.extend(queues);
        Ok(())
    }

    pub(crate) fn basic_recover(
        &mut self,
        conn: ConnId,
        channel: u16,
        requeue: bool,
    ) -> Result<(), Fault> {
        self.basic_recover_async(conn, channel, requeue)?;
        self.reply(conn, channel, BasicRecoverOk);
        Ok(())
    }

    pub(crate) fn basic_recover_async(
        &mut self,
        conn: ConnId,
        channel: u16,
        requeue: bool,
    ) -> Result<(), Fault> {
        if !requeue {
            // RabbitMQ does not implement redelivery to the original consumer either.
            return Err(connection_fault!(NOT_IMPLEMENTED, "requeue=false"));
        }
        let ch = self.channel_mut(conn, channel)?;
        let taken = ch.take_unacked(0, true).unwrap_or_default();
        let queues = ch.consumed_queues();
        self.requeue(taken);
        self.dirty.extend(queues);
        Ok(())
    }

    /// An acked (or dropped) delivery leaves the broker for good.
    pub(crate) fn settle(&mut self, u: Unacked) {
        if let Some(q) = self.queues.get_mut(&u.queue) {
            q.settled();
            if u.message.store_id != 0 {
                self.storage
                    .delete_message(&q.vhost, &q.name, u.message.store_id);
            }
        }
    }

    /// A delivery rejected without requeue: it dies (dead-lettered when the queue says so).
    pub(crate) fn reject(&mut self, u: Unacked) {
        if let Some(q) = self.queues.get_mut(&u.queue) {
            q.settled();
        }
        self.drop_message(u.queue, u.message, DeathReason::Rejected);
    }

    /// Puts deliveries back in their queues at their original places, marked redelivered.
    pub(crate) fn requeue(&mut self, unacked: Vec<Unacked>) {
        let mut touched: Vec<QueueId> = Vec::new();
        for u in unacked {
            if let Some(q) = self.queues.get_mut(&u.queue) {
                let timed = u.message.expires_at != NEVER;
                q.requeue_unacked(u.message);
                if !q.consumers.is_empty() && self.dirty.last() != Some(&u.queue) {
                    self.dirty.push(u.queue);
                }
                if timed {
                    self.watch_time(u.queue);
                }
                if !touched.contains(&u.queue) {
                    touched.push(u.queue);
                }
            }
        }
        // A message whose TTL passed while it was out is dropped as it comes back, once all
        // are back (RabbitMQ looks at the head after a requeue, not before).
        for q in touched {
            self.expire_head(q);
        }
    }

    /// A channel is gone: its consumers leave their queues, its unacked deliveries (and acks
    /// an uncommitted transaction held) go back to their queues, redelivered.
    pub(crate) fn release_channel(&mut self, conn: ConnId, channel: u16, mut ch: Channel) {
        if let Some((_, key)) = ch.reply_consumer.take() {
            self.drop_reply_consumer(&key);
        }
        let mut unacked = ch.take_all_unacked();
        if let Some(ops) = ch.tx.take() {
            for op in ops {
                if let TxOp::Ack(u) | TxOp::Nack { unacked: u, .. } = op {
                    unacked.push(u);
                }
            }
            unacked.sort_by_key(|u| u.tag);
        }
        // Consumers leave first so requeued messages are not handed straight back to them.
        let mut consumers: Vec<(ShortStr, QueueId)> =
            ch.consumers.drain().map(|(t, c)| (t, c.queue)).collect();
        consumers.sort();
        let mut auto_delete = Vec::new();
        for (tag, queue) in &consumers {
            if let Some(q) = self.queues.get_mut(queue) {
                q.remove_consumer(conn, channel, tag);
                q.last_used_ms = self.now_ms;
                if q.auto_delete && q.consumers.is_empty() {
                    auto_delete.push(*queue);
                }
            }
        }
        self.requeue(unacked);
        for q in auto_delete {
            self.delete_queue_by_id(q, None);
        }
    }
}

/// Settlements inside a transaction wait for its commit, still holding their prefetch room.
/// Gives the deliveries back when the channel is not transactional.
fn hold_in_tx(
    ch: &mut Channel,
    taken: Vec<Unacked>,
    op: impl Fn(Unacked) -> TxOp,
) -> Option<Vec<Unacked>> {
    if ch.tx.is_none() {
        return Some(taken);
    }
    for u in &taken {
        ch.hold_credit(u);
    }
    if let Some(tx) = ch.tx.as_mut() {
        tx.extend(taken.into_iter().map(op));
    }
    None
}
