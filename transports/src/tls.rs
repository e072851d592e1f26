//! TLS for both listeners (`amqps://` and `wss://`), with rustls on the `ring` provider.
//!
//! TLS wraps the TCP stream before anything else looks at it: the AMQP driver (amqps) or the
//! WebSocket handshake (wss) then runs over the decrypted stream exactly as over plain TCP.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::{self, ServerConfig};
use tracing::debug;
use warren_core::ConnectionConfig;

use crate::driver::drive;
use crate::hub::Hub;
use crate::tcp::accept_loop;

pub use tokio_rustls::server::TlsStream;
pub use tokio_rustls::TlsAcceptor;

/// How long a client may take to finish the TLS handshake on the amqps listener.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds a server configuration from a PEM certificate chain (leaf first) and a PEM private
/// key (PKCS#8, PKCS#1 or SEC1). Errors name the file that is wrong.
pub fn server_config(cert_path: &Path, key_path: &Path) -> io::Result<Arc<ServerConfig>> {
    let invalid = |path: &Path, what: String| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: {what}", path.display()),
        )
    };
    let certs = CertificateDer::pem_file_iter(cert_path)
        .map_err(|e| invalid(cert_path, e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| invalid(cert_path, e.to_string()))?;
    if certs.is_empty() {
        return Err(invalid(cert_path, "no certificate in PEM file".into()));
    }
    let key =
        PrivateKeyDer::from_pem_file(key_path).map_err(|e| invalid(key_path, e.to_string()))?;
    let config =
        ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| io::Error::other(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .map_err(|e| invalid(key_path, e.to_string()))?;
    Ok(Arc::new(config))
}

/// A TLS acceptor for [`server_config`].
pub fn acceptor(cert_path: &Path, key_path: &Path) -> io::Result<TlsAcceptor> {
    server_config(cert_path, key_path).map(TlsAcceptor::from)
}

/// Accepts `amqps://` connections forever: TLS handshake, then the AMQP driver.
pub async fn serve(listener: TcpListener, tls: TlsAcceptor, hub: Hub, config: ConnectionConfig) {
    accept_loop(listener, "AMQPS", move |stream, peer| {
        let (tls, hub) = (tls.clone(), hub.clone());
        let config = ConnectionConfig {
            from_loopback: peer.ip().is_loopback(),
            ..config.clone()
        };
        async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream)).await {
                Ok(Ok(stream)) => drive(stream, hub, config, peer.to_string()).await,
                Ok(Err(e)) => debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => debug!(%peer, "TLS handshake timed out"),
            }
        }
    })
    .await
}
