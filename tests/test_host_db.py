"""The JS global `db`: grants, field-level permissions, relations, values as data, limits."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.db import transaction

from plugins_app import hooks
from plugins_app.exceptions import PluginLimitExceeded, PluginPermissionDenied, PluginScriptError
from plugins_app.models import PluginGrant
from project.demo.models import Note

# Every hook returns {ok, value} or {ok: false, name, message}: the JS-side view of errors.
DB_PLUGIN = """
const attempt = (fn) => { try { return { ok: true, value: fn() }; } catch (e) { return { ok: false, name: e.name, message: e.message, isError: e instanceof Error }; } };
const plugin = {
  query(model, options) { return attempt(() => db.query(model, options)); },
  get(model, where) { return attempt(() => db.get(model, where)); },
  count(model, where) { return attempt(() => db.count(model, where)); },
  create(model, values) { return attempt(() => db.create(model, values)); },
  update(model, where, values) { return attempt(() => db.update(model, where, values)); },
  remove(model, where) { return attempt(() => db.delete(model, where)); },
  uncaught(model) { return db.query(model); },
  many(n) { for (let i = 0; i < n; i++) db.count("auth.User"); return n; },
};
"""


@pytest.fixture
def users(db):
    return [User.objects.create_user(f"user{i}", email=f"u{i}@example.com", password="secret-pw") for i in range(3)]


@pytest.fixture
def dbp(make_plugin):
    return make_plugin(DB_PLUGIN, slug="dbp")


def grant(plugin, model, read=(), create=(), update=(), delete=False):
    g = PluginGrant(
        plugin=plugin, model=model, read=list(read), create=list(create), update=list(update), can_delete=delete
    )
    g.full_clean()
    g.save()
    return g


def denied(result, *fragments):
    assert result["ok"] is False and result["name"] == "PermissionDenied" and result["isError"], result
    for fragment in fragments:
        assert fragment in result["message"], result
    return True


def test_no_grant_means_every_operation_is_denied(dbp, users):
    for hook, args in [
        ("query", ("auth.User", {})),
        ("get", ("auth.User", {"id": users[0].pk})),
        ("count", ("auth.User", {})),
        ("create", ("demo.Note", {"title": "x"})),
        ("update", ("demo.Note", {"id": 1}, {"title": "x"})),
        ("remove", ("demo.Note", {"id": 1})),
        ("query", ("sessions.Session", {})),
        ("query", ("plugins_app.Plugin", {})),
    ]:
        assert denied(hooks.call("dbp", hook, *args))


def test_user_grant_reads_only_granted_fields(dbp, users):
    grant(dbp, "auth.User", read=["id", "username"])
    result = hooks.call("dbp", "query", "auth.User", {"order": "username"})
    assert result == {"ok": True, "value": [{"id": u.pk, "username": u.username} for u in users]}
    assert hooks.call("dbp", "get", "auth.User", {"username": "user1"})["value"] == {
        "id": users[1].pk,
        "username": "user1",
    }
    assert hooks.call("dbp", "count", "auth.User", {"username__startswith": "user"})["value"] == 3


@pytest.mark.parametrize(
    "hook, args",
    [
        ("query", ("auth.User", {"fields": ["email"]})),
        ("query", ("auth.User", {"fields": ["password"]})),
        ("query", ("auth.User", {"where": {"password__startswith": "pbkdf2"}})),
        ("query", ("auth.User", {"where": {"email__contains": "@"}})),
        ("query", ("auth.User", {"exclude": {"is_superuser": True}})),
        ("query", ("auth.User", {"order": ["password"]})),
        ("query", ("auth.User", {"order": ["-email"]})),
        ("query", ("auth.User", {"where": {"groups__name": "x"}})),
        ("query", ("auth.User", {"where": {"notes__title": "x"}})),
        ("query", ("auth.User", {"where": {"username__regex": ".*"}})),
        ("query", ("auth.User", {"where": {"pk": 1}})),
        ("get", ("auth.User", {"last_login__isnull": True})),
        ("count", ("auth.User", {"password__isnull": False})),
        ("query", ("auth.User", {"order": ["?"]})),
    ],
)
def test_nothing_beyond_the_grant_is_reachable(dbp, users, hook, args):
    grant(dbp, "auth.User", read=["id", "username"])
    assert denied(hooks.call("dbp", hook, *args))


def test_error_message_is_precise(dbp, users):
    grant(dbp, "auth.User", read=["id", "username"])
    result = hooks.call("dbp", "query", "auth.User", {"fields": ["email"]})
    assert result["message"] == 'plugin "dbp" may not read field "email" of "auth.User"'


def test_relations_are_checked_on_every_hop(dbp, users):
    Note.objects.create(author=users[0], title="a")
    grant(dbp, "demo.Note", read=["id", "title", "author"])
    # The hop to auth.User needs a grant on auth.User ...
    assert denied(hooks.call("dbp", "query", "demo.Note", {"where": {"author__username": "user0"}}), "auth.User")
    grant(dbp, "auth.User", read=["id", "username"])
    result = hooks.call(
        "dbp", "query", "demo.Note", {"where": {"author__username": "user0"}, "fields": ["title", "author"]}
    )
    assert result["value"] == [{"title": "a", "author": users[0].pk}]
    # ... and only granted fields on the far side.
    assert denied(hooks.call("dbp", "query", "demo.Note", {"where": {"author__email": "u0@example.com"}}))
    assert denied(hooks.call("dbp", "query", "demo.Note", {"where": {"author__password__startswith": "p"}}))
    assert denied(hooks.call("dbp", "query", "demo.Note", {"order": ["author__email"]}))
    assert hooks.call("dbp", "query", "demo.Note", {"order": ["-author__username"]})["ok"]


def test_hashes_never_come_back(dbp, users):
    grant(dbp, "auth.User", read=["id", "username"])
    grant(dbp, "demo.Note", read=["id", "author", "title"])
    for hook, args in [("query", ("auth.User", {})), ("get", ("auth.User", {"id": users[0].pk}))]:
        output = str(hooks.call("dbp", hook, *args))
        assert "username" in output
        assert not [u for u in users if u.password in output or u.password.split("$")[-1] in output]


@pytest.mark.parametrize(
    "value",
    [
        "'; DROP TABLE auth_user; --",
        "%",
        "_",
        "\\",
        "x" * 100_000,
        "\u0000",
        "😀",
        10**30,
        -1.5,
        True,
        None,
        [1, "2", None],
        ["'"] * 500,
    ],
)
def test_values_are_data(dbp, users, value):
    grant(dbp, "auth.User", read=["id", "username"])
    for key in ("username", "username__contains", "username__in", "id__in", "id__gte"):
        v = value if key.endswith("__in") == isinstance(value, list) else ([value] if key.endswith("__in") else value)
        result = hooks.call("dbp", "query", "auth.User", {"where": {key: v}})
        assert result["ok"] or result["name"] in {"ValidationError", "TypeError"}, result
    assert User.objects.count() == 3


@pytest.mark.parametrize(
    "where", [{"username": {"$ne": 1}}, {"username": [[1]]}, "id=1", [1], {"": 1}, {"id__in": list(range(2000))}]
)
def test_odd_shapes_are_clear_errors(dbp, users, where):
    grant(dbp, "auth.User", read=["id", "username"])
    result = hooks.call("dbp", "query", "auth.User", {"where": where})
    assert result["ok"] is False and result["name"] in {"TypeError", "PermissionDenied"}, result
    assert "Traceback" not in result["message"] and "SELECT" not in result["message"]


def test_create_update_delete_within_grant(dbp, users):
    grant(
        dbp,
        "demo.Note",
        read=["id", "title", "author", "score"],
        create=["author", "title"],
        update=["score"],
        delete=True,
    )
    created = hooks.call("dbp", "create", "demo.Note", {"author": users[0].pk, "title": "hello"})
    assert created["ok"] and created["value"]["title"] == "hello" and created["value"]["author"] == users[0].pk
    note_id = created["value"]["id"]
    assert denied(
        hooks.call("dbp", "create", "demo.Note", {"author": users[0].pk, "title": "x", "body": "not granted"}), '"body"'
    )
    assert denied(hooks.call("dbp", "update", "demo.Note", {"id": note_id}, {"title": "renamed"}), '"title"')
    assert hooks.call("dbp", "update", "demo.Note", {"id": note_id}, {"score": 5}) == {"ok": True, "value": 1}
    assert Note.objects.get(pk=note_id).score == 5
    assert hooks.call("dbp", "remove", "demo.Note", {"id": note_id}) == {"ok": True, "value": 1}
    assert not Note.objects.filter(pk=note_id).exists()


def test_invalid_writes_are_validation_errors_and_write_nothing(dbp, users):
    grant(dbp, "demo.Note", read=["id"], create=["author", "title", "score"])
    for values in (
        {"author": 999_999, "title": "x"},
        {"author": users[0].pk, "title": "x" * 500},
        {"author": users[0].pk, "title": "t", "score": "many"},
    ):
        result = hooks.call("dbp", "create", "demo.Note", values)
        assert result["ok"] is False and result["name"] == "ValidationError", result
    assert Note.objects.count() == 0


def test_delete_refuses_cascades_into_other_models(dbp, users):
    Note.objects.create(author=users[0], title="keep me")
    grant(dbp, "auth.User", read=["id", "username"], delete=True)
    assert denied(hooks.call("dbp", "remove", "auth.User", {"id": users[0].pk}), "demo.Note")
    assert User.objects.filter(pk=users[0].pk).exists()


def test_uncaught_denial_is_a_plugin_error(dbp):
    with pytest.raises(PluginPermissionDenied) as info:
        hooks.call("dbp", "uncaught", "auth.User")
    assert isinstance(info.value, PluginScriptError) and info.value.name == "PermissionDenied"


def test_row_and_call_limits(dbp, users):
    grant(dbp, "auth.User", read=["id", "username"])
    dbp.max_rows_read = 2
    dbp.max_host_calls = 5
    dbp.full_clean()
    dbp.save()
    result = hooks.call("dbp", "query", "auth.User", {})
    assert result["ok"] is False and result["name"] == "LimitExceeded"
    assert len(hooks.call("dbp", "query", "auth.User", {"limit": 2})["value"]) == 2
    assert hooks.call("dbp", "many", 5) == 5
    with pytest.raises(PluginLimitExceeded):
        hooks.call("dbp", "many", 6)


def test_rows_written_limit(dbp, users):
    grant(dbp, "demo.Note", read=["id"], update=["score"])
    for i in range(3):
        Note.objects.create(author=users[0], title=str(i))
    dbp.max_rows_written = 2
    dbp.full_clean()
    dbp.save()
    result = hooks.call("dbp", "update", "demo.Note", {"id__gte": 0}, {"score": 1})
    assert result["name"] == "LimitExceeded"
    assert not Note.objects.filter(score=1).exists()


def test_host_calls_join_the_callers_transaction(dbp, users):
    grant(dbp, "demo.Note", read=["id", "title"], create=["author", "title"])
    with transaction.atomic():
        Note.objects.create(author=users[0], title="uncommitted")
        seen = hooks.call("dbp", "query", "demo.Note", {"where": {"title": "uncommitted"}})
        assert len(seen["value"]) == 1
        assert hooks.call("dbp", "create", "demo.Note", {"author": users[0].pk, "title": "by plugin"})["ok"]
        transaction.set_rollback(True)
    assert not Note.objects.exists()


def test_dates_are_iso_strings(dbp, users):
    note = Note.objects.create(author=users[0], title="d")
    grant(dbp, "demo.Note", read=["id", "created_at"])
    value = hooks.call("dbp", "get", "demo.Note", {"id": note.pk})["value"]
    assert value == {"id": note.pk, "created_at": note.created_at.isoformat()}


def test_host_result_bytes_limit(dbp, users):
    grant(dbp, "auth.User", read=["id", "username"])
    dbp.max_host_result_bytes = 60
    dbp.full_clean()
    dbp.save()
    assert hooks.call("dbp", "count", "auth.User")["value"] == 3
    result = hooks.call("dbp", "query", "auth.User", {})
    assert result["name"] == "LimitExceeded" and "60 bytes" in result["message"]


def test_log_still_works_after_the_host_call_budget_is_spent(make_plugin, users):
    plugin = make_plugin(
        "const plugin = { run() { let denied = 0; for (let i = 0; i < 3; i++) { try { db.count('auth.User'); } catch (e) { denied++; } } log('still logging'); return denied; } };",
        slug="budget",
        max_host_calls=1,
    )
    grant(plugin, "auth.User", read=["id"])
    result = hooks.run("budget", "run")
    assert result.value == 2 and [line.message for line in result.logs] == ["still logging"]


def test_a_write_is_never_reported_as_failed_after_it_happened(dbp, users):
    grant(dbp, "demo.Note", read=["id", "title", "author"], create=["author", "title"])
    dbp.max_host_result_bytes = 10
    dbp.full_clean()
    dbp.save()
    result = hooks.call("dbp", "create", "demo.Note", {"author": users[0].pk, "title": "long enough title"})
    assert result["ok"] and Note.objects.filter(title="long enough title").exists()


def test_update_checks_values_even_when_nothing_matches(dbp, users):
    grant(dbp, "demo.Note", read=["id"], update=["score"])
    assert denied(hooks.call("dbp", "update", "demo.Note", {"id": 12345}, {"title": "x"}), '"title"')
    result = hooks.call("dbp", "update", "demo.Note", {"id": 12345}, {"score": {"nested": 1}})
    assert result["name"] == "TypeError"


def test_delete_refuses_set_null_updates_in_other_models(dbp, users):
    from plugins_app.models import Plugin

    Plugin.objects.filter(pk=dbp.pk).update(created_by=users[1])
    grant(dbp, "auth.User", read=["id", "username"], delete=True)
    assert denied(hooks.call("dbp", "remove", "auth.User", {"id": users[1].pk}), "plugins_app.Plugin")
    assert Plugin.objects.get(pk=dbp.pk).created_by == users[1]
    assert hooks.call("dbp", "remove", "auth.User", {"id": users[2].pk}) == {"ok": True, "value": 1}


def test_grant_save_validates_without_full_clean(dbp):
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError):
        PluginGrant(plugin=dbp, model="auth.User", read=["password"]).save()
    with pytest.raises(ValidationError):
        PluginGrant(plugin=dbp, model="auth.Group", read=["id"]).save()
    assert not PluginGrant.objects.exists()
