//! warren-core: a sans-IO AMQP 0-9-1 broker.
//!
//! Nothing here touches sockets, clocks, threads or randomness. Callers feed bytes and the
//! current time (milliseconds) in, and take bytes and events out. The same core runs behind the
//! native TCP/WebSocket server, inside a browser page (wasm) and inside edge workers.
//!
//! Panic policy: a panic is a bug. No peer input may ever cause one.
#![no_std]
#![forbid(unsafe_code)]

extern crate alloc;
#[cfg(test)]
extern crate std;

pub mod access;
pub mod broker;
pub mod codec;
pub mod connection;
pub mod exchange_kind;
pub mod message;
pub mod pump;
pub mod reply;
pub mod storage;
pub mod vocab;

pub use broker::{Broker, BrokerConfig};
pub use connection::{Connection, ConnectionConfig};
pub use message::Message;
pub use pump::Pump;
pub use vocab::{Command, ConnId, Event};
