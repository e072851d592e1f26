// The npm package under Node: the WebSocket stand-in with @cloudamqp/amqp-client, the
// convenience API, heartbeats and TTLs on real timers. Run: node --test test/
import { test } from "node:test";
import assert from "node:assert/strict";
import { AMQPWebSocketClient } from "@cloudamqp/amqp-client";
import { Broker, AmqpClient } from "../js/index.js";

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Waits until `check()` is truthy (polling), or fails after `ms`. */
async function until(check, ms = 2000, what = "condition") {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

const counts = (broker, name) => {
  const q = broker.topology().queues.find((x) => x.name === name);
  return q && { messages: q.messages, unacked: q.unacked, consumers: q.consumers };
};

test("amqp-client's AMQPWebSocketClient runs unchanged against the in-page broker", async () => {
  const broker = await Broker.create();
  const uninstall = broker.installWebSocketShim("warren://local");
  try {
    const amqp = new AMQPWebSocketClient("warren://local", "/", "guest", "guest");
    const conn = await amqp.connect();
    const ch = await conn.channel();
    const q = await ch.queueDeclare("tasks");
    assert.equal(q.name, "tasks");
    await ch.confirmSelect();
    for (let i = 0; i < 3; i++) await ch.basicPublish("", "tasks", `task ${i}`, { deliveryMode: 2 });
    assert.deepEqual(counts(broker, "tasks"), { messages: 3, unacked: 0, consumers: 0 });

    const got = [];
    const consumer = await ch.basicConsume("tasks", { noAck: false }, async (msg) => {
      got.push(msg.bodyToString());
      await msg.ack();
      if (got.length === 3) await consumer.cancel();
    });
    await consumer.wait();
    assert.deepEqual(got, ["task 0", "task 1", "task 2"]);
    await until(() => counts(broker, "tasks").unacked === 0, 1000, "acks");
    assert.deepEqual(counts(broker, "tasks"), { messages: 0, unacked: 0, consumers: 0 });

    // A large message crosses several frames (frame_max is amqp-client's 8192 here).
    const big = "x".repeat(100_000);
    await ch.basicPublish("", "tasks", big);
    const msg = await ch.basicGet("tasks", { noAck: true });
    assert.equal(msg.bodyToString(), big);

    await conn.close();
    await until(() => broker.connectionCount === 0, 1000, "the connection to go");
  } finally {
    uninstall();
    await broker.close();
  }
});

test("the stand-in passes other URLs to the real WebSocket and uninstalls cleanly", async () => {
  class FakeWebSocket {
    constructor(url) { this.url = url; }
  }
  globalThis.WebSocket = FakeWebSocket;
  const broker = await Broker.create();
  try {
    const uninstall = broker.installWebSocketShim("warren://here/");
    const other = new WebSocket("ws://example.invalid/ws");
    assert.ok(other instanceof FakeWebSocket, "other URLs reach the original WebSocket");
    const local = new WebSocket("warren://here");
    assert.equal(local.readyState, WebSocket.CONNECTING);
    await new Promise((resolve) => local.addEventListener("open", resolve));
    assert.equal(local.readyState, WebSocket.OPEN);
    local.binaryType = "arraybuffer";
    const first = new Promise((resolve) => { local.onmessage = (e) => resolve(e.data); });
    local.send(new Uint8Array([65, 77, 81, 80, 0, 0, 9, 1]));
    const data = await first;
    assert.ok(data instanceof ArrayBuffer, "binary messages are ArrayBuffers");
    assert.equal(new DataView(data).getUint8(0), 1, "a method frame (connection.start)");
    assert.equal(data.byteLength, new DataView(data).getUint32(3) + 8, "exactly one frame, own buffer");
    const closed = new Promise((resolve) => local.addEventListener("close", resolve));
    local.close(1000);
    const ev = await closed;
    assert.equal(ev.code, 1000);
    assert.equal(ev.wasClean, true);
    uninstall();
    assert.equal(globalThis.WebSocket, FakeWebSocket, "uninstall restores the original");
  } finally {
    delete globalThis.WebSocket;
    await broker.close();
  }
});

test("convenience API: topic routing, nack with requeue, redelivery, mandatory returns", async () => {
  const broker = await Broker.create();
  try {
    await broker.declareExchange("logs", "topic");
    for (const [q, key] of [["errors", "*.error"], ["app", "app.#"], ["all", "#"]]) {
      await broker.declareQueue(q);
      await broker.bind(q, "logs", key);
    }
    for (const key of ["app.error", "db.error", "app.info.detail", "db.info"]) {
      assert.deepEqual(await broker.publish("logs", key, key), { routed: true });
    }
    assert.deepEqual(counts(broker, "errors").messages, 2);
    assert.deepEqual(counts(broker, "app").messages, 2);
    assert.deepEqual(counts(broker, "all").messages, 4);
    assert.deepEqual(broker.trace("logs", "db.error").queues, ["all", "errors"]);
    assert.deepEqual(await broker.publish("", "no-such-queue", "x", { mandatory: true }), { routed: false });

    const seen = [];
    const consumer = await broker.consume("errors", (msg) => {
      seen.push([msg.text, msg.redelivered]);
      if (msg.text === "app.error" && !msg.redelivered) msg.nack(true);
      else msg.ack();
    }, { prefetch: 1 });
    await until(() => seen.length === 3, 2000, "three deliveries");
    assert.deepEqual(seen, [["app.error", false], ["app.error", true], ["db.error", false]]);
    await until(() => counts(broker, "errors").unacked === 0, 1000, "acks");
    await consumer.cancel();

    await assert.rejects(broker.declareQueue("errors", { durable: true }), (err) => {
      assert.equal(err.code, 406);
      assert.match(err.message, /PRECONDITION_FAILED - inequivalent arg 'durable'/);
      return true;
    });
    // The convenience channel is reopened after a channel error.
    assert.equal((await broker.declareQueue("errors", { passive: true })).messageCount, 0);
  } finally {
    await broker.close();
  }
});

test("closing a consumer's connection puts its unacked messages back, redelivered", async () => {
  const broker = await Broker.create();
  try {
    await broker.declareQueue("jobs");
    await broker.publish("", "jobs", "job");
    const worker = await AmqpClient.open(broker.connect());
    const first = [];
    await worker.consume("jobs", (m) => first.push(m));
    await until(() => first.length === 1, 1000, "a delivery");
    assert.deepEqual(counts(broker, "jobs"), { messages: 0, unacked: 1, consumers: 1 });
    await worker.close();
    await until(() => counts(broker, "jobs").messages === 1, 1000, "the requeue");
    const again = await broker.get("jobs", { noAck: true });
    assert.equal(again.text, "job");
    assert.equal(again.redelivered, true);
  } finally {
    await broker.close();
  }
});

test("heartbeats: the broker sends them and drops a silent peer", async () => {
  const broker = await Broker.create({ heartbeat: 1 });
  try {
    // A client that negotiates a 1 s heartbeat, then never sends another byte.
    const raw = broker.connect();
    raw.binaryType = "arraybuffer";
    const received = [];
    raw.onmessage = (e) => received.push(new Uint8Array(e.data));
    await new Promise((r) => raw.addEventListener("open", r));
    const started = Date.now();
    const closed = new Promise((r) => raw.addEventListener("close", r));
    await handshake(raw, received, 1);
    const ev = await Promise.race([closed, sleep(8000).then(() => null)]);
    assert.ok(ev, "the broker closed the silent connection");
    const elapsed = Date.now() - started;
    // Not before two 1 s intervals of silence; the upper bound only allows for a busy machine.
    assert.ok(elapsed >= 1900 && elapsed < 6000, `closed after ${elapsed} ms (two 1 s intervals)`);
    assert.ok(received.some((b) => b[0] === 8), "heartbeat frames were sent");
  } finally {
    await broker.close();
  }
});

test("message TTL expires messages on the broker's own timer", async () => {
  const broker = await Broker.create();
  try {
    await broker.declareQueue("short", { arguments: { "x-message-ttl": 50 } });
    await broker.publish("", "short", "a");
    await broker.declareQueue("plain");
    await broker.publish("", "plain", "b", { expiration: "50" });
    assert.equal(counts(broker, "short").messages, 1);
    assert.equal(counts(broker, "plain").messages, 1);
    // Nobody sends anything: only the timer armed from the engine's pollTimeout runs.
    await until(() => counts(broker, "short").messages === 0 && counts(broker, "plain").messages === 0, 2000, "expiry");
  } finally {
    await broker.close();
  }
});

// --- a raw client: just enough to open a connection with a given heartbeat ---------------

function frame(type, channel, payload) {
  const out = new Uint8Array(payload.length + 8);
  const v = new DataView(out.buffer);
  v.setUint8(0, type);
  v.setUint16(1, channel);
  v.setUint32(3, payload.length);
  out.set(payload, 7);
  out[out.length - 1] = 0xce;
  return out;
}

async function handshake(socket, received, heartbeat) {
  const wait = async (classId, methodId) => until(() => received.find((b) => b[0] === 1
    && new DataView(b.buffer, b.byteOffset).getUint16(7) === classId
    && new DataView(b.buffer, b.byteOffset).getUint16(9) === methodId), 2000, `method ${classId}.${methodId}`);
  socket.send(new Uint8Array([65, 77, 81, 80, 0, 0, 9, 1]));
  await wait(10, 10);
  const enc = new TextEncoder();
  const resp = new Uint8Array([0, ...enc.encode("guest"), 0, ...enc.encode("guest")]);
  const startOk = [0, 10, 0, 11, 0, 0, 0, 0, 5, ...enc.encode("PLAIN"), 0, 0, 0, resp.length, ...resp, 5, ...enc.encode("en_US")];
  socket.send(frame(1, 0, new Uint8Array(startOk)));
  await wait(10, 30);
  socket.send(frame(1, 0, new Uint8Array([0, 10, 0, 31, 0x07, 0xff, 0, 2, 0, 0, 0, heartbeat])));
  socket.send(frame(1, 0, new Uint8Array([0, 10, 0, 40, 1, 47, 0, 0])));
  await wait(10, 41);
}

test("thousands of confirmed publishes in flight all settle; mandatory ones report routing", async () => {
  const broker = await Broker.create();
  try {
    await broker.declareQueue("many");
    const started = Date.now();
    const results = await Promise.all(Array.from({ length: 20_000 }, (_, i) => broker.publish("", "many", `m${i}`)));
    assert.ok(results.every((r) => r.routed === true));
    assert.ok(Date.now() - started < 5000, `took ${Date.now() - started} ms`);
    assert.equal(counts(broker, "many").messages, 20_000);
    // Mandatory publishes interleaved with plain ones: each return names its own publish.
    const mixed = await Promise.all([
      broker.publish("", "many", "a", { mandatory: true }),
      broker.publish("", "nowhere", "b"),
      broker.publish("", "nowhere", "c", { mandatory: true }),
      broker.publish("", "many", "d", { mandatory: true }),
    ]);
    assert.deepEqual(mixed.map((r) => r.routed), [true, true, false, true]);
  } finally {
    await broker.close();
  }
});
