"""The admin console (plugins_app.console, plugins_app.admin.console): dry runs roll back
every write, real runs keep them, the circuit breaker never sees console calls, drafts
run the draft's code (validated first, errors with line and column), permissions, the
replay link's parameters, and the old "Call a hook" URL."""

from __future__ import annotations

import html
import json
import re

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from plugins_app import console, hooks
from plugins_app.exceptions import PluginPaused, PluginScriptError
from plugins_app.models import Delivery, Plugin, PluginGrant, StorageItem
from project.demo.models import Note

from .conftest import GREETER

pytestmark = pytest.mark.django_db

# Writes to a model, to storage (set and an atomic incr) and reads its own writes back;
# defines noteSaved so that the Note it creates also records an outbox delivery.
WRITER = """const plugin = {
  write(authorId, title) {
    db.create("demo.Note", { author: authorId, title });
    storage.set("last", title);
    const count = storage.incr("count");
    log("wrote " + title);
    return { count, notes: db.count("demo.Note", {}), last: storage.get("last") };
  },
  fail() {
    throw new Error("boom");
  },
  ok() { return "fine"; },
  noteSaved(note) { return null; },
};
"""


def console_url(plugin: Plugin, **query: str) -> str:
    url = reverse("admin:plugins_app_plugin_console", args=[plugin.pk])
    if query:
        from urllib.parse import urlencode

        url += "?" + urlencode(query)
    return url


def post_run(client, plugin: Plugin, hook: str, args: list, *, mode: str = "dry", target: str = "saved", **draft):
    data = {"hook": hook, "args": json.dumps(args), "mode": mode, "target": target, **draft}
    return client.post(console_url(plugin), data)


@pytest.fixture
def author(db) -> User:
    return User.objects.create_user("author", password="pw")


@pytest.fixture
def writer(make_plugin) -> Plugin:
    plugin = make_plugin(WRITER, slug="writer")
    grant = PluginGrant(plugin=plugin, model="demo.Note", read=["id", "title"], create=["author", "title"])
    grant.full_clean()
    grant.save()
    plugin.refresh_from_db()
    return plugin


def user_with(*codenames: str, name: str = "operator") -> User:
    user = User.objects.create_user(name, password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="plugins_app", codename__in=codenames))
    return user


# -- dry runs and real runs ---------------------------------------------------------------------


def test_dry_run_rolls_back_db_storage_and_outbox_writes(admin_client, writer, author):
    response = post_run(admin_client, writer, "write", [author.pk, "first"])
    body = response.content.decode()
    assert response.status_code == 200
    outcome = response.context["outcome"]
    # Inside the call, its own writes were visible...
    assert outcome.ok and outcome.value == {"count": 1, "notes": 1, "last": "first"}, outcome.error
    assert outcome.dry_run and "Dry run: writes are rolled back" in body
    assert "info: wrote first" in body
    assert outcome.host_calls == 5 and outcome.rows_written == 1
    assert 'id="plugin-console-host-calls">5 of 200' in body
    # ...and afterwards none of them is left: the note, both storage keys, the delivery.
    assert not Note.objects.exists()
    assert not StorageItem.objects.filter(plugin=writer).exists()
    assert not Delivery.objects.exists()
    # Again: incr starts from nothing again, since nothing was kept.
    assert post_run(admin_client, writer, "write", [author.pk, "second"]).context["outcome"].value["count"] == 1


def test_real_run_keeps_the_writes(admin_client, writer, author):
    response = post_run(admin_client, writer, "write", [author.pk, "kept"], mode="real")
    assert "Real run: writes are kept" in response.content.decode()
    assert response.context["outcome"].value == {"count": 1, "notes": 1, "last": "kept"}
    assert list(Note.objects.values_list("title", flat=True)) == ["kept"]
    assert StorageItem.objects.get(plugin=writer, key="last").value == "kept"
    assert Delivery.objects.filter(plugin=writer, hook="noteSaved").count() == 1
    second = post_run(admin_client, writer, "write", [author.pk, "again"], mode="real").context["outcome"]
    assert second.value == {"count": 2, "notes": 2, "last": "again"}


def test_the_console_api_rolls_back_inside_the_callers_transaction(writer, author):
    for _ in range(2):
        outcome = console.run(writer, "write", [author.pk, "x"])
        assert outcome.ok and outcome.value["count"] == 1
    assert not StorageItem.objects.exists() and not Note.objects.exists()
    outcome = console.run(writer, "write", [author.pk, "y"], dry_run=False)
    assert outcome.value["count"] == 1 and StorageItem.objects.get(plugin=writer, key="count").number == 1


# -- the circuit breaker -------------------------------------------------------------------------


def test_a_failing_console_run_never_pauses_a_plugin(admin_client, writer, settings):
    settings.PLUGINS_APP = {**getattr(settings, "PLUGINS_APP", {}), "BREAKER_THRESHOLD": 3}
    Plugin.objects.filter(pk=writer.pk).update(consecutive_failures=2)  # one failure short
    for mode in ("dry", "real", "dry"):
        response = post_run(admin_client, writer, "fail", [], mode=mode)
        assert response.context["outcome"].error.js_message == "boom"
    writer.refresh_from_db()
    assert writer.consecutive_failures == 2 and not writer.is_paused
    # The same failure from the site does pause it: the threshold is as set.
    with pytest.raises(PluginScriptError):
        hooks.call("writer", "fail")
    writer.refresh_from_db()
    assert writer.is_paused and writer.consecutive_failures == 3


def test_a_successful_console_run_does_not_reset_a_paused_plugin(admin_client, writer, settings):
    settings.PLUGINS_APP = {**getattr(settings, "PLUGINS_APP", {}), "BREAKER_THRESHOLD": 3}
    for _ in range(3):
        with pytest.raises(PluginScriptError):
            hooks.call("writer", "fail")
    writer.refresh_from_db()
    assert writer.is_paused and writer.consecutive_failures == 3
    body = admin_client.get(console_url(writer)).content.decode()
    assert "paused by the circuit breaker" in body
    for mode in ("dry", "real"):
        assert post_run(admin_client, writer, "ok", [], mode=mode).context["outcome"].value == "fine"
    writer.refresh_from_db()
    assert writer.is_paused and writer.consecutive_failures == 3
    with pytest.raises(PluginPaused):
        hooks.call("writer", "ok")


def test_a_disabled_plugin_runs_in_the_console(admin_client, make_plugin):
    plugin = make_plugin(GREETER, slug="greeter", enabled=False, config={"version": "1"})
    response = post_run(admin_client, plugin, "greet", ["Ada"])
    assert "This plugin is disabled" in response.content.decode()
    assert response.context["outcome"].value == "Hello, Ada! App version: 1"


# -- drafts --------------------------------------------------------------------------------------


def test_a_draft_runs_the_drafts_code_and_config_and_leaves_the_saved_plugin_alone(admin_client, greeter):
    draft_source = GREETER.replace("Hello", "Howdy") + "\nplugin.extra = () => 'only in the draft';\n"
    response = post_run(
        admin_client,
        greeter,
        "greet",
        ["Ada"],
        target="draft",
        source=draft_source.replace("\n", "\r\n"),
        config='{"version": "2.0-draft"}',
        config_schema="",
    )
    outcome = response.context["outcome"]
    assert outcome.draft and outcome.value == "Howdy, Ada! App version: 2.0-draft", outcome.error
    assert (
        post_run(admin_client, greeter, "extra", [], target="draft", source=draft_source, config="{}")
        .context["outcome"]
        .value
        == "only in the draft"
    )
    # The saved plugin and its warm runtime are untouched: site calls run the saved code.
    greeter.refresh_from_db()
    assert greeter.source == GREETER and greeter.version == 1 and greeter.hooks == ["greet", "farewell"]
    assert hooks.call("greeter", "greet", "Ada") == "Hello, Ada! App version: 1.0.0"
    assert (
        post_run(admin_client, greeter, "greet", ["Ada"]).context["outcome"].value == "Hello, Ada! App version: 1.0.0"
    )
    # A real run of the saved version (the live runtime) after a draft: still the saved code.
    assert (
        post_run(admin_client, greeter, "greet", ["Bo"], mode="real").context["outcome"].value.startswith("Hello, Bo")
    )


def test_a_draft_with_a_syntax_error_is_not_run_and_says_where(admin_client, greeter):
    source = "const plugin = {\n  greet(n) { return n +; }\n};"
    response = post_run(admin_client, greeter, "greet", ["x"], target="draft", source=source, config="{}")
    body = response.content.decode()
    outcome = response.context["outcome"]
    assert not outcome.ran and outcome.error.line == 2 and outcome.error.column == 24
    assert 'data-error-line="2"' in body and 'data-error-column="24"' in body
    assert "The draft was not run" in body and "SyntaxError" in body
    assert "line 2, column 24" in " ".join(response.context["form"].errors["source"])


def test_a_draft_with_a_bad_config_is_reported_on_the_config(admin_client, greeter):
    response = post_run(admin_client, greeter, "greet", ["x"], target="draft", source=GREETER, config="[1]")
    assert not response.context["outcome"].ran
    assert "JSON object" in " ".join(response.context["form"].errors["config"])


def test_errors_at_run_time_give_line_and_column(admin_client, make_plugin):
    plugin = make_plugin("const plugin = {\n  nope(x) {\n    return x.y.z;\n  },\n};", slug="nope")
    # As the page posts it: the draft boxes hold the saved version.
    response = post_run(admin_client, plugin, "nope", [{}], source=plugin.source, config="{}")
    error = response.context["outcome"].error
    assert error.kind == "PluginScriptError" and error.js_name == "TypeError" and error.line == 3
    body = response.content.decode()
    assert 'data-error-line="3"' in body and f'data-error-column="{error.column}"' in body
    # The stack names the plugin's script, not the console runtime's.
    assert "nope~console" not in body and "nope.js" in (error.stack or "")
    # The draft editor shows the code that ran: the line is marked there too.
    (editor,) = re.findall(r'<textarea[^>]*name="source"[^>]*>', body)
    assert 'data-error-line="3"' in editor and "TypeError" in editor
    # Not when the draft shown is other code than what ran.
    data = {"hook": "nope", "args": "[{}]", "mode": "dry", "target": "saved", "source": "// other\n", "config": "{}"}
    (editor,) = re.findall(
        r'<textarea[^>]*name="source"[^>]*>', admin_client.post(console_url(plugin), data).content.decode()
    )
    assert "data-error-line" not in editor


def test_run_draft_from_the_change_form_shows_the_unsaved_source(admin_client, greeter):
    """The change page's "Run draft in console" posts the whole change form here."""
    edited = GREETER.replace("Goodbye", "See you")
    response = admin_client.post(
        console_url(greeter),
        {
            "_console_draft": "1",
            "name": "Greeter",
            "slug": "greeter",
            "source": edited,
            "config": '{"version": "3"}',
            "config_schema": "",
            "grants-TOTAL_FORMS": "0",
        },
    )
    body = response.content.decode()
    assert response.status_code == 200
    form = response.context["form"]
    assert form["target"].value() == "draft" and form["source"].value() == edited
    assert "The draft validates; its hooks: greet, farewell" in body
    data = {
        "hook": "farewell",
        "args": '["Ada"]',
        "mode": "dry",
        "target": "draft",
        "source": edited,
        "config": '{"version": "3"}',
    }
    assert admin_client.post(console_url(greeter), data).context["outcome"].value == "See you, Ada!"
    # A draft with an error is shown with it (and its line) straight away.
    response = admin_client.post(
        console_url(greeter), {"_console_draft": "1", "source": "const plugin = {", "config": "{}"}
    )
    assert response.context["error"].field == "source" and response.context["error"].line == 1


def test_change_page_offers_the_console_and_run_draft(admin_client, greeter):
    body = admin_client.get(reverse("admin:plugins_app_plugin_change", args=[greeter.pk])).content.decode()
    assert f'formaction="{console_url(greeter)}"' in body and 'name="_console_draft"' in body
    assert 'id="plugin-console-button"' in body


# -- permissions ---------------------------------------------------------------------------------


def test_view_only_staff_cannot_open_or_run_the_console(client, greeter):
    client.force_login(user_with("view_plugin"))
    assert client.get(console_url(greeter)).status_code == 403
    assert post_run(client, greeter, "greet", ["x"]).status_code == 403
    body = client.get(reverse("admin:plugins_app_plugin_change", args=[greeter.pk])).content.decode()
    assert 'id="plugin-console-button"' not in body and "_console_draft" not in body


def test_change_permission_alone_does_not_open_the_console(client, greeter):
    client.force_login(user_with("view_plugin", "change_plugin"))
    assert client.get(console_url(greeter)).status_code == 403


def test_run_console_alone_allows_dry_runs_of_the_saved_version_only(client, writer, author):
    client.force_login(user_with("view_plugin", "run_console"))
    page = client.get(console_url(writer))
    body = page.content.decode()
    assert page.status_code == 200
    assert 'value="real"' not in body and 'value="draft"' not in body and 'id="plugin-console-draft"' not in body
    assert post_run(client, writer, "write", [author.pk, "t"]).context["outcome"].value["count"] == 1
    assert post_run(client, writer, "write", [author.pk, "t"], mode="real").status_code == 403
    assert post_run(client, writer, "ok", [], target="draft", source=WRITER, config="{}").status_code == 403
    draft_from_change_form = client.post(console_url(writer), {"_console_draft": "1", "source": WRITER})
    assert draft_from_change_form.status_code == 403
    assert not Note.objects.exists() and not StorageItem.objects.exists()


def test_run_console_and_change_allow_drafts_and_real_runs(client, writer, author):
    client.force_login(user_with("view_plugin", "change_plugin", "run_console"))
    assert post_run(client, writer, "write", [author.pk, "r"], mode="real").context["outcome"].ok
    assert Note.objects.count() == 1
    draft = post_run(client, writer, "ok", [], target="draft", source=WRITER.replace('"fine"', '"draft"'), config="{}")
    assert draft.context["outcome"].value == "draft"


# -- links in: replay, the old page ------------------------------------------------------------


def test_replay_parameters_prefill_the_form(admin_client, greeter):
    response = admin_client.get(console_url(greeter, hook="farewell", args='["Ada", {"n": 1}]'))
    form = response.context["form"]
    assert form["hook"].value() == "farewell" and form["args"].value() == '["Ada", {"n": 1}]'
    body = response.content.decode()
    assert '<option value="farewell" selected>' in body
    assert html.escape('["Ada", {"n": 1}]') in body
    # Running it as it stands gives the call again.
    data = {"hook": "farewell", "args": form["args"].value(), "mode": "dry", "target": "saved"}
    assert admin_client.post(console_url(greeter), data).context["outcome"].value == "Goodbye, Ada!"


def test_a_replayed_hook_the_plugin_no_longer_defines_is_reported(admin_client, greeter):
    response = admin_client.get(console_url(greeter, hook="gone", args="[]"))
    assert '<option value="gone" selected>' in response.content.decode()
    outcome = post_run(admin_client, greeter, "gone", []).context["outcome"]
    assert outcome.error.kind == "HookNotFound"


def test_the_old_call_a_hook_url_redirects_to_the_console(admin_client, greeter):
    old = reverse("admin:plugins_app_plugin_try", args=[greeter.pk])
    response = admin_client.get(old)
    assert response.status_code == 302 and response["Location"] == console_url(greeter)
    response = admin_client.post(old, {"hook": "greet", "args": '["x"]'})
    assert response.status_code == 307 and response["Location"] == console_url(greeter)


def test_bad_arguments_are_a_form_error(admin_client, greeter):
    response = post_run(admin_client, greeter, "greet", [])
    assert response.context["outcome"].ok  # no arguments is fine (name is undefined)
    response = admin_client.post(
        console_url(greeter), {"hook": "greet", "args": "{oops", "mode": "dry", "target": "saved"}
    )
    assert response.context["outcome"] is None and "Not valid JSON" in " ".join(response.context["form"].errors["args"])


def test_drafts_and_dry_runs_never_evict_the_live_runtime(greeter, settings):
    """The sandbox keeps one version per plugin warm; console runtimes live under a key
    of their own, so the runtime serving the site stays warm (pool of one: one sandbox)."""
    from plugins_app.sandbox import pool

    settings.PLUGINS_APP = {**getattr(settings, "PLUGINS_APP", {}), "POOL_SIZE": 1}
    assert hooks.call("greeter", "greet", "a") == "Hello, a! App version: 1.0.0"
    live = Plugin.objects.get(pk=greeter.pk).runtime_key
    for n in range(3):
        draft = console.make_draft(greeter, source=GREETER.replace("Hello", f"Draft{n}"))
        assert console.run(greeter, "greet", ["a"], draft=draft).value == f"Draft{n}, a! App version: 1.0.0"
        assert console.run(greeter, "greet", ["a"]).value == "Hello, a! App version: 1.0.0"  # a dry run
        (sandbox,) = pool.get_pool()._idle
        assert live in sandbox.warm
        # Drafts replace each other: one console runtime per plugin at most.
        assert len([key for key in sandbox.warm if key.startswith("greeter~console@")]) == 1
    assert hooks.call("greeter", "greet", "b") == "Hello, b! App version: 1.0.0"


def test_hooks_run_can_leave_the_breaker_alone(writer, settings):
    """The keyword the console builds on: failures not counted, successes not resetting."""
    settings.PLUGINS_APP = {**getattr(settings, "PLUGINS_APP", {}), "BREAKER_THRESHOLD": 2}
    Plugin.objects.filter(pk=writer.pk).update(consecutive_failures=1)
    with pytest.raises(PluginScriptError):
        hooks.run("writer", "fail", count_failures=False)
    assert hooks.run("writer", "ok", count_failures=False).value == "fine"
    writer.refresh_from_db()
    assert writer.consecutive_failures == 1 and not writer.is_paused
