//! Memory scenarios: the broker's resident memory (`VmRSS` of `/proc/PID/status`) before and
//! after opening idle connections, declaring idle queues, or queueing messages nobody consumes.
//!
//! Each scenario reads RSS, does its thing, waits `--settle` seconds for the broker to finish
//! whatever it does lazily, reads RSS again and divides the difference by the count. It then
//! undoes what it did (closes connections; the queues are exclusive, so closing the connection
//! deletes them and their messages).

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use clap::Args;
use tokio::task::JoinSet;
use warren_core::codec::{ConfirmSelect, Method, QueueDeclare, ShortStr};

use crate::client::Conn;
use crate::procfs::{raise_nofile_limit, rss_bytes};
use crate::throughput::PublishTemplate;
use crate::uri::AmqpUri;

/// Options of `connection-count`.
#[derive(Args, Debug, Clone)]
pub struct ConnectionCountArgs {
    #[arg(long, default_value = crate::DEFAULT_URI)]
    pub uri: String,
    /// Broker process id (RSS is read from /proc/PID/status).
    #[arg(long)]
    pub pid: u32,
    /// Connections to open.
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    /// Channels to open on each connection.
    #[arg(long, default_value_t = 1)]
    pub channels: u16,
    /// Seconds to wait before the second RSS reading.
    #[arg(long, default_value_t = 2.0)]
    pub settle: f64,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Options of `queue-count`.
#[derive(Args, Debug, Clone)]
pub struct QueueCountArgs {
    #[arg(long, default_value = crate::DEFAULT_URI)]
    pub uri: String,
    /// Broker process id (RSS is read from /proc/PID/status).
    #[arg(long)]
    pub pid: u32,
    /// Queues to declare (exclusive, on one connection).
    #[arg(long, default_value_t = 10_000)]
    pub queues: usize,
    /// Seconds to wait before the second RSS reading.
    #[arg(long, default_value_t = 2.0)]
    pub settle: f64,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Options of `backlog`.
#[derive(Args, Debug, Clone)]
pub struct BacklogArgs {
    #[arg(long, default_value = crate::DEFAULT_URI)]
    pub uri: String,
    /// Broker process id (RSS is read from /proc/PID/status).
    #[arg(long)]
    pub pid: u32,
    /// Messages to queue.
    #[arg(long, default_value_t = 1_000_000)]
    pub messages: u64,
    /// Body size in bytes.
    #[arg(short = 's', long, default_value_t = 16)]
    pub size: usize,
    /// Persistent messages to a durable queue (otherwise transient to an exclusive queue).
    #[arg(long)]
    pub persistent: bool,
    /// Queue name.
    #[arg(long, default_value = "warren-perf-backlog")]
    pub queue: String,
    /// Seconds to wait before the second RSS reading.
    #[arg(long, default_value_t = 2.0)]
    pub settle: f64,
    /// Leave the durable queue and its messages behind (to time a restart's recovery).
    #[arg(long, requires = "persistent")]
    pub keep: bool,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// A before/after RSS reading over `count` things.
#[derive(Debug, Clone)]
pub struct MemoryReport {
    pub scenario: &'static str,
    pub unit: &'static str,
    pub count: u64,
    pub rss_before: u64,
    pub rss_after: u64,
    pub setup_secs: f64,
}

impl MemoryReport {
    pub fn per_item(&self) -> f64 {
        self.rss_after.saturating_sub(self.rss_before) as f64 / self.count.max(1) as f64
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "scenario": self.scenario, "unit": self.unit, "count": self.count,
            "rss_before": self.rss_before, "rss_after": self.rss_after,
            "bytes_per_item": self.per_item(), "setup_secs": self.setup_secs,
        })
    }

    pub fn text(&self) -> String {
        let mib = |b: u64| b as f64 / (1024.0 * 1024.0);
        format!(
            "{}: {} {}s in {:.2} s; broker RSS {:.1} MiB -> {:.1} MiB; {:.0} bytes per {}\n",
            self.scenario,
            self.count,
            self.unit,
            self.setup_secs,
            mib(self.rss_before),
            mib(self.rss_after),
            self.per_item(),
            self.unit
        )
    }

    fn print(&self, json: bool) {
        if json {
            println!("{}", self.to_json());
        } else {
            print!("{}", self.text());
        }
    }
}

async fn settle(secs: f64) {
    tokio::time::sleep(Duration::from_secs_f64(secs.max(0.0))).await;
}

/// `connection-count`.
pub async fn connection_count(args: ConnectionCountArgs) -> Result<()> {
    let report = run_connection_count(&args).await?;
    report.print(args.json);
    Ok(())
}

pub async fn run_connection_count(args: &ConnectionCountArgs) -> Result<MemoryReport> {
    let uri = AmqpUri::parse(&args.uri)?;
    let limit = raise_nofile_limit();
    if (limit as usize) < args.connections + 64 {
        bail!(
            "open-file limit {limit} is too low for {} connections (raise it with ulimit -n)",
            args.connections
        );
    }
    let before = rss_bytes(args.pid)?;
    let t = Instant::now();
    let mut conns = Vec::with_capacity(args.connections);
    // Open 50 at a time: fast, without a thundering herd on the accept queue.
    for chunk_start in (0..args.connections).step_by(50) {
        let end = (chunk_start + 50).min(args.connections);
        let mut opening = JoinSet::new();
        for i in chunk_start..end {
            let uri = uri.clone();
            let channels = args.channels;
            opening.spawn(async move {
                let mut c = Conn::connect(&uri, &format!("warren-perf idle {i}")).await?;
                for ch in 1..=channels {
                    c.open_channel(ch).await?;
                }
                anyhow::Ok(c)
            });
        }
        while let Some(c) = opening.join_next().await {
            conns.push(c??);
        }
    }
    let setup_secs = t.elapsed().as_secs_f64();
    settle(args.settle).await;
    let after = rss_bytes(args.pid)?;
    let mut closing = JoinSet::new();
    for c in conns {
        closing.spawn(c.close());
    }
    while closing.join_next().await.is_some() {}
    Ok(MemoryReport {
        scenario: "connection-count",
        unit: "connection",
        count: args.connections as u64,
        rss_before: before,
        rss_after: after,
        setup_secs,
    })
}

/// `queue-count`.
pub async fn queue_count(args: QueueCountArgs) -> Result<()> {
    let report = run_queue_count(&args).await?;
    report.print(args.json);
    Ok(())
}

pub async fn run_queue_count(args: &QueueCountArgs) -> Result<MemoryReport> {
    let uri = AmqpUri::parse(&args.uri)?;
    let mut conn = Conn::connect(&uri, "warren-perf queue-count").await?;
    conn.open_channel(1).await?;
    let before = rss_bytes(args.pid)?;
    let t = Instant::now();
    let tag = std::process::id();
    let declares = (0..args.queues).map(|i| QueueDeclare {
        queue: ShortStr::from(format!("warren-perf-idle-{tag}-{i}")),
        exclusive: true,
        ..QueueDeclare::default()
    });
    for reply in conn.pipeline(1, declares, 500).await? {
        if !matches!(reply, Method::QueueDeclareOk(_)) {
            bail!("expected queue.declare-ok, got {}", reply.name());
        }
    }
    let setup_secs = t.elapsed().as_secs_f64();
    settle(args.settle).await;
    let after = rss_bytes(args.pid)?;
    conn.close().await?;
    Ok(MemoryReport {
        scenario: "queue-count",
        unit: "queue",
        count: args.queues as u64,
        rss_before: before,
        rss_after: after,
        setup_secs,
    })
}

/// `backlog`.
pub async fn backlog(args: BacklogArgs) -> Result<()> {
    let report = run_backlog(&args).await?;
    report.print(args.json);
    Ok(())
}

pub async fn run_backlog(args: &BacklogArgs) -> Result<MemoryReport> {
    let uri = AmqpUri::parse(&args.uri)?;
    let mut conn = Conn::connect(&uri, "warren-perf backlog").await?;
    conn.open_channel(1).await?;
    let declare = QueueDeclare {
        queue: ShortStr::from(args.queue.as_str()),
        durable: args.persistent,
        exclusive: !args.persistent,
        ..QueueDeclare::default()
    };
    match conn.rpc(1, declare).await? {
        Method::QueueDeclareOk(ok) if ok.message_count == 0 => {}
        Method::QueueDeclareOk(ok) => bail!(
            "queue {} already holds {} messages: purge or delete it first",
            args.queue,
            ok.message_count
        ),
        m => bail!("expected queue.declare-ok, got {}", m.name()),
    }
    match conn.rpc(1, ConfirmSelect { nowait: false }).await? {
        Method::ConfirmSelectOk(_) => {}
        m => bail!("expected confirm.select-ok, got {}", m.name()),
    }
    let before = rss_bytes(args.pid)?;
    let t = Instant::now();
    // Publish with up to 10k unconfirmed, counting confirms as they come.
    let template = PublishTemplate::new(
        1,
        "",
        &args.queue,
        args.size,
        args.persistent,
        conn.frame_max,
    );
    publish_confirmed(&mut conn, &template, args.messages, 10_000).await?;
    let setup_secs = t.elapsed().as_secs_f64();
    settle(args.settle).await;
    let after = rss_bytes(args.pid)?;
    if args.persistent && !args.keep {
        conn.rpc(
            1,
            warren_core::codec::QueueDelete {
                queue: ShortStr::from(args.queue.as_str()),
                ..Default::default()
            },
        )
        .await?;
    }
    conn.close().await?;
    Ok(MemoryReport {
        scenario: "backlog",
        unit: "message",
        count: args.messages,
        rss_before: before,
        rss_after: after,
        setup_secs,
    })
}

/// Publishes `total` copies of `template` on channel 1 (in confirm mode) with at most `window`
/// unconfirmed, and returns once all are confirmed.
async fn publish_confirmed(
    conn: &mut Conn,
    template: &PublishTemplate,
    total: u64,
    window: u64,
) -> Result<()> {
    use bytes::Buf;
    let per_write = (64 * 1024 / template.bytes.len()).max(1) as u64;
    let mut sent = 0u64;
    let mut acked = 0u64;
    while acked < total {
        while sent < total && sent - acked < window {
            let n = per_write.min(total - sent).min(window - (sent - acked));
            conn.wbuf.clear();
            template.append(&mut conn.wbuf, n as usize, crate::throughput::wall_ns());
            conn.flush().await?;
            sent += n;
        }
        conn.read_more().await?;
        let mut pos = 0;
        while let Some((kind, channel, payload, len)) =
            crate::client::peek_frame(&conn.rbuf[pos..])?
        {
            pos += len;
            if kind != warren_core::codec::FRAME_METHOD {
                continue;
            }
            match crate::client::method_ids(payload) {
                (60, 80) => {
                    let (Some(tag), Some(bits)) = (payload.get(4..12), payload.get(12)) else {
                        bail!("truncated basic.ack from the broker");
                    };
                    let tag = u64::from_be_bytes(tag.try_into()?);
                    acked = if bits & 1 == 1 {
                        acked.max(tag)
                    } else {
                        acked + 1
                    };
                }
                (60, 120) => bail!("the broker nacked a publish"),
                _ => {
                    let m = crate::client::decode_method(payload)?;
                    if let Some(e) = crate::client::close_error(channel, &m) {
                        return Err(e);
                    }
                }
            }
        }
        conn.rbuf.advance(pos);
    }
    Ok(())
}
