// The routing playground: a broker in the page, driven through the package's convenience API
// (real AMQP frames), drawn from the broker's own topology. `window.demo` exposes the broker
// and the actions for tests.
import { Broker } from "../js/index.js";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const params = new URLSearchParams(location.search);
const persist = params.get("persist") ?? (localStorage.getItem("warren-demo-persist") ? "demo" : null);

const state = {
  broker: null,
  nextId: 1,
  /** queue name → { ready: [chip], unacked: Map<id, chip>, consumer } */
  queues: new Map(),
  pendingPublishes: 0,
  lastTrace: null,
  topology: null,
};

function queueState(name) {
  let q = state.queues.get(name);
  if (!q) {
    q = { ready: [], unacked: new Map(), consumer: null };
    state.queues.set(name, q);
  }
  return q;
}

function showError(err) {
  $("error").textContent = err ? String(err.message ?? err) : "";
}

async function action(fn) {
  showError(null);
  try {
    return await fn();
  } catch (err) {
    showError(err);
    return undefined;
  } finally {
    refresh();
  }
}

// --- actions (all through AMQP) -------------------------------------------------------------

async function declareExchange(name, type = "topic", { durable = false } = {}) {
  return action(() => state.broker.declareExchange(name, type, { durable }));
}

async function declareQueue(name, { durable = false, ttl } = {}) {
  const args = ttl ? { "x-message-ttl": Number(ttl) } : {};
  return action(() => state.broker.declareQueue(name, { durable, arguments: args }));
}

async function bind(queue, exchange, key) {
  return action(() => state.broker.bind(queue, exchange, key));
}

function parseHeaders(text) {
  const headers = {};
  for (const part of (text ?? "").split(",")) {
    const [k, ...v] = part.split("=");
    if (k.trim()) headers[k.trim()] = v.join("=").trim();
  }
  return headers;
}

/** Publishes one message; returns its log entry `{ id, key, queues }`. */
async function publish(exchange, routingKey, body, { persistent = false, headers = {} } = {}) {
  return action(async () => {
    const id = `m${state.nextId++}`;
    const trace = state.broker.trace(exchange, routingKey, { headers });
    // The chips go in first: a consumer may get the message before the confirm arrives.
    const chip = { id, key: routingKey, body: String(body), exchange, redelivered: false };
    for (const q of trace.queues) queueState(q).ready.push({ ...chip });
    state.pendingPublishes++;
    try {
      await state.broker.publish(exchange, routingKey, body, {
        messageId: id, persistent, headers, contentType: "text/plain",
      });
    } catch (err) {
      for (const q of trace.queues) {
        const s = queueState(q);
        s.ready = s.ready.filter((c) => c.id !== id);
      }
      throw err;
    } finally {
      state.pendingPublishes--;
    }
    state.lastTrace = { id, exchange, routingKey, ...trace };
    addLog(state.lastTrace, chip.body);
    flash(trace);
    return { id, key: routingKey, queues: trace.queues };
  });
}

async function startConsumer(queue, prefetch = 2) {
  const s = queueState(queue);
  if (s.consumer) return;
  s.consumer = "starting";
  await action(async () => {
    try {
      s.consumer = await state.broker.consume(queue, (msg) => onDelivery(queue, msg), {
        prefetch,
        onCancel: () => { s.consumer = null; refresh(); },
      });
    } catch (err) {
      s.consumer = null;
      throw err;
    }
  });
}

function onDelivery(queue, msg) {
  const s = queueState(queue);
  const id = msg.properties.messageId ?? `x${msg.deliveryTag}`;
  let chip = s.ready.find((c) => c.id === id);
  s.ready = s.ready.filter((c) => c !== chip);
  chip ??= { id, key: msg.routingKey, body: msg.text, exchange: msg.exchange };
  chip.redelivered = msg.redelivered;
  chip.msg = msg;
  s.unacked.set(id, chip);
  refresh();
}

/** Closes the consumer's channel: its unacked messages go back to the queue, redelivered. */
async function stopConsumer(queue) {
  const s = queueState(queue);
  const consumer = s.consumer;
  if (!consumer || consumer === "starting") return;
  s.consumer = null;
  const back = [...s.unacked.values()].map((c) => ({ ...c, msg: undefined, redelivered: true }));
  s.unacked.clear();
  s.ready.unshift(...back);
  await action(() => consumer.close());
}

function settle(queue, id, how) {
  const s = queueState(queue);
  const chip = s.unacked.get(id);
  if (!chip) return;
  s.unacked.delete(id);
  if (how === "ack") chip.msg.ack();
  else if (how === "reject") chip.msg.reject(false);
  else {
    chip.msg.nack(true);
    // Back to the head of the queue until the broker delivers it again.
    s.ready.unshift({ ...chip, msg: undefined, redelivered: true });
  }
  refresh();
}

async function loadExample() {
  await declareExchange("logs", "topic");
  for (const [queue, key] of [["errors", "*.error"], ["app", "app.#"], ["everything", "#"], ["critical", "*.*.critical"]]) {
    await declareQueue(queue);
    await bind(queue, "logs", key);
  }
  $("pub-exchange").value = "logs";
  $("pub-key").value = "app.error";
}

// --- rendering ------------------------------------------------------------------------------

let refreshQueued = false;
function refresh() {
  if (refreshQueued) return;
  refreshQueued = true;
  requestAnimationFrame(() => {
    refreshQueued = false;
    render();
  });
}

function patternSpans(pattern, parent, words) {
  const parts = pattern.split(".");
  parts.forEach((w, i) => {
    if (i > 0) parent.append(".");
    const span = document.createElementNS(SVG, "tspan");
    if (w === "*") span.setAttribute("class", "star");
    if (w === "#") span.setAttribute("class", "hash");
    span.textContent = w;
    if (words && (w === "*" || w === "#")) {
      const took = words[i]?.[1] ?? "";
      const title = document.createElementNS(SVG, "title");
      title.textContent = `${w} matched "${took}"`;
      span.append(title);
    }
    parent.append(span);
  });
}

function el(tag, attrs = {}, ...children) {
  const node = tag.startsWith("svg:") ? document.createElementNS(SVG, tag.slice(4)) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.setAttribute("class", v);
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else node.setAttribute(k, v);
  }
  node.append(...children.filter((c) => c !== null && c !== undefined));
  return node;
}

function shown(topology) {
  const used = new Set();
  for (const ex of topology.exchanges) if (ex.bindings.length) used.add(ex.name);
  for (const ex of topology.exchanges) for (const b of ex.bindings) if (b.destinationType === "exchange") used.add(b.destination);
  return topology.exchanges.filter((ex) => !ex.builtin || (ex.name !== "" && used.has(ex.name)));
}

function renderDiagram(topology) {
  const svg = $("diagram");
  svg.replaceChildren();
  const exchanges = shown(topology);
  const queues = topology.queues;
  const width = Math.max(svg.clientWidth || 640, 520);
  const rowH = 76;
  const height = Math.max(exchanges.length, queues.length, 2) * rowH + 30;
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.style.height = `${height}px`;
  if (!exchanges.length && !queues.length) {
    svg.append(el("svg:text", { x: 20, y: 40, class: "empty" }, "Declare an exchange and a queue, or load the topic example."));
    return;
  }
  const boxW = 170;
  const exPos = new Map();
  const qPos = new Map();
  const exTop = (height - exchanges.length * rowH) / 2;
  const qTop = (height - queues.length * rowH) / 2;
  exchanges.forEach((ex, i) => exPos.set(ex.name, { x: 14, y: exTop + i * rowH + 10 }));
  queues.forEach((q, i) => qPos.set(q.name, { x: width - boxW - 14, y: qTop + i * rowH + 10 }));
  const trace = state.lastTrace;
  const hitBinding = (source, b) => trace?.bindings.find((t) => t.source === source && t.destination === b.destination
    && t.destinationType === b.destinationType && t.routingKey === b.routingKey);

  const edges = el("svg:g");
  const labels = el("svg:g");
  for (const ex of exchanges) {
    const from = exPos.get(ex.name);
    ex.bindings.forEach((b) => {
      const to = b.destinationType === "queue" ? qPos.get(b.destination) : exPos.get(b.destination);
      if (!to) return;
      const hit = hitBinding(ex.name, b);
      const x1 = from.x + boxW;
      const y1 = from.y + 22;
      const x2 = b.destinationType === "queue" ? to.x : to.x + boxW;
      const y2 = to.y + 22;
      const bend = b.destinationType === "queue" ? (x2 - x1) / 2 : 90;
      const d = b.destinationType === "queue"
        ? `M${x1},${y1} C${x1 + bend},${y1} ${x2 - bend},${y2} ${x2},${y2}`
        : `M${x1},${y1} C${x1 + bend},${y1} ${x2 + bend},${y2} ${x2},${y2}`;
      const path = el("svg:path", { d, class: `binding${hit ? " hit" : ""}`, "data-source": ex.name, "data-destination": b.destination, "data-key": b.routingKey });
      edges.append(path);
      if (hit) {
        const dot = el("svg:circle", { r: 5, class: "dot" });
        dot.append(el("svg:animateMotion", { dur: "0.8s", repeatCount: "1", fill: "freeze", path: d }));
        edges.append(dot);
      }
      // Labels sit three quarters along the curve, near their queue, so they do not pile up
      // where the curves leave the exchange.
      const t = b.destinationType === "queue" ? 0.72 : 0.5;
      const [a0, a1, a2, a3] = [(1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t ** 2, t ** 3];
      const mx = b.destinationType === "queue"
        ? a0 * x1 + a1 * (x1 + bend) + a2 * (x2 - bend) + a3 * x2
        : x1 + bend * 0.75;
      const my = b.destinationType === "queue" ? a0 * y1 + a1 * y1 + a2 * y2 + a3 * y2 : (y1 + y2) / 2;
      const keyText = ex.type === "fanout" ? "(fanout)" : ex.type === "headers" ? headersLabel(b.arguments) : (b.routingKey || "(empty key)");
      const label = el("svg:text", { x: mx, y: my - 4, "text-anchor": "middle", class: `label${hit ? " hit" : ""}` });
      if (ex.type === "topic") patternSpans(b.routingKey, label, hit?.words);
      else label.textContent = keyText;
      const approx = Math.max(keyText.length * 7.4, 30);
      labels.append(el("svg:rect", { x: mx - approx / 2 - 3, y: my - 18, width: approx + 6, height: 18, rx: 4, class: "label-bg" }), label);
      if (hit?.words) {
        const wild = hit.words.filter(([w]) => w === "*" || w === "#").map(([w, took]) => `${w}=${took === "" ? "∅" : took}`);
        if (wild.length) labels.append(el("svg:text", { x: mx, y: my + 12, "text-anchor": "middle", class: "matched" }, wild.join("  ")));
      }
    });
  }
  svg.append(edges);
  const hitQueues = new Set(trace?.queues ?? []);
  for (const ex of exchanges) {
    const p = exPos.get(ex.name);
    const hit = trace && trace.exchange === ex.name;
    svg.append(el("svg:g", { class: `node exchange${hit ? " hit" : ""}`, "data-exchange": ex.name },
      el("svg:rect", { x: p.x, y: p.y, width: boxW, height: 44 }),
      el("svg:text", { x: p.x + 10, y: p.y + 19 }, ex.name),
      el("svg:text", { x: p.x + 10, y: p.y + 35, class: "kind" }, `${ex.type}${ex.durable ? " · durable" : ""}`)));
  }
  for (const q of queues) {
    const p = qPos.get(q.name);
    svg.append(el("svg:g", { class: `node queue${hitQueues.has(q.name) ? " hit" : ""}`, "data-queue": q.name },
      el("svg:rect", { x: p.x, y: p.y, width: boxW, height: 44 }),
      el("svg:text", { x: p.x + 10, y: p.y + 19 }, q.name),
      el("svg:text", { x: p.x + 10, y: p.y + 35, class: "kind" }, `${q.messages} ready · ${q.unacked} unacked`)));
  }
  svg.append(labels);
}

function headersLabel(args) {
  const entries = Object.entries(args ?? {}).filter(([k]) => k !== "x-match");
  return `${args?.["x-match"] ?? "all"}: ${entries.map(([k, v]) => `${k}=${v}`).join(",") || "(any)"}`;
}

function chipNode(queue, chip, unacked) {
  const node = el("div", { class: `msg${chip.redelivered ? " redelivered" : ""}${chip.more ? " more" : ""}`, dataset: { id: chip.id, key: chip.key ?? "" } });
  if (chip.more) {
    node.textContent = chip.text;
    return node;
  }
  node.append(el("b", {}, `#${chip.id.replace(/^m/, "")}`), el("span", { class: "key" }, chip.key), el("span", { class: "body" }, chip.body));
  if (chip.redelivered) node.append(el("span", { class: "badge" }, "redelivered"));
  if (unacked) {
    node.append(
      el("button", { class: "ack", onclick: () => settle(queue, chip.id, "ack"), title: "basic.ack" }, "ack"),
      el("button", { class: "nack", onclick: () => settle(queue, chip.id, "nack"), title: "basic.nack requeue=true" }, "nack ↩"),
      el("button", { class: "reject", onclick: () => settle(queue, chip.id, "reject"), title: "basic.reject requeue=false" }, "reject"));
  }
  return node;
}

function renderQueues(topology) {
  const box = $("queues");
  const names = new Set(topology.queues.map((q) => q.name));
  for (const card of [...box.children]) if (!names.has(card.dataset.queue)) card.remove();
  for (const q of topology.queues) {
    const s = queueState(q.name);
    // Messages can leave without the demo seeing them (TTL, max-length: from the head).
    if (state.pendingPublishes === 0) while (s.ready.length > q.messages) s.ready.shift();
    let card = box.querySelector(`.queue[data-queue="${CSS.escape(q.name)}"]`);
    if (!card) {
      card = el("div", { class: "queue", dataset: { queue: q.name } },
        el("h3", {}, q.name, " ", el("small")),
        el("div", { class: "counts" }),
        el("div", { class: "list ready" }),
        el("div", { class: "actions" },
          el("button", { class: "consume", onclick: () => (queueState(q.name).consumer ? stopConsumer(q.name) : startConsumer(q.name, Number(card.querySelector(".prefetch").value) || 0)) }),
          "prefetch", el("input", { class: "prefetch", type: "number", min: 0, value: 2 })),
        el("div", { class: "list unacked" }));
      box.append(card);
    }
    const ttl = q.arguments["x-message-ttl"];
    card.querySelector("h3 small").textContent = [q.durable ? "durable" : "", ttl !== undefined ? `TTL ${ttl} ms` : ""].filter(Boolean).join(" · ");
    card.querySelector(".counts").replaceChildren(
      el("span", { dataset: { count: "ready" } }, String(q.messages)), " ready · ",
      el("span", { dataset: { count: "unacked" } }, String(q.unacked)), " unacked · ",
      el("span", { dataset: { count: "consumers" } }, String(q.consumers)), " consumers");
    const ready = s.ready.map((c) => chipNode(q.name, c, false));
    const unknown = q.messages - s.ready.length;
    if (unknown > 0) ready.push(chipNode(q.name, { id: "", more: true, text: `+${unknown} not published here` }, false));
    card.querySelector(".list.ready").replaceChildren(...ready);
    card.querySelector(".list.unacked").replaceChildren(...[...s.unacked.values()].map((c) => chipNode(q.name, c, true)));
    card.querySelector("button.consume").textContent = s.consumer ? "Stop (requeue unacked)" : "Consume";
  }
}

function fillSelect(select, values, keep) {
  const current = select.value;
  select.replaceChildren(...values.map(([value, text]) => el("option", { value }, text)));
  if (keep && values.some(([v]) => v === current)) select.value = current;
}

function render() {
  if (!state.broker) return;
  const topology = state.broker.topology();
  state.topology = topology;
  renderDiagram(topology);
  renderQueues(topology);
  const userExchanges = topology.exchanges.filter((e) => e.name !== "");
  fillSelect($("bind-queue"), topology.queues.map((q) => [q.name, q.name]), true);
  fillSelect($("bind-exchange"), userExchanges.map((e) => [e.name, `${e.name} (${e.type})`]), true);
  fillSelect($("pub-exchange"), [...userExchanges.map((e) => [e.name, `${e.name} (${e.type})`]), ["", "(default exchange)"]], true);
  $("status").textContent = `broker running in this page · ${topology.connections} AMQP connection(s)${persist ? ` · IndexedDB "warren:${persist}"` : " · in memory"}`;
}

function addLog(trace, body) {
  const item = el("li", { dataset: { id: trace.id, queues: trace.queues.join(" "), key: trace.routingKey } });
  item.append(el("code", {}, trace.routingKey || "(empty)"), ` "${body}" `, el("span", {}, `via ${trace.exchange || "(default)"} `));
  if (trace.queues.length) item.append("→ ", el("span", { class: "to" }, trace.queues.join(", ")));
  else item.append(el("span", { class: "none" }, "→ unroutable (dropped)"));
  const patterns = trace.bindings.filter((b) => b.words).map((b) => b.routingKey);
  if (patterns.length) item.append(el("span", { class: "key" }, `  [${patterns.join(" | ")}]`));
  $("log").prepend(item);
}

function flash(trace) {
  for (const q of trace.queues) {
    const card = document.querySelector(`.queue[data-queue="${CSS.escape(q)}"]`);
    if (!card) continue;
    card.classList.add("flash");
    setTimeout(() => card.classList.remove("flash"), 600);
  }
}

// --- wiring -------------------------------------------------------------------------------

function onSubmit(id, fn) {
  $(id).addEventListener("submit", (e) => {
    e.preventDefault();
    fn();
  });
}

onSubmit("form-exchange", () => declareExchange($("ex-name").value.trim(), $("ex-type").value, { durable: $("ex-durable").checked }));
onSubmit("form-queue", () => declareQueue($("q-name").value.trim(), { durable: $("q-durable").checked, ttl: $("q-ttl").value }));
onSubmit("form-bind", () => bind($("bind-queue").value, $("bind-exchange").value, $("bind-key").value.trim()));
onSubmit("form-publish", () => publish($("pub-exchange").value, $("pub-key").value.trim(), $("pub-body").value, {
  persistent: $("pub-persistent").checked, headers: parseHeaders($("pub-headers").value),
}));
$("load-example").addEventListener("click", () => loadExample());
$("persist").checked = Boolean(persist);
$("persist").addEventListener("change", (e) => {
  if (e.target.checked) localStorage.setItem("warren-demo-persist", "1");
  else localStorage.removeItem("warren-demo-persist");
  location.search = e.target.checked ? "?persist=demo" : "";
});

try {
  state.broker = await Broker.create(persist ? { persist } : {});
  state.broker.addEventListener("change", refresh);
  window.addEventListener("resize", refresh);
  refresh();
} catch (err) {
  $("status").textContent = "";
  showError(err);
}

window.demo = {
  get broker() { return state.broker; },
  declareExchange, declareQueue, bind, publish, startConsumer, stopConsumer, settle, loadExample,
  /** Resolves after the next render. */
  rendered: () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r))),
};
document.documentElement.dataset.ready = state.broker ? "true" : "error";
