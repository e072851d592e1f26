//! The hub and a store that syncs in the background: a confirm for a stored message leaves
//! the hub only once the store reports the write durable; and the hub forgets a connection
//! whose socket closed before it said anything (it would otherwise hold every shutdown).

use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::watch;
use warren_core::codec::{BasicProperties, ChannelOpen, ConfirmSelect, Method, QueueDeclare};
use warren_core::storage::{MemoryStorage, Storage};
use warren_core::vocab::ClientCapabilities;
use warren_core::{Broker, BrokerConfig, Command, ConnectionConfig, Event, Message};
use warren_testkit::SharedStorage;
use warren_transports::hub::{EventBatch, Hub, Link};

async fn method(link: &Link, events: &mut UnboundedReceiver<EventBatch>, m: impl Into<Method>) {
    link.send(vec![Command::Method {
        channel: 1,
        method: m.into(),
    }])
    .await;
    let batch = events.recv().await.expect("an answer");
    assert_eq!(batch.len(), 1, "{batch:?}");
}

#[tokio::test]
async fn a_confirm_waits_for_the_store_to_report_its_sync() {
    let storage = SharedStorage::deferred();
    let broker = Broker::new(BrokerConfig::default(), Box::new(storage.clone()));
    let (synced_tx, synced) = watch::channel(0);
    let hub = Hub::spawn_with_store(broker, Some(synced));
    let (link, mut events) = hub.register().await;
    link.send(vec![
        Command::Login {
            username: "guest".into(),
            password: "guest".into(),
            mechanism: "PLAIN".into(),
            capabilities: ClientCapabilities::default(),
            from_loopback: true,
        },
        Command::Open { vhost: "/".into() },
    ])
    .await;
    let mut answers = 0;
    while answers < 2 {
        answers += events.recv().await.unwrap().len();
    }
    method(&link, &mut events, ChannelOpen::default()).await;
    let declare = QueueDeclare {
        queue: "dq".into(),
        durable: true,
        ..Default::default()
    };
    link.send(vec![Command::Method {
        channel: 1,
        method: declare.into(),
    }])
    .await;
    // declare-ok of a durable queue waits for the store too.
    let early = tokio::time::timeout(Duration::from_millis(100), events.recv()).await;
    assert!(early.is_err(), "declare-ok before the sync: {early:?}");
    synced_tx.send(storage.write_seq()).unwrap();
    assert_eq!(events.recv().await.expect("declare-ok").len(), 1);
    method(&link, &mut events, ConfirmSelect { nowait: false }).await;
    let persistent = BasicProperties {
        delivery_mode: Some(2),
        ..Default::default()
    };
    link.send(vec![Command::Publish {
        channel: 1,
        flags: Default::default(),
        message: Message::new(
            "".into(),
            "dq".into(),
            persistent.to_bytes(),
            Bytes::from_static(b"kept"),
        ),
    }])
    .await;
    let early = tokio::time::timeout(Duration::from_millis(200), events.recv()).await;
    assert!(early.is_err(), "confirmed before the sync: {early:?}");
    assert_eq!(storage.message_count(), 1);

    synced_tx.send(storage.write_seq()).unwrap();
    let batch = events.recv().await.expect("the confirm");
    assert!(
        matches!(
            batch.as_slice(),
            [Event::Method {
                method: Method::BasicAck(_),
                ..
            }]
        ),
        "{batch:?}"
    );
}

#[tokio::test]
async fn a_socket_closed_before_the_handshake_is_forgotten() {
    let broker = Broker::new(BrokerConfig::default(), Box::new(MemoryStorage::new()));
    let hub = Hub::spawn(broker);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warren_transports::tcp::serve(
        listener,
        hub.clone(),
        ConnectionConfig::default(),
    ));
    // A port probe: connect, say nothing, hang up.
    drop(tokio::net::TcpStream::connect(addr).await.unwrap());
    // A real client, registered once the server has sent it connection.start.
    let mut client = tokio::net::TcpStream::connect(addr).await.unwrap();
    client.write_all(b"AMQP\x00\x00\x09\x01").await.unwrap();
    let mut start = [0u8; 7];
    client.read_exact(&mut start).await.unwrap();
    assert_eq!(start[0], 1, "a method frame (connection.start)");
    let mut live = 0;
    for _ in 0..500 {
        live = hub.live_connections();
        if live == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the hub serves {live} connections, the probe among them");
}
