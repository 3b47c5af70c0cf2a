"""Django admin for the execution log and plugin health.

* *Calls* (``CallRecordAdmin``): every recorded hook call (failures, and the sample of
  successes), filtered by plugin, hook, outcome, caller, error class and date, searchable;
  each record shows the error with its JavaScript stack and line/column, the log lines,
  arguments and result, host-call counts, and *Replay in console*. Read-only for
  everyone: the execution log writes the rows and retention deletes them.
* Plugin health (``HealthAdminMixin``, mixed into the plugin admin): a *Health* page per
  plugin (calls, errors, timeouts, memory errors, p50/p95 over the last hour and day,
  last called, the circuit breaker's state, charts), a summary on the plugin's page and a
  sparkline column on the plugin list (one query for the whole page). Read from the
  per-minute aggregates (:mod:`plugins_app.metrics`), which count every call.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.template.loader import render_to_string
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.safestring import SafeString

from .. import conf, metrics
from ..deliveries import readable_stack
from ..exceptions import PluginError
from ..models import CallRecord, Plugin, PluginHook
from . import charts
from .bases import CallRecordModelAdmin, PluginAdminMixin, fieldset_names

# The console (another admin screen) takes ?hook=...&args=<JSON list>; longer argument
# lists do not fit in a link.
REPLAY_MAX_ARGS_CHARS = 6000
SHORT_ERROR_CHARS = 60
RECENT_FAILURES = 10

SMALL = "font-size:0.75rem;white-space:nowrap"
OUTCOME_COLOURS = {"ok": "#2e7d32", "error": "#ba2121", "timeout": "#b35900", "memory": "#6a1b9a"}


# -- links --------------------------------------------------------------------------------------------


def can_view_calls(request: HttpRequest) -> bool:
    """Whether the user may see the execution log (view or change permission on CallRecord)."""
    opts = CallRecord._meta
    return any(
        request.user.has_perm(f"{opts.app_label}.{get_permission_codename(action, opts)}")
        for action in ("view", "change")
    )


def calls_list_url(
    *, plugin_id: int | None = None, outcome: str | None = None, failed: bool | None = None, site_name: str = "admin"
) -> str:
    """The execution log, filtered by plugin, outcome and/or failed or not, with the list's
    own filters."""
    url = reverse("admin:plugins_app_callrecord_changelist", current_app=site_name)
    query: dict[str, Any] = {}
    if plugin_id is not None:
        query["plugin__id__exact"] = plugin_id
    if outcome is not None:
        query["outcome__exact"] = outcome
    if failed is not None:
        query[FailedListFilter.parameter_name] = "yes" if failed else "no"
    return f"{url}?{urlencode(query)}" if query else url


def health_url(plugin_id: int, site_name: str = "admin") -> str:
    return reverse("admin:plugins_app_plugin_health", args=[plugin_id], current_app=site_name)


def replay_url(record: CallRecord, site_name: str = "admin") -> str | None:
    """The console, opened on this record's plugin with its hook and arguments; None if the
    console does not exist (yet) or the arguments were not kept whole."""
    if not record.args_complete or len(record.args) > REPLAY_MAX_ARGS_CHARS:
        return None
    try:
        url = reverse("admin:plugins_app_plugin_console", args=[record.plugin_id], current_app=site_name)
    except NoReverseMatch:
        return None
    return f"{url}?{urlencode({'hook': record.hook, 'args': record.args})}"


# -- formatting ---------------------------------------------------------------------------------------


def ms(value: float | None) -> str:
    if value is None:
        return "—"
    if value < 10:
        return f"{value:.2f}\u00a0ms"
    if value < 1000:
        return f"{value:.0f}\u00a0ms"
    return f"{value / 1000:.2f}\u00a0s"


def percent(rate: float | None) -> str:
    if rate is None:
        return "—"
    return f"{rate * 100:.1f}\u00a0%" if rate < 0.995 or rate == 1 else "99.5\u00a0%+"


def outcome_badge(outcome: str) -> SafeString:
    label = CallRecord.Outcome(outcome).label if outcome in CallRecord.Outcome.values else outcome
    return format_html(
        '<span class="call-outcome call-outcome-{}" style="color:{};font-weight:bold">{}</span>',
        outcome,
        OUTCOME_COLOURS.get(outcome, "inherit"),
        label,
    )


def pretty_json(text: str) -> str:
    """Indented JSON of ``text`` if it parses, else ``text`` as it is (cut data)."""
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False)
    except ValueError:
        return text


def _kib(size: int) -> str:
    return f"{size:,}\u00a0bytes" if size < 1024 else f"{size / 1024:,.1f}\u00a0KiB"


# -- the execution log --------------------------------------------------------------------------------


class HookListFilter(admin.SimpleListFilter):
    """By hook, offering the hooks installed plugins define (from the small hook index,
    not a DISTINCT over the whole log); any other name works in the URL too."""

    title = "hook"
    parameter_name = "hook"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        names = PluginHook.objects.order_by("name").values_list("name", flat=True).distinct()
        return [(name, name) for name in names]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        return queryset.filter(hook=self.value()) if self.value() else queryset


def _error_classes(base: type[PluginError] = PluginError) -> list[str]:
    names = []
    for cls in base.__subclasses__():
        names.append(cls.__name__)
        names.extend(_error_classes(cls))
    return names


class ErrorClassListFilter(admin.SimpleListFilter):
    """By error class: the ``PluginError`` subclasses (no DISTINCT over the log)."""

    title = "error class"
    parameter_name = "error_class"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        return [(name, name) for name in sorted(set(_error_classes()))]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        return queryset.filter(error_class=self.value()) if self.value() else queryset


class FailedListFilter(admin.SimpleListFilter):
    """Failed calls (any outcome but ok), or the successes."""

    title = "failed"
    parameter_name = "failed"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin[Any]) -> list[tuple[str, str]]:
        return [("yes", "Failed"), ("no", "Succeeded")]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        if self.value() == "yes":
            return queryset.exclude(outcome=CallRecord.Outcome.OK)
        if self.value() == "no":
            return queryset.filter(outcome=CallRecord.Outcome.OK)
        return queryset


@admin.register(CallRecord)
class CallRecordAdmin(CallRecordModelAdmin):
    list_display = ("started", "plugin_slug", "hook", "caller", "outcome_display", "duration", "short_error")
    list_display_links = ("started",)
    list_select_related = ("plugin",)
    list_filter = ("plugin", HookListFilter, FailedListFilter, "outcome", "caller", ErrorClassListFilter, "started_at")
    search_fields = ("hook", "plugin__slug", "error_class", "error_message", "js_message")
    show_full_result_count = False  # COUNT(*) over a large log is slow; the filtered count is enough
    actions = None
    fieldsets = (
        (
            None,
            {
                "fields": (
                    "plugin_link",
                    "plugin_version",
                    "hook",
                    "caller",
                    "outcome_display",
                    "started_at",
                    "duration",
                    "sampled",
                    "replay",
                )
            },
        ),
        ("Error", {"fields": ("error_class", "error_text", "location", "stack_text")}),
        ("Log", {"fields": ("log_lines",)}),
        ("Arguments and result", {"fields": ("args_text", "result_text")}),
        ("Host calls", {"fields": ("host_calls", "rows_read", "rows_written", "host_result_bytes")}),
    )
    readonly_fields = fieldset_names(fieldsets)

    # -- read-only for everyone ------------------------------------------------------------------
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: CallRecord | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: CallRecord | None = None) -> bool:
        return False

    def get_fieldsets(self, request: HttpRequest, obj: CallRecord | None = None) -> Any:
        if obj is not None and obj.outcome == CallRecord.Outcome.OK:
            return [spec for spec in self.fieldsets if spec[0] != "Error"]
        return self.fieldsets

    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        if object_id is not None:
            record = self.get_object(request, object_id)
            if record is not None:
                extra_context = {
                    **(extra_context or {}),
                    "replay_url": replay_url(record, self.admin_site.name),
                    "health_url": health_url(record.plugin_id, self.admin_site.name),
                }
        return super().changeform_view(request, object_id, form_url, extra_context)

    # -- columns ----------------------------------------------------------------------------------
    @admin.display(description="started", ordering="started_at")
    def started(self, obj: CallRecord) -> str:
        return _local(obj.started_at, "Y-m-d H:i:s")

    @admin.display(description="plugin", ordering="plugin__slug")
    def plugin_slug(self, obj: CallRecord) -> str:
        return obj.plugin.slug

    @admin.display(description="outcome", ordering="outcome")
    def outcome_display(self, obj: CallRecord) -> SafeString:
        return outcome_badge(obj.outcome)

    @admin.display(description="duration", ordering="duration_ms")
    def duration(self, obj: CallRecord) -> str:
        return ms(obj.duration_ms)

    @admin.display(description="error")
    def short_error(self, obj: CallRecord) -> str:
        if not obj.error_message:
            return ""
        first = obj.error_message.splitlines()[0].replace(f"plugin '{obj.plugin.slug}' ", "", 1)
        short = first if len(first) <= SHORT_ERROR_CHARS else first[: SHORT_ERROR_CHARS - 1] + "…"
        return format_html('<span title="{}">{}: {}</span>', obj.error_message[:2000], obj.error_class, short)

    # -- detail page ------------------------------------------------------------------------------
    @admin.display(description="plugin")
    def plugin_link(self, obj: CallRecord) -> str:
        url = reverse("admin:plugins_app_plugin_change", args=[obj.plugin_id], current_app=self.admin_site.name)
        return format_html('<a href="{}">{}</a> (now version {})', url, obj.plugin.slug, obj.plugin.version)

    @admin.display(description="replay")
    def replay(self, obj: CallRecord) -> str:
        url = replay_url(obj, self.admin_site.name)
        if url is not None:
            return format_html('<a class="button" id="call-replay-link" href="{}">Replay in console</a>', url)
        if obj.redacted:
            return "No replay: the arguments were not stored (CALL_LOG_REDACT_ARGS)."
        if not obj.args:
            return "No replay: the call failed before its arguments were encoded."
        if not obj.args_complete:
            return "No replay: the arguments were cut (CALL_LOG_MAX_DATA_BYTES)."
        if len(obj.args) > REPLAY_MAX_ARGS_CHARS:
            return "No replay: the arguments are too long for a link."
        return "—"

    @admin.display(description="error")
    def error_text(self, obj: CallRecord) -> str:
        if not obj.error_message:
            return "—"
        return format_html('<pre class="call-text call-error">{}</pre>', obj.error_message)

    @admin.display(description="where")
    def location(self, obj: CallRecord) -> str:
        if obj.line is None:
            return "—"
        name = f"{obj.js_error_name}: " if obj.js_error_name else ""
        column = f", column {obj.column}" if obj.column is not None else ""
        return format_html("{}{} at line {}{}", name, obj.js_message, obj.line, column)

    @admin.display(description="JavaScript stack")
    def stack_text(self, obj: CallRecord) -> str:
        if not obj.js_stack:
            return "—"
        return format_html('<pre class="call-text">{}</pre>', readable_stack(obj.js_stack))

    @admin.display(description="log lines")
    def log_lines(self, obj: CallRecord) -> str:
        lines = [f"[{line.get('level', 'info')}] {line.get('message', '')}" for line in obj.logs or []]
        note = ""
        if obj.logs_dropped:
            note = format_html('<p class="help">{} more line(s) not kept.</p>', obj.logs_dropped)
        if not lines:
            return format_html("—{}", note)
        return format_html('<pre class="call-text">{}</pre>{}', "\n".join(lines), note)

    def _data(self, obj: CallRecord, text: str, size: int) -> str:
        if obj.redacted:
            return "Not stored (CALL_LOG_REDACT_ARGS)."
        if not text:
            return "—"
        stored = len(text.encode("utf-8"))
        note = ""
        if stored < size:
            note = format_html('<p class="help call-cut">Showing the first {} of {}.</p>', _kib(stored), _kib(size))
            shown = text
        else:
            shown = pretty_json(text)
        return format_html('<pre class="call-text">{}</pre>{}', shown, note)

    @admin.display(description="arguments")
    def args_text(self, obj: CallRecord) -> str:
        return self._data(obj, obj.args, obj.args_bytes)

    @admin.display(description="result")
    def result_text(self, obj: CallRecord) -> str:
        if obj.outcome != CallRecord.Outcome.OK:
            return "—"
        return self._data(obj, obj.result, obj.result_bytes)


# -- plugin health --------------------------------------------------------------------------------------

HEALTH_FIELDSET = ("Health", {"fields": ("health_panel",)})


def _summary_rows(health: metrics.Health) -> list[tuple[str, str, str]]:
    hour, day = health.hour, health.day
    return [
        ("Calls", f"{hour.calls:,}", f"{day.calls:,}"),
        ("Errors", f"{hour.errors:,} ({percent(hour.error_rate)})", f"{day.errors:,} ({percent(day.error_rate)})"),
        ("Timeouts", f"{hour.timeouts:,}", f"{day.timeouts:,}"),
        ("Memory errors", f"{hour.memory_errors:,}", f"{day.memory_errors:,}"),
        ("p50 latency", ms(hour.p50_ms), ms(day.p50_ms)),
        ("p95 latency", ms(hour.p95_ms), ms(day.p95_ms)),
        ("Longest call", ms(hour.duration_ms_max or None), ms(day.duration_ms_max or None)),
    ]


def _local(moment: Any, fmt: str) -> str:
    return date_format(timezone.localtime(moment) if timezone.is_aware(moment) else moment, fmt)


def health_charts(health: metrics.Health) -> dict[str, SafeString]:
    minutes = [(_local(b.start, "H:i"), b.summary.calls, b.summary.errors) for b in health.minutes]
    hours = [(_local(b.start, "H:00"), b.summary.calls, b.summary.errors) for b in health.hours]
    return {
        "minutes_chart": charts.bar_chart(minutes, label="Calls per minute, last hour"),
        "hours_chart": charts.bar_chart(hours, label="Calls per hour, last 24 hours"),
        "latency_chart": charts.line_chart(
            [label for label, _, _ in hours],
            [
                ("p50", charts.P50_COLOUR, [b.summary.p50_ms for b in health.hours]),
                ("p95", charts.P95_COLOUR, [b.summary.p95_ms for b in health.hours]),
            ],
            label="Latency per hour, last 24 hours",
        ),
    }


def breaker_state(plugin: Plugin) -> str:
    if plugin.paused_at is not None:
        return f"paused since {_local(plugin.paused_at, 'Y-m-d H:i')}"
    threshold = conf.get("BREAKER_THRESHOLD")
    if not threshold:
        return "circuit breaker off"
    return f"closed ({plugin.consecutive_failures} of {threshold} failures in a row)"


class HealthAdminMixin(PluginAdminMixin):
    """Health on the plugin admin: a *Health* page per plugin (``<id>/health/``), the
    ``health_panel`` read-only field (put :data:`HEALTH_FIELDSET` in the fieldsets) and
    the ``call_health`` column (sparkline of the last 24 hours; one query per page)."""

    def get_urls(self) -> list[URLPattern]:
        extra = [
            path(
                "<path:object_id>/health/",
                self.admin_site.admin_view(self.health_view),
                name="plugins_app_plugin_health",
            )
        ]
        return extra + super().get_urls()

    def get_readonly_fields(self, request: HttpRequest, obj: Plugin | None = None) -> Any:
        fields = super().get_readonly_fields(request, obj)
        return (*fields, "health_panel") if "health_panel" not in fields else fields

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Plugin | None = None,
    ) -> HttpResponse:
        if obj is not None:
            # Read by health_panel while the page renders (it gets no request).
            obj._health_show_calls = can_view_calls(request)  # type: ignore[attr-defined]  # a mark for this page only
        return super().render_change_form(request, context, add, change, form_url, obj)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        response = super().changelist_view(request, extra_context)
        context = getattr(response, "context_data", None)  # a TemplateResponse's
        cl = context and context.get("cl")
        if cl is not None:
            objects = list(cl.result_list)  # the page's query, run once; rendering reuses it
            lines = metrics.sparklines(obj.pk for obj in objects)
            for obj in objects:
                obj._call_sparkline = lines.get(obj.pk)
        return response

    @admin.display(description="calls (24 h)")
    def call_health(self, obj: Plugin) -> SafeString:
        """Calls per hour over the last day, and the day's total and errors: narrow (the
        plugin list fits 1280 px), the numbers also in the sparkline's tooltip."""
        line = getattr(obj, "_call_sparkline", None)
        if line is None:
            line = metrics.sparklines([obj.pk])[obj.pk]
        if not line.total_calls:
            return format_html('<span class="plugin-calls-none" style="{}">{}</span>', SMALL, "no calls")
        label = f"{line.total_calls:,} calls, {line.total_errors:,} errors in the last 24 hours"
        errors = ""
        if line.total_errors:
            errors = format_html(
                ' <span style="color:{}">{}\u00a0err</span>', charts.ERRORS_COLOUR, f"{line.total_errors:,}"
            )
        return format_html(
            '{}<br><span class="plugin-calls-count" style="{}">{}{}</span>',
            charts.sparkline(line.calls, line.errors, label=label, width=60, height=16),
            SMALL,
            f"{line.total_calls:,}",
            errors,
        )

    @admin.display(description="calls")
    def health_panel(self, obj: Plugin) -> SafeString:
        if obj.pk is None:
            return format_html("{}", "—")
        health = metrics.plugin_health(obj.pk)
        site = self.admin_site.name
        hours = [(_local(b.start, "H:00"), b.summary.calls, b.summary.errors) for b in health.hours]
        return render_to_string(
            "admin/plugins_app/plugin/health_panel.html",
            {
                "health": health,
                "rows": _summary_rows(health),
                "chart": charts.bar_chart(hours, label="Calls per hour, last 24 hours", width=480, height=80),
                "health_url": health_url(obj.pk, site),
                "calls_url": calls_list_url(plugin_id=obj.pk, site_name=site)
                if getattr(obj, "_health_show_calls", False)
                else None,
                "breaker": breaker_state(obj),
            },
        )

    def health_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        request.current_app = self.admin_site.name
        plugin = self.get_object(request, object_id)
        if plugin is None:
            raise Http404(f"No plugin with ID {object_id!r}.")
        if not self.has_view_or_change_permission(request, plugin):
            raise PermissionDenied
        health = metrics.plugin_health(plugin.pk)
        site = self.admin_site.name
        show_calls = can_view_calls(request)
        failures = []
        if show_calls:
            failures = list(
                CallRecord.objects.filter(plugin=plugin)
                .exclude(outcome=CallRecord.Outcome.OK)
                .order_by("-started_at", "-id")[:RECENT_FAILURES]
            )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": plugin,
            "plugin": plugin,
            "title": f"Health of {plugin}",
            "health": health,
            "rows": _summary_rows(health),
            **health_charts(health),
            "breaker": breaker_state(plugin),
            "show_calls": show_calls,
            "calls_url": calls_list_url(plugin_id=plugin.pk, site_name=site) if show_calls else None,
            "failed_calls_url": calls_list_url(plugin_id=plugin.pk, failed=True, site_name=site)
            if show_calls
            else None,
            "failures": [
                (
                    reverse("admin:plugins_app_callrecord_change", args=[f.pk], current_app=site),
                    f,
                    outcome_badge(f.outcome),
                    ms(f.duration_ms),
                )
                for f in failures
            ],
        }
        return TemplateResponse(request, "admin/plugins_app/plugin/health.html", context)
