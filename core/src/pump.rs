//! The pump: one [`Broker`] and its [`Connection`]s on one thread, and the moving of
//! [`Command`]s and [`Event`]s between them until both sides are quiet.
//!
//! Every single-threaded host runs the core through this type: the wasm engine (browser tab,
//! worker, workerd), the scenario tests' virtual world, the simulator. The native server keeps
//! the broker on its own task and the connections on theirs, and follows the same rules through
//! the same functions, because the rules live in the core objects themselves:
//! - **close**: a connection tells the broker it is gone exactly once, whichever way it ends
//!   (`Connection` emits `Command::Close`; the host adds nothing);
//! - **credit**: a connection gives delivery credit back as its host reports output written
//!   ([`Connection::handle_written`]; window and low water in [`ConnectionConfig`]);
//! - **clock**: every broker input carries the time ([`Broker::handle`]); timers run when
//!   [`Pump::poll_timeout`] comes due.
//!
//! Sans-IO, as str0m has it: the host feeds input ([`Pump::handle_input`], [`Pump::handle_eof`],
//! [`Pump::handle_timeout`]), then, after every call:
//! 1. takes [`Pump::take_ready`]: the connections with bytes to send or that just closed;
//! 2. for each, sends [`Pump::take_output`] and reports it written with
//!    [`Pump::handle_written`] (which may make more output ready: take it again until
//!    `take_ready` is empty); a connection that [`Pump::is_closed`] gets its socket closed once
//!    its output is out, then [`Pump::forget`];
//! 3. arms one timer for [`Pump::poll_timeout`].
//!
//! An [`Observer`] sees every command before the broker does and every event before its
//! connection does (the simulator's oracle).

use alloc::collections::{BTreeMap, BTreeSet, VecDeque};
use alloc::vec::Vec;

use crate::broker::Broker;
use crate::connection::{Connection, ConnectionConfig};
use crate::vocab::{Command, ConnId, Event};

/// Sees what the pump carries, in the order it carries it: a round's commands, then the
/// events they caused (each event before its connection takes it), then the end of the round.
/// A round without commands carries events the broker emitted on its own (timers, alarms).
///
/// With [`Broker::record_decisions`] on, it also sees each round's events as the broker
/// decided them ([`Observer::on_decided`], all of them before the round's first
/// [`Observer::on_event`]): answers that wait for the store reach their connection in a later
/// round, after [`Pump::storage_synced`], or never, if the connection goes first.
pub trait Observer {
    /// `command` from `conn` is about to go to the broker.
    fn on_command(&mut self, _conn: ConnId, _command: &Command) {}
    /// The broker decided `event` for `conn` (only with [`Broker::record_decisions`]).
    fn on_decided(&mut self, _conn: ConnId, _event: &Event) {}
    /// The broker emitted `event` for `conn`: it goes to the connection now.
    fn on_event(&mut self, _conn: ConnId, _event: &Event) {}
    /// Every event of the round was seen; `broker` is as the round left it.
    fn on_round(&mut self, _broker: &Broker) {}
}

/// The observer of a pump nobody watches.
impl Observer for () {}

struct Slot {
    conn: Connection,
    /// Listed by `take_ready` as closed already: a closed connection is listed once.
    closed_listed: bool,
}

/// One broker and its connections. See the module docs for the call order.
pub struct Pump<O: Observer = ()> {
    broker: Broker,
    config: ConnectionConfig,
    conns: BTreeMap<ConnId, Slot>,
    next_id: u64,
    /// The latest time any input carried: the time of inputs that carry none
    /// ([`Pump::take_output`], [`Pump::handle_written`]).
    now_ms: u64,
    /// Connections that may have commands for the broker, in the order they were touched,
    /// each at most once (`queued` holds the same ids).
    touched: VecDeque<ConnId>,
    queued: BTreeSet<ConnId>,
    /// Connections with output waiting or that have just closed.
    ready: BTreeSet<ConnId>,
    observer: O,
}

impl Pump {
    /// A pump over `broker`; [`Pump::connect`] gives new connections `config`.
    pub fn new(broker: Broker, config: ConnectionConfig) -> Pump {
        Pump::with_observer(broker, config, ())
    }
}

impl<O: Observer> Pump<O> {
    /// A pump that shows every command and event to `observer`.
    pub fn with_observer(broker: Broker, config: ConnectionConfig, observer: O) -> Pump<O> {
        Pump {
            broker,
            config,
            conns: BTreeMap::new(),
            next_id: 1,
            now_ms: 0,
            touched: VecDeque::new(),
            queued: BTreeSet::new(),
            ready: BTreeSet::new(),
            observer,
        }
    }

    pub fn observer(&self) -> &O {
        &self.observer
    }

    pub fn observer_mut(&mut self) -> &mut O {
        &mut self.observer
    }

    /// The observer, to change, beside the broker, to read.
    pub fn observer_and_broker(&mut self) -> (&mut O, &Broker) {
        (&mut self.observer, &self.broker)
    }

    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// The broker, for what is not a connection's input (management, restarts in tests).
    /// Call [`Pump::flush_events`] after changing it.
    pub fn broker_mut(&mut self) -> &mut Broker {
        &mut self.broker
    }

    /// The broker back, with its storage (a restart rebuilds one over it).
    pub fn into_broker(self) -> Broker {
        self.broker
    }

    /// The broker and the observer back (a restart rebuilds a pump over both).
    pub fn into_parts(self) -> (Broker, O) {
        (self.broker, self.observer)
    }

    /// Opens a connection with the pump's configuration; the peer speaks first.
    pub fn connect(&mut self, now_ms: u64) -> ConnId {
        let config = self.config.clone();
        self.connect_with(config, now_ms)
    }

    /// Opens a connection with its own configuration.
    pub fn connect_with(&mut self, config: ConnectionConfig, now_ms: u64) -> ConnId {
        self.tick(now_ms);
        let id = ConnId(self.next_id);
        self.next_id += 1;
        let conn = Connection::new(config, now_ms);
        self.conns.insert(
            id,
            Slot {
                conn,
                closed_listed: false,
            },
        );
        id
    }

    /// A connection's protocol state, while the pump has it.
    pub fn connection(&self, id: ConnId) -> Option<&Connection> {
        self.conns.get(&id).map(|s| &s.conn)
    }

    /// Open connections, closed ones not yet forgotten included.
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Bytes from connection `id`'s peer. Unknown ids are ignored.
    pub fn handle_input(&mut self, id: ConnId, bytes: &[u8], now_ms: u64) {
        self.tick(now_ms);
        if let Some(Slot { conn, .. }) = self.conns.get_mut(&id) {
            conn.handle_input(bytes, now_ms);
            self.touch(id);
            self.pump();
        }
    }

    /// Connection `id`'s socket is gone: the broker forgets it, its unacked messages return.
    pub fn handle_eof(&mut self, id: ConnId, now_ms: u64) {
        self.tick(now_ms);
        if let Some(Slot { conn, .. }) = self.conns.get_mut(&id) {
            conn.handle_eof();
            self.touch(id);
            self.pump();
        }
    }

    /// Runs every timer due at `now_ms`: the broker's (TTLs, queue expiry), then each
    /// connection's (heartbeats, handshake and close deadlines).
    pub fn handle_timeout(&mut self, now_ms: u64) {
        self.tick(now_ms);
        self.broker.handle_timeout(now_ms);
        let mut touched = Vec::new();
        for (id, Slot { conn, .. }) in self.conns.iter_mut() {
            if conn.poll_timeout().is_some_and(|t| t <= now_ms) {
                conn.handle_timeout(now_ms);
                touched.push(*id);
            }
        }
        for id in touched {
            self.touch(id);
        }
        self.pump();
    }

    /// Raises or clears the broker's resource alarm (see [`Broker::set_resource_alarm`]).
    pub fn set_resource_alarm(&mut self, reason: Option<&str>, now_ms: u64) {
        self.tick(now_ms);
        self.broker.set_resource_alarm(reason);
        self.pump();
    }

    /// Memory runs short, or no longer does (see [`Broker::set_memory_pressure`]).
    pub fn set_memory_pressure(&mut self, on: bool, now_ms: u64) {
        self.tick(now_ms);
        self.broker.set_memory_pressure(on);
        self.pump();
    }

    /// The broker's store is durable up to write `seq`: answers that waited for it go out
    /// (see [`Broker::storage_synced`]).
    pub fn storage_synced(&mut self, seq: u64, now_ms: u64) {
        self.tick(now_ms);
        self.broker.storage_synced(seq);
        self.pump();
    }

    /// Hands out whatever the broker emitted outside a connection's input (after
    /// [`Pump::broker_mut`]).
    pub fn flush_events(&mut self, now_ms: u64) {
        self.tick(now_ms);
        self.pump();
    }

    /// When [`Pump::handle_timeout`] must run next, if ever.
    pub fn poll_timeout(&self) -> Option<u64> {
        let conns = self.conns.values().filter_map(|s| s.conn.poll_timeout());
        conns.chain(self.broker.poll_timeout()).min()
    }

    /// Connections with output waiting or that have just closed (listed once for that), each
    /// once, in id order.
    pub fn take_ready(&mut self) -> Vec<ConnId> {
        let ready = core::mem::take(&mut self.ready);
        ready.into_iter().collect()
    }

    /// Bytes to send to connection `id`'s peer (empty if none). They are in flight until
    /// [`Pump::handle_written`] reports them written.
    pub fn take_output(&mut self, id: ConnId) -> Vec<u8> {
        let mut out = Vec::new();
        if let Some(Slot { conn, .. }) = self.conns.get_mut(&id) {
            conn.take_output(&mut out);
        }
        out
    }

    /// `n` bytes taken from connection `id` reached its peer (or the transport took them for
    /// good). This is what returns delivery credit, so it may start more deliveries.
    pub fn handle_written(&mut self, id: ConnId, n: usize) {
        if let Some(Slot { conn, .. }) = self.conns.get_mut(&id) {
            conn.handle_written(n);
            self.touch(id);
            self.pump();
        }
    }

    /// The connection is over: once its output is sent, close the socket and
    /// [`Pump::forget`] it. Unknown (already forgotten) ids count as closed.
    pub fn is_closed(&self, id: ConnId) -> bool {
        self.conns.get(&id).is_none_or(|s| s.conn.is_closed())
    }

    /// Drops a connection; one that is not closed yet is treated as a dead socket first.
    pub fn forget(&mut self, id: ConnId) {
        if !self.is_closed(id) {
            let now = self.now_ms;
            self.handle_eof(id, now);
        }
        self.conns.remove(&id);
        self.ready.remove(&id);
    }

    fn touch(&mut self, id: ConnId) {
        if self.queued.insert(id) {
            self.touched.push_back(id);
        }
    }

    fn tick(&mut self, now_ms: u64) {
        self.now_ms = self.now_ms.max(now_ms);
    }

    /// Moves commands into the broker and events back out until both sides are quiet, in
    /// rounds as the native hub takes them: every touched connection's commands, in the order
    /// the connections were touched, then the events they caused to their connections (which
    /// may answer them in the next round: credit, a close).
    fn pump(&mut self) {
        loop {
            self.rounds();
            // The rounds' writes go to the store's I/O together. Paging may hand queues
            // messages read back after it, and their deliveries make another round.
            self.broker.flush_storage();
            if !self.route_events() {
                return;
            }
            self.observer.on_round(&self.broker);
        }
    }

    fn rounds(&mut self) {
        let now = self.now_ms;
        if self.route_events() {
            self.observer.on_round(&self.broker);
        }
        while !self.touched.is_empty() {
            let round: Vec<ConnId> = self.touched.drain(..).collect();
            self.queued.clear();
            let mut commands = false;
            for id in round {
                let Some(slot) = self.conns.get_mut(&id) else {
                    continue;
                };
                // A connection held by publisher flow control keeps its commands until let go
                // (the release is an event to it, which touches it again).
                while !self.broker.is_holding(id) {
                    let Some(command) = slot.conn.poll_command() else {
                        break;
                    };
                    self.observer.on_command(id, &command);
                    self.broker.handle(now, id, command);
                    commands = true;
                }
                let newly_closed = slot.conn.is_closed() && !slot.closed_listed;
                if newly_closed || !slot.conn.output().is_empty() {
                    slot.closed_listed |= newly_closed;
                    self.ready.insert(id);
                }
            }
            if self.route_events() || commands {
                self.observer.on_round(&self.broker);
            }
        }
    }

    /// Hands every broker event to its connection (events for a forgotten one are dropped);
    /// true if there were any.
    fn route_events(&mut self) -> bool {
        let now = self.now_ms;
        let mut any = false;
        for (to, event) in self.broker.take_decisions() {
            any = true;
            self.observer.on_decided(to, &event);
        }
        while let Some((to, event)) = self.broker.poll_event() {
            any = true;
            self.observer.on_event(to, &event);
            if let Some(Slot { conn, .. }) = self.conns.get_mut(&to) {
                conn.handle_event(event, now);
                if self.queued.insert(to) {
                    self.touched.push_back(to);
                }
            }
        }
        any
    }
}
