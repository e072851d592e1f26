//! Answers that wait for the disk: a publisher confirm for a stored message, the `tx.commit-ok`
//! of a transaction that stored or settled messages, and the answer to a change of durable
//! definitions go out only once the store reports the writes they depend on durable.
//!
//! A store whose writes reach durable media after the call returns (the disk store) counts
//! them ([`Storage::write_seq`]); the host flushes them once per round
//! ([`Broker::flush_storage`], in `flush.rs`), syncs them in groups, and reports how far they are durable
//! ([`Broker::storage_synced`]). An answer that needs a write still in flight is held, tagged
//! with the write sequence it waits for; so is everything the broker emits after it on the same
//! channel, so a channel's frames keep their order (a `basic.return` before its confirm,
//! `channel.close-ok` after the confirms before it). Stores durable at once (memory, the
//! browser's journal) report sequence 0: nothing is ever held for them.
//!
//! [`Storage::write_seq`]: crate::storage::Storage::write_seq

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use super::{Broker, Map};
use crate::codec::{BasicAck, Method};
use crate::vocab::{ConnId, Event};

/// Events waiting for the store, in the order the broker emitted them.
#[derive(Default)]
pub(crate) struct Held {
    /// (write sequence it waits for, connection, event); the sequences never decrease.
    events: VecDeque<(u64, ConnId, Event)>,
    /// Held events per (connection, channel): a channel listed here is gated, and whatever
    /// the broker emits on it waits behind them.
    gates: Map<(ConnId, u16), u32>,
    /// How far the store is durable.
    synced: u64,
}

impl Held {
    /// How far the store is durable (its write sequence).
    pub(crate) fn synced(&self) -> u64 {
        self.synced
    }

    /// True if an event on this channel must wait behind held ones.
    #[inline]
    pub(crate) fn gated(&self, conn: ConnId, channel: u16) -> bool {
        !self.gates.is_empty() && self.gates.contains_key(&(conn, channel))
    }

    /// The write sequence an event on a gated channel waits for: its predecessors'.
    fn tail_seq(&self) -> u64 {
        self.events.back().map_or(0, |(seq, _, _)| *seq)
    }

    pub(crate) fn push(&mut self, seq: u64, conn: ConnId, channel: u16, event: Event) {
        let seq = seq.max(self.tail_seq());
        self.events.push_back((seq, conn, event));
        *self.gates.entry((conn, channel)).or_default() += 1;
    }

    /// The connection is gone: what it was waiting for will never be sent.
    pub(crate) fn forget(&mut self, conn: ConnId) {
        if self.gates.keys().any(|(c, _)| *c == conn) {
            self.events.retain(|(_, c, _)| *c != conn);
            self.gates.retain(|(c, _), _| *c != conn);
        }
    }
}

/// The channel an event belongs to; `None` for connection-level events.
pub(crate) fn event_channel(event: &Event) -> Option<u16> {
    event.channel()
}

/// Where the broker stood before a command whose answers may have to wait for its writes.
pub(crate) struct DurableMark {
    writes: u64,
    events: usize,
    held: usize,
}

impl Broker {
    pub(crate) fn durable_mark(&self) -> DurableMark {
        DurableMark {
            writes: self.storage.write_seq(),
            events: self.events.len(),
            held: self.held.events.len(),
        }
    }

    /// If the store took writes since `mark`, whatever the broker emitted since on `conn`'s
    /// `channel` (the answer) waits for them: taken back from the ready events, or, already
    /// waiting behind earlier answers, made to wait for these writes too.
    pub(crate) fn hold_answers_since(&mut self, mark: DurableMark, conn: ConnId, channel: u16) {
        let seq = self.writes_since(mark.writes);
        if seq == 0 {
            return;
        }
        let on_channel = |c: &ConnId, e: &Event| *c == conn && event_channel(e) == Some(channel);
        for (waits, c, event) in self.held.events.range_mut(mark.held..) {
            if on_channel(c, event) {
                *waits = (*waits).max(seq);
            }
        }
        let mut i = mark.events;
        while i < self.events.len() {
            let (c, event) = &self.events[i];
            if on_channel(c, event) {
                let (c, event) = self.events.remove(i).expect("in range");
                self.held.push(seq, c, channel, event);
            } else {
                i += 1;
            }
        }
    }

    /// The store is durable up to write `seq` ([`Storage::write_seq`]): answers waiting for it
    /// go out (take them with [`Broker::poll_event`]).
    ///
    /// [`Storage::write_seq`]: crate::storage::Storage::write_seq
    pub fn storage_synced(&mut self, seq: u64) {
        let held = &mut self.held;
        held.synced = held.synced.max(seq);
        while held
            .events
            .front()
            .is_some_and(|(s, _, _)| *s <= held.synced)
        {
            let (_, conn, event) = held.events.pop_front().expect("checked");
            if let Some(channel) = event_channel(&event) {
                if let Some(n) = held.gates.get_mut(&(conn, channel)) {
                    *n -= 1;
                    if *n == 0 {
                        held.gates.remove(&(conn, channel));
                    }
                }
            }
            self.events.push_back((conn, event));
        }
    }

    /// True when answers wait for the store: the host should sync soon.
    pub fn awaits_storage(&self) -> bool {
        !self.held.events.is_empty()
    }

    /// The write sequence an answer given now depends on, given the sequence before the work
    /// it answers: 0 if that work wrote nothing still in flight.
    pub(crate) fn writes_since(&self, before: u64) -> u64 {
        let now = self.storage.write_seq();
        if now > before && now > self.held.synced {
            now
        } else {
            0
        }
    }

    /// Emits `event` on `channel` once the store is durable up to `seq` (at once if it is and
    /// nothing on the channel waits).
    pub(crate) fn emit_after(&mut self, seq: u64, conn: ConnId, channel: u16, event: Event) {
        self.note_decision(conn, &event);
        if seq > self.held.synced || self.held.gated(conn, channel) {
            self.held.push(seq, conn, channel, event);
        } else {
            self.events.push_back((conn, event));
        }
    }

    /// Folds publish confirm `seq`, which waits for write `wait_for`, into the `basic.ack` at
    /// the back of what waits on this channel when it directly follows it (the ack then waits
    /// for the later of the two writes); false if it cannot.
    pub(crate) fn fold_held_confirm(
        &mut self,
        wait_for: u64,
        conn: ConnId,
        channel: u16,
        seq: u64,
    ) -> bool {
        let Some((waits, c, event)) = self.held.events.back_mut() else {
            return false;
        };
        if *c != conn {
            return false;
        }
        if let Event::Method {
            channel: ch,
            method: Method::BasicAck(ack),
        } = event
        {
            if *ch == channel && ack.delivery_tag + 1 == seq {
                ack.delivery_tag = seq;
                ack.multiple = true;
                *waits = (*waits).max(wait_for);
                self.note_folded_confirm(conn, channel, seq);
                return true;
            }
        }
        false
    }

    /// Has the broker keep a copy of every event as it decides it, for
    /// [`Broker::take_decisions`] (a host checking the broker against a model: the simulator).
    pub fn record_decisions(&mut self, on: bool) {
        self.decisions = on.then(Vec::new);
    }

    /// The events decided since the last call, in the order the broker decided them, when
    /// [`Broker::record_decisions`] is on. Answers that wait for the store are here at once,
    /// though they reach [`Broker::poll_event`] only once the store is synced; a confirm folded
    /// into an earlier `basic.ack` is here as an ack of its own publish with `multiple` set.
    pub fn take_decisions(&mut self) -> Vec<(ConnId, Event)> {
        self.decisions
            .as_mut()
            .map(core::mem::take)
            .unwrap_or_default()
    }

    #[inline]
    pub(crate) fn note_decision(&mut self, conn: ConnId, event: &Event) {
        if let Some(d) = &mut self.decisions {
            d.push((conn, event.clone()));
        }
    }

    /// Publish `seq`'s confirm was folded into the ack before it.
    pub(crate) fn note_folded_confirm(&mut self, conn: ConnId, channel: u16, seq: u64) {
        let ack = BasicAck {
            delivery_tag: seq,
            multiple: true,
        };
        self.note_decision(
            conn,
            &Event::Method {
                channel,
                method: ack.into(),
            },
        );
    }
}
