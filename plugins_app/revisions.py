"""Revisions of plugins, rollback, diffs, and optimistic concurrency for edits.

**Revisions.** Every save that changes what a plugin runs with, i.e. its source,
configuration, configuration schema, limits (memory, time, host budgets), ``http_enabled``
or its grants, records an immutable :class:`~plugins_app.models.PluginRevision`: a snapshot
of all of those (grants as data), who saved it, when, from where and an optional comment,
numbered 1, 2, 3... per plugin. A save that changes none of them records nothing. Name,
description, priority and enabled are not part of a revision: they are how the site uses
the plugin, not what the plugin is.

``Plugin.save()`` and ``PluginGrant.save()/delete()`` call :func:`note_change`; the
snapshot is compared with the latest revision, so any path that saves through the models
(admin, command line, code) records revisions. ``QuerySet.update()`` and bulk operations
bypass it, as they bypass validation. Inside a :func:`recording` block (the admin's change
form, the ``plugins`` command, :func:`rollback`) the changes are recorded once when the
block ends, so a form that changes the source and a grant records one revision, attributed
to the block's user with its comment.

**Optimistic concurrency.** ``Plugin.edit_token`` changes on every save and on every
``update()`` of an edited column (enable/disable, grants). The admin's form carries the
token it was opened on (:func:`make_edit_token`); :func:`check_edit_token` refuses the save
when the row's token moved on, and says which fields differ. ``plugins install
--if-revision REV`` and rollbacks confirmed against a revision check the latest revision
number instead (:func:`check_latest`).
"""

from __future__ import annotations

import difflib
import getpass
import hashlib
import json
import logging
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from itertools import zip_longest
from typing import Any

from django.core import signing
from django.core.exceptions import ValidationError
from django.db import DatabaseError, connections, router, transaction
from django.utils import timezone
from django.utils.text import capfirst

from .exceptions import PluginConflict, RevisionNotFound
from .exposure import column
from .models import Plugin, PluginGrant, PluginRevision

logger = logging.getLogger("plugins_app.revisions")

# Plugin columns a revision snapshots (with the grants) and a rollback restores.
PLUGIN_FIELDS: tuple[str, ...] = (
    "source",
    "config",
    "config_schema",
    "memory_limit_mb",
    "timeout_ms",
    "max_host_calls",
    "max_rows_read",
    "max_rows_written",
    "max_host_result_bytes",
    "http_enabled",
)
# The scalar ones, shown as a table in diffs.
SETTING_FIELDS: tuple[str, ...] = PLUGIN_FIELDS[3:]
# Everything a revision compares, in display order.
SNAPSHOT_FIELDS: tuple[str, ...] = (*PLUGIN_FIELDS, "grants")
GRANT_KEYS: tuple[str, ...] = ("model", "read", "create", "update", "can_delete")

# Short names used in lists of changes ("source, grants").
CHANGE_LABELS: dict[str, str] = {
    "source": "source",
    "config": "config",
    "config_schema": "config schema",
    "memory_limit_mb": "memory limit",
    "timeout_ms": "time limit",
    "max_host_calls": "host calls",
    "max_rows_read": "rows read",
    "max_rows_written": "rows written",
    "max_host_result_bytes": "host result bytes",
    "http_enabled": "serves HTTP",
    "grants": "grants",
}


# -- snapshots ------------------------------------------------------------------------------
def grant_data(grant: Any) -> dict[str, Any]:
    """One grant as data (works on historical models too)."""
    return {
        "model": grant.model,
        "read": list(grant.read or []),
        "create": list(grant.create or []),
        "update": list(grant.update or []),
        "can_delete": bool(grant.can_delete),
    }


def grants_data(grants: Iterable[Any]) -> list[dict[str, Any]]:
    """Grants as data, by model label (case-insensitively)."""
    return sorted((grant_data(g) for g in grants), key=lambda g: (g["model"].lower(), g["model"]))


def snapshot(plugin: Plugin, grants: Iterable[PluginGrant] | None = None) -> dict[str, Any]:
    """What a revision of ``plugin`` holds, as it is now (grants read from the database
    unless given)."""
    data = {name: getattr(plugin, name) for name in PLUGIN_FIELDS}
    data["grants"] = grants_data(plugin.grants.all() if grants is None else grants)
    return data


def revision_snapshot(revision: PluginRevision) -> dict[str, Any]:
    return {name: getattr(revision, name) for name in SNAPSHOT_FIELDS}


def changed_fields(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    """Names (of :data:`SNAPSHOT_FIELDS`) whose values differ between two snapshots."""
    if old is None:
        return []
    return [name for name in SNAPSHOT_FIELDS if old.get(name) != new.get(name)]


def describe_changes(revision: PluginRevision) -> str:
    """``"source, grants"``; ``"rollback to 3: source"``; ``"created"`` for a first revision."""
    if revision.number == 1 and not revision.changes:
        text = "state when revisions began" if revision.origin == PluginRevision.Origin.MIGRATION else "created"
    else:
        text = ", ".join(CHANGE_LABELS.get(name, name) for name in revision.changes) or "no change"
    if revision.rolled_back_to:
        text = f"rollback to {revision.rolled_back_to}: {text}"
    return text


def latest_number(plugin_pk: Any) -> int:
    """The number of the plugin's latest revision (0 when it has none)."""
    number = (
        PluginRevision.objects.filter(plugin_id=plugin_pk).order_by("-number").values_list("number", flat=True).first()
    )
    return number or 0


def get_revision(plugin: Plugin, number: int) -> PluginRevision:
    revision = plugin.revisions.select_related("created_by").filter(number=number).first()
    if revision is None:
        raise RevisionNotFound(
            f"plugin {plugin.slug!r} has no revision {number} (latest: {latest_number(plugin.pk) or 'none'})",
            slug=plugin.slug,
        )
    return revision


# -- recording --------------------------------------------------------------------------------
def _db() -> str:
    return router.db_for_write(PluginRevision)


def _user_or_none(user: Any) -> Any:
    return user if getattr(user, "pk", None) is not None else None


def shell_user_name() -> str:
    """The OS user running the command line, recorded as who saved a revision."""
    try:
        return getpass.getuser()
    except (OSError, KeyError, ImportError):  # no login name, no passwd entry
        return ""


def record(
    plugin_pk: Any,
    *,
    origin: str = PluginRevision.Origin.CODE,
    user: Any = None,
    name: str = "",
    comment: str = "",
    rolled_back_to: int | None = None,
) -> PluginRevision | None:
    """Record a revision of the plugin as it is in the database now, unless it equals the
    latest one. Returns the new revision, or None."""
    db = _db()
    with transaction.atomic(using=db):
        # The row lock serialises revision numbers between concurrent saves.
        plugin = Plugin.objects.using(db).select_for_update().filter(pk=plugin_pk).first()
        if plugin is None:
            return None  # deleted meanwhile
        data = snapshot(plugin, plugin.grants.using(db).all())
        last = PluginRevision.objects.using(db).filter(plugin=plugin).order_by("-number").first()
        changes = changed_fields(revision_snapshot(last), data) if last is not None else []
        if last is not None and not changes:
            return None
        user = _user_or_none(user)
        return PluginRevision.objects.using(db).create(
            plugin=plugin,
            number=(last.number + 1) if last is not None else 1,
            created_by=user,
            created_by_name=(user.get_username() if user is not None else name)[:150],
            origin=origin,
            comment=comment,
            rolled_back_to=rolled_back_to,
            changes=changes,
            plugin_version=plugin.version,
            **data,
        )


@dataclass
class Recording:
    """A block whose plugin changes are recorded together when it ends (see :func:`recording`)."""

    origin: str
    user: Any = None
    name: str = ""
    comment: str = ""
    rolled_back_to: int | None = None
    defer: bool = True
    pending: dict[Any, None] = field(default_factory=dict)
    recorded: list[PluginRevision] = field(default_factory=list)

    def flush(self) -> list[PluginRevision]:
        """Record the changes noted so far (one revision per changed plugin); return them."""
        pending, self.pending = list(self.pending), {}
        new = []
        for pk in pending:
            revision = record(
                pk,
                origin=self.origin,
                user=self.user,
                name=self.name,
                comment=self.comment,
                rolled_back_to=self.rolled_back_to,
            )
            if revision is not None:
                new.append(revision)
        self.recorded.extend(new)
        return new


_current: ContextVar[Recording | None] = ContextVar("plugins_app_revisions_recording", default=None)


@contextmanager
def recording(
    *,
    origin: str,
    user: Any = None,
    name: str = "",
    comment: str = "",
    rolled_back_to: int | None = None,
    defer: bool = True,
) -> Iterator[Recording]:
    """Record the plugin changes made inside the block as one revision per plugin, when it
    ends, attributed to ``user`` (or ``name``) with ``comment``.

    Use it inside the transaction that makes the changes, so that revisions commit with
    them. If the block fails inside a transaction, nothing is recorded (the transaction
    rolls back); outside one (autocommit), the changes that were saved are recorded.
    Blocks nest: an inner block records its own changes when it ends.

    ``defer=False`` records each change right away (in the saving transaction) instead,
    still attributed to the block: for commands whose saves each stand alone.
    """
    scope = Recording(origin=origin, user=user, name=name, comment=comment, rolled_back_to=rolled_back_to, defer=defer)
    token = _current.set(scope)
    try:
        yield scope
    except BaseException:
        _current.reset(token)
        if scope.pending and not transaction.get_connection(_db()).in_atomic_block:
            try:
                scope.flush()  # those changes were committed before the failure
            except DatabaseError:
                logger.exception("could not record the revisions of plugins %s", list(scope.pending))
        raise
    _current.reset(token)
    scope.flush()


def current_recording() -> Recording | None:
    return _current.get()


def set_comment(comment: str) -> None:
    """Set the comment of the revisions the current :func:`recording` block will record."""
    scope = _current.get()
    if scope is not None:
        scope.comment = comment


def note_change(plugin_pk: Any) -> None:
    """Called by ``Plugin.save()`` and ``PluginGrant.save()/delete()``: record a revision
    now, or when the current :func:`recording` block ends."""
    if plugin_pk is None:
        return
    scope = _current.get()
    if scope is None:
        record(plugin_pk)
        return
    scope.pending[plugin_pk] = None
    if not scope.defer:
        scope.flush()


# -- rollback ---------------------------------------------------------------------------------
def rollback_changes(plugin: Plugin, revision: PluginRevision) -> list[str]:
    """What rolling ``plugin`` back to ``revision`` would change (empty: it already matches)."""
    return changed_fields(snapshot(plugin), revision_snapshot(revision))


def check_latest(plugin: Plugin, expected: int) -> None:
    """Raise :class:`PluginConflict` unless ``expected`` is the plugin's latest revision
    number (0: the plugin has none)."""
    latest = latest_number(plugin.pk)
    if latest == expected:
        return
    if expected > latest:
        raise PluginConflict(
            f"plugin {plugin.slug!r} is at revision {latest}; it has no revision {expected}", slug=plugin.slug
        )
    newer = plugin.revisions.select_related("created_by").filter(number__gt=expected).order_by("number")
    listed = "; ".join(f"revision {r.number} ({describe_changes(r)}; {who_and_when(r)})" for r in newer[:5])
    more = newer.count() - 5
    if more > 0:
        listed += f"; and {more} more"
    raise PluginConflict(
        f"plugin {plugin.slug!r} is at revision {latest}, not {expected}; since then: {listed}",
        slug=plugin.slug,
    )


def _apply(plugin: Plugin, wanted: dict[str, Any], user: Any) -> None:
    """Give ``plugin`` the snapshot ``wanted``, validated like any save (ValidationError,
    nothing written, if it does not validate)."""
    for name in PLUGIN_FIELDS:
        setattr(plugin, name, wanted[name])
    user = _user_or_none(user)
    if user is not None:
        plugin.updated_by = user
    errors: dict[str, list[str]] = {}
    try:
        plugin.full_clean()
    except ValidationError as exc:
        errors.update(exc.message_dict)
    existing = {g.model.lower(): g for g in plugin.grants.all()}
    wanted_grants = {g["model"].lower(): g for g in wanted["grants"]}
    to_save = []
    for key, data in wanted_grants.items():
        grant = existing.get(key) or PluginGrant(plugin=plugin)
        if grant.pk is not None and grant_data(grant) == data:
            continue
        for name in GRANT_KEYS:
            setattr(grant, name, data[name])
        try:
            grant.full_clean()
        except ValidationError as exc:
            errors.setdefault("grants", []).extend(f"{data['model']}: {m}" for m in exc.messages)
        to_save.append(grant)
    if errors:
        raise ValidationError(errors)
    update_fields = [*PLUGIN_FIELDS, "updated_at"] + (["updated_by"] if user is not None else [])
    plugin.save(update_fields=update_fields)
    for key, grant in existing.items():
        if key not in wanted_grants:
            grant.delete()
    for grant in to_save:
        grant.save()


def rollback(
    plugin: Plugin,
    number: int,
    *,
    origin: str,
    user: Any = None,
    name: str = "",
    comment: str = "",
    expected_latest: int | None = None,
) -> PluginRevision | None:
    """Restore the source, configuration, schema, limits, ``http_enabled`` and grants of
    revision ``number``, as a new revision (returned; None when the plugin already
    matches it).

    Validated like any save: raises ``ValidationError`` (nothing changed) when the old
    state is no longer valid, e.g. a limit outside today's bounds or a grant on a model
    that is no longer exposed. ``expected_latest``: refuse (:class:`PluginConflict`) if
    the latest revision is not that one. Raises :class:`RevisionNotFound`.
    """
    db = _db()
    with transaction.atomic(using=db):
        plugin = Plugin.objects.using(db).select_for_update().get(pk=plugin.pk)
        target = get_revision(plugin, number)
        if expected_latest is not None:
            check_latest(plugin, expected_latest)
        wanted = revision_snapshot(target)
        if not changed_fields(snapshot(plugin), wanted):
            return None
        with recording(
            origin=origin,
            user=user,
            name=name,
            comment=comment or f"Rolled back to revision {number}.",
            rolled_back_to=number,
        ) as scope:
            _apply(plugin, wanted, user)
    return next((r for r in scope.recorded if r.plugin_id == plugin.pk), None)


# -- diffs ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UnifiedLine:
    kind: str  # "context", "add", "del" or "gap" (a hunk header in ``text``)
    old_no: int | None
    new_no: int | None
    text: str


@dataclass(frozen=True)
class SplitRow:
    kind: str  # "equal", "change", "del", "add" or "gap"
    old_no: int | None
    old_text: str | None
    new_no: int | None
    new_text: str | None


@dataclass
class TextDiff:
    """A line diff of one text (source, or JSON pretty-printed), in both layouts."""

    name: str
    label: str
    old_empty: bool
    new_empty: bool
    unified: list[UnifiedLine]
    split: list[SplitRow]
    added: int
    removed: int

    @property
    def changed(self) -> bool:
        return bool(self.added or self.removed)


def _lines(text: str) -> list[str]:
    return text.split("\n") if text else []


def text_diff(name: str, label: str, old: str, new: str, context: int | None = 3) -> TextDiff:
    """Diff ``old`` and ``new`` line by line; ``context`` lines around changes (None: all)."""
    a, b = _lines(old), _lines(new)
    # Line-level matching is fast enough for sources up to MAX_SOURCE_BYTES; autojunk
    # (which treats frequent lines such as "}" as noise) only for very long files.
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=len(a) + len(b) > 4000)
    groups: Sequence[Sequence[tuple[str, int, int, int, int]]]
    if context is None:
        groups = [matcher.get_opcodes()]
    else:
        groups = list(matcher.get_grouped_opcodes(context))
    unified: list[UnifiedLine] = []
    split: list[SplitRow] = []
    added = removed = 0
    for group in groups:
        if not group or (len(groups) == 1 and all(op[0] == "equal" for op in group) and context is not None):
            continue
        first, last = group[0], group[-1]
        header = f"@@ -{first[1] + 1},{last[2] - first[1]} +{first[3] + 1},{last[4] - first[3]} @@"
        if context is not None:
            unified.append(UnifiedLine("gap", None, None, header))
            split.append(SplitRow("gap", None, header, None, None))
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                for k in range(i2 - i1):
                    unified.append(UnifiedLine("context", i1 + k + 1, j1 + k + 1, a[i1 + k]))
                    split.append(SplitRow("equal", i1 + k + 1, a[i1 + k], j1 + k + 1, b[j1 + k]))
                continue
            removed += i2 - i1
            added += j2 - j1
            for k in range(i1, i2):
                unified.append(UnifiedLine("del", k + 1, None, a[k]))
            for k in range(j1, j2):
                unified.append(UnifiedLine("add", None, k + 1, b[k]))
            for i, j in zip_longest(range(i1, i2), range(j1, j2)):
                kind = "change" if i is not None and j is not None else ("del" if j is None else "add")
                split.append(
                    SplitRow(
                        kind,
                        None if i is None else i + 1,
                        None if i is None else a[i],
                        None if j is None else j + 1,
                        None if j is None else b[j],
                    )
                )
    return TextDiff(name, label, not a, not b, unified, split, added, removed)


def json_text(value: Any) -> str:
    """JSON pretty-printed with sorted keys, so that key order never shows as a change."""
    if value is None:
        return ""
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def field_label(name: str) -> str:
    if name == "grants":
        return "Grants"
    return str(capfirst(column(Plugin, name).verbose_name))


@dataclass(frozen=True)
class ValueChange:
    label: str
    old: str
    new: str
    changed: bool


def describe_grant(data: dict[str, Any] | None) -> str:
    if data is None:
        return "—"

    def names(value: list[str]) -> str:
        return ", ".join(value) or "-"

    return (
        f"read={names(data['read'])}; create={names(data['create'])}; update={names(data['update'])}; "
        f"delete={'yes' if data['can_delete'] else 'no'}"
    )


def setting_text(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


@dataclass
class RevisionDiff:
    old: PluginRevision
    new: PluginRevision
    texts: list[TextDiff]
    settings: list[ValueChange]
    grants: list[ValueChange]

    @property
    def changed(self) -> list[str]:
        return changed_fields(revision_snapshot(self.old), revision_snapshot(self.new))


def revision_diff(old: PluginRevision, new: PluginRevision, context: int | None = 3) -> RevisionDiff:
    """Everything that differs between two revisions: source, config and schema as line
    diffs, limits and ``http_enabled`` as a table, grants per model."""
    texts = [
        text_diff("source", field_label("source"), old.source, new.source, context),
        text_diff("config", field_label("config"), json_text(old.config), json_text(new.config), context),
        text_diff(
            "config_schema",
            field_label("config_schema"),
            json_text(old.config_schema),
            json_text(new.config_schema),
            context,
        ),
    ]
    settings = [
        ValueChange(
            field_label(name),
            setting_text(name, getattr(old, name)),
            setting_text(name, getattr(new, name)),
            getattr(old, name) != getattr(new, name),
        )
        for name in SETTING_FIELDS
    ]
    old_grants = {g["model"].lower(): g for g in old.grants}
    new_grants = {g["model"].lower(): g for g in new.grants}
    grants = []
    for key in sorted({*old_grants, *new_grants}):
        a, b = old_grants.get(key), new_grants.get(key)
        label = (b or a or {}).get("model", key)
        grants.append(ValueChange(label, describe_grant(a), describe_grant(b), a != b))
    return RevisionDiff(old, new, texts, settings, grants)


# -- optimistic concurrency -------------------------------------------------------------------
_TOKEN_SALT = "plugins_app.revisions.edit-token"


@cache
def edit_fields() -> tuple[str, ...]:
    """The plugin's columns an operator edits (those on the admin's form)."""
    return tuple(f.name for f in Plugin._meta.concrete_fields if f.editable and not f.primary_key)


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def _field_digests(plugin: Plugin) -> dict[str, str]:
    digests = {name: _digest(column(Plugin, name).value_from_object(plugin)) for name in edit_fields()}
    digests["grants"] = _digest(grants_data(plugin.grants.all()))
    return digests


def make_edit_token(plugin: Plugin) -> str:
    """What an edit form carries (hidden) to detect a save made after it was opened: the
    plugin's ``edit_token``, its latest revision, and a digest of each edited field (to
    say which ones changed), signed."""
    state = {
        "t": plugin.edit_token.hex if plugin.edit_token else "",
        "r": latest_number(plugin.pk),
        "o": timezone.now().isoformat(),
        "h": _field_digests(plugin),
    }
    return signing.dumps(state, salt=_TOKEN_SALT, compress=True)


@dataclass
class EditConflict:
    """The plugin changed since an edit form was opened."""

    plugin: Plugin
    changed: list[str]  # field names (and "grants") that differ from what the form was opened on
    opened_revision: int | None
    latest_revision: int
    revisions: list[PluginRevision]  # recorded since the form was opened
    opened_at: datetime | None
    readable: bool = True  # False: the form's token was damaged

    @property
    def changed_labels(self) -> list[str]:
        return [field_label(name) for name in self.changed]

    def message(self) -> str:
        """A sentence or three for the operator: what changed, who, and what to do."""
        if not self.readable:
            return (
                "This form's edit token is missing or damaged, so it cannot be checked against later changes. "
                "Nothing was saved: reload the page and make your changes again."
            )
        plugin = self.plugin
        who = ""
        if plugin.updated_by is not None:
            who = f" by {plugin.updated_by.get_username()}"
        when = timezone.localtime(plugin.updated_at).strftime("%Y-%m-%d %H:%M:%S") if plugin.updated_at else ""
        changed_after_open = self.opened_at is None or (plugin.updated_at and plugin.updated_at > self.opened_at)
        last = f" (last saved{who} at {when})" if when and changed_after_open else ""
        if self.changed:
            what = "Changed since: " + ", ".join(self.changed_labels) + "."
        else:
            what = "It was saved again with the values you opened (none of its fields differ now)."
        if self.revisions:
            what += (
                " New revisions: "
                + "; ".join(f"{r.number} ({describe_changes(r)}; {who_and_when(r)})" for r in self.revisions[:5])
                + "."
            )
        return (
            f"Someone else saved this plugin after you opened this page{last}. {what} "
            "Your changes were not saved: copy what you need, reload the page, and make them again "
            "on the current version."
        )


def check_edit_token(plugin_pk: Any, token: str, *, lock: bool = False) -> EditConflict | None:
    """Compare an edit form's token with the plugin as it is now; return the conflict, or
    None when nothing was saved since the form was opened.

    ``lock``: hold the plugin's row (``SELECT ... FOR UPDATE``) until the end of the
    current transaction, so that no save slips in between this check and the form's own.
    """
    plugins = Plugin.objects.all()
    if lock:
        db = router.db_for_write(Plugin)
        plugins = plugins.using(db)
        if connections[db].features.has_select_for_update_of:
            # Lock the plugin's row only, not the user joined for the message.
            plugins = plugins.select_related("updated_by").select_for_update(of=("self",))
        else:
            plugins = plugins.select_for_update()
    else:
        plugins = plugins.select_related("updated_by")
    plugin = plugins.filter(pk=plugin_pk).first()
    if plugin is None:
        return None  # deleted: the form's own save reports it
    try:
        state = signing.loads(token, salt=_TOKEN_SALT)
        current_token = str(state["t"])
        digests = dict(state["h"])
        opened_revision = int(state["r"])
        opened_at = datetime.fromisoformat(state["o"])
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return EditConflict(plugin, [], None, latest_number(plugin.pk), [], None, readable=False)
    if plugin.edit_token and plugin.edit_token.hex == current_token:
        return None
    now = _field_digests(plugin)
    changed = [name for name in (*edit_fields(), "grants") if digests.get(name) != now.get(name)]
    revisions = list(
        plugin.revisions.select_related("created_by").filter(number__gt=opened_revision).order_by("number")
    )
    return EditConflict(plugin, changed, opened_revision, latest_number(plugin.pk), revisions, opened_at)


def who_and_when(revision: PluginRevision) -> str:
    """``"alice, 2026-11-25 22:40"``; ``"root (command line), ..."``; ``"code, ..."``."""
    who = revision.author
    if revision.origin != PluginRevision.Origin.ADMIN:
        origin = str(revision.get_origin_display())
        who = f"{who} ({origin})" if who else origin
    return f"{who or 'unknown'}, {timezone.localtime(revision.created_at).strftime('%Y-%m-%d %H:%M')}"


def revision_rows(revisions: Sequence[PluginRevision]) -> list[dict[str, Any]]:
    """Revisions as JSON-able rows (``plugins revisions --json``)."""
    return [
        {
            "revision": r.number,
            "created": r.created_at.isoformat(),
            "by": r.author,
            "origin": r.origin,
            "comment": r.comment,
            "changes": list(r.changes),
            "rolled_back_to": r.rolled_back_to,
            "plugin_version": r.plugin_version,
        }
        for r in revisions
    ]
