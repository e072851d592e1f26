//! The scenario tests' client and virtual world live in `warren-testkit`, shared with the wasm
//! package's tests and the simulator.
#![allow(unused_imports)]

pub use warren_testkit::*;
