//! Topic exchange routing: `*` is one word, `#` is zero or more, the empty key has no words.

use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, ExchangeDeleteOptions,
    QueueBindOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, ExchangeKind};
use warren_e2e::{drain_bodies, temp_queue, unique_name, within, Broker};

async fn topic_exchange(channel: &Channel) -> String {
    let name = unique_name("topic");
    channel
        .exchange_declare(
            name.as_str().into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                auto_delete: true,
                ..ExchangeDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("exchange.declare topic");
    name
}

async fn bind(channel: &Channel, queue: &str, exchange: &str, pattern: &str) {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            pattern.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("queue.bind {pattern:?}: {e}"));
}

/// Publishes each key (the body is the key) and waits for the confirms, so routing is done.
async fn publish_keys(channel: &Channel, exchange: &str, keys: &[&str]) {
    for key in keys {
        channel
            .basic_publish(
                exchange.into(),
                (*key).into(),
                BasicPublishOptions::default(),
                key.as_bytes(),
                BasicProperties::default(),
            )
            .await
            .expect("basic.publish");
    }
    let returned = channel.wait_for_confirms().await.expect("confirms");
    assert!(returned.is_empty());
}

async fn received_keys(channel: &Channel, queue: &str) -> Vec<String> {
    drain_bodies(channel, queue)
        .await
        .into_iter()
        .map(|b| String::from_utf8(b).expect("utf-8 body"))
        .collect()
}

#[tokio::test]
async fn patterns_route_like_rabbitmq() {
    const KEYS: &[&str] = &["", "a", ".", "a.", "a.b", "a..b", "a.x.y.b", "b.a", "x.y"];
    // What each pattern receives from KEYS, in publish order.
    const TABLE: &[(&str, &[&str])] = &[
        ("", &[""]),
        ("#", KEYS),
        ("*", &["a"]),
        ("#.#", KEYS),
        (
            "*.#",
            &["a", ".", "a.", "a.b", "a..b", "a.x.y.b", "b.a", "x.y"],
        ),
        ("a", &["a"]),
        ("a.#", &["a", "a.", "a.b", "a..b", "a.x.y.b"]),
        ("a.*", &["a.", "a.b"]),
        ("*.*", &[".", "a.", "a.b", "b.a", "x.y"]),
        ("#.b", &["a.b", "a..b", "a.x.y.b"]),
        ("a.#.b", &["a.b", "a..b", "a.x.y.b"]),
        ("a.#.#.b", &["a.b", "a..b", "a.x.y.b"]),
        ("a.*.b", &["a..b"]),
        ("#.", &[".", "a."]),
        ("x.y.z", &[]),
    ];
    let broker = Broker::start();
    within(async {
        let (_connection, channel) = broker.channel().await;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirm.select");
        let exchange = topic_exchange(&channel).await;
        let mut queues = Vec::new();
        for (pattern, _) in TABLE {
            let queue = temp_queue(&channel).await;
            bind(&channel, &queue, &exchange, pattern).await;
            queues.push(queue);
        }
        publish_keys(&channel, &exchange, KEYS).await;
        for ((pattern, expected), queue) in TABLE.iter().zip(&queues) {
            assert_eq!(
                &received_keys(&channel, queue).await,
                expected,
                "pattern {pattern:?}"
            );
        }
    })
    .await;
}

#[tokio::test]
async fn a_queue_bound_by_several_matching_patterns_gets_one_copy() {
    let broker = Broker::start();
    within(async {
        let (_connection, channel) = broker.channel().await;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirm.select");
        let exchange = topic_exchange(&channel).await;
        let queue = temp_queue(&channel).await;
        for pattern in ["a.*", "#", "a.b", "*.b", "#.b.#"] {
            bind(&channel, &queue, &exchange, pattern).await;
        }
        publish_keys(&channel, &exchange, &["a.b", "c"]).await;
        assert_eq!(received_keys(&channel, &queue).await, ["a.b", "c"]);
    })
    .await;
}

#[tokio::test]
async fn unbinding_stops_routing_through_that_pattern_only() {
    let broker = Broker::start();
    within(async {
        let (_connection, channel) = broker.channel().await;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirm.select");
        let exchange = topic_exchange(&channel).await;
        let queue = temp_queue(&channel).await;
        bind(&channel, &queue, &exchange, "stock.*").await;
        bind(&channel, &queue, &exchange, "#.eur").await;
        publish_keys(&channel, &exchange, &["stock.usd", "stock.eur", "fx.eur"]).await;
        assert_eq!(
            received_keys(&channel, &queue).await,
            ["stock.usd", "stock.eur", "fx.eur"]
        );

        channel
            .queue_unbind(
                queue.as_str().into(),
                exchange.as_str().into(),
                "stock.*".into(),
                FieldTable::default(),
            )
            .await
            .expect("queue.unbind");
        publish_keys(&channel, &exchange, &["stock.usd", "stock.eur", "fx.eur"]).await;
        assert_eq!(
            received_keys(&channel, &queue).await,
            ["stock.eur", "fx.eur"]
        );

        channel
            .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
            .await
            .expect("exchange.delete");
    })
    .await;
}
