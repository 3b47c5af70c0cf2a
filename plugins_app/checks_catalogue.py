"""System checks of the hook catalogue (``plugins_app.catalogue``): ids plugins_app.E060...

``declare_hook`` already refuses malformed declarations when they are made (bad kind,
invalid JSON Schema, conflicting re-declaration); these checks cover what it accepts but
a site should fix, and how the catalogue fits the rest of the configuration.
"""

from __future__ import annotations

from typing import Any

import referencing.exceptions
from django.core import checks
from jsonschema_specifications import REGISTRY as METASCHEMAS
from referencing import Resource
from referencing.jsonschema import DRAFT202012

from . import catalogue, conf

UNDECLARED_MODES = ("warn", "error", "ignore")


@checks.register()
def check_catalogue(app_configs: Any = None, **kwargs: Any) -> list[checks.CheckMessage]:
    """E060 (the setting), W060 (hook names), E061 (schema references), W061/E062 (signal bindings)."""
    errors: list[checks.CheckMessage] = []
    mode = conf.get("UNDECLARED_HOOKS")
    if mode not in UNDECLARED_MODES:
        errors.append(
            checks.Error(
                f"PLUGINS_APP['UNDECLARED_HOOKS'] must be one of {', '.join(map(repr, UNDECLARED_MODES))}, not {mode!r}.",
                id="plugins_app.E060",
            )
        )
    for spec in catalogue.hooks().values():
        if not catalogue.is_js_identifier(spec.name):
            errors.append(
                checks.Warning(
                    f"Declared hook {spec.name!r} is not a JavaScript identifier.",
                    hint='Plugins must quote it ({ "my-hook"() {...} }); prefer a name like myHook.',
                    obj=spec.declared_by or None,
                    id="plugins_app.W060",
                )
            )
        errors.extend(_check_references(spec))
    errors.extend(_check_bindings())
    return errors


def _schemas(spec: catalogue.HookSpec) -> list[tuple[str, Any]]:
    found = [(f"argument {name!r}", schema) for name, schema in spec.args]
    if spec.returns is not None:
        found.append(("returns", spec.returns))
    return found


def _check_references(spec: catalogue.HookSpec) -> list[checks.CheckMessage]:
    """E061: every ``$ref`` resolves. Checking a schema against its metaschema (done by
    ``declare_hook``) does not follow references; validating an instance does."""
    errors: list[checks.CheckMessage] = []
    for what, schema in _schemas(spec):
        if isinstance(schema, bool):
            continue
        # The draft named by "$schema", else 2020-12 (as declare_hook's validator_for).
        resource = Resource.from_contents(schema, default_specification=DRAFT202012)
        resolver = METASCHEMAS.resolver_with_root(resource)
        for ref in _refs(schema):
            try:
                resolver.lookup(ref)
            except referencing.exceptions.Unresolvable as exc:
                errors.append(
                    checks.Error(
                        f"Hook {spec.name!r}, {what}: the reference {ref!r} does not resolve ({type(exc).__name__}).",
                        hint='Only references inside the schema itself ("#/$defs/...") can be resolved: hook '
                        "schemas cannot fetch others.",
                        obj=spec.declared_by or None,
                        id="plugins_app.E061",
                    )
                )
    return errors


def _refs(node: Any, root: bool = True) -> list[str]:
    if isinstance(node, dict):
        if not root and "$id" in node:
            return []  # its references are relative to its own $id: not checked
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        for key, value in node.items():
            if key not in ("const", "enum", "default", "examples"):  # data, not schemas
                found.extend(_refs(value, False))
        return found
    if isinstance(node, list):
        return [ref for item in node for ref in _refs(item, False)]
    return []


def _check_bindings() -> list[checks.CheckMessage]:
    """W061 / E062: a hook called by a signal binding (SIGNAL_BINDINGS or ``bind()``) is
    not declared, or is declared with a kind the binding cannot call it as."""
    from . import signals  # noqa: PLC0415 - bindings import models

    errors: list[checks.CheckMessage] = []
    for binding in signals.bindings():  # invalid bindings are left out (and reported by E020...)
        expected = "filter" if binding.mode == signals.FILTER else "action"
        spec = catalogue.get(binding.hook)
        if spec is None:
            errors.append(
                checks.Warning(
                    f"The signal binding of {binding.signal_name} calls hook {binding.hook!r}, which is not declared.",
                    hint=f"Declare it: plugins_app.catalogue.declare_hook({binding.hook!r}, kind={expected!r}, ...).",
                    id="plugins_app.W061",
                )
            )
        elif spec.kind != expected:
            errors.append(
                checks.Error(
                    f"The signal binding of {binding.signal_name} calls hook {binding.hook!r} as {'a' if expected == 'filter' else 'an'} "
                    f"{expected}, but it is declared as kind {spec.kind!r}.",
                    obj=spec.declared_by or None,
                    id="plugins_app.E062",
                )
            )
    return errors
