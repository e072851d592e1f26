//! Publisher confirms (RabbitMQ's `confirm.select` extension) and transactions (AMQP 0-9-1
//! §1.9 tx): what is acked and when, what a commit applies and a rollback forgets.

mod support;

use support::*;
use warren_core::codec::{
    BasicProperties, BasicReturn, ConfirmSelectOk, Method, TxCommitOk, TxRollbackOk, TxSelectOk,
};

/// The publish sequence numbers the confirms in `r` cover, in the order they are covered.
/// A `multiple` ack covers everything after the previous confirm up to its tag.
fn confirmed(r: &[Received]) -> Vec<u64> {
    let mut covered = Vec::new();
    let mut last = 0;
    for m in r.iter().filter_map(Received::method) {
        match m {
            Method::BasicAck(a) => {
                assert!(
                    a.delivery_tag > last,
                    "confirm {a:?} goes backwards (last {last})"
                );
                if a.multiple {
                    covered.extend(last + 1..=a.delivery_tag);
                } else {
                    covered.push(a.delivery_tag);
                }
                last = a.delivery_tag;
            }
            Method::BasicNack(n) => panic!("unexpected nack {n:?}"),
            _ => {}
        }
    }
    covered
}

#[test]
fn confirm_select_is_answered_with_select_ok() {
    let mut w = World::new();
    let c = w.connect_channel();
    assert_eq!(
        w.client(c).confirm_select(1),
        vec![method(1, ConfirmSelectOk)]
    );
}

#[test]
fn every_publish_is_confirmed_exactly_once_in_order() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_queue(1, "q");
    w.client(c).confirm_select(1);
    let mut all = Vec::new();
    // A burst (acks may be coalesced with multiple=true) ...
    let burst: Vec<String> = (0..10).map(|i| format!("b{i}")).collect();
    let refs: Vec<&str> = burst.iter().map(String::as_str).collect();
    all.extend(w.client(c).publish_all(1, "q", &refs));
    // ... then one at a time, routed and unrouted.
    for i in 0..5 {
        let rk = if i % 2 == 0 { "q" } else { "nowhere" };
        all.extend(
            w.client(c)
                .publish(1, "", rk, &BasicProperties::default(), b"x"),
        );
    }
    assert_eq!(confirmed(&all), (1..=15).collect::<Vec<u64>>());
}

#[test]
fn confirms_are_counted_per_channel() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).open_channel(2);
    w.client(c).declare_queue(1, "q");
    w.client(c).confirm_select(1);
    w.client(c).confirm_select(2);
    let r1 = w.client(c).publish_all(1, "q", &["a", "b"]);
    let r2 = w.client(c).publish_all(2, "q", &["c"]);
    let r3 = w.client(c).publish_all(1, "q", &["d"]);
    assert_eq!(confirmed(&r1), [1, 2]);
    assert_eq!(confirmed(&r2), [1]);
    assert_eq!(confirmed(&r3), [3]);
    assert!(r2
        .iter()
        .all(|r| matches!(r, Received::Method { channel: 2, .. })));
}

#[test]
fn an_unroutable_mandatory_publish_is_returned_before_it_is_confirmed() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).confirm_select(1);
    let r = w
        .client(c)
        .publish_mandatory(1, "amq.direct", "nowhere", b"x");
    assert_eq!(r.len(), 2, "{r:?}");
    let d = r[0].delivery().expect("basic.return first");
    assert_eq!(
        d.method,
        Method::BasicReturn(BasicReturn {
            reply_code: 312,
            reply_text: s("NO_ROUTE"),
            exchange: s("amq.direct"),
            routing_key: s("nowhere"),
        })
    );
    assert_eq!(confirmed(&r[1..]), [1]);
}

#[test]
fn confirms_cover_publishes_routed_to_many_queues_once() {
    let mut w = World::new();
    let c = w.connect_channel();
    for q in ["q1", "q2", "q3"] {
        w.client(c).declare_queue(1, q);
        w.client(c).bind_queue(1, q, "amq.fanout", "");
    }
    w.client(c).confirm_select(1);
    let mut r = Vec::new();
    for _ in 0..4 {
        r.extend(
            w.client(c)
                .publish(1, "amq.fanout", "", &BasicProperties::default(), b"x"),
        );
    }
    assert_eq!(confirmed(&r), [1, 2, 3, 4]);
}

#[test]
fn tx_select_is_answered_with_select_ok() {
    let mut w = World::new();
    let c = w.connect_channel();
    assert_eq!(w.client(c).tx_select(1), vec![method(1, TxSelectOk)]);
}

#[test]
fn committed_publishes_arrive_and_only_after_the_commit() {
    let mut w = World::new();
    let c = w.connect_channel();
    let consumer = w.connect_channel();
    w.client(c).declare_queue(1, "q");
    w.client(consumer).consume_no_ack(1, "q", "ct");
    w.client(c).tx_select(1);
    w.client(c).publish_all(1, "q", &["a", "b"]);
    assert_eq!(w.client(consumer).take(), vec![]);
    assert_eq!(w.client(c).tx_commit(1), vec![method(1, TxCommitOk)]);
    assert_eq!(bodies(&w.client(consumer).take()), ["a", "b"]);
}

#[test]
fn a_rolled_back_publish_never_arrives() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_queue(1, "q");
    w.client(c).tx_select(1);
    w.client(c).publish_all(1, "q", &["rolled back"]);
    assert_eq!(w.client(c).tx_rollback(1), vec![method(1, TxRollbackOk)]);
    w.client(c).publish_all(1, "q", &["kept"]);
    w.client(c).tx_commit(1);
    let consumer = w.connect_channel();
    assert_eq!(bodies(&w.client(consumer).consume(1, "q", "ct")), ["kept"]);
}

#[test]
fn a_committed_ack_settles_the_message() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_queue(1, "q");
    w.client(c).publish_all(1, "q", &["a"]);
    w.client(c).tx_select(1);
    w.client(c).get(1, "q", false);
    w.client(c).ack(1, 1, false);
    w.client(c).tx_commit(1);
    w.client(c).close_channel(1);
    w.client(c).open_channel(1);
    assert_eq!(w.client(c).declare_queue(1, "q").message_count, 0);
}

#[test]
fn a_rolled_back_ack_leaves_the_message_unacked_and_closing_the_channel_redelivers_it() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_queue(1, "q");
    w.client(c).publish_all(1, "q", &["m1"]);
    w.client(c).tx_select(1);
    assert_eq!(bodies(&w.client(c).get(1, "q", false)), ["m1"]);
    assert_eq!(w.client(c).ack(1, 1, false), vec![]);
    assert_eq!(w.client(c).tx_rollback(1), vec![method(1, TxRollbackOk)]);
    // Still unacked: the tag is known, so acking it again is fine (RabbitMQ 3.10.8).
    assert_eq!(w.client(c).ack(1, 1, false), vec![]);
    w.client(c).tx_rollback(1);
    w.client(c).close_channel(1);
    w.client(c).open_channel(2);
    let r = w.client(c).get(2, "q", true);
    let d = deliveries(&r);
    assert_eq!((d[0].body_str(), d[0].redelivered()), ("m1", true));
}

#[test]
fn an_uncommitted_ack_is_undone_when_the_channel_closes() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_queue(1, "q");
    w.client(c).publish_all(1, "q", &["a", "b"]);
    w.client(c).tx_select(1);
    w.client(c).consume(1, "q", "ct");
    w.client(c).ack(1, 2, true);
    w.client(c).close_channel(1);
    w.client(c).open_channel(1);
    let r = w.client(c).consume_no_ack(1, "q", "again");
    let got: Vec<(&str, bool)> = deliveries(&r)
        .iter()
        .map(|d| (d.body_str(), d.redelivered()))
        .collect();
    assert_eq!(got, [("a", true), ("b", true)]);
}

#[test]
fn a_committed_nack_with_requeue_redelivers() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_queue(1, "q");
    w.client(c).publish_all(1, "q", &["a"]);
    w.client(c).tx_select(1);
    w.client(c).consume(1, "q", "ct");
    assert_eq!(w.client(c).nack(1, 1, false, true), vec![]);
    let r = w.client(c).tx_commit(1);
    assert_eq!(r[0], method(1, TxCommitOk));
    let d = deliveries(&r);
    assert_eq!(
        (d[0].body_str(), d[0].redelivered(), d[0].delivery_tag()),
        ("a", true, 2)
    );
}

/// RabbitMQ 3.10.8 frees prefetch room for a transactional ack only at commit: with qos 1,
/// tx.select, ack of the one delivery, then another publish, nothing is delivered until
/// tx.commit (which is answered by commit-ok, then the next delivery).
#[test]
fn an_uncommitted_ack_does_not_free_prefetch_room() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).open_channel(2);
    w.client(c).declare_queue(1, "q");
    w.client(c).publish_all(2, "q", &["m0", "m1", "m2"]);
    w.client(c).qos(1, 1, false);
    w.client(c).tx_select(1);
    assert_eq!(bodies(&w.client(c).consume(1, "q", "a")), ["m0"]);
    assert_eq!(w.client(c).ack(1, 1, false), vec![]);
    assert_eq!(w.client(c).publish_all(2, "q", &["late"]), vec![]);
    let r = w.client(c).tx_commit(1);
    assert_eq!(r[0], method(1, TxCommitOk));
    assert_eq!(bodies(&r), ["m1"]);
}

#[test]
fn commit_or_rollback_without_tx_select_is_406() {
    let mut w = World::new();
    let c = w.connect_channel();
    assert_eq!(
        w.client(c).tx_commit(1),
        vec![channel_close(
            1,
            406,
            "PRECONDITION_FAILED - channel is not transactional",
            90,
            20
        )]
    );
    w.client(c).open_channel(2);
    assert_eq!(
        w.client(c).tx_rollback(2),
        vec![channel_close(
            2,
            406,
            "PRECONDITION_FAILED - channel is not transactional",
            90,
            30
        )]
    );
}

#[test]
fn a_channel_cannot_switch_between_tx_and_confirm_mode() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).tx_select(1);
    assert_eq!(
        w.client(c).confirm_select(1),
        vec![channel_close(
            1,
            406,
            "PRECONDITION_FAILED - cannot switch from tx to confirm mode",
            85,
            10
        )]
    );
    w.client(c).open_channel(2);
    w.client(c).confirm_select(2);
    assert_eq!(
        w.client(c).tx_select(2),
        vec![channel_close(
            2,
            406,
            "PRECONDITION_FAILED - cannot switch from confirm to tx mode",
            90,
            10
        )]
    );
}
