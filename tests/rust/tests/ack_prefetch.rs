//! Manual acknowledgements and `basic.qos` prefetch.

use std::time::Duration;

use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Consumer};
use warren_e2e::{
    assert_no_delivery, get, message_count, next_delivery, temp_queue, within, Broker,
};

/// Long enough for a broker that ignored the prefetch limit to have sent more.
const QUIET: Duration = Duration::from_millis(300);

async fn publish_numbers(channel: &Channel, queue: &str, count: u8) {
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    for i in 0..count {
        channel
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                &[i],
                BasicProperties::default(),
            )
            .await
            .expect("basic.publish");
    }
    channel.wait_for_confirms().await.expect("confirms");
}

async fn consume(channel: &Channel, queue: &str) -> Consumer {
    channel
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("basic.consume")
}

#[tokio::test]
async fn prefetch_limits_unacked_deliveries() {
    let broker = Broker::start();
    within(async {
        let (_connection, channel) = broker.channel().await;
        let queue = temp_queue(&channel).await;
        publish_numbers(&channel, &queue, 10).await;
        channel
            .basic_qos(3, BasicQosOptions::default())
            .await
            .expect("basic.qos");
        let mut consumer = consume(&channel, &queue).await;

        let mut received = Vec::new();
        for _ in 0..3 {
            received.push(next_delivery(&mut consumer).await);
        }
        assert_no_delivery(&mut consumer, QUIET).await;
        assert_eq!(
            message_count(&channel, &queue).await,
            7,
            "7 ready, 3 unacked"
        );

        // One ack frees one slot.
        received[0]
            .ack(BasicAckOptions::default())
            .await
            .expect("basic.ack");
        received.push(next_delivery(&mut consumer).await);
        assert_no_delivery(&mut consumer, QUIET).await;

        // A multiple ack of the newest delivery frees all three slots.
        received[3]
            .ack(BasicAckOptions { multiple: true })
            .await
            .expect("basic.ack multiple");
        for _ in 0..3 {
            received.push(next_delivery(&mut consumer).await);
        }
        assert_no_delivery(&mut consumer, QUIET).await;

        received[6]
            .ack(BasicAckOptions { multiple: true })
            .await
            .expect("basic.ack multiple");
        for _ in 0..3 {
            received.push(next_delivery(&mut consumer).await);
        }
        received[9]
            .ack(BasicAckOptions { multiple: true })
            .await
            .expect("basic.ack multiple");

        let bodies: Vec<u8> = received.iter().map(|d| d.data[0]).collect();
        assert_eq!(bodies, (0..10).collect::<Vec<u8>>());
        assert!(received.iter().all(|d| !d.redelivered));
        assert_no_delivery(&mut consumer, QUIET).await;
        assert_eq!(message_count(&channel, &queue).await, 0);
    })
    .await;
}

#[tokio::test]
async fn acked_messages_are_gone_and_unacked_ones_return_when_the_channel_closes() {
    let broker = Broker::start();
    within(async {
        let connection = broker.connect().await;
        let owner = connection.create_channel().await.expect("channel.open");
        let queue = temp_queue(&owner).await;
        publish_numbers(&owner, &queue, 4).await;

        let consuming = connection.create_channel().await.expect("channel.open");
        let mut consumer = consume(&consuming, &queue).await;
        let mut deliveries = Vec::new();
        for _ in 0..4 {
            deliveries.push(next_delivery(&mut consumer).await);
        }
        deliveries[0]
            .ack(BasicAckOptions::default())
            .await
            .expect("ack 0");
        deliveries[2]
            .ack(BasicAckOptions::default())
            .await
            .expect("ack 2");
        consuming
            .close(200, "bye".into())
            .await
            .expect("channel.close");

        // 1 and 3 were never acked: back in the queue, flagged as redelivered, in order.
        let first = get(&owner, &queue).await.expect("message 1 requeued");
        assert_eq!(first.delivery.data, [1]);
        assert!(first.delivery.redelivered);
        let second = get(&owner, &queue).await.expect("message 3 requeued");
        assert_eq!(second.delivery.data, [3]);
        assert!(second.delivery.redelivered);
        assert!(get(&owner, &queue).await.is_none());
    })
    .await;
}

#[tokio::test]
async fn no_ack_consumer_ignores_prefetch() {
    let broker = Broker::start();
    within(async {
        let (_connection, channel) = broker.channel().await;
        let queue = temp_queue(&channel).await;
        publish_numbers(&channel, &queue, 20).await;
        channel
            .basic_qos(2, BasicQosOptions::default())
            .await
            .expect("basic.qos");
        let mut consumer = channel
            .basic_consume(
                queue.as_str().into(),
                "".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("basic.consume");
        for i in 0..20u8 {
            assert_eq!(next_delivery(&mut consumer).await.data, [i]);
        }
        assert_eq!(message_count(&channel, &queue).await, 0);
    })
    .await;
}
