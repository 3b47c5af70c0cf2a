"""The JS global ``storage``: a per-plugin key/value store in the database, with quotas.

Keys and values are checked before the database sees them (NUL characters are refused
on every backend, as PostgreSQL cannot store them), so a plugin's bad input is a
catchable JS error, never a database error.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeGuard

from django.db import DataError, IntegrityError, transaction
from django.db.models import F, Sum

from .. import conf
from . import HostCallError, HostContext, check_no_nul, host_function, quote

INT64 = (-(2**63), 2**63 - 1)


def _items(ctx: HostContext) -> Any:
    from ..models import StorageItem

    if ctx.plugin_id is None:
        raise HostCallError("PermissionDenied", "storage is not available while a plugin is being validated")
    return StorageItem.objects.filter(plugin_id=ctx.plugin_id)


def _key(key: Any) -> str:
    if not isinstance(key, str) or not key:
        raise HostCallError("TypeError", "storage keys must be non-empty strings")
    limit = conf.get("STORAGE_MAX_KEY_CHARS")
    if len(key) > limit:
        raise HostCallError("QuotaExceeded", f"storage keys may be at most {limit} characters")
    check_no_nul(key, "the storage key")
    return key


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool) and INT64[0] <= value <= INT64[1]


def _value(item: Any) -> Any:
    return item.number if item.number is not None else item.value


@host_function("storage.get")
def get(ctx: HostContext, key: Any) -> Any:
    item = _items(ctx).filter(key=_key(key)).only("value", "number").first()
    return None if item is None else _value(item)


@host_function("storage.set", writes=True)
def set_(ctx: HostContext, key: Any, value: Any = None) -> None:
    key = _key(key)
    check_no_nul(value, "the storage value")
    encoded = json.dumps(value, ensure_ascii=False)
    size = len(key.encode()) + len(encoded.encode())
    if size > conf.get("STORAGE_MAX_VALUE_BYTES"):
        raise HostCallError(
            "QuotaExceeded", f"storage values may be at most {conf.get('STORAGE_MAX_VALUE_BYTES')} bytes"
        )
    items = _items(ctx)
    with transaction.atomic():
        used = items.exclude(key=key).aggregate(total=Sum("size"))["total"] or 0
        if used + size > conf.get("STORAGE_MAX_TOTAL_BYTES"):
            raise HostCallError(
                "QuotaExceeded", f"plugin storage is limited to {conf.get('STORAGE_MAX_TOTAL_BYTES')} bytes in total"
            )
        number, stored = (value, None) if _is_int(value) else (None, value)
        items.update_or_create(
            plugin_id=ctx.plugin_id, key=key, defaults={"value": stored, "number": number, "size": size}
        )


@host_function("storage.delete", writes=True)
def delete(ctx: HostContext, key: Any) -> bool:
    deleted, _ = _items(ctx).filter(key=_key(key)).delete()
    return bool(deleted)


@host_function("storage.keys")
def keys(ctx: HostContext, prefix: Any = "") -> list[str]:
    if prefix is None:
        prefix = ""
    if not isinstance(prefix, str):
        raise HostCallError("TypeError", "prefix must be a string")
    check_no_nul(prefix, "the prefix")
    remaining = ctx.remaining_rows_read()
    found = list(
        _items(ctx).filter(key__startswith=prefix).order_by("key").values_list("key", flat=True)[: remaining + 1]
    )
    ctx.charge_rows_read(len(found))
    return found


@contextmanager
def _overflow_is_an_error() -> Iterator[None]:
    try:
        yield
    except DataError:
        raise HostCallError("RangeError", "storage.incr() would overflow a 64-bit integer") from None


@host_function("storage.incr", writes=True)
def incr(ctx: HostContext, key: Any, by: Any = 1) -> int:
    """Add ``by`` to the integer at ``key`` (missing counts as 0) atomically; return the sum."""
    key = _key(key)
    if not _is_int(by):
        raise HostCallError("TypeError", "incr() needs an integer amount")
    items = _items(ctx).filter(key=key)
    # A retry follows a concurrent creation of the key (IntegrityError); several racing
    # creators on a loaded database can take a few rounds.
    for _attempt in range(5):
        with transaction.atomic(), _overflow_is_an_error():
            # One UPDATE is atomic on every backend; the row stays locked until the end
            # of this transaction, so reading it back returns exactly our sum.
            # The range filter keeps the sum within 64 bits (SQLite would turn it into a float).
            in_range = {"number__lte": INT64[1] - by} if by >= 0 else {"number__gte": INT64[0] - by}
            if items.filter(number__isnull=False, **in_range).update(number=F("number") + by):
                total: int = items.values_list("number", flat=True).get()
                return total
            # One read, not two: under READ COMMITTED another caller's new row can appear
            # between two statements (seen: a "does not hold an integer" race on PostgreSQL).
            found = list(items.values_list("number", flat=True)[:1])
            if found:
                current = found[0]
                if current is None:
                    raise HostCallError("TypeError", f"storage key {quote(key)} does not hold an integer")
                if not INT64[0] <= current + by <= INT64[1]:
                    raise HostCallError("RangeError", "storage.incr() would overflow a 64-bit integer")
                continue  # created by another caller after our UPDATE: add to theirs
            size = len(key.encode()) + len(str(by))
            used = _items(ctx).aggregate(total=Sum("size"))["total"] or 0
            if used + size > conf.get("STORAGE_MAX_TOTAL_BYTES"):
                raise HostCallError(
                    "QuotaExceeded",
                    f"plugin storage is limited to {conf.get('STORAGE_MAX_TOTAL_BYTES')} bytes in total",
                )
            try:
                with transaction.atomic():
                    items.create(plugin_id=ctx.plugin_id, key=key, number=by, size=size)
                return by
            except IntegrityError:
                continue  # created concurrently: add to theirs
    raise HostCallError("HostError", "storage.incr() could not complete; try again")
