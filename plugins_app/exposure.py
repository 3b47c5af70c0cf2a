"""The developer side of the host API: which models plugins may ever see, and how.

Nothing is exposed by default. A project declares exposures in a ``plugin_exposure``
module of any installed app (discovered in ``AppConfig.ready``)::

    # myapp/plugin_exposure.py
    from plugins_app.exposure import expose

    expose("auth.User", read=["id", "username"])
    expose("blog.Post", read=["id", "title", "author", "created_at"], write=["title"],
           relations=["author"])

Operators then grant each plugin a subset (``PluginGrant``): a grant can narrow an
exposure, never widen it. Secrets (passwords, tokens, keys) can never be exposed.
"""

from __future__ import annotations

import datetime
import decimal
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist, ImproperlyConfigured, ValidationError
from django.db import models
from django.utils.module_loading import autodiscover_modules

if TYPE_CHECKING:
    from .models import PluginGrant

DEFAULT_LOOKUPS = frozenset(
    {
        "exact",
        "iexact",
        "contains",
        "icontains",
        "startswith",
        "istartswith",
        "endswith",
        "iendswith",
        "in",
        "gt",
        "gte",
        "lt",
        "lte",
        "isnull",
        "range",
    }
)
# Field names that look like credentials are refused whatever the model: any
# underscore-separated part in SECRET_PARTS, or one of SECRET_NAMES.
SECRET_PARTS = frozenset(
    {"password", "passwd", "secret", "token", "tokens", "salt", "otp", "hash", "apikey", "credential", "credentials"}
)
SECRET_NAMES = frozenset({"api_key", "private_key", "session_key", "access_key", "signing_key", "secret_key"})
# Specific fields that are never exposable, even under an innocent name.
NEVER_EXPOSED = {("auth.user", "password"), ("sessions.session", "session_data")}


@dataclass(frozen=True)
class Exposure:
    """One model as the site's developers allow plugins to use it."""

    label: str  # "app_label.ModelName"
    model: type[models.Model]
    read: frozenset[str]
    write: frozenset[str]
    relations: frozenset[str]
    lookups: frozenset[str]


_registry: dict[str, Exposure] = {}


def model_label(model: type[models.Model]) -> str:
    return f"{model._meta.app_label}.{model.__name__}"


def column(model: type[models.Model], name: str) -> models.Field[Any, Any]:
    """The field ``name`` of ``model``, for a name known to be a concrete column: one an
    exposure lists (:func:`expose` admits no reverse relation or many-to-many), or one of
    the model's own columns. ``_meta.get_field`` is typed to also return reverse relations."""
    return cast("models.Field[Any, Any]", model._meta.get_field(name))


def _resolve_model(model: type[models.Model] | str) -> type[models.Model]:
    if isinstance(model, str):
        try:
            return apps.get_model(model)
        except (LookupError, ValueError) as exc:
            raise ImproperlyConfigured(f"expose(): unknown model {model!r}") from exc
    return model


def is_secret_field(model: type[models.Model], name: str) -> bool:
    lowered = name.lower()
    return (
        lowered in SECRET_NAMES
        or not SECRET_PARTS.isdisjoint(lowered.split("_"))
        or (model._meta.label_lower, name) in NEVER_EXPOSED
    )


def expose(
    model: type[models.Model] | str,
    *,
    read: Iterable[str],
    write: Iterable[str] = (),
    relations: Iterable[str] = (),
    lookups: Iterable[str] = DEFAULT_LOOKUPS,
) -> Exposure:
    """Allow plugins (with a grant) to use ``model``: read/write these fields, follow
    these foreign keys, filter with these lookups. Raises ``ImproperlyConfigured`` for a
    field that does not exist or must stay secret."""
    model = _resolve_model(model)
    label = model_label(model)
    read, write, relations = frozenset(read), frozenset(write), frozenset(relations)
    for name in read | write | relations:
        try:
            field = model._meta.get_field(name)
        except FieldDoesNotExist:
            raise ImproperlyConfigured(f"expose({label}): no field {name!r}") from None
        if is_secret_field(model, name):
            raise ImproperlyConfigured(f"expose({label}): field {name!r} holds a secret and can never be exposed")
        if not getattr(field, "concrete", False) or field.many_to_many:
            raise ImproperlyConfigured(f"expose({label}): {name!r} is not a concrete column field")
    for name in relations:
        field = model._meta.get_field(name)
        if not (field.many_to_one or field.one_to_one):
            raise ImproperlyConfigured(f"expose({label}): relation {name!r} is not a ForeignKey/OneToOneField")
        if name not in read:
            raise ImproperlyConfigured(f"expose({label}): relation {name!r} must also be readable")
    for name in write:
        if column(model, name).primary_key:
            raise ImproperlyConfigured(f"expose({label}): the primary key {name!r} cannot be writable")
    unknown = set(lookups) - set(models.Field.get_lookups())  # type: ignore[call-arg]  # a class-or-instance method; stubs: instance only
    if unknown:
        raise ImproperlyConfigured(f"expose({label}): unknown lookups {sorted(unknown)}")
    exposure = Exposure(label, model, read, write, relations, frozenset(lookups))
    _registry[label.lower()] = exposure
    return exposure


def get_exposure(label: str) -> Exposure | None:
    """The exposure of model ``"app_label.ModelName"`` (case-insensitive), if any."""
    return _registry.get(str(label).lower())


def exposures() -> list[Exposure]:
    return sorted(_registry.values(), key=lambda e: e.label)


@contextmanager
def exposing(*specs: tuple[type[models.Model] | str, dict[str, Any]]) -> Iterator[None]:
    """Temporarily replace the registry (tests): ``with exposing(("auth.User", {"read": [...]})):``."""
    saved = dict(_registry)
    _registry.clear()
    try:
        for model, options in specs:
            expose(model, **options)
        yield
    finally:
        _registry.clear()
        _registry.update(saved)


def json_value(value: Any) -> Any:
    """A column value as the JSON data plugins see: dates/times as ISO 8601 strings,
    ``Decimal``/``UUID`` as strings, durations in seconds, binary as ``None``."""
    if isinstance(value, datetime.datetime | datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes | memoryview):
        return None  # binary columns do not cross
    if value is None or isinstance(value, str | int | float | bool | list | dict):
        return value
    return str(value)  # e.g. a FieldFile: its name


def exposed_row(instance: models.Model, names: Iterable[str]) -> dict[str, Any]:
    """``instance``'s fields ``names`` as plugin data; a foreign key is the related pk.

    The one serializer of model rows for plugins (``db`` results, signal payloads,
    template tag arguments), so a row looks the same wherever a plugin meets it.
    """
    model = type(instance)
    return {name: json_value(getattr(instance, column(model, name).attname)) for name in names}


def autodiscover() -> None:
    autodiscover_modules("plugin_exposure")


def validate_grant(grant: PluginGrant) -> None:
    """Raise ``ValidationError`` unless ``grant`` stays within its model's exposure."""
    exposure = get_exposure(grant.model)
    if exposure is None:
        raise ValidationError({"model": f"{grant.model!r} is not exposed to plugins."})
    grant.model = exposure.label
    errors: dict[str, str] = {}
    for attr, allowed in (("read", exposure.read), ("create", exposure.write), ("update", exposure.write)):
        value = getattr(grant, attr)
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            errors[attr] = "Must be a list of field names."
            continue
        extra = sorted(set(value) - allowed)
        if extra:
            errors[attr] = (
                f"Not exposed for this: {', '.join(extra)} (allowed: {', '.join(sorted(allowed)) or 'none'})."
            )
    if errors:
        raise ValidationError(errors)
