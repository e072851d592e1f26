//! `warren-perf`: an AMQP 0-9-1 load tool in the manner of RabbitMQ PerfTest and lavinmqperf,
//! built on Warren's own codec so that it is not the bottleneck.
//!
//! Scenarios (subcommands):
//! - `throughput`: producers → exchange/queues → consumers; prints publish and consume rates
//!   each second, then averages, consumer latency percentiles and (with `--pid`) the broker's
//!   CPU time per message.
//! - `connection-count`, `queue-count`, `backlog`: open idle connections, declare idle queues
//!   or queue messages, and report the broker's resident memory per connection, queue or
//!   message, read from `/proc/PID/status`.
//!
//! The binary `warren-perf` calls [`main_with_args`]. `warren perf ...` can either pass its
//! arguments from `perf` on (`main_with_args(std::env::args().skip(1))`: the first item is
//! taken as the program name), or embed [`PerfCommand`] as a clap subcommand
//! (`Perf { #[command(subcommand)] command: warren_perf::PerfCommand }`) and call [`run`].
//! Both build their own tokio runtime: call them outside any runtime.

pub mod client;
pub mod memory;
pub mod procfs;
pub mod rate;
pub mod stats;
pub mod throughput;
pub mod uri;

use anyhow::Result;
use clap::{Parser, Subcommand};

pub use memory::{BacklogArgs, ConnectionCountArgs, QueueCountArgs};
pub use throughput::ThroughputArgs;

/// Default broker URI: RabbitMQ's defaults.
pub const DEFAULT_URI: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// The `warren-perf` command line.
#[derive(Parser, Debug)]
#[command(
    name = "warren-perf",
    version,
    about = "AMQP 0-9-1 load tool: throughput, latency, memory per connection/queue/message"
)]
pub struct PerfCli {
    #[command(subcommand)]
    pub command: PerfCommand,
}

/// One scenario.
#[derive(Subcommand, Debug, Clone)]
pub enum PerfCommand {
    /// Producers publish, consumers consume: rates per second, averages, latency percentiles.
    Throughput(ThroughputArgs),
    /// Opens idle connections and reports the broker's resident memory per connection.
    ConnectionCount(ConnectionCountArgs),
    /// Declares idle queues and reports the broker's resident memory per queue.
    QueueCount(QueueCountArgs),
    /// Queues messages nobody consumes and reports the broker's resident memory per message.
    Backlog(BacklogArgs),
}

/// Parses `args` (the first item is the program name, as in `std::env::args()`) and runs the
/// scenario on a fresh tokio runtime.
pub fn main_with_args(args: impl IntoIterator<Item = String>) -> Result<()> {
    let cli = PerfCli::try_parse_from(args).unwrap_or_else(|e| e.exit());
    run(cli.command)
}

/// Runs one scenario on a fresh tokio runtime (not from inside another runtime).
pub fn run(command: PerfCommand) -> Result<()> {
    let threads = match &command {
        PerfCommand::Throughput(a) => a.threads,
        _ => 1,
    };
    let runtime = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(async move {
        match command {
            PerfCommand::Throughput(a) => throughput::main(a).await,
            PerfCommand::ConnectionCount(a) => memory::connection_count(a).await,
            PerfCommand::QueueCount(a) => memory::queue_count(a).await,
            PerfCommand::Backlog(a) => memory::backlog(a).await,
        }
    })
}
