//! Drives the whole-broker simulator (`sim/`, crate `warren-sim`) from fuzzer bytes: the first
//! 8 bytes seed the network faults and the broker's name generator, the rest decode into the
//! program of operations (clients, channels, declares, publishes, acks, faults, time jumps),
//! so coverage guidance steers the workload. Any broken invariant of the reference-model
//! oracle, or any panic, is a crash.
//!
//! Run: `cargo +nightly fuzz run simulator` from the repository root. Replay a crash with
//! `cargo run -p warren-sim --release -- replay --bytes fuzz/artifacts/simulator/crash-…`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use warren_sim::{run_bytes, Workarounds};

fuzz_target!(|data: &[u8]| {
    let out = run_bytes(data, Workarounds::standard());
    if let Some(f) = out.failure {
        panic!("step {}: {}", f.step, f.invariant);
    }
});
