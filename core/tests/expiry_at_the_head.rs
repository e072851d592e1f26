//! Message TTL is looked at the head of a queue, whenever the head changes: after a delivery
//! or a `basic.get` takes the old head, and after a requeue. An expired message behind a live
//! one waits (and is counted) until it reaches the head, then goes without being delivered.
//! Each case was checked on RabbitMQ 3.10.8 with pika (counts and deliveries as written).

mod support;

use support::*;
use warren_core::codec::{BasicProperties, FieldValue, Method, QueueDeclare};

fn world() -> (World, Cid) {
    let mut w = World::new();
    w.conn_config.heartbeat = 0;
    let c = w.connect_channel();
    w.client(c).declare_queue(1, "q");
    (w, c)
}

fn expiring_in(ms: u64) -> BasicProperties {
    BasicProperties {
        expiration: Some(ms.to_string().as_str().into()),
        ..Default::default()
    }
}

fn publish(w: &mut World, c: Cid, body: &str, ttl: Option<u64>) {
    let props = ttl.map(expiring_in).unwrap_or_default();
    w.client(c).publish(1, "", "q", &props, body.as_bytes());
}

fn count(w: &mut World, c: Cid) -> u32 {
    w.client(c)
        .declare_queue_with(
            1,
            QueueDeclare {
                queue: "q".into(),
                passive: true,
                ..Default::default()
            },
        )
        .message_count
}

/// The body and `message_count` of a `basic.get-ok`, or `None` for `get-empty`.
fn get(w: &mut World, c: Cid, no_ack: bool) -> Option<(String, u32, u64)> {
    let r = w.client(c).get(1, "q", no_ack);
    let d = deliveries(&r).first().map(|d| (*d).clone())?;
    let Method::BasicGetOk(ok) = &d.method else {
        panic!("expected basic.get-ok, got {:?}", d.method);
    };
    Some((d.body_str().to_owned(), ok.message_count, ok.delivery_tag))
}

#[test]
fn an_expired_message_behind_a_live_head_goes_when_a_get_takes_the_head() {
    let (mut w, c) = world();
    publish(&mut w, c, "A", None);
    publish(&mut w, c, "B", Some(100));
    w.advance(300);
    assert_eq!(count(&mut w, c), 2, "B waits behind A, and counts");
    let (body, message_count, _) = get(&mut w, c, true).expect("A");
    assert_eq!(body, "A");
    assert_eq!(message_count, 0, "B went as it reached the head");
    assert_eq!(count(&mut w, c), 0);
    assert_eq!(get(&mut w, c, true), None);
}

#[test]
fn a_consumer_never_receives_an_expired_message_from_behind_the_head() {
    let (mut w, c) = world();
    publish(&mut w, c, "A", None);
    publish(&mut w, c, "B", Some(100));
    publish(&mut w, c, "C", None);
    w.advance(300);
    assert_eq!(count(&mut w, c), 3);
    w.client(c).qos(1, 10, false);
    let r = w.client(c).consume(1, "q", "t");
    assert_eq!(bodies(&r), ["A", "C"]);
}

#[test]
fn an_expired_head_goes_even_when_the_consumer_that_took_the_one_before_is_full() {
    let (mut w, c) = world();
    publish(&mut w, c, "A", None);
    publish(&mut w, c, "B", Some(100));
    w.advance(300);
    w.client(c).qos(1, 1, false);
    let r = w.client(c).consume(1, "q", "t");
    assert_eq!(bodies(&r), ["A"]);
    assert_eq!(
        w.broker().queue("/", "q").map(|q| q.len()),
        Some(0),
        "B became the head after A's delivery and had expired"
    );
}

#[test]
fn a_message_whose_ttl_passed_while_unacked_is_dropped_when_requeued() {
    let (mut w, c) = world();
    publish(&mut w, c, "A", Some(200));
    let (_, _, tag) = get(&mut w, c, false).expect("A");
    w.advance(400);
    w.client(c).nack(1, tag, false, true);
    assert_eq!(
        w.broker().queue("/", "q").map(|q| q.len()),
        Some(0),
        "gone as it came back, before anything looks (list_queues shows no message)"
    );
    assert_eq!(count(&mut w, c), 0);
    assert_eq!(get(&mut w, c, true), None);
}

#[test]
fn a_requeued_message_still_alive_goes_back_and_expires_on_time() {
    let (mut w, c) = world();
    publish(&mut w, c, "A", Some(2_000));
    let (_, _, tag) = get(&mut w, c, false).expect("A");
    w.advance(500);
    w.client(c).reject(1, tag, true);
    assert_eq!(count(&mut w, c), 1, "back at the head, redelivered");
    // Nothing else is timed in the broker: the requeue alone must arm its TTL.
    w.advance(1_600);
    assert_eq!(
        w.broker().queue("/", "q").map(|q| q.len()),
        Some(0),
        "expired 2 s after its publish"
    );
}

/// A length limit that drops the head uncovers the next message: past its TTL, it goes at
/// once, in the same publish (RabbitMQ's queue looks at expiry after every drop). Here `b`
/// expired behind `a`; `c` pushes `a` out, and `b` dies with it, before any timer.
#[test]
fn a_head_uncovered_by_a_length_limit_expires_at_once() {
    let mut w = World::new();
    w.conn_config.heartbeat = 0;
    let c = w.connect_channel();
    w.client(c).declare_queue(1, "dead");
    let mut args = table(&[
        ("x-dead-letter-exchange", ""),
        ("x-dead-letter-routing-key", "dead"),
    ]);
    args.insert("x-max-length", FieldValue::I32(2));
    w.client(c).declare_queue_with(
        1,
        QueueDeclare {
            queue: "q".into(),
            arguments: args,
            ..Default::default()
        },
    );
    publish(&mut w, c, "a", None);
    publish(&mut w, c, "b", Some(10));
    w.advance(50);
    publish(&mut w, c, "c", None);
    assert_eq!(w.broker().queue("/", "q").map(|q| q.len()), Some(1));
    assert_eq!(w.broker().queue("/", "dead").map(|q| q.len()), Some(2));
    let r = w.client(c).get(1, "q", true);
    assert_eq!(bodies(&r), vec!["c"]);
}
