"""TypeScript declarations generated for one plugin (``manage.py plugins types SLUG``, and
*Download types (.d.ts)* on the plugin's admin page).

The output is ``plugin-api.d.ts`` (the one source of the plugin API's globals) with two of
its regions replaced for this plugin, followed by the plugin's hooks:

- ``config`` typed from the plugin's JSON Schema (``Plugin.config_schema``), read-only;
  without a schema it stays ``Readonly<Record<string, unknown>>``: the configuration
  changes without new types, so its current values promise nothing;
- ``db`` typed from the plugin's grants: only granted models are accepted, rows have the
  readable fields, ``create``/``update`` accept only the fields granted for them, and
  conditions and ``order`` accept only readable field paths and allowed lookups;
- ``Plugin``, the type of the plugin object, with the declared hooks
  (:mod:`plugins_app.catalogue`) it implements typed from their JSON Schemas.

Every name that comes from the site (models, fields, hooks, schema properties, enum
values, descriptions) is written as a quoted string literal or inside an escaped comment,
never as raw TypeScript, so no name can inject declarations.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.db import models

from . import catalogue
from .exposure import Exposure, column, get_exposure, model_label

if TYPE_CHECKING:
    from .models import Plugin

API_FILE = Path(__file__).resolve().parent / "plugin-api.d.ts"

# Schemas nested deeper than this, and schemas past this many nodes, become `unknown`.
MAX_SCHEMA_DEPTH = 32
MAX_SCHEMA_NODES = 5000
# Relation hops followed in `where` and `order` paths (each hop is a granted relation).
MAX_RELATION_HOPS = 2

ANY_JSON = "JsonValue"
UNKNOWN = "unknown"

_ASCII_IDENTIFIER = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*\Z")
_SIMPLE_TYPE = re.compile(r"[A-Za-z_$][A-Za-z0-9_$.]*(?:\[\])*\Z")
_LINE_BREAKS = re.compile("[\r\n\u2028\u2029\x85]+")


# -- literals, names and comments -------------------------------------------------------------


def ts_string(text: str) -> str:
    """``text`` as a TypeScript string literal (JSON escaping, ASCII only)."""
    return json.dumps(str(text), ensure_ascii=True)


def ts_property_name(name: str) -> str:
    """``name`` as a property key: bare when it is a plain ASCII identifier, else quoted."""
    return name if _ASCII_IDENTIFIER.match(name) else ts_string(name)


def ts_parameter_name(name: str, fallback: str) -> str:
    """``name`` if it can be a parameter name (an ASCII identifier, not a reserved word), else ``fallback``."""
    if _ASCII_IDENTIFIER.match(name) and catalogue.is_js_identifier(name, reserved_ok=False):
        return name
    return fallback


def ts_literal(value: Any) -> str | None:
    """A JSON scalar as a TypeScript literal type, or ``None`` if it is not one."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else None
    if isinstance(value, str):
        return ts_string(value)
    return None


def doc_comment(text: str, indent: str = "") -> str:
    """A ``/** ... */`` comment holding ``text`` (which cannot end the comment early), or ``""``."""
    text = str(text).strip()
    if not text:
        return ""
    lines = [line.rstrip().replace("*/", "*\\/") for line in _LINE_BREAKS.split(text)]
    if len(lines) == 1:
        return f"{indent}/** {lines[0]} */\n"
    body = "".join(f"{indent} *{' ' + line if line else ''}\n" for line in lines)
    return f"{indent}/**\n{body}{indent} */\n"


def note_comment(text: str) -> str:
    """A plain ``/* ... */`` comment (not JSDoc: it documents no declaration), escaped like
    :func:`doc_comment`."""
    comment = doc_comment(text)
    return comment.replace("/**", "/*", 1) if comment else ""


def _union(types: Iterable[str]) -> str:
    unique = list(dict.fromkeys(types))
    if UNKNOWN in unique:
        return UNKNOWN
    if "never" in unique and len(unique) > 1:
        unique.remove("never")
    return " | ".join(unique) if unique else "never"


def _wrap(type_: str) -> str:
    """Parenthesize a type with a top-level union or intersection (or a ``readonly``
    operator), for use as one term inside another type."""
    if type_.startswith("readonly ") or _has_top_level_operator(type_):
        return f"({type_})"
    return type_


def _has_top_level_operator(type_: str) -> bool:
    """Whether ``type_`` has a ``|`` or ``&`` outside brackets, string literals and comments."""
    depth, index = 0, 0
    while index < len(type_):
        char = type_[index]
        if char == '"':  # a JSON-escaped string literal: skip to its closing quote
            index += 1
            while index < len(type_) and type_[index] != '"':
                index += 2 if type_[index] == "\\" else 1
        elif type_.startswith("/*", index):  # a comment (escaped: it holds no "*/" of its own)
            end = type_.find("*/", index + 2)
            index = len(type_) if end < 0 else end + 1
        elif char in "{[(<":
            depth += 1
        elif char in "}])>":
            depth -= 1
        elif depth == 0 and char in "|&" and type_[index - 1 : index] == " ":
            return True
        index += 1
    return False


def _array(item: str, readonly: bool) -> str:
    if _SIMPLE_TYPE.match(item):
        return f"readonly {item}[]" if readonly else f"{item}[]"
    return f"ReadonlyArray<{item}>" if readonly else f"Array<{item}>"


# -- JSON Schema -> TypeScript ------------------------------------------------------------------


class _SchemaConverter:
    """Renders one JSON Schema (with its local ``$ref`` targets) as a TypeScript type."""

    def __init__(self, root: Any, readonly: bool) -> None:
        self.root = root
        self.readonly = readonly
        self.nodes = 0
        self.refs: list[str] = []

    def convert(self, schema: Any, indent: str = "", depth: int = 0) -> str:
        self.nodes += 1
        if depth > MAX_SCHEMA_DEPTH or self.nodes > MAX_SCHEMA_NODES:
            return UNKNOWN
        if schema is True:
            return ANY_JSON
        if schema is False:
            return "never"
        if not isinstance(schema, Mapping):
            return UNKNOWN
        if "$ref" in schema:
            return self._ref(schema["$ref"], indent, depth)
        if "const" in schema:
            return self.value_type(schema["const"], indent, depth)
        if "enum" in schema:
            values = schema["enum"]
            if not isinstance(values, list):
                return UNKNOWN
            return _union(self.value_type(v, indent, depth) for v in values)
        parts: list[str] = []
        base = self._typed(schema, indent, depth)
        if base is not None:
            parts.append(base)
        for keyword in ("anyOf", "oneOf"):
            options = schema.get(keyword)
            if isinstance(options, list) and options:
                parts.append(_union(self.convert(s, indent, depth + 1) for s in options))
        all_of = schema.get("allOf")
        if isinstance(all_of, list):
            parts.extend(self.convert(s, indent, depth + 1) for s in all_of)
        parts = [p for p in parts if p != ANY_JSON] or ([ANY_JSON] if not _untranslatable(schema) else [UNKNOWN])
        type_ = parts[0] if len(parts) == 1 else " & ".join(_wrap(p) for p in dict.fromkeys(parts))
        if schema.get("nullable") is True and type_ not in (ANY_JSON, UNKNOWN, "null"):
            type_ = _union([type_, "null"])
        return type_

    def _ref(self, ref: Any, indent: str, depth: int) -> str:
        if not isinstance(ref, str) or not ref.startswith("#") or ref in self.refs:
            return UNKNOWN  # remote, malformed or recursive: not expanded
        target: Any = self.root
        for token in ref[1:].split("/")[1:] if ref != "#" else []:
            token = token.replace("~1", "/").replace("~0", "~")
            if isinstance(target, Mapping) and token in target:
                target = target[token]
            elif isinstance(target, list) and token.isdigit() and int(token) < len(target):
                target = target[int(token)]
            else:
                return UNKNOWN
        self.refs.append(ref)
        try:
            return self.convert(target, indent, depth + 1)
        finally:
            self.refs.pop()

    def _typed(self, schema: Mapping[str, Any], indent: str, depth: int) -> str | None:
        types = schema.get("type")
        if isinstance(types, str):
            types = [types]
        if not isinstance(types, list):
            if any(k in schema for k in ("properties", "additionalProperties", "patternProperties", "required")):
                types = ["object"]
            elif any(k in schema for k in ("items", "prefixItems")):
                types = ["array"]
            else:
                return None
        rendered = []
        for name in types:
            if name == "null":
                rendered.append("null")
            elif name == "boolean":
                rendered.append("boolean")
            elif name == "string":
                rendered.append("string")
            elif name in ("number", "integer"):
                rendered.append("number")
            elif name == "array":
                rendered.append(self._array(schema, indent, depth))
            elif name == "object":
                rendered.append(self._object(schema, indent, depth))
            else:
                rendered.append(UNKNOWN)
        return _union(rendered)

    def _array(self, schema: Mapping[str, Any], indent: str, depth: int) -> str:
        prefix = schema.get("prefixItems")
        items = schema.get("items")
        rest = items
        if prefix is None and isinstance(items, list):  # draft 4-7 tuples
            prefix, rest = items, schema.get("additionalItems", True)
        if isinstance(prefix, list):
            minimum = schema.get("minItems", 0)
            minimum = minimum if isinstance(minimum, int) else 0
            elements = []
            for index, item in enumerate(prefix):
                element = self.convert(item, indent, depth + 1)
                elements.append(element if index < minimum else f"{_wrap(element)}?")
            if rest is not False:
                rest_type = ANY_JSON if rest in (None, True) else self.convert(rest, indent, depth + 1)
                elements.append(f"...{_array(rest_type, False)}")
            tuple_ = f"[{', '.join(elements)}]"
            return f"readonly {tuple_}" if self.readonly else tuple_
        item = ANY_JSON if items in (None, True) else self.convert(items, indent, depth + 1)
        return _array(item, self.readonly)

    def _object(self, schema: Mapping[str, Any], indent: str, depth: int) -> str:
        properties = schema.get("properties")
        properties = properties if isinstance(properties, Mapping) else {}
        required = schema.get("required")
        required = {r for r in required if isinstance(r, str)} if isinstance(required, list) else set()
        additional = schema.get("additionalProperties")
        patterns = schema.get("patternProperties")
        inner = indent + "  "
        ro = "readonly " if self.readonly else ""
        lines: list[str] = []
        value_types: list[str] = []
        for name, sub in properties.items():
            type_ = self.convert(sub, inner, depth + 1)
            value_types.append(type_)
            description = sub.get("description", "") if isinstance(sub, Mapping) else ""
            lines.append(doc_comment(description, inner) if isinstance(description, str) else "")
            optional = "" if name in required else "?"
            lines.append(f"{inner}{ro}{ts_property_name(name)}{optional}: {type_};\n")
        for name in sorted(required - set(properties)):
            lines.append(f"{inner}{ro}{ts_property_name(name)}: {ANY_JSON};\n")
            value_types.append(ANY_JSON)
        extra: list[str] = []
        if isinstance(patterns, Mapping):
            extra.extend(self.convert(s, inner, depth + 1) for s in patterns.values())
        if additional is not None and additional is not False:
            extra.append(ANY_JSON if additional is True else self.convert(additional, inner, depth + 1))
        elif additional is None and not properties and not extra:
            extra.append(ANY_JSON)  # a plain {"type": "object"}: any keys
        if extra:
            # The index signature must admit every declared property's type as well.
            lines.append(f"{inner}{ro}[key: string]: {_union([*extra, *value_types])};\n")
        if not lines:
            return "Record<string, never>"
        return "{\n" + "".join(lines) + indent + "}"

    def value_type(self, value: Any, indent: str = "", depth: int = 0) -> str:
        """The exact type of a JSON value (``const``/``enum``)."""
        literal = ts_literal(value)
        if literal is not None:
            return literal
        self.nodes += 1
        if depth > MAX_SCHEMA_DEPTH or self.nodes > MAX_SCHEMA_NODES:
            return UNKNOWN
        ro = "readonly " if self.readonly else ""
        if isinstance(value, list):
            return f"{ro}[{', '.join(self.value_type(v, indent, depth + 1) for v in value)}]"
        if isinstance(value, Mapping):
            inner = indent + "  "
            lines = "".join(
                f"{inner}{ro}{ts_property_name(str(k))}: {self.value_type(v, inner, depth + 1)};\n"
                for k, v in value.items()
            )
            return "{\n" + lines + indent + "}" if lines else "Record<string, never>"
        return UNKNOWN


def _untranslatable(schema: Mapping[str, Any]) -> bool:
    """Whether the schema constrains the type with keywords this generator does not translate."""
    return any(k in schema for k in ("not", "if", "then", "else", "$dynamicRef", "$recursiveRef"))


def schema_to_ts(schema: Any, *, readonly: bool = False, indent: str = "") -> str:
    """The TypeScript type of the JSON values ``schema`` accepts.

    Objects (``properties``, ``required``, ``additionalProperties``, ``patternProperties``),
    arrays and tuples (``items``, ``prefixItems``, ``minItems``), ``enum``, ``const``,
    ``anyOf``/``oneOf`` (unions), ``allOf`` (intersections), ``type`` lists, OpenAPI's
    ``nullable`` and local ``$ref`` are translated; an empty schema is ``JsonValue``;
    what cannot be translated (``not``, ``if``, recursive or remote ``$ref``, too deep)
    becomes ``unknown``. An object with ``properties`` and no ``additionalProperties`` is
    closed (its other keys cannot be read without a cast). ``readonly`` marks every
    property and array read-only (for the frozen ``config``).
    """
    return _SchemaConverter(schema, readonly).convert(schema, indent)


# -- Django model fields -----------------------------------------------------------------------

_NUMBER_FIELDS = frozenset(
    {
        "AutoField",
        "BigAutoField",
        "SmallAutoField",
        "IntegerField",
        "BigIntegerField",
        "SmallIntegerField",
        "PositiveIntegerField",
        "PositiveBigIntegerField",
        "PositiveSmallIntegerField",
        "FloatField",
    }
)
_STRING_FIELDS = frozenset(
    {
        "CharField",
        "TextField",
        "SlugField",
        "EmailField",
        "URLField",
        "GenericIPAddressField",
        "IPAddressField",
        "FilePathField",
        "CommaSeparatedIntegerField",
        "FileField",
        "ImageField",
        "UUIDField",
        "DateField",
        "DateTimeField",
        "TimeField",
    }
)


@dataclass(frozen=True)
class FieldTypes:
    """The TypeScript types of one model field as plugins meet it."""

    read: str  # in rows (db.get/query/create), as exposure.json_value encodes it
    write: str  # accepted by db.create/update
    compare: str  # what conditions compare it with (``write`` without ``null``)
    required: bool  # db.create must set it (no default, not null, no empty value)


def field_types(field_: models.Field[Any, Any]) -> FieldTypes:
    """The types of ``field_`` in rows and in values: dates, times, decimals and UUIDs are
    strings (decimals may be written as numbers too), durations are read as seconds and
    written as strings (``"1:30:00"``, ``"P1D"``), JSON fields read as any JSON value but
    take only scalars, binary fields are ``null``; a foreign key is its target's primary key."""
    target_field = getattr(field_, "target_field", None) if field_.is_relation else None
    if target_field is not None:
        target = field_types(target_field)
        read, write = target.read, target.write
    else:
        kind = field_.get_internal_type()
        if kind in _NUMBER_FIELDS:
            read = write = "number"
        elif kind == "DecimalField":
            read, write = "string", "string | number"
        elif kind in ("BooleanField", "NullBooleanField"):
            read = write = "boolean"
        elif kind in _STRING_FIELDS:
            read = write = "string"
        elif kind == "DurationField":
            read, write = "number", "string"
        elif kind == "BinaryField":
            read = write = "null"
        else:  # JSONField, or a custom field (exposure.json_value() makes its values JSON)
            read, write = ANY_JSON, "JsonScalar"
        choices = _choice_literals(field_)
        if choices:
            read = write = _union(choices)
    compare = write
    if field_.null:
        read, write = _union([read, "null"]), _union([write, "null"])
    required = not (
        field_.null
        or field_.has_default()
        or field_.empty_strings_allowed
        or field_.primary_key
        or getattr(field_, "auto_now", False)
        or getattr(field_, "auto_now_add", False)
    )
    return FieldTypes(read, write, compare, required)


def _choice_literals(field_: models.Field[Any, Any]) -> list[str]:
    if not field_.choices:
        return []
    literals = [ts_literal(value) for value, _label in field_.flatchoices]
    if any(lit is None for lit in literals) or not literals:
        return []
    if field_.blank and field_.empty_strings_allowed:
        literals.append('""')
    return [lit for lit in literals if lit is not None]


# -- the plugin's models -----------------------------------------------------------------------


@dataclass
class _GrantedModel:
    label: str
    name: str  # TypeScript name stem, e.g. "DemoNote"
    exposure: Exposure
    read: list[str]
    create: list[str]
    update: list[str]
    can_delete: bool
    prefixes: list[tuple[str, str]] = field(default_factory=list)  # (path, target label)

    def get_field(self, name: str) -> models.Field[Any, Any]:
        return column(self.exposure.model, name)


def _type_stem(label: str, taken: set[str]) -> str:
    stem = "".join(p[:1].upper() + p[1:] for p in re.split(r"[^A-Za-z0-9]+", label) if p)
    if not stem or stem[0].isdigit():
        stem = "Model" + stem
    candidate, counter = stem, 2
    while candidate in taken:
        candidate, counter = f"{stem}{counter}", counter + 1
    taken.add(candidate)
    return candidate


def _granted_models(plugin: Plugin, taken: set[str]) -> tuple[dict[str, _GrantedModel], list[str]]:
    """The plugin's usable grants by canonical label, and the labels of grants on models no
    longer exposed (which the host refuses)."""
    result: dict[str, _GrantedModel] = {}
    stale: list[str] = []
    for grant in plugin.grants.order_by("model"):
        exposure = get_exposure(grant.model)
        if exposure is None:
            stale.append(grant.model)
            continue
        result[exposure.label] = _GrantedModel(
            label=exposure.label,
            name=_type_stem(exposure.label, taken),
            exposure=exposure,
            read=sorted(exposure.read & set(grant.read or ())),
            create=sorted(exposure.write & set(grant.create or ())),
            update=sorted(exposure.write & set(grant.update or ())),
            can_delete=bool(grant.can_delete),
        )
    for model in result.values():
        model.prefixes = _relation_prefixes(model, result)
    return result, stale


def _relation_prefixes(model: _GrantedModel, granted: Mapping[str, _GrantedModel]) -> list[tuple[str, str]]:
    """Paths of relations the host lets this plugin follow from ``model`` (each hop a readable
    field exposed as a relation, into a granted model), up to MAX_RELATION_HOPS hops."""
    found: list[tuple[str, str]] = []
    frontier = [("", model)]
    for _hop in range(MAX_RELATION_HOPS):
        next_frontier = []
        for prefix, current in frontier:
            for name in current.read:
                if name not in current.exposure.relations:
                    continue
                target = granted.get(model_label(current.get_field(name).related_model))  # type: ignore[arg-type]  # a relation: never None
                if target is None:
                    continue
                path = f"{prefix}__{name}" if prefix else name
                found.append((path, target.label))
                next_frontier.append((path, target))
        frontier = next_frontier
    return found


# -- rendering ---------------------------------------------------------------------------------

_DB_HELPERS = """\
/** Conditions on the fields of `F` (field name to the type it is compared with), with lookups `L`. */
type DbConditions<F, L extends string> =
  { [K in keyof F]?: F[K] | null } &
  { [K in keyof F as K extends string ? `${K}__${L & ("exact" | "iexact")}` : never]?: F[K] | null } &
  { [K in keyof F as K extends string ? `${K}__${L & ("gt" | "gte" | "lt" | "lte")}` : never]?: F[K] } &
  { [K in keyof F as K extends string ? `${K}__${L & "in"}` : never]?: readonly F[K][] } &
  { [K in keyof F as K extends string ? `${K}__${L & "range"}` : never]?: readonly [F[K], F[K]] } &
  { [K in keyof F as K extends string ? `${K}__${L & "isnull"}` : never]?: boolean } &
  { [K in keyof F as K extends string
      ? `${K}__${Exclude<L, "exact" | "iexact" | "gt" | "gte" | "lt" | "lte" | "in" | "range" | "isnull">}`
      : never]?: string };

/** Conditions `C` on a related model, reached through relation path `P`. */
type DbRelated<P extends string, C> = { [K in keyof C as K extends string ? `${P}__${K}` : never]?: C[K] };

/** Field paths `K` reached through relation path `P`. */
type DbRelatedPath<P extends string, K> = K extends string ? `${P}__${K}` : never;

/** A sort key: a field path, `-` first for descending. */
type DbOrder<K> = K extends string ? K | `-${K}` : never;
"""

_DB_INTERFACE = """\
/** Options of {@link PluginDb.query} on model `M`, returning fields `F`. Unknown keys are a `TypeError`. */
interface ModelQueryOptions<M extends GrantedModel, F> {
  /** Only rows matching all of these conditions. */
  where?: GrantedModels[M]["where"];
  /** Leave out rows matching all of these conditions. */
  exclude?: GrantedModels[M]["where"];
  /** Field path(s) to sort by, `-` prefix for descending. Default: primary key. */
  order?: DbOrder<GrantedModels[M]["path"]> | readonly DbOrder<GrantedModels[M]["path"]>[];
  /** Maximum number of rows (non-negative integer). Default 100. */
  limit?: number;
  /** Rows to skip first (non-negative integer). Default 0. */
  offset?: number;
  /** Fields to return. Default: every readable field. */
  fields?: readonly F[];
}

/**
 * The `db` global, typed for the models granted to this plugin: a model that is not
 * granted, a field it may not read, set or update, and a lookup that is not allowed are
 * type errors. Every function is synchronous. Model labels are written as the site
 * exposes them (the host also accepts other letter cases; these types do not).
 */
interface PluginDb {
  /** Rows of `model` (the fields asked for with `fields`, else every readable one). */
  query<M extends GrantedModel, F extends keyof GrantedModels[M]["row"] = keyof GrantedModels[M]["row"]>(
    model: M, options?: ModelQueryOptions<M, F>,
  ): Pick<GrantedModels[M]["row"], F>[];
  /** The one row matching `where`, or `null`; `MultipleObjectsReturned` if several match. */
  get<M extends GrantedModel>(model: M, where?: GrantedModels[M]["where"]): GrantedModels[M]["row"] | null;
  /** The number of rows matching `where`. */
  count<M extends GrantedModel>(model: M, where?: GrantedModels[M]["where"]): number;
  /** Creates one row from `values` (fields granted for create); returns it with the readable fields. */
  create<M extends CreatableModel>(model: M, values: GrantedModels[M]["create"]): GrantedModels[M]["row"];
  /** Sets `values` (fields granted for update) on the rows matching `where` (non-empty); returns how many. */
  update<M extends UpdatableModel>(
    model: M, where: GrantedModels[M]["where"], values: GrantedModels[M]["update"],
  ): number;
  /** Deletes the rows matching `where` (non-empty); returns how many. */
  delete<M extends DeletableModel>(model: M, where: GrantedModels[M]["where"]): number;
}
"""


def _interface(name: str, doc: str, members: list[tuple[str, str, bool]]) -> str:
    out = doc_comment(doc) + f"interface {name} {{\n"
    for member, type_, optional in members:
        out += f"  {ts_property_name(member)}{'?' if optional else ''}: {type_};\n"
    return out + "}\n"


def _object_type(members: list[tuple[str, str, bool]]) -> str:
    if not members:
        return "Record<string, never>"
    return "{ " + " ".join(f"{ts_property_name(m)}{'?' if o else ''}: {t};" for m, t, o in members) + " }"


def _lookups(model: _GrantedModel) -> str:
    return _union(ts_string(lookup) for lookup in sorted(model.exposure.lookups))


def _model_declarations(model: _GrantedModel, granted: Mapping[str, _GrantedModel]) -> str:
    label = ts_string(model.label)
    types = {name: field_types(model.get_field(name)) for name in {*model.read, *model.create, *model.update}}
    row = [(n, types[n].read, False) for n in model.read]
    filters = [(n, types[n].compare, False) for n in model.read]
    create = [(n, types[n].write, not types[n].required) for n in model.create]
    update = [(n, types[n].write, True) for n in model.update]
    name = model.name
    where = [f"DbConditions<{name}Filter, {_lookups(model)}>"]
    paths = [f"keyof {name}Filter"]
    for path, target_label in model.prefixes:
        target = granted[target_label]
        where.append(f"DbRelated<{ts_string(path)}, DbConditions<{target.name}Filter, {_lookups(target)}>>")
        paths.append(f"DbRelatedPath<{ts_string(path)}, keyof {target.name}Filter>")
    return (
        f"\n// {label}\n"
        + _interface(f"{name}Row", f"A row of {label} as this plugin reads it (db.get, db.query, db.create).", row)
        + _interface(
            f"{name}Filter",
            f"The readable fields of {label} and the type each is compared with in conditions.",
            filters,
        )
        + doc_comment(f"Conditions (where, exclude) on {label}: readable field paths, with the lookups allowed.")
        + f"type {name}Where = {' & '.join(where)};\n"
        + doc_comment(f"Field paths of {label} that conditions and order may use.")
        + f"type {name}Path = {' | '.join(paths)};\n"
        + _interface(f"{name}Create", f"Values db.create may set on {label} (fields granted for create).", create)
        + _interface(f"{name}Update", f"Values db.update may set on {label} (fields granted for update).", update)
    )


def db_declarations(plugin: Plugin, taken: set[str] | None = None) -> str:
    """The typed ``PluginDb`` of ``plugin`` and the types of its granted models."""
    granted, stale = _granted_models(plugin, set() if taken is None else taken)
    out = _DB_HELPERS
    for model in granted.values():
        out += _model_declarations(model, granted)
    map_members = [
        (
            m.label,
            f"{{ row: {m.name}Row; where: {m.name}Where; path: {m.name}Path; "
            f"create: {m.name}Create; update: {m.name}Update }}",
            False,
        )
        for m in granted.values()
    ]
    out += "\n" + _interface("GrantedModels", "The models granted to this plugin, by label.", map_members)
    for alias, doc, selected in (
        ("GrantedModel", "Labels of the models this plugin may read.", list(granted.values())),
        ("CreatableModel", "Labels of the models it may create rows of.", [m for m in granted.values() if m.create]),
        ("UpdatableModel", "Labels of the models it may update rows of.", [m for m in granted.values() if m.update]),
        (
            "DeletableModel",
            "Labels of the models it may delete rows of.",
            [m for m in granted.values() if m.can_delete],
        ),
    ):
        out += doc_comment(doc) + f"type {alias} = {_union(ts_string(m.label) for m in selected)};\n"
    if stale:
        out += note_comment(
            "Grants on models the site no longer exposes (every call on them is refused): "
            + ", ".join(ts_string(s) for s in stale)
        )
    return out + "\n" + _DB_INTERFACE


def config_declarations(plugin: Plugin) -> str:
    """``type PluginConfig``: from the plugin's JSON Schema, else any JSON object."""
    schema = plugin.config_schema
    if isinstance(schema, Mapping) and schema:
        doc = "The plugin's configuration, typed from its JSON Schema (deeply read-only)."
        return doc_comment(doc) + f"type PluginConfig = {schema_to_ts(schema, readonly=True)};\n"
    doc = "The plugin's configuration: it has no JSON Schema, so any JSON object."
    return doc_comment(doc) + "type PluginConfig = Readonly<Record<string, unknown>>;\n"


def _hook_signature(spec: catalogue.HookSpec) -> str:
    params = []
    for index, (name, schema) in enumerate(spec.args, 1):
        params.append(f"{ts_parameter_name(name, f'arg{index}')}: {schema_to_ts(schema, indent='  ')}")
    if spec.returns is not None:
        result = schema_to_ts(spec.returns, indent="  ")
    elif spec.kind == "filter" and spec.args:
        result = schema_to_ts(spec.args[0][1], indent="  ")
    else:
        result = f"{ANY_JSON} | void"
    return f"({', '.join(params)}) => HookResult<{result}>"


def _hook_doc(spec: catalogue.HookSpec) -> str:
    lines = [spec.description.strip() or f"The {spec.kind} hook {ts_string(spec.name)}."]
    lines.append(f"Kind: {spec.kind}.")
    for index, (name, schema) in enumerate(spec.args, 1):
        description = schema.get("description") if isinstance(schema, Mapping) else None
        if isinstance(description, str) and description.strip():
            lines.append(f"@param {ts_parameter_name(name, f'arg{index}')} {description.strip()}")
    return "\n".join(lines)


def hook_declarations(plugin: Plugin) -> str:
    """``DeclaredHooks`` (the declared hooks ``plugin`` implements) and the ``Plugin`` type."""
    declared = catalogue.hooks()
    implemented = [declared[h] for h in plugin.hooks or () if h in declared]
    undeclared = [h for h in plugin.hooks or () if h not in declared]
    out = doc_comment("What a hook may return: the value, or a Promise of it (an async hook).")
    out += "type HookResult<T> = T | Promise<T>;\n\n"
    out += doc_comment(
        "The hooks the site declares (plugins_app.catalogue) that this plugin implements:\n"
        "the arguments the site passes and the value it expects back."
    )
    out += "interface DeclaredHooks {\n"
    for spec in implemented:
        out += doc_comment(_hook_doc(spec), "  ")
        out += f"  {ts_property_name(spec.name)}: {_hook_signature(spec)};\n"
    out += "}\n"
    if undeclared:
        out += note_comment(
            "Hooks of this plugin that the site does not declare (typed as any function): "
            + ", ".join(ts_string(h) for h in undeclared)
        )
    out += "\n" + _PLUGIN_TYPE
    return out


_PLUGIN_TYPE = """\
/** A function on the plugin object that is not a declared hook (a helper, or a hook nobody declared). */
type PluginFunction = { bivarianceHack(...args: unknown[]): unknown }["bivarianceHack"];

/**
 * The plugin object: `const plugin: Plugin = { ... }` in a script,
 * `export default { ... } satisfies Plugin` in a module, or in JavaScript
 * `/** @type {Plugin} *\\/ const plugin = { ... }`. Declared hooks get their parameter and
 * return types from the site's declarations; a single named export can be typed as
 * `DeclaredHooks["hookName"]`. (Clashes with the DOM typings' `Plugin`: leave out the DOM lib.)
 */
type Plugin = PluginObject & ThisType<DeclaredHooks & { [name: string]: PluginFunction }>;

/** {@link Plugin} without the type of `this` in its methods (the plugin object itself). */
interface PluginObject extends Partial<DeclaredHooks> {
  [name: string]: PluginFunction | undefined;
}
"""


def _api_source() -> str:
    return API_FILE.read_text(encoding="utf-8")


def _replace_region(text: str, region: str, replacement: str) -> str:
    start = re.search(rf"^// typegen:{region}:start\b.*\n", text, re.MULTILINE)
    end = re.search(rf"^// typegen:{region}:end\b.*\n?", text, re.MULTILINE)
    if start is None or end is None or end.start() < start.end():
        raise RuntimeError(f"{API_FILE.name} has no typegen:{region} region")
    return text[: start.start()] + replacement + text[end.end() :]


def _declared_names(text: str) -> set[str]:
    return set(
        re.findall(r"^\s*(?:declare\s+)?(?:type|interface|const|var|function)\s+([A-Za-z_$][\w$]*)", text, re.MULTILINE)
    )


def plugin_types(plugin: Plugin) -> str:
    """The ``.d.ts`` of ``plugin``: the plugin API with ``config`` and ``db`` typed for it, and
    the ``Plugin`` type with the declared hooks it implements."""
    api = _api_source()
    taken = (
        _declared_names(api)
        | _declared_names(_DB_HELPERS + _DB_INTERFACE + _PLUGIN_TYPE)
        | {
            "GrantedModels",
            "GrantedModel",
            "CreatableModel",
            "UpdatableModel",
            "DeletableModel",
            "HookResult",
            "DeclaredHooks",
            "PluginConfig",
            "PluginObject",
            "ThisType",
        }
    )
    # A name stem plus a suffix must not hit a declared name either: reserve the stems they start with.
    taken |= {
        n[: -len(s)]
        for n in set(taken)
        for s in ("Row", "Filter", "Where", "Path", "Create", "Update")
        if n.endswith(s)
    }
    header = note_comment(
        f"Types of plugin {ts_string(plugin.slug)} (version {int(plugin.version or 0)}) on this site,\n"
        "generated by plugins_app (manage.py plugins types, or the plugin's admin page).\n"
        "They change with its grants, configuration schema and the hooks the site declares:\n"
        "generate them again after such a change. Use without the DOM and Node typings."
    )
    text = _replace_region(api, "config", config_declarations(plugin))
    text = _replace_region(text, "db", db_declarations(plugin, taken))
    hooks_section = (
        "\n// ---------------------------------------------------------------------------------------\n"
        "// This plugin's hooks\n"
        "// ---------------------------------------------------------------------------------------\n\n"
        + hook_declarations(plugin)
    )
    return header + "\n" + text.rstrip("\n") + "\n" + hooks_section
