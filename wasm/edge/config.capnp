# workerd configuration for the edge example: `npx workerd serve edge/config.capnp`
# (override the address with --socket-addr http=127.0.0.1:PORT). Run `./build.sh` first.
using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [ (name = "warren", worker = .warren) ],
  sockets = [ (name = "http", address = "127.0.0.1:8787", http = (), service = "warren") ],
);

const warren :Workerd.Worker = (
  modules = [
    (name = "worker.js", esModule = embed "worker.js"),
    (name = "js/index.js", esModule = embed "../js/index.js"),
    (name = "js/amqp.js", esModule = embed "../js/amqp.js"),
    (name = "js/socket.js", esModule = embed "../js/socket.js"),
    (name = "js/idb.js", esModule = embed "../js/idb.js"),
    (name = "dist/warren.js", esModule = embed "../dist/warren.js"),
    (name = "dist/warren_bg.wasm", wasm = embed "../dist/warren_bg.wasm"),
  ],
  compatibilityDate = "2025-09-01",
  durableObjectNamespaces = [ (className = "WarrenBroker", uniqueKey = "warren-edge-example") ],
  durableObjectStorage = (inMemory = void),
  bindings = [ (name = "BROKER", durableObjectNamespace = "WarrenBroker") ],
);
