"""In-process JS engine baselines for bench/run.py, run in a child process of their own.

    .venv/bin/python bench/baselines.py --calls N --warmup W [--cold C]

Prints one JSON object on stdout: series name -> list of nanoseconds per call. Series:

- ``jsrun.farewell`` / ``jsrun.greet``: one ``jsrun.Runtime()``, greeter loaded with
  ``eval_async``, ``log`` bound to a Python no-op, a dispatcher ``(h, a) => plugin[h](...a)``
  called with ``await d.call_async(hook, ["x"])`` (greet crosses into Python once, for log).
- ``jsrun_sync.farewell``: the same dispatcher called synchronously, ``d("farewell", ["x"])``
  (a sync call deadlocks when JS calls back into Python, so there is no sync greet).
- ``mini_racer.farewell`` / ``mini_racer.greet``: ``ctx.call("plugin.<hook>", "x")`` in a
  ``MiniRacer`` context, ``log`` a JS stub (no host crossing).
- with ``--cold C``: ``jsrun.cold`` (new Runtime + bind + config + load + first call) and
  ``mini_racer.cold`` (new context + stubs + load + first call), C of each.

Run apart from the Django process so that the RSS and idle CPU measured by bench/run.py are
those of a Django process and its sandboxes, with no V8 of the baselines in it. Every
jsrun runtime is closed before the next series (an idle open runtime spins a core) and
the process ends with ``os._exit`` (jsrun handles must never be finalized).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
GREETER_PATH = REPO / "project" / "demo" / "plugins" / "greeter.js"
CONFIG_JS = 'globalThis.config = {version: "1.0.0"}; undefined'
DISPATCHER = "(h, a) => plugin[h](...a)"
ARGS = ["x"]

_KEEP: list[Any] = []  # jsrun handles: never garbage-collected (see module docstring)


def timed_loop(fn: Any, args: tuple[Any, ...], calls: int, warmup: int) -> list[int]:
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


def raw_jsrun(loop: asyncio.AbstractEventLoop, source: str, calls: int, warmup: int) -> dict[str, list[int]]:
    import jsrun

    async def run() -> dict[str, list[int]]:
        rt = jsrun.Runtime()
        _KEEP.append(rt)
        try:
            rt.bind_function("log", lambda *a: None)
            _KEEP.append(rt.eval(CONFIG_JS))
            _KEEP.append(await rt.eval_async(source))
            d = rt.eval(DISPATCHER)
            _KEEP.append(d)
            assert await d.call_async("farewell", ARGS) == "Goodbye, x!"
            assert await d.call_async("greet", ARGS) == "Hello, x! App version: 1.0.0"
            assert d("farewell", ARGS) == "Goodbye, x!"
            clock = time.perf_counter_ns
            result = {}
            for hook in ("farewell", "greet"):
                for _ in range(warmup):
                    await d.call_async(hook, ARGS)
                out = [0] * calls
                gc.collect()
                gc.disable()
                try:
                    for i in range(calls):
                        t0 = clock()
                        await d.call_async(hook, ARGS)
                        out[i] = clock() - t0
                finally:
                    gc.enable()
                result[f"jsrun.{hook}"] = out
            # Sync: only without host calls (a sync call whose JS calls Python deadlocks).
            result["jsrun_sync.farewell"] = timed_loop(d, ("farewell", ARGS), calls, warmup)
            return result
        finally:
            rt.close()

    return loop.run_until_complete(run())


def mini_racer(source: str, calls: int, warmup: int) -> dict[str, list[int]]:
    from py_mini_racer import MiniRacer

    ctx = MiniRacer()
    try:
        ctx.eval('var log = function () {}; var config = {version: "1.0.0"};')
        ctx.eval(source)
        assert ctx.call("plugin.farewell", "x") == "Goodbye, x!"
        assert ctx.call("plugin.greet", "x") == "Hello, x! App version: 1.0.0"
        return {
            "mini_racer.farewell": timed_loop(ctx.call, ("plugin.farewell", "x"), calls, warmup),
            "mini_racer.greet": timed_loop(ctx.call, ("plugin.greet", "x"), calls, warmup),
        }
    finally:
        ctx.close()


def cold_jsrun(loop: asyncio.AbstractEventLoop, source: str, n: int) -> list[int]:
    import jsrun

    async def once() -> int:
        t0 = time.perf_counter_ns()
        rt = jsrun.Runtime()
        _KEEP.append(rt)
        try:
            rt.bind_function("log", lambda *a: None)
            _KEEP.append(rt.eval(CONFIG_JS))
            _KEEP.append(await rt.eval_async(source))
            d = rt.eval(DISPATCHER)
            _KEEP.append(d)
            await d.call_async("farewell", ARGS)
            return time.perf_counter_ns() - t0
        finally:
            rt.close()

    return [loop.run_until_complete(once()) for _ in range(n)]


def cold_mini_racer(source: str, n: int) -> list[int]:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--warmup", type=int, default=100)
    parser.add_argument("--cold", type=int, default=0)
    args = parser.parse_args()
    source = GREETER_PATH.read_text()
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    result: dict[str, list[int]] = {}
    result.update(raw_jsrun(loop, source, args.calls, args.warmup))
    result.update(mini_racer(source, args.calls, args.warmup))
    if args.cold:
        result["jsrun.cold"] = cold_jsrun(loop, source, args.cold)
        result["mini_racer.cold"] = cold_mini_racer(source, args.cold)
    sys.stdout.write(json.dumps(result))
    sys.stdout.flush()


if __name__ == "__main__":
    try:
        main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)  # interpreter shutdown with jsrun loaded can abort
