//! Recovery from storage at start: durable exchanges, queues, bindings and persistent
//! messages, named by name in the records, rebuilt with fresh in-memory ids.

use super::exchange::Destination;
use super::queue::{QueueId, QueuedMessage, NEVER};
use super::{Broker, Exchange, Message};
use crate::access::{PasswordHash, Permissions, User};
use crate::codec::ShortStr;
use crate::storage::{BindingRecord, ExchangeRecord, MessageRecord, QueueRecord};
use alloc::vec::Vec;

impl Broker {
    /// Rebuilds durable exchanges, queues, bindings and messages from storage.
    pub(crate) fn recover(&mut self) {
        let recovered = self.storage.load();
        self.next_store_id = self.next_store_id.max(recovered.next_message_id);
        if recovered.vhosts.is_empty() && recovered.users.is_empty() {
            // A store that never held the access model: a new node, or a data directory from
            // before Warren stored it.
            self.add_defaults();
        }
        for v in &recovered.vhosts {
            self.add_vhost(v);
        }
        for u in recovered.users {
            self.access.put_user(User {
                name: u.name,
                password: PasswordHash {
                    hashing: u.hashing,
                    bytes: u.password_hash,
                },
                tags: u.tags,
            });
        }
        for p in recovered.permissions {
            // Stored patterns were checked when set; one that no longer compiles (a build
            // without the regex engine) grants nothing.
            if let Ok(perms) = Permissions::new(&p.configure, &p.write, &p.read) {
                self.access.set_permissions(&p.user, &p.vhost, perms);
            }
        }
        self.recover_exchanges(recovered.exchanges);
        self.recover_queues(recovered.queues);
        self.recover_bindings(recovered.bindings);
        self.recover_messages(recovered.messages);
        self.recover_paged(recovered.paged);
    }

    fn recover_exchanges(&mut self, exchanges: Vec<(ShortStr, ExchangeRecord)>) {
        for (vhost, ex) in exchanges {
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
    }

    fn recover_queues(&mut self, queues: Vec<QueueRecord>) {
        for q in queues {
            self.add_vhost(&q.vhost);
            let id = QueueId(self.next_queue_id);
            self.next_queue_id += 1;
            let mut queue = super::Queue::new(
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
            if let Some(window) = self.queue_window {
                queue.enable_paging(window);
            }
            self.queues.insert(id, queue);
            if let Some(v) = self.vhosts.get_mut(&q.vhost) {
                v.queues.insert(q.name, id);
            }
        }
    }

    /// Bindings whose ends came back (a binding to a queue that did not is dropped).
    fn recover_bindings(&mut self, bindings: Vec<(ShortStr, BindingRecord)>) {
        for (vhost, b) in bindings {
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
    }

    /// Messages recovery left in the store behind each paging queue's head.
    fn recover_paged(&mut self, paged: Vec<crate::storage::PagedQueue>) {
        for p in paged {
            let Some(id) = self
                .vhosts
                .get(&p.vhost)
                .and_then(|v| v.queues.get(&p.queue))
            else {
                continue;
            };
            let id = *id;
            if let Some(q) = self.queues.get_mut(&id) {
                q.restore_paged(p.count, p.bytes, p.after_id, self.now_ms);
                if q.has_outside_head() {
                    self.paging.insert(id);
                }
            }
        }
    }

    /// Messages back in their queues, in queue order; their TTLs start again now.
    fn recover_messages(&mut self, messages: Vec<(ShortStr, ShortStr, Vec<MessageRecord>)>) {
        for (vhost, queue, messages) in messages {
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
                    redelivered: m.deliveries > 0,
                    deliveries: m.deliveries,
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
