"""hooks.call / acall end to end through real sandbox processes (real V8, no mocks)."""

from __future__ import annotations

import asyncio
import json

import pytest

from plugins_app import hooks
from plugins_app.exceptions import (
    HookNotFound,
    PluginDataError,
    PluginDisabled,
    PluginError,
    PluginNotFound,
    PluginScriptError,
)

ECHO = "const plugin = { echo(...args) { return args; }, one(x) { return x; } };"

SHAPES = [
    None,
    True,
    False,
    0,
    -17,
    3.5,
    2**53 - 1,
    "",
    "quote \" and ' and \\ backslash",
    "`backtick` ${injected} ${1+1}",
    "'); throw new Error('pwned'); ('",
    "unicode: Grüße, 日本語, emoji 🎉, rtl \u202e, line sep \u2028 para \u2029",
    "</script><script>alert(1)</script>",
    [],
    {},
    {"nested": {"list": [1, "two", None, {"deep": [True, False]}]}, "key with space": 1},
    [[[[[]]]]],
]


def test_greeter_greets_with_config_and_log(greeter):
    result = hooks.run("greeter", "greet", "World")
    assert result.value == "Hello, World! App version: 1.0.0"
    assert [(line.level, line.message) for line in result.logs] == [("info", "Greeting World")]
    assert hooks.call("greeter", "farewell", "John Doe") == "Goodbye, John Doe!"


@pytest.mark.parametrize("value", SHAPES, ids=range(len(SHAPES)))
def test_arguments_arrive_unchanged(make_plugin, value):
    make_plugin(ECHO, slug="echo")
    assert hooks.call("echo", "one", value) == value


def test_all_shapes_in_one_call(make_plugin):
    make_plugin(ECHO, slug="echo")
    assert hooks.call("echo", "echo", *SHAPES) == SHAPES


def test_async_hook_result_is_awaited(make_plugin):
    make_plugin("const plugin = { async twice(x) { await null; return x * 2; } };", slug="async")
    assert hooks.call("async", "twice", 21) == 42


def test_undefined_and_functions_become_null(make_plugin):
    make_plugin("const plugin = { nothing() {}, fn() { return () => 1; }, obj() { return {a: undefined, b: 1}; } };")
    assert hooks.call("p", "nothing") is None
    assert hooks.call("p", "fn") is None
    assert hooks.call("p", "obj") == {"b": 1}


def test_dates_cross_as_iso_strings(make_plugin):
    make_plugin("const plugin = { d() { return new Date(Date.UTC(2026, 0, 2, 3, 4, 5)); } };")
    assert hooks.call("p", "d") == "2026-01-02T03:04:05.000Z"


def test_unknown_plugin_disabled_plugin_unknown_hook(make_plugin):
    plugin = make_plugin(ECHO, slug="echo", enabled=False)
    with pytest.raises(PluginNotFound):
        hooks.call("nope", "echo")
    with pytest.raises(PluginDisabled):
        hooks.call("echo", "echo")
    plugin.enabled = True
    plugin.save()
    with pytest.raises(HookNotFound):
        hooks.call("echo", "toString")
    with pytest.raises(HookNotFound):
        hooks.call("echo", "constructor")


def test_every_error_is_a_plugin_error(make_plugin):
    make_plugin(ECHO, slug="echo")
    for exc_type in (PluginNotFound, PluginDisabled, HookNotFound, PluginDataError, PluginScriptError):
        assert issubclass(exc_type, PluginError)


def test_non_json_arguments_are_refused_before_the_sandbox(make_plugin):
    make_plugin(ECHO, slug="echo")
    with pytest.raises(PluginDataError):
        hooks.call("echo", "one", object())
    with pytest.raises(PluginDataError):
        hooks.call("echo", "one", float("nan"))
    with pytest.raises(PluginDataError):
        hooks.call("echo", "one", {1, 2})


def test_argument_size_cap(make_plugin, settings):
    make_plugin(ECHO, slug="echo")
    settings.PLUGINS_APP = {"MAX_ARGS_BYTES": 1000}
    assert hooks.call("echo", "one", "x" * 900) == "x" * 900
    with pytest.raises(PluginDataError):
        hooks.call("echo", "one", "x" * 1000)


def test_huge_result_is_refused_and_plugin_keeps_working(make_plugin):
    make_plugin("const plugin = { big() { return 'x'.repeat(5 * 1024 * 1024); }, ok() { return 1; } };")
    with pytest.raises(PluginDataError, match="size limit"):
        hooks.call("p", "big")
    assert hooks.call("p", "ok") == 1


@pytest.mark.parametrize(
    "expr, js_name",
    [("Symbol('s')", None), ("10n", "TypeError"), ("(() => { const o = {}; o.o = o; return o; })()", "TypeError")],
)
def test_unserializable_results(make_plugin, expr, js_name):
    make_plugin(f"const plugin = {{ bad() {{ return {expr}; }}, ok() {{ return 1; }} }};")
    if js_name is None:
        assert hooks.call("p", "bad") is None  # JSON.stringify(Symbol) is undefined -> null
    else:
        with pytest.raises(PluginScriptError) as info:
            hooks.call("p", "bad")
        assert info.value.name == js_name
    assert hooks.call("p", "ok") == 1


def test_timeout_argument_only_shortens(make_plugin):
    make_plugin("const plugin = { ok() { return 1; } };", timeout_ms=500)
    assert hooks.call("p", "ok", timeout=60) == 1
    with pytest.raises(ValueError):
        hooks.call("p", "ok", timeout=-1)


def test_new_version_is_picked_up_on_next_call(make_plugin):
    plugin = make_plugin("const plugin = { v() { return 1; } };")
    assert hooks.call("p", "v") == 1
    plugin.source = "const plugin = { v() { return 2; } };"
    plugin.full_clean()
    plugin.save()
    assert hooks.call("p", "v") == 2
    plugin.config = {"x": 3}
    plugin.source = "const plugin = { v() { return config.x; } };"
    plugin.full_clean()
    plugin.save()
    assert hooks.call("p", "v") == 3


@pytest.mark.django_db(transaction=True)
def test_acall_from_async_code(make_plugin):
    make_plugin(ECHO, slug="echo")

    async def main() -> list:
        return await asyncio.gather(*(hooks.acall("echo", "one", i) for i in range(10)))

    assert asyncio.run(main()) == list(range(10))


def test_result_is_plain_json_data(make_plugin):
    make_plugin("const plugin = { m() { return { map: new Map([[1, 2]]), arr: new Uint8Array([1, 2]) }; } };")
    value = hooks.call("p", "m")
    assert json.loads(json.dumps(value)) == value
    assert value == {"map": {}, "arr": {"0": 1, "1": 2}}
