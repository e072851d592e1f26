// Throughput of AMQP over WebSocket vs TCP against one warren (release build), with
// @cloudamqp/amqp-client as the load tool: one publisher and one no-ack consumer on the same
// transport, N messages of SIZE bytes, no confirms. Reports msg/s end to end (first publish to
// last delivery) and the broker's CPU time per message from /proc/PID/stat (utime + stime).
//
//   node bench/ws-vs-tcp.js [--messages 200000] [--size 16] [--rounds 3]
//   WARREN_BIN=/path/to/warren (default: target/release/warren)
import { readFileSync, readdirSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { cpus } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { AMQPClient, AMQPWebSocketClient } from "@cloudamqp/amqp-client";
import { startWarren, useNodeWebSocket, root, within } from "../lib/warren.js";

const { values } = parseArgs({
  options: {
    messages: { type: "string", default: "200000" },
    size: { type: "string", default: "16" },
    rounds: { type: "string", default: "3" },
    only: { type: "string" }, // "tcp" or "ws": run one transport (for profiling)
  },
});
const N = Number(values.messages);
const SIZE = Number(values.size);
const ROUNDS = Number(values.rounds);
process.env.WARREN_BIN ||= join(root, "target/release/warren");
const TICKS = Number(execFileSync("getconf", ["CLK_TCK"]).toString().trim());

/** Broker CPU seconds so far (user + system). */
function cpuSeconds(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / TICKS; // utime, stime (fields 14, 15)
}

/** Context switches of all the broker's threads so far: one per wake-up, near enough. */
function switches(pid) {
  let n = 0;
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    const status = readFileSync(`/proc/${pid}/task/${task}/status`, "utf8");
    for (const m of status.matchAll(/^(non)?voluntary_ctxt_switches:\s+(\d+)/gm)) n += Number(m[2]);
  }
  return n;
}

async function run(warren, transport) {
  const client = () =>
    transport === "ws" ? new AMQPWebSocketClient(warren.wsUrl) : new AMQPClient(warren.amqpUrl);
  const pubConn = await client().connect();
  const subConn = await client().connect();
  const pub = await pubConn.channel();
  const sub = await subConn.channel();
  const { name: queue } = await sub.queueDeclare("", { exclusive: true });
  let received = 0;
  let done;
  const all = new Promise((ok) => { done = ok; });
  await sub.basicConsume(queue, { noAck: true }, () => {
    received += 1;
    if (received === N) done();
  });
  const body = new Uint8Array(SIZE).fill(120);
  const cpu0 = cpuSeconds(warren.pid);
  const s0 = switches(warren.pid);
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < N; i += 1000) {
    const batch = [];
    for (let j = i; j < Math.min(N, i + 1000); j++) batch.push(pub.basicPublish("", queue, body));
    await Promise.all(batch);
    // Over WebSocket basicPublish resolves as soon as the message is queued, so yield to the
    // event loop, or the consumer (same process) would not run until everything is sent.
    await new Promise((resolve) => setImmediate(resolve));
  }
  await within(120_000, `${transport}: ${N} deliveries (got ${received})`, all);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = cpuSeconds(warren.pid) - cpu0;
  const s1 = switches(warren.pid);
  await pubConn.close();
  await subConn.close();
  return {
    rate: N / seconds,
    cpuUsPerMsg: (cpu * 1e6) / N,
    switchesPerMsg: (s1 - s0) / N,
  };
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

useNodeWebSocket();
const warren = await startWarren();
try {
  if (values.only) {
    const res = await run(warren, values.only);
    console.log(values.only, JSON.stringify(res));
    process.exit(0);
  }
  const results = { tcp: [], ws: [] };
  await run(warren, "tcp"); // warm-up
  await run(warren, "ws");
  for (let r = 0; r < ROUNDS; r++) {
    for (const t of r % 2 ? ["ws", "tcp"] : ["tcp", "ws"]) {
      const res = await run(warren, t);
      results[t].push(res);
      console.error(`round ${r + 1} ${t}: ${JSON.stringify(res)}`);
    }
  }
  const row = (t) => ({
    rate: median(results[t].map((x) => x.rate)),
    cpu: median(results[t].map((x) => x.cpuUsPerMsg)),
    switches: median(results[t].map((x) => x.switchesPerMsg)),
  });
  const tcp = row("tcp");
  const ws = row("ws");
  console.log(`${N} messages of ${SIZE} B, 1 publisher + 1 no-ack consumer, median of ${ROUNDS} rounds`);
  console.log(`machine: ${cpus().length} cores (${cpus()[0]?.model ?? "?"}), load tool on the same cores`);
  console.log("");
  const line = (name, r) =>
    `| ${name} | ${Math.round(r.rate)} | ${r.cpu.toFixed(2)} | ${r.switches.toFixed(3)} |`;
  console.log("| transport | msg/s | broker CPU µs/msg | broker context switches/msg |");
  console.log("|---|---:|---:|---:|");
  console.log(line("TCP", tcp));
  console.log(line("WebSocket", ws));
  console.log(`| WS / TCP | ${(ws.rate / tcp.rate).toFixed(2)} | ${(ws.cpu / tcp.cpu).toFixed(2)} | |`);
} finally {
  await warren.stop();
}
