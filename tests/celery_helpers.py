"""Helpers for tests that run a real Celery worker (a subprocess) against the local Redis."""
from __future__ import annotations

import os
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
                    pytest.fail(f"the Celery worker exited with {self.proc.returncode}:\n{self.output()}", pytrace=False)
                if time.monotonic() >= deadline:
                    pytest.fail(f"no result from the Celery worker within {timeout} s:\n{self.output()}", pytrace=False)


@contextmanager
def celery_worker(broker_url: str = REDIS_URL, *, database_url: str | None = None) -> Iterator[Worker]:
    """Run ``celery -A project worker --pool=solo --concurrency=1`` on a queue of its own
    (so parallel test runs sharing the Redis never take each other's tasks); stop it on exit."""
    queue = f"plugins-app-test-{uuid.uuid4().hex[:12]}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "CELERY_BROKER_URL": broker_url,
        "CELERY_RESULT_BACKEND": broker_url,
        "DATABASE_URL": database_url or worker_database_url(),
        "PYTHONUNBUFFERED": "1",
    }
    fd, log_name = tempfile.mkstemp(prefix="plugins-app-celery-", suffix=".log")
    log_path = Path(log_name)
    with os.fdopen(fd, "wb") as log:
        proc = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "project", "worker",
                "--pool=solo", "--concurrency=1", "--queues", queue, "--hostname", f"{queue}@%h",
                "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=INFO",
            ],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    worker = Worker(proc, queue, log_path)
    try:
        yield worker
    finally:
        if proc.poll() is None:
            proc.terminate()  # warm shutdown
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        log_path.unlink(missing_ok=True)


def celery_settings(settings: Any, queue: str, broker_url: str = REDIS_URL) -> None:
    """Configure Celery for the test process the simple way: CELERY_* Django settings."""
    settings.CELERY_BROKER_URL = broker_url
    settings.CELERY_RESULT_BACKEND = broker_url
    settings.CELERY_TASK_ROUTES = {"plugins_app.run_action": {"queue": queue}}
