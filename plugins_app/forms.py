"""Forms used by the admin."""
from __future__ import annotations

import json
from typing import Any

from django import forms

from .models import Plugin

CODE_ATTRS = {"rows": 24, "cols": 100, "spellcheck": "false", "style": "font-family: monospace; width: 95%;"}


class PluginForm(forms.ModelForm):
    class Meta:
        model = Plugin
        fields = ("name", "slug", "description", "enabled", "source", "memory_limit_mb", "timeout_ms", "config")
        widgets = {
            "source": forms.Textarea(attrs=CODE_ATTRS),
            "config": forms.Textarea(attrs={**CODE_ATTRS, "rows": 6}),
            "description": forms.Textarea(attrs={"rows": 3}),
        }


class TryHookForm(forms.Form):
    hook = forms.ChoiceField()
    args = forms.CharField(
        label="Arguments (JSON array)",
        initial="[]",
        widget=forms.Textarea(attrs={**CODE_ATTRS, "rows": 4}),
        help_text='Each element is one argument, e.g. ["World"] or [{"id": 1}, true].',
    )

    def __init__(self, *args: Any, hooks: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["hook"].choices = [(h, h) for h in hooks]

    def clean_args(self) -> list[Any]:
        try:
            value = json.loads(self.cleaned_data["args"])
        except ValueError as exc:
            raise forms.ValidationError(f"Not valid JSON: {exc}") from None
        if not isinstance(value, list):
            raise forms.ValidationError("Give a JSON array of arguments, e.g. [\"World\"].")
        return value
