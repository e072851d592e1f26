//! Feeds arbitrary bytes to every decoder of the codec: the frame decoder (as a stream and with
//! and without a frame-max), then the payloads it yields, and the same bytes directly as a method
//! payload, a content header payload and a property list. None may panic.
//!
//! Whatever decodes must also re-encode to bytes that decode to the same encoding (floats in
//! tables can be NaN, so encodings are compared rather than values).
//!
//! Run: `cargo +nightly fuzz run frame_decoder` from the repository root.
#![no_main]

use bytes::{Bytes, BytesMut};
use libfuzzer_sys::fuzz_target;
use warren_core::codec::{
    decode_frame, peek_delivery_mode, peek_expiration, peek_headers, peek_user_id, BasicProperties,
    ContentHeader, FieldTable, FrameKind, Method,
};

fn method(payload: &Bytes) {
    if let Ok(m) = Method::decode(payload) {
        let mut once = Vec::new();
        m.encode(&mut once);
        assert_eq!(once.len(), m.encoded_len());
        let again = Method::decode(&Bytes::from(once.clone())).expect("re-decode method");
        let mut twice = Vec::new();
        again.encode(&mut twice);
        assert_eq!(once, twice);
    }
}

fn properties(raw: &Bytes) {
    let _ = peek_delivery_mode(raw);
    let _ = peek_expiration(raw);
    let _ = peek_user_id(raw);
    let _ = peek_headers(raw);
    if let Ok(p) = BasicProperties::decode_bytes(raw) {
        let once = p.to_bytes();
        let again = BasicProperties::decode(&once).expect("re-decode properties");
        assert_eq!(once, again.to_bytes());
        assert_eq!(peek_delivery_mode(&once), Ok(p.delivery_mode));
    }
}

fn header(payload: Bytes) {
    if let Ok(h) = ContentHeader::decode(payload) {
        properties(&h.properties);
    }
}

fuzz_target!(|data: &[u8]| {
    let bytes = Bytes::copy_from_slice(data);
    method(&bytes);
    header(bytes.clone());
    properties(&bytes);
    let _ = BasicProperties::decode(data);
    let _ = FieldTable::decode(data);

    for frame_max in [0u32, 4096] {
        let mut buf = BytesMut::from(data);
        while let Ok(Some(frame)) = decode_frame(&mut buf, frame_max) {
            match frame.kind {
                FrameKind::Method(p) => method(&p),
                FrameKind::Header(p) => header(p),
                FrameKind::Body(_) | FrameKind::Heartbeat => {}
            }
        }
    }
});
