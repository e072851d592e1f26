//! Field tables and field values (AMQP 0-9-1 §4.2.5.5) with RabbitMQ's type tags.
//!
//! RabbitMQ's tags differ from the 0-9-1 spec text for some integer types (see the "AMQP 0-9-1
//! errata" on rabbitmq.com): `s` is a *signed* 16-bit integer, `u` unsigned 16-bit, `I` signed
//! 32-bit, `i` unsigned 32-bit, `l` signed 64-bit; `x` is a byte array. This codec follows
//! RabbitMQ. Decoding keeps wire order and duplicate keys; nesting is limited to
//! [`MAX_TABLE_DEPTH`](super::MAX_TABLE_DEPTH) levels.

use alloc::vec::Vec;

use super::reader::Reader;
use super::writer::{
    begin_u32_len, patch_u32_len, put_longstr, put_shortstr, put_u16, put_u32, put_u64, put_u8,
    shortstr_len,
};
use super::{DecodeError, LongStr, ShortStr};

/// A field table: `(key, value)` pairs in wire order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct FieldTable(pub Vec<(ShortStr, FieldValue)>);

/// A field value, tagged as RabbitMQ tags it on the wire.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldValue {
    /// `t`
    Bool(bool),
    /// `b`
    I8(i8),
    /// `B`
    U8(u8),
    /// `s` (signed, as RabbitMQ)
    I16(i16),
    /// `u`
    U16(u16),
    /// `I`
    I32(i32),
    /// `i`
    U32(u32),
    /// `l`
    I64(i64),
    /// `f`
    F32(f32),
    /// `d`
    F64(f64),
    /// `D`: `value / 10^scale`
    Decimal { scale: u8, value: u32 },
    /// `S`
    LongStr(LongStr),
    /// `A`
    Array(Vec<FieldValue>),
    /// `T`: seconds since the epoch
    Timestamp(u64),
    /// `F`
    Table(FieldTable),
    /// `V`
    Void,
    /// `x`
    Bytes(LongStr),
}

impl FieldTable {
    pub const fn new() -> Self {
        FieldTable(Vec::new())
    }

    /// The first value stored under `key`.
    pub fn get(&self, key: &str) -> Option<&FieldValue> {
        self.0
            .iter()
            .find(|(k, _)| k.as_bytes() == key.as_bytes())
            .map(|(_, v)| v)
    }

    /// Sets `key` to `v`, replacing an existing value in place (keeping its position), else
    /// appending.
    pub fn insert(&mut self, key: impl Into<ShortStr>, v: FieldValue) {
        let key = key.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = v,
            None => self.0.push((key, v)),
        }
    }

    /// Removes and returns the first value stored under `key`.
    pub fn remove(&mut self, key: &str) -> Option<FieldValue> {
        let pos = self
            .0
            .iter()
            .position(|(k, _)| k.as_bytes() == key.as_bytes())?;
        Some(self.0.remove(pos).1)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    pub fn iter(&self) -> impl Iterator<Item = &(ShortStr, FieldValue)> {
        self.0.iter()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Decodes a table (u32 byte length then entries) from the front of `raw`; the bytes
    /// after it are ignored. Strings are copied; see [`FieldTable::decode_bytes`].
    pub fn decode(raw: &[u8]) -> Result<Self, DecodeError> {
        Reader::new(raw).table()
    }

    /// Like [`FieldTable::decode`], but strings share `raw`'s buffer (zero-copy).
    pub fn decode_bytes(raw: &bytes::Bytes) -> Result<Self, DecodeError> {
        Reader::from_bytes(raw).table()
    }

    /// Appends the table: u32 byte length then entries.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let at = begin_u32_len(out);
        for (k, v) in &self.0 {
            put_shortstr(out, k);
            v.encode(out);
        }
        patch_u32_len(out, at);
    }

    /// Bytes [`FieldTable::encode`] writes, length prefix included.
    pub fn encoded_len(&self) -> usize {
        4 + self
            .0
            .iter()
            .map(|(k, v)| shortstr_len(k) + v.encoded_len())
            .sum::<usize>()
    }
}

impl<K: Into<ShortStr>> FromIterator<(K, FieldValue)> for FieldTable {
    fn from_iter<I: IntoIterator<Item = (K, FieldValue)>>(iter: I) -> Self {
        let mut t = FieldTable::new();
        for (k, v) in iter {
            t.insert(k, v);
        }
        t
    }
}

impl<'a> IntoIterator for &'a FieldTable {
    type Item = &'a (ShortStr, FieldValue);
    type IntoIter = core::slice::Iter<'a, (ShortStr, FieldValue)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl FieldValue {
    /// The type tag written on the wire.
    pub fn tag(&self) -> u8 {
        match self {
            FieldValue::Bool(_) => b't',
            FieldValue::I8(_) => b'b',
            FieldValue::U8(_) => b'B',
            FieldValue::I16(_) => b's',
            FieldValue::U16(_) => b'u',
            FieldValue::I32(_) => b'I',
            FieldValue::U32(_) => b'i',
            FieldValue::I64(_) => b'l',
            FieldValue::F32(_) => b'f',
            FieldValue::F64(_) => b'd',
            FieldValue::Decimal { .. } => b'D',
            FieldValue::LongStr(_) => b'S',
            FieldValue::Array(_) => b'A',
            FieldValue::Timestamp(_) => b'T',
            FieldValue::Table(_) => b'F',
            FieldValue::Void => b'V',
            FieldValue::Bytes(_) => b'x',
        }
    }

    /// Appends the tag and the value.
    pub fn encode(&self, out: &mut Vec<u8>) {
        put_u8(out, self.tag());
        match self {
            FieldValue::Bool(b) => put_u8(out, u8::from(*b)),
            FieldValue::I8(v) => put_u8(out, *v as u8),
            FieldValue::U8(v) => put_u8(out, *v),
            FieldValue::I16(v) => put_u16(out, *v as u16),
            FieldValue::U16(v) => put_u16(out, *v),
            FieldValue::I32(v) => put_u32(out, *v as u32),
            FieldValue::U32(v) => put_u32(out, *v),
            FieldValue::I64(v) => put_u64(out, *v as u64),
            FieldValue::F32(v) => put_u32(out, v.to_bits()),
            FieldValue::F64(v) => put_u64(out, v.to_bits()),
            FieldValue::Decimal { scale, value } => {
                put_u8(out, *scale);
                put_u32(out, *value);
            }
            FieldValue::LongStr(s) | FieldValue::Bytes(s) => put_longstr(out, s),
            FieldValue::Array(values) => {
                let at = begin_u32_len(out);
                for v in values {
                    v.encode(out);
                }
                patch_u32_len(out, at);
            }
            FieldValue::Timestamp(t) => put_u64(out, *t),
            FieldValue::Table(t) => t.encode(out),
            FieldValue::Void => {}
        }
    }

    /// Bytes [`FieldValue::encode`] writes, tag included.
    pub fn encoded_len(&self) -> usize {
        1 + match self {
            FieldValue::Bool(_) | FieldValue::I8(_) | FieldValue::U8(_) => 1,
            FieldValue::I16(_) | FieldValue::U16(_) => 2,
            FieldValue::I32(_) | FieldValue::U32(_) | FieldValue::F32(_) => 4,
            FieldValue::I64(_) | FieldValue::F64(_) | FieldValue::Timestamp(_) => 8,
            FieldValue::Decimal { .. } => 5,
            FieldValue::LongStr(s) | FieldValue::Bytes(s) => 4 + s.len(),
            FieldValue::Array(values) => {
                4 + values.iter().map(FieldValue::encoded_len).sum::<usize>()
            }
            FieldValue::Table(t) => t.encoded_len(),
            FieldValue::Void => 0,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            FieldValue::Bool(b) => Some(*b),
            _ => None,
        }
    }

    /// Any integer type, widened to i64 (`None` for u64-range values that do not fit, and for
    /// non-integers).
    pub fn as_i64(&self) -> Option<i64> {
        Some(match self {
            FieldValue::I8(v) => i64::from(*v),
            FieldValue::U8(v) => i64::from(*v),
            FieldValue::I16(v) => i64::from(*v),
            FieldValue::U16(v) => i64::from(*v),
            FieldValue::I32(v) => i64::from(*v),
            FieldValue::U32(v) => i64::from(*v),
            FieldValue::I64(v) => *v,
            FieldValue::Timestamp(v) => i64::try_from(*v).ok()?,
            _ => return None,
        })
    }

    /// The bytes of a longstr (`S`) or byte array (`x`).
    pub fn as_long_bytes(&self) -> Option<&[u8]> {
        match self {
            FieldValue::LongStr(s) | FieldValue::Bytes(s) => Some(s.as_bytes()),
            _ => None,
        }
    }

    /// A longstr (`S`) that is UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            FieldValue::LongStr(s) => s.as_str(),
            _ => None,
        }
    }

    pub fn as_table(&self) -> Option<&FieldTable> {
        match self {
            FieldValue::Table(t) => Some(t),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[FieldValue]> {
        match self {
            FieldValue::Array(a) => Some(a),
            _ => None,
        }
    }
}

impl From<bool> for FieldValue {
    fn from(v: bool) -> Self {
        FieldValue::Bool(v)
    }
}
impl From<i8> for FieldValue {
    fn from(v: i8) -> Self {
        FieldValue::I8(v)
    }
}
impl From<u8> for FieldValue {
    fn from(v: u8) -> Self {
        FieldValue::U8(v)
    }
}
impl From<i16> for FieldValue {
    fn from(v: i16) -> Self {
        FieldValue::I16(v)
    }
}
impl From<u16> for FieldValue {
    fn from(v: u16) -> Self {
        FieldValue::U16(v)
    }
}
impl From<i32> for FieldValue {
    fn from(v: i32) -> Self {
        FieldValue::I32(v)
    }
}
impl From<u32> for FieldValue {
    fn from(v: u32) -> Self {
        FieldValue::U32(v)
    }
}
impl From<i64> for FieldValue {
    fn from(v: i64) -> Self {
        FieldValue::I64(v)
    }
}
impl From<f32> for FieldValue {
    fn from(v: f32) -> Self {
        FieldValue::F32(v)
    }
}
impl From<f64> for FieldValue {
    fn from(v: f64) -> Self {
        FieldValue::F64(v)
    }
}
impl From<&str> for FieldValue {
    fn from(v: &str) -> Self {
        FieldValue::LongStr(LongStr::from(v))
    }
}
impl From<alloc::string::String> for FieldValue {
    fn from(v: alloc::string::String) -> Self {
        FieldValue::LongStr(LongStr::from(v))
    }
}
impl From<LongStr> for FieldValue {
    fn from(v: LongStr) -> Self {
        FieldValue::LongStr(v)
    }
}
impl From<FieldTable> for FieldValue {
    fn from(v: FieldTable) -> Self {
        FieldValue::Table(v)
    }
}
impl From<Vec<FieldValue>> for FieldValue {
    fn from(v: Vec<FieldValue>) -> Self {
        FieldValue::Array(v)
    }
}
