"""Test helpers for sites that use plugins_app: real plugins, installed for one test.

A site's own test suite can test its hooks against real plugins, run in real sandboxes::

    from plugins_app import hooks
    from plugins_app.testing import installed_plugin

    def test_titles_are_shouted(db):
        source = "const plugin = { title(value) { return value.toUpperCase(); } };"
        with installed_plugin(source, slug="shout"):
            assert hooks.apply_filters("title", "hello") == "HELLO"

With pytest, add ``pytest_plugins = ["plugins_app.testing"]`` to your ``conftest.py`` for
the :func:`install_plugin` fixture, which removes what it installed after the test::

    def test_order_total(install_plugin):
        install_plugin(SOURCE, slug="totals", grants={"shop.Order": {"read": ["id", "total"]}})
        ...

A plugin is installed exactly as the admin or ``manage.py plugins install`` would: its
source is validated in a sandbox (a syntax error fails the test with the plugin's
message), grants are checked against what the site exposes (``plugins_app.exposure``),
and the config against the plugin's config schema, if it has one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, TypedDict

if TYPE_CHECKING:
    from .models import Plugin

__all__ = ["GrantSpec", "PluginInstaller", "install", "installed_plugin", "install_plugin", "uninstall"]


class GrantSpec(TypedDict, total=False):
    """What a plugin may do with one exposed model (the fields of ``PluginGrant``)."""

    read: Sequence[str]
    create: Sequence[str]
    update: Sequence[str]
    delete: bool


_GRANT_KEYS = frozenset(GrantSpec.__annotations__)


def install(
    source: str,
    *,
    slug: str = "test-plugin",
    name: str | None = None,
    config: Mapping[str, Any] | None = None,
    grants: Mapping[str, GrantSpec] | None = None,
    enabled: bool = True,
    **fields: Any,
) -> Plugin:
    """Install (or replace) plugin ``slug`` from ``source`` and return it.

    ``grants`` maps ``"app_label.Model"`` to ``{"read": [...], "create": [...], "update":
    [...], "delete": bool}`` (missing keys: nothing). ``fields`` are other ``Plugin``
    fields (``priority``, ``timeout_ms``, ``memory_limit_mb``...). Raises Django's
    ``ValidationError`` when the source, config, a field or a grant is refused.
    """
    from django.db import transaction

    from .models import Plugin, PluginGrant

    with transaction.atomic():
        plugin = Plugin.objects.filter(slug=slug).first() or Plugin(slug=slug)
        plugin.name = name or slug
        plugin.source = source
        plugin.config = dict(config or {})
        plugin.enabled = enabled
        for field, value in fields.items():
            if not hasattr(plugin, field) or field in {"id", "pk", "version"}:
                raise TypeError(f"install() got an unexpected keyword argument {field!r}")
            setattr(plugin, field, value)
        plugin.full_clean()
        plugin.save()
        for old in plugin.grants.all():
            old.delete()  # one by one: PluginGrant.delete bumps the version and the dispatch state
        for model, spec in (grants or {}).items():
            unknown = set(spec) - _GRANT_KEYS
            if unknown:
                raise TypeError(f"grant on {model!r}: unknown keys {sorted(unknown)} (use {sorted(_GRANT_KEYS)})")
            grant = PluginGrant(
                plugin=plugin,
                model=model,
                read=list(spec.get("read", ())),
                create=list(spec.get("create", ())),
                update=list(spec.get("update", ())),
                can_delete=bool(spec.get("delete", False)),
            )
            grant.full_clean()
            grant.save()
    plugin.refresh_from_db()
    return plugin


def uninstall(slug: str) -> None:
    """Remove plugin ``slug`` (its grants, storage and revisions go with it); no error if absent."""
    from .models import Plugin

    for plugin in Plugin.objects.filter(slug=slug):
        plugin.delete()


@contextmanager
def installed_plugin(source: str, *, slug: str = "test-plugin", **options: Any) -> Iterator[Plugin]:
    """Install a plugin for the ``with`` block (see :func:`install`), then remove it."""
    plugin = install(source, slug=slug, **options)
    try:
        yield plugin
    finally:
        uninstall(slug)


class PluginInstaller:
    """Installs plugins (``installer(source, slug=..., ...)``, see :func:`install`) and
    removes every one of them with :meth:`remove_all` (what the fixture does after a test)."""

    def __init__(self) -> None:
        self.slugs: list[str] = []

    def __call__(self, source: str, *, slug: str = "test-plugin", **options: Any) -> Plugin:
        plugin = install(source, slug=slug, **options)
        if slug not in self.slugs:
            self.slugs.append(slug)
        return plugin

    def remove_all(self) -> None:
        while self.slugs:
            uninstall(self.slugs.pop())


try:
    import pytest
except ImportError:  # pytest is not a dependency of the app
    pass
else:

    @pytest.fixture
    def install_plugin(db: None) -> Iterator[Callable[..., Plugin]]:
        """Install plugins for one test: ``install_plugin(source, slug=..., config=...,
        grants=...)`` (see :func:`install`); all of them are removed after the test."""
        installer = PluginInstaller()
        yield installer
        installer.remove_all()
