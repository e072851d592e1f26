//! The log's records: each storage call is one framed record, its kind the frame's kind byte
//! and its payload the core's record codec (the format the browser journal shares).

use warren_core::codec::ShortStr;
use warren_core::storage::codec::{self, BadRecord};
use warren_core::storage::{
    BindingRecord, ExchangeRecord, MessageRecord, PermissionRecord, QueueRecord, Storage,
    UserRecord,
};

use crate::frame;

pub const EXCHANGE: u8 = 1;
pub const EXCHANGE_DELETED: u8 = 2;
pub const QUEUE: u8 = 3;
pub const QUEUE_DELETED: u8 = 4;
pub const BINDING: u8 = 5;
pub const BINDING_DELETED: u8 = 6;
pub const MESSAGE: u8 = 7;
pub const ACKED: u8 = 8;
pub const DELIVERED: u8 = 9;
/// A transient message a queue paged out of memory: read back while the broker runs, never
/// recovered. The message payload, then its delivery count as u32 (a requeued message keeps
/// its redelivered flag while paged).
pub const TRANSIENT: u8 = 10;
/// A message written with its delivery count (a delivered message written again): the
/// message payload, then the count as u32. One frame, so a crash keeps both or neither; the
/// count in a record of its own could survive apart from the copy and go with an old segment.
pub const COUNTED: u8 = 11;
/// Vhosts, users and permissions (`warren ctl`): saved, and deleted.
pub const VHOST: u8 = 12;
pub const VHOST_DELETED: u8 = 13;
pub const USER: u8 = 14;
pub const USER_DELETED: u8 = 15;
pub const PERMISSION: u8 = 16;
/// Payload: the `name` shape, `user vhost`.
pub const PERMISSION_DELETED: u8 = 17;

/// The message payload and delivery count of a message frame (`MESSAGE`, `TRANSIENT` or
/// `COUNTED`), or None for another kind.
pub fn message_parts(kind: u8, payload: &[u8]) -> Option<(&[u8], u32)> {
    match kind {
        MESSAGE => Some((payload, 0)),
        TRANSIENT | COUNTED => {
            let at = payload.len().checked_sub(4)?;
            let count = u32::from_le_bytes(payload[at..].try_into().ok()?);
            Some((&payload[..at], count))
        }
        _ => None,
    }
}

/// One record read back, other than a message (replay reads those with
/// `codec::peek_message`, so that recovering a long queue copies none of its bodies).
pub enum Record {
    Exchange(ShortStr, ExchangeRecord),
    ExchangeDeleted(ShortStr, ShortStr),
    Queue(QueueRecord),
    QueueDeleted(ShortStr, ShortStr),
    Binding(ShortStr, BindingRecord),
    BindingDeleted(ShortStr, BindingRecord),
    Acked(ShortStr, ShortStr, u64),
    /// One more delivery.
    Delivered(ShortStr, ShortStr, u64),
    Vhost(ShortStr),
    VhostDeleted(ShortStr),
    User(UserRecord),
    UserDeleted(ShortStr),
    Permission(PermissionRecord),
    /// (user, vhost)
    PermissionDeleted(ShortStr, ShortStr),
}

impl Record {
    pub fn decode(kind: u8, payload: &[u8]) -> Result<Record, BadRecord> {
        Ok(match kind {
            EXCHANGE => {
                let (v, r) = codec::decode_exchange(payload)?;
                Record::Exchange(v, r)
            }
            EXCHANGE_DELETED => {
                let (v, n) = codec::decode_name(payload)?;
                Record::ExchangeDeleted(v, n)
            }
            QUEUE => Record::Queue(codec::decode_queue(payload)?),
            QUEUE_DELETED => {
                let (v, n) = codec::decode_name(payload)?;
                Record::QueueDeleted(v, n)
            }
            BINDING => {
                let (v, r) = codec::decode_binding(payload)?;
                Record::Binding(v, r)
            }
            BINDING_DELETED => {
                let (v, r) = codec::decode_binding(payload)?;
                Record::BindingDeleted(v, r)
            }
            ACKED => {
                let (v, q, id) = codec::decode_delivered(payload)?;
                Record::Acked(v, q, id)
            }
            DELIVERED => {
                let (v, q, id) = codec::decode_delivered(payload)?;
                Record::Delivered(v, q, id)
            }
            VHOST => Record::Vhost(codec::decode_vhost(payload)?),
            VHOST_DELETED => Record::VhostDeleted(codec::decode_vhost(payload)?),
            USER => Record::User(codec::decode_user(payload)?),
            USER_DELETED => Record::UserDeleted(codec::decode_vhost(payload)?),
            PERMISSION => Record::Permission(codec::decode_permission(payload)?),
            PERMISSION_DELETED => {
                let (u, v) = codec::decode_name(payload)?;
                Record::PermissionDeleted(u, v)
            }

            _ => return Err(BadRecord),
        })
    }

    /// The message id the record mentions, if any.
    pub fn message_id(&self) -> Option<u64> {
        match self {
            Record::Acked(_, _, id) | Record::Delivered(_, _, id) => Some(*id),
            _ => None,
        }
    }

    /// It saves or deletes an exchange, queue or binding.
    pub fn is_definition(&self) -> bool {
        self.message_id().is_none()
    }

    /// Plays the record into a store (recovery replays the log into a `MemoryStorage`).
    pub fn apply(&self, to: &mut impl Storage) {
        match self {
            Record::Exchange(v, r) => to.save_exchange(v, r),
            Record::ExchangeDeleted(v, n) => to.delete_exchange(v, n),
            Record::Queue(r) => to.save_queue(r),
            Record::QueueDeleted(v, n) => to.delete_queue(v, n),
            Record::Binding(v, r) => to.save_binding(v, r),
            Record::BindingDeleted(v, r) => to.delete_binding(v, r),
            Record::Acked(v, q, id) => to.delete_message(v, q, *id),
            Record::Delivered(v, q, id) => to.mark_delivered(v, q, *id),
            Record::Vhost(v) => to.save_vhost(v),
            Record::VhostDeleted(v) => to.delete_vhost(v),
            Record::User(u) => to.save_user(u),
            Record::UserDeleted(u) => to.delete_user(u),
            Record::Permission(p) => to.save_permission(p),
            Record::PermissionDeleted(u, v) => to.delete_permission(u, v),
        }
    }
}

pub fn exchange(out: &mut Vec<u8>, vhost: &str, r: &ExchangeRecord) {
    frame::append(out, EXCHANGE, |o| codec::encode_exchange(o, vhost, r));
}

pub fn exchange_deleted(out: &mut Vec<u8>, vhost: &str, name: &str) {
    frame::append(out, EXCHANGE_DELETED, |o| {
        codec::encode_name(o, vhost, name)
    });
}

pub fn queue(out: &mut Vec<u8>, r: &QueueRecord) {
    frame::append(out, QUEUE, |o| codec::encode_queue(o, r));
}

pub fn queue_deleted(out: &mut Vec<u8>, vhost: &str, name: &str) {
    frame::append(out, QUEUE_DELETED, |o| codec::encode_name(o, vhost, name));
}

pub fn binding(out: &mut Vec<u8>, vhost: &str, r: &BindingRecord) {
    frame::append(out, BINDING, |o| codec::encode_binding(o, vhost, r));
}

pub fn binding_deleted(out: &mut Vec<u8>, vhost: &str, r: &BindingRecord) {
    frame::append(out, BINDING_DELETED, |o| codec::encode_binding(o, vhost, r));
}

/// A message record: [`MESSAGE`], [`COUNTED`] for one already delivered, or [`TRANSIENT`] for
/// a message that must not outlive the process (stored only because its queue paged it out).
pub fn message(out: &mut Vec<u8>, vhost: &str, queue: &str, r: &MessageRecord) {
    let kind = match (r.outlives_restart(), r.deliveries) {
        (false, _) => TRANSIENT,
        (true, 0) => MESSAGE,
        (true, _) => COUNTED,
    };
    frame::append(out, kind, |o| {
        codec::encode_message(o, vhost, queue, r);
        if kind != MESSAGE {
            o.extend_from_slice(&r.deliveries.to_le_bytes());
        }
    });
}

pub fn acked(out: &mut Vec<u8>, vhost: &str, queue: &str, id: u64) {
    frame::append(out, ACKED, |o| codec::encode_delivered(o, vhost, queue, id));
}

pub fn delivered(out: &mut Vec<u8>, vhost: &str, queue: &str, id: u64) {
    frame::append(out, DELIVERED, |o| {
        codec::encode_delivered(o, vhost, queue, id)
    });
}

pub fn vhost(out: &mut Vec<u8>, name: &str) {
    frame::append(out, VHOST, |o| codec::encode_vhost(o, name));
}

pub fn vhost_deleted(out: &mut Vec<u8>, name: &str) {
    frame::append(out, VHOST_DELETED, |o| codec::encode_vhost(o, name));
}

pub fn user(out: &mut Vec<u8>, r: &UserRecord) {
    frame::append(out, USER, |o| codec::encode_user(o, r));
}

/// A user's name, in the vhost record's shape.
pub fn user_deleted(out: &mut Vec<u8>, name: &str) {
    frame::append(out, USER_DELETED, |o| codec::encode_vhost(o, name));
}

pub fn permission(out: &mut Vec<u8>, r: &PermissionRecord) {
    frame::append(out, PERMISSION, |o| codec::encode_permission(o, r));
}

pub fn permission_deleted(out: &mut Vec<u8>, user: &str, vhost: &str) {
    frame::append(out, PERMISSION_DELETED, |o| {
        codec::encode_name(o, user, vhost)
    });
}
