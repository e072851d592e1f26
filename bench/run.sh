#!/usr/bin/env bash
# Warren vs RabbitMQ, side by side, with the same load tool (warren-perf), in one run.
#
#   bench/run.sh                 # everything: ~10 minutes, writes BENCHMARKS.md + bench/chart.svg
#   BENCH_DURATION=5 bench/run.sh  # shorter throughput scenarios (default 10 s each)
#   BENCH_NOTE='...' bench/run.sh  # a remark printed under "Machine and run"
#
# What it does:
#   1. waits (up to BENCH_QUIET_WAIT seconds, default 600) for the 1-minute load average to drop
#      under BENCH_MAX_LOAD (default 0.5), and records the load before and after;
#   2. builds warren and warren-perf in release;
#   3. installs Debian's rabbitmq-server if it is missing (bound to 127.0.0.1), and starts a
#      dedicated reference node for the benchmark (warrenbench@localhost, 127.0.0.1:5701, no
#      plugins, open-file limit 16384) so that the numbers are not disturbed by whatever uses
#      the system node on 5672, and so that 1,000 connections fit (the system node keeps
#      Debian's 1024-descriptor limit). BENCH_RABBITMQ=system uses the node on 5672 instead;
#   4. runs every scenario against Warren and against RabbitMQ (memory scenarios each on a
#      freshly started broker; throughput scenarios on one fresh broker each);
#   5. records a CPU profile of Warren in scenario 1 (perf, if it works here), and runs the
#      criterion micro-benchmarks of core/benches briefly (BENCH_CRITERION=0 skips them);
#   6. writes bench/results/*.json, BENCHMARKS.md and bench/chart.svg (bench/report.py).
#
# The system RabbitMQ on 5672 is never stopped or reconfigured; the dedicated node is stopped
# at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

DURATION=${BENCH_DURATION:-10}
MAX_LOAD=${BENCH_MAX_LOAD:-0.5}
QUIET_WAIT=${BENCH_QUIET_WAIT:-600}
RABBIT_MODE=${BENCH_RABBITMQ:-dedicated}
WARREN_PORT=${BENCH_WARREN_PORT:-5702}
RABBIT_PORT=5701
RABBIT_NODE=warrenbench@localhost
RABBIT_DIR=/tmp/warren-bench-rabbitmq
RESULTS=$root/bench/results
PERF_TOOL=$root/target/release/warren-perf
WARREN_BIN=$root/target/release/warren

step() { printf '\n==> %s\n' "$*" >&2; }
load1() { cut -d' ' -f1 /proc/loadavg; }

mkdir -p "$RESULTS"
rm -f "$RESULTS"/*.json "$RESULTS"/*.txt

# ---------------------------------------------------------------------------------------------
step "waiting for a quiet machine (1-min load < $MAX_LOAD, at most ${QUIET_WAIT}s)"
waited=0
while awk -v l="$(load1)" -v m="$MAX_LOAD" 'BEGIN { exit !(l >= m) }'; do
  if [ "$waited" -ge "$QUIET_WAIT" ]; then
    echo "machine still busy (load $(load1)) after ${waited}s: running anyway, the report says so" >&2
    break
  fi
  sleep 15
  waited=$((waited + 15))
done
load_before=$(cat /proc/loadavg)
echo "load: $load_before (waited ${waited}s)" >&2

# ---------------------------------------------------------------------------------------------
step "build (release)"
cargo build --release -q -p warren -p warren-perf

# ---------------------------------------------------------------------------------------------
step "reference RabbitMQ"
if ! command -v rabbitmq-server >/dev/null 2>&1; then
  # Bind to loopback before the package's own start brings the default node up.
  mkdir -p /etc/rabbitmq
  [ -f /etc/rabbitmq/rabbitmq.conf ] || cat >/etc/rabbitmq/rabbitmq.conf <<'EOF'
listeners.tcp.default = 127.0.0.1:5672
loopback_users = none
distribution.listener.interface = 127.0.0.1
EOF
  grep -q ERL_EPMD_ADDRESS /etc/rabbitmq/rabbitmq-env.conf 2>/dev/null ||
    echo 'ERL_EPMD_ADDRESS=127.0.0.1' >>/etc/rabbitmq/rabbitmq-env.conf
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null
fi
rabbit_version=$(dpkg-query -W -f '${Version}' rabbitmq-server 2>/dev/null || echo unknown)

stop_dedicated_rabbit() {
  local pid
  pid=$(cat "$RABBIT_DIR/pid" 2>/dev/null || true)
  if rabbitmqctl -q -n "$RABBIT_NODE" status >/dev/null 2>&1; then
    rabbitmqctl -q -n "$RABBIT_NODE" stop >/dev/null 2>&1 || true
  fi
  if [ -n "$pid" ]; then
    for _ in $(seq 1 100); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.2
    done
  fi
}

# Starts the dedicated node afresh (deleting its data) and sets RABBIT_PID.
start_dedicated_rabbit() {
  stop_dedicated_rabbit
  rm -rf "$RABBIT_DIR"
  mkdir -p "$RABBIT_DIR"
  cat >"$RABBIT_DIR/rabbitmq.conf" <<EOF
listeners.tcp.default = 127.0.0.1:$RABBIT_PORT
loopback_users = none
distribution.listener.interface = 127.0.0.1
EOF
  echo '[].' >"$RABBIT_DIR/enabled_plugins"
  chown -R rabbitmq:rabbitmq "$RABBIT_DIR"
  launch_dedicated_rabbit
}

# Starts the dedicated node on the data it has (after a kill -9: a recovery) and sets RABBIT_PID.
launch_dedicated_rabbit() {
  rm -f "$RABBIT_DIR/pid"
  su rabbitmq -s /bin/sh -c "ulimit -n 16384; cd /var/lib/rabbitmq; \
    export HOME=/var/lib/rabbitmq RABBITMQ_NODENAME=$RABBIT_NODE RABBITMQ_NODE_PORT=$RABBIT_PORT \
      RABBITMQ_DIST_PORT=25701 RABBITMQ_CONFIG_FILE=$RABBIT_DIR/rabbitmq.conf \
      RABBITMQ_ENABLED_PLUGINS_FILE=$RABBIT_DIR/enabled_plugins \
      RABBITMQ_MNESIA_BASE=$RABBIT_DIR/mnesia RABBITMQ_LOG_BASE=$RABBIT_DIR/log \
      RABBITMQ_PID_FILE=$RABBIT_DIR/pid; \
    nohup /usr/lib/rabbitmq/bin/rabbitmq-server >$RABBIT_DIR/startup.log 2>&1 &"
  for _ in $(seq 1 120); do
    if [ -s "$RABBIT_DIR/pid" ] && rabbitmqctl -q -n "$RABBIT_NODE" status >/dev/null 2>&1 &&
      (exec 3<>/dev/tcp/127.0.0.1/$RABBIT_PORT) 2>/dev/null; then
      RABBIT_PID=$(cat "$RABBIT_DIR/pid")
      return 0
    fi
    sleep 0.5
  done
  echo "the dedicated RabbitMQ node did not start; see $RABBIT_DIR/startup.log" >&2
  return 1
}

if [ "$RABBIT_MODE" = system ]; then
  if ! rabbitmqctl -q status >/dev/null 2>&1; then
    service rabbitmq-server start
  fi
  RABBIT_PORT=5672
  RABBIT_PID=$(rabbitmqctl -q eval 'os:getpid().' | tr -d '"')
  start_rabbit() { :; }
else
  start_rabbit() { start_dedicated_rabbit; }
fi
RABBIT_URI="amqp://guest:guest@127.0.0.1:$RABBIT_PORT/%2f"
WARREN_URI="amqp://guest:guest@127.0.0.1:$WARREN_PORT/%2f"

WARREN_PID=
start_warren() {
  stop_warren
  rm -rf "$RESULTS/warren-data"
  launch_warren
}
# Starts Warren on the data directory it has (after a kill -9: a recovery).
launch_warren() {
  "$WARREN_BIN" server --amqp "127.0.0.1:$WARREN_PORT" --data-dir "$RESULTS/warren-data" >"$RESULTS/warren.log" 2>&1 &
  WARREN_PID=$!
  for _ in $(seq 1 100); do
    if (exec 3<>/dev/tcp/127.0.0.1/$WARREN_PORT) 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "warren did not start; see $RESULTS/warren.log" >&2
  return 1
}
stop_warren() {
  if [ -n "$WARREN_PID" ]; then
    kill "$WARREN_PID" 2>/dev/null || true
    wait "$WARREN_PID" 2>/dev/null || true
    WARREN_PID=
  fi
}
cleanup() {
  stop_warren
  if [ "$RABBIT_MODE" != system ]; then stop_dedicated_rabbit; fi
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------------
# Scenarios: name | warren-perf arguments. Each throughput scenario runs for $DURATION seconds of
# publishing, then drains.
D=$DURATION
# The tool's producers and consumers get one worker thread per core, as PerfTest gives each
# client its own thread: with a single thread, a 64 KiB publisher could starve its consumer.
TOOL_THREADS=${BENCH_TOOL_THREADS:-$(nproc)}
THROUGHPUT=(
  "s1-16b|-x 1 -y 1 -s 16 --auto-ack --time $D"
  "s2-1kib|-x 1 -y 1 -s 1024 --auto-ack --time $D"
  "s2-64kib|-x 1 -y 1 -s 65536 --auto-ack --time $D"
  "s3-ack-prefetch100|-x 1 -y 1 -s 16 --prefetch 100 --time $D"
  "s3-confirm1000|-x 1 -y 1 -s 16 --confirm 1000 --auto-ack --time $D"
  "s4-persistent-confirm|-x 1 -y 1 -s 1024 --persistent --confirm 1000 --auto-ack --time $D"
  "s5-fanout10|-x 1 -y 10 -s 16 --auto-ack --exchange perf-fanout --exchange-type fanout --queues 10 --time $D"
  "s5-topic10k|-x 1 -y 1 -s 16 --auto-ack --exchange perf-topic --exchange-type topic --routing-key perf.key.0 --binding-key perf.key.* --bindings 10000 --time $D"
  "s6-latency10k|-x 1 -y 1 -s 16 --auto-ack --rate 10000 --time $D"
)
MEMORY=(
  "s7-connections|connection-count --connections 1000"
  "s7-queues|queue-count --queues 10000"
  "s7-backlog|backlog --messages 1000000 --size 16"
)

run_memory() { # broker uri pid-getter
  local broker=$1 uri=$2 name args
  for entry in "${MEMORY[@]}"; do
    name=${entry%%|*}
    args=${entry#*|}
    if [ "$broker" = warren ]; then start_warren; pid=$WARREN_PID; else start_rabbit; pid=$RABBIT_PID; fi
    sleep 1
    step "$broker $name"
    # shellcheck disable=SC2086
    "$PERF_TOOL" $args --uri "$uri" --pid "$pid" --json >"$RESULTS/$broker-$name.json"
    cat "$RESULTS/$broker-$name.json" >&2
  done
}

# Recovery: a durable queue of N persistent 16 B messages (published with confirms), the broker
# killed with SIGKILL and started again on its data; seconds until it accepts connections again
# (both recover queues before they listen), and its resident memory then and at its peak.
# RabbitMQ takes minutes to queue 10 M persistent messages (and pages them under its memory
# alarm): it runs 1 M unless BENCH_RECOVERY_RABBITMQ says otherwise.
RECOVERY_WARREN=(${BENCH_RECOVERY:-1000000 10000000})
RECOVERY_RABBITMQ=(${BENCH_RECOVERY_RABBITMQ:-1000000})
run_recovery() { # broker sizes...
  local broker=$1 n pid t0 t1 uri
  shift
  for n in "$@"; do
    if [ "$broker" = warren ]; then start_warren; pid=$WARREN_PID; uri=$WARREN_URI
    else start_dedicated_rabbit; pid=$RABBIT_PID; uri=$RABBIT_URI; fi
    step "$broker recovery of $n messages"
    timeout 1800 "$PERF_TOOL" backlog --messages "$n" --size 16 --persistent --keep \
      --queue bench-recovery --uri "$uri" --pid "$pid" --json >"$RESULTS/$broker-recovery-$n-backlog.json" ||
      echo "{}" >"$RESULTS/$broker-recovery-$n-backlog.json"
    kill -9 "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    t0=$(date +%s.%N)
    if [ "$broker" = warren ]; then WARREN_PID=; launch_warren; pid=$WARREN_PID
    else launch_dedicated_rabbit; pid=$RABBIT_PID; fi
    t1=$(date +%s.%N)
    cat >"$RESULTS/$broker-recovery-$n.json" <<EOF
{"scenario": "recovery", "messages": $n, "recovery_secs": $(awk "BEGIN { print $t1 - $t0 }"),
 "rss_after": $(awk '/VmRSS/ { print $2 * 1024 }' "/proc/$pid/status"),
 "rss_peak": $(awk '/VmHWM/ { print $2 * 1024 }' "/proc/$pid/status"),
 "backlog": $(cat "$RESULTS/$broker-recovery-$n-backlog.json")}
EOF
    cat "$RESULTS/$broker-recovery-$n.json" >&2
    if [ "$broker" = warren ]; then stop_warren; else stop_dedicated_rabbit; fi
  done
}

run_throughput() {
  local broker=$1 uri=$2 pid=$3 name args
  for entry in "${THROUGHPUT[@]}"; do
    name=${entry%%|*}
    args=${entry#*|}
    step "$broker $name: $args"
    # shellcheck disable=SC2086
    timeout $((D + 120)) "$PERF_TOOL" throughput $args --threads "$TOOL_THREADS" \
      --uri "$uri" --pid "$pid" --json \
      >"$RESULTS/$broker-$name.json" 2>"$RESULTS/$broker-$name.log" ||
      echo "{\"scenario\": \"throughput\", \"error\": \"exit $?\"}" >"$RESULTS/$broker-$name.json"
    tail -n 3 "$RESULTS/$broker-$name.log" >&2 || true
    sleep 1
  done
}

ulimit -n 16384 2>/dev/null || ulimit -n "$(ulimit -Hn)"
started=$(date +%s)

run_memory warren "$WARREN_URI"
run_memory rabbitmq "$RABBIT_URI"
if [ "${BENCH_RECOVERY_RUN:-1}" = 1 ]; then
  run_recovery warren "${RECOVERY_WARREN[@]}"
  if [ "$RABBIT_MODE" != system ]; then run_recovery rabbitmq "${RECOVERY_RABBITMQ[@]}"; fi
fi

start_warren
run_throughput warren "$WARREN_URI" "$WARREN_PID"
stop_warren
start_rabbit
run_throughput rabbitmq "$RABBIT_URI" "$RABBIT_PID"

# ---------------------------------------------------------------------------------------------
step "CPU profile of Warren in scenario 1"
start_warren
if command -v perf >/dev/null 2>&1; then
  perf record -q -e cpu-clock -F 999 -g -p "$WARREN_PID" -o "$RESULTS/warren.perf.data" \
    -- sleep "$((D > 5 ? 5 : D))" >/dev/null 2>&1 &
  perf_pid=$!
  "$PERF_TOOL" throughput -x 1 -y 1 -s 16 --auto-ack --time "$((D > 5 ? 5 : D))" --threads "$TOOL_THREADS" \
    --uri "$WARREN_URI" --pid "$WARREN_PID" --json >"$RESULTS/warren-profile-run.json" 2>/dev/null || true
  wait "$perf_pid" || true
  perf report -i "$RESULTS/warren.perf.data" --stdio --no-children -g none --percent-limit 0.7 \
    --sort dso,symbol 2>/dev/null | grep -v '^#' | grep -v '^$' | head -40 \
    >"$RESULTS/warren-profile.txt" || true
  rm -f "$RESULTS/warren.perf.data" "$RESULTS/warren.perf.data.old"
fi
stop_warren

if [ "${BENCH_CRITERION:-1}" = 1 ]; then
  step "criterion micro-benchmarks (codec, topic trie)"
  cargo bench -q -p warren-core --bench codec --bench topic -- --warm-up-time 0.5 \
    --measurement-time 2 2>/dev/null | grep -E 'time:|thrpt:|^[a-z]' >"$RESULTS/criterion.txt" || true
fi

elapsed=$(( $(date +%s) - started ))
load_after=$(cat /proc/loadavg)

# ---------------------------------------------------------------------------------------------
step "report"
cat >"$RESULTS/machine.json" <<EOF
{
  "nproc": $(nproc),
  "cpu": "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')",
  "mem_gib": $(awk '/MemTotal/ { printf "%.1f", $2 / 1048576 }' /proc/meminfo),
  "kernel": "$(uname -r)",
  "os": "$(. /etc/os-release && echo "$PRETTY_NAME")",
  "date": "$(date -u +%Y-%m-%dT%H:%MZ)",
  "load_before": "$load_before",
  "load_after": "$load_after",
  "waited_for_quiet_s": $waited,
  "elapsed_s": $elapsed,
  "duration_s": $DURATION,
  "rabbitmq_version": "$rabbit_version",
  "rabbitmq_mode": "$RABBIT_MODE",
  "warren_commit": "$(git rev-parse --short HEAD)",
  "rustc": "$(rustc --version)",
  "note": "$(printf '%s' "${BENCH_NOTE:-}" | tr -d '"\\')"
}
EOF
python3 bench/report.py "$RESULTS" "$root/BENCHMARKS.md" "$root/bench/chart.svg"
echo "wrote BENCHMARKS.md and bench/chart.svg in ${elapsed}s" >&2
