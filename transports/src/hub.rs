//! The hub: the one task that owns the [`Broker`] and serves every connection.
//!
//! Connection tasks decode frames and encode replies on their own threads; the hub only runs
//! broker logic. It takes commands in batches (`recv_many`) and answers each connection with
//! one batch of events per round, so a busy connection costs one channel send per read, not
//! one per frame.
//!
//! Fairness: every connection may have at most [`CREDIT`] batches waiting in the hub's inbox.
//! A publisher that floods waits for its own credit, so a consumer's acks and flow-control
//! commands queue behind a few of its batches, not behind the whole inbox (RabbitMQ's credit
//! flow does the same between its processes).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use tokio::time::Instant;

use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};
use warren_core::{Broker, Command, ConnId, Event};

/// A batch of events for one connection.
pub type EventBatch = Vec<Event>;

enum HubMsg {
    Register(ConnId, mpsc::UnboundedSender<EventBatch>),
    /// The permit is the sender's credit: it returns when the hub has handled the batch.
    Commands(ConnId, Vec<Command>, Option<OwnedSemaphorePermit>),
    /// The connection's task has ended (whether or not the broker ever heard of it).
    Gone(ConnId),
    Alarm(Option<String>),
    MemoryPressure(bool),
    Shutdown(tokio::sync::oneshot::Sender<()>),
    /// An operator's change or question (`warren ctl`), run on the broker between rounds.
    Admin(Box<dyn FnOnce(&mut Broker) + Send>),
}

/// How many messages (each a connection's batch of commands) the hub's inbox holds before
/// senders wait: a publisher faster than the broker is slowed at its own socket (TCP
/// backpressure) instead of growing the inbox without bound.
pub const INBOX: usize = 256;

/// Batches one connection may have in the inbox at once: enough for a publisher to stay ahead
/// of the hub (a 16 B flood ran at 2.4 M msg/s with 4 and 2.7 M with 16 in back-to-back
/// runs), few enough that another connection's commands wait behind at most ~1 MiB of a
/// flooding publisher's.
pub const CREDIT: usize = 16;

/// Messages the hub takes per round before it hands out the events they caused: small
/// enough that deliveries flow while publishers flood.
const ROUND: usize = 32;

/// A cloneable handle to the broker task.
#[derive(Clone)]
pub struct Hub {
    tx: mpsc::Sender<HubMsg>,
    next_conn: Arc<AtomicU64>,
    /// Connections the hub still serves.
    live: Arc<AtomicUsize>,
    epoch: Instant,
}

impl Hub {
    /// Starts the broker task on the current tokio runtime, over a store durable as each write
    /// returns (memory).
    pub fn spawn(broker: Broker) -> Hub {
        Hub::spawn_with_store(broker, None)
    }

    /// Starts the broker task over a store that syncs in the background (the disk store):
    /// `synced` carries the write sequence the store has made durable, which releases the
    /// confirms and `tx.commit-ok`s waiting for it (`Broker::storage_synced`).
    pub fn spawn_with_store(broker: Broker, synced: Option<watch::Receiver<u64>>) -> Hub {
        let (tx, rx) = mpsc::channel(INBOX);
        let epoch = Instant::now();
        let live = Arc::new(AtomicUsize::new(0));
        tokio::spawn(run(broker, rx, synced, epoch, live.clone()));
        Hub {
            tx,
            next_conn: Arc::new(AtomicU64::new(1)),
            live,
            epoch,
        }
    }

    /// Milliseconds since the hub started: the clock every core object is fed (tokio's, so
    /// tests can run it on paused virtual time).
    pub fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    /// Registers a new connection; events for it arrive on the returned receiver, and its
    /// commands go through the returned [`Link`].
    pub async fn register(&self) -> (Link, mpsc::UnboundedReceiver<EventBatch>) {
        let id = ConnId(self.next_conn.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = self.tx.send(HubMsg::Register(id, tx)).await;
        let link = Link {
            id,
            tx: self.tx.clone(),
            credit: Arc::new(Semaphore::new(CREDIT)),
        };
        (link, rx)
    }

    /// Connections whose tasks are still running, as of the hub's last round.
    pub fn live_connections(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// Raises or clears the broker's resource alarm (see `Broker::set_resource_alarm`).
    pub async fn set_resource_alarm(&self, reason: Option<String>) {
        let _ = self.tx.send(HubMsg::Alarm(reason)).await;
    }

    /// Memory runs short, or no longer does (see `Broker::set_memory_pressure`).
    pub async fn set_memory_pressure(&self, on: bool) {
        let _ = self.tx.send(HubMsg::MemoryPressure(on)).await;
    }

    /// Runs `f` on the broker (between rounds, so it sees a consistent state) and returns what
    /// it returns; `None` if the hub is gone. What `f` changes takes effect as a round's
    /// commands do: events go out, writes go to the store.
    pub async fn admin<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Broker) -> T + Send + 'static,
    ) -> Option<T> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job = Box::new(move |b: &mut Broker| {
            let _ = tx.send(f(b));
        });
        self.tx.send(HubMsg::Admin(job)).await.ok()?;
        rx.await.ok()
    }

    /// Closes every connection with 320 CONNECTION_FORCED (reason 'shutdown') and waits up to
    /// `grace` for their tasks to finish the close handshake.
    pub async fn shutdown(&self, grace: std::time::Duration) {
        let (done, wait) = tokio::sync::oneshot::channel();
        if self.tx.send(HubMsg::Shutdown(done)).await.is_err() {
            return;
        }
        let _ = wait.await;
        let deadline = tokio::time::Instant::now() + grace;
        while self.live.load(Ordering::Acquire) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }
}

/// One connection's way into the hub.
pub struct Link {
    id: ConnId,
    tx: mpsc::Sender<HubMsg>,
    credit: Arc<Semaphore>,
}

impl Link {
    pub fn id(&self) -> ConnId {
        self.id
    }

    /// Sends a batch of commands; waits while this connection has [`CREDIT`] batches
    /// unhandled, or while the hub's inbox is full.
    pub async fn send(&self, commands: Vec<Command>) {
        if commands.is_empty() {
            return;
        }
        // The semaphore is never closed, so acquiring only waits.
        let permit = self.credit.clone().acquire_owned().await.ok();
        let _ = self
            .tx
            .send(HubMsg::Commands(self.id, commands, permit))
            .await;
    }

    /// The connection's task is ending: the hub forgets it (a socket that closed before the
    /// handshake never sends the broker anything, and must not stay registered).
    pub async fn close(self) {
        let _ = self.tx.send(HubMsg::Gone(self.id)).await;
    }
}

async fn run(
    mut broker: Broker,
    mut rx: mpsc::Receiver<HubMsg>,
    mut synced: Option<watch::Receiver<u64>>,
    epoch: Instant,
    live: Arc<AtomicUsize>,
) {
    let unix_now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    broker.set_unix_time_offset(unix_now.saturating_sub(epoch.elapsed().as_millis() as u64));
    let now = || epoch.elapsed().as_millis() as u64;
    let mut conns: HashMap<ConnId, mpsc::UnboundedSender<EventBatch>> = HashMap::new();
    let mut inbox = Vec::with_capacity(256);
    let mut outbox: HashMap<ConnId, EventBatch> = HashMap::new();
    let mut held = Held::new();
    let mut closed: Vec<ConnId> = Vec::new();
    loop {
        // Sleep until a command arrives or the broker has something due (TTLs, expiry).
        let deadline = broker.poll_timeout();
        let sleep = async {
            match deadline {
                Some(at) => {
                    tokio::time::sleep(std::time::Duration::from_millis(at.saturating_sub(now())))
                        .await
                }
                None => std::future::pending().await,
            }
        };
        let store_synced = async {
            match synced.as_mut() {
                // A writer that is gone reports nothing more.
                Some(s) => {
                    if s.changed().await.is_err() {
                        std::future::pending::<()>().await
                    }
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            n = rx.recv_many(&mut inbox, ROUND) => {
                if n == 0 {
                    return;
                }
            }
            _ = sleep => {}
            _ = store_synced => {}
        }
        if let Some(s) = synced.as_mut() {
            broker.storage_synced(*s.borrow_and_update());
        }
        // One reading of the clock per round: the commands of a round arrived together.
        let round_now = now();
        broker.handle_timeout(round_now);
        for msg in inbox.drain(..) {
            match msg {
                HubMsg::Register(id, tx) => {
                    conns.insert(id, tx);
                }
                HubMsg::Gone(id) => {
                    conns.remove(&id);
                }
                HubMsg::Alarm(reason) => broker.set_resource_alarm(reason.as_deref()),
                HubMsg::MemoryPressure(on) => broker.set_memory_pressure(on),
                HubMsg::Admin(job) => job(&mut broker),
                HubMsg::Shutdown(done) => {
                    broker.close_all_connections("shutdown");
                    collect(&mut broker, &mut outbox);
                    deliver(&conns, &mut outbox);
                    let _ = done.send(());
                }
                HubMsg::Commands(id, commands, credit) => {
                    let mut commands = VecDeque::from(commands);
                    if held.contains_key(&id) || broker.is_holding(id) {
                        held.entry(id).or_default().push_back((commands, credit));
                        continue;
                    }
                    match run_batch(&mut broker, round_now, id, &mut commands) {
                        Ran::Closed => closed.push(id),
                        Ran::Held => held.entry(id).or_default().push_back((commands, credit)),
                        Ran::Done => {}
                    }
                }
            }
        }
        // The round's writes go to the store's writer together: one sync for all of them.
        // Connections publisher flow control let go (at the timer, or as the round delivered)
        // have what they sent meanwhile run first, in order, and its writes flushed too.
        loop {
            release_held(&mut broker, round_now, &mut held, &mut closed);
            broker.flush_storage();
            if !held.keys().any(|id| !broker.is_holding(*id)) {
                break;
            }
        }
        for id in std::mem::take(&mut closed) {
            // Flush what the broker still had for it, then forget it.
            collect(&mut broker, &mut outbox);
            deliver(&conns, &mut outbox);
            conns.remove(&id);
        }
        collect(&mut broker, &mut outbox);
        deliver(&conns, &mut outbox);
        live.store(conns.len(), Ordering::Release);
    }
}

/// Commands a connection sent while publisher flow control held it, with the credit that lets
/// it send more (so a held connection soon stops sending), kept until the broker lets it go.
type Held = HashMap<ConnId, VecDeque<(VecDeque<Command>, Option<OwnedSemaphorePermit>)>>;

/// How handing a batch to the broker ended.
enum Ran {
    /// Every command went in.
    Done,
    /// The broker held the connection part way: the rest is left in the batch.
    Held,
    /// The connection's close went in: it is over.
    Closed,
}

/// Hands `commands` to the broker in order until they are all in, the broker holds the
/// connection, or it closes.
fn run_batch(broker: &mut Broker, now: u64, id: ConnId, commands: &mut VecDeque<Command>) -> Ran {
    while let Some(command) = commands.pop_front() {
        let close = matches!(command, Command::Close);
        broker.handle(now, id, command);
        if close {
            return Ran::Closed;
        }
        if !commands.is_empty() && broker.is_holding(id) {
            return Ran::Held;
        }
    }
    Ran::Done
}

/// Runs what the connections no longer held had sent while they were.
fn release_held(broker: &mut Broker, now: u64, held: &mut Held, closed: &mut Vec<ConnId>) {
    if held.is_empty() {
        return;
    }
    let mut ids: Vec<ConnId> = held.keys().copied().collect();
    ids.sort();
    for id in ids {
        let Some(waiting) = held.get_mut(&id) else {
            continue;
        };
        while !broker.is_holding(id) {
            let Some((mut commands, credit)) = waiting.pop_front() else {
                break;
            };
            match run_batch(broker, now, id, &mut commands) {
                Ran::Done => {}
                Ran::Held => waiting.push_front((commands, credit)),
                Ran::Closed => {
                    waiting.clear();
                    closed.push(id);
                }
            }
        }
        if waiting.is_empty() {
            held.remove(&id);
        }
    }
}

fn collect(broker: &mut Broker, outbox: &mut HashMap<ConnId, EventBatch>) {
    while let Some((conn, event)) = broker.poll_event() {
        outbox.entry(conn).or_default().push(event);
    }
}

fn deliver(
    conns: &HashMap<ConnId, mpsc::UnboundedSender<EventBatch>>,
    outbox: &mut HashMap<ConnId, EventBatch>,
) {
    for (conn, batch) in outbox.iter_mut() {
        if batch.is_empty() {
            continue;
        }
        let batch = std::mem::take(batch);
        if let Some(tx) = conns.get(conn) {
            let _ = tx.send(batch);
        }
    }
    outbox.retain(|conn, _| conns.contains_key(conn));
}
