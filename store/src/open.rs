//! Opening a data directory: replaying every segment, oldest first, into what the broker
//! recovers, in time proportional to what is on disk.
//!
//! A torn last record (the crash cut the last write short) is cut off the file. A record that
//! fails its checksum with good records after it is damage: the store refuses to open and
//! names the file and offset, unless told to skip damaged records, in which case it says how
//! many it skipped. It never panics on what it reads.

use std::fmt;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use warren_core::storage::MemoryStorage;

use crate::disk::{Disk, FsDisk};
use crate::frame::{self, Read};
use crate::ledger::{Ledger, Segment};
use crate::records::Record;
use crate::store::DiskStorage;
use crate::store::Sink;
use crate::writer::{self, Writer};

/// How to open the store.
#[derive(Clone, Debug)]
pub struct Options {
    /// A segment is closed and a new one started once it reaches this many bytes.
    pub segment_bytes: u64,
    /// Skip damaged records (saying how many) instead of refusing to open.
    pub skip_damaged: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            segment_bytes: 64 << 20,
            skip_damaged: false,
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
    let mut report = replay.report;
    report.segments = numbers.len();
    let mut recovered = replay.state.into_recovered();
    recovered.next_message_id = replay.max_id + 1;
    report.messages = recovered.messages.iter().map(|(_, _, m)| m.len()).sum();
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
    );
    Ok((storage, writer, report))
}

#[derive(Default)]
struct Replay {
    /// Everything, messages included: what the broker recovers.
    state: MemoryStorage,
    /// Exchanges, queues and bindings only: what the store keeps to write again.
    definitions: MemoryStorage,
    ledger: Ledger,
    max_id: u64,
    report: Report,
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

    fn apply(&mut self, record: Record) {
        self.report.records += 1;
        if let Some(id) = record.message_id() {
            self.max_id = self.max_id.max(id);
        }
        match &record {
            Record::Message(v, q, m) => self.ledger.on_message(v, q, m.id),
            Record::Transient(v, q, id) => {
                // Its id was used; the message itself died with the process.
                self.ledger.on_message(v, q, *id);
                self.ledger.on_ack(v, q, *id);
            }
            Record::Acked(v, q, id) => self.ledger.on_ack(v, q, *id),
            Record::QueueDeleted(v, q) => self.ledger.on_queue_deleted(v, q),
            Record::Exchange(..) | Record::Queue(..) | Record::Binding(..) => {
                self.ledger.current().has_definitions = true
            }
            _ => {}
        }
        if record.is_definition() {
            record.apply(&mut self.definitions);
        }
        record.apply(&mut self.state);
    }
}
