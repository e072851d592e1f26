//! Durability: a new broker built over the storage of an old one gets back the durable
//! exchanges, durable queues, bindings between durable ends, and the persistent
//! (`delivery_mode = 2`) messages of durable queues, and nothing else.

mod support;

use support::*;
use warren_core::codec::{
    BasicProperties, ExchangeDeclare, ExchangeDelete, FieldValue, QueueDeclare, QueueUnbind,
};

fn durable_queue(name: &str) -> QueueDeclare {
    QueueDeclare {
        queue: name.into(),
        durable: true,
        ..Default::default()
    }
}

fn passive_queue(name: &str) -> QueueDeclare {
    QueueDeclare {
        queue: name.into(),
        passive: true,
        ..Default::default()
    }
}

fn durable_exchange(name: &str, kind: &str) -> ExchangeDeclare {
    ExchangeDeclare {
        exchange: name.into(),
        kind: kind.into(),
        durable: true,
        ..Default::default()
    }
}

/// A new broker over a copy of what `w`'s broker stored (as after a restart).
fn restart(w: &World) -> World {
    World::with_storage(SharedStorage::new(w.storage.snapshot()))
}

/// Ready message count of `queue`, or None if it does not exist.
fn ready(w: &mut World, c: Cid, queue: &str) -> Option<u32> {
    let r = w.client(c).queue_declare(1, passive_queue(queue));
    match r.as_slice() {
        [Received::Method {
            method: warren_core::codec::Method::QueueDeclareOk(ok),
            ..
        }] => Some(ok.message_count),
        _ => {
            w.client(c).open_channel(1);
            None
        }
    }
}

/// The classic scenario: durable queue + durable exchange + binding, persistent and transient
/// messages; returns the world before the restart.
fn populated() -> World {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_queue_with(1, durable_queue("dq"));
    w.client(c).declare_queue(1, "tq");
    w.client(c)
        .declare_exchange_with(1, durable_exchange("dx", "direct"));
    w.client(c).bind_queue(1, "dq", "dx", "k");
    w.client(c).bind_queue(1, "tq", "dx", "k");
    let mut p = persistent();
    p.message_id = Some(s("p1"));
    p.headers = Some(table(&[("h", "v")]));
    w.client(c).publish(1, "dx", "k", &p, b"persistent 1");
    w.client(c)
        .publish(1, "dx", "k", &transient(), b"transient");
    w.client(c)
        .publish(1, "", "dq", &BasicProperties::default(), b"no mode");
    w.client(c)
        .publish(1, "", "dq", &persistent(), b"persistent 2");
    assert_eq!(ready(&mut w, c, "dq"), Some(4));
    assert_eq!(ready(&mut w, c, "tq"), Some(2));
    w
}

#[test]
fn durable_queue_exchange_and_binding_survive_a_restart() {
    let old = populated();
    let mut w = restart(&old);
    let c = w.connect_channel();
    assert!(ready(&mut w, c, "dq").is_some());
    let r = w.client(c).send(
        1,
        ExchangeDeclare {
            exchange: s("dx"),
            passive: true,
            ..Default::default()
        },
    );
    assert_eq!(r, vec![method(1, warren_core::codec::ExchangeDeclareOk)]);
    // Redeclaring as it was declared is fine: durable, direct.
    w.client(c)
        .declare_exchange_with(1, durable_exchange("dx", "direct"));
    w.client(c).declare_queue_with(1, durable_queue("dq"));
    // The binding routes.
    w.client(c)
        .publish(1, "dx", "k", &transient(), b"after restart");
    assert_eq!(ready(&mut w, c, "dq"), Some(3));
}

#[test]
fn only_persistent_messages_come_back_in_order_and_intact() {
    let old = populated();
    assert_eq!(old.storage.message_count(), 2);
    let mut w = restart(&old);
    let c = w.connect_channel();
    let r = w.client(c).consume_no_ack(1, "dq", "ct");
    assert_eq!(bodies(&r), ["persistent 1", "persistent 2"]);
    let d = deliveries(&r);
    assert_eq!((d[0].exchange(), d[0].routing_key()), ("dx", "k"));
    assert_eq!((d[1].exchange(), d[1].routing_key()), ("", "dq"));
    assert_eq!(d[0].properties.message_id.as_deref(), Some("p1"));
    assert_eq!(
        d[0].properties
            .headers
            .as_ref()
            .and_then(|h| h.get("h"))
            .and_then(FieldValue::as_str),
        Some("v")
    );
    assert!(d.iter().all(|d| !d.redelivered()));
}

#[test]
fn a_non_durable_queue_does_not_come_back_even_with_persistent_messages() {
    let old = populated();
    let mut w = restart(&old);
    let c = w.connect_channel();
    assert_eq!(ready(&mut w, c, "tq"), None);
}

#[test]
fn a_non_durable_exchange_and_bindings_to_non_durable_queues_are_not_stored() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_exchange(1, "tx", "fanout");
    w.client(c)
        .declare_exchange_with(1, durable_exchange("dx", "fanout"));
    w.client(c).declare_queue(1, "tq");
    w.client(c).declare_queue_with(1, durable_queue("dq"));
    w.client(c).bind_queue(1, "tq", "dx", "");
    w.client(c).bind_queue(1, "dq", "tx", "");
    w.client(c).bind_queue(1, "dq", "dx", "");
    let stored = w.storage.load();
    let exchanges: Vec<&str> = stored
        .exchanges
        .iter()
        .map(|(_, e)| e.name.as_str())
        .collect();
    assert_eq!(exchanges, ["dx"]);
    let bindings: Vec<(&str, &str)> = stored
        .bindings
        .iter()
        .map(|(_, b)| (b.source.as_str(), b.destination.as_str()))
        .collect();
    assert_eq!(bindings, [("dx", "dq")]);
}

#[test]
fn acked_and_no_ack_consumed_messages_do_not_come_back() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_queue_with(1, durable_queue("dq"));
    for b in ["a", "b", "c", "d"] {
        w.client(c)
            .publish(1, "", "dq", &persistent(), b.as_bytes());
    }
    assert_eq!(w.storage.message_count(), 4);
    w.client(c).get(1, "dq", false);
    w.client(c).ack(1, 1, false);
    w.client(c).get(1, "dq", true);
    assert_eq!(w.storage.message_count(), 2);
    let mut w = restart(&w);
    let c = w.connect_channel();
    assert_eq!(
        bodies(&w.client(c).consume_no_ack(1, "dq", "ct")),
        ["c", "d"]
    );
}

#[test]
fn purged_messages_do_not_come_back() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_queue_with(1, durable_queue("dq"));
    w.client(c).publish(1, "", "dq", &persistent(), b"x");
    w.client(c).send(
        1,
        warren_core::codec::QueuePurge {
            queue: s("dq"),
            ..Default::default()
        },
    );
    assert_eq!(w.storage.message_count(), 0);
    let mut w = restart(&w);
    let c = w.connect_channel();
    assert_eq!(ready(&mut w, c, "dq"), Some(0));
}

#[test]
fn an_unacked_persistent_message_comes_back() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_queue_with(1, durable_queue("dq"));
    w.client(c)
        .publish(1, "", "dq", &persistent(), b"in flight");
    assert_eq!(bodies(&w.client(c).consume(1, "dq", "ct")), ["in flight"]);
    // The old broker dies with the delivery unacked.
    let mut w = restart(&w);
    let c = w.connect_channel();
    assert_eq!(bodies(&w.client(c).get(1, "dq", false)), ["in flight"]);
    // Acking it removes it from storage for good.
    w.client(c).ack(1, 1, false);
    assert_eq!(w.storage.message_count(), 0);
}

/// RabbitMQ 3.10 classic queues persist how far delivery got (`next_deliver_seq_id` in the
/// recovery terms, `del` entries in the queue index) and recover a delivered-but-unacked
/// message with `is_delivered = true`, so it comes back with redelivered=true
/// (deps/rabbit/src/rabbit_variable_queue.erl, `set_deliver_flag/2`, `betas_from_index_entries/4`).
#[test]
fn an_unacked_persistent_message_comes_back_marked_redelivered() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_queue_with(1, durable_queue("dq"));
    w.client(c)
        .publish(1, "", "dq", &persistent(), b"in flight");
    w.client(c)
        .publish(1, "", "dq", &persistent(), b"never delivered");
    w.client(c).get(1, "dq", false);
    let mut w = restart(&w);
    let c = w.connect_channel();
    let r = w.client(c).consume_no_ack(1, "dq", "ct");
    let got: Vec<(&str, bool)> = deliveries(&r)
        .iter()
        .map(|d| (d.body_str(), d.redelivered()))
        .collect();
    assert_eq!(got, [("in flight", true), ("never delivered", false)]);
}

/// Every delivery to a consumer that was to ack is counted and stored (quorum queues expose the
/// count as `x-delivery-count`): the count survives restarts and goes on from there.
#[test]
fn the_delivery_count_is_stored_and_survives_restarts() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_queue_with(1, durable_queue("dq"));
    w.client(c).publish(1, "", "dq", &persistent(), b"bounced");
    w.client(c)
        .publish(1, "", "dq", &persistent(), b"untouched");
    for tag in 1..=2 {
        assert_eq!(bodies(&w.client(c).get(1, "dq", false)), ["bounced"]);
        w.client(c).nack(1, tag, false, true);
    }
    let counts = |w: &World| -> Vec<u32> {
        w.storage.load().messages[0]
            .2
            .iter()
            .map(|m| m.deliveries)
            .collect()
    };
    assert_eq!(counts(&w), [2, 0]);
    let mut w = restart(&w);
    let head = w
        .broker()
        .queue("/", "dq")
        .and_then(|q| q.head())
        .map(|m| m.deliveries);
    assert_eq!(head, Some(2), "recovered with its count");
    let c = w.connect_channel();
    let r = w.client(c).get(1, "dq", false);
    assert!(deliveries(&r)[0].redelivered());
    assert_eq!(counts(&w), [3, 0], "and counted on");
}

#[test]
fn deleted_durable_entities_do_not_come_back() {
    let mut w = populated();
    let c = w.connect_channel();
    w.client(c).declare_queue_with(1, durable_queue("dq2"));
    w.client(c).bind_queue(1, "dq2", "dx", "k");
    w.client(c).send(
        1,
        QueueUnbind {
            queue: s("dq"),
            exchange: s("dx"),
            routing_key: s("k"),
            ..Default::default()
        },
    );
    w.client(c).delete_queue(1, "dq2");
    w.client(c)
        .declare_exchange_with(1, durable_exchange("gone", "fanout"));
    w.client(c).send(
        1,
        ExchangeDelete {
            exchange: s("gone"),
            ..Default::default()
        },
    );
    let mut w = restart(&w);
    let c = w.connect_channel();
    assert_eq!(ready(&mut w, c, "dq2"), None);
    let r = w.client(c).send(
        1,
        ExchangeDeclare {
            exchange: s("gone"),
            passive: true,
            ..Default::default()
        },
    );
    assert_eq!(r[0].method().map(|m| m.name()), Some("channel.close"));
    w.client(c).open_channel(1);
    // dq was unbound from dx: nothing routes there any more.
    let before = ready(&mut w, c, "dq");
    w.client(c).publish(1, "dx", "k", &persistent(), b"x");
    assert_eq!(ready(&mut w, c, "dq"), before);
}

#[test]
fn a_deleted_durable_queue_takes_its_stored_messages_with_it() {
    let mut w = populated();
    let c = w.connect_channel();
    w.client(c).delete_queue(1, "dq");
    assert_eq!(w.storage.message_count(), 0);
    let mut w = restart(&w);
    let c = w.connect_channel();
    assert_eq!(ready(&mut w, c, "dq"), None);
}

#[test]
fn an_exclusive_queue_is_never_durable() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_queue_with(
        1,
        QueueDeclare {
            queue: s("ex"),
            durable: true,
            exclusive: true,
            ..Default::default()
        },
    );
    w.client(c).publish(1, "", "ex", &persistent(), b"x");
    assert_eq!(w.storage.message_count(), 0);
    assert!(w.storage.load().queues.is_empty());
}

#[test]
fn a_restarted_broker_keeps_storing_new_messages() {
    let old = populated();
    let mut w = restart(&old);
    let c = w.connect_channel();
    w.client(c)
        .publish(1, "", "dq", &persistent(), b"persistent 3");
    // Storage ids keep growing: the new message sorts after the recovered ones.
    let mut w = restart(&w);
    let c = w.connect_channel();
    assert_eq!(
        bodies(&w.client(c).consume_no_ack(1, "dq", "ct")),
        ["persistent 1", "persistent 2", "persistent 3"]
    );
}
