//! Publisher flow control, as RabbitMQ's credit flow gives it: when a queue's consumers fall
//! behind, the connections publishing into it are read more slowly, so that the consumers keep
//! receiving rather than wait for the flood to end.
//!
//! A queue is behind when it holds at least `BrokerConfig::flow_backlog` messages while a
//! consumer is taking from it (it delivered within [`ACTIVE_MS`]). A connection that publishes
//! into such a queue is held: the broker tells it to stop reading ([`Event::Flow`]), and lets
//! it go once the queue has delivered half as many messages as the connection published into it
//! since (so the consumers get at least half the publishers' rate), when the queue stops
//! delivering, loses its consumers or goes, or after [`MAX_HOLD_MS`] at the latest. A queue
//! nobody consumes from never holds anyone: a backlog builds as fast as publishers can send.
//! As in RabbitMQ, the hold is on the whole connection, acks included. Commands the connection
//! had sent before it heard of the hold wait with the host ([`Broker::is_holding`]): the
//! pump leaves them in the connection, the native hub keeps the batches (and their credit).

use super::{Broker, Map, QueueId};
use crate::vocab::{ConnId, Event};

/// A queue that delivered within this long has a consumer taking from it.
pub const ACTIVE_MS: u64 = 100;
/// The longest a connection is held.
pub const MAX_HOLD_MS: u64 = 1000;

/// A connection that is not being read.
pub(crate) struct Hold {
    queue: QueueId,
    /// The queue's delivery count when the hold began.
    delivered_at_start: u64,
    /// Publishes into the queue counted against the hold.
    published: u64,
    deadline_ms: u64,
}

/// The connections held, by connection.
pub(crate) type Holds = Map<ConnId, Hold>;

impl Broker {
    /// After a publish from `conn` landed in `queue`: holds the connection if the queue is
    /// behind (see the module docs).
    #[inline]
    pub(crate) fn check_flow(&mut self, conn: ConnId, queue: QueueId) {
        let backlog = self.flow_backlog;
        if backlog == 0 {
            return;
        }
        let Some(q) = self.queues.get(&queue) else {
            return;
        };
        if q.len() < backlog || q.consumers.is_empty() || !self.delivering(queue) {
            return;
        }
        // Not reading a connection that consumes from this queue would stop its acks, and
        // with them the deliveries the hold waits for.
        if q.consumers.iter().any(|c| c.conn == conn) {
            return;
        }
        if let Some(hold) = self.flow_holds.get_mut(&conn) {
            if hold.queue == queue {
                hold.published += 1;
            }
            return;
        }
        let hold = Hold {
            queue,
            delivered_at_start: q.delivered,
            published: 1,
            deadline_ms: self.now_ms.saturating_add(MAX_HOLD_MS),
        };
        self.flow_holds.insert(conn, hold);
        self.emit(conn, Event::Flow { hold: true });
    }

    /// Whether `queue` delivered within [`ACTIVE_MS`].
    fn delivering(&self, queue: QueueId) -> bool {
        self.queues
            .get(&queue)
            .is_some_and(|q| q.delivered > 0 && self.now_ms <= q.last_delivery_ms + ACTIVE_MS)
    }

    /// Lets go the held connections whose queue caught up (see the module docs). Run once per
    /// round and on the timer.
    pub(crate) fn release_flow(&mut self) {
        if self.flow_holds.is_empty() {
            return;
        }
        let mut done: alloc::vec::Vec<ConnId> = self
            .flow_holds
            .iter()
            .filter(|(_, h)| {
                let caught_up = self.queues.get(&h.queue).is_none_or(|q| {
                    q.consumers.is_empty()
                        || q.delivered >= h.delivered_at_start + h.published.div_ceil(2)
                });
                caught_up || !self.delivering(h.queue) || self.now_ms >= h.deadline_ms
            })
            .map(|(c, _)| *c)
            .collect();
        done.sort();
        for conn in done {
            self.flow_holds.remove(&conn);
            if self.conns.contains_key(&conn) {
                self.emit(conn, Event::Flow { hold: false });
            }
        }
    }

    /// When a held connection is to be let go at the latest (its queue stops counting as
    /// delivering, or its deadline).
    pub(crate) fn flow_timeout(&self) -> Option<u64> {
        self.flow_holds
            .values()
            .map(|h| {
                let idle = self
                    .queues
                    .get(&h.queue)
                    .map_or(self.now_ms, |q| q.last_delivery_ms + ACTIVE_MS + 1);
                idle.min(h.deadline_ms)
            })
            .min()
    }

    /// Whether connection `conn` is held: hosts hand the broker none of its commands until it
    /// is let go (the ones it had already sent wait, in order, with the host).
    #[inline]
    pub fn is_holding(&self, conn: ConnId) -> bool {
        !self.flow_holds.is_empty() && self.flow_holds.contains_key(&conn)
    }

    /// Whether any connection is held by publisher flow control.
    pub fn holds_publishers(&self) -> bool {
        !self.flow_holds.is_empty()
    }

    /// The connection is gone: it is held no more.
    pub(crate) fn forget_flow(&mut self, conn: ConnId) {
        self.flow_holds.remove(&conn);
    }
}
