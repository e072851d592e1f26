// --ws-allowed-origin: browsers' Origin header is checked when configured.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import WS from "ws";
import { AMQPWebSocketClient } from "@cloudamqp/amqp-client";
import { startWarren, useNodeWebSocket, within } from "../lib/warren.js";

let warren;
before(async () => {
  warren = await startWarren({ extraArgs: ["--ws-allowed-origin", "http://app.test"] });
});
after(async () => {
  await warren?.stop();
});

function handshakeStatus(origin) {
  return within(5_000, `handshake with Origin ${origin}`, new Promise((ok, fail) => {
    const socket = new WS(warren.wsUrl, { origin });
    socket.once("open", () => { socket.terminate(); ok(101); });
    socket.once("unexpected-response", (_req, res) => { ok(res.statusCode); res.resume(); });
    socket.once("error", fail);
  }));
}

test("an origin outside the list gets HTTP 403", { timeout: 15_000 }, async () => {
  assert.equal(await handshakeStatus("http://evil.test"), 403);
  assert.equal(await handshakeStatus("http://app.test"), 101);
});

test("amqp-client connects from an allowed origin", { timeout: 15_000 }, async () => {
  useNodeWebSocket({ origin: "http://app.test" });
  const conn = await within(10_000, "connect", new AMQPWebSocketClient(warren.wsUrl).connect());
  const ch = await conn.channel();
  const { name } = await ch.queueDeclare("", { exclusive: true });
  await ch.basicPublish("", name, "from an allowed origin");
  const msg = await ch.basicGet(name, { noAck: true });
  assert.equal(msg?.bodyString(), "from an allowed origin");
  await conn.close();
});

test("amqp-client from another origin fails to connect", { timeout: 15_000 }, async () => {
  useNodeWebSocket({ origin: "http://evil.test" });
  await assert.rejects(within(10_000, "connect", new AMQPWebSocketClient(warren.wsUrl).connect()));
});
