//! Replays every seed in `sim/regressions.txt`: `pass` lines must pass; `known-failing` lines
//! (core bugs not yet fixed) are skipped, with a note when one starts passing.

use warren_sim::{run_seed, Workarounds};

struct Line {
    seed: u64,
    steps: usize,
    ops: Option<Vec<usize>>,
    workarounds: Workarounds,
    known_failing: bool,
    what: String,
}

fn lines() -> Vec<Line> {
    let text = include_str!("../regressions.txt");
    let mut out = Vec::new();
    for raw in text.lines() {
        let (fields, what) = match raw.split_once('#') {
            Some((f, w)) => (f.trim(), w.trim()),
            None => (raw.trim(), ""),
        };
        if fields.is_empty() {
            continue;
        }
        let mut l = Line {
            seed: 0,
            steps: 5_000,
            ops: None,
            workarounds: Workarounds::standard(),
            known_failing: false,
            what: what.to_string(),
        };
        for f in fields.split_whitespace() {
            let (k, v) = f
                .split_once('=')
                .unwrap_or_else(|| panic!("bad field {f:?} in {raw:?}"));
            match k {
                "seed" => l.seed = v.parse().expect("seed"),
                "steps" => l.steps = v.parse().expect("steps"),
                "ops" if v == "all" => l.ops = None,
                "ops" => l.ops = Some(v.split(',').map(|x| x.parse().expect("op index")).collect()),
                "workarounds" => l.workarounds = Workarounds::parse(v).expect("workarounds"),
                "status" => {
                    l.known_failing = match v {
                        "pass" => false,
                        "known-failing" => true,
                        other => panic!("unknown status {other:?}"),
                    }
                }
                other => panic!("unknown field {other:?} in {raw:?}"),
            }
        }
        out.push(l);
    }
    out
}

#[test]
fn regression_seeds_replay() {
    let mut failures = Vec::new();
    for l in lines() {
        let out = run_seed(l.seed, l.steps, l.ops.as_deref(), l.workarounds);
        match (&out.failure, l.known_failing) {
            (None, false) => {}
            (Some(f), false) => failures.push(format!(
                "seed {} ({}) fails at step {}: {}",
                l.seed, l.what, f.step, f.invariant
            )),
            (Some(_), true) => {}
            (None, true) => eprintln!(
                "note: known-failing seed {} now passes ({}): flip it to `pass` in sim/regressions.txt",
                l.seed, l.what
            ),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn known_failing_programs_pass_with_every_workaround_on() {
    // With every workaround on, the known core bugs are avoided or accepted: the shrunk
    // programs pass. (Guards against a workaround that silently stopped working.)
    for l in lines().into_iter().filter(|l| l.known_failing) {
        let out = run_seed(l.seed, l.steps, l.ops.as_deref(), Workarounds::all());
        assert!(
            out.failure.is_none(),
            "seed {} fails even with every workaround on: {:?}",
            l.seed,
            out.failure
        );
    }
}

#[test]
fn the_same_seed_gives_the_same_trace() {
    let a = run_seed(11, 1_500, None, Workarounds::standard());
    let b = run_seed(11, 1_500, None, Workarounds::standard());
    assert_eq!(a.trace, b.trace);
    assert_ne!(
        a.trace,
        run_seed(12, 1_500, None, Workarounds::standard()).trace
    );
}

/// Prints seed 11's trace hash when asked (used by the cross-process test below).
#[test]
fn print_trace_of_seed_11() {
    if std::env::var_os("SIM_PRINT_TRACE").is_some() {
        println!(
            "TRACE {:016x}",
            run_seed(11, 1_500, None, Workarounds::standard()).trace
        );
    }
}

/// Two processes give the same trace: nothing in the core (or the simulator) depends on a
/// per-process random source such as a randomly keyed hasher.
#[test]
fn another_process_gives_the_same_trace() {
    let here = format!(
        "{:016x}",
        run_seed(11, 1_500, None, Workarounds::standard()).trace
    );
    let exe = std::env::current_exe().expect("test binary");
    for _ in 0..2 {
        let out = std::process::Command::new(&exe)
            .args([
                "--exact",
                "print_trace_of_seed_11",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("SIM_PRINT_TRACE", "1")
            .output()
            .expect("run the test binary again");
        let text = String::from_utf8_lossy(&out.stdout);
        let there = text
            .lines()
            .find_map(|l| l.split("TRACE ").nth(1))
            .unwrap_or_else(|| panic!("no trace printed: {text}"));
        assert_eq!(here, there.trim());
    }
}
