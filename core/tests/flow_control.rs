//! Credit-based flow control of deliveries (`ConnectionConfig::delivery_window`,
//! `Command::Credit`): what the native driver uses so that a consumer that reads slowly holds
//! its backlog in the queue, and gets it window by window.

mod support;

use bytes::Bytes;
use support::*;
use warren_core::connection::ConnectionConfig;
use warren_core::Message;

const BODY: usize = 1000;

/// What one of this file's messages costs the window (queue "q", default exchange, no
/// properties: the two bytes of empty property flags).
fn cost() -> u64 {
    Message::new(
        "".into(),
        "q".into(),
        Bytes::from_static(&[0, 0]),
        Bytes::from(vec![b'x'; BODY]),
    )
    .delivery_cost()
}

fn body(i: usize) -> String {
    format!("{i:0width$}", width = BODY)
}

fn publish_n(w: &mut World, c: Cid, queue: &str, n: usize) {
    let bodies: Vec<String> = (0..n).map(body).collect();
    let refs: Vec<&str> = bodies.iter().map(String::as_str).collect();
    w.client(c).publish_all(1, queue, &refs);
}

/// A connection whose window holds `messages` of this file's messages.
fn connect_with_window(w: &mut World, messages: u64) -> Cid {
    let c = w.connect_with(ConnectionConfig {
        delivery_window: Some(messages * cost()),
        ..ConnectionConfig::default()
    });
    w.stop_reading(c);
    w.client(c).handshake();
    w.client(c).open_channel(1);
    c
}

fn delivered_bodies(received: &[Received]) -> Vec<String> {
    received
        .iter()
        .filter_map(Received::delivery)
        .map(|d| d.body_str().to_owned())
        .collect()
}

#[test]
fn the_cost_is_about_the_bytes_on_the_wire() {
    let c = cost();
    assert!(c > BODY as u64 && c < BODY as u64 + 200, "cost {c}");
}

#[test]
fn without_a_window_a_backlog_is_delivered_at_once() {
    let mut w = World::new();
    let p = w.connect_channel();
    w.client(p).declare_queue(1, "q");
    publish_n(&mut w, p, "q", 20);
    let c = w.connect_with(ConnectionConfig {
        delivery_window: None,
        ..ConnectionConfig::default()
    });
    w.stop_reading(c);
    w.client(c).handshake();
    w.client(c).open_channel(1);
    let r = w.client(c).consume_no_ack(1, "q", "t");
    assert_eq!(delivered_bodies(&r).len(), 20);
}

#[test]
fn a_backlog_arrives_window_by_window_in_order() {
    let mut w = World::new();
    let p = w.connect_channel();
    w.client(p).declare_queue(1, "q");
    publish_n(&mut w, p, "q", 10);
    let c = connect_with_window(&mut w, 3);
    let mut got = delivered_bodies(&w.client(c).consume_no_ack(1, "q", "t"));
    assert_eq!(got.len(), 3, "the first window");
    assert_eq!(w.client(c).declare_queue(1, "q").message_count, 7);
    // Nothing more until credit comes back, however long we wait.
    w.advance(10_000);
    assert!(delivered_bodies(&w.client(c).take()).is_empty());
    while got.len() < 10 {
        w.return_credit(c);
        let more = delivered_bodies(&w.client(c).take());
        assert!(
            !more.is_empty() && more.len() <= 3,
            "a window at a time: {}",
            more.len()
        );
        got.extend(more);
    }
    let want: Vec<String> = (0..10).map(body).collect();
    assert_eq!(got, want);
    assert_eq!(w.client(c).declare_queue(1, "q").message_count, 0);
}

#[test]
fn new_publishes_wait_in_the_queue_while_the_window_is_used_up() {
    let mut w = World::new();
    let c = connect_with_window(&mut w, 2);
    w.client(c).declare_queue(1, "q");
    w.client(c).consume_no_ack(1, "q", "t");
    let p = w.connect_channel();
    publish_n(&mut w, p, "q", 5);
    assert_eq!(delivered_bodies(&w.client(c).take()).len(), 2);
    assert_eq!(w.client(p).declare_queue(1, "q").message_count, 3);
    w.return_credit(c);
    assert_eq!(delivered_bodies(&w.client(c).take()).len(), 2);
    w.return_credit(c);
    assert_eq!(delivered_bodies(&w.client(c).take()).len(), 1);
    assert_eq!(w.client(p).declare_queue(1, "q").message_count, 0);
}

#[test]
fn the_window_is_per_connection_and_shared_by_its_channels() {
    let mut w = World::new();
    let p = w.connect_channel();
    w.client(p).declare_queue(1, "a");
    w.client(p).declare_queue(1, "b");
    publish_n(&mut w, p, "a", 5);
    publish_n(&mut w, p, "b", 5);
    let c = connect_with_window(&mut w, 4);
    w.client(c).open_channel(2);
    let first = delivered_bodies(&w.client(c).consume_no_ack(1, "a", "ta"));
    assert_eq!(first.len(), 4);
    // Channel 2 draws on the same, used-up window.
    let second = delivered_bodies(&w.client(c).consume_no_ack(2, "b", "tb"));
    assert!(second.is_empty());
    w.return_credit(c);
    let r = w.client(c).take();
    assert_eq!(delivered_bodies(&r).len(), 4);
}

#[test]
fn round_robin_skips_a_connection_without_credit() {
    let mut w = World::new();
    let slow = connect_with_window(&mut w, 1);
    w.client(slow).declare_queue(1, "q");
    w.client(slow).consume_no_ack(1, "q", "slow");
    let fast = w.connect_channel();
    w.client(fast).consume_no_ack(1, "q", "fast");
    let p = w.connect_channel();
    publish_n(&mut w, p, "q", 8);
    assert_eq!(delivered_bodies(&w.client(slow).take()).len(), 1);
    assert_eq!(delivered_bodies(&w.client(fast).take()).len(), 7);
    assert_eq!(w.client(p).declare_queue(1, "q").message_count, 0);
}

#[test]
fn basic_get_is_not_held_back_by_the_window() {
    let mut w = World::new();
    let p = w.connect_channel();
    w.client(p).declare_queue(1, "q");
    publish_n(&mut w, p, "q", 3);
    let c = connect_with_window(&mut w, 1);
    w.client(c).open_channel(2);
    let r = w.client(c).consume_no_ack(2, "q", "t");
    assert_eq!(delivered_bodies(&r).len(), 1);
    // The client asked for this one: it is answered although the window is used up.
    let r = w.client(c).get(1, "q", true);
    assert_eq!(delivered_bodies(&r), vec![body(1)]);
}

#[test]
fn manual_acks_need_both_prefetch_room_and_credit() {
    let mut w = World::new();
    let p = w.connect_channel();
    w.client(p).declare_queue(1, "q");
    publish_n(&mut w, p, "q", 6);
    let c = connect_with_window(&mut w, 2);
    w.client(c).qos(1, 3, false);
    let r = w.client(c).consume(1, "q", "t");
    assert_eq!(
        delivered_bodies(&r).len(),
        2,
        "the window, not prefetch 3, is the limit"
    );
    w.return_credit(c);
    assert_eq!(
        delivered_bodies(&w.client(c).take()).len(),
        1,
        "now prefetch 3 is"
    );
    // One message's credit is left; the ack makes prefetch room for three.
    let r = w.client(c).ack(1, 3, true);
    assert_eq!(delivered_bodies(&r).len(), 1);
    w.return_credit(c);
    assert_eq!(delivered_bodies(&w.client(c).take()).len(), 2);
    assert_eq!(w.client(c).declare_queue(1, "q").message_count, 0);
}
