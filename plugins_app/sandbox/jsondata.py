"""JSON data that crosses the sandbox boundary: depth and text checks that never recurse.

Used on the hot path of every hook call (arguments, results, host-call arguments and
replies), so texts are parsed and written with orjson (about 10x faster than ``json``
here), which nests at most 1024 levels when parsing and 254 when writing: the depth
limit (``MAX_DATA_DEPTH``, at most :data:`MAX_SUPPORTED_DEPTH`) is always checked first,
without recursion. Every failure is a :class:`DataError` with a precise message.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson

DEFAULT_MAX_DEPTH = 128
# orjson writes at most 254 nested levels; deeper data never reaches it (check() first).
MAX_SUPPORTED_DEPTH = 250


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
        elif item is None or isinstance(item, bool | int):
            continue
        elif isinstance(item, float):
            if not math.isfinite(item):
                raise DataError(f"{what} holds {item!r}, which is not JSON data", "type")
        else:
            raise DataError(f"{what} holds a {type(item).__name__}, which is not JSON data", "type")


def loads(text: str, max_depth: int = DEFAULT_MAX_DEPTH, *, what: str = "value") -> Any:
    """Parse JSON ``text`` and :func:`check` it; every failure is a :class:`DataError`."""
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        if "surrogate" in str(exc):
            raise DataError(f"{what} contains a lone surrogate (not valid Unicode text)", "text") from None
        if "depth" in str(exc) or "recursion" in str(exc):
            raise DataError(f"{what} is nested deeper than {max_depth} levels", "depth") from None
        raise DataError(f"{what} is not valid JSON (JSONDecodeError)", "json") from None
    except TypeError:
        raise DataError(f"{what} is not valid JSON (TypeError)", "json") from None
    check(value, max_depth, what=what)
    return value


def dumps(value: Any, max_depth: int = DEFAULT_MAX_DEPTH, *, what: str = "value") -> str:
    """:func:`check` ``value``, then encode it as compact JSON (no NaN/Infinity)."""
    check(value, max_depth, what=what)
    return encode(value, what=what)


def encode(value: Any, *, what: str = "value") -> str:
    """Compact JSON text of ``value``, which :func:`check` has accepted."""
    try:
        return orjson.dumps(value).decode()
    except TypeError:
        pass  # an integer beyond 64 bits: the standard library writes it as JavaScript reads it
    try:
        return json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise DataError(f"{what} is not JSON data: {exc}", "type") from None
