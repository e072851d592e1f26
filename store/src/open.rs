//! Opening a data directory: replaying every segment, oldest first, into what the broker
//! recovers, in time proportional to what is on disk.
//!
//! A torn last record (the crash cut the last write short) is cut off the file. A record that
//! fails its checksum with good records after it is damage: the store refuses to open and
//! names the file and offset, unless told to skip damaged records, in which case it says how
//! many it skipped. It never panics on what it reads.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use warren_core::broker::Window;
use warren_core::storage::{codec, MemoryStorage};

use crate::disk::{Disk, FsDisk};
use crate::frame::{self, Read};
use crate::heads;
use crate::ledger::{Ledger, QueueKey, Segment};
use crate::records::{self, Record};
use crate::store::{DiskStorage, Sink};
use crate::writer::{self, Writer};

/// How to open the store.
#[derive(Clone, Debug)]
pub struct Options {
    /// A segment is closed and a new one started once it reaches this many bytes.
    pub segment_bytes: u64,
    /// Skip damaged records (saying how many) instead of refusing to open.
    pub skip_damaged: bool,
    /// How much of a queue that pages is recovered into memory (the broker's queue window);
    /// the rest stays on disk and is read back as consumers reach it.
    pub queue_window: Window,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            segment_bytes: 64 << 20,
            skip_damaged: false,
            queue_window: Window::default(),
        }
    }
}

/// What opening found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    pub segments: usize,
    pub records: u64,
    pub bytes: u64,
    pub messages: usize,
    /// A torn last record cut off: the file and how many bytes went.
    pub torn_tail: Option<(PathBuf, u64)>,
    /// Damaged records skipped (only with `skip_damaged`).
    pub skipped: u64,
}

/// Why the store did not open.
#[derive(Debug)]
pub enum OpenError {
    Io(PathBuf, std::io::Error),
    /// A damaged record: the file and the offset where it starts.
    Damaged(PathBuf, u64),
}

impl fmt::Display for OpenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpenError::Io(path, e) => write!(f, "{}: {e}", path.display()),
            OpenError::Damaged(path, at) => write!(
                f,
                "damaged record in {} at offset {at} (checksum or format mismatch with more \
                 records after it); refusing to start so that nothing is dropped silently. \
                 Restore the file, or start with --skip-damaged-records to drop the damaged \
                 records and keep the rest",
                path.display()
            ),
        }
    }
}

impl std::error::Error for OpenError {}

/// The store, opened: give `storage` to the broker; `writer` ends once the store is dropped
/// and all it wrote is on disk (join it before the process exits).
pub struct Opened {
    pub storage: DiskStorage,
    pub writer: JoinHandle<()>,
    pub report: Report,
}

/// Opens (creating it if need be) the store in `dir`, its writer on a thread of its own.
/// `on_synced` is called from the writer thread with the write sequence each time a group of
/// writes is on disk.
pub fn open(
    dir: &Path,
    options: &Options,
    on_synced: Box<dyn FnMut(u64) + Send>,
) -> Result<Opened, OpenError> {
    let disk = FsDisk::new(dir).map_err(|e| OpenError::Io(dir.to_owned(), e))?;
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = Box::new(move |batch| {
        // The writer outlives the store: it ends when this sender is dropped.
        let _ = tx.send(batch);
    });
    let (storage, writer, report) = open_on(disk, options, sink)?;
    let writer =
        writer::spawn(writer, rx, on_synced).map_err(|e| OpenError::Io(dir.to_owned(), e))?;
    Ok(Opened {
        storage,
        writer,
        report,
    })
}

/// Opens the store on any [`Disk`]: replays it, and returns the storage for the broker (its
/// batches go to `sink`), the writer that must apply them (it has begun a new segment), and
/// what the replay found.
pub fn open_on<D: Disk>(
    mut disk: D,
    options: &Options,
    sink: Sink,
) -> Result<(DiskStorage, Writer<D>, Report), OpenError> {
    let mut numbers = disk.list().map_err(|e| OpenError::Io(disk.name(0), e))?;
    numbers.sort_unstable();
    let mut replay = Replay::default();
    for (i, &n) in numbers.iter().enumerate() {
        let last = i + 1 == numbers.len();
        replay.segment(&mut disk, n, last, options)?;
    }
    replay.forget_undefined_queues();
    let queues = heads::read(&mut disk, &numbers, &replay, options.queue_window)?;
    let mut report = replay.report;
    report.segments = numbers.len();
    report.messages = queues.messages();
    let mut recovered = replay.definitions.clone().into_recovered();
    recovered.messages = queues.heads;
    recovered.paged = queues.paged;
    recovered.next_message_id = replay.max_id + 1;
    let mut ledger = replay.ledger;
    let first = numbers.last().map_or(1, |n| n + 1);
    ledger.segments.push_back(Segment::new(first));
    let name = disk.name(first);
    let reader = disk.reader();
    let writer = Writer::new(disk, first).map_err(|e| OpenError::Io(name, e))?;
    let storage = DiskStorage::new(
        replay.definitions,
        recovered,
        ledger,
        options.segment_bytes,
        sink,
        reader,
        replay.delivered,
    );
    Ok((storage, writer, report))
}

/// The first pass over the log: the definitions, which messages are live where, and what
/// the second pass ([`heads::read`]) needs to put each queue's messages in order. No message
/// body is kept.
#[derive(Default)]
pub(crate) struct Replay {
    /// Exchanges, queues and bindings: what the broker recovers and the store writes again.
    pub(crate) definitions: MemoryStorage,
    pub(crate) ledger: Ledger,
    max_id: u64,
    report: Report,
    /// Live messages delivered before the restart, and how many times: they come back
    /// redelivered.
    pub(crate) delivered: HashMap<u64, u32>,
    /// Per queue, the highest id of its messages written again (out of log order).
    pub(crate) moved_max: HashMap<QueueKey, u64>,
    /// Per queue name, the highest id when a queue of that name was last deleted: messages
    /// up to it belonged to the deleted one.
    pub(crate) deleted_at: HashMap<QueueKey, u64>,
}

impl Replay {
    fn segment(
        &mut self,
        disk: &mut impl Disk,
        n: u64,
        last: bool,
        options: &Options,
    ) -> Result<(), OpenError> {
        let path = disk.name(n);
        let data = disk.read(n).map_err(|e| OpenError::Io(path.clone(), e))?;
        self.ledger.segments.push_back(Segment::new(n));
        self.report.bytes += data.len() as u64;
        let mut at = 0;
        loop {
            let damaged_at = match frame::read(&data, at) {
                Read::End => return Ok(()),
                Read::Frame {
                    kind,
                    payload,
                    next,
                } if records::message_parts(kind, payload).is_some() => {
                    let (message, count) = records::message_parts(kind, payload).expect("checked");
                    match codec::peek_message(message) {
                        Ok(key) => {
                            self.ledger.current().size += (next - at) as u64;
                            self.message(kind, key, count);
                            at = next;
                            continue;
                        }
                        Err(_) => at,
                    }
                }
                Read::Frame {
                    kind,
                    payload,
                    next,
                } => match Record::decode(kind, payload) {
                    Ok(record) => {
                        self.ledger.current().size += (next - at) as u64;
                        self.apply(record);
                        at = next;
                        continue;
                    }
                    Err(_) => at,
                },
                // Only the last segment was being written when the process stopped: an older
                // one was synced whole before the next began.
                Read::Torn if last => {
                    disk.truncate(n, at as u64)
                        .map_err(|e| OpenError::Io(path.clone(), e))?;
                    self.report.torn_tail = Some((path, (data.len() - at) as u64));
                    return Ok(());
                }
                Read::Torn | Read::Damaged => at,
            };
            if !options.skip_damaged {
                return Err(OpenError::Damaged(path, damaged_at as u64));
            }
            self.report.skipped += 1;
            tracing::warn!(file = %path.display(), offset = damaged_at, "skipping a damaged record");
            match frame::next_good(&data, damaged_at + 1) {
                Some(next) => at = next,
                None => return Ok(()),
            }
        }
    }

    /// Messages of queues the log has no definition of (a queue that was not durable paged
    /// them out) died with the process: their segments need not wait for their acks.
    fn forget_undefined_queues(&mut self) {
        let defined: HashSet<QueueKey> = self
            .definitions
            .clone()
            .into_recovered()
            .queues
            .into_iter()
            .map(|q| (q.vhost.to_string(), q.name.to_string()))
            .collect();
        for (vhost, queue) in self.ledger.queues() {
            if !defined.contains(&(vhost.clone(), queue.clone())) {
                self.ledger.on_queue_deleted(&vhost, &queue);
            }
        }
    }

    /// A message record; `count`: the deliveries it carries (a message written again).
    fn message(&mut self, kind: u8, key: codec::MessageKey<'_>, count: u32) {
        self.report.records += 1;
        self.max_id = self.max_id.max(key.id);
        let (v, q, id) = (key.vhost, key.queue, key.id);
        if kind == records::TRANSIENT {
            // Its id was used; the message itself died with the process.
            self.ledger.on_message(v, q, id);
            self.ledger.on_ack(v, q, id);
            return;
        }
        if !self.ledger.is_fresh(id) {
            let max = self
                .moved_max
                .entry((v.to_owned(), q.to_owned()))
                .or_default();
            *max = (*max).max(id);
        }
        if count > 0 {
            self.delivered.insert(id, count);
        }
        self.ledger.on_message(v, q, id);
    }

    fn apply(&mut self, record: Record) {
        self.report.records += 1;
        if let Some(id) = record.message_id() {
            self.max_id = self.max_id.max(id);
        }
        match &record {
            Record::Acked(v, q, id) => {
                self.ledger.on_ack(v, q, *id);
                self.delivered.remove(id);
            }
            Record::Delivered(_, _, id) => {
                let n = self.delivered.entry(*id).or_default();
                *n = n.saturating_add(1);
            }
            Record::QueueDeleted(v, q) => {
                self.ledger.on_queue_deleted(v, q);
                let key = (v.to_string(), q.to_string());
                self.moved_max.remove(&key);
                self.deleted_at.insert(key, self.max_id);
            }
            Record::Exchange(..) | Record::Queue(..) | Record::Binding(..) => {
                self.ledger.current().has_definitions = true
            }
            _ => {}
        }
        if record.is_definition() {
            record.apply(&mut self.definitions);
        }
    }
}
