//! The writer thread: appends the store's batches to the segment being written, syncs them to
//! the disk with one `fdatasync` per group, and reports how far the log is durable.
//!
//! Group commit without a timer: while one sync runs, the batches of the next rounds pile up
//! in the channel, and the next group takes them all. One publisher waits one sync; a
//! thousand publishers share each sync. A disk error stops the process: after a failed fsync
//! the kernel may have dropped the pages, so nothing written since can be confirmed (the
//! PostgreSQL "fsyncgate" lesson), and a broker that cannot write must not answer as if it had.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, Sender};
use std::thread::JoinHandle;

use tracing::error;

/// One step for the writer, in log order.
pub enum Op {
    /// Append these bytes to the segment being written.
    Append(Vec<u8>),
    /// Sync the segment being written and start segment `n`.
    Rotate(u64),
    /// Segment `n` holds nothing needed any more: delete it once what precedes is synced.
    Remove(u64),
}

/// A round's writes: durable up to write sequence `seq` once applied and synced.
pub struct Batch {
    pub ops: Vec<Op>,
    pub seq: u64,
}

/// Where segment `n` lives.
pub fn segment_path(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n:016}.seg"))
}

/// Starts the writer on segment `first` (a new file) in `dir`; `on_synced` hears each
/// group's write sequence once it is on disk.
pub fn spawn(
    dir: PathBuf,
    first: u64,
    on_synced: Box<dyn FnMut(u64) + Send>,
) -> std::io::Result<(Sender<Batch>, JoinHandle<()>)> {
    let file = create_segment(&dir, first)?;
    let (tx, rx) = std::sync::mpsc::channel();
    let handle = std::thread::Builder::new()
        .name("warren-store-writer".into())
        .spawn(move || run(dir, file, rx, on_synced))?;
    Ok((tx, handle))
}

fn create_segment(dir: &Path, n: u64) -> std::io::Result<File> {
    let file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .open(segment_path(dir, n))?;
    // The new name must survive a crash too, or the records in it are lost with it.
    File::open(dir)?.sync_all()?;
    Ok(file)
}

fn run(
    dir: PathBuf,
    mut file: File,
    rx: Receiver<Batch>,
    mut on_synced: Box<dyn FnMut(u64) + Send>,
) {
    let mut removes = Vec::new();
    // Ends when the store is dropped (and every batch sent before is written and synced).
    while let Ok(first) = rx.recv() {
        let mut seq = 0;
        let mut next = Some(first);
        while let Some(batch) = next {
            seq = seq.max(batch.seq);
            for op in batch.ops {
                let step = match op {
                    Op::Append(bytes) => file.write_all(&bytes),
                    Op::Rotate(n) => file
                        .sync_data()
                        .and_then(|()| create_segment(&dir, n))
                        .map(|new| file = new),
                    Op::Remove(n) => {
                        removes.push(n);
                        Ok(())
                    }
                };
                fail_on_error(step, &dir);
            }
            next = rx.try_recv().ok();
        }
        fail_on_error(file.sync_data(), &dir);
        for n in removes.drain(..) {
            // Not being able to delete only costs space; a deleted segment that comes back
            // after a crash replays to the same state.
            if let Err(e) = std::fs::remove_file(segment_path(&dir, n)) {
                error!(segment = n, error = %e, "could not delete a used-up segment");
            }
        }
        on_synced(seq);
    }
}

fn fail_on_error(result: std::io::Result<()>, dir: &Path) {
    if let Err(e) = result {
        error!(dir = %dir.display(), error = %e, "writing the message store failed: stopping, \
               so that nothing not on disk is confirmed");
        std::process::exit(74);
    }
}
