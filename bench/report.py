#!/usr/bin/env python3
"""Writes BENCHMARKS.md and bench/chart.svg from the JSON files bench/run.sh leaves in
bench/results/.

    python3 bench/report.py RESULTS_DIR BENCHMARKS.md CHART.svg

Standard library only. A section of an existing BENCHMARKS.md headed "## WebSocket vs TCP" is
kept as it is (someone else writes it). bench/profile-notes.md, if present, is included under
"What the profile shows".
"""

import html
import json
import math
import os
import re
import sys

THROUGHPUT = [
    # name, title, what the rate counts
    ("s1-16b", "1. 1 producer → 1 queue → 1 consumer, 16 B, no confirms, auto-ack", "msg/s"),
    ("s2-1kib", "2a. the same with 1 KiB bodies", "msg/s"),
    ("s2-64kib", "2b. the same with 64 KiB bodies", "msg/s"),
    ("s3-ack-prefetch100", "3a. manual acks, prefetch 100", "msg/s"),
    ("s3-confirm1000", "3b. publisher confirms, 1000 outstanding", "msg/s"),
    ("s4-persistent-confirm", "4. persistent messages, durable queue, confirms (1000 outstanding)", "msg/s"),
    ("s5-fanout10", "5a. fanout to 10 queues (10 consumers)", "deliveries/s"),
    ("s5-topic10k", "5b. topic exchange with 10,000 bindings", "msg/s"),
    ("s6-latency10k", "6. latency at a fixed 10,000 msg/s", "msg/s"),
]
MEMORY = [
    ("s7-connections", "7a. 1,000 idle connections (one channel each)", "connection"),
    ("s7-queues", "7b. 10,000 idle queues", "queue"),
    ("s7-backlog", "7c. 1,000,000 queued 16 B messages", "message"),
]


def load(results, name):
    path = os.path.join(results, name + ".json")
    try:
        with open(path) as f:
            text = f.read().strip()
        try:
            return json.loads(text)
        except ValueError:
            # The tool prints one JSON object on its last line.
            return json.loads(text.splitlines()[-1])
    except (OSError, ValueError, IndexError):
        return None


def fmt_rate(v):
    if v is None:
        return "–"
    if v >= 1e6:
        return f"{v / 1e6:.2f} M"
    if v >= 1e4:
        return f"{v / 1e3:.0f} k"
    if v >= 1e3:
        return f"{v / 1e3:.1f} k"
    return f"{v:.0f}"


def fmt_bytes(v):
    if v is None:
        return "–"
    if v >= 1024 * 1024:
        return f"{v / 1048576:.1f} MiB"
    if v >= 10 * 1024:
        return f"{v / 1024:.1f} KiB"
    return f"{v:.0f} B"


def fmt_us(v):
    if v is None:
        return "–"
    if v >= 10000:
        return f"{v / 1000:.0f} ms"
    if v >= 1000:
        return f"{v / 1000:.1f} ms"
    return f"{v:.0f} µs"


def fmt_cpu(v):
    return "–" if v is None else f"{v:.2f}"


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt_ratio(r, lower_better=False):
    if r is None:
        return "–"
    if lower_better and 0 < r < 1:
        n = 1 / r
        return f"1/{n:.1f}" if n < 10 else f"1/{n:.0f}"
    if r >= 100:
        return f"{r:.0f}×"
    if r >= 10:
        return f"{r:.1f}×"
    if r >= 0.1:
        return f"{r:.2f}×"
    return f"1/{1 / r:.0f}" if r > 0 else "0"


def get(d, *keys):
    for k in keys:
        if d is None:
            return None
        d = d.get(k) if isinstance(d, dict) else None
    return d


def svg_chart(rows, path):
    """Horizontal bars of Warren's advantage (×, log scale); rows: (label, value, target)."""
    width, left, right, top, bar_h, gap = 900, 330, 40, 60, 22, 10
    height = top + len(rows) * (bar_h + gap) + 60
    lo, hi = 0.1, 1000.0
    plot_w = width - left - right

    def x(v):
        v = min(max(v, lo), hi)
        return left + plot_w * (math.log10(v) - math.log10(lo)) / (math.log10(hi) - math.log10(lo))

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="13">',
        f'<rect width="{width}" height="{height}" fill="white"/>',
        f'<text x="{width / 2}" y="24" text-anchor="middle" font-size="16" font-weight="bold">'
        "Warren vs RabbitMQ: how many times better (log scale)</text>",
        f'<text x="{width / 2}" y="44" text-anchor="middle" fill="#555">'
        "throughput: Warren ÷ RabbitMQ; latency and memory: RabbitMQ ÷ Warren; "
        "| marks a target</text>",
    ]
    axis_y = top + len(rows) * (bar_h + gap)
    for t in [0.1, 1, 10, 100, 1000]:
        xt = x(t)
        out.append(f'<line x1="{xt:.1f}" y1="{top - 6}" x2="{xt:.1f}" y2="{axis_y}" '
                   f'stroke="{"#333" if t == 1 else "#ddd"}" stroke-width="1"/>')
        label = f"{t:g}×"
        out.append(f'<text x="{xt:.1f}" y="{axis_y + 18}" text-anchor="middle" fill="#333">'
                   f"{label}</text>")
    for i, (label, value, target) in enumerate(rows):
        y = top + i * (bar_h + gap)
        out.append(f'<text x="{left - 8}" y="{y + bar_h * 0.7:.1f}" text-anchor="end">'
                   f"{html.escape(label)}</text>")
        if value is None:
            out.append(f'<text x="{left + 6}" y="{y + bar_h * 0.7:.1f}" fill="#a00">'
                       "no result</text>")
            continue
        x0, x1 = x(1), x(value)
        if value < 1:
            color = "#c0504d"
        elif target is not None and value < target:
            color = "#e39b2b"
        else:
            color = "#2a7ab8"
        out.append(f'<rect x="{min(x0, x1):.1f}" y="{y}" width="{abs(x1 - x0):.1f}" '
                   f'height="{bar_h}" fill="{color}"/>')
        tx = max(x0, x1, x(target) if target is not None else 0) + 6
        out.append(f'<text x="{tx:.1f}" y="{y + bar_h * 0.7:.1f}" fill="#111">'
                   f"{fmt_ratio(value)}</text>")
        if target is not None:
            xt = x(target)
            out.append(f'<line x1="{xt:.1f}" y1="{y - 3}" x2="{xt:.1f}" y2="{y + bar_h + 3}" '
                       'stroke="black" stroke-width="3"/>')
    out.append(f'<text x="{left + plot_w / 2}" y="{axis_y + 40}" text-anchor="middle" '
               'fill="#555">blue: Warren ahead · orange: ahead but short of the target · '
               "red: RabbitMQ ahead</text>")
    out.append("</svg>")
    with open(path, "w") as f:
        f.write("\n".join(out) + "\n")


def share(x):
    """x = Warren ÷ RabbitMQ as a phrase: '1/7.3' or '2.3×'."""
    if x <= 0:
        return "none"
    return f"1/{1 / x:.1f}" if x < 1 else f"{x:.2f}×"


def target_line(name, reached, detail):
    mark = "**reached**" if reached else "**not reached**"
    return f"| {name} | {mark} | {detail} |"


def recovery_table(results, add):
    """Section 8: a durable queue of persistent messages, the broker killed with SIGKILL and
    started again on its data."""
    sizes = sorted({int(f.split("-")[2].split(".")[0]) for f in os.listdir(results)
                    if f.split("-")[1:2] == ["recovery"] and f.count("-") == 2
                    and f.endswith(".json")})
    if not sizes:
        return
    add("### 8. Restart after kill -9 with a durable backlog")
    add("")
    add("| queued persistent 16 B messages | | Warren | RabbitMQ | Warren/RabbitMQ |")
    add("|---|---|---:|---:|---:|")
    for n in sizes:
        w = load(results, f"warren-recovery-{n}")
        r = load(results, f"rabbitmq-recovery-{n}")
        rows = [
            ("published with confirms in", get(w, "backlog", "setup_secs"),
             get(r, "backlog", "setup_secs"), lambda v: f"{v:.1f} s"),
            ("RSS per message, queued", get(w, "backlog", "bytes_per_item"),
             get(r, "backlog", "bytes_per_item"), lambda v: f"{v:.1f} B"),
            ("ready again after kill -9 in", get(w, "recovery_secs"),
             get(r, "recovery_secs"), lambda v: f"{v:.1f} s"),
            ("RSS after the restart", get(w, "rss_after"), get(r, "rss_after"), fmt_bytes),
            ("peak RSS during the restart", get(w, "rss_peak"), get(r, "rss_peak"), fmt_bytes),
        ]
        for label, wv, rv, f in rows:
            add(f"| {n:,} | {label} | {'–' if wv is None else f(wv)} | "
                f"{'–' if rv is None else f(rv)} | {fmt_ratio(ratio(wv, rv), True)} |")
    add("")
    add("The backlog is published with confirms (10,000 outstanding) to one durable queue "
        "with no consumer; the broker is then killed with SIGKILL and started on its data "
        "directory; \"ready\" is when it accepts connections again (both brokers recover "
        "their queues before they listen). RabbitMQ runs 1 M only unless "
        "`BENCH_RECOVERY_RABBITMQ` lists more: 10 M takes it many minutes.")
    add("")


def main():
    results, md_path, svg_path = sys.argv[1], sys.argv[2], sys.argv[3]
    machine = load(results, "machine") or {}
    W = {n: load(results, f"warren-{n}") for n, _, _ in THROUGHPUT + MEMORY}
    R = {n: load(results, f"rabbitmq-{n}") for n, _, _ in THROUGHPUT + MEMORY}

    lines = []
    add = lines.append
    add("# Benchmarks: Warren vs RabbitMQ")
    add("")
    add("Generated by `bench/run.sh` (do not edit by hand: rerun it). Both brokers ran on the same "
        "machine in the same run, driven by the same load tool, `warren-perf` (crate `perf/`), "
        "which shares the machine's cores with the broker under test.")
    add("")
    add("## Machine and run")
    add("")
    add(f"- **CPU**: {machine.get('cpu', '?')}, **{machine.get('nproc', '?')} cores** "
        f"(shared by broker and load tool); **RAM** {machine.get('mem_gib', '?')} GiB; "
        f"{machine.get('os', '?')}, kernel {machine.get('kernel', '?')}")
    add(f"- **Date**: {machine.get('date', '?')}; run took {machine.get('elapsed_s', '?')} s; "
        f"load average before `{machine.get('load_before', '?')}`, after "
        f"`{machine.get('load_after', '?')}` (waited {machine.get('waited_for_quiet_s', '?')} s "
        "for a 1-minute load under 0.5 first)")
    add(f"- **Warren** commit `{machine.get('warren_commit', '?')}`, release build "
        f"({machine.get('rustc', '?')}), `warren server`, default options, disk store in a fresh data directory")
    try:
        busy = float(str(machine.get("load_before", "0")).split()[0]) >= 0.5
    except ValueError:
        busy = False
    if machine.get("note"):
        add(f"- **Note**: {machine['note']}")
    if busy:
        add("- **The machine was not quiet**: other jobs were running (load average above), "
            "so absolute figures are low and the latency tails are the most affected; both "
            "brokers ran under the same conditions, one after the other.")
    mode = machine.get("rabbitmq_mode", "dedicated")
    add(f"- **RabbitMQ** {machine.get('rabbitmq_version', '?')} (Debian's `rabbitmq-server`, "
        "Erlang from Debian), default configuration, no plugins, "
        + ("a dedicated node started for the run (127.0.0.1:5701, open-file limit 16384)"
           if mode == "dedicated" else "the system node on 127.0.0.1:5672"))
    add(f"- **Durations**: each throughput scenario publishes for {machine.get('duration_s', '?')} s "
        "(shorter than the usual minutes, to keep the whole run near 10 minutes), then the "
        "consumers drain what is queued; rates are averages over the whole run (publish: until "
        "the producer stopped; end to end: until the last delivery). Memory scenarios each run "
        "on a freshly started broker.")
    add("- **CPU µs/msg** is the broker's user+system CPU time (from `/proc/PID/stat`) over the "
        "run divided by the messages published. On 2 cores shared with the tool this is the "
        "fairest figure: a broker that needs fewer µs per message leaves room for more.")
    add("")

    # ------------------------------------------------------------------ summary table
    add("## Summary")
    add("")
    add("Ratios are Warren ÷ RabbitMQ: higher is better for rates, lower is better for latency "
        "and memory.")
    add("")
    add("| scenario | metric | Warren | RabbitMQ | Warren/RabbitMQ | Warren CPU µs/msg | "
        "RabbitMQ CPU µs/msg |")
    add("|---|---|---:|---:|---:|---:|---:|")
    chart_rows = []
    for name, title, unit in THROUGHPUT:
        w, r = W[name], R[name]
        if name == "s6-latency10k":
            wv, rv = get(w, "latency", "p99_us"), get(r, "latency", "p99_us")
            rr = ratio(wv, rv)
            add(f"| {title} | p99 latency | {fmt_us(wv)} | {fmt_us(rv)} | {fmt_ratio(rr, True)} | "
                f"{fmt_cpu(get(w, 'broker_cpu_us_per_msg'))} | "
                f"{fmt_cpu(get(r, 'broker_cpu_us_per_msg'))} |")
            chart_rows.append(("6. p99 latency at 10k msg/s", ratio(rv, wv), 3.0))
            continue
        wv, rv = get(w, "receive_rate"), get(r, "receive_rate")
        rr = ratio(wv, rv)
        add(f"| {title} | end to end, {unit} | {fmt_rate(wv)} | {fmt_rate(rv)} | "
            f"{fmt_ratio(rr)} | {fmt_cpu(get(w, 'broker_cpu_us_per_msg'))} | "
            f"{fmt_cpu(get(r, 'broker_cpu_us_per_msg'))} |")
        chart_rows.append((title.split(" ", 1)[0] + " " + short(name), rr,
                           10.0 if name == "s1-16b" else None))
    for name, title, unit in MEMORY:
        wv, rv = get(W[name], "bytes_per_item"), get(R[name], "bytes_per_item")
        rr = ratio(wv, rv)
        add(f"| {title} | RSS per {unit} | {fmt_bytes(wv)} | {fmt_bytes(rv)} | {fmt_ratio(rr, True)} "
            "| | |")
        chart_rows.append((title.split(" ", 1)[0] + " memory per " + unit, ratio(rv, wv),
                           10.0 if name in ("s7-connections", "s7-queues") else None))
    add("")
    add(f"![Warren vs RabbitMQ]({os.path.relpath(svg_path, os.path.dirname(md_path))})")
    add("")
    svg_chart(chart_rows, svg_path)

    # ------------------------------------------------------------------ targets
    add("## Targets")
    add("")
    add("| target | result | by how much |")
    add("|---|---|---|")
    def rate_target(name, label, factor):
        """A 'Warren ≥ factor× RabbitMQ' row for a throughput scenario; its Warren rate."""
        w, r = get(W[name], "receive_rate"), get(R[name], "receive_rate")
        x = ratio(w, r)
        if x is not None:
            add(target_line(f"{label}: Warren ≥ {factor}× RabbitMQ", x >= factor,
                            f"{x:.1f}× ({fmt_rate(w)} vs {fmt_rate(r)} msg/s): "
                            + (f"{x / factor:.1f}× the target" if x >= factor
                               else f"{(1 - x / factor) * 100:.0f}% short")))
        return w

    w1 = rate_target("s1-16b", "Scenario 1", 10)
    if w1 is not None:
        add(target_line("Scenario 1: ≥ 1,000,000 msg/s end to end on 2 cores", w1 >= 1e6,
                        f"{w1:,.0f} msg/s: " + (f"{w1 / 1e6:.2f}× the target" if w1 >= 1e6
                                                else f"{(1 - w1 / 1e6) * 100:.0f}% short")))
    rate_target("s4-persistent-confirm", "Scenario 4 (persistent, on disk)", 3)
    for name, label in (("s7-connections", "idle connection"), ("s7-queues", "idle queue")):
        wv, rv = get(W[name], "bytes_per_item"), get(R[name], "bytes_per_item")
        x = ratio(wv, rv)
        if x is None:
            add(f"| Memory per {label} ≤ 1/10 of RabbitMQ | no result | |")
            continue
        detail = f"{fmt_bytes(wv)} vs {fmt_bytes(rv)}: {share(x)} of RabbitMQ's"
        if x > 0.1:
            detail += f"; {fmt_bytes(wv - rv / 10)} per {label.split()[1]} too many " \
                      f"(needs {(1 - (rv / 10) / wv) * 100:.0f}% less)"
        add(target_line(f"Memory per {label} ≤ 1/10 of RabbitMQ", x <= 0.1, detail))
    wv, rv = get(W["s6-latency10k"], "latency", "p99_us"), get(R["s6-latency10k"], "latency", "p99_us")
    x = ratio(wv, rv)
    if x is not None:
        detail = f"{fmt_us(wv)} vs {fmt_us(rv)}: {share(x)} of RabbitMQ's"
        if x > 1 / 3:
            detail += f"; {fmt_us(wv - rv / 3)} over"
        add(target_line("p99 latency at 10k msg/s ≤ 1/3 of RabbitMQ's", x <= 1 / 3, detail))
    add("")

    # ------------------------------------------------------------------ details
    add("## Scenarios in detail")
    add("")
    add("Command lines are `warren-perf throughput ARGS --uri URI --pid PID --json`; raw results "
        "(with per-second rates) are in `bench/results/`.")
    add("")
    for name, title, unit in THROUGHPUT:
        w, r = W[name], R[name]
        add(f"### {title}")
        add("")
        add(f"`{args_of(name)}`")
        add("")
        add("| | Warren | RabbitMQ | Warren/RabbitMQ |")
        add("|---|---:|---:|---:|")
        for label, key, f, better in (
            ("published, msg/s", ("send_rate",), fmt_rate, "high"),
            (f"end to end, {unit}", ("receive_rate",), fmt_rate, "high"),
            ("messages published", ("sent",), lambda v: f"{v:,}" if v is not None else "–", None),
            ("deliveries", ("received",), lambda v: f"{v:,}" if v is not None else "–", None),
            ("consumer latency p50", ("latency", "p50_us"), fmt_us, "low"),
            ("consumer latency p95", ("latency", "p95_us"), fmt_us, "low"),
            ("consumer latency p99", ("latency", "p99_us"), fmt_us, "low"),
            ("consumer latency p99.9", ("latency", "p999_us"), fmt_us, "low"),
            ("broker CPU µs per published msg", ("broker_cpu_us_per_msg",), fmt_cpu, "low"),
            ("tool CPU µs per published msg", ("tool_cpu_us_per_msg",), fmt_cpu, None),
        ):
            wv, rv = get(w, *key), get(r, *key)
            rr = fmt_ratio(ratio(wv, rv), better == "low") if better else ""
            add(f"| {label} | {f(wv)} | {f(rv)} | {rr} |")
        for who, d in (("Warren", w), ("RabbitMQ", r)):
            if d is not None and d.get("error"):
                add(f"\n{who}: the run failed ({d['error']}); see bench/results/.")
        add("")
    add("### 7. Memory (resident set, `/proc/PID/status` VmRSS, before and after)")
    add("")
    add("| scenario | Warren before → after | RabbitMQ before → after | Warren per item | "
        "RabbitMQ per item | Warren/RabbitMQ |")
    add("|---|---:|---:|---:|---:|---:|")
    for name, title, unit in MEMORY:
        w, r = W[name], R[name]
        add(f"| {title} | {fmt_bytes(get(w, 'rss_before'))} → {fmt_bytes(get(w, 'rss_after'))} | "
            f"{fmt_bytes(get(r, 'rss_before'))} → {fmt_bytes(get(r, 'rss_after'))} | "
            f"{fmt_bytes(get(w, 'bytes_per_item'))} | {fmt_bytes(get(r, 'bytes_per_item'))} | "
            f"{fmt_ratio(ratio(get(w, 'bytes_per_item'), get(r, 'bytes_per_item')), True)} |")
    add("")
    add("Connections are opened 50 at a time, each with one channel; queues are exclusive, "
        "declared on one connection; the backlog is published with confirms (10,000 "
        "outstanding) to an exclusive queue with no consumer. RSS is read 2 s after the last "
        "one is in place.")
    add("")
    recovery_table(results, add)

    # ------------------------------------------------------------------ tool
    add("## The load tool")
    add("")
    add("`warren-perf` (crate `perf/`) is modelled on RabbitMQ PerfTest and lavinmqperf and "
        "built on Warren's codec: a publish is encoded once and copied into ~64 KiB writes, "
        "deliveries and confirms are scanned in place in the read buffer, latency comes from a "
        "wall-clock stamp in the first 8 bytes of each body, recorded in HDR histograms. The "
        "benchmark runs it with one worker thread per core (`--threads 2`) for all its "
        "producers and consumers. Its own CPU per message is in the tables above (tool CPU µs "
        "per published msg): a small fraction of either broker's.")
    add("")
    r1 = get(R["s1-16b"], "receive_rate")
    if r1:
        add(f"Against RabbitMQ it reached {fmt_rate(r1)} msg/s end to end in scenario 1 on 2 "
            "shared cores. Published PerfTest figures for RabbitMQ on comparable or larger "
            "hardware are in the same range or below: RabbitMQ's own measurements report a "
            "best consume rate of 64,315 msg/s with many consumers on a multi-core server "
            "(\"RabbitMQ Performance Measurements, part 2\", rabbitmq.com blog, 2012), and a "
            "PerfTest run on 4-vCPU VMs reported 21,653 msg/s "
            "(rabbitmq/rabbitmq-server issue #1207). So the tool drives RabbitMQ at least as "
            "hard as PerfTest does.")
        add("")
    add("Run it yourself: `cargo run --release -p warren-perf -- throughput --uri "
        "amqp://guest:guest@127.0.0.1:5672/%2f -x 1 -y 1 -s 16 --auto-ack --time 10`; "
        "`connection-count`, `queue-count` and `backlog` take `--pid` of the broker. "
        "`--help` lists every option.")
    add("")

    # ------------------------------------------------------------------ profile
    add("## What the profile shows")
    add("")
    notes = os.path.join(os.path.dirname(os.path.abspath(__file__)), "profile-notes.md")
    if os.path.exists(notes):
        with open(notes) as f:
            add(f.read().strip())
        add("")
    prof = os.path.join(results, "warren-profile.txt")
    if os.path.exists(prof) and os.path.getsize(prof) > 0:
        add("Top of `perf record -e cpu-clock -g` on Warren during a 5 s scenario-1 run in this "
            "benchmark (self time, all threads):")
        add("")
        add("```")
        with open(prof) as f:
            for line in f.read().splitlines()[:30]:
                add(re.sub(r"\s+", " ", line.strip()))
        add("```")
        add("")

    # ------------------------------------------------------------------ criterion
    crit = parse_criterion(os.path.join(results, "criterion.txt"))
    if crit:
        add("## Micro-benchmarks (criterion)")
        add("")
        add("`cargo bench -p warren-core --bench codec --bench topic` (`core/benches/`), run "
            "briefly in the same session (2 s per benchmark); medians. Codec benchmarks handle "
            "1,000 messages per iteration, so their throughput is messages per second.")
        add("")
        add("| benchmark | time | throughput |")
        add("|---|---:|---:|")
        for name, time, thrpt in crit:
            add(f"| `{name}` | {time} | {thrpt} |")
        add("")

    # ------------------------------------------------------------------ kept section
    if os.path.exists(md_path):
        with open(md_path) as f:
            old = f.read()
        m = re.search(r"^## WebSocket vs TCP\b.*?(?=^## |\Z)", old, re.S | re.M)
        if m:
            add(m.group(0).rstrip())
            add("")

    with open(md_path, "w") as f:
        f.write("\n".join(lines).rstrip() + "\n")


def parse_criterion(path):
    """(name, median time, median throughput) from criterion's terminal output."""
    rows, name = [], None
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError:
        return rows
    for line in lines:
        m = re.match(r"^(\S+)?\s+time:\s+\[\S+ \S+ (\S+ \S+) \S+ \S+\]", line)
        if m:
            name = m.group(1) or name
            rows.append([name, m.group(2), ""])
            continue
        m = re.match(r"^\s+thrpt:\s+\[\S+ \S+ (\S+ \S+) \S+ \S+\]", line)
        if m and rows:
            rows[-1][2] = m.group(1)
            continue
        if line and not line[0].isspace():
            name = line.strip()
    return rows


def short(name):
    return {
        "s1-16b": "16 B",
        "s2-1kib": "1 KiB",
        "s2-64kib": "64 KiB",
        "s3-ack-prefetch100": "acks, prefetch 100",
        "s3-confirm1000": "confirms 1000",
        "s4-persistent-confirm": "persistent + confirms",
        "s5-fanout10": "fanout ×10 (deliveries)",
        "s5-topic10k": "topic, 10k bindings",
    }.get(name, name)


def args_of(name):
    run_sh = os.path.join(os.path.dirname(os.path.abspath(__file__)), "run.sh")
    try:
        with open(run_sh) as f:
            for line in f:
                m = re.match(r'\s*"' + re.escape(name) + r'\|([^"]*)"', line)
                if m:
                    return m.group(1).replace("$D", "DURATION")
    except OSError:
        pass
    return name


if __name__ == "__main__":
    main()
