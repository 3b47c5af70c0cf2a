"""The sandbox under attack: engine internals, forged frames, deferred code, memory.

Every test runs real V8 in real sandbox processes (issue: sandbox hardening).
"""

from __future__ import annotations

import json
import logging
import os
import re
import select
import signal
import subprocess
import sys
import threading
from pathlib import Path

import jsrun
import pytest

from plugins_app import hooks
from plugins_app.exceptions import PluginCrashed, PluginDataError, PluginMemoryError, PluginTimeout
from plugins_app.models import StorageItem
from plugins_app.sandbox import pool, protocol, snapshot, worker
from plugins_app.sandbox.stderr import StderrDrain

from .sandbox_names import BOUND_NAMES
from .sandbox_names import INTERNALS as RUNTIME_INTERNALS

ROOT = Path(__file__).resolve().parent.parent
# Every internal, and what the hardening removes besides (not allowlisted engine globals).
INTERNALS = [
    *RUNTIME_INTERNALS,
    snapshot.WEBAPI_GLOBAL,
    "WebAssembly",
    "SharedArrayBuffer",
    "Atomics",
    "FinalizationRegistry",
]


@pytest.fixture
def one_sandbox(settings):
    settings.PLUGINS_APP = {"POOL_SIZE": 1}


def documented_globals() -> list[str]:
    """The allowlist as docs/plugin-authors.md states it (between the two markers)."""
    text = (ROOT / "docs" / "plugin-authors.md").read_text()
    block = text.split("<!-- globals:start -->")[1].split("<!-- globals:end -->")[0]
    return re.findall(r"`([A-Za-z_$][\w$]*)`", block)


# -- 1. only documented globals -------------------------------------------------------------


def test_global_object_holds_exactly_the_documented_names(make_plugin):
    make_plugin(
        "const plugin = { names() { return Reflect.ownKeys(globalThis).map(String); } };",
        slug="enum",
    )
    names = hooks.call("enum", "names")
    assert sorted(names) == sorted(worker.GLOBALS)
    assert sorted(documented_globals()) == sorted(worker.GLOBALS)


@pytest.mark.parametrize("name", INTERNALS)
def test_engine_internals_are_unreachable(make_plugin, name):
    make_plugin(
        """const plugin = { probe(name) {
          const g = Function("return this")();
          return [typeof globalThis[name], typeof g[name], name in globalThis,
                  Object.getOwnPropertyNames(Object.getPrototypeOf(globalThis)).includes(name)];
        } };""",
        slug="probe",
    )
    assert hooks.call("probe", "probe", name) == ["undefined", "undefined", False, False]


def test_tampering_with_intrinsics_breaks_only_the_tamperer(make_plugin, one_sandbox):
    make_plugin(
        """const plugin = { run() {
          Array.prototype.map = () => { throw new Error("map"); };
          Array.prototype[Symbol.iterator] = function* () { yield "forged"; };
          JSON.stringify = () => '"forged"';
          JSON.parse = () => ["forged"];
          Object.keys = () => ["forged"];
          Promise.prototype.then = function () { throw new Error("then"); };
          Set.prototype.has = () => true;
          log("still logging", {a: 1});
          return {value: [1, 2, 3]};
        } };""",
        slug="tamper",
    )
    result = hooks.run("tamper", "run")
    # Our own stringify/parse were captured before the plugin ran.
    assert result.value == {"value": [1, 2, 3]}
    assert [line.message for line in result.logs] == ['still logging {"a":1}']
    assert hooks.call("tamper", "run") == {"value": [1, 2, 3]}


def test_bound_functions_cannot_be_called_by_id(make_plugin):
    make_plugin(
        """const plugin = { run() {
          const found = [];
          for (const k of Object.getOwnPropertyNames(globalThis)) {
            const v = globalThis[k];
            if (typeof v === "function" && /__host_op|jsrunCall|op_jsrun/.test(String(v))) found.push(k);
          }
          let err = null;
          try { log.constructor("return __host_op_sync__")()(0, "log", "[]"); } catch (e) { err = e.name; }
          return [found, err];
        } };""",
        slug="byid",
    )
    assert hooks.call("byid", "run") == [[], "ReferenceError"]


def test_stack_inspection_reveals_no_bridge_function(make_plugin):
    """V8's CallSite API and Function.caller give nothing of the bootstrap (all strict)."""
    make_plugin(
        """const seen = [], callers = [];
        function toJSON() { seen.push(...new Error().stack); callers.push(toJSON.caller === null); return 1; }
        const plugin = { run: function run() {
          Error.prepareStackTrace = (e, sites) => sites.map((s) => typeof s.getFunction());
          log({ probe: { toJSON } });
          return [run.caller === null, seen.filter((t) => t === "function").length, callers];
        } };""",
        slug="stack",
    )
    # Only the plugin's own toJSON frame (sloppy) is visible; the bootstrap's are not.
    assert hooks.call("stack", "run") == [True, 1, [True]]


def _bootstrapped_runtime(before: str = "", globals_: tuple[str, ...] = worker.GLOBALS):
    """A bare jsrun runtime (in this process) that ran ``before`` and then the bootstrap."""
    runtime = jsrun.Runtime(jsrun.RuntimeConfig(enable_console=False))
    for name in BOUND_NAMES:
        runtime.bind_function(name, lambda *args: None)
    runtime.eval(snapshot.webapi_source())  # what the worker's snapshot holds
    if before:
        runtime.eval(before)
    source = worker.bootstrap_source(config_json="{}", max_chars=1000, max_depth=128, memory_mb=32, globals_=globals_)
    return runtime, source


def test_bootstrap_fails_closed_on_an_undeletable_global():
    runtime, source = _bootstrapped_runtime('Object.defineProperty(globalThis, "__leak", {value: 1}); 0')
    try:
        with pytest.raises(jsrun.JavaScriptError, match="cannot remove global __leak"):
            runtime.eval(source)
    finally:
        runtime.close()


def test_bootstrap_fails_closed_when_the_engine_lacks_an_allowed_global():
    runtime, source = _bootstrapped_runtime(globals_=(*worker.GLOBALS, "NotAThing"))
    try:
        with pytest.raises(jsrun.JavaScriptError, match=r'differs from the allowlist.*missing \["NotAThing"\]'):
            runtime.eval(source)
    finally:
        runtime.close()


# -- 2. an unforgeable channel -----------------------------------------------------------------


def test_stdio_is_not_a_channel(make_plugin, one_sandbox):
    make_plugin("const plugin = { a() { return 1; } };", slug="a")
    assert hooks.call("a", "a") == 1
    (sandbox,) = pool.get_pool()._idle
    fds = {fd: os.readlink(f"/proc/{sandbox.pid}/fd/{fd}") for fd in (0, 1, 2)}
    assert fds[0] == "/dev/null" and fds[1] == "/dev/null"
    assert fds[2].startswith("pipe:")


def test_frame_written_between_calls_never_reaches_another_call(make_plugin, one_sandbox):
    """A frame injected into an idle sandbox's channel: the sandbox is replaced and the
    victim's call is answered by its own code."""
    make_plugin("const plugin = { a() { return 'attacker'; } };", slug="attacker")
    make_plugin("const plugin = { v() { return 'victim'; } };", slug="victim")
    assert hooks.call("attacker", "a") == "attacker"
    (sandbox,) = pool.get_pool()._idle
    out_fd = json.loads(open(f"/proc/{sandbox.pid}/cmdline", "rb").read().split(b"\0")[4])["out_fd"]
    forged = protocol.encode({"op": "result", "ok": '"PWNED"', "warm": []})
    with open(f"/proc/{sandbox.pid}/fd/{out_fd}", "wb", buffering=0) as channel:
        channel.write(forged)
    assert hooks.call("victim", "v") == "victim"
    assert sandbox.pid not in pool.get_pool().worker_pids()


class _FakeWorker:
    """Stands in for the *supervisor's view* of a compromised sandbox: replays frames."""

    def __init__(self, frames):
        self.frames = list(frames)
        self.killed = False
        self.sent = []
        self.rss_at_start = 0
        self.reader = protocol.FrameReader(-1)
        self.warm = set()
        self.pid = 0
        self.proc = type("P", (), {"returncode": -9})()

    def recv(self, deadline, *, watch_rss=True):
        return self.frames.pop(0)

    def send(self, message):
        self.sent.append(message)

    def kill(self):
        self.killed = True

    def died_of_memory(self):
        return False


def _serve_one(fake, call_id, host):
    """The supervisor's side of one call of plugin "victim" on ``fake``; raises its failure."""
    step = pool.Invocation(
        slug="victim",
        key="victim@1:x",
        hook="h",
        args_json="[]",
        timeout=1.0,
        memory_mb=32,
        spec_loader=dict,
        host=host,
    )
    try:
        pool._serve(fake, call_id, [step], [None])
    except pool._StepFailed as failed:
        raise failed.error from None


@pytest.mark.parametrize(
    "frames",
    [
        [{"op": "result", "id": "other", "ok": '"PWNED"'}],
        [{"op": "result", "ok": '"PWNED"'}],
        [{"op": "host", "id": "other", "name": "storage.set", "args": '["k", 1]'}],
        [{"op": "surprise", "id": "CALL"}],
        [{"op": "host", "id": "CALL", "name": 5, "args": "[]"}],
    ],
)
def test_supervisor_kills_a_sandbox_that_forges_frames(frames, settings):
    for frame in frames:
        if frame.get("id") == "CALL":
            frame["id"] = "the-call"
    calls = []
    fake = _FakeWorker(frames)
    with pytest.raises(PluginCrashed, match="broke protocol"):
        _serve_one(fake, "the-call", lambda *a: calls.append(a) or "{}")
    assert fake.killed
    assert calls == []  # no forged host call ran


def test_bytes_after_the_result_kill_the_sandbox():
    fake = _FakeWorker([{"op": "result", "id": "c", "ok": "1"}])
    fake.reader._buffer += b"\0\0\0\2{}"
    with pytest.raises(PluginCrashed, match="broke protocol"):
        _serve_one(fake, "c", lambda *a: "{}")
    assert fake.killed


# -- 3. no code runs outside its own call ------------------------------------------------------

LEFTOVERS = """
const plugin = {
  leave() {
    Promise.resolve().then(() => log("microtask ran"));
    queueMicrotask(() => log("queued ran"));
    (async () => { for (let i = 0; i < 3; i++) await null; log("async ran"); })();
    return "returned";
  },
  later() { return "later"; },
  forever() { const spin = () => Promise.resolve().then(spin); spin(); return "never returned"; },
  awaits() { return (async () => { await null; await null; return "awaited"; })(); },
  pending() { return new Promise(() => {}); },
  timers() { return [typeof setTimeout, typeof setInterval, typeof queueMicrotask]; },
};
"""


def test_microtasks_run_inside_their_own_call_and_never_later(make_plugin):
    make_plugin(LEFTOVERS, slug="left", timeout_ms=500)
    first = hooks.run("left", "leave")
    assert first.value == "returned"
    assert sorted(line.message for line in first.logs) == ["async ran", "microtask ran", "queued ran"]
    second = hooks.run("left", "later")
    assert second.value == "later" and second.logs == []


def test_endless_microtasks_are_the_callers_own_timeout(make_plugin, one_sandbox):
    make_plugin(LEFTOVERS, slug="left", timeout_ms=300)
    make_plugin("const plugin = { v() { return 'victim'; } };", slug="victim")
    with pytest.raises(PluginTimeout):
        hooks.call("left", "forever")
    assert hooks.call("victim", "v") == "victim"
    assert hooks.call("left", "later") == "later"


def test_heap_bomb_after_an_await_is_stopped(make_plugin):
    make_plugin(
        """const plugin = {
          async bomb() { await null; const a = []; while (true) a.push({ s: Math.random() + "xxxxxxxxxxxxxxxx" }); },
          ok() { return 1; },
        };""",
        slug="abomb",
        memory_limit_mb=16,
        timeout_ms=2000,
    )
    with pytest.raises((PluginMemoryError, PluginTimeout)):
        hooks.call("abomb", "bomb")
    assert hooks.call("abomb", "ok") == 1


def test_async_hooks_settle_within_the_call_and_no_timers_exist(make_plugin):
    make_plugin(LEFTOVERS, slug="left")
    assert hooks.call("left", "awaits") == "awaited"
    assert hooks.call("left", "timers") == ["function", "function", "function"]  # timers: see test_timers.py
    with pytest.raises(PluginTimeout, match="never settles"):
        hooks.call("left", "pending")
    assert hooks.call("left", "later") == "later"


# -- 4. data limits ----------------------------------------------------------------------------

DEEP = """
const nest = (n) => { let a = []; for (let i = 0; i < n; i++) a = [a]; return a; };
const plugin = {
  deep(n) { return nest(n); },
  deepObject(n) { let o = {}; for (let i = 0; i < n; i++) o = {o}; return o; },
  deepHost(n) { try { storage.set("k", nest(n)); return "stored"; } catch (e) { return e.name + ": " + e.message; } },
  deepLog(n) { try { log(nest(n)); return "logged"; } catch (e) { return e.name; } },
  surrogate() { return "\\ud800"; },
  surrogateHost() { try { storage.set("k", "a\\udc00"); return "stored"; } catch (e) { return e.name + ": " + e.message; } },
  ok() { return nest(100); },
};
"""


@pytest.mark.parametrize("depth", [129, 2_000, 10_000, 100_000])
@pytest.mark.parametrize("hook", ["deep", "deepObject"])
def test_deep_results_are_a_data_error(make_plugin, depth, hook):
    make_plugin(DEEP, slug="deep")
    with pytest.raises(PluginDataError, match="nested"):
        hooks.call("deep", hook, depth)
    assert len(json.dumps(hooks.call("deep", "ok"))) == 202  # 101 levels pass


@pytest.mark.parametrize("depth", [2_000, 10_000, 100_000])
def test_deep_host_call_arguments_are_a_catchable_error(make_plugin, depth):
    make_plugin(DEEP, slug="deep")
    assert re.match(
        r"RangeError: host call arguments are nested (deeper than 128 levels|too deeply to encode)",
        hooks.call("deep", "deepHost", depth),
    )


def test_lone_surrogates_do_not_cross(make_plugin):
    make_plugin(DEEP, slug="deep")
    with pytest.raises(PluginDataError, match="lone surrogate"):
        hooks.call("deep", "surrogate")
    assert "lone surrogate" in hooks.call("deep", "surrogateHost")


# -- 5. memory cannot ratchet ----------------------------------------------------------------


def _rss(pid: int) -> int:
    with open(f"/proc/{pid}/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_memory_kept_between_calls_cannot_ratchet(make_plugin, one_sandbox):
    make_plugin(
        """globalThis.kept = [];
        const plugin = { keep() {
          const b = new ArrayBuffer(16 * 1024 * 1024); new Uint8Array(b).fill(7); kept.push(b);
          return kept.length;
        }, hi() { return 1; } };""",
        slug="ratchet",
        memory_limit_mb=16,
    )
    make_plugin("const plugin = { hi() { return 1; } };", slug="other")
    assert hooks.call("other", "hi") == 1
    (sandbox,) = pool.get_pool()._idle
    before = _rss(sandbox.pid)
    peak = 0
    for _ in range(10):
        try:
            hooks.call("ratchet", "keep")
        except PluginMemoryError:
            pass
        peak = max(peak, _rss(sandbox.pid))
    assert pool.get_pool().worker_pids() == [sandbox.pid]  # never needed a kill
    assert peak < before + 2 * 16 * 1024 * 1024 + 32 * 1024 * 1024
    assert hooks.call("other", "hi") == 1


def test_huge_string_result_is_a_memory_error_not_a_crash(make_plugin):
    make_plugin(
        "const plugin = { big() { return 'x'.repeat(50 * 1024 * 1024); }, ok() { return 1; } };",
        slug="bigstr",
        memory_limit_mb=32,
    )
    with pytest.raises(PluginMemoryError):
        hooks.call("bigstr", "big")
    assert hooks.call("bigstr", "ok") == 1


# -- 6. lifecycle ----------------------------------------------------------------------------


class _KillOnLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.killed = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.getMessage() == "crash now":
            for pid in pool.get_pool()._busy_pids():
                os.kill(pid, signal.SIGKILL)
                self.killed += 1


@pytest.mark.django_db(transaction=True)
def test_code_whose_sandbox_dies_runs_once(make_plugin, one_sandbox):
    make_plugin(
        # The log line travels with the next host call, storage.get (see worker.buffer_log).
        "const plugin = { run() { storage.incr('runs'); log('crash now'); storage.get('x'); while (true) {} } };",
        slug="once",
        timeout_ms=2000,
    )
    handler = _KillOnLog()
    plugin_logger = logging.getLogger("plugins_app.plugins.once")
    plugin_logger.addHandler(handler)
    level = plugin_logger.level
    plugin_logger.setLevel(logging.INFO)
    try:
        with pytest.raises(PluginCrashed):
            hooks.call("once", "run")
    finally:
        plugin_logger.removeHandler(handler)
        plugin_logger.setLevel(level)
    assert handler.killed == 1
    assert StorageItem.objects.get(plugin__slug="once", key="runs").number == 1


@pytest.mark.django_db(transaction=True)
def test_sandbox_started_from_a_short_lived_thread_outlives_it(make_plugin, one_sandbox):
    make_plugin("const plugin = { a() { return 1; } };", slug="a")
    results = []
    thread = threading.Thread(target=lambda: results.append(hooks.call("a", "a")))
    thread.start()
    thread.join()
    assert results == [1]
    (pid,) = pool.get_pool().worker_pids()
    assert hooks.call("a", "a") == 1
    assert pool.get_pool().worker_pids() == [pid]


ORPHAN_SCRIPT = r"""
import sys, time, django
from django.conf import settings
settings.configure(PLUGINS_APP={"POOL_SIZE": 1})
django.setup()
from plugins_app.sandbox import pool

def host(name, args):
    print(pool.get_pool()._busy_pids()[0], flush=True)
    time.sleep(3600)  # blocks the sandbox in its host call until this process is killed

spec = {"key": "k", "slug": "s", "source": "const plugin = { h() { log('x'); } };", "config": "{}", "memory_mb": 32}
pool.invoke(pool.Invocation("s", "k", "h", "[]", 30.0, 32, lambda: spec, host))
"""


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] in {"Z", "X"}
    except FileNotFoundError:
        return True


def test_sandbox_exits_when_its_django_process_is_killed(tmp_path):
    proc = subprocess.Popen(
        [sys.executable, "-c", ORPHAN_SCRIPT],
        stdout=subprocess.PIPE,
        cwd=ROOT,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        sandbox_pid = int(proc.stdout.readline())
        exited = os.pidfd_open(sandbox_pid)  # readable once the process has exited
        try:
            assert select.select([exited], [], [], 0)[0] == []
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait()
            assert select.select([exited], [], [], 1.0)[0] == [exited], "the sandbox outlived its Django process by 1 s"
        finally:
            os.close(exited)
        assert _gone(sandbox_pid)
    finally:
        if proc.poll() is None:
            proc.kill()


# -- 7. OS layers, as the kernel sees the real sandbox ------------------------------------------


def _status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as fh:
        return dict(line.split(":\t", 1) for line in fh.read().splitlines() if ":\t" in line)


@pytest.mark.skipif(os.geteuid() != 0, reason="the uid switch applies when the site runs as root")
def test_real_sandbox_runs_unprivileged_under_seccomp(make_plugin, one_sandbox):
    make_plugin("const plugin = { a() { return 1; } };", slug="a")
    assert hooks.call("a", "a") == 1
    (pid,) = pool.get_pool().worker_pids()
    status = _status(pid)
    assert status["Uid"].split()[:2] == ["65534", "65534"]
    assert status["NoNewPrivs"].strip() == "1"
    assert status["Seccomp"].strip() == "2"  # filter mode
    assert status["CapEff"].strip() == "0000000000000000"
    report = pool.get_pool().layers_report()
    assert all(report[layer]["active"] for layer in ("user", "no_new_privs", "seccomp", "landlock")), report


# -- 9. the supervisor's log of a sandbox's stderr -----------------------------------------------


def test_sandbox_stderr_is_escaped_capped_and_tagged(caplog):
    read_fd, write_fd = os.pipe()
    caplog.set_level(logging.WARNING, logger="plugins_app.sandbox")
    drain = StderrDrain(read_fd, 4242)
    os.write(write_fd, b"plain\r\n\x1b[31mred\x1b[0m\n" + b"y" * 5000 + b"\nFatal process out of memory\n")
    os.close(write_fd)
    assert drain.wait(5)
    messages = [r.getMessage() for r in caplog.records if getattr(r, "sandbox_pid", None) == 4242]
    assert messages[0] == "sandbox 4242 stderr: plain"
    assert messages[1] == "sandbox 4242 stderr: \\x1b[31mred\\x1b[0m"
    assert len(messages[2]) < 600
    assert drain.reported_out_of_memory()
    assert not any("\x1b" in m or "\r" in m for m in messages)
