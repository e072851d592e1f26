//! The world: a broker and its connections on the core's `Pump`, a client per connection,
//! virtual time; and the client operations tests call.

use warren_core::broker::{Broker, BrokerConfig};
use warren_core::codec::{
    encode_heartbeat, BasicAck, BasicCancel, BasicConsume, BasicGet, BasicNack, BasicProperties,
    BasicPublish, BasicQos, BasicRecover, BasicReject, ChannelClose, ChannelOpen, ConfirmSelect,
    ConnectionClose, ConnectionOpen, ConnectionTuneOk, ExchangeBind, ExchangeDeclare, FieldTable,
    Method, QueueBind, QueueDeclare, QueueDeclareOk, QueueDelete, TxCommit, TxRollback, TxSelect,
    PROTOCOL_HEADER,
};
use warren_core::connection::{Connection, ConnectionConfig};
use warren_core::{ConnId, Pump};

use crate::client::*;
use crate::frames::Handshake;
use crate::storage::SharedStorage;

/// Identifies one client/connection pair in a [`World`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cid(pub usize);

struct Peer {
    id: ConnId,
    client: Client,
    /// The client hung up (EOF already given to the server).
    client_gone: bool,
    /// The client reads what reaches it, so the server hears its output written (and returns
    /// delivery credit) as it is delivered. Off: the bytes still reach the client, for the
    /// test to see, but count as written only at [`World::return_credit`] — a slow reader.
    reads: bool,
    /// Bytes delivered to the client and not yet reported written (with `reads` off).
    unread: usize,
}

/// Cuts byte streams into pieces, for the byte-splitting property test.
struct Chunker {
    sizes: Vec<usize>,
    next: usize,
}

impl Chunker {
    fn next_size(&mut self) -> usize {
        let s = self.sizes[self.next % self.sizes.len()].max(1);
        self.next += 1;
        s
    }
}

/// A broker and its connections (the core's [`Pump`]), their clients, and the virtual clock.
pub struct World {
    pump: Pump,
    pub storage: SharedStorage,
    /// Virtual time in milliseconds.
    pub now: u64,
    /// Configuration for connections made by [`World::connect`].
    pub conn_config: ConnectionConfig,
    peers: Vec<Peer>,
    chunker: Option<Chunker>,
}

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

impl World {
    /// A broker with `guest`/`guest` and empty memory storage.
    pub fn new() -> Self {
        Self::with_storage(SharedStorage::default())
    }

    /// A broker that recovers from (and writes to) `storage`.
    pub fn with_storage(storage: SharedStorage) -> Self {
        Self::with_config(storage, BrokerConfig::default())
    }

    /// A broker with `config` over `storage`.
    pub fn with_config(storage: SharedStorage, config: BrokerConfig) -> Self {
        let broker = Broker::new(config, Box::new(storage.clone()));
        World {
            pump: Pump::new(broker, ConnectionConfig::default()),
            storage,
            now: 0,
            conn_config: ConnectionConfig::default(),
            peers: Vec::new(),
            chunker: None,
        }
    }

    pub fn broker(&self) -> &Broker {
        self.pump.broker()
    }

    /// Feeds every byte stream (both ways) in pieces of these sizes, cycling.
    pub fn set_chunking(&mut self, sizes: Vec<usize>) {
        assert!(!sizes.is_empty());
        self.chunker = Some(Chunker { sizes, next: 0 });
    }

    /// A new connection with [`World::conn_config`]; nothing is sent yet.
    pub fn connect(&mut self) -> Cid {
        let config = self.conn_config.clone();
        self.connect_with(config)
    }

    pub fn connect_with(&mut self, config: ConnectionConfig) -> Cid {
        let n = self.peers.len();
        let mut client = Client::new();
        client.last_send_ms = self.now;
        let id = self.pump.connect_with(config, self.now);
        self.peers.push(Peer {
            id,
            client,
            client_gone: false,
            reads: true,
            unread: 0,
        });
        Cid(n)
    }

    /// A new connection that has completed the handshake (PLAIN guest/guest).
    pub fn connect_open(&mut self) -> Cid {
        let c = self.connect();
        self.client(c).handshake();
        c
    }

    /// A new open connection with channel 1 open.
    pub fn connect_channel(&mut self) -> Cid {
        let c = self.connect_open();
        self.client(c).open_channel(1);
        c
    }

    pub fn client(&mut self, c: Cid) -> ClientHandle<'_> {
        ClientHandle { world: self, c }
    }

    pub fn client_state(&mut self, c: Cid) -> &mut Client {
        &mut self.peers[c.0].client
    }

    /// The server side of connection `c` (while the pump has it).
    pub fn server(&self, c: Cid) -> &Connection {
        self.pump
            .connection(self.peers[c.0].id)
            .expect("the connection is still in the pump")
    }

    pub fn conn_id(&self, c: Cid) -> ConnId {
        self.peers[c.0].id
    }

    /// Makes client `c` a slow reader: what reaches it counts as written only at
    /// [`World::return_credit`].
    pub fn stop_reading(&mut self, c: Cid) {
        self.peers[c.0].reads = false;
    }

    /// Client `c` has read everything that reached it: the server hears it written, which
    /// returns delivery credit as the core's rule has it.
    pub fn return_credit(&mut self, c: Cid) {
        let p = &mut self.peers[c.0];
        let unread = std::mem::take(&mut p.unread);
        let id = p.id;
        self.pump.handle_written(id, unread);
        self.drive();
    }

    /// Shuttles bytes, commands and events until nothing moves.
    /// Raises (`Some(reason)`) or clears (`None`) the broker's resource alarm, as a memory
    /// monitor would, and lets the world run.
    /// Reports every write the storage has taken as durable (see `SharedStorage::deferred`).
    pub fn sync_storage(&mut self) {
        use warren_core::storage::Storage;
        let seq = self.storage.write_seq();
        self.pump.storage_synced(seq, self.now);
        self.drive();
    }

    /// Changes the broker as an operator would (`warren ctl`), then lets the world run.
    pub fn admin<T>(&mut self, change: impl FnOnce(&mut Broker) -> T) -> T {
        let out = change(self.pump.broker_mut());
        self.pump.flush_events(self.now);
        self.drive();
        out
    }

    pub fn set_resource_alarm(&mut self, reason: Option<&str>) {
        self.pump.set_resource_alarm(reason, self.now);
        self.drive();
    }

    pub fn set_memory_pressure(&mut self, on: bool) {
        self.pump.set_memory_pressure(on, self.now);
        self.drive();
    }

    pub fn drive(&mut self) {
        for _ in 0..10_000 {
            if !self.step() {
                return;
            }
        }
        panic!("world did not quiesce");
    }

    /// One round over every peer; true if anything moved.
    fn step(&mut self) -> bool {
        let mut moved = false;
        for i in 0..self.peers.len() {
            let p = &mut self.peers[i];
            if p.client.out.is_empty() {
                continue;
            }
            let data = std::mem::take(&mut p.client.out);
            moved = true;
            if p.client_gone || p.client.socket_closed {
                continue; // nobody is listening any more
            }
            p.client.last_send_ms = self.now;
            let id = p.id;
            match self.chunker.as_mut() {
                None => self.pump.handle_input(id, &data, self.now),
                Some(_) => {
                    let mut rest = &data[..];
                    while !rest.is_empty() {
                        let n = self.chunker.as_mut().expect("chunker").next_size();
                        let (piece, tail) = rest.split_at(n.min(rest.len()));
                        rest = tail;
                        self.pump.handle_input(id, piece, self.now);
                    }
                }
            }
        }
        moved | self.deliver_output()
    }

    /// The pump's output to the clients; true if anything moved.
    fn deliver_output(&mut self) -> bool {
        let mut moved = false;
        loop {
            let ready = self.pump.take_ready();
            if ready.is_empty() {
                return moved;
            }
            moved = true;
            for id in ready {
                let out = self.pump.take_output(id);
                let Some(p) = self.peers.iter_mut().find(|p| p.id == id) else {
                    continue;
                };
                if !out.is_empty() && !p.client_gone {
                    match self.chunker.as_mut() {
                        None => p.client.feed(&out),
                        Some(ch) => {
                            let mut rest = &out[..];
                            while !rest.is_empty() {
                                let n = ch.next_size();
                                let (piece, tail) = rest.split_at(n.min(rest.len()));
                                rest = tail;
                                p.client.feed(piece);
                            }
                        }
                    }
                }
                if self.pump.is_closed(id) {
                    p.client.socket_closed = true;
                }
                if out.is_empty() {
                    continue;
                }
                if p.reads {
                    self.pump.handle_written(id, out.len());
                } else {
                    p.unread += out.len();
                }
            }
        }
    }

    /// Moves virtual time forward by `ms`, firing every server timer and client heartbeat that
    /// falls due on the way, in time order.
    pub fn advance(&mut self, ms: u64) {
        let target = self.now + ms;
        let mut fired = 0u32;
        while let Some(t) = self.next_timer().filter(|&t| t <= target) {
            fired += 1;
            assert!(
                fired < 1_000_000,
                "a timer keeps firing at {t} ms without moving on"
            );
            self.now = self.now.max(t);
            self.fire_timers();
        }
        self.now = target;
        self.fire_timers();
    }

    /// Moves virtual time to `t` (absolute).
    pub fn advance_to(&mut self, t: u64) {
        assert!(t >= self.now);
        self.advance(t - self.now);
    }

    /// Moves virtual time to `t` without firing any timer: the host's timer is late (a
    /// suspended tab, a busy thread). Inputs until the next [`World::advance`] carry `t`.
    pub fn jump_to(&mut self, t: u64) {
        assert!(t >= self.now);
        self.now = t;
    }

    fn next_timer(&self) -> Option<u64> {
        let server = self.pump.poll_timeout();
        self.peers
            .iter()
            .map(|p| {
                if p.client_gone || p.client.socket_closed {
                    None
                } else {
                    p.client
                        .heartbeat_every_ms
                        .map(|every| p.client.last_send_ms + every)
                }
            })
            .chain([server])
            .flatten()
            .min()
    }

    fn fire_timers(&mut self) {
        let now = self.now;
        self.pump.handle_timeout(now);
        for p in &mut self.peers {
            if let Some(every) = p.client.heartbeat_every_ms {
                if !p.client_gone && !p.client.socket_closed && p.client.last_send_ms + every <= now
                {
                    encode_heartbeat(&mut p.client.out);
                    p.client.heartbeats_sent += 1;
                }
            }
        }
        self.drive();
    }
}

/// A client and the world it lives in: every operation sends, drives the world until it is
/// quiet, and returns what this client received meanwhile (and before, if not yet taken).
pub struct ClientHandle<'w> {
    world: &'w mut World,
    c: Cid,
}

impl ClientHandle<'_> {
    fn state(&mut self) -> &mut Client {
        &mut self.world.peers[self.c.0].client
    }

    /// Drives the world and returns everything this client received and has not yet taken.
    pub fn flush(&mut self) -> Vec<Received> {
        self.world.drive();
        self.state().take()
    }

    /// Returns what arrived without sending anything.
    pub fn take(&mut self) -> Vec<Received> {
        self.flush()
    }

    pub fn send_raw(&mut self, bytes: &[u8]) -> Vec<Received> {
        self.state().out.extend_from_slice(bytes);
        self.flush()
    }

    pub fn send(&mut self, channel: u16, m: impl Into<Method>) -> Vec<Received> {
        self.state().queue_method(channel, m);
        self.flush()
    }

    pub fn send_heartbeat(&mut self) -> Vec<Received> {
        encode_heartbeat(&mut self.state().out);
        self.flush()
    }

    /// The client hangs up (the server sees EOF).
    pub fn disconnect(&mut self) {
        let p = &mut self.world.peers[self.c.0];
        p.client_gone = true;
        let id = p.id;
        let now = self.world.now;
        self.world.pump.handle_eof(id, now);
        self.world.drive();
    }

    pub fn is_socket_closed(&mut self) -> bool {
        self.state().socket_closed
    }

    pub fn server(&self) -> &Connection {
        self.world.server(self.c)
    }

    /// Runs the handshake with `h`; returns everything received on the way (start, tune,
    /// open-ok or whatever came instead).
    pub fn handshake_with(&mut self, h: &Handshake) -> Vec<Received> {
        let mut all = self.send_raw(&PROTOCOL_HEADER);
        assert!(
            matches!(
                all.first().and_then(Received::method),
                Some(Method::ConnectionStart(_))
            ),
            "expected connection.start, got {all:?}"
        );
        let r = self.send(0, h.start_ok());
        let tune = match r.first().and_then(Received::method) {
            Some(Method::ConnectionTune(t)) => t.clone(),
            _ => {
                all.extend(r);
                return all;
            }
        };
        all.extend(r);
        let ok = h.tune_ok.clone().unwrap_or(ConnectionTuneOk {
            channel_max: tune.channel_max,
            frame_max: tune.frame_max,
            heartbeat: tune.heartbeat,
        });
        self.state().frame_max = ok.frame_max;
        self.state().queue_method(0, ok);
        let r = self.send(
            0,
            ConnectionOpen {
                virtual_host: h.vhost.into(),
                ..Default::default()
            },
        );
        all.extend(r);
        all
    }

    /// PLAIN guest/guest, echoing the server's tune values, vhost "/"; asserts it worked.
    pub fn handshake(&mut self) {
        let r = self.handshake_with(&Handshake::default());
        assert!(
            matches!(
                r.last().and_then(Received::method),
                Some(Method::ConnectionOpenOk(_))
            ),
            "handshake failed: {r:?}"
        );
    }

    pub fn open_channel(&mut self, channel: u16) {
        let r = self.send(channel, ChannelOpen::default());
        assert!(
            matches!(
                r.as_slice(),
                [Received::Method {
                    method: Method::ChannelOpenOk(_),
                    ..
                }]
            ),
            "channel.open failed: {r:?}"
        );
    }

    pub fn close_channel(&mut self, channel: u16) -> Vec<Received> {
        self.send(
            channel,
            ChannelClose {
                reply_code: 200,
                reply_text: "bye".into(),
                class_id: 0,
                method_id: 0,
            },
        )
    }

    pub fn close_connection(&mut self) -> Vec<Received> {
        self.send(
            0,
            ConnectionClose {
                reply_code: 200,
                reply_text: "bye".into(),
                class_id: 0,
                method_id: 0,
            },
        )
    }

    /// Sends `queue.declare` and returns the raw replies.
    pub fn queue_declare(&mut self, channel: u16, m: QueueDeclare) -> Vec<Received> {
        self.send(channel, m)
    }

    /// Declares a plain (non-durable) queue; asserts declare-ok.
    pub fn declare_queue(&mut self, channel: u16, name: &str) -> QueueDeclareOk {
        self.declare_queue_with(
            channel,
            QueueDeclare {
                queue: name.into(),
                ..Default::default()
            },
        )
    }

    /// Sends `queue.declare`; asserts declare-ok.
    pub fn declare_queue_with(&mut self, channel: u16, m: QueueDeclare) -> QueueDeclareOk {
        let r = self.send(channel, m);
        match r.as_slice() {
            [Received::Method {
                method: Method::QueueDeclareOk(ok),
                ..
            }] => ok.clone(),
            _ => panic!("queue.declare failed: {r:?}"),
        }
    }

    pub fn delete_queue(&mut self, channel: u16, name: &str) -> Vec<Received> {
        self.send(
            channel,
            QueueDelete {
                queue: name.into(),
                ..Default::default()
            },
        )
    }

    /// Declares a non-durable exchange; asserts declare-ok.
    pub fn declare_exchange(&mut self, channel: u16, name: &str, kind: &str) {
        self.declare_exchange_with(
            channel,
            ExchangeDeclare {
                exchange: name.into(),
                kind: kind.into(),
                ..Default::default()
            },
        )
    }

    pub fn declare_exchange_with(&mut self, channel: u16, m: ExchangeDeclare) {
        let r = self.send(channel, m);
        assert!(
            matches!(
                r.as_slice(),
                [Received::Method {
                    method: Method::ExchangeDeclareOk(_),
                    ..
                }]
            ),
            "exchange.declare failed: {r:?}"
        );
    }

    /// Binds; asserts bind-ok.
    pub fn bind_queue(&mut self, channel: u16, queue: &str, exchange: &str, rk: &str) {
        self.bind_queue_with(channel, queue, exchange, rk, FieldTable::default())
    }

    pub fn bind_queue_with(
        &mut self,
        channel: u16,
        queue: &str,
        exchange: &str,
        rk: &str,
        arguments: FieldTable,
    ) {
        let r = self.send(
            channel,
            QueueBind {
                queue: queue.into(),
                exchange: exchange.into(),
                routing_key: rk.into(),
                arguments,
                ..Default::default()
            },
        );
        assert!(
            matches!(
                r.as_slice(),
                [Received::Method {
                    method: Method::QueueBindOk(_),
                    ..
                }]
            ),
            "queue.bind failed: {r:?}"
        );
    }

    /// `exchange.bind destination <- source`; asserts bind-ok.
    pub fn bind_exchange(&mut self, channel: u16, destination: &str, source: &str, rk: &str) {
        let r = self.send(
            channel,
            ExchangeBind {
                destination: destination.into(),
                source: source.into(),
                routing_key: rk.into(),
                ..Default::default()
            },
        );
        assert!(
            matches!(
                r.as_slice(),
                [Received::Method {
                    method: Method::ExchangeBindOk(_),
                    ..
                }]
            ),
            "exchange.bind failed: {r:?}"
        );
    }

    pub fn publish(
        &mut self,
        channel: u16,
        exchange: &str,
        rk: &str,
        props: &BasicProperties,
        body: &[u8],
    ) -> Vec<Received> {
        self.publish_with(
            channel,
            BasicPublish {
                exchange: exchange.into(),
                routing_key: rk.into(),
                ..Default::default()
            },
            props,
            body,
        )
    }

    /// Publishes with mandatory=true.
    pub fn publish_mandatory(
        &mut self,
        channel: u16,
        exchange: &str,
        rk: &str,
        body: &[u8],
    ) -> Vec<Received> {
        self.publish_with(
            channel,
            BasicPublish {
                exchange: exchange.into(),
                routing_key: rk.into(),
                mandatory: true,
                ..Default::default()
            },
            &BasicProperties::default(),
            body,
        )
    }

    pub fn publish_with(
        &mut self,
        channel: u16,
        publish: BasicPublish,
        props: &BasicProperties,
        body: &[u8],
    ) -> Vec<Received> {
        self.state().queue_publish(channel, publish, props, body);
        self.flush()
    }

    /// Publishes each body to the default exchange with routing key `queue`.
    pub fn publish_all(&mut self, channel: u16, queue: &str, bodies: &[&str]) -> Vec<Received> {
        for b in bodies {
            self.state().queue_publish(
                channel,
                BasicPublish {
                    routing_key: queue.into(),
                    ..Default::default()
                },
                &BasicProperties::default(),
                b.as_bytes(),
            );
        }
        self.flush()
    }

    /// `basic.consume` with manual acks.
    pub fn consume(&mut self, channel: u16, queue: &str, tag: &str) -> Vec<Received> {
        self.send(
            channel,
            BasicConsume {
                queue: queue.into(),
                consumer_tag: tag.into(),
                ..Default::default()
            },
        )
    }

    pub fn consume_no_ack(&mut self, channel: u16, queue: &str, tag: &str) -> Vec<Received> {
        self.send(
            channel,
            BasicConsume {
                queue: queue.into(),
                consumer_tag: tag.into(),
                no_ack: true,
                ..Default::default()
            },
        )
    }

    pub fn cancel(&mut self, channel: u16, tag: &str) -> Vec<Received> {
        self.send(
            channel,
            BasicCancel {
                consumer_tag: tag.into(),
                no_wait: false,
            },
        )
    }

    pub fn qos(&mut self, channel: u16, prefetch_count: u16, global: bool) {
        let r = self.send(
            channel,
            BasicQos {
                prefetch_size: 0,
                prefetch_count,
                global,
            },
        );
        assert!(
            matches!(
                r.as_slice(),
                [Received::Method {
                    method: Method::BasicQosOk(_),
                    ..
                }]
            ),
            "basic.qos failed: {r:?}"
        );
    }

    pub fn ack(&mut self, channel: u16, delivery_tag: u64, multiple: bool) -> Vec<Received> {
        self.send(
            channel,
            BasicAck {
                delivery_tag,
                multiple,
            },
        )
    }

    pub fn nack(
        &mut self,
        channel: u16,
        delivery_tag: u64,
        multiple: bool,
        requeue: bool,
    ) -> Vec<Received> {
        self.send(
            channel,
            BasicNack {
                delivery_tag,
                multiple,
                requeue,
            },
        )
    }

    pub fn reject(&mut self, channel: u16, delivery_tag: u64, requeue: bool) -> Vec<Received> {
        self.send(
            channel,
            BasicReject {
                delivery_tag,
                requeue,
            },
        )
    }

    pub fn recover(&mut self, channel: u16) -> Vec<Received> {
        self.send(channel, BasicRecover { requeue: true })
    }

    pub fn get(&mut self, channel: u16, queue: &str, no_ack: bool) -> Vec<Received> {
        self.send(
            channel,
            BasicGet {
                queue: queue.into(),
                no_ack,
                ..Default::default()
            },
        )
    }

    pub fn confirm_select(&mut self, channel: u16) -> Vec<Received> {
        self.send(channel, ConfirmSelect { nowait: false })
    }

    pub fn tx_select(&mut self, channel: u16) -> Vec<Received> {
        self.send(channel, TxSelect)
    }

    pub fn tx_commit(&mut self, channel: u16) -> Vec<Received> {
        self.send(channel, TxCommit)
    }

    pub fn tx_rollback(&mut self, channel: u16) -> Vec<Received> {
        self.send(channel, TxRollback)
    }
}
