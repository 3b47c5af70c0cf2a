"""Runtimes restored from a V8 startup snapshot, and the address space each one reserves.

Imported by the sandbox worker (``import snapshot``, the sandbox directory on sys.path)
and by the Django process (``plugins_app.sandbox.snapshot``: the capacity constants for
system check E006). Standard library only at import time; jsrun is imported when a
:class:`RuntimeFactory` is built, so the Django process never loads it through here (the
worker has imported jsrun long before, see below).

Why (jsrun 0.3.0, measured on a 2-core x86_64 machine; see bench/snapshot.py):
- ``jsrun.Runtime()`` costs 13-18 ms here (7-11 ms on a quieter day), one restored from
  a snapshot 4-9 ms (1.8-2.3 ms). Nearly all of what is left is V8 deserialising the
  snapshot (~650 KB; ``RuntimeConfig`` copies the bytes for each runtime): perf shows
  ``v8::internal::Deserializer`` and page faults, nothing a smaller snapshot could save.
- The runtimes are equivalent for plugin code: the global object's own keys and
  ``__bootstrap.core.ops`` of an empty-snapshot runtime equal a plain runtime's, because
  jsrun's bridge (``__jsrunCall*``, ``__host_op_*``, ``__jsrun_*``, ``ReadableStream``) is
  an extension whose JS runs again on every restore, and ``Deno``/``__bootstrap`` come
  from deno_core's own snapshot. ``bind_function``, ``eval``, ``eval_async``,
  ``call_async``, ``terminate`` and ``close`` behave the same; ``max_heap_size`` still
  ends a heap bomb with ``RuntimeTerminated("Heap limit exceeded")`` and the process
  lives; ``max_serialization_bytes`` still applies (tests/test_snapshot.py).
- So the bootstrap (bootstrap.js) still runs in every runtime, after restore and after
  the ``bind_function`` calls: nothing in the snapshot removes or replaces it.

What the snapshot holds: deno_core's own startup state (as in every runtime), console
methods replaced by no-ops (``SnapshotBuilder``'s default, the same thing
``enable_console=False`` does to every runtime), the web APIs (``webapi/dist/webapi.js``,
run once: its classes made, no plugin state, nothing random; the global
``__plugins_webapi`` it leaves is deleted by the bootstrap like every internal; measured
0.65 -> 1.97 MB of snapshot, 2.2 -> 4.3 MiB RSS and 68.6 -> 70.5 MiB VmData per runtime;
a factory whose snapshot lacks them evaluates the bundle in every new runtime), and, when
the factory is given the
bootstrap template, one *function* ``__plugins_bootstrap(settings)`` whose body is the
bootstrap, compiled but never run (called once with null, which returns at once).
:meth:`RuntimeFactory.bootstrap_script` turns the source the worker would evaluate into a
call of that function when, and only when, the source is exactly the template with one
settings literal spliced in; otherwise it returns the source unchanged (still correct,
only slower). The function is a configurable global, so the bootstrap deletes it with
every other name outside the allowlist, and its final check (own keys == allowlist)
fails the load if it ever survived. It saves compiling the bootstrap in every runtime
(measured 1.9 -> 1.2 ms and 1.5 -> 1.1 ms for the bootstrap's eval). Its frames in a
plugin's stack read ``eval at <anonymous> (<eval>:2:36), <anonymous>:L:C`` instead of
``<eval>:L:C``: both contain ``<eval>``, which the worker drops from plugin stacks. No
plugin code, no settings and no state of any runtime is ever in the snapshot: it is built
once per process before any plugin code exists.

Rules for the process (measured, jsrun 0.3.0):
- One kind of runtime per process: every runtime must come from the factory. Creating a
  snapshot runtime while a plain ``jsrun.Runtime()`` is open aborts the whole process with
  ``libc++ Hardening assertion __n < size() failed: vector[] index out of bounds``
  (reproduced with: snapshot built, plain runtime opened, snapshot runtime created; also
  snapshot runtime closed, plain opened, snapshot runtime created). Other orders passed,
  but nothing here relies on that.
- Build the factory AFTER ``oslayers.apply``: building the snapshot starts V8's platform
  worker threads (two "V8 DefaultWorke" threads on 2 cores, measured with
  /proc/self/task), and Landlock (ABI < 8) then refuses to apply ("the process already
  runs 3 threads"), so ``apply`` would skip it. Built after all layers (uid switch to
  nobody, no_new_privs, Landlock, seccomp), it works: strace shows the build only reads
  (/proc/self/cgroup, /sys/fs/cgroup/cpu/*, /proc/self/maps, /dev/urandom), makes an
  AF_UNIX socketpair and an eventfd (tokio), ``clone3`` for threads (seccomp: ENOSYS, glibc
  falls back to ``clone`` with CLONE_THREAD, allowed) and memory mappings; no file is
  written, no process started. It takes ~40-60 ms, mostly V8's one-time platform start
  that the first plain runtime would pay too: do it at worker start, not on the first call.
- ``RLIMIT_DATA`` must leave room for it (~20 MiB including V8's platform threads).
- Build it on the thread that creates the runtimes (the main thread): a SnapshotBuilder
  is thread-affine (``unsendable``) like a Runtime. The snapshot bytes are immutable; no
  runtime can change them.

Address space (VmData, which ``RLIMIT_DATA`` counts) of one runtime, measured per runtime
over 40 parked runtimes (bootstrap + greeter + one call each): 68.8 MiB restored from the
snapshot, 70.1 MiB plain; RSS 2.6 vs 3.5 MiB. Most of it is V8's code range, mapped
read-write-execute (pkeys) per isolate and sized from the heap limit: measured
``clamp(max_heap_size, 64 MiB, 512 MiB)`` + ~4.7 MiB (8 MiB heap: 68.7; 128: 132.7;
256: 260.7; 512 and 1024: 516.7). A runtime whose code range does not fit under
``RLIMIT_DATA`` is not an exception: V8 aborts the process ("Fatal process out of memory:
Failed to reserve virtual memory for CodeRange"). Closing a runtime gives its code range
back; malloc arenas of its thread stay (reused by the next runtime). The V8 heap a warm
runtime keeps between calls comes on top (bounded by the worker's recycling at its limit).
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import jsrun

MIB = 1024 * 1024

# -- address space ---------------------------------------------------------------------
CODE_RANGE_MIN_MB = 64  # V8's code range for heap limits up to 64 MiB
CODE_RANGE_MAX_MB = 512  # and its cap (heap limits of 512 MiB and more)
# Thread stack (2 MiB), tokio, isolate bookkeeping: measured 4.7 MiB (snapshot), 6.3 (plain).
RUNTIME_OVERHEAD_MB = 8
# The worker process itself: interpreter, jsrun, V8's platform threads and the snapshot
# (measured 34 MiB), its own helper threads' stacks, and the malloc arenas closed runtimes
# leave behind until the next runtime reuses them (measured up to ~120 MiB more).
WORKER_BASE_MB = 160
# Data a call may map beyond 2 x its plugin's limit (jsrun, Python, frames): the same as
# worker.CALL_SLACK.
CALL_SLACK_MB = 64
DEFAULT_RUNTIME_MEMORY_MB = 64  # conf DEFAULT_MEMORY_MB's default


def runtime_reserve_mb(memory_mb: int) -> int:
    """Address space (MiB of VmData) one runtime with a heap limit of ``memory_mb``
    reserves before running anything."""
    return min(max(int(memory_mb), CODE_RANGE_MIN_MB), CODE_RANGE_MAX_MB) + RUNTIME_OVERHEAD_MB


# What one idle runtime of a plugin with the default limit (64 MiB or less) reserves.
RUNTIME_RESERVE_MB = runtime_reserve_mb(DEFAULT_RUNTIME_MEMORY_MB)


def call_headroom_mb(memory_mb: int) -> int:
    """Data one call of a plugin with a limit of ``memory_mb`` may map (the worker's
    per-call RLIMIT_DATA allowance)."""
    return 2 * int(memory_mb) + CALL_SLACK_MB


def worker_data_needed_mb(
    warm_runtimes: int, max_memory_mb: int, *, runtime_memory_mb: int = DEFAULT_RUNTIME_MEMORY_MB
) -> int:
    """Peak data size of a worker holding ``warm_runtimes`` runtimes of plugins limited to
    ``runtime_memory_mb``, one of them (the one being called, maybe just created) of a
    plugin at ``max_memory_mb`` running a call that maps all it may."""
    each = runtime_reserve_mb(runtime_memory_mb)
    largest = max(runtime_reserve_mb(max_memory_mb) - each, 0)
    return WORKER_BASE_MB + int(warm_runtimes) * each + largest + call_headroom_mb(max_memory_mb)


def warm_runtimes_that_fit(
    data_limit_mb: int, max_memory_mb: int, *, runtime_memory_mb: int = DEFAULT_RUNTIME_MEMORY_MB
) -> int:
    """How many warm runtimes a worker with ``RLIMIT_DATA`` = ``data_limit_mb`` can hold
    (see :func:`worker_data_needed_mb`); 0 when not even one call of a plugin at
    ``max_memory_mb`` fits."""
    room = int(data_limit_mb) - worker_data_needed_mb(0, max_memory_mb, runtime_memory_mb=runtime_memory_mb)
    if room < runtime_reserve_mb(runtime_memory_mb):
        return 0
    return room // runtime_reserve_mb(runtime_memory_mb)


# -- the factory -----------------------------------------------------------------------
BOOTSTRAP_FUNCTION = "__plugins_bootstrap"  # a global until the bootstrap deletes it
# The web APIs (URL, TextEncoder, crypto, timers...; built by webapi/build.mjs, committed).
# Run once in the snapshot builder: every runtime is restored with them made, and the
# bootstrap installs them from the global WEBAPI_GLOBAL, which it then deletes.
WEBAPI_PATH = Path(__file__).resolve().parent / "webapi" / "dist" / "webapi.js"
WEBAPI_GLOBAL = "__plugins_webapi"


@lru_cache(maxsize=1)
def webapi_source() -> str:
    """The web API bundle (a classic script defining ``__plugins_webapi``)."""
    return WEBAPI_PATH.read_text(encoding="utf-8")


# URL/URLSearchParams (whatwg-url with its IDNA tables, ~290 KB): not in the snapshot,
# where every runtime's heap would keep it; handed to a runtime the first time it uses URL
# (bound as __plugins_url_source). Read once per worker, when its factory is built.
URL_PATH = WEBAPI_PATH.with_name("url.js")


@lru_cache(maxsize=1)
def url_source() -> str:
    """The URL classes' script (webapi/dist/url.js), for ``__plugins_url_source``."""
    return URL_PATH.read_text(encoding="utf-8")  # ASCII; "ascii" would import a codec after Landlock


def _webapi_definition(source: str) -> str:
    """The bundle inside try/catch: a SnapshotBuilder script that throws aborts the process."""
    return f"try {{\n{source}\n}} catch (e) {{\n  delete globalThis.{WEBAPI_GLOBAL};\n}}\n"


SETTINGS_MARKER = "__SETTINGS__"  # where bootstrap_source() splices the settings literal
SETTINGS_PARAMETER = "__plugins_settings"
SCRIPT_NAME = "<eval>"  # the name jsrun gives eval'd scripts; the worker drops these frames from stacks


def _bootstrap_definition(template: str) -> str | None:
    """A script defining ``__plugins_bootstrap(settings)``: the bootstrap as a function of
    its settings, compiled (called once with null, which returns at once) but never run.

    The function is made with ``new Function`` inside try/catch: jsrun 0.3.0 aborts the
    whole process (V8 "Cannot create a handle without a HandleScope") when a
    ``SnapshotBuilder`` script throws, e.g. on a syntax error should the template stop
    being one expression. None when the template has no settings marker.
    """
    if SETTINGS_MARKER not in template or SETTINGS_PARAMETER in template:
        return None
    body = template.replace(SETTINGS_MARKER, SETTINGS_PARAMETER).rstrip()
    if body.endswith(";"):
        body = body[:-1]
    function_body = f'"use strict";\nif ({SETTINGS_PARAMETER} === null) return null;\nreturn (\n{body}\n);\n'
    return (
        "try {\n"
        f"  globalThis.{BOOTSTRAP_FUNCTION} = new Function({json.dumps(SETTINGS_PARAMETER)}, {json.dumps(function_body)});\n"
        f"  globalThis.{BOOTSTRAP_FUNCTION}(null);\n"
        "} catch (e) {\n"
        f"  delete globalThis.{BOOTSTRAP_FUNCTION};\n"
        "}\n"
    )


class RuntimeFactory:
    """Builds one snapshot (once per worker process) and restores runtimes from it.

    ``bootstrap_template``: the bootstrap's source with ``__SETTINGS__`` where the settings
    go (``worker.BOOTSTRAP_JS``); it is compiled into the snapshot as a function, and
    :meth:`bootstrap_script` then serves calls of it. None: an empty snapshot.
    """

    def __init__(self, bootstrap_template: str | None = None) -> None:
        import jsrun  # already imported by the worker before its OS layers

        self._jsrun = jsrun
        self.runtimes_created = 0
        self.template: str | None = None
        builder = jsrun.SnapshotBuilder()  # enable_console=False: console methods are no-ops
        # The web APIs first: the bootstrap needs them (see WEBAPI_PATH).
        self.webapi = webapi_source()
        url_source()  # read now: the worker's file access may be narrowed later
        builder.execute_script(SCRIPT_NAME, _webapi_definition(self.webapi))
        definition = _bootstrap_definition(bootstrap_template) if bootstrap_template is not None else None
        if definition is not None:
            builder.execute_script(SCRIPT_NAME, definition)
        self.snapshot: bytes = builder.build()
        self.webapi_in_snapshot = False
        # One restore now, at worker start: proves the snapshot restores before a call
        # needs it, pays the first restore's extra cost, and says whether the bootstrap
        # definition compiled (a builder cannot be asked).
        probe = jsrun.Runtime(
            jsrun.RuntimeConfig(snapshot=self.snapshot, max_heap_size=CODE_RANGE_MIN_MB * MIB, enable_console=False)
        )
        try:
            if definition is not None and probe.eval(f"typeof {BOOTSTRAP_FUNCTION}") == "function":
                self.template = bootstrap_template
            self.webapi_in_snapshot = probe.eval(f"typeof {WEBAPI_GLOBAL}") == "object"
        finally:
            probe.close()

    @property
    def precompiled(self) -> bool:
        """Whether the bootstrap is compiled into the snapshot."""
        return self.template is not None

    def new_runtime(self, *, max_heap_size: int, max_serialization_bytes: int) -> jsrun.Runtime:
        """Like ``jsrun.Runtime(jsrun.RuntimeConfig(max_heap_size=..., max_serialization_bytes=...,
        enable_console=False))``, restored from the snapshot. Raises what ``jsrun.Runtime``
        raises (e.g. its thread could not start under RLIMIT_DATA); the caller must leave
        ``runtime_reserve_mb(max_heap_size // MIB)`` MiB of room under RLIMIT_DATA, or V8 aborts the process."""
        config = self._jsrun.RuntimeConfig(
            snapshot=self.snapshot,
            max_heap_size=max_heap_size,
            max_serialization_bytes=max_serialization_bytes,
            enable_console=False,
        )
        runtime = self._jsrun.Runtime(config)
        self.runtimes_created += 1
        if not self.webapi_in_snapshot:  # it did not compile into the snapshot: slower, same result
            runtime.eval(self.webapi)
        return runtime

    def bootstrap_script(self, source: str) -> str:
        """The script to evaluate for the bootstrap ``source`` (the template with one
        settings literal spliced in at every marker): a call of the precompiled function
        with that literal, or ``source`` itself if it is not exactly that."""
        template = self.template
        if template is None:
            return source
        count = template.count(SETTINGS_MARKER)
        grown = len(source) - len(template)
        if grown % count:
            return source
        length = grown // count + len(SETTINGS_MARKER)
        start = template.index(SETTINGS_MARKER)
        settings = source[start : start + length]
        if length <= 0 or template.replace(SETTINGS_MARKER, settings) != source:
            return source
        return f"{BOOTSTRAP_FUNCTION}({settings})"
