//! warren-wasm: the Warren broker core for browsers, Web Workers and edge workers.
//!
//! [`Engine`] (exported to JavaScript as `Engine`) owns one [`warren_core::Broker`] and its
//! [`warren_core::Connection`]s and pumps commands and events between them on one thread, as
//! the native hub and drivers do with tasks. Every client speaks real AMQP 0-9-1 bytes to it.
//! The JavaScript package (`js/`) wraps it: a `WebSocket`-shaped object per connection, timers
//! from `performance.now()`, IndexedDB for persistence, a small convenience client.
//!
//! Times are milliseconds on any fixed origin, passed as JavaScript numbers.
//!
//! Panic policy: as in the core, a panic is a bug. After one the module is unusable; the
//! JavaScript side then closes every connection.

extern crate alloc;

pub mod engine;
pub mod storage;
pub mod topology;

use alloc::string::String;
use alloc::vec::Vec;

use warren_core::ConnectionConfig;
use wasm_bindgen::prelude::*;

pub use engine::{Engine as CoreEngine, EngineConfig};

#[cfg(target_arch = "wasm32")]
#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console, js_name = error)]
    fn console_error(message: &str);
}

fn ms(t: f64) -> u64 {
    if t.is_finite() && t > 0.0 {
        t as u64
    } else {
        0
    }
}

/// The broker engine, as JavaScript sees it. The `js/` package wraps it; see `engine.rs` for
/// the call order.
#[wasm_bindgen]
pub struct Engine {
    inner: engine::Engine,
}

#[wasm_bindgen]
impl Engine {
    /// `users` alternates usernames and passwords (empty: `guest`/`guest`). `recovered` is the
    /// storage load format (see `storage.rs`), used when `persist` is true.
    #[wasm_bindgen(constructor)]
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        seed: f64,
        heartbeat: u16,
        frame_max: u32,
        channel_max: u16,
        users: Vec<String>,
        persist: bool,
        recovered: &[u8],
    ) -> Engine {
        install_panic_hook();
        let mut connection = ConnectionConfig {
            heartbeat,
            ..ConnectionConfig::default()
        };
        if frame_max != 0 {
            connection.frame_max = frame_max;
        }
        if channel_max != 0 {
            connection.channel_max = channel_max;
        }
        let users = users
            .chunks(2)
            .filter(|p| p.len() == 2)
            .map(|p| (p[0].clone(), p[1].clone()))
            .collect();
        let seed = if seed.is_finite() && seed > 0.0 {
            seed as u64
        } else {
            EngineConfig::default().seed
        };
        Engine {
            inner: engine::Engine::new(EngineConfig {
                seed,
                connection,
                users,
                persist,
                recovered: recovered.to_vec(),
            }),
        }
    }

    /// Records in `recovered` that could not be read and were skipped.
    #[wasm_bindgen(js_name = recoveryErrors)]
    pub fn recovery_errors(&self) -> u32 {
        self.inner.recovery_errors()
    }

    /// Opens a connection; returns its id.
    pub fn connect(&mut self, now: f64) -> u32 {
        self.inner.connect(ms(now))
    }

    /// Bytes from a connection's peer.
    pub fn input(&mut self, id: u32, bytes: &[u8], now: f64) {
        self.inner.input(id, bytes, ms(now));
    }

    /// The peer closed the connection (or its socket died).
    pub fn eof(&mut self, id: u32, now: f64) {
        self.inner.eof(id, ms(now));
    }

    /// The timer armed for `pollTimeout` fired.
    pub fn timeout(&mut self, now: f64) {
        self.inner.timeout(ms(now));
    }

    /// When `timeout` must next be called, or -1 for never.
    #[wasm_bindgen(js_name = pollTimeout)]
    pub fn poll_timeout(&self) -> f64 {
        self.inner.poll_timeout().map_or(-1.0, |t| t as f64)
    }

    /// Connections with output to send or that have just closed.
    #[wasm_bindgen(js_name = takeDirty)]
    pub fn take_dirty(&mut self) -> Vec<u32> {
        self.inner.take_dirty()
    }

    /// A connection's pending output (a fresh copy; empty if none).
    #[wasm_bindgen(js_name = takeOutput)]
    pub fn take_output(&mut self, id: u32) -> Vec<u8> {
        self.inner.take_output(id)
    }

    /// The connection is over: send its last output, close the socket, then `forget` it.
    #[wasm_bindgen(js_name = isClosed)]
    pub fn is_closed(&self, id: u32) -> bool {
        self.inner.is_closed(id)
    }

    /// Drops a closed connection.
    pub fn forget(&mut self, id: u32, now: f64) {
        self.inner.forget(id, ms(now));
    }

    /// Storage ops since the last call (op format of `storage.rs`).
    #[wasm_bindgen(js_name = takeStorageOps)]
    pub fn take_storage_ops(&mut self) -> Vec<u8> {
        self.inner.take_storage_ops()
    }

    /// Exchanges, bindings and queues of `vhost` as JSON (see `topology.rs`).
    pub fn topology(&self, vhost: &str) -> String {
        topology::topology_json(self.inner.broker(), vhost)
    }

    /// Where a message would be routed, as JSON (see `topology.rs`). `headers` alternates
    /// header names and string values.
    pub fn trace(
        &self,
        vhost: &str,
        exchange: &str,
        routing_key: &str,
        headers: Vec<String>,
    ) -> String {
        let headers: Vec<(String, String)> = headers
            .chunks(2)
            .filter(|p| p.len() == 2)
            .map(|p| (p[0].clone(), p[1].clone()))
            .collect();
        topology::trace_json(self.inner.broker(), vhost, exchange, routing_key, &headers)
    }

    /// The broker's time 0 in Unix milliseconds (for `x-death` timestamps).
    #[wasm_bindgen(js_name = setUnixTimeOffset)]
    pub fn set_unix_time_offset(&mut self, unix_ms_at_zero: f64) {
        self.inner.set_unix_time_offset(ms(unix_ms_at_zero));
    }

    /// Open connections.
    #[wasm_bindgen(js_name = connectionCount)]
    pub fn connection_count(&self) -> u32 {
        self.inner.connection_count() as u32
    }
}

fn install_panic_hook() {
    #[cfg(target_arch = "wasm32")]
    std::panic::set_hook(alloc::boxed::Box::new(|info| {
        console_error(&alloc::format!("warren-wasm panicked (a bug): {info}"));
    }));
}
