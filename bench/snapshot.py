"""Cold start and memory of jsrun runtimes: plain ``jsrun.Runtime()`` against runtimes
restored from a snapshot (plugins_app/sandbox/snapshot.py).

    .venv/bin/python bench/snapshot.py [--runs 30] [--runtimes 40] [--gap-ms 10] [--json out.json]

Every measurement runs in its own ``python -I`` process (jsrun 0.3.0 aborts a process that
mixes plain and snapshot runtimes in some orders). Printed (medians of --runs, p90 in
brackets; no assertions, the machine is shared and noisy):

1. creating a runtime (with ``max_heap_size`` = 64 MiB, as the worker does), then closing it:
   plain vs restored from the snapshot;
2. a whole cold start as ``Worker.load`` + the first call do it: runtime, the worker's
   ``bind_function`` calls, bootstrap (bootstrap.js), the greeter plugin
   (project/demo/plugins/greeter.js) with ``eval_async``, its park loop started with
   ``call_async`` and ``greet("x")`` answered through it (one host call, ``log``); for
   plain, snapshot + bootstrap source, snapshot + precompiled bootstrap, and "standby": a
   snapshot runtime created ahead (during the idle gap) and parked in a bound
   ``queue.get``, so that the cold start only unparks it. --gap-ms of idleness between
   runs, as between real cold starts;
3. memory per warm runtime: --runtimes runtimes each bootstrapped, greeter loaded, one
   call made and parked in the call_async park loop; VmData (what RLIMIT_DATA counts) and
   VmRSS growth per runtime, from /proc/self/status, plain vs snapshot; plus VmData per
   runtime for a few heap limits (V8's code range grows with it).
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SANDBOX_DIR = ROOT / "plugins_app" / "sandbox"
GREETER = ROOT / "project" / "demo" / "plugins" / "greeter.js"
MIB = 1024 * 1024
# Runtimes and handles a child keeps until os._exit: dropping a JsFunction while its
# runtime is parked runs jsrun's finalizer, which blocks holding the GIL that the parked
# runtime thread needs to return (a deadlock, seen here).
KEPT: list[Any] = []


# -- child side ---------------------------------------------------------------------------
def child(mode: str, runs: int, runtimes: int, gap: float) -> dict[str, Any]:
    import asyncio
    import queue
    import re
    import time

    sys.path.insert(0, str(SANDBOX_DIR))
    import jsrun
    import snapshot
    import worker

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    source = GREETER.read_text()
    kind = mode.split(":", 1)[1]
    factory_started = time.perf_counter()
    factory = None
    if kind != "plain":
        factory = snapshot.RuntimeFactory(worker.BOOTSTRAP_JS if kind in ("precompiled", "standby") else None)
    factory_ms = (time.perf_counter() - factory_started) * 1000
    names = re.findall(r'opId\("(__plugins_\w+)"\)', worker.BOOTSTRAP_JS)
    exchange_protocol = "__plugins_exchange" in names
    max_serialization = 2 * MIB + 4096

    def new_runtime(memory_mb: int = 64) -> Any:
        if factory is None:
            config = jsrun.RuntimeConfig(
                max_heap_size=memory_mb * MIB, max_serialization_bytes=max_serialization, enable_console=False
            )
            runtime = jsrun.Runtime(config)
            if hasattr(snapshot, "webapi_source"):  # the web APIs a factory's snapshot holds
                runtime.eval(snapshot.webapi_source())
            return runtime
        return factory.new_runtime(max_heap_size=memory_mb * MIB, max_serialization_bytes=max_serialization)

    class Park:
        """The worker's bound functions, reduced to queues (no reference to the runtime)."""

        def __init__(self) -> None:
            self.requests: queue.Queue[Any] = queue.Queue()
            self.replies: queue.Queue[Any] = queue.Queue()

        def host(self, name: str, args_json: str) -> str:
            return '{"ok":null}'

        def random(self, count: int) -> bytes:
            return os.urandom(int(count))

        def sleep(self, ms: float) -> bool:
            return False

        def url_source(self) -> str:
            return snapshot.url_source()

        def next(self) -> Any:
            return self.requests.get()

        def exchange(self, kind: str, text: str, retained: Any) -> Any:
            self.replies.put((kind, text))
            return self.requests.get()

        def respond(self, kind: str, text: str, retained: Any) -> None:
            self.replies.put((kind, text))

        def call(self, hook: str, args_json: str) -> None:
            self.requests.put("c" + hook + "\0" + args_json if exchange_protocol else ["call", hook, args_json])

        def stop(self) -> None:
            self.requests.put("" if exchange_protocol else None)

    async def reply(park: Park) -> tuple[str, str]:
        while True:
            try:
                return park.replies.get(timeout=0.02)
            except queue.Empty:
                await asyncio.sleep(0)

    async def make_standby() -> tuple[Any, Any, Any, Any]:
        """A runtime created ahead of need and parked in a bound ``queue.get`` (an idle
        open runtime would spin a core): what the worker could keep between calls."""
        runtime = new_runtime()
        hold: queue.Queue[Any] = queue.Queue()
        runtime.bind_function("__plugins_standby", hold.get)
        fn = runtime.eval("() => { __plugins_standby(); return 0; }")
        future = asyncio.ensure_future(fn.call_async())
        await asyncio.sleep(0)
        return runtime, hold, fn, future

    async def cold_start(standby: Any = None) -> tuple[dict[str, float], Any]:
        t0 = time.perf_counter()
        if standby is None:
            runtime = new_runtime()
        else:
            runtime, hold, fn, standby_future = standby
            # Let the standby call return, and wait for it with the GIL released: the
            # sync bind_function below holds the GIL while it waits for the runtime thread,
            # which needs the GIL to return from hold.get (deadlock, measured).
            hold.put(None)
            await standby_future
        t1 = time.perf_counter()
        park = Park()
        for name in names:
            runtime.bind_function(name, getattr(park, name.removeprefix("__plugins_")))
        t2 = time.perf_counter()
        text = worker.bootstrap_source(
            config_json='{"version":"1.0.0"}', max_chars=1 << 20, max_depth=128, memory_mb=64
        )
        park_fn = runtime.eval(factory.bootstrap_script(text) if factory is not None else text)
        t3 = time.perf_counter()
        handle = await runtime.eval_async(source)
        t4 = time.perf_counter()
        future = asyncio.ensure_future(park_fn.call_async())
        park.call("greet", '["x"]')
        first = await reply(park)
        t5 = time.perf_counter()
        park.call("greet", '["y"]')
        second = await reply(park)
        t6 = time.perf_counter()
        assert first[0] == "ok" and second[0] == "ok", (first, second)
        if standby is not None:
            KEPT.append(standby)  # its JsFunction is dropped only after close()
        phases = {
            "create": t1 - t0,
            "bind": t2 - t1,
            "bootstrap": t3 - t2,
            "load": t4 - t3,
            "first call": t5 - t4,
            "cold start total": t5 - t0,
            "second call": t6 - t5,
        }
        return {k: v * 1000 for k, v in phases.items()}, (runtime, park, park_fn, handle, future)

    async def stop(kept: Any) -> None:
        runtime, park, park_fn, handle, future = kept
        park.stop()
        await asyncio.wait({future}, timeout=2)
        runtime.close()

    def status() -> dict[str, float]:
        values = {}
        with open("/proc/self/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmData", "VmRSS"):
                    values[key] = int(rest.split()[0]) / 1024
        return values

    out: dict[str, Any] = {"mode": mode, "factory_ms": factory_ms}
    if factory is not None:
        out["snapshot_bytes"] = len(factory.snapshot)
        out["precompiled"] = factory.precompiled
    if mode.startswith("create:"):
        samples = []
        for _ in range(runs):
            time.sleep(gap)
            t = time.perf_counter()
            runtime = new_runtime()
            samples.append((time.perf_counter() - t) * 1000)
            runtime.close()
        out["samples"] = {"create": samples}
    elif mode.startswith("cold:"):
        samples: dict[str, list[float]] = {}
        for _ in range(runs):
            standby = loop.run_until_complete(make_standby()) if kind == "standby" else None
            time.sleep(gap)
            phases, kept = loop.run_until_complete(cold_start(standby))
            loop.run_until_complete(stop(kept))
            for key, value in phases.items():
                samples.setdefault(key, []).append(value)
        out["samples"] = samples
    elif mode.startswith("memory:"):
        base = status()
        after = []
        for _ in range(runtimes):
            _, kept = loop.run_until_complete(cold_start())
            KEPT.append(kept)  # parked: the park loop is blocked in next()/exchange()
            after.append(status())
        out["base"] = base
        out["first"] = after[0]
        out["last"] = after[-1]
        n = len(after) - 1
        out["per_runtime_data_mb"] = (after[-1]["VmData"] - after[0]["VmData"]) / n
        out["per_runtime_rss_mb"] = (after[-1]["VmRSS"] - after[0]["VmRSS"]) / n
        out["steps_data_mb"] = sorted({round(b["VmData"] - a["VmData"], 1) for a, b in itertools.pairwise(after)})
    elif mode.startswith("heap:"):
        # Nothing is closed in between: a closed runtime's memory would be reused.
        out["data_mb_by_heap_limit"] = {}
        KEPT.append(new_runtime(64))
        KEPT[-1].eval("1")
        for memory_mb in (8, 64, 128, 256, 512, 1024):
            before = status()["VmData"]
            batch = [new_runtime(memory_mb) for _ in range(3)]
            for runtime in batch:
                runtime.eval("1")
            KEPT.extend(batch)
            out["data_mb_by_heap_limit"][memory_mb] = round((status()["VmData"] - before) / 3, 1)
    return out


# -- parent side --------------------------------------------------------------------------
def run_child(mode: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [
        sys.executable,
        "-I",
        str(Path(__file__).resolve()),
        "--child",
        mode,
        "--runs",
        str(args.runs),
        "--runtimes",
        str(args.runtimes),
        "--gap-ms",
        str(args.gap_ms),
    ]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd="/")
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.splitlines()[-1])


def summary(values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]
    return f"{statistics.median(values):7.2f} [{p90:6.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument("--runtimes", type=int, default=40)
    parser.add_argument("--gap-ms", type=float, default=10.0)
    parser.add_argument("--json", help="also write every sample here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        result = child(args.child, args.runs, args.runtimes, args.gap_ms / 1000)
        print(json.dumps(result), flush=True)
        os._exit(0)  # interpreter finalization with jsrun threads alive can abort

    results: dict[str, Any] = {}
    print(f"jsrun runtimes: medians of {args.runs} runs [p90], ms; {args.gap_ms:g} ms idle between runs", flush=True)
    print("\n1. create + close (max_heap_size 64 MiB)")
    for kind in ("plain", "snapshot"):
        result = results[f"create:{kind}"] = run_child(f"create:{kind}", args)
        extra = ""
        if kind == "snapshot":
            extra = f"   (factory built in {result['factory_ms']:.1f} ms, snapshot {result['snapshot_bytes'] / 1024:.0f} KiB)"
        print(f"   {kind:12s} {summary(result['samples']['create'])}{extra}", flush=True)

    print("\n2. cold start: create, bind, bootstrap, greeter load, first call (greet, one host call)")
    phases = ("create", "bind", "bootstrap", "load", "first call", "cold start total", "second call")
    print("   " + " " * 12 + "".join(f"{p:>18s}" for p in phases))
    for kind in ("plain", "snapshot", "precompiled", "standby"):
        result = results[f"cold:{kind}"] = run_child(f"cold:{kind}", args)
        label = {"plain": "plain", "snapshot": "snapshot", "precompiled": "snap+precomp", "standby": "standby"}[kind]
        print("   " + f"{label:12s}" + "".join(f"{summary(result['samples'][p]):>18s}" for p in phases), flush=True)
    print("   standby: a snap+precomp runtime created and parked during the idle gap; 'create' is its unparking")
    if not results["cold:precompiled"].get("precompiled"):
        print(
            "   NOTE: the bootstrap could not be precompiled (bootstrap.js changed shape?): snap+precomp ran the source"
        )

    print(f"\n3. memory per warm runtime (bootstrap + greeter + one call, parked), over {args.runtimes} runtimes, MiB")
    for kind in ("plain", "snapshot"):
        result = results[f"memory:{kind}"] = run_child(f"memory:{kind}", args)
        print(
            f"   {kind:12s} VmData {result['per_runtime_data_mb']:6.1f}/runtime (steps {result['steps_data_mb']}), "
            f"VmRSS {result['per_runtime_rss_mb']:5.2f}/runtime; process before {result['base']['VmData']:.0f} data / "
            f"{result['base']['VmRSS']:.0f} RSS, after the first runtime {result['first']['VmData']:.0f} / "
            f"{result['first']['VmRSS']:.0f}, after the last {result['last']['VmData']:.0f} / {result['last']['VmRSS']:.0f}",
            flush=True,
        )
    for kind in ("plain", "snapshot"):
        result = results[f"heap:{kind}"] = run_child(f"heap:{kind}", args)
        by_limit = ", ".join(f"{k}: {v}" for k, v in result["data_mb_by_heap_limit"].items())
        print(f"   VmData per {kind} runtime by max_heap_size (MiB: MiB): {by_limit}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
