"""plugins_app.imports: the imports a source makes, found by parsing it."""

from __future__ import annotations

import pytest

from plugins_app.imports import find_imports, refusal_message, refused_imports


def specifiers(source: str) -> list[tuple[str | None, bool, int, int]]:
    return [(i.specifier, i.dynamic, i.line, i.column) for i in find_imports(source)[0]]


def test_declarations_and_calls_with_positions() -> None:
    source = (
        'import { log } from "plugin:host";\n'
        "import fs from 'node:fs';\n"
        'export { a } from "./a.js";\n'
        'export * from "b";\n'
        'import "side-effect";\n'
        "export default { f(n) { return [import(`x`), import(n), import('é')]; } };\n"
    )
    assert specifiers(source) == [
        ("plugin:host", False, 1, 21),
        ("node:fs", False, 2, 16),
        ("./a.js", False, 3, 19),
        ("b", False, 4, 15),
        ("side-effect", False, 5, 8),
        ("x", True, 6, 40),
        (None, True, 6, 53),
        ("é", True, 6, 64),
    ]
    assert find_imports(source)[1] is True


@pytest.mark.parametrize(
    "source",
    [
        "const s = \"import('x')\";",
        "// import('x')\n/* import('y') */",
        "const r = /import\\('x'\\)/;",
        "const t = `import('x') ${'import(\"y\")'}`;",
        "const o = { import: 1 }; o.import('x');",
    ],
)
def test_lookalikes_are_not_imports(source: str) -> None:
    assert find_imports(source) == ([], False)


def test_columns_count_utf16_units_like_v8() -> None:
    # "𝒳" is two UTF-16 units (four UTF-8 bytes), as V8 counts columns: the specifier
    # starts at column 29, not 27 (characters) or 31 (bytes).
    assert specifiers('const 𝒳 = 1; return import("x");')[0][3] == 29


def test_module_syntax_decides_what_a_script_may_import() -> None:
    refused, module = refused_imports('export default { f() { return import("plugin:host"); } };')
    assert (refused, module) == ([], True)
    refused, module = refused_imports('const plugin = { f() { return import("plugin:host"); } };')
    assert module is False and [i.specifier for i in refused] == ["plugin:host"]
    assert "classic script cannot import anything" in refusal_message(refused, module)
    assert refused_imports("const u = import.meta.url;")[1] is True


def test_the_message_names_the_first_few() -> None:
    source = "\n".join(f'import("m{n}");' for n in range(8))
    refused, module = refused_imports(source)
    message = refusal_message(refused, module)
    assert 'import("m0") at line 1, column 8' in message and 'import("m4")' in message
    assert "m5" not in message and "(and 3 more)" in message


def test_hostile_specifiers_are_quoted_and_cut() -> None:
    refused, module = refused_imports('import x from "a\\"b";\nimport y from "' + "z" * 300 + '";')
    message = refusal_message(refused, module)
    assert 'import of "a\\"b" at line 1' in message  # escapes: shown as written
    assert message.count("z") <= 101 and "…" in message
