//! Storage for the browser: a write-behind journal that JavaScript flushes to IndexedDB.
//!
//! The core calls [`Storage`] synchronously; IndexedDB is asynchronous. So [`JournalStorage`]
//! only appends each change to a [`Journal`] as an *op*, and the JavaScript side takes the ops
//! ([`Journal::take`]) after each pump and writes them in one IndexedDB transaction. At start,
//! JavaScript reads every record back and hands them to [`JournalStorage::new`], which gives them
//! to the broker through [`Storage::load`]. Changes not yet flushed when the page dies are lost,
//! as with any write-behind cache (`Broker.flush()` in JS waits for them).
//!
//! # Formats (little-endian; `str` = u16 length + UTF-8, `blob` = u32 length + bytes)
//!
//! Records, the values stored in IndexedDB (each starts with a version byte, 1):
//! - exchange: `1 vhost:str name:str kind:u8 auto_delete:u8 internal:u8 arguments:table`
//! - queue: `1 vhost:str name:str auto_delete:u8 arguments:table`
//! - binding: `1 vhost:str source:str destination:str to_exchange:u8 key:str arguments:table`
//! - message: `1 vhost:str queue:str id:u64 exchange:str key:str properties:blob body:blob`
//! - delivered marker: `1 vhost:str queue:str id:u64` (the message went out unacked at least
//!   once, so after a restart it comes back `redelivered`)
//!
//! (`table` is an AMQP field table as on the wire: u32 big-endian length, then entries.)
//!
//! Ops, as [`Journal::take`] returns them, one after another:
//! `kind:u8 store:u8 key [value:blob]` where kind is 1 put (with value), 2 delete, 3 delete
//! every key that starts with the given key parts; store is 0 exchanges, 1 queues, 2 bindings,
//! 3 messages, 4 delivered markers; a key is `parts:u8` then parts, each `1 str`, `2 f64` (a number) or `3 blob`.
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

use bytes::Bytes;
use warren_core::broker::ExchangeKind;
use warren_core::codec::{FieldTable, ShortStr};
use warren_core::storage::{
    BindingRecord, ExchangeRecord, MessageRecord, QueueRecord, Recovered, Storage,
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

const VERSION: u8 = 1;

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
        let value = encode_exchange(vhost, record);
        let key = [Part::Str(vhost), Part::Str(&record.name)];
        self.emit(OP_PUT, STORE_EXCHANGES, &key, Some(&value));
    }

    fn delete_exchange(&mut self, vhost: &str, name: &str) {
        let key = [Part::Str(vhost), Part::Str(name)];
        self.emit(OP_DELETE, STORE_EXCHANGES, &key, None);
    }

    fn save_queue(&mut self, record: &QueueRecord) {
        let value = encode_queue(record);
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
        let value = encode_binding(vhost, record);
        let key = [Part::Str(vhost), Part::Blob(&value)];
        self.emit(OP_PUT, STORE_BINDINGS, &key, Some(&value));
    }

    fn delete_binding(&mut self, vhost: &str, record: &BindingRecord) {
        let value = encode_binding(vhost, record);
        let key = [Part::Str(vhost), Part::Blob(&value)];
        self.emit(OP_DELETE, STORE_BINDINGS, &key, None);
    }

    fn save_message(&mut self, vhost: &str, queue: &str, record: &MessageRecord) {
        let value = encode_message(vhost, queue, record);
        let key = [Part::Str(vhost), Part::Str(queue), Part::Num(record.id)];
        self.emit(OP_PUT, STORE_MESSAGES, &key, Some(&value));
    }

    fn delete_message(&mut self, vhost: &str, queue: &str, id: u64) {
        let key = [Part::Str(vhost), Part::Str(queue), Part::Num(id)];
        self.emit(OP_DELETE, STORE_MESSAGES, &key, None);
        self.emit(OP_DELETE, STORE_DELIVERED, &key, None);
    }

    fn mark_delivered(&mut self, vhost: &str, queue: &str, id: u64) {
        let value = encode_delivered(vhost, queue, id);
        let key = [Part::Str(vhost), Part::Str(queue), Part::Num(id)];
        self.emit(OP_PUT, STORE_DELIVERED, &key, Some(&value));
    }

    fn load(&mut self) -> Recovered {
        self.recovered.take().unwrap_or_default()
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    let len = s.len().min(usize::from(u16::MAX));
    out.extend_from_slice(&(len as u16).to_le_bytes());
    out.extend_from_slice(&s.as_bytes()[..len]);
}

fn put_blob(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

fn kind_code(kind: ExchangeKind) -> u8 {
    match kind {
        ExchangeKind::Direct => 0,
        ExchangeKind::Fanout => 1,
        ExchangeKind::Topic => 2,
        ExchangeKind::Headers => 3,
    }
}

pub fn encode_exchange(vhost: &str, r: &ExchangeRecord) -> Vec<u8> {
    let mut out = alloc::vec![VERSION];
    put_str(&mut out, vhost);
    put_str(&mut out, &r.name);
    out.push(kind_code(r.kind));
    out.push(u8::from(r.auto_delete));
    out.push(u8::from(r.internal));
    r.arguments.encode(&mut out);
    out
}

pub fn encode_queue(r: &QueueRecord) -> Vec<u8> {
    let mut out = alloc::vec![VERSION];
    put_str(&mut out, &r.vhost);
    put_str(&mut out, &r.name);
    out.push(u8::from(r.auto_delete));
    r.arguments.encode(&mut out);
    out
}

pub fn encode_binding(vhost: &str, r: &BindingRecord) -> Vec<u8> {
    let mut out = alloc::vec![VERSION];
    put_str(&mut out, vhost);
    put_str(&mut out, &r.source);
    put_str(&mut out, &r.destination);
    out.push(u8::from(r.destination_is_exchange));
    put_str(&mut out, &r.routing_key);
    r.arguments.encode(&mut out);
    out
}

pub fn encode_message(vhost: &str, queue: &str, r: &MessageRecord) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + r.properties.len() + r.body.len());
    out.push(VERSION);
    put_str(&mut out, vhost);
    put_str(&mut out, queue);
    out.extend_from_slice(&r.id.to_le_bytes());
    put_str(&mut out, &r.exchange);
    put_str(&mut out, &r.routing_key);
    put_blob(&mut out, &r.properties);
    put_blob(&mut out, &r.body);
    out
}

pub fn encode_delivered(vhost: &str, queue: &str, id: u64) -> Vec<u8> {
    let mut out = alloc::vec![VERSION];
    put_str(&mut out, vhost);
    put_str(&mut out, queue);
    out.extend_from_slice(&id.to_le_bytes());
    out
}

/// Reads records; every read is bounds-checked, so bad data is an error, never a panic.
struct Cursor<'a> {
    data: &'a [u8],
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.data.len() < n {
            return None;
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Some(head)
    }
    fn u8(&mut self) -> Option<u8> {
        self.take(1).map(|b| b[0])
    }
    fn flag(&mut self) -> Option<bool> {
        self.u8().map(|b| b != 0)
    }
    fn u64(&mut self) -> Option<u64> {
        let b = self.take(8)?;
        Some(u64::from_le_bytes(b.try_into().ok()?))
    }
    fn str(&mut self) -> Option<ShortStr> {
        let n = u16::from_le_bytes(self.take(2)?.try_into().ok()?);
        let s = core::str::from_utf8(self.take(usize::from(n))?).ok()?;
        Some(ShortStr::from(s))
    }
    fn blob(&mut self) -> Option<Bytes> {
        let n = u32::from_le_bytes(self.take(4)?.try_into().ok()?);
        Some(Bytes::copy_from_slice(self.take(n as usize)?))
    }
    fn table(&mut self) -> Option<FieldTable> {
        let n = u32::from_be_bytes(self.data.get(..4)?.try_into().ok()?);
        let raw = self.take(4 + n as usize)?;
        FieldTable::decode(raw).ok()
    }
    fn version(&mut self) -> Option<()> {
        (self.u8()? == VERSION).then_some(())
    }
}

fn decode_exchange(c: &mut Cursor) -> Option<(ShortStr, ExchangeRecord)> {
    c.version()?;
    let vhost = c.str()?;
    let name = c.str()?;
    let kind = match c.u8()? {
        0 => ExchangeKind::Direct,
        1 => ExchangeKind::Fanout,
        2 => ExchangeKind::Topic,
        3 => ExchangeKind::Headers,
        _ => return None,
    };
    let auto_delete = c.flag()?;
    let internal = c.flag()?;
    let arguments = c.table()?;
    let record = ExchangeRecord {
        name,
        kind,
        auto_delete,
        internal,
        arguments,
    };
    Some((vhost, record))
}

fn decode_queue(c: &mut Cursor) -> Option<QueueRecord> {
    c.version()?;
    Some(QueueRecord {
        vhost: c.str()?,
        name: c.str()?,
        auto_delete: c.flag()?,
        arguments: c.table()?,
    })
}

fn decode_binding(c: &mut Cursor) -> Option<(ShortStr, BindingRecord)> {
    c.version()?;
    let vhost = c.str()?;
    let record = BindingRecord {
        source: c.str()?,
        destination: c.str()?,
        destination_is_exchange: c.flag()?,
        routing_key: c.str()?,
        arguments: c.table()?,
    };
    Some((vhost, record))
}

fn decode_message(c: &mut Cursor) -> Option<(ShortStr, ShortStr, MessageRecord)> {
    c.version()?;
    let vhost = c.str()?;
    let queue = c.str()?;
    let record = MessageRecord {
        id: c.u64()?,
        exchange: c.str()?,
        routing_key: c.str()?,
        properties: c.blob()?,
        body: c.blob()?,
        delivered: false,
    };
    Some((vhost, queue, record))
}

fn decode_delivered(c: &mut Cursor) -> Option<(ShortStr, ShortStr, u64)> {
    c.version()?;
    Some((c.str()?, c.str()?, c.u64()?))
}

/// Decodes the load format; returns what it could read and how many records it skipped.
pub fn decode_loaded(data: &[u8]) -> (Recovered, u32) {
    let mut out = Recovered::default();
    let mut errors = 0;
    let mut delivered = BTreeSet::new();
    let mut c = Cursor { data };
    while !c.data.is_empty() {
        let (Some(store), Some(value)) = (c.u8(), c.blob()) else {
            // The framing itself is broken: nothing after this point can be trusted.
            errors += 1;
            break;
        };
        let mut r = Cursor { data: &value };
        let ok = match store {
            STORE_EXCHANGES => decode_exchange(&mut r).map(|e| out.exchanges.push(e)),
            STORE_QUEUES => decode_queue(&mut r).map(|q| out.queues.push(q)),
            STORE_BINDINGS => decode_binding(&mut r).map(|b| out.bindings.push(b)),
            STORE_MESSAGES => {
                decode_message(&mut r).map(|(v, q, m)| match out.messages.last_mut() {
                    Some((lv, lq, list)) if *lv == v && *lq == q => list.push(m),
                    _ => out.messages.push((v, q, alloc::vec![m])),
                })
            }
            STORE_DELIVERED => decode_delivered(&mut r).map(|d| {
                delivered.insert(d);
            }),
            _ => None,
        };
        if ok.is_none() {
            errors += 1;
        }
    }
    // Queue order is id order, whatever order the records came in.
    for (vhost, queue, list) in &mut out.messages {
        list.sort_by_key(|m| m.id);
        for m in list.iter_mut() {
            m.delivered = delivered.contains(&(vhost.clone(), queue.clone(), m.id));
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
    let mut c = Cursor { data };
    let mut ops = Vec::new();
    while !c.data.is_empty() {
        let kind = c.u8()?;
        let store = c.u8()?;
        let n = c.u8()?;
        let mut key = Vec::new();
        for _ in 0..n {
            key.push(match c.u8()? {
                1 => KeyPart::Str(String::from(c.str()?.as_str())),
                2 => KeyPart::Num(f64::from_le_bytes(c.take(8)?.try_into().ok()?)),
                3 => KeyPart::Blob(c.blob()?.to_vec()),
                _ => return None,
            });
        }
        ops.push(match kind {
            OP_PUT => Op::Put {
                store,
                key,
                value: c.blob()?.to_vec(),
            },
            OP_DELETE => Op::Delete { store, key },
            OP_DELETE_PREFIX => Op::DeletePrefix { store, key },
            _ => return None,
        });
    }
    Some(ops)
}
