/**
 * Type declarations of the globals a plugins_app plugin can use, for editors and `tsc`.
 *
 * Plugins run as classic scripts or ES modules in a sandboxed V8 runtime (not Node.js,
 * not a browser). The runtime defines these globals on top of the ECMAScript built-ins:
 * `log`, `console`, `config`, `db`, `storage` and `host` (plus the web APIs below). They
 * are writable and configurable, like the built-ins: a plugin may declare its own
 * top-level `config`, `log`, ... (its name shadows the API's for its code, as in any
 * script); the API stays reachable as `host.config`, `host.log`, `host.db`, `host.storage`
 * and, in a module, as `import { config, log, db, storage } from "plugin:host"`. (To
 * type-check a plugin that declares one of these names itself, leave this file out and
 * declare `host` alone.)
 *
 * Every `db.*` and `storage.*` function (and `log` / `console.*`) is a synchronous call
 * into the Django host: it returns its value directly, not a Promise. A failed host call
 * throws an `Error` whose `name` is one of {@link HostErrorName}.
 *
 * Editor setup (a jsconfig.json / tsconfig.json next to your plugin):
 *
 *     { "compilerOptions": { "checkJs": true, "noEmit": true, "lib": ["es2023"], "types": [] },
 *       "files": ["path/to/plugin-api.d.ts", "my-plugin.js"] }
 *
 * Leaving out the DOM and Node typings keeps `fetch`, `Buffer`, `require`, `process`
 * and the like undeclared, as they are in the sandbox.
 *
 * See docs/plugin-authors.md for the full reference.
 */

// ---------------------------------------------------------------------------------------
// JSON data: what crosses the sandbox boundary
// ---------------------------------------------------------------------------------------

/** A JSON scalar. */
type JsonScalar = string | number | boolean | null;

/** Any JSON value (what hook arguments, results, rows and storage values are made of). */
type JsonValue = JsonScalar | JsonValue[] | { [key: string]: JsonValue };

// ---------------------------------------------------------------------------------------
// Errors thrown by host calls
// ---------------------------------------------------------------------------------------

/**
 * The `name` of an error thrown by a host call (`db.*`, `storage.*`, `log`, `console.*`).
 *
 * - `PermissionDenied`: model, field, relation, lookup or action not exposed or not
 *   granted; a delete that would cascade into other models; storage used while the
 *   plugin is being validated (top-level code at save time).
 * - `LimitExceeded`: a per-call budget (host calls, rows read, rows written, host
 *   result bytes) is used up.
 * - `ValidationError`: a value the model or database refuses (bad filter value, invalid
 *   field value, constraint violated).
 * - `MultipleObjectsReturned`: `db.get()` matched more than one row.
 * - `QuotaExceeded`: a storage key, value or the plugin's total storage is too large.
 * - `TypeError`: arguments of the wrong shape (e.g. a model label that is not a string).
 *   Not an instance of the built-in `TypeError`: test `e.name`, not `instanceof`.
 * - `RangeError`: the arguments of one host call are too large, or `storage.incr()`
 *   would overflow a 64-bit integer. Not an instance of the built-in `RangeError`.
 * - `HostError`: an unexpected failure on the host (details are only in the server log).
 */
type HostErrorName =
  | "PermissionDenied"
  | "LimitExceeded"
  | "ValidationError"
  | "MultipleObjectsReturned"
  | "QuotaExceeded"
  | "TypeError"
  | "RangeError"
  | "HostError";

/**
 * An error thrown by a host call. At runtime it is an instance of an `Error` subclass
 * named like the failure; the subclasses are not available as globals, so check `name`:
 *
 *     try { db.create("demo.Note", values) }
 *     catch (e) { if (e.name === "ValidationError") { ... } else throw e; }
 */
interface HostCallError extends Error {
  name: HostErrorName;
}

// ---------------------------------------------------------------------------------------
// log / console
// ---------------------------------------------------------------------------------------

/**
 * Writes one line at level INFO to the Python logger `plugins_app.plugins.<slug>`; the
 * line is also returned to the caller with the call result. Arguments are joined with a
 * space; strings are written as they are, other values JSON-encoded (`undefined` as
 * `undefined`, an `Error` as `{}`: log `e.message` instead).
 * Not counted as a host call, but throws `LimitExceeded` once the host-call budget of
 * the current call has been exceeded. Lines beyond `MAX_LOG_LINES` per call are dropped
 * silently, longer lines are cut at `MAX_LOG_LINE_CHARS`.
 */
declare function log(...args: unknown[]): void;

/**
 * `console` with the levels the host knows: `log` and `info` (INFO), `debug` (DEBUG),
 * `warn` (WARNING), `error` (ERROR). Same formatting and caps as {@link log}. Nothing
 * else of the usual `console` (no `table`, `time`, `assert`, ...) exists.
 *
 * Declared as an interface merged with `Console` so that this file also type-checks
 * next to the DOM or Node typings; only these five methods exist in the sandbox.
 */
interface Console {
  log(...args: unknown[]): void;
  info(...args: unknown[]): void;
  debug(...args: unknown[]): void;
  warn(...args: unknown[]): void;
  error(...args: unknown[]): void;
}
declare var console: Console;

// ---------------------------------------------------------------------------------------
// config
// ---------------------------------------------------------------------------------------

// typegen:config:start (generated per-plugin types replace this region: plugins_app/typegen.py)
/** The type of {@link config}: here any JSON object; per-plugin types use its JSON Schema. */
type PluginConfig = Readonly<Record<string, unknown>>;
// typegen:config:end

/**
 * The plugin's configuration: the JSON object the operator set on the plugin (validated
 * against the plugin's JSON Schema, if it has one). Deeply frozen: assignments are
 * ignored, or throw a `TypeError` in strict-mode code.
 */
declare const config: PluginConfig;

// ---------------------------------------------------------------------------------------
// db
// ---------------------------------------------------------------------------------------

/**
 * `"app_label.ModelName"` of a model the site exposes and the operator granted to this
 * plugin, e.g. `"demo.Note"` (case-insensitive).
 */
type ModelLabel = string;

/**
 * Conditions, all of which must hold (AND). Keys are field names, optionally followed by
 * relation hops and one lookup, joined with `__`: `"title"`, `"score__gte"`,
 * `"author__username__istartswith"`. Values are JSON scalars; lists are for `in` and
 * `range`. A plain field name means `exact`; `null` with `exact` means IS NULL.
 * At most 50 keys; at most 1000 values per list; integers must fit in 64 bits.
 */
type Where = Record<string, JsonScalar | JsonScalar[]>;

/**
 * One row: the fields this plugin may read (all of them, or those asked for with
 * `fields`). A foreign key holds the related row's primary key; dates and times are ISO
 * 8601 strings; decimals and UUIDs are strings; durations are seconds; binary is `null`.
 */
type Row = Record<string, JsonValue>;

/** Values to write: field name to JSON scalar (a foreign key takes the related pk). */
type Values = Record<string, JsonScalar>;

/** Options of {@link PluginDb.query}. Unknown keys are a `TypeError`. */
interface QueryOptions {
  /** Only rows matching all of these conditions. */
  where?: Where;
  /** Leave out rows matching all of these conditions. */
  exclude?: Where;
  /** Field path(s) to sort by, `-` prefix for descending; relation hops allowed, no lookups. Default: primary key. */
  order?: string | string[];
  /** Maximum number of rows (non-negative integer). Default 100. */
  limit?: number;
  /** Rows to skip first (non-negative integer). Default 0. */
  offset?: number;
  /** Fields to return (each must be readable). Default: every readable field. */
  fields?: string[];
}

// typegen:db:start (generated per-plugin types replace this region with the granted models)
/**
 * The `db` global: permission-checked access to the models the site exposes and the
 * operator granted to this plugin. Every function is synchronous.
 */
interface PluginDb {
  /**
   * Rows of `model`. Counts the rows returned against the rows-read budget; a query that
   * would return more rows than remain in it throws `LimitExceeded` (nothing is cut).
   */
  query<R extends Row = Row>(model: ModelLabel, options?: QueryOptions): R[];
  /**
   * The one row matching `where` (a conditions object, not query options), or `null`.
   * Throws `MultipleObjectsReturned` if more than one row matches.
   */
  get<R extends Row = Row>(model: ModelLabel, where?: Where): R | null;
  /** The number of rows matching `where` (does not count against the rows-read budget). */
  count(model: ModelLabel, where?: Where): number;
  /**
   * Creates one row from `values` (fields granted for create) and returns it as a row of
   * the readable fields. Counts one row against the rows-written budget.
   */
  create<R extends Row = Row>(model: ModelLabel, values: Values): R;
  /**
   * Sets `values` (fields granted for update) on every row matching `where`, which must
   * be non-empty (`{ id__gte: 0 }` for all rows). Returns the number of rows updated.
   */
  update(model: ModelLabel, where: Where, values: Values): number;
  /**
   * Deletes the rows matching `where` (non-empty). Refused with `PermissionDenied` if it
   * would also delete rows of other models. Returns the number of rows deleted.
   */
  delete(model: ModelLabel, where: Where): number;
}
// typegen:db:end

declare const db: Readonly<PluginDb>;

// ---------------------------------------------------------------------------------------
// storage
// ---------------------------------------------------------------------------------------

/**
 * The `storage` global: the plugin's own persistent key/value store. Keys are non-empty
 * strings (at most `STORAGE_MAX_KEY_CHARS`, default 200); values are JSON.
 */
interface PluginStorage {
  /** The value stored at `key`, or `null` if there is none. */
  get<T extends JsonValue = JsonValue>(key: string): T | null;
  /**
   * Stores `value` (any JSON value; `undefined` is stored as `null`) at `key`.
   * Throws `QuotaExceeded` if key + JSON value exceed `STORAGE_MAX_VALUE_BYTES` or the
   * plugin's total would exceed `STORAGE_MAX_TOTAL_BYTES`.
   */
  set(key: string, value?: JsonValue): null;
  /** Removes `key`; `true` if it existed. */
  delete(key: string): boolean;
  /** Keys starting with `prefix` (default: all), sorted. Counts against the rows-read budget. */
  keys(prefix?: string): string[];
  /**
   * Atomically adds `by` (an integer, default 1) to the integer stored at `key` (a missing
   * key counts as 0) and returns the new value. `TypeError` if `key` holds anything but
   * an integer, `RangeError` on 64-bit overflow.
   */
  incr(key: string, by?: number): number;
}

declare const storage: Readonly<PluginStorage>;

// ---------------------------------------------------------------------------------------
// host, and the "plugin:host" module
// ---------------------------------------------------------------------------------------

/** The members of {@link host} and the exports of the `"plugin:host"` module. */
interface PluginHost {
  readonly config: PluginConfig;
  readonly log: typeof log;
  readonly db: Readonly<PluginDb>;
  readonly storage: Readonly<PluginStorage>;
}

/**
 * The plugin API in one global: `host.config`, `host.log`, `host.db`, `host.storage`.
 * Reachable even where your own top-level names shadow `config`, `log`, `db` or `storage`.
 */
declare const host: Readonly<PluginHost>;

/**
 * The host API for ES module plugins:
 * `import { config, log, db, storage } from "plugin:host";` (the only importable module).
 */
declare module "plugin:host" {
  export const config: PluginConfig;
  export function log(...args: unknown[]): void;
  export const db: Readonly<PluginDb>;
  export const storage: Readonly<PluginStorage>;
  /** `import host from "plugin:host"`: the same object as the `host` global. */
  const api: Readonly<PluginHost>;
  export default api;
}

// ---------------------------------------------------------------------------------------
// The plugin object
// ---------------------------------------------------------------------------------------

/**
 * The shape of the `plugin` object your source must define at top level
 * (`const plugin = { ... }`): every function on it (own or inherited) is a hook. Hooks
 * get the caller's JSON arguments and return JSON data, or a Promise of it (`async`).
 *
 * In a checked JS file: `/** @type {PluginHooks} *\/ const plugin = { greet(name) { ... } };`
 * Non-function properties are allowed at runtime (they are simply not hooks), but this
 * type only admits functions.
 *
 * (Named `PluginHooks`, not `Plugin`, because the DOM typings already declare a global
 * `Plugin` interface, which this one would clash with.)
 */
interface PluginHooks {
  [hook: string]: (...args: any[]) => unknown;
}

// -- Web APIs and timers (docs/plugin-authors.md, "Web APIs" and "Timers") ----------------
// A subset of the DOM/WinterTC typings, declared here because plugins are checked without
// the DOM library. Behaviour as in Node.js 20; differences are in the docs.

type BufferSource = ArrayBuffer | ArrayBufferView;

declare class TextEncoder {
  readonly encoding: "utf-8";
  encode(input?: string): Uint8Array;
  encodeInto(source: string, destination: Uint8Array): { read: number; written: number };
}
declare class TextDecoder {
  constructor(label?: string, options?: { fatal?: boolean; ignoreBOM?: boolean });
  readonly encoding: "utf-8";
  readonly fatal: boolean;
  readonly ignoreBOM: boolean;
  decode(input?: BufferSource, options?: { stream?: boolean }): string;
}

declare class URLSearchParams implements Iterable<[string, string]> {
  constructor(init?: string | Record<string, string> | Iterable<[string, string]> | URLSearchParams);
  readonly size: number;
  append(name: string, value: string): void;
  delete(name: string, value?: string): void;
  get(name: string): string | null;
  getAll(name: string): string[];
  has(name: string, value?: string): boolean;
  set(name: string, value: string): void;
  sort(): void;
  forEach(callback: (value: string, key: string, parent: URLSearchParams) => void, thisArg?: unknown): void;
  keys(): IterableIterator<string>;
  values(): IterableIterator<string>;
  entries(): IterableIterator<[string, string]>;
  [Symbol.iterator](): IterableIterator<[string, string]>;
  toString(): string;
}
declare class URL {
  constructor(url: string | URL, base?: string | URL);
  static canParse(url: string | URL, base?: string | URL): boolean;
  href: string;
  readonly origin: string;
  protocol: string;
  username: string;
  password: string;
  host: string;
  hostname: string;
  port: string;
  pathname: string;
  search: string;
  readonly searchParams: URLSearchParams;
  hash: string;
  toString(): string;
  toJSON(): string;
}

declare function atob(data: string): string;
declare function btoa(data: string): string;
declare function structuredClone<T>(value: T, options?: { transfer?: unknown[] }): T;

declare class DOMException extends Error {
  constructor(message?: string, options?: string | { name?: string; cause?: unknown });
  readonly name: string;
  readonly message: string;
  readonly code: number;
}

declare class Event {
  constructor(type: string, options?: { bubbles?: boolean; cancelable?: boolean; composed?: boolean });
  readonly type: string;
  readonly target: EventTarget | null;
  readonly currentTarget: EventTarget | null;
  readonly eventPhase: number;
  readonly bubbles: boolean;
  readonly cancelable: boolean;
  readonly composed: boolean;
  readonly defaultPrevented: boolean;
  readonly isTrusted: boolean;
  readonly timeStamp: number;
  returnValue: boolean;
  cancelBubble: boolean;
  composedPath(): EventTarget[];
  preventDefault(): void;
  stopPropagation(): void;
  stopImmediatePropagation(): void;
}
type EventListenerOrObject = ((event: Event) => void) | { handleEvent(event: Event): void };
declare class EventTarget {
  addEventListener(type: string, listener: EventListenerOrObject | null,
    options?: boolean | { capture?: boolean; once?: boolean; passive?: boolean; signal?: AbortSignal }): void;
  removeEventListener(type: string, listener: EventListenerOrObject | null, options?: boolean | { capture?: boolean }): void;
  dispatchEvent(event: Event): boolean;
}
declare class AbortSignal extends EventTarget {
  private constructor();
  static abort(reason?: unknown): AbortSignal;
  static timeout(milliseconds: number): AbortSignal;
  static any(signals: AbortSignal[]): AbortSignal;
  readonly aborted: boolean;
  readonly reason: unknown;
  onabort: ((event: Event) => void) | null;
  throwIfAborted(): void;
}
declare class AbortController {
  readonly signal: AbortSignal;
  abort(reason?: unknown): void;
}

type IntegerTypedArray = Int8Array | Uint8Array | Uint8ClampedArray | Int16Array | Uint16Array | Int32Array
  | Uint32Array | BigInt64Array | BigUint64Array;
type HashAlgorithm = "SHA-1" | "SHA-256" | "SHA-384" | "SHA-512";
type HmacAlgorithm = { name: "HMAC"; hash: HashAlgorithm | { name: HashAlgorithm }; length?: number };
interface JsonWebKey { kty?: string; k?: string; alg?: string; ext?: boolean; key_ops?: string[]; [member: string]: unknown }
declare class CryptoKey {
  private constructor();
  readonly type: "secret";
  readonly extractable: boolean;
  readonly algorithm: { name: "HMAC"; hash: { name: HashAlgorithm }; length: number };
  readonly usages: ("sign" | "verify")[];
}
declare class SubtleCrypto {
  private constructor();
  digest(algorithm: HashAlgorithm | { name: HashAlgorithm }, data: BufferSource): Promise<ArrayBuffer>;
  importKey(format: "raw", keyData: BufferSource, algorithm: HmacAlgorithm, extractable: boolean, usages: ("sign" | "verify")[]): Promise<CryptoKey>;
  importKey(format: "jwk", keyData: JsonWebKey, algorithm: HmacAlgorithm, extractable: boolean, usages: ("sign" | "verify")[]): Promise<CryptoKey>;
  exportKey(format: "raw", key: CryptoKey): Promise<ArrayBuffer>;
  exportKey(format: "jwk", key: CryptoKey): Promise<JsonWebKey>;
  generateKey(algorithm: HmacAlgorithm, extractable: boolean, usages: ("sign" | "verify")[]): Promise<CryptoKey>;
  sign(algorithm: "HMAC" | { name: "HMAC" }, key: CryptoKey, data: BufferSource): Promise<ArrayBuffer>;
  verify(algorithm: "HMAC" | { name: "HMAC" }, key: CryptoKey, signature: BufferSource, data: BufferSource): Promise<boolean>;
}
declare class Crypto {
  private constructor();
  readonly subtle: SubtleCrypto;
  getRandomValues<T extends IntegerTypedArray>(array: T): T;
  randomUUID(): `${string}-${string}-${string}-${string}-${string}`;
}
declare var crypto: Crypto;

declare class Performance {
  private constructor();
  readonly timeOrigin: number;
  now(): number;
  toJSON(): { timeOrigin: number };
}
declare var performance: Performance;

/** Timer ids are numbers here (Node.js returns Timeout objects). Timers fire only while the
 * call's Promise is pending; all are cancelled when its result is sent. */
declare function setTimeout<A extends unknown[]>(callback: (...args: A) => void, ms?: number, ...args: A): number;
declare function setInterval<A extends unknown[]>(callback: (...args: A) => void, ms?: number, ...args: A): number;
declare function clearTimeout(id?: number): void;
declare function clearInterval(id?: number): void;
