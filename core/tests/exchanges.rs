//! Exchanges and routing (AMQP 0-9-1 §3.1.3, §1.6 exchange, RabbitMQ's exchange-to-exchange
//! bindings): default, direct, fanout, topic and headers exchanges, e2e bindings and cycles,
//! mandatory returns, and declare/delete errors.

mod support;

use support::*;
use warren_core::codec::{
    BasicProperties, ExchangeDeclare, ExchangeDelete, ExchangeDeleteOk, FieldTable, FieldValue,
    Method, QueueBind, QueueUnbind, QueueUnbindOk,
};

/// Declares each queue on channel 1.
fn queues(w: &mut World, c: Cid, names: &[&str]) {
    for q in names {
        w.client(c).declare_queue(1, q);
    }
}

/// How many messages each queue holds, in the given order.
fn counts(w: &mut World, c: Cid, names: &[&str]) -> Vec<u32> {
    names
        .iter()
        .map(|q| w.client(c).declare_queue(1, q).message_count)
        .collect()
}

/// Publishes `body` to `exchange` with routing key `rk`; asserts no reply.
fn publish(w: &mut World, c: Cid, exchange: &str, rk: &str, body: &str) {
    let r = w.client(c).publish(
        1,
        exchange,
        rk,
        &BasicProperties::default(),
        body.as_bytes(),
    );
    assert_eq!(r, vec![], "publish to {exchange:?} {rk:?}");
}

fn with_headers(h: FieldTable) -> BasicProperties {
    BasicProperties {
        headers: Some(h),
        ..Default::default()
    }
}

#[test]
fn the_default_exchange_routes_by_queue_name() {
    let mut w = World::new();
    let c = w.connect_channel();
    queues(&mut w, c, &["a", "b"]);
    publish(&mut w, c, "", "a", "x");
    publish(&mut w, c, "", "b", "y");
    publish(&mut w, c, "", "b", "z");
    assert_eq!(counts(&mut w, c, &["a", "b"]), [1, 2]);
}

#[test]
fn binding_to_the_default_exchange_is_403() {
    let mut w = World::new();
    let c = w.connect_channel();
    queues(&mut w, c, &["a"]);
    let r = w.client(c).send(
        1,
        QueueBind {
            queue: s("a"),
            exchange: s(""),
            routing_key: s("a"),
            ..Default::default()
        },
    );
    assert_eq!(
        r,
        vec![channel_close(
            1,
            403,
            "ACCESS_REFUSED - operation not permitted on the default exchange",
            50,
            20
        )]
    );
}

#[test]
fn a_direct_exchange_routes_by_exact_routing_key() {
    let mut w = World::new();
    let c = w.connect_channel();
    queues(&mut w, c, &["info", "errors", "all"]);
    w.client(c).declare_exchange(1, "logs", "direct");
    w.client(c).bind_queue(1, "info", "logs", "info");
    w.client(c).bind_queue(1, "errors", "logs", "error");
    w.client(c).bind_queue(1, "all", "logs", "info");
    w.client(c).bind_queue(1, "all", "logs", "error");
    publish(&mut w, c, "logs", "info", "1");
    publish(&mut w, c, "logs", "error", "2");
    publish(&mut w, c, "logs", "debug", "3");
    publish(&mut w, c, "logs", "INFO", "4");
    assert_eq!(counts(&mut w, c, &["info", "errors", "all"]), [1, 1, 2]);
}

#[test]
fn a_queue_bound_twice_gets_one_copy() {
    let mut w = World::new();
    let c = w.connect_channel();
    queues(&mut w, c, &["q"]);
    w.client(c).declare_exchange(1, "t", "topic");
    w.client(c).bind_queue(1, "q", "t", "a.*");
    w.client(c).bind_queue(1, "q", "t", "*.b");
    w.client(c).bind_queue(1, "q", "t", "#");
    publish(&mut w, c, "t", "a.b", "x");
    assert_eq!(counts(&mut w, c, &["q"]), [1]);
}

#[test]
fn a_fanout_exchange_ignores_the_routing_key() {
    let mut w = World::new();
    let c = w.connect_channel();
    queues(&mut w, c, &["a", "b", "c"]);
    w.client(c).declare_exchange(1, "f", "fanout");
    w.client(c).bind_queue(1, "a", "f", "");
    w.client(c).bind_queue(1, "b", "f", "whatever");
    publish(&mut w, c, "f", "anything", "x");
    assert_eq!(counts(&mut w, c, &["a", "b", "c"]), [1, 1, 0]);
}

#[test]
fn a_topic_exchange_matches_star_as_one_word_and_hash_as_zero_or_more() {
    let mut w = World::new();
    let c = w.connect_channel();
    let names = ["star", "hash", "hash_tail", "exact", "hash_middle"];
    queues(&mut w, c, &names);
    w.client(c).declare_exchange(1, "t", "topic");
    w.client(c).bind_queue(1, "star", "t", "stock.*.nyse");
    w.client(c).bind_queue(1, "hash", "t", "#");
    w.client(c).bind_queue(1, "hash_tail", "t", "stock.#");
    w.client(c).bind_queue(1, "exact", "t", "stock.usd.nyse");
    w.client(c).bind_queue(1, "hash_middle", "t", "a.#.z");
    for rk in [
        "stock.usd.nyse", // star, hash, hash_tail, exact
        "stock.eur.nyse", // star, hash, hash_tail
        "stock.nyse",     // hash, hash_tail
        "stock",          // hash, hash_tail (# matches zero words)
        "stock.a.b.nyse", // hash, hash_tail
        "a.z",            // hash, hash_middle
        "a.b.c.z",        // hash, hash_middle
        "",               // hash
    ] {
        publish(&mut w, c, "t", rk, rk);
    }
    assert_eq!(counts(&mut w, c, &names), [2, 8, 5, 1, 2]);
}

#[test]
fn a_headers_exchange_matches_all_by_default_and_any_on_request() {
    let mut w = World::new();
    let c = w.connect_channel();
    queues(&mut w, c, &["all", "any", "empty"]);
    w.client(c).declare_exchange(1, "h", "headers");
    w.client(c).bind_queue_with(
        1,
        "all",
        "h",
        "",
        table(&[("format", "pdf"), ("type", "report")]),
    );
    w.client(c).bind_queue_with(
        1,
        "any",
        "h",
        "",
        table(&[("x-match", "any"), ("format", "pdf"), ("type", "report")]),
    );
    w.client(c)
        .bind_queue_with(1, "empty", "h", "", FieldTable::default());
    let both = table(&[("format", "pdf"), ("type", "report")]);
    let one = table(&[("format", "pdf"), ("type", "log")]);
    let none = table(&[("format", "zip")]);
    for h in [both, one, none] {
        let r = w
            .client(c)
            .publish(1, "h", "ignored", &with_headers(h), b"x");
        assert_eq!(r, vec![]);
    }
    publish(&mut w, c, "h", "ignored", "no headers");
    assert_eq!(counts(&mut w, c, &["all", "any", "empty"]), [1, 2, 4]);
}

#[test]
fn headers_compare_integers_by_value_whatever_their_width() {
    let mut w = World::new();
    let c = w.connect_channel();
    queues(&mut w, c, &["q"]);
    let mut args = FieldTable::default();
    args.insert("n", FieldValue::I64(5));
    w.client(c).bind_queue_with(1, "q", "amq.headers", "", args);
    let mut h = FieldTable::default();
    h.insert("n", FieldValue::I32(5));
    w.client(c)
        .publish(1, "amq.headers", "", &with_headers(h), b"x");
    assert_eq!(counts(&mut w, c, &["q"]), [1]);
}

#[test]
fn exchange_to_exchange_bindings_route_through() {
    let mut w = World::new();
    let c = w.connect_channel();
    queues(&mut w, c, &["q1", "q2"]);
    w.client(c).declare_exchange(1, "entry", "topic");
    w.client(c).declare_exchange(1, "inner", "direct");
    w.client(c).bind_exchange(1, "inner", "entry", "orders.*");
    w.client(c).bind_queue(1, "q1", "inner", "orders.new");
    w.client(c).bind_queue(1, "q2", "entry", "#");
    publish(&mut w, c, "entry", "orders.new", "1");
    publish(&mut w, c, "entry", "orders.old", "2");
    publish(&mut w, c, "entry", "other", "3");
    assert_eq!(counts(&mut w, c, &["q1", "q2"]), [1, 3]);
    // The delivery names the exchange it was published to.
    let r = w.client(c).get(1, "q1", true);
    assert_eq!(deliveries(&r)[0].exchange(), "entry");
}

#[test]
fn a_cycle_of_exchange_bindings_delivers_once_and_does_not_loop() {
    let mut w = World::new();
    let c = w.connect_channel();
    queues(&mut w, c, &["q"]);
    w.client(c).declare_exchange(1, "e1", "fanout");
    w.client(c).declare_exchange(1, "e2", "fanout");
    w.client(c).bind_exchange(1, "e2", "e1", "");
    w.client(c).bind_exchange(1, "e1", "e2", "");
    w.client(c).bind_queue(1, "q", "e2", "");
    publish(&mut w, c, "e1", "", "from e1");
    publish(&mut w, c, "e2", "", "from e2");
    assert_eq!(counts(&mut w, c, &["q"]), [2]);
}

#[test]
fn a_queue_reached_by_two_exchange_paths_gets_one_copy() {
    let mut w = World::new();
    let c = w.connect_channel();
    queues(&mut w, c, &["q"]);
    for e in ["top", "left", "right"] {
        w.client(c).declare_exchange(1, e, "fanout");
    }
    w.client(c).bind_exchange(1, "left", "top", "");
    w.client(c).bind_exchange(1, "right", "top", "");
    w.client(c).bind_queue(1, "q", "left", "");
    w.client(c).bind_queue(1, "q", "right", "");
    publish(&mut w, c, "top", "", "x");
    assert_eq!(counts(&mut w, c, &["q"]), [1]);
}

#[test]
fn unbinding_stops_routing_and_unbinding_twice_succeeds() {
    let mut w = World::new();
    let c = w.connect_channel();
    queues(&mut w, c, &["q"]);
    w.client(c).bind_queue(1, "q", "amq.direct", "k");
    let unbind = QueueUnbind {
        queue: s("q"),
        exchange: s("amq.direct"),
        routing_key: s("k"),
        ..Default::default()
    };
    assert_eq!(
        w.client(c).send(1, unbind.clone()),
        vec![method(1, QueueUnbindOk)]
    );
    assert_eq!(w.client(c).send(1, unbind), vec![method(1, QueueUnbindOk)]);
    publish(&mut w, c, "amq.direct", "k", "x");
    assert_eq!(counts(&mut w, c, &["q"]), [0]);
}

#[test]
fn an_unroutable_mandatory_publish_is_returned_with_312_no_route() {
    let mut w = World::new();
    let c = w.connect_channel();
    let r = w.client(c).publish_mandatory(1, "", "nowhere", b"lost");
    let [Received::Delivery(d)] = r.as_slice() else {
        panic!("{r:?}");
    };
    let Method::BasicReturn(ret) = &d.method else {
        panic!("{d:?}");
    };
    assert_eq!((ret.reply_code, ret.reply_text.as_str()), (312, "NO_ROUTE"));
    assert_eq!(
        (d.exchange(), d.routing_key(), d.body_str()),
        ("", "nowhere", "lost")
    );
}

#[test]
fn a_routable_mandatory_publish_is_not_returned() {
    let mut w = World::new();
    let c = w.connect_channel();
    queues(&mut w, c, &["q"]);
    assert_eq!(w.client(c).publish_mandatory(1, "", "q", b"x"), vec![]);
    // Without mandatory an unroutable message just disappears.
    assert_eq!(w.client(c).publish_all(1, "nowhere", &["x"]), vec![]);
}

#[test]
fn publishing_to_a_missing_exchange_closes_the_channel_with_404() {
    let mut w = World::new();
    let c = w.connect_channel();
    assert_eq!(
        w.client(c)
            .publish(1, "nope", "k", &BasicProperties::default(), b"x"),
        vec![channel_close(
            1,
            404,
            "NOT_FOUND - no exchange 'nope' in vhost '/'",
            60,
            40
        )]
    );
}

#[test]
fn publishing_to_an_internal_exchange_is_403() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_exchange_with(
        1,
        ExchangeDeclare {
            exchange: s("int"),
            kind: s("fanout"),
            internal: true,
            ..Default::default()
        },
    );
    assert_eq!(
        w.client(c)
            .publish(1, "int", "", &BasicProperties::default(), b"x"),
        vec![channel_close(
            1,
            403,
            "ACCESS_REFUSED - cannot publish to internal exchange 'int' in vhost '/'",
            60,
            40
        )]
    );
}

#[test]
fn redeclaring_an_exchange_with_a_different_durable_flag_is_406() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_exchange(1, "x", "direct");
    let r = w.client(c).send(
        1,
        ExchangeDeclare {
            exchange: s("x"),
            kind: s("direct"),
            durable: true,
            ..Default::default()
        },
    );
    assert_eq!(
        r,
        vec![channel_close(
            1,
            406,
            "PRECONDITION_FAILED - inequivalent arg 'durable' for exchange 'x' in vhost '/': \
             received 'true' but current is 'false'",
            40,
            10
        )]
    );
}

#[test]
fn redeclaring_an_exchange_with_a_different_type_is_406() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_exchange(1, "x", "direct");
    let r = w.client(c).send(
        1,
        ExchangeDeclare {
            exchange: s("x"),
            kind: s("fanout"),
            ..Default::default()
        },
    );
    assert_eq!(
        r,
        vec![channel_close(
            1,
            406,
            "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'x' in vhost '/': \
             received 'fanout' but current is 'direct'",
            40,
            10
        )]
    );
}

#[test]
fn an_unknown_exchange_type_is_a_503_connection_error() {
    let mut w = World::new();
    let c = w.connect_channel();
    let r = w.client(c).send(
        1,
        ExchangeDeclare {
            exchange: s("x"),
            kind: s("nonsense"),
            ..Default::default()
        },
    );
    assert_eq!(
        r,
        vec![connection_close(
            503,
            "COMMAND_INVALID - unknown exchange type 'nonsense'",
            40,
            10
        )]
    );
}

#[test]
fn amq_prefixed_exchanges_are_reserved() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).open_channel(2);
    assert_eq!(
        w.client(c).send(
            1,
            ExchangeDeclare {
                exchange: s("amq.foo"),
                kind: s("direct"),
                ..Default::default()
            }
        ),
        vec![channel_close(
            1,
            403,
            "ACCESS_REFUSED - exchange name 'amq.foo' contains reserved prefix 'amq.*'",
            40,
            10
        )]
    );
    assert_eq!(
        w.client(c).send(
            2,
            ExchangeDelete {
                exchange: s("amq.direct"),
                ..Default::default()
            }
        ),
        vec![channel_close(
            2,
            403,
            "ACCESS_REFUSED - deletion of system exchange 'amq.direct' in vhost '/' not allowed",
            40,
            20
        )]
    );
}

#[test]
fn passive_declare_of_a_missing_exchange_is_404() {
    let mut w = World::new();
    let c = w.connect_channel();
    let r = w.client(c).send(
        1,
        ExchangeDeclare {
            exchange: s("nope"),
            passive: true,
            ..Default::default()
        },
    );
    assert_eq!(
        r,
        vec![channel_close(
            1,
            404,
            "NOT_FOUND - no exchange 'nope' in vhost '/'",
            40,
            10
        )]
    );
}

#[test]
fn binding_with_a_missing_end_is_404() {
    let mut w = World::new();
    let c = w.connect_channel();
    queues(&mut w, c, &["q"]);
    let bind = |q: &str, e: &str| QueueBind {
        queue: q.into(),
        exchange: e.into(),
        ..Default::default()
    };
    assert_eq!(
        w.client(c).send(1, bind("q", "nope")),
        vec![channel_close(
            1,
            404,
            "NOT_FOUND - no exchange 'nope' in vhost '/'",
            50,
            20
        )]
    );
    w.client(c).open_channel(2);
    assert_eq!(
        w.client(c).send(2, bind("nope", "amq.direct")),
        vec![channel_close(
            2,
            404,
            "NOT_FOUND - no queue 'nope' in vhost '/'",
            50,
            20
        )]
    );
}

#[test]
fn deleting_an_exchange_removes_its_bindings() {
    let mut w = World::new();
    let c = w.connect_channel();
    queues(&mut w, c, &["q"]);
    w.client(c).declare_exchange(1, "x", "fanout");
    w.client(c).bind_queue(1, "q", "x", "");
    assert_eq!(
        w.client(c).send(
            1,
            ExchangeDelete {
                exchange: s("x"),
                ..Default::default()
            }
        ),
        vec![method(1, ExchangeDeleteOk)]
    );
    w.client(c).declare_exchange(1, "x", "fanout");
    publish(&mut w, c, "x", "", "x");
    assert_eq!(counts(&mut w, c, &["q"]), [0]);
}

#[test]
fn deleting_a_bound_exchange_with_if_unused_is_406() {
    let mut w = World::new();
    let c = w.connect_channel();
    queues(&mut w, c, &["q"]);
    w.client(c).declare_exchange(1, "x", "fanout");
    w.client(c).bind_queue(1, "q", "x", "");
    assert_eq!(
        w.client(c).send(
            1,
            ExchangeDelete {
                exchange: s("x"),
                if_unused: true,
                ..Default::default()
            }
        ),
        vec![channel_close(
            1,
            406,
            "PRECONDITION_FAILED - exchange 'x' in vhost '/' in use",
            40,
            20
        )]
    );
}

#[test]
fn deleting_a_queue_removes_its_bindings() {
    let mut w = World::new();
    let c = w.connect_channel();
    queues(&mut w, c, &["q"]);
    w.client(c).bind_queue(1, "q", "amq.fanout", "");
    w.client(c).delete_queue(1, "q");
    queues(&mut w, c, &["q"]);
    publish(&mut w, c, "amq.fanout", "", "x");
    assert_eq!(counts(&mut w, c, &["q"]), [0]);
}
