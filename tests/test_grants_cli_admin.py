"""Granting plugins access to exposed models: `manage.py plugins grant/revoke/grants` and the admin."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import CommandError, call_command
from django.urls import reverse

from plugins_app.models import Plugin, PluginGrant, StorageItem

from .cli import run
from .conftest import GREETER


def version(plugin: Plugin) -> int:
    return Plugin.objects.values_list("version", flat=True).get(pk=plugin.pk)


def grants_of(plugin: Plugin) -> list[tuple]:
    return list(plugin.grants.order_by("model").values_list("model", "read", "create", "update", "can_delete"))


# -- CLI ---------------------------------------------------------------------------------------
def test_grant_list_and_revoke(greeter):
    assert run("grants", "greeter") == (0, "No grants.\n", "")
    code, out, err = run(
        "grant",
        "greeter",
        "demo.Note",
        "--read",
        "id, title,author",
        "--create",
        "title",
        "--update",
        "title,body",
        "--delete",
    )
    assert (code, err) == (0, "") and "Granted greeter access to demo.Note: read=id, title, author;" in out
    assert grants_of(greeter) == [("demo.Note", ["id", "title", "author"], ["title"], ["title", "body"], True)]
    assert run("grant", "greeter", "auth.User", "--read", "id,username")[0] == 0
    code, out, _ = run("grants", "greeter")
    assert code == 0
    assert out.splitlines() == [
        "auth.User: read=id, username; create=-; update=-; delete=no",
        "demo.Note: read=id, title, author; create=title; update=title, body; delete=yes",
    ]
    code, out, _ = run("revoke", "greeter", "auth.User")
    assert code == 0 and "Revoked" in out and "auth.User" in out
    assert [g[0] for g in grants_of(greeter)] == ["demo.Note"]
    with pytest.raises(CommandError, match="no grant"):
        call_command("plugins", "revoke", "greeter", "auth.User")


def test_regranting_replaces_the_whole_grant(greeter):
    run("grant", "greeter", "demo.Note", "--read", "id,title", "--create", "title", "--update", "title", "--delete")
    code, _, _ = run("grant", "greeter", "DEMO.note", "--read", "id")
    assert code == 0
    # One grant, stored under the canonical label; lists not given are empty, delete is off.
    assert grants_of(greeter) == [("demo.Note", ["id"], [], [], False)]


def test_grant_changes_bump_the_plugin_version(greeter):
    before = version(greeter)
    run("grant", "greeter", "auth.User", "--read", "id")
    assert version(greeter) == before + 1
    run("grant", "greeter", "auth.User", "--read", "id,username")
    assert version(greeter) == before + 2
    run("revoke", "greeter", "auth.User")
    assert version(greeter) == before + 3


@pytest.mark.parametrize("model", ["auth.Group", "auth.Permission", "nope.Thing", "Note", "plugins_app.PluginGrant"])
def test_unexposed_model_is_refused_and_nothing_saved(greeter, model):
    before = version(greeter)
    code, out, err = run("grant", "greeter", model, "--read", "id")
    assert code == 1 and out == ""
    assert "not exposed" in err and model in err
    assert not PluginGrant.objects.exists() and version(greeter) == before


@pytest.mark.parametrize(
    "options, where, name",
    [
        (["--read", "id,email"], "--read", "email"),
        (["--read", "id,password"], "--read", "password"),
        (["--read", "id", "--update", "username"], "--update", "username"),  # readable only
        (["--read", "id", "--create", "is_superuser"], "--create", "is_superuser"),
    ],
)
def test_unexposed_field_is_refused_and_nothing_saved(greeter, options, where, name):
    run("grant", "greeter", "auth.User", "--read", "id,username")
    before = version(greeter)
    code, _, err = run("grant", "greeter", "auth.User", *options)
    assert code == 1
    assert err.startswith(f"{where}: Not exposed for this: {name}") and "Nothing was saved." in err
    assert grants_of(greeter) == [("auth.User", ["id", "username"], [], [], False)]
    assert version(greeter) == before


@pytest.mark.django_db
def test_unknown_plugin_is_a_command_error():
    for args in (
        ["grant", "missing", "auth.User", "--read", "id"],
        ["revoke", "missing", "auth.User"],
        ["grants", "missing"],
    ):
        with pytest.raises(CommandError, match="no plugin 'missing'"):
            call_command("plugins", *args)
    assert not PluginGrant.objects.exists()


# -- admin -------------------------------------------------------------------------------------
def change_data(plugin: Plugin, grants: list[dict] | None = None, **overrides) -> dict:
    """POST data for the change page of ``plugin``: its current values, plus grant rows."""
    data = {
        "name": plugin.name,
        "slug": plugin.slug,
        "description": plugin.description,
        "enabled": "on" if plugin.enabled else "",
        "source": plugin.source,
        "memory_limit_mb": str(plugin.memory_limit_mb),
        "timeout_ms": str(plugin.timeout_ms),
        "max_host_calls": str(plugin.max_host_calls),
        "max_rows_read": str(plugin.max_rows_read),
        "max_rows_written": str(plugin.max_rows_written),
        "max_host_result_bytes": str(plugin.max_host_result_bytes),
        "config": json.dumps(plugin.config),
        "config_schema": "" if plugin.config_schema is None else json.dumps(plugin.config_schema),
    }
    existing = list(plugin.grants.order_by("model")) if plugin.pk else []
    rows = grants or []
    data.update(
        {
            "grants-TOTAL_FORMS": str(len(rows)),
            "grants-INITIAL_FORMS": str(len(existing)),
            "grants-MIN_NUM_FORMS": "0",
            "grants-MAX_NUM_FORMS": "1000",
            "storage_items-TOTAL_FORMS": "0",
            "storage_items-INITIAL_FORMS": "0",
            "storage_items-MIN_NUM_FORMS": "0",
            "storage_items-MAX_NUM_FORMS": "0",
        }
    )
    for index, row in enumerate(rows):
        if index < len(existing):
            row = {"id": str(existing[index].pk), **row}
        for key, value in row.items():
            if value is not False:
                data[f"grants-{index}-{key}"] = "on" if value is True else value
    data.update(overrides)
    return data


def change_url(plugin: Plugin) -> str:
    return reverse("admin:plugins_app_plugin_change", args=[plugin.pk])


def test_change_page_shows_limits_schema_and_grants(admin_client, greeter):
    PluginGrant(plugin=greeter, model="auth.User", read=["id", "username"]).save()
    response = admin_client.get(change_url(greeter))
    assert response.status_code == 200
    fieldsets = {name: opts["fields"] for name, opts in response.context["adminform"].fieldsets}
    assert {"max_host_calls", "max_rows_read", "max_rows_written", "max_host_result_bytes"} <= set(fieldsets["Limits"])
    assert "config_schema" in fieldsets["Configuration"]
    body = response.content.decode()
    assert 'value="id, username"' in body  # field lists as comma-separated text
    assert '<option value="demo.Note">' in body  # exposed models to choose from


def test_admin_adds_a_valid_grant(admin_client, greeter):
    # A first save stores the source as the form cleans it (without its final newline).
    assert admin_client.post(change_url(greeter), change_data(greeter)).status_code == 302
    before = version(greeter)
    row = {"model": "demo.Note", "read": "id, title ,author", "create": "", "update": "title", "can_delete": True}
    response = admin_client.post(change_url(greeter), change_data(greeter, [row]))
    assert response.status_code == 302, response.context and response.context["inline_admin_formsets"][0].formset.errors
    assert grants_of(greeter) == [("demo.Note", ["id", "title", "author"], [], ["title"], True)]
    assert version(greeter) == before + 1
    # Saving again with the grant unchanged does not bump the version again.
    row = {"model": "demo.Note", "read": "id, title, author", "create": "", "update": "title", "can_delete": True}
    assert admin_client.post(change_url(greeter), change_data(greeter, [row])).status_code == 302
    assert version(greeter) == before + 1


@pytest.mark.parametrize(
    "row, field, text",
    [
        ({"model": "auth.User", "read": "id, email"}, "read", "email"),
        ({"model": "auth.User", "read": "id, password"}, "read", "password"),
        ({"model": "auth.User", "read": "id", "update": "username"}, "update", "username"),
        ({"model": "auth.Group", "read": "id"}, "model", "auth.Group"),
    ],
)
def test_admin_invalid_grant_shows_an_error_and_saves_nothing(admin_client, greeter, row, field, text):
    before = version(greeter)
    response = admin_client.post(change_url(greeter), change_data(greeter, [row], description="changed"))
    assert response.status_code == 200
    errors = response.context["inline_admin_formsets"][0].formset.errors
    assert field in errors[0] and text in " ".join(errors[0][field])
    assert not PluginGrant.objects.exists()
    greeter.refresh_from_db()
    assert greeter.description == "" and greeter.version == before


def test_admin_edits_and_deletes_grants(admin_client, greeter):
    PluginGrant(plugin=greeter, model="auth.User", read=["id"]).save()
    row = {"model": "auth.User", "read": "id, username"}
    assert admin_client.post(change_url(greeter), change_data(greeter, [row])).status_code == 302
    assert grants_of(greeter) == [("auth.User", ["id", "username"], [], [], False)]
    row = {**row, "DELETE": True}
    assert admin_client.post(change_url(greeter), change_data(greeter, [row])).status_code == 302
    assert not PluginGrant.objects.exists()


def test_admin_add_plugin_with_grant_and_limits(admin_client):
    data = change_data(
        Plugin(name="New", slug="new", source=GREETER, config={"version": "2"}),
        [{"model": "auth.User", "read": "username"}],
        max_rows_read="5",
        max_host_calls="",  # empty: the site default
        config_schema='{"type": "object", "required": ["version"]}',
    )
    response = admin_client.post(reverse("admin:plugins_app_plugin_add"), data)
    assert response.status_code == 302
    plugin = Plugin.objects.get(slug="new")
    assert (plugin.max_rows_read, plugin.max_host_calls) == (5, 200)
    assert plugin.config_schema == {"type": "object", "required": ["version"]}
    assert grants_of(plugin) == [("auth.User", ["username"], [], [], False)]


def test_admin_config_schema_is_checked(admin_client, greeter):
    data = change_data(greeter, config_schema='{"type": "object", "required": ["missing"]}')
    response = admin_client.post(change_url(greeter), data)
    assert response.status_code == 200
    assert "missing" in " ".join(response.context["adminform"].form.errors["config"])
    data = change_data(greeter, config_schema="{oops")
    response = admin_client.post(change_url(greeter), data)
    assert "JSON" in " ".join(response.context["adminform"].form.errors["config_schema"])
    assert Plugin.objects.get(pk=greeter.pk).config_schema is None


@pytest.fixture
def staff_viewer(db) -> User:
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_plugin"))
    return user


def test_view_only_staff_sees_grants_but_cannot_add_or_change_them(client, staff_viewer, greeter):
    PluginGrant(plugin=greeter, model="auth.User", read=["id"]).save()
    StorageItem.objects.create(plugin=greeter, key="hits", value=None, number=3, size=4)
    client.force_login(staff_viewer)
    response = client.get(change_url(greeter))
    assert response.status_code == 200
    grants_inline, storage_inline = response.context["inline_admin_formsets"]
    assert not (
        grants_inline.has_add_permission or grants_inline.has_change_permission or grants_inline.has_delete_permission
    )
    assert not storage_inline.has_delete_permission
    body = response.content.decode()
    assert "auth.User" in body and "hits" in body
    assert 'name="grants-0-read"' not in body  # shown, not editable
    before = version(greeter)
    rows = [{"model": "auth.User", "read": "id, username"}, {"model": "demo.Note", "read": "id"}]
    assert client.post(change_url(greeter), change_data(greeter, rows)).status_code == 403
    assert grants_of(greeter) == [("auth.User", ["id"], [], [], False)] and version(greeter) == before


def test_plugin_change_permission_alone_does_not_allow_granting(client, greeter):
    """Grants let plugin code reach the site's data: they need their own permissions too."""
    user = User.objects.create_user("editor", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_plugin", "change_plugin"]))
    client.force_login(user)
    data = change_data(greeter, [{"model": "auth.User", "read": "id"}], description="edited")
    assert client.post(change_url(greeter), data).status_code == 302
    assert Plugin.objects.get(pk=greeter.pk).description == "edited"
    assert not PluginGrant.objects.exists()
    user.user_permissions.add(Permission.objects.get(codename="add_plugingrant"))
    client.force_login(User.objects.get(pk=user.pk))  # fresh permission cache
    assert client.post(change_url(greeter), data).status_code == 302
    assert grants_of(greeter) == [("auth.User", ["id"], [], [], False)]


def test_storage_is_read_only_but_deletable(admin_client, greeter):
    item = StorageItem.objects.create(plugin=greeter, key="k", value={"a": 1}, size=10)
    response = admin_client.get(change_url(greeter))
    storage_inline = response.context["inline_admin_formsets"][1]
    assert not storage_inline.has_add_permission and not storage_inline.has_change_permission
    assert 'name="storage_items-0-key"' not in response.content.decode()
    data = change_data(greeter)
    data.update(
        {
            "storage_items-TOTAL_FORMS": "1",
            "storage_items-INITIAL_FORMS": "1",
            "storage_items-0-id": str(item.pk),
            "storage_items-0-plugin": str(greeter.pk),
            "storage_items-0-DELETE": "on",
        }
    )
    assert admin_client.post(change_url(greeter), data).status_code == 302
    assert not StorageItem.objects.exists()


def test_admin_shows_a_grant_on_a_model_no_longer_exposed(admin_client, greeter):
    from plugins_app.exposure import exposing

    with exposing(("auth.Group", {"read": ["id"]})):  # exposed then, withdrawn since
        PluginGrant.objects.create(plugin=greeter, model="auth.Group", read=["id"])
    response = admin_client.get(change_url(greeter))
    assert '<option value="auth.Group" selected>auth.Group (not exposed)</option>' in response.content.decode()
    # Saving is refused until the stale grant is removed; removing it is allowed.
    row = {"model": "auth.Group", "read": "id"}
    response = admin_client.post(change_url(greeter), change_data(greeter, [row]))
    assert "not exposed" in str(response.context["inline_admin_formsets"][0].formset.errors)
    assert admin_client.post(change_url(greeter), change_data(greeter, [{**row, "DELETE": True}])).status_code == 302
    assert not PluginGrant.objects.exists()
