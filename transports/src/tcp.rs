//! The plain TCP listener (`amqp://`).

use tokio::net::TcpListener;
use tracing::{info, warn};
use warren_core::ConnectionConfig;

use crate::driver::drive;
use crate::hub::Hub;

/// Accepts connections forever, one task each.
pub async fn serve(listener: TcpListener, hub: Hub, config: ConnectionConfig) {
    if let Ok(addr) = listener.local_addr() {
        info!(%addr, "AMQP listener ready");
    }
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                tokio::spawn(drive(stream, hub.clone(), config.clone(), peer.to_string()));
            }
            Err(e) => {
                warn!(error = %e, "accept failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}
