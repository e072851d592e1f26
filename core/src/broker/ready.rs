//! A queue's ready messages: one FIFO, or one FIFO per priority level for a priority queue
//! (`x-max-priority`), highest level served first.

use alloc::collections::VecDeque;
use alloc::vec::Vec;

use super::queue::QueuedMessage;

/// Messages of capacity an empty lane keeps (see `Ready::shrink_if_large`).
const KEEP_CAPACITY: usize = 1024;

#[derive(Debug)]
pub struct Ready {
    /// Index = priority level; a plain queue has one lane.
    lanes: Vec<VecDeque<QueuedMessage>>,
    len: usize,
    bytes: u64,
}

impl Ready {
    /// `max_priority`: the queue's `x-max-priority`, if it is a priority queue.
    pub fn new(max_priority: Option<u8>) -> Self {
        let levels = max_priority.map_or(1, |p| usize::from(p) + 1);
        Ready {
            lanes: (0..levels).map(|_| VecDeque::new()).collect(),
            len: 0,
            bytes: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Body bytes of all ready messages.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Messages above the top level count as the top level, as in RabbitMQ.
    fn lane(&self, m: &QueuedMessage) -> usize {
        usize::from(m.message.priority()).min(self.lanes.len() - 1)
    }

    pub fn push_back(&mut self, m: QueuedMessage) {
        let lane = self.lane(&m);
        self.account_in(&m);
        self.lanes[lane].push_back(m);
    }

    /// Inserts a message at its place by `seq` (lanes stay sorted by `seq`). Requeued
    /// messages are usually older than all ready ones, so the search ends near the front.
    pub fn insert_by_seq(&mut self, m: QueuedMessage) {
        let lane = self.lane(&m);
        self.account_in(&m);
        let l = &mut self.lanes[lane];
        let at = l.partition_point(|x| x.seq < m.seq);
        l.insert(at, m);
    }

    /// The next message to deliver.
    pub fn front(&self) -> Option<&QueuedMessage> {
        self.lanes.iter().rev().find_map(|l| l.front())
    }

    pub fn pop_front(&mut self) -> Option<QueuedMessage> {
        let m = self.lanes.iter_mut().rev().find_map(|l| l.pop_front())?;
        self.len -= 1;
        self.bytes -= m.message.body().len() as u64;
        if self.len == 0 {
            self.shrink_if_large();
        }
        Some(m)
    }

    /// An empty queue gives back what a burst grew its lanes to (a million messages leave
    /// 48 MB of capacity behind otherwise); a small one keeps it, so a queue that fills and
    /// empties all day does not allocate each time.
    fn shrink_if_large(&mut self) {
        for lane in &mut self.lanes {
            if lane.capacity() > KEEP_CAPACITY {
                lane.shrink_to(KEEP_CAPACITY);
            }
        }
    }

    /// Removes and returns the messages after the first `keep_messages`, or after as many as
    /// fit in `keep_bytes` of bodies, whichever is fewer (at least one stays), in order. Only
    /// for a plain queue (one lane).
    pub fn split_off_after(
        &mut self,
        keep_messages: usize,
        keep_bytes: u64,
    ) -> VecDeque<QueuedMessage> {
        debug_assert_eq!(self.lanes.len(), 1, "a priority queue does not page");
        let lane = &mut self.lanes[0];
        let mut keep = 0;
        let mut bytes = 0;
        for m in lane.iter() {
            if keep >= keep_messages.max(1) || (keep > 0 && bytes >= keep_bytes) {
                break;
            }
            bytes += m.message.body().len() as u64;
            keep += 1;
        }
        let rest = lane.split_off(keep.min(lane.len()));
        for m in &rest {
            self.len -= 1;
            self.bytes -= m.message.body().len() as u64;
        }
        rest
    }

    /// Everything, in delivery order.
    pub fn iter(&self) -> impl Iterator<Item = &QueuedMessage> {
        self.lanes.iter().rev().flat_map(|l| l.iter())
    }

    /// Removes everything, in delivery order.
    pub fn drain(&mut self) -> Vec<QueuedMessage> {
        self.len = 0;
        self.bytes = 0;
        let all = self
            .lanes
            .iter_mut()
            .rev()
            .flat_map(|l| l.drain(..))
            .collect();
        self.shrink_if_large();
        all
    }

    fn account_in(&mut self, m: &QueuedMessage) {
        self.len += 1;
        self.bytes += m.message.body().len() as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Message;
    use bytes::Bytes;

    fn queued(i: u64) -> QueuedMessage {
        QueuedMessage {
            message: Message::new(
                "".into(),
                "q".into(),
                Bytes::from_static(&[0, 0]),
                Bytes::from_static(b"x"),
            ),
            redelivered: false,
            deliveries: 0,
            store_id: 0,
            expires_at: super::super::queue::NEVER,
            seq: i,
        }
    }

    #[test]
    fn an_emptied_queue_gives_back_what_a_burst_grew_it_to() {
        for max_priority in [None, Some(3)] {
            let mut r = Ready::new(max_priority);
            for i in 0..100_000 {
                r.push_back(queued(i));
            }
            while r.pop_front().is_some() {}
            assert!(r.lanes.iter().all(|l| l.capacity() <= KEEP_CAPACITY));
            for i in 0..100_000 {
                r.push_back(queued(i));
            }
            assert_eq!(r.drain().len(), 100_000);
            assert!(r.lanes.iter().all(|l| l.capacity() <= KEEP_CAPACITY));
        }
    }

    #[test]
    fn a_small_queue_keeps_its_capacity() {
        let mut r = Ready::new(None);
        for i in 0..500 {
            r.push_back(queued(i));
        }
        let before = r.lanes[0].capacity();
        while r.pop_front().is_some() {}
        assert_eq!(r.lanes[0].capacity(), before);
    }
}
