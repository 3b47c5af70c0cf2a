"""Filters and actions run as one conversation with a sandbox (pool.run_chain), and log
lines travel with the next frame instead of a round trip each (worker.buffer_log).

Every test runs real V8 in real sandbox processes.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import threading

import pytest
from django.db import connections

from plugins_app import hooks
from plugins_app.exceptions import (
    HookDepthExceeded,
    PluginCrashed,
    PluginDataError,
    PluginScriptError,
    PluginTimeout,
)
from plugins_app.models import CallRecord, Plugin, StorageItem
from plugins_app.sandbox import pool, protocol

pytestmark = pytest.mark.django_db(transaction=True)

FILTER = "const plugin = {{ title(v, sfx) {{ log('{slug} saw ' + v); return v + '-{slug}' + sfx; }} }};"


@pytest.fixture
def one_sandbox(settings):
    settings.PLUGINS_APP = {"POOL_SIZE": 1, "CALL_LOG_SAMPLE_RATE": 1.0}


def logs_of(caplog, slug):
    return [r.getMessage() for r in caplog.records if r.name == f"plugins_app.plugins.{slug}"]


def test_a_filter_chain_passes_the_value_through_every_plugin_in_priority_order(make_plugin, one_sandbox, caplog):
    for priority, slug in enumerate(["a", "b", "c"]):
        make_plugin(FILTER.format(slug=slug), slug=slug, priority=10 - priority)
    caplog.set_level(logging.INFO, logger="plugins_app.plugins")
    assert hooks.apply_filters("title", "T", "!") == "T-c!-b!-a!"
    assert logs_of(caplog, "b") == ["b saw T-c!"]
    # One sandbox, and every plugin of the chain is warm in it.
    (sandbox,) = pool.get_pool()._idle
    assert {p.runtime_key for p in Plugin.objects.all()} <= sandbox.warm


def test_a_failing_plugin_is_skipped_and_the_rest_still_run(make_plugin, one_sandbox, caplog):
    make_plugin(FILTER.format(slug="a"), slug="a", priority=1)
    make_plugin("const plugin = { title(v) { throw new TypeError('bad ' + v); } };", slug="bad", priority=2)
    make_plugin("const plugin = { title(v) { while (true) {} } };", slug="slow", priority=3, timeout_ms=200)
    make_plugin(FILTER.format(slug="z"), slug="z", priority=4)
    errors: list = []
    assert hooks.apply_filters("title", "T", "!", errors=errors) == "T-a!-z!"
    assert [(e.slug, type(e.error)) for e in errors] == [("bad", PluginScriptError), ("slow", PluginTimeout)]
    assert errors[0].error.js_message == "bad T-a!"
    # Each failure counts towards its own plugin's breaker only.
    failures = dict(Plugin.objects.values_list("slug", "consecutive_failures"))
    assert failures == {"a": 0, "bad": 1, "slow": 1, "z": 0}
    # And the next chain still works (the timed-out runtime was replaced).
    assert hooks.apply_filters("title", "U", "?", errors=[]) == "U-a?-z?"


def test_fail_closed_stops_at_the_first_failure(make_plugin, one_sandbox):
    make_plugin("const plugin = { title(v) { storage.set('ran', 1); return v + '1'; } };", slug="one", priority=1)
    make_plugin("const plugin = { title(v) { throw new Error('no'); } };", slug="two", priority=2)
    make_plugin("const plugin = { title(v) { storage.set('ran', 1); return v + '3'; } };", slug="three", priority=3)
    with pytest.raises(PluginScriptError, match="no"):
        hooks.apply_filters("title", "v", fail_closed=True)
    assert set(StorageItem.objects.values_list("plugin__slug", flat=True)) == {"one"}


def test_an_action_chain_gives_every_plugin_the_same_arguments(make_plugin, one_sandbox):
    make_plugin("const plugin = { act(x) { return x * 2; } };", slug="a", priority=1)
    make_plugin("const plugin = { act(x) { return x.missing.field; } };", slug="b", priority=2)
    make_plugin("const plugin = { act(x) { return x + 1; } };", slug="c", priority=3)
    results = hooks.do_action("act", 20)
    assert [(r.slug, r.value, type(r.error).__name__ if r.error else None) for r in results] == [
        ("a", 40, None),
        ("b", None, "PluginScriptError"),
        ("c", 21, None),
    ]


def test_host_calls_in_a_chain_act_with_each_plugins_own_grants(make_plugin, one_sandbox):
    """storage is per plugin: each step's host calls are answered with its own context."""
    for slug in ("a", "b", "c"):
        make_plugin(
            f"const plugin = {{ act() {{ storage.set('who', '{slug}'); return storage.keys(); }} }};", slug=slug
        )
    assert [r.value for r in hooks.do_action("act")] == [["who"], ["who"], ["who"]]
    stored = {(i.plugin.slug, i.value) for i in StorageItem.objects.select_related("plugin")}
    assert stored == {("a", "a"), ("b", "b"), ("c", "c")}


def test_a_cold_plugin_in_the_middle_of_a_chain_is_loaded_there(make_plugin, one_sandbox):
    make_plugin(FILTER.format(slug="a"), slug="a", priority=1)
    make_plugin(FILTER.format(slug="c"), slug="c", priority=3)
    assert hooks.apply_filters("title", "T", "") == "T-a-c"
    make_plugin(FILTER.format(slug="b"), slug="b", priority=2)  # new: not warm anywhere
    assert hooks.apply_filters("title", "T", "") == "T-a-b-c"


def test_a_plugin_whose_source_no_longer_loads_fails_alone(make_plugin, one_sandbox):
    make_plugin(FILTER.format(slug="a"), slug="a", priority=1)
    broken = make_plugin(
        "const plugin = { title(v) { return v + '!'; } }; if (config.boom) { throw new Error('load'); }",
        slug="b",
        priority=2,
    )
    make_plugin(FILTER.format(slug="c"), slug="c", priority=3)
    Plugin.objects.filter(pk=broken.pk).update(config={"boom": True}, fingerprint="changed")
    errors: list = []
    assert hooks.apply_filters("title", "T", "", errors=errors) == "T-a-c"
    assert [e.slug for e in errors] == ["b"]


def test_the_sandbox_dying_mid_chain_fails_that_plugin_and_runs_the_rest_once(make_plugin, one_sandbox):
    make_plugin("const plugin = { act() { storage.incr('runs'); return 'a'; } };", slug="a", priority=1)
    make_plugin(
        "const plugin = { act() { storage.incr('runs'); storage.get('kill me'); return 'b'; } };", slug="b", priority=2
    )
    make_plugin("const plugin = { act() { storage.incr('runs'); return 'c'; } };", slug="c", priority=3)
    killed = []
    from plugins_app.host_api import HostContext

    handle = HostContext.handle

    def killing_handle(self, name, args_json):
        if self.slug == "b" and name == "storage.get" and not killed:
            (pid,) = pool.get_pool()._busy_pids()
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
        return handle(self, name, args_json)

    HostContext.handle = killing_handle
    try:
        results = hooks.do_action("act")
    finally:
        HostContext.handle = handle
    assert [(r.slug, r.value, type(r.error)) for r in results] == [
        ("a", "a", type(None)),
        ("b", None, PluginCrashed),
        ("c", "c", type(None)),
    ]
    runs = dict(StorageItem.objects.values_list("plugin__slug", "number"))
    assert runs == {"a": 1, "b": 1, "c": 1}


def test_every_step_is_in_the_execution_log_with_its_own_arguments(make_plugin, one_sandbox):
    from plugins_app import calllog

    make_plugin(FILTER.format(slug="a"), slug="a", priority=1)
    make_plugin(FILTER.format(slug="b"), slug="b", priority=2)
    hooks.apply_filters("title", "T", "!")
    calllog.flush()
    records = {r.plugin.slug: r for r in CallRecord.objects.select_related("plugin")}
    assert set(records) == {"a", "b"}
    assert json.loads(records["a"].args) == ["T", "!"] and json.loads(records["b"].args) == ["T-a!", "!"]
    assert json.loads(records["b"].result) == "T-a!-b!"
    assert [line["message"] for line in records["b"].logs] == ["b saw T-a!"]


def test_bad_arguments_are_reported_by_every_plugin(make_plugin, one_sandbox):
    make_plugin(FILTER.format(slug="a"), slug="a", priority=1)
    make_plugin(FILTER.format(slug="b"), slug="b", priority=2)
    errors: list = []
    value = object()
    assert hooks.apply_filters("title", value, errors=errors) is value
    assert [(e.slug, type(e.error)) for e in errors] == [("a", PluginDataError), ("b", PluginDataError)]


def test_chains_nested_too_deeply_report_it_per_plugin(make_plugin, one_sandbox, settings):
    settings.PLUGINS_APP = {"POOL_SIZE": 1, "MAX_HOOK_DEPTH": 1}
    make_plugin(FILTER.format(slug="a"), slug="a", priority=1)
    make_plugin(FILTER.format(slug="b"), slug="b", priority=2)
    errors: list = []
    with hooks._nesting("outer"):
        assert hooks.apply_filters("title", "T", "", errors=errors) == "T"
    assert [type(e.error) for e in errors] == [HookDepthExceeded, HookDepthExceeded]


# -- the protocol of chains: frames belong to the running step --------------------------------


class _FakeWorker:
    """The supervisor's view of a compromised sandbox that replays frames."""

    def __init__(self, frames):
        self.frames = list(frames)
        self.killed = False
        self.rss_at_start = 0
        self.reader = protocol.FrameReader(-1)
        self.warm = set()
        self.pid = 0
        self.proc = type("P", (), {"returncode": -9})()

    def recv(self, deadline, *, watch_rss=True):
        return self.frames.pop(0)

    def send(self, message):
        pass

    def kill(self):
        self.killed = True

    def died_of_memory(self):
        return False


def _steps(calls):
    def host_of(slug):
        return lambda name, args: calls.append((slug, name)) or '{"ok":null}'

    return [
        pool.Invocation(
            slug=s, key=s, hook="h", args_json="[]", timeout=1.0, memory_mb=32, spec_loader=dict, host=host_of(s)
        )
        for s in ("a", "b")
    ]


@pytest.mark.parametrize(
    "frames",
    [
        # step a asks for a host call in the name of step b
        [{"op": "host", "id": "c", "i": 1, "name": "storage.set", "args": "[]"}],
        # after step a's answer, a frame of step a again
        [{"op": "step", "id": "c", "i": 0, "ok": "1"}, {"op": "host", "id": "c", "i": 0, "name": "x", "args": "[]"}],
        # more steps than the call has
        [{"op": "step", "id": "c", "i": 0, "ok": "1"}, {"op": "step", "id": "c", "i": 1, "ok": "1"}],
        # a spec request for a plugin that is not the running step's
        [{"op": "need_spec", "id": "c", "i": 0, "key": "b"}],
        # malformed log lines
        [{"op": "step", "id": "c", "i": 0, "ok": "1", "logs": [["info"]]}],
    ],
)
def test_supervisor_kills_a_sandbox_whose_frames_do_not_belong_to_the_running_step(frames):
    calls: list = []
    fake = _FakeWorker(frames)
    results: list = [None, None]
    with pytest.raises(pool._StepFailed) as failed:
        pool._serve(fake, "c", _steps(calls), results)
    assert fake.killed and isinstance(failed.value.error, PluginCrashed)
    assert calls == []


# -- log lines: buffered in the sandbox, sent with the next frame -------------------------------


def test_log_lines_arrive_in_order_around_host_calls(make_plugin, one_sandbox, caplog):
    order: list = []
    make_plugin(
        "const plugin = { h() { log('one'); log('two'); storage.set('k', 1); log('three'); return 1; } };",
        slug="lg",
    )

    class Tap(logging.Handler):
        def emit(self, record):
            order.append(record.getMessage())

    from plugins_app.host_api import HostContext

    handle = HostContext.handle

    def tapped(self, name, args_json):
        if name != "log":
            order.append(f"host {name}")
        return handle(self, name, args_json)

    tap = Tap()
    plugin_logger = logging.getLogger("plugins_app.plugins.lg")
    plugin_logger.addHandler(tap)
    plugin_logger.setLevel(logging.INFO)
    HostContext.handle = tapped
    try:
        result = hooks.run("lg", "h")
    finally:
        HostContext.handle = handle
        plugin_logger.removeHandler(tap)
    assert order == ["one", "two", "host storage.set", "three"]
    assert [line.message for line in result.logs] == ["one", "two", "three"]


def test_log_lines_of_a_call_that_times_out_are_kept(make_plugin, one_sandbox):
    from plugins_app import calllog

    make_plugin("const plugin = { h() { log('before the loop'); while (true) {} } };", slug="lg", timeout_ms=200)
    with pytest.raises(PluginTimeout):
        hooks.call("lg", "h")
    calllog.flush()
    record = CallRecord.objects.get(plugin__slug="lg")
    assert [line["message"] for line in record.logs] == ["before the loop"]


def test_log_lines_past_the_cap_are_counted_not_sent(make_plugin, one_sandbox, settings):
    settings.PLUGINS_APP = {"POOL_SIZE": 1, "MAX_LOG_LINES": 3, "MAX_LOG_LINE_CHARS": 5, "CALL_LOG_SAMPLE_RATE": 1.0}
    make_plugin(
        "const plugin = { h() { for (let i = 0; i < 5000; i++) log('line ' + i); return 1; } };",
        slug="lg",
        timeout_ms=10_000,
    )
    result = hooks.run("lg", "h")
    assert [line.message for line in result.logs] == ["line …", "line …", "line …"]
    from plugins_app import calllog

    calllog.flush()
    assert CallRecord.objects.get(plugin__slug="lg").logs_dropped == 5000 - 3


def test_top_level_log_lines_reach_the_first_call(make_plugin, one_sandbox):
    make_plugin("log('loading'); const plugin = { h() { log('called'); return 1; } };", slug="lg")
    pool.shutdown_pool()  # the first call loads the plugin in a new sandbox
    assert [line.message for line in hooks.run("lg", "h").logs] == ["loading", "called"]


def test_a_warm_sandbox_serves_calls_from_many_threads(make_plugin, one_sandbox):
    make_plugin("const plugin = { h(n) { log('n=' + n); return n * 2; } };", slug="a")
    make_plugin("const plugin = { h(n) { return n + 1; } };", slug="b")
    failures: list = []

    def work(offset):
        try:
            for n in range(offset, offset + 30):
                assert hooks.call("a", "h", n) == n * 2
                assert hooks.call("b", "h", n) == n + 1
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(exc)
        finally:
            connections.close_all()  # this thread's own connection (dispatch state)

    threads = [threading.Thread(target=work, args=(i * 100,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_plugins_with_large_memory_limits_load_next_to_small_ones(make_plugin, one_sandbox):
    """A runtime reserves address space that grows with its heap limit (V8's code range):
    a 256 and a 512 MiB plugin must fit under the worker's data limit, not abort it."""
    make_plugin("const plugin = { h() { return 'small'; } };", slug="small")
    make_plugin("const plugin = { h() { return new Array(1e6).fill(1).length; } };", slug="big", memory_limit_mb=256)
    make_plugin("const plugin = { h() { return 'huge'; } };", slug="huge", memory_limit_mb=512)
    (pid,) = {pool.get_pool().checkout(None, 1.0).pid for _ in range(1)}
    pool.get_pool().checkin(next(w for w in pool.get_pool()._busy if w.pid == pid), True)
    for _ in range(2):
        assert [hooks.call(s, "h") for s in ("small", "big", "huge")] == ["small", 1_000_000, "huge"]
    assert pool.get_pool().worker_pids() == [pid]  # the same sandbox process all along


def test_a_cold_call_sends_the_code_along_instead_of_waiting_to_be_asked(make_plugin, one_sandbox):
    make_plugin("const plugin = { h() { return 1; } };", slug="a")
    ops: list = []
    recv = pool.WorkerProcess.recv

    def recording(self, deadline, *, watch_rss=True):
        frame = recv(self, deadline, watch_rss=watch_rss)
        ops.append(frame.get("op"))
        return frame

    pool.WorkerProcess.recv = recording
    try:
        assert hooks.call("a", "h") == 1  # cold in this sandbox: loaded from the spec sent along
        assert hooks.call("a", "h") == 1  # warm
    finally:
        pool.WorkerProcess.recv = recv
    assert "need_spec" not in ops and ops.count("loaded") == 1


def test_a_spec_sent_for_another_plugin_than_the_call_is_a_protocol_violation(make_plugin, one_sandbox):
    make_plugin("const plugin = { h() { return 1; } };", slug="a")
    assert hooks.call("a", "h") == 1
    worker = pool.get_pool().checkout(None, 1.0)
    try:
        spec = {"key": "other@1:x", "slug": "other", "source": "const plugin = {};", "config": "{}", "memory_mb": 16}
        worker.send(
            {"op": "call", "id": "c", "mode": "call", "steps": [["a@1:y", "h", 1.0]], "args": "[]", "spec": spec}
        )
        with pytest.raises(pool._StepFailed) as failed:
            pool._serve(worker, "c", _steps([])[:1], [None])
        assert isinstance(failed.value.error, PluginCrashed)
    finally:
        pool.get_pool().checkin(worker, False)
