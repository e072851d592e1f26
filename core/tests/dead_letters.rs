//! Dead-lettering runs as a work list after the command that killed a message, so a message
//! that dies again in its dead-letter queue (and again, down a chain) is republished hop by
//! hop, never by recursion, with one `x-death` entry per hop, newest first.

mod support;

use support::*;
use warren_core::codec::{BasicProperties, ExchangeDeclare, FieldValue, QueueDeclare};

/// Queue `q{i}` holds nothing (`x-max-length` 0): whatever arrives dies at once ("maxlen")
/// and goes on to `next` through the default exchange.
fn declare_hop(w: &mut World, c: Cid, i: usize, next: &str) {
    let mut args = table(&[
        ("x-dead-letter-exchange", ""),
        ("x-dead-letter-routing-key", next),
    ]);
    args.insert("x-max-length", FieldValue::I32(0));
    w.client(c).declare_queue_with(
        1,
        QueueDeclare {
            queue: format!("q{i}").as_str().into(),
            arguments: args,
            ..Default::default()
        },
    );
}

fn death_queues(props: &BasicProperties) -> Vec<String> {
    let headers = props.headers.as_ref().expect("headers");
    let Some(FieldValue::Array(deaths)) = headers.get("x-death") else {
        panic!("no x-death in {headers:?}");
    };
    deaths
        .iter()
        .map(|d| {
            let t = d.as_table().expect("an x-death entry is a table");
            assert_eq!(t.get("reason").and_then(FieldValue::as_str), Some("maxlen"));
            assert_eq!(t.get("count").and_then(FieldValue::as_i64), Some(1));
            t.get("queue")
                .and_then(FieldValue::as_str)
                .unwrap()
                .to_owned()
        })
        .collect()
}

fn run_chain(hops: usize) {
    let mut w = World::new();
    let c = w.connect_channel();
    for i in 0..hops {
        let next = if i + 1 == hops {
            "end".to_owned()
        } else {
            format!("q{}", i + 1)
        };
        declare_hop(&mut w, c, i, &next);
    }
    w.client(c).declare_queue(1, "end");
    w.client(c)
        .publish(1, "", "q0", &BasicProperties::default(), b"falling");
    let r = w.client(c).get(1, "end", true);
    let got = deliveries(&r);
    assert_eq!(got.len(), 1, "{r:?}");
    assert_eq!(got[0].body_str(), "falling");
    let want: Vec<String> = (0..hops).rev().map(|i| format!("q{i}")).collect();
    assert_eq!(death_queues(&got[0].properties), want, "newest death first");
    let headers = got[0].properties.headers.as_ref().unwrap();
    assert_eq!(
        headers
            .get("x-first-death-queue")
            .and_then(FieldValue::as_str),
        Some("q0")
    );
    for i in 0..hops {
        let name = format!("q{i}");
        assert_eq!(
            w.broker().queue("/", &name).unwrap().len(),
            0,
            "{name} holds nothing"
        );
    }
}

#[test]
fn a_message_falls_down_a_chain_of_full_queues_hop_by_hop() {
    run_chain(3);
}

#[test]
fn a_chain_of_400_full_queues_records_every_death() {
    // Each hop's x-death grows by an entry: ~400 re-encoded header tables, in one publish.
    run_chain(400);
}

/// The internal flag refuses a client's publish, not a dead letter: RabbitMQ checks it in
/// the channel, so a queue may dead-letter into an internal exchange (checked on 3.10.8).
#[test]
fn a_dead_letter_goes_through_an_internal_exchange() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_exchange_with(
        1,
        ExchangeDeclare {
            exchange: "dlx".into(),
            kind: "fanout".into(),
            internal: true,
            ..Default::default()
        },
    );
    w.client(c).declare_queue(1, "dead");
    w.client(c).bind_queue(1, "dead", "dlx", "");
    w.client(c).declare_queue_with(
        1,
        QueueDeclare {
            queue: "src".into(),
            arguments: table(&[("x-dead-letter-exchange", "dlx")]),
            ..Default::default()
        },
    );
    w.client(c)
        .publish(1, "", "src", &BasicProperties::default(), b"doomed");
    let r = w.client(c).get(1, "src", false);
    let tag = deliveries(&r)[0].delivery_tag();
    w.client(c).reject(1, tag, false);
    let r = w.client(c).get(1, "dead", true);
    assert_eq!(bodies(&r), vec!["doomed"], "{r:?}");
    let headers = deliveries(&r)[0].properties.headers.clone().unwrap();
    let Some(FieldValue::Array(deaths)) = headers.get("x-death") else {
        panic!("no x-death in {headers:?}");
    };
    let death = deaths[0].as_table().unwrap();
    assert_eq!(
        death.get("reason").and_then(FieldValue::as_str),
        Some("rejected")
    );
    assert_eq!(death.get("exchange").and_then(FieldValue::as_str), Some(""));
}

/// RabbitMQ's cycle rule looks only at the deaths since the message last died in the queue
/// it would enter: an old rejection further back does not let it go round again. Here `m1`
/// was rejected in `a` once, then (when `m2` pushes it out of `a`) dies in `a` and `b`
/// automatically, and is dropped instead of coming back to `a`.
#[test]
fn an_old_rejection_does_not_let_a_dead_letter_cycle_again() {
    let mut w = World::new();
    let c = w.connect_channel();
    for (name, max, next) in [("a", 1, "b"), ("b", 0, "a")] {
        let mut args = table(&[
            ("x-dead-letter-exchange", ""),
            ("x-dead-letter-routing-key", next),
        ]);
        args.insert("x-max-length", FieldValue::I32(max));
        w.client(c).declare_queue_with(
            1,
            QueueDeclare {
                queue: name.into(),
                arguments: args,
                ..Default::default()
            },
        );
    }
    w.client(c)
        .publish(1, "", "a", &BasicProperties::default(), b"m1");
    let r = w.client(c).get(1, "a", false);
    let tag = deliveries(&r)[0].delivery_tag();
    // Rejected in a, dropped by b (it holds nothing), back in a: the rejection broke that cycle.
    w.client(c).reject(1, tag, false);
    assert_eq!(w.broker().queue("/", "a").unwrap().len(), 1);
    // m2 pushes m1 out of a; m1 dies in b again and, with no rejection since it last died
    // in a, is dropped rather than pushing m2 out in turn.
    w.client(c)
        .publish(1, "", "a", &BasicProperties::default(), b"m2");
    let r = w.client(c).get(1, "a", true);
    assert_eq!(bodies(&r), vec!["m2"], "{r:?}");
    assert_eq!(w.broker().queue("/", "b").unwrap().len(), 0);
}
