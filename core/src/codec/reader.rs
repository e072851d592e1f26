//! Bounds-checked big-endian reader over a byte slice. Every read returns
//! `Err(DecodeError::Truncated)` instead of panicking when input runs out.

use bytes::Bytes;

use super::table::{FieldTable, FieldValue};
use super::{DecodeError, LongStr, ShortStr};

pub(crate) struct Reader<'a> {
    data: &'a [u8],
    /// The `Bytes` that `data` was taken from, if any: strings are then sliced out of it
    /// (zero-copy) instead of copied.
    src: Option<&'a Bytes>,
}

impl<'a> Reader<'a> {
    #[inline]
    pub(crate) fn new(data: &'a [u8]) -> Self {
        Reader { data, src: None }
    }

    #[inline]
    pub(crate) fn from_bytes(src: &'a Bytes) -> Self {
        Reader {
            data: src.as_ref(),
            src: Some(src),
        }
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    #[inline]
    pub(crate) fn remaining(&self) -> usize {
        self.data.len()
    }

    #[inline]
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let (head, rest) = self
            .data
            .split_at_checked(n)
            .ok_or(DecodeError::Truncated)?;
        self.data = rest;
        Ok(head)
    }

    #[inline]
    pub(crate) fn skip(&mut self, n: usize) -> Result<(), DecodeError> {
        self.take(n).map(|_| ())
    }

    #[inline]
    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let (head, rest) = self
            .data
            .split_first_chunk::<N>()
            .ok_or(DecodeError::Truncated)?;
        self.data = rest;
        Ok(*head)
    }

    #[inline]
    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        let (&b, rest) = self.data.split_first().ok_or(DecodeError::Truncated)?;
        self.data = rest;
        Ok(b)
    }

    #[inline]
    pub(crate) fn i8(&mut self) -> Result<i8, DecodeError> {
        self.array::<1>().map(i8::from_be_bytes)
    }

    #[inline]
    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        self.array().map(u16::from_be_bytes)
    }

    #[inline]
    pub(crate) fn i16(&mut self) -> Result<i16, DecodeError> {
        self.array().map(i16::from_be_bytes)
    }

    #[inline]
    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        self.array().map(u32::from_be_bytes)
    }

    #[inline]
    pub(crate) fn i32(&mut self) -> Result<i32, DecodeError> {
        self.array().map(i32::from_be_bytes)
    }

    #[inline]
    pub(crate) fn u64(&mut self) -> Result<u64, DecodeError> {
        self.array().map(u64::from_be_bytes)
    }

    #[inline]
    pub(crate) fn i64(&mut self) -> Result<i64, DecodeError> {
        self.array().map(i64::from_be_bytes)
    }

    #[inline]
    pub(crate) fn f32(&mut self) -> Result<f32, DecodeError> {
        self.array().map(f32::from_be_bytes)
    }

    #[inline]
    pub(crate) fn f64(&mut self) -> Result<f64, DecodeError> {
        self.array().map(f64::from_be_bytes)
    }

    /// Turns a sub-slice of `data` into `Bytes`: zero-copy when reading from `Bytes`.
    #[inline]
    fn to_bytes(&self, s: &'a [u8]) -> Bytes {
        match self.src {
            Some(src) => src.slice_ref(s),
            None => Bytes::copy_from_slice(s),
        }
    }

    /// A u32 length, checked against the bytes left.
    #[inline]
    fn long_len(&mut self) -> Result<usize, DecodeError> {
        let len = self.u32()?;
        match usize::try_from(len) {
            Ok(n) if n <= self.data.len() => Ok(n),
            _ => Err(DecodeError::Truncated),
        }
    }

    #[inline]
    pub(crate) fn shortstr(&mut self) -> Result<ShortStr, DecodeError> {
        let len = usize::from(self.u8()?);
        let s = self.take(len)?;
        if core::str::from_utf8(s).is_err() {
            return Err(DecodeError::InvalidUtf8);
        }
        Ok(ShortStr::from_validated(self.to_bytes(s)))
    }

    /// A field table's key. RabbitMQ does not check that keys are UTF-8; neither do we: a key
    /// that is not is kept with its bad sequences replaced (no argument or header the broker
    /// reads has such a name), cut to 255 bytes at a character boundary.
    fn table_key(&mut self) -> Result<ShortStr, DecodeError> {
        let len = usize::from(self.u8()?);
        let s = self.take(len)?;
        if core::str::from_utf8(s).is_ok() {
            return Ok(ShortStr::from_validated(self.to_bytes(s)));
        }
        Ok(ShortStr::from_utf8_lossy(s))
    }

    /// The body of a u32-length-prefixed table or array at nesting `depth`, as a reader of
    /// its own.
    fn nested(&mut self, depth: usize) -> Result<Reader<'a>, DecodeError> {
        if depth >= super::MAX_TABLE_DEPTH {
            return Err(DecodeError::NestingTooDeep);
        }
        let len = self.long_len()?;
        let body = self.take(len)?;
        Ok(Reader {
            data: body,
            src: self.src,
        })
    }

    /// Checks a field table as [`Reader::table`] would read it, building nothing.
    pub(crate) fn check_table(&mut self, depth: usize) -> Result<(), DecodeError> {
        let mut inner = self.nested(depth)?;
        while !inner.is_empty() {
            inner.skip_shortstr()?;
            inner.check_value(depth)?;
        }
        Ok(())
    }

    fn check_value(&mut self, depth: usize) -> Result<(), DecodeError> {
        match self.u8()? {
            b't' | b'b' | b'B' => self.skip(1),
            b's' | b'u' => self.skip(2),
            b'I' | b'i' | b'f' => self.skip(4),
            b'D' => self.skip(5),
            b'l' | b'd' | b'T' => self.skip(8),
            b'S' | b'x' => self.skip_long(),
            b'V' => Ok(()),
            b'F' => self.check_table(depth + 1),
            b'A' => {
                let mut inner = self.nested(depth + 1)?;
                while !inner.is_empty() {
                    inner.check_value(depth + 1)?;
                }
                Ok(())
            }
            other => Err(DecodeError::UnknownFieldType(other)),
        }
    }

    #[inline]
    pub(crate) fn skip_shortstr(&mut self) -> Result<(), DecodeError> {
        let len = usize::from(self.u8()?);
        self.skip(len)
    }

    #[inline]
    pub(crate) fn longstr(&mut self) -> Result<LongStr, DecodeError> {
        let len = self.long_len()?;
        let s = self.take(len)?;
        Ok(LongStr(self.to_bytes(s)))
    }

    /// Skips a u32-length-prefixed item (longstr or field table) without looking inside.
    #[inline]
    pub(crate) fn skip_long(&mut self) -> Result<(), DecodeError> {
        let len = self.long_len()?;
        self.skip(len)
    }

    #[inline]
    pub(crate) fn table(&mut self) -> Result<FieldTable, DecodeError> {
        self.table_at_depth(0)
    }

    pub(crate) fn table_at_depth(&mut self, depth: usize) -> Result<FieldTable, DecodeError> {
        let mut inner = self.nested(depth)?;
        let mut entries = alloc::vec::Vec::new();
        while !inner.is_empty() {
            let key = inner.table_key()?;
            let value = inner.field_value(depth)?;
            entries.push((key, value));
        }
        Ok(FieldTable(entries))
    }

    fn array_at_depth(&mut self, depth: usize) -> Result<alloc::vec::Vec<FieldValue>, DecodeError> {
        let mut inner = self.nested(depth)?;
        let mut values = alloc::vec::Vec::new();
        while !inner.is_empty() {
            values.push(inner.field_value(depth)?);
        }
        Ok(values)
    }

    /// A type tag and a value. `depth` is the nesting depth of the table or array holding it.
    fn field_value(&mut self, depth: usize) -> Result<FieldValue, DecodeError> {
        let tag = self.u8()?;
        Ok(match tag {
            b't' => FieldValue::Bool(self.u8()? != 0),
            b'b' => FieldValue::I8(self.i8()?),
            b'B' => FieldValue::U8(self.u8()?),
            b's' => FieldValue::I16(self.i16()?),
            b'u' => FieldValue::U16(self.u16()?),
            b'I' => FieldValue::I32(self.i32()?),
            b'i' => FieldValue::U32(self.u32()?),
            b'l' => FieldValue::I64(self.i64()?),
            b'f' => FieldValue::F32(self.f32()?),
            b'd' => FieldValue::F64(self.f64()?),
            b'D' => FieldValue::Decimal {
                scale: self.u8()?,
                value: self.u32()?,
            },
            b'S' => FieldValue::LongStr(self.longstr()?),
            b'A' => FieldValue::Array(self.array_at_depth(depth + 1)?),
            b'T' => FieldValue::Timestamp(self.u64()?),
            b'F' => FieldValue::Table(self.table_at_depth(depth + 1)?),
            b'V' => FieldValue::Void,
            b'x' => FieldValue::Bytes(self.longstr()?),
            other => return Err(DecodeError::UnknownFieldType(other)),
        })
    }
}
