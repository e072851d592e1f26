// warren-broker: an AMQP 0-9-1 broker (Warren's Rust core, compiled to wasm) for browsers, Web
// Workers and edge workers. Clients speak real AMQP bytes to it over WebSocket-shaped objects.
//
//   const broker = await Broker.create();
//   broker.installWebSocketShim("warren://local");
//   const amqp = new AMQPWebSocketClient("warren://local");   // @cloudamqp/amqp-client, unchanged
//
// or, for demos, the convenience API over the same AMQP path:
//
//   await broker.declareQueue("q");
//   await broker.publish("", "q", "hello");
//   await broker.consume("q", (msg) => { console.log(msg.text); msg.ack(); });

import init, { initSync, Engine } from "../dist/warren.js";
import { AmqpClient, AmqpError, Message } from "./amqp.js";
import { BrokerSocket, schedule } from "./socket.js";
import { IdbStore } from "./idb.js";

export { AmqpClient, AmqpError, Message, BrokerSocket, IdbStore };

let wasmReady = null;

/**
 * Loads and instantiates the wasm module once. `source` may be a `WebAssembly.Module` (edge
 * workers import one), bytes, a URL or a Response; by default the `.wasm` file next to the
 * package is fetched (or read from disk under Node).
 */
export function loadWasm(source) {
  if (wasmReady) return wasmReady;
  wasmReady = (async () => {
    if (source instanceof WebAssembly.Module || ArrayBuffer.isView(source) || source instanceof ArrayBuffer) {
      initSync({ module: source });
      return;
    }
    if (source) {
      await init({ module_or_path: source });
      return;
    }
    const url = new URL("../dist/warren_bg.wasm", import.meta.url);
    const fs = url.protocol === "file:" ? globalThis.process?.getBuiltinModule?.("node:fs") : null;
    if (fs) {
      initSync({ module: fs.readFileSync(url) });
      return;
    }
    await init({ module_or_path: url });
  })();
  wasmReady.catch(() => { wasmReady = null; });
  return wasmReady;
}

// --- WebSocket stand-in -------------------------------------------------------------------

const shimRegistry = new Map(); // normalised URL → link
let shim = null; // { Real, Shim } while installed

function normaliseUrl(url) {
  return String(url).replace(/\/+$/, "");
}

function installShim(url, link) {
  shimRegistry.set(normaliseUrl(url), link);
  if (!shim) {
    const Real = typeof globalThis.WebSocket === "function" ? globalThis.WebSocket : null;
    const Base = Real ?? BrokerSocket;
    class WebSocket extends Base {
      constructor(target, protocols) {
        const served = shimRegistry.get(normaliseUrl(target));
        if (served) return new BrokerSocket(target, served, protocols);
        if (!Real) throw new SyntaxError(`no WebSocket implementation for ${target}`);
        super(target, protocols);
      }
    }
    for (const [k, v] of Object.entries({ CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 })) {
      if (!(k in WebSocket)) Object.defineProperty(WebSocket, k, { value: v });
    }
    shim = { Real, Shim: WebSocket };
    globalThis.WebSocket = WebSocket;
  }
  return () => {
    if (shimRegistry.get(normaliseUrl(url)) !== link) return;
    shimRegistry.delete(normaliseUrl(url));
    if (shimRegistry.size === 0 && shim && globalThis.WebSocket === shim.Shim) {
      if (shim.Real) globalThis.WebSocket = shim.Real;
      else delete globalThis.WebSocket;
      shim = null;
    }
  };
}

// --- What local and worker brokers share --------------------------------------------------

/**
 * The part of the API that local ({@link Broker}) and worker ({@link RemoteBroker}) brokers
 * share: WebSocket-shaped connections and the convenience client. Subclasses provide
 * `attach(endpoint)`.
 */
class BrokerBase extends EventTarget {
  #client = null;
  #uninstall = [];

  /** A new connection with a browser WebSocket's shape (speak AMQP bytes over it). */
  connect(url = "warren://local") {
    return new BrokerSocket(url, this);
  }

  /** A `WebSocket`-compatible class whose instances connect to this broker, whatever URL. */
  webSocketClass() {
    const link = this;
    return class extends BrokerSocket {
      constructor(url = "warren://local", protocols) {
        super(url, link, protocols);
      }
    };
  }

  /**
   * Makes `new WebSocket(url)` connect to this broker for `url` (other URLs still reach the
   * network). Returns a function that uninstalls it.
   */
  installWebSocketShim(url = "warren://local") {
    const uninstall = installShim(url, this);
    this.#uninstall.push(uninstall);
    return uninstall;
  }

  _uninstallShims() {
    for (const u of this.#uninstall.splice(0)) u();
  }

  /** The convenience API's AMQP connection (opened on first use, reopened if it closed). */
  async client() {
    if (this.#client) {
      const c = await this.#client.catch(() => null);
      if (c?.isOpen) return c;
    }
    this.#client = AmqpClient.open(this.connect("warren://convenience"));
    return this.#client;
  }

  async declareExchange(name, type = "direct", options = {}) {
    return (await this.client()).declareExchange(name, type, options);
  }
  async deleteExchange(name, options = {}) {
    return (await this.client()).deleteExchange(name, options);
  }
  async declareQueue(name = "", options = {}) {
    return (await this.client()).declareQueue(name, options);
  }
  async deleteQueue(name, options = {}) {
    return (await this.client()).deleteQueue(name, options);
  }
  async purgeQueue(name) {
    return (await this.client()).purgeQueue(name);
  }
  async bind(queue, exchange, routingKey = "", args = {}) {
    return (await this.client()).bind(queue, exchange, routingKey, args);
  }
  async unbind(queue, exchange, routingKey = "", args = {}) {
    return (await this.client()).unbind(queue, exchange, routingKey, args);
  }
  async bindExchange(destination, source, routingKey = "", args = {}) {
    return (await this.client()).bindExchange(destination, source, routingKey, args);
  }
  async publish(exchange, routingKey, body, properties = {}) {
    return (await this.client()).publish(exchange, routingKey, body, properties);
  }
  async get(queue, options = {}) {
    return (await this.client()).get(queue, options);
  }
  async consume(queue, onMessage, options = {}) {
    return (await this.client()).consume(queue, onMessage, options);
  }
}

// --- The broker, here ---------------------------------------------------------------------

const TOKEN = Symbol("Broker.create");

/**
 * A broker running in this JavaScript realm (page, worker, edge worker).
 * Create with `await Broker.create(options)`.
 */
export class Broker extends BrokerBase {
  /**
   * @param {object} [options]
   * @param {string} [options.persist] keep durable entities and persistent messages in the
   *   IndexedDB database `warren:<persist>` (loaded now, written behind).
   * @param {number} [options.heartbeat=60] heartbeat offered to clients, seconds (0: off).
   * @param {number} [options.frameMax=131072]
   * @param {number} [options.channelMax=2047]
   * @param {Array<{username: string, password: string}>} [options.users] default guest/guest.
   * @param {() => number} [options.now] clock in ms (default `performance.now()`).
   * @param {WebAssembly.Module|BufferSource|URL|string} [options.wasm] where the wasm is.
   * @param {IDBFactory} [options.indexedDB]
   */
  static async create(options = {}) {
    await loadWasm(options.wasm);
    let store = null;
    let recovered = new Uint8Array(0);
    if (options.persist) {
      store = await IdbStore.open(options.persist, options.indexedDB);
      recovered = await store.load();
    }
    return new Broker(options, store, recovered, TOKEN);
  }

  #engine;
  #store;
  #clock;
  #t0;
  #endpoints = new Map(); // connection id → endpoint
  #flushQueued = false;
  #timer = null;
  #timerAt = -1;
  #failed = null;
  #changeQueued = false;

  constructor(options, store, recovered, token) {
    super();
    if (token !== TOKEN) throw new TypeError("use `await Broker.create()`");
    this.#store = store;
    this.#clock = options.now ?? (() => globalThis.performance?.now() ?? Date.now());
    this.#t0 = this.#clock();
    const users = (options.users ?? []).flatMap((u) => [u.username, u.password]);
    const seed = options.seed ?? Math.floor(Math.random() * 2 ** 52) + 1;
    this.#engine = new Engine(seed, options.heartbeat ?? 60, options.frameMax ?? 0,
      options.channelMax ?? 0, users, store !== null, recovered);
    this.#engine.setUnixTimeOffset(Date.now());
    /** Stored records that could not be read at start (skipped). */
    this.recoveryErrors = this.#engine.recoveryErrors();
    this.#arm();
  }

  #now() {
    return Math.max(0, this.#clock() - this.#t0);
  }

  /** Serves one connection: the link interface {@link BrokerSocket} uses. */
  attach(endpoint) {
    if (this.#failed) throw this.#failed;
    if (!this.#engine) throw new Error("broker is closed");
    const id = this.#engine.connect(this.#now());
    this.#endpoints.set(id, endpoint);
    this.#queueFlush();
    return {
      send: (bytes) => {
        if (!this.#endpoints.has(id)) return;
        this.#guard(() => this.#engine.input(id, bytes, this.#now()));
        this.#queueFlush();
      },
      close: () => {
        if (!this.#endpoints.delete(id)) return;
        this.#guard(() => this.#engine.eof(id, this.#now()));
        this.#queueFlush();
      },
    };
  }

  #guard(fn) {
    if (this.#failed || !this.#engine) return;
    try {
      fn();
    } catch (err) {
      // A trap in the wasm is a bug; its memory can no longer be trusted.
      this.#failed = err instanceof Error ? err : new Error(String(err));
      console.error("warren: broker failed", err);
      clearTimeout(this.#timer);
      for (const ep of this.#endpoints.values()) ep.closed(1011, "broker failed", false);
      this.#endpoints.clear();
    }
  }

  #queueFlush() {
    if (this.#flushQueued) return;
    this.#flushQueued = true;
    queueMicrotask(() => this.#flush());
  }

  // Sends each connection its output (one fresh ArrayBuffer per batch), closes finished ones,
  // writes the storage journal, re-arms the timer.
  #flush() {
    this.#flushQueued = false;
    if (this.#failed || !this.#engine) return;
    const now = this.#now();
    let changed = false;
    this.#guard(() => {
      for (let ids = this.#engine.takeDirty(); ids.length; ids = this.#engine.takeDirty()) {
        changed = true;
        for (const id of ids) {
          const out = this.#engine.takeOutput(id);
          const ep = this.#endpoints.get(id);
          if (out.length && ep) ep.data(out.buffer);
          if (this.#engine.isClosed(id)) {
            this.#engine.forget(id, now);
            this.#endpoints.delete(id);
            ep?.closed(1000, "", true);
          }
        }
      }
      const ops = this.#engine.takeStorageOps();
      if (ops.length && this.#store) {
        this.#store.write(ops).catch((err) => console.error("warren: IndexedDB write failed", err));
      }
    });
    this.#arm();
    if (changed && !this.#changeQueued) {
      this.#changeQueued = true;
      schedule(() => {
        this.#changeQueued = false;
        this.dispatchEvent(new Event("change"));
      });
    }
  }

  #arm() {
    if (this.#failed || !this.#engine) return;
    const at = this.#engine.pollTimeout();
    if (at === this.#timerAt) return;
    clearTimeout(this.#timer);
    this.#timerAt = at;
    if (at < 0) return;
    this.#timer = setTimeout(() => {
      this.#timerAt = -1;
      this.#guard(() => this.#engine.timeout(this.#now()));
      this.#queueFlush();
      this.#arm();
    }, Math.max(0, at - this.#now() + 1));
    this.#timer.unref?.();
  }

  /** Exchanges (with bindings) and queues (with counts) of `vhost`. */
  topology(vhost = "/") {
    if (!this.#engine) throw new Error("broker is closed");
    return JSON.parse(this.#engine.topology(vhost));
  }

  /**
   * Where a message published to `exchange` with `routingKey` (and string `headers`) would be
   * routed: `{ found, queues, bindings }`, each binding with the topic words it matched.
   */
  trace(exchange, routingKey, { headers = {}, vhost = "/" } = {}) {
    if (!this.#engine) throw new Error("broker is closed");
    const flat = Object.entries(headers).flatMap(([k, v]) => [k, String(v)]);
    return JSON.parse(this.#engine.trace(vhost, exchange, routingKey, flat));
  }

  /** Open connections. */
  get connectionCount() {
    return this.#engine ? this.#engine.connectionCount() : 0;
  }

  /** Resolves once every change so far is written to IndexedDB (at once without `persist`). */
  async flush() {
    this.#flush();
    await this.#store?.settled();
  }

  /** Serves one AMQP connection over a MessagePort (`{t:"data", b}` / `{t:"close"}` messages). */
  servePort(port) {
    const conn = this.attach({
      data: (buf) => port.postMessage({ t: "data", b: buf }, [buf]),
      closed: (code, reason, clean) => {
        port.postMessage({ t: "close", code, reason, clean });
        port.close();
      },
    });
    port.onmessage = (e) => {
      const m = e.data;
      if (m?.t === "data") conn.send(new Uint8Array(m.b));
      else if (m?.t === "close") {
        conn.close();
        port.close();
      }
    };
  }

  /**
   * Serves one AMQP connection over a server-side WebSocket (workerd's `WebSocketPair`,
   * Deno, Bun, or the `ws` package): binary messages in, one binary message per output batch.
   * The socket must already be accepted/open.
   */
  serveWebSocket(socket) {
    const conn = this.attach({
      data: (buf) => socket.send(buf),
      closed: (code) => {
        try { socket.close(code === 1000 ? 1000 : 1011, code === 1000 ? "" : "broker failed"); } catch { /* gone */ }
      },
    });
    socket.addEventListener("message", (e) => {
      const d = e.data;
      conn.send(typeof d === "string" ? new TextEncoder().encode(d)
        : d instanceof ArrayBuffer ? new Uint8Array(d) : new Uint8Array(d.buffer, d.byteOffset, d.byteLength));
    });
    socket.addEventListener("close", () => conn.close());
    socket.addEventListener("error", () => conn.close());
  }

  /** Answers a {@link RemoteBroker}'s requests on a control port (see worker.js). */
  serveControl(port) {
    port.onmessage = (e) => handleControl(this, port, e);
    port.postMessage({ t: "ready" });
  }

  /** Closes every connection (code 1001), waits for IndexedDB, frees the broker. */
  async close() {
    if (!this.#engine) return;
    this._uninstallShims();
    for (const ep of this.#endpoints.values()) ep.closed(1001, "broker closed", true);
    this.#endpoints.clear();
    clearTimeout(this.#timer);
    await this.flush().catch(() => {});
    this.#store?.close();
    this.#engine.free();
    this.#engine = null;
  }
}

async function handleControl(broker, port, e) {
  const m = e.data;
  if (m?.t === "connect") {
    broker.servePort(e.ports[0]);
  } else if (m?.t === "rpc") {
    try {
      let r;
      if (m.method === "topology") r = broker.topology(...m.args);
      else if (m.method === "trace") r = broker.trace(...m.args);
      else if (m.method === "flush") r = await broker.flush();
      else throw new Error(`unknown method ${m.method}`);
      port.postMessage({ t: "rpc", id: m.id, r });
    } catch (err) {
      port.postMessage({ t: "rpc", id: m.id, error: String(err?.message ?? err) });
    }
  }
}

// --- A broker in a (Shared)Worker -----------------------------------------------------------

/**
 * A broker running in a Web Worker or SharedWorker (see `warren-broker/worker`), reached over
 * MessagePorts: one port per AMQP connection. Several tabs can share one SharedWorker broker.
 * Same API as {@link Broker}, but `topology`, `trace` and `flush` return promises.
 */
export class RemoteBroker extends BrokerBase {
  /**
   * @param {Worker|SharedWorker|MessagePort} target
   * @param {object} [options] broker options for the worker (used by the first tab only).
   */
  static async connect(target, options = {}) {
    const ctl = typeof SharedWorker === "function" && target instanceof SharedWorker ? target.port : target;
    const remote = new RemoteBroker(ctl, TOKEN);
    const ready = new Promise((resolve, reject) => {
      remote.#onReady = resolve;
      ctl.addEventListener?.("messageerror", reject);
    });
    ctl.start?.();
    const { wasm, indexedDB, now, ...plain } = options;
    void wasm; void indexedDB; void now;
    ctl.postMessage({ t: "hello", options: plain });
    await ready;
    return remote;
  }

  #ctl;
  #onReady = null;
  #nextRpc = 1;
  #rpcs = new Map();
  #ports = new Set();

  constructor(ctl, token) {
    super();
    if (token !== TOKEN) throw new TypeError("use `await RemoteBroker.connect(worker)`");
    this.#ctl = ctl;
    ctl.onmessage = (e) => {
      const m = e.data;
      if (m?.t === "ready") this.#onReady?.();
      else if (m?.t === "rpc") {
        const p = this.#rpcs.get(m.id);
        this.#rpcs.delete(m.id);
        if (m.error) p?.reject(new Error(m.error));
        else p?.resolve(m.r);
      }
    };
    // A closing tab tells the worker, so its connections go at once (not at heartbeat timeout).
    globalThis.addEventListener?.("pagehide", () => {
      for (const port of this.#ports) port.postMessage({ t: "close" });
    });
  }

  /** The link interface {@link BrokerSocket} uses: a fresh MessagePort per connection. */
  attach(endpoint) {
    const { port1, port2 } = new MessageChannel();
    this.#ctl.postMessage({ t: "connect" }, [port2]);
    this.#ports.add(port1);
    port1.onmessage = (e) => {
      const m = e.data;
      if (m?.t === "data") endpoint.data(m.b);
      else if (m?.t === "close") {
        this.#ports.delete(port1);
        port1.close();
        endpoint.closed(m.code ?? 1000, m.reason ?? "", m.clean ?? true);
      }
    };
    return {
      send: (bytes) => {
        const copy = bytes.slice();
        port1.postMessage({ t: "data", b: copy.buffer }, [copy.buffer]);
      },
      close: () => {
        this.#ports.delete(port1);
        port1.postMessage({ t: "close" });
        port1.close();
      },
    };
  }

  #rpc(method, args) {
    const id = this.#nextRpc++;
    return new Promise((resolve, reject) => {
      this.#rpcs.set(id, { resolve, reject });
      this.#ctl.postMessage({ t: "rpc", id, method, args });
    });
  }

  topology(vhost = "/") {
    return this.#rpc("topology", [vhost]);
  }
  trace(exchange, routingKey, options = {}) {
    return this.#rpc("trace", [exchange, routingKey, options]);
  }
  flush() {
    return this.#rpc("flush", []);
  }
}
