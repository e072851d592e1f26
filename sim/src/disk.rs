//! The broker's disk store in the simulation: the real `warren-store` (its records, ledger,
//! segment rotation and deletion, replay) on a simulated disk ([`SimDisk`]) that keeps files in
//! memory and knows what was synced.
//!
//! The simulated process syncs at the end of every round, before any client can see what the
//! round answered ([`SimStore::flush`]), so towards the broker the store is durable as each
//! round ends and no answer waits for it. A restart replays the segments the store left; the
//! model checks what comes back as after any restart. Before it, the crash may leave the tail
//! of a write that was never synced (a torn frame, zeros or garbage) at the end of the last
//! segment: recovery must cut it and lose nothing.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use warren_core::storage::{
    BindingRecord, ExchangeRecord, MessageRecord, QueueRecord, Recovered, Storage,
};
use warren_store::{open_on, Batch, Disk, DiskStorage, Options, SegmentRead, Writer};

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

/// The store as the simulated broker has it: `warren-store` whose every round is written and
/// synced as it ends.
pub struct SimStore {
    store: DiskStorage,
    writer: Writer<SimDisk>,
    batches: Arc<Mutex<Vec<Batch>>>,
}

impl SimStore {
    /// Opens the store on `disk` (replaying what is there); panics on what the store refuses,
    /// which in the simulation is a bug: the simulated disk never damages a synced byte.
    pub fn open(disk: SimDisk) -> SimStore {
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
        SimStore {
            store,
            writer,
            batches,
        }
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
    // write_seq stays 0: every round is synced before a client sees its answers.
    fn flush(&mut self) {
        self.store.flush();
        let batches = std::mem::take(&mut *self.batches.lock().expect("batches"));
        for batch in batches {
            self.writer
                .apply(batch)
                .expect("the sim disk takes every write");
        }
        self.writer.sync().expect("the sim disk syncs");
    }
}
