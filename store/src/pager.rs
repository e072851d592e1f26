//! Reading a queue's messages back from the log, for a queue that keeps only its head in
//! memory (the core's paging). The broker asks for the next `max` messages of a queue after
//! an id; the pager scans the segments from where that queue's previous read stopped, skips
//! segments that hold nothing live of the queue, and returns the live records of the queue in
//! log order (which is id order for a queue's paged messages: they are never written again
//! while paged, because the broker does not hold them).
//!
//! Reads go straight to the files, on the broker's thread, in chunks: the broker only pages
//! out what is synced, so everything asked for is in a file.

use std::collections::HashMap;
use std::io;

use warren_core::storage::codec;
use warren_core::storage::MessageRecord;

use crate::frame::{HEADER, MAX_FRAME};
use crate::ledger::{Ledger, QueueKey};
use crate::records;

/// Reads segment files by number, beside the writer that appends to them.
pub trait SegmentRead: Send {
    /// Reads into `buf` from `offset` of segment `n`; how many bytes (0 at its end).
    fn read_at(&mut self, n: u64, offset: u64, buf: &mut [u8]) -> io::Result<usize>;
}

/// Bytes read from a file at a time.
const CHUNK: usize = 256 << 10;

/// Where a queue's last read stopped.
#[derive(Clone, Copy, Debug)]
struct Cursor {
    segment: u64,
    offset: u64,
    /// The last id it returned: a read asking after another id starts afresh.
    after_id: u64,
}

pub struct Pager {
    reader: Box<dyn SegmentRead>,
    cursors: HashMap<QueueKey, Cursor>,
    buf: Vec<u8>,
    /// Messages recovered on disk that were delivered before the restart: they come back
    /// redelivered.
    delivered: HashMap<u64, u32>,
    /// Records that failed their checksum while read back (each logged).
    pub damaged: u64,
}

impl Pager {
    pub fn new(reader: Box<dyn SegmentRead>, delivered: HashMap<u64, u32>) -> Pager {
        Pager {
            reader,
            cursors: HashMap::new(),
            buf: Vec::new(),
            delivered,
            damaged: 0,
        }
    }

    pub fn forget_delivered(&mut self, id: u64) {
        if !self.delivered.is_empty() {
            self.delivered.remove(&id);
        }
    }

    pub fn forget(&mut self, vhost: &str, queue: &str) {
        self.cursors.remove(&(vhost.to_owned(), queue.to_owned()));
    }

    /// Appends to `out` up to `max` live messages of `queue` with ids above `after_id`.
    pub fn page_in(
        &mut self,
        ledger: &Ledger,
        vhost: &str,
        queue: &str,
        after_id: u64,
        max: usize,
        out: &mut Vec<MessageRecord>,
    ) {
        let key = (vhost.to_owned(), queue.to_owned());
        let start = self
            .cursors
            .get(&key)
            .filter(|c| c.after_id == after_id)
            .copied()
            .filter(|c| ledger.segments.iter().any(|s| s.number == c.segment))
            .unwrap_or_else(|| first_cursor(ledger, after_id));
        let mut cursor = start;
        let mut taken = 0;
        let numbers: Vec<u64> = ledger
            .segments
            .iter()
            .map(|s| s.number)
            .filter(|n| *n >= start.segment)
            .collect();
        for number in numbers {
            if number != cursor.segment {
                cursor.segment = number;
                cursor.offset = 0;
            }
            let holds = ledger
                .segments
                .iter()
                .find(|s| s.number == number)
                .is_some_and(|s| s.holds_queue(vhost, queue));
            if !holds {
                continue;
            }
            let full = self.scan(
                ledger,
                &mut cursor,
                vhost,
                queue,
                max - taken,
                out,
                &mut taken,
            );
            if full {
                break;
            }
        }
        cursor.after_id = out.last().map_or(after_id, |m| m.id);
        self.cursors.insert(key, cursor);
    }

    /// Scans one segment from the cursor; true once `max` more were taken.
    #[allow(clippy::too_many_arguments)]
    fn scan(
        &mut self,
        ledger: &Ledger,
        cursor: &mut Cursor,
        vhost: &str,
        queue: &str,
        max: usize,
        out: &mut Vec<MessageRecord>,
        taken: &mut usize,
    ) -> bool {
        let mut got = 0;
        loop {
            let Some(mut len) = self.fill(cursor.segment, cursor.offset) else {
                return false;
            };
            let mut at = 0;
            while at + HEADER <= len {
                let frame_len =
                    u32::from_le_bytes(self.buf[at..at + 4].try_into().expect("4 bytes")) as usize;
                if frame_len == 0 || frame_len > MAX_FRAME {
                    // Nothing readable follows here (the end of what was written so far).
                    return false;
                }
                if at + HEADER + frame_len > len {
                    if at == 0 {
                        // One frame larger than a chunk: read it whole.
                        if !self.fill_exact(cursor.segment, cursor.offset, HEADER + frame_len) {
                            return false;
                        }
                        len = HEADER + frame_len;
                        continue;
                    }
                    break;
                }
                let crc = u32::from_le_bytes(self.buf[at + 4..at + 8].try_into().expect("4"));
                let body = &self.buf[at + HEADER..at + HEADER + frame_len];
                let next = at + HEADER + frame_len;
                if crc32c::crc32c(body) != crc {
                    self.damaged += 1;
                    tracing::warn!(
                        segment = cursor.segment,
                        offset = cursor.offset + at as u64,
                        "a record read back for a queue fails its checksum; skipped"
                    );
                    at = next;
                    continue;
                }
                if let Some((payload, count)) = records::message_parts(body[0], &body[1..]) {
                    if let Ok(codec::MessageKey {
                        vhost: v,
                        queue: q,
                        id,
                        ..
                    }) = codec::peek_message(payload)
                    {
                        if v == vhost
                            && q == queue
                            && ledger.is_live_at(id, cursor.segment)
                            && out.last().is_none_or(|m| id > m.id)
                            && id > cursor.after_id
                        {
                            if let Ok((_, _, mut record)) = codec::decode_message(payload) {
                                // The frame's own count (a message written again, or a
                                // transient one), or the replay's (deliveries recorded apart).
                                let replayed = self.delivered.get(&id).copied().unwrap_or(0);
                                record.deliveries = count.max(replayed);
                                out.push(record);
                                got += 1;
                                *taken += 1;
                            }
                        }
                    }
                }
                at = next;
                if got == max {
                    cursor.offset += at as u64;
                    return true;
                }
            }
            if at == 0 {
                return false;
            }
            cursor.offset += at as u64;
        }
    }

    /// Reads a chunk of segment `n` at `offset` into the buffer; its length, None at the end.
    fn fill(&mut self, n: u64, offset: u64) -> Option<usize> {
        self.buf.resize(CHUNK.max(self.buf.len()), 0);
        let mut len = 0;
        while len < self.buf.len() {
            match self
                .reader
                .read_at(n, offset + len as u64, &mut self.buf[len..])
            {
                Ok(0) => break,
                Ok(k) => len += k,
                Err(e) => {
                    tracing::warn!(segment = n, error = %e, "reading a segment back failed");
                    break;
                }
            }
        }
        (len >= HEADER).then_some(len)
    }

    /// Reads exactly `want` bytes of segment `n` at `offset`; false if the file is shorter.
    fn fill_exact(&mut self, n: u64, offset: u64, want: usize) -> bool {
        self.buf.resize(want, 0);
        let mut len = 0;
        while len < want {
            match self
                .reader
                .read_at(n, offset + len as u64, &mut self.buf[len..want])
            {
                Ok(0) | Err(_) => return false,
                Ok(k) => len += k,
            }
        }
        true
    }
}

/// Where a read of ids above `after_id` starts: the segment the next id would have been first
/// written to, or the oldest.
fn first_cursor(ledger: &Ledger, after_id: u64) -> Cursor {
    let next = after_id.saturating_add(1);
    let segment = ledger
        .segments
        .iter()
        .rev()
        .find(|s| s.first_id().is_some_and(|first| first <= next))
        .or(ledger.segments.front())
        .map_or(0, |s| s.number);
    Cursor {
        segment,
        offset: 0,
        after_id,
    }
}
