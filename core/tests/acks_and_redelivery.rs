//! Acknowledgements (ack, nack, reject; single and multiple), unknown delivery tags, and
//! redelivery when deliveries go back to their queue (nack/reject requeue, recover, a channel
//! or connection closing with unacked messages), as RabbitMQ 3.x does them.

mod support;

use support::*;
use warren_core::codec::{BasicGetEmpty, BasicGetOk, BasicRecoverOk, Method};

/// A world with queue "q" holding `msgs`, and a connection with channel 1 consuming it with
/// manual acks (tag "ct"); returns the connection and what it received.
fn consuming(msgs: &[&str]) -> (World, Cid, Vec<Received>) {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_queue(1, "q");
    w.client(c).publish_all(1, "q", msgs);
    let r = w.client(c).consume(1, "q", "ct");
    assert_eq!(bodies(&r), msgs);
    (w, c, r)
}

/// Drains "q" with basic.get no-ack on a fresh connection: (body, redelivered) in order.
fn drain(w: &mut World) -> Vec<(String, bool)> {
    let c = w.connect_channel();
    let mut out = Vec::new();
    loop {
        let r = w.client(c).get(1, "q", true);
        match r.as_slice() {
            [Received::Delivery(d)] => out.push((d.body_str().to_string(), d.redelivered())),
            [Received::Method {
                method: Method::BasicGetEmpty(_),
                ..
            }] => break,
            _ => panic!("{r:?}"),
        }
    }
    w.client(c).close_connection();
    out
}

fn owned(v: &[(&str, bool)]) -> Vec<(String, bool)> {
    v.iter().map(|(b, r)| (b.to_string(), *r)).collect()
}

#[test]
fn ack_settles_only_the_named_delivery() {
    let (mut w, c, _) = consuming(&["a", "b", "c"]);
    assert_eq!(w.client(c).ack(1, 2, false), vec![]);
    w.client(c).close_channel(1);
    assert_eq!(drain(&mut w), owned(&[("a", true), ("c", true)]));
}

#[test]
fn ack_multiple_settles_every_delivery_up_to_the_tag() {
    let (mut w, c, _) = consuming(&["a", "b", "c", "d"]);
    assert_eq!(w.client(c).ack(1, 3, true), vec![]);
    w.client(c).close_channel(1);
    assert_eq!(drain(&mut w), owned(&[("d", true)]));
}

#[test]
fn ack_multiple_with_tag_zero_settles_everything() {
    let (mut w, c, _) = consuming(&["a", "b", "c"]);
    assert_eq!(w.client(c).ack(1, 0, true), vec![]);
    w.client(c).close_channel(1);
    assert_eq!(drain(&mut w), vec![]);
}

#[test]
fn ack_multiple_with_tag_zero_and_nothing_unacked_is_fine() {
    let mut w = World::new();
    let c = w.connect_channel();
    assert_eq!(w.client(c).ack(1, 0, true), vec![]);
}

#[test]
fn nack_with_requeue_redelivers_marked_redelivered_with_a_new_tag() {
    let (mut w, c, _) = consuming(&["a"]);
    let r = w.client(c).nack(1, 1, false, true);
    let [Received::Delivery(d)] = r.as_slice() else {
        panic!("{r:?}");
    };
    assert_eq!(
        (d.body_str(), d.redelivered(), d.delivery_tag()),
        ("a", true, 2)
    );
}

#[test]
fn nack_multiple_with_requeue_redelivers_all_in_order() {
    let (mut w, c, _) = consuming(&["a", "b", "c"]);
    let r = w.client(c).nack(1, 2, true, true);
    let got: Vec<(&str, bool, u64)> = deliveries(&r)
        .iter()
        .map(|d| (d.body_str(), d.redelivered(), d.delivery_tag()))
        .collect();
    assert_eq!(got, [("a", true, 4), ("b", true, 5)]);
}

#[test]
fn nack_without_requeue_drops_the_message() {
    let (mut w, c, _) = consuming(&["a", "b"]);
    assert_eq!(w.client(c).nack(1, 2, true, false), vec![]);
    w.client(c).close_channel(1);
    assert_eq!(drain(&mut w), vec![]);
}

#[test]
fn reject_with_requeue_redelivers_and_without_drops() {
    let (mut w, c, _) = consuming(&["a", "b"]);
    assert_eq!(w.client(c).reject(1, 1, false), vec![]);
    let r = w.client(c).reject(1, 2, true);
    let got: Vec<(&str, bool)> = deliveries(&r)
        .iter()
        .map(|d| (d.body_str(), d.redelivered()))
        .collect();
    assert_eq!(got, [("b", true)]);
}

#[test]
fn acking_an_unknown_delivery_tag_closes_the_channel_with_406() {
    let (mut w, c, _) = consuming(&["a"]);
    assert_eq!(
        w.client(c).ack(1, 7, false),
        vec![channel_close(
            1,
            406,
            "PRECONDITION_FAILED - unknown delivery tag 7",
            60,
            80
        )]
    );
    // The connection lives on; the unacked message went back to the queue.
    assert_eq!(drain(&mut w), owned(&[("a", true)]));
}

#[test]
fn acking_twice_is_an_unknown_delivery_tag() {
    let (mut w, c, _) = consuming(&["a"]);
    assert_eq!(w.client(c).ack(1, 1, false), vec![]);
    assert_eq!(
        w.client(c).ack(1, 1, false),
        vec![channel_close(
            1,
            406,
            "PRECONDITION_FAILED - unknown delivery tag 1",
            60,
            80
        )]
    );
}

#[test]
fn acking_tag_zero_without_multiple_is_an_unknown_delivery_tag() {
    let mut w = World::new();
    let c = w.connect_channel();
    assert_eq!(
        w.client(c).ack(1, 0, false),
        vec![channel_close(
            1,
            406,
            "PRECONDITION_FAILED - unknown delivery tag 0",
            60,
            80
        )]
    );
}

#[test]
fn nack_multiple_and_reject_with_unknown_tags_name_their_method() {
    let mut w = World::new();
    let c = w.connect_channel();
    assert_eq!(
        w.client(c).nack(1, 7, true, true),
        vec![channel_close(
            1,
            406,
            "PRECONDITION_FAILED - unknown delivery tag 7",
            60,
            120
        )]
    );
    w.client(c).open_channel(2);
    assert_eq!(
        w.client(c).reject(2, 3, true),
        vec![channel_close(
            2,
            406,
            "PRECONDITION_FAILED - unknown delivery tag 3",
            60,
            90
        )]
    );
}

#[test]
fn delivery_tags_belong_to_their_channel() {
    let (mut w, c, _) = consuming(&["a"]);
    w.client(c).open_channel(2);
    assert_eq!(
        w.client(c).ack(2, 1, false),
        vec![channel_close(
            2,
            406,
            "PRECONDITION_FAILED - unknown delivery tag 1",
            60,
            80
        )]
    );
    assert_eq!(w.client(c).ack(1, 1, false), vec![]);
}

#[test]
fn closing_a_channel_requeues_unacked_messages_in_order_marked_redelivered() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_queue(1, "q");
    w.client(c).publish_all(1, "q", &["a", "b", "c", "d", "e"]);
    w.client(c).qos(1, 3, false);
    let r = w.client(c).consume(1, "q", "ct");
    assert_eq!(bodies(&r), ["a", "b", "c"]);
    // Acking b makes room for d.
    assert_eq!(bodies(&w.client(c).ack(1, 2, false)), ["d"]);
    w.client(c).close_channel(1);
    assert_eq!(
        drain(&mut w),
        owned(&[("a", true), ("c", true), ("d", true), ("e", false)])
    );
}

#[test]
fn a_dropped_connection_requeues_unacked_messages_to_another_consumer() {
    let (mut w, c, _) = consuming(&["a", "b", "c"]);
    let other = w.connect_channel();
    w.client(other).consume(1, "q", "other");
    w.client(c).disconnect();
    let r = w.client(other).take();
    let got: Vec<(&str, bool)> = deliveries(&r)
        .iter()
        .map(|d| (d.body_str(), d.redelivered()))
        .collect();
    assert_eq!(got, [("a", true), ("b", true), ("c", true)]);
}

#[test]
fn connection_close_requeues_unacked_messages_in_order() {
    let (mut w, c, _) = consuming(&["a", "b", "c"]);
    w.client(c).close_connection();
    assert_eq!(
        drain(&mut w),
        owned(&[("a", true), ("b", true), ("c", true)])
    );
}

/// RabbitMQ 3.10 puts requeued messages back at their original position in the queue
/// (classic queues merge them by sequence id), whatever order they come back in. Checked on
/// RabbitMQ 3.10.8: get 1 and 2 on channel 1, 3 and 4 on channel 2 (interleaved), close
/// channel 2 then channel 1 (or the whole connection): the queue reads 1,2,3,4,5.
#[test]

fn unacked_messages_from_two_channels_return_to_their_original_queue_positions() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).open_channel(2);
    w.client(c).declare_queue(1, "q");
    w.client(c).publish_all(1, "q", &["1", "2", "3", "4", "5"]);
    for ch in [1, 2, 1, 2] {
        let r = w.client(c).get(ch, "q", false);
        assert_eq!(deliveries(&r).len(), 1);
    }
    w.client(c).close_channel(2);
    w.client(c).close_channel(1);
    assert_eq!(
        drain(&mut w),
        owned(&[
            ("1", true),
            ("2", true),
            ("3", true),
            ("4", true),
            ("5", false)
        ])
    );
}

/// Same as above with the connection closing both channels at once.
#[test]

fn unacked_messages_from_two_channels_of_a_closed_connection_keep_queue_order() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).open_channel(2);
    w.client(c).declare_queue(1, "q");
    w.client(c).publish_all(1, "q", &["1", "2", "3", "4", "5"]);
    for ch in [1, 2, 1, 2] {
        w.client(c).get(ch, "q", false);
    }
    w.client(c).close_connection();
    assert_eq!(
        drain(&mut w),
        owned(&[
            ("1", true),
            ("2", true),
            ("3", true),
            ("4", true),
            ("5", false)
        ])
    );
}

/// RabbitMQ 3.10.8: get 1 and 2, reject 1 (requeue), then reject 2 (requeue): the queue reads
/// 1,2,3,4 — each requeued message goes back to where it was, not to the head.
#[test]

fn messages_rejected_one_by_one_return_to_their_original_positions() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_queue(1, "q");
    w.client(c).publish_all(1, "q", &["1", "2", "3", "4"]);
    w.client(c).get(1, "q", false);
    w.client(c).get(1, "q", false);
    w.client(c).reject(1, 1, true);
    w.client(c).reject(1, 2, true);
    assert_eq!(
        drain(&mut w),
        owned(&[("1", true), ("2", true), ("3", false), ("4", false)])
    );
}

#[test]
fn messages_rejected_in_reverse_order_also_keep_queue_order() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_queue(1, "q");
    w.client(c).publish_all(1, "q", &["1", "2", "3", "4"]);
    w.client(c).get(1, "q", false);
    w.client(c).get(1, "q", false);
    w.client(c).reject(1, 2, true);
    w.client(c).reject(1, 1, true);
    assert_eq!(
        drain(&mut w),
        owned(&[("1", true), ("2", true), ("3", false), ("4", false)])
    );
}

#[test]
fn recover_answers_recover_ok_then_redelivers_unacked_messages() {
    let (mut w, c, _) = consuming(&["a", "b"]);
    let r = w.client(c).recover(1);
    assert_eq!(r[0], method(1, BasicRecoverOk));
    let got: Vec<(&str, bool, u64)> = deliveries(&r)
        .iter()
        .map(|d| (d.body_str(), d.redelivered(), d.delivery_tag()))
        .collect();
    assert_eq!(got, [("a", true, 3), ("b", true, 4)]);
    // The old tags are gone.
    assert_eq!(
        w.client(c).ack(1, 1, false),
        vec![channel_close(
            1,
            406,
            "PRECONDITION_FAILED - unknown delivery tag 1",
            60,
            80
        )]
    );
}

#[test]
fn recover_without_requeue_is_not_implemented_540() {
    let (mut w, c, _) = consuming(&["a"]);
    assert_eq!(
        w.client(c)
            .send(1, warren_core::codec::BasicRecover { requeue: false }),
        vec![connection_close(
            540,
            "NOT_IMPLEMENTED - requeue=false",
            60,
            110
        )]
    );
}

#[test]
fn basic_get_returns_one_message_and_the_count_left() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_queue(1, "q");
    w.client(c).publish_all(1, "q", &["a", "b", "c"]);
    let r = w.client(c).get(1, "q", false);
    let [Received::Delivery(d)] = r.as_slice() else {
        panic!("{r:?}");
    };
    assert_eq!(
        d.method,
        Method::BasicGetOk(BasicGetOk {
            delivery_tag: 1,
            redelivered: false,
            exchange: s(""),
            routing_key: s("q"),
            message_count: 2,
        })
    );
    assert_eq!(d.body_str(), "a");
    assert_eq!(w.client(c).ack(1, 1, false), vec![]);
}

#[test]
fn basic_get_on_an_empty_queue_is_get_empty() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_queue(1, "q");
    assert_eq!(
        w.client(c).get(1, "q", false),
        vec![method(1, BasicGetEmpty::default())]
    );
}

#[test]
fn basic_get_from_a_missing_queue_is_404() {
    let mut w = World::new();
    let c = w.connect_channel();
    assert_eq!(
        w.client(c).get(1, "nope", false),
        vec![channel_close(
            1,
            404,
            "NOT_FOUND - no queue 'nope' in vhost '/'",
            60,
            70
        )]
    );
}

#[test]
fn an_unacked_basic_get_is_redelivered_after_its_channel_closes() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_queue(1, "q");
    w.client(c).publish_all(1, "q", &["a", "b"]);
    w.client(c).get(1, "q", false);
    w.client(c).close_channel(1);
    assert_eq!(drain(&mut w), owned(&[("a", true), ("b", false)]));
}
