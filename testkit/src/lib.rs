//! warren-testkit: one small AMQP 0-9-1 test client on Warren's own codec, shared by every
//! test that speaks AMQP bytes to the core without a socket.
//!
//! - [`frames`](crate::Handshake): what every client builds the same way — the handshake's
//!   `start-ok` ([`Handshake`], PLAIN or AMQPLAIN), publishes cut at frame_max
//!   ([`encode_publish`]), the close-ok a client owes ([`close_ok_for`]).
//! - [`Client`]: encodes what a test asks for and decodes every byte the server writes into
//!   [`Received`] (methods, deliveries assembled from header and body frames). It is strict:
//!   it panics on anything a correct server must never send (a frame that does not decode,
//!   content out of sequence, a body longer than its header said), so every test also checks
//!   the server's framing.
//! - [`World`]: the core's [`warren_core::Pump`] (one broker, its connections) with a client
//!   per connection, on virtual time, in the style of quinn-proto's `Pair::drive()`:
//!   [`World::drive`] moves bytes until nothing moves, [`World::advance`] fires every timer
//!   that falls due on the way. Client operations ([`ClientHandle`]) send, drive, and return
//!   what the client decoded since the last call, so tests assert exactly what a real client
//!   would see.
//!
//! The scenario tests of `warren-core`, the wasm package's binding tests and the simulator
//! build their frames here.

mod client;
mod frames;
pub mod fuzz;
mod storage;
mod world;

pub use client::*;
pub use frames::*;
pub use storage::*;
pub use world::*;
