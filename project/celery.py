"""The demo project's Celery app (optional: ``pip install 'django-plugins-app[celery]'``).

Celery is OFF for the demo unless the environment variable ``CELERY_BROKER_URL`` is set:
only then do the settings define ``CELERY_BROKER_URL``, and only then does plugins_app
send background deliveries to workers; otherwise they run inline after commit. Turn it on
for both the web process and the worker, and run the worker with its beat scheduler
(``-B``: the periodic outbox drain, which retries deliveries and picks up those of
killed processes)::

    export CELERY_BROKER_URL=redis://127.0.0.1:6379/0
    python manage.py runserver
    celery -A project worker -B -l info

(One ``-B`` worker per site: run ``celery -A project beat`` separately when you run
several workers.)

Django settings are read with the ``CELERY_`` prefix. A worker started without any
broker setting uses the local Redis (``DEFAULT_BROKER_URL``).
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

DEFAULT_BROKER_URL = "redis://127.0.0.1:6379/0"

app = Celery("project")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()  # finds plugins_app.tasks (deliver, drain_outbox)


@app.on_after_configure.connect
def _default_broker(sender: Celery, **kwargs: object) -> None:
    # Configuration is loaded lazily (on first use), never at import: this module is
    # imported by project/__init__.py, before the settings exist.
    if not sender.conf.broker_url:
        # An item: the stubs make conf.broker_url read-only (setting it sets this item too).
        sender.conf["broker_url"] = os.environ.get("CELERY_BROKER_URL") or DEFAULT_BROKER_URL
    from plugins_app.tasks import beat_schedule

    sender.conf.beat_schedule = {**(sender.conf.beat_schedule or {}), **beat_schedule()}
