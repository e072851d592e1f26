//! What each segment still holds that matters: the messages in it not yet acked, per queue.
//! A segment is deleted once it holds none and every older one is gone (the log is replayed
//! in order, so an ack in a newer segment is only safe to lose once its message's segment is).
//!
//! Message ids only grow in log order (a restarted store hands the broker a first id above
//! every id it still mentions), so a message's segment is the last one whose first message id
//! is at or below it: no per-message index.

use std::collections::VecDeque;
use std::hash::{Hash, Hasher};

use hashbrown::Equivalent;

/// (vhost, queue)
pub type QueueKey = (String, String);

type HashMap<K, V> = hashbrown::HashMap<K, V, foldhash::fast::FixedState>;

/// A (vhost, queue) key borrowed, to look one up per ack without allocating. Hashes as the
/// owned tuple does (a tuple hashes its fields in order; `String` hashes as `str`).
#[derive(Clone, Copy)]
struct KeyRef<'a>(&'a str, &'a str);

impl Hash for KeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self.0, self.1).hash(state)
    }
}

impl Equivalent<QueueKey> for KeyRef<'_> {
    fn equivalent(&self, key: &QueueKey) -> bool {
        self.0 == key.0 && self.1 == key.1
    }
}

#[derive(Debug)]
pub struct Segment {
    pub number: u64,
    /// Bytes written to it.
    pub size: u64,
    /// The id of its first message, once it has one.
    first_id: Option<u64>,
    /// Messages in it not yet acked, in all.
    live: u64,
    /// The same, per queue (a queue's deletion takes its messages out of every segment).
    per_queue: HashMap<QueueKey, u64>,
    /// It holds definitions (exchanges, queues, bindings) that must be written again before
    /// it goes.
    pub has_definitions: bool,
}

impl Segment {
    pub fn new(number: u64) -> Segment {
        Segment {
            number,
            size: 0,
            first_id: None,
            live: 0,
            per_queue: HashMap::default(),
            has_definitions: false,
        }
    }

    #[cfg(test)]
    pub fn live(&self) -> u64 {
        self.live
    }
}

/// Every segment on disk, oldest first; the last is the one being written.
#[derive(Debug, Default)]
pub struct Ledger {
    pub segments: VecDeque<Segment>,
}

impl Ledger {
    pub fn current(&mut self) -> &mut Segment {
        self.segments
            .back_mut()
            .expect("the ledger always has a segment")
    }

    pub fn on_message(&mut self, vhost: &str, queue: &str, id: u64) {
        let seg = self.current();
        seg.first_id.get_or_insert(id);
        seg.live += 1;
        match seg.per_queue.get_mut(&KeyRef(vhost, queue)) {
            Some(n) => *n += 1,
            None => {
                seg.per_queue
                    .insert((vhost.to_owned(), queue.to_owned()), 1);
            }
        }
    }

    pub fn on_ack(&mut self, vhost: &str, queue: &str, id: u64) {
        let Some(seg) = self
            .segments
            .iter_mut()
            .rev()
            .find(|s| s.first_id.is_some_and(|first| first <= id))
        else {
            return;
        };
        if let Some(n) = seg.per_queue.get_mut(&KeyRef(vhost, queue)) {
            if *n > 0 {
                *n -= 1;
                seg.live -= 1;
            }
        }
    }

    pub fn on_queue_deleted(&mut self, vhost: &str, queue: &str) {
        for seg in &mut self.segments {
            if let Some(n) = seg.per_queue.remove(&KeyRef(vhost, queue)) {
                seg.live -= n;
            }
        }
    }

    /// The oldest segments that hold nothing live any more (never the one being written).
    pub fn take_reclaimable(&mut self) -> Vec<Segment> {
        let mut gone = Vec::new();
        while self.segments.len() > 1 && self.segments[0].live == 0 {
            gone.push(self.segments.pop_front().expect("checked"));
        }
        gone
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ledger(n: u64) -> Ledger {
        let mut l = Ledger::default();
        for number in 1..=n {
            l.segments.push_back(Segment::new(number));
        }
        l
    }

    #[test]
    fn acks_find_their_segment_by_id_and_free_it_from_the_head_only() {
        let mut l = ledger(1);
        l.on_message("/", "a", 1);
        l.on_message("/", "a", 2);
        l.segments.push_back(Segment::new(2));
        l.on_message("/", "a", 3);
        l.segments.push_back(Segment::new(3));
        l.on_ack("/", "a", 3);
        assert!(
            l.take_reclaimable().is_empty(),
            "segment 1 still holds 1 and 2"
        );
        l.on_ack("/", "a", 1);
        l.on_ack("/", "a", 2);
        let gone: Vec<u64> = l.take_reclaimable().iter().map(|s| s.number).collect();
        assert_eq!(gone, [1, 2]);
        assert_eq!(l.segments.len(), 1, "the segment being written stays");
    }

    #[test]
    fn deleting_a_queue_frees_its_messages_everywhere() {
        let mut l = ledger(1);
        l.on_message("/", "a", 1);
        l.on_message("/", "b", 2);
        l.segments.push_back(Segment::new(2));
        l.on_message("/", "a", 3);
        l.segments.push_back(Segment::new(3));
        l.on_queue_deleted("/", "a");
        assert!(
            l.take_reclaimable().is_empty(),
            "b's message holds segment 1"
        );
        // A stale ack for a deleted queue's message changes nothing.
        l.on_ack("/", "a", 1);
        assert_eq!(l.segments[0].live(), 1);
        l.on_ack("/", "b", 2);
        assert_eq!(l.take_reclaimable().len(), 2);
    }
}
