"""The exception tree of plugins_app: everything raised for a plugin is a PluginError."""

from __future__ import annotations


class PluginError(Exception):
    """Base class of every error raised while installing or calling a plugin."""

    def __init__(self, message: str, *, slug: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.slug = slug


class PluginNotFound(PluginError):
    """No plugin with that slug is installed."""


class PluginDisabled(PluginError):
    """The plugin is installed but not enabled."""


class PluginPaused(PluginDisabled):
    """The circuit breaker paused the plugin after repeated failures; an operator must resume it."""


class HookDepthExceeded(PluginError):
    """A hook called (through host calls and signals) hooks nested deeper than MAX_HOOK_DEPTH."""


class HookNotFound(PluginError):
    """The plugin does not define the requested hook."""


class PluginTimeout(PluginError):
    """The call ran past the plugin's time limit and was stopped."""


class PluginMemoryError(PluginError):
    """The call ran past the plugin's memory limit (heap or buffers) and was stopped."""


class PluginCrashed(PluginError):
    """The sandbox process died or misbehaved during the call; it has been replaced."""


class PluginBusy(PluginError):
    """No sandbox process became free within the checkout timeout."""


class PluginDataError(PluginError):
    """Arguments or a result could not cross the sandbox boundary (type, size, depth, text)."""


class PluginResultError(PluginDataError):
    """The plugin's result could not cross the sandbox boundary: the plugin's own fault,
    so it counts towards its circuit breaker (bad *arguments* from the caller do not)."""


class PluginScriptError(PluginError):
    """The plugin's JavaScript threw. Carries the JS error's name, message and stack."""

    def __init__(
        self,
        message: str,
        *,
        slug: str | None = None,
        name: str | None = None,
        js_message: str | None = None,
        stack: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        super().__init__(message, slug=slug)
        self.name = name
        self.js_message = js_message
        self.stack = stack
        self.line = line
        self.column = column


class PluginValidationError(PluginError):
    """A plugin's source, limits or configuration were refused; nothing was saved."""

    def __init__(
        self,
        message: str,
        *,
        slug: str | None = None,
        field: str | None = None,
        line: int | None = None,
        column: int | None = None,
    ) -> None:
        super().__init__(message, slug=slug)
        self.field = field
        self.line = line
        self.column = column


class PluginPermissionDenied(PluginScriptError):
    """The plugin made a host call it was not granted, and did not catch the error."""


class PluginLimitExceeded(PluginScriptError):
    """The plugin went over a per-call host budget (host calls, rows, bytes) uncaught."""


class PluginConflict(PluginError):
    """A change was refused because the plugin changed since it was read: an edit form
    opened before another save, ``install --if-revision`` or a rollback confirmed against
    a revision that is no longer the latest (see :mod:`plugins_app.revisions`)."""


class RevisionNotFound(PluginError):
    """The plugin has no revision with that number."""
