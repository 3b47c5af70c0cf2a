"""The demo project. Its Celery app is loaded with it when celery is installed (an
optional extra), so that ``@shared_task`` uses it; see project/celery.py."""

from importlib.util import find_spec
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from celery import Celery

celery_app: "Celery | None"
if find_spec("celery") is not None:
    from .celery import app as celery_app
else:  # pragma: no cover - celery not installed: background actions run inline
    celery_app = None

__all__ = ["celery_app"]
