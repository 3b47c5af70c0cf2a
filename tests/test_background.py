"""Background actions: inline after commit without Celery; on a real Celery worker with it."""
from __future__ import annotations

import sys
import uuid

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from plugins_app import background, checks
from plugins_app.background import TASK_NAME, enqueue_action, get_celery_app, retry_countdown
from plugins_app.exceptions import PluginDataError
from plugins_app.models import Plugin, StorageItem
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


def test_without_celery_runs_inline_after_commit(no_celery, counter, django_capture_on_commit_callbacks):
    assert get_celery_app() is None
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        enqueued = enqueue_action("work", {"n": 1})
        assert (enqueued.inline, enqueued.state, number(counter, "runs")) == (True, "pending", None)
    assert len(callbacks) == 1
    assert enqueued.state == "done"
    assert number(counter, "runs") == 1
    assert value(counter, "data") == {"n": 1}
    [run] = enqueued.runs
    assert run["slug"] == "counter" and run["version"] == counter.version and run["ok"] and run["error"] is None


def test_without_celery_a_rollback_runs_nothing(no_celery, counter, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(ZeroDivisionError), transaction.atomic():
            enqueued = enqueue_action("work", {"n": 1})
            1 / 0
    assert callbacks == [] and enqueued.state == "pending" and number(counter, "runs") is None


@pytest.mark.django_db(transaction=True)
def test_background_binding_without_celery_runs_inline_after_a_real_commit(no_celery, counter, ada):
    with bound("post_save", "noteSaved", sender=Note, mode="background"):
        with pytest.raises(ZeroDivisionError), transaction.atomic():
            Note.objects.create(author=ada, title="rolled back")
            1 / 0
        assert value(counter, "note") is None
        with transaction.atomic():
            note = Note.objects.create(author=ada, title="kept")
            assert value(counter, "note") is None
    saved = value(counter, "note")
    assert saved["note"]["id"] == note.pk and saved["note"]["created"] is True
    assert saved["meta"] == {"signal": "post_save", "model": "demo.Note", "created": True}


def test_arguments_must_be_json(no_celery):
    with pytest.raises(PluginDataError):
        enqueue_action("work", object())
    with pytest.raises(PluginDataError):
        enqueue_action("work", float("nan"))
    with pytest.raises(TypeError):
        enqueue_action("", 1)


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
    try:
        with django_capture_on_commit_callbacks(execute=True):
            with pytest.raises(ZeroDivisionError), transaction.atomic():
                enqueue_action("work", 1)
                1 / 0
            enqueued = enqueue_action("work", 2)
            assert (enqueued.state, client.llen(queue)) == ("pending", 0)
        assert (enqueued.state, client.llen(queue)) == ("sent", 1)
        assert not enqueued.inline and number(counter, "runs") is None  # not run here
    finally:
        client.delete(queue)


# -- the task: versions and retries --------------------------------------------------


def run_task(hook: str, *args):
    from plugins_app.tasks import run_action

    result = run_action.apply(args=[hook, list(args)])
    assert result.successful(), result.traceback
    return result.get()


def test_task_records_versions_and_retries_only_failing_plugins(settings, make_plugin, counter):
    settings.PLUGINS_APP = {"BACKGROUND_RETRY_BACKOFF": 0}
    flaky = make_plugin(FLAKY, slug="flaky", timeout_ms=100, config={"fail_times": 2})
    counter.source += "\n// v2"
    counter.full_clean()
    counter.save()
    assert counter.version == 2
    runs = run_task("work", {"n": 7})
    by_slug = {run["slug"]: run for run in runs}
    assert by_slug["counter"] == {**by_slug["counter"], "version": 2, "ok": True, "attempts": 1, "error": None}
    assert by_slug["flaky"] == {**by_slug["flaky"], "version": flaky.version, "ok": True, "attempts": 3}
    assert number(flaky, "tries") == 3
    assert number(counter, "runs") == 1  # a retry never runs plugins that succeeded again


def test_task_gives_up_after_max_retries(settings, make_plugin):
    settings.PLUGINS_APP = {"BACKGROUND_RETRY_BACKOFF": 0, "BACKGROUND_MAX_RETRIES": 1}
    flaky = make_plugin(FLAKY, slug="flaky", timeout_ms=100, config={"fail_times": 5})
    [run] = run_task("work")
    assert (run["ok"], run["attempts"]) == (False, 2)
    assert run["error"].startswith("PluginTimeout")
    assert number(flaky, "tries") == 2


def test_script_errors_are_not_retried(settings, make_plugin):
    settings.PLUGINS_APP = {"BACKGROUND_RETRY_BACKOFF": 0}
    make_plugin(BROKEN, slug="broken")
    [run] = run_task("work")
    assert (run["ok"], run["attempts"]) == (False, 1)
    assert "TypeError: bad" in run["error"]


def test_retry_backoff_is_exponential_and_capped(settings):
    settings.PLUGINS_APP = {"BACKGROUND_RETRY_BACKOFF": 2, "BACKGROUND_RETRY_BACKOFF_MAX": 10}
    assert [retry_countdown(n) for n in range(5)] == [2, 4, 8, 10, 10]


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
    settings.PLUGINS_APP = {"BACKGROUND_MAX_RETRIES": -1, "BACKGROUND_RETRY_BACKOFF": "1", "BACKGROUND_RETRY_BACKOFF_MAX": -2}
    assert ids(checks.check_background()) == ["plugins_app.E026"] * 3
    settings.PLUGINS_APP = {"CELERY_APP": "project.celery.app"}
    monkeypatch.setitem(sys.modules, "celery", None)  # celery not installed
    assert ids(checks.check_background()) == ["plugins_app.W021"]


# -- a real Celery worker ------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_background_actions_run_on_a_real_celery_worker(settings, make_plugin, counter, ada):
    """The issue's integration test: a real `celery worker` process, the real Redis broker,
    the test's own (committed) database."""
    from celery.result import AsyncResult

    require_redis()
    counter.source += "\n// v2"
    counter.full_clean()
    counter.save()
    flaky = make_plugin(FLAKY, slug="flaky", timeout_ms=200, config={"fail_times": 1})
    with celery_worker() as worker:
        celery_settings(settings, worker.queue)
        app = get_celery_app()
        assert app is not None
        with bound("post_save", "noteSaved", sender=Note, mode="background"):
            with transaction.atomic():
                note = Note.objects.create(author=ada, title="from a worker")
                enqueued = enqueue_action("work", {"note": note.pk})
                assert enqueued.state == "pending"
        assert enqueued.state == "sent"
        # One solo worker takes tasks in order: once "work" is done, the binding's task
        # (sent first, on the same commit) is done too.
        runs = worker.wait_for(AsyncResult(enqueued.task_id, app=app), timeout=120)
        log = worker.output()
    by_slug = {run["slug"]: run for run in runs}
    assert set(by_slug) == {"counter", "flaky"}
    assert by_slug["counter"] == {**by_slug["counter"], "version": 2, "ok": True, "attempts": 1, "error": None}
    assert by_slug["flaky"] == {**by_slug["flaky"], "version": flaky.version, "ok": True, "attempts": 2}
    assert number(counter, "runs") == 1
    assert value(counter, "data") == {"note": note.pk}
    assert number(flaky, "tries") == 2
    saved = value(counter, "note")
    assert saved["note"]["id"] == note.pk and saved["meta"]["created"] is True
    assert "plugin 'counter' version 2 ok" in log
    assert "plugin 'flaky' version 1 failed (attempt 1): PluginTimeout" in log


def test_task_is_registered_under_its_public_name():
    from plugins_app import tasks

    assert tasks.run_action.name == TASK_NAME == background.TASK_NAME
