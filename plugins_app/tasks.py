"""Celery tasks of plugins_app (imported by workers, e.g. via ``app.autodiscover_tasks()``).

Only needed with Celery installed; see :mod:`plugins_app.background` for sending.
"""
from __future__ import annotations

from typing import Any

from celery import shared_task

from .background import TASK_NAME, run_task


@shared_task(bind=True, name=TASK_NAME, ignore_result=False)
def run_action(self: Any, hook: str, args: list[Any], only: list[str] | None = None, previous: list[dict] | None = None) -> list[dict[str, Any]]:
    """Run action ``hook`` with ``args``; return ``[{slug, version, ok, error, attempts, duration_ms}]``.

    Plugins failing with PluginTimeout, PluginCrashed or PluginBusy are retried alone with
    exponential backoff (PLUGINS_APP BACKGROUND_MAX_RETRIES / _RETRY_BACKOFF / _RETRY_BACKOFF_MAX).
    """
    return run_task(self, hook, args, only=only, previous=previous)
