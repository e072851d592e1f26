//! Answers that promise durability wait for the store: a publisher confirm for a persistent
//! message in a durable queue, and a `tx.commit-ok` whose transaction stored or acked such
//! messages, go out only once the store reports its writes synced. Everything after them on
//! the same channel waits too, so a channel's frames keep their order; other channels do not
//! wait. (A store durable at once — memory, the browser's journal — never holds anything: every
//! other scenario test runs on one.)

mod support;

use support::*;
use warren_core::codec::{BasicAck, Method, QueueDeclare, TxCommitOk};

fn deferred_world() -> World {
    let mut w = World::with_storage(SharedStorage::deferred());
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

/// Declares a durable queue and waits for its declare-ok (which waits for the store).
fn declare_durable(w: &mut World, c: Cid, name: &str) {
    w.client(c).queue_declare(1, durable(name));
    w.sync_storage();
    let r = w.client(c).flush();
    assert!(
        matches!(methods(&r).as_slice(), [Method::QueueDeclareOk(_)]),
        "{r:?}"
    );
}

/// What each received frame is, by the names the tests compare.
fn kinds(r: &[Received]) -> Vec<&'static str> {
    r.iter()
        .map(|x| match x {
            Received::Method {
                method: Method::BasicAck(_),
                ..
            } => "ack",
            Received::Method {
                method: Method::ChannelCloseOk(_),
                ..
            } => "close-ok",
            Received::Method {
                method: Method::BasicConsumeOk(_),
                ..
            } => "consume-ok",
            Received::Delivery(d) if matches!(d.method, Method::BasicReturn(_)) => "return",
            Received::Delivery(d) if matches!(d.method, Method::BasicDeliver(_)) => "deliver",
            _ => "other",
        })
        .collect()
}

fn acks(r: &[Received]) -> Vec<(u64, bool)> {
    methods(r)
        .into_iter()
        .filter_map(|m| match m {
            Method::BasicAck(BasicAck {
                delivery_tag,
                multiple,
            }) => Some((*delivery_tag, *multiple)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_persistent_confirm_waits_for_the_sync_and_a_burst_is_one_ack() {
    let mut w = deferred_world();
    let c = w.connect_channel();
    declare_durable(&mut w, c, "dq");
    w.client(c).confirm_select(1);
    for body in ["a", "b", "c"] {
        let r = w
            .client(c)
            .publish(1, "", "dq", &persistent(), body.as_bytes());
        assert!(r.is_empty(), "confirmed before the store synced: {r:?}");
    }
    assert_eq!(w.storage.message_count(), 3, "the messages were written");
    w.sync_storage();
    assert_eq!(acks(&w.client(c).flush()), vec![(3, true)]);
}

#[test]
fn transient_messages_and_other_channels_do_not_wait() {
    let mut w = deferred_world();
    let c = w.connect_channel();
    declare_durable(&mut w, c, "dq");
    w.client(c).open_channel(2);
    w.client(c).confirm_select(1);
    w.client(c).confirm_select(2);
    assert!(w
        .client(c)
        .publish(1, "", "dq", &persistent(), b"p")
        .is_empty());
    // Channel 2: a transient message to the same durable queue is confirmed at once.
    let r = w.client(c).publish(2, "", "dq", &transient(), b"t");
    assert_eq!(acks(&r), vec![(1, false)]);
    // Channel 1: a transient one behind the held confirm keeps its place in the channel.
    assert!(w
        .client(c)
        .publish(1, "", "dq", &transient(), b"t")
        .is_empty());
    w.sync_storage();
    assert_eq!(acks(&w.client(c).flush()), vec![(2, true)]);
}

#[test]
fn a_channel_keeps_its_order_behind_a_held_confirm() {
    let mut w = deferred_world();
    let c = w.connect_channel();
    declare_durable(&mut w, c, "dq");
    w.client(c).confirm_select(1);
    assert!(w
        .client(c)
        .publish(1, "", "dq", &persistent(), b"p")
        .is_empty());
    // An unroutable mandatory publish: its return and confirm come after the first confirm.
    assert!(w
        .client(c)
        .publish_mandatory(1, "", "nowhere", b"r")
        .is_empty());
    assert!(w.client(c).close_channel(1).is_empty(), "close-ok overtook");
    w.sync_storage();
    let r = w.client(c).flush();
    let kinds = kinds(&r);
    assert_eq!(kinds, ["ack", "return", "ack", "close-ok"], "{r:?}");
    assert_eq!(acks(&r), vec![(1, false), (2, false)]);
}

/// Found by the simulator once it let answers wait for the store: deliveries skipped the
/// channel's queue, so a consumer's first message reached the client before its consume-ok.
#[test]
fn deliveries_wait_behind_a_held_answer_on_their_channel() {
    let mut w = deferred_world();
    let c = w.connect_channel();
    declare_durable(&mut w, c, "dq");
    declare_durable(&mut w, c, "ready");
    w.client(c)
        .publish(1, "", "ready", &transient(), b"waiting");
    w.client(c).confirm_select(1);
    assert!(w
        .client(c)
        .publish(1, "", "dq", &persistent(), b"p")
        .is_empty());
    assert!(
        w.client(c).consume(1, "ready", "t").is_empty(),
        "consume-ok or a delivery overtook the held confirm"
    );
    w.sync_storage();
    let r = w.client(c).flush();
    let kinds = kinds(&r);
    assert_eq!(kinds, ["ack", "consume-ok", "deliver"], "{r:?}");
}

#[test]
fn tx_commit_ok_waits_for_stored_publishes_and_acks() {
    let mut w = deferred_world();
    let c = w.connect_channel();
    declare_durable(&mut w, c, "dq");
    w.client(c).tx_select(1);
    w.client(c).publish(1, "", "dq", &persistent(), b"m");
    assert!(w.client(c).tx_commit(1).is_empty(), "commit-ok before sync");
    w.sync_storage();
    let ok = w.client(c).flush();
    assert!(
        matches!(methods(&ok).as_slice(), [Method::TxCommitOk(TxCommitOk)]),
        "{ok:?}"
    );
    // Acking the stored message in a transaction writes its deletion: commit-ok waits again.
    let r = w.client(c).get(1, "dq", false);
    let tag = deliveries(&r)[0].delivery_tag();
    w.sync_storage();
    w.client(c).ack(1, tag, false);
    assert!(w.client(c).tx_commit(1).is_empty(), "commit-ok before sync");
    w.sync_storage();
    assert_eq!(methods(&w.client(c).flush()).len(), 1);
    assert_eq!(w.storage.message_count(), 0);
}

#[test]
fn a_transaction_that_stores_nothing_commits_at_once() {
    let mut w = deferred_world();
    let c = w.connect_channel();
    w.client(c).declare_queue(1, "q");
    w.client(c).tx_select(1);
    w.client(c).publish(1, "", "q", &persistent(), b"m");
    let r = w.client(c).tx_commit(1);
    assert!(
        matches!(methods(&r).as_slice(), [Method::TxCommitOk(_)]),
        "{r:?}"
    );
}

#[test]
fn a_connection_that_closes_while_waiting_gets_nothing_after_close_ok() {
    let mut w = deferred_world();
    let c = w.connect_channel();
    let d = w.connect_channel();
    declare_durable(&mut w, c, "dq");
    w.client(c).confirm_select(1);
    assert!(w
        .client(c)
        .publish(1, "", "dq", &persistent(), b"p")
        .is_empty());
    let r = w.client(c).close_connection();
    assert!(
        matches!(methods(&r).as_slice(), [Method::ConnectionCloseOk(_)]),
        "{r:?}"
    );
    w.sync_storage();
    assert!(w.client(c).flush().is_empty());
    // The message itself was stored and is there for others.
    let r = w.client(d).get(1, "dq", true);
    assert_eq!(bodies(&r), ["p"]);
}

#[test]
fn answers_to_durable_definitions_wait_for_the_sync_and_transient_ones_do_not() {
    let mut w = deferred_world();
    let c = w.connect_channel();
    let r = w.client(c).queue_declare(1, durable("dq"));
    assert!(
        r.is_empty(),
        "declare-ok before the queue is on disk: {r:?}"
    );
    w.sync_storage();
    assert!(matches!(
        methods(&w.client(c).flush()).as_slice(),
        [Method::QueueDeclareOk(_)]
    ));
    // A transient queue, or declaring the durable one again, writes nothing: answered at once.
    w.client(c).declare_queue(1, "tq");
    w.client(c).declare_queue_with(1, durable("dq"));
    // Binding it to a durable exchange is stored, and waits.
    let r = w.client(c).send(
        1,
        warren_core::codec::QueueBind {
            queue: "dq".into(),
            exchange: "amq.direct".into(),
            routing_key: "k".into(),
            ..Default::default()
        },
    );
    assert!(r.is_empty(), "bind-ok before the binding is on disk: {r:?}");
    w.sync_storage();
    assert!(matches!(
        methods(&w.client(c).flush()).as_slice(),
        [Method::QueueBindOk(_)]
    ));
    let r = w.client(c).delete_queue(1, "dq");
    assert!(
        r.is_empty(),
        "delete-ok before the deletion is on disk: {r:?}"
    );
    w.sync_storage();
    assert!(matches!(
        methods(&w.client(c).flush()).as_slice(),
        [Method::QueueDeleteOk(_)]
    ));
    assert!(w.storage.load().queues.is_empty());
}
