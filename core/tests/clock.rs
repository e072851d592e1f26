//! The broker's clock moves with every input, not only with timers: what a command starts that
//! is timed (a message's TTL, a queue's `x-expires`) counts from the time the command carried,
//! however long no timer ran before it. Hosts arm a timer only for the next deadline, so after
//! a quiet spell (no heartbeats, nothing timed) the last timer may lie far in the past.

mod support;

use support::*;
use warren_core::codec::{BasicProperties, FieldTable, FieldValue, QueueDeclare};

/// A world whose connections have no heartbeats: nothing runs a timer while they are quiet.
fn quiet_world() -> (World, Cid) {
    let mut w = World::new();
    w.conn_config.heartbeat = 0;
    let c = w.connect_channel();
    (w, c)
}

fn expiring_in(ms: u64) -> BasicProperties {
    BasicProperties {
        expiration: Some(ms.to_string().as_str().into()),
        ..Default::default()
    }
}

/// Messages ready in queue "q" (a passive declare, as clients count).
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

fn got_body(r: &[Received]) -> Option<String> {
    deliveries(r).first().map(|d| d.body_str().to_owned())
}

#[test]
fn a_message_ttl_counts_from_its_publish_after_a_quiet_spell() {
    let (mut w, c) = quiet_world();
    w.client(c).declare_queue(1, "q");
    assert_eq!(w.broker().poll_timeout(), None, "nothing timed yet");
    // 40 s with no input and no timer; then a publish at t = 50 s with a 5 s TTL.
    w.jump_to(50_000);
    w.client(c)
        .publish(1, "", "q", &expiring_in(5_000), b"fresh");
    assert_eq!(w.broker().poll_timeout(), Some(55_001));
    w.jump_to(54_000);
    let r = w.client(c).get(1, "q", true);
    assert_eq!(
        got_body(&r).as_deref(),
        Some("fresh"),
        "alive 4 s after its publish"
    );
    w.client(c)
        .publish(1, "", "q", &expiring_in(5_000), b"late");
    w.advance_to(59_001);
    let r = w.client(c).get(1, "q", true);
    assert_eq!(got_body(&r), None, "expired 5 s after its publish");
}

#[test]
fn a_queue_ttl_counts_from_the_publish_after_a_quiet_spell() {
    let (mut w, c) = quiet_world();
    let mut args = FieldTable::default();
    args.insert("x-message-ttl", FieldValue::I32(5_000));
    w.client(c).declare_queue_with(
        1,
        QueueDeclare {
            queue: "q".into(),
            arguments: args,
            ..Default::default()
        },
    );
    w.jump_to(50_000);
    w.client(c)
        .publish(1, "", "q", &BasicProperties::default(), b"m");
    assert_eq!(
        w.broker().poll_timeout(),
        Some(55_001),
        "due 5 s after the publish"
    );
    w.jump_to(54_000);
    assert_eq!(count(&mut w, c), 1, "alive 4 s after its publish");
    w.advance_to(55_001);
    assert_eq!(count(&mut w, c), 0, "expired 5 s after its publish");
}

#[test]
fn queue_expiry_counts_from_the_declare_after_a_quiet_spell() {
    let (mut w, c) = quiet_world();
    w.jump_to(50_000);
    let mut args = FieldTable::default();
    args.insert("x-expires", FieldValue::I32(5_000));
    w.client(c).declare_queue_with(
        1,
        QueueDeclare {
            queue: "q".into(),
            arguments: args,
            ..Default::default()
        },
    );
    w.jump_to(54_000);
    w.advance(0);
    assert!(w.broker().queue("/", "q").is_some(), "unused for 4 s only");
    w.advance_to(55_000);
    assert!(w.broker().queue("/", "q").is_none(), "unused for 5 s");
}
