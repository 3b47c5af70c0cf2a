"""Demo data that plugins can be granted access to (see plugin_exposure.py)."""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Note(models.Model):
    """A short note written by a user; plugins may read, create and annotate notes."""

    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notes")
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True)
    score = models.IntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.title
