//! warren-sim: deterministic simulation of the whole Warren broker.
//!
//! Many simulated clients speak real AMQP 0-9-1 bytes (encoded with the core's own codec) to
//! an unchanged [`warren_core::Broker`] and its [`warren_core::Connection`]s, run by the core's
//! own [`warren_core::Pump`] as the wasm engine runs them, over links that split, batch and
//! delay bytes, with clients that stall and die, on virtual time. A reference model of
//! RabbitMQ's semantics ([`model`]) watches the pump ([`oracle`]) and checks every command's
//! outcome and every event.
//!
//! Everything is a function of the seed: the program ([`program::generate`]), the network
//! and the broker's own name generator. The same seed gives the same run, byte for byte
//! ([`Outcome::trace`] hashes every byte that crossed a link).
//!
//! ```text
//! cargo run -p warren-sim --release -- run --seeds 500 --steps 5000
//! cargo run -p warren-sim --release -- replay --seed 17 [--steps N] [--ops 3,9,40]
//! cargo run -p warren-sim --release -- shrink --seed 17 [--steps N]
//! cargo run -p warren-sim --release -- soak --seconds 3600 --out failing-seeds.txt
//! ```

pub mod client;
pub mod disk;
pub mod model;
pub mod oracle;
pub mod program;
pub mod rng;
pub mod store_check;
pub mod world;

use std::panic::{catch_unwind, AssertUnwindSafe};

pub use world::{Failure, Options, Outcome, Stats, Workarounds};

use program::Op;
use rng::{ByteSource, Rng};

/// The program a seed stands for.
pub fn program(seed: u64, steps: usize) -> Vec<Op> {
    let mut rng = Rng::new(seed);
    program::generate(&mut rng, steps)
}

/// Runs the operations of `seed`'s program whose indices are in `keep` (all when `None`).
pub fn run_seed(seed: u64, steps: usize, keep: Option<&[usize]>, w: Workarounds) -> Outcome {
    let all = program(seed, steps);
    let ops: Vec<(usize, Op)> = match keep {
        None => all.into_iter().enumerate().collect(),
        Some(keep) => keep
            .iter()
            .filter(|&&i| i < all.len())
            .map(|&i| (i, all[i].clone()))
            .collect(),
    };
    run_ops(seed, &ops, w)
}

/// Runs a program; a panic anywhere (core or simulator) is reported as a failure.
pub fn run_ops(seed: u64, ops: &[(usize, Op)], w: Workarounds) -> Outcome {
    let opts = Options::for_seed(seed, w);
    match catch_unwind(AssertUnwindSafe(|| world::Sim::new(seed, opts).run(ops))) {
        Ok(o) => o,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "non-string panic".into());
            Outcome {
                trace: 0,
                stats: Stats::default(),
                failure: Some(Failure {
                    step: world::CURRENT_STEP.with(|s| s.get()),
                    invariant: format!("panic: {msg}"),
                }),
            }
        }
    }
}

/// Runs a program decoded from fuzzer bytes: the first 8 bytes seed the network and the
/// broker, the rest are the operations' choices.
pub fn run_bytes(data: &[u8], w: Workarounds) -> Outcome {
    let (head, rest) = data.split_at(data.len().min(8));
    let mut seed_bytes = [0u8; 8];
    seed_bytes[..head.len()].copy_from_slice(head);
    let seed = u64::from_le_bytes(seed_bytes);
    let mut src = ByteSource::new(rest);
    let mut ops = Vec::new();
    while !src.is_empty() && ops.len() < 2_000 {
        ops.push((ops.len(), program::gen_op(&mut src)));
    }
    run_ops(seed, &ops, w)
}

/// Shrinks a failing program to a short one that still fails the same way (same invariant
/// text up to its first digit): drops chunks of operations, halving the chunk size, until no
/// single operation can go. Returns the indices kept and the failure they give.
pub fn shrink(
    seed: u64,
    steps: usize,
    w: Workarounds,
    mut progress: impl FnMut(usize),
) -> Option<(Vec<usize>, Failure)> {
    let first = run_seed(seed, steps, None, w).failure?;
    let kind = |f: &Failure| -> String {
        f.invariant
            .chars()
            .take_while(|c| !c.is_ascii_digit())
            .collect()
    };
    let want = kind(&first);
    // Everything after the failing step is irrelevant.
    let mut keep: Vec<usize> = (0..=first.step).collect();
    let mut best = first;
    let mut chunk = keep.len().div_ceil(2).max(1);
    loop {
        let mut i = 0;
        let mut removed_any = false;
        while i < keep.len() {
            let mut trial = keep.clone();
            let end = (i + chunk).min(trial.len());
            trial.drain(i..end);
            let out = run_seed(seed, steps, Some(&trial), w);
            match out.failure {
                Some(f) if kind(&f) == want => {
                    let cut = trial
                        .iter()
                        .position(|&x| x > f.step)
                        .unwrap_or(trial.len());
                    trial.truncate(cut);
                    keep = trial;
                    best = f;
                    removed_any = true;
                    progress(keep.len());
                }
                _ => i += chunk,
            }
        }
        if chunk == 1 && !removed_any {
            return Some((keep, best));
        }
        if !removed_any || chunk > 1 {
            chunk = (chunk / 2).max(1);
        }
    }
}
