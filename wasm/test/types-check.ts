// Compile-only check of the package's TypeScript types (tsc --noEmit, see test.sh).
import { Broker, RemoteBroker, AmqpError, type Message, type Topology, type Trace } from "warren-broker";

async function main(): Promise<void> {
  const broker: Broker = await Broker.create({ heartbeat: 30, persist: "app" });
  const uninstall: () => void = broker.installWebSocketShim("warren://local");
  const ws = new WebSocket("warren://local");
  ws.binaryType = "arraybuffer";
  const socket = broker.connect();
  socket.onmessage = (e: MessageEvent) => void e.data;
  await broker.declareExchange("logs", "topic", { durable: true });
  const ok = await broker.declareQueue("errors", { arguments: { "x-message-ttl": 1000 } });
  const n: number = ok.messageCount;
  await broker.bind("errors", "logs", "*.error");
  const { routed } = await broker.publish("logs", "app.error", "boom", { persistent: true, mandatory: true, headers: { a: 1 } });
  const consumer = await broker.consume("errors", (m: Message) => {
    const text: string = m.text;
    if (m.redelivered) m.ack();
    else m.nack(true);
    void text;
  }, { prefetch: 2 });
  await consumer.cancel();
  const t: Topology = broker.topology();
  const tr: Trace = broker.trace("logs", "app.error");
  const words = tr.bindings[0]?.words?.[0]?.[1];
  const remote = await RemoteBroker.connect(new SharedWorker("/worker.js", { type: "module" }));
  const rt: Topology = await remote.topology();
  try {
    await broker.declareQueue("errors", { durable: true });
  } catch (err) {
    if (err instanceof AmqpError && err.code === 406) uninstall();
  }
  void n; void routed; void t; void words; void rt;
  await broker.close();
}
void main;
