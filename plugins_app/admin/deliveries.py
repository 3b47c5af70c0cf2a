"""Django admin for the delivery outbox: every hook call owed to a plugin because of a
committed change, its state, attempts, payload and last error; *Retry now* and *Discard*.

Rows are written only by :mod:`plugins_app.outbox` (and the actions here, through
:mod:`plugins_app.deliveries`), never by a form: the change page is read-only for everyone.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from django.contrib import admin, messages
from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth import get_permission_codename
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from .. import deliveries
from ..models import Delivery
from .bases import DeliveryModelAdmin, fieldset_names

# The detail page shows at most this much of the payload (args and meta as indented JSON).
PAYLOAD_DISPLAY_BYTES = 64 * 1024
# The list shows this much of the last error's first line (the whole text is its tooltip).
SHORT_ERROR_CHARS = 80

STATE_CSS = "plugins_app/admin/deliveries.css"


def can_view_deliveries(request: HttpRequest) -> bool:
    """Whether the user may see the delivery list (view or change permission on Delivery)."""
    opts = Delivery._meta
    return any(
        request.user.has_perm(f"{opts.app_label}.{get_permission_codename(action, opts)}")
        for action in ("view", "change")
    )


def delivery_list_url(*, plugin_id: int | None = None, state: str | None = None, site_name: str = "admin") -> str:
    """The delivery list, filtered by plugin and/or state with the list's own filters."""
    url = reverse("admin:plugins_app_delivery_changelist", current_app=site_name)
    query: dict[str, int | str] = {}
    if plugin_id is not None:
        query["plugin__id__exact"] = plugin_id
    if state is not None:
        query["state__exact"] = state
    return f"{url}?{urlencode(query)}" if query else url


def state_badge(state: str) -> SafeString:
    """The state as a coloured badge; the text is always there, colour only helps."""
    label = Delivery.State(state).label if state in Delivery.State.values else state
    return format_html('<span class="delivery-state delivery-state-{}">{}</span>', state, label)


def payload_text(args: Any, meta: Any, limit: int = PAYLOAD_DISPLAY_BYTES) -> tuple[str, int | None]:
    """``{"args": ..., "meta": ...}`` as indented JSON, cut to ``limit`` UTF-8 bytes.

    Returns the text and, when it was cut, the full size in bytes.
    """
    text = json.dumps({"args": args, "meta": meta}, indent=2, ensure_ascii=False, sort_keys=True)
    # backslashreplace: a lone surrogate must not make the page unencodable.
    encoded = text.encode("utf-8", "backslashreplace")
    if len(encoded) <= limit:
        return encoded.decode("utf-8"), None
    return encoded[:limit].decode("utf-8", "ignore"), len(encoded)


def _kib(size: int) -> str:
    return f"{size / 1024:,.1f}\u00a0KiB"


@admin.register(Delivery)
class DeliveryAdmin(DeliveryModelAdmin):
    list_display = (
        "created_at",
        "plugin_slug",
        "hook",
        "mode",
        "state_display",
        "attempts",
        "next_attempt",
        "delivered_at",
        "plugin_version",
        "short_error",
    )
    list_display_links = ("created_at",)
    list_select_related = ("plugin",)
    list_filter = ("plugin", "hook", "state", "mode", "created_at")
    search_fields = ("hook", "plugin__slug", "delivery_id", "last_error")
    date_hierarchy = "created_at"
    actions = ("retry_now", "discard")
    fieldsets = (
        (
            None,
            {"fields": ("delivery_id", "plugin_link", "hook", "mode", "state_display", "attempts", "plugin_version")},
        ),
        ("Timing", {"fields": ("created_at", "next_attempt_at", "lease_until", "delivered_at", "updated_at")}),
        ("Payload", {"fields": ("payload",)}),
        ("Last error", {"fields": ("last_error_text", "last_error_stack_text")}),
    )
    readonly_fields = fieldset_names(fieldsets)

    class Media:
        css = {"all": (STATE_CSS,)}

    # -- read-only, no add, no delete (prune and Discard do that) ----------------------------
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Delivery | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Delivery | None = None) -> bool:
        # The change permission is what the actions need; a delivery's own page is never a
        # form (a save would overwrite the state a drainer is writing).
        if obj is not None:
            return False
        return super().has_change_permission(request)

    # -- columns -----------------------------------------------------------------------------
    @admin.display(description="plugin", ordering="plugin__slug")
    def plugin_slug(self, obj: Delivery) -> str:
        return obj.plugin.slug

    @admin.display(description="state", ordering="state")
    def state_display(self, obj: Delivery) -> SafeString:
        return state_badge(obj.state)

    @admin.display(description="next attempt", ordering="next_attempt_at")
    def next_attempt(self, obj: Delivery) -> Any:
        # Only a pending row will be attempted; on the others the column is history.
        return obj.next_attempt_at if obj.state == Delivery.State.PENDING else None

    @admin.display(description="last error")
    def short_error(self, obj: Delivery) -> str:
        if not obj.last_error:
            return ""
        first = obj.last_error.splitlines()[0]
        # The plugin has its own column: without "plugin 'slug' " the message itself fits.
        first = first.replace(f"plugin '{obj.plugin.slug}' ", "", 1)
        short = first if len(first) <= SHORT_ERROR_CHARS else first[: SHORT_ERROR_CHARS - 1] + "…"
        return format_html('<span title="{}">{}</span>', obj.last_error[:2000], short)

    # -- detail page ---------------------------------------------------------------------------
    @admin.display(description="plugin")
    def plugin_link(self, obj: Delivery) -> str:
        url = reverse("admin:plugins_app_plugin_change", args=[obj.plugin_id], current_app=self.admin_site.name)
        return format_html('<a href="{}">{}</a> (now version {})', url, obj.plugin.slug, obj.plugin.version)

    @admin.display(description="payload")
    def payload(self, obj: Delivery) -> str:
        text, full_size = payload_text(obj.args, obj.meta)
        note = ""
        if full_size is not None:
            note = format_html(
                '<p class="help delivery-cut">Showing the first {} of {}.</p>',
                _kib(PAYLOAD_DISPLAY_BYTES),
                _kib(full_size),
            )
        return format_html('<pre class="delivery-text">{}</pre>{}', text, note)

    @admin.display(description="last error")
    def last_error_text(self, obj: Delivery) -> str:
        if not obj.last_error:
            return "—"
        return format_html('<pre class="delivery-text delivery-error">{}</pre>', obj.last_error)

    @admin.display(description="JavaScript stack")
    def last_error_stack_text(self, obj: Delivery) -> str:
        if not obj.last_error_stack:
            return "—"
        return format_html('<pre class="delivery-text">{}</pre>', deliveries.readable_stack(obj.last_error_stack))

    # -- actions -------------------------------------------------------------------------------
    @admin.action(description="Retry now", permissions=["change"])
    def retry_now(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        """Failed and discarded: pending again with attempts reset; pending: due now. Then
        attempt them at once (the first RETRY_NOW_INLINE; the rest go with the next drain)."""
        ids = list(queryset.values_list("delivery_id", flat=True))
        report = deliveries.retry_now(ids)
        self._log(request, ids, "Retried now.")
        made = report.reset + report.made_due
        text = f"Retried {made} deliver{'y' if made == 1 else 'ies'}: {report.outcome.text()}."
        if report.left_for_drain:
            text += f" {report.left_for_drain} more are due now and go with the next drain."
        if report.not_retried:
            left = ", ".join(f"{n} {Delivery.State(s).label}" for s, n in sorted(report.not_retried.items()))
            text += f" Left alone: {left}."
        failed = report.outcome.failed or report.outcome.retrying or report.outcome.errors
        level = messages.WARNING if failed or not made else messages.SUCCESS
        self.message_user(request, text, level)

    @admin.action(description="Discard", permissions=["change"])
    def discard(self, request: HttpRequest, queryset: QuerySet[Delivery]) -> None:
        """Pending and failed: discarded, never attempted again. Delivered and in-progress
        deliveries are left alone."""
        ids = list(queryset.filter(state__in=deliveries.DISCARDABLE).values_list("delivery_id", flat=True))
        discarded = deliveries.discard(ids)
        self._log(request, ids, "Discarded.")
        left = queryset.count() - discarded
        text = f"Discarded {discarded} deliver{'y' if discarded == 1 else 'ies'}."
        if left:
            text += f" {left} left alone (delivered, in progress or already discarded)."
        self.message_user(request, text, messages.SUCCESS if discarded else messages.WARNING)

    def _log(self, request: HttpRequest, ids: list[Any], message: str) -> None:
        """Record the action in each delivery's history."""
        for batch in deliveries.batches(ids):
            LogEntry.objects.log_actions(
                request.user.pk,  # type: ignore[arg-type]  # admin views have a logged-in user (pk not None)
                Delivery.objects.filter(delivery_id__in=batch),
                CHANGE,
                message,
            )
