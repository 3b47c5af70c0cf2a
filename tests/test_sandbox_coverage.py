"""Coverage of the sandbox workers (pool.coverage_option, worker.start_coverage).

A worker measures itself only when its supervisor runs under coverage.py: it creates its
data file before the OS layers apply and writes it when it exits. These tests give a real
sandbox that option (whether or not the suite itself is measured) and check that it still
applies every OS layer, that the only file it can write is that data file, and that the
data it leaves covers code run on jsrun's runtime threads and after the OS layers.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path
from typing import Any

import pytest

from plugins_app import hooks
from plugins_app.sandbox import oslayers, pool

coverage = pytest.importorskip("coverage")

SANDBOX_DIR = Path(pool.__file__).resolve().parent
PROBE = oslayers.probe("nobody")


def _writable_files(pid: int) -> set[str]:
    """Regular files the process holds open for writing (from /proc/PID/fd and fdinfo)."""
    found = set()
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            if not stat.S_ISREG(os.stat(f"/proc/{pid}/fd/{name}").st_mode):
                continue
            target = os.readlink(f"/proc/{pid}/fd/{name}")
            with open(f"/proc/{pid}/fdinfo/{name}") as fh:
                flags = int(next(line for line in fh if line.startswith("flags:")).split()[1], 8)
        except (OSError, StopIteration):
            continue
        if flags & os.O_ACCMODE != os.O_RDONLY:
            found.add(target)
    return found


def _status(pid: int) -> dict[str, str]:
    with open(f"/proc/{pid}/status") as fh:
        return dict(line.split(":\t", 1) for line in fh.read().splitlines() if ":\t" in line)


def _lines_of(data: Any, name: str, function: str) -> tuple[set[int], set[int]]:
    """(the body lines of ``function`` in sandbox module ``name``, those executed)."""
    path = str(SANDBOX_DIR / name)
    source = Path(path).read_text().splitlines()
    start = next(i for i, line in enumerate(source, 1) if line.lstrip().startswith(f"def {function}("))
    indent = len(source[start - 1]) - len(source[start - 1].lstrip())
    body = set()
    for number in range(start + 1, len(source) + 1):
        line = source[number - 1]
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            break
        body.add(number)
    return body, body & set(data.lines(path) or ())


def test_coverage_option_only_under_coverage(monkeypatch):
    monkeypatch.delitem(sys.modules, "coverage", raising=False)
    assert pool.coverage_option() is None  # production: coverage.py is not even imported
    assert "coverage" not in pool._options()


@pytest.mark.django_db(transaction=True)
def test_a_measured_sandbox_is_fully_hardened_and_saves_its_data(make_plugin, settings, tmp_path, monkeypatch):
    data_file = tmp_path / ".coverage.sandbox.test"
    option = {"data_file": str(data_file), "branch": True, "source": str(SANDBOX_DIR)}
    monkeypatch.setattr(pool, "coverage_option", lambda: option)
    settings.PLUGINS_APP = {"POOL_SIZE": 1}
    make_plugin(
        "const plugin = { async a(n) { log('info', 'x'); await null; return [n, new URL('https://e.x/p').pathname]; } };",
        slug="a",
    )
    assert hooks.call("a", "a", 1) == [1, "/p"]
    (pid,) = pool.get_pool().worker_pids()

    # Every layer this platform has is active, exactly as without coverage.
    report = pool.get_pool().layers_report()
    for layer in ("seccomp", "landlock"):
        assert report[layer]["active"] == PROBE[layer]["available"], report
    assert report["no_new_privs"]["active"], report
    status = _status(pid)
    assert status["NoNewPrivs"].strip() == "1"
    if PROBE["seccomp"]["available"]:
        assert status["Seccomp"].strip() == "2"
    if os.geteuid() == 0:
        assert report["user"]["active"], report
        assert status["Uid"].split()[:2] == ["65534", "65534"]
    # The one file it can write is its data file, opened before the layers applied.
    assert _writable_files(pid) == {str(data_file)}
    assert data_file.stat().st_size == 0  # nothing written until it exits

    pool.shutdown_pool()  # asks the worker to exit: it saves first
    assert not os.path.exists(f"/proc/{pid}/status") or _status(pid)["State"].startswith("Z")
    data = coverage.CoverageData(basename=str(data_file))
    data.read()
    assert data.has_arcs()
    # Code run after the OS layers (the main thread's serving loop), and code run on the
    # runtime's own thread (jsrun's, not threading's: Worker.pin installs the tracer).
    for name, function in [("oslayers.py", "apply"), ("worker.py", "main_receive"), ("worker.py", "exchange")]:
        body, executed = _lines_of(data, name, function)
        assert executed, f"{name}: nothing of {function}() measured"
