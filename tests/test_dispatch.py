"""Actions, filters, priorities, the circuit breaker and nested hooks (real V8)."""

from __future__ import annotations

import asyncio

import pytest
from django.db.models.signals import post_save

from plugins_app import breaker, hooks
from plugins_app.exceptions import (
    HookDepthExceeded,
    HookNotFound,
    PluginDataError,
    PluginPaused,
    PluginScriptError,
    PluginTimeout,
)
from plugins_app.models import Plugin, PluginGrant
from project.demo.models import Note


def filter_plugin(expr: str) -> str:
    return f"const plugin = {{ title(value, suffix) {{ return {expr}; }} }};"


@pytest.fixture
def filters(make_plugin):
    make_plugin(filter_plugin("value + ' B' + (suffix || '')"), slug="b", priority=20)
    make_plugin(filter_plugin("value + ' A'"), slug="a", priority=10)
    make_plugin(filter_plugin("value + ' C'"), slug="c", priority=20)  # tie with b: slug decides
    make_plugin(filter_plugin("value + ' off'"), slug="off", enabled=False)
    make_plugin("const plugin = { other() { return 1; } };", slug="unrelated")


def test_filters_run_in_priority_order_then_slug(filters):
    assert hooks.apply_filters("title", "X") == "X A B C"
    assert hooks.apply_filters("title", "X", "!") == "X A B! C"
    assert hooks.apply_filters("no-such-hook", "X") == "X"


def test_failing_filter_is_skipped_and_fail_closed_raises(filters, make_plugin):
    make_plugin("const plugin = { title() { throw new Error('broken filter'); } };", slug="bb", priority=20)
    make_plugin("const plugin = { title() { while (true) {} } };", slug="slow", priority=15, timeout_ms=100)
    errors: list = []
    assert hooks.apply_filters("title", "X", errors=errors) == "X A B C"
    assert [(e.slug, type(e.error).__name__) for e in errors] == [
        ("slow", "PluginTimeout"),
        ("bb", "PluginScriptError"),
    ]
    with pytest.raises(PluginTimeout):
        hooks.apply_filters("title", "X", fail_closed=True)


def test_actions_collect_results_and_errors_robustly(make_plugin):
    make_plugin("const plugin = { saved(n) { log('saw', n); return n * 2; } };", slug="one", priority=1)
    make_plugin("const plugin = { saved() { throw new TypeError('nope'); } };", slug="two", priority=2)
    make_plugin("const plugin = { saved(n) { return n + 1; } };", slug="three", priority=3)
    results = hooks.do_action("saved", 10)
    assert [(r.slug, r.ok, r.value) for r in results] == [("one", True, 20), ("two", False, None), ("three", True, 11)]
    assert isinstance(results[1].error, PluginScriptError) and results[1].error.name == "TypeError"
    assert [line.message for line in results[0].logs] == ["saw 10"]


@pytest.mark.django_db(transaction=True)
def test_async_twins(make_plugin):
    make_plugin(filter_plugin("value + 1"), slug="inc")

    async def main() -> tuple:
        return await hooks.aapply_filters("title", 1), await hooks.ado_action("title", 5)

    value, results = asyncio.run(main())
    assert value == 2 and [(r.slug, r.value) for r in results] == [("inc", 6)]


@pytest.mark.django_db
def test_breaker_pauses_after_consecutive_failures_and_resume(make_plugin, settings):
    settings.PLUGINS_APP = {"BREAKER_THRESHOLD": 3}
    make_plugin("const plugin = { h(fail) { if (fail) throw new Error('bad'); return 'ok'; } };", slug="flaky")
    make_plugin("const plugin = { h() { return 'steady'; } };", slug="steady")
    for _ in range(2):
        hooks.do_action("h", True)
    assert hooks.call("flaky", "h", False) == "ok"  # a success resets the count
    assert Plugin.objects.get(slug="flaky").consecutive_failures == 0
    for _ in range(3):
        hooks.do_action("h", True)
    flaky = Plugin.objects.get(slug="flaky")
    assert flaky.is_paused and "3 consecutive failures" in flaky.paused_reason and "bad" in flaky.paused_reason
    assert [r.slug for r in hooks.do_action("h", False)] == ["steady"]  # skipped by dispatch
    with pytest.raises(PluginPaused):
        hooks.call("flaky", "h", False)
    assert breaker.resume("flaky") is True
    assert breaker.resume("flaky") is False
    assert [r.value for r in hooks.do_action("h", False)] == ["ok", "steady"]


def test_caller_mistakes_do_not_count_towards_the_breaker(make_plugin, settings):
    settings.PLUGINS_APP = {"BREAKER_THRESHOLD": 1}
    make_plugin("const plugin = { h(x) { return x; } };", slug="p")
    for _ in range(3):
        with pytest.raises(HookNotFound):
            hooks.call("p", "missing")
        with pytest.raises(PluginDataError):
            hooks.call("p", "h", object())
    assert not Plugin.objects.get(slug="p").is_paused


CHAIN = """
const plugin = {
  start(title) { return db.create("demo.Note", { author: config.author, title }); },
};
"""


@pytest.fixture
def chain(make_plugin, db):
    """Plugin `outer` creates a Note through db; a post_save receiver calls `inner`."""
    from django.contrib.auth.models import User

    user = User.objects.create_user("writer")
    outer = make_plugin(CHAIN, slug="outer", config={"author": user.pk})
    PluginGrant(plugin=outer, model="demo.Note", read=["id", "title"], create=["author", "title"]).save()
    make_plugin("const plugin = { noted(title) { return 'inner saw ' + title; } };", slug="inner")
    seen: list = []

    def receiver(sender, instance, created, **kwargs):
        seen.append(hooks.call("inner", "noted", instance.title))

    post_save.connect(receiver, sender=Note, dispatch_uid="test-chain")
    yield seen
    post_save.disconnect(dispatch_uid="test-chain", sender=Note)


@pytest.mark.parametrize("pool_size", [1, 2])
def test_hook_triggering_a_hook_completes_with_any_pool_size(chain, settings, pool_size):
    settings.PLUGINS_APP = {"POOL_SIZE": pool_size, "CHECKOUT_TIMEOUT_SECONDS": 2}
    created = hooks.call("outer", "start", "hello")
    assert created["title"] == "hello"
    assert chain == ["inner saw hello"]


def test_recursive_hooks_stop_at_the_depth_limit(make_plugin, settings, db):
    from django.contrib.auth.models import User

    settings.PLUGINS_APP = {"POOL_SIZE": 1, "MAX_HOOK_DEPTH": 3}
    user = User.objects.create_user("loop")
    # Each nested level starts a sandbox of its own (POOL_SIZE 1) inside the outer call's
    # time: a generous limit, so that a loaded machine tests the depth, not the clock.
    loop = make_plugin(CHAIN, slug="loop", config={"author": user.pk}, timeout_ms=10000)
    PluginGrant(plugin=loop, model="demo.Note", read=["id", "title"], create=["author", "title"]).save()
    depth_errors: list = []

    def receiver(sender, instance, **kwargs):
        try:
            hooks.call("loop", "start", instance.title + "+")
        except HookDepthExceeded as exc:
            depth_errors.append(exc)

    post_save.connect(receiver, sender=Note, dispatch_uid="test-loop")
    try:
        hooks.call("loop", "start", "x")
    finally:
        post_save.disconnect(dispatch_uid="test-loop", sender=Note)
    assert len(depth_errors) == 1
    assert sorted(Note.objects.values_list("title", flat=True)) == ["x", "x+", "x++"]
