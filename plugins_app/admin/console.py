"""The *Console* page of a plugin (``<id>/console/``): pick a hook, give JSON arguments,
run the saved version or an unsaved draft, as a dry run (the default: writes rolled back)
or a real run, and see the result, the log lines, the duration, the host calls and any
error with its line and column. The logic is :mod:`plugins_app.console`.

Permissions: the page needs *Can run plugins from the console* (``run_console``); running
a draft, or any run that is not a dry run, also needs *Can change plugin*. The old
*Call a hook* URL (``<id>/try/``) redirects here.

Links in: the plugin page's *Console* button and *Run draft in console* (which posts the
change form's source and configuration here: the ``_console_draft`` field), and the
execution log's *Replay in console* (``?hook=NAME&args=JSON``: the form is prefilled).
"""

from __future__ import annotations

from typing import Any, cast

from django import forms
from django.contrib.admin.utils import quote, unquote
from django.contrib.auth import get_permission_codename
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.http import urlencode
from django.utils.safestring import SafeString

from .. import console
from ..exceptions import PluginNotFound
from ..forms import CODE_ATTRS, JSONObjectField, JSONSchemaField, SourceField, TryHookForm, read_source_upload
from ..models import Plugin
from ..widgets import CodeEditorBoundField, CodeEditorWidget
from .bases import PluginAdminMixin

SAVED, DRAFT = "saved", "draft"
DRY, REAL = "dry", "real"
MODE_LABELS = {DRY: "Dry run: writes are rolled back", REAL: "Real run: writes are kept"}
# Posted by the change form's "Run draft in console" button (with the form's fields).
DRAFT_MARKER = "_console_draft"


def can_run_console(request: HttpRequest) -> bool:
    opts = Plugin._meta
    return request.user.has_perm(f"{opts.app_label}.run_console")


def _can_change(request: HttpRequest) -> bool:
    opts = Plugin._meta
    return request.user.has_perm(f"{opts.app_label}.{get_permission_codename('change', opts)}")


def console_url(plugin_pk: Any, site_name: str = "admin", **query: str) -> str:
    url = reverse("admin:plugins_app_plugin_console", args=[quote(plugin_pk)], current_app=site_name)
    return f"{url}?{urlencode(query)}" if query else url


class ConsoleForm(TryHookForm):
    """Hook, arguments, what to run and how. The draft's fields carry the change form's
    names (``source``, ``config``, ``config_schema``) so that its *Run draft in console*
    button can post them here as they are."""

    bound_field_class = CodeEditorBoundField  # the draft editor marks its error's line
    data: QueryDict | dict[str, Any]  # the POST, or the draft that console_view builds (and edits)

    hook = forms.CharField(max_length=200, widget=forms.Select)
    target = forms.ChoiceField(  # choices set per plugin (its version)
        label="Run",
        widget=forms.RadioSelect(attrs={"class": "radiolist inline"}),
        initial=SAVED,
    )
    mode = forms.ChoiceField(
        label="Mode",
        widget=forms.RadioSelect(attrs={"class": "radiolist inline"}),
        initial=DRY,
        choices=list(MODE_LABELS.items()),
        help_text="A dry run rolls back every write of the call (db, storage, deliveries); a real run keeps them, "
        "as a call from the site would. Console calls never count towards the circuit breaker.",
    )
    source = SourceField(
        label="Draft source",
        required=False,
        widget=CodeEditorWidget("javascript", attrs={"rows": 18}),
        help_text="Run with the plugin's saved limits, grants and storage; validated like a save first.",
    )
    config = JSONObjectField(
        label="Draft configuration", required=False, widget=CodeEditorWidget("json", attrs={"rows": 5})
    )
    config_schema = JSONSchemaField(
        label="Draft configuration schema", required=False, widget=CodeEditorWidget("json", attrs={"rows": 5})
    )

    def __init__(self, *args: Any, plugin: Plugin, can_change: bool, **kwargs: Any) -> None:
        super().__init__(*args, hooks=list(plugin.hooks or []), **kwargs)
        self.fields["args"].widget = forms.Textarea(attrs={**CODE_ATTRS, "rows": 4})
        hook_names = list(plugin.hooks or [])
        current = self.data.get("hook") if self.is_bound else self.initial.get("hook")
        if current and current not in hook_names:
            hook_names.append(str(current))  # a replayed or draft-only hook: run() says if it exists
        self.fields["hook"].widget.choices = [(h, h) for h in hook_names]
        saved = (SAVED, f"the saved version (version {plugin.version})")
        target = cast(forms.ChoiceField, self.fields["target"])
        target.choices = [saved, (DRAFT, "the unsaved draft (below)")]
        if not can_change:
            # Drafts and real runs need the change permission: offer neither.
            for name in console.DRAFT_FIELDS:
                del self.fields[name]
            target.choices = [saved]
            cast(forms.ChoiceField, self.fields["mode"]).choices = list(MODE_LABELS.items())[:1]
            self.fields["mode"].help_text += " Running a draft or a real run needs the change permission."

    def add_hooks(self, names: list[str]) -> None:
        """Offer ``names`` too (a draft's hooks)."""
        known = [value for value, _ in self.fields["hook"].widget.choices]
        self.fields["hook"].widget.choices = [(h, h) for h in dict.fromkeys([*known, *names])]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        assert cleaned is not None  # Form.clean() returns cleaned_data
        if cleaned.get("target") != DRAFT:
            for name in console.DRAFT_FIELDS:  # a draft that is not run cannot be wrong
                self.errors.pop(name, None)
        return cleaned


class ConsoleAdminMixin(PluginAdminMixin):
    """The console page and the old *Call a hook* URL, for ``PluginAdmin``."""

    def get_urls(self) -> list[URLPattern]:
        site = self.admin_site
        extra = [
            path("<path:object_id>/console/", site.admin_view(self.console_view), name="plugins_app_plugin_console"),
            # The page this one replaced; links and bookmarks keep working.
            path("<path:object_id>/try/", site.admin_view(self.try_redirect_view), name="plugins_app_plugin_try"),
        ]
        return extra + super().get_urls()

    def _console_plugin(self, request: HttpRequest, object_id: str) -> Plugin:
        request.current_app = self.admin_site.name
        plugin = self.get_object(request, unquote(object_id))
        if plugin is None:
            raise Http404(f"No plugin with ID {object_id!r}.")
        if not can_run_console(request):
            raise PermissionDenied
        return plugin

    def try_redirect_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        plugin = self._console_plugin(request, object_id)
        response = HttpResponseRedirect(console_url(plugin.pk, self.admin_site.name))
        if request.method == "POST":
            response.status_code = 307  # the browser posts the same form to the console
        return response

    def console_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        plugin = self._console_plugin(request, object_id)
        can_change = _can_change(request)
        outcome: console.ConsoleRun | None = None
        error: console.ConsoleError | None = None
        draft_hooks: list[str] = []
        if request.method == "POST" and DRAFT_MARKER in request.POST:
            # From the change form: its source and configuration become the draft, checked
            # at once (its hooks, or its errors with their line), ready to run.
            if not can_change:
                raise PermissionDenied
            data = {
                "target": DRAFT,
                "mode": DRY,
                "hook": (plugin.hooks or [""])[0],
                "args": "[]",
                **{name: request.POST.get(name, "") for name in console.DRAFT_FIELDS},
            }
            form = ConsoleForm(data, plugin=plugin, can_change=True)
            upload = request.FILES.get("source_file")
            if upload:
                try:
                    form.data["source"] = read_source_upload(upload)
                except forms.ValidationError as exc:
                    form.is_valid()
                    form.add_error("source", exc)
            if form.is_valid():
                checked = _draft(plugin, form.cleaned_data)
                errors = console.validate_draft(checked)
                if errors:
                    self._show_draft_errors(form, errors)
                    error = console.draft_error(errors)
                else:
                    draft_hooks = list(checked.hooks)
                    if form.data["hook"] not in draft_hooks:
                        form.data["hook"] = draft_hooks[0]  # the saved first hook is gone from the draft
        elif request.method == "POST":
            if (request.POST.get("target") == DRAFT or request.POST.get("mode") == REAL) and not can_change:
                raise PermissionDenied
            form = ConsoleForm(request.POST, plugin=plugin, can_change=can_change)
            if form.is_valid():
                data = form.cleaned_data
                draft = _draft(plugin, data) if data["target"] == DRAFT else None
                try:
                    outcome = console.run(plugin, data["hook"], data["args"], draft=draft, dry_run=data["mode"] != REAL)
                except PluginNotFound:
                    raise Http404(f"No plugin with ID {object_id!r}.") from None
                error, draft_hooks = outcome.error, outcome.draft_hooks
                self._show_draft_errors(form, outcome.draft_errors)
                ran = draft.source if draft is not None else plugin.source
                self._mark_run_error(form, error, ran)
                plugin.refresh_from_db()  # a real run may have changed it (its storage, its state)
        else:
            initial = {
                "hook": request.GET.get("hook") or (plugin.hooks or [""])[0],
                "args": request.GET.get("args") or "[]",
            }
            if can_change:  # the draft starts as the saved version (the fields format the JSON)
                initial.update(source=plugin.source, config=plugin.config, config_schema=plugin.config_schema)
            form = ConsoleForm(initial=initial, plugin=plugin, can_change=can_change)
        if draft_hooks:
            form.add_hooks(draft_hooks)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": plugin,
            "plugin": plugin,
            "form": form,
            "media": self.media + form.media,
            "outcome": outcome,
            "error": error,
            "draft_hooks": draft_hooks,
            "can_change": can_change,
            "change_url": reverse(
                "admin:plugins_app_plugin_change", args=[quote(plugin.pk)], current_app=self.admin_site.name
            ),
            "title": f"Console: {plugin}",
        }
        return TemplateResponse(request, "admin/plugins_app/plugin/console.html", context)

    @staticmethod
    def _mark_run_error(form: ConsoleForm, error: console.ConsoleError | None, ran: str) -> None:
        """Mark a run-time error's line in the draft editor when it shows the code that ran
        (a draft's errors are marked through its field errors)."""
        if error is None or error.field or not error.line or "source" not in form.fields:
            return
        shown = (form.cleaned_data.get("source") or "") if hasattr(form, "cleaned_data") else ""
        if shown != ran:
            return
        attrs = {
            "data-error-line": str(error.line),
            "data-error-message": f"{error.js_name or error.kind}: {error.js_message or error.message}",
        }
        if error.column:
            attrs["data-error-column"] = str(error.column)
        form.fields["source"].widget.attrs.update(attrs)

    @staticmethod
    def _show_draft_errors(form: ConsoleForm, errors: dict[str, list[str]]) -> None:
        """A refused draft's errors on the draft's fields (the editor marks the line)."""
        for name, messages in errors.items():
            if name in form.fields:
                form.add_error(name, messages)
            else:  # e.g. a saved limit the draft inherits
                form.add_error(None, [f"{name}: {message}" for message in messages])


def _draft(plugin: Plugin, data: dict[str, Any]) -> Plugin:
    return console.make_draft(
        plugin, source=data.get("source") or "", config=data.get("config", {}), config_schema=data.get("config_schema")
    )


def console_button(plugin: Plugin, site_name: str = "admin") -> SafeString:
    """The *Run draft in console* submit button of the change form (posts the form there)."""
    return format_html(
        '<a class="button" href="{}" id="plugin-console-link">Open console</a> '
        '<button type="submit" class="button" name="{}" value="1" formaction="{}" formnovalidate '
        'id="plugin-run-draft">Run draft in console</button>',
        console_url(plugin.pk, site_name),
        DRAFT_MARKER,
        console_url(plugin.pk, site_name),
    )
