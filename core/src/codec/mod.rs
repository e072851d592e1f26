//! AMQP 0-9-1 wire codec. See CONTRACT.md beside this file for the surface.
//!
//! Layers, outermost first:
//! - [`frame`]: splits a byte stream into frames ([`decode_frame`]) and writes frames
//!   ([`encode_method_frame`], [`encode_content`], [`encode_heartbeat`]). AMQP 0-9-1 §4.2.3.
//! - [`generated`]: one struct per method and the [`Method`] enum, generated from the spec XML
//!   by the `warren-codegen` crate. AMQP 0-9-1 §4.2.4 and the class reference.
//! - [`properties`]: the content header's basic properties (§4.2.6), decoded lazily.
//! - [`table`]: field tables and field values with RabbitMQ's type tags.
//!
//! Contract: decoding never panics, whatever the input; "need more bytes" is `Ok(None)` from
//! [`decode_frame`], never an error. Decoders slice the input [`Bytes`] instead of copying
//! strings where they can. Encoders append to a caller-owned `Vec<u8>`.

use alloc::string::String;
use alloc::vec::Vec;
use core::borrow::Borrow;
use core::fmt;
use core::hash::{Hash, Hasher};
use core::ops::Deref;

use bytes::Bytes;

pub mod frame;
pub mod generated;
pub mod properties;
pub mod table;

mod reader;
mod writer;

#[cfg(test)]
mod tests;

pub use frame::*;
pub use generated::*;
pub use properties::*;
pub use table::*;

/// Maximum number of bytes of a shortstr on the wire (its length is one octet).
pub const SHORTSTR_MAX: usize = 255;

/// Maximum nesting depth of field tables and arrays accepted by the decoder. Deeper input is
/// rejected with [`DecodeError::NestingTooDeep`] so that hostile input cannot exhaust the stack.
/// RabbitMQ takes 100 levels; past 128 we refuse.
pub const MAX_TABLE_DEPTH: usize = 128;

/// AMQP shortstr: validated UTF-8, at most 255 bytes on the wire, cheap to clone.
///
/// Encoding a `ShortStr` longer than 255 bytes writes its first 255 bytes cut at a char
/// boundary (AMQP 0-9-1 §4.2.5.3).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ShortStr(Bytes);

impl ShortStr {
    /// A shortstr pointing at static memory (no allocation).
    pub const fn from_static(s: &'static str) -> Self {
        ShortStr(Bytes::from_static(s.as_bytes()))
    }

    /// `bytes` with each bad UTF-8 sequence replaced by U+FFFD, cut to 255 bytes at a
    /// character boundary: for the names RabbitMQ takes without checking them (table keys,
    /// a publish's exchange and routing key).
    pub fn from_utf8_lossy(bytes: &[u8]) -> Self {
        let lossy = alloc::string::String::from_utf8_lossy(bytes);
        let mut end = lossy.len().min(255);
        while !lossy.is_char_boundary(end) {
            end -= 1;
        }
        ShortStr::from(&lossy[..end])
    }

    /// Wraps `bytes` after checking that they are UTF-8 (no copy).
    pub fn from_utf8(bytes: Bytes) -> Result<Self, DecodeError> {
        match core::str::from_utf8(&bytes) {
            Ok(_) => Ok(ShortStr(bytes)),
            Err(_) => Err(DecodeError::InvalidUtf8),
        }
    }

    /// Only for bytes already checked to be UTF-8.
    #[inline]
    pub(crate) fn from_validated(bytes: Bytes) -> Self {
        ShortStr(bytes)
    }

    /// The string. Always valid UTF-8 (checked when the value was made).
    #[inline]
    pub fn as_str(&self) -> &str {
        // The content was validated on construction; the fallback is unreachable but keeps
        // the crate free of `unsafe`.
        core::str::from_utf8(&self.0).unwrap_or("")
    }

    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The underlying shared buffer.
    #[inline]
    pub fn as_shared_bytes(&self) -> &Bytes {
        &self.0
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The prefix of the string that is written on the wire: at most 255 bytes, cut at a
    /// char boundary.
    #[inline]
    pub fn wire_str(&self) -> &str {
        truncate_shortstr(self.as_str())
    }

    /// [`ShortStr::wire_str`] as bytes, without re-checking UTF-8 in the common case of a
    /// string that fits.
    #[inline]
    pub fn wire_bytes(&self) -> &[u8] {
        if self.0.len() <= SHORTSTR_MAX {
            &self.0
        } else {
            self.wire_str().as_bytes()
        }
    }
}

/// Cuts `s` to at most 255 bytes at a char boundary.
#[inline]
pub(crate) fn truncate_shortstr(s: &str) -> &str {
    if s.len() <= SHORTSTR_MAX {
        return s;
    }
    let mut end = SHORTSTR_MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or("")
}

impl Hash for ShortStr {
    /// Hashes like the `str` it holds (bytes, then a 0xff terminator: `Hasher::write_str`'s
    /// stable default), so that `Borrow<str>` lookups work, without re-checking UTF-8 on
    /// every hash. A test pins the equality.
    #[inline]
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.as_bytes());
        state.write_u8(0xff);
    }
}

impl Deref for ShortStr {
    type Target = str;
    #[inline]
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for ShortStr {
    #[inline]
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for ShortStr {
    #[inline]
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for ShortStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for ShortStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

impl From<&str> for ShortStr {
    fn from(s: &str) -> Self {
        ShortStr(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for ShortStr {
    fn from(s: String) -> Self {
        ShortStr(Bytes::from(s.into_bytes()))
    }
}

impl From<&String> for ShortStr {
    fn from(s: &String) -> Self {
        ShortStr::from(s.as_str())
    }
}

impl PartialEq<str> for ShortStr {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<&str> for ShortStr {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

/// AMQP longstr: arbitrary bytes (AMQP 0-9-1 §4.2.5.3).
#[derive(Clone, PartialEq, Eq, Hash, Default, Debug)]
pub struct LongStr(pub Bytes);

impl LongStr {
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    #[inline]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The content as a string, if it is UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        core::str::from_utf8(&self.0).ok()
    }
}

impl From<&str> for LongStr {
    fn from(s: &str) -> Self {
        LongStr(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for LongStr {
    fn from(s: String) -> Self {
        LongStr(Bytes::from(s.into_bytes()))
    }
}

impl From<Vec<u8>> for LongStr {
    fn from(v: Vec<u8>) -> Self {
        LongStr(Bytes::from(v))
    }
}

impl From<&[u8]> for LongStr {
    fn from(v: &[u8]) -> Self {
        LongStr(Bytes::copy_from_slice(v))
    }
}

impl From<Bytes> for LongStr {
    fn from(b: Bytes) -> Self {
        LongStr(b)
    }
}

/// Why bytes from the peer could not be decoded.
///
/// "Need more bytes" is not an error: [`decode_frame`] returns `Ok(None)` for it.
/// [`DecodeError::reply_code`] gives the reply code for the connection.close that answers it.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodeError {
    /// A frame payload, method, header or table ended before a field did.
    Truncated,
    /// A method payload has bytes after its last field.
    TrailingBytes,
    /// The octet after a frame payload was not 0xCE (AMQP 0-9-1 §4.2.3).
    BadFrameEnd(u8),
    /// Frame type other than method, header, body or heartbeat.
    UnknownFrameType(u8),
    /// Frame size (payload plus 8 bytes of overhead) over the negotiated frame-max.
    FrameTooLarge { size: u64, max: u32 },
    /// Class and method ids name no method of the spec.
    UnknownMethod { class_id: u16, method_id: u16 },
    /// A shortstr (or a table key) was not UTF-8.
    InvalidUtf8,
    /// A field value with a type tag RabbitMQ does not know.
    UnknownFieldType(u8),
    /// Field tables or arrays nested deeper than [`MAX_TABLE_DEPTH`].
    NestingTooDeep,
    /// Property flags name a property this codec does not know (so it cannot be skipped).
    UnknownProperty,
}

impl DecodeError {
    /// The AMQP reply code for the connection.close sent in answer: 501 FRAME_ERROR for
    /// framing faults, 502 SYNTAX_ERROR for malformed field content, 540 NOT_IMPLEMENTED for
    /// an unknown method.
    pub fn reply_code(&self) -> u16 {
        match self {
            DecodeError::Truncated
            | DecodeError::TrailingBytes
            | DecodeError::BadFrameEnd(_)
            | DecodeError::UnknownFrameType(_)
            | DecodeError::FrameTooLarge { .. }
            | DecodeError::UnknownProperty => generated::FRAME_ERROR,
            DecodeError::InvalidUtf8
            | DecodeError::UnknownFieldType(_)
            | DecodeError::NestingTooDeep => generated::SYNTAX_ERROR,
            DecodeError::UnknownMethod { .. } => generated::NOT_IMPLEMENTED,
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Truncated => f.write_str("truncated field"),
            DecodeError::TrailingBytes => f.write_str("trailing bytes after method arguments"),
            DecodeError::BadFrameEnd(b) => write!(f, "bad frame end octet {b:#04x}"),
            DecodeError::UnknownFrameType(t) => write!(f, "unknown frame type {t}"),
            DecodeError::FrameTooLarge { size, max } => {
                write!(f, "frame size {size} exceeds frame_max {max}")
            }
            DecodeError::UnknownMethod {
                class_id,
                method_id,
            } => write!(f, "unknown method {class_id}.{method_id}"),
            DecodeError::InvalidUtf8 => f.write_str("invalid UTF-8 in shortstr"),
            DecodeError::UnknownFieldType(t) => {
                if t.is_ascii_graphic() {
                    write!(f, "unknown field type '{}'", *t as char)
                } else {
                    write!(f, "unknown field type {t:#04x}")
                }
            }
            DecodeError::NestingTooDeep => f.write_str("field tables nested too deep"),
            DecodeError::UnknownProperty => f.write_str("unknown content property flag"),
        }
    }
}
