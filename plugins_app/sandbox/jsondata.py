"""JSON data that crosses the sandbox boundary: depth and text checks that never recurse.

Shared by the supervisor (hook arguments and results, host-call arguments) and the
sandbox worker, so it imports only the standard library. Python's ``json`` recurses
once per nesting level and raises ``RecursionError`` (not ``ValueError``) on deep input;
these helpers turn every such case into :class:`DataError` with a precise message.
"""
from __future__ import annotations

import json
from typing import Any

DEFAULT_MAX_DEPTH = 128


class DataError(ValueError):
    """A value is not plain JSON data within the limits.

    ``reason`` says which limit: ``"depth"`` (nested too deeply), ``"text"`` (a lone
    surrogate), ``"type"`` (not JSON data) or ``"json"`` (text that does not parse).
    """

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


def _check_text(text: str, where: str) -> None:
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise DataError(f"{where} contains a lone surrogate (not valid Unicode text)", "text") from None


def check(value: Any, max_depth: int = DEFAULT_MAX_DEPTH, *, what: str = "value") -> None:
    """Raise :class:`DataError` unless ``value`` is JSON data nested at most ``max_depth``
    levels deep (a scalar is depth 0, ``[1]`` depth 1) with well-formed strings and keys."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    pop, push = stack.pop, stack.append
    while stack:
        item, depth = pop()
        if isinstance(item, str):
            _check_text(item, what)
        elif isinstance(item, dict | list | tuple):
            if depth >= max_depth:
                raise DataError(f"{what} is nested deeper than {max_depth} levels", "depth")
            if isinstance(item, dict):
                for key, child in item.items():
                    if not isinstance(key, str):
                        raise DataError(f"{what} has a non-string object key", "type")
                    _check_text(key, what)
                    push((child, depth + 1))
            else:
                for child in item:
                    push((child, depth + 1))
        elif item is None or isinstance(item, bool | int | float):
            continue
        else:
            raise DataError(f"{what} holds a {type(item).__name__}, which is not JSON data", "type")


def loads(text: str, max_depth: int = DEFAULT_MAX_DEPTH, *, what: str = "value") -> Any:
    """Parse JSON ``text`` and :func:`check` it; every failure is a :class:`DataError`."""
    try:
        value = json.loads(text)
    except RecursionError:
        raise DataError(f"{what} is nested deeper than {max_depth} levels", "depth") from None
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} is not valid JSON ({exc.__class__.__name__})", "json") from None
    check(value, max_depth, what=what)
    return value


def dumps(value: Any, max_depth: int = DEFAULT_MAX_DEPTH, *, what: str = "value") -> str:
    """:func:`check` ``value``, then encode it as compact JSON (no NaN/Infinity)."""
    check(value, max_depth, what=what)
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} is not JSON data: {exc}", "type") from None
