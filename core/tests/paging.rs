//! Queues longer than memory: with a store that can page, a queue keeps a window of messages
//! in memory and leaves the rest in the store, reading it back as consumers reach it. Nothing
//! a client sees changes: order, counts, limits, purges, acks and restarts behave as with the
//! whole queue in memory. These run on a memory store that pages, with a window of 4.

mod support;

use support::*;
use warren_core::broker::{BrokerConfig, Window};
use warren_core::codec::{FieldTable, FieldValue, Method, QueueDeclare};

const WINDOW: usize = 4;

fn config() -> BrokerConfig {
    BrokerConfig {
        queue_window: Window {
            messages: WINDOW,
            bytes: 1 << 20,
        },
        ..BrokerConfig::default()
    }
}

fn paging_world(storage: SharedStorage) -> World {
    let mut w = World::with_config(storage, config());
    w.conn_config.heartbeat = 0;
    w
}

fn durable(name: &str) -> QueueDeclare {
    QueueDeclare {
        queue: name.into(),
        durable: true,
        ..Default::default()
    }
}

fn in_memory(w: &World, queue: &str) -> usize {
    w.broker()
        .queue("/", queue)
        .expect("queue exists")
        .ready_in_memory()
}

fn count(w: &World, queue: &str) -> usize {
    w.broker().queue("/", queue).expect("queue exists").len()
}

/// Takes every message with `basic.get` (no ack), returning the bodies in order.
fn get_all(w: &mut World, c: Cid, queue: &str) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let r = w.client(c).get(1, queue, true);
        let got = bodies(&r);
        if got.is_empty() {
            assert!(
                matches!(methods(&r).as_slice(), [Method::BasicGetEmpty(_)]),
                "{r:?}"
            );
            return out;
        }
        out.extend(got.into_iter().map(String::from));
    }
}

fn numbered(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("m{i}")).collect()
}

/// A world whose store syncs only when the test says, with durable queue `q` declared (and
/// synced) and `n` numbered persistent messages published, not yet synced.
fn deferred_filled(n: usize) -> (World, Cid) {
    let mut w = paging_world(SharedStorage::deferred_paging());
    let c = w.connect_channel();
    w.client(c).queue_declare(1, durable("q"));
    w.sync_storage();
    w.client(c).flush();
    for body in numbered(n) {
        w.client(c)
            .publish(1, "", "q", &persistent(), body.as_bytes());
    }
    (w, c)
}

/// A paging world with durable queue `q` holding `n` numbered messages published with `props`.
fn filled(n: usize, props: &warren_core::codec::BasicProperties) -> (World, Cid) {
    let mut w = paging_world(SharedStorage::paging());
    let c = w.connect_channel();
    w.client(c).declare_queue_with(1, durable("q"));
    for body in numbered(n) {
        w.client(c).publish(1, "", "q", props, body.as_bytes());
    }
    (w, c)
}

#[test]
fn a_long_queue_keeps_a_window_in_memory_and_hands_out_everything_in_order() {
    let (mut w, c) = filled(50, &persistent());
    assert_eq!(count(&w, "q"), 50);
    assert!(
        in_memory(&w, "q") <= WINDOW,
        "{} in memory",
        in_memory(&w, "q")
    );
    let ok = w.client(c).declare_queue_with(1, durable("q"));
    assert_eq!(ok.message_count, 50);
    assert_eq!(get_all(&mut w, c, "q"), numbered(50));
    assert_eq!(w.storage.message_count(), 0, "no-ack gets forget them");
}

#[test]
fn transient_messages_keep_their_place_and_are_gone_after_a_restart() {
    let mut w = paging_world(SharedStorage::paging());
    let c = w.connect_channel();
    w.client(c).declare_queue_with(1, durable("q"));
    let mut all = Vec::new();
    let mut kept = Vec::new();
    for i in 0..30 {
        let body = format!("m{i}");
        let props = if i % 3 == 0 {
            kept.push(body.clone());
            persistent()
        } else {
            transient()
        };
        all.push(body.clone());
        w.client(c).publish(1, "", "q", &props, body.as_bytes());
    }
    assert!(in_memory(&w, "q") <= WINDOW);
    // After a restart only the persistent ones are back, in order.
    let mut after = paging_world(SharedStorage::new(w.storage.snapshot()));
    let c2 = after.connect_channel();
    assert_eq!(get_all(&mut after, c2, "q"), kept);
    // The running broker still has every one of them, in order.
    assert_eq!(get_all(&mut w, c, "q"), all);
}

#[test]
fn a_consumer_gets_every_page_in_order_and_its_acks_reach_the_store() {
    let (mut w, c) = filled(40, &persistent());
    w.client(c).qos(1, 3, false);
    let mut got = Vec::new();
    let mut r = w.client(c).consume(1, "q", "ctag");
    loop {
        let ds = deliveries(&r);
        if ds.is_empty() {
            break;
        }
        for d in &ds {
            got.push(d.body_str().to_owned());
            assert!(!d.redelivered());
        }
        let last = ds.last().expect("some").delivery_tag();
        r = w.client(c).ack(1, last, true);
    }
    assert_eq!(got, numbered(40));
    assert_eq!(count(&w, "q"), 0);
    assert_eq!(w.storage.message_count(), 0);
}

#[test]
fn a_purge_counts_and_forgets_the_paged_messages_too() {
    let (mut w, c) = filled(25, &transient());
    let r = w.client(c).send(
        1,
        warren_core::codec::QueuePurge {
            queue: "q".into(),
            ..Default::default()
        },
    );
    match methods(&r).as_slice() {
        [Method::QueuePurgeOk(ok)] => assert_eq!(ok.message_count, 25),
        other => panic!("{other:?}"),
    }
    assert_eq!(count(&w, "q"), 0);
    assert_eq!(
        w.storage.message_count(),
        0,
        "the paged ones were forgotten"
    );
    w.client(c).publish(1, "", "q", &persistent(), b"after");
    assert_eq!(get_all(&mut w, c, "q"), ["after"]);
}

#[test]
fn a_length_limit_counts_paged_messages_and_drops_from_the_head() {
    let mut w = paging_world(SharedStorage::paging());
    let c = w.connect_channel();
    let mut args = FieldTable::default();
    args.insert("x-max-length", FieldValue::I32(10));
    w.client(c).declare_queue_with(
        1,
        QueueDeclare {
            arguments: args,
            ..durable("q")
        },
    );
    for body in numbered(30) {
        w.client(c)
            .publish(1, "", "q", &persistent(), body.as_bytes());
    }
    assert_eq!(count(&w, "q"), 10);
    assert_eq!(get_all(&mut w, c, "q"), numbered(30)[20..].to_vec());
    assert_eq!(w.storage.message_count(), 0);
}

#[test]
fn requeued_messages_go_back_before_the_paged_ones() {
    let (mut w, c) = filled(12, &persistent());
    // Take three, then give them back.
    for _ in 0..3 {
        assert_eq!(bodies(&w.client(c).get(1, "q", false)).len(), 1);
    }
    w.client(c).nack(1, 0, true, true);
    let r = w.client(c).get(1, "q", false);
    let d = &deliveries(&r)[0];
    assert_eq!(d.body_str(), "m0");
    assert!(d.redelivered());
    w.client(c).ack(1, d.delivery_tag(), false);
    let rest = get_all(&mut w, c, "q");
    assert_eq!(rest, numbered(12)[1..].to_vec());
}

#[test]
fn the_tail_stays_in_memory_until_the_store_is_synced() {
    let (mut w, c) = deferred_filled(10);
    assert_eq!(
        in_memory(&w, "q"),
        WINDOW,
        "the head is full; the rest waits for the sync in memory"
    );
    // A consumer that comes before the sync gets the tail from memory.
    let r = w.client(c).consume_no_ack(1, "q", "ctag");
    assert_eq!(bodies(&r), numbered(10));
    let mut got = Vec::new();
    for body in numbered(10) {
        let r = w
            .client(c)
            .publish(1, "", "q", &persistent(), body.as_bytes());
        got.extend(bodies(&r).into_iter().map(String::from));
    }
    assert_eq!(got, numbered(10), "delivered as they come, before any sync");
}

#[test]
fn after_the_sync_the_tail_leaves_memory() {
    let (mut w, c) = deferred_filled(10);
    w.sync_storage();
    w.client(c).flush();
    assert_eq!(in_memory(&w, "q"), WINDOW);
    assert_eq!(count(&w, "q"), 10);
    assert_eq!(get_all(&mut w, c, "q"), numbered(10));
}

#[test]
fn priority_and_ttl_queues_and_stores_that_cannot_page_keep_everything_in_memory() {
    let mut w = paging_world(SharedStorage::paging());
    let c = w.connect_channel();
    for (name, arg, v) in [("pq", "x-max-priority", 5), ("tq", "x-message-ttl", 60_000)] {
        let mut args = FieldTable::default();
        args.insert(arg, FieldValue::I32(v));
        w.client(c).declare_queue_with(
            1,
            QueueDeclare {
                arguments: args,
                ..durable(name)
            },
        );
        for body in numbered(10) {
            w.client(c)
                .publish(1, "", name, &persistent(), body.as_bytes());
        }
        assert_eq!(in_memory(&w, name), 10, "{name}");
    }
    let mut plain = World::with_config(SharedStorage::default(), config());
    let c = plain.connect_channel();
    plain.client(c).declare_queue_with(1, durable("q"));
    for body in numbered(10) {
        plain
            .client(c)
            .publish(1, "", "q", &persistent(), body.as_bytes());
    }
    assert_eq!(in_memory(&plain, "q"), 10);
}

#[test]
fn queues_that_are_not_durable_keep_their_messages_in_memory() {
    let mut w = paging_world(SharedStorage::paging());
    let c = w.connect_channel();
    w.client(c).declare_queue(1, "tq");
    w.client(c).declare_queue_with(
        1,
        QueueDeclare {
            queue: "eq".into(),
            exclusive: true,
            durable: true,
            ..Default::default()
        },
    );
    for q in ["tq", "eq"] {
        for body in numbered(20) {
            w.client(c)
                .publish(1, "", q, &persistent(), body.as_bytes());
        }
        assert_eq!(in_memory(&w, q), 20, "{q}");
    }
    assert_eq!(w.storage.message_count(), 0, "nothing was written for them");
    assert_eq!(get_all(&mut w, c, "tq"), numbered(20));
}

/// Under memory pressure (RabbitMQ's paging ratio, below the alarm) a queue that is not
/// durable pages too: what its head holds beyond the window goes to the store, as RabbitMQ
/// pages transient messages rather than keep its publishers blocked, order and counts
/// unchanged. Nothing of it is recovered, persistent messages included, not even into a
/// durable queue declared later under the same name; deleting the queue forgets it in the
/// store.
#[test]
fn under_memory_pressure_queues_that_are_not_durable_spill_past_their_window() {
    let mut w = paging_world(SharedStorage::paging());
    let c = w.connect_channel();
    w.client(c).declare_queue(1, "tq");
    let publish_mixed = |w: &mut World, n: usize| {
        for (i, body) in numbered(n).into_iter().enumerate() {
            let props = if i % 2 == 0 {
                persistent()
            } else {
                transient()
            };
            w.client(c).publish(1, "", "tq", &props, body.as_bytes());
        }
    };
    publish_mixed(&mut w, 30);
    assert_eq!(in_memory(&w, "tq"), 30);
    w.set_memory_pressure(true);
    w.client(c).flush();
    assert_eq!(in_memory(&w, "tq"), WINDOW, "spilled past the window");
    assert_eq!(count(&w, "tq"), 30);
    assert_eq!(w.storage.message_count(), 30 - WINDOW);
    // Nothing of it comes back after a restart, even into a durable queue of the same name.
    let mut after = paging_world(SharedStorage::new(w.storage.snapshot()));
    assert!(after.broker().queue("/", "tq").is_none());
    let a = after.connect_channel();
    after.client(a).queue_declare(1, durable("tq"));
    let again = paging_world(SharedStorage::new(after.storage.snapshot()));
    assert_eq!(count(&again, "tq"), 0, "a new durable queue starts empty");
    // New messages past the window follow the spilled ones while the pressure lasts.
    publish_mixed(&mut w, 6);
    assert_eq!(in_memory(&w, "tq"), WINDOW);
    w.set_memory_pressure(false);
    let mut expected = numbered(30);
    expected.extend(numbered(6));
    assert_eq!(get_all(&mut w, c, "tq"), expected, "in order");
    publish_mixed(&mut w, 10);
    assert_eq!(
        in_memory(&w, "tq"),
        10,
        "the pressure is over: memory again"
    );
    w.client(c).delete_queue(1, "tq");
    assert_eq!(w.storage.message_count(), 0, "the store forgot it");
}
