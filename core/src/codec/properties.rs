//! Basic content properties (AMQP 0-9-1 §4.2.6.1 and the basic class's `<field>` list).
//!
//! On the wire: 16-bit property-flag words, then the present properties in order. In each flag
//! word bit 0 is the continuation bit (another flag word follows); the first word's bits 15..2
//! name the 14 basic properties, highest bit first. Property bits this codec does not know
//! (bit 1, or any bit of a continuation word) make the list undecodable, since their sizes are
//! unknown: that is [`DecodeError::UnknownProperty`].
//!
//! The broker keeps properties raw ([`ContentHeader::properties`](super::ContentHeader)) and
//! only looks inside when it must; the `peek_*` functions do so without allocating.

use alloc::vec::Vec;

use bytes::Bytes;

use super::reader::Reader;
use super::table::FieldTable;
use super::writer::{put_shortstr, put_table, put_u16, put_u64, put_u8, shortstr_len};
use super::{DecodeError, ShortStr};

/// Flag bit of each property in the first property-flags word.
pub mod flags {
    pub const CONTENT_TYPE: u16 = 1 << 15;
    pub const CONTENT_ENCODING: u16 = 1 << 14;
    pub const HEADERS: u16 = 1 << 13;
    pub const DELIVERY_MODE: u16 = 1 << 12;
    pub const PRIORITY: u16 = 1 << 11;
    pub const CORRELATION_ID: u16 = 1 << 10;
    pub const REPLY_TO: u16 = 1 << 9;
    pub const EXPIRATION: u16 = 1 << 8;
    pub const MESSAGE_ID: u16 = 1 << 7;
    pub const TIMESTAMP: u16 = 1 << 6;
    pub const TYPE: u16 = 1 << 5;
    pub const USER_ID: u16 = 1 << 4;
    pub const APP_ID: u16 = 1 << 3;
    pub const CLUSTER_ID: u16 = 1 << 2;
    /// Another flags word follows.
    pub const CONTINUATION: u16 = 1;
}

/// The 14 properties of class basic. `None` = flag clear, property absent.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BasicProperties {
    pub content_type: Option<ShortStr>,
    pub content_encoding: Option<ShortStr>,
    pub headers: Option<FieldTable>,
    /// 1 = transient, 2 = persistent.
    pub delivery_mode: Option<u8>,
    pub priority: Option<u8>,
    pub correlation_id: Option<ShortStr>,
    pub reply_to: Option<ShortStr>,
    /// Per-message TTL in milliseconds, as a decimal string (RabbitMQ).
    pub expiration: Option<ShortStr>,
    pub message_id: Option<ShortStr>,
    pub timestamp: Option<u64>,
    /// The `type` property.
    pub kind: Option<ShortStr>,
    pub user_id: Option<ShortStr>,
    pub app_id: Option<ShortStr>,
    /// The spec's `reserved` (formerly cluster-id).
    pub cluster_id: Option<ShortStr>,
}

/// Reads the flag words; returns the first word with the continuation bit cleared.
fn read_flags(r: &mut Reader<'_>) -> Result<u16, DecodeError> {
    let first = r.u16()?;
    if first & 0b10 != 0 {
        return Err(DecodeError::UnknownProperty);
    }
    let mut more = first & flags::CONTINUATION != 0;
    while more {
        let word = r.u16()?;
        if word & !flags::CONTINUATION != 0 {
            return Err(DecodeError::UnknownProperty);
        }
        more = word & flags::CONTINUATION != 0;
    }
    Ok(first & !flags::CONTINUATION)
}

impl BasicProperties {
    /// Decodes property flags + property list. Strings are copied; see
    /// [`BasicProperties::decode_bytes`] for the zero-copy form.
    pub fn decode(raw: &[u8]) -> Result<Self, DecodeError> {
        Self::decode_from(Reader::new(raw))
    }

    /// Like [`BasicProperties::decode`], but strings share `raw`'s buffer (zero-copy).
    pub fn decode_bytes(raw: &Bytes) -> Result<Self, DecodeError> {
        Self::decode_from(Reader::from_bytes(raw))
    }

    fn decode_from(mut r: Reader<'_>) -> Result<Self, DecodeError> {
        let f = read_flags(&mut r)?;
        let has = |bit: u16| f & bit != 0;
        let mut p = BasicProperties::default();
        if has(flags::CONTENT_TYPE) {
            p.content_type = Some(r.shortstr()?);
        }
        if has(flags::CONTENT_ENCODING) {
            p.content_encoding = Some(r.shortstr()?);
        }
        if has(flags::HEADERS) {
            p.headers = Some(r.table()?);
        }
        if has(flags::DELIVERY_MODE) {
            p.delivery_mode = Some(r.u8()?);
        }
        if has(flags::PRIORITY) {
            p.priority = Some(r.u8()?);
        }
        if has(flags::CORRELATION_ID) {
            p.correlation_id = Some(r.shortstr()?);
        }
        if has(flags::REPLY_TO) {
            p.reply_to = Some(r.shortstr()?);
        }
        if has(flags::EXPIRATION) {
            p.expiration = Some(r.shortstr()?);
        }
        if has(flags::MESSAGE_ID) {
            p.message_id = Some(r.shortstr()?);
        }
        if has(flags::TIMESTAMP) {
            p.timestamp = Some(r.u64()?);
        }
        if has(flags::TYPE) {
            p.kind = Some(r.shortstr()?);
        }
        if has(flags::USER_ID) {
            p.user_id = Some(r.shortstr()?);
        }
        if has(flags::APP_ID) {
            p.app_id = Some(r.shortstr()?);
        }
        if has(flags::CLUSTER_ID) {
            p.cluster_id = Some(r.shortstr()?);
        }
        if !r.is_empty() {
            return Err(DecodeError::TrailingBytes);
        }
        Ok(p)
    }

    /// The property-flags word this value encodes to.
    pub fn flags(&self) -> u16 {
        let mut f = 0;
        let mut set = |present: bool, bit: u16| {
            if present {
                f |= bit;
            }
        };
        set(self.content_type.is_some(), flags::CONTENT_TYPE);
        set(self.content_encoding.is_some(), flags::CONTENT_ENCODING);
        set(self.headers.is_some(), flags::HEADERS);
        set(self.delivery_mode.is_some(), flags::DELIVERY_MODE);
        set(self.priority.is_some(), flags::PRIORITY);
        set(self.correlation_id.is_some(), flags::CORRELATION_ID);
        set(self.reply_to.is_some(), flags::REPLY_TO);
        set(self.expiration.is_some(), flags::EXPIRATION);
        set(self.message_id.is_some(), flags::MESSAGE_ID);
        set(self.timestamp.is_some(), flags::TIMESTAMP);
        set(self.kind.is_some(), flags::TYPE);
        set(self.user_id.is_some(), flags::USER_ID);
        set(self.app_id.is_some(), flags::APP_ID);
        set(self.cluster_id.is_some(), flags::CLUSTER_ID);
        f
    }

    /// Appends property flags + property list.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.reserve(self.encoded_len());
        put_u16(out, self.flags());
        let s = |out: &mut Vec<u8>, v: &Option<ShortStr>| {
            if let Some(v) = v {
                put_shortstr(out, v);
            }
        };
        s(out, &self.content_type);
        s(out, &self.content_encoding);
        if let Some(h) = &self.headers {
            put_table(out, h);
        }
        if let Some(v) = self.delivery_mode {
            put_u8(out, v);
        }
        if let Some(v) = self.priority {
            put_u8(out, v);
        }
        s(out, &self.correlation_id);
        s(out, &self.reply_to);
        s(out, &self.expiration);
        s(out, &self.message_id);
        if let Some(v) = self.timestamp {
            put_u64(out, v);
        }
        s(out, &self.kind);
        s(out, &self.user_id);
        s(out, &self.app_id);
        s(out, &self.cluster_id);
    }

    /// Bytes [`BasicProperties::encode`] writes.
    pub fn encoded_len(&self) -> usize {
        let s = |v: &Option<ShortStr>| v.as_ref().map_or(0, shortstr_len);
        2 + s(&self.content_type)
            + s(&self.content_encoding)
            + self.headers.as_ref().map_or(0, FieldTable::encoded_len)
            + usize::from(self.delivery_mode.is_some())
            + usize::from(self.priority.is_some())
            + s(&self.correlation_id)
            + s(&self.reply_to)
            + s(&self.expiration)
            + s(&self.message_id)
            + if self.timestamp.is_some() { 8 } else { 0 }
            + s(&self.kind)
            + s(&self.user_id)
            + s(&self.app_id)
            + s(&self.cluster_id)
    }

    /// The encoded form as `Bytes`, as kept in [`ContentHeader::properties`](super::ContentHeader).
    pub fn to_bytes(&self) -> Bytes {
        let mut v = Vec::with_capacity(self.encoded_len());
        self.encode(&mut v);
        Bytes::from(v)
    }

    /// True if delivery mode is 2 (persistent).
    pub fn is_persistent(&self) -> bool {
        self.delivery_mode == Some(2)
    }
}

/// Positions a reader on property `bit` (one of [`flags`]) if present, skipping the earlier
/// ones without allocating. `Ok(None)` if the flag is clear.
fn seek<'a>(raw: &'a [u8], bit: u16) -> Result<Option<Reader<'a>>, DecodeError> {
    let mut r = Reader::new(raw);
    let f = read_flags(&mut r)?;
    if f & bit == 0 {
        return Ok(None);
    }
    let mut b = flags::CONTENT_TYPE;
    while b > bit {
        if f & b != 0 {
            match b {
                flags::HEADERS => r.skip_long()?,
                flags::DELIVERY_MODE | flags::PRIORITY => r.skip(1)?,
                flags::TIMESTAMP => r.skip(8)?,
                _ => r.skip_shortstr()?,
            }
        }
        b >>= 1;
    }
    Ok(Some(r))
}

/// Checks that property flags + property list are well formed, as a publish's content header
/// must be before its message goes anywhere: every flagged property is there, the headers
/// table is one (known value types), and nothing follows the last. Does not allocate.
pub fn check_properties(raw: &[u8]) -> Result<(), DecodeError> {
    let mut r = Reader::new(raw);
    let f = read_flags(&mut r)?;
    let mut b = flags::CONTENT_TYPE;
    while b != 0 {
        if f & b != 0 {
            match b {
                flags::HEADERS => r.check_table(0)?,
                flags::DELIVERY_MODE | flags::PRIORITY => r.skip(1)?,
                flags::TIMESTAMP => r.skip(8)?,
                _ => r.skip_shortstr()?,
            }
        }
        b >>= 1;
    }
    if !r.is_empty() {
        return Err(DecodeError::TrailingBytes);
    }
    Ok(())
}

/// The delivery mode (1 transient, 2 persistent), if set. Does not allocate.
pub fn peek_delivery_mode(raw: &[u8]) -> Result<Option<u8>, DecodeError> {
    match seek(raw, flags::DELIVERY_MODE)? {
        Some(mut r) => r.u8().map(Some),
        None => Ok(None),
    }
}

/// The priority, if set. Does not allocate.
pub fn peek_priority(raw: &[u8]) -> Result<Option<u8>, DecodeError> {
    match seek(raw, flags::PRIORITY)? {
        Some(mut r) => r.u8().map(Some),
        None => Ok(None),
    }
}

/// A shortstr property, borrowed from `raw`.
fn peek_str(raw: &[u8], bit: u16) -> Result<Option<&str>, DecodeError> {
    match seek(raw, bit)? {
        Some(mut r) => {
            let len = usize::from(r.u8()?);
            let s = r.take(len)?;
            core::str::from_utf8(s)
                .map(Some)
                .map_err(|_| DecodeError::InvalidUtf8)
        }
        None => Ok(None),
    }
}

/// The expiration (per-message TTL string), if set, borrowed from `raw`. Does not allocate.
pub fn peek_expiration(raw: &[u8]) -> Result<Option<&str>, DecodeError> {
    peek_str(raw, flags::EXPIRATION)
}

/// The user-id (checked by RabbitMQ against the connection's user), if set, borrowed from
/// `raw`. Does not allocate.
pub fn peek_user_id(raw: &[u8]) -> Result<Option<&str>, DecodeError> {
    peek_str(raw, flags::USER_ID)
}

/// The headers table, if set. Skips content-type and content-encoding without allocating;
/// only the table itself is built.
pub fn peek_headers(raw: &[u8]) -> Result<Option<FieldTable>, DecodeError> {
    match seek(raw, flags::HEADERS)? {
        Some(mut r) => r.table().map(Some),
        None => Ok(None),
    }
}
