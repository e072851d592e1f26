//! Harness for Warren's end-to-end tests with the [lapin] AMQP 0-9-1 client.
//!
//! Each test starts a [`Broker`] and runs its body inside [`within`], so that it finishes in
//! bounded time whatever the broker does. Which broker runs:
//!
//! * `AMQP_URL=amqp://guest:guest@127.0.0.1:5672/%2f`: an already running broker (this is how the
//!   suite is validated against RabbitMQ). Names are made unique per test, so runs can overlap.
//! * otherwise a fresh `warren server --amqp 127.0.0.1:<free port>` per test, from `WARREN_BIN`
//!   or, if that is unset, the `warren` binary of the same cargo profile as the test binary
//!   (`target/debug/warren`: build it first with `cargo build -p warren`). Its stdout and stderr
//!   go to a log file whose path and tail are printed if the test fails; it is killed on drop.
//!
//! Every wait is bounded: a broker that is missing, slow or silent makes the tests fail with a
//! message that says which, never hang.

use std::fs::File;
use std::future::Future;
use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_lite::StreamExt;
use lapin::message::{BasicGetMessage, Delivery};
use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, Consumer, ErrorKind};

pub use lapin;

/// Upper bound on one whole test body.
pub const TEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Upper bound on one step that should be quick: connecting, a delivery arriving.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a started `warren` may take before its port accepts connections.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

/// The broker under test; see the crate docs for how it is chosen. Kills a started `warren` on
/// drop.
pub struct Broker {
    url: String,
    process: Option<Child>,
    log_path: Option<PathBuf>,
}

impl Broker {
    /// Uses `AMQP_URL` if set, otherwise starts `warren` and waits until it accepts connections.
    ///
    /// Panics with an explanation if the broker cannot be reached or started.
    pub fn start() -> Broker {
        match std::env::var("AMQP_URL") {
            Ok(url) if !url.is_empty() => Self::external(url),
            _ => Self::spawn(),
        }
    }

    fn external(url: String) -> Broker {
        let uri: lapin::uri::AMQPUri = url
            .parse()
            .unwrap_or_else(|e| panic!("AMQP_URL={url:?} is not an AMQP URI: {e}"));
        let authority = &uri.authority;
        let reachable = (authority.host.as_str(), authority.port)
            .to_socket_addrs()
            .map(|addrs| {
                addrs
                    .into_iter()
                    .any(|a| TcpStream::connect_timeout(&a, Duration::from_secs(2)).is_ok())
            })
            .unwrap_or(false);
        assert!(
            reachable,
            "AMQP_URL={url}: nothing accepts connections on {}:{}",
            authority.host, authority.port
        );
        Broker {
            url,
            process: None,
            log_path: None,
        }
    }

    fn spawn() -> Broker {
        let binary = warren_binary();
        assert!(
            binary.is_file(),
            "no warren binary at {}: build it with `cargo build -p warren`, or set WARREN_BIN \
             to a warren binary, or AMQP_URL to a running broker",
            binary.display()
        );
        let port = free_port();
        let log_path = std::env::temp_dir().join(format!(
            "warren-e2e-{}-{}.log",
            std::process::id(),
            unique_suffix()
        ));
        let log = File::create(&log_path)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log_path.display()));
        let log_err = log.try_clone().expect("clone log file handle");
        let data_dir = log_path.with_extension("data");
        let child = Command::new(&binary)
            .args(["server", "--amqp", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(&data_dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
        let mut broker = Broker {
            url: format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
            process: Some(child),
            log_path: Some(log_path),
        };
        broker.wait_until_listening(SocketAddr::from(([127, 0, 0, 1], port)));
        broker
    }

    fn wait_until_listening(&mut self, addr: SocketAddr) {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            if let Some(process) = self.process.as_mut() {
                if let Ok(Some(status)) = process.try_wait() {
                    panic!("warren exited during startup with {status}");
                }
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "warren did not accept connections on {addr} within {STARTUP_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The `amqp://` URL of the broker.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The log file of a started `warren` (`None` with `AMQP_URL`).
    pub fn log_path(&self) -> Option<&Path> {
        self.log_path.as_deref()
    }

    /// Opens a connection, or panics saying why within [`STEP_TIMEOUT`].
    pub async fn connect(&self) -> Connection {
        let connecting = Connection::connect(&self.url, ConnectionProperties::default());
        match tokio::time::timeout(STEP_TIMEOUT, connecting).await {
            Ok(Ok(connection)) => connection,
            Ok(Err(e)) => panic!("cannot connect to {}: {e}", self.url),
            Err(_) => panic!(
                "connecting to {} did not finish within {STEP_TIMEOUT:?}",
                self.url
            ),
        }
    }

    /// Opens a connection and one channel on it.
    pub async fn channel(&self) -> (Connection, Channel) {
        let connection = self.connect().await;
        let channel = connection
            .create_channel()
            .await
            .expect("open a channel on a fresh connection");
        (connection, channel)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill();
            let _ = process.wait();
        }
        if let Some(path) = &self.log_path {
            if std::thread::panicking() {
                eprintln!(
                    "--- warren log: {} (last lines) ---\n{}\n--- end of warren log ---",
                    path.display(),
                    tail(path, 60)
                );
            } else {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

/// `WARREN_BIN`, else `warren` beside the test binary's profile directory
/// (`target/<profile>/deps/<test>` → `target/<profile>/warren`).
fn warren_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("WARREN_BIN").filter(|p| !p.is_empty()) {
        return PathBuf::from(path);
    }
    let name = format!("warren{}", std::env::consts::EXE_SUFFIX);
    if let Ok(exe) = std::env::current_exe() {
        if let Some(profile_dir) = exe.parent().and_then(Path::parent) {
            return profile_dir.join(name);
        }
    }
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/debug")
        .join(name)
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("find a free port on 127.0.0.1")
}

fn tail(path: &Path, lines: usize) -> String {
    let mut text = String::new();
    match File::open(path).and_then(|mut f| f.read_to_string(&mut text)) {
        Ok(_) => {
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(e) => format!("<cannot read {}: {e}>", path.display()),
    }
}

fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{}-{nanos}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A queue, exchange or consumer name that no other test or run uses.
pub fn unique_name(what: &str) -> String {
    format!("warren-e2e.{what}.{}", unique_suffix())
}

/// Runs a test body, failing the test if it takes longer than [`TEST_TIMEOUT`].
pub async fn within<F: Future>(body: F) -> F::Output {
    match tokio::time::timeout(TEST_TIMEOUT, body).await {
        Ok(output) => output,
        Err(_) => panic!("test did not finish within {TEST_TIMEOUT:?}"),
    }
}

/// Awaits one step, failing the test with `what` if it takes longer than [`STEP_TIMEOUT`].
pub async fn step<F: Future>(what: &str, fut: F) -> F::Output {
    match tokio::time::timeout(STEP_TIMEOUT, fut).await {
        Ok(output) => output,
        Err(_) => panic!("{what}: no answer within {STEP_TIMEOUT:?}"),
    }
}

/// Waits until `condition` holds, failing the test with `what` if it does not within
/// [`STEP_TIMEOUT`]. For client state that the client updates from a background task.
pub async fn eventually(what: &str, mut condition: impl FnMut() -> bool) {
    step(what, async {
        while !condition() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    })
    .await;
}

/// Declares a server-named exclusive queue and returns its name. It lives until its connection
/// closes (not auto-delete: cancelling a consumer must not delete it).
pub async fn temp_queue(channel: &Channel) -> String {
    let queue = channel
        .queue_declare(
            "".into(),
            QueueDeclareOptions {
                exclusive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("declare a server-named queue");
    assert!(
        !queue.name().as_str().is_empty(),
        "server-named queue came back with an empty name"
    );
    queue.name().as_str().to_owned()
}

/// The queue's message count, read with a passive declare.
pub async fn message_count(channel: &Channel, queue: &str) -> u32 {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("passive declare of {queue:?}: {e}"))
        .message_count()
}

/// The next delivery of `consumer`, failing the test if none comes within [`STEP_TIMEOUT`].
pub async fn next_delivery(consumer: &mut Consumer) -> Delivery {
    match tokio::time::timeout(STEP_TIMEOUT, consumer.next()).await {
        Ok(Some(Ok(delivery))) => delivery,
        Ok(Some(Err(e))) => panic!("consumer {} failed: {e}", consumer.tag()),
        Ok(None) => panic!("consumer {} was cancelled", consumer.tag()),
        Err(_) => panic!(
            "consumer {}: no delivery within {STEP_TIMEOUT:?}",
            consumer.tag()
        ),
    }
}

/// Asserts that `consumer` gets nothing for `quiet`.
pub async fn assert_no_delivery(consumer: &mut Consumer, quiet: Duration) {
    if let Ok(next) = tokio::time::timeout(quiet, consumer.next()).await {
        match next {
            Some(Ok(d)) => panic!(
                "unexpected delivery (tag {}, body {:?})",
                d.delivery_tag,
                String::from_utf8_lossy(&d.data)
            ),
            other => panic!("consumer ended unexpectedly: {other:?}"),
        }
    }
}

/// `basic.get` with no-ack, failing the test on error.
pub async fn get(channel: &Channel, queue: &str) -> Option<BasicGetMessage> {
    channel
        .basic_get(queue.into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap_or_else(|e| panic!("basic.get on {queue:?}: {e}"))
}

/// Drains `queue` with no-ack `basic.get`s and returns the bodies in order.
pub async fn drain_bodies(channel: &Channel, queue: &str) -> Vec<Vec<u8>> {
    let mut bodies = Vec::new();
    while let Some(message) = get(channel, queue).await {
        bodies.push(message.delivery.data);
    }
    bodies
}

/// The reply code and text of an error that the broker sent (channel.close or
/// connection.close), or `None` for any other error.
pub fn amqp_error(error: &lapin::Error) -> Option<(u16, String)> {
    match error.kind() {
        ErrorKind::ProtocolError(e) => Some((e.get_id(), e.get_message().as_str().to_owned())),
        _ => None,
    }
}
