//! Storage: where durable entities and persistent messages go so they outlive the process.
//!
//! The broker calls a [`Storage`] on every change to durable state and asks it once, at start,
//! for what it holds ([`Storage::load`]). [`MemoryStorage`] keeps everything in memory (the
//! browser, tests); the native server's disk storage implements the same trait.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use bytes::Bytes;

use crate::broker::{Binding, Destination, Exchange, ExchangeKind, Queue, QueueMap};
use crate::codec::{FieldTable, ShortStr};

/// A durable exchange as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct ExchangeRecord {
    pub name: ShortStr,
    pub kind: ExchangeKind,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
}

impl ExchangeRecord {
    pub fn of(ex: &Exchange) -> Self {
        ExchangeRecord {
            name: ex.name.clone(),
            kind: ex.kind,
            auto_delete: ex.auto_delete,
            internal: ex.internal,
            arguments: ex.arguments.clone(),
        }
    }
}

/// A durable queue as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueRecord {
    pub vhost: ShortStr,
    pub name: ShortStr,
    pub auto_delete: bool,
    pub arguments: FieldTable,
}

impl QueueRecord {
    pub fn of(q: &Queue) -> Self {
        QueueRecord {
            vhost: q.vhost.clone(),
            name: q.name.clone(),
            auto_delete: q.auto_delete,
            arguments: q.arguments.clone(),
        }
    }
}

/// A binding between durable ends, named by the ends' names.
#[derive(Clone, Debug, PartialEq)]
pub struct BindingRecord {
    pub source: ShortStr,
    pub destination: ShortStr,
    pub destination_is_exchange: bool,
    pub routing_key: ShortStr,
    pub arguments: FieldTable,
}

impl BindingRecord {
    pub(crate) fn of(source: &ShortStr, b: &Binding, queues: &QueueMap) -> Self {
        let (destination, destination_is_exchange) = match &b.destination {
            Destination::Exchange(name) => (name.clone(), true),
            Destination::Queue(id) => (
                queues.get(id).map(|q| q.name.clone()).unwrap_or_default(),
                false,
            ),
        };
        BindingRecord {
            source: source.clone(),
            destination,
            destination_is_exchange,
            routing_key: b.routing_key.clone(),
            arguments: b.arguments.clone(),
        }
    }
}

/// A persistent message in a durable queue, as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct MessageRecord {
    pub id: u64,
    pub exchange: ShortStr,
    pub routing_key: ShortStr,
    pub properties: Bytes,
    pub body: Bytes,
    /// It was delivered (and not acked) at least once: it comes back redelivered.
    pub delivered: bool,
}

/// Everything a storage holds, per vhost, handed to the broker at start.
#[derive(Clone, Debug, Default)]
pub struct Recovered {
    pub exchanges: Vec<(ShortStr, ExchangeRecord)>,
    pub queues: Vec<QueueRecord>,
    pub bindings: Vec<(ShortStr, BindingRecord)>,
    /// (vhost, queue, messages in queue order)
    pub messages: Vec<(ShortStr, ShortStr, Vec<MessageRecord>)>,
}

/// Where durable state goes. Calls arrive in the order the broker makes the changes.
pub trait Storage {
    fn save_exchange(&mut self, vhost: &str, record: &ExchangeRecord);
    fn delete_exchange(&mut self, vhost: &str, name: &str);
    fn save_queue(&mut self, record: &QueueRecord);
    /// Deletes the queue and every message stored for it.
    fn delete_queue(&mut self, vhost: &str, name: &str);
    fn save_binding(&mut self, vhost: &str, record: &BindingRecord);
    fn delete_binding(&mut self, vhost: &str, record: &BindingRecord);
    fn save_message(&mut self, vhost: &str, queue: &str, record: &MessageRecord);
    fn delete_message(&mut self, vhost: &str, queue: &str, id: u64);
    /// The message went out to a consumer awaiting an ack: after a restart it is redelivered.
    fn mark_delivered(&mut self, vhost: &str, queue: &str, id: u64);
    /// What was stored before this broker started.
    fn load(&mut self) -> Recovered;
}

type QueueKey = (String, String);

/// Keeps durable state in memory: survives a broker rebuilt over the same storage value,
/// not the process.
#[derive(Clone, Debug, Default)]
pub struct MemoryStorage {
    exchanges: BTreeMap<QueueKey, ExchangeRecord>,
    queues: BTreeMap<QueueKey, QueueRecord>,
    bindings: Vec<(String, BindingRecord)>,
    messages: BTreeMap<QueueKey, BTreeMap<u64, MessageRecord>>,
}

impl MemoryStorage {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many messages are stored across all queues.
    pub fn message_count(&self) -> usize {
        self.messages.values().map(|m| m.len()).sum()
    }
}

fn key(vhost: &str, name: &str) -> QueueKey {
    (String::from(vhost), String::from(name))
}

impl Storage for MemoryStorage {
    fn save_exchange(&mut self, vhost: &str, record: &ExchangeRecord) {
        self.exchanges
            .insert(key(vhost, &record.name), record.clone());
    }
    fn delete_exchange(&mut self, vhost: &str, name: &str) {
        self.exchanges.remove(&key(vhost, name));
    }
    fn save_queue(&mut self, record: &QueueRecord) {
        self.queues
            .insert(key(&record.vhost, &record.name), record.clone());
    }
    fn delete_queue(&mut self, vhost: &str, name: &str) {
        self.queues.remove(&key(vhost, name));
        self.messages.remove(&key(vhost, name));
    }
    fn save_binding(&mut self, vhost: &str, record: &BindingRecord) {
        if !self.bindings.iter().any(|(v, b)| v == vhost && b == record) {
            self.bindings.push((String::from(vhost), record.clone()));
        }
    }
    fn delete_binding(&mut self, vhost: &str, record: &BindingRecord) {
        self.bindings.retain(|(v, b)| !(v == vhost && b == record));
    }
    fn save_message(&mut self, vhost: &str, queue: &str, record: &MessageRecord) {
        self.messages
            .entry(key(vhost, queue))
            .or_default()
            .insert(record.id, record.clone());
    }
    fn delete_message(&mut self, vhost: &str, queue: &str, id: u64) {
        if let Some(m) = self.messages.get_mut(&key(vhost, queue)) {
            m.remove(&id);
        }
    }
    fn mark_delivered(&mut self, vhost: &str, queue: &str, id: u64) {
        if let Some(m) = self
            .messages
            .get_mut(&key(vhost, queue))
            .and_then(|m| m.get_mut(&id))
        {
            m.delivered = true;
        }
    }
    fn load(&mut self) -> Recovered {
        Recovered {
            exchanges: self
                .exchanges
                .iter()
                .map(|((v, _), r)| (ShortStr::from(v.as_str()), r.clone()))
                .collect(),
            queues: self.queues.values().cloned().collect(),
            bindings: self
                .bindings
                .iter()
                .map(|(v, b)| (ShortStr::from(v.as_str()), b.clone()))
                .collect(),
            messages: self
                .messages
                .iter()
                .map(|((v, q), m)| {
                    (
                        ShortStr::from(v.as_str()),
                        ShortStr::from(q.as_str()),
                        m.values().cloned().collect(),
                    )
                })
                .collect(),
        }
    }
}
