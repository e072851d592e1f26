//! Tests of the `Engine` bindings, driven through real AMQP bytes on virtual time.
//!
//! Run with `wasm-bindgen-test-runner` in Node (default) and in headless Chromium
//! (`WASM_BINDGEN_USE_BROWSER=1`); see `wasm/test.sh`. The client is `warren-testkit`'s, the
//! one the core's scenario tests use: it checks every frame the engine sends.

use bytes::Bytes;
use warren_core::codec::{
    encode_method_frame, BasicAck, BasicConsume, BasicNack, BasicProperties, BasicPublish,
    ChannelOpen, ConnectionOpen, ConnectionTuneOk, ExchangeDeclare, FieldTable, FieldValue, Method,
    QueueBind, QueueDeclare, PROTOCOL_HEADER,
};
use warren_testkit::{encode_publish, Handshake, Received};
use warren_wasm::storage::{decode_ops, encode_loaded, KeyPart, Op, STORE_MESSAGES, STORE_QUEUES};
use warren_wasm::Engine;
use wasm_bindgen_test::wasm_bindgen_test;

/// What the client decoded from the engine's output.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // test code: clarity over size
enum Got {
    Method(u16, Method),
    Content(u16, Method, BasicProperties, Bytes),
    Heartbeat,
}

/// One connection's peer: the testkit's strict client decodes what the engine sends.
struct Client {
    id: u32,
    decoder: warren_testkit::Client,
}

impl Client {
    fn connect(engine: &mut Engine, now: f64) -> Client {
        let id = engine.connect(now);
        let mut decoder = warren_testkit::Client::new();
        // Tests answer closes themselves.
        decoder.auto_close_ok = false;
        Client { id, decoder }
    }

    fn send(&self, engine: &mut Engine, bytes: &[u8], now: f64) {
        engine.input(self.id, bytes, now);
    }

    fn method(&self, engine: &mut Engine, channel: u16, m: impl Into<Method>, now: f64) {
        let mut out = Vec::new();
        encode_method_frame(&mut out, channel, &m.into());
        self.send(engine, &out, now);
    }

    fn publish(
        &self,
        engine: &mut Engine,
        exchange: &str,
        key: &str,
        props: &BasicProperties,
        body: &[u8],
        now: f64,
    ) {
        let mut out = Vec::new();
        let publish = BasicPublish {
            exchange: exchange.into(),
            routing_key: key.into(),
            ..Default::default()
        };
        encode_publish(&mut out, 1, publish, props, body, 131_072);
        self.send(engine, &out, now);
    }

    /// Takes every frame the engine has for this client (whatever `take_dirty` says).
    fn recv(&mut self, engine: &mut Engine) -> Vec<Got> {
        let _ = engine.take_dirty();
        let heartbeats = self.decoder.heartbeats_received;
        self.decoder.feed(&engine.take_output(self.id));
        let mut got: Vec<Got> = (heartbeats..self.decoder.heartbeats_received)
            .map(|_| Got::Heartbeat)
            .collect();
        for r in self.decoder.take() {
            got.push(match r {
                Received::Method { channel, method } => Got::Method(channel, method),
                Received::Delivery(d) => Got::Content(d.channel, d.method, d.properties, d.body),
                Received::ProtocolHeader(h) => panic!("the engine sent a protocol header {h:?}"),
            });
        }
        got
    }

    /// Handshake with the given heartbeat, then opens channel 1.
    fn open(engine: &mut Engine, heartbeat: u16, now: f64) -> Client {
        let mut c = Client::connect(engine, now);
        c.send(engine, &PROTOCOL_HEADER, now);
        let got = c.recv(engine);
        assert!(
            matches!(got.as_slice(), [Got::Method(0, Method::ConnectionStart(_))]),
            "{got:?}"
        );
        let start_ok = Handshake {
            capabilities: Vec::new(),
            product: "warren-wasm tests",
            ..Handshake::default()
        }
        .start_ok();
        c.method(engine, 0, start_ok, now);
        let got = c.recv(engine);
        assert!(
            matches!(got.as_slice(), [Got::Method(0, Method::ConnectionTune(_))]),
            "{got:?}"
        );
        let tune_ok = ConnectionTuneOk {
            channel_max: 2047,
            frame_max: 131_072,
            heartbeat,
        };
        c.method(engine, 0, tune_ok, now);
        c.method(
            engine,
            0,
            ConnectionOpen {
                virtual_host: "/".into(),
                ..Default::default()
            },
            now,
        );
        let got = c.recv(engine);
        assert!(
            matches!(
                got.as_slice(),
                [Got::Method(0, Method::ConnectionOpenOk(_))]
            ),
            "{got:?}"
        );
        c.method(engine, 1, ChannelOpen::default(), now);
        let got = c.recv(engine);
        assert!(
            matches!(got.as_slice(), [Got::Method(1, Method::ChannelOpenOk(_))]),
            "{got:?}"
        );
        c
    }

    fn declare_queue(
        &mut self,
        engine: &mut Engine,
        name: &str,
        durable: bool,
        args: FieldTable,
        now: f64,
    ) {
        let declare = QueueDeclare {
            queue: name.into(),
            durable,
            arguments: args,
            ..Default::default()
        };
        self.method(engine, 1, declare, now);
        let got = self.recv(engine);
        assert!(
            matches!(got.as_slice(), [Got::Method(1, Method::QueueDeclareOk(_))]),
            "{got:?}"
        );
    }
}

fn engine(persist: bool, recovered: &[u8]) -> Engine {
    Engine::new(7.0, 60, 0, 0, Vec::new(), persist, recovered)
}

fn persistent() -> BasicProperties {
    BasicProperties {
        delivery_mode: Some(2),
        ..Default::default()
    }
}

/// `"name":"q"…"messages":N` for queue `q` in the topology JSON.
fn queue_counts(engine: &Engine, queue: &str) -> Option<(u32, u32)> {
    let json = engine.topology("/");
    let at = json.find(&format!("{{\"name\":\"{queue}\",\"durable\""))?;
    let rest = &json[at..];
    let num = |field: &str| -> u32 {
        let i = rest.find(&format!("\"{field}\":")).unwrap() + field.len() + 3;
        rest[i..]
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    Some((num("messages"), num("unacked")))
}

#[wasm_bindgen_test]
fn handshake_publish_consume_ack_over_amqp_bytes() {
    let mut e = engine(false, &[]);
    let mut c = Client::open(&mut e, 0, 0.0);
    c.declare_queue(&mut e, "jobs", false, FieldTable::default(), 1.0);
    c.publish(
        &mut e,
        "",
        "jobs",
        &BasicProperties::default(),
        b"hello",
        2.0,
    );
    assert_eq!(queue_counts(&e, "jobs"), Some((1, 0)));

    let consume = BasicConsume {
        queue: "jobs".into(),
        consumer_tag: "c1".into(),
        ..Default::default()
    };
    c.method(&mut e, 1, consume, 3.0);
    let got = c.recv(&mut e);
    assert!(
        matches!(&got[0], Got::Method(1, Method::BasicConsumeOk(ok)) if ok.consumer_tag.as_str() == "c1"),
        "{got:?}"
    );
    let Got::Content(1, Method::BasicDeliver(d), _, body) = &got[1] else {
        panic!("expected a delivery, got {got:?}");
    };
    assert_eq!(&body[..], b"hello");
    assert!(!d.redelivered);
    assert_eq!(queue_counts(&e, "jobs"), Some((0, 1)));

    c.method(
        &mut e,
        1,
        BasicAck {
            delivery_tag: d.delivery_tag,
            multiple: false,
        },
        4.0,
    );
    assert_eq!(queue_counts(&e, "jobs"), Some((0, 0)));
}

#[wasm_bindgen_test]
fn nack_requeue_redelivers_and_eof_requeues_unacked() {
    let mut e = engine(false, &[]);
    let mut a = Client::open(&mut e, 0, 0.0);
    a.declare_queue(&mut e, "q", false, FieldTable::default(), 0.0);
    a.publish(&mut e, "", "q", &BasicProperties::default(), b"m", 0.0);
    a.method(
        &mut e,
        1,
        BasicConsume {
            queue: "q".into(),
            ..Default::default()
        },
        0.0,
    );
    let got = a.recv(&mut e);
    let Some(Got::Content(_, Method::BasicDeliver(d), _, _)) = got.last() else {
        panic!("{got:?}")
    };
    a.method(
        &mut e,
        1,
        BasicNack {
            delivery_tag: d.delivery_tag,
            multiple: false,
            requeue: true,
        },
        1.0,
    );
    let got = a.recv(&mut e);
    let Some(Got::Content(_, Method::BasicDeliver(again), _, _)) = got.last() else {
        panic!("{got:?}")
    };
    assert!(
        again.redelivered,
        "a requeued message comes back marked redelivered"
    );

    // The consumer's peer goes away without acking: the message is ready again.
    e.eof(a.id, 2.0);
    assert_eq!(queue_counts(&e, "q"), Some((1, 0)));
    assert_eq!(e.connection_count(), 0);
}

#[wasm_bindgen_test]
fn heartbeats_are_sent_and_a_silent_peer_is_dropped() {
    let mut e = engine(false, &[]);
    let mut c = Client::open(&mut e, 1, 0.0);
    assert_eq!(
        e.poll_timeout(),
        500.0,
        "first heartbeat due after half an interval"
    );
    e.timeout(500.0);
    let got = c.recv(&mut e);
    assert!(matches!(got.as_slice(), [Got::Heartbeat]), "{got:?}");
    assert!(!e.is_closed(c.id));
    // Two intervals without a byte from the peer: the connection is dead.
    let mut now = 500.0;
    while now < 2_000.0 {
        now = e.poll_timeout();
        assert!(now > 0.0 && now <= 2_000.0, "timer at {now}");
        e.timeout(now);
    }
    assert!(e.is_closed(c.id));
    assert!(
        e.take_dirty().contains(&c.id),
        "a closed connection is reported once"
    );
    e.forget(c.id, now);
    assert_eq!(e.connection_count(), 0);
}

#[wasm_bindgen_test]
fn message_ttl_expires_on_the_engine_timer() {
    let mut e = engine(false, &[]);
    let mut c = Client::open(&mut e, 0, 0.0);
    let args: FieldTable = [("x-message-ttl", FieldValue::I32(100))]
        .into_iter()
        .collect();
    c.declare_queue(&mut e, "short", false, args, 0.0);
    c.publish(
        &mut e,
        "",
        "short",
        &BasicProperties::default(),
        b"soon gone",
        10.0,
    );
    assert_eq!(queue_counts(&e, "short"), Some((1, 0)));
    let due = e.poll_timeout();
    assert!(
        due > 10.0 && due <= 112.0,
        "the broker asks for a timer at expiry, got {due}"
    );
    e.timeout(due);
    assert_eq!(queue_counts(&e, "short"), Some((0, 0)));
}

/// Nothing runs a timer while connections without heartbeats are quiet, so the broker's clock
/// must move with every input: a TTL counts from the publish, not from the last timer.
#[wasm_bindgen_test]
fn message_ttl_counts_from_the_publish_after_a_quiet_spell() {
    let mut e = engine(false, &[]);
    let mut c = Client::open(&mut e, 0, 0.0);
    let args: FieldTable = [("x-message-ttl", FieldValue::I32(5_000))]
        .into_iter()
        .collect();
    c.declare_queue(&mut e, "q", false, args, 10_000.0);
    assert_eq!(e.poll_timeout(), -1.0, "nothing timed: no timer runs");
    c.publish(&mut e, "", "q", &BasicProperties::default(), b"m", 50_000.0);
    assert_eq!(e.poll_timeout(), 55_001.0, "due 5 s after the publish");
    e.timeout(54_000.0);
    assert_eq!(queue_counts(&e, "q"), Some((1, 0)), "alive 4 s after it");
    e.timeout(55_001.0);
    assert_eq!(queue_counts(&e, "q"), Some((0, 0)), "expired 5 s after it");
}

#[wasm_bindgen_test]
fn topic_trace_reports_queues_and_matched_words() {
    let mut e = engine(false, &[]);
    let mut c = Client::open(&mut e, 0, 0.0);
    let declare = ExchangeDeclare {
        exchange: "logs".into(),
        kind: "topic".into(),
        ..Default::default()
    };
    c.method(&mut e, 1, declare, 0.0);
    c.recv(&mut e);
    for (q, key) in [("errors", "*.error"), ("app", "app.#"), ("none", "db.*")] {
        c.declare_queue(&mut e, q, false, FieldTable::default(), 0.0);
        let bind = QueueBind {
            queue: q.into(),
            exchange: "logs".into(),
            routing_key: key.into(),
            ..Default::default()
        };
        c.method(&mut e, 1, bind, 0.0);
        c.recv(&mut e);
    }
    let trace = e.trace("/", "logs", "app.error", Vec::new());
    assert!(trace.starts_with("{\"found\":true"), "{trace}");
    assert!(
        trace.ends_with("\"queues\":[\"app\",\"errors\"]}"),
        "{trace}"
    );
    assert!(
        trace.contains(
            "\"routingKey\":\"*.error\",\"words\":[[\"*\",\"app\"],[\"error\",\"error\"]]"
        ),
        "{trace}"
    );
    assert!(
        trace.contains("\"routingKey\":\"app.#\",\"words\":[[\"app\",\"app\"],[\"#\",\"error\"]]"),
        "{trace}"
    );
    assert!(!trace.contains("db.*"), "{trace}");
    let topology = e.topology("/");
    assert!(
        topology.contains(
            "{\"destination\":\"none\",\"destinationType\":\"queue\",\"routingKey\":\"db.*\""
        ),
        "{topology}"
    );
    assert!(e
        .trace("/", "missing", "x", Vec::new())
        .starts_with("{\"found\":false"));
    // The default exchange: an implicit binding to the queue named by the key.
    let direct = e.trace("/", "", "errors", Vec::new());
    assert!(direct.contains("\"implicit\":true"), "{direct}");
    assert!(direct.ends_with("\"queues\":[\"errors\"]}"), "{direct}");
}

#[wasm_bindgen_test]
fn persistent_messages_are_journaled_and_recovered() {
    let mut e = engine(true, &[]);
    let mut c = Client::open(&mut e, 0, 0.0);
    c.declare_queue(&mut e, "durable-q", true, FieldTable::default(), 0.0);
    c.publish(&mut e, "", "durable-q", &persistent(), b"kept", 1.0);
    c.publish(
        &mut e,
        "",
        "durable-q",
        &BasicProperties::default(),
        b"transient",
        1.0,
    );
    c.publish(&mut e, "", "durable-q", &persistent(), b"kept too", 1.0);

    let ops = decode_ops(&e.take_storage_ops()).expect("well-formed journal");
    let puts: Vec<(u8, Vec<u8>)> = ops
        .iter()
        .filter_map(|op| match op {
            Op::Put { store, value, .. } => Some((*store, value.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(puts.iter().filter(|(s, _)| *s == STORE_QUEUES).count(), 1);
    assert_eq!(
        puts.iter().filter(|(s, _)| *s == STORE_MESSAGES).count(),
        2,
        "only persistent messages"
    );
    let Some(Op::Put { key, .. }) = ops.iter().find(|op| {
        matches!(
            op,
            Op::Put {
                store: STORE_MESSAGES,
                ..
            }
        )
    }) else {
        unreachable!()
    };
    assert_eq!(
        key[..2],
        [KeyPart::Str("/".into()), KeyPart::Str("durable-q".into())]
    );
    assert!(
        e.take_storage_ops().is_empty(),
        "taking the journal empties it"
    );

    // A new engine over the same records (as a page reload would read them from IndexedDB).
    let mut again = engine(true, &encode_loaded(&puts));
    assert_eq!(again.recovery_errors(), 0);
    assert_eq!(queue_counts(&again, "durable-q"), Some((2, 0)));
    let mut c = Client::open(&mut again, 0, 0.0);
    c.method(
        &mut again,
        1,
        BasicConsume {
            queue: "durable-q".into(),
            no_ack: true,
            ..Default::default()
        },
        0.0,
    );
    let bodies: Vec<Bytes> = c
        .recv(&mut again)
        .into_iter()
        .filter_map(|g| match g {
            Got::Content(_, _, props, body) => {
                assert_eq!(props.delivery_mode, Some(2), "properties survive storage");
                Some(body)
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        bodies,
        [Bytes::from_static(b"kept"), Bytes::from_static(b"kept too")]
    );
    // Consuming deletes them from storage.
    let deletes = decode_ops(&again.take_storage_ops()).unwrap();
    assert_eq!(
        deletes
            .iter()
            .filter(|op| matches!(
                op,
                Op::Delete {
                    store: STORE_MESSAGES,
                    ..
                }
            ))
            .count(),
        2
    );
}

#[wasm_bindgen_test]
fn garbage_in_storage_is_skipped_not_fatal() {
    let good = {
        let mut e = engine(true, &[]);
        let mut c = Client::open(&mut e, 0, 0.0);
        c.declare_queue(&mut e, "ok", true, FieldTable::default(), 0.0);
        decode_ops(&e.take_storage_ops())
            .unwrap()
            .into_iter()
            .find_map(|op| match op {
                Op::Put {
                    store: STORE_QUEUES,
                    value,
                    ..
                } => Some(value),
                _ => None,
            })
            .unwrap()
    };
    let records = vec![
        (STORE_QUEUES, vec![9, 9, 9]),
        (STORE_MESSAGES, vec![1, 0]),
        (STORE_QUEUES, good),
        (7, vec![1]),
    ];
    let e = engine(true, &encode_loaded(&records));
    assert_eq!(e.recovery_errors(), 3);
    assert_eq!(queue_counts(&e, "ok"), Some((0, 0)));
    // Truncated framing: the rest is dropped, the engine still starts.
    let e = engine(true, &[STORE_QUEUES, 200, 0, 0]);
    assert_eq!(e.recovery_errors(), 1);
}

#[wasm_bindgen_test]
fn wrong_protocol_header_gets_ours_and_closes() {
    let mut e = engine(false, &[]);
    let c = Client::connect(&mut e, 0.0);
    c.send(&mut e, b"AMQP\x01\x01\x00\x09", 0.0);
    assert_eq!(e.take_dirty(), vec![c.id]);
    assert_eq!(e.take_output(c.id), PROTOCOL_HEADER.to_vec());
    assert!(e.is_closed(c.id));
}

#[wasm_bindgen_test]
fn frames_split_across_inputs_are_reassembled() {
    let mut e = engine(false, &[]);
    let mut c = Client::open(&mut e, 0, 0.0);
    c.declare_queue(&mut e, "split", false, FieldTable::default(), 0.0);
    let mut out = Vec::new();
    let publish = BasicPublish {
        routing_key: "split".into(),
        ..Default::default()
    };
    encode_publish(
        &mut out,
        1,
        publish,
        &BasicProperties::default(),
        &[7u8; 300],
        131_072,
    );
    for byte in out {
        c.send(&mut e, &[byte], 0.0);
    }
    assert_eq!(queue_counts(&e, "split"), Some((1, 0)));
    assert!(c.recv(&mut e).is_empty());
}

#[wasm_bindgen_test]
fn topic_alignment_shows_what_each_wildcard_took() {
    use warren_wasm::topology::topic_alignment;
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(topic_alignment("#", ""), Some(pairs(&[("#", "")])));
    assert_eq!(
        topic_alignment("a.#.z", "a.z"),
        Some(pairs(&[("a", "a"), ("#", ""), ("z", "z")]))
    );
    assert_eq!(
        topic_alignment("a.#.z", "a.b.c.z"),
        Some(pairs(&[("a", "a"), ("#", "b.c"), ("z", "z")]))
    );
    assert_eq!(
        topic_alignment("*.*", "a.b"),
        Some(pairs(&[("*", "a"), ("*", "b")]))
    );
    assert_eq!(topic_alignment("*", "a.b"), None);
    assert_eq!(topic_alignment("a.*", "a"), None);
}

#[wasm_bindgen_test]
fn unacked_persistent_messages_come_back_redelivered_after_recovery() {
    use warren_wasm::storage::STORE_DELIVERED;
    let mut e = engine(true, &[]);
    let mut c = Client::open(&mut e, 0, 0.0);
    c.declare_queue(&mut e, "work", true, FieldTable::default(), 0.0);
    c.publish(&mut e, "", "work", &persistent(), b"job", 0.0);
    c.method(
        &mut e,
        1,
        BasicConsume {
            queue: "work".into(),
            ..Default::default()
        },
        0.0,
    );
    let got = c.recv(&mut e);
    assert!(
        matches!(got.last(), Some(Got::Content(_, Method::BasicDeliver(d), _, _)) if !d.redelivered),
        "{got:?}"
    );
    // The page dies before the ack: what IndexedDB holds is the journal replayed.
    let mut records: Vec<(u8, Vec<u8>)> = Vec::new();
    for op in decode_ops(&e.take_storage_ops()).unwrap() {
        match op {
            Op::Put { store, value, .. } => records.push((store, value)),
            Op::Delete { store, .. } => panic!("nothing was deleted yet (store {store})"),
            Op::DeletePrefix { .. } => {}
        }
    }
    assert!(
        records.iter().any(|(s, _)| *s == STORE_DELIVERED),
        "the delivery is marked"
    );
    let mut again = engine(true, &encode_loaded(&records));
    let mut c = Client::open(&mut again, 0, 0.0);
    c.method(
        &mut again,
        1,
        BasicConsume {
            queue: "work".into(),
            ..Default::default()
        },
        0.0,
    );
    let got = c.recv(&mut again);
    let Some(Got::Content(_, Method::BasicDeliver(d), _, body)) = got.last() else {
        panic!("{got:?}")
    };
    assert_eq!(&body[..], b"job");
    assert!(
        d.redelivered,
        "a message delivered before the restart is redelivered after it"
    );
    c.method(
        &mut again,
        1,
        BasicAck {
            delivery_tag: d.delivery_tag,
            multiple: false,
        },
        0.0,
    );
    let ops = decode_ops(&again.take_storage_ops()).unwrap();
    for store in [STORE_MESSAGES, STORE_DELIVERED] {
        assert!(
            ops.iter()
                .any(|op| matches!(op, Op::Delete { store: s, .. } if *s == store)),
            "ack deletes store {store}"
        );
    }
}
