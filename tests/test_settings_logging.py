"""The demo settings' LOGGING: what operators see on stderr in production (DEBUG=0).

Run in a fresh process with the demo's settings, so Django configures logging from
``LOGGING`` exactly as gunicorn or a worker would (pytest replaces handlers and levels
in its own process).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

SCRIPT = r"""
import logging, sys, types
import django
from django.urls import path

def boom(request):
    raise RuntimeError("the database went away")

urls = types.ModuleType("fault_urls")
urls.urlpatterns = [path("boom/", boom)]
sys.modules["fault_urls"] = urls

django.setup()  # configures logging from settings.LOGGING
from django.test import Client, override_settings
from plugins_app.host_api import HostContext
from plugins_app.host_api.log import log

with override_settings(ROOT_URLCONF="fault_urls"):
    response = Client(raise_request_exception=False).get("/boom/")
print("status", response.status_code, flush=True)
# A plugin's console.warn(), through the real host function.
log(HostContext("greeter"), "warning", "quota nearly used\nforged line")
log(HostContext("greeter"), "info", "an info line of the plugin")
# A record about a sandbox process, and an INFO line of plugins_app.
logging.getLogger("plugins_app.sandbox").warning("sandbox stderr: oops", extra={"plugin": "greeter", "sandbox_pid": 4242})
logging.getLogger("plugins_app.outbox").info("delivered something")
logging.getLogger("plugins_app.outbox").error("delivery failed for good", extra={"plugin": "greeter"})
"""


def run(debug: str) -> subprocess.CompletedProcess:
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"PLUGINS_LOG_LEVEL", "PLUGINS_PLUGIN_LOG_LEVEL", "CELERY_BROKER_URL"}
    }
    env.update(
        DJANGO_SETTINGS_MODULE="project.settings",
        DEBUG=debug,
        SECRET_KEY="x" * 50,
        ALLOWED_HOSTS="testserver",
        DATABASE_URL="sqlite:///:memory:",
    )
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "status 500" in result.stdout
    return result


def lines(stderr: str, pattern: str) -> list[str]:
    return [line for line in stderr.splitlines() if re.search(pattern, line)]


def test_production_logging_shows_500s_and_plugin_warnings_on_stderr():
    err = run("0").stderr
    # The failed request: logger, level, path, and the traceback that follows it.
    [request] = lines(err, r"Internal Server Error: /boom/")
    assert re.match(
        r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d+ ERROR django\.request: Internal Server Error: /boom/$", request
    )
    assert "RuntimeError: the database went away" in err
    # The plugin's warning: its logger, level and slug; its text on one (escaped) line.
    [warning] = lines(err, r"quota nearly used")
    assert warning.endswith("WARNING plugins_app.plugins.greeter [plugin=greeter]: quota nearly used\\nforged line")
    assert not lines(err, r"^forged line")
    # Sandbox records carry the sandbox's pid; plugins_app's errors are shown too.
    assert lines(err, r"WARNING plugins_app\.sandbox \[plugin=greeter sandbox_pid=4242\]: sandbox stderr: oops$")
    assert lines(err, r"ERROR plugins_app\.outbox \[plugin=greeter\]: delivery failed for good$")
    # Warnings and errors only: no INFO lines in production.
    assert not lines(err, r"an info line of the plugin|delivered something| INFO ")


def test_development_logging_shows_each_line_once_with_plugins_app_info():
    err = run("1").stderr
    assert len(lines(err, r"ERROR django\.request: Internal Server Error: /boom/")) == 1  # not twice
    assert len(lines(err, r"quota nearly used")) == 1
    assert lines(err, r"INFO plugins_app\.outbox: delivered something$")
    assert not lines(err, r"an info line of the plugin")  # plugins' INFO lines stay on the page and CLI


@pytest.mark.parametrize("debug", ["0", "1"])
def test_records_without_extras_format(debug):
    # A record with no plugin and no sandbox gets an empty context, not a KeyError.
    err = run(debug).stderr
    assert "KeyError" not in err and "--- Logging error ---" not in err
