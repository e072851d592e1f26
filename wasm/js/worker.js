// The worker side of RemoteBroker: load as a module Worker or SharedWorker.
//
//   // page (any number of tabs, with a SharedWorker):
//   const worker = new SharedWorker(new URL("warren-broker/worker", import.meta.url), { type: "module" });
//   const broker = await RemoteBroker.connect(worker, { persist: "app" });
//
// The first tab's options create the broker; later tabs share it. Each AMQP connection gets a
// MessagePort of its own; a control port per tab carries `topology`, `trace` and `flush`.

import { Broker } from "./index.js";

let broker = null;

function serve(ctl) {
  ctl.onmessage = async (e) => {
    if (e.data?.t !== "hello") return;
    broker ??= Broker.create(e.data.options ?? {});
    try {
      (await broker).serveControl(ctl);
    } catch (err) {
      console.error("warren: cannot start the broker", err);
    }
  };
}

if (typeof SharedWorkerGlobalScope === "function" && globalThis instanceof SharedWorkerGlobalScope) {
  globalThis.onconnect = (e) => serve(e.ports[0]);
} else {
  serve(globalThis);
}
