// Runs once in every new runtime, before the plugin's code (see worker.py, Worker.load).
//
// 1. Captures every intrinsic the bridge needs, and jsrun's Python op itself, in this
//    closure, so that a plugin that replaces JSON, Array.prototype.map, Object or Promise
//    methods breaks only its own code.
// 2. Deletes every engine internal from the global object (deno_core's `__bootstrap` with
//    its ~100 ops, jsrun's `__jsrunCall*`/`__host_op_*`/`__jsrun_*` bridge, timers,
//    WebAssembly, SharedArrayBuffer/Atomics, FinalizationRegistry, ...), defines the
//    documented plugin globals, then checks that the global object's own keys are exactly
//    the documented allowlist (docs/plugin-authors.md), or throws: fail closed.
// 3. Returns the park loop, which the worker calls once: the runtime's thread then waits
//    inside next()/exchange() (Python, reading the channel or blocked on a queue) between
//    calls and costs no CPU. One Python crossing per call: exchange() takes the answer to
//    the last request and returns the next one, as one string (a list costs ~10 us more).
//
// __SETTINGS__ is replaced by a JSON object literal by the worker (never plugin data).
(() => {
  "use strict";
  const settings = __SETTINGS__;
  const g = globalThis;

  // -- intrinsics, captured before any plugin code exists ---------------------------------
  const apply = Reflect.apply, ownKeys = Reflect.ownKeys, deleteProperty = Reflect.deleteProperty;
  const define = Object.defineProperty, freeze = Object.freeze, isFrozen = Object.isFrozen;
  const keys = Object.keys, getPrototypeOf = Object.getPrototypeOf, create = Object.create;
  const getOwnPropertyNames = Object.getOwnPropertyNames, getOwnPropertyDescriptor = Object.getOwnPropertyDescriptor;
  const stringify = JSON.stringify, parse = JSON.parse;
  const isArray = Array.isArray, StringCtor = String, NumberCtor = Number;
  const charCodeAt = String.prototype.charCodeAt, indexOf = String.prototype.indexOf, slice = String.prototype.slice;
  const join = Array.prototype.join, push = Array.prototype.push;
  const exec = RegExp.prototype.exec;
  const ErrorCtor = Error, RangeErrorCtor = RangeError, TypeErrorCtor = TypeError;
  const MapCtor = Map, mapGet = Map.prototype.get, mapSet = Map.prototype.set, mapHas = Map.prototype.has;
  const SetCtor = Set, setHas = Set.prototype.has, setAdd = Set.prototype.add;
  const ObjectProto = Object.prototype, FunctionProto = Function.prototype;

  // -- jsrun's bridge: keep the op, drop everything else -----------------------------------
  // A bound function is `(...args) => __host_op_sync__(ID, ...args)`, which looks the bridge
  // up on the global object and spreads through the live Array iterator at call time. We
  // call the op directly with an array literal instead.
  const core = g.__bootstrap.core;
  const callPython = core.ops.op_jsrun_call_python_sync;
  const runMicrotasks = core.runMicrotasks;
  const memoryUsage = core.memoryUsage;
  // A rejection nobody handles must not end the runtime or reach the supervisor.
  core.setUnhandledPromiseRejectionHandler(() => true);
  const opId = (name) => {
    const match = apply(exec, /__host_op_sync__\((\d+),/, [StringCtor(g[name])]);
    if (match === null) throw new ErrorCtor("bootstrap: cannot find the op of " + name);
    return NumberCtor(match[1]);
  };
  const hostOp = opId("__plugins_host"), nextOp = opId("__plugins_next"), exchangeOp = opId("__plugins_exchange");
  const host = (name, argsJson) => callPython(hostOp, [name, argsJson]);
  const next = () => callPython(nextOp, []);
  const exchange = (kind, text, retained) => callPython(exchangeOp, [kind, text, retained]);
  // The web APIs (webapi/dist/webapi.js), made in the snapshot: installed below, after the
  // global object is cleaned. Randomness comes from the worker's os.urandom, and the run
  // loop waits for timers in the worker's sleep (the GIL released, bounded by the deadline).
  const webapi = g.__plugins_webapi;
  if (webapi === undefined) throw new ErrorCtor("bootstrap: the web APIs are not loaded");
  const webNames = new SetCtor(webapi.names);
  const randomOp = opId("__plugins_random"), sleepOp = opId("__plugins_sleep"), urlOp = opId("__plugins_url_source");
  const randomBytes = (n) => callPython(randomOp, [n]);
  const urlSource = () => callPython(urlOp, []);  // URL's code, asked for on its first use
  const sleep = (ms) => callPython(sleepOp, [ms]);
  const retainedBytes = () => {
    const usage = memoryUsage();
    return usage.heapUsed + usage.external;
  };

  // -- the global object: delete what is not documented -------------------------------------
  const allowed = new SetCtor(settings.globals);
  for (const key of ownKeys(g)) {
    if (typeof key !== "string" || !apply(setHas, allowed, [key]) || key === "console" || key === "queueMicrotask" || apply(setHas, webNames, [key])) {
      if (!deleteProperty(g, key)) throw new ErrorCtor("bootstrap: cannot remove global " + StringCtor(key));
    }
  }

  // -- data crossing to Python: JSON text, depth and Unicode checked ---------------------------
  const maxDepth = settings.maxDepth, maxChars = settings.maxChars;
  const fail = (Cls, name, message) => { const e = new Cls(message); define(e, "name", { value: name }); throw e; };
  // Deepest nesting of JSON text (arrays and objects), skipping string contents.
  const depthOf = (text) => {
    let depth = 0, max = 0, inString = false;
    for (let i = 0, n = text.length; i < n; i++) {
      const c = apply(charCodeAt, text, [i]);
      if (inString) {
        if (c === 92) i++;
        else if (c === 34) inString = false;
      } else if (c === 34) inString = true;
      else if (c === 91 || c === 123) { if (++depth > max) max = depth; }
      else if (c === 93 || c === 125) depth--;
    }
    return max;
  };
  // JSON.stringify escapes a lone surrogate as \udXXX and emits well-formed pairs as is.
  const loneSurrogate = /(?<!\\)(?:\\\\)*\\ud[89a-f]/;
  // Cuts JSON.stringify short once the strings and keys it has seen exceed the size limit:
  // stringifying a huge string first and measuring after could need more memory than the
  // call's data limit allows, and V8 aborts the process on that failure (measured).
  const TOO_LARGE = {};
  let budget = 0;
  const bounded = function (key, value) {
    budget -= key.length + 1;
    if (typeof value === "string") budget -= value.length;
    if (budget < 0) throw TOO_LARGE;
    return value;
  };
  const memoryLimit = settings.memoryLimit;
  // Encode `value` for Python. `subject` starts the error message ("the result is", "host
  // call arguments are"). Throws a catchable RangeError or TypeError, named `errorName`
  // when given (results: the worker reports a data error, or a memory error when the
  // runtime holds more than the plugin's memory limit).
  const encode = (value, subject, errorName) => {
    let text;
    budget = maxChars;
    try {
      text = stringify(value === undefined ? null : value, bounded);
    } catch (e) {
      if (e === TOO_LARGE) {
        // Text longer than the plugin's memory limit could not even be built within it.
        if (errorName && maxChars - budget > memoryLimit) fail(RangeErrorCtor, "__PluginMemoryError", subject + " larger than the memory limit");
        fail(RangeErrorCtor, errorName || "RangeError", subject + " too large: over the size limit of " + maxChars + " characters");
      }
      if (e instanceof RangeErrorCtor) fail(RangeErrorCtor, errorName || "RangeError", subject + " nested too deeply to encode");
      throw e;  // a cycle, a BigInt, a throwing toJSON: the plugin's own error
    }
    if (text === undefined) text = "null";
    if (text.length > maxChars) fail(RangeErrorCtor, errorName || "RangeError", subject + " too large: " + text.length + " characters, over the size limit of " + maxChars);
    if (text.length > 2 * maxDepth && depthOf(text) > maxDepth) {
      fail(RangeErrorCtor, errorName || "RangeError", subject + " nested deeper than " + maxDepth + " levels");
    }
    if (apply(indexOf, text, ["\\u"]) !== -1 && apply(exec, loneSurrogate, [text]) !== null) {
      fail(TypeErrorCtor, errorName || "TypeError", subject + " not valid Unicode text (a lone surrogate)");
    }
    return text;
  };

  // -- host API ---------------------------------------------------------------------------
  // Host errors become instances of Error subclasses named like the failure
  // (PermissionDenied, LimitExceeded, ValidationError, QuotaExceeded, ...).
  const errorClasses = new MapCtor();
  const errorClass = (name) => {
    if (!apply(mapHas, errorClasses, [name])) {
      const cls = { [name]: class extends ErrorCtor {} }[name];
      define(cls.prototype, "name", { value: name, writable: true, configurable: true });
      apply(mapSet, errorClasses, [name, cls]);
    }
    return apply(mapGet, errorClasses, [name]);
  };
  const hostCall = (name, args) => {
    const reply = parse(host(name, encode(args, "host call arguments are", null)));
    if (reply.error) {
      const Cls = errorClass(StringCtor(reply.error.name || "Error"));
      throw new Cls(StringCtor(reply.error.message));
    }
    return reply.ok;
  };
  const fmt = (v) => {
    if (typeof v === "string") return v;
    try { const s = stringify(v); return s === undefined ? StringCtor(v) : s; }
    catch (e) { try { return StringCtor(v); } catch (x) { return "[unprintable " + typeof v + "]"; } }
  };
  const makeLog = (level) => function log(...args) {
    const parts = [];
    for (let i = 0; i < args.length; i++) apply(push, parts, [fmt(args[i])]);
    hostCall("log", [level, apply(join, parts, [" "])]);
  };
  const deepFreeze = (o) => {
    if (o !== null && typeof o === "object" && !isFrozen(o)) {
      freeze(o);
      for (const k of keys(o)) deepFreeze(o[k]);
    }
    return o;
  };
  // The plugin API globals are writable and configurable, like the built-ins: a plugin's
  // own top-level `const config`, `let db`, `var log = []`, `function storage() {}` or
  // `class host {}` is then allowed (GlobalDeclarationInstantiation refuses a name only
  // when the global property is non-configurable) and shadows the API for its own code, as
  // in any script. Nothing here reads these globals back: the bridge keeps its closures.
  const apiGlobal = (name, value) =>
    define(g, name, { value, writable: true, enumerable: false, configurable: true });
  const namespace = (prefix, names) => {
    const ns = {};
    for (const n of names) ns[n] = { [n]: (...args) => hostCall(prefix + "." + n, args) }[n];
    return freeze(ns);
  };
  const api = freeze({
    config: deepFreeze(parse(settings.config)),
    log: makeLog("info"),
    db: namespace("db", ["query", "get", "count", "create", "update", "delete"]),
    storage: namespace("storage", ["get", "set", "delete", "keys", "incr"]),
  });
  apiGlobal("log", api.log);
  apiGlobal("console", freeze({
    log: makeLog("info"), info: makeLog("info"), debug: makeLog("debug"),
    warn: makeLog("warning"), error: makeLog("error"),
  }));
  apiGlobal("config", api.config);
  apiGlobal("db", api.db);
  apiGlobal("storage", api.storage);
  // The same objects, one name away from a plugin's own `config`/`log`/`db`/`storage`; also
  // what a module's `import ... from "plugin:host"` gets (worker.HOST_MODULE reads it once,
  // before any of the plugin's code runs).
  apiGlobal("host", api);
  // deno_core's queueMicrotask reports a throwing callback to the engine's error handler.
  // Here the callback runs inside the calling hook's own call (see run below), and a
  // throw is an ignored rejection, as for any promise. `await` never consults the
  // (plugin-writable) Promise.prototype.then or species, unlike calling `then`.
  const later = async (callback) => { await undefined; apply(callback, undefined, []); };
  define(g, "queueMicrotask", {
    value: function queueMicrotask(callback) {
      if (typeof callback !== "function") throw new TypeErrorCtor("queueMicrotask: callback is not a function");
      later(callback);
    },
    writable: true, enumerable: false, configurable: true,
  });
  // TextEncoder, URL, crypto, timers... (writable and configurable, as in Node.js).
  const timers = webapi.install(g, randomBytes, urlSource);

  // -- fail closed: the global object holds exactly the documented names --------------------
  const present = ownKeys(g);
  const missing = [], extra = [];
  for (const key of present) if (typeof key !== "string" || !apply(setHas, allowed, [key])) apply(push, extra, [StringCtor(key)]);
  const presentSet = new SetCtor(present);
  for (const key of settings.globals) if (!apply(setHas, presentSet, [key])) apply(push, missing, [key]);
  if (extra.length || missing.length) {
    throw new ErrorCtor("bootstrap: global object differs from the allowlist: extra " + stringify(extra) + ", missing " + stringify(missing));
  }

  // -- calling hooks ----------------------------------------------------------------------
  const describe = (e) => {
    const field = (key) => { try { const v = e[key]; return v === undefined ? "" : StringCtor(v); } catch (x) { return ""; } };
    if (e !== null && (typeof e === "object" || typeof e === "function")) {
      return { name: field("name"), message: field("message"), stack: field("stack") };
    }
    let message;
    try { message = StringCtor(e); } catch (x) { message = typeof e; }
    return { name: "", message, stack: "" };
  };
  // A function's declared parameter count, or null when `length` is not a plain number.
  const lengthOf = (fn) => {
    const d = getOwnPropertyDescriptor(fn, "length");
    return d && typeof d.value === "number" ? d.value : null;
  };
  // `arity` (optional) receives each hook's lengthOf, in the order of the names returned.
  const hooksOf = (p, arity) => {
    const found = [], seen = new SetCtor();
    for (let o = p; o && o !== ObjectProto && o !== FunctionProto; o = getPrototypeOf(o)) {
      for (const k of getOwnPropertyNames(o)) {
        if (k === "constructor" || apply(setHas, seen, [k])) continue;
        apply(setAdd, seen, [k]);
        const d = getOwnPropertyDescriptor(o, k);
        if (d && typeof d.value === "function") {
          apply(push, found, [k]);
          if (arity) apply(push, arity, [lengthOf(d.value)]);
        }
      }
    }
    return found;
  };
  // A module plugin's namespace object, given once to the park loop (worker.Worker.load);
  // undefined for a classic script.
  let moduleNamespace;
  // The plugin object: a script's top-level `plugin` (global lexical scope, at call time);
  // a module's default export, or the module namespace itself when there is no default
  // export (each exported function is a hook).
  const currentPlugin = () => {
    if (moduleNamespace === undefined) return (typeof plugin === "undefined") ? undefined : plugin;
    const d = getOwnPropertyDescriptor(moduleNamespace, "default");
    return d === undefined ? moduleNamespace : d.value;
  };
  const inspectModule = (p) => {
    const named = p === moduleNamespace;
    if (!named && (p === null || (typeof p !== "object" && typeof p !== "function"))) {
      return stringify({ error: "the module's default export must be an object holding the hooks, not " + (p === null ? "null" : typeof p) });
    }
    const arity = [];
    const hooks = hooksOf(p, arity);
    if (!hooks.length) {
      return stringify({ error: named
        ? "the module exports no functions (hooks): write `export default { hook() {...} }` or `export function hook() {...}`"
        : "the module's default export holds no functions (hooks)" });
    }
    return stringify({ hooks, arity });
  };
  const inspect = () => {
    const p = currentPlugin();
    if (moduleNamespace !== undefined) return inspectModule(p);
    if (p === undefined) return stringify({ error: "the source does not define a `plugin` object" });
    if (p === null || (typeof p !== "object" && typeof p !== "function")) {
      return stringify({ error: "`plugin` must be an object, not " + (p === null ? "null" : typeof p) });
    }
    const arity = [];  // read by the hook catalogue's save warnings (plugins_app.catalogue)
    return stringify({ hooks: hooksOf(p, arity), arity });
  };
  const RESULT_ERROR = "__PluginDataError";
  // Calls the hook; returns its raw return value (maybe a promise).
  const dispatch = (hook, argsJson) => {
    const p = currentPlugin();
    const fn = (p === null || p === undefined) ? undefined : p[hook];
    if (typeof fn !== "function") fail(ErrorCtor, "__HookNotFound", "plugin defines no hook " + stringify(hook));
    return apply(fn, p, parse(argsJson));
  };
  // Awaits a promise or thenable without consulting its (plugin-writable) `then` species.
  const observe = async (state, r) => {
    try { state.value = await r; state.kind = "ok"; } catch (e) { state.value = e; state.kind = "error"; }
  };
  const isThenable = (r) => r !== null && (typeof r === "object" || typeof r === "function") && typeof r.then === "function";
  // Runs the hook, then every microtask the call queued (promise reactions, queueMicrotask
  // callbacks, async functions), inside this call and its time limit: nothing a hook
  // leaves behind runs during a later call. There are no timers or I/O, so a promise
  // still pending after that can never settle. Returns [kind, JSON text].
  // `request` is "i" (inspect) or "c" + hook + "\0" + the arguments as JSON text.
  const run = (request) => {
    if (request === "i") return ["ok", inspect()];
    const state = { kind: "pending", value: undefined };
    try {
      const sep = apply(indexOf, request, ["\0"]);
      const r = dispatch(apply(slice, request, [1, sep]), apply(slice, request, [sep + 1]));
      if (isThenable(r)) observe(state, r);
      else { state.kind = "ok"; state.value = r; }
    } catch (e) {
      state.kind = "error";
      state.value = e;
    }
    runMicrotasks();
    // Timers: while the hook's promise is pending, wait (in the worker, no CPU) for the
    // earliest timer, fire it, run the microtasks it queued; repeat. Past the call's
    // deadline the wait returns false: the call fails with a timeout and the runtime lives.
    // A timer callback that throws fails the call, as an uncaught exception would.
    while (state.kind === "pending" && timers.hasTimers()) {
      const wait = timers.msUntilNext();
      if (wait < 0) break;
      if (wait > 0 && !sleep(wait)) {
        timers.cancelAll();
        return ["error", stringify({ name: "__TimedOut", message: "time limit exceeded while waiting for a timer", stack: "" })];
      }
      try {
        timers.fireNext();
      } catch (e) {
        state.kind = "error";
        state.value = e;
      }
      runMicrotasks();
    }
    timers.cancelAll();  // a sync hook's timers, and any left once the result is known
    if (state.kind === "pending") {
      return ["error", stringify({ name: "__NeverSettled", message: "the hook's promise never settles (no timer is pending, and a sandboxed plugin has no I/O to wait for)", stack: "" })];
    }
    if (state.kind === "ok") {
      try {
        const text = encode(state.value, "the result is", RESULT_ERROR);
        runMicrotasks();  // toJSON and getters may have queued some
        return ["ok", text];
      } catch (e) {
        state.value = e;
      }
    }
    runMicrotasks();
    return ["error", stringify(describe(state.value))];
  };
  // `getNamespace` (a module plugin only): a function of the worker's entry module that
  // returns the plugin module's namespace object.
  return (getNamespace) => {
    if (typeof getNamespace === "function") moduleNamespace = getNamespace();
    timers.cancelAll();  // timers set by the plugin's top-level code never fire
    let request = next();
    while (request !== "") {
      // "h": this runtime stops. It must never return to jsrun's event loop, which would
      // run whatever the plugin left there (an import() rejection jsrun delivers only
      // then) outside any call: it waits here, in JavaScript, for the worker's terminate().
      if (request === "h") for (;;) {}
      const reply = run(request);
      timers.cancelAll();  // nothing a call leaves behind fires in a later call
      request = exchange(reply[0], reply[1], retainedBytes());
    }
    return "stopped";
  };
})();
