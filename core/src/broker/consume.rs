//! Consumers and what they get: `basic.qos`, `basic.consume` / `cancel`, `basic.get`, and
//! dispatch of ready messages to consumers with room (prefetch, delivery credit, priorities).

use super::permit::Resource;
use crate::access::Permission;
use alloc::vec::Vec;

use super::channel::{Consumer, Unacked};
use super::entities::type_name;
use super::expiry::DeathReason;
use super::queue::{ConsumerRef, Queue, QueueId, QueuedMessage};
use super::reply_to::REPLY_TO;
use super::{Broker, Conn, Map};
use crate::channel_fault;
use crate::codec::{
    BasicCancel, BasicCancelOk, BasicConsume, BasicConsumeOk, BasicGet, BasicGetEmpty, BasicGetOk,
    BasicQos, BasicQosOk, FieldValue, ShortStr,
};
use crate::connection_fault;
use crate::reply::Fault;
use crate::storage::Storage;
use crate::vocab::{ConnId, Event};

impl Broker {
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
        self.permit(
            conn,
            channel,
            Permission::Read,
            Resource::Queue,
            &queue_name,
        )?;
        let qid = self.usable_queue(conn, &vhost, &queue_name)?;
        // Arguments are checked before exclusive use (RabbitMQ 3.10.8: a string x-priority on
        // a queue in exclusive use is 406, not 403).
        let priority = match m.arguments.get("x-priority") {
            None => 0,
            Some(v) => integer_arg(v).ok_or_else(|| {
                channel_fault!(
                    PRECONDITION_FAILED,
                    "invalid arg 'x-priority' for queue '{queue_name}' in vhost '{vhost}': \"expected integer, got {}\"",
                    type_name(v)
                )
            })?,
        };
        let q = &self.queues[&qid];
        if q.has_exclusive_consumer || (m.exclusive && !q.consumers.is_empty()) {
            return Err(channel_fault!(
                ACCESS_REFUSED,
                "queue '{queue_name}' in vhost '{vhost}' in exclusive use"
            ));
        }
        let tag = if m.consumer_tag.is_empty() {
            ShortStr::from(self.rng.name("amq.ctag-"))
        } else {
            m.consumer_tag.clone()
        };
        let ch = self.channel_mut(conn, channel)?;
        let prefetch = ch.consumer_prefetch;
        ch.consumers.insert(
            tag.clone(),
            Consumer::new(qid, m.no_ack, m.exclusive, prefetch),
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
    pub(crate) fn detach_consumer(
        &mut self,
        conn: ConnId,
        channel: u16,
        tag: &ShortStr,
        queue: QueueId,
    ) {
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
        self.permit(
            conn,
            channel,
            Permission::Read,
            Resource::Queue,
            &queue_name,
        )?;
        let qid = self.usable_queue(conn, &vhost, &queue_name)?;
        self.expire_head(qid);
        let Broker {
            queues,
            conns,
            storage,
            now_ms,
            page_scratch,
            ..
        } = self;
        let q = queues.get_mut(&qid).expect("found above");
        q.last_used_ms = *now_ms;
        let Some(mut qm) = q.take_front(&mut **storage, page_scratch) else {
            self.reply(conn, channel, BasicGetEmpty::default());
            return Ok(());
        };
        q.delivered += 1;
        q.last_delivery_ms = *now_ms;
        let ch = conns
            .get_mut(&conn)
            .and_then(|c| c.channels.get_mut(&channel))
            .expect("checked by the caller");
        let tag = ch.take_tag();
        let mut get_ok = BasicGetOk {
            delivery_tag: tag,
            redelivered: qm.redelivered,
            exchange: qm.message.exchange().clone(),
            routing_key: qm.message.routing_key().clone(),
            message_count: 0,
        };
        let message = qm.message.clone();
        if m.no_ack {
            if qm.store_id != 0 {
                storage.delete_message(&q.vhost, &q.name, qm.store_id);
            }
        } else {
            qm.deliveries = qm.deliveries.saturating_add(1);
            if qm.store_id != 0 {
                storage.mark_delivered(&q.vhost, &q.name, qm.store_id);
            }
            ch.record_unacked(Unacked {
                tag,
                queue: qid,
                message: qm,
                consumer: None,
            });
            q.delivered_unacked();
        }
        // The new head may be past its TTL: it goes before the count is taken (RabbitMQ).
        self.expire_head(qid);
        get_ok.message_count = self.queues[&qid].message_count();
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

    /// What is left to do after every input: dead letters go to their exchanges, and queues
    /// that may be able to deliver do. Each can make work for the other (a dispatch finds an
    /// expired head, a dead letter lands in a queue with consumers), so both run until neither
    /// has any.
    pub(crate) fn settle_work(&mut self) {
        loop {
            if let Some(dead) = self.dead_letters.pop_front() {
                self.republish_dead(dead);
            } else if let Some(q) = self.dirty.pop() {
                self.dispatch(q);
            } else {
                return;
            }
        }
    }

    /// Hands ready messages to consumers in round-robin order while any has room.
    pub(crate) fn dispatch(&mut self, queue: QueueId) {
        let Broker {
            queues,
            conns,
            events,
            held,
            decisions,
            storage,
            now_ms,
            page_scratch,
            ..
        } = self;
        let now = *now_ms;
        let Some(q) = queues.get_mut(&queue) else {
            return;
        };
        let mut expired = Vec::new();
        let mut refilled = false;
        loop {
            // An expired head never goes out; after each delivery the new head is looked at
            // too, so none is left behind when the consumers are full (RabbitMQ's fetch).
            loop {
                if q.ready_in_memory() == 0 && q.has_outside_head() {
                    // The head was all taken: the next messages come back from the store.
                    q.refill(&mut **storage, page_scratch);
                    refilled = true;
                }
                if q.head().is_none_or(|m| now <= m.expires_at) {
                    break;
                }
                if let Some(m) = q.pop_front() {
                    expired.push(m);
                }
            }
            if q.is_empty() || q.consumers.is_empty() {
                break;
            }
            let Some(idx) = choose_consumer(q, conns) else {
                break;
            };
            q.next_consumer = (idx + 1) % q.consumers.len();
            let Some(qm) = q.pop_front() else { break };
            match hand_over(q, idx, qm, conns, &mut **storage) {
                Some((to, delivery)) => {
                    if let Some(d) = decisions {
                        d.push((to, delivery.clone()));
                    }
                    let channel = q.consumers[idx].channel;
                    if held.gated(to, channel) {
                        // Behind an answer that waits for the disk (a confirm, a
                        // consume-ok): the channel keeps its order.
                        held.push(0, to, channel, delivery);
                    } else {
                        events.push_back((to, delivery));
                    }
                    q.delivered += 1;
                    q.last_delivery_ms = now;
                }
                None => break,
            }
        }
        if refilled && q.has_message_expiry {
            self.watch_time(queue);
        }
        for m in expired {
            self.drop_message(queue, m, DeathReason::Expired);
        }
    }
}

/// The consumer the queue's next message goes to: round-robin from `next_consumer` among the
/// consumers with room (prefetch, the connection's delivery window, `channel.flow`); with
/// consumer priorities (`x-priority`), among the highest-priority ones with room.
#[inline]
fn choose_consumer(q: &Queue, conns: &Map<ConnId, Conn>) -> Option<usize> {
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
    chosen.map(|(idx, _)| idx)
}

/// Delivers `qm` to consumer `idx` of `q`: charges the connection's window, takes a delivery
/// tag, records it unacked (or forgets it in storage, with auto-ack). `None`, with the message
/// back in the queue, if the consumer's connection or channel is gone.
#[inline]
fn hand_over(
    q: &mut Queue,
    idx: usize,
    mut qm: QueuedMessage,
    conns: &mut Map<ConnId, Conn>,
    storage: &mut (dyn Storage + Send),
) -> Option<(ConnId, Event)> {
    let cref = &q.consumers[idx];
    let (to, channel, consumer_tag) = (cref.conn, cref.channel, cref.tag.clone());
    let Some(ch) = conns.get_mut(&to).and_then(|conn| {
        conn.charge(&qm.message);
        conn.channels.get_mut(&channel)
    }) else {
        q.requeue(core::iter::once(qm));
        return None;
    };
    let tag = ch.take_tag();
    let no_ack = ch.consumers.get(&consumer_tag).is_none_or(|c| c.no_ack);
    let redelivered = qm.redelivered;
    let message = if no_ack {
        if qm.store_id != 0 {
            storage.delete_message(&q.vhost, &q.name, qm.store_id);
        }
        // Moved, not cloned and dropped: the reference count lives on a cache line the
        // publisher's thread wrote, and two atomic operations on it were a third of dispatch's
        // time with auto-ack.
        qm.message
    } else {
        let message = qm.message.clone();
        qm.deliveries = qm.deliveries.saturating_add(1);
        if qm.store_id != 0 {
            storage.mark_delivered(&q.vhost, &q.name, qm.store_id);
        }
        ch.record_unacked(Unacked {
            tag,
            queue: q.id,
            message: qm,
            consumer: Some(consumer_tag.clone()),
        });
        q.delivered_unacked();
        message
    };
    let delivery = Event::Deliver {
        channel,
        consumer_tag,
        delivery_tag: tag,
        redelivered,
        message,
    };
    Some((to, delivery))
}

/// An argument RabbitMQ takes as an integer: any of the integer field types (a timestamp is
/// not one).
fn integer_arg(v: &FieldValue) -> Option<i64> {
    match v {
        FieldValue::Timestamp(_) => None,
        v => v.as_i64(),
    }
}
