"""Process-tree measurements for the benchmarks: CPU ticks and RSS of a process and all
its descendants (found through the ppid field of /proc/*/stat), and the idle-CPU window.

Shared by bench/run.py and bench/web.py (with :func:`code_version`, which both print);
standard library only.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MIB = 1024 * 1024


def _read_stat(pid: int) -> tuple[int, int] | None:
    """(ppid, utime+stime in ticks) of ``pid``, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            data = fh.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2 :].split()
    # fields[0] is field 3 (state): ppid is field 4, utime 14, stime 15.
    return int(fields[1]), int(fields[11]) + int(fields[12])


def tree_cpu_ticks(root: int) -> dict[int, int]:
    """CPU ticks of ``root`` and all its descendants, found through /proc/*/stat ppid."""
    stats: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _read_stat(int(entry))
            if st is not None:
                stats[int(entry)] = st
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    out: dict[int, int] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        if pid in stats and pid not in out:
            out[pid] = stats[pid][1]
            todo.extend(children.get(pid, ()))
    return out


def vm_rss(pid: int) -> int:
    """Resident set size of ``pid`` in bytes (VmRSS of /proc/<pid>/status), 0 if gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def tree_rss(root: int) -> dict[str, Any]:
    pids = sorted(tree_cpu_ticks(root))
    per_pid = {pid: vm_rss(pid) for pid in pids}
    return {
        "total_mib": sum(per_pid.values()) / MIB,
        "self_mib": per_pid.get(root, 0) / MIB,
        "children_mib": sum(v for p, v in per_pid.items() if p != root) / MIB,
        "children": len(pids) - 1,
        "per_pid_mib": {str(p): round(v / MIB, 1) for p, v in per_pid.items()},
    }


def pids_cpu_ticks(pids: list[int]) -> dict[int, int]:
    """CPU ticks of the given pids that still exist (a few file reads: cheap)."""
    out = {}
    for pid in pids:
        st = _read_stat(pid)
        if st is not None:
            out[pid] = st[1]
    return out


def measure_idle(seconds: float, sample_every: float = 0.5) -> dict[str, Any]:
    """Percent of one core used by this process tree while nothing is called.

    The whole of /proc is scanned for descendants at the start and at the end only; the
    samples in between read the known pids' stat files. The sampler's own CPU time (this
    thread's, measured with ``time.thread_time``) is subtracted from this process's share.
    """
    me = os.getpid()
    sampler = time.thread_time()
    first = tree_cpu_ticks(me)
    known = list(first)
    last = dict(first)
    sampler_s = time.thread_time() - sampler
    start = time.monotonic()
    timeline = []
    prev_total, prev_t = 0, start
    while True:
        now = time.monotonic()
        if now - start >= seconds:
            break
        time.sleep(min(sample_every, seconds - (now - start)))
        sampler = time.thread_time()
        last.update(pids_cpu_ticks(known))  # processes that exit keep their last seen value
        total = sum(last[p] - first.get(p, 0) for p in last)
        sampler_s += time.thread_time() - sampler
        t = time.monotonic()
        timeline.append(
            {"t_s": round(t - start, 2), "pct_core": 100.0 * (total - prev_total) / CLOCK_TICKS / (t - prev_t)}
        )
        prev_total, prev_t = total, t
    sampler = time.thread_time()
    last.update(tree_cpu_ticks(me))  # and any process started during the window
    sampler_s += time.thread_time() - sampler
    elapsed = time.monotonic() - start
    per_pid = {p: last[p] - first.get(p, 0) for p in last}
    raw_total_s = sum(per_pid.values()) / CLOCK_TICKS
    self_s = max(0.0, per_pid.get(me, 0) / CLOCK_TICKS - sampler_s)
    total_s = raw_total_s - per_pid.get(me, 0) / CLOCK_TICKS + self_s
    return {
        "seconds": elapsed,
        "pct_core": 100.0 * total_s / elapsed,
        "self_pct_core": 100.0 * self_s / elapsed,
        "sampler_pct_core": 100.0 * sampler_s / elapsed,
        "uncorrected_pct_core": 100.0 * raw_total_s / elapsed,
        "children": len(per_pid) - (1 if me in per_pid else 0),
        "per_child_pct_core": {
            str(p): round(100.0 * v / CLOCK_TICKS / elapsed, 2) for p, v in per_pid.items() if p != me
        },
        "timeline": timeline,
    }


def code_version(repo: Path) -> str:
    """The commit measured, and whether the work tree differs from it (read-only git calls)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.splitlines()
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    if not head:
        return "unknown (not a git checkout)"
    return head + (f" + uncommitted changes in {len(changed)} file(s)" if changed else "")
