"""The delivery outbox: hook calls bound to a commit, recorded with it, delivered at least once.

A signal binding in after-commit or background mode (and :func:`plugins_app.background.enqueue_action`)
calls :func:`record`, which writes one :class:`~plugins_app.models.Delivery` row per plugin
that implements the hook, **in the caller's transaction**: a rollback delivers nothing,
a commit is never lost. After the commit the rows are attempted at once (inline for
after-commit, on Celery for background); whatever is not delivered then (a failure, a
process killed, a broker down) is attempted again by :func:`drain`, which the Celery beat
task and ``manage.py plugins deliver`` run.

An attempt first *claims* its row with one conditional UPDATE (a compare-and-set that is
atomic on every database): a due pending row, or an in-progress row whose lease expired
(its process died mid-delivery). So several drainers on several hosts never attempt the
same row at once, and a killed process never strands one. Guarantee: **at least once**;
plugins receive ``meta.deliveryId`` (the same for every attempt) and ``meta.attempt`` to
deduplicate.
"""

from __future__ import annotations

import datetime
import logging
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from django.db import DatabaseError, transaction
from django.db.models import F, Q
from django.utils import timezone

from . import conf
from .exceptions import HookNotFound, PluginDisabled, PluginError, PluginNotFound, PluginScriptError
from .host_api.log import log_safe, plugin_extra

__all__ = ["Attempt", "deliver", "drain", "due", "prune", "record", "retry_delay", "send"]

logger = logging.getLogger("plugins_app.outbox")

ERROR_CHARS = 4000
STACK_CHARS = 8000


def retry_delay(attempts: int) -> float:
    """Seconds to wait after ``attempts`` failed attempts: DELIVERY_RETRY_BACKOFF doubled per
    attempt, at most DELIVERY_RETRY_BACKOFF_MAX."""
    base = float(conf.get("DELIVERY_RETRY_BACKOFF"))
    delay: float = min(float(conf.get("DELIVERY_RETRY_BACKOFF_MAX")), base * (2 ** max(0, attempts - 1)))
    return delay


# -- recording -------------------------------------------------------------------------


def record(hook: str, args: Sequence[Any], meta: dict[str, Any], *, mode: str, using: str | None = None) -> list[str]:
    """Write one pending delivery of ``hook(*args, meta)`` per enabled plugin that defines
    ``hook`` (paused ones too: their deliveries wait), in the current transaction on
    ``using``; arrange for them to be attempted once it commits. Returns the delivery ids.

    ``args`` and ``meta`` must be JSON data (they are stored as JSON).
    """
    from .models import Delivery, Plugin

    plugin_ids = list(
        Plugin.objects.using(using)
        .filter(hook_index__name=hook, enabled=True)
        .order_by("priority", "slug")
        .values_list("pk", flat=True)
    )
    if not plugin_ids:
        return []
    rows = Delivery.objects.using(using).bulk_create(
        [Delivery(plugin_id=pk, hook=hook, mode=mode, args=list(args), meta=dict(meta)) for pk in plugin_ids]
    )
    ids = [row.delivery_id for row in rows]
    if mode == Delivery.Mode.AFTER_COMMIT:

        def deliver_after_commit() -> None:
            for delivery_id in ids:
                _attempt_safely(delivery_id)

        transaction.on_commit(deliver_after_commit, using=using, robust=True)
    else:

        def send_after_commit() -> None:
            send(ids)

        transaction.on_commit(send_after_commit, using=using, robust=True)
    return [str(i) for i in ids]


def send(delivery_ids: Iterable[Any]) -> None:
    """Hand deliveries to Celery (or attempt them here, without Celery). Never raises: a
    delivery that cannot be sent stays pending for the next drain."""
    from .background import get_celery_app

    ids = [str(i) for i in delivery_ids]
    try:
        app = get_celery_app()
    except Exception:
        logger.exception(
            "the Celery app for background deliveries is misconfigured; %d deliveries wait for a drain", len(ids)
        )
        return
    if app is None:
        for delivery_id in ids:
            _attempt_safely(delivery_id)
        return
    try:
        app.send_task(DELIVER_TASK, args=[ids], ignore_result=True)
    except Exception as exc:
        logger.warning(
            "could not send %d background deliveries to Celery (%s); they wait for the next drain",
            len(ids),
            log_safe(exc, 500),
        )


DELIVER_TASK = "plugins_app.deliver"
DRAIN_TASK = "plugins_app.drain_outbox"


# -- attempting ----------------------------------------------------------------------------


@dataclass
class Attempt:
    """The outcome of one call of :func:`deliver`."""

    delivery_id: str
    state: str  # the row's state afterwards; "skipped": not due or claimed by someone else;
    # "superseded": this attempt outlived its lease and another one took the row over
    attempt: int = 0
    error: str = ""
    retry_in: float | None = None


def _claimable(now: datetime.datetime) -> Q:
    from .models import Delivery

    return Q(state=Delivery.State.PENDING, next_attempt_at__lte=now) | Q(
        state=Delivery.State.IN_PROGRESS, lease_until__lt=now
    )


def deliver(delivery_id: Any) -> Attempt:
    """Attempt one delivery now if it is due (or its lease expired); record the outcome.

    Raises only database errors (the row is then left for a later drain: pending, or
    in progress until its lease expires). Each delivery runs in a dispatch scope of its
    own (:func:`plugins_app.hooks.scope`; or in the caller's, e.g. its request's), so a
    long drain sees plugin changes from one delivery to the next.
    """
    from .dispatch import scope

    with scope():
        return _deliver(delivery_id)


def _deliver(delivery_id: Any) -> Attempt:
    from .models import Delivery

    now = timezone.now()
    lease = datetime.timedelta(seconds=float(conf.get("DELIVERY_LEASE_SECONDS")))
    token = uuid.uuid4()
    claimed = Delivery.objects.filter(_claimable(now), delivery_id=delivery_id).update(
        state=Delivery.State.IN_PROGRESS, lease_until=now + lease, attempts=F("attempts") + 1, claim=token
    )
    if not claimed:
        return Attempt(str(delivery_id), "skipped")
    row = Delivery.objects.select_related("plugin").get(delivery_id=delivery_id)
    plugin = row.plugin
    if not plugin.enabled or plugin.paused_at is not None:
        return _wait(row, "the plugin is disabled" if not plugin.enabled else "the plugin is paused")
    meta = {**row.meta, "deliveryId": str(row.delivery_id), "attempt": row.attempts}
    from . import calllog, hooks

    try:
        with calllog.caller("background" if row.mode == Delivery.Mode.BACKGROUND else "signal"):
            result = hooks.run(plugin.slug, row.hook, *row.args, meta)
    except PluginDisabled as exc:  # disabled or paused between the check and the call
        return _wait(row, str(exc))
    except (HookNotFound, PluginNotFound) as exc:
        # The plugin no longer defines the hook (or is gone): no retry can succeed.
        return _finish(row, Delivery.State.FAILED, exc, final=True)
    except PluginError as exc:
        return _finish(row, Delivery.State.FAILED, exc)
    except DatabaseError:
        raise  # the row stays in progress; its lease expires and a drain retries it
    except Exception as exc:  # a host bug: recorded like a failure, never lost
        logger.exception("delivery %s of %r to %r failed on the host", row.delivery_id, row.hook, plugin.slug)
        return _finish(row, Delivery.State.FAILED, exc)
    if not _settle(
        row,
        state=Delivery.State.DELIVERED,
        delivered_at=timezone.now(),
        plugin_version=result.version,
        last_error="",
        last_error_stack="",
    ):
        return _superseded(row)
    logger.info(
        "delivered %r to %r (delivery %s, attempt %d, version %d, %.1f ms)",
        row.hook,
        plugin.slug,
        row.delivery_id,
        row.attempts,
        result.version,
        result.duration_ms,
        extra=plugin_extra(plugin.slug),
    )
    return Attempt(str(row.delivery_id), Delivery.State.DELIVERED, row.attempts)


def _wait(row: Any, reason: str) -> Attempt:
    """Give the claim back without using up an attempt; look again after DELIVERY_WAIT_SECONDS."""
    from .models import Delivery

    delay = float(conf.get("DELIVERY_WAIT_SECONDS"))
    if not _settle(
        row,
        state=Delivery.State.PENDING,
        attempts=F("attempts") - 1,
        next_attempt_at=timezone.now() + datetime.timedelta(seconds=delay),
        last_error=log_safe(reason, ERROR_CHARS),
    ):
        return _superseded(row)
    return Attempt(str(row.delivery_id), Delivery.State.PENDING, row.attempts - 1, reason, delay)


def _finish(row: Any, failed_state: str, exc: BaseException, *, final: bool = False) -> Attempt:
    from .models import Delivery

    error = log_safe(f"{type(exc).__name__}: {exc}", ERROR_CHARS)
    # Stored as the plugin's stack text (already stripped of control characters by the
    # sandbox); escaped only where it is logged.
    stack = (exc.stack or "")[:STACK_CHARS] if isinstance(exc, PluginScriptError) else ""
    version = row.plugin.version  # the version the attempt ran (or would have run)
    if final or row.attempts >= int(conf.get("DELIVERY_MAX_ATTEMPTS")):
        if not _settle(row, state=failed_state, last_error=error, last_error_stack=stack, plugin_version=version):
            return _superseded(row)
        logger.error(
            "delivery %s of %r to %r failed after %d attempt(s): %s",
            row.delivery_id,
            row.hook,
            row.plugin.slug,
            row.attempts,
            error,
            extra=plugin_extra(row.plugin.slug),
        )
        return Attempt(str(row.delivery_id), failed_state, row.attempts, error)
    delay = retry_delay(row.attempts)
    if not _settle(
        row,
        state=Delivery.State.PENDING,
        last_error=error,
        last_error_stack=stack,
        plugin_version=version,
        next_attempt_at=timezone.now() + datetime.timedelta(seconds=delay),
    ):
        return _superseded(row)
    logger.warning(
        "delivery %s of %r to %r failed (attempt %d), retrying in %.1f s: %s",
        row.delivery_id,
        row.hook,
        row.plugin.slug,
        row.attempts,
        delay,
        error,
        extra=plugin_extra(row.plugin.slug),
    )
    return Attempt(str(row.delivery_id), Delivery.State.PENDING, row.attempts, error, delay)


def _settle(row: Any, **changes: Any) -> bool:
    """Record an attempt's outcome if its claim still holds (the row is still in progress
    under this attempt's token); False when another attempt took the row over after this
    one's lease expired, or an operator discarded it meanwhile."""
    from .models import Delivery

    return bool(
        Delivery.objects.filter(pk=row.pk, claim=row.claim, state=Delivery.State.IN_PROGRESS).update(
            lease_until=None, claim=None, **changes
        )
    )


def _superseded(row: Any) -> Attempt:
    logger.warning(
        "delivery %s of %r to %r: attempt %d outlived its lease (DELIVERY_LEASE_SECONDS) and another attempt or an "
        "operator took the row over; its outcome is not recorded",
        row.delivery_id,
        row.hook,
        row.plugin.slug,
        row.attempts,
        extra=plugin_extra(row.plugin.slug),
    )
    return Attempt(str(row.delivery_id), "superseded", row.attempts)


def _attempt_safely(delivery_id: Any) -> None:
    """An after-commit attempt: never raises (a database error leaves the row for a drain)."""
    try:
        deliver(delivery_id)
    except Exception as exc:
        logger.warning(
            "delivery %s could not be attempted after the commit (%s); it waits for the next drain",
            delivery_id,
            log_safe(exc, 500),
        )


# -- draining and pruning ------------------------------------------------------------------


def due(limit: int | None = None) -> list[Any]:
    """Delivery ids that a drain would attempt now, oldest due first."""
    from .models import Delivery

    rows = Delivery.objects.filter(_claimable(timezone.now())).order_by("next_attempt_at", "id")
    return list(rows.values_list("delivery_id", flat=True)[: limit or int(conf.get("DELIVERY_DRAIN_BATCH"))])


def drain(limit: int | None = None) -> list[Attempt]:
    """Attempt up to ``limit`` (DELIVERY_DRAIN_BATCH) due deliveries; return the outcomes.

    Safe to run in several processes on several hosts at once: each row is claimed
    atomically before it is attempted.
    """
    outcomes = []
    for delivery_id in due(limit):
        outcomes.append(deliver(delivery_id))
    return [o for o in outcomes if o.state not in {"skipped", "superseded"}]


def retry_failed(delivery_ids: Iterable[Any] | None = None) -> int:
    """Make failed (and discarded) deliveries due again with a fresh set of attempts."""
    from .models import Delivery

    rows = Delivery.objects.filter(state__in=[Delivery.State.FAILED, Delivery.State.DISCARDED])
    if delivery_ids is not None:
        rows = rows.filter(delivery_id__in=list(delivery_ids))
    return rows.update(
        state=Delivery.State.PENDING, attempts=0, next_attempt_at=timezone.now(), lease_until=None, claim=None
    )


def prune(now: datetime.datetime | None = None) -> dict[str, int]:
    """Delete delivered rows older than DELIVERY_RETENTION_DAYS and failed or discarded rows
    older than DELIVERY_FAILED_RETENTION_DAYS; return how many of each."""
    from .models import Delivery

    now = now or timezone.now()
    delivered_before = now - datetime.timedelta(days=float(conf.get("DELIVERY_RETENTION_DAYS")))
    failed_before = now - datetime.timedelta(days=float(conf.get("DELIVERY_FAILED_RETENTION_DAYS")))
    delivered, _ = Delivery.objects.filter(state=Delivery.State.DELIVERED, updated_at__lt=delivered_before).delete()
    failed, _ = Delivery.objects.filter(
        state__in=[Delivery.State.FAILED, Delivery.State.DISCARDED], updated_at__lt=failed_before
    ).delete()
    return {"delivered": delivered, "failed": failed}
