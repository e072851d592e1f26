//! Protocol errors (AMQP 0-9-1 §4.2.2, §4.2.3, §4.2.6) and how RabbitMQ answers them: wrong
//! protocol headers, frames that do not frame, frames on channels that are not open, content
//! out of sequence or of the wrong size. Garbage must never panic the server.

mod support;

use support::*;
use warren_core::codec::{
    encode_frame, encode_method_frame, BasicPublish, ChannelCloseOk, ChannelOpen,
    ConnectionCloseOk, ConnectionOpen, ConnectionStartOk, ConnectionTuneOk, ContentHeader, LongStr,
    Method, QueueDeclare, FRAME_BODY, FRAME_HEADER, FRAME_HEARTBEAT, FRAME_METHOD, PROTOCOL_HEADER,
};
use warren_core::ConnectionConfig;

/// A method frame's bytes.
fn method_frame(channel: u16, m: impl Into<Method>) -> Vec<u8> {
    let mut out = Vec::new();
    encode_method_frame(&mut out, channel, &m.into());
    out
}

/// A content header frame announcing `body_size` bytes, with no properties.
fn header_frame(channel: u16, body_size: u64) -> Vec<u8> {
    let mut out = Vec::new();
    ContentHeader {
        class_id: 60,
        body_size,
        properties: vec![0, 0].into(),
    }
    .encode_frame(&mut out, channel);
    out
}

fn body_frame(channel: u16, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&mut out, FRAME_BODY, channel, body);
    out
}

fn publish_frame(channel: u16, rk: &str) -> Vec<u8> {
    method_frame(
        channel,
        BasicPublish {
            routing_key: rk.into(),
            ..Default::default()
        },
    )
}

/// Sends `bytes` on an open connection with channel 1 open and returns what came back;
/// asserts the connection is over afterwards (the client answered close-ok) and the broker
/// forgot it.
fn fatal(bytes: &[u8]) -> Vec<Received> {
    let mut w = World::new();
    let c = w.connect_channel();
    let r = w.client(c).send_raw(bytes);
    assert!(w.client(c).is_socket_closed(), "still open after {r:?}");
    assert_eq!(w.broker().connection_count(), 0);
    r
}

#[test]
fn a_method_on_a_channel_that_is_not_open_is_a_504_connection_error() {
    let r = fatal(&method_frame(
        3,
        QueueDeclare {
            queue: "x".into(),
            ..Default::default()
        },
    ));
    assert_eq!(
        r,
        vec![connection_close(
            504,
            "CHANNEL_ERROR - expected 'channel.open'",
            50,
            10
        )]
    );
}

/// RabbitMQ 3.10.8 starts a channel's frame assembler for any frame, so a content header on a
/// channel that is not open is "not a method frame": 505 UNEXPECTED_FRAME, class/method 0.
#[test]
fn a_content_header_on_a_channel_that_is_not_open_is_505() {
    let r = fatal(&header_frame(3, 5));
    assert_eq!(
        r,
        vec![connection_close(
            505,
            "UNEXPECTED_FRAME - expected method frame, got non method frame instead",
            0,
            0
        )]
    );
}

#[test]
fn a_second_channel_open_is_a_504_connection_error() {
    assert_eq!(
        fatal(&method_frame(1, ChannelOpen::default())),
        vec![connection_close(
            504,
            "CHANNEL_ERROR - second 'channel.open' seen",
            20,
            10
        )]
    );
}

#[test]
fn a_wrong_protocol_header_is_answered_with_ours_and_the_socket_closes() {
    let mut w = World::new();
    let c = w.connect();
    let r = w.client(c).send_raw(b"AMQP\x00\x00\x09\x00");
    assert_eq!(r, vec![Received::ProtocolHeader(PROTOCOL_HEADER)]);
    assert!(w.client(c).is_socket_closed());
    assert_eq!(w.broker().connection_count(), 0);
}

#[test]
fn an_http_request_is_answered_with_the_protocol_header_and_the_socket_closes() {
    let mut w = World::new();
    let c = w.connect();
    let r = w.client(c).send_raw(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r, vec![Received::ProtocolHeader(PROTOCOL_HEADER)]);
    assert!(w.client(c).is_socket_closed());
}

#[test]
fn a_protocol_header_in_pieces_is_accepted() {
    let mut w = World::new();
    let c = w.connect();
    assert_eq!(w.client(c).send_raw(b"AM"), vec![]);
    assert_eq!(w.client(c).send_raw(b"QP\x00\x00"), vec![]);
    let r = w.client(c).send_raw(b"\x09\x01");
    assert!(matches!(r[0].method(), Some(Method::ConnectionStart(_))));
}

#[test]
fn garbage_after_the_handshake_is_a_501_connection_close() {
    let r = fatal(&[0xff; 20]);
    let [Received::Method {
        method: Method::ConnectionClose(close),
        ..
    }] = r.as_slice()
    else {
        panic!("{r:?}");
    };
    assert_eq!(close.reply_code, 501);
    assert!(
        close.reply_text.starts_with("FRAME_ERROR - type 255"),
        "{close:?}"
    );
}

/// RabbitMQ 3.10.8 checks a frame's size against frame_max before its type, so twenty 0xff
/// bytes are "too large" rather than "unknown".
#[test]
fn garbage_after_the_handshake_is_reported_as_rabbitmq_reports_it() {
    assert_eq!(
        fatal(&[0xff; 20]),
        vec![connection_close(
            501,
            "FRAME_ERROR - type 255, all octets = <<>>: {frame_too_large,4294967295,131064}",
            0,
            0
        )]
    );
}

#[test]
fn an_unknown_frame_type_is_501_showing_its_payload() {
    assert_eq!(
        fatal(b"\x09\x00\x00\x00\x00\x00\x02ab\xce"),
        vec![connection_close(
            501,
            "FRAME_ERROR - type 9, all octets = <<\"ab\">>: unknown_frame",
            0,
            0
        )]
    );
}

#[test]
fn a_bad_frame_end_octet_is_501() {
    assert_eq!(
        fatal(b"\x08\x00\x00\x00\x00\x00\x00\xcf"),
        vec![connection_close(
            501,
            "FRAME_ERROR - type 8, all octets = <<>>: {invalid_frame_end_marker,207}",
            0,
            0
        )]
    );
}

#[test]
fn a_heartbeat_on_a_channel_other_than_zero_is_505() {
    assert_eq!(
        fatal(b"\x08\x00\x01\x00\x00\x00\x00\xce"),
        vec![connection_close(
            505,
            "UNEXPECTED_FRAME - type 8, all octets = <<>>",
            0,
            0
        )]
    );
}

#[test]
fn a_frame_larger_than_the_negotiated_frame_max_is_501() {
    let (mut w, c) = tuned(2047, 4096);
    w.client(c).open_channel(1);
    let mut bytes = publish_frame(1, "q");
    bytes.extend(header_frame(1, 5000));
    bytes.extend(body_frame(1, &[b'x'; 5000]));
    assert_eq!(
        w.client(c).send_raw(&bytes),
        vec![connection_close(
            501,
            "FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,5000,4088}",
            0,
            0
        )]
    );
    assert!(w.client(c).is_socket_closed());
}

#[test]
fn a_body_frame_without_a_publish_is_505() {
    assert_eq!(
        fatal(&body_frame(1, b"abc")),
        vec![connection_close(
            505,
            "UNEXPECTED_FRAME - expected method frame, got non method frame instead",
            0,
            0
        )]
    );
}

/// A publish followed by another method instead of its content header.
fn publish_then_declare() -> Vec<u8> {
    let mut bytes = publish_frame(1, "q");
    bytes.extend(method_frame(
        1,
        QueueDeclare {
            queue: "q".into(),
            ..Default::default()
        },
    ));
    bytes
}

#[test]
fn a_method_where_a_content_header_was_due_is_505() {
    let r = fatal(&publish_then_declare());
    let [Received::Method {
        method: Method::ConnectionClose(close),
        ..
    }] = r.as_slice()
    else {
        panic!("{r:?}");
    };
    assert_eq!(close.reply_code, 505);
    assert_eq!(
        close.reply_text.as_str(),
        "UNEXPECTED_FRAME - expected content header for class 60, got non content header frame \
         instead"
    );
}

/// RabbitMQ 3.10.8 names the publish whose content was interrupted (60.40), not the method
/// that interrupted it.
#[test]
fn a_method_where_a_content_header_was_due_names_the_interrupted_publish() {
    assert_eq!(
        fatal(&publish_then_declare()),
        vec![connection_close(
            505,
            "UNEXPECTED_FRAME - expected content header for class 60, got non content header \
             frame instead",
            60,
            40
        )]
    );
}

/// RabbitMQ 3.10.8 does not check this at all (the assembler waits for a negative number of
/// bytes); newer RabbitMQ answers `501 FRAME_ERROR - content body frame exceeds remaining
/// content size`. Warren closes with 501 too.
#[test]
fn a_content_body_longer_than_its_header_said_is_a_501_connection_error() {
    let mut bytes = publish_frame(1, "q");
    bytes.extend(header_frame(1, 5));
    bytes.extend(body_frame(1, b"0123456789"));
    let r = fatal(&bytes);
    let [Received::Method {
        method: Method::ConnectionClose(close),
        ..
    }] = r.as_slice()
    else {
        panic!("{r:?}");
    };
    assert_eq!(close.reply_code, 501);
    assert!(close.reply_text.starts_with("FRAME_ERROR - "), "{close:?}");
}

#[test]
fn a_message_over_the_max_message_size_closes_the_channel_with_406() {
    let mut w = World::new();
    let c = w.connect_with(ConnectionConfig {
        max_message_size: 1000,
        ..Default::default()
    });
    w.client(c).handshake();
    w.client(c).open_channel(1);
    w.client(c).declare_queue(1, "q");
    let r = w.client(c).publish_all(1, "q", &[&"x".repeat(2000)]);
    assert_eq!(
        r,
        vec![channel_close(
            1,
            406,
            "PRECONDITION_FAILED - message size 2000 is larger than configured max size 1000",
            60,
            40
        )]
    );
    // The connection is fine; the body frames were dropped with the channel.
    w.client(c).open_channel(1);
    assert_eq!(w.client(c).declare_queue(1, "q").message_count, 0);
    w.client(c).publish_all(1, "q", &["small"]);
    assert_eq!(w.client(c).declare_queue(1, "q").message_count, 1);
}

#[test]
fn frames_after_a_connection_error_are_ignored_until_close_ok() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client_state(c).auto_close_ok = false;
    let r = w.client(c).send_raw(&body_frame(1, b"abc"));
    assert_eq!(r.len(), 1, "{r:?}");
    // Anything but close-ok is dropped now.
    let mut more = publish_frame(1, "q");
    more.extend(method_frame(1, ChannelOpen::default()));
    assert_eq!(w.client(c).send_raw(&more), vec![]);
    assert!(!w.client(c).is_socket_closed());
    assert_eq!(w.client(c).send(0, ConnectionCloseOk), vec![]);
    assert!(w.client(c).is_socket_closed());
    assert!(
        !w.client(c).server().answered_close(),
        "our close, their close-ok: we hang up"
    );
}

#[test]
fn a_connection_close_left_unanswered_times_out() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client_state(c).auto_close_ok = false;
    w.client(c).send_raw(&body_frame(1, b"abc"));
    assert!(!w.client(c).is_socket_closed());
    w.advance(60_000);
    assert!(w.client(c).is_socket_closed());
}

/// A small deterministic generator (no dependency, same bytes every run).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

#[test]
fn garbage_in_any_connection_state_never_panics() {
    let mut rng = Lcg(42);
    for round in 0..300 {
        let mut w = World::new();
        let c = w.connect();
        // Get to a random point of the handshake or beyond first.
        match round % 4 {
            0 => {}
            1 => {
                w.client(c).send_raw(&PROTOCOL_HEADER);
            }
            2 => w.client(c).handshake(),
            _ => {
                w.client(c).handshake();
                w.client(c).open_channel(1);
                w.client(c).send_raw(&publish_frame(1, "q"));
            }
        }
        let n = (rng.next() % 64) as usize;
        let mut junk = rng.bytes(n);
        // Sometimes make it look like a frame so deeper layers see it.
        if rng.next().is_multiple_of(2) && junk.len() >= 8 {
            junk[0] = [1, 2, 3, 8][(rng.next() % 4) as usize];
            junk[1] = 0;
            junk[2] = (rng.next() % 3) as u8;
            let size = (junk.len() - 8) as u32;
            junk[3..7].copy_from_slice(&size.to_be_bytes());
            let last = junk.len() - 1;
            junk[last] = 0xce;
        }
        w.client_state(c).auto_close_ok = rng.next().is_multiple_of(2);
        w.client(c).send_raw(&junk);
        w.advance(20_000);
        // Whatever happened, the broker agrees with the connection about whether it is open.
        let open = !w.client(c).is_socket_closed();
        assert!(w.broker().connection_count() <= usize::from(open));
    }
}

#[test]
fn a_header_frame_in_place_of_a_method_before_open_closes_silently() {
    let mut w = World::new();
    let c = w.connect();
    w.client(c).send_raw(&PROTOCOL_HEADER);
    let mut bytes = Vec::new();
    encode_frame(&mut bytes, FRAME_HEADER, 0, b"abcd");
    assert_eq!(w.client(c).send_raw(&bytes), vec![]);
    assert!(w.client(c).is_socket_closed());
}

// -----------------------------------------------------------------------------------------
// Malformed input as RabbitMQ 3.10 answers it (each checked side by side with a raw-socket
// client against Debian's rabbitmq-server 3.10.8; tests/python/test_protocol.py has them too).
// -----------------------------------------------------------------------------------------

/// A connection whose tune-ok asks for `channel_max` and `frame_max`, open, no channel.
fn tuned(channel_max: u16, frame_max: u32) -> (World, Cid) {
    let mut w = World::new();
    let c = w.connect();
    let r = w.client(c).handshake_with(&Handshake {
        tune_ok: Some(ConnectionTuneOk {
            channel_max,
            frame_max,
            heartbeat: 0,
        }),
        ..Default::default()
    });
    assert!(!w.client(c).is_socket_closed(), "refused: {r:?}");
    (w, c)
}

fn raw_frame(kind: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_frame(&mut out, kind, channel, payload);
    out
}

/// A content header frame with the given class, weight and property bytes.
fn header_with(channel: u16, class_id: u16, weight: u16, properties: &[u8]) -> Vec<u8> {
    let mut payload = Vec::new();
    payload.extend_from_slice(&class_id.to_be_bytes());
    payload.extend_from_slice(&weight.to_be_bytes());
    payload.extend_from_slice(&1u64.to_be_bytes());
    payload.extend_from_slice(properties);
    raw_frame(FRAME_HEADER, channel, &payload)
}

fn unexpected(text: &str) -> Vec<Received> {
    vec![connection_close(
        505,
        &format!("UNEXPECTED_FRAME - {text}"),
        60,
        40,
    )]
}

const HEADER_DUE: &str =
    "expected content header for class 60, got non content header frame instead";
const BODY_DUE: &str = "expected content body, got non content body frame instead";

#[test]
fn a_heartbeat_with_a_payload_is_501_unknown_frame() {
    assert_eq!(
        fatal(&raw_frame(FRAME_HEARTBEAT, 0, b"xyz")),
        vec![connection_close(
            501,
            "FRAME_ERROR - type 8, all octets = <<\"xyz\">>: unknown_frame",
            0,
            0
        )]
    );
}

#[test]
fn a_payload_of_exactly_frame_max_is_taken_and_one_more_octet_is_501() {
    let (mut w, c) = tuned(2047, 4096);
    w.client(c).open_channel(1);
    w.client(c).declare_queue(1, "q");
    let mut bytes = publish_frame(1, "q");
    bytes.extend(header_frame(1, 4096));
    bytes.extend(body_frame(1, &[b'x'; 4096]));
    assert_eq!(w.client(c).send_raw(&bytes), vec![]);
    assert_eq!(w.client(c).declare_queue(1, "q").message_count, 1);
    let mut bytes = publish_frame(1, "q");
    bytes.extend(header_frame(1, 4097));
    bytes.extend(body_frame(1, &[b'x'; 4097]));
    assert_eq!(
        w.client(c).send_raw(&bytes),
        vec![connection_close(
            501,
            "FRAME_ERROR - type 3, all octets = <<>>: {frame_too_large,4097,4088}",
            0,
            0
        )]
    );
}

#[test]
fn tune_ok_with_a_zero_frame_max_or_channel_max_closes_the_socket_silently() {
    for (channel_max, frame_max) in [(2047, 0), (0, 131_072)] {
        let mut w = World::new();
        let c = w.connect();
        let r = w.client(c).handshake_with(&Handshake {
            tune_ok: Some(ConnectionTuneOk {
                channel_max,
                frame_max,
                heartbeat: 0,
            }),
            ..Default::default()
        });
        assert_eq!(r.len(), 2, "start and tune only: {r:?}");
        assert!(w.client(c).is_socket_closed());
    }
}

#[test]
fn channel_max_limits_how_many_channels_are_open_not_their_numbers() {
    let (mut w, c) = tuned(2, 131_072);
    w.client(c).open_channel(1);
    w.client(c).open_channel(65535);
    let r = w
        .client(c)
        .send_raw(&method_frame(7, ChannelOpen::default()));
    assert_eq!(
        r,
        vec![connection_close(
            530,
            "NOT_ALLOWED - number of channels opened (2) has reached the negotiated channel_max (2)",
            0,
            0
        )]
    );
}

#[test]
fn a_close_ok_on_a_channel_never_opened_is_504() {
    assert_eq!(
        fatal(&method_frame(5, ChannelCloseOk)),
        vec![connection_close(
            504,
            "CHANNEL_ERROR - expected 'channel.open'",
            20,
            41
        )]
    );
}

#[test]
fn the_handshake_again_on_a_running_connection_is_504() {
    let again: [Method; 2] = [
        ConnectionOpen {
            virtual_host: "/".into(),
            ..Default::default()
        }
        .into(),
        ConnectionStartOk {
            mechanism: "PLAIN".into(),
            response: LongStr::from(&b"\0guest\0guest"[..]),
            locale: "en_US".into(),
            ..Default::default()
        }
        .into(),
    ];
    for m in again {
        let ids = (m.class_id(), m.method_id());
        assert_eq!(
            fatal(&method_frame(0, m)),
            vec![connection_close(
                504,
                "CHANNEL_ERROR - unexpected method in connection state running",
                ids.0,
                ids.1
            )]
        );
    }
}

#[test]
fn content_frames_out_of_order_are_505_naming_the_publish() {
    let body_first = [publish_frame(1, "q"), body_frame(1, b"x")].concat();
    assert_eq!(fatal(&body_first), unexpected(HEADER_DUE));
    let two_headers = [
        publish_frame(1, "q"),
        header_frame(1, 3),
        header_frame(1, 3),
    ]
    .concat();
    assert_eq!(fatal(&two_headers), unexpected(BODY_DUE));
    let other_class = [publish_frame(1, "q"), header_with(1, 50, 0, &[0, 0])].concat();
    assert_eq!(
        fatal(&other_class),
        unexpected("expected content header for class 60, got one for class 50 instead")
    );
    let weighted = [publish_frame(1, "q"), header_with(1, 60, 1, &[0, 0])].concat();
    assert_eq!(fatal(&weighted), unexpected(HEADER_DUE));
}

#[test]
fn a_header_announcing_an_enormous_body_allocates_nothing_and_other_channels_go_on() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).open_channel(2);
    let bytes = [publish_frame(1, "q"), header_frame(1, (1 << 63) - 1)].concat();
    assert_eq!(w.client(c).send_raw(&bytes), vec![]);
    w.client(c).declare_queue(2, "other");
    let r = w.client(c).send_raw(&method_frame(
        1,
        QueueDeclare {
            queue: "q".into(),
            ..Default::default()
        },
    ));
    assert_eq!(r, unexpected(BODY_DUE));
}

#[test]
fn content_properties_that_do_not_decode_are_541_and_nothing_is_delivered() {
    let mut headers_unknown_type = vec![0x20, 0];
    headers_unknown_type.extend_from_slice(&3u32.to_be_bytes());
    headers_unknown_type.extend_from_slice(b"\x01kZ");
    let cases: [&[u8]; 4] = [
        &[0x80, 0],             // content-type flagged, not there
        &[0x80, 0, 0x10, b'a'], // a shortstr running past the end
        &headers_unknown_type,  // a header of a type nobody knows
        &[0, 0, b'z', b'z'],    // octets after the last property
    ];
    for props in cases {
        let mut w = World::new();
        let c = w.connect_channel();
        w.client(c).declare_queue(1, "q");
        let bytes = [
            publish_frame(1, "q"),
            header_with(1, 60, 0, props),
            body_frame(1, b"x"),
        ]
        .concat();
        // RabbitMQ's text is the bare name.
        let close = connection_close(541, "INTERNAL_ERROR", 0, 0);
        assert_eq!(w.client(c).send_raw(&bytes), vec![close], "{props:?}");
        assert_eq!(w.broker().queue("/", "q").expect("declared").len(), 0);
    }
}

/// Field tables: RabbitMQ takes deep nesting and keys that are not UTF-8.
#[test]
fn deep_tables_and_keys_that_are_not_utf8_are_accepted() {
    let mut table: Vec<u8> = 0u32.to_be_bytes().to_vec();
    for _ in 0..100 {
        let mut outer = Vec::new();
        let entry_len = (3 + table.len()) as u32;
        outer.extend_from_slice(&entry_len.to_be_bytes());
        outer.extend_from_slice(b"\x01kF");
        outer.extend_from_slice(&table);
        table = outer;
    }
    let mut odd_key: Vec<u8> = 8u32.to_be_bytes().to_vec();
    odd_key.extend_from_slice(b"\x02\xff\xfeI\x00\x00\x00\x01");
    for args in [table, odd_key] {
        let mut w = World::new();
        let c = w.connect_channel();
        let mut payload = vec![0, 50, 0, 10, 0, 0];
        payload.extend_from_slice(b"\x01q\x00");
        payload.extend_from_slice(&args);
        let r = w.client(c).send_raw(&raw_frame(FRAME_METHOD, 1, &payload));
        assert!(
            matches!(
                r.as_slice(),
                [Received::Method {
                    channel: 1,
                    method: Method::QueueDeclareOk(_)
                }]
            ),
            "{r:?}"
        );
    }
}

#[test]
fn a_name_that_is_not_utf8_is_501_malformed_utf8() {
    let mut payload = vec![0, 50, 0, 10, 0, 0];
    payload.extend_from_slice(b"\x02\xff\xfe\x00");
    payload.extend_from_slice(&0u32.to_be_bytes());
    assert_eq!(
        fatal(&raw_frame(FRAME_METHOD, 1, &payload)),
        vec![connection_close(
            501,
            "FRAME_ERROR - Malformed UTF-8 in shortstr",
            0,
            0
        )]
    );
}

/// basic.publish is the one method whose strings RabbitMQ does not check: an exchange named
/// in bad UTF-8 is just not there (404), a routing key in bad UTF-8 routes nowhere.
#[test]
fn a_publish_naming_things_in_bad_utf8_is_not_an_error_of_framing() {
    let mut w = World::new();
    let c = w.connect_channel();
    let publish = |exchange: &[u8], key: &[u8]| {
        let mut payload = vec![0, 60, 0, 40, 0, 0, exchange.len() as u8];
        payload.extend_from_slice(exchange);
        payload.push(key.len() as u8);
        payload.extend_from_slice(key);
        payload.push(0);
        [
            raw_frame(FRAME_METHOD, 1, &payload),
            header_frame(1, 1),
            body_frame(1, b"x"),
        ]
        .concat()
    };
    assert_eq!(w.client(c).send_raw(&publish(b"", b"\xff\xfe")), vec![]);
    assert_eq!(
        w.client(c).send_raw(&publish(b"\xff\xfe", b"k")),
        vec![channel_close(
            1,
            404,
            "NOT_FOUND - no exchange '\u{fffd}\u{fffd}' in vhost '/'",
            60,
            40
        )]
    );
}
