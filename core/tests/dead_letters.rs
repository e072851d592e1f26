//! Dead-lettering runs as a work list after the command that killed a message, so a message
//! that dies again in its dead-letter queue (and again, down a chain) is republished hop by
//! hop, never by recursion, with one `x-death` entry per hop, newest first.

mod support;

use support::*;
use warren_core::codec::{BasicProperties, FieldValue, QueueDeclare};

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
