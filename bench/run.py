"""Benchmark of plugins_app hook calls against in-process JS engines.

Run from the repository root:

    .venv/bin/python bench/run.py [--calls N] [--rounds R] [--json PATH]

See bench/README.md for what each row means.
"""
from __future__ import annotations

import argparse
import asyncio
import gc
import json
import math
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
GREETER_PATH = REPO / "project" / "demo" / "plugins" / "greeter.js"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# Every jsrun handle (JsFunction, eval results) created by this process is kept here
# until the process ends: a garbage-collected handle's finalizer can block on its
# runtime's thread. The process exits with os._exit, so nothing is ever finalized.
_KEEP: list[Any] = []


# -- setup ---------------------------------------------------------------------------

def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per series per round (default 2000)")
    parser.add_argument("--warmup", type=int, default=200, help="untimed calls before each series (default 200)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; samples of all rounds are pooled (default 3)")
    parser.add_argument("--cold", type=int, default=20, help="cold starts to measure (default 20)")
    parser.add_argument("--idle-plugins", type=int, default=20, help="plugins called once before the idle window")
    parser.add_argument("--idle-seconds", type=float, default=5.0, help="length of the idle CPU window (default 5)")
    parser.add_argument("--json", metavar="PATH", help="also write all results as JSON to PATH")
    return parser.parse_args()


def setup_django() -> tuple[str | None, bool]:
    """Configure and start Django; return (temp dir to delete, whether the DB is ours)."""
    sys.path.insert(0, str(REPO))
    os.environ["DJANGO_SETTINGS_MODULE"] = "project.settings"
    tmpdir = None
    own_db = "DATABASE_URL" not in os.environ
    if own_db:
        tmpdir = tempfile.mkdtemp(prefix="plugins-bench-")
        os.environ["DATABASE_URL"] = f"sqlite:///{tmpdir}/bench.sqlite3"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
    return tmpdir, own_db


def install(slug: str, name: str, source: str, config: dict[str, Any]) -> Any:
    from plugins_app.models import Plugin

    p = Plugin.objects.filter(slug=slug).first() or Plugin(slug=slug)
    p.name, p.source, p.config, p.enabled = name, source, config, True
    p.full_clean()
    p.save()
    return p


# -- statistics ------------------------------------------------------------------------

def pct(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    index = max(0, min(len(sorted_values) - 1, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[index]


def summarize(samples_ns: list[int]) -> dict[str, float]:
    values = sorted(v / 1000.0 for v in samples_ns)
    return {
        "n": len(values),
        "median_us": statistics.median(values) if values else float("nan"),
        "p90_us": pct(values, 0.90),
        "min_us": values[0] if values else float("nan"),
    }


class Series:
    """Samples of one measured operation, pooled over the rounds."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.samples: list[int] = []
        self.round_medians_us: list[float] = []

    def add_round(self, samples: list[int]) -> None:
        self.samples.extend(samples)
        if samples:
            self.round_medians_us.append(statistics.median(samples) / 1000.0)


def timed_sync(fn: Any, args: tuple[Any, ...], calls: int, warmup: int) -> list[int]:
    for _ in range(warmup):
        fn(*args)
    clock = time.perf_counter_ns
    out = [0] * calls
    gc.collect()
    gc.disable()
    try:
        for i in range(calls):
            t0 = clock()
            fn(*args)
            out[i] = clock() - t0
    finally:
        gc.enable()
    return out


# -- baselines ----------------------------------------------------------------------

def bench_raw_jsrun(loop: asyncio.AbstractEventLoop, source: str, calls: int, warmup: int) -> dict[str, list[int]]:
    """One in-process jsrun runtime: greeter + Python `log` + dispatcher; closed at the end."""
    import jsrun

    async def run() -> dict[str, list[int]]:
        rt = jsrun.Runtime()
        _KEEP.append(rt)
        try:
            rt.bind_function("log", lambda *a: None)
            _KEEP.append(rt.eval('globalThis.config = {version: "1.0.0"}; undefined'))
            _KEEP.append(await rt.eval_async(source))
            d = rt.eval("(h, a) => plugin[h](...a)")
            _KEEP.append(d)
            assert await d.call_async("farewell", "x") == "Goodbye, x!"
            assert await d.call_async("greet", "x") == "Hello, x! App version: 1.0.0"
            clock = time.perf_counter_ns
            result = {}
            for hook in ("farewell", "greet"):
                for _ in range(warmup):
                    await d.call_async(hook, "x")
                out = [0] * calls
                gc.collect()
                gc.disable()
                try:
                    for i in range(calls):
                        t0 = clock()
                        await d.call_async(hook, "x")
                        out[i] = clock() - t0
                finally:
                    gc.enable()
                result[hook] = out
            return result
        finally:
            rt.close()  # an idle open runtime spins a core: never leave it open

    return loop.run_until_complete(run())


def bench_mini_racer(source: str, calls: int, warmup: int) -> dict[str, list[int]]:
    """mini-racer context with `log` stubbed in JS (no host crossing) and `config` in JS."""
    from py_mini_racer import MiniRacer

    ctx = MiniRacer()
    try:
        ctx.eval('var log = function () {}; var config = {version: "1.0.0"};')
        ctx.eval(source)
        assert ctx.call("plugin.farewell", "x") == "Goodbye, x!"
        assert ctx.call("plugin.greet", "x") == "Hello, x! App version: 1.0.0"
        return {
            "farewell": timed_sync(ctx.call, ("plugin.farewell", "x"), calls, warmup),
            "greet": timed_sync(ctx.call, ("plugin.greet", "x"), calls, warmup),
        }
    finally:
        ctx.close()


def cold_raw_jsrun(loop: asyncio.AbstractEventLoop, source: str, n: int) -> list[int]:
    """New jsrun Runtime + bind + config + load + dispatcher + first call (close not timed)."""
    import jsrun

    async def once() -> int:
        t0 = time.perf_counter_ns()
        rt = jsrun.Runtime()
        _KEEP.append(rt)
        try:
            rt.bind_function("log", lambda *a: None)
            _KEEP.append(rt.eval('globalThis.config = {version: "1.0.0"}; undefined'))
            _KEEP.append(await rt.eval_async(source))
            d = rt.eval("(h, a) => plugin[h](...a)")
            _KEEP.append(d)
            await d.call_async("farewell", "x")
            return time.perf_counter_ns() - t0
        finally:
            rt.close()

    return [loop.run_until_complete(once()) for _ in range(n)]


def cold_mini_racer(source: str, n: int) -> list[int]:
    """New MiniRacer context + stubs + load + first call (close not timed)."""
    from py_mini_racer import MiniRacer

    out = []
    for _ in range(n):
        t0 = time.perf_counter_ns()
        ctx = MiniRacer()
        ctx.eval('var log = function () {}; var config = {version: "1.0.0"};')
        ctx.eval(source)
        ctx.call("plugin.farewell", "x")
        out.append(time.perf_counter_ns() - t0)
        ctx.close()
    return out


# -- plugins_app ------------------------------------------------------------------------

def bench_hooks(calls: int, warmup: int) -> dict[str, list[int]]:
    from plugins_app import hooks

    assert hooks.call("greeter", "farewell", "x") == "Goodbye, x!"
    assert hooks.call("greeter", "greet", "x") == "Hello, x! App version: 1.0.0"
    return {
        "farewell": timed_sync(hooks.call, ("greeter", "farewell", "x"), calls, warmup),
        "greet": timed_sync(hooks.call, ("greeter", "greet", "x"), calls, warmup),
    }


def cold_hooks(source: str, n: int) -> list[int]:
    """Save a new version of plugin `bench-cold` (config changes), then time its first call."""
    from plugins_app import hooks

    out = []
    for i in range(n):
        install("bench-cold", "Bench cold", source, {"version": "1.0.0", "generation": i})
        t0 = time.perf_counter_ns()
        value = hooks.call("bench-cold", "farewell", "x")
        out.append(time.perf_counter_ns() - t0)
        assert value == "Goodbye, x!"
    return out


def wait_runtimes_idle() -> None:
    """Settle between phases. The sandbox parks its warm runtimes (no CPU while idle),
    so unlike raw jsrun runtimes they need not be closed before a baseline runs."""
    time.sleep(0.5)


# -- idle CPU ------------------------------------------------------------------------------

def _read_stat(pid: int) -> tuple[int, int] | None:
    """(ppid, utime+stime in ticks) of ``pid``, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2:].split()
    # fields[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
    return int(fields[1]), int(fields[11]) + int(fields[12])


def tree_cpu_ticks(root: int) -> dict[int, int]:
    """CPU ticks of ``root`` and all its descendants, found through /proc/*/stat ppid."""
    stats: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _read_stat(int(entry))
            if st is not None:
                stats[int(entry)] = st
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    out: dict[int, int] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in stats and pid not in out:
            out[pid] = stats[pid][1]
            todo.extend(children.get(pid, ()))
    return out


def measure_idle(seconds: float, sample_every: float = 0.5) -> dict[str, Any]:
    """Percent of one core used by this process tree while nothing is called."""
    me = os.getpid()
    first = tree_cpu_ticks(me)
    last = dict(first)
    start = time.monotonic()
    timeline = []
    prev_total, prev_t = 0, start
    while True:
        now = time.monotonic()
        if now - start >= seconds:
            break
        time.sleep(min(sample_every, seconds - (now - start)))
        current = tree_cpu_ticks(me)
        last.update(current)  # processes that exit keep their last seen value
        total = sum(last[p] - first.get(p, 0) for p in last)
        t = time.monotonic()
        timeline.append(
            {"t_s": round(t - start, 2), "pct_core": 100.0 * (total - prev_total) / CLOCK_TICKS / (t - prev_t)}
        )
        prev_total, prev_t = total, t
    elapsed = time.monotonic() - start
    per_pid = {p: last[p] - first.get(p, 0) for p in last}
    total = sum(per_pid.values())
    return {
        "seconds": elapsed,
        "pct_core": 100.0 * total / CLOCK_TICKS / elapsed,
        "self_pct_core": 100.0 * per_pid.get(me, 0) / CLOCK_TICKS / elapsed,
        "children": len(per_pid) - (1 if me in per_pid else 0),
        "timeline": timeline,
    }


# -- report ----------------------------------------------------------------------------------

def ratio(a: dict[str, float] | None, b: dict[str, float] | None) -> str:
    if not a or not b or not b["median_us"]:
        return "-"
    return f"{a['median_us'] / b['median_us']:.2f}x"


def main() -> None:
    args = parse_args()
    tmpdir, own_db = setup_django()
    source = GREETER_PATH.read_text()

    from plugins_app.sandbox import pool

    started = time.monotonic()
    install("greeter", "Greeter", source, {"version": "1.0.0"})

    series = {
        key: Series(key)
        for key in (
            "hooks.farewell", "hooks.greet",
            "jsrun.farewell", "jsrun.greet",
            "mini_racer.farewell", "mini_racer.greet",
        )
    }
    loop = asyncio.new_event_loop()  # the one loop for every jsrun coroutine
    asyncio.set_event_loop(loop)

    for r in range(args.rounds):
        print(f"round {r + 1}/{args.rounds} ...", file=sys.stderr, flush=True)
        wait_runtimes_idle()
        raw = bench_raw_jsrun(loop, source, args.calls, args.warmup)  # runtime closed on return
        series["jsrun.farewell"].add_round(raw["farewell"])
        series["jsrun.greet"].add_round(raw["greet"])
        mr = bench_mini_racer(source, args.calls, args.warmup)
        series["mini_racer.farewell"].add_round(mr["farewell"])
        series["mini_racer.greet"].add_round(mr["greet"])
        hk = bench_hooks(args.calls, args.warmup)
        series["hooks.farewell"].add_round(hk["farewell"])
        series["hooks.greet"].add_round(hk["greet"])

    print("cold starts ...", file=sys.stderr, flush=True)
    wait_runtimes_idle()
    cold = {
        "jsrun.cold": cold_raw_jsrun(loop, source, args.cold),
        "mini_racer.cold": cold_mini_racer(source, args.cold),
        "hooks.cold": cold_hooks(source, args.cold),
    }

    print("idle CPU ...", file=sys.stderr, flush=True)
    from plugins_app import hooks

    slugs = [f"bench-{i}" for i in range(args.idle_plugins)]
    for slug in slugs:
        install(slug, f"Bench {slug}", source, {"version": "1.0.0"})
    wait_runtimes_idle()
    for slug in slugs:
        assert hooks.call(slug, "farewell", "x") == "Goodbye, x!"
    idle = measure_idle(args.idle_seconds)
    total_seconds = time.monotonic() - started

    # -- print ------------------------------------------------------------------------
    stats = {key: summarize(s.samples) for key, s in series.items()}
    stats.update({key: summarize(v) for key, v in cold.items()})
    rows = [
        ("hooks.call farewell (warm, no host call)", "hooks.farewell", "jsrun.farewell", "mini_racer.farewell"),
        ("hooks.call greet (warm, 1 host call: log)", "hooks.greet", "jsrun.greet", "mini_racer.greet"),
        ("raw jsrun call_async farewell", "jsrun.farewell", "jsrun.farewell", "mini_racer.farewell"),
        ("raw jsrun call_async greet (Python log)", "jsrun.greet", "jsrun.greet", "mini_racer.greet"),
        ("mini-racer call farewell", "mini_racer.farewell", "jsrun.farewell", "mini_racer.farewell"),
        ("mini-racer call greet (JS stub log)", "mini_racer.greet", "jsrun.greet", "mini_racer.greet"),
        ("hooks.call cold (new version, 1st call)", "hooks.cold", "jsrun.cold", "mini_racer.cold"),
        ("raw jsrun cold (new Runtime+load+call)", "jsrun.cold", "jsrun.cold", "mini_racer.cold"),
        ("mini-racer cold (new ctx+load+call)", "mini_racer.cold", "jsrun.cold", "mini_racer.cold"),
    ]
    import django
    import jsrun  # noqa: F401
    from importlib.metadata import version

    print()
    print(
        f"plugins_app benchmark: python {platform.python_version()}, django {django.get_version()}, "
        f"jsrun {version('jsrun')}, mini-racer {version('mini-racer')}, {os.cpu_count()} CPUs"
    )
    print(
        f"warm: {args.rounds} rounds x {args.calls} calls (+{args.warmup} warm-up) per row; "
        f"cold: {args.cold} starts; all times in microseconds"
    )
    width = max(len(r[0]) for r in rows)
    header = f"{'name':<{width}}  {'median us':>10}  {'p90 us':>10}  {'vs jsrun':>9}  {'vs mini-racer':>13}"
    print(header)
    print("-" * len(header))
    for label, key, raw_key, mr_key in rows:
        s = stats[key]
        print(
            f"{label:<{width}}  {s['median_us']:>10.1f}  {s['p90_us']:>10.1f}  "
            f"{ratio(s, stats[raw_key]):>9}  {ratio(s, stats[mr_key]):>13}"
        )
    print("(ratios: median / median of the baseline for the same hook; cold rows against the cold baselines)")
    per_round = ", ".join(
        f"{k} " + "/".join(f"{m:.0f}" for m in s.round_medians_us) for k, s in series.items()
    )
    print(f"per-round medians us: {per_round}")
    print()
    print(
        f"idle CPU after calling {len(slugs)} plugins once each: {idle['pct_core']:.1f}% of one core "
        f"over {idle['seconds']:.1f} s (this process {idle['self_pct_core']:.1f}%, "
        f"{idle['children']} child process(es))"
    )
    print("  timeline (% of one core per sample): " + ", ".join(
        f"{p['t_s']:.1f}s {p['pct_core']:.0f}%" for p in idle["timeline"]
    ))
    print(f"total benchmark time: {total_seconds:.1f} s")

    if args.json:
        payload = {
            "config": vars(args),
            "environment": {
                "python": platform.python_version(),
                "django": django.get_version(),
                "jsrun": version("jsrun"),
                "mini_racer": version("mini-racer"),
                "cpus": os.cpu_count(),
            },
            "results": {
                key: {**stats[key], **({"round_medians_us": series[key].round_medians_us} if key in series else {})}
                for key in stats
            },
            "ratios": {
                label: {
                    "vs_jsrun": stats[key]["median_us"] / stats[raw_key]["median_us"],
                    "vs_mini_racer": stats[key]["median_us"] / stats[mr_key]["median_us"],
                }
                for label, key, raw_key, mr_key in rows
            },
            "idle_cpu": idle,
        }
        Path(args.json).write_text(json.dumps(payload, indent=2))
        print(f"results written to {args.json}")

    # -- tear down ----------------------------------------------------------------------------
    if not own_db:
        from plugins_app.models import Plugin

        Plugin.objects.filter(slug__in=[*slugs, "bench-cold"]).delete()
    pool.shutdown_pool()
    if tmpdir:
        shutil.rmtree(tmpdir, ignore_errors=True)
    sys.stdout.flush()
    sys.stderr.flush()
    # Every jsrun runtime is closed; still, interpreter shutdown with jsrun loaded can
    # abort, and _KEEP must never be finalized.
    os._exit(0)


if __name__ == "__main__":
    try:
        main()
    except SystemExit as exc:  # argparse --help / usage errors
        sys.stdout.flush()
        os._exit(exc.code if isinstance(exc.code, int) else 1)
    except BaseException:
        import traceback

        traceback.print_exc()
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            from plugins_app.sandbox import pool

            pool.shutdown_pool()
        except Exception:
            pass
        os._exit(1)
