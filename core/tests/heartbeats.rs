//! Heartbeats on virtual time (AMQP 0-9-1 §4.2.7): the server sends one when it has been
//! quiet for half the interval and drops a peer it has not heard from for two intervals, as
//! RabbitMQ does.

mod support;

use support::*;
use warren_core::codec::{ConnectionTuneOk, QueueDeclare};

/// Opens a connection with the given heartbeat interval (seconds) in tune-ok.
fn connect_with_heartbeat(w: &mut World, seconds: u16) -> Cid {
    let c = w.connect();
    let r = w.client(c).handshake_with(&Handshake {
        tune_ok: Some(ConnectionTuneOk {
            channel_max: 2047,
            frame_max: 131_072,
            heartbeat: seconds,
        }),
        ..Default::default()
    });
    assert_eq!(r.len(), 3, "{r:?}");
    c
}

#[test]
fn server_sends_heartbeats_while_the_connection_is_idle() {
    let mut w = World::new();
    let c = connect_with_heartbeat(&mut w, 10);
    w.client_state(c).heartbeat_every_ms = Some(5_000);
    assert_eq!(w.client_state(c).heartbeats_received, 0);
    w.advance(4_999);
    assert_eq!(
        w.client_state(c).heartbeats_received,
        0,
        "not before half an interval"
    );
    w.advance(1);
    assert_eq!(w.client_state(c).heartbeats_received, 1);
    w.advance(55_000);
    // One every five seconds of server silence.
    assert_eq!(w.client_state(c).heartbeats_received, 12);
    assert!(w.client(c).take().is_empty(), "heartbeats are all it sent");
}

#[test]
fn server_traffic_postpones_its_heartbeats() {
    let mut w = World::new();
    let c = connect_with_heartbeat(&mut w, 10);
    w.client(c).open_channel(1);
    for _ in 0..10 {
        w.advance(4_000);
        // Every request gets an answer, so the server is never quiet for five seconds.
        w.client(c).declare_queue(1, "q");
    }
    assert_eq!(w.client_state(c).heartbeats_received, 0);
}

#[test]
fn a_silent_client_is_dropped_after_two_missed_intervals() {
    let mut w = World::new();
    let c = connect_with_heartbeat(&mut w, 10);
    let start = w.now;
    w.advance(19_999);
    assert!(
        !w.client(c).is_socket_closed(),
        "alive just under two intervals"
    );
    assert_eq!(w.broker().connection_count(), 1);
    w.advance_to(start + 20_000);
    assert!(w.client(c).is_socket_closed());
    assert_eq!(w.broker().connection_count(), 0);
    // No connection.close: RabbitMQ just closes the socket on a heartbeat timeout.
    assert!(w.client(c).take().is_empty());
    assert!(w.client_state(c).heartbeats_received >= 3);
}

#[test]
fn a_client_that_sends_heartbeats_stays_connected() {
    let mut w = World::new();
    let c = connect_with_heartbeat(&mut w, 10);
    w.client_state(c).heartbeat_every_ms = Some(5_000);
    w.advance(10 * 60 * 1_000);
    assert!(!w.client(c).is_socket_closed());
    assert_eq!(w.broker().connection_count(), 1);
    assert!(w.client_state(c).heartbeats_sent >= 100);
    w.client(c).open_channel(1);
}

#[test]
fn any_client_frame_counts_as_a_sign_of_life() {
    let mut w = World::new();
    let c = connect_with_heartbeat(&mut w, 10);
    w.client(c).open_channel(1);
    for _ in 0..20 {
        w.advance(15_000);
        w.client(c).send(
            1,
            QueueDeclare {
                queue: "q".into(),
                ..Default::default()
            },
        );
    }
    assert!(!w.client(c).is_socket_closed());
}

#[test]
fn a_client_that_stops_heartbeating_is_dropped() {
    let mut w = World::new();
    let c = connect_with_heartbeat(&mut w, 10);
    w.client_state(c).heartbeat_every_ms = Some(5_000);
    w.advance(60_000);
    assert!(!w.client(c).is_socket_closed());
    w.client_state(c).heartbeat_every_ms = None;
    w.advance(25_000);
    assert!(w.client(c).is_socket_closed());
    assert_eq!(w.broker().connection_count(), 0);
}

#[test]
fn heartbeat_zero_in_tune_ok_disables_heartbeats() {
    let mut w = World::new();
    let c = connect_with_heartbeat(&mut w, 0);
    assert_eq!(w.server(c).poll_timeout(), None);
    w.advance(24 * 3600 * 1_000);
    assert!(!w.client(c).is_socket_closed());
    assert_eq!(w.client_state(c).heartbeats_received, 0);
}

#[test]
fn a_dropped_client_loses_its_unacked_messages_to_the_queue() {
    let mut w = World::new();
    let c = connect_with_heartbeat(&mut w, 10);
    w.client(c).open_channel(1);
    w.client(c).declare_queue(1, "q");
    w.client(c).publish_all(1, "q", &["a", "b"]);
    let r = w.client(c).consume(1, "q", "ct");
    assert_eq!(bodies(&r), ["a", "b"]);
    w.advance(30_000);
    assert!(w.client(c).is_socket_closed());

    let d = w.connect_channel();
    let r = w.client(d).get(1, "q", true);
    assert_eq!(bodies(&r), ["a"]);
    assert!(deliveries(&r)[0].redelivered());
}
