"""Forms used by the admin."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast

from django import forms
from django.core.validators import FileExtensionValidator, MaxValueValidator, MinValueValidator
from django.db import router, transaction
from django.forms.fields import InvalidJSONInput

from . import conf, revisions
from .exposure import column, exposures
from .models import Plugin, PluginGrant
from .sandbox import jsondata
from .widgets import CodeEditorBoundField, CodeEditorWidget

# django-stubs makes ModelForm generic in its model; Django's class cannot be subscripted
# at run time, so the subscripted bases are for the type checker only.
if TYPE_CHECKING:
    ModelFormMixin = forms.ModelForm[Any]  # the mixins below are mixed into model forms
    PluginModelForm = forms.ModelForm[Plugin]
    PluginGrantModelForm = forms.ModelForm[PluginGrant]
else:
    ModelFormMixin = object
    PluginModelForm = PluginGrantModelForm = forms.ModelForm

CODE_ATTRS = {"rows": 24, "cols": 100, "spellcheck": "false", "style": "font-family: monospace; width: 95%;"}

# Plugin limit fields: (field name, lower bound setting, upper bound setting, unit).
LIMIT_FIELDS = (
    ("memory_limit_mb", "MIN_MEMORY_MB", "MAX_MEMORY_MB", "MiB"),
    ("timeout_ms", "MIN_TIMEOUT_MS", "MAX_TIMEOUT_MS", "ms"),
)
# Host API budgets per hook call; empty means the site default (PLUGINS_APP settings).
HOST_LIMIT_FIELDS = ("max_host_calls", "max_rows_read", "max_rows_written", "max_host_result_bytes")
# Fields where empty input means the model's default, and leaving them out of the POST
# keeps the plugin's current value.
DEFAULTED_FIELDS = ("priority", *HOST_LIMIT_FIELDS)


def split_field_names(text: str | None) -> list[str]:
    """``"id, username,,id"`` -> ``["id", "username"]``: comma-separated names, in order, once each."""
    names = (part.strip() for part in (text or "").split(","))
    return list(dict.fromkeys(name for name in names if name))


def _json_error(exc: json.JSONDecodeError) -> forms.ValidationError:
    return forms.ValidationError(
        "Not valid JSON: %(reason)s (line %(line)s, column %(column)s).",
        code="invalid",
        params={"reason": exc.msg, "line": exc.lineno, "column": exc.colno},
    )


def _check_json(text: str, decoder: Any = None) -> None:
    """Refuse JSON text that does not parse or nests deeper than MAX_DATA_DEPTH (Python's
    parser raises RecursionError on deep input, which would be a 500, not a form error)."""
    depth = conf.get("MAX_DATA_DEPTH")
    too_deep = forms.ValidationError("This JSON is nested deeper than %(depth)s levels.", params={"depth": depth})
    try:
        jsondata.check(json.loads(text, cls=decoder), depth, what="This JSON")
    except json.JSONDecodeError as exc:
        raise _json_error(exc) from None
    except RecursionError:
        raise too_deep from None
    except jsondata.DataError as exc:
        raise (too_deep if exc.reason == "depth" else forms.ValidationError(str(exc))) from None


class _DepthSafeJSONField(forms.JSONField):
    """Redisplays too-deep input as typed instead of re-parsing it into a RecursionError."""

    def bound_data(self, data: Any, initial: Any) -> Any:
        try:
            return super().bound_data(data, initial)
        except RecursionError:
            return InvalidJSONInput(data)


class JSONObjectField(_DepthSafeJSONField):
    """A JSON field whose empty input means ``{}`` and whose syntax errors say where."""

    def to_python(self, value: Any) -> Any:
        if not self.disabled and isinstance(value, str):
            if not value.strip():
                return {}
            _check_json(value, self.decoder)
        return super().to_python(value)


class JSONSchemaField(_DepthSafeJSONField):
    """An optional JSON value (a JSON Schema): empty input means none, shown as an empty box."""

    def to_python(self, value: Any) -> Any:
        if not self.disabled and isinstance(value, str):
            if not value.strip():
                return None
            _check_json(value, self.decoder)
        return super().to_python(value)

    def prepare_value(self, value: Any) -> Any:
        if value is None:
            return ""
        if isinstance(value, InvalidJSONInput):  # redisplay what was typed
            return value
        return json.dumps(value, indent=2, ensure_ascii=False, cls=self.encoder)


class FreshModelErrorsMixin(ModelFormMixin):
    """Leave out model-level errors for fields that already failed the form's validation."""

    def add_error(self, field: str | None, error: Any) -> None:
        """Add ``error``, leaving out model-level errors for fields that already failed.

        The model's ``clean()`` (e.g. ``Plugin.clean()``) runs even when a field failed
        the form's own validation, and then sees that field's old value (e.g. an empty
        source on a new plugin): its message would repeat, or contradict, the error the
        form already shows.
        """
        if field is None and isinstance(error, forms.ValidationError) and hasattr(error, "error_dict"):
            fresh = {name: errors for name, errors in error.error_dict.items() if name not in self.errors}
            if not fresh:
                return
            error = forms.ValidationError(fresh)
        super().add_error(field, error)


class SourceField(forms.CharField):
    """Plugin source from a textarea: kept byte-for-byte (no stripping) except line endings.

    Browsers submit textareas with CRLF line endings; plugins are stored with LF. Doing it
    in ``to_python`` also makes ``has_changed`` compare normalised text, so saving an
    unchanged plugin records no change ("Changed Source.") and no new version.
    """

    def __init__(self, **kwargs: Any) -> None:
        kwargs["strip"] = False
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> str | None:
        text = super().to_python(value)
        return None if text is None else text.replace("\r\n", "\n")


def read_source_upload(upload: Any) -> str:
    """The text of an uploaded ``.js`` file: at most MAX_SOURCE_BYTES, UTF-8 (a byte order
    mark is dropped), line endings made LF. Raises ``ValidationError`` with a clear message."""
    limit = conf.get("MAX_SOURCE_BYTES")
    size = getattr(upload, "size", None)
    if size is not None and size > limit:
        raise forms.ValidationError(
            "The file is %(size)s bytes; the limit is %(limit)s bytes.",
            code="too_large",
            params={"size": size, "limit": limit},
        )
    data = upload.read(limit + 1)
    if len(data) > limit:
        raise forms.ValidationError(
            "The file is over the limit of %(limit)s bytes.", code="too_large", params={"limit": limit}
        )
    try:
        text: str = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise forms.ValidationError(
            "The file is not UTF-8 text (byte %(position)s is not valid UTF-8). Save it as UTF-8 and upload it again.",
            code="encoding",
            params={"position": exc.start},
        ) from None
    return text.removeprefix("\ufeff").replace("\r\n", "\n")


class EditConflictMixin(ModelFormMixin):
    """Optimistic concurrency for the plugin form (see :mod:`plugins_app.revisions`).

    The form carries, hidden in ``edit_token``, a token of the plugin as it was when the
    form was opened. Saving it after anyone saved the plugin (any field, a grant, an
    enable/disable) is refused with a message saying what changed. Posts without the
    token (scripts, tests) are not checked. Inside a transaction (the admin's), the check
    locks the plugin's row until the save commits, so no save can slip in between.
    """

    edit_conflict: revisions.EditConflict | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        form: Any = self
        if "edit_token" in form.fields and form.instance.pk is not None and not form.is_bound:
            form.initial["edit_token"] = revisions.make_edit_token(form.instance)

    def _post_clean(self) -> None:
        super()._post_clean()  # type: ignore[misc]  # ModelForm's, missing from the stubs
        self.check_edit_conflict()

    @property
    def changed_data(self) -> list[str]:
        """The plugin's fields that changed: the token and the comment are not among them
        (the admin's *History* lists these)."""
        return [name for name in super().changed_data if name not in ("edit_token", "change_comment")]

    def check_edit_conflict(self) -> None:
        form: Any = self
        self.edit_conflict = None
        if "edit_token" not in form.fields or form.instance.pk is None:
            return
        token = form.data.get(form.add_prefix("edit_token")) or ""
        if not token:
            return
        lock = transaction.get_connection(router.db_for_write(Plugin)).in_atomic_block
        conflict = revisions.check_edit_token(form.instance.pk, token, lock=lock)
        if conflict is not None:
            self.edit_conflict = conflict
            form.add_error(None, forms.ValidationError(conflict.message(), code="conflict"))


class PluginForm(EditConflictMixin, FreshModelErrorsMixin, PluginModelForm):
    bound_field_class = CodeEditorBoundField  # passes error line/column to the code editors
    # Not model fields: the comment goes to the revision this save records
    # (plugins_app.revisions); the token detects saves made after the form was opened.
    change_comment = forms.CharField(
        label="Change comment",
        required=False,
        max_length=1000,
        widget=forms.TextInput(attrs={"size": 80, "class": "vTextField"}),
        help_text="Optional: why you are making this change. Kept with the revision this save records "
        "(when it changes the source, configuration, limits, serving HTTP or grants).",
    )
    edit_token = forms.CharField(required=False, widget=forms.HiddenInput)
    # Not a model field: a .js file whose text replaces the source box's (see clean()).
    source_file = forms.FileField(
        label="Or upload a .js file",
        required=False,
        validators=[FileExtensionValidator(["js"])],
        widget=forms.FileInput(attrs={"accept": ".js,text/javascript"}),
        help_text="UTF-8 text. When given, the file replaces what is in the source box.",
    )

    class Meta:
        model = Plugin
        fields = (
            "name",
            "slug",
            "description",
            "enabled",
            "priority",
            "http_enabled",
            "source",
            "memory_limit_mb",
            "timeout_ms",
            *HOST_LIMIT_FIELDS,
            "config",
            "config_schema",
        )
        field_classes = {"source": SourceField, "config": JSONObjectField, "config_schema": JSONSchemaField}
        widgets = {
            "source": CodeEditorWidget("javascript", attrs={"rows": 24}),
            "config": CodeEditorWidget("json", attrs={"rows": 6}),
            "config_schema": CodeEditorWidget("json", attrs={"rows": 8}),
            "description": forms.Textarea(attrs={"rows": 3}),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if "source" in self.fields:
            # Keep the source byte-for-byte (no stripping), so that saving an unchanged
            # plugin does not create a new version.
            cast(forms.CharField, self.fields["source"]).strip = False
            if "source_file" in self.fields:
                # A file may stand in for the box; an empty source is still refused, by
                # the model's validation ("The source is empty.").
                self.fields["source"].required = False
        for name, low_key, high_key, unit in LIMIT_FIELDS:
            if name in self.fields:
                self._set_range(self.fields[name], conf.get(low_key), conf.get(high_key), unit)
        for name in HOST_LIMIT_FIELDS:
            if name in self.fields:
                field = self.fields[name]
                field.required = False
                field.help_text = (
                    f"{field.help_text} Empty means the site default ({column(Plugin, name).get_default()})."
                )
        if "priority" in self.fields:
            field = self.fields["priority"]
            field.required = False
            field.help_text = f"{field.help_text} Empty means {column(Plugin, 'priority').get_default()}."

    def clean_source(self) -> str:
        # Browsers submit textareas with CRLF line endings; plugins are stored with LF.
        source: str = self.cleaned_data["source"]
        return source.replace("\r\n", "\n")

    def clean_source_file(self) -> str | None:
        upload = self.cleaned_data.get("source_file")
        return read_source_upload(upload) if upload else None

    # Form fields that are not the plugin's: never reported as changed (the history would
    # say "Changed edit_token." on every save: the token differs on every page load).
    NOT_PLUGIN_FIELDS = frozenset({"source_file", "edit_token", "change_comment"})

    @property
    def changed_data(self) -> list[str]:
        """As Django's, without the form's own fields, and with an uploaded file reported
        as a change of the source (when its text differs): "Changed Source."."""
        changed = [name for name in super().changed_data if name not in self.NOT_PLUGIN_FIELDS]
        uploaded = getattr(self, "cleaned_data", {}).get("source_file")
        if uploaded is not None and "source" not in changed and uploaded != (self.initial.get("source") or ""):
            changed.append("source")
        return changed

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        assert cleaned is not None  # ModelForm.clean() returns cleaned_data
        if cleaned.get("source_file") is not None:
            cleaned["source"] = cleaned["source_file"]  # the file wins over the box
            self.errors.pop("source", None)
            # Redisplayed (after an error) in the box, where its error's line is marked.
            data = self.data.copy()  # type: ignore[attr-defined]  # a QueryDict or dict; the stubs say Mapping
            data[self.add_prefix("source")] = cleaned["source"]
            self.data = data
        for name in DEFAULTED_FIELDS:
            if name not in self.fields or cleaned.get(name) is not None or name in self.errors:
                continue
            # Left out of the POST entirely: keep the plugin's value (Django skips the field).
            # Submitted empty: the default (for host limits, the site default).
            widget = self.fields[name].widget
            if not widget.value_omitted_from_data(self.data, self.files, self.add_prefix(name)):
                cleaned[name] = column(Plugin, name).get_default()
        return cleaned

    @staticmethod
    def _set_range(field: forms.Field, low: int, high: int, unit: str) -> None:
        """Give a limit field the operator's allowed range: in its help, widget and errors.

        The model validates the same range; checking it here too gives one clear message
        for every out-of-range value (negative ones included) and min/max on the input.
        """
        message = f"Must be between {low} and {high} {unit}."
        field.validators = [MinValueValidator(low, message=message), MaxValueValidator(high, message=message)]
        field.widget.attrs.update({"min": low, "max": high})
        field.help_text = f"{field.help_text} Allowed: {low}–{high} {unit}."


class FieldNamesField(forms.CharField):
    """A list of field names edited as comma-separated text: ``"id, username"`` <-> ``["id", "username"]``.

    Comparing lists (not text) in ``has_changed`` keeps unchanged grants from being
    saved again, which would bump the plugin's version on every save.
    """

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, list | tuple):
            return ", ".join(str(v) for v in value)
        return value

    def to_python(self, value: Any) -> list[str]:  # type: ignore[override]  # a CharField whose value is a list
        if isinstance(value, list | tuple):
            return [str(v) for v in value]
        return split_field_names(super().to_python(value))

    def has_changed(self, initial: Any, data: Any) -> bool:
        if self.disabled:
            return False
        return self.to_python(initial) != self.to_python(data)


class PluginGrantForm(FreshModelErrorsMixin, PluginGrantModelForm):
    """One grant as an inline row: the model picked from the exposed ones, field lists as text.

    The model's ``clean()`` (``exposure.validate_grant``) checks the lists against the
    exposure, so its errors appear on this row.
    """

    model = forms.ChoiceField(label="Model")
    read = FieldNamesField(label="Readable fields", required=False, help_text="Comma-separated, e.g. id, username.")
    create = FieldNamesField(label="Fields it may set on create", required=False)
    update = FieldNamesField(label="Fields it may update", required=False)

    class Meta:
        model = PluginGrant
        fields = ("model", "read", "create", "update", "can_delete")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        choices = [("", "---------")] + [(e.label, e.label) for e in exposures()]
        current = self.instance.model
        canonical = {value.lower(): value for value, _ in choices if value}
        if current and current.lower() in canonical:
            self.initial["model"] = canonical[current.lower()]  # stored in another case
        elif current:
            choices.append((current, f"{current} (not exposed)"))
        cast(forms.ChoiceField, self.fields["model"]).choices = choices
        self.fields["model"].help_text = "Exposed: " + (
            "; ".join(
                f"{e.label} (read {', '.join(sorted(e.read)) or '-'}; write {', '.join(sorted(e.write)) or '-'})"
                for e in exposures()
            )
            or "nothing (add a plugin_exposure module to an app)"
        )


class TryHookForm(forms.Form):
    hook: forms.Field = forms.ChoiceField()  # a subclass may take any name (admin.console.ConsoleForm)
    args = forms.CharField(
        label="Arguments (JSON array)",
        initial="[]",
        required=False,
        widget=forms.Textarea(attrs={**CODE_ATTRS, "rows": 4}),
        help_text='Each element is one argument, e.g. ["World"] or [{"id": 1}, true]. Empty means no arguments.',
    )

    def __init__(self, *args: Any, hooks: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cast(forms.ChoiceField, self.fields["hook"]).choices = [(h, h) for h in hooks]

    def clean_args(self) -> list[Any]:
        text = self.cleaned_data["args"]
        if not text.strip():
            return []
        try:
            value = json.loads(text, parse_constant=_reject_constant)
        except json.JSONDecodeError as exc:
            raise _json_error(exc) from None
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from None
        except RecursionError:
            _check_json(text)  # raises the depth error
        if not isinstance(value, list):
            raise forms.ValidationError('Give a JSON array of arguments, e.g. ["World"].')
        return value


def _reject_constant(name: str) -> Any:
    """``json.loads`` hook: NaN and Infinity are not JSON and cannot reach a plugin."""
    raise ValueError(f"{name} is not valid JSON; use a number or null.")
