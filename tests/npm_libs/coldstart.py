"""What a bundled library costs at install and at a cold start (docs/bundling.md).

Installs a tiny plugin, the jose bundle (script and module, plain and minified) and the
qs bundle (the largest tried) in a throwaway SQLite database. Then, ROUNDS times, for each
plugin in turn (interleaved, so that load on the machine falls on all alike): saves a new
version (a new version always gets a new runtime; the save includes the validation load),
times its first call (cold: a runtime restored from the snapshot, the bundle compiled and
its top level run, then a trivial hook) and a second call (warm). Prints the median and
the minimum in milliseconds, measured from the calling thread (hooks.run).

    .venv/bin/python tests/npm_libs/coldstart.py [ROUNDS]

Not a test: the numbers depend on the machine and its load.
"""
from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

TINY = "const plugin = { hello(name) { return `Hello, ${name}!`; } };"
# A hook that does almost nothing, so that the first call measures loading the bundle.
JOSE_CALL = ("header", "eyJhbGciOiJIUzI1NiJ9.e30.x")


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    from tests.npm_libs import build

    plain, minified = build.build(), build.build(minify=True)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["DATABASE_URL"] = f"sqlite:///{tmp}/coldstart.sqlite3"
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
        import django

        django.setup()
        from django.core.exceptions import ValidationError
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
        from plugins_app import hooks
        from plugins_app.models import Plugin

        cases = [("tiny script", TINY, ("hello", "World"))]
        for label, folder in (("", plain), (" minified", minified)):
            for style in build.STYLES:
                source = (folder / style / "jose.js").read_text("utf-8")
                cases.append((f"jose {style}{label}", source, JOSE_CALL))
        # The largest bundle tried.
        for style in build.STYLES:
            cases.append((f"qs {style}", (plain / style / "qs.js").read_text("utf-8"), ("parse", "a=1")))

        # One call first, so that the sandbox processes themselves are started.
        warmup = Plugin(slug="warmup", name="warmup", source=TINY, enabled=True)
        warmup.full_clean()
        warmup.save()
        hooks.call("warmup", "hello", "x")

        # Rounds interleave the plugins, so that load on the machine falls on all of them alike.
        plugins, timings = {}, {}
        for n, (label, source, _) in enumerate(cases):
            plugin = Plugin(slug=f"case-{n}", name=label, source=source, enabled=True, config={"secret": "s" * 32})
            try:
                plugin.full_clean()
            except ValidationError as exc:
                print(f"{label:24} not installed: {exc.messages[0][:100]}")
                continue
            plugins[label] = plugin
            timings[label] = ([], [], [])
        for r in range(rounds):
            for label, source, (hook, *args) in cases:
                if label not in plugins:
                    continue
                plugin, (installs, firsts, seconds) = plugins[label], timings[label]
                plugin.config = {"secret": "s" * 32, "round": r}
                t0 = time.perf_counter()
                plugin.full_clean()
                plugin.save()
                t1 = time.perf_counter()
                hooks.run(plugin.slug, hook, *args)
                t2 = time.perf_counter()
                hooks.run(plugin.slug, hook, *args)
                t3 = time.perf_counter()
                installs.append((t1 - t0) * 1000)
                firsts.append((t2 - t1) * 1000)
                seconds.append((t3 - t2) * 1000)

        print(f"{'plugin':24} {'bytes':>8} {'save':>13} {'1st call':>13} {'2nd call':>13}")
        print(f"{'':24} {'':>8} {'median (min)':>13} {'median (min)':>13} {'median (min)':>13}   ms, {rounds} rounds")
        for label, source, _ in cases:
            if label not in timings:
                continue
            cells = " ".join(f"{statistics.median(t):6.1f} ({min(t):4.1f})" for t in timings[label])
            print(f"{label:24} {len(source.encode('utf-8')):8,d} {cells}")
        from plugins_app import calllog

        calllog.clear()
        calllog.shutdown()


if __name__ == "__main__":
    main()
