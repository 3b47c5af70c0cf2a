# The "run plugins from the console" permission (plugins_app.admin.console), and help texts
# written as HTML (the admin renders them unescaped: "<slug>" was eaten, backticks showed).

from django.db import migrations, models

import plugins_app.models


class Migration(migrations.Migration):
    dependencies = [
        ("plugins_app", "0005_merge_call_log_revisions"),
    ]

    operations = [
        migrations.AlterModelOptions(
            name="plugin",
            options={
                "ordering": ["slug"],
                "permissions": [("run_console", "Can run plugins from the console")],
                "verbose_name": "plugin",
                "verbose_name_plural": "plugins",
            },
        ),
        migrations.AlterField(
            model_name="plugin",
            name="config",
            field=models.JSONField(
                blank=True,
                default=plugins_app.models.default_config,
                help_text="JSON object, visible to the plugin as the read-only global <code>config</code>.",
                verbose_name="configuration",
            ),
        ),
        migrations.AlterField(
            model_name="plugin",
            name="config_schema",
            field=models.JSONField(
                blank=True,
                help_text="Optional JSON Schema that <code>config</code> must satisfy (checked on save).",
                null=True,
                verbose_name="configuration schema",
            ),
        ),
        migrations.AlterField(
            model_name="plugin",
            name="http_enabled",
            field=models.BooleanField(
                default=False,
                help_text="Lets the plugin answer requests under <code>/plugins/&lt;slug&gt;/</code> with its <code>onRequest</code> hook.",
                verbose_name="serves HTTP",
            ),
        ),
        migrations.AlterField(
            model_name="plugin",
            name="max_rows_read",
            field=models.PositiveIntegerField(
                default=plugins_app.models.default_max_rows_read,
                help_text="Rows <code>db</code> may return per hook call.",
                verbose_name="rows read per call",
            ),
        ),
        migrations.AlterField(
            model_name="plugin",
            name="max_rows_written",
            field=models.PositiveIntegerField(
                default=plugins_app.models.default_max_rows_written,
                help_text="Rows <code>db</code> may create, update or delete per hook call.",
                verbose_name="rows written per call",
            ),
        ),
        migrations.AlterField(
            model_name="plugin",
            name="source",
            field=models.TextField(
                help_text="JavaScript defining <code>const plugin = { hook(...) { ... } }</code>.",
                verbose_name="source",
            ),
        ),
    ]
