//! Publisher confirms (RabbitMQ's `confirm.select` extension).

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::BasicProperties;
use warren_e2e::{drain_bodies, message_count, temp_queue, within, Broker};

const MESSAGES: u32 = 1000;

#[tokio::test]
async fn every_one_of_a_thousand_publishes_is_acked() {
    let broker = Broker::start();
    within(async {
        let (_connection, channel) = broker.channel().await;
        let queue = temp_queue(&channel).await;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirm.select");
        assert!(channel.status().confirm());

        let mut pending = Vec::with_capacity(MESSAGES as usize);
        for i in 0..MESSAGES {
            let confirm = channel
                .basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    BasicPublishOptions::default(),
                    &i.to_be_bytes(),
                    BasicProperties::default(),
                )
                .await
                .expect("basic.publish");
            pending.push(confirm);
        }
        for (i, confirm) in pending.into_iter().enumerate() {
            let confirmation = confirm.await.unwrap_or_else(|e| panic!("confirm {i}: {e}"));
            assert!(
                confirmation.is_ack(),
                "publish {i} was not acked: {confirmation:?}"
            );
            assert!(
                confirmation.take_message().is_none(),
                "publish {i} was returned"
            );
        }
        assert_eq!(message_count(&channel, &queue).await, MESSAGES);

        let bodies = drain_bodies(&channel, &queue).await;
        let expected: Vec<Vec<u8>> = (0..MESSAGES).map(|i| i.to_be_bytes().to_vec()).collect();
        assert_eq!(bodies, expected);
    })
    .await;
}

#[tokio::test]
async fn wait_for_confirms_covers_every_outstanding_publish() {
    let broker = Broker::start();
    within(async {
        let (_connection, channel) = broker.channel().await;
        let queue = temp_queue(&channel).await;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirm.select");
        for i in 0..MESSAGES {
            // Dropping the PublisherConfirm does not cancel the confirm.
            let _unawaited = channel
                .basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    BasicPublishOptions::default(),
                    &i.to_le_bytes(),
                    BasicProperties::default(),
                )
                .await
                .expect("basic.publish");
        }
        let returned = channel
            .wait_for_confirms()
            .await
            .expect("wait for confirms");
        assert!(returned.is_empty());
        assert_eq!(message_count(&channel, &queue).await, MESSAGES);
    })
    .await;
}

#[tokio::test]
async fn unroutable_mandatory_publish_is_returned_then_acked() {
    let broker = Broker::start();
    within(async {
        let (_connection, channel) = broker.channel().await;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirm.select");
        let routing_key = warren_e2e::unique_name("nowhere");
        let confirmation = channel
            .basic_publish(
                "".into(),
                routing_key.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                b"lost",
                BasicProperties::default().with_message_id("m-1".into()),
            )
            .await
            .expect("basic.publish")
            .await
            .expect("publisher confirm");
        // An unroutable message is not an error: the broker returns it, then acks it.
        assert!(confirmation.is_ack());
        let returned = confirmation
            .take_message()
            .expect("basic.return before the ack");
        assert_eq!(returned.reply_code, 312);
        assert_eq!(returned.reply_text.as_str(), "NO_ROUTE");
        assert_eq!(returned.delivery.routing_key.as_str(), routing_key);
        assert_eq!(returned.delivery.data, b"lost");
        assert_eq!(
            returned
                .delivery
                .properties
                .message_id()
                .as_ref()
                .map(|s| s.as_str()),
            Some("m-1")
        );
    })
    .await;
}

#[tokio::test]
async fn unroutable_publish_without_mandatory_is_acked_and_dropped() {
    let broker = Broker::start();
    within(async {
        let (_connection, channel) = broker.channel().await;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirm.select");
        let confirmation = channel
            .basic_publish(
                "".into(),
                warren_e2e::unique_name("nowhere").as_str().into(),
                BasicPublishOptions::default(),
                b"dropped",
                BasicProperties::default(),
            )
            .await
            .expect("basic.publish")
            .await
            .expect("publisher confirm");
        assert!(confirmation.is_ack());
        assert!(confirmation.take_message().is_none());
    })
    .await;
}
