"""docs/deployment.md, run: every command of the guide, against a fresh PostgreSQL database,
the local Redis, real gunicorn workers, a real Celery worker and beat.

The commands are kept here exactly as the guide writes them (``GUIDE_COMMANDS``), and the
first test checks that the guide's shell blocks hold exactly these, so neither can drift.
The two substitutions made to run them here are explicit (``LOCAL``): a free port instead
of 8000, a temporary directory instead of /var/lib/plugins-app. The install commands are
run by CI (``.ci/run``).
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from django.conf import settings as django_settings

from .celery_helpers import REDIS_URL, children, require_redis

REPO = Path(__file__).resolve().parent.parent
GUIDE = REPO / "docs" / "deployment.md"
CI = REPO / ".ci" / "run"
BIN = str(Path(sys.executable).parent)

INSTALL_COMMANDS = [  # run by .ci/run, as written
    "python3.11 -m venv .venv && . .venv/bin/activate",
    'pip install -e ".[deploy]"',
]
GUIDE_COMMANDS = {
    "migrate": "python manage.py migrate --noinput",
    "collectstatic": "python manage.py collectstatic --noinput",
    "check": "python manage.py check --deploy",
    "install": 'python manage.py plugins install project/demo/plugins/greeter.js --slug greeter --config \'{"version": "1.0.0"}\' --enable',
    "gunicorn": "gunicorn project.wsgi --bind 127.0.0.1:8000 --workers 2 --threads 2 --timeout 60 --access-logfile - --error-logfile -",
    "worker": "celery -A project worker --loglevel INFO --concurrency 2",
    "beat": "celery -A project beat --loglevel INFO --schedule /var/lib/plugins-app/celerybeat-schedule",
    "worker_beat": "celery -A project worker -B --loglevel INFO --schedule /var/lib/plugins-app/celerybeat-schedule",
    "ping": "celery -A project inspect ping",
    "deliver_loop": "python manage.py plugins deliver --loop",
    "deliver": "python manage.py plugins deliver",
    "failed": "python manage.py plugins deliveries --state failed",
    "retry_failed": "python manage.py plugins deliver --retry-failed",
    "prune": "python manage.py plugins prune",
    "doctor": "python manage.py plugins doctor",
}

POSTGRES = django_settings.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
needs_postgres = pytest.mark.skipif(
    not POSTGRES,
    reason="the deployment guide is PostgreSQL + Redis; run with DATABASE_URL=postgres://postgres@127.0.0.1:5432/plugins_app",
)


def guide_commands() -> list[str]:
    """The command lines of the guide's ``sh`` blocks (not exports, not comments)."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", GUIDE.read_text(), re.S):
        for line in block.splitlines():
            line = re.sub(r"\s+# .*$", "", line).strip()
            if line and not line.startswith(("#", "export ")):
                commands.append(line)
    return commands


def test_the_guide_runs_exactly_the_tested_commands():
    in_guide = guide_commands()
    assert sorted(in_guide) == sorted([*INSTALL_COMMANDS, *GUIDE_COMMANDS.values()])
    ci = CI.read_text()
    for command in INSTALL_COMMANDS:
        assert command in ci, f".ci/run does not run {command!r}"


# -- a site: a fresh database and the production environment -------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Site:
    env: dict[str, str]
    admin: object  # psycopg connection to the "postgres" database
    dbname: str
    db: object  # psycopg connection to the site's database
    state_dir: Path
    port: int
    processes: list[subprocess.Popen] = field(default_factory=list)
    logs: dict[int, Path] = field(default_factory=dict)

    def command(self, name: str, **replace: str) -> str:
        """A command of the guide, with this machine's port and state directory."""
        text = GUIDE_COMMANDS[name].replace("127.0.0.1:8000", f"127.0.0.1:{self.port}")
        text = text.replace("/var/lib/plugins-app", str(self.state_dir))
        for old, new in replace.items():
            text = text.replace(old, new)
        return text

    def run(
        self, name: str, *, env: dict[str, str] | None = None, timeout: float = 120, **replace: str
    ) -> subprocess.CompletedProcess:
        result = subprocess.run(
            ["bash", "-c", self.command(name, **replace)],
            cwd=REPO,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        return result

    def start(self, name: str, *, env: dict[str, str] | None = None) -> subprocess.Popen:
        log = tempfile.NamedTemporaryFile(prefix=f"plugins-app-{name}-", suffix=".log", delete=False)
        proc = subprocess.Popen(
            ["bash", "-c", "exec " + self.command(name)],
            cwd=REPO,
            env={**self.env, **(env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        self.processes.append(proc)
        self.logs[proc.pid] = Path(log.name)
        return proc

    def output(self, proc: subprocess.Popen) -> str:
        return self.logs[proc.pid].read_text(errors="replace")

    def stop(self, proc: subprocess.Popen, timeout: float = 30) -> int:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # anything left in its group
        except (ProcessLookupError, PermissionError):
            pass
        return proc.returncode

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        return self.db.execute(sql, params).fetchall()

    def states(self) -> dict[str, int]:
        return dict(self.query("SELECT state, count(*) FROM plugins_app_delivery GROUP BY state"))

    def get(self, path: str = "/", *, https: bool = True) -> tuple[int, str, dict[str, str]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", path, headers={"X-Forwarded-Proto": "https"} if https else {})
            response = conn.getresponse()
            return response.status, response.read().decode(errors="replace"), dict(response.getheaders())
        finally:
            conn.close()

    def save_notes(self, count: int, *, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
        """What a web request does: save notes in one transaction (bound to the demo's
        after-commit and background hooks)."""
        script = (
            "from django.contrib.auth.models import User\n"
            "from django.db import transaction\n"
            "from project.demo.models import Note\n"
            "author, _ = User.objects.get_or_create(username='writer')\n"
            "with transaction.atomic():\n"
            f"    for i in range({count}):\n"
            "        Note.objects.create(author=author, title=f'note {i}')\n"
        )
        result = subprocess.run(
            [sys.executable, "manage.py", "shell", "-c", script],
            cwd=REPO,
            env={**self.env, **(env or {})},
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return result


def wait_for(condition: Callable[[], bool], timeout: float, what: str, describe: Callable[[], str] = str) -> float:
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            pytest.fail(f"{what}: not within {timeout} s\n{describe()}", pytrace=False)
        time.sleep(0.1)
    return time.monotonic() - started


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    import psycopg
    from psycopg import sql

    if not POSTGRES:
        pytest.skip("needs PostgreSQL")
    require_redis()
    s = django_settings.DATABASES["default"]
    server = {
        "host": s.get("HOST") or "localhost",
        "port": s.get("PORT") or 5432,
        "user": s.get("USER") or None,
        "password": s.get("PASSWORD") or None,
    }
    admin = psycopg.connect(dbname="postgres", autocommit=True, **server)
    dbname = f"plugins_app_deploy_{uuid.uuid4().hex[:8]}"
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    auth = server["user"] or ""
    if server["password"]:
        auth += ":" + server["password"]
    state_dir = Path(tempfile.mkdtemp(prefix="plugins-app-state-"))
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("CELERY_", "PLUGINS_", "DJANGO_", "SECURE_", "DATABASE_URL", "DEBUG", "HTTPS"))
    }
    env.update(
        PATH=f"{BIN}:{os.environ.get('PATH', '')}",
        DATABASE_URL=f"postgres://{auth}@{server['host']}:{server['port']}/{dbname}",
        CELERY_BROKER_URL=REDIS_URL,
        SECRET_KEY=uuid.uuid4().hex * 2,
        DEBUG="0",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        HTTPS="1",
        STATIC_ROOT=str(state_dir / "static"),
        PYTHONUNBUFFERED="1",
    )
    db = None
    site = Site(env, admin, dbname, None, state_dir, free_port())
    try:
        migrate = site.run("migrate")
        assert migrate.returncode == 0, migrate.stderr
        site.db = db = psycopg.connect(dbname=dbname, autocommit=True, **server)
        yield site
    finally:
        for proc in site.processes:
            site.stop(proc, timeout=10)
        if db is not None:
            db.close()
        admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(sql.Identifier(dbname)))
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(dbname)))
        admin.close()
        for path in site.logs.values():
            path.unlink(missing_ok=True)
        subprocess.run(["rm", "-rf", str(state_dir)], check=False)


@pytest.fixture(scope="module")
def plugins(site: Site) -> Site:
    """The demo's greeter (the guide's install command) and activity plugins (the demo's
    signal bindings call its noteSaved after commit and noteIndexed in the background)."""
    greeter = site.run("install")
    assert greeter.returncode == 0, greeter.stderr
    activity = site.run(
        "install", **{"greeter.js --slug greeter": "activity.js --slug activity", '\'{"version": "1.0.0"}\'': "'{}'"}
    )
    assert activity.returncode == 0, activity.stderr
    return site


# -- the guide, run ------------------------------------------------------------------


@needs_postgres
def test_release_commands(site):
    static = site.run("collectstatic")
    assert static.returncode == 0, static.stderr
    assert (Path(site.env["STATIC_ROOT"]) / "admin" / "css" / "base.css").exists()
    check = site.run("check")
    assert check.returncode == 0, check.stderr
    # With HTTPS=1 only the two HSTS policy warnings the guide names are left.
    issues = set(re.findall(r"\((\w+\.[EW]\d+)\)", check.stdout + check.stderr))
    assert issues <= {"security.W005", "security.W021"}, check.stdout + check.stderr
    doctor = site.run("doctor")
    assert doctor.returncode == 0, doctor.stdout + doctor.stderr


@needs_postgres
def test_web_workers_and_beat_serve_deliver_and_survive_faults(plugins):
    site = plugins
    before = sum(site.states().values())
    web = site.start("gunicorn")
    worker = site.start("worker")
    beat = site.start("beat")
    wait_for(lambda: " ready." in site.output(worker), 60, "the worker", lambda: site.output(worker))

    def serving() -> bool:
        try:
            return site.get()[0] == 200
        except OSError:
            return False

    wait_for(serving, 60, "gunicorn", lambda: site.output(web))
    gunicorn_workers = [pid for pid in children(web.pid) if b"gunicorn" in Path(f"/proc/{pid}/cmdline").read_bytes()]
    assert len(gunicorn_workers) == 2

    ping = site.run("ping")
    assert ping.returncode == 0 and "pong" in ping.stdout, ping.stdout + ping.stderr

    # HTTPS=1: plain http is redirected; what the proxy forwards as https is served.
    status, _, headers = site.get(https=False)
    assert status == 301 and headers["Location"].startswith("https://")
    for _ in range(6):
        status, page, _ = site.get()
        assert status == 200 and "Hello, World! App version: 1.0.0" in page

    # A note saved by the web side: the after-commit hook runs there, the background one
    # on the worker.
    site.save_notes(5)
    wait_for(
        lambda: site.states() == {"delivered": before + 10},
        30,
        "deliveries",
        lambda: f"{site.states()}\n{site.output(worker)}",
    )
    assert "Task plugins_app.deliver[" in site.output(worker)
    page = site.get()[1]
    saves = site.query("SELECT number FROM plugins_app_storageitem WHERE key = 'saves'")[0][0]
    assert f"({saves} note saves seen by plugins)" in page and saves >= 5 and "last indexed" in page

    # A plugin change reaches every gunicorn worker on its next call.
    changed = site.run("install", **{"1.0.0": "2.0.0"})
    assert changed.returncode == 0, changed.stderr
    for _ in range(8):
        status, page, _ = site.get()
        assert status == 200 and "Hello, World! App version: 2.0.0" in page

    # The broker down, as the web side sees it: the commit goes through, the send fails
    # and is logged, the deliveries wait; beat's drain delivers them.
    started = time.monotonic()
    down = site.save_notes(3, env={"CELERY_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0"})
    send_failed_after = time.monotonic() - started
    assert "could not send 1 background deliveries to Celery" in down.stderr, down.stderr
    assert "WARNING plugins_app.outbox" in down.stderr
    took = wait_for(
        lambda: site.states() == {"delivered": before + 16},
        30,
        "the drain after the broker failure",
        lambda: f"{site.states()}\n{site.output(worker)}\n{site.output(beat)}",
    )
    print(f"a save with the broker down took {send_failed_after:.1f} s; drained {took:.1f} s later")

    # A database blip: no new connections, existing ones terminated. Requests fail with
    # 500, each logged to stderr with its traceback; the next request after it recovers.
    from psycopg import sql

    name = sql.Identifier(site.dbname)
    site.db.close()
    site.admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS false").format(name))
    site.admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", [site.dbname])
    try:
        assert site.get()[0] == 500
    finally:
        site.admin.execute(sql.SQL("ALTER DATABASE {} ALLOW_CONNECTIONS true").format(name))
    import psycopg

    site.db = psycopg.connect(site.env["DATABASE_URL"], autocommit=True)
    wait_for(serving, 15, "recovery after the blip", lambda: site.output(web))
    log = site.output(web)
    assert re.search(r"ERROR django\.request: Internal Server Error: /\n", log), log
    assert "OperationalError" in log

    site.save_notes(1)  # and deliveries work again, on the worker too
    wait_for(
        lambda: site.states() == {"delivered": before + 18}, 30, "deliveries after the blip", lambda: str(site.states())
    )

    assert site.stop(web) == 0
    assert site.stop(beat) == 0
    assert site.stop(worker) == 0


@needs_postgres
def test_draining_without_celery_and_day_to_day_commands(plugins):
    site = plugins
    broker_down = {"CELERY_BROKER_URL": f"redis://127.0.0.1:{free_port()}/0"}
    before = sum(site.states().values())

    def pending() -> int:
        return site.states().get("pending", 0)

    # Deliveries left pending (their send failed), drained by one pass...
    site.save_notes(2, env=broker_down)
    assert pending() == 2
    once = site.run("deliver")
    assert once.returncode == 0, once.stderr
    assert once.stdout.startswith("Delivered 2"), once.stdout
    assert pending() == 0

    # ...by the loop, as a service, stopped with SIGTERM...
    site.save_notes(2, env=broker_down)
    loop = site.start("deliver_loop", env={"CELERY_BROKER_URL": ""})
    wait_for(lambda: pending() == 0, 30, "plugins deliver --loop", lambda: site.output(loop))
    assert site.stop(loop) == 0
    assert "Stopped." in site.output(loop)

    # ...and by a single worker running beat itself.
    site.save_notes(2, env=broker_down)
    single = site.start("worker_beat")
    wait_for(lambda: pending() == 0, 40, "celery worker -B", lambda: site.output(single))
    assert site.stop(single) == 0
    assert site.states() == {"delivered": before + 12}

    failed = site.run("failed")
    assert failed.returncode == 0 and failed.stdout.strip() == "No deliveries.", failed.stdout + failed.stderr
    retry = site.run("retry_failed")
    assert retry.returncode == 0 and retry.stdout.startswith("0 failed deliveries are due again."), retry.stdout
    prune = site.run("prune")
    assert prune.returncode == 0 and prune.stdout.startswith("Pruned 0 delivered"), prune.stdout
