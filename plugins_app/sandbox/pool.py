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
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from django.core.signals import setting_changed
from django.dispatch import receiver

from .. import conf
from ..exceptions import (
    HookNotFound,
    PluginBusy,
    PluginCrashed,
    PluginDataError,
    PluginError,
    PluginLimitExceeded,
    PluginMemoryError,
    PluginPermissionDenied,
    PluginScriptError,
    PluginTimeout,
)
from . import protocol

logger = logging.getLogger("plugins_app.sandbox")

SANDBOX_DIR = Path(__file__).resolve().parent
MIB = 1024 * 1024
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
POLL_SECONDS = 0.05
# Exit code of a worker whose runtime would not stop after terminate() (see worker.run).
EXIT_STUCK = 3
BOOT = f"import sys; sys.path.insert(0, {str(SANDBOX_DIR)!r}); import worker; worker.main()"


def scrubbed_env() -> dict[str, str]:
    """The whole environment of a sandbox process: nothing inherited, no secrets."""
    return {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "PYTHONDONTWRITEBYTECODE": "1"}


class _Deadline(Exception):
    pass


class _RssExceeded(Exception):
    pass


class _DiedBeforeStart(Exception):
    pass


class WorkerProcess:
    """One sandbox process and the pipes to it. Used by one thread at a time."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.options = options
        self.rss_limit = int(options["rss_limit_mb"]) * MIB
        self.warm: set[str] = set()
        # RSS seen when a call first outlasted one poll interval: the base for telling a
        # memory bomb from a plain runaway loop when the deadline kills the worker.
        self.rss_at_first_poll = 0
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-c", BOOT, json.dumps(options)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env=scrubbed_env(),
            cwd="/",
            close_fds=True,
            start_new_session=True,  # a Ctrl-C meant for runserver must not hit workers
        )
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.in_fd = self.proc.stdin.fileno()
        self.reader = protocol.FrameReader(self.proc.stdout.fileno())
        deadline = time.monotonic() + float(options["start_timeout"])
        try:
            hello = self.recv(deadline, watch_rss=False)
        except Exception:
            self.kill()
            raise
        if hello.get("op") != "ready":
            self.kill()
            raise protocol.ProtocolError(f"unexpected greeting {hello!r}")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss(self) -> int:
        try:
            with open(f"/proc/{self.proc.pid}/statm", "rb") as fh:
                return int(fh.read().split()[1]) * PAGE_SIZE
        except (OSError, ValueError, IndexError):
            return 0

    def send(self, message: dict[str, Any]) -> None:
        try:
            protocol.write_message(self.in_fd, message)
        except (BrokenPipeError, OSError) as exc:
            raise protocol.ProtocolError(f"worker pipe closed: {exc}") from None

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
            if not self.rss_at_first_poll:
                self.rss_at_first_poll = rss
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
                self.proc.wait(timeout=1.0)
            except (protocol.ProtocolError, subprocess.TimeoutExpired):
                pass
        self.kill()

    def _reap(self) -> None:
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            logger.error("sandbox worker %s did not exit after SIGKILL", self.proc.pid)
        for stream in (self.proc.stdin, self.proc.stdout):
            try:
                if stream is not None:
                    stream.close()
            except OSError:
                pass


def _options() -> dict[str, Any]:
    return {
        "data_limit_mb": conf.get("WORKER_DATA_LIMIT_MB"),
        "rss_limit_mb": conf.get("WORKER_RSS_LIMIT_MB"),
        "warm_runtimes": conf.get("WARM_RUNTIMES_PER_WORKER"),
        "idle_seconds": conf.get("RUNTIME_IDLE_SECONDS"),
        "max_result_bytes": conf.get("MAX_RESULT_BYTES"),
        "max_host_args_chars": conf.get("MAX_ARGS_BYTES"),
        "start_timeout": conf.get("WORKER_START_TIMEOUT_SECONDS"),
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

    def checkout(self, prefer_key: str | None, timeout: float, *, overflow: bool = False) -> WorkerProcess:
        """A worker for one call: an idle one (preferring one where ``prefer_key`` is
        warm), a new one while below ``size``, else wait up to ``timeout``. With
        ``overflow`` a new worker is started instead of waiting; it is stopped when it
        is checked in while the pool is above its size."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if self._closed:
                    raise PluginCrashed("the sandbox pool is shut down")
                dead = [w for w in self._idle if not w.alive()]
                for worker in dead:
                    # Died while idle (OOM killer, an operator's kill): replace it quietly.
                    self._idle.remove(worker)
                    self._count -= 1
                    worker.kill()
                if self._idle:
                    for index in range(len(self._idle) - 1, -1, -1):
                        if prefer_key in self._idle[index].warm:
                            return self._idle.pop(index)
                    return self._idle.pop()
                if self._count < self.size or overflow:
                    self._count += 1
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise PluginBusy(f"no sandbox process became free within {timeout:g} s")
                self._cond.wait(remaining)
        try:
            return WorkerProcess(self.options)
        except Exception as exc:
            with self._cond:
                self._count -= 1
                self._cond.notify()
            logger.exception("could not start a sandbox worker")
            raise PluginCrashed(f"could not start a sandbox process: {exc}") from None

    def checkin(self, worker: WorkerProcess, healthy: bool) -> None:
        if healthy and worker.alive():
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
            return [w.pid for w in self._idle]


_pool: SandboxPool | None = None
_pool_pid: int | None = None
_pool_lock = threading.Lock()


def get_pool() -> SandboxPool:
    """The process's pool; a forked child (gunicorn --preload) gets a fresh one."""
    global _pool, _pool_pid
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


# -- one call ------------------------------------------------------------------------

HostHandler = Callable[[str, str], str]


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


def invoke(inv: Invocation) -> str:
    """Run ``inv`` in a sandbox process; return the hook's result as JSON text."""
    message = {"op": "call", "key": inv.key, "hook": inv.hook, "args": inv.args_json, "timeout": inv.timeout}
    return _retry_if_died_before_start(
        partial(
            _converse, inv.slug, inv.key, message, inv.timeout, inv.memory_mb, inv.spec_loader, inv.host,
            nested=inv.nested,
        )
    )


def inspect(spec: dict[str, Any], timeout: float, host: HostHandler) -> str:
    """Load ``spec`` in a fresh runtime and return the inspection JSON (hooks or error)."""
    message = {"op": "inspect", "spec": spec, "timeout": timeout}
    return _retry_if_died_before_start(
        partial(_converse, spec["slug"], None, message, timeout, int(spec["memory_mb"]), lambda: spec, host)
    )


def _retry_if_died_before_start(attempt: Callable[..., str]) -> str:
    try:
        return attempt()
    except _DiedBeforeStart:
        # The worker was dead before it read the request (killed while idle, and not
        # yet reaped when checked out). Nothing of the call ran: retry once, fresh.
        return attempt(retry=False)


def _converse(
    slug: str,
    key: str | None,
    message: dict[str, Any],
    timeout: float,
    memory_mb: int,
    spec_loader: Callable[[], dict[str, Any]],
    host: HostHandler,
    retry: bool = True,
    nested: bool = False,
) -> str:
    grace = conf.get("SUPERVISOR_GRACE_MS") / 1000.0
    pool = get_pool()
    worker = pool.checkout(key, conf.get("CHECKOUT_TIMEOUT_SECONDS"), overflow=nested)
    healthy = False
    worker.rss_at_first_poll = 0
    progressed = False
    try:
        worker.send(message)
        deadline = time.monotonic() + timeout + grace
        while True:
            reply = worker.recv(deadline)
            progressed = True
            op = reply.get("op")
            if op == "host":
                answer = host(str(reply.get("name")), str(reply.get("args")))
                worker.send({"op": "host_result", "reply": answer})
            elif op == "need_spec":
                worker.send({"op": "spec", "spec": spec_loader()})
                deadline = time.monotonic() + timeout + grace
            elif op == "loaded":
                # Loading had its own time budget; the call itself now gets a full one.
                deadline = time.monotonic() + timeout + grace
            elif op == "result":
                worker.warm = set(reply.get("warm") or ())
                healthy = True
                break
            else:
                raise protocol.ProtocolError(f"unexpected message {op!r}")
    except _Deadline:
        grew = worker.rss() - worker.rss_at_first_poll
        worker.kill()
        if grew > memory_mb * MIB // 2:
            raise PluginMemoryError(f"plugin {slug!r} exceeded its memory limit ({memory_mb} MiB)", slug=slug) from None
        raise PluginTimeout(f"plugin {slug!r} exceeded its time limit ({timeout * 1000:.0f} ms)", slug=slug) from None
    except _RssExceeded:
        worker.kill()
        raise PluginMemoryError(
            f"plugin {slug!r} exceeded the sandbox memory cap; the sandbox process was restarted", slug=slug
        ) from None
    except protocol.ProtocolError as exc:
        worker.kill()
        code = worker.proc.returncode
        if retry and not progressed and code is not None and code < 0:
            raise _DiedBeforeStart() from None
        if code == EXIT_STUCK:
            raise PluginTimeout(f"plugin {slug!r} exceeded its time limit and was killed", slug=slug) from None
        logger.warning("sandbox worker %s failed during a call of %r: %s (exit %s)", worker.pid, slug, exc, code)
        raise PluginCrashed(f"the sandbox process running plugin {slug!r} crashed (exit {code})", slug=slug) from None
    finally:
        pool.checkin(worker, healthy)
    if "error" in reply:
        raise error_from(slug, reply["error"], timeout=timeout, memory_mb=memory_mb)
    return str(reply.get("ok"))


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
    if kind == "too_large":
        return PluginDataError(f"plugin {slug!r} returned a result over the size limit ({message})", slug=slug)
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
