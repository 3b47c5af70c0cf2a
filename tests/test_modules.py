"""ES module plugins (issue 11, item 3): detection, `plugin:host`, refused imports, errors.

Real V8 in real sandbox processes, through the app: install (validation) and call.
"""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from plugins_app import hooks
from plugins_app.exceptions import PluginError, PluginMemoryError, PluginScriptError, PluginTimeout

BYSTANDER = "const plugin = { hi(n) { return `hi ${n}`; } };"


def test_default_export_object_is_the_plugin(make_plugin):
    plugin = make_plugin(
        'import { config, log } from "plugin:host";\n'
        "export default {\n"
        "  greet(name) { log(`Greeting ${name}`); return `Hello, ${name}! v${config.version} ${this.suffix()}`; },\n"
        "  suffix() { return '!'; },\n"
        "};\n",
        slug="esm",
        config={"version": "2"},
    )
    assert sorted(plugin.hooks) == ["greet", "suffix"]
    result = hooks.run("esm", "greet", "Ada")
    assert result.value == "Hello, Ada! v2 !"
    assert [(line.level, line.message) for line in result.logs] == [("info", "Greeting Ada")]


def test_named_function_exports_are_the_hooks(make_plugin):
    plugin = make_plugin(
        "import host from 'plugin:host';\n"
        "export const LIMIT = 3;\n"
        "export function double(x) { return 2 * x; }\n"
        "export async function later(x) { await null; return host.config.k + x; }\n"
        "const hidden = () => 1;\n",
        slug="named",
        config={"k": 10},
    )
    assert sorted(plugin.hooks) == ["double", "later"]
    assert hooks.call("named", "double", 21) == 42
    assert hooks.call("named", "later", 1) == 11


def test_a_module_without_imports_is_detected(make_plugin):
    make_plugin("export default { hi: () => 'hi' };", slug="plain")
    assert hooks.call("plain", "hi") == "hi"


def test_esbuild_style_bundle_with_export_as_default(make_plugin):
    # What `esbuild --bundle --format=esm` emits for `export default {...}`.
    source = (
        "// bundle\n"
        "var __defProp = Object.defineProperty;\n"
        "function helper(s) { return s.toUpperCase(); }\n"
        "var plugin_default = {\n"
        "  shout(s) { return helper(s); }\n"
        "};\n"
        "export {\n"
        "  plugin_default as default\n"
        "};\n"
    )
    plugin = make_plugin(source, slug="bundle")
    assert plugin.hooks == ["shout"]
    assert hooks.call("bundle", "shout", "hey") == "HEY"


@pytest.mark.parametrize(
    "source",
    [
        'const s = "export default {}"; // import x from "y"\nconst plugin = { f() { return s; } };',
        "/* export default { f() {} } */ const plugin = { f() { return 'export default {}'; } };",
        "const plugin = { f() { return `import ${1} from 'x'`; } };",
    ],
)
def test_strings_and_comments_do_not_make_a_module(make_plugin, source):
    make_plugin(source, slug="script")
    assert "default" in str(hooks.call("script", "f")) or "import" in str(hooks.call("script", "f"))


def test_all_host_names_are_importable(make_plugin):
    make_plugin(
        'import host, { config, log, db, storage } from "plugin:host";\n'
        "export default { same() { return [host.config === config, host.log === log, host.db === db,"
        " host.storage === storage, host === globalThis.host, Object.isFrozen(host)]; } };\n",
        slug="names",
    )
    assert hooks.call("names", "same") == [True] * 6


def test_module_scope_is_strict_and_private(make_plugin):
    make_plugin(
        "const secret = 1;\n"
        "export default { f() { return [typeof globalThis.secret, (function () { return this; })() === undefined]; } };\n",
        slug="strict",
    )
    assert hooks.call("strict", "f") == ["undefined", True]


# -- install-time errors -------------------------------------------------------------------


def refused(make_plugin, source, slug="bad"):
    with pytest.raises(ValidationError) as info:
        make_plugin(source, slug=slug)
    return " ".join(info.value.message_dict["source"])


@pytest.mark.parametrize(
    "specifier",
    [
        "./helpers.js",
        "../x.js",
        "/abs.js",
        "lodash",
        "node:fs",
        "npm:left-pad",
        "data:text/javascript,export default 1",
        "https://example.com/x.js",
        "file:///etc/passwd",
        "plugin:module",
        "plugin:entry",
        "ext:core/mod.js",
    ],
)
def test_static_import_of_anything_but_plugin_host_is_refused_naming_it(make_plugin, specifier):
    import json

    message = refused(
        make_plugin, f"import x from {json.dumps(specifier)};\nexport default {{ f() {{ return x; }} }};\n"
    )
    assert json.dumps(specifier) in message
    assert "plugin:host" in message


def test_syntax_error_in_a_module_keeps_line_and_column(make_plugin):
    message = refused(make_plugin, "import { log } from 'plugin:host';\nexport default {\n  f() { return 1 +; },\n};\n")
    assert message.startswith("SyntaxError: ") and "(line 3, column" in message


def test_importing_a_name_the_host_does_not_export_is_a_syntax_error(make_plugin):
    message = refused(make_plugin, "import { fetch } from 'plugin:host';\nexport default { f() {} };\n")
    assert "SyntaxError" in message and "fetch" in message and "(line 1, column" in message


def test_top_level_throw_keeps_line_and_column(make_plugin):
    message = refused(make_plugin, "export default { f() {} };\n\n   throw new TypeError('nope');\n")
    assert message == "TypeError: nope (line 3, column 10)"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("export const x = 1;", "The module exports no functions (hooks)"),
        ("export default 42;", "The module's default export must be an object holding the hooks, not number"),
        ("export default null;", "not null"),
        ("export default { x: 1 };", "The module's default export holds no functions (hooks)"),
        ("import 'plugin:host';", "The module exports no functions (hooks)"),
    ],
)
def test_module_without_hooks_is_refused_clearly(make_plugin, source, expected):
    assert expected in refused(make_plugin, source)


def test_hook_errors_in_a_module_keep_line_and_column(make_plugin):
    make_plugin("export default {\n  f() {\n    throw new RangeError('bad');\n  },\n};\n", slug="thrower")
    with pytest.raises(PluginScriptError) as info:
        hooks.call("thrower", "f")
    err = info.value
    assert (err.name, err.js_message, err.line, err.column) == ("RangeError", "bad", 3, 11)
    assert "thrower.js:3:11" in err.stack and "jsrun://" not in err.stack


# -- top-level code under the limits --------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "error"),
    [
        ("await new Promise(() => {});", PluginTimeout),
        ("while (true) {}", PluginTimeout),
        ("await null; while (true) {}", PluginTimeout),
        ("const a = []; while (true) a.push({ s: Math.random() + 'xxxxxxxxxxxxxxxxxxxxxxxx' });", PluginMemoryError),
    ],
)
def test_module_top_level_is_bounded_and_the_sandbox_keeps_working(make_plugin, body, error):
    make_plugin(BYSTANDER, slug="bystander")
    # A generous time limit for the bomb, so that the memory limit is what stops it.
    timeout = 10_000 if error is PluginMemoryError else 300
    plugin = make_plugin(
        "export default { f() { return 1; } };", slug="runaway", timeout_ms=timeout, memory_limit_mb=32
    )
    # Installed while harmless; the new top-level code runs on its next cold start.
    plugin.source = f"export default {{ f() {{ return 1; }} }};\n{body}\n"
    with pytest.raises(ValidationError):
        plugin.full_clean()
    plugin._validated_fingerprint = plugin.compute_fingerprint()  # as if it had passed
    plugin.save()
    with pytest.raises(error):
        hooks.call("runaway", "f")
    assert hooks.call("bystander", "hi", 1) == "hi 1"


# -- import() ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "named"),
    [
        ("import('node:fs')", 'import("node:fs") at line 1'),
        ("import('./x.js')", 'import("./x.js")'),
        ("import('data:text/javascript,export default 1')", 'import("data:text/javascript,export default 1")'),
        ("import('ext:core/mod.js')", 'import("ext:core/mod.js")'),
        ("import('plugin:module')", 'import("plugin:module")'),
        ("import(`jsrun://static/plugin:entry`)", 'import("jsrun://static/plugin:entry")'),
        ("import(['plugin', 'entry'].join(':'))", "import() of a computed specifier"),
        ("import('plugin:h\\u006fst')", "import('plugin:h\\u006fst')"),  # escapes: not decoded, shown as written
    ],
)
@pytest.mark.parametrize("kind", ["script", "module"])
def test_import_calls_are_refused_at_install_naming_them(make_plugin, expression, named, kind):
    body = "{ f() { return " + expression + "; } }"
    source = f"const plugin = {body};" if kind == "script" else f"export default {body};"
    message = refused(make_plugin, source)
    assert named in message
    if kind == "module":
        assert 'A plugin can import only "plugin:host"' in message
    else:
        assert "classic script cannot import anything" in message and "`host` global" in message


@pytest.mark.parametrize(
    "source",
    [
        "const plugin = { f() { return 'import(\\'node:fs\\')'; } };",  # in a string
        "// import('node:fs')\nconst plugin = { f() { return 1; } };",  # in a comment
        "const plugin = { f() { return /import\\('x'\\)/.source; } };",  # in a regular expression
        "const plugin = { f() { return `import('x')`; } };",  # in a template
        "export default { async f() { return (await import('plugin:host')).config === config; } };",
    ],
)
def test_what_only_looks_like_an_import_is_not_refused(make_plugin, source):
    make_plugin(source, slug="lookalike")
    assert hooks.call("lookalike", "f") in (1, True) or "import" in hooks.call("lookalike", "f")


@pytest.mark.parametrize("kind", ["script", "module"])
def test_an_import_hidden_from_the_install_check_never_loads_anything(make_plugin, kind):
    body = (
        '{ f() { return eval("imp" + "ort(\'node:fs\')")'
        ".then((m) => ['loaded', Object.keys(m)], (e) => ['refused', String(e)]); },"
        " ok() { return 'ok'; } }"
    )
    source = f"const plugin = {body};" if kind == "script" else f"export default {body};"
    make_plugin(source, slug="importer", timeout_ms=500)
    try:
        outcome = hooks.call("importer", "f")
    except PluginError as exc:  # the rejection is never delivered within the call: it never settles
        assert "never settles" in str(exc) or "time limit" in str(exc)
    else:
        assert outcome[0] == "refused" and "plugin:host" in outcome[1]
    assert hooks.call("importer", "ok") == "ok"


def test_dynamic_import_of_plugin_host_in_a_module_gives_the_same_api(make_plugin):
    make_plugin(
        "import { log } from 'plugin:host';\n"
        "export default { async f() { const m = await import('plugin:host'); m.log('dyn'); return m.log === log && m.default === host; } };\n",
        slug="dyn",
    )
    result = hooks.run("dyn", "f")
    assert result.value is True and [line.message for line in result.logs] == ["dyn"]


def test_a_module_cannot_reach_another_plugin(make_plugin):
    make_plugin("export default { secret() { return 's3cret'; } };", slug="victim")
    make_plugin(
        "export default { async f() {\n"
        "  const seen = [typeof globalThis.plugin, Object.keys(globalThis).filter((k) => k.includes('plugin'))];\n"
        "  for (const s of ['victim', 'plugin:victim', 'jsrun://static/plugin:module']) {\n"
        "    eval('import(s)').then(() => seen.push('loaded ' + s), () => {});  // hidden from the install check\n"
        "  }\n"
        "  await null; await null;\n"
        "  return seen;\n"
        "} };\n",
        slug="prober",
    )
    assert hooks.call("prober", "f") == ["undefined", []]
    assert hooks.call("victim", "secret") == "s3cret"
