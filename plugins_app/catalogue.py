"""The hook catalogue: the hooks this site calls, declared in Python.

A site declares each hook it calls (its name, kind, arguments and return value as JSON
Schema, a description), so that plugin authors can see what to implement, saving a plugin
can warn about misspelt hooks, and types can be generated for plugin authors::

    from plugins_app.catalogue import declare_hook

    declare_hook(
        "noteSaved",
        kind="action",
        args=[{"title": "note", "type": "object", "properties": {"id": {"type": "integer"}}}],
        description="A note was saved.",
    )

Public interface (stable; ``plugins_app`` itself, the admin and the type generator use it):

- :func:`declare_hook` declares a hook and returns its :class:`HookSpec`. Declaring the
  same name again with the same spec returns the existing spec; with a different spec it
  raises :class:`HookDeclarationError`.
- :func:`declaring` is a context manager for tests: hooks declared inside it (through its
  arguments or :func:`declare_hook`) are forgotten on exit.
- :func:`hooks` returns a read-only snapshot ``{name: HookSpec}`` in declaration order;
  :func:`get` returns one spec or ``None``.
- :func:`save_warnings` lists what is worth telling whoever saves a plugin: hooks it
  defines that the site never declares (with a "did you mean"), and declared hooks it
  defines with more parameters than the site passes.
- :class:`HookSpec` is a frozen dataclass:

  - ``name`` (str): the hook's name, as plugins define it (``plugin.noteSaved``).
  - ``kind`` (str): one of :data:`KINDS`:

    - ``"action"``: called with :func:`plugins_app.hooks.do_action` on every enabled plugin
      that defines it, for its side effects; ``returns`` describes what each plugin returns
      (usually ``None``: nothing is expected).
    - ``"filter"``: called with :func:`plugins_app.hooks.apply_filters`; the first argument
      is the value being filtered and ``returns`` is the filtered value (the same shape:
      the next plugin receives it as its first argument).
    - ``"call"``: called on one chosen plugin with :func:`plugins_app.hooks.call` or
      :func:`~plugins_app.hooks.run`, and its return value is used (the app's endpoint hook
      ``onRequest`` is one: it is neither fanned out like an action nor chained like a filter).

  - ``args`` (tuple of ``(parameter name, JSON Schema)`` pairs): the positional
    arguments, in order. For a filter the first is the filtered value.
  - ``returns`` (JSON Schema dict, or ``None``: no return value is expected).
  - ``description`` (str).
  - ``declared_by`` (str): the module that declared it (for the admin and error messages).

  Schemas are plain ``dict`` copies taken at declaration: treat them as read-only.

Whether calling an undeclared hook is allowed is the setting
``PLUGINS_APP["UNDECLARED_HOOKS"]`` (``"warn"``, ``"error"`` or ``"ignore"``; see
:func:`check_called` and docs/hooks.md). System checks are in ``checks_catalogue.py``.
"""

from __future__ import annotations

import copy
import difflib
import json
import logging
import re
import sys
import threading
import unicodedata
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType, MappingProxyType
from typing import Any, Literal

import jsonschema
from django.core.signals import setting_changed
from django.dispatch import receiver

__all__ = [
    "KINDS",
    "HookDeclarationError",
    "HookSpec",
    "UndeclaredHook",
    "check_called",
    "declare_hook",
    "declaring",
    "get",
    "hooks",
    "is_js_identifier",
    "save_warnings",
]

logger = logging.getLogger("plugins_app.catalogue")

Kind = Literal["action", "filter", "call"]
KINDS: tuple[str, ...] = ("action", "filter", "call")
Schema = Mapping[str, Any] | bool

# Hook names as the plugin model accepts them (validation._HOOK_NAME): 1-200 characters
# without control characters or lone surrogates.
_HOOK_NAME = re.compile("[^\x00-\x1f\x7f-\x9f\ud800-\udfff]{1,200}")
# Words a JavaScript parameter cannot be named (strict mode, ES2022, and TypeScript's own).
_RESERVED = frozenset(
    "await break case catch class const continue debugger default delete do else enum export extends false "
    "finally for function if implements import in instanceof interface let new null package private protected "
    "public return static super switch this throw true try typeof var void while with yield arguments eval".split()
)


class HookDeclarationError(ValueError):
    """A hook declaration is malformed, or conflicts with an earlier one of the same name."""


@dataclass(frozen=True)
class HookSpec:
    """One declared hook. See the module docstring for each field."""

    name: str
    kind: str
    args: tuple[tuple[str, Any], ...] = field(default=(), hash=False)
    returns: Any = field(default=None, hash=False)
    description: str = ""
    declared_by: str = field(default="", compare=False)

    @property
    def arg_names(self) -> tuple[str, ...]:
        """The parameter names, in order."""
        return tuple(name for name, _ in self.args)


def _char_ok(char: str, first: bool) -> bool:
    if char in "$_":
        return True
    if not first and char in "\u200c\u200d":
        return True
    category = unicodedata.category(char)
    if category in ("Lu", "Ll", "Lt", "Lm", "Lo", "Nl"):
        return True
    return not first and category in ("Mn", "Mc", "Nd", "Pc")


def is_js_identifier(name: str, *, reserved_ok: bool = True) -> bool:
    """Whether ``name`` is a JavaScript IdentifierName (no escapes), so that a plugin can
    write ``plugin.name`` and ``{ name(...) {...} }`` without quotes. ``reserved_ok=False``
    also refuses reserved words (names that cannot be a parameter)."""
    if not isinstance(name, str) or not name:
        return False
    if not all(_char_ok(c, i == 0) for i, c in enumerate(name)):
        return False
    return reserved_ok or name not in _RESERVED


def _check_schema(schema: Any, what: str) -> Any:
    if isinstance(schema, bool):
        return schema
    if not isinstance(schema, Mapping):
        raise HookDeclarationError(f"{what} must be a JSON Schema (a dict or a bool), not {type(schema).__name__}")
    schema = copy.deepcopy(dict(schema))
    try:
        json.dumps(schema, allow_nan=False)
        # The metaschema named by "$schema", else the latest draft jsonschema knows.
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        where = "/".join(str(p) for p in exc.absolute_path)
        raise HookDeclarationError(
            f"{what} is not a valid JSON Schema: {exc.message}" + (f" (at {where})" if where else "")
        ) from None
    except (TypeError, ValueError) as exc:
        raise HookDeclarationError(f"{what} is not JSON data: {exc}") from None
    return schema


def _normalize_args(name: str, args: Any) -> tuple[tuple[str, Any], ...]:
    if isinstance(args, str | bytes) or not isinstance(args, Sequence | Mapping):
        raise HookDeclarationError(
            f"hook {name!r}: args must be a sequence of JSON Schemas or a dict {{parameter name: schema}}"
        )
    if isinstance(args, Mapping):
        pairs = list(args.items())
    else:
        pairs = []
        for index, schema in enumerate(args, 1):
            title = schema.get("title") if isinstance(schema, Mapping) else None
            pairs.append((title if isinstance(title, str) and title else f"arg{index}", schema))
    result: list[tuple[str, Any]] = []
    for index, (param, schema) in enumerate(pairs, 1):
        what = f"hook {name!r}, argument {index}"
        if not is_js_identifier(param, reserved_ok=False):
            raise HookDeclarationError(
                f'{what}: parameter name {param!r} is not a JavaScript identifier (a schema\'s "title" names it)'
            )
        if any(param == seen for seen, _ in result):
            raise HookDeclarationError(f"{what}: parameter name {param!r} is used twice")
        result.append((param, _check_schema(schema, f"{what} ({param})")))
    return tuple(result)


def _caller_module() -> str:
    frame: FrameType | None = sys._getframe(2)
    while frame is not None and frame.f_globals.get("__name__") in (__name__, "contextlib"):
        frame = frame.f_back
    return str(frame.f_globals.get("__name__", "")) if frame is not None else ""


_lock = threading.Lock()
# name -> spec; replaced (never mutated) on change, so readers on the hot path need no lock.
_catalogue: Mapping[str, HookSpec] = MappingProxyType({})


def declare_hook(
    name: str,
    *,
    kind: Kind | str,
    args: Sequence[Schema] | Mapping[str, Schema] = (),
    returns: Schema | None = None,
    description: str = "",
) -> HookSpec:
    """Declare that this site calls hook ``name``; return its :class:`HookSpec`.

    ``kind``: ``"action"``, ``"filter"`` or ``"call"`` (see the module docstring).
    ``args``: one JSON Schema per positional argument (a schema's ``"title"`` names the
    parameter, else ``arg1``, ``arg2``...), or a dict ``{parameter name: schema}`` in order.
    ``returns``: JSON Schema of the return value (a filter: the filtered value), or ``None``.
    Raises :class:`HookDeclarationError` if anything is malformed (schemas are checked
    against their metaschema) or ``name`` is declared already with a different spec.
    """
    global _catalogue
    if not isinstance(name, str) or not _HOOK_NAME.fullmatch(name):
        raise HookDeclarationError(
            f"hook name {name!r} must be a string of 1 to 200 characters without control characters"
        )
    if kind not in KINDS:
        raise HookDeclarationError(f"hook {name!r}: kind must be one of {', '.join(KINDS)}, not {kind!r}")
    if not isinstance(description, str):
        raise HookDeclarationError(f"hook {name!r}: description must be a string")
    params = _normalize_args(name, args)
    if kind == "filter" and not params:
        raise HookDeclarationError(f"hook {name!r}: a filter takes at least one argument, the value it filters")
    schema = None if returns is None else _check_schema(returns, f"hook {name!r}, returns")
    spec = HookSpec(name, str(kind), params, schema, description, _caller_module())
    with _lock:
        existing = _catalogue.get(name)
        if existing is not None:
            if existing == spec:
                return existing
            raise HookDeclarationError(
                f"hook {name!r} is declared already (by {existing.declared_by or 'unknown'}) with a different spec"
            )
        _catalogue = MappingProxyType({**_catalogue, name: spec})
    return spec


def hooks() -> Mapping[str, HookSpec]:
    """Every declared hook, ``{name: HookSpec}`` in declaration order (a read-only snapshot)."""
    return _catalogue


def get(name: str) -> HookSpec | None:
    """The declaration of hook ``name``, or ``None``."""
    return _catalogue.get(name)


@contextmanager
def declaring(*specs: HookSpec | Mapping[str, Any]) -> Iterator[Mapping[str, HookSpec]]:
    """Declare hooks for the duration of a ``with`` block (for tests); on exit the
    catalogue is restored as it was, including hooks declared inside the block.

    Each of ``specs`` is a :class:`HookSpec` or a dict of :func:`declare_hook`'s arguments
    (``{"name": ..., "kind": ..., ...}``); it replaces a declaration of the same name for
    the block. Yields the catalogue as it is inside the block. Like ``override_settings``:
    not for use while other threads declare hooks.
    """
    global _catalogue
    saved = _catalogue
    try:
        for spec in specs:
            name = spec.name if isinstance(spec, HookSpec) else spec.get("name")
            with _lock:
                _catalogue = MappingProxyType({k: v for k, v in _catalogue.items() if k != name})
            if isinstance(spec, HookSpec):
                declare_hook(
                    spec.name, kind=spec.kind, args=dict(spec.args), returns=spec.returns, description=spec.description
                )
            else:
                declare_hook(**spec)
        yield _catalogue
    finally:
        with _lock:
            _catalogue = saved
        _warned.clear()


# -- calls of undeclared hooks (hooks.do_action / apply_filters) ----------------------------


class UndeclaredHook(Exception):  # noqa: N818 - named for what it reports, like HookNotFound
    """Raised by :func:`plugins_app.hooks.do_action` / ``apply_filters`` for a hook nobody
    declared, when ``PLUGINS_APP["UNDECLARED_HOOKS"]`` is ``"error"``."""


# Undeclared hook names already warned about (or ignored) in this process: later calls
# cost a set lookup. Forgotten when PLUGINS_APP changes, so that "error" applies at once.
_warned: set[str] = set()
MAX_WARNED_HOOKS = 1000  # undeclared hook names remembered (and logged) per process


def check_called(hook: str) -> None:
    """Called at the top of ``do_action``/``apply_filters``: a dict lookup when ``hook`` is
    declared; otherwise warn once per name per process, raise or ignore, per the setting."""
    if hook in _catalogue or hook in _warned:
        return
    _undeclared(hook)


@receiver(setting_changed)
def _reset(*, setting: str, **kwargs: Any) -> None:
    if setting == "PLUGINS_APP":
        _warned.clear()


def _undeclared(hook: str) -> None:
    from . import conf

    mode = conf.get("UNDECLARED_HOOKS")
    if mode == "error":
        raise UndeclaredHook(
            f"hook {hook!r} is not declared: declare it with plugins_app.catalogue.declare_hook() "
            "(PLUGINS_APP['UNDECLARED_HOOKS'] is 'error')"
        )
    if len(_warned) >= MAX_WARNED_HOOKS:
        # Hook names built from request data would grow the set without end: past the cap,
        # undeclared hooks are no longer remembered (nor logged: the log would flood).
        return
    _warned.add(hook)
    if mode != "ignore":
        logger.warning(
            "hook %r is called but not declared: declare it with plugins_app.catalogue.declare_hook() "
            "(warned once per process; see PLUGINS_APP['UNDECLARED_HOOKS'])",
            hook,
        )
        if len(_warned) == MAX_WARNED_HOOKS:
            logger.warning(
                "%d undeclared hook names seen in this process: no more are logged (hook names built "
                "from request data?)",
                MAX_WARNED_HOOKS,
            )


# -- warnings when a plugin is saved -------------------------------------------------------


def save_warnings(defined: Iterable[str], arity: Mapping[str, Any] | None = None) -> list[str]:
    """Warnings for a plugin that defines hooks ``defined`` (not errors: a plugin may define
    hooks for direct calls or a later version of the site).

    - each hook that is not declared and is close to a declared one the plugin does not
      define: "did you mean" (``noteSavd`` -> ``noteSaved``); the other undeclared hooks
      in one message;
    - each declared hook whose parameter count (``arity[name]``, its JS function's
      ``length``, as the sandbox's inspection reports it) exceeds the declared arguments.
    """
    declared = _catalogue
    defined = list(defined)
    candidates = [name for name in declared if name not in defined]
    warnings, unknown = [], []
    for name in defined:
        spec = declared.get(name)
        if spec is None:
            close = difflib.get_close_matches(name, candidates, n=1, cutoff=0.75)
            if close:
                warnings.append(
                    f"Hook {name!r} is not declared by this site, so nothing calls it: did you mean {close[0]!r}?"
                )
            else:
                unknown.append(name)
            continue
        count = (arity or {}).get(name)
        if isinstance(count, int) and not isinstance(count, bool) and count > len(spec.args):
            given = ", ".join(spec.arg_names) or "no arguments"
            warnings.append(
                f"Hook {name!r} takes {count} parameter{'s' if count != 1 else ''}, but the site passes "
                f"{len(spec.args)} ({given}): the others are always undefined."
            )
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        warnings.append(
            f"{'Hooks' if len(unknown) > 1 else 'Hook'} {names} {'are' if len(unknown) > 1 else 'is'} not declared "
            "by this site: only a direct call by name (hooks.call) would run "
            f"{'them' if len(unknown) > 1 else 'it'}. See the hook catalogue."
        )
    return warnings
