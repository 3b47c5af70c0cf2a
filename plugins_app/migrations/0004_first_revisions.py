"""Give every existing plugin its first revision: a snapshot of its state when revisions began.

The snapshot is written out here (not imported from plugins_app.revisions) so that this
migration keeps doing what it did when later code changes.
"""

from django.db import migrations
from django.db.backends.base.schema import BaseDatabaseSchemaEditor
from django.db.migrations.state import StateApps
from django.utils import timezone

PLUGIN_FIELDS = (
    "source",
    "config",
    "config_schema",
    "memory_limit_mb",
    "timeout_ms",
    "max_host_calls",
    "max_rows_read",
    "max_rows_written",
    "max_host_result_bytes",
    "http_enabled",
)
COMMENT = "State of the plugin when revisions were introduced."


def first_revisions(apps: StateApps, schema_editor: BaseDatabaseSchemaEditor) -> None:
    Plugin = apps.get_model("plugins_app", "Plugin")
    PluginGrant = apps.get_model("plugins_app", "PluginGrant")
    PluginRevision = apps.get_model("plugins_app", "PluginRevision")
    db = schema_editor.connection.alias
    have = set(PluginRevision.objects.using(db).values_list("plugin_id", flat=True).distinct())
    now = timezone.now()
    batch = []
    for plugin in Plugin.objects.using(db).order_by("pk").iterator(chunk_size=200):
        if plugin.pk in have:
            continue
        grants = sorted(
            (
                {
                    "model": g.model,
                    "read": list(g.read or []),
                    "create": list(g.create or []),
                    "update": list(g.update or []),
                    "can_delete": bool(g.can_delete),
                }
                for g in PluginGrant.objects.using(db).filter(plugin_id=plugin.pk)
            ),
            key=lambda g: (g["model"].lower(), g["model"]),
        )
        batch.append(
            PluginRevision(
                plugin_id=plugin.pk,
                number=1,
                created_at=now,
                created_by=None,
                created_by_name="",
                origin="migration",
                comment=COMMENT,
                changes=[],
                plugin_version=plugin.version,
                grants=grants,
                **{name: getattr(plugin, name) for name in PLUGIN_FIELDS},
            )
        )
        if len(batch) >= 200:
            PluginRevision.objects.using(db).bulk_create(batch)
            batch = []
    if batch:
        PluginRevision.objects.using(db).bulk_create(batch)


class Migration(migrations.Migration):
    dependencies = [
        ("plugins_app", "0003_revisions"),
    ]

    operations = [
        # Unapplying leaves the revisions; unapplying 0003_revisions drops them.
        migrations.RunPython(first_revisions, migrations.RunPython.noop),
    ]
