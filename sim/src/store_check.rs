//! The disk store alone, crashed between its writes and their syncs.
//!
//! The simulated broker syncs its store at the end of every round, so its crashes never fall
//! between a write and its sync. This check drives `warren-store` directly on a [`SimDisk`]
//! with random saves, acks, deliveries, rewrites, flushes and syncs, and crashes it at random
//! moments: the crash keeps only what was synced (sometimes a prefix of the rest, sometimes a
//! torn frame or garbage after it). After each restart it checks the store's promise, which is
//! what a publisher confirm or a `tx.commit-ok` rests on:
//!
//! - every message whose save was synced is back exactly once, unless its ack was synced;
//! - no message whose ack was synced is back; nothing that was never saved appears;
//! - each queue's messages come back in id order, the head from recovery and the rest through
//!   the pager (queues keep 4 messages in memory, segments are 2 KiB);
//! - a message's delivery count is at least its synced deliveries and at most all of them.
//!
//! Then it takes what came back as the truth and goes on.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use warren_core::broker::Window;
use warren_core::codec::FieldTable;
use warren_core::storage::{MessageRecord, QueueRecord, Storage};
use warren_store::{open_on, Batch, DiskStorage, Options, Writer};

use crate::disk::SimDisk;
use crate::rng::{Rng, Source};

const QUEUES: [&str; 3] = ["a", "b", "c"];

/// One message the check knows of.
#[derive(Clone, Debug)]
struct Known {
    queue: usize,
    body: Bytes,
    /// Write sequence of its save (0: durable since a restart).
    saved: u64,
    acked: Option<u64>,
    /// Deliveries known durable, and the write sequences of those since.
    deliveries: u32,
    marks: Vec<u64>,
}

/// What a run did.
#[derive(Clone, Copy, Debug, Default)]
pub struct Stats {
    pub crashes: u64,
    pub saved: u64,
    pub recovered: u64,
    pub paged_in: u64,
}

struct Open {
    store: DiskStorage,
    writer: Writer<SimDisk>,
    batches: Arc<Mutex<Vec<Batch>>>,
    /// How far the store is durable in this incarnation.
    synced: u64,
}

fn options() -> Options {
    Options {
        segment_bytes: 2 << 10,
        skip_damaged: false,
        queue_window: Window {
            messages: 4,
            bytes: 1 << 20,
        },
    }
}

fn open(disk: &SimDisk) -> Result<Open, String> {
    let batches: Arc<Mutex<Vec<Batch>>> = Arc::default();
    let sink = batches.clone();
    let (mut store, writer, _report) = open_on(
        disk.clone(),
        &options(),
        Box::new(move |b| sink.lock().expect("batches").push(b)),
    )
    .map_err(|e| format!("the store did not open after a crash: {e}"))?;
    for q in QUEUES {
        store.save_queue(&QueueRecord {
            vhost: "/".into(),
            name: q.into(),
            auto_delete: false,
            arguments: FieldTable::default(),
        });
    }
    Ok(Open {
        store,
        writer,
        batches,
        synced: 0,
    })
}

impl Open {
    fn flush(&mut self) {
        self.store.flush();
        let batches = std::mem::take(&mut *self.batches.lock().expect("batches"));
        for b in batches {
            self.writer
                .apply(b)
                .expect("the sim disk takes every write");
        }
    }

    fn sync(&mut self) {
        self.flush();
        self.synced = self.writer.sync().expect("the sim disk syncs");
    }
}

fn record(id: u64, k: &Known) -> MessageRecord {
    MessageRecord {
        id,
        exchange: "".into(),
        routing_key: QUEUES[k.queue].into(),
        // delivery_mode 2: a persistent message.
        properties: Bytes::from_static(&[0x10, 0x00, 0x02]),
        body: k.body.clone(),
        deliveries: k.deliveries + k.marks.len() as u32,
        paged_only: false,
    }
}

/// Runs one seed for `steps` operations.
pub fn run(seed: u64, steps: usize) -> Result<Stats, String> {
    let mut rng = Rng::new(seed ^ 0x5707_e5c4_ec4b_0001);
    let disk = SimDisk::default();
    let mut s = open(&disk)?;
    let mut known: BTreeMap<u64, Known> = BTreeMap::new();
    let mut next_id = 1u64;
    let mut stats = Stats::default();
    for step in 0..steps {
        let live: Vec<u64> = known
            .iter()
            .filter(|(_, k)| k.acked.is_none())
            .map(|(id, _)| *id)
            .collect();
        let pick = |rng: &mut Rng| live[rng.below(live.len() as u32) as usize];
        match rng.weighted(&[30, 12, 8, 10, 6, 2]) {
            0 => {
                let k = Known {
                    queue: rng.below(QUEUES.len() as u32) as usize,
                    body: Bytes::from(vec![rng.below(256) as u8; 1 + rng.below(300) as usize]),
                    saved: 0,
                    acked: None,
                    deliveries: 0,
                    marks: Vec::new(),
                };
                let id = next_id;
                next_id += 1;
                s.store.save_message("/", QUEUES[k.queue], &record(id, &k));
                let mut k = k;
                k.saved = s.store.write_seq();
                known.insert(id, k);
                stats.saved += 1;
            }
            1 if !live.is_empty() => {
                let id = pick(&mut rng);
                let k = known.get_mut(&id).expect("live");
                s.store.delete_message("/", QUEUES[k.queue], id);
                k.acked = Some(s.store.write_seq());
            }
            2 if !live.is_empty() => {
                let id = pick(&mut rng);
                let k = known.get_mut(&id).expect("live");
                s.store.mark_delivered("/", QUEUES[k.queue], id);
                k.marks.push(s.store.write_seq());
            }
            3 => {
                // A round ends: the broker answers a rewrite request, then flushes.
                for id in s.store.rewrite_request() {
                    if let Some(k) = known.get(&id).filter(|k| k.acked.is_none()) {
                        s.store.save_message("/", QUEUES[k.queue], &record(id, k));
                    }
                }
                s.flush();
            }
            4 => s.sync(),
            _ => {
                let synced = s.synced;
                drop(s);
                let mut crash = Rng::new(seed ^ (step as u64).wrapping_mul(0x9e37_79b9));
                disk.crash(&mut crash);
                s = open(&disk)?;
                stats.crashes += 1;
                let before = std::mem::take(&mut known);
                known = check(&mut s, before, synced, &mut stats)
                    .map_err(|e| format!("seed {seed}, step {step}: {e}"))?;
                next_id = next_id.max(known.keys().next_back().map_or(1, |id| id + 1));
            }
        }
    }
    Ok(stats)
}

/// Checks what a reopened store gives back against what was known before the crash, whose
/// store was durable up to write `synced` (see the module docs); returns what came back,
/// durable now.
fn check(
    s: &mut Open,
    before: BTreeMap<u64, Known>,
    synced: u64,
    stats: &mut Stats,
) -> Result<BTreeMap<u64, Known>, String> {
    let recovered = s.store.load();
    let mut back: BTreeMap<u64, (usize, MessageRecord)> = BTreeMap::new();
    for (qi, q) in QUEUES.iter().enumerate() {
        let mut order: Vec<MessageRecord> = recovered
            .messages
            .iter()
            .filter(|(_, name, _)| name.as_str() == *q)
            .flat_map(|(_, _, m)| m.iter().cloned())
            .collect();
        if let Some(p) = recovered.paged.iter().find(|p| p.queue.as_str() == *q) {
            let mut after = p.after_id;
            let mut paged = 0;
            loop {
                let mut out = Vec::new();
                s.store.page_in("/", q, after, 3, &mut out);
                let Some(last) = out.last() else { break };
                after = last.id;
                paged += out.len() as u64;
                order.extend(out);
            }
            if paged != p.count {
                return Err(format!(
                    "queue {q}: recovery counted {} messages on disk, the pager read {paged}",
                    p.count
                ));
            }
            stats.paged_in += paged;
        }
        for pair in order.windows(2) {
            if pair[0].id >= pair[1].id {
                return Err(format!(
                    "queue {q}: message {} came back after {} (out of order or twice)",
                    pair[1].id, pair[0].id
                ));
            }
        }
        for m in order {
            if back.insert(m.id, (qi, m)).is_some() {
                return Err(format!("a message came back twice in queue {q}"));
            }
        }
    }
    let mut now = BTreeMap::new();
    for (id, k) in &before {
        let save_durable = k.saved <= synced;
        let ack_durable = k.acked.is_some_and(|a| a <= synced);
        match back.remove(id) {
            // An ack not yet synced may be on disk all the same (a segment is synced as the
            // next one begins), so only a message never acked must be back.
            None if save_durable && k.acked.is_none() => {
                return Err(format!(
                    "message {id} (queue {}) was saved and synced, never acked, and is gone",
                    QUEUES[k.queue]
                ));
            }
            None => {}
            Some(_) if ack_durable => {
                return Err(format!("message {id} came back after its ack was synced"));
            }
            Some((qi, m)) => {
                if qi != k.queue || m.body != k.body {
                    return Err(format!("message {id} came back otherwise than saved"));
                }
                let floor = k.deliveries + k.marks.iter().filter(|s| **s <= synced).count() as u32;
                let ceiling = k.deliveries + k.marks.len() as u32;
                if m.deliveries < floor || m.deliveries > ceiling {
                    return Err(format!(
                        "message {id} came back with {} deliveries, expected {floor}..={ceiling}",
                        m.deliveries
                    ));
                }
                now.insert(
                    *id,
                    Known {
                        queue: qi,
                        body: m.body.clone(),
                        saved: 0,
                        acked: None,
                        deliveries: m.deliveries,
                        marks: Vec::new(),
                    },
                );
            }
        }
    }
    if let Some(id) = back.keys().next() {
        return Err(format!("message {id} came back but was never saved"));
    }
    stats.recovered += now.len() as u64;
    Ok(now)
}
