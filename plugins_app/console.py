"""The operator console: run one hook of one plugin, its saved version or an unsaved
draft, as a dry run (every host write rolled back) or a real run, and report everything
about the call. Used by the admin's *Console* page (:mod:`plugins_app.admin.console`) and
by tests; it checks no permissions (the admin does).

What sets a console call apart from a site call:

- **Never seen by the circuit breaker**: a failure does not count towards a pause and a
  success does not reset a paused plugin's count (``hooks._run_row(count_failures=False)``).
- **Runs whatever the plugin's state**: disabled and paused plugins can be tried (that is
  what operators do before enabling or resuming one).
- **Dry run**: the call runs inside ``transaction.atomic()`` blocks (on the default
  database and on every database a granted model routes its writes to) that are rolled
  back afterwards. Host calls run on this thread with its connections (see
  docs/operators.md, *Transactions and writes*), so every ``db`` write, every ``storage``
  change (``set``, ``delete``, ``incr``) and every outbox row a write's signal recorded is
  undone. Reads see what the call itself wrote, as in a real run.
- **A runtime of its own** for drafts and dry runs: the sandbox keys warm runtimes by
  plugin and version and keeps one version per plugin, so a draft loaded under the
  plugin's own key would evict (or be mistaken for) the runtime that serves the site.
  Console runtimes are keyed ``<slug>~console@<version>:<fingerprint>`` (``~`` is not
  allowed in a slug): the live runtime stays warm, drafts replace each other, and state a
  dry run leaves in JavaScript globals never reaches site calls. A real run of the saved
  version uses the live runtime, like any site call.
- **Drafts are validated like a save** (:func:`plugins_app.validation.validate_plugin`:
  sizes, limits, JSON Schema, trial load); a refused draft is reported field by field,
  with the line and column of a script error, and not run. A draft runs with the saved
  plugin's limits, grants and storage.
"""

from __future__ import annotations

import dataclasses
import json
import re
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, router, transaction

from . import calllog, hooks
from .exceptions import PluginError, PluginNotFound, PluginScriptError
from .exposure import get_exposure
from .host_api import HostContext, LogLine
from .models import DispatchRow, Plugin, make_runtime_key
from .validation import validate_plugin

__all__ = ["ConsoleError", "ConsoleRun", "DRAFT_FIELDS", "draft_error", "make_draft", "run", "validate_draft"]

# What a draft may change; everything else (limits, grants, storage) is the saved plugin's.
DRAFT_FIELDS = ("source", "config", "config_schema")
# Suffix of the slug under which console runtimes live in the sandbox (not a slug character).
RUNTIME_SUFFIX = "~console"
# "SyntaxError: Unexpected token ';' (line 2, column 24)": validation.load_error_message.
_POSITION = re.compile(r"\(line (\d+), column (\d+)\)")


@dataclass
class ConsoleError:
    """What went wrong, for display: the exception's class and message, and for script
    errors the JS error's name, message, stack and position (1-based line and column)."""

    kind: str
    message: str
    js_name: str | None = None
    js_message: str | None = None
    stack: str | None = None
    line: int | None = None
    column: int | None = None
    field: str | None = None  # a refused draft: the field at fault

    @property
    def text(self) -> str:
        text = f"{self.kind}: {self.message}"
        if self.stack:
            text += "\n\n" + self.stack
        return text


@dataclass
class ConsoleRun:
    """One console call and everything known about it."""

    slug: str
    hook: str
    args: list[Any]
    dry_run: bool
    draft: bool
    version: int  # the saved version (a draft runs "on top of" it)
    fingerprint: str  # of the code that ran (the draft's for a draft)
    ok: bool = False
    value: Any = None
    duration_ms: float | None = None
    logs: list[LogLine] = field(default_factory=list)
    dropped_logs: int = 0
    host_calls: int = 0
    rows_read: int = 0
    rows_written: int = 0
    host_result_bytes: int = 0
    limits: dict[str, int] = field(default_factory=dict)
    error: ConsoleError | None = None
    # A refused draft: field -> messages (nothing ran).
    draft_errors: dict[str, list[str]] = field(default_factory=dict)
    draft_hooks: list[str] = field(default_factory=list)
    # Memory use per call is not reported by the sandbox process (only the limit is known).
    memory_used_bytes: int | None = None

    @property
    def ran(self) -> bool:
        return not self.draft_errors

    @property
    def value_json(self) -> str:
        return json.dumps(self.value, indent=2, ensure_ascii=False)

    @property
    def mode_text(self) -> str:
        return "Dry run: writes are rolled back" if self.dry_run else "Real run: writes are kept"


# -- drafts ---------------------------------------------------------------------------------


def make_draft(plugin: Plugin, **changes: Any) -> Plugin:
    """An unsaved copy of ``plugin`` with ``changes`` (some of :data:`DRAFT_FIELDS`)."""
    unknown = set(changes) - set(DRAFT_FIELDS)
    if unknown:
        raise TypeError(f"a draft may change only {', '.join(DRAFT_FIELDS)}, not {', '.join(sorted(unknown))}")
    values = {f.attname: getattr(plugin, f.attname) for f in Plugin._meta.concrete_fields if not f.primary_key}
    draft = Plugin(**values)
    draft.pk = None  # never saved: a draft only runs
    for name, value in changes.items():
        setattr(draft, name, value)
    return draft


def validate_draft(draft: Plugin) -> dict[str, list[str]]:
    """Validate ``draft`` like a save would; return the errors by field (empty if none).
    On success ``draft.hooks`` holds the hooks its source defines."""
    try:
        validate_plugin(draft)
    except ValidationError as exc:
        return {name: [str(m) for m in messages] for name, messages in exc.message_dict.items()}
    return {}


def error_position(message: str) -> tuple[int, int] | None:
    """``(line, column)`` named by a validation message, if any."""
    match = _POSITION.search(message)
    return (int(match.group(1)), int(match.group(2))) if match else None


# -- running --------------------------------------------------------------------------------


def _runtime_spec(row: DispatchRow, fingerprint: str, source: str, config: Any) -> dict[str, Any]:
    """The sandbox spec of a console runtime (see the module docstring)."""
    slug = row.slug + RUNTIME_SUFFIX
    return {
        "key": make_runtime_key(slug, row.version, fingerprint),
        "slug": slug,
        "source": source,
        "config": json.dumps(config, ensure_ascii=False),
        "memory_mb": row.memory_limit_mb,
    }


def write_databases(plugin: Plugin) -> list[str]:
    """The databases a call of ``plugin`` may write to: ``default`` (storage, the outbox)
    and those the router picks for writes of each model it is granted."""
    aliases = {DEFAULT_DB_ALIAS}
    for label in plugin.grants.values_list("model", flat=True):
        exposure = get_exposure(label)
        if exposure is not None:
            aliases.add(router.db_for_write(exposure.model) or DEFAULT_DB_ALIAS)
    return sorted(aliases)


@contextmanager
def rolled_back(aliases: list[str]) -> Iterator[None]:
    """Run the block in transactions (savepoints, inside a caller's transaction) on each
    of ``aliases`` that are rolled back at the end, whatever happens in the block."""
    with ExitStack() as stack:
        for alias in aliases:
            stack.enter_context(transaction.atomic(using=alias))
        try:
            yield
        finally:
            for alias in aliases:
                transaction.set_rollback(True, using=alias)


def _error(exc: PluginError, slug: str) -> ConsoleError:
    error = ConsoleError(type(exc).__name__, str(exc))
    if isinstance(exc, PluginScriptError):
        error.js_name, error.js_message = exc.name, exc.js_message
        error.line, error.column = exc.line, exc.column
        # Console runtimes name the script after their own key's slug: show the plugin's.
        error.stack = (exc.stack or "").replace(f"{slug}{RUNTIME_SUFFIX}.js", f"{slug}.js") or None
    return error


def run(
    plugin: Plugin,
    hook: str,
    args: list[Any] | tuple[Any, ...] = (),
    *,
    draft: Plugin | None = None,
    dry_run: bool = True,
    timeout: float | None = None,
) -> ConsoleRun:
    """Run ``hook`` of ``plugin`` (its saved version, or ``draft`` from :func:`make_draft`)
    with ``args`` and report the outcome; plugin failures are reported, not raised.

    ``dry_run`` (the default) rolls back every write the call made. The plugin's circuit
    breaker is never touched, and disabled or paused plugins run too.
    Raises :class:`~plugins_app.exceptions.PluginNotFound` if the plugin was deleted.
    """
    row = Plugin.objects.dispatch_row(plugin.slug)
    if row is None or row.pk != plugin.pk:
        raise PluginNotFound(f"no plugin {plugin.slug!r} is installed", slug=plugin.slug)
    outcome = ConsoleRun(
        slug=row.slug,
        hook=hook,
        args=list(args),
        dry_run=dry_run,
        draft=draft is not None,
        version=row.version,
        fingerprint=row.fingerprint,
        limits={
            "memory_mb": row.memory_limit_mb,
            "timeout_ms": row.timeout_ms,
            "host_calls": row.max_host_calls,
            "rows_read": row.max_rows_read,
            "rows_written": row.max_rows_written,
            "host_result_bytes": row.max_host_result_bytes,
        },
    )
    spec: dict[str, Any] | None = None
    if draft is not None:
        outcome.draft_errors = validate_draft(draft)
        if outcome.draft_errors:
            outcome.error = draft_error(outcome.draft_errors)
            return outcome
        outcome.draft_hooks = list(draft.hooks)
        outcome.fingerprint = draft.compute_fingerprint()
        row = dataclasses.replace(row, hooks=tuple(draft.hooks), fingerprint=outcome.fingerprint)
        spec = _runtime_spec(row, outcome.fingerprint, draft.source, draft.config)
    elif dry_run:
        saved = Plugin.objects.filter(pk=row.pk).values("source", "config", "fingerprint").get()
        row = dataclasses.replace(row, fingerprint=saved["fingerprint"])
        spec = _runtime_spec(row, saved["fingerprint"], saved["source"], saved["config"])
    context = hooks._host_context(row)
    started = time.perf_counter()
    with calllog.caller("console"), rolled_back(write_databases(plugin)) if dry_run else nullcontext():
        try:
            result = hooks._run_row(row, hook, tuple(args), timeout, count_failures=False, context=context, spec=spec)
        except PluginError as exc:
            outcome.error = _error(exc, row.slug)
            outcome.duration_ms = (time.perf_counter() - started) * 1000.0
        else:
            outcome.ok, outcome.value, outcome.duration_ms = True, result.value, result.duration_ms
    _take_counters(outcome, context)
    return outcome


def _take_counters(outcome: ConsoleRun, context: HostContext) -> None:
    outcome.logs = list(context.logs)
    outcome.dropped_logs = context.dropped_logs
    outcome.host_calls = context.host_calls
    outcome.rows_read = context.rows_read
    outcome.rows_written = context.rows_written
    outcome.host_result_bytes = context.result_bytes


def draft_error(errors: dict[str, list[str]]) -> ConsoleError:
    """The first error of a refused draft, the source's first (with its position)."""
    name = "source" if "source" in errors else next(iter(errors))
    message = errors[name][0]
    error = ConsoleError("PluginValidationError", f"{name}: {message}", field=name)
    if name == "source":
        position = error_position(message)
        if position:
            error.line, error.column = position
    return error
