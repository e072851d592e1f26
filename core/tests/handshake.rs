//! Connection handshake (AMQP 0-9-1 §2.2.4): header, start / start-ok (PLAIN, AMQPLAIN),
//! tune / tune-ok, open / open-ok, and how RabbitMQ refuses a login.

mod support;

use support::*;
use warren_core::codec::{ConnectionOpenOk, ConnectionTuneOk, Method, PROTOCOL_HEADER};

const REFUSED_PLAIN: &str = "ACCESS_REFUSED - Login was refused using authentication mechanism \
                             PLAIN. For details see the broker logfile.";

#[test]
fn plain_guest_handshake_opens_the_connection() {
    let mut w = World::new();
    let c = w.connect();
    let r = w.client(c).handshake_with(&Handshake::default());
    let [start, tune, open_ok] = r.as_slice() else {
        panic!("expected start, tune, open-ok: {r:?}");
    };
    let Some(Method::ConnectionStart(start)) = start.method() else {
        panic!("{start:?}");
    };
    assert_eq!((start.version_major, start.version_minor), (0, 9));
    assert_eq!(start.mechanisms.as_str(), Some("PLAIN AMQPLAIN"));
    assert_eq!(start.locales.as_str(), Some("en_US"));
    let Some(Method::ConnectionTune(tune)) = tune.method() else {
        panic!("{tune:?}");
    };
    assert_eq!(
        (tune.channel_max, tune.frame_max, tune.heartbeat),
        (2047, 131_072, 60),
        "RabbitMQ's defaults"
    );
    assert_eq!(*open_ok, method(0, ConnectionOpenOk::default()));
    assert_eq!(w.broker().connection_count(), 1);
    assert_eq!(w.server(c).username(), "guest");
}

#[test]
fn server_capabilities_announce_what_clients_probe_for() {
    let mut w = World::new();
    let c = w.connect();
    let r = w.client(c).send_raw(&PROTOCOL_HEADER);
    let Some(Method::ConnectionStart(start)) = r[0].method() else {
        panic!("{r:?}");
    };
    let caps = start
        .server_properties
        .get("capabilities")
        .and_then(|v| v.as_table())
        .expect("capabilities table");
    for cap in [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "authentication_failure_close",
        "per_consumer_qos",
    ] {
        assert_eq!(
            caps.get(cap).and_then(|v| v.as_bool()),
            Some(true),
            "capability {cap}"
        );
    }
}

#[test]
fn amqplain_guest_handshake_opens_the_connection() {
    let mut w = World::new();
    let c = w.connect();
    let r = w.client(c).handshake_with(&Handshake {
        mechanism: "AMQPLAIN",
        ..Default::default()
    });
    assert_eq!(r.last(), Some(&method(0, ConnectionOpenOk::default())));
    assert_eq!(w.server(c).username(), "guest");
}

#[test]
fn wrong_password_with_authentication_failure_close_gets_403_connection_close() {
    let mut w = World::new();
    let c = w.connect();
    let r = w.client(c).handshake_with(&Handshake {
        password: "nope",
        ..Default::default()
    });
    assert_eq!(r[1..], [connection_close(403, REFUSED_PLAIN, 0, 0)]);
    assert!(w.client(c).is_socket_closed());
    assert_eq!(w.broker().connection_count(), 0);
}

#[test]
fn wrong_password_without_capability_closes_the_socket_silently() {
    let mut w = World::new();
    let c = w.connect();
    let r = w.client(c).handshake_with(&Handshake {
        password: "nope",
        capabilities: vec!["consumer_cancel_notify"],
        ..Default::default()
    });
    assert_eq!(r.len(), 1, "only connection.start: {r:?}");
    assert!(w.client(c).is_socket_closed());
    assert_eq!(w.broker().connection_count(), 0);
}

#[test]
fn amqplain_wrong_password_is_refused_naming_amqplain() {
    let mut w = World::new();
    let c = w.connect();
    let r = w.client(c).handshake_with(&Handshake {
        mechanism: "AMQPLAIN",
        password: "x",
        ..Default::default()
    });
    assert_eq!(
        r[1..],
        [connection_close(
            403,
            "ACCESS_REFUSED - Login was refused using authentication mechanism AMQPLAIN. \
             For details see the broker logfile.",
            0,
            0
        )]
    );
    assert!(w.client(c).is_socket_closed());
}

#[test]
fn unknown_user_is_refused_like_a_wrong_password() {
    let mut w = World::new();
    let c = w.connect();
    let r = w.client(c).handshake_with(&Handshake {
        username: "nobody",
        ..Default::default()
    });
    assert_eq!(r[1..], [connection_close(403, REFUSED_PLAIN, 0, 0)]);
    assert!(w.client(c).is_socket_closed());
}

#[test]
fn unknown_mechanism_closes_the_socket_silently() {
    let mut w = World::new();
    let c = w.connect();
    let r = w.client(c).handshake_with(&Handshake {
        mechanism: "EXTERNAL",
        ..Default::default()
    });
    assert_eq!(r.len(), 1, "only connection.start: {r:?}");
    assert!(w.client(c).is_socket_closed());
}

#[test]
fn tune_ok_may_lower_frame_max_channel_max_and_heartbeat() {
    let mut w = World::new();
    let c = w.connect();
    let r = w.client(c).handshake_with(&Handshake {
        tune_ok: Some(ConnectionTuneOk {
            channel_max: 10,
            frame_max: 4096,
            heartbeat: 5,
        }),
        ..Default::default()
    });
    assert_eq!(r.last(), Some(&method(0, ConnectionOpenOk::default())));
    assert_eq!(w.server(c).frame_max(), 4096);
    // Heartbeats are on: the server wants to be woken up.
    assert!(w.server(c).poll_timeout().is_some());
}

#[test]
fn tune_ok_with_frame_max_below_the_minimum_closes_the_socket_silently() {
    let mut w = World::new();
    let c = w.connect();
    let r = w.client(c).handshake_with(&Handshake {
        tune_ok: Some(ConnectionTuneOk {
            channel_max: 2047,
            frame_max: 100,
            heartbeat: 0,
        }),
        ..Default::default()
    });
    // Before the connection is open RabbitMQ does not explain itself: it hangs up.
    assert_eq!(r.len(), 2, "start and tune only: {r:?}");
    assert!(w.client(c).is_socket_closed());
    assert_eq!(w.broker().connection_count(), 0);
}

#[test]
fn opening_an_unknown_vhost_is_530() {
    let mut w = World::new();
    let c = w.connect();
    let r = w.client(c).handshake_with(&Handshake {
        vhost: "/nope",
        ..Default::default()
    });
    assert_eq!(
        r[2..],
        [connection_close(
            530,
            "NOT_ALLOWED - vhost /nope not found",
            10,
            40
        )]
    );
    // The client's close-ok ends it.
    assert!(w.client(c).is_socket_closed());
    assert_eq!(w.broker().connection_count(), 0);
}

#[test]
fn a_client_that_never_finishes_the_handshake_is_dropped_after_ten_seconds() {
    let mut w = World::new();
    let c = w.connect();
    let r = w.client(c).send_raw(&PROTOCOL_HEADER);
    assert!(matches!(r[0].method(), Some(Method::ConnectionStart(_))));
    w.advance(9_999);
    assert!(!w.client(c).is_socket_closed());
    w.advance(1);
    assert!(w.client(c).is_socket_closed());
    assert_eq!(w.client(c).take(), vec![]);
}

#[test]
fn client_connection_close_is_answered_with_close_ok_and_the_socket_closes() {
    let mut w = World::new();
    let c = w.connect_channel();
    assert_eq!(
        w.client(c).close_connection(),
        vec![method(0, warren_core::codec::ConnectionCloseOk)]
    );
    assert!(w.client(c).is_socket_closed());
    assert!(
        w.client(c).server().answered_close(),
        "the client hangs up, not us (RabbitMQ waits for it)"
    );
    assert_eq!(w.broker().connection_count(), 0);
}

#[test]
fn a_dropped_socket_removes_the_connection_from_the_broker() {
    let mut w = World::new();
    let a = w.connect_channel();
    let b = w.connect_channel();
    assert_eq!(w.broker().connection_count(), 2);
    w.client(a).disconnect();
    assert_eq!(w.broker().connection_count(), 1);
    w.client(b).disconnect();
    assert_eq!(w.broker().connection_count(), 0);
}

#[test]
fn channels_open_and_close_independently() {
    let mut w = World::new();
    let c = w.connect_open();
    w.client(c).open_channel(1);
    w.client(c).open_channel(2);
    assert_eq!(
        w.client(c).close_channel(1),
        vec![method(1, warren_core::codec::ChannelCloseOk)]
    );
    // The number is free again; channel 2 never noticed.
    w.client(c).open_channel(1);
    assert_eq!(w.client(c).declare_queue(2, "q").queue.as_str(), "q");
}
