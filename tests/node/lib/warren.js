// Starts a `warren` binary on free loopback ports for one test file, and the helpers the
// tests share. Every wait is bounded; a broker that does not come up fails with its log.
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, existsSync } from "node:fs";
import { createServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import WS from "ws";

export const root = resolve(dirname(fileURLToPath(import.meta.url)), "../../..");

/** The binary under test: $WARREN_BIN, else target/debug/warren. */
export function warrenBin() {
  const bin = process.env.WARREN_BIN || join(root, "target/debug/warren");
  if (!existsSync(bin)) {
    throw new Error(`no warren binary at ${bin}: build it (cargo build -p warren) or set WARREN_BIN`);
  }
  return bin;
}

/** A port nothing listens on right now. */
export function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

function canConnect(port) {
  return new Promise((ok) => {
    const sock = connect({ host: "127.0.0.1", port });
    sock.once("connect", () => { sock.destroy(); ok(true); });
    sock.once("error", () => ok(false));
  });
}

/**
 * Starts warren with `--amqp` and `--ws` (and `--amqps`/`--wss` when `tls` = {cert, key}),
 * plus `extraArgs`; resolves once every listener accepts connections.
 */
export async function startWarren({ tls = null, extraArgs = [] } = {}) {
  const ports = { amqp: await freePort(), ws: await freePort() };
  const args = ["server", "--amqp", `127.0.0.1:${ports.amqp}`, "--ws", `127.0.0.1:${ports.ws}`];
  if (tls) {
    ports.amqps = await freePort();
    ports.wss = await freePort();
    args.push("--amqps", `127.0.0.1:${ports.amqps}`, "--wss", `127.0.0.1:${ports.wss}`);
    args.push("--tls-cert", tls.cert, "--tls-key", tls.key);
  }
  const dir = mkdtempSync(join(tmpdir(), "warren-node-"));
  args.push("--data-dir", join(dir, "data"));
  args.push(...extraArgs);
  const logPath = join(dir, "warren.log");
  const log = openSync(logPath, "w");
  const child = spawn(warrenBin(), args, { stdio: ["ignore", log, log] });
  let exited = null;
  child.on("exit", (code, signal) => { exited = { code, signal }; });
  const deadline = Date.now() + 10_000;
  for (const port of Object.values(ports)) {
    while (!(await canConnect(port))) {
      if (exited) throw new Error(`warren exited during startup (${JSON.stringify(exited)}):\n${readFileSync(logPath, "utf8")}`);
      if (Date.now() > deadline) {
        child.kill("SIGKILL");
        throw new Error(`warren did not listen on ${port} within 10 s:\n${readFileSync(logPath, "utf8")}`);
      }
      await sleep(50);
    }
  }
  return {
    ports,
    pid: child.pid,
    amqpUrl: `amqp://guest:guest@127.0.0.1:${ports.amqp}/%2F`,
    wsUrl: `ws://127.0.0.1:${ports.ws}/ws`,
    log: () => readFileSync(logPath, "utf8"),
    async stop() {
      if (!exited) {
        const gone = new Promise((ok) => child.once("exit", ok));
        child.kill("SIGTERM");
        const t = setTimeout(() => child.kill("SIGKILL"), 3_000);
        await gone;
        clearTimeout(t);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export function sleep(ms) {
  return new Promise((ok) => setTimeout(ok, ms));
}

/** Rejects with `what` if `promise` does not settle within `ms`. */
export function within(ms, what, promise) {
  let timer;
  const timeout = new Promise((_, fail) => {
    timer = setTimeout(() => fail(new Error(`${what}: nothing within ${ms} ms`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * Node 20 has no global WebSocket: AMQPWebSocketClient calls `new WebSocket(url)`, so give it
 * the `ws` package's, with fixed extra options (a CA for wss, an Origin header).
 */
export function useNodeWebSocket(options = {}) {
  globalThis.WebSocket = class extends WS {
    constructor(url, protocols) {
      super(url, protocols, options);
    }
  };
}

/** A unique queue name. */
let counter = 0;
export function uniqueName(what) {
  counter += 1;
  return `node.${what}.${process.pid}.${Date.now()}.${counter}`;
}

/**
 * Consumes `count` messages from `queue` on `channel` (no-ack) and resolves with their bodies
 * as Buffers, in order; the consumer is cancelled after.
 */
export async function consumeBodies(channel, queue, count, ms = 10_000) {
  const bodies = [];
  let done;
  const all = new Promise((ok) => { done = ok; });
  const consumer = await channel.basicConsume(queue, { noAck: true }, (msg) => {
    bodies.push(Buffer.from(msg.body ?? new Uint8Array(0)));
    if (bodies.length === count) done();
  });
  try {
    await within(ms, `waiting for ${count} messages on ${queue} (got ${bodies.length})`, all);
  } finally {
    await consumer.cancel().catch(() => {});
  }
  return bodies;
}

/**
 * A self-signed certificate for localhost and 127.0.0.1, made with the openssl CLI in a
 * fresh directory: { dir, cert, key, certPem }.
 */
export function makeCertificate() {
  const dir = mkdtempSync(join(tmpdir(), "warren-cert-"));
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  const config = join(dir, "openssl.cnf");
  writeFileSync(config, [
    "[req]", "distinguished_name = dn", "x509_extensions = ext", "prompt = no",
    "[dn]", "CN = localhost",
    "[ext]", "subjectAltName = DNS:localhost, IP:127.0.0.1",
    "basicConstraints = critical, CA:FALSE", "keyUsage = digitalSignature",
    "extendedKeyUsage = serverAuth", "",
  ].join("\n"));
  execFileSync("openssl", [
    "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
    "-keyout", key, "-out", cert, "-days", "2", "-config", config,
  ], { stdio: ["ignore", "ignore", "pipe"] });
  return { dir, cert, key, certPem: readFileSync(cert, "utf8"), remove: () => rmSync(dir, { recursive: true, force: true }) };
}
