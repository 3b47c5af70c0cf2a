"""Every fenced code block of README.md and docs/*.md, checked or run, so the docs cannot drift.

A block is handled by its language (the policy, strict: an unknown language fails):

- ``javascript``: a complete plugin (``const plugin =``, ``export default``) is installed through
  the app (validated by a trial load in a real sandbox, like any save); a fragment is put in the
  body of a hook (``async example(ARGS) { ... }``) and installed the same way. With ``call=`` the
  hook is then called and, with ``returns=``/``logs=``, its result and log lines compared.
  ``as=method``: a hook signature (becomes an empty method); ``as=where``: one ``db`` filter per
  line, each counted against the demo's notes. ``bundle=script|module``: npm code, bundled with
  esbuild exactly as docs/bundling.md does (tests/npm_libs/build.py; needs node).
- ``python``: every import must resolve and every ``module.name`` of an imported plugins_app
  module must exist; then the block runs (top-level ``await`` allowed) in a test database with
  the stand-ins below for the names a snippet takes from its surroundings; an expression line
  ending in a comment that is a Python literal (``# 'Hello'``) is compared with it.
  ``kind=settings``: a settings module snippet (PLUGINS_APP keys exist, MIDDLEWARE entries
  import); ``kind=urls``; ``kind=signature of=dotted.name``: the parameters are the function's;
  ``kind=check``: imports and names only, the reason given.
- ``sh``: each ``manage.py plugins ...`` line is parsed by the command's own argparse parser
  (subcommand, flags and argument count exist); with ``run`` the block runs through
  ``call_command`` in a temporary folder (``files=NAME:SLUG`` writes a docs plugin there).
  ``pip install -e ".[x]"`` needs the extra; ``manage.py X`` the command; paths must exist;
  ``npx esbuild`` must use build.py's flags. docs/deployment.md's commands are run by
  tests/test_deployment.py, which checks it holds exactly them.
- ``typescript``: ``as=api``: each line declares a name that plugins_app/plugin-api.d.ts
  declares; the "Types for your plugin" module example is type-checked by tests/test_typegen.py.
- ``json``, ``yaml``, ``ini``: parsed, and checked against what they describe (``check=``).
- ``django``: compiled by Django's template engine; ``html``: the markup the template tag emits.
- no language: literal text (output, diagrams), never a command.

Annotations: an HTML comment on the line above the fence, ``<!-- example: key=value; ... -->``
(values are JSON when they parse as JSON); ``<!-- example: not run: REASON -->`` skips a block.
Plugins named with ``slug=`` are installed by later blocks with ``uses=SLUG,...``.
"""

from __future__ import annotations

import ast
import asyncio
import configparser
import importlib
import importlib.util
import inspect
import json
import re
import shlex
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command, get_commands

from plugins_app import conf, hooks
from plugins_app.exposure import exposing
from plugins_app.testing import install

REPO = Path(__file__).resolve().parent.parent
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w-]*)\s*$")
NOTE = re.compile(r"^\s*<!--\s*example:\s*(?P<body>.*?)\s*-->\s*$")


@dataclass
class Block:
    page: str
    line: int
    lang: str
    text: str
    note: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"

    def __str__(self) -> str:
        return self.id


def _parse_note(body: str) -> dict[str, Any]:
    if body.startswith("not run:"):
        return {"not run": body[len("not run:") :].strip()}
    note: dict[str, Any] = {}
    for part in filter(None, (p.strip() for p in re.split(r";\s+(?=\w+(?:=|\s*;|\s*$))", body))):
        key, _, value = part.partition("=")
        try:
            note[key.strip()] = json.loads(value) if value else True
        except json.JSONDecodeError:
            note[key.strip()] = value.strip()
    return note


def extract() -> list[Block]:
    blocks = []
    for path in PAGES:
        lines = path.read_text().splitlines()
        page = str(path.relative_to(REPO))
        i = 0
        while i < len(lines):
            fence = FENCE.match(lines[i])
            if not fence:
                i += 1
                continue
            indent = len(fence["indent"])
            end = i + 1
            while not re.match(r"^\s*```\s*$", lines[end]):
                end += 1
            above = next((line for line in reversed(lines[:i]) if line.strip()), "")
            note = NOTE.match(above)
            text = "\n".join(line[indent:] for line in lines[i + 1 : end]) + "\n"
            blocks.append(Block(page, i + 1, fence["lang"], text, _parse_note(note["body"]) if note else {}))
            i = end + 1
    return blocks


BLOCKS = extract()
RUN = [b for b in BLOCKS if "not run" not in b.note]
SLUGS = {b.note["slug"]: b for b in BLOCKS if "slug" in b.note}


def of(*langs: str) -> list[Any]:
    return [pytest.param(b, id=b.id) for b in RUN if b.lang in langs]


def test_every_block_has_a_policy_and_skips_are_rare() -> None:
    known = {"javascript", "python", "sh", "typescript", "json", "yaml", "ini", "django", "html", ""}
    unknown = [f"{b} ({b.lang})" for b in BLOCKS if b.lang not in known and "not run" not in b.note]
    assert not unknown, f"code blocks of a language without a policy: {unknown}"
    skipped = [f"{b}: {b.note['not run']}" for b in BLOCKS if "not run" in b.note]
    print(f"{len(BLOCKS)} code blocks; {len(skipped)} not run:", *skipped, sep="\n  ")
    assert all(b.note["not run"] for b in BLOCKS if "not run" in b.note), "a 'not run' needs its reason"
    assert len(skipped) <= 5, skipped
    duplicates = [b.note["slug"] for b in BLOCKS if "slug" in b.note and SLUGS[b.note["slug"]] is not b]
    assert not duplicates


# -- javascript ----------------------------------------------------------------------------

COMPLETE = re.compile(r"^(const|var|let) plugin\b|^export default\b", re.M)


def _code_and_comment(line: str) -> tuple[str, str]:
    """``line`` split at its ``//`` comment (outside strings, good enough for the docs)."""
    match = re.search(r"\s*//.*$", line)
    return (line[: match.start()], match.group(0)) if match else (line, "")


def plugin_source(block: Block) -> str:
    """The plugin a JavaScript block becomes (see the module docstring)."""
    text = block.text
    mode = block.note.get("as")
    if "bundle" in block.note:
        from tests.npm_libs import build

        try:
            deps_flags = build.SCRIPT_FLAGS if block.note["bundle"] == "script" else build.MODULE_FLAGS
            done = build.bundle_text(text, "--platform=browser", *deps_flags)
        except build.ToolsMissing as exc:
            pytest.skip(str(exc))
        assert done.returncode == 0, done.stderr
        return done.stdout
    if mode == "method":
        methods = []
        for line in text.splitlines():
            code, comment = _code_and_comment(line)
            if code.strip():
                methods.append(f"  {code.strip()} {{}},{comment}")
        return "const plugin = {\n" + "\n".join(methods) + "\n};\n"
    if mode == "where":
        counts = []
        for line in text.splitlines():
            code, _ = _code_and_comment(line)
            if code.strip():
                counts.append(f'    db.count("demo.Note", {code.strip()}),')
        return "const plugin = {\n  example() {\n    return [\n" + "\n".join(counts) + "\n    ];\n  },\n};\n"
    if mode is None and COMPLETE.search(text):
        return text
    assert mode in (None, "fragment"), f"{block}: unknown as={mode!r}"
    args = block.note.get("args", "")
    return f"const plugin = {{\n  async example({args}) {{\n{text}\n  }},\n}};\n"


def install_block(block: Block, slug: str | None = None) -> Any:
    return install(
        plugin_source(block),
        slug=slug or block.note.get("slug", "docs-example"),
        config=block.note.get("config"),
        grants=block.note.get("grants"),
    )


def install_uses(block: Block) -> None:
    for slug in filter(None, str(block.note.get("uses", "")).split(",")):
        assert slug in SLUGS, f"{block}: uses={slug}, but no block has slug={slug}"
        install_block(SLUGS[slug])
    for slug, source in (block.note.get("plugins") or {}).items():
        install(source, slug=slug)


@pytest.mark.parametrize("block", of("javascript"))
def test_javascript(block: Block, db: None) -> None:
    install_uses(block)
    plugin = install_block(block)
    expected_hooks = block.note.get("hooks")
    if expected_hooks is not None:
        assert sorted(plugin.hooks) == sorted(expected_hooks)
    if "call" in block.note:
        hook, *args = block.note["call"]
        result = hooks.run(plugin.slug, hook, *args)
        if "returns" in block.note:
            assert result.value == block.note["returns"]
        if "logs" in block.note:
            assert [line.message for line in result.logs] == block.note["logs"]


# -- python ----------------------------------------------------------------------------------


def _imports(tree: ast.AST) -> dict[str, Any]:
    """Resolve every import of ``tree``: name bound -> the object (fails on a missing name)."""
    bound: dict[str, Any] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                module = importlib.import_module(alias.name)
                bound[alias.asname or alias.name.split(".")[0]] = module
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # a relative import of the user's project (from .celery import app)
                continue
            module = importlib.import_module(node.module or "")
            for alias in node.names:
                try:
                    value = getattr(module, alias.name)
                except AttributeError:
                    value = importlib.import_module(f"{node.module}.{alias.name}")
                bound[alias.asname or alias.name] = value
    return bound


def check_names(block: Block, tree: ast.AST) -> dict[str, Any]:
    bound = _imports(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            owner = bound.get(node.value.id)
            if inspect.ismodule(owner) and owner.__name__.startswith("plugins_app"):
                assert hasattr(owner, node.attr), f"{block}: {owner.__name__} has no {node.attr}"
    return bound


LITERAL_COMMENT = re.compile(r"^(?P<code>[^#]+?)\s+#\s*(?P<literal>.+?)\s*$")


def _with_comparisons(text: str) -> str:
    """Lines ``EXPR  # LITERAL`` become ``__expect(EXPR, LITERAL)``."""
    out = []
    for line in text.splitlines():
        match = LITERAL_COMMENT.match(line)
        if match and not line.startswith((" ", "\t")):
            try:
                ast.literal_eval(match["literal"])
                ast.parse(match["code"], mode="eval")
            except (ValueError, SyntaxError):
                pass
            else:
                line = f"__expect({match['code']}, {match['literal']})"
        out.append(line)
    return "\n".join(out)


def _expect(value: Any, expected: Any) -> None:
    assert value == expected


@pytest.fixture
def standins(settings: Any) -> Iterator[dict[str, Any]]:
    """Values for the names snippets take from their surroundings (a view, a model, ...)."""
    from django.contrib.auth.models import User
    from django.dispatch import Signal
    from django.test import RequestFactory

    from project.demo.models import Note

    user = User.objects.create_user("ada")
    note = Note.objects.create(author=user, title="Urgent bug", body="idea")
    request = RequestFactory().get("/")
    request.user = user
    from plugins_app import signals
    from plugins_app.models import Plugin

    before = set(map(id, signals.bindings()))
    from django.db import transaction

    from plugins_app.models import PluginGrant
    from plugins_app.testing import PluginInstaller

    installer = PluginInstaller()
    yield {
        "hooks": hooks,
        "transaction": transaction,
        "PluginGrant": PluginGrant,
        "plugin": install("const plugin = { noop() {} };", slug="example"),
        "install_plugin": installer,
        "Note": Note,
        "note": note,
        "user": user,
        "request": request,
        "req": request,
        "payload": {"id": note.pk},
        "page": {"id": 1},
        "title": "Welcome",
        "order_paid": Signal(),
        "settings": settings,
        "Plugin": Plugin,
        "__expect": _expect,
    }
    for binding in signals.bindings():
        if id(binding) not in before:
            signals.unbind(binding)


def run_python(text: str, namespace: dict[str, Any]) -> None:
    """Run ``text`` statement by statement; one with a top-level ``await`` in an event loop
    (as in an async view), the others as plain code."""
    for statement in ast.parse(_with_comparisons(text)).body:
        module = ast.Module(body=[statement], type_ignores=[])
        code = compile(module, "<docs>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
        result = eval(code, namespace)  # noqa: S307 - the docs' own examples
        if inspect.iscoroutine(result):
            asyncio.run(result)


def check_settings(block: Block, namespace: dict[str, Any]) -> None:
    from django.utils.module_loading import import_string

    assert set(namespace.get("PLUGINS_APP", {})) <= set(conf.DEFAULTS), f"{block}: unknown PLUGINS_APP keys"
    for entry in namespace.get("MIDDLEWARE", []):
        if isinstance(entry, str):
            import_string(entry)
    for formatter in namespace.get("LOGGING", {}).get("formatters", {}).values():
        factory = import_string(formatter.pop("()", "logging.Formatter"))
        factory(**formatter)


@pytest.mark.django_db(transaction=True)  # committed: acall's executor thread sees the plugins
@pytest.mark.parametrize("block", of("python"))
def test_python(block: Block, request: pytest.FixtureRequest) -> None:
    kind = block.note.get("kind", "run")
    if kind == "signature":
        target = importlib.import_module(block.note["of"].rpartition(".")[0])
        function = getattr(target, block.note["of"].rpartition(".")[2])
        header = block.text.strip().split(" -> ")[0]
        documented = ast.parse(f"def {header}: pass").body[0]
        assert isinstance(documented, ast.FunctionDef)
        names = [a.arg for a in (*documented.args.args, *documented.args.kwonlyargs)]
        assert names == list(inspect.signature(function).parameters), f"{block}: {header}"
        return
    tree = ast.parse(block.text)
    bound = check_names(block, tree)
    if kind == "check":
        assert block.note.get("reason"), f"{block}: kind=check needs a reason="
        assigned = set(bound) | set(dir(__builtins__) if isinstance(__builtins__, dict) is False else __builtins__)
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                assigned.add(node.id)
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                assigned.add(node.name)
            elif isinstance(node, ast.arg):
                assigned.add(node.arg)
            elif isinstance(node, ast.ImportFrom):
                assigned.update(alias.asname or alias.name for alias in node.names)
        used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
        assert not used - assigned, f"{block}: names used but never defined: {sorted(used - assigned)}"
        return
    if kind == "settings":
        import os

        namespace: dict[str, Any] = {"os": os, "__builtins__": __builtins__}
        environ = {"CELERY_BROKER_URL": "", "PLUGINS_METRICS_TOKEN": "x" * 32}
        namespace["os"] = type("os", (), {"environ": environ})
        run_python(block.text, namespace)
        check_settings(block, namespace)
        return
    if kind == "urls":
        from django.urls import include, path

        eval(compile(block.text, "<docs>", "eval"), {"path": path, "include": include})  # noqa: S307
        return
    assert kind == "run", f"{block}: unknown kind={kind!r}"
    namespace = dict(request.getfixturevalue("standins"))
    install_uses(block)
    namespace.update(bound)
    text = block.text
    if block.note.get("continues"):  # the page's previous python block comes first
        previous = [b for b in BLOCKS if b.page == block.page and b.lang == "python" and b.line < block.line]
        text = previous[-1].text + text
    if block.note.get("isolate"):  # declares hooks and exposes models: not in the site's registries
        from types import MappingProxyType

        from plugins_app import catalogue

        with exposing(), catalogue.declaring():
            request.getfixturevalue("monkeypatch").setattr(catalogue, "_catalogue", MappingProxyType({}))
            run_python(text, namespace)
    else:
        run_python(text, namespace)
    for name in filter(None, str(block.note.get("then", "")).split(",")):
        function = namespace[name]
        kwargs = {p: namespace[p] for p in inspect.signature(function).parameters}
        function(**kwargs)


# -- shell -------------------------------------------------------------------------------------


def command_lines(text: str) -> list[str]:
    lines = []
    for line in text.replace("\\\n", " ").splitlines():
        words = shlex.split(line, comments=True)
        if words:
            lines.append(shlex.join(words))
    return lines


def plugins_parser() -> Any:
    from plugins_app.management.commands.plugins import Command

    return Command().create_parser("manage.py", "plugins")


def check_command(block: Block, line: str) -> None:
    if block.note.get("as") == "usage":  # a synopsis: [--flag VALUE] as if given
        line = line.replace("[", "").replace("]", "").replace(" | ", " ")
    words = shlex.split(line)
    parts = [shlex.split(p) for p in line.split(" && ")] if "&&" in words else [words]
    for words in parts:
        program = words[0]
        if program in ("python", "python3.11", ".venv/bin/python") and words[1:2] == ["manage.py"]:
            if words[2] == "plugins":
                with _no_exit(block, line):
                    plugins_parser().parse_args(words[3:])
            else:
                assert words[2] in get_commands(), f"{block}: no command {words[2]}"
        elif program.endswith("pip") and words[1:3] == ["install", "-e"]:
            extra = re.fullmatch(r"\.(?:\[(\w+)\])?", words[3])
            assert extra, line
            if extra[1]:
                import tomllib

                extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
                assert extra[1] in extras, f"{block}: no extra {extra[1]}"
        elif program in ("python3.11",) and words[1:3] == ["-m", "venv"]:
            pass
        elif program in (".venv/bin/python", ".venv/bin/pytest"):
            script = next((w for w in words[1:] if not w.startswith("-")), None)
            assert script and (REPO / script).exists(), f"{block}: {line}"
        elif program == "npx" and words[1] == "esbuild":
            from tests.npm_libs import build

            flags = {w for w in words[2:] if w.startswith("--") and not w.startswith("--outfile")}
            expected = set(build.COMMON_FLAGS) - {"--log-level=warning"}
            expected |= set(build.SCRIPT_FLAGS if "--format=iife" in flags else build.MODULE_FLAGS)
            assert flags == expected, f"{block}: not docs/bundling.md's recipe ({flags ^ expected})"
        elif program in ("npm", "mkdir", "cd", "export"):
            pass  # the bundling setup, run by tests/npm_libs/build.py; environment variables
        elif program == "celery":
            assert words[1:3] == ["-A", "project"]
            importlib.import_module("project.celery")
        else:
            pytest.fail(f"{block}: no policy for {line!r}")


class _no_exit:
    def __init__(self, block: Block, line: str) -> None:
        self.what = f"{block}: {line}"

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> bool:
        if kind is SystemExit:
            pytest.fail(f"argparse refuses {self.what}")
        return False


def run_commands(block: Block, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    import io

    monkeypatch.chdir(tmp_path)
    for spec in filter(None, str(block.note.get("files", "")).split(",")):
        name, _, slug = spec.partition(":")
        (tmp_path / name).write_text(SLUGS[slug].text)
    outputs = []
    for line in command_lines(block.text):
        words = shlex.split(line)
        assert words[1:3] == ["manage.py", "plugins"], line
        out, err = io.StringIO(), io.StringIO()
        try:
            call_command("plugins", *words[3:], stdout=out, stderr=err)
        except SystemExit as exc:
            assert not exc.code, f"{block}: {line} exited {exc.code}: {err.getvalue()}"
        outputs.append(out.getvalue())
    return outputs


@pytest.mark.parametrize("block", of("sh"))
def test_sh(block: Block, request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if block.page == "docs/deployment.md":
        from tests.test_deployment import GUIDE_COMMANDS, INSTALL_COMMANDS

        guide = {*GUIDE_COMMANDS.values(), *INSTALL_COMMANDS}
        for line in block.text.splitlines():
            line = re.sub(r"\s+# .*$", "", line).strip()
            if line and not line.startswith("export "):
                assert line in guide, f"{block}: {line!r} is not run by tests/test_deployment.py"
        return
    for line in command_lines(block.text):
        check_command(block, line)
    if block.note.get("run"):
        request.getfixturevalue("db")
        with exposing(*DEMO_EXPOSURE):
            install_uses(block)
            outputs = run_commands(block, tmp_path, monkeypatch)
        for index, expected in (block.note.get("outputs") or {}).items():
            assert json.loads(outputs[int(index)]) == expected


DEMO_EXPOSURE = (
    ("auth.User", {"read": ["id", "username"]}),
    (
        "demo.Note",
        {
            "read": ["id", "author", "title", "body", "score", "created_at"],
            "write": ["author", "title", "body", "score"],
            "relations": ["author"],
        },
    ),
)


# -- the other languages -------------------------------------------------------------------


@pytest.mark.parametrize("block", of("typescript"))
def test_typescript(block: Block) -> None:
    api = (REPO / "plugins_app" / "plugin-api.d.ts").read_text()
    if block.note.get("covered") == "tests/test_typegen.py":
        from tests.test_typegen import _doc_examples

        assert _doc_examples()["docs-module.ts"] == block.text
        return
    assert block.note.get("as") == "api", f"{block}: a typescript block is as=api or covered=tests/test_typegen.py"
    for line in block.text.splitlines():
        code, _ = _code_and_comment(line)
        name = re.match(r"\s*(?:const\s+)?([\w.]+)", code)
        if not name or not code.strip() or code.startswith(" "):
            continue
        last = name[1].split(".")[-1]
        assert re.search(rf"\b{re.escape(last)}\s*[(:<]", api), f"{block}: plugin-api.d.ts declares no {name[1]}"


@pytest.mark.parametrize("block", of("json", "yaml", "ini", "django", "html", ""))
def test_other_blocks(block: Block) -> None:
    check = block.note.get("check")
    if block.lang == "json":
        data = json.loads(block.text)
        if check == "config-schema":
            import jsonschema

            jsonschema.Draft202012Validator.check_schema(data)
            jsonschema.validate(SLUGS[block.note["of"]].note["config"], data)
        elif check == "export":
            from plugins_app import transfer

            assert data["format"] == transfer.FORMAT and data["format_version"] == transfer.FORMAT_VERSION
        elif check == "tsconfig":
            from tests.test_typegen import COMPILER_OPTIONS

            # The options tests/test_typegen.py type-checks with (a subset of them).
            assert {k: v for k, v in data["compilerOptions"].items() if COMPILER_OPTIONS.get(k) != v} == {}
        else:
            pytest.fail(f"{block}: a json block needs check=")
    elif block.lang == "yaml":
        import yaml

        data = yaml.safe_load(block.text)
        from django.urls import reverse

        assert data["scrape_configs"][0]["metrics_path"] == reverse("plugins_app:metrics")
    elif block.lang == "ini":
        parser = configparser.ConfigParser(interpolation=None)
        parser.read_string(block.text)
        words = shlex.split(parser["Service"]["ExecStart"])
        check_command(block, shlex.join(["python", *words[1:]]))
    elif block.lang == "django":
        from django.template import engines

        engines["django"].from_string(block.text)
    elif block.lang == "html":
        source = (REPO / "plugins_app" / "templatetags" / "plugins.py").read_text()
        assert 'class="plugin-hook"' in source and "data-plugin" in source
    else:  # literal text: output, diagrams, trees
        for line in block.text.splitlines():
            assert not re.match(r"\s*(\$ )?(python|\.venv/|pip|manage\.py)\b", line), (
                f"{block}: a command in a block without a language (```sh)"
            )


# -- reference tables kept in sync with the code -----------------------------------------------


def _reference_hook() -> Any:
    """docs/_hooks/reference.py, which generates the settings, checks and CLI pages."""
    spec = importlib.util.spec_from_file_location("docs_reference", REPO / "docs" / "_hooks" / "reference.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_settings_table_names_real_settings() -> None:
    """The README's table summarises settings (the site's settings page lists all of them,
    generated from plugins_app/conf.py): each key it names must exist."""
    section = (REPO / "README.md").read_text().split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    named = {
        key
        for row in section.splitlines()
        if row.startswith("| `")
        for key in re.findall(r"`([A-Z][A-Z_]+)`", row.split(" | ")[0])
    }
    assert named and not named - set(conf.DEFAULTS), sorted(named - set(conf.DEFAULTS))
    generated = _reference_hook().settings_markdown()
    assert all(f"| `{key}` |" in generated for key in conf.DEFAULTS)


def test_every_system_check_id_is_documented() -> None:
    """Every id the code reports is described in the guides, and the guides name no other
    (the same check fails ``mkdocs build``, whose checks page lists them)."""
    hook = _reference_hook()
    code, docs = hook.check_ids_in_code(), hook.check_ids_in_docs()
    assert sorted(set(code) - set(docs)) == [] and sorted(set(docs) - set(code)) == []
