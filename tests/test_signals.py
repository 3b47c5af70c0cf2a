"""Signal bindings: Django signals calling plugin hooks (real sandboxes, no mocks)."""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace

import pytest
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import Signal
from django.utils import timezone

from plugins_app import checks, signal_handlers
from plugins_app.exceptions import PluginDataError
from plugins_app.exposure import _registry, exposing
from plugins_app.models import Plugin, StorageItem
from plugins_app.signals import BindingError, bind, bindings, bound, unbind
from project.demo.models import Note

# Records every call: a counter and the last arguments.
RECORDER = """
const plugin = {
  onEvent(payload, meta) {
    storage.incr("calls");
    storage.set("last", { payload, meta });
    return payload;
  },
};
"""
NOTE_SAVED = {"signal": "post_save", "sender": "demo.Note", "hook": "onEvent"}

# Custom project signals, bound by dotted path in the tests below.
note_shared = Signal()
quiet_signal = Signal()


class Boom(Exception):
    pass


def without_delivery(meta: dict) -> dict:
    """``meta`` less what the outbox adds to every delivery (deliveryId, attempt)."""
    return {k: v for k, v in meta.items() if k not in {"deliveryId", "attempt"}}


def calls(plugin: Plugin) -> int:
    item = StorageItem.objects.filter(plugin=plugin, key="calls").first()
    return 0 if item is None else item.number


def last(plugin: Plugin) -> dict:
    return StorageItem.objects.get(plugin=plugin, key="last").value


@pytest.fixture
def recorder(make_plugin) -> Plugin:
    return make_plugin(RECORDER, slug="recorder")


@pytest.fixture
def ada(db) -> User:
    return User.objects.create_user("ada", email="ada@example.com", password="x" * 12)


def our_receivers(signal: Signal) -> list:
    return [r for r in signal.receivers if r[0][0] == signal_handlers.DISPATCH_UID]


# -- post_save / post_delete after commit --------------------------------------------


def test_post_save_fires_once_after_commit_with_exposed_fields(
    settings, recorder, ada, django_capture_on_commit_callbacks
):
    settings.PLUGINS_APP = {"SIGNAL_BINDINGS": [NOTE_SAVED]}
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        note = Note.objects.create(author=ada, title="Hello", body="text", score=3)
        assert calls(recorder) == 0  # not before the commit
    assert len(callbacks) == 1
    assert calls(recorder) == 1
    payload, meta = last(recorder)["payload"], last(recorder)["meta"]
    assert payload == {
        "id": note.pk,
        "author": ada.pk,  # foreign key as its pk
        "title": "Hello",
        "body": "text",
        "score": 3,
        "created_at": note.created_at.isoformat(),  # ISO text
        "created": True,
    }
    assert without_delivery(meta) == {"signal": "post_save", "model": "demo.Note", "created": True}
    assert meta["attempt"] == 1 and uuid.UUID(meta["deliveryId"])

    with django_capture_on_commit_callbacks(execute=True):
        note.title = "Changed"
        note.save()
    assert calls(recorder) == 2
    assert last(recorder)["payload"]["created"] is False
    assert last(recorder)["payload"]["title"] == "Changed"


def test_rolled_back_save_fires_nothing(settings, recorder, ada, django_capture_on_commit_callbacks):
    settings.PLUGINS_APP = {"SIGNAL_BINDINGS": [NOTE_SAVED]}
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(Boom), transaction.atomic():
            Note.objects.create(author=ada, title="never")
            raise Boom
    assert callbacks == []
    assert calls(recorder) == 0


@pytest.mark.django_db(transaction=True)
def test_real_transactions_rollback_fires_nothing_commit_fires_once(settings, recorder, ada):
    settings.PLUGINS_APP = {"SIGNAL_BINDINGS": [NOTE_SAVED]}
    with pytest.raises(Boom), transaction.atomic():
        Note.objects.create(author=ada, title="rolled back")
        raise Boom
    assert calls(recorder) == 0
    with transaction.atomic():
        note = Note.objects.create(author=ada, title="committed")
        assert calls(recorder) == 0
    assert calls(recorder) == 1
    assert last(recorder)["payload"]["id"] == note.pk
    # Autocommit: no transaction to wait for, the hook runs at once.
    Note.objects.filter(pk=note.pk).get().save()
    assert calls(recorder) == 2


def test_post_delete_payload_has_no_created_flag(recorder, ada, django_capture_on_commit_callbacks):
    note = Note.objects.create(author=ada, title="bye")
    pk = note.pk
    with bound("post_delete", "onEvent", sender=Note), django_capture_on_commit_callbacks(execute=True):
        note.delete()
    payload, meta = last(recorder)["payload"], last(recorder)["meta"]
    assert payload["id"] == pk and payload["title"] == "bye" and "created" not in payload
    assert without_delivery(meta) == {"signal": "post_delete", "model": "demo.Note"}


def test_payload_has_only_the_exposed_read_fields(recorder, ada, django_capture_on_commit_callbacks):
    with exposing(("demo.Note", {"read": ["title", "score"]}), ("auth.User", {"read": ["id", "username"]})):
        with bound("post_save", "onEvent", sender="demo.Note", mode="sync"):
            Note.objects.create(author=ada, title="t", body="secret body", score=1)
            with bound("post_save", "onEvent", sender=User, mode="sync"):
                ada.save()
    assert last(recorder)["payload"] == {"id": ada.pk, "username": "ada", "created": False}  # no email, no password
    assert calls(recorder) == 2


def test_binding_of_a_model_that_is_no_longer_exposed_is_skipped(recorder, ada, caplog):
    with bound("post_save", "onEvent", sender="demo.Note", mode="sync"), exposing():
        with caplog.at_level(logging.WARNING, logger="plugins_app.signals"):
            Note.objects.create(author=ada, title="t")
    assert calls(recorder) == 0
    assert "demo.Note is not exposed" in caplog.text


def test_raw_saves_are_not_bound(recorder, ada):
    with bound("post_save", "onEvent", sender=Note, mode="sync"):
        Note(author=ada, title="fixture", created_at=timezone.now()).save_base(raw=True)
    assert calls(recorder) == 0


def test_sender_filters_which_model(recorder, ada):
    with bound("post_save", "onEvent", sender=User, mode="sync"):
        Note.objects.create(author=ada, title="t")
    assert calls(recorder) == 0


# -- sync ----------------------------------------------------------------------------


def test_sync_runs_inside_the_transaction_and_rolls_back_with_it(recorder, ada):
    with bound("post_save", "onEvent", sender=Note, mode="sync"):
        with pytest.raises(Boom), transaction.atomic():
            Note.objects.create(author=ada, title="t")
            assert calls(recorder) == 1  # ran at once, in the transaction
            raise Boom
    assert calls(recorder) == 0  # its storage write rolled back with the save


def test_failing_plugin_does_not_break_the_save(make_plugin, recorder, ada, caplog):
    make_plugin("const plugin = { onEvent() { throw new Error('nope'); } };", slug="broken", priority=1)
    with bound("post_save", "onEvent", sender=Note, mode="sync"), caplog.at_level(logging.WARNING):
        note = Note.objects.create(author=ada, title="t")
    assert Note.objects.filter(pk=note.pk).exists()
    assert calls(recorder) == 1
    assert "'broken' failed" in caplog.text


# -- pre_save filters ----------------------------------------------------------------

FILTER = """
const plugin = {
  tidy(note, meta) {
    storage.set("meta", meta);
    return { ...note, title: note.title.trim().toUpperCase(), score: note.score + 1,
             created_at: "2000-01-01T00:00:00Z", body: note.body, invented: 1 };
  },
  badAuthor(note) { return { ...note, author: 999999 }; },
  notAnObject() { return 42; },
};
"""


def test_pre_save_filter_changes_only_writable_fields(make_plugin, ada, caplog):
    plugin = make_plugin(FILTER, slug="tidy")
    with bound("pre_save", "tidy", sender=Note), caplog.at_level(logging.WARNING, logger="plugins_app.signals"):
        note = Note.objects.create(author=ada, title="  hello ", score=1)
    note.refresh_from_db()
    assert (note.title, note.score) == ("HELLO", 2)
    assert note.created_at.year != 2000  # not writable: refused
    assert "not writable by plugins were changed: created_at, invented" in caplog.text
    meta = StorageItem.objects.get(plugin=plugin, key="meta").value
    assert meta == {"signal": "pre_save", "model": "demo.Note", "adding": True, "update_fields": None}


def test_pre_save_filter_respects_update_fields(make_plugin, ada, caplog):
    make_plugin(FILTER, slug="tidy")
    note = Note.objects.create(author=ada, title="a", score=1)
    with bound("pre_save", "tidy", sender=Note), caplog.at_level(logging.WARNING, logger="plugins_app.signals"):
        note.save(update_fields=["title"])
    note.refresh_from_db()
    assert (note.title, note.score) == ("A", 1)
    assert "'score' changed, but the save only writes ['title']" in caplog.text


def test_pre_save_filter_invalid_values_are_refused(make_plugin, ada, caplog):
    make_plugin(FILTER, slug="tidy")
    with bound("pre_save", "badAuthor", sender=Note), caplog.at_level(logging.WARNING, logger="plugins_app.signals"):
        note = Note.objects.create(author=ada, title="a")
    assert Note.objects.get(pk=note.pk).author_id == ada.pk
    assert "invalid value for 'author'" in caplog.text
    with bound("pre_save", "notAnObject", sender=Note), caplog.at_level(logging.WARNING, logger="plugins_app.signals"):
        Note.objects.create(author=ada, title="b")
    assert "returned int, not an object" in caplog.text


def test_fail_closed_filter_aborts_the_save(make_plugin, ada):
    make_plugin(FILTER, slug="tidy")
    with bound("pre_save", "tidy", sender=Note, fail_closed=True):
        with pytest.raises(PluginDataError, match="created_at"):
            Note.objects.create(author=ada, title="x")
    assert not Note.objects.exists()
    make_plugin("const plugin = { strict() { throw new Error('no'); } };", slug="strict")
    with bound("pre_save", "strict", sender=Note, fail_closed=True):
        with pytest.raises(Exception, match="no"):
            Note.objects.create(author=ada, title="x")
    assert not Note.objects.exists()


# -- user_logged_in and project signals ----------------------------------------------


def test_user_logged_in_passes_id_and_username_only(
    settings, recorder, ada, client, django_capture_on_commit_callbacks
):
    settings.PLUGINS_APP = {"SIGNAL_BINDINGS": [{"signal": "user_logged_in", "hook": "onEvent"}]}
    with django_capture_on_commit_callbacks(execute=True):
        client.force_login(ada)
    assert last(recorder)["payload"] == {"id": ada.pk, "username": "ada"}
    assert without_delivery(last(recorder)["meta"]) == {"signal": "user_logged_in"}


def test_project_signal_by_dotted_path_passes_jsonable_kwargs(settings, recorder, ada):
    path = f"{__name__}.note_shared"
    settings.PLUGINS_APP = {"SIGNAL_BINDINGS": [{"signal": path, "hook": "onEvent", "mode": "sync", "sender": "demo"}]}
    note = Note.objects.create(author=ada, title="t")
    note_shared.send(sender="demo", note=note, to=["bob", "eve"], count=2, when=note.created_at)
    assert last(recorder)["payload"] == {"to": ["bob", "eve"], "count": 2, "when": note.created_at.isoformat()}
    assert last(recorder)["meta"] == {"signal": path, "sender": "demo"}
    note_shared.send(sender="someone else", count=3)  # sender does not match
    assert calls(recorder) == 1


# -- settings, connection, bind() ----------------------------------------------------


def test_override_settings_changes_bindings_and_connects_new_signals(settings, recorder):
    assert not our_receivers(quiet_signal)
    settings.PLUGINS_APP = {
        "SIGNAL_BINDINGS": [{"signal": f"{__name__}.quiet_signal", "hook": "onEvent", "mode": "sync"}]
    }
    assert len(our_receivers(quiet_signal)) == 1
    quiet_signal.send(sender=None, n=1)
    assert calls(recorder) == 1
    settings.PLUGINS_APP = {}
    quiet_signal.send(sender=None, n=2)  # still connected, but no binding any more
    assert calls(recorder) == 1


def test_receivers_are_never_connected_twice(settings, recorder, ada):
    from django.apps import apps

    settings.PLUGINS_APP = {"SIGNAL_BINDINGS": [{**NOTE_SAVED, "mode": "sync"}]}
    apps.get_app_config("plugins_app").ready()
    signal_handlers.connect_receivers()
    settings.PLUGINS_APP = {"SIGNAL_BINDINGS": [{**NOTE_SAVED, "mode": "sync"}], "POOL_SIZE": 2}
    assert len(our_receivers(post_save)) == 1
    Note.objects.create(author=ada, title="t")
    assert calls(recorder) == 1


def test_bind_and_unbind(recorder, ada):
    binding = bind("post_save", "onEvent", sender="demo.note", mode="sync")  # label is case-insensitive
    try:
        assert binding in bindings()
        Note.objects.create(author=ada, title="t")
        assert calls(recorder) == 1
    finally:
        unbind(binding)
    assert binding not in bindings()
    Note.objects.create(author=ada, title="t")
    assert calls(recorder) == 1


@pytest.mark.parametrize(
    "args, options, check_id",
    [
        (("post_save", 42), {"sender": "demo.Note"}, "plugins_app.E024"),
        (("post_save", ""), {"sender": "demo.Note"}, "plugins_app.E024"),
        (("nope.signals.missing", "h"), {}, "plugins_app.E021"),
        (("django.db.models.signals.pre_delete", "h"), {"sender": "demo.Note"}, "plugins_app.E021"),
        (("plugins_app.conf.get", "h"), {}, "plugins_app.E021"),
        (("post_save", "h"), {}, "plugins_app.E022"),
        (("post_save", "h"), {"sender": 3}, "plugins_app.E022"),
        (("post_save", "h"), {"sender": "demo.Note", "mode": "later"}, "plugins_app.E023"),
        (("post_save", "h"), {"sender": "demo.Note", "mode": "filter"}, "plugins_app.E023"),
        (("pre_save", "h"), {"sender": "demo.Note", "mode": "sync"}, "plugins_app.E023"),
        (("post_save", "h"), {"sender": "demo.Note", "fail_closed": True}, "plugins_app.E023"),
    ],
)
def test_bind_refuses_bindings_that_cannot_work(args, options, check_id):
    with pytest.raises(BindingError) as info:
        bind(*args, **options)
    assert info.value.id == check_id


# -- system checks -------------------------------------------------------------------


def ids(messages) -> list[str]:
    return sorted(m.id for m in messages)


def test_checks_accept_good_bindings(settings):
    settings.PLUGINS_APP = {
        "SIGNAL_BINDINGS": [
            NOTE_SAVED,
            {"signal": "post_delete", "sender": "demo.Note", "hook": "h", "mode": "background"},
            {"signal": "pre_save", "sender": "demo.Note", "hook": "h", "fail_closed": True},
            {"signal": "user_logged_in", "hook": "h", "mode": "sync"},
            {"signal": f"{__name__}.note_shared", "hook": "h"},
        ]
    }
    assert checks.check_signal_bindings() == []
    assert checks.check_settings() == []
    assert len(bindings()) == 5


def test_checks_report_bad_bindings(settings):
    settings.PLUGINS_APP = {
        "SIGNAL_BINDINGS": [
            "post_save",  # E020: not a dict
            {"signal": "post_save", "sender": "demo.Note", "hook": "h", "extra": 1},  # E020
            {"hook": "h"},  # E020: no signal
            {"signal": "nope.nothing", "hook": "h"},  # E021
            {"signal": "post_save", "sender": "auth.Group", "hook": "h"},  # E022: not exposed
            {"signal": "post_save", "sender": "nope.Model", "hook": "h"},  # E022: no such model
            {"signal": "post_delete", "hook": "h"},  # E022: no sender
            {"signal": "post_save", "sender": "demo.Note", "hook": "h", "mode": "soon"},  # E023
            {"signal": "user_logged_in", "hook": ["h"]},  # E024
        ]
    }
    assert ids(checks.check_signal_bindings()) == [
        "plugins_app.E020",
        "plugins_app.E020",
        "plugins_app.E020",
        "plugins_app.E021",
        "plugins_app.E022",
        "plugins_app.E022",
        "plugins_app.E022",
        "plugins_app.E023",
        "plugins_app.E024",
    ]
    assert len(bindings()) == 2  # auth.Group and nope.Model: used, but skipped when they fire
    settings.PLUGINS_APP = {"SIGNAL_BINDINGS": {"signal": "post_save"}}
    assert ids(checks.check_signal_bindings()) == ["plugins_app.E020"]


def test_checks_report_python_bindings_of_unexposed_models_and_created_field(settings):
    settings.PLUGINS_APP = {}  # only the Python bindings below, not the demo's settings ones
    with bound("post_save", "h", sender="auth.Group"):
        assert ids(checks.check_signal_bindings()) == ["plugins_app.E022"]
    with exposing(("auth.User", {"read": ["id", "username", "last_login"]})), bound("post_save", "h", sender=User):
        assert ids(checks.check_signal_bindings()) == []
        # A model exposing a field named "created": the post_save flag replaces it.
        exposure = _registry["auth.user"]
        _registry["auth.user"] = replace(exposure, read=exposure.read | {"created"})
        assert ids(checks.check_signal_bindings()) == ["plugins_app.W020"]
