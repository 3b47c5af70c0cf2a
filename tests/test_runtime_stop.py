"""A runtime that stops (evicted, replaced by a new version, a save's inspection) runs
nothing more of its plugin: jsrun delivers an import() rejection only once a runtime's
park loop has returned to its event loop, so a stopped runtime is terminated in place
instead (worker.py, Worker.halt_request), and its thread ends at once."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from plugins_app import hooks
from plugins_app.models import Plugin

# A hook that leaves a rejection behind whose handler never returns. The import() is
# built at run time: a literal one is refused when the plugin is saved (imports.py).
LEFT_BEHIND = """
const plugin = {
  go() { eval('import("x")').catch(() => { for (;;) {} }); return "went"; },
};
"""
TOP_LEVEL = 'eval(\'import("x")\').catch(() => { for (;;) {} });\nconst plugin = { go() { return "went"; } };\n'
VICTIM = "const plugin = { ping(n) { return n + 1; } };"


@pytest.fixture
def one_warm_runtime(settings):
    # One sandbox holding one warm runtime: every load evicts the previous plugin's. The
    # victim's short limit covers its load, which waits for the eviction: a stopped runtime
    # whose left-behind handler ran would hold that up past it (and spin a core for good).
    settings.PLUGINS_APP = {"POOL_SIZE": 1, "WARM_RUNTIMES_PER_WORKER": 1}


def test_an_evicted_runtime_runs_nothing_left_behind(make_plugin, one_warm_runtime):
    make_plugin(LEFT_BEHIND, slug="leaver")
    make_plugin(VICTIM, slug="victim", timeout_ms=300)
    for n in range(3):
        assert hooks.call("leaver", "go") == "went"
        assert hooks.call("victim", "ping", n) == n + 1  # loads, evicting leaver's runtime


def test_an_old_version_runs_nothing_left_behind(make_plugin, one_warm_runtime):
    plugin = make_plugin(LEFT_BEHIND, slug="leaver", timeout_ms=300)
    for n in range(3):
        assert hooks.call("leaver", "go") == "went"
        plugin.config = {"n": n}  # a new version: its load stops the old one's runtime
        plugin.full_clean()
        plugin.save()
    assert hooks.call("leaver", "go") == "went"
    make_plugin(VICTIM, slug="victim", timeout_ms=300)
    assert hooks.call("victim", "ping", 1) == 2


def test_what_top_level_code_leaves_behind_runs_within_the_load(make_plugin, one_warm_runtime):
    """The event loop runs while a source loads: a handler left by top-level code runs
    then, under the load's time limit, and the save is refused."""
    make_plugin(VICTIM, slug="victim", timeout_ms=300)
    for n in range(2):
        with pytest.raises(ValidationError, match="took longer than the plugin's time limit"):
            make_plugin(TOP_LEVEL, slug=f"leaver{n}", timeout_ms=200)
        assert hooks.call("victim", "ping", n) == n + 1
    assert list(Plugin.objects.values_list("slug", flat=True)) == ["victim"]
