//! A storage a test keeps a handle on.

use std::sync::{Arc, Mutex};

use warren_core::storage::{
    BindingRecord, ExchangeRecord, MemoryStorage, MessageRecord, QueueRecord, Recovered, Storage,
};

/// A [`Storage`] that forwards to a shared [`MemoryStorage`], so a test can keep a handle on
/// what a broker stored and build a second broker over it.
#[derive(Clone, Default)]
pub struct SharedStorage(pub Arc<Mutex<MemoryStorage>>);

impl SharedStorage {
    pub fn new(inner: MemoryStorage) -> Self {
        SharedStorage(Arc::new(Mutex::new(inner)))
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
        self.0.lock().expect("storage lock")
    }
}

impl Storage for SharedStorage {
    fn save_exchange(&mut self, vhost: &str, record: &ExchangeRecord) {
        self.lock().save_exchange(vhost, record)
    }
    fn delete_exchange(&mut self, vhost: &str, name: &str) {
        self.lock().delete_exchange(vhost, name)
    }
    fn save_queue(&mut self, record: &QueueRecord) {
        self.lock().save_queue(record)
    }
    fn delete_queue(&mut self, vhost: &str, name: &str) {
        self.lock().delete_queue(vhost, name)
    }
    fn save_binding(&mut self, vhost: &str, record: &BindingRecord) {
        self.lock().save_binding(vhost, record)
    }
    fn delete_binding(&mut self, vhost: &str, record: &BindingRecord) {
        self.lock().delete_binding(vhost, record)
    }
    fn save_message(&mut self, vhost: &str, queue: &str, record: &MessageRecord) {
        self.lock().save_message(vhost, queue, record)
    }
    fn delete_message(&mut self, vhost: &str, queue: &str, id: u64) {
        self.lock().delete_message(vhost, queue, id)
    }
    fn mark_delivered(&mut self, vhost: &str, queue: &str, id: u64) {
        self.lock().mark_delivered(vhost, queue, id)
    }
    fn load(&mut self) -> Recovered {
        self.lock().load()
    }
}
