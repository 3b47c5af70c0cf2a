"""The sandbox layer under attack: runaway code, memory bombs, crashes, threads, isolation.

All of it runs real V8 in real sandbox processes.
"""

from __future__ import annotations

import logging
import os
import resource
import signal
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from plugins_app import hooks
from plugins_app.exceptions import PluginCrashed, PluginMemoryError, PluginScriptError, PluginTimeout
from plugins_app.sandbox import pool

HOSTILE = """
const plugin = {
  ok(x) { return x === undefined ? "ok" : x; },
  loop() { while (true) {} },
  asyncLoop() { return new Promise(() => { while (true) {} }); },
  pending() { return new Promise(() => {}); },
  heapBomb() { const a = []; while (true) a.push({ s: Math.random() + "xxxxxxxxxxxxxxxxxxxx" }); },
  arrayBomb() { const a = []; while (true) a.push(new Array(1e6).fill(1)); },
  bufferFill() { const a = []; for (let i = 0; i < 64; i++) { const b = new ArrayBuffer(64 * 1024 * 1024); new Uint8Array(b).fill(1); a.push(b); } return a.length; },
  bigBuffer() { return new ArrayBuffer(4 * 1024 * 1024 * 1024).byteLength; },
  stringBomb() { let s = "x"; while (true) s += s; },
  thrower() { throw new TypeError("bad input"); },
  throwString() { throw "just a string"; },
  recurse() { return this.recurse() + 1; },
};
"""


@pytest.fixture
def hostile(make_plugin):
    return make_plugin(HOSTILE, slug="hostile", timeout_ms=300, memory_limit_mb=32)


@pytest.fixture
def bystander(make_plugin):
    return make_plugin("const plugin = { hi(n) { log('hi', n); return `hi ${n}`; } };", slug="bystander")


def assert_recovers(bystander=None):
    assert hooks.call("hostile", "ok", 7) == 7
    if bystander is not None:
        assert hooks.call("bystander", "hi", "there") == "hi there"


@pytest.mark.parametrize("hook", ["loop", "asyncLoop", "pending"])
def test_runaway_code_times_out_and_plugin_recovers(hostile, bystander, hook):
    with pytest.raises(PluginTimeout, match="time limit"):
        hooks.call("hostile", hook)
    assert_recovers(bystander)


@pytest.mark.parametrize("hook", ["heapBomb", "arrayBomb", "bufferFill", "bigBuffer", "stringBomb"])
def test_memory_bombs_raise_memory_error_and_plugin_recovers(hostile, bystander, hook):
    # A generous time limit, so that the memory limit is what stops the bomb.
    hostile.timeout_ms = 10_000
    hostile.save()
    with pytest.raises(PluginMemoryError):
        hooks.call("hostile", hook)
    assert_recovers(bystander)


def test_memory_bombs_do_not_grow_the_calling_process(hostile):
    hostile.timeout_ms = 10_000
    hostile.save()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for hook in ("bufferFill", "bigBuffer", "heapBomb"):
        with pytest.raises(PluginMemoryError):
            hooks.call("hostile", hook)
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert after - before < 64 * 1024  # KiB: the bombs went off in another process


def test_throw_is_a_script_error_with_name_message_stack_and_position(hostile, bystander):
    with pytest.raises(PluginScriptError) as info:
        hooks.call("hostile", "thrower")
    err = info.value
    assert (err.name, err.js_message) == ("TypeError", "bad input")
    assert "hostile.js" in err.stack and "<eval_async>" not in err.stack
    expected_line = next(i for i, line in enumerate(HOSTILE.splitlines(), 1) if "bad input" in line)
    assert err.line == expected_line and err.column
    with pytest.raises(PluginScriptError):
        hooks.call("hostile", "throwString")
    assert_recovers(bystander)


def test_infinite_recursion_is_a_script_error(hostile, bystander):
    with pytest.raises(PluginScriptError) as info:
        hooks.call("hostile", "recurse")
    assert info.value.name == "RangeError"
    assert "call stack" in info.value.js_message
    assert_recovers(bystander)


def test_rss_watchdog_kills_the_worker_and_a_new_one_takes_over(hostile, settings):
    settings.PLUGINS_APP = {"WORKER_RSS_LIMIT_MB": 1}  # every worker is over this at once
    with pytest.raises(PluginMemoryError, match="sandbox memory cap"):
        hooks.call("hostile", "loop")
    settings.PLUGINS_APP = {}
    assert_recovers()


def test_worker_killed_while_idle_is_replaced(hostile):
    assert_recovers()
    idle = list(pool.get_pool()._idle)
    assert idle
    for worker in idle:
        os.kill(worker.pid, signal.SIGKILL)
        worker.proc.wait(timeout=5)  # dead (not reaped by the pool yet) before the next call
    assert_recovers()


class _Signal(logging.Handler):
    """Sets an event when a plugin logs a given message: lets a test await plugin progress."""

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message
        self.event = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == self.message:
            self.event.set()


@pytest.mark.django_db(transaction=True)
def test_worker_killed_mid_call_is_reported_as_crash(make_plugin, settings):
    settings.PLUGINS_APP = {"POOL_SIZE": 1}
    make_plugin(
        # Log lines travel with the next host call (or the answer): storage.get sends it.
        "const plugin = { ok() { return 1; }, spin() { log('spinning'); storage.get('k'); while (true) {} } };",
        slug="victim",
        timeout_ms=30_000,
    )
    assert hooks.call("victim", "ok") == 1
    (pid,) = pool.get_pool().worker_pids()  # pool of one: this worker will run the call
    signal_handler = _Signal("spinning")
    plugin_logger = logging.getLogger("plugins_app.plugins.victim")
    plugin_logger.addHandler(signal_handler)
    plugin_logger.setLevel(logging.INFO)
    outcome: dict = {}

    def run() -> None:
        try:
            hooks.call("victim", "spin")
        except Exception as exc:  # noqa: BLE001 - the assertion below checks the type
            outcome["exc"] = exc

    thread = threading.Thread(target=run)
    try:
        thread.start()
        assert signal_handler.event.wait(30)
        os.kill(pid, signal.SIGKILL)
        thread.join(30)
    finally:
        plugin_logger.removeHandler(signal_handler)
        plugin_logger.setLevel(logging.NOTSET)
    assert isinstance(outcome.get("exc"), PluginCrashed)
    assert hooks.call("victim", "ok") == 1


@pytest.mark.django_db(transaction=True)
def test_many_threads_calling_with_host_calls(make_plugin):
    make_plugin(
        "const plugin = { hi(n) { log('hello', n); return { n, text: `hi ${n}` }; } };", slug="threads", timeout_ms=5000
    )

    def batch(thread: int) -> list[bool]:
        try:
            outcomes = []
            for i in range(thread * 100, thread * 100 + 100):
                result = hooks.run("threads", "hi", i)
                outcomes.append(
                    result.value == {"n": i, "text": f"hi {i}"}
                    and [line.message for line in result.logs] == [f"hello {i}"]
                )
            return outcomes
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=8) as executor:
        outcomes = [ok for chunk in executor.map(batch, range(8)) for ok in chunk]
    assert outcomes.count(True) == 800


def test_sandbox_globals_are_curated(make_plugin):
    make_plugin(
        """
        const plugin = {
          probe() {
            const names = ["require", "process", "fetch", "Deno", "setTimeout", "setInterval",
                           "WebAssembly", "SharedArrayBuffer", "Atomics", "__plugins_host", "globalThis.Deno"];
            const out = {};
            for (const n of ["require", "process", "fetch", "Deno", "Buffer", "__plugins_webapi",  // timers exist: test_timers.py
                             "WebAssembly", "SharedArrayBuffer", "Atomics", "__plugins_host", "__plugins_sleep", "__plugins_random"]) {
              out[n] = typeof globalThis[n];
            }
            return out;
          },
          tamper() {
            "use strict";
            const errors = [];
            try { config.version = "evil"; } catch (e) { errors.push(e.name); }
            try { config.nested.x = 1; } catch (e) { errors.push(e.name); }
            // The API globals are writable (issue 11: a plugin's own names): replacing one
            // changes only this plugin's own view; host.* and the bridge are untouched.
            log = null;
            host.log("still logs");
            return { errors, version: config.version, logType: typeof log, hostLog: typeof host.log };
          },
        };
        """,
        config={"version": "1", "nested": {"x": 0}},
    )
    assert set(hooks.call("p", "probe").values()) == {"undefined"}
    assert hooks.call("p", "tamper") == {
        "errors": ["TypeError", "TypeError"],
        "version": "1",
        "logType": "object",
        "hostLog": "function",
    }


def test_sandbox_process_has_no_secrets_and_capped_memory(hostile, monkeypatch):
    monkeypatch.setenv("SECRET_KEY", "super-secret")
    monkeypatch.setenv("DATABASE_URL", "postgres://user:password@host/db")
    pool.shutdown_pool()  # new workers are started from this environment
    assert_recovers()
    pids = pool.get_pool().worker_pids()
    assert pids
    for pid in pids:
        environ = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
        assert not [e for e in environ if b"SECRET" in e or b"DATABASE" in e or b"DJANGO" in e]
        limits = open(f"/proc/{pid}/limits").read()
        data_line = next(line for line in limits.splitlines() if line.startswith("Max data size"))
        assert "unlimited" not in data_line
        maps = open(f"/proc/{pid}/maps").read()
        # No file of the django package mapped (a venv's own name may contain "django").
        assert "/django/" not in maps.lower()


def test_log_lines_are_capped(make_plugin, settings):
    settings.PLUGINS_APP = {"MAX_LOG_LINES": 3, "MAX_LOG_LINE_CHARS": 10}
    make_plugin(
        "const plugin = { spam() { for (let i = 0; i < 1000; i++) log('line ' + i + ' ' + 'x'.repeat(50)); return 1; } };"
    )
    result = hooks.run("p", "spam")
    assert result.value == 1
    assert len(result.logs) == 3
    assert all(len(line.message) <= 11 for line in result.logs)


def test_plugin_replacing_builtins_breaks_only_itself(make_plugin, bystander):
    make_plugin(
        """
        const plugin = {
          ok() { return "fine"; },
          sabotage() {
            JSON.stringify = () => "not json {";
            JSON.parse = () => { throw new Error("hijacked"); };
            Promise.prototype.then = function () { return 42; };
            return "done";
          },
          async later() { return "later"; },
        };
        """,
        slug="saboteur",
    )
    assert hooks.call("saboteur", "sabotage") == "done"
    assert hooks.call("saboteur", "ok") == "fine"
    assert hooks.call("saboteur", "later") == "later"
    assert hooks.call("bystander", "hi", 1) == "hi 1"


def test_huge_log_argument_is_refused_inside_js(make_plugin, settings):
    settings.PLUGINS_APP = {"MAX_ARGS_BYTES": 10_000}
    make_plugin(
        "const plugin = { big() { try { log('x'.repeat(100000)); } catch (e) { return e.name + ': ' + e.message; } } };"
    )
    assert hooks.call("p", "big") == "RangeError: host call arguments are too large"
