//! Publishing and consuming (AMQP 0-9-1 §1.8 basic): deliveries, round-robin, properties,
//! consumer tags, cancel, and content split across frames.

mod support;

use support::*;
use warren_core::codec::{
    BasicCancelOk, BasicConsume, BasicConsumeOk, BasicDeliver, BasicProperties, ChannelFlow,
    ChannelFlowOk, ConnectionTuneOk, FieldValue, Method, QueueDeclare, FRAME_BODY, FRAME_HEADER,
};

#[test]
fn publish_then_consume_delivers_everything_in_order() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_queue(1, "q");
    assert_eq!(
        w.client(c).publish_all(1, "q", &["one", "two", "three"]),
        vec![]
    );
    let r = w.client(c).consume(1, "q", "ct");
    assert_eq!(
        r[0],
        method(
            1,
            BasicConsumeOk {
                consumer_tag: s("ct")
            }
        )
    );
    assert_eq!(bodies(&r), ["one", "two", "three"]);
    let tags: Vec<u64> = deliveries(&r).iter().map(|d| d.delivery_tag()).collect();
    assert_eq!(tags, [1, 2, 3]);
}

#[test]
fn a_delivery_names_consumer_tag_exchange_and_routing_key() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_queue(1, "q");
    w.client(c).consume(1, "q", "ct");
    let r = w
        .client(c)
        .publish(1, "", "q", &BasicProperties::default(), b"hi");
    let [Received::Delivery(d)] = r.as_slice() else {
        panic!("{r:?}");
    };
    assert_eq!(
        d.method,
        Method::BasicDeliver(BasicDeliver {
            consumer_tag: s("ct"),
            delivery_tag: 1,
            redelivered: false,
            exchange: s(""),
            routing_key: s("q"),
        })
    );
    assert_eq!(d.channel, 1);
    assert_eq!(d.body_str(), "hi");
}

#[test]
fn properties_arrive_exactly_as_published() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_queue(1, "q");
    w.client(c).consume(1, "q", "ct");
    let mut headers = table(&[("k", "v")]);
    headers.insert("n", FieldValue::I32(-7));
    let props = BasicProperties {
        content_type: Some(s("text/plain")),
        content_encoding: Some(s("utf-8")),
        headers: Some(headers),
        delivery_mode: Some(1),
        priority: Some(3),
        correlation_id: Some(s("corr")),
        reply_to: Some(s("replies")),
        expiration: Some(s("60000")),
        message_id: Some(s("m-1")),
        timestamp: Some(1_700_000_000),
        kind: Some(s("greeting")),
        user_id: Some(s("guest")),
        app_id: Some(s("tests")),
        cluster_id: None,
    };
    let r = w.client(c).publish(1, "", "q", &props, b"x");
    assert_eq!(deliveries(&r)[0].properties, props);
}

#[test]
fn an_empty_body_is_delivered_without_a_body_frame() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_queue(1, "q");
    w.client(c).consume(1, "q", "ct");
    let before = w.client_state(c).frames.len();
    let r = w
        .client(c)
        .publish(1, "", "q", &BasicProperties::default(), b"");
    assert_eq!(bodies(&r), [""]);
    let frames = &w.client_state(c).frames[before..];
    assert_eq!(frames.len(), 2, "method and header only: {frames:?}");
    assert_eq!(frames[1].kind, FRAME_HEADER);
}

#[test]
fn two_consumers_on_different_connections_get_messages_round_robin() {
    let mut w = World::new();
    let a = w.connect_channel();
    let b = w.connect_channel();
    let p = w.connect_channel();
    w.client(a).declare_queue(1, "q");
    w.client(a).consume(1, "q", "a");
    w.client(b).consume(1, "q", "b");
    w.client(p)
        .publish_all(1, "q", &["1", "2", "3", "4", "5", "6"]);
    assert_eq!(bodies(&w.client(a).take()), ["1", "3", "5"]);
    assert_eq!(bodies(&w.client(b).take()), ["2", "4", "6"]);
}

#[test]
fn two_consumers_on_one_channel_get_messages_round_robin() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_queue(1, "q");
    w.client(c).consume(1, "q", "a");
    w.client(c).consume(1, "q", "b");
    let r = w.client(c).publish_all(1, "q", &["1", "2", "3", "4"]);
    let got: Vec<(&str, &str)> = deliveries(&r)
        .iter()
        .map(|d| (d.consumer_tag(), d.body_str()))
        .collect();
    assert_eq!(got, [("a", "1"), ("b", "2"), ("a", "3"), ("b", "4")]);
    // Delivery tags are per channel, whichever consumer.
    let tags: Vec<u64> = deliveries(&r).iter().map(|d| d.delivery_tag()).collect();
    assert_eq!(tags, [1, 2, 3, 4]);
}

#[test]
fn no_ack_consumer_takes_messages_off_the_queue_for_good() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_queue(1, "q");
    w.client(c).publish_all(1, "q", &["a", "b"]);
    let r = w.client(c).consume_no_ack(1, "q", "ct");
    assert_eq!(bodies(&r), ["a", "b"]);
    w.client(c).close_channel(1);
    w.client(c).open_channel(1);
    let ok = w.client(c).declare_queue(1, "q");
    assert_eq!((ok.message_count, ok.consumer_count), (0, 0));
}

#[test]
fn an_empty_consumer_tag_gets_a_server_generated_one() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_queue(1, "q");
    let r = w.client(c).consume(1, "q", "");
    let Some(Method::BasicConsumeOk(ok)) = r[0].method() else {
        panic!("{r:?}");
    };
    assert!(
        ok.consumer_tag.starts_with("amq.ctag-"),
        "{:?}",
        ok.consumer_tag
    );
    let r = w.client(c).publish_all(1, "q", &["x"]);
    assert_eq!(deliveries(&r)[0].consumer_tag(), ok.consumer_tag.as_str());
}

#[test]
fn an_empty_queue_name_means_the_last_queue_declared_on_the_channel() {
    let mut w = World::new();
    let c = w.connect_channel();
    let ok = w.client(c).declare_queue(1, "");
    assert!(ok.queue.starts_with("amq.gen-"), "{:?}", ok.queue);
    w.client(c).publish_all(1, &ok.queue, &["x"]);
    let r = w.client(c).consume(1, "", "ct");
    assert_eq!(bodies(&r), ["x"]);
}

#[test]
fn cancel_stops_deliveries_and_leaves_messages_in_the_queue() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_queue(1, "q");
    w.client(c).consume_no_ack(1, "q", "ct");
    assert_eq!(
        w.client(c).cancel(1, "ct"),
        vec![method(
            1,
            BasicCancelOk {
                consumer_tag: s("ct")
            }
        )]
    );
    assert_eq!(w.client(c).publish_all(1, "q", &["x"]), vec![]);
    assert_eq!(w.client(c).declare_queue(1, "q").message_count, 1);
}

#[test]
fn consume_no_wait_sends_no_consume_ok() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_queue(1, "q");
    let r = w.client(c).send(
        1,
        BasicConsume {
            queue: s("q"),
            consumer_tag: s("ct"),
            no_ack: true,
            no_wait: true,
            ..Default::default()
        },
    );
    assert_eq!(r, vec![]);
    assert_eq!(bodies(&w.client(c).publish_all(1, "q", &["x"])), ["x"]);
}

#[test]
fn consuming_from_a_missing_queue_is_404() {
    let mut w = World::new();
    let c = w.connect_channel();
    assert_eq!(
        w.client(c).consume(1, "nope", "ct"),
        vec![channel_close(
            1,
            404,
            "NOT_FOUND - no queue 'nope' in vhost '/'",
            60,
            20
        )]
    );
}

#[test]
fn an_exclusive_consumer_keeps_others_out_with_403() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_queue(1, "q");
    w.client(c).send(
        1,
        BasicConsume {
            queue: s("q"),
            consumer_tag: s("x"),
            exclusive: true,
            ..Default::default()
        },
    );
    w.client(c).open_channel(2);
    assert_eq!(
        w.client(c).consume(2, "q", "y"),
        vec![channel_close(
            2,
            403,
            "ACCESS_REFUSED - queue 'q' in vhost '/' in exclusive use",
            60,
            20
        )]
    );
}

#[test]
fn reusing_a_consumer_tag_on_a_channel_is_a_530_connection_error() {
    let mut w = World::new();
    let c = w.connect_channel();
    w.client(c).declare_queue(1, "q");
    w.client(c).consume(1, "q", "x");
    assert_eq!(
        w.client(c).consume(1, "q", "x"),
        vec![connection_close(
            530,
            "NOT_ALLOWED - attempt to reuse consumer tag 'x'",
            60,
            20
        )]
    );
    assert!(w.client(c).is_socket_closed());
}

#[test]
fn a_message_larger_than_frame_max_is_split_both_ways() {
    let mut w = World::new();
    let c = w.connect();
    w.client(c).handshake_with(&Handshake {
        tune_ok: Some(ConnectionTuneOk {
            channel_max: 2047,
            frame_max: 4096,
            heartbeat: 0,
        }),
        ..Default::default()
    });
    w.client(c).open_channel(1);
    w.client(c).declare_queue(1, "q");
    let body: Vec<u8> = (0..50_000u32).map(|i| (i % 251) as u8).collect();
    // The client cuts its publish into 4088-byte body frames; the server assembles them.
    w.client(c)
        .publish(1, "", "q", &BasicProperties::default(), &body);
    assert_eq!(w.client(c).declare_queue(1, "q").message_count, 1);
    let before = w.client_state(c).frames.len();
    let r = w.client(c).consume(1, "q", "ct");
    assert_eq!(deliveries(&r)[0].body.as_ref(), body.as_slice());
    let frames = &w.client_state(c).frames[before..];
    let body_frames: Vec<usize> = frames
        .iter()
        .filter(|f| f.kind == FRAME_BODY)
        .map(|f| f.size)
        .collect();
    assert_eq!(body_frames.len(), 50_000usize.div_ceil(4088));
    assert!(frames.iter().all(|f| f.size <= 4096), "{frames:?}");
    assert!(body_frames[..body_frames.len() - 1]
        .iter()
        .all(|&n| n == 4096));
}

#[test]
fn messages_to_a_queue_without_consumers_wait_for_one() {
    let mut w = World::new();
    let p = w.connect_channel();
    w.client(p).declare_queue(1, "q");
    w.client(p).publish_all(1, "q", &["a", "b", "c"]);
    let ok = w.client(p).declare_queue_with(
        1,
        QueueDeclare {
            queue: s("q"),
            passive: true,
            ..Default::default()
        },
    );
    assert_eq!((ok.message_count, ok.consumer_count), (3, 0));
    let c = w.connect_channel();
    assert_eq!(bodies(&w.client(c).consume(1, "q", "ct")), ["a", "b", "c"]);
}

#[test]
fn publishing_to_a_queue_name_that_does_not_exist_drops_the_message_silently() {
    let mut w = World::new();
    let c = w.connect_channel();
    assert_eq!(w.client(c).publish_all(1, "nowhere", &["x"]), vec![]);
    w.client(c).declare_queue(1, "nowhere");
    assert_eq!(w.client(c).declare_queue(1, "nowhere").message_count, 0);
}

#[test]
fn a_user_id_other_than_the_authenticated_user_is_406() {
    let mut w = World::new();
    let c = w.connect_channel();
    let props = BasicProperties {
        user_id: Some(s("bob")),
        ..Default::default()
    };
    assert_eq!(
        w.client(c).publish(1, "", "q", &props, b"x"),
        vec![channel_close(
            1,
            406,
            "PRECONDITION_FAILED - user_id property set to 'bob' but authenticated user was \
             'guest'",
            60,
            40
        )]
    );
}

#[test]
fn channel_flow_active_true_is_answered_with_flow_ok() {
    let mut w = World::new();
    let c = w.connect_channel();
    assert_eq!(
        w.client(c).send(1, ChannelFlow { active: true }),
        vec![method(1, ChannelFlowOk { active: true })]
    );
}

/// RabbitMQ 3.x does not implement `channel.flow active=false` (checked on 3.10.8): it closes
/// the connection with `540 NOT_IMPLEMENTED - active=false` (class 20, method 20).
#[test]
fn channel_flow_active_false_is_not_implemented_540() {
    let mut w = World::new();
    let c = w.connect_channel();
    assert_eq!(
        w.client(c).send(1, ChannelFlow { active: false }),
        vec![connection_close(
            540,
            "NOT_IMPLEMENTED - active=false",
            20,
            20
        )]
    );
}
