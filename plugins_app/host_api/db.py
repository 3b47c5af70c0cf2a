"""The JS global ``db``: permission-checked ORM access to exposed models.

Every field a plugin names (to read, filter, order, traverse or write) is checked
against both the developers' exposure and the plugin's grant, hop by hop along
relations. Values are always query parameters, never SQL. Host calls run on the
calling thread, so they see (and are undone with) the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from typing import Any

from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import DatabaseError, models, router, transaction
from django.db.models.deletion import Collector, ProtectedError, RestrictedError

from ..exposure import Exposure, column, exposed_row, get_exposure, model_label
from . import HostCallError, HostContext, check_no_nul, host_function, permission_denied

DEFAULT_LIMIT = 100
MAX_WHERE_KEYS = 50
MAX_IN_VALUES = 1000
SCALARS = (str, int, float, bool, type(None))


class _Access:
    """The resolved permission of one plugin on one model."""

    def __init__(self, ctx: HostContext, label: Any, action: str) -> None:
        if not isinstance(label, str):
            raise HostCallError("TypeError", 'model must be a string like "app_label.ModelName"')
        exposure = get_exposure(label)
        grant = ctx.grant(label) if exposure else None
        if exposure is None or grant is None:
            raise permission_denied(f'plugin "{ctx.slug}" may not {action} "{label}"')
        self.ctx = ctx
        self.exposure: Exposure = exposure
        self.grant = grant
        self.label = exposure.label
        self.model = exposure.model
        self.read = exposure.read & set(grant.read)

    def require(self, action: str, allowed: set[str] | frozenset[str] | bool) -> None:
        if not allowed:
            raise permission_denied(f'plugin "{self.ctx.slug}" may not {action} "{self.label}"')

    def readable(self, name: str) -> None:
        if name not in self.read:
            raise permission_denied(f'plugin "{self.ctx.slug}" may not read field "{name}" of "{self.label}"')


def _access_for(ctx: HostContext, model: type[models.Model]) -> _Access:
    return _Access(ctx, model_label(model), "read")


def _resolve_path(access: _Access, key: Any, *, allow_lookup: bool) -> str:
    """Check ``field__relation__field__lookup`` hop by hop; return it as a Django path.

    Every hop must be a granted readable field, every relation followed must be exposed
    as one and granted on the model it leads to, and a final lookup must be allowed.
    """
    if not isinstance(key, str) or not key:
        raise HostCallError("TypeError", "field names must be non-empty strings")
    parts = key.split("__")
    current = access
    for index, part in enumerate(parts):
        current.readable(part)  # unknown names are refused exactly like ungranted ones
        field = current.model._meta.get_field(part)
        rest = parts[index + 1 :]
        if not rest:
            return key
        target = field.related_model if field.is_relation else None
        if len(rest) == 1 and allow_lookup and not _has_field(target, rest[0]):
            if rest[0] not in current.exposure.lookups:
                raise permission_denied(f'lookup "{rest[0]}" is not allowed on "{current.label}"')
            return key
        if target is None or part not in current.exposure.relations:
            raise permission_denied(f'plugin "{access.ctx.slug}" may not follow "{part}" of "{current.label}"')
        current = _access_for(access.ctx, target)
    return key


def _has_field(model: Any, name: str) -> bool:
    if model is None:
        return False
    try:
        model._meta.get_field(name)
    except FieldDoesNotExist:
        return False
    return True


def _is_scalar(value: Any) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return -(2**63) <= value < 2**63  # no database column holds more
    return isinstance(value, SCALARS)


def _check_value(key: str, value: Any) -> Any:
    if _is_scalar(value) or (
        isinstance(value, list) and len(value) <= MAX_IN_VALUES and all(_is_scalar(v) for v in value)
    ):
        check_no_nul(value, f'the value for "{key}"')
        return value
    raise HostCallError(
        "TypeError",
        f'value for "{key}" must be a string, number (64-bit for integers), boolean, null or a list of those',
    )


def _conditions(access: _Access, where: Any, what: str) -> dict[str, Any]:
    if where is None:
        return {}
    if not isinstance(where, dict):
        raise HostCallError("TypeError", f"{what} must be an object of field: value")
    if len(where) > MAX_WHERE_KEYS:
        raise HostCallError("TypeError", f"{what} has more than {MAX_WHERE_KEYS} conditions")
    return {_resolve_path(access, key, allow_lookup=True): _check_value(key, value) for key, value in where.items()}


def _filtered(access: _Access, options: dict[str, Any]) -> models.QuerySet[models.Model]:
    qs = access.model._default_manager.using(router.db_for_read(access.model))
    where = _conditions(access, options.get("where"), "where")
    exclude = _conditions(access, options.get("exclude"), "exclude")
    try:
        qs = qs.filter(**where)
        if exclude:
            qs = qs.exclude(**exclude)
    except (ValueError, TypeError, ValidationError):
        raise _invalid_filter(access, where, exclude) from None
    return qs


def _invalid_filter(access: _Access, where: dict[str, Any], exclude: dict[str, Any]) -> HostCallError:
    """Name the condition whose value its field cannot take, in our words: the exception
    Django raised may quote Python internals."""
    probe = access.model._default_manager.none()
    for what, conditions in (("where", where), ("exclude", exclude)):
        for key, value in conditions.items():
            try:
                probe.filter(**{key: value})  # builds the condition; runs no query
            except ValidationError as exc:
                reason = "; ".join(exc.messages)
                return HostCallError(
                    "ValidationError", f'invalid value for "{key}" in {what} on "{access.label}": {reason}'
                )
            except (ValueError, TypeError):
                return HostCallError("ValidationError", f'invalid value for "{key}" in {what} on "{access.label}"')
    return HostCallError("ValidationError", f'invalid filter on "{access.label}"')


def _fields(access: _Access, requested: Any) -> list[str]:
    if requested is None:
        return sorted(access.read)
    if not isinstance(requested, list) or not all(isinstance(f, str) for f in requested):
        raise HostCallError("TypeError", "fields must be a list of field names")
    for name in requested:
        access.readable(name)
    return list(dict.fromkeys(requested))


def _row(access: _Access, obj: models.Model, names: list[str]) -> dict[str, Any]:
    return exposed_row(obj, names)


def _options(value: Any, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise HostCallError("TypeError", f"{what} must be an object")
    return value


def _int(value: Any, name: str, default: int) -> int:
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise HostCallError("TypeError", f"{name} must be a non-negative integer")
    return value


def _run_query(access: _Access, qs: models.QuerySet[models.Model]) -> list[models.Model]:
    try:
        return list(qs)
    except (DatabaseError, OverflowError):
        raise HostCallError("ValidationError", f'query on "{access.label}" failed: invalid value') from None


@host_function("db.query")
def query(ctx: HostContext, model: Any, options: Any = None) -> list[dict[str, Any]]:
    access = _Access(ctx, model, "read")
    options = _options(options, "options")
    unknown = set(options) - {"where", "exclude", "order", "limit", "offset", "fields"}
    if unknown:
        raise HostCallError("TypeError", f"unknown query options: {', '.join(sorted(unknown))}")
    names = _fields(access, options.get("fields"))
    qs = _filtered(access, options)
    order = options.get("order") or []
    if isinstance(order, str):
        order = [order]
    if not isinstance(order, list) or not all(isinstance(o, str) for o in order):
        raise HostCallError("TypeError", "order must be a field name or a list of them")
    qs = qs.order_by(
        *[("-" if o.startswith("-") else "") + _resolve_path(access, o.lstrip("-"), allow_lookup=False) for o in order]
    )
    if not order:
        qs = qs.order_by("pk")
    limit = _int(options.get("limit"), "limit", DEFAULT_LIMIT)
    offset = _int(options.get("offset"), "offset", 0)
    remaining = ctx.remaining_rows_read()
    rows = _run_query(
        access,
        qs.only(*{column(access.model, n).attname for n in names} or {"pk"})[
            offset : offset + min(limit, remaining + 1)
        ],
    )
    ctx.charge_rows_read(len(rows))
    return [_row(access, obj, names) for obj in rows]


@host_function("db.get")
def get(ctx: HostContext, model: Any, where: Any = None) -> dict[str, Any] | None:
    access = _Access(ctx, model, "read")
    rows = _run_query(access, _filtered(access, {"where": where}).order_by("pk")[:2])
    if len(rows) > 1:
        raise HostCallError("MultipleObjectsReturned", f'more than one "{access.label}" matches')
    ctx.charge_rows_read(len(rows))
    return _row(access, rows[0], sorted(access.read)) if rows else None


@host_function("db.count")
def count(ctx: HostContext, model: Any, where: Any = None) -> int:
    access = _Access(ctx, model, "read")
    try:
        return _filtered(access, {"where": where}).count()
    except (DatabaseError, OverflowError):
        raise HostCallError("ValidationError", f'count on "{access.label}" failed: invalid value') from None


def _check_values(access: _Access, values: Any, allowed: AbstractSet[str], action: str) -> dict[str, Any]:
    """Check names against the grant and values for type, before any row is touched."""
    if not isinstance(values, dict) or not values:
        raise HostCallError("TypeError", "values must be a non-empty object of field: value")
    for name, value in values.items():
        if name not in allowed:
            raise permission_denied(f'plugin "{access.ctx.slug}" may not {action} field "{name}" of "{access.label}"')
        if isinstance(value, list) or not _is_scalar(value):
            raise HostCallError("TypeError", f'value for "{name}" must be a string, number, boolean or null')
        check_no_nul(value, f'the value for "{name}"')
    return values


def _assign(access: _Access, obj: models.Model, values: dict[str, Any]) -> list[str]:
    for name, value in values.items():
        setattr(obj, column(access.model, name).attname, value)
    return list(values)


def _validate(access: _Access, obj: models.Model, names: list[str]) -> None:
    exclude = [f.name for f in access.model._meta.fields if f.name not in names]
    try:
        obj.clean_fields(exclude=exclude)
    except ValidationError as exc:
        details = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in exc.message_dict.items())
        raise HostCallError("ValidationError", f'invalid values for "{access.label}": {details}') from None


@host_function("db.create", writes=True)
def create(ctx: HostContext, model: Any, values: Any) -> dict[str, Any]:
    access = _Access(ctx, model, "create")
    allowed = access.exposure.write & set(access.grant.create)
    access.require("create", allowed)
    obj = access.model()
    names = _assign(access, obj, _check_values(access, values, allowed, "set"))
    _validate(access, obj, names)
    ctx.charge_rows_written(1)
    try:
        with transaction.atomic(using=router.db_for_write(access.model)):
            obj.save(force_insert=True)
    except DatabaseError:
        raise HostCallError("ValidationError", f'could not create "{access.label}" (constraint violated)') from None
    return _row(access, obj, sorted(access.read))


def _targets(ctx: HostContext, access: _Access, where: Any) -> list[models.Model]:
    if not isinstance(where, dict) or not where:
        raise HostCallError("TypeError", "where must be a non-empty object (use {id__gte: 0} to mean all rows)")
    remaining = ctx.remaining_rows_written()
    objs = _run_query(access, _filtered(access, {"where": where}).order_by("pk")[: remaining + 1])
    ctx.charge_rows_written(len(objs))
    return objs


@host_function("db.update", writes=True)
def update(ctx: HostContext, model: Any, where: Any, values: Any) -> int:
    access = _Access(ctx, model, "update")
    allowed = access.exposure.write & set(access.grant.update)
    access.require("update", allowed)
    values = _check_values(access, values, allowed, "update")
    objs = _targets(ctx, access, where)
    try:
        with transaction.atomic(using=router.db_for_write(access.model)):
            for obj in objs:
                names = _assign(access, obj, values)
                _validate(access, obj, names)
                # save() rather than QuerySet.update(): model signals fire for each row.
                obj.save(update_fields=[access.model._meta.get_field(n).name for n in names])
    except DatabaseError:
        raise HostCallError("ValidationError", f'could not update "{access.label}" (constraint violated)') from None
    return len(objs)


@host_function("db.delete", writes=True)
def delete(ctx: HostContext, model: Any, where: Any) -> int:
    access = _Access(ctx, model, "delete")
    access.require("delete", access.grant.can_delete)
    objs = _targets(ctx, access, where)
    if not objs:
        return 0
    using = router.db_for_write(access.model)
    collector = Collector(using=using)
    try:
        collector.collect(objs)
    except (ProtectedError, RestrictedError):
        raise HostCallError("ValidationError", f'these "{access.label}" rows are protected by related rows') from None
    # A plugin may delete rows of the granted model only: no cascades, and no
    # SET_NULL/SET_DEFAULT updates of rows in other models either.
    touched = {m for m in collector.data} | {qs.model for qs in collector.fast_deletes if qs.exists()}
    # Each batch is a QuerySet or a list of rows (the stubs say one row).
    field_updates: dict[tuple[Any, Any], list[Any]] = collector.field_updates
    for (field, _value), batches in field_updates.items():
        if any(batch.exists() if hasattr(batch, "exists") else len(batch) for batch in batches):
            touched.add(field.model)
    others = sorted(model_label(m) for m in touched if m is not access.model)
    if others:
        raise permission_denied(f'deleting "{access.label}" rows would also change rows of {", ".join(others)}')
    try:
        with transaction.atomic(using=using):
            collector.delete()
    except DatabaseError:
        raise HostCallError("ValidationError", f'could not delete "{access.label}" (constraint violated)') from None
    return len(objs)
