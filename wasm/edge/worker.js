// Warren in an edge worker: AMQP 0-9-1 over WebSocket, served by workerd (Cloudflare Workers'
// runtime). Run locally: npx workerd serve edge/config.capnp  (see the README).
//
// The broker lives in a Durable Object, so every WebSocket of every request is accepted in one
// object and one I/O context: a publish on one connection can be delivered on another.
// (A plain Worker cannot do that: its objects belong to the request that made them.)
import { Broker } from "./js/index.js";
import wasm from "./dist/warren_bg.wasm"; // a WebAssembly.Module in workerd

export default {
  async fetch(request, env) {
    if (request.headers.get("Upgrade")?.toLowerCase() !== "websocket") {
      return new Response("Warren: connect an AMQP-over-WebSocket client to ws://<host>/ws\n", {
        status: 426,
        headers: { "content-type": "text/plain" },
      });
    }
    const name = new URL(request.url).searchParams.get("broker") ?? "default";
    return env.BROKER.get(env.BROKER.idFromName(name)).fetch(request);
  },
};

export class WarrenBroker {
  constructor(state, env) {
    void state; void env;
    this.broker = Broker.create({ wasm });
  }

  async fetch() {
    const broker = await this.broker;
    const [client, server] = Object.values(new WebSocketPair());
    server.accept();
    broker.serveWebSocket(server);
    return new Response(null, { status: 101, webSocket: client });
  }
}
