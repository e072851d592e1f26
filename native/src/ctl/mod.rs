//! `warren ctl`: the operator's command line, as `rabbitmqctl` is RabbitMQ's.
//!
//! The running server listens on a Unix socket in its data directory ([`SOCKET`]), readable
//! and writable by its owner only: like rabbitmqctl's Erlang cookie, access to the data
//! directory is the credential, and the local operator needs no password. Each connection
//! carries one request and one reply, a JSON line each ([`verbs::Request`], [`verbs::Reply`]);
//! the verb runs on the broker's hub ([`verbs::run`]) and the client prints the reply as
//! rabbitmqctl would ([`client`]).

pub mod client;
pub mod verbs;

use std::path::{Path, PathBuf};

use anyhow::Context;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use tokio::net::UnixListener;
use tokio::sync::Notify;
use tracing::warn;
use warren_core::access::SALT_BYTES;
use warren_transports::Hub;

/// The control socket's name in the data directory.
pub const SOCKET: &str = "ctl.sock";

pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET)
}

/// Binds the control socket (replacing one a previous run left), owner-only.
pub fn bind(data_dir: &Path) -> anyhow::Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let path = socket_path(data_dir);
    // The data directory is locked by this process (the store refuses a second one), so a
    // socket file there is a dead run's.
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path)
        .with_context(|| format!("binding the control socket {}", path.display()))?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .with_context(|| format!("restricting the control socket {}", path.display()))?;
    Ok(listener)
}

/// What the node tells `warren ctl status`, and how `warren ctl stop` stops it.
#[derive(Clone)]
pub struct Node {
    pub hub: Hub,
    pub data_dir: PathBuf,
    pub listeners: Vec<String>,
    /// Notified by `warren ctl stop`: the server shuts down as on SIGTERM.
    pub stop: Arc<Notify>,
}

/// Answers `warren ctl` until the task is dropped.
pub async fn serve(listener: UnixListener, node: Node) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let node = node.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(stream, node).await {
                warn!(error = %e, "a warren ctl request failed");
            }
        });
    }
}

async fn answer(stream: tokio::net::UnixStream, node: Node) -> anyhow::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read).read_line(&mut line).await?;
    if line.is_empty() {
        // A probe (`--detached` waiting for the node): it only wanted to connect.
        return Ok(());
    }
    let request: verbs::Request = serde_json::from_str(&line).context("a malformed request")?;
    let salt = random_salt();
    let reply = match request.verb.as_str() {
        "stop" => {
            node.stop.notify_one();
            verbs::Reply {
                info: Some(format!(
                    "Stopping and halting node {} ...",
                    node_name(&node)
                )),
                rows: vec![vec![serde_json::json!(std::process::id())]],
                columns: vec!["pid".into()],
                ..verbs::Reply::default()
            }
        }
        "status" => {
            let (name, listeners) = (node_name(&node), node.listeners.join(", "));
            let counts = node
                .hub
                .admin(|b| {
                    let queues = b.queues().count();
                    let messages: u64 = b.queues().map(|q| u64::from(q.message_count())).sum();
                    let vhosts = b.vhost_names().count();
                    (queues, messages, vhosts)
                })
                .await
                .context("the broker is shutting down")?;
            let rss = std::fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("VmRSS:"))
                        .map(|l| l["VmRSS:".len()..].trim().to_string())
                })
                .unwrap_or_default();
            let kv = |k: &str, v: String| vec![serde_json::json!(k), serde_json::json!(v)];
            verbs::Reply {
                info: Some(format!("Status of node {name} ...")),
                columns: vec!["key".into(), "value".into()],
                rows: vec![
                    kv("pid", std::process::id().to_string()),
                    kv("version", env!("CARGO_PKG_VERSION").to_string()),
                    kv("data_dir", node.data_dir.display().to_string()),
                    kv("listeners", listeners),
                    kv("connections", node.hub.live_connections().to_string()),
                    kv("vhosts", counts.2.to_string()),
                    kv("queues", counts.0.to_string()),
                    kv("messages_ready", counts.1.to_string()),
                    kv("memory_rss", rss),
                ],
                ..verbs::Reply::default()
            }
        }
        _ => node
            .hub
            .admin(move |b| verbs::run(b, request, salt))
            .await
            .context("the broker is shutting down")?,
    };
    let mut out = serde_json::to_vec(&reply)?;
    out.push(b'\n');
    write.write_all(&out).await?;
    write.shutdown().await?;
    Ok(())
}

/// Four bytes from the operating system's randomness, for a password hash.
fn random_salt() -> [u8; SALT_BYTES] {
    let mut salt = [0u8; SALT_BYTES];
    // SAFETY: the buffer is valid for its length; getrandom writes at most that much.
    let n = unsafe { libc::getrandom(salt.as_mut_ptr().cast(), salt.len(), 0) };
    assert_eq!(n, salt.len() as isize, "the OS gave no randomness");
    salt
}

/// How the node names itself: warren@HOST, as RabbitMQ's rabbit@HOST.
fn node_name(_node: &Node) -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".into());
    format!("warren@{host}")
}

/// The pid file in the data directory, while the node runs.
pub fn pid_path(data_dir: &Path) -> PathBuf {
    data_dir.join("warren.pid")
}
