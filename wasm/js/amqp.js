// A small AMQP 0-9-1 client over any WebSocket-shaped object. It backs the convenience API
// (Broker#declareQueue, #publish, #consume, ...) so that API speaks the same bytes as every
// other client of the broker: nothing goes beside the AMQP path.
//
// Scope: what demos need. One connection; channel 1 for declarations and publishes (with
// publisher confirms); one channel per consumer. Frames may split across WebSocket messages
// and several may share one.

const FRAME_METHOD = 1;
const FRAME_HEADER = 2;
const FRAME_BODY = 3;
const FRAME_HEARTBEAT = 8;
const FRAME_END = 0xce;
const PROTOCOL_HEADER = new Uint8Array([65, 77, 81, 80, 0, 0, 9, 1]);

const utf8 = new TextEncoder();
const fromUtf8 = new TextDecoder();

/** An AMQP error: `code` is the reply code (404 NOT_FOUND, 406 PRECONDITION_FAILED, ...). */
export class AmqpError extends Error {
  constructor(code, text, classId = 0, methodId = 0, scope = "channel") {
    super(`${code} ${text}`);
    this.name = "AmqpError";
    this.code = code;
    this.replyText = text;
    this.classId = classId;
    this.methodId = methodId;
    this.scope = scope;
  }
}

class Writer {
  constructor(size = 256) {
    this.buf = new Uint8Array(size);
    this.view = new DataView(this.buf.buffer);
    this.pos = 0;
  }
  need(n) {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(v) { this.need(1); this.view.setUint8(this.pos, v); this.pos += 1; return this; }
  u16(v) { this.need(2); this.view.setUint16(this.pos, v); this.pos += 2; return this; }
  u32(v) { this.need(4); this.view.setUint32(this.pos, v); this.pos += 4; return this; }
  i32(v) { this.need(4); this.view.setInt32(this.pos, v); this.pos += 4; return this; }
  u64(v) {
    this.need(8);
    this.view.setBigUint64(this.pos, BigInt(v));
    this.pos += 8;
    return this;
  }
  i64(v) { this.need(8); this.view.setBigInt64(this.pos, BigInt(v)); this.pos += 8; return this; }
  f64(v) { this.need(8); this.view.setFloat64(this.pos, v); this.pos += 8; return this; }
  bytes(b) { this.need(b.length); this.buf.set(b, this.pos); this.pos += b.length; return this; }
  shortstr(s) {
    const b = utf8.encode(String(s ?? ""));
    if (b.length > 255) throw new RangeError(`shortstr longer than 255 bytes: ${s}`);
    return this.u8(b.length).bytes(b);
  }
  longstr(s) {
    const b = typeof s === "string" ? utf8.encode(s) : s;
    return this.u32(b.length).bytes(b);
  }
  bits(...flags) {
    let v = 0;
    flags.forEach((f, i) => { if (f) v |= 1 << i; });
    return this.u8(v);
  }
  table(obj) {
    const at = this.pos;
    this.u32(0);
    for (const [k, v] of Object.entries(obj ?? {})) {
      if (v === undefined) continue;
      this.shortstr(k);
      this.value(v);
    }
    this.view.setUint32(at, this.pos - at - 4);
    return this;
  }
  value(v) {
    if (v === null || v === undefined) return this.u8(0x56); // V
    switch (typeof v) {
      case "boolean": return this.u8(0x74).u8(v ? 1 : 0); // t
      case "bigint": return this.u8(0x6c).i64(v); // l
      case "number":
        if (Number.isInteger(v)) {
          if (v >= -0x80000000 && v <= 0x7fffffff) return this.u8(0x49).i32(v); // I
          return this.u8(0x6c).i64(v); // l
        }
        return this.u8(0x64).f64(v); // d
      case "string": return this.u8(0x53).longstr(v); // S
    }
    if (v instanceof Date) return this.u8(0x54).u64(Math.floor(v.getTime() / 1000)); // T
    if (v instanceof Uint8Array) return this.u8(0x78).longstr(v); // x
    if (v instanceof ArrayBuffer) return this.u8(0x78).longstr(new Uint8Array(v));
    if (Array.isArray(v)) {
      this.u8(0x41); // A
      const at = this.pos;
      this.u32(0);
      for (const item of v) this.value(item);
      this.view.setUint32(at, this.pos - at - 4);
      return this;
    }
    return this.u8(0x46).table(v); // F
  }
  done() { return this.buf.slice(0, this.pos); }
}

class Reader {
  constructor(bytes) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = 0;
  }
  u8() { return this.view.getUint8(this.pos++); }
  u16() { const v = this.view.getUint16(this.pos); this.pos += 2; return v; }
  u32() { const v = this.view.getUint32(this.pos); this.pos += 4; return v; }
  u64() { const v = this.view.getBigUint64(this.pos); this.pos += 8; return Number(v); }
  take(n) {
    if (this.pos + n > this.bytes.length) throw new RangeError("truncated AMQP data");
    const b = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return b;
  }
  shortstr() { return fromUtf8.decode(this.take(this.u8())); }
  longstr() { return this.take(this.u32()); }
  table() {
    const end = this.u32() + this.pos;
    const out = {};
    while (this.pos < end) {
      const k = this.shortstr();
      out[k] = this.value();
    }
    return out;
  }
  value() {
    const tag = String.fromCharCode(this.u8());
    const v = this.view;
    let r;
    switch (tag) {
      case "t": return this.u8() !== 0;
      case "b": r = v.getInt8(this.pos); this.pos += 1; return r;
      case "B": return this.u8();
      case "s": r = v.getInt16(this.pos); this.pos += 2; return r;
      case "u": return this.u16();
      case "I": r = v.getInt32(this.pos); this.pos += 4; return r;
      case "i": return this.u32();
      case "l": r = Number(v.getBigInt64(this.pos)); this.pos += 8; return r;
      case "f": r = v.getFloat32(this.pos); this.pos += 4; return r;
      case "d": r = v.getFloat64(this.pos); this.pos += 8; return r;
      case "D": { const scale = this.u8(); return this.u32() / 10 ** scale; }
      case "S": return fromUtf8.decode(this.longstr());
      case "x": return this.longstr().slice();
      case "T": return new Date(this.u64() * 1000);
      case "F": return this.table();
      case "V": return null;
      case "A": {
        const end = this.u32() + this.pos;
        const out = [];
        while (this.pos < end) out.push(this.value());
        return out;
      }
      default: throw new RangeError(`unknown field type '${tag}'`);
    }
  }
}

// Basic properties, in flag order (bit 15 first).
const PROPS = [
  ["contentType", "shortstr"], ["contentEncoding", "shortstr"], ["headers", "table"],
  ["deliveryMode", "u8"], ["priority", "u8"], ["correlationId", "shortstr"],
  ["replyTo", "shortstr"], ["expiration", "shortstr"], ["messageId", "shortstr"],
  ["timestamp", "u64"], ["type", "shortstr"], ["userId", "shortstr"], ["appId", "shortstr"],
];

function encodeProperties(w, props) {
  let flags = 0;
  PROPS.forEach(([name], i) => { if (props[name] !== undefined && props[name] !== null) flags |= 1 << (15 - i); });
  w.u16(flags);
  PROPS.forEach(([name, type], i) => {
    if (!(flags & (1 << (15 - i)))) return;
    let v = props[name];
    if (name === "timestamp" && v instanceof Date) v = Math.floor(v.getTime() / 1000);
    if (name === "expiration") v = String(v);
    w[type](v);
  });
}

function decodeProperties(r) {
  const flags = r.u16();
  const props = {};
  PROPS.forEach(([name, type], i) => {
    if (flags & (1 << (15 - i))) props[name] = r[type]();
  });
  return props;
}

/** Publishes awaiting their confirm, in sequence order (an array with a moving head). */
class Confirms {
  items = []; // { seq, resolve, reject, returned, settled }
  head = 0;
  add(entry) { this.items.push(entry); }
  get(seq) {
    const first = this.items[this.head];
    return first ? this.items[this.head + (seq - first.seq)] : undefined;
  }
  /** Settles `tag` (and every earlier one when `multiple`), in order. */
  settle(tag, multiple, ok) {
    const finish = (p) => {
      p.settled = true;
      if (!ok) p.reject(new AmqpError(0, "message nacked by the broker"));
      else p.resolve({ routed: !p.returned });
    };
    if (multiple) {
      for (let p = this.items[this.head]; p && p.seq <= tag; p = this.items[this.head]) {
        if (!p.settled) finish(p);
        this.head++;
      }
    } else {
      const p = this.get(tag);
      if (p && !p.settled) finish(p);
      while (this.items[this.head]?.settled) this.head++;
    }
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
  }
  rejectAll(err) {
    for (let i = this.head; i < this.items.length; i++) if (!this.items[i].settled) this.items[i].reject(err);
    this.items = [];
    this.head = 0;
  }
}

function method(classId, methodId, fill) {
  const w = new Writer();
  w.u16(classId).u16(methodId);
  if (fill) fill(w);
  return w.done();
}

/** A delivered message (from `consume` or `get`). */
export class Message {
  constructor(client, channel, fields, properties, body) {
    this.client = client;
    this.channel = channel;
    Object.assign(this, fields);
    this.properties = properties;
    this.body = body;
  }
  /** The body decoded as UTF-8. */
  get text() { return fromUtf8.decode(this.body); }
  /** Acknowledges the message (basic.ack). */
  ack(multiple = false) {
    return this.client._settle(this.channel, method(60, 80, (w) => w.u64(this.deliveryTag).bits(multiple)));
  }
  /** Negatively acknowledges (basic.nack); `requeue` puts it back, marked redelivered. */
  nack(requeue = true, multiple = false) {
    return this.client._settle(this.channel, method(60, 120, (w) => w.u64(this.deliveryTag).bits(multiple, requeue)));
  }
  /** Rejects the message (basic.reject); without `requeue` it is dropped or dead-lettered. */
  reject(requeue = false) {
    return this.client._settle(this.channel, method(60, 90, (w) => w.u64(this.deliveryTag).bits(requeue)));
  }
}

/**
 * One AMQP connection over a WebSocket-shaped `socket` (binary messages in and out).
 * `AmqpClient.open(socket, options)` resolves once `connection.open-ok` arrives.
 */
export class AmqpClient {
  static async open(socket, options = {}) {
    const client = new AmqpClient(socket, options);
    await client.#opened;
    return client;
  }

  #socket;
  #options;
  #opened;
  #input = new Uint8Array(0);
  #frameMax = 131072;
  #channels = new Map(); // number → channel state
  #nextChannel = 1;
  #main = null; // promise of the declaration/publish channel
  #closed = null;
  #heartbeatTimer = null;

  constructor(socket, options) {
    this.#socket = socket;
    this.#options = { username: "guest", password: "guest", vhost: "/", heartbeat: 0, ...options };
    socket.binaryType = "arraybuffer";
    let resolve, reject;
    this.#opened = new Promise((res, rej) => { resolve = res; reject = rej; });
    this.#channels.set(0, { waiters: [], onOpen: resolve, onFail: reject });
    socket.addEventListener("open", () => this.#write(PROTOCOL_HEADER));
    socket.addEventListener("message", (e) => this.#onData(e.data));
    socket.addEventListener("close", (e) => this.#onClosed(new AmqpError(e.code === 1000 ? 320 : 541,
      `connection closed (WebSocket code ${e.code})`, 0, 0, "connection")));
    if (socket.readyState === 1) this.#write(PROTOCOL_HEADER);
  }

  /** True until the connection closes. */
  get isOpen() { return this.#closed === null; }

  #write(bytes) {
    if (this.#closed) return;
    this.#socket.send(bytes);
  }

  _send(channel, payload) { this.#write(this.#frame(FRAME_METHOD, channel, payload)); }

  /** Sends an ack/nack/reject if its channel is still open (else the broker has requeued it). */
  _settle(channel, payload) {
    if (!this.#channels.has(channel)) return false;
    this._send(channel, payload);
    return true;
  }

  #frame(type, channel, payload) {
    const out = new Uint8Array(payload.length + 8);
    const v = new DataView(out.buffer);
    v.setUint8(0, type);
    v.setUint16(1, channel);
    v.setUint32(3, payload.length);
    out.set(payload, 7);
    out[payload.length + 7] = FRAME_END;
    return out;
  }

  #onData(data) {
    const chunk = data instanceof ArrayBuffer ? new Uint8Array(data) : new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    if (this.#input.length === 0) {
      this.#input = chunk;
    } else {
      const joined = new Uint8Array(this.#input.length + chunk.length);
      joined.set(this.#input);
      joined.set(chunk, this.#input.length);
      this.#input = joined;
    }
    let at = 0;
    const buf = this.#input;
    const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    try {
      while (buf.length - at >= 8) {
        if (at === 0 && buf[0] === 65) { // "AMQP": the server refused our protocol version
          throw new AmqpError(505, "server refused the protocol header", 0, 0, "connection");
        }
        const size = view.getUint32(at + 3);
        if (buf.length - at < size + 8) break;
        const type = buf[at];
        const channel = view.getUint16(at + 1);
        if (buf[at + 7 + size] !== FRAME_END) throw new AmqpError(501, "bad frame end", 0, 0, "connection");
        const payload = buf.subarray(at + 7, at + 7 + size);
        at += size + 8;
        this.#onFrame(type, channel, payload);
      }
    } catch (err) {
      this.#fail(err instanceof AmqpError ? err : new AmqpError(502, String(err), 0, 0, "connection"));
      return;
    }
    this.#input = buf.subarray(at);
  }

  #onFrame(type, channel, payload) {
    if (type === FRAME_HEARTBEAT) return;
    const ch = this.#channels.get(channel);
    if (!ch) return;
    const r = new Reader(payload);
    if (type === FRAME_HEADER) {
      if (!ch.content) return;
      r.u16(); r.u16(); // class, weight
      ch.content.size = r.u64();
      ch.content.properties = decodeProperties(r);
      ch.content.body = new Uint8Array(ch.content.size);
      ch.content.received = 0;
      if (ch.content.size === 0) this.#contentDone(channel, ch);
      return;
    }
    if (type === FRAME_BODY) {
      if (!ch.content?.body) return;
      ch.content.body.set(payload, ch.content.received);
      ch.content.received += payload.length;
      if (ch.content.received >= ch.content.size) this.#contentDone(channel, ch);
      return;
    }
    if (type !== FRAME_METHOD) return;
    const classId = r.u16();
    const methodId = r.u16();
    if (channel === 0) return this.#onConnectionMethod(classId, methodId, r);
    const id = classId * 1000 + methodId;
    switch (id) {
      case 60060: { // basic.deliver
        const fields = { consumerTag: r.shortstr(), deliveryTag: r.u64(), redelivered: (r.u8() & 1) === 1, exchange: r.shortstr(), routingKey: r.shortstr() };
        ch.content = { kind: "deliver", fields };
        return;
      }
      case 60071: { // basic.get-ok
        const fields = { deliveryTag: r.u64(), redelivered: (r.u8() & 1) === 1, exchange: r.shortstr(), routingKey: r.shortstr(), messageCount: r.u32() };
        ch.content = { kind: "get", fields };
        return;
      }
      case 60050: { // basic.return
        const fields = { replyCode: r.u16(), replyText: r.shortstr(), exchange: r.shortstr(), routingKey: r.shortstr() };
        ch.content = { kind: "return", fields };
        return;
      }
      case 60080: case 60120: { // basic.ack / basic.nack (publisher confirms)
        const tag = r.u64();
        const multiple = (r.u8() & 1) === 1;
        this.#settleConfirms(ch, tag, multiple, id === 60080);
        return;
      }
      case 60030: { // basic.cancel from the server (queue deleted)
        const tag = r.shortstr();
        const consumer = ch.consumer;
        if (consumer && consumer.tag === tag) {
          consumer.active = false;
          consumer.onCancel?.();
          this.#closeChannel(channel);
        }
        return;
      }
      case 20040: { // channel.close
        const err = new AmqpError(r.u16(), r.shortstr(), r.u16(), r.u16());
        this._send(channel, method(20, 41));
        this.#dropChannel(channel, err);
        return;
      }
    }
    const waiter = ch.waiters[0];
    if (waiter && waiter.reply.includes(id)) {
      ch.waiters.shift();
      waiter.resolve({ id, r });
    }
  }

  #contentDone(channel, ch) {
    const { kind, fields, properties, body } = ch.content;
    ch.content = null;
    const msg = new Message(this, channel, fields, properties, body);
    if (kind === "deliver") {
      ch.consumer?.onMessage(msg);
    } else if (kind === "get") {
      const waiter = ch.waiters.shift();
      waiter?.resolve({ id: 60071, message: msg });
    } else if (kind === "return") {
      // The confirm that follows settles the (only) mandatory publish in flight as unroutable.
      const pending = ch.confirms?.get(ch.mandatorySeq);
      if (pending) pending.returned = true;
    }
  }

  #settleConfirms(ch, tag, multiple, ok) {
    if (!ch.confirms) return;
    if (ch.mandatorySeq && ch.mandatorySeq <= tag && (multiple || ch.mandatorySeq === tag)) ch.mandatorySeq = 0;
    ch.confirms.settle(tag, multiple, ok);
  }

  #onConnectionMethod(classId, methodId, r) {
    const o = this.#options;
    const ch0 = this.#channels.get(0);
    switch (classId * 1000 + methodId) {
      case 10010: { // start
        const response = new Uint8Array([0, ...utf8.encode(o.username), 0, ...utf8.encode(o.password)]);
        this._send(0, method(10, 11, (w) => w.table({
          product: "warren-broker.js",
          platform: "JavaScript",
          capabilities: { publisher_confirms: true, consumer_cancel_notify: true, "basic.nack": true, "connection.blocked": true, authentication_failure_close: true, per_consumer_qos: true },
        }).shortstr("PLAIN").longstr(response).shortstr("en_US")));
        return;
      }
      case 10030: { // tune
        const channelMax = r.u16();
        const frameMax = r.u32();
        const heartbeat = Math.min(r.u16(), o.heartbeat) || 0;
        this.#frameMax = frameMax || 131072;
        this._send(0, method(10, 31, (w) => w.u16(channelMax).u32(this.#frameMax).u16(heartbeat)));
        this._send(0, method(10, 40, (w) => w.shortstr(o.vhost).shortstr("").u8(0)));
        if (heartbeat > 0) {
          this.#heartbeatTimer = setInterval(() => this.#write(new Uint8Array([8, 0, 0, 0, 0, 0, 0, FRAME_END])), heartbeat * 500);
          this.#heartbeatTimer.unref?.();
        }
        return;
      }
      case 10041: // open-ok
        ch0.onOpen?.(this);
        ch0.onOpen = null;
        return;
      case 10050: { // close
        const err = new AmqpError(r.u16(), r.shortstr(), r.u16(), r.u16(), "connection");
        this._send(0, method(10, 51));
        this.#fail(err);
        return;
      }
      case 10051: // close-ok
        this.#fail(new AmqpError(200, "connection closed", 0, 0, "connection"));
        return;
    }
  }

  #fail(err) {
    if (this.#closed) return;
    this.#closed = err;
    clearInterval(this.#heartbeatTimer);
    const ch0 = this.#channels.get(0);
    ch0.onFail?.(err);
    for (const n of [...this.#channels.keys()]) if (n !== 0) this.#dropChannel(n, err);
    try { this.#socket.close(); } catch { /* already closed */ }
  }

  #onClosed(err) {
    if (!this.#closed) this.#fail(err);
  }

  #dropChannel(n, err) {
    const ch = this.#channels.get(n);
    if (!ch) return;
    this.#channels.delete(n);
    for (const w of ch.waiters) w.reject(err);
    ch.confirms?.rejectAll(err);
    if (ch.consumer?.active) {
      ch.consumer.active = false;
      ch.consumer.onError?.(err);
    }
    if (ch.isMain) this.#main = null;
  }

  #closeChannel(n) {
    const ch = this.#channels.get(n);
    if (!ch) return;
    this.#rpc(n, method(20, 40, (w) => w.u16(200).shortstr("OK").u16(0).u16(0)), [20041])
      .catch(() => {})
      .finally(() => this.#channels.delete(n));
  }

  /** Sends a method and waits for one of `reply` (class*1000+method) on that channel. */
  #rpc(channel, payload, reply) {
    if (this.#closed) return Promise.reject(this.#closed);
    const ch = this.#channels.get(channel);
    if (!ch) return Promise.reject(new AmqpError(504, `channel ${channel} is closed`));
    return new Promise((resolve, reject) => {
      ch.waiters.push({ reply, resolve, reject });
      this._send(channel, payload);
    });
  }

  async #openChannel() {
    if (this.#closed) throw this.#closed;
    let n = this.#nextChannel;
    while (this.#channels.has(n)) n = (n % 2047) + 1;
    this.#nextChannel = (n % 2047) + 1;
    this.#channels.set(n, { waiters: [], confirms: new Confirms(), content: null, consumer: null, nextSeq: 0 });
    await this.#rpc(n, method(20, 10, (w) => w.shortstr("")), [20011]);
    return n;
  }

  /** The channel for declarations and publishes, in confirm mode; reopened after an error. */
  #mainChannel() {
    if (!this.#main) {
      this.#main = (async () => {
        const n = await this.#openChannel();
        const ch = this.#channels.get(n);
        ch.isMain = true;
        await this.#rpc(n, method(85, 10, (w) => w.bits(false)), [85011]);
        ch.nextSeq = 1;
        return n;
      })();
      this.#main.catch(() => { this.#main = null; });
    }
    return this.#main;
  }

  async #call(payload, reply) {
    const n = await this.#mainChannel();
    return this.#rpc(n, payload, reply);
  }

  /** exchange.declare. */
  async declareExchange(name, type = "direct", { durable = false, autoDelete = false, internal = false, passive = false, arguments: args = {} } = {}) {
    await this.#call(method(40, 10, (w) => w.u16(0).shortstr(name).shortstr(type).bits(passive, durable, autoDelete, internal, false).table(args)), [40011]);
  }

  /** exchange.delete. */
  async deleteExchange(name, { ifUnused = false } = {}) {
    await this.#call(method(40, 20, (w) => w.u16(0).shortstr(name).bits(ifUnused, false)), [40021]);
  }

  /** queue.declare; resolves to `{ queue, messageCount, consumerCount }`. */
  async declareQueue(name = "", { durable = false, exclusive = false, autoDelete = false, passive = false, arguments: args = {} } = {}) {
    const { r } = await this.#call(method(50, 10, (w) => w.u16(0).shortstr(name).bits(passive, durable, exclusive, autoDelete, false).table(args)), [50011]);
    return { queue: r.shortstr(), messageCount: r.u32(), consumerCount: r.u32() };
  }

  /** queue.delete; resolves to the number of messages deleted. */
  async deleteQueue(name, { ifUnused = false, ifEmpty = false } = {}) {
    const { r } = await this.#call(method(50, 40, (w) => w.u16(0).shortstr(name).bits(ifUnused, ifEmpty, false)), [50041]);
    return r.u32();
  }

  /** queue.purge; resolves to the number of messages purged. */
  async purgeQueue(name) {
    const { r } = await this.#call(method(50, 30, (w) => w.u16(0).shortstr(name).bits(false)), [50031]);
    return r.u32();
  }

  /** queue.bind. */
  async bind(queue, exchange, routingKey = "", args = {}) {
    await this.#call(method(50, 20, (w) => w.u16(0).shortstr(queue).shortstr(exchange).shortstr(routingKey).bits(false).table(args)), [50021]);
  }

  /** queue.unbind. */
  async unbind(queue, exchange, routingKey = "", args = {}) {
    await this.#call(method(50, 50, (w) => w.u16(0).shortstr(queue).shortstr(exchange).shortstr(routingKey).table(args)), [50051]);
  }

  /** exchange.bind (exchange to exchange). */
  async bindExchange(destination, source, routingKey = "", args = {}) {
    await this.#call(method(40, 30, (w) => w.u16(0).shortstr(destination).shortstr(source).shortstr(routingKey).bits(false).table(args)), [40031]);
  }

  /**
   * basic.publish, confirmed: resolves to `{ routed }` once the broker has taken the message
   * (`routed` is false when `mandatory` was set and no queue took it). Properties are the 13
   * basic properties in camelCase, plus `persistent` (deliveryMode 2) and `mandatory`.
   */
  async publish(exchange, routingKey, body, properties = {}) {
    const { mandatory = false, persistent, ...props } = properties;
    if (persistent !== undefined && props.deliveryMode === undefined) props.deliveryMode = persistent ? 2 : 1;
    const bytes = typeof body === "string" ? utf8.encode(body)
      : body instanceof ArrayBuffer ? new Uint8Array(body)
        : ArrayBuffer.isView(body) ? new Uint8Array(body.buffer, body.byteOffset, body.byteLength)
          : utf8.encode(JSON.stringify(body));
    const n = await this.#mainChannel();
    const ch = this.#channels.get(n);
    if (!ch) throw this.#closed ?? new AmqpError(504, "channel closed");
    if (!mandatory) return this.#publishNow(n, ch, exchange, routingKey, bytes, props, false);
    // One mandatory publish in flight per channel, so a basic.return names its publish.
    const prev = ch.mandatoryTail ?? Promise.resolve();
    let release;
    ch.mandatoryTail = prev.then(() => new Promise((r) => { release = r; }));
    await prev;
    try {
      return await this.#publishNow(n, ch, exchange, routingKey, bytes, props, true);
    } finally {
      release();
    }
  }

  #publishNow(n, ch, exchange, routingKey, bytes, props, mandatory) {
    if (this.#closed) return Promise.reject(this.#closed);
    const seq = ch.nextSeq++;
    const settled = new Promise((resolve, reject) => ch.confirms.add({ seq, resolve, reject, returned: false, settled: false }));
    if (mandatory) ch.mandatorySeq = seq;
    const frames = [this.#frame(FRAME_METHOD, n, method(60, 40, (w) => w.u16(0).shortstr(exchange).shortstr(routingKey).bits(mandatory, false)))];
    const header = new Writer();
    header.u16(60).u16(0).u64(bytes.length);
    encodeProperties(header, props);
    frames.push(this.#frame(FRAME_HEADER, n, header.done()));
    const chunk = this.#frameMax - 8;
    for (let at = 0; at < bytes.length; at += chunk) {
      frames.push(this.#frame(FRAME_BODY, n, bytes.subarray(at, at + chunk)));
    }
    const out = new Uint8Array(frames.reduce((sum, f) => sum + f.length, 0));
    let at = 0;
    for (const f of frames) { out.set(f, at); at += f.length; }
    this.#write(out);
    return settled;
  }

  /** basic.get: resolves to a Message, or null when the queue is empty. */
  async get(queue, { noAck = false } = {}) {
    const res = await this.#call(method(60, 70, (w) => w.u16(0).shortstr(queue).bits(noAck)), [60071, 60072]);
    return res.id === 60071 ? res.message : null;
  }

  /**
   * basic.consume on a channel of its own. `onMessage(message)` gets each delivery; call
   * `message.ack()` unless `noAck`. Resolves to `{ consumerTag, cancel() }`.
   */
  async consume(queue, onMessage, { noAck = false, prefetch = 0, exclusive = false, consumerTag = "", arguments: args = {}, onCancel, onError } = {}) {
    const n = await this.#openChannel();
    const ch = this.#channels.get(n);
    if (prefetch > 0) await this.#rpc(n, method(60, 10, (w) => w.u32(0).u16(prefetch).bits(false)), [60011]);
    ch.consumer = { tag: consumerTag, active: true, onMessage, onCancel, onError };
    let r;
    try {
      ({ r } = await this.#rpc(n, method(60, 20, (w) => w.u16(0).shortstr(queue).shortstr(consumerTag).bits(false, noAck, exclusive, false).table(args)), [60021]));
    } catch (err) {
      this.#channels.delete(n);
      throw err;
    }
    const tag = r.shortstr();
    ch.consumer.tag = tag;
    return {
      consumerTag: tag,
      channel: n,
      cancel: async () => {
        if (!this.#channels.has(n)) return;
        ch.consumer.active = false;
        await this.#rpc(n, method(60, 30, (w) => w.shortstr(tag).bits(false)), [60031]).catch(() => {});
      },
      /** Closes the consumer's channel: its unacked messages go back to the queue, redelivered. */
      close: async () => {
        if (!this.#channels.has(n)) return;
        ch.consumer.active = false;
        await this.#rpc(n, method(20, 40, (w) => w.u16(200).shortstr("OK").u16(0).u16(0)), [20041]).catch(() => {});
        this.#channels.delete(n);
      },
    };
  }

  /** connection.close, then the socket closes. */
  async close() {
    if (this.#closed) return;
    const ch0 = this.#channels.get(0);
    const done = new Promise((resolve) => { ch0.onFail = resolve; });
    this._send(0, method(10, 50, (w) => w.u16(200).shortstr("OK").u16(0).u16(0)));
    await done;
  }
}
