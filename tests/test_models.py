"""Plugin model: validation on save, hook discovery, versioning."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from plugins_app.exceptions import PluginValidationError
from plugins_app.models import Plugin

from .conftest import GREETER


def build(source: str, **fields) -> Plugin:
    fields.setdefault("slug", "p")
    fields.setdefault("name", "P")
    return Plugin(source=source, **fields)


def source_error(plugin: Plugin) -> str:
    with pytest.raises(ValidationError) as info:
        plugin.full_clean()
    return " ".join(info.value.message_dict["source"])


@pytest.mark.django_db
class TestValidation:
    def test_greeter_is_valid_and_hooks_are_discovered(self):
        plugin = build(GREETER, config={"version": "1.0.0"})
        plugin.full_clean()
        plugin.save()
        assert plugin.hooks == ["greet", "farewell"]
        assert plugin.version == 1

    def test_syntax_error_reports_line_and_column_and_saves_nothing(self):
        message = source_error(build("const plugin = {\n  greet(n) {\n    return n +;\n  }\n};\n"))
        assert "SyntaxError" in message and "line 3, column 15" in message
        assert not Plugin.objects.exists()

    def test_throw_at_load_reports_line(self):
        message = source_error(build("const x = 1;\n\nthrow new Error('broken at load');\nconst plugin = {a() {}};"))
        assert "broken at load" in message and "line 3" in message

    @pytest.mark.parametrize(
        "source, expected",
        [
            ("const x = 1;", "does not define a `plugin` object"),
            ("const plugin = 42;", "must be an object"),
            ("const plugin = null;", "must be an object"),
            ("const plugin = { version: 1 };", "defines no functions"),
            ("   ", "empty"),
        ],
    )
    def test_sources_without_hooks_are_refused(self, source, expected):
        assert expected in source_error(build(source))

    def test_runaway_load_is_refused(self):
        assert "time limit" in source_error(build("while (true) {}\nconst plugin = {a() {}};", timeout_ms=200))

    def test_memory_bomb_at_load_is_refused(self):
        message = source_error(build("const a = []; while (true) a.push(new Array(1e5).fill(1));", timeout_ms=5000))
        assert "memory" in message.lower() or "heap" in message.lower()

    def test_classes_and_async_hooks_are_discovered(self):
        plugin = build("class P { a() {} async b() {} }\nconst plugin = new P();")
        plugin.full_clean()
        assert sorted(plugin.hooks) == ["a", "b"]

    def test_size_cap(self, settings):
        settings.PLUGINS_APP = {"MAX_SOURCE_BYTES": 100}
        assert "limit is 100 bytes" in source_error(build("const plugin = {a() {}};" + " " * 100))

    @pytest.mark.parametrize("config", [[1, 2], "x", 3, None])
    def test_config_must_be_an_object(self, config):
        with pytest.raises(ValidationError) as info:
            build(GREETER, config=config).full_clean()
        assert "config" in info.value.message_dict

    @pytest.mark.parametrize(
        "field, value", [("memory_limit_mb", 0), ("memory_limit_mb", 100_000), ("timeout_ms", 1), ("timeout_ms", 10**7)]
    )
    def test_limits_are_bounded(self, field, value):
        with pytest.raises(ValidationError) as info:
            build(GREETER, **{field: value}).full_clean()
        assert field in info.value.message_dict

    def test_bad_slug(self):
        with pytest.raises(ValidationError) as info:
            build(GREETER, slug="not a slug/..").full_clean()
        assert "slug" in info.value.message_dict

    def test_save_without_clean_still_validates(self):
        with pytest.raises(PluginValidationError, match="SyntaxError"):
            build("const plugin = {").save()
        assert not Plugin.objects.exists()


@pytest.mark.django_db
class TestVersioning:
    def test_version_changes_with_source_config_and_limits_only(self, greeter):
        assert greeter.version == 1
        greeter.enabled = False
        greeter.name = "Renamed"
        greeter.save()
        assert greeter.version == 1
        for change in (
            {"config": {"version": "2"}},
            {"timeout_ms": 2000},
            {"memory_limit_mb": 32},
            {"source": GREETER + "\n// comment"},
        ):
            before = greeter.version
            for k, v in change.items():
                setattr(greeter, k, v)
            greeter.full_clean()
            greeter.save()
            assert greeter.version == before + 1
        greeter.refresh_from_db()
        assert greeter.version == 5

    def test_enable_toggle_does_not_revalidate(self, greeter, settings):
        # A plugin saved earlier stays toggleable even if limits tighten later.
        settings.PLUGINS_APP = {"MAX_SOURCE_BYTES": 10}
        fresh = Plugin.objects.get(pk=greeter.pk)
        fresh.enabled = False
        fresh.save()
        assert Plugin.objects.get(pk=greeter.pk).enabled is False


@pytest.mark.django_db
class TestConfigSchema:
    SCHEMA = {
        "type": "object",
        "properties": {"version": {"type": "string"}, "retries": {"type": "integer", "minimum": 0}},
        "required": ["version"],
        "additionalProperties": False,
    }

    def test_matching_config_is_accepted(self):
        plugin = build(GREETER, config={"version": "1", "retries": 2}, config_schema=self.SCHEMA)
        plugin.full_clean()
        plugin.save()
        assert plugin.version == 1

    @pytest.mark.parametrize(
        "config, fragment",
        [
            ({}, "'version' is a required property"),
            ({"version": 1}, "version: 1 is not of type 'string'"),
            ({"version": "1", "retries": -1}, "retries: -1 is less than the minimum of 0"),
            ({"version": "1", "x": 1}, "Additional properties are not allowed"),
        ],
    )
    def test_config_violating_the_schema_is_refused_with_its_path(self, config, fragment):
        with pytest.raises(ValidationError) as info:
            build(GREETER, config=config, config_schema=self.SCHEMA).full_clean()
        assert fragment in " ".join(info.value.message_dict["config"])
        assert not Plugin.objects.exists()

    def test_invalid_schema_is_refused(self):
        with pytest.raises(ValidationError) as info:
            build(GREETER, config_schema={"type": "nonsense"}).full_clean()
        assert "Not a valid JSON Schema" in " ".join(info.value.message_dict["config_schema"])

    def test_schema_change_bumps_version(self, greeter):
        greeter.config_schema = {"type": "object"}
        greeter.full_clean()
        greeter.save()
        assert greeter.version == 2
