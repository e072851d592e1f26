//! Soft errors: the broker closes the channel with a reply code; the connection lives on.

use lapin::options::{
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ExchangeKind};
use warren_e2e::{amqp_error, step, temp_queue, unique_name, within, Broker};

fn max_length(n: i32) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongInt(n));
    args
}

fn exclusive() -> QueueDeclareOptions {
    QueueDeclareOptions {
        exclusive: true,
        ..QueueDeclareOptions::default()
    }
}

/// Asserts that `result` is the broker closing the channel with `code` and a reply text that
/// starts with `text_prefix`, that the channel is no longer usable, and that the connection is.
async fn assert_channel_closed<T: std::fmt::Debug>(
    result: lapin::Result<T>,
    code: u16,
    text_prefix: &str,
    connection: &Connection,
    channel: &Channel,
) {
    let error = result.expect_err("the broker should have refused");
    let (reply_code, reply_text) = amqp_error(&error)
        .unwrap_or_else(|| panic!("not a channel.close from the broker: {error}"));
    assert_eq!(reply_code, code, "reply text: {reply_text}");
    assert!(
        reply_text.starts_with(text_prefix),
        "reply text: {reply_text}"
    );
    assert!(!channel.status().connected(), "the channel is closed");
    let after = channel
        .queue_declare("".into(), exclusive(), FieldTable::default())
        .await;
    assert!(after.is_err(), "a closed channel refuses further methods");
    assert!(
        connection.status().connected(),
        "a channel error leaves the connection open"
    );
    let other = step("open another channel", connection.create_channel())
        .await
        .expect("the connection still opens channels");
    temp_queue(&other).await;
}

#[tokio::test]
async fn redeclaring_a_queue_with_different_arguments_is_406() {
    let broker = Broker::start();
    within(async {
        let (connection, channel) = broker.channel().await;
        let name = unique_name("args");
        channel
            .queue_declare(name.as_str().into(), exclusive(), max_length(10))
            .await
            .expect("first declare");
        // The same arguments again are fine.
        channel
            .queue_declare(name.as_str().into(), exclusive(), max_length(10))
            .await
            .expect("equivalent redeclare");

        let result = step(
            "inequivalent redeclare",
            channel.queue_declare(name.as_str().into(), exclusive(), max_length(20)),
        )
        .await;
        assert_channel_closed(result, 406, "PRECONDITION_FAILED", &connection, &channel).await;

        // The queue kept its original arguments.
        let checker = connection.create_channel().await.expect("channel.open");
        checker
            .queue_declare(name.as_str().into(), exclusive(), max_length(10))
            .await
            .expect("the original declaration still stands");
    })
    .await;
}

#[tokio::test]
async fn redeclaring_a_queue_with_different_durability_is_406() {
    let broker = Broker::start();
    within(async {
        let (connection, channel) = broker.channel().await;
        let name = unique_name("durable");
        // Not exclusive: RabbitMQ ignores `durable` on exclusive queues (they are never durable),
        // so only a shared queue shows the check. x-expires removes it if the test dies midway.
        let mut args = FieldTable::default();
        args.insert("x-expires".into(), AMQPValue::LongInt(60_000));
        channel
            .queue_declare(
                name.as_str().into(),
                QueueDeclareOptions::default(),
                args.clone(),
            )
            .await
            .expect("first declare");
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        let result = step(
            "redeclare as durable",
            channel.queue_declare(name.as_str().into(), durable, args),
        )
        .await;
        assert_channel_closed(result, 406, "PRECONDITION_FAILED", &connection, &channel).await;

        let cleanup = connection.create_channel().await.expect("channel.open");
        let deleted = cleanup
            .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
            .await
            .expect("queue.delete");
        assert_eq!(deleted, 0, "no message was ever published");
    })
    .await;
}

#[tokio::test]
async fn redeclaring_an_exchange_with_a_different_type_is_406() {
    let broker = Broker::start();
    within(async {
        let (connection, channel) = broker.channel().await;
        let name = unique_name("kind");
        channel
            .exchange_declare(
                name.as_str().into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("first declare");
        let result = step(
            "redeclare as fanout",
            channel.exchange_declare(
                name.as_str().into(),
                ExchangeKind::Fanout,
                ExchangeDeclareOptions::default(),
                FieldTable::default(),
            ),
        )
        .await;
        assert_channel_closed(result, 406, "PRECONDITION_FAILED", &connection, &channel).await;

        let cleanup = connection.create_channel().await.expect("channel.open");
        cleanup
            .exchange_delete(name.as_str().into(), ExchangeDeleteOptions::default())
            .await
            .expect("exchange.delete");
    })
    .await;
}

#[tokio::test]
async fn passive_declare_of_a_missing_queue_is_404() {
    let broker = Broker::start();
    within(async {
        let (connection, channel) = broker.channel().await;
        let name = unique_name("missing");
        let result = step(
            "passive declare",
            channel.queue_declare(
                name.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            ),
        )
        .await;
        let expected = format!("NOT_FOUND - no queue '{name}' in vhost '/'");
        assert_channel_closed(result, 404, &expected, &connection, &channel).await;
    })
    .await;
}
