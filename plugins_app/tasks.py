"""Celery tasks of plugins_app (imported by workers, e.g. via ``app.autodiscover_tasks()``).

Only needed with Celery installed; see :mod:`plugins_app.outbox` for what they do and
:func:`beat_schedule` for the periodic drain every worker setup needs.

The tasks take delivery ids, never payloads (the outbox holds the data), store no
result (nobody waits for one), and are acknowledged only once done (``acks_late``) and
redelivered when the worker process dies (``reject_on_worker_lost``). Even a task that is
lost entirely loses nothing: its rows stay pending (or in progress until their lease
expires) and the periodic drain attempts them.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import shared_task

from . import conf, outbox
from .background import TASK_NAME, run_task
from .dispatch import scope
from .host_api.log import log_safe

logger = logging.getLogger("plugins_app.outbox")

PRUNE_EVERY_SECONDS = 3600.0
_last_prune = 0.0


@shared_task(bind=True, name=outbox.DELIVER_TASK, ignore_result=True, acks_late=True, reject_on_worker_lost=True)
def deliver(self: Any, delivery_ids: list[str]) -> None:
    """Attempt these deliveries; a failed attempt is scheduled again after its backoff,
    on the queue this task came from (the periodic drain is the safety net). Each
    delivery runs in a dispatch scope of its own (see :func:`plugins_app.outbox.deliver`)."""
    queue = (self.request.delivery_info or {}).get("routing_key")
    for delivery_id in delivery_ids:
        attempt = outbox.deliver(delivery_id)
        if attempt.retry_in is not None and attempt.state == "pending":
            try:
                deliver.apply_async(
                    args=([delivery_id],), countdown=attempt.retry_in, **({"queue": queue} if queue else {})
                )
            except Exception as exc:  # the periodic drain retries it anyway
                logger.warning("could not schedule a retry of delivery %s: %s", delivery_id, log_safe(exc, 500))


@shared_task(name=outbox.DRAIN_TASK, ignore_result=True)
def drain_outbox() -> int:
    """Attempt every due delivery (and those whose worker died mid-delivery); prune old
    rows about once an hour. Run by Celery beat every DELIVERY_DRAIN_INTERVAL_SECONDS.
    Not one dispatch scope for the drain: each delivery has its own, so a long drain
    sees plugin changes."""
    global _last_prune
    attempted = 0
    while True:
        batch = outbox.drain()
        attempted += len(batch)
        if len(batch) < int(conf.get("DELIVERY_DRAIN_BATCH")):
            break
    if time.monotonic() - _last_prune > PRUNE_EVERY_SECONDS:
        _last_prune = time.monotonic()
        outbox.prune()
    return attempted


def beat_schedule() -> dict[str, dict[str, Any]]:
    """The periodic tasks to merge into your Celery app's ``beat_schedule``::

    app.conf.beat_schedule = {**app.conf.beat_schedule, **plugins_app.tasks.beat_schedule()}
    """
    return {
        "plugins_app-drain-outbox": {
            "task": outbox.DRAIN_TASK,
            "schedule": float(conf.get("DELIVERY_DRAIN_INTERVAL_SECONDS")),
            "options": {"expires": float(conf.get("DELIVERY_DRAIN_INTERVAL_SECONDS"))},
        }
    }


@shared_task(bind=True, name=TASK_NAME, ignore_result=True)
def run_action(
    self: Any, hook: str, args: list[Any], only: list[str] | None = None, previous: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Deprecated: the task of ``enqueue_action`` before the outbox (0.1). Kept so that
    messages already queued during an upgrade still run; nothing sends it any more."""
    with scope():
        return run_task(self, hook, args, only=only, previous=previous)
