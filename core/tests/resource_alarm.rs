//! A resource alarm (memory, disk) pauses publishers as RabbitMQ does: a connection that
//! publishes while it is on is told `connection.blocked` (when it announced the capability)
//! and is not read again until the alarm clears (`connection.unblocked`). Connections that
//! only consume keep working.

mod support;

use support::*;
use warren_core::codec::{
    BasicProperties, BasicPublish, ChannelOpen, ConnectionOpen, ConnectionTuneOk, Method,
};

fn publish_to_q() -> BasicPublish {
    BasicPublish {
        routing_key: "q".into(),
        ..Default::default()
    }
}

fn blocked(r: &[Received]) -> usize {
    methods(r)
        .iter()
        .filter(|m| matches!(m, Method::ConnectionBlocked(_)))
        .count()
}

fn unblocked(r: &[Received]) -> usize {
    methods(r)
        .iter()
        .filter(|m| matches!(m, Method::ConnectionUnblocked(_)))
        .count()
}

fn ready(w: &World) -> usize {
    w.broker().queue("/", "q").map_or(0, |q| q.len())
}

#[test]
fn a_publisher_is_paused_until_the_alarm_clears() {
    let mut w = World::new();
    w.conn_config.heartbeat = 0;
    let c = w.connect_channel();
    w.client(c).declare_queue(1, "q");
    w.set_resource_alarm(Some("memory"));
    let props = BasicProperties::default();
    let st = w.client_state(c);
    st.queue_publish(1, publish_to_q(), &props, b"first");
    st.queue_publish(1, publish_to_q(), &props, b"second");
    let r = w.client(c).flush();
    assert_eq!(blocked(&r), 1, "{r:?}");
    assert_eq!(
        ready(&w),
        1,
        "the publish that blocked it goes through, the next waits"
    );
    w.set_resource_alarm(None);
    let r = w.client(c).take();
    assert_eq!(unblocked(&r), 1, "{r:?}");
    assert_eq!(ready(&w), 2);
}

/// A client may pipeline its publishes behind `connection.open`: when it connects during an
/// alarm, the first of them already blocks it (the broker tells the connection about the
/// alarm before it lets it read past `connection.open`).
#[test]
fn a_connection_opened_during_an_alarm_blocks_at_its_first_publish() {
    let mut w = World::new();
    w.conn_config.heartbeat = 0;
    let admin = w.connect_channel();
    w.client(admin).declare_queue(1, "q");
    w.set_resource_alarm(Some("memory"));
    let c = w.connect();
    let r = w.client(c).send_raw(&warren_core::codec::PROTOCOL_HEADER);
    assert!(matches!(
        r.first().and_then(Received::method),
        Some(Method::ConnectionStart(_))
    ));
    let r = w.client(c).send(0, Handshake::default().start_ok());
    let Some(Method::ConnectionTune(tune)) = r.first().and_then(Received::method).cloned() else {
        panic!("expected connection.tune, got {r:?}");
    };
    let props = BasicProperties::default();
    let st = w.client_state(c);
    st.queue_method(
        0,
        ConnectionTuneOk {
            channel_max: tune.channel_max,
            frame_max: tune.frame_max,
            heartbeat: 0,
        },
    );
    st.queue_method(
        0,
        ConnectionOpen {
            virtual_host: "/".into(),
            ..Default::default()
        },
    );
    st.queue_method(1, ChannelOpen::default());
    st.queue_publish(1, publish_to_q(), &props, b"first");
    st.queue_publish(1, publish_to_q(), &props, b"second");
    let r = w.client(c).flush();
    assert_eq!(blocked(&r), 1, "{r:?}");
    assert_eq!(ready(&w), 1);
    w.set_resource_alarm(None);
    let r = w.client(c).take();
    assert_eq!(unblocked(&r), 1, "{r:?}");
    assert_eq!(ready(&w), 2);
}
