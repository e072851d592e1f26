// @cloudamqp/amqp-client's browser bundle in headless Chromium (Playwright, system Chromium)
// against warren's --ws listener, with pika on the other side: page → pika and pika → page.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { execFile, execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { startWarren, freePort, root, uniqueName, within, makeCertificate } from "../lib/warren.js";

const CHROMIUM = process.env.CHROMIUM_BIN || "/usr/bin/chromium";
const PYTHON = process.env.PIKA_PYTHON || join(root, "tests/python/.venv/bin/python");
const PIKA_PEER = join(root, "tests/node/lib/pika_peer.py");
const BUNDLE = join(root, "tests/node/node_modules/@cloudamqp/amqp-client/dist/amqp-websocket-client.mjs");
const PAGE = join(root, "tests/node/browser/index.html");

let warren, site, sitePort, context, userDataDir, page, cert;

/** base64 SHA-256 of the certificate's public key, for --ignore-certificate-errors-spki-list. */
function spkiHash(certPath) {
  const pub = execFileSync("openssl", ["x509", "-in", certPath, "-pubkey", "-noout"]);
  const der = execFileSync("openssl", ["pkey", "-pubin", "-outform", "der"], { input: pub });
  return execFileSync("openssl", ["dgst", "-sha256", "-binary"], { input: der }).toString("base64");
}

/** Serves the test page and the client bundle on 127.0.0.1 (and so on localhost too). */
function serveSite(port) {
  const files = {
    "/": ["text/html; charset=utf-8", readFileSync(PAGE)],
    "/amqp-websocket-client.mjs": ["text/javascript; charset=utf-8", readFileSync(BUNDLE)],
  };
  const server = createServer((req, res) => {
    const path = new URL(req.url, "http://x").pathname;
    if (path === "/favicon.ico") {
      res.writeHead(204).end();
      return;
    }
    const file = files[path];
    if (!file) {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { "content-type": file[0], "cache-control": "no-store" }).end(file[1]);
  });
  return new Promise((ok) => server.listen(port, "127.0.0.1", () => ok(server)));
}

function pika(args, input) {
  return new Promise((ok, fail) => {
    const child = execFile(PYTHON, [PIKA_PEER, warren.amqpUrl, ...args], { timeout: 20_000 }, (err, stdout, stderr) => {
      if (err) fail(new Error(`pika ${args.join(" ")} failed: ${err.message}\n${stderr}`));
      else ok(stdout);
    });
    child.stdin.end(input ?? "");
  });
}

async function openPage(origin) {
  const p = await context.newPage();
  p.on("pageerror", (e) => console.error(`page error: ${e.message}`));
  p.on("console", (m) => m.type() === "error" && console.error(`page console: ${m.text()}`));
  await p.goto(`${origin}/`);
  await p.waitForFunction(() => document.getElementById("status")?.textContent === "ready", null, { timeout: 10_000 });
  return p;
}

before(async () => {
  assert.ok(existsSync(CHROMIUM), `no Chromium at ${CHROMIUM} (tests/node/run.sh installs it)`);
  assert.ok(existsSync(PYTHON), `no Python with pika at ${PYTHON} (tests/node/run.sh creates it)`);
  sitePort = await freePort();
  site = await serveSite(sitePort);
  // Only the page's own origin may open WebSockets: a real browser sends it.
  cert = makeCertificate();
  warren = await startWarren({
    tls: cert,
    extraArgs: ["--ws-allowed-origin", `http://127.0.0.1:${sitePort}`],
  });
  userDataDir = mkdtempSync(join(tmpdir(), "warren-chromium-"));
  context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    timeout: 30_000,
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--no-first-run", "--disable-quic", "--disable-sync",
      // Trust exactly the test's self-signed certificate (needs a user-data-dir, as here).
      `--ignore-certificate-errors-spki-list=${spkiHash(cert.cert)}`,
    ],
  });
  page = await openPage(`http://127.0.0.1:${sitePort}`);
});

after(async () => {
  await context?.close();
  if (userDataDir) rmSync(userDataDir, { recursive: true, force: true });
  await new Promise((ok) => (site ? site.close(ok) : ok()));
  await warren?.stop();
  cert?.remove();
});

const bodies = [
  Buffer.from("hello from the other side"),
  Buffer.from("æøå ✓ 🐇", "utf8"),
  Buffer.alloc(0),
  Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
  Buffer.from(Array.from({ length: 200_000 }, (_, i) => (i * 13) % 256)),
];
const b64 = bodies.map((b) => b.toString("base64"));

test("the page publishes over WebSocket, pika consumes over TCP", { timeout: 60_000 }, async () => {
  const queue = uniqueName("page-to-pika");
  await pika(["declare", queue]);
  const published = await within(20_000, "page publish", page.evaluate(
    ([url, q, bs]) => window.warrenTest.publish(url, q, bs), [warren.wsUrl, queue, b64]));
  assert.equal(published, bodies.length);
  const got = JSON.parse(await pika(["consume", queue, String(bodies.length)]));
  assert.deepEqual(got.map((b) => Buffer.from(b, "base64")), bodies);
  await pika(["delete", queue]);
});

test("pika publishes over TCP, the page consumes over WebSocket", { timeout: 60_000 }, async () => {
  const queue = uniqueName("pika-to-page");
  await pika(["declare", queue]);
  await pika(["publish", queue], JSON.stringify(b64));
  const got = await within(20_000, "page consume", page.evaluate(
    ([url, q, n]) => window.warrenTest.consume(url, q, n), [warren.wsUrl, queue, bodies.length]));
  assert.deepEqual(got.map((b) => Buffer.from(b, "base64")), bodies);
  await pika(["delete", queue]);
});

test("a page from another origin is refused", { timeout: 60_000 }, async () => {
  // localhost and 127.0.0.1 are different origins to the browser.
  const other = await openPage(`http://localhost:${sitePort}`);
  const result = await within(20_000, "connect from another origin", other.evaluate(
    (url) => window.warrenTest.tryConnect(url), warren.wsUrl));
  assert.match(result, /^refused/);
  assert.equal(await page.evaluate((url) => window.warrenTest.tryConnect(url), warren.wsUrl), "connected");
  await other.close();
});

test("over wss: the page publishes, pika consumes, and back", { timeout: 60_000 }, async () => {
  const wssUrl = `wss://localhost:${warren.ports.wss}/ws`;
  const toPika = uniqueName("wss-page-to-pika");
  const toPage = uniqueName("pika-to-wss-page");
  await pika(["declare", toPika]);
  await pika(["declare", toPage]);
  await within(20_000, "page publish over wss", page.evaluate(
    ([url, q, bs]) => window.warrenTest.publish(url, q, bs), [wssUrl, toPika, b64]));
  const atPika = JSON.parse(await pika(["consume", toPika, String(bodies.length)]));
  assert.deepEqual(atPika.map((b) => Buffer.from(b, "base64")), bodies);
  await pika(["publish", toPage], JSON.stringify(b64));
  const atPage = await within(20_000, "page consume over wss", page.evaluate(
    ([url, q, n]) => window.warrenTest.consume(url, q, n), [wssUrl, toPage, bodies.length]));
  assert.deepEqual(atPage.map((b) => Buffer.from(b, "base64")), bodies);
  await pika(["delete", toPika]);
  await pika(["delete", toPage]);
});
