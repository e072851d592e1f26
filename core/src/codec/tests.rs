//! Codec tests: known byte vectors, bit packing, field values, property flags, frames, and
//! property-based round trips.

use alloc::vec;
use alloc::vec::Vec;

use bytes::{Bytes, BytesMut};

use super::*;

fn method_bytes(m: &Method) -> Vec<u8> {
    let mut out = Vec::new();
    m.encode(&mut out);
    assert_eq!(out.len(), m.encoded_len(), "encoded_len of {}", m.name());
    out
}

#[test]
fn basic_publish_known_bytes() {
    let m = Method::from(BasicPublish {
        reserved_1: 0,
        exchange: ShortStr::from("amq.direct"),
        routing_key: ShortStr::from("rk"),
        mandatory: true,
        immediate: false,
    });
    let mut expected = vec![0, 60, 0, 40, 0, 0, 10];
    expected.extend_from_slice(b"amq.direct");
    expected.extend_from_slice(&[2, b'r', b'k', 0b01]);
    assert_eq!(method_bytes(&m), expected);
    assert_eq!(Method::decode(&Bytes::from(expected)).unwrap(), m);
}
