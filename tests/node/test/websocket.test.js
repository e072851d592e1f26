// @cloudamqp/amqp-client in Node against warren: AMQPWebSocketClient over `--ws` and
// AMQPClient over TCP on the same broker, publishing on one and consuming on the other.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import WS from "ws";
import { AMQPClient, AMQPWebSocketClient } from "@cloudamqp/amqp-client";
import { startWarren, useNodeWebSocket, uniqueName, consumeBodies, within } from "../lib/warren.js";

let warren;
before(async () => {
  useNodeWebSocket();
  warren = await startWarren();
});
after(async () => {
  await warren?.stop();
});

async function open(client) {
  const conn = await within(10_000, "connecting", client.connect());
  const ch = await conn.channel();
  return { conn, ch };
}

// Bodies that cross frame and message boundaries: empty, text, UTF-8, binary, and one larger
// than frame_max (the client sends the whole publish as one WebSocket message).
const bodies = [
  Buffer.alloc(0),
  Buffer.from("hello over the other transport"),
  Buffer.from("æøå ✓ 🐇", "utf8"),
  Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
  Buffer.from(Array.from({ length: 300_000 }, (_, i) => (i * 7) % 251)),
];

test("published over WebSocket, consumed over TCP", { timeout: 30_000 }, async () => {
  const ws = await open(new AMQPWebSocketClient(warren.wsUrl));
  const tcp = await open(new AMQPClient(warren.amqpUrl));
  try {
    const queue = uniqueName("ws-to-tcp");
    await tcp.ch.queueDeclare(queue, { exclusive: true });
    const received = consumeBodies(tcp.ch, queue, bodies.length);
    await ws.ch.confirmSelect();
    for (const body of bodies) {
      await ws.ch.basicPublish("", queue, body);
    }
    assert.deepEqual(await received, bodies);
  } finally {
    await ws.conn.close();
    await tcp.conn.close();
  }
});

test("published over TCP, consumed over WebSocket", { timeout: 30_000 }, async () => {
  const ws = await open(new AMQPWebSocketClient(warren.wsUrl));
  const tcp = await open(new AMQPClient(warren.amqpUrl));
  try {
    const queue = uniqueName("tcp-to-ws");
    await ws.ch.queueDeclare(queue, { exclusive: true });
    const received = consumeBodies(ws.ch, queue, bodies.length);
    await tcp.ch.confirmSelect();
    for (const body of bodies) {
      await tcp.ch.basicPublish("", queue, body);
    }
    assert.deepEqual(await received, bodies);
  } finally {
    await ws.conn.close();
    await tcp.conn.close();
  }
});

test("a burst of 2000 messages arrives complete and in order over WebSocket", { timeout: 30_000 }, async () => {
  // Many deliveries are batched into few WebSocket messages; the client must split them.
  const ws = await open(new AMQPWebSocketClient(warren.wsUrl));
  const tcp = await open(new AMQPClient(warren.amqpUrl));
  try {
    const queue = uniqueName("burst");
    await tcp.ch.queueDeclare(queue, { exclusive: false, autoDelete: false });
    const sent = Array.from({ length: 2000 }, (_, i) => Buffer.from(`message ${i}`));
    await tcp.ch.confirmSelect();
    await Promise.all(sent.map((b) => tcp.ch.basicPublish("", queue, b)));
    const received = await consumeBodies(ws.ch, queue, sent.length);
    assert.deepEqual(received, sent);
    await tcp.ch.queueDelete(queue);
  } finally {
    await ws.conn.close();
    await tcp.conn.close();
  }
});

test("the amqp subprotocol is accepted but not required", { timeout: 15_000 }, async () => {
  for (const protocols of [["amqp"], undefined]) {
    const socket = new WS(warren.wsUrl, protocols);
    await within(5_000, "WebSocket open", new Promise((ok, fail) => {
      socket.once("open", ok);
      socket.once("error", fail);
    }));
    assert.equal(socket.protocol, protocols ? "amqp" : "");
    socket.close();
  }
});

test("a text message is refused with close code 1003", { timeout: 15_000 }, async () => {
  const socket = new WS(`ws://127.0.0.1:${warren.ports.ws}/any/path`);
  const closed = new Promise((ok) => socket.once("close", (code) => ok(code)));
  await within(5_000, "WebSocket open", new Promise((ok, fail) => {
    socket.once("open", ok);
    socket.once("error", fail);
  }));
  socket.send("AMQP\x00\x00\x09\x01");
  assert.equal(await within(5_000, "close", closed), 1003);
});

test("the broker survives a client that vanishes mid-frame", { timeout: 15_000 }, async () => {
  const socket = new WS(warren.wsUrl);
  await within(5_000, "WebSocket open", new Promise((ok) => socket.once("open", ok)));
  socket.send(Buffer.from("AMQP\x00\x00\x09\x01"));
  socket.send(Buffer.from([1, 0, 0, 0, 0, 1])); // half a frame header
  socket.terminate();
  const ws = await open(new AMQPWebSocketClient(warren.wsUrl));
  await ws.conn.close();
});
