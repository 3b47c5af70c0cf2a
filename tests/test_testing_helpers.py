"""plugins_app.testing: installing real plugins for one test, as a site's own suite would."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError

from plugins_app import hooks
from plugins_app.exceptions import PluginNotFound, PluginPermissionDenied
from plugins_app.models import Plugin, PluginGrant, StorageItem

# The install_plugin fixture comes from `pytest_plugins = ["plugins_app.testing"]` in
# tests/conftest.py, as a site's root conftest.py registers it.
from plugins_app.testing import PluginInstaller, install, installed_plugin, uninstall
from project.demo.models import Note

SHOUT = "const plugin = { title(value) { return value.toUpperCase() + config.suffix; } };"
READER = """
const plugin = {
  titles() { return db.query("demo.Note", { fields: ["title"] }).map((n) => n.title); },
  remember(v) { storage.set("k", v); return storage.get("k"); },
  rename(id) { return db.update("demo.Note", { id }, { title: "renamed" }); },
};
"""


@pytest.mark.django_db
def test_context_manager_installs_with_config_then_removes() -> None:
    with installed_plugin(SHOUT, slug="shout", config={"suffix": "!"}) as plugin:
        assert plugin.pk and plugin.enabled
        assert hooks.apply_filters("title", "hello") == "HELLO!"
        assert hooks.call("shout", "title", "a") == "A!"
    assert not Plugin.objects.filter(slug="shout").exists()
    with pytest.raises(PluginNotFound):
        hooks.call("shout", "title", "a")
    assert hooks.apply_filters("title", "hello") == "hello"


@pytest.mark.django_db
def test_removed_even_when_the_block_fails() -> None:
    with pytest.raises(RuntimeError), installed_plugin(SHOUT, slug="shout", config={"suffix": ""}):
        raise RuntimeError("test failed")
    assert not Plugin.objects.filter(slug="shout").exists()


@pytest.mark.django_db
def test_grants_are_applied_and_enforced() -> None:
    author = User.objects.create(username="a")
    note = Note.objects.create(author=author, title="first")
    with installed_plugin(READER, slug="reader", grants={"demo.Note": {"read": ["id", "title"]}}) as plugin:
        grant = PluginGrant.objects.get(plugin=plugin)
        assert (grant.model, grant.read, grant.update, grant.can_delete) == ("demo.Note", ["id", "title"], [], False)
        assert hooks.call("reader", "titles") == ["first"]
        assert hooks.call("reader", "remember", 3) == 3
        assert StorageItem.objects.filter(plugin=plugin).count() == 1
        with pytest.raises(PluginPermissionDenied):
            hooks.call("reader", "rename", note.pk)
    assert not PluginGrant.objects.exists()
    assert not StorageItem.objects.exists()
    note.refresh_from_db()
    assert note.title == "first"


@pytest.mark.django_db
@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"source": "const plugin = {"}, "SyntaxError"),
        ({"source": SHOUT, "grants": {"auth.User": {"read": ["password"]}}}, "password"),
        ({"source": SHOUT, "grants": {"demo.Note": {"write": ["title"]}}}, "unknown keys"),
        ({"source": SHOUT, "version": 7}, "unexpected keyword"),
    ],
)
def test_refused_installs_say_why_and_leave_nothing(kwargs: dict[str, Any], message: str) -> None:
    source = kwargs.pop("source")
    with pytest.raises((ValidationError, TypeError)) as caught:
        install(source, slug="bad", **kwargs)
    assert message in str(caught.value)
    assert not Plugin.objects.filter(slug="bad").exists()


@pytest.mark.django_db
def test_install_replaces_an_installed_plugin_and_its_grants() -> None:
    install(READER, slug="p", grants={"demo.Note": {"read": ["id", "title"]}})
    assert hooks.call("p", "titles") == []
    # The same source again, without the grant: the plugin must lose it at once.
    install(READER, slug="p")
    with pytest.raises(PluginPermissionDenied):
        hooks.call("p", "titles")
    plugin = install(SHOUT, slug="p", config={"suffix": "?"}, priority=5)
    assert (plugin.priority, plugin.config) == (5, {"suffix": "?"})
    assert not plugin.grants.exists()
    assert hooks.call("p", "title", "x") == "X?"
    uninstall("p")
    uninstall("p")  # absent: no error
    assert not Plugin.objects.exists()


def test_fixture_removes_what_it_installed(install_plugin: Callable[..., Plugin]) -> None:
    install_plugin(SHOUT, slug="one", config={"suffix": "1"})
    install_plugin(SHOUT, slug="two", config={"suffix": "2"}, enabled=False)
    assert hooks.apply_filters("title", "x") == "X1"
    assert set(Plugin.objects.values_list("slug", flat=True)) == {"one", "two"}


@pytest.mark.django_db
def test_installer_removes_everything_it_installed() -> None:
    installer = PluginInstaller()
    installer(SHOUT, slug="a", config={"suffix": ""})
    installer(SHOUT, slug="a", config={"suffix": "2"})  # replaced: removed once
    installer(SHOUT, slug="b", config={"suffix": ""})
    install(SHOUT, slug="kept", config={"suffix": ""})
    installer.remove_all()
    assert list(Plugin.objects.values_list("slug", flat=True)) == ["kept"]
    assert installer.slugs == []
