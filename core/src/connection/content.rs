//! Content assembly: a `basic.publish` method frame, its content header, then body frames
//! until the header's size, become one `Command::Publish` (a lone body frame is kept as a
//! slice of the read buffer, never copied).

use bytes::{Bytes, BytesMut};

use super::channels::ChannelState;
use super::{Connection, State};
use crate::codec::{
    check_properties, encode_method_frame, BasicAck, BasicNack, BasicPublish, BasicReject,
    ConnectionBlocked, ContentHeader,
};
use crate::message::Message;
use crate::reply::Fault;
use crate::vocab::{Command, PublishFlags};
use crate::{channel_fault, connection_fault};

/// A publish waiting for its content header and body frames.
pub(super) struct PendingContent {
    publish: BasicPublish,
    header: Option<ContentHeader>,
    body: BytesMut,
    /// A lone body frame kept as-is, so single-frame messages are never copied.
    single: Option<Bytes>,
    received: u64,
    /// Larger than max_message_size: its body frames are counted, not kept, and the publish
    /// is refused once the last is in (RabbitMQ 3.10 refuses it only then).
    oversized: bool,
}

impl PendingContent {
    /// Content for `publish`, waiting for its header.
    pub(super) fn new(publish: BasicPublish) -> Self {
        PendingContent {
            publish,
            header: None,
            body: BytesMut::new(),
            single: None,
            received: 0,
            oversized: false,
        }
    }

    /// What RabbitMQ says when a frame other than the next one of this content comes:
    /// UNEXPECTED_FRAME, naming the publish.
    pub(super) fn interrupted(&self) -> Fault {
        let fault = if self.header.is_some() {
            connection_fault!(
                UNEXPECTED_FRAME,
                "expected content body, got non content body frame instead"
            )
        } else {
            connection_fault!(
                UNEXPECTED_FRAME,
                "expected content header for class 60, got non content header frame instead"
            )
        };
        fault.caused_by(BasicPublish::CLASS_ID, BasicPublish::METHOD_ID)
    }
}

impl Connection {
    /// The publish a content header or body frame continues. `None`: the frame is dropped
    /// (the connection or the channel is closing); a frame on a channel with no publish in
    /// progress is UNEXPECTED_FRAME, as RabbitMQ words it.
    fn content_in_progress(&mut self, channel: u16) -> Result<Option<&mut PendingContent>, Fault> {
        if self.state == State::Closing {
            return Ok(None);
        }
        let Some(ch) = self.open_channel(channel) else {
            return Err(unexpected_content_frame());
        };
        if ch.state != ChannelState::Open {
            return Ok(None);
        }
        ch.content
            .as_mut()
            .map(Some)
            .ok_or_else(unexpected_content_frame)
    }

    pub(super) fn handle_header(&mut self, channel: u16, payload: Bytes) -> Result<(), Fault> {
        let max = self.config.max_message_size;
        let Some(pending) = self.content_in_progress(channel)? else {
            return Ok(());
        };
        if pending.header.is_some() {
            return Err(pending.interrupted());
        }
        let class_id = payload
            .first_chunk::<2>()
            .map_or(0, |c| u16::from_be_bytes(*c));
        let weight = payload
            .get(2..4)
            .map_or(0, |c| u16::from_be_bytes([c[0], c[1]]));
        if class_id != BasicPublish::CLASS_ID {
            return Err(connection_fault!(
                UNEXPECTED_FRAME,
                "expected content header for class 60, got one for class {class_id} instead"
            )
            .caused_by(BasicPublish::CLASS_ID, BasicPublish::METHOD_ID));
        }
        if weight != 0 {
            return Err(pending.interrupted());
        }
        let header = ContentHeader::decode(payload).map_err(|e| {
            Fault::connection(crate::reply::ReplyCode(e.reply_code()), format_args!("{e}"))
        })?;
        // Properties that do not decode close the connection before the message goes
        // anywhere (RabbitMQ: 541, with no more said).
        if check_properties(&header.properties).is_err() {
            // Its text is the bare name: no " - " and nothing after.
            let mut fault = connection_fault!(INTERNAL_ERROR, "");
            fault.text = "INTERNAL_ERROR".into();
            return Err(fault);
        }
        let body_size = header.body_size;
        pending.oversized = body_size > max;
        pending.header = Some(header);
        if body_size == 0 {
            self.complete_publish(channel);
        }
        Ok(())
    }

    pub(super) fn handle_body(&mut self, channel: u16, payload: Bytes) -> Result<(), Fault> {
        let Some(pending) = self.content_in_progress(channel)? else {
            return Ok(());
        };
        let Some(size) = pending.header.as_ref().map(|h| h.body_size) else {
            return Err(pending.interrupted());
        };
        let len = payload.len() as u64;
        if pending.received + len > size {
            return Err(connection_fault!(
                FRAME_ERROR,
                "content body is {} bytes longer than its header said",
                pending.received + len - size
            ));
        }
        if pending.oversized {
            // Counted, never kept: a header may announce any size.
        } else if pending.received == 0 && len == size {
            pending.single = Some(payload);
        } else {
            if pending.body.is_empty() {
                // Sized by the header, which is at most max_message_size.
                pending.body.reserve(size as usize);
            }
            pending.body.extend_from_slice(&payload);
        }
        pending.received += len;
        if pending.received == size {
            self.complete_publish(channel);
        }
        Ok(())
    }

    fn complete_publish(&mut self, channel: u16) {
        let Some(ch) = self.open_channel(channel) else {
            return;
        };
        let Some(pending) = ch.content.take() else {
            return;
        };
        let Some(header) = pending.header else {
            return;
        };
        if pending.oversized {
            let (size, max) = (header.body_size, self.config.max_message_size);
            // A channel error: the channel closes.
            let fault = channel_fault!(
                PRECONDITION_FAILED,
                "message size {size} is larger than configured max size {max}"
            )
            .caused_by(BasicPublish::CLASS_ID, BasicPublish::METHOD_ID);
            self.send_channel_close(channel, &fault);
            // The broker must also forget the channel (requeue its unacked messages).
            self.commands.push_back(Command::ChannelGone { channel });
            return;
        }
        let body = match pending.single {
            Some(b) => b,
            None => pending.body.freeze(),
        };
        let PendingContent { publish, .. } = pending;
        self.commands.push_back(Command::Publish {
            channel,
            flags: PublishFlags {
                mandatory: publish.mandatory,
                immediate: publish.immediate,
            },
            message: Message::new(
                publish.exchange,
                publish.routing_key,
                header.properties,
                body,
            ),
        });
        if let Some(reason) = self.alarm.clone() {
            if !self.blocked {
                self.blocked = true;
                if self.capabilities.connection_blocked {
                    let blocked = ConnectionBlocked { reason };
                    encode_method_frame(&mut self.output, 0, &blocked.into());
                }
            }
        }
    }
}

/// `basic.publish`, `basic.ack`, `basic.reject` and `basic.nack`: the per-message methods,
/// decoded in place in the read buffer (see `handle_frame`).
fn unexpected_content_frame() -> Fault {
    connection_fault!(
        UNEXPECTED_FRAME,
        "expected method frame, got non method frame instead"
    )
}

pub(super) fn is_hot_method(payload: &[u8]) -> bool {
    const HOT: [u16; 4] = [
        BasicPublish::METHOD_ID,
        BasicAck::METHOD_ID,
        BasicReject::METHOD_ID,
        BasicNack::METHOD_ID,
    ];
    match payload {
        [c0, c1, m0, m1, ..] if u16::from_be_bytes([*c0, *c1]) == BasicPublish::CLASS_ID => {
            HOT.contains(&u16::from_be_bytes([*m0, *m1]))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{BasicConsume, Method, QueueDeclare};
    use alloc::vec::Vec;

    #[test]
    fn only_per_message_methods_are_decoded_in_place() {
        let payload = |m: Method| {
            let mut out = Vec::new();
            m.encode(&mut out);
            out
        };
        assert!(is_hot_method(&payload(BasicPublish::default().into())));
        assert!(is_hot_method(&payload(BasicAck::default().into())));
        assert!(!is_hot_method(&payload(QueueDeclare::default().into())));
        assert!(!is_hot_method(&payload(BasicConsume::default().into())));
        assert!(!is_hot_method(&[0, 60]));
    }
}
