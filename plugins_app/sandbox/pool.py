"""Supervisor side of the sandbox: a pool of worker processes owned by the Django process.

A calling thread checks a worker out exclusively, holds the whole conversation for one
call (including host calls, which it answers itself, with the caller's DB connection and
transaction), then checks the worker back in. No jsrun object ever exists in the Django process.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import secrets
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver

from .. import conf
from ..exceptions import (
    HookNotFound,
    PluginBusy,
    PluginCrashed,
    PluginError,
    PluginLimitExceeded,
    PluginMemoryError,
    PluginPermissionDenied,
    PluginResultError,
    PluginScriptError,
    PluginTimeout,
)
from . import protocol
from .stderr import StderrDrain

logger = logging.getLogger("plugins_app.sandbox")

SANDBOX_DIR = Path(__file__).resolve().parent
MIB = 1024 * 1024
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
POLL_SECONDS = 0.05
# Exit code of a worker whose runtime would not stop after terminate() (see worker.run).
EXIT_STUCK = 3
BOOT = f"import sys; sys.path.insert(0, {str(SANDBOX_DIR)!r}); import worker; worker.main()"
# Under coverage only (coverage_option): the worker measures itself from before main().
BOOT_MEASURED = BOOT.replace("worker.main()", "worker.start_coverage(); worker.main()")


def scrubbed_env() -> dict[str, str]:
    """The whole environment of a sandbox process: nothing inherited, no secrets."""
    return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}


def coverage_option() -> dict[str, Any] | None:
    """What a worker needs to measure its own code (worker.start_coverage) when this
    process runs under coverage.py (``pytest --cov``, ``coverage run``); None otherwise,
    as always in production. The worker creates ``data_file`` before its OS layers apply
    and writes it when it exits; ``coverage combine`` reads it like any parallel data file."""
    coverage = sys.modules.get("coverage")  # never imported here: only looked for
    current = getattr(getattr(coverage, "Coverage", None), "current", lambda: None)()
    if current is None:
        return None
    data_file = os.path.abspath(str(current.get_option("run:data_file")))
    return {
        "data_file": f"{data_file}.sandbox.{os.getpid()}.{secrets.token_hex(6)}",
        "branch": bool(current.get_option("run:branch")),
        "source": str(SANDBOX_DIR),
    }


class _Deadline(Exception):
    pass


class _RssExceeded(Exception):
    pass


class _Violation(Exception):
    """The worker sent something no honest worker sends."""


class _SendFailed(Exception):
    """The request could not be written: the worker was gone before it read anything."""


class WorkerProcess:
    """One sandbox process and the channel to it. Used by one thread at a time.

    The channel is a pair of pipes on descriptors of their own (never fds 0-2): the
    worker's stdin and stdout are /dev/null, its stderr is drained by :class:`StderrDrain`.
    """

    def __init__(self, options: dict[str, Any]) -> None:
        self.rss_limit = int(options["rss_limit_mb"]) * MIB
        self.warm: set[str] = set()
        self.layers: dict[str, Any] = {}
        # RSS when the call's own code started (after any cold load): the base for telling
        # a memory bomb from a plain runaway loop when the deadline kills the worker.
        self.rss_at_start = 0
        to_worker_r, to_worker_w = os.pipe()
        from_worker_r, from_worker_w = os.pipe()
        self.coverage = options["coverage"] if "coverage" in options else coverage_option()
        boot = BOOT if self.coverage is None else BOOT_MEASURED
        child_options = dict(options, in_fd=to_worker_r, out_fd=from_worker_w, parent_pid=os.getpid())
        if self.coverage is not None:
            child_options["coverage"] = self.coverage
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-I", "-c", boot, json.dumps(child_options)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                pass_fds=(to_worker_r, from_worker_w),
                env=scrubbed_env(),
                cwd="/",
                close_fds=True,
                start_new_session=True,  # a Ctrl-C meant for runserver must not hit workers
            )
        except BaseException:
            for fd in (to_worker_r, to_worker_w, from_worker_r, from_worker_w):
                os.close(fd)
            raise
        os.close(to_worker_r)
        os.close(from_worker_w)
        self.in_fd = to_worker_w
        self.reader = protocol.FrameReader(from_worker_r)
        assert self.proc.stderr is not None
        self.stderr = StderrDrain(os.dup(self.proc.stderr.fileno()), self.proc.pid)
        self.proc.stderr.close()
        deadline = time.monotonic() + float(options["start_timeout"])
        try:
            hello = self.recv(deadline, watch_rss=False)
        except Exception:
            self.kill()
            raise
        if hello.get("op") != "ready" or "id" in hello:
            self.kill()
            raise protocol.ProtocolError("unexpected greeting from the sandbox")
        layers = hello.get("layers")
        self.layers = layers if isinstance(layers, dict) else {}

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def quiet(self) -> bool:
        """True when nothing is buffered or waiting on the channel (between calls)."""
        if self.reader.buffered():
            return False
        readable, _, _ = select.select([self.reader.fd], [], [], 0)
        return not readable

    def rss(self) -> int:
        try:
            with open(f"/proc/{self.proc.pid}/statm", "rb") as fh:
                return int(fh.read().split()[1]) * PAGE_SIZE
        except (OSError, ValueError, IndexError):
            return 0

    def send(self, message: dict[str, Any]) -> None:
        try:
            protocol.write_message(self.in_fd, message)
        except OSError as exc:
            raise _SendFailed(str(exc)) from None

    def recv(self, deadline: float, *, watch_rss: bool = True) -> dict[str, Any]:
        """Next message from the worker; watches the deadline and the RSS cap meanwhile."""
        while True:
            message = self.reader.pop()
            if message is not None:
                return message
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _Deadline()
            readable, _, _ = select.select([self.reader.fd], [], [], min(remaining, POLL_SECONDS))
            if readable:
                self.reader.fill()
                continue
            rss = self.rss()
            if not self.rss_at_start:
                self.rss_at_start = rss
            if watch_rss and self.rss_limit and rss > self.rss_limit:
                raise _RssExceeded()

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self._reap()

    def close(self) -> None:
        """Ask the worker to exit; kill it if it does not within a second."""
        if self.proc.poll() is None:
            try:
                self.send({"op": "shutdown"})
                self.proc.wait(timeout=1.0 if self.coverage is None else 10.0)  # coverage: it saves first
            except (_SendFailed, subprocess.TimeoutExpired):
                pass
        self.kill()

    def died_of_memory(self) -> bool:
        """After the worker exited: did it report an allocation failure on its way out, or
        abort without a word (V8 aborts silently when an allocation fails under the
        call's data limit, measured; a panic or a failed assertion prints first)?"""
        self.stderr.wait(0.5)
        if self.stderr.reported_out_of_memory():
            return True
        return self.proc.returncode == -signal.SIGABRT and not self.stderr.tail

    def _reap(self) -> None:
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            logger.error("sandbox worker %s did not exit after SIGKILL", self.proc.pid)
        for fd in (self.in_fd, self.reader.fd):
            try:
                os.close(fd)
            except OSError:
                pass
        self.in_fd = self.reader.fd = -1
        if self.coverage is not None:  # killed before it saved: no empty data file for `coverage combine`
            try:
                if os.path.getsize(self.coverage["data_file"]) == 0:
                    os.unlink(self.coverage["data_file"])
            except OSError:
                pass


def _options() -> dict[str, Any]:
    return {
        "data_limit_mb": conf.get("WORKER_DATA_LIMIT_MB"),
        "rss_limit_mb": conf.get("WORKER_RSS_LIMIT_MB"),
        "warm_runtimes": conf.warm_runtimes_per_worker(),
        "idle_seconds": conf.get("RUNTIME_IDLE_SECONDS"),
        "max_result_bytes": conf.get("MAX_RESULT_BYTES"),
        "max_host_args_chars": conf.get("MAX_ARGS_BYTES"),
        "max_log_lines": conf.get("MAX_LOG_LINES"),
        "default_memory_mb": conf.get("DEFAULT_MEMORY_MB"),
        "max_log_line_chars": conf.get("MAX_LOG_LINE_CHARS"),
        "start_timeout": conf.get("WORKER_START_TIMEOUT_SECONDS"),
        "max_data_depth": conf.get("MAX_DATA_DEPTH"),
        "layers": {
            "seccomp": bool(conf.get("SANDBOX_SECCOMP")),
            "landlock": bool(conf.get("SANDBOX_LANDLOCK")),
            "user": conf.get("SANDBOX_USER"),
        },
    }


class SandboxPool:
    """A bounded set of worker processes, started lazily, checked out one call at a time."""

    def __init__(self, size: int, options: dict[str, Any]) -> None:
        self.size = max(1, int(size))
        self.options = options
        self._cond = threading.Condition()
        self._idle: list[WorkerProcess] = []
        self._count = 0
        self._closed = False
        self.layers: dict[str, Any] = {}
        self._busy: set[WorkerProcess] = set()
        # Warm runtimes one sandbox holds: past it, new plugins go to another sandbox.
        self.capacity = int(options.get("warm_runtimes") or 1)

    def checkout(self, prefer_keys: list[str] | str | None, timeout: float, *, overflow: bool = False) -> WorkerProcess:
        """A worker for one call: the idle one where most of ``prefer_keys`` (the plugin
        versions the call runs) are warm; if none is, the idle one with the fewest warm
        runtimes, or a new one while below ``size`` when that one is full (plugins spread
        over workers instead of evicting each other); else wait up to ``timeout``. With ``overflow`` a new worker is started instead of
        waiting; it is stopped when it is checked in while the pool is above its size."""
        keys = [prefer_keys] if isinstance(prefer_keys, str) else list(prefer_keys or ())
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self._closed:
                    raise PluginCrashed("the sandbox pool is shut down")
                if self._idle:
                    best, score = len(self._idle) - 1, -1
                    for i in range(len(self._idle) - 1, -1, -1):  # latest first: warmest caches
                        warm = self._idle[i].warm
                        found = sum(1 for k in keys if k in warm)
                        if found > score:
                            best, score = i, found
                    if keys and not score:
                        # Warm nowhere idle: the idle sandbox with the fewest warm runtimes,
                        # unless it is full and the pool may start another (spreading).
                        best = min(range(len(self._idle)), key=lambda i: (len(self._idle[i].warm), -i))
                        full = len(self._idle[best].warm) + len(keys) > self.capacity
                        if full and self._count < self.size:
                            self._count += 1
                            break
                    worker = self._idle.pop(best)
                    if not worker.quiet():
                        # Dead (EOF), or wrote to its channel between calls: replaced.
                        self._drop_idle(worker)
                        continue
                    self._busy.add(worker)
                    return worker
                if self._count < self.size or overflow:
                    self._count += 1
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PluginBusy(f"no sandbox process became free within {timeout:g} s")
                self._cond.wait(remaining)
        try:
            worker = self._start()
        except Exception as exc:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            logger.error("could not start a sandbox worker: %s", exc)
            raise PluginCrashed("could not start a sandbox process; see the server log") from None
        with self._cond:
            self._busy.add(worker)
        return worker

    def _start(self) -> WorkerProcess:
        """A new worker; one that dies while starting is retried once."""
        try:
            worker = WorkerProcess(self.options)
        except (protocol.ProtocolError, _Deadline) as exc:
            logger.warning("a sandbox worker died while starting (%s); retrying once", exc)
            worker = WorkerProcess(self.options)
        self.layers = worker.layers
        return worker

    def _reap_idle(self) -> None:
        """Drop idle workers that died (OOM killer, an operator's kill) or that wrote to the
        channel between calls (nothing legitimate does): they are replaced quietly."""
        for worker in [w for w in self._idle if not w.alive() or not w.quiet()]:
            self._idle.remove(worker)
            self._drop_idle(worker)

    def _drop_idle(self, worker: WorkerProcess) -> None:
        """Forget a worker taken out of the idle list: it died or broke protocol."""
        if worker.alive():
            try:  # EOF from a worker that is exiting right now is a death, not a frame
                worker.proc.wait(timeout=0.05)
            except subprocess.TimeoutExpired:
                pass
        if worker.alive():
            logger.warning("sandbox worker %s wrote to its channel between calls; killed", worker.pid)
        else:
            logger.warning(
                "idle sandbox worker %s died (exit %s); it is replaced on demand",
                worker.pid,
                worker.proc.returncode,
                extra={"sandbox_pid": worker.pid},
            )
        self._count -= 1
        worker.kill()

    def layers_report(self) -> dict[str, Any]:
        """The OS layers the most recently started worker reported (empty before the first)."""
        return dict(self.layers)

    def checkin(self, worker: WorkerProcess, healthy: bool) -> None:
        with self._cond:
            self._busy.discard(worker)
        # Not alive() (a waitpid per call): a worker that died now shows EOF at checkout.
        if healthy and not worker.reader.buffered():
            with self._cond:
                if not self._closed and self._count <= self.size:
                    self._idle.append(worker)
                    self._cond.notify()
                    return
        worker.kill()
        with self._cond:
            self._count -= 1
            self._cond.notify()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._count -= len(idle)
            self._cond.notify_all()
        for worker in idle:
            worker.close()

    def worker_pids(self) -> list[int]:
        with self._cond:
            self._reap_idle()
            return [w.pid for w in self._idle]

    def _busy_pids(self) -> list[int]:
        """Pids of the workers running a call now (for tests that kill one mid-call)."""
        with self._cond:
            return [w.pid for w in self._busy]

    def state(self) -> dict[str, Any]:
        """Counts for ``plugins doctor``: size, started, idle (and their pids)."""
        with self._cond:
            self._reap_idle()
            return {
                "size": self.size,
                "started": self._count,
                "idle": [w.pid for w in self._idle],
                "busy": [w.pid for w in self._busy],
            }


_pool: SandboxPool | None = None
_pool_pid: int | None = None
_pool_lock = threading.Lock()


def get_pool() -> SandboxPool:
    """The process's pool; a forked child (gunicorn --preload) gets a fresh one."""
    global _pool, _pool_pid
    pool = _pool
    if pool is not None and _pool_pid == os.getpid():
        return pool
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool = SandboxPool(conf.get("POOL_SIZE"), _options())
            _pool_pid = os.getpid()
        return _pool


def shutdown_pool() -> None:
    """Stop every idle worker of this process (busy ones are killed at check-in)."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None and _pool_pid == os.getpid():
        pool.close()


atexit.register(shutdown_pool)


@receiver(setting_changed)
def _reset_pool(*, setting: str, **kwargs: Any) -> None:
    if setting == "PLUGINS_APP":
        shutdown_pool()


# -- one call, or a chain of calls ------------------------------------------------------

HostHandler = Callable[[str, str], str]
# Receives a step's buffered log lines ([level, text] pairs) and how many were dropped.
LogHandler = Callable[[list[list[str]], int], None]


@dataclass
class Invocation:
    """Everything the supervisor needs to run one hook call."""

    slug: str
    key: str
    hook: str
    args_json: str
    timeout: float
    memory_mb: int
    spec_loader: Callable[[], dict[str, Any]]
    host: HostHandler
    # A call made while this thread already holds a worker (a hook called from a host
    # call): it may start a worker beyond POOL_SIZE instead of waiting for one, since
    # waiting could wait on itself. MAX_HOOK_DEPTH bounds how many such workers exist.
    nested: bool = False
    # Log lines the plugin wrote (buffered in the sandbox, sent with the next frame).
    # None: each line is passed to ``host("log", ...)``, as if the plugin had called it.
    logs: LogHandler | None = None


@dataclass
class StepResult:
    """One step of a chain: its result as JSON text, or its error; ``ms`` in the sandbox."""

    text: str | None = None
    error: PluginError | None = None
    ms: float = 0.0


class _StepFailed(Exception):
    """The conversation broke during step ``index``: ``error`` is that step's outcome."""

    def __init__(self, index: int, error: PluginError) -> None:
        super().__init__(str(error))
        self.index = index
        self.error = error


def invoke(inv: Invocation) -> str:
    """Run ``inv`` in a sandbox process; return the hook's result as JSON text."""
    (result,) = run_chain([inv], mode="call", args_json=inv.args_json, nested=inv.nested)
    assert result is not None
    if result.error is not None:
        raise result.error
    assert result.text is not None
    return result.text


def run_chain(
    steps: list[Invocation],
    *,
    mode: str,
    args_json: str = "[]",
    value_json: str = "null",
    rest_json: str = "[]",
    stop_on_error: bool = True,
    nested: bool = False,
) -> list[StepResult | None]:
    """Run ``steps`` (each one plugin's hook) in order in one conversation with one sandbox.

    ``mode`` "call" or "action": every step gets ``args_json``. "filter": each step gets
    ``[value, *rest]`` where value is the previous successful step's result (first:
    ``value_json``); a failed step passes its value on. ``stop_on_error``: the chain ends
    at the first failure. Every step keeps its own time limit, host context and log.

    Returns one entry per step: its :class:`StepResult`, or None for a step that did not
    run (after ``stop_on_error``, or after the sandbox failed during an earlier step:
    that step's entry holds the error, and the caller may run the rest again).
    """
    message: dict[str, Any] = {
        "op": "call",
        "mode": mode,
        "steps": [[s.key, s.hook, s.timeout] for s in steps],
        "stop": stop_on_error,
    }
    if mode == "filter":
        message["value"], message["rest"] = value_json, rest_json
    else:
        message["args"] = args_json
    results: list[StepResult | None] = [None] * len(steps)
    try:
        _converse(steps, message, results, nested=nested, keys=[s.key for s in steps])
    except _StepFailed as exc:
        results[exc.index] = StepResult(error=exc.error)
    return results


def inspect(spec: dict[str, Any], timeout: float, host: HostHandler) -> str:
    """Load ``spec`` in a fresh runtime and return the inspection JSON (hooks or error)."""
    step = Invocation(
        slug=spec["slug"],
        key=str(spec["key"]),
        hook="",
        args_json="[]",
        timeout=timeout,
        memory_mb=int(spec["memory_mb"]),
        spec_loader=lambda: spec,
        host=host,
    )
    results: list[StepResult | None] = [None]
    try:
        _converse([step], {"op": "inspect", "spec": spec, "timeout": timeout}, results, nested=False, keys=[])
    except _StepFailed as exc:
        raise exc.error from None
    result = results[0]
    assert result is not None
    if result.error is not None:
        raise result.error
    assert result.text is not None
    return result.text


def _converse(
    steps: list[Invocation], message: dict[str, Any], results: list[StepResult | None], *, nested: bool, keys: list[str]
) -> None:
    """One conversation with one worker, filling ``results``.

    The request is re-sent to a fresh worker only if it could not be written at all:
    once it is in the channel a plugin may have run, and it must run at most once.
    """
    pool = get_pool()
    checkout_timeout = conf.get("CHECKOUT_TIMEOUT_SECONDS")
    call_id = secrets.token_hex(12)
    message = dict(message, id=call_id)
    first = steps[0]
    try:
        worker = pool.checkout(keys, checkout_timeout, overflow=nested)
    except PluginError as exc:
        raise _StepFailed(0, exc) from None
    if first.key not in worker.warm and message["op"] == "call":
        # Cold here: the spec goes with the call instead of being asked for (a round trip).
        try:
            message = dict(message, spec=first.spec_loader())
        except PluginError:
            pass  # asked for, and reported, as usual
    try:
        worker.send(message)
    except _SendFailed:
        # Dead before it read anything (killed while idle and not yet reaped): nothing ran.
        pool.checkin(worker, False)
        worker = pool.checkout(keys, checkout_timeout, overflow=nested)
        try:
            worker.send(message)
        except _SendFailed:
            pool.checkin(worker, False)
            error = PluginCrashed(
                f"the sandbox process for plugin {first.slug!r} could not be reached", slug=first.slug
            )
            raise _StepFailed(0, error) from None
    healthy = False
    try:
        _serve(worker, call_id, steps, results)
        healthy = True
    finally:
        pool.checkin(worker, healthy)


def _pass_logs(step: Invocation, frame: dict[str, Any]) -> None:
    lines = frame.get("logs")
    if lines is None:
        return
    dropped = frame.get("dropped", 0)
    if (
        not isinstance(lines, list)
        or not isinstance(dropped, int)
        or not all(isinstance(x, list) and len(x) == 2 and all(isinstance(y, str) for y in x) for x in lines)
    ):
        raise _Violation("malformed log lines")
    if step.logs is not None:
        step.logs(lines, dropped)
    else:
        for line in lines:
            step.host("log", protocol.dumps_text(line))


def _outcome(step: Invocation, frame: dict[str, Any]) -> StepResult:
    ms = frame.get("ms")
    ms = float(ms) if isinstance(ms, int | float) else 0.0
    if "error" in frame:
        error = frame["error"]
        return StepResult(
            error=error_from(
                step.slug, error if isinstance(error, dict) else {}, timeout=step.timeout, memory_mb=step.memory_mb
            ),
            ms=ms,
        )
    text = frame.get("ok")
    if not isinstance(text, str):
        raise _Violation("a result that is not text")
    return StepResult(text=text, ms=ms)


def _serve(worker: WorkerProcess, call_id: str, steps: list[Invocation], results: list[StepResult | None]) -> None:
    """Serve the worker's frames for call ``call_id`` until its result, filling ``results``.

    Frames carry the index of the step they belong to, which must be the step running
    now (steps run in order). Any frame of another call or step, an unknown op, or bytes
    after the result kill the worker (it is never checked back in) and fail the step
    running, as :class:`PluginCrashed` (raised as :class:`_StepFailed`).
    """
    grace = conf.get("SUPERVISOR_GRACE_MS") / 1000.0
    worker.rss_at_start = 0
    index = 0
    step = steps[0]
    try:
        deadline = time.monotonic() + step.timeout + grace
        while True:
            reply = worker.recv(deadline)
            if reply.get("id") != call_id:
                raise _Violation("a frame that does not belong to this call")
            if reply.get("i", 0) != index:
                raise _Violation("a frame of another step")
            op = reply.get("op")
            if op == "host":
                name, args = reply.get("name"), reply.get("args")
                if not isinstance(name, str) or not isinstance(args, str):
                    raise _Violation("a malformed host call")
                _pass_logs(step, reply)
                worker.send({"op": "host_result", "id": call_id, "reply": step.host(name, args)})
            elif op == "need_spec":
                if reply.get("key", step.key) != step.key:
                    raise _Violation("a spec request for another plugin")
                worker.send({"op": "spec", "id": call_id, "spec": step.spec_loader()})
                deadline = time.monotonic() + step.timeout + grace
            elif op == "loaded":
                # Loading had its own time budget; the call itself now gets a full one.
                _pass_logs(step, reply)
                deadline = time.monotonic() + step.timeout + grace
                worker.rss_at_start = 0
            elif op == "step":
                _pass_logs(step, reply)
                results[index] = _outcome(step, reply)
                index += 1
                if index >= len(steps):
                    raise _Violation("more steps than the call has")
                step = steps[index]
                deadline = time.monotonic() + step.timeout + grace
                worker.rss_at_start = 0
            elif op == "result":
                if worker.reader.buffered():
                    raise _Violation("bytes after the result")
                _pass_logs(step, reply)
                results[index] = _outcome(step, reply)
                warm = reply.get("warm")
                if warm is not None:  # sent when it changed
                    worker.warm = {k for k in warm if isinstance(k, str)} if isinstance(warm, list) else set()
                return
            else:
                raise _Violation("an unexpected frame")
    except _Deadline:
        grew = worker.rss() - worker.rss_at_start if worker.rss_at_start else 0
        worker.kill()
        slug, timeout, memory_mb = step.slug, step.timeout, step.memory_mb
        if grew > memory_mb * MIB // 2 or worker.died_of_memory():
            error: PluginError = PluginMemoryError(
                f"plugin {slug!r} exceeded its memory limit ({memory_mb} MiB)", slug=slug
            )
        else:
            error = PluginTimeout(f"plugin {slug!r} exceeded its time limit ({timeout * 1000:.0f} ms)", slug=slug)
        raise _StepFailed(index, error) from None
    except _RssExceeded:
        worker.kill()
        error = PluginMemoryError(
            f"plugin {step.slug!r} exceeded the sandbox memory cap; the sandbox process was restarted", slug=step.slug
        )
        raise _StepFailed(index, error) from None
    except _Violation as exc:
        worker.kill()
        logger.error(
            "sandbox worker %s broke protocol during a call of %r: %s; killed",
            worker.pid,
            step.slug,
            exc,
            extra={"plugin": step.slug, "sandbox_pid": worker.pid},
        )
        error = PluginCrashed(f"the sandbox process running plugin {step.slug!r} broke protocol", slug=step.slug)
        raise _StepFailed(index, error) from None
    except (protocol.ProtocolError, _SendFailed) as exc:
        worker.kill()
        code = worker.proc.returncode
        slug = step.slug
        if code == EXIT_STUCK:
            error = PluginTimeout(f"plugin {slug!r} exceeded its time limit and was killed", slug=slug)
        elif worker.died_of_memory():
            error = PluginMemoryError(f"plugin {slug!r} exceeded its memory limit ({step.memory_mb} MiB)", slug=slug)
        else:
            logger.warning(
                "sandbox worker %s failed during a call of %r: %s (exit %s)",
                worker.pid,
                slug,
                exc,
                code,
                extra={"plugin": slug, "sandbox_pid": worker.pid},
            )
            error = PluginCrashed(f"the sandbox process running plugin {slug!r} crashed (exit {code})", slug=slug)
        raise _StepFailed(index, error) from None


def error_from(slug: str, error: dict[str, Any], *, timeout: float, memory_mb: int) -> PluginError:
    """Turn a worker's error report into the matching PluginError."""
    kind = error.get("kind")
    message = str(error.get("message") or "")
    if kind == "timeout":
        return PluginTimeout(f"plugin {slug!r} exceeded its time limit ({timeout * 1000:.0f} ms)", slug=slug)
    if kind == "memory":
        return PluginMemoryError(f"plugin {slug!r}: {message}", slug=slug)
    if kind == "hook_not_found":
        return HookNotFound(f"plugin {slug!r}: {message}", slug=slug)
    if kind == "never_settled":
        return PluginTimeout(f"plugin {slug!r} would exceed its time limit: {message}", slug=slug)
    if kind == "data":
        return PluginResultError(f"plugin {slug!r}: {message}", slug=slug)
    if kind == "too_large":
        return PluginResultError(f"plugin {slug!r} returned a result over the size limit ({message})", slug=slug)
    if kind == "script":
        name = error.get("name") or "Error"
        line, column = error.get("line"), error.get("column")
        where = f" at line {line}, column {column}" if line else ""
        exc_type = {"PermissionDenied": PluginPermissionDenied, "LimitExceeded": PluginLimitExceeded}.get(
            name, PluginScriptError
        )
        return exc_type(
            f"plugin {slug!r} threw {name}: {message}{where}",
            slug=slug,
            name=name,
            js_message=message,
            stack=error.get("stack"),
            line=line,
            column=column,
        )
    return PluginCrashed(f"plugin {slug!r}: sandbox error: {message}", slug=slug)
