"""The JS global `storage`: per-plugin keys, JSON values, quotas, atomic incr."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from django.db import connection

from plugins_app import hooks
from plugins_app.models import StorageItem

STORE = """
const attempt = (fn) => { try { return { ok: true, value: fn() }; } catch (e) { return { ok: false, name: e.name, message: e.message }; } };
const plugin = {
  set(k, v) { return attempt(() => storage.set(k, v)); },
  get(k) { return attempt(() => storage.get(k)); },
  del(k) { return attempt(() => storage.delete(k)); },
  keys(p) { return attempt(() => storage.keys(p)); },
  incr(k, by) { return attempt(() => by === undefined ? storage.incr(k) : storage.incr(k, by)); },
};
"""


@pytest.fixture
def store(make_plugin):
    make_plugin(STORE, slug="store")
    return make_plugin(STORE, slug="other")


@pytest.mark.parametrize("value", [None, True, 0, -5, 2**53, 1.5, "text", "ü😀", [1, [2]], {"a": {"b": None}}])
def test_values_round_trip(store, value):
    assert hooks.call("store", "set", "k", value) == {"ok": True, "value": None}
    assert hooks.call("store", "get", "k") == {"ok": True, "value": value}


def test_keys_delete_and_isolation_between_plugins(store):
    for key in ("a:1", "a:2", "b:1"):
        hooks.call("store", "set", key, key)
    assert hooks.call("store", "keys", "a:")["value"] == ["a:1", "a:2"]
    assert hooks.call("store", "keys")["value"] == ["a:1", "a:2", "b:1"]
    assert hooks.call("other", "get", "a:1")["value"] is None
    assert hooks.call("other", "keys")["value"] == []
    assert hooks.call("store", "del", "a:1")["value"] is True
    assert hooks.call("store", "del", "a:1")["value"] is False
    assert hooks.call("store", "keys", "a:")["value"] == ["a:2"]


def test_incr(store):
    assert hooks.call("store", "incr", "n")["value"] == 1
    assert hooks.call("store", "incr", "n", 41)["value"] == 42
    assert hooks.call("store", "incr", "n", -2)["value"] == 40
    assert hooks.call("store", "get", "n")["value"] == 40
    hooks.call("store", "set", "s", "text")
    assert hooks.call("store", "incr", "s")["name"] == "TypeError"
    assert hooks.call("store", "incr", "n", 1.5)["name"] == "TypeError"


def test_quotas(store, settings):
    settings.PLUGINS_APP = {"STORAGE_MAX_KEY_CHARS": 10, "STORAGE_MAX_VALUE_BYTES": 100, "STORAGE_MAX_TOTAL_BYTES": 200}
    assert hooks.call("store", "set", "k" * 11, 1)["name"] == "QuotaExceeded"
    assert hooks.call("store", "set", "big", "x" * 200)["name"] == "QuotaExceeded"
    assert hooks.call("store", "set", "a", "x" * 80)["ok"]
    assert hooks.call("store", "set", "b", "x" * 80)["ok"]
    result = hooks.call("store", "set", "c", "x" * 80)
    assert result["name"] == "QuotaExceeded" and "200 bytes" in result["message"]
    assert hooks.call("store", "set", "a", "small")["ok"]  # replacing frees the old size
    assert hooks.call("store", "get", "b")["value"] == "x" * 80  # nothing lost on a refused write
    assert hooks.call("store", "set", "", 1)["name"] == "TypeError"


@pytest.mark.django_db(transaction=True)
def test_incr_is_atomic_under_concurrent_callers(make_plugin):
    make_plugin(STORE, slug="counter", timeout_ms=10_000)

    def batch(_: int) -> list[bool]:
        try:
            return [hooks.call("counter", "incr", "hits")["ok"] for _ in range(100)]
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=8) as executor:
        outcomes = [ok for chunk in executor.map(batch, range(8)) for ok in chunk]
    assert outcomes.count(True) == 800
    assert StorageItem.objects.get(plugin__slug="counter", key="hits").number == 800


def test_incr_of_a_new_key_respects_the_total_quota(store, settings):
    settings.PLUGINS_APP = {"STORAGE_MAX_TOTAL_BYTES": 100}
    assert hooks.call("store", "set", "a", "x" * 90)["ok"]
    assert hooks.call("store", "incr", "counter")["name"] == "QuotaExceeded"
    assert hooks.call("store", "get", "counter")["value"] is None


def test_incr_refuses_to_overflow_64_bits(store):
    from plugins_app.models import Plugin

    # Integers beyond 2**53 cannot come from JS exactly, so the near-limit value is set here.
    StorageItem.objects.create(plugin=Plugin.objects.get(slug="store"), key="n", number=2**63 - 2, size=10)
    assert hooks.call("store", "incr", "n")["ok"]
    assert hooks.call("store", "incr", "n")["name"] == "RangeError"
    assert StorageItem.objects.get(plugin__slug="store", key="n").number == 2**63 - 1
