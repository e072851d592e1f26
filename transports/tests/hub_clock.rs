//! The hub feeds the broker the time with every command, on tokio's clock: a message TTL
//! counts from the publish even after a long quiet spell with no timer running (tested on
//! tokio's paused virtual time, commands straight into the hub).

use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc::UnboundedReceiver;
use warren_core::codec::{
    BasicGet, BasicProperties, ChannelOpen, FieldTable, FieldValue, Method, QueueDeclare,
};
use warren_core::storage::MemoryStorage;
use warren_core::vocab::ClientCapabilities;
use warren_core::{Broker, BrokerConfig, Command, Event, Message};
use warren_transports::hub::{EventBatch, Hub, Link};

async fn next(events: &mut UnboundedReceiver<EventBatch>) -> Event {
    let mut batch = events.recv().await.expect("the hub answers");
    assert_eq!(batch.len(), 1, "one answer at a time: {batch:?}");
    batch.remove(0)
}

async fn open_channel(hub: &Hub) -> (Link, UnboundedReceiver<EventBatch>) {
    let (link, mut events) = hub.register().await;
    link.send(vec![Command::Login {
        username: "guest".into(),
        password: "guest".into(),
        mechanism: "PLAIN".into(),
        capabilities: ClientCapabilities::default(),
        from_loopback: true,
    }])
    .await;
    assert!(matches!(next(&mut events).await, Event::LoginOk));
    link.send(vec![Command::Open { vhost: "/".into() }]).await;
    assert!(matches!(next(&mut events).await, Event::OpenOk));
    let open = Command::Method {
        channel: 1,
        method: ChannelOpen::default().into(),
    };
    link.send(vec![open]).await;
    assert!(matches!(next(&mut events).await, Event::Method { .. }));
    (link, events)
}

/// Waits until the hub has handled everything sent before (a passive declare's answer comes
/// after them): `Link::send` only queues, and the hub reads the clock when it takes a batch.
async fn sync(link: &Link, events: &mut UnboundedReceiver<EventBatch>) {
    let declare = QueueDeclare {
        queue: "q".into(),
        passive: true,
        ..Default::default()
    };
    link.send(vec![Command::Method {
        channel: 1,
        method: declare.into(),
    }])
    .await;
    assert!(matches!(
        next(events).await,
        Event::Method {
            method: Method::QueueDeclareOk(_),
            ..
        }
    ));
}

async fn get(link: &Link, events: &mut UnboundedReceiver<EventBatch>) -> Option<Bytes> {
    let get = BasicGet {
        queue: "q".into(),
        no_ack: true,
        ..Default::default()
    };
    link.send(vec![Command::Method {
        channel: 1,
        method: get.into(),
    }])
    .await;
    match next(events).await {
        Event::Content { message, .. } => Some(message.body().clone()),
        Event::Method {
            method: Method::BasicGetEmpty(_),
            ..
        } => None,
        other => panic!("expected get-ok or get-empty, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn a_queue_ttl_counts_from_the_publish_after_a_quiet_spell() {
    let broker = Broker::new(BrokerConfig::default(), Box::new(MemoryStorage::new()));
    let hub = Hub::spawn(broker);
    let (link, mut events) = open_channel(&hub).await;
    let mut args = FieldTable::default();
    args.insert("x-message-ttl", FieldValue::I32(5_000));
    let declare = QueueDeclare {
        queue: "q".into(),
        arguments: args,
        ..Default::default()
    };
    link.send(vec![Command::Method {
        channel: 1,
        method: declare.into(),
    }])
    .await;
    assert!(matches!(next(&mut events).await, Event::Method { .. }));
    assert_eq!(hub.now_ms(), 0);

    // 50 s of silence: nothing is timed yet, so the hub sleeps without a deadline.
    tokio::time::advance(Duration::from_secs(50)).await;
    assert_eq!(hub.now_ms(), 50_000);
    let message = Message::new(
        "".into(),
        "q".into(),
        BasicProperties::default().to_bytes(),
        Bytes::from_static(b"fresh"),
    );
    link.send(vec![Command::Publish {
        channel: 1,
        flags: Default::default(),
        message,
    }])
    .await;
    sync(&link, &mut events).await;
    tokio::time::advance(Duration::from_secs(4)).await;
    assert_eq!(
        get(&link, &mut events).await.as_deref(),
        Some(&b"fresh"[..]),
        "alive 4 s after its publish"
    );

    link.send(vec![Command::Publish {
        channel: 1,
        flags: Default::default(),
        message: Message::new(
            "".into(),
            "q".into(),
            BasicProperties::default().to_bytes(),
            Bytes::from_static(b"late"),
        ),
    }])
    .await;
    sync(&link, &mut events).await;
    tokio::time::advance(Duration::from_millis(5_001)).await;
    assert_eq!(get(&link, &mut events).await, None, "expired 5 s after it");
}
