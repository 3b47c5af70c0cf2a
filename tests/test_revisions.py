"""Revisions (plugins_app.revisions): recorded by every save that changes what a plugin runs
with, rollback, diffs, the edit token, the CLI (`plugins revisions/rollback`, `install
--if-revision`) and the data migration that gives existing plugins their first revision."""

from __future__ import annotations

import json
import uuid

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from plugins_app import breaker, catalogue, revisions
from plugins_app.exceptions import PluginConflict, RevisionNotFound
from plugins_app.models import Plugin, PluginGrant, PluginRevision

from .cli import run

SOURCE = "const plugin = {\n  greet(name) { return `Hello, ${name}!`; }\n};"
SOURCE_2 = "const plugin = {\n  greet(name) { return `Hi, ${name}!`; },\n  bye() { return 'bye'; }\n};"


def numbers(plugin: Plugin) -> list[int]:
    return list(plugin.revisions.order_by("number").values_list("number", flat=True))


def latest(plugin: Plugin) -> PluginRevision:
    return plugin.revisions.order_by("-number").first()


def grants_of(plugin: Plugin) -> list[tuple]:
    return list(plugin.grants.order_by("model").values_list("model", "read", "create", "update", "can_delete"))


@pytest.fixture
def plugin(make_plugin) -> Plugin:
    return make_plugin(SOURCE, slug="rev", config={"a": 1})


# -- recording ---------------------------------------------------------------------------------
def test_creating_a_plugin_records_revision_1_with_a_full_snapshot(plugin):
    rev = latest(plugin)
    assert rev.number == 1 and rev.changes == [] and rev.origin == PluginRevision.Origin.CODE
    assert revisions.describe_changes(rev) == "created"
    assert rev.source == SOURCE and rev.config == {"a": 1} and rev.config_schema is None
    assert (rev.memory_limit_mb, rev.timeout_ms) == (plugin.memory_limit_mb, plugin.timeout_ms)
    assert rev.max_host_calls == plugin.max_host_calls and rev.grants == []
    assert rev.plugin_version == plugin.version


@pytest.mark.parametrize(
    "field, value",
    [
        ("source", SOURCE_2),
        ("config", {"a": 2}),
        ("config_schema", {"type": "object"}),
        ("memory_limit_mb", 48),
        ("timeout_ms", 1500),
        ("max_host_calls", 7),
        ("max_rows_read", 8),
        ("max_rows_written", 9),
        ("max_host_result_bytes", 1000),
        ("http_enabled", True),
    ],
)
def test_each_relevant_change_records_a_revision(plugin, field, value):
    setattr(plugin, field, value)
    plugin.full_clean()
    plugin.save()
    assert numbers(plugin) == [1, 2]
    rev = latest(plugin)
    assert rev.changes == [field] and getattr(rev, field) == value
    assert revisions.describe_changes(rev) == revisions.CHANGE_LABELS[field]


def test_saves_without_a_relevant_change_record_nothing(plugin):
    plugin.save()
    plugin.name, plugin.description, plugin.priority, plugin.enabled = "Other", "text", 5, False
    plugin.full_clean()
    plugin.save()
    Plugin.objects.filter(pk=plugin.pk).update(enabled=True, priority=1)
    plugin.config = {"a": 1}  # same value, new object
    plugin.save()
    assert numbers(plugin) == [1]


def test_grant_changes_record_revisions_with_the_grants_as_data(plugin):
    grant = PluginGrant(plugin=plugin, model="auth.User", read=["id"])
    grant.save()
    assert numbers(plugin) == [1, 2]
    rev = latest(plugin)
    assert rev.changes == ["grants"]
    assert rev.grants == [{"model": "auth.User", "read": ["id"], "create": [], "update": [], "can_delete": False}]
    assert rev.plugin_version == Plugin.objects.get(pk=plugin.pk).version  # after the grant's bump
    grant.save()  # unchanged
    assert numbers(plugin) == [1, 2]
    grant.read = ["id", "username"]
    grant.save()
    grant.delete()
    assert numbers(plugin) == [1, 2, 3, 4] and latest(plugin).grants == []


def test_a_recording_block_groups_changes_and_attributes_them(plugin, admin_user):
    with revisions.recording(origin=PluginRevision.Origin.ADMIN, user=admin_user, comment="why") as scope:
        plugin.source = SOURCE_2
        plugin.full_clean()
        plugin.save()
        PluginGrant(plugin=plugin, model="auth.User", read=["id"]).save()
        assert numbers(plugin) == [1]  # not yet
    assert numbers(plugin) == [1, 2] and len(scope.recorded) == 1
    rev = latest(plugin)
    assert rev.changes == ["source", "grants"] and rev.comment == "why"
    assert rev.created_by == admin_user and rev.author == admin_user.username and rev.origin == "admin"


def test_a_failed_block_inside_a_transaction_records_nothing(plugin):
    from django.db import transaction

    with pytest.raises(RuntimeError), transaction.atomic(), revisions.recording(origin="code"):
        plugin.source = SOURCE_2
        plugin.full_clean()
        plugin.save()
        raise RuntimeError
    assert numbers(plugin) == [1]
    assert Plugin.objects.get(pk=plugin.pk).source == SOURCE


def test_revisions_are_immutable_and_go_with_their_plugin(plugin):
    rev = latest(plugin)
    rev.comment = "changed"
    with pytest.raises(ValueError, match="immutable"):
        rev.save()
    with pytest.raises(ValueError, match="immutable"):
        rev.delete()
    PluginGrant(plugin=plugin, model="auth.User", read=["id"]).save()
    plugin.delete()
    assert not PluginRevision.objects.exists() and not PluginGrant.objects.exists()


# -- edit token --------------------------------------------------------------------------------
def token(plugin: Plugin) -> uuid.UUID:
    return Plugin.objects.values_list("edit_token", flat=True).get(pk=plugin.pk)


def test_the_edit_token_changes_on_every_edit_but_not_for_the_breaker(plugin):
    seen = {token(plugin)}
    plugin.save()
    seen.add(token(plugin))
    Plugin.objects.filter(pk=plugin.pk).update(enabled=False)  # admin action / CLI disable
    seen.add(token(plugin))
    PluginGrant(plugin=plugin, model="auth.User", read=["id"]).save()
    seen.add(token(plugin))
    plugin.refresh_from_db()
    plugin.save(update_fields=["priority"])
    seen.add(token(plugin))
    assert len(seen) == 5
    before = token(plugin)
    row = Plugin.objects.dispatch_row(plugin.slug)
    breaker.record_failure(row, RuntimeError("x"))  # type: ignore[arg-type]
    breaker.record_success(row)
    Plugin.objects.filter(pk=plugin.pk).update(paused_at=None, updated_by=None)
    assert token(plugin) == before


def test_check_edit_token_names_what_changed(plugin):
    opened = revisions.make_edit_token(plugin)
    assert revisions.check_edit_token(plugin.pk, opened) is None
    Plugin.objects.filter(pk=plugin.pk).update(enabled=False)
    conflict = revisions.check_edit_token(plugin.pk, opened)
    assert conflict is not None and conflict.changed == ["enabled"] and conflict.revisions == []
    fresh = Plugin.objects.get(pk=plugin.pk)
    fresh.source = SOURCE_2
    fresh.full_clean()
    fresh.save()
    PluginGrant(plugin=fresh, model="auth.User", read=["id"]).save()
    conflict = revisions.check_edit_token(plugin.pk, opened)
    assert conflict.changed == ["source", "enabled", "grants"]
    assert [r.number for r in conflict.revisions] == [2, 3]
    message = conflict.message()
    assert "Source, Enabled, Grants" in message and "not saved" in message and "2 (source;" in message


def test_a_damaged_edit_token_is_a_conflict(plugin):
    conflict = revisions.check_edit_token(plugin.pk, "garbage")
    assert conflict is not None and not conflict.readable and "damaged" in conflict.message()


# -- rollback (code) -----------------------------------------------------------------------------
def test_rollback_restores_source_config_limits_grants_as_a_new_revision(plugin, admin_user):
    PluginGrant(plugin=plugin, model="auth.User", read=["id"]).save()  # r2
    plugin.refresh_from_db()
    plugin.source, plugin.config, plugin.timeout_ms, plugin.max_rows_read, plugin.http_enabled = (
        SOURCE_2,
        {"b": [1, 2]},
        2000,
        5,
        True,
    )
    plugin.full_clean()
    plugin.save()  # r3
    PluginGrant.objects.get(plugin=plugin).delete()  # r4
    PluginGrant(plugin=plugin, model="demo.Note", read=["id", "title"], update=["title"], can_delete=True).save()  # r5
    assert plugin.hooks == ["greet", "bye"]

    new = revisions.rollback(plugin, 2, origin="admin", user=admin_user)
    assert new.number == 6 and new.rolled_back_to == 2 and new.comment == "Rolled back to revision 2."
    assert set(new.changes) == {"source", "config", "timeout_ms", "max_rows_read", "http_enabled", "grants"}
    assert revisions.describe_changes(new).startswith("rollback to 2: ")
    plugin.refresh_from_db()
    r2 = plugin.revisions.get(number=2)
    assert revisions.snapshot(plugin) == revisions.revision_snapshot(r2)
    assert plugin.source == SOURCE and plugin.config == {"a": 1} and plugin.timeout_ms == r2.timeout_ms
    assert plugin.hooks == ["greet"] and not plugin.http_enabled
    assert grants_of(plugin) == [("auth.User", ["id"], [], [], False)]
    assert plugin.updated_by == admin_user and new.created_by == admin_user
    # Rolling back to what it already is records nothing.
    assert revisions.rollback(plugin, 6, origin="admin") is None
    assert numbers(plugin) == [1, 2, 3, 4, 5, 6]


def test_rollback_that_no_longer_validates_changes_nothing(plugin, settings):
    plugin.timeout_ms = 5000
    plugin.full_clean()
    plugin.save()  # r2
    plugin.timeout_ms = 1000
    plugin.source = SOURCE_2
    plugin.full_clean()
    plugin.save()  # r3
    settings.PLUGINS_APP = {"MAX_TIMEOUT_MS": 3000}
    with pytest.raises(ValidationError) as info:
        revisions.rollback(plugin, 2, origin="code")
    assert "timeout_ms" in info.value.message_dict
    plugin.refresh_from_db()
    assert plugin.source == SOURCE_2 and plugin.timeout_ms == 1000 and numbers(plugin) == [1, 2, 3]


def test_rollback_of_a_grant_on_a_model_no_longer_exposed_changes_nothing(plugin):
    from plugins_app.exposure import exposing

    PluginGrant(plugin=plugin, model="demo.Note", read=["id", "title"]).save()  # r2
    PluginGrant.objects.get(plugin=plugin).delete()  # r3
    with exposing(("auth.User", {"read": ["id"]})):
        with pytest.raises(ValidationError) as info:
            revisions.rollback(plugin, 2, origin="code")
    assert "demo.Note" in " ".join(info.value.message_dict["grants"])
    assert grants_of(plugin) == [] and numbers(plugin) == [1, 2, 3]


def test_rollback_of_an_unknown_revision_or_against_a_stale_latest(plugin):
    with pytest.raises(RevisionNotFound, match="no revision 9"):
        revisions.rollback(plugin, 9, origin="code")
    plugin.source = SOURCE_2
    plugin.full_clean()
    plugin.save()
    with pytest.raises(PluginConflict, match="at revision 2, not 1"):
        revisions.rollback(plugin, 1, origin="code", expected_latest=1)
    assert Plugin.objects.get(pk=plugin.pk).source == SOURCE_2


# -- diffs ------------------------------------------------------------------------------------
def test_text_diff_in_both_layouts():
    old = "a\nb\nc\nd\ne\nf\ng\nh\ni"
    new = "a\nb\nc\nd\nE\nf\ng\nh\ni\nj"
    diff = revisions.text_diff("source", "Source", old, new, context=1)
    assert (diff.added, diff.removed) == (2, 1)
    kinds = [(line.kind, line.old_no, line.new_no, line.text) for line in diff.unified]
    assert ("del", 5, None, "e") in kinds and ("add", None, 5, "E") in kinds and ("add", None, 10, "j") in kinds
    assert kinds[0][0] == "gap" and ("context", 1, 1, "a") not in kinds  # outside the context
    split = [(r.kind, r.old_no, r.old_text, r.new_no, r.new_text) for r in diff.split]
    assert ("change", 5, "e", 5, "E") in split and ("add", None, None, 10, "j") in split
    whole = revisions.text_diff("source", "Source", old, new, context=None)
    assert whole.unified[0] == revisions.UnifiedLine("context", 1, 1, "a") and len(whole.split) == 10
    same = revisions.text_diff("x", "X", old, old)
    assert not same.changed and same.unified == []


def test_revision_diff_covers_config_limits_and_grants(plugin):
    plugin.config = {"a": 1, "b": "<b>"}
    plugin.memory_limit_mb = 48
    plugin.full_clean()
    plugin.save()
    PluginGrant(plugin=plugin, model="auth.User", read=["id"]).save()
    diff = revisions.revision_diff(plugin.revisions.get(number=1), latest(plugin))
    assert diff.changed == ["config", "memory_limit_mb", "grants"]
    config = next(t for t in diff.texts if t.name == "config")
    assert config.changed and any(line.text == '  "b": "<b>"' for line in config.unified)
    memory = next(s for s in diff.settings if s.label.startswith("Memory"))
    assert memory.changed and memory.new == "48"
    assert [(g.label, g.old, g.changed) for g in diff.grants] == [("auth.User", "—", True)]


# -- CLI ----------------------------------------------------------------------------------------
def test_cli_install_records_revisions_with_comment_and_shell_user(db, tmp_path):
    path = tmp_path / "p.js"
    path.write_text(SOURCE)
    code, out, err = run("install", str(path), "--slug", "cli", "--comment", "first upload")
    assert (code, err) == (0, "") and "Recorded revision 1 (created)" in out
    path.write_text(SOURCE_2)
    code, out, _ = run("install", str(path), "--slug", "cli", "--config", '{"x": 1}')
    assert code == 0 and "Recorded revision 2 (source, config)" in out
    code, out, _ = run("install", str(path), "--slug", "cli", "--priority", "3")  # nothing relevant changed
    assert code == 0 and "Recorded revision" not in out
    plugin = Plugin.objects.get(slug="cli")
    first = plugin.revisions.get(number=1)
    assert first.comment == "first upload" and first.origin == "cli" and first.created_by is None
    assert first.created_by_name == revisions.shell_user_name()


def test_cli_grant_and_revoke_record_revisions(plugin):
    assert run("grant", "rev", "auth.User", "--read", "id")[0] == 0
    assert run("revoke", "rev", "auth.User")[0] == 0
    revs = list(plugin.revisions.order_by("number"))
    assert [(r.number, r.changes, r.origin) for r in revs[1:]] == [(2, ["grants"], "cli"), (3, ["grants"], "cli")]


def test_cli_revisions_lists_newest_first(plugin, admin_user):
    with revisions.recording(origin="admin", user=admin_user, comment="tighter\nlimits"):
        plugin.timeout_ms = 900
        plugin.full_clean()
        plugin.save()
    run("grant", "rev", "auth.User", "--read", "id")
    code, out, err = run("revisions", "rev")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["REV", "SAVED", "BY", "FROM", "CHANGED", "COMMENT"]
    assert lines[1].startswith("3 ") and "cli" in lines[1] and "grants" in lines[1]
    assert lines[2].startswith("2 ") and "admin" in lines[2] and "time limit" in lines[2]
    assert lines[2].endswith("tighter limits")
    assert lines[3].startswith("1 ") and "created" in lines[3]
    code, out, err = run("revisions", "rev", "--limit", "1")
    assert len(out.splitlines()) == 2 and "2 older revision(s) not shown" in err
    data = json.loads(run("revisions", "rev", "--json")[1])
    assert [row["revision"] for row in data] == [3, 2, 1]
    assert data[1]["by"] == admin_user.username and data[1]["changes"] == ["timeout_ms"]


def test_cli_rollback(plugin):
    plugin.source = SOURCE_2
    plugin.full_clean()
    plugin.save()
    run("grant", "rev", "auth.User", "--read", "id")
    code, out, err = run("rollback", "rev", "1", "--comment", "bad release")
    assert (code, err) == (0, "")
    assert out.startswith("Rolled back rev to revision 1: recorded revision 4 (rollback to 1: source, grants)")
    plugin.refresh_from_db()
    assert plugin.source == SOURCE and grants_of(plugin) == []
    rev = latest(plugin)
    assert rev.comment == "bad release" and rev.origin == "cli" and rev.rolled_back_to == 1
    assert run("rollback", "rev", "1") == (0, "rev already matches revision 1; nothing to do\n", "")
    code, _, err = run("rollback", "rev", "7")
    assert code == 1 and "RevisionNotFound" in err and "no revision 7" in err
    code, _, err = run("rollback", "rev", "2", "--if-revision", "3")
    assert code == 1 and "PluginConflict" in err and "at revision 4, not 3" in err
    assert Plugin.objects.get(pk=plugin.pk).source == SOURCE


def test_cli_rollback_that_does_not_validate_exits_1(plugin, settings):
    plugin.memory_limit_mb = 96
    plugin.full_clean()
    plugin.save()
    plugin.memory_limit_mb = 64
    plugin.full_clean()
    plugin.save()
    settings.PLUGINS_APP = {"MAX_MEMORY_MB": 80}
    code, out, err = run("rollback", "rev", "2")
    assert code == 1 and out == ""
    assert "memory limit: Must be between" in err and "Nothing was changed." in err
    assert Plugin.objects.get(pk=plugin.pk).memory_limit_mb == 64 and numbers(plugin) == [1, 2, 3]


def test_cli_install_if_revision(plugin, tmp_path, admin_user):
    path = tmp_path / "p.js"
    path.write_text(SOURCE_2)
    # Someone saves in the admin meanwhile: the script's view (revision 1) is stale.
    with revisions.recording(origin="admin", user=admin_user):
        plugin.config = {"a": 2}
        plugin.full_clean()
        plugin.save()
    code, out, err = run("install", str(path), "--slug", "rev", "--if-revision", "1")
    assert code == 1 and out == ""
    assert "PluginConflict: plugin 'rev' is at revision 2, not 1" in err and "revision 2 (config; admin" in err
    assert "Nothing was saved." in err
    assert Plugin.objects.get(pk=plugin.pk).source == SOURCE and numbers(plugin) == [1, 2]
    with catalogue.declaring({"name": "bye", "kind": "call"}):  # no catalogue warning on stderr
        code, out, err = run("install", str(path), "--slug", "rev", "--if-revision", "2")
    assert (code, err) == (0, "") and "Recorded revision 3 (source)" in out
    # 0: only a new plugin.
    code, _, err = run("install", str(path), "--slug", "rev", "--if-revision", "0")
    assert code == 1 and "already installed (at revision 3)" in err
    code, out, _ = run("install", str(path), "--slug", "new-one", "--if-revision", "0")
    assert code == 0 and Plugin.objects.filter(slug="new-one").exists()
    code, _, err = run("install", str(path), "--slug", "missing", "--if-revision", "2")
    assert code == 1 and "not installed" in err and not Plugin.objects.filter(slug="missing").exists()


def test_cli_subcommands_have_help():
    from django.core.management import load_command_class

    command = load_command_class("plugins_app", "plugins")
    parser = command.create_parser("manage.py", "plugins")
    sub = next(a for a in parser._actions if a.dest == "action")
    for name in ("revisions", "rollback"):
        assert sub.choices[name].description and "revision" in sub.choices[name].description
    help_text = sub.choices["install"].format_help()
    assert "--if-revision" in help_text and "--comment" in help_text


# -- data migration ------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)
def test_the_data_migration_gives_existing_plugins_their_first_revision():
    executor = MigrationExecutor(connection)
    before = [("plugins_app", "0003_revisions")]
    executor.migrate(before)
    try:
        apps = executor.loader.project_state(before).apps
        OldPlugin = apps.get_model("plugins_app", "Plugin")
        OldGrant = apps.get_model("plugins_app", "PluginGrant")
        old = OldPlugin.objects.create(
            slug="old",
            name="Old",
            source=SOURCE,
            config={"k": "v"},
            memory_limit_mb=64,
            timeout_ms=1000,
            max_host_calls=1,
            max_rows_read=2,
            max_rows_written=3,
            max_host_result_bytes=4,
            hooks=["greet"],
            version=7,
            http_enabled=True,
        )
        OldGrant.objects.create(plugin=old, model="demo.Note", read=["id"], can_delete=True)
        OldGrant.objects.create(plugin=old, model="auth.User", read=["id", "username"])
        OldPlugin.objects.create(
            slug="bare",
            name="Bare",
            source=SOURCE,
            memory_limit_mb=64,
            timeout_ms=1000,
            max_host_calls=1,
            max_rows_read=2,
            max_rows_written=3,
            max_host_result_bytes=4,
        )
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
        rev = PluginRevision.objects.get(plugin__slug="old")
        assert rev.number == 1 and rev.origin == "migration" and rev.plugin_version == 7
        assert rev.source == SOURCE and rev.config == {"k": "v"} and rev.http_enabled
        assert (rev.max_host_calls, rev.max_rows_read, rev.max_rows_written, rev.max_host_result_bytes) == (1, 2, 3, 4)
        assert [g["model"] for g in rev.grants] == ["auth.User", "demo.Note"]
        assert rev.grants[1] == {"model": "demo.Note", "read": ["id"], "create": [], "update": [], "can_delete": True}
        assert revisions.describe_changes(rev) == "state when revisions began"
        bare = PluginRevision.objects.get(plugin__slug="bare")
        assert bare.number == 1 and bare.grants == [] and bare.config == {}
        # The first revision is a full snapshot: it matches the plugin, so the next save
        # that changes nothing records nothing.
        plugin = Plugin.objects.get(slug="old")
        assert revisions.snapshot(plugin) == revisions.revision_snapshot(rev)
    finally:
        executor = MigrationExecutor(connection)
        executor.migrate(executor.loader.graph.leaf_nodes())
        Plugin.objects.all().delete()


# -- the form's check holds the row until its save commits ----------------------------------------
def test_the_check_locks_the_row_inside_a_transaction(plugin):
    from django.db import transaction
    from django.test.utils import CaptureQueriesContext

    opened = revisions.make_edit_token(plugin)
    with transaction.atomic(), CaptureQueriesContext(connection) as queries:
        assert revisions.check_edit_token(plugin.pk, opened, lock=True) is None
    if connection.features.has_select_for_update:
        assert any("FOR UPDATE" in q["sql"] for q in queries.captured_queries)


@pytest.mark.django_db(transaction=True)
def test_a_save_in_between_waits_for_the_checked_form_to_commit(make_plugin):
    import threading

    from django.db import connections, transaction

    if not connection.features.has_select_for_update:
        pytest.skip("this database has no row locks (SQLite serialises writers instead)")
    plugin = make_plugin(SOURCE, slug="locked")
    opened = revisions.make_edit_token(plugin)
    events: list[str] = []

    def other_tab() -> None:
        try:
            Plugin.objects.filter(pk=plugin.pk).update(enabled=False)
            events.append("other saved")
        finally:
            connections.close_all()

    with transaction.atomic():
        assert revisions.check_edit_token(plugin.pk, opened, lock=True) is None
        thread = threading.Thread(target=other_tab)
        thread.start()
        thread.join(0.5)
        assert thread.is_alive()  # waiting for the row lock
        Plugin.objects.filter(pk=plugin.pk).update(description="form")
        events.append("form saved")
    thread.join(10)
    assert events == ["form saved", "other saved"]
    # And the form's token is now stale for anyone else.
    assert revisions.check_edit_token(plugin.pk, opened).changed == ["description", "enabled"]
