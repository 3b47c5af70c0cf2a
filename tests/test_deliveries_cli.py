"""`manage.py plugins deliveries / deliver / prune`, including `deliver --loop` as a real
process stopped by a signal, and concurrent drainers that never deliver a row twice."""

from __future__ import annotations

import datetime
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone

from plugins_app import deliveries, outbox
from plugins_app.models import Delivery, Plugin

from .celery_helpers import worker_database_url
from .cli import run
from .delivery_helpers import WORKER, add, age, failed, reload, runs, set_fail

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def worker(make_plugin, one_attempt) -> Plugin:
    return make_plugin(WORKER, slug="worker", config={"fail": True})


@pytest.fixture
def other(make_plugin, one_attempt) -> Plugin:
    return make_plugin(WORKER, slug="other", config={"fail": False})


# -- plugins deliveries ----------------------------------------------------------------------------
@pytest.mark.django_db
def test_deliveries_lists_newest_first_with_one_line_errors(worker, other):
    bad = failed(worker, n=3)
    waiting = add(other, hook="other")
    code, out, err = run("deliveries")
    assert (code, err) == (0, "")
    header, first, second = out.splitlines()
    assert header.split() == [
        "ID",
        "CREATED",
        "PLUGIN",
        "HOOK",
        "STATE",
        "ATTEMPTS",
        "NEXT",
        "ATTEMPT",
        "LAST",
        "ERROR",
    ]
    assert first.split()[:6] == [
        str(waiting.delivery_id),
        waiting.created_at.isoformat(timespec="seconds"),
        "other",
        "other",
        "pending",
        "0",
    ]
    assert first.split()[6] == waiting.next_attempt_at.isoformat(timespec="seconds")
    assert second.split()[:7] == [
        str(bad.delivery_id),
        bad.created_at.isoformat(timespec="seconds"),
        "worker",
        "work",
        "failed",
        "1",
        "-",
    ]
    assert second.endswith(
        "PluginScriptError: plugin 'worker' threw TypeError: failing on purpose: 3 at line 4, column 28"
    )


@pytest.mark.django_db
def test_deliveries_filters_limits_and_json(worker, other):
    bad = failed(worker)
    waiting = [add(other, n=i) for i in range(3)]
    code, out, _ = run("deliveries", "--state", "failed")
    assert code == 0 and [line.split()[0] for line in out.splitlines()[1:]] == [str(bad.delivery_id)]
    code, out, _ = run("deliveries", "--plugin", "other", "--hook", "work")
    assert len(out.splitlines()) == 4
    assert run("deliveries", "--hook", "nothing") == (0, "No deliveries.\n", "")
    code, out, err = run("deliveries", "--plugin", "other", "--limit", "2")
    assert len(out.splitlines()) == 3
    assert err == "Showing the newest 2 of 3 deliveries; use --limit to see more.\n"
    code, out, err = run("deliveries", "--json", "--state", "failed")
    [item] = json.loads(out)
    assert item["id"] == str(bad.delivery_id) and item["plugin"] == "worker" and item["next_attempt"] is None
    assert (item["state"], item["attempts"], item["mode"], item["plugin_version"]) == ("failed", 1, "after_commit", 1)
    assert item["last_error_stack"].startswith("TypeError: failing on purpose: 1\n    at Object.work (worker.js:4:")
    pending = json.loads(run("deliveries", "--json", "--state", "pending")[1])
    assert {p["id"] for p in pending} == {str(w.delivery_id) for w in waiting}
    assert all(p["next_attempt"] for p in pending)
    with pytest.raises(CommandError, match="no plugin 'nope'"):
        call_command("plugins", "deliveries", "--plugin", "nope")
    with pytest.raises(CommandError, match="invalid choice"):
        call_command("plugins", "deliveries", "--state", "lost")
    with pytest.raises(CommandError, match="not a positive whole number"):
        call_command("plugins", "deliveries", "--limit", "0")


# -- plugins deliver --------------------------------------------------------------------------------
@pytest.mark.django_db
def test_deliver_runs_one_pass_and_reports_outcomes(make_plugin, worker, other, settings):
    settings.PLUGINS_APP = {**settings.PLUGINS_APP, "DELIVERY_MAX_ATTEMPTS": 2, "DELIVERY_RETRY_BACKOFF": 60}
    good, bad, later = add(other), add(worker), add(other, next_attempt_at=timezone.now() + datetime.timedelta(hours=1))
    assert run("deliver") == (0, "Delivered 1, retrying 1, failed 0.\n", "")
    assert (reload(good).state, reload(bad).state, reload(later).state) == ("delivered", "pending", "pending")
    Delivery.objects.filter(pk=bad.pk).update(next_attempt_at=timezone.now())
    assert run("deliver") == (0, "Delivered 0, retrying 0, failed 1.\n", "")
    assert reload(bad).state == "failed" and runs(other, good) == 1 and runs(other, later) == 0


@pytest.mark.django_db
def test_deliver_limit_says_when_more_are_due(other):
    rows = [add(other, n=i) for i in range(3)]
    code, out, _ = run("deliver", "--limit", "2")
    assert out == "Delivered 2, retrying 0, failed 0.\nMore deliveries are due: run again, or use --loop.\n"
    assert run("deliver")[1] == "Delivered 1, retrying 0, failed 0.\n"
    assert all(runs(other, r) == 1 for r in rows)


@pytest.mark.django_db
def test_deliver_retry_failed_gives_failed_rows_new_attempts_but_not_discarded_ones(worker):
    first, second = failed(worker, n=1), failed(worker, n=2)
    Delivery.objects.filter(pk=second.pk).update(state=Delivery.State.DISCARDED)
    set_fail(worker, False)
    assert run("deliver") == (0, "Delivered 0, retrying 0, failed 0.\n", "")
    assert run("deliver", "--retry-failed") == (
        0,
        "1 failed delivery is due again.\nDelivered 1, retrying 0, failed 0.\n",
        "",
    )
    done = reload(first)
    assert (done.state, done.attempts, done.plugin_version) == ("delivered", 1, worker.version)
    assert reload(second).state == "discarded" and runs(worker, second) == 0


def test_deliver_options_are_checked():
    for args, text in [
        (["--interval", "0"], "not a positive number of seconds"),
        (["--interval", "nan"], "not a positive number of seconds"),
        (["--limit", "-1"], "not a positive whole number"),
    ]:
        with pytest.raises(CommandError, match=text):
            call_command("plugins", "deliver", *args)


# -- plugins prune ------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_prune_deletes_by_state_and_age_per_retention_settings(other, settings):
    settings.PLUGINS_APP = {**settings.PLUGINS_APP, "DELIVERY_RETENTION_DAYS": 2, "DELIVERY_FAILED_RETENTION_DAYS": 10}
    rows = {
        name: add(other)
        for name in ("old_done", "new_done", "old_failed", "mid_failed", "old_discarded", "old_pending")
    }
    states = {
        "old_done": "delivered",
        "new_done": "delivered",
        "old_failed": "failed",
        "mid_failed": "failed",
        "old_discarded": "discarded",
        "old_pending": "pending",
    }
    for name, state in states.items():
        Delivery.objects.filter(pk=rows[name].pk).update(state=state)
    age([rows["old_done"], rows["mid_failed"]], days=3)
    age([rows["old_failed"], rows["old_discarded"], rows["old_pending"]], days=11)
    code, out, _ = run("prune")
    assert out.splitlines()[0] == (
        "Pruned 1 delivered and 2 failed or discarded deliveries "
        "(kept: delivered for 2 days, failed and discarded for 10 days)."
    )
    assert out.splitlines()[1].startswith("Pruned 0 call records and 0 per-minute metrics rows")
    left = set(Delivery.objects.values_list("pk", flat=True))
    assert left == {rows[n].pk for n in ("new_done", "mid_failed", "old_pending")}


# -- deliver --loop as a real process ----------------------------------------------------------------------
SLOW = """
const plugin = {
  work(data, meta) {
    const end = Date.now() + data.busy_ms;
    while (Date.now() < end) {}
    storage.incr(meta.deliveryId);
    return 1;
  },
};
"""


def start_loop(log_path: Path) -> subprocess.Popen:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "project.settings",
        "DATABASE_URL": worker_database_url(),
        "PYTHONUNBUFFERED": "1",
    }
    with open(log_path, "wb") as log:
        return subprocess.Popen(
            [sys.executable, "manage.py", "plugins", "deliver", "--loop", "--interval", "0.2"],
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def wait_for_state(
    proc: subprocess.Popen, log_path: Path, row: Delivery, states: set[str], timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while reload(row).state not in states:
        if proc.poll() is not None:
            pytest.fail(f"deliver --loop exited with {proc.returncode}:\n{log_path.read_text()}", pytrace=False)
        if time.monotonic() > deadline:
            pytest.fail(f"delivery not {states} within {timeout} s:\n{log_path.read_text()}", pytrace=False)
        time.sleep(0.05)


@pytest.fixture
def loop_log():
    fd, name = tempfile.mkstemp(prefix="plugins-deliver-loop-", suffix=".log")
    os.close(fd)
    yield Path(name)
    Path(name).unlink(missing_ok=True)


def stop(proc: subprocess.Popen, sig: int, log_path: Path) -> str:
    proc.send_signal(sig)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        pytest.fail(
            f"deliver --loop did not stop on {signal.Signals(sig).name}:\n{log_path.read_text()}", pytrace=False
        )
    return log_path.read_text()


@pytest.mark.django_db(transaction=True)
def test_deliver_loop_delivers_and_exits_0_on_sigterm(make_plugin, loop_log):
    plugin = make_plugin(SLOW, slug="slow")
    proc = start_loop(loop_log)
    try:
        row = Delivery.objects.create(plugin=plugin, hook="work", mode="background", args=[{"busy_ms": 0}], meta={})
        wait_for_state(proc, loop_log, row, {"delivered"})
        output = stop(proc, signal.SIGTERM, loop_log)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output
    assert "Delivered 1, retrying 0, failed 0." in output and "Stopped. In all: delivered 1" in output
    assert runs(plugin, row) == 1


@pytest.mark.django_db(transaction=True)
def test_deliver_loop_finishes_the_current_delivery_on_sigint(make_plugin, loop_log):
    plugin = make_plugin(SLOW, slug="slow", timeout_ms=20_000)
    proc = start_loop(loop_log)
    try:
        row = Delivery.objects.create(plugin=plugin, hook="work", mode="background", args=[{"busy_ms": 1500}], meta={})
        wait_for_state(proc, loop_log, row, {"in_progress", "delivered"})
        output = stop(proc, signal.SIGINT, loop_log)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output
    done = reload(row)
    assert (done.state, done.attempts) == ("delivered", 1) and runs(plugin, row) == 1
    assert "Stopped." in output and "Traceback" not in output


# -- several drainers at once ------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_concurrent_drainers_never_deliver_a_row_twice(make_plugin):
    plugin = make_plugin(WORKER, slug="worker", config={"fail": False})
    rows = [add(plugin, n=i) for i in range(40)]
    start = threading.Barrier(3)
    outcomes: list[list[outbox.Attempt]] = [[], [], []]
    errors: list[BaseException] = []

    def drainer(index: int) -> None:
        try:
            start.wait(timeout=30)
            # Each drainer takes every row it sees due and races the others for it.
            for delivery_id in outbox.due(100):
                outcomes[index].append(outbox.deliver(delivery_id))
        except BaseException as exc:  # reported below, on the test's thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=drainer, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors, errors
    delivered = [a.delivery_id for out in outcomes for a in out if a.state == "delivered"]
    assert sorted(delivered) == sorted(str(r.delivery_id) for r in rows)  # each once, none twice
    skipped = [a for out in outcomes for a in out if a.state == "skipped"]
    assert len(delivered) + len(skipped) == sum(len(out) for out in outcomes)
    assert [runs(plugin, r) for r in rows] == [1] * len(rows)
    assert set(Delivery.objects.values_list("state", flat=True)) == {"delivered"}


def test_tally_counts_outcomes_by_state():
    attempts = [
        outbox.Attempt("a", "delivered"),
        outbox.Attempt("b", "pending"),
        outbox.Attempt("c", "failed"),
        outbox.Attempt("d", "skipped"),
        outbox.Attempt("e", "delivered"),
    ]
    tally = deliveries.tally(attempts)
    assert (tally.delivered, tally.retrying, tally.failed, tally.skipped, tally.attempted) == (2, 1, 1, 1, 4)
    assert tally.text() == ("delivered 2, retrying 1, failed 1, skipped 1 (taken by another drainer or no longer due)")
