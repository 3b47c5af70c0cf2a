"""The sandbox worker: a process that runs plugin code in jsrun runtimes.

Started by ``pool.py`` as ``python -I -c ...`` with a scrubbed environment. It imports
only the standard library, jsrun and its sibling modules: there is nothing of Django, the
settings or the database in this process for a V8 escape to find.

Frames travel on two dedicated pipe descriptors passed by the supervisor; fds 0 and 1
are /dev/null and fd 2 goes to the supervisor, which caps and logs it. Every frame of a
call carries that call's id. Host calls (``db``, ``storage``) are sent to the supervisor,
which answers them on the Django thread that is waiting for this call; ``log`` lines are
buffered here and sent with the next host call or the step's answer.

Threads, and who owns the channel (exactly one thread reads and writes it at a time):
- a warm runtime's thread, parked in the bootstrap's JS loop inside ``next()``, reads the
  next frame itself, runs the call and writes the answer: a warm call crosses no other
  thread in this process. Ownership moves with the work: to the runtime of the next step
  of a chain, or to the main thread for anything else (a cold load, an inspection, the
  idle sweep, shutdown).
- the main thread runs an asyncio loop: it owns every jsrun ``Runtime`` object (creates,
  loads, closes them), reads the channel when no runtime owns it, and answers a call whose
  runtime died (heap limit, or terminated at its deadline).
- the watchdog thread terminates a step that passes its deadline; parent-watch exits the
  process when the supervisor is gone.

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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsrun

if __package__:  # imported by tests from the Django process
    from . import oslayers, protocol, snapshot
else:  # the sandbox process: started with this directory on sys.path (see pool.BOOT)
    import oslayers  # type: ignore[import-not-found,no-redef]  # flat, as the sandbox imports it; mypy reads the package
    import protocol  # type: ignore[import-not-found,no-redef]  # (same)
    import snapshot  # type: ignore[import-not-found,no-redef]  # (same)

MIB = 1024 * 1024
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
SCRIPT_NAME = "<eval_async>"
# ES module plugins (docs/plugin-authors.md, "Script or module"; docs/sandbox.md). A source
# is a module when V8 refuses it as a classic script for module syntax (the messages below:
# an import or export statement, import.meta; Node.js's syntax detection uses the same
# ones): its parser decides, so strings and comments cannot fool it, and nothing has run.
# A module is loaded through jsrun's static modules: the plugin's source, the host API and
# an entry module that hands the plugin's namespace to the bootstrap's park loop. Only
# these specifiers resolve (module_resolver); every other import is refused, at load and
# at call time alike.
MODULE_SYNTAX_ERRORS = (
    "Cannot use import statement outside a module",
    "Unexpected token 'export'",
    "Cannot use 'import.meta' outside a module",
)
HOST_SPECIFIER = "plugin:host"
PLUGIN_SPECIFIER = "plugin:module"
ENTRY_SPECIFIER = "plugin:entry"
STATIC_URL = "jsrun://static/"  # jsrun's URL prefix of a static module
MODULE_NAME = STATIC_URL + PLUGIN_SPECIFIER  # the plugin module's file name in stacks and frames
# Read once, when a module plugin's first import of it is evaluated: before any of its code.
HOST_MODULE = (
    "const host = globalThis.host;\n"
    "export default host;\n"
    "export const config = host.config, log = host.log, db = host.db, storage = host.storage;\n"
)
# It imports the host API first, so that an import("plugin:host") at call time finds it
# loaded and settles within the call (loading a module takes jsrun's event loop, which
# does not run during a call).
ENTRY_MODULE = (
    f"import {json.dumps(HOST_SPECIFIER)};\n"
    f"import * as plugin from {json.dumps(PLUGIN_SPECIFIER)};\n"
    "export default function namespace() { return plugin; }\n"
)
FRAME = re.compile("(?:" + re.escape(SCRIPT_NAME) + "|" + re.escape(MODULE_NAME) + r"):(\d+):(\d+)")
MODULE_THROWN = "Failed to get module namespace:"
# A module's syntax error reaches Python as text only (jsrun: "Failed to load module ...").
MODULE_SYNTAX_ERROR = re.compile(
    r"Uncaught (SyntaxError): (.*?)\n\s+at " + re.escape(MODULE_NAME) + r":(\d+):(\d+)", re.DOTALL
)
SPEC_CACHE_SIZE = 64  # plugin versions whose source a worker keeps (each <= MAX_SOURCE_BYTES)
CALL_SLACK = snapshot.CALL_SLACK_MB * MIB  # data a call may map beyond 2 x its limit (jsrun, Python, frames)
PARENT_CHECK_SECONDS = 0.2
HALT_RETRY_SECONDS = 0.0002  # Worker.halt: how soon to look again for a runtime still in Python
# Creating or closing a runtime waits until no frame has come for this long (see
# Worker.idle_work_when_listening).
IDLE_WORK_DELAY = 0.005
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
    "globalThis",
    "Infinity",
    "NaN",
    "undefined",
    "eval",
    "isFinite",
    "isNaN",
    "parseFloat",
    "parseInt",
    "decodeURI",
    "decodeURIComponent",
    "encodeURI",
    "encodeURIComponent",
    "escape",
    "unescape",
    # fundamental objects and errors
    "Object",
    "Function",
    "Boolean",
    "Symbol",
    "Error",
    "AggregateError",
    "EvalError",
    "RangeError",
    "ReferenceError",
    "SyntaxError",
    "TypeError",
    "URIError",
    "SuppressedError",
    # numbers, text, dates
    "Number",
    "BigInt",
    "Math",
    "Date",
    "String",
    "RegExp",
    "Intl",
    "Temporal",
    # collections and buffers
    "Array",
    "Int8Array",
    "Uint8Array",
    "Uint8ClampedArray",
    "Int16Array",
    "Uint16Array",
    "Int32Array",
    "Uint32Array",
    "Float16Array",
    "Float32Array",
    "Float64Array",
    "BigInt64Array",
    "BigUint64Array",
    "Map",
    "Set",
    "WeakMap",
    "WeakSet",
    "WeakRef",
    "ArrayBuffer",
    "DataView",
    "JSON",
    # control flow and reflection
    "Promise",
    "Iterator",
    "Proxy",
    "Reflect",
    "DisposableStack",
    "AsyncDisposableStack",
    # the plugin API
    "queueMicrotask",
    "log",
    "console",
    "config",
    "db",
    "storage",
    "host",
    # web APIs (plugins_app/sandbox/webapi: installed by the bootstrap from the snapshot)
    "TextEncoder",
    "TextDecoder",
    "URL",
    "URLSearchParams",
    "atob",
    "btoa",
    "structuredClone",
    "crypto",
    "Crypto",
    "CryptoKey",
    "SubtleCrypto",
    "DOMException",
    "Event",
    "EventTarget",
    "AbortController",
    "AbortSignal",
    "performance",
    "Performance",
    "setTimeout",
    "clearTimeout",
    "setInterval",
    "clearInterval",
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
    module: bool | None = None  # an ES module (None: not loaded yet in this worker)


STOP = None  # put in a runtime's inbox: its park loop returns


@dataclass
class Warm:
    spec: Spec
    runtime: Any
    park: Any = None  # the park loop (a JsFunction), kept referenced for the runtime's life
    park_future: Any = None  # its call_async future: done only when the loop stops or V8 dies
    inbox: queue.SimpleQueue[Any] = field(default_factory=queue.SimpleQueue)  # jobs handed over, or STOP
    handles: list[Any] = field(default_factory=list)
    job: Job | None = None  # the job whose step this runtime runs next (its own thread only)
    last_used: float = 0.0
    dead: bool = False
    recycle: bool = False  # healthy, but kept too much memory: closed after this call
    stopping: bool = False  # next() returns None: the park loop ends, main closes the runtime
    temporary: bool = False  # an inspection's runtime: never in Worker.warm
    pinned: Any = None  # see Worker.pin
    thread_id: int | None = None  # the runtime's thread (its park loop's), set by Worker.pin
    parked: asyncio.Future[Any] | None = None  # resolved when the park loop first asks for work
    grown: int = 0  # data-size growth across this runtime's calls: memory it kept
    refused_imports: list[str] = field(default_factory=list)  # specifiers module_resolver refused


@dataclass
class Standby:
    """A runtime created ahead of need, parked in a bound ``queue.get`` (an idle open
    runtime spins a core): the next cold load of a plugin of this memory limit adopts it
    instead of waiting ~5-10 ms for a new one."""

    runtime: Any
    memory_mb: int
    hold: queue.SimpleQueue[Any]
    function: Any  # the JsFunction parked in hold.get: referenced until the runtime closes
    future: Any
    ref: _WarmRef  # its bridge functions, bound ahead (binding is slow right after a park)


@dataclass(slots=True)
class Step:
    key: str
    hook: str
    timeout: float


@dataclass(slots=True)
class Job:
    """One call frame: a single hook call, or a chain of steps (a filter or an action
    over several plugins) run in one conversation with the supervisor."""

    call_id: str
    steps: list[Step]
    mode: str  # "call", "action", "filter" or "inspect"
    args: str = "[]"  # JSON list text: every step's arguments ("call", "action")
    value: str = "null"  # "filter": the value passed through, as JSON text
    rest: str = "[]"  # "filter": the arguments after the value
    stop_on_error: bool = True
    index: int = 0
    inspect_spec: Spec | None = None
    # The current step, shared by the runtime running it, the watchdog and the main thread
    # (under STEP_LOCK: one step runs per process at a time).
    running: Warm | None = None
    answered: bool = True
    terminated: bool = False
    started: float = 0.0
    deadline: float = 0.0  # time.monotonic() at which the current step times out
    sleeping: bool = False  # the step's runtime waits for a timer (wait_for_timer; under STEP_LOCK)
    wake: threading.Event | None = None  # ends that wait early (the watchdog, at the deadline)
    data_before: int = 0
    logs: list[list[str]] = field(default_factory=list)
    dropped: int = 0

    @property
    def step(self) -> Step:
        return self.steps[self.index]

    def arguments(self) -> str:
        if self.mode != "filter":
            return self.args
        return "[" + self.value + ("]" if self.rest == "[]" else "," + self.rest[1:])


_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def clean_text(text: str, limit: int, *, keep_newlines: bool = False) -> str:
    """Plugin-made text for the supervisor: valid Unicode, control characters escaped."""
    text = text[:limit]
    if not text.isascii():
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if not keep_newlines:
        text = text.replace("\n", "\\n")
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


STEP_LOCK = threading.Lock()
# Set when the main thread has answered a step the watchdog terminated.
RESOLVED = threading.Event()


class WarmRuntimes(OrderedDict[str, Warm]):
    """Warm runtimes by key, oldest first, with a version that changes with the keys."""

    version = 0

    def __setitem__(self, key: str, value: Warm) -> None:
        self.version += 1
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.version += 1
        super().__delitem__(key)

    def pop(self, key: str, *default: Any) -> Any:
        self.version += 1
        return super().pop(key, *default)


class Watchdog:
    """Terminates the running step when its deadline passes (one step runs at a time).

    Arming costs a lock; the thread is woken only when the new deadline is earlier than
    the one it sleeps towards, so a busy worker wakes it about once per time limit.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.cond = threading.Condition(threading.Lock())
        self.current: tuple[Job, Warm, float] | None = None
        self.sleeping_until: float | None = None  # None: waiting for a step to be armed
        threading.Thread(target=self.run, name="watchdog", daemon=True).start()

    def arm(self, job: Job, warm: Warm, deadline: float) -> None:
        with self.cond:
            self.current = (job, warm, deadline)
            if self.sleeping_until is None or self.sleeping_until > deadline:
                self.cond.notify()

    def disarm(self) -> None:
        with self.cond:
            self.current = None

    def run(self) -> None:
        while True:
            with self.cond:
                if self.current is None:
                    self.sleeping_until = None
                    self.cond.wait()
                    continue
                job, warm, deadline = self.current
                wait = deadline - time.monotonic()
                if wait > 0:
                    self.sleeping_until = deadline
                    self.cond.wait(wait)
                    continue
                self.current = None
            with STEP_LOCK:
                if job.running is not warm or job.answered:
                    continue
                if job.sleeping and job.wake is not None:
                    # Waiting for a timer, in Python: terminate() would deadlock (it holds
                    # the GIL until V8 stops, and this thread needs the GIL to return).
                    # Wake it instead: its run loop answers "time limit exceeded" at once.
                    job.wake.set()
                    continue
                job.terminated = True
                warm.dead = True
                RESOLVED.clear()
            # Runtime methods must be called on the thread that created it (main).
            self.loop.call_soon_threadsafe(terminate, warm)
            # The main thread answers once V8 has stopped; if it does not stop, exiting is
            # the only way out: the supervisor reports the call and starts a new worker.
            if not RESOLVED.wait(STUCK_SECONDS):
                os._exit(EXIT_STUCK)


MAIN = None  # Worker.owner when the main thread owns the channel
IN_TRANSIT = object()  # Worker.owner while a job waits in a runtime's inbox: that runtime owns it next


class Worker:
    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        self.reader = protocol.FrameReader(int(options["in_fd"]))
        self.out_fd = int(options["out_fd"])
        self.specs: OrderedDict[str, Spec] = OrderedDict()
        self.warm: WarmRuntimes = WarmRuntimes()
        self.warm_reported = -1  # the WarmRuntimes.version last sent to the supervisor
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.data_ceiling = int(options["data_limit_mb"]) * MIB
        self.max_log_lines = int(options.get("max_log_lines", 100))
        self.max_log_chars = int(options.get("max_log_line_chars", 2000))
        self.max_host_args = int(options["max_host_args_chars"])
        self.idle_seconds = float(options["idle_seconds"])
        self.owner: Any = MAIN
        self.current: Job | None = None  # the job being served (host calls and logs use it)
        self.main_busy = False
        self.idle_timer: asyncio.TimerHandle | None = None
        self.watchdog = Watchdog(self.loop)
        # Every runtime of this process comes from one snapshot (jsrun aborts a process that
        # mixes snapshot and plain runtimes); built after the OS layers (see snapshot.py).
        self.factory = snapshot.RuntimeFactory(BOOTSTRAP_JS)
        self.standby: Standby | None = None
        self.want_standby = True
        self.to_close: list[Warm] = []  # stopped runtimes, closed at the next quiet moment
        self.data_now: int | None = None  # data size after the last answer (None: measure)
        self.standby_memory_mb = int(options.get("default_memory_mb", snapshot.DEFAULT_RUNTIME_MEMORY_MB))

    # -- the channel (its owner only) ------------------------------------------------
    def send(self, message: dict[str, Any]) -> None:
        protocol.write_message(self.out_fd, message)

    def receive(self, op: str, call_id: str) -> dict[str, Any]:
        """The supervisor's reply ``op`` for call ``call_id``; anything else ends this process."""
        try:
            reply = self.reader.read_blocking()
        except protocol.ProtocolError:
            os._exit(EXIT_ORPHAN)  # the supervisor is gone
        if reply.get("op") != op or reply.get("id") != call_id:
            os._exit(EXIT_PROTOCOL)
        return reply

    def read_frame(self, timeout: float | None) -> dict[str, Any] | None:
        """The next frame, or None after ``timeout`` seconds without one."""
        message = self.reader.pop()
        while message is None:
            readable, _, _ = select.select([self.reader.fd], [], [], timeout)
            if not readable:
                return None
            try:
                self.reader.fill()
            except protocol.ProtocolError:
                os._exit(EXIT_ORPHAN)
            message = self.reader.pop()
        return message

    def host(self, name: Any, args_json: Any, warm: Warm | None = None) -> str:
        """Bound into every runtime (through its _WarmRef); runs on the runtime's thread
        during a call.

        Never raises: a Python exception would reach plugin code as a TypeError
        carrying Python's own text. A host call from a runtime whose plugin is not the one
        the current step (or load) runs is refused: code of a stopped runtime (an import()
        rejection jsrun delivers once its park loop has returned) must never act for the
        plugin being called then.
        """
        try:
            job = self.current
            if job is None or warm is None or job.step.key != warm.spec.key:
                return '{"error":{"name":"HostError","message":"host calls are available only during a call of this plugin"}}'
            if not isinstance(name, str) or not isinstance(args_json, str):
                return '{"error":{"name":"TypeError","message":"invalid host call"}}'
            if len(args_json) > self.max_host_args:
                return '{"error":{"name":"RangeError","message":"host call arguments are too large"}}'
            if name == "log":
                return self.buffer_log(job, args_json)
            # This thread owns the channel for the whole step: it alone reads the reply.
            self.send(self.frame(job, "host", {"name": name, "args": args_json}))
            reply = self.receive("host_result", job.call_id)["reply"]
            if not isinstance(reply, str):
                os._exit(EXIT_PROTOCOL)
            return reply
        except BaseException:
            os._exit(EXIT_PROTOCOL)

    def buffer_log(self, job: Job, args_json: str) -> str:
        """A ``log`` line is kept with the step and sent with its next frame: no round trip.
        Lines past MAX_LOG_LINES are counted, as the supervisor would."""
        if len(job.logs) >= self.max_log_lines:
            job.dropped += 1
            return '{"ok":null}'
        try:
            level, text = json.loads(args_json)
        except (ValueError, TypeError):
            return '{"error":{"name":"TypeError","message":"log() takes a level name and a message string"}}'
        if not isinstance(level, str) or not isinstance(text, str):
            return '{"error":{"name":"TypeError","message":"log() takes a level name and a message string"}}'
        # One character over the supervisor's cap keeps its "cut" marker exact.
        job.logs.append([level[:20], text[: self.max_log_chars + 1]])
        return '{"ok":null}'

    def frame(self, job: Job, op: str, fields: dict[str, Any]) -> dict[str, Any]:
        """A frame of ``job``'s current step, carrying (and clearing) its buffered logs."""
        fields["op"] = op
        fields["id"] = job.call_id
        fields["i"] = job.index
        if job.logs or job.dropped:
            fields["logs"] = job.logs
            fields["dropped"] = job.dropped
            job.logs = []
            job.dropped = 0
        return fields

    # -- runtime threads: the park loop's next() and respond() ---------------------------
    def next_request(self, warm: Warm) -> str:
        """Bound as ``__plugins_next``: the next request for this runtime ("" to stop)."""
        try:
            while True:
                if warm.stopping:
                    return self.halt_request(warm)
                job = warm.job
                if job is None:
                    if self.owner is warm:
                        self.read_as_owner(warm)
                        continue
                    item = warm.inbox.get()
                    if item is STOP:
                        return self.halt_request(warm)
                    warm.job = item
                    continue
                return self.begin_step(warm, job)
        except BaseException as exc:
            fatal(exc)
            raise

    def pin(self, warm: Warm) -> None:
        """Keep a Python thread state on this runtime's thread (called on it, once).

        jsrun enters Python for every bound call with PyGILState_Ensure; on a thread with
        no thread state of its own that creates and destroys one each time: measured
        16-35 us per crossing, against ~1 us once one is kept (it holds no GIL between
        calls). Released when the park loop stops; a terminated runtime leaks one."""
        if warm.pinned is None:
            warm.pinned = _gil_ensure()
            warm.thread_id = threading.get_ident()
            trace_runtime_thread()

    def unpin(self, warm: Warm) -> str:
        if warm.pinned is not None:
            _gil_release(warm.pinned)
            warm.pinned = None
        return ""

    def halt_request(self, warm: Warm) -> str:
        """The park loop's last request, "h": the runtime waits in JavaScript until the main
        thread terminates it (:meth:`halt`). A park loop that returned would hand the
        runtime back to jsrun's event loop, which runs what the plugin left there (an
        import() rejection, delivered only then) outside any call, and spins a core until
        the runtime is closed. Terminated, its thread ends at once and runs nothing more."""
        self.unpin(warm)
        self.loop.call_soon_threadsafe(self.halt, warm)
        return "h"

    def halt(self, warm: Warm, since: float | None = None) -> None:
        """Terminate a runtime whose park loop asked to halt (main thread)."""
        if warm.runtime is None:
            return
        if warm.thread_id in sys._current_frames():
            # Still on its way out of next(): terminate() holds the GIL until V8 stops,
            # and that thread needs the GIL to leave Python. Once it has left, it only
            # spins in JavaScript, which terminate() stops.
            since = time.monotonic() if since is None else since
            if time.monotonic() - since > STUCK_SECONDS:
                os._exit(EXIT_STUCK)  # never left Python: a bug; the supervisor starts a new worker
            self.loop.call_later(HALT_RETRY_SECONDS, self.halt, warm, since)
            return
        try:
            warm.runtime.terminate()
        except BaseException:
            pass  # already terminated (the watchdog, a heap limit): stopped either way

    def read_as_owner(self, warm: Warm) -> None:
        deadline = self.next_idle_deadline()
        timeout = None if deadline is None else max(0.0, deadline - time.monotonic())
        if self.idle_work_pending():
            timeout = IDLE_WORK_DELAY if timeout is None else min(timeout, IDLE_WORK_DELAY)
        message = self.read_frame(timeout)
        if message is None:  # quiet: the main thread sweeps and does its idle work
            self.give_to_main(None)
            return
        job = self.job_from(message)
        if job is None or job.mode == "inspect":
            self.give_to_main(message)
        else:
            self.dispatch(job, warm)

    def dispatch(self, job: Job, current: Warm | None) -> None:
        """Run ``job``'s current step on its warm runtime (which then owns the channel), or
        let the main thread load it. Called by the channel's owner (``current``; None: main)."""
        target = self.warm.get(job.step.key)
        if target is not None and not target.dead:
            if target is current:
                current.job = job
                return
            self.owner = IN_TRANSIT
            target.inbox.put(job)
            return
        if current is None:
            self.loop.create_task(self.load_and_dispatch(job))
        else:
            self.give_to_main(job)

    def give_to_main(self, item: Any) -> None:
        self.owner = MAIN
        self.loop.call_soon_threadsafe(self.main_receive, item)

    def begin_step(self, warm: Warm, job: Job) -> str:
        self.owner = warm
        with STEP_LOCK:
            job.running = warm
            job.answered = False
            job.terminated = False
        self.current = job
        # The size the last answer measured, unless the main thread changed it since.
        now = self.data_now if self.data_now is not None else current_data_bytes()
        job.data_before = now
        # Left in place after the step: every step and every load sets its own.
        self.limit_data(self.call_data_limit(warm, now=now))
        job.started = time.perf_counter()
        step = job.step
        job.deadline = deadline = time.monotonic() + step.timeout
        self.watchdog.arm(job, warm, deadline)
        if job.mode == "inspect":
            return "i"
        return "c" + step.hook + "\0" + job.arguments()

    def exchange(self, warm: Warm, kind: Any, text: Any, retained: Any) -> str:
        """Bound as ``__plugins_exchange``: the outcome of this runtime's step in, its next
        request out (one crossing per call)."""
        self.respond(warm, kind, text, retained)
        return self.next_request(warm)

    def respond(self, warm: Warm, kind: Any, text: Any, retained: Any) -> None:
        """The step's outcome, from the park loop."""
        try:
            job = warm.job
            if job is None:
                os._exit(EXIT_PROTOCOL)
            with STEP_LOCK:
                if job.answered or job.terminated:
                    # Past its deadline: V8 stops this loop at once and the main thread
                    # answers; should the loop ask for more, it gets nothing.
                    warm.stopping = True
                    return
                job.answered = True
            self.watchdog.disarm()
            self.data_now = now = current_data_bytes()
            self.account_memory(warm, now - job.data_before, retained)
            warm.last_used = time.monotonic()
            if not warm.temporary and self.warm.get(warm.spec.key) is warm:
                self.warm.move_to_end(warm.spec.key)  # least recently used first
            if kind == "ok" and isinstance(text, str):
                outcome: dict[str, Any] = {"ok": text}
            else:
                outcome = {"error": self.classify_thrown(warm, parse_report(text))}
            warm.job = None
            if warm.recycle or warm.temporary:
                if not warm.temporary:
                    self.warm.pop(warm.spec.key, None)
                warm.stopping = True
            final = self.finish_step(job, outcome)
            if not final:
                self.dispatch(job, warm)
            elif warm.stopping:
                self.give_to_main(None)
        except BaseException as exc:
            fatal(exc)

    def finish_step(self, job: Job, outcome: dict[str, Any]) -> bool:
        """Send the current step's outcome and move on; True when that was the answer."""
        failed = "error" in outcome
        final = job.index == len(job.steps) - 1 or (failed and job.stop_on_error)
        outcome["ms"] = round((time.perf_counter() - job.started) * 1000.0, 3)
        if final and self.warm.version != self.warm_reported:
            # The supervisor keeps the last list it got: sent only when it changed.
            outcome["warm"] = list(self.warm)
            self.warm_reported = self.warm.version
        self.current = None
        self.send(self.frame(job, "result" if final else "step", outcome))
        if final:
            return True
        if job.mode == "filter" and not failed:
            job.value = outcome["ok"]
        job.index += 1
        return False

    # -- the main thread -----------------------------------------------------------------
    def serve(self, layers: dict[str, Any]) -> None:
        self.send({"op": "ready", "pid": os.getpid(), "layers": layers})
        self.main_listen()
        self.loop.run_forever()

    def main_listen(self) -> None:
        """The main thread owns the channel and has nothing to do: wait for a frame."""
        self.main_busy = False
        self.loop.add_reader(self.reader.fd, self.main_readable)
        self.schedule_sweep()
        if self.reader.buffered():
            self.loop.call_soon(self.main_readable)
        elif self.idle_work_pending():
            self.loop.call_later(IDLE_WORK_DELAY, self.idle_work_when_listening)

    def idle_work_pending(self) -> bool:
        return bool(self.to_close) or (self.standby is None and self.want_standby)

    def idle_work_when_listening(self) -> None:
        """Work that would stall a call, done when no call has come for a moment: creating
        and closing runtimes hold the GIL for milliseconds, and every running call needs
        it to cross between JavaScript and Python."""
        if self.owner is not MAIN or self.main_busy or self.reader.buffered():
            return
        readable, _, _ = select.select([self.reader.fd], [], [], 0)
        if readable:
            return  # main_readable runs next
        self.data_now = None
        while self.to_close:
            self.close_warm(self.to_close.pop())
        self.prepare_standby()

    def main_readable(self) -> None:
        if self.main_busy or self.owner is not MAIN:
            return
        message = self.reader.pop()
        if message is None:
            try:
                self.reader.fill()
            except protocol.ProtocolError:
                self.shutdown()
            message = self.reader.pop()
            if message is None:
                return
        self.main_receive(message)

    def main_receive(self, item: Any) -> None:
        """Work handed to the main thread (it owns the channel from here)."""
        self.data_now = None
        self.loop.remove_reader(self.reader.fd)
        self.main_busy = True
        if item is None:  # quiet for a while, or a runtime stopped
            self.close_idle()
            self.main_listen()
            self.idle_work_when_listening()
        elif isinstance(item, Job):
            self.loop.create_task(self.load_and_dispatch(item))
        else:
            job = self.job_from(item)
            if job is None:
                if item.get("op") == "shutdown":
                    self.shutdown()
                os._exit(EXIT_PROTOCOL)  # job_from() accepts inspect: not reached
            elif job.mode == "inspect":
                self.loop.create_task(self.inspect(job))
            else:
                self.dispatch(job, None)

    def job_from(self, message: dict[str, Any]) -> Job | None:
        """A call frame as a Job; None for a frame the main thread handles (shutdown)."""
        op = message.get("op")
        call_id = message.get("id")
        if op == "shutdown":
            return None
        if op not in {"call", "inspect"} or not isinstance(call_id, str):
            os._exit(EXIT_PROTOCOL)
        try:
            if op == "inspect":
                spec = self.spec_from(message["spec"])
                return Job(call_id, [Step(spec.key, "", float(message["timeout"]))], "inspect", inspect_spec=spec)
            steps = [Step(str(k), str(h), float(t)) for k, h, t in message["steps"]]
            if "spec" in message:  # sent along when the supervisor saw it is cold here
                spec = self.spec_from(message["spec"])
                if spec.key != steps[0].key:
                    os._exit(EXIT_PROTOCOL)
                self.remember_spec(spec)
            mode = str(message.get("mode", "call"))
            if not steps or mode not in {"call", "action", "filter"} or any("\0" in s.hook for s in steps):
                os._exit(EXIT_PROTOCOL)
            return Job(
                call_id,
                steps,
                mode,
                args=str(message.get("args", "[]")),
                value=str(message.get("value", "null")),
                rest=str(message.get("rest", "[]")),
                stop_on_error=bool(message.get("stop", True)),
            )
        except (KeyError, TypeError, ValueError):
            os._exit(EXIT_PROTOCOL)

    async def load_and_dispatch(self, job: Job) -> None:
        """Load the runtime of ``job``'s current step, then hand the step to it. A load
        that fails answers that step; the chain goes on as it would after a failed call."""
        try:
            while True:
                key = job.step.key
                warm = self.warm.get(key)
                if warm is not None and not warm.dead:
                    self.dispatch(job, None)
                    return
                job.started = time.perf_counter()
                self.current = job
                try:
                    warm = await self.load_step(job)
                except CallFailed as exc:
                    if self.finish_step(job, {"error": exc.error}):
                        self.main_listen()
                        return
                    continue
                self.current = None
                self.owner = IN_TRANSIT
                warm.inbox.put(job)
                return
        except BaseException as exc:
            fatal(exc)

    async def load_step(self, job: Job) -> Warm:
        key = job.step.key
        spec = self.specs.get(key)
        if spec is None:
            self.send(self.frame(job, "need_spec", {"key": key}))
            spec = self.spec_from(self.receive("spec", job.call_id)["spec"])
            if spec.key != key:
                os._exit(EXIT_PROTOCOL)
            self.remember_spec(spec)
        self.specs.move_to_end(key)
        # Make room first: every runtime reserves address space under RLIMIT_DATA, and V8
        # aborts the process (no exception) when a reservation fails.
        while self.warm and (len(self.warm) >= int(self.options["warm_runtimes"]) or not self.room_for(spec.memory_mb)):
            await self.stop(self.warm.pop(next(iter(self.warm))))  # least recently used
        warm = await self.load(spec, job.step.timeout)
        self.forget_other_versions(spec)
        self.warm[key] = warm
        self.send(self.frame(job, "loaded", {"key": key}))
        return warm

    async def inspect(self, job: Job) -> None:
        try:
            assert job.inspect_spec is not None
            self.current = job
            job.started = time.perf_counter()
            try:
                warm = await self.load(job.inspect_spec, job.step.timeout, temporary=True)
            except CallFailed as exc:
                self.finish_step(job, {"error": exc.error})
                self.main_listen()
                return
            self.current = None
            self.owner = IN_TRANSIT
            warm.inbox.put(job)
        except BaseException as exc:
            fatal(exc)

    def on_park_done(self, warm: Warm, future: asyncio.Future[Any]) -> None:
        """A park loop ended (main thread): stopped on request, or V8 stopped it (heap
        limit, or the watchdog's terminate()). A step it was running is answered here."""
        self.data_now = None
        try:
            exc = future.exception() if not future.cancelled() else None
            job = warm.job
            if job is not None and job.running is warm:
                with STEP_LOCK:
                    unanswered = not job.answered
                    job.answered = True
            else:
                unanswered = False
            warm.dead = warm.dead or not warm.stopping
            if self.warm.get(warm.spec.key) is warm and (warm.dead or unanswered):
                del self.warm[warm.spec.key]
            if unanswered and job is not None:
                self.watchdog.disarm()
                self.limit_data(self.data_ceiling)
                warm.job = None
                if exc is None and not job.terminated:
                    error = {"kind": "internal", "message": "the runtime stopped unexpectedly"}
                else:
                    error = self.classify(exc, warm, terminated=job.terminated)
                self.owner = MAIN
                self.main_busy = True
                self.loop.remove_reader(self.reader.fd)
                final = self.finish_step(job, {"error": error})
                RESOLVED.set()
                if final:
                    self.main_listen()
                else:
                    self.loop.create_task(self.load_and_dispatch(job))
            elif self.owner is warm:  # it owned the channel when it stopped
                self.owner = MAIN
                self.main_listen()
            if warm.dead or warm.recycle or warm.stopping:
                # Terminated (halted, or stopped by V8 or the watchdog): its thread has
                # ended, closing it is quick; a bomb may have left memory behind.
                self.close_warm(warm)
            else:
                self.to_close.append(warm)  # closed when the process is quiet
        except BaseException as exc:
            fatal(exc)

    def shutdown(self) -> None:
        for key in list(self.warm):
            warm = self.warm.pop(key)
            warm.inbox.put(STOP)
        # os._exit: interpreter finalization with jsrun threads alive can abort.
        os._exit(0)

    # -- plugins -----------------------------------------------------------------
    def remember_spec(self, spec: Spec) -> None:
        self.specs[spec.key] = spec
        while len(self.specs) > SPEC_CACHE_SIZE:
            self.specs.popitem(last=False)

    def spec_from(self, data: dict[str, Any]) -> Spec:
        return Spec(
            key=str(data["key"]),
            slug=str(data["slug"]),
            source=str(data["source"]),
            config_json=str(data["config"]),
            memory_mb=int(data["memory_mb"]),
        )

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

    def call_data_limit(self, current: Warm | None, memory_mb: int = 0, *, now: int | None = None) -> int:
        """RLIMIT_DATA for one call (``None``: for creating a runtime of ``memory_mb``).

        Heap limits do not cover ArrayBuffer or string backing stores; one call runs per
        process at a time, so the process data limit bounds what a call may map: what the
        process holds now, *less what this plugin's runtime kept from its earlier calls*,
        plus 2 x its limit. Counting from the current size alone would let a plugin
        ratchet (keep 2 x its limit per call); counting from the size at start would be
        wrong too: measured, closing a runtime does not give its address space back.
        """
        if now is None:
            now = current_data_bytes()
        if current is None:
            return now + snapshot.runtime_reserve_mb(memory_mb) * MIB + CALL_SLACK
        return now - current.grown + 2 * current.spec.memory_mb * MIB + CALL_SLACK

    def room_for(self, memory_mb: int) -> bool:
        """Whether a new runtime of ``memory_mb`` and one call of it fit under the ceiling."""
        need = (snapshot.runtime_reserve_mb(memory_mb) + 2 * memory_mb) * MIB + CALL_SLACK
        return current_data_bytes() + need <= self.data_ceiling

    def new_runtime(self, memory_mb: int) -> Any:
        """A runtime restored from the snapshot, created under a data limit that leaves it
        exactly its reservation (a failure is a CallFailed, not an abort)."""
        if current_data_bytes() + snapshot.runtime_reserve_mb(memory_mb) * MIB + CALL_SLACK > self.data_ceiling:
            raise CallFailed({"kind": "memory", "message": "no room for another runtime in this sandbox process"})
        self.limit_data(self.call_data_limit(None, memory_mb))
        try:
            return self.factory.new_runtime(
                max_heap_size=memory_mb * MIB,
                max_serialization_bytes=int(self.options["max_result_bytes"]) * 2 + 4096,
            )
        except Exception:  # thread spawn refused under RLIMIT_DATA, etc.
            raise CallFailed(
                {"kind": "memory", "message": "could not start a runtime within the memory limit"}
            ) from None
        finally:
            self.limit_data(self.data_ceiling)

    def prepare_standby(self) -> None:
        """Create the standby runtime while nothing waits for it (main thread); wanted
        again after the next load."""
        self.want_standby = False
        if self.standby is not None or not self.room_for(self.standby_memory_mb):
            return
        if len(self.warm) >= int(self.options["warm_runtimes"]):
            return  # the next load evicts anyway; keep the address space for the warm ones
        try:
            runtime = self.new_runtime(self.standby_memory_mb)
        except CallFailed:
            return
        hold: queue.SimpleQueue[Any] = queue.SimpleQueue()
        ref = _WarmRef(self, None)
        self.bind_bridge(runtime, ref)
        runtime.bind_function("__plugins_standby", hold.get)
        function = runtime.eval("() => { __plugins_standby(); return 0; }")
        future = asyncio.ensure_future(function.call_async())
        self.standby = Standby(runtime, self.standby_memory_mb, hold, function, future, ref)

    def bind_bridge(self, runtime: Any, ref: _WarmRef) -> None:
        """The Python functions the bootstrap captures (it deletes their globals)."""
        runtime.bind_function("__plugins_host", ref.host)
        # Closures over the Warm would let the runtime's own thread drop the last reference
        # to the Runtime, which jsrun refuses (unsendable): bind through a holder.
        runtime.bind_function("__plugins_next", ref.next)
        runtime.bind_function("__plugins_exchange", ref.exchange)
        runtime.bind_function("__plugins_sleep", ref.sleep)
        runtime.bind_function("__plugins_random", random_bytes)
        runtime.bind_function("__plugins_url_source", snapshot.url_source)

    async def adopt_standby(self, memory_mb: int) -> Standby | None:
        """The standby runtime, unparked, if it has ``memory_mb``; None otherwise."""
        standby = self.standby
        if standby is None or standby.memory_mb != memory_mb:
            return None
        self.standby = None
        # The parked call must have returned before binding: bind_function holds the GIL
        # while it waits for the runtime thread, which needs it to leave hold.get.
        standby.hold.put(None)
        await standby.future
        return standby

    async def load(self, spec: Spec, timeout: float, *, temporary: bool = False) -> Warm:
        """A new runtime running ``spec``'s code, parked (main thread)."""
        # An inspection (validating a save) leaves the standby to the call that follows it.
        adopted = None
        if not temporary:
            self.standby_memory_mb = spec.memory_mb
            self.want_standby = True
            adopted = await self.adopt_standby(spec.memory_mb)
        runtime = adopted.runtime if adopted is not None else self.new_runtime(spec.memory_mb)
        warm = Warm(spec=spec, runtime=runtime, temporary=temporary)
        try:
            if adopted is not None:
                warm.handles.append(adopted.function)
                adopted.ref.warm = warm
            else:
                self.bind_bridge(runtime, _WarmRef(self, warm))
            source = bootstrap_source(
                config_json=spec.config_json,
                max_chars=int(self.options["max_result_bytes"]),
                max_depth=int(self.options["max_data_depth"]),
                memory_mb=spec.memory_mb,
            )
            try:
                warm.park = runtime.eval(self.factory.bootstrap_script(source))
            except Exception as exc:
                # Fail closed: the engine offers something the allowlist does not know.
                raise CallFailed(
                    {"kind": "internal", "message": f"sandbox bootstrap refused: {clean_text(str(exc), 500)}"}
                ) from None
            namespace = await self.load_source(warm, timeout)
            # Locals: the park loop's first next() (on the runtime's thread) clears warm.parked.
            warm.parked = parked = self.loop.create_future()
            park_call = warm.park.call_async() if namespace is None else warm.park.call_async(namespace)
            warm.park_future = park_future = asyncio.ensure_future(park_call)
            park_future.add_done_callback(lambda f: self.on_park_done(warm, f))
            # Until the park loop runs, its start needs this thread's event loop: anything
            # slow done here before (creating the standby) would delay the first call.
            await asyncio.wait({parked, park_future}, return_when=asyncio.FIRST_COMPLETED)
        except BaseException:
            self.close_warm(warm)
            raise
        warm.last_used = time.monotonic()
        return warm

    async def load_source(self, warm: Warm, timeout: float) -> Any:
        """Run the plugin's top-level code, as a classic script or as an ES module (see
        MODULE_SYNTAX_ERRORS). Returns None for a script; for a module, the entry module's
        function that returns the plugin module's namespace (for the park loop)."""
        spec, runtime = warm.spec, warm.runtime
        runtime.set_module_resolver(module_resolver(warm.refused_imports))
        if spec.module is not True:
            try:
                result = await self.run_top_level(warm, lambda: runtime.eval_async(spec.source), timeout)
            except CallFailed as exc:
                error = exc.error
                if not (
                    error.get("kind") == "script"
                    and error.get("name") == "SyntaxError"
                    and error.get("message") in MODULE_SYNTAX_ERRORS
                ):
                    raise
            else:
                spec.module = False
                warm.handles.append(result)  # may be a JsFunction: must not be collected early
                return None
            # V8 refused it as a script before running any of it: the runtime is clean.
            spec.module = True
        runtime.add_static_module(HOST_SPECIFIER, HOST_MODULE)
        runtime.add_static_module(PLUGIN_SPECIFIER, spec.source)
        runtime.add_static_module(ENTRY_SPECIFIER, ENTRY_MODULE)
        exports = await self.run_top_level(warm, lambda: runtime.eval_module_async(ENTRY_SPECIFIER), timeout)
        namespace = exports.get("default") if isinstance(exports, dict) else None
        warm.handles.append(namespace)  # a JsFunction: must not be collected early
        if not isinstance(namespace, jsrun.JsFunction):
            raise CallFailed({"kind": "internal", "message": "the module's entry did not load"})
        return namespace

    async def run_top_level(self, warm: Warm, start: Any, timeout: float) -> Any:
        """Run the plugin's top-level code (``start()`` returns a jsrun awaitable) under
        the time limit and the call's data limit."""
        state: dict[str, Any] = {"terminated": False}

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

    def classify(self, exc: BaseException | None, warm: Warm, terminated: bool) -> dict[str, Any]:
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
                (
                    (f.get("line_number"), f.get("column_number"))
                    for f in exc.frames or []
                    if f.get("file_name") in (SCRIPT_NAME, MODULE_NAME)
                ),
                (None, None),
            )
            return self.script_error(warm, name, message, exc.stack or "", position)
        if isinstance(exc, RuntimeError) and "Failed to load module" in text:
            return self.module_load_error(warm, text)
        if isinstance(exc, RuntimeError) and MODULE_THROWN in text:
            # The module's top-level code threw (with the bootstrap's rejection handler
            # installed, jsrun reports it when it asks for the namespace, as text).
            thrown = text.split(MODULE_THROWN, 1)[1].strip()
            first, _, stack = thrown.partition("\n")
            named = re.match(r"(?:Uncaught )?([A-Za-z_$][\w$]*): (.*)", first)
            name, message = (named.group(1), named.group(2)) if named else ("Error", first)
            match = FRAME.search(thrown)
            position = (int(match.group(1)), int(match.group(2))) if match else (None, None)
            return self.script_error(warm, name, message, thrown, position)
        if isinstance(exc, RuntimeError) and "serializ" in text.lower():
            return {"kind": "too_large", "message": "the value is too large to cross the sandbox boundary"}
        return {"kind": "internal", "message": f"{type(exc).__name__} in the sandbox"}

    def module_load_error(self, warm: Warm, text: str) -> dict[str, Any]:
        """A module that did not load (jsrun reports it as text): a refused import or a
        syntax error (also an import of a name plugin:host does not export), with its position."""
        if warm.refused_imports:
            return {
                "kind": "script",
                "name": "TypeError",
                "message": refused_import_message(warm.refused_imports[0]),
                "stack": "",
                "line": None,
                "column": None,
            }
        match = MODULE_SYNTAX_ERROR.search(text)
        if match is None:
            return {"kind": "internal", "message": "the module could not be loaded"}
        return self.script_error(warm, match.group(1), match.group(2), "", (int(match.group(3)), int(match.group(4))))

    def classify_thrown(self, warm: Warm, reported: dict[str, Any]) -> dict[str, Any]:
        """Classify an error the park loop caught and described (name, message, stack)."""
        stack = str(reported.get("stack") or "")
        match = FRAME.search(stack)
        position = (int(match.group(1)), int(match.group(2))) if match else (None, None)
        return self.script_error(
            warm, str(reported.get("name") or ""), str(reported.get("message") or ""), stack, position
        )

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
        if name == "__TimedOut":  # the run loop waited for a timer until the deadline
            return {"kind": "timeout", "message": "time limit exceeded"}
        cleaned = "\n".join(
            line.replace(SCRIPT_NAME, f"{warm.spec.slug}.js").replace(MODULE_NAME, f"{warm.spec.slug}.js")
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

    # -- warm runtime bookkeeping (main thread, or the channel's owner) -----------------------
    def forget_other_versions(self, spec: Spec) -> None:
        for key, warm in list(self.warm.items()):
            if warm.spec.slug == spec.slug and key != spec.key:
                del self.warm[key]
                warm.stopping = True
                warm.inbox.put(STOP)
        for key, other in list(self.specs.items()):
            if other.slug == spec.slug and key != spec.key:
                del self.specs[key]

    def next_idle_deadline(self) -> float | None:
        """When the least recently used warm runtime (the first: see respond()) goes idle."""
        for warm in self.warm.values():
            return warm.last_used + self.idle_seconds
        return None

    def schedule_sweep(self) -> None:
        if self.idle_timer is not None:
            self.idle_timer.cancel()
            self.idle_timer = None
        deadline = self.next_idle_deadline()
        if deadline is not None:
            self.idle_timer = self.loop.call_at(
                self.loop.time() + max(0.0, deadline - time.monotonic()), self.sweep_when_listening
            )

    def sweep_when_listening(self) -> None:
        self.idle_timer = None
        if self.owner is MAIN and not self.main_busy:
            self.close_idle()
            self.schedule_sweep()

    def close_idle(self) -> None:
        now = time.monotonic()
        for key, warm in list(self.warm.items()):
            if now - warm.last_used >= self.idle_seconds:
                del self.warm[key]
                warm.stopping = True
                warm.inbox.put(STOP)  # its park loop returns; on_park_done closes it

    async def stop(self, warm: Warm) -> None:
        """Stop a parked runtime's loop and close it (main thread, while it owns the channel)."""
        future = warm.park_future
        if future is not None and not future.done() and not warm.dead:
            warm.stopping = True
            warm.inbox.put(STOP)
            await asyncio.wait({future}, timeout=1.0)
        self.close_warm(warm)

    def close_warm(self, warm: Warm) -> None:
        if warm.runtime is None:
            return
        future = warm.park_future
        if future is not None and future.done() and not future.cancelled():
            future.exception()  # retrieved: no "exception was never retrieved" noise
        if future is not None and not future.done() and not warm.dead:
            warm.stopping = True
            warm.inbox.put(STOP)
            return  # on_park_done closes it once the loop has returned
        runtime, warm.runtime = warm.runtime, None
        try:
            runtime.close()
        except BaseException:
            pass  # closing a terminated runtime may raise; its thread is stopped either way
        # Handles are dropped only after close(): a finalizer on a closed runtime returns
        # at once, one on a busy open runtime would block this thread.
        warm.handles.clear()
        warm.park = None
        release_freed_memory()


class ImportRefused(Exception):
    """Raised by module_resolver: jsrun turns it into a rejected import() or a failed load."""


def refused_import_message(specifier: str) -> str:
    return f"cannot import {json.dumps(specifier)}: a plugin can import only {json.dumps(HOST_SPECIFIER)}"


def module_resolver(refused: list[str]) -> Any:
    """The module resolver of one runtime (jsrun calls it on the runtime's thread, for a
    static import while a module loads and for every import() at any time). It lets only
    the host API and our own entry -> plugin edge resolve (to jsrun's static modules);
    anything else is refused and remembered (the first few) for the load's error message.
    Never loads anything itself."""

    def resolve(specifier: Any, referrer: Any) -> None:
        if specifier == HOST_SPECIFIER:
            return None  # jsrun's static module (registered for module plugins only)
        if (specifier == ENTRY_SPECIFIER and referrer == ".") or (
            specifier == PLUGIN_SPECIFIER and referrer == STATIC_URL + ENTRY_SPECIFIER
        ):
            return None
        if len(refused) < 8:
            refused.append(clean_text(str(specifier), 200))
        raise ImportRefused(f"a plugin can import only {json.dumps(HOST_SPECIFIER)}")

    return resolve


class _WarmRef:
    """What a runtime's bound functions hold: the worker and its Warm (never the Runtime
    alone)."""

    __slots__ = ("worker", "warm")

    def __init__(self, worker: Worker, warm: Warm | None) -> None:
        self.worker = worker
        self.warm = warm

    def next(self) -> str:
        warm = self.warm
        if warm is None:  # a standby's bridge, called before adoption: nothing to run
            return ""
        self.worker.pin(warm)
        parked = warm.parked
        if parked is not None:
            warm.parked = None
            self.worker.loop.call_soon_threadsafe(_set_done, parked)
        return self.worker.next_request(warm)

    def host(self, name: Any, args_json: Any) -> str:
        return self.worker.host(name, args_json, self.warm)

    def exchange(self, kind: Any, text: Any, retained: Any) -> str:
        if self.warm is None:
            return ""
        return self.worker.exchange(self.warm, kind, text, retained)

    def sleep(self, ms: Any) -> bool:
        """Bound as ``__plugins_sleep``: the run loop waits for its next timer (see
        wait_for_timer)."""
        warm = self.warm
        if warm is None:
            return False
        return wait_for_timer(warm, ms)


def wait_for_timer(warm: Warm, ms: Any) -> bool:
    """Block this runtime's thread for ``ms`` milliseconds, the GIL released (no CPU), but
    never past the current step's deadline. True when the wait ended normally; False when
    the deadline came first or the watchdog woke it: the run loop then answers "time limit
    exceeded" and cancels its timers; the runtime lives on. The watchdog never terminates
    a runtime while it waits here (see Watchdog.run), and a terminated step never waits."""
    job = warm.job
    if job is None:
        return False
    try:
        wait = float(ms) / 1000.0
    except (TypeError, ValueError):
        wait = 0.0
    with STEP_LOCK:
        if job.terminated or job.answered or (job.wake is not None and job.wake.is_set()):
            return False
        remaining = job.deadline - time.monotonic()
        if remaining <= 0:
            return False
        if job.wake is None:
            job.wake = threading.Event()
        job.sleeping = True
    try:
        if wait >= remaining:
            job.wake.wait(remaining)
            return False
        return not job.wake.wait(wait) if wait > 0 else True
    finally:
        with STEP_LOCK:
            job.sleeping = False


def random_bytes(count: Any) -> bytes:
    """Bound as ``__plugins_random``: ``count`` bytes from the OS's CSPRNG (getrandom), for
    crypto.getRandomValues/randomUUID/subtle.generateKey (the bootstrap keeps a pool)."""
    try:
        n = int(count)
    except (TypeError, ValueError):
        return b""
    return os.urandom(min(max(n, 0), 65536))


def _set_done(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_result(None)


def terminate(warm: Warm) -> None:
    if warm.runtime is not None:
        warm.runtime.terminate()


_gil_ensure = ctypes.pythonapi.PyGILState_Ensure
_gil_ensure.restype = ctypes.c_int
_gil_release = ctypes.pythonapi.PyGILState_Release
_gil_release.argtypes = [ctypes.c_int]


def parse_report(text: Any) -> dict[str, Any]:
    try:
        reported = json.loads(text) if isinstance(text, str) else {}
    except ValueError:
        reported = {}
    return reported if isinstance(reported, dict) else {}


def fatal(exc: BaseException) -> None:
    """A bug in this process: a short note for the supervisor's log, then exit at once."""
    try:
        note = "".join(traceback.format_exception(exc, limit=-4))
        os.write(2, f"sandbox worker failed: {note}".encode("utf-8", "replace")[-4000:])
    finally:
        os._exit(EXIT_UNEXPECTED)


_STATM_FD: int | None = None


def current_data_bytes() -> int:
    """Data + stack size of this process (from /proc/self/statm, kept open: hot path)."""
    global _STATM_FD
    if _STATM_FD is None:
        _STATM_FD = os.open("/proc/self/statm", os.O_RDONLY)
    return int(os.pread(_STATM_FD, 256, 0).split()[5]) * PAGE_SIZE


_malloc_trim: Callable[[int], Any] | None
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


# -- coverage.py: only when the test suite is measured --------------------------------
# The supervisor passes the "coverage" option only when it runs under coverage.py
# (pool.coverage_option); a production sandbox never gets it, imports nothing of this and
# opens no file for writing.

_coverage: Any = None  # the coverage.Coverage measuring this process, if any


def start_coverage() -> None:  # pragma: no cover - runs before the measuring starts, saves after it stopped
    """Measure this process: run before :func:`main` (pool.BOOT_MEASURED), so before the
    OS layers, and only when the options carry "coverage".

    The data file is created now, empty, and written through the descriptor kept open:
    after the OS layers nothing can open a file for writing (nothing is allowed for it in
    Landlock or seccomp). coverage.py keeps its data in memory meanwhile (an in-memory
    SQLite database), and ``os._exit``, the only way this process ends, is wrapped to
    write it first, as SQLite's own file image (``serialize``), on whichever thread exits.
    A worker the supervisor kills (SIGKILL) loses its data. Runtime threads are jsrun's,
    which ``threading.settrace`` never reaches: :meth:`Worker.pin` calls
    :func:`trace_runtime_thread` on each."""
    global _coverage
    option = json.loads(sys.argv[1]).get("coverage")
    if not option:
        return
    import atexit
    import sqlite3
    from typing import NoReturn

    import coverage

    fd = os.open(str(option["data_file"]), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    cov = coverage.Coverage(
        data_file=None, branch=bool(option.get("branch")), source=[str(option["source"])], config_file=False
    )
    cov.start()
    _coverage = cov

    def image() -> bytes:
        data = cov.get_data()
        con = sqlite3.connect(data.data_filename(), uri=True)  # coverage.py's in-memory database
        try:
            return con.serialize()
        finally:
            con.close()

    # Once now, while the Python installation can still be read (after the switch to
    # SANDBOX_USER it may not be): every module the save needs gets imported.
    image()
    lock = threading.Lock()
    saved: list[bool] = []
    real_exit = os._exit

    def save() -> None:
        # A second thread exiting meanwhile waits for the first one's save (then exits).
        if not lock.acquire(timeout=10.0):
            return
        try:
            if saved:
                return
            saved.append(True)
            _soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
            resource.setrlimit(resource.RLIMIT_DATA, (hard, hard))  # a call's lower limit must not fail it
            cov.stop()
            view = memoryview(image())
            while view:
                view = view[os.write(fd, view) :]
        except BaseException as exc:  # the process is exiting: report it, never raise
            os.write(2, f"sandbox worker: coverage data not saved: {exc!r}\n".encode()[-500:])
        finally:
            lock.release()

    def exit_after_saving(status: int) -> NoReturn:
        save()
        real_exit(status)

    os._exit = exit_after_saving  # coverage.py's own "patch = _exit" does the same
    atexit.register(save)


def trace_runtime_thread() -> None:  # pragma: no cover - runs on a thread not traced yet
    """Under coverage only: trace this jsrun runtime thread (coverage.py's C tracer is set
    per thread, and ``threading`` installs it only on threads it starts itself; with
    ``sys.monitoring`` it needs nothing and ``threading.gettrace()`` is None)."""
    if _coverage is None:
        return
    hook = threading.gettrace()
    if hook is not None and sys.gettrace() is None:
        sys.settrace(hook)


def main() -> None:
    try:
        options = json.loads(sys.argv[1])
        limit_resources(int(options["data_limit_mb"]))
        current_data_bytes()  # opens /proc/self/statm before the OS layers close the file system
        for codec in ("ascii", "latin-1", "unicode_escape", "utf-8"):
            "".encode(codec)  # codecs import lazily; after the uid switch they could not be read
        # The web APIs' code, read now: after the uid switch, files under an unreadable
        # directory (a virtualenv in a 0700 home or temp dir) could not be read.
        snapshot.webapi_source()
        snapshot.url_source()
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
