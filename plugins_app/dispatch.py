"""What dispatch needs, cached per process and validated against a generation counter.

A hook call needs the plugin's dispatch row (enabled, paused, hooks, version, limits),
an action or filter needs the enabled plugins that implement its hook, and the ``db``
host API needs the plugin's grants. All of it is one immutable :class:`DispatchState`,
loaded with a few queries and kept per process.

Every change that affects dispatch (saving or deleting a plugin or a grant, enabling,
disabling, the circuit breaker pausing, resetting or resuming a plugin, bulk updates
of these models) increments a **generation** counter in the same transaction
(:func:`invalidate`). A process trusts its cached state only while the counter it reads
equals the state's generation: one query (or cache ``get``) instead of one per plugin
lookup.

:func:`scope` pins one state for a block (a request, a task, a delivery): every hook
call inside it sees the same versions of every plugin and makes no query to find them.
Outside any scope, every call validates on its own, so a change is seen at the next call.
See docs/hooks.md, "Scopes and caching".
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import threading
import weakref
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cache, partial
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from django.core.cache import caches
from django.db import IntegrityError, connections, router, transaction
from django.db.models import F

from . import conf

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper

    from .models import DispatchRow

__all__ = ["DispatchState", "Grant", "current", "invalidate", "pinned_state", "scope"]

logger = logging.getLogger("plugins_app.dispatch")

# The cache key of the generation when DISPATCH_GENERATION_CACHE names a cache.
CACHE_KEY = "plugins_app:dispatch-generation"
# The primary key of the one DispatchGeneration row.
GENERATION_PK = 1


@dataclass(frozen=True)
class Grant:
    """What one plugin may do with one exposed model (a snapshot of a ``PluginGrant``)."""

    model: str
    read: tuple[str, ...]
    create: tuple[str, ...]
    update: tuple[str, ...]
    can_delete: bool


@dataclass(frozen=True)
class DispatchState:
    """One consistent snapshot of what dispatch reads; never changed once built.

    ``rows_by_slug``: every installed plugin (enabled or not: direct calls report
    disabled and paused plugins). ``rows_for_hook``: per hook name, the enabled, unpaused
    plugins whose hook index lists it, by priority then slug (the order of
    ``Plugin.objects.dispatch_rows_for_hook``). ``grants``: per plugin id, its grants by
    lowercase model label. ``generation``: the counter this state was loaded at (None:
    no change was ever recorded, or the state is private to one transaction).
    """

    generation: int | None
    rows_by_slug: Mapping[str, DispatchRow]
    rows_for_hook: Mapping[str, tuple[DispatchRow, ...]]
    grants: Mapping[int, Mapping[str, Grant]]


NO_GRANTS: Mapping[str, Grant] = MappingProxyType({})

# -- the process-wide cache ------------------------------------------------------------------

_lock = threading.Lock()
_cache: DispatchState | None = None
# Connections whose open transaction changed what dispatch reads: a state they load
# includes uncommitted rows, so it is never shared with the rest of the process.
_dirty: weakref.WeakSet[BaseDatabaseWrapper] = weakref.WeakSet()


def _forget() -> None:
    global _cache
    with _lock:
        _cache = None


def _after_fork_in_child() -> None:
    # The parent's lock may have been held by another thread at fork time.
    global _lock, _cache
    _lock = threading.Lock()
    _cache = None


os.register_at_fork(after_in_child=_after_fork_in_child)


class _Scope:
    """The state pinned by one :func:`scope` (shared by the threads its context reaches)."""

    __slots__ = ("state",)

    def __init__(self) -> None:
        self.state: DispatchState | None = None


_scope: ContextVar[_Scope | None] = ContextVar("plugins_app_dispatch_scope", default=None)


@contextmanager
def scope() -> Iterator[None]:
    """Pin one :class:`DispatchState` for the block: every hook call inside it uses the
    same version of every plugin, and finds its plugins without a query.

    The state is validated against the generation once, at the block's first hook call
    (no query at all for a block that calls none). Changes made by other threads and
    processes meanwhile are seen by the next scope; a change made in this block (this
    context: thread or asyncio task) is seen at its next hook call. Nested scopes reuse
    the outermost one. Per thread and per asyncio task (a ``contextvars`` variable);
    ``sync_to_async`` threads, such as those of ``hooks.acall``, share their caller's scope.
    """
    if _scope.get() is not None:
        yield
        return
    token = _scope.set(_Scope())
    try:
        yield
    finally:
        _scope.reset(token)


def current() -> DispatchState:
    """The state a hook call should use now: the scope's (pinned at its first use), or,
    outside any scope, the process's cached state validated against the generation."""
    pinned = _scope.get()
    if pinned is None:
        return _validated()
    state = pinned.state
    if state is None:
        state = pinned.state = _validated()
    return state


def pinned_state() -> DispatchState | None:
    """The state of the enclosing :func:`scope` (loaded if the scope has none yet), or
    None outside any scope."""
    return current() if _scope.get() is not None else None


def invalidate(using: str | None = None) -> None:
    """Record that what dispatch reads has changed: increment the generation (in the
    current transaction on ``using``) and drop this process's cached state.

    Plugin, grant and hook-index writes through the ORM call it already (saves, deletes,
    ``QuerySet.update()``/``delete()``/bulk operations, the circuit breaker). Call it
    yourself after changing those tables with raw SQL, in the same transaction. Other
    processes see the change at their next scope (or call) after it commits; this
    context sees it at its next hook call.
    """
    from .models import DispatchGeneration

    alias = using or router.db_for_write(DispatchGeneration)
    connection = connections[alias]
    cache_alias = conf.get("DISPATCH_GENERATION_CACHE")
    if not cache_alias:
        _bump_database(alias)
    _forget()
    pinned = _scope.get()
    if pinned is not None:
        pinned.state = None
    if connection.in_atomic_block:
        _dirty.add(connection)
        transaction.on_commit(partial(_committed, connection, cache_alias), using=alias, robust=True)
    else:
        _committed(connection, cache_alias)


def _committed(connection: BaseDatabaseWrapper, cache_alias: str | None) -> None:
    """The change committed: a cache-held generation moves now (moving it before the
    commit would let other processes cache the old rows under the new number)."""
    _dirty.discard(connection)
    if cache_alias:
        _bump_cache(cache_alias)
        _forget()


# -- the generation --------------------------------------------------------------------------


def _fresh_generation() -> int:
    # A re-created row or key (a flushed test database, an evicted key) starts at a random
    # number, so it does not repeat a generation some process still has cached.
    return secrets.randbelow(2**40) + 1


def _bump_database(alias: str) -> None:
    from .models import DispatchGeneration

    rows = DispatchGeneration.objects.using(alias)
    if rows.filter(pk=GENERATION_PK).update(value=F("value") + 1):
        return
    try:
        with transaction.atomic(using=alias):
            rows.create(pk=GENERATION_PK, value=_fresh_generation())
    except IntegrityError:  # created meanwhile by another process
        rows.filter(pk=GENERATION_PK).update(value=F("value") + 1)


def _bump_cache(cache_alias: str) -> None:
    cache_ = caches[cache_alias]
    try:
        try:
            cache_.incr(CACHE_KEY)
        except ValueError:  # no such key (never set, or evicted)
            if not cache_.add(CACHE_KEY, _fresh_generation(), timeout=None):
                cache_.incr(CACHE_KEY)
    except Exception as exc:
        # Not moved: other processes would keep the old state. Deleting the key makes
        # every process reload (and the next change start a fresh number).
        logger.error("could not move the dispatch generation in cache %r: %s", cache_alias, exc)
        try:
            cache_.delete(CACHE_KEY)
        except Exception:
            logger.exception("could not delete the dispatch generation in cache %r", cache_alias)


@cache
def _generation_sql(alias: str, table: str) -> str:
    quote = connections[alias].ops.quote_name
    return f"SELECT {quote('value')} FROM {quote(table)} WHERE {quote('id')} = %s"


class _Unknown:
    """A generation that could not be read: matches no state."""


UNKNOWN = _Unknown()


def _read_generation(alias: str) -> int | None | _Unknown:
    cache_alias = conf.get("DISPATCH_GENERATION_CACHE")
    if cache_alias:
        try:
            generation: int | None = caches[cache_alias].get(CACHE_KEY)
            return generation
        except Exception as exc:
            logger.warning("could not read the dispatch generation from cache %r: %s", cache_alias, exc)
            return UNKNOWN
    from .models import DispatchGeneration

    with connections[alias].cursor() as cursor:
        cursor.execute(_generation_sql(alias, DispatchGeneration._meta.db_table), [GENERATION_PK])
        row = cursor.fetchone()
    return None if row is None else int(row[0])


# -- loading ---------------------------------------------------------------------------------


def _validated() -> DispatchState:
    """This process's cached state if its generation is current, else a fresh one."""
    global _cache
    from .models import Plugin

    alias = router.db_for_read(Plugin)
    connection = connections[alias]
    if connection in _dirty:
        if connection.in_atomic_block:
            return load(alias)  # sees this transaction's own changes: shared with no one
        _dirty.discard(connection)  # its transaction rolled back
    generation = _read_generation(alias)
    if isinstance(generation, _Unknown):
        return load(alias)  # trusted by no one, not even the next call
    cached = _cache
    if cached is not None and cached.generation == generation:
        return cached
    state = load(alias, generation)
    with _lock:
        _cache = state
    return state


def load(alias: str | None = None, generation: int | None = None) -> DispatchState:
    """Build a :class:`DispatchState` from the database (three queries), labelled with
    ``generation``: read it *before* calling, so the rows are at least that recent.
    Used by the cache; call it yourself only to inspect what dispatch would see."""
    from .models import Plugin, _dispatch_row

    alias = alias or router.db_for_read(Plugin)
    rows = [_dispatch_row(row) for row in _select(alias, "plugins")]
    hooks_of: dict[int, list[str]] = {}
    for plugin_id, name in _select(alias, "hooks"):
        hooks_of.setdefault(plugin_id, []).append(name)
    for_hook: dict[str, list[DispatchRow]] = {}
    for row in rows:  # in dispatch order: priority, then slug (as the database sorts them)
        if row.enabled and not row.paused:
            for name in hooks_of.get(row.pk, ()):
                for_hook.setdefault(name, []).append(row)
    grants: dict[int, dict[str, Grant]] = {}
    for plugin_id, model, read, create, update, can_delete in _select(alias, "grants"):
        read, create, update = (_json(v) for v in (read, create, update))
        grant = Grant(model, tuple(read or ()), tuple(create or ()), tuple(update or ()), bool(can_delete))
        grants.setdefault(plugin_id, {})[model.lower()] = grant
    return DispatchState(
        generation=generation,
        rows_by_slug=MappingProxyType({row.slug: row for row in rows}),
        rows_for_hook=MappingProxyType({name: tuple(found) for name, found in for_hook.items()}),
        grants=MappingProxyType({pk: MappingProxyType(found) for pk, found in grants.items()}),
    )


def _queries() -> dict[str, Any]:
    from .models import _DISPATCH_COLUMNS, Plugin, PluginGrant, PluginHook

    return {
        "plugins": Plugin.objects.order_by("priority", "slug").values_list(
            *[c if c != "id" else "pk" for c in _DISPATCH_COLUMNS]
        ),
        "hooks": PluginHook.objects.values_list("plugin_id", "name"),
        "grants": PluginGrant.objects.values_list("plugin_id", "model", "read", "create", "update", "can_delete"),
    }


@cache
def _sql(alias: str, name: str) -> tuple[str, tuple[Any, ...]]:
    """The SQL of one of the loading queries, compiled once per database: building it
    through the ORM costs about a millisecond each time, the statement itself a fraction."""
    sql: tuple[str, tuple[Any, ...]] = _queries()[name].query.get_compiler(alias).as_sql()
    return sql


def _select(alias: str, name: str) -> list[tuple[Any, ...]]:
    sql, params = _sql(alias, name)
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, params)
        rows: list[tuple[Any, ...]] = cursor.fetchall()
        return rows


def plugin_code(pk: int) -> tuple[str, Any, str] | None:
    """``(source, config, fingerprint)`` of plugin ``pk``, read for a cold start (one plain
    statement: the ORM's query building costs about a millisecond)."""
    from .models import Plugin

    alias = router.db_for_read(Plugin)
    connection = connections[alias]
    quote = connection.ops.quote_name
    sql = (
        f"SELECT {quote('source')}, {quote('config')}, {quote('fingerprint')} "
        f"FROM {quote(Plugin._meta.db_table)} WHERE {quote('id')} = %s"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [pk])
        row = cursor.fetchone()
    if row is None:
        return None
    return row[0], _json(row[1]), row[2]


def _json(value: Any) -> Any:
    """A JSON column as read by a plain cursor: text on some backends, data on others."""
    return json.loads(value) if isinstance(value, str | bytes) else value


# -- writes the ORM does not route through save() or QuerySet methods -------------------------


def _raw_saved(sender: Any, raw: bool = False, using: str | None = None, **kwargs: Any) -> None:
    if raw:  # loaddata: rows written as stored, bypassing the models' save()
        invalidate(using)


def connect_signals() -> None:
    """Invalidate on ``loaddata`` of plugins, grants and hook rows (called by the app's ``ready()``)."""
    from django.db.models.signals import post_save

    for model in ("plugins_app.Plugin", "plugins_app.PluginGrant", "plugins_app.PluginHook"):
        post_save.connect(_raw_saved, sender=model, weak=False, dispatch_uid=f"plugins_app.dispatch.raw:{model}")
