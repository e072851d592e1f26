//! The `throughput` scenario: producers → exchange → queues → consumers.
//!
//! Each producer and each consumer has its own connection with one channel (as PerfTest does).
//! The run: declare the exchange, queues and bindings on a setup connection; start the
//! consumers; start the producers together; print a line a second; stop the producers after
//! `--time` seconds or `--pmessages` messages each; let the consumers drain what is queued
//! (until every expected delivery came, nothing arrived for `--drain-idle`, or
//! `--drain-timeout`); then
//! print the summary and delete what the run declared.
//!
//! Hot path, per producer: one pre-encoded publish (method + header + body frames) is copied
//! as many times as fit in ~64 KiB, each body stamped with the wall-clock time in nanoseconds
//! (big-endian, first 8 bytes; bodies under 8 bytes carry no stamp), and written with one
//! `write_all`. Per consumer: one `read_buf` of up to 256 KiB, frames scanned in place
//! ([`DeliveryScanner`]), latencies recorded under one lock per read, and with manual acks one
//! `basic.ack multiple=true` for the last delivery of the read. Nothing is allocated per
//! message.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Result};
use bytes::Buf;
use clap::Args;
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::sync::{watch, Notify};
use warren_core::codec::{
    encode_content, encode_method_frame, BasicAck, BasicConsume, BasicProperties, BasicPublish,
    BasicQos, ConfirmSelect, ExchangeDeclare, ExchangeDelete, Method, QueueBind, QueueDeclare,
    QueueDelete, ShortStr, FRAME_BODY, FRAME_HEADER, FRAME_HEARTBEAT, FRAME_METHOD, FRAME_OVERHEAD,
};

use crate::client::{close_error, decode_method, method_ids, peek_frame, Conn};
use crate::procfs::CpuMark;
use crate::rate::SharedLimiter;
use crate::stats::{self, new_histogram, Counters, Latencies, LatencyRecorder, LatencySummary};
use crate::uri::AmqpUri;

/// Bytes of publishes a producer encodes before one write.
const WRITE_TARGET: usize = 64 * 1024;
/// Longest wait for a producer's `connection.close-ok`, which comes after the broker has
/// handled everything the producer wrote.
const CLOSE_WAIT: Duration = Duration::from_secs(120);
/// Room a consumer makes in its read buffer before each read.
const READ_CHUNK: usize = 256 * 1024;

/// Options of `throughput`, named as PerfTest names them where it has them.
#[derive(Args, Debug, Clone)]
pub struct ThroughputArgs {
    /// Broker URI.
    #[arg(long, default_value = crate::DEFAULT_URI)]
    pub uri: String,
    /// Number of producers (one connection each).
    #[arg(short = 'x', long, default_value_t = 1)]
    pub producers: usize,
    /// Number of consumers (one connection each).
    #[arg(short = 'y', long, default_value_t = 1)]
    pub consumers: usize,
    /// Message body size in bytes (bodies of 8 bytes or more carry a timestamp for latency).
    #[arg(short = 's', long, default_value_t = 16)]
    pub size: usize,
    /// Queue name; with --queues N > 1, queues are NAME-1 .. NAME-N.
    #[arg(short = 'u', long, default_value = "warren-perf")]
    pub queue: String,
    /// Number of queues. Consumer j consumes from queue j mod N; with the default exchange,
    /// producer j publishes to queue j mod N, otherwise every queue is bound to the exchange.
    #[arg(long, default_value_t = 1)]
    pub queues: usize,
    /// Exchange to publish to ("" = the default exchange). Declared unless it is "" or amq.*.
    #[arg(short = 'e', long, default_value = "")]
    pub exchange: String,
    /// Type of the exchange to declare: direct, fanout, topic, headers.
    #[arg(short = 't', long, default_value = "direct")]
    pub exchange_type: String,
    /// Routing key of the publishes (default: the queue name).
    #[arg(short = 'k', long)]
    pub routing_key: Option<String>,
    /// Key the queues are bound with (default: the routing key).
    #[arg(long)]
    pub binding_key: Option<String>,
    /// Bindings per queue: the binding key plus N-1 decoy keys that never match the routing
    /// key (`d<i>.#`, `*.d<i>`, `<word>.d<i>.#`, `#.d<i>`), to load a topic exchange.
    #[arg(long, default_value_t = 1)]
    pub bindings: usize,
    /// Publisher confirms: at most N unconfirmed publishes per producer (0 = no confirms).
    #[arg(short = 'c', long, default_value_t = 0)]
    pub confirm: u64,
    /// Consumer prefetch (basic.qos); 0 = unlimited.
    #[arg(short = 'q', long, default_value_t = 0)]
    pub prefetch: u16,
    /// Consume with no-ack. Without it consumers ack once per read, with multiple=true.
    #[arg(short = 'a', long)]
    pub auto_ack: bool,
    /// Persistent messages (delivery-mode 2) to durable queues.
    #[arg(short = 'f', long)]
    pub persistent: bool,
    /// Publish at most R messages per second over all producers (0 = unlimited).
    #[arg(short = 'r', long, default_value_t = 0.0)]
    pub rate: f64,
    /// Stop producing after S seconds.
    #[arg(short = 'z', long)]
    pub time: Option<f64>,
    /// Stop each producer after N messages.
    #[arg(short = 'C', long)]
    pub pmessages: Option<u64>,
    /// Longest wait, after the producers stop, for the consumers to drain the queues (seconds).
    #[arg(long, default_value_t = 30.0)]
    pub drain_timeout: f64,
    /// After the producers stop, also stop when no delivery arrived for this long (seconds).
    #[arg(long, default_value_t = 10.0)]
    pub drain_idle: f64,
    /// Broker process id: report its CPU time per message (from /proc/PID/stat).
    #[arg(long)]
    pub pid: Option<u32>,
    /// Keep the queues and exchange the run declared (deleted by default).
    #[arg(long)]
    pub keep: bool,
    /// Tokio worker threads for the tool (1 = one thread for every producer and consumer).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Print per-second lines to stderr and the result as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

impl ThroughputArgs {
    fn queue_names(&self) -> Vec<String> {
        if self.queues <= 1 {
            vec![self.queue.clone()]
        } else {
            (1..=self.queues)
                .map(|i| format!("{}-{i}", self.queue))
                .collect()
        }
    }

    fn declares_exchange(&self) -> bool {
        !self.exchange.is_empty() && !self.exchange.starts_with("amq.")
    }

    /// The routing key producer `j` publishes with.
    fn routing_key_for(&self, j: usize, queues: &[String]) -> String {
        if self.exchange.is_empty() {
            queues[j % queues.len()].clone()
        } else {
            self.routing_key
                .clone()
                .unwrap_or_else(|| queues[0].clone())
        }
    }

    fn binding_key(&self, queues: &[String]) -> String {
        self.binding_key
            .clone()
            .or_else(|| self.routing_key.clone())
            .unwrap_or_else(|| queues[0].clone())
    }
}

/// The `i`-th decoy binding key: never matches a routing key whose words are not of the form
/// `d<number>`, and spreads over the trie's literal, `*` and `#` branches.
pub fn decoy_binding_key(i: usize, first_word: &str) -> String {
    match i % 4 {
        0 => format!("d{i}.#"),
        1 => format!("*.d{i}"),
        2 => format!("{first_word}.d{i}.#"),
        _ => format!("#.d{i}"),
    }
}

/// Wall-clock nanoseconds since the Unix epoch: what bodies are stamped with, so that latency
/// is right even for a consumer in another process on the same machine.
#[inline]
pub fn wall_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// One publish, encoded once and copied for every message.
#[derive(Clone, Debug)]
pub struct PublishTemplate {
    pub bytes: Vec<u8>,
    /// Where the 8-byte timestamp goes (the first body bytes), if the body has room.
    pub stamp_at: Option<usize>,
}

impl PublishTemplate {
    pub fn new(
        channel: u16,
        exchange: &str,
        routing_key: &str,
        size: usize,
        persistent: bool,
        frame_max: u32,
    ) -> PublishTemplate {
        let mut bytes = Vec::new();
        let publish = Method::BasicPublish(BasicPublish {
            exchange: ShortStr::from(exchange),
            routing_key: ShortStr::from(routing_key),
            ..BasicPublish::default()
        });
        encode_method_frame(&mut bytes, channel, &publish);
        let mut props = Vec::new();
        BasicProperties {
            delivery_mode: persistent.then_some(2),
            ..BasicProperties::default()
        }
        .encode(&mut props);
        let header_start = bytes.len();
        let body = vec![0u8; size];
        encode_content(&mut bytes, channel, 60, &props, &body, frame_max);
        // Header frame: overhead + class(2) weight(2) size(8) + properties; then the first
        // body frame's 7-byte head.
        let first_body = header_start + FRAME_OVERHEAD + 12 + props.len() + 7;
        PublishTemplate {
            bytes,
            stamp_at: (size >= 8 && (frame_max == 0 || frame_max as usize >= FRAME_OVERHEAD + 8))
                .then_some(first_body),
        }
    }

    /// Appends `n` copies stamped with `stamp`.
    #[inline]
    pub fn append(&self, out: &mut Vec<u8>, n: usize, stamp: u64) {
        out.reserve(self.bytes.len() * n);
        let stamp = stamp.to_be_bytes();
        for _ in 0..n {
            let start = out.len();
            out.extend_from_slice(&self.bytes);
            if let Some(at) = self.stamp_at {
                out[start + at..start + at + 8].copy_from_slice(&stamp);
            }
        }
    }
}

/// Finds deliveries in a consumer's read buffer without copying them.
///
/// Feed it the buffer's bytes; it returns how many bytes of whole frames it consumed (the rest
/// is a partial frame to keep for the next read). Content frames of one delivery may be split
/// across calls.
#[derive(Debug, Default)]
pub struct DeliveryScanner {
    /// Body bytes still expected for the current delivery.
    remaining: u64,
    /// Whether the current delivery's header arrived and its body has not started.
    awaiting_first_body: bool,
    /// Whether a deliver was seen and its header has not arrived.
    awaiting_header: bool,
    /// Delivery tag of the last delivery seen.
    pub last_tag: u64,
}

/// What [`DeliveryScanner::scan`] found.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Scanned {
    /// Bytes of whole frames consumed.
    pub consumed: usize,
    /// Deliveries completed (last body byte seen).
    pub delivered: u64,
    /// The broker cancelled the consumer (basic.cancel).
    pub cancelled: bool,
}

impl DeliveryScanner {
    /// Scans whole frames of `buf`. Latencies (µs) of stamped bodies go to `latencies`,
    /// measured against `now_wall_ns`.
    pub fn scan(
        &mut self,
        buf: &[u8],
        now_wall_ns: u64,
        latencies: &mut Vec<u64>,
    ) -> Result<Scanned> {
        let mut out = Scanned::default();
        while let Some((kind, channel, payload, len)) = peek_frame(&buf[out.consumed..])? {
            out.consumed += len;
            match kind {
                FRAME_METHOD => {
                    if method_ids(payload) == (60, 60) {
                        // basic.deliver: consumer-tag (shortstr), delivery-tag (u64), ...
                        let tag_len = *payload.get(4).unwrap_or(&0) as usize;
                        let tag = payload
                            .get(5 + tag_len..13 + tag_len)
                            .and_then(|b| b.try_into().ok())
                            .map(u64::from_be_bytes)
                            .ok_or_else(|| anyhow!("truncated basic.deliver"))?;
                        self.last_tag = tag;
                        self.awaiting_header = true;
                    } else {
                        let m = decode_method(payload)?;
                        if let Some(err) = close_error(channel, &m) {
                            return Err(err);
                        }
                        if matches!(m, Method::BasicCancel(_)) {
                            out.cancelled = true;
                        }
                    }
                }
                FRAME_HEADER if self.awaiting_header => {
                    self.awaiting_header = false;
                    let size = payload
                        .get(4..12)
                        .and_then(|b| b.try_into().ok())
                        .map(u64::from_be_bytes)
                        .ok_or_else(|| anyhow!("truncated content header"))?;
                    self.remaining = size;
                    if size == 0 {
                        out.delivered += 1;
                    } else {
                        self.awaiting_first_body = true;
                    }
                }
                FRAME_BODY if self.remaining > 0 => {
                    if self.awaiting_first_body {
                        self.awaiting_first_body = false;
                        if let Some(stamp) = payload.first_chunk::<8>() {
                            let stamp = u64::from_be_bytes(*stamp);
                            // Only plausible stamps: bodies from other tools are not timed.
                            if stamp <= now_wall_ns + 1_000_000_000
                                && now_wall_ns - stamp.min(now_wall_ns) < 3_600_000_000_000
                            {
                                latencies.push(now_wall_ns.saturating_sub(stamp) / 1000);
                            }
                        }
                    }
                    self.remaining = self.remaining.saturating_sub(payload.len() as u64);
                    if self.remaining == 0 {
                        out.delivered += 1;
                    }
                }
                FRAME_HEARTBEAT => {}
                _ => {}
            }
        }
        Ok(out)
    }
}

/// State shared by every task of a run.
struct Shared {
    counters: Counters,
    latencies: Latencies,
    /// Producers stop at their next batch.
    stop_producers: AtomicBool,
    producers_done: AtomicUsize,
    /// Wall-clock ns of the last delivery any consumer read.
    last_delivery_ns: AtomicU64,
    /// Wall-clock ns of the end of the last publish write.
    last_send_ns: AtomicU64,
    failure: Mutex<Option<String>>,
    limiter: Option<SharedLimiter>,
}

impl Shared {
    fn fail(&self, e: &anyhow::Error) {
        let mut f = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        if f.is_none() {
            *f = Some(format!("{e:#}"));
        }
        self.stop_producers.store(true, Ordering::Relaxed);
    }

    fn failure(&self) -> Option<String> {
        self.failure
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// The result of a run.
#[derive(Debug, Clone)]
pub struct ThroughputReport {
    pub sent: u64,
    pub received: u64,
    pub confirmed: u64,
    pub nacked: u64,
    /// Seconds from the start until the last publish was written.
    pub send_secs: f64,
    /// Seconds from the start until the last delivery.
    pub receive_secs: f64,
    pub latency: LatencySummary,
    pub broker_cpu: Option<Duration>,
    pub tool_cpu: Option<Duration>,
    /// Per second: (time s, sent msg/s, received msg/s, latency).
    pub intervals: Vec<(f64, f64, f64, LatencySummary)>,
}

impl ThroughputReport {
    pub fn send_rate(&self) -> f64 {
        stats::rate(self.sent, self.send_secs)
    }

    pub fn receive_rate(&self) -> f64 {
        stats::rate(self.received, self.receive_secs)
    }

    /// CPU µs per published message.
    fn per_msg_us(&self, cpu: Option<Duration>) -> Option<f64> {
        cpu.filter(|_| self.sent > 0)
            .map(|c| c.as_secs_f64() * 1e6 / self.sent as f64)
    }

    pub fn broker_cpu_us_per_msg(&self) -> Option<f64> {
        self.per_msg_us(self.broker_cpu)
    }

    pub fn tool_cpu_us_per_msg(&self) -> Option<f64> {
        self.per_msg_us(self.tool_cpu)
    }

    pub fn to_json(&self, args: &ThroughputArgs) -> serde_json::Value {
        serde_json::json!({
            "scenario": "throughput",
            "config": {
                "producers": args.producers, "consumers": args.consumers, "size": args.size,
                "queues": args.queues, "exchange": args.exchange,
                "exchange_type": args.exchange_type, "bindings": args.bindings,
                "confirm": args.confirm, "prefetch": args.prefetch, "auto_ack": args.auto_ack,
                "persistent": args.persistent, "rate": args.rate, "time": args.time,
                "pmessages": args.pmessages,
            },
            "sent": self.sent, "received": self.received,
            "confirmed": self.confirmed, "nacked": self.nacked,
            "send_secs": self.send_secs, "receive_secs": self.receive_secs,
            "send_rate": self.send_rate(), "receive_rate": self.receive_rate(),
            "latency": self.latency.to_json(),
            "broker_cpu_secs": self.broker_cpu.map(|d| d.as_secs_f64()),
            "broker_cpu_us_per_msg": self.broker_cpu_us_per_msg(),
            "tool_cpu_secs": self.tool_cpu.map(|d| d.as_secs_f64()),
            "tool_cpu_us_per_msg": self.tool_cpu_us_per_msg(),
            "intervals": self.intervals.iter().map(|(t, s, r, l)| serde_json::json!({
                "time": t, "sent_rate": s, "received_rate": r,
                "p50_us": l.p50, "p99_us": l.p99,
            })).collect::<Vec<_>>(),
        })
    }

    /// The closing lines, PerfTest-like.
    pub fn summary_text(&self) -> String {
        let mut s = format!(
            "sending rate avg: {:.0} msg/s ({} msg in {:.2} s)\n\
             receiving rate avg: {:.0} msg/s ({} msg in {:.2} s)\n",
            self.send_rate(),
            self.sent,
            self.send_secs,
            self.receive_rate(),
            self.received,
            self.receive_secs
        );
        if self.confirmed > 0 || self.nacked > 0 {
            s += &format!("confirmed: {}, nacked: {}\n", self.confirmed, self.nacked);
        }
        let l = &self.latency;
        if l.count > 0 {
            s += &format!(
                "consumer latency µs: min {} / p50 {} / p95 {} / p99 {} / p99.9 {} / max {} \
                 ({} samples)\n",
                l.min, l.p50, l.p95, l.p99, l.p999, l.max, l.count
            );
        }
        if let (Some(c), Some(per)) = (self.broker_cpu, self.broker_cpu_us_per_msg()) {
            s += &format!(
                "broker CPU: {:.2} s, {per:.3} µs per published message\n",
                c.as_secs_f64()
            );
        }
        if let (Some(c), Some(per)) = (self.tool_cpu, self.tool_cpu_us_per_msg()) {
            s += &format!(
                "tool CPU: {:.2} s, {per:.3} µs per published message\n",
                c.as_secs_f64()
            );
        }
        s
    }
}

/// `throughput` from the command line: runs, prints the summary (or JSON).
pub async fn main(args: ThroughputArgs) -> Result<()> {
    let report = run(&args).await?;
    if args.json {
        println!("{}", report.to_json(&args));
    } else {
        print!("{}", report.summary_text());
    }
    Ok(())
}

/// Runs the scenario and returns its figures. Per-second lines go to stdout (stderr with
/// `--json`).
pub async fn run(args: &ThroughputArgs) -> Result<ThroughputReport> {
    if args.producers == 0 && args.consumers == 0 {
        bail!("nothing to do: no producers and no consumers");
    }
    if args.time.is_none() && (args.pmessages.is_none() || args.producers == 0) {
        eprintln!("no --time or --pmessages: running until Ctrl-C");
    }
    let uri = AmqpUri::parse(&args.uri)?;
    let queues = args.queue_names();

    // Setup: exchange, queues, bindings.
    let mut setup = Conn::connect(&uri, "warren-perf setup").await?;
    setup.open_channel(1).await?;
    declare_topology(&mut setup, args, &queues).await?;

    let shared = Arc::new(Shared {
        counters: Counters::default(),
        latencies: Latencies::default(),
        stop_producers: AtomicBool::new(false),
        producers_done: AtomicUsize::new(0),
        last_delivery_ns: AtomicU64::new(0),
        last_send_ns: AtomicU64::new(0),
        failure: Mutex::new(None),
        limiter: (args.rate > 0.0).then(|| SharedLimiter::new(args.rate)),
    });

    // Consumers first, each consuming before any producer starts.
    let (stop_consumers, stop_rx) = watch::channel(false);
    let mut consumers = Vec::new();
    for j in 0..args.consumers {
        let queue = queues[j % queues.len()].clone();
        let mut conn = Conn::connect(&uri, &format!("warren-perf consumer {j}")).await?;
        conn.open_channel(1).await?;
        if args.prefetch > 0 {
            match conn
                .rpc(
                    1,
                    BasicQos {
                        prefetch_count: args.prefetch,
                        ..BasicQos::default()
                    },
                )
                .await?
            {
                Method::BasicQosOk(_) => {}
                m => bail!("expected basic.qos-ok, got {}", m.name()),
            }
        }
        match conn
            .rpc(
                1,
                BasicConsume {
                    queue: ShortStr::from(queue.as_str()),
                    consumer_tag: ShortStr::from(format!("warren-perf-{j}")),
                    no_ack: args.auto_ack,
                    ..BasicConsume::default()
                },
            )
            .await?
        {
            Method::BasicConsumeOk(_) => {}
            m => bail!("expected basic.consume-ok, got {}", m.name()),
        }
        let recorder = shared.latencies.register();
        let shared2 = shared.clone();
        let stop = stop_rx.clone();
        let auto_ack = args.auto_ack;
        consumers.push(tokio::spawn(async move {
            let r = consume(conn, auto_ack, &shared2, &recorder, stop).await;
            if let Err(e) = &r {
                shared2.fail(e);
            }
            r
        }));
    }

    // Producers: connect all, then start together.
    let (start_tx, start_rx) = watch::channel(false);
    let mut producers = Vec::new();
    for j in 0..args.producers {
        let mut conn = Conn::connect(&uri, &format!("warren-perf producer {j}")).await?;
        conn.open_channel(1).await?;
        if args.confirm > 0 {
            match conn.rpc(1, ConfirmSelect { nowait: false }).await? {
                Method::ConfirmSelectOk(_) => {}
                m => bail!("expected confirm.select-ok, got {}", m.name()),
            }
        }
        let template = PublishTemplate::new(
            1,
            &args.exchange,
            &args.routing_key_for(j, &queues),
            args.size,
            args.persistent,
            conn.frame_max,
        );
        let shared2 = shared.clone();
        let mut start = start_rx.clone();
        let confirm = args.confirm;
        let limit = args.pmessages;
        producers.push(tokio::spawn(async move {
            let _ = start.wait_for(|s| *s).await;
            let r = produce(conn, template, confirm, limit, &shared2).await;
            if let Err(e) = &r {
                shared2.fail(e);
            }
            shared2.producers_done.fetch_add(1, Ordering::Release);
            r
        }));
    }

    // Run.
    let started = Instant::now();
    let start_wall = wall_ns();
    let cpu_start = CpuMark::now(args.pid);
    let _ = start_tx.send(true);
    let deadline = args.time.map(|t| started + Duration::from_secs_f64(t));
    let mut reporter = Reporter::new(started, args.json);
    let mut ticker = tokio::time::interval_at(
        tokio::time::Instant::from_std(started + Duration::from_secs(1)),
        Duration::from_secs(1),
    );
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut send_secs = None;
    let expected_routes = if args.exchange.is_empty() {
        1
    } else {
        queues.len() as u64
    };
    let expect_all = args.consumers >= queues.len();
    let mut drain_started: Option<Instant> = None;
    let mut last_progress = (0u64, Instant::now());
    let mut poll = tokio::time::interval(Duration::from_millis(20));
    loop {
        tokio::select! {
            _ = ticker.tick() => reporter.tick(&shared),
            _ = poll.tick() => {}
            _ = &mut ctrl_c => {
                eprintln!("interrupted: stopping");
                shared.stop_producers.store(true, Ordering::Relaxed);
            }
        }
        if let Some(failure) = shared.failure() {
            let _ = stop_consumers.send(true);
            bail!("{failure}");
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            shared.stop_producers.store(true, Ordering::Relaxed);
        }
        if args.producers == 0 {
            // Consumers only (producers in another process): run for --time, or until Ctrl-C.
            if shared.stop_producers.load(Ordering::Relaxed) {
                break;
            }
            continue;
        }
        let producing = shared.producers_done.load(Ordering::Acquire) < args.producers;
        if producing {
            continue;
        }
        if send_secs.is_none() {
            send_secs = Some(started.elapsed().as_secs_f64());
            drain_started = Some(Instant::now());
        }
        if args.consumers == 0 {
            break;
        }
        let (sent, received) = shared.counters.snapshot();
        if expect_all && received >= sent * expected_routes {
            break;
        }
        if received != last_progress.0 {
            last_progress = (received, Instant::now());
        } else if last_progress.1.elapsed().as_secs_f64() >= args.drain_idle {
            break;
        }
        if drain_started.is_some_and(|d| d.elapsed().as_secs_f64() >= args.drain_timeout) {
            eprintln!(
                "drain timeout: {} deliveries still missing",
                (sent * expected_routes).saturating_sub(received)
            );
            break;
        }
    }
    let cpu_end = CpuMark::now(args.pid);
    let _ = stop_consumers.send(true);
    for p in producers {
        p.await??;
    }
    for c in consumers {
        c.await??;
    }
    reporter.finish(&shared);

    if !args.keep {
        delete_topology(&mut setup, args, &queues).await?;
    }
    setup.close().await?;

    let (broker_cpu, tool_cpu) = cpu_end.since(&cpu_start);
    let since_start = |ns: u64| {
        if ns > start_wall {
            (ns - start_wall) as f64 / 1e9
        } else {
            0.0
        }
    };
    let receive_secs = since_start(shared.last_delivery_ns.load(Ordering::Relaxed));
    let last_send_secs = since_start(shared.last_send_ns.load(Ordering::Relaxed));
    Ok(ThroughputReport {
        sent: shared.counters.sent.load(Ordering::Relaxed),
        received: shared.counters.received.load(Ordering::Relaxed),
        confirmed: shared.counters.confirmed.load(Ordering::Relaxed),
        nacked: shared.counters.nacked.load(Ordering::Relaxed),
        send_secs: if last_send_secs > 0.0 {
            last_send_secs
        } else {
            send_secs.unwrap_or_else(|| started.elapsed().as_secs_f64())
        },
        receive_secs,
        latency: LatencySummary::of(&reporter.total),
        broker_cpu,
        tool_cpu,
        intervals: reporter.intervals,
    })
}

async fn declare_topology(
    setup: &mut Conn,
    args: &ThroughputArgs,
    queues: &[String],
) -> Result<()> {
    if args.declares_exchange() {
        match setup
            .rpc(
                1,
                ExchangeDeclare {
                    exchange: ShortStr::from(args.exchange.as_str()),
                    kind: ShortStr::from(args.exchange_type.as_str()),
                    durable: args.persistent,
                    ..ExchangeDeclare::default()
                },
            )
            .await?
        {
            Method::ExchangeDeclareOk(_) => {}
            m => bail!("expected exchange.declare-ok, got {}", m.name()),
        }
    }
    let declares = queues.iter().map(|q| QueueDeclare {
        queue: ShortStr::from(q.as_str()),
        durable: args.persistent,
        ..QueueDeclare::default()
    });
    for reply in setup.pipeline(1, declares, 500).await? {
        if !matches!(reply, Method::QueueDeclareOk(_)) {
            bail!("expected queue.declare-ok, got {}", reply.name());
        }
    }
    if args.exchange.is_empty() {
        return Ok(());
    }
    let key = args.binding_key(queues);
    let first_word = key.split('.').next().unwrap_or("").to_string();
    let binds = queues.iter().flat_map(|q| {
        let key = key.clone();
        let first_word = first_word.clone();
        (0..args.bindings.max(1)).map(move |i| QueueBind {
            queue: ShortStr::from(q.as_str()),
            exchange: ShortStr::from(args.exchange.as_str()),
            routing_key: ShortStr::from(if i == 0 {
                key.clone()
            } else {
                decoy_binding_key(i, &first_word)
            }),
            ..QueueBind::default()
        })
    });
    let t = Instant::now();
    let mut n = 0;
    for reply in setup.pipeline(1, binds, 500).await? {
        if !matches!(reply, Method::QueueBindOk(_)) {
            bail!("expected queue.bind-ok, got {}", reply.name());
        }
        n += 1;
    }
    if n > queues.len() {
        eprintln!("bound {n} keys in {:.2} s", t.elapsed().as_secs_f64());
    }
    Ok(())
}

async fn delete_topology(setup: &mut Conn, args: &ThroughputArgs, queues: &[String]) -> Result<()> {
    let deletes = queues.iter().map(|q| QueueDelete {
        queue: ShortStr::from(q.as_str()),
        ..QueueDelete::default()
    });
    setup.pipeline(1, deletes, 500).await?;
    if args.declares_exchange() {
        setup
            .rpc(
                1,
                ExchangeDelete {
                    exchange: ShortStr::from(args.exchange.as_str()),
                    ..ExchangeDelete::default()
                },
            )
            .await?;
    }
    Ok(())
}

/// One producer: the write loop here, a confirm/close reader in its own task.
async fn produce(
    conn: Conn,
    template: PublishTemplate,
    confirm: u64,
    limit: Option<u64>,
    shared: &Arc<Shared>,
) -> Result<()> {
    let Conn { stream, rbuf, .. } = conn;
    let (rd, mut wr) = stream.into_split();
    let acked = Arc::new(AtomicU64::new(0));
    let wake = Arc::new(Notify::new());
    let reader = tokio::spawn(confirm_reader(
        rd,
        rbuf,
        acked.clone(),
        wake.clone(),
        shared.clone(),
    ));
    let per_write = (WRITE_TARGET / template.bytes.len()).max(1) as u64;
    let mut wbuf = Vec::with_capacity(WRITE_TARGET + template.bytes.len());
    let mut sent = 0u64;
    loop {
        if shared.stop_producers.load(Ordering::Relaxed) || limit.is_some_and(|l| sent >= l) {
            break;
        }
        let mut n = per_write;
        if let Some(l) = limit {
            n = n.min(l - sent);
        }
        if confirm > 0 {
            let outstanding = sent - acked.load(Ordering::Acquire).min(sent);
            if outstanding >= confirm {
                // Woken by the reader on every ack; the timeout re-checks the stop flag.
                let _ = tokio::time::timeout(Duration::from_millis(100), wake.notified()).await;
                continue;
            }
            n = n.min(confirm - outstanding);
        }
        if let Some(limiter) = &shared.limiter {
            n = limiter.acquire(n).await;
        }
        wbuf.clear();
        template.append(&mut wbuf, n as usize, wall_ns());
        if let Err(e) = wr.write_all(&wbuf).await {
            if let Some(f) = shared.failure() {
                bail!("{f}");
            }
            return Err(anyhow!("publishing: {e}"));
        }
        sent += n;
        shared.counters.sent.fetch_add(n, Ordering::Relaxed);
        shared.last_send_ns.fetch_max(wall_ns(), Ordering::Relaxed);
    }
    // Let outstanding confirms arrive (bounded), then close.
    if confirm > 0 {
        let until = Instant::now() + Duration::from_secs(10);
        while acked.load(Ordering::Acquire) < sent && Instant::now() < until {
            let _ = tokio::time::timeout(Duration::from_millis(50), wake.notified()).await;
        }
    }
    wbuf.clear();
    encode_method_frame(
        &mut wbuf,
        0,
        &Method::ConnectionClose(warren_core::codec::ConnectionClose {
            reply_code: 200,
            reply_text: ShortStr::from_static("Goodbye"),
            ..Default::default()
        }),
    );
    let _ = wr.write_all(&wbuf).await;
    // The broker answers close-ok after it has handled every publish before it; closing the
    // socket earlier could make it drop publishes it has not read yet (RabbitMQ does).
    match tokio::time::timeout(CLOSE_WAIT, reader).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => Err(anyhow!("confirm reader: {e}")),
        Err(_) => {
            eprintln!(
                "a producer's connection.close-ok did not come within {CLOSE_WAIT:?}: the broker \
                 may not have handled all of its publishes"
            );
            Ok(())
        }
    }
}

/// Reads what a producer's broker sends: confirms (counted), close-ok (the end), closes
/// (errors).
async fn confirm_reader(
    mut rd: OwnedReadHalf,
    mut buf: bytes::BytesMut,
    acked: Arc<AtomicU64>,
    wake: Arc<Notify>,
    shared: Arc<Shared>,
) -> Result<()> {
    loop {
        let mut pos = 0;
        let mut newly_acked = 0u64;
        let mut done = false;
        while let Some((kind, channel, payload, len)) = peek_frame(&buf[pos..])? {
            pos += len;
            if kind != FRAME_METHOD {
                continue;
            }
            match method_ids(payload) {
                ids @ ((60, 80) | (60, 120)) => {
                    let tag = payload
                        .get(4..12)
                        .and_then(|b| b.try_into().ok())
                        .map(u64::from_be_bytes)
                        .ok_or_else(|| anyhow!("truncated confirm"))?;
                    let multiple = payload.get(12).is_some_and(|b| b & 1 == 1);
                    let before = acked.fetch_max(tag, Ordering::AcqRel);
                    let count = if multiple {
                        tag.saturating_sub(before)
                    } else {
                        1
                    };
                    if ids.1 == 120 {
                        shared.counters.nacked.fetch_add(count, Ordering::Relaxed);
                    } else {
                        newly_acked += count;
                    }
                }
                (10, 51) => done = true,
                _ => {
                    let m = decode_method(payload)?;
                    if let Some(err) = close_error(channel, &m) {
                        wake.notify_one();
                        return Err(err);
                    }
                }
            }
        }
        buf.advance(pos);
        if newly_acked > 0 {
            shared
                .counters
                .confirmed
                .fetch_add(newly_acked, Ordering::Relaxed);
        }
        wake.notify_one();
        if done {
            return Ok(());
        }
        buf.reserve(64 * 1024);
        if rd.read_buf(&mut buf).await? == 0 {
            if shared.stop_producers.load(Ordering::Relaxed) {
                return Ok(());
            }
            bail!("the broker closed a producer's connection");
        }
    }
}

/// One consumer: reads, scans deliveries in place, acks, until told to stop.
async fn consume(
    mut conn: Conn,
    auto_ack: bool,
    shared: &Shared,
    recorder: &LatencyRecorder,
    mut stop: watch::Receiver<bool>,
) -> Result<()> {
    let mut scanner = DeliveryScanner::default();
    let mut latencies = Vec::with_capacity(4096);
    let mut acked = 0u64;
    loop {
        conn.rbuf.reserve(READ_CHUNK);
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => break,
            read = conn.stream.read_buf(&mut conn.rbuf) => {
                if read? == 0 {
                    bail!("the broker closed a consumer's connection");
                }
            }
        }
        let now = wall_ns();
        let found = scanner.scan(&conn.rbuf, now, &mut latencies)?;
        conn.rbuf.advance(found.consumed);
        if found.delivered > 0 {
            shared
                .counters
                .received
                .fetch_add(found.delivered, Ordering::Relaxed);
            shared.last_delivery_ns.fetch_max(now, Ordering::Relaxed);
        }
        recorder.record_all(&latencies);
        latencies.clear();
        if !auto_ack && scanner.last_tag > acked {
            acked = scanner.last_tag;
            conn.queue_method(
                1,
                BasicAck {
                    delivery_tag: acked,
                    multiple: true,
                },
            );
            conn.flush().await?;
        }
        if found.cancelled {
            bail!("the broker cancelled a consumer (queue deleted?)");
        }
    }
    conn.close().await
}

/// Per-second lines and the run's histogram.
struct Reporter {
    started: Instant,
    to_stderr: bool,
    last: (u64, u64, Instant),
    last_confirmed: u64,
    interval: Histogram<u64>,
    total: Histogram<u64>,
    intervals: Vec<(f64, f64, f64, LatencySummary)>,
}

impl Reporter {
    fn new(started: Instant, to_stderr: bool) -> Self {
        Reporter {
            started,
            to_stderr,
            last: (0, 0, started),
            last_confirmed: 0,
            interval: new_histogram(),
            total: new_histogram(),
            intervals: Vec::new(),
        }
    }

    fn tick(&mut self, shared: &Shared) {
        let now = Instant::now();
        let (sent, received) = shared.counters.snapshot();
        let secs = now.duration_since(self.last.2).as_secs_f64();
        let s_rate = stats::rate(sent - self.last.0, secs);
        let r_rate = stats::rate(received - self.last.1, secs);
        self.last = (sent, received, now);
        shared.latencies.drain_into(&mut self.interval);
        let lat = LatencySummary::of(&self.interval);
        let _ = self.total.add(&self.interval);
        self.interval.reset();
        let t = now.duration_since(self.started).as_secs_f64();
        let confirmed = shared.counters.confirmed.load(Ordering::Relaxed);
        let confirms = if confirmed > 0 {
            let c_rate = stats::rate(confirmed - self.last_confirmed, secs);
            format!(", confirmed: {c_rate:.0} msg/s")
        } else {
            String::new()
        };
        self.last_confirmed = confirmed;
        let line = format!(
            "time {t:.3}s, sent: {s_rate:.0} msg/s{confirms}, received: {r_rate:.0} msg/s{}",
            lat.perftest_line()
        );
        if self.to_stderr {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
        self.intervals.push((t, s_rate, r_rate, lat));
    }

    fn finish(&mut self, shared: &Shared) {
        shared.latencies.drain_into(&mut self.interval);
        let _ = self.total.add(&self.interval);
        self.interval.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use warren_core::codec::{decode_frame, encode_message, BasicDeliver, FrameKind};

    #[test]
    fn template_is_a_publish_with_a_stamped_body() {
        let t = PublishTemplate::new(1, "ex", "rk", 100, true, 131_072);
        let mut out = Vec::new();
        t.append(&mut out, 2, 0x0102_0304_0506_0708);
        let mut buf = bytes::BytesMut::from(&out[..]);
        for _ in 0..2 {
            let f = decode_frame(&mut buf, 0).unwrap().unwrap();
            let FrameKind::Method(m) = f.kind else {
                panic!("method first")
            };
            match Method::decode(&m).unwrap() {
                Method::BasicPublish(p) => {
                    assert_eq!((p.exchange.as_str(), p.routing_key.as_str()), ("ex", "rk"))
                }
                other => panic!("{other:?}"),
            }
            let f = decode_frame(&mut buf, 0).unwrap().unwrap();
            let FrameKind::Header(h) = f.kind else {
                panic!("header second")
            };
            let h = warren_core::codec::ContentHeader::decode(h).unwrap();
            assert_eq!(h.body_size, 100);
            assert_eq!(
                BasicProperties::decode(&h.properties)
                    .unwrap()
                    .delivery_mode,
                Some(2)
            );
            let f = decode_frame(&mut buf, 0).unwrap().unwrap();
            let FrameKind::Body(b) = f.kind else {
                panic!("body third")
            };
            assert_eq!(b.len(), 100);
            assert_eq!(&b[..8], &[1, 2, 3, 4, 5, 6, 7, 8]);
            assert!(b[8..].iter().all(|&x| x == 0));
        }
        assert!(buf.is_empty());
    }

    #[test]
    fn template_of_tiny_body_has_no_stamp_and_big_body_is_split() {
        let t = PublishTemplate::new(1, "", "q", 4, false, 131_072);
        assert_eq!(t.stamp_at, None);
        let t = PublishTemplate::new(1, "", "q", 300_000, false, 131_072);
        let mut buf = bytes::BytesMut::from(&t.bytes[..]);
        let mut bodies = 0;
        while let Some(f) = decode_frame(&mut buf, 131_072).unwrap() {
            if let FrameKind::Body(b) = f.kind {
                bodies += b.len();
            }
        }
        assert_eq!(bodies, 300_000);
    }

    fn deliveries(n: u64, size: usize, stamp: u64) -> Vec<u8> {
        let mut out = Vec::new();
        let mut body = vec![0u8; size];
        if size >= 8 {
            body[..8].copy_from_slice(&stamp.to_be_bytes());
        }
        for tag in 1..=n {
            let deliver = Method::BasicDeliver(BasicDeliver {
                consumer_tag: ShortStr::from("ctag"),
                delivery_tag: tag,
                redelivered: false,
                exchange: ShortStr::from(""),
                routing_key: ShortStr::from("q"),
            });
            encode_message(&mut out, 1, &deliver, &[0, 0], &body, 4096);
        }
        out
    }

    #[test]
    fn scanner_counts_deliveries_split_anywhere() {
        let now = 10_000_000_000_000u64;
        let stream = deliveries(20, 5000, now - 250_000);
        for cut in [1usize, 7, 100, 999, 4096, 10_000] {
            let mut scanner = DeliveryScanner::default();
            let mut lat = Vec::new();
            let mut buf = Vec::new();
            let mut delivered = 0;
            for piece in stream.chunks(cut) {
                buf.extend_from_slice(piece);
                let s = scanner.scan(&buf, now, &mut lat).unwrap();
                buf.drain(..s.consumed);
                delivered += s.delivered;
            }
            assert!(buf.is_empty());
            assert_eq!(delivered, 20, "cut {cut}");
            assert_eq!(scanner.last_tag, 20);
            assert_eq!(lat, vec![250; 20]);
        }
    }

    #[test]
    fn scanner_counts_empty_and_unstamped_bodies() {
        let mut scanner = DeliveryScanner::default();
        let mut lat = Vec::new();
        let mut stream = deliveries(3, 0, 0);
        stream.extend(deliveries(2, 4, 0));
        let s = scanner.scan(&stream, 1, &mut lat).unwrap();
        assert_eq!(s.delivered, 5);
        assert_eq!(s.consumed, stream.len());
        assert!(lat.is_empty());
    }

    #[test]
    fn scanner_ignores_implausible_stamps() {
        let now = 10_000_000_000_000u64;
        let mut scanner = DeliveryScanner::default();
        let mut lat = Vec::new();
        let stream = deliveries(1, 16, now + 5_000_000_000);
        assert_eq!(scanner.scan(&stream, now, &mut lat).unwrap().delivered, 1);
        let stream = deliveries(1, 16, 1);
        assert_eq!(scanner.scan(&stream, now, &mut lat).unwrap().delivered, 1);
        assert!(lat.is_empty());
    }

    #[test]
    fn scanner_reports_a_channel_close_as_an_error() {
        let mut out = Vec::new();
        encode_method_frame(
            &mut out,
            1,
            &Method::ChannelClose(warren_core::codec::ChannelClose {
                reply_code: 404,
                reply_text: ShortStr::from("NOT_FOUND - no queue 'x' in vhost '/'"),
                class_id: 60,
                method_id: 20,
            }),
        );
        let err = DeliveryScanner::default()
            .scan(&out, 0, &mut Vec::new())
            .unwrap_err();
        assert!(err.to_string().contains("404 NOT_FOUND"), "{err}");
    }

    #[test]
    fn decoys_never_match_the_bench_routing_key() {
        use warren_core::broker::topic::topic_matches;
        for i in 1..2000 {
            let d = decoy_binding_key(i, "perf");
            assert!(!topic_matches(&d, "perf.key.0"), "{d}");
        }
        assert!(topic_matches("perf.key.*", "perf.key.0"));
    }

    #[test]
    fn routing_keys_follow_queue_and_exchange() {
        let args = crate::PerfCli::try_parse_from([
            "warren-perf",
            "throughput",
            "--queue",
            "q",
            "--queues",
            "3",
        ])
        .unwrap();
        let crate::PerfCommand::Throughput(a) = args.command else {
            panic!()
        };
        let qs = a.queue_names();
        assert_eq!(qs, ["q-1", "q-2", "q-3"]);
        assert_eq!(a.routing_key_for(4, &qs), "q-2");
        let mut b = a.clone();
        b.exchange = "fan".into();
        assert_eq!(b.routing_key_for(4, &qs), "q-1");
        b.routing_key = Some("rk".into());
        assert_eq!(b.routing_key_for(4, &qs), "rk");
        assert_eq!(b.binding_key(&qs), "rk");
    }

    use clap::Parser;
}
