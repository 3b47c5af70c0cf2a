"""System checks of plugins_app."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from plugins_app import checks
from plugins_app.exposure import Exposure, _registry, expose, exposing


def ids(messages) -> list[str]:
    return [m.id for m in messages]


def test_demo_project_passes_checks():
    assert checks.check_settings() == []
    assert checks.check_exposures() == []


def test_bad_settings_are_reported(settings):
    settings.PLUGINS_APP = {"POOL_SIZE": 0, "NOPE": 1}
    assert set(ids(checks.check_settings())) == {"plugins_app.E002", "plugins_app.E003"}
    settings.PLUGINS_APP = {"MAX_MEMORY_MB": 2000, "WORKER_DATA_LIMIT_MB": 1024}
    assert "plugins_app.E006" in ids(checks.check_settings())
    settings.PLUGINS_APP = {"HTTP_ALLOWED_REQUEST_HEADERS": "accept", "HTTP_MAX_BODY_BYTES": -1}
    assert set(ids(checks.check_settings())) == {"plugins_app.E003", "plugins_app.E007"}


@pytest.mark.parametrize(
    "model, options, message",
    [
        ("auth.User", {"read": ["id", "password"]}, "secret"),
        ("auth.User", {"read": ["id", "nope"]}, "no field"),
        ("auth.User", {"read": ["groups"]}, "concrete"),
        ("demo.Note", {"read": ["id"], "relations": ["author"]}, "readable"),
        ("demo.Note", {"read": ["id", "title"], "relations": ["title"]}, "ForeignKey"),
        ("demo.Note", {"read": ["id"], "write": ["id"]}, "primary key"),
        ("demo.Note", {"read": ["id"], "lookups": ["regexx"]}, "lookups"),
        ("nope.Model", {"read": ["id"]}, "unknown model"),
    ],
)
def test_expose_refuses_bad_declarations(model, options, message):
    with exposing():
        with pytest.raises(ImproperlyConfigured, match=message):
            expose(model, **options)


def test_relation_to_unexposed_model_warns_and_secret_in_registry_errors():
    with exposing(("demo.Note", {"read": ["id", "author"], "relations": ["author"]})):
        assert ids(checks.check_exposures()) == ["plugins_app.W010"]
        from django.contrib.auth.models import User

        # A registry edited by hand (not through expose()) is still caught.
        _registry["auth.user"] = Exposure(
            "auth.User", User, frozenset({"password"}), frozenset(), frozenset(), frozenset()
        )
        assert "plugins_app.E010" in ids(checks.check_exposures())
