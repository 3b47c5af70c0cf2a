"""The Deliveries admin: list, filters, search, the read-only detail page, *Retry now* and
*Discard*, permissions, and the failed-delivery count and link on the plugin pages."""

from __future__ import annotations

import datetime
import html
import json
import re

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.admin.templatetags.admin_list import result_headers
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from plugins_app.admin import PluginAdmin
from plugins_app.admin.deliveries import PAYLOAD_DISPLAY_BYTES, payload_text
from plugins_app.models import Delivery, Plugin

from .delivery_helpers import WORKER, add, failed, reload, runs, set_fail

pytestmark = pytest.mark.django_db

LIST = "admin:plugins_app_delivery_changelist"
PLUGINS = "admin:plugins_app_plugin_changelist"


def change_url(row: Delivery) -> str:
    return reverse("admin:plugins_app_delivery_change", args=[row.pk])


def listed(response) -> set[str]:
    """The primary keys of the rows on a changelist page."""
    return set(re.findall(r'name="_selected_action" value="(\d+)"', response.content.decode()))


def ids(*rows: Delivery) -> set[str]:
    return {str(r.pk) for r in rows}


def staff(username: str, *codenames: str) -> User:
    user = User.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


@pytest.fixture
def worker(make_plugin, one_attempt) -> Plugin:
    return make_plugin(WORKER, slug="worker", config={"fail": True})


@pytest.fixture
def other(make_plugin, one_attempt) -> Plugin:
    return make_plugin(WORKER, slug="other", config={"fail": False})


# -- the list --------------------------------------------------------------------------------
def test_list_shows_columns_and_state_badges(admin_client, worker, other):
    bad = failed(worker, n=7)
    waiting = add(other, hook="other", mode="background")
    response = admin_client.get(reverse(LIST))
    body = response.content.decode()
    assert response.status_code == 200
    headers = [str(h["text"]).lower() for h in result_headers(response.context["cl"])]
    for column in (
        "created at",
        "plugin",
        "hook",
        "mode",
        "state",
        "attempts",
        "next attempt",
        "delivered at",
        "plugin version",
        "last error",
    ):
        assert column in headers, headers
    assert '<span class="delivery-state delivery-state-failed">failed</span>' in body
    assert '<span class="delivery-state delivery-state-pending">pending</span>' in body
    # Cut, and without the plugin's name (it has its own column); the whole text is the tooltip.
    assert ">PluginScriptError: threw TypeError: failing on purpose: 7 at line 4, column 28</span>" in body
    assert 'title="PluginScriptError: plugin &#x27;worker&#x27; threw TypeError: failing on purpose: 7' in body
    assert "plugins_app/admin/deliveries.css" in body
    assert listed(response) == ids(bad, waiting)
    assert "add/" not in re.findall(r'href="[^"]*delivery/(add/)', body)


def test_list_filters_by_plugin_hook_state_mode_and_created_date(admin_client, worker, other):
    bad = failed(worker)
    waiting = add(other, hook="other", mode="background")
    done = add(other)
    done.state = Delivery.State.DELIVERED
    done.save()
    old = add(other, hook="other")
    Delivery.objects.filter(pk=old.pk).update(created_at=timezone.now() - datetime.timedelta(days=40))
    url = reverse(LIST)
    assert listed(admin_client.get(url, {"plugin__id__exact": worker.pk})) == ids(bad)
    assert listed(admin_client.get(url, {"hook": "other"})) == ids(waiting, old)
    assert listed(admin_client.get(url, {"state__exact": "failed"})) == ids(bad)
    assert listed(admin_client.get(url, {"state__exact": "delivered"})) == ids(done)
    assert listed(admin_client.get(url, {"mode__exact": "background"})) == ids(waiting)
    since = (timezone.now() - datetime.timedelta(days=7)).isoformat()  # as "Past 7 days" passes it
    assert listed(admin_client.get(url, {"created_at__gte": since})) == ids(bad, waiting, done)
    year = timezone.now().year
    hierarchy = admin_client.get(url, {"created_at__year": year})
    assert hierarchy.status_code == 200 and ids(bad) <= listed(hierarchy)


def test_search_by_hook_plugin_delivery_id_and_error(admin_client, worker, other):
    bad = failed(worker)
    waiting = add(other, hook="other")
    url = reverse(LIST)
    assert listed(admin_client.get(url, {"q": "other"})) == ids(waiting)  # hook and slug
    assert listed(admin_client.get(url, {"q": "worker"})) == ids(bad)
    assert listed(admin_client.get(url, {"q": str(waiting.delivery_id)})) == ids(waiting)
    assert listed(admin_client.get(url, {"q": str(bad.delivery_id)[:8]})) == ids(bad)
    assert listed(admin_client.get(url, {"q": "on purpose"})) == ids(bad)
    assert listed(admin_client.get(url, {"q": "no-such-thing"})) == set()


# -- the detail page ---------------------------------------------------------------------------
def test_detail_page_is_read_only_with_payload_error_and_stack(admin_client, worker):
    bad = failed(worker, n=42)
    response = admin_client.get(change_url(bad))
    body = response.content.decode()
    assert response.status_code == 200
    assert 'name="_save"' not in body and "<textarea" not in body
    payload = re.search(r'<pre class="delivery-text">(.*?)</pre>', body, re.S)
    assert payload is not None
    assert json.loads(html.unescape(payload.group(1))) == {"args": [{"n": 42}], "meta": {"source": "test"}}
    assert "\n  &quot;args&quot;: [" in body  # indented
    assert (
        '<pre class="delivery-text delivery-error">PluginScriptError: plugin &#x27;worker&#x27; threw TypeError' in body
    )
    stack = re.search(r'<pre class="delivery-text">(TypeError: failing on purpose.*?)</pre>', body, re.S)
    assert stack is not None and "\n    at Object.work (worker.js:4:" in stack.group(1)
    assert str(bad.delivery_id) in body
    assert reverse("admin:plugins_app_plugin_change", args=[worker.pk]) in body
    # Nothing can be changed, added or deleted, even by a superuser.
    before = reload(bad)
    assert admin_client.post(change_url(bad), {"state": "delivered", "hook": "x"}).status_code == 403
    assert reload(bad).state == before.state and reload(bad).updated_at == before.updated_at
    assert admin_client.get(reverse("admin:plugins_app_delivery_add")).status_code == 403
    assert admin_client.post(reverse("admin:plugins_app_delivery_delete", args=[bad.pk])).status_code == 403
    actions = admin_client.get(reverse(LIST)).context["action_form"].fields["action"].choices
    assert [name for name, _ in actions if name] == ["retry_now", "discard"]


def test_payload_is_cut_at_64_kib_with_a_note(admin_client, other):
    big = add(other)
    Delivery.objects.filter(pk=big.pk).update(args=[{"text": "é" * 100_000}])
    body = admin_client.get(change_url(big)).content.decode()
    shown = re.search(r'<pre class="delivery-text">(.*?)</pre>', body, re.S).group(1)
    assert len(html.unescape(shown).encode()) <= PAYLOAD_DISPLAY_BYTES
    assert "Showing the first 64.0\u00a0KiB of 195.4\u00a0KiB." in body


def test_payload_text_keeps_small_payloads_whole_and_survives_lone_surrogates():
    assert payload_text([1], {"a": "b"}) == ('{\n  "args": [\n    1\n  ],\n  "meta": {\n    "a": "b"\n  }\n}', None)
    text, full = payload_text(["\ud800"], {})
    assert full is None and "\\ud800" in text
    text.encode("utf-8")  # displayable


# -- actions ---------------------------------------------------------------------------------------
def act(client, action: str, *rows: Delivery):
    return client.post(reverse(LIST), {"action": action, "_selected_action": [r.pk for r in rows]}, follow=True)


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_retry_now_resets_failed_rows_and_delivers_them_at_once(admin_client, worker):
    first, second = failed(worker, n=1), failed(worker, n=2)
    Delivery.objects.filter(pk=second.pk).update(state=Delivery.State.DISCARDED)
    set_fail(worker, False)  # the plugin was fixed: a new version
    response = act(admin_client, "retry_now", first, second)
    assert messages_of(response) == ["Retried 2 deliveries: delivered 2, retrying 0, failed 0."]
    for row in (first, second):
        done = reload(row)
        assert (done.state, done.attempts, done.plugin_version) == ("delivered", 1, worker.version)
        assert done.last_error == "" and runs(worker, done) == 1
    history = LogEntry.objects.filter(object_id=str(first.pk)).get()
    assert history.get_change_message() == "Retried now." and history.user.username == "admin"


def test_retry_now_makes_pending_rows_due_and_reports_failures(admin_client, worker, other):
    later = add(other, next_attempt_at=timezone.now() + datetime.timedelta(hours=1))
    still_bad = failed(worker)
    response = act(admin_client, "retry_now", later, still_bad)
    assert messages_of(response) == ["Retried 2 deliveries: delivered 1, retrying 0, failed 1."]
    assert reload(later).state == "delivered" and runs(other, later) == 1
    bad = reload(still_bad)
    assert (bad.state, bad.attempts) == ("failed", 1)


def test_retry_now_leaves_delivered_and_in_progress_rows_alone(admin_client, other):
    done, busy = add(other), add(other)
    Delivery.objects.filter(pk=done.pk).update(state=Delivery.State.DELIVERED)
    Delivery.objects.filter(pk=busy.pk).update(
        state=Delivery.State.IN_PROGRESS, lease_until=timezone.now() + datetime.timedelta(minutes=1)
    )
    response = act(admin_client, "retry_now", done, busy)
    assert messages_of(response) == [
        "Retried 0 deliveries: delivered 0, retrying 0, failed 0. Left alone: 1 delivered, 1 in progress."
    ]
    assert (reload(done).state, reload(busy).state) == ("delivered", "in_progress")
    assert runs(other, done) == runs(other, busy) == 0


def test_discard_stops_pending_and_failed_rows_only(admin_client, worker, other):
    waiting, bad, done = add(other), failed(worker), add(other)
    Delivery.objects.filter(pk=done.pk).update(state=Delivery.State.DELIVERED)
    response = act(admin_client, "discard", waiting, bad, done)
    assert messages_of(response) == [
        "Discarded 2 deliveries. 1 left alone (delivered, in progress or already discarded)."
    ]
    assert [reload(r).state for r in (waiting, bad, done)] == ["discarded", "discarded", "delivered"]
    assert LogEntry.objects.filter(object_id__in=[str(waiting.pk), str(bad.pk)]).count() == 2
    assert not LogEntry.objects.filter(object_id=str(done.pk)).exists()
    # A discarded delivery is never attempted by a drain.
    from plugins_app import outbox

    assert outbox.drain() == [] and runs(other, waiting) == 0


def test_view_only_staff_can_list_and_read_but_not_act(client, worker, other):
    client.force_login(staff("auditor", "view_delivery"))
    bad, waiting = failed(worker), add(other)
    response = client.get(reverse(LIST))
    assert response.status_code == 200
    assert "action_form" not in response.context or response.context["action_form"] is None
    assert 'name="_selected_action"' not in response.content.decode()
    for action in ("retry_now", "discard"):
        client.post(reverse(LIST), {"action": action, "_selected_action": [bad.pk, waiting.pk]})
    assert (reload(bad).state, reload(waiting).state) == ("failed", "pending")
    assert runs(other, waiting) == 0
    assert client.get(change_url(bad)).status_code == 200
    assert client.post(change_url(bad), {}).status_code == 403


def test_staff_without_delivery_permissions_get_nothing(client, worker):
    client.force_login(staff("plugins-only", "view_plugin"))
    bad = failed(worker)
    assert client.get(reverse(LIST)).status_code == 403
    assert client.get(change_url(bad)).status_code == 403


# -- from the plugin pages -------------------------------------------------------------------------
def test_plugin_list_counts_failed_deliveries_in_one_query_and_links_to_them(admin_client, make_plugin, worker, other):
    failed(worker), failed(worker), add(other)
    url = reverse(PLUGINS)
    with CaptureQueriesContext(connection) as few:
        body = admin_client.get(url).content.decode()
    more = [make_plugin(WORKER, slug=f"extra-{i}", config={"fail": True}) for i in range(3)]
    for plugin in more:
        failed(plugin)
    with CaptureQueriesContext(connection) as many:
        admin_client.get(url)
    assert len(many) == len(few)  # not one query per plugin
    link = reverse(LIST) + f"?plugin__id__exact={worker.pk}&amp;state__exact=failed"
    assert f'<a class="delivery-failed-count" href="{link}">2</a>' in body
    assert re.search(r'<td class="field-failed_deliveries_link">0</td>', body)  # other: nothing failed
    followed = admin_client.get(html.unescape(link))
    assert followed.status_code == 200 and len(listed(followed)) == 2
    column = list(PluginAdmin.list_display).index("failed_deliveries") + 1
    by_count = admin_client.get(url, {"o": f"-{column}"}).context["cl"].result_list  # the column sorts
    assert by_count[0].failed_deliveries == 2


def test_plugin_page_links_to_its_deliveries_with_the_failed_count(admin_client, worker, other):
    failed(worker), add(worker, hook="other"), add(other)
    body = admin_client.get(reverse("admin:plugins_app_plugin_change", args=[worker.pk])).content.decode()
    link = reverse(LIST) + f"?plugin__id__exact={worker.pk}"
    assert f'<a href="{link}" id="plugin-deliveries-link">Deliveries (1 failed)</a>' in body
    assert len(listed(admin_client.get(link))) == 2
    body = admin_client.get(reverse("admin:plugins_app_plugin_change", args=[other.pk])).content.decode()
    assert "Deliveries (0 failed)" in body
    assert "plugin-deliveries-link" not in admin_client.get(reverse("admin:plugins_app_plugin_add")).content.decode()


def test_plugin_viewers_without_delivery_permission_see_the_count_but_no_links(client, worker):
    failed(worker)
    client.force_login(staff("plugin-viewer", "view_plugin"))
    body = client.get(reverse(PLUGINS)).content.decode()
    assert re.search(r'<td class="field-failed_deliveries">1</td>', body)
    assert "delivery-failed-count" not in body
    page = client.get(reverse("admin:plugins_app_plugin_change", args=[worker.pk])).content.decode()
    assert "plugin-deliveries-link" not in page
