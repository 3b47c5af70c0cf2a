"""`manage.py plugins` as operators script it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from plugins_app.models import Plugin

from .cli import run
from .conftest import GREETER


@pytest.fixture
def greeter_file(tmp_path: Path) -> Path:
    path = tmp_path / "greeter.js"
    path.write_text(GREETER)
    return path


@pytest.mark.django_db
def test_install_and_call_the_greeter(greeter_file):
    code, out, _ = run(
        "install", str(greeter_file), "--slug", "greeter", "--config", '{"version": "1.0.0"}', "--enable"
    )
    assert code == 0 and "Installed greeter version 1" in out
    code, out, err = run("call", "greeter", "greet", '"World"')
    assert code == 0
    assert json.loads(out) == "Hello, World! App version: 1.0.0"
    assert "Greeting World" in err
    code, out, _ = run("call", "greeter", "farewell", '"John Doe"')
    assert (code, json.loads(out)) == (0, "Goodbye, John Doe!")


@pytest.mark.django_db
def test_call_arguments_are_json(greeter_file, tmp_path):
    echo = tmp_path / "echo.js"
    echo.write_text("const plugin = { echo(...a) { return a; } };")
    run("install", str(echo), "--slug", "echo", "--enable")
    code, out, _ = run("call", "echo", "echo", "null", "true", '{"a": [1, "`${x}`"]}', '"\\u00fc"')
    assert (code, json.loads(out)) == (0, [None, True, {"a": [1, "`${x}`"]}, "ü"])
    with pytest.raises(CommandError, match="not a JSON value"):
        call_command("plugins", "call", "echo", "echo", "World")


@pytest.mark.django_db
def test_reinstall_saves_a_new_version(greeter_file):
    run("install", str(greeter_file), "--slug", "greeter", "--config", '{"version": "1"}')
    code, out, _ = run(
        "install",
        str(greeter_file),
        "--slug",
        "greeter",
        "--config",
        '{"version": "2"}',
        "--timeout-ms",
        "500",
        "--memory-mb",
        "32",
    )
    assert code == 0 and "Updated greeter version 2" in out
    plugin = Plugin.objects.get(slug="greeter")
    assert (plugin.config, plugin.timeout_ms, plugin.memory_limit_mb) == ({"version": "2"}, 500, 32)


@pytest.mark.django_db
def test_invalid_source_exits_1_with_position_and_saves_nothing(tmp_path, greeter_file):
    run("install", str(greeter_file), "--slug", "greeter")
    bad = tmp_path / "bad.js"
    bad.write_text("const plugin = {\n  greet(n) {\n    return n +;\n  }\n};\n")
    code, out, err = run("install", str(bad), "--slug", "greeter")
    assert code == 1
    assert "line 3, column 15" in err and "SyntaxError" in err
    assert Plugin.objects.get(slug="greeter").source == GREETER
    code, _, err = run("install", str(bad), "--slug", "new-one")
    assert code == 1 and not Plugin.objects.filter(slug="new-one").exists()


@pytest.mark.django_db
def test_invalid_options_exit_1(greeter_file):
    code, _, err = run("install", str(greeter_file), "--slug", "g", "--timeout-ms", "0")
    assert code == 1 and "timeout_ms" in err
    with pytest.raises(CommandError):
        call_command("plugins", "install", "/nonexistent.js", "--slug", "g")
    with pytest.raises(CommandError, match="not a JSON value"):
        call_command("plugins", "install", str(greeter_file), "--slug", "g", "--config", "{oops")
    assert not Plugin.objects.exists()


@pytest.mark.django_db
def test_list_enable_disable(greeter_file):
    run("install", str(greeter_file), "--slug", "greeter")
    assert "disabled" in run("list")[1]
    assert run("enable", "greeter")[0] == 0
    assert Plugin.objects.get(slug="greeter").enabled
    code, _, err = run("call", "greeter", "greet", '"x"')
    assert code == 0
    run("disable", "greeter")
    code, _, err = run("call", "greeter", "greet", '"x"')
    assert code == 1 and err.startswith("PluginDisabled: ")
    with pytest.raises(CommandError):
        call_command("plugins", "enable", "missing")


@pytest.mark.django_db
def test_plugin_errors_exit_1_with_class_name(tmp_path):
    path = tmp_path / "p.js"
    path.write_text("const plugin = { boom() { throw new RangeError('nope'); }, loop() { while(true){} } };")
    run("install", str(path), "--slug", "p", "--enable", "--timeout-ms", "200")
    code, out, err = run("call", "p", "boom")
    assert (code, out) == (1, "")
    assert err.startswith("PluginScriptError: ") and "RangeError: nope" in err
    code, _, err = run("call", "p", "loop")
    assert code == 1 and err.startswith("PluginTimeout: ")
    code, _, err = run("call", "nope", "x")
    assert code == 1 and err.startswith("PluginNotFound: ")
    code, _, err = run("call", "p", "missing")
    assert code == 1 and err.startswith("HookNotFound: ")


@pytest.mark.django_db
def test_install_with_config_schema(greeter_file):
    schema = '{"type": "object", "required": ["version"]}'
    code, _, err = run("install", str(greeter_file), "--slug", "g", "--config", "{}", "--config-schema", schema)
    assert code == 1 and "'version' is a required property" in err
    assert not Plugin.objects.exists()
    code, _, _ = run(
        "install", str(greeter_file), "--slug", "g", "--config", '{"version": "1"}', "--config-schema", schema
    )
    assert code == 0 and Plugin.objects.get(slug="g").config_schema == {"type": "object", "required": ["version"]}
