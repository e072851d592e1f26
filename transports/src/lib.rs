//! Transports: move bytes between sockets and the warren core.
//!
//! Every transport ends in the same place: a byte stream fed to a
//! [`warren_core::Connection`], whose commands go to the one [`hub::Hub`] that owns the broker.
//! TCP (and TLS over TCP) is a byte stream already; WebSocket adapts its binary messages into
//! one. Adapters stay thin: read bytes → `process_input` → commands to the hub; events from the
//! hub → `handle_event` → write bytes.

pub mod driver;
pub mod hub;
pub mod tcp;
pub mod tls;
pub mod ws;

pub use driver::{drive, Transport};
pub use hub::{Hub, Link};
pub use ws::{WsConfig, WsStream};
