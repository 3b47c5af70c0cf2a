"""Which imports a plugin's source makes, found by parsing it (tree-sitter's JavaScript
grammar), so that a save can refuse every import but ``"plugin:host"`` with its line and
column: static ``import``/``export ... from`` declarations, and ``import()`` calls, which
the sandbox would otherwise only refuse when a call runs them (a refused ``import()``
never settles inside a call: see docs/sandbox.md).

A parser, not a pattern: an ``import(`` inside a string, a comment, a template or a
regular expression is not an import. What parsing cannot see, an ``import()`` built at
run time (``eval``), the sandbox still refuses when it runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tree_sitter import Language, Node, Parser, Query

HOST_SPECIFIER = "plugin:host"
_MAX_REPORTED = 5


@dataclass(frozen=True)
class Import:
    """One import in a source: its specifier (None when computed at run time), whether it
    is an ``import()`` call, and where it is (1-based line and column, as V8 reports)."""

    specifier: str | None
    dynamic: bool
    line: int
    column: int
    literal: str | None = None  # the specifier as written, when it is a literal with escapes

    def describe(self) -> str:
        if self.specifier is not None:
            shown = _quoted(self.specifier)
        elif self.literal is not None:
            shown = self.literal if len(self.literal) <= 102 else self.literal[:102] + "…"
        else:
            return f"import() of a computed specifier at line {self.line}, column {self.column}"
        what = f"import({shown})" if self.dynamic else f"import of {shown}"
        return f"{what} at line {self.line}, column {self.column}"


def _quoted(text: str) -> str:
    shown = text if len(text) <= 100 else text[:100] + "…"
    return '"' + shown.replace("\\", "\\\\").replace('"', '\\"') + '"'


# The nodes that matter, found by tree-sitter itself (in C). Measured on a 130 KB bundle
# (qs): parsing ~15 ms; walking every node in Python ~35 ms more, this query ~5 ms.
_QUERY = """
(import_statement) @declaration
(export_statement) @declaration
(call_expression function: (import)) @call
(meta_property) @meta
"""


@lru_cache(maxsize=1)
def _grammar() -> tuple[Language, Query]:
    import tree_sitter_javascript
    from tree_sitter import Language, Query

    language = Language(tree_sitter_javascript.language())
    return language, Query(language, _QUERY)


def _parser() -> tuple[Parser, Query]:
    """A parser of its own for each parse (a tree-sitter parser is not to be shared between
    threads, and saves run on any request thread); the grammar and query are shared."""
    from tree_sitter import Parser

    language, query = _grammar()
    return Parser(language), query


def _string_value(node: Node) -> str | None:
    """The value of a string literal without escapes (None: escapes or not a literal)."""
    if node.type == "string":
        parts = []
        for child in node.named_children:
            if child.type != "string_fragment":
                return None  # an escape sequence: not worth decoding, refused as written
            parts.append((child.text or b"").decode("utf-8", "surrogatepass"))
        return "".join(parts)
    if node.type == "template_string" and all(c.type == "string_fragment" for c in node.named_children):
        return "".join((c.text or b"").decode("utf-8", "surrogatepass") for c in node.named_children)
    return None


def find_imports(source: str) -> tuple[list[Import], bool]:
    """Every import declaration and ``import()`` call in ``source``, in source order, and
    whether the source has module syntax (an import or export declaration, ``import.meta``:
    what makes V8 refuse it as a classic script, so the sandbox loads it as a module)."""
    from tree_sitter import QueryCursor

    parser, query = _parser()
    data = source.encode("utf-8", "surrogatepass")
    captures = QueryCursor(query).captures(parser.parse(data).root_node)
    module = bool(captures.get("declaration")) or any(
        node.children and node.children[0].type == "import" for node in captures.get("meta", ())
    )
    found: list[Import] = []
    for node in sorted([*captures.get("declaration", ()), *captures.get("call", ())], key=lambda n: n.start_byte):
        dynamic = node.type == "call_expression"
        target: Node | None
        if dynamic:
            arguments = node.child_by_field_name("arguments")
            target = arguments.named_children[0] if arguments is not None and arguments.named_children else None
        else:
            target = node.child_by_field_name("source")
            if target is None and node.type == "import_statement":
                target = next((c for c in node.named_children if c.type == "string"), None)
            if target is None:
                continue  # an export of its own declarations (or a broken import statement)
        where = target if target is not None else node
        line, byte_column = where.start_point
        prefix = data[where.start_byte - byte_column : where.start_byte]
        column = len(prefix.decode("utf-8", "surrogatepass").encode("utf-16-le", "surrogatepass")) // 2 + 1
        value = _string_value(target) if target is not None else None
        literal = None
        if value is None and target is not None and target.type in ("string", "template_string"):
            literal = (target.text or b"").decode("utf-8", "surrogatepass")
        found.append(Import(value, dynamic, line + 1, column, literal))
    return found, module


def refused_imports(source: str) -> tuple[list[Import], bool]:
    """The imports of ``source`` a plugin may not make, and whether it is a module. A
    module may import ``"plugin:host"``; a classic script has the ``host`` global instead
    and can import nothing (its ``import()`` would load the module only after the call)."""
    found, module = find_imports(source)
    return [i for i in found if not (module and i.specifier == HOST_SPECIFIER)], module


def refusal_message(refused: list[Import], module: bool) -> str:
    """One message for a save refused for its imports (the first few, with positions)."""
    shown = "; ".join(i.describe() for i in refused[:_MAX_REPORTED])
    more = f" (and {len(refused) - _MAX_REPORTED} more)" if len(refused) > _MAX_REPORTED else ""
    if module:
        return f'A plugin can import only "{HOST_SPECIFIER}": {shown}{more}.'
    return (
        f"A plugin written as a classic script cannot import anything (use the `host` global, or write an "
        f'ES module that imports "{HOST_SPECIFIER}"): {shown}{more}.'
    )
