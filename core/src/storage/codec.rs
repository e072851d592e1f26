//! Storage records as bytes: one format for every store (the browser's IndexedDB journal, the
//! native disk store), so a record written by one is read by the others.
//!
//! Little-endian; `str` = u16 length + UTF-8, `blob` = u32 length + bytes, `table` = an AMQP
//! field table as on the wire (u32 big-endian length, then entries). Every record starts with
//! its format version, [`VERSION`]:
//! - exchange: `1 vhost:str name:str kind:u8 auto_delete:u8 internal:u8 arguments:table`
//!   (kind 0 direct, 1 fanout, 2 topic, 3 headers)
//! - queue: `1 vhost:str name:str auto_delete:u8 arguments:table`
//! - binding: `1 vhost:str source:str destination:str to_exchange:u8 key:str arguments:table`
//! - message: `1 vhost:str queue:str id:u64 exchange:str key:str properties:blob body:blob`
//! - delivered marker: `1 vhost:str queue:str id:u64` (the message went out unacked at least
//!   once, so after a restart it comes back `redelivered`; kept apart from the message so
//!   that marking one never rewrites its body); a log-structured store writes an ack (the
//!   message is gone) in the same shape
//! - name: `1 vhost:str name:str` (a log-structured store's deletion of an exchange or queue;
//!   of a user's permissions, `user:str vhost:str`)
//! - vhost: `1 name:str`
//! - user: `1 name:str hashing:u8 hash:blob tags:u8 (tag:str)*` (hashing 0 SHA-256, 1 SHA-512)
//! - permission: `1 user:str vhost:str configure:str write:str read:str`
//!
//! Decoding checks every length: bad bytes are a [`BadRecord`], never a panic.

use alloc::vec::Vec;

use bytes::Bytes;

use super::records::{
    BindingRecord, ExchangeRecord, MessageRecord, PermissionRecord, QueueRecord, UserRecord,
};
use crate::access::Hashing;
use crate::codec::{FieldTable, ShortStr};
use crate::exchange_kind::ExchangeKind;

/// The record format version, each record's first byte.
pub const VERSION: u8 = 1;

/// Bytes that are not a record of the expected kind (truncated, wrong version, bad UTF-8, an
/// unknown exchange kind, a field table that does not decode).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BadRecord;

impl core::fmt::Display for BadRecord {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("malformed storage record")
    }
}

pub fn encode_exchange(out: &mut Vec<u8>, vhost: &str, r: &ExchangeRecord) {
    out.push(VERSION);
    put_str(out, vhost);
    put_str(out, &r.name);
    out.push(kind_code(r.kind));
    out.push(u8::from(r.auto_delete));
    out.push(u8::from(r.internal));
    r.arguments.encode(out);
}

pub fn encode_queue(out: &mut Vec<u8>, r: &QueueRecord) {
    out.push(VERSION);
    put_str(out, &r.vhost);
    put_str(out, &r.name);
    out.push(u8::from(r.auto_delete));
    r.arguments.encode(out);
}

pub fn encode_binding(out: &mut Vec<u8>, vhost: &str, r: &BindingRecord) {
    out.push(VERSION);
    put_str(out, vhost);
    put_str(out, &r.source);
    put_str(out, &r.destination);
    out.push(u8::from(r.destination_is_exchange));
    put_str(out, &r.routing_key);
    r.arguments.encode(out);
}

/// A message record (its `delivered` flag is a marker of its own: [`encode_delivered`]).
pub fn encode_message(out: &mut Vec<u8>, vhost: &str, queue: &str, r: &MessageRecord) {
    out.reserve(32 + r.properties.len() + r.body.len());
    out.push(VERSION);
    put_str(out, vhost);
    put_str(out, queue);
    out.extend_from_slice(&r.id.to_le_bytes());
    put_str(out, &r.exchange);
    put_str(out, &r.routing_key);
    put_blob(out, &r.properties);
    put_blob(out, &r.body);
}

pub fn encode_delivered(out: &mut Vec<u8>, vhost: &str, queue: &str, id: u64) {
    out.push(VERSION);
    put_str(out, vhost);
    put_str(out, queue);
    out.extend_from_slice(&id.to_le_bytes());
}

/// A vhost and an entity's name (what a log records when an exchange or queue is deleted).
pub fn encode_name(out: &mut Vec<u8>, vhost: &str, name: &str) {
    out.push(VERSION);
    put_str(out, vhost);
    put_str(out, name);
}

pub fn decode_name(bytes: &[u8]) -> Result<(ShortStr, ShortStr), BadRecord> {
    let mut r = Reader::new(bytes);
    r.version()?;
    let name = (r.str()?, r.str()?);
    r.end()?;
    Ok(name)
}

/// An exchange record and its vhost.
pub fn decode_exchange(bytes: &[u8]) -> Result<(ShortStr, ExchangeRecord), BadRecord> {
    let mut r = Reader::new(bytes);
    r.version()?;
    let vhost = r.str()?;
    let name = r.str()?;
    let kind = match r.u8()? {
        0 => ExchangeKind::Direct,
        1 => ExchangeKind::Fanout,
        2 => ExchangeKind::Topic,
        3 => ExchangeKind::Headers,
        _ => return Err(BadRecord),
    };
    let record = ExchangeRecord {
        name,
        kind,
        auto_delete: r.flag()?,
        internal: r.flag()?,
        arguments: r.table()?,
    };
    r.end()?;
    Ok((vhost, record))
}

pub fn decode_queue(bytes: &[u8]) -> Result<QueueRecord, BadRecord> {
    let mut r = Reader::new(bytes);
    r.version()?;
    let record = QueueRecord {
        vhost: r.str()?,
        name: r.str()?,
        auto_delete: r.flag()?,
        arguments: r.table()?,
    };
    r.end()?;
    Ok(record)
}

/// A binding record and its vhost.
pub fn decode_binding(bytes: &[u8]) -> Result<(ShortStr, BindingRecord), BadRecord> {
    let mut r = Reader::new(bytes);
    r.version()?;
    let vhost = r.str()?;
    let record = BindingRecord {
        source: r.str()?,
        destination: r.str()?,
        destination_is_exchange: r.flag()?,
        routing_key: r.str()?,
        arguments: r.table()?,
    };
    r.end()?;
    Ok((vhost, record))
}

/// A message record with its vhost and queue (`delivered` false: see [`decode_delivered`]).
pub fn decode_message(bytes: &[u8]) -> Result<(ShortStr, ShortStr, MessageRecord), BadRecord> {
    let mut r = Reader::new(bytes);
    r.version()?;
    let vhost = r.str()?;
    let queue = r.str()?;
    let id = r.u64()?;
    let exchange = r.str()?;
    let routing_key = r.str()?;
    let properties = r.blob_slice()?;
    let body = r.blob_slice()?;
    r.end()?;
    // One allocation for both: a recovered backlog is millions of these.
    let mut both = Vec::with_capacity(properties.len() + body.len());
    both.extend_from_slice(properties);
    both.extend_from_slice(body);
    let mut body = Bytes::from(both);
    let properties = body.split_to(properties.len());
    let record = MessageRecord {
        id,
        exchange,
        routing_key,
        properties,
        body,
        deliveries: 0,
        paged_only: false,
    };
    Ok((vhost, queue, record))
}

/// What a store needs to know of a message record without copying it: whose it is, its id,
/// its body's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MessageKey<'a> {
    pub vhost: &'a str,
    pub queue: &'a str,
    pub id: u64,
    pub body_len: usize,
}

/// Reads a message record's [`MessageKey`], checking the whole record's shape as
/// [`decode_message`] does, without allocating.
pub fn peek_message(bytes: &[u8]) -> Result<MessageKey<'_>, BadRecord> {
    let mut r = Reader::new(bytes);
    r.version()?;
    let vhost = r.str_slice()?;
    let queue = r.str_slice()?;
    let id = r.u64()?;
    r.str_slice()?;
    r.str_slice()?;
    r.blob_slice()?;
    let body_len = r.blob_slice()?.len();
    r.end()?;
    Ok(MessageKey {
        vhost,
        queue,
        id,
        body_len,
    })
}

/// A delivered marker: (vhost, queue, message id).
pub fn decode_delivered(bytes: &[u8]) -> Result<(ShortStr, ShortStr, u64), BadRecord> {
    let mut r = Reader::new(bytes);
    r.version()?;
    let marker = (r.str()?, r.str()?, r.u64()?);
    r.end()?;
    Ok(marker)
}

pub fn encode_vhost(out: &mut Vec<u8>, name: &str) {
    out.push(VERSION);
    put_str(out, name);
}

pub fn decode_vhost(bytes: &[u8]) -> Result<ShortStr, BadRecord> {
    let mut r = Reader::new(bytes);
    r.version()?;
    let name = r.str()?;
    r.end()?;
    Ok(name)
}

pub fn encode_user(out: &mut Vec<u8>, u: &UserRecord) {
    out.push(VERSION);
    put_str(out, &u.name);
    out.push(match u.hashing {
        Hashing::Sha256 => 0,
        Hashing::Sha512 => 1,
    });
    put_blob(out, &u.password_hash);
    let tags = &u.tags[..u.tags.len().min(255)];
    out.push(tags.len() as u8);
    for t in tags {
        put_str(out, t);
    }
}

pub fn decode_user(bytes: &[u8]) -> Result<UserRecord, BadRecord> {
    let mut r = Reader::new(bytes);
    r.version()?;
    let name = r.str()?;
    let hashing = match r.u8()? {
        0 => Hashing::Sha256,
        1 => Hashing::Sha512,
        _ => return Err(BadRecord),
    };
    let password_hash = r.blob_slice()?.to_vec();
    let mut tags = Vec::new();
    for _ in 0..r.u8()? {
        tags.push(r.str()?);
    }
    r.end()?;
    Ok(UserRecord {
        name,
        hashing,
        password_hash,
        tags,
    })
}

pub fn encode_permission(out: &mut Vec<u8>, p: &PermissionRecord) {
    out.push(VERSION);
    for s in [&*p.user, &*p.vhost, &p.configure, &p.write, &p.read] {
        put_str(out, s);
    }
}

pub fn decode_permission(bytes: &[u8]) -> Result<PermissionRecord, BadRecord> {
    let mut r = Reader::new(bytes);
    r.version()?;
    let p = PermissionRecord {
        user: r.str()?,
        vhost: r.str()?,
        configure: r.str_slice()?.into(),
        write: r.str_slice()?.into(),
        read: r.str_slice()?.into(),
    };
    r.end()?;
    Ok(p)
}

/// Appends a `str`: u16 length, then the bytes (cut at 65535; names are at most 255).
pub fn put_str(out: &mut Vec<u8>, s: &str) {
    let len = s.len().min(usize::from(u16::MAX));
    out.extend_from_slice(&(len as u16).to_le_bytes());
    out.extend_from_slice(&s.as_bytes()[..len]);
}

/// Appends a `blob`: u32 length, then the bytes.
pub fn put_blob(out: &mut Vec<u8>, b: &[u8]) {
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

/// Reads the parts records are made of; every read is bounds-checked. Stores use it for their
/// own framing around records too.
pub struct Reader<'a> {
    data: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Reader { data }
    }

    /// What is left to read.
    pub fn rest(&self) -> &'a [u8] {
        self.data
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn take(&mut self, n: usize) -> Result<&'a [u8], BadRecord> {
        if self.data.len() < n {
            return Err(BadRecord);
        }
        let (head, rest) = self.data.split_at(n);
        self.data = rest;
        Ok(head)
    }

    pub fn u8(&mut self) -> Result<u8, BadRecord> {
        Ok(self.take(1)?[0])
    }

    pub fn flag(&mut self) -> Result<bool, BadRecord> {
        Ok(self.u8()? != 0)
    }

    pub fn u64(&mut self) -> Result<u64, BadRecord> {
        let b = self.take(8)?;
        Ok(u64::from_le_bytes(b.try_into().map_err(|_| BadRecord)?))
    }

    pub fn f64(&mut self) -> Result<f64, BadRecord> {
        let b = self.take(8)?;
        Ok(f64::from_le_bytes(b.try_into().map_err(|_| BadRecord)?))
    }

    pub fn str(&mut self) -> Result<ShortStr, BadRecord> {
        let n = u16::from_le_bytes(self.take(2)?.try_into().map_err(|_| BadRecord)?);
        let s = core::str::from_utf8(self.take(usize::from(n))?).map_err(|_| BadRecord)?;
        Ok(ShortStr::from(s))
    }

    /// A `str`, borrowed.
    pub fn str_slice(&mut self) -> Result<&'a str, BadRecord> {
        let n = u16::from_le_bytes(self.take(2)?.try_into().map_err(|_| BadRecord)?);
        core::str::from_utf8(self.take(usize::from(n))?).map_err(|_| BadRecord)
    }

    pub fn blob(&mut self) -> Result<Bytes, BadRecord> {
        Ok(Bytes::copy_from_slice(self.blob_slice()?))
    }

    /// A `blob`, borrowed.
    pub fn blob_slice(&mut self) -> Result<&'a [u8], BadRecord> {
        let n = u32::from_le_bytes(self.take(4)?.try_into().map_err(|_| BadRecord)?);
        self.take(n as usize)
    }

    pub fn table(&mut self) -> Result<FieldTable, BadRecord> {
        let head = self.data.get(..4).ok_or(BadRecord)?;
        let n = u32::from_be_bytes(head.try_into().map_err(|_| BadRecord)?);
        let raw = self.take(4usize.saturating_add(n as usize))?;
        FieldTable::decode(raw).map_err(|_| BadRecord)
    }

    fn version(&mut self) -> Result<(), BadRecord> {
        if self.u8()? == VERSION {
            Ok(())
        } else {
            Err(BadRecord)
        }
    }

    /// A record is all of its bytes: anything after it means it is not what we think.
    fn end(&self) -> Result<(), BadRecord> {
        if self.data.is_empty() {
            Ok(())
        } else {
            Err(BadRecord)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::FieldValue;

    fn args() -> FieldTable {
        let mut t = FieldTable::default();
        t.insert("x-max-length", FieldValue::I32(10));
        t.insert("x-dead-letter-exchange", FieldValue::LongStr("dlx".into()));
        t
    }

    fn message() -> MessageRecord {
        MessageRecord {
            id: 0x0102_0304_0506_0708,
            exchange: "amq.topic".into(),
            routing_key: "a.b".into(),
            properties: Bytes::from_static(&[0x90, 0, 2]),
            body: Bytes::from_static(b"hello"),
            deliveries: 0,
            paged_only: false,
        }
    }

    /// Whether bytes decode as one kind of record.
    type Decodes = fn(&[u8]) -> bool;

    /// Every encoding of this module, each with the decoder that must read it back.
    fn samples() -> Vec<(Vec<u8>, Decodes)> {
        let mut out = Vec::new();
        let ex = ExchangeRecord {
            name: "logs".into(),
            kind: ExchangeKind::Topic,
            auto_delete: true,
            internal: false,
            arguments: args(),
        };
        let mut b = Vec::new();
        encode_exchange(&mut b, "/v", &ex);
        out.push((
            b,
            (|d: &[u8]| decode_exchange(d).is_ok()) as fn(&[u8]) -> bool,
        ));
        let q = QueueRecord {
            vhost: "/v".into(),
            name: "jobs".into(),
            auto_delete: false,
            arguments: args(),
        };
        let mut b = Vec::new();
        encode_queue(&mut b, &q);
        out.push((b, |d: &[u8]| decode_queue(d).is_ok()));
        let bind = BindingRecord {
            source: "logs".into(),
            destination: "jobs".into(),
            destination_is_exchange: false,
            routing_key: "#".into(),
            arguments: args(),
        };
        let mut b = Vec::new();
        encode_binding(&mut b, "/v", &bind);
        out.push((b, |d: &[u8]| decode_binding(d).is_ok()));
        let mut b = Vec::new();
        encode_message(&mut b, "/v", "jobs", &message());
        out.push((b, |d: &[u8]| decode_message(d).is_ok()));
        let mut b = Vec::new();
        encode_delivered(&mut b, "/v", "jobs", 7);
        out.push((b, |d: &[u8]| decode_delivered(d).is_ok()));
        let mut b = Vec::new();
        encode_name(&mut b, "/v", "jobs");
        out.push((b, |d: &[u8]| decode_name(d).is_ok()));
        let mut b = Vec::new();
        encode_vhost(&mut b, "/v");
        out.push((b, |d: &[u8]| decode_vhost(d).is_ok()));
        let user = UserRecord {
            name: "u".into(),
            hashing: Hashing::Sha512,
            password_hash: alloc::vec![9; 68],
            tags: alloc::vec!["administrator".into(), "monitoring".into()],
        };
        let mut b = Vec::new();
        encode_user(&mut b, &user);
        assert_eq!(decode_user(&b), Ok(user));
        out.push((b, |d: &[u8]| decode_user(d).is_ok()));
        let p = PermissionRecord {
            user: "u".into(),
            vhost: "/v".into(),
            configure: "^app-.*".into(),
            write: "".into(),
            read: ".*".into(),
        };
        let mut b = Vec::new();
        encode_permission(&mut b, &p);
        assert_eq!(decode_permission(&b), Ok(p));
        out.push((b, |d: &[u8]| decode_permission(d).is_ok()));
        out
    }

    #[test]
    fn every_record_reads_back_as_written() {
        let ex = ExchangeRecord {
            name: "logs".into(),
            kind: ExchangeKind::Headers,
            auto_delete: false,
            internal: true,
            arguments: args(),
        };
        let mut b = Vec::new();
        encode_exchange(&mut b, "/", &ex);
        assert_eq!(decode_exchange(&b), Ok(("/".into(), ex)));

        let q = QueueRecord {
            vhost: "/".into(),
            name: "q".into(),
            auto_delete: true,
            arguments: args(),
        };
        let mut b = Vec::new();
        encode_queue(&mut b, &q);
        assert_eq!(decode_queue(&b), Ok(q));

        let bind = BindingRecord {
            source: "x".into(),
            destination: "y".into(),
            destination_is_exchange: true,
            routing_key: "k".into(),
            arguments: FieldTable::default(),
        };
        let mut b = Vec::new();
        encode_binding(&mut b, "/", &bind);
        assert_eq!(decode_binding(&b), Ok(("/".into(), bind)));

        let mut b = Vec::new();
        encode_message(&mut b, "/", "q", &message());
        assert_eq!(decode_message(&b), Ok(("/".into(), "q".into(), message())));

        let mut b = Vec::new();
        encode_delivered(&mut b, "/", "q", 42);
        assert_eq!(decode_delivered(&b), Ok(("/".into(), "q".into(), 42)));

        let mut b = Vec::new();
        encode_name(&mut b, "/", "q");
        assert_eq!(decode_name(&b), Ok(("/".into(), "q".into())));
    }

    #[test]
    fn the_message_format_is_the_one_the_browser_journal_wrote() {
        // Byte for byte what warren-wasm 0.1 stored in IndexedDB: those records must load.
        let mut b = Vec::new();
        encode_delivered(&mut b, "/", "q", 1);
        assert_eq!(b, [1, 1, 0, b'/', 1, 0, b'q', 1, 0, 0, 0, 0, 0, 0, 0]);
        let mut b = Vec::new();
        let m = MessageRecord {
            id: 2,
            exchange: "".into(),
            routing_key: "q".into(),
            properties: Bytes::from_static(&[0, 0]),
            body: Bytes::from_static(b"hi"),
            deliveries: 0,
            paged_only: false,
        };
        encode_message(&mut b, "/", "q", &m);
        let want: &[u8] = &[
            1, 1, 0, b'/', 1, 0, b'q', 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, b'q', 2, 0, 0, 0, 0, 0,
            2, 0, 0, 0, b'h', b'i',
        ];
        assert_eq!(b, want);
    }

    #[test]
    fn truncated_or_extended_records_are_refused_without_panicking() {
        for (bytes, decodes) in samples() {
            assert!(decodes(&bytes));
            for cut in 0..bytes.len() {
                assert!(
                    !decodes(&bytes[..cut]),
                    "a record cut at {cut} was accepted"
                );
            }
            let mut longer = bytes.clone();
            longer.push(0);
            assert!(!decodes(&longer), "trailing bytes were accepted");
            let mut other_version = bytes.clone();
            other_version[0] = 2;
            assert!(!decodes(&other_version), "an unknown version was accepted");
        }
    }
}
