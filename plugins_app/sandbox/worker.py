"""The sandbox worker: a process that runs plugin code in jsrun runtimes.

Started by ``pool.py`` as ``python -I -c ...`` with a scrubbed environment. It imports
only the standard library, jsrun and its sibling modules: there is nothing of Django, the
settings or the database in this process for a V8 escape to find.

Frames travel on two dedicated pipe descriptors passed by the supervisor; fds 0 and 1
are /dev/null and fd 2 goes to the supervisor, which caps and logs it. Every frame of a
call carries that call's id. Host calls (``log``, ``db``, ``storage``) are sent to the
supervisor, which answers them on the Django thread that is waiting for this call.

Facts about jsrun 0.3.0 this file is built around (see docs/sandbox.md):
- Runtimes are thread-affine: all of them live on this process's main thread.
- An idle open runtime spins a CPU core, but one whose thread is blocked in a sync Python
  host function does not: warm runtimes are *parked* in a JS loop blocked in ``next()``.
- ``asyncio.wait_for`` must not be used as a timeout: on 3.11 it waits for the cancelled
  jsrun future, i.e. forever. A timer calls ``Runtime.terminate()`` instead.
- A ``JsFunction`` handle that is garbage-collected runs a finalizer that blocks until the
  runtime thread is free; every handle is kept referenced until after ``close()``.
"""
from __future__ import annotations

import asyncio
import ctypes
import json
import os
import queue
import re
import resource
import select
import sys
import threading
import time
import traceback
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsrun

if __package__:  # imported by tests from the Django process
    from . import oslayers, protocol
else:  # the sandbox process: started with this directory on sys.path (see pool.BOOT)
    import oslayers  # type: ignore[import-not-found,no-redef]
    import protocol  # type: ignore[import-not-found,no-redef]

MIB = 1024 * 1024
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
SCRIPT_NAME = "<eval_async>"
FRAME = re.compile(re.escape(SCRIPT_NAME) + r":(\d+):(\d+)")
POLL_SECONDS = 0.02  # how often a call that has not answered yet checks its deadline
SPEC_CACHE_SIZE = 64  # plugin versions whose source a worker keeps (each <= MAX_SOURCE_BYTES)
# Address space (VmData) a runtime is assumed to reserve before it is measured (~70 MiB seen).
RUNTIME_RESERVE = 80 * MIB
CALL_SLACK = 64 * MIB  # data a call may map beyond 2 x its plugin's limit (jsrun, Python, frames)
PARENT_CHECK_SECONDS = 0.2
STUCK_SECONDS = 2.0  # V8 not stopping this long after terminate(): exit, the supervisor restarts us

EXIT_STUCK = 3  # keep in sync with pool.py
EXIT_PROTOCOL = 4
EXIT_ORPHAN = 5
EXIT_UNEXPECTED = 6

BOOTSTRAP_JS = (Path(__file__).resolve().parent / "bootstrap.js").read_text(encoding="utf-8")

# The global object's own keys after the bootstrap: the ECMAScript built-ins V8 provides
# minus the shared-memory/Wasm/GC-callback ones, plus the plugin API. Anything else
# (engine internals, a new built-in in a jsrun upgrade) makes every load fail until it
# is reviewed here and in docs/plugin-authors.md.
GLOBALS = (
    # values and functions
    "globalThis", "Infinity", "NaN", "undefined", "eval", "isFinite", "isNaN", "parseFloat", "parseInt",
    "decodeURI", "decodeURIComponent", "encodeURI", "encodeURIComponent", "escape", "unescape",
    # fundamental objects and errors
    "Object", "Function", "Boolean", "Symbol", "Error", "AggregateError", "EvalError", "RangeError",
    "ReferenceError", "SyntaxError", "TypeError", "URIError", "SuppressedError",
    # numbers, text, dates
    "Number", "BigInt", "Math", "Date", "String", "RegExp", "Intl", "Temporal",
    # collections and buffers
    "Array", "Int8Array", "Uint8Array", "Uint8ClampedArray", "Int16Array", "Uint16Array", "Int32Array",
    "Uint32Array", "Float16Array", "Float32Array", "Float64Array", "BigInt64Array", "BigUint64Array",
    "Map", "Set", "WeakMap", "WeakSet", "WeakRef", "ArrayBuffer", "DataView", "JSON",
    # control flow and reflection
    "Promise", "Iterator", "Proxy", "Reflect", "DisposableStack", "AsyncDisposableStack",
    # the plugin API
    "queueMicrotask", "log", "console", "config", "db", "storage",
)


def bootstrap_source(
    *, config_json: str, max_chars: int, max_depth: int, memory_mb: int, globals_: tuple[str, ...] = GLOBALS
) -> str:
    """The bootstrap script for one runtime; its settings are spliced in as a JSON literal."""
    settings = {
        "config": config_json,
        "maxChars": max_chars,
        "maxDepth": max_depth,
        "memoryLimit": memory_mb * MIB,
        "globals": list(globals_),
    }
    return BOOTSTRAP_JS.replace("__SETTINGS__", json.dumps(settings))


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
    recycle: bool = False  # healthy, but kept too much memory: closed after this call
    grown: int = 0  # data-size growth across this runtime's calls: memory it kept


_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def clean_text(text: str, limit: int, *, keep_newlines: bool = False) -> str:
    """Plugin-made text for the supervisor: valid Unicode, control characters escaped."""
    text = text[:limit]
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if not keep_newlines:
        text = text.replace("\n", "\\n")
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class Worker:
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        self.reader = protocol.FrameReader(int(options["in_fd"]))
        self.out_fd = int(options["out_fd"])
        self.call_id: str | None = None
        self.specs: OrderedDict[str, Spec] = OrderedDict()
        self.warm: OrderedDict[str, Warm] = OrderedDict()
        self.retiring: list[Warm] = []
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.data_ceiling = int(options["data_limit_mb"]) * MIB

    # -- I/O -----------------------------------------------------------------
    def send(self, message: dict[str, Any]) -> None:
        if self.call_id is not None:
            message["id"] = self.call_id
        protocol.write_message(self.out_fd, message)

    def receive(self, op: str) -> dict[str, Any]:
        """The supervisor's reply ``op`` for the current call; anything else ends this process."""
        try:
            reply = self.reader.read_blocking()
        except protocol.ProtocolError:
            os._exit(EXIT_ORPHAN)  # the supervisor is gone
        if reply.get("op") != op or reply.get("id") != self.call_id:
            os._exit(EXIT_PROTOCOL)
        return reply

    def host(self, name: Any, args_json: Any) -> str:
        """Bound into every runtime; runs on the runtime's thread during a call.

        Never raises: a Python exception would reach plugin code as a TypeError
        carrying Python's own text.
        """
        try:
            if not isinstance(name, str) or not isinstance(args_json, str):
                return json.dumps({"error": {"name": "TypeError", "message": "invalid host call"}})
            if len(args_json) > int(self.options["max_host_args_chars"]):
                return json.dumps({"error": {"name": "RangeError", "message": "host call arguments are too large"}})
            # One call runs per worker and the main thread does not read while it waits for
            # that call: this thread owns the channel until the reply arrives.
            self.send({"op": "host", "name": name, "args": args_json})
            reply = self.receive("host_result")["reply"]
            if not isinstance(reply, str):
                os._exit(EXIT_PROTOCOL)
            return reply
        except BaseException:
            os._exit(EXIT_PROTOCOL)

    # -- main loop -------------------------------------------------------------
    def serve(self, layers: dict[str, Any]) -> None:
        self.send({"op": "ready", "pid": os.getpid(), "layers": layers})
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
        if op == "shutdown":
            self.shutdown()
        call_id = message.get("id")
        if op not in {"call", "inspect"} or not isinstance(call_id, str):
            os._exit(EXIT_PROTOCOL)
        self.call_id = call_id
        try:
            if op == "call":
                text = self.loop.run_until_complete(self.call(message))
            else:
                text = self.loop.run_until_complete(self.inspect(self.spec_from(message["spec"]), float(message["timeout"])))
            self.enforce_warm_bound()
            self.send({"op": "result", "ok": text, "warm": list(self.warm)})
        except CallFailed as exc:
            self.send({"op": "result", "error": exc.error, "warm": list(self.warm)})
        finally:
            self.call_id = None
        self.close_retiring()

    def shutdown(self) -> None:
        for key in list(self.warm):
            self.discard(key)
        self.close_retiring()
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
            spec = self.spec_from(self.receive("spec")["spec"])
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
            return await self.call_parked(warm, ["call", str(message["hook"]), str(message["args"])], timeout)
        finally:
            warm.last_used = time.monotonic()
            if warm.dead or warm.recycle:
                self.discard(key)

    async def inspect(self, spec: Spec, timeout: float) -> str:
        warm = await self.load(spec, timeout)
        try:
            return await self.call_parked(warm, ["inspect"], timeout)
        finally:
            self.retiring.append(warm)  # closed after the call, outside the event loop

    async def call_parked(self, warm: Warm, request: list[str], timeout: float) -> str:
        """Hand one request to the runtime's park loop and wait for its reply.

        The reply normally arrives within microseconds; while waiting longer this polls,
        letting jsrun report a runtime that died (heap limit) and enforcing the deadline.
        """
        before = current_data_bytes()
        self.limit_data(self.call_data_limit(warm))
        warm.requests.put(request)
        deadline = time.monotonic() + timeout
        stuck_at = None
        try:
            while True:
                try:
                    kind, text, retained = warm.responses.get(timeout=POLL_SECONDS)
                    break
                except queue.Empty:
                    pass
                await asyncio.sleep(0)  # lets jsrun deliver the park loop's end, if any
                future = warm.park_future
                if future.done():
                    # V8 stopped the code: heap limit, or our terminate() below.
                    warm.dead = True
                    exc = future.exception() if not future.cancelled() else None
                    if exc is None:
                        raise CallFailed({"kind": "internal", "message": "the runtime stopped unexpectedly"})
                    raise CallFailed(self.classify(exc, warm, terminated=stuck_at is not None))
                now = time.monotonic()
                if stuck_at is None and now >= deadline:
                    warm.dead = True
                    warm.runtime.terminate()
                    stuck_at = now + STUCK_SECONDS
                elif stuck_at is not None and now >= stuck_at:
                    os._exit(EXIT_STUCK)
        finally:
            self.limit_data(self.data_ceiling)
        self.account_memory(warm, current_data_bytes() - before, retained)
        if kind == "ok" and isinstance(text, str):
            return text
        try:
            reported = json.loads(text) if isinstance(text, str) else {}
        except ValueError:
            reported = {}
        if not isinstance(reported, dict):
            reported = {}
        raise CallFailed(self.classify_thrown(warm, reported))

    def account_memory(self, warm: Warm, growth: int, retained: Any) -> None:
        """Recycle a runtime that keeps more than its plugin's limit between calls.

        ``retained`` is V8's heap in use plus external (ArrayBuffer) memory after the call;
        ``growth`` is this process's data-size change across the call, which also sees
        memory V8 does not report. A heap may legitimately grow up to the limit, so data
        growth counts only past twice the limit.
        """
        limit = warm.spec.memory_mb * MIB
        warm.grown = max(0, warm.grown + growth)
        kept = retained if isinstance(retained, int | float) else 0
        if kept > limit or warm.grown > 2 * limit:
            warm.recycle = True

    def call_data_limit(self, current: Warm | None) -> int:
        """RLIMIT_DATA for one call (``None``: for creating a runtime).

        Heap limits do not cover ArrayBuffer or string backing stores; one call runs per
        process at a time, so the process data limit bounds what a call may map: what the
        process holds now, *less what this plugin's runtime kept from its earlier calls*,
        plus 2 x its limit. Counting from the current size alone would let a plugin
        ratchet (keep 2 x its limit per call); counting from the size at start would be
        wrong too: measured, closing a runtime does not give its address space back.
        """
        if current is None:
            return current_data_bytes() + RUNTIME_RESERVE + CALL_SLACK
        return current_data_bytes() - current.grown + 2 * current.spec.memory_mb * MIB + CALL_SLACK

    async def load(self, spec: Spec, timeout: float) -> Warm:
        config = jsrun.RuntimeConfig(
            max_heap_size=spec.memory_mb * MIB,
            max_serialization_bytes=int(self.options["max_result_bytes"]) * 2 + 4096,
            enable_console=False,
        )
        self.limit_data(self.call_data_limit(None))
        try:
            runtime = jsrun.Runtime(config)
        except Exception:  # thread spawn refused under RLIMIT_DATA, etc.
            raise CallFailed({"kind": "memory", "message": "could not start a runtime within the memory limit"}) from None
        finally:
            self.limit_data(self.data_ceiling)
        warm = Warm(spec=spec, runtime=runtime)
        try:
            runtime.bind_function("__plugins_host", self.host)
            # Bind the queues, not `warm`: a closure over `warm` would let the runtime's own
            # thread drop the last reference to the Runtime, which jsrun refuses (unsendable).
            requests, responses = warm.requests, warm.responses
            runtime.bind_function("__plugins_next", requests.get)
            runtime.bind_function("__plugins_respond", lambda kind, text, retained: responses.put((kind, text, retained)))
            source = bootstrap_source(
                config_json=spec.config_json,
                max_chars=int(self.options["max_result_bytes"]),
                max_depth=int(self.options["max_data_depth"]),
                memory_mb=spec.memory_mb,
            )
            try:
                warm.park = runtime.eval(source)
            except Exception as exc:
                # Fail closed: the engine offers something the allowlist does not know.
                raise CallFailed({"kind": "internal", "message": f"sandbox bootstrap refused: {clean_text(str(exc), 500)}"}) from None
            result = await self.run(warm, lambda: runtime.eval_async(spec.source), timeout)
            warm.handles.append(result)  # may be a JsFunction: must not be collected early
            warm.park_future = asyncio.ensure_future(warm.park.call_async())
        except BaseException:
            self.close_warm(warm)
            raise
        return warm

    async def run(self, warm: Warm, start: Any, timeout: float) -> Any:
        """Run the plugin's top-level code (``start()`` returns a jsrun awaitable) under
        the time limit and the call's data limit."""
        state = {"terminated": False}

        def stuck() -> None:
            # V8 did not stop after terminate() (seen with some heap bombs). Exiting is
            # the only way out; the supervisor reports the call and starts a new worker.
            os._exit(EXIT_STUCK)

        def expire() -> None:
            state["terminated"] = True
            warm.dead = True
            warm.runtime.terminate()
            state["stuck"] = self.loop.call_later(STUCK_SECONDS, stuck)

        self.limit_data(self.call_data_limit(warm))
        timer = self.loop.call_later(timeout, expire)
        try:
            return await start()
        except BaseException as exc:
            error = self.classify(exc, warm, state["terminated"])
            if error["kind"] in {"timeout", "memory", "internal"}:
                warm.dead = True
            raise CallFailed(error) from None
        finally:
            self.limit_data(self.data_ceiling)
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
            return {"kind": "too_large", "message": "the value is too large to cross the sandbox boundary"}
        return {"kind": "internal", "message": f"{type(exc).__name__} in the sandbox"}

    def classify_thrown(self, warm: Warm, reported: dict[str, Any]) -> dict[str, Any]:
        """Classify an error the park loop caught and described (name, message, stack)."""
        stack = str(reported.get("stack") or "")
        match = FRAME.search(stack)
        position = (int(match.group(1)), int(match.group(2))) if match else (None, None)
        return self.script_error(warm, str(reported.get("name") or ""), str(reported.get("message") or ""), stack, position)

    def script_error(
        self, warm: Warm, name: str, message: str, stack: str, position: tuple[int | None, int | None]
    ) -> dict[str, Any]:
        name = clean_text(name, 200)
        message = clean_text(message, 4000)
        if name == "RangeError" and ("allocation failed" in message or "Invalid string length" in message):
            return {"kind": "memory", "message": f"memory limit exceeded ({message})"}
        if name == "__HookNotFound":
            return {"kind": "hook_not_found", "message": message}
        if name == "__PluginMemoryError":
            return {"kind": "memory", "message": message}
        if name == "__PluginDataError":
            return {"kind": "data", "message": message}
        if name == "__NeverSettled":
            return {"kind": "never_settled", "message": message}
        cleaned = "\n".join(
            line.replace(SCRIPT_NAME, f"{warm.spec.slug}.js")
            for line in clean_text(stack, 8000, keep_newlines=True).splitlines()
            if "<eval>" not in line  # frames of our own bootstrap, not the plugin's
        )
        return {
            "kind": "script",
            "name": name or "Error",
            "message": message,
            "stack": cleaned,
            "line": position[0],
            "column": position[1],
        }

    def limit_data(self, limit: int) -> None:
        resource.setrlimit(resource.RLIMIT_DATA, (min(limit, self.data_ceiling), self.data_ceiling))

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
            self.discard(next(iter(self.warm)))

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
        if warm.runtime is not None:
            try:
                warm.runtime.close()
            except BaseException:
                pass  # closing a terminated runtime may raise; its thread is stopped either way
        # Handles are dropped only after close(): a finalizer on a closed runtime returns
        # at once, one on a busy open runtime would block this thread.
        warm.handles.clear()
        warm.park = None
        release_freed_memory()


_STATM_FD: int | None = None


def current_data_bytes() -> int:
    """Data + stack size of this process (from /proc/self/statm, kept open: hot path)."""
    global _STATM_FD
    if _STATM_FD is None:
        _STATM_FD = os.open("/proc/self/statm", os.O_RDONLY)
    return int(os.pread(_STATM_FD, 256, 0).split()[5]) * PAGE_SIZE


try:
    _malloc_trim = ctypes.CDLL(None).malloc_trim
except (OSError, AttributeError):  # not glibc
    _malloc_trim = None


def release_freed_memory() -> None:
    """Give memory freed by a closed runtime back to the OS (measured: without this, the
    ArrayBuffers of a closed runtime stay resident in its thread's malloc arena)."""
    if _malloc_trim is not None:
        _malloc_trim(0)


def limit_resources(data_limit_mb: int) -> None:
    limit = data_limit_mb * MIB
    resource.setrlimit(resource.RLIMIT_DATA, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def watch_parent(parent_pid: int) -> None:
    """Exit when the supervisor dies, whatever the main thread is doing (even blocked in
    a host call, or with the channel held open by a forked sibling of the supervisor)."""

    def watch() -> None:
        while True:
            time.sleep(PARENT_CHECK_SECONDS)
            if os.getppid() != parent_pid:
                os._exit(EXIT_ORPHAN)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def main() -> None:
    try:
        options = json.loads(sys.argv[1])
        limit_resources(int(options["data_limit_mb"]))
        current_data_bytes()  # opens /proc/self/statm before the OS layers close the file system
        for codec in ("ascii", "latin-1", "unicode_escape", "utf-8"):
            "".encode(codec)  # codecs import lazily; after the uid switch they could not be read
        # Before any other thread exists: Landlock restricts the calling thread and the
        # threads it starts afterwards only.
        layers = oslayers.apply(options.get("layers") or {})
        watch_parent(int(options["parent_pid"]))
        Worker(options).serve(layers)
    except SystemExit:
        raise
    except BaseException as exc:
        # Anything unexpected: a short note for the supervisor's log, then exit at once
        # (interpreter finalization with jsrun threads alive can abort).
        try:
            note = "".join(traceback.format_exception(exc, limit=-3))
            os.write(2, f"sandbox worker failed: {note}".encode("utf-8", "replace")[-4000:])
        finally:
            os._exit(EXIT_UNEXPECTED)


if __name__ == "__main__":
    main()
