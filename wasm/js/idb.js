// IndexedDB persistence for the broker: replays the engine's storage journal (write-behind)
// and reads every record back at start. The byte formats are documented in src/storage.rs.

const STORES = ["exchanges", "queues", "bindings", "messages", "delivered"];

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

function done(tx) {
  return new Promise((resolve, reject) => {
    tx.oncomplete = () => resolve();
    tx.onerror = () => reject(tx.error);
    tx.onabort = () => reject(tx.error ?? new Error("IndexedDB transaction aborted"));
  });
}

/** Decodes the engine's op format into `{ kind, store, key, value }` objects. */
export function decodeOps(bytes) {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const text = new TextDecoder();
  const ops = [];
  let at = 0;
  const blob = () => {
    const n = view.getUint32(at, true);
    at += 4;
    const b = bytes.slice(at, at + n);
    at += n;
    return b;
  };
  while (at < bytes.length) {
    const kind = bytes[at];
    const store = STORES[bytes[at + 1]];
    const parts = bytes[at + 2];
    at += 3;
    const key = [];
    for (let i = 0; i < parts; i++) {
      const tag = bytes[at++];
      if (tag === 1) {
        const n = view.getUint16(at, true);
        at += 2;
        key.push(text.decode(bytes.subarray(at, at + n)));
        at += n;
      } else if (tag === 2) {
        key.push(view.getFloat64(at, true));
        at += 8;
      } else if (tag === 3) {
        key.push(blob());
      } else {
        throw new Error(`bad storage op key part ${tag}`);
      }
    }
    const op = { kind: kind === 1 ? "put" : kind === 2 ? "delete" : "deletePrefix", store, key };
    if (kind === 1) op.value = blob();
    ops.push(op);
  }
  return ops;
}

/** One broker's database: `warren:<name>`, one object store per record kind. */
export class IdbStore {
  static async open(name, idb = globalThis.indexedDB) {
    if (!idb) throw new Error("persist needs IndexedDB, which this runtime does not have");
    const req = idb.open(`warren:${name}`, 1);
    req.onupgradeneeded = () => {
      for (const s of STORES) {
        if (!req.result.objectStoreNames.contains(s)) req.result.createObjectStore(s);
      }
    };
    return new IdbStore(await request(req));
  }

  #db;
  #last = Promise.resolve();

  constructor(db) {
    this.#db = db;
  }

  /** Every record, in the engine's load format (store byte, u32 length, value; key order). */
  async load() {
    const tx = this.#db.transaction(STORES, "readonly");
    const all = await Promise.all(STORES.map((s) => request(tx.objectStore(s).getAll())));
    let size = 0;
    for (const values of all) for (const v of values) size += 5 + v.byteLength;
    const out = new Uint8Array(size);
    const view = new DataView(out.buffer);
    let at = 0;
    all.forEach((values, store) => {
      for (const v of values) {
        const bytes = v instanceof Uint8Array ? v : new Uint8Array(v);
        out[at] = store;
        view.setUint32(at + 1, bytes.length, true);
        out.set(bytes, at + 5);
        at += 5 + bytes.length;
      }
    });
    return out;
  }

  /** Applies a journal in one transaction; resolves when it is committed. Writes stay ordered. */
  write(opBytes) {
    const ops = decodeOps(opBytes);
    const tx = this.#db.transaction(STORES, "readwrite");
    for (const op of ops) {
      const store = tx.objectStore(op.store);
      if (op.kind === "put") store.put(op.value, op.key);
      else if (op.kind === "delete") store.delete(op.key);
      else store.delete(IDBKeyRange.bound(op.key, [...op.key, []]));
    }
    const committed = done(tx);
    this.#last = this.#last.then(() => committed, () => committed);
    return committed;
  }

  /** Resolves when every write so far is committed. */
  settled() {
    return this.#last;
  }

  close() {
    this.#db.close();
  }

  /** Deletes a broker's database (for tests and "reset" buttons). */
  static destroy(name, idb = globalThis.indexedDB) {
    return request(idb.deleteDatabase(`warren:${name}`));
  }
}
