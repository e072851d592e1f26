//! The broker's disk store in the simulation: the real `warren-store` (its records, ledger,
//! segment rotation and deletion, replay) on a simulated disk ([`SimDisk`]) that keeps files in
//! memory and knows what was synced.
//!
//! The store's rounds of writes wait in a queue until the world syncs them at moments of its
//! choosing ([`SimWriter::sync`]), and the broker holds the confirms and other answers that
//! depend on them until it hears of the sync. A crash loses every batch not synced; it may
//! leave a torn frame of the first, zeros or garbage at the end of the last segment: recovery
//! must cut that and lose nothing synced. A restart replays the segments the store left; the
//! model checks what comes back against its state as of the last sync.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use warren_core::storage::{
    BindingRecord, ExchangeRecord, MessageRecord, PermissionRecord, QueueRecord, Recovered,
    Storage, UserRecord,
};
use warren_store::{frame, open_on, Batch, Disk, DiskStorage, Op, Options, SegmentRead, Writer};

use crate::rng::{Rng, Source};

#[derive(Clone, Default)]
struct SimFile {
    synced: Vec<u8>,
    /// Appended and not synced: what a crash may lose, whole or in part.
    unsynced: Vec<u8>,
}

/// Segment files in memory, shared by the store's writer and the simulation.
#[derive(Clone, Default)]
pub struct SimDisk {
    files: Arc<Mutex<BTreeMap<u64, SimFile>>>,
}

impl SimDisk {
    fn files(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, SimFile>> {
        self.files.lock().expect("sim disk lock")
    }

    /// The process dies: every file keeps what was synced; the last segment may also keep a
    /// prefix of what was not, and a torn tail (zeros or garbage).
    pub fn crash(&self, rng: &mut Rng) {
        let mut files = self.files();
        // The file being written may keep a prefix of what was never synced (the page cache
        // wrote some of it back), cut anywhere, even inside a frame.
        let keep = files.values().next_back().map_or(0, |f| {
            let n = f.unsynced.len() as u32;
            if n > 0 && rng.chance(50) {
                rng.below(n + 1) as usize
            } else {
                0
            }
        });
        if let Some(last) = files.values_mut().next_back() {
            let kept: Vec<u8> = last.unsynced[..keep].to_vec();
            last.synced.extend_from_slice(&kept);
        }
        for file in files.values_mut() {
            file.unsynced.clear();
        }
        let Some(last) = files.values_mut().next_back() else {
            return;
        };
        match rng.below(4) {
            0 => {
                // Half a frame header claiming more than follows.
                last.synced.extend_from_slice(&[200, 0, 0, 0, 1, 2]);
            }
            1 => last
                .synced
                .extend(std::iter::repeat_n(0, 1 + rng.below(64) as usize)),
            2 => {
                for _ in 0..1 + rng.below(64) {
                    last.synced.push(rng.below(256) as u8);
                }
            }
            _ => {}
        }
    }

    /// Bytes on the disk, in all segments.
    pub fn bytes(&self) -> usize {
        self.files()
            .values()
            .map(|f| f.synced.len() + f.unsynced.len())
            .sum()
    }

    pub fn segments(&self) -> usize {
        self.files().len()
    }
}

impl Disk for SimDisk {
    fn list(&mut self) -> std::io::Result<Vec<u64>> {
        Ok(self.files().keys().copied().collect())
    }
    fn read(&mut self, n: u64) -> std::io::Result<Vec<u8>> {
        let files = self.files();
        let f = files.get(&n).ok_or(std::io::ErrorKind::NotFound)?;
        Ok([f.synced.as_slice(), f.unsynced.as_slice()].concat())
    }
    fn truncate(&mut self, n: u64, len: u64) -> std::io::Result<()> {
        let mut files = self.files();
        let f = files.get_mut(&n).ok_or(std::io::ErrorKind::NotFound)?;
        let mut all = [f.synced.as_slice(), f.unsynced.as_slice()].concat();
        all.truncate(len as usize);
        *f = SimFile {
            synced: all,
            unsynced: Vec::new(),
        };
        Ok(())
    }
    fn create(&mut self, n: u64) -> std::io::Result<()> {
        let mut files = self.files();
        if files.contains_key(&n) {
            return Err(std::io::ErrorKind::AlreadyExists.into());
        }
        files.insert(n, SimFile::default());
        Ok(())
    }
    fn append(&mut self, n: u64, bytes: &[u8]) -> std::io::Result<()> {
        let mut files = self.files();
        let f = files.get_mut(&n).ok_or(std::io::ErrorKind::NotFound)?;
        f.unsynced.extend_from_slice(bytes);
        Ok(())
    }
    fn sync(&mut self, n: u64) -> std::io::Result<()> {
        let mut files = self.files();
        let f = files.get_mut(&n).ok_or(std::io::ErrorKind::NotFound)?;
        let unsynced = std::mem::take(&mut f.unsynced);
        f.synced.extend_from_slice(&unsynced);
        Ok(())
    }
    fn remove(&mut self, n: u64) -> std::io::Result<()> {
        self.files().remove(&n);
        Ok(())
    }
    fn name(&self, n: u64) -> PathBuf {
        PathBuf::from(format!("sim/{n:016}.seg"))
    }
    fn reader(&self) -> Box<dyn SegmentRead> {
        Box::new(self.clone())
    }
}

impl SegmentRead for SimDisk {
    /// What a read sees on a real file system: everything appended, synced or not.
    fn read_at(&mut self, n: u64, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        let files = self.files();
        let f = files.get(&n).ok_or(std::io::ErrorKind::NotFound)?;
        let mut at = offset as usize;
        let mut k = 0;
        for part in [f.synced.as_slice(), f.unsynced.as_slice()] {
            if at >= part.len() {
                at -= part.len();
                continue;
            }
            let n = (part.len() - at).min(buf.len() - k);
            buf[k..k + n].copy_from_slice(&part[at..at + n]);
            k += n;
            at = 0;
            if k == buf.len() {
                break;
            }
        }
        Ok(k)
    }
}

/// Small segments, so that runs rotate, delete and rewrite definitions often.
const SEGMENT_BYTES: u64 = 16 << 10;

/// The store as the simulated broker has it: `warren-store`, whose rounds of writes wait in
/// a queue (as in the native writer's channel) until the world syncs them ([`SimWriter`]).
pub struct SimStore {
    store: DiskStorage,
}

/// The store's writer thread, run by the world: it takes the waiting batches and syncs them
/// when the world says so, and at a crash loses them (cutting the first one short, maybe).
pub struct SimWriter {
    writer: Writer<SimDisk>,
    batches: Arc<Mutex<Vec<Batch>>>,
}

impl SimStore {
    /// Opens the store on `disk` (replaying what is there); panics on what the store refuses,
    /// which in the simulation is a bug: the simulated disk never damages a synced byte.
    pub fn open(disk: SimDisk) -> (SimStore, SimWriter) {
        let batches: Arc<Mutex<Vec<Batch>>> = Arc::default();
        let sink = batches.clone();
        let options = Options {
            segment_bytes: SEGMENT_BYTES,
            skip_damaged: false,
            queue_window: crate::world::SIM_WINDOW,
        };
        let (store, writer, _report) = open_on(
            disk,
            &options,
            Box::new(move |b| sink.lock().expect("batches").push(b)),
        )
        .unwrap_or_else(|e| panic!("the store did not open after a restart: {e}"));
        (SimStore { store }, SimWriter { writer, batches })
    }
}

impl SimWriter {
    /// How many rounds of writes wait to be synced.
    pub fn waiting(&self) -> usize {
        self.batches.lock().expect("batches").len()
    }

    /// Writes and syncs the first `n` waiting batches (all of them if fewer wait), as a
    /// sync that started while the later ones were still on their way; the write sequence now
    /// durable (what the broker is told), `None` if nothing waited.
    pub fn sync(&mut self, n: usize) -> Option<u64> {
        let batches: Vec<Batch> = {
            let mut waiting = self.batches.lock().expect("batches");
            let n = n.min(waiting.len());
            waiting.drain(..n).collect()
        };
        if batches.is_empty() {
            return None;
        }
        for batch in batches {
            self.writer
                .apply(batch)
                .expect("the sim disk takes every write");
        }
        Some(self.writer.sync().expect("the sim disk syncs"))
    }

    /// The process dies with batches waiting: none of them was synced, but the page cache may
    /// have written back the start of the first, short of its first record's end. True if it
    /// did: then nothing else may follow that torn frame (zeros or garbage after it might
    /// complete it into a record that was never synced).
    pub fn crash(self, rng: &mut Rng) -> bool {
        let batches = std::mem::take(&mut *self.batches.lock().expect("batches"));
        let Some(Op::Append(bytes)) = batches.first().and_then(|b| b.ops.first()) else {
            return false;
        };
        if bytes.len() <= frame::HEADER || !rng.chance(50) {
            return false;
        }
        let len = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes")) as usize;
        let whole = (frame::HEADER + len).min(bytes.len());
        let keep = 1 + rng.below(whole as u32 - 1) as usize;
        let mut disk = self.writer.disk().clone();
        let Some(last) = disk.list().expect("sim disk").last().copied() else {
            return false;
        };
        disk.append(last, &bytes[..keep])
            .and_then(|()| disk.sync(last))
            .expect("the sim disk takes every write");
        true
    }
}

impl Storage for SimStore {
    fn save_exchange(&mut self, vhost: &str, record: &ExchangeRecord) {
        self.store.save_exchange(vhost, record)
    }
    fn delete_exchange(&mut self, vhost: &str, name: &str) {
        self.store.delete_exchange(vhost, name)
    }
    fn save_queue(&mut self, record: &QueueRecord) {
        self.store.save_queue(record)
    }
    fn delete_queue(&mut self, vhost: &str, name: &str) {
        self.store.delete_queue(vhost, name)
    }
    fn save_binding(&mut self, vhost: &str, record: &BindingRecord) {
        self.store.save_binding(vhost, record)
    }
    fn delete_binding(&mut self, vhost: &str, record: &BindingRecord) {
        self.store.delete_binding(vhost, record)
    }
    fn save_message(&mut self, vhost: &str, queue: &str, record: &MessageRecord) {
        self.store.save_message(vhost, queue, record)
    }
    fn delete_message(&mut self, vhost: &str, queue: &str, id: u64) {
        self.store.delete_message(vhost, queue, id)
    }
    fn mark_delivered(&mut self, vhost: &str, queue: &str, id: u64) {
        self.store.mark_delivered(vhost, queue, id)
    }
    fn save_vhost(&mut self, name: &str) {
        self.store.save_vhost(name)
    }
    fn delete_vhost(&mut self, name: &str) {
        self.store.delete_vhost(name)
    }
    fn save_user(&mut self, record: &UserRecord) {
        self.store.save_user(record)
    }
    fn delete_user(&mut self, name: &str) {
        self.store.delete_user(name)
    }
    fn save_permission(&mut self, record: &PermissionRecord) {
        self.store.save_permission(record)
    }
    fn delete_permission(&mut self, user: &str, vhost: &str) {
        self.store.delete_permission(user, vhost)
    }
    fn load(&mut self) -> Recovered {
        self.store.load()
    }
    fn rewrite_request(&mut self) -> Vec<u64> {
        self.store.rewrite_request()
    }
    fn can_page(&self) -> bool {
        self.store.can_page()
    }
    fn page_in(
        &mut self,
        vhost: &str,
        queue: &str,
        after_id: u64,
        max: usize,
        out: &mut Vec<MessageRecord>,
    ) {
        self.store.page_in(vhost, queue, after_id, max, out)
    }
    fn write_seq(&self) -> u64 {
        self.store.write_seq()
    }
    /// Hands the round's writes to the queue the world syncs from.
    fn flush(&mut self) {
        self.store.flush();
    }
}
