//! `warren`: the AMQP 0-9-1 broker binary.

mod alarms;
mod ctl;
mod disk;
mod memory;
mod trim;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use clap::{Parser, Subcommand};
use tokio::net::TcpListener;
use tracing::info;
use warren_core::{Broker, BrokerConfig, ConnectionConfig};
use warren_transports::{tcp, tls, ws, Hub, WsConfig};

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
    /// The load tool (PerfTest-style): throughput, connection-count, queue-count, backlog.
    Perf {
        #[command(subcommand)]
        command: warren_perf::PerfCommand,
    },
    /// Operate a running node, as rabbitmqctl does (`warren ctl help` lists the commands).
    #[command(disable_help_flag = true)]
    Ctl {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(clap::Args, Clone)]
struct ServerArgs {
    /// Run in the background (as `rabbitmq-server -detached`): returns once the node
    /// listens; its log goes to DATA_DIR/warren.log, its pid to DATA_DIR/warren.pid.
    /// `warren ctl stop` stops it.
    #[arg(long)]
    detached: bool,
    /// Users who may log in only from this machine (RabbitMQ's `loopback_users`), comma
    /// separated; `none` lets every user log in from anywhere.
    #[arg(long, value_name = "USERS", default_value = "guest")]
    loopback_users: String,
    /// Address for AMQP over TCP.
    #[arg(long, default_value = "0.0.0.0:5672")]
    amqp: SocketAddr,
    /// Address for AMQP over WebSocket (`ws://ADDR/<any path>`, subprotocol `amqp` optional).
    #[arg(long, value_name = "ADDR")]
    ws: Option<SocketAddr>,
    /// Address for AMQP over TLS (amqps, usually port 5671); needs --tls-cert and --tls-key.
    #[arg(long, value_name = "ADDR", requires_all = ["tls_cert", "tls_key"])]
    amqps: Option<SocketAddr>,
    /// Address for AMQP over WebSocket over TLS (`wss://`); needs --tls-cert and --tls-key.
    #[arg(long, value_name = "ADDR", requires_all = ["tls_cert", "tls_key"])]
    wss: Option<SocketAddr>,
    /// PEM certificate chain (leaf first) for --amqps and --wss.
    #[arg(long, value_name = "PEM", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1) for --amqps and --wss.
    #[arg(long, value_name = "PEM", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Browser origin allowed on the WebSocket listeners, e.g. https://app.example
    /// (repeatable). Without it any origin may connect; with it, others get HTTP 403.
    #[arg(long, value_name = "ORIGIN")]
    ws_allowed_origin: Vec<String>,
    /// Largest WebSocket message accepted, in bytes (larger ones are closed with 1009). Some
    /// clients send a whole publish as one message, so keep it above the largest body.
    #[arg(long, value_name = "BYTES", default_value_t = WsConfig::default().max_message_size)]
    ws_max_message_size: usize,
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
    /// Past this fraction of the watermark, queues that are not durable also leave what lies
    /// past their window on disk (RabbitMQ's vm_memory_high_watermark_paging_ratio), so
    /// memory drops before publishers must be paused.
    #[arg(long, default_value_t = 0.5)]
    vm_memory_high_watermark_paging_ratio: f64,
    /// Pause publishers while the data directory's file system has less free space than
    /// this, in bytes (RabbitMQ's disk_free_limit).
    #[arg(long, value_name = "BYTES", default_value_t = disk::DEFAULT_LIMIT)]
    disk_free_limit: u64,
    /// Where durable exchanges, queues and bindings and persistent messages are kept.
    #[arg(long, env = "WARREN_DATA_DIR", default_value = "warren-data")]
    data_dir: PathBuf,
    /// Start even if the store has damaged records, dropping them (how many is logged).
    /// Without it, a damaged record stops the start and names the file and offset.
    #[arg(long)]
    skip_damaged_records: bool,
    /// Size at which a segment file of the store is closed and the next one begun.
    #[arg(long, value_name = "BYTES", default_value_t = warren_store::Options::default().segment_bytes)]
    segment_bytes: u64,
    /// Messages of a queue kept in memory: beyond them, a durable queue's messages stay on
    /// disk until consumers reach them.
    #[arg(long, value_name = "MESSAGES", default_value_t = warren_core::broker::Window::default().messages)]
    queue_window: usize,
    /// Publisher flow control: past this many messages in a queue that a consumer is taking
    /// from, its publishers are read only as fast as the consumers keep up (0 turns it off).
    #[arg(long, value_name = "MESSAGES", default_value_t = BrokerConfig::default().flow_backlog)]
    flow_backlog: usize,
    /// Body bytes of a queue kept in memory (the window ends at whichever limit comes first).
    #[arg(long, value_name = "BYTES", default_value_t = warren_core::broker::Window::default().bytes)]
    queue_window_bytes: u64,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(Cmd::Ctl { args }) = cli.command {
        std::process::exit(ctl::client::run(args));
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = match cli.command {
        Some(Cmd::Server(args)) if args.detached => return detach(&args),
        None if cli.server.detached => return detach(&cli.server),
        Some(Cmd::Server(args)) => args,
        // The load tool runs its own runtime, sized for the scenario.
        Some(Cmd::Perf { command }) => return warren_perf::run(command),
        Some(Cmd::Ctl { .. }) => unreachable!("handled above"),
        None => cli.server,
    };
    let (synced_tx, synced) = tokio::sync::watch::channel(0u64);
    let store = open_store(&args, synced_tx)?;
    let mut broker = Broker::new(
        BrokerConfig {
            queue_window: queue_window(&args),
            flow_backlog: args.flow_backlog,
            ..BrokerConfig::default()
        },
        Box::new(store.storage),
    );
    broker.set_loopback_users(
        args.loopback_users
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty() && *u != "none")
            .map(Into::into)
            .collect(),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let served = runtime.block_on(serve(args, broker, synced));
    // Dropping the runtime drops the broker and its store, whose last writes the writer
    // syncs before it ends: wait for that before the process goes.
    drop(runtime);
    if store.writer.join().is_err() {
        anyhow::bail!("the store's writer thread failed");
    }
    served
}

/// Opens the data directory, replaying what a previous run left there.
/// The in-memory window of a queue, for the broker and for what the store recovers.
fn queue_window(args: &ServerArgs) -> warren_core::broker::Window {
    warren_core::broker::Window {
        messages: args.queue_window.max(1),
        bytes: args.queue_window_bytes.max(1),
    }
}

fn open_store(
    args: &ServerArgs,
    synced: tokio::sync::watch::Sender<u64>,
) -> anyhow::Result<warren_store::Opened> {
    let options = warren_store::Options {
        segment_bytes: args.segment_bytes,
        skip_damaged: args.skip_damaged_records,
        queue_window: queue_window(args),
    };
    let started = std::time::Instant::now();
    let on_synced = Box::new(move |seq| {
        let _ = synced.send(seq);
    });
    let opened = warren_store::open(&args.data_dir, &options, on_synced)
        .with_context(|| format!("opening the data directory {}", args.data_dir.display()))?;
    let r = &opened.report;
    info!(
        dir = %args.data_dir.display(),
        segments = r.segments,
        records = r.records,
        bytes = r.bytes,
        messages = r.messages,
        ms = started.elapsed().as_millis() as u64,
        "store recovered"
    );
    if let Some((file, cut)) = &r.torn_tail {
        tracing::warn!(file = %file.display(), bytes = cut, "cut a torn last record (the previous run stopped mid-write)");
    }
    if r.skipped > 0 {
        tracing::warn!(
            skipped = r.skipped,
            "skipped damaged records (--skip-damaged-records)"
        );
    }
    Ok(opened)
}

async fn serve(
    args: ServerArgs,
    broker: Broker,
    synced: tokio::sync::watch::Receiver<u64>,
) -> anyhow::Result<()> {
    let hub = Hub::spawn_with_store(broker, Some(synced));
    let config = ConnectionConfig {
        heartbeat: args.heartbeat,
        frame_max: args.frame_max,
        channel_max: args.channel_max,
        ..ConnectionConfig::default()
    };
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => {
            if args.amqps.is_none() && args.wss.is_none() {
                anyhow::bail!("--tls-cert and --tls-key need a TLS listener: --amqps or --wss");
            }
            Some(tls::acceptor(cert, key).context("loading the TLS certificate and key")?)
        }
        _ => None,
    };
    let ws_config = Arc::new(WsConfig {
        max_message_size: args.ws_max_message_size,
        allowed_origins: args.ws_allowed_origin.clone(),
        ..WsConfig::default()
    });
    let bind = |addr: SocketAddr, what: &'static str| async move {
        TcpListener::bind(addr)
            .await
            .with_context(|| format!("binding the {what} listener to {addr}"))
    };
    let listener = bind(args.amqp, "AMQP").await?;
    let ws_listener = match args.ws {
        Some(addr) => Some(bind(addr, "WebSocket").await?),
        None => None,
    };
    let amqps_listener = match args.amqps {
        Some(addr) => Some(bind(addr, "AMQPS").await?),
        None => None,
    };
    let wss_listener = match args.wss {
        Some(addr) => Some(bind(addr, "WebSocket TLS").await?),
        None => None,
    };
    info!(version = env!("CARGO_PKG_VERSION"), "warren starting");
    let watermark = match args.vm_memory_high_watermark_absolute {
        Some(bytes) => memory::Watermark::Absolute(bytes),
        None => memory::Watermark::Relative(args.vm_memory_high_watermark),
    };
    let alarms = alarms::Alarms::new(hub.clone());
    tokio::spawn(memory::monitor(
        alarms.clone(),
        hub.clone(),
        watermark,
        args.vm_memory_high_watermark_paging_ratio,
        std::time::Duration::from_millis(500),
    ));
    tokio::spawn(trim::give_back(std::time::Duration::from_secs(1)));
    tokio::spawn(disk::monitor(
        alarms,
        args.data_dir.clone(),
        args.disk_free_limit,
        std::time::Duration::from_millis(1000),
    ));
    let control = ctl::bind(&args.data_dir)?;
    let control_path = ctl::socket_path(&args.data_dir);
    let pid_path = ctl::pid_path(&args.data_dir);
    std::fs::write(&pid_path, format!("{}\n", std::process::id()))
        .with_context(|| format!("writing {}", pid_path.display()))?;
    let stop = Arc::new(tokio::sync::Notify::new());
    let mut listeners = vec![format!("amqp {}", args.amqp)];
    for (what, addr) in [("ws", args.ws), ("amqps", args.amqps), ("wss", args.wss)] {
        if let Some(addr) = addr {
            listeners.push(format!("{what} {addr}"));
        }
    }
    let node = ctl::Node {
        hub: hub.clone(),
        data_dir: args.data_dir.clone(),
        listeners,
        stop: stop.clone(),
    };
    let shutdown_hub = hub.clone();
    let mut servers = vec![
        tokio::spawn(tcp::serve(listener, hub.clone(), config.clone())),
        tokio::spawn(ctl::serve(control, node)),
    ];
    if let Some(l) = ws_listener {
        let ws = ws::serve(l, hub.clone(), config.clone(), ws_config.clone(), None);
        servers.push(tokio::spawn(ws));
    }
    if let (Some(l), Some(tls)) = (amqps_listener, &tls) {
        let amqps = tls::serve(l, tls.clone(), hub.clone(), config.clone());
        servers.push(tokio::spawn(amqps));
    }
    if let (Some(l), Some(tls)) = (wss_listener, &tls) {
        let wss = ws::serve(l, hub, config, ws_config, Some(tls.clone()));
        servers.push(tokio::spawn(wss));
    }
    tokio::select! {
        _ = shutdown_signal() => {}
        _ = stop.notified() => info!("stop requested by warren ctl"),
    }
    info!("shutting down");
    // Stop accepting, then close every connection as RabbitMQ does (320 CONNECTION_FORCED),
    // giving clients a moment to answer close-ok.
    for server in servers {
        server.abort();
    }
    shutdown_hub
        .shutdown(std::time::Duration::from_secs(2))
        .await;
    // `warren ctl` finds no socket, rather than one nobody answers.
    let _ = std::fs::remove_file(control_path);
    let _ = std::fs::remove_file(pid_path);
    Ok(())
}

/// `warren server --detached`: starts the same command without the flag as a process of its
/// own session, its output to DATA_DIR/warren.log, and returns once it answers `warren ctl`
/// (or fails, showing the end of its log).
fn detach(args: &ServerArgs) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating {}", args.data_dir.display()))?;
    let log_path = args.data_dir.join("warren.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("opening {}", log_path.display()))?;
    let argv: Vec<std::ffi::OsString> = std::env::args_os()
        .skip(1)
        .filter(|a| a != "--detached")
        .collect();
    let mut command = std::process::Command::new(std::env::current_exe()?);
    command
        .args(&argv)
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    // SAFETY: setsid is async-signal-safe; the child leaves our session and terminal.
    unsafe {
        command.pre_exec(|| {
            libc::setsid();
            Ok(())
        });
    }
    let mut child = command
        .spawn()
        .context("starting the server in the background")?;
    let socket = ctl::socket_path(&args.data_dir);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait()? {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            let tail: Vec<&str> = log.lines().rev().take(20).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            anyhow::bail!("the server exited ({status}):\n{}", tail.join("\n"));
        }
        if std::os::unix::net::UnixStream::connect(&socket).is_ok() {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            anyhow::bail!(
                "the server did not start listening within 60 s; see {}",
                log_path.display()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
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
