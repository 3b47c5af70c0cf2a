"""Install by upload (the .js file field of the plugin form) and export/import of plugins
(plugins_app.transfer): the file, the round trip, validation like a save, grants this site
cannot give, replace, and the admin and CLI ways in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.contrib.auth.models import Permission, User
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError
from django.urls import reverse

from plugins_app import hooks, transfer
from plugins_app.exposure import exposing
from plugins_app.models import Plugin, PluginGrant, StorageItem

from .cli import run
from .conftest import GREETER
from .test_admin import form_data

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:plugins_app_plugin_changelist"
SCHEMA = {"type": "object", "properties": {"version": {"type": "string"}}, "required": ["version"]}


def grant(plugin: Plugin, model: str, **fields) -> PluginGrant:
    g = PluginGrant(plugin=plugin, model=model, **fields)
    g.full_clean()
    g.save()
    return g


@pytest.fixture
def full(make_plugin) -> Plugin:
    """A plugin with everything an export carries set away from the defaults."""
    plugin = make_plugin(
        GREETER,
        slug="full",
        name="Full greeter",
        description="Says hello.",
        config={"version": "9"},
        config_schema=SCHEMA,
        memory_limit_mb=32,
        timeout_ms=500,
        max_host_calls=7,
        max_rows_read=8,
        max_rows_written=9,
        max_host_result_bytes=4096,
        priority=5,
        http_enabled=True,
    )
    grant(plugin, "auth.User", read=["id", "username"])
    grant(plugin, "demo.Note", read=["id", "title", "score"], create=["title"], update=["score"], can_delete=True)
    plugin.refresh_from_db()
    return plugin


def user_with(*codenames: str, name: str = "operator") -> User:
    user = User.objects.create_user(name, password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="plugins_app", codename__in=codenames))
    return user


def snapshot(plugin: Plugin) -> dict:
    data = transfer.plugin_data(plugin)
    data.pop("metadata")
    return data


# -- export -------------------------------------------------------------------------------------


def test_export_writes_everything_about_a_plugin(full, tmp_path: Path):
    path = tmp_path / "full.json"
    code, out, err = run("export", "full", "-o", str(path))
    assert code == 0 and str(path) in out and not err
    data = json.loads(path.read_text(encoding="utf-8"))
    assert data["format"] == "plugins_app.plugins" and data["format_version"] == 1 and data["exported_at"]
    (entry,) = data["plugins"]
    assert entry["slug"] == "full" and entry["name"] == "Full greeter" and entry["description"] == "Says hello."
    assert entry["source"] == GREETER and entry["config"] == {"version": "9"} and entry["config_schema"] == SCHEMA
    assert entry["priority"] == 5 and entry["http_enabled"] is True
    assert entry["limits"] == {
        "memory_limit_mb": 32,
        "timeout_ms": 500,
        "max_host_calls": 7,
        "max_rows_read": 8,
        "max_rows_written": 9,
        "max_host_result_bytes": 4096,
    }
    assert entry["grants"] == [
        {"model": "auth.User", "read": ["id", "username"], "create": [], "update": [], "can_delete": False},
        {
            "model": "demo.Note",
            "read": ["id", "title", "score"],
            "create": ["title"],
            "update": ["score"],
            "can_delete": True,
        },
    ]
    assert entry["metadata"]["hooks"] == ["greet", "farewell"] and entry["metadata"]["version"] == full.version
    # To stdout without -o; an unknown slug is an error.
    code, out, _ = run("export", "full")
    assert json.loads(out)["plugins"][0]["slug"] == "full"
    with pytest.raises(CommandError, match="no plugin 'nope'"):
        run("export", "full", "nope")


# -- import -------------------------------------------------------------------------------------


def test_export_then_import_recreates_the_plugin(full, tmp_path: Path):
    before = snapshot(full)
    path = tmp_path / "full.json"
    run("export", "full", "-o", str(path))
    full.delete()
    code, out, err = run("import", str(path))
    assert code == 0, err
    assert "Imported full version" in out and "(disabled)" in out and not err
    plugin = Plugin.objects.get(slug="full")
    assert snapshot(plugin) == before
    assert not plugin.enabled and plugin.hooks == ["greet", "farewell"]  # imported plugins start disabled
    assert hooks.run("full", "greet", "Ada", require_enabled=False).value == "Hello, Ada! App version: 9"
    assert plugin.revisions.count() == 1  # the import is a revision like any save


def test_import_refuses_an_existing_slug_unless_replace(full, tmp_path: Path):
    path = tmp_path / "full.json"
    run("export", "full", "-o", str(path))
    data = json.loads(path.read_text())
    data["plugins"][0]["source"] = GREETER.replace("Hello", "Hi")
    data["plugins"][0]["grants"] = data["plugins"][0]["grants"][:1]
    path.write_text(json.dumps(data))
    StorageItem.objects.create(plugin=full, key="kept", value=1, size=5)
    code, _, err = run("import", str(path))
    assert code == 1 and "full: a plugin with this slug exists" in err and "Nothing was imported." in err
    assert Plugin.objects.get(pk=full.pk).source == GREETER
    code, out, err = run("import", str(path), "--replace")
    assert code == 0 and "Replaced full" in out and "(enabled)" in out, err
    plugin = Plugin.objects.get(pk=full.pk)
    assert "Hi, " in plugin.source and plugin.version > full.version and plugin.enabled
    assert [g.model for g in plugin.grants.all()] == ["auth.User"]  # grants replaced by the file's
    assert plugin.storage_items.filter(key="kept").exists()
    assert hooks.call("full", "greet", "Bo") == "Hi, Bo! App version: 9"


def test_grants_this_site_cannot_give_are_left_out_and_reported(full, tmp_path: Path):
    path = tmp_path / "full.json"
    run("export", "full", "-o", str(path))
    full.delete()
    # The target site exposes less: no auth.User at all, and fewer Note fields.
    with exposing(("demo.Note", {"read": ["id", "title"], "write": ["title"]})):
        code, out, err = run("import", str(path))
        assert code == 0, err
        assert "full: grant auth.User: not imported (this site does not expose that model to plugins)" in err
        assert "full: grant demo.Note: imported without read: score; update: score (not exposed here)" in err
        plugin = Plugin.objects.get(slug="full")
        (note,) = plugin.grants.all()
        assert (note.model, note.read, note.create, note.update, note.can_delete) == (
            "demo.Note",
            ["id", "title"],
            ["title"],
            [],
            True,
        )


def test_import_validates_like_a_save_and_saves_nothing_on_error(tmp_path: Path):
    good = {"slug": "good", "source": GREETER, "config": {"version": "1"}}
    bad = {"slug": "bad", "source": "const plugin = {\n  greet(n) { return n +; }\n};"}
    schema_broken = {"slug": "strict", "source": GREETER, "config": {}, "config_schema": SCHEMA}
    limits = {"slug": "limits", "source": GREETER, "limits": {"timeout_ms": 10**9}}
    path = tmp_path / "many.json"
    path.write_text(
        json.dumps(
            {"format": "plugins_app.plugins", "format_version": 1, "plugins": [good, bad, schema_broken, limits]}
        )
    )
    code, out, err = run("import", str(path))
    assert code == 1 and not out
    assert "bad: source: SyntaxError: Unexpected token ';' (line 2, column 24)" in err
    assert "strict: config: (top level): 'version' is a required property" in err
    assert "limits: timeout_ms: Must be between" in err
    assert not Plugin.objects.exists()


@pytest.mark.parametrize(
    "text, message",
    [
        (b"\xff\xfe", "not UTF-8"),
        (b"{oops", "Not valid JSON"),
        (b'{"plugins": []}', "Not a plugin export file"),
        (b'{"format": "plugins_app.plugins", "format_version": 2, "plugins": [{}]}', "format version 2"),
        (b'{"format": "plugins_app.plugins", "format_version": 1, "plugins": []}', "empty"),
        (
            b'{"format": "plugins_app.plugins", "format_version": 1, "plugins": [{"slug": "a"}, {"slug": "a"}]}',
            "more than once",
        ),
        (
            b'{"format": "plugins_app.plugins", "format_version": 1, "plugins": [{"slug": "a", "source": 5}]}',
            "source must be str",
        ),
        (
            b'{"format": "plugins_app.plugins", "format_version": 1, "plugins": [{"slug": "a", "source": "x", "grants": [{"read": []}]}]}',
            "a grant without a model",
        ),
    ],
)
def test_import_refuses_files_that_are_not_exports(text, message):
    with pytest.raises(transfer.PluginImportError) as info:
        transfer.import_plugins(text)
    assert message in str(info.value)
    assert not Plugin.objects.exists()


# -- the admin ----------------------------------------------------------------------------------


def test_admin_export_button_and_action(admin_client, full, greeter):
    change = admin_client.get(reverse("admin:plugins_app_plugin_change", args=[full.pk])).content.decode()
    url = reverse("admin:plugins_app_plugin_export", args=[full.pk])
    assert f'href="{url}"' in change
    response = admin_client.get(url)
    assert response["Content-Disposition"] == 'attachment; filename="full.plugin.json"'
    data = json.loads(response.content)
    assert data["exported_by"] == "admin" and [p["slug"] for p in data["plugins"]] == ["full"]
    response = admin_client.post(
        reverse(CHANGELIST), {"action": "export_plugins", "_selected_action": [full.pk, greeter.pk]}
    )
    assert response["Content-Type"].startswith("application/json")
    assert [p["slug"] for p in json.loads(response.content)["plugins"]] == ["full", "greeter"]


def test_view_only_staff_may_export_but_not_import(client, full):
    client.force_login(user_with("view_plugin"))
    assert client.get(reverse("admin:plugins_app_plugin_export", args=[full.pk])).status_code == 200
    assert 'id="plugin-import-link"' not in client.get(reverse(CHANGELIST)).content.decode()
    assert client.get(reverse("admin:plugins_app_plugin_import")).status_code == 403
    upload = SimpleUploadedFile("x.json", transfer.export_json([full]).encode())
    assert client.post(reverse("admin:plugins_app_plugin_import"), {"file": upload, "replace": "on"}).status_code == 403


def test_admin_import_creates_the_plugin_and_lists_what_it_left_out(admin_client, full):
    text = transfer.export_json([full]).replace('"auth.User"', '"auth.Group"')
    full.delete()
    assert 'id="plugin-import-link"' in admin_client.get(reverse(CHANGELIST)).content.decode()
    upload = SimpleUploadedFile("full.plugin.json", text.encode(), content_type="application/json")
    response = admin_client.post(reverse("admin:plugins_app_plugin_import"), {"file": upload}, follow=True)
    plugin = Plugin.objects.get(slug="full")
    assert response.redirect_chain[-1][0] == reverse("admin:plugins_app_plugin_change", args=[plugin.pk])
    messages = [str(m) for m in response.context["messages"]]
    assert any(m.startswith('<a href="') and "Imported full version" in m for m in messages)
    assert "full: grant auth.Group: not imported (this site does not expose that model to plugins)." in messages
    assert [g.model for g in plugin.grants.all()] == ["demo.Note"]
    assert plugin.created_by.username == "admin" and not plugin.enabled


def test_admin_import_shows_errors_and_saves_nothing(admin_client, full):
    text = transfer.export_json([full])
    upload = SimpleUploadedFile("full.plugin.json", text.encode())
    response = admin_client.post(reverse("admin:plugins_app_plugin_import"), {"file": upload})
    assert response.status_code == 200
    assert "full: a plugin with this slug exists" in response.content.decode()
    assert Plugin.objects.count() == 1


def test_admin_import_without_grant_permissions_leaves_grants_out(client, full):
    text = transfer.export_json([full])
    full.delete()
    client.force_login(user_with("view_plugin", "add_plugin"))
    upload = SimpleUploadedFile("full.plugin.json", text.encode())
    response = client.post(reverse("admin:plugins_app_plugin_import"), {"file": upload}, follow=True)
    messages = [str(m) for m in response.context["messages"]]
    assert "full: grant auth.User: not imported (you may not grant model access)." in messages
    assert not Plugin.objects.get(slug="full").grants.exists()


# -- install by upload ----------------------------------------------------------------------------


def upload_form(source_file, **overrides) -> dict:
    return form_data(source="", source_file=source_file, **overrides)


def test_add_a_plugin_by_uploading_a_js_file(admin_client):
    js = SimpleUploadedFile("greeter.js", ("\ufeff" + GREETER.replace("\n", "\r\n")).encode("utf-8"), "text/javascript")
    response = admin_client.post(reverse("admin:plugins_app_plugin_add"), upload_form(js))
    assert response.status_code == 302, response.context["adminform"].form.errors
    plugin = Plugin.objects.get(slug="new")
    assert plugin.source == GREETER and plugin.hooks == ["greet", "farewell"]  # BOM dropped, LF line ends


def test_the_uploaded_file_wins_over_the_source_box(admin_client, greeter):
    url = reverse("admin:plugins_app_plugin_change", args=[greeter.pk])
    js = SimpleUploadedFile("new.js", GREETER.replace("Goodbye", "Farewell").encode())
    data = form_data(
        slug="greeter", name="Greeter", source=GREETER, source_file=js, config='{"version": "1.0.0"}', enabled="on"
    )
    response = admin_client.post(url, data)
    assert response.status_code == 302
    greeter.refresh_from_db()
    assert "Farewell" in greeter.source and greeter.version == 2
    from django.contrib.admin.models import LogEntry

    message = LogEntry.objects.latest("action_time").get_change_message()
    assert "Source" in message and "file" not in message  # the file is a change of the source


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("latin1.js", "const plugin = { a() { return 'café'; } };".encode("latin-1"), "not UTF-8 text"),
        ("big.js", b"//" + b"x" * (256 * 1024), "the limit is 262144 bytes"),
        ("plugin.txt", GREETER.encode(), "extension"),
    ],
)
def test_uploads_that_are_refused(admin_client, name, content, message):
    response = admin_client.post(
        reverse("admin:plugins_app_plugin_add"), upload_form(SimpleUploadedFile(name, content))
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert "source_file" in errors and message in " ".join(errors["source_file"]), errors
    assert not Plugin.objects.exists()


def test_an_uploaded_file_with_an_error_is_shown_in_the_source_box(admin_client):
    bad = "const plugin = {\n  greet(n) { return n +; }\n};"
    response = admin_client.post(
        reverse("admin:plugins_app_plugin_add"), upload_form(SimpleUploadedFile("bad.js", bad.encode()))
    )
    form = response.context["adminform"].form
    assert "line 2" in " ".join(form.errors["source"]) and form["source"].value() == bad


def test_no_source_and_no_file_is_refused(admin_client):
    response = admin_client.post(reverse("admin:plugins_app_plugin_add"), form_data(source=""))
    assert "The source is empty." in " ".join(response.context["adminform"].form.errors["source"])
