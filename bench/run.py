"""Benchmark of plugins_app hook calls: the goals of issue 10 against baselines measured in the same run.

Run from the repository root:

    .venv/bin/python bench/run.py            # default: 3 rounds x 2000 calls, about a minute
    .venv/bin/python bench/run.py --quick    # 1 round x 200 calls, about 20 s
    .venv/bin/python bench/run.py --web      # also the demo page under gunicorn (bench/web.py)

See bench/README.md for what each row means and how to read the table.
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import itertools
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proctree import code_version, measure_idle, tree_rss

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
GREETER_PATH = REPO / "project" / "demo" / "plugins" / "greeter.js"
MIB = 1024 * 1024
# A plugin version's first call loads it (15-30 ms): a warm call slower than this is
# counted as "probably a cold load" in the round-robin series.
SLOW_CALL_NS = 10_000_000

_TMPDIR: str | None = None  # the throwaway database's directory, removed at exit

FILTER_BOTH = "const plugin = { bench_filter_one(v) { return v + 1; }, bench_filter_ten(v) { return v + 1; } };"
FILTER_TEN = "const plugin = { bench_filter_ten(v) { return v + 1; } };"


# -- setup ---------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small run (1 round x 200 calls, 5 cold starts, 3 s idle); with --web, a short web run",
    )
    parser.add_argument("--calls", type=int, help="timed calls per series per round (default 2000; --quick 200)")
    parser.add_argument("--warmup", type=int, help="untimed calls before each series (default 100; --quick 30)")
    parser.add_argument("--rounds", type=int, help="rounds; samples of all rounds are pooled (default 3; --quick 1)")
    parser.add_argument("--cold", type=int, help="cold starts to measure (default 20; --quick 5)")
    parser.add_argument(
        "--plugins", type=int, default=50, help="plugins of the round-robin, idle and RSS rows (default 50)"
    )
    parser.add_argument("--idle-seconds", type=float, help="length of the idle CPU window (default 5; --quick 3)")
    parser.add_argument("--pool-size", type=int, help="override PLUGINS_APP POOL_SIZE (default: the project's)")
    parser.add_argument(
        "--warm-per-worker",
        type=int,
        help="override WARM_RUNTIMES_PER_WORKER (default: at least --plugins, so one sandbox can hold them all)",
    )
    parser.add_argument(
        "--scope-per-call",
        action="store_true",
        help="enter hooks.scope() around every call (timed) instead of once around each series",
    )
    parser.add_argument("--web", action="store_true", help="also run bench/web.py (gunicorn) for the demo-page row")
    parser.add_argument("--json", metavar="PATH", help="also write all results as JSON to PATH")
    args = parser.parse_args()
    defaults = {
        "calls": (2000, 200),
        "warmup": (100, 30),
        "rounds": (3, 1),
        "cold": (20, 5),
        "idle_seconds": (5.0, 3.0),
    }
    for name, (normal, quick) in defaults.items():
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else normal)
    return args


def setup_django() -> tuple[str | None, bool]:
    """Configure and start Django; return (temp dir to delete, whether the DB is ours)."""
    sys.path.insert(0, str(REPO))
    os.environ["DJANGO_SETTINGS_MODULE"] = "project.settings"
    global _TMPDIR
    tmpdir = None
    own_db = "DATABASE_URL" not in os.environ
    if own_db:
        tmpdir = _TMPDIR = tempfile.mkdtemp(prefix="plugins-bench-")
        os.environ["DATABASE_URL"] = f"sqlite:///{tmpdir}/bench.sqlite3"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    return tmpdir, own_db


def configure_sandbox(args: argparse.Namespace) -> dict[str, Any]:
    """Override PLUGINS_APP so that ``--plugins`` runtimes can stay warm; return what is used."""
    from django.conf import settings
    from django.test import override_settings

    from plugins_app import conf

    project = {
        name: conf.get(name)
        for name in (
            "POOL_SIZE",
            "WARM_RUNTIMES_PER_WORKER",
            "WORKER_DATA_LIMIT_MB",
            "RUNTIME_IDLE_SECONDS",
            "MAX_MEMORY_MB",
        )
    }
    overrides: dict[str, Any] = {}
    if args.pool_size is not None:
        overrides["POOL_SIZE"] = args.pool_size
    from plugins_app.sandbox import snapshot

    # Plugins spread over the pool's sandboxes: each must hold its share warm.
    pool_size = overrides.get("POOL_SIZE", project["POOL_SIZE"])
    share = -(-args.plugins // pool_size)
    warm = args.warm_per_worker if args.warm_per_worker is not None else max(conf.warm_runtimes_per_worker(), share)
    if warm != conf.warm_runtimes_per_worker():
        overrides["WARM_RUNTIMES_PER_WORKER"] = warm
    # System check E006: the warm runtimes, the standby one and one call must fit.
    data_needed = snapshot.worker_data_needed_mb(warm + 1, project["MAX_MEMORY_MB"])
    if data_needed > project["WORKER_DATA_LIMIT_MB"]:
        overrides["WORKER_DATA_LIMIT_MB"] = data_needed
    if overrides:
        override_settings(PLUGINS_APP={**(getattr(settings, "PLUGINS_APP", None) or {}), **overrides}).enable()
    used = {name: conf.get(name) for name in project}
    used["WARM_RUNTIMES_PER_WORKER"] = conf.warm_runtimes_per_worker()
    return {"used": used, "project": project, "overridden": sorted(overrides)}


def install(slug: str, name: str, source: str, config: dict[str, Any] | None = None) -> Any:
    from plugins_app.models import Plugin

    p = Plugin.objects.filter(slug=slug).first() or Plugin(slug=slug)
    p.name, p.source, p.config, p.enabled = name, source, config or {}, True
    p.full_clean()
    p.save()
    return p


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# -- statistics ------------------------------------------------------------------------


def pct(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    index = max(0, min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[index]


class Series:
    """Samples (ns) of one measured operation, pooled over the rounds."""

    def __init__(self, name: str, label: str) -> None:
        self.name = name
        self.label = label
        self.samples: list[int] = []
        self.round_medians_us: list[float] = []
        self.error: str | None = None

    def add_round(self, samples: list[int]) -> None:
        self.samples.extend(samples)
        if samples:
            self.round_medians_us.append(statistics.median(samples) / 1000.0)

    def stats(self) -> dict[str, Any]:
        values = sorted(v / 1000.0 for v in self.samples)
        return {
            "n": len(values),
            "median_us": statistics.median(values) if values else None,
            "p90_us": pct(values, 0.90) if values else None,
            "min_us": values[0] if values else None,
            "round_medians_us": self.round_medians_us,
            "error": self.error,
        }

    @property
    def median_us(self) -> float | None:
        return statistics.median(self.samples) / 1000.0 if self.samples else None


def timed(fn: Callable[[], Any], calls: int, warmup: int) -> list[int]:
    for _ in range(warmup):
        fn()
    clock = time.perf_counter_ns
    out = [0] * calls
    gc.collect()
    gc.disable()
    try:
        for i in range(calls):
            t0 = clock()
            fn()
            out[i] = clock() - t0
    finally:
        gc.enable()
    return out


def sandbox_state() -> list[dict[str, Any]]:
    """The pool's idle sandbox processes and the runtime keys each reports warm.

    Reads the pool's private fields (bench only): [] if the pool has none or changed shape."""
    from plugins_app.sandbox import pool

    current = getattr(pool, "_pool", None)
    workers = list(getattr(current, "_idle", None) or [])
    out = []
    for worker in workers:
        try:
            out.append({"pid": worker.pid, "warm": sorted(getattr(worker, "warm", ()) or ())})
        except Exception:  # noqa: BLE001 - a bench must not die on a private field
            pass
    return out


def per_sandbox(state: list[dict[str, Any]]) -> str:
    return ", ".join(f"pid {w['pid']}: {len(w['warm'])}" for w in state) or "no idle sandbox seen"


# -- measurements ------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        from plugins_app import hooks

        self.args = args
        self.hooks = hooks
        scope = getattr(hooks, "scope", None)
        self.scope_note = None
        if scope is None:
            self.scope_note = "hooks.scope() does not exist yet: calls are made without it (contextlib.nullcontext)"
            scope = contextlib.nullcontext
        self.scope = scope
        self.series: dict[str, Series] = {}
        self.errors: dict[str, str] = {}

    def s(self, name: str, label: str) -> Series:
        if name not in self.series:
            self.series[name] = Series(name, label)
        return self.series[name]

    def run_series(self, fn: Callable[[], Any], calls: int, warmup: int) -> list[int]:
        if self.args.scope_per_call:
            scope = self.scope

            def scoped() -> Any:
                with scope():
                    return fn()

            return timed(scoped, calls, warmup)
        with self.scope():
            return timed(fn, calls, warmup)

    def guarded(self, phase: str, names: list[str], fn: Callable[[], None]) -> None:
        """Run one phase; a failure is recorded on its series and the run goes on."""
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - recorded on the phase's series; the run goes on
            text = f"{type(exc).__name__}: {exc}"
            log(f"  {phase} failed: {text}")
            traceback.print_exc(file=sys.stderr)
            self.errors[phase] = text
            for name in names:
                series = self.series.get(name)
                if series is not None and series.error is None:
                    series.error = text

    # baselines: in a child process (no V8 in this, the Django, process)
    def baselines(self, cold: int) -> None:
        labels = {
            "jsrun.farewell": "raw jsrun call_async farewell",
            "jsrun.greet": "raw jsrun call_async greet (1 bound Python call: log)",
            "jsrun_sync.farewell": "raw jsrun sync call farewell (JsFunction(...))",
            "mini_racer.farewell": "mini-racer call farewell",
            "mini_racer.greet": "mini-racer call greet (log a JS stub)",
            "jsrun.cold": "raw jsrun cold (new Runtime + load + 1st call)",
            "mini_racer.cold": "mini-racer cold (new context + load + 1st call)",
        }
        for name, label in labels.items():
            if cold or not name.endswith(".cold"):
                self.s(name, label)

        def run() -> None:
            a = self.args
            cmd = [
                sys.executable,
                str(BENCH_DIR / "baselines.py"),
                "--calls",
                str(a.calls),
                "--warmup",
                str(a.warmup),
                "--cold",
                str(cold),
            ]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
            if proc.returncode != 0:
                raise RuntimeError(f"bench/baselines.py exited {proc.returncode}: {proc.stderr.strip()[-800:]}")
            for name, samples in json.loads(proc.stdout).items():
                self.s(name, labels.get(name, name)).add_round(samples)

        self.guarded("baselines", list(labels), run)

    def framed_echo(self) -> None:
        series = self.s("echo.round_trip", "framed round trip: protocol frames over 2 pipes, echo process, no V8")

        def run() -> None:
            import framed_echo  # bench/ is on sys.path (see the imports)

            series.add_round(framed_echo.measure(self.args.calls, self.args.warmup))

        self.guarded("framed echo", [series.name], run)

    def greeter(self) -> None:
        call = self.hooks.call
        a = self.args
        farewell = self.s("hooks.farewell", "hooks.call greeter farewell (warm, no host call)")
        greet = self.s("hooks.greet", "hooks.call greeter greet (warm, 1 host call: log)")

        def run() -> None:
            with self.scope():
                assert call("greeter", "farewell", "x") == "Goodbye, x!"
                assert call("greeter", "greet", "x") == "Hello, x! App version: 1.0.0"
            farewell.add_round(self.run_series(lambda: call("greeter", "farewell", "x"), a.calls, a.warmup))
            greet.add_round(self.run_series(lambda: call("greeter", "greet", "x"), a.calls, a.warmup))

        self.guarded("greeter", [farewell.name, greet.name], run)

    def filters(self) -> None:
        apply_filters = self.hooks.apply_filters
        a = self.args
        one = self.s("filters.one", "apply_filters, 1 plugin implements the hook")
        ten = self.s("filters.ten", "apply_filters, 10 plugins implement the hook")
        none = self.s("filters.none", "apply_filters, no plugin implements the hook")

        def run() -> None:
            with self.scope():
                assert apply_filters("bench_filter_one", 0) == 1
                assert apply_filters("bench_filter_ten", 0) == 10
                assert apply_filters("bench_filter_none", 0) == 0
            one.add_round(self.run_series(lambda: apply_filters("bench_filter_one", 0), a.calls, a.warmup))
            # Ten sandbox calls each: fewer samples, the same time spent.
            ten.add_round(
                self.run_series(
                    lambda: apply_filters("bench_filter_ten", 0), max(20, a.calls // 5), max(10, a.warmup // 5)
                )
            )
            none.add_round(self.run_series(lambda: apply_filters("bench_filter_none", 0), a.calls, a.warmup))

        self.guarded("filters", [one.name, ten.name, none.name], run)

    def round_robin(self, slugs: list[str]) -> None:
        call = self.hooks.call
        a = self.args
        single = self.s("rr.one", f"hooks.call of one plugin ({slugs[0]}) farewell, repeated")
        many = self.s("rr.many", f"hooks.call round-robin over {len(slugs)} plugins, farewell")

        def run() -> None:
            single_next = itertools.cycle(slugs[:1]).__next__
            many_next = itertools.cycle(slugs).__next__
            # Warm-up: at least two full cycles, which (re)loads any runtime evicted since.
            warmup = max(a.warmup, 2 * len(slugs))
            single.add_round(self.run_series(lambda: call(single_next(), "farewell", "x"), a.calls, a.warmup))
            many.add_round(self.run_series(lambda: call(many_next(), "farewell", "x"), a.calls, warmup))

        self.guarded("round robin", [single.name, many.name], run)

    def cold(self, source: str) -> None:
        call = self.hooks.call
        series = self.s("hooks.cold", "hooks.call cold: 1st call after a save (new version)")

        def run() -> None:
            out = []
            for i in range(self.args.cold):
                install("bench-cold", "Bench cold", source, {"version": "1.0.0", "generation": i})
                t0 = time.perf_counter_ns()
                with self.scope():
                    value = call("bench-cold", "farewell", "x")
                out.append(time.perf_counter_ns() - t0)
                assert value == "Goodbye, x!"
            series.add_round(out)

        self.guarded("cold", [series.name], run)


# -- the goals ---------------------------------------------------------------------------------


@dataclass
class Figure:
    label: str
    goal: str
    kind: str  # "ratio_max" | "ratio_min" | "abs_max" | "abs_lt"
    limit: float
    unit: str = "us"  # of measured/baseline: "us", "%", "MiB", "req/s"
    measured: float | None = None
    baseline: float | None = None
    baseline_label: str = ""
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.measured is None or not self.baseline:
            return None
        return self.measured / self.baseline

    @property
    def met(self) -> bool | None:
        if self.kind.startswith("ratio"):
            value = self.ratio
        else:
            value = self.measured
        if value is None:
            return None
        return {
            "ratio_max": value <= self.limit,
            "ratio_min": value >= self.limit,
            "abs_max": value <= self.limit,
            "abs_lt": value < self.limit,
        }[self.kind]


def fmt_value(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "us":
        return f"{value / 1000:.2f} ms" if value >= 10_000 else f"{value:.1f} us"
    if unit == "%":
        return f"{value:.2f}% core"
    if unit == "MiB":
        return f"{value:.0f} MiB"
    if unit == "req/s":
        return f"{value:.0f} req/s"
    return f"{value:g} {unit}"


def build_figures(
    b: Bench,
    n_plugins: int,
    idle: dict[str, Any] | None,
    rss: dict[str, Any] | None,
    rr_note: str,
    state_note: str,
    idle_note: str,
    web: dict[str, Any] | None,
    web_note: str,
) -> list[Figure]:
    m = {name: s.median_us for name, s in b.series.items()}

    def err(*names: str) -> str:
        for name in names:
            s = b.series.get(name)
            if s is not None and s.error:
                return f"{'failed in some round(s)' if s.samples else 'failed'}: {s.error}"
        return ""

    figures = [
        Figure(
            "warm hooks.call, no host call (greeter farewell)",
            "<= 1.0x",
            "ratio_max",
            1.0,
            measured=m.get("hooks.farewell"),
            baseline=m.get("jsrun.farewell"),
            baseline_label="raw jsrun call_async",
            note=err("hooks.farewell", "jsrun.farewell"),
        ),
        Figure(
            "warm hooks.call, no host call (greeter farewell)",
            "<= 1.0x",
            "ratio_max",
            1.0,
            measured=m.get("hooks.farewell"),
            baseline=m.get("mini_racer.farewell"),
            baseline_label="mini-racer call",
            note=err("hooks.farewell", "mini_racer.farewell"),
        ),
        Figure(
            "warm hooks.call with one log (greeter greet)",
            "<= 1.2x",
            "ratio_max",
            1.2,
            measured=m.get("hooks.greet"),
            baseline=m.get("jsrun.greet"),
            baseline_label="raw jsrun, 1 bound Python call",
            note=err("hooks.greet", "jsrun.greet"),
        ),
        Figure(
            "cold start, new version (1st call after a save)",
            "<= 5 ms",
            "abs_max",
            5000.0,
            measured=m.get("hooks.cold"),
            note=err("hooks.cold"),
        ),
        Figure(
            "apply_filters, 10 plugins",
            "<= 3x",
            "ratio_max",
            3.0,
            measured=m.get("filters.ten"),
            baseline=m.get("filters.one"),
            baseline_label="apply_filters, 1 plugin",
            note=err("filters.ten", "filters.one"),
        ),
        Figure(
            "apply_filters, no plugin implements the hook",
            "<= 30 us",
            "abs_max",
            30.0,
            measured=m.get("filters.none"),
            note=err("filters.none"),
        ),
        Figure(
            f"round-robin over {n_plugins} active plugins",
            "<= 2x",
            "ratio_max",
            2.0,
            measured=m.get("rr.many"),
            baseline=m.get("rr.one"),
            baseline_label="one plugin",
            note=err("rr.many", "rr.one") or rr_note,
        ),
        Figure(
            f"idle CPU, {n_plugins} plugins used then idle",
            "< 1% core",
            "abs_lt",
            1.0,
            unit="%",
            measured=idle["pct_core"] if idle else None,
            note=(b.errors.get("idle") and f"failed: {b.errors['idle']}")
            or "; ".join(filter(None, (state_note, idle_note))),
        ),
        Figure(
            f"RSS, Django process + sandboxes, {n_plugins} warm",
            "<= 400 MiB",
            "abs_max",
            400.0,
            unit="MiB",
            measured=rss["total_mib"] if rss else None,
            note=(b.errors.get("rss") and f"failed: {b.errors['rss']}") or state_note,
        ),
        Figure(
            "demo page, filter + template hooks (gunicorn)",
            ">= 0.7x",
            "ratio_min",
            0.7,
            unit="req/s",
            measured=web["on"]["median_rps"] if web else None,
            baseline=web["off"]["median_rps"] if web else None,
            baseline_label="hooks off (plugins disabled)",
            note=web_note,
        ),
    ]
    return figures


def print_figures(figures: list[Figure]) -> None:
    cols = ("figure", "goal", "measured", "baseline", "divided by", "ratio", "met")
    rows = []
    notes = []
    for f in figures:
        ratio = f.ratio
        met = f.met
        note_mark = ""
        if f.note:
            notes.append(f.note)
            note_mark = f" [{len(notes)}]"
        rows.append(
            (
                f.label + note_mark,
                f.goal,
                fmt_value(f.measured, f.unit),
                fmt_value(f.baseline, f.unit) if f.baseline_label else "-",
                f.baseline_label or "-",
                f"{ratio:.2f}x" if ratio is not None and f.kind.startswith("ratio") else "-",
                "-" if met is None else ("yes" if met else "NO"),
            )
        )
    widths = [max(len(c), *(len(r[i]) for r in rows)) for i, c in enumerate(cols)]
    right = {2, 3, 5}

    def line(values: tuple[str, ...]) -> str:
        return "  ".join(
            v.rjust(w) if i in right else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths, strict=True))
        ).rstrip()

    print(line(cols))
    print("-" * len(line(cols)))
    for r in rows:
        print(line(r))
    met_count = sum(1 for f in figures if f.met)
    measured = sum(1 for f in figures if f.met is not None)
    print(f"goals met: {met_count} of {measured} measured ({len(figures)} figures)")
    for i, note in enumerate(notes, 1):
        print(f"  [{i}] {note}")


def print_series(b: Bench) -> None:
    order = [
        "hooks.farewell",
        "hooks.greet",
        "jsrun.farewell",
        "jsrun.greet",
        "jsrun_sync.farewell",
        "mini_racer.farewell",
        "mini_racer.greet",
        "echo.round_trip",
        "filters.one",
        "filters.ten",
        "filters.none",
        "rr.one",
        "rr.many",
        "hooks.cold",
        "jsrun.cold",
        "mini_racer.cold",
    ]
    names = [n for n in order if n in b.series] + [n for n in b.series if n not in order]
    jsrun_m = b.series.get("jsrun.farewell").median_us if "jsrun.farewell" in b.series else None
    mr_m = b.series.get("mini_racer.farewell").median_us if "mini_racer.farewell" in b.series else None
    width = max(len(b.series[n].label) for n in names)
    header = (
        f"{'series':<{width}}  {'n':>6}  {'median':>10}  {'p90':>10}  {'min':>10}  "
        f"{'/jsrun async':>12}  {'/mini-racer':>11}  per-round medians"
    )
    print(header)
    print("-" * len(header))
    for n in names:
        s = b.series[n]
        st = s.stats()
        if not st["n"]:
            print(f"{s.label:<{width}}  {'-':>6}  " + (f"failed: {s.error}" if s.error else "not measured"))
            continue
        cold = n.endswith(".cold")
        r_js = "-" if cold or not jsrun_m else f"{st['median_us'] / jsrun_m:.2f}x"
        r_mr = "-" if cold or not mr_m else f"{st['median_us'] / mr_m:.2f}x"
        rounds = "/".join(fmt_value(v, "us").replace(" us", "") for v in st["round_medians_us"])
        print(
            f"{s.label:<{width}}  {st['n']:>6}  {fmt_value(st['median_us'], 'us'):>10}  {fmt_value(st['p90_us'], 'us'):>10}  "
            f"{fmt_value(st['min_us'], 'us'):>10}  {r_js:>12}  {r_mr:>11}  {rounds}"
        )
    print(
        "(/jsrun async and /mini-racer: median over the farewell median of that baseline; cold rows: see the cold baselines)"
    )


# -- web -----------------------------------------------------------------------------------------


def run_web(quick: bool) -> tuple[dict[str, Any] | None, str]:
    """bench/web.py in a subprocess (its output goes to stderr); returns (results, note)."""
    with tempfile.TemporaryDirectory(prefix="plugins-bench-web-json-") as tmp:
        out = Path(tmp) / "web.json"
        cmd = [sys.executable, str(BENCH_DIR / "web.py"), "--json", str(out)] + (["--quick"] if quick else [])
        log(f"web: {' '.join(cmd[1:])}")
        proc = subprocess.run(cmd, stdout=sys.stderr, timeout=1800)
        if proc.returncode != 0 or not out.exists():
            return None, f"bench/web.py failed (exit {proc.returncode}); see its output above"
        data = json.loads(out.read_text())
    return data, data.get("note", "")


# -- main ----------------------------------------------------------------------------------------


def main() -> None:
    args = parse_args()
    started = time.monotonic()
    tmpdir, own_db = setup_django()
    sandbox_settings = configure_sandbox(args)
    source = GREETER_PATH.read_text()
    from plugins_app import conf
    from plugins_app.models import Plugin
    from plugins_app.sandbox import pool

    b = Bench(args)
    if b.scope_note:
        log(f"note: {b.scope_note}")
    rr_slugs = [f"bench-rr-{i}" for i in range(args.plugins)]
    idle = rss = None
    warm_series: list[dict[str, Any]] = []
    warm_before: list[dict[str, Any]] = []
    warm_after: list[dict[str, Any]] = []
    rr_note = state_note = idle_note = ""
    web = None
    web_note = "not measured: run bench/web.py, or bench/run.py --web"
    try:
        log("installing plugins ...")
        install("greeter", "Greeter", source, {"version": "1.0.0"})
        for i in range(10):
            install(f"bench-filter-{i}", f"Bench filter {i}", FILTER_BOTH if i == 0 else FILTER_TEN)
        for slug in rr_slugs:
            install(slug, f"Bench {slug}", source, {"version": "1.0.0"})

        for r in range(args.rounds):
            log(f"round {r + 1}/{args.rounds}: baselines (child process) ...")
            b.baselines(args.cold if r == args.rounds - 1 else 0)
            log("  framed echo, hooks.call, apply_filters ...")
            b.framed_echo()
            b.greeter()
            b.filters()
            log(f"  round-robin over {args.plugins} plugins ...")
            b.round_robin(rr_slugs)

        rr_keys: dict[str, str] = {}
        for slug in rr_slugs:
            row = Plugin.objects.dispatch_row(slug)
            if row is not None:
                rr_keys[row.runtime_key] = slug

        def warm_rr(state: list[dict[str, Any]]) -> set[str]:
            return {k for w in state for k in w["warm"] if k in rr_keys}

        def short_of(state: list[dict[str, Any]], what: str) -> str:
            used = sandbox_settings["used"]
            return (
                f"only {len(warm_rr(state))} of {len(rr_slugs)} plugins were warm {what} (warm runtimes per sandbox: "
                f"{per_sandbox(state)}; POOL_SIZE {used['POOL_SIZE']} x WARM_RUNTIMES_PER_WORKER "
                f"{used['WARM_RUNTIMES_PER_WORKER']})"
            )

        # Right after the last round-robin series: were all its runtimes warm?
        warm_series = sandbox_state()
        slow = sum(1 for v in b.series["rr.many"].samples if v > SLOW_CALL_NS) if "rr.many" in b.series else 0
        slow_text = f"{slow} of the round-robin calls took > {SLOW_CALL_NS / 1e6:g} ms (cold loads or stalls)"
        if len(warm_rr(warm_series)) < len(rr_slugs):
            rr_note = short_of(warm_series, "after the round-robin") + f"; {slow_text}"
        elif slow:
            rr_note = slow_text

        # RSS and idle CPU with exactly the round-robin plugins warm: a fresh pool, each
        # plugin called twice (the greeter and filter plugins are not loaded in it).
        log(f"RSS with {len(rr_slugs)} warm plugins ...")
        try:
            pool.shutdown_pool()
            with b.scope():
                for slug in rr_slugs * 2:
                    b.hooks.call(slug, "farewell", "x")
            warm_before = sandbox_state()
            rss = tree_rss(os.getpid())
            rss["warm_runtimes"] = sum(len(w["warm"]) for w in warm_before)
            rss["warm_plugins"] = len(warm_rr(warm_before))
            if len(warm_rr(warm_before)) < len(rr_slugs):
                state_note = short_of(warm_before, "when RSS was read")
        except Exception as exc:  # noqa: BLE001 - recorded in the results; the run goes on
            b.errors["rss"] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc(file=sys.stderr)
        # The calls' own after-work (the execution log's writer flushes every
        # CALL_LOG_FLUSH_SECONDS) is not idleness: let it pass before the window opens.
        settle = max(1.0, float(conf.get("CALL_LOG_FLUSH_SECONDS"))) + 0.5
        log(f"idle CPU ({settle:g} s settle + {args.idle_seconds:g} s) ...")
        time.sleep(settle)
        try:
            idle = measure_idle(args.idle_seconds)
            idle["settle_seconds"] = settle
        except Exception as exc:  # noqa: BLE001 - recorded in the results; the run goes on
            b.errors["idle"] = f"{type(exc).__name__}: {exc}"
        warm_after = sandbox_state()
        if idle and len(warm_rr(warm_after)) < len(warm_rr(warm_before)):
            idle_note = (
                f"{len(warm_rr(warm_before)) - len(warm_rr(warm_after))} runtimes were closed during the idle "
                f"window (RUNTIME_IDLE_SECONDS {sandbox_settings['used']['RUNTIME_IDLE_SECONDS']:g})"
            )

        log("cold starts ...")
        b.cold(source)
    finally:
        # -- tear down: the sandbox pool before gunicorn gets the CPU -----------------------------
        try:
            if not own_db:
                Plugin.objects.filter(slug__startswith="bench-").delete()
        finally:
            pool.shutdown_pool()

    if args.web:
        try:
            web, web_note = run_web(args.quick)
        except Exception as exc:  # noqa: BLE001 - noted in the table; the run goes on
            web_note = f"bench/web.py failed: {type(exc).__name__}: {exc}"
    total_seconds = time.monotonic() - started

    # -- print ------------------------------------------------------------------------------------
    from importlib.metadata import version

    import django

    def pkg(name: str) -> str:
        try:
            return version(name)
        except Exception:  # noqa: BLE001 - an unknown version prints as "?"
            return "?"

    figures = build_figures(b, args.plugins, idle, rss, rr_note, state_note, idle_note, web, web_note)
    used = sandbox_settings["used"]
    print()
    print(
        f"plugins_app benchmark: python {platform.python_version()}, django {django.get_version()}, "
        f"jsrun {pkg('jsrun')}, mini-racer {pkg('mini-racer')}, {os.cpu_count()} CPUs, load avg "
        + " ".join(f"{v:.2f}" for v in os.getloadavg())
    )
    print(f"code: {code_version(REPO)}")
    print(
        f"warm: {args.rounds} round(s) x {args.calls} calls (+{args.warmup} warm-up) per series "
        f"(apply_filters 10 plugins: {max(20, args.calls // 5)}); cold: {args.cold} starts; "
        f"idle window {args.idle_seconds:g} s"
    )
    overridden = sandbox_settings["overridden"]
    print(
        "sandbox settings: "
        + ", ".join(f"{k} {v}" for k, v in used.items())
        + (
            " (set by the bench: " + ", ".join(f"{k} was {sandbox_settings['project'][k]}" for k in overridden) + ")"
            if overridden
            else ""
        )
    )
    print(
        "hooks.scope(): "
        + (
            b.scope_note
            or (
                "entered around every call"
                if args.scope_per_call
                else "entered once around each series (warm-up + timed calls)"
            )
        )
    )
    print()
    print_figures(figures)
    print()
    print_series(b)
    print()
    if rss:
        print(
            f"RSS with {rss['warm_plugins']}/{len(rr_slugs)} plugins warm ({rss['warm_runtimes']} runtimes): {rss['total_mib']:.0f} MiB = this "
            f"Django process {rss['self_mib']:.0f} MiB + {rss['children']} sandbox process(es) {rss['children_mib']:.0f} MiB "
            f"(warm runtimes per sandbox: {per_sandbox(warm_before)})"
        )
    if idle:
        print(
            f"idle CPU after calling {len(rr_slugs)} plugins: {idle['pct_core']:.2f}% of one core over {idle['seconds']:.1f} s, "
            f"starting {idle['settle_seconds']:g} s after the last call "
            f"(this process {idle['self_pct_core']:.2f}%, {idle['children']} child process(es); the sampler's own "
            f"{idle['sampler_pct_core']:.2f}% excluded); warm runtimes at the end: " + per_sandbox(warm_after)
        )
        print(
            "  timeline (% of one core per sample): "
            + ", ".join(f"{p['t_s']:.1f}s {p['pct_core']:.0f}%" for p in idle["timeline"])
        )
    if web:
        for mode in ("on", "off"):
            w = web[mode]
            print(
                f"web, hooks {mode}: "
                + " / ".join(f"{v:.0f}" for v in w["rps_runs"])
                + f" req/s (median {w['median_rps']:.0f}); "
                f"server CPU {w['median_server_cpu_pct']:.0f}% core, load generator CPU {w['median_client_cpu_pct']:.0f}% core"
            )
    for phase, text in b.errors.items():
        print(f"FAILED phase {phase}: {text}")
    print(f"total benchmark time: {total_seconds:.1f} s")

    if args.json:
        payload = {
            "config": vars(args),
            "environment": {
                "python": platform.python_version(),
                "django": django.get_version(),
                "jsrun": pkg("jsrun"),
                "mini_racer": pkg("mini-racer"),
                "cpus": os.cpu_count(),
                "loadavg": os.getloadavg(),
                "code": code_version(REPO),
            },
            "sandbox_settings": sandbox_settings,
            "scope": b.scope_note or ("per call" if args.scope_per_call else "per series"),
            "figures": [{**asdict(f), "ratio": f.ratio, "met": f.met} for f in figures],
            "series": {name: {"label": s.label, **s.stats()} for name, s in b.series.items()},
            "idle_cpu": idle,
            "rss": rss,
            "sandboxes_after_round_robin": warm_series,
            "sandboxes_before_idle": warm_before,
            "sandboxes_after_idle": warm_after,
            "web": web,
            "errors": b.errors,
            "total_seconds": total_seconds,
        }
        Path(args.json).write_text(json.dumps(payload, indent=2))
        print(f"results written to {args.json}")
    # Only now: this process's execution-log writer may still flush to the database.
    if tmpdir:
        shutil.rmtree(tmpdir, ignore_errors=True)


if __name__ == "__main__":
    code = 0
    try:
        main()
    except SystemExit as exc:  # argparse --help / usage errors
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
        code = 1
        try:
            from plugins_app.sandbox import pool

            pool.shutdown_pool()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass
        if _TMPDIR:
            shutil.rmtree(_TMPDIR, ignore_errors=True)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
