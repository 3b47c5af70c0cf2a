from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from plugins_app.models import Plugin

GREETER = (Path(__file__).resolve().parent.parent / "project" / "demo" / "plugins" / "greeter.js").read_text()


@pytest.fixture
def make_plugin(db: None) -> Callable[..., Plugin]:
    """Create, validate and save an enabled plugin from JS source."""

    def make(source: str, slug: str = "p", **fields: Any) -> Plugin:
        fields.setdefault("name", slug)
        fields.setdefault("enabled", True)
        plugin = Plugin(slug=slug, source=source, **fields)
        plugin.full_clean()
        plugin.save()
        return plugin

    return make


@pytest.fixture
def greeter(make_plugin: Callable[..., Plugin]) -> Plugin:
    return make_plugin(GREETER, slug="greeter", config={"version": "1.0.0"})


@pytest.fixture(autouse=True)
def fast_password_hasher(settings) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
