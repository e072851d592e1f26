//! The plain TCP listener (`amqp://`), and the accept loop every listener shares.

use std::future::Future;
use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tracing::{info, warn};
use warren_core::ConnectionConfig;

use crate::driver::drive;
use crate::hub::Hub;

/// Accepts connections forever, one task each.
pub async fn serve(listener: TcpListener, hub: Hub, config: ConnectionConfig) {
    accept_loop(listener, "AMQP", move |stream, peer| {
        let config = ConnectionConfig {
            from_loopback: peer.ip().is_loopback(),
            ..config.clone()
        };
        drive(stream, hub.clone(), config, peer.to_string())
    })
    .await
}

/// Accepts connections forever and spawns `handle(stream, peer)` for each (with
/// `TCP_NODELAY`: AMQP writes whole batches, never a byte at a time). `what` names the
/// listener in logs.
pub(crate) async fn accept_loop<F, Fut>(listener: TcpListener, what: &'static str, handle: F)
where
    F: Fn(TcpStream, SocketAddr) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "{what} listener ready");
    }
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(handle(stream, peer));
            }
            Err(e) => {
                warn!(error = %e, "{what}: accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}
