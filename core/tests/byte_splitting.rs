//! Bytes may split anywhere: the same client session, fed to the server with its byte stream
//! cut at random points (and the server's output read back at random points), gives the client
//! exactly what it gets when every write arrives whole.

mod support;

use std::collections::HashMap;

use proptest::prelude::*;
use support::*;
use warren_core::codec::{BasicProperties, ConnectionTuneOk, Method, QueueDeclare, FRAME_METHOD};

/// What the client saw, step by step, in a form that does not depend on how the server
/// batched its output: publisher confirms may be coalesced (`multiple=true`) differently when
/// the input arrives in different pieces, so each is expanded to the publishes it covers;
/// bodies are shown by length and checksum.
fn normalize(steps: &[Vec<Received>]) -> Vec<Vec<String>> {
    let mut last_confirm: HashMap<u16, u64> = HashMap::new();
    steps
        .iter()
        .map(|step| {
            let mut out = Vec::new();
            for r in step {
                match r {
                    Received::Method {
                        channel,
                        method: Method::BasicAck(a),
                    } => {
                        let last = last_confirm.entry(*channel).or_insert(0);
                        let first = if a.multiple {
                            *last + 1
                        } else {
                            a.delivery_tag
                        };
                        for seq in first..=a.delivery_tag {
                            out.push(format!("confirm ch{channel} #{seq}"));
                        }
                        *last = a.delivery_tag;
                    }
                    Received::Delivery(d) => {
                        let sum: u64 = d.body.iter().map(|&b| u64::from(b)).sum();
                        out.push(format!(
                            "{:?} {:?} body[{}; sum {sum}]",
                            d.method,
                            d.properties,
                            d.body.len()
                        ));
                    }
                    other => out.push(format!("{other:?}")),
                }
            }
            out
        })
        .collect()
}

/// One whole session; returns what the client saw after each step (normalized), then the
/// content header and body frames it received.
fn session(
    chunks: Option<Vec<usize>>,
    bodies_sizes: &[usize],
) -> (Vec<Vec<String>>, Vec<FrameInfo>) {
    let (t, frames) = raw_session(chunks, bodies_sizes);
    // Method frames vary with confirm coalescing; content frames must not vary at all.
    let content = frames
        .into_iter()
        .filter(|f| f.kind != FRAME_METHOD)
        .collect();
    (normalize(&t), content)
}

fn raw_session(
    chunks: Option<Vec<usize>>,
    bodies_sizes: &[usize],
) -> (Vec<Vec<Received>>, Vec<FrameInfo>) {
    let mut w = World::new();
    if let Some(sizes) = chunks {
        w.set_chunking(sizes);
    }
    let c = w.connect();
    let other = w.connect();
    let mut t = Vec::new();
    t.push(w.client(c).handshake_with(&Handshake {
        tune_ok: Some(ConnectionTuneOk {
            channel_max: 16,
            frame_max: 4096,
            heartbeat: 0,
        }),
        ..Default::default()
    }));
    w.client(other).handshake();
    w.client(other).open_channel(1);
    for ch in [1, 2, 3] {
        t.push(
            w.client(c)
                .send(ch, warren_core::codec::ChannelOpen::default()),
        );
    }
    t.push(w.client(c).send(
        1,
        QueueDeclare {
            queue: "q".into(),
            durable: true,
            ..Default::default()
        },
    ));
    w.client(c).declare_exchange(1, "x", "topic");
    w.client(c).bind_queue(1, "q", "x", "a.#");
    t.push(w.client(c).confirm_select(1));

    // Publishes of assorted sizes (many bigger than frame_max), some persistent, some
    // unroutable and mandatory, all in one write.
    for (i, &n) in bodies_sizes.iter().enumerate() {
        let body: Vec<u8> = (0..n).map(|j| (i * 31 + j) as u8).collect();
        let props = if i % 2 == 0 {
            persistent()
        } else {
            BasicProperties {
                content_type: Some(s("application/octet-stream")),
                headers: Some(table(&[("i", &i.to_string())])),
                ..Default::default()
            }
        };
        let rk = if i % 3 == 2 { "b.lost" } else { "a.b" };
        w.client_state(c).queue_publish(
            1,
            warren_core::codec::BasicPublish {
                exchange: "x".into(),
                routing_key: rk.into(),
                mandatory: true,
                ..Default::default()
            },
            &props,
            &body,
        );
    }
    t.push(w.client(c).flush());

    // Consume with a prefetch window, settle in several ways.
    w.client(c).qos(2, 2, false);
    t.push(w.client(c).consume(2, "q", "ct"));
    t.push(w.client(c).ack(2, 1, false));
    t.push(w.client(c).nack(2, 2, false, true));
    t.push(w.client(c).ack(2, 0, true));
    t.push(w.client(c).get(3, "q", false));
    t.push(w.client(c).recover(3));
    // Another connection publishes while this one consumes.
    w.client(other).publish_all(1, "q", &["from other"]);
    t.push(w.client(c).take());
    // A channel error, then a connection error.
    t.push(w.client(c).ack(3, 99, false));
    t.push(w.client(c).send_raw(b"\x08\x00\x01\x00\x00\x00\x00\xce"));
    let frames = w.client_state(c).frames.clone();
    (t, frames)
}

fn chunk_sizes() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(
        prop_oneof![4 => 1usize..8, 3 => 8usize..300, 1 => 300usize..20_000],
        1..24,
    )
}

fn body_sizes() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(prop_oneof![0usize..200, 4000usize..13_000], 1..6)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn a_session_split_at_random_points_sees_what_an_unsplit_one_sees(
        chunks in chunk_sizes(),
        bodies in body_sizes(),
    ) {
        let whole = session(None, &bodies);
        let split = session(Some(chunks), &bodies);
        prop_assert_eq!(whole.0, split.0);
        // Content is cut into the same frames, however the input was read.
        prop_assert_eq!(whole.1, split.1);
    }
}

#[test]
fn a_session_fed_one_byte_at_a_time_sees_what_an_unsplit_one_sees() {
    let sizes = [10, 5000, 0, 9000];
    assert_eq!(session(None, &sizes), session(Some(vec![1]), &sizes));
}

#[test]
fn the_unsplit_session_does_what_the_script_says() {
    let (t, frames) = raw_session(None, &[10, 5000, 20]);
    // Publishes: all three confirmed, the third (unroutable, mandatory) returned first.
    let publish_step = &t[6];
    assert_eq!(deliveries(publish_step).len(), 1, "{publish_step:?}");
    assert_eq!(
        normalize(&t[6..7])[0]
            .iter()
            .filter(|s| s.starts_with("confirm"))
            .count(),
        3
    );
    // The consumer got its prefetch window of two.
    assert_eq!(deliveries(&t[7]).len(), 2);
    // The final heartbeat on channel 1 closed the connection with 505.
    assert_eq!(
        t.last().unwrap(),
        &vec![connection_close(
            505,
            "UNEXPECTED_FRAME - type 8, all octets = <<>>",
            0,
            0
        )]
    );
    assert!(frames.iter().all(|f| f.size <= 4096), "frame_max respected");
}
