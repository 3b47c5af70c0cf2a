"""Generated TypeScript types (plugins_app.typegen): the JSON Schema and model field mapping,
the ``plugins types`` command, the admin download, and ``tsc`` checking sample plugins
(tests/typegen_samples/) against the types generated for them."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth.models import Permission, User
from django.core.management import CommandError, call_command
from django.db import models
from django.urls import reverse

from plugins_app import typegen
from plugins_app.app_hooks import REQUEST_INFO
from plugins_app.catalogue import declaring
from plugins_app.exposure import exposing
from plugins_app.models import Plugin, PluginGrant
from plugins_app.typegen import doc_comment, field_types, schema_to_ts, ts_property_name, ts_string

from .cli import run

SAMPLES = Path(__file__).resolve().parent / "typegen_samples"
TYPESCRIPT_VERSION = "5.9.3"

NOTE = {
    "title": "note",
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "title": {"type": "string", "description": "the note's title"},
        "tags": {"type": "array", "items": {"type": "string"}},
    },
    "required": ["id", "title"],
    "additionalProperties": False,
}
HOOKS: list[dict[str, Any]] = [
    {
        "name": "noteSaved",
        "kind": "action",
        "args": [NOTE, {"title": "created", "type": "boolean"}],
        "description": "A note was saved.",
    },
    {
        "name": "headline",
        "kind": "filter",
        "args": [{"title": "value", "type": "string"}, REQUEST_INFO],
        "returns": {"type": "string"},
    },
    {
        "name": "scoreOf",
        "kind": "call",
        "args": {"noteId": {"type": "integer"}},
        "returns": {"type": ["integer", "null"]},
    },
    {"name": "neverImplemented", "kind": "action", "args": [{"title": "x", "type": "string"}]},
]
CONFIG_SCHEMA = {
    "type": "object",
    "properties": {
        "prefix": {"type": "string"},
        "weight": {"type": "number"},
        "keywords": {"type": "array", "items": {"type": "string"}},
        "mode": {"enum": ["fast", "slow"]},
    },
    "required": ["weight", "keywords"],
    "additionalProperties": False,
}
DEMO_EXPOSURE = [
    ("auth.User", {"read": ["id", "username", "email"], "relations": [], "lookups": ["exact", "in", "istartswith"]}),
    (
        "demo.Note",
        {
            "read": ["id", "author", "title", "body", "score", "created_at"],
            "write": ["author", "title", "body", "score"],
            "relations": ["author"],
        },
    ),
    (
        "plugins_app.Delivery",
        {
            "read": [
                "id",
                "delivery_id",
                "plugin",
                "mode",
                "args",
                "state",
                "attempts",
                "lease_until",
                "plugin_version",
            ],
            "write": ["hook", "mode", "args", "lease_until", "plugin_version"],
        },
    ),
]
# Injection attempts: each would declare `injected` if a name or text reached the output raw.
HOSTILE = '"; declare const injected: number; //*/ declare const injected: number; /*\n declare const injected: 1;'


# -- JSON Schema -> TypeScript --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "string"}, "string"),
        ({"type": "integer"}, "number"),
        ({"type": ["string", "null"]}, "string | null"),
        ({"type": "boolean", "nullable": True}, "boolean | null"),
        ({"enum": ["a", 1, None, True]}, '"a" | 1 | null | true'),
        ({"const": "x"}, '"x"'),
        ({"const": {"a": [1]}}, "{\n  a: [1];\n}"),
        ({"type": "array", "items": {"type": "integer"}}, "number[]"),
        ({"type": "array", "items": {"type": ["integer", "string"]}}, "Array<number | string>"),
        ({"type": "array"}, "JsonValue[]"),
        (
            {"prefixItems": [{"type": "string"}, {"type": "integer"}], "minItems": 1, "items": False},
            "[string, number?]",
        ),
        (
            {"type": "array", "items": [{"type": "string"}], "additionalItems": {"type": "boolean"}},
            "[string?, ...boolean[]]",
        ),
        ({"anyOf": [{"type": "string"}, {"type": "integer"}]}, "string | number"),
        ({"oneOf": [{"const": 1}, {"const": 2}]}, "1 | 2"),
        (
            {"allOf": [{"properties": {"a": {"type": "string"}}}, {"properties": {"b": {"type": "string"}}}]},
            "{\n  a?: string;\n} & {\n  b?: string;\n}",
        ),
        ({"type": "string", "anyOf": [{"const": "a"}, {"const": "b"}]}, 'string & ("a" | "b")'),
        ({}, "JsonValue"),
        (True, "JsonValue"),
        (False, "never"),
        ({"not": {"type": "string"}}, "unknown"),
        ({"$ref": "https://example.com/remote.json"}, "unknown"),
        ({"type": "object"}, "{\n  [key: string]: JsonValue;\n}"),
        ({"type": "object", "additionalProperties": False}, "Record<string, never>"),
        ({"type": "object", "additionalProperties": {"type": "integer"}}, "{\n  [key: string]: number;\n}"),
    ],
)
def test_schema_to_ts(schema: Any, expected: str) -> None:
    assert schema_to_ts(schema) == expected


def test_object_properties_required_optional_and_descriptions() -> None:
    schema = {
        "type": "object",
        "properties": {"id": {"type": "integer", "description": "the id"}, "tag-name": {"type": "string"}},
        "required": ["id", "extra"],
        "patternProperties": {"^x-": {"type": "boolean"}},
    }
    assert schema_to_ts(schema) == (
        "{\n"
        "  /** the id */\n"
        "  id: number;\n"
        '  "tag-name"?: string;\n'
        "  extra: JsonValue;\n"
        "  [key: string]: boolean | number | string | JsonValue;\n"
        "}"
    )


def test_readonly_objects_and_arrays() -> None:
    schema = {
        "type": "object",
        "properties": {"tags": {"type": "array", "items": {"type": "string"}}},
        "required": ["tags"],
    }
    assert schema_to_ts(schema, readonly=True) == "{\n  readonly tags: readonly string[];\n}"


def test_local_refs_are_followed_and_recursion_stops_at_unknown() -> None:
    schema = {
        "$defs": {
            "node": {"type": "object", "properties": {"name": {"type": "string"}, "next": {"$ref": "#/$defs/node"}}}
        },
        "$ref": "#/$defs/node",
    }
    assert schema_to_ts(schema) == "{\n  name?: string;\n  next?: unknown;\n}"
    assert schema_to_ts({"definitions": {"a~b": {"type": "integer"}}, "$ref": "#/definitions/a~0b"}) == "number"
    assert schema_to_ts({"$ref": "#/$defs/missing"}) == "unknown"


def test_very_deep_schemas_end_in_unknown() -> None:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(typegen.MAX_SCHEMA_DEPTH + 5):
        schema = {"type": "array", "items": schema}
    rendered = schema_to_ts(schema)
    assert rendered.endswith("unknown" + "[]" * (typegen.MAX_SCHEMA_DEPTH + 1))
    assert "string" not in rendered


def test_names_strings_and_comments_are_escaped() -> None:
    assert ts_property_name("title") == "title"
    assert ts_property_name("$ok_1") == "$ok_1"
    assert ts_property_name("a-b") == '"a-b"'
    assert ts_property_name('x"; y: 1; //') == '"x\\"; y: 1; //"'
    assert ts_property_name("caf\u00e9") == '"caf\\u00e9"'
    assert ts_string("line\nbreak\u2028") == '"line\\nbreak\\u2028"'
    assert doc_comment("ends */ here") == "/** ends *\\/ here */\n"
    assert doc_comment("two\nlines", "  ") == "  /**\n   * two\n   * lines\n   */\n"
    assert doc_comment("   ") == ""
    hostile = schema_to_ts({"type": "object", "properties": {HOSTILE: {"enum": [HOSTILE], "description": HOSTILE}}})
    assert "declare" not in re.sub(r'"(?:[^"\\]|\\.)*"|/\*\*.*?\*/', "", hostile, flags=re.S)


def test_deep_const_values_end_in_unknown() -> None:
    value: Any = 1
    for _ in range(3000):  # deeper than Python's recursion limit
        value = [value]
    rendered = schema_to_ts({"const": value})
    assert rendered == "[" * (typegen.MAX_SCHEMA_DEPTH + 1) + "unknown" + "]" * (typegen.MAX_SCHEMA_DEPTH + 1)


def test_descriptions_do_not_change_how_types_combine() -> None:
    described = {"type": ["object", "null"], "properties": {"a": {"type": "string", "description": 'a " { | b'}}}
    assert schema_to_ts({"allOf": [described, {"type": "object"}]}) == (
        '({\n  /** a " { | b */\n  a?: string;\n} | null) & {\n  [key: string]: JsonValue;\n}'
    )


def test_note_comments_and_model_type_names() -> None:
    assert typegen.note_comment("not */ JSDoc") == "/* not *\\/ JSDoc */\n"
    taken = {"AuthUser"}
    assert typegen._type_stem("auth.User", taken) == "AuthUser2"
    assert typegen._type_stem("9app.x", taken) == "Model9appX"
    assert {"AuthUser2", "Model9appX"} <= taken


# -- Django model fields ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "read", "write", "required"),
    [
        (models.IntegerField(), "number", "number", True),
        (models.IntegerField(default=0), "number", "number", False),
        (models.FloatField(null=True), "number | null", "number | null", False),
        (models.DecimalField(max_digits=5, decimal_places=2), "string", "string | number", True),
        (models.CharField(max_length=5), "string", "string", False),
        (models.CharField(max_length=5, choices=[("a", "A"), ("b", "B")]), '"a" | "b"', '"a" | "b"', False),
        (models.CharField(max_length=5, blank=True, choices=[("a", "A")]), '"a" | ""', '"a" | ""', False),
        (models.IntegerField(choices=[(1, "one"), (2, "two")]), "1 | 2", "1 | 2", True),
        (models.BooleanField(), "boolean", "boolean", True),
        (models.DateField(), "string", "string", True),
        (models.DateTimeField(auto_now_add=True), "string", "string", False),
        (models.TimeField(null=True), "string | null", "string | null", False),
        (models.DurationField(), "number", "string", True),
        (models.UUIDField(), "string", "string", True),
        (models.BinaryField(null=True), "null", "null", False),
        (models.JSONField(default=dict), "JsonValue", "JsonScalar", False),
        (models.ForeignKey(User, on_delete=models.CASCADE), "number", "number", True),
        (models.ForeignKey(User, on_delete=models.CASCADE, null=True), "number | null", "number | null", False),
    ],
)
def test_field_types(field: models.Field, read: str, write: str, required: bool) -> None:
    types = field_types(field)
    assert (types.read, types.write, types.required) == (read, write, required)


def test_field_types_match_what_the_host_api_returns(db: None) -> None:
    from plugins_app.exposure import exposed_row
    from plugins_app.models import Delivery

    plugin = Plugin(slug="x", name="x", source="const plugin = {f() {}}")
    plugin.save()
    row = exposed_row(
        Delivery.objects.create(plugin=plugin, hook="h", mode="background", args=[1]),
        [
            "id",
            "delivery_id",
            "plugin",
            "mode",
            "args",
            "attempts",
            "lease_until",
            "next_attempt_at",
        ],
    )
    js_types = {"number": (int, float), "string": str, "JsonValue": (list, dict, str, int, float, bool, type(None))}
    for name, value in row.items():
        declared = field_types(Delivery._meta.get_field(name)).read
        if declared.endswith(" | null") and value is None:
            continue
        kind = declared.removesuffix(" | null")
        if kind.startswith('"'):
            assert value in [json.loads(v) for v in kind.split(" | ")], name
        else:
            assert isinstance(value, js_types[kind]), (name, value, declared)


# -- plugin_types ------------------------------------------------------------------------------


@pytest.fixture
def catalogue() -> Iterator[None]:
    with declaring(*HOOKS):
        yield


@pytest.fixture
def demo_exposure() -> Iterator[None]:
    with exposing(*DEMO_EXPOSURE):
        yield


def _grant(plugin: Plugin, model: str, read: list[str], create: Sequence[str] = (), update: Sequence[str] = ()) -> None:
    PluginGrant.objects.create(plugin=plugin, model=model, read=read, create=list(create), update=list(update))


@pytest.fixture
def notes(make_plugin: Callable[..., Plugin], catalogue: None, demo_exposure: None) -> Plugin:
    plugin = make_plugin(
        (SAMPLES / "notes.js").read_text(),
        slug="notes",
        config={"weight": 2, "keywords": ["urgent"]},
        config_schema=CONFIG_SCHEMA,
    )
    _grant(
        plugin,
        "demo.Note",
        ["id", "author", "title", "score", "created_at"],
        create=["author", "title"],
        update=["score"],
    )
    _grant(plugin, "auth.User", ["id", "username"])
    plugin.refresh_from_db()
    return plugin


def test_plugin_types_of_a_plugin(notes: Plugin) -> None:
    text = typegen.plugin_types(notes)
    assert f"(version {notes.version})" in text
    row = text.split("interface DemoNoteRow {\n", 1)[1].split("}", 1)[0]
    assert row == "  author: number;\n  created_at: string;\n  id: number;\n  score: number;\n  title: string;\n"
    assert "body" not in row  # exposed, but not granted
    assert "interface DemoNoteCreate {\n  author: number;\n  title?: string;\n}" in text
    assert "interface DemoNoteUpdate {\n  score?: number;\n}" in text
    assert 'type CreatableModel = "demo.Note";' in text
    assert "type DeletableModel = never;" in text
    assert 'DbRelated<"author", DbConditions<AuthUserFilter, "exact" | "in" | "istartswith">>' in text
    # Declared hooks it implements, typed; declared ones it does not implement are left out.
    assert "  noteSaved: (note: {" in text and "created: boolean) => HookResult<JsonValue | void>;" in text
    assert "  scoreOf: (noteId: number) => HookResult<number | null>;" in text
    assert "neverImplemented" not in text
    assert 'that the site does not declare (typed as any function): "digest", "stamp", "stats"' in text
    # config from its schema, read-only (in the order the database keeps the schema's keys:
    # PostgreSQL's jsonb sorts them)
    config = text.split("type PluginConfig = {\n", 1)[1].split("\n}", 1)[0].splitlines()
    assert "  readonly prefix?: string;" in config and "  readonly weight: number;" in config
    assert (
        "  readonly keywords: readonly string[];" in config or "  readonly keywords: ReadonlyArray<string>;" in config
    )
    # The API file's own declarations are kept, its generic db and config replaced.
    assert "declare const storage: Readonly<PluginStorage>;" in text
    assert "type PluginConfig = Readonly<Record<string, unknown>>" not in text
    assert "query<R extends Row = Row>" not in text


def test_plugin_types_without_grants_or_schema(greeter: Plugin) -> None:
    text = typegen.plugin_types(greeter)
    assert "type PluginConfig = Readonly<Record<string, unknown>>;" in text
    assert "interface GrantedModels {\n}" in text
    assert "type GrantedModel = never;" in text
    # The demo site declares greet (project/demo/plugin_hooks.py).
    assert "  greet: (name: string) => HookResult<string>;\n}" in text


def test_a_plugin_implementing_no_declared_hook(make_plugin: Callable[..., Plugin]) -> None:
    text = typegen.plugin_types(make_plugin("const plugin = { zzz() {} };", slug="z"))
    assert "interface DeclaredHooks {\n}" in text
    assert 'that the site does not declare (typed as any function): "zzz"' in text


def test_grants_on_models_no_longer_exposed_are_listed_not_typed(notes: Plugin) -> None:
    with exposing(DEMO_EXPOSURE[1]):
        text = typegen.plugin_types(notes)
    assert 'no longer exposes (every call on them is refused): "auth.User"' in text
    assert "AuthUserRow" not in text
    assert "DbRelated<" not in text.split("interface GrantedModels", 1)[0].split('// "demo.Note"', 1)[1]


# -- the command and the admin -----------------------------------------------------------------


def test_types_command_prints_or_writes_the_file(notes: Plugin, tmp_path: Path) -> None:
    code, out, err = run("types", "notes")
    assert (code, err) == (0, "")
    assert out == typegen.plugin_types(notes)
    target = tmp_path / "notes.d.ts"
    code, out, _ = run("types", "notes", "-o", str(target))
    assert code == 0 and out == f"Wrote the types of notes to {target}\n"
    assert target.read_text() == typegen.plugin_types(notes)


def test_types_command_unknown_slug_or_unwritable_file(notes: Plugin, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match="no plugin 'missing' is installed"):
        call_command("plugins", "types", "missing")
    with pytest.raises(CommandError, match="cannot write"):
        call_command("plugins", "types", "notes", "-o", str(tmp_path / "no-such-dir" / "x.d.ts"))


def _staff(perms: list[str]) -> User:
    user = User.objects.create_user("staff", password="pw", is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(content_type__app_label="plugins_app", codename__in=perms))
    return user


def test_admin_download_needs_the_view_permission(client, notes: Plugin) -> None:
    url = reverse("admin:plugins_app_plugin_types", args=[notes.pk])
    change = reverse("admin:plugins_app_plugin_change", args=[notes.pk])
    client.force_login(_staff(["view_plugin"]))
    assert f'href="{url}" id="plugin-types-button"' in client.get(change).content.decode()
    response = client.get(url)
    assert response.status_code == 200
    assert response["Content-Disposition"] == 'attachment; filename="notes.d.ts"'
    assert response["Content-Type"].startswith("application/typescript")
    assert response.content.decode() == typegen.plugin_types(notes)

    client.force_login(_staff_without_view())
    assert client.get(url).status_code == 403


def _staff_without_view() -> User:
    user = User.objects.create_user("other", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_delivery"))
    return user


def test_admin_download_of_a_missing_plugin_is_404(admin_client, db: None) -> None:
    assert admin_client.get(reverse("admin:plugins_app_plugin_types", args=[999])).status_code == 404


# -- tsc ----------------------------------------------------------------------------------------


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("NODE_TESTS") == "required":
        pytest.fail(f"{reason} (NODE_TESTS=required)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def tsc() -> list[str]:
    """The command line of TypeScript's tsc, installed once from the npm registry into
    ~/.cache/plugins_app-tests/ (never into the repository)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        _skip_or_fail("node and npm are needed to run tsc")
    cache = Path.home() / ".cache" / "plugins_app-tests" / f"typescript-{TYPESCRIPT_VERSION}"
    script = cache / "node_modules" / "typescript" / "bin" / "tsc"
    if not script.exists():
        # Install beside the cache and rename: a concurrent session never sees half an install.
        staging = cache.with_name(f"{cache.name}.{os.getpid()}.tmp")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        result = subprocess.run(
            [
                npm,
                "install",
                "--prefix",
                str(staging),
                "--no-audit",
                "--no-fund",
                "--no-save",
                f"typescript@{TYPESCRIPT_VERSION}",
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if result.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            _skip_or_fail(f"npm install typescript@{TYPESCRIPT_VERSION} failed: {result.stderr.strip()[-500:]}")
        try:
            staging.rename(cache)
        except OSError:  # installed meanwhile by another session
            shutil.rmtree(staging, ignore_errors=True)
    version = json.loads((cache / "node_modules" / "typescript" / "package.json").read_text())["version"]
    assert version == TYPESCRIPT_VERSION
    return [node, str(script)]


COMPILER_OPTIONS = {
    "strict": True,
    "noEmit": True,
    "lib": ["es2023"],
    "types": [],
    "target": "es2022",
    "module": "es2022",
    "moduleResolution": "bundler",
    "allowJs": True,
    "checkJs": True,
}
ERROR_LINE = re.compile(r"^(?P<file>.+?)\((?P<line>\d+),(?P<col>\d+)\): error (?P<code>TS\d+): (?P<message>.*)$")


def _expected_error_lines(path: Path) -> set[int]:
    return {n for n, line in enumerate(path.read_text().splitlines(), 1) if "// tsc-error" in line}


def _doc_examples() -> dict[str, str]:
    """The examples of docs/plugin-authors.md's "Types for your plugin", as sample files."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "plugin-authors.md").read_text()
    section = text.split("## Types for your plugin", 1)[1].split("\n## ", 1)[0]
    blocks = dict(re.findall(r"```(javascript|typescript)\n(.*?)```", section, re.S))
    return {"docs-script.js": blocks["javascript"], "docs-module.ts": blocks["typescript"]}


def _check(
    tsc: list[str], tmp_path: Path, projects: dict[str, tuple[str, list[str]]]
) -> dict[str, dict[int, list[str]]]:
    """Type-check each project (its .d.ts text and sample files) in one tsc run; return the
    errors by sample file name and line."""
    docs = _doc_examples()
    for name, (types, samples) in projects.items():
        folder = tmp_path / name
        folder.mkdir()
        (folder / "plugin.d.ts").write_text(types)
        for sample in samples:
            if sample in docs:
                (folder / sample).write_text(docs[sample])
            else:
                shutil.copy(SAMPLES / sample, folder / sample)
        config = {"compilerOptions": COMPILER_OPTIONS, "files": ["plugin.d.ts", *samples]}
        (folder / "tsconfig.json").write_text(json.dumps(config))
    result = subprocess.run(
        [*tsc, "-b", *projects, "--pretty", "false"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    errors: dict[str, dict[int, list[str]]] = {}
    for line in result.stdout.splitlines():
        match = ERROR_LINE.match(line)
        if match:
            file = Path(match["file"]).name
            errors.setdefault(file, {}).setdefault(int(match["line"]), []).append(
                f"{match['code']}: {match['message']}"
            )
        elif line.strip() and not line.startswith(" "):
            pytest.fail(f"unexpected tsc output: {line}\n{result.stdout}")
    # tsc -b exits 1 or 2 when it reports errors (whether or not it would have emitted).
    assert (result.returncode != 0) == bool(errors), result.stdout + result.stderr
    return errors


@pytest.fixture
def hostile(make_plugin: Callable[..., Plugin], catalogue: None) -> Iterator[Plugin]:
    name = 'x"; declare const injected: number; //*/'
    other = "y\u2028declare const injected: 1; /*"  # U+2028 ends a // comment; hook names may hold it
    schema = {"type": "object", "properties": {HOSTILE: {"enum": [HOSTILE], "description": HOSTILE}}}
    spec = {
        "name": name,
        "kind": "action",
        "description": HOSTILE,
        "args": [{"title": "a", "type": "object", "properties": {HOSTILE: {"type": "string", "description": HOSTILE}}}],
    }
    with declaring(spec):
        yield make_plugin(
            f"const plugin = {{ {json.dumps(name)}() {{}}, {json.dumps(other)}() {{}} }};",
            slug="hostile",
            config_schema=schema,
        )


@pytest.mark.node
def test_tsc_accepts_good_samples_and_rejects_type_errors(
    tsc: list[str], tmp_path: Path, notes: Plugin, greeter: Plugin, hostile: Plugin
) -> None:
    types = typegen.plugin_types(notes)
    projects = {
        # Scripts declare a global `plugin` each: one project per script.
        "notes-js": (types, ["notes.js"]),
        "notes-ts": (types, ["notes.ts"]),
        "docs-script": (types, ["docs-script.js"]),
        "modules": (types, ["notes-module.ts", "notes-module.mjs", "bad-module.mjs", "docs-module.ts"]),
        "bad-hooks": (types, ["bad-hooks.ts"]),
        "bad-db": (types, ["bad-db.ts", "bad-config.ts"]),
        "bare": (typegen.plugin_types(greeter), ["bare.ts"]),
        "hostile": (typegen.plugin_types(hostile), ["hostile.ts"]),
        "api": (typegen.API_FILE.read_text(), []),  # plugin-api.d.ts alone, as editors use it
    }
    errors = _check(tsc, tmp_path, projects)
    assert "plugin.d.ts" not in errors  # every generated file, and plugin-api.d.ts, compiles
    mismatches = {}
    for _types, samples in projects.values():
        for sample in samples:
            expected = _expected_error_lines(SAMPLES / sample) if (SAMPLES / sample).exists() else set()
            found = errors.get(sample, {})
            if set(found) != expected:
                unexpected = {n: found[n] for n in sorted(set(found) - expected)}
                mismatches[sample] = {
                    "unexpected errors": unexpected,
                    "lines not rejected": sorted(expected - set(found)),
                }
    assert not mismatches
    for sample in ("notes.js", "notes.ts", "notes-module.ts", "notes-module.mjs"):
        assert not _expected_error_lines(SAMPLES / sample)
    assert set(_doc_examples()) <= {s for _t, samples in projects.values() for s in samples}
