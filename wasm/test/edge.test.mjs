// The package in workerd (Cloudflare Workers' runtime, from npm), serving AMQP over WebSocket:
// @cloudamqp/amqp-client connects over a real socket (the `ws` package plays the browser's
// WebSocket under Node 20). Run: node --test test/edge.test.mjs
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { fileURLToPath } from "node:url";
import WebSocket from "ws";
import { AMQPWebSocketClient } from "@cloudamqp/amqp-client";

const root = fileURLToPath(new URL("..", import.meta.url));
let workerd;
let url;
let logs = "";

function freePort() {
  return new Promise((resolve) => {
    const s = createServer().listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

before(async () => {
  const port = await freePort();
  workerd = spawn(`${root}/node_modules/.bin/workerd`,
    ["serve", "edge/config.capnp", "--socket-addr", `http=127.0.0.1:${port}`], { cwd: root });
  workerd.stdout.on("data", (d) => { logs += d; });
  workerd.stderr.on("data", (d) => { logs += d; });
  url = `ws://127.0.0.1:${port}/ws`;
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/`);
      if (res.status === 426) break;
    } catch { /* not up yet */ }
    if (Date.now() > deadline) throw new Error(`workerd did not start:\n${logs}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  globalThis.WebSocket = WebSocket;
});

after(() => {
  delete globalThis.WebSocket;
  workerd?.kill("SIGTERM");
});

test("workerd serves AMQP over WebSocket: publish on one connection, consume and ack on another", async () => {
  const consumerConn = await new AMQPWebSocketClient(url, "/", "guest", "guest").connect();
  const publisherConn = await new AMQPWebSocketClient(url, "/", "guest", "guest").connect();
  const sub = await consumerConn.channel();
  const q = await sub.queueDeclare("edge-jobs");
  await sub.queueBind(q.name, "amq.topic", "jobs.#");
  const got = [];
  const consumer = await sub.basicConsume(q.name, { noAck: false }, async (msg) => {
    got.push([msg.routingKey, msg.bodyToString()]);
    await msg.ack();
    if (got.length === 2) await consumer.cancel();
  });

  const pub = await publisherConn.channel();
  await pub.confirmSelect();
  await pub.basicPublish("amq.topic", "jobs.resize", "image-1");
  await pub.basicPublish("amq.topic", "other.thing", "not routed to edge-jobs");
  await pub.basicPublish("amq.topic", "jobs.email.send", "mail-2");
  await Promise.race([consumer.wait(), new Promise((_, rej) => setTimeout(() => rej(new Error("no deliveries")), 5000))]);
  assert.deepEqual(got, [["jobs.resize", "image-1"], ["jobs.email.send", "mail-2"]]);

  const check = await pub.queueDeclare("edge-jobs", { passive: true });
  assert.equal(check.messageCount, 0, "both acked");
  await publisherConn.close();
  await consumerConn.close();
  assert.doesNotMatch(logs, /uncaught|error/i, logs);
});
