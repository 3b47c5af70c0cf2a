"""Export plugins to one JSON file and import them, on this site or another.

The file (``FORMAT``, version ``FORMAT_VERSION``)::

    {
      "format": "plugins_app.plugins",
      "format_version": 1,
      "exported_at": "2026-11-25T22:03:35+00:00",
      "plugins": [
        {
          "slug": "greeter", "name": "Greeter", "description": "",
          "source": "const plugin = {...};",
          "config": {"version": "1.0.0"}, "config_schema": null,
          "priority": 100, "http_enabled": false,
          "limits": {"memory_limit_mb": 64, "timeout_ms": 1000, "max_host_calls": 200,
                     "max_rows_read": 1000, "max_rows_written": 100, "max_host_result_bytes": 1048576},
          "grants": [{"model": "auth.User", "read": ["id", "username"], "create": [], "update": [],
                      "can_delete": false}],
          "metadata": {"version": 3, "hooks": ["greet", "farewell"], "enabled": true, ...}
        }
      ]
    }

``metadata`` is informational (what the plugin was on the exporting site); importing
ignores it. Importing validates every plugin exactly like a save (sizes, limits, JSON
Schema, a trial load of the source) and saves nothing unless all of them pass. Grants are
checked against *this* site's exposure: a grant on a model not exposed here is left out,
and fields not exposed here are dropped from the grant that is kept; both are reported
(:class:`SkippedGrant`). An import never grants more than this site exposes.

Imported plugins start **disabled** (``enable=True`` to enable them); replacing an
existing plugin (``replace=True``) keeps its enabled state, its storage and its circuit
breaker state, and replaces its grants with the file's.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from . import revisions
from .exceptions import PluginError
from .exposure import get_exposure
from .models import Plugin, PluginGrant

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "ImportReport",
    "PluginImportError",
    "SkippedGrant",
    "export_data",
    "export_json",
    "export_filename",
    "import_plugins",
    "parse",
]

FORMAT = "plugins_app.plugins"
FORMAT_VERSION = 1
LIMIT_FIELDS = (
    "memory_limit_mb",
    "timeout_ms",
    "max_host_calls",
    "max_rows_read",
    "max_rows_written",
    "max_host_result_bytes",
)
GRANT_LISTS = ("read", "create", "update")
# Written only by the circuit breaker: an import leaves them alone.
BREAKER_FIELDS = ("consecutive_failures", "paused_at", "paused_reason")
# Largest file accepted (many plugins at the largest source size, with some room).
MAX_FILE_BYTES = 32 * 1024 * 1024


class PluginImportError(PluginError):
    """An import was refused; nothing was saved. ``errors`` lists every problem found."""

    def __init__(self, errors: list[str]) -> None:
        super().__init__("; ".join(errors))
        self.errors = errors


@dataclass
class SkippedGrant:
    """A grant of the file this site cannot give, in whole (``fields`` empty) or in part."""

    model: str
    reason: str
    fields: dict[str, list[str]] = field(default_factory=dict)  # "read"/"create"/"update" -> names dropped

    def __str__(self) -> str:
        if not self.fields:
            return f"{self.model}: not imported ({self.reason})"
        dropped = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in self.fields.items())
        return f"{self.model}: imported without {dropped} ({self.reason})"


@dataclass
class ImportReport:
    """What importing one plugin did."""

    plugin: Plugin
    created: bool
    grants: list[PluginGrant] = field(default_factory=list)
    skipped_grants: list[SkippedGrant] = field(default_factory=list)

    def __str__(self) -> str:
        state = "enabled" if self.plugin.enabled else "disabled"
        verb = "Imported" if self.created else "Replaced"
        return (
            f"{verb} {self.plugin.slug} version {self.plugin.version} ({state}); hooks: {', '.join(self.plugin.hooks)}; "
            f"grants: {', '.join(g.model for g in self.grants) or 'none'}"
        )


# -- export -------------------------------------------------------------------------------------


def plugin_data(plugin: Plugin) -> dict[str, Any]:
    """One plugin as it appears in an export file."""
    return {
        "slug": plugin.slug,
        "name": plugin.name,
        "description": plugin.description,
        "source": plugin.source,
        "config": plugin.config,
        "config_schema": plugin.config_schema,
        "priority": plugin.priority,
        "http_enabled": plugin.http_enabled,
        "limits": {name: getattr(plugin, name) for name in LIMIT_FIELDS},
        "grants": [
            {
                "model": g.model,
                "read": list(g.read),
                "create": list(g.create),
                "update": list(g.update),
                "can_delete": g.can_delete,
            }
            for g in plugin.grants.order_by("model")
        ],
        "metadata": {
            "version": plugin.version,
            "fingerprint": plugin.fingerprint,
            "hooks": list(plugin.hooks or []),
            "enabled": plugin.enabled,
            "created_at": plugin.created_at.isoformat() if plugin.created_at else None,
            "updated_at": plugin.updated_at.isoformat() if plugin.updated_at else None,
        },
    }


def export_data(plugins: Iterable[Plugin], *, exported_by: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "exported_at": timezone.now().isoformat(timespec="seconds"),
    }
    if exported_by:
        data["exported_by"] = exported_by
    data["plugins"] = [plugin_data(p) for p in plugins]
    return data


def export_json(plugins: Iterable[Plugin], *, exported_by: str | None = None) -> str:
    """The export file's text (UTF-8, indented, ending with a newline)."""
    return json.dumps(export_data(plugins, exported_by=exported_by), indent=2, ensure_ascii=False) + "\n"


def export_filename(plugins: list[Plugin]) -> str:
    if len(plugins) == 1:
        return f"{plugins[0].slug}.plugin.json"
    return f"plugins-{timezone.now():%Y%m%d-%H%M%S}.json"


# -- import -------------------------------------------------------------------------------------


def parse(data: bytes | str) -> list[dict[str, Any]]:
    """The plugin entries of an export file; :class:`PluginImportError` if it is not one."""
    if isinstance(data, bytes):
        if len(data) > MAX_FILE_BYTES:
            raise PluginImportError([f"The file is over {MAX_FILE_BYTES} bytes."])
        try:
            data = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise PluginImportError(["The file is not UTF-8 text."]) from None
    try:
        document = json.loads(data)
    except json.JSONDecodeError as exc:
        raise PluginImportError([f"Not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})."]) from None
    except RecursionError:
        raise PluginImportError(["The JSON is nested too deeply."]) from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise PluginImportError([f'Not a plugin export file (expected "format": "{FORMAT}").'])
    version = document.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise PluginImportError(["The file has no valid format_version."])
    if version > FORMAT_VERSION:
        raise PluginImportError(
            [
                f"The file is format version {version}; this site reads up to version {FORMAT_VERSION} "
                "(it was exported by a newer plugins_app)."
            ]
        )
    plugins = document.get("plugins")
    if not isinstance(plugins, list) or not plugins:
        raise PluginImportError(['The file has no "plugins" list, or it is empty.'])
    errors = []
    for index, entry in enumerate(plugins, 1):
        if not isinstance(entry, dict):
            errors.append(f"Plugin {index}: not a JSON object.")
        elif not isinstance(entry.get("slug"), str) or not entry["slug"]:
            errors.append(f"Plugin {index}: no slug.")
    slugs = [e["slug"] for e in plugins if isinstance(e, dict) and isinstance(e.get("slug"), str)]
    for slug in sorted({s for s in slugs if slugs.count(s) > 1}):
        errors.append(f"{slug}: appears more than once in the file.")
    if errors:
        raise PluginImportError(errors)
    return plugins


def _string_list(value: Any) -> list[str] | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(dict.fromkeys(value))
    return None


def satisfy_grant(entry: Any) -> tuple[dict[str, Any] | None, SkippedGrant | None, str | None]:
    """``(grant fields, skipped, error)`` for one grant of the file: what this site can
    give (within its exposure), what it cannot, or why the entry is malformed."""
    if not isinstance(entry, dict) or not isinstance(entry.get("model"), str) or not entry["model"]:
        return None, None, "a grant without a model"
    label = entry["model"]
    lists = {kind: _string_list(entry.get(kind, [])) for kind in GRANT_LISTS}
    bad = [kind for kind, value in lists.items() if value is None]
    if bad or not isinstance(entry.get("can_delete", False), bool):
        return None, None, f"grant on {label}: {', '.join(bad) or 'can_delete'} is not valid"
    exposure = get_exposure(label)
    if exposure is None:
        return None, SkippedGrant(label, "this site does not expose that model to plugins"), None
    allowed = {"read": exposure.read, "create": exposure.write, "update": exposure.write}
    kept: dict[str, Any] = {"model": exposure.label, "can_delete": entry.get("can_delete", False)}
    dropped: dict[str, list[str]] = {}
    for kind in GRANT_LISTS:
        names = lists[kind] or []
        kept[kind] = [n for n in names if n in allowed[kind]]
        missing = [n for n in names if n not in allowed[kind]]
        if missing:
            dropped[kind] = missing
    if not dropped:
        return kept, None, None
    if not any(kept[kind] for kind in GRANT_LISTS) and not kept["can_delete"]:
        return None, SkippedGrant(exposure.label, "none of its fields are exposed here"), None
    return kept, SkippedGrant(exposure.label, "not exposed here", dropped), None


def _apply(plugin: Plugin, entry: dict[str, Any], errors: list[str]) -> None:
    slug = entry["slug"]

    def take(name: str, kinds: tuple[type, ...], value: Any) -> None:
        if isinstance(value, bool) and bool not in kinds:
            errors.append(f"{slug}: {name} must be {' or '.join(k.__name__ for k in kinds)}.")
        elif isinstance(value, kinds):
            setattr(plugin, name, value)
        else:
            errors.append(f"{slug}: {name} must be {' or '.join(k.__name__ for k in kinds)}.")

    if "name" in entry:
        take("name", (str,), entry["name"])
    if not plugin.name:
        plugin.name = slug
    for name, kinds in (("description", (str,)), ("source", (str,)), ("priority", (int,)), ("http_enabled", (bool,))):
        if name in entry:
            take(name, kinds, entry[name])
    if "source" not in entry:
        errors.append(f"{slug}: no source.")
    if "config" in entry:
        plugin.config = entry["config"]  # validated as a JSON object by the model
    if "config_schema" in entry:
        plugin.config_schema = entry["config_schema"]
    limits = entry.get("limits", {})
    if not isinstance(limits, dict):
        errors.append(f"{slug}: limits must be an object.")
        return
    for name in LIMIT_FIELDS:
        if name in limits:
            take(name, (int,), limits[name])


def import_plugins(
    data: bytes | str,
    *,
    replace: bool = False,
    enable: bool = False,
    user: Any = None,
    grants: bool = True,
    origin: str = "code",
    name: str = "",
    comment: str = "",
) -> list[ImportReport]:
    """Import every plugin of an export file; all or nothing.

    ``replace``: a plugin whose slug exists here is updated (else that is an error).
    ``enable``: imported plugins are enabled (else new ones are disabled and replaced
    ones keep their state). ``grants=False``: the file's grants are not imported (all
    reported as skipped; a replaced plugin keeps its own), for users who may not grant.
    ``origin``, ``user`` (or ``name``) and ``comment`` go to the revision each imported plugin gets
    (:mod:`plugins_app.revisions`). Raises :class:`PluginImportError` listing every problem; nothing is saved then.
    """
    entries = parse(data)
    errors: list[str] = []
    prepared: list[tuple[Plugin, bool, list[dict[str, Any]], list[SkippedGrant]]] = []
    for entry in entries:
        slug = entry["slug"]
        existing = Plugin.objects.filter(slug=slug).first()
        if existing is not None and not replace:
            errors.append(f"{slug}: a plugin with this slug exists; import with replace to update it.")
            continue
        plugin = existing or Plugin(slug=slug, enabled=False)
        before = len(errors)
        _apply(plugin, entry, errors)
        if enable:
            plugin.enabled = True
        if len(errors) == before:
            try:
                plugin.full_clean()  # everything a save checks, the trial load included
            except ValidationError as exc:
                for name, messages in exc.message_dict.items():
                    errors.extend(f"{slug}: {name}: {message}" for message in messages)
        kept: list[dict[str, Any]] = []
        skipped: list[SkippedGrant] = []
        raw_grants = entry.get("grants", [])
        if not isinstance(raw_grants, list):
            errors.append(f"{slug}: grants must be a list.")
            raw_grants = []
        for raw in raw_grants:
            fields, skip, problem = satisfy_grant(raw)
            if problem:
                errors.append(f"{slug}: {problem}.")
                continue
            if not grants:
                label = raw["model"]
                skipped.append(SkippedGrant(label, "you may not grant model access"))
                continue
            if skip:
                skipped.append(skip)
            if fields:
                kept.append(fields)
        models = [g["model"].lower() for g in kept]
        for label in sorted({m for m in models if models.count(m) > 1}):
            errors.append(f"{slug}: more than one grant on {label}.")
        prepared.append((plugin, existing is None, kept, skipped))
    if errors:
        raise PluginImportError(errors)

    reports = []
    if not comment:
        comment = "Imported from an export file."
    with transaction.atomic(), revisions.recording(origin=origin, user=user, name=name, comment=comment):
        for plugin, created, kept, skipped in prepared:
            if user is not None and getattr(user, "pk", None) is not None:
                if created:
                    plugin.created_by = user
                plugin.updated_by = user
            if created:
                plugin.save()
            else:
                # Leave the circuit breaker's columns alone (see PluginAdmin.save_model).
                plugin.save(
                    update_fields=[
                        f.name
                        for f in Plugin._meta.concrete_fields
                        if not f.primary_key and f.name not in BREAKER_FIELDS
                    ]
                )
            saved_grants = []
            if grants:
                wanted = {g["model"].lower(): g for g in kept}
                for old in plugin.grants.all():
                    if old.model.lower() not in wanted:
                        old.delete()
                current = {g.model.lower(): g for g in plugin.grants.all()}
                for key, values in wanted.items():
                    grant = current.get(key) or PluginGrant(plugin=plugin)
                    changed = grant.pk is None or any(
                        getattr(grant, name) != values[name] for name in ("model", *GRANT_LISTS, "can_delete")
                    )
                    for name, value in values.items():
                        setattr(grant, name, value)
                    if changed:
                        grant.full_clean()  # within the exposure (checked above; the model checks again)
                        grant.save()
                    saved_grants.append(grant)
            plugin.refresh_from_db()
            reports.append(ImportReport(plugin, created, saved_grants, skipped))
    return reports
