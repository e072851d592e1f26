//! Publish then consume or get: body, properties and headers come back intact.

use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
};
use lapin::types::{AMQPValue, DecimalValue, FieldArray, FieldTable, LongString};
use lapin::{BasicProperties, Channel};
use warren_e2e::{get, message_count, next_delivery, temp_queue, within, Broker};

fn headers() -> FieldTable {
    let mut nested = FieldTable::default();
    nested.insert("inner".into(), AMQPValue::LongString("deep".into()));
    nested.insert("n".into(), AMQPValue::LongInt(7));
    let mut h = FieldTable::default();
    h.insert("x-string".into(), AMQPValue::LongString("hello".into()));
    h.insert("x-utf8".into(), AMQPValue::LongString("héllo ✓".into()));
    h.insert(
        "x-empty".into(),
        AMQPValue::LongString(LongString::from("")),
    );
    h.insert("x-bool".into(), AMQPValue::Boolean(true));
    h.insert("x-i8".into(), AMQPValue::ShortShortInt(-5));
    h.insert("x-u8".into(), AMQPValue::ShortShortUInt(200));
    h.insert("x-i16".into(), AMQPValue::ShortInt(-300));
    h.insert("x-u16".into(), AMQPValue::ShortUInt(60_000));
    h.insert("x-i32".into(), AMQPValue::LongInt(-70_000));
    h.insert("x-u32".into(), AMQPValue::LongUInt(4_000_000_000));
    h.insert("x-i64".into(), AMQPValue::LongLongInt(-5_000_000_000));
    h.insert("x-f32".into(), AMQPValue::Float(1.5));
    h.insert("x-f64".into(), AMQPValue::Double(-2.25));
    h.insert(
        "x-decimal".into(),
        AMQPValue::DecimalValue(DecimalValue {
            scale: 2,
            value: 12_345,
        }),
    );
    h.insert("x-timestamp".into(), AMQPValue::Timestamp(1_700_000_000));
    h.insert("x-table".into(), AMQPValue::FieldTable(nested));
    h.insert(
        "x-array".into(),
        AMQPValue::FieldArray(FieldArray::from(vec![
            AMQPValue::LongString("a".into()),
            AMQPValue::LongInt(1),
            AMQPValue::Boolean(false),
        ])),
    );
    h.insert(
        "x-bytes".into(),
        AMQPValue::ByteArray(vec![0u8, 1, 2, 255].into()),
    );
    h.insert("x-void".into(), AMQPValue::Void);
    h
}

fn full_properties(user: &str) -> BasicProperties {
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("identity".into())
        .with_headers(headers())
        .with_delivery_mode(2)
        .with_priority(5)
        .with_correlation_id("corr-42".into())
        .with_reply_to("reply.queue".into())
        .with_expiration("60000".into())
        .with_message_id("msg-1".into())
        .with_timestamp(1_700_000_123)
        .with_type("test.kind".into())
        // RabbitMQ checks that user-id names the connection's user.
        .with_user_id(user.into())
        .with_app_id("warren-e2e".into())
}

async fn publish_confirmed(
    channel: &Channel,
    queue: &str,
    body: &[u8],
    properties: BasicProperties,
) {
    let confirm = channel
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body,
            properties,
        )
        .await
        .expect("basic.publish")
        .await
        .expect("publisher confirm");
    assert!(confirm.is_ack(), "publish to {queue} was nacked");
}

#[tokio::test]
async fn consume_returns_body_properties_and_headers_intact() {
    let broker = Broker::start();
    within(async {
        let (connection, channel) = broker.channel().await;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirm.select");
        let queue = temp_queue(&channel).await;
        let properties = full_properties(&connection.status().username());
        let body = br#"{"hello":"world"}"#;
        publish_confirmed(&channel, &queue, body, properties.clone()).await;

        let mut consumer = channel
            .basic_consume(
                queue.as_str().into(),
                "round-trip".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("basic.consume");
        let delivery = next_delivery(&mut consumer).await;
        assert_eq!(delivery.data, body);
        assert_eq!(delivery.exchange.as_str(), "");
        assert_eq!(delivery.routing_key.as_str(), queue);
        assert!(!delivery.redelivered);
        assert_eq!(delivery.properties, properties);
        assert_eq!(delivery.properties.headers().as_ref(), Some(&headers()));
        delivery
            .ack(BasicAckOptions::default())
            .await
            .expect("basic.ack");
    })
    .await;
}

#[tokio::test]
async fn get_returns_body_properties_and_remaining_count() {
    let broker = Broker::start();
    within(async {
        let (connection, channel) = broker.channel().await;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirm.select");
        let queue = temp_queue(&channel).await;
        let properties = full_properties(&connection.status().username());
        publish_confirmed(&channel, &queue, b"first", properties.clone()).await;
        publish_confirmed(&channel, &queue, b"second", BasicProperties::default()).await;

        let first = get(&channel, &queue).await.expect("first message");
        assert_eq!(first.delivery.data, b"first");
        assert_eq!(first.delivery.properties, properties);
        assert_eq!(first.message_count, 1, "get-ok counts the messages left");
        let second = get(&channel, &queue).await.expect("second message");
        assert_eq!(second.delivery.data, b"second");
        assert_eq!(second.delivery.properties, BasicProperties::default());
        assert_eq!(second.message_count, 0);
        assert!(
            get(&channel, &queue).await.is_none(),
            "get-empty once drained"
        );
    })
    .await;
}

#[tokio::test]
async fn empty_body_round_trips() {
    let broker = Broker::start();
    within(async {
        let (_connection, channel) = broker.channel().await;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirm.select");
        let queue = temp_queue(&channel).await;
        let properties = BasicProperties::default().with_message_id("empty".into());
        publish_confirmed(&channel, &queue, b"", properties.clone()).await;
        let message = get(&channel, &queue).await.expect("the empty message");
        assert!(message.delivery.data.is_empty());
        assert_eq!(message.delivery.properties, properties);
    })
    .await;
}

#[tokio::test]
async fn consumer_receives_messages_in_publish_order() {
    let broker = Broker::start();
    within(async {
        let (_connection, channel) = broker.channel().await;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirm.select");
        let queue = temp_queue(&channel).await;
        for i in 0..200u32 {
            channel
                .basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    BasicPublishOptions::default(),
                    &i.to_be_bytes(),
                    BasicProperties::default(),
                )
                .await
                .expect("basic.publish");
        }
        channel.wait_for_confirms().await.expect("confirms");
        assert_eq!(message_count(&channel, &queue).await, 200);

        let mut consumer = channel
            .basic_consume(
                queue.as_str().into(),
                "ordered".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("basic.consume");
        for i in 0..200u32 {
            let delivery = next_delivery(&mut consumer).await;
            assert_eq!(delivery.data, i.to_be_bytes(), "message {i} out of order");
            assert_eq!(
                delivery.delivery_tag,
                u64::from(i) + 1,
                "delivery tags count from 1"
            );
        }
    })
    .await;
}
