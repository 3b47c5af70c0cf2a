"""Forms used by the admin."""
from __future__ import annotations

import json
from typing import Any

from django import forms
from django.core.validators import MaxValueValidator, MinValueValidator

from . import conf
from .models import Plugin

CODE_ATTRS = {"rows": 24, "cols": 100, "spellcheck": "false", "style": "font-family: monospace; width: 95%;"}

# Plugin limit fields: (field name, lower bound setting, upper bound setting, unit).
LIMIT_FIELDS = (
    ("memory_limit_mb", "MIN_MEMORY_MB", "MAX_MEMORY_MB", "MiB"),
    ("timeout_ms", "MIN_TIMEOUT_MS", "MAX_TIMEOUT_MS", "ms"),
)


def _json_error(exc: json.JSONDecodeError) -> forms.ValidationError:
    return forms.ValidationError(
        "Not valid JSON: %(reason)s (line %(line)s, column %(column)s).",
        code="invalid",
        params={"reason": exc.msg, "line": exc.lineno, "column": exc.colno},
    )


class JSONObjectField(forms.JSONField):
    """A JSON field whose empty input means ``{}`` and whose syntax errors say where."""

    def to_python(self, value: Any) -> Any:
        if not self.disabled and isinstance(value, str):
            if not value.strip():
                return {}
            try:
                json.loads(value, cls=self.decoder)
            except json.JSONDecodeError as exc:
                raise _json_error(exc) from None
        return super().to_python(value)


class PluginForm(forms.ModelForm):
    class Meta:
        model = Plugin
        fields = ("name", "slug", "description", "enabled", "source", "memory_limit_mb", "timeout_ms", "config")
        field_classes = {"config": JSONObjectField}
        widgets = {
            "source": forms.Textarea(attrs=CODE_ATTRS),
            "config": forms.Textarea(attrs={**CODE_ATTRS, "rows": 6}),
            "description": forms.Textarea(attrs={"rows": 3}),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name, low_key, high_key, unit in LIMIT_FIELDS:
            if name in self.fields:
                self._set_range(self.fields[name], conf.get(low_key), conf.get(high_key), unit)

    def add_error(self, field: str | None, error: Any) -> None:
        """Add ``error``, leaving out model-level errors for fields that already failed.

        ``Plugin.clean()`` runs even when a field failed the form's own validation, and
        then sees that field's old value (e.g. an empty source on a new plugin): its
        message would repeat, or contradict, the error the form already shows.
        """
        if field is None and isinstance(error, forms.ValidationError) and hasattr(error, "error_dict"):
            fresh = {name: errors for name, errors in error.error_dict.items() if name not in self.errors}
            if not fresh:
                return
            error = forms.ValidationError(fresh)
        super().add_error(field, error)

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


class TryHookForm(forms.Form):
    hook = forms.ChoiceField()
    args = forms.CharField(
        label="Arguments (JSON array)",
        initial="[]",
        required=False,
        widget=forms.Textarea(attrs={**CODE_ATTRS, "rows": 4}),
        help_text='Each element is one argument, e.g. ["World"] or [{"id": 1}, true]. Empty means no arguments.',
    )

    def __init__(self, *args: Any, hooks: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["hook"].choices = [(h, h) for h in hooks]

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
        if not isinstance(value, list):
            raise forms.ValidationError('Give a JSON array of arguments, e.g. ["World"].')
        return value


def _reject_constant(name: str) -> Any:
    """``json.loads`` hook: NaN and Infinity are not JSON and cannot reach a plugin."""
    raise ValueError(f"{name} is not valid JSON; use a number or null.")
