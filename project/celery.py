"""The demo project's Celery app (optional: ``pip install 'django-plugins-app[celery]'``).

Celery is OFF for the demo unless the environment variable ``CELERY_BROKER_URL`` is set:
only then do the settings define ``CELERY_BROKER_URL`` (and ``CELERY_RESULT_BACKEND``),
and only then does plugins_app send background plugin actions to workers; otherwise
they run inline after commit. Turn it on for both the web process and the worker::

    export CELERY_BROKER_URL=redis://127.0.0.1:6379/0
    python manage.py runserver
    celery -A project worker --pool=solo -l info

Django settings are read with the ``CELERY_`` prefix. A worker started without any
broker setting uses the local Redis (``DEFAULT_BROKER_URL``).
"""
import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"

app = Celery("project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()  # finds plugins_app.tasks (the task plugins_app.run_action)


@app.on_after_configure.connect
def _default_broker(sender: Celery, **kwargs: object) -> None:
    # Configuration is loaded lazily (on first use), never at import: this module is
    # imported by project/__init__.py, before the settings exist.
    if not sender.conf.broker_url:
        sender.conf.broker_url = os.environ.get("CELERY_BROKER_URL") or DEFAULT_BROKER_URL
    if not sender.conf.result_backend:
        sender.conf.result_backend = os.environ.get("CELERY_RESULT_BACKEND") or sender.conf.broker_url
