//! What the broker does for its store once per round: writes again the stored messages the
//! store asks for (so an old segment they alone keep can go), then hands it the round's
//! writes.

use alloc::vec::Vec;

use super::Broker;
use crate::vocab::ConnId;

impl Broker {
    /// Hands the writes the store took since the last call to the I/O behind it. Hosts call it
    /// once per round, after the round's commands and timers, so one flush carries every
    /// publisher's writes.
    pub fn flush_storage(&mut self) {
        let wanted = self.storage.rewrite_request();
        if !wanted.is_empty() {
            self.rewrite_stored(&wanted);
        }
        self.storage.flush();
        self.page_round();
        self.release_flow();
    }

    /// Saves again every stored message the broker holds whose id is in `wanted` (sorted):
    /// ready in a queue, or delivered and unacked (then marked delivered).
    fn rewrite_stored(&mut self, wanted: &[u64]) {
        let Broker {
            storage,
            queues,
            conns,
            ..
        } = self;
        let wants = |id: u64| id != 0 && wanted.binary_search(&id).is_ok();
        let mut ids: Vec<super::QueueId> = queues.keys().copied().collect();
        ids.sort();
        for id in &ids {
            let q = &queues[id];
            for m in q.ready_messages().filter(|m| wants(m.store_id)) {
                storage.save_message(&q.vhost, &q.name, &q.record_of(m));
            }
        }
        let mut conn_ids: Vec<ConnId> = conns.keys().copied().collect();
        conn_ids.sort();
        for c in conn_ids {
            let mut channels: Vec<_> = conns[&c].channels.iter().collect();
            channels.sort_by_key(|(n, _)| **n);
            for (_, ch) in channels {
                for u in ch.held_deliveries().filter(|u| wants(u.message.store_id)) {
                    if let Some(q) = queues.get(&u.queue) {
                        storage.save_message(&q.vhost, &q.name, &q.record_of(&u.message));
                    }
                }
            }
        }
    }
}
