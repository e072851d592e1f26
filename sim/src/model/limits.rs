//! The model's queue limits and dead-lettering, as RabbitMQ 3.x has them: `x-max-length` and
//! `x-max-length-bytes` (ready messages, body bytes) with `x-overflow` drop-head,
//! reject-publish and reject-publish-dlx; messages that die (rejected without requeue,
//! expired, dropped or refused for length) republished to `x-dead-letter-exchange` with
//! `x-death` counted per queue and reason, `x-first-death-*` kept, a TTL's `expiration`
//! moved into the death record, and a cycle that no rejection broke dropped.
//!
//! Written from RabbitMQ's documented behaviour, not from the broker's code: a dead letter's
//! properties are compared by value with what the broker sends.

use std::collections::VecDeque;

use bytes::Bytes;
use warren_core::codec::{
    peek_delivery_mode, peek_headers, BasicProperties, FieldTable, FieldValue, LongStr, ShortStr,
};

use super::{Inst, Model, MsgId, MsgInfo, Qid, NEVER};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Overflow {
    DropHead,
    RejectPublish,
    RejectPublishDlx,
}

/// A queue's length limits and dead-letter target, from its declare arguments.
#[derive(Clone, Debug)]
pub(super) struct Limits {
    max_length: Option<u64>,
    max_length_bytes: Option<u64>,
    overflow: Overflow,
    dead_letter_exchange: Option<ShortStr>,
    dead_letter_routing_key: Option<ShortStr>,
}

impl Limits {
    pub(super) fn of(args: &FieldTable) -> Limits {
        let num = |k: &str| {
            args.get(k)
                .and_then(FieldValue::as_i64)
                .and_then(|n| u64::try_from(n).ok())
        };
        let text = |k: &str| match args.get(k) {
            Some(FieldValue::LongStr(s)) => Some(ShortStr::from(
                String::from_utf8_lossy(s.as_bytes()).as_ref(),
            )),
            _ => None,
        };
        Limits {
            max_length: num("x-max-length"),
            max_length_bytes: num("x-max-length-bytes"),
            overflow: match text("x-overflow").as_deref() {
                Some("reject-publish") => Overflow::RejectPublish,
                Some("reject-publish-dlx") => Overflow::RejectPublishDlx,
                _ => Overflow::DropHead,
            },
            dead_letter_exchange: text("x-dead-letter-exchange"),
            dead_letter_routing_key: text("x-dead-letter-routing-key"),
        }
    }
}

/// Why a message died, as `x-death` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Death {
    Rejected,
    Expired,
    MaxLen,
}

impl Death {
    fn name(self) -> &'static str {
        match self {
            Death::Rejected => "rejected",
            Death::Expired => "expired",
            Death::MaxLen => "maxlen",
        }
    }
}

/// A message that died in a queue with a dead-letter exchange, to be republished once the
/// command that killed it is done.
#[derive(Clone, Debug)]
pub(super) struct DeadLetter {
    queue: ShortStr,
    exchange: ShortStr,
    routing_key: ShortStr,
    form: MsgId,
    death: Death,
}

impl Model {
    /// Body bytes of a queue's ready messages.
    fn ready_bytes(&self, q: Qid) -> u64 {
        self.queues[&q]
            .ready
            .iter()
            .map(|i| self.msgs[&i.msg].body.len() as u64)
            .sum()
    }

    /// A copy of form `msg` enters queue `qid`: placed by priority and publish order, with its
    /// TTL; a full queue refuses it (false) or drops its head, by `x-overflow`.
    pub(super) fn enqueue(&mut self, qid: Qid, msg: MsgId) -> bool {
        let Some(q) = self.queues.get(&qid) else {
            return true;
        };
        let info = &self.msgs[&msg];
        let (priority, expiration, len) = (info.priority, info.expiration, info.body.len() as u64);
        let limits = q.limits.clone();
        if limits.overflow != Overflow::DropHead {
            let full = limits
                .max_length
                .is_some_and(|max| q.ready.len() as u64 >= max)
                || limits
                    .max_length_bytes
                    .is_some_and(|max| self.ready_bytes(qid) + len > max);
            if full {
                self.refused += 1;
                if limits.overflow == Overflow::RejectPublishDlx {
                    self.dead_letter(qid, msg, Death::MaxLen);
                }
                return false;
            }
        }
        let now = self.now;
        let q = self.queues.get_mut(&qid).expect("checked");
        let seq = q.next_seq;
        q.next_seq += 1;
        let prio = q.max_priority.map_or(0, |max| priority.min(max));
        let ttl = match (q.message_ttl, expiration) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        q.insert_by_seq(Inst {
            msg,
            seq,
            redelivered: false,
            prio,
            expires_at: ttl.map_or(NEVER, |t| now.saturating_add(t)),
        });
        let mut dropped = false;
        if limits.overflow == Overflow::DropHead {
            loop {
                let q = &self.queues[&qid];
                let over = limits
                    .max_length
                    .is_some_and(|max| q.ready.len() as u64 > max)
                    || limits
                        .max_length_bytes
                        .is_some_and(|max| self.ready_bytes(qid) > max);
                if !over {
                    break;
                }
                let head = self
                    .queues
                    .get_mut(&qid)
                    .expect("checked")
                    .ready
                    .pop_front()
                    .expect("over a limit, so not empty");
                self.dropped += 1;
                dropped = true;
                self.dead_letter(qid, head.msg, Death::MaxLen);
            }
        }
        // RabbitMQ looks at the TTL of a head that a length limit uncovered.
        if dropped {
            self.expire_heads(qid);
        }
        true
    }

    /// Form `msg` died in queue `qid`: with a dead-letter exchange, it will be republished.
    pub(super) fn dead_letter(&mut self, qid: Qid, msg: MsgId, death: Death) {
        let Some(q) = self.queues.get(&qid) else {
            return;
        };
        let Some(exchange) = q.limits.dead_letter_exchange.clone() else {
            return;
        };
        let routing_key = q
            .limits
            .dead_letter_routing_key
            .clone()
            .unwrap_or_else(|| self.msgs[&msg].rk.clone());
        self.dead_letters.push_back(DeadLetter {
            queue: q.name.clone(),
            exchange,
            routing_key,
            form: msg,
            death,
        });
    }

    /// Republishes every dead letter waiting, oldest first (one can kill others).
    pub(super) fn drain_dead_letters(&mut self) {
        while let Some(d) = self.dead_letters.pop_front() {
            self.republish(d);
        }
    }

    fn republish(&mut self, d: DeadLetter) {
        let old = self.msgs[&d.form].clone();
        let mut props = BasicProperties::decode(&old.props).unwrap_or_default();
        let original_expiration = if d.death == Death::Expired {
            props.expiration.take()
        } else {
            None
        };
        let mut headers = props.headers.take().unwrap_or_default();
        let mut deaths: VecDeque<FieldTable> = match headers.get("x-death") {
            Some(FieldValue::Array(a)) => a.iter().filter_map(|v| v.as_table().cloned()).collect(),
            _ => VecDeque::new(),
        };
        let text =
            |t: &FieldTable, k: &str| t.get(k).and_then(FieldValue::as_str).map(str::to_owned);
        let earlier = deaths.iter().position(|t| {
            text(t, "queue").as_deref() == Some(d.queue.as_str())
                && text(t, "reason").as_deref() == Some(d.death.name())
        });
        let count = earlier
            .and_then(|i| deaths.remove(i))
            .and_then(|t| t.get("count").and_then(FieldValue::as_i64))
            .unwrap_or(0)
            + 1;
        let long = |s: &str| FieldValue::LongStr(LongStr::from(s));
        let mut entry = FieldTable::default();
        entry.insert("count", FieldValue::I64(count));
        entry.insert("reason", long(d.death.name()));
        entry.insert("queue", long(&d.queue));
        entry.insert("time", FieldValue::Timestamp(self.now / 1000));
        entry.insert("exchange", long(&old.exchange));
        entry.insert("routing-keys", FieldValue::Array(vec![long(&old.rk)]));
        if let Some(e) = &original_expiration {
            entry.insert("original-expiration", long(e));
        }
        deaths.push_front(entry);
        // RabbitMQ's cycle rule: never after a rejection; otherwise the deaths since the
        // message last died in the queue it would enter, when none of them is a rejection.
        let automatic_cycle = |queue: &str| {
            d.death != Death::Rejected
                && deaths
                    .iter()
                    .position(|t| text(t, "queue").as_deref() == Some(queue))
                    .is_some_and(|last| {
                        deaths
                            .iter()
                            .take(last + 1)
                            .all(|t| text(t, "reason").as_deref() != Some("rejected"))
                    })
        };
        let cycling: Vec<String> = deaths
            .iter()
            .filter_map(|t| text(t, "queue"))
            .filter(|q| automatic_cycle(q))
            .collect();
        headers.insert(
            "x-death",
            FieldValue::Array(deaths.into_iter().map(FieldValue::Table).collect()),
        );
        if headers.get("x-first-death-reason").is_none() {
            headers.insert("x-first-death-reason", long(d.death.name()));
            headers.insert("x-first-death-queue", long(&d.queue));
            headers.insert("x-first-death-exchange", long(&old.exchange));
        }
        props.headers = Some(headers);
        let mut raw = Vec::new();
        props.encode(&mut raw);
        let raw = Bytes::from(raw);
        let form = self.next_form;
        self.next_form += 1;
        self.msgs.insert(
            form,
            MsgInfo {
                id: old.id,
                exact: false,
                persistent: matches!(peek_delivery_mode(&raw), Ok(Some(2))),
                exchange: d.exchange.clone(),
                rk: d.routing_key.clone(),
                props: raw.clone(),
                body: old.body.clone(),
                priority: old.priority,
                expiration: if original_expiration.is_some() {
                    None
                } else {
                    old.expiration
                },
            },
        );
        self.dead_lettered += 1;
        let headers = peek_headers(&raw).ok().flatten();
        // Dead letters go through internal exchanges too: only clients may not publish there.
        let Ok(targets) = self.route_from(&d.exchange, &d.routing_key, headers.as_ref(), false)
        else {
            return;
        };
        for t in targets {
            // A message that went round without being rejected would go round forever.
            if cycling.iter().any(|n| *n == self.queues[&t].name.as_str()) {
                continue;
            }
            self.enqueue(t, form);
        }
    }
}

/// Properties as a client reads them: every header table with its keys sorted, so that two
/// encodings of the same properties compare equal.
pub(super) fn by_value(raw: &[u8]) -> Option<BasicProperties> {
    let mut p = BasicProperties::decode(raw).ok()?;
    if let Some(h) = p.headers.as_mut() {
        sort_table(h);
    }
    Some(p)
}

fn sort_table(t: &mut FieldTable) {
    let mut entries: Vec<(ShortStr, FieldValue)> =
        t.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    let mut sorted = FieldTable::default();
    for (k, mut v) in entries {
        sort_value(&mut v);
        sorted.insert(k.as_str(), v);
    }
    *t = sorted;
}

fn sort_value(v: &mut FieldValue) {
    match v {
        FieldValue::Table(t) => sort_table(t),
        FieldValue::Array(a) => a.iter_mut().for_each(sort_value),
        _ => {}
    }
}
