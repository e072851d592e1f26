//! Publisher flow control (`broker/flow.rs`): when a queue's consumer falls behind, the
//! connections publishing into it are read only as fast as the consumer takes messages, as
//! RabbitMQ's credit flow does; a queue nobody consumes from never slows its publishers.

mod support;

use support::*;
use warren_core::broker::BrokerConfig;
use warren_core::codec::{BasicProperties, BasicPublish};

const BACKLOG: usize = 10;

fn world() -> World {
    let mut w = World::with_config(
        SharedStorage::new(Default::default()),
        BrokerConfig {
            flow_backlog: BACKLOG,
            ..BrokerConfig::default()
        },
    );
    w.conn_config.heartbeat = 0;
    w
}

/// `n` publishes to queue `q`, numbered from `from`, sent in one write.
fn publishes(from: usize, n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for i in from..from + n {
        encode_publish(
            &mut out,
            1,
            BasicPublish {
                routing_key: "q".into(),
                ..Default::default()
            },
            &BasicProperties::default(),
            format!("m{i}").as_bytes(),
            131_072,
        );
    }
    out
}

/// A connection that declared `q` and consumes from it with manual acks, prefetch 5.
fn consumer_of_q(w: &mut World) -> Cid {
    let c = w.connect_channel();
    w.client(c).declare_queue(1, "q");
    w.client(c).qos(1, 5, false);
    w.client(c).consume(1, "q", "c");
    c
}

/// Messages in `q`: ready plus delivered and not acked.
fn in_queue(w: &World) -> usize {
    let q = w.broker().queue("/", "q").expect("declared");
    q.len() + q.unacked()
}

#[test]
fn a_publisher_into_a_queue_whose_consumer_falls_behind_waits_for_it() {
    let mut w = world();
    let consumer = consumer_of_q(&mut w);
    let publisher = w.connect_channel();

    // The burst goes in until the queue is behind its consumer; then the publisher is held
    // (nothing tells the client: what it sent just waits).
    assert_eq!(w.client(publisher).send_raw(&publishes(0, 30)), vec![]);
    assert!(w.broker().holds_publishers());
    let before = in_queue(&w);
    assert!((BACKLOG..30).contains(&before), "{before} went in");
    assert_eq!(w.client(publisher).send_raw(&publishes(30, 5)), vec![]);
    assert_eq!(in_queue(&w), before, "the held publisher is not read");

    // The consumer acks what it got, and gets more: the publisher is read again as the
    // consumer takes messages, until all 35 are in, in order.
    let mut acked = 0;
    let mut seen = Vec::new();
    while acked < 35 {
        let r = w.client(consumer).ack(1, acked + 5, true);
        seen.extend(bodies(&r).into_iter().map(String::from));
        acked += 5;
    }
    assert_eq!(in_queue(&w), 0);
    let expected: Vec<String> = (0..35).map(|i| format!("m{i}")).collect();
    assert_eq!(seen, expected, "everything, in order");
    assert!(!w.broker().holds_publishers());
}

#[test]
fn a_queue_nobody_consumes_from_never_holds_its_publishers() {
    let mut w = world();
    let publisher = w.connect_channel();
    w.client(publisher).declare_queue(1, "q");
    w.client(publisher).send_raw(&publishes(0, 100));
    assert_eq!(in_queue(&w), 100);
    assert!(!w.broker().holds_publishers());
}

#[test]
fn a_consumer_that_stops_taking_lets_the_publisher_go_after_a_moment() {
    let mut w = world();
    consumer_of_q(&mut w);
    let publisher = w.connect_channel();
    w.client(publisher).send_raw(&publishes(0, 30));
    assert!(w.broker().holds_publishers());
    w.client(publisher).send_raw(&publishes(30, 5));
    assert!(in_queue(&w) < 35);
    // The consumer never acks: after 100 ms without a delivery the queue is not "behind a
    // consumer" any more, and the publisher is read again.
    w.advance(200);
    assert!(!w.broker().holds_publishers());
    assert_eq!(in_queue(&w), 35);
    // And it is not held again while the consumer stays stuck.
    w.client(publisher).send_raw(&publishes(35, 5));
    assert_eq!(in_queue(&w), 40);
    assert!(!w.broker().holds_publishers());
}

#[test]
fn a_connection_consuming_from_the_queue_is_never_held() {
    let mut w = world();
    let both = consumer_of_q(&mut w);
    w.client(both).send_raw(&publishes(0, 30));
    assert!(
        !w.broker().holds_publishers(),
        "its acks must still be read"
    );
}
