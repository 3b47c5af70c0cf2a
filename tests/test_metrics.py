"""Health metrics (plugins_app.metrics): per-minute aggregates written by several writers at
once, p50/p95 from the latency histogram, the health summary, sparklines, the Prometheus
endpoint (format and access control) and the settings checks."""

from __future__ import annotations

import threading
import time

import pytest
from django.contrib.auth.models import Permission, User
from django.core import checks
from django.db import connections
from prometheus_client.parser import text_string_to_metric_families

from plugins_app import calllog, hooks, metrics
from plugins_app.exceptions import PluginScriptError, PluginTimeout
from plugins_app.models import LATENCY_BOUNDS_MS, LATENCY_COLUMNS, CallMinute, CallTotal

SOURCE = """
const plugin = {
  ok(x) { return x; },
  boom() { throw new Error("boom"); },
  loop() { for (;;) {} },
};
"""
TOKEN = "s3cret-token-for-the-scraper-0123456789"


def hist(**buckets: int) -> list[int]:
    """A histogram with ``b<index>=count``."""
    values = [0] * len(LATENCY_COLUMNS)
    for name, count in buckets.items():
        values[int(name[1:])] = count
    return values


# -- percentiles -------------------------------------------------------------------------------------


def test_percentile_of_nothing_is_none():
    assert metrics.percentile(hist(), 0.5) is None


def test_percentile_interpolates_inside_the_bucket():
    assert LATENCY_BOUNDS_MS[1:3] == (0.5, 1)
    # 10 calls in (0.5, 1] ms: the median is half way, p95 at 95 %.
    assert metrics.percentile(hist(b2=10), 0.5) == pytest.approx(0.75)
    assert metrics.percentile(hist(b2=10), 0.95) == pytest.approx(0.975)


def test_percentile_finds_the_bucket_holding_the_rank():
    # 90 fast calls in (0, 0.25], 10 slow ones in (100, 250]: p50 is fast, p95 slow.
    assert LATENCY_BOUNDS_MS[7:9] == (50, 100)
    h = hist(b0=90, b9=10)
    assert metrics.percentile(h, 0.5) == pytest.approx(0.25 * 50 / 90)
    assert metrics.percentile(h, 0.95) == pytest.approx(100 + 150 * 0.5)


def test_percentile_is_capped_by_the_longest_call():
    # All in (100, 250] but none took more than 120 ms: the bucket ends at 120.
    assert metrics.percentile(hist(b9=4), 0.5, max_ms=120) == pytest.approx(110)
    # The overflow bucket (over 30 s) reaches up to the longest call.
    assert metrics.percentile(hist(b16=2), 0.5, max_ms=40_000) == pytest.approx(35_000)
    assert metrics.percentile(hist(b16=2), 0.5) == pytest.approx(30_000)


def test_summary_properties():
    summary = metrics.Summary(calls=4, errors=1, duration_ms_sum=10.0, duration_ms_max=4.0, histogram=hist(b4=4))
    assert summary.error_rate == 0.25 and summary.mean_ms == 2.5
    assert summary.p50_ms == pytest.approx(2.5 + 1.5 * 0.5) and summary.p95_ms <= 4.0
    assert metrics.Summary().p50_ms is None and metrics.Summary().error_rate is None


# -- aggregates: several writers -----------------------------------------------------------------------


@pytest.fixture
def quiet_log(settings):
    calllog.clear()
    assert calllog.flush()
    yield settings
    calllog.clear()


def aggregate(calls: int, errors: int, duration_ms: float, when: float, bucket: int) -> list:
    values = [calls, errors, 0, 0, 0, duration_ms * calls, duration_ms, when] + [0] * len(LATENCY_COLUMNS)
    values[calllog.HISTOGRAM + bucket] = calls
    return values


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("native", [True, False], ids=["on-conflict", "portable"])
def test_aggregates_from_two_writers_add_up(make_plugin, quiet_log, monkeypatch, native):
    if not native:
        monkeypatch.setattr(metrics, "NATIVE_UPSERT_VENDORS", set())
    plugin = make_plugin(SOURCE, slug="m")
    minute = int(time.time() // 60)
    rounds = 15
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def writer(index: int) -> None:
        try:
            start.wait()
            for i in range(rounds):
                metrics.store_aggregates(
                    {
                        (plugin.pk, "m", minute): aggregate(
                            2, i % 2, 1.0 + index, minute * 60 + i + index, bucket=index
                        ),
                        (plugin.pk, "m", minute + 1): aggregate(1, 0, 0.1, minute * 60 + 60, bucket=0),
                    }
                )
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    first, second = CallMinute.objects.filter(plugin=plugin).order_by("minute")
    assert first.calls == 2 * 2 * rounds and first.errors == 2 * (rounds // 2)
    assert first.histogram()[:2] == [2 * rounds, 2 * rounds]
    assert first.duration_ms_sum == pytest.approx(2 * rounds * (1.0 + 2.0))
    assert first.duration_ms_max == pytest.approx(2.0)
    assert first.last_called.timestamp() == pytest.approx(minute * 60 + rounds - 1 + 1)
    assert second.calls == 2 * rounds
    total = CallTotal.objects.get(plugin=plugin)
    assert total.calls == 2 * 2 * rounds + 2 * rounds and total.errors == 2 * (rounds // 2)
    assert total.last_called == second.last_called


# -- health from real calls -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_health_counts_every_call(make_plugin, quiet_log, django_assert_num_queries):
    quiet_log.PLUGINS_APP = {**quiet_log.PLUGINS_APP, "CALL_LOG_SAMPLE_RATE": 0.0}
    plugin = make_plugin(SOURCE, slug="h", timeout_ms=100)
    other = make_plugin(SOURCE, slug="quiet")
    for i in range(8):
        hooks.call("h", "ok", i)
    with pytest.raises(PluginScriptError):
        hooks.call("h", "boom")
    with pytest.raises(PluginTimeout):
        hooks.call("h", "loop")
    assert calllog.flush()
    health = metrics.plugin_health(plugin.pk)
    for summary in (health.hour, health.day):
        assert (summary.calls, summary.errors, summary.timeouts, summary.memory_errors) == (10, 2, 1, 0)
        assert 0 < summary.p50_ms <= summary.p95_ms <= summary.duration_ms_max
        assert summary.duration_ms_max >= 90  # the timeout
    assert health.total_calls == 10 and health.last_called is not None
    assert sum(b.summary.calls for b in health.minutes) == 10 and len(health.minutes) == 60
    assert sum(b.summary.calls for b in health.hours) == 10 and len(health.hours) == 24
    assert health.minutes[-1].summary.calls + health.minutes[-2].summary.calls == 10
    with django_assert_num_queries(1):
        lines = metrics.sparklines([plugin.pk, other.pk])
    assert lines[plugin.pk].total_calls == 10 and lines[plugin.pk].total_errors == 2
    assert lines[plugin.pk].calls[-1] + lines[plugin.pk].calls[-2] == 10
    assert lines[other.pk].total_calls == 0


# -- Prometheus ------------------------------------------------------------------------------------------


@pytest.fixture
def endpoint(settings):
    settings.PLUGINS_APP = {**settings.PLUGINS_APP, "METRICS_ENDPOINT_ENABLED": True, "METRICS_TOKEN": TOKEN}
    return "/plugins/metrics"


def families(text: str) -> dict:
    return {family.name: family for family in text_string_to_metric_families(text)}


@pytest.mark.django_db(transaction=True)
def test_prometheus_exposition(make_plugin, quiet_log, endpoint, client):
    make_plugin(SOURCE, slug="prom")
    make_plugin(SOURCE, slug="idle", enabled=False)
    for i in range(3):
        hooks.call("prom", "ok", i)
    with pytest.raises(PluginScriptError):
        hooks.call("prom", "boom")
    assert calllog.flush()
    response = client.get(endpoint, HTTP_AUTHORIZATION=f"Bearer {TOKEN}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain; version=0.0.4")
    found = families(response.content.decode())
    values = {(s.name, s.labels.get("plugin"), s.labels.get("le")): s.value for f in found.values() for s in f.samples}
    assert values[("plugins_app_calls_total", "prom", None)] == 4
    assert values[("plugins_app_call_errors_total", "prom", None)] == 1
    assert values[("plugins_app_call_timeouts_total", "prom", None)] == 0
    assert values[("plugins_app_calls_total", "idle", None)] == 0
    assert values[("plugins_app_plugin_enabled", "idle", None)] == 0
    assert values[("plugins_app_plugin_enabled", "prom", None)] == 1
    assert values[("plugins_app_plugin_paused", "prom", None)] == 0
    assert found["plugins_app_call_duration_seconds"].type == "histogram"
    buckets = [
        (float(le), v)
        for (name, slug, le), v in values.items()
        if name == "plugins_app_call_duration_seconds_bucket" and slug == "prom"
    ]
    buckets.sort()
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)  # cumulative
    assert buckets[-1] == (float("inf"), 4)
    assert values[("plugins_app_call_duration_seconds_count", "prom", None)] == 4
    assert values[("plugins_app_call_duration_seconds_sum", "prom", None)] > 0
    assert values[("plugins_app_last_call_timestamp_seconds", "prom", None)] == pytest.approx(time.time(), abs=60)
    # OpenMetrics when the scraper asks for it.
    response = client.get(
        endpoint, HTTP_AUTHORIZATION=f"Bearer {TOKEN}", HTTP_ACCEPT="application/openmetrics-text; version=1.0.0"
    )
    assert response["Content-Type"].startswith("application/openmetrics-text")
    assert response.content.decode().rstrip().endswith("# EOF")


@pytest.mark.django_db
def test_prometheus_endpoint_is_off_by_default(client, admin_client):
    assert client.get("/plugins/metrics").status_code == 404
    assert admin_client.get("/plugins/metrics").status_code == 404


@pytest.mark.django_db
def test_prometheus_access_control(endpoint, client, admin_client, django_user_model):
    anonymous = client.get(endpoint)
    assert anonymous.status_code == 401 and anonymous["WWW-Authenticate"].startswith("Bearer")
    assert client.get(endpoint, HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get(endpoint, HTTP_AUTHORIZATION=f"Basic {TOKEN}").status_code == 401
    assert client.get(endpoint, HTTP_AUTHORIZATION=f"Bearer {TOKEN}").status_code == 200
    assert admin_client.get(endpoint).status_code == 200
    assert admin_client.post(endpoint).status_code == 405
    staff = django_user_model.objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(staff)
    assert client.get(endpoint).status_code == 403  # staff, but may not see plugins
    staff.user_permissions.add(Permission.objects.get(codename="view_plugin"))
    staff = User.objects.get(pk=staff.pk)  # fresh permission cache
    client.force_login(staff)
    assert client.get(endpoint).status_code == 200
    user = django_user_model.objects.create_user("user", password="pw")
    user.user_permissions.add(Permission.objects.get(codename="view_plugin"))
    client.force_login(user)
    assert client.get(endpoint).status_code == 403  # not staff


@pytest.mark.django_db
def test_without_a_token_only_staff_get_in(settings, client, admin_client):
    settings.PLUGINS_APP = {**settings.PLUGINS_APP, "METRICS_ENDPOINT_ENABLED": True}
    assert client.get("/plugins/metrics", HTTP_AUTHORIZATION="Bearer anything").status_code == 401
    assert admin_client.get("/plugins/metrics").status_code == 200


@pytest.mark.django_db
def test_a_plugin_slug_cannot_take_the_metrics_url(make_plugin, endpoint, client):
    make_plugin('const plugin = { onRequest(req) { return {body: "mine"}; } };', slug="metrics", http_enabled=True)
    assert client.get("/plugins/metrics/").content == b"mine"
    assert client.get(endpoint).status_code == 401


# -- settings checks -----------------------------------------------------------------------------------


def run_checks() -> list[str]:
    return [m.id for m in checks.run_checks(databases=[]) if m.id and m.id.startswith("plugins_app.")]


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"CALL_LOG_SAMPLE_RATE": 1.5}, "plugins_app.E040"),
        ({"CALL_LOG_SAMPLE_RATE": "0.1"}, "plugins_app.E040"),
        ({"CALL_LOG_QUEUE_SIZE": 0}, "plugins_app.E040"),
        ({"CALL_LOG_FLUSH_SECONDS": 0}, "plugins_app.E040"),
        ({"CALL_LOG_RETENTION_DAYS": -1}, "plugins_app.E040"),
        ({"CALL_LOG_REDACT_KEYS": "password"}, "plugins_app.E040"),
        ({"CALL_LOG_REDACT_ARGS": "yes"}, "plugins_app.E040"),
        ({"METRICS_TOKEN": "short"}, "plugins_app.E041"),
        ({"METRICS_ENDPOINT_ENABLED": True, "METRICS_ENABLED": False}, "plugins_app.W041"),
    ],
)
def test_settings_checks(settings, values, expected):
    settings.PLUGINS_APP = {**settings.PLUGINS_APP, **values}
    assert expected in run_checks()


def test_default_settings_pass_the_checks(settings):
    assert not [i for i in run_checks() if i.startswith(("plugins_app.E04", "plugins_app.W04"))]
