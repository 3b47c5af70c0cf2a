"""Timers inside a call (issue 11, item 2), with real V8 in sandbox processes.

setTimeout/setInterval run only while their call's promise is pending, within its time
limit; when the result is sent, every pending timer is cancelled and never fires later.
The wait for the next timer blocks the runtime's thread in the worker (no CPU), bounded
by the call's deadline. Ordering against Node.js 20 is in tests/webapi/cases.js.
"""

from __future__ import annotations

import os

import pytest

from plugins_app import hooks
from plugins_app.exceptions import PluginMemoryError, PluginScriptError, PluginTimeout
from plugins_app.sandbox.pool import get_pool, shutdown_pool

TIMERS = """
let ticks = 0, fired = false, topLevelFired = false;
setTimeout(() => { topLevelFired = true; }, 0);  // top-level code: must never fire
const delay = (ms, value) => new Promise((resolve) => setTimeout(resolve, ms, value));
const plugin = {
  async wait(ms) { const t0 = Date.now(); const v = await delay(ms, "waited"); return [v, Date.now() - t0 >= ms - 1]; },
  async leaveInterval() { setInterval(() => { ticks++; }, 1); await delay(20); return ticks; },
  ticks() { return ticks; },
  async ticksAfterWaiting() { await delay(30); return ticks; },
  syncWithTimer() { setTimeout(() => { fired = true; }, 0); return "returned"; },
  async firedAfterWaiting() { await delay(10); return [fired, topLevelFired]; },
  async forever() { await delay(60_000); return "never"; },
  async interval() { let n = 0; await new Promise((done) => { const id = setInterval(() => { if (++n === 5) { clearInterval(id); done(); } }, 2); }); return n; },
  async throwsInTimer() { setTimeout(() => { throw new RangeError("from a timer"); }, 1); await delay(50); return "not reached"; },
  async spinInTimer() { await new Promise(() => setTimeout(() => { for (;;) {} }, 1)); },
  async bombInTimer() { await new Promise(() => setTimeout(() => { const a = []; for (;;) a.push({ s: Math.random() + "xxxxxxxxxxxxxxxx" }); }, 1)); },
  async bombInContinuation() { await delay(1); const a = []; for (;;) a.push({ s: Math.random() + "xxxxxxxxxxxxxxxx" }); },
  async bombInMicrotask() { Promise.resolve().then(() => { const a = []; for (;;) a.push(new Array(1000).fill(1)); }); await delay(5); },
  ok() { return "ok"; },
};
"""


@pytest.fixture
def one_sandbox(settings):
    settings.PLUGINS_APP = {"POOL_SIZE": 1}


@pytest.fixture
def timers(make_plugin):
    return make_plugin(TIMERS, slug="timers", timeout_ms=1000, memory_limit_mb=16)


def test_a_hook_can_await_a_timer(timers):
    assert hooks.call("timers", "wait", 25) == ["waited", True]
    assert hooks.call("timers", "interval") == 5


def test_a_never_cleared_interval_does_not_outlive_its_call(timers):
    ticks = hooks.call("timers", "leaveInterval")
    assert ticks >= 1
    assert hooks.call("timers", "ticks") == ticks
    # A later call waiting on timers of its own: the old interval never fires in it.
    assert hooks.call("timers", "ticksAfterWaiting") == ticks


def test_a_sync_hooks_timers_and_top_level_timers_never_fire(timers):
    assert hooks.call("timers", "syncWithTimer") == "returned"
    assert hooks.call("timers", "firedAfterWaiting") == [False, False]


def test_awaiting_a_timer_past_the_limit_is_a_timeout_and_the_sandbox_goes_on(timers, make_plugin, one_sandbox):
    make_plugin("const plugin = { v() { return 'victim'; } };", slug="victim")
    assert hooks.call("victim", "v") == "victim"
    # A fresh sandbox: runtimes the saves above inspected are closed only at a quiet moment,
    # and until then they spin (jsrun); they would blur the measurement below.
    shutdown_pool()
    hooks.call("timers", "ok")  # loaded: the timed call below is only the wait
    (pid,) = get_pool().worker_pids()
    cpu_before = _cpu_seconds(pid)
    with pytest.raises(PluginTimeout):
        hooks.call("timers", "forever")
    # The wait blocked in the worker: a busy wait would have used ~1 s of CPU.
    assert _cpu_seconds(pid) - cpu_before < 0.5
    assert get_pool().worker_pids() == [pid]  # the same sandbox process goes on
    assert hooks.call("timers", "ok") == "ok"
    assert hooks.call("victim", "v") == "victim"


def test_a_timer_callback_that_throws_fails_the_call(timers):
    with pytest.raises(PluginScriptError, match="RangeError: from a timer"):
        hooks.call("timers", "throwsInTimer")
    assert hooks.call("timers", "ok") == "ok"


def test_a_runaway_timer_callback_is_a_timeout(timers):
    with pytest.raises(PluginTimeout):
        hooks.call("timers", "spinInTimer")
    assert hooks.call("timers", "ok") == "ok"


@pytest.mark.parametrize("hook", ["bombInTimer", "bombInContinuation", "bombInMicrotask"])
def test_a_heap_bomb_in_a_timer_or_a_continuation_is_a_memory_error(timers, hook):
    with pytest.raises(PluginMemoryError):
        hooks.call("timers", hook)
    assert hooks.call("timers", "ok") == "ok"


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
