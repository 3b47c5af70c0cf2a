"""Revisions in the admin: each plugin's revision list, one revision, the diff between any
two, and *Roll back to this revision*.

:class:`RevisionsAdminMixin` is mixed into ``PluginAdmin``: it adds those pages under the
plugin's URL, records one revision per save of the plugin's change form (plugin and grant
changes together, with the form's *Change comment*), and gives the change page its
*Revisions* link. The logic lives in :mod:`plugins_app.revisions`.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.contrib.admin.utils import quote, unquote
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from .. import revisions
from ..exceptions import PluginConflict, RevisionNotFound
from ..models import Plugin, PluginGrant, PluginRevision
from .bases import PluginAdminMixin

ADMIN = PluginRevision.Origin.ADMIN
COMMENT_MAX_LENGTH = 1000


def _grant_permissions_needed(plugin: Plugin, revision: PluginRevision) -> list[str]:
    """The grant permissions (add/change/delete) rolling back to ``revision`` needs."""
    current = {g.model.lower(): revisions.grant_data(g) for g in plugin.grants.all()}
    wanted = {g["model"].lower(): g for g in revision.grants}
    needed = set()
    for key, data in wanted.items():
        if key not in current:
            needed.add("add")
        elif current[key] != data:
            needed.add("change")
    if set(current) - set(wanted):
        needed.add("delete")
    return sorted(needed)


def _error_text(exc: ValidationError) -> str:
    if not hasattr(exc, "error_dict"):
        return " ".join(exc.messages)
    parts: list[str] = []
    for name, errors in exc.message_dict.items():
        label = "" if name == "__all__" else f"{revisions.CHANGE_LABELS.get(name, name)}: "
        parts.extend(f"{label}{message}" for message in errors)
    return "; ".join(parts)


class RevisionsAdminMixin(PluginAdminMixin):
    """Revision pages and revision recording for ``PluginAdmin`` (put it before ModelAdmin)."""

    revisions_per_page = 50

    # -- recording the change form's saves ---------------------------------------------------
    def changeform_view(
        self,
        request: HttpRequest,
        object_id: str | None = None,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        # Changes saved by the form and its inlines become one revision, recorded in
        # save_related() (inside the admin's transaction) with the form's comment.
        with revisions.recording(origin=ADMIN, user=request.user):
            return super().changeform_view(request, object_id, form_url, extra_context)

    def save_related(self, request: HttpRequest, form: forms.ModelForm[Plugin], formsets: Any, change: bool) -> None:
        super().save_related(request, form, formsets, change)
        scope = revisions.current_recording()
        if scope is None:
            return
        scope.comment = (getattr(form, "cleaned_data", None) or {}).get("change_comment") or ""
        for revision in scope.flush():
            url = self._revision_url(revision.plugin_id, revision.number)
            self.message_user(
                request,
                format_html(
                    'Recorded <a href="{}">revision {}</a> ({}).',
                    url,
                    revision.number,
                    revisions.describe_changes(revision),
                ),
                messages.INFO,
            )

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Plugin | None = None,
    ) -> HttpResponse:
        if obj is not None and obj.pk is not None:
            context["revisions_url"] = self._url("revisions", obj.pk)
            context["latest_revision"] = revisions.latest_number(obj.pk)
        adminform = context.get("adminform")
        conflict = getattr(getattr(adminform, "form", None), "edit_conflict", None)
        # A conflict is found only on a change form (obj is the stored plugin).
        if (
            obj is not None
            and conflict is not None
            and conflict.readable
            and conflict.revisions
            and conflict.opened_revision
        ):
            url = self._url("revision_diff", obj.pk) + f"?from={conflict.opened_revision}&to={conflict.latest_revision}"
            self.message_user(
                request,
                format_html(
                    'See what changed since you opened the page: <a href="{}" id="edit-conflict-diff">'
                    "revision {} → {}</a>.",
                    url,
                    conflict.opened_revision,
                    conflict.latest_revision,
                ),
                messages.WARNING,
            )
        return super().render_change_form(request, context, add, change, form_url, obj)

    # -- URLs ----------------------------------------------------------------------------------
    def get_urls(self) -> list[URLPattern]:
        site = self.admin_site
        extra = [
            path(
                "<path:object_id>/revisions/", site.admin_view(self.revisions_view), name="plugins_app_plugin_revisions"
            ),
            path(
                "<path:object_id>/revisions/diff/",
                site.admin_view(self.revision_diff_view),
                name="plugins_app_plugin_revision_diff",
            ),
            path(
                "<path:object_id>/revisions/<int:number>/",
                site.admin_view(self.revision_view),
                name="plugins_app_plugin_revision",
            ),
            path(
                "<path:object_id>/revisions/<int:number>/rollback/",
                site.admin_view(self.rollback_view),
                name="plugins_app_plugin_revision_rollback",
            ),
        ]
        return extra + super().get_urls()

    def _url(self, name: str, plugin_pk: Any, *args: Any) -> str:
        return reverse(
            f"admin:plugins_app_plugin_{name}",
            args=[quote(plugin_pk), *args],
            current_app=self.admin_site.name,
        )

    def _revision_url(self, plugin_pk: Any, number: int) -> str:
        return self._url("revision", plugin_pk, number)

    # -- pages -----------------------------------------------------------------------------------
    def _plugin_for(self, request: HttpRequest, object_id: str) -> Plugin:
        request.current_app = self.admin_site.name
        plugin = self.get_object(request, unquote(object_id))
        if plugin is None:
            raise Http404(f"No plugin with ID {object_id!r}.")
        if not self.has_view_or_change_permission(request, plugin):
            raise PermissionDenied
        return plugin

    def _revision_for(self, plugin: Plugin, number: Any) -> PluginRevision:
        try:
            return revisions.get_revision(plugin, int(number))
        except (RevisionNotFound, TypeError, ValueError):
            raise Http404(f"Plugin {plugin.slug!r} has no revision {number!r}.") from None

    def _page(self, request: HttpRequest, plugin: Plugin, template: str, title: str, **extra: Any) -> TemplateResponse:
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "original": plugin,
            "plugin": plugin,
            "title": title,
            "revisions_url": self._url("revisions", plugin.pk),
            "diff_url": self._url("revision_diff", plugin.pk),
            "can_roll_back": self.has_change_permission(request, plugin),
            **extra,
        }
        return TemplateResponse(request, f"admin/plugins_app/plugin/{template}", context)

    def revisions_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        plugin = self._plugin_for(request, object_id)
        paginator = Paginator(
            plugin.revisions.select_related("created_by").order_by("-number"), self.revisions_per_page
        )
        page = paginator.get_page(request.GET.get("p"))
        latest = revisions.latest_number(plugin.pk)
        rows = [
            {
                "revision": r,
                "changes": revisions.describe_changes(r),
                "who": r.author,
                "url": self._revision_url(plugin.pk, r.number),
                "is_latest": r.number == latest,
            }
            for r in page.object_list
        ]
        return self._page(
            request,
            plugin,
            "revisions.html",
            f"Revisions of {plugin}",
            rows=rows,
            page=page,
            latest=latest,
            compare_from=max(latest - 1, 1),
            compare_to=latest,
        )

    def revision_view(self, request: HttpRequest, object_id: str, number: int) -> HttpResponse:
        plugin = self._plugin_for(request, object_id)
        revision = self._revision_for(plugin, number)
        latest = revisions.latest_number(plugin.pk)
        restores = [revisions.CHANGE_LABELS[n] for n in revisions.rollback_changes(plugin, revision)]
        settings = [
            (revisions.field_label(name), revisions.setting_text(name, getattr(revision, name)))
            for name in revisions.SETTING_FIELDS
        ]
        grants = [(g["model"], revisions.describe_grant(g)) for g in revision.grants]
        return self._page(
            request,
            plugin,
            "revision.html",
            f"Revision {revision.number} of {plugin}",
            revision=revision,
            changes=revisions.describe_changes(revision),
            who_and_when=revisions.who_and_when(revision),
            latest=latest,
            restores=restores,
            config_json=revisions.json_text(revision.config),
            config_schema_json=revisions.json_text(revision.config_schema),
            settings=settings,
            grants=grants,
            rollback_url=self._url("revision_rollback", plugin.pk, revision.number),
            comment_max_length=COMMENT_MAX_LENGTH,
        )

    def revision_diff_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        plugin = self._plugin_for(request, object_id)
        latest = revisions.latest_number(plugin.pk)
        if not latest:
            raise Http404(f"Plugin {plugin.slug!r} has no revisions.")
        old = self._revision_for(plugin, request.GET.get("from") or max(latest - 1, 1))
        new = self._revision_for(plugin, request.GET.get("to") or latest)
        layout = "split" if request.GET.get("view") == "split" else "unified"
        whole = request.GET.get("context") == "all"
        diff = revisions.revision_diff(old, new, context=None if whole else 3)
        base = f"?from={old.number}&to={new.number}"
        return self._page(
            request,
            plugin,
            "revision_diff.html",
            f"{plugin}: revision {old.number} → {new.number}",
            diff=diff,
            old=old,
            new=new,
            layout=layout,
            whole=whole,
            latest=latest,
            changed=[revisions.CHANGE_LABELS[n] for n in diff.changed],
            old_url=self._revision_url(plugin.pk, old.number),
            new_url=self._revision_url(plugin.pk, new.number),
            unified_url=base + ("&context=all" if whole else ""),
            split_url=base + "&view=split" + ("&context=all" if whole else ""),
            context_url=base + (f"&view={layout}" if layout == "split" else "") + ("" if whole else "&context=all"),
            old_who=revisions.who_and_when(old),
            new_who=revisions.who_and_when(new),
            revision_numbers=list(plugin.revisions.order_by("-number").values_list("number", flat=True)[:500]),
        )

    def rollback_view(self, request: HttpRequest, object_id: str, number: int) -> HttpResponse:
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        plugin = self._plugin_for(request, object_id)
        if not self.has_change_permission(request, plugin):
            raise PermissionDenied
        revision = self._revision_for(plugin, number)
        here = self._revision_url(plugin.pk, revision.number)
        needed = [
            action
            for action in _grant_permissions_needed(plugin, revision)
            if not request.user.has_perm(f"plugins_app.{action}_{PluginGrant._meta.model_name}")
        ]
        if needed:
            self.message_user(
                request,
                f"Rolling back to revision {revision.number} would change this plugin's grants, which needs "
                f"the {'/'.join(needed)} grant permission. Nothing was changed.",
                messages.ERROR,
            )
            return HttpResponseRedirect(here)
        comment = (request.POST.get("comment") or "").strip()[:COMMENT_MAX_LENGTH]
        try:
            expected = int(request.POST["latest"]) if request.POST.get("latest") else None
        except ValueError:
            expected = None
        try:
            new = revisions.rollback(
                plugin, revision.number, origin=ADMIN, user=request.user, comment=comment, expected_latest=expected
            )
        except ValidationError as exc:
            self.message_user(
                request,
                f"Could not roll back to revision {revision.number}: {_error_text(exc)} Nothing was changed.",
                messages.ERROR,
            )
            return HttpResponseRedirect(here)
        except PluginConflict as exc:
            self.message_user(
                request,
                f"Not rolled back: {exc} (since you opened the page). Review it and try again.",
                messages.ERROR,
            )
            return HttpResponseRedirect(here)
        if new is None:
            self.message_user(
                request,
                f"The plugin already matches revision {revision.number}; nothing to roll back.",
                messages.WARNING,
            )
            return HttpResponseRedirect(here)
        self.log_change(
            request, plugin, f"Rolled back to revision {revision.number} (recorded as revision {new.number})."
        )
        self.message_user(
            request,
            format_html(
                'Rolled back to revision {}: recorded <a href="{}">revision {}</a> ({}); plugin version {}.',
                revision.number,
                self._revision_url(plugin.pk, new.number),
                new.number,
                revisions.describe_changes(new),
                new.plugin_version,
            ),
            messages.SUCCESS,
        )
        return HttpResponseRedirect(self._url("change", plugin.pk))
