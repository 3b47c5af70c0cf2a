"""Middleware of plugins_app.

Add ``"plugins_app.middleware.PluginScopeMiddleware"`` to ``MIDDLEWARE`` (first, so that
hooks called by other middleware are inside it too).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase

from .dispatch import scope

__all__ = ["PluginScopeMiddleware"]


class PluginScopeMiddleware:
    """Runs each request in one :func:`plugins_app.hooks.scope`: every hook the request
    calls (views, templates, signals, after-commit deliveries) sees the same version of
    every plugin, found without a query; a plugin change is seen by the next request.

    Sync and async (ASGI) capable. A streaming response's body is produced after the
    scope ends: hooks called from it validate per call, as outside any scope.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.async_mode = iscoroutinefunction(get_response)
        if self.async_mode:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> HttpResponseBase | Awaitable[HttpResponseBase]:
        if self.async_mode:
            return self.__acall__(request)
        with scope():
            response: HttpResponseBase = self.get_response(request)
            return response

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        with scope():
            response: HttpResponseBase = await self.get_response(request)
            return response
