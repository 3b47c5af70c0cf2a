"""The execution log (plugins_app.calllog): what is recorded, sampling, redaction, size
caps, caller kinds, the bounded queue, the writer thread, forks and pruning.

Real V8 through real sandbox processes. Everything recorded is written by the writer
thread on its own connection, so these tests commit for real (``transaction=True``) and
wait with ``calllog.flush()``, never with sleeps.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os

import pytest
from django.db import transaction
from django.template import Context, Template
from django.test import RequestFactory
from django.utils import timezone

from plugins_app import calllog, hooks, metrics
from plugins_app.exceptions import HookNotFound, PluginScriptError, PluginTimeout
from plugins_app.models import CallMinute, CallRecord, CallTotal, Plugin
from plugins_app.views import filter_value

pytestmark = pytest.mark.django_db(transaction=True)

SOURCE = """
const plugin = {
  echo(x) { log("echo " + JSON.stringify(x)); return {got: x}; },
  boom(x) {
    console.warn("about to fail");
    throw new TypeError("bad input: " + x);
  },
  loop() { for (;;) {} },
  many(n) { for (let i = 0; i < n; i++) log("line " + i + " " + "x".repeat(50)); return n; },
  big(n) { return "y".repeat(n); },
  sidebar(x) { return "hi " + x; },
  headline(value) { return value + "!"; },
};
"""


@pytest.fixture
def call_log(settings):
    """Every success recorded, nothing left over from other tests."""
    settings.PLUGINS_APP = {**settings.PLUGINS_APP, "CALL_LOG_SAMPLE_RATE": 1.0}
    calllog.clear()
    assert calllog.flush()
    yield settings
    calllog.clear()


@pytest.fixture
def plugin(make_plugin, call_log):
    return make_plugin(SOURCE, slug="p", timeout_ms=200)


def configure(settings, **values):
    settings.PLUGINS_APP = {**settings.PLUGINS_APP, **values}


def test_a_failure_is_recorded_with_its_javascript_error(plugin, call_log):
    configure(call_log, CALL_LOG_SAMPLE_RATE=0.0)
    with pytest.raises(PluginScriptError):
        hooks.call("p", "boom", "x1")
    assert calllog.flush()
    [record] = CallRecord.objects.all()
    assert record.plugin == plugin and record.plugin_version == plugin.version and record.hook == "boom"
    assert record.outcome == "error" and not record.sampled and record.caller == "python"
    assert record.error_class == "PluginScriptError"
    assert record.js_error_name == "TypeError" and record.js_message == "bad input: x1"
    assert "bad input: x1" in record.error_message
    assert record.line == 6 and record.column is not None
    assert "boom" in record.js_stack
    assert record.logs == [{"level": "warning", "message": "about to fail"}]
    assert json.loads(record.args) == ["x1"] and record.args_bytes == len('["x1"]')
    assert record.result == ""  # a failure has no result
    assert record.duration_ms > 0 and record.started_at <= timezone.now()


def test_timeouts_and_missing_hooks_are_failures_too(plugin, call_log):
    configure(call_log, CALL_LOG_SAMPLE_RATE=0.0)
    with pytest.raises(PluginTimeout):
        hooks.call("p", "loop")
    with pytest.raises(HookNotFound):
        hooks.call("p", "nope")
    assert calllog.flush()
    outcomes = dict(CallRecord.objects.values_list("hook", "outcome"))
    assert outcomes == {"loop": "timeout", "nope": "error"}
    assert CallRecord.objects.get(hook="nope").error_class == "HookNotFound"


def test_sample_rate_zero_records_no_success_but_metrics_count_every_call(plugin, call_log):
    configure(call_log, CALL_LOG_SAMPLE_RATE=0.0)
    for i in range(5):
        assert hooks.call("p", "echo", i) == {"got": i}
    assert calllog.flush()
    assert not CallRecord.objects.exists()
    assert CallTotal.objects.get(plugin=plugin).calls == 5
    assert sum(CallMinute.objects.values_list("calls", flat=True)) == 5


def test_sample_rate_one_records_every_success(plugin, call_log):
    for i in range(5):
        hooks.call("p", "echo", {"n": i})
    assert calllog.flush()
    records = list(CallRecord.objects.order_by("started_at"))
    assert len(records) == 5 and all(r.outcome == "ok" and r.sampled for r in records)
    assert [json.loads(r.result) for r in records] == [{"got": {"n": i}} for i in range(5)]
    assert records[0].logs == [{"level": "info", "message": 'echo {"n":0}'}]
    assert records[0].host_calls == 0  # log is not a metered host call
    assert records[0].args_complete


def test_actions_and_filters_are_recorded_per_plugin(make_plugin, call_log):
    make_plugin(SOURCE, slug="a")
    make_plugin(SOURCE, slug="b")
    hooks.do_action("sidebar", "x")
    assert hooks.apply_filters("headline", "Hi") == "Hi!!"
    assert calllog.flush()
    assert sorted(CallRecord.objects.values_list("plugin__slug", "hook")) == [
        ("a", "headline"),
        ("a", "sidebar"),
        ("b", "headline"),
        ("b", "sidebar"),
    ]


def test_redact_args_stores_neither_arguments_nor_results(plugin, call_log):
    configure(call_log, CALL_LOG_REDACT_ARGS=True)
    hooks.call("p", "echo", {"password": "hunter2"})
    assert calllog.flush()
    [record] = CallRecord.objects.all()
    assert record.redacted and record.args == "" and record.result == "" and record.args_bytes == 0
    assert not record.args_complete
    assert "hunter2" not in json.dumps([record.args, record.result])


def test_redact_keys_replaces_those_values_at_any_depth(plugin, call_log):
    configure(call_log, CALL_LOG_REDACT_KEYS=["Password", "token"])
    hooks.call("p", "echo", {"user": "ada", "PASSWORD": "hunter2", "nested": [{"token": "t0k"}]})
    assert calllog.flush()
    [record] = CallRecord.objects.all()
    expected = {"user": "ada", "PASSWORD": "[redacted]", "nested": [{"token": "[redacted]"}]}
    assert json.loads(record.args) == [expected]
    assert json.loads(record.result) == {"got": expected}
    assert not record.redacted


def test_redact_keys_keeps_nothing_of_data_too_large_to_keep_whole(plugin, call_log):
    configure(call_log, CALL_LOG_REDACT_KEYS=["password"], CALL_LOG_MAX_DATA_BYTES=100)
    hooks.call("p", "echo", {"password": "hunter2", "padding": "p" * 200})
    assert calllog.flush()
    [record] = CallRecord.objects.all()
    assert record.args == "" and record.result == "" and record.args_bytes > 200 and record.result_bytes > 200
    assert len(record.logs) == 0 and record.logs_dropped == 1  # the log line is over the cap as well


def test_data_is_cut_at_the_size_cap_with_its_full_size_kept(plugin, call_log):
    configure(call_log, CALL_LOG_MAX_DATA_BYTES=1000)
    hooks.call("p", "big", 5000)
    hooks.call("p", "many", 50)
    assert calllog.flush()
    big = CallRecord.objects.get(hook="big")
    assert len(big.result.encode()) == 1000 and big.result_bytes == 5002  # the JSON string's quotes
    many = CallRecord.objects.get(hook="many")
    assert 0 < len(many.logs) < 50 and len(many.logs) + many.logs_dropped == 50
    assert len(json.dumps(many.logs, separators=(",", ":"))) <= 1000
    # Cut arguments are not replayable.
    hooks.call("p", "echo", "z" * 2000)
    assert calllog.flush()
    echo = CallRecord.objects.get(hook="echo")
    assert echo.args_bytes == 2004 and len(echo.args) == 1000 and not echo.args_complete


def test_log_lines_over_max_log_lines_are_counted(plugin, call_log):
    configure(call_log, MAX_LOG_LINES=3)
    hooks.call("p", "many", 10)
    assert calllog.flush()
    record = CallRecord.objects.get()
    assert len(record.logs) == 3 and record.logs_dropped == 7


def test_nul_and_lone_surrogates_from_plugins_are_stored(make_plugin, call_log):
    make_plugin(
        'const plugin = { f() { log("nul \\u0000 here"); throw new Error("x\\u0000y \\ud800"); } };', slug="odd"
    )
    with pytest.raises(PluginScriptError) as caught:
        hooks.call("odd", "f")
    assert calllog.flush()
    record = CallRecord.objects.get()  # PostgreSQL stores no NUL in text: written as an escape
    assert record.logs[0]["message"] == "nul \\x00 here"
    assert record.js_message == caught.value.js_message  # already escaped by the sandbox


def test_caller_kinds(plugin, call_log, rf: RequestFactory):
    hooks.call("p", "echo", 1)
    with calllog.caller("cli"):
        assert calllog.current_caller() == "cli"
        hooks.call("p", "echo", 2)
        with calllog.caller("console"):
            hooks.call("p", "echo", 3)
        hooks.call("p", "echo", 4)
    assert calllog.current_caller() == "python"
    Template('{% load plugins %}{% plugin_hook "sidebar" 5 %}').render(Context({}))
    filter_value(rf.get("/"), "headline", "six")
    with calllog.caller("my-cron"):
        asyncio.run(hooks.acall("p", "echo", 7))  # the executor thread sees the caller
    assert calllog.flush()
    kinds = {(r.hook, json.loads(r.args)[0]): r.caller for r in CallRecord.objects.all()}
    assert kinds == {
        ("echo", 1): "python",
        ("echo", 2): "cli",
        ("echo", 3): "console",
        ("echo", 4): "cli",
        ("sidebar", 5): "template",
        ("headline", "six"): "view",
        ("echo", 7): "my-cron",
    }


def test_console_calls_are_logged_but_not_counted_in_health(plugin, call_log):
    with calllog.caller("console"):
        hooks.call("p", "echo", 1)
    hooks.call("p", "echo", 2)
    assert calllog.flush()
    assert CallRecord.objects.count() == 2
    assert CallTotal.objects.get(plugin=plugin).calls == 1


def test_endpoint_calls_are_recorded_as_endpoint(make_plugin, call_log, client):
    make_plugin('const plugin = { onRequest(req) { return {body: "ok"}; } };', slug="web", http_enabled=True)
    assert client.get("/plugins/web/").status_code == 200
    assert calllog.flush()
    assert CallRecord.objects.get().caller == "endpoint"


def test_caller_kind_is_checked():
    with pytest.raises(ValueError):
        with calllog.caller(""):
            pass
    with pytest.raises(ValueError):
        with calllog.caller("x" * 33):
            pass


def test_a_full_queue_drops_and_counts_never_blocks_or_raises(plugin, call_log, monkeypatch):
    configure(call_log, CALL_LOG_QUEUE_SIZE=2)
    calllog.shutdown()
    # No writer: nothing empties the queue (the hot path would start one: not now).
    monkeypatch.setattr(calllog, "_start_writer", lambda state: None)
    before = calllog.stats()["dropped"]
    for i in range(5):
        assert hooks.call("p", "echo", i) == {"got": i}
    with pytest.raises(PluginScriptError):
        hooks.call("p", "boom", "y")  # a failure finds the queue full too
    stats = calllog.stats()
    assert stats["queued"] == 2 and stats["dropped"] - before == 4
    monkeypatch.undo()
    assert calllog.flush()
    assert CallRecord.objects.count() == 2
    total = CallTotal.objects.get(plugin=plugin)
    assert total.calls == 6 and total.errors == 1 and total.log_dropped == 4  # metrics are never dropped


def test_a_bug_in_recording_never_reaches_the_caller(plugin, call_log, monkeypatch, caplog):
    def broken(*args, **kwargs):
        raise RuntimeError("recording bug")

    monkeypatch.setattr(calllog, "_entry", broken)
    monkeypatch.setattr(calllog, "_last_internal_warning", 0.0)
    assert hooks.call("p", "echo", 1) == {"got": 1}
    with pytest.raises(PluginScriptError):
        hooks.call("p", "boom", 1)
    assert any("could not record a call" in r.getMessage() for r in caplog.records)


def test_records_are_written_outside_the_callers_transaction(plugin, call_log):
    class Rollback(Exception):
        pass

    with pytest.raises(Rollback):
        with transaction.atomic():
            hooks.call("p", "echo", "rolled back")
            raise Rollback
    assert calllog.flush()
    assert json.loads(CallRecord.objects.get().args) == ["rolled back"]


def test_a_failed_write_is_retried_without_losing_or_double_counting(plugin, call_log, monkeypatch):
    real = metrics.store_aggregates
    calls = {"n": 0}

    def flaky(minutes):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("database away")
        real(minutes)

    monkeypatch.setattr(metrics, "store_aggregates", flaky)
    hooks.call("p", "echo", 1)
    assert not calllog.flush()  # the aggregates could not be written: kept
    hooks.call("p", "echo", 2)
    assert calllog.flush()
    assert CallTotal.objects.get(plugin=plugin).calls == 2
    assert CallRecord.objects.count() == 2


def test_records_of_a_plugin_deleted_meanwhile_are_skipped(plugin, call_log, monkeypatch):
    calllog.shutdown()
    monkeypatch.setattr(calllog, "_start_writer", lambda state: None)
    hooks.call("p", "echo", 1)
    Plugin.objects.filter(pk=plugin.pk).delete()
    monkeypatch.undo()
    assert calllog.flush()
    assert not CallRecord.objects.exists() and not CallMinute.objects.exists()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_starts_empty_and_writes_its_own_calls(plugin, call_log, monkeypatch):
    calllog.shutdown()
    monkeypatch.setattr(calllog, "_start_writer", lambda state: None)
    hooks.call("p", "echo", "parent, before the fork")  # queued in the parent only
    monkeypatch.undo()
    row = Plugin.objects.dispatch_row("p")
    pid = os.fork()
    if pid == 0:  # the child: no hook calls (the sandbox pool is the parent's), only the log
        code = 1
        try:
            state = calllog._state
            fresh = state.writer is None and not state.queue and not state.minutes
            calllog.record(row, "echo", 0.001, None, None, '["child"]', '{"got":"child"}')
            code = 0 if fresh and calllog.flush() and calllog.stats()["written"] == 1 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert calllog.flush()
    args = sorted(json.loads(r.args)[0] for r in CallRecord.objects.all())
    assert args == ["child", "parent, before the fork"]
    assert CallTotal.objects.get(plugin=plugin).calls == 2


def test_prune_deletes_old_records_and_minutes_but_not_totals(plugin, call_log):
    configure(call_log, CALL_LOG_RETENTION_DAYS=7, METRICS_RETENTION_DAYS=30)
    now = timezone.now().replace(second=0, microsecond=0)
    common = {"plugin": plugin, "plugin_version": 1, "hook": "echo", "duration_ms": 1.0, "outcome": "ok"}
    CallRecord.objects.bulk_create(
        [CallRecord(started_at=now - datetime.timedelta(days=d), **common) for d in (0, 6, 8, 100)]
    )
    CallMinute.objects.bulk_create(
        [CallMinute(plugin=plugin, minute=now - datetime.timedelta(days=d), calls=1) for d in (0, 29, 31)]
    )
    CallTotal.objects.create(plugin=plugin, calls=3)
    assert calllog.prune_calls(now=now) == {"calls": 2, "minutes": 1}
    assert CallRecord.objects.count() == 2 and CallMinute.objects.count() == 2
    assert CallTotal.objects.get(plugin=plugin).calls == 3
    assert calllog.prune_calls(now=now) == {"calls": 0, "minutes": 0}


def test_flush_with_nothing_recorded_returns_true(call_log):
    assert calllog.flush()
    assert calllog.stats()["queued"] == 0


def test_turning_the_log_off_records_nothing(plugin, call_log):
    configure(call_log, CALL_LOG_ENABLED=False)
    with pytest.raises(PluginScriptError):
        hooks.call("p", "boom", 1)
    assert calllog.flush()
    assert not CallRecord.objects.exists()
    assert CallTotal.objects.get(plugin=plugin).errors == 1
    configure(call_log, CALL_LOG_ENABLED=False, METRICS_ENABLED=False)
    hooks.call("p", "echo", 1)
    assert calllog.flush()
    assert CallTotal.objects.get(plugin=plugin).calls == 1


def test_a_process_writes_what_is_left_when_it_exits(plugin, call_log):
    """A separate Python process records a call and exits at once: atexit writes it."""
    import subprocess
    import sys
    from pathlib import Path

    from django.db import connection

    db = connection.settings_dict
    if connection.vendor == "sqlite":
        url = f"sqlite:///{db['NAME']}"
    elif connection.vendor == "postgresql":
        url = f"postgres://{db['USER'] or ''}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    else:
        pytest.skip("needs SQLite or PostgreSQL")
    script = (
        "import django; django.setup()\n"
        "from plugins_app import calllog\n"
        "from plugins_app.models import Plugin\n"
        "calllog.record(Plugin.objects.dispatch_row('p'), 'echo', 0.002, None, None, '[\"exiting\"]', 'null')\n"
    )
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "project.settings"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    # CALL_LOG_FLUSH_SECONDS is an hour there: only the exit can have written the call.
    script = script.replace(
        "django.setup()\n",
        "django.setup()\nfrom django.conf import settings\nfrom django.test import override_settings\n"
        "override_settings(PLUGINS_APP={**settings.PLUGINS_APP, 'CALL_LOG_SAMPLE_RATE': 1.0, "
        "'CALL_LOG_FLUSH_SECONDS': 3600}).enable()\n",
    )
    subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=60)
    assert json.loads(CallRecord.objects.get().args) == ["exiting"]
    assert CallTotal.objects.get(plugin=plugin).calls == 1


def test_the_plugins_command_records_its_calls_as_cli(plugin, call_log, capsys):
    from django.core.management import call_command

    call_command("plugins", "call", "p", "echo", '"from the shell"')
    assert calllog.flush()
    record = CallRecord.objects.get()
    assert record.caller == "cli" and json.loads(record.args) == ["from the shell"]
