//! Codec tests: known byte vectors, bit packing, field values, property flags, frames, and
//! property-based round trips (including "decoding arbitrary bytes never panics").

use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;

// ---------------------------------------------------------------------------------------------
// Helpers and strategies (also used by `generated::strategies`).

fn method_bytes(m: &Method) -> Vec<u8> {
    let mut out = Vec::new();
    m.encode(&mut out);
    assert_eq!(out.len(), m.encoded_len(), "encoded_len of {}", m.name());
    out
}

fn cat(parts: &[&[u8]]) -> Vec<u8> {
    parts.concat()
}

/// Decodes every frame in `stream`, feeding it to the decoder in pieces of `step` bytes.
fn decode_all(stream: &[u8], step: usize, frame_max: u32) -> Vec<Frame> {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in stream.chunks(step.max(1)) {
        buf.extend_from_slice(piece);
        while let Some(f) = decode_frame(&mut buf, frame_max).unwrap() {
            frames.push(f);
        }
    }
    assert!(buf.is_empty(), "{} bytes left over", buf.len());
    frames
}

pub(crate) fn arb_shortstr() -> impl Strategy<Value = ShortStr> {
    // At most 60 chars of at most 4 bytes: always fits in 255 bytes, so round trips are exact.
    prop::collection::vec(any::<char>(), 0..60).prop_map(|c| ShortStr::from(String::from_iter(c)))
}

pub(crate) fn arb_longstr() -> impl Strategy<Value = LongStr> {
    prop::collection::vec(any::<u8>(), 0..40).prop_map(LongStr::from)
}

fn arb_field_value() -> impl Strategy<Value = FieldValue> {
    let leaf = prop_oneof![
        any::<bool>().prop_map(FieldValue::Bool),
        any::<i8>().prop_map(FieldValue::I8),
        any::<u8>().prop_map(FieldValue::U8),
        any::<i16>().prop_map(FieldValue::I16),
        any::<u16>().prop_map(FieldValue::U16),
        any::<i32>().prop_map(FieldValue::I32),
        any::<u32>().prop_map(FieldValue::U32),
        any::<i64>().prop_map(FieldValue::I64),
        any::<f32>()
            .prop_filter("NaN != NaN", |f| !f.is_nan())
            .prop_map(FieldValue::F32),
        any::<f64>()
            .prop_filter("NaN != NaN", |f| !f.is_nan())
            .prop_map(FieldValue::F64),
        (any::<u8>(), any::<u32>()).prop_map(|(scale, value)| FieldValue::Decimal { scale, value }),
        arb_longstr().prop_map(FieldValue::LongStr),
        any::<u64>().prop_map(FieldValue::Timestamp),
        Just(FieldValue::Void),
        arb_longstr().prop_map(FieldValue::Bytes),
    ];
    leaf.prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(FieldValue::Array),
            prop::collection::vec((arb_shortstr(), inner), 0..4)
                .prop_map(|e| FieldValue::Table(FieldTable(e))),
        ]
    })
}

pub(crate) fn arb_table() -> impl Strategy<Value = FieldTable> {
    prop::collection::vec((arb_shortstr(), arb_field_value()), 0..4).prop_map(FieldTable)
}

fn arb_opt_shortstr() -> impl Strategy<Value = Option<ShortStr>> {
    prop::option::of(arb_shortstr())
}

fn arb_properties() -> impl Strategy<Value = BasicProperties> {
    (
        (
            arb_opt_shortstr(),
            arb_opt_shortstr(),
            prop::option::of(arb_table()),
            prop::option::of(any::<u8>()),
            prop::option::of(any::<u8>()),
            arb_opt_shortstr(),
            arb_opt_shortstr(),
        ),
        (
            arb_opt_shortstr(),
            arb_opt_shortstr(),
            prop::option::of(any::<u64>()),
            arb_opt_shortstr(),
            arb_opt_shortstr(),
            arb_opt_shortstr(),
            arb_opt_shortstr(),
        ),
    )
        .prop_map(
            |(
                (
                    content_type,
                    content_encoding,
                    headers,
                    delivery_mode,
                    priority,
                    correlation_id,
                    reply_to,
                ),
                (expiration, message_id, timestamp, kind, user_id, app_id, cluster_id),
            )| BasicProperties {
                content_type,
                content_encoding,
                headers,
                delivery_mode,
                priority,
                correlation_id,
                reply_to,
                expiration,
                message_id,
                timestamp,
                kind,
                user_id,
                app_id,
                cluster_id,
            },
        )
}

// ---------------------------------------------------------------------------------------------
// Methods: known bytes.

/// connection.start as RabbitMQ sends it (server-properties cut down to three entries).
#[test]
fn connection_start_from_rabbitmq_decodes_and_reencodes() {
    let caps: &[u8] = &cat(&[b"\x12publisher_confirmst\x01", b"\x0abasic.nackt\x01"]);
    assert_eq!(caps.len(), 0x22);
    let props = cat(&[
        b"\x0ccapabilitiesF\x00\x00\x00\x22",
        caps,
        b"\x07productS\x00\x00\x00\x08RabbitMQ",
        b"\x07versionS\x00\x00\x00\x063.13.0",
    ]);
    assert_eq!(props.len(), 0x5c);
    let payload = cat(&[
        b"\x00\x0a\x00\x0a\x00\x09\x00\x00\x00\x5c",
        &props,
        b"\x00\x00\x00\x0eAMQPLAIN PLAIN",
        b"\x00\x00\x00\x05en_US",
    ]);
    let m = Method::decode(&Bytes::from(payload.clone())).unwrap();
    let Method::ConnectionStart(start) = &m else {
        panic!("decoded {m:?}")
    };
    assert_eq!((start.version_major, start.version_minor), (0, 9));
    assert_eq!(start.mechanisms.as_bytes(), b"AMQPLAIN PLAIN");
    assert_eq!(start.locales.as_str(), Some("en_US"));
    let sp = &start.server_properties;
    assert_eq!(
        sp.get("product").and_then(FieldValue::as_str),
        Some("RabbitMQ")
    );
    let caps = sp
        .get("capabilities")
        .and_then(FieldValue::as_table)
        .unwrap();
    assert_eq!(caps.get("basic.nack"), Some(&FieldValue::Bool(true)));
    assert_eq!(
        sp.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        ["capabilities", "product", "version"]
    );
    assert_eq!(m.name(), "connection.start");
    assert_eq!(method_bytes(&m), payload);
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
    let expected = cat(&[b"\x00\x3c\x00\x28\x00\x00\x0aamq.direct", b"\x02rk\x01"]);
    assert_eq!(method_bytes(&m), expected);
    assert_eq!(Method::decode(&Bytes::from(expected)).unwrap(), m);
    assert!(m.has_content());
}

#[test]
fn basic_deliver_known_bytes() {
    let m = Method::from(BasicDeliver {
        consumer_tag: "ctag".into(),
        delivery_tag: 1,
        redelivered: true,
        exchange: ShortStr::default(),
        routing_key: "q".into(),
    });
    let expected = cat(&[
        b"\x00\x3c\x00\x3c\x04ctag",
        b"\x00\x00\x00\x00\x00\x00\x00\x01\x01\x00\x01q",
    ]);
    assert_eq!(method_bytes(&m), expected);
    assert_eq!(Method::decode(&Bytes::from(expected)).unwrap(), m);
}

#[test]
fn methods_without_arguments_are_just_ids() {
    assert_eq!(method_bytes(&ChannelCloseOk.into()), b"\x00\x14\x00\x29");
    assert_eq!(method_bytes(&TxSelect.into()), b"\x00\x5a\x00\x0a");
    assert_eq!(
        Method::decode(&Bytes::from_static(b"\x00\x55\x00\x0b")).unwrap(),
        Method::ConfirmSelectOk(ConfirmSelectOk)
    );
}

#[test]
fn rabbitmq_extension_methods_are_generated() {
    let m = Method::from(ConnectionBlocked {
        reason: "low on memory".into(),
    });
    assert_eq!(method_bytes(&m), b"\x00\x0a\x00\x3c\x0dlow on memory");
    assert_eq!(
        method_bytes(&ConnectionUnblocked.into()),
        b"\x00\x0a\x00\x3d"
    );
    let m = Method::from(ConnectionUpdateSecret {
        new_secret: "tok".into(),
        reason: "r".into(),
    });
    assert_eq!(
        method_bytes(&m),
        b"\x00\x0a\x00\x46\x00\x00\x00\x03tok\x01r"
    );
    assert_eq!(method_name(10, 71), Some("connection.update-secret-ok"));
}

#[test]
fn connection_tune_known_bytes() {
    let m = Method::from(ConnectionTune {
        channel_max: 2047,
        frame_max: 131072,
        heartbeat: 60,
    });
    assert_eq!(
        method_bytes(&m),
        b"\x00\x0a\x00\x1e\x07\xff\x00\x02\x00\x00\x00\x3c"
    );
}

#[test]
fn decoded_strings_share_the_payload_buffer() {
    let payload = Bytes::from(cat(&[b"\x00\x3c\x00\x28\x00\x00\x03ex1\x02rk\x00"]));
    let Method::BasicPublish(p) = Method::decode(&payload).unwrap() else {
        panic!()
    };
    let base = payload.as_ptr() as usize;
    let ex = p.exchange.as_bytes().as_ptr() as usize;
    assert!(
        ex > base && ex < base + payload.len(),
        "exchange was copied"
    );
}

// ---------------------------------------------------------------------------------------------
// Bit packing.

#[test]
fn consecutive_bits_share_one_octet_lsb_first() {
    let m = Method::from(QueueDeclare {
        reserved_1: 0,
        queue: "q".into(),
        passive: false,
        durable: true,
        exclusive: false,
        auto_delete: true,
        no_wait: true,
        arguments: FieldTable::default(),
    });
    // durable = bit 1, auto-delete = bit 3, no-wait = bit 4.
    assert_eq!(
        method_bytes(&m),
        b"\x00\x32\x00\x0a\x00\x00\x01q\x1a\x00\x00\x00\x00"
    );
    let nack = Method::from(BasicNack {
        delivery_tag: 7,
        multiple: false,
        requeue: true,
    });
    assert_eq!(
        method_bytes(&nack),
        b"\x00\x3c\x00\x78\x00\x00\x00\x00\x00\x00\x00\x07\x02"
    );
}

#[test]
fn every_bit_of_exchange_declare_round_trips() {
    for mask in 0u8..32 {
        let m = Method::from(ExchangeDeclare {
            exchange: "x".into(),
            kind: "topic".into(),
            passive: mask & 1 != 0,
            durable: mask & 2 != 0,
            auto_delete: mask & 4 != 0,
            internal: mask & 8 != 0,
            no_wait: mask & 16 != 0,
            ..Default::default()
        });
        let bytes = method_bytes(&m);
        // id(4) reserved(2) "x"(2) "topic"(6) -> bits octet at 14.
        assert_eq!(bytes[14], mask);
        assert_eq!(Method::decode(&Bytes::from(bytes)).unwrap(), m);
    }
}

// ---------------------------------------------------------------------------------------------
// Method decoding errors.

#[test]
fn unknown_method_is_not_implemented() {
    let err = Method::decode(&Bytes::from_static(b"\x00\x3c\x00\x63")).unwrap_err();
    assert_eq!(
        err,
        DecodeError::UnknownMethod {
            class_id: 60,
            method_id: 99
        }
    );
    assert_eq!(err.reply_code(), NOT_IMPLEMENTED);
    assert_eq!(alloc::format!("{err}"), "unknown method 60.99");
}

#[test]
fn truncated_and_overlong_methods_are_frame_errors() {
    let full = method_bytes(
        &BasicAck {
            delivery_tag: 5,
            multiple: true,
        }
        .into(),
    );
    for cut in 0..full.len() {
        let err = Method::decode(&Bytes::copy_from_slice(&full[..cut])).unwrap_err();
        assert_eq!(err, DecodeError::Truncated, "cut at {cut}");
        assert_eq!(err.reply_code(), FRAME_ERROR);
    }
    let mut long = full.clone();
    long.push(0);
    assert_eq!(
        Method::decode(&Bytes::from(long)).unwrap_err(),
        DecodeError::TrailingBytes
    );
}

#[test]
fn shortstr_must_be_utf8() {
    let payload = Bytes::from_static(b"\x00\x14\x00\x0a\x02\xff\xfe");
    let err = Method::decode(&payload).unwrap_err();
    assert_eq!(err, DecodeError::InvalidUtf8);
    assert_eq!(err.reply_code(), SYNTAX_ERROR);
}

#[test]
fn method_names_ids_and_content_flags() {
    assert_eq!(method_name(60, 40), Some("basic.publish"));
    assert_eq!(method_name(85, 10), Some("confirm.select"));
    assert_eq!(method_name(40, 51), Some("exchange.unbind-ok"));
    assert_eq!(method_name(60, 99), None);
    assert_eq!(BasicGetOk::NAME, "basic.get-ok");
    let m = Method::from(BasicGetOk::default());
    assert_eq!((m.class_id(), m.method_id()), (60, 71));
    assert!(m.has_content());
    assert!(Method::from(BasicReturn::default()).has_content());
    assert!(!Method::from(BasicAck::default()).has_content());
    assert!(!Method::from(BasicGet::default()).has_content());
}

#[test]
fn spec_constants_are_generated() {
    assert_eq!(REPLY_SUCCESS, 200);
    assert_eq!(FRAME_MIN_SIZE, 4096);
    assert_eq!(FRAME_END, 0xCE);
    assert_eq!(NOT_FOUND, 404);
    assert_eq!(reply_code_name(406), Some("PRECONDITION_FAILED"));
    assert!(is_hard_error(CHANNEL_ERROR));
    assert!(!is_hard_error(NOT_FOUND));
    assert_eq!(class::BASIC, 60);
}

// ---------------------------------------------------------------------------------------------
// ShortStr.

#[test]
fn shortstr_over_255_bytes_is_cut_at_a_char_boundary() {
    // 127 two-byte chars = 254 bytes, then a 3-byte char that would end at 257.
    let mut s = String::new();
    for _ in 0..127 {
        s.push('é');
    }
    s.push('€');
    let m = Method::from(BasicConsumeOk {
        consumer_tag: ShortStr::from(s.clone()),
    });
    let bytes = method_bytes(&m);
    assert_eq!(bytes[4], 254);
    assert_eq!(bytes.len(), 4 + 1 + 254);
    let Method::BasicConsumeOk(back) = Method::decode(&Bytes::from(bytes)).unwrap() else {
        panic!()
    };
    assert_eq!(back.consumer_tag.as_str(), &s[..254]);
}

#[test]
fn shortstr_hashes_like_str() {
    let mut map = std::collections::HashMap::new();
    map.insert(ShortStr::from("amq.topic"), 1);
    assert_eq!(map.get("amq.topic"), Some(&1));
    let s = ShortStr::from_static("x");
    assert_eq!(alloc::format!("{s} {s:?}"), "x \"x\"");
    assert_eq!(&*s, "x");
    assert!(ShortStr::from_utf8(Bytes::from_static(b"\xc3")).is_err());
}

// ---------------------------------------------------------------------------------------------
// Field tables.

fn field_value_cases() -> Vec<(FieldValue, &'static [u8])> {
    vec![
        (FieldValue::Bool(true), b"t\x01"),
        (FieldValue::I8(-2), b"b\xfe"),
        (FieldValue::U8(200), b"B\xc8"),
        (FieldValue::I16(-2), b"s\xff\xfe"),
        (FieldValue::U16(65535), b"u\xff\xff"),
        (FieldValue::I32(-2), b"I\xff\xff\xff\xfe"),
        (FieldValue::U32(0xdead_beef), b"i\xde\xad\xbe\xef"),
        (FieldValue::I64(-2), b"l\xff\xff\xff\xff\xff\xff\xff\xfe"),
        (FieldValue::F32(1.5), b"f\x3f\xc0\x00\x00"),
        (FieldValue::F64(-0.5), b"d\xbf\xe0\x00\x00\x00\x00\x00\x00"),
        (
            FieldValue::Decimal {
                scale: 2,
                value: 12345,
            },
            b"D\x02\x00\x00\x30\x39",
        ),
        (FieldValue::from("hi"), b"S\x00\x00\x00\x02hi"),
        (
            FieldValue::Array(vec![FieldValue::U8(1), FieldValue::Void]),
            b"A\x00\x00\x00\x03B\x01V",
        ),
        (
            FieldValue::Timestamp(1_700_000_000),
            b"T\x00\x00\x00\x00\x65\x53\xf1\x00",
        ),
        (
            FieldValue::Table([("k", FieldValue::Bool(false))].into_iter().collect()),
            b"F\x00\x00\x00\x04\x01kt\x00",
        ),
        (FieldValue::Void, b"V"),
        (
            FieldValue::Bytes(LongStr::from(vec![0u8, 255])),
            b"x\x00\x00\x00\x02\x00\xff",
        ),
    ]
}

#[test]
fn every_field_value_type_has_rabbitmq_wire_form() {
    for (value, wire) in field_value_cases() {
        let mut out = Vec::new();
        value.encode(&mut out);
        assert_eq!(out, wire, "{value:?}");
        assert_eq!(value.encoded_len(), wire.len());
        // As the single entry "a" of a table.
        let table_wire = cat(&[&(wire.len() as u32 + 2).to_be_bytes(), b"\x01a", wire]);
        let table = FieldTable::decode(&table_wire).unwrap();
        assert_eq!(table.get("a"), Some(&value));
        let mut out = Vec::new();
        table.encode(&mut out);
        assert_eq!(out, table_wire);
    }
}

#[test]
fn table_keeps_wire_order_and_insert_replaces_in_place() {
    let mut t = FieldTable::new();
    t.insert("b", 1u8.into());
    t.insert("a", 2u8.into());
    t.insert("b", 3u8.into());
    assert_eq!(t.len(), 2);
    assert_eq!(
        t.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(),
        ["b", "a"]
    );
    assert_eq!(t.get("b"), Some(&FieldValue::U8(3)));
    assert_eq!(t.remove("b"), Some(FieldValue::U8(3)));
    assert_eq!(t.get("b"), None);
    assert_eq!(FieldValue::I16(-7).as_i64(), Some(-7));
}

#[test]
fn unknown_field_type_is_a_syntax_error() {
    let err = FieldTable::decode(b"\x00\x00\x00\x03\x01aZ").unwrap_err();
    assert_eq!(err, DecodeError::UnknownFieldType(b'Z'));
    assert_eq!(err.reply_code(), SYNTAX_ERROR);
    assert_eq!(alloc::format!("{err}"), "unknown field type 'Z'");
}

#[test]
fn table_length_past_the_input_is_truncated() {
    assert_eq!(
        FieldTable::decode(b"\xff\xff\xff\xff\x01a").unwrap_err(),
        DecodeError::Truncated
    );
    // An entry running past the table's own length.
    assert_eq!(
        FieldTable::decode(b"\x00\x00\x00\x03\x01aI\x00\x00\x00\x00").unwrap_err(),
        DecodeError::Truncated
    );
}

/// Nested arrays one level past the limit, built as bytes: `A len A len ... A 0`.
fn nested_arrays(levels: usize) -> Vec<u8> {
    let mut inner: Vec<u8> = b"A\x00\x00\x00\x00".to_vec();
    for _ in 1..levels {
        let mut outer = b"A".to_vec();
        outer.extend_from_slice(&(inner.len() as u32).to_be_bytes());
        outer.extend_from_slice(&inner);
        inner = outer;
    }
    let mut table = (inner.len() as u32 + 2).to_be_bytes().to_vec();
    table.extend_from_slice(b"\x01a");
    table.extend_from_slice(&inner);
    table
}

#[test]
fn nesting_depth_is_limited() {
    assert!(FieldTable::decode(&nested_arrays(MAX_TABLE_DEPTH - 1)).is_ok());
    assert_eq!(
        FieldTable::decode(&nested_arrays(MAX_TABLE_DEPTH)).unwrap_err(),
        DecodeError::NestingTooDeep
    );
    // Far deeper input fails the same way, without exhausting the stack.
    assert_eq!(
        FieldTable::decode(&nested_arrays(2_000)).unwrap_err(),
        DecodeError::NestingTooDeep
    );
}

// ---------------------------------------------------------------------------------------------
// Properties.

#[test]
fn property_flags_known_bytes() {
    let p = BasicProperties {
        content_type: Some("text/plain".into()),
        delivery_mode: Some(2),
        ..Default::default()
    };
    let mut out = Vec::new();
    p.encode(&mut out);
    assert_eq!(out, b"\x90\x00\x0atext/plain\x02");
    assert_eq!(p.encoded_len(), out.len());
    assert_eq!(BasicProperties::decode(&out).unwrap(), p);
    assert!(p.is_persistent());

    let mut out = Vec::new();
    BasicProperties::default().encode(&mut out);
    assert_eq!(out, b"\x00\x00");

    let all_set = BasicProperties {
        content_type: Some("".into()),
        content_encoding: Some("".into()),
        headers: Some(FieldTable::new()),
        delivery_mode: Some(1),
        priority: Some(9),
        correlation_id: Some("".into()),
        reply_to: Some("".into()),
        expiration: Some("".into()),
        message_id: Some("".into()),
        timestamp: Some(0),
        kind: Some("".into()),
        user_id: Some("".into()),
        app_id: Some("".into()),
        cluster_id: Some("".into()),
    };
    assert_eq!(all_set.flags(), 0xfffc);
}

#[test]
fn property_flag_continuation_words() {
    // Continuation bit set, then an empty continuation word: accepted.
    let raw = b"\x10\x01\x00\x00\x02";
    assert_eq!(BasicProperties::decode(raw).unwrap().delivery_mode, Some(2));
    assert_eq!(peek_delivery_mode(raw).unwrap(), Some(2));
    // A property bit in a continuation word cannot be decoded.
    assert_eq!(
        BasicProperties::decode(b"\x00\x01\x80\x00").unwrap_err(),
        DecodeError::UnknownProperty
    );
    // Bit 1 of the first word is no basic property.
    assert_eq!(
        BasicProperties::decode(b"\x00\x02").unwrap_err(),
        DecodeError::UnknownProperty
    );
    // Continuation bit with no following word.
    assert_eq!(
        BasicProperties::decode(b"\x00\x01").unwrap_err(),
        DecodeError::Truncated
    );
}

#[test]
fn peeks_skip_earlier_properties() {
    let mut headers = FieldTable::new();
    headers.insert("x-match", "all".into());
    let p = BasicProperties {
        content_type: Some("application/json".into()),
        content_encoding: Some("gzip".into()),
        headers: Some(headers.clone()),
        delivery_mode: Some(2),
        priority: Some(5),
        correlation_id: Some("c".into()),
        reply_to: Some("r".into()),
        expiration: Some("60000".into()),
        user_id: Some("guest".into()),
        ..Default::default()
    };
    let raw = p.to_bytes();
    assert_eq!(peek_delivery_mode(&raw).unwrap(), Some(2));
    assert_eq!(peek_priority(&raw).unwrap(), Some(5));
    assert_eq!(peek_headers(&raw).unwrap(), Some(headers));
    assert_eq!(peek_expiration(&raw).unwrap(), Some("60000"));
    assert_eq!(peek_user_id(&raw).unwrap(), Some("guest"));
    assert_eq!(BasicProperties::decode_bytes(&raw).unwrap(), p);

    let none = BasicProperties::default().to_bytes();
    assert_eq!(peek_delivery_mode(&none).unwrap(), None);
    assert_eq!(peek_headers(&none).unwrap(), None);
    assert_eq!(peek_expiration(&none).unwrap(), None);
}

// ---------------------------------------------------------------------------------------------
// Frames.

#[test]
fn heartbeat_frame_known_bytes() {
    let mut out = Vec::new();
    encode_heartbeat(&mut out);
    assert_eq!(out, b"\x08\x00\x00\x00\x00\x00\x00\xce");
    let frames = decode_all(&out, 1, 0);
    assert_eq!(
        frames,
        [Frame {
            channel: 0,
            kind: FrameKind::Heartbeat
        }]
    );
}

#[test]
fn method_frame_known_bytes_and_byte_at_a_time_decoding() {
    let mut out = Vec::new();
    encode_method_frame(&mut out, 1, &ChannelOpenOk::default().into());
    assert_eq!(
        out,
        b"\x01\x00\x01\x00\x00\x00\x08\x00\x14\x00\x0b\x00\x00\x00\x00\xce"
    );
    let frames = decode_all(&out, 1, 4096);
    assert_eq!(frames.len(), 1);
    assert_eq!(frames[0].channel, 1);
    let FrameKind::Method(payload) = &frames[0].kind else {
        panic!()
    };
    assert_eq!(
        Method::decode(payload).unwrap(),
        Method::ChannelOpenOk(ChannelOpenOk::default())
    );
}

#[test]
fn incomplete_frame_leaves_buffer_untouched() {
    let mut out = Vec::new();
    encode_heartbeat(&mut out);
    let mut buf = BytesMut::from(&out[..7]);
    assert_eq!(decode_frame(&mut buf, 0).unwrap(), None);
    assert_eq!(&buf[..], &out[..7]);
}

#[test]
fn bad_frame_end_unknown_type_and_oversize_are_errors() {
    let mut buf = BytesMut::from(&b"\x08\x00\x00\x00\x00\x00\x00\x00"[..]);
    assert_eq!(decode_frame(&mut buf, 0), Err(DecodeError::BadFrameEnd(0)));
    let mut buf = BytesMut::from(&b"AMQP\x00\x00\x09\x01"[..]);
    assert_eq!(
        decode_frame(&mut buf, 0),
        Err(DecodeError::UnknownFrameType(b'A'))
    );
    // A payload of 4097 > 4096: rejected from the 7-byte header alone. (RabbitMQ 3.10 does
    // not count the 8 octets of overhead against frame_max.)
    let mut buf = BytesMut::from(&b"\x03\x00\x01\x00\x00\x10\x01"[..]);
    let err = decode_frame(&mut buf, 4096).unwrap_err();
    assert_eq!(
        err,
        DecodeError::FrameTooLarge {
            size: 4097 + 8,
            max: 4096
        }
    );
    assert_eq!(err.reply_code(), FRAME_ERROR);
    // A payload of exactly frame_max is taken.
    let mut buf = BytesMut::from(&b"\x03\x00\x01\x00\x00\x10\x00"[..]);
    assert_eq!(decode_frame(&mut buf, 4096), Ok(None));
    // A heartbeat with a payload is RabbitMQ's unknown_frame, once all of it is in.
    let mut buf = BytesMut::from(&b"\x08\x00\x00\x00\x00\x00\x03xyz\xce"[..]);
    assert_eq!(
        decode_frame(&mut buf, 0),
        Err(DecodeError::UnknownFrameType(8))
    );
    assert_eq!(buf.len(), 11, "left in the buffer for the fault's text");
}

#[test]
fn content_is_split_by_frame_max() {
    let props = BasicProperties {
        delivery_mode: Some(2),
        ..Default::default()
    }
    .to_bytes();
    let body: Vec<u8> = (0..10_000u32).map(|i| i as u8).collect();
    let mut out = Vec::new();
    encode_content(&mut out, 3, class::BASIC, &props, &body, 4096);
    let frames = decode_all(&out, 1000, 4096);
    // 10000 = 4088 + 4088 + 1824.
    assert_eq!(frames.len(), 4);
    let FrameKind::Header(h) = &frames[0].kind else {
        panic!()
    };
    let header = ContentHeader::decode(h.clone()).unwrap();
    assert_eq!(header.class_id, 60);
    assert_eq!(header.body_size, 10_000);
    assert_eq!(header.properties, props);
    let sizes: Vec<usize> = frames[1..]
        .iter()
        .map(|f| match &f.kind {
            FrameKind::Body(b) => b.len(),
            k => panic!("{k:?}"),
        })
        .collect();
    assert_eq!(sizes, [4088, 4088, 1824]);
    let joined: Vec<u8> = frames[1..]
        .iter()
        .flat_map(|f| match &f.kind {
            FrameKind::Body(b) => b.to_vec(),
            _ => Vec::new(),
        })
        .collect();
    assert_eq!(joined, body);
    assert!(frames.iter().all(|f| f.channel == 3));

    // frame_max 0: one body frame; empty body: no body frame.
    let mut out = Vec::new();
    encode_content(&mut out, 1, 60, &props, &body, 0);
    assert_eq!(decode_all(&out, 4096, 0).len(), 2);
    let mut out = Vec::new();
    encode_content(&mut out, 1, 60, &props, b"", 4096);
    assert_eq!(decode_all(&out, 4096, 4096).len(), 1);
}

#[test]
fn encode_message_equals_method_frame_then_content() {
    let deliver = Method::from(BasicDeliver {
        consumer_tag: "c".into(),
        delivery_tag: 9,
        ..Default::default()
    });
    let props = BasicProperties::default().to_bytes();
    let body = [7u8; 5000];
    let mut separate = Vec::new();
    encode_method_frame(&mut separate, 4, &deliver);
    encode_content(&mut separate, 4, 60, &props, &body, 4096);
    let mut together = Vec::new();
    encode_message(&mut together, 4, &deliver, &props, &body, 4096);
    assert_eq!(together, separate);
    assert_eq!(decode_all(&together, 777, 4096).len(), 4);
}

#[test]
fn content_header_known_bytes() {
    let header = ContentHeader::decode(Bytes::from_static(
        b"\x00\x3c\x00\x00\x00\x00\x00\x00\x00\x00\x00\x05\x10\x00\x01",
    ))
    .unwrap();
    assert_eq!(header.class_id, 60);
    assert_eq!(header.body_size, 5);
    assert_eq!(&header.properties[..], b"\x10\x00\x01");
    assert_eq!(
        ContentHeader::decode(Bytes::from_static(b"\x00\x3c\x00\x00")),
        Err(DecodeError::Truncated)
    );
    let mut out = Vec::new();
    header.encode_frame(&mut out, 2);
    let frames = decode_all(&out, 3, 0);
    assert_eq!(
        frames[0].kind,
        FrameKind::Header(Bytes::from_static(
            b"\x00\x3c\x00\x00\x00\x00\x00\x00\x00\x00\x00\x05\x10\x00\x01"
        ))
    );
}

#[test]
fn protocol_header_is_amqp_0_9_1() {
    assert_eq!(&PROTOCOL_HEADER, b"AMQP\x00\x00\x09\x01");
    assert_eq!(FRAME_OVERHEAD, 8);
}

// ---------------------------------------------------------------------------------------------
// Property-based tests.

/// Feeds `data` to every decoder; none may panic.
fn decode_everything(data: &[u8]) {
    let bytes = Bytes::copy_from_slice(data);
    let _ = Method::decode(&bytes);
    let _ = ContentHeader::decode(bytes.clone());
    let _ = BasicProperties::decode(data);
    let _ = BasicProperties::decode_bytes(&bytes);
    let _ = FieldTable::decode(data);
    let _ = peek_delivery_mode(data);
    let _ = peek_priority(data);
    let _ = peek_headers(data);
    let _ = peek_expiration(data);
    let _ = peek_user_id(data);
    for frame_max in [0, 4096] {
        let mut buf = BytesMut::from(data);
        while let Ok(Some(frame)) = decode_frame(&mut buf, frame_max) {
            match frame.kind {
                FrameKind::Method(p) => {
                    let _ = Method::decode(&p);
                }
                FrameKind::Header(p) => {
                    if let Ok(h) = ContentHeader::decode(p) {
                        let _ = BasicProperties::decode_bytes(&h.properties);
                    }
                }
                FrameKind::Body(_) | FrameKind::Heartbeat => {}
            }
        }
    }
}

#[derive(Clone, Debug)]
enum TestFrame {
    Method(u16, Method),
    Content(u16, alloc::boxed::Box<BasicProperties>, Vec<u8>),
    Heartbeat,
}

fn arb_test_frame() -> impl Strategy<Value = TestFrame> {
    prop_oneof![
        (any::<u16>(), generated::strategies::arb_method())
            .prop_map(|(c, m)| TestFrame::Method(c, m)),
        (
            any::<u16>(),
            arb_properties(),
            prop::collection::vec(any::<u8>(), 0..300)
        )
            .prop_map(|(c, p, b)| TestFrame::Content(c, p.into(), b)),
        Just(TestFrame::Heartbeat),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn method_round_trips(m in generated::strategies::arb_method()) {
        let bytes = method_bytes(&m);
        prop_assert_eq!(Method::decode(&Bytes::from(bytes)).unwrap(), m);
    }

    #[test]
    fn field_table_round_trips(t in arb_table()) {
        let mut out = Vec::new();
        t.encode(&mut out);
        prop_assert_eq!(out.len(), t.encoded_len());
        prop_assert_eq!(&FieldTable::decode(&out).unwrap(), &t);
        prop_assert_eq!(FieldTable::decode_bytes(&Bytes::from(out)).unwrap(), t);
    }

    #[test]
    fn basic_properties_round_trip(p in arb_properties()) {
        let raw = p.to_bytes();
        prop_assert_eq!(raw.len(), p.encoded_len());
        prop_assert_eq!(&BasicProperties::decode(&raw).unwrap(), &p);
        prop_assert_eq!(peek_delivery_mode(&raw).unwrap(), p.delivery_mode);
        prop_assert_eq!(peek_priority(&raw).unwrap(), p.priority);
        prop_assert_eq!(peek_expiration(&raw).unwrap(), p.expiration.as_deref());
        prop_assert_eq!(peek_user_id(&raw).unwrap(), p.user_id.as_deref());
        prop_assert_eq!(peek_headers(&raw).unwrap(), p.headers);
    }

    #[test]
    fn frame_streams_round_trip_however_split(
        frames in prop::collection::vec(arb_test_frame(), 1..6),
        step in 1usize..64,
        frame_max in prop_oneof![Just(0u32), 9u32..200],
    ) {
        let mut stream = Vec::new();
        for f in &frames {
            match f {
                TestFrame::Method(c, m) => encode_method_frame(&mut stream, *c, m),
                TestFrame::Content(c, p, body) => {
                    encode_content(&mut stream, *c, 60, &p.to_bytes(), body, frame_max)
                }
                TestFrame::Heartbeat => encode_heartbeat(&mut stream),
            }
        }
        // Method and header frames may exceed a tiny frame_max; decode without a limit and
        // check body frames against it separately.
        let decoded = decode_all(&stream, step, 0);
        let mut it = decoded.into_iter();
        for f in &frames {
            match f {
                TestFrame::Method(c, m) => {
                    let got = it.next().unwrap();
                    prop_assert_eq!(got.channel, *c);
                    let FrameKind::Method(p) = got.kind else { panic!("{:?}", got.kind) };
                    prop_assert_eq!(&Method::decode(&p).unwrap(), m);
                }
                TestFrame::Content(c, props, body) => {
                    let got = it.next().unwrap();
                    prop_assert_eq!(got.channel, *c);
                    let FrameKind::Header(h) = got.kind else { panic!("{:?}", got.kind) };
                    let h = ContentHeader::decode(h).unwrap();
                    prop_assert_eq!(h.body_size, body.len() as u64);
                    prop_assert_eq!(&BasicProperties::decode_bytes(&h.properties).unwrap(), &**props);
                    let mut joined = Vec::new();
                    while joined.len() < body.len() {
                        let got = it.next().unwrap();
                        let FrameKind::Body(b) = got.kind else { panic!("{:?}", got.kind) };
                        prop_assert!(!b.is_empty());
                        if frame_max != 0 {
                            prop_assert!(b.len() + FRAME_OVERHEAD <= frame_max as usize);
                        }
                        joined.extend_from_slice(&b);
                    }
                    prop_assert_eq!(&joined, body);
                }
                TestFrame::Heartbeat => {
                    prop_assert_eq!(it.next().unwrap().kind, FrameKind::Heartbeat);
                }
            }
        }
        prop_assert!(it.next().is_none());
    }

    #[test]
    fn decoding_arbitrary_bytes_never_panics(data in prop::collection::vec(any::<u8>(), 0..200)) {
        decode_everything(&data);
    }

    #[test]
    fn decoding_mutated_valid_input_never_panics(
        m in generated::strategies::arb_method(),
        p in arb_properties(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        cut in any::<prop::sample::Index>(),
    ) {
        for mut data in [method_bytes(&m), p.to_bytes().to_vec()] {
            for (at, byte) in &edits {
                let i = at.index(data.len());
                data[i] = *byte;
            }
            decode_everything(&data);
            let end = cut.index(data.len() + 1);
            decode_everything(&data[..end]);
            // The same, framed, so the frame decoder hands payloads on.
            let mut framed = Vec::new();
            encode_frame(&mut framed, FRAME_METHOD, 1, &data);
            encode_frame(&mut framed, FRAME_HEADER, 1, &data);
            decode_everything(&framed);
        }
    }
}

proptest! {
    #[test]
    fn encode_deliver_matches_the_generic_encoder(
        tag in "[a-z.-]{0,300}",
        ex in "[a-z.]{0,40}",
        rk in "[a-zé.]{0,300}",
        delivery_tag in any::<u64>(),
        redelivered in any::<bool>(),
        body in prop::collection::vec(any::<u8>(), 0..600),
        frame_max in prop_oneof![Just(0u32), 4096u32..5000],
    ) {
        let (tag, ex, rk) = (ShortStr::from(tag), ShortStr::from(ex), ShortStr::from(rk));
        let props = BasicProperties { delivery_mode: Some(2), ..Default::default() }.to_bytes();
        let deliver = BasicDeliver {
            consumer_tag: tag.clone(),
            delivery_tag,
            redelivered,
            exchange: ex.clone(),
            routing_key: rk.clone(),
        };
        let mut generic = Vec::new();
        encode_message(&mut generic, 3, &deliver.into(), &props, &body, frame_max);
        let mut direct = Vec::new();
        encode_deliver(&mut direct, 3, &tag, delivery_tag, redelivered, &ex, &rk, &props, &body, frame_max);
        prop_assert_eq!(generic, direct);
    }
}

#[test]
fn shortstr_hashes_like_its_str() {
    use core::hash::BuildHasher;
    let build = foldhash::fast::FixedState::default();
    for s in ["", "amq.direct", "a.b.c", "é😀", "x"] {
        assert_eq!(build.hash_one(ShortStr::from(s)), build.hash_one(s));
    }
    let mut map: hashbrown::HashMap<ShortStr, u8, foldhash::fast::FixedState> = Default::default();
    map.insert(ShortStr::from("queue"), 7);
    assert_eq!(map.get("queue"), Some(&7));
}
