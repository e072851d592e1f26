//! What storage holds: durable exchanges, queues and bindings, and persistent messages, named
//! by name (never by the broker's in-memory ids), so a new broker can rebuild itself from them.

use bytes::Bytes;

use alloc::string::String;
use alloc::vec::Vec;

use crate::access::Hashing;
use crate::codec::{FieldTable, ShortStr};
use crate::exchange_kind::ExchangeKind;

/// A durable exchange as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct ExchangeRecord {
    pub name: ShortStr,
    pub kind: ExchangeKind,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
}

/// A durable queue as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct QueueRecord {
    pub vhost: ShortStr,
    pub name: ShortStr,
    pub auto_delete: bool,
    pub arguments: FieldTable,
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

/// A persistent message in a durable queue, as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct MessageRecord {
    pub id: u64,
    pub exchange: ShortStr,
    pub routing_key: ShortStr,
    pub properties: Bytes,
    pub body: Bytes,
    /// Times it was delivered to a consumer that was to ack it: more than 0, it comes back
    /// redelivered.
    pub deliveries: u32,
    /// Stored only while its queue pages it out of memory, never recovered whatever its
    /// delivery mode: a message of a queue that is not durable (spilled under the memory
    /// alarm). A transient message is never recovered either (see
    /// [`MessageRecord::outlives_restart`]).
    pub paged_only: bool,
}

impl MessageRecord {
    /// `delivery_mode = 2` in a durable queue: it outlives a restart. Any other is stored only
    /// while a queue pages it out of memory.
    pub fn outlives_restart(&self) -> bool {
        !self.paged_only
            && matches!(
                crate::codec::peek_delivery_mode(&self.properties),
                Ok(Some(2))
            )
    }
}

/// A user as stored (see [`crate::access::User`]).
#[derive(Clone, Debug, PartialEq)]
pub struct UserRecord {
    pub name: ShortStr,
    pub hashing: Hashing,
    /// `salt ++ digest`; empty: no password.
    pub password_hash: Vec<u8>,
    pub tags: Vec<ShortStr>,
}

/// A user's permissions in a vhost as stored: the three patterns as written.
#[derive(Clone, Debug, PartialEq)]
pub struct PermissionRecord {
    pub user: ShortStr,
    pub vhost: ShortStr,
    pub configure: String,
    pub write: String,
    pub read: String,
}
