//! The whole connection, not only the frame decoder: arbitrary client bytes after a valid
//! handshake (with a channel open or not) or after a handshake cut anywhere, through the core's
//! connection, pump and broker, then hours of virtual time. The harness and its oracle are in
//! `warren_testkit::fuzz`; `testkit/tests/fuzz_corpus.rs` replays `fuzz/corpus/connection` in CI.
//!
//! Run from the repository root, growing a working corpus in /tmp from the kept one (new
//! inputs go to the first directory; copy the few worth keeping into `fuzz/corpus/connection`):
//! `cargo +nightly fuzz run connection /tmp/connection-corpus fuzz/corpus/connection`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    warren_testkit::fuzz::connection(data);
});
