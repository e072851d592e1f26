//! `warren`: the AMQP 0-9-1 broker binary.

mod memory;

use std::net::SocketAddr;

use clap::{Parser, Subcommand};
use tokio::net::TcpListener;
use tracing::info;
use warren_core::auth::StaticUsers;
use warren_core::storage::MemoryStorage;
use warren_core::{Broker, BrokerConfig, ConnectionConfig};
use warren_transports::{tcp, Hub};

#[derive(Parser)]
#[command(
    name = "warren",
    version,
    about = "Warren: an AMQP 0-9-1 message broker",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    /// Bare `warren` runs the server with these options.
    #[command(flatten)]
    server: ServerArgs,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run the broker (the default when no subcommand is given).
    Server(ServerArgs),
}

#[derive(clap::Args, Clone)]
struct ServerArgs {
    /// Address for AMQP over TCP.
    #[arg(long, default_value = "0.0.0.0:5672")]
    amqp: SocketAddr,
    /// Heartbeat interval offered to clients, in seconds (0 disables).
    #[arg(long, default_value_t = 60)]
    heartbeat: u16,
    /// Largest frame offered to clients, in bytes.
    #[arg(long, default_value_t = 131_072)]
    frame_max: u32,
    /// Most channels per connection.
    #[arg(long, default_value_t = 2047)]
    channel_max: u16,
    /// Pause publishers while resident memory exceeds this fraction of physical memory.
    #[arg(long, default_value_t = 0.4)]
    vm_memory_high_watermark: f64,
    /// The same limit in bytes; overrides the fraction.
    #[arg(long)]
    vm_memory_high_watermark_absolute: Option<u64>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = match cli.command {
        Some(Cmd::Server(args)) => args,
        None => cli.server,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(serve(args))
}

async fn serve(args: ServerArgs) -> anyhow::Result<()> {
    let broker = Broker::new(
        BrokerConfig::default(),
        Box::new(StaticUsers::with_guest()),
        Box::new(MemoryStorage::new()),
    );
    let hub = Hub::spawn(broker);
    let config = ConnectionConfig {
        heartbeat: args.heartbeat,
        frame_max: args.frame_max,
        channel_max: args.channel_max,
        ..ConnectionConfig::default()
    };
    let listener = TcpListener::bind(args.amqp).await?;
    info!(version = env!("CARGO_PKG_VERSION"), "warren starting");
    let watermark = match args.vm_memory_high_watermark_absolute {
        Some(bytes) => memory::Watermark::Absolute(bytes),
        None => memory::Watermark::Relative(args.vm_memory_high_watermark),
    };
    tokio::spawn(memory::monitor(
        hub.clone(),
        watermark,
        std::time::Duration::from_millis(500),
    ));
    let server = tokio::spawn(tcp::serve(listener, hub, config));
    shutdown_signal().await;
    info!("shutting down");
    server.abort();
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
