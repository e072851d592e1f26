//! The writer: appends the store's batches to the segment being written, syncs them with one
//! `fdatasync` per group, and reports how far the log is durable. The native server runs it on
//! a thread of its own ([`spawn`]); the simulator drives a [`Writer`] by hand.
//!
//! Group commit without a timer: while one sync runs, the batches of the next rounds pile up
//! in the channel, and the next group takes them all. One publisher waits one sync; a
//! thousand publishers share each sync. A disk error stops the process: after a failed fsync
//! the kernel may have dropped the pages, so nothing written since can be confirmed (the
//! PostgreSQL "fsyncgate" lesson), and a broker that cannot write must not answer as if it had.

use std::path::{Path, PathBuf};
use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;

use tracing::error;

use crate::disk::Disk;

/// One step for the writer, in log order.
#[derive(Clone, Debug)]
pub enum Op {
    /// Append these bytes to the segment being written.
    Append(Vec<u8>),
    /// Sync the segment being written and start segment `n`.
    Rotate(u64),
    /// Segment `n` holds nothing needed any more: delete it once what precedes is synced.
    Remove(u64),
}

/// A round's writes: durable up to write sequence `seq` once applied and synced.
#[derive(Clone, Debug)]
pub struct Batch {
    pub ops: Vec<Op>,
    pub seq: u64,
}

/// Where segment `n` lives.
pub fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:016}.seg"))
}

/// Applies batches to a disk: appends as they come, syncs on [`Writer::sync`].
pub struct Writer<D: Disk> {
    disk: D,
    current: u64,
    /// Segments to delete once the writes before their removal are synced.
    removes: Vec<u64>,
    /// The write sequence of the last batch applied.
    applied: u64,
}

impl<D: Disk> Writer<D> {
    /// A writer that starts segment `first` (a new file).
    pub fn new(mut disk: D, first: u64) -> std::io::Result<Writer<D>> {
        disk.create(first)?;
        Ok(Writer {
            disk,
            current: first,
            removes: Vec::new(),
            applied: 0,
        })
    }

    pub fn apply(&mut self, batch: Batch) -> std::io::Result<()> {
        for op in batch.ops {
            match op {
                Op::Append(bytes) => self.disk.append(self.current, &bytes)?,
                Op::Rotate(n) => {
                    self.disk.sync(self.current)?;
                    self.disk.create(n)?;
                    self.current = n;
                }
                Op::Remove(n) => self.removes.push(n),
            }
        }
        self.applied = self.applied.max(batch.seq);
        Ok(())
    }

    /// Syncs what was applied; returns the write sequence now durable.
    pub fn sync(&mut self) -> std::io::Result<u64> {
        self.disk.sync(self.current)?;
        // Oldest first, each durably, so a crash never brings back an older segment without
        // the newer ones; after a failure the rest stay too (a restart replays them all and
        // finds them empty). Not being able to delete only costs space.
        for n in std::mem::take(&mut self.removes) {
            if let Err(e) = self.disk.remove(n) {
                error!(segment = n, error = %e, "could not delete a used-up segment");
                break;
            }
        }
        Ok(self.applied)
    }

    pub fn disk(&self) -> &D {
        &self.disk
    }

    pub fn disk_mut(&mut self) -> &mut D {
        &mut self.disk
    }
}

/// Runs `writer` on a thread of its own, taking batches from `rx` in groups; `on_synced`
/// hears each group's write sequence once it is on disk. Ends when the sender is dropped
/// (after writing and syncing every batch sent before).
pub fn spawn<D: Disk>(
    mut writer: Writer<D>,
    rx: Receiver<Batch>,
    mut on_synced: Box<dyn FnMut(u64) + Send>,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("warren-store-writer".into())
        .spawn(move || {
            while let Ok(first) = rx.recv() {
                let mut next = Some(first);
                while let Some(batch) = next {
                    fail_on_error(writer.apply(batch));
                    next = rx.try_recv().ok();
                }
                match writer.sync() {
                    Ok(seq) => on_synced(seq),
                    Err(e) => fail_on_error(Err(e)),
                }
            }
        })
}

fn fail_on_error(result: std::io::Result<()>) {
    if let Err(e) = result {
        error!(error = %e, "writing the message store failed: stopping, so that nothing not on \
               disk is confirmed");
        std::process::exit(74);
    }
}
