"""Validation of a plugin before it is saved: sizes, limits, and a trial load in a sandbox."""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING

import jsonschema
from django.core.exceptions import ValidationError

from . import conf, imports
from .exceptions import PluginError, PluginScriptError, PluginTimeout
from .host_api import HostContext
from .host_api.log import log_safe
from .sandbox import pool

# Hook names are stored in the hook index (max 200 characters) and shown in the admin.
_HOOK_NAME = re.compile("[^\x00-\x1f\x7f-\x9f\ud800-\udfff]{1,200}")

if TYPE_CHECKING:
    from .models import Plugin


def _check_limits(plugin: Plugin, errors: dict[str, list[str]]) -> None:
    low, high = conf.get("MIN_MEMORY_MB"), conf.get("MAX_MEMORY_MB")
    if plugin.memory_limit_mb is None or not low <= plugin.memory_limit_mb <= high:
        errors.setdefault("memory_limit_mb", []).append(f"Must be between {low} and {high} MiB.")
    low, high = conf.get("MIN_TIMEOUT_MS"), conf.get("MAX_TIMEOUT_MS")
    if plugin.timeout_ms is None or not low <= plugin.timeout_ms <= high:
        errors.setdefault("timeout_ms", []).append(f"Must be between {low} and {high} ms.")


def _check_config(plugin: Plugin, errors: dict[str, list[str]]) -> str | None:
    if not isinstance(plugin.config, dict):
        errors.setdefault("config", []).append('Must be a JSON object, like {"key": "value"}.')
        return None
    text = json.dumps(plugin.config, ensure_ascii=False)
    if len(text.encode("utf-8")) > conf.get("MAX_CONFIG_BYTES"):
        errors.setdefault("config", []).append(f"Must be at most {conf.get('MAX_CONFIG_BYTES')} bytes of JSON.")
        return None
    return text


def _check_schema(plugin: Plugin, errors: dict[str, list[str]]) -> None:
    """Validate ``config`` against ``config_schema`` with jsonschema (when a schema is set)."""
    if plugin.config_schema in (None, {}):
        return
    try:
        validator_class = jsonschema.validators.validator_for(plugin.config_schema)
        validator_class.check_schema(plugin.config_schema)
    except (jsonschema.SchemaError, TypeError) as exc:
        message = exc.message if isinstance(exc, jsonschema.SchemaError) else str(exc)
        errors.setdefault("config_schema", []).append(f"Not a valid JSON Schema: {message}")
        return
    if "config" in errors:
        return
    for error in sorted(validator_class(plugin.config_schema).iter_errors(plugin.config), key=str)[:5]:
        where = "/".join(str(p) for p in error.absolute_path) or "(top level)"
        errors.setdefault("config", []).append(f"{where}: {error.message}")


def _check_source(plugin: Plugin, errors: dict[str, list[str]]) -> bool:
    source = plugin.source or ""
    size = len(source.encode("utf-8", "surrogatepass"))
    if not source.strip():
        errors.setdefault("source", []).append("The source is empty.")
        return False
    if size > conf.get("MAX_SOURCE_BYTES"):
        errors.setdefault("source", []).append(
            f"The source is {size} bytes; the limit is {conf.get('MAX_SOURCE_BYTES')} bytes."
        )
        return False
    if "\x00" in source:
        errors.setdefault("source", []).append("The source contains a NUL character.")
        return False
    return True


def load_error_message(exc: PluginError) -> str:
    """Human message for a failed trial load, with line and column where known."""
    if isinstance(exc, PluginScriptError):
        where = f" (line {exc.line}, column {exc.column})" if exc.line else ""
        return f"{exc.name}: {exc.js_message}{where}"
    if isinstance(exc, PluginTimeout):
        return "Loading the source took longer than the plugin's time limit."
    return exc.message


def validate_plugin(plugin: Plugin) -> None:
    """Raise ``ValidationError`` (keyed by field) unless ``plugin`` may be saved.

    On success sets ``plugin.hooks`` to the hooks the source defines.
    """
    errors: dict[str, list[str]] = {}
    _check_limits(plugin, errors)
    config_json = _check_config(plugin, errors)
    _check_schema(plugin, errors)
    source_ok = _check_source(plugin, errors)
    if errors or not source_ok or config_json is None:
        raise ValidationError(errors)
    refused, module = imports.refused_imports(plugin.source)
    if refused:
        raise ValidationError({"source": [imports.refusal_message(refused, module)]})

    spec = {
        "key": f"validate:{plugin.slug}",
        "slug": plugin.slug or "plugin",
        "source": plugin.source,
        "config": config_json,
        "memory_mb": plugin.memory_limit_mb,
    }
    try:
        text = pool.inspect(spec, plugin.timeout_ms / 1000.0, HostContext(plugin.slug or "plugin").handle)
    except PluginError as exc:
        raise ValidationError({"source": [load_error_message(exc)]}) from None
    try:
        result = json.loads(text)
    except ValueError:
        result = None
    if not isinstance(result, dict):
        raise ValidationError({"source": ["The source could not be inspected (it replaces JSON built-ins?)."]})
    if "error" in result:
        message = str(result["error"])
        raise ValidationError({"source": [message[:1].upper() + message[1:] + "."]})
    hooks = [h for h in result.get("hooks", []) if isinstance(h, str)]
    bad = [h for h in hooks if not _HOOK_NAME.fullmatch(h)]
    if bad:
        raise ValidationError(
            {
                "source": [
                    f"The hook name {log_safe(json.dumps(bad[0]), 100)} is not allowed: hook names are 1 to 200 characters, "
                    "without control characters or lone surrogates."
                ]
            }
        )
    if not hooks:
        raise ValidationError({"source": ["The `plugin` object defines no functions (hooks)."]})
    plugin.hooks = hooks
    # Each hook's parameter count (its JS `length`), for plugins_app.catalogue.save_warnings:
    # hints only, so a short list from the sandbox leaves hooks without one instead of failing.
    arity = result.get("arity")
    plugin._hook_arity = dict(zip(result["hooks"], arity, strict=False)) if isinstance(arity, list) else {}
    plugin._validated_fingerprint = plugin.compute_fingerprint()
