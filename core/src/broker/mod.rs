//! The broker model: vhosts, exchanges, bindings, queues, consumers, acks, prefetch.
//!
//! One owner (`&mut Broker`) holds all of it; connections talk to it only through [`Command`]s
//! in and [`Event`]s out, so the native server can run the broker on one task while connection
//! tasks do the decoding and encoding, and a browser can run both on one thread.
//!
//! Call order: [`Broker::handle`] for every command, with the current time, then drain
//! [`Broker::poll_event`] and hand each event to its connection. Events for one connection come
//! out in the order that connection must send them. The broker has its own timer besides the
//! connections': call [`Broker::handle_timeout`] whenever [`Broker::poll_timeout`] comes due
//! (message TTLs, queue expiry), then drain events again. Every input carries the time, as in
//! quinn-proto: nothing timed counts from a clock that only timers move.

mod ack;
mod channel;
mod consume;
mod durable;
mod entities;
mod exchange;
mod expiry;
mod flush;
pub mod headers;
mod paging;
mod publish;
mod queue;
mod ready;
mod recovery;
mod reply_to;
pub mod topic;
mod tx;

use alloc::collections::VecDeque;
use alloc::string::String;
use alloc::vec::Vec;

use crate::access::{Access, Hashing, PasswordHash, Permissions, User};
use crate::codec::{BasicPublish, ConnectionOpen, FieldTable, Method, ShortStr};
use crate::connection_fault;
pub(crate) use crate::message::Message;
use crate::reply::{Fault, Scope};
use crate::storage::Storage;
use crate::vocab::{ClientCapabilities, Command, ConnId, Event};

pub use channel::Channel;
pub use exchange::{Binding, Destination, Exchange, ExchangeKind};
pub use expiry::DeathReason;
pub use paging::{pages, Window};
pub use queue::{Overflow, Queue, QueueId, QueueLimits};

/// Every queue of the broker by id.
pub type QueueMap = Map<QueueId, Queue>;

/// Hash maps with a fixed hasher: runs must not vary with a random seed.
pub type Map<K, V> = hashbrown::HashMap<K, V, foldhash::fast::FixedState>;

/// Broker-wide settings.
#[derive(Clone, Debug)]
pub struct BrokerConfig {
    /// Seeds server-generated names (`amq.gen-…`, `amq.ctag-…`).
    pub seed: u64,
    /// How much of a queue stays in memory when the store can hold the rest
    /// ([`Storage::can_page`]).
    pub queue_window: Window,
    /// Messages in a queue past which its publishers are read more slowly while a consumer
    /// takes from it (publisher flow control, `flow.rs`); 0 turns it off.
    pub flow_backlog: usize,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            seed: 0x5741_5252_454e_0001,
            queue_window: Window::default(),
            flow_backlog: 10_000,
        }
    }
}

/// One virtual host: a namespace of exchanges and queues.
pub struct VHost {
    pub name: ShortStr,
    pub exchanges: Map<ShortStr, Exchange>,
    pub queues: Map<ShortStr, QueueId>,
}

struct Conn {
    /// What the connection may still be sent in deliveries (see [`Command::Credit`]);
    /// `None`: no flow control.
    window: Option<u64>,
    username: String,
    vhost: Option<ShortStr>,
    capabilities: ClientCapabilities,
    channels: Map<u16, Channel>,
    /// Exclusive queues this connection owns; deleted with it.
    exclusive_queues: Vec<QueueId>,
}

impl Conn {
    /// Takes a delivery's cost from the window, if the connection has one.
    fn charge(&mut self, message: &Message) {
        if let Some(window) = &mut self.window {
            *window = window.saturating_sub(message.delivery_cost());
        }
    }
}

/// The broker. See the module docs.
pub struct Broker {
    access: Access,
    storage: alloc::boxed::Box<dyn Storage + Send>,
    vhosts: Map<ShortStr, VHost>,
    queues: QueueMap,
    next_queue_id: u32,
    /// Next storage id for a persistent message in a durable queue.
    next_store_id: u64,
    conns: Map<ConnId, Conn>,
    events: VecDeque<(ConnId, Event)>,
    /// Queues that may be able to deliver: dispatched after each command.
    dirty: Vec<QueueId>,
    /// Dead messages waiting to be republished to their dead-letter exchanges, in order.
    dead_letters: VecDeque<expiry::DeadLetter>,
    /// Reused per publish so routing does not allocate.
    route_scratch: Vec<QueueId>,
    dest_scratch: Vec<Destination>,
    rng: names::SplitMix64,
    now_ms: u64,
    /// Why publishers are paused (memory or disk alarm), if they are.
    alarm: Option<ShortStr>,
    /// Queues with something time-driven (TTLs, `x-expires`), checked by `handle_timeout`.
    timed: alloc::collections::BTreeSet<QueueId>,
    /// Unix time (ms) at broker time 0, for `x-death` timestamps.
    unix_offset_ms: u64,
    /// Direct reply-to addresses (key after `amq.rabbitmq.reply-to.`) → their channel.
    reply_routes: Map<ShortStr, (ConnId, u16)>,
    /// Answers waiting for the store to be durable (see `durable.rs`).
    held: durable::Held,
    /// Every event as the broker decides it, before any waits for the store, for a host that
    /// watches decisions (the simulator's model); `None` otherwise (see `durable.rs`).
    decisions: Option<Vec<(ConnId, Event)>>,
    /// The window of queues that page, when the store can page (see `paging.rs`).
    queue_window: Option<Window>,
    /// Queues with messages outside their head.
    paging: alloc::collections::BTreeSet<QueueId>,
    /// Reused for what the store reads back.
    page_scratch: Vec<crate::storage::MessageRecord>,
    /// Memory runs short: queues that are not durable page too (see
    /// [`Broker::set_memory_pressure`]).
    memory_pressure: bool,
    /// Publisher flow control (`flow.rs`): the backlog that holds publishers (0: off), and the
    /// connections held.
    flow_backlog: usize,
    flow_holds: flow::Holds,
}

mod admin;
mod flow;
mod permit;
pub use admin::AdminError;
mod names;

impl Broker {
    /// A broker with vhost `/`, its predeclared exchanges, the user `guest` (password `guest`,
    /// every permission on `/`), and whatever `storage` recovers.
    pub fn new(config: BrokerConfig, storage: alloc::boxed::Box<dyn Storage + Send>) -> Self {
        let queue_window = storage.can_page().then_some(config.queue_window);
        let mut broker = Broker {
            access: Access::new(),
            storage,
            vhosts: Map::default(),
            queues: Map::default(),
            next_queue_id: 1,
            next_store_id: 1,
            conns: Map::default(),
            events: VecDeque::new(),
            dirty: Vec::new(),
            dead_letters: VecDeque::new(),
            route_scratch: Vec::new(),
            dest_scratch: Vec::new(),
            rng: names::SplitMix64::new(config.seed),
            now_ms: 0,
            alarm: None,
            timed: Default::default(),
            unix_offset_ms: 0,
            reply_routes: Map::default(),
            held: durable::Held::default(),
            decisions: None,
            queue_window,
            paging: Default::default(),
            page_scratch: Vec::new(),
            memory_pressure: false,
            flow_backlog: config.flow_backlog,
            flow_holds: Map::default(),
        };
        broker.recover();
        broker
    }

    /// What a new node starts with, as RabbitMQ's does: vhost `/`, and user `guest` (password
    /// `guest`, tag `administrator`) with every permission on it; stored at once.
    pub(crate) fn add_defaults(&mut self) {
        self.add_vhost("/");
        self.storage.save_vhost("/");
        let salt = (self.rng.next_u64() as u32).to_le_bytes();
        let guest = User {
            name: "guest".into(),
            password: PasswordHash::new(Hashing::Sha256, salt, "guest"),
            tags: alloc::vec!["administrator".into()],
        };
        self.storage.save_user(&admin::user_record(&guest));
        self.access.put_user(guest);
        self.save_permissions("guest", "/", Permissions::all());
    }

    /// The users and their permissions.
    pub fn access(&self) -> &Access {
        &self.access
    }

    /// Creates a vhost with the predeclared `amq.*` exchanges (idempotent).
    pub fn add_vhost(&mut self, name: &str) {
        let key = ShortStr::from(name);
        if self.vhosts.contains_key(&key) {
            return;
        }
        let mut exchanges = Map::default();
        for (ex, kind) in [
            ("", ExchangeKind::Direct),
            ("amq.direct", ExchangeKind::Direct),
            ("amq.fanout", ExchangeKind::Fanout),
            ("amq.topic", ExchangeKind::Topic),
            ("amq.headers", ExchangeKind::Headers),
            ("amq.match", ExchangeKind::Headers),
        ] {
            let name = ShortStr::from(ex);
            exchanges.insert(
                name.clone(),
                Exchange::new(name, kind, true, false, false, FieldTable::default()),
            );
        }
        self.vhosts.insert(
            key.clone(),
            VHost {
                name: key,
                exchanges,
                queues: Map::default(),
            },
        );
    }

    /// The vhost names.
    pub fn vhost_names(&self) -> impl Iterator<Item = &str> {
        self.vhosts.keys().map(|k| k.as_str())
    }

    /// Looks a queue up by vhost and name.
    pub fn queue(&self, vhost: &str, name: &str) -> Option<&Queue> {
        let id = self.vhosts.get(vhost)?.queues.get(name)?;
        self.queues.get(id)
    }

    /// Every queue, in no particular order.
    pub fn queues(&self) -> impl Iterator<Item = &Queue> {
        self.queues.values()
    }

    /// The exchanges of `vhost` (none if it does not exist), in no particular order. Read-only,
    /// for management views such as the wasm demo's routing diagram; each exchange lists its
    /// bindings with [`Exchange::bindings`].
    pub fn exchanges(&self, vhost: &str) -> impl Iterator<Item = &Exchange> {
        self.vhosts
            .get(vhost)
            .into_iter()
            .flat_map(|v| v.exchanges.values())
    }

    /// The storage the broker writes durable state to.
    pub fn storage(&self) -> &(dyn Storage + Send) {
        &*self.storage
    }

    /// Gives the storage back (to rebuild a broker over it, as a restart does).
    pub fn into_storage(self) -> alloc::boxed::Box<dyn Storage + Send> {
        self.storage
    }

    /// The number of open connections.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Raises (`Some(reason)`) or clears (`None`) a resource alarm, as RabbitMQ's memory and
    /// disk alarms do: every connection is told, and connections that publish stop being read
    /// (and, when they support it, get `connection.blocked`) until it clears.
    pub fn set_resource_alarm(&mut self, reason: Option<&str>) {
        let reason = reason.map(ShortStr::from);
        if reason == self.alarm {
            return;
        }
        self.alarm = reason.clone();
        let mut conns: Vec<ConnId> = self.conns.keys().copied().collect();
        conns.sort();
        for conn in conns {
            self.emit(
                conn,
                Event::ResourceAlarm {
                    reason: reason.clone(),
                },
            );
        }
    }

    /// Memory is running short (RabbitMQ's `vm_memory_high_watermark_paging_ratio`, below the
    /// alarm): while it lasts, queues that are not durable page past their window as durable
    /// ones always do, and what their heads already hold past it goes to the store at once.
    pub fn set_memory_pressure(&mut self, on: bool) {
        if on && !self.memory_pressure && self.queue_window.is_some() {
            self.spill_queues();
        }
        self.memory_pressure = on;
    }

    /// Closes every connection with `connection.close` 320 CONNECTION_FORCED, as RabbitMQ
    /// does on shutdown (`reason` goes into the text: "broker forced connection closure
    /// with reason 'shutdown'"). Unacked messages go back to their queues.
    pub fn close_all_connections(&mut self, reason: &str) {
        let mut conns: Vec<ConnId> = self.conns.keys().copied().collect();
        conns.sort();
        for conn in conns {
            let fault = connection_fault!(
                CONNECTION_FORCED,
                "broker forced connection closure with reason '{reason}'"
            );
            self.raise(conn, 0, fault);
        }
    }

    /// The current resource alarm, if any.
    pub fn resource_alarm(&self) -> Option<&str> {
        self.alarm.as_deref()
    }

    /// Takes one command from connection `conn`, at `now_ms` (the same clock as
    /// [`Broker::handle_timeout`]'s). Whatever the command starts that is timed — a message's
    /// TTL, a queue's `x-expires` — counts from this time, however long ago the last timer
    /// ran. Timers that fell due meanwhile still need [`Broker::handle_timeout`]; messages
    /// already past their TTL are never delivered either way.
    pub fn handle(&mut self, now_ms: u64, conn: ConnId, command: Command) {
        self.now_ms = self.now_ms.max(now_ms);
        match command {
            Command::Login {
                username,
                password,
                mechanism,
                capabilities,
                from_loopback,
            } => {
                // A loopback-only user from elsewhere is refused as a wrong password is
                // (RabbitMQ: "user 'guest' can only connect via localhost", in its log only).
                let allowed = from_loopback || !self.access.loopback_only(&username);
                if allowed && self.access.authenticate(&username, &password).is_some() {
                    self.conns.insert(
                        conn,
                        Conn {
                            window: None,
                            username,
                            vhost: None,
                            capabilities,
                            channels: Map::default(),
                            exclusive_queues: Vec::new(),
                        },
                    );
                    self.emit(conn, Event::LoginOk);
                } else {
                    self.emit(conn, Event::LoginRefused { mechanism });
                }
            }
            Command::Open { vhost } => self.open(conn, vhost),
            Command::Method { channel, method } => {
                if let Err(fault) = self.handle_method(conn, channel, method) {
                    self.raise(conn, channel, fault);
                }
            }
            Command::Publish {
                channel,
                flags,
                message,
            } => {
                if let Err(fault) = self.publish(conn, channel, flags, message) {
                    let fault = fault.or_caused_by(BasicPublish::CLASS_ID, BasicPublish::METHOD_ID);
                    self.raise(conn, channel, fault);
                }
            }
            Command::ChannelGone { channel } => self.close_channel(conn, channel),
            Command::Credit(credit) => self.add_credit(conn, credit),
            Command::UpdateSecret { secret } => self.update_secret(conn, &secret),
            Command::Close => {
                if self.conns.contains_key(&conn) {
                    self.close_connection(conn);
                    self.emit(conn, Event::Closed);
                }
            }
        }
        self.settle_work();
    }

    /// The next event for some connection.
    pub fn poll_event(&mut self) -> Option<(ConnId, Event)> {
        self.events.pop_front()
    }

    fn open(&mut self, conn: ConnId, vhost: ShortStr) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        if !self.vhosts.contains_key(&vhost) {
            let fault = connection_fault!(NOT_ALLOWED, "vhost {} not found", vhost)
                .caused_by(ConnectionOpen::CLASS_ID, ConnectionOpen::METHOD_ID);
            self.raise(conn, 0, fault);
            return;
        }
        if self.access.permissions(&c.username, &vhost).is_none() {
            let fault = connection_fault!(
                NOT_ALLOWED,
                "access to vhost '{}' refused for user '{}'",
                vhost,
                c.username
            )
            .caused_by(ConnectionOpen::CLASS_ID, ConnectionOpen::METHOD_ID);
            self.raise(conn, 0, fault);
            return;
        }
        c.vhost = Some(vhost);
        // The alarm goes first: open-ok lets the connection read what the client pipelined
        // behind connection.open, and a publish there must already find the alarm on.
        if let Some(reason) = self.alarm.clone() {
            self.emit(
                conn,
                Event::ResourceAlarm {
                    reason: Some(reason),
                },
            );
        }
        self.emit(conn, Event::OpenOk);
    }

    /// Raises a fault: tears down the channel or connection and tells the connection.
    fn raise(&mut self, conn: ConnId, channel: u16, fault: Fault) {
        match fault.scope {
            Scope::Channel => {
                self.close_channel(conn, channel);
                self.emit(conn, Event::ChannelError { channel, fault });
            }
            Scope::Connection => {
                self.close_connection(conn);
                self.emit(conn, Event::ConnectionError { fault });
            }
        }
    }

    pub(crate) fn emit(&mut self, conn: ConnId, event: Event) {
        self.note_decision(conn, &event);
        if let Some(channel) = durable::event_channel(&event) {
            if self.held.gated(conn, channel) {
                // Behind an answer that waits for the disk: the channel keeps its order.
                self.held.push(0, conn, channel, event);
                return;
            }
        }
        self.events.push_back((conn, event));
    }

    pub(crate) fn reply(&mut self, conn: ConnId, channel: u16, method: impl Into<Method>) {
        self.emit(
            conn,
            Event::Method {
                channel,
                method: method.into(),
            },
        );
    }

    /// The vhost a connection opened.
    fn conn_vhost(&self, conn: ConnId) -> Result<ShortStr, Fault> {
        self.conns
            .get(&conn)
            .and_then(|c| c.vhost.clone())
            .ok_or_else(|| connection_fault!(COMMAND_INVALID, "connection is not open"))
    }

    fn handle_method(&mut self, conn: ConnId, channel: u16, method: Method) -> Result<(), Fault> {
        let (class_id, method_id) = (method.class_id(), method.method_id());
        let Some(c) = self.conns.get_mut(&conn) else {
            return Ok(());
        };
        if c.vhost.is_none() {
            return Ok(());
        }
        if let Method::ChannelOpen(_) = method {
            // The permissions as they are now stay with the channel (RabbitMQ's rule: a change
            // applies to channels opened after it).
            let vhost = c.vhost.as_deref().unwrap_or_default();
            let perms = self.access.permissions(&c.username, vhost).cloned();
            c.channels.insert(channel, Channel::with_permissions(perms));
            self.reply(conn, channel, crate::codec::ChannelOpenOk::default());
            return Ok(());
        }
        // Frames for a channel the broker already closed (after a fault) are dropped: the
        // connection will learn of the close from the event already on its way.
        if !c.channels.contains_key(&channel) {
            return Ok(());
        }
        // An answer to a change of durable definitions waits until the change is on disk,
        // as RabbitMQ answers only once its schema store has the change.
        let defines = matches!(
            method,
            Method::ExchangeDeclare(_)
                | Method::ExchangeDelete(_)
                | Method::ExchangeBind(_)
                | Method::ExchangeUnbind(_)
                | Method::QueueDeclare(_)
                | Method::QueueBind(_)
                | Method::QueueUnbind(_)
                | Method::QueuePurge(_)
                | Method::QueueDelete(_)
        );
        let mark = defines.then(|| self.durable_mark());
        let result = match method {
            Method::ChannelClose(_) => {
                self.close_channel(conn, channel);
                self.reply(conn, channel, crate::codec::ChannelCloseOk);
                Ok(())
            }
            Method::ChannelFlow(flow) => self.channel_flow(conn, channel, flow.active),
            Method::ExchangeDeclare(m) => self.exchange_declare(conn, channel, m),
            Method::ExchangeDelete(m) => self.exchange_delete(conn, channel, m),
            Method::ExchangeBind(m) => self.exchange_bind(conn, channel, m),
            Method::ExchangeUnbind(m) => self.exchange_unbind(conn, channel, m),
            Method::QueueDeclare(m) => self.queue_declare(conn, channel, m),
            Method::QueueBind(m) => self.queue_bind(conn, channel, m),
            Method::QueueUnbind(m) => self.queue_unbind(conn, channel, m),
            Method::QueuePurge(m) => self.queue_purge(conn, channel, m),
            Method::QueueDelete(m) => self.queue_delete(conn, channel, m),
            Method::BasicQos(m) => self.basic_qos(conn, channel, m),
            Method::BasicConsume(m) => self.basic_consume(conn, channel, m),
            Method::BasicCancel(m) => self.basic_cancel(conn, channel, m),
            Method::BasicGet(m) => self.basic_get(conn, channel, m),
            Method::BasicAck(m) => self.basic_ack(conn, channel, m.delivery_tag, m.multiple),
            Method::BasicNack(m) => {
                self.basic_nack(conn, channel, m.delivery_tag, m.multiple, m.requeue)
            }
            Method::BasicReject(m) => {
                self.basic_nack(conn, channel, m.delivery_tag, false, m.requeue)
            }
            Method::BasicRecover(m) => self.basic_recover(conn, channel, m.requeue),
            Method::BasicRecoverAsync(m) => self.basic_recover_async(conn, channel, m.requeue),
            Method::ConfirmSelect(m) => self.confirm_select(conn, channel, m.nowait),
            Method::TxSelect(_) => self.tx_select(conn, channel),
            Method::TxCommit(_) => self.tx_commit(conn, channel),
            Method::TxRollback(_) => self.tx_rollback(conn, channel),
            m => Err(connection_fault!(
                COMMAND_INVALID,
                "unimplemented method {}",
                m.name()
            )),
        };
        if let Some(mark) = mark {
            self.hold_answers_since(mark, conn, channel);
        }
        result.map_err(|f| f.or_caused_by(class_id, method_id))
    }

    fn add_credit(&mut self, conn: ConnId, credit: u64) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        let was_closed = c.window == Some(0);
        c.window = Some(c.window.unwrap_or(0).saturating_add(credit));
        if was_closed && credit > 0 {
            let mut queues: Vec<QueueId> = c
                .channels
                .values()
                .flat_map(|ch| ch.consumed_queues())
                .collect();
            queues.sort();
            queues.dedup();
            self.dirty.extend(queues);
        }
    }

    fn channel_flow(&mut self, conn: ConnId, channel: u16, active: bool) -> Result<(), Fault> {
        if !active {
            // RabbitMQ 3.x does not implement client-requested flow stops either.
            return Err(connection_fault!(NOT_IMPLEMENTED, "active=false"));
        }
        let ch = self.channel_mut(conn, channel)?;
        ch.flow_active = active;
        let queues = ch.consumed_queues();
        self.dirty.extend(queues);
        self.reply(conn, channel, crate::codec::ChannelFlowOk { active });
        Ok(())
    }

    pub(crate) fn channel_mut(
        &mut self,
        conn: ConnId,
        channel: u16,
    ) -> Result<&mut Channel, Fault> {
        self.conns
            .get_mut(&conn)
            .and_then(|c| c.channels.get_mut(&channel))
            .ok_or_else(|| connection_fault!(CHANNEL_ERROR, "channel {channel} is not open"))
    }

    /// Lets a channel go: requeues its unacked messages, cancels its consumers.
    fn close_channel(&mut self, conn: ConnId, channel: u16) {
        let Some(ch) = self
            .conns
            .get_mut(&conn)
            .and_then(|c| c.channels.remove(&channel))
        else {
            return;
        };
        self.release_channel(conn, channel, ch);
    }

    /// Lets a whole connection go: its channels, then its exclusive queues.
    fn close_connection(&mut self, conn: ConnId) {
        let Some(mut c) = self.conns.remove(&conn) else {
            return;
        };
        self.held.forget(conn);
        self.forget_flow(conn);
        let mut channels: Vec<(u16, Channel)> = c.channels.drain().collect();
        channels.sort_by_key(|(n, _)| *n);
        for (n, ch) in channels {
            self.release_channel(conn, n, ch);
        }
        for q in c.exclusive_queues.drain(..) {
            self.delete_queue_by_id(q, None);
        }
    }
}
