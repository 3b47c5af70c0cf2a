"""Demo site views: each one calls plugin hooks in its request handler."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from plugins_app import hooks
from plugins_app.exceptions import PluginError
from plugins_app.views import filter_value


def home(request: HttpRequest) -> HttpResponse:
    """Greets the visitor through the greeter plugin; a failing plugin degrades, not breaks."""
    name = request.GET.get("name", "").strip()[:100] or "World"
    greeting: str | None = None
    error: str | None = None
    logs: list = []
    try:
        result = hooks.run("greeter", "greet", name)
        greeting, logs = result.value, result.logs
    except PluginError as exc:
        error = f"{type(exc).__name__}: {exc}"
    stats, stats_error = None, None
    try:
        stats = hooks.call("note-stats", "summary")
    except PluginError as exc:
        stats_error = f"{type(exc).__name__}: {exc}"
    # A content filter: plugins implementing "headline" may rewrite it (failures are skipped).
    headline = filter_value(request, "headline", "Plugins demo")
    if not isinstance(headline, str):
        headline = "Plugins demo"
    context = {
        "name": name,
        "greeting": greeting,
        "error": error,
        "logs": logs,
        "stats": stats,
        "stats_error": stats_error,
        "headline": headline,
    }
    return render(request, "demo/home.html", context)
