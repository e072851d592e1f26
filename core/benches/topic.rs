//! Topic trie micro-benchmarks with 10,000 bindings, the load of benchmark scenario 5.
//!
//! `cargo bench -p warren-core --bench topic`. The bindings mix literal, `*` and `#` patterns
//! (`d<i>.#`, `*.d<i>`, `perf.d<i>.#`, `#.d<i>`, as `warren-perf --bindings` declares them)
//! plus a few that match the routing keys used here.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use warren_core::broker::topic::TopicTrie;

const BINDINGS: u32 = 10_000;

fn decoy(i: u32) -> String {
    match i % 4 {
        0 => format!("d{i}.#"),
        1 => format!("*.d{i}"),
        2 => format!("perf.d{i}.#"),
        _ => format!("#.d{i}"),
    }
}

fn trie() -> TopicTrie<u32> {
    let mut t = TopicTrie::new();
    for i in 1..BINDINGS {
        t.insert(&decoy(i), i);
    }
    t.insert("perf.key.*", 0);
    t
}

fn matching(c: &mut Criterion) {
    let t = trie();
    let mut g = c.benchmark_group("topic/10k-bindings");
    g.throughput(Throughput::Elements(1));
    let mut out = Vec::with_capacity(16);
    for key in [
        "perf.key.0",
        "d17.x.y.z",
        "a.d9999",
        "nomatch.at.all.here.five.words",
    ] {
        g.bench_function(format!("match/{key}"), |b| {
            b.iter(|| {
                out.clear();
                t.matches(black_box(key), &mut out);
                black_box(out.len())
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("topic/build");
    g.throughput(Throughput::Elements(u64::from(BINDINGS)));
    g.sample_size(20);
    let patterns: Vec<String> = (0..BINDINGS).map(decoy).collect();
    g.bench_function("insert-10k", |b| {
        b.iter_batched(
            TopicTrie::<u32>::new,
            |mut t| {
                for (i, p) in patterns.iter().enumerate() {
                    t.insert(p, i as u32);
                }
                t
            },
            BatchSize::LargeInput,
        )
    });
    g.finish();
}

criterion_group!(benches, matching);
criterion_main!(benches);
