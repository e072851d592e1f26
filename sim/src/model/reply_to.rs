//! Direct reply-to, as RabbitMQ documents it: a channel consumes (no-ack) from the pseudo-queue
//! `amq.rabbitmq.reply-to`; a request it publishes with `reply_to = amq.rabbitmq.reply-to`
//! carries instead an address `amq.rabbitmq.reply-to.<key>` naming that channel; a reply
//! published to the default exchange with that address as routing key goes straight to the
//! consumer (no queue, no ack, never redelivered), or nowhere once the consumer is gone.
//!
//! The key is the broker's choice. The model writes a placeholder into the request's
//! properties (`\0reply<N>` for reply consumer N) and learns the key the first time a
//! message carrying it comes out of the broker; after that every such message, and every
//! reply, must agree with it.

use bytes::Bytes;
use warren_core::codec::{BasicConsume, BasicConsumeOk, BasicProperties, ShortStr};
use warren_core::{ConnId, Message};

use super::{ch_err, Fault, Model, MsgId};

/// The pseudo-queue a requester consumes from, and names in `reply_to`.
pub const REPLY_TO: &str = "amq.rabbitmq.reply-to";
/// The addresses the broker writes into requests.
pub const REPLY_TO_PREFIX: &str = "amq.rabbitmq.reply-to.";
/// How the model marks a request's reply address until it learns the broker's key.
const PLACEHOLDER: &str = "\u{0}reply";

/// A channel's reply consumer: its tag, and the model's number for it.
#[derive(Clone, Debug)]
pub(super) struct ReplyConsumer {
    pub tag: ShortStr,
    pub id: u64,
}

/// A reply the broker must deliver, to this connection and channel.
#[derive(Clone)]
pub(super) struct PendingReply {
    conn: ConnId,
    channel: u16,
    msg: MsgId,
}

impl Model {
    /// `basic.consume` from `amq.rabbitmq.reply-to`.
    pub(super) fn consume_reply_to(
        &mut self,
        conn: ConnId,
        ch: u16,
        m: &BasicConsume,
    ) -> Result<(), Fault> {
        if !m.no_ack {
            return Err(ch_err(406, "reply consumer cannot acknowledge"));
        }
        if self.chan(conn, ch).reply.is_some() {
            return Err(ch_err(406, "reply consumer already set"));
        }
        self.next_reply += 1;
        let id = self.next_reply;
        self.chan(conn, ch).reply = Some(ReplyConsumer {
            tag: m.consumer_tag.clone(),
            id,
        });
        self.reply(
            conn,
            ch,
            BasicConsumeOk {
                consumer_tag: m.consumer_tag.clone(),
            },
        );
        Ok(())
    }

    /// A request's properties as the broker must deliver them: `reply_to` names this
    /// channel's reply consumer (a placeholder until the key is learned). None when the
    /// message asks for no direct reply; an error when the channel has no reply consumer.
    pub(super) fn request_properties(
        &self,
        conn: ConnId,
        ch: u16,
        props: &[u8],
    ) -> Result<Option<Bytes>, Fault> {
        let Ok(mut p) = BasicProperties::decode(props) else {
            return Ok(None);
        };
        if p.reply_to.as_deref() != Some(REPLY_TO) {
            return Ok(None);
        }
        let Some(r) = self.conns[&conn].channels[&ch].reply.as_ref() else {
            return Err(ch_err(406, "fast reply consumer does not exist"));
        };
        p.reply_to = Some(ShortStr::from(format!("{PLACEHOLDER}{}", r.id)));
        let mut raw = Vec::new();
        p.encode(&mut raw);
        Ok(Some(Bytes::from(raw)))
    }

    /// A publish of message `msg` to a reply address: delivered to the reply consumer that
    /// owns `key` if it is still there, else returned when mandatory. Never part of a
    /// transaction, never queued.
    pub(super) fn publish_reply(
        &mut self,
        conn: ConnId,
        ch: u16,
        mandatory: bool,
        msg: MsgId,
        key: &str,
    ) -> Result<(), Fault> {
        self.published += 1;
        let owner = self
            .reply_keys
            .borrow()
            .iter()
            .find(|(_, k)| k.as_str() == key)
            .map(|(id, _)| *id);
        let target = owner.and_then(|id| {
            self.conns.iter().find_map(|(cid, c)| {
                c.channels
                    .iter()
                    .find(|(_, chan)| chan.reply.as_ref().is_some_and(|r| r.id == id))
                    .map(|(n, _)| (*cid, *n))
            })
        });
        let (seq, _) = self.take_publish_seq(conn, ch, target.is_none() && mandatory, msg);
        match target {
            Some((conn, channel)) => {
                self.routed += 1;
                self.replies.push_back(PendingReply { conn, channel, msg });
            }
            None if mandatory => {
                if let Some(s) = seq {
                    let cf = self.chan(conn, ch).confirm.as_mut().expect("confirm mode");
                    cf.awaiting_return.insert(s);
                }
                self.expect_return(conn, ch, msg);
            }
            None => {}
        }
        Ok(())
    }

    /// Whether the oldest reply waiting for channel `ch` is message `id`.
    pub(super) fn reply_waiting(&self, conn: ConnId, ch: u16, id: MsgId) -> bool {
        self.replies
            .iter()
            .find(|r| r.conn == conn && r.channel == ch)
            .is_some_and(|r| self.msgs[&r.msg].id == id)
    }

    /// A delivery to channel `ch`'s reply consumer: the oldest reply waiting for it.
    pub(super) fn check_reply_delivery(
        &mut self,
        conn: ConnId,
        ch: u16,
        dtag: u64,
        redelivered: bool,
        message: &Message,
    ) -> Result<(), String> {
        let Some(pos) = self
            .replies
            .iter()
            .position(|r| r.conn == conn && r.channel == ch)
        else {
            return Err(format!(
                "a reply delivered to channel {ch} of connection {}, which no publish sent there",
                conn.0
            ));
        };
        let msg = self.replies[pos].msg;
        if redelivered {
            return Err(format!(
                "reply {} delivered as redelivered",
                self.msgs[&msg].id
            ));
        }
        let next = self.chan(conn, ch).next_tag;
        if dtag != next {
            return Err(format!(
                "reply delivery tag {dtag} on channel {ch}, expected {next}"
            ));
        }
        if let Some(diff) = self.differs_from(msg, message) {
            return Err(format!(
                "reply {} delivered otherwise than it was published: {diff}",
                self.msgs[&msg].id
            ));
        }
        self.replies.remove(pos);
        self.charge_window(conn, message);
        self.chan(conn, ch).next_tag += 1;
        self.delivered += 1;
        Ok(())
    }

    /// Replies published but not delivered by the end of the command.
    pub(super) fn undelivered_reply(&self) -> Option<String> {
        self.replies.front().map(|r| {
            format!(
                "reply {} to channel {} of connection {} was never delivered",
                self.msgs[&r.msg].id, r.channel, r.conn.0
            )
        })
    }

    /// The properties the model expects, with a placeholder reply address replaced by the
    /// one the broker wrote (learning the key on first sight, checking it after that).
    pub(super) fn resolve_reply_to(&self, expected: &Bytes, got: &[u8]) -> Result<Bytes, String> {
        let Ok(mut want) = BasicProperties::decode(expected) else {
            return Ok(expected.clone());
        };
        let Some(id) = want
            .reply_to
            .as_deref()
            .and_then(|t| t.strip_prefix(PLACEHOLDER))
            .and_then(|n| n.parse::<u64>().ok())
        else {
            return Ok(expected.clone());
        };
        let got_to = BasicProperties::decode(got).ok().and_then(|p| p.reply_to);
        let Some(key) = got_to
            .as_deref()
            .and_then(|t| t.strip_prefix(REPLY_TO_PREFIX))
            .filter(|k| !k.is_empty())
        else {
            return Err(format!(
                "reply_to {got_to:?} where the broker should have written a reply address"
            ));
        };
        let mut keys = self.reply_keys.borrow_mut();
        match keys.get(&id) {
            Some(k) if k.as_str() != key => {
                return Err(format!(
                    "reply address key '{key}', earlier '{k}' for the same reply consumer"
                ))
            }
            Some(_) => {}
            None => {
                if keys.values().any(|k| k.as_str() == key) {
                    return Err(format!(
                        "reply address key '{key}' given to two reply consumers"
                    ));
                }
                keys.insert(id, ShortStr::from(key));
            }
        }
        want.reply_to = got_to;
        let mut raw = Vec::new();
        want.encode(&mut raw);
        Ok(Bytes::from(raw))
    }
}
