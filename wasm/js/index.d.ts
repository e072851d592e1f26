// Types for warren-broker: an AMQP 0-9-1 broker (Warren's Rust core as wasm) for browsers,
// Web Workers and edge workers.

/** Message properties (the 13 AMQP basic properties, camelCase). */
export interface Properties {
  contentType?: string;
  contentEncoding?: string;
  headers?: Record<string, unknown>;
  /** 1 transient, 2 persistent. */
  deliveryMode?: number;
  priority?: number;
  correlationId?: string;
  replyTo?: string;
  /** Per-message TTL in milliseconds (a decimal string on the wire). */
  expiration?: string | number;
  messageId?: string;
  /** Seconds since the epoch, or a Date. */
  timestamp?: number | Date;
  type?: string;
  userId?: string;
  appId?: string;
}

export interface PublishOptions extends Properties {
  /** Shorthand for deliveryMode 2 (true) or 1 (false). */
  persistent?: boolean;
  /** Ask the broker to return the message if no queue takes it (`routed: false`). */
  mandatory?: boolean;
}

export interface PublishResult {
  /** False when `mandatory` was set and no queue took the message. */
  routed: boolean;
}

/** AMQP field-table values as JavaScript sees them. */
export type FieldValue =
  | null | boolean | number | bigint | string | Date | Uint8Array
  | FieldValue[] | { [key: string]: FieldValue };
export type FieldTable = Record<string, FieldValue>;

export interface ExchangeOptions {
  durable?: boolean;
  autoDelete?: boolean;
  internal?: boolean;
  passive?: boolean;
  arguments?: FieldTable;
}

export interface QueueOptions {
  durable?: boolean;
  exclusive?: boolean;
  autoDelete?: boolean;
  passive?: boolean;
  /** e.g. `{ "x-message-ttl": 5000, "x-dead-letter-exchange": "dlx", "x-max-length": 100 }` */
  arguments?: FieldTable;
}

export interface QueueDeclareOk {
  queue: string;
  messageCount: number;
  consumerCount: number;
}

export interface ConsumeOptions {
  noAck?: boolean;
  /** basic.qos prefetch count for this consumer's channel (0: unlimited). */
  prefetch?: number;
  exclusive?: boolean;
  consumerTag?: string;
  arguments?: FieldTable;
  /** The broker cancelled the consumer (its queue was deleted). */
  onCancel?: () => void;
  /** The consumer's channel or connection failed. */
  onError?: (error: AmqpError) => void;
}

export interface Consumer {
  consumerTag: string;
  channel: number;
  /** basic.cancel: no more deliveries; unacked messages can still be acked. */
  cancel(): Promise<void>;
  /** Closes the consumer's channel: its unacked messages return to the queue, redelivered. */
  close(): Promise<void>;
}

/** A message delivered by `consume` or fetched by `get`. */
export declare class Message {
  readonly body: Uint8Array;
  /** The body decoded as UTF-8. */
  readonly text: string;
  readonly properties: Properties;
  readonly exchange: string;
  readonly routingKey: string;
  readonly redelivered: boolean;
  readonly deliveryTag: number;
  readonly consumerTag?: string;
  /** basic.get only: messages left in the queue. */
  readonly messageCount?: number;
  /** basic.ack. Returns false if the channel is gone (the broker has requeued it already). */
  ack(multiple?: boolean): boolean;
  /** basic.nack; with `requeue` (the default) it comes back marked redelivered. */
  nack(requeue?: boolean, multiple?: boolean): boolean;
  /** basic.reject; without `requeue` (the default) it is dropped or dead-lettered. */
  reject(requeue?: boolean): boolean;
}

/** An AMQP channel or connection error (e.g. 404 NOT_FOUND, 406 PRECONDITION_FAILED). */
export declare class AmqpError extends Error {
  readonly code: number;
  readonly replyText: string;
  readonly classId: number;
  readonly methodId: number;
  readonly scope: "channel" | "connection";
}

/** Operations every broker handle offers, all over one AMQP connection. */
export interface AmqpOperations {
  declareExchange(name: string, type?: "direct" | "fanout" | "topic" | "headers" | string, options?: ExchangeOptions): Promise<void>;
  deleteExchange(name: string, options?: { ifUnused?: boolean }): Promise<void>;
  declareQueue(name?: string, options?: QueueOptions): Promise<QueueDeclareOk>;
  deleteQueue(name: string, options?: { ifUnused?: boolean; ifEmpty?: boolean }): Promise<number>;
  purgeQueue(name: string): Promise<number>;
  bind(queue: string, exchange: string, routingKey?: string, args?: FieldTable): Promise<void>;
  unbind(queue: string, exchange: string, routingKey?: string, args?: FieldTable): Promise<void>;
  bindExchange(destination: string, source: string, routingKey?: string, args?: FieldTable): Promise<void>;
  /** Publishes with publisher confirms: resolves once the broker has the message. */
  publish(exchange: string, routingKey: string, body: string | Uint8Array | ArrayBuffer | ArrayBufferView | object, options?: PublishOptions): Promise<PublishResult>;
  /** basic.get: a message, or null when the queue is empty. */
  get(queue: string, options?: { noAck?: boolean }): Promise<Message | null>;
  consume(queue: string, onMessage: (message: Message) => void, options?: ConsumeOptions): Promise<Consumer>;
}

/** A small AMQP 0-9-1 client over any WebSocket-shaped object (the convenience API's). */
export declare class AmqpClient implements AmqpOperations {
  static open(socket: WebSocketLike, options?: { username?: string; password?: string; vhost?: string; heartbeat?: number }): Promise<AmqpClient>;
  readonly isOpen: boolean;
  close(): Promise<void>;
  declareExchange(name: string, type?: string, options?: ExchangeOptions): Promise<void>;
  deleteExchange(name: string, options?: { ifUnused?: boolean }): Promise<void>;
  declareQueue(name?: string, options?: QueueOptions): Promise<QueueDeclareOk>;
  deleteQueue(name: string, options?: { ifUnused?: boolean; ifEmpty?: boolean }): Promise<number>;
  purgeQueue(name: string): Promise<number>;
  bind(queue: string, exchange: string, routingKey?: string, args?: FieldTable): Promise<void>;
  unbind(queue: string, exchange: string, routingKey?: string, args?: FieldTable): Promise<void>;
  bindExchange(destination: string, source: string, routingKey?: string, args?: FieldTable): Promise<void>;
  publish(exchange: string, routingKey: string, body: string | Uint8Array | ArrayBuffer | ArrayBufferView | object, options?: PublishOptions): Promise<PublishResult>;
  get(queue: string, options?: { noAck?: boolean }): Promise<Message | null>;
  consume(queue: string, onMessage: (message: Message) => void, options?: ConsumeOptions): Promise<Consumer>;
}

/** The part of the browser WebSocket interface AMQP-over-WebSocket clients use. */
export interface WebSocketLike extends EventTarget {
  readonly readyState: number;
  binaryType: BinaryType;
  send(data: string | ArrayBufferLike | ArrayBufferView | Blob): void;
  close(code?: number, reason?: string): void;
}

/** How a BrokerSocket reaches a broker (a Broker or RemoteBroker implements it). */
export interface Link {
  attach(endpoint: {
    data(buffer: ArrayBuffer): void;
    closed(code: number, reason: string, wasClean: boolean): void;
  }): { send(bytes: Uint8Array): void; close(): void };
}

/** One AMQP connection to a broker, shaped like a browser `WebSocket`. */
export declare class BrokerSocket extends EventTarget implements WebSocketLike {
  static readonly CONNECTING: 0;
  static readonly OPEN: 1;
  static readonly CLOSING: 2;
  static readonly CLOSED: 3;
  readonly CONNECTING: 0;
  readonly OPEN: 1;
  readonly CLOSING: 2;
  readonly CLOSED: 3;
  constructor(url: string | URL, link: Link, protocols?: string | string[]);
  readonly url: string;
  readonly protocol: string;
  readonly extensions: string;
  readonly bufferedAmount: number;
  readonly readyState: number;
  binaryType: BinaryType;
  onopen: ((event: Event) => void) | null;
  onmessage: ((event: MessageEvent) => void) | null;
  onclose: ((event: CloseEvent) => void) | null;
  onerror: ((event: Event) => void) | null;
  send(data: string | ArrayBufferLike | ArrayBufferView | Blob): void;
  close(code?: number, reason?: string): void;
}

export interface TopologyBinding {
  destination: string;
  destinationType: "queue" | "exchange";
  routingKey: string;
  arguments: Record<string, unknown>;
}

export interface TopologyExchange {
  name: string;
  type: "direct" | "fanout" | "topic" | "headers";
  durable: boolean;
  autoDelete: boolean;
  internal: boolean;
  /** The default exchange and `amq.*`. */
  builtin: boolean;
  arguments: Record<string, unknown>;
  bindings: TopologyBinding[];
}

export interface TopologyQueue {
  name: string;
  durable: boolean;
  exclusive: boolean;
  autoDelete: boolean;
  /** Ready messages. */
  messages: number;
  unacked: number;
  consumers: number;
  arguments: Record<string, unknown>;
}

export interface Topology {
  vhost: string;
  exchanges: TopologyExchange[];
  queues: TopologyQueue[];
  connections: number;
}

export interface TraceBinding {
  source: string;
  destination: string;
  destinationType: "queue" | "exchange";
  routingKey: string;
  /** Topic bindings: each pattern word and the routing-key words it matched. */
  words?: [string, string][];
  /** The default exchange's implicit binding to the queue named by the key. */
  implicit?: boolean;
}

export interface Trace {
  /** The exchange exists. */
  found: boolean;
  /** Queues the message would land in, sorted. */
  queues: string[];
  /** The bindings that route it there. */
  bindings: TraceBinding[];
}

export interface BrokerOptions {
  /** Keep durable entities and persistent messages in IndexedDB database `warren:<persist>`. */
  persist?: string;
  /** Heartbeat offered to clients in seconds (default 60; 0 disables). */
  heartbeat?: number;
  frameMax?: number;
  channelMax?: number;
  /** Users allowed to connect (default guest/guest). */
  users?: { username: string; password: string }[];
  /** Seeds server-generated names (default: random). */
  seed?: number;
  /** Clock in milliseconds (default `performance.now()`). */
  now?: () => number;
  /** The wasm: a compiled Module (edge workers), bytes, or a URL (default: next to the package). */
  wasm?: WebAssembly.Module | BufferSource | URL | string | Response;
  indexedDB?: IDBFactory;
}

declare class BrokerBase extends EventTarget implements AmqpOperations {
  /** A new AMQP connection with a browser WebSocket's shape. */
  connect(url?: string): BrokerSocket;
  /** A WebSocket-compatible class whose instances connect to this broker, whatever the URL. */
  webSocketClass(): { new (url?: string | URL, protocols?: string | string[]): BrokerSocket };
  /**
   * Makes `new WebSocket(url)` connect to this broker for `url` (default `warren://local`);
   * every other URL still goes to the real WebSocket. Returns an uninstall function.
   */
  installWebSocketShim(url?: string): () => void;
  /** The convenience API's connection. */
  client(): Promise<AmqpClient>;
  declareExchange(name: string, type?: string, options?: ExchangeOptions): Promise<void>;
  deleteExchange(name: string, options?: { ifUnused?: boolean }): Promise<void>;
  declareQueue(name?: string, options?: QueueOptions): Promise<QueueDeclareOk>;
  deleteQueue(name: string, options?: { ifUnused?: boolean; ifEmpty?: boolean }): Promise<number>;
  purgeQueue(name: string): Promise<number>;
  bind(queue: string, exchange: string, routingKey?: string, args?: FieldTable): Promise<void>;
  unbind(queue: string, exchange: string, routingKey?: string, args?: FieldTable): Promise<void>;
  bindExchange(destination: string, source: string, routingKey?: string, args?: FieldTable): Promise<void>;
  publish(exchange: string, routingKey: string, body: string | Uint8Array | ArrayBuffer | ArrayBufferView | object, options?: PublishOptions): Promise<PublishResult>;
  get(queue: string, options?: { noAck?: boolean }): Promise<Message | null>;
  consume(queue: string, onMessage: (message: Message) => void, options?: ConsumeOptions): Promise<Consumer>;
}

/** A broker running in this realm. Fires `change` after every batch of activity. */
export declare class Broker extends BrokerBase implements Link {
  static create(options?: BrokerOptions): Promise<Broker>;
  private constructor();
  /** Stored records that could not be read at start (skipped). */
  readonly recoveryErrors: number;
  readonly connectionCount: number;
  attach(endpoint: Parameters<Link["attach"]>[0]): ReturnType<Link["attach"]>;
  topology(vhost?: string): Topology;
  trace(exchange: string, routingKey: string, options?: { headers?: Record<string, string>; vhost?: string }): Trace;
  /** Resolves once every change so far is in IndexedDB. */
  flush(): Promise<void>;
  /** Serves one AMQP connection over a MessagePort. */
  servePort(port: MessagePort): void;
  /** Serves one AMQP connection over a server-side WebSocket (workerd, Deno, Bun, ws). */
  serveWebSocket(socket: { send(data: ArrayBuffer): void; close(code?: number, reason?: string): void; addEventListener(type: string, listener: (event: any) => void): void }): void;
  /** Answers a RemoteBroker on a control port (used by `warren-broker/worker`). */
  serveControl(port: { postMessage(message: unknown): void; onmessage: ((event: MessageEvent) => unknown) | null }): void;
  /** Closes every connection, flushes IndexedDB and frees the wasm memory. */
  close(): Promise<void>;
}

/** A broker in a Worker or SharedWorker (`warren-broker/worker`), over MessagePorts. */
export declare class RemoteBroker extends BrokerBase implements Link {
  static connect(target: Worker | SharedWorker | MessagePort, options?: Omit<BrokerOptions, "wasm" | "indexedDB" | "now">): Promise<RemoteBroker>;
  private constructor();
  attach(endpoint: Parameters<Link["attach"]>[0]): ReturnType<Link["attach"]>;
  topology(vhost?: string): Promise<Topology>;
  trace(exchange: string, routingKey: string, options?: { headers?: Record<string, string>; vhost?: string }): Promise<Trace>;
  flush(): Promise<void>;
}

/** IndexedDB persistence (used by `Broker.create({ persist })`). */
export declare class IdbStore {
  static open(name: string, idb?: IDBFactory): Promise<IdbStore>;
  /** Deletes database `warren:<name>`. */
  static destroy(name: string, idb?: IDBFactory): Promise<void>;
  load(): Promise<Uint8Array>;
  write(ops: Uint8Array): Promise<void>;
  settled(): Promise<void>;
  close(): void;
}

/** Loads the wasm once (Broker.create calls it). */
export declare function loadWasm(source?: BrokerOptions["wasm"]): Promise<void>;
