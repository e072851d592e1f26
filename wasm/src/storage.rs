//! Storage for the browser: a write-behind journal that JavaScript flushes to IndexedDB.
//!
//! The core calls [`Storage`] synchronously; IndexedDB is asynchronous. So [`JournalStorage`]
//! only appends each change to a [`Journal`] as an *op*, and the JavaScript side takes the ops
//! ([`Journal::take`]) after each pump and writes them in one IndexedDB transaction. At start,
//! JavaScript reads every record back and hands them to [`JournalStorage::new`], which gives them
//! to the broker through [`Storage::load`]. Changes not yet flushed when the page dies are lost,
//! as with any write-behind cache (`Broker.flush()` in JS waits for them).
//!
//! # Formats
//!
//! Records, the values stored in IndexedDB, are the core's storage records as bytes
//! (`warren_core::storage::codec`, the same format as the native disk store's).
//!
//! Ops, as [`Journal::take`] returns them, one after another:
//! `kind:u8 store:u8 key [value:blob]` where kind is 1 put (with value), 2 delete, 3 delete
//! every key that starts with the given key parts; store is 0 exchanges, 1 queues, 2 bindings,
//! 3 messages, 4 delivered markers; a key is `parts:u8` then parts, each `1 str`, `2 f64` (a number)
//! or `3 blob` (`str` = u16 length + UTF-8, `blob` = u32 length + bytes, little-endian).
//! Keys: exchanges and queues `[vhost, name]`, bindings `[vhost, record bytes]`, messages
//! and delivered markers `[vhost, queue, id]` (so a queue's messages sort by id, which is
//! queue order).
//!
//! The load format, what JavaScript passes back in: `store:u8 value:blob`, repeated, messages
//! in key order.

use alloc::collections::BTreeSet;
use alloc::string::String;
use alloc::sync::Arc;
use alloc::vec::Vec;
use std::sync::Mutex;

use warren_core::storage::codec::{
    decode_binding, decode_delivered, decode_exchange, decode_message, decode_queue,
    encode_binding, encode_delivered, encode_exchange, encode_message, encode_queue, put_blob,
    put_str, BadRecord, Reader,
};
use warren_core::storage::{
    BindingRecord, ExchangeRecord, MessageRecord, PermissionRecord, QueueRecord, Recovered,
    Storage, UserRecord,
};

pub const STORE_EXCHANGES: u8 = 0;
pub const STORE_QUEUES: u8 = 1;
pub const STORE_BINDINGS: u8 = 2;
pub const STORE_MESSAGES: u8 = 3;
/// Markers for persistent messages delivered at least once (`Storage::mark_delivered`), kept
/// apart from the messages so that marking one never rewrites its body.
pub const STORE_DELIVERED: u8 = 4;

const OP_PUT: u8 = 1;
const OP_DELETE: u8 = 2;
const OP_DELETE_PREFIX: u8 = 3;

/// One record as bytes, for an op's value or key.
fn bytes_of(encode: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::new();
    encode(&mut out);
    out
}

/// Storage for the in-memory default: durable state lives as long as the broker object.
pub struct NoStorage;

impl Storage for NoStorage {
    fn save_exchange(&mut self, _: &str, _: &ExchangeRecord) {}
    fn delete_exchange(&mut self, _: &str, _: &str) {}
    fn save_queue(&mut self, _: &QueueRecord) {}
    fn delete_queue(&mut self, _: &str, _: &str) {}
    fn save_binding(&mut self, _: &str, _: &BindingRecord) {}
    fn delete_binding(&mut self, _: &str, _: &BindingRecord) {}
    fn save_message(&mut self, _: &str, _: &str, _: &MessageRecord) {}
    fn delete_message(&mut self, _: &str, _: &str, _: u64) {}
    fn mark_delivered(&mut self, _: &str, _: &str, _: u64) {}
    fn save_vhost(&mut self, _: &str) {}
    fn delete_vhost(&mut self, _: &str) {}
    fn save_user(&mut self, _: &UserRecord) {}
    fn delete_user(&mut self, _: &str) {}
    fn save_permission(&mut self, _: &PermissionRecord) {}
    fn delete_permission(&mut self, _: &str, _: &str) {}
    fn load(&mut self) -> Recovered {
        Recovered::default()
    }
}

/// The ops not yet taken, shared by the storage (inside the broker) and the engine.
#[derive(Clone, Default)]
pub struct Journal(Arc<Mutex<Vec<u8>>>);

impl Journal {
    /// Every op appended since the last call.
    pub fn take(&self) -> Vec<u8> {
        match self.0.lock() {
            Ok(mut ops) => core::mem::take(&mut *ops),
            Err(_) => Vec::new(),
        }
    }

    fn push(&self, op: &[u8]) {
        if let Ok(mut ops) = self.0.lock() {
            ops.extend_from_slice(op);
        }
    }
}

/// The broker's [`Storage`] when persistence is on. See the module docs.
pub struct JournalStorage {
    journal: Journal,
    recovered: Option<Recovered>,
    /// Scratch buffer for one op.
    op: Vec<u8>,
}

impl JournalStorage {
    /// A storage that will hand `loaded` (the load format) to the broker; returns the journal
    /// handle and how many records were unreadable and skipped.
    pub fn new(loaded: &[u8]) -> (JournalStorage, Journal, u32) {
        let (recovered, errors) = decode_loaded(loaded);
        let journal = Journal::default();
        let storage = JournalStorage {
            journal: journal.clone(),
            recovered: Some(recovered),
            op: Vec::new(),
        };
        (storage, journal, errors)
    }

    fn emit(&mut self, kind: u8, store: u8, key: &[Part<'_>], value: Option<&[u8]>) {
        let op = &mut self.op;
        op.clear();
        op.push(kind);
        op.push(store);
        op.push(key.len() as u8);
        for part in key {
            match part {
                Part::Str(s) => {
                    op.push(1);
                    put_str(op, s);
                }
                Part::Num(n) => {
                    op.push(2);
                    op.extend_from_slice(&(*n as f64).to_le_bytes());
                }
                Part::Blob(b) => {
                    op.push(3);
                    put_blob(op, b);
                }
            }
        }
        if let Some(v) = value {
            put_blob(op, v);
        }
        self.journal.push(op);
    }
}

enum Part<'a> {
    Str(&'a str),
    Num(u64),
    Blob(&'a [u8]),
}

impl Storage for JournalStorage {
    fn save_exchange(&mut self, vhost: &str, record: &ExchangeRecord) {
        let value = bytes_of(|o| encode_exchange(o, vhost, record));
        let key = [Part::Str(vhost), Part::Str(&record.name)];
        self.emit(OP_PUT, STORE_EXCHANGES, &key, Some(&value));
    }

    fn delete_exchange(&mut self, vhost: &str, name: &str) {
        let key = [Part::Str(vhost), Part::Str(name)];
        self.emit(OP_DELETE, STORE_EXCHANGES, &key, None);
    }

    fn save_queue(&mut self, record: &QueueRecord) {
        let value = bytes_of(|o| encode_queue(o, record));
        let key = [Part::Str(&record.vhost), Part::Str(&record.name)];
        self.emit(OP_PUT, STORE_QUEUES, &key, Some(&value));
    }

    fn delete_queue(&mut self, vhost: &str, name: &str) {
        let key = [Part::Str(vhost), Part::Str(name)];
        self.emit(OP_DELETE, STORE_QUEUES, &key, None);
        self.emit(OP_DELETE_PREFIX, STORE_MESSAGES, &key, None);
        self.emit(OP_DELETE_PREFIX, STORE_DELIVERED, &key, None);
    }

    fn save_binding(&mut self, vhost: &str, record: &BindingRecord) {
        let value = bytes_of(|o| encode_binding(o, vhost, record));
        let key = [Part::Str(vhost), Part::Blob(&value)];
        self.emit(OP_PUT, STORE_BINDINGS, &key, Some(&value));
    }

    fn delete_binding(&mut self, vhost: &str, record: &BindingRecord) {
        let value = bytes_of(|o| encode_binding(o, vhost, record));
        let key = [Part::Str(vhost), Part::Blob(&value)];
        self.emit(OP_DELETE, STORE_BINDINGS, &key, None);
    }

    fn save_message(&mut self, vhost: &str, queue: &str, record: &MessageRecord) {
        let value = bytes_of(|o| encode_message(o, vhost, queue, record));
        let key = [Part::Str(vhost), Part::Str(queue), Part::Num(record.id)];
        self.emit(OP_PUT, STORE_MESSAGES, &key, Some(&value));
    }

    fn delete_message(&mut self, vhost: &str, queue: &str, id: u64) {
        let key = [Part::Str(vhost), Part::Str(queue), Part::Num(id)];
        self.emit(OP_DELETE, STORE_MESSAGES, &key, None);
        self.emit(OP_DELETE, STORE_DELIVERED, &key, None);
    }

    fn mark_delivered(&mut self, vhost: &str, queue: &str, id: u64) {
        let value = bytes_of(|o| encode_delivered(o, vhost, queue, id));
        let key = [Part::Str(vhost), Part::Str(queue), Part::Num(id)];
        self.emit(OP_PUT, STORE_DELIVERED, &key, Some(&value));
    }

    // A page's users and vhosts come from its options at every start (`Engine::new`), so the
    // journal keeps none of them.
    fn save_vhost(&mut self, _: &str) {}
    fn delete_vhost(&mut self, _: &str) {}
    fn save_user(&mut self, _: &UserRecord) {}
    fn delete_user(&mut self, _: &str) {}
    fn save_permission(&mut self, _: &PermissionRecord) {}
    fn delete_permission(&mut self, _: &str, _: &str) {}
    fn load(&mut self) -> Recovered {
        self.recovered.take().unwrap_or_default()
    }
}

/// Decodes the load format; returns what it could read and how many records it skipped.
pub fn decode_loaded(data: &[u8]) -> (Recovered, u32) {
    let mut out = Recovered::default();
    let mut errors = 0;
    let mut delivered = BTreeSet::new();
    let mut c = Reader::new(data);
    while !c.is_empty() {
        let (Ok(store), Ok(value)) = (c.u8(), c.blob()) else {
            // The framing itself is broken: nothing after this point can be trusted.
            errors += 1;
            break;
        };
        let ok = match store {
            STORE_EXCHANGES => decode_exchange(&value).map(|e| out.exchanges.push(e)),
            STORE_QUEUES => decode_queue(&value).map(|q| out.queues.push(q)),
            STORE_BINDINGS => decode_binding(&value).map(|b| out.bindings.push(b)),
            STORE_MESSAGES => {
                decode_message(&value).map(|(v, q, m)| match out.messages.last_mut() {
                    Some((lv, lq, list)) if *lv == v && *lq == q => list.push(m),
                    _ => out.messages.push((v, q, alloc::vec![m])),
                })
            }
            STORE_DELIVERED => decode_delivered(&value).map(|d| {
                delivered.insert(d);
            }),
            _ => Err(BadRecord),
        };
        if ok.is_err() {
            errors += 1;
        }
    }
    // Queue order is id order, whatever order the records came in.
    for (vhost, queue, list) in &mut out.messages {
        list.sort_by_key(|m| m.id);
        for m in list.iter_mut() {
            m.deliveries = u32::from(delivered.contains(&(vhost.clone(), queue.clone(), m.id)));
        }
    }
    (out, errors)
}

/// Builds the load format from records (tests, and tools that seed a database).
pub fn encode_loaded(records: &[(u8, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (store, value) in records {
        out.push(*store);
        put_blob(&mut out, value);
    }
    out
}

/// A decoded op, for tests and for replaying a journal in Rust.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    Put {
        store: u8,
        key: Vec<KeyPart>,
        value: Vec<u8>,
    },
    Delete {
        store: u8,
        key: Vec<KeyPart>,
    },
    DeletePrefix {
        store: u8,
        key: Vec<KeyPart>,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub enum KeyPart {
    Str(String),
    Num(f64),
    Blob(Vec<u8>),
}

/// Decodes a journal (the op format); `None` if it is malformed.
pub fn decode_ops(data: &[u8]) -> Option<Vec<Op>> {
    let mut c = Reader::new(data);
    let mut ops = Vec::new();
    while !c.is_empty() {
        let kind = c.u8().ok()?;
        let store = c.u8().ok()?;
        let n = c.u8().ok()?;
        let mut key = Vec::new();
        for _ in 0..n {
            key.push(match c.u8().ok()? {
                1 => KeyPart::Str(String::from(c.str().ok()?.as_str())),
                2 => KeyPart::Num(c.f64().ok()?),
                3 => KeyPart::Blob(c.blob().ok()?.to_vec()),
                _ => return None,
            });
        }
        ops.push(match kind {
            OP_PUT => Op::Put {
                store,
                key,
                value: c.blob().ok()?.to_vec(),
            },
            OP_DELETE => Op::Delete { store, key },
            OP_DELETE_PREFIX => Op::DeletePrefix { store, key },
            _ => return None,
        });
    }
    Some(ops)
}
