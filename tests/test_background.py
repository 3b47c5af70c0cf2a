"""Background actions through the outbox: inline after commit without Celery; on a real Celery worker with it."""

from __future__ import annotations

import base64
import json
import sys
import time
import uuid

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from plugins_app import background, checks
from plugins_app.background import TASK_NAME, enqueue_action, get_celery_app
from plugins_app.exceptions import PluginDataError
from plugins_app.models import Delivery, Plugin, StorageItem
from plugins_app.signals import bound
from project.demo.models import Note

from .celery_helpers import REDIS_URL, celery_settings, celery_worker, require_redis

COUNTER = """
const plugin = {
  work(data) { storage.incr("runs"); storage.set("data", data); return "done"; },
  noteSaved(note, meta) { storage.set("note", { note, meta }); },
};
"""
# Times out (a runaway loop) on its first `fail_times` calls, then works.
FLAKY = """
const plugin = {
  work() { const n = storage.incr("tries"); if (n <= config.fail_times) { while (true) {} } return n; },
};
"""
BROKEN = "const plugin = { work() { throw new TypeError('bad'); } };"


def number(plugin: Plugin, key: str) -> int | None:
    item = StorageItem.objects.filter(plugin=plugin, key=key).first()
    return None if item is None else item.number


def value(plugin: Plugin, key: str):
    item = StorageItem.objects.filter(plugin=plugin, key=key).first()
    return None if item is None else item.value


@pytest.fixture
def no_celery(settings):
    """Celery not configured (even if the environment configured it for the demo)."""
    if hasattr(settings, "CELERY_BROKER_URL"):
        del settings.CELERY_BROKER_URL
    settings.PLUGINS_APP = {}


@pytest.fixture
def counter(make_plugin) -> Plugin:
    return make_plugin(COUNTER, slug="counter")


@pytest.fixture
def ada(db) -> User:
    return User.objects.create_user("ada", password="x" * 12)


# -- without Celery: inline, after commit --------------------------------------------


def deliveries(ids):
    return {str(d.delivery_id): d for d in Delivery.objects.filter(delivery_id__in=ids)}


def test_without_celery_runs_inline_after_commit(no_celery, counter, django_capture_on_commit_callbacks):
    assert get_celery_app() is None
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        ids = enqueue_action("work", {"n": 1})
        assert number(counter, "runs") is None
        [row] = deliveries(ids).values()
        assert (row.state, row.mode, row.plugin_id, row.args) == ("pending", "background", counter.pk, [{"n": 1}])
    assert len(callbacks) == 1
    assert number(counter, "runs") == 1
    assert value(counter, "data") == {"n": 1}
    [row] = deliveries(ids).values()
    assert (row.state, row.attempts, row.plugin_version) == ("delivered", 1, counter.version)


def test_without_celery_a_rollback_runs_nothing(no_celery, counter, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(ZeroDivisionError), transaction.atomic():
            ids = enqueue_action("work", {"n": 1})
            assert len(ids) == 1
            raise ZeroDivisionError  # rolls the transaction back
    assert callbacks == [] and number(counter, "runs") is None
    assert not Delivery.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_background_binding_without_celery_runs_inline_after_a_real_commit(no_celery, counter, ada):
    with bound("post_save", "noteSaved", sender=Note, mode="background"):
        with pytest.raises(ZeroDivisionError), transaction.atomic():
            Note.objects.create(author=ada, title="rolled back")
            raise ZeroDivisionError  # rolls the transaction back
        assert value(counter, "note") is None
        assert not Delivery.objects.exists()
        with transaction.atomic():
            note = Note.objects.create(author=ada, title="kept")
            assert value(counter, "note") is None
    saved = value(counter, "note")
    assert saved["note"]["id"] == note.pk and saved["note"]["created"] is True
    delivery = Delivery.objects.get()
    assert saved["meta"] == {
        "signal": "post_save",
        "model": "demo.Note",
        "created": True,
        "deliveryId": str(delivery.delivery_id),
        "attempt": 1,
    }


def test_arguments_must_be_json(no_celery):
    with pytest.raises(PluginDataError):
        enqueue_action("work", object())
    with pytest.raises(PluginDataError):
        enqueue_action("work", float("nan"))
    with pytest.raises(TypeError):
        enqueue_action("", 1)


def test_no_plugin_implements_the_hook_records_nothing(no_celery, counter):
    assert enqueue_action("nobodyHasThis", 1) == []
    assert not Delivery.objects.exists()


# -- which Celery app ----------------------------------------------------------------


def test_celery_app_resolution(settings):
    from project.celery import app as project_app

    if hasattr(settings, "CELERY_BROKER_URL"):
        del settings.CELERY_BROKER_URL
    settings.PLUGINS_APP = {}
    assert get_celery_app() is None
    settings.PLUGINS_APP = {"CELERY_APP": "project.celery.app"}
    assert get_celery_app() is project_app
    settings.PLUGINS_APP = {"CELERY_APP": "project.celery:app"}
    assert get_celery_app() is project_app
    settings.PLUGINS_APP = {"CELERY_APP": "project.nope.app"}
    with pytest.raises(ImproperlyConfigured):
        get_celery_app()

    # Simply CELERY_BROKER_URL in Django settings: an app configured from CELERY_* settings.
    settings.PLUGINS_APP = {}
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/14"
    first = get_celery_app()
    assert first.conf.broker_url == "redis://127.0.0.1:6379/14"
    assert get_celery_app() is first
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:6379/13"
    assert get_celery_app().conf.broker_url == "redis://127.0.0.1:6379/13"
    settings.PLUGINS_APP = {"CELERY_APP": False}  # never, whatever the broker setting
    assert get_celery_app() is None


def test_sent_to_the_broker_only_after_commit(settings, counter, django_capture_on_commit_callbacks):
    """Against the real Redis, without a worker: the message appears only on commit."""
    import redis

    require_redis()
    queue = f"plugins-app-test-{uuid.uuid4().hex[:12]}"
    celery_settings(settings, queue)
    client = redis.Redis.from_url(REDIS_URL)
    settings.CELERY_TASK_ROUTES = {"plugins_app.*": {"queue": queue}}
    try:
        with django_capture_on_commit_callbacks(execute=True):
            with pytest.raises(ZeroDivisionError), transaction.atomic():
                enqueue_action("work", 1)
                raise ZeroDivisionError  # rolls the transaction back
            ids = enqueue_action("work", 2)
            assert client.llen(queue) == 0
        assert client.llen(queue) == 1
        message = json.loads(client.lindex(queue, 0))
        assert message["headers"]["task"] == "plugins_app.deliver"
        assert json.loads(base64.b64decode(message["body"]))[0] == [ids]  # ids, never the payload
        assert number(counter, "runs") is None  # not run here
        assert Delivery.objects.get().state == "pending"
    finally:
        client.delete(queue)


# -- checks --------------------------------------------------------------------------


def ids(messages) -> list[str]:
    return sorted(m.id for m in messages)


def test_background_checks(settings, monkeypatch):
    settings.PLUGINS_APP = {"CELERY_APP": "project.celery.app"}
    assert checks.check_background() == []
    settings.PLUGINS_APP = {"CELERY_APP": "project.nope.app"}
    assert ids(checks.check_background()) == ["plugins_app.E025"]
    settings.PLUGINS_APP = {"CELERY_APP": "plugins_app.conf.get"}
    assert ids(checks.check_background()) == ["plugins_app.E025"]
    settings.PLUGINS_APP = {"DELIVERY_MAX_ATTEMPTS": 0, "DELIVERY_RETRY_BACKOFF": "1", "DELIVERY_RETRY_BACKOFF_MAX": -2}
    assert ids(checks.check_background()) == ["plugins_app.E026"] * 3
    settings.PLUGINS_APP = {"DELIVERY_LEASE_SECONDS": 5}
    assert ids(checks.check_background()) == ["plugins_app.W022"]
    settings.PLUGINS_APP = {"BACKGROUND_MAX_RETRIES": 2}
    assert ids(checks.check_background()) == ["plugins_app.W023"]
    settings.PLUGINS_APP = {"CELERY_APP": "project.celery.app"}
    monkeypatch.setitem(sys.modules, "celery", None)  # celery not installed
    assert ids(checks.check_background()) == ["plugins_app.W021"]


# -- a real Celery worker ------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_background_actions_run_on_a_real_celery_worker(settings, make_plugin, counter, ada):
    """A real `celery worker` process, the real Redis broker, the test's own (committed)
    database: deliveries are sent after the commit, retried after a failure, delivered."""
    require_redis()
    counter.source += "\n// v2"
    counter.full_clean()
    counter.save()
    flaky = make_plugin(FLAKY, slug="flaky", timeout_ms=200, config={"fail_times": 1})
    with celery_worker() as worker:
        celery_settings(settings, worker.queue)
        settings.CELERY_TASK_ROUTES = {"plugins_app.*": {"queue": worker.queue}}
        settings.PLUGINS_APP = {**settings.PLUGINS_APP, "DELIVERY_RETRY_BACKOFF": 0.2}
        assert get_celery_app() is not None
        with bound("post_save", "noteSaved", sender=Note, mode="background"):
            with transaction.atomic():
                note = Note.objects.create(author=ada, title="from a worker")
                ids = enqueue_action("work", {"note": note.pk})
        assert len(ids) == 2  # counter and flaky define "work"
        wait_until(lambda: Delivery.objects.exclude(state="delivered").count() == 0, 120, worker)
        log = worker.output()
    rows = {d.plugin.slug: d for d in Delivery.objects.filter(hook="work").select_related("plugin")}
    assert (rows["counter"].attempts, rows["counter"].plugin_version) == (1, 2)
    assert (rows["flaky"].attempts, rows["flaky"].plugin_version) == (2, flaky.version)
    assert number(counter, "runs") == 1
    assert value(counter, "data") == {"note": note.pk}
    assert number(flaky, "tries") == 2
    saved = value(counter, "note")
    assert saved["note"]["id"] == note.pk and saved["meta"]["created"] is True
    assert "delivered 'work' to 'counter'" in log
    assert "to 'flaky' failed (attempt 1), retrying" in log


def wait_until(condition, timeout: float, worker) -> None:
    """Poll the database until ``condition()``; fail with the worker's output otherwise."""
    deadline = time.monotonic() + timeout
    while not condition():
        if worker.proc.poll() is not None:
            pytest.fail(f"the Celery worker exited with {worker.proc.returncode}:\n{worker.output()}", pytrace=False)
        if time.monotonic() > deadline:
            pytest.fail(f"not done within {timeout} s:\n{worker.output()}", pytrace=False)
        time.sleep(0.1)


def test_tasks_are_registered_under_their_public_names():
    from plugins_app import outbox, tasks

    assert tasks.run_action.name == TASK_NAME == background.TASK_NAME  # deprecated, still registered
    assert tasks.deliver.name == outbox.DELIVER_TASK == "plugins_app.deliver"
    assert tasks.drain_outbox.name == outbox.DRAIN_TASK == "plugins_app.drain_outbox"
    # Delivered again if the worker dies mid-task; no result stored or awaited.
    assert tasks.deliver.acks_late and tasks.deliver.reject_on_worker_lost and tasks.deliver.ignore_result
    assert tasks.drain_outbox.ignore_result
    assert tasks.beat_schedule()["plugins_app-drain-outbox"]["task"] == outbox.DRAIN_TASK
