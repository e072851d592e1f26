//! `warren-sim`: run, replay, shrink and soak simulated broker runs. See the crate docs.

use std::io::Write;
use std::time::{Duration, Instant};

use warren_sim::{run_seed, shrink, Stats, Workarounds};

const USAGE: &str = "usage:
  warren-sim run    [--seeds N] [--first S] [--steps N] [W]
  warren-sim replay --seed S [--steps N] [--ops I,J,..] [--verbose] [W]
  warren-sim replay --bytes FILE [W]     (a cargo-fuzz input: fuzz/artifacts/simulator/…)
  warren-sim shrink --seed S [--steps N] [W]
  warren-sim soak   --seconds T [--steps N] [--first S] [--out FILE] [W]
                    (seeds from S, by default 1000000: past any budget CI runs)
  warren-sim store  [--seeds N] [--first S] [--steps N]
                    (the disk store alone, crashed between writes and syncs: store_check)

W: --workarounds LIST turns on workarounds for known core bugs (comma-separated names, 'all'
   or 'none'; the default is the set for bugs still open, Workarounds::standard, now none; see
   sim/regressions.txt); --strict is --workarounds none, whatever the default is.";

/// Where a soak starts by default: far past the seeds CI runs (1..=500), so that a soak
/// explores programs CI never has.
const SOAK_FIRST: u64 = 1_000_000;

struct Args {
    cmd: String,
    seeds: u64,
    first: Option<u64>,
    seed: Option<u64>,
    steps: usize,
    ops: Option<Vec<usize>>,
    seconds: u64,
    out: Option<String>,
    bytes: Option<String>,
    w: Workarounds,
    verbose: bool,
}

fn parse() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let cmd = it.next().ok_or(USAGE)?;
    let mut a = Args {
        cmd,
        seeds: 100,
        first: None,
        seed: None,
        steps: 5_000,
        ops: None,
        seconds: 60,
        out: None,
        bytes: None,
        w: Workarounds::standard(),
        verbose: false,
    };
    while let Some(flag) = it.next() {
        let mut val = || it.next().ok_or(format!("{flag} needs a value"));
        let num = |s: String| s.parse::<u64>().map_err(|e| format!("{s}: {e}"));
        match flag.as_str() {
            "--seeds" => a.seeds = num(val()?)?,
            "--first" => a.first = Some(num(val()?)?),
            "--seed" => a.seed = Some(num(val()?)?),
            "--steps" => a.steps = num(val()?)? as usize,
            "--seconds" => a.seconds = num(val()?)?,
            "--out" => a.out = Some(val()?),
            "--bytes" => a.bytes = Some(val()?),
            "--ops" => {
                a.ops = Some(
                    val()?
                        .split(',')
                        .filter(|s| !s.is_empty())
                        .map(|s| s.parse::<usize>().map_err(|e| format!("{s}: {e}")))
                        .collect::<Result<_, _>>()?,
                )
            }
            "--strict" => a.w = Workarounds::default(),
            "--workarounds" => a.w = Workarounds::parse(&val()?)?,
            "--verbose" => a.verbose = true,
            _ => return Err(format!("unknown argument {flag}\n{USAGE}")),
        }
    }
    Ok(a)
}

/// The command-line flag that selects `w` ("" for the default, none).
fn wflag(w: &Workarounds) -> String {
    if w.names() == Workarounds::standard().names() {
        return String::new();
    }
    format!(" --workarounds {}", w.names())
}

fn replay_line(seed: u64, steps: usize, ops: Option<&[usize]>, w: &Workarounds) -> String {
    let mut s =
        format!("cargo run -p warren-sim --release -- replay --seed {seed} --steps {steps}");
    if let Some(ops) = ops {
        let list: Vec<String> = ops.iter().map(|i| i.to_string()).collect();
        s.push_str(&format!(" --ops {}", list.join(",")));
    }
    s.push_str(&wflag(w));
    s
}

fn report_failure(seed: u64, steps: usize, w: &Workarounds, f: &warren_sim::Failure) {
    eprintln!("FAILED seed {seed} at step {}: {}", f.step, f.invariant);
    eprintln!("  replay: {}", replay_line(seed, steps, None, w));
    eprintln!(
        "  shrink: cargo run -p warren-sim --release -- shrink --seed {seed} --steps {steps}{}",
        wflag(w)
    );
}

fn rate(stats: &Stats, t: Duration) -> String {
    let s = t.as_secs_f64().max(1e-9);
    format!(
        "{} steps, {} core ops ({} commands, {} events), {} published ({} queue copies), {} deliveries, {} expired, {} dead-lettered, {} alarms, {} flow holds, {} syncs ({} partial, {} releasing answers), {} confirms, {} errors, {} connections ({} timed out), {} restarts ({} losing unsynced writes, {} messages recovered), {:.1} MB in {:.2}s: {:.0} steps/s, {:.2}M core ops/s",
        stats.steps,
        stats.core_ops,
        stats.commands,
        stats.events,
        stats.published,
        stats.routed,
        stats.delivered,
        stats.expired,
        stats.dead_lettered,
        stats.alarms,
        stats.flow_holds,
        stats.syncs,
        stats.partial_syncs,
        stats.releasing_syncs,
        stats.confirmed,
        stats.errors,
        stats.connections,
        stats.timeouts,
        stats.restarts,
        stats.unsynced_crashes,
        stats.recovered,
        stats.bytes as f64 / 1e6,
        s,
        stats.steps as f64 / s,
        stats.core_ops as f64 / s / 1e6
    )
}

fn main() {
    let a = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    let w = a.w;
    // Panics are reported as failures with their seed; keep the default hook quiet.
    std::panic::set_hook(Box::new(|_| {}));
    match a.cmd.as_str() {
        "run" => {
            let start = Instant::now();
            let mut total = Stats::default();
            let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
            let mut failed = 0;
            let first = a.first.unwrap_or(1);
            for seed in first..first + a.seeds {
                let out = run_seed(seed, a.steps, None, w);
                total.add(&out.stats);
                hash = (hash ^ out.trace).wrapping_mul(0x0100_0000_01b3);
                if let Some(f) = &out.failure {
                    failed += 1;
                    report_failure(seed, a.steps, &w, f);
                }
            }
            println!(
                "seeds {}..{} x {} steps: {}",
                first,
                first + a.seeds,
                a.steps,
                rate(&total, start.elapsed())
            );
            println!("trace hash {hash:016x}");
            println!("simulator: {} passed, {} failed", a.seeds - failed, failed);
            if failed > 0 {
                std::process::exit(1);
            }
        }
        "store" => {
            let start = Instant::now();
            let first = a.first.unwrap_or(1);
            let mut total = warren_sim::store_check::Stats::default();
            for seed in first..first + a.seeds {
                match warren_sim::store_check::run(seed, a.steps) {
                    Ok(s) => {
                        total.crashes += s.crashes;
                        total.saved += s.saved;
                        total.recovered += s.recovered;
                        total.paged_in += s.paged_in;
                    }
                    Err(e) => {
                        println!("FAILED {e}");
                        std::process::exit(1);
                    }
                }
            }
            println!(
                "store seeds {}..{} x {} steps: {} saved, {} crashes, {} recovered, {} paged \
                 in, in {:.1?}; every synced message came back",
                first,
                first + a.seeds,
                a.steps,
                total.saved,
                total.crashes,
                total.recovered,
                total.paged_in,
                start.elapsed()
            );
        }
        "replay" if a.bytes.is_some() => {
            let path = a.bytes.as_deref().unwrap_or_default();
            let data = match std::fs::read(path) {
                Ok(d) => d,
                Err(e) => {
                    eprintln!("{path}: {e}");
                    std::process::exit(2);
                }
            };
            let start = Instant::now();
            let out = warren_sim::run_bytes(&data, w);
            println!("{path}: {}", rate(&out.stats, start.elapsed()));
            println!("trace hash {:016x}", out.trace);
            if let Some(f) = &out.failure {
                eprintln!("FAILED at step {}: {}", f.step, f.invariant);
                std::process::exit(1);
            }
            println!("ok");
        }
        "replay" => {
            let Some(seed) = a.seed else {
                eprintln!("replay needs --seed\n{USAGE}");
                std::process::exit(2);
            };
            let start = Instant::now();
            let out = run_seed(seed, a.steps, a.ops.as_deref(), w);
            if a.verbose {
                let prog = warren_sim::program(seed, a.steps);
                let idx: Vec<usize> = match &a.ops {
                    Some(o) => o.clone(),
                    None => (0..prog.len()).collect(),
                };
                let upto = out.failure.as_ref().map_or(usize::MAX, |f| f.step);
                for i in idx.into_iter().filter(|&i| i <= upto && i < prog.len()) {
                    println!("{i:6} {:?}", prog[i]);
                }
            }
            println!("seed {seed}: {}", rate(&out.stats, start.elapsed()));
            println!("trace hash {:016x}", out.trace);
            if let Some(f) = &out.failure {
                report_failure(seed, a.steps, &w, f);
                std::process::exit(1);
            }
            println!("ok");
        }
        "shrink" => {
            let Some(seed) = a.seed else {
                eprintln!("shrink needs --seed\n{USAGE}");
                std::process::exit(2);
            };
            let res = shrink(seed, a.steps, w, |n| {
                eprint!("\r{n} operations left   ");
                let _ = std::io::stderr().flush();
            });
            eprintln!();
            match res {
                None => println!("seed {seed} does not fail in {} steps", a.steps),
                Some((keep, f)) => {
                    let prog = warren_sim::program(seed, a.steps);
                    println!(
                        "seed {seed} shrinks to {} operations; fails at step {}: {}",
                        keep.len(),
                        f.step,
                        f.invariant
                    );
                    for &i in &keep {
                        println!("{i:6} {:?}", prog[i]);
                    }
                    println!("replay: {}", replay_line(seed, a.steps, Some(&keep), &w));
                }
            }
        }
        "soak" => {
            let start = Instant::now();
            let deadline = start + Duration::from_secs(a.seconds);
            let mut total = Stats::default();
            let first = a.first.unwrap_or(SOAK_FIRST);
            let mut seed = first;
            let mut seeds = 0u64;
            let mut failed = Vec::new();
            let mut last_report = Instant::now();
            while Instant::now() < deadline {
                let out = run_seed(seed, a.steps, None, w);
                total.add(&out.stats);
                seeds += 1;
                if let Some(f) = &out.failure {
                    report_failure(seed, a.steps, &w, f);
                    let line = format!("{seed} {} step {}: {}", a.steps, f.step, f.invariant);
                    if let Some(path) = &a.out {
                        if let Ok(mut file) = std::fs::OpenOptions::new()
                            .create(true)
                            .append(true)
                            .open(path)
                        {
                            let _ = writeln!(file, "{line}");
                        }
                    }
                    failed.push(line);
                }
                if last_report.elapsed() > Duration::from_secs(60) {
                    last_report = Instant::now();
                    eprintln!(
                        "soak: {seeds} seeds ({} failed), {}",
                        failed.len(),
                        rate(&total, start.elapsed())
                    );
                }
                seed += 1;
            }
            println!(
                "soak: seeds {}..{} ({seeds} seeds x {} steps), {} failed; {}",
                first,
                seed,
                a.steps,
                failed.len(),
                rate(&total, start.elapsed())
            );
            if !failed.is_empty() {
                std::process::exit(1);
            }
        }
        _ => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    }
}
