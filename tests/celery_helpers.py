"""Helpers for tests that run a real Celery worker (a subprocess) against the local Redis."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from django.db import connection

REPO = Path(__file__).resolve().parent.parent
# Database 15 by default, so the tests never touch the demo's queue on database 0.
REDIS_URL = os.environ.get("PLUGINS_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def require_redis(url: str = REDIS_URL) -> None:
    """Fail (not skip) with a clear message when the Redis broker is unreachable."""
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=3).ping()
    except redis.RedisError as exc:
        pytest.fail(
            f"Redis is not reachable at {url} ({exc}). This test runs a real Celery worker against "
            "Redis: start Redis, or point PLUGINS_TEST_REDIS_URL at one.",
            pytrace=False,
        )


def worker_database_url() -> str:
    """A DATABASE_URL for the test database this test process is using right now."""
    s = connection.settings_dict
    vendor = connection.vendor
    if vendor == "sqlite":
        name = str(s["NAME"])
        if name == ":memory:" or "mode=memory" in name:
            pytest.fail("an in-memory SQLite test database cannot be shared with a worker process", pytrace=False)
        return f"sqlite:///{name}"  # an absolute path gives sqlite:////tmp/...
    if vendor == "postgresql":
        auth = quote(s.get("USER") or "", safe="")
        if s.get("PASSWORD"):
            auth += ":" + quote(s["PASSWORD"], safe="")
        host = s.get("HOST") or "localhost"
        port = f":{s['PORT']}" if s.get("PORT") else ""
        return f"postgres://{auth}@{host}{port}/{quote(s['NAME'], safe='')}"
    pytest.fail(f"no worker DATABASE_URL for the {vendor} backend", pytrace=False)


@dataclass
class Worker:
    proc: subprocess.Popen
    queue: str
    log_path: Path

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def descendants(self) -> list[int]:
        """Pids of every live process below the worker (its beat, its sandboxes)."""
        return descendants(self.proc.pid)

    def sandbox_pids(self) -> list[int]:
        """Pids of the worker's sandbox processes."""
        return [pid for pid in self.descendants() if is_sandbox(pid)]

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until the worker consumes from its queue (its log says "ready")."""
        deadline = time.monotonic() + timeout
        while " ready." not in self.output():
            if self.proc.poll() is not None:
                pytest.fail(f"the Celery worker exited with {self.proc.returncode}:\n{self.output()}", pytrace=False)
            if time.monotonic() > deadline:
                pytest.fail(f"the Celery worker was not ready within {timeout} s:\n{self.output()}", pytrace=False)
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL the worker and everything in its process group (beat, sandboxes), as
        when its host or container dies; no warm shutdown, nothing acknowledged."""
        group = self.proc.pid
        try:
            os.kill(self.proc.pid, signal.SIGKILL)
            os.killpg(group, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), then SIGKILL of whatever is left of its group."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)  # an orphaned beat or sandbox, if any
        except (ProcessLookupError, PermissionError):
            pass

    def wait_for(self, result: Any, timeout: float) -> Any:
        """``result.get()`` in short slices, failing early (with the worker's output) if
        the worker process has exited."""
        from celery.exceptions import TimeoutError as CeleryTimeout

        deadline = time.monotonic() + timeout
        while True:
            try:
                return result.get(timeout=min(2.0, max(0.1, deadline - time.monotonic())))
            except CeleryTimeout:
                if self.proc.poll() is not None:
                    pytest.fail(
                        f"the Celery worker exited with {self.proc.returncode}:\n{self.output()}", pytrace=False
                    )
                if time.monotonic() >= deadline:
                    pytest.fail(f"no result from the Celery worker within {timeout} s:\n{self.output()}", pytrace=False)


@contextmanager
def celery_worker(
    broker_url: str = REDIS_URL,
    *,
    database_url: str | None = None,
    queue: str | None = None,
    beat: bool = False,
    plugins_app: dict[str, Any] | None = None,
    result_backend: str | None = None,
    env: dict[str, str] | None = None,
    pool: str = "solo",
) -> Iterator[Worker]:
    """Run ``celery -A project worker --pool=solo --concurrency=1`` on a queue of its own
    (so parallel test runs sharing the Redis never take each other's tasks); stop it on exit.

    The worker runs ``tests.worker_settings`` (the demo's settings, with ``plugins_app``
    merged over ``PLUGINS_APP`` and ``queue`` as the default queue, so its own retries and
    periodic drains stay on it). ``queue`` reuses a queue (a worker started after another
    was killed); ``beat`` embeds the beat scheduler (``-B``: the periodic outbox drain);
    ``result_backend`` configures one (default: the broker); ``pool="prefork"`` runs tasks
    in one forked child instead of the main process. The worker is the leader of
    a process group of its own: :meth:`Worker.kill` kills it with its beat and sandboxes.
    """
    queue = queue or f"plugins-app-test-{uuid.uuid4().hex[:12]}"
    full_env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.worker_settings",
        "CELERY_BROKER_URL": broker_url,
        "CELERY_RESULT_BACKEND": result_backend or broker_url,
        "DATABASE_URL": database_url or worker_database_url(),
        "PLUGINS_TEST_CELERY_QUEUE": queue,
        "PLUGINS_TEST_PLUGINS_APP": json.dumps(plugins_app or {}),
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    fd, log_name = tempfile.mkstemp(prefix="plugins-app-celery-", suffix=".log")
    log_path = Path(log_name)
    schedule = Path(tempfile.mkdtemp(prefix="plugins-app-beat-")) / "schedule"
    command = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "project",
        "worker",
        f"--pool={pool}",
        "--concurrency=1",
        "--queues",
        queue,
        "--hostname",
        f"{queue}-{uuid.uuid4().hex[:6]}@%h",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel=INFO",
    ]
    if beat:
        command += ["-B", "--schedule", str(schedule)]
    with os.fdopen(fd, "wb") as log:
        proc = subprocess.Popen(
            command,
            cwd=REPO,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    worker = Worker(proc, queue, log_path)
    try:
        yield worker
    finally:
        worker.stop()
        log_path.unlink(missing_ok=True)
        for path in schedule.parent.iterdir():
            path.unlink(missing_ok=True)
        schedule.parent.rmdir()


def celery_settings(settings: Any, queue: str, broker_url: str = REDIS_URL) -> None:
    """Configure Celery for the test process the simple way: CELERY_* Django settings.
    Every plugins_app task goes to ``queue``; a result backend is configured (the broker),
    as a site might for tasks of its own."""
    settings.CELERY_BROKER_URL = broker_url
    settings.CELERY_RESULT_BACKEND = broker_url
    settings.CELERY_TASK_DEFAULT_QUEUE = queue
    settings.CELERY_TASK_ROUTES = {"plugins_app.*": {"queue": queue}}


# -- processes -----------------------------------------------------------------------


def _stat(pid: int) -> tuple[str, int] | None:
    """(state, parent pid) of ``pid`` from /proc, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode(errors="replace")
    except OSError:
        return None
    fields = data[data.rindex(")") + 2 :].split()  # the name may contain spaces and ")"
    return fields[0], int(fields[1])


def children(pid: int) -> list[int]:
    """Live (not zombie) child processes of ``pid``."""
    found = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            stat = _stat(int(name))
            if stat is not None and stat[1] == pid and stat[0] != "Z":
                found.append(int(name))
    return found


def descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        for child in children(todo.pop()):
            found.append(child)
            todo.append(child)
    return found


def is_sandbox(pid: int) -> bool:
    """Whether ``pid`` is a plugins_app sandbox process (``python -I -c ... worker.main()``)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return b"worker.main()" in f.read()
    except OSError:
        return False


def sandbox_children(pid: int | None = None) -> list[int]:
    """Pids of the sandbox processes started by process ``pid`` (default: this one)."""
    return [child for child in children(pid or os.getpid()) if is_sandbox(child)]
