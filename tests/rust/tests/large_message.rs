//! Bodies larger than one frame are split into body frames and reassembled intact.

use lapin::options::{BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};
use warren_e2e::{get, next_delivery, temp_queue, within, Broker};

const MIB: usize = 1024 * 1024;

/// A body whose every byte depends on its position, so a lost, repeated or reordered frame
/// shows.
fn patterned(len: usize, seed: u32) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed) >> 13) as u8)
        .collect()
}

async fn publish_confirmed(channel: &Channel, queue: &str, body: &[u8]) {
    let confirmation = channel
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default().with_content_type("application/octet-stream".into()),
        )
        .await
        .expect("basic.publish")
        .await
        .expect("publisher confirm");
    assert!(confirmation.is_ack());
}

#[tokio::test]
async fn one_mebibyte_message_round_trips_through_a_consumer() {
    let broker = Broker::start();
    within(async {
        let (connection, channel) = broker.channel().await;
        let frame_max = connection.configuration().frame_max() as usize;
        assert!(
            frame_max > 0 && frame_max < MIB,
            "negotiated frame_max {frame_max}"
        );
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirm.select");
        let queue = temp_queue(&channel).await;
        let body = patterned(MIB, 1);
        publish_confirmed(&channel, &queue, &body).await;

        let mut consumer = channel
            .basic_consume(
                queue.as_str().into(),
                "big".into(),
                BasicConsumeOptions {
                    no_ack: true,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .expect("basic.consume");
        let delivery = next_delivery(&mut consumer).await;
        assert_eq!(delivery.data.len(), MIB);
        assert!(delivery.data == body, "the 1 MiB body came back altered");
        assert_eq!(
            delivery
                .properties
                .content_type()
                .as_ref()
                .map(|s| s.as_str()),
            Some("application/octet-stream")
        );
    })
    .await;
}

#[tokio::test]
async fn bodies_around_the_frame_size_round_trip_through_get() {
    let broker = Broker::start();
    within(async {
        let (connection, channel) = broker.channel().await;
        // A body frame carries at most frame_max - 8 bytes (7 of header, 1 frame-end).
        let chunk = connection.configuration().frame_max() as usize - 8;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .expect("confirm.select");
        let queue = temp_queue(&channel).await;
        let sizes = [
            1,
            chunk - 1,
            chunk,
            chunk + 1,
            2 * chunk,
            2 * chunk + 1,
            MIB + 3,
        ];
        for (i, &len) in sizes.iter().enumerate() {
            publish_confirmed(&channel, &queue, &patterned(len, i as u32)).await;
        }
        for (i, &len) in sizes.iter().enumerate() {
            let message = get(&channel, &queue)
                .await
                .unwrap_or_else(|| panic!("message {i}"));
            assert_eq!(message.delivery.data.len(), len, "message {i}");
            assert!(
                message.delivery.data == patterned(len, i as u32),
                "message {i} ({len} bytes) altered"
            );
        }
    })
    .await;
}
