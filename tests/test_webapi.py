"""The sandbox's web APIs against Node.js 20 (issue 11, item 1), with real V8.

tests/webapi/cases.js holds the cases; tests/webapi/make_fixtures.mjs ran them under
Node.js 20 and recorded tests/webapi/fixtures.json. Here the same file runs as a plugin
and every case must give what Node gave. Randomness is checked by its properties.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from plugins_app import hooks

HERE = Path(__file__).resolve().parent / "webapi"
CASES = (HERE / "cases.js").read_text()
FIXTURES = json.loads((HERE / "fixtures.json").read_text())

RUNNER = (
    CASES
    + """
const plugin = {
  names() { return WEBAPI_CASES.map(([name]) => name); },
  async run(names) {
    const results = {};
    for (const [name, fn] of WEBAPI_CASES) {
      if (!names.includes(name)) continue;
      try {
        results[name] = { ok: JSON.parse(JSON.stringify((await fn()) ?? null)) };
      } catch (e) {
        results[name] = { threw: String(e && e.name) };
      }
    }
    return results;
  },
};
"""
)


@pytest.fixture
def cases_plugin(make_plugin):
    return make_plugin(RUNNER, slug="webapi", timeout_ms=10_000)


def test_fixtures_come_from_node_20_and_cover_every_case(cases_plugin):
    assert FIXTURES["node"].startswith("v20.")
    assert hooks.call("webapi", "names") == list(FIXTURES["results"])


GROUPS = sorted({name.split(".")[0] for name in FIXTURES["results"]})


@pytest.mark.parametrize("group", GROUPS)
def test_cases_give_what_node_20_gives(cases_plugin, group):
    names = [name for name in FIXTURES["results"] if name.split(".")[0] == group]
    got = hooks.call("webapi", "run", names)
    mismatches = [
        diff(name, got.get(name), FIXTURES["results"][name])
        for name in names
        if got.get(name) != FIXTURES["results"][name]
    ]
    assert not mismatches, "\n".join(mismatches)


def diff(path: str, got, expected) -> str:
    """The first places where ``got`` differs from ``expected`` (lists and dicts walked)."""
    if isinstance(got, list) and isinstance(expected, list) and len(got) == len(expected):
        return "\n".join(
            diff(f"{path}[{i}]", g, e) for i, (g, e) in enumerate(zip(got, expected, strict=True)) if g != e
        )
    if isinstance(got, dict) and isinstance(expected, dict) and got.keys() == expected.keys():
        return "\n".join(diff(f"{path}.{k}", got[k], expected[k]) for k in got if got[k] != expected[k])
    dump = lambda v: json.dumps(v, ensure_ascii=False)  # noqa: E731 - a one-line helper for the message
    return f"{path}: sandbox {dump(got)} != node {dump(expected)}"


def test_url_under_a_tiny_memory_limit_is_a_memory_error_and_the_sandbox_keeps_working(make_plugin):
    """URL's code compiles on first use (docs: it needs 16 MiB or more): under 8 MiB that
    is a PluginMemoryError for that plugin, and the same sandbox serves the next call."""
    from plugins_app.exceptions import PluginMemoryError

    source = "const plugin = { u(x) { return new URL(x, 'https://example.com/a/').href; } };"
    make_plugin(source, slug="tiny", memory_limit_mb=8)
    make_plugin(source, slug="roomy", memory_limit_mb=16)
    with pytest.raises(PluginMemoryError, match="heap limit of 8 MiB"):
        hooks.call("tiny", "u", "../b")
    assert hooks.call("roomy", "u", "../b?q=1") == "https://example.com/b?q=1"
