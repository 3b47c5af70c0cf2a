"""What operators do with the delivery outbox, shared by the admin and ``manage.py plugins``:
retry now, discard, make every failed delivery due again, tally drain outcomes, and run
the drain loop that stops cleanly on a signal.

The outbox itself (recording, claiming, attempting, retrying, pruning) is
:mod:`plugins_app.outbox`; nothing here attempts a delivery any other way than through
:func:`plugins_app.outbox.deliver`, so every attempt is claimed atomically.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.db import DatabaseError
from django.utils import timezone

from . import outbox
from .models import Delivery

__all__ = [
    "DrainLoop",
    "RetryReport",
    "Tally",
    "batches",
    "discard",
    "drain_pass",
    "readable_stack",
    "retry_all_failed",
    "retry_now",
    "tally",
]

# Ids per UPDATE ... WHERE delivery_id IN (...): well under every database's parameter limit.
BATCH = 500
# "Retry now" attempts at most this many deliveries in the request that asked for it; the
# rest are due at once and go with the next drain (each attempt may take a plugin's whole
# time limit).
RETRY_NOW_INLINE = 20

RETRYABLE = (Delivery.State.FAILED, Delivery.State.DISCARDED)
DISCARDABLE = (Delivery.State.PENDING, Delivery.State.FAILED)


def batches(ids: Iterable[Any]) -> Iterator[list[Any]]:
    """``ids`` in lists of at most BATCH, for ``... IN (...)`` queries."""
    batch: list[Any] = []
    for value in ids:
        batch.append(value)
        if len(batch) == BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


@dataclass
class Tally:
    """How the attempts of a drain pass (or of *Retry now*) ended."""

    delivered: int = 0
    retrying: int = 0  # failed this time, pending for another attempt (or waiting for its plugin)
    failed: int = 0  # failed for good (no attempts left, or the hook is gone)
    skipped: int = 0  # claimed by another drainer first, or no longer due
    errors: int = 0  # could not be attempted (database error); left for a later drain

    @property
    def attempted(self) -> int:
        return self.delivered + self.retrying + self.failed

    def text(self) -> str:
        """``"delivered 2, retrying 1, failed 0"``, plus skipped/errors when there were any."""
        parts = [f"delivered {self.delivered}", f"retrying {self.retrying}", f"failed {self.failed}"]
        if self.skipped:
            parts.append(f"skipped {self.skipped} (taken by another drainer or no longer due)")
        if self.errors:
            parts.append(f"{self.errors} not attempted (database error; left for the next drain)")
        return ", ".join(parts)


def tally(attempts: Iterable[outbox.Attempt]) -> Tally:
    """Count outcomes of :func:`plugins_app.outbox.deliver` by the state each row ended in."""
    states = Counter(a.state for a in attempts)
    return Tally(
        delivered=states[Delivery.State.DELIVERED],
        retrying=states[Delivery.State.PENDING],
        failed=states[Delivery.State.FAILED],
        skipped=states["skipped"],
    )


@dataclass
class RetryReport:
    """What *Retry now* did with the selected deliveries."""

    reset: int = 0  # failed or discarded, made pending with a fresh set of attempts
    made_due: int = 0  # pending, now due at once
    not_retried: dict[str, int] = field(default_factory=dict)  # state -> count (delivered, in progress)
    outcome: Tally = field(default_factory=Tally)
    left_for_drain: int = 0  # due now but not attempted in this request (over RETRY_NOW_INLINE)


def retry_now(delivery_ids: Sequence[Any], *, attempt_inline: int = RETRY_NOW_INLINE) -> RetryReport:
    """Make the given deliveries due now and attempt up to ``attempt_inline`` of them here.

    Failed and discarded ones become pending with their attempts reset
    (:func:`plugins_app.outbox.retry_failed`); pending ones become due at once; delivered
    and in-progress ones are left alone. Each attempt goes through
    :func:`plugins_app.outbox.deliver`, which claims the row first, so a drainer running at
    the same time never attempts the same row too.
    """
    report = RetryReport()
    states: dict[Any, str] = {}
    for batch in batches(delivery_ids):
        states.update(Delivery.objects.filter(delivery_id__in=batch).values_list("delivery_id", "state"))
    retryable = [i for i, s in states.items() if s in RETRYABLE]
    pending = [i for i, s in states.items() if s == Delivery.State.PENDING]
    report.not_retried = dict(Counter(s for s in states.values() if s not in RETRYABLE and s != Delivery.State.PENDING))
    for batch in batches(retryable):
        report.reset += outbox.retry_failed(batch)
    now = timezone.now()
    for batch in batches(pending):
        report.made_due += Delivery.objects.filter(delivery_id__in=batch, state=Delivery.State.PENDING).update(
            next_attempt_at=now
        )
    due = retryable + pending
    attempts, errors = [], 0
    for delivery_id in due[:attempt_inline]:
        try:
            attempts.append(outbox.deliver(delivery_id))
        except DatabaseError:
            errors += 1
    report.outcome = tally(attempts)
    report.outcome.errors = errors
    report.left_for_drain = max(0, len(due) - attempt_inline)
    return report


def discard(delivery_ids: Sequence[Any]) -> int:
    """Mark the given pending or failed deliveries discarded (never attempted again, kept
    until DELIVERY_FAILED_RETENTION_DAYS); return how many. Delivered and in-progress
    rows are left alone: the state is part of the UPDATE's condition, so a row a drainer
    claims meanwhile is not discarded under it."""
    changed = 0
    for batch in batches(delivery_ids):
        changed += Delivery.objects.filter(delivery_id__in=batch, state__in=DISCARDABLE).update(
            state=Delivery.State.DISCARDED, lease_until=None
        )
    return changed


def retry_all_failed() -> int:
    """Make every failed delivery due again with a fresh set of attempts (discarded ones
    stay discarded: an operator chose that); return how many."""
    ids = list(Delivery.objects.filter(state=Delivery.State.FAILED).values_list("delivery_id", flat=True))
    return sum(outbox.retry_failed(batch) for batch in batches(ids))


def readable_stack(stack: str) -> str:
    """A stored JS stack for display as data (HTML-escaped, JSON), not for a log line.
    Rows written before 0.2's outbox fix stored it escaped on one line (``\\n`` written
    out); those get their line breaks back."""
    return stack if "\n" in stack else stack.replace("\\n", "\n")


def drain_pass(limit: int | None = None, *, should_stop: Callable[[], bool] = lambda: False) -> Tally:
    """One drain pass: attempt up to ``limit`` (DELIVERY_DRAIN_BATCH) due deliveries, one
    at a time, stopping early (after the current one) once ``should_stop()`` is true."""
    attempts = []
    for delivery_id in outbox.due(limit):
        if should_stop():
            break
        attempts.append(outbox.deliver(delivery_id))
    return tally(attempts)


class DrainLoop:
    """Drain every ``interval`` seconds until :meth:`stop` is called.

    :meth:`stop` only sets a flag, so it is safe to call from a signal handler: the
    delivery being attempted finishes and is recorded, then :meth:`run` returns. A
    database error in a pass (a restart, a dropped connection) is reported through
    ``on_error`` and the loop goes on after the interval.
    """

    # Longest sleep between two looks at the stop flag.
    TICK = 0.2

    def __init__(self, interval: float, limit: int | None = None) -> None:
        self.interval = interval
        self.limit = limit
        self.stopping = False

    def stop(self) -> None:
        self.stopping = True

    def run(
        self,
        on_pass: Callable[[Tally], None],
        on_error: Callable[[DatabaseError], None],
    ) -> None:
        from django.db import close_old_connections, connections

        while not self.stopping:
            close_old_connections()
            try:
                on_pass(drain_pass(self.limit, should_stop=lambda: self.stopping))
            except DatabaseError as exc:
                on_error(exc)
                connections.close_all()  # reconnect on the next pass
            self._sleep()

    def _sleep(self) -> None:
        # Short slices instead of an Event: Event.set() from a signal handler can deadlock
        # on the Event's own lock if the signal lands while the main thread holds it.
        deadline = time.monotonic() + self.interval
        while not self.stopping:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(min(self.TICK, remaining))
