"""A plugin's own top-level names (issue 11, item 6): `config`, `log`, `db`, `storage`
and `host` may be declared like any name, and the API stays reachable as `host.*`.

Real V8 in real sandbox processes, through the app.
"""

from __future__ import annotations

import pytest

from plugins_app import hooks
from plugins_app.models import StorageItem
from tests.conftest import GREETER


def test_seed_greeter_keeps_working_unchanged(greeter):
    result = hooks.run("greeter", "greet", "World")
    assert result.value == "Hello, World! App version: 1.0.0"
    assert [(line.level, line.message) for line in result.logs] == [("info", "Greeting World")]
    assert "log(`Greeting ${name}`)" in GREETER  # the seed itself, bare `log` and `config`


def test_var_log_array_behaves_as_in_node(make_plugin):
    make_plugin(
        "var log = [];\n"
        "const plugin = { f() { log.push(1); log.push(2); host.log('still', log.length); return log; } };\n",
        slug="varlog",
    )
    result = hooks.run("varlog", "f")
    assert result.value == [1, 2]
    assert [line.message for line in result.logs] == ["still 2"]


def test_const_config_is_the_plugins_own(make_plugin):
    make_plugin(
        "const config = { retries: 3 };\nconst plugin = { f() { return [config.retries, host.config.site]; } };\n",
        slug="ownconfig",
        config={"site": "demo"},
    )
    assert hooks.call("ownconfig", "f") == [3, "demo"]


def test_function_log_let_db_class_storage_and_const_host(make_plugin):
    make_plugin(
        "function log(x) { return 'mine:' + x; }\n"
        "let db = 1;\n"
        "class storage { static kind() { return 'class'; } }\n"
        "const plugin = { f() { db += 1; return [log('a'), db, storage.kind(), typeof globalThis.host.db.query]; } };\n",
        slug="ownnames",
    )
    assert hooks.call("ownnames", "f") == ["mine:a", 2, "class", "function"]


def test_const_host_of_its_own(make_plugin):
    make_plugin(
        "const host = 'example.com';\n"
        "const plugin = { f() { log('via bare log'); return [host, globalThis.host.config.k]; } };\n",
        slug="ownhost",
        config={"k": 1},
    )
    result = hooks.run("ownhost", "f")
    assert result.value == ["example.com", 1]
    assert [line.message for line in result.logs] == ["via bare log"]


def test_shadowing_then_calling_host_log_and_storage(make_plugin):
    make_plugin(
        "var log = () => 'shadowed'; var storage = null;\n"
        "const plugin = { f() { host.log(log()); host.storage.set('k', 5); return host.storage.get('k'); } };\n",
        slug="shadow",
    )
    result = hooks.run("shadow", "f")
    assert result.value == 5
    assert [line.message for line in result.logs] == ["shadowed"]
    assert StorageItem.objects.filter(plugin__slug="shadow", key="k").exists()


def test_host_is_frozen_and_replacing_it_does_not_touch_the_bridge(make_plugin):
    make_plugin(
        "const plugin = {\n"
        "  f() {\n"
        "    'use strict';\n"
        "    const errors = [];\n"
        "    try { host.log = () => {}; } catch (e) { errors.push(e.name); }\n"
        "    try { host.db = null; } catch (e) { errors.push(e.name); }\n"
        "    const real = host;\n"
        "    globalThis.host = { log() { throw new Error('fake'); } };\n"
        "    real.log('through the real one');\n"
        "    log('bare log still works');\n"
        "    return [errors, Object.isFrozen(real), real.log === log];\n"
        "  },\n"
        "};\n",
        slug="frozen",
    )
    result = hooks.run("frozen", "f")
    assert result.value == [["TypeError", "TypeError"], True, True]
    assert [line.message for line in result.logs] == ["through the real one", "bare log still works"]


def test_replacing_globals_affects_only_the_plugins_own_code(make_plugin):
    make_plugin(
        "globalThis.log = null; config = 'mine'; db = 0;\n"
        "const plugin = { f() { return [log, config, db, typeof host.log]; }, g() { host.log('ok'); return 1; } };\n",
        slug="replacer",
    )
    make_plugin(GREETER, slug="greeter", config={"version": "1.0.0"})
    assert hooks.call("replacer", "f") == [None, "mine", 0, "function"]
    assert hooks.run("replacer", "g").logs[0].message == "ok"
    assert hooks.call("greeter", "greet", "X") == "Hello, X! App version: 1.0.0"


def test_module_may_declare_the_same_names(make_plugin):
    make_plugin(
        "import * as api from 'plugin:host';\n"
        "const config = { mine: true }; let log = []; function db() { return 'db'; } class storage {}\n"
        "export default { f() { log.push(1); api.log('x'); return [config.mine, log, db(), typeof storage, api.config.k]; } };\n",
        slug="modnames",
        config={"k": 2},
    )
    result = hooks.run("modnames", "f")
    assert result.value == [True, [1], "db", "function", 2]
    assert [line.message for line in result.logs] == ["x"]


@pytest.mark.parametrize("name", ["config", "log", "db", "storage", "host", "console"])
def test_api_globals_are_configurable_and_writable_but_not_enumerable(make_plugin, name):
    make_plugin(
        f"const plugin = {{ f() {{ const d = Object.getOwnPropertyDescriptor(globalThis, {name!r});"
        " return [d.writable, d.configurable, d.enumerable]; } };",
        slug="desc",
    )
    assert hooks.call("desc", "f") == [True, True, False]
