//! Publishing: checks on the message, routing through exchanges (and exchange-to-exchange
//! bindings), enqueueing with TTL and length limits, confirms and mandatory returns
//! (AMQP 0-9-1 §1.8 basic.publish, RabbitMQ's confirm extension).

use super::permit::Resource;
use crate::access::Permission;
use alloc::vec::Vec;

use super::channel::TxOp;
use super::exchange::Destination;
use super::expiry::DeathReason;
use super::queue::{Overflow, QueueId, QueuedMessage, NEVER};
use super::reply_to::REPLY_TO_PREFIX;
use super::{Broker, Exchange, Message};
use crate::channel_fault;
use crate::codec::{
    peek_expiration, peek_headers, peek_user_id, BasicAck, BasicNack, BasicReturn, ConfirmSelectOk,
    FieldTable, Method, ShortStr,
};
use crate::connection_fault;
use crate::message::parse_expiration;
use crate::reply::Fault;
use crate::vocab::{ConnId, Event, PublishFlags};

impl Broker {
    pub(crate) fn publish(
        &mut self,
        conn: ConnId,
        channel: u16,
        p: PublishFlags,
        message: Message,
    ) -> Result<(), Fault> {
        let vhost = self.vhost_of(conn)?;
        let Some(ch) = self.conns.get(&conn).and_then(|c| c.channels.get(&channel)) else {
            // The channel was closed by a fault; this publish was already in flight.
            return Ok(());
        };
        if !ch.writes_anywhere {
            let exchange = message.exchange().as_str();
            self.permit(
                conn,
                channel,
                Permission::Write,
                Resource::Exchange,
                exchange,
            )?;
        }
        self.check_publish(conn, p, &message)?;
        let message = self.rewrite_reply_to(conn, channel, message)?;
        if message.exchange().is_empty()
            && message
                .routing_key()
                .as_bytes()
                .starts_with(REPLY_TO_PREFIX.as_bytes())
        {
            return self.publish_reply(conn, channel, p.mandatory, message);
        }
        let mut queues = core::mem::take(&mut self.route_scratch);
        queues.clear();
        let routed = self.route(&vhost, &message, true, &mut queues);
        if let Err(fault) = routed {
            self.route_scratch = queues;
            return Err(fault);
        }
        let result = self.publish_routed(conn, channel, p.mandatory, message, &queues);
        self.route_scratch = queues;
        result
    }

    /// What RabbitMQ refuses in a publish before routing it.
    fn check_publish(&self, conn: ConnId, p: PublishFlags, message: &Message) -> Result<(), Fault> {
        if p.immediate {
            return Err(connection_fault!(NOT_IMPLEMENTED, "immediate=true"));
        }
        self.check_user_id(conn, message.properties())?;
        if let Ok(Some(text)) = peek_expiration(message.properties()) {
            if let Err(reason) = parse_expiration(text) {
                return Err(channel_fault!(
                    PRECONDITION_FAILED,
                    "invalid expiration '{text}': {reason}"
                ));
            }
        }
        Ok(())
    }

    /// A routed publish: enqueued (or buffered by a transaction until commit), returned when
    /// unroutable and mandatory, and confirmed (or nacked, when a full queue refused it).
    fn publish_routed(
        &mut self,
        conn: ConnId,
        channel: u16,
        mandatory: bool,
        message: Message,
        queues: &[QueueId],
    ) -> Result<(), Fault> {
        let writes_before = self.storage.write_seq();
        let ch = self.channel_mut(conn, channel)?;
        let seq = ch.next_publish_seq;
        if let Some(s) = seq {
            ch.next_publish_seq = Some(s + 1);
        }
        let mut rejected = false;
        if let Some(tx) = ch.tx.as_mut() {
            // Routed now; enqueued, or returned when unroutable and mandatory, at commit.
            tx.push(TxOp::Publish {
                queues: queues.to_vec(),
                message,
                mandatory,
            });
        } else {
            if queues.is_empty() && mandatory {
                self.return_no_route(conn, channel, message.clone());
            }
            for &q in queues {
                rejected |= !self.enqueue(q, message.clone(), false);
                self.check_flow(conn, q);
            }
        }
        if let Some(seq) = seq {
            if rejected {
                // A full queue with x-overflow=reject-publish refuses it: the publisher is told.
                self.reply(
                    conn,
                    channel,
                    BasicNack {
                        delivery_tag: seq,
                        multiple: false,
                        requeue: false,
                    },
                );
            } else {
                let wait_for = self.writes_since(writes_before);
                self.confirm(conn, channel, seq, wait_for);
            }
        }
        Ok(())
    }

    /// A reply to a direct reply-to address: straight to the waiting consumer, or returned.
    fn publish_reply(
        &mut self,
        conn: ConnId,
        channel: u16,
        mandatory: bool,
        message: Message,
    ) -> Result<(), Fault> {
        let delivered = self.deliver_reply(&message);
        let ch = self.channel_mut(conn, channel)?;
        let seq = ch.next_publish_seq;
        if let Some(s) = seq {
            ch.next_publish_seq = Some(s + 1);
        }
        if !delivered && mandatory {
            self.return_no_route(conn, channel, message);
        }
        if let Some(seq) = seq {
            self.confirm(conn, channel, seq, 0);
        }
        Ok(())
    }

    pub(crate) fn return_no_route(&mut self, conn: ConnId, channel: u16, message: Message) {
        self.emit(
            conn,
            Event::Content {
                channel,
                method: BasicReturn {
                    reply_code: 312,
                    reply_text: ShortStr::from_static("NO_ROUTE"),
                    exchange: message.exchange().clone(),
                    routing_key: message.routing_key().clone(),
                }
                .into(),
                message,
            },
        );
    }

    /// A message may only claim the user that published it (RabbitMQ's validated user-id).
    fn check_user_id(&self, conn: ConnId, properties: &[u8]) -> Result<(), Fault> {
        let Ok(Some(claimed)) = peek_user_id(properties) else {
            return Ok(());
        };
        let user = self.conns.get(&conn).map_or("", |c| c.username.as_str());
        if claimed != user {
            return Err(channel_fault!(
                PRECONDITION_FAILED,
                "user_id property set to '{claimed}' but authenticated user was '{user}'"
            ));
        }
        Ok(())
    }

    /// Finds the queues a message goes to, following exchange-to-exchange bindings. Only a
    /// client's publish is refused at an internal exchange: dead letters go through one (as
    /// in RabbitMQ, whose internal flag is checked by the channel, not by routing).
    pub(crate) fn route(
        &mut self,
        vhost: &ShortStr,
        message: &Message,
        from_client: bool,
        out: &mut Vec<QueueId>,
    ) -> Result<(), Fault> {
        let v = &self.vhosts[vhost];
        let exchange = message.exchange();
        let rk = message.routing_key();
        if exchange.is_empty() {
            if let Some(id) = v.queues.get(rk) {
                out.push(*id);
            }
            return Ok(());
        }
        let ex = v.exchanges.get(exchange).ok_or_else(|| {
            channel_fault!(NOT_FOUND, "no exchange '{exchange}' in vhost '{vhost}'")
        })?;
        if from_client && ex.internal {
            return Err(channel_fault!(
                ACCESS_REFUSED,
                "cannot publish to internal exchange '{exchange}' in vhost '{vhost}'"
            ));
        }
        let mut headers: Option<Option<FieldTable>> = None;
        let mut get_headers = || -> Option<FieldTable> {
            headers
                .get_or_insert_with(|| peek_headers(message.properties()).ok().flatten())
                .clone()
        };
        let mut dests = core::mem::take(&mut self.dest_scratch);
        dests.clear();
        let mut visited: Vec<&Exchange> = Vec::new();
        let mut pending: Vec<&Exchange> = alloc::vec![ex];
        while let Some(ex) = pending.pop() {
            visited.push(ex);
            let start = dests.len();
            ex.route(rk, &mut get_headers, &mut dests);
            let mut i = start;
            while i < dests.len() {
                match &dests[i] {
                    Destination::Queue(q) => {
                        out.push(*q);
                        i += 1;
                    }
                    Destination::Exchange(name) => {
                        if let Some(next) = v.exchanges.get(name) {
                            if !visited
                                .iter()
                                .chain(pending.iter())
                                .any(|e| e.name == next.name)
                            {
                                pending.push(next);
                            }
                        }
                        dests.swap_remove(i);
                    }
                }
            }
            dests.truncate(start);
        }
        if out.len() > 1 {
            out.sort_unstable();
            out.dedup();
        }
        self.dest_scratch = dests;
        Ok(())
    }

    /// Appends a message to a queue (storing it when persistent and the queue durable),
    /// applying the queue's TTL and length limit. False when the queue refused it
    /// (`x-overflow = reject-publish[-dlx]` on a full queue).
    pub(crate) fn enqueue(&mut self, queue: QueueId, message: Message, redelivered: bool) -> bool {
        let expires_at = self.expiry_for(queue, &message);
        let Some(q) = self.queues.get_mut(&queue) else {
            return true;
        };
        if q.limits.overflow != Overflow::DropHead && q.is_full_for(message.body().len() as u64) {
            if q.limits.overflow == Overflow::RejectPublishDlx {
                self.dead_letter(queue, &message, DeathReason::MaxLen);
            }
            return false;
        }
        // A queue past its window writes every message to the store, transient ones too
        // (see `paging.rs`).
        let paged = q.pages_next(self.memory_pressure);
        let store_id = if paged || (message.is_persistent() && q.is_stored()) {
            self.next_store_id += 1;
            self.next_store_id - 1
        } else {
            0
        };
        let queued = QueuedMessage {
            message,
            redelivered,
            deliveries: 0,
            store_id,
            expires_at,
            seq: 0,
        };
        if store_id != 0 {
            self.storage
                .save_message(&q.vhost, &q.name, &q.record_of(&queued));
        }
        if paged {
            q.push_paged(queued, self.storage.write_seq());
            self.paging.insert(queue);
        } else {
            q.push_back(queued);
        }
        let has_consumers = !q.consumers.is_empty();
        let over = q.is_over_limits();
        if expires_at != NEVER {
            self.watch_time(queue);
        }
        if over {
            // A new head after a drop may be past its TTL: it goes now, as RabbitMQ's queue
            // looks at expiry whenever a length limit dropped its head.
            self.enforce_length(queue);
            self.expire_head(queue);
        }
        if has_consumers {
            self.dirty.push(queue);
        }
        true
    }

    /// Acks publish `seq` once the store is durable up to write `wait_for` (0: nothing to
    /// wait for), folding it into the previous ack for the same channel when it directly
    /// follows (one `basic.ack multiple=true` for a burst of publishes).
    fn confirm(&mut self, conn: ConnId, channel: u16, seq: u64, wait_for: u64) {
        let ack = BasicAck {
            delivery_tag: seq,
            multiple: false,
        };
        if wait_for != 0 || self.held.gated(conn, channel) {
            if !self.fold_held_confirm(wait_for, conn, channel, seq) {
                let event = Event::Method {
                    channel,
                    method: ack.into(),
                };
                self.emit_after(wait_for, conn, channel, event);
            }
            return;
        }
        if let Some((
            c,
            Event::Method {
                channel: ch,
                method: Method::BasicAck(ack),
            },
        )) = self.events.back_mut()
        {
            if *c == conn && *ch == channel && ack.delivery_tag + 1 == seq {
                ack.delivery_tag = seq;
                ack.multiple = true;
                self.note_folded_confirm(conn, channel, seq);
                return;
            }
        }
        self.reply(conn, channel, ack);
    }

    pub(crate) fn confirm_select(
        &mut self,
        conn: ConnId,
        channel: u16,
        nowait: bool,
    ) -> Result<(), Fault> {
        let ch = self.channel_mut(conn, channel)?;
        if ch.tx.is_some() {
            return Err(channel_fault!(
                PRECONDITION_FAILED,
                "cannot switch from tx to confirm mode"
            ));
        }
        if ch.next_publish_seq.is_none() {
            ch.next_publish_seq = Some(1);
        }
        if !nowait {
            self.reply(conn, channel, ConfirmSelectOk);
        }
        Ok(())
    }
}
