// amqps (AMQPClient) and wss (AMQPWebSocketClient) with a self-signed certificate made here.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { AMQPClient, AMQPWebSocketClient } from "@cloudamqp/amqp-client";
import { startWarren, makeCertificate, useNodeWebSocket, uniqueName, consumeBodies, within } from "../lib/warren.js";

let warren, cert;
before(async () => {
  cert = makeCertificate();
  warren = await startWarren({ tls: cert });
});
after(async () => {
  await warren?.stop();
  cert?.remove();
});

const amqpsUrl = () => `amqps://guest:guest@localhost:${warren.ports.amqps}/%2F`;
const wssUrl = () => `wss://localhost:${warren.ports.wss}/ws`;

async function open(client) {
  const conn = await within(10_000, "connecting", client.connect());
  return { conn, ch: await conn.channel() };
}

test("wss publish, amqps consume, and back", { timeout: 30_000 }, async () => {
  useNodeWebSocket({ ca: cert.certPem });
  const wss = await open(new AMQPWebSocketClient(wssUrl()));
  const amqps = await open(new AMQPClient(amqpsUrl(), { ca: cert.certPem }));
  try {
    const toAmqps = uniqueName("wss-to-amqps");
    const toWss = uniqueName("amqps-to-wss");
    await amqps.ch.queueDeclare(toAmqps, { exclusive: true });
    await wss.ch.queueDeclare(toWss, { exclusive: true });
    const big = Buffer.from(Array.from({ length: 200_000 }, (_, i) => i % 253));
    const sent = [Buffer.from("over wss"), big];
    const atAmqps = consumeBodies(amqps.ch, toAmqps, sent.length);
    const atWss = consumeBodies(wss.ch, toWss, sent.length);
    await wss.ch.confirmSelect();
    await amqps.ch.confirmSelect();
    for (const body of sent) {
      await wss.ch.basicPublish("", toAmqps, body);
      await amqps.ch.basicPublish("", toWss, body);
    }
    assert.deepEqual(await atAmqps, sent);
    assert.deepEqual(await atWss, sent);
  } finally {
    await wss.conn.close();
    await amqps.conn.close();
  }
});

test("clients that do not trust the certificate are refused", { timeout: 15_000 }, async () => {
  useNodeWebSocket({});
  await assert.rejects(
    within(10_000, "wss connect", new AMQPWebSocketClient(wssUrl()).connect()),
    (e) => /self[- ]signed|certificate/i.test(e?.message ?? e?.error?.message ?? ""),
  );
  await assert.rejects(
    within(10_000, "amqps connect", new AMQPClient(amqpsUrl()).connect()),
    /self[- ]signed|certificate/i,
  );
});

test("plain AMQP and WebSocket keep working beside TLS", { timeout: 15_000 }, async () => {
  useNodeWebSocket({});
  const ws = await open(new AMQPWebSocketClient(warren.wsUrl));
  const tcp = await open(new AMQPClient(warren.amqpUrl));
  const { name } = await tcp.ch.queueDeclare("", { exclusive: true });
  await ws.ch.confirmSelect();
  await ws.ch.basicPublish("", name, "plain beside tls"); // resolves on the broker's confirm
  const msg = await tcp.ch.basicGet(name, { noAck: true });
  assert.equal(msg?.bodyString(), "plain beside tls");
  await ws.conn.close();
  await tcp.conn.close();
});
