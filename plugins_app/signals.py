"""Signal bindings: which Django signals call which plugin hooks, and how.

This module only declares bindings; :mod:`plugins_app.signal_handlers` holds the
receivers that act on them. Bindings come from settings::

    PLUGINS_APP = {
        "SIGNAL_BINDINGS": [
            {"signal": "post_save", "sender": "demo.Note", "hook": "noteSaved"},
            {"signal": "pre_save", "sender": "demo.Note", "hook": "filterNote"},
            {"signal": "user_logged_in", "hook": "userLoggedIn", "mode": "background"},
            {"signal": "myapp.signals.order_paid", "hook": "orderPaid", "mode": "sync"},
        ],
    }

and/or from Python, e.g. in an ``AppConfig.ready()``::

    from plugins_app.signals import bind

    bind("post_save", "noteSaved", sender="demo.Note")

Settings are read when a signal fires, so ``override_settings`` works; bindings are
validated by system checks (``plugins_app.E020``...).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import models
from django.db.models.signals import ModelSignal
from django.dispatch import Signal
from django.utils.module_loading import import_string

from . import conf

__all__ = ["MODES", "SIGNAL_ALIASES", "Binding", "BindingError", "bind", "bindings", "bound", "unbind"]

AFTER_COMMIT = "after_commit"
SYNC = "sync"
BACKGROUND = "background"
FILTER = "filter"
MODES = (AFTER_COMMIT, SYNC, BACKGROUND, FILTER)

# Short names accepted wherever a signal's dotted path is.
SIGNAL_ALIASES = {
    "post_save": "django.db.models.signals.post_save",
    "post_delete": "django.db.models.signals.post_delete",
    "pre_save": "django.db.models.signals.pre_save",
    "user_logged_in": "django.contrib.auth.signals.user_logged_in",
}
SETTING_KEYS = frozenset({"signal", "hook", "sender", "mode", "fail_closed"})

# What a binding does when its signal fires, by signal.
KIND_MODEL = "model"  # post_save / post_delete of an exposed model: an action
KIND_FILTER = "pre_save"  # pre_save of an exposed model: a filter over the writable fields
KIND_LOGIN = "user_logged_in"
KIND_CUSTOM = "custom"  # any other (project) signal: the JSON-able kwargs


class BindingError(ImproperlyConfigured):
    """A binding that can never work; ``id`` is the system check id that reports it."""

    def __init__(self, message: str, *, id: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.id = id
        self.hint = hint


@dataclass(frozen=True, eq=False)
class Binding:
    """One signal bound to one hook name."""

    signal: Signal
    signal_name: str  # short alias for the built-in ones, else the dotted path
    hook: str
    mode: str
    kind: str
    sender: Any = None  # model signals: "app_label.ModelName"; others: None, an object or a name
    fail_closed: bool = False
    origin: str = "bind()"

    def matches(self, sender: Any) -> bool:
        spec = self.sender
        if spec is None:
            return True
        if not isinstance(spec, str):
            return sender is spec
        if isinstance(sender, str):
            return sender == spec
        if isinstance(sender, type) and issubclass(sender, models.Model):
            return f"{sender._meta.app_label}.{sender.__name__}".lower() == spec.lower()
        name = getattr(sender, "__qualname__", None)
        return name is not None and f"{getattr(sender, '__module__', '')}.{name}" == spec

    def __repr__(self) -> str:
        sender = f", sender={self.sender!r}" if self.sender is not None else ""
        return f"<Binding {self.signal_name} -> {self.hook!r}{sender} mode={self.mode} ({self.origin})>"


def _model_signals() -> dict[int, str]:
    from django.db.models import signals

    return {
        id(signals.post_save): "post_save",
        id(signals.post_delete): "post_delete",
        id(signals.pre_save): "pre_save",
    }


def resolve_signal(spec: Any) -> tuple[Signal, str]:
    """The Signal for a Signal, an alias (``"post_save"``) or a dotted path, and its name."""
    from django.contrib.auth.signals import user_logged_in

    if isinstance(spec, Signal):
        signal, name = spec, None
    elif isinstance(spec, str) and spec:
        path = SIGNAL_ALIASES.get(spec, spec)
        try:
            signal = import_string(path)
        except ImportError as exc:
            raise BindingError(
                f"signal {spec!r} cannot be imported: {exc}",
                id="plugins_app.E021",
                hint=f"Use a dotted path to a django.dispatch.Signal or one of {', '.join(SIGNAL_ALIASES)}.",
            ) from None
        if not isinstance(signal, Signal):
            raise BindingError(f"{spec!r} is not a django.dispatch.Signal", id="plugins_app.E021")
        name = path
    else:
        raise BindingError(f"signal must be a Signal or a dotted path, not {spec!r}", id="plugins_app.E021")
    known = {**_model_signals(), id(user_logged_in): "user_logged_in"}
    if id(signal) in known:
        return signal, known[id(signal)]
    if isinstance(signal, ModelSignal):
        raise BindingError(
            f"model signal {name or signal!r} is not supported",
            id="plugins_app.E021",
            hint="Model signals that can be bound: post_save, post_delete (actions) and pre_save (a filter).",
        )
    return signal, name or f"{type(signal).__module__}.{type(signal).__qualname__}"


def _kind(name: str) -> str:
    if name in ("post_save", "post_delete"):
        return KIND_MODEL
    if name == "pre_save":
        return KIND_FILTER
    if name == "user_logged_in":
        return KIND_LOGIN
    return KIND_CUSTOM


def make_binding(
    signal: Any,
    hook: Any,
    *,
    sender: Any = None,
    mode: Any = None,
    fail_closed: Any = False,
    origin: str = "bind()",
) -> Binding:
    """Validate and build a binding; raise :class:`BindingError` for what can never work.

    Whether a model sender is exposed is not checked here (exposures are discovered in
    ``AppConfig.ready`` and may change): the system checks report it, and the receiver
    skips, with a warning, a binding whose model is not exposed when the signal fires.
    """
    if not isinstance(hook, str) or not hook.strip():
        raise BindingError(f"hook must be a non-empty string, not {hook!r}", id="plugins_app.E024")
    resolved, name = resolve_signal(signal)
    kind = _kind(name)
    if mode is None:
        mode = FILTER if kind == KIND_FILTER else AFTER_COMMIT
    if mode not in MODES:
        raise BindingError(
            f"unknown mode {mode!r}", id="plugins_app.E023", hint=f"Modes: {', '.join(MODES)} (filter: pre_save only)."
        )
    if kind == KIND_FILTER and mode != FILTER:
        raise BindingError(
            f"pre_save bindings are filters; mode {mode!r} is not possible",
            id="plugins_app.E023",
            hint='Use mode "filter" (the default for pre_save), or bind post_save for an action.',
        )
    if kind != KIND_FILTER and mode == FILTER:
        raise BindingError(f'mode "filter" is only for pre_save, not {name}', id="plugins_app.E023")
    if not isinstance(fail_closed, bool):
        raise BindingError(f"fail_closed must be True or False, not {fail_closed!r}", id="plugins_app.E020")
    if fail_closed and mode != FILTER:
        raise BindingError("fail_closed is only for filter (pre_save) bindings", id="plugins_app.E023")
    if kind in (KIND_MODEL, KIND_FILTER):
        if isinstance(sender, type) and issubclass(sender, models.Model):
            sender = f"{sender._meta.app_label}.{sender.__name__}"
        if not isinstance(sender, str) or sender.count(".") != 1:
            raise BindingError(
                f'{name} bindings need sender: an exposed model ("app_label.ModelName"), not {sender!r}',
                id="plugins_app.E022",
                hint="Model signals are bound per model, and only exposed models can be bound.",
            )
    return Binding(resolved, name, hook, mode, kind, sender, fail_closed, origin)


# -- bindings from settings ----------------------------------------------------------

_settings_lock = threading.Lock()
# (the SIGNAL_BINDINGS value they were built from, the bindings). Keyed on identity,
# so a new value (override_settings, a settings change) is rebuilt on its next use.
_from_settings: tuple[Any, tuple[Binding, ...]] = (object(), ())


def setting_entries() -> Any:
    return conf.get("SIGNAL_BINDINGS")


def parse_entry(index: int, entry: Any) -> Binding:
    """Build the binding of ``SIGNAL_BINDINGS[index]``; raise :class:`BindingError`."""
    origin = f"PLUGINS_APP['SIGNAL_BINDINGS'][{index}]"
    if not isinstance(entry, dict):
        raise BindingError(f"{origin} must be a dict, not {type(entry).__name__}", id="plugins_app.E020")
    unknown = sorted(set(entry) - SETTING_KEYS, key=str)
    if unknown:
        raise BindingError(
            f"{origin} has unknown keys {unknown}",
            id="plugins_app.E020",
            hint=f"Keys: {', '.join(sorted(SETTING_KEYS))}.",
        )
    if "signal" not in entry:
        raise BindingError(f"{origin} has no 'signal'", id="plugins_app.E020")
    try:
        return make_binding(
            entry["signal"],
            entry.get("hook"),
            sender=entry.get("sender"),
            mode=entry.get("mode"),
            fail_closed=entry.get("fail_closed", False),
            origin=origin,
        )
    except BindingError as exc:
        raise BindingError(f"{origin}: {exc.message}", id=exc.id, hint=exc.hint) from None


def settings_bindings() -> tuple[Binding, ...]:
    """The valid bindings of ``PLUGINS_APP["SIGNAL_BINDINGS"]`` (invalid ones are left
    out here; the system checks report them)."""
    global _from_settings
    entries = setting_entries()
    source, built = _from_settings
    if source is entries:
        return built
    with _settings_lock:
        result = []
        if isinstance(entries, list | tuple):
            for index, entry in enumerate(entries):
                try:
                    result.append(parse_entry(index, entry))
                except BindingError:
                    continue  # reported by `manage.py check` (plugins_app.E020...)
        _from_settings = (entries, tuple(result))
        return _from_settings[1]


# -- bindings from Python ------------------------------------------------------------

_bound: list[Binding] = []
_bound_lock = threading.Lock()


def bind(
    signal: Signal | str,
    hook: str,
    *,
    sender: Any = None,
    mode: str | None = None,
    fail_closed: bool = False,
) -> Binding:
    """Call plugin hook ``hook`` when ``signal`` is sent (by ``sender``, if given).

    ``signal``: a Signal, its dotted path, or ``"post_save"``, ``"post_delete"``,
    ``"pre_save"``, ``"user_logged_in"``. ``sender``: for model signals, the exposed
    model (class or ``"app_label.ModelName"``). ``mode``: ``"after_commit"`` (default),
    ``"sync"``, ``"background"``, or ``"filter"`` (pre_save only, its default).
    ``fail_closed`` (filters only): a failing plugin or a refused result aborts the save.

    Raises :class:`BindingError` (an ``ImproperlyConfigured``) for a binding that can
    never work. Returns the binding, for :func:`unbind`.
    """
    from . import signal_handlers

    binding = make_binding(signal, hook, sender=sender, mode=mode, fail_closed=fail_closed)
    with _bound_lock:
        _bound.append(binding)
    signal_handlers.connect_receiver(binding.signal)
    return binding


def unbind(binding: Binding) -> None:
    """Remove a binding made by :func:`bind` (no error if it is already gone)."""
    with _bound_lock:
        if binding in _bound:
            _bound.remove(binding)


@contextmanager
def bound(signal: Signal | str, hook: str, **options: Any) -> Iterator[Binding]:
    """Bind for the duration of a ``with`` block (tests): ``with bound("post_save", "h", sender=Note):``."""
    binding = bind(signal, hook, **options)
    try:
        yield binding
    finally:
        unbind(binding)


def python_bindings() -> tuple[Binding, ...]:
    with _bound_lock:
        return tuple(_bound)


def bindings() -> tuple[Binding, ...]:
    """Every binding in effect now: from settings, then from :func:`bind`."""
    return settings_bindings() + python_bindings()


def bindings_for(signal: Signal, sender: Any) -> list[Binding]:
    return [b for b in bindings() if b.signal is signal and b.matches(sender)]
