//! Warren's disk store: the core's [`Storage`](warren_core::storage::Storage) as an
//! append-only log of segment files, for the native server.
//!
//! - **Format.** Each storage call is one record, framed with its length and a CRC32C
//!   ([`frame`]), its payload the core's record codec (the browser journal's format).
//!   Segments are files named by number; a full one is closed and the next begun.
//! - **Writing.** The broker's thread only encodes, into a buffer handed to the writer thread
//!   once per round; the writer appends and syncs (`fdatasync`) in groups, and reports the
//!   write sequence now durable, which releases the confirms and `tx.commit-ok`s that waited
//!   for it. One file is open for writing whatever the number of queues.
//! - **Reclaiming.** The ledger counts each segment's unacked messages; the oldest segments
//!   that hold none are deleted (after the current definitions are written again, if they
//!   held some).
//! - **Recovery.** Segments replay in order into a `MemoryStorage`, which is what the broker
//!   recovers: acked messages stay gone, delivered ones come back redelivered, a deleted queue
//!   takes its messages with it. See [`open`] for torn and damaged records.

mod disk;
pub mod frame;
mod heads;
mod ledger;
mod open;
mod pager;
mod records;
mod store;
mod writer;

pub use disk::{Disk, FsDisk};
pub use open::{open, open_on, OpenError, Opened, Options, Report};
pub use pager::SegmentRead;
pub use store::{DiskStorage, Sink};
pub use writer::{segment_path, Batch, Op, Writer};
