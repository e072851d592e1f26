//! Publishing, routing, dispatch to consumers, acks, prefetch, confirms and transactions
//! (AMQP 0-9-1 §1.8 basic, §1.9 tx, RabbitMQ's confirm extension).

use alloc::vec::Vec;

use super::channel::{Channel, Consumer, TxOp, Unacked};
use super::exchange::Destination;
use super::expiry::DeathReason;
use super::queue::{ConsumerRef, Overflow, QueueId, QueuedMessage, NEVER};
use super::reply_to::{REPLY_TO, REPLY_TO_PREFIX};
use super::{Broker, Exchange, Message};
use crate::channel_fault;
use crate::codec::{
    peek_expiration, peek_headers, peek_user_id, BasicAck, BasicCancel, BasicCancelOk,
    BasicConsume, BasicConsumeOk, BasicGet, BasicGetEmpty, BasicGetOk, BasicNack, BasicQos,
    BasicQosOk, BasicRecoverOk, BasicReturn, ConfirmSelectOk, FieldTable, Method, ShortStr,
    TxCommitOk, TxRollbackOk, TxSelectOk,
};
use crate::connection_fault;
use crate::message::parse_expiration;
use crate::reply::Fault;
use crate::storage::MessageRecord;
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
        if !self
            .conns
            .get(&conn)
            .is_some_and(|c| c.channels.contains_key(&channel))
        {
            // The channel was closed by a fault; this publish was already in flight.
            return Ok(());
        }
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
        let routed = self.route(&vhost, &message, &mut queues);
        if let Err(fault) = routed {
            self.route_scratch = queues;
            return Err(fault);
        }
        let ch = self.channel_mut(conn, channel)?;
        let seq = ch.next_publish_seq;
        if let Some(s) = seq {
            ch.next_publish_seq = Some(s + 1);
        }
        let ch = self.channel_mut(conn, channel)?;
        let mut rejected = false;
        if let Some(tx) = ch.tx.as_mut() {
            // Routed now; enqueued, or returned when unroutable and mandatory, at commit.
            tx.push(TxOp::Publish {
                queues: queues.clone(),
                message,
                mandatory: p.mandatory,
            });
        } else {
            if queues.is_empty() && p.mandatory {
                self.return_no_route(conn, channel, message.clone());
            }
            for &q in &queues {
                rejected |= !self.enqueue(q, message.clone(), false);
            }
        }
        self.route_scratch = queues;
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
                self.confirm(conn, channel, seq);
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
            self.confirm(conn, channel, seq);
        }
        Ok(())
    }

    fn return_no_route(&mut self, conn: ConnId, channel: u16, message: Message) {
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

    /// Finds the queues a message goes to, following exchange-to-exchange bindings.
    pub(crate) fn route(
        &mut self,
        vhost: &ShortStr,
        message: &Message,
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
        if ex.internal {
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
        let store_id = if message.is_persistent() && q.durable && q.exclusive_owner.is_none() {
            let id = self.next_store_id;
            self.next_store_id += 1;
            self.storage.save_message(
                &q.vhost,
                &q.name,
                &MessageRecord {
                    id,
                    exchange: message.exchange().clone(),
                    routing_key: message.routing_key().clone(),
                    properties: message.properties().clone(),
                    body: message.body().clone(),
                    delivered: false,
                },
            );
            id
        } else {
            0
        };
        q.push_back(QueuedMessage {
            message,
            redelivered,
            store_id,
            expires_at,
            seq: 0,
        });
        let has_consumers = !q.consumers.is_empty();
        let over = q.is_over_limits();
        if expires_at != NEVER {
            self.watch_time(queue);
        }
        if over {
            self.enforce_length(queue);
        }
        if has_consumers {
            self.dirty.push(queue);
        }
        true
    }

    /// Acks publish `seq`, folding it into the previous ack for the same channel when it
    /// directly follows (one `basic.ack multiple=true` for a burst of publishes).
    fn confirm(&mut self, conn: ConnId, channel: u16, seq: u64) {
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
                return;
            }
        }
        self.reply(
            conn,
            channel,
            BasicAck {
                delivery_tag: seq,
                multiple: false,
            },
        );
    }

    /// Delivers from every queue marked as possibly deliverable.
    pub(crate) fn dispatch_dirty(&mut self) {
        while let Some(q) = self.dirty.pop() {
            self.dispatch(q);
        }
    }

    /// Hands ready messages to consumers in round-robin order while any has room.
    fn dispatch(&mut self, queue: QueueId) {
        let Broker {
            queues,
            conns,
            events,
            storage,
            now_ms,
            ..
        } = self;
        let now = *now_ms;
        let Some(q) = queues.get_mut(&queue) else {
            return;
        };
        let mut expired = Vec::new();
        while !q.is_empty() && !q.consumers.is_empty() {
            if q.head().is_some_and(|m| now > m.expires_at) {
                if let Some(m) = q.pop_front() {
                    expired.push(m);
                }
                continue;
            }
            // Round-robin from `next_consumer` among the consumers with room; with consumer
            // priorities (`x-priority`), among the highest-priority ones with room.
            let n = q.consumers.len();
            let prioritised = q.consumers.iter().any(|c| c.priority != 0);
            let mut chosen: Option<(usize, i64)> = None;
            for i in 0..n {
                let idx = (q.next_consumer + i) % n;
                let c = &q.consumers[idx];
                if chosen.is_some_and(|(_, p)| c.priority <= p) {
                    continue;
                }
                let ok = conns
                    .get(&c.conn)
                    .filter(|conn| conn.window != Some(0))
                    .and_then(|conn| conn.channels.get(&c.channel))
                    .is_some_and(|ch| ch.can_deliver_to(&c.tag));
                if ok {
                    chosen = Some((idx, c.priority));
                    if !prioritised {
                        break;
                    }
                }
            }
            let Some((idx, _)) = chosen else { break };
            q.next_consumer = (idx + 1) % n;
            let Some(qm) = q.pop_front() else { break };
            let cref = &q.consumers[idx];
            let Some(conn) = conns.get_mut(&cref.conn) else {
                q.requeue(core::iter::once(qm));
                break;
            };
            conn.charge(&qm.message);
            let Some(ch) = conn.channels.get_mut(&cref.channel) else {
                q.requeue(core::iter::once(qm));
                break;
            };
            let tag = ch.take_tag();
            let no_ack = ch.consumers.get(&cref.tag).is_none_or(|c| c.no_ack);
            let consumer_tag = cref.tag.clone();
            let redelivered = qm.redelivered;
            let message = if no_ack {
                if qm.store_id != 0 {
                    storage.delete_message(&q.vhost, &q.name, qm.store_id);
                }
                // Moved, not cloned and dropped: the reference count lives on a cache line the
                // publisher's thread wrote, and two atomic operations on it were a third of
                // this function's time with auto-ack.
                qm.message
            } else {
                let message = qm.message.clone();
                if qm.store_id != 0 && !qm.redelivered {
                    storage.mark_delivered(&q.vhost, &q.name, qm.store_id);
                }
                if let Some(c) = ch.consumers.get_mut(&cref.tag) {
                    c.unacked += 1;
                }
                ch.consumer_unacked += 1;
                ch.unacked.push_back(Unacked {
                    tag,
                    queue,
                    message: qm,
                    consumer: Some(cref.tag.clone()),
                });
                q.unacked += 1;
                message
            };
            events.push_back((
                cref.conn,
                Event::Deliver {
                    channel: cref.channel,
                    consumer_tag,
                    delivery_tag: tag,
                    redelivered,
                    message,
                },
            ));
        }
        for m in expired {
            self.drop_message(queue, m, DeathReason::Expired);
        }
    }

    pub(crate) fn basic_qos(
        &mut self,
        conn: ConnId,
        channel: u16,
        m: BasicQos,
    ) -> Result<(), Fault> {
        if m.prefetch_size != 0 {
            return Err(connection_fault!(
                NOT_IMPLEMENTED,
                "prefetch_size!=0 ({})",
                m.prefetch_size
            ));
        }
        let ch = self.channel_mut(conn, channel)?;
        if m.global {
            ch.global_prefetch = m.prefetch_count;
        } else {
            ch.consumer_prefetch = m.prefetch_count;
        }
        let queues = ch.consumed_queues();
        self.dirty.extend(queues);
        self.reply(conn, channel, BasicQosOk);
        Ok(())
    }

    pub(crate) fn basic_consume(
        &mut self,
        conn: ConnId,
        channel: u16,
        m: BasicConsume,
    ) -> Result<(), Fault> {
        let vhost = self.vhost_of(conn)?;
        if m.queue.as_str() == REPLY_TO {
            return self.consume_reply_to(conn, channel, &m);
        }
        let queue_name = self.resolve_queue_name(conn, channel, m.queue.clone())?;
        // A tag in use is refused before the queue is looked at (RabbitMQ's order).
        if !m.consumer_tag.is_empty()
            && self
                .channel_mut(conn, channel)?
                .consumers
                .contains_key(&m.consumer_tag)
        {
            return Err(connection_fault!(
                NOT_ALLOWED,
                "attempt to reuse consumer tag '{}'",
                m.consumer_tag
            ));
        }
        let qid = self.usable_queue(conn, &vhost, &queue_name)?;
        let q = &self.queues[&qid];
        if q.has_exclusive_consumer || (m.exclusive && !q.consumers.is_empty()) {
            return Err(channel_fault!(
                ACCESS_REFUSED,
                "queue '{queue_name}' in vhost '{vhost}' in exclusive use"
            ));
        }
        let priority = match m.arguments.get("x-priority") {
            None => 0,
            Some(v) => v.as_i64().ok_or_else(|| {
                channel_fault!(
                    PRECONDITION_FAILED,
                    "invalid arg 'x-priority' for consumer of queue '{queue_name}' in vhost '{vhost}'"
                )
            })?,
        };
        let tag = if m.consumer_tag.is_empty() {
            ShortStr::from(self.rng.name("amq.ctag-"))
        } else {
            m.consumer_tag.clone()
        };
        let ch = self.channel_mut(conn, channel)?;
        let prefetch = ch.consumer_prefetch;
        ch.consumers.insert(
            tag.clone(),
            Consumer {
                queue: qid,
                no_ack: m.no_ack,
                exclusive: m.exclusive,
                prefetch,
                unacked: 0,
            },
        );
        let now = self.now_ms;
        let q = self.queues.get_mut(&qid).expect("found above");
        q.last_used_ms = now;
        q.consumers.push(ConsumerRef {
            conn,
            channel,
            tag: tag.clone(),
            priority,
        });
        q.has_exclusive_consumer = m.exclusive;
        if !m.no_wait {
            self.reply(conn, channel, BasicConsumeOk { consumer_tag: tag });
        }
        self.dirty.push(qid);
        Ok(())
    }

    pub(crate) fn basic_cancel(
        &mut self,
        conn: ConnId,
        channel: u16,
        m: BasicCancel,
    ) -> Result<(), Fault> {
        let ch = self.channel_mut(conn, channel)?;
        if let Some(c) = ch.consumers.remove(&m.consumer_tag) {
            self.detach_consumer(conn, channel, &m.consumer_tag, c.queue);
        } else if ch
            .reply_consumer
            .as_ref()
            .is_some_and(|(tag, _)| *tag == m.consumer_tag)
        {
            if let Some((_, key)) = ch.reply_consumer.take() {
                self.drop_reply_consumer(&key);
            }
        }
        if !m.no_wait {
            self.reply(
                conn,
                channel,
                BasicCancelOk {
                    consumer_tag: m.consumer_tag,
                },
            );
        }
        Ok(())
    }

    /// Removes a consumer from its queue; an auto-delete queue goes with its last consumer.
    fn detach_consumer(&mut self, conn: ConnId, channel: u16, tag: &ShortStr, queue: QueueId) {
        let Some(q) = self.queues.get_mut(&queue) else {
            return;
        };
        q.remove_consumer(conn, channel, tag);
        q.last_used_ms = self.now_ms;
        if q.auto_delete && q.consumers.is_empty() {
            self.delete_queue_by_id(queue, None);
        }
    }

    pub(crate) fn basic_get(
        &mut self,
        conn: ConnId,
        channel: u16,
        m: BasicGet,
    ) -> Result<(), Fault> {
        let vhost = self.vhost_of(conn)?;
        let queue_name = self.resolve_queue_name(conn, channel, m.queue.clone())?;
        let qid = self.usable_queue(conn, &vhost, &queue_name)?;
        self.expire_head(qid);
        let Broker {
            queues,
            conns,
            storage,
            now_ms,
            ..
        } = self;
        let q = queues.get_mut(&qid).expect("found above");
        q.last_used_ms = *now_ms;
        let Some(qm) = q.pop_front() else {
            self.reply(conn, channel, BasicGetEmpty::default());
            return Ok(());
        };
        let ch = conns
            .get_mut(&conn)
            .and_then(|c| c.channels.get_mut(&channel))
            .expect("checked by the caller");
        let tag = ch.take_tag();
        let get_ok = BasicGetOk {
            delivery_tag: tag,
            redelivered: qm.redelivered,
            exchange: qm.message.exchange().clone(),
            routing_key: qm.message.routing_key().clone(),
            message_count: q.message_count(),
        };
        let message = qm.message.clone();
        if m.no_ack {
            if qm.store_id != 0 {
                storage.delete_message(&q.vhost, &q.name, qm.store_id);
            }
        } else {
            if qm.store_id != 0 && !qm.redelivered {
                storage.mark_delivered(&q.vhost, &q.name, qm.store_id);
            }
            ch.unacked.push_back(Unacked {
                tag,
                queue: qid,
                message: qm,
                consumer: None,
            });
            q.unacked += 1;
        }
        self.emit(
            conn,
            Event::Content {
                channel,
                method: get_ok.into(),
                message,
            },
        );
        Ok(())
    }

    fn take_unacked_or_fail(
        ch: &mut Channel,
        tag: u64,
        multiple: bool,
    ) -> Result<Vec<Unacked>, Fault> {
        ch.take_unacked(tag, multiple)
            .ok_or_else(|| channel_fault!(PRECONDITION_FAILED, "unknown delivery tag {tag}"))
    }

    pub(crate) fn basic_ack(
        &mut self,
        conn: ConnId,
        channel: u16,
        tag: u64,
        multiple: bool,
    ) -> Result<(), Fault> {
        let ch = self.channel_mut(conn, channel)?;
        let taken = Self::take_unacked_or_fail(ch, tag, multiple)?;
        if ch.tx.is_some() {
            for u in &taken {
                ch.hold_credit(u);
            }
            if let Some(tx) = ch.tx.as_mut() {
                tx.extend(taken.into_iter().map(TxOp::Ack));
            }
            return Ok(());
        }
        let queues = ch.consumed_queues();
        for u in taken {
            self.settle(u);
        }
        self.dirty.extend(queues);
        Ok(())
    }

    pub(crate) fn basic_nack(
        &mut self,
        conn: ConnId,
        channel: u16,
        tag: u64,
        multiple: bool,
        requeue: bool,
    ) -> Result<(), Fault> {
        let ch = self.channel_mut(conn, channel)?;
        let taken = Self::take_unacked_or_fail(ch, tag, multiple)?;
        if ch.tx.is_some() {
            for u in &taken {
                ch.hold_credit(u);
            }
            if let Some(tx) = ch.tx.as_mut() {
                tx.extend(
                    taken
                        .into_iter()
                        .map(|unacked| TxOp::Nack { unacked, requeue }),
                );
            }
            return Ok(());
        }
        let queues = ch.consumed_queues();
        if requeue {
            self.requeue(taken);
        } else {
            for u in taken {
                self.reject(u);
            }
        }
        self.dirty.extend(queues);
        Ok(())
    }

    pub(crate) fn basic_recover(
        &mut self,
        conn: ConnId,
        channel: u16,
        requeue: bool,
    ) -> Result<(), Fault> {
        self.basic_recover_async(conn, channel, requeue)?;
        self.reply(conn, channel, BasicRecoverOk);
        Ok(())
    }

    pub(crate) fn basic_recover_async(
        &mut self,
        conn: ConnId,
        channel: u16,
        requeue: bool,
    ) -> Result<(), Fault> {
        if !requeue {
            // RabbitMQ does not implement redelivery to the original consumer either.
            return Err(connection_fault!(NOT_IMPLEMENTED, "requeue=false"));
        }
        let ch = self.channel_mut(conn, channel)?;
        let taken = ch.take_unacked(0, true).unwrap_or_default();
        let queues = ch.consumed_queues();
        self.requeue(taken);
        self.dirty.extend(queues);
        Ok(())
    }

    /// An acked (or dropped) delivery leaves the broker for good.
    fn settle(&mut self, u: Unacked) {
        if let Some(q) = self.queues.get_mut(&u.queue) {
            q.unacked = q.unacked.saturating_sub(1);
            if u.message.store_id != 0 {
                self.storage
                    .delete_message(&q.vhost, &q.name, u.message.store_id);
            }
        }
    }

    /// A delivery rejected without requeue: it dies (dead-lettered when the queue says so).
    fn reject(&mut self, u: Unacked) {
        if let Some(q) = self.queues.get_mut(&u.queue) {
            q.unacked = q.unacked.saturating_sub(1);
        }
        self.drop_message(u.queue, u.message, DeathReason::Rejected);
    }

    /// Puts deliveries back in their queues at their original places, marked redelivered.
    fn requeue(&mut self, unacked: Vec<Unacked>) {
        for u in unacked {
            let mut qm = u.message;
            qm.redelivered = true;
            if let Some(q) = self.queues.get_mut(&u.queue) {
                q.unacked = q.unacked.saturating_sub(1);
                q.requeue(core::iter::once(qm));
                if !q.consumers.is_empty() && self.dirty.last() != Some(&u.queue) {
                    self.dirty.push(u.queue);
                }
            }
        }
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

    pub(crate) fn tx_select(&mut self, conn: ConnId, channel: u16) -> Result<(), Fault> {
        let ch = self.channel_mut(conn, channel)?;
        if ch.next_publish_seq.is_some() {
            return Err(channel_fault!(
                PRECONDITION_FAILED,
                "cannot switch from confirm to tx mode"
            ));
        }
        if ch.tx.is_none() {
            ch.tx = Some(Vec::new());
        }
        self.reply(conn, channel, TxSelectOk);
        Ok(())
    }

    fn take_tx(&mut self, conn: ConnId, channel: u16) -> Result<Vec<TxOp>, Fault> {
        let ch = self.channel_mut(conn, channel)?;
        match ch.tx.as_mut() {
            Some(ops) => Ok(core::mem::take(ops)),
            None => Err(channel_fault!(
                PRECONDITION_FAILED,
                "channel is not transactional"
            )),
        }
    }

    pub(crate) fn tx_commit(&mut self, conn: ConnId, channel: u16) -> Result<(), Fault> {
        let ops = self.take_tx(conn, channel)?;
        let ch = self.channel_mut(conn, channel)?;
        for op in &ops {
            if let TxOp::Ack(u) | TxOp::Nack { unacked: u, .. } = op {
                ch.release_credit(u);
            }
        }
        for op in ops {
            match op {
                TxOp::Publish {
                    queues,
                    message,
                    mandatory,
                } => {
                    if queues.is_empty() && mandatory {
                        self.return_no_route(conn, channel, message.clone());
                    }
                    for q in queues {
                        self.enqueue(q, message.clone(), false);
                    }
                }
                TxOp::Ack(u) => self.settle(u),
                TxOp::Nack { unacked, requeue } => {
                    if requeue {
                        self.requeue(alloc::vec![unacked]);
                    } else {
                        self.reject(unacked);
                    }
                }
            }
        }
        let queues = self.channel_mut(conn, channel)?.consumed_queues();
        self.dirty.extend(queues);
        self.reply(conn, channel, TxCommitOk);
        Ok(())
    }

    pub(crate) fn tx_rollback(&mut self, conn: ConnId, channel: u16) -> Result<(), Fault> {
        let ops = self.take_tx(conn, channel)?;
        let ch = self.channel_mut(conn, channel)?;
        for op in ops {
            match op {
                TxOp::Publish { .. } => {}
                TxOp::Ack(u) | TxOp::Nack { unacked: u, .. } => ch.reinsert_unacked(u),
            }
        }
        self.reply(conn, channel, TxRollbackOk);
        Ok(())
    }

    /// A channel is gone: its consumers leave their queues, its unacked deliveries (and acks
    /// an uncommitted transaction held) go back to their queues, redelivered.
    pub(crate) fn release_channel(&mut self, conn: ConnId, channel: u16, mut ch: Channel) {
        if let Some((_, key)) = ch.reply_consumer.take() {
            self.drop_reply_consumer(&key);
        }
        let mut unacked: Vec<Unacked> = ch.unacked.drain(..).collect();
        if let Some(ops) = ch.tx.take() {
            for op in ops {
                if let TxOp::Ack(u) | TxOp::Nack { unacked: u, .. } = op {
                    unacked.push(u);
                }
            }
            unacked.sort_by_key(|u| u.tag);
        }
        // Consumers leave first so requeued messages are not handed straight back to them.
        let mut consumers: Vec<(ShortStr, QueueId)> =
            ch.consumers.drain().map(|(t, c)| (t, c.queue)).collect();
        consumers.sort();
        let mut auto_delete = Vec::new();
        for (tag, queue) in &consumers {
            if let Some(q) = self.queues.get_mut(queue) {
                q.remove_consumer(conn, channel, tag);
                q.last_used_ms = self.now_ms;
                if q.auto_delete && q.consumers.is_empty() {
                    auto_delete.push(*queue);
                }
            }
        }
        self.requeue(unacked);
        for q in auto_delete {
            self.delete_queue_by_id(q, None);
        }
    }

    /// Rebuilds durable exchanges, queues, bindings and messages from storage.
    pub(crate) fn recover(&mut self) {
        let recovered = self.storage.load();
        for (vhost, ex) in recovered.exchanges {
            self.add_vhost(&vhost);
            let v = self.vhosts.get_mut(&vhost).expect("just added");
            v.exchanges.entry(ex.name.clone()).or_insert_with(|| {
                Exchange::new(
                    ex.name.clone(),
                    ex.kind,
                    true,
                    ex.auto_delete,
                    ex.internal,
                    ex.arguments.clone(),
                )
            });
        }
        for q in recovered.queues {
            self.add_vhost(&q.vhost);
            let id = QueueId(self.next_queue_id);
            self.next_queue_id += 1;
            let queue = super::Queue::new(
                id,
                q.vhost.clone(),
                q.name.clone(),
                true,
                None,
                q.auto_delete,
                q.arguments,
                self.now_ms,
            );
            if queue.limits.is_timed() {
                self.timed.insert(id);
            }
            self.queues.insert(id, queue);
            if let Some(v) = self.vhosts.get_mut(&q.vhost) {
                v.queues.insert(q.name, id);
            }
        }
        for (vhost, b) in recovered.bindings {
            let Some(v) = self.vhosts.get_mut(&vhost) else {
                continue;
            };
            let destination = if b.destination_is_exchange {
                Destination::Exchange(b.destination)
            } else {
                match v.queues.get(&b.destination) {
                    Some(id) => Destination::Queue(*id),
                    None => continue,
                }
            };
            if let Some(ex) = v.exchanges.get_mut(&b.source) {
                ex.bind(super::Binding {
                    destination,
                    routing_key: b.routing_key,
                    arguments: b.arguments,
                });
            }
        }
        for (vhost, queue, messages) in recovered.messages {
            let Some(id) = self.vhosts.get(&vhost).and_then(|v| v.queues.get(&queue)) else {
                continue;
            };
            let Some(q) = self.queues.get_mut(id) else {
                continue;
            };
            let ttl = q.limits.message_ttl;
            for m in messages {
                self.next_store_id = self.next_store_id.max(m.id + 1);
                let message = Message::new(m.exchange, m.routing_key, m.properties, m.body);
                // TTLs restart at recovery: the time a message spent stored is not known.
                let expires_at = match (ttl, message.expiration_ms()) {
                    (Some(a), Some(b)) => self.now_ms.saturating_add(a.min(b)),
                    (Some(t), None) | (None, Some(t)) => self.now_ms.saturating_add(t),
                    (None, None) => NEVER,
                };
                q.push_back(QueuedMessage {
                    message,
                    redelivered: m.delivered,
                    store_id: m.id,
                    expires_at,
                    seq: 0,
                });
            }
            if q.has_message_expiry {
                self.timed.insert(*id);
            }
        }
    }
}
