//! Exchange and queue methods: declare, delete, bind, unbind, purge (AMQP 0-9-1 §1.6, §1.7).

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

use super::exchange::{Binding, Destination};
use super::permit::Resource;
use super::queue::{Queue, QueueId};
use super::{Broker, ConnId, Exchange, ExchangeKind};
use crate::access::Permission::{self, Configure, Read, Write};
use crate::channel_fault;
use crate::codec::{
    ExchangeBind, ExchangeBindOk, ExchangeDeclare, ExchangeDeclareOk, ExchangeDelete,
    ExchangeDeleteOk, ExchangeUnbind, ExchangeUnbindOk, FieldTable, FieldValue, QueueBind,
    QueueBindOk, QueueDeclare, QueueDeclareOk, QueueDelete, QueueDeleteOk, QueuePurge,
    QueuePurgeOk, QueueUnbind, QueueUnbindOk, ShortStr,
};
use crate::connection_fault;
use crate::reply::Fault;

/// Queue arguments RabbitMQ compares on redeclare; others are ignored.
const EQUIVALENCE_ARGS: &[&str] = &[
    "x-expires",
    "x-message-ttl",
    "x-dead-letter-exchange",
    "x-dead-letter-routing-key",
    "x-max-length",
    "x-max-length-bytes",
    "x-max-priority",
    "x-overflow",
    "x-queue-mode",
    "x-single-active-consumer",
    "x-queue-type",
];

fn not_found_queue(name: &str, vhost: &str) -> Fault {
    channel_fault!(NOT_FOUND, "no queue '{name}' in vhost '{vhost}'")
}

fn not_found_exchange(name: &str, vhost: &str) -> Fault {
    channel_fault!(NOT_FOUND, "no exchange '{name}' in vhost '{vhost}'")
}

fn default_exchange_refused() -> Fault {
    channel_fault!(
        ACCESS_REFUSED,
        "operation not permitted on the default exchange"
    )
}

fn inequivalent(what: &str, arg: &str, name: &str, vhost: &str, got: bool, have: bool) -> Fault {
    channel_fault!(
        PRECONDITION_FAILED,
        "inequivalent arg '{arg}' for {what} '{name}' in vhost '{vhost}': received '{got}' but current is '{have}'"
    )
}

/// RabbitMQ's name for a field value's type, as it prints it in reply texts.
pub(crate) fn type_name(v: &FieldValue) -> &'static str {
    match v {
        FieldValue::Bool(_) => "bool",
        FieldValue::I8(_) => "byte",
        FieldValue::U8(_) => "unsignedbyte",
        FieldValue::I16(_) => "short",
        FieldValue::U16(_) => "unsignedshort",
        FieldValue::I32(_) => "signedint",
        FieldValue::U32(_) => "unsignedint",
        FieldValue::I64(_) => "long",
        FieldValue::F32(_) => "float",
        FieldValue::F64(_) => "double",
        FieldValue::Decimal { .. } => "decimal",
        FieldValue::LongStr(_) => "longstr",
        FieldValue::Array(_) => "array",
        FieldValue::Timestamp(_) => "timestamp",
        FieldValue::Table(_) => "table",
        FieldValue::Void => "void",
        FieldValue::Bytes(_) => "binary",
    }
}

fn describe(v: Option<&FieldValue>) -> String {
    match v {
        None => String::from("none"),
        Some(v) => {
            let shown = match v {
                FieldValue::LongStr(s) | FieldValue::Bytes(s) => {
                    String::from(s.as_str().unwrap_or("<binary>"))
                }
                FieldValue::Bool(b) => format!("{b}"),
                FieldValue::F32(f) => format!("{f}"),
                FieldValue::F64(f) => format!("{f}"),
                other => match other.as_i64() {
                    Some(n) => format!("{n}"),
                    None => format!("{other:?}"),
                },
            };
            format!("the value '{shown}' of type '{}'", type_name(v))
        }
    }
}

fn args_equivalent(a: Option<&FieldValue>, b: Option<&FieldValue>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(x), Some(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(p), Some(q)) => p == q,
            _ => x == y,
        },
        _ => false,
    }
}

/// A passive declare needs any permission; a refusal names `configure`.
const ANY: [Permission; 3] = [Read, Write, Configure];

/// A string argument of a declare (`x-dead-letter-exchange`, `alternate-exchange`).
fn string_arg<'a>(args: &'a FieldTable, key: &str) -> Option<&'a str> {
    args.get(key)?.as_str()
}

impl Broker {
    pub(crate) fn vhost_of(&self, conn: ConnId) -> Result<ShortStr, Fault> {
        self.conn_vhost(conn)
    }

    /// Resolves an empty queue name to the channel's most recently declared queue.
    pub(crate) fn resolve_queue_name(
        &mut self,
        conn: ConnId,
        channel: u16,
        name: ShortStr,
    ) -> Result<ShortStr, Fault> {
        if !name.is_empty() {
            return Ok(name);
        }
        self.channel_mut(conn, channel)?
            .last_queue
            .clone()
            .ok_or_else(|| channel_fault!(NOT_FOUND, "no previously declared queue"))
    }

    /// Finds a queue this connection may use (405 if another connection holds it exclusively).
    pub(crate) fn usable_queue(
        &self,
        conn: ConnId,
        vhost: &ShortStr,
        name: &str,
    ) -> Result<QueueId, Fault> {
        let id = *self
            .vhosts
            .get(vhost)
            .and_then(|v| v.queues.get(name))
            .ok_or_else(|| not_found_queue(name, vhost))?;
        let q = &self.queues[&id];
        if let Some(owner) = q.exclusive_owner {
            if owner != conn {
                return Err(locked(name, vhost));
            }
        }
        Ok(id)
    }

    pub(crate) fn exchange_declare(
        &mut self,
        conn: ConnId,
        channel: u16,
        m: ExchangeDeclare,
    ) -> Result<(), Fault> {
        let vhost = self.vhost_of(conn)?;
        let name = m.exchange.clone();
        if name.is_empty() {
            return Err(default_exchange_refused());
        }
        if m.passive {
            self.permit_any(conn, channel, &ANY, Resource::Exchange, &name)?;
        } else {
            self.permit(conn, channel, Configure, Resource::Exchange, &name)?;
            let new = !self.vhosts[&vhost].exchanges.contains_key(&name);
            if let (true, Some(ae)) = (new, string_arg(&m.arguments, "alternate-exchange")) {
                self.permit(conn, channel, Read, Resource::Exchange, &name)?;
                self.permit(conn, channel, Write, Resource::Exchange, ae)?;
            }
        }
        let kind_text = m.kind.as_str();
        let v = self
            .vhosts
            .get_mut(&vhost)
            .expect("open connections have a vhost");
        if m.passive {
            if !v.exchanges.contains_key(&name) {
                return Err(not_found_exchange(&name, &vhost));
            }
        } else {
            let Some(kind) = ExchangeKind::parse(kind_text) else {
                return Err(connection_fault!(
                    COMMAND_INVALID,
                    "unknown exchange type '{kind_text}'"
                ));
            };
            // Only new names are checked: redeclaring `amq.direct` as it is succeeds.
            if !v.exchanges.contains_key(&name) && name.starts_with("amq.") {
                return Err(channel_fault!(
                    ACCESS_REFUSED,
                    "exchange name '{name}' contains reserved prefix 'amq.*'"
                ));
            }
            if let Some(ex) = v.exchanges.get(&name) {
                if ex.kind != kind {
                    return Err(channel_fault!(
                        PRECONDITION_FAILED,
                        "inequivalent arg 'type' for exchange '{name}' in vhost '{vhost}': received '{}' but current is '{}'",
                        kind.as_str(),
                        ex.kind.as_str()
                    ));
                }
                for (arg, got, have) in [
                    ("durable", m.durable, ex.durable),
                    ("auto_delete", m.auto_delete, ex.auto_delete),
                    ("internal", m.internal, ex.internal),
                ] {
                    if got != have {
                        return Err(inequivalent("exchange", arg, &name, &vhost, got, have));
                    }
                }
            } else {
                let ex = Exchange::new(
                    name.clone(),
                    kind,
                    m.durable,
                    m.auto_delete,
                    m.internal,
                    m.arguments.clone(),
                );
                if ex.durable {
                    self.storage.save_exchange(&vhost, &ex.record());
                }
                v.exchanges.insert(name, ex);
            }
        }
        if !m.no_wait {
            self.reply(conn, channel, ExchangeDeclareOk);
        }
        Ok(())
    }

    pub(crate) fn exchange_delete(
        &mut self,
        conn: ConnId,
        channel: u16,
        m: ExchangeDelete,
    ) -> Result<(), Fault> {
        let vhost = self.vhost_of(conn)?;
        let name = m.exchange;
        if name.is_empty() {
            return Err(default_exchange_refused());
        }
        if name.starts_with("amq.") {
            return Err(channel_fault!(
                ACCESS_REFUSED,
                "deletion of system exchange '{name}' in vhost '{vhost}' not allowed"
            ));
        }
        self.permit(conn, channel, Configure, Resource::Exchange, &name)?;
        let v = &self.vhosts[&vhost];
        if let Some(ex) = v.exchanges.get(&name) {
            if m.if_unused && ex.has_bindings() {
                return Err(channel_fault!(
                    PRECONDITION_FAILED,
                    "exchange '{name}' in vhost '{vhost}' in use"
                ));
            }
            self.delete_exchange(&vhost, &name);
        }
        if !m.no_wait {
            self.reply(conn, channel, ExchangeDeleteOk);
        }
        Ok(())
    }

    /// Removes an exchange and every binding to or from it.
    pub(crate) fn delete_exchange(&mut self, vhost: &ShortStr, name: &ShortStr) {
        let Some(v) = self.vhosts.get_mut(vhost) else {
            return;
        };
        let Some(ex) = v.exchanges.remove(name) else {
            return;
        };
        if ex.durable {
            self.storage.delete_exchange(vhost, name);
            for b in ex.bindings() {
                self.storage
                    .delete_binding(vhost, &b.record(name, &self.queues));
            }
        }
        self.unbind_everywhere(vhost, &Destination::Exchange(name.clone()));
    }

    /// Removes every binding that leads to `dest`, then auto-deletes emptied exchanges.
    pub(crate) fn unbind_everywhere(&mut self, vhost: &ShortStr, dest: &Destination) {
        let Some(v) = self.vhosts.get_mut(vhost) else {
            return;
        };
        let mut emptied = Vec::new();
        for ex in v.exchanges.values_mut() {
            let before: Vec<Binding> = ex
                .bindings()
                .iter()
                .filter(|b| &b.destination == dest)
                .cloned()
                .collect();
            if before.is_empty() {
                continue;
            }
            ex.unbind_destination(dest);
            if ex.durable {
                for b in &before {
                    self.storage
                        .delete_binding(vhost, &b.record(&ex.name, &self.queues));
                }
            }
            if ex.auto_delete && !ex.has_bindings() {
                emptied.push(ex.name.clone());
            }
        }
        for name in emptied {
            self.delete_exchange(vhost, &name);
        }
    }

    pub(crate) fn exchange_bind(
        &mut self,
        conn: ConnId,
        channel: u16,
        m: ExchangeBind,
    ) -> Result<(), Fault> {
        let vhost = self.vhost_of(conn)?;
        self.permit_binding(conn, channel, &m.source, Resource::Exchange, &m.destination)?;
        self.check_bind_ends(&vhost, &m.source, &m.destination, true)?;
        let binding = Binding {
            destination: Destination::Exchange(m.destination.clone()),
            routing_key: m.routing_key,
            arguments: m.arguments,
        };
        self.add_binding(&vhost, &m.source, binding);
        if !m.no_wait {
            self.reply(conn, channel, ExchangeBindOk);
        }
        Ok(())
    }

    pub(crate) fn exchange_unbind(
        &mut self,
        conn: ConnId,
        channel: u16,
        m: ExchangeUnbind,
    ) -> Result<(), Fault> {
        let vhost = self.vhost_of(conn)?;
        self.permit_binding(conn, channel, &m.source, Resource::Exchange, &m.destination)?;
        if m.source.is_empty() || m.destination.is_empty() {
            return Err(default_exchange_refused());
        }
        // Unbinding what is not bound succeeds, missing ends included (RabbitMQ 3.x).
        let binding = Binding {
            destination: Destination::Exchange(m.destination.clone()),
            routing_key: m.routing_key,
            arguments: m.arguments,
        };
        self.remove_binding(&vhost, &m.source, &binding);
        if !m.no_wait {
            self.reply(conn, channel, ExchangeUnbindOk);
        }
        Ok(())
    }

    /// A binding needs `write` on its destination and `read` on its source exchange.
    fn permit_binding(
        &self,
        conn: ConnId,
        channel: u16,
        source: &str,
        destination_kind: Resource,
        destination: &str,
    ) -> Result<(), Fault> {
        self.permit(conn, channel, Write, destination_kind, destination)?;
        self.permit(conn, channel, Read, Resource::Exchange, source)
    }

    /// Checks both ends of a binding exist (and neither is the default exchange).
    fn check_bind_ends(
        &self,
        vhost: &ShortStr,
        source: &str,
        destination: &str,
        destination_is_exchange: bool,
    ) -> Result<(), Fault> {
        let v = &self.vhosts[vhost];
        if source.is_empty() || (destination_is_exchange && destination.is_empty()) {
            return Err(default_exchange_refused());
        }
        if destination_is_exchange && !v.exchanges.contains_key(destination) {
            return Err(not_found_exchange(destination, vhost));
        }
        if !v.exchanges.contains_key(source) {
            return Err(not_found_exchange(source, vhost));
        }
        Ok(())
    }

    fn add_binding(&mut self, vhost: &ShortStr, source: &ShortStr, binding: Binding) {
        let durable = self.binding_is_durable(vhost, source, &binding.destination);
        let record = durable.then(|| binding.record(source, &self.queues));
        let Some(ex) = self
            .vhosts
            .get_mut(vhost)
            .and_then(|v| v.exchanges.get_mut(source))
        else {
            return;
        };
        if ex.bind(binding) {
            if let Some(record) = record {
                self.storage.save_binding(vhost, &record);
            }
        }
    }

    fn remove_binding(&mut self, vhost: &ShortStr, source: &ShortStr, binding: &Binding) {
        let record = binding.record(source, &self.queues);
        let Some(ex) = self
            .vhosts
            .get_mut(vhost)
            .and_then(|v| v.exchanges.get_mut(source))
        else {
            return;
        };
        if ex.unbind(binding) {
            let (durable, empty_auto_delete) = (ex.durable, ex.auto_delete && !ex.has_bindings());
            if durable {
                self.storage.delete_binding(vhost, &record);
            }
            if empty_auto_delete {
                self.delete_exchange(vhost, source);
            }
        }
    }

    /// A binding is stored when both its ends are durable.
    fn binding_is_durable(&self, vhost: &ShortStr, source: &ShortStr, dest: &Destination) -> bool {
        let v = &self.vhosts[vhost];
        let source_durable = v.exchanges.get(source).is_some_and(|e| e.durable);
        let dest_durable = match dest {
            Destination::Queue(id) => self.queues.get(id).is_some_and(Queue::is_stored),
            Destination::Exchange(name) => v.exchanges.get(name).is_some_and(|e| e.durable),
        };
        source_durable && dest_durable
    }

    pub(crate) fn queue_declare(
        &mut self,
        conn: ConnId,
        channel: u16,
        mut m: QueueDeclare,
    ) -> Result<(), Fault> {
        let vhost = self.vhost_of(conn)?;
        // An exclusive queue dies with its connection, so it is never durable (RabbitMQ).
        m.durable &= !m.exclusive;
        if m.passive {
            return self.queue_declare_passive(conn, channel, &vhost, &m);
        }
        let mut name = m.queue.clone();
        if name.is_empty() {
            name = ShortStr::from(self.rng.name("amq.gen-"));
        }
        self.permit(conn, channel, Configure, Resource::Queue, &name)?;
        let existing = self.vhosts[&vhost].queues.get(&name).copied();
        if let (None, Some(dlx)) = (existing, string_arg(&m.arguments, "x-dead-letter-exchange")) {
            self.permit(conn, channel, Read, Resource::Queue, &name)?;
            self.permit(conn, channel, Write, Resource::Exchange, dlx)?;
        }
        // Only new names are checked: a server-named queue may be redeclared by its name.
        if existing.is_none() && name.starts_with("amq.") && !m.queue.is_empty() {
            return Err(channel_fault!(
                ACCESS_REFUSED,
                "queue name '{name}' contains reserved prefix 'amq.*'"
            ));
        }
        let id = match existing {
            Some(id) => {
                self.check_equivalent_queue(conn, id, &vhost, &name, &m)?;
                id
            }
            None => self.create_queue(conn, &vhost, &name, &m)?,
        };
        self.answer_queue_declare(conn, channel, id, name, m.no_wait)
    }

    /// `queue.declare passive=true`: the queue must exist and be usable by this connection.
    fn queue_declare_passive(
        &mut self,
        conn: ConnId,
        channel: u16,
        vhost: &ShortStr,
        m: &QueueDeclare,
    ) -> Result<(), Fault> {
        let name = self.resolve_queue_name(conn, channel, m.queue.clone())?;
        if !self.is_reply_address(&name) {
            self.permit_any(conn, channel, &ANY, Resource::Queue, &name)?;
        }
        if self.is_reply_address(&name) {
            if !m.no_wait {
                let ok = QueueDeclareOk {
                    queue: name,
                    message_count: 0,
                    consumer_count: 0,
                };
                self.reply(conn, channel, ok);
            }
            return Ok(());
        }
        let id = self.usable_queue(conn, vhost, &name)?;
        self.answer_queue_declare(conn, channel, id, name, m.no_wait)
    }

    /// A redeclaration must match the queue as declared (RabbitMQ's equivalence check).
    fn check_equivalent_queue(
        &self,
        conn: ConnId,
        id: QueueId,
        vhost: &ShortStr,
        name: &ShortStr,
        m: &QueueDeclare,
    ) -> Result<(), Fault> {
        let q = &self.queues[&id];
        let owner_ok = match q.exclusive_owner {
            Some(owner) => owner == conn && m.exclusive,
            None => !m.exclusive,
        };
        if !owner_ok {
            return Err(locked(name, vhost));
        }
        for (arg, got, have) in [
            ("durable", m.durable, q.durable),
            ("auto_delete", m.auto_delete, q.auto_delete),
        ] {
            if got != have {
                return Err(inequivalent("queue", arg, name, vhost, got, have));
            }
        }
        for key in EQUIVALENCE_ARGS {
            let (got, have) = (m.arguments.get(key), q.arguments.get(key));
            let defaulted_type = *key == "x-queue-type"
                && [got, have]
                    .iter()
                    .all(|v| v.is_none_or(|v| v.as_str() == Some("classic")));
            if !defaulted_type && !args_equivalent(got, have) {
                return Err(channel_fault!(
                    PRECONDITION_FAILED,
                    "inequivalent arg '{key}' for queue '{name}' in vhost '{vhost}': received {} but current is {}",
                    describe(got),
                    describe(have)
                ));
            }
        }
        Ok(())
    }

    /// A new queue: validated, stored when durable, owned by `conn` when exclusive.
    fn create_queue(
        &mut self,
        conn: ConnId,
        vhost: &ShortStr,
        name: &ShortStr,
        m: &QueueDeclare,
    ) -> Result<QueueId, Fault> {
        validate_queue_arguments(
            &m.arguments,
            name,
            vhost,
            m.durable,
            m.exclusive,
            m.auto_delete,
        )?;
        let id = QueueId(self.next_queue_id);
        self.next_queue_id += 1;
        let mut q = Queue::new(
            id,
            vhost.clone(),
            name.clone(),
            m.durable,
            m.exclusive.then_some(conn),
            m.auto_delete,
            m.arguments.clone(),
            self.now_ms,
        );
        if let Some(window) = self.queue_window {
            q.enable_paging(window);
        }
        if q.limits.is_timed() {
            self.timed.insert(id);
        }
        if q.durable && !m.exclusive {
            self.storage.save_queue(&q.record());
        }
        self.queues.insert(id, q);
        self.vhosts
            .get_mut(vhost)
            .expect("vhost exists")
            .queues
            .insert(name.clone(), id);
        if m.exclusive {
            if let Some(c) = self.conns.get_mut(&conn) {
                c.exclusive_queues.push(id);
            }
        }
        Ok(id)
    }

    /// `declare-ok` with the queue's counts (expired heads gone first); the queue counts as
    /// used, and becomes the channel's last declared queue.
    fn answer_queue_declare(
        &mut self,
        conn: ConnId,
        channel: u16,
        id: QueueId,
        name: ShortStr,
        no_wait: bool,
    ) -> Result<(), Fault> {
        self.expire_head(id);
        let now = self.now_ms;
        let q = self.queues.get_mut(&id).expect("declared above");
        q.last_used_ms = now;
        let ok = QueueDeclareOk {
            queue: q.name.clone(),
            message_count: q.message_count(),
            consumer_count: q.consumer_count(),
        };
        self.channel_mut(conn, channel)?.last_queue = Some(name);
        if !no_wait {
            self.reply(conn, channel, ok);
        }
        Ok(())
    }

    pub(crate) fn queue_bind(
        &mut self,
        conn: ConnId,
        channel: u16,
        m: QueueBind,
    ) -> Result<(), Fault> {
        let vhost = self.vhost_of(conn)?;
        let queue = self.resolve_queue_name(conn, channel, m.queue)?;
        self.permit_binding(conn, channel, &m.exchange, Resource::Queue, &queue)?;
        if m.exchange.is_empty() {
            return Err(default_exchange_refused());
        }
        let id = self.usable_queue(conn, &vhost, &queue)?;
        self.check_bind_ends(&vhost, &m.exchange, "", false)?;
        let binding = Binding {
            destination: Destination::Queue(id),
            routing_key: m.routing_key,
            arguments: m.arguments,
        };
        self.add_binding(&vhost, &m.exchange, binding);
        if !m.no_wait {
            self.reply(conn, channel, QueueBindOk);
        }
        Ok(())
    }

    pub(crate) fn queue_unbind(
        &mut self,
        conn: ConnId,
        channel: u16,
        m: QueueUnbind,
    ) -> Result<(), Fault> {
        let vhost = self.vhost_of(conn)?;
        let queue = self.resolve_queue_name(conn, channel, m.queue)?;
        self.permit_binding(conn, channel, &m.exchange, Resource::Queue, &queue)?;
        if m.exchange.is_empty() {
            return Err(default_exchange_refused());
        }
        // Unbinding what is not bound succeeds, missing ends included (RabbitMQ 3.x).
        match self.usable_queue(conn, &vhost, &queue) {
            Ok(id) => {
                let binding = Binding {
                    destination: Destination::Queue(id),
                    routing_key: m.routing_key,
                    arguments: m.arguments,
                };
                self.remove_binding(&vhost, &m.exchange, &binding);
            }
            Err(f) if f.code == crate::reply::ReplyCode::NOT_FOUND => {}
            Err(f) => return Err(f),
        }
        self.reply(conn, channel, QueueUnbindOk);
        Ok(())
    }

    pub(crate) fn queue_purge(
        &mut self,
        conn: ConnId,
        channel: u16,
        m: QueuePurge,
    ) -> Result<(), Fault> {
        let vhost = self.vhost_of(conn)?;
        let queue = self.resolve_queue_name(conn, channel, m.queue)?;
        self.permit(conn, channel, Read, Resource::Queue, &queue)?;
        let id = self.usable_queue(conn, &vhost, &queue)?;
        let count = self.purge(id);
        if !m.no_wait {
            self.reply(
                conn,
                channel,
                QueuePurgeOk {
                    message_count: count,
                },
            );
        }
        Ok(())
    }

    /// Drops a queue's ready messages (in memory and in the store); how many it held.
    pub(crate) fn purge(&mut self, id: QueueId) -> u32 {
        let Some(q) = self.queues.get_mut(&id) else {
            return 0;
        };
        let count = q.message_count();
        let purged = q.drain_ready();
        q.drain_outside_head(&mut *self.storage);
        self.paging.remove(&id);
        let (qv, qn) = (q.vhost.clone(), q.name.clone());
        for m in purged {
            if m.store_id != 0 {
                self.storage.delete_message(&qv, &qn, m.store_id);
            }
        }
        count
    }

    pub(crate) fn queue_delete(
        &mut self,
        conn: ConnId,
        channel: u16,
        m: QueueDelete,
    ) -> Result<(), Fault> {
        let vhost = self.vhost_of(conn)?;
        let queue = self.resolve_queue_name(conn, channel, m.queue)?;
        self.permit(conn, channel, Configure, Resource::Queue, &queue)?;
        let id = match self.usable_queue(conn, &vhost, &queue) {
            Ok(id) => id,
            // Deleting a queue that does not exist succeeds, as in RabbitMQ.
            Err(f) if f.code == crate::reply::ReplyCode::NOT_FOUND => {
                if !m.no_wait {
                    self.reply(conn, channel, QueueDeleteOk { message_count: 0 });
                }
                return Ok(());
            }
            Err(f) => return Err(f),
        };
        let q = &self.queues[&id];
        if m.if_unused && !q.consumers.is_empty() {
            return Err(channel_fault!(
                PRECONDITION_FAILED,
                "queue '{queue}' in vhost '{vhost}' in use"
            ));
        }
        if m.if_empty && !q.is_empty() {
            return Err(channel_fault!(
                PRECONDITION_FAILED,
                "queue '{queue}' in vhost '{vhost}' not empty"
            ));
        }
        // delete-ok goes out before the cancel notifications the deletion causes (RabbitMQ).
        if !m.no_wait {
            let message_count = self.queues[&id].message_count();
            self.reply(conn, channel, QueueDeleteOk { message_count });
        }
        self.delete_queue_by_id(id, Some((conn, channel)));
        Ok(())
    }

    /// Deletes a queue: cancels its consumers (notifying those who asked), drops its bindings
    /// and messages. Returns how many ready messages it held.
    pub(crate) fn delete_queue_by_id(&mut self, id: QueueId, _by: Option<(ConnId, u16)>) -> u32 {
        let Some(vhost) = self.queues.get(&id).map(|q| q.vhost.clone()) else {
            return 0;
        };
        // Bindings go first, while the queue can still be named in their storage records.
        self.unbind_everywhere(&vhost, &Destination::Queue(id));
        let Some(q) = self.queues.remove(&id) else {
            return 0;
        };
        self.timed.remove(&id);
        if let Some(v) = self.vhosts.get_mut(&q.vhost) {
            v.queues.remove(&q.name);
        }
        if let Some(owner) = q.exclusive_owner {
            if let Some(c) = self.conns.get_mut(&owner) {
                c.exclusive_queues.retain(|x| *x != id);
            }
        }
        for consumer in &q.consumers {
            let Some(c) = self.conns.get_mut(&consumer.conn) else {
                continue;
            };
            let notify = c.capabilities.consumer_cancel_notify;
            if let Some(ch) = c.channels.get_mut(&consumer.channel) {
                ch.consumers.remove(&consumer.tag);
            }
            if notify {
                self.reply(
                    consumer.conn,
                    consumer.channel,
                    crate::codec::BasicCancel {
                        consumer_tag: consumer.tag.clone(),
                        no_wait: true,
                    },
                );
            }
        }
        if q.stored_anything() {
            self.storage.delete_queue(&q.vhost, &q.name);
        }
        q.message_count()
    }
}

fn locked(name: &str, vhost: &str) -> Fault {
    channel_fault!(
        RESOURCE_LOCKED,
        "cannot obtain exclusive access to locked queue '{name}' in vhost '{vhost}'. \
         It could be originally declared on another connection or the exclusive property \
         value does not match that of the original declaration."
    )
}

/// `x-queue-type`: classic, quorum or stream; RabbitMQ allows the last two only durable,
/// not exclusive and not auto-delete.
fn validate_queue_type(
    v: &FieldValue,
    name: &str,
    vhost: &str,
    durable: bool,
    exclusive: bool,
    auto_delete: bool,
) -> Result<(), Fault> {
    match v.as_str() {
        Some("classic") => Ok(()),
        Some("quorum") | Some("stream") => {
            let bad = if !durable {
                Some("non-durable")
            } else if exclusive {
                Some("exclusive")
            } else if auto_delete {
                Some("auto-delete")
            } else {
                None
            };
            match bad {
                Some(prop) => Err(channel_fault!(
                    PRECONDITION_FAILED,
                    "invalid property '{prop}' for queue '{name}' in vhost '{vhost}'"
                )),
                None => Ok(()),
            }
        }
        _ => Err(channel_fault!(
            PRECONDITION_FAILED,
            "invalid arg 'x-queue-type' for queue '{name}' in vhost '{vhost}': {}",
            describe(Some(v))
        )),
    }
}

/// Rejects queue arguments RabbitMQ rejects at declare time.
fn validate_queue_arguments(
    args: &FieldTable,
    name: &str,
    vhost: &str,
    durable: bool,
    exclusive: bool,
    auto_delete: bool,
) -> Result<(), Fault> {
    if let Some(v) = args.get("x-queue-type") {
        validate_queue_type(v, name, vhost, durable, exclusive, auto_delete)?;
    }
    if let Some(v) = args.get("x-overflow") {
        if !matches!(
            v.as_str(),
            Some("drop-head" | "reject-publish" | "reject-publish-dlx")
        ) {
            return Err(channel_fault!(
                PRECONDITION_FAILED,
                "invalid arg 'x-overflow' for queue '{name}' in vhost '{vhost}': {}",
                describe(Some(v))
            ));
        }
    }
    if args.get("x-dead-letter-routing-key").is_some()
        && args.get("x-dead-letter-exchange").is_none()
    {
        return Err(channel_fault!(
            PRECONDITION_FAILED,
            "invalid arg 'x-dead-letter-routing-key' for queue '{name}' in vhost '{vhost}': {{routing_key_but_no_dlx_defined}}"
        ));
    }
    if let Some(v) = args.get("x-max-priority") {
        if !v.as_i64().is_some_and(|n| (0..=255).contains(&n)) {
            return Err(channel_fault!(
                PRECONDITION_FAILED,
                "invalid arg 'x-max-priority' for queue '{name}' in vhost '{vhost}': {}",
                describe(Some(v))
            ));
        }
    }
    for key in [
        "x-message-ttl",
        "x-expires",
        "x-max-length",
        "x-max-length-bytes",
    ] {
        if let Some(v) = args.get(key) {
            let ok = v
                .as_i64()
                .is_some_and(|n| n >= 0 && (key != "x-expires" || n > 0));
            if !ok {
                return Err(channel_fault!(
                    PRECONDITION_FAILED,
                    "invalid arg '{key}' for queue '{name}' in vhost '{vhost}': {}",
                    describe(Some(v))
                ));
            }
        }
    }
    Ok(())
}
