//! Direct reply-to (RabbitMQ's `amq.rabbitmq.reply-to`): RPC replies go straight to the
//! requesting channel's consumer without a reply queue.
//!
//! A client consumes (no-ack) from the pseudo-queue `amq.rabbitmq.reply-to`, then publishes
//! requests with `reply_to = "amq.rabbitmq.reply-to"`; the broker rewrites that to a
//! channel-specific address `amq.rabbitmq.reply-to.<key>`. A reply published to the default
//! exchange with that address as routing key is delivered to the consumer directly.

use bytes::Bytes;

use super::{Broker, ConnId, Event, Message};
use crate::channel_fault;
use crate::codec::{BasicConsume, BasicConsumeOk, BasicProperties, ShortStr};
use crate::reply::Fault;

/// The pseudo-queue a requester consumes from and names in `reply_to`.
pub const REPLY_TO: &str = "amq.rabbitmq.reply-to";
/// Prefix of the per-channel reply addresses.
pub const REPLY_TO_PREFIX: &str = "amq.rabbitmq.reply-to.";

/// Property flag bit of `reply_to` (AMQP 0-9-1 §4.2.6.1, basic properties in order).
const REPLY_TO_FLAG: u16 = 1 << 9;

impl Broker {
    /// `basic.consume` on `amq.rabbitmq.reply-to`.
    pub(crate) fn consume_reply_to(
        &mut self,
        conn: ConnId,
        channel: u16,
        m: &BasicConsume,
    ) -> Result<(), Fault> {
        if !m.no_ack {
            return Err(channel_fault!(
                PRECONDITION_FAILED,
                "reply consumer cannot acknowledge"
            ));
        }
        let tag = if m.consumer_tag.is_empty() {
            ShortStr::from(self.rng.name("amq.ctag-"))
        } else {
            m.consumer_tag.clone()
        };
        let key = ShortStr::from(self.rng.name(""));
        let ch = self.channel_mut(conn, channel)?;
        if ch.reply_consumer.is_some() {
            return Err(channel_fault!(
                PRECONDITION_FAILED,
                "reply consumer already set"
            ));
        }
        ch.reply_consumer = Some((tag.clone(), key.clone()));
        self.reply_routes.insert(key, (conn, channel));
        if !m.no_wait {
            self.reply(conn, channel, BasicConsumeOk { consumer_tag: tag });
        }
        Ok(())
    }

    /// Forgets a channel's reply consumer (cancel, channel close).
    pub(crate) fn drop_reply_consumer(&mut self, key: &ShortStr) {
        self.reply_routes.remove(key);
    }

    /// Rewrites `reply_to = amq.rabbitmq.reply-to` to this channel's reply address.
    pub(crate) fn rewrite_reply_to(
        &mut self,
        conn: ConnId,
        channel: u16,
        message: Message,
    ) -> Result<Message, Fault> {
        let properties = message.properties();
        let flags = properties
            .get(..2)
            .map_or(0, |f| u16::from_be_bytes([f[0], f[1]]));
        if flags & REPLY_TO_FLAG == 0 {
            return Ok(message);
        }
        let Ok(mut props) = BasicProperties::decode(properties) else {
            return Ok(message);
        };
        if props.reply_to.as_deref() != Some(REPLY_TO) {
            return Ok(message);
        }
        let ch = self.channel_mut(conn, channel)?;
        let Some((_, key)) = ch.reply_consumer.as_ref() else {
            return Err(channel_fault!(
                PRECONDITION_FAILED,
                "fast reply consumer does not exist"
            ));
        };
        let mut address = alloc::string::String::from(REPLY_TO_PREFIX);
        address.push_str(key);
        props.reply_to = Some(ShortStr::from(address));
        let mut raw = alloc::vec::Vec::with_capacity(properties.len() + 32);
        props.encode(&mut raw);
        Ok(Message::new(
            message.exchange().clone(),
            message.routing_key().clone(),
            Bytes::from(raw),
            message.body().clone(),
        ))
    }

    /// Delivers a reply published to a reply address. False when nobody waits for it.
    pub(crate) fn deliver_reply(&mut self, message: &Message) -> bool {
        let Some(key) = message.routing_key().strip_prefix(REPLY_TO_PREFIX) else {
            return false;
        };
        let Some(&(conn, channel)) = self.reply_routes.get(key) else {
            return false;
        };
        let Ok(ch) = self.channel_mut(conn, channel) else {
            return false;
        };
        let Some((tag, _)) = ch.reply_consumer.clone() else {
            return false;
        };
        let delivery_tag = ch.take_tag();
        // Never held back (nothing could queue it), but counted like any delivery so the
        // connection's returned credit matches.
        if let Some(c) = self.conns.get_mut(&conn) {
            c.charge(message);
        }
        self.emit(
            conn,
            Event::Deliver {
                channel,
                consumer_tag: tag,
                delivery_tag,
                redelivered: false,
                message: message.clone(),
            },
        );
        true
    }

    /// Whether `name` is a live reply address (for a passive `queue.declare`).
    pub(crate) fn is_reply_address(&self, name: &str) -> bool {
        name == REPLY_TO
            || name
                .strip_prefix(REPLY_TO_PREFIX)
                .is_some_and(|key| self.reply_routes.contains_key(key))
    }
}
