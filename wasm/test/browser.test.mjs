// Browser tests with Playwright (playwright-core) driving the system Chromium:
// the demo page, @cloudamqp/amqp-client in a page, IndexedDB across a reload, and a
// SharedWorker broker shared by two tabs. Run: node --test test/browser.test.mjs
// Screenshots go to test-output/.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, mkdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { serve } from "../scripts/serve.mjs";

const outDir = fileURLToPath(new URL("../test-output/", import.meta.url));
const executablePath = process.env.CHROMIUM ?? "/usr/bin/chromium";
const ARGS = [
  "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
  "--disable-component-update", "--no-first-run", "--disable-quic", "--disable-sync",
  "--disable-dev-shm-usage",
];

let server;
let context;
let profile;

before(async () => {
  await mkdir(outDir, { recursive: true });
  server = await serve(0);
  profile = await mkdtemp(join(tmpdir(), "warren-chromium-"));
  // A fresh profile each run (Playwright passes it as --user-data-dir).
  context = await chromium.launchPersistentContext(profile, {
    executablePath, headless: true, args: ARGS, viewport: { width: 1400, height: 900 }, timeout: 30_000,
  });
  context.setDefaultTimeout(10_000);
});

after(async () => {
  await context?.close();
  await server?.close();
  if (profile) await rm(profile, { recursive: true, force: true });
});

async function open(path) {
  const page = await context.newPage();
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  await page.goto(server.url + path);
  return { page, errors };
}

/** Texts of the message chips in one queue card's list ("ready" or "unacked"). */
function chips(page, queue, list) {
  return page.$$eval(`.queue[data-queue="${queue}"] .list.${list} .msg`, (nodes) => nodes.map((n) => n.dataset.key));
}

test("demo page: declare, bind, publish with several routing keys, see where each went", async () => {
  const { page, errors } = await open("/demo/");
  await page.waitForSelector("html[data-ready=true]");

  // Declare through the forms, as a user would.
  await page.fill("#ex-name", "logs");
  await page.selectOption("#ex-type", "topic");
  await page.click("#ex-declare");
  await page.waitForSelector('#diagram [data-exchange="logs"]', { state: "attached" });
  for (const q of ["errors", "app", "everything"]) {
    await page.fill("#q-name", q);
    await page.click("#q-declare");
    await page.waitForSelector(`.queue[data-queue="${q}"]`);
  }
  for (const [q, key] of [["errors", "*.error"], ["app", "app.#"], ["everything", "#"]]) {
    await page.selectOption("#bind-queue", q);
    await page.selectOption("#bind-exchange", "logs");
    await page.fill("#bind-key", key);
    await page.click("#bind-submit");
    // (a straight path has an empty box, so wait for it in the DOM, not for visibility)
    await page.waitForSelector(`#diagram path.binding[data-destination="${q}"][data-key="${key}"]`, { state: "attached" });
  }

  await page.selectOption("#pub-exchange", "logs");
  for (const key of ["app.error", "db.error", "app.web.started", "db.info"]) {
    const before = await page.$$eval("#log li", (l) => l.length);
    await page.fill("#pub-key", key);
    await page.fill("#pub-body", `body of ${key}`);
    await page.click("#pub-submit");
    await page.waitForFunction((n) => document.querySelectorAll("#log li").length === n + 1, before);
  }
  await page.evaluate(() => window.demo.rendered());

  // Which queue got which message, read from the page.
  assert.deepEqual(await chips(page, "errors", "ready"), ["app.error", "db.error"]);
  assert.deepEqual(await chips(page, "app", "ready"), ["app.error", "app.web.started"]);
  assert.deepEqual(await chips(page, "everything", "ready"), ["app.error", "db.error", "app.web.started", "db.info"]);
  const log = await page.$$eval("#log li", (l) => l.map((li) => [li.dataset.key, li.dataset.queues]).reverse());
  assert.deepEqual(log, [
    ["app.error", "app errors everything"],
    ["db.error", "errors everything"],
    ["app.web.started", "app everything"],
    ["db.info", "everything"],
  ]);
  // The broker's own counts agree.
  const ready = (q) => page.textContent(`.queue[data-queue="${q}"] [data-count=ready]`);
  assert.deepEqual([await ready("errors"), await ready("app"), await ready("everything")], ["2", "2", "4"]);
  // The last publish (db.info) lit the `#` binding, with what `#` matched.
  assert.equal(await page.getAttribute('#diagram path.binding.hit', "data-key"), "#");
  assert.equal(await page.textContent("#diagram .matched"), "#=db.info");
  assert.equal(await page.$$eval("#diagram .label .hash", (n) => n.length), 2, "'#' wildcards are highlighted");
  assert.equal(await page.$$eval("#diagram .label .star", (n) => n.length), 1, "'*' wildcards are highlighted");

  // Publishing app.error again lights the two wildcard bindings with their matched words.
  await page.fill("#pub-key", "app.error");
  await page.click("#pub-submit");
  await page.waitForFunction(() => document.querySelectorAll("#log li").length === 5);
  await page.evaluate(() => window.demo.rendered());
  const hits = await page.$$eval("#diagram path.binding.hit", (p) => p.map((x) => x.dataset.key).sort());
  assert.deepEqual(hits, ["#", "*.error", "app.#"]);
  const matched = await page.$$eval("#diagram .matched", (t) => t.map((x) => x.textContent).sort());
  assert.deepEqual(matched, ["#=app.error", "#=error", "*=app"]);

  // Consume from "errors" with prefetch 2: two unacked, one still ready.
  await page.fill('.queue[data-queue="errors"] .prefetch', "2");
  await page.click('.queue[data-queue="errors"] button.consume');
  await page.waitForFunction(() => document.querySelectorAll('.queue[data-queue="errors"] .list.unacked .msg').length === 2);
  assert.deepEqual(await chips(page, "errors", "unacked"), ["app.error", "db.error"]);
  assert.deepEqual(await chips(page, "errors", "ready"), ["app.error"]);
  await page.waitForFunction(() => document.querySelector('.queue[data-queue="errors"] [data-count=unacked]').textContent === "2");

  // Ack the first: the third message is delivered in its place.
  await page.click('.queue[data-queue="errors"] .list.unacked .msg[data-key="app.error"] button.ack');
  await page.waitForFunction(() => document.querySelectorAll('.queue[data-queue="errors"] .list.ready .msg').length === 0);
  // Nack (requeue) db.error: it comes back, marked redelivered.
  await page.click('.queue[data-queue="errors"] .list.unacked .msg[data-key="db.error"] button.nack');
  await page.waitForSelector('.queue[data-queue="errors"] .list.unacked .msg.redelivered[data-key="db.error"]');
  assert.match(await page.textContent('.queue[data-queue="errors"] .msg.redelivered'), /redelivered/);
  await page.evaluate(() => window.demo.rendered());
  await page.screenshot({ path: join(outDir, "demo.png"), fullPage: true });

  // Stop consuming: unacked messages go back to the queue, redelivered.
  await page.click('.queue[data-queue="errors"] button.consume');
  await page.waitForFunction(() => document.querySelector('.queue[data-queue="errors"] [data-count=ready]').textContent === "2"
    && document.querySelector('.queue[data-queue="errors"] [data-count=consumers]').textContent === "0");
  assert.equal(await page.$$eval('.queue[data-queue="errors"] .list.ready .msg.redelivered', (n) => n.length), 2);
  assert.deepEqual(errors, []);
  await page.close();
});

test("@cloudamqp/amqp-client in a page: declare, publish, consume, ack through the stand-in", async () => {
  const { page, errors } = await open("/test/pages/amqp-client.html");
  await page.waitForFunction(() => window.result !== undefined);
  const result = await page.evaluate(() => window.result);
  assert.equal(result.error, undefined, result.error);
  assert.deepEqual(result.received, [
    { body: "alice", routingKey: "user.created", contentType: "text/plain" },
    { body: "bob", routingKey: "user.deleted", contentType: null },
  ]);
  assert.deepEqual(result.afterAck, { messages: 0, unacked: 0 });
  assert.deepEqual(errors, []);
  await page.close();
});

test("IndexedDB: durable queues and persistent messages survive a reload", async () => {
  const { page, errors } = await open("/test/pages/blank.html");
  const first = await page.evaluate(async () => {
    const { Broker, IdbStore } = await import("/js/index.js");
    await IdbStore.destroy("reload-test");
    const broker = await Broker.create({ persist: "reload-test" });
    await broker.declareExchange("orders", "direct", { durable: true });
    await broker.declareQueue("kept", { durable: true });
    await broker.declareQueue("gone");
    await broker.bind("kept", "orders", "new");
    await broker.publish("orders", "new", "persistent one", { persistent: true });
    await broker.publish("orders", "new", "transient one");
    await broker.publish("", "kept", "persistent two", { persistent: true });
    // Delivered, not acked, when the page goes away: it must come back redelivered.
    await new Promise((resolve) => broker.consume("kept", () => resolve(), { prefetch: 1 }));
    await broker.flush();
    return broker.topology().queues.map((q) => [q.name, q.messages + q.unacked]);
  });
  assert.deepEqual(first, [["gone", 0], ["kept", 3]]);
  await page.reload();
  const second = await page.evaluate(async () => {
    const { Broker } = await import("/js/index.js");
    const broker = await Broker.create({ persist: "reload-test" });
    const t = broker.topology();
    const got = [];
    for (let m = await broker.get("kept"); m; m = await broker.get("kept")) {
      got.push([m.text, m.redelivered]);
      m.ack();
    }
    const routed = await broker.publish("orders", "new", "after reload");
    await broker.flush();
    return {
      queues: t.queues.map((q) => [q.name, q.durable, q.messages]),
      orders: t.exchanges.find((e) => e.name === "orders")?.bindings.map((b) => [b.destination, b.routingKey]),
      got,
      routed,
      recoveryErrors: broker.recoveryErrors,
    };
  });
  assert.deepEqual(second.queues, [["kept", true, 2]], "the transient queue and message are gone");
  assert.deepEqual(second.orders, [["kept", "new"]]);
  assert.deepEqual(second.got, [["persistent one", true], ["persistent two", false]]);
  assert.deepEqual(second.routed, { routed: true });
  assert.equal(second.recoveryErrors, 0);
  assert.deepEqual(errors, []);
  await page.close();
});

test("a SharedWorker broker serves two tabs over MessagePorts", async () => {
  const a = await open("/test/pages/shared.html");
  const b = await open("/test/pages/shared.html");
  await a.page.evaluate(() => window.brokerReady);
  await b.page.evaluate(() => window.brokerReady);
  // Tab A consumes; tab B publishes; both talk to the one broker in the worker.
  await a.page.evaluate(async () => {
    await window.broker.declareQueue("chat");
    window.got = [];
    await window.broker.consume("chat", (m) => { window.got.push(m.text); m.ack(); });
  });
  await b.page.evaluate(async () => {
    await window.broker.publish("", "chat", "hello from tab B");
    await window.broker.publish("", "chat", "second");
  });
  await a.page.waitForFunction(() => window.got.length === 2);
  assert.deepEqual(await a.page.evaluate(() => window.got), ["hello from tab B", "second"]);
  const topology = await b.page.evaluate(() => window.broker.topology());
  assert.equal(topology.connections, 2, "one convenience connection per tab");
  assert.deepEqual(topology.queues.map((q) => [q.name, q.consumers]), [["chat", 1]]);
  // Tab A goes away: its connection closes, its consumer goes with it.
  await a.page.close({ runBeforeUnload: true });
  await b.page.waitForFunction(async () => (await window.broker.topology()).connections === 1);
  assert.deepEqual(b.errors, []);
  await b.page.close();
});
