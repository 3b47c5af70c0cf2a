"""Plugin admin through the test client: forms, validation errors, actions, permissions."""

from __future__ import annotations

import json

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from plugins_app.models import Plugin

from .conftest import GREETER

CHANGELIST = "admin:plugins_app_plugin_changelist"


@pytest.fixture
def staff_viewer(db) -> User:
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_plugin"))
    return user


def form_data(**overrides) -> dict:
    data = {
        "name": "New",
        "slug": "new",
        "description": "",
        "source": GREETER,
        "memory_limit_mb": "64",
        "timeout_ms": "1000",
        "config": '{"version": "2"}',
        # The inlines' management forms, as the admin page posts them (no rows).
        "grants-TOTAL_FORMS": "0",
        "grants-INITIAL_FORMS": "0",
        "storage_items-TOTAL_FORMS": "0",
        "storage_items-INITIAL_FORMS": "0",
    }
    data.update(overrides)
    return data


@pytest.mark.django_db
def test_changelist_search_and_filter(admin_client, greeter):
    response = admin_client.get(reverse(CHANGELIST), {"q": "greet", "enabled__exact": "1"})
    assert response.status_code == 200
    assert "greeter" in response.content.decode()


@pytest.mark.django_db
def test_add_valid_plugin_records_author_and_hooks(admin_client, admin_user):
    response = admin_client.post(reverse("admin:plugins_app_plugin_add"), form_data())
    assert response.status_code == 302
    plugin = Plugin.objects.get(slug="new")
    assert plugin.hooks == ["greet", "farewell"]
    assert plugin.created_by == admin_user and plugin.updated_by == admin_user


@pytest.mark.django_db
@pytest.mark.parametrize(
    "overrides, field, text",
    [
        ({"source": "const plugin = {\n  greet(n) { return n +; }\n};"}, "source", "line 2"),
        ({"source": "const x = 1;"}, "source", "plugin"),
        ({"config": "[1, 2]"}, "config", "JSON object"),
        ({"config": "{oops"}, "config", "JSON"),
        ({"memory_limit_mb": "0"}, "memory_limit_mb", "between"),
        ({"timeout_ms": "100000"}, "timeout_ms", "between"),
        ({"config": '{"a": ' + "[" * 5000 + "]" * 5000 + "}"}, "config", "nested deeper than 128"),
        ({"config_schema": "[" * 100_000 + "]" * 100_000}, "config_schema", "nested deeper than 128"),
        ({"source": 'const plugin = { ["a\\ud800"]() {}, ok() {} };'}, "source", "hook name"),
        ({"source": 'const plugin = { ["a\\u0000b"]() {} };'}, "source", "hook name"),
    ],
)
def test_invalid_input_is_shown_on_the_form_and_nothing_is_saved(admin_client, overrides, field, text):
    response = admin_client.post(reverse("admin:plugins_app_plugin_add"), form_data(**overrides))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert field in errors and text in " ".join(errors[field])
    assert not Plugin.objects.exists()


@pytest.mark.django_db
def test_bulk_enable_and_disable(admin_client, greeter):
    url = reverse(CHANGELIST)
    admin_client.post(url, {"action": "disable_plugins", "_selected_action": [greeter.pk]})
    assert not Plugin.objects.get(pk=greeter.pk).enabled
    admin_client.post(url, {"action": "enable_plugins", "_selected_action": [greeter.pk]})
    assert Plugin.objects.get(pk=greeter.pk).enabled


@pytest.mark.django_db
def test_try_a_hook(admin_client, greeter):
    # The console replaced the "Call a hook" page (tests/test_console.py covers it in full).
    url = reverse("admin:plugins_app_plugin_console", args=[greeter.pk])
    response = admin_client.post(
        url, {"hook": "greet", "args": json.dumps(["World"]), "target": "saved", "mode": "dry"}
    )
    body = response.content.decode()
    assert response.status_code == 200
    assert "Hello, World! App version: 1.0.0" in body and "Greeting World" in body
    response = admin_client.post(url, {"hook": "greet", "args": "not json", "target": "saved", "mode": "dry"})
    assert response.status_code == 200 and "JSON" in response.content.decode()


@pytest.mark.django_db
def test_try_shows_plugin_errors_without_crashing(admin_client, make_plugin):
    plugin = make_plugin(
        "const plugin = { boom() { throw new Error('kaput'); }, loop() { while(true){} } };", timeout_ms=200
    )
    url = reverse("admin:plugins_app_plugin_console", args=[plugin.pk])
    run = {"args": "[]", "target": "saved", "mode": "dry"}
    assert "kaput" in admin_client.post(url, {"hook": "boom", **run}).content.decode()
    assert "PluginTimeout" in admin_client.post(url, {"hook": "loop", **run}).content.decode()


@pytest.mark.django_db
def test_view_only_staff_cannot_change_call_or_run_actions(client, staff_viewer, greeter):
    client.force_login(staff_viewer)
    assert client.get(reverse(CHANGELIST)).status_code == 200
    try_url = reverse("admin:plugins_app_plugin_try", args=[greeter.pk])
    assert client.get(try_url).status_code == 403
    assert client.post(try_url, {"hook": "greet", "args": '["x"]'}).status_code == 403
    client.post(reverse(CHANGELIST), {"action": "disable_plugins", "_selected_action": [greeter.pk]})
    assert Plugin.objects.get(pk=greeter.pk).enabled
    change_url = reverse("admin:plugins_app_plugin_change", args=[greeter.pk])
    client.post(change_url, form_data(slug="greeter", source="const plugin = { x() {} };"))
    assert Plugin.objects.get(pk=greeter.pk).source == GREETER


@pytest.mark.django_db
def test_anonymous_users_are_sent_to_login(client, greeter):
    response = client.get(reverse("admin:plugins_app_plugin_try", args=[greeter.pk]))
    assert response.status_code == 302 and "login" in response["Location"]


@pytest.mark.django_db
def test_saving_an_unchanged_plugin_keeps_its_version(admin_client, greeter):
    url = reverse("admin:plugins_app_plugin_change", args=[greeter.pk])
    data = form_data(
        slug="greeter", name="Greeter", source=greeter.source.replace("\n", "\r\n"), config='{"version": "1.0.0"}'
    )
    data["enabled"] = "on"
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    greeter.refresh_from_db()
    assert greeter.version == 1 and greeter.source == GREETER
