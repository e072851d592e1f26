//! Big-endian writers appending to a caller-owned `Vec<u8>`.

use alloc::vec::Vec;

use super::table::FieldTable;
use super::{truncate_shortstr, LongStr, ShortStr};

#[inline]
pub(crate) fn put_u8(out: &mut Vec<u8>, v: u8) {
    out.push(v);
}

#[inline]
pub(crate) fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}

#[inline]
pub(crate) fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

#[inline]
pub(crate) fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Writes a shortstr, cut to 255 bytes at a char boundary.
#[inline]
pub(crate) fn put_shortstr(out: &mut Vec<u8>, s: &ShortStr) {
    let b = s.as_bytes();
    if b.len() <= super::SHORTSTR_MAX {
        out.push(b.len() as u8);
        out.extend_from_slice(b);
    } else {
        put_str(out, s.as_str());
    }
}

/// Writes `s` as a shortstr, cut to 255 bytes at a char boundary.
#[inline]
pub(crate) fn put_str(out: &mut Vec<u8>, s: &str) {
    let s = truncate_shortstr(s);
    out.push(s.len() as u8);
    out.extend_from_slice(s.as_bytes());
}

/// Bytes a shortstr takes on the wire, length octet included.
#[inline]
pub(crate) fn shortstr_len(s: &ShortStr) -> usize {
    if s.len() <= super::SHORTSTR_MAX {
        1 + s.len()
    } else {
        1 + truncate_shortstr(s.as_str()).len()
    }
}

#[inline]
pub(crate) fn put_longstr(out: &mut Vec<u8>, s: &LongStr) {
    put_u32(out, s.0.len() as u32);
    out.extend_from_slice(&s.0);
}

#[inline]
pub(crate) fn longstr_len(s: &LongStr) -> usize {
    4 + s.0.len()
}

#[inline]
pub(crate) fn put_table(out: &mut Vec<u8>, t: &FieldTable) {
    t.encode(out);
}

#[inline]
pub(crate) fn table_len(t: &FieldTable) -> usize {
    t.encoded_len()
}

/// Reserves a u32 length slot, returns its position for [`patch_u32_len`].
#[inline]
pub(crate) fn begin_u32_len(out: &mut Vec<u8>) -> usize {
    let at = out.len();
    out.extend_from_slice(&[0; 4]);
    at
}

/// Writes the number of bytes appended since [`begin_u32_len`] into its slot.
#[inline]
pub(crate) fn patch_u32_len(out: &mut [u8], at: usize) {
    let len = out.len().saturating_sub(at + 4) as u32;
    if let Some(slot) = out.get_mut(at..at + 4) {
        slot.copy_from_slice(&len.to_be_bytes());
    }
}
