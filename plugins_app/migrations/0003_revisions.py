# Revisions of plugins (plugins_app.revisions) and the edit token for optimistic concurrency.

import uuid

import django.db.models.deletion
import django.utils.timezone
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("plugins_app", "0002_delivery_outbox"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="plugin",
            name="edit_token",
            field=models.UUIDField(
                default=uuid.uuid4,
                editable=False,
                help_text="Changes on every save: a form opened before another save is refused (plugins_app.revisions).",
                verbose_name="edit token",
            ),
        ),
        migrations.CreateModel(
            name="PluginRevision",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("number", models.PositiveIntegerField(verbose_name="revision")),
                ("created_at", models.DateTimeField(default=django.utils.timezone.now, verbose_name="saved at")),
                (
                    "created_by_name",
                    models.CharField(
                        blank=True,
                        help_text="The user's name when it was saved, or the shell user for the command line.",
                        max_length=150,
                        verbose_name="saved by (name)",
                    ),
                ),
                (
                    "origin",
                    models.CharField(
                        choices=[
                            ("admin", "admin"),
                            ("cli", "command line"),
                            ("code", "code"),
                            ("migration", "migration"),
                        ],
                        default="code",
                        max_length=16,
                        verbose_name="saved from",
                    ),
                ),
                ("comment", models.TextField(blank=True, verbose_name="comment")),
                (
                    "rolled_back_to",
                    models.PositiveIntegerField(
                        blank=True,
                        help_text="The revision this one restored, for a rollback.",
                        null=True,
                        verbose_name="rollback to",
                    ),
                ),
                (
                    "changes",
                    models.JSONField(
                        blank=True,
                        default=list,
                        help_text="What differs from the previous revision.",
                        verbose_name="changed",
                    ),
                ),
                ("plugin_version", models.PositiveIntegerField(default=0, verbose_name="plugin version")),
                ("source", models.TextField(verbose_name="source")),
                ("config", models.JSONField(blank=True, default=dict, verbose_name="configuration")),
                ("config_schema", models.JSONField(blank=True, null=True, verbose_name="configuration schema")),
                ("memory_limit_mb", models.PositiveIntegerField(verbose_name="memory limit (MiB)")),
                ("timeout_ms", models.PositiveIntegerField(verbose_name="time limit (ms)")),
                ("max_host_calls", models.PositiveIntegerField(verbose_name="host calls per call")),
                ("max_rows_read", models.PositiveIntegerField(verbose_name="rows read per call")),
                ("max_rows_written", models.PositiveIntegerField(verbose_name="rows written per call")),
                ("max_host_result_bytes", models.PositiveIntegerField(verbose_name="host result bytes per call")),
                ("http_enabled", models.BooleanField(default=False, verbose_name="serves HTTP")),
                (
                    "grants",
                    models.JSONField(
                        blank=True,
                        default=list,
                        help_text='[{"model", "read", "create", "update", "can_delete"}, ...], by model.',
                        verbose_name="grants",
                    ),
                ),
                (
                    "created_by",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                        verbose_name="saved by",
                    ),
                ),
                (
                    "plugin",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE, related_name="revisions", to="plugins_app.plugin"
                    ),
                ),
            ],
            options={
                "verbose_name": "plugin revision",
                "verbose_name_plural": "plugin revisions",
                "ordering": ["plugin", "-number"],
                "constraints": [
                    models.UniqueConstraint(fields=("plugin", "number"), name="plugins_app_revision_unique_number")
                ],
            },
        ),
    ]
