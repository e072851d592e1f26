//! Replays the whole-connection fuzz corpus (`fuzz/corpus/connection`: one input per malformed
//! case the raw-socket tests check against RabbitMQ, plus what fuzzing found and kept) through
//! the harness the fuzz target runs, so CI catches a regression without cargo-fuzz.

use std::path::PathBuf;

use warren_testkit::fuzz::Outcome;

#[test]
fn every_input_of_the_connection_corpus_passes_the_harness() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/connection");
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("corpus entry").path())
        .collect();
    inputs.sort();
    assert!(
        inputs.len() >= 50,
        "only {} inputs in {}",
        inputs.len(),
        dir.display()
    );
    let mut seen = Vec::new();
    for path in inputs {
        let data = std::fs::read(&path).expect("corpus input");
        let result = std::panic::catch_unwind(|| warren_testkit::fuzz::connection(&data));
        let Ok(outcome) = result else {
            panic!("{} failed the harness", path.display());
        };
        seen.push(outcome);
    }
    // The corpus reaches both ends: connections the server closed and ones it kept.
    assert!(seen.contains(&Outcome::Closed) && seen.contains(&Outcome::Open));
}
