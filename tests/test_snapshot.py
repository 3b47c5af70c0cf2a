"""Runtimes restored from a V8 snapshot (plugins_app/sandbox/snapshot.py), with real V8.

Every test runs in a NEW ``python -I`` process, as the sandbox worker does: jsrun 0.3.0
aborts a process that creates a snapshot runtime while a plain ``jsrun.Runtime()`` is
open, and other tests (test_sandbox_security.py) create plain runtimes in this pytest
process. The child prints a JSON report on its last stdout line; the assertions are here.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

import plugins_app.sandbox
from plugins_app.sandbox import snapshot, worker

from .sandbox_names import BOUND_NAMES, INTERNALS

SANDBOX_DIR = str(Path(plugins_app.sandbox.__file__).resolve().parent)
GREETER = (Path(__file__).resolve().parent.parent / "project" / "demo" / "plugins" / "greeter.js").read_text()

PRELUDE = """
import asyncio, json, os, sys
sys.path.insert(0, {sandbox_dir!r})
import jsrun, snapshot, worker
MIB = 1 << 20
report = {{}}
loop = asyncio.new_event_loop()
asyncio.set_event_loop(loop)

def attempt(name, fn):
    try:
        report[name] = {{"ok": True, "value": fn()}}
    except BaseException as exc:
        report[name] = {{"ok": False, "type": type(exc).__name__, "error": str(exc)[:500]}}
"""


def run_child(body: str, *, argv: tuple[str, ...] = (), load: bool = False) -> dict[str, Any]:
    """Run ``body`` after PRELUDE (and LOAD) in a new ``python -I`` process; return its ``report``."""
    code = PRELUDE.format(sandbox_dir=SANDBOX_DIR) + (LOAD if load else "") + textwrap.dedent(body)
    # os._exit: interpreter finalization with jsrun threads alive can abort.
    code += "\nprint(json.dumps(report), flush=True)\nos._exit(0)\n"
    proc = subprocess.run(
        [sys.executable, "-I", "-c", code, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        cwd="/",
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-3000:])
    return json.loads(proc.stdout.splitlines()[-1])


LOAD = """
def load(factory, source, *, precompiled, memory_mb=64, config_json='{"version":"1.0.0"}'):
    '''A runtime as Worker.load makes it: bind, bootstrap, plugin source. Returns
    (runtime, park loop, host calls seen, the script evaluated for the bootstrap).'''
    runtime = factory.new_runtime(max_heap_size=memory_mb * MIB, max_serialization_bytes=(2 << 20) + 4096)
    calls = []
    def host(name, args_json):
        calls.append([name, args_json])
        return '{"ok":null}'
    for name in BOUND_NAMES:
        runtime.bind_function(name, host if name == "__plugins_host" else (lambda *args: ""))
    text = worker.bootstrap_source(config_json=config_json, max_chars=1 << 20, max_depth=128, memory_mb=memory_mb)
    script = factory.bootstrap_script(text) if precompiled else text
    park = runtime.eval(script)

    async def plugin():
        return await runtime.eval_async(source)
    handle = loop.run_until_complete(plugin())
    return runtime, park, calls, script, handle
"""


@pytest.mark.parametrize("precompiled", [True, False], ids=["precompiled-bootstrap", "bootstrap-source"])
def test_the_bootstrap_runs_after_restore_and_leaves_exactly_the_allowlist(precompiled: bool) -> None:
    report = run_child(
        """
        BOUND_NAMES = json.loads(sys.argv[1])
        factory = snapshot.RuntimeFactory(worker.BOOTSTRAP_JS if json.loads(sys.argv[2]) else None)
        report["precompiled"] = factory.precompiled
        runtime, park, calls, script, handle = load(
            factory, sys.argv[3] + "\\nlog('loaded', config.version);", precompiled=factory.precompiled)
        report["script_is_call"] = script.startswith(snapshot.BOOTSTRAP_FUNCTION + "(")
        report["keys"] = runtime.eval("Reflect.ownKeys(globalThis).map(String)")
        report["internals"] = runtime.eval(
            "JSON.stringify(" + json.dumps(json.loads(sys.argv[4])) + ".filter((k) => k in globalThis))")
        report["park_is_function"] = callable(park)
        report["host_calls"] = calls
        report["greet_defined"] = runtime.eval("typeof plugin.greet")
        report["runtimes_created"] = factory.runtimes_created
        runtime.close()
        """,
        argv=(json.dumps(BOUND_NAMES), json.dumps(precompiled), GREETER, json.dumps(INTERNALS)),
        load=True,
    )
    assert report["precompiled"] is precompiled
    assert report["script_is_call"] is precompiled
    assert sorted(report["keys"]) == sorted(worker.GLOBALS)
    assert report["internals"] == "[]"
    assert report["park_is_function"] is True
    # The bootstrap's captured op reaches the bound Python function from plugin code.
    assert report["host_calls"] == [["log", '["info","loaded 1.0.0"]']]
    assert report["greet_defined"] == "function"
    assert report["runtimes_created"] == 1


def test_bootstrap_script_calls_the_compiled_function_only_for_the_exact_template() -> None:
    tricky = json.dumps({"version": "1", "text": 'quote " \\ __SETTINGS__ ) ; \u2028 end'})
    report = run_child(
        """
        BOUND_NAMES = json.loads(sys.argv[1])
        factory = snapshot.RuntimeFactory(worker.BOOTSTRAP_JS)
        source = worker.bootstrap_source(config_json=sys.argv[2], max_chars=1 << 20, max_depth=128, memory_mb=64)
        report["changed_source"] = factory.bootstrap_script(source + "\\n;globalThis.x = 1;") == source + "\\n;globalThis.x = 1;"
        report["other_source"] = factory.bootstrap_script("1 + 1") == "1 + 1"
        report["call"] = factory.bootstrap_script(source).startswith(snapshot.BOOTSTRAP_FUNCTION + "(")
        runtime, park, calls, script, handle = load(factory, "const plugin = {};", precompiled=True, config_json=sys.argv[2])
        report["config"] = runtime.eval("JSON.stringify(config)")
        report["keys"] = runtime.eval("Reflect.ownKeys(globalThis).map(String)")
        runtime.close()
        empty = snapshot.RuntimeFactory()
        report["empty_precompiled"] = empty.precompiled
        report["empty_passthrough"] = empty.bootstrap_script(source) == source
        broken = snapshot.RuntimeFactory("(() => __SETTINGS__)(); let extra = 1;")  # not one expression
        report["broken_precompiled"] = broken.precompiled
        report["broken_passthrough"] = broken.bootstrap_script("x") == "x"
        """,
        argv=(json.dumps(BOUND_NAMES), tricky),
        load=True,
    )
    assert report["changed_source"] is True
    assert report["other_source"] is True
    assert report["call"] is True
    assert json.loads(report["config"]) == json.loads(tricky)
    assert sorted(report["keys"]) == sorted(worker.GLOBALS)
    assert report["empty_precompiled"] is False and report["empty_passthrough"] is True
    assert report["broken_precompiled"] is False and report["broken_passthrough"] is True


def test_the_heap_limit_applies_and_a_heap_bomb_leaves_the_process_alive() -> None:
    report = run_child(
        """
        factory = snapshot.RuntimeFactory()
        # ~40 MiB of live objects: over a 16 MiB limit, under a 128 MiB one.
        fill = "const a = []; for (let i = 0; i < 400000; i++) a.push({i, s: 'x' + i}); a.length"

        def run(memory_mb, code):
            runtime = factory.new_runtime(max_heap_size=memory_mb * MIB, max_serialization_bytes=1 << 20)
            async def go():
                return await runtime.eval_async(code)
            timer = loop.call_later(20, runtime.terminate)  # a backstop only
            try:
                return loop.run_until_complete(go())
            finally:
                timer.cancel()
                try:
                    runtime.close()
                except BaseException:
                    pass

        attempt("small", lambda: run(16, fill))
        attempt("large", lambda: run(128, fill))
        attempt("bomb", lambda: run(32, "let b = []; for (;;) b.push({x: Math.random(), y: [1, 2, 3]});"))
        attempt("after", lambda: run(64, "6 * 7"))
        """
    )
    assert report["small"]["ok"] is False and report["small"]["type"] == "RuntimeTerminated", report["small"]
    assert "Heap limit exceeded" in report["small"]["error"]
    assert report["large"] == {"ok": True, "value": 400000}
    assert report["bomb"]["ok"] is False and report["bomb"]["type"] == "RuntimeTerminated", report["bomb"]
    assert report["after"] == {"ok": True, "value": 42}


def test_terminate_stops_a_runaway_loop_in_call_async() -> None:
    report = run_child(
        """
        factory = snapshot.RuntimeFactory()
        runtime = factory.new_runtime(max_heap_size=64 * MIB, max_serialization_bytes=1 << 20)
        handles = []

        async def spin():
            fn = await runtime.eval_async("() => { for (;;) {} }")
            handles.append(fn)  # a collected JsFunction would block on the busy runtime
            loop.call_later(0.3, runtime.terminate)
            return await fn.call_async()

        attempt("spin", lambda: loop.run_until_complete(spin()))
        try:
            runtime.close()
        except BaseException:
            pass
        handles.clear()
        again = factory.new_runtime(max_heap_size=64 * MIB, max_serialization_bytes=1 << 20)
        attempt("again", lambda: again.eval("1 + 1"))
        again.close()
        """
    )
    assert report["spin"]["ok"] is False, report["spin"]
    assert report["spin"]["type"] in {"JavaScriptError", "RuntimeTerminated"}, report["spin"]
    assert report["again"] == {"ok": True, "value": 2}


def test_thirty_runtimes_in_a_row_from_one_factory() -> None:
    report = run_child(
        """
        factory = snapshot.RuntimeFactory(worker.BOOTSTRAP_JS)
        values = []
        for i in range(30):
            runtime = factory.new_runtime(max_heap_size=64 * MIB, max_serialization_bytes=1 << 20)
            runtime.bind_function("twice", lambda x: 2 * x)
            values.append(runtime.eval(f"twice({i}) + 1"))
            runtime.close()
        report["values"] = values
        report["created"] = factory.runtimes_created
        """
    )
    assert report["values"] == [2 * i + 1 for i in range(30)]
    assert report["created"] == 30


def test_runtimes_from_one_snapshot_share_no_state() -> None:
    report = run_child(
        """
        factory = snapshot.RuntimeFactory(worker.BOOTSTRAP_JS)
        probe = ("JSON.stringify([typeof leak, [].extra === undefined, ({}).polluted === undefined, "
                 "typeof ''.trim, typeof JSON.parse, typeof Math.max])")

        def fresh():
            return factory.new_runtime(max_heap_size=64 * MIB, max_serialization_bytes=1 << 20)

        first = fresh()
        first.eval("globalThis.leak = 1; Array.prototype.extra = 2; Object.prototype.polluted = 3; "
                   "String.prototype.trim = null; JSON.parse = null; Math.max = null;")
        report["first"] = first.eval(probe)
        second = fresh()  # while the first is still open
        report["second"] = second.eval(probe)
        first.close()
        second.close()
        third = fresh()  # after both closed
        report["third"] = third.eval(probe)
        third.close()
        """
    )
    assert json.loads(report["first"]) == ["number", False, False, "object", "object", "object"]
    clean = ["undefined", True, True, "function", "function", "function"]
    assert json.loads(report["second"]) == clean
    assert json.loads(report["third"]) == clean


def test_max_serialization_bytes_applies() -> None:
    report = run_child(
        """
        factory = snapshot.RuntimeFactory()
        runtime = factory.new_runtime(max_heap_size=64 * MIB, max_serialization_bytes=10000)
        attempt("small", lambda: len(runtime.eval("'x'.repeat(5000)")))
        attempt("large", lambda: len(runtime.eval("'x'.repeat(20000)")))
        runtime.close()
        """
    )
    assert report["small"] == {"ok": True, "value": 5000}
    assert report["large"]["ok"] is False and "exceeded maximum limit of 10000" in report["large"]["error"]


@pytest.mark.parametrize("memory_mb", [64, 256])
def test_runtime_reserve_covers_what_a_runtime_maps(memory_mb: int) -> None:
    """The address space the worker leaves for a new runtime (runtime_reserve_mb) is what a
    runtime really takes: below it, V8 would abort the process instead of raising."""
    report = run_child(
        """
        import resource
        memory_mb = int(sys.argv[1])

        def vmdata():
            with open("/proc/self/status") as status:
                for line in status:
                    if line.startswith("VmData:"):
                        return int(line.split()[1]) * 1024

        factory = snapshot.RuntimeFactory()
        runtimes = [factory.new_runtime(max_heap_size=memory_mb * MIB, max_serialization_bytes=1 << 20)]
        runtimes[0].eval("1")
        before = vmdata()
        for _ in range(4):
            runtimes.append(factory.new_runtime(max_heap_size=memory_mb * MIB, max_serialization_bytes=1 << 20))
            runtimes[-1].eval("globalThis.x = [1, 2, 3]; 1")
        report["per_runtime_mb"] = (vmdata() - before) / 4 / MIB
        # The worker's limit for creating a runtime: exactly the reserve above what it holds.
        limit = vmdata() + snapshot.runtime_reserve_mb(memory_mb) * MIB
        resource.setrlimit(resource.RLIMIT_DATA, (limit, resource.RLIM_INFINITY))
        last = factory.new_runtime(max_heap_size=memory_mb * MIB, max_serialization_bytes=1 << 20)
        report["under_limit"] = last.eval("6 * 7")
        for runtime in runtimes + [last]:
            runtime.close()
        """,
        argv=(str(memory_mb),),
    )
    # At least about its code range (measured 64-70 MiB on Python 3.11, 52 MiB for a 64 MiB
    # runtime on 3.12), and never more than the reserve: the bound that matters.
    assert memory_mb * 0.75 <= report["per_runtime_mb"] <= snapshot.runtime_reserve_mb(memory_mb), report
    assert report["under_limit"] == 42


def test_the_factory_is_built_after_the_os_layers_and_not_before() -> None:
    """Building the snapshot starts V8's platform threads: before ``oslayers.apply`` it
    would make Landlock (ABI < 8) skip itself; after all layers it works."""
    from plugins_app.sandbox import oslayers

    probe = oslayers.probe("nobody")
    if not (probe["seccomp"]["available"] and probe["landlock"]["available"]):
        pytest.skip("needs seccomp and Landlock")
    layers = {"seccomp": True, "landlock": True, "user": "nobody"}
    report = run_child(
        """
        import oslayers, resource
        BOUND_NAMES = json.loads(sys.argv[1])
        layers = json.loads(sys.argv[2])
        resource.setrlimit(resource.RLIMIT_DATA, (3072 * MIB, 3072 * MIB))  # as the worker
        report["layers"] = oslayers.apply(layers)
        factory = snapshot.RuntimeFactory(worker.BOOTSTRAP_JS)
        report["precompiled"] = factory.precompiled
        runtime, park, calls, script, handle = load(factory, "const plugin = {}; log('hi');", precompiled=True)
        report["keys"] = runtime.eval("Reflect.ownKeys(globalThis).map(String)")
        report["calls"] = calls
        runtime.close()
        """,
        argv=(json.dumps(BOUND_NAMES), json.dumps(layers)),
        load=True,
    )
    assert all(entry["active"] for entry in report["layers"].values()), report["layers"]
    assert report["precompiled"] is True
    assert sorted(report["keys"]) == sorted(worker.GLOBALS)
    assert report["calls"] == [["log", '["info","hi"]']]
    before = run_child(
        """
        import oslayers
        factory = snapshot.RuntimeFactory()
        report["layers"] = oslayers.apply(json.loads(sys.argv[1]))
        """,
        argv=(json.dumps(layers),),
    )
    assert before["layers"]["landlock"]["active"] is False
    assert "threads" in before["layers"]["landlock"]["reason"]
