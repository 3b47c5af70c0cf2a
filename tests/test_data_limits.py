"""Data limits at the sandbox boundary (MAX_DATA_DEPTH, lone surrogates, NUL), with real V8.

Every attack must end as a PluginDataError for the Python caller, or as a catchable JS
error with a precise name and message inside the plugin; never as a RecursionError,
UnicodeError or database error, and never with a traceback in the log.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from django.contrib.auth.models import User
from django.template import Context, Template

from plugins_app import hooks
from plugins_app.background import enqueue_action
from plugins_app.exceptions import PluginDataError, PluginError, PluginResultError
from plugins_app.exposure import exposing
from plugins_app.host_api import HostContext
from plugins_app.models import PluginGrant, StorageItem
from plugins_app.signal_handlers import jsonable_kwargs
from plugins_app.signals import bound
from project.demo.models import Note

DEPTHS = [2_000, 10_000, 100_000]

# `deep(n)` returns arrays nested n + 1 levels; `tryHost` runs a host call and reports
# what it threw as "Name: message" (or "ok: <result>").
PLUGIN = r"""
const nest = (n) => { let a = []; for (let i = 0; i < n; i++) a = [a]; return a; };
const attempt = (fn) => { try { return "ok: " + JSON.stringify(fn()); } catch (e) { return e.name + ": " + e.message; } };
const plugin = {
  deep(n) { return nest(n); },
  echo(value) { return value; },
  lone() { return "abc\ud800def"; },
  loneKey() { return { ["\udc00"]: 1 }; },
  fine() { return "ok"; },
  storeDeep(n) { return attempt(() => storage.set("k", nest(n))); },
  store(key, value) { return attempt(() => storage.set(key, value)); },
  storeLoneKey() { return attempt(() => storage.set("key\ud800", 1)); },
  storeLoneValue() { return attempt(() => storage.set("k", { text: "\udfff" })); },
  get(key) { return attempt(() => storage.get(key)); },
  keys(prefix) { return attempt(() => storage.keys(prefix)); },
  create(values) { return attempt(() => db.create("demo.Note", values)); },
  createLone(authorId) { return attempt(() => db.create("demo.Note", { author: authorId, title: "x\ud83d" })); },
  update(where, values) { return attempt(() => db.update("demo.Note", where, values)); },
  query(where) { return attempt(() => db.query("demo.Note", { where })); },
  queryLone() { return attempt(() => db.query("demo.Note", { where: { title: "\ud800" } })); },
  count(where) { return attempt(() => db.count("demo.Note", where)); },
};
"""


def nested(levels: int) -> list:
    """A list nested ``levels`` levels deep, built without recursion."""
    value: list = []
    for _ in range(levels - 1):
        value = [value]
    return value


@pytest.fixture
def plugin(make_plugin):
    return make_plugin(PLUGIN, slug="p")


@pytest.fixture
def author(db) -> User:
    return User.objects.create_user("ada", password="x" * 12)


@pytest.fixture
def notes(plugin, author):
    g = PluginGrant(
        plugin=plugin,
        model="demo.Note",
        read=["id", "title", "author"],
        create=["author", "title", "body"],
        update=["title", "body"],
    )
    g.full_clean()
    g.save()
    return author


def no_tracebacks(caplog) -> None:
    assert [r.getMessage() for r in caplog.records if r.exc_info] == []


# -- results ---------------------------------------------------------------------------


@pytest.mark.parametrize("n", DEPTHS)
def test_deep_result_is_a_data_error(plugin, caplog, n):
    with caplog.at_level(logging.DEBUG):
        with pytest.raises(PluginDataError):
            hooks.call("p", "deep", n)
        assert hooks.call("p", "fine") == "ok"
    no_tracebacks(caplog)


def test_depth_limit_is_exact(plugin, settings):
    settings.PLUGINS_APP = {"MAX_DATA_DEPTH": 20}
    assert hooks.call("p", "deep", 19) == nested(20)
    with pytest.raises(PluginDataError):
        hooks.call("p", "deep", 20)


@pytest.mark.parametrize("hook", ["lone", "loneKey"])
def test_lone_surrogate_in_result_is_a_data_error(plugin, hook):
    with pytest.raises(PluginDataError, match="lone surrogate"):
        hooks.call("p", hook)


@pytest.mark.parametrize("n", DEPTHS)
def test_deep_results_in_actions_and_filters(plugin, make_plugin, n):
    make_plugin("const plugin = { deep(v) { return [v, 'second']; } };", slug="q", priority=200)
    results = hooks.do_action("deep", n)
    assert isinstance(results[0].error, PluginDataError) and results[1].value == [n, "second"]
    assert hooks.apply_filters("deep", n) == [n, "second"]  # p skipped; q got n
    with pytest.raises(PluginDataError):
        hooks.apply_filters("deep", n, fail_closed=True)


@pytest.mark.django_db(transaction=True)
def test_deep_results_through_the_async_twins(plugin):
    async def main() -> list:
        outcomes = []
        for call in (hooks.acall("p", "deep", 10_000), hooks.arun("p", "lone")):
            try:
                await call
            except PluginError as exc:
                outcomes.append(type(exc))
        outcomes.append(type((await hooks.ado_action("deep", 10_000))[0].error))
        return outcomes

    # A bad *result* is the plugin's fault: PluginResultError, a PluginDataError that
    # counts towards the circuit breaker.
    assert asyncio.run(main()) == [PluginResultError] * 3


# -- arguments from Python ----------------------------------------------------------------


@pytest.mark.parametrize("n", DEPTHS)
def test_deep_arguments_are_a_data_error(plugin, n):
    with pytest.raises(PluginDataError, match="nested deeper than 128 levels"):
        hooks.call("p", "echo", nested(n))
    results = hooks.do_action("echo", {"a": nested(n)})
    assert isinstance(results[0].error, PluginDataError)


def test_arguments_up_to_the_limit_cross(plugin):
    assert hooks.call("p", "echo", nested(128)) == nested(128)
    with pytest.raises(PluginDataError, match="argument 2 is nested deeper than 128 levels"):
        hooks.call("p", "echo", 1, nested(129))


@pytest.mark.parametrize("value", ["\ud800", ["ok", "x\udfff"], {"\ud83d": 1}])
def test_lone_surrogate_arguments_are_a_data_error(plugin, value):
    with pytest.raises(PluginDataError, match="lone surrogate"):
        hooks.call("p", "echo", value)
    assert hooks.call("p", "echo", "😀 \u2028") == "😀 \u2028"  # well-formed text crosses as is


@pytest.mark.parametrize("args", [(nested(10_000),), ("\ud800",)])
def test_background_arguments_are_checked_at_once(args, db):
    with pytest.raises(PluginDataError):
        enqueue_action("work", *args)


def test_signal_kwargs_that_are_not_data_are_left_out():
    data = jsonable_kwargs({"deep": nested(10_000), "lone": "\ud800", "ok": [1, "two"]})
    assert data == {"ok": [1, "two"]}


def test_template_tag_with_bad_arguments_renders_nothing(plugin, caplog):
    template = Template('{% load plugins %}{% plugin_hook "echo" value %}')
    with caplog.at_level(logging.WARNING):
        assert template.render(Context({"value": "\ud800"})) == ""
    assert "not run" in caplog.text
    no_tracebacks(caplog)


# -- host call arguments from JS --------------------------------------------------------------


@pytest.mark.parametrize("n", DEPTHS)
def test_deep_host_call_arguments_are_a_catchable_range_error(plugin, caplog, n):
    with caplog.at_level(logging.DEBUG):
        message = hooks.call("p", "storeDeep", n)
    # The sandbox may refuse them before they leave V8 ("nested too deeply to encode"),
    # or the host after ("nested deeper than 128 levels"): the same catchable error.
    assert message.startswith("RangeError: host call arguments ") and " nested " in message
    assert not StorageItem.objects.exists()
    no_tracebacks(caplog)


def test_host_call_arguments_up_to_the_limit_are_accepted(plugin):
    # The argument list is a level of its own: a value 127 levels deep is argument 1.
    assert hooks.call("p", "storeDeep", 126) == "ok: null"
    assert StorageItem.objects.get(key="k").value == nested(127)
    assert hooks.call("p", "storeDeep", 127).startswith("RangeError: ")


@pytest.mark.parametrize("hook", ["storeLoneKey", "storeLoneValue"])
def test_lone_surrogates_in_storage_are_a_catchable_type_error(plugin, caplog, hook):
    with caplog.at_level(logging.DEBUG):
        message = hooks.call("p", hook)
    assert message.startswith("TypeError: host call arguments ") and "lone surrogate" in message
    assert not StorageItem.objects.exists()
    no_tracebacks(caplog)


def test_lone_surrogates_in_db_values_and_filters_are_a_catchable_type_error(notes, caplog):
    with caplog.at_level(logging.DEBUG):
        created = hooks.call("p", "createLone", notes.pk)
        queried = hooks.call("p", "queryLone")
    for message in (created, queried):
        assert message.startswith("TypeError: host call arguments ") and "lone surrogate" in message
    assert not Note.objects.exists()
    no_tracebacks(caplog)


# -- NUL characters ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "hook, args",
    [
        ("store", ["a\x00b", 1]),
        ("store", ["k", "a\x00b"]),
        ("store", ["k", {"nested": ["x\x00"]}]),
        ("store", ["k", {"key\x00": 1}]),
        ("get", ["\x00"]),
        ("keys", ["pre\x00"]),
    ],
)
def test_nul_in_storage_is_a_catchable_validation_error(plugin, caplog, hook, args):
    with caplog.at_level(logging.DEBUG):
        message = hooks.call("p", hook, *args)
    assert message.startswith("ValidationError: ") and "NUL character" in message
    assert not StorageItem.objects.exists()
    no_tracebacks(caplog)


def test_nul_in_db_values_and_filters_is_a_catchable_validation_error(notes, caplog):
    note = Note.objects.create(author=notes, title="t")
    with caplog.at_level(logging.DEBUG):
        messages = [
            hooks.call("p", "create", {"author": notes.pk, "title": "a\x00b"}),
            hooks.call("p", "update", {"id": note.pk}, {"body": "\x00"}),
            hooks.call("p", "query", {"title": "t\x00"}),
            hooks.call("p", "query", {"title__in": ["t", "\x00"]}),
            hooks.call("p", "count", {"title__contains": "\x00"}),
        ]
    for message in messages:
        assert message.startswith("ValidationError: ") and "NUL character" in message, message
    assert list(Note.objects.values_list("title", "body")) == [("t", "")]
    no_tracebacks(caplog)


def test_nul_from_a_pre_save_filter_is_refused(make_plugin, author, caplog):
    make_plugin("const plugin = { nul(note) { return { ...note, title: 'a\\u0000b' }; } };", slug="nul")
    with bound("pre_save", "nul", sender=Note), caplog.at_level(logging.WARNING, logger="plugins_app.signals"):
        note = Note.objects.create(author=author, title="kept")
    assert Note.objects.get(pk=note.pk).title == "kept"
    assert "contains a NUL character" in caplog.text
    with bound("pre_save", "nul", sender=Note, fail_closed=True):
        with pytest.raises(PluginDataError, match="NUL"):
            Note.objects.create(author=author, title="x")


def test_duplicate_from_a_pre_save_filter_is_refused_not_an_integrity_error(make_plugin, author, caplog):
    # A unique field written by a filter: validated like any other value.
    make_plugin("const plugin = { same(user) { return { ...user, username: 'ada' }; } };", slug="same")
    with (
        exposing(("auth.User", {"read": ["id", "username"], "write": ["username"]})),
        bound("pre_save", "same", sender=User),
    ):
        with caplog.at_level(logging.WARNING, logger="plugins_app.signals"):
            other = User.objects.create_user("bob", password="x" * 12)
    assert User.objects.get(pk=other.pk).username == "bob"
    assert "invalid value for 'username'" in caplog.text


# -- the supervisor does not rely on the sandbox's own checks ---------------------------------
# What a worker sends is parsed again on the Django side: JSON text as a (misbehaving or
# compromised) sandbox could send it, straight to the host-call handler.


def reply(name: str, args_json: str) -> dict:
    import json

    text = HostContext("p").handle(name, args_json)
    assert text.isascii()  # nothing the plugin sent can break the frame back
    return json.loads(text)


@pytest.mark.parametrize("n", [129, *DEPTHS])
def test_host_handler_refuses_deep_arguments(n, caplog):
    with caplog.at_level(logging.DEBUG):
        answer = reply("storage.get", "[" * n + "]" * n)
    assert answer == {
        "error": {"name": "RangeError", "message": "host call arguments are nested deeper than 128 levels"}
    }
    no_tracebacks(caplog)


@pytest.mark.parametrize("args_json", ['["\\ud800"]', '[{"\\udc00": 1}]', '["k", ["\\ud83d"]]'])
def test_host_handler_refuses_lone_surrogates(args_json, caplog):
    with caplog.at_level(logging.DEBUG):
        answer = reply("storage.set", args_json)
    assert answer["error"]["name"] == "TypeError" and "lone surrogate" in answer["error"]["message"]
    no_tracebacks(caplog)


@pytest.mark.parametrize("n", DEPTHS)
def test_result_text_is_checked_again(n):
    with pytest.raises(PluginDataError, match="nested deeper than 128 levels"):
        hooks._decode_result("p", "[" * n + "]" * n)
    with pytest.raises(PluginDataError, match="lone surrogate"):
        hooks._decode_result("p", '{"a": ["\\udfff"]}')


def test_stored_data_too_deep_to_return_is_a_catchable_range_error(plugin, caplog):
    # Written before these limits existed (or by the site): refused on the way out.
    StorageItem.objects.create(plugin=plugin, key="old", value=nested(200), size=400)
    with caplog.at_level(logging.DEBUG):
        message = hooks.call("p", "get", "old")
    assert message == "RangeError: the result of storage.get() is nested deeper than 128 levels and cannot be returned"
    no_tracebacks(caplog)
