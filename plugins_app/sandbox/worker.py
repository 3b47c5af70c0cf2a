"""The sandbox worker: a process that runs plugin code in jsrun runtimes.

Started by ``pool.py`` as ``python -I -c ...`` with a scrubbed environment. It imports
only the standard library, jsrun and ``protocol``: there is nothing of Django, the
settings or the database in this process for a V8 escape to find.

One request at a time arrives on stdin; replies and host calls go out on stdout.
Host calls (``log`` and, later, the ORM-backed API) are sent to the supervisor, which
answers them on the Django thread that is waiting for this call.

Facts about jsrun 0.3.0 this file is built around (see docs/runtime-notes.md):
- Runtimes are thread-affine: all of them live on this process's main thread.
- ``JsFunction.call_async`` + ``asyncio.wait`` + ``Runtime.terminate`` is the only call
  path that both allows host calls and stops a runaway loop. ``asyncio.wait_for`` must
  not be used: on 3.11 it waits for the cancelled jsrun future, i.e. forever.
- A ``JsFunction`` handle that is garbage-collected runs a finalizer that blocks until the
  runtime thread is free; if that happens while JS loops, this thread hangs. Every
  handle is therefore kept referenced for the runtime's life and closed explicitly.
- An idle open runtime spins a CPU core: warm runtimes are few and closed when idle.
"""
from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import resource
import select
import sys
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import jsrun
import protocol  # type: ignore[import-not-found]  # sibling module, see pool.py

MIB = 1024 * 1024
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
SCRIPT_NAME = "<eval_async>"
FRAME = re.compile(re.escape(SCRIPT_NAME) + r":(\d+):(\d+)")
POLL_SECONDS = 0.02  # how often a call that has not answered yet checks its deadline
SPEC_CACHE_SIZE = 64  # plugin versions whose source a worker keeps (each <= MAX_SOURCE_BYTES)

# Runs once in every new runtime, before the plugin's code. Captures the host bridge
# in a closure and removes it from the global object, defines the plugin-facing
# globals as non-writable, and removes what plugins are not granted.
BOOTSTRAP_JS = r"""
(() => {
  "use strict";
  const g = globalThis;
  const host = g.__plugins_host;
  delete g.__plugins_host;
  const stringify = JSON.stringify, parse = JSON.parse, freeze = Object.freeze;
  const define = Object.defineProperty, keys = Object.keys, isFrozen = Object.isFrozen;
  // Host errors become instances of Error subclasses named like the failure
  // (PermissionDenied, LimitExceeded, ValidationError, QuotaExceeded, ...).
  const errorClasses = new Map();
  const errorClass = (name) => {
    if (!errorClasses.has(name)) {
      const cls = { [name]: class extends Error {} }[name];
      define(cls.prototype, "name", { value: name, writable: true, configurable: true });
      errorClasses.set(name, cls);
    }
    return errorClasses.get(name);
  };
  const hostCall = (name, args) => {
    const reply = parse(host(name, stringify(args)));
    if (reply.error) {
      const Cls = errorClass(String(reply.error.name || "Error"));
      throw new Cls(String(reply.error.message));
    }
    return reply.ok;
  };
  const fmt = (v) => {
    if (typeof v === "string") return v;
    try { const s = stringify(v); return s === undefined ? String(v) : s; }
    catch (e) { return String(v); }
  };
  const makeLog = (level) => function log(...args) {
    hostCall("log", [level, args.map(fmt).join(" ")]);
  };
  const deepFreeze = (o) => {
    if (o !== null && typeof o === "object" && !isFrozen(o)) {
      freeze(o);
      for (const k of keys(o)) deepFreeze(o[k]);
    }
    return o;
  };
  const constant = (name, value) =>
    define(g, name, { value, writable: false, enumerable: false, configurable: false });
  for (const name of ["setTimeout", "setInterval", "clearTimeout", "clearInterval",
                      "WebAssembly", "SharedArrayBuffer", "Atomics", "console"]) {
    try { delete g[name]; } catch (e) { /* non-configurable: left as is */ }
  }
  constant("log", makeLog("info"));
  constant("console", freeze({
    log: makeLog("info"), info: makeLog("info"), debug: makeLog("debug"),
    warn: makeLog("warning"), error: makeLog("error"),
  }));
  constant("config", deepFreeze(parse(__CONFIG__)));
  // Host API namespaces: every function is a synchronous call into the Django host.
  const namespace = (prefix, names) => {
    const ns = {};
    for (const n of names) ns[n] = { [n]: (...args) => hostCall(prefix + "." + n, args) }[n];
    return freeze(ns);
  };
  constant("db", namespace("db", ["query", "get", "count", "create", "update", "delete"]));
  constant("storage", namespace("storage", ["get", "set", "delete", "keys", "incr"]));

  // The dispatcher we call hooks through. Built here, from intrinsics captured before the
  // plugin's code runs, so a plugin that replaces JSON or Promise methods breaks only
  // itself. `plugin` is looked up at call time in the shared global lexical scope.
  const apply = Reflect.apply, resolve = Promise.resolve.bind(Promise), then = Promise.prototype.then;
  const maxChars = __MAX_CHARS__;
  const fail = (name, message) => { const e = new Error(message); e.name = name; throw e; };
  const out = (v) => {
    const s = stringify(v === undefined ? null : v);
    const text = s === undefined ? "null" : s;
    if (typeof text !== "string") fail("TypeError", "result is not serializable");
    if (text.length > maxChars) fail("__PluginResultTooLarge", "result of " + text.length + " characters");
    return text;
  };
  const dispatch = (hook, argsJson) => {
    const p = (typeof plugin === "undefined") ? undefined : plugin;
    const fn = (p === null || p === undefined) ? undefined : p[hook];
    if (typeof fn !== "function") fail("__HookNotFound", "plugin defines no hook " + stringify(hook));
    const r = apply(fn, p, parse(argsJson));
    if (r !== null && typeof r === "object" && typeof r.then === "function") {
      return apply(then, resolve(r), [out]);
    }
    return out(r);
  };
  const field = (e, key) => { try { const v = e[key]; return v === undefined ? "" : String(v); } catch (x) { return ""; } };
  const describe = (e) => (e !== null && (typeof e === "object" || typeof e === "function"))
    ? { name: field(e, "name"), message: field(e, "message"), stack: field(e, "stack") }
    : { name: "", message: (() => { try { return String(e); } catch (x) { return typeof e; } })(), stack: "" };

  // The park loop: the runtime's thread waits inside next() (in Python, blocked on a
  // queue) between calls. A jsrun runtime that is merely idle spins a CPU core; one
  // parked here costs nothing, so warm runtimes are cheap to keep. The loop never
  // awaits: V8's heap-limit termination does not end a call whose code runs in a
  // microtask (measured), so sync hooks run in the call itself. An async hook's
  // promise is settled after the loop returns; the host then parks the runtime again.
  const next = g.__plugins_next, respond = g.__plugins_respond;
  delete g.__plugins_next;
  delete g.__plugins_respond;
  const fromPromise = (kind) => (value) => respond(kind, kind === "ok" ? value : stringify(describe(value)), true);
  return () => {
    while (true) {
      const request = next();
      if (request === null) return "stopped";
      let result;
      try {
        result = dispatch(request[0], request[1]);
      } catch (e) {
        respond("error", stringify(describe(e)), false);
        continue;
      }
      if (typeof result === "string") {
        respond("ok", result, false);
        continue;
      }
      apply(then, result, [fromPromise("ok"), fromPromise("error")]);
      return "unparked";
    }
  };
})();
"""

# Lists the functions of the plugin object (own and inherited, as class methods are).
INSPECT_JS = r"""
(() => {
  if (typeof plugin === "undefined") return JSON.stringify({ error: "the source does not define a `plugin` object" });
  const p = plugin;
  if (p === null || (typeof p !== "object" && typeof p !== "function")) {
    return JSON.stringify({ error: "`plugin` must be an object, not " + (p === null ? "null" : typeof p) });
  }
  const hooks = [];
  for (let o = p; o && o !== Object.prototype && o !== Function.prototype; o = Object.getPrototypeOf(o)) {
    for (const k of Object.getOwnPropertyNames(o)) {
      if (k === "constructor" || hooks.includes(k)) continue;
      const d = Object.getOwnPropertyDescriptor(o, k);
      if (d && typeof d.value === "function") hooks.push(k);
    }
  }
  return JSON.stringify({ hooks });
})()
"""


class CallFailed(Exception):
    """A call or load failed; ``error`` is the dict sent to the supervisor."""

    def __init__(self, error: dict[str, Any]) -> None:
        super().__init__(error.get("message"))
        self.error = error


@dataclass
class Spec:
    key: str
    slug: str
    source: str
    config_json: str
    memory_mb: int


@dataclass
class Warm:
    spec: Spec
    runtime: Any
    park: Any = None  # the park loop (a JsFunction), kept referenced for the runtime's life
    park_future: Any = None  # its call_async future: done only when the loop stops or V8 dies
    requests: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    responses: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    handles: list[Any] = field(default_factory=list)
    last_used: float = 0.0
    dead: bool = False


class Worker:
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        self.reader = protocol.FrameReader(0)
        self.out_fd = 1
        self.specs: OrderedDict[str, Spec] = OrderedDict()
        self.warm: OrderedDict[str, Warm] = OrderedDict()
        self.retiring: list[Warm] = []
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)

    # -- I/O -----------------------------------------------------------------
    def send(self, message: dict[str, Any]) -> None:
        protocol.write_message(self.out_fd, message)

    def host(self, name: str, args_json: str) -> str:
        """Bound into every runtime; runs on the runtime's thread during a call."""
        if len(args_json) > int(self.options["max_host_args_chars"]):
            return json.dumps({"error": {"name": "RangeError", "message": "host call arguments are too large"}})
        # Only one call runs per worker, and the main thread does not read while it
        # waits for that call: this thread owns both pipes until the reply arrives.
        self.send({"op": "host", "name": str(name), "args": str(args_json)})
        reply = self.reader.read_blocking()
        if reply.get("op") != "host_result" or not isinstance(reply.get("reply"), str):
            os._exit(4)  # the supervisor broke protocol; it will restart us
        return reply["reply"]

    # -- main loop -------------------------------------------------------------
    def serve(self) -> None:
        self.send({"op": "ready", "pid": os.getpid()})
        while True:
            message = self.reader.pop()
            if message is None:
                wait = self.next_idle_deadline()
                timeout = None if wait is None else max(0.0, wait - time.monotonic())
                readable, _, _ = select.select([self.reader.fd], [], [], timeout)
                if not readable:
                    self.close_idle()
                    continue
                try:
                    self.reader.fill()
                except protocol.ProtocolError:
                    self.shutdown()
                continue
            self.handle(message)

    def handle(self, message: dict[str, Any]) -> None:
        op = message.get("op")
        try:
            if op == "call":
                text = self.loop.run_until_complete(self.call(message))
                self.enforce_warm_bound()
                self.send({"op": "result", "ok": text, "warm": list(self.warm)})
            elif op == "inspect":
                spec = self.spec_from(message["spec"])
                text = self.loop.run_until_complete(self.inspect(spec, float(message["timeout"])))
                self.send({"op": "result", "ok": text, "warm": list(self.warm)})
            elif op == "shutdown":
                self.shutdown()
            else:
                self.send({"op": "result", "error": {"kind": "internal", "message": f"unknown op {op!r}"}})
        except CallFailed as exc:
            self.send({"op": "result", "error": exc.error, "warm": list(self.warm)})
        self.close_retiring()

    def shutdown(self) -> None:
        for key in list(self.warm):
            self.discard(key)
        # os._exit: interpreter finalization with jsrun threads alive can abort.
        os._exit(0)

    # -- plugins -----------------------------------------------------------------
    def spec_from(self, data: dict[str, Any]) -> Spec:
        return Spec(
            key=str(data["key"]),
            slug=str(data["slug"]),
            source=str(data["source"]),
            config_json=str(data["config"]),
            memory_mb=int(data["memory_mb"]),
        )

    async def call(self, message: dict[str, Any]) -> str:
        key = str(message["key"])
        timeout = float(message["timeout"])
        spec = self.specs.get(key)
        if spec is None:
            self.send({"op": "need_spec"})
            reply = self.reader.read_blocking()
            if reply.get("op") != "spec":
                os._exit(4)
            spec = self.spec_from(reply["spec"])
            self.specs[key] = spec
            while len(self.specs) > SPEC_CACHE_SIZE:
                self.specs.popitem(last=False)
        self.specs.move_to_end(key)
        warm = self.warm.get(key)
        if warm is None:
            # Make room first: every runtime reserves address space under RLIMIT_DATA.
            while len(self.warm) >= int(self.options["warm_runtimes"]):
                oldest = self.warm.pop(next(iter(self.warm)))
                await self.stop_park(oldest)
                self.close_warm(oldest)
            warm = await self.load(spec, timeout)
            self.forget_other_versions(spec)
            self.warm[key] = warm
            self.send({"op": "loaded"})
        self.warm.move_to_end(key)
        try:
            return await self.call_parked(warm, str(message["hook"]), str(message["args"]), timeout)
        finally:
            warm.last_used = time.monotonic()
            if warm.dead:
                self.discard(key)

    async def call_parked(self, warm: Warm, hook: str, args: str, timeout: float) -> str:
        """Hand one call to the runtime's park loop and wait for its reply.

        The reply normally arrives within microseconds; while waiting longer this polls,
        letting jsrun report a runtime that died (heap limit) and enforcing the deadline.
        """
        self.limit_data(current_data_bytes() + 2 * warm.spec.memory_mb * MIB + 64 * MIB)
        warm.requests.put([hook, args])
        deadline = time.monotonic() + timeout
        stuck_at = None
        try:
            while True:
                try:
                    kind, text, unparked = warm.responses.get(timeout=POLL_SECONDS)
                    break
                except queue.Empty:
                    pass
                await asyncio.sleep(0)  # lets jsrun deliver the park loop's end, if any
                future = warm.park_future
                if future.done() and future.exception() is not None:
                    # V8 stopped the code: heap limit, or our terminate() below.
                    warm.dead = True
                    raise CallFailed(self.classify(future.exception(), warm, terminated=stuck_at is not None))
                now = time.monotonic()
                if stuck_at is None and now >= deadline:
                    warm.dead = True
                    warm.runtime.terminate()
                    if future.done():
                        # An async hook whose promise never settled: nothing is running.
                        raise CallFailed({"kind": "timeout", "message": "time limit exceeded"})
                    stuck_at = now + 2.0
                elif stuck_at is not None and now >= stuck_at:
                    os._exit(3)  # V8 did not stop (seen with some heap bombs): the supervisor restarts us
        finally:
            self.limit_data(int(self.options["data_limit_mb"]) * MIB)
        if unparked:
            # An async hook: the park loop returned before its promise settled. Park again.
            await asyncio.wait({warm.park_future}, timeout=1.0)
            if not warm.park_future.done():
                warm.dead = True
            else:
                warm.park_future.exception()
                warm.park_future = asyncio.ensure_future(warm.park.call_async())
        if kind == "ok" and isinstance(text, str):
            return text
        try:
            reported = json.loads(text)
        except (TypeError, ValueError):
            reported = {"name": "Error", "message": "unreadable error"}
        raise CallFailed(self.classify_thrown(warm, reported))

    async def inspect(self, spec: Spec, timeout: float) -> str:
        warm = await self.load(spec, timeout, start_park=False)
        try:
            return await self.run(warm, lambda: warm.runtime.eval_async(INSPECT_JS), timeout)
        finally:
            self.close_warm(warm)

    async def load(self, spec: Spec, timeout: float, *, start_park: bool = True) -> Warm:
        config = jsrun.RuntimeConfig(
            max_heap_size=spec.memory_mb * MIB,
            max_serialization_bytes=int(self.options["max_result_bytes"]) * 2 + 4096,
            enable_console=False,
        )
        try:
            runtime = jsrun.Runtime(config)
        except Exception as exc:  # thread spawn refused under RLIMIT_DATA, etc.
            raise CallFailed({"kind": "memory", "message": f"could not start a runtime: {exc}"}) from None
        warm = Warm(spec=spec, runtime=runtime)
        try:
            runtime.bind_function("__plugins_host", self.host)
            runtime.bind_function("__plugins_next", warm.requests.get)
            # Bind the queues, not `warm`: a closure over `warm` would let the runtime's own
            # thread drop the last reference to the Runtime, which jsrun refuses (unsendable).
            responses = warm.responses
            runtime.bind_function("__plugins_respond", lambda kind, text, unparked: responses.put((kind, text, unparked)))
            bootstrap = BOOTSTRAP_JS.replace("__CONFIG__", json.dumps(spec.config_json)).replace(
                "__MAX_CHARS__", str(int(self.options["max_result_bytes"]))
            )
            warm.park = runtime.eval(bootstrap)
            result = await self.run(warm, lambda: runtime.eval_async(spec.source), timeout)
            warm.handles.append(result)  # may be a JsFunction: must not be collected early
            if start_park:
                warm.park_future = asyncio.ensure_future(warm.park.call_async())
        except BaseException:
            self.close_warm(warm)
            raise
        return warm

    async def run(self, warm: Warm, start: Callable[[], Any], timeout: float) -> Any:
        """Start plugin code with ``start()`` (returns a jsrun awaitable) and await it.

        Every piece of plugin code (load, inspection, hook call) runs through here, under
        the time limit and the per-call data limit.
        """
        state = {"terminated": False}

        def stuck() -> None:
            # V8 did not stop after terminate() (seen with some heap bombs). Exiting is
            # the only way out; the supervisor reports the call and starts a new worker.
            os._exit(3)

        def expire() -> None:
            state["terminated"] = True
            warm.dead = True
            warm.runtime.terminate()
            state["stuck"] = self.loop.call_later(2.0, stuck)

        # Heap limits do not cover ArrayBuffer/string backing stores. One plugin runs at
        # a time per process, so the process data limit can bound what it may map.
        self.limit_data(current_data_bytes() + 2 * warm.spec.memory_mb * MIB + 64 * MIB)
        timer = self.loop.call_later(timeout, expire)
        try:
            return await start()
        except BaseException as exc:
            error = self.classify(exc, warm, state["terminated"])
            if error["kind"] in {"timeout", "memory", "internal"}:
                warm.dead = True
            raise CallFailed(error) from None
        finally:
            self.limit_data(int(self.options["data_limit_mb"]) * MIB)
            timer.cancel()
            if "stuck" in state:
                state["stuck"].cancel()

    def classify(self, exc: BaseException, warm: Warm, terminated: bool) -> dict[str, Any]:
        if terminated:
            return {"kind": "timeout", "message": "time limit exceeded"}
        text = str(exc)
        if isinstance(exc, jsrun.RuntimeTerminated):
            if "heap" in text.lower():
                return {"kind": "memory", "message": f"heap limit of {warm.spec.memory_mb} MiB exceeded"}
            return {"kind": "internal", "message": "runtime terminated"}
        if isinstance(exc, jsrun.JavaScriptError):
            name = exc.name or ""
            message = exc.message if exc.message is not None else text
            if name == "" and "Uncaught null" in text:
                # V8 terminated execution without us asking: the heap limit was hit.
                return {"kind": "memory", "message": f"heap limit of {warm.spec.memory_mb} MiB exceeded"}
            position = next(
                ((f.get("line_number"), f.get("column_number")) for f in exc.frames or [] if f.get("file_name") == SCRIPT_NAME),
                (None, None),
            )
            return self.script_error(warm, name, message, exc.stack or "", position)
        if isinstance(exc, RuntimeError) and "serializ" in text.lower():
            return {"kind": "too_large", "message": text[:500]}
        return {"kind": "internal", "message": f"{type(exc).__name__}: {text[:500]}"}

    def classify_thrown(self, warm: Warm, reported: dict[str, Any]) -> dict[str, Any]:
        """Classify an error the park loop caught and described (name, message, stack)."""
        stack = str(reported.get("stack") or "")
        match = FRAME.search(stack)
        position = (int(match.group(1)), int(match.group(2))) if match else (None, None)
        return self.script_error(warm, str(reported.get("name") or ""), str(reported.get("message") or ""), stack, position)

    def script_error(
        self, warm: Warm, name: str, message: str, stack: str, position: tuple[int | None, int | None]
    ) -> dict[str, Any]:
        if name == "RangeError" and ("allocation failed" in message or "Invalid string length" in message):
            return {"kind": "memory", "message": f"memory limit exceeded ({message})"}
        if name == "__HookNotFound":
            return {"kind": "hook_not_found", "message": message}
        if name == "__PluginResultTooLarge":
            return {"kind": "too_large", "message": message}
        cleaned = "\n".join(
            line.replace(SCRIPT_NAME, f"{warm.spec.slug}.js")
            for line in stack.splitlines()
            if "<eval>" not in line  # frames of our own bootstrap, not the plugin's
        )
        return {
            "kind": "script",
            "name": name or "Error",
            "message": message[:4000],
            "stack": cleaned[:8000],
            "line": position[0],
            "column": position[1],
        }

    def limit_data(self, limit: int) -> None:
        ceiling = int(self.options["data_limit_mb"]) * MIB
        limit = min(limit, ceiling)
        resource.setrlimit(resource.RLIMIT_DATA, (limit, ceiling))

    # -- warm runtime bookkeeping ------------------------------------------------------
    def forget_other_versions(self, spec: Spec) -> None:
        for key, warm in list(self.warm.items()):
            if warm.spec.slug == spec.slug and key != spec.key:
                self.discard(key)
        for key, other in list(self.specs.items()):
            if other.slug == spec.slug and key != spec.key:
                del self.specs[key]

    def enforce_warm_bound(self) -> None:
        limit = int(self.options["warm_runtimes"])
        while len(self.warm) > limit:
            oldest = next(iter(self.warm))
            self.discard(oldest)

    def next_idle_deadline(self) -> float | None:
        if not self.warm:
            return None
        idle = float(self.options["idle_seconds"])
        return min(w.last_used for w in self.warm.values()) + idle

    def close_idle(self) -> None:
        idle = float(self.options["idle_seconds"])
        now = time.monotonic()
        for key, warm in list(self.warm.items()):
            if now - warm.last_used >= idle:
                self.discard(key)

    def discard(self, key: str) -> None:
        warm = self.warm.pop(key, None)
        if warm is None:
            return
        if self.loop.is_running() and not warm.dead:
            # Inside a call: stopping a park loop needs the event loop, so this runtime
            # is closed right after the call (see handle()).
            self.retiring.append(warm)
        else:
            self.close_warm(warm)

    def close_retiring(self) -> None:
        while self.retiring:
            self.close_warm(self.retiring.pop())

    async def stop_park(self, warm: Warm) -> None:
        """Let a healthy runtime's park loop return, so that closing it does not block."""
        future = warm.park_future
        if future is not None and not future.done() and not warm.dead:
            warm.requests.put(None)
            await asyncio.wait({future}, timeout=1.0)

    def close_warm(self, warm: Warm) -> None:
        future = warm.park_future
        if future is not None and not future.done() and not warm.dead:
            warm.requests.put(None)  # the park loop returns; the runtime thread is free
            if not self.loop.is_running():
                self.loop.run_until_complete(asyncio.wait({future}, timeout=1.0))
        if future is not None and future.done() and not future.cancelled():
            future.exception()  # retrieved: no "exception was never retrieved" noise
        try:
            warm.runtime.close()
        except BaseException:
            pass  # closing a terminated runtime may raise; its thread is stopped either way
        # Handles are dropped only after close(): a finalizer on a closed runtime returns
        # at once, one on a busy open runtime would block this thread.
        warm.handles.clear()
        warm.park = None


_STATM_FD: int | None = None


def current_data_bytes() -> int:
    """Data + stack size of this process (from /proc/self/statm, kept open: hot path)."""
    global _STATM_FD
    if _STATM_FD is None:
        _STATM_FD = os.open("/proc/self/statm", os.O_RDONLY)
    return int(os.pread(_STATM_FD, 256, 0).split()[5]) * PAGE_SIZE


def limit_resources(data_limit_mb: int) -> None:
    limit = data_limit_mb * MIB
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def main() -> None:
    options = json.loads(sys.argv[1])
    limit_resources(int(options["data_limit_mb"]))
    Worker(options).serve()


if __name__ == "__main__":
    main()
