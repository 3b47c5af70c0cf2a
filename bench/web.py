"""Requests/s of the demo home page under gunicorn, plugin hooks on against hooks off.

Run from the repository root:

    .venv/bin/python bench/web.py            # 3 runs x (3 s warm-up + 10 s) per mode, about 2 minutes
    .venv/bin/python bench/web.py --quick    # 3 runs x (1 s + 4 s) per mode, under a minute

Starts the demo site as docs/deployment.md runs it (``gunicorn project.wsgi``, gthread,
2 workers x 4 threads by default, DEBUG off) on a free loopback port, against a
throwaway SQLite database that is migrated and seeded with ``manage.py seed_demo``. The
home page calls the greeter (``hooks.run``), note-stats (``hooks.call``, with ``db`` and
``storage`` host calls), the ``headline`` filter (``apply_filters``) and the ``sidebar``
template hook. "Hooks off" is the same page with every plugin disabled through
``manage.py plugins disable`` (the page then shows its "unavailable" fallbacks); the
modes alternate run by run, and each run has its own warm-up. Prints req/s of each run,
the medians and their ratio (the goal: hooks on >= 0.7x hooks off), plus the CPU used by
the server (gunicorn and its sandboxes) and by the load generator, which shares the
machine's cores with the server.

The load generator is ``wrk``, ``oha`` or ``hey`` when one is on PATH, else a small
asyncio one in this file (keep-alive HTTP/1.1, ``--connections`` connections, fixed
duration). gunicorn, its sandboxes and the temp dir are removed on exit, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
sys.path.insert(0, str(BENCH_DIR))
from proctree import CLOCK_TICKS, code_version, tree_cpu_ticks, tree_rss  # noqa: E402 - found through the sys.path entry above

DEMO_SLUGS = ("greeter", "note-stats", "activity")
ON_MARKER = b'id="greeting"'  # the greeter answered
OFF_MARKER = b"The greeter is unavailable"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short runs: --duration 4 --warmup 1")
    parser.add_argument(
        "--runs", type=int, default=3, help="measured runs per mode; the median is reported (default 3)"
    )
    parser.add_argument("--duration", type=float, help="seconds measured per run (default 10; --quick 4)")
    parser.add_argument("--warmup", type=float, help="seconds of untimed load before each run (default 3; --quick 1)")
    parser.add_argument("--connections", type=int, default=8, help="keep-alive connections (default 8)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn --workers (default 2)")
    parser.add_argument("--threads", type=int, default=4, help="gunicorn --threads, gthread (default 4)")
    parser.add_argument(
        "--pool-size",
        type=int,
        help="PLUGINS_APP POOL_SIZE of each web process (default: --threads, as docs/deployment.md "
        "advises; 0 keeps the project's setting)",
    )
    parser.add_argument("--path", default="/", help="the page to load (default /)")
    parser.add_argument(
        "--loadgen",
        choices=("auto", "python", "wrk", "oha", "hey"),
        default="auto",
        help="load generator (default: wrk, oha or hey if found, else the built-in asyncio one)",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (database, gunicorn log)")
    parser.add_argument(
        "--tmp-dir",
        metavar="DIR",
        help="where the temp dir (SQLite database, gunicorn log) is made (default: the system's; "
        "/dev/shm takes the disk's fsync out of SQLite's commits)",
    )
    args = parser.parse_args()
    if args.duration is None:
        args.duration = 4.0 if args.quick else 10.0
    if args.warmup is None:
        args.warmup = 1.0 if args.quick else 3.0
    if args.pool_size is None:
        args.pool_size = args.threads
    return args


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- the built-in load generator ---------------------------------------------------------------


class LoadResult:
    def __init__(self) -> None:
        self.ok = 0
        self.bad = 0  # non-2xx responses
        self.errors = 0  # connection errors, timeouts
        self.latencies: list[float] = []
        self.statuses: dict[int, int] = {}
        self.last_error = ""


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; return (status, keep-alive)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = None
    chunked = False
    keep = lines[0].startswith(b"HTTP/1.1")
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        value = value.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value:
            chunked = True
        elif name == b"connection":
            keep = value == b"keep-alive" or (keep and value != b"close")
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length is not None:
        await reader.readexactly(length)
    else:
        await reader.read()  # until the server closes
        keep = False
    return status, keep


async def _connection(port: int, path: str, stop_at: float, result: LoadResult) -> None:
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: plugins-app-bench\r\n"
        "Accept: text/html\r\nConnection: keep-alive\r\n\r\n"
    ).encode()
    clock = time.monotonic
    writer = None
    try:
        while clock() < stop_at:
            if writer is None:
                try:
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                except OSError as exc:
                    result.errors += 1
                    result.last_error = f"connect: {exc}"
                    await asyncio.sleep(0.05)
                    continue
            t0 = clock()
            try:
                writer.write(request)
                status, keep = await asyncio.wait_for(_read_response(reader), timeout=60)
            except (
                OSError,
                asyncio.IncompleteReadError,
                asyncio.LimitOverrunError,
                asyncio.TimeoutError,
                ValueError,
            ) as exc:
                result.errors += 1
                result.last_error = f"{type(exc).__name__}: {exc}"
                writer.close()
                writer = None
                continue
            if clock() <= stop_at:  # a response that ends after the window is not counted
                result.latencies.append(clock() - t0)
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if 200 <= status < 300:
                    result.ok += 1
                else:
                    result.bad += 1
            if not keep:
                writer.close()
                writer = None
    finally:
        if writer is not None:
            writer.close()


def python_load(port: int, path: str, connections: int, seconds: float) -> LoadResult:
    result = LoadResult()

    async def main() -> None:
        stop_at = time.monotonic() + seconds
        await asyncio.gather(*(_connection(port, path, stop_at, result) for _ in range(connections)))

    asyncio.run(main())
    return result


def external_load(tool: str, port: int, path: str, connections: int, seconds: float) -> LoadResult:
    url = f"http://127.0.0.1:{port}{path}"
    secs = f"{max(1, round(seconds))}s"
    cmd = {
        "wrk": ["wrk", "-t", "2", "-c", str(connections), "-d", secs, url],
        "oha": ["oha", "-z", secs, "-c", str(connections), "--no-tui", url],
        "hey": ["hey", "-z", secs, "-c", str(connections), url],
    }[tool]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 120)
    match = re.search(r"Requests/sec:\s+([\d.]+)", proc.stdout)
    result = LoadResult()
    if proc.returncode != 0 or not match:
        result.errors = 1
        result.last_error = f"{tool} exited {proc.returncode}: {(proc.stdout + proc.stderr)[-500:]}"
        return result
    result.ok = round(float(match.group(1)) * seconds)
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", proc.stdout)
    result.bad = int(bad.group(1)) if bad else 0
    return result


# -- the site ---------------------------------------------------------------------------------------


class Site:
    """gunicorn serving the demo project on a throwaway database; close() removes everything."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="plugins-bench-web-", dir=args.tmp_dir)
        self.proc: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.seen_pids: set[int] = set()
        self.log_path = Path(self.tmp) / "gunicorn.log"
        env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "CELERY_BROKER_URL"}}
        env.update(
            {
                "DATABASE_URL": f"sqlite:///{self.tmp}/web.sqlite3",
                "DEBUG": "0",
                "SECRET_KEY": secrets.token_urlsafe(40),
                "ALLOWED_HOSTS": "127.0.0.1,localhost",
                "STATIC_ROOT": f"{self.tmp}/static",
                "PYTHONPATH": os.pathsep.join([self.tmp, str(REPO)]),
                "DJANGO_SETTINGS_MODULE": "project.settings",
            }
        )
        if args.pool_size:
            (Path(self.tmp) / "bench_web_settings.py").write_text(
                "from project.settings import *  # noqa: F401,F403\n"
                "from project.settings import PLUGINS_APP\n\n"
                f"PLUGINS_APP = {{**PLUGINS_APP, 'POOL_SIZE': {int(args.pool_size)}}}\n"
            )
            env["DJANGO_SETTINGS_MODULE"] = "bench_web_settings"
        self.env = env

    def manage(self, *argv: str) -> str:
        proc = subprocess.run(
            [sys.executable, "manage.py", *argv], cwd=REPO, env=self.env, capture_output=True, text=True, timeout=300
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"manage.py {' '.join(argv[:2])} exited {proc.returncode}: {proc.stderr.strip()[-1500:]}"
            )
        return proc.stdout

    def setup_db(self) -> None:
        log("web: migrate + seed_demo ...")
        self.manage("migrate", "--noinput", "-v", "0")
        self.manage("seed_demo")

    def set_hooks(self, on: bool) -> None:
        """Enable or disable the demo's plugins with the documented command (one process)."""
        action = "enable" if on else "disable"
        code = "from django.core.management import call_command\n" + "".join(
            f"call_command('plugins', {action!r}, {slug!r})\n" for slug in DEMO_SLUGS
        )
        self.manage("shell", "-c", code)

    def start(self) -> None:
        gunicorn = Path(sys.executable).with_name("gunicorn")
        if not gunicorn.exists():
            gunicorn = Path(shutil.which("gunicorn") or "gunicorn")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        cmd = [
            str(gunicorn),
            "project.wsgi",
            "--bind",
            f"127.0.0.1:{self.port}",
            "--workers",
            str(self.args.workers),
            "--threads",
            str(self.args.threads),
            "--worker-class",
            "gthread",
            "--timeout",
            "60",
            "--error-logfile",
            str(self.log_path),
            "--log-level",
            "warning",
        ]
        log(f"web: {' '.join(cmd[1:])}")
        self.log_fh = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self.log_fh,
            stderr=self.log_fh,
            start_new_session=True,  # a Ctrl-C goes to this script, which stops gunicorn itself
        )
        deadline = time.monotonic() + 60
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gunicorn exited {self.proc.returncode}: {self.log_tail()}")
            try:
                status, body = self.get()
                if status == 200:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"gunicorn did not answer within 60 s: {self.log_tail()}")
            time.sleep(0.2)

    def get(self) -> tuple[int, bytes]:
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as sock:
            sock.sendall(f"GET {self.args.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := sock.recv(65536):
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        return int(head.split()[1]), body

    def remember_pids(self) -> None:
        if self.proc is not None:
            self.seen_pids.update(tree_cpu_ticks(self.proc.pid))

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:].strip()
        except OSError:
            return ""

    def close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.remember_pids()
            try:
                self.proc.send_signal(signal.SIGTERM)
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                pass
        # Whatever is left (a stuck worker, a sandbox: they run in sessions of their own).
        for pid in self.seen_pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            self.log_fh.close()
        if self.args.keep:
            log(f"web: kept {self.tmp}")
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)


# -- measuring ------------------------------------------------------------------------------------------


def pick_loadgen(choice: str) -> str:
    if choice != "auto":
        return choice
    for tool in ("wrk", "oha", "hey"):
        if shutil.which(tool):
            return tool
    return "python"


def one_run(site: Site, args: argparse.Namespace, tool: str) -> dict[str, Any]:
    def load(seconds: float) -> LoadResult:
        if tool == "python":
            return python_load(site.port, args.path, args.connections, seconds)
        return external_load(tool, site.port, args.path, args.connections, seconds)

    if args.warmup > 0:
        load(args.warmup)
    site.remember_pids()
    server_before = tree_cpu_ticks(site.proc.pid)
    me_before = resource.getrusage(resource.RUSAGE_SELF)
    kids_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    result = load(args.duration)
    elapsed = time.monotonic() - t0 if tool == "python" else args.duration
    me_after = resource.getrusage(resource.RUSAGE_SELF)
    kids_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_after = tree_cpu_ticks(site.proc.pid)
    rss = tree_rss(site.proc.pid)
    site.remember_pids()
    server_s = sum(v - server_before.get(p, 0) for p, v in server_after.items()) / CLOCK_TICKS
    if tool == "python":
        client_s = (me_after.ru_utime - me_before.ru_utime) + (me_after.ru_stime - me_before.ru_stime)
    else:
        client_s = (kids_after.ru_utime - kids_before.ru_utime) + (kids_after.ru_stime - kids_before.ru_stime)
    lat = sorted(result.latencies)
    return {
        "rps": result.ok / args.duration,
        "ok": result.ok,
        "non_2xx": result.bad,
        "errors": result.errors,
        "last_error": result.last_error,
        "statuses": {str(k): v for k, v in result.statuses.items()},
        "latency_ms": {
            "median": 1000 * statistics.median(lat) if lat else None,
            "p90": 1000 * lat[int(0.9 * (len(lat) - 1))] if lat else None,
        },
        "server_cpu_pct": 100.0 * server_s / elapsed,
        "client_cpu_pct": 100.0 * client_s / elapsed,
        "server_rss_mib": rss["total_mib"],
        "server_processes": rss["children"] + 1,
    }


def check_page(site: Site, on: bool) -> str:
    """'' if the page is what the mode should serve, else what is wrong."""
    status, body = site.get()
    if status != 200:
        return f"GET {site.args.path} answered {status}"
    if on and ON_MARKER not in body:
        return "hooks on, but the page shows no greeting (a plugin failed?)"
    if not on and OFF_MARKER not in body:
        return "hooks off, but the page does not show the greeter's fallback"
    return ""


def measure(args: argparse.Namespace) -> dict[str, Any]:
    tool = pick_loadgen(args.loadgen)
    site = Site(args)
    runs: dict[str, list[dict[str, Any]]] = {"on": [], "off": []}
    problems: list[str] = []
    try:
        site.setup_db()
        site.start()
        for i in range(args.runs):
            # Alternate which mode goes first, so that neither always follows the other.
            order = ("on", "off") if i % 2 == 0 else ("off", "on")
            for mode in order:
                site.set_hooks(mode == "on")
                problem = check_page(site, mode == "on")
                if problem:
                    problems.append(f"run {i + 1}, {mode}: {problem}")
                log(f"web: run {i + 1}/{args.runs}, hooks {mode}: {args.warmup:g} s warm-up + {args.duration:g} s ...")
                r = one_run(site, args, tool)
                log(
                    f"  {r['rps']:.0f} req/s, median latency {r['latency_ms']['median'] or 0:.1f} ms, "
                    f"server CPU {r['server_cpu_pct']:.0f}%, load generator CPU {r['client_cpu_pct']:.0f}%, "
                    f"non-2xx {r['non_2xx']}, errors {r['errors']}"
                )
                runs[mode].append(r)
                problem = check_page(site, mode == "on")
                if problem:
                    problems.append(f"after run {i + 1}, {mode}: {problem}")
        warnings = [line for line in site.log_tail(200_000).splitlines() if " WARNING " in line or " ERROR " in line]
    finally:
        site.close()

    def summary(mode: str) -> dict[str, Any]:
        rs = runs[mode]
        return {
            "rps_runs": [r["rps"] for r in rs],
            "median_rps": statistics.median(r["rps"] for r in rs),
            "median_server_cpu_pct": statistics.median(r["server_cpu_pct"] for r in rs),
            "median_client_cpu_pct": statistics.median(r["client_cpu_pct"] for r in rs),
            "median_latency_ms": statistics.median(r["latency_ms"]["median"] or 0 for r in rs),
            "non_2xx": sum(r["non_2xx"] for r in rs),
            "errors": sum(r["errors"] for r in rs),
            "server_rss_mib": max(r["server_rss_mib"] for r in rs),
            "runs": rs,
        }

    on, off = summary("on"), summary("off")
    ratio = on["median_rps"] / off["median_rps"] if off["median_rps"] else None
    notes = []
    if on["non_2xx"] or on["errors"] or off["non_2xx"] or off["errors"]:
        notes.append(
            f"failed requests: hooks on {on['non_2xx']} non-2xx + {on['errors']} errors, "
            f"hooks off {off['non_2xx']} + {off['errors']}"
        )
    notes.extend(problems)
    if warnings:
        notes.append(f"{len(warnings)} warning/error lines in the gunicorn log, e.g. {warnings[0][:300]}")
    return {
        "config": {k: v for k, v in vars(args).items() if k != "json"},
        "loadgen": tool,
        "code": code_version(REPO),
        "loadavg": os.getloadavg(),
        "on": on,
        "off": off,
        "ratio": ratio,
        "goal": ">= 0.7x",
        "met": ratio is not None and ratio >= 0.7,
        "note": "; ".join(notes),
    }


def report(data: dict[str, Any]) -> None:
    a = data["config"]
    print()
    print(f"code: {data['code']}; load avg at the end " + " ".join(f"{v:.2f}" for v in data["loadavg"]))
    print(
        f"demo page {a['path']} under gunicorn: {a['workers']} workers x {a['threads']} threads (gthread), "
        f"POOL_SIZE {a['pool_size'] or 'of the project'}, DEBUG off, SQLite in {a['tmp_dir'] or tempfile.gettempdir()}; "
        f"load generator {data['loadgen']}, "
        f"{a['connections']} keep-alive connections; {a['runs']} runs x {a['duration']:g} s per mode "
        f"(+{a['warmup']:g} s warm-up each); {os.cpu_count()} CPUs shared by server and load generator"
    )
    header = f"{'mode':<10} {'req/s per run':<24} {'median':>8} {'latency':>9} {'server CPU':>11} {'loadgen CPU':>12} {'server RSS':>11}"
    print(header)
    print("-" * len(header))
    for mode in ("on", "off"):
        m = data[mode]
        runs = " / ".join(f"{v:.0f}" for v in m["rps_runs"])
        print(
            f"{'hooks ' + mode:<10} {runs:<24} {m['median_rps']:>8.0f} {m['median_latency_ms']:>7.1f}ms "
            f"{m['median_server_cpu_pct']:>10.0f}% {m['median_client_cpu_pct']:>11.0f}% {m['server_rss_mib']:>7.0f} MiB"
        )
    ratio = data["ratio"]
    print(
        f"hooks on / hooks off: {ratio:.2f}x (goal {data['goal']}: {'met' if data['met'] else 'NOT met'})"
        if ratio is not None
        else "hooks on / hooks off: -"
    )
    print("(CPU in % of one core; server = gunicorn master + workers + their sandboxes)")
    if data["note"]:
        print(f"note: {data['note']}")


def main() -> int:
    args = parse_args()

    def stop(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    # Also when started in the background by a shell, which leaves SIGINT ignored.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    data = measure(args)
    report(data)
    if args.json:
        Path(args.json).write_text(json.dumps(data, indent=2))
        print(f"results written to {args.json}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        log("web: interrupted; gunicorn stopped, temp dir removed")
        sys.exit(130)
