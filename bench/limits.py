"""How long each kind of bad plugin takes to be stopped, and with which error.

    .venv/bin/python bench/limits.py [--repeat 3]

Installs one hostile plugin (time limit 1000 ms, memory limit 64 MiB) and calls each
hook a few times: runaway loop, never-settling promise, heap bomb, ArrayBuffer fill,
4 GiB ArrayBuffer, throw, infinite recursion; after each, a normal call must work. Prints
the median time to the error and the calling process's peak RSS. Uses a throwaway SQLite
database unless DATABASE_URL is set.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HOSTILE = """
const plugin = {
  ok() { return "ok"; },
  loop() { while (true) {} },
  pending() { return new Promise(() => {}); },
  heapBomb() { const a = []; while (true) a.push({ s: Math.random() + "xxxxxxxxxxxxxxxxxxxx" }); },
  bufferFill() { const a = []; while (true) { const b = new ArrayBuffer(64 * 1024 * 1024); new Uint8Array(b).fill(1); a.push(b); } },
  bigBuffer() { return new ArrayBuffer(4 * 1024 * 1024 * 1024).byteLength; },
  thrower() { throw new TypeError("bad input"); },
  recurse() { return this.recurse() + 1; },
};
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    sys.path.insert(0, str(REPO))
    os.environ["DJANGO_SETTINGS_MODULE"] = "project.settings"
    tmpdir = None
    if "DATABASE_URL" not in os.environ:
        tmpdir = tempfile.mkdtemp(prefix="plugins-limits-")
        os.environ["DATABASE_URL"] = f"sqlite:///{tmpdir}/bench.sqlite3"
    import django

    django.setup()
    from django.core.management import call_command

    from plugins_app import hooks
    from plugins_app.exceptions import PluginError
    from plugins_app.models import Plugin
    from plugins_app.sandbox import pool

    call_command("migrate", verbosity=0, interactive=False)
    try:
        plugin = Plugin(
            slug="bench-hostile", name="hostile", source=HOSTILE, enabled=True, timeout_ms=1000, memory_limit_mb=64
        )
        plugin.full_clean()
        plugin.save()
        print(f"{'hook':<12} {'error':<20} {'median ms':>10}   next call")
        for hook in ("loop", "pending", "heapBomb", "bufferFill", "bigBuffer", "thrower", "recurse"):
            times, names, recovered = [], set(), True
            for _ in range(args.repeat):
                start = time.perf_counter()
                try:
                    hooks.call("bench-hostile", hook)
                    names.add("(no error)")
                except PluginError as exc:
                    names.add(type(exc).__name__)
                times.append((time.perf_counter() - start) * 1000)
                recovered &= hooks.call("bench-hostile", "ok") == "ok"
            print(
                f"{hook:<12} {'/'.join(sorted(names)):<20} {statistics.median(times):>10.0f}   {'ok' if recovered else 'FAILED'}"
            )
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"calling process peak RSS: {peak:.0f} MiB (the bombs went off in sandbox processes)")
    finally:
        Plugin.objects.filter(slug="bench-hostile").delete()
        pool.shutdown_pool()
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)
        sys.stdout.flush()
        os._exit(0)


if __name__ == "__main__":
    main()
