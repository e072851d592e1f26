//! The second pass of recovery: each queue's live messages, in order, of which only a queue's
//! head is read into memory when the queue pages. The rest is counted (messages, body bytes)
//! and left on disk for the pager, so a queue of 10 M messages recovers in the memory of its
//! window.
//!
//! A queue's order is its ids' order. Records first written are in id order in the log; a
//! message written again (a rewrite freeing an old segment) sits later in the log than its id
//! says. The pager reads in log order, so every rewritten message, and every message with a
//! lower id than one, is recovered into the head: what stays on disk is in log order.

use std::collections::HashMap;

use warren_core::broker::{pages, Window};
use warren_core::codec::ShortStr;
use warren_core::storage::{codec, MessageRecord, PagedQueue};

use crate::disk::Disk;
use crate::frame::{self, Read};
use crate::ledger::QueueKey;
use crate::open::{OpenError, Replay};
use crate::records;

/// What the second pass found.
#[derive(Default)]
pub(crate) struct Queues {
    /// (vhost, queue, head in order)
    pub heads: Vec<(ShortStr, ShortStr, Vec<MessageRecord>)>,
    pub paged: Vec<PagedQueue>,
}

impl Queues {
    /// Messages recovered, in memory or not.
    pub fn messages(&self) -> usize {
        self.heads.iter().map(|(_, _, m)| m.len()).sum::<usize>()
            + self.paged.iter().map(|p| p.count as usize).sum::<usize>()
    }
}

/// One queue as the pass builds it.
struct Build {
    pages: bool,
    /// Ids up to this go to the head whatever the window (see the module docs).
    moved_max: u64,
    /// Records that died with an older queue of the same name.
    deleted_at: u64,
    head: Vec<MessageRecord>,
    /// Head messages in log order (not rewritten), and their bytes: the window's measure.
    in_order: usize,
    bytes: u64,
    paged: u64,
    paged_bytes: u64,
    first_paged: Option<u64>,
}

/// Reads every segment again, keeping each queue's live messages (see the module docs).
pub(crate) fn read<D: Disk>(
    disk: &mut D,
    numbers: &[u64],
    replay: &Replay,
    window: Window,
) -> Result<Queues, OpenError> {
    let mut builds: HashMap<QueueKey, Build> = HashMap::new();
    for q in replay.definitions.clone().into_recovered().queues {
        let key = (q.vhost.to_string(), q.name.to_string());
        let build = Build {
            pages: pages(&q.arguments),
            moved_max: replay.moved_max.get(&key).copied().unwrap_or(0),
            deleted_at: replay.deleted_at.get(&key).copied().unwrap_or(0),
            head: Vec::new(),
            in_order: 0,
            bytes: 0,
            paged: 0,
            paged_bytes: 0,
            first_paged: None,
        };
        builds.insert(key, build);
    }
    if builds.is_empty() {
        return Ok(Queues::default());
    }
    for &n in numbers {
        let data = disk.read(n).map_err(|e| OpenError::Io(disk.name(n), e))?;
        let mut at = 0;
        loop {
            let (kind, payload, next) = match frame::read(&data, at) {
                Read::End => break,
                Read::Frame {
                    kind,
                    payload,
                    next,
                } => (kind, payload, next),
                // The first pass refused these or was told to skip them.
                Read::Torn | Read::Damaged => match frame::next_good(&data, at + 1) {
                    Some(good) => {
                        at = good;
                        continue;
                    }
                    None => break,
                },
            };
            at = next;
            if kind == records::TRANSIENT {
                continue;
            }
            let Some((payload, _)) = records::message_parts(kind, payload) else {
                continue;
            };
            let Ok(key) = codec::peek_message(payload) else {
                continue;
            };
            if !replay.ledger.is_live_at(key.id, n) {
                continue;
            }
            let Some(b) = builds.get_mut(&(key.vhost.to_owned(), key.queue.to_owned())) else {
                continue;
            };
            if key.id <= b.deleted_at {
                continue;
            }
            let moved = replay.ledger.is_moved(key.id);
            let room = b.in_order < window.messages && b.bytes < window.bytes;
            let to_head = !b.pages || moved || key.id <= b.moved_max || (room && b.paged == 0);
            if !to_head {
                b.paged += 1;
                b.paged_bytes += key.body_len as u64;
                b.first_paged.get_or_insert(key.id);
                continue;
            }
            let Ok((_, _, mut record)) = codec::decode_message(payload) else {
                continue;
            };
            record.deliveries = replay.delivered.get(&key.id).copied().unwrap_or(0);
            if !moved {
                b.in_order += 1;
                b.bytes += key.body_len as u64;
            }
            b.head.push(record);
        }
    }
    let mut out = Queues::default();
    for ((vhost, queue), mut b) in builds {
        b.head.sort_unstable_by_key(|m| m.id);
        let (vhost, queue) = (
            ShortStr::from(vhost.as_str()),
            ShortStr::from(queue.as_str()),
        );
        if let Some(first) = b.first_paged {
            out.paged.push(PagedQueue {
                vhost: vhost.clone(),
                queue: queue.clone(),
                count: b.paged,
                bytes: b.paged_bytes,
                after_id: b.head.last().map_or(first - 1, |m| m.id),
            });
        }
        if !b.head.is_empty() {
            out.heads.push((vhost, queue, b.head));
        }
    }
    // A fixed order: recovery must not vary with a hash seed.
    out.heads.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
    out.paged
        .sort_by(|a, b| (&a.vhost, &a.queue).cmp(&(&b.vhost, &b.queue)));
    Ok(out)
}
