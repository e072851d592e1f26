//! `basic.nack` and `basic.reject`: requeued messages come back flagged as redelivered.

use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions,
    BasicRejectOptions, ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Consumer};
use std::time::Duration;
use warren_e2e::{assert_no_delivery, message_count, next_delivery, temp_queue, within, Broker};

async fn publish(channel: &Channel, queue: &str, bodies: &[&[u8]]) {
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    for body in bodies {
        channel
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default().with_correlation_id("c".into()),
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
async fn nack_with_requeue_redelivers_with_the_redelivered_flag() {
    let broker = Broker::start();
    within(async {
        let (_connection, channel) = broker.channel().await;
        let queue = temp_queue(&channel).await;
        publish(&channel, &queue, &[b"again"]).await;
        let mut consumer = consume(&channel, &queue).await;

        let first = next_delivery(&mut consumer).await;
        assert_eq!(first.data, b"again");
        assert!(!first.redelivered);
        first
            .nack(BasicNackOptions {
                requeue: true,
                multiple: false,
            })
            .await
            .expect("basic.nack");

        let second = next_delivery(&mut consumer).await;
        assert_eq!(second.data, b"again");
        assert!(
            second.redelivered,
            "a requeued message is flagged redelivered"
        );
        assert_ne!(
            second.delivery_tag, first.delivery_tag,
            "each delivery gets a new tag"
        );
        assert_eq!(second.properties, first.properties);
        second
            .ack(BasicAckOptions::default())
            .await
            .expect("basic.ack");

        assert_no_delivery(&mut consumer, Duration::from_millis(200)).await;
        assert_eq!(message_count(&channel, &queue).await, 0);
    })
    .await;
}

#[tokio::test]
async fn nack_multiple_requeues_everything_up_to_the_tag_in_order() {
    let broker = Broker::start();
    within(async {
        let (_connection, channel) = broker.channel().await;
        let queue = temp_queue(&channel).await;
        publish(&channel, &queue, &[b"0", b"1", b"2"]).await;
        let mut consumer = consume(&channel, &queue).await;
        let mut first_round = Vec::new();
        for _ in 0..3 {
            first_round.push(next_delivery(&mut consumer).await);
        }
        first_round[2]
            .nack(BasicNackOptions {
                requeue: true,
                multiple: true,
            })
            .await
            .expect("basic.nack multiple");

        for expected in [b"0", b"1", b"2"] {
            let delivery = next_delivery(&mut consumer).await;
            assert_eq!(delivery.data, expected);
            assert!(delivery.redelivered);
            delivery
                .ack(BasicAckOptions::default())
                .await
                .expect("basic.ack");
        }
        assert_no_delivery(&mut consumer, Duration::from_millis(200)).await;
    })
    .await;
}

#[tokio::test]
async fn reject_with_requeue_redelivers_and_without_requeue_drops() {
    let broker = Broker::start();
    within(async {
        let (_connection, channel) = broker.channel().await;
        let queue = temp_queue(&channel).await;
        publish(&channel, &queue, &[b"doomed"]).await;
        let mut consumer = consume(&channel, &queue).await;

        let first = next_delivery(&mut consumer).await;
        first
            .reject(BasicRejectOptions { requeue: true })
            .await
            .expect("basic.reject");
        let second = next_delivery(&mut consumer).await;
        assert_eq!(second.data, b"doomed");
        assert!(second.redelivered);

        second
            .reject(BasicRejectOptions { requeue: false })
            .await
            .expect("basic.reject");
        assert_no_delivery(&mut consumer, Duration::from_millis(300)).await;
        assert_eq!(message_count(&channel, &queue).await, 0);
    })
    .await;
}

#[tokio::test]
async fn nack_without_requeue_drops_the_message() {
    let broker = Broker::start();
    within(async {
        let (_connection, channel) = broker.channel().await;
        let queue = temp_queue(&channel).await;
        publish(&channel, &queue, &[b"gone", b"kept"]).await;
        let mut consumer = consume(&channel, &queue).await;
        let gone = next_delivery(&mut consumer).await;
        assert_eq!(gone.data, b"gone");
        gone.nack(BasicNackOptions {
            requeue: false,
            multiple: false,
        })
        .await
        .expect("basic.nack");
        let kept = next_delivery(&mut consumer).await;
        assert_eq!(kept.data, b"kept");
        assert!(!kept.redelivered);
        kept.ack(BasicAckOptions::default())
            .await
            .expect("basic.ack");
        assert_no_delivery(&mut consumer, Duration::from_millis(300)).await;
    })
    .await;
}
