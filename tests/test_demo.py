"""The demo site calls the greeter in its request handler, also under a threaded server."""

from __future__ import annotations

import hashlib
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from django.core.management import call_command
from django.urls import reverse

from plugins_app.models import Plugin


@pytest.mark.django_db
def test_home_page_greets_through_the_plugin(client, greeter):
    response = client.get(reverse("demo:home"), {"name": "Ada <b>"})
    assert response.status_code == 200
    assert "Hello, Ada &lt;b&gt;! App version: 1.0.0" in response.content.decode()
    assert "Greeting Ada &lt;b&gt;" in response.content.decode()


@pytest.mark.django_db
def test_home_page_degrades_when_the_plugin_fails(client, greeter):
    greeter.enabled = False
    greeter.save()
    response = client.get(reverse("demo:home"))
    assert response.status_code == 200
    assert "PluginDisabled" in response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_threaded_wsgi_server_serves_concurrent_requests(live_server):
    call_command("seed_demo", stdout=open("/dev/null", "w"))
    assert Plugin.objects.get(slug="greeter").enabled

    def fetch(i: int) -> str:
        url = f"{live_server.url}/?name=user{i}"
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.read().decode()

    with ThreadPoolExecutor(max_workers=8) as executor:
        pages = list(executor.map(fetch, range(40)))
    for i, page in enumerate(pages):
        assert f"Hello, user{i}! App version: 1.0.0" in page


@pytest.mark.django_db
def test_seed_demo_is_idempotent():
    call_command("seed_demo", stdout=open("/dev/null", "w"))
    call_command("seed_demo", stdout=open("/dev/null", "w"))
    assert Plugin.objects.filter(slug="greeter", enabled=True).count() == 1


@pytest.mark.django_db
def test_home_page_shows_note_stats_computed_through_db_and_storage(client):
    call_command("seed_demo", stdout=open("/dev/null", "w"))
    first = client.get(reverse("demo:home")).content.decode()
    assert "Top notes" in first and "Plugins run in V8 by admin (3)" in first
    assert "shown 1 times" in first
    assert "shown 2 times" in client.get(reverse("demo:home")).content.decode()


@pytest.mark.django_db
def test_demo_uses_filter_signal_background_template_hook_and_endpoint(client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        call_command("seed_demo", stdout=open("/dev/null", "w"))
    page = client.get(reverse("demo:home")).content.decode()
    # Filter in the view; after-commit action (3 seeded notes saved); background action
    # (inline without Celery); template hook whose <script> is removed by the sanitizer.
    assert "Plugins demo (3 note saves seen by plugins)" in page
    assert 'data-plugin="activity"' in page and "<strong>Activity</strong>: 3 saves" in page
    assert "last indexed <em>" in page
    assert "<script>" not in page.split('id="sidebar"')[1].split("</aside>")[0]
    # An ES module plugin with web APIs: URL, URLSearchParams, crypto.subtle, a timer.
    digest = hashlib.sha256(b"http://127.0.0.1:8000/?ref=sidebar&lang=en").hexdigest()[:8]
    assert 'data-plugin="share-links"' in page and '<a href="http://127.0.0.1:8000/?ref=sidebar&amp;lang=en"' in page
    assert f"<small>#{digest}</small>" in page
    stats = client.get("/plugins/activity/stats")
    assert stats.status_code == 200 and stats.json()["saves"] == 3 and stats.json()["path"] == "/stats"
    assert client.get("/plugins/greeter/").status_code == 404  # no HTTP capability
