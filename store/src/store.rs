//! [`DiskStorage`]: the core's `Storage` over the segment log. It runs on the broker's thread
//! and only encodes: each call appends one framed record to a buffer, and
//! [`Storage::flush`] (once per round) hands the round's bytes to the writer thread.

use warren_core::storage::{
    BindingRecord, ExchangeRecord, MemoryStorage, MessageRecord, PermissionRecord, QueueRecord,
    Recovered, Storage, UserRecord,
};

use crate::ledger::{Ledger, Segment};
use crate::pager::{Pager, SegmentRead};
use crate::records;
use crate::writer::{Batch, Op};

/// Where the store's batches go: the writer thread's channel, or the simulator's queue.
pub type Sink = Box<dyn FnMut(Batch) + Send>;

/// The broker's view of the disk store. See the crate docs.
pub struct DiskStorage {
    /// The durable exchanges, queues and bindings as they are now, written again into the log
    /// before a segment that held some of their records is deleted.
    definitions: MemoryStorage,
    /// What the log held at start, until the broker takes it.
    recovered: Option<Recovered>,
    ledger: Ledger,
    /// Records of this round, not yet handed to the writer.
    pending: Vec<u8>,
    ops: Vec<Op>,
    /// Records taken so far (the write sequence the broker waits on).
    writes: u64,
    /// A segment is closed once it reaches this size.
    segment_bytes: u64,
    next_segment: u64,
    sink: Sink,
    /// Reads paged messages back.
    pager: Pager,
}

impl DiskStorage {
    pub(crate) fn new(
        definitions: MemoryStorage,
        recovered: Recovered,
        ledger: Ledger,
        segment_bytes: u64,
        sink: Sink,
        reader: Box<dyn SegmentRead>,
        delivered: std::collections::HashMap<u64, u32>,
    ) -> DiskStorage {
        let next_segment = ledger.segments.back().map_or(1, |s| s.number + 1);
        DiskStorage {
            definitions,
            recovered: Some(recovered),
            ledger,
            pending: Vec::new(),
            ops: Vec::new(),
            writes: 0,
            segment_bytes,
            next_segment,
            sink,
            pager: Pager::new(reader, delivered),
        }
    }

    /// Segments on disk now (the one being written included).
    pub fn segment_count(&self) -> usize {
        self.ledger.segments.len()
    }

    /// Appends one record; `definition`: it saves an exchange, queue or binding.
    fn record(&mut self, definition: bool, encode: impl FnOnce(&mut Vec<u8>)) {
        let before = self.pending.len();
        encode(&mut self.pending);
        self.writes += 1;
        let segment = self.ledger.current();
        segment.size += (self.pending.len() - before) as u64;
        segment.has_definitions |= definition;
        if segment.size >= self.segment_bytes {
            self.rotate();
        }
    }

    fn rotate(&mut self) {
        if !self.pending.is_empty() {
            self.ops.push(Op::Append(std::mem::take(&mut self.pending)));
        }
        let n = self.next_segment;
        self.next_segment += 1;
        self.ops.push(Op::Rotate(n));
        self.ledger.segments.push_back(Segment::new(n));
    }

    /// Writes every definition again, so the segments about to go take none with them.
    fn write_definitions(&mut self) {
        let now = self.definitions.load();
        for (vhost, ex) in &now.exchanges {
            self.record(true, |o| records::exchange(o, vhost, ex));
        }
        for q in &now.queues {
            self.record(true, |o| records::queue(o, q));
        }
        for (vhost, b) in &now.bindings {
            self.record(true, |o| records::binding(o, vhost, b));
        }
        for v in &now.vhosts {
            self.record(true, |o| records::vhost(o, v));
        }
        for u in &now.users {
            self.record(true, |o| records::user(o, u));
        }
        for p in &now.permissions {
            self.record(true, |o| records::permission(o, p));
        }
    }
}

impl Storage for DiskStorage {
    fn save_exchange(&mut self, vhost: &str, record: &ExchangeRecord) {
        self.definitions.save_exchange(vhost, record);
        self.record(true, |o| records::exchange(o, vhost, record));
    }
    fn delete_exchange(&mut self, vhost: &str, name: &str) {
        self.definitions.delete_exchange(vhost, name);
        self.record(false, |o| records::exchange_deleted(o, vhost, name));
    }
    fn save_queue(&mut self, record: &QueueRecord) {
        self.definitions.save_queue(record);
        self.record(true, |o| records::queue(o, record));
    }
    fn delete_queue(&mut self, vhost: &str, name: &str) {
        self.definitions.delete_queue(vhost, name);
        self.ledger.on_queue_deleted(vhost, name);
        self.pager.forget(vhost, name);
        self.record(false, |o| records::queue_deleted(o, vhost, name));
    }
    fn save_binding(&mut self, vhost: &str, record: &BindingRecord) {
        self.definitions.save_binding(vhost, record);
        self.record(true, |o| records::binding(o, vhost, record));
    }
    fn delete_binding(&mut self, vhost: &str, record: &BindingRecord) {
        self.definitions.delete_binding(vhost, record);
        self.record(false, |o| records::binding_deleted(o, vhost, record));
    }
    fn save_vhost(&mut self, name: &str) {
        self.definitions.save_vhost(name);
        self.record(true, |o| records::vhost(o, name));
    }
    fn delete_vhost(&mut self, name: &str) {
        self.definitions.delete_vhost(name);
        self.record(false, |o| records::vhost_deleted(o, name));
    }
    fn save_user(&mut self, record: &UserRecord) {
        self.definitions.save_user(record);
        self.record(true, |o| records::user(o, record));
    }
    fn delete_user(&mut self, name: &str) {
        self.definitions.delete_user(name);
        self.record(false, |o| records::user_deleted(o, name));
    }
    fn save_permission(&mut self, record: &PermissionRecord) {
        self.definitions.save_permission(record);
        self.record(true, |o| records::permission(o, record));
    }
    fn delete_permission(&mut self, user: &str, vhost: &str) {
        self.definitions.delete_permission(user, vhost);
        self.record(false, |o| records::permission_deleted(o, user, vhost));
    }
    fn save_message(&mut self, vhost: &str, queue: &str, record: &MessageRecord) {
        self.ledger.on_message(vhost, queue, record.id);
        // A message written again after deliveries carries its count in the same frame.
        self.record(false, |o| records::message(o, vhost, queue, record));
    }
    fn delete_message(&mut self, vhost: &str, queue: &str, id: u64) {
        self.ledger.on_ack(vhost, queue, id);
        self.pager.forget_delivered(id);
        self.record(false, |o| records::acked(o, vhost, queue, id));
    }
    fn mark_delivered(&mut self, vhost: &str, queue: &str, id: u64) {
        self.record(false, |o| records::delivered(o, vhost, queue, id));
    }
    fn load(&mut self) -> Recovered {
        self.recovered.take().unwrap_or_default()
    }
    fn write_seq(&self) -> u64 {
        self.writes
    }
    fn rewrite_request(&mut self) -> Vec<u64> {
        self.ledger.rewrite_request()
    }
    fn can_page(&self) -> bool {
        true
    }
    fn page_in(
        &mut self,
        vhost: &str,
        queue: &str,
        after_id: u64,
        max: usize,
        out: &mut Vec<MessageRecord>,
    ) {
        self.pager
            .page_in(&self.ledger, vhost, queue, after_id, max, out);
    }
    fn flush(&mut self) {
        let gone = self.ledger.take_reclaimable();
        if gone.iter().any(|s| s.has_definitions) {
            self.write_definitions();
        }
        if !self.pending.is_empty() {
            self.ops.push(Op::Append(std::mem::take(&mut self.pending)));
        }
        // After the definitions written above: a segment goes only once they are synced.
        self.ops.extend(gone.iter().map(|s| Op::Remove(s.number)));
        if self.ops.is_empty() {
            return;
        }
        let batch = Batch {
            ops: std::mem::take(&mut self.ops),
            seq: self.writes,
        };
        (self.sink)(batch);
    }
}

impl Drop for DiskStorage {
    fn drop(&mut self) {
        // What the last round wrote goes to disk before the writer stops.
        self.flush();
    }
}
