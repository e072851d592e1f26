//! Many channels on one connection work independently.

use std::collections::HashSet;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use warren_e2e::{amqp_error, get, temp_queue, unique_name, within, Broker};

const CHANNELS: usize = 200;

#[tokio::test]
async fn two_hundred_channels_each_route_their_own_messages() {
    let broker = Broker::start();
    within(async {
        let connection = broker.connect().await;
        let mut channels = Vec::with_capacity(CHANNELS);
        for i in 0..CHANNELS {
            let channel = connection
                .create_channel()
                .await
                .unwrap_or_else(|e| panic!("channel.open #{i}: {e}"));
            channels.push(channel);
        }
        let ids: HashSet<u16> = channels.iter().map(|c| c.id()).collect();
        assert_eq!(ids.len(), CHANNELS, "channel ids are distinct");

        let mut queues = Vec::with_capacity(CHANNELS);
        for (i, channel) in channels.iter().enumerate() {
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .expect("confirm.select");
            let queue = temp_queue(channel).await;
            channel
                .basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    BasicPublishOptions::default(),
                    format!("message {i}").as_bytes(),
                    BasicProperties::default(),
                )
                .await
                .expect("basic.publish");
            queues.push(queue);
        }
        for channel in &channels {
            assert!(channel
                .wait_for_confirms()
                .await
                .expect("confirms")
                .is_empty());
        }
        // Read each queue through a different channel than the one that filled it.
        for (i, queue) in queues.iter().enumerate() {
            let reader = &channels[(i + 1) % CHANNELS];
            let message = get(reader, queue)
                .await
                .unwrap_or_else(|| panic!("queue {i} empty"));
            assert_eq!(message.delivery.data, format!("message {i}").as_bytes());
        }
        for (i, channel) in channels.iter().enumerate() {
            channel
                .close(200, "bye".into())
                .await
                .unwrap_or_else(|e| panic!("channel.close #{i}: {e}"));
        }
        assert!(connection.status().connected());
        let fresh = connection
            .create_channel()
            .await
            .expect("channel.open after closing all");
        temp_queue(&fresh).await;
    })
    .await;
}

#[tokio::test]
async fn an_error_on_one_channel_leaves_its_siblings_open() {
    let broker = Broker::start();
    within(async {
        let connection = broker.connect().await;
        let mut channels = Vec::new();
        for _ in 0..10 {
            channels.push(connection.create_channel().await.expect("channel.open"));
        }
        let error = channels[4]
            .queue_declare(
                unique_name("missing").as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect_err("passive declare of a missing queue");
        assert_eq!(amqp_error(&error).map(|(code, _)| code), Some(404));
        for (i, channel) in channels.iter().enumerate() {
            assert_eq!(channel.status().connected(), i != 4, "channel #{i}");
        }
        for (i, channel) in channels.iter().enumerate().filter(|&(i, _)| i != 4) {
            let queue = temp_queue(channel).await;
            assert!(get(channel, &queue).await.is_none(), "channel #{i}");
        }
    })
    .await;
}
