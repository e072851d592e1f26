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
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;
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

/// Answers `warren ctl` until the task is dropped.
pub async fn serve(listener: UnixListener, hub: Hub) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let hub = hub.clone();
        tokio::spawn(async move {
            if let Err(e) = answer(stream, hub).await {
                warn!(error = %e, "a warren ctl request failed");
            }
        });
    }
}

async fn answer(stream: tokio::net::UnixStream, hub: Hub) -> anyhow::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    BufReader::new(read).read_line(&mut line).await?;
    let request: verbs::Request = serde_json::from_str(&line).context("a malformed request")?;
    let salt = random_salt();
    let reply = hub
        .admin(move |b| verbs::run(b, request, salt))
        .await
        .context("the broker is shutting down")?;
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
