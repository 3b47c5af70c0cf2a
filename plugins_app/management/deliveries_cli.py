"""The delivery subcommands of ``manage.py plugins``: ``deliveries`` (list the outbox),
``deliver`` (one drain pass, or ``--loop`` until a signal) and ``prune`` (retention)."""

from __future__ import annotations

import json
import signal
from types import FrameType
from typing import Any

from django.core.management.base import CommandError
from django.db import DatabaseError

from plugins_app import conf, deliveries, outbox
from plugins_app.host_api.log import log_safe
from plugins_app.management.argtypes import positive_int, seconds
from plugins_app.models import Delivery, Plugin

# The last error's share of a line of `plugins deliveries` (the JSON output has it whole).
ERROR_COLUMN_CHARS = 120
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def add_delivery_arguments(sub: Any) -> None:
    """Add ``deliveries``, ``deliver`` and ``prune`` to the ``plugins`` subparsers."""
    deliveries_help = (
        "List deliveries of after-commit and background hooks (the outbox), newest first: id, "
        "created, plugin, hook, state, attempts, next attempt (of pending ones) and the last "
        "error on one line."
    )
    listing = sub.add_parser("deliveries", help=deliveries_help, description=deliveries_help)
    listing.add_argument("--state", choices=Delivery.State.values, help="Only deliveries in this state.")
    listing.add_argument("--plugin", metavar="SLUG", help="Only deliveries to this plugin.")
    listing.add_argument("--hook", metavar="HOOK", help="Only deliveries of this hook.")
    listing.add_argument(
        "--limit", type=positive_int, default=50, metavar="N", help="Show at most N deliveries (default 50)."
    )
    listing.add_argument(
        "--json",
        action="store_true",
        help="Print a JSON list of objects (with the whole last error and JS stack) instead of a table.",
    )

    deliver_help = (
        "Attempt the deliveries that are due (pending and due, or in progress with an expired lease) "
        "and print how many were delivered, will be retried, or failed for good. Each delivery is "
        "claimed atomically, so several `deliver` processes and Celery workers may drain at once, "
        "on any number of hosts."
    )
    deliver = sub.add_parser("deliver", help=deliver_help, description=deliver_help)
    deliver.add_argument(
        "--loop",
        action="store_true",
        help="Keep draining every --interval seconds until SIGTERM or SIGINT (Ctrl-C): the delivery "
        "being attempted then finishes and the command exits 0. A second signal stops at once.",
    )
    deliver.add_argument(
        "--interval",
        type=seconds,
        metavar="SECONDS",
        help="Seconds between passes with --loop (default: the DELIVERY_DRAIN_INTERVAL_SECONDS setting).",
    )
    deliver.add_argument(
        "--retry-failed",
        action="store_true",
        dest="retry_failed",
        help="First make every failed delivery due again with a fresh set of attempts (discarded ones stay discarded).",
    )
    deliver.add_argument(
        "--limit",
        type=positive_int,
        metavar="N",
        help="Attempt at most N deliveries per pass (default: the DELIVERY_DRAIN_BATCH setting).",
    )

    prune_help = (
        "Delete delivered deliveries older than DELIVERY_RETENTION_DAYS and failed or discarded "
        "ones older than DELIVERY_FAILED_RETENTION_DAYS; print how many."
    )
    sub.add_parser("prune", help=prune_help, description=prune_help)


def _time(value: Any) -> str | None:
    return value.isoformat(timespec="seconds") if value is not None else None


def delivery_json(row: Delivery) -> dict[str, Any]:
    """One delivery as ``plugins deliveries --json`` prints it."""
    return {
        "id": str(row.delivery_id),
        "created": _time(row.created_at),
        "plugin": row.plugin.slug,
        "hook": row.hook,
        "mode": row.mode,
        "state": row.state,
        "attempts": row.attempts,
        "next_attempt": _time(row.next_attempt_at) if row.state == Delivery.State.PENDING else None,
        "delivered_at": _time(row.delivered_at),
        "plugin_version": row.plugin_version,
        "last_error": row.last_error,
        "last_error_stack": deliveries.readable_stack(row.last_error_stack),
    }


class DeliveryCommands:
    """``do_deliveries``, ``do_deliver`` and ``do_prune`` of the ``plugins`` command."""

    stdout: Any
    stderr: Any

    def do_deliveries(self, options: dict[str, Any]) -> None:
        rows = Delivery.objects.select_related("plugin").order_by("-created_at", "-id")
        if options["state"]:
            rows = rows.filter(state=options["state"])
        if options["plugin"]:
            if not Plugin.objects.filter(slug=options["plugin"]).exists():
                raise CommandError(f"no plugin {options['plugin']!r} is installed")
            rows = rows.filter(plugin__slug=options["plugin"])
        if options["hook"]:
            rows = rows.filter(hook=options["hook"])
        limit = options["limit"]
        shown = list(rows[:limit])
        if options["json"]:
            self.stdout.write(json.dumps([delivery_json(r) for r in shown], ensure_ascii=False, indent=2))
        elif not shown:
            self.stdout.write("No deliveries.")
        else:
            self._write_table([delivery_json(r) for r in shown])
        if len(shown) == limit:
            total = rows.count()
            if total > limit:
                # stderr: stdout stays exactly the list (or the JSON), for scripts.
                self.stderr.write(f"Showing the newest {limit} of {total} deliveries; use --limit to see more.")

    def _write_table(self, rows: list[dict[str, Any]]) -> None:
        columns = ("id", "created", "plugin", "hook", "state", "attempts", "next_attempt", "last_error")
        headers = ("ID", "CREATED", "PLUGIN", "HOOK", "STATE", "ATTEMPTS", "NEXT ATTEMPT", "LAST ERROR")
        cells = [
            [
                log_safe(r[c], ERROR_COLUMN_CHARS) if c == "last_error" else log_safe("-" if r[c] is None else r[c])
                for c in columns
            ]
            for r in rows
        ]
        widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(headers[:-1])]

        def line(values: list[str] | tuple[str, ...]) -> str:
            padded = [v.ljust(w) for v, w in zip(values[:-1], widths, strict=True)]
            return "  ".join([*padded, values[-1]]).rstrip()

        self.stdout.write(line(headers))
        for row in cells:
            self.stdout.write(line(row))

    def do_deliver(self, options: dict[str, Any]) -> None:
        if options["retry_failed"]:
            count = deliveries.retry_all_failed()
            self.stdout.write(f"{count} failed deliver{'y is' if count == 1 else 'ies are'} due again.")
        if options["loop"]:
            interval = options["interval"] or float(conf.get("DELIVERY_DRAIN_INTERVAL_SECONDS"))
            self._deliver_loop(interval, options["limit"])
            return
        tally = deliveries.drain_pass(options["limit"])
        self.stdout.write(tally.text().capitalize() + ".")
        if outbox.due(1):
            self.stdout.write("More deliveries are due: run again, or use --loop.")

    def _deliver_loop(self, interval: float, limit: int | None) -> None:
        loop = deliveries.DrainLoop(interval, limit)
        total = deliveries.Tally()

        def on_signal(signum: int, frame: FrameType | None) -> None:
            loop.stop()
            for sig in STOP_SIGNALS:  # a second signal ends the process at once
                signal.signal(sig, signal.SIG_DFL)

        def on_pass(tally: deliveries.Tally) -> None:
            if tally.attempted or tally.skipped:
                for name in ("delivered", "retrying", "failed", "skipped"):
                    setattr(total, name, getattr(total, name) + getattr(tally, name))
                self._say(tally.text().capitalize() + ".")

        def on_error(exc: DatabaseError) -> None:
            total.errors += 1
            self.stderr.write(
                f"Database error during a drain pass ({log_safe(exc, 500)}); trying again in {interval:g} s."
            )
            self.stderr.flush()

        previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
        try:
            self._say(f"Draining deliveries every {interval:g} s; stop with SIGTERM or Ctrl-C.")
            loop.run(on_pass, on_error)
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        self._say(f"Stopped. In all: {total.text()}.")

    def _say(self, text: str) -> None:
        # Flushed at once: under a process manager stdout is a pipe, and a line that waits in
        # a buffer is a line the operator does not see.
        self.stdout.write(text)
        self.stdout.flush()

    def do_prune(self, options: dict[str, Any]) -> None:
        from plugins_app import calllog

        counts = outbox.prune()
        self.stdout.write(
            f"Pruned {counts['delivered']} delivered and {counts['failed']} failed or discarded deliveries "
            f"(kept: delivered for {conf.get('DELIVERY_RETENTION_DAYS')} days, failed and discarded for "
            f"{conf.get('DELIVERY_FAILED_RETENTION_DAYS')} days)."
        )
        calls = calllog.prune_calls()
        self.stdout.write(
            f"Pruned {calls['calls']} call records and {calls['minutes']} per-minute metrics rows "
            f"(kept: calls for {conf.get('CALL_LOG_RETENTION_DAYS')} days, metrics for "
            f"{conf.get('METRICS_RETENTION_DAYS')} days)."
        )
