//! The simulated world: the core's [`Pump`] (one broker and a server connection per live
//! client connection, exactly as the wasm engine runs them), the clients, the links between
//! them, and virtual time, with a seeded network. The oracle watches the pump as its
//! [`Observer`](warren_core::pump::Observer) (`crate::oracle`).
//!
//! Faults: links hold bytes back, split them at random points and deliver them in batches;
//! clients stall (neither read nor write); connections are killed abruptly (part of what was
//! sent arrives, then EOF); virtual time jumps so heartbeats expire.

use std::cell::Cell;

use bytes::Bytes;
use warren_core::broker::{Broker, BrokerConfig, Window};
use warren_core::codec::{
    BasicAck, BasicCancel, BasicConsume, BasicGet, BasicNack, BasicProperties, BasicPublish,
    BasicQos, BasicRecover, BasicReject, ChannelClose, ChannelFlow, ChannelOpen, ConfirmSelect,
    ConnectionClose, ConnectionOpen, ConnectionTuneOk, ExchangeBind, ExchangeDeclare,
    ExchangeDelete, ExchangeUnbind, FieldTable, FieldValue, LongStr, QueueBind, QueueDeclare,
    QueueDelete, QueuePurge, QueueUnbind, ShortStr, TxCommit, TxRollback, TxSelect,
    PROTOCOL_HEADER,
};
use warren_core::connection::ConnectionConfig;
use warren_core::storage::MemoryStorage;
use warren_core::{ConnId, Pump};

use warren_testkit::Handshake;

use crate::client::{ChState, Client, Phase, MAX_CHANNELS};
use crate::disk::{SimDisk, SimStore, SimWriter};
use crate::model::{Model, Sent, Strictness, REPLY_TO};
use crate::oracle::Oracle;
use crate::program::{
    exchange_name, exchange_shape, publish_priority, queue_arguments, queue_flags,
    queue_max_priority, Arg, How, Op, BINDING_KEYS, EXCHANGES, PUBLISH_KEYS, QUEUES,
};
use crate::rng::{Fnv, Rng, Source};

thread_local! {
    /// The step being run, for reporting a panic inside the core.
    pub static CURRENT_STEP: Cell<usize> = const { Cell::new(0) };
}

/// Workload shapes that avoid known core bugs, so a soak can get past them (see
/// `sim/regressions.txt`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Workarounds {
    /// Never publish mandatory inside a transaction.
    pub no_tx_mandatory: bool,
    /// Accept a channel.close left unanswered when it crossed a server channel.close, and
    /// never use that channel number again.
    pub wedged_close: bool,
    /// Do not require broker output sent before our connection.close to precede close-ok.
    pub lax_connection_close: bool,
    /// Never reuse a consumer tag (Warren checks the queue before a reused tag; RabbitMQ
    /// refuses the tag first).
    pub lax_consumer_tag: bool,
    /// After a restart, take the broker's bindings as they are (stale bindings of deleted
    /// durable queues come back).
    pub restart_bindings: bool,
    /// Clients never answer a server channel.close that crosses their own (they should, as
    /// pika does; Warren used to close the connection with 504 when it had already answered
    /// theirs).
    pub crossed_close_ok: bool,
    /// Never bind a queue to a direct exchange with arguments (two bindings that differ only
    /// in arguments leave a stale entry in the direct exchange's index).
    pub direct_binding_args: bool,
}

impl Workarounds {
    /// The workarounds named in a comma-separated list ("all", "none", or names).
    pub fn parse(list: &str) -> Result<Self, String> {
        let mut w = Workarounds::default();
        for name in list.split(',').filter(|s| !s.is_empty()) {
            match name {
                "all" => w = Workarounds::all(),
                "none" => w = Workarounds::default(),
                "no_tx_mandatory" => w.no_tx_mandatory = true,
                "wedged_close" => w.wedged_close = true,
                "lax_connection_close" => w.lax_connection_close = true,
                "lax_consumer_tag" => w.lax_consumer_tag = true,
                "restart_bindings" => w.restart_bindings = true,
                "direct_binding_args" => w.direct_binding_args = true,
                "crossed_close_ok" => w.crossed_close_ok = true,
                other => return Err(format!("unknown workaround '{other}'")),
            }
        }
        Ok(w)
    }

    /// The list [`Workarounds::parse`] reads back.
    pub fn names(&self) -> String {
        let mut v = Vec::new();
        if self.no_tx_mandatory {
            v.push("no_tx_mandatory");
        }
        if self.wedged_close {
            v.push("wedged_close");
        }
        if self.lax_connection_close {
            v.push("lax_connection_close");
        }
        if self.lax_consumer_tag {
            v.push("lax_consumer_tag");
        }
        if self.restart_bindings {
            v.push("restart_bindings");
        }
        if self.direct_binding_args {
            v.push("direct_binding_args");
        }
        if self.crossed_close_ok {
            v.push("crossed_close_ok");
        }
        if v.is_empty() {
            "none".into()
        } else if v.len() == 7 {
            "all".into()
        } else {
            v.join(",")
        }
    }

    /// The workarounds for core bugs still open: the default of every run (CLI, tests,
    /// fuzzing, CI). Empty while no known bug is open; add a bug's flag here when it is found
    /// and remove it when the bug is fixed (see `sim/regressions.txt`).
    pub fn standard() -> Self {
        Workarounds::default()
    }

    pub fn all() -> Self {
        Workarounds {
            no_tx_mandatory: true,
            wedged_close: true,
            lax_connection_close: true,
            lax_consumer_tag: true,
            restart_bindings: true,
            direct_binding_args: true,
            crossed_close_ok: true,
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub clients: usize,
    pub strict: Strictness,
    pub workarounds: Workarounds,
}

impl Options {
    /// The shape of a run for `seed` (number of clients varies by seed).
    pub fn for_seed(seed: u64, workarounds: Workarounds) -> Self {
        Options {
            clients: 2 + (seed % 5) as usize,
            strict: Strictness {
                tx_return_at_commit: !workarounds.no_tx_mandatory,
                // With the workaround on, tags are never reused, so the order never matters.
                consumer_tag_first: true,
            },
            workarounds,
        }
    }
}

#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub steps: u64,
    /// Calls into the core: broker commands and timeouts, connection inputs, events and
    /// timeouts.
    pub core_ops: u64,
    pub commands: u64,
    pub events: u64,
    pub bytes: u64,
    pub connections: u64,
    pub delivered: u64,
    /// Messages the model dropped for their TTL.
    pub expired: u64,
    /// Messages republished to a dead-letter exchange.
    pub dead_lettered: u64,
    /// Memory alarms raised.
    pub alarms: u64,
    pub confirmed: u64,
    pub errors: u64,
    pub published: u64,
    pub routed: u64,
    /// Connections the server dropped for silence (missed heartbeats, slow handshake).
    pub timeouts: u64,
    /// Broker restarts (each a crash of the process, replayed from its disk store).
    pub restarts: u64,
    /// Messages the disk store gave back across those restarts.
    pub recovered: u64,
    /// Publishers held by flow control.
    pub flow_holds: u64,
    /// Syncs of the store, and those that let answers waiting for them go.
    pub syncs: u64,
    pub releasing_syncs: u64,
    /// Syncs that stopped short of the latest writes.
    pub partial_syncs: u64,
    /// Restarts that lost writes never synced.
    pub unsynced_crashes: u64,
}

impl Stats {
    pub fn add(&mut self, o: &Stats) {
        self.steps += o.steps;
        self.core_ops += o.core_ops;
        self.commands += o.commands;
        self.events += o.events;
        self.bytes += o.bytes;
        self.connections += o.connections;
        self.delivered += o.delivered;
        self.expired += o.expired;
        self.dead_lettered += o.dead_lettered;
        self.alarms += o.alarms;
        self.confirmed += o.confirmed;
        self.errors += o.errors;
        self.published += o.published;
        self.routed += o.routed;
        self.timeouts += o.timeouts;
        self.restarts += o.restarts;
        self.recovered += o.recovered;
        self.flow_holds += o.flow_holds;
        self.syncs += o.syncs;
        self.releasing_syncs += o.releasing_syncs;
        self.partial_syncs += o.partial_syncs;
        self.unsynced_crashes += o.unsynced_crashes;
    }
}

/// An invariant that broke, and when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    /// Index of the program operation after which it was detected.
    pub step: usize,
    pub invariant: String,
}

pub struct Outcome {
    pub trace: u64,
    pub stats: Stats,
    pub failure: Option<Failure>,
}

/// One direction of a socket.
#[derive(Default)]
struct Pipe {
    buf: Vec<u8>,
    pos: usize,
}

impl Pipe {
    fn len(&self) -> usize {
        self.buf.len() - self.pos
    }
    fn push(&mut self, bytes: &[u8]) {
        if self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        self.buf.extend_from_slice(bytes);
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        s
    }
}

struct Link {
    /// The server connection in the pump.
    id: ConnId,
    up: Pipe,
    down: Pipe,
    /// The server connection is closed: once `down` is drained the client sees EOF.
    server_done: bool,
    /// How long the server had heard nothing when it closed (for the EOF check).
    silent_at_close: u64,
    /// When bytes last reached the server.
    last_in_ms: u64,
}

struct Peer {
    client: Client,
    link: Option<Link>,
    /// Announces consumer_cancel_notify.
    cancel_notify: bool,
}

pub struct Sim {
    pump: Pump<Oracle>,
    peers: Vec<Peer>,
    now: u64,
    net: Rng,
    /// Delivery flow control: which connections have a window, when credit comes back. A
    /// stream of its own, so that runs without it draw the same network as before.
    flow: Rng,
    next_msg: u64,
    trace: Fnv,
    pub stats: Stats,
    opts: Options,
    config: ConnectionConfig,
    seed: u64,
    restarts: u64,
    /// The broker's disk: it outlives restarts.
    disk: SimDisk,
    /// The store's writer: what the broker wrote waits there until the world syncs it.
    writer: Option<SimWriter>,
    /// The model as of the last sync: what a crash leaves (see [`Oracle::crash`]).
    synced_model: Model,
    /// The model as it was when this many batches waited (some of the moments since the last
    /// sync): a sync may stop there, leaving the later batches for the next.
    marks: Vec<(usize, Model)>,
    /// When the store syncs: a stream re-seeded per step, like the network's.
    disk_rng: Rng,
    /// The memory alarm is on.
    alarm: bool,
    /// When the running broker process started (sim ms): its clock counts from there, as a
    /// restarted process's monotonic clock does.
    epoch: u64,
    /// Shapes of what the step sends (message sizes and properties): a stream re-seeded per
    /// step, like the network's, so that the program's own draws stay as they were.
    shape: Rng,
}

type R = Result<(), String>;

/// Queues keep only this much in memory, so that runs page all the time: most queues of a run
/// are longer than this, and every read back goes through the store's pager.
pub(crate) const SIM_WINDOW: Window = Window {
    messages: 3,
    bytes: 2048,
};

/// Publisher flow control holds a publisher once a queue it publishes into holds this many
/// messages while a consumer takes from it: small, so that runs hold and release often.
const SIM_FLOW_BACKLOG: usize = 6;

impl Sim {
    pub fn new(seed: u64, opts: Options) -> Self {
        let disk = SimDisk::default();
        let (store, writer) = SimStore::open(disk.clone());
        let mut broker = Broker::new(
            BrokerConfig {
                seed: seed ^ 0x00b1_0cce_d5ee_d5ee,
                queue_window: SIM_WINDOW,
                flow_backlog: SIM_FLOW_BACKLOG,
            },
            Box::new(store),
        );
        broker.record_decisions(true);
        let peers = (0..opts.clients)
            .map(|i| Peer {
                client: {
                    let mut c = Client::new();
                    c.strict_close = !opts.workarounds.lax_connection_close;
                    // As the spec (and pika) have it; RabbitMQ wants the close-ok before the
                    // channel number can be used again.
                    c.answers_crossed_close = !opts.workarounds.crossed_close_ok;
                    c
                },
                link: None,
                cancel_notify: i % 4 != 3,
            })
            .collect();
        let config = ConnectionConfig {
            product: "Warren",
            version: "sim",
            // Half the connections get a small window in `connect`; the rest none.
            delivery_window: None,
            ..ConnectionConfig::default()
        };
        let oracle = Oracle::new(Model::new(opts.strict));
        let synced_model = Model::new(opts.strict);
        Sim {
            writer: Some(writer),
            synced_model,
            marks: Vec::new(),
            disk_rng: Rng::new(seed),
            pump: Pump::with_observer(broker, config.clone(), oracle),
            peers,
            now: 0,
            net: Rng::new(seed ^ 0x6e65_7477_6f72_6b21),
            flow: Rng::new(seed ^ 0x666c_6f77_6374_6c21),
            seed,
            restarts: 0,
            disk,
            alarm: false,
            epoch: 0,
            shape: Rng::new(seed),
            next_msg: 1,
            trace: Fnv::default(),
            stats: Stats::default(),
            opts,
            config,
        }
    }

    /// The broker, as the pump holds it.
    pub fn broker(&self) -> &Broker {
        self.pump.broker()
    }

    fn model(&mut self) -> &mut Model {
        &mut self.pump.observer_mut().model
    }

    /// The broker's time now (ms since its process started), told to the model before an
    /// input reaches the broker.
    fn clock(&mut self) -> u64 {
        let t = self.now - self.epoch;
        self.model().now = t;
        t
    }

    /// After every call into the pump: the oracle's verdict on what it carried, and what
    /// each client must now receive.
    fn after_pump(&mut self) -> R {
        self.stats.core_ops += 1;
        let oracle = self.pump.observer_mut();
        oracle.check()?;
        for (id, expect) in oracle.take_expects() {
            let Some(expect) = expect else { continue };
            let live = self
                .peers
                .iter_mut()
                .find(|p| p.link.as_ref().is_some_and(|l| l.id == id));
            if let Some(peer) = live {
                peer.client.expected.push_back(expect);
            }
        }
        self.mark();
        Ok(())
    }

    /// Runs `ops` (each with its index in the original program) and reports.
    pub fn run(mut self, ops: &[(usize, Op)]) -> Outcome {
        let mut failure = None;
        let mut last = 0;
        for (i, op) in ops {
            last = *i;
            CURRENT_STEP.with(|s| s.set(*i));
            // The network's choices during a step depend on the seed and the step's index
            // only, so dropping other steps (shrinking) leaves this one's faults alone.
            self.net = Rng::new(
                self.seed ^ 0x6e65_7477_6f72_6b21 ^ (*i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            );
            self.shape = Rng::new(
                self.seed ^ 0x7368_6170_6573_2121 ^ (*i as u64).wrapping_mul(0xD1B5_4A32_D192_ED03),
            );
            self.disk_rng = Rng::new(
                self.seed ^ 0x6673_796e_6321_2121 ^ (*i as u64).wrapping_mul(0x94D0_49BB_1331_11EB),
            );
            self.trace.write_u64(*i as u64);
            self.stats.steps += 1;
            if let Err(e) = self.step(op) {
                failure = Some(Failure {
                    step: *i,
                    invariant: e,
                });
                break;
            }
        }
        if failure.is_none() {
            if let Err(e) = self.finish() {
                failure = Some(Failure {
                    step: last,
                    invariant: e,
                });
            }
        }
        let oracle = self.pump.observer();
        self.stats.commands = oracle.commands;
        self.stats.events = oracle.events;
        self.stats.core_ops += oracle.commands + oracle.events;
        let model = &oracle.model;
        self.stats.delivered = model.delivered;
        self.stats.expired = model.expired;
        self.stats.dead_lettered = model.dead_lettered;
        self.stats.confirmed = model.confirmed;
        self.stats.flow_holds = model.flow_holds;
        self.stats.errors = model.errors;
        self.stats.published = model.published;
        for (k, v) in &model.error_kinds {
            eprintln!("{v:8} {k}");
        }
        self.stats.routed = model.routed;
        Outcome {
            trace: self.trace.0,
            stats: self.stats,
            failure,
        }
    }

    fn step(&mut self, op: &Op) -> R {
        // A memory alarm comes (1% of steps) and goes (10%), whatever the state, so that a
        // step's choice does not depend on the steps before it (shrinking keeps it).
        match self.shape.below(100) {
            0 => self.set_alarm(true)?,
            90.. => self.set_alarm(false)?,
            _ => {}
        }
        // Stalls end by themselves after a while (50 steps on average).
        for p in 0..self.peers.len() {
            if self.peers[p].client.stalled && self.net.chance(2) {
                self.peers[p].client.stalled = false;
                self.peers[p].client.last_recv_ms = self.now;
            }
        }
        self.exec(op)?;
        let rounds = self.net.below(4);
        for _ in 0..rounds {
            self.pump(false)?;
            // The store syncs when it will: answers that wait for it go out then.
            if self.disk_rng.chance(15) {
                self.sync()?;
            }
        }
        // The process dies now and then while writes wait for their sync (beside the
        // program's own restarts, which mostly come when everything is synced).
        if self.writer.as_ref().is_some_and(|w| w.waiting() > 0) && self.disk_rng.chance(2) {
            return self.restart();
        }
        if self.disk_rng.chance(20) {
            self.sync()?;
        }
        if self.net.chance(30) {
            let ms = u64::from(self.net.below(20));
            self.advance(ms)?;
        }
        if self.net.chance(4) {
            self.settle()?;
        }
        Ok(())
    }

    /// Raises or clears the memory alarm: connections that publish while it is on stop
    /// being read until it clears.
    fn set_alarm(&mut self, on: bool) -> R {
        if self.alarm == on {
            return Ok(());
        }
        self.alarm = on;
        self.stats.alarms += u64::from(on);
        let t = self.clock();
        self.model().set_alarm(on);
        // Memory over the watermark is over the paging ratio too.
        self.pump.set_memory_pressure(on, t);
        self.pump.set_resource_alarm(on.then_some("memory"), t);
        self.after_pump()?;
        self.model().end_command()
    }

    /// The end of a run: everyone reads again, everything is delivered and checked.
    fn finish(&mut self) -> R {
        for p in &mut self.peers {
            p.client.stalled = false;
            p.client.last_recv_ms = self.now;
        }
        self.settle()
    }

    // -----------------------------------------------------------------------------------------
    // Moving bytes
    // -----------------------------------------------------------------------------------------

    /// How many of `len` waiting bytes a link lets through now.
    fn portion(&mut self, len: usize, full: bool) -> usize {
        if len == 0 || full {
            return len;
        }
        match self.net.below(4) {
            0 => 0,
            1 => 1 + self.net.below(len as u32) as usize,
            _ => len,
        }
    }

    /// One round over every peer; true if anything moved.
    fn pump(&mut self, full: bool) -> Result<bool, String> {
        let mut moved = false;
        for p in 0..self.peers.len() {
            moved |= self.pump_peer(p, full)?;
        }
        Ok(moved)
    }

    fn pump_peer(&mut self, p: usize, full: bool) -> Result<bool, String> {
        let mut moved = false;
        let now = self.now;
        let peer = &mut self.peers[p];
        let Some(link) = peer.link.as_mut() else {
            return Ok(false);
        };
        let client = &mut peer.client;
        if !client.stalled && !client.out.is_empty() {
            link.up.push(&client.out);
            client.out.clear();
            client.last_send_ms = now;
        }
        let n = link.up.len();
        let n = if link.server_done { 0 } else { n };
        let id = link.id;
        let wants = self.pump.connection(id).is_some_and(|c| c.wants_input());
        let n = if wants { self.portion(n, full) } else { 0 };
        let link = self.peers[p].link.as_mut().expect("checked");
        if n > 0 {
            let bytes = link.up.take(n);
            self.trace.write_u64(p as u64 * 2);
            self.trace.write(bytes);
            self.stats.bytes += n as u64;
            link.last_in_ms = now;
            let t = self.now - self.epoch;
            self.pump.observer_mut().model.now = t;
            self.pump.handle_input(id, bytes, t);
            self.after_pump()?;
            moved = true;
        }
        moved |= self.flush_server(p);
        let stalled = self.peers[p].client.stalled;
        let down = self.peers[p].link.as_ref().map_or(0, |l| l.down.len());
        let n = if stalled { 0 } else { self.portion(down, full) };
        if n > 0 {
            let peer = &mut self.peers[p];
            let link = peer.link.as_mut().expect("checked");
            let bytes = link.down.take(n);
            self.trace.write_u64(p as u64 * 2 + 1);
            self.trace.write(bytes);
            self.stats.bytes += n as u64;
            peer.client.last_recv_ms = now;
            peer.client
                .feed(bytes)
                .map_err(|e| format!("client {p}: {e}"))?;
            // The adapter's part in flow control, as every host plays it: report what the
            // peer took as written; the connection decides when that returns credit.
            let id = link.id;
            self.pump.handle_written(id, n);
            self.after_pump()?;
            moved = true;
        }
        let peer = &mut self.peers[p];
        if let Some(link) = &peer.link {
            if link.server_done && link.down.len() == 0 && !peer.client.stalled {
                if matches!(peer.client.phase, Phase::Opening | Phase::Open)
                    && peer.client.local_close.is_none()
                {
                    self.stats.timeouts += 1;
                }
                peer.client
                    .on_eof(link.silent_at_close, now)
                    .map_err(|e| format!("client {p}: {e}"))?;
                let id = link.id;
                peer.link = None;
                peer.client.reset();
                self.pump.forget(id);
                moved = true;
            }
        }
        Ok(moved)
    }

    /// Server output onto the wire; notes a closed connection.
    fn flush_server(&mut self, p: usize) -> bool {
        let now = self.now;
        let Some(link) = self.peers[p].link.as_mut() else {
            return false;
        };
        let mut moved = false;
        let out = self.pump.take_output(link.id);
        if !out.is_empty() {
            link.down.push(&out);
            moved = true;
        }
        if self.pump.is_closed(link.id) && !link.server_done {
            link.server_done = true;
            link.silent_at_close = now.saturating_sub(link.last_in_ms);
            moved = true;
        }
        moved
    }

    /// Delivers everything in flight until nothing moves, then checks the whole state.
    pub fn settle(&mut self) -> R {
        // Blocked publishers wait for the alarm: settling means it is over.
        self.set_alarm(false)?;
        let mut rounds = 0;
        loop {
            while self.pump(true)? {
                rounds += 1;
                if rounds > 10_000 {
                    return Err("the world does not quiesce".into());
                }
            }
            // Answers waiting for the store go out once it syncs.
            if self.writer.as_ref().is_some_and(|w| w.waiting() > 0) {
                self.sync()?;
                rounds += 1;
                continue;
            }
            if self.pump.broker().awaits_storage() {
                return Err("answers wait for writes the store never took".into());
            }
            // Publishers held by flow control are let go in time, at the latest once their
            // queue stops delivering: settling waits for that too.
            if !self.pump.broker().holds_publishers() {
                break;
            }
            let Some(t) = self.next_timer() else {
                return Err("publishers are held and no timer will let them go".into());
            };
            let ms = t.saturating_sub(self.now);
            self.advance(ms)?;
            rounds += 1;
            if rounds > 10_000 {
                return Err("publishers are held for good".into());
            }
        }
        self.model().check_quiet()?;
        self.pump
            .observer()
            .model
            .compare(self.pump.broker(), true)?;
        for (i, peer) in self.peers.iter().enumerate() {
            let c = &peer.client;
            if peer.link.is_none() || c.stalled || c.phase != Phase::Open {
                continue;
            }
            if let Some(e) = c.expected.front() {
                return Err(format!(
                    "client {i}: {} thing(s) the broker sent never arrived, first {} on channel {}",
                    c.expected.len(),
                    e.method.name(),
                    e.channel
                ));
            }
            for (n, ch) in c.chans.iter().enumerate() {
                let wedged = ch.crossed && self.opts.workarounds.wedged_close;
                let waiting = match ch.state {
                    ChState::Opening => Some("channel.open"),
                    ChState::Closing if !wedged => Some("channel.close"),
                    ChState::Open if !ch.pending_consumes.is_empty() => Some("basic.consume"),
                    ChState::Open if !ch.pending_gets.is_empty() => Some("basic.get"),
                    ChState::Open if !ch.unconfirmed.is_empty() => Some("a confirmed publish"),
                    _ => None,
                };
                if let Some(what) = waiting {
                    return Err(format!(
                        "client {i}: {what} on channel {n} was never answered{}",
                        if ch.crossed {
                            " (it crossed a channel.close from the server)"
                        } else {
                            ""
                        }
                    ));
                }
            }
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Time
    // -----------------------------------------------------------------------------------------

    fn next_timer(&self) -> Option<u64> {
        let epoch = self.epoch;
        let mut next = self.pump.poll_timeout().map(|t| t + epoch);
        let mut take = |t: Option<u64>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n: u64| n.min(t)));
            }
        };
        for peer in &self.peers {
            if peer.link.is_none() {
                continue;
            }
            let c = &peer.client;
            if c.heartbeat_ms > 0
                && !c.stalled
                && matches!(c.phase, Phase::Opening | Phase::Open | Phase::Closing)
            {
                take(Some(c.last_send_ms + c.heartbeat_ms / 2));
            }
        }
        next
    }

    /// Moves virtual time on by `ms`, firing every timer due on the way, in order.
    fn advance(&mut self, ms: u64) -> R {
        let target = self.now + ms;
        let mut fired = 0;
        while let Some(t) = self.next_timer().filter(|&t| t <= target) {
            fired += 1;
            if fired > 100_000 {
                return Err(format!("a timer keeps firing at {t} ms"));
            }
            self.now = self.now.max(t);
            self.fire()?;
        }
        self.now = target;
        self.fire()
    }

    fn fire(&mut self) -> R {
        let now = self.now;
        // The broker's timers, then every server connection's that is due; the model runs
        // the same timers first.
        let t = self.clock();
        self.model().tick();
        self.pump.handle_timeout(t);
        self.after_pump()?;
        self.model().end_command()?;
        for p in 0..self.peers.len() {
            let peer = &mut self.peers[p];
            let c = &mut peer.client;
            if peer.link.is_some()
                && c.heartbeat_ms > 0
                && !c.stalled
                && matches!(c.phase, Phase::Opening | Phase::Open | Phase::Closing)
                && c.last_send_ms + c.heartbeat_ms / 2 <= now
            {
                c.send_heartbeat();
                c.last_send_ms = now;
            }
            self.flush_server(p);
        }
        self.pump(true)?;
        // A server with heartbeats on writes at least every half interval: a reading client
        // never goes a whole interval without hearing from it.
        for (i, peer) in self.peers.iter().enumerate() {
            let c = &peer.client;
            let live = peer.link.as_ref().is_some_and(|l| !l.server_done);
            if live
                && c.phase == Phase::Open
                && !c.stalled
                && c.heartbeat_ms > 0
                && now.saturating_sub(c.last_recv_ms) > c.heartbeat_ms
            {
                return Err(format!(
                    "client {i}: nothing from the server for {} ms with a {} ms heartbeat",
                    now - c.last_recv_ms,
                    c.heartbeat_ms
                ));
            }
        }
        Ok(())
    }

    // -----------------------------------------------------------------------------------------
    // Operations
    // -----------------------------------------------------------------------------------------

    fn exec(&mut self, op: &Op) -> R {
        let n = self.peers.len();
        let (c, ch) = match *op {
            Op::Advance { ms } => return self.advance(u64::from(ms)),
            Op::Settle_ => return self.settle(),
            Op::Restart => return self.restart(),
            Op::Stall { c, on } => {
                let cl = &mut self.peers[usize::from(c) % n].client;
                cl.stalled = on;
                cl.last_recv_ms = self.now;
                return Ok(());
            }
            Op::Connect { c } | Op::Close { c } | Op::Kill { c } => (c, 0),
            Op::OpenChannel { c, ch }
            | Op::CloseChannel { c, ch }
            | Op::ExDeclare { c, ch, .. }
            | Op::ExDelete { c, ch, .. }
            | Op::ExBind { c, ch, .. }
            | Op::QDeclare { c, ch, .. }
            | Op::QDelete { c, ch, .. }
            | Op::QBind { c, ch, .. }
            | Op::QPurge { c, ch, .. }
            | Op::Qos { c, ch, .. }
            | Op::Consume { c, ch, .. }
            | Op::Cancel { c, ch, .. }
            | Op::Get { c, ch, .. }
            | Op::Settle { c, ch, .. }
            | Op::Recover { c, ch }
            | Op::Publish { c, ch, .. }
            | Op::Confirm { c, ch }
            | Op::TxSelect { c, ch }
            | Op::TxCommit { c, ch }
            | Op::TxRollback { c, ch }
            | Op::Error { c, ch, .. } => (c, ch),
        };
        let p = usize::from(c) % n;
        if self.peers[p].client.stalled {
            return Ok(());
        }
        if matches!(op, Op::Kill { .. }) {
            return self.kill(p);
        }
        match self.peers[p].client.phase {
            // Connect, and go on with the operation (pipelined behind the handshake).
            Phase::Down => {
                self.connect(p)?;
                if matches!(op, Op::Connect { .. } | Op::Close { .. }) {
                    return Ok(());
                }
            }
            Phase::Closing | Phase::Dead => return Ok(()),
            Phase::Opening | Phase::Open => {}
        }
        if matches!(op, Op::Connect { .. }) {
            return Ok(());
        }
        if matches!(op, Op::Close { .. }) {
            let cl = &mut self.peers[p].client;
            cl.send(
                0,
                ConnectionClose {
                    reply_code: 200,
                    reply_text: "bye".into(),
                    class_id: 0,
                    method_id: 0,
                },
            );
            cl.phase = Phase::Closing;
            return Ok(());
        }
        let chn = 1 + u16::from(ch) % MAX_CHANNELS;
        if let Op::Error { kind: 10, .. } = op {
            // A method on a channel that was never opened: the connection (not the broker)
            // closes everything with 504.
            let cl = &mut self.peers[p].client;
            cl.send(9, QueueDeclare::default());
            cl.local_close = Some(504);
            return Ok(());
        }
        let state = self.peers[p].client.chan(chn).state;
        match state {
            ChState::Closed => {
                // Open it, and go on with the operation (pipelined behind channel.open).
                let cl = &mut self.peers[p].client;
                cl.send(chn, ChannelOpen::default());
                cl.chan(chn).state = ChState::Opening;
                if matches!(op, Op::OpenChannel { .. } | Op::CloseChannel { .. }) {
                    return Ok(());
                }
            }
            ChState::Closing => return Ok(()),
            ChState::Opening | ChState::Open => {}
        }
        self.channel_op(p, chn, op);
        Ok(())
    }

    /// The store's writer syncs what the broker wrote so far, or, now and then, only the
    /// batches up to a moment marked on the way (as a sync that started before the later
    /// writes came); the broker hears how far and lets the answers that waited for that go.
    /// The model as of that moment is what a crash now leaves.
    fn sync(&mut self) -> R {
        let Some(writer) = self.writer.as_mut() else {
            return Ok(());
        };
        let partial = if !self.marks.is_empty() && self.disk_rng.chance(30) {
            Some(self.disk_rng.below(self.marks.len() as u32) as usize)
        } else {
            None
        };
        let (n, model) = match partial {
            Some(k) => {
                let (n, model) = self.marks.swap_remove(k);
                self.marks.retain(|(m, _)| *m > n);
                for (m, _) in &mut self.marks {
                    *m -= n;
                }
                (n, Some(model))
            }
            None => {
                self.marks.clear();
                (usize::MAX, None)
            }
        };
        let Some(seq) = writer.sync(n) else {
            return Ok(());
        };
        self.stats.syncs += 1;
        self.stats.partial_syncs += u64::from(partial.is_some());
        self.stats.releasing_syncs += u64::from(self.pump.broker().awaits_storage());
        self.synced_model = model.unwrap_or_else(|| self.pump.observer().model.clone());
        let t = self.clock();
        self.pump.storage_synced(seq, t);
        self.after_pump()
    }

    /// Now and then notes the model as it stands while writes wait, so that a sync may stop
    /// here ([`Sim::sync`]).
    fn mark(&mut self) {
        let waiting = self.writer.as_ref().map_or(0, |w| w.waiting());
        let last = self.marks.last().map_or(0, |(n, _)| *n);
        if waiting > last && self.disk_rng.chance(30) {
            let model = self.pump.observer().model.clone();
            self.marks.push((waiting, model));
        }
    }

    /// The broker process dies and comes back from its storage; every client sees its socket
    /// close.
    fn restart(&mut self) -> R {
        self.restarts += 1;
        let placeholder = Pump::with_observer(
            Broker::new(BrokerConfig::default(), Box::new(MemoryStorage::default())),
            self.config.clone(),
            Oracle::new(Model::new(self.opts.strict)),
        );
        let (old, mut oracle) = std::mem::replace(&mut self.pump, placeholder).into_parts();
        drop(old);
        // The process dies: what was not synced is lost, and the last write may be torn.
        let mut crash = Rng::new(self.seed ^ self.restarts.wrapping_mul(0x6469_736b));
        self.marks.clear();
        let mut torn = false;
        if let Some(writer) = self.writer.take() {
            self.stats.unsynced_crashes += u64::from(writer.waiting() > 0);
            torn = writer.crash(&mut crash);
        }
        if !torn {
            self.disk.crash(&mut crash);
        }
        oracle.crash(self.synced_model.clone())?;
        let (storage, writer) = SimStore::open(self.disk.clone());
        self.writer = Some(writer);
        let storage = Box::new(storage);
        self.stats.restarts += 1;
        let mut broker = Broker::new(
            BrokerConfig {
                seed: self.seed ^ 0x00b1_0cce_d5ee_d5ee ^ self.restarts.wrapping_mul(0x51),
                queue_window: SIM_WINDOW,
                flow_backlog: SIM_FLOW_BACKLOG,
            },
            storage,
        );
        broker.record_decisions(true);
        self.stats.recovered += broker.queues().map(|q| q.len() as u64).sum::<u64>();
        self.pump = Pump::with_observer(broker, self.config.clone(), oracle);
        // A new broker process starts without an alarm.
        self.alarm = false;
        for peer in &mut self.peers {
            peer.link = None;
            peer.client.reset();
        }
        self.epoch = self.now;
        let t = self.clock();
        self.model().restart();
        self.pump.handle_timeout(t);
        self.after_pump()?;
        if self.opts.workarounds.restart_bindings {
            let (oracle, broker) = self.pump.observer_and_broker();
            oracle.model.adopt_bindings(broker);
        }
        self.pump
            .observer()
            .model
            .compare(self.pump.broker(), true)?;
        // What recovery found is on disk: a crash before the next sync comes back to it.
        self.synced_model = self.pump.observer().model.clone();
        Ok(())
    }

    fn connect(&mut self, p: usize) -> R {
        self.stats.connections += 1;
        let small_frames = self.net.chance(20);
        let heartbeat = if self.net.chance(40) {
            1 + self.net.below(4) as u16
        } else {
            0
        };
        let cancel_notify = self.peers[p].cancel_notify;
        let now = self.now;
        let mut config = self.config.clone();
        if self.flow.chance(50) {
            // Windows from under one message to a few: deliveries wait for credit often.
            config.delivery_window = Some(50 + u64::from(self.flow.below(1500)));
            // Credit comes back once the client has read everything, or earlier, while some
            // output still waits (as the native driver's low water has it).
            config.credit_low_water = if self.flow.chance(3) {
                1 + self.flow.below(2000) as usize
            } else {
                1
            };
        }
        let t = self.clock();
        let id = self.pump.connect_with(config, t);
        let peer = &mut self.peers[p];
        peer.client.reset();
        let c = &mut peer.client;
        c.phase = Phase::Opening;
        c.frame_max = if small_frames { 4096 } else { 131_072 };
        c.heartbeat_ms = u64::from(heartbeat) * 1000;
        c.last_send_ms = now;
        c.last_recv_ms = now;
        c.connected_at = now;
        c.out.extend_from_slice(&PROTOCOL_HEADER);
        let mut capabilities = vec!["publisher_confirms", "basic.nack", "connection.blocked"];
        if cancel_notify {
            capabilities.push("consumer_cancel_notify");
        }
        let handshake = Handshake {
            capabilities,
            product: "warren-sim",
            ..Handshake::default()
        };
        c.send(0, handshake.start_ok());
        c.send(
            0,
            ConnectionTuneOk {
                channel_max: 16,
                frame_max: c.frame_max,
                heartbeat,
            },
        );
        c.send(
            0,
            ConnectionOpen {
                virtual_host: "/".into(),
                ..Default::default()
            },
        );
        peer.link = Some(Link {
            id,
            up: Pipe::default(),
            down: Pipe::default(),
            server_done: false,
            silent_at_close: 0,
            last_in_ms: now,
        });
        Ok(())
    }

    /// The client dies: some of what it wrote arrives, then the server sees EOF.
    fn kill(&mut self, p: usize) -> R {
        let now = self.now;
        let peer = &mut self.peers[p];
        let Some(link) = peer.link.as_mut() else {
            return Ok(());
        };
        let client = &mut peer.client;
        link.up.push(&client.out);
        client.out.clear();
        let waiting = link.up.len();
        let n = if waiting == 0 || link.server_done {
            0
        } else {
            self.net.below(waiting as u32 + 1) as usize
        };
        let id = link.id;
        let link = self.peers[p].link.as_mut().expect("checked");
        let t = now - self.epoch;
        self.pump.observer_mut().model.now = t;
        if n > 0 && self.pump.connection(id).is_some_and(|c| c.wants_input()) {
            let bytes = link.up.take(n);
            self.trace.write(bytes);
            self.pump.handle_input(id, bytes, t);
            self.after_pump()?;
        }
        self.pump.handle_eof(id, t);
        self.after_pump()?;
        let peer = &mut self.peers[p];
        peer.link = None;
        peer.client.reset();
        self.pump.forget(id);
        Ok(())
    }

    fn queue_name(&self, p: usize, q: u8) -> ShortStr {
        if q < QUEUES {
            return ShortStr::from(format!("q{q}"));
        }
        if q == QUEUES {
            let named = &self.peers[p].client.server_named;
            return match named.last() {
                Some(n) => n.clone(),
                None => ShortStr::from(""),
            };
        }
        ShortStr::from("missing-q")
    }

    fn channel_op(&mut self, p: usize, chn: u16, op: &Op) {
        let qname = |s: &Sim, q: u8| s.queue_name(p, q);
        match *op {
            Op::OpenChannel { .. } => {}
            Op::CloseChannel { .. } => {
                let cl = &mut self.peers[p].client;
                cl.send(
                    chn,
                    ChannelClose {
                        reply_code: 200,
                        reply_text: "bye".into(),
                        class_id: 0,
                        method_id: 0,
                    },
                );
                cl.chan(chn).state = ChState::Closing;
            }
            Op::ExDeclare {
                x,
                deviate,
                passive,
                ..
            } => {
                let (mut kind, mut durable, mut auto_delete, mut internal) = exchange_shape(x);
                match deviate {
                    1 => {
                        kind = exchange_shape(x + 1).0;
                        if kind == exchange_shape(x).0 {
                            kind = "direct";
                        }
                    }
                    2 => durable = !durable,
                    3 => auto_delete = !auto_delete,
                    4 => internal = !internal,
                    _ => {}
                }
                self.peers[p].client.send(
                    chn,
                    ExchangeDeclare {
                        exchange: ShortStr::from(exchange_name(x % EXCHANGES)),
                        kind: kind.into(),
                        passive,
                        durable,
                        auto_delete,
                        internal,
                        ..Default::default()
                    },
                );
            }
            Op::ExDelete { x, if_unused, .. } => {
                self.peers[p].client.send(
                    chn,
                    ExchangeDelete {
                        exchange: exchange_name(x).into(),
                        if_unused,
                        ..Default::default()
                    },
                );
            }
            Op::ExBind {
                dst,
                src,
                key,
                unbind,
                ..
            } => {
                let (destination, source) = (exchange_name(dst).into(), exchange_name(src).into());
                let routing_key: ShortStr = BINDING_KEYS[usize::from(key)].into();
                let cl = &mut self.peers[p].client;
                if unbind {
                    cl.send(
                        chn,
                        ExchangeUnbind {
                            destination,
                            source,
                            routing_key,
                            ..Default::default()
                        },
                    );
                } else {
                    cl.send(
                        chn,
                        ExchangeBind {
                            destination,
                            source,
                            routing_key,
                            ..Default::default()
                        },
                    );
                }
            }
            Op::QDeclare {
                q,
                deviate,
                passive,
                ..
            } => {
                let (queue, flags) = if q < QUEUES {
                    (qname(self, q), queue_flags(q))
                } else if passive {
                    (qname(self, QUEUES), (false, false, false, false))
                } else {
                    let flags = match deviate {
                        0 => (false, true, false, false),
                        1 => (false, false, true, false),
                        _ => (false, false, false, false),
                    };
                    (ShortStr::from(""), flags)
                };
                let (mut durable, mut exclusive, mut auto_delete, mut lazy) = flags;
                if q < QUEUES {
                    match deviate {
                        1 => durable = !durable,
                        2 => exclusive = !exclusive,
                        3 => auto_delete = !auto_delete,
                        4 => lazy = !lazy,
                        _ => {}
                    }
                }
                let mut arguments = FieldTable::default();
                if lazy {
                    arguments.insert("x-queue-mode", FieldValue::LongStr("lazy".into()));
                }
                if let Some(max) = (q < QUEUES).then(|| queue_max_priority(q)).flatten() {
                    arguments.insert("x-max-priority", FieldValue::I32(i32::from(max)));
                }
                if q < QUEUES {
                    for (key, value) in queue_arguments(q) {
                        let value = match *value {
                            Arg::Int(n) => FieldValue::I32(n),
                            Arg::Str(s) => FieldValue::LongStr(LongStr::from(s)),
                        };
                        arguments.insert(*key, value);
                    }
                }
                self.peers[p].client.send(
                    chn,
                    QueueDeclare {
                        queue,
                        passive,
                        durable,
                        exclusive,
                        auto_delete,
                        arguments,
                        ..Default::default()
                    },
                );
            }
            Op::QDelete {
                q,
                if_unused,
                if_empty,
                ..
            } => {
                let queue = qname(self, q);
                self.peers[p].client.send(
                    chn,
                    QueueDelete {
                        queue,
                        if_unused,
                        if_empty,
                        ..Default::default()
                    },
                );
            }
            Op::QBind {
                q,
                x,
                key,
                args,
                unbind,
                ..
            } => {
                let queue = qname(self, q);
                let exchange: ShortStr = exchange_name(x).into();
                let routing_key: ShortStr = BINDING_KEYS[usize::from(key)].into();
                let direct = matches!(exchange.as_str(), "x0" | "amq.direct");
                let arguments = if direct && self.opts.workarounds.direct_binding_args {
                    FieldTable::default()
                } else {
                    binding_args(args)
                };
                let cl = &mut self.peers[p].client;
                if unbind {
                    cl.send(
                        chn,
                        QueueUnbind {
                            queue,
                            exchange,
                            routing_key,
                            arguments,
                            ..Default::default()
                        },
                    );
                } else {
                    cl.send(
                        chn,
                        QueueBind {
                            queue,
                            exchange,
                            routing_key,
                            arguments,
                            ..Default::default()
                        },
                    );
                }
            }
            Op::QPurge { q, .. } => {
                let queue = qname(self, q);
                self.peers[p].client.send(
                    chn,
                    QueuePurge {
                        queue,
                        ..Default::default()
                    },
                );
            }
            Op::Qos { count, global, .. } => {
                self.peers[p].client.send(
                    chn,
                    BasicQos {
                        prefetch_size: 0,
                        prefetch_count: u16::from(count),
                        global,
                    },
                );
            }
            Op::Consume {
                q,
                no_ack,
                exclusive,
                named,
                ..
            } => {
                // Some consumers are direct reply-to consumers (named; a tenth of them ask to
                // ack, which is refused).
                let reply_to = self.shape.chance(8);
                let (queue, named, no_ack) = if reply_to {
                    (ShortStr::from(REPLY_TO), true, !self.shape.chance(10))
                } else {
                    (qname(self, q), named, no_ack)
                };
                let cl = &mut self.peers[p].client;
                let consumer_tag = if named {
                    cl.next_ctag += 1;
                    ShortStr::from(format!("t{}", cl.next_ctag))
                } else {
                    ShortStr::from("")
                };
                cl.chan(chn).pending_consumes.push_back(no_ack);
                let arguments = consumer_arguments(&mut self.shape);
                let cl = &mut self.peers[p].client;
                cl.send(
                    chn,
                    BasicConsume {
                        queue,
                        consumer_tag,
                        no_ack,
                        exclusive,
                        arguments,
                        ..Default::default()
                    },
                );
            }
            Op::Cancel { pick, .. } => {
                let cl = &mut self.peers[p].client;
                let c = cl.chan(chn);
                let consumer_tag = if c.active.is_empty() {
                    ShortStr::from("nope")
                } else {
                    c.active[usize::from(pick) % c.active.len()].clone()
                };
                cl.send(
                    chn,
                    BasicCancel {
                        consumer_tag,
                        no_wait: false,
                    },
                );
            }
            Op::Get { q, no_ack, .. } => {
                let queue = qname(self, q);
                let cl = &mut self.peers[p].client;
                cl.chan(chn).pending_gets.push_back(no_ack);
                cl.send(
                    chn,
                    BasicGet {
                        queue,
                        no_ack,
                        ..Default::default()
                    },
                );
            }
            Op::Settle {
                pick,
                how,
                multiple,
                requeue,
                ..
            } => {
                let cl = &mut self.peers[p].client;
                let c = cl.chan(chn);
                if c.unacked.is_empty() {
                    return;
                }
                let multiple = multiple && how != How::Reject;
                let tag = if multiple && pick % 5 == 0 {
                    0
                } else {
                    c.unacked[usize::from(pick) % c.unacked.len()]
                };
                if multiple {
                    c.unacked.retain(|&t| tag != 0 && t > tag);
                } else {
                    c.unacked.retain(|&t| t != tag);
                }
                match how {
                    How::Ack => cl.send(
                        chn,
                        BasicAck {
                            delivery_tag: tag,
                            multiple,
                        },
                    ),
                    How::Nack => cl.send(
                        chn,
                        BasicNack {
                            delivery_tag: tag,
                            multiple,
                            requeue,
                        },
                    ),
                    How::Reject => cl.send(
                        chn,
                        BasicReject {
                            delivery_tag: tag,
                            requeue,
                        },
                    ),
                }
            }
            Op::Recover { .. } => self.peers[p]
                .client
                .send(chn, BasicRecover { requeue: true }),
            Op::Publish {
                x,
                key,
                mandatory,
                persistent,
                headers,
                size,
                count,
                ..
            } => {
                let in_tx = self.peers[p].client.chan(chn).tx;
                let mandatory = mandatory && !(in_tx && self.opts.workarounds.no_tx_mandatory);
                let mut exchange: ShortStr = exchange_name(x).into();
                let mut routing_key: ShortStr = PUBLISH_KEYS[usize::from(key)].into();
                let frame_max = self.peers[p].client.frame_max as usize;
                let shape = Shape::draw(&mut self.shape, frame_max);
                // A reply to a direct reply-to address this client has seen.
                let addresses = &self.peers[p].client.reply_addresses;
                if let Some(pick) = shape.reply.filter(|_| !addresses.is_empty()) {
                    exchange = "".into();
                    routing_key = addresses[pick as usize % addresses.len()].clone();
                }
                let props =
                    message_properties(persistent, headers, publish_priority(key, size), &shape);
                for _ in 0..count {
                    let id = self.next_msg;
                    self.next_msg += 1;
                    let body = message_body(id, size, shape.body_len);
                    self.publish(
                        p,
                        chn,
                        id,
                        BasicPublish {
                            exchange: exchange.clone(),
                            routing_key: routing_key.clone(),
                            mandatory,
                            ..Default::default()
                        },
                        Bytes::from(props.clone()),
                        body,
                    );
                }
            }
            Op::Confirm { .. } => {
                let cl = &mut self.peers[p].client;
                if cl.chan(chn).tx {
                    return;
                }
                cl.chan(chn).confirm = true;
                cl.send(chn, ConfirmSelect { nowait: false });
            }
            Op::TxSelect { .. } => {
                let cl = &mut self.peers[p].client;
                if cl.chan(chn).confirm {
                    return;
                }
                cl.chan(chn).tx = true;
                cl.send(chn, TxSelect);
            }
            Op::TxCommit { .. } | Op::TxRollback { .. } => {
                let cl = &mut self.peers[p].client;
                if !cl.chan(chn).tx {
                    return;
                }
                if matches!(op, Op::TxCommit { .. }) {
                    cl.send(chn, TxCommit);
                } else {
                    cl.send(chn, TxRollback);
                }
            }
            Op::Error { kind, pick, .. } => self.error_op(p, chn, kind, pick),
            _ => {}
        }
    }

    /// Client `p` publishes message `id`; the model learns what it wrote.
    fn publish(
        &mut self,
        p: usize,
        chn: u16,
        id: u64,
        method: BasicPublish,
        properties: Bytes,
        body: Bytes,
    ) {
        let sent = Sent {
            exchange: method.exchange.clone(),
            routing_key: method.routing_key.clone(),
            properties: properties.clone(),
            body: body.clone(),
        };
        self.model().note_sent(id, sent);
        self.peers[p]
            .client
            .send_publish(chn, method, &properties, &body);
    }

    /// Deliberate protocol errors.
    fn error_op(&mut self, p: usize, chn: u16, kind: u8, pick: u8) {
        let cl = &mut self.peers[p].client;
        let bogus = cl.chan(chn).max_tag + 1000;
        match kind {
            0 => cl.send(
                chn,
                BasicAck {
                    delivery_tag: bogus,
                    multiple: false,
                },
            ),
            1 => cl.send(
                chn,
                BasicReject {
                    delivery_tag: bogus,
                    requeue: true,
                },
            ),
            2 => cl.send(
                chn,
                BasicNack {
                    delivery_tag: bogus,
                    multiple: true,
                    requeue: false,
                },
            ),
            3 => {
                let q = pick % QUEUES;
                let (durable, exclusive, auto_delete, _) = queue_flags(q);
                cl.send(
                    chn,
                    QueueDeclare {
                        queue: format!("q{q}").as_str().into(),
                        durable: !durable,
                        exclusive,
                        auto_delete,
                        ..Default::default()
                    },
                );
            }
            4 => cl.send(
                chn,
                BasicConsume {
                    queue: "missing-q".into(),
                    consumer_tag: "missing".into(),
                    ..Default::default()
                },
            ),
            5 => {
                cl.chan(chn).pending_gets.push_back(true);
                cl.send(
                    chn,
                    BasicGet {
                        queue: "missing-q".into(),
                        no_ack: true,
                        ..Default::default()
                    },
                );
            }
            6 => cl.send(
                chn,
                QueueBind {
                    queue: format!("q{}", pick % QUEUES).as_str().into(),
                    exchange: "missing-x".into(),
                    ..Default::default()
                },
            ),
            7 => {
                let id = self.next_msg;
                self.next_msg += 1;
                self.publish(
                    p,
                    chn,
                    id,
                    BasicPublish {
                        exchange: "missing-x".into(),
                        routing_key: "a".into(),
                        ..Default::default()
                    },
                    Bytes::from_static(&[0, 0]),
                    message_body(id, 0, None),
                );
            }
            8 => cl.send(
                chn,
                ExchangeDeclare {
                    exchange: "amq.custom".into(),
                    kind: "direct".into(),
                    ..Default::default()
                },
            ),
            9 => cl.send(
                chn,
                ExchangeDelete {
                    exchange: "amq.direct".into(),
                    ..Default::default()
                },
            ),
            11 => {
                if cl.chan(chn).tx {
                    cl.send(chn, ConfirmSelect { nowait: false });
                } else {
                    cl.send(chn, TxCommit);
                }
            }
            12 if self.opts.workarounds.lax_consumer_tag => {}
            12 => {
                let c = cl.chan(chn);
                let tag = match c.active.first() {
                    Some(t) => t.clone(),
                    None => {
                        cl.next_ctag += 1;
                        let t = ShortStr::from(format!("t{}", cl.next_ctag));
                        cl.chan(chn).pending_consumes.push_back(false);
                        cl.send(
                            chn,
                            BasicConsume {
                                queue: "q0".into(),
                                consumer_tag: t.clone(),
                                ..Default::default()
                            },
                        );
                        t
                    }
                };
                cl.send(
                    chn,
                    BasicConsume {
                        queue: "q0".into(),
                        consumer_tag: tag,
                        ..Default::default()
                    },
                );
            }
            _ => match pick % 6 {
                0 => cl.send(chn, ChannelFlow { active: false }),
                4 => cl.send(chn, ChannelFlow { active: true }),
                5 => {
                    let id = self.next_msg;
                    self.next_msg += 1;
                    self.publish(
                        p,
                        chn,
                        id,
                        BasicPublish {
                            routing_key: "q0".into(),
                            immediate: true,
                            ..Default::default()
                        },
                        Bytes::from_static(&[0, 0]),
                        message_body(id, 0, None),
                    );
                }
                1 => cl.send(
                    chn,
                    BasicQos {
                        prefetch_size: 10,
                        prefetch_count: 1,
                        global: false,
                    },
                ),
                2 => cl.send(chn, BasicRecover { requeue: false }),
                _ => cl.send(
                    chn,
                    ExchangeDeclare {
                        exchange: "x-odd".into(),
                        kind: "no-such-type".into(),
                        ..Default::default()
                    },
                ),
            },
        }
    }
}

/// Binding arguments by index (for headers exchanges; ignored by the others, but part of the
/// binding's identity).
fn binding_args(i: u8) -> FieldTable {
    let s = |v: &str| FieldValue::LongStr(LongStr::from(v));
    let mut t = FieldTable::default();
    match i {
        1 => {
            t.insert("x-match", s("all"));
            t.insert("h1", s("1"));
        }
        2 => {
            t.insert("x-match", s("any"));
            t.insert("h1", s("1"));
            t.insert("h2", s("2"));
        }
        3 => {
            t.insert("x-match", s("all"));
            t.insert("h1", s("1"));
            t.insert("h2", s("2"));
        }
        4 => {
            t.insert("h2", s("2"));
        }
        5 => {
            t.insert("x-match", s("any"));
            t.insert("h1", s("9"));
        }
        _ => {}
    }
    t
}

/// A consumer's arguments, drawn from the step's shape stream (programs stay as they were):
/// a third of consumers have an `x-priority`, in one of the integer types clients send (a
/// few in a type that is not an integer).
fn consumer_arguments(r: &mut Rng) -> FieldTable {
    let mut args = FieldTable::default();
    if r.chance(33) {
        let priority = [-2i64, 0, 1, 5][r.below(4) as usize];
        let value = match r.below(30) {
            // Not an integer: 406.
            0 => FieldValue::LongStr("high".into()),
            1 => FieldValue::Timestamp(5),
            n if n % 3 == 0 => FieldValue::I8(priority as i8),
            n if n % 3 == 1 => FieldValue::I32(priority as i32),
            _ => FieldValue::I64(priority),
        };
        args.insert("x-priority", value);
    }
    args
}

/// What a publish looks like beyond the program's own fields, drawn per step: the other
/// properties (every kind, nested header tables), a per-message TTL, and a body length at a
/// frame boundary.
#[derive(Default)]
struct Shape {
    /// Every optional property set, and a header table holding every field kind, nested.
    rich: bool,
    /// The `expiration` property (sometimes not a valid TTL: a deliberate error).
    expiration: Option<&'static str>,
    /// The `user_id` property (someone else than the user logged in: a deliberate error).
    user_id: Option<&'static str>,
    /// `reply_to = amq.rabbitmq.reply-to`: a request for a direct reply.
    request: bool,
    /// Publish a reply instead, to the client's n-th known reply address.
    reply: Option<u32>,
    /// A body length at or around a multiple of the frame's payload size.
    body_len: Option<usize>,
}

impl Shape {
    fn draw(r: &mut Rng, frame_max: usize) -> Shape {
        const TTLS: [&str; 8] = ["0", "1", "5", "50", "200", "1000", "5000", "30000"];
        // Percentages.
        let rich = r.chance(30);
        let expiration = if r.chance(2) {
            Some(if r.flip() { "-5" } else { "soon" })
        } else if r.chance(25) {
            Some(TTLS[r.below(TTLS.len() as u32) as usize])
        } else {
            None
        };
        let user_id = if r.chance(1) {
            Some("mallory")
        } else {
            rich.then_some("guest")
        };
        // A body frame carries frame_max - 8 bytes; big frames get the boundary, rarely.
        let payload = frame_max - 8;
        let body_len = if frame_max <= 4096 && r.chance(25) {
            let k = 1 + r.below(3) as usize;
            Some((k * payload).saturating_add_signed(r.below(3) as isize - 1))
        } else if r.chance(1) {
            Some(payload - 1 + r.below(3) as usize)
        } else {
            None
        };
        let request = r.chance(10);
        let reply = r.chance(15).then(|| r.below(4));
        Shape {
            rich,
            expiration,
            user_id,
            request,
            reply,
            body_len,
        }
    }
}

fn message_properties(
    persistent: bool,
    headers: u8,
    priority: Option<u8>,
    shape: &Shape,
) -> Vec<u8> {
    let s = |v: &str| FieldValue::LongStr(LongStr::from(v));
    let mut headers = match headers {
        1 => Some([("h1", "1")].as_slice()),
        2 => Some([("h2", "2")].as_slice()),
        3 => Some([("h1", "1"), ("h2", "2")].as_slice()),
        4 => Some([("h1", "9")].as_slice()),
        _ => None,
    }
    .map(|pairs| {
        let mut t = FieldTable::default();
        for (k, v) in pairs {
            t.insert(*k, s(v));
        }
        t
    });
    let mut props = BasicProperties {
        delivery_mode: Some(if persistent { 2 } else { 1 }),
        priority,
        expiration: shape.expiration.map(ShortStr::from),
        user_id: shape.user_id.map(ShortStr::from),
        ..Default::default()
    };
    if shape.rich {
        let t = headers.get_or_insert_with(FieldTable::default);
        t.insert("every-kind", FieldValue::Table(every_kind()));
        t.insert(
            "nested",
            FieldValue::Array(vec![
                FieldValue::Table(every_kind()),
                FieldValue::Array(vec![s("deep"), FieldValue::Void]),
            ]),
        );
        props.content_type = Some("application/json".into());
        props.content_encoding = Some("gzip".into());
        props.correlation_id = Some("corr-1".into());
        props.reply_to = Some("replies".into());
        props.message_id = Some("m-1".into());
        props.timestamp = Some(1_700_000_000);
        props.kind = Some("event".into());
        props.app_id = Some("warren-sim".into());
        props.cluster_id = Some("c".into());
    }
    if shape.request {
        props.reply_to = Some(REPLY_TO.into());
    }
    props.headers = headers;
    let mut raw = Vec::new();
    props.encode(&mut raw);
    raw
}

/// A header table with a value of every field kind.
fn every_kind() -> FieldTable {
    let mut t = FieldTable::default();
    t.insert("bool", FieldValue::Bool(true));
    t.insert("i8", FieldValue::I8(-8));
    t.insert("u8", FieldValue::U8(8));
    t.insert("i16", FieldValue::I16(-16));
    t.insert("u16", FieldValue::U16(16));
    t.insert("i32", FieldValue::I32(-32));
    t.insert("u32", FieldValue::U32(32));
    t.insert("i64", FieldValue::I64(-64));
    t.insert("f32", FieldValue::F32(0.5));
    t.insert("f64", FieldValue::F64(-0.25));
    t.insert(
        "decimal",
        FieldValue::Decimal {
            scale: 2,
            value: 314,
        },
    );
    t.insert("longstr", FieldValue::LongStr(LongStr::from("text")));
    t.insert(
        "array",
        FieldValue::Array(vec![FieldValue::I32(1), FieldValue::Void]),
    );
    t.insert("timestamp", FieldValue::Timestamp(1_700_000_000));
    t.insert("void", FieldValue::Void);
    t.insert("bytes", FieldValue::Bytes(LongStr::from(&[0u8, 0xff][..])));
    t
}

/// An 8-byte id, then filler whose length depends on `size` (mostly small, sometimes several
/// frames at a 4 KiB frame_max).
fn message_body(id: u64, size: u8, len: Option<usize>) -> Bytes {
    let extra = match (len, size) {
        (Some(len), _) => len.saturating_sub(8),
        (None, 0..=11) => usize::from(size) * 3,
        (None, 12..=17) => 100 * usize::from(size),
        (None, 18) => 5_000 + (id as usize % 3_000),
        _ => 0,
    };
    let mut b = Vec::with_capacity(8 + extra);
    b.extend_from_slice(&id.to_be_bytes());
    b.extend((0..extra).map(|i| (i as u8).wrapping_mul(31).wrapping_add(id as u8)));
    Bytes::from(b)
}
