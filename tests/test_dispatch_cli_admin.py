"""Actions, filters, priority and the circuit breaker from the shell
(`manage.py plugins do-action/apply-filters/resume/install --priority/list`) and the admin."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth.models import Permission, User
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from plugins_app import hooks
from plugins_app.models import Plugin

from .cli import run
from .conftest import GREETER

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:plugins_app_plugin_changelist"


def filter_plugin(expr: str) -> str:
    return f"const plugin = {{ title(value, suffix) {{ return {expr}; }} }};"


def pause(plugin: Plugin, reason: str = "5 consecutive failures; last: PluginTimeout: too slow") -> None:
    Plugin.objects.filter(pk=plugin.pk).update(paused_at=timezone.now(), paused_reason=reason, consecutive_failures=5)


@pytest.fixture
def actions(make_plugin):
    make_plugin("const plugin = { saved(n, tag) { log(`saw ${n}`); return [n * 2, tag]; } };", slug="one", priority=1)
    make_plugin("const plugin = { saved() { throw new TypeError('nope'); } };", slug="two", priority=2)
    make_plugin(
        "const plugin = { saved(n) { console.warn('three ran'); return {n: n + 1}; } };", slug="three", priority=3
    )


@pytest.fixture
def filters(make_plugin):
    make_plugin(filter_plugin("value + ' B' + (suffix || '')"), slug="b", priority=20)
    make_plugin(filter_plugin("value + ' A'"), slug="a", priority=10)
    make_plugin(filter_plugin("value + ' C'"), slug="c", priority=20)  # tie with b: slug decides
    make_plugin(filter_plugin("value + ' off'"), slug="off", enabled=False)


# -- do-action ------------------------------------------------------------------------------------
def test_do_action_reports_every_plugin_in_dispatch_order_and_exits_1_on_any_failure(actions):
    code, out, err = run("do-action", "saved", "10", '"tag"')
    assert code == 1
    assert json.loads(out) == [
        {"plugin": "one", "ok": True, "value": [20, "tag"]},
        {
            "plugin": "two",
            "ok": False,
            "error": "PluginScriptError: plugin 'two' threw TypeError: nope at line 1, column 34",
        },
        {"plugin": "three", "ok": True, "value": {"n": 11}},
    ]
    lines = err.splitlines()
    assert "[one] info: saw 10" in lines and "[three] warning: three ran" in lines


def test_do_action_exits_0_when_all_plugins_succeed(actions):
    Plugin.objects.filter(slug="two").update(enabled=False)
    code, out, _ = run("do-action", "saved", "1")
    assert code == 0
    assert [(r["plugin"], r["ok"]) for r in json.loads(out)] == [("one", True), ("three", True)]
    assert run("do-action", "no-such-hook") == (0, "[]\n", "")


def test_do_action_follows_priority_changes_and_skips_paused_plugins(actions):
    Plugin.objects.filter(slug="three").update(priority=0)
    pause(Plugin.objects.get(slug="two"))
    code, out, _ = run("do-action", "saved", "1")
    assert code == 0 and [r["plugin"] for r in json.loads(out)] == ["three", "one"]


def test_do_action_arguments_are_json(actions):
    with pytest.raises(CommandError, match="not a JSON value"):
        call_command("plugins", "do-action", "saved", "ten")
    with pytest.raises(CommandError):
        call_command("plugins", "do-action", "saved", "--timeout", "0")


# -- apply-filters --------------------------------------------------------------------------------
def test_apply_filters_chains_in_priority_order(filters):
    assert run("apply-filters", "title", '"X"') == (0, '"X A B C"\n', "")
    code, out, _ = run("apply-filters", "title", '"X"', '"!"')
    assert (code, json.loads(out)) == (0, "X A B! C")
    assert run("apply-filters", "no-such-hook", '{"a": [1]}') == (0, '{"a": [1]}\n', "")
    Plugin.objects.filter(slug="a").update(priority=30)
    assert json.loads(run("apply-filters", "title", '"X"')[1]) == "X B C A"


def test_apply_filters_skips_a_failing_plugin_unless_fail_closed(filters, make_plugin):
    make_plugin("const plugin = { title() { throw new Error('broken filter'); } };", slug="bb", priority=20)
    code, out, err = run("apply-filters", "title", '"X"')
    assert (code, json.loads(out)) == (0, "X A B C")
    code, out, err = run("apply-filters", "title", '"X"', "--fail-closed")
    assert (code, out) == (1, "")
    assert err.startswith("PluginScriptError: ") and "broken filter" in err
    with pytest.raises(CommandError, match="not a JSON value"):
        call_command("plugins", "apply-filters", "title", "X")


# -- install --priority / --http, list ---------------------------------------------------------------
def test_install_with_priority_and_http(tmp_path: Path):
    path = tmp_path / "greeter.js"
    path.write_text(GREETER)
    code, out, _ = run("install", str(path), "--slug", "greeter", "--priority", "-5", "--http")
    assert code == 0 and "priority -5" in out
    plugin = Plugin.objects.get(slug="greeter")
    assert (plugin.priority, plugin.http_enabled) == (-5, True)
    # Re-installing without the options keeps them; --no-http turns HTTP off.
    assert run("install", str(path), "--slug", "greeter")[0] == 0
    plugin.refresh_from_db()
    assert (plugin.priority, plugin.http_enabled) == (-5, True)
    assert run("install", str(path), "--slug", "greeter", "--priority", "7", "--no-http")[0] == 0
    plugin.refresh_from_db()
    assert (plugin.priority, plugin.http_enabled, plugin.version) == (7, False, 1)
    code, out, _ = run("install", str(path), "--slug", "new", "--enable")
    assert code == 0 and Plugin.objects.get(slug="new").priority == 100


def test_reinstalling_keeps_a_paused_plugin_paused(tmp_path: Path, greeter):
    path = tmp_path / "greeter.js"
    path.write_text(GREETER.replace("Goodbye", "Bye"))
    pause(greeter)
    code, out, _ = run("install", str(path), "--slug", "greeter")
    assert code == 0 and "Updated greeter version 2 (enabled, paused, priority 100)" in out
    greeter.refresh_from_db()
    assert greeter.is_paused and greeter.consecutive_failures == 5 and "Bye" in greeter.source


def test_list_shows_priority_and_paused_state(actions):
    pause(Plugin.objects.get(slug="two"), reason="2 consecutive failures; last: PluginScriptError: nope")
    code, out, _ = run("list")
    assert code == 0
    lines = out.splitlines()
    one = next(line for line in lines if line.startswith("one "))
    two = next(line for line in lines if line.startswith("two "))
    assert "priority 1" in one and "paused" not in one
    assert "priority 2" in two and "paused" in two
    assert any("paused at" in line and "PluginScriptError: nope" in line for line in lines)


# -- resume --------------------------------------------------------------------------------------
def test_resume_after_the_breaker_paused_a_plugin(make_plugin, settings):
    settings.PLUGINS_APP = {"BREAKER_THRESHOLD": 2}
    make_plugin("const plugin = { h(fail) { if (fail) throw new Error('bad'); return 'ok'; } };", slug="flaky")
    for _ in range(2):
        assert run("do-action", "h", "true")[0] == 1
    assert Plugin.objects.get(slug="flaky").is_paused
    assert run("do-action", "h", "false") == (0, "[]\n", "")  # skipped while paused
    code, _, err = run("call", "flaky", "h", "false")
    assert code == 1 and err.startswith("PluginPaused: ")

    code, out, _ = run("resume", "flaky")
    assert code == 0 and "flaky resumed" in out
    plugin = Plugin.objects.get(slug="flaky")
    assert (plugin.is_paused, plugin.paused_reason, plugin.consecutive_failures) == (False, "", 0)
    assert json.loads(run("do-action", "h", "false")[1]) == [{"plugin": "flaky", "ok": True, "value": "ok"}]

    code, out, _ = run("resume", "flaky")
    assert code == 0 and "not paused" in out
    with pytest.raises(CommandError, match="no plugin 'missing'"):
        call_command("plugins", "resume", "missing")


# -- admin ---------------------------------------------------------------------------------------
def form_data(**overrides) -> dict:
    data = {
        "name": "New",
        "slug": "new",
        "description": "",
        "source": GREETER,
        "memory_limit_mb": "64",
        "timeout_ms": "1000",
        "config": '{"version": "2"}',
        "grants-TOTAL_FORMS": "0",
        "grants-INITIAL_FORMS": "0",
        "storage_items-TOTAL_FORMS": "0",
        "storage_items-INITIAL_FORMS": "0",
    }
    data.update(overrides)
    return data


@pytest.fixture
def staff_viewer(db) -> User:
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_plugin"))
    return user


def test_admin_form_sets_priority_and_http(admin_client):
    response = admin_client.post(reverse("admin:plugins_app_plugin_add"), form_data(priority="5", http_enabled="on"))
    assert response.status_code == 302
    plugin = Plugin.objects.get(slug="new")
    assert (plugin.priority, plugin.http_enabled) == (5, True)
    change_url = reverse("admin:plugins_app_plugin_change", args=[plugin.pk])
    body = admin_client.get(change_url).content.decode()
    assert 'name="priority"' in body and 'name="http_enabled"' in body
    # Submitted empty: the default priority; left out of the POST: kept.
    response = admin_client.post(change_url, form_data(priority=""))
    assert response.status_code == 302
    plugin.refresh_from_db()
    assert (plugin.priority, plugin.http_enabled) == (100, False)
    Plugin.objects.filter(pk=plugin.pk).update(priority=3)
    assert admin_client.post(change_url, form_data()).status_code == 302
    plugin.refresh_from_db()
    assert plugin.priority == 3


def test_changelist_shows_priority_and_paused_and_filters_on_paused(admin_client, greeter, make_plugin):
    other = make_plugin("const plugin = { h() { return 1; } };", slug="other", priority=7)
    pause(other)
    response = admin_client.get(reverse(CHANGELIST))
    assert response.status_code == 200
    body = response.content.decode()
    assert "column-paused" in body and "column-priority" in body
    assert 'value="7"' in body  # priority is editable in the list
    paused = admin_client.get(reverse(CHANGELIST), {"paused": "yes"})
    assert [p.slug for p in paused.context["cl"].result_list] == ["other"]
    running = admin_client.get(reverse(CHANGELIST), {"paused": "no"})
    assert [p.slug for p in running.context["cl"].result_list] == ["greeter"]


def test_changelist_edits_priority(admin_client, greeter):
    data = {
        "form-TOTAL_FORMS": "1",
        "form-INITIAL_FORMS": "1",
        "form-0-id": str(greeter.pk),
        "form-0-priority": "42",
        "_save": "Save",
    }
    response = admin_client.post(reverse(CHANGELIST), data)
    assert response.status_code == 302
    greeter.refresh_from_db()
    assert (greeter.priority, greeter.version) == (42, 1)


def test_change_page_warns_when_paused_and_shows_breaker_fields_read_only(admin_client, greeter):
    url = reverse("admin:plugins_app_plugin_change", args=[greeter.pk])
    body = admin_client.get(url).content.decode()
    assert "plugin-paused-warning" not in body
    pause(greeter, reason="5 consecutive failures; last: PluginTimeout: <too slow>")
    body = admin_client.get(url).content.decode()
    assert 'id="plugin-paused-warning"' in body
    assert "PluginTimeout: &lt;too slow&gt;" in body  # the reason, escaped
    assert 'name="paused_at"' not in body and 'name="consecutive_failures"' not in body
    assert "field-consecutive_failures" in body and "field-paused_reason" in body


def test_saving_the_form_does_not_unpause(admin_client, greeter):
    pause(greeter)
    url = reverse("admin:plugins_app_plugin_change", args=[greeter.pk])
    data = form_data(slug="greeter", name="Greeter", config='{"version": "1.0.0"}', enabled="on", priority="9")
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    greeter.refresh_from_db()
    assert greeter.is_paused and greeter.consecutive_failures == 5 and greeter.priority == 9


def test_resume_action_resumes_and_records_history(admin_client, admin_user, greeter, make_plugin):
    other = make_plugin("const plugin = { h() { return 1; } };", slug="other")
    pause(greeter)
    response = admin_client.post(
        reverse(CHANGELIST), {"action": "resume_plugins", "_selected_action": [greeter.pk, other.pk]}, follow=True
    )
    assert response.status_code == 200
    assert "Resumed 1 plugin(s). 1 not paused." in response.content.decode()
    greeter.refresh_from_db()
    assert (greeter.is_paused, greeter.paused_reason, greeter.consecutive_failures) == (False, "", 0)
    assert greeter.updated_by == admin_user
    entries = LogEntry.objects.filter(object_id=str(greeter.pk), action_flag=CHANGE)
    assert entries.count() == 1
    message = entries.get().get_change_message()
    assert "Paused at" in message and "Consecutive failures" in message
    assert not LogEntry.objects.filter(object_id=str(other.pk)).exists()
    assert hooks.call("greeter", "farewell", "x") == "Goodbye, x!"


def test_view_only_staff_cannot_resume_but_see_the_paused_state(client, staff_viewer, greeter):
    pause(greeter)
    client.force_login(staff_viewer)
    response = client.get(reverse(CHANGELIST))
    assert response.status_code == 200 and "resume_plugins" not in response.content.decode()
    client.post(reverse(CHANGELIST), {"action": "resume_plugins", "_selected_action": [greeter.pk]})
    assert Plugin.objects.get(pk=greeter.pk).is_paused
    assert not LogEntry.objects.exists()
    body = client.get(reverse("admin:plugins_app_plugin_change", args=[greeter.pk])).content.decode()
    assert 'id="plugin-paused-warning"' in body and "PluginTimeout: too slow" in body


def test_try_page_mentions_a_paused_plugin(admin_client, greeter):
    pause(greeter)
    body = admin_client.get(reverse("admin:plugins_app_plugin_console", args=[greeter.pk])).content.decode()
    assert "paused by the circuit breaker" in body
