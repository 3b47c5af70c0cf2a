"""What the sandbox's OS layers cost (plugins_app/sandbox/oslayers.py).

Run from the repository root:

    .venv/bin/python bench/oslayers.py [--starts 30] [--syscalls 200000]

For each configuration (no layers; each layer alone; all of them), in fresh ``python -I``
processes started like sandbox workers (scrubbed environment, cwd /):

- ``start``: from ``Popen`` to the child's first line on stdout, the child having imported
  what a worker imports (jsrun, asyncio, the sandbox modules) and applied the layers;
- ``apply``: the time ``oslayers.apply()`` itself took inside the child;
- ``syscall``: ns per cheap system call (``os.getppid``) afterwards: the seccomp filter
  runs on every system call;
- ``pipe rt``: us per 64-byte write + read on a pipe (what a worker does per frame);
- ``js call``: us per ``Runtime.eval("f(1)")`` with ``f`` a bound Python function.

Medians; the machine is shared and noisy. No assertions.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

SANDBOX_DIR = Path(__file__).resolve().parent.parent / "plugins_app" / "sandbox"
CONFIGS = {
    "none": {"seccomp": False, "landlock": False, "user": None, "skip": True},
    "no_new_privs only": {"seccomp": False, "landlock": False, "user": None},
    "user only": {"seccomp": False, "landlock": False, "user": "nobody"},
    "landlock only": {"seccomp": False, "landlock": True, "user": None},
    "seccomp only": {"seccomp": True, "landlock": False, "user": None},
    "all": {"seccomp": True, "landlock": True, "user": "nobody"},
}

CHILD = r"""
import sys, json, os, time, asyncio, queue, select, resource
sys.path.insert(0, {sandbox_dir!r})
import jsrun, protocol, oslayers
options = json.loads(sys.argv[1])
t0 = time.perf_counter()
layers = {{}} if options.pop("skip", False) else oslayers.apply(options)
apply_s = time.perf_counter() - t0
print("ready", flush=True)
result = {{"apply_ms": apply_s * 1000, "layers": {{k: v["active"] for k, v in layers.items()}}}}
if int(sys.argv[2]):
    n = int(sys.argv[3])
    t0 = time.perf_counter_ns()
    for _ in range(n):
        os.getppid()
    result["syscall_ns"] = (time.perf_counter_ns() - t0) / n
    r, w = os.pipe()
    data = b"x" * 64
    m = n // 10
    t0 = time.perf_counter_ns()
    for _ in range(m):
        os.write(w, data)
        os.read(r, 65536)
    result["pipe_us"] = (time.perf_counter_ns() - t0) / m / 1000
    rt = jsrun.Runtime()
    rt.bind_function("f", lambda x: x + 1)
    for _ in range(200):
        rt.eval("f(1)")
    k = 3000
    t0 = time.perf_counter_ns()
    for _ in range(k):
        rt.eval("f(1)")
    result["js_us"] = (time.perf_counter_ns() - t0) / k / 1000
    rt.close()
print(json.dumps(result), flush=True)
os._exit(0)
"""


def run(options: dict, measure: bool, syscalls: int) -> tuple[float, dict]:
    code = CHILD.format(sandbox_dir=str(SANDBOX_DIR))
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-I", "-c", code, json.dumps(options), str(int(measure)), str(syscalls)],
        stdout=subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        cwd="/",
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    start = time.perf_counter() - t0
    assert first.strip() == b"ready", first
    result = json.loads(proc.stdout.readline())
    proc.wait()
    return start, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--starts", type=int, default=30, help="process starts per configuration (default 30)")
    parser.add_argument("--syscalls", type=int, default=200_000, help="getppid calls timed (default 200000)")
    args = parser.parse_args()
    print(
        f"{'configuration':<18} {'start ms':>9} {'apply ms':>9} {'syscall ns':>11} {'pipe rt us':>11} {'js call us':>11}  active"
    )
    for name, options in CONFIGS.items():
        starts, applies = [], []
        for _ in range(args.starts):
            start, result = run(options, False, 0)
            starts.append(start * 1000)
            applies.append(result["apply_ms"])
        measured = [run(options, True, args.syscalls)[1] for _ in range(3)]
        active = ",".join(k for k, v in measured[0]["layers"].items() if v) or "-"
        print(
            f"{name:<18} {statistics.median(starts):>9.1f} {statistics.median(applies):>9.2f} "
            f"{statistics.median(m['syscall_ns'] for m in measured):>11.0f} "
            f"{statistics.median(m['pipe_us'] for m in measured):>11.2f} "
            f"{statistics.median(m['js_us'] for m in measured):>11.1f}  {active}",
            flush=True,
        )


if __name__ == "__main__":
    main()
