"""Django settings for processes that tests start (Celery workers, scripts, gunicorn).

The demo's settings (``project.settings``: DATABASE_URL, CELERY_BROKER_URL... from the
environment), plus what a test passes through the environment:

- ``PLUGINS_TEST_PLUGINS_APP``: JSON object merged over ``PLUGINS_APP`` (short leases,
  small backoffs, the test's own signal bindings...);
- ``PLUGINS_TEST_CELERY_QUEUE``: the default queue, so that what the worker sends itself
  (retries, the beat's periodic drain) stays on the test's own queue;
- ``CELERY_RESULT_BACKEND``: a result backend, to show that plugins_app stores no results
  even when one is configured.
"""

import json
import os

from project.settings import *  # noqa: F403 - the demo's settings, with the overrides below
from project.settings import PLUGINS_APP as _DEMO_PLUGINS_APP

PLUGINS_APP = {**_DEMO_PLUGINS_APP, **json.loads(os.environ.get("PLUGINS_TEST_PLUGINS_APP") or "{}")}

if os.environ.get("PLUGINS_TEST_CELERY_QUEUE"):
    CELERY_TASK_DEFAULT_QUEUE = os.environ["PLUGINS_TEST_CELERY_QUEUE"]
if os.environ.get("CELERY_RESULT_BACKEND"):
    CELERY_RESULT_BACKEND = os.environ["CELERY_RESULT_BACKEND"]
