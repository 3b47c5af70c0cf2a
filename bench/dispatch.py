"""Dispatch cost against the number of installed plugins.

    .venv/bin/python bench/dispatch.py [--runs N] [--installed 1000] [--implementing 10]

Measures ``hooks.do_action("bench_hook", 1)`` with ``--implementing`` plugins that define
the hook, first with only those installed, then with ``--installed`` plugins in total
(the rest define other hooks). Prints both medians and their ratio: dispatch should not
grow with uninvolved plugins (the issue's bar is within 20 %). Uses a throwaway SQLite
database unless DATABASE_URL is set (then it removes its own plugins at the end).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HOOKED = "const plugin = { bench_hook(n) { return n + 1; } };"
OTHER = "const plugin = { other_hook_{i}(n) { return n; }, another(n) { return n; } };"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=300, help="timed do_action calls per setup (default 300)")
    parser.add_argument("--installed", type=int, default=1000)
    parser.add_argument("--implementing", type=int, default=10)
    parser.add_argument("--warm", type=int, help="override WARM_RUNTIMES_PER_WORKER")
    args = parser.parse_args()

    sys.path.insert(0, str(REPO))
    os.environ["DJANGO_SETTINGS_MODULE"] = "project.settings"
    tmpdir = None
    if "DATABASE_URL" not in os.environ:
        tmpdir = tempfile.mkdtemp(prefix="plugins-dispatch-")
        os.environ["DATABASE_URL"] = f"sqlite:///{tmpdir}/bench.sqlite3"
    import django

    django.setup()
    from django.core.management import call_command

    from plugins_app import hooks
    from plugins_app.models import Plugin, PluginHook
    from plugins_app.sandbox import pool

    call_command("migrate", verbosity=0, interactive=False)
    if args.warm is not None:
        from django.test import override_settings

        override_settings(PLUGINS_APP={"WARM_RUNTIMES_PER_WORKER": args.warm}).enable()
    try:
        for i in range(args.implementing):
            p = Plugin(slug=f"bench-hooked-{i}", name=f"hooked {i}", source=HOOKED, enabled=True)
            p.full_clean()
            p.save()

        def measure(label: str) -> float:
            for _ in range(30):
                hooks.do_action("bench_hook", 1)  # warm every implementing plugin
            samples = []
            for _ in range(args.runs):
                start = time.perf_counter_ns()
                results = hooks.do_action("bench_hook", 1)
                samples.append((time.perf_counter_ns() - start) / 1000)
                assert len(results) == args.implementing and all(r.ok for r in results)
            median = statistics.median(samples)
            print(f"{label:<44} median {median:9.0f} us   p90 {statistics.quantiles(samples, n=10)[-1]:9.0f} us")
            return median

        small = measure(f"{args.implementing} installed, {args.implementing} implement the hook")

        # The uninvolved plugins: validated once, then copied in bulk (validating 1,000
        # sources would only measure the sandbox's load time).
        template = Plugin(slug="bench-other-template", name="t", source=OTHER.replace("{i}", "0"), enabled=True)
        template.full_clean()
        template.save()
        extra = args.installed - args.implementing - 1
        others = Plugin.objects.bulk_create(
            Plugin(
                slug=f"bench-other-{i}",
                name=f"other {i}",
                source=template.source,
                enabled=True,
                hooks=template.hooks,
                version=1,
                fingerprint=template.fingerprint,
            )
            for i in range(extra)
        )
        PluginHook.objects.bulk_create(PluginHook(plugin=p, name=h) for p in others for h in template.hooks)
        assert Plugin.objects.count() == args.installed
        large = measure(f"{args.installed} installed, {args.implementing} implement the hook")
        print(f"ratio {args.installed}/{args.implementing} installed: {large / small:.2f}x (bar: within 1.20x)")
    finally:
        Plugin.objects.filter(slug__startswith="bench-").delete()
        pool.shutdown_pool()
        if tmpdir:
            shutil.rmtree(tmpdir, ignore_errors=True)
        sys.stdout.flush()
        os._exit(0)  # interpreter shutdown with jsrun loaded can abort; nothing left to clean


if __name__ == "__main__":
    main()
