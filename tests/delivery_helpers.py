"""Deliveries for the admin and CLI tests, made by the real outbox and real V8."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from django.utils import timezone

from plugins_app import outbox
from plugins_app.models import Delivery, Plugin, StorageItem

# work(): counts each delivery id it sees in storage (so a test can tell a delivery that
# ran twice), or throws while config.fail is set.
WORKER = """
const plugin = {
  work(data, meta) {
    if (config.fail) throw new TypeError("failing on purpose: " + data.n);
    storage.incr(meta.deliveryId);
    return data.n;
  },
  other(data) { return 0; },
};
"""


@pytest.fixture
def one_attempt(settings: Any) -> None:
    """A failed attempt is final, and nothing is bound to signals."""
    settings.PLUGINS_APP = {"DELIVERY_MAX_ATTEMPTS": 1, "DELIVERY_RETRY_BACKOFF": 0, "SIGNAL_BINDINGS": []}


def add(plugin: Plugin, hook: str = "work", n: int = 1, *, mode: str = "after_commit", **fields: Any) -> Delivery:
    """A pending delivery, due now, not attempted."""
    return Delivery.objects.create(
        plugin=plugin, hook=hook, mode=mode, args=[{"n": n}], meta={"source": "test"}, **fields
    )


def failed(plugin: Plugin, n: int = 1, **fields: Any) -> Delivery:
    """A delivery that really failed in V8 (the plugin must have config.fail set and the
    ``one_attempt`` settings)."""
    row = add(plugin, n=n, **fields)
    attempt = outbox.deliver(row.delivery_id)
    assert attempt.state == Delivery.State.FAILED, attempt
    row.refresh_from_db()
    return row


def set_fail(plugin: Plugin, fail: bool) -> None:
    """Make the worker plugin fail or succeed (a new version)."""
    plugin.config = {"fail": fail}
    plugin.full_clean()
    plugin.save()


def runs(plugin: Plugin, row: Delivery) -> int:
    """How many times the worker plugin ran this delivery."""
    item = StorageItem.objects.filter(plugin=plugin, key=str(row.delivery_id)).first()
    return int(item.number) if item is not None else 0


def age(rows: Any, days: float) -> None:
    """Make deliveries look ``days`` old (created and last updated)."""
    then = timezone.now() - datetime.timedelta(days=days)
    Delivery.objects.filter(pk__in=[r.pk for r in rows]).update(created_at=then, updated_at=then)


def reload(row: Delivery) -> Delivery:
    return Delivery.objects.get(pk=row.pk)
