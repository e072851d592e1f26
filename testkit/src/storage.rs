//! A storage a test keeps a handle on.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use warren_core::storage::{
    BindingRecord, ExchangeRecord, MemoryStorage, MessageRecord, PermissionRecord, QueueRecord,
    Recovered, Storage, UserRecord,
};

/// A [`Storage`] that forwards to a shared [`MemoryStorage`], so a test can keep a handle on
/// what a broker stored and build a second broker over it.
///
/// A [`SharedStorage::deferred`] one behaves as a disk store does towards the broker: it
/// counts its writes ([`Storage::write_seq`]) and they count as durable only when the test
/// says so (`World::sync_storage`).
#[derive(Clone, Default)]
pub struct SharedStorage {
    pub inner: Arc<Mutex<MemoryStorage>>,
    /// Writes taken, when deferred.
    writes: Option<Arc<AtomicU64>>,
}

impl SharedStorage {
    pub fn new(inner: MemoryStorage) -> Self {
        SharedStorage {
            inner: Arc::new(Mutex::new(inner)),
            writes: None,
        }
    }

    /// An empty storage whose writes wait for the test to sync them.
    pub fn deferred() -> Self {
        SharedStorage {
            inner: Arc::default(),
            writes: Some(Arc::default()),
        }
    }

    /// An empty storage the broker may page queues to (see `MemoryStorage::paging`).
    pub fn paging() -> Self {
        SharedStorage::new(MemoryStorage::paging())
    }

    /// A deferred storage (see [`SharedStorage::deferred`]) the broker may page queues to.
    pub fn deferred_paging() -> Self {
        SharedStorage {
            inner: Arc::new(Mutex::new(MemoryStorage::paging())),
            writes: Some(Arc::default()),
        }
    }

    /// A copy of what is stored now.
    pub fn snapshot(&self) -> MemoryStorage {
        self.lock().clone()
    }

    pub fn message_count(&self) -> usize {
        self.lock().message_count()
    }

    /// What a broker starting now would recover.
    pub fn load(&self) -> Recovered {
        self.lock().load()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoryStorage> {
        self.inner.lock().expect("storage lock")
    }

    /// The storage, with one more write counted.
    fn write(&self) -> std::sync::MutexGuard<'_, MemoryStorage> {
        if let Some(w) = &self.writes {
            w.fetch_add(1, Ordering::Relaxed);
        }
        self.lock()
    }
}

impl Storage for SharedStorage {
    fn save_exchange(&mut self, vhost: &str, record: &ExchangeRecord) {
        self.write().save_exchange(vhost, record)
    }
    fn delete_exchange(&mut self, vhost: &str, name: &str) {
        self.write().delete_exchange(vhost, name)
    }
    fn save_queue(&mut self, record: &QueueRecord) {
        self.write().save_queue(record)
    }
    fn delete_queue(&mut self, vhost: &str, name: &str) {
        self.write().delete_queue(vhost, name)
    }
    fn save_binding(&mut self, vhost: &str, record: &BindingRecord) {
        self.write().save_binding(vhost, record)
    }
    fn delete_binding(&mut self, vhost: &str, record: &BindingRecord) {
        self.write().delete_binding(vhost, record)
    }
    fn save_message(&mut self, vhost: &str, queue: &str, record: &MessageRecord) {
        self.write().save_message(vhost, queue, record)
    }
    fn delete_message(&mut self, vhost: &str, queue: &str, id: u64) {
        self.write().delete_message(vhost, queue, id)
    }
    fn mark_delivered(&mut self, vhost: &str, queue: &str, id: u64) {
        self.write().mark_delivered(vhost, queue, id)
    }
    fn save_vhost(&mut self, name: &str) {
        self.write().save_vhost(name)
    }
    fn delete_vhost(&mut self, name: &str) {
        self.write().delete_vhost(name)
    }
    fn save_user(&mut self, record: &UserRecord) {
        self.write().save_user(record)
    }
    fn delete_user(&mut self, name: &str) {
        self.write().delete_user(name)
    }
    fn save_permission(&mut self, record: &PermissionRecord) {
        self.write().save_permission(record)
    }
    fn delete_permission(&mut self, user: &str, vhost: &str) {
        self.write().delete_permission(user, vhost)
    }
    fn load(&mut self) -> Recovered {
        self.lock().load()
    }
    fn write_seq(&self) -> u64 {
        self.writes
            .as_ref()
            .map_or(0, |w| w.load(Ordering::Relaxed))
    }
    fn can_page(&self) -> bool {
        self.lock().can_page()
    }
    fn page_in(
        &mut self,
        vhost: &str,
        queue: &str,
        after_id: u64,
        max: usize,
        out: &mut Vec<MessageRecord>,
    ) {
        self.lock().page_in(vhost, queue, after_id, max, out)
    }
}
