"""The execution log and plugin health in the admin: the *Calls* list (filters, search),
a record's page (error, stack, logs, data, *Replay in console*), the plugin's *Health*
page, its summary on the plugin page and the sparkline column, for a superuser and for
view-only staff (who can see, never change)."""

from __future__ import annotations

import datetime
import json
import re
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.http import HttpResponse
from django.test.utils import CaptureQueriesContext
from django.urls import NoReverseMatch, include, path, reverse
from django.utils import timezone

from plugins_app import calllog, hooks
from plugins_app.admin import calls
from plugins_app.admin.calls import replay_url
from plugins_app.exceptions import PluginScriptError
from plugins_app.models import CallMinute, CallRecord, CallTotal, Plugin

SOURCE = """
const plugin = {
  greet(name) { log("greeting " + name); return {hello: name}; },
  fail(x) {
    log("before the failure");
    throw new RangeError("out of range: " + x);
  },
};
"""

LIST = "admin:plugins_app_callrecord_changelist"


# A URLconf in which the console exists (it is another screen's work): the admin site's
# URLs plus a stand-in view under the console's name.
def fake_console(request, object_id):
    return HttpResponse("console")


def _admin_with_console():
    urls, app_name, namespace = admin.site.urls
    console = path("plugins_app/plugin/<path:object_id>/console/", fake_console, name="plugins_app_plugin_console")
    return [console, *urls], app_name, namespace


urlpatterns = [path("admin/", _admin_with_console()), path("plugins/", include("plugins_app.urls"))]


def staff(username: str, *codenames: str) -> User:
    user = User.objects.create_user(username, password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


@pytest.fixture
def viewer(client):
    """Staff who may only look: view plugins and the execution log."""
    client.force_login(staff("viewer", "view_plugin", "view_callrecord"))
    return client


@pytest.fixture
def plugin(make_plugin) -> Plugin:
    return make_plugin(SOURCE, slug="greeter2")


def record(plugin: Plugin, **fields) -> CallRecord:
    defaults = {
        "plugin": plugin,
        "plugin_version": plugin.version,
        "hook": "greet",
        "started_at": timezone.now(),
        "duration_ms": 1.5,
        "outcome": "ok",
        "args": '["Ada"]',
        "args_bytes": 7,
        "result": '{"hello":"Ada"}',
        "result_bytes": 15,
    }
    return CallRecord.objects.create(**{**defaults, **fields})


def failure(plugin: Plugin, **fields) -> CallRecord:
    values = {
        "hook": "fail",
        "outcome": "error",
        "error_class": "PluginScriptError",
        "error_message": "plugin 'greeter2' threw RangeError: out of range: 7 at line 5, column 11",
        "js_error_name": "RangeError",
        "js_message": "out of range: 7",
        "js_stack": "RangeError: out of range: 7\n    at fail (plugin.js:5:11)",
        "line": 5,
        "column": 11,
        "logs": [{"level": "info", "message": "before the failure"}],
        "args": "[7]",
        "args_bytes": 3,
        "result": "",
        "result_bytes": 0,
    }
    return record(plugin, **{**values, **fields})


def rows(response) -> set[int]:
    return {
        int(pk) for pk in re.findall(r'href="/admin/plugins_app/callrecord/(\d+)/change/', response.content.decode())
    }


# -- the list ----------------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_real_calls_show_in_the_list_and_on_their_page(plugin, admin_client, settings):
    settings.PLUGINS_APP = {**settings.PLUGINS_APP, "CALL_LOG_SAMPLE_RATE": 1.0}
    calllog.clear()
    hooks.call("greeter2", "greet", "Ada")
    with pytest.raises(PluginScriptError):
        hooks.call("greeter2", "fail", 7)
    assert calllog.flush()
    body = admin_client.get(reverse(LIST)).content.decode()
    assert "greeter2" in body and "RangeError" in body
    bad = CallRecord.objects.get(outcome="error")
    page = admin_client.get(reverse("admin:plugins_app_callrecord_change", args=[bad.pk])).content.decode()
    assert "out of range: 7" in page and "at line 6, column 11" in page
    assert "before the failure" in page
    assert "fail (" in page  # the stack


@pytest.mark.django_db
def test_filters_and_search(plugin, make_plugin, admin_client):
    other = make_plugin(SOURCE, slug="other")
    ok = record(plugin)
    bad = failure(plugin)
    slow = record(other, outcome="timeout", error_class="PluginTimeout", caller="cli", hook="slow")
    old = record(other, started_at=timezone.now() - datetime.timedelta(days=3), caller="template")
    everything = {ok.pk, bad.pk, slow.pk, old.pk}
    assert rows(admin_client.get(reverse(LIST))) == everything
    cases = {
        f"plugin__id__exact={plugin.pk}": {ok.pk, bad.pk},
        "hook=slow": {slow.pk},
        "outcome__exact=error": {bad.pk},
        "failed=yes": {bad.pk, slow.pk},
        "failed=no": {ok.pk, old.pk},
        "caller__exact=cli": {slow.pk},
        "caller__exact=template": {old.pk},
        "error_class=PluginTimeout": {slow.pk},
        "q=RangeError": {bad.pk},  # in the error message
        "q=out+of+range": {bad.pk},
        "q=other": {slow.pk, old.pk},
    }
    today = timezone.localtime().replace(hour=0, minute=0, second=0, microsecond=0)
    tomorrow = today + datetime.timedelta(days=1)
    cases[urlencode({"started_at__gte": today.isoformat(), "started_at__lt": tomorrow.isoformat()})] = {
        ok.pk,
        bad.pk,
        slow.pk,
    }
    for query, expected in cases.items():
        response = admin_client.get(f"{reverse(LIST)}?{query}")
        assert response.status_code == 200, query
        assert rows(response) == expected, query


@pytest.mark.django_db
def test_list_columns(plugin, admin_client):
    failure(plugin)
    body = admin_client.get(reverse(LIST)).content.decode()
    assert 'class="call-outcome call-outcome-error"' in body
    assert "PluginScriptError: threw RangeError: out of range: 7" in body  # without the plugin's name
    assert "1.50\u00a0ms" in body


# -- a record's page ---------------------------------------------------------------------------


@pytest.mark.django_db
def test_a_failure_shows_its_error_stack_logs_and_arguments(plugin, admin_client):
    bad = failure(plugin)
    page = admin_client.get(reverse("admin:plugins_app_callrecord_change", args=[bad.pk])).content.decode()
    assert "RangeError: out of range: 7 at line 5, column 11" in page
    assert "at fail (plugin.js:5:11)" in page
    assert "[info] before the failure" in page
    assert '<pre class="call-text">[\n  7\n]</pre>' in page
    assert 'name="_save"' not in page  # read-only for everyone, superusers too


@pytest.mark.django_db
def test_a_success_shows_its_result_and_no_error_section(plugin, admin_client):
    ok = record(plugin, logs=[{"level": "info", "message": "greeting Ada"}], host_calls=2, rows_read=3)
    page = admin_client.get(reverse("admin:plugins_app_callrecord_change", args=[ok.pk])).content.decode()
    assert "&quot;hello&quot;: &quot;Ada&quot;" in page
    assert "JavaScript stack" not in page


@pytest.mark.django_db
def test_cut_data_says_so(plugin, admin_client):
    cut = record(plugin, args='["aaaa', args_bytes=5000)
    page = admin_client.get(reverse("admin:plugins_app_callrecord_change", args=[cut.pk])).content.decode()
    assert "Showing the first 6\u00a0bytes of 4.9\u00a0KiB." in page
    assert "No replay: the arguments were cut" in page


@pytest.mark.django_db
def test_no_replay_link_without_the_console(plugin, admin_client, monkeypatch):
    real = calls.reverse

    def reverse_without_console(name, *args, **kwargs):
        if name.endswith("plugins_app_plugin_console"):
            raise NoReverseMatch(name)
        return real(name, *args, **kwargs)

    monkeypatch.setattr(calls, "reverse", reverse_without_console)
    ok = record(plugin)
    assert replay_url(ok) is None
    page = admin_client.get(reverse("admin:plugins_app_callrecord_change", args=[ok.pk])).content.decode()
    assert "Replay in console" not in page


@pytest.mark.django_db
def test_replay_opens_the_real_console_prefilled(plugin, admin_client):
    try:
        reverse("admin:plugins_app_plugin_console", args=[plugin.pk])
    except NoReverseMatch:
        pytest.skip("no console in this build")
    bad = failure(plugin, args='["Ada", 42]', args_bytes=11)
    url = replay_url(bad)
    assert url is not None
    body = admin_client.get(url).content.decode()
    assert admin_client.get(url).status_code == 200
    assert "[&quot;Ada&quot;, 42]" in body or '["Ada", 42]' in body


@pytest.mark.django_db
@pytest.mark.urls(__name__)
def test_replay_opens_the_console_with_hook_and_arguments(plugin, admin_client):
    ok = record(plugin, args='["Ada", {"x": [1, 2]}]', args_bytes=21)
    page = admin_client.get(reverse("admin:plugins_app_callrecord_change", args=[ok.pk])).content.decode()
    [href] = set(re.findall(r'href="([^"]*console/[^"]*)"', page))
    assert href.startswith(f"/admin/plugins_app/plugin/{plugin.pk}/console/?hook=greet&amp;args=")
    url = replay_url(ok)
    query = parse_qs(urlsplit(url).query)
    assert query["hook"] == ["greet"] and json.loads(query["args"][0]) == ["Ada", {"x": [1, 2]}]
    assert admin_client.get(url).content == b"console"
    redacted = record(plugin, args="", args_bytes=0, redacted=True)
    assert replay_url(redacted) is None


# -- permissions -----------------------------------------------------------------------------------


@pytest.mark.django_db
def test_view_only_staff_can_see_but_not_change(plugin, viewer):
    bad = failure(plugin)
    assert rows(viewer.get(reverse(LIST))) == {bad.pk}
    url = reverse("admin:plugins_app_callrecord_change", args=[bad.pk])
    page = viewer.get(url)
    assert page.status_code == 200 and "out of range: 7" in page.content.decode()
    assert viewer.post(url, {"hook": "changed"}).status_code == 403
    assert viewer.get(reverse("admin:plugins_app_callrecord_add")).status_code == 403
    assert (
        viewer.post(reverse("admin:plugins_app_callrecord_delete", args=[bad.pk]), {"post": "yes"}).status_code == 403
    )
    assert CallRecord.objects.get(pk=bad.pk).hook == "fail"


@pytest.mark.django_db
def test_superusers_cannot_change_records_either(plugin, admin_client):
    bad = failure(plugin)
    assert (
        admin_client.post(reverse("admin:plugins_app_callrecord_change", args=[bad.pk]), {"hook": "x"}).status_code
        == 403
    )
    assert admin_client.get(reverse("admin:plugins_app_callrecord_add")).status_code == 403
    assert (
        admin_client.post(reverse("admin:plugins_app_callrecord_delete", args=[bad.pk]), {"post": "yes"}).status_code
        == 403
    )
    assert 'name="action"' not in admin_client.get(reverse(LIST)).content.decode()  # no bulk delete


@pytest.mark.django_db
def test_staff_without_permission_do_not_see_the_log(plugin, client):
    failure(plugin)
    client.force_login(staff("plain", "view_plugin"))
    assert client.get(reverse(LIST)).status_code == 403


# -- health ----------------------------------------------------------------------------------------


def minutes(plugin: Plugin, now: datetime.datetime) -> None:
    """Aggregates: 10 calls (2 errors, 1 timeout) 5 minutes ago, 4 calls 3 hours ago."""
    this_minute = now.replace(second=0, microsecond=0)
    CallMinute.objects.create(
        plugin=plugin,
        minute=this_minute - datetime.timedelta(minutes=5),
        calls=10,
        errors=2,
        timeouts=1,
        duration_ms_sum=30.0,
        duration_ms_max=9.0,
        h2=4,
        h3=4,
        h5=2,
        last_called=now - datetime.timedelta(minutes=5),
    )
    CallMinute.objects.create(
        plugin=plugin,
        minute=this_minute - datetime.timedelta(hours=3),
        calls=4,
        duration_ms_sum=4.0,
        duration_ms_max=1.0,
        h2=4,
        last_called=now - datetime.timedelta(hours=3),
    )
    CallTotal.objects.create(plugin=plugin, calls=14, errors=2, last_called=now - datetime.timedelta(minutes=5))


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["superuser", "viewer"])
def test_health_page(plugin, admin_client, viewer, who):
    client = admin_client if who == "superuser" else viewer
    minutes(plugin, timezone.now())
    failure(plugin)
    response = client.get(reverse("admin:plugins_app_plugin_health", args=[plugin.pk]))
    assert response.status_code == 200
    body = response.content.decode()
    summary = {label: (hour, day) for label, hour, day in response.context["rows"]}
    assert summary["Calls"] == ("10", "14")
    assert summary["Errors"] == ("2 (20.0\u00a0%)", "2 (14.3\u00a0%)")
    assert summary["Timeouts"] == ("1", "1")
    content = body.split('id="content-main"')[1]
    assert content.count('<svg class="plugin-chart"') == 3  # server-rendered
    assert "<script" not in content and "http" not in content.split("<svg", 1)[1].split("</svg>")[0].replace(
        "http://www.w3.org/2000/svg", ""
    )  # no JavaScript, nothing fetched
    assert 'aria-label="Calls per minute, last hour: peak 10 calls"' in body
    assert "closed (0 of 5 failures in a row)" in body
    assert "out of range: 7" in body  # recent failures
    assert 'id="plugin-recent-calls-link"' in body


@pytest.mark.django_db
def test_health_page_needs_permission_to_see_the_plugin(plugin, client):
    client.force_login(staff("nobody"))
    assert client.get(reverse("admin:plugins_app_plugin_health", args=[plugin.pk])).status_code == 403
    client.force_login(staff("plugins-only", "view_plugin"))
    response = client.get(reverse("admin:plugins_app_plugin_health", args=[plugin.pk]))
    assert response.status_code == 200
    assert 'id="plugin-recent-calls-link"' not in response.content.decode()  # may not see the log


@pytest.mark.django_db
def test_health_shows_a_paused_plugin(plugin, admin_client):
    Plugin.objects.filter(pk=plugin.pk).update(paused_at=timezone.now(), paused_reason="5 consecutive failures")
    body = admin_client.get(reverse("admin:plugins_app_plugin_health", args=[plugin.pk])).content.decode()
    assert "paused since" in body and "5 consecutive failures" in body


@pytest.mark.django_db
@pytest.mark.parametrize("who", ["superuser", "viewer"])
def test_plugin_page_has_a_health_summary(plugin, admin_client, viewer, who):
    client = admin_client if who == "superuser" else viewer
    minutes(plugin, timezone.now())
    body = client.get(reverse("admin:plugins_app_plugin_change", args=[plugin.pk])).content.decode()
    assert 'id="plugin-health-panel"' in body
    assert reverse("admin:plugins_app_plugin_health", args=[plugin.pk]) in body
    assert f"{reverse(LIST)}?plugin__id__exact={plugin.pk}" in body


@pytest.mark.django_db
def test_plugin_list_sparklines_take_one_query_for_the_page(plugin, make_plugin, admin_client):
    minutes(plugin, timezone.now())

    def count_queries() -> int:
        with CaptureQueriesContext(connection) as queries:
            response = admin_client.get(reverse("admin:plugins_app_plugin_changelist"))
        assert response.status_code == 200
        return len(queries)

    few = count_queries()
    for i in range(4):
        make_plugin(SOURCE, slug=f"more-{i}")
    assert count_queries() == few
    body = admin_client.get(reverse("admin:plugins_app_plugin_changelist")).content.decode()
    assert 'class="plugin-sparkline"' in body
    assert "14 calls, 2 errors in the last 24 hours" in body
    assert "no calls" in body
