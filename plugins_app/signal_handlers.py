"""The receivers that turn Django signals into plugin hook calls (see ``signals.py``).

One receiver, :func:`receive`, is connected (with a ``dispatch_uid``, so never twice) to
each signal that some binding uses: in ``AppConfig.ready()``, whenever ``PLUGINS_APP``
changes, and by :func:`plugins_app.signals.bind`. It looks the bindings up when the
signal fires, so bindings changed by ``override_settings`` take effect at once.

What a hook receives is data, never model instances: ``hook(payload, meta)``.
"""

from __future__ import annotations

import datetime
import decimal
import json
import logging
import uuid
from typing import Any

from django.core.exceptions import ValidationError
from django.core.signals import setting_changed
from django.db import models
from django.dispatch import Signal, receiver
from django.utils.functional import Promise

from . import calllog, conf, hooks, outbox
from . import signals as bindings_module
from .exceptions import PluginDataError
from .exposure import Exposure, column, exposed_row, get_exposure, json_value, model_label
from .host_api.log import log_safe
from .sandbox import jsondata
from .signals import AFTER_COMMIT, BACKGROUND, KIND_FILTER, KIND_LOGIN, KIND_MODEL, SYNC, Binding

logger = logging.getLogger("plugins_app.signals")

DISPATCH_UID = "plugins_app.signal_bindings"


def connect_receiver(signal: Signal) -> None:
    """Connect :func:`receive` to ``signal`` (idempotent)."""
    signal.connect(receive, weak=False, dispatch_uid=DISPATCH_UID)


def connect_receivers() -> None:
    """Connect :func:`receive` to every signal a binding in effect uses."""
    for binding in bindings_module.bindings():
        connect_receiver(binding.signal)


def disconnect_receiver(signal: Signal) -> bool:
    return signal.disconnect(dispatch_uid=DISPATCH_UID)


@receiver(setting_changed)
def _bindings_changed(*, setting: str, **kwargs: Any) -> None:
    # conf.py's own setting_changed receiver was connected first (it is imported
    # before this module), so conf.get() already returns the new value here.
    if setting == "PLUGINS_APP":
        connect_receivers()


# -- payloads ------------------------------------------------------------------------


def model_payload(instance: models.Model, exposure: Exposure) -> dict[str, Any]:
    """The exposed (readable) fields of ``instance``; foreign keys as the related pk."""
    return exposed_row(instance, [f.name for f in instance._meta.concrete_fields if f.name in exposure.read])


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime.date | datetime.time | datetime.timedelta | decimal.Decimal | uuid.UUID):
        return json_value(value)
    if isinstance(value, Promise):  # lazy translation strings
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON data")


def jsonable_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of a signal that are JSON data (dates, decimals and UUIDs
    become text, as in payloads of models); the others (also values nested deeper than
    MAX_DATA_DEPTH, or text with lone surrogates) are left out."""
    depth = conf.get("MAX_DATA_DEPTH")
    data = {}
    for key, value in kwargs.items():
        try:
            text = json.dumps(value, default=_json_default, allow_nan=False)
            data[key] = jsondata.loads(text, depth, what=f"signal argument {key!r}")
        except (TypeError, ValueError, RecursionError):
            logger.debug("signal argument %r is not JSON data; not passed to plugins", key)
    return data


def _sender_name(sender: Any) -> Any:
    if sender is None or isinstance(sender, str | int | float | bool):
        return sender
    if isinstance(sender, type) and issubclass(sender, models.Model):
        return model_label(sender)
    name = getattr(sender, "__qualname__", None)
    return f"{getattr(sender, '__module__', '')}.{name}" if name else None


# -- the receiver --------------------------------------------------------------------


def receive(sender: Any, signal: Signal, **kwargs: Any) -> None:
    """Run every binding of ``signal`` that matches ``sender``."""
    matching = bindings_module.bindings_for(signal, sender)
    if not matching:
        return
    kind = matching[0].kind  # one signal, one kind
    if kind == KIND_FILTER:
        _filter_instance(matching, sender, **kwargs)
        return
    if kind == KIND_MODEL:
        if kwargs.get("raw"):
            return  # loaddata: rows as stored, not saved by the application
        exposure = _exposure_for(matching, sender)
        if exposure is None:
            return
        payload = model_payload(kwargs["instance"], exposure)
        meta: dict[str, Any] = {"signal": matching[0].signal_name, "model": exposure.label}
        if "created" in kwargs:
            payload["created"] = meta["created"] = bool(kwargs["created"])
        using = kwargs.get("using")
    elif kind == KIND_LOGIN:
        user = kwargs["user"]
        payload = {"id": json_value(user.pk), "username": user.get_username()}
        meta = {"signal": "user_logged_in"}
        using = None
    else:
        payload = jsonable_kwargs(kwargs)
        meta = {"signal": matching[0].signal_name, "sender": _sender_name(sender)}
        using = None
    for binding in matching:
        dispatch(binding, (payload, meta), using=using)


def dispatch(binding: Binding, args: tuple[Any, ...], *, using: str | None = None) -> None:
    """Run ``binding``'s hook as an action with ``args``, according to its mode."""
    if binding.mode == SYNC:
        _run_action(binding.hook, args)
    elif binding.mode in (AFTER_COMMIT, BACKGROUND):
        # Recorded in the caller's transaction (the outbox), delivered at least once after
        # its commit: inline for after-commit, on Celery for background.
        *hook_args, meta = args
        outbox.record(binding.hook, hook_args, meta, mode=binding.mode, using=using)
    else:  # pragma: no cover - make_binding() refuses anything else
        raise ValueError(f"binding {binding!r} has an unknown mode")


def _run_action(hook: str, args: tuple[Any, ...]) -> list[hooks.ActionResult]:
    with calllog.caller("signal"):
        results = hooks.do_action(hook, *args)  # failures are logged by do_action, per plugin
    logger.debug("action %r ran %d plugin(s)", hook, len(results))
    return results


def _exposure_for(matching: list[Binding], sender: Any) -> Exposure | None:
    exposure = get_exposure(model_label(sender))
    if exposure is None:
        logger.warning(
            "%s: %s is not exposed to plugins; binding(s) %s skipped",
            matching[0].signal_name,
            model_label(sender),
            ", ".join(repr(b.hook) for b in matching),
        )
    return exposure


# -- pre_save filters ----------------------------------------------------------------


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, str | int | float | bool)


def _filter_instance(
    matching: list[Binding],
    sender: Any,
    *,
    instance: models.Model,
    raw: bool = False,
    update_fields: frozenset[str] | None = None,
    **kwargs: Any,
) -> None:
    """pre_save: pass the instance's exposed fields through each filter binding's hook,
    then copy back the changes to fields in the exposure's ``write`` set.

    Changes to other fields, values that are not valid for the field, and a result that
    is not an object are refused and logged (and raise ``PluginDataError`` for a
    ``fail_closed`` binding, which aborts the save, as does any ``PluginError`` of it).
    """
    if raw:
        return
    exposure = _exposure_for(matching, sender)
    if exposure is None:
        return
    for binding in matching:
        before = model_payload(instance, exposure)
        meta = {
            "signal": "pre_save",
            "model": exposure.label,
            "adding": instance._state.adding,
            "update_fields": sorted(update_fields) if update_fields is not None else None,
        }
        with calllog.caller("signal"):
            after = hooks.apply_filters(binding.hook, before, meta, fail_closed=binding.fail_closed)
        _apply_changes(binding, exposure, instance, before, after, update_fields)


def _apply_changes(
    binding: Binding,
    exposure: Exposure,
    instance: models.Model,
    before: dict[str, Any],
    after: Any,
    update_fields: frozenset[str] | None,
) -> None:
    label = exposure.label

    def refuse(message: str) -> None:
        # ``message`` may quote keys the plugins returned: escaped, it is one log line.
        text = f"filter {binding.hook!r} on {label}: {log_safe(message, 2000)}"
        if binding.fail_closed:
            raise PluginDataError(f"{text} (the binding is fail_closed: the save is aborted)")
        logger.warning("%s; ignored", text)

    if not isinstance(after, dict):
        refuse(f"plugins returned {type(after).__name__}, not an object")
        return
    changed = {k: v for k, v in after.items() if k not in before or before[k] != v}
    refused = sorted(k for k in changed if k not in exposure.write)
    if refused:
        refuse(f"fields not writable by plugins were changed: {', '.join(refused)}")
    opts = instance._meta
    for name, value in changed.items():
        if name in refused:
            continue
        field = column(type(instance), name)  # a writable field of the exposure
        if update_fields is not None and name not in update_fields and field.attname not in update_fields:
            refuse(f"{name!r} changed, but the save only writes {sorted(update_fields)}")
            continue
        if not _is_scalar(value):
            refuse(f"value for {name!r} must be a string, number, boolean or null")
            continue
        if isinstance(value, str) and "\x00" in value:
            # PostgreSQL cannot store NUL in text: refused on every database alike.
            refuse(f"value for {name!r} contains a NUL character")
            continue
        old = getattr(instance, field.attname)
        setattr(instance, field.attname, value)
        others = [f.name for f in opts.fields if f.name != name]
        try:
            # clean_fields() also converts (ISO text to datetime, "3" to 3...); a duplicate
            # in a unique field would otherwise fail the site's save() with IntegrityError.
            instance.clean_fields(exclude=others)
            instance.validate_unique(exclude=others)
            instance.validate_constraints(exclude=others)
        except ValidationError as exc:
            setattr(instance, field.attname, old)
            refuse(f"invalid value for {name!r}: {'; '.join(exc.messages)}")
