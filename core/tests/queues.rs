//! Queue lifecycle (AMQP 0-9-1 §1.7 queue): declare and its equivalence checks, exclusive and
//! auto-delete queues, purge, delete, and the consumer-cancel notification RabbitMQ sends when a
//! consumed queue goes away.

mod support;

use support::*;
use warren_core::codec::{
    BasicCancel, FieldValue, QueueDeclare, QueueDeclareOk, QueueDelete, QueueDeleteOk, QueuePurge,
    QueuePurgeOk,
};

const LOCKED: &str = "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue 'ex' in \
                      vhost '/'. It could be originally declared on another connection or the \
                      exclusive property value does not match that of the original declaration.";

fn passive(name: &str) -> QueueDeclare {
    QueueDeclare {
        queue: name.into(),
        passive: true,
        ..Default::default()
    }
}

fn exclusive(name: &str) -> QueueDeclare {
    QueueDeclare {
        queue: name.into(),
        exclusive: true,
        ..Default::default()
    }
}

/// A connection that does not announce `consumer_cancel_notify`.
fn connect_without_cancel_notify(w: &mut World) -> Cid {
    let c = w.connect();
    w.client(c).handshake_with(&Handshake {
        capabilities: vec![],
        ..Default::default()
    });
    w.client(c).open_channel(1);
    c
}

#[test]
fn declare_ok_reports_message_and_consumer_counts() {
    let mut w = World::new();
    let c = w.connect_channel();
    assert_eq!(
        w.client(c).declare_queue(1, "q"),
        QueueDeclareOk {
            queue: s("q"),
            message_count: 0,
            consumer_count: 0
        }
    );
    w.client(c).publish_all(1, "q", &["a", "b"]);
    w.client(c).open_channel(2);
    w.client(c).consume(2, "q", "ct");
    // Both went to the consumer; none is ready.
    let ok = w.client(c).declare_queue(1, "q");
    assert_eq!((ok.message_count, ok.consumer_count), (0, 1));
}

#[test]
fn a_server_named_queue_gets_an_amq_gen_name() {
    let mut w = World::new();
    let c = w.connect_channel();
    let a = w.client(c).declare_queue(1, "").queue;
    let b = w.client(c).declare_queue(1, "").queue;
    assert!(
        a.starts_with("amq.gen-") && b.starts_with("amq.gen-"),
        "{a} {b}"
    );
    assert_ne!(a, b);
}

#[test]
fn passive_declare_of_a_missing_queue_is_404() {
    let mut w = World::new();
    let c = w.connect_channel();
    assert_eq!(
        w.client(c).queue_declare(1, passive("nope")),
        vec![channel_close(
            1,
            404,
            "NOT_FOUND - no queue 'nope' in vhost '/'",
            50,
            10
        )]
    );
}

#[test]
fn redeclaring_with_a_different_durable_flag_is_406_with_rabbitmqs_text() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_queue(1, "q");
    assert_eq!(
        w.client(c).queue_declare(
            1,
            QueueDeclare {
                queue: s("q"),
                durable: true,
                ..Default::default()
            }
        ),
        vec![channel_close(
            1,
            406,
            "PRECONDITION_FAILED - inequivalent arg 'durable' for queue 'q' in vhost '/': \
             received 'true' but current is 'false'",
            50,
            10
        )]
    );
}

#[test]
fn redeclaring_with_a_different_argument_is_406() {
    let mut w = World::new();
    let c = w.connect_channel();
    let mut args = warren_core::codec::FieldTable::default();
    args.insert("x-max-length", FieldValue::I32(10));
    w.client(c).declare_queue_with(
        1,
        QueueDeclare {
            queue: s("q"),
            arguments: args,
            ..Default::default()
        },
    );
    let r = w.client(c).queue_declare(
        1,
        QueueDeclare {
            queue: s("q"),
            ..Default::default()
        },
    );
    assert_eq!(
        r,
        vec![channel_close(
            1,
            406,
            "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue 'q' in vhost '/': \
             received none but current is the value '10' of type 'signedint'",
            50,
            10
        )]
    );
}

#[test]
fn a_queue_name_starting_with_amq_is_reserved() {
    let mut w = World::new();
    let c = w.connect_channel();
    assert_eq!(
        w.client(c).queue_declare(
            1,
            QueueDeclare {
                queue: s("amq.foo"),
                ..Default::default()
            }
        ),
        vec![channel_close(
            1,
            403,
            "ACCESS_REFUSED - queue name 'amq.foo' contains reserved prefix 'amq.*'",
            50,
            10
        )]
    );
}

#[test]
fn an_exclusive_queue_is_405_for_other_connections() {
    let mut w = World::new();
    let owner = w.connect_channel();
    w.client(owner).declare_queue_with(1, exclusive("ex"));
    let other = w.connect_channel();
    let locked = |ch, class, method| channel_close(ch, 405, LOCKED, class, method);

    assert_eq!(
        w.client(other).queue_declare(1, passive("ex")),
        vec![locked(1, 50, 10)]
    );
    w.client(other).open_channel(2);
    assert_eq!(
        w.client(other).consume(2, "ex", "ct"),
        vec![locked(2, 60, 20)]
    );
    w.client(other).open_channel(3);
    assert_eq!(
        w.client(other).queue_declare(
            3,
            QueueDeclare {
                queue: s("ex"),
                ..Default::default()
            }
        ),
        vec![locked(3, 50, 10)]
    );
    w.client(other).open_channel(4);
    assert_eq!(w.client(other).get(4, "ex", false), vec![locked(4, 60, 70)]);
    w.client(other).open_channel(5);
    assert_eq!(
        w.client(other).delete_queue(5, "ex"),
        vec![locked(5, 50, 40)]
    );
}

#[test]
fn others_may_still_publish_to_an_exclusive_queue() {
    let mut w = World::new();
    let owner = w.connect_channel();
    w.client(owner).declare_queue_with(1, exclusive("ex"));
    let other = w.connect_channel();
    assert_eq!(w.client(other).publish_all(1, "ex", &["hello"]), vec![]);
    assert_eq!(bodies(&w.client(owner).get(1, "ex", true)), ["hello"]);
}

#[test]
fn redeclaring_an_exclusive_queue_as_non_exclusive_is_405_even_for_its_owner() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_queue_with(1, exclusive("ex"));
    assert_eq!(
        w.client(c).queue_declare(
            1,
            QueueDeclare {
                queue: s("ex"),
                ..Default::default()
            }
        ),
        vec![channel_close(1, 405, LOCKED, 50, 10)]
    );
}

#[test]
fn an_exclusive_queue_vanishes_with_its_connection() {
    let mut w = World::new();
    let owner = w.connect_channel();
    w.client(owner).declare_queue_with(1, exclusive("ex"));
    w.client(owner).publish_all(1, "ex", &["a"]);
    let other = w.connect_channel();
    w.client(owner).close_connection();
    assert_eq!(
        w.client(other).queue_declare(1, passive("ex")),
        vec![channel_close(
            1,
            404,
            "NOT_FOUND - no queue 'ex' in vhost '/'",
            50,
            10
        )]
    );
    assert!(w.broker().queue("/", "ex").is_none());
}

#[test]
fn an_exclusive_queue_vanishes_when_its_connection_drops() {
    let mut w = World::new();
    let owner = w.connect_channel();
    w.client(owner).declare_queue_with(1, exclusive("ex"));
    w.client(owner).disconnect();
    assert!(w.broker().queue("/", "ex").is_none());
    // The name is free for anyone now.
    let other = w.connect_channel();
    w.client(other).declare_queue_with(1, exclusive("ex"));
}

#[test]
fn an_auto_delete_queue_goes_with_its_last_consumer() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_queue_with(
        1,
        QueueDeclare {
            queue: s("ad"),
            auto_delete: true,
            ..Default::default()
        },
    );
    w.client(c).consume(1, "ad", "a");
    w.client(c).consume(1, "ad", "b");
    w.client(c).cancel(1, "a");
    let ok = w.client(c).declare_queue_with(1, passive("ad"));
    assert_eq!(ok.consumer_count, 1);
    w.client(c).cancel(1, "b");
    assert_eq!(
        w.client(c).queue_declare(1, passive("ad")),
        vec![channel_close(
            1,
            404,
            "NOT_FOUND - no queue 'ad' in vhost '/'",
            50,
            10
        )]
    );
}

#[test]
fn an_auto_delete_queue_goes_when_its_consumers_channel_closes() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).open_channel(2);
    w.client(c).declare_queue_with(
        1,
        QueueDeclare {
            queue: s("ad"),
            auto_delete: true,
            ..Default::default()
        },
    );
    w.client(c).consume(2, "ad", "a");
    w.client(c).close_channel(2);
    assert!(w.broker().queue("/", "ad").is_none());
}

#[test]
fn an_auto_delete_queue_that_never_had_a_consumer_stays() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_queue_with(
        1,
        QueueDeclare {
            queue: s("ad"),
            auto_delete: true,
            ..Default::default()
        },
    );
    w.client(c).close_connection();
    let d = w.connect_channel();
    assert_eq!(
        w.client(d)
            .declare_queue_with(1, passive("ad"))
            .queue
            .as_str(),
        "ad"
    );
}

#[test]
fn deleting_a_consumed_queue_sends_basic_cancel_to_clients_that_asked_for_it() {
    let mut w = World::new();
    let consumer = w.connect_channel();
    let deleter = w.connect_channel();
    w.client(consumer).declare_queue(1, "q");
    w.client(consumer).consume(1, "q", "ct");
    assert_eq!(
        w.client(deleter).delete_queue(1, "q"),
        vec![method(1, QueueDeleteOk { message_count: 0 })]
    );
    assert_eq!(
        w.client(consumer).take(),
        vec![method(
            1,
            BasicCancel {
                consumer_tag: s("ct"),
                no_wait: true
            }
        )]
    );
    // The consumer is gone: cancelling it again is answered, nothing more.
    assert_eq!(w.client(consumer).cancel(1, "ct").len(), 1);
}

#[test]
fn deleting_a_consumed_queue_cancels_silently_without_consumer_cancel_notify() {
    let mut w = World::new();
    let consumer = connect_without_cancel_notify(&mut w);
    let deleter = w.connect_channel();
    w.client(consumer).declare_queue(1, "q");
    w.client(consumer).consume(1, "q", "ct");
    w.client(deleter).delete_queue(1, "q");
    assert_eq!(w.client(consumer).take(), vec![]);
}

/// RabbitMQ 3.10.8, a consumer deleting its own queue on the same channel: `queue.delete-ok`
/// first, then `basic.cancel` (the queue process notifies the channel after the delete
/// returned).
#[test]
fn deleting_ones_own_consumed_queue_answers_delete_ok_before_basic_cancel() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_queue(1, "q");
    w.client(c).consume(1, "q", "ct");
    assert_eq!(
        w.client(c).delete_queue(1, "q"),
        vec![
            method(1, QueueDeleteOk { message_count: 0 }),
            method(
                1,
                BasicCancel {
                    consumer_tag: s("ct"),
                    no_wait: true
                }
            ),
        ]
    );
}

#[test]
fn purge_drops_ready_messages_and_reports_how_many() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_queue(1, "q");
    w.client(c).publish_all(1, "q", &["a", "b", "c"]);
    assert_eq!(
        w.client(c).send(
            1,
            QueuePurge {
                queue: s("q"),
                ..Default::default()
            }
        ),
        vec![method(1, QueuePurgeOk { message_count: 3 })]
    );
    assert_eq!(w.client(c).declare_queue(1, "q").message_count, 0);
}

#[test]
fn purge_leaves_unacked_messages_alone() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_queue(1, "q");
    w.client(c).publish_all(1, "q", &["a", "b"]);
    w.client(c).get(1, "q", false);
    let r = w.client(c).send(
        1,
        QueuePurge {
            queue: s("q"),
            ..Default::default()
        },
    );
    assert_eq!(r, vec![method(1, QueuePurgeOk { message_count: 1 })]);
    w.client(c).close_channel(1);
    w.client(c).open_channel(1);
    assert_eq!(bodies(&w.client(c).get(1, "q", true)), ["a"]);
}

#[test]
fn delete_reports_the_ready_message_count() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_queue(1, "q");
    w.client(c).publish_all(1, "q", &["a", "b"]);
    assert_eq!(
        w.client(c).delete_queue(1, "q"),
        vec![method(1, QueueDeleteOk { message_count: 2 })]
    );
    assert!(w.broker().queue("/", "q").is_none());
}

#[test]
fn deleting_a_missing_queue_succeeds() {
    let mut w = World::new();
    let c = w.connect_channel();
    assert_eq!(
        w.client(c).delete_queue(1, "nope"),
        vec![method(1, QueueDeleteOk { message_count: 0 })]
    );
}

#[test]
fn delete_if_empty_and_if_unused_refuse_with_406() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_queue(1, "q");
    w.client(c).publish_all(1, "q", &["a"]);
    assert_eq!(
        w.client(c).send(
            1,
            QueueDelete {
                queue: s("q"),
                if_empty: true,
                ..Default::default()
            }
        ),
        vec![channel_close(
            1,
            406,
            "PRECONDITION_FAILED - queue 'q' in vhost '/' not empty",
            50,
            40
        )]
    );
    w.client(c).open_channel(2);
    w.client(c).consume(2, "q", "ct");
    w.client(c).open_channel(3);
    assert_eq!(
        w.client(c).send(
            3,
            QueueDelete {
                queue: s("q"),
                if_unused: true,
                ..Default::default()
            }
        ),
        vec![channel_close(
            3,
            406,
            "PRECONDITION_FAILED - queue 'q' in vhost '/' in use",
            50,
            40
        )]
    );
}

#[test]
fn a_queue_message_ttl_expires_messages_on_virtual_time() {
    let mut w = World::new();
    let c = w.connect_channel();
    let mut args = warren_core::codec::FieldTable::default();
    args.insert("x-message-ttl", FieldValue::I32(1_000));
    w.client(c).declare_queue_with(
        1,
        QueueDeclare {
            queue: s("ttl"),
            arguments: args,
            ..Default::default()
        },
    );
    w.client(c).publish_all(1, "ttl", &["a"]);
    w.advance(500);
    w.client(c).publish_all(1, "ttl", &["b"]);
    w.advance(499);
    // Not yet a whole second old (RabbitMQ expires at `now >= published + ttl`, in µs).
    assert_eq!(
        w.client(c)
            .declare_queue_with(1, passive("ttl"))
            .message_count,
        2
    );
    w.advance(2);
    assert_eq!(bodies(&w.client(c).get(1, "ttl", true)), ["b"]);
}
