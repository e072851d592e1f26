//! Prefetch (`basic.qos`) with RabbitMQ's semantics: `global=false` limits each consumer
//! created afterwards, `global=true` limits the channel's consumers together; no-ack consumers
//! and `basic.get` are not limited.

mod support;

use support::*;
use warren_core::codec::BasicQos;

/// A world with queue "q" holding `n` messages and a connection with channel 1 open.
fn queue_with(n: usize) -> (World, Cid) {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_queue(1, "q");
    let msgs: Vec<String> = (1..=n).map(|i| format!("m{i}")).collect();
    let refs: Vec<&str> = msgs.iter().map(String::as_str).collect();
    w.client(c).publish_all(1, "q", &refs);
    (w, c)
}

fn per_consumer(r: &[Received]) -> (usize, usize) {
    let d = deliveries(r);
    (
        d.iter().filter(|d| d.consumer_tag() == "a").count(),
        d.iter().filter(|d| d.consumer_tag() == "b").count(),
    )
}

#[test]
fn per_consumer_prefetch_limits_unacked_deliveries() {
    let (mut w, c) = queue_with(5);
    w.client(c).qos(1, 2, false);
    let r = w.client(c).consume(1, "q", "a");
    assert_eq!(bodies(&r), ["m1", "m2"]);
    // Each ack makes room for exactly one more.
    assert_eq!(bodies(&w.client(c).ack(1, 1, false)), ["m3"]);
    assert_eq!(bodies(&w.client(c).ack(1, 3, true)), ["m4", "m5"]);
}

#[test]
fn per_consumer_prefetch_applies_to_each_consumer_separately() {
    let (mut w, c) = queue_with(10);
    w.client(c).qos(1, 2, false);
    let mut r = w.client(c).consume(1, "q", "a");
    r.extend(w.client(c).consume(1, "q", "b"));
    assert_eq!(per_consumer(&r), (2, 2));
}

#[test]
fn global_prefetch_is_shared_by_the_channels_consumers() {
    let (mut w, c) = queue_with(10);
    w.client(c).qos(1, 3, true);
    let mut r = w.client(c).consume(1, "q", "a");
    r.extend(w.client(c).consume(1, "q", "b"));
    assert_eq!(deliveries(&r).len(), 3);
    assert_eq!(bodies(&w.client(c).ack(1, 0, true)).len(), 3);
}

#[test]
fn global_and_per_consumer_limits_both_apply() {
    // RabbitMQ 3.10.8: qos(2, global=false), qos(3, global=true), consumers a then b:
    // a gets 2 (its own limit), b gets 1 (the channel's limit).
    let (mut w, c) = queue_with(10);
    w.client(c).qos(1, 2, false);
    w.client(c).qos(1, 3, true);
    let mut r = w.client(c).consume(1, "q", "a");
    r.extend(w.client(c).consume(1, "q", "b"));
    assert_eq!(per_consumer(&r), (2, 1));
}

#[test]
fn a_new_per_consumer_prefetch_does_not_change_existing_consumers() {
    let (mut w, c) = queue_with(5);
    w.client(c).qos(1, 1, false);
    assert_eq!(bodies(&w.client(c).consume(1, "q", "a")), ["m1"]);
    // RabbitMQ 3.10.8 answers qos-ok and delivers nothing more to "a".
    w.client(c).qos(1, 3, false);
    assert_eq!(w.client(c).take(), vec![]);
    // A consumer created now gets the new limit.
    assert_eq!(bodies(&w.client(c).consume(1, "q", "b")).len(), 3);
}

#[test]
fn raising_the_global_prefetch_lets_waiting_messages_flow() {
    let (mut w, c) = queue_with(5);
    w.client(c).qos(1, 1, true);
    assert_eq!(bodies(&w.client(c).consume(1, "q", "a")), ["m1"]);
    let r = w.client(c).send(
        1,
        BasicQos {
            prefetch_size: 0,
            prefetch_count: 3,
            global: true,
        },
    );
    assert_eq!(bodies(&r), ["m2", "m3"]);
}

#[test]
fn prefetch_zero_means_unlimited() {
    let (mut w, c) = queue_with(50);
    w.client(c).qos(1, 0, false);
    assert_eq!(deliveries(&w.client(c).consume(1, "q", "a")).len(), 50);
}

#[test]
fn no_ack_consumers_ignore_prefetch() {
    let (mut w, c) = queue_with(5);
    w.client(c).qos(1, 1, false);
    w.client(c).qos(1, 1, true);
    assert_eq!(
        deliveries(&w.client(c).consume_no_ack(1, "q", "a")).len(),
        5
    );
}

#[test]
fn basic_get_is_not_limited_by_prefetch_and_does_not_use_it_up() {
    let (mut w, c) = queue_with(5);
    w.client(c).qos(1, 1, true);
    assert_eq!(bodies(&w.client(c).get(1, "q", false)), ["m1"]);
    assert_eq!(bodies(&w.client(c).get(1, "q", false)), ["m2"]);
    // The consumer still has its one slot.
    assert_eq!(bodies(&w.client(c).consume(1, "q", "a")), ["m3"]);
}

#[test]
fn a_requeued_message_goes_back_to_a_consumer_with_room() {
    let (mut w, c) = queue_with(3);
    w.client(c).qos(1, 1, false);
    assert_eq!(bodies(&w.client(c).consume(1, "q", "a")), ["m1"]);
    let r = w.client(c).nack(1, 1, false, true);
    let d = deliveries(&r);
    assert_eq!((d[0].body_str(), d[0].redelivered()), ("m1", true));
}

#[test]
fn a_nonzero_prefetch_size_is_not_implemented_540() {
    let mut w = World::new();
    let c = w.connect_channel();
    assert_eq!(
        w.client(c).send(
            1,
            BasicQos {
                prefetch_size: 10,
                prefetch_count: 1,
                global: false,
            }
        ),
        vec![connection_close(
            540,
            "NOT_IMPLEMENTED - prefetch_size!=0 (10)",
            60,
            10
        )]
    );
}

#[test]
fn prefetch_is_per_channel() {
    let (mut w, c) = queue_with(6);
    w.client(c).qos(1, 1, true);
    w.client(c).open_channel(2);
    let mut r = w.client(c).consume(1, "q", "a");
    r.extend(w.client(c).consume(2, "q", "b"));
    // Channel 2 has no limit: it takes all but the one channel 1 holds.
    assert_eq!(per_consumer(&r), (1, 5));
}
