"""Circuit breaker: a plugin that fails BREAKER_THRESHOLD calls in a row is paused.

Paused plugins are skipped by actions and filters and refused by direct calls until an
operator resumes them (admin action or ``manage.py plugins resume SLUG``).

Every write here is a ``Plugin`` ``QuerySet.update()``, which invalidates the dispatch
cache in the same transaction (:mod:`plugins_app.dispatch`): the next call in this
context, and every process's next scope, see the new count and pause.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from django.utils import timezone

from . import conf
from .host_api.log import log_safe, plugin_extra

if TYPE_CHECKING:
    from .exceptions import PluginError
    from .models import DispatchRow

logger = logging.getLogger("plugins_app.breaker")


def record_failure(row: DispatchRow, exc: PluginError) -> None:
    """Count one more consecutive failure; pause the plugin at the threshold."""
    from .models import Plugin

    threshold = conf.get("BREAKER_THRESHOLD")
    plugins = Plugin.objects.filter(pk=row.pk)
    plugins.count_failure()
    if not threshold:
        return
    reason = log_safe(f"{threshold} consecutive failures; last: {type(exc).__name__}: {exc}", 2000)
    paused = plugins.filter(consecutive_failures__gte=threshold, paused_at__isnull=True).update(
        paused_at=timezone.now(), paused_reason=reason
    )
    if paused:
        logger.warning("plugin %r paused by the circuit breaker: %s", row.slug, reason, extra=plugin_extra(row.slug))


def record_success(row: DispatchRow) -> None:
    from .models import Plugin

    Plugin.objects.filter(pk=row.pk, consecutive_failures__gt=0).update(consecutive_failures=0)


def resume(slug: str) -> bool:
    """Resume a paused plugin (and reset its failure count); False if it was not paused."""
    from .models import Plugin

    return bool(
        Plugin.objects.filter(slug=slug, paused_at__isnull=False).update(
            paused_at=None, paused_reason="", consecutive_failures=0
        )
    )
