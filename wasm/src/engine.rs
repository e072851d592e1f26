//! The engine: one [`Broker`], its [`Connection`]s, and the pump between them, on one thread.
//!
//! This is what `transports::hub` and `transports::driver` do with tasks and channels, done
//! synchronously for a browser tab, a Web Worker or an edge worker. It is still sans-IO: the
//! JavaScript side feeds it bytes and the time, and takes bytes out.
//!
//! Call order, after every mutation ([`Engine::input`], [`Engine::eof`], [`Engine::timeout`]):
//! 1. [`Engine::take_dirty`] lists the connections with bytes to send or that just closed;
//! 2. for each, send [`Engine::take_output`]; if [`Engine::is_closed`], close the socket and
//!    call [`Engine::forget`];
//! 3. arm a timer for [`Engine::poll_timeout`] and call [`Engine::timeout`] when it fires.

use alloc::boxed::Box;
use alloc::collections::BTreeMap;
use alloc::string::String;
use alloc::vec::Vec;

use warren_core::auth::StaticUsers;
use warren_core::storage::Storage;
use warren_core::{Broker, BrokerConfig, Command, ConnId, Connection, ConnectionConfig};

use crate::storage::{Journal, JournalStorage, NoStorage};

/// What a new engine is made of.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Seeds server-generated names (`amq.gen-…`, `amq.ctag-…`).
    pub seed: u64,
    /// Limits offered to every connection (`connection.tune`).
    pub connection: ConnectionConfig,
    /// (username, password) pairs; empty means RabbitMQ's `guest` / `guest`.
    pub users: Vec<(String, String)>,
    /// Keep durable entities and persistent messages: the engine journals every change for the
    /// caller to write to IndexedDB (see [`crate::storage`]).
    pub persist: bool,
    /// Records written by an earlier engine ([`crate::storage`]'s load format), recovered at
    /// start when `persist` is on.
    pub recovered: Vec<u8>,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            seed: 0x5741_5252_454e_0002,
            connection: ConnectionConfig::default(),
            users: Vec::new(),
            persist: false,
            recovered: Vec::new(),
        }
    }
}

struct Slot {
    conn: Connection,
    /// The broker has been told the connection is gone (`Command::Close`).
    gone: bool,
    /// Already listed for `take_dirty`.
    listed: bool,
}

/// One broker and its connections. See the module docs for the call order.
pub struct Engine {
    broker: Broker,
    conns: BTreeMap<u32, Slot>,
    next_id: u32,
    /// Connections that may have commands for the broker or output for the caller.
    touched: Vec<u32>,
    dirty: Vec<u32>,
    journal: Option<Journal>,
    config: ConnectionConfig,
    /// Records in the recovered data that could not be read (skipped).
    recovery_errors: u32,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Engine {
        let mut users = StaticUsers::new();
        if config.users.is_empty() {
            users.add_user("guest", "guest");
        }
        for (u, p) in &config.users {
            users.add_user(u, p);
        }
        let mut recovery_errors = 0;
        let (storage, journal): (Box<dyn Storage + Send>, _) = if config.persist {
            let (storage, journal, errors) = JournalStorage::new(&config.recovered);
            recovery_errors = errors;
            (Box::new(storage), Some(journal))
        } else {
            (Box::new(NoStorage), None)
        };
        let broker = Broker::new(BrokerConfig { seed: config.seed }, Box::new(users), storage);
        Engine {
            broker,
            conns: BTreeMap::new(),
            next_id: 1,
            touched: Vec::new(),
            dirty: Vec::new(),
            journal,
            config: config.connection,
            recovery_errors,
        }
    }

    /// The broker, read-only (topology views).
    pub fn broker(&self) -> &Broker {
        &self.broker
    }

    /// Records of the recovered data that could not be decoded and were skipped.
    pub fn recovery_errors(&self) -> u32 {
        self.recovery_errors
    }

    /// Opens a connection: the peer is expected to send the AMQP protocol header first.
    pub fn connect(&mut self, now_ms: u64) -> u32 {
        let id = self.next_id;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        let conn = Connection::new(self.config.clone(), now_ms);
        self.conns.insert(
            id,
            Slot {
                conn,
                gone: false,
                listed: false,
            },
        );
        id
    }

    /// Bytes from connection `id`'s peer. Unknown ids are ignored.
    pub fn input(&mut self, id: u32, bytes: &[u8], now_ms: u64) {
        let Some(slot) = self.conns.get_mut(&id) else {
            return;
        };
        slot.conn.handle_input(bytes, now_ms);
        self.touched.push(id);
        self.pump(now_ms);
    }

    /// Connection `id`'s peer went away: the broker forgets it, unacked messages are requeued.
    pub fn eof(&mut self, id: u32, now_ms: u64) {
        let Some(slot) = self.conns.get_mut(&id) else {
            return;
        };
        slot.conn.handle_eof();
        self.touched.push(id);
        self.pump(now_ms);
        self.conns.remove(&id);
        self.dirty.retain(|d| *d != id);
    }

    /// Advances the clock: heartbeats, handshake and close deadlines, message TTLs.
    pub fn timeout(&mut self, now_ms: u64) {
        self.broker.handle_timeout(now_ms);
        for (id, slot) in self.conns.iter_mut() {
            slot.conn.handle_timeout(now_ms);
            self.touched.push(*id);
        }
        // Expiry may have produced events (cancelled consumers, dead letters delivered).
        self.pump(now_ms);
    }

    /// When [`Engine::timeout`] must run next (ms, the same clock as the `now_ms` given).
    pub fn poll_timeout(&self) -> Option<u64> {
        let conns = self.conns.values().filter_map(|s| s.conn.poll_timeout());
        conns.chain(self.broker.poll_timeout()).min()
    }

    /// Connections with output waiting or that have just closed, each listed once.
    pub fn take_dirty(&mut self) -> Vec<u32> {
        for id in &self.dirty {
            if let Some(slot) = self.conns.get_mut(id) {
                slot.listed = false;
            }
        }
        core::mem::take(&mut self.dirty)
    }

    /// Bytes to send to connection `id`'s peer (empty if none).
    pub fn take_output(&mut self, id: u32) -> Vec<u8> {
        match self.conns.get_mut(&id) {
            Some(slot) => core::mem::take(slot.conn.output()),
            None => Vec::new(),
        }
    }

    /// The connection is over: once its output is sent, close the socket and `forget` it.
    /// Unknown (already forgotten) ids count as closed.
    pub fn is_closed(&self, id: u32) -> bool {
        match self.conns.get(&id) {
            Some(slot) => slot.conn.is_closed(),
            None => true,
        }
    }

    /// Drops a closed connection's slot (the broker has already let it go).
    pub fn forget(&mut self, id: u32, now_ms: u64) {
        if self.conns.contains_key(&id) {
            self.eof(id, now_ms);
        }
    }

    /// Open connections (including closed ones not yet forgotten).
    pub fn connection_count(&self) -> usize {
        self.conns.len()
    }

    /// Storage operations made since the last call, in [`crate::storage`]'s op format (empty
    /// without persistence).
    pub fn take_storage_ops(&mut self) -> Vec<u8> {
        self.journal.as_ref().map(Journal::take).unwrap_or_default()
    }

    /// Tells the broker its time 0 in Unix milliseconds (for `x-death` timestamps).
    pub fn set_unix_time_offset(&mut self, unix_ms_at_zero: u64) {
        self.broker.set_unix_time_offset(unix_ms_at_zero);
    }

    /// Hands every broker event to its connection.
    fn drain_events(&mut self, now_ms: u64) {
        while let Some((to, event)) = self.broker.poll_event() {
            let to = u32::try_from(to.0).unwrap_or(0);
            if let Some(target) = self.conns.get_mut(&to) {
                target.conn.handle_event(event, now_ms);
                self.touched.push(to);
            }
        }
    }

    /// Moves commands into the broker and events out of it until both sides are quiet.
    fn pump(&mut self, now_ms: u64) {
        let mut check: Vec<u32> = Vec::new();
        self.drain_events(now_ms);
        while !self.touched.is_empty() {
            let touched = core::mem::take(&mut self.touched);
            for id in touched {
                let Some(slot) = self.conns.get_mut(&id) else {
                    continue;
                };
                let conn_id = ConnId(u64::from(id));
                while let Some(command) = slot.conn.poll_command() {
                    self.broker.handle(conn_id, command);
                }
                if slot.conn.is_closed() && !slot.gone {
                    slot.gone = true;
                    self.broker.handle(conn_id, Command::Close);
                }
                check.push(id);
                self.drain_events(now_ms);
            }
        }
        check.sort_unstable();
        check.dedup();
        for id in check {
            let Some(slot) = self.conns.get_mut(&id) else {
                continue;
            };
            let has_output = !slot.conn.output().is_empty();
            if (has_output || slot.conn.is_closed()) && !slot.listed {
                slot.listed = true;
                self.dirty.push(id);
            }
        }
    }
}
