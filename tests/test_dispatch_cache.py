"""The dispatch cache (plugins_app.dispatch): scopes, the generation, invalidation (real V8, real DB).

"Another process" is simulated three ways: a thread with its own database connection
that changes rows with raw SQL and moves the generation itself (nothing in this process
learns of it), a thread using the ORM (which also clears this process's cache, as a
change in this process does), and a real ``manage.py shell -c`` subprocess.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.core import checks, serializers
from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.http import HttpRequest, JsonResponse
from django.test.utils import CaptureQueriesContext
from django.urls import path, reverse
from django.utils import timezone

from plugins_app import breaker, dispatch, hooks
from plugins_app.checks import check_dispatch_cache
from plugins_app.exceptions import PluginError, PluginPaused
from plugins_app.models import DispatchGeneration, Plugin, PluginGrant
from tests.cli import run as plugins_command

REPO = Path(__file__).resolve().parent.parent
SOURCE = "const plugin = { h(fail) { if (fail) throw new Error('bad'); return config.answer || 'ok'; } };"
COUNTER = "const plugin = { users() { return db.count('auth.User'); } };"


# -- helpers ---------------------------------------------------------------------------------------


def elsewhere(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` in another thread: its own database connection, outside any scope."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as exc:  # re-raised in the test's thread
            outcome["error"] = exc
        finally:
            connections.close_all()

    thread = threading.Thread(target=target)
    thread.start()
    thread.join(120)
    assert not thread.is_alive()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def raw_sql_elsewhere(sql: str, params: list[Any], *, bump: bool) -> None:
    """Another process's change by raw SQL on another connection: this process's cache is
    not told; ``bump`` moves the generation in the same transaction, as a process does."""

    def change() -> None:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(sql, params)
            if bump:
                cursor.execute(f"UPDATE {DispatchGeneration._meta.db_table} SET value = value + 1 WHERE id = 1")
                assert cursor.rowcount == 1

    elsewhere(change)


def disable_by_raw_sql(slug: str, *, bump: bool) -> None:
    raw_sql_elsewhere(f"UPDATE {Plugin._meta.db_table} SET enabled = %s WHERE slug = %s", [False, slug], bump=bump)


def generation() -> Any:
    return dispatch._read_generation(DEFAULT_DB_ALIAS)


def outcome(slug: str, *args: Any) -> Any:
    """The hook's value, or the name of the PluginError it raised."""
    try:
        return hooks.call(slug, "h", *args)
    except PluginError as exc:
        return type(exc).__name__


def table_queries(queries: CaptureQueriesContext, *tables: str) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if any(t in q["sql"] for t in tables)]


@pytest.fixture
def plugin(make_plugin) -> Plugin:
    return make_plugin(SOURCE, slug="p")


# -- outside a scope: every call validates ----------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_save_is_seen_at_the_next_call_outside_a_scope(plugin):
    assert outcome("p") == "ok"
    plugin.config = {"answer": "two"}
    plugin.save()
    assert outcome("p") == "two"
    elsewhere(lambda: Plugin.objects.filter(slug="p").update(enabled=False))
    assert outcome("p") == "PluginDisabled"


@pytest.mark.django_db(transaction=True)
def test_outside_a_scope_a_warm_cache_costs_one_query_per_call(plugin, django_assert_num_queries):
    hooks.do_action("nothing")  # loads and caches the state
    with django_assert_num_queries(1) as queries:
        assert hooks.do_action("nothing") == []
    assert DispatchGeneration._meta.db_table in queries.captured_queries[0]["sql"]
    with django_assert_num_queries(1):
        assert hooks.apply_filters("nothing", 41) == 41


@pytest.mark.django_db(transaction=True)
def test_another_process_is_seen_through_the_generation_only(plugin):
    assert outcome("p") == "ok"
    cached = dispatch._cache
    assert cached is not None and cached.generation == generation()
    # A raw change that does not move the generation: the cached state is trusted...
    disable_by_raw_sql("p", bump=False)
    assert outcome("p") == "ok"
    assert dispatch._cache is cached
    # ...until the generation moves (another process's change, or dispatch.invalidate()).
    raw_sql_elsewhere(f"UPDATE {Plugin._meta.db_table} SET priority = 7 WHERE slug = %s", ["p"], bump=True)
    assert outcome("p") == "PluginDisabled"
    assert dispatch._cache is not cached and dispatch._cache.generation == generation()


@pytest.mark.django_db(transaction=True)
def test_invalidate_after_raw_sql(plugin):
    assert outcome("p") == "ok"
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {Plugin._meta.db_table} SET enabled = %s WHERE slug = %s", [False, "p"])
    assert outcome("p") == "ok"  # nothing told the cache
    before = generation()
    dispatch.invalidate()
    assert generation() == before + 1
    assert outcome("p") == "PluginDisabled"


@pytest.mark.django_db(transaction=True)
def test_a_change_in_another_real_process_is_seen(plugin):
    db = connection.settings_dict
    if connection.vendor == "sqlite":
        url = f"sqlite:///{db['NAME']}"
    elif connection.vendor == "postgresql":
        url = f"postgres://{db['USER'] or ''}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    else:
        pytest.skip("needs SQLite or PostgreSQL")
    assert outcome("p") == "ok"
    cached = dispatch._cache
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "project.settings", "PYTHONPATH": str(REPO)}
    script = "from plugins_app.models import Plugin; Plugin.objects.filter(slug='p').update(enabled=False)"
    subprocess.run([sys.executable, "manage.py", "shell", "-c", script], cwd=REPO, env=env, check=True, timeout=120)
    assert dispatch._cache is cached  # nothing in this process knew
    assert outcome("p") == "PluginDisabled"


# -- scopes -----------------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_scope_pins_versions_against_other_threads(plugin):
    with hooks.scope():
        first = hooks.run("p", "h")
        assert (first.value, first.version) == ("ok", 1)

        def save_two() -> None:
            other = Plugin.objects.get(slug="p")
            other.config = {"answer": "two"}
            other.save()

        elsewhere(save_two)
        again = hooks.run("p", "h")
        assert (again.value, again.version) == ("ok", 1)  # pinned: the same version all along
        elsewhere(lambda: Plugin.objects.filter(slug="p").update(enabled=False))
        assert outcome("p") == "ok"
        # Another thread, outside any scope, sees the changes at once.
        assert elsewhere(lambda: outcome("p")) == "PluginDisabled"
    assert outcome("p") == "PluginDisabled"  # the next scope (here: the next call) sees them
    Plugin.objects.filter(slug="p").update(enabled=True)
    with hooks.scope():
        assert hooks.run("p", "h").version == 2 and outcome("p") == "two"


@pytest.mark.django_db(transaction=True)
def test_a_pinned_version_that_is_not_warm_is_loaded_from_its_revision(plugin):
    """Another process saves mid-request and the pinned version is warm in no sandbox (a
    restart, another sandbox): the scope still runs the version it pinned."""
    from plugins_app.sandbox import pool

    with hooks.scope():
        assert hooks.run("p", "h").value == "ok"

        def save_two() -> None:
            other = Plugin.objects.get(slug="p")
            other.config = {"answer": "two"}
            other.save()

        elsewhere(save_two)
        pool.shutdown_pool()  # version 1 is warm nowhere now
        again = hooks.run("p", "h")
        assert (again.value, again.version) == ("ok", 1)
        # Without a revision of the pinned version (changed by QuerySet.update(), which
        # records none) it cannot be run: the call says so instead of mixing versions.
        elsewhere(lambda: Plugin.objects.get(slug="p").revisions.filter(plugin_version=1).delete())
        pool.shutdown_pool()
        assert outcome("p") == "PluginNotFound"
    assert outcome("p") == "two"


@pytest.mark.django_db(transaction=True)
def test_a_scope_sees_its_own_saves(plugin):
    with hooks.scope():
        assert outcome("p") == "ok"
        plugin.config = {"answer": "mine"}
        plugin.save()
        assert outcome("p") == "mine"
        Plugin.objects.filter(pk=plugin.pk).update(enabled=False)
        assert outcome("p") == "PluginDisabled"
        with transaction.atomic():
            Plugin.objects.filter(pk=plugin.pk).update(enabled=True)
            assert outcome("p") == "mine"  # its own uncommitted change...
            assert elsewhere(lambda: outcome("p")) == "PluginDisabled"  # ...seen by no one else yet
        assert elsewhere(lambda: outcome("p")) == "mine"


@pytest.mark.django_db(transaction=True)
def test_a_rolled_back_change_is_never_shared(plugin):
    class Undo(Exception):
        pass

    assert outcome("p") == "ok"
    with pytest.raises(Undo), transaction.atomic():
        Plugin.objects.filter(slug="p").update(enabled=False)
        assert outcome("p") == "PluginDisabled"  # loaded with the uncommitted generation...
        raise Undo
    # ...which another process's next commit reaches: this process must not trust the
    # rolled-back state under that number.
    raw_sql_elsewhere(f"UPDATE {Plugin._meta.db_table} SET priority = 7 WHERE slug = %s", ["p"], bump=True)
    assert outcome("p") == "ok"


@pytest.mark.django_db(transaction=True)
def test_nested_scopes_reuse_the_outer_one(plugin):
    with hooks.scope():
        assert outcome("p") == "ok"
        with hooks.scope():
            elsewhere(lambda: Plugin.objects.filter(slug="p").update(enabled=False))
            assert outcome("p") == "ok"
        assert outcome("p") == "ok"
    with hooks.scope():
        assert outcome("p") == "PluginDisabled"


@pytest.mark.django_db(transaction=True)
def test_a_scope_loads_nothing_until_its_first_call(plugin, django_assert_num_queries):
    with django_assert_num_queries(0), hooks.scope():
        pass


def test_no_plugin_dispatch_inside_a_scope_runs_no_query(plugin, django_assert_num_queries):
    with hooks.scope():
        hooks.do_action("nothing")  # pins the state
        with django_assert_num_queries(0):
            assert hooks.do_action("nothing") == []
            assert hooks.apply_filters("nothing", 41, "x") == 41


def test_a_warm_call_inside_a_scope_runs_no_query(plugin, django_assert_num_queries):
    with hooks.scope():
        assert outcome("p") == "ok"  # pins the state, warms the runtime
        with django_assert_num_queries(0):
            assert outcome("p") == "ok"
            assert [r.value for r in hooks.do_action("h")] == ["ok"]
            assert hooks.apply_filters("h", None) == "ok"


def test_grants_come_from_the_scope(make_plugin):
    counter = make_plugin(COUNTER, slug="counter")
    PluginGrant(plugin=counter, model="auth.User", read=["id"]).save()
    User.objects.create_user("someone")
    with CaptureQueriesContext(connection) as unscoped:
        assert hooks.call("counter", "users") == 1
    assert table_queries(unscoped, PluginGrant._meta.db_table)  # outside a scope: read per call
    with hooks.scope():
        assert hooks.call("counter", "users") == 1
        with CaptureQueriesContext(connection) as scoped:
            assert hooks.call("counter", "users") == 1
    assert table_queries(scoped, "plugins_app_") == []
    assert len(scoped.captured_queries) == 1  # the plugin's own db.count


@pytest.mark.django_db(transaction=True)
def test_grant_changes_invalidate(make_plugin):
    counter = make_plugin(COUNTER, slug="counter")
    with pytest.raises(PluginError, match="may not"):
        hooks.call("counter", "users")
    before = generation()
    grant = PluginGrant(plugin=counter, model="auth.User", read=["id"])
    grant.save()
    assert generation() > before
    with hooks.scope():
        assert hooks.call("counter", "users") == 0
    before = generation()
    grant.delete()
    assert generation() > before
    with hooks.scope(), pytest.raises(PluginError, match="may not"):
        hooks.call("counter", "users")
    # Bulk operations on grants, which send no signal and bump no version.
    PluginGrant.objects.bulk_create([PluginGrant(plugin=counter, model="auth.User", read=["id"])])
    assert hooks.call("counter", "users") == 0
    before = generation()
    PluginGrant.objects.filter(plugin=counter).update(model="demo.Note")
    assert generation() == before + 1
    with pytest.raises(PluginError, match="may not"):
        hooks.call("counter", "users")
    before = generation()
    PluginGrant.objects.filter(plugin=counter).delete()
    assert generation() == before + 1


# -- invalidation by every path that changes dispatch ----------------------------------------------


def _warm_then(change: Callable[[], Any], expected: str, slug: str = "p") -> None:
    """Warm this process's cache, make ``change``, and check that the generation moved
    (so other processes revalidate) and the next call sees the change."""
    outcome(slug)
    assert dispatch._cache is not None
    before = generation()
    change()
    assert generation() is not None and generation() != before
    assert outcome(slug) == expected


@pytest.mark.django_db(transaction=True)
def test_queryset_updates_invalidate(plugin):
    _warm_then(lambda: Plugin.objects.filter(slug="p").update(enabled=False), "PluginDisabled")
    _warm_then(lambda: Plugin.objects.filter(slug="p").update(enabled=True), "ok")
    _warm_then(lambda: Plugin.objects.filter(slug="p").update(paused_at=timezone.now()), "PluginPaused")
    _warm_then(lambda: breaker.resume("p"), "ok")
    _warm_then(lambda: Plugin.objects.filter(slug="p").delete(), "PluginNotFound")


@pytest.mark.django_db(transaction=True)
def test_writes_dispatch_does_not_read_leave_the_generation_alone(plugin):
    outcome("p")
    before = generation()
    Plugin.objects.filter(slug="p").update(name="Renamed", updated_at=timezone.now())
    Plugin.objects.filter(slug="missing").update(enabled=False)  # no row changed
    assert generation() == before


@pytest.mark.django_db(transaction=True)
def test_bulk_and_instance_writes_invalidate(plugin):
    def bulk_update() -> None:
        plugin.enabled = False
        Plugin.objects.bulk_update([plugin], ["enabled"])

    _warm_then(bulk_update, "PluginDisabled")
    _warm_then(lambda: Plugin.objects.filter(slug="p").update(enabled=True), "ok")
    _warm_then(lambda: plugin.hook_index.all().delete(), "ok")  # a direct call does not use the index...
    assert hooks.do_action("h") == []  # ...actions do
    _warm_then(lambda: Plugin.objects.get(slug="p").delete(), "PluginNotFound")


@pytest.mark.django_db(transaction=True)
def test_hook_index_changes_invalidate_actions(plugin, make_plugin):
    assert [r.slug for r in hooks.do_action("h")] == ["p"]
    make_plugin(SOURCE, slug="q", priority=1)
    assert [r.slug for r in hooks.do_action("h")] == ["q", "p"]
    Plugin.objects.filter(slug="q").update(priority=500)
    assert [r.slug for r in hooks.do_action("h")] == ["p", "q"]
    q = Plugin.objects.get(slug="q")
    q.source = "const plugin = { other() { return 1; } };"
    q.full_clean()
    q.save()
    assert [r.slug for r in hooks.do_action("h")] == ["p"]


@pytest.mark.django_db(transaction=True)
def test_loaddata_invalidates(plugin):
    outcome("p")
    data = serializers.serialize("json", [Plugin.objects.get(slug="p")]).replace('"enabled": true', '"enabled": false')
    before = generation()
    for obj in serializers.deserialize("json", data):
        obj.save()  # a raw save, as loaddata does
    assert generation() != before
    assert outcome("p") == "PluginDisabled"


@pytest.mark.django_db(transaction=True)
def test_admin_actions_invalidate(plugin, admin_client):
    url = reverse("admin:plugins_app_plugin_changelist")

    def action(name: str) -> Callable[[], None]:
        def post() -> None:
            response = admin_client.post(url, {"action": name, "_selected_action": [plugin.pk]})
            assert response.status_code == 302

        return post

    _warm_then(action("disable_plugins"), "PluginDisabled")
    _warm_then(action("enable_plugins"), "ok")
    Plugin.objects.filter(slug="p").update(paused_at=timezone.now(), consecutive_failures=5)
    _warm_then(action("resume_plugins"), "ok")


@pytest.mark.django_db(transaction=True)
def test_the_plugins_command_invalidates(plugin):
    _warm_then(lambda: plugins_command("disable", "p"), "PluginDisabled")
    _warm_then(lambda: plugins_command("enable", "p"), "ok")
    Plugin.objects.filter(slug="p").update(paused_at=timezone.now(), consecutive_failures=5)
    _warm_then(lambda: plugins_command("resume", "p"), "ok")


# -- the circuit breaker across the cache ------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_breaker_pauses_and_resets_across_the_cache(plugin, make_plugin, settings):
    settings.PLUGINS_APP = {"BREAKER_THRESHOLD": 3}
    make_plugin("const plugin = { h() { return 'steady'; } };", slug="steady")

    def failures() -> int:
        return Plugin.objects.get(slug="p").consecutive_failures

    with hooks.scope():
        for _ in range(2):
            assert outcome("p", True) == "PluginScriptError"
        assert failures() == 2
        assert outcome("p") == "ok"  # the scope saw the count it wrote: the success resets it
        assert failures() == 0
        for _ in range(3):
            hooks.do_action("h", True)
        assert Plugin.objects.get(slug="p").is_paused
        assert outcome("p") == "PluginPaused"  # seen in the same scope
        assert [r.slug for r in hooks.do_action("h")] == ["steady"]
    breaker.resume("p")
    assert outcome("p") == "ok"
    # Another process counted failures (and moved the generation): a success here resets them.
    outcome("p")
    raw_sql_elsewhere(f"UPDATE {Plugin._meta.db_table} SET consecutive_failures = 2 WHERE slug = %s", ["p"], bump=True)
    with hooks.scope():
        assert outcome("p") == "ok"
    assert failures() == 0


@pytest.mark.django_db(transaction=True)
def test_only_a_plugins_first_failure_invalidates_the_cache(plugin, settings):
    """A flaky plugin must not make every process reload its state after each failure:
    dispatch only needs to know whether the plugin is failing."""
    settings.PLUGINS_APP = {"BREAKER_THRESHOLD": 10}
    assert outcome("p") == "ok"
    before = generation()
    assert outcome("p", True) == "PluginScriptError"
    first = generation()
    assert first != before
    for _ in range(3):
        assert outcome("p", True) == "PluginScriptError"
    assert generation() == first and Plugin.objects.get(slug="p").consecutive_failures == 4
    assert outcome("p") == "ok"  # the reset is a change again
    assert generation() != first and Plugin.objects.get(slug="p").consecutive_failures == 0


@pytest.mark.django_db(transaction=True)
def test_a_pause_by_another_process_is_seen_at_the_next_scope(plugin):
    with hooks.scope():
        assert outcome("p") == "ok"
        raw_sql_elsewhere(
            f"UPDATE {Plugin._meta.db_table} SET paused_at = %s WHERE slug = %s", [timezone.now(), "p"], bump=True
        )
        assert outcome("p") == "ok"
    with hooks.scope(), pytest.raises(PluginPaused):
        hooks.call("p", "h")


# -- the middleware -------------------------------------------------------------------------------


def _disable_elsewhere() -> None:
    elsewhere(lambda: Plugin.objects.filter(slug="p").update(enabled=False))


def scoped_view(request: HttpRequest) -> JsonResponse:
    first = outcome("p")
    _disable_elsewhere()
    return JsonResponse({"first": first, "second": outcome("p")})


async def ascoped_view(request: HttpRequest) -> JsonResponse:
    async def call() -> Any:
        try:
            return await hooks.acall("p", "h")
        except PluginError as exc:
            return type(exc).__name__

    first = await call()
    await sync_to_async(_disable_elsewhere, thread_sensitive=False)()
    return JsonResponse({"first": first, "second": await call()})


urlpatterns = [path("scoped", scoped_view), path("ascoped", ascoped_view)]


@pytest.mark.urls(__name__)
@pytest.mark.django_db(transaction=True)
def test_the_middleware_gives_each_request_a_scope(plugin, client):
    assert client.get("/scoped").json() == {"first": "ok", "second": "ok"}
    assert client.get("/scoped").json() == {"first": "PluginDisabled", "second": "PluginDisabled"}


@pytest.mark.urls(__name__)
@pytest.mark.django_db(transaction=True)
def test_the_middleware_gives_each_async_request_a_scope(plugin, async_client):
    assert asyncio.run(async_client.get("/ascoped")).json() == {"first": "ok", "second": "ok"}
    assert asyncio.run(async_client.get("/ascoped")).json() == {"first": "PluginDisabled", "second": "PluginDisabled"}


def test_the_demo_settings_use_the_middleware(settings):
    assert settings.MIDDLEWARE[0] == "plugins_app.middleware.PluginScopeMiddleware"


# -- a generation held in a cache ----------------------------------------------------------------------


@pytest.fixture
def cache_generation(settings, tmp_path):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "shared": {"BACKEND": "django.core.cache.backends.filebased.FileBasedCache", "LOCATION": str(tmp_path)},
    }
    settings.PLUGINS_APP = {"DISPATCH_GENERATION_CACHE": "shared"}
    from django.core.cache import caches

    return caches["shared"]


@pytest.mark.django_db(transaction=True)
def test_a_generation_in_a_cache(make_plugin, cache_generation):
    make_plugin(SOURCE, slug="p")
    value = cache_generation.get(dispatch.CACHE_KEY)
    assert value is not None
    assert outcome("p") == "ok"
    # Another process: a raw change, then its generation move after the commit.
    disable_by_raw_sql("p", bump=False)
    assert outcome("p") == "ok"
    cache_generation.incr(dispatch.CACHE_KEY)
    assert outcome("p") == "PluginDisabled"
    # A change here moves the cached generation only when it commits, and is seen here at once.
    with transaction.atomic():
        Plugin.objects.filter(slug="p").update(enabled=True)
        assert cache_generation.get(dispatch.CACHE_KEY) == value + 1
        assert outcome("p") == "ok"
    assert cache_generation.get(dispatch.CACHE_KEY) == value + 2
    assert not DispatchGeneration.objects.exists()  # the database row is not used
    cache_generation.delete(dispatch.CACHE_KEY)  # evicted: every process reloads
    disable_by_raw_sql("p", bump=False)
    assert outcome("p") == "PluginDisabled"


# -- the system check -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "backend, ids",
    [
        ("django.core.cache.backends.locmem.LocMemCache", ["plugins_app.E050"]),
        ("django.core.cache.backends.dummy.DummyCache", ["plugins_app.E050"]),
        ("django.core.cache.backends.filebased.FileBasedCache", ["plugins_app.W050"]),
        ("django.core.cache.backends.redis.RedisCache", []),
        ("django.core.cache.backends.db.DatabaseCache", []),
    ],
)
def test_check_of_the_generation_cache(settings, backend, ids):
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "gen": {"BACKEND": backend, "LOCATION": "/tmp/x"},
    }
    settings.PLUGINS_APP = {"DISPATCH_GENERATION_CACHE": "gen"}
    messages = check_dispatch_cache()
    assert [m.id for m in messages] == ids
    if ids == ["plugins_app.E050"]:
        assert "each process holds alone" in messages[0].msg and "None" in messages[0].hint
        assert check_dispatch_cache in checks.registry.registry.registered_checks


def test_check_of_an_unknown_cache_alias_and_the_default(settings):
    settings.PLUGINS_APP = {"DISPATCH_GENERATION_CACHE": "nowhere"}
    assert [m.id for m in check_dispatch_cache()] == ["plugins_app.E050"]
    settings.PLUGINS_APP = {}
    assert check_dispatch_cache() == []


# -- the state itself ---------------------------------------------------------------------------------


def test_the_state_matches_the_queries_it_replaces(make_plugin):
    make_plugin(SOURCE, slug="b", priority=20)
    make_plugin(SOURCE, slug="a", priority=20)
    make_plugin(SOURCE, slug="z", priority=1)
    make_plugin(SOURCE, slug="off", enabled=False)
    paused = make_plugin(SOURCE, slug="paused")
    Plugin.objects.filter(pk=paused.pk).update(paused_at=timezone.now())
    state = dispatch.load()
    assert list(state.rows_for_hook["h"]) == Plugin.objects.dispatch_rows_for_hook("h")
    assert [row.slug for row in state.rows_for_hook["h"]] == ["z", "a", "b"]
    for slug in ("a", "b", "z", "off", "paused"):
        assert state.rows_by_slug[slug] == Plugin.objects.dispatch_row(slug)
    with pytest.raises(TypeError):
        state.rows_by_slug["new"] = state.rows_by_slug["a"]  # type: ignore[index]


def test_the_cache_is_dropped_in_a_forked_child():
    dispatch._cache = dispatch.DispatchState(None, {}, {}, {})
    dispatch._after_fork_in_child()
    assert dispatch._cache is None and not dispatch._lock.locked()
