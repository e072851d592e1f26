// A WebSocket-shaped connection to an in-page (or in-worker) broker, and the global
// `WebSocket` stand-in that lets unmodified AMQP-over-WebSocket clients reach it by URL.
//
// What a client sees is what a browser WebSocket gives it: readyState, binaryType, send(),
// close(), open/message/close/error events (as `on*` properties and via addEventListener),
// events fired asynchronously, one fresh ArrayBuffer per message, never a view into wasm
// memory. Bytes are AMQP bytes: a message is not a frame; frames split anywhere.

/** Runs `fn` soon, as a task (not clamped like nested setTimeout(0)). */
export const schedule = (() => {
  if (typeof setImmediate === "function") return (fn) => setImmediate(fn);
  if (typeof MessageChannel === "function") {
    const queue = [];
    const channel = new MessageChannel();
    channel.port1.onmessage = () => {
      const batch = queue.splice(0);
      for (const fn of batch) fn();
    };
    return (fn) => {
      queue.push(fn);
      if (queue.length === 1) channel.port2.postMessage(0);
    };
  }
  return (fn) => setTimeout(fn, 0);
})();

const CONNECTING = 0;
const OPEN = 1;
const CLOSING = 2;
const CLOSED = 3;

function closeEvent(code, reason, wasClean) {
  if (typeof CloseEvent === "function") return new CloseEvent("close", { code, reason, wasClean });
  const e = new Event("close");
  Object.defineProperties(e, {
    code: { value: code },
    reason: { value: reason },
    wasClean: { value: wasClean },
  });
  return e;
}

function messageEvent(data) {
  if (typeof MessageEvent === "function") return new MessageEvent("message", { data });
  const e = new Event("message");
  Object.defineProperty(e, "data", { value: data });
  return e;
}

function toBytes(data) {
  if (typeof data === "string") return new TextEncoder().encode(data);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  throw new TypeError("BrokerSocket.send: expected a string, ArrayBuffer, ArrayBufferView or Blob");
}

/**
 * One connection to a broker with a browser WebSocket's shape. Made by `broker.connect()`, or
 * by `new WebSocket(url)` once `broker.installWebSocketShim(url)` ran.
 *
 * `link` is what carries the bytes: `link.attach(endpoint)` returns `{ send(bytes), close() }`
 * and calls `endpoint.data(arrayBuffer)` and `endpoint.closed(code, reason, wasClean)`.
 */
export class BrokerSocket extends EventTarget {
  static CONNECTING = CONNECTING;
  static OPEN = OPEN;
  static CLOSING = CLOSING;
  static CLOSED = CLOSED;
  CONNECTING = CONNECTING;
  OPEN = OPEN;
  CLOSING = CLOSING;
  CLOSED = CLOSED;

  #conn = null;
  #state = CONNECTING;
  #handlers = {};
  #blobs = null; // a promise chain while Blob sends are being read

  constructor(url, link, protocols) {
    super();
    this.url = String(url);
    this.protocol = "";
    this.extensions = "";
    this.bufferedAmount = 0;
    this.binaryType = "blob";
    void protocols;
    const endpoint = {
      data: (buf) => schedule(() => this.#deliver(buf)),
      closed: (code, reason, wasClean) => schedule(() => this.#finish(code, reason, wasClean)),
    };
    schedule(() => {
      if (this.#state !== CONNECTING) return;
      try {
        this.#conn = link.attach(endpoint);
      } catch (err) {
        this.#fire(new Event("error"));
        this.#finish(1006, String(err?.message ?? err), false);
        return;
      }
      this.#state = OPEN;
      this.#fire(new Event("open"));
    });
  }

  get readyState() { return this.#state; }
  get onopen() { return this.#handlers.open ?? null; }
  set onopen(fn) { this.#handlers.open = fn; }
  get onmessage() { return this.#handlers.message ?? null; }
  set onmessage(fn) { this.#handlers.message = fn; }
  get onclose() { return this.#handlers.close ?? null; }
  set onclose(fn) { this.#handlers.close = fn; }
  get onerror() { return this.#handlers.error ?? null; }
  set onerror(fn) { this.#handlers.error = fn; }

  #fire(event) {
    const handler = this.#handlers[event.type];
    if (typeof handler === "function") {
      try { handler.call(this, event); } catch (err) { reportError(err); }
    }
    this.dispatchEvent(event);
  }

  #deliver(buf) {
    if (this.#state !== OPEN) return;
    const data = this.binaryType === "arraybuffer" || typeof Blob !== "function" ? buf : new Blob([buf]);
    this.#fire(messageEvent(data));
  }

  #finish(code, reason, wasClean) {
    if (this.#state === CLOSED) return;
    this.#state = CLOSED;
    this.#conn = null;
    if (!wasClean) this.#fire(new Event("error"));
    this.#fire(closeEvent(code, reason, wasClean));
  }

  /** Sends bytes to the broker (AMQP frames, or any part of them). */
  send(data) {
    if (this.#state === CONNECTING) {
      throw new DOMException("Still in CONNECTING state.", "InvalidStateError");
    }
    if (this.#state !== OPEN) return;
    if (typeof Blob === "function" && data instanceof Blob) {
      const prev = this.#blobs ?? Promise.resolve();
      this.#blobs = prev.then(() => data.arrayBuffer()).then((b) => this.#conn?.send(new Uint8Array(b)));
      return;
    }
    const bytes = toBytes(data);
    if (this.#blobs) {
      this.#blobs = this.#blobs.then(() => this.#conn?.send(bytes.slice()));
      return;
    }
    this.#conn.send(bytes);
  }

  /** Closes the connection; the broker sees the peer go away (as a dropped socket). */
  close(code, reason = "") {
    if (this.#state === CLOSING || this.#state === CLOSED) return;
    const conn = this.#conn;
    this.#state = CLOSING;
    conn?.close();
    schedule(() => this.#finish(code ?? 1005, reason, true));
  }
}

function reportError(err) {
  if (typeof globalThis.reportError === "function") globalThis.reportError(err);
  else setTimeout(() => { throw err; });
}
