"""Idle runtimes are closed: after a burst of calls the process tree goes quiet.

jsrun 0.3's idle runtime spins a core; parked ones must not. This guards the design, not speed.
The sleep below is the idle period being measured, not a wait for an event.
"""

from __future__ import annotations

import os
import time

import pytest

from plugins_app import hooks
from plugins_app.sandbox import pool

TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root: int) -> float:
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = open(f"/proc/{entry}/stat").read()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2 :].split()
        stats[int(entry)] = fields
        children.setdefault(int(fields[1]), []).append(int(entry))
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        if pid in stats:
            total += int(stats[pid][11]) + int(stats[pid][12])
        stack.extend(children.get(pid, []))
    return total / TICKS


@pytest.mark.django_db(transaction=True)
def test_twenty_plugins_then_idle_uses_almost_no_cpu(make_plugin):
    # Default settings: warm runtimes stay open (parked) for a minute, and must cost no CPU.
    for i in range(20):
        make_plugin(f"const plugin = {{ hi() {{ return {i}; }} }};", slug=f"idle-{i}")
    assert [hooks.call(f"idle-{i}", "hi") for i in range(20)] == list(range(20))
    assert pool.get_pool().worker_pids()
    time.sleep(5)  # the idleness under test
    before, started = tree_cpu_seconds(os.getpid()), time.monotonic()
    time.sleep(2)
    used = tree_cpu_seconds(os.getpid()) - before
    share = used / (time.monotonic() - started)
    assert share < 0.05, f"process tree used {share:.1%} of one core while idle"
