//! The `warren-perf` binary: see the library docs.

fn main() {
    if let Err(e) = warren_perf::main_with_args(std::env::args()) {
        eprintln!("warren-perf: {e:#}");
        std::process::exit(1);
    }
}
