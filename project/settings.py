"""Settings for the demo project.

Everything deployment-specific comes from the environment, with defaults that are
safe for local development only.
"""

import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent


def _env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


DEBUG = _env_bool("DEBUG", True)
# The fallback key is only for local development; production must set SECRET_KEY.
SECRET_KEY = os.environ.get("SECRET_KEY", "dev-only-insecure-key-change-me")
ALLOWED_HOSTS = [
    h.strip() for h in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1],testserver").split(",") if h.strip()
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "plugins_app",
    "project.demo",
]

MIDDLEWARE = [
    # One pinned set of plugin versions per request, found without a query per hook call
    # (plugins_app.hooks.scope; docs/hooks.md, "Scopes and caching").
    "plugins_app.middleware.PluginScopeMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "project.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "project.wsgi.application"
ASGI_APPLICATION = "project.asgi.application"

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}",
        conn_max_age=int(os.environ.get("CONN_MAX_AGE", "0")),
    )
}
# No ATOMIC_REQUESTS: the demo's home page bumps one hot storage row per view, which would
# then stay locked until each request ends (docs/deployment.md). Bound models are saved
# in transactions anyway (the admin's change views, seed_demo), so their outbox rows commit
# with them.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Writers queue on the database lock (busy timeout) instead of failing with
    # "database is locked" when a transaction that read first tries to write.
    DATABASES["default"].setdefault("OPTIONS", {})["transaction_mode"] = "IMMEDIATE"
    # A file, not shared-cache memory: shared cache uses table locks that ignore the
    # busy timeout, so concurrent tests would fail where a real site would wait.
    # One file per test process, so two test runs in one checkout never share it.
    DATABASES["default"]["TEST"] = {
        "NAME": os.path.join(tempfile.gettempdir(), f"plugins_app_test_{os.getpid()}.sqlite3")
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
# `manage.py collectstatic` copies the admin's files here; the reverse proxy serves them.
STATIC_ROOT = os.environ.get("STATIC_ROOT") or BASE_DIR / "staticfiles"

# Production behind a TLS-terminating reverse proxy that sets X-Forwarded-Proto (and
# strips it from clients): HTTPS=1 turns on secure cookies, the redirect to https and
# HSTS. Off by default, so the demo also runs on plain http://127.0.0.1. See
# docs/deployment.md.
if _env_bool("HTTPS", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", "3600"))
    SECURE_HSTS_INCLUDE_SUBDOMAINS = _env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)


def _log_context() -> Callable[[logging.LogRecord], bool]:
    """A logging filter (factory) that gives every record ``context``: `` [plugin=slug
    sandbox_pid=123]`` from the extras plugins_app sets (``record.plugin`` on records about
    a plugin, ``record.sandbox_pid`` on a sandbox's), or ``""`` when there are none."""

    def add_context(record: logging.LogRecord) -> bool:
        parts = [
            f"{name}={value}"
            for name, value in (
                ("plugin", getattr(record, "plugin", None)),
                ("sandbox_pid", getattr(record, "sandbox_pid", None)),
            )
            if value not in (None, "")
        ]
        record.context = f" [{' '.join(parts)}]" if parts else ""
        return True

    return add_context


# Logging: one console handler on the root logger, writing to stderr (collected by
# gunicorn, systemd or the container runtime). In production (DEBUG=0) it shows warnings
# and errors: every request that fails with a 500 (django.request, with its traceback),
# Django's security warnings, and plugins_app's warnings and errors (failed deliveries,
# crashed sandboxes, paused plugins, plugins' console.warn/error lines), each with its
# logger name, level, and the plugin and sandbox it is about. In development (DEBUG=1)
# plugins_app's INFO lines too. A Celery worker replaces the root handler with its own,
# so the same records appear once in the worker's log. See docs/deployment.md.
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "context": {"()": _log_context},
        "require_debug_false": {"()": "django.utils.log.RequireDebugFalse"},
    },
    "formatters": {
        "console": {"format": "%(asctime)s %(levelname)s %(name)s%(context)s: %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "console", "filters": ["context"]},  # stderr
        "mail_admins": {
            "class": "django.utils.log.AdminEmailHandler",
            "level": "ERROR",
            "filters": ["require_debug_false"],
        },
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        # Django's own default sends these to a console handler only when DEBUG is on: here
        # they reach the root's console in every mode (and ADMINS by mail in production).
        "django": {"handlers": ["mail_admins"], "level": "INFO"},
        "plugins_app": {"level": os.environ.get("PLUGINS_LOG_LEVEL", "INFO" if DEBUG else "WARNING")},
        # Plugins' own log() lines: shown on the demo page and by `plugins call`, so
        # only warnings and errors are echoed to the console as well.
        "plugins_app.plugins": {"level": os.environ.get("PLUGINS_PLUGIN_LOG_LEVEL", "WARNING")},
    },
}

# plugins_app settings: every key is optional; see plugins_app/conf.py for defaults.
PLUGINS_APP: dict[str, Any] = {
    "SIGNAL_BINDINGS": [
        # After the commit (the default): the demo "activity" plugin counts note saves.
        {"signal": "post_save", "sender": "demo.Note", "hook": "noteSaved"},
        # In the background: on Celery when CELERY_BROKER_URL is set, else inline after commit.
        {"signal": "post_save", "sender": "demo.Note", "hook": "noteIndexed", "mode": "background"},
    ],
}

# Celery, for plugin actions run in the background (see docs/hooks.md and project/celery.py).
# OFF unless the environment sets CELERY_BROKER_URL (e.g. redis://127.0.0.1:6379/0): without
# it, background plugin actions run inline in the web process after the commit.
if os.environ.get("CELERY_BROKER_URL"):
    CELERY_BROKER_URL = os.environ["CELERY_BROKER_URL"]
    CELERY_TASK_SERIALIZER = "json"
    CELERY_ACCEPT_CONTENT = ["json"]
    CELERY_TASK_IGNORE_RESULT = True  # plugins_app's tasks store nothing; neither do the demo's
    CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
