//! What each segment still holds that matters: the messages in it not yet acked, per queue.
//! A segment is deleted once it holds none and every older one is gone (the log is replayed
//! in order, so an ack in a newer segment is only safe to lose once its message's segment is).
//!
//! Message ids only grow in log order (a restarted store hands the broker a first id above
//! every id it still mentions), so the ids first written to a segment are a range, and a bit
//! per id says which are still live: no per-message index. A message written again (to free
//! an old segment that one unacked message would otherwise keep, with everything after it)
//! moves to the segment being written; the few moved ids are kept by number.

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
    /// Bit `i`: message `first_id + i`, first written here, is live here.
    live_bits: Vec<u64>,
    /// Messages first written here, live or not.
    written: u64,
    /// Messages written again here that were first written in an older segment, live.
    moved_in: hashbrown::HashSet<u64, foldhash::fast::FixedState>,
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
            live_bits: Vec::new(),
            written: 0,
            moved_in: Default::default(),
            live: 0,
            per_queue: HashMap::default(),
            has_definitions: false,
        }
    }

    #[cfg(test)]
    pub fn live(&self) -> u64 {
        self.live
    }

    /// Bit index of `id` if it was first written here.
    fn bit(&self, id: u64) -> Option<usize> {
        let first = self.first_id?;
        let i = id.checked_sub(first)? as usize;
        (i < self.live_bits.len() * 64).then_some(i)
    }

    fn is_live(&self, id: u64) -> bool {
        self.moved_in.contains(&id)
            || self
                .bit(id)
                .is_some_and(|i| self.live_bits[i / 64] & (1 << (i % 64)) != 0)
    }

    /// Takes `id` of `queue` out of this segment; false if it was not live here.
    fn take(&mut self, vhost: &str, queue: &str, id: u64) -> bool {
        let was = if self.moved_in.remove(&id) {
            true
        } else if let Some(i) = self.bit(id) {
            let word = &mut self.live_bits[i / 64];
            let was = *word & (1 << (i % 64)) != 0;
            *word &= !(1 << (i % 64));
            was
        } else {
            false
        };
        if was {
            // A deleted queue's counts are gone already: its messages' bits are stale.
            if let Some(n) = self.per_queue.get_mut(&KeyRef(vhost, queue)) {
                if *n > 0 {
                    *n -= 1;
                    self.live -= 1;
                }
            }
        }
        was
    }

    /// The id of the first message written here, if any was.
    pub fn first_id(&self) -> Option<u64> {
        self.first_id
    }

    /// Whether `queue` has messages live here.
    pub fn holds_queue(&self, vhost: &str, queue: &str) -> bool {
        self.per_queue
            .get(&KeyRef(vhost, queue))
            .is_some_and(|n| *n > 0)
    }

    fn count(&mut self, vhost: &str, queue: &str) {
        self.live += 1;
        match self.per_queue.get_mut(&KeyRef(vhost, queue)) {
            Some(n) => *n += 1,
            None => {
                self.per_queue
                    .insert((vhost.to_owned(), queue.to_owned()), 1);
            }
        }
    }

    /// The ids still live here (with a deleted queue's, which the broker no longer has).
    fn live_ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = self.moved_in.iter().copied().collect();
        if let Some(first) = self.first_id {
            for (w, word) in self.live_bits.iter().enumerate() {
                let mut bits = *word;
                while bits != 0 {
                    let b = bits.trailing_zeros() as u64;
                    ids.push(first + w as u64 * 64 + b);
                    bits &= bits - 1;
                }
            }
        }
        ids.sort_unstable();
        ids
    }
}

/// Every segment on disk, oldest first; the last is the one being written.
#[derive(Debug, Default)]
pub struct Ledger {
    pub segments: VecDeque<Segment>,
    /// Where each message written again lives now (by segment number).
    moved: HashMap<u64, u64>,
    /// The head segment a rewrite was last asked for (asked once).
    rewrite_asked: Option<u64>,
    /// The highest message id seen: a lower one is a message written again.
    max_id: Option<u64>,
}

/// A head segment is rewritten when the log holds at least this many segments and at most a
/// quarter of the head's messages are still live.
const REWRITE_MIN_SEGMENTS: usize = 4;

impl Ledger {
    pub fn current(&mut self) -> &mut Segment {
        self.segments
            .back_mut()
            .expect("the ledger always has a segment")
    }

    /// The segment holding `id` live, if any.
    fn holder(&mut self, id: u64) -> Option<&mut Segment> {
        let number = self.moved.get(&id).copied();
        let seg = match number {
            Some(n) => self.segments.iter_mut().find(|s| s.number == n)?,
            None => self
                .segments
                .iter_mut()
                .rev()
                .find(|s| s.first_id.is_some_and(|first| first <= id))?,
        };
        seg.is_live(id).then_some(seg)
    }

    /// Whether `id` is above every id written so far (a lower one is a message written again).
    pub fn is_fresh(&self, id: u64) -> bool {
        self.max_id.is_none_or(|max| id > max)
    }

    /// Whether message `id` lives in a copy written again, out of log order.
    pub fn is_moved(&self, id: u64) -> bool {
        self.moved.contains_key(&id)
    }

    /// Whether the record of message `id` in segment `number` is the message's live copy (not
    /// acked, and not written again elsewhere since).
    pub fn is_live_at(&self, id: u64, number: u64) -> bool {
        let holder = self.moved.get(&id).copied().or_else(|| {
            self.segments
                .iter()
                .rev()
                .find(|s| s.first_id.is_some_and(|first| first <= id))
                .map(|s| s.number)
        });
        holder == Some(number)
            && self
                .segments
                .iter()
                .find(|s| s.number == number)
                .is_some_and(|s| s.is_live(id))
    }

    /// Message `id` of `queue` was written to the segment being written: a new message, or a
    /// live one written again (it moves here from its older segment).
    pub fn on_message(&mut self, vhost: &str, queue: &str, id: u64) {
        let fresh = self.is_fresh(id);
        if fresh {
            self.max_id = Some(id);
            let seg = self.current();
            let first = *seg.first_id.get_or_insert(id);
            let i = (id - first) as usize;
            if i / 64 >= seg.live_bits.len() {
                seg.live_bits.resize(i / 64 + 1, 0);
            }
            seg.live_bits[i / 64] |= 1 << (i % 64);
            seg.written += 1;
        } else {
            if let Some(old) = self.holder(id) {
                old.take(vhost, queue, id);
            }
            let number = self.current().number;
            self.current().moved_in.insert(id);
            self.moved.insert(id, number);
        }
        self.current().count(vhost, queue);
    }

    pub fn on_ack(&mut self, vhost: &str, queue: &str, id: u64) {
        if let Some(seg) = self.holder(id) {
            seg.take(vhost, queue, id);
        }
        self.moved.remove(&id);
    }

    /// Every queue with messages live somewhere.
    pub fn queues(&self) -> Vec<QueueKey> {
        let mut all: Vec<QueueKey> = self
            .segments
            .iter()
            .flat_map(|s| {
                s.per_queue
                    .iter()
                    .filter(|(_, n)| **n > 0)
                    .map(|(k, _)| k.clone())
            })
            .collect();
        all.sort_unstable();
        all.dedup();
        all
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
            let seg = self.segments.pop_front().expect("checked");
            for id in &seg.moved_in {
                self.moved.remove(id);
            }
            gone.push(seg);
        }
        gone
    }

    /// The messages to write again so that the oldest segment can go, when a few live ones
    /// are all that keep it and the log has grown behind it (asked once per segment).
    pub fn rewrite_request(&mut self) -> Vec<u64> {
        let Some(head) = self.segments.front() else {
            return Vec::new();
        };
        let sparse = head.live > 0 && head.live * 4 <= head.written.max(1);
        if self.segments.len() < REWRITE_MIN_SEGMENTS
            || !sparse
            || self.rewrite_asked == Some(head.number)
        {
            return Vec::new();
        }
        self.rewrite_asked = Some(head.number);
        head.live_ids()
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

    #[test]
    fn a_message_written_again_moves_and_its_ack_follows_it() {
        let mut l = ledger(1);
        l.on_message("/", "a", 1);
        l.on_message("/", "a", 2);
        l.segments.push_back(Segment::new(2));
        l.on_message("/", "a", 3);
        l.on_ack("/", "a", 2);
        // Message 1 written again into segment 2: segment 1 holds nothing live now.
        l.on_message("/", "a", 1);
        assert_eq!(l.segments[0].live(), 0);
        assert_eq!(l.segments[1].live(), 2);
        l.segments.push_back(Segment::new(3));
        let gone: Vec<u64> = l.take_reclaimable().iter().map(|s| s.number).collect();
        assert_eq!(gone, [1]);
        l.on_ack("/", "a", 1);
        l.on_ack("/", "a", 3);
        assert_eq!(l.segments[0].live(), 0);
        assert_eq!(l.take_reclaimable().len(), 1);
    }

    #[test]
    fn a_rewrite_is_asked_for_a_sparse_head_behind_a_long_log() {
        let mut l = ledger(1);
        for id in 1..=8 {
            l.on_message("/", "a", id);
        }
        for id in 2..=8 {
            l.on_ack("/", "a", id);
        }
        for n in 2..=3 {
            l.segments.push_back(Segment::new(n));
        }
        assert!(
            l.rewrite_request().is_empty(),
            "three segments are not a long log"
        );
        l.segments.push_back(Segment::new(4));
        assert_eq!(l.rewrite_request(), [1]);
        assert!(l.rewrite_request().is_empty(), "once");
    }
}
