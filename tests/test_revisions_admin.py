"""Revisions in the admin: one revision per form save with its comment, the revision list,
the diff (escaped), *Roll back to this revision*, and refusing a form opened before
another save (optimistic concurrency)."""

from __future__ import annotations

import re

import pytest
from django import forms
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Permission, User
from django.test import Client
from django.urls import reverse

from plugins_app import revisions
from plugins_app.models import Plugin, PluginGrant, PluginRevision

from .cli import run

SOURCE = "const plugin = {\n  greet(name) { return `Hello, ${name}!`; }\n};"
SOURCE_2 = "const plugin = {\n  greet(name) { return `Hi, ${name}!`; },\n  bye() { return 'bye'; }\n};"
CHANGELIST = "admin:plugins_app_plugin_changelist"

pytestmark = pytest.mark.django_db


@pytest.fixture
def plugin(make_plugin) -> Plugin:
    return make_plugin(SOURCE, slug="rev", config={"a": 1})


@pytest.fixture
def staff_viewer(db) -> User:
    user = User.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_plugin"))
    return user


@pytest.fixture
def plugin_editor(db) -> User:
    """May change plugins, but has no grant permissions."""
    user = User.objects.create_user("editor", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_plugin", "change_plugin"]))
    return user


def change_url(plugin: Plugin) -> str:
    return reverse("admin:plugins_app_plugin_change", args=[plugin.pk])


def url(name: str, plugin: Plugin, *args) -> str:
    return reverse(f"admin:plugins_app_plugin_{name}", args=[plugin.pk, *args])


def open_form(client: Client, plugin: Plugin) -> dict[str, str]:
    """GET the change page and return what the browser would POST back unchanged."""
    response = client.get(change_url(plugin))
    assert response.status_code == 200
    data: dict[str, str] = {}

    def add(form: forms.BaseForm) -> None:
        for bound in form:
            value = bound.value()
            if isinstance(bound.field.widget, forms.CheckboxInput):
                if value:
                    data[bound.html_name] = "on"
            else:
                data[bound.html_name] = "" if value is None else str(value)

    add(response.context["adminform"].form)
    for inline in response.context["inline_admin_formsets"]:
        add(inline.formset.management_form)
        for form in inline.formset.forms:
            add(form)
    return data


def add_grant_row(data: dict[str, str], **row: str) -> dict[str, str]:
    index = int(data["grants-TOTAL_FORMS"])
    data["grants-TOTAL_FORMS"] = str(index + 1)
    for key, value in row.items():
        data[f"grants-{index}-{key}"] = value
    return data


def numbers(plugin: Plugin) -> list[int]:
    return list(plugin.revisions.order_by("number").values_list("number", flat=True))


def latest(plugin: Plugin) -> PluginRevision:
    return plugin.revisions.order_by("-number").first()


def errors_of(response) -> str:
    return " ".join(response.context["adminform"].form.non_field_errors())


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


# -- recording from the form ---------------------------------------------------------------------
def test_change_page_has_revisions_link_comment_and_edit_token(admin_client, plugin):
    body = admin_client.get(change_url(plugin)).content.decode()
    assert 'id="plugin-revisions-link"' in body and "Revisions (1)" in body and url("revisions", plugin) in body
    assert 'name="change_comment"' in body and "Change comment" in body
    assert re.search(r'<input type="hidden" name="edit_token" value="[^"]+"', body)


def test_a_form_save_records_one_revision_with_comment_user_and_grants(admin_client, admin_user, plugin):
    data = open_form(admin_client, plugin)
    data.update(source=SOURCE_2, change_comment="Say hi, add bye")
    add_grant_row(data, model="auth.User", read="id, username", create="", update="")
    response = admin_client.post(change_url(plugin), data, follow=True)
    assert response.redirect_chain, errors_of(response)
    assert numbers(plugin) == [1, 2]
    rev = latest(plugin)
    assert rev.changes == ["source", "grants"] and rev.comment == "Say hi, add bye"
    assert rev.created_by == admin_user and rev.origin == "admin"
    assert rev.grants == [
        {"model": "auth.User", "read": ["id", "username"], "create": [], "update": [], "can_delete": False}
    ]
    assert rev.plugin_version == Plugin.objects.get(pk=plugin.pk).version
    assert any("Recorded revision 2 (source, grants)" in re.sub("<[^>]+>", "", m) for m in messages_of(response))
    history = LogEntry.objects.filter(object_id=str(plugin.pk)).latest("action_time").get_change_message()
    assert "Source" in history and "comment" not in history.lower() and "token" not in history.lower()


def test_a_form_save_without_a_relevant_change_records_none(admin_client, plugin):
    data = open_form(admin_client, plugin)
    data.update(name="Renamed", priority="7", description="words", change_comment="cosmetic")
    assert admin_client.post(change_url(plugin), data).status_code == 302
    plugin.refresh_from_db()
    assert plugin.name == "Renamed" and plugin.priority == 7
    assert numbers(plugin) == [1]
    data = open_form(admin_client, plugin)  # unchanged, CRLF line endings as browsers send them
    data["source"] = data["source"].replace("\n", "\r\n")
    assert admin_client.post(change_url(plugin), data).status_code == 302
    assert numbers(plugin) == [1]


def test_adding_a_plugin_records_revision_1_with_the_comment(admin_client, admin_user):
    data = {
        "name": "New",
        "slug": "new",
        "description": "",
        "source": SOURCE,
        "memory_limit_mb": "64",
        "timeout_ms": "1000",
        "config": "{}",
        "change_comment": "initial import",
        "grants-TOTAL_FORMS": "0",
        "grants-INITIAL_FORMS": "0",
        "storage_items-TOTAL_FORMS": "0",
        "storage_items-INITIAL_FORMS": "0",
    }
    assert admin_client.post(reverse("admin:plugins_app_plugin_add"), data).status_code == 302
    rev = latest(Plugin.objects.get(slug="new"))
    assert rev.number == 1 and rev.comment == "initial import" and rev.created_by == admin_user


# -- optimistic concurrency -------------------------------------------------------------------
def test_saving_a_form_opened_before_another_save_is_refused(admin_client, plugin):
    first = open_form(admin_client, plugin)
    second = open_form(admin_client, plugin)  # another tab
    first.update(source=SOURCE_2)
    assert admin_client.post(change_url(plugin), first).status_code == 302
    second.update(config='{"a": 99}', description="from tab 2")
    response = admin_client.post(change_url(plugin), second)
    assert response.status_code == 200
    text = errors_of(response)
    assert "after you opened this page" in text and "Changed since: Source." in text and "not saved" in text
    assert "New revisions: 2 (source; admin" in text
    # A link to the diff between what the form was opened on and now.
    diff_link = url("revision_diff", plugin) + "?from=1&amp;to=2"
    assert any(diff_link in m for m in messages_of(response))
    plugin.refresh_from_db()
    assert plugin.source == SOURCE_2 and plugin.config == {"a": 1} and plugin.description == ""
    assert numbers(plugin) == [1, 2]
    # Posting the same stale form again is still refused; a freshly opened one saves.
    assert admin_client.post(change_url(plugin), second).status_code == 200
    fresh = open_form(admin_client, plugin)
    fresh.update(config='{"a": 99}')
    assert admin_client.post(change_url(plugin), fresh).status_code == 302
    assert Plugin.objects.get(pk=plugin.pk).config == {"a": 99}


def test_enable_disable_between_opening_and_saving_conflicts(admin_client, plugin):
    data = open_form(admin_client, plugin)
    admin_client.post(reverse(CHANGELIST), {"action": "disable_plugins", "_selected_action": [plugin.pk]})
    data.update(priority="3")
    response = admin_client.post(change_url(plugin), data)
    assert response.status_code == 200 and "Changed since: Enabled." in errors_of(response)
    plugin.refresh_from_db()
    assert not plugin.enabled and plugin.priority == 100  # the form would have re-enabled it


@pytest.mark.parametrize(
    "change, label",
    [
        (lambda p: run("grant", "rev", "auth.User", "--read", "id"), "Grants"),
        (lambda p: run("disable", "rev"), "Enabled"),
        (lambda p: Plugin.objects.filter(pk=p.pk).update(name="Other"), "Name"),
        (lambda p: Plugin.objects.get(pk=p.pk).save(update_fields=["priority"]), "It was saved again"),
    ],
)
def test_any_save_in_between_conflicts(admin_client, plugin, change, label):
    data = open_form(admin_client, plugin)
    change(plugin)
    response = admin_client.post(change_url(plugin), data)
    assert response.status_code == 200 and label in errors_of(response)


def test_a_breaker_pause_in_between_does_not_conflict(admin_client, plugin):
    from plugins_app import breaker

    data = open_form(admin_client, plugin)
    row = Plugin.objects.dispatch_row(plugin.slug)
    breaker.record_failure(row, RuntimeError("x"))  # type: ignore[arg-type]
    data.update(description="fine")
    assert admin_client.post(change_url(plugin), data).status_code == 302
    assert Plugin.objects.get(pk=plugin.pk).description == "fine"


def test_save_and_continue_then_save_again_is_fine(admin_client, plugin):
    data = open_form(admin_client, plugin)
    data.update(source=SOURCE_2, _continue="1")
    assert admin_client.post(change_url(plugin), data).status_code == 302
    data = open_form(admin_client, plugin)
    data.update(config='{"b": 2}')
    assert admin_client.post(change_url(plugin), data).status_code == 302
    assert numbers(plugin) == [1, 2, 3]


def test_a_damaged_token_is_refused(admin_client, plugin):
    data = open_form(admin_client, plugin)
    data["edit_token"] = data["edit_token"][:-3] + "xyz"
    response = admin_client.post(change_url(plugin), data)
    assert response.status_code == 200 and "damaged" in errors_of(response)


# -- revision pages ------------------------------------------------------------------------------
def make_history(plugin: Plugin) -> None:
    """r2: source with markup; r3: config; r4: a grant."""
    plugin.source = "const plugin = {\n  html() { return '</script><script>alert(1)</script>'; }\n};"
    plugin.full_clean()
    plugin.save()
    with revisions.recording(origin="code", comment="<b>bold</b> comment"):
        plugin.config = {"title": "<img src=x onerror=alert(2)>"}
        plugin.full_clean()
        plugin.save()
    PluginGrant(plugin=plugin, model="auth.User", read=["id"]).save()


def test_revision_list_page(admin_client, plugin):
    make_history(plugin)
    response = admin_client.get(url("revisions", plugin))
    body = response.content.decode()
    assert response.status_code == 200
    assert [row["revision"].number for row in response.context["rows"]] == [4, 3, 2, 1]
    assert "&lt;b&gt;bold&lt;/b&gt; comment" in body and "<b>bold</b>" not in body
    assert 'name="from" value="3"' in body and 'name="to" value="4"' in body
    for number in (1, 2, 3, 4):
        assert url("revision", plugin, number) in body


def test_diff_shows_both_sides_escaped(admin_client, plugin):
    make_history(plugin)
    for view in ("", "&view=split", "&context=all"):
        response = admin_client.get(url("revision_diff", plugin) + f"?from=1&to=3{view}")
        body = response.content.decode()
        assert response.status_code == 200
        assert "<script>alert(1)" not in body and "<img src=x" not in body
        assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in body  # new side
        assert "return `Hello, ${name}!`;" in body  # old side
        assert "&lt;img src=x onerror=alert(2)&gt;" in body
        assert "Changed: source, config." in body
    diff = response.context["diff"]
    source = next(t for t in diff.texts if t.name == "source")
    assert source.added == 1 and source.removed == 1


def test_diff_defaults_to_the_last_change_and_404s_on_unknown_revisions(admin_client, plugin):
    make_history(plugin)
    response = admin_client.get(url("revision_diff", plugin))
    assert (response.context["old"].number, response.context["new"].number) == (3, 4)
    assert "Changed: grants." in response.content.decode()
    assert admin_client.get(url("revision_diff", plugin) + "?from=1&to=99").status_code == 404
    assert admin_client.get(url("revision_diff", plugin) + "?from=x").status_code == 404
    assert admin_client.get(url("revision", plugin, 99)).status_code == 404


def test_revision_page_shows_the_snapshot_and_a_rollback_form(admin_client, plugin):
    make_history(plugin)
    body = admin_client.get(url("revision", plugin, 2)).content.decode()
    assert "&lt;/script&gt;&lt;script&gt;alert(1)" in body and "<script>alert(1)" not in body
    assert 'id="revision-rollback-form"' in body and url("revision_rollback", plugin, 2) in body
    assert "Restores this revision’s config, grants." in body.replace("&#x27;", "’").replace("'", "’")
    body = admin_client.get(url("revision", plugin, 4)).content.decode()  # the current one
    assert 'id="revision-rollback-form"' not in body and 'id="revision-matches"' in body


# -- rollback ------------------------------------------------------------------------------------
def test_rollback_from_the_admin_restores_everything_as_a_new_revision(admin_client, admin_user, plugin):
    PluginGrant(plugin=plugin, model="demo.Note", read=["id", "title"], update=["title"]).save()  # r2
    data = open_form(admin_client, plugin)
    data.update(
        source=SOURCE_2, config='{"z": true}', timeout_ms="2500", max_rows_read="3", **{"grants-0-DELETE": "on"}
    )
    add_grant_row(data, model="auth.User", read="id", create="", update="")
    assert admin_client.post(change_url(plugin), data).status_code == 302  # r3
    plugin.refresh_from_db()
    assert plugin.hooks == ["greet", "bye"] and [g.model for g in plugin.grants.all()] == ["auth.User"]

    response = admin_client.post(url("revision_rollback", plugin, 2), {"comment": "broke search", "latest": "3"})
    assert response.status_code == 302 and response.url == change_url(plugin)
    plugin.refresh_from_db()
    r2 = plugin.revisions.get(number=2)
    assert revisions.snapshot(plugin) == revisions.revision_snapshot(r2)
    assert plugin.source == SOURCE and plugin.config == {"a": 1} and plugin.timeout_ms == r2.timeout_ms
    assert plugin.hooks == ["greet"]
    assert list(plugin.grants.values_list("model", "read", "update")) == [("demo.Note", ["id", "title"], ["title"])]
    rev = latest(plugin)
    assert (rev.number, rev.rolled_back_to, rev.comment, rev.created_by) == (4, 2, "broke search", admin_user)
    assert LogEntry.objects.filter(
        object_id=str(plugin.pk), change_message__contains="Rolled back to revision 2"
    ).exists()
    assert any("Rolled back to revision 2" in m for m in messages_of(admin_client.get(change_url(plugin))))


def test_rollback_needs_post_csrf_and_the_change_permission(client, staff_viewer, plugin, admin_user):
    plugin.source = SOURCE_2
    plugin.full_clean()
    plugin.save()
    rollback = url("revision_rollback", plugin, 1)
    client.force_login(staff_viewer)
    assert client.get(url("revisions", plugin)).status_code == 200  # may see
    assert client.get(url("revision", plugin, 1)).status_code == 200
    assert 'id="revision-rollback-form"' not in client.get(url("revision", plugin, 1)).content.decode()
    assert client.get(url("revision_diff", plugin)).status_code == 200
    assert client.post(rollback).status_code == 403
    csrf_client = Client(enforce_csrf_checks=True)
    csrf_client.force_login(admin_user)
    assert csrf_client.post(rollback).status_code == 403
    assert client.get(rollback).status_code == 405
    admin = Client()
    admin.force_login(admin_user)
    assert admin.get(rollback).status_code == 405
    assert Plugin.objects.get(pk=plugin.pk).source == SOURCE_2 and numbers(plugin) == [1, 2]
    # Without any plugin permission, not even the list.
    nobody = User.objects.create_user("nobody", password="pw", is_staff=True)
    client.force_login(nobody)
    assert client.get(url("revisions", plugin)).status_code == 403


def test_rollback_that_fails_validation_shows_the_error_and_changes_nothing(admin_client, plugin, settings):
    plugin.timeout_ms = 5000
    plugin.full_clean()
    plugin.save()
    plugin.timeout_ms, plugin.source = 1000, SOURCE_2
    plugin.full_clean()
    plugin.save()
    settings.PLUGINS_APP = {"MAX_TIMEOUT_MS": 3000}
    response = admin_client.post(url("revision_rollback", plugin, 2), follow=True)
    text = " ".join(messages_of(response))
    assert "Could not roll back to revision 2: time limit: Must be between 10 and 3000 ms." in text
    assert "Nothing was changed." in text
    plugin.refresh_from_db()
    assert plugin.source == SOURCE_2 and plugin.timeout_ms == 1000 and numbers(plugin) == [1, 2, 3]


def test_rollback_of_grants_needs_the_grant_permissions(client, plugin_editor, plugin):
    PluginGrant(plugin=plugin, model="auth.User", read=["id"]).save()  # r2
    plugin.source = SOURCE_2
    plugin.full_clean()
    plugin.save()  # r3
    client.force_login(plugin_editor)
    response = client.post(url("revision_rollback", plugin, 1), follow=True)
    assert "needs the delete grant permission" in " ".join(messages_of(response))
    assert Plugin.objects.get(pk=plugin.pk).source == SOURCE_2 and plugin.grants.count() == 1
    # Rolling back only the source (revision 2 has the same grant) is allowed.
    assert client.post(url("revision_rollback", plugin, 2)).status_code == 302
    assert Plugin.objects.get(pk=plugin.pk).source == SOURCE and numbers(plugin) == [1, 2, 3, 4]


def test_rollback_against_a_stale_page_is_refused(admin_client, plugin):
    plugin.source = SOURCE_2
    plugin.full_clean()
    plugin.save()  # r2: the page was opened here
    plugin.config = {"b": 1}
    plugin.full_clean()
    plugin.save()  # r3: someone else
    response = admin_client.post(url("revision_rollback", plugin, 1), {"latest": "2"}, follow=True)
    assert "Not rolled back: plugin 'rev' is at revision 3, not 2" in " ".join(messages_of(response))
    assert Plugin.objects.get(pk=plugin.pk).source == SOURCE_2


def test_view_only_staff_sees_no_comment_field_or_token(client, staff_viewer, plugin):
    client.force_login(staff_viewer)
    body = client.get(change_url(plugin)).content.decode()
    assert 'id="plugin-revisions-link"' in body
    assert 'name="change_comment"' not in body and 'name="edit_token"' not in body
