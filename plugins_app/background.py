"""Background actions: run a hook's action on Celery workers, or inline after commit.

>>> from plugins_app.background import enqueue_action
>>> enqueue_action("noteSaved", {"id": 1})   # after the current transaction commits

Celery is used when it is configured:

- ``PLUGINS_APP["CELERY_APP"]``: dotted path of your Celery app (``"project.celery.app"``
  or ``"project.celery:app"``); ``False`` never uses Celery; or
- ``CELERY_BROKER_URL`` in Django settings: plugins_app then sends with a small Celery
  app of its own configured from the ``CELERY_*`` settings (broker, result backend,
  routes), whatever thread it is called from.

Without either, the action runs inline in this process after the commit. The worker
side is the task ``plugins_app.run_action`` in :mod:`plugins_app.tasks`: workers must
import it (``app.autodiscover_tasks()`` does).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import asdict, dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver

from . import calllog, conf, hooks
from .exceptions import PluginBusy, PluginCrashed, PluginError, PluginTimeout
from .host_api.log import log_safe, plugin_extra

__all__ = ["TASK_NAME", "PluginRun", "enqueue_action", "execute_action", "get_celery_app"]

logger = logging.getLogger("plugins_app.background")

TASK_NAME = "plugins_app.run_action"
# Failures worth another attempt later: the sandbox was slow, died, or was full.
RETRYABLE = (PluginTimeout, PluginCrashed, PluginBusy)


# -- running an action and recording what ran ----------------------------------------


@dataclass
class PluginRun:
    """What one plugin did for a background action (JSON-able with :meth:`as_dict`)."""

    slug: str
    version: int
    ok: bool
    error: str | None = None
    attempts: int = 1
    duration_ms: float | None = None
    retryable: bool = False

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        del data["retryable"]
        return data


def execute_action(
    hook: str, args: list[Any] | tuple[Any, ...], *, only: list[str] | None = None, attempt: int = 1
) -> list[PluginRun]:
    """Run ``hook`` of every enabled plugin that defines it (or of those in ``only``),
    in priority order, recording for each the version that ran and the outcome.

    Like :func:`plugins_app.hooks.do_action`, a failing plugin does not stop the others.
    """
    from .models import Plugin

    runs = []
    for row in Plugin.objects.dispatch_rows_for_hook(hook):
        if only is not None and row.slug not in only:
            continue
        started = time.perf_counter()
        try:
            with calllog.caller("background"):
                result = hooks.run(row.slug, hook, *args)
        except PluginError as exc:
            # The error text quotes the plugin's own messages: one escaped line, which
            # also keeps the task's result serializable (no lone surrogates).
            error = log_safe(f"{type(exc).__name__}: {exc}", hooks.LOGGED_CHARS)
            run = PluginRun(
                row.slug,
                row.version,
                False,
                error,
                attempt,
                round((time.perf_counter() - started) * 1000.0, 1),
                isinstance(exc, RETRYABLE),
            )
            logger.warning(
                "background action %r: plugin %r version %s failed (attempt %d): %s",
                hook,
                row.slug,
                row.version,
                attempt,
                run.error,
                extra=plugin_extra(row.slug),
            )
        else:
            run = PluginRun(row.slug, result.version, True, None, attempt, round(result.duration_ms, 1))
            logger.info(
                "background action %r: plugin %r version %s ok in %.1f ms (attempt %d)",
                hook,
                row.slug,
                result.version,
                result.duration_ms,
                attempt,
                extra=plugin_extra(row.slug),
            )
        runs.append(run)
    return runs


def retry_countdown(retries: int) -> float:
    """Seconds before retry number ``retries + 1``: BACKGROUND_RETRY_BACKOFF doubled per
    retry, at most BACKGROUND_RETRY_BACKOFF_MAX."""
    base = float(conf.get("BACKGROUND_RETRY_BACKOFF"))
    delay: float = min(float(conf.get("BACKGROUND_RETRY_BACKOFF_MAX")), base * (2**retries))
    return delay


def run_task(
    task: Any, hook: str, args: list[Any], only: list[str] | None = None, previous: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """The body of the Celery task ``plugins_app.run_action`` (``task`` is the bound task).

    Plugins that failed with a retryable error (timeout, crash, busy sandbox) are retried
    alone, with exponential backoff, up to BACKGROUND_MAX_RETRIES times; plugins that
    already ran are not run again. Returns one ``PluginRun.as_dict()`` per plugin.
    """
    retries = task.request.retries
    runs = execute_action(hook, args, only=only, attempt=retries + 1)
    done = list(previous or []) + [r.as_dict() for r in runs if not r.retryable]
    again = [r for r in runs if r.retryable]
    max_retries = int(conf.get("BACKGROUND_MAX_RETRIES"))
    if again and retries < max_retries:
        countdown = retry_countdown(retries)
        logger.info(
            "background action %r: retrying %s in %.1f s (retry %d of %d)",
            hook,
            ", ".join(repr(r.slug) for r in again),
            countdown,
            retries + 1,
            max_retries,
        )
        raise task.retry(
            args=[hook, args],
            kwargs={"only": [r.slug for r in again], "previous": done},
            countdown=countdown,
            max_retries=max_retries,
        )
    if again:
        logger.error(
            "background action %r: %s still failing after %d attempts",
            hook,
            ", ".join(repr(r.slug) for r in again),
            retries + 1,
        )
    return done + [r.as_dict() for r in again]


# -- which Celery app ----------------------------------------------------------------

_app_lock = threading.Lock()
_settings_app: Any = None


def _celery_installed() -> bool:
    try:
        import celery  # noqa: F401 - only whether it is installed
    except ImportError:
        return False
    return True


def get_celery_app() -> Any:
    """The Celery app that background actions are sent with, or ``None`` (inline)."""
    global _settings_app
    configured = conf.get("CELERY_APP")
    if configured is False:
        return None
    if configured:
        try:
            from celery.utils.imports import symbol_by_name

            return symbol_by_name(configured)
        except (ImportError, AttributeError, ValueError) as exc:
            raise ImproperlyConfigured(f"PLUGINS_APP['CELERY_APP'] = {configured!r} cannot be imported: {exc}") from exc
    if not getattr(settings, "CELERY_BROKER_URL", None):
        return None
    if not _celery_installed():
        logger.warning("CELERY_BROKER_URL is set but celery is not installed: background actions run inline")
        return None
    with _app_lock:
        if _settings_app is None:
            from celery import Celery

            app = Celery("plugins_app", set_as_current=False, fixups=[])
            app.config_from_object("django.conf:settings", namespace="CELERY")
            _settings_app = app
        return _settings_app


@receiver(setting_changed)
def _reset_app(*, setting: str, **kwargs: Any) -> None:
    global _settings_app
    if setting == "PLUGINS_APP" or setting.startswith("CELERY_"):
        with _app_lock:
            app, _settings_app = _settings_app, None
        if app is not None:
            app.close()


# -- enqueueing ----------------------------------------------------------------------


def enqueue_action(hook: str, *args: Any, using: str | None = None) -> list[str]:
    """Run action ``hook`` with JSON-able ``args`` in the background once the current
    transaction on ``using`` commits (at once in autocommit mode); nothing if it rolls back.

    Writes one delivery per enabled plugin that defines ``hook`` to the outbox, in the
    current transaction, and returns their delivery ids. After the commit they are sent to
    Celery (or attempted inline when Celery is not configured) and retried until delivered
    (see :mod:`plugins_app.outbox`). Each plugin's hook is called as ``hook(*args, meta)``
    where ``meta`` holds ``deliveryId`` and ``attempt``. Raises ``PluginDataError`` at once
    for arguments that are not JSON data within the limits.

    Changed in 0.2: this returned an ``EnqueuedAction`` with a Celery task id; it now
    returns the delivery ids (``Delivery.objects.filter(delivery_id__in=ids)``).
    """
    from . import outbox

    if not isinstance(hook, str) or not hook:
        raise TypeError("hook must be a non-empty string")
    # A copy, as plain data: what the caller changes afterwards does not reach plugins.
    data = json.loads(hooks.encode_arguments(args, what=f"arguments for background action {hook!r}"))
    return outbox.record(hook, data, {}, mode="background", using=using)
