"""``log(...)`` and ``console.*``: lines to the plugin's Python logger and the call result.

Text a plugin controls reaches Python logging only through :func:`log_safe`, on one
line, and every record about a plugin carries its slug as ``record.plugin``
(``extra={"plugin": slug}``; see docs/operators.md).
"""

from __future__ import annotations

import logging
import re
from typing import Any

from .. import conf
from . import HostCallError, HostContext, LogLine, host_function

LOG_LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

# C0 controls (CR, LF, TAB, ESC...), DEL and C1 controls; the Unicode line and paragraph
# separators; bidirectional overrides and isolates (they reorder what an operator reads);
# and surrogates, which can only be lone in a Python str and would break UTF-8 handlers.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    named = _NAMED.get(char)
    if named is not None:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


def log_safe(text: Any, limit: int | None = None) -> str:
    """``text`` made safe for a log line: control characters, line separators, bidi
    controls and lone surrogates written as escapes (``\\n``, ``\\x1b``, ``\\u2028``),
    cut to ``limit`` characters first (with ``…``) if given."""
    text = str(text)
    if limit is not None and len(text) > limit:
        text = text[:limit] + "…"
    return _UNSAFE.sub(_escape, text)


def plugin_extra(slug: str) -> dict[str, str]:
    """The ``extra`` of every log record about plugin ``slug``."""
    return {"plugin": slug}


@host_function("log", metered=False)  # capped by MAX_LOG_LINES instead
def log(ctx: HostContext, level: Any, message: Any) -> None:
    if len(ctx.logs) >= conf.get("MAX_LOG_LINES"):
        ctx.dropped_logs += 1
        return
    if not isinstance(level, str) or not isinstance(message, str):
        raise HostCallError("TypeError", "log() takes a level name and a message string")
    level = level if level in LOG_LEVELS else "info"
    limit = conf.get("MAX_LOG_LINE_CHARS")
    text = message if len(message) <= limit else message[:limit] + "…"
    # Callers get the line as the plugin wrote it (it is data); the log gets it escaped.
    ctx.logs.append(LogLine(level, text))
    logging.getLogger(f"plugins_app.plugins.{ctx.slug}").log(
        LOG_LEVELS[level], "%s", log_safe(text), extra=plugin_extra(ctx.slug)
    )


def receive(ctx: HostContext, lines: list[list[str]], dropped: int = 0) -> None:
    """Log lines the sandbox buffered for this call (``[level, text]`` pairs, in order),
    and how many it dropped past ``MAX_LOG_LINES``: recorded as if logged one by one."""
    for level, text in lines:
        log(ctx, level, text)
    ctx.dropped_logs += max(0, int(dropped))
