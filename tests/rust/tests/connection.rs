//! Connection and channel lifecycle, queue declaration.

use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use warren_e2e::{eventually, message_count, temp_queue, unique_name, within, Broker};

#[tokio::test]
async fn connects_opens_a_channel_and_closes_cleanly() {
    let broker = Broker::start();
    within(async {
        let connection = broker.connect().await;
        assert!(connection.status().connected());
        assert_eq!(connection.status().vhost().as_str(), "/");

        let channel = connection.create_channel().await.expect("channel.open");
        assert!(channel.status().connected());
        assert_ne!(channel.id(), 0, "channel 0 is the connection's own");

        channel
            .close(200, "bye".into())
            .await
            .expect("channel.close");
        assert!(!channel.status().connected());

        connection
            .close(200, "bye".into())
            .await
            .expect("connection.close");
        // lapin resolves close() on close-ok and marks the connection closed from its own
        // background task just after, so the status is checked until it settles. (Were the
        // broker to drop the socket right after close-ok, lapin would see the EOF first and
        // settle on Error: RabbitMQ waits for the client to close, and so must Warren.)
        eventually("connection status is closed", || {
            connection.status().closed()
        })
        .await;
    })
    .await;
}

#[tokio::test]
async fn declare_reports_the_queue_name_and_counts() {
    let broker = Broker::start();
    within(async {
        let (_connection, channel) = broker.channel().await;
        let name = unique_name("declare");
        let queue = channel
            .queue_declare(
                name.as_str().into(),
                QueueDeclareOptions {
                    exclusive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("queue.declare");
        assert_eq!(queue.name().as_str(), name);
        assert_eq!(queue.message_count(), 0);
        assert_eq!(queue.consumer_count(), 0);

        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirm.select");
        for i in 0..3u8 {
            channel
                .basic_publish(
                    "".into(),
                    name.as_str().into(),
                    BasicPublishOptions::default(),
                    &[i],
                    BasicProperties::default(),
                )
                .await
                .expect("basic.publish");
        }
        channel.wait_for_confirms().await.expect("confirms");

        // Redeclaring with the same flags is a no-op that reports the counts.
        let again = channel
            .queue_declare(
                name.as_str().into(),
                QueueDeclareOptions {
                    exclusive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("identical redeclare");
        assert_eq!(again.message_count(), 3);
        assert_eq!(message_count(&channel, &name).await, 3);

        let _consumer = channel
            .basic_consume(
                name.as_str().into(),
                "counted".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("basic.consume");
        let passive = channel
            .queue_declare(
                name.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("passive declare");
        assert_eq!(passive.consumer_count(), 1);
    })
    .await;
}

#[tokio::test]
async fn server_named_queues_get_distinct_names() {
    let broker = Broker::start();
    within(async {
        let (_connection, channel) = broker.channel().await;
        let first = temp_queue(&channel).await;
        let second = temp_queue(&channel).await;
        assert_ne!(first, second);
        assert_eq!(message_count(&channel, &first).await, 0);
    })
    .await;
}
