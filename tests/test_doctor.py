"""``manage.py plugins doctor`` and plugins_app.doctor.report()."""

from __future__ import annotations

import io
import json
from importlib import metadata
from typing import Any

import django
import pytest
from django.core.management import call_command

from plugins_app.sandbox import oslayers
from plugins_app.sandbox import pool as pool_module

ACTIVE = {
    "user": {"active": True, "switched": True, "uid": 65534, "gid": 65534, "name": "nobody"},
    "no_new_privs": {"active": True},
    "landlock": {"active": True, "abi": 7, "files": "read-only, no execution"},
    "seccomp": {"active": True, "refused": 106},
}
PROBE_NOTHING = {
    "platform": "test",
    "no_new_privs": {"available": True},
    "seccomp": {"available": False, "reason": "the Python package pyseccomp is not installed"},
    "landlock": {"available": False, "reason": "Landlock is disabled at boot"},
    "user": {"root": False, "available": True, "uid": 1000, "note": "not root: sandboxes keep this user"},
}


class FakePool:
    """The supervisor's API as plugins doctor uses it; reports ``layers`` once a worker started."""

    def __init__(self, layers: dict[str, Any]) -> None:
        self.layers = layers
        self.started = 0

    def layers_report(self) -> dict[str, Any]:
        return dict(self.layers) if self.started else {}

    def checkout(self, prefer_key: str | None, timeout: float) -> str:
        self.started += 1
        return "worker"

    def checkin(self, worker: str, healthy: bool) -> None:
        assert worker == "worker" and healthy

    def state(self) -> dict[str, Any]:
        return {"size": 2, "started": self.started, "idle": [4242] * self.started, "busy": []}


class OldPool:
    """A pool from before layers_report() existed."""

    size = 2

    def worker_pids(self) -> list[int]:
        return []


def doctor(*args: str) -> str:
    out = io.StringIO()
    call_command("plugins", "doctor", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def fake_pool(monkeypatch) -> FakePool:
    pool = FakePool(ACTIVE)
    monkeypatch.setattr(pool_module, "get_pool", lambda: pool)
    return pool


def test_doctor_starts_a_sandbox_and_prints_its_layers_versions_and_pool(fake_pool):
    out = doctor()
    assert fake_pool.started == 1  # one call-free worker, to get a real report
    assert (
        f"jsrun {metadata.version('jsrun')}" in out and f"Django {django.get_version()}" in out and "Python 3." in out
    )
    assert "OS layers (as reported by a sandbox process):" in out
    assert "user          active      uid 65534 (nobody), gid 65534" in out
    assert "landlock      active      ABI 7" in out
    assert "seccomp       active      106 system calls restricted" in out
    assert (
        "Pool: POOL_SIZE 2, started 1, idle 1 (pids 4242), busy 0; WARM_RUNTIMES_PER_WORKER 32" in out
    )  # as many as fit
    assert "WORKER_DATA_LIMIT_MB 4096" in out
    assert "WARNING" not in out
    doctor("--strict")  # every layer active: exit 0


def test_doctor_does_not_start_another_worker_when_one_reported(fake_pool):
    fake_pool.started = 1
    doctor()
    assert fake_pool.started == 1


def test_inactive_layer_gets_a_warning_line_and_strict_exits_1(fake_pool):
    fake_pool.layers = dict(ACTIVE, seccomp={"active": False, "reason": "loading the seccomp filter failed: EINVAL"})
    out = doctor()
    assert "seccomp       INACTIVE    loading the seccomp filter failed: EINVAL" in out
    assert out.strip().endswith("WARNING: seccomp not active: loading the seccomp filter failed: EINVAL")
    with pytest.raises(SystemExit) as exc:
        doctor("--strict")
    assert exc.value.code == 1


def test_layer_disabled_in_settings_is_listed_but_not_a_strict_failure(fake_pool, settings):
    settings.PLUGINS_APP = {"SANDBOX_LANDLOCK": False}
    fake_pool.layers = dict(ACTIVE, landlock={"active": False, "reason": "disabled (SANDBOX_LANDLOCK is False)"})
    out = doctor("--strict")
    assert "WARNING: landlock not active: disabled (SANDBOX_LANDLOCK is False)" in out


def test_json_output(fake_pool):
    data = json.loads(doctor("--json"))
    assert data["layers_source"] == "sandbox"
    assert data["layers"] == ACTIVE
    assert data["versions"]["jsrun"] == metadata.version("jsrun")
    assert data["settings"] == {"SANDBOX_SECCOMP": True, "SANDBOX_LANDLOCK": True, "SANDBOX_USER": "nobody"}
    assert data["pool"]["POOL_SIZE"] == 2 and data["pool"]["idle"] == [4242]
    assert data["inactive"] == {} and data["missing"] == [] and data["warnings"] == []


def test_worker_reporting_no_layers_is_all_inactive(fake_pool):
    fake_pool.layers = {}
    out = doctor()
    assert "WARNING: seccomp not active: not reported by the sandbox process" in out
    with pytest.raises(SystemExit):
        doctor("--strict")


def test_without_the_pool_api_the_layers_are_predicted_by_probe(monkeypatch):
    monkeypatch.setattr(pool_module, "get_pool", lambda: OldPool())
    monkeypatch.setattr(oslayers, "probe", lambda user: PROBE_NOTHING)
    out = doctor()
    assert "predicted by probing this platform: this version of the sandbox pool does not report its layers" in out
    assert "seccomp       UNAVAILABLE the Python package pyseccomp is not installed" in out
    assert "user          available   uid 1000 (not root: sandboxes keep this user)" in out
    assert "WARNING: landlock not active: Landlock is disabled at boot" in out
    data = json.loads(doctor("--json"))
    assert data["layers_source"] == "probe" and data["missing"] == ["landlock", "seccomp"]
    with pytest.raises(SystemExit):
        doctor("--strict")


@pytest.fixture
def real_pool():
    yield
    pool_module.shutdown_pool()


def test_doctor_with_the_real_pool(real_pool):
    data = json.loads(doctor("--json"))
    assert data["layers_source"] in ("sandbox", "probe")
    assert set(data["layers"]) == {"user", "no_new_privs", "landlock", "seccomp"}
    assert data["pool"]["POOL_SIZE"] >= 1
    if data["layers_source"] == "sandbox" and data["layers"]:
        assert data["pool"]["idle"], "the worker started for the report stays in the pool"
