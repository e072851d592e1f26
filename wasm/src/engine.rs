//! The engine: the core's [`Pump`] (one [`Broker`] and its connections on one thread) with
//! what a browser tab, a Web Worker or an edge worker adds: users, the IndexedDB journal, and
//! connection ids that fit a JavaScript number. The JavaScript side feeds it bytes and the
//! time, and takes bytes out; every rule (close, delivery credit, clock) is the core's.
//!
//! Call order, after every mutation ([`Engine::input`], [`Engine::eof`], [`Engine::timeout`]):
//! 1. [`Engine::take_dirty`] lists the connections with bytes to send or that just closed;
//! 2. for each, send [`Engine::take_output`] (handing bytes to the socket counts as written:
//!    it may make more output ready, so take `take_dirty` again until it is empty); if
//!    [`Engine::is_closed`], close the socket and call [`Engine::forget`];
//! 3. arm a timer for [`Engine::poll_timeout`] and call [`Engine::timeout`] when it fires.

use alloc::boxed::Box;
use alloc::string::String;
use alloc::vec::Vec;

use warren_core::access::{Hashing, PasswordHash};
use warren_core::storage::Storage;
use warren_core::{Broker, BrokerConfig, ConnId, ConnectionConfig, Pump};

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

/// One broker and its connections. See the module docs for the call order.
pub struct Engine {
    pump: Pump,
    journal: Option<Journal>,
    /// Records in the recovered data that could not be read (skipped).
    recovery_errors: u32,
}

impl Engine {
    pub fn new(config: EngineConfig) -> Engine {
        let mut recovery_errors = 0;
        let (storage, journal): (Box<dyn Storage + Send>, _) = if config.persist {
            let (storage, journal, errors) = JournalStorage::new(&config.recovered);
            recovery_errors = errors;
            (Box::new(storage), Some(journal))
        } else {
            (Box::new(NoStorage), None)
        };
        let mut broker = Broker::new(
            BrokerConfig {
                seed: config.seed,
                ..BrokerConfig::default()
            },
            storage,
        );
        // The page's own users replace `guest`, each with every permission on `/`.
        if !config.users.is_empty() {
            let _ = broker.delete_user("guest");
        }
        for (i, (u, p)) in config.users.iter().enumerate() {
            let salt = ((config.seed as u32) ^ (i as u32).wrapping_mul(0x9E37_79B9)).to_le_bytes();
            let _ = broker.add_user(u, PasswordHash::new(Hashing::Sha256, salt, p));
            let _ = broker.set_permissions(u, "/", ".*", ".*", ".*");
        }
        Engine {
            pump: Pump::new(broker, config.connection),
            journal,
            recovery_errors,
        }
    }

    /// The broker, read-only (topology views).
    pub fn broker(&self) -> &Broker {
        self.pump.broker()
    }

    /// Records of the recovered data that could not be decoded and were skipped.
    pub fn recovery_errors(&self) -> u32 {
        self.recovery_errors
    }

    /// Opens a connection: the peer is expected to send the AMQP protocol header first.
    pub fn connect(&mut self, now_ms: u64) -> u32 {
        js_id(self.pump.connect(now_ms))
    }

    /// Bytes from connection `id`'s peer. Unknown ids are ignored.
    pub fn input(&mut self, id: u32, bytes: &[u8], now_ms: u64) {
        self.pump.handle_input(conn_id(id), bytes, now_ms);
    }

    /// Connection `id`'s peer went away: the broker forgets it, unacked messages are requeued.
    pub fn eof(&mut self, id: u32, now_ms: u64) {
        self.pump.handle_eof(conn_id(id), now_ms);
        self.pump.forget(conn_id(id));
    }

    /// Advances the clock: heartbeats, handshake and close deadlines, message TTLs.
    pub fn timeout(&mut self, now_ms: u64) {
        self.pump.handle_timeout(now_ms);
    }

    /// When [`Engine::timeout`] must run next (ms, the same clock as the `now_ms` given).
    pub fn poll_timeout(&self) -> Option<u64> {
        self.pump.poll_timeout()
    }

    /// Connections with output waiting or that have just closed, each listed once.
    pub fn take_dirty(&mut self) -> Vec<u32> {
        self.pump.take_ready().into_iter().map(js_id).collect()
    }

    /// Bytes to send to connection `id`'s peer (empty if none). Handing them to the socket
    /// counts as writing them: it returns delivery credit, which may make more output ready.
    pub fn take_output(&mut self, id: u32) -> Vec<u8> {
        let out = self.pump.take_output(conn_id(id));
        if !out.is_empty() {
            self.pump.handle_written(conn_id(id), out.len());
        }
        out
    }

    /// The connection is over: once its output is sent, close the socket and `forget` it.
    /// Unknown (already forgotten) ids count as closed.
    pub fn is_closed(&self, id: u32) -> bool {
        self.pump.is_closed(conn_id(id))
    }

    /// Drops a closed connection (one still open is treated as a dead socket first).
    pub fn forget(&mut self, id: u32, now_ms: u64) {
        self.pump.handle_eof(conn_id(id), now_ms);
        self.pump.forget(conn_id(id));
    }

    /// Open connections (including closed ones not yet forgotten).
    pub fn connection_count(&self) -> usize {
        self.pump.connection_count()
    }

    /// Storage operations made since the last call, in [`crate::storage`]'s op format (empty
    /// without persistence).
    pub fn take_storage_ops(&mut self) -> Vec<u8> {
        self.journal.as_ref().map(Journal::take).unwrap_or_default()
    }

    /// Tells the broker its time 0 in Unix milliseconds (for `x-death` timestamps).
    pub fn set_unix_time_offset(&mut self, unix_ms_at_zero: u64) {
        self.pump.broker_mut().set_unix_time_offset(unix_ms_at_zero);
    }
}

/// Connection ids as JavaScript sees them: the pump counts from 1, and a page opens far fewer
/// than 2^32 connections.
fn js_id(id: ConnId) -> u32 {
    id.0 as u32
}

fn conn_id(id: u32) -> ConnId {
    ConnId(u64::from(id))
}
