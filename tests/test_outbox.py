"""The delivery outbox: recorded with the change, claimed with a lease, retried, pruned.

Real V8 throughout; the fault tests with killed processes are in test_faults.py.
"""

from __future__ import annotations

import datetime

import pytest
from django.db import transaction
from django.utils import timezone

from plugins_app import outbox
from plugins_app.models import Delivery, Plugin, StorageItem

RECORDER = """
const plugin = {
  work(data, meta) {
    const n = storage.incr("calls");
    storage.set("call" + n, { data, meta });
    if (n <= config.fail_times) throw new TypeError("failing on purpose (" + n + ")");
    return n;
  },
};
"""


@pytest.fixture
def fast(settings):
    settings.PLUGINS_APP = {"DELIVERY_RETRY_BACKOFF": 0, "DELIVERY_MAX_ATTEMPTS": 3, "SIGNAL_BINDINGS": []}


def recorder(make_plugin, fail_times: int = 0, slug: str = "rec") -> Plugin:
    return make_plugin(RECORDER, slug=slug, config={"fail_times": fail_times})


def calls(plugin: Plugin) -> list[dict]:
    items = StorageItem.objects.filter(plugin=plugin, key__startswith="call").order_by("key")
    return [item.value for item in items if item.key != "calls"]


def record(hook: str = "work", data=None, mode: str = "after_commit") -> list[str]:
    return outbox.record(hook, [data if data is not None else {"n": 1}], {"source": "test"}, mode=mode)


def row(delivery_id) -> Delivery:
    return Delivery.objects.get(delivery_id=delivery_id)


def test_after_commit_delivery_runs_once_committed(fast, make_plugin, django_capture_on_commit_callbacks):
    plugin = recorder(make_plugin)
    with django_capture_on_commit_callbacks(execute=True):
        [delivery_id] = record()
        assert row(delivery_id).state == "pending" and calls(plugin) == []
    [call] = calls(plugin)
    assert call["data"] == {"n": 1}
    assert call["meta"] == {"source": "test", "deliveryId": delivery_id, "attempt": 1}
    delivered = row(delivery_id)
    assert (delivered.state, delivered.attempts, delivered.plugin_version) == ("delivered", 1, plugin.version)
    assert delivered.delivered_at is not None and delivered.lease_until is None


def test_rollback_records_and_delivers_nothing(fast, make_plugin, django_capture_on_commit_callbacks):
    plugin = recorder(make_plugin)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(ZeroDivisionError), transaction.atomic():
            record()
            raise ZeroDivisionError  # rolls the transaction back
    assert callbacks == [] and not Delivery.objects.exists() and calls(plugin) == []


def test_retries_keep_the_delivery_id_and_count_attempts(fast, make_plugin, django_capture_on_commit_callbacks):
    plugin = recorder(make_plugin, fail_times=1)
    with django_capture_on_commit_callbacks(execute=True):
        [delivery_id] = record()
    failed_once = row(delivery_id)
    assert (failed_once.state, failed_once.attempts) == ("pending", 1)
    assert "failing on purpose (1)" in failed_once.last_error and "rec.js" in failed_once.last_error_stack
    [attempt] = outbox.drain()
    assert (attempt.state, attempt.attempt) == ("delivered", 2)
    first, second = calls(plugin)
    assert first["meta"]["deliveryId"] == second["meta"]["deliveryId"] == delivery_id
    assert (first["meta"]["attempt"], second["meta"]["attempt"]) == (1, 2)
    assert row(delivery_id).last_error == ""


def test_gives_up_after_max_attempts(fast, make_plugin, django_capture_on_commit_callbacks):
    plugin = recorder(make_plugin, fail_times=10)
    with django_capture_on_commit_callbacks(execute=True):
        [delivery_id] = record()
    outbox.drain()
    outbox.drain()
    assert outbox.drain() == []  # nothing due any more
    failed = row(delivery_id)
    assert (failed.state, failed.attempts, failed.plugin_version) == ("failed", 3, plugin.version)
    assert "TypeError: failing on purpose (3)" in failed.last_error
    assert len(calls(plugin)) == 3
    assert outbox.retry_failed([delivery_id]) == 1
    assert (row(delivery_id).state, row(delivery_id).attempts) == ("pending", 0)


def test_backoff_doubles_and_is_capped(settings):
    settings.PLUGINS_APP = {"DELIVERY_RETRY_BACKOFF": 2, "DELIVERY_RETRY_BACKOFF_MAX": 10}
    assert [outbox.retry_delay(n) for n in range(1, 6)] == [2, 4, 8, 10, 10]
    settings.PLUGINS_APP = {"BACKGROUND_RETRY_BACKOFF": 3, "BACKGROUND_MAX_RETRIES": 1}  # deprecated names
    assert outbox.retry_delay(1) == 3
    from plugins_app import conf

    assert conf.get("DELIVERY_MAX_ATTEMPTS") == 2


def test_failed_attempt_waits_its_backoff(settings, make_plugin, django_capture_on_commit_callbacks):
    settings.PLUGINS_APP = {"DELIVERY_RETRY_BACKOFF": 60, "SIGNAL_BINDINGS": []}
    recorder(make_plugin, fail_times=1)
    with django_capture_on_commit_callbacks(execute=True):
        [delivery_id] = record()
    waiting = row(delivery_id)
    assert waiting.next_attempt_at > timezone.now() + datetime.timedelta(seconds=50)
    assert outbox.drain() == [] and outbox.deliver(delivery_id).state == "skipped"


@pytest.mark.parametrize("change", [{"enabled": False}, {"paused_at": timezone.now(), "paused_reason": "test"}])
def test_disabled_or_paused_plugin_waits_without_using_attempts(fast, make_plugin, change):
    plugin = recorder(make_plugin)
    [delivery_id] = record()  # autocommit: attempted at once; make the plugin unavailable first
    Delivery.objects.filter(delivery_id=delivery_id).update(state="pending", attempts=0)
    Plugin.objects.filter(pk=plugin.pk).update(**change)
    attempt = outbox.deliver(delivery_id)
    waiting = row(delivery_id)
    assert (attempt.state, waiting.state, waiting.attempts) == ("pending", "pending", 0)
    assert waiting.next_attempt_at > timezone.now() and (
        "disabled" in waiting.last_error or "paused" in waiting.last_error
    )
    Plugin.objects.filter(pk=plugin.pk).update(enabled=True, paused_at=None)
    Delivery.objects.filter(delivery_id=delivery_id).update(next_attempt_at=timezone.now())
    assert outbox.deliver(delivery_id).state == "delivered"
    assert row(delivery_id).attempts == 1


def test_only_enabled_plugins_get_deliveries(fast, make_plugin):
    recorder(make_plugin, slug="on")
    off = recorder(make_plugin, slug="off")
    Plugin.objects.filter(pk=off.pk).update(enabled=False)
    with transaction.atomic():
        ids = record()
    assert [d.plugin.slug for d in Delivery.objects.filter(delivery_id__in=ids)] == ["on"]


def test_an_expired_lease_is_taken_over_and_a_live_one_is_not(fast, make_plugin):
    plugin = recorder(make_plugin)
    with transaction.atomic():
        [delivery_id] = record()
        # As if a process had claimed it and been killed mid-delivery.
        Delivery.objects.filter(delivery_id=delivery_id).update(
            state="in_progress", attempts=1, lease_until=timezone.now() + datetime.timedelta(minutes=5)
        )
    assert outbox.deliver(delivery_id).state == "skipped"  # leased: someone is on it
    assert outbox.drain() == [] and calls(plugin) == []
    Delivery.objects.filter(delivery_id=delivery_id).update(lease_until=timezone.now() - datetime.timedelta(seconds=1))
    [attempt] = outbox.drain()
    assert (attempt.state, attempt.attempt) == ("delivered", 2)
    assert calls(plugin)[0]["meta"]["attempt"] == 2


def test_a_hook_the_plugin_no_longer_defines_fails_at_once(fast, make_plugin):
    plugin = recorder(make_plugin)
    with transaction.atomic():
        [delivery_id] = record()
        plugin.source = "const plugin = { other() {} };"
        plugin.full_clean()
        plugin.save()
    assert outbox.deliver(delivery_id).state == "failed"
    failed = row(delivery_id)
    assert (failed.state, failed.attempts) == ("failed", 1)
    assert "HookNotFound" in failed.last_error


def test_a_failing_first_callback_does_not_drop_the_delivery(fast, make_plugin, django_capture_on_commit_callbacks):
    """A robust callback that fails before ours does not stop ours. One that drops the
    transaction's later callbacks (a non-robust one that raises; on Django 5.2 also a
    robust ``partial``, whose failure logging itself raises for want of a
    ``__qualname__``) leaves the delivery in the table for the next drain."""
    plugin = recorder(make_plugin)

    def boom() -> None:
        raise RuntimeError("someone else's callback")

    with django_capture_on_commit_callbacks(execute=True):
        transaction.on_commit(boom, robust=True)
        [first] = record()
    assert row(first).state == "delivered"

    with pytest.raises(RuntimeError, match="someone else's callback"):
        with django_capture_on_commit_callbacks(execute=True):
            transaction.on_commit(boom)
            [second] = record()
    assert row(second).state == "pending"  # Django dropped our callback...
    [attempt] = outbox.drain()  # ...and the drain delivers it
    assert attempt.delivery_id == second and row(second).state == "delivered"
    assert len(calls(plugin)) == 2


def test_prune_keeps_recent_rows_and_unfinished_ones(fast, make_plugin):
    recorder(make_plugin)
    now = timezone.now()
    with transaction.atomic():
        ids = record() + record() + record() + record()
    old, recent, old_failed, old_pending = ids
    Delivery.objects.filter(delivery_id__in=[old, recent]).update(state="delivered")
    Delivery.objects.filter(delivery_id=old_failed).update(state="failed")
    Delivery.objects.filter(delivery_id=old_pending).update(state="pending")
    Delivery.objects.filter(delivery_id__in=[old, old_failed, old_pending]).update(
        updated_at=now - datetime.timedelta(days=8)
    )
    assert outbox.prune() == {"delivered": 1, "failed": 0}
    assert outbox.prune(now + datetime.timedelta(days=30)) == {"delivered": 1, "failed": 1}
    assert list(Delivery.objects.values_list("delivery_id", flat=True)) == [row(old_pending).delivery_id]
