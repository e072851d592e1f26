//! Queues longer than memory: beyond a window, a queue's messages live in the store only.
//!
//! A queue that pages keeps three parts, in delivery order:
//! - the **head**, in memory ([`Queue`]'s ready messages), at most about a window long;
//! - the **paged** messages, in the store only: the queue keeps their count, their bytes and
//!   the id the next page-in reads after ([`Storage::page_in`] returns a queue's stored
//!   messages in id order, and a queue's ids grow in publish order);
//! - the **tail**: messages written to the store but not yet durable. They stay in memory
//!   until the store is synced up to their write, because a page-in can only read back what
//!   is on disk; then they join the paged part and leave memory.
//!
//! Once a queue is past its window, every new message goes to the tail, a transient one too
//! (written to the store as a transient record, which no restart brings back): the order of a
//! queue does not depend on which of its messages are persistent. The head is filled again
//! from the paged part when it runs low, and straight from the tail when nothing is paged, so
//! consumers that keep up never wait for a read.
//!
//! Durable queues page whenever they pass their window. A queue that is not durable keeps its
//! messages in memory, so the fastest path (transient messages through a transient queue whose
//! consumer lags for a moment) never writes; under memory pressure, though, it pages too: what
//! its head holds beyond the window is spilled to the store (in order, under fresh ids) and
//! new messages past the window follow, as RabbitMQ pages transient messages when memory runs
//! short instead of keeping its publishers blocked. Nothing it writes survives a restart: its
//! records are [`MessageRecord::paged_only`](crate::storage::MessageRecord::paged_only).
//!
//! Only queues whose order is by arrival page: not priority queues, not queues with a
//! message TTL (every message would need its expiry kept). A paged message with its own
//! `expiration` keeps its expiry time in memory beside the count (16 bytes for such a message,
//! none for the others), so it expires at the head as it would have in memory.
//!
//! [`Storage::page_in`]: crate::storage::Storage::page_in

use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;

use super::queue::{Queue, QueuedMessage, NEVER};
use super::Message;
use crate::codec::FieldTable;
use crate::storage::{MessageRecord, Storage};

/// How much of a queue is kept in memory before the rest is left to the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub messages: usize,
    /// Body bytes.
    pub bytes: u64,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            messages: 2048,
            bytes: 8 << 20,
        }
    }
}

/// The part of a paging queue that is not its head (see the module docs); a queue has one
/// only while it holds messages outside its head, so an idle queue pays a pointer for it.
#[derive(Debug, Default)]
pub(super) struct Paging {
    /// Messages in the store only.
    paged: u64,
    paged_bytes: u64,
    /// The next page-in reads the queue's stored messages with ids above this.
    after_id: u64,
    /// Written and not yet known durable: (message, the store's write sequence after it).
    tail: VecDeque<(QueuedMessage, u64)>,
    tail_bytes: u64,
    /// (store id, expiry) of the paged messages that expire, in id order.
    expiring: VecDeque<(u64, u64)>,
    /// When recovery left messages in the store (broker time): a TTL of their own restarts
    /// then, as for those recovered into memory.
    recovered_at: u64,
}

impl Paging {
    /// Messages not in the head.
    pub(super) fn len(&self) -> u64 {
        self.paged + self.tail.len() as u64
    }

    pub(super) fn bytes(&self) -> u64 {
        self.paged_bytes + self.tail_bytes
    }

    /// The expiry of paged message `id`, forgetting those of messages before it.
    fn expiry_of(&mut self, id: u64) -> u64 {
        while self.expiring.front().is_some_and(|(i, _)| *i < id) {
            self.expiring.pop_front();
        }
        match self.expiring.front() {
            Some((i, at)) if *i == id => {
                let at = *at;
                self.expiring.pop_front();
                at
            }
            _ => NEVER,
        }
    }

    fn pop_tail(&mut self) -> Option<QueuedMessage> {
        let (m, _) = self.tail.pop_front()?;
        self.tail_bytes -= m.message.body().len() as u64;
        Some(m)
    }
}

/// Whether a queue with these arguments pages (see the module docs): a store recovering a
/// durable one leaves what is beyond its window on disk.
pub fn pages(arguments: &FieldTable) -> bool {
    super::queue::max_priority(arguments).is_none() && !arguments.contains_key("x-message-ttl")
}

impl Queue {
    /// Lets this queue leave messages beyond `window` to the store, if it is a queue that can
    /// (see the module docs).
    pub(crate) fn enable_paging(&mut self, window: Window) {
        if pages(&self.arguments) {
            self.window = Some(window);
        }
    }

    /// Whether the store holds (or held) messages of this queue.
    pub(crate) fn stored_anything(&self) -> bool {
        self.is_stored() || self.spilled
    }

    /// Under memory pressure: moves what the head of a queue that is not durable holds beyond
    /// its window to the store, in order, under fresh ids from `next_id` (they leave memory
    /// once synced). True if it moved any.
    pub(crate) fn spill(&mut self, storage: &mut dyn Storage, next_id: &mut u64) -> bool {
        let Some(window) = self.window else {
            return false;
        };
        // With deliveries out, one could come back (requeued to its place by `seq`) behind
        // messages spilled before it: what is outside must stay newer than anything that can
        // return to the head.
        if self.is_stored() || self.has_outside_head() || self.unacked() > 0 {
            return false;
        }
        let over =
            self.ready_in_memory() > window.messages || self.ready_bytes_in_memory() > window.bytes;
        if !over {
            return false;
        }
        let excess = self.split_head_after(window.messages, window.bytes);
        if excess.is_empty() {
            return false;
        }
        for mut m in excess {
            if m.store_id != 0 {
                // Spilled before and read back: its old record goes; ids must grow in order.
                storage.delete_message(&self.vhost, &self.name, m.store_id);
            }
            m.store_id = *next_id;
            *next_id += 1;
            let record = self.record_of(&m);
            storage.save_message(&self.vhost, &self.name, &record);
            let seq = storage.write_seq();
            self.push_paged(m, seq);
        }
        true
    }

    /// Gives back the outside part once it holds nothing.
    fn release_if_empty(&mut self) {
        if self
            .paging
            .as_ref()
            .is_some_and(|p| p.len() == 0 && p.expiring.is_empty())
        {
            self.paging = None;
        }
    }

    /// Recovery left `count` messages (`bytes` of bodies, ids above `after_id`) in the store,
    /// behind the head it recovered.
    pub(crate) fn restore_paged(&mut self, count: u64, bytes: u64, after_id: u64, now_ms: u64) {
        if self.window.is_some() && count > 0 {
            self.paging = Some(Box::new(Paging {
                paged: count,
                paged_bytes: bytes,
                after_id,
                recovered_at: now_ms,
                ..Paging::default()
            }));
        }
    }

    /// Whether the next message appended goes to the store rather than the head: the queue
    /// pages and is past its window (or already has messages outside the head).
    pub(crate) fn pages_next(&self, memory_pressure: bool) -> bool {
        self.window.is_some_and(|w| {
            self.has_outside_head()
                || ((self.is_stored() || memory_pressure)
                    && (self.ready_in_memory() >= w.messages
                        || self.ready_bytes_in_memory() >= w.bytes))
        })
    }

    /// Whether anything of the queue is outside its head.
    pub(crate) fn has_outside_head(&self) -> bool {
        self.paging.as_ref().is_some_and(|p| p.len() > 0)
    }

    /// Appends a message already written to the store (`write_seq`: the store's write
    /// sequence after it) behind everything the queue holds.
    pub(crate) fn push_paged(&mut self, m: QueuedMessage, write_seq: u64) {
        self.spilled |= !self.is_stored();
        let p = self.paging.get_or_insert_with(Box::default);
        p.tail_bytes += m.message.body().len() as u64;
        p.tail.push_back((m, write_seq));
    }

    /// The store is durable up to write `synced`: the tail messages written by then leave
    /// memory for the paged part. A head with room takes from the tail first.
    pub(crate) fn page_out(&mut self, synced: u64) {
        self.fill_from_tail();
        let Some(p) = self.paging.as_mut() else {
            return;
        };
        while p.tail.front().is_some_and(|(_, seq)| *seq <= synced) {
            let m = p.pop_tail().expect("checked");
            if p.paged == 0 {
                p.after_id = m.store_id - 1;
            }
            p.paged += 1;
            p.paged_bytes += m.message.body().len() as u64;
            if m.expires_at != NEVER {
                p.expiring.push_back((m.store_id, m.expires_at));
            }
        }
        self.release_if_empty();
    }

    /// Fills the head when it is below half its window: from the store while messages are
    /// paged, else from the tail. `out` is scratch for what the store returns.
    pub(crate) fn refill(&mut self, storage: &mut dyn Storage, out: &mut Vec<MessageRecord>) {
        let (Some(window), Some(p)) = (self.window, self.paging.as_ref()) else {
            return;
        };
        let (have, have_bytes) = (self.ready_in_memory(), self.ready_bytes_in_memory());
        if have >= window.messages / 2 || have_bytes >= window.bytes / 2 {
            return;
        }
        if p.paged == 0 {
            self.fill_from_tail();
            self.release_if_empty();
            return;
        }
        let want = window
            .messages
            .saturating_sub(have)
            .max(1)
            .min(p.paged as usize);
        out.clear();
        storage.page_in(&self.vhost, &self.name, p.after_id, want, out);
        let p = self.paging.as_mut().expect("checked");
        if out.is_empty() {
            // The store has none of them left (it could not read them back): go on without
            // them rather than stop the queue behind them.
            p.paged = 0;
            p.paged_bytes = 0;
            p.expiring.clear();
            self.fill_from_tail();
            self.release_if_empty();
            return;
        }
        let mut back = Vec::with_capacity(out.len());
        for record in out.drain(..) {
            p.after_id = record.id;
            p.paged = p.paged.saturating_sub(1);
            p.paged_bytes = p.paged_bytes.saturating_sub(record.body.len() as u64);
            let expires_at = p.expiry_of(record.id);
            back.push(from_record(record, expires_at, p.recovered_at));
        }
        if p.paged == 0 {
            p.paged_bytes = 0;
            p.expiring.clear();
        }
        for m in back {
            self.push_back(m);
        }
        self.release_if_empty();
    }

    /// Moves tail messages into the head while nothing is paged and the head has room.
    fn fill_from_tail(&mut self) {
        loop {
            let room = {
                let (Some(window), Some(p)) = (self.window, self.paging.as_ref()) else {
                    return;
                };
                p.paged == 0
                    && !p.tail.is_empty()
                    && self.ready_in_memory() < window.messages
                    && self.ready_bytes_in_memory() < window.bytes
            };
            if !room {
                return;
            }
            let m = self
                .paging
                .as_mut()
                .and_then(|p| p.pop_tail())
                .expect("checked");
            self.push_back(m);
        }
    }

    /// The head's next message, reading from the store first when the head is empty.
    pub(crate) fn take_front(
        &mut self,
        storage: &mut dyn Storage,
        out: &mut Vec<MessageRecord>,
    ) -> Option<QueuedMessage> {
        if self.ready_in_memory() == 0 && self.has_outside_head() {
            self.refill(storage, out);
        }
        self.pop_front()
    }

    /// Removes every message outside the head (a purge), telling the store of each stored
    /// one. Returns how many there were.
    pub(crate) fn drain_outside_head(&mut self, storage: &mut dyn Storage) -> u64 {
        let Some(mut p) = self.paging.take() else {
            return 0;
        };
        let batch = self.window.map_or(1, |w| w.messages).max(1);
        let mut n = 0;
        let mut out = Vec::new();
        while p.paged > 0 {
            out.clear();
            let want = batch.min(p.paged as usize);
            storage.page_in(&self.vhost, &self.name, p.after_id, want, &mut out);
            if out.is_empty() {
                break;
            }
            for record in &out {
                p.after_id = record.id;
                p.paged -= 1;
                n += 1;
                storage.delete_message(&self.vhost, &self.name, record.id);
            }
        }
        n += p.paged;
        p.paged = 0;
        p.paged_bytes = 0;
        p.expiring.clear();
        while let Some(m) = p.pop_tail() {
            n += 1;
            storage.delete_message(&self.vhost, &self.name, m.store_id);
        }
        n
    }
}

/// A message read back from the store, as the head holds it; `expires_at` as it was paged
/// out. One with its own `expiration` and no expiry kept was left on disk by recovery: its TTL
/// started again at `recovered_at`, as for the messages a restart brings back into memory.
fn from_record(r: MessageRecord, expires_at: u64, recovered_at: u64) -> QueuedMessage {
    let message = Message::new(r.exchange, r.routing_key, r.properties, r.body);
    let expires_at = match message.expiration_ms() {
        Some(ttl) if expires_at == NEVER => recovered_at.saturating_add(ttl),
        _ => expires_at,
    };
    QueuedMessage {
        message,
        redelivered: r.deliveries > 0,
        deliveries: r.deliveries,
        store_id: r.id,
        expires_at,
        seq: 0,
    }
}

impl super::Broker {
    /// Once per round, after the store's flush: tail messages now durable leave memory, heads
    /// below half their window are filled again, and queues that got messages deliver.
    pub(super) fn page_round(&mut self) {
        if self.paging.is_empty() {
            return;
        }
        let synced = self.held.synced();
        let mut done = Vec::new();
        let ids: Vec<super::QueueId> = self.paging.iter().copied().collect();
        for id in ids {
            let Some(q) = self.queues.get_mut(&id) else {
                done.push(id);
                continue;
            };
            // Measured before `page_out`, which moves tail messages into a head with room
            // too: those need the queue's timer and its consumers as much as a refill's.
            let before = q.ready_in_memory();
            q.page_out(synced);
            q.refill(&mut *self.storage, &mut self.page_scratch);
            if !q.has_outside_head() {
                done.push(id);
            }
            let filled = q.ready_in_memory() > before;
            let timed = q.has_message_expiry;
            if filled && !q.consumers.is_empty() {
                self.dirty.push(id);
            }
            if filled && timed {
                self.watch_time(id);
            }
        }
        for id in done {
            self.paging.remove(&id);
        }
        self.settle_work();
    }
}

impl super::Broker {
    /// Memory runs short: every queue that is not durable leaves what its head holds
    /// beyond its window to the store.
    pub(super) fn spill_queues(&mut self) {
        let mut ids: Vec<super::QueueId> = self.queues.keys().copied().collect();
        ids.sort();
        for id in ids {
            let q = self.queues.get_mut(&id).expect("listed");
            if q.spill(&mut *self.storage, &mut self.next_store_id) {
                self.paging.insert(id);
            }
        }
    }
}
