//! Storage: where durable entities and persistent messages go so they outlive the process.
//!
//! The broker calls a [`Storage`] on every change to durable state and asks it once, at start,
//! for what it holds ([`Storage::load`]). [`MemoryStorage`] keeps everything in memory (tests);
//! the browser's journal and the native server's disk store implement the same trait, and
//! write the records ([`ExchangeRecord`], …) as bytes with one codec ([`codec`]).
//!
//! This module knows nothing of the broker: the broker builds records from its entities.

use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use crate::codec::ShortStr;

pub mod codec;
mod records;

pub use records::{
    BindingRecord, ExchangeRecord, MessageRecord, PermissionRecord, QueueRecord, UserRecord,
};

/// Everything a storage holds, per vhost, handed to the broker at start.
#[derive(Clone, Debug, Default)]
pub struct Recovered {
    pub exchanges: Vec<(ShortStr, ExchangeRecord)>,
    pub queues: Vec<QueueRecord>,
    pub bindings: Vec<(ShortStr, BindingRecord)>,
    /// (vhost, queue, messages in queue order): for a queue that pages, only its head.
    pub messages: Vec<(ShortStr, ShortStr, Vec<MessageRecord>)>,
    /// The queues whose messages beyond their head stay in the store, to be read back with
    /// [`Storage::page_in`].
    pub paged: Vec<PagedQueue>,
    /// The lowest id the broker may give a new message: above every id the store still
    /// mentions, acked ones included (a log keeps acks of messages it no longer returns).
    pub next_message_id: u64,
    /// Vhosts, users and permissions. All empty: a store that never held any (a new data
    /// directory): the broker starts with `/` and `guest`, and stores them.
    pub vhosts: Vec<ShortStr>,
    pub users: Vec<UserRecord>,
    pub permissions: Vec<PermissionRecord>,
}

/// A queue's messages left in the store at recovery, after those in [`Recovered::messages`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PagedQueue {
    pub vhost: ShortStr,
    pub queue: ShortStr,
    pub count: u64,
    /// Their body bytes.
    pub bytes: u64,
    /// Every one has a higher id than this (the last message recovered into memory).
    pub after_id: u64,
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
    /// Stores a message of a durable queue. A transient message (not `delivery_mode` 2) is
    /// saved only when the broker pages it out of memory ([`Storage::can_page`]): the store
    /// must hand it back through [`Storage::page_in`], and never after a restart.
    fn save_message(&mut self, vhost: &str, queue: &str, record: &MessageRecord);
    fn delete_message(&mut self, vhost: &str, queue: &str, id: u64);
    /// The message went out (once more) to a consumer awaiting an ack: after a restart it is
    /// redelivered, and the store counts how many times (`MessageRecord::deliveries`).
    fn mark_delivered(&mut self, vhost: &str, queue: &str, id: u64);
    /// Vhosts, users and permissions (what `warren ctl` and the management API change).
    fn save_vhost(&mut self, name: &str);
    /// The vhost's queues, exchanges and permissions are deleted first, each on its own.
    fn delete_vhost(&mut self, name: &str);
    fn save_user(&mut self, record: &UserRecord);
    /// The user's permissions are deleted first, each on its own.
    fn delete_user(&mut self, name: &str);
    fn save_permission(&mut self, record: &PermissionRecord);
    fn delete_permission(&mut self, user: &str, vhost: &str);
    /// What was stored before this broker started.
    fn load(&mut self) -> Recovered;
    /// How many writes the store has taken so far, for a store whose writes become durable
    /// after the call returns (the disk store): the broker holds a publisher confirm or a
    /// `tx.commit-ok` that depends on a write until the host reports the store durable up to
    /// it (`Broker::storage_synced`). A store durable as each call returns keeps the default,
    /// 0: nothing waits for it.
    fn write_seq(&self) -> u64 {
        0
    }
    /// Hands the writes taken since the last flush to the I/O behind the store (the host calls
    /// it once per round through `Broker::flush_storage`, so writes go out in groups).
    fn flush(&mut self) {}
    /// Stored messages the store wants written again, by id (a log that would otherwise keep
    /// an old file for a few live messages in it); asked before each flush. The broker saves
    /// each one it still holds again with [`Storage::save_message`], under the same id.
    fn rewrite_request(&mut self) -> Vec<u64> {
        Vec::new()
    }
    /// Whether the store can hand back the messages it holds ([`Storage::page_in`]), so that
    /// the broker may keep only the head of a long queue in memory.
    fn can_page(&self) -> bool {
        false
    }
    /// Appends to `out` the next stored messages of `queue`, at most `max`: those with ids
    /// above `after_id` not acked or deleted, in id order, as far as writes synced so far
    /// (see [`Storage::write_seq`]) go. Only called when [`Storage::can_page`].
    fn page_in(
        &mut self,
        _vhost: &str,
        _queue: &str,
        _after_id: u64,
        _max: usize,
        _out: &mut Vec<MessageRecord>,
    ) {
    }
}

type QueueKey = (String, String);

/// Keeps durable state in memory: survives a broker rebuilt over the same storage value,
/// not the process.
#[derive(Clone, Debug, Default)]
pub struct MemoryStorage {
    /// Lets the broker page (tests of paging).
    paging: bool,
    exchanges: BTreeMap<QueueKey, ExchangeRecord>,
    queues: BTreeMap<QueueKey, QueueRecord>,
    bindings: Vec<(String, BindingRecord)>,
    messages: BTreeMap<QueueKey, BTreeMap<u64, MessageRecord>>,
    vhosts: alloc::collections::BTreeSet<String>,
    users: BTreeMap<String, UserRecord>,
    permissions: BTreeMap<QueueKey, PermissionRecord>,
}

impl MemoryStorage {
    pub fn new() -> Self {
        Self::default()
    }

    /// A storage the broker may page queues to ([`Storage::can_page`]).
    pub fn paging() -> Self {
        MemoryStorage {
            paging: true,
            ..Self::default()
        }
    }

    /// Everything stored, given up without a copy (a disk store replays its log into a
    /// `MemoryStorage`, then hands the broker this).
    pub fn into_recovered(self) -> Recovered {
        Recovered {
            exchanges: self
                .exchanges
                .into_iter()
                .map(|((v, _), r)| (ShortStr::from(v.as_str()), r))
                .collect(),
            queues: self.queues.into_values().collect(),
            bindings: self
                .bindings
                .into_iter()
                .map(|(v, b)| (ShortStr::from(v.as_str()), b))
                .collect(),
            messages: self
                .messages
                .into_iter()
                .map(|((v, q), m)| {
                    (
                        ShortStr::from(v.as_str()),
                        ShortStr::from(q.as_str()),
                        // Transient messages were stored only to page them out.
                        m.into_values()
                            .filter(MessageRecord::outlives_restart)
                            .collect(),
                    )
                })
                .collect(),
            paged: Vec::new(),
            next_message_id: 0,
            vhosts: self
                .vhosts
                .into_iter()
                .map(|v| ShortStr::from(v.as_str()))
                .collect(),
            users: self.users.into_values().collect(),
            permissions: self.permissions.into_values().collect(),
        }
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
            m.deliveries = m.deliveries.saturating_add(1);
        }
    }
    fn save_vhost(&mut self, name: &str) {
        self.vhosts.insert(name.into());
    }
    fn delete_vhost(&mut self, name: &str) {
        self.vhosts.remove(name);
    }
    fn save_user(&mut self, record: &UserRecord) {
        self.users
            .insert(String::from(record.name.as_str()), record.clone());
    }
    fn delete_user(&mut self, name: &str) {
        self.users.remove(name);
    }
    fn save_permission(&mut self, record: &PermissionRecord) {
        self.permissions
            .insert(key(&record.user, &record.vhost), record.clone());
    }
    fn delete_permission(&mut self, user: &str, vhost: &str) {
        self.permissions.remove(&key(user, vhost));
    }
    fn load(&mut self) -> Recovered {
        self.clone().into_recovered()
    }
    fn can_page(&self) -> bool {
        self.paging
    }
    fn page_in(
        &mut self,
        vhost: &str,
        queue: &str,
        after_id: u64,
        max: usize,
        out: &mut Vec<MessageRecord>,
    ) {
        if let Some(m) = self.messages.get(&key(vhost, queue)) {
            out.extend(
                m.range(after_id.saturating_add(1)..)
                    .take(max)
                    .map(|(_, r)| r.clone()),
            );
        }
    }
}
