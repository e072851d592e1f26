//! What the store needs of a file system: numbered segment files to list, read, create,
//! append to, sync, truncate and remove. [`FsDisk`] is a real directory; the simulator has one
//! that loses what was not synced when it "crashes", so the same store code is tested against
//! crashes at every point.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::pager::SegmentRead;
use crate::writer::segment_path;

pub trait Disk: Send + 'static {
    /// The segment numbers present, in any order.
    fn list(&mut self) -> std::io::Result<Vec<u64>>;
    /// Segment `n`'s whole contents.
    fn read(&mut self, n: u64) -> std::io::Result<Vec<u8>>;
    /// Cuts segment `n` to `len` bytes, durably.
    fn truncate(&mut self, n: u64, len: u64) -> std::io::Result<()>;
    /// Creates segment `n`, empty; the new name is durable when this returns.
    fn create(&mut self, n: u64) -> std::io::Result<()>;
    /// Appends to segment `n` (not durable until [`Disk::sync`]).
    fn append(&mut self, n: u64, bytes: &[u8]) -> std::io::Result<()>;
    /// Makes everything appended to segment `n` durable.
    fn sync(&mut self, n: u64) -> std::io::Result<()>;
    /// Deletes segment `n`, durably: of two old segments deleted together, the older coming
    /// back alone after a crash would bring back messages whose acks were in the newer.
    fn remove(&mut self, n: u64) -> std::io::Result<()>;
    /// How to name segment `n` in messages.
    fn name(&self, n: u64) -> PathBuf;
    /// A reader of the segments for the broker's thread (the writer keeps the disk).
    fn reader(&self) -> Box<dyn SegmentRead>;
}

/// Segment files in a directory, which it holds locked while it lives.
pub struct FsDisk {
    dir: PathBuf,
    /// The segment being appended to, kept open.
    open: Option<(u64, File)>,
    /// `LOCK`, locked: two brokers writing one directory would interleave their logs.
    _lock: File,
}

impl FsDisk {
    /// Opens (creating it if need be) `dir`; fails with `WouldBlock` if another process has it.
    pub fn new(dir: &Path) -> std::io::Result<FsDisk> {
        std::fs::create_dir_all(dir)?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("LOCK"))?;
        lock_exclusive(&lock)?;
        Ok(FsDisk {
            dir: dir.to_owned(),
            open: None,
            _lock: lock,
        })
    }

    fn file(&mut self, n: u64) -> std::io::Result<&mut File> {
        if self.open.as_ref().is_none_or(|(m, _)| *m != n) {
            let file = OpenOptions::new().append(true).open(self.name(n))?;
            self.open = Some((n, file));
        }
        Ok(&mut self.open.as_mut().expect("just opened").1)
    }
}

impl Disk for FsDisk {
    fn list(&mut self) -> std::io::Result<Vec<u64>> {
        let mut numbers = Vec::new();
        for entry in std::fs::read_dir(&self.dir)? {
            let name = entry?.file_name();
            let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".seg")) else {
                continue;
            };
            if stem.len() == 16 && stem.bytes().all(|b| b.is_ascii_digit()) {
                numbers.push(stem.parse().expect("16 digits"));
            }
        }
        Ok(numbers)
    }

    fn read(&mut self, n: u64) -> std::io::Result<Vec<u8>> {
        std::fs::read(self.name(n))
    }

    fn truncate(&mut self, n: u64, len: u64) -> std::io::Result<()> {
        let file = OpenOptions::new().write(true).open(self.name(n))?;
        file.set_len(len)?;
        file.sync_all()
    }

    fn create(&mut self, n: u64) -> std::io::Result<()> {
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(self.name(n))?;
        // The new name must survive a crash too, or the records in it are lost with it.
        File::open(&self.dir)?.sync_all()?;
        self.open = Some((n, file));
        Ok(())
    }

    fn append(&mut self, n: u64, bytes: &[u8]) -> std::io::Result<()> {
        self.file(n)?.write_all(bytes)
    }

    fn sync(&mut self, n: u64) -> std::io::Result<()> {
        self.file(n)?.sync_data()
    }

    fn remove(&mut self, n: u64) -> std::io::Result<()> {
        if self.open.as_ref().is_some_and(|(m, _)| *m == n) {
            self.open = None;
        }
        std::fs::remove_file(self.name(n))?;
        File::open(&self.dir)?.sync_all()
    }

    fn name(&self, n: u64) -> PathBuf {
        segment_path(&self.dir, n)
    }

    fn reader(&self) -> Box<dyn SegmentRead> {
        Box::new(FsReader {
            dir: self.dir.clone(),
            open: None,
        })
    }
}

/// Reads segment files, keeping the last one read open.
struct FsReader {
    dir: PathBuf,
    open: Option<(u64, File)>,
}

impl SegmentRead for FsReader {
    fn read_at(&mut self, n: u64, offset: u64, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        if self.open.as_ref().is_none_or(|(m, _)| *m != n) {
            self.open = Some((n, File::open(segment_path(&self.dir, n))?));
        }
        let (_, file) = self.open.as_ref().expect("just opened");
        file.read_at(buf, offset)
    }
}

/// An advisory lock on the whole file, released when the process ends (even by kill -9).
fn lock_exclusive(file: &File) -> std::io::Result<()> {
    use std::os::unix::io::AsRawFd;
    // SAFETY: flock on a descriptor this function borrows; no memory is involved.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(());
    }
    let e = std::io::Error::last_os_error();
    if e.kind() == std::io::ErrorKind::WouldBlock {
        return Err(std::io::Error::new(
            std::io::ErrorKind::WouldBlock,
            "another process (another warren?) has this data directory locked",
        ));
    }
    Err(e)
}
