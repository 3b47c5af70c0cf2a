"""``log(...)`` and ``console.*``: lines to the plugin's Python logger and the call result."""
from __future__ import annotations

import logging

from .. import conf
from . import HostContext, LogLine, host_function

LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}


@host_function("log", metered=False)  # capped by MAX_LOG_LINES instead
def log(ctx: HostContext, level: str, message: str) -> None:
    if len(ctx.logs) >= conf.get("MAX_LOG_LINES"):
        ctx.dropped_logs += 1
        return
    level = level if level in LOG_LEVELS else "info"
    text = str(message)
    limit = conf.get("MAX_LOG_LINE_CHARS")
    if len(text) > limit:
        text = text[:limit] + "…"
    ctx.logs.append(LogLine(level, text))
    logging.getLogger(f"plugins_app.plugins.{ctx.slug}").log(LOG_LEVELS[level], "%s", text)
