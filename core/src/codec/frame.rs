//! Frames (AMQP 0-9-1 §4.2.3): `type:u8 channel:u16 size:u32 payload[size] 0xCE`.
//!
//! [`decode_frame`] takes frames off the front of a byte buffer however the bytes arrived
//! (split anywhere); payloads are `Bytes` sharing the buffer's memory. Encoders append whole
//! frames to a caller-owned `Vec<u8>`, reserving once per call.

use alloc::vec::Vec;

use bytes::{Buf, Bytes, BytesMut};

use super::generated::{BasicDeliver, Method};
use super::reader::Reader;
use super::writer::{put_u16, put_u32, put_u64, put_u8};
use super::DecodeError;
use super::ShortStr;

pub use super::generated::{FRAME_BODY, FRAME_END, FRAME_HEADER, FRAME_HEARTBEAT, FRAME_METHOD};

/// The protocol header a client sends first (§4.2.2). A server answers any other header by
/// sending this one and closing the connection.
pub const PROTOCOL_HEADER: [u8; 8] = *b"AMQP\x00\x00\x09\x01";

/// Bytes a frame adds around its payload: type(1) + channel(2) + size(4) + end(1).
pub const FRAME_OVERHEAD: usize = 8;

/// Most [`decode_frame`] reserves ahead for a frame whose payload has not fully arrived.
const RESERVE_LIMIT: usize = 128 * 1024;

/// Bytes of a frame before its payload: type(1) + channel(2) + size(4).
const FRAME_HEADER_LEN: usize = 7;

/// Bytes of a content header payload before the property flags: class-id(2) + weight(2) +
/// body-size(8).
const CONTENT_HEADER_FIXED: usize = 12;

/// One frame.
#[derive(Clone, Debug, PartialEq)]
pub struct Frame {
    pub channel: u16,
    pub kind: FrameKind,
}

/// A frame's type and payload. Method and header payloads are decoded separately with
/// [`Method::decode`] and [`ContentHeader::decode`].
#[derive(Clone, Debug, PartialEq)]
pub enum FrameKind {
    Method(Bytes),
    Header(Bytes),
    Body(Bytes),
    Heartbeat,
}

/// Decode one frame from the front of `buf`, advancing it. `Ok(None)`: need more bytes (`buf`
/// is left untouched).
///
/// `frame_max` is the negotiated limit for a whole frame including the 8 bytes of overhead;
/// 0 means no limit. As RabbitMQ 3.10 does, a payload of exactly `frame_max` octets is still
/// taken (the overhead is not counted against the limit); one more is `Err`. So are a bad
/// frame-end octet and an unknown frame type, checked as soon as the 7-byte frame header is
/// in, before the payload, and a heartbeat that carries a payload (RabbitMQ's `unknown_frame`),
/// once all of it is in.
pub fn decode_frame(buf: &mut BytesMut, frame_max: u32) -> Result<Option<Frame>, DecodeError> {
    let Some(head) = buf.first_chunk::<FRAME_HEADER_LEN>() else {
        return Ok(None);
    };
    let kind = head[0];
    let channel = u16::from_be_bytes([head[1], head[2]]);
    let size = u32::from_be_bytes([head[3], head[4], head[5], head[6]]);
    // Size before type, as RabbitMQ checks them (its error texts depend on the order).
    let whole = u64::from(size) + FRAME_OVERHEAD as u64;
    if frame_max != 0 && size > frame_max {
        return Err(DecodeError::FrameTooLarge {
            size: whole,
            max: frame_max,
        });
    }
    if !matches!(
        kind,
        FRAME_METHOD | FRAME_HEADER | FRAME_BODY | FRAME_HEARTBEAT
    ) {
        return Err(DecodeError::UnknownFrameType(kind));
    }
    let Ok(whole) = usize::try_from(whole) else {
        return Err(DecodeError::FrameTooLarge {
            size: whole,
            max: frame_max,
        });
    };
    if buf.len() < whole {
        // Make room for the rest of the frame once rather than growing piecemeal (bounded, so
        // a peer announcing a huge frame cannot make us allocate it up front).
        buf.reserve(whole.min(RESERVE_LIMIT).saturating_sub(buf.len()));
        return Ok(None);
    }
    let end = buf.get(whole - 1).copied().unwrap_or(0);
    if end != FRAME_END {
        return Err(DecodeError::BadFrameEnd(end));
    }
    if kind == FRAME_HEARTBEAT && size != 0 {
        return Err(DecodeError::UnknownFrameType(kind));
    }
    let mut frame = buf.split_to(whole);
    frame.advance(FRAME_HEADER_LEN);
    frame.truncate(whole - FRAME_OVERHEAD);
    let payload = frame.freeze();
    let kind = match kind {
        FRAME_METHOD => FrameKind::Method(payload),
        FRAME_HEADER => FrameKind::Header(payload),
        FRAME_BODY => FrameKind::Body(payload),
        _ => FrameKind::Heartbeat,
    };
    Ok(Some(Frame { channel, kind }))
}

#[inline]
fn put_frame_head(out: &mut Vec<u8>, kind: u8, channel: u16, size: u32) {
    put_u8(out, kind);
    put_u16(out, channel);
    put_u32(out, size);
}

/// Appends a method frame.
pub fn encode_method_frame(out: &mut Vec<u8>, channel: u16, method: &Method) {
    out.reserve(method.encoded_len() + FRAME_OVERHEAD);
    let head = out.len();
    put_frame_head(out, FRAME_METHOD, channel, 0);
    let start = out.len();
    method.encode(out);
    let len = (out.len() - start) as u32;
    if let Some(slot) = out.get_mut(head + 3..start) {
        slot.copy_from_slice(&len.to_be_bytes());
    }
    put_u8(out, FRAME_END);
}

/// Appends a heartbeat frame (always on channel 0).
pub fn encode_heartbeat(out: &mut Vec<u8>) {
    out.extend_from_slice(&[FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, FRAME_END]);
}

/// Appends a frame of any type with the given payload. The caller keeps the payload within
/// the peer's frame-max.
pub fn encode_frame(out: &mut Vec<u8>, kind: u8, channel: u16, payload: &[u8]) {
    out.reserve(payload.len() + FRAME_OVERHEAD);
    put_frame_head(out, kind, channel, payload.len() as u32);
    out.extend_from_slice(payload);
    put_u8(out, FRAME_END);
}

/// Content header frame + as many body frames as needed so no frame exceeds `frame_max`
/// (0 = one body frame). `properties` is the raw property-flags + property-list as received.
/// An empty body gets no body frame (§4.2.6.2, as RabbitMQ does).
pub fn encode_content(
    out: &mut Vec<u8>,
    channel: u16,
    class_id: u16,
    properties: &[u8],
    body: &[u8],
    frame_max: u32,
) {
    let chunk = body_chunk(body, frame_max);
    let body_frames = body.len().div_ceil(chunk);
    let header_len = CONTENT_HEADER_FIXED + properties.len();
    out.reserve(header_len + body.len() + FRAME_OVERHEAD * (1 + body_frames));
    put_frame_head(out, FRAME_HEADER, channel, header_len as u32);
    put_u16(out, class_id);
    put_u16(out, 0); // weight
    put_u64(out, body.len() as u64);
    out.extend_from_slice(properties);
    put_u8(out, FRAME_END);
    for piece in body.chunks(chunk) {
        put_frame_head(out, FRAME_BODY, channel, piece.len() as u32);
        out.extend_from_slice(piece);
        put_u8(out, FRAME_END);
    }
}

/// A content-carrying method frame (basic.deliver, basic.get-ok, basic.return, ...) followed by
/// its content header and body frames, as [`encode_method_frame`] then [`encode_content`] would
/// write them, with a single reservation for all of it. The content's class is the method's.
pub fn encode_message(
    out: &mut Vec<u8>,
    channel: u16,
    method: &Method,
    properties: &[u8],
    body: &[u8],
    frame_max: u32,
) {
    let chunk = body_chunk(body, frame_max);
    out.reserve(
        method.encoded_len()
            + CONTENT_HEADER_FIXED
            + properties.len()
            + body.len()
            + FRAME_OVERHEAD * (2 + body.len().div_ceil(chunk)),
    );
    encode_method_frame(out, channel, method);
    encode_content(out, channel, method.class_id(), properties, body, frame_max);
}

/// `basic.deliver` + content header + body frames, written directly (no [`Method`] value, no
/// string clones): the broker's hottest output path. Byte-for-byte what [`encode_message`]
/// writes for the same `BasicDeliver`.
#[allow(clippy::too_many_arguments)]
pub fn encode_deliver(
    out: &mut Vec<u8>,
    channel: u16,
    consumer_tag: &ShortStr,
    delivery_tag: u64,
    redelivered: bool,
    exchange: &ShortStr,
    routing_key: &ShortStr,
    properties: &[u8],
    body: &[u8],
    frame_max: u32,
) {
    let (tag, ex, rk) = (
        consumer_tag.wire_bytes(),
        exchange.wire_bytes(),
        routing_key.wire_bytes(),
    );
    // class + method ids, 3 shortstrs with length octets, delivery tag, redelivered octet
    let args = 4 + 3 + tag.len() + ex.len() + rk.len() + 8 + 1;
    let chunk = body_chunk(body, frame_max);
    out.reserve(
        args + CONTENT_HEADER_FIXED
            + properties.len()
            + body.len()
            + FRAME_OVERHEAD * (2 + body.len().div_ceil(chunk)),
    );
    put_frame_head(out, FRAME_METHOD, channel, args as u32);
    put_u16(out, BasicDeliver::CLASS_ID);
    put_u16(out, BasicDeliver::METHOD_ID);
    put_u8(out, tag.len() as u8);
    out.extend_from_slice(tag);
    put_u64(out, delivery_tag);
    put_u8(out, u8::from(redelivered));
    put_u8(out, ex.len() as u8);
    out.extend_from_slice(ex);
    put_u8(out, rk.len() as u8);
    out.extend_from_slice(rk);
    put_u8(out, FRAME_END);
    encode_content(
        out,
        channel,
        BasicDeliver::CLASS_ID,
        properties,
        body,
        frame_max,
    );
}

/// Body bytes per body frame.
#[inline]
fn body_chunk(body: &[u8], frame_max: u32) -> usize {
    if frame_max == 0 {
        body.len().max(1)
    } else {
        (frame_max as usize).saturating_sub(FRAME_OVERHEAD).max(1)
    }
}

/// A content header frame's payload, properties kept raw (decoded lazily when needed with
/// [`BasicProperties::decode_bytes`](super::BasicProperties::decode_bytes) or the `peek_*`
/// functions).
#[derive(Clone, Debug, PartialEq)]
pub struct ContentHeader {
    pub class_id: u16,
    pub body_size: u64,
    /// Property flags + property list, as received.
    pub properties: Bytes,
}

impl ContentHeader {
    /// Decodes a header frame payload: class-id, weight (ignored), body-size, properties.
    pub fn decode(payload: Bytes) -> Result<Self, DecodeError> {
        let mut r = Reader::new(&payload);
        let class_id = r.u16()?;
        let _weight = r.u16()?;
        let body_size = r.u64()?;
        if r.remaining() < 2 {
            return Err(DecodeError::Truncated);
        }
        let properties = payload.slice(CONTENT_HEADER_FIXED..);
        Ok(ContentHeader {
            class_id,
            body_size,
            properties,
        })
    }

    /// Appends this header as a whole frame.
    pub fn encode_frame(&self, out: &mut Vec<u8>, channel: u16) {
        let len = CONTENT_HEADER_FIXED + self.properties.len();
        out.reserve(len + FRAME_OVERHEAD);
        put_frame_head(out, FRAME_HEADER, channel, len as u32);
        put_u16(out, self.class_id);
        put_u16(out, 0);
        put_u64(out, self.body_size);
        out.extend_from_slice(&self.properties);
        put_u8(out, FRAME_END);
    }
}
